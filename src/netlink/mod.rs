//! rtnetlink operations on links, addresses and routes, each idempotent and bound to one network namespace.
//!
//! A [`Netlink`] wraps one rtnetlink socket. The socket belongs to the namespace it was
//! *created* in and stays there, so [`Netlink::in_netns`] creates it on a dedicated thread that
//! has entered the namespace (see `netns::run_in_async`) and then uses it from any task.
//! Errors keep the kernel's errno ([`NetlinkError::errno`]) so callers match EEXIST/ENOENT
//! instead of strings. Call everything from inside a tokio runtime.

mod addr;
mod link;
mod stacked;

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use nix::errno::Errno;

use crate::error::{ErrorKind, HasKind};
use crate::netns::{self, NetnsError};

pub use link::{random_local_mac, LinkInfo, VethSpec};
pub use stacked::{macvlan_message, vlan_message, MacvlanSpec, VlanSpec, VLAN_ID_RANGE};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// A netlink request that the kernel refused (with its errno) or that failed on the wire.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Kernel(Errno),
    #[error("{0}")]
    Protocol(rtnetlink::Error),
}

impl RequestError {
    /// The kernel's errno, if the kernel refused the request.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            RequestError::Kernel(errno) => Some(*errno),
            RequestError::Protocol(_) => None,
        }
    }
}

impl From<rtnetlink::Error> for RequestError {
    fn from(e: rtnetlink::Error) -> RequestError {
        match &e {
            rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => {
                RequestError::Kernel(Errno::from_raw(msg.raw_code().abs()))
            }
            _ => RequestError::Protocol(e),
        }
    }
}

/// What went wrong, named after the action, with the interface involved and the errno.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidIfname { name: String, reason: &'static str },
    #[error("open a netlink socket")]
    Connect {
        #[source]
        source: io::Error,
    },
    #[error("open a netlink socket in {}", path.display())]
    EnterNetns {
        path: PathBuf,
        #[source]
        source: NetnsError,
    },
    #[error("look up link {name}")]
    GetLink {
        name: String,
        #[source]
        source: RequestError,
    },
    #[error("list links")]
    ListLinks {
        #[source]
        source: RequestError,
    },
    #[error("link {name} exists but is not a bridge")]
    NotABridge { name: String },
    #[error("create bridge {name}")]
    CreateBridge {
        name: String,
        #[source]
        source: RequestError,
    },
    #[error("create veth {host}<->{peer}")]
    CreateVeth {
        host: String,
        peer: String,
        #[source]
        source: RequestError,
    },
    #[error("create macvlan {name} on link {lower}")]
    CreateMacvlan {
        name: String,
        lower: u32,
        #[source]
        source: RequestError,
    },
    #[error("create vlan {name} (id {vlan_id})")]
    CreateVlan {
        name: String,
        vlan_id: u16,
        #[source]
        source: RequestError,
    },
    #[error("delete link {name}")]
    DeleteLink {
        name: String,
        #[source]
        source: RequestError,
    },
    #[error("set link {index} up")]
    SetUp {
        index: u32,
        #[source]
        source: RequestError,
    },
    #[error("make link {index} a port of bridge {master}")]
    SetMaster {
        index: u32,
        master: u32,
        #[source]
        source: RequestError,
    },
    #[error("release link {index} from its bridge")]
    Release {
        index: u32,
        #[source]
        source: RequestError,
    },
    #[error("take link {index} down and rename it {name}")]
    Hide {
        index: u32,
        name: String,
        #[source]
        source: RequestError,
    },
    #[error("set mtu {mtu} on link {index}")]
    SetMtu {
        index: u32,
        mtu: u32,
        #[source]
        source: RequestError,
    },
    #[error("set hairpin mode on bridge port {index}")]
    SetHairpin {
        index: u32,
        #[source]
        source: RequestError,
    },
    #[error("add address {addr} to link {index}")]
    AddAddress {
        index: u32,
        addr: IpNetwork,
        #[source]
        source: RequestError,
    },
    #[error("delete address {addr} from link {index}")]
    DelAddress {
        index: u32,
        addr: IpNetwork,
        #[source]
        source: RequestError,
    },
    #[error("invalid route to {dest} via {gateway:?}: {reason}")]
    InvalidRoute {
        dest: IpNetwork,
        gateway: Option<IpAddr>,
        reason: String,
    },
    #[error("add route to {dest}")]
    AddRoute {
        dest: IpNetwork,
        #[source]
        source: RequestError,
    },
    #[error("list routes")]
    ListRoutes {
        #[source]
        source: RequestError,
    },
}

impl NetlinkError {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<Errno> {
        self.request_error()?.errno()
    }

    fn request_error(&self) -> Option<&RequestError> {
        match self {
            NetlinkError::GetLink { source, .. }
            | NetlinkError::ListLinks { source }
            | NetlinkError::CreateBridge { source, .. }
            | NetlinkError::CreateVeth { source, .. }
            | NetlinkError::CreateMacvlan { source, .. }
            | NetlinkError::CreateVlan { source, .. }
            | NetlinkError::DeleteLink { source, .. }
            | NetlinkError::SetUp { source, .. }
            | NetlinkError::Hide { source, .. }
            | NetlinkError::Release { source, .. }
            | NetlinkError::SetMaster { source, .. }
            | NetlinkError::SetMtu { source, .. }
            | NetlinkError::SetHairpin { source, .. }
            | NetlinkError::AddAddress { source, .. }
            | NetlinkError::DelAddress { source, .. }
            | NetlinkError::AddRoute { source, .. }
            | NetlinkError::ListRoutes { source } => Some(source),
            NetlinkError::InvalidIfname { .. }
            | NetlinkError::Connect { .. }
            | NetlinkError::EnterNetns { .. }
            | NetlinkError::NotABridge { .. }
            | NetlinkError::InvalidRoute { .. } => None,
        }
    }
}

