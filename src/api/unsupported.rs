//! Fields of a Docker request that Warren does not implement, kept so they can be checked:
//! one set to anything but its zero value (or the value Docker's own clients send by
//! default) is refused with a 400 that names it and the command-line flag behind it. Never
//! accepted and ignored: a user who asked for `-v`, `--restart` or `-t` must learn that Warren
//! did not do it.
//!
//! Each request type that Warren models only in part carries an [`Unsupported`] field
//! flattened into it (serde collects every field the type does not name), and its handler
//! calls [`Unsupported::refuse`] with the type's table of tolerated values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use crate::error::ErrorKind;

/// The fields of a request that its type does not model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unsupported(pub BTreeMap<String, Value>);

/// A field's values that change nothing and are tolerated although the field is not
/// implemented: what Docker's clients send when the user asked for nothing.
pub type Tolerated = (&'static str, fn(&Value) -> bool);

/// Fields whose value is a map keyed by what the user asked for.
const MAP_FIELDS: &[&str] = &[
    "Volumes",
    "Tmpfs",
    "StorageOpt",
    "Annotations",
    "DriverOpts",
];

/// Any value: informational or client-side fields (`ConsoleSize`, `ContainerIDFile`).
pub fn anything(_: &Value) -> bool {
    true
}

/// Null, false, 0, "", and arrays or objects made only of such values.
pub fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.iter().all(is_zero),
        Value::Object(fields) => fields.values().all(is_zero),
    }
}

impl Unsupported {
    /// Refuse the first field (in name order) set to a value that is neither zero nor
    /// tolerated. `context` prefixes the name (`HostConfig.`).
    pub fn refuse(&self, context: &str, tolerated: &[Tolerated]) -> Result<(), ApiError> {
        for (name, value) in &self.0 {
            // In a map the keys are the content (`"Volumes": {"/data": {}}`).
            let zero = if MAP_FIELDS.contains(&name.as_str()) {
                value.is_null() || value.as_object().is_some_and(|m| m.is_empty())
            } else {
                is_zero(value)
            };
            if zero
                || tolerated
                    .iter()
                    .any(|(field, ok)| *field == name.as_str() && ok(value))
            {
                continue;
            }
            let flag = flag_of(name).map(|f| format!(" ({f})")).unwrap_or_default();
            return Err(ApiError::new(
                ErrorKind::Invalid,
                format!(
                    "{context}{name}{flag} is not supported by Warren yet; it was given {value}"
                ),
            ));
        }
        Ok(())
    }
}

/// The command-line flag a Docker field comes from, for the error message.
fn flag_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "AttachStdin" => "-a stdin / -i",
        "OpenStdin" => "-i/--interactive",
        "StdinOnce" => "-i/--interactive",
        "Tty" => "-t/--tty",
        "Domainname" => "--domainname",
        "Healthcheck" => "--health-cmd",
        "Volumes" => "-v/--volume or the image's VOLUME",
        "NetworkDisabled" => "--network none",
        "MacAddress" => "--mac-address",
        "StopSignal" => "--stop-signal",
        "StopTimeout" => "--stop-timeout",
        "Shell" => "the image's SHELL",
        "OnBuild" => "the image's ONBUILD",
        "Binds" => "-v/--volume",
        "Mounts" => "--mount",
        "Tmpfs" => "--tmpfs",
        "VolumesFrom" => "--volumes-from",
        "VolumeDriver" => "--volume-driver",
        "LogConfig" => "--log-driver/--log-opt",
        "RestartPolicy" => "--restart",
        "Dns" => "--dns",
        "DnsOptions" => "--dns-option",
        "DnsSearch" => "--dns-search",
        "ExtraHosts" => "--add-host",
        "IpcMode" => "--ipc",
        "Cgroup" => "--cgroup",
        "Links" => "--link",
        "OomScoreAdj" => "--oom-score-adj",
        "PidMode" => "--pid",
        "PublishAllPorts" => "-P/--publish-all",
        "UTSMode" => "--uts",
        "ShmSize" => "--shm-size",
        "StorageOpt" => "--storage-opt",
        "Runtime" => "--runtime",
        "Isolation" => "--isolation",
        "Annotations" => "--annotation",
        "CpuShares" => "-c/--cpu-shares",
        "CgroupParent" => "--cgroup-parent",
        "BlkioWeight" | "BlkioWeightDevice" => "--blkio-weight(-device)",
        "BlkioDeviceReadBps" | "BlkioDeviceWriteBps" => "--device-read/write-bps",
        "BlkioDeviceReadIOps" | "BlkioDeviceWriteIOps" => "--device-read/write-iops",
        "CpuPeriod" => "--cpu-period",
        "CpuQuota" => "--cpu-quota",
        "CpuRealtimePeriod" => "--cpu-rt-period",
        "CpuRealtimeRuntime" => "--cpu-rt-runtime",
        "CpusetCpus" => "--cpuset-cpus",
        "CpusetMems" => "--cpuset-mems",
        "DeviceRequests" => "--gpus",
        "KernelMemory" | "KernelMemoryTCP" => "--kernel-memory",
        "MemoryReservation" => "--memory-reservation",
        "MemorySwap" => "--memory-swap",
        "MemorySwappiness" => "--memory-swappiness",
        "OomKillDisable" => "--oom-kill-disable",
        "CpuCount" | "CpuPercent" | "IOMaximumIOps" | "IOMaximumBandwidth" => "Windows only",
        "DriverOpts" => "--driver-opt",
        "DetachKeys" => "--detach-keys",
        _ => return None,
    })
}

