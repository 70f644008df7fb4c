//! Address pools: Docker's defaults, the default bridge's request (`bip` / `fixed-cidr`), and
//! the walk that picks the first free block of a pool. Pure logic.

use ipnetwork::IpNetwork;

use super::validate::{bounds, canonical, from_u128, overlaps};
use super::{AddressPool, Family, IpamError, PoolRequest};

/// The built-in `bridge` network's subnet unless `bip` says otherwise.
pub const DEFAULT_BRIDGE_SUBNET: &str = "172.17.0.0/16";

fn pool(base: &str, size: u8) -> AddressPool {
    AddressPool {
        // Literals below are valid networks.
        base: base
            .parse()
            .unwrap_or_else(|_| unreachable!("bad literal {base}")),
        size,
    }
}

/// Pools for user-defined networks: `configured` (daemon.json `default-address-pools`) replaces
/// Docker's defaults, 172.18.0.0/16 … 172.31.0.0/16 as /16s, then 192.168.0.0/16 as /20s.
pub fn user_network_pools(configured: &[AddressPool]) -> Vec<AddressPool> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let mut pools: Vec<AddressPool> = (18..=31)
        .map(|b| pool(&format!("172.{b}.0.0/16"), 16))
        .collect();
    pools.push(pool("192.168.0.0/16", 20));
    pools
}

/// Pools the default bridge picks from when no `bip` is set: 172.17.0.0/16 first, then the user
/// pools (so a host route over 172.17/16 moves it, as in Docker). Configured pools replace all.
pub fn default_bridge_pools(configured: &[AddressPool]) -> Vec<AddressPool> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let mut pools = vec![pool(DEFAULT_BRIDGE_SUBNET, 16)];
    pools.extend(user_network_pools(&[]));
    pools
}

/// The default bridge's IPv4 request from daemon options. `bip` is the bridge's own address
/// with the prefix (`172.17.0.1/16`): its network is the subnet and its address the gateway.
/// `fixed-cidr` restricts container addresses (the ip_range); without `bip` it must lie in
/// 172.17.0.0/16. Without either, the subnet is picked from [`default_bridge_pools`].
pub fn default_bridge_request(
    bip: Option<IpNetwork>,
    fixed_cidr: Option<IpNetwork>,
) -> Result<PoolRequest, IpamError> {
    for net in bip.iter().chain(fixed_cidr.iter()) {
        if !net.is_ipv4() {
            return Err(IpamError::WrongFamily {
                subnet: *net,
                family: Family::Ipv4,
            });
        }
    }
    let (subnet, gateway) = match (bip, fixed_cidr) {
        (Some(bip), _) => (Some(canonical(&bip)), Some(bip.ip())),
        (None, Some(_)) => (Some(pool(DEFAULT_BRIDGE_SUBNET, 16).base), None),
        (None, None) => (None, None),
    };
    Ok(PoolRequest {
        subnet,
        gateway,
        ip_range: fixed_cidr,
        aux_addresses: Default::default(),
    })
}

