//! `MemoryStore`: the [`Store`] semantics in a mutex-guarded map, for unit tests of other
//! modules. Nothing persists.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::watch::{Watch, Watchers};
use super::{check_path, Entry, Event, Key, Op, Scope, Store, StoreError, Txn};

/// An in-memory store with the same semantics as [`EmbeddedStore`](super::EmbeddedStore).
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    watchers: Watchers,
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

impl Store for MemoryStore {
    fn get(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        let state = self.lock();
        Ok(state
            .entries
            .get(&(key.scope, key.path.clone()))
            .map(|(value, revision)| Entry {
                key: key.clone(),
                value: value.clone(),
                revision: *revision,
            }))
    }

    fn list(&self, scope: Scope, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        check_path(prefix, true)?;
        let state = self.lock();
        Ok(state
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
            .collect())
    }

    fn commit(&self, txn: Txn) -> Result<u64, StoreError> {
        txn.check_ops()?;
        let mut state = self.lock();
        txn.check_compares(|key| {
            Ok(state
                .entries
                .get(&(key.scope, key.path.clone()))
                .map(|(_, r)| *r))
        })?;
        if txn.ops.is_empty() {
            return Ok(state.revision);
        }
        let revision = state.revision + 1;
        state.revision = revision;
        let mut events = Vec::with_capacity(txn.ops.len());
        for op in txn.ops {
            match op {
                Op::Put(key, value) => {
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

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.lock().revision)
    }

    fn watch(&self, scope: Scope, prefix: &str) -> Result<Watch, StoreError> {
        check_path(prefix, true)?;
        let state = self.lock();
        Ok(self.watchers.add(scope, prefix, state.revision))
    }
}
