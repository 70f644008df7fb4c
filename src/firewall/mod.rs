//! nftables: Warren owns one table name (`warren` by default) in two families — `inet` for
//! forwarding, isolation and NAT (v4 and v6 in one place) and `bridge` for icc=false — and
//! nothing else. Rules are built by pure functions ([`rules`]) and every operation is one
//! `nft -j -f -` run, i.e. one atomic transaction. Other tables are never flushed or touched.
//!
//! Rules grow per network, never per endpoint or port: dispatch goes through verdict maps keyed
//! by bridge name and DNAT maps keyed by (address, proto, port). Attaching an endpoint without
//! published ports needs no nft change at all; publishing a port is map elements only.
//!
//! ```text
//! table inet warren
//!   map fwd_from, fwd_to, nat_from, nat_to   ifname : verdict     bridge -> jump nw-<id>-*
//!   map pub4_addr / pub4_port                ip . proto . port : ip / port   (given host ip)
//!   map pub4_any_addr / pub4_any_port        proto . port : ip / port        (all host ips)
//!   map pub6_addr / pub6_port, pub6_any_addr / pub6_any_port                 (same for v6)
//!
//!   chain untracked    filter/prerouting -300: iifname "wx*" notrack   (extension bridges)
//!   chain forward      filter/forward 0:    ct state established,related accept
//!                                           iifname vmap @fwd_from
//!                                           oifname vmap @fwd_to
//!   chain prerouting   nat/prerouting -100: fib daddr type local jump published
//!   chain output       nat/output -100:     fib daddr type local jump published
//!   chain published    dnat ip to ip daddr . l4proto . th dport map @pub4_addr
//!                               : (same key) map @pub4_port     ... and the 3 other pairs
//!   chain postrouting  nat/postrouting 100: oifname vmap @nat_to
//!                                           iifname vmap @nat_from
//!
//!   per network <id> with bridge BR and subnets S:
//!   chain nw-<id>-from      internal: oifname != BR drop
//!   chain nw-<id>-to        iifname BR accept; [not internal] ct status dnat accept; drop
//!   chain nw-<id>-nat-from  [masquerade, not internal] ip saddr S oifname != BR masquerade
//!   chain nw-<id>-nat-to    [not internal] ip saddr 127.0.0.0/8 masquerade     (localhost)
//!                                          ip saddr S ct status dnat masquerade (hairpin)
//!
//! table bridge warren
//!   set icc_off4, icc_off6   subnets of icc=false networks (interval)
//!   chain forward  filter/forward -200:  iifname "wy*" accept; oifname "wy*" accept (uplinks)
//!                                        ip saddr @icc_off4 drop; ip daddr @icc_off4 drop
//!                                        ip6 saddr @icc_off6 drop; ip6 daddr @icc_off6 drop
//! ```
//!
//! Isolation follows from `nw-<id>-to`: a new connection enters a network only from its own
//! bridge or through a published port, so two networks cannot reach each other directly.
//! Conntrack state lives outside the tables, so replacing them keeps established connections.
//!
//! `nft` runs in the calling thread's network namespace.

mod error;
mod policy;
mod portspec;
pub mod rules;

use std::collections::HashSet;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

pub use error::{FirewallError, NftErrno, NftError};
pub use policy::{required_sysctls, NetworkPolicy, PortMapping, Proto};
pub use portspec::{parse_port_spec, HostPort, PortSpec};
pub use rules::{RuleBuilder, Transaction};

/// The table name the agent uses unless configured otherwise.
pub const DEFAULT_TABLE: &str = "warren";

/// Applies Warren's rules to the kernel, one transaction per call.
#[derive(Debug, Clone)]
pub struct Firewall {
    table: String,
}

impl Default for Firewall {
    fn default() -> Firewall {
        Firewall::new(DEFAULT_TABLE)
    }
}

