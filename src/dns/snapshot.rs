//! The immutable name table every query is answered from.
//!
//! A [`Snapshot`] is built from plain descriptions of networks and endpoints (the agent turns
//! its store records into these, so this module knows nothing about the store) and is never
//! changed afterwards: a connect or disconnect builds a new one and swaps it in atomically, so
//! readers never lock and never see half an update.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// A network as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEntry {
    pub id: String,
    pub name: String,
    /// Internal networks never forward to upstream resolvers.
    pub internal: bool,
    /// Whether its endpoints get name resolution (false for the default `bridge`, as in Docker).
    pub resolves: bool,
    pub subnets: Vec<IpNetwork>,
}

/// One endpoint as DNS sees it: the names it answers to on its network and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    pub network_id: String,
    /// Identity of the namespace the endpoint lives in (the client key of the listener there).
    pub netns_id: String,
    /// The primary name (container or `netns:NAME` target), used for PTR answers too.
    pub name: Option<String>,
    /// Further names: aliases, short ids.
    pub aliases: Vec<String>,
    pub addresses: Vec<IpAddr>,
}

/// Index of a network inside one snapshot.
type NetIdx = usize;

/// The names of one resolving network. `names` is a persistent map: cloning it (for the next
/// snapshot) is O(1) and a change copies only the path to the changed entry, so an update
/// costs the same with 10 endpoints or 10 000.
#[derive(Debug, Clone, Default)]
struct NetworkNames {
    /// Lower-case network name: the suffix of qualified names (`web.mynet`).
    name: String,
    /// Lower-case name → every address answering to it on this network.
    names: im::HashMap<String, Vec<IpAddr>>,
}

/// What the snapshot knows of a network (resolving or not).
#[derive(Debug, Clone, Copy)]
struct NetworkMeta {
    /// Its names table, for networks with name resolution.
    names: Option<NetIdx>,
    internal: bool,
}

/// One endpoint of a client namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attachment {
    network: String,
    /// The network's names table, when it resolves names.
    names: Option<NetIdx>,
    internal: bool,
}

/// What one client namespace may see: its attachments, one per endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientScope {
    attachments: Vec<Attachment>,
}

impl ClientScope {
    /// The name tables this client may read.
    fn networks(&self) -> impl Iterator<Item = NetIdx> + '_ {
        self.attachments.iter().filter_map(|a| a.names)
    }

    /// Forward names we do not serve: the namespace has at least one non-internal attachment
    /// (default bridge included), so it could ask an outside resolver directly anyway.
    pub fn forward(&self) -> bool {
        self.attachments.iter().any(|a| !a.internal)
    }

    fn resolves(&self) -> bool {
        self.networks().next().is_some()
    }
}

/// The name table at one instant. Cloning is cheap (persistent maps, a few networks), so an
/// update is "clone, change one endpoint, swap".
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    networks: Vec<NetworkNames>,
    by_id: HashMap<String, NetworkMeta>,
    clients: im::HashMap<String, ClientScope>,
    /// Address → (network, fully qualified `name.network.` for PTR answers).
    reverse: im::HashMap<IpAddr, Vec<(NetIdx, String)>>,
    /// Subnets of every network on this host: their reverse names are answered here, never
    /// asked upstream (RFC 6303's spirit: private addresses do not leak out).
    all_subnets: Vec<IpNetwork>,
}

/// Result of looking a name up for a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The name is served here; its addresses (possibly none of the asked family).
    Found(Vec<IpAddr>),
    /// The name is in a domain served here (a network's name) but does not exist.
    NoSuchName,
    /// Not ours: forward if the client may, otherwise refuse.
    NotLocal,
}

