//! Store-backed IPAM: reads reservations from a [`Store`] and *plans* changes as a [`Txn`] that
//! the caller merges with its own writes and commits once (see [`commit_with_retry`]).
//!
//! Address spaces: a network's reservations live in its own scope (Docker's local and global
//! address spaces), so they commit together with the network's records and never in a
//! transaction spanning two stores. Local networks (bridge, macvlan) reserve on this host only —
//! every host has its own `bridge` on 172.17.0.0/16 — and global ones (overlay) cluster-wide.
//! A new subnet must not overlap any reservation of either scope on this host; the epoch
//! compare below serialises planners within one scope.
//!
//! Exclusivity comes from compares, so it holds across threads, processes and hosts alike:
//! - an address is one key `ipam/addrs/<network>/<ip>` created under an `Absent` compare;
//! - a subnet is one key `ipam/subnets/<subnet>`, but equal keys only catch *equal* subnets. To
//!   catch overlap (10.0.0.0/16 vs 10.0.1.0/24) atomically, every subnet reservation also
//!   rewrites `ipam/subnet-epoch` under a compare on the revision the planner read *before*
//!   listing reservations. Two concurrent planners therefore cannot both commit: the second
//!   fails its compare, re-plans, and sees the first one's subnet. Network creation is rare, so
//!   serialising it costs nothing. Releases need no epoch bump: freeing a subnet cannot create
//!   an overlap.
//!
//! [`commit_with_retry`]: crate::store::commit_with_retry

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::pools::pick_subnet;
use super::validate::{check_address, next_free_address, overlaps, validate_subnet, AddressOwners};
use super::{AddressPool, Family, IpamError, NetworkRequest, PoolRequest, SubnetConfig};
use crate::store::{Compare, Key, Scope, Store, StoreExt, Txn};

const EPOCH: &str = "ipam/subnet-epoch";
const SUBNETS: &str = "ipam/subnets/";

/// Who holds a subnet: the value of `ipam/subnets/<subnet>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetReservation {
    pub network_id: String,
    pub config: SubnetConfig,
}

/// Who holds an address: the value of `ipam/addrs/<network>/<ip>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    pub endpoint_id: String,
}

/// A subnet as one path segment: `/` would split it, so `10.0.0.0/16` → `10.0.0.0_16`.
fn subnet_segment(subnet: &IpNetwork) -> String {
    format!("{}_{}", subnet.network(), subnet.prefix())
}

fn subnet_key(scope: Scope, subnet: &IpNetwork) -> Result<Key, IpamError> {
    Ok(Key::new(
        scope,
        format!("{SUBNETS}{}", subnet_segment(subnet)),
    )?)
}

fn addrs_prefix(network_id: &str) -> String {
    format!("ipam/addrs/{network_id}/")
}

fn addr_key(scope: Scope, network_id: &str, ip: IpAddr) -> Result<Key, IpamError> {
    Ok(Key::new(
        scope,
        format!("{}{ip}", addrs_prefix(network_id)),
    )?)
}

fn cursors_prefix(network_id: &str) -> String {
    format!("ipam/cursors/{network_id}/")
}

fn cursor_key(scope: Scope, network_id: &str, subnet: &IpNetwork) -> Result<Key, IpamError> {
    Ok(Key::new(
        scope,
        format!("{}{}", cursors_prefix(network_id), subnet_segment(subnet)),
    )?)
}

/// Check the id before it becomes part of a path: an id with `/` would reach into another
/// network's keys.
fn check_id(id: &str) -> Result<(), IpamError> {
    Key::global(id)?; // non-empty, printable
    if id.contains('/') {
        return Err(crate::store::StoreError::InvalidPath {
            path: id.to_owned(),
            reason: "'/' in an id",
        }
        .into());
    }
    Ok(())
}

/// Every subnet reservation of `scope`: (reservation, subnet key revision).
pub fn reservations(
    store: &dyn Store,
    scope: Scope,
) -> Result<Vec<(SubnetReservation, u64)>, IpamError> {
    Ok(store
        .list_json::<SubnetReservation>(scope, SUBNETS)?
        .into_iter()
        .map(|(_, r, rev)| (r, rev))
        .collect())
}

