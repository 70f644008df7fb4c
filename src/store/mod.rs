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
//! cluster.
//!
//! Store v2, what a cluster backend needs:
//! - [`Store::list`] returns the revision it read at, and [`Store::watch_from`] resumes a watch
//!   right after it (or after the last event a watcher saw before a reconnect), replaying what
//!   it missed; a revision the store no longer remembers fails with
//!   [`StoreError::Compacted`], and the watcher re-lists.
//! - Leases ([`Store::grant`], [`Store::keep_alive`], [`Store::revoke`]; puts bound with
//!   [`Txn::put_leased`]): a key that lives only while its holder does, deleted (and seen as a
//!   delete by watchers) when the lease expires. See `lease`.
//! - [`StoreError::Unavailable`] for a backend that cannot be reached.
//!
//! Why reads stay synchronous: every backend serves them from local memory or disk — the
//! embedded file through redb's memory map, the memory store from its map, and a cluster
//! backend from a mirror kept current by a watch (the informer pattern: one `list`, then
//! `watch_from` its revision). A read never waits for the network, so the planning code
//! (IPAM, name checks) stays plain functions; a stale mirror is caught by the compares of the
//! commit that follows, which fail with [`StoreError::Conflict`] and are re-planned.
//! Watches are asynchronous streams ([`Watch::next`]) for the agent's tasks.

mod composite;
mod embedded;
pub mod lease;
mod memory;
mod watch;

#[cfg(test)]
pub(crate) mod conformance;

pub use composite::CompositeStore;
pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;
pub use watch::Watch;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ErrorKind, HasKind};

/// Where a key lives: on this host only, or shared across the cluster. Also a network's scope
/// (Docker's `Scope`: "local" or "global"), which its driver decides.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
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

/// A lease: keys put under it live as long as it is kept alive (see [`Store::grant`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct LeaseId(pub u64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lease {:x}", self.0)
    }
}

/// What [`Store::list`] read, and the store revision it read at: a watch started from that
/// revision ([`Store::watch_from`]) misses nothing and repeats nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub revision: u64,
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
    /// Put a value, bound to a lease or not (a put without a lease unbinds the key from any).
    Put(Key, Vec<u8>, Option<LeaseId>),
    /// Deleting an absent key is a no-op (no event), like etcd.
    Delete(Key),
}

