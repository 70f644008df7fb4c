//! The agent: configuration, lifecycle and orchestration (validate → ipam → driver → firewall →
//! dns → store, undoing completed steps when a later one fails).
//!
//! [`Agent`] is the state shared by every API request. It owns the store and the kernel objects
//! Warren creates; the API layer only translates Docker-shaped requests into calls on it.

pub mod config;
mod confinement;
pub mod containers;
mod dns;
pub mod lock;
pub mod networks;
pub mod reconcile;
pub mod records;
pub mod schema;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::drivers::bridge::BridgeDriver;
use crate::drivers::host::{HostDriver, NullDriver};
use crate::drivers::macvlan::MacvlanDriver;
use crate::drivers::Driver;
use crate::error::{ErrorKind, HasKind};
use crate::firewall::Firewall;
use crate::runtime::image::ImageStore;
use crate::store::{CompositeStore, EmbeddedStore, Key, Scope, Store, StoreError, StoreExt};
use config::DaemonConfig;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("read or create the engine id in {path}")]
    EngineId {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for AgentError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// The running agent.
#[derive(Debug)]
pub struct Agent {
    pub config: DaemonConfig,
    /// Stable identity of this engine (kept in the data root), reported by `/info`.
    pub id: String,
    pub started: SystemTime,
    pub store: Arc<dyn Store>,
    /// Images under `<data-root>/images` (import, load, layers for container root filesystems).
    pub images: Arc<ImageStore>,
    drivers: BTreeMap<&'static str, Arc<dyn Driver>>,
    firewall: Firewall,
    /// Serialises changes to networks and endpoints. Reads never wait on it; the store's
    /// compare-and-swap commits keep concurrent agents (several hosts, later) consistent too.
    mutations: tokio::sync::Mutex<()>,
    /// Containers' in-memory state: events, exec instances, starts in flight.
    runtime: containers::ContainerRuntime,
    /// Embedded DNS: names of user networks, served inside attached namespaces.
    pub dns: crate::dns::Dns,
    /// Compiled seccomp filters and what "every capability" means on this host.
    seccomp: confinement::SeccompCache,
}

/// Where the embedded store lives inside the data root.
pub const STORE_FILE: &str = "warren.db";

impl Agent {
    /// Open the store and register the drivers. Touches no kernel state: see [`Agent::reconcile`].
    pub fn new(config: DaemonConfig) -> Result<Agent, crate::Error> {
        let id = engine_id(&config.data_root)?;
        let store = EmbeddedStore::open(config.data_root.join(STORE_FILE))?;
        schema::migrate(&store)?;
        // One host: the embedded store holds both scopes (a cluster store takes Global later).
        let store: Arc<dyn Store> = Arc::new(CompositeStore::single(Arc::new(store)));
        // Expired leases reach watchers on time (see store::lease).
        if let Err(e) = crate::store::lease::spawn_reaper(Arc::downgrade(&store)) {
            tracing::warn!("cannot start the store's lease reaper: {e}");
        }
        let images = ImageStore::open(&config.data_root)?;
        let drivers: BTreeMap<&'static str, Arc<dyn Driver>> = [
            Arc::new(BridgeDriver::default()) as Arc<dyn Driver>,
            Arc::new(MacvlanDriver),
            Arc::new(HostDriver),
            Arc::new(NullDriver),
        ]
        .into_iter()
        .map(|d| (d.name(), d))
        .collect();
        Ok(Agent {
            dns: crate::dns::Dns::new(&config.dns),
            config,
            id,
            started: SystemTime::now(),
            store,
            images: Arc::new(images),
            drivers,
            firewall: Firewall::default(),
            mutations: tokio::sync::Mutex::new(()),
            runtime: containers::ContainerRuntime::default(),
            seccomp: confinement::SeccompCache::default(),
        })
    }

    /// Network drivers this agent can create networks with (reported by `/info`).
    pub fn network_drivers(&self) -> Vec<String> {
        self.drivers.keys().map(|d| d.to_string()).collect()
    }
}

