//! State store: the `Store` trait (keys by scope, compare-and-swap transactions, watch) and its
//! implementations — `EmbeddedStore` (redb, crash-safe, the default) and `MemoryStore` (tests).
//!
//! The trait mirrors etcd's data model on purpose so a distributed backend can implement it with
//! the same semantics: one store-wide revision counter bumped by every writing commit, each entry
//! remembering the revision of its last modification, and all-or-nothing transactions guarded by
//! compares. Everything that must be atomic (an IPAM reservation together with the record that
//! explains it) goes into one [`Txn`].
//!
//! Keys have a [`Scope`]: `Local` keys describe this host only, `Global` keys are shared across a
//! cluster. The embedded store keeps both in one file, so a transaction may mix them; a
//! distributed backend must keep that property (e.g. by storing Local keys under a per-host prefix
//! in the same cluster store).

mod embedded;
mod memory;
mod watch;

pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;
pub use watch::Watch;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ErrorKind, HasKind};

/// Where a key lives: on this host only, or shared across the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// This host only (e.g. endpoints of local namespaces).
    Local,
    /// Shared across hosts (e.g. networks and their IPAM reservations).
    Global,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Global => "global",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated key: scope plus a `/`-separated path such as `networks/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    scope: Scope,
    path: String,
}

impl Key {
    /// A key, if `path` is well formed: non-empty, printable ASCII without spaces, no leading or
    /// trailing `/`, no empty segment (`//`).
    pub fn new(scope: Scope, path: impl Into<String>) -> Result<Key, StoreError> {
        let path = path.into();
        check_path(&path, false)?;
        Ok(Key { scope, path })
    }

    pub fn local(path: impl Into<String>) -> Result<Key, StoreError> {
        Key::new(Scope::Local, path)
    }

    pub fn global(path: impl Into<String>) -> Result<Key, StoreError> {
        Key::new(Scope::Global, path)
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The last path segment (e.g. the id in `networks/<id>`).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scope, self.path)
    }
}

/// Validate a key path, or (with `prefix`) a list/watch prefix, which may be empty and may end
/// in `/`. Printable ASCII only, so paths survive every backend and log line unchanged.
fn check_path(path: &str, prefix: bool) -> Result<(), StoreError> {
    let reason = if path.is_empty() && !prefix {
        Some("empty path")
    } else if path.starts_with('/') {
        Some("leading '/'")
    } else if path.contains("//") {
        Some("empty segment '//'")
    } else if !prefix && path.ends_with('/') {
        Some("trailing '/'")
    } else if !path.bytes().all(|b| b.is_ascii_graphic()) {
        Some("not printable ASCII")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidPath {
            path: path.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A stored value with the revision of its last modification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Key,
    pub value: Vec<u8>,
    pub revision: u64,
}

impl Entry {
    /// The value decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_slice(&self.value).map_err(|source| StoreError::Decode {
            key: self.key.clone(),
            source,
        })
    }
}

/// A condition every one of which must hold for a [`Txn`] to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent(Key),
    /// The key exists and was last modified at exactly this revision.
    Revision(Key, u64),
    /// The key exists.
    Exists(Key),
}

impl Compare {
    pub fn key(&self) -> &Key {
        match self {
            Compare::Absent(k) | Compare::Revision(k, _) | Compare::Exists(k) => k,
        }
    }

    /// Whether the compare holds given the key's current revision (`None` = absent).
    fn holds(&self, current: Option<u64>) -> bool {
        match self {
            Compare::Absent(_) => current.is_none(),
            Compare::Exists(_) => current.is_some(),
            Compare::Revision(_, want) => current == Some(*want),
        }
    }
}

/// A write inside a [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Key, Vec<u8>),
    /// Deleting an absent key is a no-op (no event), like etcd.
    Delete(Key),
}

impl Op {
    pub fn key(&self) -> &Key {
        match self {
            Op::Put(k, _) | Op::Delete(k) => k,
        }
    }
}

