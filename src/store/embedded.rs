//! `EmbeddedStore`: the default [`Store`], one redb file (e.g. `<data-root>/warren.db`).
//!
//! Layout: tables `local` and `global` map path → (8-byte little-endian revision ‖ value),
//! table `meta` holds the store-wide `revision` and the `format` version, and table `leased`
//! names the keys bound to a lease (`<scope>:<path>` → lease id). Leases die with the process
//! that granted them (see `lease`), so opening the store deletes every key still in `leased`,
//! at one revision. The revision counter
//! is updated in the same redb transaction as the entries it stamps, so after a crash both are
//! from the same commit. Commits use `Durability::Immediate` (fsync before returning), except
//! deferred ones (`Durability::None`), which the next sync or durable commit writes out.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::lease::Leases;
use super::watch::{Watch, Watchers};
use super::{check_path, Entry, Event, Key, LeaseId, Listing, Op, Scope, Store, StoreError, Txn};

const LOCAL: TableDefinition<&str, &[u8]> = TableDefinition::new("local");
const GLOBAL: TableDefinition<&str, &[u8]> = TableDefinition::new("global");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LEASED: TableDefinition<&str, u64> = TableDefinition::new("leased");
const META_REVISION: &str = "revision";
const META_FORMAT: &str = "format";
/// Bumped on any incompatible change to the layout above.
const FORMAT: u64 = 1;

fn table(scope: Scope) -> TableDefinition<'static, &'static str, &'static [u8]> {
    match scope {
        Scope::Local => LOCAL,
        Scope::Global => GLOBAL,
    }
}

/// The crash-safe embedded store. One writer at a time (commits serialise on a lock); reads run
/// concurrently on redb snapshots.
pub struct EmbeddedStore {
    db: Database,
    path: PathBuf,
    /// Serialises commit + watch notification (and watch registration), so watchers see commits
    /// in revision order and a new watch's start revision is exact.
    write: Mutex<()>,
    /// A deferred commit happened since the last durable one (changed under `write`).
    unsynced: AtomicBool,
    watchers: Watchers,
    leases: Leases,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Map a redb error: corruption gets its own variant, everything else is an I/O failure of
/// `action`.
fn redb_err<E: Into<redb::Error>>(action: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| match e.into() {
        redb::Error::Corrupted(what) => StoreError::Corrupt { what },
        other => StoreError::Io {
            action,
            source: Box::new(other),
        },
    }
}

impl EmbeddedStore {
    /// Open the store at `path`, creating it if missing. After an unclean shutdown redb repairs
    /// the file here, to the last committed transaction.
    ///
    /// A new store is built under a temporary name and renamed into place once complete:
    /// redb initialises a new file in place, and a process killed in the middle of that left a
    /// file redb refuses forever after ("Not a redb database: magic number mismatch"). An
    /// empty file counts as missing, and a half-built temporary one is discarded.
    pub fn open(path: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
        let path = path.as_ref();
        let missing = match std::fs::metadata(path) {
            Ok(meta) => meta.len() == 0,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        if missing {
            let create_err = |source: std::io::Error| StoreError::Open {
                path: path.to_path_buf(),
                source: Box::new(source),
            };
            let tmp = path.with_extension("db.new");
            match std::fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(create_err(e)),
            }
            // Creating commits the initial tables durably, then closes the file.
            drop(EmbeddedStore::open_in_place(&tmp)?);
            std::fs::rename(&tmp, path).map_err(create_err)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(create_err)?;
            }
        }
        EmbeddedStore::open_in_place(path)
    }

    fn open_in_place(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let path = path.to_path_buf();
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.clone(),
            source,
        };
        let db = Database::create(&path).map_err(|e| open_err(Box::new(e)))?;
        let store = EmbeddedStore {
            db,
            path: path.clone(),
            write: Mutex::new(()),
            unsynced: AtomicBool::new(false),
            // Replaced below, once the revision is known.
            watchers: Watchers::new(0),
            leases: Leases::default(),
        };
        store.init().map_err(|e| open_err(Box::new(e)))?;
        store
            .drop_orphaned_leased_keys()
            .map_err(|e| open_err(Box::new(e)))?;
        let revision = store.revision().map_err(|e| open_err(Box::new(e)))?;
        Ok(EmbeddedStore {
            watchers: Watchers::new(revision),
            ..store
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create the tables of a new file (so readers never meet a missing table) and check the
    /// format of an existing one.
    fn init(&self) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(redb_err("begin write"))?;
        tx.set_durability(Durability::Immediate)
            .map_err(redb_err("set durability"))?;
        {
            tx.open_table(LOCAL).map_err(redb_err("open table"))?;
            tx.open_table(GLOBAL).map_err(redb_err("open table"))?;
            tx.open_table(LEASED).map_err(redb_err("open table"))?;
            let mut meta = tx.open_table(META).map_err(redb_err("open table"))?;
            let format = meta
                .get(META_FORMAT)
                .map_err(redb_err("read format"))?
                .map(|g| g.value());
            match format {
                None => {
                    meta.insert(META_FORMAT, FORMAT)
                        .map_err(redb_err("write format"))?;
                    if meta
                        .get(META_REVISION)
                        .map_err(redb_err("read revision"))?
                        .is_none()
                    {
                        meta.insert(META_REVISION, 0)
                            .map_err(redb_err("write revision"))?;
                    }
                }
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(StoreError::Corrupt {
                        what: format!("unknown format version {other} (this build reads {FORMAT})"),
                    })
                }
            }
        }
        tx.commit().map_err(redb_err("commit"))
    }

