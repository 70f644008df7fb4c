//! Images without a registry: `import` of a root filesystem tarball, `load` of `docker save`
//! and OCI layout archives, and the content-addressed store both feed.
//!
//! # Layout under `<data-root>/images/`
//! - `layers/<hex>/` — one directory per layer, named by its DiffID (sha256 of the
//!   uncompressed tar), unpacked once, shared by every image that has it, whiteouts already in
//!   overlayfs form: ready to be stacked as `lowerdir`s.
//! - `blobs/sha256/<hex>` — image config blobs; an image's id is the sha256 of its config.
//! - `index.json` — the image records and their tags (see [`ImageStore`] for why a file).
//! - `tmp/` — work in progress. Layers are unpacked there, verified, then renamed into
//!   `layers/`; an interrupted import leaves only `tmp/` debris, removed at open.
//!
//! # API for the container runtime
//! ```ignore
//! let store = ImageStore::open(&data_root)?;           // once per agent (agent.images)
//! let image = store.resolve("bb:1")?;                    // NotFound → "No such image: bb:1"
//! let lower: Vec<&Path> = image.layers.iter().rev()...;  // layers are LOWEST first;
//!                                                        // overlay's lowerdir= wants top first
//! image.config.cmd / .entrypoint / .env / .working_dir / .user / .exposed_ports / .labels
//! store.set_users(|image_id| containers_using(image_id)); // so `image rm` refuses in-use images
//! store.list(); store.remove("bb:1", force)?; store.tag("bb:1", "bb:2")?;
//! ```
//! All methods are synchronous and may block on disk I/O (import and load for a long time):
//! call them from `spawn_blocking` in async code.

pub mod archive;
pub mod reference;
pub mod spec;
pub mod unpack;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::agent::records::rfc3339;
use crate::error::{ErrorKind, HasKind};
pub use reference::Reference;
pub use spec::ImageConfig;
use spec::{host_architecture, ConfigFile, RootFs};
use unpack::{sha256_hex, HashingReader, UnpackError};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("invalid reference format: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("conflict: unable to remove repository reference \"{reference}\" (must force) - container {container} is using its referenced image {id}")]
    InUseReference {
        reference: String,
        container: String,
        id: String,
    },
    #[error("conflict: unable to delete {id} (cannot be forced) - image is being used by container {container}")]
    InUse { id: String, container: String },
    #[error("conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories")]
    MultipleReferences { id: String },
    #[error("short id {0} matches several images; give more of it")]
    Ambiguous(String),
    #[error("invalid image archive: {reason}")]
    BadArchive { reason: String },
    #[error("read the image archive (corrupt or truncated?)")]
    ReadArchive(#[source] io::Error),
    #[error("unpack layer {layer}")]
    Unpack {
        layer: String,
        #[source]
        source: UnpackError,
    },
    #[error("{what} does not match its digest (content is {actual})")]
    DigestMismatch { what: String, actual: String },
    #[error("{action} {path}")]
    Storage {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image index {path} is unreadable")]
    Index {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl HasKind for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound(_) => ErrorKind::NotFound,
            ImageError::InUseReference { .. }
            | ImageError::InUse { .. }
            | ImageError::MultipleReferences { .. } => ErrorKind::Conflict,
            ImageError::InvalidReference { .. }
            | ImageError::Ambiguous(_)
            | ImageError::BadArchive { .. }
            | ImageError::ReadArchive(_)
            | ImageError::DigestMismatch { .. } => ErrorKind::Invalid,
            ImageError::Unpack { source, .. } => source.kind(),
            ImageError::Storage { .. } | ImageError::Index { .. } => ErrorKind::Internal,
        }
    }
}

fn storage<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Storage {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// An image as the runtime uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `sha256:HEX` of the config blob.
    pub id: String,
    /// Familiar `name:tag` references, sorted.
    pub repo_tags: Vec<String>,
    /// RFC 3339.
    pub created: String,
    /// Bytes of file content over all layers.
    pub size: u64,
    /// Unpacked layer directories, LOWEST first (reverse them for overlay's `lowerdir=`).
    pub layers: Vec<PathBuf>,
    /// The layers' DiffIDs (`sha256:HEX`), lowest first.
    pub diff_ids: Vec<String>,
    pub config: ImageConfig,
    pub architecture: String,
    pub os: String,
    pub author: String,
    pub comment: String,
}

