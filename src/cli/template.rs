//! The subset of Go's text/template that `docker inspect -f` scripts use, over JSON values.
//!
//! Supported: literal text; `{{.}}`, `{{.A.B}}` and `{{$}}`/`{{$.A}}` (the whole document, also
//! inside `range`); literals (`"str"` with `\n \t \r \\ \"`, `` `raw` ``, integers, `true`,
//! `false`); `(pipeline)` sub-expressions, optionally followed by fields: `(index .M "k").A`;
//! pipelines `x | f` (the value goes last, as in Go); the functions `json`, `index` (maps and
//! arrays, several keys), `len`, `join LIST SEP`, `upper`, `lower`, and Go's `eq` (true if the
//! first equals any other), `ne`, `lt`, `le`, `gt`, `ge`, `not`, `and`, `or`, `printf` (see
//! [`printf`]); `{{if}}`, `{{else if}}`, `{{else}}`, `{{range}}` (over arrays, and over maps'
//! values in key order), `{{with}}` and `{{end}}`; the trim markers `{{- ` and ` -}}`.
//! Anything else is an error naming its line and column.
//!
//! Deliberate differences from Go: maps and arrays print as compact JSON (Go prints
//! `map[k:v]` and `[a b]`), and a field or index through `null` gives `<no value>` instead of
//! a "nil pointer" error, so `{{index .Config.Labels "x"}}` works when there are no labels.

use serde_json::Value;

use crate::error::{ErrorKind, HasKind};

/// What Go prints for a missing value.
const NO_VALUE: &str = "<no value>";

/// What a field or index through `null` (or a missing key) evaluates to.
static NULL: Value = Value::Null;

/// A malformed template (found by [`Template::parse`]) or one that does not fit the data (found
/// by [`Template::render`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error at line {line}, column {column}: {message}")]
pub struct TemplateError {
    line: usize,
    column: usize,
    message: String,
}

impl HasKind for TemplateError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

