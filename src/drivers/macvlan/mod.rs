//! macvlan driver: each endpoint is a macvlan link on a parent interface, born directly inside
//! the target namespace (one netlink request: IFLA_LINK names the parent in the host
//! namespace, IFLA_NET_NS_FD the namespace it is created in), with its own MAC address on the
//! parent's LAN. No bridge, no veth, no NAT: endpoints are reached at their own addresses.
//!
//! The parent is, by Docker's options:
//! - `-o parent=eth0`: an existing, up interface (never `lo`); Warren leaves it alone.
//! - `-o parent=eth0.10`: an 802.1Q sub-interface; made on `eth0` when missing and then
//!   removed with the network. Warren marks a sub-interface it made with an IFLA_IFALIAS of
//!   [`owner_alias`], so the kernel itself says who made it (it survives a crash between
//!   creating the link and any record) and one the user made is never deleted.
//! - none: an internal-only network. A macvlan needs a lower device and this kernel has no
//!   `dummy` link type, so Warren makes a hidden bridge `wm-<id10>` with no ports as the
//!   parent (a portless bridge is up with carrier, and bridge-mode macvlans on it switch
//!   between each other); endpoints get no default route.
//!
//! The host cannot talk to its own macvlan children through the parent (the kernel does not
//! switch between a macvlan and its lower device); see docs/macvlan.md for the workaround.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::AsFd;

use nix::errno::Errno;
use rtnetlink::packet_route::link::MacVlanMode;
use serde::{Deserialize, Serialize};

use crate::drivers::{
    parse_mac, Driver, DriverError, EndpointConfig, NetworkConfig, NetworkSettings,
};
use crate::error::{ErrorKind, HasKind};
use crate::netlink::{validate_ifname, MacvlanSpec, Netlink, VlanSpec, VLAN_ID_RANGE};
use crate::netns;

pub const OPT_PARENT: &str = "parent";
pub const OPT_MODE: &str = "macvlan_mode";
const KNOWN_OPTIONS: [&str; 2] = [OPT_PARENT, OPT_MODE];

/// macvlan modes, as Docker names them (`-o macvlan_mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    /// Children talk to each other directly, inside the parent.
    #[default]
    Bridge,
    /// Children cannot talk to each other at all.
    Private,
    /// Child-to-child traffic goes out to the external switch (which must hairpin it).
    Vepa,
    /// One child takes over the parent (its MAC and promiscuity); one endpoint only.
    Passthru,
}

impl MacvlanMode {
    fn parse(value: &str) -> Option<MacvlanMode> {
        match value {
            "bridge" => Some(MacvlanMode::Bridge),
            "private" => Some(MacvlanMode::Private),
            "vepa" => Some(MacvlanMode::Vepa),
            "passthru" => Some(MacvlanMode::Passthru),
            _ => None,
        }
    }

    fn kernel(self) -> MacVlanMode {
        match self {
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
        }
    }
}

/// An `IF.VLAN` parent: the 802.1Q sub-interface `settings.interface` of `lower`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanParent {
    pub lower: String,
    pub id: u16,
}

/// What a macvlan network was decided to be at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacvlanSettings {
    pub mode: MacvlanMode,
    /// The parent the user named; `None`: internal network on a hidden bridge
    /// (`settings.interface`).
    pub parent: Option<String>,
    /// Set when the parent has the `IF.VLAN` form.
    pub vlan: Option<VlanParent>,
}

#[derive(Debug, Default)]
pub struct MacvlanDriver;

/// Prefix of the hidden parent bridges of parent-less macvlan networks.
pub const HIDDEN_PARENT_PREFIX: &str = "wm-";

/// The hidden parent bridge of an internal (parent-less) network: `wm-` + 10 hex digits.
pub fn hidden_parent_name(network_id: &str) -> String {
    format!(
        "{HIDDEN_PARENT_PREFIX}{}",
        &network_id[..network_id.len().min(10)]
    )
}

