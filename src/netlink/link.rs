//! Links: lookup, listing, bridges, veth pairs (created directly across namespaces), and
//! link attributes (up, mtu, hairpin).

use std::os::fd::{AsRawFd, BorrowedFd};

use futures::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::{validate_ifname, Netlink, NetlinkError, RequestError};

/// A random locally administered unicast MAC address with Docker's 02:42 prefix.
pub fn random_local_mac() -> [u8; 6] {
    let mut mac = [0x02, 0x42, 0, 0, 0, 0];
    getrandom::fill(&mut mac[2..]).expect("the kernel's random source is available");
    mac
}

/// One link as seen in the socket's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` (`"bridge"`, `"veth"`, …); `None` for physical devices and lo.
    pub kind: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub up: bool,
    /// Index of the bridge (or other controller) this link is enslaved to.
    pub master: Option<u32>,
    pub mtu: u32,
    /// `IFLA_LINK`: the lower device of a stacked link (vlan, macvlan) or a veth's peer.
    pub link: Option<u32>,
    /// `IFLA_IFALIAS`, free text; Warren marks links it made for a network this way.
    pub alias: Option<String>,
}

impl LinkInfo {
    fn from_message(msg: &LinkMessage) -> LinkInfo {
        let mut info = LinkInfo {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mac: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            master: None,
            mtu: 0,
            link: None,
            alias: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => info.name = name.clone(),
                LinkAttribute::Address(mac) => info.mac = <[u8; 6]>::try_from(mac.as_slice()).ok(),
                LinkAttribute::Mtu(mtu) => info.mtu = *mtu,
                LinkAttribute::Controller(master) if *master != 0 => info.master = Some(*master),
                LinkAttribute::Link(link) if *link != 0 => info.link = Some(*link),
                LinkAttribute::IfAlias(alias) if !alias.is_empty() => {
                    info.alias = Some(alias.clone())
                }
                LinkAttribute::LinkInfo(infos) => {
                    info.kind = infos.iter().find_map(|i| match i {
                        NlLinkInfo::Kind(kind) => Some(kind.to_string()),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        info
    }
}

/// A veth pair to create in one request. The host end is created in the socket's namespace,
/// the peer directly in `peer_netns` (IFLA_NET_NS_FD on the peer): creating in place costs
/// about 1 ms where create-then-move costs about 20 ms.
#[derive(Debug, Clone)]
pub struct VethSpec<'fd> {
    pub host_name: String,
    pub peer_name: String,
    /// The namespace the peer is born in (an open ns file); `None`: the socket's namespace.
    pub peer_netns: Option<BorrowedFd<'fd>>,
    /// Bridge to enslave the host end to.
    pub master: Option<u32>,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    pub peer_mac: Option<[u8; 6]>,
    /// Bring the host end up in the creating request. A caller that wants to adjust the host
    /// end first (e.g. disable IPv6 on it, so the kernel never adds its per-device IPv6
    /// routes) leaves it down and calls [`Netlink::set_up`] itself.
    pub host_up: bool,
}

impl<'fd> VethSpec<'fd> {
    /// A pair with both ends in the socket's namespace, no master, default MTU.
    pub fn new(host_name: impl Into<String>, peer_name: impl Into<String>) -> VethSpec<'fd> {
        VethSpec {
            host_name: host_name.into(),
            peer_name: peer_name.into(),
            peer_netns: None,
            master: None,
            mtu: None,
            peer_mac: None,
            host_up: true,
        }
    }
}

impl Netlink {
    /// The index of the link called `name`, `None` if there is none.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        Ok(self.link(name).await?.map(|l| l.index))
    }

    /// The link called `name`, `None` if there is none.
    pub async fn link(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        validate_ifname(name)?;
        let reply = self
            .handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await
            .map_err(RequestError::from);
        match reply {
            Ok(msg) => Ok(msg.as_ref().map(LinkInfo::from_message)),
            Err(e) if matches!(e.errno(), Some(Errno::ENODEV | Errno::ENOENT)) => Ok(None),
            Err(source) => Err(NetlinkError::GetLink {
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// Every link in the namespace.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, NetlinkError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::ListLinks { source: e.into() })?;
        Ok(msgs.iter().map(LinkInfo::from_message).collect())
    }

    /// Make sure a bridge called `name` exists and is up; returns its index. An existing
    /// bridge is reused (and gets `mtu` if given); a non-bridge link of that name is a
    /// Conflict. A new bridge gets a MAC of its own if `own_mac`, which a bridge that will
    /// have ports wants; but a bridge with its own MAC and no ports has no carrier, so one
    /// that stays port-less (a macvlan parent) must not have it.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        own_mac: bool,
    ) -> Result<u32, NetlinkError> {
        validate_ifname(name)?;
        if let Some(existing) = self.link(name).await? {
            return self.adopt_bridge(existing, mtu).await;
        }
        // A MAC of its own: without one a bridge takes the lowest MAC among its ports, so the
        // gateway's MAC would change as containers come and go (stale ARP entries in every
        // container), and each new port would make the kernel rescan all ports for it.
        // Multicast snooping off: with no IGMP/MLD querier on a container bridge, snooping
        // only learns memberships that expire after 260 s and then stops delivering group
        // traffic; without it the bridge floods multicast like a plain switch, and a port
        // coming up no longer refreshes multicast state on every other port.
        let mut msg = LinkBridge::new(name).mcast_snooping(false);
        if own_mac {
            msg = msg.address(random_local_mac().to_vec());
        }
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        if let Err(e) = self.handle.link().add(msg.build()).execute().await {
            let source = RequestError::from(e);
            // EEXIST: someone made it between our lookup and our create; adopt theirs below.
            if source.errno() != Some(Errno::EEXIST) {
                return Err(NetlinkError::CreateBridge {
                    name: name.to_owned(),
                    source,
                });
            }
        }
        match self.link(name).await? {
            Some(link) => self.adopt_bridge(link, mtu).await,
            None => Err(NetlinkError::CreateBridge {
                name: name.to_owned(),
                source: RequestError::Kernel(Errno::ENODEV),
            }),
        }
    }

    async fn adopt_bridge(&self, link: LinkInfo, mtu: Option<u32>) -> Result<u32, NetlinkError> {
        if link.kind.as_deref() != Some("bridge") {
            return Err(NetlinkError::NotABridge { name: link.name });
        }
        if let Some(mtu) = mtu.filter(|m| *m != link.mtu) {
            self.set_mtu(link.index, mtu).await?;
        }
        if !link.up {
            self.set_up(link.index).await?;
        }
        Ok(link.index)
    }

    /// Create a veth pair in ONE request, peer born in its namespace, host end up (and
    /// enslaved to `master`). Returns the host end's index. The peer stays down: the kernel
    /// refuses (ENOTCONN) to open a veth end before its pair is complete, so whoever holds a
    /// socket in the peer's namespace brings it up. A name already taken is a Conflict
    /// (EEXIST): the existing link may be someone else's, so it is not reused.
    pub async fn create_veth(&self, spec: &VethSpec<'_>) -> Result<u32, NetlinkError> {
        validate_ifname(&spec.host_name)?;
        validate_ifname(&spec.peer_name)?;
        // One queue each way, asked for explicitly: left to the veth default (one per CPU),
        // the kernel creates every queue and then cuts the pair down to one, waiting for an
        // RCU grace period per end under the global rtnl lock (~1 ms each on a VM).
        fn single_queue<T>(link: LinkMessageBuilder<T>) -> LinkMessageBuilder<T> {
            link.append_extra_attribute(LinkAttribute::NumTxQueues(1))
                .append_extra_attribute(LinkAttribute::NumRxQueues(1))
        }
        let mut peer = single_queue(LinkUnspec::new_with_name(&spec.peer_name));
        if let Some(ns) = spec.peer_netns {
            peer = peer.setns_by_fd(ns.as_raw_fd());
        }
        if let Some(mtu) = spec.mtu {
            peer = peer.mtu(mtu);
        }
        if let Some(mac) = spec.peer_mac {
            peer = peer.address(mac.to_vec());
        }
        let mut host = single_queue(LinkMessageBuilder::<LinkVeth>::new_with_info_kind(
            InfoKind::Veth,
        ))
        .name(spec.host_name.clone())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
        if spec.host_up {
            host = host.up();
        }
        if let Some(mtu) = spec.mtu {
            host = host.mtu(mtu);
        }
        if let Some(master) = spec.master {
            host = host.controller(master);
        }
        let create_error = |source: RequestError| NetlinkError::CreateVeth {
            host: spec.host_name.clone(),
            peer: spec.peer_name.clone(),
            source,
        };
        self.handle
            .link()
            .add(host.build())
            .execute()
            .await
            .map_err(|e| create_error(e.into()))?;
        // The kernel does not return the new index; ask by name.
        self.link_index(&spec.host_name)
            .await?
            .ok_or_else(|| create_error(RequestError::Kernel(Errno::ENODEV)))
    }

    /// Delete the link called `name` (for a veth, both ends go). `false` if it did not exist.
    pub async fn delete_link(&self, name: &str) -> Result<bool, NetlinkError> {
        validate_ifname(name)?;
        let msg = LinkUnspec::new_with_name(name).build();
        match self.handle.link().del_with_message(msg).execute().await {
            Ok(()) => Ok(true),
            Err(e) => {
                let source = RequestError::from(e);
                if matches!(source.errno(), Some(Errno::ENODEV | Errno::ENOENT)) {
                    Ok(false)
                } else {
                    Err(NetlinkError::DeleteLink {
                        name: name.to_owned(),
                        source,
                    })
                }
            }
        }
    }

    /// Delete the link with this index (for a veth, both ends go). `false` if it did not exist.
    /// Unlike a name, an index is never reused for another link soon after, so a deletion
    /// queued for later cannot hit a new link that took the old one's name.
    pub async fn delete_link_index(&self, index: u32) -> Result<bool, NetlinkError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            Err(e) => {
                let source = RequestError::from(e);
                if matches!(source.errno(), Some(Errno::ENODEV | Errno::ENOENT)) {
                    Ok(false)
                } else {
                    Err(NetlinkError::DeleteLink {
                        name: format!("#{index}"),
                        source,
                    })
                }
            }
        }
    }

    /// Bring a link up (a no-op if it already is).
    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .change(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| NetlinkError::SetUp {
                index,
                source: e.into(),
            })
    }

