//! `CompositeStore`: local keys in one backend, global keys in another — the embedded store
//! for this host's state, a cluster store (etcd) for what hosts share. A host without a
//! cluster store uses the embedded store for both ([`CompositeStore::single`]) and behaves
//! exactly as before.
//!
//! No transaction spans both scopes, even when one backend holds both: two stores cannot
//! commit atomically together, and refusing it on one host too means a code path that would
//! break in a cluster fails in every test instead. Leases belong to the global backend (they
//! prove a host is alive to the others).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Entry;
use super::{Key, LeaseId, Listing, Scope, Store, StoreError, Txn, Watch};

#[derive(Debug)]
pub struct CompositeStore {
    local: Arc<dyn Store>,
    global: Arc<dyn Store>,
}

impl CompositeStore {
    /// Local keys in `local`, global keys in `global`.
    pub fn new(local: Arc<dyn Store>, global: Arc<dyn Store>) -> CompositeStore {
        CompositeStore { local, global }
    }

    /// One backend for both scopes (a single host).
    pub fn single(store: Arc<dyn Store>) -> CompositeStore {
        CompositeStore::new(Arc::clone(&store), store)
    }

    fn backend(&self, scope: Scope) -> &dyn Store {
        match scope {
            Scope::Local => self.local.as_ref(),
            Scope::Global => self.global.as_ref(),
        }
    }

    fn same_backend(&self) -> bool {
        Arc::ptr_eq(&self.local, &self.global)
    }

    /// The one scope every key of `txn` is in (Local for an empty transaction).
    fn scope_of(txn: &Txn) -> Result<Scope, StoreError> {
        let mut keys = txn
            .compares
            .iter()
            .map(|c| c.key())
            .chain(txn.ops.iter().map(|o| o.key()));
        let Some(first) = keys.next() else {
            return Ok(Scope::Local);
        };
        match keys.find(|k| k.scope() != first.scope()) {
            None => Ok(first.scope()),
            Some(other) => Err(StoreError::CrossScope {
                first: first.clone(),
                other: other.clone(),
            }),
        }
    }
}

impl Store for CompositeStore {
    fn get(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        self.backend(key.scope()).get(key)
    }

    fn list(&self, scope: Scope, prefix: &str) -> Result<Listing, StoreError> {
        self.backend(scope).list(scope, prefix)
    }

    fn commit(&self, txn: Txn) -> Result<u64, StoreError> {
        self.backend(Self::scope_of(&txn)?).commit(txn)
    }

    fn commit_deferred(&self, txn: Txn) -> Result<u64, StoreError> {
        self.backend(Self::scope_of(&txn)?).commit_deferred(txn)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.local.sync()?;
        if !self.same_backend() {
            self.global.sync()?;
        }
        Ok(())
    }

    /// The local backend's revision. Revisions of the two scopes are separate counters when
    /// the backends are; scoped callers use the revision a [`Listing`] returns.
    fn revision(&self) -> Result<u64, StoreError> {
        self.local.revision()
    }

    fn watch_from(&self, scope: Scope, prefix: &str, after: u64) -> Result<Watch, StoreError> {
        self.backend(scope).watch_from(scope, prefix, after)
    }

    fn watch(&self, scope: Scope, prefix: &str) -> Result<Watch, StoreError> {
        self.backend(scope).watch(scope, prefix)
    }

    fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.global.grant(ttl)
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        self.global.keep_alive(lease)
    }

    fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.global.revoke(lease)
    }

    fn expire_leases(&self) -> Result<Option<Instant>, StoreError> {
        let local = self.local.expire_leases()?;
        if self.same_backend() {
            return Ok(local);
        }
        let global = self.global.expire_leases()?;
        Ok(local.into_iter().chain(global).min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};
    use crate::store::{conformance, MemoryStore};

    #[test]
    fn one_backend_for_both_scopes_conforms() {
        conformance::run(|| Arc::new(CompositeStore::single(Arc::new(MemoryStore::new()))));
    }

    #[test]
    fn keys_go_to_their_scopes_backend_and_no_transaction_spans_both() {
        let (local, global) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
        let s = CompositeStore::new(local.clone(), global.clone());
        let l = Key::local("eps/1").unwrap();
        let g = Key::global("nets/1").unwrap();
        s.commit(Txn::new().put(l.clone(), b"l".to_vec())).unwrap();
        s.commit(Txn::new().put(g.clone(), b"g".to_vec())).unwrap();
        assert!(local.get(&l).unwrap().is_some() && local.get(&g).unwrap().is_none());
        assert!(global.get(&g).unwrap().is_some() && global.get(&l).unwrap().is_none());
        assert_eq!(s.get(&g).unwrap().unwrap().value, b"g");
        assert_eq!(s.list(Scope::Global, "").unwrap().entries.len(), 1);
        // A compare in one scope and a write in the other is refused, and writes nothing.
        let err = s
            .commit(
                Txn::new()
                    .require_exists(g.clone())
                    .put(Key::local("eps/2").unwrap(), vec![]),
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::CrossScope { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(local.revision().unwrap(), 1);
        // Refused on a single backend too: what breaks in a cluster breaks everywhere.
        let single = CompositeStore::single(Arc::new(MemoryStore::new()));
        assert!(single
            .commit(Txn::new().put(l, vec![]).put(g, vec![]))
            .is_err());
        // Leases are the global backend's.
        let lease = s.grant(Duration::from_secs(60)).unwrap();
        s.commit(Txn::new().put_leased(Key::global("nodes/h1").unwrap(), vec![], lease))
            .unwrap();
        s.revoke(lease).unwrap();
        assert!(global
            .list(Scope::Global, "nodes/")
            .unwrap()
            .entries
            .is_empty());
    }
}
