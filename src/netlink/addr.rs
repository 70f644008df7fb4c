//! Addresses and routes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use nix::errno::Errno;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope,
};
use rtnetlink::{AddressMessageBuilder, RouteMessageBuilder};

use super::{Netlink, NetlinkError, RequestError};

fn address_message(index: u32, addr: IpNetwork) -> AddressMessage {
    match addr {
        IpNetwork::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a.ip(), a.prefix())
            .build(),
        IpNetwork::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a.ip(), a.prefix())
            .build(),
    }
}

impl Netlink {
    /// Add `addr` (address and prefix, e.g. 10.0.0.2/24) to a link; already present is fine.
    pub async fn add_address(&self, index: u32, addr: IpNetwork) -> Result<(), NetlinkError> {
        self.add_address_with(index, addr, true).await
    }

    /// [`add_address`](Netlink::add_address) for an address Warren's IPAM handed out: an
    /// IPv6 one skips duplicate address detection, which would leave it unusable
    /// ("tentative") for a second or more after every attach — and a bridge's gateway
    /// address each time the bridge regains its carrier (its first port comes up).
    pub async fn add_allocated_address(
        &self,
        index: u32,
        addr: IpNetwork,
    ) -> Result<(), NetlinkError> {
        self.add_address_with(index, addr, false).await
    }

    async fn add_address_with(
        &self,
        index: u32,
        addr: IpNetwork,
        dad: bool,
    ) -> Result<(), NetlinkError> {
        let mut request = self.handle.address().add(index, addr.ip(), addr.prefix());
        if addr.is_ipv6() && !dad {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match request.execute().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let source = RequestError::from(e);
                if source.errno() == Some(Errno::EEXIST) {
                    Ok(())
                } else {
                    Err(NetlinkError::AddAddress {
                        index,
                        addr,
                        source,
                    })
                }
            }
        }
    }

    /// Remove `addr` from a link; `false` if it was not there.
    pub async fn del_address(&self, index: u32, addr: IpNetwork) -> Result<bool, NetlinkError> {
        match self
            .handle
            .address()
            .del(address_message(index, addr))
            .execute()
            .await
        {
            Ok(()) => Ok(true),
            Err(e) => {
                let source = RequestError::from(e);
                match source.errno() {
                    Some(Errno::EADDRNOTAVAIL | Errno::ENODEV | Errno::ENOENT) => Ok(false),
                    _ => Err(NetlinkError::DelAddress {
                        index,
                        addr,
                        source,
                    }),
                }
            }
        }
    }

    /// Add a route in the main table: via `gateway`, and/or out of link `oif` (a route with
    /// only `oif` is on-link, scope link, like `ip route add DEST dev IF`). Already present is
    /// fine.
    pub async fn add_route(
        &self,
        dest: IpNetwork,
        gateway: Option<IpAddr>,
        oif: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let invalid = |reason: String| NetlinkError::InvalidRoute {
            dest,
            gateway,
            reason,
        };
        if gateway.is_none() && oif.is_none() {
            return Err(invalid("needs a gateway or an output interface".into()));
        }
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dest.network(), dest.prefix())
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(gw) = gateway {
            builder = builder.gateway(gw).map_err(|e| invalid(e.to_string()))?;
        } else {
            builder = builder.scope(RouteScope::Link);
        }
        if let Some(oif) = oif {
            builder = builder.output_interface(oif);
        }
        match self.handle.route().add(builder.build()).execute().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let source = RequestError::from(e);
                if source.errno() == Some(Errno::EEXIST) {
                    Ok(())
                } else {
                    Err(NetlinkError::AddRoute { dest, source })
                }
            }
        }
    }

    /// Destinations of every IPv4 and IPv6 route in the main table, default routes included
    /// (as 0.0.0.0/0 and ::/0). Used to refuse subnets that overlap the host's routes.
    pub async fn routes(&self) -> Result<Vec<IpNetwork>, NetlinkError> {
        let list = |msg: RouteMessage| {
            self.handle
                .route()
                .get(msg)
                .execute()
                .try_collect::<Vec<RouteMessage>>()
        };
        let map_err = |e: rtnetlink::Error| NetlinkError::ListRoutes { source: e.into() };
        let mut msgs = list(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .await
            .map_err(map_err)?;
        msgs.extend(
            list(RouteMessageBuilder::<Ipv6Addr>::new().build())
                .await
                .map_err(map_err)?,
        );
        Ok(msgs.iter().filter_map(main_table_destination).collect())
    }
}

/// The destination of a main-table route, `None` for other tables.
fn main_table_destination(msg: &RouteMessage) -> Option<IpNetwork> {
    // Tables above 255 put RT_TABLE_COMPAT in the header and the real id in RTA_TABLE.
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let len = msg.header.destination_prefix_length;
    let dest = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
        _ => None,
    });
    let ip = match (dest, msg.header.address_family) {
        (Some(ip), _) => ip,
        (None, rtnetlink::packet_route::AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, rtnetlink::packet_route::AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    IpNetwork::new(ip, len).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(table: u8, dest: Option<IpAddr>, len: u8) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.table = table;
        msg.header.destination_prefix_length = len;
        msg.header.address_family = rtnetlink::packet_route::AddressFamily::Inet;
        if let Some(ip) = dest {
            msg.attributes.push(RouteAttribute::Destination(ip.into()));
        }
        msg
    }

    #[test]
    fn main_table_routes_become_networks() {
        let r = route(254, Some("10.1.0.0".parse().unwrap()), 16);
        assert_eq!(
            main_table_destination(&r),
            Some("10.1.0.0/16".parse().unwrap())
        );
        assert_eq!(
            main_table_destination(&route(254, None, 0)),
            Some("0.0.0.0/0".parse().unwrap())
        );
        assert_eq!(main_table_destination(&route(255, None, 0)), None);
    }
}
