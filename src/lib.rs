//! Warren: a container networking agent and netns toolkit for Linux.
//!
//! Dependencies point one way: `cli → api → agent → {store, ipam, drivers, firewall, dns,
//! netns, netlink, runtime}`. Networking never depends on the runtime: the agent wires a
//! namespace first and the runtime joins it by path.

pub mod agent;
pub mod api;
pub mod cli;
pub mod dns;
pub mod drivers;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod runtime;
pub mod store;

pub use error::{Error, ErrorKind, HasKind, Result};

/// Warren's version, reported by `warren version` and `GET /version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