/// The IFLA_IFALIAS Warren puts on a VLAN sub-interface it made for a network.
pub fn owner_alias(network_id: &str) -> String {
    format!("warren macvlan network {network_id}")
}

/// `eth0.10` → (`eth0`, 10); anything else (no dot, non-numeric suffix) is a plain name.
fn split_vlan(parent: &str) -> Result<Option<VlanParent>, DriverError> {
    let Some((lower, id)) = parent.rsplit_once('.') else {
        return Ok(None);
    };
    if lower.is_empty() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let id = id
        .parse::<u16>()
        .ok()
        .filter(|id| VLAN_ID_RANGE.contains(id))
        .ok_or_else(|| DriverError::InvalidOption {
            option: OPT_PARENT.into(),
            value: parent.into(),
            reason: format!(
                "VLAN id must be between {} and {}",
                VLAN_ID_RANGE.start(),
                VLAN_ID_RANGE.end()
            ),
        })?;
    Ok(Some(VlanParent {
        lower: lower.to_string(),
        id,
    }))
}

fn settings_of(network: &NetworkConfig) -> Result<&MacvlanSettings, DriverError> {
    network.settings.macvlan.as_ref().ok_or_else(|| {
        DriverError::Unsupported(format!(
            "network {} has no macvlan settings (record written by another driver?)",
            network.name
        ))
    })
}

