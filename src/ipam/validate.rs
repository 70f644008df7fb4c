//! Pure subnet and address rules: validating a requested subnet into a [`SubnetConfig`],
//! checking a static address, and choosing the next free address. No I/O.
//!
//! Addresses are handled as `u128` (IPv4 in the low 32 bits) so one code path serves both
//! families.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::{Family, IpamError, PoolRequest, SubnetConfig};

/// Longest IPv4 prefix a network may have: network, gateway and broadcast need at least one
/// more address to be useful, so /31 and /32 are refused.
pub const MAX_PREFIX_V4: u8 = 30;
/// Longest IPv6 prefix: subnet-router anycast (`::`) and gateway leave two addresses at /126.
pub const MAX_PREFIX_V6: u8 = 126;

pub(super) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address `n` in `family`; `n` must fit the family.
pub(super) fn from_u128(n: u128, family: Family) -> IpAddr {
    match family {
        // Callers only produce IPv4 numbers inside an IPv4 network, so this never truncates.
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// First and last address of `net`, as numbers.
pub(super) fn bounds(net: &IpNetwork) -> (u128, u128) {
    (to_u128(net.network()), to_u128(net.broadcast()))
}

/// `net` with its host bits cleared.
pub(super) fn canonical(net: &IpNetwork) -> IpNetwork {
    // The prefix is unchanged and was valid, so this cannot fail.
    IpNetwork::new(net.network(), net.prefix()).unwrap_or(*net)
}

/// Whether two networks share any address (never across families).
pub fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    if a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    let ((a0, a1), (b0, b1)) = (bounds(a), bounds(b));
    a0 <= b1 && b0 <= a1
}

/// Whether `inner` lies entirely inside `outer`.
pub(super) fn contains_net(outer: &IpNetwork, inner: &IpNetwork) -> bool {
    outer.is_ipv4() == inner.is_ipv4() && outer.prefix() <= inner.prefix() && {
        let ((o0, o1), (i0, i1)) = (bounds(outer), bounds(inner));
        o0 <= i0 && i1 <= o1
    }
}

/// What `ip` is if it may never be handed out in `subnet`: the network address (IPv4; in IPv6
/// the subnet-router anycast address) or the IPv4 broadcast address.
fn special_address(subnet: &IpNetwork, ip: IpAddr) -> Option<&'static str> {
    if ip == subnet.network() {
        Some(if subnet.is_ipv4() {
            "network address"
        } else {
            "subnet-router anycast address"
        })
    } else if subnet.is_ipv4() && ip == subnet.broadcast() {
        Some("broadcast address")
    } else {
        None
    }
}

/// Validate a request that names its subnet, for `family`, and fill in defaults (gateway = first
/// usable address). Host bits in the subnet or range are refused with the canonical form in
/// the message, rather than silently dropped, since they usually mean a typo.
pub fn validate_subnet(req: &PoolRequest, family: Family) -> Result<SubnetConfig, IpamError> {
    let Some(subnet) = req.subnet else {
        return Err(IpamError::SubnetRequired { field: "subnet" });
    };
    if Family::of_net(&subnet) != family {
        return Err(IpamError::WrongFamily { subnet, family });
    }
    let canon = canonical(&subnet);
    if canon != subnet {
        return Err(IpamError::SubnetNotCanonical {
            given: subnet,
            canonical: canon,
        });
    }
    let max_prefix = match family {
        Family::Ipv4 => MAX_PREFIX_V4,
        Family::Ipv6 => MAX_PREFIX_V6,
    };
    if subnet.prefix() > max_prefix {
        return Err(IpamError::SubnetTooSmall {
            subnet,
            family,
            max_prefix,
        });
    }

    if let Some(range) = req.ip_range {
        let canon = canonical(&range);
        if canon != range {
            return Err(IpamError::RangeNotCanonical {
                range,
                canonical: canon,
            });
        }
        if !contains_net(&subnet, &range) {
            return Err(IpamError::RangeOutsideSubnet { range, subnet });
        }
    }

    let gateway = match req.gateway {
        Some(gateway) => {
            if !subnet.contains(gateway) {
                return Err(IpamError::GatewayOutsideSubnet { gateway, subnet });
            }
            if let Some(what) = special_address(&subnet, gateway) {
                return Err(IpamError::GatewayReserved {
                    gateway,
                    subnet,
                    what,
                });
            }
            gateway
        }
        None => from_u128(bounds(&subnet).0 + 1, family),
    };

    for (name, &ip) in &req.aux_addresses {
        if !subnet.contains(ip) {
            return Err(IpamError::AuxAddressOutsideSubnet {
                name: name.clone(),
                ip,
                subnet,
            });
        }
        if let Some(what) = special_address(&subnet, ip) {
            return Err(IpamError::AuxAddressReserved {
                name: name.clone(),
                ip,
                subnet,
                what,
            });
        }
    }

    Ok(SubnetConfig {
        subnet,
        gateway: Some(gateway),
        ip_range: req.ip_range,
        aux_addresses: req.aux_addresses.clone(),
    })
}

