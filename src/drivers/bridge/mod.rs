//! Bridge driver: a Linux bridge per network holding the gateway address; each endpoint is a
//! veth pair whose container end is born inside the target namespace (one netlink request:
//! creating in place costs ~1 ms, creating then moving ~20 ms).
//!
//! Docker's option names are accepted where they apply, so `docker network create -o …`
//! means the same here. A network with more endpoints than one bridge should carry grows
//! extension bridges under its main one ([`extensions`]).

mod extensions;

use std::collections::BTreeMap;
use std::os::fd::AsFd;

use crate::drivers::{
    parse_bool_option, parse_mac, Driver, DriverError, EndpointConfig, NetworkConfig,
    NetworkSettings,
};
use crate::netlink::{validate_ifname, Netlink, VethSpec};
use crate::netns;

pub use extensions::{
    extension_owner, parse_extension_link, BRIDGE_PREFIX as EXTENSION_PREFIX,
    DEFAULT_PORTS_PER_BRIDGE, UPLINK_PREFIX,
};

pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
/// Warren's own: endpoint ports per Linux bridge before an extension bridge is added.
pub const OPT_PORTS_PER_BRIDGE: &str = "warren.bridge.ports_per_bridge";
const KNOWN_OPTIONS: [&str; 6] = [
    OPT_BRIDGE_NAME,
    OPT_MTU,
    OPT_ICC,
    OPT_MASQUERADE,
    OPT_HOST_BINDING,
    OPT_PORTS_PER_BRIDGE,
];

/// Name of the default network's bridge (Warren's docker0).
pub const DEFAULT_BRIDGE: &str = "warren0";

#[derive(Debug, Default)]
pub struct BridgeDriver {
    /// Deletes detached veths in the background (started on first use; see `detach`).
    reaper: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<u32>>,
    /// Which bridge of its network each new endpoint goes on.
    extensions: extensions::Extensions,
}

/// `br-` plus the first 12 hex digits of the network id, as Docker names user bridges.
pub fn default_bridge_name(network_id: &str) -> String {
    format!("br-{}", &network_id[..network_id.len().min(12)])
}

/// The host end of an endpoint's veth: `wv` plus 10 hex digits of the endpoint id (≤ 15 bytes).
pub fn host_veth_name(endpoint_id: &str) -> String {
    format!("wv{}", &endpoint_id[..endpoint_id.len().min(10)])
}

/// Names of the links Warren makes itself (host veth ends, hidden container ends, macvlan
/// parents, extension bridges and uplinks), which a user's bridge must not take: reconcile
/// would treat it as Warren's.
fn is_reserved_name(name: &str) -> bool {
    let hex_after = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    hex_after("wv")
        || hex_after("wd")
        || name.starts_with(crate::drivers::macvlan::HIDDEN_PARENT_PREFIX)
        || parse_extension_link(name).is_some()
}

/// The host end of an endpoint's veth: as recorded, else derived from its id.
fn host_end_name(endpoint: &EndpointConfig) -> String {
    endpoint
        .host_ifname
        .clone()
        .unwrap_or_else(|| host_veth_name(&endpoint.id))
}

/// A name to hide a detached container end under until its pair is deleted: `wd` plus
/// random hex, so an endpoint detached twice (re-wired, then removed) never clashes.
fn hidden_name() -> String {
    format!("wd{}", &crate::agent::random_id()[..10])
}