/// `POST /containers/create`, top level (`Config`): attach flags are hints for the client's
/// own attach request, which Warren serves on its own.
pub const CONFIG_TOLERATED: &[Tolerated] = &[
    ("AttachStdout", anything),
    ("AttachStderr", anything),
    ("ArgsEscaped", anything),
];

/// `HostConfig`: Docker's clients send these non-zero defaults for "nothing asked".
pub const HOST_CONFIG_TOLERATED: &[Tolerated] = &[
    ("ConsoleSize", anything),
    ("ContainerIDFile", anything),
    ("RestartPolicy", |v| {
        matches!(v["Name"].as_str(), None | Some("" | "no"))
            && v["MaximumRetryCount"].as_i64().unwrap_or(0) == 0
    }),
    ("LogConfig", |v| {
        matches!(v["Type"].as_str(), None | Some("" | "json-file")) && is_zero(&v["Config"])
    }),
    ("MemorySwappiness", |v| v.as_i64() == Some(-1)),
    // Docker's default /dev/shm size is what every container gets.
    ("ShmSize", |v| v.as_i64() == Some(64 << 20)),
    ("Isolation", |v| v.as_str() == Some("default")),
    // Every container has a private IPC namespace of its own, which nobody can join.
    ("IpcMode", |v| {
        matches!(v.as_str(), Some("private" | "shareable"))
    }),
    ("PidMode", |v| v.as_str() == Some("private")),
    ("UTSMode", |v| v.as_str() == Some("private")),
];

/// `NetworkingConfig.EndpointsConfig.*` and connect's `EndpointConfig`: the fields after
/// `DriverOpts` describe a live endpoint (inspect output); clients echo them, Docker ignores
/// them on input, and so does Warren.
pub const ENDPOINT_TOLERATED: &[Tolerated] = &[
    ("NetworkID", anything),
    ("EndpointID", anything),
    ("Gateway", anything),
    ("IPAddress", anything),
    ("IPPrefixLen", anything),
    ("IPv6Gateway", anything),
    ("GlobalIPv6Address", anything),
    ("GlobalIPv6PrefixLen", anything),
    ("DNSNames", anything),
    ("GwPriority", |v| v.as_i64() == Some(0)),
];

/// `POST /containers/{id}/exec` and `/exec/{id}/start`.
pub const EXEC_TOLERATED: &[Tolerated] = &[
    ("AttachStdout", anything),
    ("AttachStderr", anything),
    ("ConsoleSize", anything),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Unsupported {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn zero_values_pass_and_others_are_named() {
        let ok = fields(
            json!({"Binds": null, "Dns": [], "LogConfig": {"Type": "", "Config": {}},
                                "ConsoleSize": [0, 0], "OomKillDisable": false, "CpuShares": 0}),
        );
        ok.refuse("HostConfig.", HOST_CONFIG_TOLERATED).unwrap();
        let err = fields(json!({"Binds": ["/a:/b"]}))
            .refuse("HostConfig.", HOST_CONFIG_TOLERATED)
            .unwrap_err();
        assert_eq!(
            err.0.to_string(),
            "HostConfig.Binds (-v/--volume) is not supported by Warren yet; it was given [\"/a:/b\"]"
        );
    }

    #[test]
    fn docker_cli_defaults_are_tolerated_and_real_requests_are_not() {
        let defaults = fields(
            json!({"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                                      "MemorySwappiness": -1, "ConsoleSize": [40, 120],
                                      "ShmSize": 67108864, "IpcMode": "private"}),
        );
        defaults
            .refuse("HostConfig.", HOST_CONFIG_TOLERATED)
            .unwrap();
        for asked in [
            json!({"RestartPolicy": {"Name": "always"}}),
            json!({"RestartPolicy": {"Name": "no", "MaximumRetryCount": 3}}),
            json!({"LogConfig": {"Type": "syslog"}}),
            json!({"MemorySwappiness": 10}),
            json!({"ShmSize": 1024}),
            json!({"IpcMode": "host"}),
            json!({"PidMode": "host"}),
        ] {
            assert!(
                fields(asked.clone())
                    .refuse("HostConfig.", HOST_CONFIG_TOLERATED)
                    .is_err(),
                "{asked}"
            );
        }
    }
}