    /// Keys bound to leases of an earlier process: their holders are gone, so are they.
    fn drop_orphaned_leased_keys(&self) -> Result<(), StoreError> {
        let orphans = {
            let tx = self.db.begin_read().map_err(redb_err("begin read"))?;
            let t = tx.open_table(LEASED).map_err(redb_err("open table"))?;
            let mut keys = Vec::new();
            for item in t.iter().map_err(redb_err("list"))? {
                let (k, _) = item.map_err(redb_err("list"))?;
                keys.push(leased_key(k.value())?);
            }
            keys
        };
        if orphans.is_empty() {
            return Ok(());
        }
        tracing::info!(
            keys = orphans.len(),
            "deleting keys of leases from before the restart"
        );
        let _writer = self.lock_writer();
        self.apply_locked(orphans.into_iter().fold(Txn::new(), Txn::delete), true)?;
        Ok(())
    }

    /// Delete the keys of expired leases (one commit per lease, not waiting for the disk: a
    /// crash deletes them at the next open anyway), under the writer lock.
    fn expire(&self) -> Result<(), StoreError> {
        let expired = self.leases.take_expired();
        if expired.is_empty() {
            return Ok(());
        }
        let _writer = self.lock_writer();
        for (_, keys) in expired {
            self.apply_locked(keys.into_iter().fold(Txn::new(), Txn::delete), false)?;
        }
        Ok(())
    }

    /// Apply `txn`; with `durable`, fsync before returning (which also makes every earlier
    /// deferred commit durable).
    fn apply(&self, txn: Txn, durable: bool) -> Result<u64, StoreError> {
        self.expire()?;
        let _writer = self.lock_writer();
        self.apply_locked(txn, durable)
    }