impl Firewall {
    /// `table` names both owned tables (`inet` and `bridge`); tests and parallel agents
    /// pick different names.
    pub fn new(table: impl Into<String>) -> Firewall {
        Firewall {
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn rules(&self) -> RuleBuilder<'_> {
        RuleBuilder::new(&self.table)
    }

    /// Atomically replace everything Warren owns with exactly these networks and ports
    /// (agent start, reconcile, after someone flushed the ruleset).
    pub fn replace_all(
        &self,
        networks: &[NetworkPolicy],
        ports: &[PortMapping],
    ) -> Result<(), FirewallError> {
        let tx = self.rules().replace_all(networks, ports)?;
        run(&tx).map_err(|source| FirewallError::ReplaceAll {
            table: self.table.clone(),
            source,
        })?;
        Ok(())
    }

    /// Install (or rewrite) one network's chains and dispatch entries.
    pub fn add_network(&self, net: &NetworkPolicy) -> Result<(), FirewallError> {
        let tx = self.rules().add_network(net)?;
        run(&tx).map_err(|source| FirewallError::AddNetwork {
            table: self.table.clone(),
            network: net.id.clone(),
            bridge: net.bridge.clone(),
            source,
        })?;
        Ok(())
    }

    /// Remove one network's chains and entries; succeeds if it is already gone.
    /// The network's published ports must be removed first (or in the same reconcile).
    pub fn remove_network(&self, net: &NetworkPolicy) -> Result<(), FirewallError> {
        let tx = self.rules().remove_network(net)?;
        run(&tx).map_err(|source| FirewallError::RemoveNetwork {
            table: self.table.clone(),
            network: net.id.clone(),
            bridge: net.bridge.clone(),
            source,
        })?;
        Ok(())
    }

    /// Publish ports (map elements only). Re-adding an identical mapping is a no-op; a host
    /// port already mapped elsewhere fails with kind Conflict and changes nothing.
    pub fn add_ports(&self, ports: &[PortMapping]) -> Result<(), FirewallError> {
        if ports.is_empty() {
            return Ok(());
        }
        let tx = self.rules().add_ports(ports)?;
        run(&tx).map_err(|source| FirewallError::AddPorts {
            table: self.table.clone(),
            ports: summary(ports),
            source,
        })?;
        Ok(())
    }

    /// Unpublish ports (map elements only); ports not published are no error.
    pub fn remove_ports(&self, ports: &[PortMapping]) -> Result<(), FirewallError> {
        if ports.is_empty() {
            return Ok(());
        }
        let tx = self.rules().remove_ports(ports)?;
        run(&tx).map_err(|source| FirewallError::RemovePorts {
            table: self.table.clone(),
            ports: summary(ports),
            source,
        })?;
        Ok(())
    }

    /// Delete both owned tables; succeeds if they are already gone.
    pub fn delete_table(&self) -> Result<(), FirewallError> {
        run(&self.rules().delete_table()).map_err(|source| FirewallError::DeleteTable {
            table: self.table.clone(),
            source,
        })?;
        Ok(())
    }

    /// Whether the `inet` table exists (the `bridge` one always comes with it).
    pub fn table_exists(&self) -> Result<bool, FirewallError> {
        let listing = self.list(json!({ "list": { "tables": null } }))?;
        let exists = objects(&listing, "table")
            .any(|t| t["family"] == rules::INET && t["name"] == self.table.as_str());
        Ok(exists)
    }

    /// Number of rules in both owned tables (for tests and benchmarks).
    pub fn rule_count(&self) -> Result<usize, FirewallError> {
        let listing = self.list(json!({ "list": { "ruleset": null } }))?;
        let families: HashSet<&str> = [rules::INET, rules::BRIDGE].into();
        let count = objects(&listing, "rule")
            .filter(|r| {
                r["table"] == self.table.as_str()
                    && r["family"].as_str().is_some_and(|f| families.contains(f))
            })
            .count();
        Ok(count)
    }

    fn list(&self, command: Value) -> Result<Value, FirewallError> {
        let list_err = |source| FirewallError::ListTable {
            table: self.table.clone(),
            source,
        };
        let out = nft(&json!({ "nftables": [command] })).map_err(list_err)?;
        serde_json::from_str(&out).map_err(|e| list_err(NftError::Output(e.to_string())))
    }
}

/// Feed one transaction to `nft -j -f -`.
fn run(tx: &Transaction) -> Result<(), NftError> {
    tracing::debug!(commands = tx.commands().len(), "nft transaction");
    nft(&tx.to_json()).map(drop)
}

/// Run `nft -j -f -` on `document` and return its stdout.
///
/// Not `nftables::helper::apply_ruleset`: it leaves nft's stderr uncaptured, and stderr is
/// the only place nft reports why (and with which errno) a transaction failed.
fn nft(document: &Value) -> Result<String, NftError> {
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Exec)?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(document.to_string().as_bytes()));
    // Wait even if writing failed, so no zombie is left; nft's answer says more than EPIPE.
    let out = child.wait_with_output().map_err(NftError::Exec)?;
    if !out.status.success() {
        return Err(NftError::rejected(&String::from_utf8_lossy(&out.stderr)));
    }
    if let Some(Err(e)) = written {
        return Err(NftError::Exec(e));
    }
    String::from_utf8(out.stdout).map_err(|e| NftError::Output(e.to_string()))
}

/// The objects of one kind (`"rule"`, `"table"`, …) in an `nft -j list` answer.
fn objects<'v>(listing: &'v Value, kind: &'v str) -> impl Iterator<Item = &'v Value> {
    listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(move |o| o.get(kind))
}

/// A short description of a port list for error messages.
fn summary(ports: &[PortMapping]) -> String {
    const SHOWN: usize = 3;
    let mut s = ports
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ports.len() > SHOWN {
        s.push_str(&format!(" and {} more", ports.len() - SHOWN));
    }
    s
}
