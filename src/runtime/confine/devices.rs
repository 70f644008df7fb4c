//! Which device nodes a container may open or create: allow rules in Docker's
//! `--device-cgroup-rule` syntax, Docker's default list, `--device` host nodes, and their
//! enforcement. With a cgroup v2 hierarchy (pure or hybrid) the rules become a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's v2 directory — the kernel
//! runs it on every open and mknod of a device node by a task in that cgroup, default deny.
//! Without one, the v1 `devices` controller gets the same rules as text.

use std::ffi::CStr;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use serde::{Deserialize, Serialize};

use super::bpf::{self, Insn, AND, JMP, JNE, MOV, RSH};
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

/// The program's license. It calls no helper at all, so no GPL-only ones.
const LICENSE: &CStr = c"Apache-2.0";
/// The name bpftool shows for the program.
const PROGRAM_NAME: &str = "warren_devices";
/// Verifier log buffer for a failed load: level-1 logs of programs this size are a few KiB.
const LOG_SIZE: usize = 256 * 1024;

// The kernel's `struct bpf_cgroup_dev_ctx` and its encodings (linux/bpf.h).
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;

// Register use in the generated program. r1 holds the context until the prologue has read
// all of it; from then on it is scratch.
const R_RET: u8 = 0;
const R_CTX: u8 = 1;
const R_SCRATCH: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

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
    #[error("load the BPF device program (verifier log: {})", log.trim())]
    LoadProgram {
        log: String,
        #[source]
        source: Errno,
    },
    #[error("open cgroup directory {}", path.display())]
    OpenCgroup {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("attach the BPF device program to {}", path.display())]
    AttachProgram {
        path: PathBuf,
        #[source]
        source: Errno,
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
            DeviceError::LoadProgram { .. }
            | DeviceError::OpenCgroup { .. }
            | DeviceError::AttachProgram { .. }
            | DeviceError::WriteV1 { .. } => ErrorKind::Internal,
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

    /// The kernel's BPF_DEVCG_ACC_* bits.
    fn bits(self) -> u32 {
        [
            (self.mknod, ACC_MKNOD),
            (self.read, ACC_READ),
            (self.write, ACC_WRITE),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |bits, (_, bit)| bits | bit)
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

/// The eBPF program enforcing `rules`: allow (1) when any rule matches, else deny (0).
///
/// ```text
/// r2 = ctx.access_type & 0xffff   (BPF_DEVCG_DEV_*)
/// r3 = ctx.access_type >> 16      (BPF_DEVCG_ACC_*)
/// r4 = ctx.major; r5 = ctx.minor
/// per rule, each test jumping to the next rule on a mismatch:
///   r2 != type?   (r3 & access) != r3?   r4 != major?   r5 != minor?   -> return 1
/// return 0
/// ```
/// Tests a rule does not need (`a`, `rwm`, `*`) are left out. Nothing is emitted after a
/// rule that allows everything: the verifier rejects unreachable instructions.
fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut insns = vec![
        Insn::load_word(R_TYPE, R_CTX, CTX_ACCESS_TYPE),
        Insn::alu32_imm(AND, R_TYPE, 0xffff),
        Insn::load_word(R_ACCESS, R_CTX, CTX_ACCESS_TYPE),
        Insn::alu32_imm(RSH, R_ACCESS, 16),
        Insn::load_word(R_MAJOR, R_CTX, CTX_MAJOR),
        Insn::load_word(R_MINOR, R_CTX, CTX_MINOR),
    ];
    for rule in rules {
        if rule.access.is_empty() {
            continue; // allows nothing (the kernel never asks for no access)
        }
        let mut block = Vec::new();
        match rule.kind {
            DeviceType::Char => block.push(Insn::jump_imm(JNE, R_TYPE, imm(DEV_CHAR), 0)),
            DeviceType::Block => block.push(Insn::jump_imm(JNE, R_TYPE, imm(DEV_BLOCK), 0)),
            DeviceType::All => {}
        }
        if rule.access != Access::ALL {
            block.push(Insn::alu32_reg(MOV, R_SCRATCH, R_ACCESS));
            block.push(Insn::alu32_imm(AND, R_SCRATCH, imm(rule.access.bits())));
            block.push(Insn::jump_reg(JNE, R_SCRATCH, R_ACCESS, 0));
        }
        if let Some(major) = rule.major {
            jump_unless_equal(&mut block, R_MAJOR, major);
        }
        if let Some(minor) = rule.minor {
            jump_unless_equal(&mut block, R_MINOR, minor);
        }
        block.push(Insn::alu32_imm(MOV, R_RET, 1));
        block.push(Insn::exit());
        // Every jump in the block goes to the first instruction after it (the next rule).
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.code & 0x07 == JMP && insn.code & 0xf0 == JNE {
                insn.off = i16::try_from(len - i - 1).expect("a rule is a few instructions");
            }
        }
        insns.extend(block);
        if rule.allows_everything() {
            return insns;
        }
    }
    insns.push(Insn::alu32_imm(MOV, R_RET, 0));
    insns.push(Insn::exit());
    insns
}