    /// [`apply`](Self::apply) with the writer lock held.
    fn apply_locked(&self, txn: Txn, durable: bool) -> Result<u64, StoreError> {
        txn.check_ops()?;
        for op in &txn.ops {
            if let Op::Put(_, _, Some(lease)) = op {
                self.leases.check_alive(*lease)?;
            }
        }
        let mut tx = self.db.begin_write().map_err(redb_err("begin write"))?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(redb_err("set durability"))?;
        let mut events = Vec::with_capacity(txn.ops.len());
        let revision = {
            let mut local = tx.open_table(LOCAL).map_err(redb_err("open table"))?;
            let mut global = tx.open_table(GLOBAL).map_err(redb_err("open table"))?;
            let mut meta = tx.open_table(META).map_err(redb_err("open table"))?;
            let mut leased = tx.open_table(LEASED).map_err(redb_err("open table"))?;
            let current = meta
                .get(META_REVISION)
                .map_err(redb_err("read revision"))?
                .map(|g| g.value())
                .ok_or_else(|| StoreError::Corrupt {
                    what: "revision counter missing".into(),
                })?;

            txn.check_compares(|key| {
                let t = match key.scope {
                    Scope::Local => &local,
                    Scope::Global => &global,
                };
                match t.get(key.path.as_str()).map_err(redb_err("read"))? {
                    Some(raw) => Ok(Some(decode(key.scope, &key.path, raw.value())?.0)),
                    None => Ok(None),
                }
            })?;
            if txn.ops.is_empty() {
                // Nothing to write: dropping `tx` aborts it.
                return Ok(current);
            }

            let revision = current + 1;
            for op in txn.ops {
                let t = match op.key().scope {
                    Scope::Local => &mut local,
                    Scope::Global => &mut global,
                };
                let bound = format!("{}", op.key());
                match op {
                    Op::Put(key, value, lease) => {
                        t.insert(key.path.as_str(), encode(revision, &value).as_slice())
                            .map_err(redb_err("write"))?;
                        match lease {
                            Some(id) => leased.insert(bound.as_str(), id.0).map(|_| ()),
                            None => leased.remove(bound.as_str()).map(|_| ()),
                        }
                        .map_err(redb_err("write lease binding"))?;
                        self.leases.bind(&key, lease);
                        events.push(Event::Put(Entry {
                            key,
                            value,
                            revision,
                        }));
                    }
                    Op::Delete(key) => {
                        leased
                            .remove(bound.as_str())
                            .map_err(redb_err("delete lease binding"))?;
                        self.leases.unbind(&key);
                        if t.remove(key.path.as_str())
                            .map_err(redb_err("delete"))?
                            .is_some()
                        {
                            events.push(Event::Delete(key, revision));
                        }
                    }
                }
            }
            meta.insert(META_REVISION, revision)
                .map_err(redb_err("write revision"))?;
            revision
        };
        tx.commit().map_err(redb_err("commit"))?;
        self.unsynced.store(!durable, Ordering::Relaxed);
        // Notify while still holding the writer lock to keep revision order. (A deferred
        // commit lost in a crash was only ever seen by watchers of this process.)
        self.watchers.notify(&events);
        Ok(revision)
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic under the lock leaves nothing inconsistent.
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The key named by an entry of the `leased` table (`<scope>:<path>`, as [`Key`] displays).
fn leased_key(raw: &str) -> Result<Key, StoreError> {
    let parsed = match raw.split_once(':') {
        Some(("local", path)) => Key::local(path).ok(),
        Some(("global", path)) => Key::global(path).ok(),
        _ => None,
    };
    parsed.ok_or_else(|| StoreError::Corrupt {
        what: format!("lease binding for unreadable key {raw:?}"),
    })
}

/// Split a stored record into (revision, value).
fn decode(scope: Scope, path: &str, raw: &[u8]) -> Result<(u64, Vec<u8>), StoreError> {
    match raw.split_first_chunk::<8>() {
        Some((rev, value)) => Ok((u64::from_le_bytes(*rev), value.to_vec())),
        None => Err(StoreError::Corrupt {
            what: format!(
                "record {scope}:{path} is {} bytes, shorter than its header",
                raw.len()
            ),
        }),
    }
}

fn encode(revision: u64, value: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(8 + value.len());
    raw.extend_from_slice(&revision.to_le_bytes());
    raw.extend_from_slice(value);
    raw
}

impl Store for EmbeddedStore {
    fn get(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        self.expire()?;
        let tx = self.db.begin_read().map_err(redb_err("begin read"))?;
        let t = tx
            .open_table(table(key.scope))
            .map_err(redb_err("open table"))?;
        let Some(raw) = t.get(key.path.as_str()).map_err(redb_err("read"))? else {
            return Ok(None);
        };
        let (revision, value) = decode(key.scope, &key.path, raw.value())?;
        Ok(Some(Entry {
            key: key.clone(),
            value,
            revision,
        }))
    }

    fn list(&self, scope: Scope, prefix: &str) -> Result<Listing, StoreError> {
        check_path(prefix, true)?;
        self.expire()?;
        let tx = self.db.begin_read().map_err(redb_err("begin read"))?;
        let revision = read_revision(&tx)?;
        let t = tx
            .open_table(table(scope))
            .map_err(redb_err("open table"))?;
        let mut out = Vec::new();
        for item in t.range::<&str>(prefix..).map_err(redb_err("list"))? {
            let (k, v) = item.map_err(redb_err("list"))?;
            let path = k.value();
            if !path.starts_with(prefix) {
                break;
            }
            let (revision, value) = decode(scope, path, v.value())?;
            out.push(Entry {
                key: Key {
                    scope,
                    path: path.to_owned(),
                },
                value,
                revision,
            });
        }
        Ok(Listing {
            entries: out,
            revision,
        })
    }

    fn commit(&self, txn: Txn) -> Result<u64, StoreError> {
        self.apply(txn, true)
    }

    fn commit_deferred(&self, txn: Txn) -> Result<u64, StoreError> {
        self.apply(txn, false)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let _writer = self.lock_writer();
        if !self.unsynced.load(Ordering::Relaxed) {
            return Ok(());
        }
        // An empty durable commit writes out the deferred ones before it.
        let mut tx = self.db.begin_write().map_err(redb_err("begin write"))?;
        tx.set_durability(Durability::Immediate)
            .map_err(redb_err("set durability"))?;
        tx.commit().map_err(redb_err("sync"))?;
        self.unsynced.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn revision(&self) -> Result<u64, StoreError> {
        self.expire()?;
        let tx = self.db.begin_read().map_err(redb_err("begin read"))?;
        read_revision(&tx)
    }

    fn watch_from(&self, scope: Scope, prefix: &str, after: u64) -> Result<Watch, StoreError> {
        check_path(prefix, true)?;
        self.expire()?;
        let _writer = self.lock_writer();
        let tx = self.db.begin_read().map_err(redb_err("begin read"))?;
        self.watchers.add(scope, prefix, after, read_revision(&tx)?)
    }

    fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.leases.grant(ttl)
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        self.leases.keep_alive(lease)
    }

    fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        let keys = self.leases.remove(lease)?;
        self.apply(keys.into_iter().fold(Txn::new(), Txn::delete), true)?;
        Ok(())
    }

    fn expire_leases(&self) -> Result<Option<Instant>, StoreError> {
        self.expire()?;
        Ok(self.leases.next_deadline())
    }
}

fn read_revision(tx: &redb::ReadTransaction) -> Result<u64, StoreError> {
    let meta = tx.open_table(META).map_err(redb_err("open table"))?;
    meta.get(META_REVISION)
        .map_err(redb_err("read revision"))?
        .map(|g| g.value())
        .ok_or_else(|| StoreError::Corrupt {
            what: "revision counter missing".into(),
        })
}
