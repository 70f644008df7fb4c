//! RTM_GETNSID: the id the current network namespace assigned to another one (what
//! `ip netns list` prints as "(id: N)"). A tiny synchronous netlink exchange, so listing
//! namespaces needs no async runtime.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// One netlink socket in the caller's namespace, reused for every query of a listing.
pub(super) struct NsidQuery {
    socket: Socket,
}

impl NsidQuery {
    pub(super) fn new() -> io::Result<NsidQuery> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(NsidQuery { socket })
    }

    /// `Ok(None)` when no id is assigned; the kernel's errno when it refuses (e.g. the file
    /// is not a namespace).
    pub(super) fn id_of(&self, ns: &File) -> io::Result<Option<u32>> {
        let fd = u32::try_from(ns.as_raw_fd())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut msg = NsidMessage::default();
        msg.attributes = vec![NsidAttribute::Fd(fd)];
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
        req.header.flags = NLM_F_REQUEST;
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket.send(&buf, 0)?;

        let (reply, _) = self.socket.recv_from_full()?;
        let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        match reply.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                Ok(m.attributes.iter().find_map(|a| match a {
                    // Negative means NETNSA_NSID_NOT_ASSIGNED.
                    NsidAttribute::Id(id) => u32::try_from(*id).ok(),
                    _ => None,
                }))
            }
            NetlinkPayload::Error(e) => Err(e.to_io()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected reply to RTM_GETNSID",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_has_no_id_and_a_regular_file_is_refused() {
        let q = NsidQuery::new().unwrap();
        // A namespace never assigns itself an id unless asked to.
        let own = File::open("/proc/self/ns/net").unwrap();
        assert!(q.id_of(&own).is_ok());
        let not_ns = File::open("/proc/self/status").unwrap();
        assert!(q.id_of(&not_ns).is_err());
    }
}
