//! Which device nodes a container may open or create: allow rules in Docker's
//! `--device-cgroup-rule` syntax, Docker's default list, `--device` host nodes, and their
//! enforcement. With a cgroup v2 hierarchy (pure or hybrid) the rules become a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's v2 directory — the kernel
//! runs it on every open and mknod of a device node by a task in that cgroup, default deny.
//! Without one, the v1 `devices` controller gets the same rules as text.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::SFlag;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, HasKind};

/// Docker's default allow list: what runc grants every non-privileged container.
const DOCKER_DEFAULT: [&str; 12] = [
    "c *:* m",      // mknod any char device (opening it is another matter)
    "b *:* m",      // mknod any block device
    "c 1:3 rwm",    // /dev/null
    "c 1:8 rwm",    // /dev/random
    "c 1:7 rwm",    // /dev/full
    "c 5:0 rwm",    // /dev/tty
    "c 1:5 rwm",    // /dev/zero
    "c 1:9 rwm",    // /dev/urandom
    "c 5:1 rwm",    // /dev/console
    "c 136:* rwm",  // /dev/pts/*
    "c 5:2 rwm",    // /dev/ptmx
    "c 10:200 rwm", // /dev/net/tun
];

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid device cgroup rule {rule:?}: {reason}")]
    ParseRule { rule: String, reason: String },
    #[error("invalid device permissions {access:?}: want a non-empty subset of \"rwm\"")]
    ParseAccess { access: String },
    #[error("bad format for path: {spec}")]
    DeviceSpec { spec: String },
    #[error("bad mode specified: {mode}")]
    DeviceMode { mode: String },
    #[error("{path} is not an absolute path")]
    NotAbsolute { path: String },
    #[error("error gathering device information while adding custom device {path:?}")]
    GatherDevice {
        path: String,
        #[source]
        source: LookupError,
    },
    #[error("write {line:?} to {}", file.display())]
    WriteV1 {
        file: PathBuf,
        line: String,
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for DeviceError {
    fn kind(&self) -> ErrorKind {
        match self {
            DeviceError::ParseRule { .. }
            | DeviceError::ParseAccess { .. }
            | DeviceError::DeviceSpec { .. }
            | DeviceError::DeviceMode { .. }
            | DeviceError::NotAbsolute { .. }
            | DeviceError::GatherDevice { .. } => ErrorKind::Invalid,
            DeviceError::WriteV1 { .. } => ErrorKind::Internal,
        }
    }
}

/// Why a `--device` host path gave no device, in Docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// stat(2) failed; printed the way Go prints an errno ("no such file or directory").
    #[error("{}", go_errno_text(*.0))]
    Stat(Errno),
    /// Neither a char nor a block device (FIFOs, which runc also passes, are not supported),
    /// nor a directory holding any.
    #[error("not a device node")]
    NotADevice,
}

