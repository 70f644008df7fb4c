//! Extension bridges: how one network scales to thousands of endpoints at a flat cost each.
//!
//! The kernel's cost of adding a port to a Linux bridge grows with the ports the bridge already
//! has (it walks the port list to recompute features, MTU, promiscuity and STP state, and the
//! bridge's lower-device list grows), so on one bridge the 1000th attach is measurably slower
//! than the first. A network's main bridge (the named one, holding the gateway) therefore takes
//! only the first `ports_per_bridge` endpoints itself — every network of ordinary size looks
//! exactly as Docker builds it. Further endpoints go onto extension bridges of at most
//! `ports_per_bridge` ports each, every one hanging off the main bridge by a veth pair, like a
//! switch stacked under another. Frames between endpoints on different bridges take the extra
//! veth hops; routed traffic reaches the gateway on the main bridge as before; an extension
//! that loses its last endpoint is removed.
//!
//! Names (≤ 15 bytes) come from the first 8 hex digits of the network id and the extension's
//! number, so the start-up reconciliation can tell whose they are:
//!
//! ```text
//!   br-lab ── wv… (endpoints 1..=P)
//!          ── wz<id8>-1 ══ wy<id8>-1 ── wx<id8>-1 ── wv… (endpoints P+1..=2P)
//!          ── wz<id8>-2 ══ wy<id8>-2 ── wx<id8>-2 ── wv… …
//! ```
//!
//! `wx` is the extension bridge; the veth pair between the two bridges is its uplink, `wy` its
//! end on the extension and `wz` (the "trunk") its end on the main bridge. The firewall relies
//! on the `wx` and `wy` prefixes (see `firewall::rules`).
//!
//! With br_netfilter active (`net.bridge.bridge-nf-call-iptables=1`, as on hosts that run
//! Docker or Kubernetes), netfilter sees frames as they cross an extension bridge too. The
//! firewall exempts that crossing from connection tracking, so NAT is decided once, on the
//! main bridge, as on one flat bridge. One case still differs there: a container on an
//! extension cannot reach its own published port through a host address (the main bridge
//! would have to send the frame back down the uplink it came from, and an uplink must not
//! hairpin: see `link_uplink`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::drivers::{DriverError, NetworkConfig};
use crate::netlink::{LinkInfo, Netlink, VethSpec};
use crate::netns;

/// Endpoint ports on one bridge when the user does not say otherwise. Below this the kernel's
/// per-port cost is too small to measure (labs/bench/attach/kernel_baseline.py).
pub const DEFAULT_PORTS_PER_BRIDGE: u32 = 32;

/// Prefixes of the extension bridge, its uplink port and the uplink's end on the main bridge.
pub const BRIDGE_PREFIX: &str = "wx";
pub const UPLINK_PREFIX: &str = "wy";
const TRUNK_PREFIX: &str = "wz";

/// The most ports a Linux bridge takes (port numbers are 10 bits, 0 unused). The main bridge
/// holds its own endpoints plus one uplink per extension, which bounds the extensions.
pub const BRIDGE_MAX_PORTS: usize = 1023;

/// The highest extension number names have room for (2 + 8 + 1 + 4 bytes); the port limit
/// above keeps real numbers far lower.
const MAX_EXTENSION: u32 = 9999;

/// The links of extension `number` of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExtensionNames {
    bridge: String,
    uplink: String,
    trunk: String,
}

impl ExtensionNames {
    fn new(network_id: &str, number: u32) -> ExtensionNames {
        let id8 = extension_owner(network_id);
        let name = |prefix: &str| format!("{prefix}{id8}-{number}");
        ExtensionNames {
            bridge: name(BRIDGE_PREFIX),
            uplink: name(UPLINK_PREFIX),
            trunk: name(TRUNK_PREFIX),
        }
    }
}