/// An immediate the kernel reads as this u32 in a 32-bit operation (same bits).
fn imm(value: u32) -> i32 {
    i32::from_ne_bytes(value.to_ne_bytes())
}

/// `if reg != value goto <end of block>`. A jump's immediate is sign-extended to 64 bits
/// while the context's u32 was zero-extended, so numbers above i32::MAX are compared through
/// a (zero-extending) 32-bit move into the scratch register.
fn jump_unless_equal(block: &mut Vec<Insn>, reg: u8, value: u32) {
    match i32::try_from(value) {
        Ok(small) => block.push(Insn::jump_imm(JNE, reg, small, 0)),
        Err(_) => {
            block.push(Insn::alu32_imm(MOV, R_SCRATCH, imm(value)));
            block.push(Insn::jump_reg(JNE, reg, R_SCRATCH, 0));
        }
    }
}

/// A loaded device program. Dropping it closes the descriptor; once attached, the program
/// stays on the cgroup until the cgroup is removed.
#[derive(Debug)]
pub struct DeviceFilter {
    prog: OwnedFd,
    insn_count: usize,
}

impl DeviceFilter {
    /// Generate and load a program that allows exactly `rules` (default deny).
    pub fn load(rules: &[DeviceRule]) -> Result<DeviceFilter, DeviceError> {
        load_insns(&program(rules))
    }

    /// The number of instructions in the loaded program.
    pub fn insn_count(&self) -> usize {
        self.insn_count
    }

    /// Attach the program to a cgroup v2 directory, for it alone (flags 0).
    pub fn attach(&self, cgroup_dir: &Path) -> Result<(), DeviceError> {
        self.attach_with(cgroup_dir, 0)
    }

    /// Attach the program to a cgroup v2 directory as the default of its subtree: a
    /// descendant cgroup with a program of its own uses that one instead
    /// (`BPF_F_ALLOW_OVERRIDE`). Attaching again replaces the program.
    pub fn attach_as_default(&self, cgroup_dir: &Path) -> Result<(), DeviceError> {
        self.attach_with(cgroup_dir, bpf::F_ALLOW_OVERRIDE)
    }

    fn attach_with(&self, cgroup_dir: &Path, flags: u32) -> Result<(), DeviceError> {
        let dir = open_cgroup(cgroup_dir)?;
        bpf::prog_attach(
            dir.as_fd(),
            self.prog.as_fd(),
            bpf::ATTACH_CGROUP_DEVICE,
            flags,
        )
        .map_err(|source| DeviceError::AttachProgram {
            path: cgroup_dir.to_path_buf(),
            source,
        })
    }
}

/// Whether a device program is attached to the cgroup v2 directory itself.
pub fn has_filter(cgroup_dir: &Path) -> Result<bool, DeviceError> {
    let dir = open_cgroup(cgroup_dir)?;
    bpf::prog_count(dir.as_fd(), bpf::ATTACH_CGROUP_DEVICE)
        .map(|n| n > 0)
        .map_err(|source| DeviceError::AttachProgram {
            path: cgroup_dir.to_path_buf(),
            source,
        })
}

fn open_cgroup(cgroup_dir: &Path) -> Result<OwnedFd, DeviceError> {
    nix::fcntl::open(
        cgroup_dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| DeviceError::OpenCgroup {
        path: cgroup_dir.to_path_buf(),
        source,
    })
}