/// The first `/size` block of `pools` (in order, `family` only) that overlaps none of
/// `blockers` (existing subnets, host routes). Jumps past each blocker instead of stepping block
/// by block, so the cost is O(pools × blockers) even for IPv6 pools of 2^56 blocks.
pub fn pick_subnet(
    pools: &[AddressPool],
    family: Family,
    blockers: &[IpNetwork],
) -> Result<IpNetwork, IpamError> {
    let mut any = false;
    for p in pools.iter().filter(|p| Family::of_net(&p.base) == family) {
        any = true;
        let bits: u8 = match family {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        };
        let invalid = |reason| IpamError::InvalidPool {
            base: p.base,
            size: p.size,
            reason,
        };
        if canonical(&p.base) != p.base {
            return Err(invalid("base has host bits set"));
        }
        if p.size < p.base.prefix() || p.size > bits {
            return Err(invalid(
                "size must be between the base prefix and the address length",
            ));
        }
        let step = 1u128
            .checked_shl(u32::from(bits - p.size))
            .filter(|_| p.size > 0)
            .ok_or_else(|| invalid("size /0 is not a usable subnet"))?;
        let (lo, hi) = bounds(&p.base);
        let mut start = lo;
        while let Some(end) = start.checked_add(step - 1).filter(|&e| e <= hi) {
            let candidate = IpNetwork::new(from_u128(start, family), p.size).map_err(|_| {
                invalid("size must be between the base prefix and the address length")
            })?;
            let blocker_end = blockers
                .iter()
                .filter(|b| overlaps(b, &candidate))
                .map(|b| bounds(b).1)
                .max();
            let Some(blocker_end) = blocker_end else {
                return Ok(candidate);
            };
            // Next block boundary after the furthest-reaching blocker.
            let next = blocker_end.max(end) / step * step;
            match next.checked_add(step) {
                Some(n) => start = n,
                None => break,
            }
        }
    }
    if any {
        Err(IpamError::PoolExhausted { family })
    } else {
        Err(IpamError::NoPool { family })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn pick(pools: &[AddressPool], blockers: &[&str]) -> Result<IpNetwork, IpamError> {
        let blockers: Vec<IpNetwork> = blockers.iter().map(|b| net(b)).collect();
        pick_subnet(pools, Family::Ipv4, &blockers)
    }

    #[test]
    fn docker_default_pools() {
        let pools = user_network_pools(&[]);
        assert_eq!(pools.first().unwrap().base, net("172.18.0.0/16"));
        assert_eq!(pools.len(), 15);
        assert_eq!(*pools.last().unwrap(), pool("192.168.0.0/16", 20));
        assert_eq!(default_bridge_pools(&[])[0].base, net("172.17.0.0/16"));
        let custom = [pool("10.10.0.0/16", 24)];
        assert_eq!(user_network_pools(&custom), custom);
        assert_eq!(default_bridge_pools(&custom), custom);
    }

    #[test]
    fn pool_walk_skips_used_subnets_and_host_routes() {
        let pools = user_network_pools(&[]);
        assert_eq!(pick(&pools, &[]).unwrap(), net("172.18.0.0/16"));
        // Existing network, a host route inside 172.19, and the default bridge.
        let got = pick(&pools, &["172.17.0.0/16", "172.18.0.0/16", "172.19.3.0/24"]).unwrap();
        assert_eq!(got, net("172.20.0.0/16"));
        // A wide route covering several pool blocks is skipped in one jump.
        assert_eq!(
            pick(&pools, &["172.16.0.0/12"]).unwrap(),
            net("192.168.0.0/20")
        );
        assert_eq!(
            pick(
                &pools,
                &["172.16.0.0/12", "192.168.0.0/20", "192.168.16.0/24"]
            )
            .unwrap(),
            net("192.168.32.0/20")
        );
        // IPv6 blockers do not affect IPv4 picks.
        assert_eq!(pick(&pools, &["::/0"]).unwrap(), net("172.18.0.0/16"));
    }

    #[test]
    fn pool_exhaustion_and_no_pool() {
        let pools = user_network_pools(&[]);
        let e = pick(&pools, &["172.16.0.0/12", "192.168.0.0/16"]).unwrap_err();
        assert!(matches!(
            e,
            IpamError::PoolExhausted {
                family: Family::Ipv4
            }
        ));
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e = pick_subnet(&pools, Family::Ipv6, &[]).unwrap_err();
        assert!(matches!(
            e,
            IpamError::NoPool {
                family: Family::Ipv6
            }
        ));
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn small_custom_pool_is_walked_block_by_block() {
        let pools = [pool("10.10.0.0/22", 24)];
        assert_eq!(
            pick(&pools, &["10.10.0.0/24", "10.10.1.0/24"]).unwrap(),
            net("10.10.2.0/24")
        );
        assert_eq!(
            pick(&pools, &["10.10.1.0/24"]).unwrap(),
            net("10.10.0.0/24")
        );
        assert_eq!(
            pick(&pools, &["10.10.0.0/23", "10.10.2.128/25"]).unwrap(),
            net("10.10.3.0/24")
        );
        assert!(pick(&pools, &["10.10.0.0/23", "10.10.2.128/25", "10.10.3.3/32"]).is_err());
        // A pool whose size equals its prefix is one block.
        assert_eq!(
            pick(&[pool("10.20.0.0/16", 16)], &[]).unwrap(),
            net("10.20.0.0/16")
        );
    }

    #[test]
    fn invalid_pools_are_refused() {
        for (p, reason) in [
            (pool("10.10.0.1/16", 24), "host bits"),
            (pool("10.10.0.0/16", 8), "size"),
            (pool("10.10.0.0/16", 33), "size"),
        ] {
            let e = pick(&[p], &[]).unwrap_err();
            assert!(
                matches!(&e, IpamError::InvalidPool { reason: r, .. } if r.contains(reason)),
                "{e:?}"
            );
        }
    }

    #[test]
    fn v6_pools() {
        let pools = [pool("fd00::/8", 64), pool("10.0.0.0/8", 24)];
        let blockers = [net("fd00::/64"), net("fd00:0:0:1::/80")];
        assert_eq!(
            pick_subnet(&pools, Family::Ipv6, &blockers).unwrap(),
            net("fd00:0:0:2::/64")
        );
        // A /8 of /64s is 2^56 blocks: blocking the first /16 of it must still be instant.
        let blockers = [net("fd00::/16")];
        assert_eq!(
            pick_subnet(&pools, Family::Ipv6, &blockers).unwrap(),
            net("fd01::/64")
        );
        // The very top of the address space does not overflow.
        let top = [pool("ffff:ffff:ffff:ffff::/64", 64)];
        assert!(pick_subnet(&top, Family::Ipv6, &[net("ffff:ffff:ffff:ffff::/64")]).is_err());
        assert!(pick_subnet(&top, Family::Ipv6, &[]).is_ok());
    }

    #[test]
    fn default_bridge_from_daemon_options() {
        let r = default_bridge_request(None, None).unwrap();
        assert_eq!(r, PoolRequest::default());
        let r = default_bridge_request(Some(net("10.5.0.1/16")), None).unwrap();
        assert_eq!(r.subnet, Some(net("10.5.0.0/16")));
        assert_eq!(r.gateway, Some("10.5.0.1".parse().unwrap()));
        let r = default_bridge_request(Some(net("10.5.0.1/16")), Some(net("10.5.8.0/24"))).unwrap();
        assert_eq!(r.ip_range, Some(net("10.5.8.0/24")));
        let r = default_bridge_request(None, Some(net("172.17.1.0/24"))).unwrap();
        assert_eq!(r.subnet, Some(net("172.17.0.0/16")));
        assert_eq!(r.gateway, None);
        assert!(default_bridge_request(Some(net("fd00::1/64")), None).is_err());
        // A bip naming the network address fails later, in validation, as a reserved gateway.
        let r = default_bridge_request(Some(net("10.5.0.0/16")), None).unwrap();
        assert!(matches!(
            super::super::validate_subnet(&r, Family::Ipv4),
            Err(IpamError::GatewayReserved { .. })
        ));
    }
}
