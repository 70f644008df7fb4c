//! IP address management: address pools, subnet choice and validation, and address allocation,
//! Docker-compatible.
//!
//! Two layers:
//! - pure logic ([`validate`], [`pools`]): validate a requested subnet, pick a free block from the
//!   address pools, pick or check an address — no I/O, unit-tested exhaustively;
//! - store-backed planning ([`allocator`]): read current reservations from a [`Store`] and return
//!   the change as a [`Txn`] the agent merges with its own record writes into one atomic commit.
//!   Every reservation is one store key created under an `Absent` compare, so two requests (two
//!   threads, or two hosts sharing a distributed store) can never get the same subnet or address;
//!   the loser's commit conflicts and [`commit_with_retry`] re-plans it.
//!
//! Store layout (all Global scope, so subnets never collide across hosts either):
//! - `ipam/subnet-epoch` — bumped by every subnet reservation; see [`allocator`] for why;
//! - `ipam/subnets/<net>_<prefix>` → [`SubnetReservation`];
//! - `ipam/addrs/<network-id>/<ip>` → [`AddressRecord`];
//! - `ipam/cursors/<network-id>/<net>_<prefix>` → last address handed out dynamically.
//!
//! [`Store`]: crate::store::Store
//! [`Txn`]: crate::store::Txn

pub mod allocator;
pub mod pools;
pub mod validate;

pub use crate::store::commit_with_retry;
pub use allocator::{
    addresses, plan_allocate, plan_move_to_local_scope, plan_network, plan_release,
    plan_release_network, reservations, AddressRecord, SubnetReservation,
};
pub use pools::{
    default_bridge_pools, default_bridge_request, pick_subnet, user_network_pools,
    DEFAULT_BRIDGE_SUBNET,
};
pub use validate::{check_address, next_free_address, overlaps, validate_subnet, AddressOwners};

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, HasKind};
use crate::store::StoreError;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of_net(net: &IpNetwork) -> Family {
        if net.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }

    pub fn of_ip(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// A network's resolved subnet (Docker's `IPAM.Config[]` entry as the engine reports it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetConfig {
    #[serde(rename = "Subnet", with = "wire::net")]
    pub subnet: IpNetwork,
    #[serde(
        rename = "Gateway",
        default,
        with = "wire::opt_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway: Option<IpAddr>,
    #[serde(
        rename = "IPRange",
        default,
        with = "wire::opt_net",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_range: Option<IpNetwork>,
    #[serde(
        rename = "AuxiliaryAddresses",
        alias = "AuxAddress",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// What a user asked for one subnet of a network (Docker's `IPAM.Config[]` entry as a client
/// sends it). Without `subnet`, one is picked from the address pools, and then `gateway`,
/// `ip_range` and `aux_addresses` must be empty. Empty strings count as absent, as in Docker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRequest {
    #[serde(
        rename = "Subnet",
        default,
        with = "wire::opt_net",
        skip_serializing_if = "Option::is_none"
    )]
    pub subnet: Option<IpNetwork>,
    #[serde(
        rename = "Gateway",
        default,
        with = "wire::opt_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway: Option<IpAddr>,
    #[serde(
        rename = "IPRange",
        default,
        with = "wire::opt_net",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_range: Option<IpNetwork>,
    #[serde(
        rename = "AuxiliaryAddresses",
        alias = "AuxAddress",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

impl PoolRequest {
    /// A request for the given subnet with defaults for the rest.
    pub fn subnet(subnet: IpNetwork) -> PoolRequest {
        PoolRequest {
            subnet: Some(subnet),
            ..PoolRequest::default()
        }
    }

    /// The family this request is for, if it names any address.
    fn family(&self) -> Option<Family> {
        self.subnet
            .as_ref()
            .map(Family::of_net)
            .or(self.ip_range.as_ref().map(Family::of_net))
            .or(self.gateway.as_ref().map(Family::of_ip))
            .or(self.aux_addresses.values().next().map(Family::of_ip))
    }
}

/// The subnets a network asks for, per family. An empty list means no subnet of that family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkRequest {
    pub ipv4: Vec<PoolRequest>,
    pub ipv6: Vec<PoolRequest>,
}

impl NetworkRequest {
    /// One IPv4 subnet from the pools: `docker network create <name>`.
    pub fn default_ipv4() -> NetworkRequest {
        NetworkRequest {
            ipv4: vec![PoolRequest::default()],
            ipv6: Vec::new(),
        }
    }

    /// Sort Docker's mixed `IPAM.Config` list by family, adding a pool-picked subnet for each
    /// enabled family the user left out (Docker's `EnableIPv4`/`EnableIPv6`).
    pub fn from_docker(
        configs: Vec<PoolRequest>,
        enable_ipv4: bool,
        enable_ipv6: bool,
    ) -> Result<NetworkRequest, IpamError> {
        let mut req = NetworkRequest::default();
        for config in configs {
            match config.family() {
                // An entry naming nothing asks for IPv4 from the pools, as in Docker.
                Some(Family::Ipv4) | None => req.ipv4.push(config),
                Some(Family::Ipv6) => req.ipv6.push(config),
            }
        }
        if !enable_ipv6 && !req.ipv6.is_empty() {
            return Err(IpamError::FamilyNotEnabled {
                family: Family::Ipv6,
            });
        }
        if !enable_ipv4 && !req.ipv4.is_empty() {
            return Err(IpamError::FamilyNotEnabled {
                family: Family::Ipv4,
            });
        }
        if enable_ipv4 && req.ipv4.is_empty() {
            req.ipv4.push(PoolRequest::default());
        }
        if enable_ipv6 && req.ipv6.is_empty() {
            req.ipv6.push(PoolRequest::default());
        }
        Ok(req)
    }
}