/// What `ip` is if `cfg` keeps it from containers: network/broadcast, gateway, or an auxiliary
/// address.
fn reserved_in(cfg: &SubnetConfig, ip: IpAddr) -> Option<String> {
    if let Some(what) = special_address(&cfg.subnet, ip) {
        return Some(what.to_owned());
    }
    if cfg.gateway == Some(ip) {
        return Some("gateway".to_owned());
    }
    cfg.aux_addresses
        .iter()
        .find(|(_, &aux)| aux == ip)
        .map(|(name, _)| format!("auxiliary address {name}"))
}

/// Check a user-chosen (static) address against `cfg` and the addresses already `taken`
/// (address → owner). As in Docker (libnetwork's ErrIPOutOfRange), a static address must lie in
/// the subnet and, when the network has one, in its `ip_range`.
pub fn check_address(
    cfg: &SubnetConfig,
    ip: IpAddr,
    taken: &impl AddressOwners,
) -> Result<(), IpamError> {
    if !cfg.subnet.contains(ip) {
        return Err(IpamError::AddressOutsideSubnet {
            ip,
            subnet: cfg.subnet,
        });
    }
    if let Some(what) = reserved_in(cfg, ip) {
        return Err(IpamError::AddressReserved {
            ip,
            subnet: cfg.subnet,
            what,
        });
    }
    if let Some(range) = cfg.ip_range.filter(|r| !r.contains(ip)) {
        return Err(IpamError::AddressOutsideRange { ip, range });
    }
    if let Some(owner) = taken.owner(ip)? {
        return Err(IpamError::AddressInUse { ip, owner });
    }
    Ok(())
}

/// Who holds an address, if anyone. A map serves pure planning and tests; the allocator looks
/// addresses up in the store one by one, so an allocation costs a few key reads however many
/// addresses the network already holds.
pub trait AddressOwners {
    fn owner(&self, ip: IpAddr) -> Result<Option<String>, IpamError>;
}

impl AddressOwners for BTreeMap<IpAddr, String> {
    fn owner(&self, ip: IpAddr) -> Result<Option<String>, IpamError> {
        Ok(self.get(&ip).cloned())
    }
}

