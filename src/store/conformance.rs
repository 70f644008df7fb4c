//! The store conformance suite: every [`Store`] backend must pass every case here, so the
//! agent can rely on one set of semantics (etcd's). A backend joins with one test:
//!
//! ```ignore
//! #[test]
//! fn my_store_conforms() {
//!     conformance::run(|| Arc::new(MyStore::new()) as Arc<dyn Store>);
//! }
//! ```
//!
//! Each case gets a fresh, empty store. No case mixes scopes in one transaction: a
//! [`CompositeStore`](super::CompositeStore) refuses that, and so the agent never does it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

type Case = fn(Arc<dyn Store>);

/// Every case, by name.
pub(crate) const CASES: &[(&str, Case)] = &[
    ("put_get_and_revisions", put_get_and_revisions),
    (
        "list_is_ordered_filtered_and_at_a_revision",
        list_is_ordered_filtered_and_at_a_revision,
    ),
    (
        "failed_compare_writes_nothing",
        failed_compare_writes_nothing,
    ),
    (
        "compares_revision_exists_absent",
        compares_revision_exists_absent,
    ),
    ("empty_and_no_op_transactions", empty_and_no_op_transactions),
    (
        "two_ops_on_one_key_are_refused",
        two_ops_on_one_key_are_refused,
    ),
    ("json_helpers_round_trip", json_helpers_round_trip),
    (
        "watch_sees_later_commits_in_order_with_prefix_filter",
        watch_sees_later_commits_in_order_with_prefix_filter,
    ),
    (
        "watch_from_replays_what_was_missed",
        watch_from_replays_what_was_missed,
    ),
    (
        "watch_from_a_forgotten_revision_is_compacted",
        watch_from_a_forgotten_revision_is_compacted,
    ),
    (
        "slow_watcher_is_cut_off_and_resumes",
        slow_watcher_is_cut_off_and_resumes,
    ),
    ("watch_is_an_async_stream", watch_is_an_async_stream),
    (
        "commit_with_retry_replans_on_conflict",
        commit_with_retry_replans_on_conflict,
    ),
    (
        "deferred_commits_are_visible_at_once",
        deferred_commits_are_visible_at_once,
    ),
    (
        "leased_keys_go_with_their_lease",
        leased_keys_go_with_their_lease,
    ),
    (
        "expiry_reaches_watchers_unprompted",
        expiry_reaches_watchers_unprompted,
    ),
    (
        "keep_alive_renews_and_unknown_leases_fail",
        keep_alive_renews_and_unknown_leases_fail,
    ),
    (
        "a_put_without_the_lease_detaches_the_key",
        a_put_without_the_lease_detaches_the_key,
    ),
];

/// Run every case against stores made by `make`.
pub(crate) fn run(make: impl Fn() -> Arc<dyn Store>) {
    for (name, case) in CASES {
        eprintln!("store conformance: {name}");
        case(make());
    }
}

fn g(path: &str) -> Key {
    Key::global(path).unwrap()
}

fn l(path: &str) -> Key {
    Key::local(path).unwrap()
}

fn value(store: &dyn Store, key: &Key) -> Option<Vec<u8>> {
    store.get(key).unwrap().map(|e| e.value)
}