/// A DNS name as a lower-case string without the trailing dot, or None when it cannot be a
/// name we serve (a label holding a dot or a non-printable byte).
pub fn name_key(labels: impl Iterator<Item = impl AsRef<[u8]>>) -> Option<String> {
    let mut key = String::with_capacity(32);
    for label in labels {
        let label = label.as_ref();
        if label.is_empty() || label.iter().any(|b| *b == b'.' || !b.is_ascii_graphic()) {
            return None;
        }
        if !key.is_empty() {
            key.push('.');
        }
        key.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    Some(key)
}

/// The keys an endpoint answers to: its name and aliases, lower-case, without a final dot.
fn endpoint_keys(ep: &EndpointEntry) -> impl Iterator<Item = String> + '_ {
    ep.name
        .iter()
        .chain(&ep.aliases)
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .filter(|k| !k.is_empty())
}

impl Snapshot {
    /// Build the table. Endpoints on unknown or non-resolving networks are ignored; names are
    /// matched case-insensitively.
    pub fn build(networks: &[NetworkEntry], endpoints: &[EndpointEntry]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for net in networks {
            snapshot.add_network(net);
        }
        for ep in endpoints {
            snapshot.add_endpoint(ep);
        }
        snapshot
    }

    /// Make `net` known (a no-op when it already is).
    pub fn add_network(&mut self, net: &NetworkEntry) {
        if self.by_id.contains_key(&net.id) {
            return;
        }
        let names = net.resolves.then(|| {
            self.networks.push(NetworkNames {
                name: net.name.to_ascii_lowercase(),
                names: im::HashMap::new(),
            });
            self.networks.len() - 1
        });
        let meta = NetworkMeta {
            names,
            internal: net.internal,
        };
        self.by_id.insert(net.id.clone(), meta);
        self.all_subnets.extend(net.subnets.iter().copied());
    }

    /// Add one endpoint's names, addresses and client scope. Endpoints of networks the
    /// snapshot does not know are ignored.
    pub fn add_endpoint(&mut self, ep: &EndpointEntry) {
        let Some(&meta) = self.by_id.get(&ep.network_id) else {
            return;
        };
        // Idempotent: a namespace has one endpoint per network, and adding it again (a
        // container's names come back each time it starts) changes nothing.
        let attachments = &mut self
            .clients
            .entry(ep.netns_id.clone())
            .or_default()
            .attachments;
        if !attachments.iter().any(|a| a.network == ep.network_id) {
            attachments.push(Attachment {
                network: ep.network_id.clone(),
                names: meta.names,
                internal: meta.internal,
            });
        }
        let Some(idx) = meta.names else { return };
        let net = &mut self.networks[idx];
        for key in endpoint_keys(ep) {
            let addrs = net.names.entry(key).or_default();
            for a in &ep.addresses {
                if !addrs.contains(a) {
                    addrs.push(*a);
                }
            }
        }
        if let Some(fqdn) = Self::ptr_name(ep, &net.name) {
            for a in &ep.addresses {
                let names = self.reverse.entry(*a).or_default();
                if !names.contains(&(idx, fqdn.clone())) {
                    names.push((idx, fqdn.clone()));
                }
            }
        }
    }

    /// Undo [`Snapshot::add_endpoint`] for the same entry.
    pub fn remove_endpoint(&mut self, ep: &EndpointEntry) {
        let Some(&meta) = self.by_id.get(&ep.network_id) else {
            return;
        };
        if let Some(scope) = self.clients.get_mut(&ep.netns_id) {
            if let Some(i) = scope
                .attachments
                .iter()
                .position(|a| a.network == ep.network_id)
            {
                scope.attachments.remove(i);
            }
            if scope.attachments.is_empty() {
                self.clients.remove(&ep.netns_id);
            }
        }
        let Some(idx) = meta.names else { return };
        let net = &mut self.networks[idx];
        // Addresses are unique within a network: these belong to this endpoint alone.
        for key in endpoint_keys(ep) {
            if let Some(addrs) = net.names.get_mut(&key) {
                addrs.retain(|a| !ep.addresses.contains(a));
                if addrs.is_empty() {
                    net.names.remove(&key);
                }
            }
        }
        if let Some(fqdn) = Self::ptr_name(ep, &net.name) {
            for a in &ep.addresses {
                if let Some(names) = self.reverse.get_mut(a) {
                    names.retain(|(i, n)| !(*i == idx && *n == fqdn));
                    if names.is_empty() {
                        self.reverse.remove(a);
                    }
                }
            }
        }
    }

