//! `MemoryStore`: the [`Store`] semantics in a mutex-guarded map, for unit tests of other
//! modules. Nothing persists.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::lease::Leases;
use super::watch::{Watch, Watchers};
use super::{check_path, Entry, Event, Key, LeaseId, Listing, Op, Scope, Store, StoreError, Txn};

/// An in-memory store with the same semantics as [`EmbeddedStore`](super::EmbeddedStore).
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    watchers: Watchers,
    leases: Leases,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            state: Mutex::default(),
            watchers: Watchers::new(0),
            leases: Leases::default(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    revision: u64,
    /// (value, revision) by (scope, path); BTreeMap so listing is ordered by path.
    entries: BTreeMap<(Scope, String), (Vec<u8>, u64)>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Commits mutate only after every check passed, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MemoryStore {
    /// Apply `txn` with the state lock held; returns the new revision.
    fn apply(&self, state: &mut State, txn: Txn) -> Result<u64, StoreError> {
        txn.check_ops()?;
        txn.check_compares(|key| {
            Ok(state
                .entries
                .get(&(key.scope, key.path.clone()))
                .map(|(_, r)| *r))
        })?;
        for op in &txn.ops {
            if let Op::Put(_, _, Some(lease)) = op {
                self.leases.check_alive(*lease)?;
            }
        }
        if txn.ops.is_empty() {
            return Ok(state.revision);
        }
        let revision = state.revision + 1;
        state.revision = revision;
        let mut events = Vec::with_capacity(txn.ops.len());
        for op in txn.ops {
            match op {
                Op::Put(key, value, lease) => {
                    self.leases.bind(&key, lease);
                    state
                        .entries
                        .insert((key.scope, key.path.clone()), (value.clone(), revision));
                    events.push(Event::Put(Entry {
                        key,
                        value,
                        revision,
                    }));
                }
                Op::Delete(key) => {
                    self.leases.unbind(&key);
                    if state
                        .entries
                        .remove(&(key.scope, key.path.clone()))
                        .is_some()
                    {
                        events.push(Event::Delete(key, revision));
                    }
                }
            }
        }
        // Still under the state lock: watchers see commits in revision order.
        self.watchers.notify(&events);
        Ok(revision)
    }

    /// Delete the keys of expired leases, one commit per lease, under the state lock.
    fn expire(&self, state: &mut State) -> Result<(), StoreError> {
        for (_, keys) in self.leases.take_expired() {
            let txn = keys.into_iter().fold(Txn::new(), Txn::delete);
            self.apply(state, txn)?;
        }
        Ok(())
    }

    /// The state, with expired leases' keys gone.
    fn current(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let mut state = self.lock();
        self.expire(&mut state)?;
        Ok(state)
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        let state = self.current()?;
        Ok(state
            .entries
            .get(&(key.scope, key.path.clone()))
            .map(|(value, revision)| Entry {
                key: key.clone(),
                value: value.clone(),
                revision: *revision,
            }))
    }

    fn list(&self, scope: Scope, prefix: &str) -> Result<Listing, StoreError> {
        check_path(prefix, true)?;
        let state = self.current()?;
        let entries = state
            .entries
            .range((scope, prefix.to_owned())..)
            .take_while(|((s, path), _)| *s == scope && path.starts_with(prefix))
            .map(|((s, path), (value, revision))| Entry {
                key: Key {
                    scope: *s,
                    path: path.clone(),
                },
                value: value.clone(),
                revision: *revision,
            })
            .collect();
        Ok(Listing {
            entries,
            revision: state.revision,
        })
    }

    fn commit(&self, txn: Txn) -> Result<u64, StoreError> {
        let mut state = self.current()?;
        self.apply(&mut state, txn)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.current()?.revision)
    }

    fn watch_from(&self, scope: Scope, prefix: &str, after: u64) -> Result<Watch, StoreError> {
        check_path(prefix, true)?;
        let state = self.current()?;
        self.watchers.add(scope, prefix, after, state.revision)
    }

    fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.leases.grant(ttl)
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        self.leases.keep_alive(lease)
    }

    fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        let mut state = self.current()?;
        let keys = self.leases.remove(lease)?;
        self.apply(&mut state, keys.into_iter().fold(Txn::new(), Txn::delete))?;
        Ok(())
    }

    fn expire_leases(&self) -> Result<Option<Instant>, StoreError> {
        drop(self.current()?);
        Ok(self.leases.next_deadline())
    }
}
