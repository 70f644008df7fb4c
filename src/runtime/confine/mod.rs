//! Confinement: what a container's processes may do. Docker's defaults and options, resolved
//! by the agent into one [`Confinement`] per container and applied by the runtime to every
//! process of the container (its init, its command, every exec).
//!
//! - `caps`: capability names, Docker's default set and the `--cap-add/--cap-drop` rules.
//! - `seccomp`: profiles in Docker's JSON format, Warren's built-in default (equivalent to
//!   Docker's) and their compilation to a BPF program, done once per profile and capability
//!   set by the agent; the runtime only loads the compiled program.
//! - `devices`: which device nodes a container may open or create (a BPF program on its
//!   cgroup v2 directory; the v1 devices controller where there is no v2 hierarchy).

mod bpf;
pub mod caps;
pub mod devices;
pub mod seccomp;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use self::caps::CapSet;
use self::devices::{DeviceNode, DeviceRule};

/// What a container's processes may do, fully resolved: the runtime applies it as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// `--privileged`: every capability, no seccomp, every device, writable /sys and
    /// /proc/sys, nothing masked.
    pub privileged: bool,
    /// The bounding set of every process; processes running as root also hold it as their
    /// permitted and effective sets (others hold none, as under Docker).
    pub capabilities: CapSet,
    pub no_new_privileges: bool,
    /// The compiled seccomp filter (raw BPF); `None` is unconfined.
    pub seccomp: Option<PathBuf>,
    pub read_only_rootfs: bool,
    /// Paths hidden behind /dev/null (files) or an empty read-only tmpfs (directories).
    pub masked_paths: Vec<String>,
    /// Paths bind-mounted read-only over themselves.
    pub readonly_paths: Vec<String>,
    /// Device nodes created in the container's /dev (`--device`).
    pub devices: Vec<DeviceNode>,
    /// What the device cgroup allows; `None` allows every device (privileged).
    pub device_rules: Option<Vec<DeviceRule>>,
    /// Namespaced sysctls, written inside the container's namespaces before it starts.
    pub sysctls: BTreeMap<String, String>,
    pub ulimits: Vec<Ulimit>,
    pub cgroupns: CgroupnsMode,
    /// Supplementary groups on top of the user's own (`--group-add`: names or numbers,
    /// resolved against the container's /etc/group).
    pub group_add: Vec<String>,
}

/// Docker's masked paths (`HostConfig.MaskedPaths` default).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths (`HostConfig.ReadonlyPaths` default).
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Whether a container gets its own cgroup namespace (`--cgroupns`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupnsMode {
    #[default]
    Private,
    Host,
}

impl CgroupnsMode {
    pub fn parse(text: &str) -> Result<CgroupnsMode, OptionError> {
        match text {
            "private" => Ok(CgroupnsMode::Private),
            "host" => Ok(CgroupnsMode::Host),
            other => Err(OptionError(format!(
                "invalid cgroup namespace mode: {other:?} (use \"private\" or \"host\")"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CgroupnsMode::Private => "private",
            CgroupnsMode::Host => "host",
        }
    }
}

/// A user's option that cannot be honoured as given; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionError(pub String);

/// One resource limit (`--ulimit nofile=1024:2048`), Docker's `{Name, Soft, Hard}`; -1 is
/// unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// Docker's ulimit names and the resources they set.
const ULIMITS: &[(&str, rustix::process::Resource)] = {
    use rustix::process::Resource as R;
    &[
        ("core", R::Core),
        ("cpu", R::Cpu),
        ("data", R::Data),
        ("fsize", R::Fsize),
        ("locks", R::Locks),
        ("memlock", R::Memlock),
        ("msgqueue", R::Msgqueue),
        ("nice", R::Nice),
        ("nofile", R::Nofile),
        ("nproc", R::Nproc),
        ("rss", R::Rss),
        ("rtprio", R::Rtprio),
        ("rttime", R::Rttime),
        ("sigpending", R::Sigpending),
        ("stack", R::Stack),
    ]
};

impl Ulimit {
    /// `name=soft[:hard]` (the command line's form).
    pub fn parse(text: &str) -> Result<Ulimit, OptionError> {
        let (name, values) = text
            .split_once('=')
            .ok_or_else(|| OptionError(format!("invalid ulimit argument: {text}")))?;
        let (soft, hard) = values.split_once(':').unwrap_or((values, values));
        let number = |v: &str| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| OptionError(format!("invalid ulimit value {v:?} in {text}")))
        };
        let limit = Ulimit {
            name: name.trim().to_string(),
            soft: number(soft)?,
            hard: number(hard)?,
        };
        limit.validate()?;
        Ok(limit)
    }

    /// Known name, values -1 or non-negative, soft ≤ hard (Docker's rules and messages).
    pub fn validate(&self) -> Result<(), OptionError> {
        if self.resource().is_none() {
            return Err(OptionError(format!("invalid ulimit type: {}", self.name)));
        }
        if self.soft < -1 || self.hard < -1 {
            return Err(OptionError(format!(
                "invalid ulimit {}: values must be -1 (unlimited) or non-negative",
                self.name
            )));
        }
        let unlimited = |v: i64| v == -1;
        if !unlimited(self.hard) && (unlimited(self.soft) || self.soft > self.hard) {
            return Err(OptionError(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                self.soft, self.hard
            )));
        }
        Ok(())
    }

    pub fn resource(&self) -> Option<rustix::process::Resource> {
        ULIMITS
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, r)| *r)
    }
}

