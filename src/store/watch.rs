//! Watch delivery shared by the store backends: a registry of watchers, each fed through a
//! bounded `std::sync::mpsc` channel.
//!
//! Writers never block on a watcher: events are sent with `try_send`, and a watcher whose queue
//! is full is cut off (marked lagged, its sender dropped). Its receiver then drains what was
//! queued and ends; the owner checks [`Watch::lagged`] and resynchronises: watch again, then
//! list, and apply an event only if it is newer than the listed entry. This is etcd's
//! "compacted" contract in small.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Event, Scope};

/// Events a watcher may have queued before it is considered lagging and cut off.
pub const WATCH_QUEUE: usize = 4096;

/// A stream of [`Event`]s for commits after the watch began. Iterate it (blocking) or poll it
/// with [`try_recv`](Watch::try_recv) / [`recv_timeout`](Watch::recv_timeout). The stream ends
/// when the store is dropped or the watcher lagged.
#[derive(Debug)]
pub struct Watch {
    rx: Receiver<Event>,
    lagged: Arc<AtomicBool>,
    start_revision: u64,
}

impl Watch {
    /// The store revision when the watch began; every event has a greater revision.
    pub fn start_revision(&self) -> u64 {
        self.start_revision
    }

    /// Whether events were dropped because this watcher fell behind; once true, the stream ends
    /// after the queued events and the owner must re-list.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    /// The next event, blocking; `None` when the stream has ended.
    pub fn recv(&self) -> Option<Event> {
        self.rx.recv().ok()
    }

    /// The next event if one is queued. `Err(true)` when the stream has ended, `Err(false)` when
    /// it is merely empty.
    pub fn try_recv(&self) -> Result<Event, bool> {
        self.rx
            .try_recv()
            .map_err(|e| e == TryRecvError::Disconnected)
    }

    /// The next event, waiting at most `timeout`; `None` on timeout or end of stream.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Iterator for Watch {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.recv()
    }
}

#[derive(Debug)]
struct Watcher {
    scope: Scope,
    prefix: String,
    tx: SyncSender<Event>,
    lagged: Arc<AtomicBool>,
}

/// The watchers of one store.
#[derive(Debug, Default)]
pub(super) struct Watchers {
    list: Mutex<Vec<Watcher>>,
}

impl Watchers {
    pub(super) fn add(&self, scope: Scope, prefix: &str, start_revision: u64) -> Watch {
        let (tx, rx) = std::sync::mpsc::sync_channel(WATCH_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        self.lock().push(Watcher {
            scope,
            prefix: prefix.to_owned(),
            tx,
            lagged: lagged.clone(),
        });
        Watch {
            rx,
            lagged,
            start_revision,
        }
    }

    /// Deliver one commit's events. Called by the writer while it still holds its write lock,
    /// so every watcher sees commits in revision order.
    pub(super) fn notify(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        self.lock().retain(|w| {
            for event in events {
                let key = event.key();
                if key.scope() != w.scope || !key.path().starts_with(&w.prefix) {
                    continue;
                }
                match w.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        w.lagged.store(true, Ordering::Release);
                        tracing::warn!(scope = %w.scope, prefix = %w.prefix, "store watcher lagged; cut off");
                        return false;
                    }
                    Err(TrySendError::Disconnected(_)) => return false,
                }
            }
            true
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watcher>> {
        // A panic while holding this lock cannot leave the list inconsistent (retain/push only).
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }
}