/// A `default-address-pools` entry of daemon.json: carve `/size` subnets out of `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    #[serde(with = "wire::net")]
    pub base: IpNetwork,
    pub size: u8,
}

/// IPAM errors; variants are named after what was wrong and carry the values involved.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("subnet {given} has host bits set; use {canonical}")]
    SubnetNotCanonical {
        given: IpNetwork,
        canonical: IpNetwork,
    },
    #[error(
        "subnet {subnet} is too small: {family} networks need a prefix of /{max_prefix} or shorter"
    )]
    SubnetTooSmall {
        subnet: IpNetwork,
        family: Family,
        max_prefix: u8,
    },
    #[error("{subnet} is not an {family} subnet")]
    WrongFamily { subnet: IpNetwork, family: Family },
    #[error("{field} given without a subnet")]
    SubnetRequired { field: &'static str },
    #[error("IP range {range} has host bits set; use {canonical}")]
    RangeNotCanonical {
        range: IpNetwork,
        canonical: IpNetwork,
    },
    #[error("IP range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet { range: IpNetwork, subnet: IpNetwork },
    #[error("gateway {gateway} is not inside subnet {subnet}")]
    GatewayOutsideSubnet { gateway: IpAddr, subnet: IpNetwork },
    #[error("gateway {gateway} is the {what} of subnet {subnet}")]
    GatewayReserved {
        gateway: IpAddr,
        subnet: IpNetwork,
        what: &'static str,
    },
    #[error("auxiliary address {name}={ip} is not inside subnet {subnet}")]
    AuxAddressOutsideSubnet {
        name: String,
        ip: IpAddr,
        subnet: IpNetwork,
    },
    #[error("auxiliary address {name}={ip} is the {what} of subnet {subnet}")]
    AuxAddressReserved {
        name: String,
        ip: IpAddr,
        subnet: IpNetwork,
        what: &'static str,
    },
    #[error("subnet {subnet} overlaps {other} of network {owner}")]
    SubnetOverlap {
        subnet: IpNetwork,
        other: IpNetwork,
        owner: String,
    },
    #[error("subnet {subnet} overlaps host route {route}")]
    SubnetOverlapsRoute { subnet: IpNetwork, route: IpNetwork },
    #[error("address pool {base} with size /{size}: {reason}")]
    InvalidPool {
        base: IpNetwork,
        size: u8,
        reason: &'static str,
    },
    #[error("no {family} address pool is configured; give a subnet")]
    NoPool { family: Family },
    #[error("all {family} address pools are used up; give a subnet or configure more default-address-pools")]
    PoolExhausted { family: Family },
    #[error("{family} configuration given but {family} is not enabled on the network")]
    FamilyNotEnabled { family: Family },
    #[error("subnet {subnet} is not reserved by network {network_id}")]
    SubnetNotReserved {
        subnet: IpNetwork,
        network_id: String,
    },
    #[error("address {ip} is not inside subnet {subnet}")]
    AddressOutsideSubnet { ip: IpAddr, subnet: IpNetwork },
    #[error("address {ip} is outside the network's ip-range {range}")]
    AddressOutsideRange { ip: IpAddr, range: IpNetwork },
    #[error("address {ip} is the {what} of subnet {subnet}")]
    AddressReserved {
        ip: IpAddr,
        subnet: IpNetwork,
        what: String,
    },
    #[error("address {ip} is already in use by {owner}")]
    AddressInUse { ip: IpAddr, owner: String },
    #[error("no free address left in {range}")]
    AddressesExhausted { range: IpNetwork },
    #[error("IPAM state")]
    Store(#[from] StoreError),
}

impl HasKind for IpamError {
    fn kind(&self) -> ErrorKind {
        use IpamError::*;
        match self {
            SubnetOverlap { .. }
            | SubnetOverlapsRoute { .. }
            | AddressInUse { .. }
            | PoolExhausted { .. }
            | AddressesExhausted { .. } => ErrorKind::Conflict,
            SubnetNotReserved { .. } => ErrorKind::NotFound,
            Store(e) => e.kind(),
            SubnetNotCanonical { .. }
            | SubnetTooSmall { .. }
            | WrongFamily { .. }
            | SubnetRequired { .. }
            | RangeNotCanonical { .. }
            | RangeOutsideSubnet { .. }
            | GatewayOutsideSubnet { .. }
            | GatewayReserved { .. }
            | AuxAddressOutsideSubnet { .. }
            | AuxAddressReserved { .. }
            | InvalidPool { .. }
            | NoPool { .. }
            | FamilyNotEnabled { .. }
            | AddressOutsideSubnet { .. }
            | AddressOutsideRange { .. }
            | AddressReserved { .. } => ErrorKind::Invalid,
        }
    }
}

/// Serde adapters: networks and addresses as Docker's strings ("" = absent), without needing
/// ipnetwork's optional serde feature.
mod wire {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub mod net {
        use super::*;
        use ipnetwork::IpNetwork;

        pub fn serialize<S: Serializer>(net: &IpNetwork, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(net)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNetwork, D::Error> {
            let text = String::deserialize(d)?;
            text.parse()
                .map_err(|e| D::Error::custom(format!("invalid network {text:?}: {e}")))
        }
    }

    pub mod opt_net {
        use super::*;
        use ipnetwork::IpNetwork;

        pub fn serialize<S: Serializer>(net: &Option<IpNetwork>, s: S) -> Result<S::Ok, S::Error> {
            match net {
                Some(net) => s.collect_str(net),
                None => s.serialize_str(""),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNetwork>, D::Error> {
            match Option::<String>::deserialize(d)?.as_deref() {
                None | Some("") => Ok(None),
                Some(text) => text
                    .parse()
                    .map(Some)
                    .map_err(|e| D::Error::custom(format!("invalid network {text:?}: {e}"))),
            }
        }
    }

    pub mod opt_ip {
        use super::*;
        use std::net::IpAddr;

        pub fn serialize<S: Serializer>(ip: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
            match ip {
                Some(ip) => s.collect_str(ip),
                None => s.serialize_str(""),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
            match Option::<String>::deserialize(d)?.as_deref() {
                None | Some("") => Ok(None),
                Some(text) => text
                    .parse()
                    .map(Some)
                    .map_err(|e| D::Error::custom(format!("invalid address {text:?}: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn wire_format_uses_docker_names() {
        let cfg = SubnetConfig {
            subnet: net("172.20.0.0/16"),
            gateway: Some("172.20.0.1".parse().unwrap()),
            ip_range: Some(net("172.20.10.0/24")),
            aux_addresses: [("host1".to_owned(), "172.20.1.5".parse().unwrap())].into(),
        };
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Subnet": "172.20.0.0/16", "Gateway": "172.20.0.1",
                "IPRange": "172.20.10.0/24", "AuxiliaryAddresses": {"host1": "172.20.1.5"}})
        );
        assert_eq!(serde_json::from_value::<SubnetConfig>(json).unwrap(), cfg);

        // Clients send empty strings for "not given".
        let req: PoolRequest = serde_json::from_str(
            r#"{"Subnet":"","Gateway":"","IPRange":"","AuxAddress":{"a":"10.0.0.9"}}"#,
        )
        .unwrap();
        assert_eq!(req.subnet, None);
        assert_eq!(req.gateway, None);
        assert_eq!(req.aux_addresses.len(), 1);
        assert_eq!(
            serde_json::from_str::<PoolRequest>("{}").unwrap(),
            PoolRequest::default()
        );
        assert!(serde_json::from_str::<PoolRequest>(r#"{"Subnet":"10.0.0.0/33"}"#).is_err());

        let pool: AddressPool =
            serde_json::from_str(r#"{"base":"10.10.0.0/16","size":24}"#).unwrap();
        assert_eq!((pool.base, pool.size), (net("10.10.0.0/16"), 24));
    }

    #[test]
    fn docker_config_list_is_sorted_by_family() {
        let v6 = PoolRequest::subnet(net("fd00:1::/64"));
        let v4 = PoolRequest::subnet(net("10.1.0.0/16"));
        let req = NetworkRequest::from_docker(vec![v6.clone(), v4.clone()], true, true).unwrap();
        assert_eq!((req.ipv4, req.ipv6), (vec![v4.clone()], vec![v6.clone()]));

        // Left-out enabled families get a pool-picked subnet.
        let req = NetworkRequest::from_docker(vec![], true, true).unwrap();
        assert_eq!(req.ipv4, vec![PoolRequest::default()]);
        assert_eq!(req.ipv6, vec![PoolRequest::default()]);
        assert_eq!(
            NetworkRequest::from_docker(vec![], true, false).unwrap(),
            NetworkRequest::default_ipv4()
        );
        // IPv6-only network.
        let req = NetworkRequest::from_docker(vec![v6.clone()], false, true).unwrap();
        assert!(req.ipv4.is_empty());

        let err = NetworkRequest::from_docker(vec![v6], true, false).unwrap_err();
        assert!(matches!(
            err,
            IpamError::FamilyNotEnabled {
                family: Family::Ipv6
            }
        ));
        assert_eq!(err.kind(), ErrorKind::Invalid);
        // A gateway alone still tells the family.
        let gw_only = PoolRequest {
            gateway: Some("fd00::1".parse().unwrap()),
            ..PoolRequest::default()
        };
        let req = NetworkRequest::from_docker(vec![gw_only], true, true).unwrap();
        assert_eq!(req.ipv6.len(), 1);
    }
}