/// A place in the template's source (1-based; columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn of(src: &str, offset: usize) -> Pos {
        let before = &src[..offset];
        Pos {
            line: before.matches('\n').count() + 1,
            column: before.rsplit('\n').next().unwrap_or("").chars().count() + 1,
        }
    }

    fn error(self, message: impl Into<String>) -> TemplateError {
        TemplateError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// A parsed template, ready to render any number of documents.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Print(Pipeline),
    /// `{{if|range|with P}}body{{else}}otherwise{{end}}`.
    Block {
        kind: BlockKind,
        value: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    /// body when P is true (Go's truth), else otherwise.
    If,
    /// body once per element of P (dot = the element); otherwise when there are none.
    Range,
    /// body with dot = P's value when that is true, else otherwise.
    With,
}

impl BlockKind {
    fn named(keyword: &str) -> Option<BlockKind> {
        match keyword {
            "if" => Some(BlockKind::If),
            "range" => Some(BlockKind::Range),
            "with" => Some(BlockKind::With),
            _ => None,
        }
    }
}

/// `head | stage | stage…`: each stage gets the previous value as its last argument.
#[derive(Debug, Clone)]
struct Pipeline {
    pos: Pos,
    head: Command,
    stages: Vec<Call>,
}

#[derive(Debug, Clone)]
enum Command {
    Value(Operand),
    Call(Call),
}

#[derive(Debug, Clone)]
struct Call {
    func: Func,
    args: Vec<Operand>,
}

#[derive(Debug, Clone)]
enum Operand {
    /// `.` followed by these fields.
    Dot(Vec<String>),
    /// `$` (the whole document) followed by these fields.
    Root(Vec<String>),
    Literal(Value),
    /// `(pipeline)` followed by these fields.
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Json,
    Index,
    Len,
    Join,
    Upper,
    Lower,
    Eq,
    Ne,
    Not,
    And,
    Or,
    Lt,
    Le,
    Gt,
    Ge,
    Printf,
}

impl Func {
    const ALL: [Func; 16] = [
        Func::Json,
        Func::Index,
        Func::Len,
        Func::Join,
        Func::Upper,
        Func::Lower,
        Func::Eq,
        Func::Ne,
        Func::Not,
        Func::And,
        Func::Or,
        Func::Lt,
        Func::Le,
        Func::Gt,
        Func::Ge,
        Func::Printf,
    ];

    fn name(self) -> &'static str {
        match self {
            Func::Json => "json",
            Func::Index => "index",
            Func::Len => "len",
            Func::Join => "join",
            Func::Upper => "upper",
            Func::Lower => "lower",
            Func::Eq => "eq",
            Func::Ne => "ne",
            Func::Not => "not",
            Func::And => "and",
            Func::Or => "or",
            Func::Lt => "lt",
            Func::Le => "le",
            Func::Gt => "gt",
            Func::Ge => "ge",
            Func::Printf => "printf",
        }
    }

    fn named(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Go checks argument counts when it parses, so a wrong count never reaches the agent.
    fn check_arity(self, count: usize) -> Result<(), String> {
        let (ok, wants) = match self {
            Func::Index => (count >= 2, "a map or array and at least one key"),
            Func::Join => (count == 2, "a list and a separator"),
            Func::Eq => (count >= 2, "a value and at least one to compare it with"),
            Func::Ne | Func::Lt | Func::Le | Func::Gt | Func::Ge => (count == 2, "two values"),
            Func::Printf => (count >= 1, "a format and its arguments"),
            Func::And | Func::Or => (count >= 1, "at least one argument"),
            Func::Json | Func::Len | Func::Upper | Func::Lower | Func::Not => {
                (count == 1, "one argument")
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{} takes {wants}, got {count}", self.name()))
        }
    }
}

impl Template {
    /// Check the whole template up front, as Go does: errors name the line and column.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut parser = Parser {
            items: lex(src)?.into_iter(),
        };
        let (nodes, end) = parser.list()?;
        match end {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End(pos) => Err(pos.error("{{end}} without an {{if}} or {{range}} to close")),
            Stop::Else(pos) | Stop::ElseIf(pos, _) => {
                Err(pos.error("{{else}} outside an {{if}} or {{range}}"))
            }
        }
    }

    /// The template applied to one document.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        Exec { root: data }.nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

// ---- lexing: text and the tokens of each action ----

#[derive(Debug)]
enum Item {
    Text(String),
    Action { pos: Pos, tokens: Vec<Token> },
}

#[derive(Debug)]
struct Token {
    kind: Tok,
    pos: Pos,
    /// Whitespace comes before it: `(…).A` is a field of the parenthesised value, `(…) .A` is not.
    spaced: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Root(Vec<String>),
    Ident(String),
    Str(String),
    Int(i64),
    LParen,
    RParen,
    Pipe,
}

impl Tok {
    fn describe(&self) -> String {
        let path = |start: &str, fields: &[String]| {
            if fields.is_empty() {
                start.to_string()
            } else {
                format!("{}.{}", start.trim_end_matches('.'), fields.join("."))
            }
        };
        match self {
            Tok::Field(fields) => path(".", fields),
            Tok::Root(fields) => path("$", fields),
            Tok::Ident(name) => name.clone(),
            Tok::Str(s) => format!("{s:?}"),
            Tok::Int(n) => n.to_string(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Pipe => "|".into(),
        }
    }
}

/// Go's whitespace for trimming and between tokens.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut text_start = 0;
    let mut trim_text_start = false;
    while let Some(found) = src[text_start..].find("{{") {
        let open = text_start + found;
        let mut text = &src[text_start..open];
        if trim_text_start {
            text = text.trim_start_matches(is_space);
        }
        let mut inside = open + 2;
        // `{{-` trims only when followed by a space: `{{-3}}` is the number -3.
        if src[inside..].starts_with('-') && src[inside + 1..].starts_with(is_space) {
            text = text.trim_end_matches(is_space);
            inside += 1;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let (tokens, end, trim_after) = lex_action(src, open, inside)?;
        items.push(Item::Action {
            pos: Pos::of(src, open),
            tokens,
        });
        text_start = end;
        trim_text_start = trim_after;
    }
    let mut text = &src[text_start..];
    if trim_text_start {
        text = text.trim_start_matches(is_space);
    }
    if !text.is_empty() {
        items.push(Item::Text(text.to_string()));
    }
    Ok(items)
}

/// The tokens of the action opened at `open`, from `start` to its `}}`; returns them, the
/// offset after the `}}` and whether it was ` -}}`.
fn lex_action(
    src: &str,
    open: usize,
    start: usize,
) -> Result<(Vec<Token>, usize, bool), TemplateError> {
    let mut tokens = Vec::new();
    let mut i = start;
    loop {
        let rest = &src[i..];
        let trimmed = rest.trim_start_matches(is_space);
        let spaced = trimmed.len() < rest.len();
        i += rest.len() - trimmed.len();
        let rest = trimmed;
        if rest.is_empty() {
            return Err(Pos::of(src, open).error("unclosed action: no }} after this {{"));
        }
        if rest.starts_with("}}") {
            return Ok((tokens, i + 2, false));
        }
        if spaced && rest.starts_with("-}}") {
            return Ok((tokens, i + 3, true));
        }
        let pos = Pos::of(src, i);
        let (kind, len) = lex_token(rest).map_err(|message| pos.error(message))?;
        tokens.push(Token { kind, pos, spaced });
        i += len;
    }
}

/// One token at the start of `rest` (not empty, no leading space) and its length in bytes.
fn lex_token(rest: &str) -> Result<(Tok, usize), String> {
    let mut chars = rest.chars();
    let first = chars.next().unwrap_or(' ');
    let second = chars.next();
    match first {
        '.' => lex_fields(rest).map(|(fields, len)| (Tok::Field(fields), len)),
        '$' => match second {
            Some('.') => lex_fields(&rest[1..]).map(|(fields, len)| (Tok::Root(fields), 1 + len)),
            Some(c) if is_ident_char(c) => Err("variables other than $ are not supported".into()),
            _ => Ok((Tok::Root(Vec::new()), 1)),
        },
        '"' => lex_quoted(rest),
        '`' => match rest[1..].find('`') {
            Some(end) => Ok((Tok::Str(rest[1..=end].to_string()), end + 2)),
            None => Err("unterminated raw string".into()),
        },
        '(' => Ok((Tok::LParen, 1)),
        ')' => Ok((Tok::RParen, 1)),
        '|' => Ok((Tok::Pipe, 1)),
        c if c.is_ascii_digit() || (c == '-' && second.is_some_and(|d| d.is_ascii_digit())) => {
            let len = 1 + rest[1..]
                .find(|c: char| !is_ident_char(c) && c != '.')
                .unwrap_or(rest.len() - 1);
            let number = &rest[..len];
            match number.parse() {
                Ok(n) => Ok((Tok::Int(n), len)),
                Err(_) => Err(format!(
                    "bad number {number:?} (only integers are supported)"
                )),
            }
        }
        c if is_ident_char(c) => {
            let len = rest.find(|c| !is_ident_char(c)).unwrap_or(rest.len());
            Ok((Tok::Ident(rest[..len].to_string()), len))
        }
        c => Err(format!("unexpected {c:?} in action")),
    }
}

/// `.` alone, or `.A.B…`, at the start of `rest`.
fn lex_fields(rest: &str) -> Result<(Vec<String>, usize), String> {
    let mut fields = Vec::new();
    let mut len = 0;
    while rest[len..].starts_with('.') {
        let name = &rest[len + 1..];
        let name = &name[..name.find(|c| !is_ident_char(c)).unwrap_or(name.len())];
        if name.is_empty() {
            if fields.is_empty() {
                return Ok((fields, 1));
            }
            return Err("a field name must follow '.'".into());
        }
        fields.push(name.to_string());
        len += 1 + name.len();
    }
    Ok((fields, len))
}

fn lex_quoted(rest: &str) -> Result<(Tok, usize), String> {
    let mut out = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Tok::Str(out), i + 1)),
            '\n' => break,
            '\\' => out.push(match chars.next().map(|(_, c)| c) {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some(c @ ('\\' | '"')) => c,
                Some(c) => return Err(format!("unsupported escape \\{c} in string")),
                None => break,
            }),
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

// ---- parsing: the actions into a tree ----

/// What ended a list of nodes.
#[derive(Debug)]
enum Stop {
    Eof,
    End(Pos),
    Else(Pos),
    ElseIf(Pos, Pipeline),
}

#[derive(Debug)]
struct Parser {
    items: std::vec::IntoIter<Item>,
}

impl Parser {
    /// Nodes up to the next `{{end}}`, `{{else}}` or the end of the template.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (pos, tokens) = match item {
                Item::Text(text) => {
                    nodes.push(Node::Text(text));
                    continue;
                }
                Item::Action { pos, tokens } => (pos, tokens),
            };
            let keyword = match tokens.first().map(|t| &t.kind) {
                Some(Tok::Ident(word)) => word.as_str(),
                _ => "",
            };
            if let Some(kind) = BlockKind::named(keyword) {
                let value = pipeline(pos, &tokens[1..])?;
                let (body, otherwise) = self.block(pos, &format!("{{{{{keyword}}}}}"))?;
                nodes.push(Node::Block {
                    kind,
                    value,
                    body,
                    otherwise,
                });
                continue;
            }
            match keyword {
                "else" => {
                    let end = match tokens.get(1) {
                        None => Stop::Else(pos),
                        Some(t) if t.kind == Tok::Ident("if".into()) => {
                            Stop::ElseIf(pos, pipeline(pos, &tokens[2..])?)
                        }
                        Some(t) => {
                            return Err(t
                                .pos
                                .error(format!("unexpected {} after else", t.kind.describe())))
                        }
                    };
                    return Ok((nodes, end));
                }
                "end" => {
                    if let Some(t) = tokens.get(1) {
                        return Err(t
                            .pos
                            .error(format!("unexpected {} after end", t.kind.describe())));
                    }
                    return Ok((nodes, Stop::End(pos)));
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(pos.error(format!("the {keyword} action is not supported")));
                }
                _ => nodes.push(Node::Print(pipeline(pos, &tokens)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// The body and else-part of the block `opener` at `pos`, through its `{{end}}`.
    fn block(&mut self, pos: Pos, opener: &str) -> Result<(Vec<Node>, Vec<Node>), TemplateError> {
        let missing_end = || pos.error(format!("missing {} for this {opener}", "{{end}}"));
        let (body, end) = self.list()?;
        let otherwise = match end {
            Stop::End(_) => Vec::new(),
            Stop::Eof => return Err(missing_end()),
            Stop::Else(_) => match self.list()? {
                (nodes, Stop::End(_)) => nodes,
                (_, Stop::Else(at) | Stop::ElseIf(at, _)) => {
                    return Err(at.error(format!("a second {} in this {opener}", "{{else}}")))
                }
                (_, Stop::Eof) => return Err(missing_end()),
            },
            // `{{else if C}}…{{end}}` is `{{else}}{{if C}}…{{end}}{{end}}` sharing one end.
            Stop::ElseIf(_, cond) => {
                let (then, otherwise) = self.block(pos, opener)?;
                vec![Node::Block {
                    kind: BlockKind::If,
                    value: cond,
                    body: then,
                    otherwise,
                }]
            }
        };
        Ok((body, otherwise))
    }
}

/// The pipeline that is all of `tokens`, in the action at `pos`.
fn pipeline(pos: Pos, tokens: &[Token]) -> Result<Pipeline, TemplateError> {
    let mut cursor = Cursor { tokens, next: 0 };
    let pipeline = cursor.pipeline(pos)?;
    match cursor.peek() {
        Some(t) => Err(t
            .pos
            .error(format!("unexpected {} in action", t.kind.describe()))),
        None => Ok(pipeline),
    }
}

#[derive(Debug)]
struct Cursor<'a> {
    tokens: &'a [Token],
    next: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.next)
    }

    /// The position to blame when a value is missing: the next token, else the action.
    fn here(&self, action: Pos) -> Pos {
        self.peek().map_or(action, |t| t.pos)
    }

    fn pipeline(&mut self, pos: Pos) -> Result<Pipeline, TemplateError> {
        let head = match self.call(pos, false)? {
            Some(call) => Command::Call(call),
            None => Command::Value(self.operand(pos)?),
        };
        let mut stages = Vec::new();
        while self.peek().is_some_and(|t| t.kind == Tok::Pipe) {
            self.next += 1;
            let stage = self.call(pos, true)?;
            stages.push(stage.ok_or_else(|| {
                self.here(pos)
                    .error("only a function (json, index, len, join, upper, lower) can follow |")
            })?);
        }
        Ok(Pipeline { pos, head, stages })
    }

    /// A function call if the next token names one; `piped` adds the piped value to its count.
    fn call(&mut self, pos: Pos, piped: bool) -> Result<Option<Call>, TemplateError> {
        let Some(Token {
            kind: Tok::Ident(name),
            pos: at,
            ..
        }) = self.peek()
        else {
            return Ok(None);
        };
        if name == "true" || name == "false" {
            return Ok(None);
        }
        let at = *at;
        let func =
            Func::named(name).ok_or_else(|| at.error(format!("unknown function {name:?}")))?;
        self.next += 1;
        let mut args = Vec::new();
        while self
            .peek()
            .is_some_and(|t| !matches!(t.kind, Tok::RParen | Tok::Pipe))
        {
            args.push(self.operand(pos)?);
        }
        func.check_arity(args.len() + usize::from(piped))
            .map_err(|message| at.error(message))?;
        Ok(Some(Call { func, args }))
    }

    fn operand(&mut self, pos: Pos) -> Result<Operand, TemplateError> {
        let Some(token) = self.peek() else {
            return Err(pos.error("missing value in action"));
        };
        self.next += 1;
        Ok(match &token.kind {
            Tok::Field(fields) => Operand::Dot(fields.clone()),
            Tok::Root(fields) => Operand::Root(fields.clone()),
            Tok::Str(s) => Operand::Literal(Value::String(s.clone())),
            Tok::Int(n) => Operand::Literal(Value::from(*n)),
            Tok::Ident(word) if word == "true" || word == "false" => {
                Operand::Literal(Value::Bool(word == "true"))
            }
            Tok::Ident(name) => {
                return Err(token.pos.error(format!(
                    "{name} used as an argument must be in parentheses: ({name} …)"
                )))
            }
            Tok::LParen => {
                let inner = self.pipeline(token.pos)?;
                if self.peek().is_none_or(|t| t.kind != Tok::RParen) {
                    return Err(self.here(token.pos).error("missing ) for this ("));
                }
                self.next += 1;
                let fields = match self.peek() {
                    Some(Token {
                        kind: Tok::Field(fields),
                        spaced: false,
                        ..
                    }) if !fields.is_empty() => {
                        self.next += 1;
                        fields.clone()
                    }
                    _ => Vec::new(),
                };
                Operand::Sub(Box::new(inner), fields)
            }
            Tok::RParen | Tok::Pipe => {
                return Err(token
                    .pos
                    .error(format!("missing value before {}", token.kind.describe())))
            }
        })
    }
}