impl HasKind for NetlinkError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetlinkError::InvalidIfname { .. } | NetlinkError::InvalidRoute { .. } => {
                ErrorKind::Invalid
            }
            NetlinkError::NotABridge { .. } => ErrorKind::Conflict,
            NetlinkError::EnterNetns { source, .. } => source.kind(),
            _ => match self.errno() {
                Some(Errno::EEXIST) => ErrorKind::Conflict,
                Some(Errno::ENOENT | Errno::ENODEV) => ErrorKind::NotFound,
                Some(Errno::EINVAL | Errno::ERANGE) => ErrorKind::Invalid,
                _ => ErrorKind::Internal,
            },
        }
    }
}

/// Check an interface name the way the kernel does (`dev_valid_name`): 1..=15 bytes, not
/// `.`/`..`, no `/`, `:`, whitespace or NUL.
pub fn validate_ifname(name: &str) -> Result<(), NetlinkError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > IFNAME_MAX {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("must not be \".\" or \"..\"")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        Some("must not contain '/', ':', whitespace or NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetlinkError::InvalidIfname {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// An rtnetlink socket bound to one network namespace. Cheap to clone; the connection task
/// ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// A socket in the calling thread's namespace. Needs a tokio runtime context.
    pub fn current() -> Result<Netlink, NetlinkError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetlinkError::Connect { source })?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// A socket in the namespace at `ns_path`, opened on a dedicated thread that entered it;
    /// no runtime thread changes namespace.
    pub async fn in_netns(ns_path: &Path) -> Result<Netlink, NetlinkError> {
        Ok(Netlink::in_netns_with(ns_path, || ()).await?.0)
    }

    /// [`Netlink::in_netns`], also running `also` in the namespace (on the thread that opens
    /// the socket, so that a sysctl write there costs no second namespace thread).
    pub async fn in_netns_with<T, F>(ns_path: &Path, also: F) -> Result<(Netlink, T), NetlinkError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::current();
        let (connection, also) = netns::run_in_async(ns_path.to_owned(), move || {
            // The socket registers with the reactor at creation, so enter the runtime here.
            let _guard = runtime.enter();
            (rtnetlink::new_connection(), also())
        })
        .await
        .map_err(|source| NetlinkError::EnterNetns {
            path: ns_path.to_owned(),
            source,
        })?;
        let (conn, handle, _) = connection.map_err(|source| NetlinkError::Connect { source })?;
        tokio::spawn(conn);
        Ok((Netlink { handle }, also))
    }

    /// The namespace's socket for a path, or the current one for `None`.
    pub async fn for_netns(ns_path: Option<&Path>) -> Result<Netlink, NetlinkError> {
        match ns_path {
            Some(path) => Netlink::in_netns(path).await,
            None => Netlink::current(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_kernel_rules() {
        for ok in ["lo", "veth0", "eth0.100", "br-0123456789a", "a"] {
            assert!(validate_ifname(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "tab\t",
            "nul\0",
            "sixteen-bytes-xx",
        ] {
            let err = validate_ifname(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}");
        }
        assert!(validate_ifname("fifteen-bytes-x").is_ok());
    }

    #[test]
    fn errno_picks_the_kind() {
        let err = |errno| NetlinkError::CreateVeth {
            host: "a".into(),
            peer: "b".into(),
            source: RequestError::Kernel(errno),
        };
        assert_eq!(err(Errno::EEXIST).kind(), ErrorKind::Conflict);
        assert_eq!(err(Errno::ENODEV).kind(), ErrorKind::NotFound);
        assert_eq!(err(Errno::ENOENT).kind(), ErrorKind::NotFound);
        assert_eq!(err(Errno::ERANGE).kind(), ErrorKind::Invalid);
        assert_eq!(err(Errno::EPERM).kind(), ErrorKind::Internal);
        assert_eq!(err(Errno::EEXIST).errno(), Some(Errno::EEXIST));
        assert_eq!(
            crate::error::chain(&err(Errno::EEXIST)),
            "create veth a<->b: EEXIST: File exists"
        );
    }

    #[test]
    fn kernel_errors_keep_their_errno() {
        let mut msg = rtnetlink::packet_core::ErrorMessage::default();
        msg.code = std::num::NonZeroI32::new(-17);
        let e = RequestError::from(rtnetlink::Error::NetlinkError(msg));
        assert!(matches!(e, RequestError::Kernel(Errno::EEXIST)));
        let e = RequestError::from(rtnetlink::Error::RequestFailed);
        assert!(matches!(e, RequestError::Protocol(_)));
    }

    #[test]
    fn reads_links_in_own_namespace() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let nl = Netlink::in_netns(Path::new("/proc/self/ns/net"))
                .await
                .unwrap();
            let links = nl.links().await.unwrap();
            let lo = links.iter().find(|l| l.name == "lo").expect("lo exists");
            assert_eq!(nl.link_index("lo").await.unwrap(), Some(lo.index));
            assert_eq!(nl.link_index("nosuchlink0").await.unwrap(), None);
            assert!(!nl.delete_link("nosuchlink0").await.unwrap());
            assert!(nl.routes().await.is_ok());
        });
    }
}
