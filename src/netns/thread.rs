//! Running a closure inside a network namespace on a dedicated, short-lived thread.
//!
//! `setns(2)` affects only the calling thread, so the thread that enters is one we made for
//! the purpose and it exits when the closure returns: no caller or tokio worker ever moves.

use std::fs::File;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use super::NetnsError;

fn open_ns(path: &Path) -> Result<File, NetnsError> {
    File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            NetnsError::NotFound {
                path: path.to_owned(),
            }
        } else {
            NetnsError::Open {
                path: path.to_owned(),
                source,
            }
        }
    })
}

fn enter(ns: &File, path: &Path) -> Result<(), NetnsError> {
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
        path: path.to_owned(),
        source,
    })
}

/// Run `f` inside the network namespace at `ns_path` and return its result. Blocks the caller
/// until `f` is done; from async code use [`run_in_async`]. A panic in `f` is resumed here.
pub fn run_in<T, F>(ns_path: &Path, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let ns = open_ns(ns_path)?;
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("warren-netns".into())
            .spawn_scoped(scope, || {
                enter(&ns, ns_path)?;
                Ok(f())
            })
            .map_err(|source| NetnsError::SpawnThread { source })?;
        worker
            .join()
            .unwrap_or_else(|panic| panic::resume_unwind(panic))
    })
}

/// Like [`run_in`], for async callers: the dedicated thread reports through a oneshot, so the
/// runtime's threads are never blocked or moved.
pub async fn run_in_async<T, F>(ns_path: PathBuf, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = open_ns(&ns_path)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("warren-netns".into())
        .spawn(move || {
            let outcome = match enter(&ns, &ns_path) {
                Ok(()) => Ok(panic::catch_unwind(AssertUnwindSafe(f))),
                Err(e) => Err(e),
            };
            // The receiver only goes away if the awaiting task was cancelled.
            let _ = tx.send(outcome);
        })
        .map_err(|source| NetnsError::SpawnThread { source })?;
    match rx.await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(panic))) => panic::resume_unwind(panic),
        Ok(Err(e)) => Err(e),
        // The thread always sends before exiting, unless sending itself panicked.
        Err(_) => panic!("namespace thread exited without reporting"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_netns_inode() -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    }

    #[test]
    fn runs_closure_on_another_thread_and_returns_its_value() {
        let caller = std::thread::current().id();
        let (ino, tid) = run_in(Path::new("/proc/self/ns/net"), || {
            (own_netns_inode(), std::thread::current().id())
        })
        .unwrap();
        assert_eq!(ino, own_netns_inode());
        assert_ne!(tid, caller);
    }

    #[test]
    fn missing_namespace_is_not_found() {
        let err = run_in(Path::new("/nonexistent/ns"), || ()).unwrap_err();
        assert!(matches!(err, NetnsError::NotFound { .. }));
    }

    #[test]
    fn async_variant_works_on_a_current_thread_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let v = rt
            .block_on(run_in_async(PathBuf::from("/proc/self/ns/net"), || 41 + 1))
            .unwrap();
        assert_eq!(v, 42);
    }
}