/// What `remove` did, in Docker's `DELETE /images/{name}` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoveAction {
    Untagged(String),
    Deleted(String),
}

/// Options of `import` (`docker import -m MSG -c CHANGE`).
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub message: Option<String>,
    /// Dockerfile instructions applied to the config: CMD, ENTRYPOINT, ENV, WORKDIR, USER,
    /// EXPOSE, LABEL, STOPSIGNAL.
    pub changes: Vec<String>,
}

/// One image a `load` brought in, with the lines Docker prints for it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: String,
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerRecord {
    diff_id: String,
    size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageRecord {
    id: String,
    repo_tags: Vec<String>,
    created: String,
    layers: Vec<LayerRecord>,
    config: ImageConfig,
    architecture: String,
    os: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    comment: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, ImageRecord>,
}

impl Index {
    fn by_tag(&self, tag: &str) -> Option<&ImageRecord> {
        self.images
            .values()
            .find(|r| r.repo_tags.iter().any(|t| t == tag))
    }

    fn references_layer(&self, diff_id: &str) -> bool {
        self.images
            .values()
            .any(|r| r.layers.iter().any(|l| l.diff_id == diff_id))
    }
}

struct State {
    index: Index,
    /// Layers an import in progress relies on: never garbage-collected while pinned.
    pinned: HashMap<String, usize>,
}

/// Returns the ids of the containers using an image id.
pub type UsersFn = dyn Fn(&str) -> Vec<String> + Send + Sync;

/// The image store of one data root.
///
/// Records live in `images/index.json` (written whole: temp file, fsync, rename, fsync dir)
/// rather than in the agent's store: the records describe files in this directory and must
/// change together with them, they are local by nature (never shared between hosts like
/// network records may be), and keeping them here lets the runtime and tests open the image
/// store by data root alone. Open one `ImageStore` per data root (the agent's) and share it:
/// it caches the index and `open` clears `tmp/`.
pub struct ImageStore {
    root: PathBuf,
    state: Mutex<State>,
    users: RwLock<Option<Arc<UsersFn>>>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Removes a temporary path on drop unless kept.
struct TempPath(Option<PathBuf>);

impl TempPath {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("temp path is live")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(_) => Ok(()),
            };
        }
    }
}