#[async_trait::async_trait]
impl Driver for MacvlanDriver {
    fn name(&self) -> &'static str {
        "macvlan"
    }

    fn configure(
        &self,
        network_id: &str,
        options: &BTreeMap<String, String>,
        _internal: bool,
        _default_mtu: Option<u32>,
    ) -> Result<NetworkSettings, DriverError> {
        for key in options.keys() {
            if !KNOWN_OPTIONS.contains(&key.as_str()) {
                return Err(DriverError::UnknownOption {
                    driver: "macvlan",
                    option: key.clone(),
                    known: KNOWN_OPTIONS.join(", "),
                });
            }
        }
        let mode = match options.get(OPT_MODE) {
            Some(v) => MacvlanMode::parse(v).ok_or_else(|| DriverError::InvalidOption {
                option: OPT_MODE.into(),
                value: v.clone(),
                reason: "expected bridge, private, vepa or passthru".into(),
            })?,
            None => MacvlanMode::default(),
        };
        let parent = options.get(OPT_PARENT).filter(|p| !p.is_empty()).cloned();
        let (interface, vlan) = match &parent {
            Some(p) => {
                let invalid = |reason: String| DriverError::InvalidOption {
                    option: OPT_PARENT.into(),
                    value: p.clone(),
                    reason,
                };
                validate_ifname(p).map_err(|e| invalid(e.to_string()))?;
                let vlan = split_vlan(p)?;
                let lower = vlan.as_ref().map_or(p.as_str(), |v| v.lower.as_str());
                if lower == "lo" {
                    return Err(invalid(
                        "the loopback device cannot carry macvlan links; name a LAN interface"
                            .into(),
                    ));
                }
                (p.clone(), vlan)
            }
            None => {
                if mode == MacvlanMode::Passthru {
                    return Err(DriverError::InvalidOption {
                        option: OPT_MODE.into(),
                        value: "passthru".into(),
                        reason: "passthru needs a parent interface (-o parent=IF)".into(),
                    });
                }
                (hidden_parent_name(network_id), None)
            }
        };
        Ok(NetworkSettings {
            interface,
            // A macvlan inherits its parent's MTU and cannot exceed it.
            mtu: None,
            icc: mode != MacvlanMode::Private,
            masquerade: false,
            host_binding_ipv4: None,
            macvlan: Some(MacvlanSettings { mode, parent, vlan }),
            ports_per_bridge: None,
        })
    }

    async fn create_network(&self, network: &NetworkConfig) -> Result<(), DriverError> {
        let settings = settings_of(network)?;
        let parent = &network.settings.interface;
        let nl = Netlink::current().map_err(DriverError::netlink("open netlink"))?;
        if settings.parent.is_none() {
            if let Some(link) = nl
                .link(parent)
                .await
                .map_err(DriverError::netlink(format!("look up {parent}")))?
            {
                if link.kind.as_deref() != Some("bridge") {
                    return Err(DriverError::InterfaceClash {
                        name: parent.clone(),
                    });
                }
            }
            nl.ensure_bridge(parent, None, false)
                .await
                .map_err(DriverError::netlink(format!(
                    "create hidden parent bridge {parent}"
                )))?;
            return Ok(());
        }
        // Look first, change nothing until every check passed.
        if let Some(link) = nl
            .link(parent)
            .await
            .map_err(DriverError::netlink(format!("look up {parent}")))?
        {
            if !link.up {
                // A sub-interface Warren made (for this network) is brought back up on
                // reconcile; anyone else's is theirs to manage.
                if link.alias.as_deref() == Some(owner_alias(&network.id).as_str()) {
                    nl.set_up(link.index)
                        .await
                        .map_err(DriverError::netlink(format!("bring {parent} up")))?;
                } else {
                    return Err(DriverError::ParentDown {
                        parent: parent.clone(),
                    });
                }
            }
            return Ok(());
        }
        let Some(vlan) = &settings.vlan else {
            return Err(DriverError::ParentMissing {
                parent: parent.clone(),
            });
        };
        let lower = nl
            .link(&vlan.lower)
            .await
            .map_err(DriverError::netlink(format!("look up {}", vlan.lower)))?
            .ok_or_else(|| DriverError::ParentMissing {
                parent: vlan.lower.clone(),
            })?;
        if !lower.up {
            return Err(DriverError::ParentDown {
                parent: vlan.lower.clone(),
            });
        }
        let spec = VlanSpec {
            name: parent.clone(),
            lower: lower.index,
            vlan_id: vlan.id,
            alias: Some(owner_alias(&network.id)),
        };
        match nl.create_vlan(&spec).await {
            Ok(_) => {
                tracing::info!(network = %network.name, link = %parent, "created 802.1Q sub-interface");
                Ok(())
            }
            Err(e) if e.errno() == Some(Errno::EOPNOTSUPP) => Err(DriverError::VlanUnsupported {
                parent: parent.clone(),
            }),
            Err(e) => Err(DriverError::netlink(format!(
                "create VLAN sub-interface {parent}"
            ))(e)),
        }
    }

    async fn delete_network(&self, network: &NetworkConfig) -> Result<(), DriverError> {
        let settings = settings_of(network)?;
        let parent = &network.settings.interface;
        let nl = Netlink::current().map_err(DriverError::netlink("open netlink"))?;
        let ours = match settings.parent {
            None => true,
            Some(_) => nl
                .link(parent)
                .await
                .map_err(DriverError::netlink(format!("look up {parent}")))?
                .is_some_and(|l| l.alias.as_deref() == Some(owner_alias(&network.id).as_str())),
        };
        if ours {
            nl.delete_link(parent)
                .await
                .map_err(DriverError::netlink(format!("delete {parent}")))?;
        }
        Ok(())
    }

    /// passthru: the one endpoint takes the parent.
    fn limits_endpoints(&self) -> bool {
        true
    }

    fn check_attach(&self, network: &NetworkConfig, endpoints: usize) -> Result<(), DriverError> {
        let settings = settings_of(network)?;
        if settings.mode == MacvlanMode::Passthru && endpoints > 0 {
            return Err(DriverError::PassthruInUse {
                network: network.name.clone(),
                parent: network.settings.interface.clone(),
            });
        }
        Ok(())
    }

    async fn attach(
        &self,
        network: &NetworkConfig,
        endpoint: &EndpointConfig,
    ) -> Result<(), DriverError> {
        let settings = settings_of(network)?;
        let parent = &network.settings.interface;
        let host = Netlink::current().map_err(DriverError::netlink("open netlink"))?;
        let lower = host
            .link_index(parent)
            .await
            .map_err(DriverError::netlink(format!("look up parent {parent}")))?
            .ok_or_else(|| DriverError::ParentMissing {
                parent: parent.clone(),
            })?;
        let ns_file =
            std::fs::File::open(&endpoint.netns).map_err(|source| DriverError::Netns {
                action: format!("open namespace {}", endpoint.netns.display()),
                source: Box::new(netns::NetnsError::Open {
                    path: endpoint.netns.clone(),
                    source,
                }),
            })?;
        let spec = MacvlanSpec {
            name: endpoint.ifname.clone(),
            lower,
            mode: settings.mode.kernel(),
            netns: Some(ns_file.as_fd()),
            // passthru: the child takes the parent's own MAC (the kernel sets it).
            mac: (settings.mode != MacvlanMode::Passthru)
                .then(|| parse_mac(&endpoint.mac))
                .flatten(),
            mtu: network.settings.mtu,
            alias: None,
        };
        host.create_macvlan(&spec)
            .await
            .map_err(DriverError::netlink(format!(
                "create macvlan {} on {parent} in {}",
                endpoint.ifname,
                endpoint.netns.display()
            )))?;
        // Internal by construction without a parent: never a default route.
        let gateways: &[IpAddr] = if settings.parent.is_none() {
            &[]
        } else {
            &endpoint.gateways
        };
        if let Err(e) = crate::drivers::configure_inside(endpoint, gateways).await {
            let _ = remove_inside(endpoint).await;
            return Err(e);
        }
        Ok(())
    }

    async fn detach(
        &self,
        _network: &NetworkConfig,
        endpoint: &EndpointConfig,
    ) -> Result<(), DriverError> {
        remove_inside(endpoint).await
    }

    fn uses_nat(&self) -> bool {
        false
    }
}