/// An all-or-nothing transaction: if every compare holds, every op is applied at one new
/// revision; otherwise nothing is written and the commit fails with [`StoreError::Conflict`].
///
/// Transactions are also the unit modules hand each other: IPAM *plans* a `Txn` and the agent
/// [`merge`](Txn::merge)s it with its own record writes before one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    pub fn is_empty(&self) -> bool {
        self.compares.is_empty() && self.ops.is_empty()
    }

    pub fn compare(mut self, compare: Compare) -> Txn {
        self.compares.push(compare);
        self
    }

    pub fn put(mut self, key: Key, value: Vec<u8>) -> Txn {
        self.ops.push(Op::Put(key, value));
        self
    }

    /// Put `value` encoded as JSON.
    pub fn put_json<T: Serialize + ?Sized>(self, key: Key, value: &T) -> Result<Txn, StoreError> {
        let bytes = encode_json(&key, value)?;
        Ok(self.put(key, bytes))
    }

    /// Put `value` as JSON, only if the key does not exist yet.
    pub fn create_json<T: Serialize + ?Sized>(
        self,
        key: Key,
        value: &T,
    ) -> Result<Txn, StoreError> {
        self.compare(Compare::Absent(key.clone()))
            .put_json(key, value)
    }

    pub fn delete(mut self, key: Key) -> Txn {
        self.ops.push(Op::Delete(key));
        self
    }

    /// Require that `key` is still at `revision` (optimistic concurrency on a value read earlier).
    pub fn require_revision(self, key: Key, revision: u64) -> Txn {
        self.compare(Compare::Revision(key, revision))
    }

    /// Require that `key` does not exist.
    pub fn require_absent(self, key: Key) -> Txn {
        self.compare(Compare::Absent(key))
    }

    /// Require that `key` exists.
    pub fn require_exists(self, key: Key) -> Txn {
        self.compare(Compare::Exists(key))
    }

    /// This transaction followed by `other`'s compares and ops.
    pub fn merge(mut self, other: Txn) -> Txn {
        self.compares.extend(other.compares);
        self.ops.extend(other.ops);
        self
    }

    /// Refuse two ops on one key: their order would be a hidden dependency, and etcd refuses
    /// them too.
    fn check_ops(&self) -> Result<(), StoreError> {
        let mut seen = HashSet::new();
        for op in &self.ops {
            if !seen.insert(op.key()) {
                return Err(StoreError::DuplicateOp {
                    key: op.key().clone(),
                });
            }
        }
        Ok(())
    }

    /// Check every compare against current revisions; the first failing one names the conflict.
    fn check_compares(
        &self,
        mut current: impl FnMut(&Key) -> Result<Option<u64>, StoreError>,
    ) -> Result<(), StoreError> {
        for compare in &self.compares {
            if !compare.holds(current(compare.key())?) {
                return Err(StoreError::Conflict {
                    key: compare.key().clone(),
                });
            }
        }
        Ok(())
    }
}

fn encode_json<T: Serialize + ?Sized>(key: &Key, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        key: key.clone(),
        source,
    })
}

/// A change delivered to a [`Watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Entry),
    /// The key and the revision of the commit that deleted it.
    Delete(Key, u64),
}

impl Event {
    pub fn key(&self) -> &Key {
        match self {
            Event::Put(e) => &e.key,
            Event::Delete(k, _) => k,
        }
    }

    pub fn revision(&self) -> u64 {
        match self {
            Event::Put(e) => e.revision,
            Event::Delete(_, r) => *r,
        }
    }
}

/// A key-value store with etcd-like semantics. Methods block briefly (a disk sync on commit);
/// async callers use `spawn_blocking`.
pub trait Store: Send + Sync + fmt::Debug {
    /// The entry at `key`, if any.
    fn get(&self, key: &Key) -> Result<Option<Entry>, StoreError>;