/// Every address held in `network_id`: address → endpoint id.
pub fn addresses(
    store: &dyn Store,
    scope: Scope,
    network_id: &str,
) -> Result<BTreeMap<IpAddr, String>, IpamError> {
    check_id(network_id)?;
    let mut out = BTreeMap::new();
    for (key, record, _) in store.list_json::<AddressRecord>(scope, &addrs_prefix(network_id))? {
        let ip = key
            .name()
            .parse()
            .map_err(|_| crate::store::StoreError::Corrupt {
                what: format!("address key {key} does not end in an address"),
            })?;
        out.insert(ip, record.endpoint_id);
    }
    Ok(out)
}

/// Plan the subnets of a new network: validate requested subnets, pick free ones from `pools`
/// for the rest, and refuse (requested) or skip (picked) anything overlapping another network's
/// subnet or one of `host_routes` (default routes, prefix 0, are ignored: they overlap
/// everything). Requested subnets are placed first so picks avoid them. Returns the resolved
/// configs (IPv4 first) and the reservation writes.
pub fn plan_network(
    store: &dyn Store,
    scope: Scope,
    network_id: &str,
    request: &NetworkRequest,
    pools: &[AddressPool],
    host_routes: &[IpNetwork],
) -> Result<(Vec<SubnetConfig>, Txn), IpamError> {
    check_id(network_id)?;
    // Read the epoch before listing: any reservation committed after this read changes the
    // epoch, so our compare on it fails and we re-plan (see the module comment).
    let epoch = Key::new(scope, EPOCH)?;
    let epoch_guard = match store.get(&epoch)? {
        Some(e) => Compare::Revision(epoch.clone(), e.revision),
        None => Compare::Absent(epoch.clone()),
    };
    // Both address spaces: a local and a global network on one host must not overlap either.
    let mut existing = reservations(store, Scope::Local)?;
    existing.extend(reservations(store, Scope::Global)?);
    let routes: Vec<IpNetwork> = host_routes
        .iter()
        .filter(|r| r.prefix() > 0)
        .copied()
        .collect();

    // (subnet, owner) of everything a new subnet must not overlap; grows as we resolve.
    let mut taken: Vec<(IpNetwork, String)> = existing
        .iter()
        .map(|(r, _)| (r.config.subnet, r.network_id.clone()))
        .collect();
    let mut resolved: Vec<(usize, SubnetConfig)> = Vec::new();
    let families = [(Family::Ipv4, &request.ipv4), (Family::Ipv6, &request.ipv6)];
    let ordered = families
        .iter()
        .flat_map(|(family, reqs)| reqs.iter().map(move |r| (*family, r)))
        .enumerate();

    let (given, picked): (Vec<_>, Vec<_>) = ordered.partition(|(_, (_, r))| r.subnet.is_some());
    for (i, (family, req)) in given {
        let cfg = validate_subnet(req, family)?;
        if let Some((other, owner)) = taken.iter().find(|(s, _)| overlaps(s, &cfg.subnet)) {
            return Err(IpamError::SubnetOverlap {
                subnet: cfg.subnet,
                other: *other,
                owner: owner.clone(),
            });
        }
        if let Some(route) = routes.iter().find(|r| overlaps(r, &cfg.subnet)) {
            return Err(IpamError::SubnetOverlapsRoute {
                subnet: cfg.subnet,
                route: *route,
            });
        }
        taken.push((cfg.subnet, network_id.to_owned()));
        resolved.push((i, cfg));
    }
    for (i, (family, req)) in picked {
        if req.gateway.is_some() {
            return Err(IpamError::SubnetRequired { field: "gateway" });
        }
        if req.ip_range.is_some() {
            return Err(IpamError::SubnetRequired { field: "ip_range" });
        }
        if !req.aux_addresses.is_empty() {
            return Err(IpamError::SubnetRequired {
                field: "aux_addresses",
            });
        }
        let blockers: Vec<IpNetwork> = taken
            .iter()
            .map(|(s, _)| *s)
            .chain(routes.iter().copied())
            .collect();
        let subnet = pick_subnet(pools, family, &blockers)?;
        let cfg = validate_subnet(&PoolRequest::subnet(subnet), family)?;
        taken.push((cfg.subnet, network_id.to_owned()));
        resolved.push((i, cfg));
    }
    resolved.sort_by_key(|(i, _)| *i);
    let configs: Vec<SubnetConfig> = resolved.into_iter().map(|(_, c)| c).collect();

    let mut txn = Txn::new().compare(epoch_guard);
    if !configs.is_empty() {
        txn = txn.put_json(epoch, network_id)?;
    }
    for cfg in &configs {
        let reservation = SubnetReservation {
            network_id: network_id.to_owned(),
            config: cfg.clone(),
        };
        txn = txn.create_json(subnet_key(scope, &cfg.subnet)?, &reservation)?;
    }
    Ok((configs, txn))
}