impl Op {
    pub fn key(&self) -> &Key {
        match self {
            Op::Put(k, _, _) | Op::Delete(k) => k,
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
        self.ops.push(Op::Put(key, value, None));
        self
    }

    /// Put a value that lives as long as `lease` (the commit fails with
    /// [`StoreError::LeaseNotFound`] if the lease is gone).
    pub fn put_leased(mut self, key: Key, value: Vec<u8>, lease: LeaseId) -> Txn {
        self.ops.push(Op::Put(key, value, Some(lease)));
        self
    }

    /// [`put_leased`](Txn::put_leased) with `value` encoded as JSON.
    pub fn put_json_leased<T: Serialize + ?Sized>(
        self,
        key: Key,
        value: &T,
        lease: LeaseId,
    ) -> Result<Txn, StoreError> {
        let bytes = encode_json(&key, value)?;
        Ok(self.put_leased(key, bytes, lease))
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

/// A key-value store with etcd-like semantics. Reads are served locally (see the module
/// documentation); a commit may block briefly (a disk sync).
pub trait Store: Send + Sync + fmt::Debug {
    /// The entry at `key`, if any.
    fn get(&self, key: &Key) -> Result<Option<Entry>, StoreError>;

    /// Every entry of `scope` whose path starts with `prefix` (plain string prefix; end it with
    /// `/` to list one directory), ordered by path, and the revision of that snapshot. An empty
    /// prefix lists the whole scope.
    fn list(&self, scope: Scope, prefix: &str) -> Result<Listing, StoreError>;

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

    /// Changes under (`scope`, `prefix`) committed after revision `after`, in revision order:
    /// those the store still remembers are replayed first, then new ones follow as they are
    /// committed. `after` older than the store remembers → [`StoreError::Compacted`] (list
    /// again, then watch from the listing's revision); newer than the store →
    /// [`StoreError::FutureRevision`]. See [`Watch`] for a watcher that falls behind.
    fn watch_from(&self, scope: Scope, prefix: &str, after: u64) -> Result<Watch, StoreError>;

    /// Changes committed from now on.
    fn watch(&self, scope: Scope, prefix: &str) -> Result<Watch, StoreError> {
        self.watch_from(scope, prefix, self.revision()?)
    }

    /// A new lease of `ttl` (at most [`lease::MAX_TTL`]).
    fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Renew `lease` for another TTL (returned); [`StoreError::LeaseNotFound`] once it expired.
    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError>;

    /// End `lease` now: its keys are deleted at one revision.
    fn revoke(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Delete the keys of every lease that has run out; returns when the next one is due.
    /// Stores call it themselves before each operation; [`lease::spawn_reaper`] calls it on
    /// time. Backends whose server expires leases (etcd) keep the default.
    fn expire_leases(&self) -> Result<Option<Instant>, StoreError> {
        Ok(None)
    }
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
            .entries
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
        self.list(scope, prefix)?
            .entries
            .iter()
            .map(Entry::json)
            .collect()
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
    /// The backend cannot be reached (a cluster store without quorum, a closed connection).
    #[error("state store {what} is unavailable")]
    Unavailable {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("revision {requested} is compacted (the store remembers changes after {compacted})")]
    Compacted { requested: u64, compacted: u64 },
    #[error("revision {requested} is in the future (the store is at {current})")]
    FutureRevision { requested: u64, current: u64 },
    #[error("transaction spans two scopes ({first} and {other}); commit each scope apart")]
    CrossScope { first: Key, other: Key },
    #[error("{lease} not found (expired or revoked)")]
    LeaseNotFound { lease: LeaseId },
    #[error("lease TTL {ttl:?} out of range (1 ns to {max:?})", max = lease::MAX_TTL)]
    InvalidTtl { ttl: Duration },
}

impl HasKind for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Conflict { .. } => ErrorKind::Conflict,
            StoreError::Open { .. } | StoreError::Unavailable { .. } => ErrorKind::Unavailable,
            StoreError::InvalidTtl { .. } | StoreError::FutureRevision { .. } => ErrorKind::Invalid,
            StoreError::LeaseNotFound { .. } => ErrorKind::NotFound,
            StoreError::Compacted { .. } => ErrorKind::Conflict,
            // A bad path means an unchecked name reached a key: the request, not the store.
            StoreError::InvalidPath { .. } => ErrorKind::Invalid,
            StoreError::DuplicateOp { .. }
            | StoreError::CrossScope { .. }
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
    fn memory_store_conforms() {
        conformance::run(|| Arc::new(MemoryStore::new()));
    }

    #[test]
    fn embedded_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        conformance::run(|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Arc::new(EmbeddedStore::open(dir.path().join(format!("{i}.db"))).unwrap())
        });
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
    #[test]
    fn deferred_commits_are_durable_after_sync() {
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
    fn leased_keys_do_not_outlive_the_process_that_held_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warren.db");
        {
            let s = EmbeddedStore::open(&path).unwrap();
            let lease = s.grant(Duration::from_secs(3600)).unwrap();
            s.commit(
                Txn::new()
                    .put_leased(g("nodes/me"), b"me".to_vec(), lease)
                    .put_leased(l("eps/1"), vec![], lease)
                    .put(g("networks/n"), vec![]),
            )
            .unwrap();
            // Re-put without the lease: no longer bound, survives.
            s.commit(Txn::new().put(l("eps/1"), vec![1])).unwrap();
        }
        let s = EmbeddedStore::open(&path).unwrap();
        assert_eq!(value(&s, &g("nodes/me")), None);
        assert_eq!(value(&s, &l("eps/1")), Some(vec![1]));
        assert!(value(&s, &g("networks/n")).is_some());
        // The deletion was one commit after the two of the first life.
        assert_eq!(s.revision().unwrap(), 3);
        drop(s);
        // And it happens once: a clean reopen changes nothing.
        assert_eq!(EmbeddedStore::open(&path).unwrap().revision().unwrap(), 3);
    }

    #[test]
    fn unavailable_is_its_own_kind() {
        let err = StoreError::Unavailable {
            what: "etcd://h1:2379".into(),
            source: "connection refused".into(),
        };
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.to_string(), "state store etcd://h1:2379 is unavailable");
    }
}