/// For a link named like an extension bridge, uplink or trunk: the network-id prefix (8 hex
/// digits) and the extension number in its name.
pub fn parse_extension_link(name: &str) -> Option<(&str, u32)> {
    let rest = [BRIDGE_PREFIX, UPLINK_PREFIX, TRUNK_PREFIX]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))?;
    let (id8, number) = rest.split_once('-')?;
    let hex = id8.len() == 8 && id8.bytes().all(|b| b.is_ascii_hexdigit());
    // Exactly as formatted: decimal digits, no sign, no leading zero.
    let canonical = number.bytes().all(|b| b.is_ascii_digit()) && !number.starts_with('0');
    let number = number
        .parse()
        .ok()
        .filter(|n| (1..=MAX_EXTENSION).contains(n));
    match (hex && canonical, number) {
        (true, Some(number)) => Some((id8, number)),
        _ => None,
    }
}

/// Which bridge of its network an endpoint port is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Main,
    Extension(u32),
}

/// A network's bridges as the driver last saw them: indexes and endpoint ports on each.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    main: u32,
    main_ports: usize,
    /// Extension number → (bridge index, endpoint ports on it).
    extensions: BTreeMap<u32, (u32, usize)>,
    /// Emptied extensions being deleted in the background; their numbers are not reused
    /// until their links are gone.
    retiring: BTreeSet<u32>,
    /// A port vanished without a detach: count again before the next placement.
    stale: bool,
}

impl Layout {
    /// Ports of the main bridge taken by uplinks (those of retiring extensions included, until
    /// they are deleted).
    fn uplinks(&self) -> usize {
        self.extensions.len() + self.retiring.len()
    }

    /// The slot of a bridge index, if it is one of this network's bridges.
    fn slot_of(&self, bridge: u32) -> Option<Slot> {
        if bridge == self.main {
            return Some(Slot::Main);
        }
        self.extensions
            .iter()
            .find(|(_, (index, _))| *index == bridge)
            .map(|(number, _)| Slot::Extension(*number))
    }

    fn ports_mut(&mut self, slot: Slot) -> Option<&mut usize> {
        match slot {
            Slot::Main => Some(&mut self.main_ports),
            Slot::Extension(n) => self.extensions.get_mut(&n).map(|(_, ports)| ports),
        }
    }

