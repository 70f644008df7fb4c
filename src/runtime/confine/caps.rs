//! Linux capabilities by name, the set a container gets, and Docker's `--cap-add/--cap-drop`
//! arithmetic. A [`CapSet`] is the kernel's own 64-bit mask (bit n = capability n), so it
//! prints as `/proc/PID/status` shows it (`CapEff: 00000000a80425fb`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Capability names in kernel order: `NAMES[n]` is capability number n (without `CAP_`).
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default set: what a container's root may still do (`00000000a80425fb`).
const DOCKER_DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// A set of capabilities as the kernel's bit mask.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CapSet(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability: {0:?}")]
pub struct UnknownCapability(pub String);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    /// Every capability this kernel's headers know of.
    pub fn all_known() -> CapSet {
        CapSet((1u64 << NAMES.len()) - 1)
    }

    /// Docker's default container set.
    pub fn docker_default() -> CapSet {
        DOCKER_DEFAULT
            .iter()
            .map(|n| Self::parse_one(n).expect("known name"))
            .fold(CapSet::EMPTY, CapSet::union)
    }

    /// The calling process's bounding set, limited to known capabilities: what "all" means
    /// for `--privileged` on this host (a VM or an outer container may hold fewer than all).
    pub fn own_bounding() -> CapSet {
        let mut set = CapSet::EMPTY;
        for n in 0..NAMES.len() {
            let bit = rustix::thread::CapabilitySet::from_bits_retain(1 << n);
            if rustix::thread::capability_is_in_bounding_set(bit).unwrap_or(false) {
                set.0 |= 1 << n;
            }
        }
        set
    }

    /// One capability by name: `NET_ADMIN`, `net_admin` or `CAP_NET_ADMIN`.
    pub fn parse_one(name: &str) -> Result<CapSet, UnknownCapability> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        NAMES
            .iter()
            .position(|n| *n == bare)
            .map(|i| CapSet(1 << i))
            .ok_or_else(|| UnknownCapability(format!("CAP_{bare}")))
    }

    pub fn union(self, other: CapSet) -> CapSet {
        CapSet(self.0 | other.0)
    }

    pub fn intersect(self, other: CapSet) -> CapSet {
        CapSet(self.0 & other.0)
    }

    pub fn without(self, other: CapSet) -> CapSet {
        CapSet(self.0 & !other.0)
    }

    pub fn contains(self, other: CapSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Capability numbers in the set, lowest first.
    pub fn numbers(self) -> impl Iterator<Item = u32> {
        (0..64u32).filter(move |n| self.0 & (1 << n) != 0)
    }

    /// `CAP_` names in kernel order (Docker's spelling in inspect and errors).
    pub fn names(self) -> Vec<String> {
        self.numbers()
            .map(|n| match NAMES.get(n as usize) {
                Some(name) => format!("CAP_{name}"),
                None => format!("CAP_{n}"),
            })
            .collect()
    }
}

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapSet({:016x} {:?})", self.0, self.names())
    }
}

/// A user's `--cap-add`/`--cap-drop` lists, each entry a name (with or without `CAP_`, any
/// case) or `ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CapList {
    set: CapSet,
    all: bool,
}

fn parse_list(names: &[String]) -> Result<CapList, UnknownCapability> {
    let mut list = CapList {
        set: CapSet::EMPTY,
        all: false,
    };
    for name in names {
        if name.trim().eq_ignore_ascii_case("ALL") {
            list.all = true;
        } else {
            list.set = list.set.union(CapSet::parse_one(name)?);
        }
    }
    Ok(list)
}

/// Which list an unknown name came from (Docker says `invalid CapAdd: unknown capability`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapOptionError {
    #[error("invalid CapAdd: {0}")]
    Add(UnknownCapability),
    #[error("invalid CapDrop: {0}")]
    Drop(UnknownCapability),
}

