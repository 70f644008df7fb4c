//! Container and exec endpoints of the Docker Engine API: create, start, stop, kill, wait
//! (headers flushed at once, the status written at exit), attach and exec start (hijacked
//! `101 UPGRADED` streams of multiplexed frames, or a plain 200 stream without `Upgrade`),
//! logs, list, inspect, remove; and the wire types for them.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, Response, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::agent::containers::{human_status, ContainerRecord, LogOptions, Output};
use crate::agent::records::rfc3339;
use crate::agent::Agent;
use crate::api::error::{ApiError, JsonBody};
use crate::api::filters::{query_bool, Filters};
use crate::api::types::{null_as_default, EndpointSettings};
use crate::api::unsupported::{
    Unsupported, CONFIG_TOLERATED, EXEC_TOLERATED, HOST_CONFIG_TOLERATED,
};
use crate::error::ErrorKind;
use crate::runtime::confine::{
    caps, CgroupnsMode, DeviceMapping, SecurityOptions, SecurityOpts, Ulimit, DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
};
use crate::runtime::logs::{LogEntry, Stream};

pub fn routes() -> Router<Arc<Agent>> {
    Router::new()
        .route("/containers/json", get(list))
        .route("/containers/create", post(create))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/resize", post(|| async { StatusCode::OK }))
        .route("/containers/{id}", delete(remove))
        .route("/containers/{id}/exec", post(exec_create))
        .route("/exec/{id}/start", post(exec_start))
        .route("/exec/{id}/json", get(exec_inspect))
        .route("/exec/{id}/resize", post(|| async { StatusCode::OK }))
}

// ---- Wire types (requests; answers are built as JSON values) ----

/// `POST /containers/create` body: the fields Warren implements; any other set to a
/// non-default value is refused ([`ContainerCreateRequest::refuse_unsupported`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreateRequest {
    #[serde(default, deserialize_with = "null_as_default")]
    pub hostname: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub cmd: Vec<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub image: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub exposed_ports: BTreeMap<String, Value>,
    #[serde(default)]
    pub host_config: Option<HostConfig>,
    #[serde(default)]
    pub networking_config: Option<NetworkingConfig>,
    /// Everything else Docker's `Config` has: refused unless zero (see `unsupported`).
    #[serde(flatten, skip_serializing)]
    pub unsupported: Unsupported,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub network_mode: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub auto_remove: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub memory: i64,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub nano_cpus: i64,
    /// Run the built-in init as PID 1 (`None`: the daemon default, which is yes).
    #[serde(default)]
    pub init: Option<bool>,
    // Confinement (see runtime::confine).
    #[serde(default, deserialize_with = "null_as_default")]
    pub privileged: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cap_add: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cap_drop: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub security_opt: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub readonly_rootfs: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub group_add: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub devices: Vec<DeviceMapping>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ulimits: Vec<Ulimit>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cgroupns_mode: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub userns_mode: String,
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
    #[serde(flatten, skip_serializing)]
    pub unsupported: Unsupported,
}

impl ContainerCreateRequest {
    /// Refuse any field Warren does not implement that is set (Config, HostConfig and every
    /// endpoint of NetworkingConfig).
    pub fn refuse_unsupported(&self) -> Result<(), ApiError> {
        self.unsupported.refuse("", CONFIG_TOLERATED)?;
        if let Some(host) = &self.host_config {
            host.unsupported
                .refuse("HostConfig.", HOST_CONFIG_TOLERATED)?;
        }
        if let Some(networking) = &self.networking_config {
            for (network, endpoint) in &networking.endpoints_config {
                endpoint
                    .refuse_unsupported(&format!("NetworkingConfig.EndpointsConfig.{network}."))?;
            }
        }
        Ok(())
    }
}

