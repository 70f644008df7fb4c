//! Seccomp profiles in Docker's JSON format, Warren's built-in default profile, and their
//! compilation to a BPF program.
//!
//! Split of work: the agent resolves a [`Profile`] for one container's capability set and
//! compiles it once ([`Profile::compile`]: about 15 ms for the built-in profile on x86_64,
//! nearly all of it libseccomp generating code for three ABIs) into a [`Program`], which it
//! caches and writes into the container's bundle; the container's init and every exec'd
//! process only [`Program::load`] those bytes with one seccomp(2) call right before execve
//! (a fraction of a millisecond, spent in the kernel's checks and JIT).
//!
//! Why the `libseccomp` crate (bindings to the C libseccomp that runc, crun and podman use)
//! rather than a BPF generator of our own: it gives the same syscall name tables for every
//! architecture, the same rule merging and argument-comparison semantics as Docker's runc
//! path, and multi-architecture filters (x86_64 + x86 + x32, as Docker's `archMap` asks for)
//! with libseccomp's per-arch translation of pseudo syscall numbers. It is used only here, in
//! the agent, to build and export the filter; loading needs no libseccomp state, so the
//! container side stays a plain syscall (`sys::seccomp_set_mode_filter`).
//!
//! Resolution follows moby's `setupSeccomp` (includes/excludes by capability, architecture
//! and kernel version) and compilation follows runc's `libcontainer/seccomp` (unknown
//! syscall names skipped, rules equal to the default action skipped, ERRNO without a value
//! meaning EPERM, repeated argument indexes split into one rule per condition). Two things
//! runc does are not done here: it prepends a stub returning ENOSYS for syscalls newer than
//! any the profile names (`patchbpf`), and it can load with the LOG / SPEC_ALLOW filter
//! flags; a [`Program`] is only the exported instructions, so profiles asking for those
//! flags are refused with [`SeccompError::UnsupportedFlag`].
//!
//! [`Profile::builtin`] is equivalent to Docker's default profile as of moby master
//! (`profiles/seccomp/default.json`, the profile of Docker Engine 25 and later). The test
//! module checks it against Debian 12's copy of the Docker 20.10.24 profile plus the listed
//! changes since (`docker_20_10_to_current`).

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::{Deserialize, Serialize, Serializer};

use super::caps::CapSet;

/// What can go wrong reading a profile, compiling it or taking a compiled program back.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("parse seccomp profile")]
    Parse(#[source] serde_json::Error),
    #[error("seccomp profile: defaultAction is missing")]
    MissingDefaultAction,
    #[error("seccomp profile: {field}: unknown action {value:?}")]
    UnknownAction { field: String, value: String },
    #[error("seccomp profile: {field}: unknown operator {value:?}")]
    UnknownOperator { field: String, value: String },
    #[error("seccomp profile: {field}: unknown architecture {value:?}")]
    UnknownArch { field: String, value: String },
    #[error("seccomp profile: {field}: unknown capability {value:?}")]
    UnknownCapability { field: String, value: String },
    #[error("seccomp profile: {field}: unknown flag {value:?}")]
    UnknownFlag { field: String, value: String },
    #[error("seccomp profile: {field}: {value:?} is not a kernel version (\"<major>.<minor>\")")]
    InvalidKernelVersion { field: String, value: String },
    #[error("seccomp profile: {field}: {value} is out of range (at most {max})")]
    OutOfRange { field: String, value: u64, max: u64 },
    #[error("seccomp profile: {field}: both 'name' and 'names' are set; use one")]
    NameAndNames { field: String },
    #[error("seccomp profile: {field}: no syscall 'name' or 'names'")]
    NoNames { field: String },
    #[error("seccomp profile: both 'architectures' and 'archMap' are set; use one")]
    ArchitecturesAndArchMap,
    #[error(
        "seccomp profile: {field}: user notification (SCMP_ACT_NOTIFY, listenerPath) is not \
         supported"
    )]
    Notify { field: String },
    #[error(
        "seccomp profile: flag {flag} is not supported: Warren loads the exported BPF itself \
         and a compiled program carries no load flags"
    )]
    UnsupportedFlag { flag: &'static str },
    #[error("read the running kernel's version")]
    KernelVersion(#[source] nix::errno::Errno),
    #[error("running kernel release {0:?} has no <major>.<minor> version")]
    KernelRelease(String),
    #[error("libseccomp does not know this machine's architecture {0:?}")]
    NativeArch(ScmpArch),
    #[error("create libseccomp filter")]
    CreateFilter(#[source] libseccomp::error::SeccompError),
    #[error("add architecture {arch} to the filter")]
    AddArch {
        arch: &'static str,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("enable libseccomp's binary-tree optimization")]
    Optimize(#[source] libseccomp::error::SeccompError),
    #[error("add seccomp rule for syscall {syscall}")]
    AddRule {
        syscall: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("export the BPF program")]
    Export(#[source] libseccomp::error::SeccompError),
    #[error("read back the exported BPF program")]
    ExportBuffer(#[source] std::io::Error),
    #[error(
        "a BPF program is 1 to {max} instructions of 8 bytes; got {len} bytes",
        max = MAX_INSNS
    )]
    InvalidProgram { len: usize },
}

/// BPF_MAXINSNS: the kernel refuses longer classic BPF programs.
const MAX_INSNS: usize = 4096;
/// Size of one `struct sock_filter`.
const INSN_LEN: usize = 8;
/// seccomp_data carries six syscall arguments.
const MAX_ARG_INDEX: u8 = 5;
/// EPERM: what SCMP_ACT_ERRNO means without errnoRet (runc's rule, Docker's behaviour).
const EPERM: u16 = 1;

/// A profile in Docker's seccomp JSON format (moby `profiles/seccomp`), validated: actions,
/// operators, architectures, capabilities and flags are known values. Serializes back to
/// Docker's JSON; deserializing runs the same checks as [`Profile::from_json`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "WireProfile")]
pub struct Profile {
    pub default_action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u16>,
    /// Old format: architectures added to the filter as they are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<Arch>,
    /// Current format: the entry for the native architecture names the sub-architectures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    pub syscalls: Vec<SyscallRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Flag>,
}

/// One architecture and the ABIs its kernel also runs (x86_64: x86 and x32).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: Arch,
    pub sub_architectures: Vec<Arch>,
}

/// One block of `syscalls`: an action for some syscalls, optionally only when their
/// arguments match and only for some capability sets, architectures or kernels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// Docker's `name` (one) or `names` (many); always written back as `names`.
    pub names: Vec<String>,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCondition>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    #[serde(skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
}

/// A condition on one syscall argument. For `MaskedEqual`, `value` is the mask and
/// `value_two` the datum: `(arg & value) == value_two`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgCondition {
    pub index: u8,
    pub value: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub value_two: u64,
    pub op: Op,
}

/// When a rule applies. In `includes` every condition must hold (all listed capabilities
/// held, the native architecture listed, the kernel at least `min_kernel`); in `excludes`
/// any one condition drops the rule (any listed capability held, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(serialize_with = "serialize_caps", skip_serializing_if = "caps_empty")]
    pub caps: CapSet,
    /// Docker's architecture spelling, Go's GOARCH as libseccomp names it: `amd64`, `x86`,
    /// `x32`, `arm64`, `ppc64le`, `s390x`, `riscv64`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<KernelVersion>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// A kernel version as profiles compare it: `4.8` means 4.8.0; a running 6.1.55 is 6.1.55.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    /// `"4.8"` or `"4.8.1"`, as profiles write it.
    fn parse_profile(text: &str) -> Option<KernelVersion> {
        let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = match parts.next() {
            Some(p) => p?,
            None => 0,
        };
        let version = KernelVersion {
            major,
            minor,
            patch,
        };
        (parts.next().is_none() && (major, minor) != (0, 0)).then_some(version)
    }

    /// A uname release such as `6.1.0-18-amd64` or `3.12-1-amd64`: its leading
    /// `major.minor[.patch]`.
    fn parse_release(release: &str) -> Option<KernelVersion> {
        let numbers = release
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()?;
        let mut parts = numbers.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(KernelVersion {
            major,
            minor,
            patch,
        })
    }

    /// The running kernel, from uname(2).
    pub fn running() -> Result<KernelVersion, SeccompError> {
        let uts = nix::sys::utsname::uname().map_err(SeccompError::KernelVersion)?;
        let release = uts.release().to_string_lossy();
        Self::parse_release(&release).ok_or_else(|| SeccompError::KernelRelease(release.into()))
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if self.patch != 0 {
            write!(f, ".{}", self.patch)?;
        }
        Ok(())
    }
}

impl Serialize for KernelVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the kernel does when a rule (or the default) matches. `Kill` is Docker's old
/// spelling of `KillThread`; both compile to SECCOMP_RET_KILL_THREAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Allow,
    Errno,
    Kill,
    KillThread,
    KillProcess,
    Trap,
    Trace,
    Log,
}

