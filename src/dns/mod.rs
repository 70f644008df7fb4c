//! Embedded DNS for user-defined networks: container names, aliases and short ids on the
//! networks a client is attached to, PTR for their addresses, everything else forwarded.
//!
//! - [`snapshot`]: the immutable name table, copied (cheaply: persistent maps), changed and
//!   swapped atomically (ArcSwap) on every change, so a query never waits for an update and
//!   always sees a whole one.
//! - [`handle`]: request bytes → answer bytes, pure (unit-tested and fuzzed).
//! - `server`: a UDP and a TCP socket at 127.0.0.11:53 inside each client namespace
//!   (see docs/dns.md, "DNS: where it listens", for why there and not on the gateway).
//! - [`forward`]: upstream resolvers, asked from the agent's namespace.
//!
//! [`Dns`] ties them together; the agent calls [`Dns::add_endpoint`] /
//! [`Dns::remove_endpoint`] on connect and disconnect, and [`Dns::update`] (a full rebuild)
//! at start-up and after changes to networks.

pub mod forward;
pub mod handle;
mod server;
pub mod snapshot;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::error::{ErrorKind, HasKind};
pub use handle::{handle, Reply, Transport};
pub use server::LISTEN_ADDR;
pub use snapshot::{EndpointEntry, NetworkEntry, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("enter namespace {netns} to open the DNS listener")]
    Namespace {
        netns: PathBuf,
        #[source]
        source: crate::netns::NetnsError,
    },
    #[error("bind {LISTEN_ADDR} in namespace {netns}")]
    Bind {
        netns: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for DnsError {
    fn kind(&self) -> ErrorKind {
        match self {
            DnsError::Namespace { .. } => ErrorKind::NotFound,
            DnsError::Bind { .. } => ErrorKind::Unavailable,
        }
    }
}

/// What the serving tasks share: the current table and the forwarder.
#[derive(Debug)]
pub(crate) struct Shared {
    snapshot: ArcSwap<Snapshot>,
    forwarder: forward::Forwarder,
}

/// The DNS service: the current snapshot and one listener per client namespace.
///
/// Listeners are served by a single-threaded tokio runtime on a thread of their own, not by
/// the agent's multi-threaded one: there, a query could wake a second worker to look for
/// work (a futex wake and a context switch per packet). One thread waiting in one epoll is
/// what dnsmasq does too. Forwarded queries run there as well (they only wait).
#[derive(Debug)]
pub struct Dns {
    shared: Arc<Shared>,
    runtime: DnsRuntime,
    /// Client namespace identity → its listener. Changed only by `update`, which the agent
    /// calls under its mutation lock; the async mutex only makes that explicit.
    listeners: tokio::sync::Mutex<HashMap<String, server::Listener>>,
}

/// A client namespace's location, needed to open its listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientNamespace {
    pub netns_id: String,
    pub path: PathBuf,
}

impl Dns {
    /// `upstream`: daemon.json `dns`; when empty, /etc/resolv.conf's nameservers are used.
    pub fn new(upstream: &[IpAddr]) -> Dns {
        Dns::with_resolv_conf(upstream, PathBuf::from(forward::RESOLV_CONF))
    }