impl HostConfig {
    /// The confinement options, checked for form (names, syntax); the agent checks the rest.
    pub fn security_options(&self) -> Result<SecurityOptions, ApiError> {
        let invalid = |e: String| ApiError::new(ErrorKind::Invalid, e);
        match self.userns_mode.as_str() {
            "" | "host" => {}
            other => {
                return Err(invalid(format!(
                    "--userns {other:?}: user namespaces are not supported yet; containers \
                     share the host's (confined by capabilities, seccomp and the device cgroup)"
                )))
            }
        }
        let cap_add = caps::canonical_names(&self.cap_add)
            .map_err(|e| invalid(format!("invalid CapAdd: {e}")))?;
        let cap_drop = caps::canonical_names(&self.cap_drop)
            .map_err(|e| invalid(format!("invalid CapDrop: {e}")))?;
        let cgroupns = match self.cgroupns_mode.as_str() {
            "" => None,
            mode => Some(CgroupnsMode::parse(mode).map_err(|e| invalid(e.to_string()))?),
        };
        Ok(SecurityOptions {
            privileged: self.privileged,
            cap_add,
            cap_drop,
            opts: SecurityOpts::parse(&self.security_opt).map_err(|e| invalid(e.to_string()))?,
            read_only_rootfs: self.readonly_rootfs,
            devices: self.devices.clone(),
            device_cgroup_rules: self.device_cgroup_rules.clone(),
            sysctls: self.sysctls.clone(),
            ulimits: self.ulimits.clone(),
            cgroupns,
            group_add: self.group_add.clone(),
            masked_paths: self.masked_paths.clone(),
            readonly_paths: self.readonly_paths.clone(),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    #[serde(rename = "HostIp", default, deserialize_with = "null_as_default")]
    pub host_ip: String,
    #[serde(rename = "HostPort", default, deserialize_with = "null_as_default")]
    pub host_port: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkingConfig {
    #[serde(
        rename = "EndpointsConfig",
        default,
        deserialize_with = "null_as_default"
    )]
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

/// `POST /containers/{id}/exec` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecCreateRequest {
    #[serde(default, deserialize_with = "string_or_list")]
    pub cmd: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub privileged: bool,
    #[serde(flatten, skip_serializing)]
    pub unsupported: Unsupported,
}

/// `Cmd`/`Entrypoint`: a list, a single string, or null.
fn string_or_list<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        None => Vec::new(),
        Some(Either::One(s)) if s.is_empty() => Vec::new(),
        Some(Either::One(s)) => vec![s],
        Some(Either::Many(v)) => v,
    })
}