/// IPC-namespaced sysctls outside the `fs.mqueue.` and `net.` prefixes (the docker CLI's list).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Check a `--sysctl` key: only sysctls that belong to the container's own namespaces, so
/// setting one cannot change the host. `net.*` needs a network namespace of its own.
pub fn validate_sysctl(key: &str, host_network: bool) -> Result<(), OptionError> {
    let not_allowed = || OptionError(format!("sysctl {key:?} is not allowed"));
    let dotted = key.replace('/', ".");
    if key.is_empty()
        || key.split(['.', '/']).any(|c| {
            c.is_empty()
                || c == ".."
                || !c
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-:@".contains(ch))
        })
    {
        return Err(not_allowed());
    }
    if dotted.starts_with("net.") {
        if host_network {
            return Err(OptionError(format!(
                "sysctl {key:?} not allowed in host network namespace"
            )));
        }
        return Ok(());
    }
    if dotted.starts_with("fs.mqueue.") || IPC_SYSCTLS.contains(&dotted.as_str()) {
        return Ok(());
    }
    Err(not_allowed())
}

/// The file under /proc/sys of a sysctl key (`net.ipv4.ip_forward`, or with `/` separators
/// for names that contain dots, like an interface `eth0.100`).
pub fn sysctl_path(key: &str) -> String {
    if key.contains('/') {
        format!("/proc/sys/{key}")
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

/// The seccomp profile a container asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompChoice {
    /// The daemon's profile (Warren's built-in one unless daemon.json names another).
    #[default]
    Default,
    Unconfined,
    /// A profile in Docker's JSON format (the docker CLI sends the file's content).
    Custom(String),
}

/// `HostConfig.SecurityOpt`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityOpts {
    pub seccomp: SeccompChoice,
    /// `None`: the daemon's default (daemon.json `no-new-privileges`).
    pub no_new_privileges: Option<bool>,
    /// `systempaths=unconfined`: nothing masked or read-only in /proc and /sys.
    pub unconfined_system_paths: bool,
}

impl SecurityOpts {
    /// Docker's `--security-opt` values: `seccomp=unconfined|PROFILE-JSON`,
    /// `no-new-privileges[=|:true|false]`, `systempaths=unconfined`. This host has neither
    /// AppArmor nor SELinux, so `apparmor=` and `label=` are refused — except the values that
    /// ask for no profile (`apparmor=unconfined`, `label=disable`), which is what every
    /// container already gets.
    pub fn parse(opts: &[String]) -> Result<SecurityOpts, OptionError> {
        let mut out = SecurityOpts::default();
        for opt in opts {
            if opt == "no-new-privileges" {
                out.no_new_privileges = Some(true);
                continue;
            }
            if opt == "disable" {
                continue; // the old spelling of label=disable
            }
            let (key, value) = opt
                .split_once('=')
                .or_else(|| opt.split_once(':'))
                .ok_or_else(|| OptionError(format!("invalid --security-opt 1: {opt:?}")))?;
            match (key, value) {
                ("seccomp", "unconfined") => out.seccomp = SeccompChoice::Unconfined,
                ("seccomp", "builtin" | "") => out.seccomp = SeccompChoice::Default,
                ("seccomp", profile) => out.seccomp = SeccompChoice::Custom(profile.to_string()),
                ("no-new-privileges", v) => {
                    out.no_new_privileges = Some(parse_bool(v).ok_or_else(|| {
                        OptionError(format!("invalid --security-opt 2: {opt:?}"))
                    })?)
                }
                ("systempaths", "unconfined") => out.unconfined_system_paths = true,
                ("apparmor", "unconfined") | ("label", "disable") => {}
                ("apparmor", _) => {
                    return Err(OptionError(format!(
                        "--security-opt {opt:?}: this host has no AppArmor, so no AppArmor profile can be applied"
                    )))
                }
                ("label", _) => {
                    return Err(OptionError(format!(
                        "--security-opt {opt:?}: this host has no SELinux, so no SELinux label can be applied"
                    )))
                }
                _ => return Err(OptionError(format!("invalid --security-opt 2: {opt:?}"))),
            }
        }
        Ok(out)
    }
}