// ---- execution ----

#[derive(Debug)]
struct Exec<'a> {
    root: &'a Value,
}

impl Exec<'_> {
    fn nodes(&self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Print(pipeline) => out.push_str(&text(&self.pipeline(pipeline, dot)?)),
                Node::Block {
                    kind,
                    value,
                    body,
                    otherwise,
                } => self.block(*kind, value, body, otherwise, dot, out)?,
            }
        }
        Ok(())
    }

    fn block(
        &self,
        which: BlockKind,
        value: &Pipeline,
        body: &[Node],
        otherwise: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        let evaluated = self.pipeline(value, dot)?;
        match which {
            BlockKind::If if truthy(&evaluated) => self.nodes(body, dot, out),
            BlockKind::With if truthy(&evaluated) => self.nodes(body, &evaluated, out),
            BlockKind::If | BlockKind::With => self.nodes(otherwise, dot, out),
            BlockKind::Range => {
                let items = match evaluated {
                    Value::Array(items) => items,
                    // Go ranges over a map in key order; sort in case serde_json keeps
                    // insertion order (its preserve_order feature is build-wide).
                    Value::Object(map) => {
                        let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                        entries.sort_by(|a, b| a.0.cmp(&b.0));
                        entries.into_iter().map(|(_, v)| v).collect()
                    }
                    Value::Null => Vec::new(),
                    other => {
                        return Err(value
                            .pos
                            .error(format!("range can't iterate over {}", kind(&other))))
                    }
                };
                if items.is_empty() {
                    self.nodes(otherwise, dot, out)?;
                }
                for item in &items {
                    self.nodes(body, item, out)?;
                }
                Ok(())
            }
        }
    }

    fn pipeline(&self, pipeline: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let pos = pipeline.pos;
        let mut value = match &pipeline.head {
            Command::Value(operand) => self.operand(operand, dot, pos)?,
            Command::Call(call) => self.call(call, None, dot, pos)?,
        };
        for stage in &pipeline.stages {
            value = self.call(stage, Some(value), dot, pos)?;
        }
        Ok(value)
    }

    fn operand(&self, operand: &Operand, dot: &Value, pos: Pos) -> Result<Value, TemplateError> {
        match operand {
            Operand::Dot(fields) => field_path(dot, fields, pos),
            Operand::Root(fields) => field_path(self.root, fields, pos),
            Operand::Literal(value) => Ok(value.clone()),
            Operand::Sub(inner, fields) => field_path(&self.pipeline(inner, dot)?, fields, pos),
        }
    }

    fn call(
        &self,
        call: &Call,
        piped: Option<Value>,
        dot: &Value,
        pos: Pos,
    ) -> Result<Value, TemplateError> {
        let mut args = call
            .args
            .iter()
            .map(|a| self.operand(a, dot, pos))
            .collect::<Result<Vec<_>, _>>()?;
        args.extend(piped);
        apply(call.func, args).map_err(|message| pos.error(message))
    }
}

