//! Unpacking one layer tarball (plain or gzip) into an empty directory, safely, in the form
//! overlayfs stacks as a lower dir.
//!
//! Safety: every file is created relative to a directory fd with `*at` calls, and parents are
//! walked one component at a time with `O_NOFOLLOW`, so nothing is ever resolved through a
//! symlink: an entry can only land inside the layer directory. Paths with `..` are refused
//! (they can only mean escape); a leading `/` is dropped (GNU tar and Docker do the same). An
//! entry whose parent is a symlink or a file (`a -> /etc` then `a/passwd`) is refused. Symlink
//! *targets* are stored as they are: they are resolved later inside the container's root.
//! Hard links must name an entry already unpacked in this layer. Device nodes are skipped.
//!
//! Whiteouts (OCI/Docker form) are converted to overlayfs form: `.wh.NAME` becomes a 0:0
//! character device `NAME`, `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use sha2::{Digest, Sha256};

use crate::error::{ErrorKind, HasKind};

/// What unpacking a layer yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// `sha256:HEX` of the uncompressed tar stream (the layer's DiffID).
    pub diff_id: String,
    /// Bytes of regular-file content.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("read the archive (corrupt or truncated?)")]
    Read(#[source] io::Error),
    #[error("unsupported compression {0} (use a plain or gzip-compressed tar)")]
    Compression(&'static str),
    #[error("archive entry {path:?} is truncated")]
    Truncated { path: String },
    #[error("archive entry {path:?} refused: {reason}")]
    Unsafe { path: String, reason: &'static str },
    #[error("archive entry {path:?}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("write {path:?} into the layer")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl HasKind for UnpackError {
    fn kind(&self) -> ErrorKind {
        match self {
            UnpackError::Write { .. } => ErrorKind::Internal,
            _ => ErrorKind::Invalid,
        }
    }
}

/// A reader that hashes (sha256) and counts everything read through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Read the rest of the stream (so the digest covers all of it), then return
    /// `(hex digest, bytes read)`.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((hex(&self.hasher.finalize()), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A tar stream, decompressed if it is gzip (detected by its magic bytes).
pub fn decompressed<'a, R: Read + 'a>(reader: R) -> Result<Box<dyn Read + 'a>, UnpackError> {
    let mut reader = BufReader::with_capacity(128 * 1024, reader);
    let head = reader.fill_buf().map_err(UnpackError::Read)?;
    let compression = match head {
        [0x1f, 0x8b, ..] => Some("gzip"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
        [0xfd, b'7', b'z', b'X', b'Z', ..] => Some("xz"),
        [b'B', b'Z', b'h', ..] => Some("bzip2"),
        _ => None,
    };
    match compression {
        None => Ok(Box::new(reader)),
        Some("gzip") => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader))),
        Some(other) => Err(UnpackError::Compression(other)),
    }
}

/// Unpack the (possibly gzip-compressed) tar `reader` into the existing empty directory `dest`.
/// On error `dest` holds a partial tree: the caller discards it.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path) -> Result<Unpacked, UnpackError> {
    let mut hashed = HashingReader::new(decompressed(reader)?);
    let root = openat(
        nix::fcntl::AT_FDCWD,
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Write {
        path: dest.display().to_string(),
        source: e.into(),
    })?;
    let mut layer = LayerWriter {
        root,
        dest: dest.to_path_buf(),
        cache: None,
        size: 0,
    };
    {
        let mut archive = tar::Archive::new(&mut hashed);
        for entry in archive.entries().map_err(UnpackError::Read)? {
            let mut entry = entry.map_err(UnpackError::Read)?;
            layer.apply(&mut entry)?;
        }
    }
    // The DiffID covers the whole stream, end-of-archive blocks included; draining also makes
    // the gzip decoder check its trailer (CRC and length).
    let (digest, _) = hashed.finish().map_err(UnpackError::Read)?;
    // One syncfs instead of an fsync per file: the caller renames the directory into place
    // next, and a layer must not be visible before its content is durable.
    nix::unistd::syncfs(&layer.root).map_err(|e| UnpackError::Write {
        path: dest.display().to_string(),
        source: e.into(),
    })?;
    Ok(Unpacked {
        diff_id: format!("sha256:{digest}"),
        size: layer.size,
    })
}

/// Path components of an archive entry, made relative: empty and `.` parts dropped, a leading
/// `/` ignored, `..` refused.
pub fn components(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("path contains \"..\""),
            _ => out.push(part),
        }
    }
    Ok(out)
}

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

struct LayerWriter {
    root: OwnedFd,
    dest: PathBuf,
    /// The last parent directory opened, by components: consecutive entries share parents.
    cache: Option<(Vec<Vec<u8>>, OwnedFd)>,
    size: u64,
}

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