/// `HostConfig.Devices[]` entry (`--device HOST[:CONTAINER[:PERMISSIONS]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    pub path_on_host: String,
    #[serde(default)]
    pub path_in_container: String,
    #[serde(default)]
    pub cgroup_permissions: String,
}

impl DeviceMapping {
    /// The command line's `HOST[:CONTAINER[:PERMISSIONS]]` form.
    pub fn spec(&self) -> String {
        let mut spec = self.path_on_host.clone();
        if !self.path_in_container.is_empty() {
            spec.push(':');
            spec.push_str(&self.path_in_container);
        }
        if !self.cgroup_permissions.is_empty() {
            spec.push(':');
            spec.push_str(&self.cgroup_permissions);
        }
        spec
    }
}

/// What a user asked for, checked but not yet resolved against the daemon's defaults (stored
/// with the container; resolved at every start).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityOptions {
    pub privileged: bool,
    /// Canonical names (`CAP_NET_ADMIN`, `ALL`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub opts: SecurityOpts,
    pub read_only_rootfs: bool,
    pub devices: Vec<DeviceMapping>,
    pub device_cgroup_rules: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub ulimits: Vec<Ulimit>,
    /// `None`: the daemon's default.
    pub cgroupns: Option<CgroupnsMode>,
    pub group_add: Vec<String>,
    /// `None`: Docker's defaults.
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
}

/// The daemon's side of confinement (daemon.json `seccomp-profile`, `no-new-privileges`,
/// `default-ulimits`, `default-cgroupns-mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfinementDefaults {
    /// The profile for containers that ask for none; `None` is unconfined.
    pub seccomp: Option<ProfileSource>,
    pub no_new_privileges: bool,
    pub ulimits: Vec<Ulimit>,
    pub cgroupns: CgroupnsMode,
}

impl Default for ConfinementDefaults {
    fn default() -> Self {
        ConfinementDefaults {
            seccomp: Some(ProfileSource::Builtin),
            no_new_privileges: false,
            ulimits: Vec::new(),
            cgroupns: CgroupnsMode::Private,
        }
    }
}

/// Where a seccomp profile comes from: Warren's built-in one or Docker-format JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProfileSource {
    Builtin,
    Json(String),
}

impl ProfileSource {
    pub fn profile(&self) -> Result<seccomp::Profile, OptionError> {
        match self {
            ProfileSource::Builtin => Ok(seccomp::Profile::builtin()),
            ProfileSource::Json(text) => seccomp::Profile::from_json(text)
                .map_err(|e| OptionError(format!("invalid seccomp profile: {e}"))),
        }
    }
}

/// A confinement with its seccomp profile still to be compiled (compiling is the agent's
/// job, once per profile and capability set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub confinement: Confinement,
    pub seccomp: Option<ProfileSource>,
}

impl SecurityOptions {
    /// Everything that can be checked before the container exists: names, values, the
    /// profile, that devices exist. Returns the resolution, so a create refused here changes
    /// nothing and a start sees the same answer.
    pub fn resolve(
        &self,
        defaults: &ConfinementDefaults,
        everything: CapSet,
        host_network: bool,
    ) -> Result<Resolved, OptionError> {
        let capabilities =
            caps::container_set(&self.cap_add, &self.cap_drop, self.privileged, everything)
                .map_err(|e| OptionError(e.to_string()))?;
        let seccomp = if self.privileged {
            None
        } else {
            match &self.opts.seccomp {
                SeccompChoice::Default => defaults.seccomp.clone(),
                SeccompChoice::Unconfined => None,
                SeccompChoice::Custom(text) => Some(ProfileSource::Json(text.clone())),
            }
        };
        if let Some(source @ ProfileSource::Json(_)) = &seccomp {
            source.profile()?;
        }
        let mut devices = Vec::new();
        for mapping in &self.devices {
            devices.extend(
                devices::parse_device(&mapping.spec()).map_err(|e| OptionError(e.to_string()))?,
            );
        }
        let device_rules = if self.privileged {
            None
        } else {
            let mut rules = devices::default_rules();
            for text in &self.device_cgroup_rules {
                rules.push(DeviceRule::parse(text).map_err(|e| OptionError(e.to_string()))?);
            }
            rules.extend(devices.iter().map(DeviceNode::rule));
            Some(rules)
        };
        for key in self.sysctls.keys() {
            validate_sysctl(key, host_network)?;
        }
        let mut ulimits = defaults.ulimits.clone();
        for limit in &self.ulimits {
            limit.validate()?;
            ulimits.retain(|u| u.name != limit.name);
            ulimits.push(limit.clone());
        }
        let system_paths = |given: &Option<Vec<String>>, default: &[&str]| -> Vec<String> {
            if self.privileged || self.opts.unconfined_system_paths {
                return Vec::new();
            }
            given
                .clone()
                .unwrap_or_else(|| default.iter().map(|p| p.to_string()).collect())
        };
        let masked_paths = system_paths(&self.masked_paths, DEFAULT_MASKED_PATHS);
        let readonly_paths = system_paths(&self.readonly_paths, DEFAULT_READONLY_PATHS);
        for path in masked_paths.iter().chain(&readonly_paths) {
            if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
                return Err(OptionError(format!(
                    "masked and read-only paths must be absolute, without \"..\": {path:?}"
                )));
            }
        }
        Ok(Resolved {
            confinement: Confinement {
                privileged: self.privileged,
                capabilities,
                no_new_privileges: self
                    .opts
                    .no_new_privileges
                    .unwrap_or(defaults.no_new_privileges),
                seccomp: None,
                read_only_rootfs: self.read_only_rootfs,
                masked_paths,
                readonly_paths,
                devices,
                device_rules,
                sysctls: self.sysctls.clone(),
                ulimits,
                cgroupns: self.cgroupns.unwrap_or(defaults.cgroupns),
                group_add: self.group_add.clone(),
            },
            seccomp,
        })
    }
}