    /// Where the next endpoint goes: the main bridge while it has room, then the first
    /// extension with room, then a new extension (the lowest free number).
    fn place(&self, per_bridge: Option<usize>) -> Placement {
        let Some(limit) = per_bridge else {
            return Placement::Existing(Slot::Main);
        };
        if self.main_ports < limit {
            return Placement::Existing(Slot::Main);
        }
        if let Some((number, _)) = self.extensions.iter().find(|(_, (_, p))| *p < limit) {
            return Placement::Existing(Slot::Extension(*number));
        }
        let free = (1..).find(|n| !self.extensions.contains_key(n) && !self.retiring.contains(n));
        Placement::New(free.expect("fewer than u32::MAX extensions"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Existing(Slot),
    New(u32),
}

/// Port accounting of every bridge network, one lock per network. The agent already runs one
/// connect or disconnect at a time; the lock also orders them against the background removal
/// of emptied extensions and keeps networks independent of each other.
#[derive(Debug, Default)]
pub struct Extensions {
    networks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Layout>>>>>,
}

impl Extensions {
    fn layout_of(&self, network_id: &str) -> Arc<tokio::sync::Mutex<Option<Layout>>> {
        let mut networks = self.networks.lock().expect("extension map lock");
        networks.entry(network_id.to_owned()).or_default().clone()
    }

    /// Learn a network's bridges from the kernel after its main bridge was (re-)made: count
    /// the ports, re-link extensions whose uplink lost the main bridge (it was deleted and
    /// re-created), and remove extensions left without endpoints. Best effort per extension:
    /// trouble with one is logged, and the network (with its endpoints) is restored anyway.
    pub async fn restore(
        &self,
        nl: &Netlink,
        network: &NetworkConfig,
        main: u32,
    ) -> Result<(), DriverError> {
        let cell = self.layout_of(&network.id);
        relearn(&mut *cell.lock().await, nl, network, main).await?;
        Ok(())
    }

    /// Forget a network (it is being deleted); its links go with [`delete_all`].
    pub fn forget(&self, network_id: &str) {
        self.networks
            .lock()
            .expect("extension map lock")
            .remove(network_id);
    }

    /// Count the network's ports again from the kernel at its next attach (a port vanished
    /// behind the driver's back, so the counts are not to be trusted).
    pub async fn recount(&self, network_id: &str) {
        let cell = self.layout_of(network_id);
        let mut guard = cell.lock().await;
        if let Some(layout) = guard.as_mut() {
            layout.stale = true;
        }
    }

    /// Choose the bridge for one more endpoint and count its port, creating an extension
    /// bridge when every existing one is full. Returns the bridge's index.
    pub async fn take_port(
        &self,
        nl: &Netlink,
        network: &NetworkConfig,
        main: u32,
    ) -> Result<u32, DriverError> {
        let cell = self.layout_of(&network.id);
        let mut guard = cell.lock().await;
        let layout = match guard.as_mut() {
            Some(layout) if layout.main == main && !layout.stale => layout,
            // Not learned yet (the network could not be restored at start-up), its main
            // bridge was re-created since, or a port vanished: learn it again.
            _ => relearn(&mut guard, nl, network, main).await?,
        };
        let slot = match layout.place(network.settings.bridge_port_limit()) {
            Placement::Existing(slot) => slot,
            Placement::New(_) if layout.main_ports + layout.uplinks() >= BRIDGE_MAX_PORTS => {
                return Err(DriverError::Unsupported(format!(
                    "network {} is full: its main bridge has {} endpoints and {} extension \
                     bridges, and a Linux bridge takes at most {BRIDGE_MAX_PORTS} ports; \
                     a larger {} fits more",
                    network.name,
                    layout.main_ports,
                    layout.extensions.len(),
                    super::OPT_PORTS_PER_BRIDGE
                )));
            }
            Placement::New(number) => {
                let index = create_extension(nl, network, number, main).await?;
                layout.extensions.insert(number, (index, 0));
                Slot::Extension(number)
            }
        };
        *layout.ports_mut(slot).expect("slot just chosen") += 1;
        Ok(match slot {
            Slot::Main => main,
            Slot::Extension(number) => layout.extensions[&number].0,
        })
    }

    /// An endpoint port left `bridge` (or was taken and could not be wired): un-count it. An
    /// extension left without endpoints is deleted in the background: deleting a bridge and a
    /// veth pair waits for RCU grace periods (50-100 ms), which no detach should wait for.
    pub async fn release_port(&self, network: &NetworkConfig, bridge: u32) {
        let cell = self.layout_of(&network.id);
        let mut guard = cell.lock().await;
        let Some(layout) = guard.as_mut() else {
            return;
        };
        let Some(slot) = layout.slot_of(bridge) else {
            return;
        };
        let ports = layout.ports_mut(slot).expect("slot of a known bridge");
        *ports = ports.saturating_sub(1);
        let Slot::Extension(number) = slot else {
            return;
        };
        if *ports > 0 {
            return;
        }
        layout.extensions.remove(&number);
        layout.retiring.insert(number);
        let (cell, network) = (cell.clone(), network.clone());
        tokio::spawn(async move {
            let deleted = match Netlink::current() {
                Ok(nl) => delete_extension(&nl, &network, number).await,
                Err(e) => Err(DriverError::netlink("open netlink")(e)),
            };
            if let Err(e) = deleted {
                // A later extension of that number adopts what is left; a restart removes it.
                tracing::warn!(network = %network.name, error = %crate::error::chain(&e), "cannot remove an empty extension bridge");
            }
            if let Some(layout) = cell.lock().await.as_mut() {
                layout.retiring.remove(&number);
            }
        });
    }

    /// Whether `bridge` (an endpoint port's master) is one of the network's bridges.
    pub async fn is_network_bridge(&self, network_id: &str, bridge: u32) -> bool {
        let cell = self
            .networks
            .lock()
            .expect("extension map lock")
            .get(network_id)
            .cloned();
        match cell {
            Some(cell) => cell
                .lock()
                .await
                .as_ref()
                .is_some_and(|l| l.slot_of(bridge).is_some()),
            None => false,
        }
    }
}

/// Replace `slot`'s layout by one read from the kernel (one link dump), repairing what needs
/// it: uplink pairs whose extension is gone are deleted, extensions without endpoints are
/// removed, the others get their uplink re-linked to `main`. Extensions still retiring (being
/// deleted in the background) are carried over and left alone. Best effort: trouble with one
/// extension is logged, not returned, so that a network is never left unrestored for it.
async fn relearn<'a>(
    slot: &'a mut Option<Layout>,
    nl: &Netlink,
    network: &NetworkConfig,
    main: u32,
) -> Result<&'a mut Layout, DriverError> {
    let links = nl
        .links()
        .await
        .map_err(DriverError::netlink("list links"))?;
    let retiring = slot.take().map(|l| l.retiring).unwrap_or_default();
    let layout = slot.insert(layout_from_links(&network.id, main, &links));
    layout.extensions.retain(|n, _| !retiring.contains(n));
    layout.retiring = retiring;
    let warn = |e: DriverError| {
        tracing::warn!(network = %network.name, error = %crate::error::chain(&e), "cannot repair an extension bridge");
    };
    let id8 = extension_owner(&network.id);
    for link in &links {
        let stray = parse_extension_link(&link.name).is_some_and(|(owner, number)| {
            owner == id8
                && link.name.starts_with(TRUNK_PREFIX)
                && !layout.extensions.contains_key(&number)
                && !layout.retiring.contains(&number)
        });
        if stray {
            if let Err(e) = nl.delete_link(&link.name).await {
                warn(DriverError::netlink(format!("delete {}", link.name))(e));
            }
        }
    }
    let numbers: Vec<u32> = layout.extensions.keys().copied().collect();
    for number in numbers {
        let (index, ports) = layout.extensions[&number];
        let repaired = if ports == 0 {
            layout.extensions.remove(&number);
            delete_extension(nl, network, number).await
        } else {
            link_uplink(nl, network, number, index, main).await
        };
        if let Err(e) = repaired {
            warn(e);
        }
    }
    Ok(layout)
}

/// The first 8 hex digits of a network id, which its extension links are named after (what
/// [`parse_extension_link`] returns as the owner).
pub fn extension_owner(network_id: &str) -> &str {
    &network_id[..network_id.len().min(8)]
}

fn layout_from_links(network_id: &str, main: u32, links: &[LinkInfo]) -> Layout {
    let id8 = extension_owner(network_id);
    let mut layout = Layout {
        main,
        main_ports: 0,
        extensions: BTreeMap::new(),
        retiring: BTreeSet::new(),
        stale: false,
    };
    for link in links.iter().filter(|l| l.kind.as_deref() == Some("bridge")) {
        if let Some((owner, number)) = parse_extension_link(&link.name) {
            if owner == id8 {
                layout.extensions.insert(number, (link.index, 0));
            }
        }
    }
    for link in links {
        // Uplinks are not endpoints; anything else on the bridges is (foreign ports too).
        let uplink = link.name.starts_with(TRUNK_PREFIX) || link.name.starts_with(UPLINK_PREFIX);
        let Some(master) = link.master.filter(|_| !uplink) else {
            continue;
        };
        if let Some(slot) = layout.slot_of(master) {
            *layout.ports_mut(slot).expect("known slot") += 1;
        }
    }
    layout
}

/// Create extension `number`: its bridge and the veth pair linking it to the main bridge,
/// with IPv6 off on all three links (they carry no addresses; left on, each would send
/// multicasts that every port floods). Returns the bridge's index. On failure nothing stays.
async fn create_extension(
    nl: &Netlink,
    network: &NetworkConfig,
    number: u32,
    main: u32,
) -> Result<u32, DriverError> {
    let names = ExtensionNames::new(&network.id, number);
    tracing::info!(network = %network.name, bridge = %names.bridge, "adding an extension bridge");
    let created = async {
        // A bridge with its own MAC and no port has no carrier, so IPv6 does not start on it
        // before it is turned off.
        let index = nl
            .ensure_bridge(&names.bridge, network.settings.mtu, true)
            .await
            .map_err(DriverError::netlink(format!(
                "create bridge {}",
                names.bridge
            )))?;
        disable_ipv6(&names.bridge)?;
        link_uplink(nl, network, number, index, main).await?;
        Ok(index)
    }
    .await;
    if created.is_err() {
        let _ = delete_extension(nl, network, number).await;
    }
    created
}

/// Make sure extension `number`'s uplink pair exists, is up, and joins `bridge` to `main`.
async fn link_uplink(
    nl: &Netlink,
    network: &NetworkConfig,
    number: u32,
    bridge: u32,
    main: u32,
) -> Result<(), DriverError> {
    let names = ExtensionNames::new(&network.id, number);
    let netlink_err =
        |action: &str| DriverError::netlink(format!("{action} ({} uplink)", names.bridge));
    let trunk = nl
        .link(&names.trunk)
        .await
        .map_err(netlink_err("look up trunk"))?;
    let uplink = nl
        .link(&names.uplink)
        .await
        .map_err(netlink_err("look up uplink"))?;
    let (trunk, uplink) = match (trunk, uplink) {
        (Some(trunk), Some(uplink)) => (trunk.index, uplink.index),
        (trunk, _) => {
            if let Some(half) = trunk {
                nl.delete_link_index(half.index)
                    .await
                    .map_err(netlink_err("delete broken trunk"))?;
            }
            let spec = VethSpec {
                host_name: names.trunk.clone(),
                peer_name: names.uplink.clone(),
                peer_netns: None,
                master: Some(main),
                mtu: network.settings.mtu,
                peer_mac: None,
                host_up: false,
            };
            let trunk = nl
                .create_veth(&spec)
                .await
                .map_err(netlink_err("create veth"))?;
            disable_ipv6(&names.trunk)?;
            disable_ipv6(&names.uplink)?;
            let uplink = nl
                .link_index(&names.uplink)
                .await
                .map_err(netlink_err("look up uplink"))?
                .ok_or_else(|| DriverError::Unsupported(format!("{} vanished", names.uplink)))?;
            (trunk, uplink)
        }
    };
    nl.set_master(trunk, main)
        .await
        .map_err(netlink_err("attach trunk to the main bridge"))?;
    nl.set_master(uplink, bridge)
        .await
        .map_err(netlink_err("attach uplink to the extension"))?;
    // No hairpin on the trunk: the main bridge would send an extension's broadcasts back down
    // to it, and the extension would then learn its own endpoints' MACs behind the uplink.
    for index in [uplink, trunk] {
        nl.set_up(index).await.map_err(netlink_err("bring up"))?;
    }
    Ok(())
}

/// Remove extension `number` of a network: its uplink pair, then its bridge.
async fn delete_extension(
    nl: &Netlink,
    network: &NetworkConfig,
    number: u32,
) -> Result<(), DriverError> {
    let names = ExtensionNames::new(&network.id, number);
    tracing::info!(network = %network.name, bridge = %names.bridge, "removing an empty extension bridge");
    for name in [&names.trunk, &names.bridge] {
        nl.delete_link(name)
            .await
            .map_err(DriverError::netlink(format!("delete {name}")))?;
    }
    Ok(())
}

/// Remove every extension link of a network (it is being deleted). Keeps going past a link
/// that cannot be deleted and reports the first such failure at the end.
pub async fn delete_all(nl: &Netlink, network_id: &str) -> Result<(), DriverError> {
    let id8 = extension_owner(network_id);
    let links = nl
        .links()
        .await
        .map_err(DriverError::netlink("list links"))?;
    let mut first_error = None;
    for link in links {
        if parse_extension_link(&link.name).is_some_and(|(owner, _)| owner == id8) {
            if let Err(e) = nl.delete_link(&link.name).await {
                first_error.get_or_insert(DriverError::netlink(format!("delete {}", link.name))(e));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn disable_ipv6(ifname: &str) -> Result<(), DriverError> {
    netns::disable_ipv6(ifname).map_err(DriverError::netns(format!("disable IPv6 on {ifname}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123abcd456789ef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn link(index: u32, name: &str, kind: &str, master: Option<u32>) -> LinkInfo {
        LinkInfo {
            index,
            name: name.into(),
            kind: Some(kind.into()),
            mac: None,
            up: true,
            master,
            mtu: 1500,
            link: None,
            alias: None,
        }
    }

    #[test]
    fn names_fit_and_parse_back() {
        let names = ExtensionNames::new(ID, MAX_EXTENSION);
        for name in [&names.bridge, &names.uplink, &names.trunk] {
            assert!(name.len() <= 15, "{name}");
            assert_eq!(
                parse_extension_link(name),
                Some(("0123abcd", MAX_EXTENSION))
            );
        }
        assert_eq!(ExtensionNames::new(ID, 3).bridge, "wx0123abcd-3");
        for other in [
            "wv0123abcd-3",
            "wx0123abcd",
            "wx0123abc-3",
            "wxg123abcd-3",
            "wx0123abcd-0",
            "wx0123abcd-10000",
            "wx0123abcd-+3",
            "wx0123abcd-x",
            "wx0123abcd-03",
            "br-0123abcd",
        ] {
            assert_eq!(parse_extension_link(other), None, "{other}");
        }
    }

    #[test]
    fn placement_fills_main_then_extensions_in_order() {
        let mut layout = Layout {
            main: 10,
            main_ports: 0,
            extensions: BTreeMap::new(),
            retiring: BTreeSet::new(),
            stale: false,
        };
        assert_eq!(layout.place(Some(2)), Placement::Existing(Slot::Main));
        layout.main_ports = 2;
        assert_eq!(layout.place(Some(2)), Placement::New(1));
        assert_eq!(layout.place(None), Placement::Existing(Slot::Main));
        layout.extensions.insert(1, (11, 2));
        layout.extensions.insert(3, (13, 1));
        // The first with room, not the newest; then the lowest free number.
        assert_eq!(
            layout.place(Some(2)),
            Placement::Existing(Slot::Extension(3))
        );
        layout.extensions.insert(3, (13, 2));
        assert_eq!(layout.place(Some(2)), Placement::New(2));
        // A number whose links are still being deleted is skipped.
        layout.retiring.insert(2);
        assert_eq!(layout.place(Some(2)), Placement::New(4));
        // A port leaving the main bridge makes room there first.
        layout.main_ports = 1;
        assert_eq!(layout.place(Some(2)), Placement::Existing(Slot::Main));
        assert_eq!(layout.slot_of(13), Some(Slot::Extension(3)));
        assert_eq!(layout.slot_of(10), Some(Slot::Main));
        assert_eq!(layout.slot_of(99), None);
    }

    #[test]
    fn layout_counts_endpoint_ports_not_uplinks_nor_other_networks() {
        let links = vec![
            link(10, "br-lab", "bridge", None),
            link(20, "wx0123abcd-1", "bridge", None),
            link(21, "wy0123abcd-1", "veth", Some(20)),
            link(22, "wz0123abcd-1", "veth", Some(10)),
            link(30, "wxffffffff-1", "bridge", None),
            link(31, "wvaaaa", "veth", Some(10)),
            link(32, "wvbbbb", "veth", Some(10)),
            link(33, "wvcccc", "veth", Some(20)),
            link(34, "wvdddd", "veth", Some(30)),
            link(35, "eth9", "veth", Some(10)),
            link(36, "wvffff", "veth", None),
        ];
        let layout = layout_from_links(ID, 10, &links);
        assert_eq!(layout.main_ports, 3);
        assert_eq!(layout.extensions, BTreeMap::from([(1, (20, 1))]));
    }
}
