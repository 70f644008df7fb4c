//! The agent's side of embedded DNS: turn the store's records into DNS entries and publish
//! them. A connect or disconnect is one endpoint in or out ([`Agent::dns_endpoint_added`],
//! [`Agent::dns_endpoint_removed`]: constant cost, the agent's hot path); start-up and
//! network removal rebuild everything ([`Agent::refresh_dns`]). Kept apart from the network
//! orchestration, which only calls these.
//!
//! As in Docker, a container's names resolve only while it runs: they appear when it starts
//! and go when it stops, although its endpoints and addresses stay until it is removed. A
//! plain namespace's names resolve while it is connected.

use std::collections::HashSet;

use super::records::{EndpointRecord, NetworkRecord, ALL_ENDPOINTS_PREFIX};
use super::Agent;
use crate::dns::{ClientNamespace, EndpointEntry, NetworkEntry};
use crate::store::{Scope, StoreExt};

/// Length of the short ids Docker resolves (`docker ps` shows the same 12 digits).
const SHORT_ID: usize = 12;

impl Agent {
    /// Rebuild the DNS table from the records and open/close namespace listeners to match.
    /// DNS trouble never fails the network operation that triggered it: it is logged, and
    /// the next refresh tries again.
    pub(super) async fn refresh_dns(&self) {
        let records = self.networks().and_then(|networks| {
            let endpoints = self
                .store
                .list_values::<EndpointRecord>(Scope::Local, ALL_ENDPOINTS_PREFIX)?;
            Ok((networks, endpoints))
        });
        let (networks, endpoints) = match records {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "dns: cannot read records; names not updated");
                return;
            }
        };
        let endpoints: Vec<EndpointRecord> = endpoints
            .into_iter()
            .filter(|ep| self.serves_names(ep))
            .collect();
        let (networks, endpoints, namespaces) = dns_entries(&networks, &endpoints);
        for e in self.dns.update(&networks, &endpoints, &namespaces).await {
            tracing::warn!(error = %crate::error::chain(&e), "dns: listener not opened");
        }
    }

    /// Publish the names of an endpoint just attached (failures are logged, as above).
    pub(super) async fn dns_endpoint_added(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) {
        let added = self
            .dns
            .add_endpoint(
                &network_entry(network),
                &endpoint_entry(endpoint),
                &client_namespace(endpoint),
            )
            .await;
        if let Err(e) = added {
            tracing::warn!(error = %crate::error::chain(&e), "dns: listener not opened");
        }
    }

    /// Withdraw the names of an endpoint being detached; closes the namespace's listener
    /// when nothing there resolves names any more.
    pub(super) async fn dns_endpoint_removed(&self, endpoint: &EndpointRecord) {
        self.dns.remove_endpoint(&endpoint_entry(endpoint)).await;
    }

    /// Whether an endpoint's names are served now: a plain namespace's always, a container's
    /// only while it runs.
    pub(super) fn serves_names(&self, endpoint: &EndpointRecord) -> bool {
        match &endpoint.target.container_id {
            None => true,
            Some(id) => self.bundle(id).running().is_some(),
        }
    }

    /// A container is about to run: its names appear before its process does, so that its
    /// first lookup (and its peers') already finds them.
    pub(super) async fn dns_container_starting(&self, container_id: &str) {
        let _gate = self.runtime.dns_gate.lock().await;
        match self.container_endpoints(container_id) {
            Ok(endpoints) => {
                for (network, endpoint) in endpoints {
                    self.dns_endpoint_added(&network, &endpoint).await;
                }
            }
            Err(e) => {
                tracing::warn!(container = %container_id, error = %e, "dns: cannot read endpoints; names not published")
            }
        }
    }

    /// A container's run ended: its names go, unless its next run is already starting (a
    /// restart can race with the previous run's exit being recorded) or has started.
    pub(super) async fn dns_container_exited(&self, container_id: &str) {
        let _gate = self.runtime.dns_gate.lock().await;
        if self.is_busy(container_id) || self.bundle(container_id).running().is_some() {
            return;
        }
        self.withdraw_container_names(container_id).await;
    }

    /// The start that published a container's names failed: they go.
    pub(super) async fn dns_container_start_failed(&self, container_id: &str) {
        let _gate = self.runtime.dns_gate.lock().await;
        self.withdraw_container_names(container_id).await;
    }

    async fn withdraw_container_names(&self, container_id: &str) {
        match self.container_endpoints(container_id) {
            Ok(endpoints) => {
                for (_, endpoint) in endpoints {
                    self.dns_endpoint_removed(&endpoint).await;
                }
            }
            Err(e) => {
                tracing::warn!(container = %container_id, error = %e, "dns: cannot read endpoints; names not withdrawn")
            }
        }
    }
}

fn network_entry(n: &NetworkRecord) -> NetworkEntry {
    NetworkEntry {
        id: n.id.clone(),
        name: n.name.clone(),
        internal: n.internal,
        // The default bridge has no name resolution, as in Docker.
        resolves: !n.builtin,
        subnets: n.subnets.iter().map(|s| s.subnet).collect(),
    }
}

fn endpoint_entry(ep: &EndpointRecord) -> EndpointEntry {
    let mut aliases = ep.aliases.clone();
    aliases.push(ep.id[..ep.id.len().min(SHORT_ID)].to_string());
    if let Some(cid) = &ep.target.container_id {
        aliases.push(cid[..cid.len().min(SHORT_ID)].to_string());
    }
    EndpointEntry {
        network_id: ep.network_id.clone(),
        netns_id: ep.target.netns_id.clone(),
        name: dns_name(&ep.target.name),
        aliases,
        addresses: ep.addresses.iter().map(|a| a.ip()).collect(),
    }
}

fn client_namespace(ep: &EndpointRecord) -> ClientNamespace {
    ClientNamespace {
        netns_id: ep.target.netns_id.clone(),
        path: ep.target.netns.clone(),
    }
}

/// The DNS view of the records.
pub(super) fn dns_entries(
    networks: &[NetworkRecord],
    endpoints: &[EndpointRecord],
) -> (Vec<NetworkEntry>, Vec<EndpointEntry>, Vec<ClientNamespace>) {
    let mut seen = HashSet::new();
    let namespaces = endpoints
        .iter()
        .filter(|ep| seen.insert(ep.target.netns_id.as_str()))
        .map(client_namespace)
        .collect();
    (
        networks.iter().map(network_entry).collect(),
        endpoints.iter().map(endpoint_entry).collect(),
        namespaces,
    )
}

/// The DNS name of a target: `netns:lab1` is `lab1`, a container is its name (Docker shows
/// it with a leading slash), a bare namespace path has none (its aliases still resolve).
fn dns_name(target: &str) -> Option<String> {
    let name = match target.strip_prefix("netns:") {
        Some(ns) => ns,
        None if target.starts_with('/') && target.len() > 1 && target[1..].contains('/') => {
            return None
        }
        None => target.trim_start_matches('/'),
    };
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names() {
        assert_eq!(dns_name("netns:lab1").as_deref(), Some("lab1"));
        assert_eq!(dns_name("/web").as_deref(), Some("web"));
        assert_eq!(dns_name("web").as_deref(), Some("web"));
        assert_eq!(dns_name("/run/netns/x"), None);
        assert_eq!(dns_name("netns:"), None);
    }
}
