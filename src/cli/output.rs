//! Output shapes shared by commands: `--format table|json`, aligned tables and the inspect
//! commands' JSON or `-f TEMPLATE`.

use std::io::Write;

use serde::Serialize;

use crate::cli::template::{Template, TemplateError};
use crate::error::{Error, ErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Human-readable table or text
    #[default]
    Table,
    /// JSON, for scripts
    Json,
}

/// Pretty JSON followed by a newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

/// The value of an inspect command's `-f/--format`: a template, or `json` (Docker's shorthand
/// for `{{json .}}`). Used as clap's value parser, so a bad template is a usage error (exit 2)
/// reported before any request.
pub fn inspect_format(text: &str) -> Result<Template, TemplateError> {
    Template::parse(if text == "json" { "{{json .}}" } else { text })
}

/// What the inspect commands print: without a template, one pretty JSON array (Docker's
/// output); with one, each object rendered and followed by a newline.
pub fn print_inspect<T: Serialize>(items: &[T], format: Option<&Template>) -> Result<(), Error> {
    let Some(template) = format else {
        print_json(items);
        return Ok(());
    };
    let mut out = std::io::stdout().lock();
    for item in items {
        let value = serde_json::to_value(item).map_err(|e| {
            Error::msg(ErrorKind::Internal, format!("encode for the template: {e}"))
        })?;
        let _ = writeln!(out, "{}", template.render(&value)?);
    }
    Ok(())
}

/// Render rows under headers, columns padded to their widest cell (three spaces apart,
/// like docker's tables).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == headers.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}   ", w = *w));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let t = table(
            &["NAME", "ID"],
            &[
                vec!["a".into(), "1".into()],
                vec!["long-name".into(), "2".into()],
            ],
        );
        assert_eq!(t, "NAME        ID\na           1\nlong-name   2\n");
    }

    #[test]
    fn inspect_format_json_is_one_compact_document() {
        let doc = serde_json::json!({"Name": "lab", "Labels": {"team": "a"}});
        let json = inspect_format("json").unwrap().render(&doc).unwrap();
        assert_eq!(json, r#"{"Labels":{"team":"a"},"Name":"lab"}"#);
        let name = inspect_format("{{.Name}}").unwrap().render(&doc).unwrap();
        assert_eq!(name, "lab");
    }

    #[test]
    fn a_bad_inspect_template_is_a_usage_error() {
        use clap::Parser;
        for args in [
            ["warren", "inspect", "-f", "{{.Name", "web"],
            ["warren", "network", "inspect", "--format={{end}}", "lab"],
        ] {
            let err = crate::cli::Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.to_string().contains("template error at line 1"),
                "{err}"
            );
        }
    }
}
