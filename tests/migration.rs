//! An agent started on a data root written by an older Warren keeps its networks, endpoints
//! and reservations (see `agent::schema`).
//!
//! The older layout is made the way that Warren wrote it: after a real agent has built its
//! state, its store is rewritten into schema 1 (every IPAM key in Global scope, no version key)
//! with the agent stopped, then a new agent starts on it.

mod common;

use common::Sandbox;
use warren::store::{EmbeddedStore, Key, Scope, Store, StoreExt, Txn};

/// Turn the store at `path` into what schema 1 looked like.
fn rewrite_as_schema_1(path: &std::path::Path) {
    let store = EmbeddedStore::open(path).unwrap();
    let mut txn = Txn::new().delete(Key::local("meta/schema-version").unwrap());
    let local_ipam = store.list(Scope::Local, "ipam/").unwrap().entries;
    assert!(!local_ipam.is_empty(), "the agent reserved subnets and addresses");
    for entry in local_ipam {
        txn = txn
            .put(Key::global(entry.key.path()).unwrap(), entry.value)
            .delete(entry.key);
    }
    store.commit(txn).unwrap();
}

#[test]
fn a_schema_1_data_root_keeps_its_networks_endpoints_and_reservations() {
    common::require_root();
    let sb = Sandbox::new();
    let mut agent = sb.start_agent(&[]);
    sb.warren_ok(
        &agent,
        &["network", "create", "--subnet", "10.77.0.0/24", "kept"],
    );
    sb.netns_add("m1");
    sb.warren_ok(&agent, &["network", "connect", "kept", "--netns", "m1"]);
    let status = agent.stop();
    assert!(status.success(), "{}", agent.log_text());

    let db = sb.dir.path().join("data").join("warren.db");
    rewrite_as_schema_1(&db);

    let mut agent = sb.start_agent(&[]);
    let net = sb.get_json(&agent, "/networks/kept");
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.77.0.0/24", "{net}");
    let first = net["Containers"]
        .as_object()
        .and_then(|c| c.values().next())
        .map(|e| e["IPv4Address"].as_str().unwrap_or_default().to_owned());
    assert_eq!(first.as_deref(), Some("10.77.0.2/24"), "{net}");
    // The endpoint still works, and its address is still taken: a new one gets the next.
    assert!(sb.ping_within("m1", "10.77.0.1", 20));
    sb.netns_add("m2");
    sb.warren_ok(&agent, &["network", "connect", "kept", "--netns", "m2"]);
    let ips: Vec<String> = sb.get_json(&agent, "/networks/kept")["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["IPv4Address"].as_str().unwrap().to_owned())
        .collect();
    assert!(ips.contains(&"10.77.0.3/24".to_owned()), "{ips:?}");
    // The subnet is still reserved: an overlapping network is refused.
    let out = sb.warren(
        &agent,
        &["network", "create", "--subnet", "10.77.0.0/16", "clash"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("overlap"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Removing the network releases what was migrated; then the store holds no IPAM key of
    // either scope for it.
    sb.warren_ok(&agent, &["network", "disconnect", "kept", "--netns", "m1"]);
    sb.warren_ok(&agent, &["network", "disconnect", "kept", "--netns", "m2"]);
    sb.warren_ok(&agent, &["network", "rm", "kept"]);
    sb.warren_ok(
        &agent,
        &["network", "create", "--subnet", "10.77.0.0/16", "reuse"],
    );
    assert!(agent.stop().success(), "{}", agent.log_text());
    let store = EmbeddedStore::open(&db).unwrap();
    assert!(store.list(Scope::Global, "").unwrap().entries.is_empty());
    assert_eq!(
        store
            .get_json::<u64>(&Key::local("meta/schema-version").unwrap())
            .unwrap()
            .map(|(v, _)| v),
        Some(2)
    );
}