/// Go's errno strings are the C library's with a lower-case first letter.
fn go_errno_text(errno: Errno) -> String {
    let text = errno.desc();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The kind of device a rule or node is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceType {
    #[serde(rename = "c")]
    Char,
    #[serde(rename = "b")]
    Block,
    /// Both kinds (rules only).
    #[serde(rename = "a")]
    All,
}

impl DeviceType {
    fn letter(self) -> char {
        match self {
            DeviceType::Char => 'c',
            DeviceType::Block => 'b',
            DeviceType::All => 'a',
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// What a rule allows on its devices: open for reading, open for writing, mknod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl Access {
    pub const ALL: Access = Access {
        read: true,
        write: true,
        mknod: true,
    };

    /// A non-empty subset of "rwm" in any order, each letter at most once (Docker's
    /// `validDeviceMode`).
    pub fn parse(text: &str) -> Result<Access, DeviceError> {
        let bad = || DeviceError::ParseAccess {
            access: text.to_string(),
        };
        let mut access = Access::default();
        for c in text.chars() {
            let bit = match c {
                'r' => &mut access.read,
                'w' => &mut access.write,
                'm' => &mut access.mknod,
                _ => return Err(bad()),
            };
            if *bit {
                return Err(bad());
            }
            *bit = true;
        }
        if access.is_empty() {
            return Err(bad());
        }
        Ok(access)
    }

    pub fn is_empty(self) -> bool {
        !(self.read || self.write || self.mknod)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, letter) in [(self.read, "r"), (self.write, "w"), (self.mknod, "m")] {
            if on {
                f.write_str(letter)?;
            }
        }
        Ok(())
    }
}

impl From<Access> for String {
    fn from(access: Access) -> String {
        access.to_string()
    }
}

impl TryFrom<String> for Access {
    type Error = DeviceError;
    fn try_from(text: String) -> Result<Access, DeviceError> {
        Access::parse(&text)
    }
}

/// An allow rule: devices of `kind` with these numbers (`None` is `*`) may be used for
/// `access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceRule {
    pub kind: DeviceType,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    /// Docker's `--device-cgroup-rule` syntax: "c 1:3 rwm", "b *:* m", "a *:* rwm" ("a" is
    /// both kinds; major and minor are decimal numbers or `*`; access a non-empty subset of
    /// "rwm"). Errors name the rule.
    pub fn parse(text: &str) -> Result<DeviceRule, DeviceError> {
        let bad = |reason: &str| DeviceError::ParseRule {
            rule: text.to_string(),
            reason: reason.to_string(),
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [kind, numbers, access] = fields[..] else {
            return Err(bad("want TYPE MAJOR:MINOR ACCESS, e.g. \"c 1:3 rwm\""));
        };
        let kind = match kind {
            "c" => DeviceType::Char,
            "b" => DeviceType::Block,
            "a" => DeviceType::All,
            _ => return Err(bad("the type must be c, b or a")),
        };
        let Some((major, minor)) = numbers.split_once(':') else {
            return Err(bad("want MAJOR:MINOR"));
        };
        let number = |s: &str, what: &str| -> Result<Option<u32>, DeviceError> {
            if s == "*" {
                return Ok(None);
            }
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("the {what} number must be digits or *")));
            }
            s.parse()
                .map(Some)
                .map_err(|_| bad(&format!("the {what} number is too large")))
        };
        let major = number(major, "major")?;
        let minor = number(minor, "minor")?;
        let access = Access::parse(access)
            .map_err(|_| bad("the access must be a non-empty subset of rwm"))?;
        Ok(DeviceRule {
            kind,
            major,
            minor,
            access,
        })
    }

    /// The v1 `devices.allow` line (`c 1:3 rwm`), also Docker's spelling of the rule.
    pub fn to_v1_line(&self) -> String {
        let number = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            number(self.major),
            number(self.minor),
            self.access
        )
    }

    /// Every device, every access: `a *:* rwm`.
    fn allows_everything(&self) -> bool {
        self.kind == DeviceType::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == Access::ALL
    }

    /// The lines that say this rule to the v1 controller. It reads any `a` line as "every
    /// device, every access" whatever follows the letter, so a narrower `a` rule goes in as
    /// its char and block halves. A rule without access allows nothing and has no line.
    fn v1_lines(&self) -> Vec<String> {
        if self.access.is_empty() {
            Vec::new()
        } else if self.kind == DeviceType::All && !self.allows_everything() {
            [DeviceType::Char, DeviceType::Block]
                .map(|kind| DeviceRule { kind, ..*self }.to_v1_line())
                .to_vec()
        } else {
            vec![self.to_v1_line()]
        }
    }
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_v1_line())
    }
}

/// Docker's default allow list (what runc grants every non-privileged container).
pub fn default_rules() -> Vec<DeviceRule> {
    DOCKER_DEFAULT
        .iter()
        .map(|r| DeviceRule::parse(r).expect("built-in rule"))
        .collect()
}

/// A host device node to recreate in the container's /dev (`--device`), with what the
/// container may do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// The node that was looked up (symlinks resolved).
    pub host_path: PathBuf,
    pub container_path: String,
    /// Char or Block.
    pub kind: DeviceType,
    pub major: u32,
    pub minor: u32,
    /// Permission bits only (`st_mode & 0o7777`); the file type is `kind`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The cgroup access granted for it (Docker's default "rwm").
    pub permissions: Access,
}