/// Go's strconv.ParseBool.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_like_docker() {
        let u = Ulimit::parse("nofile=100:200").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 100, 200));
        assert_eq!(Ulimit::parse("nproc=5").unwrap().hard, 5);
        assert_eq!(Ulimit::parse("core=-1").unwrap().soft, -1);
        assert_eq!(
            Ulimit::parse("nofile=300:200").unwrap_err().to_string(),
            "ulimit soft limit must be less than or equal to hard limit: 300 > 200"
        );
        assert_eq!(
            Ulimit::parse("foo=1").unwrap_err().to_string(),
            "invalid ulimit type: foo"
        );
        assert!(Ulimit::parse("nofile").is_err());
        assert!(Ulimit::parse("nofile=x").is_err());
        assert!(Ulimit::parse("nofile=-5").is_err());
    }

    #[test]
    fn only_namespaced_sysctls_are_allowed() {
        for ok in [
            "net.ipv4.ip_forward",
            "net/ipv4/conf/eth0.100/forwarding",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
        ] {
            validate_sysctl(ok, false).unwrap();
        }
        for bad in [
            "kernel.hostname",
            "vm.swappiness",
            "foo",
            "",
            "net..x",
            "net.ipv4/../../../kernel/core_pattern",
            "kernel.core_pattern",
        ] {
            assert!(validate_sysctl(bad, false).is_err(), "{bad}");
        }
        let err = validate_sysctl("net.ipv4.ip_forward", true).unwrap_err();
        assert!(err.to_string().contains("host network"), "{err}");
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding"),
            "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
        );
    }

    #[test]
    fn security_opts_parse_like_docker() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = SecurityOpts::parse(&v(&["no-new-privileges", "seccomp=unconfined"])).unwrap();
        assert_eq!(o.no_new_privileges, Some(true));
        assert_eq!(o.seccomp, SeccompChoice::Unconfined);
        let o = SecurityOpts::parse(&v(&["no-new-privileges:false"])).unwrap();
        assert_eq!(o.no_new_privileges, Some(false));
        let o =
            SecurityOpts::parse(&v(&["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"])).unwrap();
        assert!(matches!(o.seccomp, SeccompChoice::Custom(_)));
        assert!(SecurityOpts::parse(&v(&["label=disable", "apparmor=unconfined"])).is_ok());
        let err = SecurityOpts::parse(&v(&["apparmor=docker-default"])).unwrap_err();
        assert!(err.to_string().contains("no AppArmor"), "{err}");
        let err = SecurityOpts::parse(&v(&["label=type:svirt_apache_t"])).unwrap_err();
        assert!(err.to_string().contains("no SELinux"), "{err}");
        assert_eq!(
            SecurityOpts::parse(&v(&["foo"])).unwrap_err().to_string(),
            "invalid --security-opt 1: \"foo\""
        );
        assert!(SecurityOpts::parse(&v(&["no-new-privileges=maybe"])).is_err());
        assert!(SecurityOpts::parse(&v(&["bogus=1"])).is_err());
    }

    #[test]
    fn cgroupns_modes() {
        assert_eq!(CgroupnsMode::parse("host").unwrap(), CgroupnsMode::Host);
        assert!(CgroupnsMode::parse("foo").is_err());
    }
}