#[async_trait::async_trait]
impl Driver for BridgeDriver {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn configure(
        &self,
        network_id: &str,
        options: &BTreeMap<String, String>,
        internal: bool,
        default_mtu: Option<u32>,
    ) -> Result<NetworkSettings, DriverError> {
        for key in options.keys() {
            if !KNOWN_OPTIONS.contains(&key.as_str()) {
                return Err(DriverError::UnknownOption {
                    driver: "bridge",
                    option: key.clone(),
                    known: KNOWN_OPTIONS.join(", "),
                });
            }
        }
        let invalid = |option: &str, value: &str, reason: String| DriverError::InvalidOption {
            option: option.to_string(),
            value: value.to_string(),
            reason,
        };
        let interface = match options.get(OPT_BRIDGE_NAME) {
            Some(name) => {
                validate_ifname(name).map_err(|e| invalid(OPT_BRIDGE_NAME, name, e.to_string()))?;
                if is_reserved_name(name) {
                    let reason = "names starting with wv, wd, wm-, wx, wy or wz followed by \
                                  hex digits are Warren's own links"
                        .to_string();
                    return Err(invalid(OPT_BRIDGE_NAME, name, reason));
                }
                name.clone()
            }
            None => default_bridge_name(network_id),
        };
        let mtu = match options.get(OPT_MTU) {
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| {
                        invalid(OPT_MTU, v, "expected a number between 68 and 65535".into())
                    })?,
            ),
            None => default_mtu,
        };
        let flag = |option: &str| {
            options
                .get(option)
                .map(|v| parse_bool_option(option, v))
                .transpose()
        };
        let icc = flag(OPT_ICC)?.unwrap_or(true);
        let masquerade = flag(OPT_MASQUERADE)?.unwrap_or(true) && !internal;
        let host_binding_ipv4 = match options.get(OPT_HOST_BINDING) {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| invalid(OPT_HOST_BINDING, v, "expected an IPv4 address".into()))?,
            ),
            None => None,
        };
        let ports_per_bridge = match options.get(OPT_PORTS_PER_BRIDGE) {
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    // An extension bridge holds its endpoints plus its uplink.
                    .filter(|n| (*n as usize) < extensions::BRIDGE_MAX_PORTS)
                    .ok_or_else(|| {
                        let max = extensions::BRIDGE_MAX_PORTS - 1;
                        let reason = format!(
                            "expected a number of ports from 1 to {max}, or 0 for one flat bridge"
                        );
                        invalid(OPT_PORTS_PER_BRIDGE, v, reason)
                    })?,
            ),
            None => None,
        };
        Ok(NetworkSettings {
            interface,
            mtu,
            icc,
            masquerade,
            host_binding_ipv4,
            macvlan: None,
            ports_per_bridge,
        })
    }

    async fn create_network(&self, network: &NetworkConfig) -> Result<(), DriverError> {
        let bridge = &network.settings.interface;
        let nl = Netlink::current().map_err(DriverError::netlink("open netlink"))?;
        if let Some(link) = nl
            .link(bridge)
            .await
            .map_err(DriverError::netlink(format!("look up {bridge}")))?
        {
            if link.kind.as_deref() != Some("bridge") {
                return Err(DriverError::InterfaceClash {
                    name: bridge.clone(),
                });
            }
        }
        let index = nl
            .ensure_bridge(bridge, network.settings.mtu, true)
            .await
            .map_err(DriverError::netlink(format!("create bridge {bridge}")))?;
        self.extensions.restore(&nl, network, index).await?;
        for gateway in &network.gateways {
            nl.add_allocated_address(index, *gateway)
                .await
                .map_err(DriverError::netlink(format!("add {gateway} to {bridge}")))?;
        }
        if !network.internal {
            enable_forwarding(network)?;
            // Published ports reached via 127.0.0.1 are DNATed to the bridge; the kernel drops
            // such martians unless the bridge accepts routed loopback sources.
            netns::sysctl_set(None, &format!("net.ipv4.conf.{bridge}.route_localnet"), "1")
                .map_err(DriverError::netns(format!(
                    "allow localhost-published ports on {bridge}"
                )))?;
        }
        Ok(())
    }

    async fn delete_network(&self, network: &NetworkConfig) -> Result<(), DriverError> {
        let bridge = &network.settings.interface;
        let nl = Netlink::current().map_err(DriverError::netlink("open netlink"))?;
        // The main bridge goes even if an extension link does not (reported after).
        let extensions = extensions::delete_all(&nl, &network.id).await;
        self.extensions.forget(&network.id);
        nl.delete_link(bridge)
            .await
            .map_err(DriverError::netlink(format!("delete bridge {bridge}")))?;
        extensions
    }

    async fn attach(
        &self,
        network: &NetworkConfig,
        endpoint: &EndpointConfig,
    ) -> Result<(), DriverError> {
        let bridge = &network.settings.interface;
        let host_name = host_end_name(endpoint);
        let host = Netlink::current().map_err(DriverError::netlink("open netlink"))?;
        let main = host
            .link_index(bridge)
            .await
            .map_err(DriverError::netlink(format!("look up bridge {bridge}")))?
            .ok_or_else(|| {
                DriverError::Unsupported(format!(
                    "bridge {bridge} of network {} is missing",
                    network.name
                ))
            })?;
        let ns_file =
            std::fs::File::open(&endpoint.netns).map_err(|source| DriverError::Netns {
                action: format!("open namespace {}", endpoint.netns.display()),
                source: Box::new(netns::NetnsError::Open {
                    path: endpoint.netns.clone(),
                    source,
                }),
            })?;
        let bridge = self.extensions.take_port(&host, network, main).await?;
        let spec = VethSpec {
            host_name: host_name.clone(),
            peer_name: endpoint.ifname.clone(),
            peer_netns: Some(ns_file.as_fd()),
            master: Some(bridge),
            mtu: network.settings.mtu,
            peer_mac: parse_mac(&endpoint.mac),
            host_up: false,
        };
        let wired = wire_veth(&host, &spec, endpoint).await;
        if wired.is_err() {
            self.extensions.release_port(network, bridge).await;
        }
        wired
    }

    /// Deleting a veth pair costs the kernel ~20 ms (it waits for RCU grace periods), far more
    /// than everything else a detach does. So the endpoint is taken out of service at once —
    /// its container end loses its addresses, goes down (taking its routes) and is renamed
    /// out of the way, freeing
    /// `ethN` — and the pair is deleted by a background task. The caller releases the record
    /// and address; a pair left by a crash is an orphan `wv*` link, removed at the next start.
    async fn detach(
        &self,
        network: &NetworkConfig,
        endpoint: &EndpointConfig,
    ) -> Result<(), DriverError> {
        let host_name = host_end_name(endpoint);
        if endpoint.netns.exists() {
            let inside = Netlink::in_netns(&endpoint.netns)
                .await
                .map_err(DriverError::netlink(format!(
                    "enter {}",
                    endpoint.netns.display()
                )))?;
            let ifname = &endpoint.ifname;
            let index = inside
                .link_index(ifname)
                .await
                .map_err(DriverError::netlink(format!("look up {ifname}")))?;
            if let Some(index) = index {
                // Addresses go first so the namespace stops using them at once.
                for addr in &endpoint.addresses {
                    inside
                        .del_address(index, *addr)
                        .await
                        .map_err(DriverError::netlink(format!("remove {addr} from {ifname}")))?;
                }
                inside
                    .hide(index, &hidden_name())
                    .await
                    .map_err(DriverError::netlink(format!(
                        "take {ifname} out of service"
                    )))?;
            }
        }
        let host = Netlink::current().map_err(DriverError::netlink("open netlink"))?;
        if let Some(link) = host
            .link(&host_name)
            .await
            .map_err(DriverError::netlink(format!("look up {host_name}")))?
        {
            // Off the bridge now, so the network shows no stale port; freed in the background.
            host.release(link.index)
                .await
                .map_err(DriverError::netlink(format!(
                    "release {host_name} from its bridge"
                )))?;
            self.delete_later(link.index);
            if let Some(bridge) = link.master {
                self.extensions.release_port(network, bridge).await;
            }
        } else {
            // Deleted behind Warren's back: which bridge lost a port is unknown now.
            self.extensions.recount(&network.id).await;
        }
        Ok(())
    }

    /// The host end exists and is a port of one of the network's bridges.
    async fn is_wired(
        &self,
        network: &NetworkConfig,
        endpoint: &EndpointConfig,
    ) -> Result<bool, DriverError> {
        let host_name = host_end_name(endpoint);
        let host = Netlink::current().map_err(DriverError::netlink("open netlink"))?;
        let master = host
            .link(&host_name)
            .await
            .map_err(DriverError::netlink(format!("look up {host_name}")))?
            .and_then(|link| link.master);
        Ok(match master {
            Some(bridge) => self.extensions.is_network_bridge(&network.id, bridge).await,
            None => false,
        })
    }

    fn uses_nat(&self) -> bool {
        true
    }
}