/// Delete the endpoint's macvlan from inside its namespace; a namespace or link that is
/// already gone (the link dies with its namespace) is not an error.
async fn remove_inside(endpoint: &EndpointConfig) -> Result<(), DriverError> {
    let ifname = &endpoint.ifname;
    let inside = match Netlink::in_netns(&endpoint.netns).await {
        Ok(nl) => nl,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(DriverError::netlink(format!(
                "enter {}",
                endpoint.netns.display()
            ))(e))
        }
    };
    let link = inside
        .link(ifname)
        .await
        .map_err(DriverError::netlink(format!("look up {ifname}")))?;
    // Only a macvlan: the name may have been reused by something that is not ours.
    if link.is_some_and(|l| l.kind.as_deref() == Some("macvlan")) {
        inside
            .delete_link(ifname)
            .await
            .map_err(DriverError::netlink(format!("delete macvlan {ifname}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn configure(pairs: &[(&str, &str)]) -> Result<NetworkSettings, DriverError> {
        MacvlanDriver.configure(ID, &opts(pairs), false, Some(9000))
    }

    #[test]
    fn defaults_bridge_mode_no_nat_parent_mtu() {
        let s = configure(&[(OPT_PARENT, "eth0")]).unwrap();
        assert_eq!(s.interface, "eth0");
        assert!(!s.masquerade && s.icc);
        assert_eq!(s.mtu, None, "the daemon's MTU does not apply to macvlan");
        let m = s.macvlan.unwrap();
        assert_eq!(m.mode, MacvlanMode::Bridge);
        assert_eq!(m.parent.as_deref(), Some("eth0"));
        assert_eq!(m.vlan, None);
        assert!(!MacvlanDriver.uses_nat());
    }

    #[test]
    fn modes_are_parsed() {
        for (text, mode) in [
            ("bridge", MacvlanMode::Bridge),
            ("private", MacvlanMode::Private),
            ("vepa", MacvlanMode::Vepa),
            ("passthru", MacvlanMode::Passthru),
        ] {
            let s = configure(&[(OPT_PARENT, "eth0"), (OPT_MODE, text)]).unwrap();
            assert_eq!(s.macvlan.unwrap().mode, mode);
        }
        let private = configure(&[(OPT_PARENT, "eth0"), (OPT_MODE, "private")]).unwrap();
        assert!(!private.icc);
    }

    #[test]
    fn vlan_parents_are_recognised() {
        let s = configure(&[(OPT_PARENT, "eth0.10")]).unwrap();
        assert_eq!(s.interface, "eth0.10");
        assert_eq!(
            s.macvlan.unwrap().vlan,
            Some(VlanParent {
                lower: "eth0".into(),
                id: 10
            })
        );
        // Dots without a numeric suffix are ordinary names.
        for plain in ["br.lan", "eth0.", "v.1x"] {
            let s = configure(&[(OPT_PARENT, plain)]).unwrap();
            assert_eq!(s.macvlan.unwrap().vlan, None, "{plain}");
        }
    }

    #[test]
    fn no_parent_means_a_hidden_bridge() {
        let s = configure(&[]).unwrap();
        assert_eq!(s.interface, "wm-0123456789");
        assert!(s.interface.len() <= 15);
        assert_eq!(s.macvlan.unwrap().parent, None);
    }

    #[test]
    fn bad_options_are_refused_with_their_kind() {
        for (bad, kind) in [
            (vec![("mode", "bridge")], ErrorKind::Invalid),
            (
                vec![(OPT_PARENT, "eth0"), (OPT_MODE, "switch")],
                ErrorKind::Invalid,
            ),
            (vec![(OPT_PARENT, "lo")], ErrorKind::Invalid),
            (vec![(OPT_PARENT, "lo.5")], ErrorKind::Invalid),
            (vec![(OPT_PARENT, "eth0.0")], ErrorKind::Invalid),
            (vec![(OPT_PARENT, "eth0.4095")], ErrorKind::Invalid),
            (
                vec![(OPT_PARENT, "a-name-longer-than-15")],
                ErrorKind::Invalid,
            ),
            (vec![(OPT_PARENT, "bad/name")], ErrorKind::Invalid),
            (vec![(OPT_MODE, "passthru")], ErrorKind::Invalid),
        ] {
            let err = configure(&bad).expect_err(&format!("{bad:?}"));
            assert_eq!(err.kind(), kind, "{bad:?}: {err}");
        }
        let err = configure(&[("mode", "bridge")]).unwrap_err();
        assert!(err.to_string().contains("parent, macvlan_mode"), "{err}");
    }

    #[test]
    fn passthru_takes_one_endpoint() {
        let network = |mode: &str| NetworkConfig {
            id: ID.into(),
            name: "lan".into(),
            settings: configure(&[(OPT_PARENT, "eth0"), (OPT_MODE, mode)]).unwrap(),
            gateways: Vec::new(),
            internal: false,
        };
        assert!(MacvlanDriver.check_attach(&network("passthru"), 0).is_ok());
        let err = MacvlanDriver
            .check_attach(&network("passthru"), 1)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(MacvlanDriver.check_attach(&network("bridge"), 5).is_ok());
    }

    #[test]
    fn settings_round_trip_and_old_records_still_parse() {
        let s = configure(&[(OPT_PARENT, "eth0.7"), (OPT_MODE, "vepa")]).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"vepa\""), "{json}");
        assert_eq!(serde_json::from_str::<NetworkSettings>(&json).unwrap(), s);
        let old = r#"{"interface":"br-x","mtu":null,"icc":true,"masquerade":true,"host_binding_ipv4":null}"#;
        assert_eq!(
            serde_json::from_str::<NetworkSettings>(old)
                .unwrap()
                .macvlan,
            None
        );
    }
}
