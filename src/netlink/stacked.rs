//! Links stacked on a lower device: macvlan (born directly inside a target namespace) and
//! 802.1Q VLAN sub-interfaces.
//!
//! The request builders are pure functions so their attributes can be checked without root
//! (and on kernels that lack a link type, such as one built without 802.1Q).

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use rtnetlink::packet_route::link::{LinkMessage, MacVlanMode};
use rtnetlink::{LinkMacVlan, LinkVlan};

use super::{validate_ifname, Netlink, NetlinkError, RequestError};

/// Lowest and highest usable 802.1Q VLAN ids (0 and 4095 are reserved).
pub const VLAN_ID_RANGE: std::ops::RangeInclusive<u16> = 1..=4094;

/// A macvlan link to create in one request: `lower` is an index in the socket's namespace,
/// the link itself is born in `netns` (IFLA_LINK + IFLA_NET_NS_FD), so it is never visible
/// in the host namespace and no move is needed.
#[derive(Debug, Clone)]
pub struct MacvlanSpec<'fd> {
    pub name: String,
    /// Index of the parent (lower) device in the socket's namespace.
    pub lower: u32,
    pub mode: MacVlanMode,
    /// The namespace the link is born in; `None`: the socket's namespace.
    pub netns: Option<BorrowedFd<'fd>>,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// IFLA_IFALIAS, e.g. an ownership marker.
    pub alias: Option<String>,
}

/// An 802.1Q sub-interface `name` of `lower` carrying `vlan_id`, created in the socket's
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanSpec {
    pub name: String,
    pub lower: u32,
    pub vlan_id: u16,
    /// IFLA_IFALIAS: who made the link, so only its creator removes it.
    pub alias: Option<String>,
}

/// The RTM_NEWLINK message for a macvlan link (the link stays down; the caller configures it
/// from inside its namespace).
pub fn macvlan_message(spec: &MacvlanSpec<'_>) -> LinkMessage {
    let mut msg = LinkMacVlan::new(&spec.name, spec.lower, spec.mode);
    if let Some(ns) = spec.netns {
        msg = msg.setns_by_fd(ns.as_raw_fd());
    }
    if let Some(mac) = spec.mac {
        msg = msg.address(mac.to_vec());
    }
    if let Some(mtu) = spec.mtu {
        msg = msg.mtu(mtu);
    }
    if let Some(alias) = &spec.alias {
        msg = msg.alias(alias.clone());
    }
    msg.build()
}

/// The RTM_NEWLINK message for an 802.1Q sub-interface, created up.
pub fn vlan_message(spec: &VlanSpec) -> LinkMessage {
    let mut msg = LinkVlan::new(&spec.name, spec.lower, spec.vlan_id).up();
    if let Some(alias) = &spec.alias {
        msg = msg.alias(alias.clone());
    }
    msg.build()
}

impl Netlink {
    /// Create a macvlan link in ONE request, born in `spec.netns`. A name already taken in the
    /// target namespace is a Conflict (EEXIST); the existing link is not reused.
    pub async fn create_macvlan(&self, spec: &MacvlanSpec<'_>) -> Result<(), NetlinkError> {
        validate_ifname(&spec.name)?;
        self.handle
            .link()
            .add(macvlan_message(spec))
            .execute()
            .await
            .map_err(|e| NetlinkError::CreateMacvlan {
                name: spec.name.clone(),
                lower: spec.lower,
                source: e.into(),
            })
    }

    /// Create an 802.1Q sub-interface, up. Returns its index. EOPNOTSUPP means the kernel has
    /// no `vlan` link type (8021q not built or not loadable).
    pub async fn create_vlan(&self, spec: &VlanSpec) -> Result<u32, NetlinkError> {
        validate_ifname(&spec.name)?;
        let create_error = |source: RequestError| NetlinkError::CreateVlan {
            name: spec.name.clone(),
            vlan_id: spec.vlan_id,
            source,
        };
        self.handle
            .link()
            .add(vlan_message(spec))
            .execute()
            .await
            .map_err(|e| create_error(e.into()))?;
        self.link_index(&spec.name)
            .await?
            .ok_or_else(|| create_error(RequestError::Kernel(Errno::ENODEV)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::{Emitable, Parseable};
    use rtnetlink::packet_route::link::{
        InfoData, InfoKind, InfoMacVlan, InfoVlan, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo,
    };

    fn infos(msg: &LinkMessage) -> &[NlLinkInfo] {
        msg.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i.as_slice()),
                _ => None,
            })
            .expect("IFLA_LINKINFO present")
    }

    /// Serialise and parse back: what the kernel would receive.
    fn round_trip(msg: &LinkMessage) -> LinkMessage {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        LinkMessage::parse(&buf[..]).expect("parses back")
    }

    #[test]
    fn vlan_request_carries_kind_parent_and_id() {
        let spec = VlanSpec {
            name: "eth0.10".into(),
            lower: 7,
            vlan_id: 10,
            alias: Some("warren:net".into()),
        };
        let msg = round_trip(&vlan_message(&spec));
        let attrs = &msg.attributes;
        assert!(attrs.contains(&LinkAttribute::IfName("eth0.10".into())));
        assert!(
            attrs.contains(&LinkAttribute::Link(7)),
            "IFLA_LINK = parent"
        );
        assert!(attrs.contains(&LinkAttribute::IfAlias("warren:net".into())));
        assert!(msg.header.flags.contains(LinkFlags::Up));
        let info = infos(&msg);
        assert!(info.contains(&NlLinkInfo::Kind(InfoKind::Vlan)));
        assert!(
            info.contains(&NlLinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(10)]))),
            "IFLA_VLAN_ID = 10: {info:?}"
        );
    }

    #[test]
    fn macvlan_request_is_born_in_the_target_namespace() {
        let ns = std::fs::File::open("/proc/self/ns/net").unwrap();
        let spec = MacvlanSpec {
            name: "eth0".into(),
            lower: 3,
            mode: MacVlanMode::Private,
            netns: Some(std::os::fd::AsFd::as_fd(&ns)),
            mac: Some([2, 0x42, 1, 2, 3, 4]),
            mtu: Some(1400),
            alias: None,
        };
        let msg = macvlan_message(&spec);
        let attrs = &msg.attributes;
        assert!(attrs.contains(&LinkAttribute::IfName("eth0".into())));
        assert!(attrs.contains(&LinkAttribute::Link(3)));
        assert!(attrs.contains(&LinkAttribute::NetNsFd(ns.as_raw_fd())));
        assert!(attrs.contains(&LinkAttribute::Address(vec![2, 0x42, 1, 2, 3, 4])));
        assert!(attrs.contains(&LinkAttribute::Mtu(1400)));
        assert!(
            !msg.header.flags.contains(LinkFlags::Up),
            "configured up from inside"
        );
        let info = infos(&msg);
        assert!(info.contains(&NlLinkInfo::Kind(InfoKind::MacVlan)));
        assert!(info.contains(&NlLinkInfo::Data(InfoData::MacVlan(vec![
            InfoMacVlan::Mode(MacVlanMode::Private)
        ]))));
    }
}
