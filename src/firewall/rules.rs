//! Pure builders: turn policies and port mappings into one nft JSON transaction.
//!
//! Nothing here runs `nft`; [`Firewall`](super::Firewall) feeds the result to `nft -j -f -`.
//! The JSON is built directly rather than through `nftables::schema`, because nftables 0.6's
//! schema cannot declare a verdict map (`type ifname : verdict`), and nft 1.0.6's JSON parser
//! cannot declare a map with a concatenated value — which is why each published port is two
//! map elements (address map + port map) instead of one `addr . port` element.
//!
//! Every batch is idempotent: objects are `add`ed (a no-op when identical), base chains are
//! flushed and refilled, and removals `add` an element/chain before deleting it so a missing
//! one is not an error. Only a genuine clash (a key bound to a different value) fails, with
//! EEXIST.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::{json, Value};

use super::error::FirewallError;
use super::policy::{validate_ports, HostMatch, NetworkPolicy, PortMapping};
use crate::drivers::bridge::{EXTENSION_PREFIX, UPLINK_PREFIX};

pub(crate) const INET: &str = "inet";
pub(crate) const BRIDGE: &str = "bridge";

// Base chains and their hooks (priorities as nft names them: filter 0, dstnat -100, srcnat 100;
// the bridge family's filter is -200).
const FORWARD: &str = "forward";
const PREROUTING: &str = "prerouting";
const OUTPUT: &str = "output";
const POSTROUTING: &str = "postrouting";
const PUBLISHED: &str = "published";
const UNTRACKED: &str = "untracked";

// Dispatch maps keyed by bridge name.
const FWD_FROM: &str = "fwd_from";
const FWD_TO: &str = "fwd_to";
const NAT_FROM: &str = "nat_from";
const NAT_TO: &str = "nat_to";
// Bridge-family sets of subnets whose members may not talk to each other.
const ICC_OFF4: &str = "icc_off4";
const ICC_OFF6: &str = "icc_off6";

/// The four DNAT map pairs: (address map, port map, address type, nat family, whether the
/// key starts with the host address — otherwise the pair serves every host address).
const PUBLISH_MAPS: [(&str, &str, &str, &str, bool); 4] = [
    ("pub4_addr", "pub4_port", "ipv4_addr", "ip", true),
    ("pub4_any_addr", "pub4_any_port", "ipv4_addr", "ip", false),
    ("pub6_addr", "pub6_port", "ipv6_addr", "ip6", true),
    ("pub6_any_addr", "pub6_any_port", "ipv6_addr", "ip6", false),
];

/// A list of nft commands applied as one atomic transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transaction {
    commands: Vec<Value>,
}

impl Transaction {
    fn push(&mut self, verb: &str, object: &str, body: Value) {
        self.commands.push(json!({ verb: { object: body } }));
    }

    pub fn commands(&self) -> &[Value] {
        &self.commands
    }

    /// The document `nft -j -f -` reads.
    pub fn to_json(&self) -> Value {
        json!({ "nftables": self.commands })
    }

    /// How many rules this transaction adds (what `rule_count` will see after a replace).
    pub fn added_rules(&self) -> usize {
        self.commands
            .iter()
            .filter(|c| c.pointer("/add/rule").is_some())
            .count()
    }
}

/// Builds transactions for one pair of Warren tables (`inet NAME` and `bridge NAME`).
#[derive(Debug, Clone, Copy)]
pub struct RuleBuilder<'a> {
    table: &'a str,
}

