//! Start-up reconciliation: the store holds intent, the kernel is observed.
//!
//! On start (after a clean stop, a crash or `nft flush ruleset` by someone else) the agent
//! re-creates what its records describe and is missing, forgets endpoints whose namespace is
//! gone, replaces its nftables table in one transaction (no gap in which established
//! connections could be dropped), and removes host links with Warren's prefixes that no
//! record explains. It never touches objects it does not own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use super::records::*;
use super::{random_id, Agent};
use crate::drivers::bridge::{
    extension_owner, parse_extension_link, DEFAULT_BRIDGE, OPT_BRIDGE_NAME, OPT_HOST_BINDING,
    OPT_ICC, OPT_MASQUERADE, OPT_MTU,
};
use crate::drivers::macvlan::HIDDEN_PARENT_PREFIX;
use crate::drivers::NetworkSettings;
use crate::error::{Error, ErrorKind};
use crate::ipam::{self, NetworkRequest};
use crate::netlink::Netlink;
use crate::store::{commit_with_retry, Scope};

/// Name of the default network, as in Docker.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Prefix of the host ends of Warren's veths (see `bridge::host_veth_name`).
const VETH_PREFIX: &str = "wv";

impl Agent {
    /// Bring the kernel in line with the records. Called once, before the API is served.
    pub async fn reconcile(self: &Arc<Self>) -> Result<(), Error> {
        self.reconcile_networks().await?;
        // The default device rules every container start relies on (see runtime::cgroups).
        crate::runtime::cgroups::prepare()?;
        // Containers after networks: their endpoints are restored by then.
        self.reconcile_containers().await
    }

    async fn reconcile_networks(&self) -> Result<(), Error> {
        let _guard = self.mutations.lock().await;
        self.ensure_default_network().await?;
        let mut policies = Vec::new();
        let mut ports = Vec::new();
        let networks = self.networks()?;
        // Host links named like Warren's that a record explains; the others are orphans.
        let mut live_links = BTreeSet::new();
        // Network-id prefixes of networks, which own the extension links named so.
        let mut live_extensions = BTreeSet::new();
        for network in &networks {
            live_links.insert(network.settings.interface.clone());
            live_extensions.insert(extension_owner(&network.id).to_string());
            for endpoint in self.endpoints(&network.id)? {
                live_links.extend(endpoint.host_ifname);
            }
        }
        // Orphans go first: restoring a network then counts only the ports it really has, and
        // the endpoints of a network that cannot be restored keep their links.
        self.remove_orphan_links(&live_links, &live_extensions)
            .await?;
        for network in networks {
            let driver = self.driver(&network.driver)?;
            let config = network.driver_config();
            if let Err(e) = driver.create_network(&config).await {
                tracing::error!(network = %network.name, error = %crate::error::chain(&e), "cannot restore network");
                continue;
            }
            for endpoint in self.endpoints(&network.id)? {
                let ep_config = endpoint.driver_config(&network);
                if !endpoint.target.netns.exists() {
                    tracing::info!(network = %network.name, target = %endpoint.target.name, "namespace is gone; removing its endpoint");
                    let _ = driver.detach(&config, &ep_config).await;
                    self.forget_endpoint(&endpoint)?;
                    continue;
                }
                // E.g. a veth whose bridge was deleted (and re-created above) survives as a
                // stray link on no bridge: it is re-wired like a missing one.
                if !driver.is_wired(&config, &ep_config).await? {
                    tracing::info!(network = %network.name, target = %endpoint.target.name, "re-wiring missing or detached endpoint");
                    let _ = driver.detach(&config, &ep_config).await;
                    if let Err(e) = driver.attach(&config, &ep_config).await {
                        tracing::error!(target = %endpoint.target.name, error = %crate::error::chain(&e), "cannot re-wire endpoint");
                    }
                }
                ports.extend(endpoint.ports.iter().cloned());
            }
            if driver.uses_nat() {
                policies.push(network.firewall_policy());
            }
        }
        self.firewall.replace_all(&policies, &ports)?;
        // Listeners of live endpoints are (re-)opened; names are served from here on.
        self.refresh_dns().await;
        Ok(())
    }