fn field_path(start: &Value, fields: &[String], pos: Pos) -> Result<Value, TemplateError> {
    let mut value = start;
    for name in fields {
        value = match value {
            Value::Object(map) => map.get(name).unwrap_or(&NULL),
            Value::Null => &NULL,
            other => {
                return Err(pos.error(format!("can't evaluate field {name} in {}", kind(other))))
            }
        };
    }
    Ok(value.clone())
}

/// A function on its arguments, whose count the parser checked.
fn apply(func: Func, mut args: Vec<Value>) -> Result<Value, String> {
    let arg = args.remove(0);
    match func {
        Func::Json => Ok(Value::String(arg.to_string())),
        Func::Len => match &arg {
            // Bytes, like Go's len of a string.
            Value::String(s) => Ok(s.len().into()),
            Value::Array(items) => Ok(items.len().into()),
            Value::Object(map) => Ok(map.len().into()),
            other => Err(format!("len of {}", kind(other))),
        },
        Func::Upper | Func::Lower => match arg {
            Value::String(s) if func == Func::Upper => Ok(s.to_uppercase().into()),
            Value::String(s) => Ok(s.to_lowercase().into()),
            other => Err(format!(
                "{} needs a string, got {}",
                func.name(),
                kind(&other)
            )),
        },
        Func::Join => match (&arg, &args[0]) {
            (Value::Array(items), Value::String(sep)) => {
                Ok(items.iter().map(text).collect::<Vec<_>>().join(sep).into())
            }
            (list, sep) => Err(format!(
                "join needs an array and a string, got {} and {}",
                kind(list),
                kind(sep)
            )),
        },
        Func::Index => args.iter().try_fold(arg, index),
        Func::Eq => {
            for other in &args {
                if equal(&arg, other)? {
                    return Ok(true.into());
                }
            }
            Ok(false.into())
        }
        Func::Ne => Ok((!equal(&arg, &args[0])?).into()),
        Func::Lt | Func::Le | Func::Gt | Func::Ge => {
            let order = compare(&arg, &args[0])?;
            Ok(match func {
                Func::Lt => order.is_lt(),
                Func::Le => order.is_le(),
                Func::Gt => order.is_gt(),
                _ => order.is_ge(),
            }
            .into())
        }
        Func::Printf => match arg {
            Value::String(format) => printf(&format, &args),
            other => Err(format!(
                "printf needs a format string, got {}",
                kind(&other)
            )),
        },
        Func::Not => Ok((!truthy(&arg)).into()),
        // Go's and/or return an argument, not a bool: the first that decides, else the last.
        Func::And => Ok(std::iter::once(arg)
            .chain(args)
            .reduce(|acc, next| if truthy(&acc) { next } else { acc })
            .expect("at least one argument")),
        Func::Or => Ok(std::iter::once(arg)
            .chain(args)
            .reduce(|acc, next| if truthy(&acc) { acc } else { next })
            .expect("at least one argument")),
    }
}

