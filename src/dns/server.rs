//! The listeners: a UDP and a TCP socket bound to 127.0.0.11:53 inside one client namespace,
//! served on the DNS thread's tokio runtime.
//!
//! The sockets are created on a dedicated thread that enters the namespace (`netns::run_in`),
//! so they live there, and are then driven from anywhere. Who asks is known from which
//! listener a query arrived on: 127.0.0.0/8 traffic cannot come from another namespace, so
//! the client's scope cannot be spoofed and nothing outside can use us as an open resolver.

use std::cell::RefCell;
use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use nix::sys::socket::{recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::handle::{handle, Reply, Transport};
use super::{DnsError, Shared};

/// Where the resolver listens inside every namespace, as Docker's embedded DNS does.
pub const LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)), 53);
/// Largest UDP request we read; real queries are far smaller, longer ones fail to parse.
const UDP_REQUEST_BUFFER: usize = 4096;
/// TCP connections served at once per namespace; more are closed at once.
const MAX_TCP_CONNECTIONS: usize = 16;
/// A TCP client that sends nothing for this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The serving tasks of one namespace. Closing aborts them, which drops (closes) the sockets.
#[derive(Debug)]
pub(super) struct Listener {
    tasks: Vec<JoinHandle<()>>,
}

impl Listener {
    /// Bind both sockets inside `netns` and start serving them for client `netns_id` on
    /// `runtime` (the DNS thread's, see `Dns`).
    pub(super) async fn open(
        netns: PathBuf,
        netns_id: String,
        shared: Arc<Shared>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Listener, DnsError> {
        let bind = |source| DnsError::Bind {
            netns: netns.clone(),
            source,
        };
        let sockets = crate::netns::run_in_async(netns.clone(), || -> std::io::Result<_> {
            let udp = std::net::UdpSocket::bind(LISTEN_ADDR)?;
            udp.set_nonblocking(true)?;
            let tcp = std::net::TcpListener::bind(LISTEN_ADDR)?;
            tcp.set_nonblocking(true)?;
            Ok((udp, tcp))
        })
        .await
        .map_err(|source| DnsError::Namespace {
            netns: netns.clone(),
            source,
        })?;
        let (udp, tcp) = sockets.map_err(bind)?;
        // Registered with the DNS runtime's reactor, which then drives them.
        let (udp, tcp) = {
            let _context = runtime.enter();
            (
                UdpSocket::from_std(udp).map_err(bind)?,
                TcpListener::from_std(tcp).map_err(bind)?,
            )
        };
        let client: Arc<str> = netns_id.into();
        let tasks = vec![
            runtime.spawn(serve_udp(
                Arc::new(udp),
                Arc::clone(&client),
                Arc::clone(&shared),
            )),
            runtime.spawn(serve_tcp(tcp, client, shared)),
        ];
        Ok(Listener { tasks })
    }

    /// Stop serving and wait until the sockets are closed.
    pub(super) async fn close(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Requests read (and answers written) per system call when queries queue up.
const UDP_BATCH: usize = 32;

/// Receive buffers for one batch. They live in the DNS thread, not in each listener: the
/// runtime is single-threaded and a batch is read, answered and sent without an `.await` in
/// between, so one set serves every namespace (32 x 4 KiB once, not per namespace).
struct Batch {
    buffers: Vec<Vec<u8>>,
    received: Vec<(usize, SockaddrIn)>,
    headers: MultiHeaders<SockaddrIn>,
}

thread_local! {
    static BATCH: RefCell<Batch> = RefCell::new(Batch {
        buffers: vec![vec![0u8; UDP_REQUEST_BUFFER]; UDP_BATCH],
        received: Vec::with_capacity(UDP_BATCH),
        headers: MultiHeaders::preallocate(UDP_BATCH, None),
    });
}

/// Read every queued request (up to a batch) with one recvmmsg(2).
fn receive_batch(fd: RawFd, batch: &mut Batch) -> std::io::Result<usize> {
    let Batch {
        buffers,
        received,
        headers,
    } = batch;
    received.clear();
    let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffers
        .iter_mut()
        .map(|b| [IoSliceMut::new(b.as_mut_slice())])
        .collect();
    let results = recvmmsg(fd, headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
    for msg in results {
        // A datagram longer than our buffer is no query we could parse: skip it.
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            continue;
        }
        if let Some(peer) = msg.address {
            received.push((msg.bytes, peer));
        }
    }
    Ok(received.len())
}

/// Send answers with one sendmmsg(2); what the socket cannot take now is dropped (UDP may
/// lose an answer, the client asks again; waiting would stall every other client).
fn send_batch(fd: RawFd, answers: &[(Vec<u8>, SockaddrIn)]) {
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(answers.len(), None);
    let slices: Vec<[IoSlice<'_>; 1]> = answers.iter().map(|(a, _)| [IoSlice::new(a)]).collect();
    let addresses: Vec<Option<SockaddrIn>> = answers.iter().map(|(_, p)| Some(*p)).collect();
    let cmsgs: [ControlMessage<'_>; 0] = [];
    let _ = sendmmsg(
        fd,
        &mut headers,
        slices.iter(),
        addresses,
        cmsgs,
        MsgFlags::MSG_DONTWAIT,
    );
}

async fn serve_udp(socket: Arc<UdpSocket>, client: Arc<str>, shared: Arc<Shared>) {
    let fd = socket.as_raw_fd();
    // Forwarded queries run beside the loop; owned here so closing the listener ends them.
    let mut forwards = JoinSet::new();
    let mut answers: Vec<(Vec<u8>, SockaddrIn)> = Vec::with_capacity(UDP_BATCH);
    loop {
        if let Err(e) = socket.readable().await {
            tracing::debug!(error = %e, "dns: udp readiness");
            continue;
        }
        // Drain the queue batch by batch; `try_io` clears readiness when it runs dry.
        loop {
            let drained = BATCH.with_borrow_mut(|batch| {
                let got = socket.try_io(Interest::READABLE, || receive_batch(fd, batch));
                let n = match got {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(e) => {
                        tracing::debug!(error = %e, "dns: udp receive");
                        return true;
                    }
                };
                let snapshot = shared.snapshot.load();
                let scope = snapshot.client(&client);
                for (i, &(len, peer)) in batch.received.iter().enumerate() {
                    let request = &batch.buffers[i][..len];
                    match handle(&snapshot, scope, request, Transport::Udp) {
                        None => {}
                        Some(Reply::Answer(answer)) => answers.push((answer, peer)),
                        Some(Reply::Forward(fwd)) => {
                            let request = request.to_vec();
                            let shared = Arc::clone(&shared);
                            // Weak: a forward in flight must not keep the port bound after
                            // the listener closes.
                            let socket: Weak<UdpSocket> = Arc::downgrade(&socket);
                            let peer = SocketAddr::V4(peer.into());
                            forwards.spawn(async move {
                                let answer = shared.forwarder.forward(&fwd, &request).await;
                                if let Some(socket) = socket.upgrade() {
                                    let _ = socket.try_send_to(&answer, peer);
                                }
                            });
                        }
                    }
                }
                n < UDP_BATCH
            });
            if !answers.is_empty() {
                send_batch(fd, &answers);
                answers.clear();
            }
            while forwards.try_join_next().is_some() {}
            if drained {
                break;
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, client: Arc<str>, shared: Arc<Shared>) {
    let limit = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::debug!(error = %e, "dns: tcp accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            continue; // dropping the stream closes it
        };
        let (client, shared) = (Arc::clone(&client), Arc::clone(&shared));
        connections.spawn(async move {
            serve_tcp_connection(stream, &client, &shared).await;
            drop(permit);
        });
    }
}

/// Length-prefixed queries (RFC 1035 4.2.2, RFC 7766), answered in order until the client
/// closes, idles, or sends something that is not a query.
async fn serve_tcp_connection(mut stream: TcpStream, client: &str, shared: &Shared) {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        let mut request = vec![0u8; usize::from(len)];
        let Ok(Ok(_)) = tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut request)).await
        else {
            return;
        };
        let answer = {
            let snapshot = shared.snapshot.load();
            handle(&snapshot, snapshot.client(client), &request, Transport::Tcp)
        };
        let answer = match answer {
            None => return,
            Some(Reply::Answer(answer)) => answer,
            Some(Reply::Forward(fwd)) => shared.forwarder.forward(&fwd, &request).await,
        };
        let Ok(len) = u16::try_from(answer.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&answer);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