impl ImageStore {
    /// Open (creating) `<data_root>/images`, drop leftovers of interrupted imports and layers
    /// no image references.
    pub fn open(data_root: &Path) -> Result<ImageStore, ImageError> {
        let root = data_root.join("images");
        for dir in ["layers", "blobs/sha256", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(storage("create", &path))?;
        }
        let tmp = root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(storage("read", &tmp))? {
            let entry = entry.map_err(storage("read", &tmp))?;
            let _ = TempPath(Some(entry.path()));
        }
        let index_path = root.join("index.json");
        let index = match std::fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ImageError::Index {
                path: index_path.clone(),
                source,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(storage("read", &index_path)(e)),
        };
        let store = ImageStore {
            root,
            state: Mutex::new(State {
                index,
                pinned: HashMap::new(),
            }),
            users: RwLock::new(None),
        };
        // A crash between renaming a layer into place and recording its image leaves an
        // unreferenced layer: collect it now.
        let layers_dir = store.root.join("layers");
        let names: Vec<String> = std::fs::read_dir(&layers_dir)
            .map_err(storage("read", &layers_dir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        store.collect_garbage(names.iter().map(|h| format!("sha256:{h}")).collect());
        Ok(store)
    }

    /// Register the callback that tells which containers use an image (by id); `remove`
    /// refuses to delete an image it reports in use.
    pub fn set_users(&self, users: impl Fn(&str) -> Vec<String> + Send + Sync + 'static) {
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(users));
    }

    fn users_of(&self, id: &str) -> Vec<String> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner()).clone();
        users.map(|f| f(id)).unwrap_or_default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory holding layer `diff_id` (`sha256:HEX`).
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(diff_id.strip_prefix("sha256:").unwrap_or(diff_id))
    }

    fn image(&self, r: &ImageRecord) -> Image {
        Image {
            id: r.id.clone(),
            repo_tags: r.repo_tags.clone(),
            created: r.created.clone(),
            size: r.layers.iter().map(|l| l.size).sum(),
            layers: r
                .layers
                .iter()
                .map(|l| self.layer_dir(&l.diff_id))
                .collect(),
            diff_ids: r.layers.iter().map(|l| l.diff_id.clone()).collect(),
            config: r.config.clone(),
            architecture: r.architecture.clone(),
            os: r.os.clone(),
            author: r.author.clone(),
            comment: r.comment.clone(),
        }
    }

    /// All images, newest first.
    pub fn list(&self) -> Vec<Image> {
        let state = self.lock();
        let mut out: Vec<Image> = state.index.images.values().map(|r| self.image(r)).collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        out
    }

    /// Find an image by `name[:tag]`, full id (`sha256:HEX` or `HEX`) or unique id prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image, ImageError> {
        let state = self.lock();
        find(&state.index, name_or_id).map(|r| self.image(r))
    }

    /// Point `target` (`name[:tag]`) at the image `source` names; the tag moves if another
    /// image had it.
    pub fn tag(&self, source: &str, target: &str) -> Result<Image, ImageError> {
        let reference = parse_reference(target)?.to_string();
        let mut state = self.lock();
        let id = find(&state.index, source)?.id.clone();
        move_tag(&mut state.index, &id, &reference);
        self.save(&state.index)?;
        Ok(self.image(&state.index.images[&id]))
    }

    /// `docker rmi`: untag a reference, and delete the image when no reference is left (or
    /// when named by id). Refuses while a container uses it (see [`ImageStore::set_users`]).
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<RemoveAction>, ImageError> {
        let mut actions = Vec::new();
        let garbage;
        // Ask about users before taking the lock: the callback may be slow or use the store.
        let users = self.users_of(&self.resolve(name)?.id);
        {
            let mut state = self.lock();
            let record = find(&state.index, name)?.clone();
            let by_reference = Reference::parse(name)
                .ok()
                .map(|r| r.to_string())
                .filter(|r| record.repo_tags.contains(r));
            let short = short_id(&record.id);
            match by_reference {
                Some(reference) if record.repo_tags.len() > 1 => {
                    untag(&mut state.index, &record.id, &reference);
                    actions.push(RemoveAction::Untagged(reference));
                }
                Some(reference) => {
                    if let Some(container) = users.first() {
                        if !force {
                            return Err(ImageError::InUseReference {
                                reference,
                                container: short_id(container),
                                id: short,
                            });
                        }
                    }
                    untag(&mut state.index, &record.id, &reference);
                    actions.push(RemoveAction::Untagged(reference));
                }
                None => {
                    if record.repo_tags.len() > 1 && !force {
                        return Err(ImageError::MultipleReferences { id: short });
                    }
                    if let Some(container) = users.first() {
                        return Err(ImageError::InUse {
                            id: short,
                            container: short_id(container),
                        });
                    }
                    for tag in &record.repo_tags {
                        actions.push(RemoveAction::Untagged(tag.clone()));
                    }
                    let record = state.index.images.get_mut(&record.id).expect("found above");
                    record.repo_tags.clear();
                }
            }
            let now_untagged = state.index.images[&record.id].repo_tags.is_empty();
            if now_untagged && users.is_empty() {
                state.index.images.remove(&record.id);
                actions.push(RemoveAction::Deleted(record.id.clone()));
            }
            self.save(&state.index)?;
            garbage = record.layers.iter().map(|l| l.diff_id.clone()).collect();
            if actions
                .iter()
                .any(|a| matches!(a, RemoveAction::Deleted(_)))
            {
                let blob = self.blob_path(&record.id);
                let _ = std::fs::remove_file(blob);
            }
        }
        self.collect_garbage(garbage);
        Ok(actions)
    }

    fn blob_path(&self, id: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(id.strip_prefix("sha256:").unwrap_or(id))
    }

    /// Remove those of `candidates` that no image references and no import has pinned.
    fn collect_garbage(&self, candidates: Vec<String>) {
        let mut doomed = Vec::new();
        {
            let state = self.lock();
            for diff_id in candidates {
                if state.index.references_layer(&diff_id) || state.pinned.contains_key(&diff_id) {
                    continue;
                }
                // Rename out of layers/ under the lock; the slow removal happens outside it.
                let from = self.layer_dir(&diff_id);
                let to = self.temp_path("gc");
                if std::fs::rename(&from, &to).is_ok() {
                    doomed.push(TempPath(Some(to)));
                }
            }
        }
        drop(doomed);
    }

    fn temp_path(&self, what: &str) -> PathBuf {
        let suffix = &crate::agent::random_id()[..16];
        self.root.join("tmp").join(format!("{what}-{suffix}"))
    }

    /// Persist the index: temp file, fsync, rename, fsync the directory.
    fn save(&self, index: &Index) -> Result<(), ImageError> {
        let path = self.root.join("index.json");
        let tmp = self.root.join("index.json.tmp");
        let bytes = serde_json::to_vec_pretty(index).expect("index serializes");
        let mut file = File::create(&tmp).map_err(storage("write", &tmp))?;
        file.write_all(&bytes).map_err(storage("write", &tmp))?;
        file.sync_all().map_err(storage("sync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(storage("replace", &path))?;
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(storage("sync", &self.root))
    }

    fn pin(&self, state: &mut State, diff_id: &str) {
        *state.pinned.entry(diff_id.to_string()).or_default() += 1;
    }

    fn unpin_all(&self, pins: &[String]) {
        {
            let mut state = self.lock();
            for diff_id in pins {
                if let Some(n) = state.pinned.get_mut(diff_id) {
                    *n -= 1;
                    if *n == 0 {
                        state.pinned.remove(diff_id);
                    }
                }
            }
        }
        self.collect_garbage(pins.to_vec());
    }

    /// Pin `diff_id` if its layer is already present. Returns whether it was.
    fn pin_if_present(&self, diff_id: &str) -> bool {
        let mut state = self.lock();
        if self.layer_dir(diff_id).is_dir() {
            self.pin(&mut state, diff_id);
            true
        } else {
            false
        }
    }

    /// Unpack a layer from `reader` into tmp, check its digests, move it into `layers/` (or
    /// drop it if an identical layer appeared meanwhile) and pin it.
    fn add_layer<R: Read>(
        &self,
        reader: R,
        expected_diff_id: Option<&str>,
        expected_blob: Option<&str>,
    ) -> Result<unpack::Unpacked, ImageError> {
        let tmp = TempPath(Some(self.temp_path("layer")));
        std::fs::create_dir(tmp.path()).map_err(storage("create", tmp.path()))?;
        let layer_name = expected_diff_id.unwrap_or("from the tarball").to_string();
        let mut blob = HashingReader::new(reader);
        let unpacked =
            unpack::unpack_layer(&mut blob, tmp.path()).map_err(|source| ImageError::Unpack {
                layer: layer_name.clone(),
                source,
            })?;
        let (blob_hex, _) = blob.finish().map_err(ImageError::ReadArchive)?;
        if let Some(expected) = expected_blob {
            if blob_hex != expected {
                return Err(ImageError::DigestMismatch {
                    what: format!("layer blob sha256:{expected}"),
                    actual: format!("sha256:{blob_hex}"),
                });
            }
        }
        if let Some(expected) = expected_diff_id {
            if unpacked.diff_id != expected {
                return Err(ImageError::DigestMismatch {
                    what: format!("layer {expected}"),
                    actual: unpacked.diff_id,
                });
            }
        }
        let mut state = self.lock();
        let dest = self.layer_dir(&unpacked.diff_id);
        match std::fs::rename(tmp.path(), &dest) {
            Ok(()) => {}
            // Already there (a concurrent import of the same layer): ours is dropped.
            Err(e) if dest.is_dir() => tracing::debug!(error = %e, "layer already present"),
            Err(e) => return Err(storage("move layer into", &dest)(e)),
        }
        self.pin(&mut state, &unpacked.diff_id);
        Ok(unpacked)
    }

    /// Size in bytes of a layer already present, counted from its files.
    fn layer_size(&self, diff_id: &str) -> u64 {
        let state = self.lock();
        state
            .index
            .images
            .values()
            .flat_map(|r| &r.layers)
            .find(|l| l.diff_id == diff_id)
            .map_or(0, |l| l.size)
    }

    /// Write a config blob and record the image with its tags, atomically with respect to
    /// other store changes. Returns the lines `docker load` prints about moved tags.
    fn commit(
        &self,
        config_bytes: &[u8],
        record: ImageRecord,
        tags: &[String],
    ) -> Result<Vec<String>, ImageError> {
        let blob = self.blob_path(&record.id);
        if !blob.exists() {
            let tmp = TempPath(Some(self.temp_path("blob")));
            let mut file = File::create(tmp.path()).map_err(storage("write", tmp.path()))?;
            file.write_all(config_bytes)
                .and_then(|()| file.sync_all())
                .map_err(storage("write", tmp.path()))?;
            std::fs::rename(tmp.path(), &blob).map_err(storage("write", &blob))?;
        }
        let mut state = self.lock();
        let mut messages = Vec::new();
        let id = record.id.clone();
        state.index.images.entry(id.clone()).or_insert(record);
        for tag in tags {
            if let Some(old) = state.index.by_tag(tag).filter(|r| r.id != id) {
                messages.push(format!(
                    "The image {tag} already exists, renaming the old one with ID {} to empty string",
                    old.id
                ));
            }
            move_tag(&mut state.index, &id, tag);
        }
        self.save(&state.index)?;
        Ok(messages)
    }

    /// `docker import`: one root filesystem tarball (plain or gzip) becomes a one-layer image,
    /// tagged `reference` if given.
    pub fn import<R: Read>(
        &self,
        reader: R,
        reference: Option<&str>,
        options: &ImportOptions,
    ) -> Result<Image, ImageError> {
        let tag = reference.map(parse_reference).transpose()?;
        let mut config = ImageConfig::default();
        for change in &options.changes {
            apply_change(&mut config, change)?;
        }
        let unpacked = self.add_layer(reader, None, None)?;
        let pins = vec![unpacked.diff_id.clone()];
        let result = (|| {
            let created = rfc3339(SystemTime::now());
            let comment = options
                .message
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "Imported from -".to_string());
            let file = ConfigFile {
                architecture: host_architecture().to_string(),
                os: "linux".into(),
                created: Some(created.clone()),
                author: None,
                comment: options.message.clone().filter(|m| !m.is_empty()),
                config: config.clone(),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![unpacked.diff_id.clone()],
                },
                history: vec![serde_json::json!({"created": created, "comment": comment})],
            };
            let bytes = serde_json::to_vec(&file).expect("config serializes");
            let id = format!("sha256:{}", sha256_hex(&bytes));
            let record = ImageRecord {
                id: id.clone(),
                repo_tags: Vec::new(),
                created,
                layers: vec![LayerRecord {
                    diff_id: unpacked.diff_id.clone(),
                    size: unpacked.size,
                }],
                config,
                architecture: file.architecture.clone(),
                os: file.os.clone(),
                author: String::new(),
                comment: file.comment.clone().unwrap_or_default(),
            };
            let tags: Vec<String> = tag.iter().map(|t| t.to_string()).collect();
            self.commit(&bytes, record, &tags)?;
            self.resolve(&id)
        })();
        self.unpin_all(&pins);
        result
    }

    /// `docker load`: every image in a `docker save` or OCI layout archive. All layers are
    /// unpacked and verified before any image is recorded, so a bad archive adds nothing.
    pub fn load<R: Read>(&self, mut reader: R) -> Result<Vec<Loaded>, ImageError> {
        let spool = TempPath(Some(self.temp_path("load")));
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(spool.path())
            .map_err(storage("create", spool.path()))?;
        io::copy(&mut reader, &mut file).map_err(ImageError::ReadArchive)?;
        let archive = archive::SpooledArchive::index(file)?;
        let sources = archive.images()?;
        if sources.is_empty() {
            return Err(ImageError::BadArchive {
                reason: "the archive holds no image".into(),
            });
        }
        let mut pins = Vec::new();
        let result = (|| {
            let mut prepared = Vec::new();
            for source in &sources {
                let tags = source
                    .repo_tags
                    .iter()
                    .map(|t| parse_reference(t).map(|r| r.to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut layers = Vec::new();
                for layer in &source.layers {
                    let size = if self.pin_if_present(&layer.diff_id) {
                        pins.push(layer.diff_id.clone());
                        self.layer_size(&layer.diff_id)
                    } else {
                        let unpacked = self.add_layer(
                            archive.open(layer.span)?,
                            Some(&layer.diff_id),
                            layer.blob_digest.as_deref(),
                        )?;
                        pins.push(unpacked.diff_id.clone());
                        unpacked.size
                    };
                    layers.push(LayerRecord {
                        diff_id: layer.diff_id.clone(),
                        size,
                    });
                }
                let id = format!("sha256:{}", sha256_hex(&source.config_bytes));
                let c = &source.config;
                let created = c
                    .created
                    .clone()
                    .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string());
                let record = ImageRecord {
                    id,
                    repo_tags: Vec::new(),
                    created,
                    layers,
                    config: c.config.clone(),
                    architecture: c.architecture.clone(),
                    os: c.os.clone(),
                    author: c.author.clone().unwrap_or_default(),
                    comment: c.comment.clone().unwrap_or_default(),
                };
                prepared.push((source, record, tags));
            }
            let mut loaded = Vec::new();
            for (source, record, tags) in prepared {
                let id = record.id.clone();
                let mut messages = self.commit(&source.config_bytes, record, &tags)?;
                if tags.is_empty() {
                    messages.push(format!("Loaded image ID: {id}"));
                }
                messages.extend(tags.iter().map(|t| format!("Loaded image: {t}")));
                loaded.push(Loaded { id, messages });
            }
            Ok(loaded)
        })();
        self.unpin_all(&pins);
        result
    }
}

