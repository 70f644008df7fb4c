//! Network endpoints of the Docker Engine API: create, list (server-side filters), inspect,
//! remove, prune, connect and disconnect.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use crate::agent::records::{EndpointRecord, NetworkRecord};
use crate::agent::Agent;
use crate::api::error::{ApiError, JsonBody};
use crate::api::filters::Filters;
use crate::api::types::*;

pub fn routes() -> Router<Arc<Agent>> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect))
        .route("/networks/{id}", delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

/// The Docker view of a network and its endpoints.
pub fn resource(network: &NetworkRecord, endpoints: &[EndpointRecord]) -> NetworkResource {
    let containers = endpoints
        .iter()
        .map(|ep| {
            let entry = NetworkContainer {
                name: ep.target.name.clone(),
                endpoint_id: ep.id.clone(),
                mac_address: ep.mac.clone(),
                ipv4_address: ep.ipv4().map(|a| a.to_string()).unwrap_or_default(),
                ipv6_address: ep.ipv6().map(|a| a.to_string()).unwrap_or_default(),
            };
            (ep.target.key().to_string(), entry)
        })
        .collect();
    NetworkResource {
        name: network.name.clone(),
        id: network.id.clone(),
        created: network.created.clone(),
        scope: network.scope.as_str().into(),
        driver: network.driver.clone(),
        enable_ipv4: true,
        enable_ipv6: network.enable_ipv6,
        ipam: Ipam {
            driver: "default".into(),
            options: BTreeMap::new(),
            config: network
                .subnets
                .iter()
                .map(|s| IpamConfigEntry {
                    subnet: s.subnet.to_string(),
                    ip_range: s.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                    gateway: s.gateway.map(|g| g.to_string()).unwrap_or_default(),
                    aux_addresses: s
                        .aux_addresses
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                })
                .collect(),
        },
        internal: network.internal,
        attachable: network.attachable,
        ingress: false,
        config_from: ConfigFrom::default(),
        config_only: false,
        containers,
        options: network.options.clone(),
        labels: network.labels.clone(),
    }
}

const LIST_FILTERS: &[&str] = &["driver", "id", "name", "label", "scope", "type", "dangling"];

async fn list(
    State(agent): State<Arc<Agent>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<NetworkResource>>, ApiError> {
    let filters = Filters::parse(query.get("filters").map(String::as_str), LIST_FILTERS)?;
    let mut out = Vec::new();
    for network in agent.networks()? {
        let endpoints = agent.endpoints(&network.id)?;
        let kind = if network.builtin { "builtin" } else { "custom" };
        let dangling = endpoints.is_empty() && !network.builtin;
        let keep = filters.any("driver", |d| d == network.driver)
            && filters.any("id", |p| network.id.starts_with(p))
            && filters.any("name", |n| network.name.contains(n))
            && filters.any("scope", |s| s == network.scope.as_str())
            && filters.any("type", |t| t == kind)
            && filters.any("dangling", |d| {
                crate::api::filters::query_bool(Some(d)) == dangling
            })
            && filters.labels_match(&network.labels);
        if keep {
            out.push(resource(&network, &endpoints));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

async fn create(
    State(agent): State<Arc<Agent>>,
    JsonBody(request): JsonBody<NetworkCreateRequest>,
) -> Result<(StatusCode, Json<NetworkCreateResponse>), ApiError> {
    let record = agent.create_network(request).await?;
    Ok((
        StatusCode::CREATED,
        Json(NetworkCreateResponse {
            id: record.id,
            warning: String::new(),
        }),
    ))
}

async fn inspect(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
) -> Result<Json<NetworkResource>, ApiError> {
    let network = agent.find_network(&id)?;
    let endpoints = agent.endpoints(&network.id)?;
    Ok(Json(resource(&network, &endpoints)))
}

async fn remove(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    agent.delete_network(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(
    State(agent): State<Arc<Agent>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<NetworkPruneResponse>, ApiError> {
    let filters = Filters::parse(
        query.get("filters").map(String::as_str),
        &["label", "until"],
    )?;
    if !filters.values("until").is_empty() {
        return Err(ApiError::new(
            crate::ErrorKind::Invalid,
            "the until filter is not supported",
        ));
    }
    let networks_deleted = agent.prune_networks(&filters).await?;
    Ok(Json(NetworkPruneResponse { networks_deleted }))
}

async fn connect(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<NetworkConnectRequest>,
) -> Result<StatusCode, ApiError> {
    if let Some(endpoint) = &request.endpoint_config {
        endpoint.refuse_unsupported("EndpointConfig.")?;
    }
    agent.connect(&id, request).await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<NetworkDisconnectRequest>,
) -> Result<StatusCode, ApiError> {
    agent.disconnect(&id, request).await?;
    Ok(StatusCode::OK)
}
