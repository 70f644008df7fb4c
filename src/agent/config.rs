//! The agent's settings: command-line flags merged with a dockerd-style `daemon.json`.
//!
//! Keys follow dockerd's daemon.json where the meaning is the same, so an existing file reads
//! naturally. As in dockerd, a key may come from the flags or from the file, never both: a
//! silent precedence rule would make "why is my setting ignored?" impossible to answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{ErrorKind, HasKind};
use crate::runtime::confine::{CgroupnsMode, ConfinementDefaults, ProfileSource, Ulimit};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/warren/daemon.json";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/warren";
pub const DEFAULT_EXEC_ROOT: &str = "/run/warren";
pub const DEFAULT_SOCKET_NAME: &str = "warren.sock";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "the following directives are specified both as a flag and in the configuration file: {}",
        .0.join(", ")
    )]
    FlagAndFile(Vec<String>),
    #[error("invalid {key} {value:?}: {reason}")]
    Value {
        key: &'static str,
        value: String,
        reason: String,
    },
}

impl HasKind for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::Read { .. } => ErrorKind::NotFound,
            _ => ErrorKind::Invalid,
        }
    }
}

/// One entry of `default-address-pools`: carve `size`-bit subnets out of `base`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPoolConfig {
    pub base: ipnetwork::IpNetwork,
    pub size: u8,
}

/// Settings as they may appear in daemon.json or on the command line; every field optional so
/// the merge can tell "not given" from "given".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub hosts: Option<Vec<String>>,
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub debug: Option<bool>,
    pub bip: Option<String>,
    pub fixed_cidr: Option<String>,
    pub mtu: Option<u32>,
    pub default_address_pools: Option<Vec<AddressPoolConfig>>,
    pub dns: Option<Vec<std::net::IpAddr>>,
    pub tls: Option<bool>,
    pub tlsverify: Option<bool>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    /// A seccomp profile file (Docker's format), `builtin` or `unconfined`.
    pub seccomp_profile: Option<String>,
    pub no_new_privileges: Option<bool>,
    /// dockerd's shape: `{"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}`.
    pub default_ulimits: Option<BTreeMap<String, Ulimit>>,
    pub default_cgroupns_mode: Option<String>,
    /// Not supported yet: refused with the reason (see docs/security.md).
    pub userns_remap: Option<String>,
}

/// TLS material for `tcp://` listeners. Only mutual TLS is offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The agent's effective configuration.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub hosts: Vec<String>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub debug: bool,
    pub bip: Option<String>,
    pub fixed_cidr: Option<String>,
    pub mtu: Option<u32>,
    pub default_address_pools: Vec<AddressPoolConfig>,
    pub dns: Vec<std::net::IpAddr>,
    /// `Some` when `tlsverify` is on: client certificates signed by `ca` are required.
    pub tls: Option<TlsFiles>,
    /// Seccomp profile, no_new_privs, ulimits and cgroup namespace mode of every container.
    pub confinement: ConfinementDefaults,
}