fn parse_reference(text: &str) -> Result<Reference, ImageError> {
    Reference::parse(text).map_err(|reason| ImageError::InvalidReference {
        reference: text.to_string(),
        reason,
    })
}

/// Docker's short id: 12 hex digits without the algorithm.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex[..hex.len().min(12)].to_string()
}

fn find<'a>(index: &'a Index, name: &str) -> Result<&'a ImageRecord, ImageError> {
    if let Some(hex) = name.strip_prefix("sha256:") {
        return find_by_prefix(index, hex, name);
    }
    if let Ok(reference) = Reference::parse(name) {
        if let Some(record) = index.by_tag(&reference.to_string()) {
            return Ok(record);
        }
    }
    find_by_prefix(index, name, name)
}

fn find_by_prefix<'a>(
    index: &'a Index,
    hex: &str,
    shown: &str,
) -> Result<&'a ImageRecord, ImageError> {
    let is_hex = !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_hex {
        return Err(ImageError::NotFound(shown.to_string()));
    }
    let key = format!("sha256:{hex}");
    let mut matches = index
        .images
        .range(key.clone()..)
        .take_while(|(id, _)| id.starts_with(&key));
    match (matches.next(), matches.next()) {
        (Some((_, record)), None) => Ok(record),
        (Some(_), Some(_)) => Err(ImageError::Ambiguous(shown.to_string())),
        (None, _) => Err(ImageError::NotFound(shown.to_string())),
    }
}