impl LayerWriter {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let unsafe_entry = |reason| UnpackError::Unsafe {
            path: shown.clone(),
            reason,
        };
        let parts = components(&raw_path).map_err(unsafe_entry)?;
        let Some((name, parents)) = parts.split_last() else {
            return Ok(()); // the layer root itself
        };
        let header = entry.header();
        let kind = header.entry_type();
        let malformed = |e: io::Error| UnpackError::Malformed {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let mode = header.mode().map_err(malformed)? & 0o7777;
        // Blank owner fields (some writers leave them empty) mean root.
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let owner = match (u32::try_from(uid), u32::try_from(gid)) {
            (Ok(u), Ok(g)) => (Uid::from_raw(u), Gid::from_raw(g)),
            _ => {
                return Err(UnpackError::Malformed {
                    path: shown,
                    reason: "uid or gid out of range".into(),
                })
            }
        };
        let mtime = header.mtime().unwrap_or(0);
        let write_err = |source: io::Error| UnpackError::Write {
            path: shown.clone(),
            source,
        };

        if name.starts_with(WHITEOUT_PREFIX) {
            let dir = self.open_parent(parents, &shown)?;
            if *name == OPAQUE_MARKER {
                let dir = File::from(dir);
                xattr::FileExt::set_xattr(&dir, "trusted.overlay.opaque", b"y")
                    .map_err(write_err)?;
            } else if !name.starts_with(b".wh..wh.") {
                let hidden = &name[WHITEOUT_PREFIX.len()..];
                if hidden.is_empty() {
                    return Err(unsafe_entry("empty whiteout name"));
                }
                self.remove_existing(&dir, hidden, &shown)?;
                mknodat(&dir, os(hidden), SFlag::S_IFCHR, Mode::empty(), 0)
                    .map_err(|e| write_err(e.into()))?;
            } // other `.wh..wh.*` names are aufs bookkeeping: nothing to do
            return Ok(());
        }

        let dir = self.open_parent(parents, &shown)?;
        match kind {
            tar::EntryType::Directory => {
                match mkdirat(&dir, os(name), Mode::from_bits_truncate(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) if is_dir(&dir, name) => {}
                    Err(Errno::EEXIST) => {
                        self.remove_existing(&dir, name, &shown)?;
                        mkdirat(&dir, os(name), Mode::from_bits_truncate(0o700))
                            .map_err(|e| write_err(e.into()))?;
                    }
                    Err(e) => return Err(write_err(e.into())),
                }
                let fd = openat(
                    &dir,
                    os(name),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| write_err(e.into()))?;
                set_owner_mode(&File::from(fd), owner, mode).map_err(write_err)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.remove_existing(&dir, name, &shown)?;
                let fd = openat(
                    &dir,
                    os(name),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| write_err(e.into()))?;
                let mut file = File::from(fd);
                let expected = entry.size();
                let copied = io::copy(entry, &mut file).map_err(UnpackError::Read)?;
                if copied != expected {
                    return Err(UnpackError::Truncated { path: shown });
                }
                self.size += copied;
                // chown before chmod: chown clears setuid/setgid bits.
                set_owner_mode(&file, owner, mode).map_err(write_err)?;
                let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                file.set_modified(when).map_err(write_err)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("symlink without a target"))?
                    .into_owned();
                self.remove_existing(&dir, name, &shown)?;
                symlinkat(os(&target), &dir, os(name)).map_err(|e| write_err(e.into()))?;
                fchownat(
                    &dir,
                    os(name),
                    Some(owner.0),
                    Some(owner.1),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| write_err(e.into()))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("hard link without a target"))?
                    .into_owned();
                let target_parts = components(&target).map_err(unsafe_entry)?;
                let Some((target_name, target_parents)) = target_parts.split_last() else {
                    return Err(unsafe_entry("hard link to the layer root"));
                };
                let target_dir = self
                    .walk(target_parents, false)
                    .map_err(|_| unsafe_entry("hard link target is not in this layer"))?;
                if !exists(&target_dir, target_name) {
                    return Err(unsafe_entry("hard link target is not in this layer"));
                }
                if target_parts == parts {
                    return Ok(()); // a link to itself: nothing to do
                }
                self.remove_existing(&dir, name, &shown)?;
                linkat(
                    &target_dir,
                    os(target_name),
                    &dir,
                    os(name),
                    AtFlags::empty(),
                )
                .map_err(|e| write_err(e.into()))?;
            }
            tar::EntryType::Fifo => {
                self.remove_existing(&dir, name, &shown)?;
                mknodat(
                    &dir,
                    os(name),
                    SFlag::S_IFIFO,
                    Mode::from_bits_truncate(0o600),
                    0,
                )
                .map_err(|e| write_err(e.into()))?;
                fchownat(
                    &dir,
                    os(name),
                    Some(owner.0),
                    Some(owner.1),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| write_err(e.into()))?;
                nix::sys::stat::fchmodat(
                    &dir,
                    os(name),
                    Mode::from_bits_truncate(mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| write_err(e.into()))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                // Device nodes come from the runtime's minimal /dev, never from an image.
                tracing::debug!(path = %shown, "skipping device node in layer");
            }
            tar::EntryType::GNUSparse => {
                return Err(UnpackError::Malformed {
                    path: shown,
                    reason: "sparse files are not supported".into(),
                })
            }
            _ => {} // PAX and GNU metadata entries are folded into the next entry by `tar`
        }
        Ok(())
    }

    /// The directory that will hold an entry, creating missing parents (0755, root-owned).
    fn open_parent(&mut self, parents: &[&[u8]], shown: &str) -> Result<OwnedFd, UnpackError> {
        if let Some((cached, fd)) = &self.cache {
            if cached.iter().map(Vec::as_slice).eq(parents.iter().copied()) {
                return fd.try_clone().map_err(|source| UnpackError::Write {
                    path: shown.to_string(),
                    source,
                });
            }
        }
        let fd = self.walk(parents, true).map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => UnpackError::Unsafe {
                path: shown.to_string(),
                reason: "a parent directory is a symlink or not a directory",
            },
            other => UnpackError::Write {
                path: shown.to_string(),
                source: other.into(),
            },
        })?;
        let copy = fd.try_clone().map_err(|source| UnpackError::Write {
            path: shown.to_string(),
            source,
        })?;
        self.cache = Some((parents.iter().map(|p| p.to_vec()).collect(), copy));
        Ok(fd)
    }

    /// Walk `parts` from the layer root without following symlinks (ELOOP on a symlink,
    /// ENOTDIR on a file), optionally creating missing directories.
    fn walk(&self, parts: &[&[u8]], create: bool) -> Result<OwnedFd, Errno> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut cur = openat(&self.root, ".", flags, Mode::empty())?;
        for part in parts {
            cur = match openat(&cur, os(part), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match mkdirat(&cur, os(part), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    openat(&cur, os(part), flags, Mode::empty())?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }

    /// Make room for a new entry: remove whatever has that name (a directory recursively).
    fn remove_existing(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        shown: &str,
    ) -> Result<(), UnpackError> {
        let write_err = |source: io::Error| UnpackError::Write {
            path: shown.to_string(),
            source,
        };
        match unlinkat(dir, os(name), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => {
                // Rare (a layer replacing its own directory by a file). Find the directory's
                // path: parents were walked without following symlinks, so the path is real.
                self.cache = None;
                let path = fd_path(dir).map_err(write_err)?.join(os(name));
                if !path.starts_with(&self.dest) {
                    return Err(write_err(io::Error::other("directory outside the layer")));
                }
                std::fs::remove_dir_all(&path).map_err(write_err)
            }
            Err(e) => Err(write_err(e.into())),
        }
    }
}

fn fd_path(fd: &OwnedFd) -> io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

fn is_dir(dir: &OwnedFd, name: &[u8]) -> bool {
    fstatat(dir, os(name), AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false)
}

fn exists(dir: &OwnedFd, name: &[u8]) -> bool {
    fstatat(dir, os(name), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
}

fn set_owner_mode(file: &File, owner: (Uid, Gid), mode: u32) -> io::Result<()> {
    std::os::unix::fs::fchown(file, Some(owner.0.as_raw()), Some(owner.1.as_raw()))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_drop_root_and_dots_and_refuse_dotdot() {
        assert_eq!(
            components(b"/etc/./passwd").unwrap(),
            [b"etc".as_slice(), b"passwd"]
        );
        assert_eq!(components(b"./").unwrap(), Vec::<&[u8]>::new());
        assert!(components(b"../evil").is_err());
        assert!(components(b"a/../../evil").is_err());
    }

    #[test]
    fn compression_is_detected() {
        assert!(matches!(
            decompressed(&[0x28u8, 0xb5, 0x2f, 0xfd, 0][..]),
            Err(UnpackError::Compression("zstd"))
        ));
        assert!(decompressed(&b"plain"[..]).is_ok());
    }

    #[test]
    fn hashing_reader_digests_everything() {
        let r = HashingReader::new(&b"abc"[..]);
        let (digest, n) = r.finish().unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