/// Plan removing every reservation of `network_id`: its subnets, any addresses still held in
/// it, and its allocation cursors.
pub fn plan_release_network(
    store: &dyn Store,
    scope: Scope,
    network_id: &str,
) -> Result<Txn, IpamError> {
    check_id(network_id)?;
    let mut txn = Txn::new();
    for (key, r, _) in store.list_json::<SubnetReservation>(scope, SUBNETS)? {
        if r.network_id == network_id {
            txn = txn.delete(key);
        }
    }
    for prefix in [addrs_prefix(network_id), cursors_prefix(network_id)] {
        for entry in store.list(scope, &prefix)?.entries {
            txn = txn.delete(entry.key);
        }
    }
    Ok(txn)
}

/// Plan an address for `endpoint_id` in `network_id`'s subnet `subnet`: `requested` if given
/// and free, otherwise the next free address after the subnet's cursor. The plan fails to
/// commit if another allocation took the address meanwhile (Absent compare) or the subnet was
/// released (revision compare on its reservation); [`commit_with_retry`] then re-plans.
///
/// [`commit_with_retry`]: crate::store::commit_with_retry
pub fn plan_allocate(
    store: &dyn Store,
    scope: Scope,
    network_id: &str,
    subnet: &SubnetConfig,
    endpoint_id: &str,
    requested: Option<IpAddr>,
) -> Result<(IpAddr, Txn), IpamError> {
    check_id(network_id)?;
    let reservation_key = subnet_key(scope, &subnet.subnet)?;
    let reservation = store.get_json::<SubnetReservation>(&reservation_key)?;
    let Some((reservation, reservation_rev)) =
        reservation.filter(|(r, _)| r.network_id == network_id)
    else {
        return Err(IpamError::SubnetNotReserved {
            subnet: subnet.subnet,
            network_id: network_id.to_owned(),
        });
    };
    // The stored config is authoritative (gateway, range, aux), whatever the caller passed.
    let cfg = &reservation.config;
    let taken = StoreOwners {
        store,
        scope,
        network_id,
    };
    let cursor_key = cursor_key(scope, network_id, &cfg.subnet)?;
    let (ip, move_cursor) = match requested {
        Some(ip) => {
            check_address(cfg, ip, &taken)?;
            (ip, false)
        }
        None => {
            let cursor = store.get_json::<IpAddr>(&cursor_key)?.map(|(ip, _)| ip);
            (next_free_address(cfg, cursor, &taken)?, true)
        }
    };
    let record = AddressRecord {
        endpoint_id: endpoint_id.to_owned(),
    };
    let mut txn = Txn::new()
        .require_revision(reservation_key, reservation_rev)
        .create_json(addr_key(scope, network_id, ip)?, &record)?;
    if move_cursor {
        // No compare on the cursor: concurrent allocators are already serialised by the
        // address keys, and a cursor that lags one step only costs a skipped address.
        txn = txn.put_json(cursor_key, &ip)?;
    }
    Ok((ip, txn))
}

/// Address owners looked up key by key in the store (see [`AddressOwners`]).
struct StoreOwners<'a> {
    store: &'a dyn Store,
    scope: Scope,
    network_id: &'a str,
}

impl AddressOwners for StoreOwners<'_> {
    fn owner(&self, ip: IpAddr) -> Result<Option<String>, IpamError> {
        let record =
            self.store
                .get_json::<AddressRecord>(&addr_key(self.scope, self.network_id, ip)?)?;
        Ok(record.map(|(r, _)| r.endpoint_id))
    }
}

/// Plan releasing `ip` in `network_id`. Releasing a free address is a no-op, so teardown can
/// run twice.
pub fn plan_release(scope: Scope, network_id: &str, ip: IpAddr) -> Result<Txn, IpamError> {
    check_id(network_id)?;
    Ok(Txn::new().delete(addr_key(scope, network_id, ip)?))
}

