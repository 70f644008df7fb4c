//! Parsing `-H` addresses (`unix:///path`, `tcp://host:port`), shared by agent and CLI.

use std::fmt;
use std::path::PathBuf;

use crate::error::{ErrorKind, HasKind};

/// Where the API listens or where the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAddr {
    Unix(PathBuf),
    Tcp(String),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid host address {addr:?}: {reason}")]
pub struct HostAddrError {
    pub addr: String,
    pub reason: &'static str,
}

impl HasKind for HostAddrError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

impl HostAddr {
    pub fn parse(addr: &str) -> Result<HostAddr, HostAddrError> {
        let err = |reason| HostAddrError {
            addr: addr.to_string(),
            reason,
        };
        if let Some(path) = addr.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(err(
                    "unix socket path must be absolute (unix:///run/warren/warren.sock)",
                ));
            }
            Ok(HostAddr::Unix(PathBuf::from(path)))
        } else if let Some(rest) = addr.strip_prefix("tcp://") {
            let hostport = rest.trim_end_matches('/');
            let (host, port) = hostport
                .rsplit_once(':')
                .ok_or_else(|| err("tcp address needs a port (tcp://127.0.0.1:2376)"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(err(
                    "tcp address needs host and numeric port (tcp://127.0.0.1:2376)",
                ));
            }
            Ok(HostAddr::Tcp(hostport.to_string()))
        } else if addr.starts_with('/') {
            Ok(HostAddr::Unix(PathBuf::from(addr)))
        } else {
            Err(err("expected unix:///path or tcp://host:port"))
        }
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            HostAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_tcp() {
        assert_eq!(
            HostAddr::parse("unix:///run/warren/warren.sock").unwrap(),
            HostAddr::Unix("/run/warren/warren.sock".into())
        );
        assert_eq!(
            HostAddr::parse("tcp://127.0.0.1:2376").unwrap(),
            HostAddr::Tcp("127.0.0.1:2376".into())
        );
        assert_eq!(
            HostAddr::parse("tcp://[::1]:2376").unwrap(),
            HostAddr::Tcp("[::1]:2376".into())
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "unix://relative",
            "tcp://host",
            "tcp://:1",
            "tcp://h:port",
            "http://x:1",
            "fd://",
        ] {
            assert!(HostAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