impl DeviceNode {
    /// The allow rule for exactly this node.
    pub fn rule(&self) -> DeviceRule {
        DeviceRule {
            kind: self.kind,
            major: Some(self.major),
            minor: Some(self.minor),
            access: self.permissions,
        }
    }
}

/// Docker's `--device` value: "HOST", "HOST:CONTAINER", "HOST:CONTAINER:PERMS" or
/// "HOST:PERMS" (the second field is permissions when it is a valid "rwm" subset). The host
/// path is looked up now; a directory contributes every device node below it, recursively
/// and without following symlinks (Docker's walk), with the container path rebased.
pub fn parse_device(spec: &str) -> Result<Vec<DeviceNode>, DeviceError> {
    let fields: Vec<&str> = spec.split(':').collect();
    let bad_format = || DeviceError::DeviceSpec {
        spec: spec.to_string(),
    };
    let (host, container, permissions) = match fields[..] {
        [host] => (host, host, None),
        [host, second] => match Access::parse(second) {
            Ok(access) => (host, host, Some(access)),
            Err(_) => (host, second, None),
        },
        [host, container, mode] => {
            let access = Access::parse(mode).map_err(|_| DeviceError::DeviceMode {
                mode: mode.to_string(),
            })?;
            (host, container, Some(access))
        }
        _ => return Err(bad_format()),
    };
    if host.is_empty() {
        return Err(bad_format());
    }
    // Docker checks only the container side; a relative host path would be looked up in
    // the agent's working directory, which never means anything to the user.
    for path in [host, container] {
        if !path.starts_with('/') {
            return Err(DeviceError::NotAbsolute {
                path: path.to_string(),
            });
        }
    }
    let permissions = permissions.unwrap_or(Access::ALL);
    let gather = |source| DeviceError::GatherDevice {
        path: host.to_string(),
        source,
    };

    let host_path = Path::new(host);
    let resolved = match fs::symlink_metadata(host_path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(host_path).unwrap_or_else(|_| host_path.to_path_buf())
        }
        _ => host_path.to_path_buf(),
    };
    match node_at(&resolved, container.to_string(), permissions) {
        Ok(node) => Ok(vec![node]),
        Err(LookupError::NotADevice) if resolved.is_dir() => {
            let mut nodes = Vec::new();
            nodes_below(&resolved, &resolved, container, permissions, &mut nodes);
            if nodes.is_empty() {
                return Err(gather(LookupError::NotADevice));
            }
            Ok(nodes)
        }
        Err(e) => Err(gather(e)),
    }
}

/// The device node at `path` (lstat: a symlink is not a device).
fn node_at(
    path: &Path,
    container_path: String,
    permissions: Access,
) -> Result<DeviceNode, LookupError> {
    let st = nix::sys::stat::lstat(path).map_err(LookupError::Stat)?;
    let kind = match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFCHR => DeviceType::Char,
        SFlag::S_IFBLK => DeviceType::Block,
        _ => return Err(LookupError::NotADevice),
    };
    Ok(DeviceNode {
        host_path: path.to_path_buf(),
        container_path,
        kind,
        major: libc::major(st.st_rdev),
        minor: libc::minor(st.st_rdev),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        permissions,
    })
}

/// Every device node below `dir`, in name order. Unreadable entries are skipped, as
/// Docker's walk skips them.
fn nodes_below(
    dir: &Path,
    host_root: &Path,
    container_root: &str,
    permissions: Access,
    out: &mut Vec<DeviceNode>,
) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            nodes_below(&path, host_root, container_root, permissions, out);
            continue;
        }
        let Ok(relative) = path.strip_prefix(host_root) else {
            continue;
        };
        let container_path = format!(
            "{}/{}",
            container_root.trim_end_matches('/'),
            relative.display()
        );
        if let Ok(node) = node_at(&path, container_path, permissions) {
            out.push(node);
        }
    }
}

/// v1 fallback: deny everything (`a` to devices.deny), then allow each rule, one write per
/// line (the controller parses one rule per write).
pub fn apply_v1(dir: &Path, rules: &[DeviceRule]) -> Result<(), DeviceError> {
    write_v1(&dir.join("devices.deny"), "a")?;
    let allow = dir.join("devices.allow");
    for rule in rules {
        for line in rule.v1_lines() {
            write_v1(&allow, &line)?;
        }
    }
    Ok(())
}