impl Action {
    const ALL: [Action; 8] = [
        Action::Allow,
        Action::Errno,
        Action::Kill,
        Action::KillThread,
        Action::KillProcess,
        Action::Trap,
        Action::Trace,
        Action::Log,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "SCMP_ACT_ALLOW",
            Action::Errno => "SCMP_ACT_ERRNO",
            Action::Kill => "SCMP_ACT_KILL",
            Action::KillThread => "SCMP_ACT_KILL_THREAD",
            Action::KillProcess => "SCMP_ACT_KILL_PROCESS",
            Action::Trap => "SCMP_ACT_TRAP",
            Action::Trace => "SCMP_ACT_TRACE",
            Action::Log => "SCMP_ACT_LOG",
        }
    }

    fn parse(field: String, value: &str) -> Result<Action, SeccompError> {
        if value == "SCMP_ACT_NOTIFY" {
            return Err(SeccompError::Notify { field });
        }
        Self::ALL
            .into_iter()
            .find(|a| a.name() == value)
            .ok_or_else(|| SeccompError::UnknownAction {
                field,
                value: value.into(),
            })
    }

    /// libseccomp's action, with runc's reading of `errnoRet`: the errno for ERRNO (EPERM
    /// when absent) and the message for TRACE (EPERM when absent). TRAP's optional data
    /// (SIGSYS's si_errno) is not expressible in the bindings and is dropped.
    fn to_scmp(self, errno_ret: Option<u16>) -> ScmpAction {
        let data = errno_ret.unwrap_or(EPERM);
        match self {
            Action::Allow => ScmpAction::Allow,
            Action::Errno => ScmpAction::Errno(i32::from(data)),
            Action::Kill | Action::KillThread => ScmpAction::KillThread,
            Action::KillProcess => ScmpAction::KillProcess,
            Action::Trap => ScmpAction::Trap,
            Action::Trace => ScmpAction::Trace(data),
            Action::Log => ScmpAction::Log,
        }
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// An argument comparison, libseccomp's `SCMP_CMP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    NotEqual,
    LessThan,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    GreaterThan,
    MaskedEqual,
}

impl Op {
    const ALL: [Op; 7] = [
        Op::NotEqual,
        Op::LessThan,
        Op::LessOrEqual,
        Op::Equal,
        Op::GreaterOrEqual,
        Op::GreaterThan,
        Op::MaskedEqual,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::NotEqual => "SCMP_CMP_NE",
            Op::LessThan => "SCMP_CMP_LT",
            Op::LessOrEqual => "SCMP_CMP_LE",
            Op::Equal => "SCMP_CMP_EQ",
            Op::GreaterOrEqual => "SCMP_CMP_GE",
            Op::GreaterThan => "SCMP_CMP_GT",
            Op::MaskedEqual => "SCMP_CMP_MASKED_EQ",
        }
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl ArgCondition {
    fn to_scmp(self) -> ScmpArgCompare {
        let index = u32::from(self.index);
        match self.op {
            Op::NotEqual => ScmpArgCompare::new(index, ScmpCompareOp::NotEqual, self.value),
            Op::LessThan => ScmpArgCompare::new(index, ScmpCompareOp::Less, self.value),
            Op::LessOrEqual => ScmpArgCompare::new(index, ScmpCompareOp::LessOrEqual, self.value),
            Op::Equal => ScmpArgCompare::new(index, ScmpCompareOp::Equal, self.value),
            Op::GreaterOrEqual => {
                ScmpArgCompare::new(index, ScmpCompareOp::GreaterEqual, self.value)
            }
            Op::GreaterThan => ScmpArgCompare::new(index, ScmpCompareOp::Greater, self.value),
            Op::MaskedEqual => ScmpArgCompare::new(
                index,
                ScmpCompareOp::MaskedEqual(self.value),
                self.value_two,
            ),
        }
    }
}

/// A seccomp architecture, libseccomp's `SCMP_ARCH_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86,
    X86_64,
    X32,
    Arm,
    Aarch64,
    Loongarch64,
    M68k,
    Mips,
    Mips64,
    Mips64N32,
    Mipsel,
    Mipsel64,
    Mipsel64N32,
    Ppc,
    Ppc64,
    Ppc64Le,
    S390,
    S390X,
    Parisc,
    Parisc64,
    Riscv64,
    Sh,
    Sheb,
}

impl Arch {
    const ALL: [Arch; 23] = [
        Arch::X86,
        Arch::X86_64,
        Arch::X32,
        Arch::Arm,
        Arch::Aarch64,
        Arch::Loongarch64,
        Arch::M68k,
        Arch::Mips,
        Arch::Mips64,
        Arch::Mips64N32,
        Arch::Mipsel,
        Arch::Mipsel64,
        Arch::Mipsel64N32,
        Arch::Ppc,
        Arch::Ppc64,
        Arch::Ppc64Le,
        Arch::S390,
        Arch::S390X,
        Arch::Parisc,
        Arch::Parisc64,
        Arch::Riscv64,
        Arch::Sh,
        Arch::Sheb,
    ];

    /// The profile spelling, `SCMP_ARCH_X86_64`.
    pub fn name(self) -> &'static str {
        self.table().0
    }

    /// The spelling of `includes.arches`/`excludes.arches`: Go's GOARCH as Docker maps it to
    /// libseccomp's names (`amd64`, `x86`, `arm64`, and Docker's own `mips3l64n32`).
    pub fn go_name(self) -> &'static str {
        self.table().1
    }

    fn scmp(self) -> ScmpArch {
        self.table().2
    }

    fn table(self) -> (&'static str, &'static str, ScmpArch) {
        match self {
            Arch::X86 => ("SCMP_ARCH_X86", "x86", ScmpArch::X86),
            Arch::X86_64 => ("SCMP_ARCH_X86_64", "amd64", ScmpArch::X8664),
            Arch::X32 => ("SCMP_ARCH_X32", "x32", ScmpArch::X32),
            Arch::Arm => ("SCMP_ARCH_ARM", "arm", ScmpArch::Arm),
            Arch::Aarch64 => ("SCMP_ARCH_AARCH64", "arm64", ScmpArch::Aarch64),
            Arch::Loongarch64 => ("SCMP_ARCH_LOONGARCH64", "loong64", ScmpArch::Loongarch64),
            Arch::M68k => ("SCMP_ARCH_M68K", "m68k", ScmpArch::M68k),
            Arch::Mips => ("SCMP_ARCH_MIPS", "mips", ScmpArch::Mips),
            Arch::Mips64 => ("SCMP_ARCH_MIPS64", "mips64", ScmpArch::Mips64),
            Arch::Mips64N32 => ("SCMP_ARCH_MIPS64N32", "mips64n32", ScmpArch::Mips64N32),
            Arch::Mipsel => ("SCMP_ARCH_MIPSEL", "mipsel", ScmpArch::Mipsel),
            Arch::Mipsel64 => ("SCMP_ARCH_MIPSEL64", "mipsel64", ScmpArch::Mipsel64),
            Arch::Mipsel64N32 => (
                "SCMP_ARCH_MIPSEL64N32",
                "mips3l64n32",
                ScmpArch::Mipsel64N32,
            ),
            Arch::Ppc => ("SCMP_ARCH_PPC", "ppc", ScmpArch::Ppc),
            Arch::Ppc64 => ("SCMP_ARCH_PPC64", "ppc64", ScmpArch::Ppc64),
            Arch::Ppc64Le => ("SCMP_ARCH_PPC64LE", "ppc64le", ScmpArch::Ppc64Le),
            Arch::S390 => ("SCMP_ARCH_S390", "s390", ScmpArch::S390),
            Arch::S390X => ("SCMP_ARCH_S390X", "s390x", ScmpArch::S390X),
            Arch::Parisc => ("SCMP_ARCH_PARISC", "parisc", ScmpArch::Parisc),
            Arch::Parisc64 => ("SCMP_ARCH_PARISC64", "parisc64", ScmpArch::Parisc64),
            Arch::Riscv64 => ("SCMP_ARCH_RISCV64", "riscv64", ScmpArch::Riscv64),
            Arch::Sh => ("SCMP_ARCH_SH", "sh", ScmpArch::Sh),
            Arch::Sheb => ("SCMP_ARCH_SHEB", "sheb", ScmpArch::Sheb),
        }
    }

    fn parse(field: String, value: &str) -> Result<Arch, SeccompError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == value)
            .ok_or_else(|| SeccompError::UnknownArch {
                field,
                value: value.into(),
            })
    }

    /// A Go-style name in `includes.arches`; Docker's `mipsle` (its own spelling of mipsel
    /// in one table) is accepted too.
    fn check_go_name(field: String, value: &str) -> Result<(), SeccompError> {
        if value == "mipsle" || Self::ALL.into_iter().any(|a| a.go_name() == value) {
            Ok(())
        } else {
            Err(SeccompError::UnknownArch {
                field,
                value: value.into(),
            })
        }
    }

    /// The architecture libseccomp builds for on this machine.
    pub fn native() -> Result<Arch, SeccompError> {
        let native = ScmpArch::native();
        Self::ALL
            .into_iter()
            .find(|a| a.scmp() == native)
            .ok_or(SeccompError::NativeArch(native))
    }
}

impl Serialize for Arch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A seccomp(2) filter flag a profile may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// Synchronize all threads: meaningless here (the loading process is single-threaded,
    /// and runc ignores it too), accepted and ignored.
    Tsync,
    Log,
    SpecAllow,
    WaitKillableRecv,
}

impl Flag {
    const ALL: [Flag; 4] = [
        Flag::Tsync,
        Flag::Log,
        Flag::SpecAllow,
        Flag::WaitKillableRecv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Flag::Tsync => "SECCOMP_FILTER_FLAG_TSYNC",
            Flag::Log => "SECCOMP_FILTER_FLAG_LOG",
            Flag::SpecAllow => "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            Flag::WaitKillableRecv => "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        }
    }
}

impl Serialize for Flag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What resolution looks at: the machine and the container's capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Host {
    arch: Arch,
    kernel: KernelVersion,
    caps: CapSet,
}