/// The next event within `limit` (generous: a bound for a hung test, not a timing claim).
fn next_within(w: &mut Watch, limit: Duration) -> Option<Event> {
    let until = Instant::now() + limit;
    loop {
        match w.try_recv() {
            Ok(event) => return Some(event),
            Err(true) => return None,
            Err(false) if Instant::now() > until => return None,
            Err(false) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

const PATIENCE: Duration = Duration::from_secs(10);

fn put_get_and_revisions(s: Arc<dyn Store>) {
    assert_eq!(s.revision().unwrap(), 0);
    assert_eq!(s.get(&g("a")).unwrap(), None);
    let r1 = s.commit(Txn::new().put(g("a"), b"1".to_vec())).unwrap();
    assert_eq!(r1, 1);
    let r2 = s.commit(Txn::new().put(g("b"), b"2".to_vec())).unwrap();
    assert_eq!(r2, 2);
    s.commit(Txn::new().put(l("a"), b"3".to_vec())).unwrap();
    let a = s.get(&g("a")).unwrap().unwrap();
    assert_eq!((a.value.as_slice(), a.revision), (&b"1"[..], 1));
    assert_eq!(s.get(&g("b")).unwrap().unwrap().revision, 2);
    // Scopes are separate namespaces.
    assert_eq!(value(&*s, &l("a")), Some(b"3".to_vec()));
    assert_eq!(value(&*s, &l("b")), None);
    // Overwrite moves the entry's revision.
    let r4 = s.commit(Txn::new().put(g("a"), b"4".to_vec())).unwrap();
    assert!(r4 > r2);
    assert_eq!(s.get(&g("a")).unwrap().unwrap().revision, r4);
}

fn list_is_ordered_filtered_and_at_a_revision(s: Arc<dyn Store>) {
    let mut txn = Txn::new();
    for p in ["net/b", "net/a", "net/c/x", "netz", "other"] {
        txn = txn.put(g(p), p.as_bytes().to_vec());
    }
    let listed_at = s.commit(txn).unwrap();
    s.commit(Txn::new().put(l("net/local"), vec![])).unwrap();
    let paths = |prefix: &str| -> Vec<String> {
        s.list(Scope::Global, prefix)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.key.path().to_owned())
            .collect()
    };
    assert_eq!(paths("net/"), ["net/a", "net/b", "net/c/x"]);
    assert_eq!(paths("net"), ["net/a", "net/b", "net/c/x", "netz"]);
    assert_eq!(paths("").len(), 5);
    assert!(paths("zzz").is_empty());
    assert_eq!(s.list(Scope::Local, "").unwrap().entries.len(), 1);
    assert!(s.list(Scope::Global, "/net").is_err());
    // The listing names the revision it read at, even when a later commit touched other keys.
    let now = s.commit(Txn::new().put(g("other"), vec![1])).unwrap();
    let listing = s.list(Scope::Global, "net/").unwrap();
    assert_eq!(listing.revision, now);
    assert!(listing.entries.iter().all(|e| e.revision == listed_at));
}

fn failed_compare_writes_nothing(s: Arc<dyn Store>) {
    s.commit(Txn::new().put(g("taken"), b"x".to_vec())).unwrap();
    let txn = Txn::new()
        .put(g("new"), b"1".to_vec())
        .create_json(g("taken"), &"y")
        .unwrap();
    let err = s.commit(txn).unwrap_err();
    assert!(matches!(&err, StoreError::Conflict { key } if key == &g("taken")));
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(value(&*s, &g("new")), None);
    assert_eq!(value(&*s, &g("taken")), Some(b"x".to_vec()));
    assert_eq!(s.revision().unwrap(), 1);
}

fn compares_revision_exists_absent(s: Arc<dyn Store>) {
    let rev = s.commit(Txn::new().put(g("k"), b"1".to_vec())).unwrap();
    // Stale revision fails, current succeeds.
    let stale = Txn::new()
        .require_revision(g("k"), rev + 7)
        .put(g("k"), b"2".to_vec());
    assert!(matches!(s.commit(stale), Err(StoreError::Conflict { .. })));
    let fresh = Txn::new()
        .require_revision(g("k"), rev)
        .put(g("k"), b"2".to_vec());
    assert_eq!(s.commit(fresh).unwrap(), rev + 1);
    // Revision compare on an absent key fails.
    let absent = Txn::new().require_revision(g("none"), 0).delete(g("k"));
    assert!(s.commit(absent).is_err());
    assert!(s
        .commit(Txn::new().require_exists(g("none")).delete(g("k")))
        .is_err());
    assert!(s
        .commit(Txn::new().require_absent(g("k")).delete(g("k")))
        .is_err());
    let r = s
        .commit(
            Txn::new()
                .require_exists(g("k"))
                .require_absent(g("none"))
                .delete(g("k")),
        )
        .unwrap();
    assert_eq!(r, rev + 2);
    assert_eq!(value(&*s, &g("k")), None);
}

fn empty_and_no_op_transactions(s: Arc<dyn Store>) {
    assert_eq!(s.commit(Txn::new()).unwrap(), 0);
    s.commit(Txn::new().put(g("a"), vec![])).unwrap();
    // Compares only: checked, nothing written, revision unchanged.
    assert_eq!(s.commit(Txn::new().require_exists(g("a"))).unwrap(), 1);
    assert!(s.commit(Txn::new().require_absent(g("a"))).is_err());
    // Deleting an absent key is allowed (still a writing commit, like etcd).
    assert_eq!(s.commit(Txn::new().delete(g("nothing"))).unwrap(), 2);
}

fn two_ops_on_one_key_are_refused(s: Arc<dyn Store>) {
    let txn = Txn::new().put(g("a"), vec![1]).delete(g("a"));
    assert!(matches!(s.commit(txn), Err(StoreError::DuplicateOp { .. })));
    // Same path in different scopes is two keys.
    s.commit(Txn::new().put(g("a"), vec![1])).unwrap();
    s.commit(Txn::new().put(l("a"), vec![2])).unwrap();
    assert_eq!(value(&*s, &g("a")), Some(vec![1]));
    assert_eq!(value(&*s, &l("a")), Some(vec![2]));
}

fn json_helpers_round_trip(s: Arc<dyn Store>) {
    let txn = Txn::new()
        .create_json(g("obj"), &vec![1u32, 2, 3])
        .unwrap()
        .put_json(g("other"), "text")
        .unwrap();
    let rev = s.commit(txn).unwrap();
    let (v, r): (Vec<u32>, u64) = s.get_json(&g("obj")).unwrap().unwrap();
    assert_eq!((v, r), (vec![1, 2, 3], rev));
    assert_eq!(s.get_json::<u32>(&g("missing")).unwrap(), None);
    assert!(matches!(
        s.get_json::<u32>(&g("other")),
        Err(StoreError::Decode { .. })
    ));
    let all: Vec<(Key, Vec<u32>, u64)> = s.list_json(Scope::Global, "obj").unwrap();
    assert_eq!(all.len(), 1);
    // Merge keeps both halves.
    let merged = Txn::new()
        .delete(g("obj"))
        .merge(Txn::new().require_exists(g("other")).delete(g("other")));
    assert_eq!((merged.compares.len(), merged.ops.len()), (1, 2));
    s.commit(merged).unwrap();
    assert!(s.list(Scope::Global, "").unwrap().entries.is_empty());
}

fn watch_sees_later_commits_in_order_with_prefix_filter(s: Arc<dyn Store>) {
    s.commit(Txn::new().put(g("net/old"), vec![0])).unwrap();
    let mut w = s.watch(Scope::Global, "net/").unwrap();
    assert_eq!(w.start_revision(), 1);
    s.commit(Txn::new().put(g("net/a"), vec![1]).put(g("other"), vec![9]))
        .unwrap();
    s.commit(Txn::new().put(l("net/a"), vec![2])).unwrap();
    s.commit(Txn::new().delete(g("net/old")).delete(g("net/never")))
        .unwrap();
    let e1 = next_within(&mut w, PATIENCE).unwrap();
    assert!(matches!(&e1, Event::Put(e) if e.key == g("net/a") && e.value == [1]));
    assert_eq!(e1.revision(), 2);
    let e2 = next_within(&mut w, PATIENCE).unwrap();
    assert_eq!(e2, Event::Delete(g("net/old"), 4));
    assert_eq!(w.try_recv(), Err(false));
    assert!(!w.lagged());
}

fn watch_from_replays_what_was_missed(s: Arc<dyn Store>) {
    s.commit(Txn::new().put(g("n/a"), vec![1])).unwrap();
    let listing = s.list(Scope::Global, "n/").unwrap();
    // Changes after the listing, before the watch began: replayed, in order, filtered.
    s.commit(Txn::new().put(g("n/b"), vec![2]).put(g("x"), vec![0]))
        .unwrap();
    s.commit(Txn::new().delete(g("n/a"))).unwrap();
    let mut w = s.watch_from(Scope::Global, "n/", listing.revision).unwrap();
    assert_eq!(w.start_revision(), listing.revision);
    s.commit(Txn::new().put(g("n/c"), vec![3])).unwrap();
    let seen: Vec<(String, u64)> = (0..3)
        .map(|_| next_within(&mut w, PATIENCE).unwrap())
        .map(|e| (e.key().path().to_owned(), e.revision()))
        .collect();
    assert_eq!(
        seen,
        [("n/b".into(), 2), ("n/a".into(), 3), ("n/c".into(), 4)]
    );
    assert_eq!(w.try_recv(), Err(false), "nothing twice");
    // A revision the store has not reached is refused.
    let err = s.watch_from(Scope::Global, "", 99).unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err}");
}

fn watch_from_a_forgotten_revision_is_compacted(s: Arc<dyn Store>) {
    // More single-key commits than any history keeps.
    // Deferred: visible at once, and the embedded store need not sync 4,000 times.
    for i in 0..=watch::WATCH_QUEUE {
        s.commit_deferred(Txn::new().put(g(&format!("k/{}", i % 7)), vec![]))
            .unwrap();
    }
    let err = s.watch_from(Scope::Global, "k/", 0).unwrap_err();
    assert!(
        matches!(err, StoreError::Compacted { requested: 0, compacted } if compacted > 0),
        "{err}"
    );
    // The way back: list, then watch from the listing's revision.
    let listing = s.list(Scope::Global, "k/").unwrap();
    assert_eq!(listing.entries.len(), 7);
    let mut w = s.watch_from(Scope::Global, "k/", listing.revision).unwrap();
    s.commit(Txn::new().put(g("k/new"), vec![])).unwrap();
    assert_eq!(next_within(&mut w, PATIENCE).unwrap().key(), &g("k/new"));
}

fn slow_watcher_is_cut_off_and_resumes(s: Arc<dyn Store>) {
    let mut w = s.watch(Scope::Global, "").unwrap();
    for i in 0..=watch::WATCH_QUEUE {
        s.commit_deferred(Txn::new().put(g(&format!("k/{i}")), vec![]))
            .unwrap();
    }
    assert!(w.lagged());
    let mut last = 0;
    while let Ok(event) = w.try_recv() {
        last = event.revision();
    }
    assert_eq!(last, watch::WATCH_QUEUE as u64);
    assert_eq!(w.try_recv(), Err(true), "stream ends after the cut");
    // Resume right after the last event seen: nothing lost, nothing repeated.
    let mut again = s.watch_from(Scope::Global, "", last).unwrap();
    let next = next_within(&mut again, PATIENCE).unwrap();
    assert_eq!(next.revision(), last + 1);
    // Dropped watchers are forgotten too.
    drop(s.watch(Scope::Global, "").unwrap());
    s.commit(Txn::new().put(g("again"), vec![])).unwrap();
}

fn watch_is_an_async_stream(s: Arc<dyn Store>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut w = s.watch(Scope::Local, "eps/").unwrap();
    let writer = Arc::clone(&s);
    let got = rt.block_on(async move {
        let commit = tokio::task::spawn_blocking(move || {
            writer
                .commit(Txn::new().put(l("eps/1"), b"x".to_vec()))
                .unwrap()
        });
        let event = tokio::time::timeout(PATIENCE, w.next()).await;
        (commit.await.unwrap(), event)
    });
    let (revision, event) = got;
    let event = event.expect("an event").expect("stream open");
    assert_eq!((event.key(), event.revision()), (&l("eps/1"), revision));
}

fn commit_with_retry_replans_on_conflict(s: Arc<dyn Store>) {
    // Threads increment one counter by read-modify-write with a revision compare.
    const THREADS: usize = 4;
    const EACH: usize = 5;
    let key = g("counter");
    s.commit(Txn::new().put_json(key.clone(), &0u64).unwrap())
        .unwrap();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let (s, key) = (&s, &key);
            scope.spawn(move || {
                for _ in 0..EACH {
                    commit_with_retry(&**s, || {
                        let (n, rev) = s.get_json::<u64>(key)?.unwrap();
                        let txn = Txn::new()
                            .require_revision(key.clone(), rev)
                            .put_json(key.clone(), &(n + 1))?;
                        Ok::<_, StoreError>(((), txn))
                    })
                    .unwrap();
                }
            });
        }
    });
    let (n, _) = s.get_json::<u64>(&key).unwrap().unwrap();
    assert_eq!(n, (THREADS * EACH) as u64);
}

