//! The version of what the agent keeps in its store, and the steps that bring a store written
//! by an older Warren up to date. [`migrate`] runs when the agent opens its store, before
//! anything reads it; each step commits in one transaction together with the new version, so
//! a crash leaves the store at one version or the next, never between.
//!
//! Versions:
//! 1. (no version key) every IPAM reservation in Global scope, networks and endpoints Local.
//! 2. IPAM reservations in their network's scope: all of them Local, since every driver of
//!    version 1 was local (see `ipam`'s address spaces).

use crate::error::{Error, ErrorKind};
use crate::ipam;
use crate::store::{Key, Store, StoreExt, Txn};

/// The schema this build writes.
pub const SCHEMA_VERSION: u64 = 2;

fn version_key() -> Key {
    Key::local("meta/schema-version").expect("a valid key")
}

/// Bring the store to [`SCHEMA_VERSION`]. A store written by a newer Warren is refused rather
/// than misread.
pub fn migrate(store: &dyn Store) -> Result<(), Error> {
    let key = version_key();
    loop {
        let current = store.get_json::<u64>(&key)?;
        let found = current.as_ref().map_or(1, |(v, _)| *v);
        if found > SCHEMA_VERSION {
            return Err(Error::msg(
                ErrorKind::Unavailable,
                format!(
                    "the state store was written by a newer Warren (schema {found}; this \
                     build reads up to {SCHEMA_VERSION}); run that version or a newer one"
                ),
            ));
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        let step = match found {
            1 => ipam::plan_move_to_local_scope(store)?,
            other => unreachable!("no step from schema {other}"),
        };
        let guard = match &current {
            Some((_, revision)) => Txn::new().require_revision(key.clone(), *revision),
            None => Txn::new().require_absent(key.clone()),
        };
        let txn = guard.merge(step).put_json(key.clone(), &(found + 1))?;
        store.commit(txn)?;
        tracing::info!(from = found, to = found + 1, "state store schema migrated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Scope};

    #[test]
    fn version_1_reservations_move_to_local_scope_once() {
        let s = MemoryStore::new();
        let old = |p: &str| Key::global(p).unwrap();
        s.commit(
            Txn::new()
                .put(old("ipam/subnets/172.17.0.0_16"), br#"{"n":1}"#.to_vec())
                .put(old("ipam/addrs/n1/172.17.0.2"), b"{}".to_vec())
                .put(old("ipam/subnet-epoch"), b"\"n1\"".to_vec())
                .put(Key::local("networks/n1").unwrap(), b"{}".to_vec()),
        )
        .unwrap();
        migrate(&s).unwrap();
        assert!(s.list(Scope::Global, "").unwrap().entries.is_empty());
        let local: Vec<String> = s
            .list(Scope::Local, "ipam/")
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.key.path().to_owned())
            .collect();
        assert_eq!(
            local,
            [
                "ipam/addrs/n1/172.17.0.2",
                "ipam/subnet-epoch",
                "ipam/subnets/172.17.0.0_16"
            ]
        );
        assert_eq!(
            s.get(&Key::local("ipam/subnets/172.17.0.0_16").unwrap())
                .unwrap()
                .unwrap()
                .value,
            br#"{"n":1}"#
        );
        assert_eq!(s.get_json::<u64>(&version_key()).unwrap().unwrap().0, 2);
        // Done once: a second start changes nothing.
        let revision = s.revision().unwrap();
        migrate(&s).unwrap();
        assert_eq!(s.revision().unwrap(), revision);
    }

    #[test]
    fn a_fresh_store_is_stamped_and_a_newer_one_refused() {
        let s = MemoryStore::new();
        migrate(&s).unwrap();
        assert_eq!(
            s.get_json::<u64>(&version_key()).unwrap().unwrap().0,
            SCHEMA_VERSION
        );
        s.commit(
            Txn::new()
                .put_json(version_key(), &(SCHEMA_VERSION + 1))
                .unwrap(),
        )
        .unwrap();
        let err = migrate(&s).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.to_string().contains("newer Warren"), "{err}");
    }
}