impl Settings {
    /// Parse daemon.json text; errors name the offending key and line.
    pub fn from_json(path: &Path, text: &str) -> Result<Settings, ConfigError> {
        serde_json::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Read daemon.json. A missing file is fine only when it is the default path.
    pub fn from_file(path: &Path, explicit: bool) -> Result<Settings, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Settings::from_json(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Settings::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Names of the keys set in both `self` (flags) and `file`.
    fn overlapping_keys(&self, file: &Settings) -> Vec<String> {
        let mut both = Vec::new();
        macro_rules! check {
            ($($field:ident => $key:literal),* $(,)?) => {
                $(if self.$field.is_some() && file.$field.is_some() { both.push($key.to_string()); })*
            };
        }
        check!(
            hosts => "hosts", data_root => "data-root", exec_root => "exec-root", debug => "debug",
            bip => "bip", fixed_cidr => "fixed-cidr", mtu => "mtu",
            default_address_pools => "default-address-pools", dns => "dns", tls => "tls",
            tlsverify => "tlsverify", tlscacert => "tlscacert", tlscert => "tlscert", tlskey => "tlskey",
            seccomp_profile => "seccomp-profile", no_new_privileges => "no-new-privileges",
            default_ulimits => "default-ulimits", default_cgroupns_mode => "default-cgroupns-mode",
            userns_remap => "userns-remap",
        );
        both
    }

    /// Merge flags with the file; refuse keys given in both.
    pub fn merge(flags: Settings, file: Settings) -> Result<DaemonConfig, ConfigError> {
        let both = flags.overlapping_keys(&file);
        if !both.is_empty() {
            return Err(ConfigError::FlagAndFile(both));
        }
        macro_rules! pick {
            ($field:ident) => {
                flags.$field.or(file.$field)
            };
        }
        let exec_root = pick!(exec_root).unwrap_or_else(|| PathBuf::from(DEFAULT_EXEC_ROOT));
        let hosts = pick!(hosts).unwrap_or_default();
        let hosts = if hosts.is_empty() {
            vec![format!(
                "unix://{}",
                exec_root.join(DEFAULT_SOCKET_NAME).display()
            )]
        } else {
            hosts
        };
        let tlsverify = pick!(tlsverify).unwrap_or(false);
        let (ca, cert, key) = (pick!(tlscacert), pick!(tlscert), pick!(tlskey));
        let tls = if tlsverify {
            let need = |v: Option<PathBuf>, key: &'static str| {
                v.ok_or_else(|| ConfigError::Value {
                    key,
                    value: String::new(),
                    reason: "required with --tlsverify".into(),
                })
            };
            Some(TlsFiles {
                ca: need(ca, "tlscacert")?,
                cert: need(cert, "tlscert")?,
                key: need(key, "tlskey")?,
            })
        } else {
            None
        };
        if let Some(mtu) = pick!(mtu) {
            if !(68..=65535).contains(&mtu) {
                return Err(ConfigError::Value {
                    key: "mtu",
                    value: mtu.to_string(),
                    reason: "must be between 68 and 65535".into(),
                });
            }
        }
        if let Some(remap) = pick!(userns_remap).filter(|v| !v.is_empty()) {
            return Err(ConfigError::Value {
                key: "userns-remap",
                value: remap,
                reason: "user namespace remapping is not supported yet; containers run with \
                         root mapped to root, confined by capabilities, seccomp and the device \
                         cgroup (the plan is in docs/security.md)"
                    .into(),
            });
        }
        let confinement = confinement_defaults(
            pick!(seccomp_profile),
            pick!(no_new_privileges),
            pick!(default_ulimits),
            pick!(default_cgroupns_mode),
        )?;
        Ok(DaemonConfig {
            hosts,
            data_root: pick!(data_root).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT)),
            exec_root,
            debug: pick!(debug).unwrap_or(false),
            bip: pick!(bip),
            fixed_cidr: pick!(fixed_cidr),
            mtu: pick!(mtu),
            default_address_pools: pick!(default_address_pools).unwrap_or_default(),
            dns: pick!(dns).unwrap_or_default(),
            tls,
            confinement,
        })
    }
}