    /// Links that carry Warren's names but that no record explains (left by a crash between
    /// creating a link and recording it) are deleted: host ends of veths (`wv…`), the
    /// hidden parent bridges of parent-less macvlan networks (`wm-…`), and extension bridges
    /// with their uplinks (`wx…`, `wy…`, `wz…`) of networks that no longer exist.
    async fn remove_orphan_links(
        &self,
        live: &BTreeSet<String>,
        live_extensions: &BTreeSet<String>,
    ) -> Result<(), Error> {
        let nl = Netlink::current()?;
        for link in nl.links().await? {
            let kind = link.kind.as_deref();
            let orphan_extension = parse_extension_link(&link.name)
                .is_some_and(|(owner, _)| !live_extensions.contains(owner));
            let ours = (link.name.starts_with(VETH_PREFIX) && kind == Some("veth"))
                || (link.name.starts_with(HIDDEN_PARENT_PREFIX) && kind == Some("bridge"));
            if (orphan_extension || ours) && !live.contains(&link.name) {
                tracing::info!(link = %link.name, "removing orphaned link");
                nl.delete_link(&link.name).await?;
            }
        }
        Ok(())
    }

    /// The built-in `bridge` network (Warren's docker0) exists from the first start on.
    async fn ensure_default_network(&self) -> Result<(), Error> {
        if self
            .networks()?
            .iter()
            .any(|n| n.builtin && n.name == DEFAULT_NETWORK)
        {
            return Ok(());
        }
        let parse =
            |key: &str, value: &Option<String>| -> Result<Option<ipnetwork::IpNetwork>, Error> {
                value
                    .as_deref()
                    .map(|v| {
                        v.parse().map_err(|e| {
                            Error::msg(ErrorKind::Invalid, format!("invalid {key} {v:?}: {e}"))
                        })
                    })
                    .transpose()
            };
        let bip = parse("bip", &self.config.bip)?;
        let fixed_cidr = parse("fixed-cidr", &self.config.fixed_cidr)?;
        let request = NetworkRequest {
            ipv4: vec![ipam::default_bridge_request(bip, fixed_cidr)?],
            ipv6: Vec::new(),
        };
        let pools = ipam::default_bridge_pools(&self.configured_pools());
        let host_routes = super::networks::host_routes().await?;
        let id = random_id();
        let mtu = self.config.mtu.unwrap_or(1500);
        // What `docker network inspect bridge` shows for docker0.
        let options: BTreeMap<String, String> = [
            ("com.docker.network.bridge.default_bridge", "true"),
            (OPT_ICC, "true"),
            (OPT_MASQUERADE, "true"),
            (OPT_HOST_BINDING, "0.0.0.0"),
            (OPT_BRIDGE_NAME, DEFAULT_BRIDGE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([(OPT_MTU.to_string(), mtu.to_string())])
        .collect();
        let (record, _) = commit_with_retry(self.store.as_ref(), || -> Result<_, Error> {
            let (subnets, txn) = ipam::plan_network(
                self.store.as_ref(),
                Scope::Local,
                &id,
                &request,
                &pools,
                &host_routes,
            )?;
            let record = NetworkRecord {
                id: id.clone(),
                name: DEFAULT_NETWORK.to_string(),
                driver: "bridge".into(),
                created: rfc3339(SystemTime::now()),
                builtin: true,
                internal: false,
                attachable: false,
                enable_ipv6: false,
                subnets,
                options: options.clone(),
                labels: BTreeMap::new(),
                settings: NetworkSettings {
                    interface: DEFAULT_BRIDGE.to_string(),
                    mtu: self.config.mtu,
                    icc: true,
                    masquerade: true,
                    host_binding_ipv4: None,
                    macvlan: None,
                    ports_per_bridge: None,
                },
                scope: Scope::Local,
            };
            let txn = txn
                .create_json(network_key(&id)?, &record)?
                .create_json(name_key(DEFAULT_NETWORK)?, &record.id)?;
            Ok((record, txn))
        })?;
        let subnet = record
            .subnets
            .first()
            .map(|s| s.subnet.to_string())
            .unwrap_or_default();
        tracing::info!(bridge = DEFAULT_BRIDGE, %subnet, "default network created");
        Ok(())
    }
}