// ---- Docker's views of a container ----

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn networks_json(
    agent: &Agent,
    record: &ContainerRecord,
) -> Result<(Value, Value, Vec<Value>), ApiError> {
    let mut networks = serde_json::Map::new();
    let mut ports = serde_json::Map::new();
    let mut ps_ports = Vec::new();
    for (network, ep) in agent.container_endpoints(&record.id)? {
        let requested: Option<&EndpointSettings> = record
            .networks
            .iter()
            .find(|(id, _)| *id == network.id)
            .map(|(_, s)| s);
        let v4 = ep.ipv4();
        let gateway = network
            .subnets
            .iter()
            .find(|s| s.subnet.is_ipv4())
            .and_then(|s| s.gateway)
            .map(|g| g.to_string())
            .unwrap_or_default();
        let mut dns_names = vec![record.name.clone(), record.short_id().to_string()];
        dns_names.extend(ep.aliases.iter().cloned());
        networks.insert(
            network.name.clone(),
            json!({
                "IPAMConfig": requested.and_then(|s| s.ipam_config.clone()),
                "Links": null,
                "Aliases": if ep.aliases.is_empty() { Value::Null } else { json!(ep.aliases) },
                "MacAddress": ep.mac,
                "DriverOpts": null,
                "NetworkID": network.id,
                "EndpointID": ep.id,
                "Gateway": gateway,
                "IPAddress": v4.map(|a| a.ip().to_string()).unwrap_or_default(),
                "IPPrefixLen": v4.map(|a| a.prefix()).unwrap_or(0),
                "IPv6Gateway": "",
                "GlobalIPv6Address": ep.ipv6().map(|a| a.ip().to_string()).unwrap_or_default(),
                "GlobalIPv6PrefixLen": ep.ipv6().map(|a| a.prefix()).unwrap_or(0),
                "DNSNames": dns_names,
            }),
        );
        for p in &ep.ports {
            let key = format!("{}/{}", p.container_port, p.proto);
            let host_ip = p
                .host_ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "0.0.0.0".into());
            let entry = ports.entry(key).or_insert_with(|| json!([]));
            if let Some(list) = entry.as_array_mut() {
                list.push(json!({"HostIp": host_ip, "HostPort": p.host_port.to_string()}));
            }
            ps_ports.push(json!({
                "IP": host_ip,
                "PrivatePort": p.container_port,
                "PublicPort": p.host_port,
                "Type": p.proto.to_string(),
            }));
        }
    }
    if matches!(record.network_mode.as_str(), "host" | "none") {
        let id = agent
            .find_network(&record.network_mode)
            .map(|n| n.id)
            .unwrap_or_default();
        networks.insert(
            record.network_mode.clone(),
            json!({"IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                   "NetworkID": id, "EndpointID": "", "Gateway": "", "IPAddress": "",
                   "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                   "GlobalIPv6PrefixLen": 0, "DNSNames": null}),
        );
    }
    Ok((Value::Object(networks), Value::Object(ports), ps_ports))
}

fn command_line(record: &ContainerRecord) -> String {
    record.process.args.join(" ")
}

fn inspect_json(agent: &Agent, record: &ContainerRecord) -> Result<Value, ApiError> {
    let observed = agent.observe(record);
    let (networks, ports, _) = networks_json(agent, record)?;
    let primary = networks
        .get(&record.network_mode)
        .cloned()
        .unwrap_or(Value::Null);
    let host = record.request.host_config.clone().unwrap_or_default();
    let security = &record.security;
    let bundle = agent.bundle(&record.id);
    Ok(json!({
        "Id": record.id,
        "Created": record.created,
        "Path": record.process.args.first().cloned().unwrap_or_default(),
        "Args": record.process.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": observed.status,
            "Running": observed.running(),
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": observed.pid,
            "ExitCode": observed.exit_code,
            "Error": record.error,
            "StartedAt": observed.started_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
            "FinishedAt": observed.finished_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
        },
        "Image": record.image_id,
        "ResolvConfPath": bundle.path("resolv.conf"),
        "HostnamePath": bundle.path("hostname"),
        "HostsPath": bundle.path("hosts"),
        "LogPath": agent.log_path(&record.id),
        "Name": format!("/{}", record.name),
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "HostConfig": {
            "NetworkMode": record.network_mode,
            "PortBindings": host.port_bindings,
            "AutoRemove": record.auto_remove,
            "Memory": host.memory,
            "NanoCpus": host.nano_cpus,
            "PidsLimit": host.pids_limit,
            "Init": record.init,
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "LogConfig": {"Type": "json-file", "Config": {}},
            "Privileged": security.privileged,
            "CapAdd": non_empty(&security.cap_add),
            "CapDrop": non_empty(&security.cap_drop),
            "SecurityOpt": non_empty(&host.security_opt),
            "ReadonlyRootfs": security.read_only_rootfs,
            "GroupAdd": non_empty(&security.group_add),
            "Devices": security.devices,
            "DeviceCgroupRules": non_empty(&security.device_cgroup_rules),
            "Sysctls": if security.sysctls.is_empty() { Value::Null } else { json!(security.sysctls) },
            "Ulimits": security.ulimits,
            "CgroupnsMode": security.cgroupns.unwrap_or(agent.config.confinement.cgroupns).as_str(),
            "UsernsMode": host.userns_mode,
            "MaskedPaths": system_paths(security, &security.masked_paths, DEFAULT_MASKED_PATHS),
            "ReadonlyPaths": system_paths(security, &security.readonly_paths, DEFAULT_READONLY_PATHS),
        },
        "Config": {
            "Hostname": record.hostname,
            "Domainname": "",
            "User": record.process.user,
            "AttachStdin": false,
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": false,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": record.process.env,
            "Cmd": record.request.cmd,
            "Entrypoint": if record.request.entrypoint.is_empty() { Value::Null } else { json!(record.request.entrypoint) },
            "Image": record.image,
            "WorkingDir": record.process.cwd,
            "Labels": record.request.labels,
            "ExposedPorts": record.request.exposed_ports,
        },
        "NetworkSettings": {
            "SandboxID": record.id,
            "SandboxKey": record.netns.clone().map(|p| p.display().to_string()).unwrap_or_default(),
            "Ports": ports,
            "IPAddress": primary.get("IPAddress").cloned().unwrap_or(json!("")),
            "IPPrefixLen": primary.get("IPPrefixLen").cloned().unwrap_or(json!(0)),
            "Gateway": primary.get("Gateway").cloned().unwrap_or(json!("")),
            "MacAddress": primary.get("MacAddress").cloned().unwrap_or(json!("")),
            "Networks": networks,
        },
        "Mounts": [],
    }))
}