/// The set a container's processes hold, with Docker's rules: `--privileged` is everything;
/// `--cap-add ALL` is everything minus the drops; `--cap-drop ALL` is only the adds;
/// otherwise the default minus the drops plus the adds (an add wins over a drop).
/// `everything` is what "all" means on this host ([`CapSet::own_bounding`]).
pub fn container_set(
    add: &[String],
    drop: &[String],
    privileged: bool,
    everything: CapSet,
) -> Result<CapSet, CapOptionError> {
    let adds = parse_list(add).map_err(CapOptionError::Add)?;
    let drops = parse_list(drop).map_err(CapOptionError::Drop)?;
    Ok(if privileged {
        everything
    } else if adds.all {
        everything.without(drops.set)
    } else if drops.all {
        adds.set
    } else {
        CapSet::docker_default().without(drops.set).union(adds.set)
    }
    .intersect(everything))
}

/// Canonical spelling for inspect: `CAP_NET_ADMIN`, or `ALL` (as the docker CLI sends them).
pub fn canonical_names(names: &[String]) -> Result<Vec<String>, UnknownCapability> {
    names
        .iter()
        .map(|n| {
            if n.trim().eq_ignore_ascii_case("ALL") {
                Ok("ALL".to_string())
            } else {
                CapSet::parse_one(n).map(|s| s.names().remove(0))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn docker_default_is_a80425fb() {
        assert_eq!(CapSet::docker_default().0, 0xa80425fb);
    }

    #[test]
    fn names_parse_in_any_spelling() {
        let admin = CapSet::parse_one("NET_ADMIN").unwrap();
        assert_eq!(admin, CapSet(1 << 12));
        assert_eq!(CapSet::parse_one("cap_net_admin").unwrap(), admin);
        assert_eq!(CapSet::parse_one(" Net_Admin ").unwrap(), admin);
        assert_eq!(
            CapSet::parse_one("FOO").unwrap_err().to_string(),
            "unknown capability: \"CAP_FOO\""
        );
        assert_eq!(CapSet(1 << 40).names(), vec!["CAP_CHECKPOINT_RESTORE"]);
    }

    #[test]
    fn add_and_drop_follow_docker() {
        let all = CapSet::all_known();
        let set = |a: &[&str], d: &[&str]| container_set(&v(a), &v(d), false, all).unwrap();
        assert_eq!(set(&[], &[]), CapSet::docker_default());
        assert_eq!(set(&[], &["ALL"]), CapSet::EMPTY);
        assert_eq!(set(&["net_raw"], &["all"]), CapSet(1 << 13));
        assert_eq!(
            set(&["ALL"], &["CAP_CHOWN"]),
            all.without(CapSet::parse_one("CHOWN").unwrap())
        );
        let kill = CapSet::parse_one("KILL").unwrap();
        assert_eq!(set(&[], &["kill"]), CapSet::docker_default().without(kill));
        // An add wins over a drop of the same capability.
        assert!(set(&["KILL"], &["KILL"]).contains(kill));
        let admin = CapSet::parse_one("SYS_ADMIN").unwrap();
        assert!(set(&["SYS_ADMIN"], &[]).contains(admin));
        assert_eq!(container_set(&[], &[], true, all).unwrap(), all);
    }

    #[test]
    fn everything_is_bounded_by_the_host() {
        let host = CapSet::docker_default().without(CapSet::parse_one("KILL").unwrap());
        let got = container_set(&v(&["ALL"]), &[], false, host).unwrap();
        assert_eq!(got, host);
        let got = container_set(&[], &[], true, host).unwrap();
        assert_eq!(got, host);
    }

    #[test]
    fn unknown_names_say_which_list() {
        let all = CapSet::all_known();
        let err = container_set(&v(&["FOO"]), &[], false, all).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid CapAdd: unknown capability: \"CAP_FOO\""
        );
        let err = container_set(&[], &v(&["bar"]), false, all).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid CapDrop: unknown capability: \"CAP_BAR\""
        );
    }

    #[test]
    fn canonical_names_for_inspect() {
        assert_eq!(
            canonical_names(&v(&["net_admin", "all", "CAP_KILL"])).unwrap(),
            v(&["CAP_NET_ADMIN", "ALL", "CAP_KILL"])
        );
    }
}