/// Schema 1 → 2: stores written before address spaces had scopes kept every reservation in
/// Global scope, and every network then was local. Plan moving them all to Local scope.
pub fn plan_move_to_local_scope(store: &dyn Store) -> Result<Txn, IpamError> {
    let mut txn = Txn::new();
    for entry in store.list(Scope::Global, "ipam/")?.entries {
        let local = Key::local(entry.key.path())?;
        txn = txn
            .require_revision(entry.key.clone(), entry.revision)
            .require_absent(local.clone())
            .put(local, entry.value)
            .delete(entry.key);
    }
    Ok(txn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};
    use crate::ipam::pools::user_network_pools;
    use crate::store::{commit_with_retry, EmbeddedStore, MemoryStore};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Run against both stores: IPAM must not depend on which one backs it.
    fn each_store(body: impl Fn(Arc<dyn Store>)) {
        body(Arc::new(MemoryStore::new()));
        let dir = tempfile::tempdir().unwrap();
        body(Arc::new(
            EmbeddedStore::open(dir.path().join("warren.db")).unwrap(),
        ));
    }

    /// Create a network through the retry loop, as the agent would.
    fn create(
        s: &dyn Store,
        id: &str,
        req: &NetworkRequest,
        routes: &[&str],
    ) -> Result<Vec<SubnetConfig>, IpamError> {
        let routes: Vec<IpNetwork> = routes.iter().map(|r| net(r)).collect();
        let pools = user_network_pools(&[]);
        commit_with_retry(s, || {
            plan_network(s, Scope::Local, id, req, &pools, &routes)
        })
        .map(|(c, _)| c)
    }

    fn allocate(
        s: &dyn Store,
        id: &str,
        cfg: &SubnetConfig,
        ep: &str,
        want: Option<IpAddr>,
    ) -> Result<IpAddr, IpamError> {
        commit_with_retry(s, || plan_allocate(s, Scope::Local, id, cfg, ep, want)).map(|(ip, _)| ip)
    }

    fn given(subnet: &str) -> NetworkRequest {
        NetworkRequest {
            ipv4: vec![PoolRequest::subnet(net(subnet))],
            ipv6: vec![],
        }
    }

    #[test]
    fn networks_take_consecutive_pool_subnets_and_skip_routes() {
        each_store(|s| {
            let a = create(&*s, "a", &NetworkRequest::default_ipv4(), &[]).unwrap();
            assert_eq!(a[0].subnet, net("172.18.0.0/16"));
            assert_eq!(a[0].gateway, Some(ip("172.18.0.1")));
            let b = create(
                &*s,
                "b",
                &NetworkRequest::default_ipv4(),
                &["172.19.0.0/24", "0.0.0.0/0"],
            )
            .unwrap();
            assert_eq!(b[0].subnet, net("172.20.0.0/16"));
            let c = create(&*s, "c", &NetworkRequest::default_ipv4(), &[]).unwrap();
            assert_eq!(
                c[0].subnet,
                net("172.19.0.0/16"),
                "route gone: the gap is reused"
            );
            let got: BTreeSet<String> = reservations(&*s, Scope::Local)
                .unwrap()
                .into_iter()
                .map(|(r, _)| r.network_id)
                .collect();
            assert_eq!(got, ["a", "b", "c"].map(String::from).into());
        });
    }

    #[test]
    fn requested_subnet_overlap_is_refused() {
        each_store(|s| {
            create(&*s, "a", &given("10.1.0.0/16"), &[]).unwrap();
            for (subnet, other) in [
                ("10.1.0.0/16", "10.1.0.0/16"),
                ("10.1.5.0/24", "10.1.0.0/16"),
                ("10.0.0.0/8", "10.1.0.0/16"),
            ] {
                let e = create(&*s, "b", &given(subnet), &[]).unwrap_err();
                assert!(
                    matches!(&e, IpamError::SubnetOverlap { other: o, owner, .. } if *o == net(other) && owner == "a"),
                    "{subnet}: {e:?}"
                );
                assert_eq!(e.kind(), ErrorKind::Conflict);
            }
            let e = create(&*s, "b", &given("192.168.1.0/24"), &["192.168.0.0/16"]).unwrap_err();
            assert!(matches!(e, IpamError::SubnetOverlapsRoute { .. }));
            // Nothing was written by the failures.
            assert_eq!(reservations(&*s, Scope::Local).unwrap().len(), 1);
            create(&*s, "b", &given("10.2.0.0/16"), &[]).unwrap();
        });
    }

    #[test]
    fn picks_avoid_subnets_requested_in_the_same_network() {
        each_store(|s| {
            let req = NetworkRequest {
                ipv4: vec![
                    PoolRequest::default(),
                    PoolRequest::subnet(net("172.18.0.0/16")),
                ],
                ipv6: vec![],
            };
            let cfgs = create(&*s, "n", &req, &[]).unwrap();
            // Order follows the request; the pick skipped the requested subnet.
            assert_eq!(cfgs[0].subnet, net("172.19.0.0/16"));
            assert_eq!(cfgs[1].subnet, net("172.18.0.0/16"));
            let twice = NetworkRequest {
                ipv4: vec![
                    PoolRequest::subnet(net("10.0.0.0/16")),
                    PoolRequest::subnet(net("10.0.1.0/24")),
                ],
                ipv6: vec![],
            };
            let e = create(&*s, "m", &twice, &[]).unwrap_err();
            assert!(matches!(e, IpamError::SubnetOverlap { owner, .. } if owner == "m"));
        });
    }

    #[test]
    fn dual_stack_and_v6_pools() {
        each_store(|s| {
            let req = NetworkRequest {
                ipv4: vec![PoolRequest::default()],
                ipv6: vec![PoolRequest::subnet(net("fd00:0:0:1::/64"))],
            };
            let cfgs = create(&*s, "d", &req, &[]).unwrap();
            assert_eq!(cfgs.len(), 2);
            assert_eq!(cfgs[1].gateway, Some(ip("fd00:0:0:1::1")));
            let v6 = allocate(&*s, "d", &cfgs[1], "ep", None).unwrap();
            assert_eq!(v6, ip("fd00:0:0:1::2"));
            // No IPv6 pool configured by default: a clear error, nothing written.
            let auto6 = NetworkRequest {
                ipv4: vec![],
                ipv6: vec![PoolRequest::default()],
            };
            assert!(matches!(
                create(&*s, "e", &auto6, &[]),
                Err(IpamError::NoPool {
                    family: Family::Ipv6
                })
            ));
            let pools = [AddressPool {
                base: net("fd00::/8"),
                size: 64,
            }];
            let (cfgs, txn) = plan_network(&*s, Scope::Local, "e", &auto6, &pools, &[]).unwrap();
            s.commit(txn).unwrap();
            assert_eq!(cfgs[0].subnet, net("fd00::/64"));
            let (cfgs, _) = plan_network(&*s, Scope::Local, "f", &auto6, &pools, &[]).unwrap();
            assert_eq!(
                cfgs[0].subnet,
                net("fd00:0:0:2::/64"),
                "skips e's fd00::/64 and d's fd00:0:0:1::/64"
            );
        });
    }

    #[test]
    fn pick_request_with_details_but_no_subnet_is_refused() {
        each_store(|s| {
            let r = PoolRequest {
                ip_range: Some(net("10.0.0.0/24")),
                ..PoolRequest::default()
            };
            let req = NetworkRequest {
                ipv4: vec![r],
                ipv6: vec![],
            };
            let e = create(&*s, "x", &req, &[]).unwrap_err();
            assert!(matches!(e, IpamError::SubnetRequired { field: "ip_range" }));
        });
    }

    #[test]
    fn concurrent_network_creation_never_overlaps() {
        each_store(|s| {
            // Half ask for overlapping explicit subnets, half pick from pools, all at once.
            let ok: Vec<Option<IpNetwork>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let s = &s;
                        scope.spawn(move || {
                            let req = if i % 2 == 0 {
                                given(if i % 4 == 0 {
                                    "172.18.0.0/16"
                                } else {
                                    "172.16.0.0/12"
                                })
                            } else {
                                NetworkRequest::default_ipv4()
                            };
                            create(&**s, &format!("n{i}"), &req, &[])
                                .ok()
                                .map(|c| c[0].subnet)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let held: Vec<IpNetwork> = reservations(&*s, Scope::Local)
                .unwrap()
                .into_iter()
                .map(|(r, _)| r.config.subnet)
                .collect();
            assert_eq!(held.len(), ok.iter().flatten().count());
            for (i, a) in held.iter().enumerate() {
                for b in &held[i + 1..] {
                    assert!(!overlaps(a, b), "{a} overlaps {b}");
                }
            }
            assert!(held.len() >= 4, "the pool picks all succeed: {held:?}");
        });
    }

    #[test]
    fn allocation_follows_cursor_and_release_does_not_reuse_immediately() {
        each_store(|s| {
            let cfg = create(&*s, "n", &given("10.0.0.0/29"), &[])
                .unwrap()
                .remove(0);
            let a = allocate(&*s, "n", &cfg, "e1", None).unwrap();
            let b = allocate(&*s, "n", &cfg, "e2", None).unwrap();
            assert_eq!((a, b), (ip("10.0.0.2"), ip("10.0.0.3")));
            s.commit(plan_release(Scope::Local, "n", a).unwrap())
                .unwrap();
            // Released .2 is skipped until the range wraps.
            let c = allocate(&*s, "n", &cfg, "e3", None).unwrap();
            assert_eq!(c, ip("10.0.0.4"));
            for (ep, want) in [("e4", "10.0.0.5"), ("e5", "10.0.0.6"), ("e6", "10.0.0.2")] {
                assert_eq!(allocate(&*s, "n", &cfg, ep, None).unwrap(), ip(want));
            }
            let e = allocate(&*s, "n", &cfg, "e7", None).unwrap_err();
            assert!(matches!(e, IpamError::AddressesExhausted { .. }));
            assert_eq!(
                addresses(&*s, Scope::Local, "n")
                    .unwrap()
                    .get(&ip("10.0.0.6"))
                    .map(String::as_str),
                Some("e5")
            );
            // Releasing twice is harmless.
            s.commit(plan_release(Scope::Local, "n", ip("10.0.0.6")).unwrap())
                .unwrap();
            s.commit(plan_release(Scope::Local, "n", ip("10.0.0.6")).unwrap())
                .unwrap();
            assert_eq!(
                allocate(&*s, "n", &cfg, "e7", None).unwrap(),
                ip("10.0.0.6")
            );
        });
    }

    #[test]
    fn static_allocation() {
        each_store(|s| {
            let cfg = create(&*s, "n", &given("10.0.0.0/24"), &[])
                .unwrap()
                .remove(0);
            assert_eq!(
                allocate(&*s, "n", &cfg, "e1", Some(ip("10.0.0.50"))).unwrap(),
                ip("10.0.0.50")
            );
            let e = allocate(&*s, "n", &cfg, "e2", Some(ip("10.0.0.50"))).unwrap_err();
            assert!(matches!(&e, IpamError::AddressInUse { owner, .. } if owner == "e1"));
            assert!(matches!(
                allocate(&*s, "n", &cfg, "e2", Some(ip("10.0.0.1"))),
                Err(IpamError::AddressReserved { .. })
            ));
            // Static allocations do not move the cursor.
            assert_eq!(
                allocate(&*s, "n", &cfg, "e3", None).unwrap(),
                ip("10.0.0.2")
            );
        });
    }

    #[test]
    fn allocation_needs_the_network_to_hold_the_subnet() {
        each_store(|s| {
            let cfg = create(&*s, "n", &given("10.0.0.0/24"), &[])
                .unwrap()
                .remove(0);
            let e = allocate(&*s, "other", &cfg, "e", None).unwrap_err();
            assert!(matches!(e, IpamError::SubnetNotReserved { .. }));
            assert_eq!(e.kind(), ErrorKind::NotFound);
            // A plan made before the network was released cannot commit after it.
            let (_, stale) = plan_allocate(&*s, Scope::Local, "n", &cfg, "e", None).unwrap();
            s.commit(plan_release_network(&*s, Scope::Local, "n").unwrap())
                .unwrap();
            assert!(s.commit(stale).is_err());
            assert!(addresses(&*s, Scope::Local, "n").unwrap().is_empty());
        });
    }

    #[test]
    fn release_network_frees_everything_it_held() {
        each_store(|s| {
            let req = NetworkRequest {
                ipv4: vec![PoolRequest::subnet(net("10.0.0.0/24"))],
                ipv6: vec![PoolRequest::subnet(net("fd00:9::/64"))],
            };
            let cfgs = create(&*s, "n", &req, &[]).unwrap();
            let keep = create(&*s, "keep", &given("10.9.0.0/24"), &[])
                .unwrap()
                .remove(0);
            for c in &cfgs {
                allocate(&*s, "n", c, "e", None).unwrap();
            }
            allocate(&*s, "keep", &keep, "e", None).unwrap();
            s.commit(plan_release_network(&*s, Scope::Local, "n").unwrap())
                .unwrap();
            let left: Vec<String> = s
                .list(Scope::Local, "ipam/")
                .unwrap()
                .entries
                .into_iter()
                .map(|e| e.key.path().to_owned())
                .collect();
            assert!(
                left.iter()
                    .all(|p| !p.contains("/n/") && !p.contains("10.0.0.0")),
                "{left:?}"
            );
            assert_eq!(reservations(&*s, Scope::Local).unwrap().len(), 1);
            // The subnet is free again.
            create(&*s, "n2", &given("10.0.0.0/24"), &[]).unwrap();
        });
    }

    #[test]
    fn ids_cannot_escape_their_paths() {
        let s = MemoryStore::new();
        for bad in ["", "a/b", "../x", "a b"] {
            assert!(
                plan_release(Scope::Local, bad, ip("10.0.0.2")).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(plan_network(
            &s,
            Scope::Local,
            "a/b",
            &NetworkRequest::default_ipv4(),
            &[],
            &[]
        )
        .is_err());
    }

    #[test]
    fn concurrent_allocation_never_duplicates() {
        each_store(|s| {
            let cfg = create(&*s, "n", &given("10.0.0.0/24"), &[])
                .unwrap()
                .remove(0);
            const THREADS: usize = 6;
            const EACH: usize = 8;
            let got: Vec<IpAddr> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let (s, cfg) = (&s, &cfg);
                        scope.spawn(move || {
                            (0..EACH)
                                .map(|i| {
                                    allocate(&**s, "n", cfg, &format!("t{t}-{i}"), None).unwrap()
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            let unique: BTreeSet<IpAddr> = got.iter().copied().collect();
            assert_eq!(unique.len(), THREADS * EACH, "duplicates handed out");
            assert_eq!(
                addresses(&*s, Scope::Local, "n").unwrap().len(),
                THREADS * EACH
            );
        });
    }

    #[test]
    fn concurrent_static_requests_for_one_address_have_one_winner() {
        each_store(|s| {
            let cfg = create(&*s, "n", &given("10.0.0.0/24"), &[])
                .unwrap()
                .remove(0);
            let wins = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..6)
                    .map(|t| {
                        let (s, cfg) = (&s, &cfg);
                        scope.spawn(move || {
                            allocate(&**s, "n", cfg, &format!("t{t}"), Some(ip("10.0.0.9"))).is_ok()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .filter(|&w| w)
                    .count()
            });
            assert_eq!(wins, 1);
        });
    }

    #[test]
    fn allocations_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warren.db");
        let cfg = {
            let s = EmbeddedStore::open(&path).unwrap();
            let cfg = create(&s, "n", &given("10.0.0.0/24"), &[])
                .unwrap()
                .remove(0);
            assert_eq!(allocate(&s, "n", &cfg, "e1", None).unwrap(), ip("10.0.0.2"));
            assert_eq!(allocate(&s, "n", &cfg, "e2", None).unwrap(), ip("10.0.0.3"));
            s.commit(plan_release(Scope::Local, "n", ip("10.0.0.3")).unwrap())
                .unwrap();
            cfg
        };
        let s = EmbeddedStore::open(&path).unwrap();
        // Neither the held address nor the just-released one is handed out after a restart.
        assert_eq!(allocate(&s, "n", &cfg, "e3", None).unwrap(), ip("10.0.0.4"));
        assert!(matches!(
            create(&s, "m", &given("10.0.0.0/16"), &[]),
            Err(IpamError::SubnetOverlap { .. })
        ));
        assert_eq!(addresses(&s, Scope::Local, "n").unwrap().len(), 2);
    }
}