/// Docker shows an empty list as null in inspect.
fn non_empty(items: &[String]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        json!(items)
    }
}

/// Inspect's MaskedPaths/ReadonlyPaths: what applies (none when privileged or with
/// `systempaths=unconfined`).
fn system_paths(
    security: &SecurityOptions,
    given: &Option<Vec<String>>,
    default: &[&str],
) -> Value {
    if security.privileged || security.opts.unconfined_system_paths {
        return Value::Null;
    }
    match given {
        Some(paths) => json!(paths),
        None => json!(default),
    }
}

fn summary_json(
    agent: &Agent,
    record: &ContainerRecord,
    now: SystemTime,
) -> Result<Value, ApiError> {
    let observed = agent.observe(record);
    let (networks, _, ports) = networks_json(agent, record)?;
    let created = crate::agent::containers::parse_rfc3339(&record.created)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(json!({
        "Id": record.id,
        "Names": [format!("/{}", record.name)],
        "Image": record.image,
        "ImageID": record.image_id,
        "Command": command_line(record),
        "Created": created,
        "Ports": ports,
        "Labels": record.request.labels,
        "State": observed.status,
        "Status": human_status(&observed, now),
        "HostConfig": {"NetworkMode": record.network_mode},
        "NetworkSettings": {"Networks": networks},
        "Mounts": [],
    }))
}

// ---- Handlers ----

type Q = Query<HashMap<String, String>>;

async fn create(
    State(agent): State<Arc<Agent>>,
    Query(query): Q,
    JsonBody(request): JsonBody<ContainerCreateRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    request.refuse_unsupported()?;
    let security = request
        .host_config
        .clone()
        .unwrap_or_default()
        .security_options()?;
    let (record, warnings) = agent
        .create_container(query.get("name").map(String::as_str), request, security)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": record.id, "Warnings": warnings})),
    ))
}

const LIST_FILTERS: &[&str] = &[
    "id", "name", "status", "label", "network", "exited", "ancestor",
];

async fn list(
    State(agent): State<Arc<Agent>>,
    Query(query): Q,
) -> Result<Json<Vec<Value>>, ApiError> {
    let all = query_bool(query.get("all").map(String::as_str));
    let filters = Filters::parse(query.get("filters").map(String::as_str), LIST_FILTERS)?;
    let now = SystemTime::now();
    let mut records = agent.containers()?;
    records.sort_by(|a, b| b.created.cmp(&a.created));
    let mut out = Vec::new();
    for record in records {
        let observed = agent.observe(&record);
        let has_status_filter = !filters.values("status").is_empty();
        if !all && !observed.running() && !has_status_filter {
            continue;
        }
        let networks: Vec<String> = agent
            .container_endpoints(&record.id)?
            .into_iter()
            .flat_map(|(n, _)| [n.name, n.id])
            .chain([record.network_mode.clone()])
            .collect();
        let keep = filters.any("id", |p| record.id.starts_with(p))
            && filters.any("name", |n| record.name.contains(n.trim_start_matches('/')))
            && filters.any("status", |s| s == observed.status)
            && filters.any("exited", |c| {
                observed.status == "exited" && c.parse() == Ok(observed.exit_code)
            })
            && filters.any("network", |n| networks.iter().any(|x| x == n))
            && filters.any("ancestor", |a| {
                record.image == a || record.image_id.starts_with(a)
            })
            && filters.labels_match(&record.request.labels);
        if keep {
            out.push(summary_json(&agent, &record, now)?);
        }
    }
    Ok(Json(out))
}

async fn inspect(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = agent.find_container(&id)?;
    Ok(Json(inspect_json(&agent, &record)?))
}

async fn start(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    agent.start_container(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn query_i64(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::new(ErrorKind::Invalid, format!("invalid {key} value {v:?}"))
            })
        })
        .transpose()
}

