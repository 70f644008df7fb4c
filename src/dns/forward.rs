//! Forwarding names we do not serve to upstream resolvers, from the agent's own namespace.
//!
//! Upstreams are daemon.json `dns` or, without it, the nameservers of the agent's
//! /etc/resolv.conf minus loopback ones (a 127.0.0.53 stub in the host's namespace means nothing
//! to us, and asking ourselves would loop); the file is re-read when its mtime changes.
//! Concurrency is bounded by a semaphore (past it: SERVFAIL at once, rather than queueing
//! without limit), each upstream gets a timeout, and each forwarded query uses a fresh socket
//! on a random port connected to the upstream, so only that upstream's answers are read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use super::handle::Forward;

/// Where the host's resolvers are listed.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Forwarded queries in flight at once, for all namespaces together.
const MAX_IN_FLIGHT: usize = 256;
/// How long one upstream gets to answer (glibc's default is 5 s for the whole lookup).
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often the mtime of resolv.conf is looked at, at most.
const RESOLV_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The upstream resolvers, from configuration or resolv.conf.
#[derive(Debug)]
pub struct Upstreams {
    configured: Vec<SocketAddr>,
    resolv_conf: PathBuf,
    cache: Mutex<ResolvCache>,
}

#[derive(Debug, Default)]
struct ResolvCache {
    checked: Option<Instant>,
    mtime: Option<SystemTime>,
    servers: Arc<Vec<SocketAddr>>,
}

impl Upstreams {
    pub fn new(configured: &[IpAddr], resolv_conf: PathBuf) -> Upstreams {
        Upstreams {
            configured: configured
                .iter()
                .map(|ip| SocketAddr::new(*ip, 53))
                .collect(),
            resolv_conf,
            cache: Mutex::new(ResolvCache::default()),
        }
    }

    /// The servers to try, in order.
    pub fn current(&self) -> Arc<Vec<SocketAddr>> {
        if !self.configured.is_empty() {
            return Arc::new(self.configured.clone());
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if cache
            .checked
            .is_some_and(|t| now.duration_since(t) < RESOLV_CHECK_INTERVAL)
        {
            return Arc::clone(&cache.servers);
        }
        cache.checked = Some(now);
        let mtime = std::fs::metadata(&self.resolv_conf)
            .and_then(|m| m.modified())
            .ok();
        if mtime != cache.mtime || mtime.is_none() {
            let text = std::fs::read_to_string(&self.resolv_conf).unwrap_or_default();
            let servers = parse_resolv_conf(&text)
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 53))
                .collect();
            cache.servers = Arc::new(servers);
            cache.mtime = mtime;
        }
        Arc::clone(&cache.servers)
    }
}

/// Nameservers of a resolv.conf, without loopback ones and without scoped (link-local with
/// `%zone`) ones, which would need the zone's interface in our namespace.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect()
}

/// Sends queries upstream and shapes the answers for the client.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Upstreams,
    permits: Semaphore,
}

impl Forwarder {
    pub fn new(upstreams: Upstreams) -> Forwarder {
        Forwarder {
            upstreams,
            permits: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// The answer for `request` from the first upstream that gives one; SERVFAIL when none
    /// does (or too many queries are already in flight).
    pub async fn forward(&self, fwd: &Forward, request: &[u8]) -> Vec<u8> {
        let Ok(_permit) = self.permits.try_acquire() else {
            tracing::debug!("too many forwarded queries in flight; SERVFAIL");
            return fwd.servfail();
        };
        for server in self.upstreams.current().iter() {
            match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange(*server, fwd, request)).await {
                Ok(Ok(answer)) => return answer,
                Ok(Err(e)) => tracing::debug!(%server, error = %e, "upstream failed"),
                Err(_) => tracing::debug!(%server, "upstream timed out"),
            }
        }
        fwd.servfail()
    }
}

/// One query to one upstream: UDP, then TCP if the UDP answer was truncated.
async fn exchange(server: SocketAddr, fwd: &Forward, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(request).await?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let n = socket.recv(&mut buf).await?;
        let answer = &buf[..n];
        // Anything that is not the answer to this question (late, stray) is ignored.
        let Some(shaped) = fwd.finish(answer) else {
            continue;
        };
        let truncated = answer.get(2).is_some_and(|flags| flags & 0x02 != 0);
        if truncated {
            if let Ok(full) = exchange_tcp(server, request).await {
                if let Some(shaped) = fwd.finish(&full) {
                    return Ok(shaped);
                }
            }
        }
        return Ok(shaped);
    }
}

async fn exchange_tcp(server: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(request.len())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut stream = TcpStream::connect(server).await?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0u8; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_without_loopback_or_scoped_servers() {
        let text = "# generated\nsearch example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n\
                    nameserver ::1\nnameserver fe80::1%eth0\n  nameserver 2001:db8::53\noptions edns0\n";
        let got = parse_resolv_conf(text);
        assert_eq!(
            got,
            [
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "2001:db8::53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn configured_servers_win_and_resolv_conf_is_reread_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 10.0.0.2\n").unwrap();
        let configured = Upstreams::new(&["10.9.9.9".parse().unwrap()], path.clone());
        assert_eq!(configured.current()[0], "10.9.9.9:53".parse().unwrap());

        let up = Upstreams::new(&[], path.clone());
        assert_eq!(*up.current(), ["10.0.0.2:53".parse().unwrap()]);
        std::fs::write(&path, "nameserver 10.0.0.3\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        // Checked at most once a second: force the next look.
        up.cache.lock().unwrap().checked = None;
        assert_eq!(*up.current(), ["10.0.0.3:53".parse().unwrap()]);
    }
}