impl Profile {
    /// Warren's built-in default, equivalent to Docker's current default profile: everything
    /// not listed fails with EPERM; capability-gated syscalls are allowed only to containers
    /// holding the capability; namespace creation through clone/unshare needs CAP_SYS_ADMIN.
    pub fn builtin() -> Profile {
        use SyscallRule as R;
        let mut syscalls = vec![
            R::allow(&ALLOWED.concat()),
            // ptrace is safe once the kernel closed the seccomp bypass through it (4.8).
            R::allow(&["process_vm_readv", "process_vm_writev", "ptrace"]).since_kernel(4, 8),
            R::allow(&["socket"])
                .arg(0, Op::NotEqual, AF_VSOCK)
                .comment("AF_VSOCK is not namespaced: it would reach the host's and VMs' services"),
        ];
        // Only the personalities programs ask for (Linux, Linux32, UNAME26, query); not
        // e.g. ADDR_NO_RANDOMIZE, which would switch off ASLR.
        for persona in [0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
            syscalls.push(R::allow(&["personality"]).arg(0, Op::Equal, persona));
        }
        syscalls.extend([
            R::allow(&["sync_file_range2", "swapcontext"]).on_arches(&["ppc64le"]),
            R::allow(&[
                "arm_fadvise64_64",
                "arm_sync_file_range",
                "sync_file_range2",
                "breakpoint",
                "cacheflush",
                "set_tls",
            ])
            .on_arches(&["arm", "arm64"]),
            R::allow(&["arch_prctl"]).on_arches(&["amd64", "x32"]),
            R::allow(&["modify_ldt"]).on_arches(&["amd64", "x32", "x86"]),
            R::allow(&[
                "s390_pci_mmio_read",
                "s390_pci_mmio_write",
                "s390_runtime_instr",
            ])
            .on_arches(&["s390", "s390x"]),
            R::allow(&["riscv_flush_icache"]).on_arches(&["riscv64"]),
        ]);
        syscalls.extend([
            R::allow(&["open_by_handle_at"]).with_caps(&["CAP_DAC_READ_SEARCH"]),
            R::allow(SYS_ADMIN_ALLOWED).with_caps(&["CAP_SYS_ADMIN"]),
            // Without CAP_SYS_ADMIN, clone only without namespace flags (CLONE_NEWNS,
            // NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET: mask 0x7E020000). s390
            // swaps clone's first two arguments.
            R::allow(&["clone"])
                .arg_masked(0, CLONE_NAMESPACE_FLAGS, 0)
                .without_caps(&["CAP_SYS_ADMIN"])
                .not_on_arches(&["s390", "s390x"]),
            R::allow(&["clone"])
                .arg_masked(1, CLONE_NAMESPACE_FLAGS, 0)
                .on_arches(&["s390", "s390x"])
                .without_caps(&["CAP_SYS_ADMIN"])
                .comment("s390 parameter ordering for clone is different"),
            // clone3 passes its flags in memory, out of the filter's reach: say ENOSYS so
            // libcs fall back to clone, whose flags the rule above can check.
            R::errno(&["clone3"], ENOSYS).without_caps(&["CAP_SYS_ADMIN"]),
            R::allow(&["reboot"]).with_caps(&["CAP_SYS_BOOT"]),
            R::allow(&["chroot"]).with_caps(&["CAP_SYS_CHROOT"]),
            R::allow(&["delete_module", "init_module", "finit_module"])
                .with_caps(&["CAP_SYS_MODULE"]),
            R::allow(&["acct"]).with_caps(&["CAP_SYS_PACCT"]),
            R::allow(&[
                "kcmp",
                "pidfd_getfd",
                "process_madvise",
                "process_vm_readv",
                "process_vm_writev",
                "ptrace",
            ])
            .with_caps(&["CAP_SYS_PTRACE"]),
            R::allow(&["iopl", "ioperm"]).with_caps(&["CAP_SYS_RAWIO"]),
            R::allow(&["settimeofday", "stime", "clock_settime", "clock_settime64"])
                .with_caps(&["CAP_SYS_TIME"]),
            R::allow(&["vhangup"]).with_caps(&["CAP_SYS_TTY_CONFIG"]),
            R::allow(&[
                "get_mempolicy",
                "mbind",
                "set_mempolicy",
                "set_mempolicy_home_node",
            ])
            .with_caps(&["CAP_SYS_NICE"]),
            R::allow(&["syslog"]).with_caps(&["CAP_SYSLOG"]),
            R::allow(&["bpf"]).with_caps(&["CAP_BPF"]),
            R::allow(&["perf_event_open"]).with_caps(&["CAP_PERFMON"]),
        ]);
        Profile {
            default_action: Action::Errno,
            default_errno_ret: Some(EPERM),
            architectures: Vec::new(),
            arch_map: vec![
                ArchMap::new(Arch::X86_64, &[Arch::X86, Arch::X32]),
                ArchMap::new(Arch::Aarch64, &[Arch::Arm]),
                ArchMap::new(Arch::Mips64, &[Arch::Mips, Arch::Mips64N32]),
                ArchMap::new(Arch::Mips64N32, &[Arch::Mips, Arch::Mips64]),
                ArchMap::new(Arch::Mipsel64, &[Arch::Mipsel, Arch::Mipsel64N32]),
                ArchMap::new(Arch::Mipsel64N32, &[Arch::Mipsel, Arch::Mipsel64]),
                ArchMap::new(Arch::S390X, &[Arch::S390]),
                ArchMap::new(Arch::Riscv64, &[]),
            ],
            syscalls,
            flags: Vec::new(),
        }
    }

    /// Parse Docker's seccomp JSON. Unknown fields are ignored as Docker ignores them;
    /// unknown values of known fields are errors naming the field.
    pub fn from_json(text: &str) -> Result<Profile, SeccompError> {
        let wire: WireProfile = serde_json::from_str(text).map_err(SeccompError::Parse)?;
        Profile::try_from(wire)
    }

    /// The rules that apply to `host`, in profile order: moby's `setupSeccomp` filtering.
    fn resolve(&self, host: &Host) -> Vec<&SyscallRule> {
        self.syscalls
            .iter()
            .filter(|r| r.applies_to(host))
            .collect()
    }

    /// The architectures the filter covers besides the native one: the old-format list as
    /// is, or the native architecture's `archMap` entry.
    fn extra_arches(&self, native: Arch) -> Vec<Arch> {
        if !self.architectures.is_empty() {
            return self.architectures.clone();
        }
        self.arch_map
            .iter()
            .find(|m| m.architecture == native)
            .map(|m| {
                let mut arches = vec![m.architecture];
                arches.extend(&m.sub_architectures);
                arches
            })
            .unwrap_or_default()
    }

    /// Resolve the profile for a container holding `caps` on this machine (architecture and
    /// running kernel) and compile it with libseccomp into a BPF program covering the native
    /// architecture and its `archMap` sub-architectures.
    pub fn compile(&self, caps: CapSet) -> Result<Program, SeccompError> {
        let host = Host {
            arch: Arch::native()?,
            kernel: KernelVersion::running()?,
            caps,
        };
        self.compile_for(&host)
    }

    fn compile_for(&self, host: &Host) -> Result<Program, SeccompError> {
        if let Some(flag) = self.flags.iter().find(|f| **f != Flag::Tsync) {
            return Err(SeccompError::UnsupportedFlag { flag: flag.name() });
        }
        let default = self.default_action.to_scmp(self.default_errno_ret);
        let mut filter = ScmpFilterContext::new(default).map_err(SeccompError::CreateFilter)?;
        for arch in self.extra_arches(host.arch) {
            filter
                .add_arch(arch.scmp())
                .map_err(|source| SeccompError::AddArch {
                    arch: arch.name(),
                    source,
                })?;
        }
        let rules = self.resolve(host);
        // runc's threshold: a binary tree beats a linear scan once there are a few rules.
        if rules.iter().map(|r| r.names.len()).sum::<usize>() > 8 {
            filter.set_ctl_optimize(2).map_err(SeccompError::Optimize)?;
        }
        for rule in rules {
            rule.add_to(&mut filter, default)?;
        }
        Program::from_bytes(export(&filter)?)
    }
}

impl SyscallRule {
    fn applies_to(&self, host: &Host) -> bool {
        let arch = host.arch.go_name();
        let (inc, exc) = (&self.includes, &self.excludes);
        let excluded = exc.arches.iter().any(|a| a == arch)
            || !host.caps.intersect(exc.caps).is_empty()
            || exc.min_kernel.is_some_and(|v| host.kernel >= v);
        let included = (inc.arches.is_empty() || inc.arches.iter().any(|a| a == arch))
            && host.caps.contains(inc.caps)
            && inc.min_kernel.is_none_or(|v| host.kernel >= v);
        included && !excluded
    }