/// Write one line to an existing cgroup file (never create one: a wrong `dir` must fail).
fn write_v1(file: &Path, line: &str) -> Result<(), DeviceError> {
    fs::OpenOptions::new()
        .write(true)
        .open(file)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|source| DeviceError::WriteV1 {
            file: file.to_path_buf(),
            line: line.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::chain;

    fn rule(text: &str) -> DeviceRule {
        DeviceRule::parse(text).unwrap()
    }

    #[test]
    fn rules_parse_and_print() {
        assert_eq!(
            rule("c 1:3 rwm"),
            DeviceRule {
                kind: DeviceType::Char,
                major: Some(1),
                minor: Some(3),
                access: Access::ALL,
            }
        );
        let any_block = rule("b *:* m");
        assert_eq!((any_block.major, any_block.minor), (None, None));
        assert_eq!(any_block.access, Access::parse("m").unwrap());
        for text in [
            "c 1:3 rwm",
            "b *:* m",
            "a *:* rwm",
            "c 136:* rw",
            "b 8:16 r",
        ] {
            assert_eq!(rule(text).to_v1_line(), text);
        }
        // Access letters in any order print in rwm order.
        assert_eq!(rule("c 10:200 mwr").to_v1_line(), "c 10:200 rwm");
        assert_eq!(
            rule("c 4294967295:0 w").major,
            Some(u32::MAX),
            "the whole u32 range parses"
        );
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, reason) in [
            ("", "want TYPE MAJOR:MINOR ACCESS"),
            ("c 1:3", "want TYPE MAJOR:MINOR ACCESS"),
            ("c 1:3 rwm x", "want TYPE MAJOR:MINOR ACCESS"),
            ("x 1:3 rwm", "the type must be c, b or a"),
            ("c 1 rwm", "want MAJOR:MINOR"),
            ("c a:3 rwm", "the major number must be digits or *"),
            ("c -1:3 rwm", "the major number must be digits or *"),
            ("c 1: rwm", "the minor number must be digits or *"),
            ("c 1:4294967296 rwm", "the minor number is too large"),
            ("c 1:3 rwx", "the access must be a non-empty subset of rwm"),
            ("c 1:3 rr", "the access must be a non-empty subset of rwm"),
        ] {
            let err = DeviceRule::parse(text).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("invalid device cgroup rule {text:?}: {reason}")),
                "{text:?} gave {msg:?}"
            );
            assert_eq!(err.kind(), ErrorKind::Invalid);
        }
    }

    #[test]
    fn access_parses_subsets_once_each() {
        assert_eq!(Access::parse("rwm").unwrap(), Access::ALL);
        assert_eq!(Access::parse("mr").unwrap().to_string(), "rm");
        for bad in ["", "x", "rr", "rwmr", "RW"] {
            assert!(Access::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn rules_and_nodes_round_trip_through_json() {
        let r = rule("c 136:* rw");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"c","major":136,"minor":null,"access":"rw"}"#
        );
        assert_eq!(serde_json::from_str::<DeviceRule>(&json).unwrap(), r);
        let bad = r#"{"kind":"c","major":1,"minor":3,"access":"rx"}"#;
        assert!(serde_json::from_str::<DeviceRule>(bad).is_err());

        let node = DeviceNode {
            host_path: "/dev/sda".into(),
            container_path: "/dev/xvda".into(),
            kind: DeviceType::Block,
            major: 8,
            minor: 0,
            mode: 0o660,
            uid: 0,
            gid: 6,
            permissions: Access::parse("r").unwrap(),
        };
        let json = serde_json::to_string(&node).unwrap();
        assert_eq!(serde_json::from_str::<DeviceNode>(&json).unwrap(), node);
        assert_eq!(node.rule().to_v1_line(), "b 8:0 r");
    }

    #[test]
    fn default_rules_are_dockers() {
        let lines: Vec<String> = default_rules().iter().map(|r| r.to_v1_line()).collect();
        assert_eq!(
            lines,
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:8 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:5 rwm",
                "c 1:9 rwm",
                "c 5:1 rwm",
                "c 136:* rwm",
                "c 5:2 rwm",
                "c 10:200 rwm",
            ]
        );
    }

    #[test]
    fn narrowed_all_rules_split_for_v1() {
        assert_eq!(rule("a *:* rwm").v1_lines(), ["a *:* rwm"]);
        assert_eq!(rule("a 8:* r").v1_lines(), ["c 8:* r", "b 8:* r"]);
        assert_eq!(rule("a *:* m").v1_lines(), ["c *:* m", "b *:* m"]);
        let nothing = DeviceRule {
            access: Access::default(),
            ..rule("c 1:3 r")
        };
        assert!(nothing.v1_lines().is_empty());
    }

    // --- --device -------------------------------------------------------------------------

    fn gather_message(spec: &str) -> String {
        chain(&parse_device(spec).unwrap_err())
    }

    #[test]
    fn device_specs_follow_docker() {
        let null = parse_device("/dev/null").unwrap();
        assert_eq!(null.len(), 1);
        let n = &null[0];
        assert_eq!(n.host_path, Path::new("/dev/null"));
        assert_eq!(n.container_path, "/dev/null");
        assert_eq!((n.kind, n.major, n.minor), (DeviceType::Char, 1, 3));
        assert_eq!(n.mode, 0o666);
        assert_eq!(n.permissions, Access::ALL);
        assert_eq!(n.rule().to_v1_line(), "c 1:3 rwm");

        let moved = parse_device("/dev/null:/dev/nothing").unwrap();
        assert_eq!(moved[0].container_path, "/dev/nothing");
        assert_eq!(moved[0].permissions, Access::ALL);

        let read_only = parse_device("/dev/null:r").unwrap();
        assert_eq!(read_only[0].container_path, "/dev/null");
        assert_eq!(read_only[0].rule().to_v1_line(), "c 1:3 r");

        let all_three = parse_device("/dev/zero:/dev/z:mw").unwrap();
        assert_eq!(all_three[0].container_path, "/dev/z");
        assert_eq!(all_three[0].rule().to_v1_line(), "c 1:5 wm");
    }

    #[test]
    fn bad_device_specs_say_what_docker_says() {
        assert_eq!(
            gather_message("/dev/nonexist"),
            "error gathering device information while adding custom device \
             \"/dev/nonexist\": no such file or directory"
        );
        assert_eq!(
            gather_message("/etc/hostname:/dev/h"),
            "error gathering device information while adding custom device \
             \"/etc/hostname\": not a device node"
        );
        assert_eq!(
            gather_message("/dev/null:/dev/x:rx"),
            "bad mode specified: rx"
        );
        // Not a mode, so it is taken for a container path.
        assert_eq!(gather_message("/dev/null:rx"), "rx is not an absolute path");
        assert_eq!(
            gather_message("dev/null"),
            "dev/null is not an absolute path"
        );
        assert_eq!(
            gather_message("/a:/b:r:w"),
            "bad format for path: /a:/b:r:w"
        );
        assert_eq!(gather_message(":/dev/x"), "bad format for path: :/dev/x");
        let err = parse_device("/dev/nonexist").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn a_directory_gives_the_nodes_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join("link")).unwrap();
        fs::write(root.join("plain"), "x").unwrap();
        let empty = parse_device(&format!("{}:/dev/stuff", root.display())).unwrap_err();
        assert!(
            chain(&empty).ends_with("not a device node"),
            "{}",
            chain(&empty)
        );

        // mknod needs CAP_MKNOD; the tests run as root.
        let mknod = |name: &str, kind: SFlag, major: u64, minor: u64| {
            nix::sys::stat::mknod(
                &root.join(name),
                kind,
                Mode::from_bits_truncate(0o640),
                nix::sys::stat::makedev(major, minor),
            )
            .unwrap_or_else(|e| panic!("mknod {name}: {e}"))
        };
        mknod("zero", SFlag::S_IFCHR, 1, 5);
        mknod("sub/disk", SFlag::S_IFBLK, 7, 3);
        let nodes = parse_device(&format!("{}:/dev/stuff/:r", root.display())).unwrap();
        let got: Vec<(&str, String)> = nodes
            .iter()
            .map(|n| (n.container_path.as_str(), n.rule().to_v1_line()))
            .collect();
        // The symlink and the plain file are skipped, as in Docker's walk.
        assert_eq!(
            got,
            [
                ("/dev/stuff/sub/disk", "b 7:3 r".to_string()),
                ("/dev/stuff/zero", "c 1:5 r".to_string()),
            ]
        );
        assert_eq!(nodes[1].mode, 0o640);
        assert_eq!(nodes[1].host_path, root.join("zero"));
    }

    #[test]
    fn a_symlinked_host_path_is_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let nodes = parse_device(&format!("{}:/dev/n", link.display())).unwrap();
        assert_eq!(nodes[0].host_path, Path::new("/dev/null"));
        assert_eq!((nodes[0].major, nodes[0].minor), (1, 3));
    }

    // --- the kernel -----------------------------------------------------------------------

    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;
    use std::time::Duration;

    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::ForkResult;

    /// A test cgroup directory, removed on drop (also when the test fails).
    struct TestCgroup(PathBuf);

    impl TestCgroup {
        fn create(parent: &Path, tag: &str) -> TestCgroup {
            let dir = parent.join(format!("warren-test-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir(&dir); // a leftover of a killed run with the same pid
            fs::create_dir(&dir)
                .unwrap_or_else(|e| panic!("create test cgroup {}: {e}", dir.display()));
            TestCgroup(dir)
        }
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            // A child that has just exited may take a moment to leave the cgroup.
            for _ in 0..100 {
                match fs::remove_dir(&self.0) {
                    Ok(()) => return,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            eprintln!("could not remove test cgroup {}", self.0.display());
        }
    }

    fn cstring(path: &Path) -> CString {
        CString::new(path.as_os_str().as_bytes()).unwrap()
    }

    /// One thing the child tries inside the cgroup.
    #[derive(Clone, Copy)]
    enum Op<'a> {
        Open(&'a CStr, OFlag),
        Mknod(&'a CStr, SFlag, u32, u32),
    }

    const MAX_OPS: usize = 15;

    fn errno_of(result: nix::Result<()>) -> i32 {
        match result {
            Ok(()) => 0,
            Err(e) => e as i32,
        }
    }

    fn try_op(op: &Op<'_>) -> nix::Result<()> {
        match *op {
            Op::Open(path, flags) => {
                nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty()).map(drop)
            }
            Op::Mknod(path, kind, major, minor) => nix::sys::stat::mknod(
                path,
                kind,
                Mode::from_bits_truncate(0o600),
                nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
            ),
        }
    }

    /// Fork a child that joins the cgroup whose `cgroup.procs` is `procs` and then tries
    /// `ops`; returns the join result and each op's (0 or an errno).
    fn run_in_cgroup(procs: &Path, ops: &[Op<'_>]) -> (i32, Vec<i32>) {
        assert!(ops.len() <= MAX_OPS);
        let procs = cstring(procs);
        let (rx, tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        match crate::runtime::sys::fork().unwrap() {
            ForkResult::Child => {
                // The test harness is multi-threaded: from here on only plain syscalls, no
                // allocation (nix hands &CStr paths straight to the kernel) and no panics.
                let mut results = [-1i32; MAX_OPS + 1];
                let join = nix::fcntl::open(procs.as_c_str(), OFlag::O_WRONLY, Mode::empty())
                    .and_then(|fd| nix::unistd::write(fd, b"0").map(drop));
                results[0] = errno_of(join);
                if results[0] == 0 {
                    for (slot, op) in results[1..].iter_mut().zip(ops) {
                        *slot = errno_of(try_op(op));
                    }
                }
                let mut bytes = [0u8; 4 * (MAX_OPS + 1)];
                for (chunk, r) in bytes.chunks_exact_mut(4).zip(results) {
                    chunk.copy_from_slice(&r.to_ne_bytes());
                }
                let code = if nix::unistd::write(&tx, &bytes) == Ok(bytes.len()) {
                    0
                } else {
                    1
                };
                crate::runtime::sys::exit_now(code);
            }
            ForkResult::Parent { child } => {
                drop(tx);
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut fs::File::from(rx), &mut bytes).unwrap();
                assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
                let results: Vec<i32> = bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
                    .collect();
                assert_eq!(results.len(), MAX_OPS + 1, "short report from the child");
                (results[0], results[1..=ops.len()].to_vec())
            }
        }
    }

    fn errno_name(code: i32) -> String {
        if code == 0 {
            "ok".into()
        } else {
            format!("{:?}", Errno::from_raw(code))
        }
    }

    /// The standard scenario under Docker's default rules, for both enforcement paths:
    /// /dev/null opens, block and char nodes can be made but not opened.
    fn check_default_rules_enforced(procs: &Path) {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let flags = nix::sys::statvfs::statvfs(dir).unwrap().flags();
        assert!(
            !flags.contains(nix::sys::statvfs::FsFlags::ST_NODEV),
            "{} is mounted nodev: device nodes there fail with EACCES whatever the cgroup says",
            dir.display()
        );
        // Controls, outside the cgroup: the nodes are openable (or fail for their own
        // reasons), so an EPERM inside comes from the filter.
        let (mem_pre, loop_pre) = (
            cstring(&dir.join("mem-pre")),
            cstring(&dir.join("loop-pre")),
        );
        try_op(&Op::Mknod(&mem_pre, SFlag::S_IFCHR, 1, 1)).unwrap();
        try_op(&Op::Mknod(&loop_pre, SFlag::S_IFBLK, 7, 0)).unwrap();
        for path in [mem_pre.as_c_str(), loop_pre.as_c_str(), c"/dev/kmsg"] {
            let control = try_op(&Op::Open(path, OFlag::O_RDONLY));
            assert_ne!(control, Err(Errno::EPERM), "control open of {path:?}");
        }

        let (blk, chr) = (cstring(&dir.join("loop")), cstring(&dir.join("mem")));
        let ops = [
            (Op::Open(c"/dev/null", OFlag::O_RDWR), 0),
            (Op::Open(c"/dev/zero", OFlag::O_RDONLY), 0),
            (Op::Mknod(&blk, SFlag::S_IFBLK, 7, 0), 0), // b *:* m
            (Op::Open(&blk, OFlag::O_RDONLY), libc::EPERM),
            (Op::Mknod(&chr, SFlag::S_IFCHR, 1, 1), 0), // c *:* m
            (Op::Open(&chr, OFlag::O_RDONLY), libc::EPERM),
            (Op::Open(&mem_pre, OFlag::O_RDONLY), libc::EPERM),
            (Op::Open(&loop_pre, OFlag::O_RDONLY), libc::EPERM),
            (Op::Open(c"/dev/kmsg", OFlag::O_RDONLY), libc::EPERM),
        ];
        check_ops(procs, &ops);
    }

    fn check_ops(procs: &Path, ops: &[(Op<'_>, i32)]) {
        let (todo, want): (Vec<Op<'_>>, Vec<i32>) = ops.iter().copied().unzip();
        let (join, got) = run_in_cgroup(procs, &todo);
        assert_eq!(join, 0, "join {}: {}", procs.display(), errno_name(join));
        let describe = |codes: &[i32]| codes.iter().map(|&c| errno_name(c)).collect::<Vec<_>>();
        assert_eq!(describe(&got), describe(&want));
    }

    #[test]
    fn v1_controller_enforces_default_rules() {
        let root = Path::new("/sys/fs/cgroup/devices");
        assert!(
            root.join("devices.allow").exists(),
            "no v1 devices controller at {}: apply_v1 cannot be tested on this host",
            root.display()
        );
        let cgroup = TestCgroup::create(root, "devices-v1");
        apply_v1(&cgroup.0, &default_rules()).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let list = fs::read_to_string(cgroup.0.join("devices.list")).unwrap();
        assert!(list.lines().any(|l| l == "c 136:* rwm"), "{list}");
        assert!(!list.lines().any(|l| l.starts_with("a ")), "{list}");
        check_default_rules_enforced(&cgroup.0.join("cgroup.procs"));
    }

    #[test]
    fn v1_write_to_a_wrong_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let err = apply_v1(dir.path(), &default_rules()).unwrap_err();
        assert!(matches!(&err, DeviceError::WriteV1 { line, .. } if line == "a"));
        assert!(!dir.path().join("devices.deny").exists());
    }
}
