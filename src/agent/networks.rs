//! Network and endpoint operations: validate → IPAM + records (one store commit) → driver →
//! firewall, undoing completed steps when a later one fails, so a refused or failed request
//! leaves no link, rule, address or record behind.
//!
//! The store commit comes first because it is the reservation: two concurrent requests cannot
//! both get a name, subnet or address, and the loser fails before touching the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use ipnetwork::IpNetwork;

use super::records::*;
use super::{lookup_by_id_or_name, random_id, Agent, Lookup};
use crate::api::filters::Filters;
use crate::api::types::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use crate::drivers::bridge::extension_owner;
use crate::drivers::{random_mac, Driver};
use crate::error::{Error, ErrorKind};
use crate::firewall::{parse_port_spec, HostPort, PortMapping};
use crate::ipam::{self, NetworkRequest, PoolRequest};
use crate::netlink::Netlink;
use crate::store::{commit_deferred_with_retry, commit_with_retry, Scope, StoreExt, Txn};

/// Docker's rule for network names.
fn validate_network_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::msg(
            ErrorKind::Invalid,
            format!(
                "invalid network name {name:?}: use 1-128 characters [a-zA-Z0-9][a-zA-Z0-9_.-]*"
            ),
        ))
    }
}

/// DNS label rules for aliases (they become names in Warren's DNS).
fn validate_alias(alias: &str) -> Result<(), Error> {
    let ok = !alias.is_empty()
        && alias.len() <= 253
        && alias.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::msg(
            ErrorKind::Invalid,
            format!("invalid alias {alias:?}: not a DNS name"),
        ))
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::msg(ErrorKind::Invalid, message)
}

fn parse_net(what: &str, text: &str) -> Result<Option<IpNetwork>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| invalid(format!("invalid {what} {text:?}: {e}")))
}

fn parse_ip(what: &str, text: &str) -> Result<Option<IpAddr>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| invalid(format!("invalid {what} {text:?}: not an IP address")))
}

/// Docker's `IPAM.Config` entries as IPAM pool requests.
fn pool_requests(request: &NetworkCreateRequest) -> Result<Vec<PoolRequest>, Error> {
    let Some(ipam) = &request.ipam else {
        return Ok(Vec::new());
    };
    if !matches!(ipam.driver.as_str(), "" | "default") {
        return Err(invalid(format!(
            "IPAM driver {:?} is not supported (only \"default\")",
            ipam.driver
        )));
    }
    if !ipam.options.is_empty() {
        return Err(invalid(
            "IPAM options are not supported by the default IPAM driver",
        ));
    }
    ipam.config
        .iter()
        .map(|c| {
            let mut aux = BTreeMap::new();
            for (name, ip) in &c.aux_addresses {
                let ip = parse_ip("auxiliary address", ip)?
                    .ok_or_else(|| invalid(format!("empty auxiliary address {name}")))?;
                aux.insert(name.clone(), ip);
            }
            Ok(PoolRequest {
                subnet: parse_net("subnet", &c.subnet)?,
                gateway: parse_ip("gateway", &c.gateway)?,
                ip_range: parse_net("ip-range", &c.ip_range)?,
                aux_addresses: aux,
            })
        })
        .collect()
}

/// Outcome of a teardown that keeps going past failures (netavark's habit): every error is kept.
#[derive(Debug, Default)]
struct Teardown(Vec<String>);

impl Teardown {
    fn note<E: std::fmt::Display>(&mut self, what: &str, result: Result<impl Sized, E>) {
        if let Err(e) = result {
            tracing::warn!("{what}: {e}");
            self.0.push(format!("{what}: {e}"));
        }
    }

    fn finish(self, action: &str) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(
                ErrorKind::Internal,
                format!("{action}: {}", self.0.join("; ")),
            ))
        }
    }
}