/// What [`lookup_by_id_or_name`] found.
pub(crate) enum Lookup<T> {
    Found(T),
    Missing,
    /// Several records have ids starting with what was typed (how many).
    Ambiguous(usize),
}

/// Docker's order for finding a record by what a user typed: its full id, its name, then a
/// unique id prefix. `record_key` and `name_key` build the store keys for an id and a name,
/// `prefix` is the Local store directory of all such records.
pub(crate) fn lookup_by_id_or_name<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    typed: &str,
    record_key: fn(&str) -> Result<Key, StoreError>,
    name_key: fn(&str) -> Result<Key, StoreError>,
    prefix: &str,
    id_of: fn(&T) -> &str,
) -> Result<Lookup<T>, StoreError> {
    if let Some((record, _)) = store.get_json::<T>(&record_key(typed)?)? {
        return Ok(Lookup::Found(record));
    }
    if let Some((id, _)) = store.get_json::<String>(&name_key(typed)?)? {
        if let Some((record, _)) = store.get_json::<T>(&record_key(&id)?)? {
            return Ok(Lookup::Found(record));
        }
    }
    let mut matches = store
        .list_values::<T>(Scope::Local, prefix)?
        .into_iter()
        .filter(|r| id_of(r).starts_with(typed));
    Ok(match (matches.next(), matches.count()) {
        (None, _) => Lookup::Missing,
        (Some(record), 0) => Lookup::Found(record),
        (Some(_), others) => Lookup::Ambiguous(others + 1),
    })
}

/// A random 64-hex-digit identifier, the shape Docker uses for object ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the kernel's random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn engine_id(data_root: &Path) -> Result<String, AgentError> {
    let path = data_root.join("engine-id");
    let err = |source| AgentError::EngineId {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Ok(_) => write_engine_id(&path).map_err(err),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_engine_id(&path).map_err(err),
        Err(e) => Err(err(e)),
    }
}

fn write_engine_id(path: &Path) -> std::io::Result<String> {
    let id = random_id();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{id}\n"))?;
    std::fs::rename(&tmp, path)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_takes_id_then_name_then_a_unique_id_prefix() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Rec {
            id: String,
        }
        let store = crate::store::MemoryStore::new();
        let rec_key = |id: &str| Key::local(format!("recs/{id}"));
        let mut txn = crate::store::Txn::new();
        for id in ["abc1", "abc2", "def9"] {
            txn = txn
                .put_json(rec_key(id).unwrap(), &Rec { id: id.into() })
                .unwrap();
        }
        // A name that looks like another record's id prefix: names win over prefixes.
        txn = txn
            .put_json(Key::local("rec-names/abc").unwrap(), &"def9")
            .unwrap();
        store.commit(txn).unwrap();
        let find = |typed: &str| {
            lookup_by_id_or_name(
                &store,
                typed,
                |id| Key::local(format!("recs/{id}")),
                |name| Key::local(format!("rec-names/{name}")),
                "recs/",
                |r: &Rec| &r.id,
            )
            .unwrap()
        };
        let id_of = |l: Lookup<Rec>| match l {
            Lookup::Found(r) => r.id,
            Lookup::Missing => "missing".into(),
            Lookup::Ambiguous(n) => format!("ambiguous {n}"),
        };
        assert_eq!(id_of(find("abc2")), "abc2");
        assert_eq!(id_of(find("abc")), "def9");
        assert_eq!(id_of(find("de")), "def9");
        assert_eq!(id_of(find("ab")), "ambiguous 2");
        assert_eq!(id_of(find("x")), "missing");
    }

    #[test]
    fn random_ids_are_64_hex_and_distinct() {
        let (a, b) = (random_id(), random_id());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn engine_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = engine_id(dir.path()).unwrap();
        assert_eq!(engine_id(dir.path()).unwrap(), first);
    }
}
