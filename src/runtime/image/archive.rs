//! Reading an image archive for `load`: a `docker save` tarball (`manifest.json` + config +
//! layer tars, legacy or OCI-shaped) or an OCI image layout tarball (`oci-layout`,
//! `index.json`, `blobs/sha256/…`).
//!
//! The archive is spooled to a file first (its `manifest.json` may come last), indexed in one
//! pass, and then read entry by entry with seeks, so only the layers an image needs (and does
//! not have yet) are decompressed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::spec::{
    host_architecture, ConfigFile, Descriptor, OciIndex, OciManifest, SaveManifestEntry,
    MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX,
};
use super::unpack::{components, sha256_hex};
use super::ImageError;

/// Metadata files are read into memory; nothing legitimate is this big.
const MAX_METADATA: u64 = 16 << 20;

/// Where a file's bytes are in the spooled archive.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub offset: u64,
    pub size: u64,
}

/// One image found in an archive, verified up to its layers (checked while unpacking).
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// The config blob; the image id is its sha256.
    pub config_bytes: Vec<u8>,
    pub config: ConfigFile,
    pub repo_tags: Vec<String>,
    pub layers: Vec<LayerSource>,
}

#[derive(Debug, Clone)]
pub struct LayerSource {
    pub span: Span,
    /// The sha256 hex the stored blob must have (OCI blobs), if the archive names one.
    pub blob_digest: Option<String>,
    /// `sha256:HEX` of the uncompressed tar, from the image config.
    pub diff_id: String,
}

#[derive(Debug)]
pub struct SpooledArchive {
    file: File,
    files: HashMap<String, Span>,
    links: HashMap<String, String>,
}

fn bad(reason: impl Into<String>) -> ImageError {
    ImageError::BadArchive {
        reason: reason.into(),
    }
}

fn normalise(raw: &[u8]) -> Option<String> {
    let parts = components(raw).ok()?;
    let parts: Vec<&str> = parts
        .iter()
        .map(|p| std::str::from_utf8(p).ok())
        .collect::<Option<_>>()?;
    Some(parts.join("/"))
}