    pub fn with_resolv_conf(upstream: &[IpAddr], resolv_conf: PathBuf) -> Dns {
        let upstreams = forward::Upstreams::new(upstream, resolv_conf);
        Dns {
            runtime: DnsRuntime::start(),
            shared: Arc::new(Shared {
                snapshot: ArcSwap::from_pointee(Snapshot::default()),
                forwarder: forward::Forwarder::new(upstreams),
            }),
            listeners: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The table queries are answered from right now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// Publish the names of `networks`/`endpoints` and bring the listeners in line: open one
    /// in every namespace that has an endpoint on a network with name resolution, close the
    /// others. The new table is visible to the next query. Failures to open a listener are
    /// returned (the rest is still done); that namespace is retried at the next update.
    pub async fn update(
        &self,
        networks: &[NetworkEntry],
        endpoints: &[EndpointEntry],
        namespaces: &[ClientNamespace],
    ) -> Vec<DnsError> {
        let snapshot = Snapshot::build(networks, endpoints);
        let wanted: HashMap<&str, &PathBuf> = namespaces
            .iter()
            .filter(|ns| snapshot.client(&ns.netns_id).is_some())
            .map(|ns| (ns.netns_id.as_str(), &ns.path))
            .collect();
        let mut listeners = self.listeners.lock().await;
        // Swap first: a namespace losing its last network is refused from now on even before
        // its sockets are closed, and a new one is answered from its first query on.
        self.shared.snapshot.store(Arc::new(snapshot));
        let gone: Vec<String> = listeners
            .keys()
            .filter(|id| !wanted.contains_key(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            if let Some(listener) = listeners.remove(&id) {
                listener.close().await;
                tracing::debug!(netns = %id, "dns listener closed");
            }
        }
        let mut errors = Vec::new();
        for (id, path) in wanted {
            if listeners.contains_key(id) {
                continue;
            }
            let shared = Arc::clone(&self.shared);
            let opened =
                server::Listener::open(path.clone(), id.to_string(), shared, &self.runtime.handle);
            match opened.await {
                Ok(listener) => {
                    tracing::debug!(netns = %path.display(), "dns listener opened");
                    listeners.insert(id.to_string(), listener);
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// One endpoint appeared: add its names (its network too, if new) and open a listener
    /// in its namespace if it has none. Costs the same whatever the number of endpoints.
    pub async fn add_endpoint(
        &self,
        network: &NetworkEntry,
        endpoint: &EndpointEntry,
        namespace: &ClientNamespace,
    ) -> Result<(), DnsError> {
        let mut listeners = self.listeners.lock().await;
        let mut next = Snapshot::clone(&self.shared.snapshot.load());
        next.add_network(network);
        next.add_endpoint(endpoint);
        let wanted = next.client(&namespace.netns_id).is_some();
        self.shared.snapshot.store(Arc::new(next));
        if !wanted || listeners.contains_key(&namespace.netns_id) {
            return Ok(());
        }
        let listener = server::Listener::open(
            namespace.path.clone(),
            namespace.netns_id.clone(),
            Arc::clone(&self.shared),
            &self.runtime.handle,
        )
        .await?;
        tracing::debug!(netns = %namespace.path.display(), "dns listener opened");
        listeners.insert(namespace.netns_id.clone(), listener);
        Ok(())
    }

    /// One endpoint went away: drop its names, and the listener of its namespace when that
    /// has no network with name resolution left.
    pub async fn remove_endpoint(&self, endpoint: &EndpointEntry) {
        let mut listeners = self.listeners.lock().await;
        let mut next = Snapshot::clone(&self.shared.snapshot.load());
        next.remove_endpoint(endpoint);
        let wanted = next.client(&endpoint.netns_id).is_some();
        self.shared.snapshot.store(Arc::new(next));
        if !wanted {
            if let Some(listener) = listeners.remove(&endpoint.netns_id) {
                listener.close().await;
                tracing::debug!(netns = %endpoint.netns_id, "dns listener closed");
            }
        }
    }

    /// Close every listener (agent shutdown).
    pub async fn close_all(&self) {
        let mut listeners = self.listeners.lock().await;
        for (_, listener) in listeners.drain() {
            listener.close().await;
        }
    }
}

/// The DNS thread and its runtime; stopped (every listener closed) when dropped.
#[derive(Debug)]
struct DnsRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl DnsRuntime {
    fn start() -> DnsRuntime {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build the DNS runtime (an epoll instance and a timer)");
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("warren-dns".into())
            .spawn(move || {
                // Ends when `stop` is sent or dropped; the runtime's tasks go with it.
                let _ = runtime.block_on(stopped);
            })
            .expect("spawn the DNS thread");
        DnsRuntime {
            handle,
            stop: Some(stop),
        }
    }
}

impl Drop for DnsRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
