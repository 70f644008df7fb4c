//! Network drivers: bridge, host, macvlan and overlay implement one [`Driver`] trait.
//!
//! A driver owns the kernel objects of its networks (bridges, veths, VXLAN/macvlan links) and
//! nothing else: addresses come from IPAM, rules from the firewall, records from the store, all
//! through the agent. Drivers touch the kernel only through `netlink` and `netns`.
//! Every operation is idempotent, so the agent can replay it when reconciling after a restart.

pub mod bridge;
pub mod host;
pub mod macvlan;
pub mod overlay;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, HasKind};
use crate::netlink::{Netlink, NetlinkError};
use crate::netns::NetnsError;
use crate::store::Scope;

/// Driver-derived settings of a network, decided once at creation from the user's options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSettings {
    /// The host-side link the network is built on: the bridge name for `bridge`.
    pub interface: String,
    pub mtu: Option<u32>,
    /// Inter-container traffic allowed inside the network.
    pub icc: bool,
    /// Masquerade traffic leaving the host (never for internal networks).
    pub masquerade: bool,
    /// Default host address published ports bind to (None: all addresses).
    pub host_binding_ipv4: Option<Ipv4Addr>,
    /// macvlan networks: mode and parent (absent in records written before macvlan existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan: Option<macvlan::MacvlanSettings>,
    /// bridge networks: endpoint ports per Linux bridge before an extension bridge is added;
    /// 0 for one flat bridge; `None`: the default (see `bridge::extensions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports_per_bridge: Option<u32>,
}

impl NetworkSettings {
    /// Endpoint ports one bridge of the network takes; `None`: no limit (one flat bridge).
    pub fn bridge_port_limit(&self) -> Option<usize> {
        match self
            .ports_per_bridge
            .unwrap_or(bridge::DEFAULT_PORTS_PER_BRIDGE)
        {
            0 => None,
            n => Some(n as usize),
        }
    }
}

/// What a driver needs to know to build or remove a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub id: String,
    pub name: String,
    pub settings: NetworkSettings,
    /// Gateway addresses with their subnet's prefix length (one per address family).
    pub gateways: Vec<IpNetwork>,
    pub internal: bool,
}

/// What a driver needs to know to wire one endpoint into a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConfig {
    pub id: String,
    /// The target namespace (a pinned name under /run/netns or /proc/PID/ns/net).
    pub netns: PathBuf,
    /// Interface name inside the namespace (eth0, eth1, …).
    pub ifname: String,
    /// Host-side interface name, when the driver makes one (the veth's host end).
    pub host_ifname: Option<String>,
    /// MAC address, "02:42:…" form.
    pub mac: String,
    /// Addresses with the subnet's prefix length.
    pub addresses: Vec<IpNetwork>,
    /// Default-route gateways (empty for internal networks).
    pub gateways: Vec<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("unknown option {option:?} for the {driver} driver (known: {known})")]
    UnknownOption {
        driver: &'static str,
        option: String,
        known: String,
    },
    #[error("invalid value {value:?} for option {option}: {reason}")]
    InvalidOption {
        option: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("interface {name} already exists and is not a bridge")]
    InterfaceClash { name: String },
    #[error("parent interface {parent} does not exist")]
    ParentMissing { parent: String },
    #[error("parent interface {parent} is down; bring it up first (ip link set {parent} up)")]
    ParentDown { parent: String },
    #[error("cannot create VLAN sub-interface {parent}: this kernel has no 802.1Q support (8021q module); load it, or create {parent} yourself")]
    VlanUnsupported { parent: String },
    #[error("network {network} is in passthru mode and already has its one endpoint (passthru gives the whole parent {parent} to a single macvlan)")]
    PassthruInUse { network: String, parent: String },
    // Sources are boxed: kernel errors carry names and paths, and errors travel far.
    #[error("{action}")]
    Netlink {
        action: String,
        #[source]
        source: Box<NetlinkError>,
    },
    #[error("{action}")]
    Netns {
        action: String,
        #[source]
        source: Box<NetnsError>,
    },
}