impl<'a> RuleBuilder<'a> {
    pub fn new(table: &'a str) -> RuleBuilder<'a> {
        RuleBuilder { table }
    }

    /// Drop and rebuild both tables with every network and port, in one transaction.
    pub fn replace_all(
        &self,
        networks: &[NetworkPolicy],
        ports: &[PortMapping],
    ) -> Result<Transaction, FirewallError> {
        validate_networks(networks)?;
        validate_ports(ports)?;
        for p in ports {
            match networks.iter().find(|n| n.id == p.network_id) {
                None => {
                    return Err(FirewallError::UnknownNetwork {
                        mapping: p.to_string(),
                        network_id: p.network_id.clone(),
                    })
                }
                Some(n) if n.internal => {
                    return Err(FirewallError::InternalNetworkPort {
                        mapping: p.to_string(),
                        network_id: p.network_id.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        let mut tx = Transaction::default();
        self.drop_tables(&mut tx);
        self.skeleton(&mut tx);
        for n in networks {
            self.network(&mut tx, n);
        }
        self.port_elements(&mut tx, "add", ports);
        Ok(tx)
    }

    /// Ensure the skeleton and (re)write one network's chains and dispatch elements.
    pub fn add_network(&self, net: &NetworkPolicy) -> Result<Transaction, FirewallError> {
        net.validate()?;
        let mut tx = Transaction::default();
        self.skeleton(&mut tx);
        self.network(&mut tx, net);
        Ok(tx)
    }

    /// Remove one network's chains and elements; a network that is not there is no error.
    pub fn remove_network(&self, net: &NetworkPolicy) -> Result<Transaction, FirewallError> {
        net.validate()?;
        let mut tx = Transaction::default();
        self.skeleton(&mut tx);
        let chains = network_chains(net);
        for chain in &chains {
            tx.push("add", "chain", self.chain(INET, chain));
        }
        // add-then-delete: idempotent without nft ≥ 1.0.8's `destroy`.
        for verb in ["add", "delete"] {
            for (family, set, elems) in self.network_elements(net) {
                tx.push(verb, "element", self.element(family, set, elems));
            }
        }
        for chain in &chains {
            tx.push("delete", "chain", self.chain(INET, chain));
        }
        Ok(tx)
    }

    /// Publish ports: map elements only.
    pub fn add_ports(&self, ports: &[PortMapping]) -> Result<Transaction, FirewallError> {
        validate_ports(ports)?;
        let mut tx = Transaction::default();
        self.port_elements(&mut tx, "add", ports);
        Ok(tx)
    }

    /// Unpublish ports: map elements only; a port that is not published is no error.
    pub fn remove_ports(&self, ports: &[PortMapping]) -> Result<Transaction, FirewallError> {
        validate_ports(ports)?;
        let mut tx = Transaction::default();
        self.port_elements(&mut tx, "add", ports);
        self.port_elements(&mut tx, "delete", ports);
        Ok(tx)
    }

    /// Delete both tables; no error if they are already gone.
    pub fn delete_table(&self) -> Transaction {
        let mut tx = Transaction::default();
        self.drop_tables(&mut tx);
        tx
    }

    fn drop_tables(&self, tx: &mut Transaction) {
        for family in [INET, BRIDGE] {
            let table = json!({ "family": family, "name": self.table });
            tx.push("add", "table", table.clone());
            tx.push("delete", "table", table);
        }
    }

    /// Tables, maps, sets and base chains with their (network-independent) rules.
    fn skeleton(&self, tx: &mut Transaction) {
        tx.push(
            "add",
            "table",
            json!({ "family": INET, "name": self.table }),
        );
        for name in [FWD_FROM, FWD_TO, NAT_FROM, NAT_TO] {
            tx.push("add", "map", self.map(name, json!("ifname"), "verdict"));
        }
        for (addr_map, port_map, addr_type, _, by_host) in PUBLISH_MAPS {
            let key = if by_host {
                json!([addr_type, "inet_proto", "inet_service"])
            } else {
                json!(["inet_proto", "inet_service"])
            };
            tx.push("add", "map", self.map(addr_map, key.clone(), addr_type));
            tx.push("add", "map", self.map(port_map, key, "inet_service"));
        }
        let bases = [
            (UNTRACKED, "filter", PREROUTING, -300),
            (FORWARD, "filter", FORWARD, 0),
            (PREROUTING, "nat", PREROUTING, -100),
            (OUTPUT, "nat", OUTPUT, -100),
            (POSTROUTING, "nat", POSTROUTING, 100),
        ];
        for (name, kind, hook, prio) in bases {
            tx.push(
                "add",
                "chain",
                self.base_chain(INET, name, kind, hook, prio),
            );
        }
        tx.push("add", "chain", self.chain(INET, PUBLISHED));
        for (name, ..) in bases {
            tx.push("flush", "chain", self.chain(INET, name));
        }
        tx.push("flush", "chain", self.chain(INET, PUBLISHED));

        // With br_netfilter active, frames crossing an extension bridge (drivers::bridge::
        // extensions) pass the IP hooks there as well; tracked (and NATed) there, they would
        // be judged before the main bridge, where a flat network decides. Not tracked there,
        // their connection and NAT are decided once, on the main bridge.
        let on_extension = json!(format!("{EXTENSION_PREFIX}*"));
        self.rule(
            tx,
            INET,
            UNTRACKED,
            vec![
                matches("==", meta("iifname"), on_extension),
                json!({ "notrack": null }),
            ],
        );
        // Replies first, so only new connections are dispatched.
        self.rule(
            tx,
            INET,
            FORWARD,
            vec![ct_in("state", json!(["established", "related"])), accept()],
        );
        // Leaving a network: internal ones drop here.
        self.rule(tx, INET, FORWARD, vec![vmap(meta("iifname"), FWD_FROM)]);
        // Entering a network: only its own members and DNATed (published) traffic.
        self.rule(tx, INET, FORWARD, vec![vmap(meta("oifname"), FWD_TO)]);

        // Published ports, for packets from outside/containers and from the host itself.
        let local = json!({ "match": { "op": "==",
            "left": { "fib": { "result": "type", "flags": ["daddr"] } }, "right": "local" } });
        for chain in [PREROUTING, OUTPUT] {
            self.rule(tx, INET, chain, vec![local.clone(), jump(PUBLISHED)]);
        }
        for (addr_map, port_map, _, family, by_host) in PUBLISH_MAPS {
            let mut key = vec![meta("l4proto"), payload("th", "dport")];
            if by_host {
                key.insert(0, payload(family, "daddr"));
            }
            let key = json!({ "concat": key });
            let dnat = json!({ "dnat": {
                "family": family,
                "addr": { "map": { "key": key, "data": format!("@{addr_map}") } },
                "port": { "map": { "key": key, "data": format!("@{port_map}") } },
            } });
            self.rule(tx, INET, PUBLISHED, vec![dnat]);
        }

        self.rule(tx, INET, POSTROUTING, vec![vmap(meta("oifname"), NAT_TO)]);
        self.rule(tx, INET, POSTROUTING, vec![vmap(meta("iifname"), NAT_FROM)]);

        // Bridge family: frames switched port-to-port never reach the inet hooks (unless
        // br_netfilter is active, which Warren does not rely on), so icc=false is enforced
        // here. Keyed by subnet because `meta ibrname` needs CONFIG_NFT_BRIDGE_META, which
        // this kernel lacks; a port-to-port frame to or from an icc=false subnet is
        // container-to-container traffic by definition (host-bound and host-routed traffic
        // uses the input/output hooks, so the gateway and published ports keep working).
        tx.push(
            "add",
            "table",
            json!({ "family": BRIDGE, "name": self.table }),
        );
        for (set, ty) in [(ICC_OFF4, "ipv4_addr"), (ICC_OFF6, "ipv6_addr")] {
            tx.push(
                "add",
                "set",
                json!({ "family": BRIDGE, "table": self.table, "name": set,
                "type": ty, "flags": ["interval"] }),
            );
        }
        tx.push(
            "add",
            "chain",
            self.base_chain(BRIDGE, FORWARD, "filter", FORWARD, -200),
        );
        tx.push("flush", "chain", self.chain(BRIDGE, FORWARD));
        // A network's extension bridges hang off its main bridge by uplinks (see
        // drivers::bridge::extensions). A frame crossing an uplink is judged on the main bridge
        // instead: forwarded there port-to-port it meets the drops below; addressed to the
        // gateway it is routed, and routed traffic must pass an extension both ways. Every
        // path between two endpoints has a port-to-port step without an uplink: on one
        // extension (wv -> wv), between extensions (wz -> wz on the main bridge) and between
        // the main bridge and an extension (wv <-> wz on the main bridge), and the trunk does
        // not hairpin, so nothing reaches another endpoint through uplinks alone.
        for key in ["iifname", "oifname"] {
            let uplink = json!(format!("{UPLINK_PREFIX}*"));
            self.rule(
                tx,
                BRIDGE,
                FORWARD,
                vec![matches("==", meta(key), uplink), accept()],
            );
        }
        for (proto, set) in [("ip", ICC_OFF4), ("ip6", ICC_OFF6)] {
            for field in ["saddr", "daddr"] {
                let m = matches("==", payload(proto, field), json!(format!("@{set}")));
                self.rule(tx, BRIDGE, FORWARD, vec![m, json!({ "drop": null })]);
            }
        }
    }

    /// One network's chains (created empty, flushed, refilled) and its dispatch elements.
    fn network(&self, tx: &mut Transaction, net: &NetworkPolicy) {
        let chains = network_chains(net);
        for chain in &chains {
            tx.push("add", "chain", self.chain(INET, chain));
            tx.push("flush", "chain", self.chain(INET, chain));
        }
        let [from, to, nat_from, nat_to] = &chains;
        let br = json!(net.bridge);

        if net.internal {
            self.rule(
                tx,
                INET,
                from,
                vec![matches("!=", meta("oifname"), br.clone()), drop_packet()],
            );
        }

        self.rule(
            tx,
            INET,
            to,
            vec![matches("==", meta("iifname"), br.clone()), accept()],
        );
        if !net.internal {
            self.rule(tx, INET, to, vec![ct_in("status", json!("dnat")), accept()]);
        }
        self.rule(tx, INET, to, vec![drop_packet()]);

        if !net.internal {
            if net.masquerade {
                for subnet in &net.subnets {
                    let out = matches("!=", meta("oifname"), br.clone());
                    self.rule(
                        tx,
                        INET,
                        nat_from,
                        vec![saddr_in(subnet), out, masquerade()],
                    );
                }
            }
            // 127.0.0.1:<published> from the host: the container must see a routable source.
            if net.has_ipv4() {
                let lo = json!({ "prefix": { "addr": "127.0.0.0", "len": 8 } });
                let lo = matches("==", payload("ip", "saddr"), lo);
                self.rule(tx, INET, nat_to, vec![lo, masquerade()]);
            }
            // Hairpin: a member reaching a published port of its own network through a host
            // address must see the reply come back through the host, not directly.
            for subnet in &net.subnets {
                let dnat = ct_in("status", json!("dnat"));
                self.rule(tx, INET, nat_to, vec![saddr_in(subnet), dnat, masquerade()]);
            }
        }

        for (family, set, elems) in self.network_elements(net) {
            // With icc on, the subnet must not be in the icc_off sets (it may be, if the
            // network is rewritten from icc=false): add-then-delete removes it either way.
            let verbs: &[&str] = if family == BRIDGE && net.icc {
                &["add", "delete"]
            } else {
                &["add"]
            };
            for verb in verbs {
                tx.push(verb, "element", self.element(family, set, elems.clone()));
            }
        }
    }

    /// (family, set/map, elements) this network owns outside its chains.
    fn network_elements(
        &self,
        net: &NetworkPolicy,
    ) -> Vec<(&'static str, &'static str, Vec<Value>)> {
        let [from, to, nat_from, nat_to] = network_chains(net);
        let bind = |chain: &str| vec![json!([net.bridge, { "jump": { "target": chain } }])];
        let mut out = vec![
            (INET, FWD_FROM, bind(&from)),
            (INET, FWD_TO, bind(&to)),
            (INET, NAT_FROM, bind(&nat_from)),
            (INET, NAT_TO, bind(&nat_to)),
        ];
        // Present in the sets only if icc is off; the caller decides add or add+delete.
        for (set, v4) in [(ICC_OFF4, true), (ICC_OFF6, false)] {
            let elems: Vec<Value> = net
                .subnets
                .iter()
                .filter(|s| s.is_ipv4() == v4)
                .map(prefix)
                .collect();
            if !elems.is_empty() {
                out.push((BRIDGE, set, elems));
            }
        }
        out
    }

    /// One `verb element` command per DNAT map touched by `ports`.
    fn port_elements(&self, tx: &mut Transaction, verb: &str, ports: &[PortMapping]) {
        let mut by_map: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for p in ports {
            let proto = p.proto.as_str();
            let v4 = p.container_ip.is_ipv4();
            let (addr_map, port_map, key) = match (p.host_match(), v4) {
                (HostMatch::Any, true) => (
                    "pub4_any_addr",
                    "pub4_any_port",
                    json!([proto, p.host_port]),
                ),
                (HostMatch::Any, false) => (
                    "pub6_any_addr",
                    "pub6_any_port",
                    json!([proto, p.host_port]),
                ),
                (HostMatch::Addr(ip), true) => (
                    "pub4_addr",
                    "pub4_port",
                    json!([ip.to_string(), proto, p.host_port]),
                ),
                (HostMatch::Addr(ip), false) => (
                    "pub6_addr",
                    "pub6_port",
                    json!([ip.to_string(), proto, p.host_port]),
                ),
            };
            let key = json!({ "concat": key });
            by_map
                .entry(addr_map)
                .or_default()
                .push(json!([key, p.container_ip.to_string()]));
            by_map
                .entry(port_map)
                .or_default()
                .push(json!([key, p.container_port]));
        }
        for (map, elems) in by_map {
            tx.push(verb, "element", self.element(INET, map, elems));
        }
    }

    fn map(&self, name: &str, key: Value, value: &str) -> Value {
        json!({ "family": INET, "table": self.table, "name": name, "type": key, "map": value })
    }

    fn chain(&self, family: &str, name: &str) -> Value {
        json!({ "family": family, "table": self.table, "name": name })
    }

    fn base_chain(&self, family: &str, name: &str, kind: &str, hook: &str, prio: i32) -> Value {
        json!({ "family": family, "table": self.table, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept" })
    }

    fn element(&self, family: &str, set: &str, elems: Vec<Value>) -> Value {
        json!({ "family": family, "table": self.table, "name": set, "elem": elems })
    }

    fn rule(&self, tx: &mut Transaction, family: &str, chain: &str, expr: Vec<Value>) {
        tx.push(
            "add",
            "rule",
            json!({ "family": family, "table": self.table, "chain": chain, "expr": expr }),
        );
    }
}

/// Chain names of one network: [from, to, nat-from, nat-to].
fn network_chains(net: &NetworkPolicy) -> [String; 4] {
    ["from", "to", "nat-from", "nat-to"].map(|role| net.chain(role))
}

fn validate_networks(networks: &[NetworkPolicy]) -> Result<(), FirewallError> {
    let mut ids = HashSet::new();
    let mut bridges = HashSet::new();
    for n in networks {
        n.validate()?;
        if !ids.insert(&n.id) || !bridges.insert(&n.bridge) {
            return Err(FirewallError::DuplicateNetwork {
                id: n.id.clone(),
                bridge: n.bridge.clone(),
            });
        }
    }
    Ok(())
}

fn meta(key: &str) -> Value {
    json!({ "meta": { "key": key } })
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({ "payload": { "protocol": protocol, "field": field } })
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({ "match": { "op": op, "left": left, "right": right } })
}

fn ct_in(key: &str, right: Value) -> Value {
    matches("in", json!({ "ct": { "key": key } }), right)
}

fn prefix(net: &IpNetwork) -> Value {
    json!({ "prefix": { "addr": net.network().to_string(), "len": net.prefix() } })
}

fn saddr_in(net: &IpNetwork) -> Value {
    let proto = match net.ip() {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    };
    matches("==", payload(proto, "saddr"), prefix(net))
}

fn vmap(key: Value, map: &str) -> Value {
    json!({ "vmap": { "key": key, "data": format!("@{map}") } })
}

fn jump(chain: &str) -> Value {
    json!({ "jump": { "target": chain } })
}

fn accept() -> Value {
    json!({ "accept": null })
}

fn drop_packet() -> Value {
    json!({ "drop": null })
}

fn masquerade() -> Value {
    json!({ "masquerade": null })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};
    use crate::firewall::Proto;

    fn net(id: &str, bridge: &str, subnets: &[&str]) -> NetworkPolicy {
        NetworkPolicy {
            id: id.into(),
            bridge: bridge.into(),
            subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
            internal: false,
            icc: true,
            masquerade: true,
            host_binding_ipv4: None,
        }
    }

    fn ports(network_id: &str, n: u16) -> Vec<PortMapping> {
        (0..n)
            .map(|i| PortMapping {
                network_id: network_id.into(),
                proto: if i % 2 == 0 { Proto::Tcp } else { Proto::Udp },
                host_ip: None,
                host_port: 10000 + i,
                container_ip: format!("10.31.{}.{}", i / 250, 2 + i % 250)
                    .parse()
                    .unwrap(),
                container_port: 80,
            })
            .collect()
    }

    /// Rules of `chain` in `tx`, as their expression arrays.
    fn rules_of<'t>(tx: &'t Transaction, family: &str, chain: &str) -> Vec<&'t Value> {
        tx.commands()
            .iter()
            .filter_map(|c| c.pointer("/add/rule"))
            .filter(|r| r["family"] == family && r["chain"] == chain)
            .map(|r| &r["expr"])
            .collect()
    }

    fn elements<'t>(tx: &'t Transaction, verb: &str, set: &str) -> Vec<&'t Value> {
        tx.commands()
            .iter()
            .filter_map(|c| c.get(verb).and_then(|v| v.get("element")))
            .filter(|e| e["name"] == set)
            .flat_map(|e| e["elem"].as_array().unwrap())
            .collect()
    }

    #[test]
    fn replace_all_starts_by_dropping_only_own_tables() {
        let tx = RuleBuilder::new("wtest").replace_all(&[], &[]).unwrap();
        let first: Vec<_> = tx.commands()[..4].to_vec();
        assert_eq!(
            first,
            vec![
                json!({"add": {"table": {"family": "inet", "name": "wtest"}}}),
                json!({"delete": {"table": {"family": "inet", "name": "wtest"}}}),
                json!({"add": {"table": {"family": "bridge", "name": "wtest"}}}),
                json!({"delete": {"table": {"family": "bridge", "name": "wtest"}}}),
            ]
        );
        // Everything refers to our table only; no ruleset-wide flush.
        assert!(!tx.to_json().to_string().contains("\"ruleset\""));
        for c in tx.commands() {
            let (verb, obj) = c.as_object().unwrap().iter().next().unwrap();
            let (kind, body) = obj.as_object().unwrap().iter().next().unwrap();
            let table = if kind == "table" {
                &body["name"]
            } else {
                &body["table"]
            };
            assert_eq!(table, "wtest", "{verb} {kind}");
        }
    }

    #[test]
    fn base_chains_hooks_and_dispatch() {
        let tx = RuleBuilder::new("warren").replace_all(&[], &[]).unwrap();
        let chains: Vec<_> = tx
            .commands()
            .iter()
            .filter_map(|c| c.pointer("/add/chain"))
            .filter(|c| c.get("hook").is_some())
            .map(|c| {
                (
                    c["family"].as_str().unwrap(),
                    c["name"].as_str().unwrap(),
                    c["prio"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            chains,
            [
                ("inet", "untracked", -300),
                ("inet", "forward", 0),
                ("inet", "prerouting", -100),
                ("inet", "output", -100),
                ("inet", "postrouting", 100),
                ("bridge", "forward", -200)
            ]
        );
        let untracked = rules_of(&tx, INET, UNTRACKED);
        assert_eq!(untracked.len(), 1);
        assert_eq!(untracked[0][0]["match"]["right"], "wx*");
        assert_eq!(untracked[0][1], json!({"notrack": null}));
        let fwd = rules_of(&tx, INET, FORWARD);
        assert_eq!(fwd.len(), 3);
        assert_eq!(
            fwd[0][0]["match"]["right"],
            json!(["established", "related"])
        );
        assert_eq!(fwd[1][0]["vmap"]["data"], "@fwd_from");
        assert_eq!(fwd[2][0]["vmap"]["data"], "@fwd_to");
        let published = rules_of(&tx, INET, PUBLISHED);
        assert_eq!(published.len(), 4);
        assert_eq!(published[0][0]["dnat"]["addr"]["map"]["data"], "@pub4_addr");
        assert_eq!(published[0][0]["dnat"]["port"]["map"]["data"], "@pub4_port");
        assert_eq!(published[3][0]["dnat"]["family"], "ip6");
        // Uplinks of extension bridges pass first, then the icc=false drops.
        let bridged = rules_of(&tx, BRIDGE, FORWARD);
        assert_eq!(bridged.len(), 6);
        for (rule, key) in bridged.iter().zip(["iifname", "oifname"]) {
            assert_eq!(rule[0]["match"]["left"]["meta"]["key"], key);
            assert_eq!(rule[0]["match"]["right"], "wy*");
            assert_eq!(rule[1], json!({"accept": null}));
        }
        assert!(bridged[2..].iter().all(|r| r[1] == json!({"drop": null})));
        // A vmap must be declared as such.
        let fwd_map = tx
            .commands()
            .iter()
            .filter_map(|c| c.pointer("/add/map"))
            .find(|m| m["name"] == FWD_TO)
            .unwrap();
        assert_eq!(
            (&fwd_map["type"], &fwd_map["map"]),
            (&json!("ifname"), &json!("verdict"))
        );
    }

    #[test]
    fn network_chains_and_elements() {
        let n = net("0123456789ab", "br-t1", &["10.31.0.0/24", "fd31::/64"]);
        let tx = RuleBuilder::new("warren").add_network(&n).unwrap();
        let to = rules_of(&tx, INET, "nw-0123456789ab-to");
        assert_eq!(to.len(), 3);
        assert_eq!(to[0][0]["match"]["right"], "br-t1");
        assert_eq!(to[1][0]["match"]["right"], "dnat");
        assert_eq!(to[2][0], json!({"drop": null}));
        assert!(rules_of(&tx, INET, "nw-0123456789ab-from").is_empty());
        let nat_from = rules_of(&tx, INET, "nw-0123456789ab-nat-from");
        assert_eq!(nat_from.len(), 2, "one masquerade per subnet");
        assert_eq!(
            nat_from[1][0]["match"]["left"]["payload"]["protocol"],
            "ip6"
        );
        assert_eq!(rules_of(&tx, INET, "nw-0123456789ab-nat-to").len(), 3);
        assert_eq!(
            elements(&tx, "add", FWD_TO),
            [&json!(["br-t1", {"jump": {"target": "nw-0123456789ab-to"}}])]
        );
        // icc on: the subnet is taken out of the icc_off set (add+delete = ensure absent).
        assert_eq!(
            elements(&tx, "add", ICC_OFF4),
            elements(&tx, "delete", ICC_OFF4)
        );
        assert_eq!(elements(&tx, "delete", ICC_OFF4).len(), 1);
        assert_eq!(elements(&tx, "delete", ICC_OFF6).len(), 1);
    }

    #[test]
    fn internal_and_icc_off() {
        let mut n = net("aa", "br-in", &["10.40.0.5/24"]);
        n.internal = true;
        n.icc = false;
        let tx = RuleBuilder::new("warren").add_network(&n).unwrap();
        let from = rules_of(&tx, INET, "nw-aa-from");
        assert_eq!(from.len(), 1);
        assert_eq!(from[0][0]["match"]["op"], "!=");
        assert_eq!(from[0][1], json!({"drop": null}));
        assert_eq!(
            rules_of(&tx, INET, "nw-aa-to").len(),
            2,
            "no published-port accept"
        );
        assert!(rules_of(&tx, INET, "nw-aa-nat-from").is_empty());
        assert!(rules_of(&tx, INET, "nw-aa-nat-to").is_empty());
        // The host bits of the subnet are dropped.
        assert_eq!(
            elements(&tx, "add", ICC_OFF4),
            [&json!({"prefix": {"addr": "10.40.0.0", "len": 24}})]
        );
        assert!(elements(&tx, "delete", ICC_OFF4).is_empty());
    }

    #[test]
    fn masquerade_off_keeps_hairpin() {
        let mut n = net("bb", "br-b", &["10.50.0.0/24"]);
        n.masquerade = false;
        let tx = RuleBuilder::new("warren").add_network(&n).unwrap();
        assert!(rules_of(&tx, INET, "nw-bb-nat-from").is_empty());
        assert_eq!(rules_of(&tx, INET, "nw-bb-nat-to").len(), 2);
    }

    #[test]
    fn remove_network_is_idempotent_shape() {
        let n = net("cc", "br-c", &["10.60.0.0/24"]);
        let tx = RuleBuilder::new("warren").remove_network(&n).unwrap();
        // Each element is added before it is deleted, and chains go last.
        let adds = elements(&tx, "add", FWD_FROM);
        let dels = elements(&tx, "delete", FWD_FROM);
        assert_eq!(adds, dels);
        let last = tx.commands().last().unwrap();
        assert!(last.pointer("/delete/chain").is_some());
        assert!(rules_of(&tx, INET, "nw-cc-to").is_empty());
    }

    #[test]
    fn ports_are_elements_only() {
        let p = ports("0123456789ab", 3);
        let tx = RuleBuilder::new("warren").add_ports(&p).unwrap();
        assert_eq!(tx.added_rules(), 0);
        assert!(tx
            .commands()
            .iter()
            .all(|c| c.pointer("/add/element").is_some()));
        assert_eq!(
            elements(&tx, "add", "pub4_any_addr")[1],
            &json!([{"concat": ["udp", 10001]}, "10.31.0.3"])
        );
        assert_eq!(
            elements(&tx, "add", "pub4_any_port")[1],
            &json!([{"concat": ["udp", 10001]}, 80])
        );
        let specific = PortMapping {
            host_ip: Some("192.0.2.1".parse().unwrap()),
            container_ip: "fd00::2".parse().unwrap(),
            ..p[0].clone()
        };
        assert_eq!(
            RuleBuilder::new("warren")
                .add_ports(std::slice::from_ref(&specific))
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );
        let v6 = PortMapping {
            host_ip: Some("2001:db8::1".parse().unwrap()),
            ..specific
        };
        let tx = RuleBuilder::new("warren").add_ports(&[v6]).unwrap();
        assert_eq!(
            elements(&tx, "add", "pub6_addr"),
            [&json!([{"concat": ["2001:db8::1", "tcp", 10000]}, "fd00::2"])]
        );
        let tx = RuleBuilder::new("warren").remove_ports(&p).unwrap();
        assert_eq!(
            elements(&tx, "add", "pub4_any_port"),
            elements(&tx, "delete", "pub4_any_port")
        );
    }

    #[test]
    fn rule_count_independent_of_port_count() {
        let nets = [net("0123456789ab", "br-t1", &["10.31.0.0/16"])];
        let b = RuleBuilder::new("warren");
        let few = b.replace_all(&nets, &ports("0123456789ab", 10)).unwrap();
        let many = b.replace_all(&nets, &ports("0123456789ab", 1000)).unwrap();
        assert_eq!(few.added_rules(), many.added_rules());
        assert_eq!(elements(&many, "add", "pub4_any_addr").len(), 1000);
        // Rules do grow per network.
        let two = [
            nets[0].clone(),
            net("0123456789cd", "br-t2", &["10.32.0.0/24"]),
        ];
        assert!(b.replace_all(&two, &[]).unwrap().added_rules() > few.added_rules());
    }

    #[test]
    fn replace_all_validates_ports_against_networks() {
        let mut n = net("0123456789ab", "br-t1", &["10.31.0.0/16"]);
        let b = RuleBuilder::new("warren");
        let err = b
            .replace_all(&[n.clone()], &ports("ffffffffffff", 1))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        n.internal = true;
        let err = b
            .replace_all(&[n.clone()], &ports("0123456789ab", 1))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        let mut dup = n.clone();
        dup.id = "0123456789cd".into();
        let err = b.replace_all(&[n, dup], &[]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }
}
