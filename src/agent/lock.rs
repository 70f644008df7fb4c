//! Exclusive ownership of the data and exec roots: a second agent on the same roots must refuse
//! to start (two agents reconciling the same state would undo each other's work).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{ErrorKind, HasKind};

const LOCK_FILE: &str = "warrend.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("create {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{root} is in use by another warrend (pid {holder}); stop it or give this one other --data-root/--exec-root")]
    Held { root: PathBuf, holder: String },
    #[error("lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

impl HasKind for LockError {
    fn kind(&self) -> ErrorKind {
        match self {
            LockError::Held { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }
}

/// Held for the agent's lifetime; the kernel releases the flock if the process dies.
#[derive(Debug)]
pub struct RootLock {
    _locks: Vec<Flock<File>>,
}

impl RootLock {
    /// Lock every root (created with mode 0700 if missing) and record our pid in each lock file.
    pub fn acquire(roots: &[&Path]) -> Result<RootLock, LockError> {
        let mut locks = Vec::new();
        for root in roots {
            locks.push(lock_one(root)?);
        }
        Ok(RootLock { _locks: locks })
    }
}

fn lock_one(root: &Path) -> Result<Flock<File>, LockError> {
    use std::os::unix::fs::DirBuilderExt;
    let create = |source| LockError::Create {
        path: root.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(create)?;
    let path = root.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| LockError::Create {
            path: path.clone(),
            source,
        })?;
    // A crashed agent's lock can outlive it for a moment: a child it was forking holds the
    // inherited descriptor until it execs. So a held lock is retried briefly before refusing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut file = file;
    let locked = loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                file = f;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other,
        }
    };
    let mut lock = match locked {
        Ok(lock) => lock,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Held {
                root: root.to_path_buf(),
                holder: if holder.is_empty() {
                    "unknown".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err((_, source)) => return Err(LockError::Lock { path, source }),
    };
    let record = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        writeln!(f, "{}", std::process::id())
    };
    record(&mut lock).map_err(|source| LockError::Create { path, source })?;
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RootLock::acquire(&[dir.path()]).unwrap();
        // flock is per open file description, so a second open in the same process conflicts.
        let err = RootLock::acquire(&[dir.path()]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(
            err.to_string().contains(&std::process::id().to_string()),
            "{err}"
        );
    }

    #[test]
    fn lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        drop(RootLock::acquire(&[dir.path()]).unwrap());
        RootLock::acquire(&[dir.path()]).unwrap();
    }
}