fn deferred_commits_are_visible_at_once(s: Arc<dyn Store>) {
    assert_eq!(
        s.commit_deferred(Txn::new().put(g("a"), b"x".to_vec()))
            .unwrap(),
        1
    );
    assert_eq!(value(&*s, &g("a")), Some(b"x".to_vec()));
    s.sync().unwrap();
    s.sync().unwrap();
    assert_eq!(s.commit(Txn::new().put(g("b"), vec![])).unwrap(), 2);
}

fn leased_keys_go_with_their_lease(s: Arc<dyn Store>) {
    let lease = s.grant(Duration::from_secs(60)).unwrap();
    let other = s.grant(Duration::from_secs(60)).unwrap();
    assert_ne!(lease, other);
    s.commit(
        Txn::new()
            .put_leased(g("nodes/a"), b"a".to_vec(), lease)
            .put_leased(g("eps/a"), b"e".to_vec(), lease)
            .put_leased(g("nodes/b"), b"b".to_vec(), other)
            .put(g("plain"), vec![]),
    )
    .unwrap();
    let mut w = s.watch(Scope::Global, "nodes/").unwrap();
    s.revoke(lease).unwrap();
    // Both keys of the lease went at one revision; the rest stayed.
    assert_eq!(value(&*s, &g("nodes/a")), None);
    assert_eq!(value(&*s, &g("eps/a")), None);
    assert_eq!(value(&*s, &g("nodes/b")), Some(b"b".to_vec()));
    assert!(value(&*s, &g("plain")).is_some());
    assert_eq!(s.revision().unwrap(), 2);
    assert_eq!(
        next_within(&mut w, PATIENCE).unwrap(),
        Event::Delete(g("nodes/a"), 2)
    );
    // A revoked lease is gone: renewing, revoking again or putting under it fails, and the
    // failed put writes nothing.
    assert!(matches!(
        s.keep_alive(lease),
        Err(StoreError::LeaseNotFound { .. })
    ));
    assert!(matches!(
        s.revoke(lease),
        Err(StoreError::LeaseNotFound { .. })
    ));
    let err = s
        .commit(
            Txn::new()
                .put(g("with"), vec![])
                .put_leased(g("nodes/c"), vec![], lease),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(value(&*s, &g("with")), None);
    assert_eq!(s.revision().unwrap(), 2);
    // A TTL of zero or beyond the maximum is refused.
    assert!(matches!(
        s.grant(Duration::ZERO),
        Err(StoreError::InvalidTtl { .. })
    ));
    assert!(s.grant(lease::MAX_TTL + Duration::from_secs(1)).is_err());
}

fn expiry_reaches_watchers_unprompted(s: Arc<dyn Store>) {
    lease::spawn_reaper(Arc::downgrade(&s)).unwrap();
    let lease = s.grant(Duration::from_millis(50)).unwrap();
    s.commit(Txn::new().put_leased(g("nodes/h1"), b"h1".to_vec(), lease))
        .unwrap();
    let mut w = s.watch(Scope::Global, "nodes/").unwrap();
    // Nobody touches the store: the delete must still arrive.
    let event = next_within(&mut w, PATIENCE).expect("the expiry is seen as a delete");
    assert!(
        matches!(&event, Event::Delete(k, _) if k == &g("nodes/h1")),
        "{event:?}"
    );
    assert_eq!(value(&*s, &g("nodes/h1")), None);
    assert!(matches!(
        s.keep_alive(lease),
        Err(StoreError::LeaseNotFound { .. })
    ));
}

fn keep_alive_renews_and_unknown_leases_fail(s: Arc<dyn Store>) {
    let ttl = Duration::from_secs(1);
    let lease = s.grant(ttl).unwrap();
    s.commit(Txn::new().put_leased(g("alive"), vec![], lease))
        .unwrap();
    // Renewed well within its TTL for longer than one TTL: still there.
    let until = Instant::now() + ttl * 3 / 2;
    while Instant::now() < until {
        assert_eq!(s.keep_alive(lease).unwrap(), ttl);
        assert!(value(&*s, &g("alive")).is_some());
        std::thread::sleep(ttl / 20);
    }
    // Left alone, it goes (reads never show an expired lease's keys).
    let until = Instant::now() + PATIENCE;
    while value(&*s, &g("alive")).is_some() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(value(&*s, &g("alive")), None);
    assert!(s.keep_alive(LeaseId(u64::MAX)).is_err());
}

fn a_put_without_the_lease_detaches_the_key(s: Arc<dyn Store>) {
    let lease = s.grant(Duration::from_secs(60)).unwrap();
    s.commit(Txn::new().put_leased(g("k"), vec![1], lease))
        .unwrap();
    s.commit(Txn::new().put(g("k"), vec![2])).unwrap();
    s.revoke(lease).unwrap();
    assert_eq!(value(&*s, &g("k")), Some(vec![2]));
}