impl DriverError {
    pub fn netlink(action: impl Into<String>) -> impl FnOnce(NetlinkError) -> DriverError {
        let action = action.into();
        move |source| DriverError::Netlink {
            action,
            source: Box::new(source),
        }
    }

    pub fn netns(action: impl Into<String>) -> impl FnOnce(NetnsError) -> DriverError {
        let action = action.into();
        move |source| DriverError::Netns {
            action,
            source: Box::new(source),
        }
    }
}

impl HasKind for DriverError {
    fn kind(&self) -> ErrorKind {
        match self {
            DriverError::UnknownOption { .. }
            | DriverError::InvalidOption { .. }
            | DriverError::Unsupported(_) => ErrorKind::Invalid,
            DriverError::InterfaceClash { .. }
            | DriverError::ParentDown { .. }
            | DriverError::PassthruInUse { .. } => ErrorKind::Conflict,
            DriverError::ParentMissing { .. } => ErrorKind::NotFound,
            DriverError::VlanUnsupported { .. } => ErrorKind::Unavailable,
            DriverError::Netlink { source, .. } => source.kind(),
            DriverError::Netns { source, .. } => source.kind(),
        }
    }
}

/// A network driver. Methods are idempotent: "ensure" and "remove", never "fail if present".
#[async_trait::async_trait]
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// The name users pass as `--driver`.
    fn name(&self) -> &'static str;

    /// Where the driver's networks live: `Local` networks exist on this host only (their
    /// records and address space are this host's: every host has its own `bridge`), `Global`
    /// ones span the cluster (overlay: one subnet, one record, seen by every host).
    fn scope(&self) -> Scope {
        Scope::Local
    }

    /// Check the user's `-o` options and derive the network's settings. Pure: nothing is
    /// created, so a refused request leaves no trace.
    fn configure(
        &self,
        network_id: &str,
        options: &BTreeMap<String, String>,
        internal: bool,
        default_mtu: Option<u32>,
    ) -> Result<NetworkSettings, DriverError>;

    /// Build (or re-build) the network's host-side objects.
    async fn create_network(&self, network: &NetworkConfig) -> Result<(), DriverError>;

    /// Remove the network's host-side objects; absent objects are not an error.
    async fn delete_network(&self, network: &NetworkConfig) -> Result<(), DriverError>;

    /// Wire an endpoint into its namespace with its addresses and routes.
    async fn attach(
        &self,
        network: &NetworkConfig,
        endpoint: &EndpointConfig,
    ) -> Result<(), DriverError>;

    /// Remove an endpoint's interfaces; a namespace that is already gone is not an error.
    async fn detach(
        &self,
        network: &NetworkConfig,
        endpoint: &EndpointConfig,
    ) -> Result<(), DriverError>;

    /// Whether the driver limits the number of endpoints of a network (then `check_attach`
    /// is given the count, which costs a scan of the network's endpoints).
    fn limits_endpoints(&self) -> bool {
        false
    }

    /// Refuse one more endpoint before anything is reserved or created (`endpoints`: how many
    /// the network has now). Only called when [`Driver::limits_endpoints`].
    fn check_attach(&self, _network: &NetworkConfig, _endpoints: usize) -> Result<(), DriverError> {
        Ok(())
    }

    /// Whether an endpoint's host-side wiring is intact; checked at start-up, where a broken
    /// one is detached and attached again. Endpoints that live wholly inside their namespace
    /// have nothing on the host to check.
    async fn is_wired(
        &self,
        _network: &NetworkConfig,
        _endpoint: &EndpointConfig,
    ) -> Result<bool, DriverError> {
        Ok(true)
    }

    /// True when the driver's endpoints go through Warren's NAT (masquerade, published ports).
    fn uses_nat(&self) -> bool {
        false
    }
}