/// The daemon-wide confinement settings, each checked now so a bad one stops the start.
fn confinement_defaults(
    seccomp_profile: Option<String>,
    no_new_privileges: Option<bool>,
    ulimits: Option<BTreeMap<String, Ulimit>>,
    cgroupns: Option<String>,
) -> Result<ConfinementDefaults, ConfigError> {
    let seccomp = match seccomp_profile.as_deref() {
        None | Some("" | "builtin") => Some(ProfileSource::Builtin),
        Some("unconfined") => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Value {
                key: "seccomp-profile",
                value: path.to_string(),
                reason: e.to_string(),
            })?;
            let source = ProfileSource::Json(text);
            source.profile().map_err(|e| ConfigError::Value {
                key: "seccomp-profile",
                value: path.to_string(),
                reason: e.to_string(),
            })?;
            Some(source)
        }
    };
    let mut limits = Vec::new();
    for (name, limit) in ulimits.unwrap_or_default() {
        let bad = |reason: String| ConfigError::Value {
            key: "default-ulimits",
            value: name.clone(),
            reason,
        };
        if limit.name != name {
            return Err(bad(format!("the entry names {:?}", limit.name)));
        }
        limit.validate().map_err(|e| bad(e.to_string()))?;
        limits.push(limit);
    }
    let cgroupns = match cgroupns {
        None => CgroupnsMode::Private,
        Some(mode) => CgroupnsMode::parse(&mode).map_err(|e| ConfigError::Value {
            key: "default-cgroupns-mode",
            value: mode.clone(),
            reason: e.to_string(),
        })?,
    };
    Ok(ConfinementDefaults {
        seccomp,
        no_new_privileges: no_new_privileges.unwrap_or(false),
        ulimits: limits,
        cgroupns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_json(Path::new("daemon.json"), text)
    }

    #[test]
    fn reads_dockerd_keys() {
        let s = parse(
            r#"{"hosts":["unix:///tmp/w.sock"],"data-root":"/d","debug":true,"bip":"172.17.0.1/16",
                "mtu":1400,"default-address-pools":[{"base":"10.10.0.0/16","size":24}],"dns":["10.0.0.2"]}"#,
        )
        .unwrap();
        let c = Settings::merge(Settings::default(), s).unwrap();
        assert_eq!(c.hosts, vec!["unix:///tmp/w.sock"]);
        assert_eq!(c.data_root, PathBuf::from("/d"));
        assert!(c.debug);
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.default_address_pools[0].size, 24);
        assert_eq!(c.dns.len(), 1);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse(r#"{"data-root":"/d","bogus-key":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus-key"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn malformed_json_names_the_line() {
        let err = parse("{\n\"debug\": true,\n}").unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn flag_and_file_may_not_both_set_a_key() {
        let flags = Settings {
            debug: Some(true),
            data_root: Some("/a".into()),
            ..Default::default()
        };
        let file = parse(r#"{"data-root":"/b","mtu":1500}"#).unwrap();
        let err = Settings::merge(flags, file).unwrap_err().to_string();
        assert!(err.contains("data-root"), "{err}");
        assert!(!err.contains("mtu"), "{err}");
    }

    #[test]
    fn defaults_follow_the_exec_root() {
        let flags = Settings {
            exec_root: Some("/tmp/r".into()),
            ..Default::default()
        };
        let c = Settings::merge(flags, Settings::default()).unwrap();
        assert_eq!(c.hosts, vec!["unix:///tmp/r/warren.sock"]);
        assert_eq!(c.data_root, PathBuf::from(DEFAULT_DATA_ROOT));
        assert!(c.tls.is_none());
    }

    #[test]
    fn tlsverify_needs_all_three_files() {
        let flags = Settings {
            tlsverify: Some(true),
            tlscacert: Some("/ca.pem".into()),
            ..Default::default()
        };
        let err = Settings::merge(flags, Settings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("tlscert"), "{err}");
    }

    #[test]
    fn missing_default_file_is_empty_but_explicit_is_an_error() {
        let p = Path::new("/nonexistent/warren/daemon.json");
        assert!(Settings::from_file(p, false).is_ok());
        assert!(Settings::from_file(p, true).is_err());
    }

    #[test]
    fn confinement_keys() {
        let s = parse(
            r#"{"seccomp-profile":"unconfined","no-new-privileges":true,"default-cgroupns-mode":"host",
                "default-ulimits":{"nofile":{"Name":"nofile","Soft":100,"Hard":200}}}"#,
        )
        .unwrap();
        let c = Settings::merge(Settings::default(), s).unwrap().confinement;
        assert_eq!(c.seccomp, None);
        assert!(c.no_new_privileges);
        assert_eq!(c.cgroupns, CgroupnsMode::Host);
        assert_eq!(c.ulimits[0].soft, 100);
        let d = Settings::merge(Settings::default(), Settings::default())
            .unwrap()
            .confinement;
        assert_eq!(d, ConfinementDefaults::default());
        for (bad, key) in [
            (r#"{"userns-remap":"default"}"#, "userns-remap"),
            (
                r#"{"default-cgroupns-mode":"bogus"}"#,
                "default-cgroupns-mode",
            ),
            (
                r#"{"seccomp-profile":"/nonexistent/profile.json"}"#,
                "seccomp-profile",
            ),
            (
                r#"{"default-ulimits":{"nofile":{"Name":"nofile","Soft":300,"Hard":200}}}"#,
                "default-ulimits",
            ),
            (
                r#"{"default-ulimits":{"bogus":{"Name":"bogus","Soft":1,"Hard":1}}}"#,
                "default-ulimits",
            ),
        ] {
            let err = Settings::merge(Settings::default(), parse(bad).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn mtu_range_checked() {
        let flags = Settings {
            mtu: Some(10),
            ..Default::default()
        };
        assert!(Settings::merge(flags, Settings::default()).is_err());
    }
}
