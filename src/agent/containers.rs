//! Containers: create → start → (exit) → remove, orchestrated over networks and the runtime.
//!
//! Order of work, and why:
//! - **Networking first.** `create` pins a network namespace for the container
//!   (`/run/netns/warren-<id12>`, so `ip netns` sees it too), brings lo up and wires every
//!   requested network into it through the ordinary connect path (target = the container).
//!   The runtime later *joins* that namespace by path, so networking never depends on the
//!   runtime, a created-but-not-started container can be connected and disconnected (compose
//!   does that), and inspect shows its addresses before start. `--network host` joins nothing
//!   (the host's namespace); `none` gets a namespace with only lo.
//! - **A shim per started container** (see `runtime`): it owns the container's init, log and
//!   exit status, so stopping or killing `warrend` leaves containers running. The agent keeps a
//!   monitor task per running container that waits on the shim's socket, records the exit in
//!   the store and performs `--rm`.
//! - **The store holds intent, the runtime is observed.** A record says what was asked for and
//!   what was last seen (start and exit times, exit code); whether a container runs right now
//!   is read from its bundle (`state.json`, the init's pid and start time, `exit.json`).
//! - On agent start ([`Agent::reconcile_containers`]) running containers are re-adopted (a
//!   monitor again; their endpoints were kept by network reconciliation because their
//!   namespace files still exist), exits that happened while the agent was away are recorded,
//!   and containers whose shim vanished without an exit status are marked exited (255), their
//!   orphaned init killed.
//!
//! Store layout (Local scope): `containers/<id>` → [`ContainerRecord`],
//! `container-names/<name>` → id (created with an Absent compare: names are unique).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::records::*;
use super::{lookup_by_id_or_name, random_id, Agent, Lookup};
use crate::api::containers::{ContainerCreateRequest, ExecCreateRequest, HostConfig};
use crate::api::types::{EndpointSettings, NetworkConnectRequest};
use crate::error::{Error, ErrorKind};
use crate::firewall::parse_port_spec;
use crate::runtime::bundle::{Bundle, ExitStatus};
use crate::runtime::confine::SecurityOptions;
use crate::runtime::exe::{HelperBinary, ShimLauncher, EXEC_NAME};
use crate::runtime::logs::{self, LogEntry, Stream};
use crate::runtime::process::ProcessSpec;
use crate::runtime::spec::{BindFile, ContainerSpec, Limits};
use crate::runtime::RuntimeError;
use crate::store::{Key, Scope, StoreError, StoreExt, Txn};

/// Directory under the data root and the exec root where the directories of removed
/// containers wait for their deletion in the background (see [`discard_dir`]).
const TRASH_DIR: &str = "trash";

/// Remove a removed container's directory `dir` (under `root`) without waiting for the disk:
/// it is renamed into `<root>/trash/` — the same file system, so the rename is atomic and
/// frees nothing — and deleted by a blocking task. Freeing blocks can be slow (on a
/// virtio disk with online discard each freed block cost ~4 ms, i.e. ~20 ms for the five
/// directories of an overlay upper layer), and nothing needs the directory any more once the
/// container's record is gone. Falls back to deleting in place when the rename fails; a
/// missing `dir` is fine. What an agent crash leaves in the trash is deleted on the next
/// start ([`empty_trash`]).
fn discard_dir(dir: &Path, root: &Path) -> std::io::Result<()> {
    let not_found = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Ok(())
        } else {
            Err(e)
        }
    };
    let Some(name) = dir.file_name() else {
        return std::fs::remove_dir_all(dir).or_else(not_found);
    };
    let trash = root.join(TRASH_DIR);
    let target = trash.join(name);
    match std::fs::create_dir_all(&trash).and_then(|()| std::fs::rename(dir, &target)) {
        Ok(()) => {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = std::fs::remove_dir_all(&target) {
                    tracing::warn!(path = %target.display(), error = %e, "cannot delete a removed container's directory");
                }
            });
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => Ok(()),
        Err(_) => std::fs::remove_dir_all(dir).or_else(not_found),
    }
}

/// Delete, in the background, whatever an earlier agent left in `<root>/trash/`. Only the
/// entries present now: later discards have other (fresh, unique) names.
fn empty_trash(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join(TRASH_DIR)) else {
        return;
    };
    let leftovers: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    if leftovers.is_empty() {
        return;
    }
    tokio::task::spawn_blocking(move || {
        for path in leftovers {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete a removed container's directory");
            }
        }
    });
}

/// Docker's smallest accepted memory limit.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// Exit code recorded when a container's shim vanished without recording one (Docker's).
const EXIT_UNKNOWN: i32 = 255;
/// Prefix of the pinned network namespaces of containers.
pub const NETNS_PREFIX: &str = "warren-";

pub fn container_key(id: &str) -> Result<Key, StoreError> {
    Key::local(format!("containers/{id}"))
}

pub fn container_name_key(name: &str) -> Result<Key, StoreError> {
    Key::local(format!("container-names/{name}"))
}

const CONTAINERS_PREFIX: &str = "containers/";

/// A container as asked for, plus what the agent decided and last saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The image as the user named it, and what it resolved to.
    pub image: String,
    pub image_id: String,
    pub layers: Vec<PathBuf>,
    /// The request as received (echoed by inspect as `Config` / `HostConfig`).
    pub request: ContainerCreateRequest,
    /// The process that runs: argv, merged environment, directory and user.
    pub process: ProcessSpec,
    pub hostname: String,
    /// `bridge`, `host`, `none` or a network name: Docker's NetworkMode.
    pub network_mode: String,
    /// Networks wired at create, in order, with the endpoint settings asked for.
    pub networks: Vec<(String, EndpointSettings)>,
    /// The container's network namespace (None: the host's).
    pub netns: Option<PathBuf>,
    pub limits: Limits,
    /// What the container may do, as asked for (resolved against the daemon's defaults at
    /// every start). Records written before confinement existed read as the defaults.
    #[serde(default)]
    pub security: SecurityOptions,
    pub init: bool,
    pub auto_remove: bool,
    /// Last observed run: RFC 3339 times, exit code and start error.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: i32,
    pub error: String,
}

