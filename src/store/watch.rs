//! Watch delivery shared by the in-process backends: a registry of watchers, each fed through a
//! bounded channel, and a history of recent events so that a watch can start from a past
//! revision (`watch_from`).
//!
//! Writers never block on a watcher: events are sent with `try_send`, and a watcher whose queue
//! is full is cut off (marked lagged, its sender dropped). Its stream then yields what was
//! queued and ends; the owner checks [`Watch::lagged`] and resumes with `watch_from` the last
//! revision it saw — replayed from the history if still there, else [`StoreError::Compacted`]
//! and a fresh list. This is etcd's contract in small.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::mpsc::{Receiver, Sender};

use super::{Event, Scope, StoreError};

/// Events a watcher may have queued before it is considered lagging and cut off; also how
/// many recent events the history keeps for `watch_from`.
pub const WATCH_QUEUE: usize = 4096;

/// A stream of [`Event`]s in revision order: `next().await` in async code, [`Watch::recv`]
/// (blocking) elsewhere. The stream ends when the store is dropped or the watcher lagged.
#[derive(Debug)]
pub struct Watch {
    rx: Receiver<Event>,
    lagged: Arc<AtomicBool>,
    start_revision: u64,
}

impl Watch {
    /// The revision the watch started after; every event has a greater revision.
    pub fn start_revision(&self) -> u64 {
        self.start_revision
    }

    /// Whether events were dropped because this watcher fell behind; once true, the stream ends
    /// after the queued events and the owner must resume (see the module documentation).
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    /// The next event; `None` when the stream has ended.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event, blocking the thread; `None` when the stream has ended. Not for async
    /// code (use [`next`](Watch::next)).
    pub fn recv(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }

    /// The next event if one is queued. `Err(true)` when the stream has ended, `Err(false)` when
    /// it is merely empty.
    pub fn try_recv(&mut self) -> Result<Event, bool> {
        self.rx
            .try_recv()
            .map_err(|e| e == TryRecvError::Disconnected)
    }
}

#[derive(Debug)]
struct Watcher {
    scope: Scope,
    prefix: String,
    tx: Sender<Event>,
    lagged: Arc<AtomicBool>,
}

impl Watcher {
    fn wants(&self, event: &Event) -> bool {
        let key = event.key();
        key.scope() == self.scope && key.path().starts_with(&self.prefix)
    }

    /// Queue `event`; false once the watcher is gone or cut off.
    fn send(&self, event: &Event) -> bool {
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Release);
                tracing::warn!(scope = %self.scope, prefix = %self.prefix, "store watcher lagged; cut off");
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// The watchers of one store and its recent history.
#[derive(Debug)]
pub(super) struct Watchers {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    watchers: Vec<Watcher>,
    /// The most recent events, oldest first; whole commits only.
    history: VecDeque<Event>,
    /// Every change after this revision is in `history`.
    compacted: u64,
}

impl Watchers {
    /// Watchers of a store whose revision is `revision` now (nothing earlier is remembered).
    pub(super) fn new(revision: u64) -> Watchers {
        Watchers {
            inner: Mutex::new(Inner {
                watchers: Vec::new(),
                history: VecDeque::new(),
                compacted: revision,
            }),
        }
    }

    /// A watch of changes after `after`; `current` is the store's revision. Called under the
    /// store's write lock, so no commit slips between the replay and the registration.
    pub(super) fn add(
        &self,
        scope: Scope,
        prefix: &str,
        after: u64,
        current: u64,
    ) -> Result<Watch, StoreError> {
        if after > current {
            return Err(StoreError::FutureRevision {
                requested: after,
                current,
            });
        }
        let mut inner = self.lock();
        if after < inner.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: inner.compacted,
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_QUEUE);
        let watcher = Watcher {
            scope,
            prefix: prefix.to_owned(),
            tx,
            lagged: Arc::new(AtomicBool::new(false)),
        };
        // The history holds at most WATCH_QUEUE events: the replay always fits.
        for event in inner.history.iter().filter(|e| e.revision() > after) {
            if watcher.wants(event) {
                watcher.send(event);
            }
        }
        let watch = Watch {
            rx,
            lagged: watcher.lagged.clone(),
            start_revision: after,
        };
        inner.watchers.push(watcher);
        Ok(watch)
    }

    /// Deliver one commit's events. Called by the writer while it still holds its write lock,
    /// so every watcher sees commits in revision order.
    pub(super) fn notify(&self, events: &[Event]) {
        let Some(revision) = events.first().map(Event::revision) else {
            return;
        };
        let mut inner = self.lock();
        inner.watchers.retain(|w| {
            events
                .iter()
                .filter(|e| w.wants(e))
                .all(|event| w.send(event))
        });
        inner.history.extend(events.iter().cloned());
        // Forget whole commits from the front until the history fits.
        while inner.history.len() > WATCH_QUEUE {
            let Some(oldest) = inner.history.front().map(Event::revision) else {
                break;
            };
            while inner
                .history
                .front()
                .is_some_and(|e| e.revision() == oldest)
            {
                inner.history.pop_front();
            }
            inner.compacted = oldest;
        }
        debug_assert!(inner.compacted < revision || inner.history.is_empty());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave it inconsistent (retain/push/pop only).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