    /// The name a PTR answer gives for an endpoint's addresses: `name.network.`.
    fn ptr_name(ep: &EndpointEntry, network: &str) -> Option<String> {
        let name = ep.name.as_ref().or(ep.aliases.first())?;
        Some(format!("{}.{network}.", name.to_ascii_lowercase()))
    }

    /// The scope of a client namespace; None when it has no network with name resolution.
    pub fn client(&self, netns_id: &str) -> Option<&ClientScope> {
        self.clients.get(netns_id).filter(|s| s.resolves())
    }

    /// Namespaces that need a listener.
    pub fn clients(&self) -> impl Iterator<Item = &str> {
        self.clients
            .iter()
            .filter(|(_, s)| s.resolves())
            .map(|(k, _)| k.as_str())
    }

    /// Look `key` (see [`name_key`]) up for a client: first as a name on any of its networks,
    /// then as `name.network` on the named one.
    pub fn lookup(&self, scope: &ClientScope, key: &str) -> Lookup {
        let mut found: Option<Vec<IpAddr>> = None;
        for idx in scope.networks() {
            if let Some(addrs) = self.networks[idx].names.get(key) {
                let all = found.get_or_insert_with(Vec::new);
                for a in addrs {
                    if !all.contains(a) {
                        all.push(*a);
                    }
                }
            }
        }
        if let Some(found) = found {
            return Lookup::Found(found);
        }
        let mut in_our_domain = false;
        for idx in scope.networks() {
            let net = &self.networks[idx];
            if key == net.name {
                in_our_domain = true;
                continue;
            }
            let Some(host) = key
                .strip_suffix(net.name.as_str())
                .and_then(|h| h.strip_suffix('.'))
            else {
                continue;
            };
            in_our_domain = true;
            if let Some(addrs) = net.names.get(host) {
                return Lookup::Found(addrs.clone());
            }
        }
        // Single-label names are container names by nature: never sent upstream, where they
        // would leak and cannot exist anyway.
        if in_our_domain || !key.contains('.') {
            Lookup::NoSuchName
        } else {
            Lookup::NotLocal
        }
    }