impl BridgeDriver {
    /// Queue a veth (by host-end index) for deletion by the background reaper.
    fn delete_later(&self, index: u32) {
        let reaper = self.reaper.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            tokio::spawn(async move {
                while let Some(index) = rx.recv().await {
                    let deleted = match Netlink::current() {
                        Ok(nl) => nl.delete_link_index(index).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = deleted {
                        tracing::warn!(index, error = %crate::error::chain(&e), "cannot delete detached veth");
                    }
                }
            });
            tx
        });
        if reaper.send(index).is_err() {
            tracing::warn!("veth reaper is gone; the next start removes the orphan");
        }
    }
}

/// Create an endpoint's veth pair on its bridge and configure both ends; on failure the pair
/// is deleted, so no half-wired endpoint stays behind.
async fn wire_veth(
    host: &Netlink,
    spec: &VethSpec<'_>,
    endpoint: &EndpointConfig,
) -> Result<(), DriverError> {
    let host_name = &spec.host_name;
    let host_end = match host.create_veth(spec).await {
        // The endpoint's previous pair, detached and still waiting for the reaper (a
        // re-wire at start-up): remove it now and create the new one.
        Err(e) if e.errno() == Some(nix::errno::Errno::EEXIST) => {
            host.delete_link(host_name)
                .await
                .map_err(DriverError::netlink(format!(
                    "delete stale veth {host_name}"
                )))?;
            host.create_veth(spec).await
        }
        created => created,
    }
    .map_err(DriverError::netlink(format!(
        "create veth {host_name} <-> {}",
        endpoint.ifname
    )))?;
    // Hairpin: a container reaching its own published port through a host address is
    // DNATed back to itself; with br_netfilter active the bridge sees that frame leave by
    // the port it arrived on and drops it unless the port may hairpin (Docker does the same).
    let wired = async {
        // A bridge port needs no IPv6 of its own. Disabled before the port comes up, the
        // kernel never adds its per-device IPv6 routes, which otherwise pile up (three per
        // port) and slow every later link change down.
        netns::disable_ipv6(host_name)
            .map_err(DriverError::netns(format!("disable IPv6 on {host_name}")))?;
        host.set_bridge_port_hairpin(host_end, true)
            .await
            .map_err(DriverError::netlink(format!(
                "enable hairpin on {host_name}"
            )))?;
        host.set_up(host_end)
            .await
            .map_err(DriverError::netlink(format!("bring {host_name} up")))?;
        crate::drivers::configure_inside(endpoint, &endpoint.gateways).await
    }
    .await;
    if let Err(e) = wired {
        // Deleting the host end removes the peer too: no half-wired endpoint stays behind.
        let _ = host.delete_link(host_name).await;
        return Err(e);
    }
    Ok(())
}