impl Agent {
    pub(super) fn driver(&self, name: &str) -> Result<&dyn Driver, Error> {
        self.drivers.get(name).map(|d| d.as_ref()).ok_or_else(|| {
            Error::msg(
                ErrorKind::NotFound,
                format!(
                    "network driver {name:?} not found (available: {})",
                    self.drivers.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// Every network record.
    pub fn networks(&self) -> Result<Vec<NetworkRecord>, Error> {
        Ok(self
            .store
            .list_values::<NetworkRecord>(Scope::Local, NETWORKS_PREFIX)?)
    }

    /// The endpoints of one network.
    pub fn endpoints(&self, network_id: &str) -> Result<Vec<EndpointRecord>, Error> {
        Ok(self
            .store
            .list_values::<EndpointRecord>(Scope::Local, &endpoints_prefix(network_id))?)
    }

    /// Find a network as Docker does: full id, then exact name, then unique id prefix.
    pub fn find_network(&self, id_or_name: &str) -> Result<NetworkRecord, Error> {
        let not_found = || {
            Error::msg(
                ErrorKind::NotFound,
                format!("network {id_or_name} not found"),
            )
        };
        if id_or_name.is_empty() || id_or_name.contains('/') {
            return Err(not_found());
        }
        let found = lookup_by_id_or_name(
            self.store.as_ref(),
            id_or_name,
            network_key,
            name_key,
            NETWORKS_PREFIX,
            |n: &NetworkRecord| &n.id,
        )?;
        match found {
            Lookup::Found(network) => Ok(network),
            Lookup::Missing => Err(not_found()),
            Lookup::Ambiguous(k) => Err(invalid(format!(
                "network {id_or_name} is ambiguous ({k} matches found based on ID prefix)"
            ))),
        }
    }

    /// `POST /networks/create`.
    pub async fn create_network(
        &self,
        request: NetworkCreateRequest,
    ) -> Result<NetworkRecord, Error> {
        let _guard = self.mutations.lock().await;
        validate_network_name(&request.name)?;
        let driver_name = if request.driver.is_empty() {
            "bridge"
        } else {
            request.driver.as_str()
        };
        let driver = self.driver(driver_name)?;
        if request.ingress
            || request.config_only
            || request
                .config_from
                .as_ref()
                .is_some_and(|c| !c.network.is_empty())
        {
            return Err(invalid(
                "ingress, config-only and config-from networks are not supported",
            ));
        }
        let scope = driver.scope();
        if !request.scope.is_empty() && request.scope != scope.as_str() {
            return Err(invalid(format!(
                "scope {:?} is not supported by the {driver_name} driver: its networks are {scope}",
                request.scope
            )));
        }
        if request.enable_ipv4 == Some(false) {
            return Err(invalid(
                "IPv6-only networks are not supported; leave IPv4 enabled",
            ));
        }
        if self.store.get(&name_key(&request.name)?)?.is_some() {
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!("network with name {} already exists", request.name),
            ));
        }
        let existing = self.networks()?;
        // Host links are named after an id's first 8 (extension bridges) or 12 (bridges) hex
        // digits: a new network never shares those with an existing one.
        let id = loop {
            let id = random_id();
            let owner = extension_owner(&id);
            if !existing.iter().any(|n| extension_owner(&n.id) == owner) {
                break id;
            }
        };
        let settings =
            driver.configure(&id, &request.options, request.internal, self.config.mtu)?;
        if let Some(other) = existing
            .iter()
            .find(|n| n.settings.interface == settings.interface)
        {
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!(
                    "interface {} is already used by network {}",
                    settings.interface, other.name
                ),
            ));
        }
        let enable_ipv6 = request.enable_ipv6.unwrap_or(false);
        let ipam_request =
            NetworkRequest::from_docker(pool_requests(&request)?, true, enable_ipv6)?;
        // A NAT-less driver (macvlan) joins an existing LAN, whose subnet the host may well
        // route on-link already: only subnets Warren routes itself must avoid host routes.
        let host_routes = if driver.uses_nat() {
            host_routes().await?
        } else {
            Vec::new()
        };
        let pools = self.user_pools();
        let record_for = |subnets| NetworkRecord {
            id: id.clone(),
            name: request.name.clone(),
            driver: driver_name.to_string(),
            created: rfc3339(SystemTime::now()),
            builtin: false,
            internal: request.internal,
            attachable: request.attachable,
            enable_ipv6,
            subnets,
            options: request.options.clone(),
            labels: request.labels.clone(),
            settings: settings.clone(),
            scope,
        };
        let (record, _) = commit_with_retry(self.store.as_ref(), || -> Result<_, Error> {
            let (subnets, txn) = ipam::plan_network(
                self.store.as_ref(),
                scope,
                &id,
                &ipam_request,
                &pools,
                &host_routes,
            )
            .map_err(|e| self.name_overlap_owner(e))?;
            let record = record_for(subnets);
            let txn = txn
                .create_json(network_key(&id)?, &record)?
                .create_json(name_key(&record.name)?, &record.id)?;
            Ok((record, txn))
        })?;
        if let Err(e) = self.build_network(driver, &record).await {
            self.forget_network(&record)?;
            return Err(e);
        }
        tracing::info!(network = %record.name, id = %record.short_id(), bridge = %record.settings.interface, "network created");
        Ok(record)
    }

    /// IPAM knows networks by id; an overlap error names the other network as users know it.
    fn name_overlap_owner(&self, err: ipam::IpamError) -> ipam::IpamError {
        match err {
            ipam::IpamError::SubnetOverlap {
                subnet,
                other,
                owner,
            } => {
                let owner = self
                    .networks()
                    .ok()
                    .and_then(|all| all.into_iter().find(|n| n.id == owner))
                    .map_or(owner, |n| n.name);
                ipam::IpamError::SubnetOverlap {
                    subnet,
                    other,
                    owner,
                }
            }
            other => other,
        }
    }

    /// Driver objects and firewall chains of a recorded network; undone together on failure.
    async fn build_network(
        &self,
        driver: &dyn Driver,
        record: &NetworkRecord,
    ) -> Result<(), Error> {
        let config = record.driver_config();
        if let Err(e) = driver.create_network(&config).await {
            let _ = driver.delete_network(&config).await;
            return Err(e.into());
        }
        if driver.uses_nat() {
            if let Err(e) = self.firewall.add_network(&record.firewall_policy()) {
                let _ = self.firewall.remove_network(&record.firewall_policy());
                let _ = driver.delete_network(&config).await;
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Remove a network's records and IPAM reservations.
    fn forget_network(&self, record: &NetworkRecord) -> Result<(), Error> {
        commit_with_retry(self.store.as_ref(), || -> Result<_, Error> {
            let txn = ipam::plan_release_network(self.store.as_ref(), record.scope, &record.id)?
                .delete(network_key(&record.id)?)
                .delete(name_key(&record.name)?);
            Ok(((), txn))
        })?;
        Ok(())
    }

    /// `DELETE /networks/{id}`.
    pub async fn delete_network(&self, id_or_name: &str) -> Result<(), Error> {
        let _guard = self.mutations.lock().await;
        let record = self.find_network(id_or_name)?;
        self.remove_network(&record).await
    }

    async fn remove_network(&self, record: &NetworkRecord) -> Result<(), Error> {
        if record.builtin {
            return Err(invalid(format!(
                "{} is a pre-defined network and cannot be removed",
                record.name
            )));
        }
        let endpoints = self.endpoints(&record.id)?;
        if !endpoints.is_empty() {
            let names: Vec<&str> = endpoints.iter().map(|e| e.target.name.as_str()).collect();
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!(
                    "network {} has active endpoints ({})",
                    record.name,
                    names.join(", ")
                ),
            ));
        }
        let driver = self.driver(&record.driver)?;
        let mut teardown = Teardown::default();
        if driver.uses_nat() {
            teardown.note(
                "remove firewall chains",
                self.firewall.remove_network(&record.firewall_policy()),
            );
        }
        teardown.note(
            "remove driver objects",
            driver.delete_network(&record.driver_config()).await,
        );
        teardown.note("remove records", self.forget_network(record));
        // Its name and subnets leave the DNS table (rare enough for a full rebuild).
        self.refresh_dns().await;
        tracing::info!(network = %record.name, "network removed");
        teardown.finish(&format!("remove network {}", record.name))
    }

    /// `POST /networks/prune`: remove user networks without endpoints (matching `filters`).
    pub async fn prune_networks(&self, filters: &Filters) -> Result<Vec<String>, Error> {
        let _guard = self.mutations.lock().await;
        let mut removed = Vec::new();
        for record in self.networks()? {
            if record.builtin
                || !filters.labels_match(&record.labels)
                || !self.endpoints(&record.id)?.is_empty()
            {
                continue;
            }
            self.remove_network(&record).await?;
            removed.push(record.name);
        }
        Ok(removed)
    }

    /// Resolve the `Container` field of a connect/disconnect request.
    fn resolve_target(&self, container: &str) -> Result<Target, Error> {
        let target = container.trim();
        if target.is_empty() {
            return Err(invalid("no container or namespace given"));
        }
        let (name, path) = if let Some(ns) = target.strip_prefix("netns:") {
            crate::netns::validate_name(ns)?;
            (target.to_string(), crate::netns::resolve(ns)?)
        } else if target.starts_with('/') {
            (target.to_string(), crate::netns::resolve(target)?)
        } else {
            return self.container_target(target);
        };
        Ok(Target {
            name,
            netns_id: namespace_id(&path)?,
            netns: path,
            container_id: None,
        })
    }

    /// The endpoint of `network` whose namespace is `target`'s, if any.
    fn endpoint_of(
        &self,
        network_id: &str,
        target: &Target,
    ) -> Result<Option<EndpointRecord>, Error> {
        let key = target_key(network_id, &target.netns_id)?;
        let Some((endpoint_id, _)) = self.store.get_json::<String>(&key)? else {
            return Ok(None);
        };
        let endpoint = self
            .store
            .get_json::<EndpointRecord>(&endpoint_key(network_id, &endpoint_id)?)?;
        Ok(endpoint.map(|(ep, _)| ep))
    }

    /// `POST /networks/{id}/connect`.
    pub async fn connect(
        &self,
        id_or_name: &str,
        request: NetworkConnectRequest,
    ) -> Result<EndpointRecord, Error> {
        let _guard = self.mutations.lock().await;
        let network = self.find_network(id_or_name)?;
        let target = self.resolve_target(&request.container)?;
        if let Some(ep) = self.endpoint_of(&network.id, &target)? {
            // The kernel reuses a dead namespace's inode; an endpoint whose own path no longer
            // leads to that namespace belongs to a namespace deleted behind our back.
            let alive = namespace_id(&ep.target.netns).is_ok_and(|id| id == ep.target.netns_id);
            if alive {
                return Err(Error::msg(
                    ErrorKind::Conflict,
                    format!(
                        "endpoint for {} already exists in network {} ({})",
                        target.name, network.name, ep.ifname
                    ),
                ));
            }
            tracing::info!(network = %network.name, target = %ep.target.name, "removing the endpoint of a vanished namespace");
            self.detach_endpoint(&network, &ep).await?;
        }
        let settings = request.endpoint_config.unwrap_or_default();
        for alias in &settings.aliases {
            validate_alias(alias)?;
        }
        let (want_v4, want_v6) = match &settings.ipam_config {
            Some(c) => (
                parse_ip("IPv4 address", &c.ipv4_address)?,
                parse_ip("IPv6 address", &c.ipv6_address)?,
            ),
            None => (None, None),
        };
        for (ip, v4) in [(want_v4, true), (want_v6, false)] {
            if let Some(ip) = ip.filter(|ip| ip.is_ipv4() != v4) {
                return Err(invalid(format!(
                    "{ip} is not an IPv{} address",
                    if v4 { 4 } else { 6 }
                )));
            }
            if let Some(ip) = ip {
                if !network
                    .subnets
                    .iter()
                    .any(|s| s.subnet.is_ipv4() == ip.is_ipv4())
                {
                    return Err(invalid(format!(
                        "network {} has no subnet for {ip}",
                        network.name
                    )));
                }
            }
        }
        let driver = self.driver(&network.driver)?;
        if driver.limits_endpoints() {
            driver.check_attach(&network.driver_config(), self.endpoints(&network.id)?.len())?;
        }
        let port_specs = request
            .publish
            .iter()
            .map(|p| parse_port_spec(p))
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        if !port_specs.is_empty() && (network.internal || !driver.uses_nat()) {
            return Err(invalid(format!(
                "ports cannot be published on network {} ({})",
                network.name,
                if network.internal {
                    "internal network".to_string()
                } else {
                    format!(
                        "the {} driver has no NAT; reach endpoints at their own addresses",
                        driver.name()
                    )
                }
            )));
        }
        let ifname = next_ifname(&target.netns).await?;
        let id = random_id();
        let host_ifname =
            (network.driver == "bridge").then(|| crate::drivers::bridge::host_veth_name(&id));
        let mac = random_mac();

        // Reserve addresses and write the record in one commit, deferred: its disk sync runs
        // while the kernel wires the endpoint, and ends before anyone hears of the endpoint.
        // A crash in between leaves at most a link no record explains, which the next start
        // removes.
        let (endpoint, _) =
            commit_deferred_with_retry(self.store.as_ref(), || -> Result<_, Error> {
                let mut txn = Txn::new();
                let mut addresses = Vec::new();
                for subnet in &network.subnets {
                    let requested = if subnet.subnet.is_ipv4() {
                        want_v4
                    } else {
                        want_v6
                    };
                    let (ip, t) = ipam::plan_allocate(
                        self.store.as_ref(),
                        network.scope,
                        &network.id,
                        subnet,
                        &id,
                        requested,
                    )?;
                    addresses.push(
                        IpNetwork::new(ip, subnet.subnet.prefix())
                            .map_err(|e| invalid(e.to_string()))?,
                    );
                    txn = txn.merge(t);
                }
                let ports = self.assign_ports(&network, &port_specs, &addresses)?;
                let endpoint = EndpointRecord {
                    id: id.clone(),
                    network_id: network.id.clone(),
                    target: target.clone(),
                    ifname: ifname.clone(),
                    host_ifname: host_ifname.clone(),
                    mac: mac.clone(),
                    addresses,
                    aliases: settings.aliases.clone(),
                    ports,
                    scope: network.scope,
                };
                let mut txn = txn
                    .create_json(endpoint_key(&network.id, &id)?, &endpoint)?
                    .create_json(target_key(&network.id, &target.netns_id)?, &id)?;
                for port in &endpoint.ports {
                    txn = txn.create_json(port_key(port.proto, port.host_port)?, &id)?;
                }
                Ok((endpoint, txn))
            })?;

        let config = endpoint.driver_config(&network);
        let network_config = network.driver_config();
        let store = Arc::clone(&self.store);
        let sync = tokio::task::spawn_blocking(move || store.sync());
        let attached = driver.attach(&network_config, &config).await;
        let synced = match sync.await {
            Ok(result) => result.map_err(Error::from),
            Err(e) => Err(Error::msg(
                ErrorKind::Internal,
                format!("store sync task failed: {e}"),
            )),
        };
        if let Err(e) = attached {
            self.forget_endpoint(&endpoint)?;
            return Err(e.into());
        }
        if let Err(e) = synced {
            let _ = driver.detach(&network_config, &config).await;
            let _ = self.forget_endpoint(&endpoint);
            return Err(e);
        }
        if !endpoint.ports.is_empty() {
            if let Err(e) = self.firewall.add_ports(&endpoint.ports) {
                let _ = driver.detach(&network_config, &config).await;
                self.forget_endpoint(&endpoint)?;
                return Err(e.into());
            }
        }
        tracing::debug!(network = %network.name, target = %target.name, ifname = %endpoint.ifname, "endpoint attached");
        if self.serves_names(&endpoint) {
            self.dns_endpoint_added(&network, &endpoint).await;
        }
        Ok(endpoint)
    }

    /// Concrete host ports for `specs` on this endpoint: fixed ports must be free, ranges and
    /// ephemeral requests take the first free port.
    fn assign_ports(
        &self,
        network: &NetworkRecord,
        specs: &[crate::firewall::PortSpec],
        addresses: &[IpNetwork],
    ) -> Result<Vec<PortMapping>, Error> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let mut chosen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for spec in specs {
            let container_ip = addresses
                .iter()
                .map(IpNetwork::ip)
                .find(|ip| spec.host_ip.is_none_or(|h| h.is_ipv4() == ip.is_ipv4()) && ip.is_ipv4())
                .or_else(|| addresses.first().map(IpNetwork::ip))
                .ok_or_else(|| invalid("endpoint has no address to publish"))?;
            let candidates: Vec<u16> = match spec.host_port {
                HostPort::Fixed(p) => vec![p],
                HostPort::OneOf { start, end } => (start..=end).collect(),
                HostPort::Ephemeral => (49153..=65535).collect(),
            };
            let mut free = None;
            for port in candidates {
                if !chosen.contains(&(spec.proto, port))
                    && self.store.get(&port_key(spec.proto, port)?)?.is_none()
                {
                    free = Some(port);
                    break;
                }
            }
            let host_port = free.ok_or_else(|| {
                Error::msg(
                    ErrorKind::Conflict,
                    format!(
                        "Bind for {}:{} failed: port is already allocated",
                        spec.host_ip
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        match spec.host_port {
                            HostPort::Fixed(p) => p.to_string(),
                            HostPort::OneOf { start, end } => format!("{start}-{end}"),
                            HostPort::Ephemeral => "ephemeral".into(),
                        }
                    ),
                )
            })?;
            chosen.insert((spec.proto, host_port));
            out.push(PortMapping {
                network_id: network.short_id().to_string(),
                proto: spec.proto,
                host_ip: spec
                    .host_ip
                    .or(network.settings.host_binding_ipv4.map(IpAddr::V4)),
                host_port,
                container_ip,
                container_port: spec.container_port,
            });
        }
        Ok(out)
    }

    /// Delete an endpoint's record and release its addresses.
    pub(super) fn forget_endpoint(&self, endpoint: &EndpointRecord) -> Result<(), Error> {
        let mut txn = Txn::new()
            .delete(endpoint_key(&endpoint.network_id, &endpoint.id)?)
            .delete(target_key(&endpoint.network_id, &endpoint.target.netns_id)?);
        for port in &endpoint.ports {
            txn = txn.delete(port_key(port.proto, port.host_port)?);
        }
        for addr in &endpoint.addresses {
            txn = txn.merge(ipam::plan_release(
                endpoint.scope,
                &endpoint.network_id,
                addr.ip(),
            )?);
        }
        self.store.commit(txn)?;
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect(
        &self,
        id_or_name: &str,
        request: NetworkDisconnectRequest,
    ) -> Result<(), Error> {
        let _guard = self.mutations.lock().await;
        let network = self.find_network(id_or_name)?;
        let endpoint = match self.resolve_target(&request.container) {
            Ok(target) => self.endpoint_of(&network.id, &target)?,
            // With --force, a namespace that no longer exists is matched by the name it had.
            Err(e) if request.force && e.kind() == ErrorKind::NotFound => {
                self.endpoints(&network.id)?.into_iter().find(|ep| {
                    ep.target.name == request.container
                        || ep.target.netns == Path::new(&request.container)
                })
            }
            Err(e) => return Err(e),
        };
        let endpoint = endpoint.ok_or_else(|| {
            Error::msg(
                ErrorKind::NotFound,
                format!(
                    "{} is not connected to network {}",
                    request.container, network.name
                ),
            )
        })?;
        self.detach_endpoint(&network, &endpoint).await
    }

    /// Remove an endpoint from the kernel, the firewall and the store; keeps going on failure.
    pub(super) async fn detach_endpoint(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), Error> {
        let mut teardown = Teardown::default();
        if !endpoint.ports.is_empty() {
            teardown.note(
                "unpublish ports",
                self.firewall.remove_ports(&endpoint.ports),
            );
        }
        let driver = self.driver(&network.driver)?;
        teardown.note(
            "remove interface",
            driver
                .detach(&network.driver_config(), &endpoint.driver_config(network))
                .await,
        );
        teardown.note("remove record", self.forget_endpoint(endpoint));
        // Before the caller may delete the namespace: our listener there would keep it alive.
        self.dns_endpoint_removed(endpoint).await;
        tracing::debug!(network = %network.name, target = %endpoint.target.name, "endpoint detached");
        teardown.finish(&format!(
            "disconnect {} from {}",
            endpoint.target.name, network.name
        ))
    }

    /// daemon.json `default-address-pools`, as IPAM pools.
    pub(super) fn configured_pools(&self) -> Vec<ipam::AddressPool> {
        self.config
            .default_address_pools
            .iter()
            .map(|p| ipam::AddressPool {
                base: p.base,
                size: p.size,
            })
            .collect()
    }

    /// User-network pools: the configured ones or Docker's defaults.
    pub(super) fn user_pools(&self) -> Vec<ipam::AddressPool> {
        ipam::user_network_pools(&self.configured_pools())
    }
}

/// Routes of the host namespace; subnets overlapping them are refused or skipped.
pub(super) async fn host_routes() -> Result<Vec<IpNetwork>, Error> {
    let nl = Netlink::current()?;
    Ok(nl.routes().await?)
}

/// A namespace's identity: device and inode of its nsfs file.
fn namespace_id(path: &Path) -> Result<String, Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::msg(
            ErrorKind::NotFound,
            format!("namespace {}: {e}", path.display()),
        )
    })?;
    Ok(format!("{}-{}", meta.dev(), meta.ino()))
}