async fn stop(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> Result<StatusCode, ApiError> {
    let timeout = query_i64(&query, "t")?.or(query_i64(&query, "timeout")?);
    let signal = query
        .get("signal")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    agent.stop_container(&id, timeout, signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> Result<StatusCode, ApiError> {
    agent
        .kill_container(&id, query.get("signal").map(String::as_str))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> Result<StatusCode, ApiError> {
    let force = query_bool(query.get("force").map(String::as_str));
    agent.remove_container(&id, force).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Headers go out at once (the client may start the container only after that); the body
/// follows when the condition is met.
async fn wait(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> Result<Response<Body>, ApiError> {
    let condition = query.get("condition").cloned().unwrap_or_default();
    let rx = agent.wait_container(&id, &condition)?;
    let body = futures::stream::once(async move {
        let text = match rx.await {
            Ok(code) => json!({"StatusCode": code, "Error": null}).to_string(),
            Err(_) => json!({"StatusCode": -1, "Error": {"Message": "the agent is shutting down"}})
                .to_string(),
        };
        Ok::<_, Infallible>(Bytes::from(text + "\n"))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .expect("valid response"))
}

/// One multiplexed frame: `[stream, 0, 0, 0, len as u32 BE]` then the payload.
pub fn frame(stream: u8, payload: &[u8]) -> Bytes {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

fn wanted(query: &HashMap<String, String>, stream: Stream) -> bool {
    let key = match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    query_bool(query.get(key).map(String::as_str))
}

fn entry_frames(
    mut rx: mpsc::Receiver<LogEntry>,
    query: HashMap<String, String>,
    timestamps: bool,
) -> mpsc::Receiver<Bytes> {
    let (tx, out) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(entry) = rx.recv().await {
            if !wanted(&query, entry.stream) {
                continue;
            }
            let payload = if timestamps {
                let t = std::time::UNIX_EPOCH
                    + std::time::Duration::from_nanos(u64::try_from(entry.time).unwrap_or(0));
                format!("{} {}", rfc3339(t), entry.log)
            } else {
                entry.log
            };
            if tx
                .send(frame(entry.stream.frame_id(), payload.as_bytes()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    out
}

fn output_frames(mut rx: mpsc::Receiver<Output>) -> mpsc::Receiver<Bytes> {
    let (tx, out) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            // Keep consuming after the client left: the exec's exit code waits on it.
            let _ = tx
                .send(frame(chunk.stream.frame_id(), chunk.data.as_bytes()))
                .await;
        }
    });
    out
}

fn body_of(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Body::from_stream(stream)
}

const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

/// Answer a hijack request: `101 UPGRADED` and the frames written to the raw connection
/// (whatever the client sends, including its half-close, is ignored); without `Upgrade`,
/// a 200 whose body is the same frames.
fn hijack(mut req: Request, frames: mpsc::Receiver<Bytes>) -> Response<Body> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| !v.is_empty());
    if !upgrade {
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, MULTIPLEXED)
            .body(body_of(frames))
            .expect("valid response");
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut frames = frames;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "hijack failed");
                while frames.recv().await.is_some() {}
                return;
            }
        };
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        let mut open = true;
        while let Some(bytes) = frames.recv().await {
            if open && io.write_all(&bytes).await.is_err() {
                open = false; // keep draining so the producer finishes
            }
        }
        let _ = io.flush().await;
        let _ = io.shutdown().await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, MULTIPLEXED)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .expect("valid response")
}

async fn attach(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    Query(query): Q,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let stream = query_bool(query.get("stream").map(String::as_str));
    let past = query_bool(query.get("logs").map(String::as_str));
    let entries = agent.container_output(
        &id,
        LogOptions {
            follow: stream,
            tail: None,
            attach: stream && !past,
        },
    )?;
    Ok(hijack(req, entry_frames(entries, query, false)))
}

async fn logs(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    Query(query): Q,
    _headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    if !wanted(&query, Stream::Stdout) && !wanted(&query, Stream::Stderr) {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            "you must choose at least one stream",
        ));
    }
    let tail =
        match query.get("tail").map(String::as_str) {
            None | Some("") | Some("all") => None,
            Some(n) => Some(n.parse::<usize>().map_err(|_| {
                ApiError::new(ErrorKind::Invalid, format!("invalid tail value {n:?}"))
            })?),
        };
    let follow = query_bool(query.get("follow").map(String::as_str));
    let timestamps = query_bool(query.get("timestamps").map(String::as_str));
    let entries = agent.container_output(
        &id,
        LogOptions {
            follow,
            tail,
            attach: false,
        },
    )?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, MULTIPLEXED)
        .body(body_of(entry_frames(entries, query, timestamps)))
        .expect("valid response"))
}