/// Addresses, loopback and the default routes, set from inside the endpoint's namespace (one
/// socket opened there). Shared by the drivers whose endpoint is born inside the namespace.
///
/// An interface on a network without IPv6 gets IPv6 turned off before it comes up (as Docker
/// does): otherwise its link-local address brings duplicate address detection, MLD reports
/// and router solicitations, multicasts that a bridge floods to every other port, so each new
/// endpoint would cost work proportional to the endpoints already there.
pub(crate) async fn configure_inside(
    endpoint: &EndpointConfig,
    gateways: &[IpAddr],
) -> Result<(), DriverError> {
    let ifname = &endpoint.ifname;
    let ipv6 = endpoint.addresses.iter().any(IpNetwork::is_ipv6);
    let owned_ifname = ifname.clone();
    let disable_ipv6 = move || -> Result<(), NetnsError> {
        if ipv6 {
            return Ok(());
        }
        crate::netns::disable_ipv6(&owned_ifname)
    };
    let (inside, disabled) = Netlink::in_netns_with(&endpoint.netns, disable_ipv6)
        .await
        .map_err(DriverError::netlink(format!(
            "enter {}",
            endpoint.netns.display()
        )))?;
    disabled.map_err(DriverError::netns(format!("disable IPv6 on {ifname}")))?;
    let index = inside
        .link_index(ifname)
        .await
        .map_err(DriverError::netlink(format!("look up {ifname}")))?
        .ok_or_else(|| {
            DriverError::Unsupported(format!(
                "{ifname} vanished from {}",
                endpoint.netns.display()
            ))
        })?;
    for addr in &endpoint.addresses {
        inside
            .add_allocated_address(index, *addr)
            .await
            .map_err(DriverError::netlink(format!("add {addr} to {ifname}")))?;
    }
    inside
        .set_up(index)
        .await
        .map_err(DriverError::netlink(format!("bring {ifname} up")))?;
    if let Some(lo) = inside
        .link_index("lo")
        .await
        .map_err(DriverError::netlink("look up lo"))?
    {
        inside
            .set_up(lo)
            .await
            .map_err(DriverError::netlink("bring lo up"))?;
    }
    for gateway in gateways {
        let default: IpNetwork = match gateway {
            IpAddr::V4(_) => "0.0.0.0/0".parse().expect("valid"),
            IpAddr::V6(_) => "::/0".parse().expect("valid"),
        };
        // A namespace on several networks keeps the first default route (EEXIST is fine).
        inside
            .add_route(default, Some(*gateway), Some(index))
            .await
            .map_err(DriverError::netlink(format!(
                "add default route via {gateway}"
            )))?;
    }
    Ok(())
}

/// Parse a Docker-style boolean option value ("true"/"false", "1"/"0").
pub fn parse_bool_option(option: &str, value: &str) -> Result<bool, DriverError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(DriverError::InvalidOption {
            option: option.to_string(),
            value: value.to_string(),
            reason: "expected true or false".into(),
        }),
    }
}

/// A random locally administered unicast MAC address, Docker's 02:42 prefix, as text.
pub fn random_mac() -> String {
    let bytes = crate::netlink::random_local_mac();
    bytes.map(|b| format!("{b:02x}")).join(":")
}

/// Parse "02:42:ac:11:00:02" into bytes.
pub fn parse_mac(mac: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = mac.split(':');
    for byte in &mut out {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_are_local_unicast() {
        let mac = random_mac();
        let bytes = parse_mac(&mac).unwrap();
        assert_eq!(bytes[0] & 0x01, 0, "unicast");
        assert_eq!(bytes[0] & 0x02, 0x02, "locally administered");
        assert!(parse_mac("02:42:zz:00:00:00").is_none());
        assert!(parse_mac("02:42:00:00:00").is_none());
        assert!(parse_mac("02:42:00:00:00:00:00").is_none());
    }

    #[test]
    fn bool_options() {
        assert!(parse_bool_option("x", "TRUE").unwrap());
        assert!(!parse_bool_option("x", "0").unwrap());
        assert!(parse_bool_option("x", "maybe").is_err());
    }
}
