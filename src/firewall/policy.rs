//! What the agent tells the firewall: one [`NetworkPolicy`] per network and one
//! [`PortMapping`] per published port, their validation, and the sysctls they depend on.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use super::error::FirewallError;

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// Network ids end up in chain names; 12 hex chars is what the agent uses, a little slack is fine.
const NETWORK_ID_MAX: usize = 64;

/// The firewall-relevant facts of one bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Short network id (12 hex chars); names this network's chains.
    pub id: String,
    /// Host-side bridge interface (≤ 15 bytes).
    pub bridge: String,
    /// The network's subnets, v4 and/or v6.
    pub subnets: Vec<IpNetwork>,
    /// Nothing is forwarded between the network and any other interface.
    pub internal: bool,
    /// Members may talk to each other directly (inter-container communication).
    pub icc: bool,
    /// Outbound traffic leaving via another interface gets the host's address.
    pub masquerade: bool,
    /// Default host IP for published ports; the agent applies it when filling
    /// [`PortMapping::host_ip`] (the firewall only publishes what the mappings say).
    pub host_binding_ipv4: Option<Ipv4Addr>,
}

impl NetworkPolicy {
    /// Check everything that would otherwise only fail inside `nft` (or worse, succeed oddly).
    pub fn validate(&self) -> Result<(), FirewallError> {
        let invalid = |reason: String| FirewallError::InvalidNetwork {
            id: self.id.clone(),
            reason,
        };
        if self.id.is_empty()
            || self.id.len() > NETWORK_ID_MAX
            || !self.id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid(format!(
                "id must be 1..={NETWORK_ID_MAX} ASCII letters or digits"
            )));
        }
        if !valid_ifname(&self.bridge) {
            return Err(invalid(format!(
                "bridge name {:?} is not a valid interface name",
                self.bridge
            )));
        }
        if self.subnets.is_empty() {
            return Err(invalid("no subnets".into()));
        }
        Ok(())
    }

    /// Chain names of this network (see the table layout in the module docs).
    pub(crate) fn chain(&self, role: &str) -> String {
        format!("nw-{}-{}", self.id, role)
    }

    pub(crate) fn has_ipv4(&self) -> bool {
        self.subnets.iter().any(IpNetwork::is_ipv4)
    }

    pub(crate) fn has_ipv6(&self) -> bool {
        self.subnets.iter().any(IpNetwork::is_ipv6)
    }
}

/// Like the kernel's `dev_valid_name`.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// Sysctls (path under `/proc/sys`, value) the caller must set for `policy` to work.
///
/// Paths rather than dotted names, because a bridge name may itself contain dots.
/// - forwarding, so traffic can leave a non-internal network at all;
/// - `route_localnet` on the bridge, so a connection to `127.0.0.1:<published>` may be DNATed
///   out of the bridge (the kernel otherwise drops loopback sources on a non-loopback device).
///   IPv6 has no equivalent: `[::1]:<published>` is not served.
///
/// Internal networks need nothing: their members only talk across the bridge.
pub fn required_sysctls(policy: &NetworkPolicy) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if policy.internal {
        return out;
    }
    if policy.has_ipv4() {
        out.push(("net/ipv4/ip_forward".to_string(), "1".to_string()));
        out.push((
            format!("net/ipv4/conf/{}/route_localnet", policy.bridge),
            "1".to_string(),
        ));
    }
    if policy.has_ipv6() {
        out.push(("net/ipv6/conf/all/forwarding".to_string(), "1".to_string()));
    }
    out
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The name nft (and docker) use.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port: `host_ip:host_port/proto` → `container_ip:container_port`.
/// Port ranges arrive expanded into one mapping per port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    pub network_id: String,
    pub proto: Proto,
    /// `None` (or an unspecified address of the container's family) = every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

/// Which host addresses a mapping listens on, after normalising `0.0.0.0` / `::`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HostMatch {
    Any,
    Addr(IpAddr),
}

impl PortMapping {
    pub fn validate(&self) -> Result<(), FirewallError> {
        let invalid = |reason: &str| FirewallError::InvalidPort {
            mapping: self.to_string(),
            reason: reason.to_string(),
        };
        if self.host_port == 0 || self.container_port == 0 {
            return Err(invalid("port 0 cannot be published"));
        }
        if let Some(ip) = self.host_ip {
            if ip.is_ipv4() != self.container_ip.is_ipv4() {
                return Err(invalid(
                    "host and container addresses are of different families",
                ));
            }
        }
        if self.container_ip.is_unspecified() {
            return Err(invalid("container address is unspecified"));
        }
        Ok(())
    }