fn untag(index: &mut Index, id: &str, tag: &str) {
    if let Some(record) = index.images.get_mut(id) {
        record.repo_tags.retain(|t| t != tag);
    }
}

fn move_tag(index: &mut Index, id: &str, tag: &str) {
    for record in index.images.values_mut() {
        if record.id != id {
            record.repo_tags.retain(|t| t != tag);
        }
    }
    if let Some(record) = index.images.get_mut(id) {
        if !record.repo_tags.iter().any(|t| t == tag) {
            record.repo_tags.push(tag.to_string());
            record.repo_tags.sort();
        }
    }
}

/// Apply one `docker import --change` instruction.
pub fn apply_change(config: &mut ImageConfig, change: &str) -> Result<(), ImageError> {
    let invalid = |reason: &str| ImageError::BadArchive {
        reason: format!("--change {change:?}: {reason}"),
    };
    let change = change.trim();
    let (instruction, rest) = change
        .split_once(char::is_whitespace)
        .map(|(i, r)| (i.to_ascii_uppercase(), r.trim()))
        .ok_or_else(|| invalid("expected INSTRUCTION ARGUMENTS"))?;
    // JSON array form, or shell form run through /bin/sh -c, as in a Dockerfile.
    let command = |rest: &str| -> Vec<String> {
        serde_json::from_str::<Vec<String>>(rest)
            .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
    };
    let pairs = |rest: &str| -> Result<Vec<(String, String)>, ImageError> {
        if !rest.contains('=') {
            let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            return Ok(vec![(k.to_string(), v.trim().to_string())]);
        }
        rest.split_whitespace()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                    .ok_or_else(|| invalid("expected KEY=VALUE"))
            })
            .collect()
    };
    match instruction.as_str() {
        "CMD" => config.cmd = Some(command(rest)),
        "ENTRYPOINT" => config.entrypoint = Some(command(rest)),
        "WORKDIR" => config.working_dir = rest.to_string(),
        "USER" => config.user = rest.to_string(),
        "STOPSIGNAL" => config.stop_signal = Some(rest.to_string()),
        "EXPOSE" => {
            for port in rest.split_whitespace() {
                let port = if port.contains('/') {
                    port.to_string()
                } else {
                    format!("{port}/tcp")
                };
                config.exposed_ports.insert(port);
            }
        }
        "ENV" => {
            for (k, v) in pairs(rest)? {
                config
                    .env
                    .retain(|e| e.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
                config.env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            for (k, v) in pairs(rest)? {
                config.labels.insert(k, v);
            }
        }
        other => return Err(invalid(&format!("unsupported instruction {other}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn import_resolve_tag_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let tar = tar_with(&[("etc/hostname", b"x\n")]);
        let opts = ImportOptions {
            changes: vec!["CMD [\"sh\"]".into(), "ENV A=1".into()],
            ..Default::default()
        };
        let image = store.import(&tar[..], Some("bb:1"), &opts).unwrap();
        assert_eq!(image.repo_tags, ["bb:1"]);
        assert_eq!(image.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert!(image.layers[0].join("etc/hostname").is_file());
        assert_eq!(store.resolve("bb:1").unwrap().id, image.id);
        assert_eq!(store.resolve(&image.id[7..19]).unwrap().id, image.id);
        assert!(matches!(store.resolve("bb"), Err(ImageError::NotFound(_))));

        store.tag("bb:1", "bb").unwrap();
        assert_eq!(
            store.remove("bb:1", false).unwrap(),
            [RemoveAction::Untagged("bb:1".into())]
        );
        store.set_users(|_| vec!["c0ffee".into()]);
        assert!(matches!(
            store.remove("bb", false),
            Err(ImageError::InUseReference { .. })
        ));
        store.set_users(|_| Vec::new());
        let actions = store.remove("bb:latest", false).unwrap();
        assert_eq!(actions[1], RemoveAction::Deleted(image.id.clone()));
        assert!(!image.layers[0].exists(), "unreferenced layer collected");
        drop(store);
        // Reopening reads the (now empty) index back.
        let store = ImageStore::open(dir.path()).unwrap();
        assert!(store.list().is_empty());
    }

    #[test]
    fn corrupt_import_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let mut tar = tar_with(&[("big", &[7u8; 5000])]);
        tar.truncate(3000);
        let err = store
            .import(&tar[..], Some("bad:1"), &ImportOptions::default())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        assert!(store.list().is_empty());
        let root = dir.path().join("images");
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(root.join("layers")).unwrap().count(), 0);
    }

    #[test]
    fn changes_follow_dockerfile_forms() {
        let mut c = ImageConfig::default();
        apply_change(&mut c, "ENTRYPOINT echo hi").unwrap();
        apply_change(&mut c, "EXPOSE 80 53/udp").unwrap();
        apply_change(&mut c, "LABEL a=b c=d").unwrap();
        apply_change(&mut c, "ENV PATH /bin").unwrap();
        assert_eq!(c.entrypoint.clone().unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.exposed_ports.len(), 2);
        assert_eq!(c.labels.len(), 2);
        assert_eq!(c.env, ["PATH=/bin"]);
        assert!(apply_change(&mut c, "RUN rm -rf /").is_err());
    }
}
