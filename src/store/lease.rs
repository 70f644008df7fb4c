//! Leases for the in-process backends, with etcd's semantics: a lease has a TTL, is kept alive
//! by its holder, and when it expires or is revoked every key put under it is deleted at one
//! revision (watchers see ordinary deletes). A key belongs to at most one lease; a later put
//! without that lease, or a delete, detaches it.
//!
//! Leases live in memory only: a lease is proof that its holder is alive, and no holder
//! outlives the process that granted it. The embedded store therefore deletes, when it opens,
//! every key still bound to a lease of an earlier process (see `embedded`).
//!
//! Expiry is checked at the start of every store operation (so no reader ever sees a key
//! whose lease has run out) and by a reaper thread (see [`spawn_reaper`]) so that watchers
//! hear of it without anyone else touching the store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::{Key, LeaseId, Store, StoreError};

/// The longest TTL a lease may ask for (etcd's limit is about 9e9 s; a day is plenty here and
/// keeps deadline arithmetic far from overflow).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<Key>,
}

/// The lease table of one store. Its callers hold the store's write lock whenever they bind
/// or unbind keys, so the table and the data agree.
#[derive(Debug, Default)]
pub(super) struct Leases {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    leases: HashMap<LeaseId, Lease>,
    owner: HashMap<Key, LeaseId>,
}

impl Leases {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every mutation below completes or returns before changing anything.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(StoreError::InvalidTtl { ttl });
        }
        let mut t = self.lock();
        t.next_id += 1;
        let id = LeaseId(t.next_id);
        t.leases.insert(
            id,
            Lease {
                ttl,
                deadline: Instant::now() + ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(id)
    }

    /// Renew `lease` for another TTL; returns the TTL.
    pub(super) fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let mut t = self.lock();
        let now = Instant::now();
        match t.leases.get_mut(&lease) {
            Some(l) if l.deadline > now => {
                l.deadline = now + l.ttl;
                Ok(l.ttl)
            }
            _ => Err(StoreError::LeaseNotFound { lease }),
        }
    }

    /// Fail unless `lease` exists and has not expired (checked before a put binds to it).
    pub(super) fn check_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        match self.lock().leases.get(&lease) {
            Some(l) if l.deadline > Instant::now() => Ok(()),
            _ => Err(StoreError::LeaseNotFound { lease }),
        }
    }

    /// Record that `key` was just put under `lease` (or under none).
    pub(super) fn bind(&self, key: &Key, lease: Option<LeaseId>) {
        let mut t = self.lock();
        unbind_locked(&mut t, key);
        if let Some(id) = lease {
            if let Some(l) = t.leases.get_mut(&id) {
                l.keys.insert(key.clone());
                t.owner.insert(key.clone(), id);
            }
        }
    }

    /// Record that `key` was deleted.
    pub(super) fn unbind(&self, key: &Key) {
        unbind_locked(&mut self.lock(), key);
    }

    /// Remove `lease` and return its keys (revoke). Unknown → LeaseNotFound.
    pub(super) fn remove(&self, lease: LeaseId) -> Result<Vec<Key>, StoreError> {
        let mut t = self.lock();
        let l = t
            .leases
            .remove(&lease)
            .ok_or(StoreError::LeaseNotFound { lease })?;
        for key in &l.keys {
            t.owner.remove(key);
        }
        Ok(l.keys.into_iter().collect())
    }

    /// Remove every lease past its deadline; returns each one's keys.
    pub(super) fn take_expired(&self) -> Vec<(LeaseId, Vec<Key>)> {
        let mut t = self.lock();
        let now = Instant::now();
        let expired: Vec<LeaseId> = t
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| {
                let l = t.leases.remove(&id)?;
                for key in &l.keys {
                    t.owner.remove(key);
                }
                Some((id, l.keys.into_iter().collect()))
            })
            .collect()
    }

    /// When the next lease expires, if any.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.lock().leases.values().map(|l| l.deadline).min()
    }
}

fn unbind_locked(t: &mut Table, key: &Key) {
    if let Some(id) = t.owner.remove(key) {
        if let Some(l) = t.leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }
}

/// How often the reaper looks when no lease is due sooner.
const REAP_IDLE: Duration = Duration::from_millis(500);

/// Start a thread that expires `store`'s leases on time, so that watchers see the deletes
/// even when nobody else touches the store. It holds the store weakly and ends with it.
/// Backends whose server expires leases itself (etcd) need none; calling it is harmless.
pub fn spawn_reaper(store: Weak<dyn Store>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("warren-leases".into())
        .spawn(move || loop {
            let Some(store) = store.upgrade() else {
                return;
            };
            let wait = match store.expire_leases() {
                Ok(next) => next
                    .map(|at| at.saturating_duration_since(Instant::now()))
                    .unwrap_or(REAP_IDLE)
                    .min(REAP_IDLE),
                Err(e) => {
                    tracing::warn!("expiring store leases: {e}");
                    REAP_IDLE
                }
            };
            drop(store);
            std::thread::sleep(wait.max(Duration::from_millis(5)));
        })
        .map(|_| ())
}