/// Load `insns`; on failure load again with a log buffer, so the error carries the
/// verifier's reasons (the first try goes without: logging slows the verifier down).
fn load_insns(insns: &[Insn]) -> Result<DeviceFilter, DeviceError> {
    let load = |log| {
        bpf::prog_load(
            bpf::PROG_TYPE_CGROUP_DEVICE,
            insns,
            LICENSE,
            PROGRAM_NAME,
            log,
        )
    };
    let first = match load(None) {
        Ok(prog) => {
            return Ok(DeviceFilter {
                prog,
                insn_count: insns.len(),
            })
        }
        Err(e) => e,
    };
    let mut buf = vec![0u8; LOG_SIZE];
    // A retry that succeeds means the first failure was transient; take the program.
    if let Ok(prog) = load(Some(&mut buf)) {
        return Ok(DeviceFilter {
            prog,
            insn_count: insns.len(),
        });
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Err(DeviceError::LoadProgram {
        log: String::from_utf8_lossy(&buf[..end]).into_owned(),
        source: first,
    })
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
    use super::bpf::{ALU, EXIT, LDX, MEM, W};
    use super::*;
    use crate::error::chain;

    fn rule(text: &str) -> DeviceRule {
        DeviceRule::parse(text).unwrap()
    }

    fn rules(texts: &[&str]) -> Vec<DeviceRule> {
        texts.iter().map(|t| rule(t)).collect()
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
        assert_eq!(Access::parse("w").unwrap().bits(), ACC_WRITE);
        assert_eq!(Access::ALL.bits(), 7);
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

    // --- the program, run by a small interpreter ------------------------------------------

    /// Run `prog` on a context as the kernel would. Panics on shapes the verifier rejects
    /// (reading an unset register, arithmetic on the context pointer) or that the generator
    /// never emits.
    fn interpret(prog: &[Insn], ctx: [u32; 3]) -> u64 {
        let mut regs: [Option<u64>; 11] = [None; 11];
        let mut is_ctx = [false; 11];
        regs[1] = Some(0);
        is_ctx[1] = true;
        let read = |regs: &[Option<u64>; 11], r: u8| {
            regs[usize::from(r)].unwrap_or_else(|| panic!("R{r} read before written"))
        };
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let insn = *prog.get(pc).expect("ran off the end of the program");
            let (dst, src) = (usize::from(insn.dst()), usize::from(insn.src()));
            pc += 1;
            let class = insn.code & 0x07;
            let op = insn.code & 0xf0;
            let from_reg = insn.code & 0x08 != 0;
            match class {
                LDX => {
                    assert_eq!(insn.code, LDX | MEM | W, "{insn:?}");
                    assert!(is_ctx[src], "load through a non-context register: {insn:?}");
                    let off = usize::try_from(insn.off).expect("negative context offset");
                    assert!(off % 4 == 0 && off < 12, "bad context offset {off}");
                    regs[dst] = Some(u64::from(ctx[off / 4]));
                    is_ctx[dst] = false;
                }
                ALU => {
                    assert!(
                        !is_ctx[dst] || op == MOV,
                        "arithmetic on the context pointer"
                    );
                    let b = if from_reg {
                        assert!(!is_ctx[src], "the context pointer as a 32-bit value");
                        low32(read(&regs, insn.src()))
                    } else {
                        insn.imm as u32
                    };
                    let result = match op {
                        MOV => b,
                        AND => low32(read(&regs, insn.dst())) & b,
                        RSH => {
                            assert!(b < 32, "shift by {b}");
                            low32(read(&regs, insn.dst())) >> b
                        }
                        _ => panic!("unexpected ALU op {insn:?}"),
                    };
                    // 32-bit operations zero-extend into the 64-bit register.
                    regs[dst] = Some(u64::from(result));
                    is_ctx[dst] = false;
                }
                JMP if op == EXIT => return read(&regs, 0),
                JMP if op == JNE => {
                    assert!(insn.off >= 0, "backward jump {insn:?}");
                    let a = read(&regs, insn.dst());
                    let b = if from_reg {
                        read(&regs, insn.src())
                    } else {
                        // A jump's immediate is sign-extended to 64 bits.
                        i64::from(insn.imm) as u64
                    };
                    if a != b {
                        pc += usize::try_from(insn.off).unwrap();
                    }
                }
                _ => panic!("unexpected instruction {insn:?}"),
            }
        }
        panic!("the program did not finish");
    }

    fn low32(x: u64) -> u32 {
        u32::try_from(x & u64::from(u32::MAX)).unwrap()
    }

    /// The verifier rejects instructions no path reaches and paths that fall off the end.
    fn assert_every_insn_reachable(prog: &[Insn]) {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            assert!(pc < prog.len(), "a path falls off the end");
            if std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            let insn = prog[pc];
            if insn.code == Insn::exit().code {
                continue;
            }
            todo.push(pc + 1);
            if insn.code & 0x07 == JMP {
                todo.push(pc + 1 + usize::try_from(insn.off).unwrap());
            }
        }
        let unreachable: Vec<usize> = (0..prog.len()).filter(|&i| !seen[i]).collect();
        assert!(unreachable.is_empty(), "unreachable: {unreachable:?}");
    }

    /// Evaluate `rules`' program for a device request ("c", "b"), its numbers and access.
    fn allows(rules: &[DeviceRule], kind: &str, major: u32, minor: u32, access: &str) -> bool {
        let kind = match kind {
            "c" => DEV_CHAR,
            "b" => DEV_BLOCK,
            _ => panic!("kind {kind}"),
        };
        let access = Access::parse(access).unwrap().bits();
        let prog = program(rules);
        assert_every_insn_reachable(&prog);
        match interpret(&prog, [(access << 16) | kind, major, minor]) {
            0 => false,
            1 => true,
            other => panic!("returned {other}"),
        }
    }

    fn check_table(rules: &[DeviceRule], table: &[(&str, u32, u32, &str, bool)]) {
        for &(kind, major, minor, access, want) in table {
            assert_eq!(
                allows(rules, kind, major, minor, access),
                want,
                "{kind} {major}:{minor} {access} under {:?}",
                rules.iter().map(|r| r.to_v1_line()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn default_program_allows_exactly_dockers_list() {
        check_table(
            &default_rules(),
            &[
                ("c", 1, 3, "rw", true), // null
                ("c", 1, 3, "rwm", true),
                ("c", 1, 5, "r", true),    // zero
                ("c", 1, 7, "w", true),    // full
                ("c", 1, 8, "r", true),    // random
                ("c", 1, 9, "rw", true),   // urandom
                ("c", 5, 0, "rw", true),   // tty
                ("c", 5, 1, "w", true),    // console
                ("c", 5, 2, "rw", true),   // ptmx
                ("c", 136, 0, "rw", true), // pts/0
                ("c", 136, 77, "r", true),
                ("c", 10, 200, "rw", true), // tun
                ("c", 1, 1, "m", true),     // mknod of anything...
                ("b", 7, 0, "m", true),
                ("b", 8, 0, "m", true),
                ("c", 1, 1, "r", false), // ...but not opening it: mem
                ("c", 1, 1, "rm", false),
                ("c", 1, 11, "r", false), // kmsg
                ("c", 1, 4, "w", false),  // port
                ("c", 5, 3, "r", false),
                ("c", 137, 0, "r", false),
                ("c", 10, 229, "rw", false), // fuse
                ("c", 10, 200 + 65536, "rw", false),
                ("b", 7, 0, "r", false), // loop0
                ("b", 8, 0, "rw", false),
                ("b", 1, 3, "r", false), // null's numbers, but a block device
                ("b", 136, 0, "w", false),
            ],
        );
    }

    #[test]
    fn custom_programs_match_their_rules() {
        // No rules: nothing at all, not even mknod.
        check_table(&[], &[("c", 1, 3, "r", false), ("b", 7, 0, "m", false)]);

        let everything = rules(&["a *:* rwm", "c 1:3 r"]);
        assert_eq!(program(&everything).len(), 8, "nothing after the catch-all");
        check_table(
            &everything,
            &[("c", 1, 1, "rwm", true), ("b", 4000, 9, "w", true)],
        );

        check_table(
            &rules(&["a 8:* r"]),
            &[
                ("b", 8, 1, "r", true),
                ("c", 8, 1, "r", true),
                ("b", 8, 1, "w", false),
                ("b", 8, 1, "rw", false),
                ("b", 9, 1, "r", false),
            ],
        );
        check_table(
            &rules(&["b 8:16 rw", "c *:5 w"]),
            &[
                ("b", 8, 16, "rw", true),
                ("b", 8, 16, "r", true),
                ("b", 8, 16, "m", false),
                ("b", 8, 17, "r", false),
                ("c", 8, 16, "r", false),
                ("c", 99, 5, "w", true),
                ("c", 99, 5, "r", false),
                ("b", 99, 5, "w", false),
            ],
        );
        // Numbers above i32::MAX must not be compared sign-extended.
        check_table(
            &rules(&["c 4000000000:4294967295 r", "b 2147483648:* m"]),
            &[
                ("c", 4_000_000_000, u32::MAX, "r", true),
                ("c", 4_000_000_000, 0, "r", false),
                ("c", 1_705_032_704, u32::MAX, "r", false), // same low 31 bits
                ("b", 2_147_483_648, 3, "m", true),
                ("b", 0, 3, "m", false),
            ],
        );
        // A rule with no access allows nothing and emits nothing.
        let nothing = DeviceRule {
            access: Access::default(),
            ..rule("c 1:3 r")
        };
        assert_eq!(program(&[nothing]), program(&[]));
        check_table(&[nothing], &[("c", 1, 3, "r", false)]);
    }

    // --- the kernel -----------------------------------------------------------------------

    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, Instant};

    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::ForkResult;

    /// The cgroup v2 mount: /sys/fs/cgroup when it is cgroup2, else the hybrid
    /// /sys/fs/cgroup/unified.
    fn v2_root() -> PathBuf {
        for dir in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            let is_v2 = nix::sys::statfs::statfs(dir)
                .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
            if is_v2 {
                return PathBuf::from(dir);
            }
        }
        panic!(
            "no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified: \
             the BPF device filter cannot be tested on this host"
        );
    }

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
    fn kernel_accepts_every_program_shape() {
        for set in [
            default_rules(),
            vec![],
            rules(&["a *:* rwm"]),
            rules(&["a 8:* r", "c *:5 w", "b 8:16 rw"]),
            rules(&["c 4000000000:4294967295 r", "b 2147483648:* m"]),
        ] {
            DeviceFilter::load(&set).unwrap_or_else(|e| panic!("{set:?}: {}", chain(&e)));
        }
    }

    #[test]
    fn a_rejected_program_reports_the_verifier_log() {
        // Returns without setting r0.
        let err = load_insns(&[Insn::exit()]).unwrap_err();
        let msg = chain(&err);
        assert!(msg.contains("R0 !read_ok"), "{msg}");
        assert!(matches!(
            err,
            DeviceError::LoadProgram {
                source: Errno::EACCES,
                ..
            }
        ));
    }

    #[test]
    fn bpf_filter_enforces_default_rules() {
        let cgroup = TestCgroup::create(&v2_root(), "devices-bpf");
        let started = Instant::now();
        let filter =
            DeviceFilter::load(&default_rules()).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let loaded = started.elapsed();
        filter
            .attach(&cgroup.0)
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        eprintln!(
            "default program: {} insns, load {:?}, load+attach {:?}",
            filter.insn_count(),
            loaded,
            started.elapsed()
        );
        check_default_rules_enforced(&cgroup.0.join("cgroup.procs"));
    }

    #[test]
    fn bpf_filter_enforces_narrow_rules() {
        let cgroup = TestCgroup::create(&v2_root(), "devices-bpf-narrow");
        let filter = DeviceFilter::load(&rules(&["c 1:3 rw"])).unwrap();
        filter.attach(&cgroup.0).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let (null2, blk) = (
            cstring(&scratch.path().join("null2")),
            cstring(&scratch.path().join("loop")),
        );
        check_ops(
            &cgroup.0.join("cgroup.procs"),
            &[
                (Op::Open(c"/dev/null", OFlag::O_RDWR), 0),
                (Op::Mknod(&null2, SFlag::S_IFCHR, 1, 3), libc::EPERM), // no m
                (Op::Mknod(&blk, SFlag::S_IFBLK, 7, 0), libc::EPERM),
                (Op::Open(c"/dev/zero", OFlag::O_RDONLY), libc::EPERM),
            ],
        );
    }

    #[test]
    fn attach_to_a_missing_cgroup_names_it() {
        let filter = DeviceFilter::load(&default_rules()).unwrap();
        let missing = v2_root().join("warren-test-no-such-cgroup");
        let err = filter.attach(&missing).unwrap_err();
        assert!(matches!(
            err,
            DeviceError::OpenCgroup {
                source: Errno::ENOENT,
                ..
            }
        ));
        assert!(chain(&err).contains("warren-test-no-such-cgroup"));
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