/// Routing between the bridge and the outside needs forwarding; turn it on only when a network
/// needs it, and say so, because it changes how the whole host treats packets.
fn enable_forwarding(network: &NetworkConfig) -> Result<(), DriverError> {
    let families = network.gateways.iter().map(|g| g.is_ipv4());
    for v4 in families {
        let key = if v4 {
            "net.ipv4.ip_forward"
        } else {
            "net.ipv6.conf.all.forwarding"
        };
        let current =
            netns::sysctl_get(None, key).map_err(DriverError::netns(format!("read {key}")))?;
        if current.trim() != "1" {
            tracing::info!(network = %network.name, "enabling {key} (network needs routing to the outside)");
            netns::sysctl_set(None, key, "1")
                .map_err(DriverError::netns(format!("enable {key}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_follow_docker() {
        let s = BridgeDriver::default()
            .configure(ID, &BTreeMap::new(), false, None)
            .unwrap();
        assert_eq!(s.interface, "br-0123456789ab");
        assert!(s.icc && s.masquerade);
        assert_eq!(s.mtu, None);
        assert!(host_veth_name(ID).len() <= 15);
        assert_eq!(
            s.bridge_port_limit(),
            Some(DEFAULT_PORTS_PER_BRIDGE as usize)
        );
    }

    #[test]
    fn options_are_parsed() {
        let s = BridgeDriver::default()
            .configure(
                ID,
                &opts(&[
                    (OPT_BRIDGE_NAME, "br-lab"),
                    (OPT_MTU, "1400"),
                    (OPT_ICC, "false"),
                    (OPT_HOST_BINDING, "127.0.0.1"),
                    (OPT_PORTS_PER_BRIDGE, "0"),
                ]),
                false,
                Some(1500),
            )
            .unwrap();
        assert_eq!(s.interface, "br-lab");
        assert_eq!(s.mtu, Some(1400));
        assert!(!s.icc);
        assert_eq!(s.host_binding_ipv4, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(s.bridge_port_limit(), None, "0: one flat bridge");
        // Names near Warren's own are fine.
        for name in ["wx-lab", "wvlan", "wz0123abcd"] {
            let s = BridgeDriver::default()
                .configure(ID, &opts(&[(OPT_BRIDGE_NAME, name)]), false, None)
                .unwrap();
            assert_eq!(s.interface, name);
        }
    }

    #[test]
    fn internal_networks_never_masquerade() {
        let s = BridgeDriver::default()
            .configure(ID, &opts(&[(OPT_MASQUERADE, "true")]), true, None)
            .unwrap();
        assert!(!s.masquerade);
    }

    #[test]
    fn bad_options_are_refused() {
        for bad in [
            opts(&[("com.docker.network.bridge.nme", "x")]),
            opts(&[(OPT_BRIDGE_NAME, "a-name-longer-than-15")]),
            opts(&[(OPT_BRIDGE_NAME, "bad/name")]),
            opts(&[(OPT_MTU, "9")]),
            opts(&[(OPT_MTU, "big")]),
            opts(&[(OPT_ICC, "perhaps")]),
            opts(&[(OPT_HOST_BINDING, "::1")]),
            opts(&[(OPT_PORTS_PER_BRIDGE, "1023")]),
            opts(&[(OPT_BRIDGE_NAME, "wx0123abcd-1")]),
            opts(&[(OPT_BRIDGE_NAME, "wv0123abcdef")]),
            opts(&[(OPT_BRIDGE_NAME, "wm-0123")]),
            opts(&[(OPT_PORTS_PER_BRIDGE, "some")]),
        ] {
            assert!(
                BridgeDriver::default()
                    .configure(ID, &bad, false, None)
                    .is_err(),
                "{bad:?}"
            );
        }
    }
}
