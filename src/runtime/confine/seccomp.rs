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