async fn exec_create(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ExecCreateRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    request.unsupported.refuse("", EXEC_TOLERATED)?;
    let id = agent.create_exec(&id, request)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExecStartRequest {
    #[serde(default, deserialize_with = "null_as_default")]
    detach: bool,
    #[serde(flatten)]
    unsupported: Unsupported,
}

async fn exec_start(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::new(ErrorKind::Invalid, format!("read request body: {e}")))?;
    let start: ExecStartRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        ExecStartRequest::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(ErrorKind::Invalid, format!("malformed JSON body: {e}")))?
    };
    start.unsupported.refuse("", EXEC_TOLERATED)?;
    let output = agent.start_exec(&id).await?;
    let req = Request::from_parts(parts, Body::empty());
    if start.detach {
        tokio::spawn(async move {
            let mut output = output;
            while output.recv().await.is_some() {}
        });
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .expect("valid response"));
    }
    Ok(hijack(req, output_frames(output)))
}

async fn exec_inspect(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let exec = agent.exec_record(&id)?;
    Ok(Json(json!({
        "ID": exec.id,
        "Running": exec.running,
        "ExitCode": exec.exit_code,
        "ProcessConfig": {
            "entrypoint": exec.process.args.first(),
            "arguments": exec.process.args.iter().skip(1).collect::<Vec<_>>(),
            "privileged": false,
            "tty": false,
            "user": exec.process.user,
        },
        "OpenStdin": false,
        "OpenStderr": true,
        "OpenStdout": true,
        "CanRemove": false,
        "ContainerID": exec.container_id,
        "DetachKeys": "",
        "Pid": exec.pid,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of Docker's ContainerConfig, HostConfig and EndpointSettings (Engine API
    /// 1.50) with a value a user could set. Each is either implemented (`true`: the request
    /// type models it) or refused when set (`false`); nothing is accepted and ignored.
    const CONFIG_FIELDS: &[(&str, &str, bool)] = &[
        ("Hostname", r#""h""#, true),
        ("Domainname", r#""example.org""#, false),
        ("User", r#""nobody""#, true),
        ("AttachStdin", "true", false),
        ("AttachStdout", "false", false),
        ("AttachStderr", "false", false),
        ("ExposedPorts", r#"{"80/tcp":{}}"#, true),
        ("Tty", "true", false),
        ("OpenStdin", "true", false),
        ("StdinOnce", "true", false),
        ("Env", r#"["A=1"]"#, true),
        ("Cmd", r#"["true"]"#, true),
        ("Healthcheck", r#"{"Test":["CMD","true"]}"#, false),
        ("ArgsEscaped", "true", false),
        ("Image", r#""bb""#, true),
        ("Volumes", r#"{"/data":{}}"#, false),
        ("WorkingDir", r#""/w""#, true),
        ("Entrypoint", r#"["sh"]"#, true),
        ("NetworkDisabled", "true", false),
        ("MacAddress", r#""02:42:ac:11:00:02""#, false),
        ("OnBuild", r#"["RUN true"]"#, false),
        ("Labels", r#"{"a":"b"}"#, true),
        ("StopSignal", r#""SIGINT""#, false),
        ("StopTimeout", "5", false),
        ("Shell", r#"["/bin/sh","-c"]"#, false),
    ];
    const HOST_CONFIG_FIELDS: &[(&str, &str, bool)] = &[
        ("CpuShares", "512", false),
        ("Memory", "67108864", true),
        ("CgroupParent", r#""x""#, false),
        ("BlkioWeight", "300", false),
        (
            "BlkioWeightDevice",
            r#"[{"Path":"/dev/sda","Weight":300}]"#,
            false,
        ),
        (
            "BlkioDeviceReadBps",
            r#"[{"Path":"/dev/sda","Rate":1}]"#,
            false,
        ),
        (
            "BlkioDeviceWriteBps",
            r#"[{"Path":"/dev/sda","Rate":1}]"#,
            false,
        ),
        (
            "BlkioDeviceReadIOps",
            r#"[{"Path":"/dev/sda","Rate":1}]"#,
            false,
        ),
        (
            "BlkioDeviceWriteIOps",
            r#"[{"Path":"/dev/sda","Rate":1}]"#,
            false,
        ),
        ("CpuPeriod", "100000", false),
        ("CpuQuota", "50000", false),
        ("CpuRealtimePeriod", "1000", false),
        ("CpuRealtimeRuntime", "100", false),
        ("CpusetCpus", r#""0""#, false),
        ("CpusetMems", r#""0""#, false),
        ("Devices", r#"[{"PathOnHost":"/dev/null"}]"#, true),
        ("DeviceCgroupRules", r#"["c 1:3 r"]"#, true),
        ("DeviceRequests", r#"[{"Count":-1}]"#, false),
        ("KernelMemoryTCP", "1024", false),
        ("MemoryReservation", "1024", false),
        ("MemorySwap", "1024", false),
        ("MemorySwappiness", "10", false),
        ("NanoCpus", "500000000", true),
        ("OomKillDisable", "true", false),
        ("Init", "false", true),
        ("PidsLimit", "10", true),
        ("Ulimits", r#"[{"Name":"nofile","Soft":1,"Hard":1}]"#, true),
        ("CpuCount", "1", false),
        ("CpuPercent", "1", false),
        ("IOMaximumIOps", "1", false),
        ("IOMaximumBandwidth", "1", false),
        ("Binds", r#"["/a:/b"]"#, false),
        ("ContainerIDFile", r#""/tmp/cid""#, false),
        ("LogConfig", r#"{"Type":"syslog"}"#, false),
        ("NetworkMode", r#""none""#, true),
        ("PortBindings", r#"{"80/tcp":[{"HostPort":"8080"}]}"#, true),
        ("RestartPolicy", r#"{"Name":"always"}"#, false),
        ("AutoRemove", "true", true),
        ("VolumeDriver", r#""local""#, false),
        ("VolumesFrom", r#"["other"]"#, false),
        ("Mounts", r#"[{"Type":"tmpfs","Target":"/t"}]"#, false),
        ("ConsoleSize", "[24,80]", false),
        ("Annotations", r#"{"a":"b"}"#, false),
        ("CapAdd", r#"["NET_ADMIN"]"#, true),
        ("CapDrop", r#"["KILL"]"#, true),
        ("CgroupnsMode", r#""host""#, true),
        ("Dns", r#"["1.1.1.1"]"#, false),
        ("DnsOptions", r#"["ndots:1"]"#, false),
        ("DnsSearch", r#"["example.org"]"#, false),
        ("ExtraHosts", r#"["a:1.2.3.4"]"#, false),
        ("GroupAdd", r#"["27"]"#, true),
        ("IpcMode", r#""host""#, false),
        ("Cgroup", r#""container:x""#, false),
        ("Links", r#"["other:alias"]"#, false),
        ("OomScoreAdj", "100", false),
        ("PidMode", r#""host""#, false),
        ("Privileged", "true", true),
        ("PublishAllPorts", "true", false),
        ("ReadonlyRootfs", "true", true),
        ("SecurityOpt", r#"["no-new-privileges"]"#, true),
        ("StorageOpt", r#"{"size":"1G"}"#, false),
        ("Tmpfs", r#"{"/run":""}"#, false),
        ("UTSMode", r#""host""#, false),
        ("UsernsMode", r#""host""#, true),
        ("ShmSize", "1024", false),
        ("Sysctls", r#"{"net.ipv4.ip_forward":"1"}"#, true),
        ("Runtime", r#""runc""#, false),
        ("Isolation", r#""hyperv""#, false),
        ("MaskedPaths", r#"["/proc/kcore"]"#, true),
        ("ReadonlyPaths", r#"["/proc/sys"]"#, true),
    ];
    const ENDPOINT_FIELDS: &[(&str, &str, bool)] = &[
        ("IPAMConfig", r#"{"IPv4Address":"10.0.0.2"}"#, true),
        ("Links", r#"["other"]"#, false),
        ("MacAddress", r#""02:42:ac:11:00:02""#, false),
        ("Aliases", r#"["www"]"#, true),
        ("DriverOpts", r#"{"a":"b"}"#, false),
        ("GwPriority", "5", false),
    ];

    /// Parse `{field: value}` at `path` in a create request and run the refusal check.
    fn check_field(
        path: &[&str],
        field: &str,
        value: &str,
    ) -> (ContainerCreateRequest, Result<(), ApiError>) {
        let mut json = format!(r#"{{"{field}":{value}}}"#);
        for outer in path.iter().rev() {
            json = format!(r#"{{"{outer}":{json}}}"#);
        }
        let req: ContainerCreateRequest =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let checked = req.refuse_unsupported();
        (req, checked)
    }

    #[test]
    fn every_docker_field_is_implemented_or_refused() {
        for (path, fields) in [
            (&[][..], CONFIG_FIELDS),
            (&["HostConfig"][..], HOST_CONFIG_FIELDS),
            (
                &["NetworkingConfig", "EndpointsConfig", "net"][..],
                ENDPOINT_FIELDS,
            ),
        ] {
            for (field, value, implemented) in fields {
                let (req, checked) = check_field(path, field, value);
                let unsupported = match path.first() {
                    None => &req.unsupported,
                    Some(&"HostConfig") => &req.host_config.as_ref().unwrap().unsupported,
                    Some(_) => {
                        &req.networking_config.as_ref().unwrap().endpoints_config["net"].unsupported
                    }
                };
                if *implemented {
                    assert!(
                        !unsupported.0.contains_key(*field),
                        "{field} should be modeled"
                    );
                    assert!(checked.is_ok(), "{field}: {:?}", checked.err());
                } else {
                    assert!(
                        unsupported.0.contains_key(*field),
                        "{field} is modeled: list it as implemented"
                    );
                    // Informational fields are tolerated; everything else set is refused by name.
                    let informational = matches!(
                        *field,
                        "AttachStdout"
                            | "AttachStderr"
                            | "ArgsEscaped"
                            | "ConsoleSize"
                            | "ContainerIDFile"
                    );
                    match checked {
                        Ok(()) => {
                            assert!(informational, "{field}={value} was accepted and ignored")
                        }
                        Err(e) => assert!(e.0.to_string().contains(field), "{field}: {}", e.0),
                    }
                }
            }
        }
        // Null stands for "not set" everywhere (Go's decoder takes it as the zero value).
        for (path, fields) in [
            (&[][..], CONFIG_FIELDS),
            (&["HostConfig"][..], HOST_CONFIG_FIELDS),
        ] {
            for (field, _, _) in fields {
                let (_, checked) = check_field(path, field, "null");
                assert!(checked.is_ok(), "{field}: null refused");
            }
        }
    }

    #[test]
    fn frames_have_docker_headers() {
        let f = frame(2, b"hi");
        assert_eq!(&f[..], &[2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn create_bodies_from_the_docker_cli_parse() {
        let body = r#"{"Hostname":"","Env":null,"Cmd":["httpd","-f"],"Image":"bb:1","Entrypoint":null,
            "Labels":{},"ExposedPorts":{"80/tcp":{}},
            "HostConfig":{"NetworkMode":"lab","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},
                          "AutoRemove":true,"Memory":0,"PidsLimit":null,"NanoCpus":0},
            "NetworkingConfig":{"EndpointsConfig":{"lab":{"Aliases":["www"],"IPAMConfig":null}}}}"#;
        let req: ContainerCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.cmd, ["httpd", "-f"]);
        let host = req.host_config.unwrap();
        assert!(host.auto_remove);
        assert_eq!(host.port_bindings["80/tcp"][0].host_port, "8080");
        let eps = req.networking_config.unwrap().endpoints_config;
        assert_eq!(eps["lab"].aliases, ["www"]);
        let s: ContainerCreateRequest =
            serde_json::from_str(r#"{"Image":"x","Cmd":"echo hi"}"#).unwrap();
        assert_eq!(s.cmd, ["echo hi"]);
    }
}
