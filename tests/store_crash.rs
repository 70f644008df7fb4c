//! Crash safety of `EmbeddedStore`: a child process (this test binary re-executed) commits
//! multi-key transactions in a loop (durable, deferred, deferred then synced) and is SIGKILLed
//! at random moments. After every kill the
//! store must open, be readable, and show each transaction all-or-nothing with a revision
//! counter that agrees with the data. Needs no root.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use warren::store::{EmbeddedStore, Key, Scope, Store, StoreExt, Txn};

/// Set (to the database path) only in the re-executed child.
const CHILD_ENV: &str = "WARREN_STORE_CRASH_CHILD";
const ROUNDS: usize = 40;

fn key(path: String) -> Key {
    Key::global(path).unwrap()
}

fn count_key() -> Key {
    key("count".into())
}

/// Transaction `n` writes a/n and b/n (same value) and count = n; every 7th transaction also
/// deletes the pair written 5 transactions earlier, so deletes are covered too.
fn deleted_by(n: u64) -> Option<u64> {
    (n % 7 == 0 && n > 5).then(|| n - 5)
}

/// Values of varying size (up to a few pages) so transactions span several pages.
fn value_of(n: u64) -> Vec<u8> {
    let len = usize::try_from(n % 5000).unwrap() + 8;
    let mut v = n.to_le_bytes().to_vec();
    v.resize(len, u8::try_from(n % 251).unwrap());
    v
}

/// The writer side. Does nothing unless started by `kill_writer_at_random_moments` as its child.
#[test]
fn writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = EmbeddedStore::open(&path).unwrap();
    let mut n = store
        .get_json::<u64>(&count_key())
        .unwrap()
        .map_or(0, |(n, _)| n);
    // Write straight to the fd: the test harness captures only print! output.
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    loop {
        n += 1;
        let value = value_of(n);
        let mut txn = Txn::new()
            .require_absent(key(format!("a/{n}")))
            .put(key(format!("a/{n}")), value.clone())
            .put(key(format!("b/{n}")), value)
            .put_json(count_key(), &n)
            .unwrap();
        if let Some(old) = deleted_by(n) {
            txn = txn
                .delete(key(format!("a/{old}")))
                .delete(key(format!("b/{old}")));
        }
        // A third of the commits are durable at once; the rest are deferred (the agent's
        // attach path), every other one then synced. Only durable commits are reported.
        let revision = match n % 3 {
            0 => store.commit(txn).unwrap(),
            1 => store.commit_deferred(txn).unwrap(),
            _ => {
                let revision = store.commit_deferred(txn).unwrap();
                store.sync().unwrap();
                revision
            }
        };
        assert_eq!(revision, n);
        if n % 3 != 1 {
            writeln!(out, "committed {n}").unwrap();
        }
    }
}

/// Open the store after a crash and check every invariant; returns the committed count.
fn verify(path: &Path, reported: u64) -> u64 {
    let store = EmbeddedStore::open(path).expect("store opens after SIGKILL");
    let count = store
        .get_json::<u64>(&count_key())
        .unwrap()
        .map_or(0, |(n, _)| n);
    // One commit per transaction on a fresh store: the counter equals the revision.
    assert_eq!(store.revision().unwrap(), count, "revision counter vs data");
    // A commit that returned is durable.
    assert!(
        count >= reported,
        "child reported commit {reported} but store has {count}"
    );
    let a = store.list(Scope::Global, "a/").unwrap().entries;
    let b = store.list(Scope::Global, "b/").unwrap().entries;
    assert_eq!(a.len(), b.len(), "a/ and b/ differ in size");
    for (ea, eb) in a.iter().zip(&b) {
        assert_eq!(ea.key.name(), eb.key.name(), "a/N without b/N");
        let n: u64 = ea.key.name().parse().unwrap();
        assert!(n <= count, "a/{n} beyond count {count}");
        assert_eq!(ea.value, value_of(n), "a/{n} value");
        assert_eq!(eb.value, value_of(n), "b/{n} value");
        assert_eq!((ea.revision, eb.revision), (n, n), "revisions of pair {n}");
    }
    // Exactly the pairs not deleted by a transaction up to `count` exist.
    let expected = (1..=count)
        .filter(|&m| !(m + 5 <= count && deleted_by(m + 5) == Some(m)))
        .count();
    assert_eq!(
        a.len(),
        expected,
        "number of pairs after {count} transactions"
    );
    count
}

fn random_below(n: u64) -> u64 {
    getrandom::u64().unwrap() % n
}

#[test]
fn kill_writer_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.db");
    let exe = std::env::current_exe().unwrap();
    let mut last = 0;
    let mut grew = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Read progress on a thread so the kill timing does not depend on the pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut reported = 0;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print "test writer_child ... " on the same line first.
                if line.ends_with("ready") {
                    let _ = tx.send(());
                } else if let Some(n) = line.strip_prefix("committed ") {
                    reported = n.parse().unwrap();
                }
            }
            reported
        });
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("round {round}: writer never became ready"));
        std::thread::sleep(Duration::from_millis(random_below(60)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let reported = reader.join().unwrap();

        let count = verify(&path, reported);
        assert!(
            count >= last,
            "round {round}: count went back from {last} to {count}"
        );
        if count > last {
            grew += 1;
        }
        last = count;
        eprintln!("round {round}: reported {reported}, store count {count}");
    }
    // The writer must really have been interrupted while working, not before it started.
    assert!(
        grew >= ROUNDS / 2,
        "writer made progress in only {grew} rounds"
    );
    assert!(last > 0);
}