/// Go's `eq` on basic values: strings, numbers (by value: 1 equals 1.0), booleans and null
/// compare; different kinds, maps and arrays are an error, as in Go.
fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Null, Value::Null) => Ok(true),
        (Value::Number(x), Value::Number(y)) => Ok(match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        }),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            Err(format!("can't compare {} with {}", kind(a), kind(b)))
        }
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            kind(a),
            kind(b)
        )),
    }
}

/// Go's `lt`/`le`/`gt`/`ge`: numbers by value, strings by bytes; anything else is an error.
fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Ok(x.cmp(&y)),
            _ => x
                .as_f64()
                .zip(y.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y))
                .ok_or_else(|| format!("can't order {x} and {y}")),
        },
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            kind(a),
            kind(b)
        )),
    }
}

/// The part of Go's `printf` inspect templates use: `%v` and `%s` (a value as `{{…}}` prints
/// it), `%d`, `%q` (a quoted string), `%t` and `%%`, each with an optional `-` and width.
fn printf(format: &str, args: &[Value]) -> Result<Value, String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let left = chars.next_if_eq(&'-').is_some();
        let mut width = 0usize;
        while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
            width = width * 10 + d as usize;
            chars.next();
        }
        let verb = chars
            .next()
            .ok_or("printf: format ends in the middle of a verb")?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args
            .next()
            .ok_or_else(|| format!("printf: no argument left for %{verb}"))?;
        let formatted = match (verb, arg) {
            ('v' | 's', value) => text(value),
            ('d', Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            ('t', Value::Bool(b)) => b.to_string(),
            ('q', Value::String(s)) => Value::String(s.clone()).to_string(),
            (verb, value) if "vsdtq".contains(verb) => {
                return Err(format!("printf: %{verb} can't format {}", kind(value)))
            }
            (verb, _) => return Err(format!("printf: unsupported verb %{verb}")),
        };
        let pad = " ".repeat(width.saturating_sub(formatted.chars().count()));
        if left {
            out.push_str(&formatted);
            out.push_str(&pad);
        } else {
            out.push_str(&pad);
            out.push_str(&formatted);
        }
    }
    if args.next().is_some() {
        return Err("printf: more arguments than verbs".to_string());
    }
    Ok(out.into())
}

fn index(collection: Value, key: &Value) -> Result<Value, String> {
    match (collection, key) {
        (Value::Object(mut map), Value::String(k)) => Ok(map.remove(k).unwrap_or(Value::Null)),
        (Value::Array(mut items), Value::Number(n)) => {
            let len = items.len();
            match n.as_u64().and_then(|i| usize::try_from(i).ok()) {
                Some(i) if i < len => Ok(items.swap_remove(i)),
                _ => Err(format!("index {n} out of range for an array of {len}")),
            }
        }
        (Value::Null, _) => Ok(Value::Null),
        (collection, key) => Err(format!(
            "can't index {} with {}",
            kind(&collection),
            kind(key)
        )),
    }
}

/// A value as `{{…}}` prints it.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => NO_VALUE.to_string(),
        other => other.to_string(),
    }
}