/// The first `ethN` not present in the namespace.
async fn next_ifname(netns: &Path) -> Result<String, Error> {
    let nl = Netlink::in_netns(netns).await?;
    let names: BTreeSet<String> = nl.links().await?.into_iter().map(|l| l.name).collect();
    Ok((0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !names.contains(n))
        .expect("some ethN is free"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_follow_docker() {
        for ok in ["lab", "my-net_1.x", "A", "9net"] {
            assert!(validate_network_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-lead",
            ".x",
            "has space",
            "sl/ash",
            "über",
            &"n".repeat(129),
        ] {
            assert!(validate_network_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aliases_are_dns_names() {
        assert!(validate_alias("www").is_ok());
        assert!(validate_alias("db.internal").is_ok());
        for bad in ["", "a..b", "sp ace", &"x".repeat(64)] {
            assert!(validate_alias(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pool_requests_parse_and_refuse_garbage() {
        let mut req = NetworkCreateRequest {
            ipam: Some(crate::api::types::Ipam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: vec![crate::api::types::IpamConfigEntry {
                    subnet: "10.1.0.0/24".into(),
                    gateway: "10.1.0.1".into(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let pools = pool_requests(&req).unwrap();
        assert_eq!(pools[0].subnet, Some("10.1.0.0/24".parse().unwrap()));
        req.ipam.as_mut().unwrap().config[0].subnet = "10.1.0.0/33".into();
        assert!(pool_requests(&req).is_err());
        req.ipam.as_mut().unwrap().driver = "dhcp".into();
        assert!(pool_requests(&req).is_err());
    }
}