impl SpooledArchive {
    /// Index the regular files (and symlinks, used by legacy `docker save` for shared layers).
    pub fn index(mut file: File) -> Result<SpooledArchive, ImageError> {
        file.seek(SeekFrom::Start(0)).map_err(read_err)?;
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        {
            let mut archive = tar::Archive::new(&mut file);
            for entry in archive.entries_with_seek().map_err(read_err)? {
                let entry = entry.map_err(read_err)?;
                let Some(path) = normalise(&entry.path_bytes()) else {
                    continue;
                };
                match entry.header().entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        files.insert(
                            path,
                            Span {
                                offset: entry.raw_file_position(),
                                size: entry.size(),
                            },
                        );
                    }
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        if let Some(target) = entry.link_name_bytes() {
                            let resolved = if entry.header().entry_type() == tar::EntryType::Link {
                                normalise(&target)
                            } else {
                                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                                resolve_relative(dir, &target)
                            };
                            if let Some(resolved) = resolved {
                                links.insert(path, resolved);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let len = file.metadata().map_err(read_err)?.len();
        for (path, span) in &files {
            if span.offset.saturating_add(span.size) > len {
                return Err(bad(format!("{path} is truncated")));
            }
        }
        Ok(SpooledArchive { file, files, links })
    }

    pub fn span(&self, path: &str) -> Option<Span> {
        let path = normalise(path.as_bytes())?;
        if let Some(span) = self.files.get(&path) {
            return Some(*span);
        }
        let target = self.links.get(&path)?;
        self.files.get(target).copied()
    }

    /// A reader over one file's bytes.
    pub fn open(&self, span: Span) -> Result<impl Read + '_, ImageError> {
        let mut file = &self.file;
        file.seek(SeekFrom::Start(span.offset)).map_err(read_err)?;
        Ok(file.take(span.size))
    }

    fn read_small(&self, path: &str) -> Result<Vec<u8>, ImageError> {
        let span = self
            .span(path)
            .ok_or_else(|| bad(format!("{path} is missing")))?;
        if span.size > MAX_METADATA {
            return Err(bad(format!("{path} is too large")));
        }
        let mut out = Vec::new();
        self.open(span)?.read_to_end(&mut out).map_err(read_err)?;
        Ok(out)
    }

    /// A blob of an OCI layout, checked against its digest.
    fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let hex = sha256_of_digest(digest)?;
        let bytes = self.read_small(&format!("blobs/sha256/{hex}"))?;
        let actual = sha256_hex(&bytes);
        if actual != hex {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {digest}"),
                actual: format!("sha256:{actual}"),
            });
        }
        Ok(bytes)
    }

    /// The images this archive holds: `manifest.json` when present (it carries the tags),
    /// otherwise the OCI layout's `index.json`.
    pub fn images(&self) -> Result<Vec<ImageSource>, ImageError> {
        if self.span("manifest.json").is_some() {
            return self.docker_images();
        }
        if self.span("index.json").is_some() {
            if self.span("oci-layout").is_none() {
                return Err(bad("index.json without oci-layout"));
            }
            return self.oci_images();
        }
        Err(bad(
            "neither manifest.json (docker save) nor index.json (OCI layout) found; \
             to import a root filesystem tarball use `image import`",
        ))
    }

    fn docker_images(&self) -> Result<Vec<ImageSource>, ImageError> {
        let manifest: Vec<SaveManifestEntry> =
            serde_json::from_slice(&self.read_small("manifest.json")?)
                .map_err(|e| bad(format!("manifest.json: {e}")))?;
        let mut out = Vec::new();
        for entry in manifest {
            let config_bytes = self.read_small(&entry.config)?;
            let config = parse_config(&config_bytes, &entry.config)?;
            if config.rootfs.diff_ids.len() != entry.layers.len() {
                return Err(bad(format!(
                    "{} lists {} layers but manifest.json {}",
                    entry.config,
                    config.rootfs.diff_ids.len(),
                    entry.layers.len()
                )));
            }
            let mut layers = Vec::new();
            for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
                let span = self
                    .span(path)
                    .ok_or_else(|| bad(format!("layer {path} is missing")))?;
                let blob_digest = path
                    .strip_prefix("blobs/sha256/")
                    .filter(|h| is_sha256_hex(h))
                    .map(String::from);
                layers.push(LayerSource {
                    span,
                    blob_digest,
                    diff_id: diff_id.clone(),
                });
            }
            out.push(ImageSource {
                config_bytes,
                config,
                repo_tags: entry.repo_tags,
                layers,
            });
        }
        Ok(out)
    }

    fn oci_images(&self) -> Result<Vec<ImageSource>, ImageError> {
        let index: OciIndex = serde_json::from_slice(&self.read_small("index.json")?)
            .map_err(|e| bad(format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for desc in &index.manifests {
            let names = names_of(desc);
            let manifest_desc = self.pick_manifest(desc, 0)?;
            let manifest: OciManifest =
                serde_json::from_slice(&self.read_blob(&manifest_desc.digest)?)
                    .map_err(|e| bad(format!("manifest {}: {e}", manifest_desc.digest)))?;
            let config_bytes = self.read_blob(&manifest.config.digest)?;
            let config = parse_config(&config_bytes, &manifest.config.digest)?;
            if config.rootfs.diff_ids.len() != manifest.layers.len() {
                return Err(bad(format!(
                    "config {} lists {} layers but its manifest {}",
                    manifest.config.digest,
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                )));
            }
            let mut layers = Vec::new();
            for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
                let hex = sha256_of_digest(&layer.digest)?;
                let path = format!("blobs/sha256/{hex}");
                let span = self
                    .span(&path)
                    .ok_or_else(|| bad(format!("layer {path} is missing")))?;
                layers.push(LayerSource {
                    span,
                    blob_digest: Some(hex.to_string()),
                    diff_id: diff_id.clone(),
                });
            }
            out.push(ImageSource {
                config_bytes,
                config,
                repo_tags: names,
                layers,
            });
        }
        Ok(out)
    }

    /// Follow an index (multi-platform) to the manifest for this machine.
    fn pick_manifest(&self, desc: &Descriptor, depth: u32) -> Result<Descriptor, ImageError> {
        if desc.media_type != MEDIA_OCI_INDEX && desc.media_type != MEDIA_DOCKER_LIST {
            return Ok(desc.clone());
        }
        if depth > 4 {
            return Err(bad("image indexes nested too deeply"));
        }
        let nested: OciIndex = serde_json::from_slice(&self.read_blob(&desc.digest)?)
            .map_err(|e| bad(format!("index {}: {e}", desc.digest)))?;
        let arch = host_architecture();
        let chosen = nested
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .or_else(|| nested.manifests.iter().find(|m| m.platform.is_none()))
            .ok_or_else(|| bad(format!("index {} has no linux/{arch} image", desc.digest)))?;
        self.pick_manifest(chosen, depth + 1)
    }
}

/// Image names an OCI index entry carries: containerd's full name, or a ref.name that is a
/// full reference (a bare tag names no repository, so that image loads untagged).
fn names_of(desc: &Descriptor) -> Vec<String> {
    if let Some(name) = desc.annotations.get("io.containerd.image.name") {
        return vec![name.clone()];
    }
    match desc.annotations.get("org.opencontainers.image.ref.name") {
        Some(name) if name.contains(':') || name.contains('/') => vec![name.clone()],
        _ => Vec::new(),
    }
}

fn parse_config(bytes: &[u8], what: &str) -> Result<ConfigFile, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| bad(format!("image config {what}: {e}")))
}

fn sha256_of_digest(digest: &str) -> Result<&str, ImageError> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| is_sha256_hex(h))
        .ok_or_else(|| bad(format!("unsupported digest {digest:?} (only sha256)")))
}

pub fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn resolve_relative(dir: &str, target: &[u8]) -> Option<String> {
    let target = std::str::from_utf8(target).ok()?;
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn read_err(source: io::Error) -> ImageError {
    ImageError::ReadArchive(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_layer_symlinks_resolve() {
        assert_eq!(
            resolve_relative("abc", b"../def/layer.tar").as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(resolve_relative("", b"../x"), None);
    }
}