    /// Make a link a port of the bridge `master`.
    pub async fn set_master(&self, index: u32, master: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .change(LinkUnspec::new_with_index(index).controller(master).build())
            .execute()
            .await
            .map_err(|e| NetlinkError::SetMaster {
                index,
                master,
                source: e.into(),
            })
    }

    /// Release a link from its bridge (or other controller) and take it down.
    pub async fn release(&self, index: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .change(
                LinkUnspec::new_with_index(index)
                    .nocontroller()
                    .down()
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| NetlinkError::Release {
                index,
                source: e.into(),
            })
    }

    /// Take a link out of service under another name: down (its routes go with it) and
    /// renamed, so its old name is free at once while the kernel object lingers until deleted.
    pub async fn hide(&self, index: u32, new_name: &str) -> Result<(), NetlinkError> {
        validate_ifname(new_name)?;
        self.handle
            .link()
            .change(
                LinkUnspec::new_with_index(index)
                    .down()
                    .name(new_name.to_owned())
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| NetlinkError::Hide {
                index,
                name: new_name.to_owned(),
                source: e.into(),
            })
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .change(LinkUnspec::new_with_index(index).mtu(mtu).build())
            .execute()
            .await
            .map_err(|e| NetlinkError::SetMtu {
                index,
                mtu,
                source: e.into(),
            })
    }

    /// Let a bridge port send frames back out the port they came in on (needed for a
    /// container reaching itself through a published port).
    pub async fn set_bridge_port_hairpin(&self, index: u32, on: bool) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set_port(LinkBridgePort::new(index).hairpin(on).build())
            .execute()
            .await
            .map_err(|e| NetlinkError::SetHairpin {
                index,
                source: e.into(),
            })
    }
}