    /// Every entry of `scope` whose path starts with `prefix` (plain string prefix; end it with
    /// `/` to list one directory), ordered by path. An empty prefix lists the whole scope.
    fn list(&self, scope: Scope, prefix: &str) -> Result<Vec<Entry>, StoreError>;

    /// Apply `txn` atomically and durably; returns the new store revision (unchanged if the
    /// transaction has no ops). A failed compare → [`StoreError::Conflict`], nothing written.
    fn commit(&self, txn: Txn) -> Result<u64, StoreError>;

    /// [`commit`](Store::commit) without waiting for the disk: the change is visible at once
    /// but a crash may lose it until the next [`sync`](Store::sync). For a caller that overlaps
    /// the disk sync with other work and syncs before anyone hears of the change. Stores whose
    /// commits are durable when acknowledged anyway (memory, etcd) just commit.
    fn commit_deferred(&self, txn: Txn) -> Result<u64, StoreError> {
        self.commit(txn)
    }

    /// Make every earlier commit durable.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The revision of the last writing commit (0 for a fresh store).
    fn revision(&self) -> Result<u64, StoreError>;

    /// Changes under (`scope`, `prefix`) committed after this call, in revision order. See
    /// [`Watch`] for what happens to a watcher that falls behind.
    fn watch(&self, scope: Scope, prefix: &str) -> Result<Watch, StoreError>;
}

/// Typed helpers over any [`Store`], including `&dyn Store`.
pub trait StoreExt: Store {
    /// The value at `key` decoded as JSON, with its revision.
    fn get_json<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<(T, u64)>, StoreError> {
        match self.get(key)? {
            Some(entry) => Ok(Some((entry.json()?, entry.revision))),
            None => Ok(None),
        }
    }

    /// Every value under (`scope`, `prefix`) decoded as JSON, with its key and revision.
    fn list_json<T: DeserializeOwned>(
        &self,
        scope: Scope,
        prefix: &str,
    ) -> Result<Vec<(Key, T, u64)>, StoreError> {
        self.list(scope, prefix)?
            .into_iter()
            .map(|e| Ok((e.key.clone(), e.json()?, e.revision)))
            .collect()
    }