    pub(crate) fn host_match(&self) -> HostMatch {
        match self.host_ip {
            Some(ip) if !ip.is_unspecified() => HostMatch::Addr(ip),
            _ => HostMatch::Any,
        }
    }

    /// What nft keys the DNAT maps by: two mappings with the same key cannot coexist.
    pub(crate) fn key(&self) -> (bool, HostMatch, Proto, u16) {
        (
            self.container_ip.is_ipv4(),
            self.host_match(),
            self.proto,
            self.host_port,
        )
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_match() {
            HostMatch::Any => write!(f, "*:{}", self.host_port)?,
            HostMatch::Addr(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.host_port)?,
            HostMatch::Addr(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.host_port)?,
        }
        match self.container_ip {
            IpAddr::V6(ip) => write!(f, "->[{ip}]:{}", self.container_port)?,
            IpAddr::V4(ip) => write!(f, "->{ip}:{}", self.container_port)?,
        }
        write!(f, "/{}", self.proto)
    }
}

/// Validate every mapping and refuse two that claim the same host address/port/protocol.
pub(crate) fn validate_ports(ports: &[PortMapping]) -> Result<(), FirewallError> {
    let mut seen = HashSet::new();
    for p in ports {
        p.validate()?;
        if !seen.insert(p.key()) {
            return Err(FirewallError::DuplicatePort {
                mapping: p.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    fn net(id: &str, bridge: &str, subnets: &[&str]) -> NetworkPolicy {
        NetworkPolicy {
            id: id.into(),
            bridge: bridge.into(),
            subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
            internal: false,
            icc: true,
            masquerade: true,
            host_binding_ipv4: None,
        }
    }

    fn mapping(host_ip: Option<&str>, host_port: u16, cip: &str) -> PortMapping {
        PortMapping {
            network_id: "0123456789ab".into(),
            proto: Proto::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port,
            container_ip: cip.parse().unwrap(),
            container_port: 80,
        }
    }

    #[test]
    fn policy_validation() {
        assert!(net("0123456789ab", "br-t1", &["10.0.0.0/24"])
            .validate()
            .is_ok());
        for bad in [
            net("", "br-t1", &["10.0.0.0/24"]),
            net("01-23", "br-t1", &["10.0.0.0/24"]),
            net("0123456789ab", "a-very-long-bridge", &["10.0.0.0/24"]),
            net("0123456789ab", "br/1", &["10.0.0.0/24"]),
            net("0123456789ab", "br-t1", &[]),
        ] {
            let err = bad.validate().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn sysctls_follow_families_and_internal() {
        let v4 = net("a", "br-t1", &["10.0.0.0/24"]);
        assert_eq!(
            required_sysctls(&v4),
            vec![
                ("net/ipv4/ip_forward".into(), "1".into()),
                ("net/ipv4/conf/br-t1/route_localnet".into(), "1".into()),
            ]
        );
        let dual = net("a", "br.5", &["10.0.0.0/24", "fd00::/64"]);
        let keys: Vec<_> = required_sysctls(&dual)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "net/ipv4/ip_forward",
                "net/ipv4/conf/br.5/route_localnet",
                "net/ipv6/conf/all/forwarding"
            ]
        );
        let mut internal = dual.clone();
        internal.internal = true;
        assert!(required_sysctls(&internal).is_empty());
    }

    #[test]
    fn port_validation_and_duplicates() {
        assert!(mapping(None, 8080, "10.0.0.2").validate().is_ok());
        assert_eq!(
            mapping(None, 0, "10.0.0.2").validate().unwrap_err().kind(),
            ErrorKind::Invalid
        );
        assert_eq!(
            mapping(Some("::1"), 8080, "10.0.0.2")
                .validate()
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );
        // 0.0.0.0 means "every address", so it clashes with an unset host ip.
        let err = validate_ports(&[
            mapping(None, 8080, "10.0.0.2"),
            mapping(Some("0.0.0.0"), 8080, "10.0.0.3"),
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        // Different host addresses, or v4 vs v6, are independent keys.
        assert!(validate_ports(&[
            mapping(None, 8080, "10.0.0.2"),
            mapping(Some("192.0.2.1"), 8080, "10.0.0.3"),
            mapping(None, 8080, "fd00::2"),
        ])
        .is_ok());
    }

    #[test]
    fn mapping_display() {
        assert_eq!(
            mapping(Some("::1"), 8080, "fd00::2").to_string(),
            "[::1]:8080->[fd00::2]:80/tcp"
        );
        assert_eq!(
            mapping(None, 8080, "10.0.0.2").to_string(),
            "*:8080->10.0.0.2:80/tcp"
        );
    }
}
