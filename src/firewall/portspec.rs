//! Docker's `-p` syntax, `[HOSTIP:][HOSTPORT[-END]:]CTRPORT[-END][/tcp|udp]`, parsed into one
//! [`PortSpec`] per container port. Turning specs into [`PortMapping`](super::PortMapping)s
//! (choosing ephemeral ports, the container's address) is the agent's job.

use std::net::IpAddr;

use super::error::FirewallError;
use super::policy::Proto;

/// Which host port a container port is published on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPort {
    /// No host port given: the agent picks a free ephemeral one.
    Ephemeral,
    /// Exactly this port.
    Fixed(u16),
    /// Any free port of `start..=end` (docker: a host range with a single container port).
    OneOf { start: u16, end: u16 },
}

/// One container port to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// `None` = every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: HostPort,
    pub container_port: u16,
    pub proto: Proto,
}

/// Parse one `-p` argument; ranges come back expanded, pairing host and container ports in order.
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortSpec>, FirewallError> {
    let invalid = |reason: &str| FirewallError::InvalidPortSpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((rest, p)) => match p.to_ascii_lowercase().as_str() {
            "tcp" => (rest, Proto::Tcp),
            "udp" => (rest, Proto::Udp),
            _ => return Err(invalid("protocol must be tcp or udp")),
        },
        None => (spec, Proto::Tcp),
    };
    // Like docker: the last field is the container port, the one before the host port and
    // everything before that the address, so unbracketed IPv6 addresses work too.
    let mut fields = rest.rsplitn(3, ':');
    let ctr = fields.next().unwrap_or_default();
    let host = fields.next().unwrap_or_default();
    let ip = fields.next().unwrap_or_default();
    let host_ip = match ip {
        "" => None,
        ip => {
            let bare = ip
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(ip);
            Some(
                bare.parse::<IpAddr>()
                    .map_err(|_| invalid("host address is not an IP address"))?,
            )
        }
    };
    let (cstart, cend) = parse_range(ctr).ok_or_else(|| invalid("bad container port"))?;
    let container_ports = cstart..=cend;
    let specs = match host {
        "" => container_ports
            .map(|c| PortSpec {
                host_ip,
                host_port: HostPort::Ephemeral,
                container_port: c,
                proto,
            })
            .collect(),
        host => {
            let (hstart, hend) = parse_range(host).ok_or_else(|| invalid("bad host port"))?;
            if cstart == cend && hstart != hend {
                vec![PortSpec {
                    host_ip,
                    host_port: HostPort::OneOf {
                        start: hstart,
                        end: hend,
                    },
                    container_port: cstart,
                    proto,
                }]
            } else if hend - hstart != cend - cstart {
                return Err(invalid("host and container port ranges differ in length"));
            } else {
                (hstart..=hend)
                    .zip(container_ports)
                    .map(|(h, c)| PortSpec {
                        host_ip,
                        host_port: HostPort::Fixed(h),
                        container_port: c,
                        proto,
                    })
                    .collect()
            }
        }
    };
    Ok(specs)
}

/// `PORT` or `START-END`, ports 1..=65535, start ≤ end.
fn parse_range(s: &str) -> Option<(u16, u16)> {
    let port = |p: &str| -> Option<u16> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse::<u16>().ok().filter(|&n| n != 0)
    };
    let (start, end) = match s.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    (start <= end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    fn one(spec: &str) -> PortSpec {
        let v = parse_port_spec(spec).unwrap();
        assert_eq!(v.len(), 1, "{spec}");
        v[0]
    }

    #[test]
    fn single_ports() {
        assert_eq!(
            one("80"),
            PortSpec {
                host_ip: None,
                host_port: HostPort::Ephemeral,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        let s = one("8080:80/udp");
        assert_eq!(
            (s.host_port, s.container_port, s.proto),
            (HostPort::Fixed(8080), 80, Proto::Udp)
        );
        let s = one("127.0.0.1:8080:80");
        assert_eq!(s.host_ip, Some("127.0.0.1".parse().unwrap()));
        let s = one("127.0.0.1::80/TCP");
        assert_eq!((s.host_port, s.proto), (HostPort::Ephemeral, Proto::Tcp));
        assert_eq!(one("[::1]:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(
            one("fd00::1:8080:80").host_ip,
            Some("fd00::1".parse().unwrap())
        );
    }

    #[test]
    fn ranges_expand_in_order() {
        let v = parse_port_spec("8000-8002:80-82/udp").unwrap();
        let pairs: Vec<_> = v.iter().map(|s| (s.host_port, s.container_port)).collect();
        assert_eq!(
            pairs,
            [
                (HostPort::Fixed(8000), 80),
                (HostPort::Fixed(8001), 81),
                (HostPort::Fixed(8002), 82)
            ]
        );
        assert_eq!(parse_port_spec("80-81").unwrap().len(), 2);
        assert_eq!(
            one("8000-8010:80").host_port,
            HostPort::OneOf {
                start: 8000,
                end: 8010
            }
        );
    }

    #[test]
    fn malformed_specs_are_invalid() {
        for bad in [
            "",
            "/tcp",
            "80/sctp",
            "0",
            "65536",
            "abc",
            "8080:",
            ":80x",
            "8000-7000:80",
            "80-",
            "-80",
            "8000-8002:80-81",
            "8000:80-82",
            "1.2.3:8080:80",
            "[::1:8080:80",
            "8080:+80",
        ] {
            let err = parse_port_spec(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{bad}");
        }
    }
}