impl ContainerRecord {
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

/// What `ps` and inspect show about a container's state right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// created | running | exited
    pub status: &'static str,
    pub pid: i32,
    pub exit_code: i32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Observed {
    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

/// Something that happened to a container (for wait and attach).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEvent {
    Started(String),
    Exited(String, i32),
    Removed(String, i32),
}

/// An `exec` instance (kept in memory, like dockerd does).
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub id: String,
    pub container_id: String,
    pub process: ProcessSpec,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub pid: u32,
}

/// One chunk of a container's or exec's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stream: Stream,
    pub data: String,
    /// Unix nanoseconds (for `logs -t`).
    pub time: u128,
}

/// How to read a container's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub tail: Option<usize>,
    /// Attach semantics: start at the log's current end and follow the next (or current) run.
    pub attach: bool,
}

/// The agent's in-memory container state: events, execs, starts in flight.
#[derive(Debug)]
pub struct ContainerRuntime {
    events: broadcast::Sender<ContainerEvent>,
    execs: Mutex<HashMap<String, ExecRecord>>,
    busy: Mutex<HashSet<String>>,
    monitored: Mutex<HashSet<String>>,
    /// Streams following a container's log (attach, logs -f) hold a read guard; auto-removal
    /// takes the write side (bounded wait) so that `run --rm` gets the last bytes of output
    /// before the log is deleted with the container.
    log_readers: Mutex<HashMap<String, Arc<tokio::sync::RwLock<()>>>>,
    /// The binary re-executed as shim and exec helper.
    binary: Arc<HelperBinary>,
    shims: Arc<ShimLauncher>,
    /// Serializes a container's names appearing (start) and going (exit), so that the late
    /// exit of one run cannot withdraw the names the next run has just published.
    pub(super) dns_gate: tokio::sync::Mutex<()>,
}

impl Default for ContainerRuntime {
    fn default() -> Self {
        let binary = Arc::new(HelperBinary::current());
        ContainerRuntime {
            events: broadcast::channel(1024).0,
            execs: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            monitored: Mutex::new(HashSet::new()),
            log_readers: Mutex::new(HashMap::new()),
            binary: Arc::clone(&binary),
            shims: Arc::new(ShimLauncher::new(binary)),
            dns_gate: tokio::sync::Mutex::new(()),
        }
    }
}

/// Frees a container's "start in progress" mark when dropped.
struct BusyGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.id);
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::msg(ErrorKind::Invalid, message)
}

fn not_found(what: &str) -> Error {
    Error::msg(ErrorKind::NotFound, format!("No such container: {what}"))
}

fn nanos_to_rfc3339(nanos: u128) -> String {
    let d = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
    rfc3339(UNIX_EPOCH + d)
}

/// Docker's rule for container names.
pub fn validate_container_name(name: &str) -> Result<(), Error> {
    let ok = name.len() >= 2
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// A Docker-style generated name, `adjective_noun`.
fn generated_name(seed: &str) -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "quirky", "serene", "sharp", "swift", "tender", "vivid", "witty", "zealous",
        "bold",
    ];
    const NOUN: &[&str] = &[
        "badger", "beaver", "coney", "ferret", "hare", "marmot", "mole", "otter", "rabbit", "vole",
        "wombat", "gopher", "hedgehog", "meerkat", "mink", "possum", "shrew", "stoat", "weasel",
        "dormouse",
    ];
    let n = u64::from_str_radix(&seed[..seed.len().min(12)], 16).unwrap_or(0);
    let a = usize::try_from(n % ADJ.len() as u64).unwrap_or(0);
    let b = usize::try_from((n / 97) % NOUN.len() as u64).unwrap_or(0);
    format!("{}_{}", ADJ[a], NOUN[b])
}

/// Parse a signal as Docker accepts it: `KILL`, `SIGKILL`, `9`.
pub fn parse_signal(text: &str) -> Result<Signal, Error> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| invalid(format!("invalid signal: {text}")));
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| invalid(format!("invalid signal: {text}")))
}

/// "Up 5 minutes", "Exited (0) 3 seconds ago", "Created" (Docker's `Status`).
pub fn human_status(observed: &Observed, now: SystemTime) -> String {
    let since = |t: &Option<String>| -> Duration {
        t.as_deref()
            .and_then(parse_rfc3339)
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default()
    };
    match observed.status {
        "running" => format!("Up {}", human_duration(since(&observed.started_at))),
        "exited" => format!(
            "Exited ({}) {} ago",
            observed.exit_code,
            human_duration(since(&observed.finished_at))
        ),
        _ => "Created".into(),
    }
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// Parse the RFC 3339 UTC timestamps Warren writes.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<u64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from civil (Howard Hinnant), inverse of records::rfc3339.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().ok()?;
    Some(UNIX_EPOCH + Duration::new(days * 86_400 + hh * 3600 + mm * 60 + ss, nanos))
}

/// Docker's `--memory` syntax: a number with an optional b/k/m/g/t/p unit (binary).
pub fn parse_memory(text: &str) -> Result<i64, Error> {
    let bad = || {
        invalid(format!(
            "invalid memory size {text:?}: expected a number with an optional unit b, k, m, g (e.g. 64m)"
        ))
    };
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|r| !r.is_empty()).unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let value: f64 = num.parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok((value * mult as f64) as i64)
}