/// The next free address of `cfg.ip_range` (or the whole subnet) after `cursor`, wrapping
/// around once. Starting after the last address handed out, rather than at the lowest free one,
/// keeps a just-released address (stale in peers' ARP caches and DNS) unused for as long as
/// possible, like Docker.
pub fn next_free_address(
    cfg: &SubnetConfig,
    cursor: Option<IpAddr>,
    taken: &impl AddressOwners,
) -> Result<IpAddr, IpamError> {
    let family = Family::of_net(&cfg.subnet);
    let range = cfg.ip_range.unwrap_or(cfg.subnet);
    let (lo, hi) = bounds(&range);
    let start = cursor
        .filter(|c| Family::of_ip(c) == family)
        .map(to_u128)
        .filter(|&c| lo <= c && c < hi)
        .map_or(lo, |c| c + 1);
    // Each step skips one taken or reserved address, so this ends after at most
    // |taken| + |reserved| + 1 steps unless the range is full.
    for ip in (start..=hi).chain(lo..start).map(|n| from_u128(n, family)) {
        if reserved_in(cfg, ip).is_none() && taken.owner(ip)?.is_none() {
            return Ok(ip);
        }
    }
    Err(IpamError::AddressesExhausted { range })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn req(subnet: &str) -> PoolRequest {
        PoolRequest::subnet(net(subnet))
    }

    fn v4(r: PoolRequest) -> Result<SubnetConfig, IpamError> {
        validate_subnet(&r, Family::Ipv4)
    }

    #[test]
    fn overlap_and_containment() {
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.2.0/24")));
        assert!(overlaps(&net("10.1.2.0/24"), &net("10.0.0.0/8")));
        assert!(overlaps(&net("10.0.0.0/24"), &net("10.0.0.0/24")));
        assert!(!overlaps(&net("10.0.0.0/24"), &net("10.0.1.0/24")));
        assert!(!overlaps(&net("10.0.0.0/8"), &net("::/0")));
        assert!(overlaps(&net("fd00::/8"), &net("fd00:1::/64")));
        assert!(contains_net(&net("10.0.0.0/8"), &net("10.255.0.0/16")));
        assert!(!contains_net(&net("10.0.0.0/16"), &net("10.0.0.0/8")));
        assert!(!contains_net(&net("10.0.0.0/16"), &net("10.1.0.0/24")));
    }

    #[test]
    fn valid_subnet_gets_first_usable_gateway() {
        let cfg = v4(req("172.18.0.0/16")).unwrap();
        assert_eq!(cfg.gateway, Some(ip("172.18.0.1")));
        assert_eq!(cfg.ip_range, None);
        let cfg = v4(req("10.0.0.0/30")).unwrap();
        assert_eq!(cfg.gateway, Some(ip("10.0.0.1")));
        let cfg = validate_subnet(&req("fd00::/64"), Family::Ipv6).unwrap();
        assert_eq!(cfg.gateway, Some(ip("fd00::1")));
        let cfg = validate_subnet(&req("2001:db8:1::/48"), Family::Ipv6).unwrap();
        assert_eq!(cfg.gateway, Some(ip("2001:db8:1::1")));
    }

    #[test]
    fn validation_matrix() {
        type Case = (&'static str, PoolRequest, Family, fn(&IpamError) -> bool);
        let with = |subnet: &str, f: fn(&mut PoolRequest)| {
            let mut r = req(subnet);
            f(&mut r);
            r
        };
        let cases: Vec<Case> = vec![
            (
                "host bits",
                req("172.18.0.1/16"),
                Family::Ipv4,
                |e| matches!(e, IpamError::SubnetNotCanonical { canonical, .. } if *canonical == "172.18.0.0/16".parse::<IpNetwork>().unwrap()),
            ),
            ("v6 host bits", req("fd00::5/64"), Family::Ipv6, |e| {
                matches!(e, IpamError::SubnetNotCanonical { .. })
            }),
            ("/31", req("10.0.0.0/31"), Family::Ipv4, |e| {
                matches!(e, IpamError::SubnetTooSmall { max_prefix: 30, .. })
            }),
            ("/32", req("10.0.0.1/32"), Family::Ipv4, |e| {
                matches!(e, IpamError::SubnetTooSmall { .. })
            }),
            ("v6 /127", req("fd00::/127"), Family::Ipv6, |e| {
                matches!(
                    e,
                    IpamError::SubnetTooSmall {
                        max_prefix: 126,
                        ..
                    }
                )
            }),
            ("v6 subnet as v4", req("fd00::/64"), Family::Ipv4, |e| {
                matches!(e, IpamError::WrongFamily { .. })
            }),
            ("v4 subnet as v6", req("10.0.0.0/8"), Family::Ipv6, |e| {
                matches!(e, IpamError::WrongFamily { .. })
            }),
            ("no subnet", PoolRequest::default(), Family::Ipv4, |e| {
                matches!(e, IpamError::SubnetRequired { .. })
            }),
            (
                "gateway outside",
                with("10.1.0.0/16", |r| {
                    r.gateway = Some("10.2.0.1".parse().unwrap())
                }),
                Family::Ipv4,
                |e| matches!(e, IpamError::GatewayOutsideSubnet { .. }),
            ),
            (
                "gateway other family",
                with("10.1.0.0/16", |r| {
                    r.gateway = Some("fd00::1".parse().unwrap())
                }),
                Family::Ipv4,
                |e| matches!(e, IpamError::GatewayOutsideSubnet { .. }),
            ),
            (
                "gateway = network",
                with("10.1.0.0/16", |r| {
                    r.gateway = Some("10.1.0.0".parse().unwrap())
                }),
                Family::Ipv4,
                |e| {
                    matches!(
                        e,
                        IpamError::GatewayReserved {
                            what: "network address",
                            ..
                        }
                    )
                },
            ),
            (
                "gateway = broadcast",
                with("10.1.0.0/16", |r| {
                    r.gateway = Some("10.1.255.255".parse().unwrap())
                }),
                Family::Ipv4,
                |e| {
                    matches!(
                        e,
                        IpamError::GatewayReserved {
                            what: "broadcast address",
                            ..
                        }
                    )
                },
            ),
            (
                "v6 gateway = anycast",
                with("fd00::/64", |r| r.gateway = Some("fd00::".parse().unwrap())),
                Family::Ipv6,
                |e| matches!(e, IpamError::GatewayReserved { .. }),
            ),
            (
                "range outside",
                with("10.1.0.0/16", |r| {
                    r.ip_range = Some("10.2.0.0/24".parse().unwrap())
                }),
                Family::Ipv4,
                |e| matches!(e, IpamError::RangeOutsideSubnet { .. }),
            ),
            (
                "range larger",
                with("10.1.0.0/16", |r| {
                    r.ip_range = Some("10.0.0.0/8".parse().unwrap())
                }),
                Family::Ipv4,
                |e| matches!(e, IpamError::RangeOutsideSubnet { .. }),
            ),
            (
                "range host bits",
                with("10.1.0.0/16", |r| {
                    r.ip_range = Some("10.1.5.1/24".parse().unwrap())
                }),
                Family::Ipv4,
                |e| matches!(e, IpamError::RangeNotCanonical { .. }),
            ),
            (
                "aux outside",
                with("10.1.0.0/16", |r| {
                    r.aux_addresses
                        .insert("h".into(), "10.9.0.1".parse().unwrap());
                }),
                Family::Ipv4,
                |e| matches!(e, IpamError::AuxAddressOutsideSubnet { name, .. } if name == "h"),
            ),
            (
                "aux broadcast",
                with("10.1.0.0/16", |r| {
                    r.aux_addresses
                        .insert("h".into(), "10.1.255.255".parse().unwrap());
                }),
                Family::Ipv4,
                |e| matches!(e, IpamError::AuxAddressReserved { .. }),
            ),
        ];
        for (name, r, family, expected) in cases {
            match validate_subnet(&r, family) {
                Ok(cfg) => panic!("{name}: accepted as {cfg:?}"),
                Err(e) => {
                    assert!(expected(&e), "{name}: wrong error {e:?}");
                    assert_eq!(e.kind(), ErrorKind::Invalid, "{name}");
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn full_request_is_kept() {
        let mut r = req("172.28.0.0/16");
        r.gateway = Some(ip("172.28.5.254"));
        r.ip_range = Some(net("172.28.5.0/24"));
        r.aux_addresses.insert("host1".into(), ip("172.28.1.5"));
        let cfg = v4(r.clone()).unwrap();
        assert_eq!(cfg.gateway, r.gateway);
        assert_eq!(cfg.ip_range, r.ip_range);
        assert_eq!(cfg.aux_addresses, r.aux_addresses);
        // The range may be the whole subnet.
        let mut r = req("10.0.0.0/24");
        r.ip_range = Some(net("10.0.0.0/24"));
        v4(r).unwrap();
    }

    #[test]
    fn error_messages_name_the_fix() {
        let e = v4(req("172.18.0.1/16")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "subnet 172.18.0.1/16 has host bits set; use 172.18.0.0/16"
        );
        let e = v4(req("10.0.0.0/31")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "subnet 10.0.0.0/31 is too small: IPv4 networks need a prefix of /30 or shorter"
        );
    }

    fn cfg(subnet: &str) -> SubnetConfig {
        v4(req(subnet)).unwrap()
    }

    fn taken(ips: &[&str]) -> BTreeMap<IpAddr, String> {
        ips.iter().map(|s| (ip(s), format!("ep-{s}"))).collect()
    }

    #[test]
    fn static_address_checks() {
        let mut c = cfg("10.0.0.0/24");
        c.ip_range = Some(net("10.0.0.128/25"));
        c.aux_addresses.insert("router".into(), ip("10.0.0.200"));
        let t = taken(&["10.0.0.140"]);
        assert!(matches!(
            check_address(&c, ip("10.0.0.5"), &t),
            Err(IpamError::AddressOutsideRange { .. })
        ));
        assert!(check_address(&c, ip("10.0.0.130"), &t).is_ok());
        let err = |s: &str| check_address(&c, ip(s), &t).unwrap_err();
        assert!(matches!(
            err("10.0.1.5"),
            IpamError::AddressOutsideSubnet { .. }
        ));
        assert!(matches!(
            err("fd00::5"),
            IpamError::AddressOutsideSubnet { .. }
        ));
        assert!(
            matches!(err("10.0.0.0"), IpamError::AddressReserved { what, .. } if what == "network address")
        );
        assert!(
            matches!(err("10.0.0.255"), IpamError::AddressReserved { what, .. } if what == "broadcast address")
        );
        assert!(
            matches!(err("10.0.0.1"), IpamError::AddressReserved { what, .. } if what == "gateway")
        );
        assert!(
            matches!(err("10.0.0.200"), IpamError::AddressReserved { what, .. } if what == "auxiliary address router")
        );
        let e = err("10.0.0.140");
        assert!(matches!(&e, IpamError::AddressInUse { owner, .. } if owner == "ep-10.0.0.140"));
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn next_free_skips_reserved_and_taken_and_follows_cursor() {
        let c = cfg("10.0.0.0/29"); // .1 gateway, .2-.6 usable, .7 broadcast
        let none = BTreeMap::new();
        assert_eq!(next_free_address(&c, None, &none).unwrap(), ip("10.0.0.2"));
        assert_eq!(
            next_free_address(&c, Some(ip("10.0.0.2")), &none).unwrap(),
            ip("10.0.0.3")
        );
        // Cursor at the end wraps around, skipping network and gateway.
        assert_eq!(
            next_free_address(&c, Some(ip("10.0.0.6")), &none).unwrap(),
            ip("10.0.0.2")
        );
        // A released address below the cursor is not reused before the rest.
        let t = taken(&["10.0.0.2", "10.0.0.4"]);
        assert_eq!(
            next_free_address(&c, Some(ip("10.0.0.4")), &t).unwrap(),
            ip("10.0.0.5")
        );
        let t = taken(&["10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"]);
        assert_eq!(
            next_free_address(&c, Some(ip("10.0.0.6")), &t).unwrap(),
            ip("10.0.0.4")
        );
        // Cursor outside the range (e.g. range changed) restarts at the range start.
        assert_eq!(
            next_free_address(&c, Some(ip("192.168.0.1")), &none).unwrap(),
            ip("10.0.0.2")
        );
        let full = taken(&["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        let e = next_free_address(&c, Some(ip("10.0.0.3")), &full).unwrap_err();
        assert!(matches!(e, IpamError::AddressesExhausted { .. }));
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn next_free_respects_ip_range_and_aux() {
        let mut c = cfg("10.0.0.0/24");
        c.ip_range = Some(net("10.0.0.16/30"));
        c.aux_addresses.insert("x".into(), ip("10.0.0.17"));
        let none = BTreeMap::new();
        assert_eq!(next_free_address(&c, None, &none).unwrap(), ip("10.0.0.16"));
        assert_eq!(
            next_free_address(&c, Some(ip("10.0.0.16")), &none).unwrap(),
            ip("10.0.0.18")
        );
        assert_eq!(
            next_free_address(&c, Some(ip("10.0.0.19")), &none).unwrap(),
            ip("10.0.0.16")
        );
        let t = taken(&["10.0.0.16", "10.0.0.18", "10.0.0.19"]);
        assert!(next_free_address(&c, None, &t).is_err());
    }

    #[test]
    fn next_free_v6() {
        let c = validate_subnet(&req("fd00:1::/64"), Family::Ipv6).unwrap();
        let none = BTreeMap::new();
        assert_eq!(next_free_address(&c, None, &none).unwrap(), ip("fd00:1::2"));
        let last = ip("fd00:1::ffff:ffff:ffff:ffff");
        // No broadcast in IPv6: the last address is usable, then wrap.
        assert_eq!(
            next_free_address(&c, Some(ip("fd00:1::ffff:ffff:ffff:fffe")), &none).unwrap(),
            last
        );
        assert_eq!(
            next_free_address(&c, Some(last), &none).unwrap(),
            ip("fd00:1::2")
        );
        assert!(check_address(&c, last, &none).is_ok());
    }
}