    /// The decoded values under `prefix`, without keys and revisions.
    fn list_values<T: DeserializeOwned>(
        &self,
        scope: Scope,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.list(scope, prefix)?.iter().map(Entry::json).collect()
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// How many times [`commit_with_retry`] re-plans after a conflict before giving up. Writers
/// that want the same key (allocators picking the same next free address) take turns, one
/// winner per round, so a writer among k may lose many rounds in a row: 16 was too few for
/// six concurrent allocators on a busy machine.
pub const COMMIT_ATTEMPTS: usize = 64;

/// Plan a transaction from current state and commit it; on [`StoreError::Conflict`] (someone
/// changed what the plan read) plan again from the new state, up to [`COMMIT_ATTEMPTS`] times.
/// `plan` returns its result together with the `Txn` to commit; a plan that finds the request
/// itself now impossible (e.g. address taken) returns its own error, which ends the loop.
/// Returns the plan's result and the committed revision.
pub fn commit_with_retry<T, E>(
    store: &(impl Store + ?Sized),
    plan: impl FnMut() -> Result<(T, Txn), E>,
) -> Result<(T, u64), E>
where
    E: From<StoreError>,
{
    retry_commits(|txn| store.commit(txn), plan)
}

/// [`commit_with_retry`] with [`Store::commit_deferred`]: the caller must [`Store::sync`]
/// before it reports the change.
pub fn commit_deferred_with_retry<T, E>(
    store: &(impl Store + ?Sized),
    plan: impl FnMut() -> Result<(T, Txn), E>,
) -> Result<(T, u64), E>
where
    E: From<StoreError>,
{
    retry_commits(|txn| store.commit_deferred(txn), plan)
}

fn retry_commits<T, E>(
    mut commit: impl FnMut(Txn) -> Result<u64, StoreError>,
    mut plan: impl FnMut() -> Result<(T, Txn), E>,
) -> Result<(T, u64), E>
where
    E: From<StoreError>,
{
    let mut attempt = 1;
    loop {
        let (value, txn) = plan()?;
        match commit(txn) {
            Ok(revision) => return Ok((value, revision)),
            Err(StoreError::Conflict { key }) if attempt < COMMIT_ATTEMPTS => {
                tracing::debug!(%key, attempt, "store conflict, re-planning");
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Errors of the store and its backends.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("open state store {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid store path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("conflicting change to {key}")]
    Conflict { key: Key },
    #[error("transaction writes {key} twice")]
    DuplicateOp { key: Key },
    #[error("encode value of {key}")]
    Encode {
        key: Key,
        #[source]
        source: serde_json::Error,
    },
    #[error("decode value of {key}")]
    Decode {
        key: Key,
        #[source]
        source: serde_json::Error,
    },
    #[error("state store is corrupt: {what}")]
    Corrupt { what: String },
    #[error("state store {action}")]
    Io {
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl HasKind for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Conflict { .. } => ErrorKind::Conflict,
            StoreError::Open { .. } => ErrorKind::Unavailable,
            // A bad path means an unchecked name reached a key: the request, not the store.
            StoreError::InvalidPath { .. } => ErrorKind::Invalid,
            StoreError::DuplicateOp { .. }
            | StoreError::Encode { .. }
            | StoreError::Decode { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Io { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Run one test body against every implementation: the semantics must not differ.
    fn each_store(body: impl Fn(Arc<dyn Store>)) {
        body(Arc::new(MemoryStore::new()));
        let dir = tempfile::tempdir().unwrap();
        body(Arc::new(
            EmbeddedStore::open(dir.path().join("warren.db")).unwrap(),
        ));
    }

    fn g(path: &str) -> Key {
        Key::global(path).unwrap()
    }

    fn l(path: &str) -> Key {
        Key::local(path).unwrap()
    }

    fn value(store: &dyn Store, key: &Key) -> Option<Vec<u8>> {
        store.get(key).unwrap().map(|e| e.value)
    }

    #[test]
    fn key_paths_are_validated() {
        for bad in ["", "/a", "a//b", "a/", "a b", "a\tb", "caf\u{e9}", "a\nb"] {
            assert!(
                matches!(Key::global(bad), Err(StoreError::InvalidPath { .. })),
                "{bad:?} accepted"
            );
        }
        for good in ["a", "networks/abc", "ipam/subnets/fd00::_64", "x/y/z-1.2_3"] {
            let key = Key::local(good).unwrap();
            assert_eq!(key.path(), good);
        }
        assert_eq!(g("networks/abc").name(), "abc");
        assert_eq!(g("networks/abc").to_string(), "global:networks/abc");
        assert_eq!(Key::global("a//b").unwrap_err().kind(), ErrorKind::Invalid);
    }

    #[test]
    fn put_get_and_revisions() {
        each_store(|s| {
            assert_eq!(s.revision().unwrap(), 0);
            assert_eq!(s.get(&g("a")).unwrap(), None);
            let r1 = s.commit(Txn::new().put(g("a"), b"1".to_vec())).unwrap();
            assert_eq!(r1, 1);
            let r2 = s
                .commit(
                    Txn::new()
                        .put(g("b"), b"2".to_vec())
                        .put(l("a"), b"3".to_vec()),
                )
                .unwrap();
            assert_eq!(r2, 2);
            assert_eq!(s.revision().unwrap(), 2);
            let a = s.get(&g("a")).unwrap().unwrap();
            assert_eq!((a.value.as_slice(), a.revision), (&b"1"[..], 1));
            assert_eq!(s.get(&g("b")).unwrap().unwrap().revision, 2);
            // Scopes are separate namespaces.
            assert_eq!(value(&*s, &l("a")), Some(b"3".to_vec()));
            assert_eq!(value(&*s, &l("b")), None);
            // Overwrite moves the entry's revision.
            s.commit(Txn::new().put(g("a"), b"4".to_vec())).unwrap();
            assert_eq!(s.get(&g("a")).unwrap().unwrap().revision, 3);
        });
    }

    #[test]
    fn list_is_ordered_by_path_and_filtered_by_prefix_and_scope() {
        each_store(|s| {
            let mut txn = Txn::new();
            for p in ["net/b", "net/a", "net/c/x", "netz", "other"] {
                txn = txn.put(g(p), p.as_bytes().to_vec());
            }
            txn = txn.put(l("net/local"), vec![]);
            s.commit(txn).unwrap();
            let paths = |prefix: &str| -> Vec<String> {
                s.list(Scope::Global, prefix)
                    .unwrap()
                    .into_iter()
                    .map(|e| e.key.path().to_owned())
                    .collect()
            };
            assert_eq!(paths("net/"), ["net/a", "net/b", "net/c/x"]);
            assert_eq!(paths("net"), ["net/a", "net/b", "net/c/x", "netz"]);
            assert_eq!(paths("").len(), 5);
            assert!(paths("zzz").is_empty());
            assert_eq!(s.list(Scope::Local, "").unwrap().len(), 1);
            assert!(s.list(Scope::Global, "/net").is_err());
        });
    }

    #[test]
    fn failed_compare_writes_nothing() {
        each_store(|s| {
            s.commit(Txn::new().put(g("taken"), b"x".to_vec())).unwrap();
            let txn = Txn::new()
                .put(g("new"), b"1".to_vec())
                .create_json(g("taken"), &"y")
                .unwrap();
            let err = s.commit(txn).unwrap_err();
            assert!(matches!(&err, StoreError::Conflict { key } if key == &g("taken")));
            assert_eq!(err.kind(), ErrorKind::Conflict);
            assert_eq!(value(&*s, &g("new")), None);
            assert_eq!(value(&*s, &g("taken")), Some(b"x".to_vec()));
            assert_eq!(s.revision().unwrap(), 1);
        });
    }

    #[test]
    fn compares_revision_exists_absent() {
        each_store(|s| {
            let rev = s.commit(Txn::new().put(g("k"), b"1".to_vec())).unwrap();
            // Stale revision fails, current succeeds.
            let stale = Txn::new()
                .require_revision(g("k"), rev + 7)
                .put(g("k"), b"2".to_vec());
            assert!(matches!(s.commit(stale), Err(StoreError::Conflict { .. })));
            let fresh = Txn::new()
                .require_revision(g("k"), rev)
                .put(g("k"), b"2".to_vec());
            assert_eq!(s.commit(fresh).unwrap(), rev + 1);
            // Revision compare on an absent key fails.
            let absent = Txn::new().require_revision(g("none"), 0).delete(g("k"));
            assert!(s.commit(absent).is_err());
            assert!(s
                .commit(Txn::new().require_exists(g("none")).delete(g("k")))
                .is_err());
            assert!(s
                .commit(Txn::new().require_absent(g("k")).delete(g("k")))
                .is_err());
            let r = s
                .commit(
                    Txn::new()
                        .require_exists(g("k"))
                        .require_absent(g("none"))
                        .delete(g("k")),
                )
                .unwrap();
            assert_eq!(r, rev + 2);
            assert_eq!(value(&*s, &g("k")), None);
        });
    }

    #[test]
    fn empty_and_no_op_transactions() {
        each_store(|s| {
            assert_eq!(s.commit(Txn::new()).unwrap(), 0);
            s.commit(Txn::new().put(g("a"), vec![])).unwrap();
            // Compares only: checked, nothing written, revision unchanged.
            assert_eq!(s.commit(Txn::new().require_exists(g("a"))).unwrap(), 1);
            assert!(s.commit(Txn::new().require_absent(g("a"))).is_err());
            // Deleting an absent key is allowed (still a writing commit, like etcd).
            assert_eq!(s.commit(Txn::new().delete(g("nothing"))).unwrap(), 2);
        });
    }

    #[test]
    fn two_ops_on_one_key_are_refused() {
        each_store(|s| {
            let txn = Txn::new().put(g("a"), vec![1]).delete(g("a"));
            assert!(matches!(s.commit(txn), Err(StoreError::DuplicateOp { .. })));
            // Same path in different scopes is two keys.
            s.commit(Txn::new().put(g("a"), vec![1]).put(l("a"), vec![2]))
                .unwrap();
        });
    }

    #[test]
    fn json_helpers_round_trip() {
        each_store(|s| {
            let txn = Txn::new()
                .create_json(g("obj"), &vec![1u32, 2, 3])
                .unwrap()
                .put_json(g("other"), "text")
                .unwrap();
            let rev = s.commit(txn).unwrap();
            let (v, r): (Vec<u32>, u64) = s.get_json(&g("obj")).unwrap().unwrap();
            assert_eq!((v, r), (vec![1, 2, 3], rev));
            assert_eq!(s.get_json::<u32>(&g("missing")).unwrap(), None);
            assert!(matches!(
                s.get_json::<u32>(&g("other")),
                Err(StoreError::Decode { .. })
            ));
            let all: Vec<(Key, Vec<u32>, u64)> = s.list_json(Scope::Global, "obj").unwrap();
            assert_eq!(all.len(), 1);
            // Merge keeps both halves.
            let merged = Txn::new()
                .delete(g("obj"))
                .merge(Txn::new().require_exists(g("other")).delete(g("other")));
            assert_eq!((merged.compares.len(), merged.ops.len()), (1, 2));
            s.commit(merged).unwrap();
            assert!(s.list(Scope::Global, "").unwrap().is_empty());
        });
    }

    #[test]
    fn watch_sees_later_commits_in_order_with_prefix_filter() {
        each_store(|s| {
            s.commit(Txn::new().put(g("net/old"), vec![0])).unwrap();
            let w = s.watch(Scope::Global, "net/").unwrap();
            assert_eq!(w.start_revision(), 1);
            s.commit(Txn::new().put(g("net/a"), vec![1]).put(g("other"), vec![9]))
                .unwrap();
            s.commit(Txn::new().put(l("net/a"), vec![2])).unwrap();
            s.commit(Txn::new().delete(g("net/old")).delete(g("net/never")))
                .unwrap();
            let e1 = w.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(matches!(&e1, Event::Put(e) if e.key == g("net/a") && e.value == [1]));
            assert_eq!(e1.revision(), 2);
            let e2 = w.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(e2, Event::Delete(g("net/old"), 4));
            assert_eq!(w.try_recv(), Err(false));
            assert!(!w.lagged());
        });
    }

    #[test]
    fn slow_watcher_is_cut_off_without_blocking_writers() {
        each_store(|s| {
            let w = s.watch(Scope::Global, "").unwrap();
            let mut txn = Txn::new();
            for i in 0..=watch::WATCH_QUEUE {
                txn = txn.put(g(&format!("k/{i}")), vec![]);
            }
            s.commit(txn).unwrap();
            s.commit(Txn::new().put(g("after"), vec![])).unwrap();
            assert!(w.lagged());
            let drained = std::iter::from_fn(|| w.try_recv().ok()).count();
            assert_eq!(drained, watch::WATCH_QUEUE);
            assert_eq!(w.try_recv(), Err(true), "stream ends after the cut");
            // Dropped watchers are forgotten too.
            drop(s.watch(Scope::Global, "").unwrap());
            s.commit(Txn::new().put(g("again"), vec![])).unwrap();
        });
    }

    #[test]
    fn commit_with_retry_replans_on_conflict() {
        each_store(|s| {
            // Threads increment one counter by read-modify-write with a revision compare.
            const THREADS: usize = 4;
            const EACH: usize = 5;
            let key = g("counter");
            s.commit(Txn::new().put_json(key.clone(), &0u64).unwrap())
                .unwrap();
            std::thread::scope(|scope| {
                for _ in 0..THREADS {
                    let (s, key) = (&s, &key);
                    scope.spawn(move || {
                        for _ in 0..EACH {
                            commit_with_retry(&**s, || {
                                let (n, rev) = s.get_json::<u64>(key)?.unwrap();
                                let txn = Txn::new()
                                    .require_revision(key.clone(), rev)
                                    .put_json(key.clone(), &(n + 1))?;
                                Ok::<_, StoreError>(((), txn))
                            })
                            .unwrap();
                        }
                    });
                }
            });
            let (n, _) = s.get_json::<u64>(&key).unwrap().unwrap();
            assert_eq!(n, (THREADS * EACH) as u64);
        });
    }

    #[test]
    fn commit_with_retry_gives_up_eventually() {
        let s = MemoryStore::new();
        s.commit(Txn::new().put(g("k"), vec![])).unwrap();
        let mut calls = 0;
        let res = commit_with_retry(&s, || {
            calls += 1;
            Ok::<_, StoreError>(((), Txn::new().require_absent(g("k"))))
        });
        assert!(matches!(res, Err(StoreError::Conflict { .. })));
        assert_eq!(calls, COMMIT_ATTEMPTS);
    }

    #[test]
    fn embedded_store_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warren.db");
        {
            let s = EmbeddedStore::open(&path).unwrap();
            s.commit(
                Txn::new()
                    .put(g("a"), b"x".to_vec())
                    .put(l("b"), b"y".to_vec()),
            )
            .unwrap();
            s.commit(Txn::new().delete(l("b"))).unwrap();
        }
        let s = EmbeddedStore::open(&path).unwrap();
        assert_eq!(s.revision().unwrap(), 2);
        let a = s.get(&g("a")).unwrap().unwrap();
        assert_eq!((a.value, a.revision), (b"x".to_vec(), 1));
        assert_eq!(s.get(&l("b")).unwrap(), None);
        assert_eq!(s.commit(Txn::new().put(g("c"), vec![])).unwrap(), 3);
    }

    #[test]
    fn deferred_commits_are_visible_at_once_and_durable_after_sync() {
        each_store(|s| {
            assert_eq!(
                s.commit_deferred(Txn::new().put(g("a"), b"x".to_vec()))
                    .unwrap(),
                1
            );
            assert_eq!(value(s.as_ref(), &g("a")), Some(b"x".to_vec()));
            s.sync().unwrap();
            s.sync().unwrap();
            assert_eq!(s.commit(Txn::new().put(g("b"), vec![])).unwrap(), 2);
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warren.db");
        {
            let s = EmbeddedStore::open(&path).unwrap();
            s.commit_deferred(Txn::new().put(g("a"), b"x".to_vec()))
                .unwrap();
            s.sync().unwrap();
        }
        let s = EmbeddedStore::open(&path).unwrap();
        assert_eq!(s.revision().unwrap(), 1);
        assert_eq!(value(&s, &g("a")), Some(b"x".to_vec()));
    }

    #[test]
    fn a_new_embedded_store_is_built_aside_and_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warren.db");
        let tmp = path.with_extension("db.new");
        // Leftovers of a first start killed half-way: a half-built store and an empty file.
        std::fs::write(&tmp, b"half-built").unwrap();
        std::fs::write(&path, b"").unwrap();
        drop(EmbeddedStore::open(&path).unwrap());
        assert!(
            !tmp.exists(),
            "the temporary store is renamed, not left behind"
        );
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        let s = EmbeddedStore::open(&path).unwrap();
        assert_eq!(s.revision().unwrap(), 0);
    }

    #[test]
    fn embedded_store_open_failure_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let err = EmbeddedStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }));
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        // The same file cannot be opened twice (redb's lock): the second opener must not
        // silently share it.
        let path = dir.path().join("warren.db");
        let _first = EmbeddedStore::open(&path).unwrap();
        assert!(EmbeddedStore::open(&path).is_err());
    }
}