    /// runc's `matchCall` for each name.
    fn add_to(
        &self,
        filter: &mut ScmpFilterContext,
        default: ScmpAction,
    ) -> Result<(), SeccompError> {
        let action = self.action.to_scmp(self.errno_ret);
        // libseccomp refuses a rule that repeats the default action; it would be a no-op.
        if action == default {
            return Ok(());
        }
        let conditions: Vec<ScmpArgCompare> = self.args.iter().map(|a| a.to_scmp()).collect();
        // libseccomp ANDs the conditions of one rule and cannot compare one argument twice
        // in a rule; runc then falls back to one rule per condition (an OR).
        let mut seen = BTreeSet::new();
        let repeated_index = self.args.iter().any(|a| !seen.insert(a.index));
        for name in &self.names {
            // Names this libseccomp does not know are syscalls this kernel cannot have
            // either (runc skips them the same way).
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let added = if conditions.is_empty() {
                filter.add_rule(action, syscall).map(drop)
            } else if repeated_index {
                conditions.iter().try_for_each(|c| {
                    filter
                        .add_rule_conditional(action, syscall, std::slice::from_ref(c))
                        .map(drop)
                })
            } else {
                filter
                    .add_rule_conditional(action, syscall, &conditions)
                    .map(drop)
            };
            added.map_err(|source| SeccompError::AddRule {
                syscall: name.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Builder for the built-in profile: allow `names` unconditionally.
    fn allow(names: &[&str]) -> SyscallRule {
        SyscallRule {
            names: names.iter().map(|n| n.to_string()).collect(),
            action: Action::Allow,
            errno_ret: None,
            args: Vec::new(),
            comment: String::new(),
            includes: Filter::default(),
            excludes: Filter::default(),
        }
    }

    fn errno(names: &[&str], errno: u16) -> SyscallRule {
        SyscallRule {
            action: Action::Errno,
            errno_ret: Some(errno),
            ..Self::allow(names)
        }
    }

    fn arg(mut self, index: u8, op: Op, value: u64) -> SyscallRule {
        self.args.push(ArgCondition {
            index,
            value,
            value_two: 0,
            op,
        });
        self
    }

    fn arg_masked(mut self, index: u8, mask: u64, value: u64) -> SyscallRule {
        self.args.push(ArgCondition {
            index,
            value: mask,
            value_two: value,
            op: Op::MaskedEqual,
        });
        self
    }

    fn comment(mut self, text: &str) -> SyscallRule {
        self.comment = text.into();
        self
    }

    fn with_caps(mut self, caps: &[&str]) -> SyscallRule {
        self.includes.caps = cap_set(caps);
        self
    }

    fn without_caps(mut self, caps: &[&str]) -> SyscallRule {
        self.excludes.caps = cap_set(caps);
        self
    }

    fn on_arches(mut self, arches: &[&str]) -> SyscallRule {
        self.includes.arches = arches.iter().map(|a| a.to_string()).collect();
        self
    }

    fn not_on_arches(mut self, arches: &[&str]) -> SyscallRule {
        self.excludes.arches = arches.iter().map(|a| a.to_string()).collect();
        self
    }

    fn since_kernel(mut self, major: u32, minor: u32) -> SyscallRule {
        self.includes.min_kernel = Some(KernelVersion {
            major,
            minor,
            patch: 0,
        });
        self
    }
}

impl ArchMap {
    fn new(architecture: Arch, sub_architectures: &[Arch]) -> ArchMap {
        ArchMap {
            architecture,
            sub_architectures: sub_architectures.to_vec(),
        }
    }
}

/// Capability names of the built-in profile; all are in `caps::NAMES`.
fn cap_set(names: &[&str]) -> CapSet {
    names
        .iter()
        .map(|n| CapSet::parse_one(n).expect("built-in profile names known capabilities"))
        .fold(CapSet::EMPTY, CapSet::union)
}

/// seccomp_export_bpf writes to a descriptor (libseccomp 2.5 has no in-memory export): a
/// memfd keeps that off the filesystem and has no pipe's size limit.
fn export(filter: &ScmpFilterContext) -> Result<Vec<u8>, SeccompError> {
    let fd =
        nix::sys::memfd::memfd_create(c"warren-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| SeccompError::ExportBuffer(e.into()))?;
    filter.export_bpf(&fd).map_err(SeccompError::Export)?;
    let mut file = File::from(fd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(SeccompError::ExportBuffer)?;
    Ok(bytes)
}

/// A compiled filter: the raw `struct sock_filter` array as libseccomp exports it, in this
/// machine's byte order (it is loaded where it was compiled).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Program(Vec<u8>);

impl Program {
    /// Take back bytes written earlier (the copy in a container's bundle).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Program, SeccompError> {
        let len = bytes.len();
        if len == 0 || len % INSN_LEN != 0 || len / INSN_LEN > MAX_INSNS {
            return Err(SeccompError::InvalidProgram { len });
        }
        Ok(Program(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Install the filter on the calling thread: seccomp(SECCOMP_SET_MODE_FILTER, 0, prog).
    /// The caller must have set NO_NEW_PRIVS or hold CAP_SYS_ADMIN.
    pub fn load(&self) -> Result<(), nix::errno::Errno> {
        crate::runtime::sys::seccomp_set_mode_filter(&self.0)
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Program({} instructions)", self.0.len() / INSN_LEN)
    }
}

const AF_VSOCK: u64 = 40;
const ENOSYS: u16 = 38;
/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Docker's main allow-list: syscalls every container may make. Grouped for reading; the
/// kernel still checks its own permissions (e.g. adjtimex may only read without
/// CAP_SYS_TIME).
#[rustfmt::skip]
const ALLOWED: [&[&str]; 16] = [
    // Paths and directories.
    &[
        "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chmod", "fchmod",
        "fchmodat", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32",
        "creat", "open", "openat", "openat2", "name_to_handle_at", "link", "linkat", "symlink",
        "symlinkat", "readlink", "readlinkat", "rename", "renameat", "renameat2", "unlink",
        "unlinkat", "mkdir", "mkdirat", "rmdir", "mknod", "mknodat", "umask", "getdents",
        "getdents64", "truncate", "truncate64", "utime", "utimes", "utimensat", "utimensat_time64",
        "futimesat",
    ],
    // File status.
    &[
        "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat",
        "statx", "statfs", "statfs64", "fstatfs", "fstatfs64",
    ],
    // Extended attributes.
    &[
        "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
        "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    ],
    // Reading and writing descriptors.
    &[
        "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev",
        "pwritev2", "lseek", "_llseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl",
        "fcntl64", "ioctl", "flock", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
        "fallocate", "fadvise64", "fadvise64_64", "readahead", "ftruncate", "ftruncate64",
        "sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range", "pipe", "pipe2",
    ],
    // Asynchronous I/O.
    &[
        "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64", "io_uring_setup", "io_uring_enter", "io_uring_register",
    ],
    // Waiting for descriptors and events.
    &[
        "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait",
        "epoll_wait_old", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd",
        "signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
        "timerfd_settime64", "inotify_init", "inotify_init1", "inotify_add_watch",
        "inotify_rm_watch", "fanotify_mark",
    ],
    // Memory.
    &[
        "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
        "mlock", "mlock2", "mlockall", "munlock", "munlockall", "membarrier", "memfd_create",
        "memfd_secret", "remap_file_pages", "pkey_alloc", "pkey_free", "pkey_mprotect",
    ],
    // Processes and threads.
    &[
        "execve", "execveat", "fork", "vfork", "exit", "exit_group", "wait4", "waitid", "waitpid",
        "getpid", "getppid", "gettid", "set_tid_address", "getpgid", "setpgid", "getpgrp", "getsid",
        "setsid", "futex", "futex_time64", "futex_waitv", "get_robust_list", "set_robust_list",
        "rseq", "restart_syscall", "prctl", "get_thread_area", "set_thread_area", "pidfd_open",
        "pidfd_send_signal", "process_mrelease",
    ],
    // Confining oneself further.
    &[
        "capget", "capset", "seccomp", "landlock_add_rule", "landlock_create_ruleset",
        "landlock_restrict_self",
    ],
    // Credentials.
    &[
        "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
        "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32",
        "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid",
        "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32", "setfsuid",
        "setfsuid32", "setfsgid", "setfsgid32", "setgroups", "setgroups32",
    ],
    // Scheduling, priorities and resource limits.
    &[
        "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr",
        "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
        "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
        "sched_rr_get_interval_time64", "getpriority", "setpriority", "ioprio_get", "ioprio_set",
        "getcpu", "getrlimit", "setrlimit", "ugetrlimit", "prlimit64", "getrusage", "times",
    ],
    // Signals.
    &[
        "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigpending",
        "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
        "rt_sigtimedwait_time64", "sigaltstack", "sigprocmask", "sigreturn", "pause",
    ],
    // Clocks and timers.
    &[
        "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
        "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "adjtimex",
        "clock_adjtime", "clock_adjtime64", "alarm", "getitimer", "setitimer", "timer_create",
        "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
        "timer_settime64",
    ],
    // System V and POSIX IPC.
    &[
        "ipc", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
        "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget", "mq_open", "mq_unlink",
        "mq_getsetattr", "mq_notify", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
        "mq_timedsend_time64",
    ],
    // Sockets; socket(2) itself has its own rule (no AF_VSOCK).
    &[
        "socketcall", "socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname",
        "getpeername", "getsockopt", "setsockopt", "send", "sendto", "sendmsg", "sendmmsg", "recv",
        "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64", "shutdown",
    ],
    // System information.
    &["uname", "sysinfo", "getrandom"],
];

/// Allowed with CAP_SYS_ADMIN: mounts, namespaces, host names, and the rest of what that
/// capability guards.
#[rustfmt::skip]
const SYS_ADMIN_ALLOWED: &[&str] = &[
    "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
    "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
    "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
    "umount2", "unshare",
];

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn caps_empty(caps: &CapSet) -> bool {
    caps.is_empty()
}

fn serialize_caps<S: Serializer>(caps: &CapSet, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(caps.names())
}

/// Docker's JSON as Go decodes it: every field optional (absent and null alike), values
/// still strings. [`Profile::try_from`] checks them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireProfile {
    #[serde(default)]
    default_action: Option<String>,
    #[serde(default)]
    default_errno_ret: Option<u64>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<WireArchMap>>,
    #[serde(default)]
    syscalls: Option<Vec<WireSyscall>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireArchMap {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSyscall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    errno_ret: Option<u64>,
    #[serde(default)]
    args: Option<Vec<WireArg>>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<WireFilter>,
    #[serde(default)]
    excludes: Option<WireFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireArg {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    value: u64,
    #[serde(default)]
    value_two: u64,
    #[serde(default)]
    op: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFilter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

fn errno_field(field: String, value: Option<u64>) -> Result<Option<u16>, SeccompError> {
    value
        .map(|v| {
            u16::try_from(v).map_err(|_| SeccompError::OutOfRange {
                field,
                value: v,
                max: u16::MAX.into(),
            })
        })
        .transpose()
}

impl TryFrom<WireProfile> for Profile {
    type Error = SeccompError;

    fn try_from(wire: WireProfile) -> Result<Profile, SeccompError> {
        if wire.listener_path.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(SeccompError::Notify {
                field: "listenerPath".into(),
            });
        }
        let default_action = match wire.default_action.as_deref() {
            None | Some("") => return Err(SeccompError::MissingDefaultAction),
            Some(a) => Action::parse("defaultAction".into(), a)?,
        };
        let architectures = wire.architectures.unwrap_or_default();
        let arch_map = wire.arch_map.unwrap_or_default();
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err(SeccompError::ArchitecturesAndArchMap);
        }
        let architectures = architectures
            .iter()
            .enumerate()
            .map(|(i, a)| Arch::parse(format!("architectures[{i}]"), a))
            .collect::<Result<_, _>>()?;
        let arch_map = arch_map
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let field = format!("archMap[{i}].architecture");
                Ok(ArchMap {
                    architecture: Arch::parse(field, m.architecture.as_deref().unwrap_or(""))?,
                    sub_architectures: m
                        .sub_architectures
                        .unwrap_or_default()
                        .iter()
                        .enumerate()
                        .map(|(j, a)| Arch::parse(format!("archMap[{i}].subArchitectures[{j}]"), a))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, SeccompError>>()?;
        let syscalls = wire
            .syscalls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, s)| SyscallRule::from_wire(&format!("syscalls[{i}]"), s))
            .collect::<Result<_, _>>()?;
        let flags = wire
            .flags
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Flag::ALL
                    .into_iter()
                    .find(|known| known.name() == f)
                    .ok_or_else(|| SeccompError::UnknownFlag {
                        field: format!("flags[{i}]"),
                        value: f.clone(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Profile {
            default_action,
            default_errno_ret: errno_field("defaultErrnoRet".into(), wire.default_errno_ret)?,
            architectures,
            arch_map,
            syscalls,
            flags,
        })
    }
}

impl SyscallRule {
    fn from_wire(at: &str, wire: WireSyscall) -> Result<SyscallRule, SeccompError> {
        let names = match (
            wire.name.filter(|n| !n.is_empty()),
            wire.names.unwrap_or_default(),
        ) {
            (Some(_), names) if !names.is_empty() => {
                return Err(SeccompError::NameAndNames { field: at.into() })
            }
            (Some(name), _) => vec![name],
            (None, names) if !names.is_empty() => names,
            (None, _) => return Err(SeccompError::NoNames { field: at.into() }),
        };
        let action = Action::parse(format!("{at}.action"), wire.action.as_deref().unwrap_or(""))?;
        let args = wire
            .args
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(j, a)| {
                let field = format!("{at}.args[{j}]");
                let op = a.op.as_deref().unwrap_or("");
                let op = Op::ALL
                    .into_iter()
                    .find(|o| o.name() == op)
                    .ok_or_else(|| SeccompError::UnknownOperator {
                        field: format!("{field}.op"),
                        value: op.into(),
                    })?;
                let index = u8::try_from(a.index)
                    .ok()
                    .filter(|i| *i <= MAX_ARG_INDEX)
                    .ok_or_else(|| SeccompError::OutOfRange {
                        field: format!("{field}.index"),
                        value: a.index,
                        max: MAX_ARG_INDEX.into(),
                    })?;
                Ok(ArgCondition {
                    index,
                    value: a.value,
                    value_two: a.value_two,
                    op,
                })
            })
            .collect::<Result<_, SeccompError>>()?;
        Ok(SyscallRule {
            names,
            action,
            errno_ret: errno_field(format!("{at}.errnoRet"), wire.errno_ret)?,
            args,
            comment: wire.comment.unwrap_or_default(),
            includes: Filter::from_wire(&format!("{at}.includes"), wire.includes)?,
            excludes: Filter::from_wire(&format!("{at}.excludes"), wire.excludes)?,
        })
    }
}

impl Filter {
    fn from_wire(at: &str, wire: Option<WireFilter>) -> Result<Filter, SeccompError> {
        let Some(wire) = wire else {
            return Ok(Filter::default());
        };
        let mut caps = CapSet::EMPTY;
        for (k, name) in wire.caps.unwrap_or_default().iter().enumerate() {
            // Docker compares the exact `CAP_` spelling with the bounding set's names.
            let cap = CapSet::parse_one(name)
                .ok()
                .filter(|c| c.names().first().is_some_and(|n| n == name))
                .ok_or_else(|| SeccompError::UnknownCapability {
                    field: format!("{at}.caps[{k}]"),
                    value: name.clone(),
                })?;
            caps = caps.union(cap);
        }
        let arches = wire.arches.unwrap_or_default();
        for (k, arch) in arches.iter().enumerate() {
            Arch::check_go_name(format!("{at}.arches[{k}]"), arch)?;
        }
        let min_kernel = match wire.min_kernel.as_deref() {
            None | Some("") => None,
            Some(text) => Some(KernelVersion::parse_profile(text).ok_or_else(|| {
                SeccompError::InvalidKernelVersion {
                    field: format!("{at}.minKernel"),
                    value: text.into(),
                }
            })?),
        };
        Ok(Filter {
            caps,
            arches,
            min_kernel,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::ForkResult;

    use super::*;

    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
    const X32_SYSCALL_BIT: i32 = 0x4000_0000;
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    const CLONE_NEWNET: u64 = 0x4000_0000;
    const SIGCHLD: u64 = 17;

    // ---- A classic BPF interpreter for the subset seccomp filters use. ----

    /// struct seccomp_data, as the kernel hands it to the filter.
    #[derive(Debug, Clone, Copy)]
    struct SeccompData {
        nr: i32,
        arch: u32,
        instruction_pointer: u64,
        args: [u64; 6],
    }

    impl SeccompData {
        fn call(arch: u32, nr: i64, args: &[u64]) -> SeccompData {
            let mut all = [0; 6];
            all[..args.len()].copy_from_slice(args);
            SeccompData {
                nr: i32::try_from(nr).unwrap(),
                arch,
                instruction_pointer: 0x7f00_dead_beef,
                args: all,
            }
        }

        /// The struct's bytes in native order: the filter loads 32-bit words at offsets.
        fn bytes(&self) -> [u8; 64] {
            let mut out = [0; 64];
            out[0..4].copy_from_slice(&self.nr.to_ne_bytes());
            out[4..8].copy_from_slice(&self.arch.to_ne_bytes());
            out[8..16].copy_from_slice(&self.instruction_pointer.to_ne_bytes());
            for (i, arg) in self.args.iter().enumerate() {
                out[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
            }
            out
        }
    }

    /// What a filter decided (SECCOMP_RET_*).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Verdict {
        Allow,
        Errno(u16),
        KillThread,
        KillProcess,
        Trap,
        Trace(u16),
        Log,
    }

    /// Run `program` on `data` the way the kernel does, covering the instructions libseccomp
    /// emits (checked: an unknown opcode fails the test rather than guessing).
    fn run(program: &Program, data: SeccompData) -> Verdict {
        let insns: Vec<(u16, u8, u8, u32)> = program
            .bytes()
            .chunks_exact(INSN_LEN)
            .map(|c| {
                (
                    u16::from_ne_bytes([c[0], c[1]]),
                    c[2],
                    c[3],
                    u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect();
        let data = data.bytes();
        let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        let ret = loop {
            let (code, jt, jf, k) = insns[pc];
            pc += 1;
            let jump = |cond: bool| usize::from(if cond { jt } else { jf });
            let slot = k as usize;
            match code {
                // BPF_LD | BPF_W | BPF_ABS: a word of seccomp_data.
                0x20 => {
                    assert!(slot % 4 == 0 && slot + 4 <= data.len(), "load at {slot}");
                    a = u32::from_ne_bytes(data[slot..slot + 4].try_into().unwrap());
                }
                0x00 => a = k,                  // BPF_LD | BPF_IMM
                0x01 => x = k,                  // BPF_LDX | BPF_IMM
                0x60 => a = mem[slot],          // BPF_LD | BPF_MEM
                0x61 => x = mem[slot],          // BPF_LDX | BPF_MEM
                0x02 => mem[slot] = a,          // BPF_ST
                0x03 => mem[slot] = x,          // BPF_STX
                0x54 => a &= k,                 // BPF_ALU | BPF_AND | BPF_K
                0x44 => a |= k,                 // BPF_ALU | BPF_OR | BPF_K
                0x05 => pc += slot,             // BPF_JMP | BPF_JA
                0x15 => pc += jump(a == k),     // BPF_JMP | BPF_JEQ | BPF_K
                0x25 => pc += jump(a > k),      // BPF_JMP | BPF_JGT | BPF_K
                0x35 => pc += jump(a >= k),     // BPF_JMP | BPF_JGE | BPF_K
                0x45 => pc += jump(a & k != 0), // BPF_JMP | BPF_JSET | BPF_K
                0x06 => break k,                // BPF_RET | BPF_K
                0x16 => break a,                // BPF_RET | BPF_A
                0x07 => x = a,                  // BPF_MISC | BPF_TAX
                0x87 => a = x,                  // BPF_MISC | BPF_TXA
                other => panic!("opcode {other:#06x} at {}: not interpreted", pc - 1),
            }
        };
        let value = u16::try_from(ret & 0xffff).unwrap();
        match ret & 0xffff_0000 {
            0x7fff_0000 => Verdict::Allow,
            0x0005_0000 => Verdict::Errno(value),
            0x0000_0000 => Verdict::KillThread,
            0x8000_0000 => Verdict::KillProcess,
            0x0003_0000 => Verdict::Trap,
            0x7ff0_0000 => Verdict::Trace(value),
            0x7ffc_0000 => Verdict::Log,
            other => panic!("return value {other:#x}"),
        }
    }

    fn caps(names: &[&str]) -> CapSet {
        cap_set(names)
    }

    fn x86_64(nr: i64, args: &[u64]) -> SeccompData {
        SeccompData::call(AUDIT_ARCH_X86_64, nr, args)
    }

    // ---- Docker's profile: the built-in one is Docker's current default. ----

    const DOCKER_PROFILE_ENV: &str = "WARREN_DOCKER_SECCOMP_PROFILE";
    /// Where scripts/deps.sh puts Debian 12's copy (golang-github-docker-docker-dev).
    const DOCKER_PROFILE_CACHE: &str = "/var/cache/warren-test/docker-seccomp-default.json";
    /// Where the Debian package itself installs it.
    const DOCKER_PROFILE_GOCODE: &str =
        "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json";

    fn docker_profile_path() -> PathBuf {
        let path = match std::env::var_os(DOCKER_PROFILE_ENV) {
            Some(path) => PathBuf::from(path),
            None => [DOCKER_PROFILE_CACHE, DOCKER_PROFILE_GOCODE]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .unwrap_or_else(|| DOCKER_PROFILE_CACHE.into()),
        };
        assert!(
            path.exists(),
            "Docker's 20.10 seccomp profile is missing at {}: run scripts/deps.sh as root (it \
             fetches golang-github-docker-docker-dev with apt-get download and extracts \
             profiles/seccomp/default.json to {DOCKER_PROFILE_CACHE}), or point \
             {DOCKER_PROFILE_ENV} at a copy",
            path.display()
        );
        path
    }

    /// The one rule `pick` selects; an edit that matches none or several means the 20.10
    /// file is not the one the deltas were written against.
    fn the_rule<'p>(
        profile: &'p mut Profile,
        what: &str,
        pick: impl Fn(&SyscallRule) -> bool,
    ) -> &'p mut SyscallRule {
        let mut matching = profile.syscalls.iter_mut().filter(|r| pick(r));
        let rule = matching
            .next()
            .unwrap_or_else(|| panic!("no rule for {what}"));
        assert!(matching.next().is_none(), "several rules for {what}");
        rule
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// What changed in moby's default.json between Docker 20.10.24 and moby master
    /// (Docker 25+).
    fn docker_20_10_to_current(mut p: Profile) -> Profile {
        p.default_errno_ret = Some(1);
        p.arch_map.push(ArchMap::new(Arch::Riscv64, &[]));

        let main = the_rule(&mut p, "the main allow-list", |r| r.names.len() > 300);
        main.names.retain(|n| n != "socket");
        main.names.extend(strings(&[
            "name_to_handle_at",
            "pkey_alloc",
            "pkey_free",
            "pkey_mprotect",
        ]));
        the_rule(&mut p, "ptrace since 4.8", |r| {
            r.includes.min_kernel.is_some()
        })
        .names = strings(&["process_vm_readv", "process_vm_writev", "ptrace"]);
        the_rule(&mut p, "ppc64le", |r| r.includes.arches == ["ppc64le"])
            .names
            .push("swapcontext".into());
        let admin = caps(&["CAP_SYS_ADMIN"]);
        // Allowed to everyone now, so moby dropped it from the CAP_SYS_ADMIN rule.
        the_rule(&mut p, "CAP_SYS_ADMIN", |r| r.includes.caps == admin)
            .names
            .retain(|n| n != "name_to_handle_at");
        the_rule(&mut p, "CAP_SYS_TIME", |r| {
            r.includes.caps == caps(&["CAP_SYS_TIME"])
        })
        .names
        .push("clock_settime64".into());
        the_rule(&mut p, "CAP_SYS_NICE", |r| {
            r.includes.caps == caps(&["CAP_SYS_NICE"])
        })
        .names
        .push("set_mempolicy_home_node".into());
        // clone3: one ENOSYS rule instead of separate mips (errno 89) and non-mips rules.
        let before = p.syscalls.len();
        p.syscalls.retain(|r| r.names != ["clone3"]);
        assert_eq!(before - p.syscalls.len(), 2, "20.10 has two clone3 rules");

        p.syscalls.extend([
            SyscallRule::allow(&["socket"]).arg(0, Op::NotEqual, AF_VSOCK),
            SyscallRule::allow(&["riscv_flush_icache"]).on_arches(&["riscv64"]),
            SyscallRule::errno(&["clone3"], ENOSYS).without_caps(&["CAP_SYS_ADMIN"]),
            SyscallRule::allow(&["bpf"]).with_caps(&["CAP_BPF"]),
            SyscallRule::allow(&["perf_event_open"]).with_caps(&["CAP_PERFMON"]),
        ]);
        p
    }

    /// One rule as it bears on one syscall, with order-insensitive parts sorted.
    type RuleKey = (Action, Option<u16>, Vec<ArgCondition>, String, String);

    /// A profile as order-insensitive data: the top-level settings, and per syscall name
    /// the sorted list of rules that mention it. Comments do not count.
    fn normalize(p: &Profile) -> (String, BTreeMap<String, Vec<RuleKey>>) {
        let mut architectures = p.architectures.clone();
        architectures.sort();
        let arch_map: BTreeMap<Arch, BTreeSet<Arch>> = p
            .arch_map
            .iter()
            .map(|m| {
                (
                    m.architecture,
                    m.sub_architectures.iter().copied().collect(),
                )
            })
            .collect();
        let mut flags = p.flags.clone();
        flags.sort();
        let top = format!(
            "{:?} {:?} {architectures:?} {arch_map:?} {flags:?}",
            p.default_action, p.default_errno_ret
        );
        let filter = |f: &Filter| {
            let mut arches = f.arches.clone();
            arches.sort();
            format!("{:?} {arches:?} {:?}", f.caps, f.min_kernel)
        };
        let mut by_name: BTreeMap<String, Vec<RuleKey>> = BTreeMap::new();
        for rule in &p.syscalls {
            let mut args = rule.args.clone();
            args.sort();
            let key = (
                rule.action,
                rule.errno_ret,
                args,
                filter(&rule.includes),
                filter(&rule.excludes),
            );
            for name in &rule.names {
                by_name.entry(name.clone()).or_default().push(key.clone());
            }
        }
        for keys in by_name.values_mut() {
            keys.sort();
        }
        (top, by_name)
    }

    #[test]
    fn builtin_is_docker_20_10_plus_the_documented_changes() {
        let path = docker_profile_path();
        let text = std::fs::read_to_string(&path).unwrap();
        let docker =
            Profile::from_json(&text).unwrap_or_else(|e| panic!("parse {}: {e:?}", path.display()));
        let (want_top, want) = normalize(&docker_20_10_to_current(docker));
        let (got_top, got) = normalize(&Profile::builtin());
        assert_eq!(got_top, want_top);
        let names: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
        let differences: Vec<String> = names
            .into_iter()
            .filter(|n| want.get(*n) != got.get(*n))
            .map(|n| format!("{n}: docker {:?}, builtin {:?}", want.get(n), got.get(n)))
            .collect();
        assert!(
            differences.is_empty(),
            "built-in profile differs:\n{}",
            differences.join("\n")
        );
    }

    #[test]
    fn builtin_round_trips_through_docker_json() {
        let builtin = Profile::builtin();
        let json = serde_json::to_string_pretty(&builtin).unwrap();
        assert_eq!(Profile::from_json(&json).unwrap(), builtin);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(value["archMap"][0]["architecture"], "SCMP_ARCH_X86_64");
        let clone3 = value["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"][0] == "clone3" && r["action"] == "SCMP_ACT_ERRNO")
            .unwrap();
        assert_eq!(clone3["errnoRet"], 38);
        assert_eq!(clone3["excludes"]["caps"][0], "CAP_SYS_ADMIN");
    }

    // ---- Resolution: moby's includes/excludes. ----

    fn host(arch: Arch, kernel: (u32, u32), caps: CapSet) -> Host {
        Host {
            arch,
            kernel: KernelVersion {
                major: kernel.0,
                minor: kernel.1,
                patch: 0,
            },
            caps,
        }
    }

    /// Per syscall name, the actions the resolved rules give it.
    fn resolved_names(profile: &Profile, host: &Host) -> BTreeMap<String, Vec<Action>> {
        let mut names: BTreeMap<String, Vec<Action>> = BTreeMap::new();
        for rule in profile.resolve(host) {
            for name in &rule.names {
                names.entry(name.clone()).or_default().push(rule.action);
            }
        }
        names
    }

    #[test]
    fn includes_and_excludes_follow_moby() {
        let p = Profile::builtin();
        let docker = CapSet::docker_default();
        let amd64 = resolved_names(&p, &host(Arch::X86_64, (6, 1), docker));
        assert!(amd64.contains_key("arch_prctl") && amd64.contains_key("modify_ldt"));
        assert!(!amd64.contains_key("cacheflush") && !amd64.contains_key("swapcontext"));
        assert!(!amd64.contains_key("mount") && !amd64.contains_key("reboot"));
        assert!(amd64.contains_key("ptrace"), "kernel >= 4.8");
        assert!(
            amd64.contains_key("chroot"),
            "CAP_SYS_CHROOT is a default capability"
        );
        assert_eq!(amd64["clone3"], [Action::Errno]);

        let old = resolved_names(&p, &host(Arch::X86_64, (4, 4), docker));
        assert!(!old.contains_key("ptrace"));
        assert!(!old.contains_key("process_vm_readv"));

        let arm64 = resolved_names(&p, &host(Arch::Aarch64, (6, 1), docker));
        assert!(arm64.contains_key("cacheflush") && !arm64.contains_key("arch_prctl"));

        // CAP_SYS_ADMIN includes the admin rule and excludes both restricted clone rules.
        let admin = docker.union(caps(&["CAP_SYS_ADMIN"]));
        let with_admin = resolved_names(&p, &host(Arch::X86_64, (6, 1), admin));
        assert_eq!(with_admin["clone3"], [Action::Allow]);
        assert_eq!(with_admin["clone"], [Action::Allow]);
        assert!(with_admin.contains_key("mount"));

        // s390x takes the clone rule that checks argument 1.
        let s390x = Profile::builtin();
        let s390x_clone: Vec<u8> = s390x
            .resolve(&host(Arch::S390X, (6, 1), docker))
            .into_iter()
            .filter(|r| r.names == ["clone"])
            .flat_map(|r| r.args.iter().map(|a| a.index))
            .collect();
        assert_eq!(s390x_clone, [1]);
    }

    #[test]
    fn include_needs_every_cap_and_exclude_any() {
        let rule = |json: &str| {
            Profile::from_json(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{json}]}}"#
            ))
            .unwrap()
        };
        let both = rule(
            r#"{"names":["acct"],"action":"SCMP_ACT_ALLOW",
                "includes":{"caps":["CAP_SYS_PACCT","CAP_SYS_ADMIN"]}}"#,
        );
        let excluded = rule(
            r#"{"names":["acct"],"action":"SCMP_ACT_ALLOW",
                "excludes":{"caps":["CAP_SYS_PACCT","CAP_SYS_ADMIN"], "minKernel":"99.0"}}"#,
        );
        let pacct = caps(&["CAP_SYS_PACCT"]);
        let all = caps(&["CAP_SYS_PACCT", "CAP_SYS_ADMIN"]);
        let count = |p: &Profile, c| p.resolve(&host(Arch::X86_64, (6, 1), c)).len();
        assert_eq!(count(&both, pacct), 0);
        assert_eq!(count(&both, all), 1);
        assert_eq!(count(&excluded, CapSet::EMPTY), 1);
        assert_eq!(count(&excluded, pacct), 0);
        let newer =
            rule(r#"{"names":["acct"],"action":"SCMP_ACT_ALLOW","excludes":{"minKernel":"5.10"}}"#);
        assert_eq!(count(&newer, CapSet::EMPTY), 0, "6.1 >= 5.10 excludes");
    }

    // ---- The compiled built-in profile, run through the interpreter. ----

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn builtin_compiled_for_x86_64_behaves_like_docker() {
        let docker = CapSet::docker_default();
        let p = Profile::builtin().compile(docker).unwrap();
        let eperm = Verdict::Errno(1);
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_execve,
            libc::SYS_ptrace,
            libc::SYS_chroot,
        ] {
            assert_eq!(run(&p, x86_64(nr, &[])), Verdict::Allow, "syscall {nr}");
        }
        for nr in [
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_reboot,
            libc::SYS_settimeofday,
            libc::SYS_clock_settime,
            libc::SYS_kexec_load,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
        ] {
            assert_eq!(run(&p, x86_64(nr, &[])), eperm, "syscall {nr}");
        }
        let clone = |flags: u64| run(&p, x86_64(libc::SYS_clone, &[flags]));
        assert_eq!(clone(SIGCHLD), Verdict::Allow);
        assert_eq!(clone(0x3d0f00), Verdict::Allow, "pthread_create's flags");
        assert_eq!(clone(CLONE_NEWUSER | SIGCHLD), eperm);
        assert_eq!(clone(CLONE_NEWNET), eperm);
        assert_eq!(run(&p, x86_64(libc::SYS_clone3, &[])), Verdict::Errno(38));
        let persona = |v: u64| run(&p, x86_64(libc::SYS_personality, &[v]));
        assert_eq!(persona(0), Verdict::Allow);
        assert_eq!(persona(0xffff_ffff), Verdict::Allow);
        assert_eq!(persona(0x0040000), eperm, "ADDR_NO_RANDOMIZE");
        let socket = |family: u64| run(&p, x86_64(libc::SYS_socket, &[family, 1, 0]));
        assert_eq!(socket(2), Verdict::Allow, "AF_INET");
        assert_eq!(socket(16), Verdict::Allow, "AF_NETLINK");
        assert_eq!(socket(40), eperm, "AF_VSOCK");

        // The sub-architectures of the archMap entry: i386 and x32.
        let i386 = |nr: i64| run(&p, SeccompData::call(AUDIT_ARCH_I386, nr, &[]));
        assert_eq!(i386(3), Verdict::Allow, "read");
        assert_eq!(i386(21), eperm, "mount");
        let x32_read = i64::from(X32_SYSCALL_BIT) + libc::SYS_read;
        assert_eq!(run(&p, x86_64(x32_read, &[])), Verdict::Allow);
        // Any other ABI is killed.
        let arm64_read = SeccompData::call(AUDIT_ARCH_AARCH64, 63, &[]);
        assert!(matches!(
            run(&p, arm64_read),
            Verdict::KillThread | Verdict::KillProcess
        ));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn capabilities_open_their_syscalls() {
        let docker = CapSet::docker_default();
        let admin = Profile::builtin()
            .compile(docker.union(caps(&["CAP_SYS_ADMIN"])))
            .unwrap();
        assert_eq!(run(&admin, x86_64(libc::SYS_mount, &[])), Verdict::Allow);
        assert_eq!(run(&admin, x86_64(libc::SYS_clone3, &[])), Verdict::Allow);
        assert_eq!(
            run(&admin, x86_64(libc::SYS_clone, &[CLONE_NEWUSER])),
            Verdict::Allow
        );
        let time = Profile::builtin()
            .compile(docker.union(caps(&["CAP_SYS_TIME"])))
            .unwrap();
        assert_eq!(
            run(&time, x86_64(libc::SYS_settimeofday, &[])),
            Verdict::Allow
        );
        assert_eq!(run(&time, x86_64(libc::SYS_mount, &[])), Verdict::Errno(1));
        // Overlapping rules (bpf in CAP_SYS_ADMIN's and CAP_BPF's) merge.
        let everything = Profile::builtin().compile(CapSet::all_known()).unwrap();
        assert_eq!(run(&everything, x86_64(libc::SYS_bpf, &[])), Verdict::Allow);
        // Some syscalls no capability opens (Docker's profile never lists them).
        assert_eq!(
            run(&everything, x86_64(libc::SYS_kexec_load, &[])),
            Verdict::Errno(1)
        );
    }

    // ---- Custom profiles: parsing, errors, runc's rule translation. ----

    fn profile(json: &str) -> Profile {
        Profile::from_json(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn custom_profile_round_trip_compiles_and_denies_mkdir() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "comment": "no new directories"},
                {"name": "rmdir", "action": "SCMP_ACT_ERRNO"},
                {"names": ["no_such_syscall"], "action": "SCMP_ACT_KILL"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
            ]
        }"#;
        let p = profile(text);
        assert_eq!(p.syscalls[1].names, ["rmdir"]);
        assert_eq!(p.syscalls[0].errno_ret, Some(13));
        let again = profile(&serde_json::to_string(&p).unwrap());
        assert_eq!(again, p);
        let program = again.compile(CapSet::EMPTY).unwrap();
        let call = |nr| run(&program, x86_64(nr, &[]));
        assert_eq!(call(libc::SYS_mkdir), Verdict::Errno(13));
        assert_eq!(call(libc::SYS_mkdirat), Verdict::Errno(13));
        assert_eq!(
            call(libc::SYS_rmdir),
            Verdict::Errno(1),
            "ERRNO means EPERM"
        );
        assert_eq!(call(libc::SYS_read), Verdict::Allow);
        assert_eq!(call(libc::SYS_mount), Verdict::Allow);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn conditions_on_one_argument_are_alternatives() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
                {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[
                    {"index":0,"value":1,"op":"SCMP_CMP_EQ"},
                    {"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
                {"names":["kill"],"action":"SCMP_ACT_ALLOW","args":[
                    {"index":0,"value":1,"op":"SCMP_CMP_EQ"},
                    {"index":1,"value":9,"op":"SCMP_CMP_EQ"}]},
                {"names":["setns"],"action":"SCMP_ACT_ALLOW","args":[
                    {"index":1,"value":3,"valueTwo":1,"op":"SCMP_CMP_MASKED_EQ"}]},
                {"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                {"names":["write"],"action":"SCMP_ACT_KILL_PROCESS"},
                {"names":["getpid"],"action":"SCMP_ACT_TRACE","errnoRet":7},
                {"names":["getppid"],"action":"SCMP_ACT_LOG"},
                {"names":["gettid"],"action":"SCMP_ACT_TRAP"}
            ]}"#,
        );
        let program = p.compile(CapSet::EMPTY).unwrap();
        let call = |nr, args: &[u64]| run(&program, x86_64(nr, args));
        // Same index twice: one rule per condition (runc's old behaviour), so either value.
        assert_eq!(call(libc::SYS_personality, &[1]), Verdict::Allow);
        assert_eq!(call(libc::SYS_personality, &[2]), Verdict::Allow);
        assert_eq!(call(libc::SYS_personality, &[3]), Verdict::Errno(1));
        // Different indexes: one rule, both must hold.
        assert_eq!(call(libc::SYS_kill, &[1, 9]), Verdict::Allow);
        assert_eq!(call(libc::SYS_kill, &[1, 15]), Verdict::Errno(1));
        assert_eq!(call(libc::SYS_kill, &[2, 9]), Verdict::Errno(1));
        // MASKED_EQ: value is the mask, valueTwo the datum.
        assert_eq!(call(libc::SYS_setns, &[0, 0x5]), Verdict::Allow);
        assert_eq!(call(libc::SYS_setns, &[0, 0x6]), Verdict::Errno(1));
        // A rule equal to the default is skipped rather than refused by libseccomp.
        assert_eq!(call(libc::SYS_read, &[]), Verdict::Errno(1));
        assert_eq!(call(libc::SYS_write, &[]), Verdict::KillProcess);
        assert_eq!(call(libc::SYS_getpid, &[]), Verdict::Trace(7));
        assert_eq!(call(libc::SYS_getppid, &[]), Verdict::Log);
        assert_eq!(call(libc::SYS_gettid, &[]), Verdict::Trap);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn old_architectures_list_is_added_as_is() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],
                "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let program = p.compile(CapSet::EMPTY).unwrap();
        let i386_getpid = SeccompData::call(AUDIT_ARCH_I386, 20, &[]);
        assert_eq!(run(&program, i386_getpid), Verdict::Allow);
        let x32_getpid = x86_64(i64::from(X32_SYSCALL_BIT) + libc::SYS_getpid, &[]);
        assert!(matches!(
            run(&program, x32_getpid),
            Verdict::KillThread | Verdict::KillProcess
        ));
    }

    fn parse_error(json: &str) -> String {
        match Profile::from_json(json) {
            Ok(p) => panic!("accepted {json}: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn from_json_names_what_is_wrong() {
        let rule = |r: &str| format!(r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{r}]}}"#);
        assert!(matches!(
            Profile::from_json("{\"defaultAction\": "),
            Err(SeccompError::Parse(_))
        ));
        assert!(matches!(
            Profile::from_json(r#"{"defaultAction": 3}"#),
            Err(SeccompError::Parse(_))
        ));
        assert_eq!(
            parse_error("{}"),
            "seccomp profile: defaultAction is missing"
        );
        assert_eq!(
            parse_error(r#"{"defaultAction":"SCMP_ACT_FOO"}"#),
            r#"seccomp profile: defaultAction: unknown action "SCMP_ACT_FOO""#
        );
        assert_eq!(
            parse_error(&rule(r#"{"names":["read"],"action":"SCMP_ACT_NOTIFY"}"#)),
            "seccomp profile: syscalls[0].action: user notification (SCMP_ACT_NOTIFY, \
             listenerPath) is not supported"
        );
        assert_eq!(
            parse_error(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock"}"#),
            "seccomp profile: listenerPath: user notification (SCMP_ACT_NOTIFY, \
             listenerPath) is not supported"
        );
        assert_eq!(
            parse_error(&rule(
                r#"{"names":["read"],"action":"SCMP_ACT_ALLOW",
                    "args":[{"index":0,"value":1,"op":"SCMP_CMP_ABOUT"}]}"#
            )),
            r#"seccomp profile: syscalls[0].args[0].op: unknown operator "SCMP_CMP_ABOUT""#
        );
        assert_eq!(
            parse_error(&rule(
                r#"{"names":["read"],"action":"SCMP_ACT_ALLOW",
                    "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}"#
            )),
            "seccomp profile: syscalls[0].args[0].index: 6 is out of range (at most 5)"
        );
        assert_eq!(
            parse_error(&rule(
                r#"{"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}"#
            )),
            "seccomp profile: syscalls[0]: both 'name' and 'names' are set; use one"
        );
        assert_eq!(
            parse_error(&rule(r#"{"action":"SCMP_ACT_ALLOW"}"#)),
            "seccomp profile: syscalls[0]: no syscall 'name' or 'names'"
        );
        assert_eq!(
            parse_error(
                r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],
                    "archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#
            ),
            "seccomp profile: both 'architectures' and 'archMap' are set; use one"
        );
        assert_eq!(
            parse_error(
                r#"{"defaultAction":"SCMP_ACT_ERRNO",
                    "archMap":[{"architecture":"SCMP_ARCH_X86_64",
                                "subArchitectures":["SCMP_ARCH_I386"]}]}"#
            ),
            r#"seccomp profile: archMap[0].subArchitectures[0]: unknown architecture "SCMP_ARCH_I386""#
        );
        assert_eq!(
            parse_error(&rule(
                r#"{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["amd65"]}}"#
            )),
            r#"seccomp profile: syscalls[0].includes.arches[0]: unknown architecture "amd65""#
        );
        assert_eq!(
            parse_error(&rule(
                r#"{"names":["read"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["SYS_ADMIN"]}}"#
            )),
            r#"seccomp profile: syscalls[0].excludes.caps[0]: unknown capability "SYS_ADMIN""#
        );
        assert_eq!(
            parse_error(&rule(
                r#"{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}"#
            )),
            r#"seccomp profile: syscalls[0].includes.minKernel: "4" is not a kernel version ("<major>.<minor>")"#
        );
        assert_eq!(
            parse_error(&rule(
                r#"{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}"#
            )),
            "seccomp profile: syscalls[0].errnoRet: 70000 is out of range (at most 65535)"
        );
        assert_eq!(
            parse_error(
                r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_FAST"]}"#
            ),
            r#"seccomp profile: flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FAST""#
        );
    }

    #[test]
    fn load_flags_are_refused_when_compiling() {
        let tsync =
            profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC"]}"#);
        tsync.compile(CapSet::EMPTY).unwrap();
        let log =
            profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"]}"#);
        let err = log.compile(CapSet::EMPTY).unwrap_err();
        assert!(
            matches!(err, SeccompError::UnsupportedFlag { flag } if flag == "SECCOMP_FILTER_FLAG_LOG"),
            "{err}"
        );
    }

    #[test]
    fn kernel_versions_parse_like_moby() {
        let v = |major, minor, patch| KernelVersion {
            major,
            minor,
            patch,
        };
        assert_eq!(
            KernelVersion::parse_release("6.1.0-18-amd64"),
            Some(v(6, 1, 0))
        );
        assert_eq!(
            KernelVersion::parse_release("3.12-1-amd64"),
            Some(v(3, 12, 0))
        );
        assert_eq!(
            KernelVersion::parse_release("3.12.25-gentoo"),
            Some(v(3, 12, 25))
        );
        assert_eq!(
            KernelVersion::parse_release("6.18.44-fc-v1252"),
            Some(v(6, 18, 44))
        );
        assert_eq!(KernelVersion::parse_release("6"), None);
        assert_eq!(KernelVersion::parse_profile("4.8"), Some(v(4, 8, 0)));
        assert_eq!(KernelVersion::parse_profile("5.10.2"), Some(v(5, 10, 2)));
        assert_eq!(KernelVersion::parse_profile("0.0"), None);
        assert_eq!(KernelVersion::parse_profile("4.x"), None);
        assert!(v(4, 8, 0) <= v(4, 8, 0) && v(4, 8, 0) < v(4, 10, 0) && v(4, 10, 0) < v(5, 0, 0));
        assert!(KernelVersion::running().unwrap() >= v(3, 0, 0));
    }

    #[test]
    fn programs_are_whole_instructions() {
        assert!(Program::from_bytes(Vec::new()).is_err());
        assert!(Program::from_bytes(vec![0; 12]).is_err());
        assert!(Program::from_bytes(vec![0; INSN_LEN * (MAX_INSNS + 1)]).is_err());
        let ok = Program::from_bytes(vec![0; 16]).unwrap();
        assert_eq!(ok.bytes().len(), 16);
        assert_eq!(format!("{ok:?}"), "Program(2 instructions)");
    }

    /// Loads a real filter in a forked child (as root or not: NO_NEW_PRIVS suffices).
    #[test]
    fn loaded_filter_denies_mkdir_in_a_child() {
        let program = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
        )
        .compile(CapSet::EMPTY)
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("denied");
        // This test process has threads, so the child must not allocate (another thread may
        // hold the allocator's lock): everything is prepared here, and the child only makes
        // syscalls (create_dir builds short paths on the stack).
        match crate::runtime::sys::fork().unwrap() {
            ForkResult::Child => {
                let code = if nix::sys::prctl::set_no_new_privs().is_err() {
                    101
                } else if program.load().is_err() {
                    102
                } else {
                    match std::fs::create_dir(&target) {
                        Ok(()) => 0,
                        Err(e) => e.raw_os_error().unwrap_or(103),
                    }
                };
                crate::runtime::sys::exit_now(code)
            }
            ForkResult::Parent { child } => {
                let status = waitpid(child, None).unwrap();
                assert_eq!(status, WaitStatus::Exited(child, libc::EACCES));
                assert!(!target.exists());
                std::fs::create_dir(&target).expect("the parent is not confined");
            }
        }
    }
}