/// Go's truth: false, 0, "", nil and empty arrays and maps are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, data: &Value) -> String {
        Template::parse(template)
            .unwrap_or_else(|e| panic!("parse {template:?}: {e}"))
            .render(data)
            .unwrap_or_else(|e| panic!("render {template:?}: {e}"))
    }

    fn parse_error(template: &str) -> String {
        Template::parse(template).expect_err(template).to_string()
    }

    fn render_error(template: &str, data: &Value) -> String {
        Template::parse(template)
            .unwrap_or_else(|e| panic!("parse {template:?}: {e}"))
            .render(data)
            .expect_err(template)
            .to_string()
    }

    /// Trimmed from a real `docker inspect` of a container on two networks.
    fn container() -> Value {
        json!({
            "Id": "4f9a1c0d2b7e",
            "Name": "/web",
            "RestartCount": 0,
            "State": {"Status": "running", "Running": true, "Paused": false, "Pid": 4242, "ExitCode": 0},
            "Config": {
                "Hostname": "4f9a1c0d2b7e",
                "Env": ["PATH=/usr/bin:/bin", "MODE=prod"],
                "Cmd": ["httpd", "-f"],
                "Labels": {"team": "blue", "com.example.tier": "front"}
            },
            "HostConfig": {"NetworkMode": "lab", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}},
            "Mounts": [],
            "NetworkSettings": {
                "IPAddress": "",
                "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
                "Networks": {
                    "lab": {"IPAddress": "10.30.0.2", "IPPrefixLen": 24, "Aliases": ["web", "www"], "Gateway": "10.30.0.1"},
                    "bridge": {"IPAddress": "172.17.0.2", "IPPrefixLen": 16, "Aliases": null, "Gateway": "172.17.0.1"}
                }
            }
        })
    }

    #[test]
    fn text_dot_and_fields() {
        let c = container();
        assert_eq!(render("plain text", &c), "plain text");
        assert_eq!(render("", &c), "");
        assert_eq!(render("{{.Name}}", &c), "/web");
        assert_eq!(
            render("id={{.Id}} pid={{.State.Pid}}", &c),
            "id=4f9a1c0d2b7e pid=4242"
        );
        assert_eq!(
            render("{{.State.Running}} {{.State.Paused}}", &c),
            "true false"
        );
        assert_eq!(render("{{.}}", &json!("just a string")), "just a string");
        assert_eq!(render("{{.}}", &json!(1.5)), "1.5");
        // Unicode identifiers and text survive.
        assert_eq!(render("é {{.ñ}} ✓", &json!({"ñ": "ü"})), "é ü ✓");
        // A lone "}}" is text, as in Go.
        assert_eq!(render("a}}b", &c), "a}}b");
    }

    #[test]
    fn missing_and_null_print_no_value() {
        let c = container();
        assert_eq!(render("{{.Nope}}", &c), "<no value>");
        assert_eq!(render("{{.Nope.Deeper}}", &c), "<no value>");
        assert_eq!(
            render("{{.NetworkSettings.Networks.bridge.Aliases}}", &c),
            "<no value>"
        );
        assert_eq!(render("{{.}}", &Value::Null), "<no value>");
        assert_eq!(render("{{json .Nope}}", &c), "null");
    }

    #[test]
    fn maps_and_arrays_print_as_compact_json() {
        let c = container();
        assert_eq!(render("{{.Config.Cmd}}", &c), r#"["httpd","-f"]"#);
        assert_eq!(
            render("{{.State}}", &c),
            r#"{"ExitCode":0,"Paused":false,"Pid":4242,"Running":true,"Status":"running"}"#
        );
    }

    #[test]
    fn field_of_a_non_map_is_an_error() {
        let c = container();
        assert_eq!(
            render_error("x {{.Name.First}}", &c),
            "template error at line 1, column 3: can't evaluate field First in a string"
        );
        assert!(render_error("{{.Config.Cmd.X}}", &c).contains("in an array"));
    }

    #[test]
    fn json_function() {
        let c = container();
        assert_eq!(
            render("{{json .Config.Labels}}", &c),
            r#"{"com.example.tier":"front","team":"blue"}"#
        );
        assert_eq!(render("{{json .Name}}", &c), r#""/web""#);
        assert_eq!(render("{{json .State.Pid}}", &c), "4242");
        let whole = render("{{json .}}", &c);
        assert_eq!(serde_json::from_str::<Value>(&whole).unwrap(), c);
        assert!(!whole.contains('\n'));
    }

    #[test]
    fn index_maps_and_arrays() {
        let c = container();
        assert_eq!(render(r#"{{index .Config.Labels "team"}}"#, &c), "blue");
        assert_eq!(
            render(r#"{{index .Config.Labels "com.example.tier"}}"#, &c),
            "front"
        );
        assert_eq!(
            render(r#"{{index .Config.Labels "none"}}"#, &c),
            "<no value>"
        );
        assert_eq!(render("{{index .Config.Cmd 0}}", &c), "httpd");
        assert_eq!(render("{{index .Config.Cmd 1}}", &c), "-f");
        // Several keys walk down, like Go's index.
        assert_eq!(
            render(
                r#"{{index .NetworkSettings.Ports "80/tcp" 0 "HostPort"}}"#,
                &c
            ),
            "8080"
        );
        // A raw string key, and indexing null (no labels at all) gives <no value>.
        assert_eq!(render("{{index .Config.Labels `team`}}", &c), "blue");
        assert_eq!(render(r#"{{index .Nope "x"}}"#, &c), "<no value>");
        assert!(render_error("{{index .Config.Cmd 2}}", &c)
            .contains("index 2 out of range for an array of 2"));
        assert!(render_error("{{index .Config.Cmd -1}}", &c).contains("out of range"));
        assert!(render_error(r#"{{index .Config.Cmd "a"}}"#, &c)
            .contains("can't index an array with a string"));
        assert!(render_error("{{index .Config.Labels 0}}", &c)
            .contains("can't index a map with a number"));
    }

    #[test]
    fn parentheses_and_fields_after_them() {
        let c = container();
        assert_eq!(
            render(
                r#"{{(index .NetworkSettings.Networks "lab").IPAddress}}"#,
                &c
            ),
            "10.30.0.2"
        );
        assert_eq!(render("{{len (index .Config.Cmd 0)}}", &c), "5");
        assert_eq!(
            render(
                r#"{{json (index .NetworkSettings.Networks "lab").Aliases}}"#,
                &c
            ),
            r#"["web","www"]"#
        );
    }

    #[test]
    fn pipes_pass_the_value_as_the_last_argument() {
        let c = container();
        assert_eq!(render("{{.State.Status | upper}}", &c), "RUNNING");
        assert_eq!(
            render("{{.Config.Labels | json}}", &c),
            render("{{json .Config.Labels}}", &c)
        );
        assert_eq!(render("{{.Config.Cmd | len}}", &c), "2");
        assert_eq!(
            render(r#"{{"team" | index .Config.Labels | upper}}"#, &c),
            "BLUE"
        );
    }

    #[test]
    fn len_upper_lower_join() {
        let c = container();
        assert_eq!(render("{{len .Config.Env}}", &c), "2");
        assert_eq!(render("{{len .Config.Labels}}", &c), "2");
        assert_eq!(render("{{len .Name}}", &c), "4");
        assert_eq!(
            render("{{upper .Name}} {{lower \"MiXed\"}}", &c),
            "/WEB mixed"
        );
        assert_eq!(render(r#"{{join .Config.Cmd " "}}"#, &c), "httpd -f");
        assert_eq!(
            render(r#"{{join .Config.Env ","}}"#, &c),
            "PATH=/usr/bin:/bin,MODE=prod"
        );
        assert_eq!(render(r#"{{join .Mounts ","}}"#, &c), "");
        assert!(render_error("{{len .State.Pid}}", &c).contains("len of a number"));
        assert!(render_error("{{upper .State.Pid}}", &c).contains("upper needs a string"));
        assert!(render_error(r#"{{join .Name ","}}"#, &c).contains("join needs an array"));
    }

    #[test]
    fn range_over_arrays_and_maps() {
        let c = container();
        // Maps in key order, with . rebound to each value.
        assert_eq!(
            render(
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                &c
            ),
            "172.17.0.2 10.30.0.2 "
        );
        assert_eq!(
            render("{{range .Config.Cmd}}[{{.}}]{{end}}", &c),
            "[httpd][-f]"
        );
        // $ is the whole document inside range.
        assert_eq!(
            render("{{range .Config.Cmd}}{{$.Name}}:{{.}} {{end}}", &c),
            "/web:httpd /web:-f "
        );
        assert_eq!(render("{{range .Mounts}}x{{else}}none{{end}}", &c), "none");
        assert_eq!(render("{{range .Nope}}x{{else}}none{{end}}", &c), "none");
        assert_eq!(render("{{range .Mounts}}x{{end}}", &c), "");
        assert!(render_error("{{range .Name}}{{end}}", &c)
            .contains("range can't iterate over a string"));
    }

    #[test]
    fn nested_blocks() {
        let c = container();
        let t = "{{range .NetworkSettings.Networks}}{{if .Aliases}}{{range .Aliases}}{{.}},{{end}}\
                 {{else}}-{{end}};{{end}}";
        assert_eq!(render(t, &c), "-;web,www,;");
        let t = "{{range $.Config.Cmd}}{{range $.Config.Cmd}}{{.}}{{end}}|{{end}}";
        assert_eq!(render(t, &c), "httpd-f|httpd-f|");
    }

    #[test]
    fn if_else_and_truthiness() {
        let c = container();
        assert_eq!(
            render("{{if .State.Running}}up{{else}}down{{end}}", &c),
            "up"
        );
        assert_eq!(render("{{if .State.Paused}}paused{{end}}", &c), "");
        let cases = [
            (json!(false), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(""), false),
            (Value::Null, false),
            (json!([]), false),
            (json!({}), false),
            (json!(true), true),
            (json!(-1), true),
            (json!(0.5), true),
            (json!("0"), true),
            (json!([0]), true),
            (json!({"a": null}), true),
        ];
        for (value, want) in cases {
            let got = render("{{if .}}T{{else}}F{{end}}", &value);
            assert_eq!(got, if want { "T" } else { "F" }, "{value}");
        }
        let t = r#"{{if .A}}a{{else if .B}}b{{else if .C}}c{{else}}none{{end}}"#;
        assert_eq!(render(t, &json!({"A": 1, "B": 1})), "a");
        assert_eq!(render(t, &json!({"B": 1})), "b");
        assert_eq!(render(t, &json!({"C": 1})), "c");
        assert_eq!(render(t, &json!({})), "none");
        assert_eq!(
            render("{{if len .Config.Env}}has env{{end}}", &c),
            "has env"
        );
        assert_eq!(render("{{if true}}t{{end}}{{if false}}f{{end}}", &c), "t");
    }

    #[test]
    fn trim_markers() {
        let c = container();
        assert_eq!(render("a  \n {{- .Name -}} \n\t b", &c), "a/webb");
        assert_eq!(render("a {{- .Name}} b", &c), "a/web b");
        assert_eq!(render("a {{.Name -}} b", &c), "a /webb");
        let t = "{{range .Config.Cmd -}}\n  {{.}}\n{{- end}}";
        assert_eq!(render(t, &c), "httpd-f");
        // Without a space "-" starts a number: {{-3}} prints -3.
        assert_eq!(render("x {{-3}}", &c), "x -3");
    }

    #[test]
    fn literals() {
        let c = container();
        assert_eq!(render(r#"{{"a\tb\n\"q\"\\"}}"#, &c), "a\tb\n\"q\"\\");
        assert_eq!(render("{{`raw \\n`}}", &c), "raw \\n");
        assert_eq!(render("{{42}} {{true}}", &c), "42 true");
    }

    #[test]
    fn malformed_templates_name_the_problem_and_place() {
        for (template, want) in [
            ("{{.Name", "line 1, column 1: unclosed action"),
            ("ab\ncd {{.Name}} {{", "line 2, column 14: unclosed action"),
            (
                "{{foo .Name}}",
                "line 1, column 3: unknown function \"foo\"",
            ),
            (
                "x{{end}}",
                "line 1, column 2: {{end}} without an {{if}} or {{range}}",
            ),
            ("{{else}}", "{{else}} outside an {{if}} or {{range}}"),
            (
                "{{if .A}}a",
                "line 1, column 1: missing {{end}} for this {{if}}",
            ),
            (
                "{{range .A}}{{if .B}}{{end}}",
                "missing {{end}} for this {{range}}",
            ),
            (
                "{{if .A}}{{else}}{{else}}{{end}}",
                "column 18: a second {{else}}",
            ),
            ("{{if .A}}{{else}}", "missing {{end}} for this {{if}}"),
            ("{{if .A}}{{else if .B}}", "missing {{end}} for this {{if}}"),
            ("{{}}", "missing value in action"),
            ("{{if}}{{end}}", "missing value in action"),
            ("{{.A .B}}", "column 6: unexpected .B in action"),
            ("{{json}}", "json takes one argument, got 0"),
            ("{{json .A .B}}", "json takes one argument, got 2"),
            (
                "{{index .A}}",
                "index takes a map or array and at least one key",
            ),
            ("{{join .A}}", "join takes a list and a separator, got 1"),
            ("{{.A | .B}}", "only a function"),
            (
                "{{len json .A}}",
                "json used as an argument must be in parentheses",
            ),
            ("{{(len .A}}", "missing ) for this ("),
            ("{{len .A)}}", "unexpected ) in action"),
            ("{{.A.}}", "a field name must follow '.'"),
            ("{{\"abc}}", "unterminated string"),
            ("{{`abc}}", "unterminated raw string"),
            ("{{\"a\\qb\"}}", "unsupported escape \\q"),
            ("{{1.5}}", "bad number \"1.5\""),
            ("{{$x}}", "variables other than $ are not supported"),
            ("{{with .A}}", "missing {{end}} for this {{with}}"),
            ("{{lt 1}}", "lt takes two values, got 1"),
            (
                "{{printf}}",
                "printf takes a format and its arguments, got 0",
            ),
            ("{{template \"x\"}}", "the template action is not supported"),
            ("{{end 1}}", "unexpected 1 after end"),
            ("{{if .A}}{{else .B}}{{end}}", "unexpected .B after else"),
            ("{{.A # .B}}", "unexpected '#' in action"),
        ] {
            let got = parse_error(template);
            assert!(got.contains(want), "{template:?}: {got:?} lacks {want:?}");
        }
    }

    #[test]
    fn with_sets_dot_and_falls_back_to_else() {
        let data = json!({"A": {"B": "x"}, "E": "", "N": null});
        assert_eq!(render("{{with .A}}[{{.B}}]{{end}}", &data), "[x]");
        assert_eq!(
            render("{{with .E}}yes{{else}}no {{.A.B}}{{end}}", &data),
            "no x"
        );
        assert_eq!(render("{{with .N}}yes{{end}}", &data), "");
        assert_eq!(render("{{with .A}}{{$.E}}{{.B}}{{end}}", &data), "x");
    }

    #[test]
    fn ordering_and_printf() {
        let data = json!({"N": 3, "F": 2.5, "S": "web", "T": true, "L": ["a", "b"]});
        let r = |t: &str| render(t, &data);
        assert_eq!(
            r("{{lt .N 4}} {{le .N 3}} {{gt .N 3}} {{ge .F 2}}"),
            "true true false true"
        );
        assert_eq!(r(r#"{{lt .S "x"}} {{gt "b" "a"}}"#), "true true");
        assert_eq!(r(r#"{{printf "%s:%d" .S .N}}"#), "web:3");
        assert_eq!(
            r(r#"{{printf "%-5s|%3d|%q|%t|%v|100%%" .S .N .S .T .L}}"#),
            r#"web  |  3|"web"|true|["a","b"]|100%"#
        );
        assert_eq!(r(r#"{{.S | printf "name=%s"}}"#), "name=web");
        for (template, want) in [
            (
                r#"{{lt .S 1}}"#,
                "incompatible types for comparison: a string and a number",
            ),
            (r#"{{printf "%d" .S}}"#, "%d can't format a string"),
            (r#"{{printf "%s %s" .S}}"#, "no argument left for %s"),
            (r#"{{printf "%s" .S .N}}"#, "more arguments than verbs"),
            (r#"{{printf "%x" .N}}"#, "unsupported verb %x"),
            (r#"{{printf .N}}"#, "printf needs a format string"),
        ] {
            let got = render_error(template, &data);
            assert!(got.contains(want), "{template:?}: {got:?} lacks {want:?}");
        }
    }

    #[test]
    fn comparisons_and_logic_follow_go() {
        let c = container();
        let r = |t: &str| render(t, &c);
        assert_eq!(
            r(r#"{{if eq .State.Status "running"}}up{{else}}down{{end}}"#),
            "up"
        );
        assert_eq!(r(r#"{{eq .State.Status "exited" "running"}}"#), "true");
        assert_eq!(r(r#"{{.State.Status | eq "exited"}}"#), "false");
        assert_eq!(
            r("{{eq .State.Pid 4242}} {{ne .State.ExitCode 0}}"),
            "true false"
        );
        assert_eq!(r("{{eq .Missing .AlsoMissing}}"), "true");
        assert_eq!(r("{{not .State.Paused}} {{not .Config.Env}}"), "true false");
        // and/or return the deciding argument, not a bool.
        assert_eq!(r(r#"{{and .State.Running "yes"}}"#), "yes");
        assert_eq!(r(r#"{{and .State.Paused "yes"}}"#), "false");
        assert_eq!(r(r#"{{or .NetworkSettings.IPAddress "none"}}"#), "none");
        assert_eq!(r("{{or .Name .Id}}"), "/web");
        assert!(render_error(r#"{{eq .State.Pid "4242"}}"#, &c).contains("incompatible types"));
        assert!(render_error(r#"{{eq .Config.Env "x"}}"#, &c).contains("can't compare"));
        assert!(parse_error("{{ne 1}}").contains("ne takes two values, got 1"));
        assert!(parse_error("{{eq 1}}").contains("eq takes"));
    }

    #[test]
    fn errors_are_invalid_requests() {
        let err = Template::parse("{{").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn docker_network_inspect_examples() {
        let network = json!({
            "Name": "lab",
            "Id": "9d5e1f",
            "Driver": "bridge",
            "IPAM": {"Driver": "default", "Options": {}, "Config": [
                {"Subnet": "10.30.0.0/24", "Gateway": "10.30.0.1"},
                {"Subnet": "fd00:30::/64"}
            ]},
            "Containers": {
                "b2": {"Name": "db", "IPv4Address": "10.30.0.3/24"},
                "a1": {"Name": "web", "IPv4Address": "10.30.0.2/24"}
            },
            "Options": {"com.docker.network.bridge.name": "br-lab"},
            "Labels": {"team": "blue"}
        });
        assert_eq!(
            render("{{range .IPAM.Config}}{{.Subnet}} {{end}}", &network),
            "10.30.0.0/24 fd00:30::/64 "
        );
        assert_eq!(
            render("{{json .Options}}", &network),
            r#"{"com.docker.network.bridge.name":"br-lab"}"#
        );
        assert_eq!(
            render(
                "{{range .Containers}}{{.Name}}={{.IPv4Address}}\n{{end}}",
                &network
            ),
            "web=10.30.0.2/24\ndb=10.30.0.3/24\n"
        );
        assert_eq!(
            render(
                r#"{{(index .IPAM.Config 0).Gateway}} {{index .Labels "team"}}"#,
                &network
            ),
            "10.30.0.1 blue"
        );
    }
}
