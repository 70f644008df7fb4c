//! What the store holds for networks and endpoints (intent), and where: the key layout.
//!
//! Local scope, this host only:
//! - `networks/<id>` → [`NetworkRecord`]
//! - `network-names/<name>` → the network id (names are unique; created with an Absent compare)
//! - `endpoints/<network-id>/<endpoint-id>` → [`EndpointRecord`]
//!
//! IPAM's reservations live in the network's scope (see `ipam`): a local network's on this host,
//! a global one's cluster-wide.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::drivers::{EndpointConfig, NetworkConfig, NetworkSettings};
use crate::firewall::{NetworkPolicy, PortMapping};
use crate::ipam::SubnetConfig;
use crate::store::{Key, Scope, StoreError};

/// A network as the user asked for it, plus what Warren decided (id, subnets, settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    /// RFC 3339, as Docker reports `Created`.
    pub created: String,
    /// Pre-defined by Warren (the default `bridge`): cannot be removed.
    pub builtin: bool,
    pub internal: bool,
    pub attachable: bool,
    pub enable_ipv6: bool,
    pub subnets: Vec<SubnetConfig>,
    /// The driver options exactly as given (echoed by inspect; compose compares them).
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub settings: NetworkSettings,
    /// Local (this host) or global (cluster-wide), from the driver's capability; the scope of
    /// the network's IPAM address space too.
    #[serde(default = "scope_before_scopes")]
    pub scope: Scope,
}

/// Records written before networks had a scope: every driver then was local.
fn scope_before_scopes() -> Scope {
    Scope::Local
}

impl NetworkRecord {
    /// Short id: the first 12 hex digits, used in chain names and tables.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// Gateway addresses with their subnet's prefix length.
    pub fn gateways(&self) -> Vec<IpNetwork> {
        self.subnets
            .iter()
            .filter_map(|s| {
                s.gateway
                    .and_then(|gw| IpNetwork::new(gw, s.subnet.prefix()).ok())
            })
            .collect()
    }

    pub fn driver_config(&self) -> NetworkConfig {
        NetworkConfig {
            id: self.id.clone(),
            name: self.name.clone(),
            settings: self.settings.clone(),
            gateways: self.gateways(),
            internal: self.internal,
        }
    }

    pub fn firewall_policy(&self) -> NetworkPolicy {
        NetworkPolicy {
            id: self.short_id().to_string(),
            bridge: self.settings.interface.clone(),
            subnets: self.subnets.iter().map(|s| s.subnet).collect(),
            internal: self.internal,
            icc: self.settings.icc,
            masquerade: self.settings.masquerade,
            host_binding_ipv4: self.settings.host_binding_ipv4,
        }
    }
}

/// What an endpoint is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// How users name it: `netns:lab1`, a namespace path, or (later) a container name.
    pub name: String,
    /// The namespace file the endpoint lives in.
    pub netns: PathBuf,
    /// The namespace's identity (`dev-inode` of its nsfs file): one namespace reached by two
    /// paths is still one target.
    pub netns_id: String,
    /// The container, when the target is one.
    pub container_id: Option<String>,
}

impl Target {
    /// The key of this target in a network's `Containers` map.
    pub fn key(&self) -> &str {
        self.container_id.as_deref().unwrap_or(&self.name)
    }
}

/// One interface of one namespace on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub id: String,
    pub network_id: String,
    pub target: Target,
    /// Interface name inside the namespace.
    pub ifname: String,
    /// Host end of the veth (bridge driver).
    pub host_ifname: Option<String>,
    pub mac: String,
    pub addresses: Vec<IpNetwork>,
    pub aliases: Vec<String>,
    pub ports: Vec<PortMapping>,
    /// Its network's scope (where its addresses are reserved).
    #[serde(default = "scope_before_scopes")]
    pub scope: Scope,
}

impl EndpointRecord {
    pub fn ipv4(&self) -> Option<IpNetwork> {
        self.addresses.iter().copied().find(IpNetwork::is_ipv4)
    }

    pub fn ipv6(&self) -> Option<IpNetwork> {
        self.addresses.iter().copied().find(IpNetwork::is_ipv6)
    }

    pub fn driver_config(&self, network: &NetworkRecord) -> EndpointConfig {
        let gateways: Vec<IpAddr> = if network.internal {
            Vec::new()
        } else {
            network.subnets.iter().filter_map(|s| s.gateway).collect()
        };
        EndpointConfig {
            id: self.id.clone(),
            netns: self.target.netns.clone(),
            ifname: self.ifname.clone(),
            host_ifname: self.host_ifname.clone(),
            mac: self.mac.clone(),
            addresses: self.addresses.clone(),
            gateways,
        }
    }
}

pub fn network_key(id: &str) -> Result<Key, StoreError> {
    Key::local(format!("networks/{id}"))
}

pub fn name_key(name: &str) -> Result<Key, StoreError> {
    Key::local(format!("network-names/{name}"))
}

pub fn endpoint_key(network_id: &str, endpoint_id: &str) -> Result<Key, StoreError> {
    Key::local(format!("endpoints/{network_id}/{endpoint_id}"))
}

/// Index: which endpoint of a network lives in a namespace (`netns_id`); created with an
/// Absent compare, so one namespace can never get two endpoints on one network.
pub fn target_key(network_id: &str, netns_id: &str) -> Result<Key, StoreError> {
    Key::local(format!("endpoint-targets/{network_id}/{netns_id}"))
}

/// Index: the endpoint holding a published host port (`tcp/8080`).
pub fn port_key(proto: crate::firewall::Proto, host_port: u16) -> Result<Key, StoreError> {
    Key::local(format!("ports/{proto}/{host_port}"))
}

pub const NETWORKS_PREFIX: &str = "networks/";

pub fn endpoints_prefix(network_id: &str) -> String {
    format!("endpoints/{network_id}/")
}

pub const ALL_ENDPOINTS_PREFIX: &str = "endpoints/";

/// RFC 3339 UTC with nanoseconds, e.g. `2026-11-27T20:16:39.123456789Z` (Docker's `Created`).
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_795_810_599, 5);
        assert_eq!(rfc3339(t), "2026-11-27T20:16:39.000000005Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert!(rfc3339(leap).starts_with("2000-02-29T00:00:00"));
    }
}