/// Docker's `--cpus` syntax: a decimal number of CPUs, as NanoCpus.
pub fn parse_cpus(text: &str) -> Result<i64, Error> {
    let value: f64 = text.trim().parse().map_err(|_| {
        invalid(format!(
            "invalid --cpus value {text:?}: expected a number such as 1.5"
        ))
    })?;
    if !value.is_finite() || value <= 0.0 {
        return Err(invalid(format!(
            "invalid --cpus value {text:?}: must be a positive number"
        )));
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok((value * 1e9).round() as i64)
}

/// The host's resolv.conf without loopback nameservers (which a container cannot reach).
fn host_resolv_conf(dns: &[std::net::IpAddr]) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let ip: Option<std::net::IpAddr> = words.next().and_then(|w| w.parse().ok());
            if !dns.is_empty() || ip.is_none_or(|ip| ip.is_loopback()) {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    for ip in dns {
        out.push_str(&format!("nameserver {ip}\n"));
        servers += 1;
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// The image a container runs: its layers and configuration defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedImage {
    pub id: String,
    pub layers: Vec<PathBuf>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

impl Agent {
    /// Find an image: a name or id in the image store, or an absolute path to a root
    /// filesystem directory (run as a one-layer image; handy for labs and tests).
    pub fn resolve_image(&self, name: &str) -> Result<ResolvedImage, Error> {
        let no_such = || Error::msg(ErrorKind::NotFound, format!("No such image: {name}"));
        if name.is_empty() {
            return Err(invalid("no image given"));
        }
        if name.starts_with('/') {
            let path = Path::new(name);
            if !path.is_dir() {
                return Err(no_such());
            }
            return Ok(ResolvedImage {
                id: format!("rootfs:{name}"),
                layers: vec![path.to_path_buf()],
                ..Default::default()
            });
        }
        let image = self.images.resolve(name)?;
        let config = image.config;
        Ok(ResolvedImage {
            id: image.id,
            layers: image.layers,
            cmd: config.cmd.unwrap_or_default(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            env: config.env,
            working_dir: config.working_dir,
            user: config.user,
        })
    }

    /// Tell the image store which containers use an image, so `image rm` refuses those.
    fn register_image_users(&self) {
        let store = Arc::clone(&self.store);
        self.images.set_users(move |image_id| {
            store
                .list_json::<ContainerRecord>(Scope::Local, CONTAINERS_PREFIX)
                .map(|list| {
                    list.into_iter()
                        .filter(|(_, c, _)| c.image_id == image_id)
                        .map(|(_, c, _)| c.name)
                        .collect()
                })
                .unwrap_or_default()
        });
    }

    /// Every container record.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>, Error> {
        Ok(self
            .store
            .list_values::<ContainerRecord>(Scope::Local, CONTAINERS_PREFIX)?)
    }

    /// Find a container as Docker does: full id, exact name, then unique id prefix.
    pub fn find_container(&self, id_or_name: &str) -> Result<ContainerRecord, Error> {
        let key = id_or_name.trim_start_matches('/');
        if key.is_empty() || key.contains('/') || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(not_found(id_or_name));
        }
        let found = lookup_by_id_or_name(
            self.store.as_ref(),
            key,
            container_key,
            container_name_key,
            CONTAINERS_PREFIX,
            |c: &ContainerRecord| &c.id,
        )?;
        match found {
            Lookup::Found(container) => Ok(container),
            Lookup::Missing => Err(not_found(id_or_name)),
            Lookup::Ambiguous(n) => Err(invalid(format!(
                "multiple IDs found with provided prefix: {key} ({n} containers)"
            ))),
        }
    }

    /// True while the container is being started or removed.
    pub(super) fn is_busy(&self, id: &str) -> bool {
        lock(&self.runtime.busy).contains(id)
    }

    pub fn bundle(&self, id: &str) -> Bundle {
        Bundle::new(&self.config.exec_root, id)
    }

    fn container_data_dir(&self, id: &str) -> PathBuf {
        self.config.data_root.join("containers").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_data_dir(id).join(format!("{id}-json.log"))
    }

    /// The container's state now: the bundle if it has one, else the record.
    pub fn observe(&self, record: &ContainerRecord) -> Observed {
        let bundle = self.bundle(&record.id);
        if let Some(state) = bundle.running() {
            return Observed {
                status: "running",
                pid: state.init_pid,
                exit_code: 0,
                started_at: Some(nanos_to_rfc3339(state.started_at)),
                finished_at: record.finished_at.clone(),
            };
        }
        if let (Some(exit), Some(state)) = (bundle.exit_status(), bundle.state()) {
            return Observed {
                status: "exited",
                pid: 0,
                exit_code: exit.code,
                started_at: Some(nanos_to_rfc3339(state.started_at)),
                finished_at: Some(nanos_to_rfc3339(exit.finished_at)),
            };
        }
        Observed {
            status: if record.started_at.is_some() {
                "exited"
            } else {
                "created"
            },
            pid: 0,
            exit_code: record.exit_code,
            started_at: record.started_at.clone(),
            finished_at: record.finished_at.clone(),
        }
    }

    /// The container's endpoints, with their networks.
    pub fn container_endpoints(
        &self,
        id: &str,
    ) -> Result<Vec<(NetworkRecord, EndpointRecord)>, Error> {
        let mut out = Vec::new();
        for network in self.networks()? {
            for ep in self.endpoints(&network.id)? {
                if ep.target.container_id.as_deref() == Some(id) {
                    out.push((network.clone(), ep));
                }
            }
        }
        // In the order the container asked for them.
        let record = self
            .store
            .get_json::<ContainerRecord>(&container_key(id)?)?
            .map(|(r, _)| r);
        if let Some(r) = record {
            out.sort_by_key(|(n, _)| {
                r.networks
                    .iter()
                    .position(|(id, _)| *id == n.id)
                    .unwrap_or(usize::MAX)
            });
        }
        Ok(out)
    }

    /// The connect/disconnect target for a container (its namespace).
    pub(super) fn container_target(&self, id_or_name: &str) -> Result<Target, Error> {
        let record = self.find_container(id_or_name)?;
        let netns = record.netns.clone().ok_or_else(|| {
            invalid(format!(
                "container {} shares the host's network namespace; it cannot be connected to other networks",
                record.name
            ))
        })?;
        if record.network_mode == "none" {
            return Err(invalid(format!(
                "container {} is on the none network; it cannot be connected to other networks",
                record.name
            )));
        }
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&netns).map_err(|e| {
            Error::msg(
                ErrorKind::NotFound,
                format!("network namespace of container {}: {e}", record.name),
            )
        })?;
        Ok(Target {
            name: record.name.clone(),
            netns,
            netns_id: format!("{}-{}", meta.dev(), meta.ino()),
            container_id: Some(record.id.clone()),
        })
    }

    /// `POST /containers/create`.
    pub async fn create_container(
        &self,
        name: Option<&str>,
        request: ContainerCreateRequest,
        security: SecurityOptions,
    ) -> Result<(ContainerRecord, Vec<String>), Error> {
        let mut warnings = Vec::new();
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            validate_container_name(n.trim_start_matches('/'))?;
        }
        let image = self.resolve_image(&request.image)?;
        let host = request.host_config.clone().unwrap_or_default();
        let limits = self.validate_limits(&host)?;
        let (entrypoint, cmd) = if request.entrypoint.is_empty() {
            (
                image.entrypoint.clone(),
                if request.cmd.is_empty() {
                    image.cmd.clone()
                } else {
                    request.cmd.clone()
                },
            )
        } else {
            (request.entrypoint.clone(), request.cmd.clone())
        };
        let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        if args.is_empty() {
            return Err(invalid("no command specified"));
        }
        for kv in &request.env {
            if kv.is_empty() || kv.starts_with('=') {
                return Err(invalid(format!("invalid environment variable: {kv:?}")));
            }
        }
        // Published ports as `-p` specs, checked now so a bad one changes nothing.
        let mut publish = Vec::new();
        for (port, bindings) in &host.port_bindings {
            let bindings = if bindings.is_empty() {
                vec![Default::default()]
            } else {
                bindings.clone()
            };
            for b in bindings {
                let ip = match b.host_ip.as_str() {
                    "" => String::new(),
                    ip if ip.contains(':') => format!("[{ip}]:"),
                    ip => format!("{ip}:"),
                };
                let spec = format!("{ip}{}:{port}", b.host_port);
                parse_port_spec(&spec)?;
                publish.push(spec);
            }
        }
        // Networks: NetworkMode first, then the other EndpointsConfig entries.
        // "default" (NetworkMode, and an EndpointsConfig key newer CLIs send) is the bridge.
        let default_network = super::reconcile::DEFAULT_NETWORK;
        let endpoints_config: BTreeMap<String, EndpointSettings> = request
            .networking_config
            .as_ref()
            .map(|n| n.endpoints_config.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let k = if k == "default" {
                    default_network.to_string()
                } else {
                    k
                };
                (k, v)
            })
            .collect();
        let mode = match host.network_mode.as_str() {
            "" | "default" => endpoints_config
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| super::reconcile::DEFAULT_NETWORK.to_string()),
            m => m.to_string(),
        };
        if mode.starts_with("container:") {
            return Err(invalid("network mode container:<id> is not supported"));
        }
        let mut networks: Vec<(NetworkRecord, EndpointSettings)> = Vec::new();
        if mode != "host" && mode != "none" {
            let mut names: Vec<String> = vec![mode.clone()];
            names.extend(endpoints_config.keys().filter(|k| **k != mode).cloned());
            for n in names {
                let network = self.find_network(&n)?;
                if network.driver == "host" || network.driver == "null" {
                    return Err(invalid(format!(
                        "container cannot be connected to network {} together with others",
                        network.name
                    )));
                }
                let settings = endpoints_config
                    .get(&n)
                    .or_else(|| endpoints_config.get(&network.id))
                    .cloned()
                    .unwrap_or_default();
                networks.push((network, settings));
            }
            if !publish.is_empty() && !networks.first().is_some_and(|(n, _)| self.nat(n)) {
                return Err(invalid(format!(
                    "ports cannot be published on network {mode} (it has no NAT)"
                )));
            }
        } else {
            // `--network host|none` are the built-in networks; anything else with them is refused.
            if endpoints_config.keys().any(|k| *k != mode) {
                return Err(invalid(format!(
                    "conflicting options: the {mode} network cannot be combined with other networks"
                )));
            }
            if !publish.is_empty() {
                warnings.push(format!(
                    "Published ports are discarded when using {mode} network mode"
                ));
                publish.clear();
            }
        }
        let network_mode = if host.network_mode.is_empty() || host.network_mode == "default" {
            mode.clone()
        } else {
            host.network_mode.clone()
        };
        self.check_security(&security, mode == "host")?;

        let id = random_id();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.trim_start_matches('/').to_string(),
            None => {
                let mut n = generated_name(&id);
                if self.store.get(&container_name_key(&n)?)?.is_some() {
                    n = format!("{n}_{}", &id[..6]);
                }
                n
            }
        };
        if let Some((other, _)) = self.store.get_json::<String>(&container_name_key(&name)?)? {
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". \
                     You have to remove (or rename) that container to be able to reuse that name."
                ),
            ));
        }
        let host_hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        let hostname = if !request.hostname.is_empty() {
            request.hostname.clone()
        } else if mode == "host" {
            host_hostname
        } else {
            id[..12].to_string()
        };
        let mut env = image.env.clone();
        env.extend(request.env.iter().cloned());
        let netns_name = format!("{NETNS_PREFIX}{}", &id[..12]);
        let netns =
            (mode != "host").then(|| Path::new(crate::netns::NETNS_RUN_DIR).join(&netns_name));
        let record = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            created: rfc3339(SystemTime::now()),
            image: request.image.clone(),
            image_id: image.id.clone(),
            layers: image.layers.clone(),
            process: ProcessSpec {
                args,
                env,
                cwd: if request.working_dir.is_empty() {
                    image.working_dir.clone()
                } else {
                    request.working_dir.clone()
                },
                user: if request.user.is_empty() {
                    image.user.clone()
                } else {
                    request.user.clone()
                },
                privileged: false,
            },
            hostname,
            network_mode,
            networks: networks
                .iter()
                .map(|(n, s)| (n.id.clone(), s.clone()))
                .collect(),
            netns: netns.clone(),
            limits,
            security,
            init: host.init.unwrap_or(true),
            auto_remove: host.auto_remove,
            started_at: None,
            finished_at: None,
            exit_code: 0,
            error: String::new(),
            request,
        };
        // The record is the reservation of the name: a concurrent create loses here.
        let txn = Txn::new()
            .create_json(container_key(&id)?, &record)?
            .create_json(container_name_key(&name)?, &id)?;
        self.store.commit(txn).map_err(|e| match e {
            StoreError::Conflict { .. } => Error::msg(
                ErrorKind::Conflict,
                format!("Conflict. The container name \"/{name}\" is already in use"),
            ),
            e => e.into(),
        })?;
        if let Err(e) = self
            .wire_container(&record, &netns_name, &networks, &publish)
            .await
        {
            let _ = self.teardown_container(&record).await;
            return Err(e);
        }
        tracing::info!(container = %record.name, id = %record.short_id(), network = %mode, "container created");
        Ok((record, warnings))
    }

    fn nat(&self, network: &NetworkRecord) -> bool {
        self.driver(&network.driver).is_ok_and(|d| d.uses_nat()) && !network.internal
    }

    fn validate_limits(&self, host: &HostConfig) -> Result<Limits, Error> {
        let mut limits = Limits::default();
        if host.memory < 0 {
            return Err(invalid("invalid memory limit: must not be negative"));
        }
        if host.memory > 0 {
            if host.memory < MIN_MEMORY {
                return Err(invalid("Minimum memory limit allowed is 6MB"));
            }
            limits.memory = Some(host.memory);
        }
        if host.nano_cpus < 0 {
            return Err(invalid("invalid CPU limit: must not be negative"));
        }
        if host.nano_cpus > 0 {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let max = i64::try_from(cpus).unwrap_or(1) * 1_000_000_000;
            if host.nano_cpus > max || host.nano_cpus < 10_000_000 {
                return Err(invalid(format!(
                    "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
                )));
            }
            limits.nano_cpus = Some(host.nano_cpus);
        }
        if let Some(p) = host.pids_limit.filter(|p| *p > 0) {
            limits.pids = Some(p);
        }
        if host.pids_limit.is_some_and(|p| p < -1) {
            return Err(invalid(
                "invalid pids limit: use a positive number, or 0/-1 for none",
            ));
        }
        Ok(limits)
    }

    /// Pin the container's namespace and connect its networks (rolled back by the caller).
    async fn wire_container(
        &self,
        record: &ContainerRecord,
        netns_name: &str,
        networks: &[(NetworkRecord, EndpointSettings)],
        publish: &[String],
    ) -> Result<(), Error> {
        if record.netns.is_none() {
            return Ok(());
        }
        let path = crate::netns::add(netns_name)?;
        let nl = crate::netlink::Netlink::in_netns(&path).await?;
        if let Some(lo) = nl.link_index("lo").await? {
            nl.set_up(lo).await?;
        }
        for (i, (network, settings)) in networks.iter().enumerate() {
            let request = NetworkConnectRequest {
                container: record.id.clone(),
                endpoint_config: Some(settings.clone()),
                publish: if i == 0 { publish.to_vec() } else { Vec::new() },
            };
            self.connect(&network.id, request).await?;
        }
        Ok(())
    }

    /// Undo create: endpoints, namespace, records, directories. Keeps going on failure.
    async fn teardown_container(&self, record: &ContainerRecord) -> Result<(), Error> {
        let mut errors = Vec::new();
        {
            let _guard = self.mutations.lock().await;
            for (network, ep) in self.container_endpoints(&record.id)? {
                if let Err(e) = self.detach_endpoint(&network, &ep).await {
                    errors.push(e.to_string());
                }
            }
        }
        if record.netns.is_some() {
            match crate::netns::delete(&format!("{NETNS_PREFIX}{}", record.short_id())) {
                Ok(()) => {}
                Err(e) if crate::error::HasKind::kind(&e) == ErrorKind::NotFound => {}
                Err(e) => errors.push(crate::error::chain(&e)),
            }
        }
        let dirs = [
            (self.bundle(&record.id).dir, &self.config.exec_root),
            (self.container_data_dir(&record.id), &self.config.data_root),
        ];
        for (dir, root) in dirs {
            if let Err(e) = discard_dir(&dir, root) {
                errors.push(format!("remove {}: {e}", dir.display()));
            }
        }
        let txn = Txn::new()
            .delete(container_key(&record.id)?)
            .delete(container_name_key(&record.name)?);
        if let Err(e) = self.store.commit(txn) {
            errors.push(crate::error::chain(&e));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(
                ErrorKind::Internal,
                format!("remove container {}: {}", record.name, errors.join("; ")),
            ))
        }
    }

    /// Update a record in place (read, modify, compare-and-swap).
    fn update_record(
        &self,
        id: &str,
        change: impl Fn(&mut ContainerRecord),
    ) -> Result<Option<ContainerRecord>, Error> {
        let key = container_key(id)?;
        for _ in 0..crate::store::COMMIT_ATTEMPTS {
            let Some((mut record, revision)) = self.store.get_json::<ContainerRecord>(&key)? else {
                return Ok(None);
            };
            change(&mut record);
            let txn = Txn::new()
                .require_revision(key.clone(), revision)
                .put_json(key.clone(), &record)?;
            match self.store.commit(txn) {
                Ok(_) => return Ok(Some(record)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::msg(
            ErrorKind::Unavailable,
            format!("container {id} is being changed concurrently"),
        ))
    }

    /// The files the container sees as /etc/hostname, /etc/hosts and /etc/resolv.conf.
    fn etc_files(&self, record: &ContainerRecord) -> Result<Vec<(String, String)>, Error> {
        if record.network_mode == "host" {
            let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            return Ok(vec![
                ("hostname".into(), format!("{}\n", record.hostname)),
                ("hosts".into(), hosts),
                ("resolv.conf".into(), resolv),
            ]);
        }
        let mut hosts = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n",
        );
        let endpoints = self.container_endpoints(&record.id)?;
        if let Some((_, ep)) = endpoints.first() {
            for addr in &ep.addresses {
                hosts.push_str(&format!("{}\t{}\n", addr.ip(), record.hostname));
            }
        }
        let user_network = endpoints
            .first()
            .is_some_and(|(n, _)| !n.builtin && n.driver != "host" && n.driver != "null");
        let resolv = if user_network {
            let search: String = std::fs::read_to_string("/etc/resolv.conf")
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("search ") || l.starts_with("domain "))
                .map(|l| format!("{l}\n"))
                .collect();
            format!("{search}nameserver 127.0.0.11\noptions ndots:0\n")
        } else {
            host_resolv_conf(&self.config.dns)
        };
        Ok(vec![
            ("hostname".into(), format!("{}\n", record.hostname)),
            ("hosts".into(), hosts),
            ("resolv.conf".into(), resolv),
        ])
    }

    /// `POST /containers/{id}/start`: 304 when already running.
    pub async fn start_container(self: &Arc<Self>, id_or_name: &str) -> Result<(), Error> {
        let record = self.find_container(id_or_name)?;
        let bundle = self.bundle(&record.id);
        if bundle.running().is_some() {
            return Err(Error::msg(
                ErrorKind::NotModified,
                "container already started",
            ));
        }
        if !lock(&self.runtime.busy).insert(record.id.clone()) {
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!(
                    "container {} is already being started or removed",
                    record.name
                ),
            ));
        }
        let _busy = BusyGuard {
            set: &self.runtime.busy,
            id: record.id.clone(),
        };
        bundle.create()?;
        bundle.clear_run_files();
        let data = self.container_data_dir(&record.id);
        std::fs::create_dir_all(&data).map_err(|e| {
            Error::msg(
                ErrorKind::Internal,
                format!("create {}: {e}", data.display()),
            )
        })?;
        let mut mounts = Vec::new();
        for (file, content) in self.etc_files(&record)? {
            let path = bundle.path(&file);
            crate::runtime::write_atomic(&path, content.as_bytes()).map_err(|e| {
                Error::msg(
                    ErrorKind::Internal,
                    format!("write {}: {e}", path.display()),
                )
            })?;
            mounts.push(BindFile {
                source: path,
                target: format!("/etc/{file}"),
            });
        }
        let confinement = self.confinement(&record.security, record.network_mode == "host")?;
        let spec = ContainerSpec {
            id: record.id.clone(),
            layers: record.layers.clone(),
            upper: data.join("upper"),
            work: data.join("work"),
            rootfs: bundle.rootfs(),
            process: record.process.clone(),
            hostname: record.hostname.clone(),
            netns: record.netns.clone(),
            mounts,
            limits: record.limits.clone(),
            confinement,
            init: record.init,
            log: self.log_path(&record.id),
        };
        bundle.write_spec(&spec)?;
        self.dns_container_starting(&record.id).await;
        let launched = match self.runtime.shims.launch(&bundle.dir) {
            Ok(shim) => bundle.await_shim(shim).await,
            Err(e) => Err(RuntimeError::StartFailed(format!("start the shim: {e}"))),
        };
        match launched {
            Ok(state) => {
                let started = nanos_to_rfc3339(state.started_at);
                self.update_record(&record.id, |r| {
                    r.started_at = Some(started.clone());
                    r.finished_at = None;
                    r.exit_code = 0;
                    r.error.clear();
                })?;
                let _ = self
                    .runtime
                    .events
                    .send(ContainerEvent::Started(record.id.clone()));
                self.monitor(record.id.clone());
                tracing::info!(container = %record.name, pid = state.init_pid, "container started");
                Ok(())
            }
            Err(e) => {
                self.dns_container_start_failed(&record.id).await;
                let message = crate::error::chain(&e);
                let exit = bundle.exit_status();
                let code = exit.map_or(EXIT_UNKNOWN, |s| s.code);
                let now = rfc3339(SystemTime::now());
                self.update_record(&record.id, |r| {
                    r.started_at = Some(now.clone());
                    r.finished_at = Some(now.clone());
                    r.exit_code = code;
                    r.error = message.clone();
                })?;
                let _ = self
                    .runtime
                    .events
                    .send(ContainerEvent::Exited(record.id.clone(), code));
                if record.auto_remove {
                    let agent = Arc::clone(self);
                    let id = record.id.clone();
                    tokio::spawn(async move { agent.auto_remove(&id, code).await });
                }
                Err(match e {
                    RuntimeError::StartFailed(m) => invalid(format!(
                        "failed to create task for container {}: {m}",
                        record.short_id()
                    )),
                    other => other.into(),
                })
            }
        }
    }

    /// Watch a running container until it exits; record the exit, honour `--rm`.
    fn monitor(self: &Arc<Self>, id: String) {
        if !lock(&self.runtime.monitored).insert(id.clone()) {
            return;
        }
        let agent = Arc::clone(self);
        tokio::spawn(async move {
            let status = agent.bundle(&id).wait_exit().await;
            lock(&agent.runtime.monitored).remove(&id);
            agent.record_exit(&id, status).await;
        });
    }

    async fn record_exit(self: &Arc<Self>, id: &str, status: Option<ExitStatus>) {
        let code = status.map_or(EXIT_UNKNOWN, |s| s.code);
        let finished = status.map_or_else(
            || rfc3339(SystemTime::now()),
            |s| nanos_to_rfc3339(s.finished_at),
        );
        let record = match self.update_record(id, |r| {
            r.finished_at = Some(finished.clone());
            r.exit_code = code;
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(container = %id, error = %e, "cannot record the exit");
                None
            }
        };
        tracing::info!(container = %id, code, "container exited");
        self.dns_container_exited(id).await;
        let _ = self
            .runtime
            .events
            .send(ContainerEvent::Exited(id.to_string(), code));
        if record.is_some_and(|r| r.auto_remove) {
            self.auto_remove(id, code).await;
        }
    }

    async fn auto_remove(&self, id: &str, code: i32) {
        // Let attached clients read the output to its end first (they stop at the exit).
        let readers = self.log_readers(id);
        let _ = tokio::time::timeout(Duration::from_secs(5), readers.write_owned()).await;
        if let Err(e) = self.remove_container(id, true).await {
            if e.kind() != ErrorKind::NotFound {
                tracing::error!(container = %id, error = %e, "auto-remove failed");
            }
        }
        let _ = self
            .runtime
            .events
            .send(ContainerEvent::Removed(id.to_string(), code));
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after `timeout` seconds
    /// (negative: wait forever). 304 when not running.
    pub async fn stop_container(
        &self,
        id_or_name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), Error> {
        let record = self.find_container(id_or_name)?;
        let bundle = self.bundle(&record.id);
        if bundle.running().is_none() {
            return Err(Error::msg(
                ErrorKind::NotModified,
                "container already stopped",
            ));
        }
        let sig = signal
            .map(parse_signal)
            .transpose()?
            .unwrap_or(Signal::SIGTERM);
        let timeout = timeout.unwrap_or(10);
        if let Err(e) = bundle.signal(&record.id, sig) {
            if !matches!(e, RuntimeError::NotRunning { .. }) {
                return Err(e.into());
            }
        }
        let waited = if timeout < 0 {
            Ok(bundle.wait_exit().await)
        } else {
            let secs = u64::try_from(timeout).unwrap_or(0);
            tokio::time::timeout(Duration::from_secs(secs), bundle.wait_exit()).await
        };
        if waited.is_err() {
            tracing::info!(container = %record.name, "did not stop in time; killing it");
            let _ = bundle.signal(&record.id, Signal::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(10), bundle.wait_exit()).await;
        }
        Ok(())
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill_container(
        &self,
        id_or_name: &str,
        signal: Option<&str>,
    ) -> Result<(), Error> {
        let record = self.find_container(id_or_name)?;
        let sig = signal
            .filter(|s| !s.is_empty())
            .map(parse_signal)
            .transpose()?
            .unwrap_or(Signal::SIGKILL);
        let bundle = self.bundle(&record.id);
        bundle.signal(&record.id, sig).map_err(|e| match e {
            RuntimeError::NotRunning { .. } => Error::msg(
                ErrorKind::Conflict,
                format!(
                    "Cannot kill container: {id_or_name}: container {} is not running",
                    record.id
                ),
            ),
            e => e.into(),
        })?;
        if sig == Signal::SIGKILL {
            let _ = tokio::time::timeout(Duration::from_secs(10), bundle.wait_exit()).await;
        }
        Ok(())
    }

    /// `DELETE /containers/{id}`: 409 for a running container unless `force`.
    pub async fn remove_container(&self, id_or_name: &str, force: bool) -> Result<(), Error> {
        let record = self.find_container(id_or_name)?;
        let bundle = self.bundle(&record.id);
        if bundle.running().is_some() {
            if !force {
                return Err(Error::msg(
                    ErrorKind::Conflict,
                    format!(
                        "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                        record.name
                    ),
                ));
            }
            let _ = bundle.signal(&record.id, Signal::SIGKILL);
            if tokio::time::timeout(Duration::from_secs(10), bundle.wait_exit())
                .await
                .is_err()
            {
                return Err(Error::msg(
                    ErrorKind::Internal,
                    format!("container {} did not exit after SIGKILL", record.name),
                ));
            }
        }
        if !lock(&self.runtime.busy).insert(record.id.clone()) {
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!(
                    "removal of container {} is already in progress",
                    record.name
                ),
            ));
        }
        let _busy = BusyGuard {
            set: &self.runtime.busy,
            id: record.id.clone(),
        };
        let code = self.observe(&record).exit_code;
        self.teardown_container(&record).await?;
        lock(&self.runtime.execs).retain(|_, e| e.container_id != record.id);
        lock(&self.runtime.log_readers).remove(&record.id);
        let _ = self
            .runtime
            .events
            .send(ContainerEvent::Removed(record.id.clone(), code));
        tracing::info!(container = %record.name, "container removed");
        Ok(())
    }

    /// `POST /containers/{id}/wait`. Subscribes before returning, so a wait sent before start
    /// sees that start's exit. The receiver yields the exit code.
    pub fn wait_container(
        &self,
        id_or_name: &str,
        condition: &str,
    ) -> Result<oneshot::Receiver<i32>, Error> {
        let mut events = self.runtime.events.subscribe();
        let record = self.find_container(id_or_name)?;
        let condition = match condition {
            "" | "not-running" => "not-running",
            "next-exit" | "removed" => condition,
            other => {
                return Err(invalid(format!(
                    "invalid condition: {other:?} (use not-running, next-exit or removed)"
                )))
            }
        };
        let (tx, rx) = oneshot::channel();
        let observed = self.observe(&record);
        if condition == "not-running" && !observed.running() {
            let _ = tx.send(observed.exit_code);
            return Ok(rx);
        }
        let id = record.id.clone();
        let want_removed = condition == "removed";
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(ContainerEvent::Exited(i, code)) if i == id && !want_removed => {
                        let _ = tx.send(code);
                        return;
                    }
                    Ok(ContainerEvent::Removed(i, code)) if i == id => {
                        let _ = tx.send(code);
                        return;
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(rx)
    }

    fn log_readers(&self, id: &str) -> Arc<tokio::sync::RwLock<()>> {
        Arc::clone(
            lock(&self.runtime.log_readers)
                .entry(id.to_string())
                .or_default(),
        )
    }

    /// A container's log as a stream of entries (logs, logs -f, attach).
    pub fn container_output(
        self: &Arc<Self>,
        id_or_name: &str,
        options: LogOptions,
    ) -> Result<mpsc::Receiver<LogEntry>, Error> {
        let mut events = self.runtime.events.subscribe();
        let record = self.find_container(id_or_name)?;
        let path = self.log_path(&record.id);
        let (tx, rx) = mpsc::channel(256);
        let agent = Arc::clone(self);
        let start = if options.attach {
            std::fs::metadata(&path).map_or(0, |m| m.len())
        } else {
            0
        };
        // Taken now, before the container can start, so that a `--rm` removal waits for us.
        let reading = self.log_readers(&record.id).try_read_owned().ok();
        tokio::spawn(async move {
            let _reading = reading;
            let id = record.id.clone();
            let running_now = agent.bundle(&id).running().is_some();
            let (entries, mut offset) = logs::read_from(&path, start).unwrap_or_default();
            let entries = if options.attach {
                entries
            } else {
                logs::tail(entries, options.tail)
            };
            for e in entries {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            if !(options.follow || options.attach) {
                return;
            }
            // attach to a container that is not running waits for its next start.
            let mut seen_run = running_now;
            if !running_now && !options.attach {
                return;
            }
            loop {
                let tick = tokio::time::sleep(Duration::from_millis(100));
                let mut ended = false;
                tokio::select! {
                    () = tick => {}
                    ev = events.recv() => match ev {
                        Ok(ContainerEvent::Started(i)) if i == id => seen_run = true,
                        Ok(ContainerEvent::Exited(i, _)) | Ok(ContainerEvent::Removed(i, _)) if i == id => ended = seen_run || !options.attach,
                        Err(broadcast::error::RecvError::Closed) => ended = true,
                        _ => {}
                    },
                }
                if !ended && seen_run && agent.bundle(&id).exit_status().is_some() {
                    ended = true;
                }
                if !seen_run && agent.bundle(&id).running().is_some() {
                    seen_run = true;
                }
                let (entries, next) = logs::read_from(&path, offset).unwrap_or_default();
                offset = next;
                for e in entries {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                if ended || tx.is_closed() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// `POST /containers/{id}/exec`.
    pub fn create_exec(
        &self,
        id_or_name: &str,
        request: ExecCreateRequest,
    ) -> Result<String, Error> {
        let record = self.find_container(id_or_name)?;
        if self.bundle(&record.id).running().is_none() {
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!("container {} is not running", record.id),
            ));
        }
        if request.cmd.is_empty() {
            return Err(invalid("no exec command specified"));
        }
        let id = random_id();
        lock(&self.runtime.execs).insert(
            id.clone(),
            ExecRecord {
                id: id.clone(),
                container_id: record.id.clone(),
                process: ProcessSpec {
                    args: request.cmd,
                    env: request.env,
                    cwd: request.working_dir,
                    user: request.user,
                    privileged: request.privileged,
                },
                running: false,
                exit_code: None,
                pid: 0,
            },
        );
        Ok(id)
    }

    pub fn exec_record(&self, id: &str) -> Result<ExecRecord, Error> {
        lock(&self.runtime.execs)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::msg(ErrorKind::NotFound, format!("No such exec instance: {id}")))
    }

    /// `POST /exec/{id}/start`: run the process through the exec helper; its output comes
    /// through the receiver, which closes after the exit code is recorded.
    pub async fn start_exec(
        self: &Arc<Self>,
        exec_id: &str,
    ) -> Result<mpsc::Receiver<Output>, Error> {
        let exec = self.exec_record(exec_id)?;
        if exec.running || exec.exit_code.is_some() {
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!("exec instance {exec_id} has already been started"),
            ));
        }
        let bundle = self.bundle(&exec.container_id);
        if bundle.running().is_none() {
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!("container {} is not running", exec.container_id),
            ));
        }
        let spec = serde_json::to_string(&exec.process).expect("specs serialize");
        let mut child = self
            .runtime
            .binary
            .command(EXEC_NAME, &bundle.dir)
            .arg(spec)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Error::msg(ErrorKind::Internal, format!("spawn the exec helper: {e}")))?;
        let pid = child.id().unwrap_or(0);
        if let Some(e) = lock(&self.runtime.execs).get_mut(exec_id) {
            e.running = true;
            e.pid = pid;
        }
        let (tx, rx) = mpsc::channel(256);
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let agent = Arc::clone(self);
        let exec_id = exec_id.to_string();
        tokio::spawn(async move {
            let pump = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        stream: Stream,
                        tx: mpsc::Sender<Output>| async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let chunk = Output {
                                stream,
                                data: String::from_utf8_lossy(&buf[..n]).into_owned(),
                                time: logs::now_nanos(),
                            };
                            // Keep draining even when the client went away.
                            let _ = tx.send(chunk).await;
                        }
                    }
                }
            };
            tokio::join!(
                pump(Box::new(out), Stream::Stdout, tx.clone()),
                pump(Box::new(err), Stream::Stderr, tx.clone())
            );
            let code = match child.wait().await {
                Ok(s) => s.code().unwrap_or(EXIT_UNKNOWN),
                Err(_) => EXIT_UNKNOWN,
            };
            if let Some(e) = lock(&agent.runtime.execs).get_mut(&exec_id) {
                e.running = false;
                e.exit_code = Some(code);
            }
            drop(tx); // the stream ends only after the exit code is recorded
        });
        Ok(rx)
    }

    /// Built-in `host` and `none` networks, like Docker's (records only; no kernel objects).
    pub(super) fn ensure_builtin_container_networks(&self) -> Result<(), Error> {
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if self.store.get(&name_key(name)?)?.is_some() {
                continue;
            }
            let id = random_id();
            let record = NetworkRecord {
                id: id.clone(),
                name: name.to_string(),
                driver: driver.to_string(),
                created: rfc3339(SystemTime::now()),
                builtin: true,
                internal: false,
                attachable: false,
                enable_ipv6: false,
                subnets: Vec::new(),
                options: BTreeMap::new(),
                labels: BTreeMap::new(),
                settings: crate::drivers::host::settings(),
                scope: Scope::Local,
            };
            let txn = Txn::new()
                .create_json(network_key(&id)?, &record)?
                .create_json(name_key(name)?, &id)?;
            match self.store.commit(txn) {
                Ok(_) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Start-up: re-adopt running containers, record exits that happened while the agent
    /// was away, mark as exited those whose shim is gone.
    pub async fn reconcile_containers(self: &Arc<Self>) -> Result<(), Error> {
        empty_trash(&self.config.exec_root);
        empty_trash(&self.config.data_root);
        self.ensure_builtin_container_networks()?;
        self.register_image_users();
        for record in self.containers()? {
            let bundle = self.bundle(&record.id);
            if bundle.running().is_some() {
                if bundle.shim_alive() {
                    tracing::info!(container = %record.name, "re-adopting running container");
                    self.monitor(record.id.clone());
                    continue;
                }
                // The init runs but nobody owns its output or exit: end it.
                if let Some(state) = bundle.state() {
                    tracing::warn!(container = %record.name, "shim is gone; killing the orphaned container");
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(state.init_pid),
                        Signal::SIGKILL,
                    );
                }
            }
            let unfinished = record.started_at.is_some() && record.finished_at.is_none();
            if unfinished {
                let status = bundle.exit_status();
                if status.is_none() {
                    tracing::warn!(container = %record.name, "shim is gone without an exit status; marking exited");
                }
                self.record_exit(&record.id, status).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_follow_docker() {
        for ok in ["web", "my_app.1", "a-b"] {
            assert!(validate_container_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "-x", "has space", "a/b"] {
            assert!(validate_container_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_and_cpus_parse() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_memory("100").unwrap(), 100);
        for bad in ["", "abc", "-1m", "12x"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        for bad in ["", "0", "-1", "x"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = UNIX_EPOCH + Duration::new(1_795_810_599, 123_456_789);
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
    }

    #[test]
    fn statuses_read_like_docker() {
        let now = SystemTime::now();
        let o = Observed {
            status: "exited",
            pid: 0,
            exit_code: 3,
            started_at: None,
            finished_at: Some(rfc3339(now - Duration::from_secs(5))),
        };
        assert_eq!(human_status(&o, now), "Exited (3) 5 seconds ago");
    }

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let text = host_resolv_conf(&["1.1.1.1".parse().unwrap()]);
        assert!(text.contains("nameserver 1.1.1.1"));
        assert!(!text.contains("127.0.0."));
    }
}