    /// PTR lookup of an address for a client: its names on the client's networks, and
    /// whether the address lies in a subnet of any network here (then it is ours to deny,
    /// never to forward).
    pub fn reverse(&self, scope: &ClientScope, ip: IpAddr) -> (Vec<&str>, bool) {
        let names = self
            .reverse
            .get(&ip)
            .map(|v| {
                v.iter()
                    .filter(|(idx, _)| scope.networks().any(|n| n == *idx))
                    .map(|(_, n)| n.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let ours = self.all_subnets.iter().any(|s| s.contains(ip));
        (names, ours)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn net(id: &str, name: &str, internal: bool, subnet: &str) -> NetworkEntry {
        NetworkEntry {
            id: id.into(),
            name: name.into(),
            internal,
            resolves: true,
            subnets: vec![subnet.parse().unwrap()],
        }
    }

    pub(crate) fn ep(
        net: &str,
        ns: &str,
        name: &str,
        aliases: &[&str],
        ips: &[&str],
    ) -> EndpointEntry {
        EndpointEntry {
            network_id: net.into(),
            netns_id: ns.into(),
            name: (!name.is_empty()).then(|| name.to_string()),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            addresses: ips.iter().map(|i| i.parse().unwrap()).collect(),
        }
    }

    /// Two networks: `front` (web, api x3 as alias `api`) and `back` (db, internal);
    /// `api1` is on both; `lone` is only on the default bridge.
    pub(crate) fn sample() -> Snapshot {
        let mut bridge = net("n0", "bridge", false, "172.17.0.0/16");
        bridge.resolves = false;
        Snapshot::build(
            &[
                bridge,
                net("n1", "front", false, "10.1.0.0/24"),
                net("n2", "back", true, "10.2.0.0/24"),
            ],
            &[
                ep("n1", "ns-web", "web", &["www"], &["10.1.0.2", "fd00::2"]),
                ep("n1", "ns-api1", "api1", &["api"], &["10.1.0.3"]),
                ep("n1", "ns-api2", "api2", &["api"], &["10.1.0.4"]),
                ep("n1", "ns-api3", "api3", &["API"], &["10.1.0.5"]),
                ep("n2", "ns-api1", "api1", &[], &["10.2.0.3"]),
                ep("n2", "ns-db", "db", &[], &["10.2.0.2"]),
                ep("n0", "ns-lone", "lone", &[], &["172.17.0.2"]),
            ],
        )
    }

    fn ips(l: Lookup) -> Vec<String> {
        match l {
            Lookup::Found(v) => {
                let mut v: Vec<String> = v.iter().map(|a| a.to_string()).collect();
                v.sort();
                v
            }
            other => panic!("expected addresses, got {other:?}"),
        }
    }

    #[test]
    fn names_aliases_and_replicas() {
        let s = sample();
        let web = s.client("ns-web").unwrap();
        assert_eq!(ips(s.lookup(web, "web")), ["10.1.0.2", "fd00::2"]);
        assert_eq!(ips(s.lookup(web, "www")), ["10.1.0.2", "fd00::2"]);
        assert_eq!(
            ips(s.lookup(web, "api")),
            ["10.1.0.3", "10.1.0.4", "10.1.0.5"]
        );
        assert_eq!(
            ips(s.lookup(web, "api.front")),
            ["10.1.0.3", "10.1.0.4", "10.1.0.5"]
        );
    }

    #[test]
    fn scope_is_the_clients_networks() {
        let s = sample();
        let web = s.client("ns-web").unwrap();
        assert_eq!(s.lookup(web, "db"), Lookup::NoSuchName);
        assert_eq!(s.lookup(web, "db.back"), Lookup::NotLocal);
        assert_eq!(s.lookup(web, "nope.front"), Lookup::NoSuchName);
        assert_eq!(s.lookup(web, "example.com"), Lookup::NotLocal);
        // api1 is on both networks: it sees db and both of its own addresses.
        let api1 = s.client("ns-api1").unwrap();
        assert_eq!(ips(s.lookup(api1, "db")), ["10.2.0.2"]);
        assert_eq!(ips(s.lookup(api1, "api1")), ["10.1.0.3", "10.2.0.3"]);
        assert_eq!(ips(s.lookup(api1, "api1.back")), ["10.2.0.3"]);
    }

    #[test]
    fn default_bridge_and_forwarding_policy() {
        let s = sample();
        assert!(
            s.client("ns-lone").is_none(),
            "default bridge has no resolver"
        );
        assert!(s.client("ns-web").unwrap().forward());
        assert!(
            !s.client("ns-db").unwrap().forward(),
            "internal only never forwards"
        );
        assert!(
            s.client("ns-api1").unwrap().forward(),
            "mixed: has a way out"
        );
        let mut clients: Vec<&str> = s.clients().collect();
        clients.sort();
        assert_eq!(
            clients,
            ["ns-api1", "ns-api2", "ns-api3", "ns-db", "ns-web"]
        );
    }

    #[test]
    fn reverse_is_scoped() {
        let s = sample();
        let web = s.client("ns-web").unwrap();
        let (names, ours) = s.reverse(web, "10.1.0.2".parse().unwrap());
        assert_eq!(names, ["web.front."]);
        assert!(ours);
        let (names, ours) = s.reverse(web, "10.2.0.2".parse().unwrap());
        assert!(
            names.is_empty() && ours,
            "another network's address: denied, not forwarded"
        );
        let (names, ours) = s.reverse(web, "192.0.2.1".parse().unwrap());
        assert!(names.is_empty() && !ours);
        let (names, ours) = s.reverse(web, "10.1.0.99".parse().unwrap());
        assert!(names.is_empty() && ours);
    }

    /// Everything a snapshot answers, in a canonical order (address order inside an answer is
    /// shuffled on the wire anyway).
    fn canonical(s: &Snapshot) -> String {
        let mut lines = Vec::new();
        for (idx, net) in s.networks.iter().enumerate() {
            for (name, addrs) in &net.names {
                let mut addrs = addrs.clone();
                addrs.sort();
                lines.push(format!("name {idx} {} {name} {addrs:?}", net.name));
            }
        }
        for (ns, scope) in &s.clients {
            let mut attachments: Vec<String> =
                scope.attachments.iter().map(|a| format!("{a:?}")).collect();
            attachments.sort();
            lines.push(format!("client {ns} {attachments:?}"));
        }
        for (ip, names) in &s.reverse {
            let mut names = names.clone();
            names.sort();
            lines.push(format!("ptr {ip} {names:?}"));
        }
        lines.sort();
        lines.join("\n")
    }

    /// Adding and removing endpoints one at a time, in any order, gives exactly the table a
    /// full build of the endpoints present gives.
    #[test]
    fn incremental_updates_match_a_full_build() {
        let mut bridge = net("n0", "bridge", false, "172.17.0.0/16");
        bridge.resolves = false;
        let networks = [
            bridge,
            net("n1", "front", false, "10.1.0.0/24"),
            net("n2", "back", true, "10.2.0.0/24"),
        ];
        let mut pool = Vec::new();
        for i in 0..24u8 {
            let (network, prefix) =
                [("n0", "172.17.0"), ("n1", "10.1.0"), ("n2", "10.2.0")][usize::from(i % 3)];
            let ns = format!("ns{}", i % 8);
            let name = format!("c{}", i % 8);
            let alias = ["api", "db", "API.", ""][usize::from(i % 4)];
            let ip = format!("{prefix}.{}", 10 + i);
            let ip6 = format!("fd00::{i}");
            let ips: Vec<&str> = if i % 5 == 0 {
                vec![&ip, &ip6]
            } else {
                vec![&ip]
            };
            let aliases: Vec<&str> = if alias.is_empty() {
                vec![]
            } else {
                vec![alias]
            };
            pool.push(ep(network, &ns, &name, &aliases, &ips));
        }
        let mut present = vec![false; pool.len()];
        let mut snapshot = Snapshot::build(&networks, &[]);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..2000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let i = usize::try_from(seed >> 33).unwrap() % pool.len();
            // One endpoint per network and namespace, as the agent guarantees.
            let clash = pool.iter().enumerate().any(|(j, other)| {
                j != i
                    && present[j]
                    && other.netns_id == pool[i].netns_id
                    && other.network_id == pool[i].network_id
            });
            if present[i] && step % 4 == 0 {
                // Adding a present endpoint again (its container starts again) changes nothing.
                snapshot.add_endpoint(&pool[i]);
            } else if present[i] {
                snapshot.remove_endpoint(&pool[i]);
                present[i] = false;
            } else if !clash {
                snapshot.add_endpoint(&pool[i]);
                present[i] = true;
            } else {
                continue;
            }
            let now: Vec<EndpointEntry> = pool
                .iter()
                .zip(&present)
                .filter(|(_, p)| **p)
                .map(|(e, _)| e.clone())
                .collect();
            let full = Snapshot::build(&networks, &now);
            assert_eq!(canonical(&snapshot), canonical(&full), "step {step}");
        }
    }

    #[test]
    fn name_keys_are_lowercase_and_refuse_odd_labels() {
        let k = name_key(["WeB", "Front"].iter());
        assert_eq!(k.as_deref(), Some("web.front"));
        assert_eq!(name_key(["a.b"].iter()), None);
        assert_eq!(name_key([&b"a\0"[..]].iter()), None);
    }
}
