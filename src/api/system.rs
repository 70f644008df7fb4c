//! System endpoints: `/_ping` (version negotiation), `/version` and `/info`, with the fields the
//! docker CLI and docker-compose read.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::agent::Agent;
use crate::api::{API_VERSION, MIN_API_VERSION};

pub fn routes() -> Router<Arc<Agent>> {
    // GET routes also answer HEAD (axum drops the body), which `docker` uses for /_ping.
    Router::new()
        .route("/_ping", get(|| async { "OK" }))
        .route("/version", get(version))
        .route("/info", get(info))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VersionComponent {
    pub name: String,
    pub version: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Platform {
    #[serde(rename = "Name")]
    pub name: String,
}

/// `GET /version`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VersionInfo {
    pub platform: Platform,
    pub components: Vec<VersionComponent>,
    pub version: String,
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    pub git_commit: String,
    pub go_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    pub build_time: String,
}

/// Docker reports Go's architecture names.
pub fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn version_info() -> VersionInfo {
    let commit = env!("WARREN_GIT_COMMIT").to_string();
    let rustc = env!("WARREN_RUSTC_VERSION").to_string();
    let details = serde_json::json!({
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": commit,
        "GoVersion": rustc,
        "Os": "linux",
        "Arch": docker_arch(),
        "KernelVersion": kernel_release(),
    });
    VersionInfo {
        platform: Platform {
            name: format!("Warren {}", crate::VERSION),
        },
        components: vec![VersionComponent {
            name: "Engine".into(),
            version: crate::VERSION.into(),
            details,
        }],
        version: crate::VERSION.into(),
        api_version: API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        git_commit: commit,
        go_version: rustc,
        os: "linux".into(),
        arch: docker_arch().into(),
        kernel_version: kernel_release(),
        build_time: String::new(),
    }
}

async fn version() -> Json<VersionInfo> {
    Json(version_info())
}

/// `GET /info`: the subset of dockerd's fields that mean something for Warren.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SystemInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub server_version: String,
    pub containers: u64,
    pub containers_running: u64,
    pub containers_paused: u64,
    pub containers_stopped: u64,
    pub images: u64,
    pub plugins: Plugins,
    pub kernel_version: String,
    pub operating_system: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    pub architecture: String,
    #[serde(rename = "NCPU")]
    pub ncpu: u64,
    pub mem_total: u64,
    pub docker_root_dir: String,
    pub cgroup_driver: String,
    pub cgroup_version: String,
    pub debug: bool,
    pub swarm: Swarm,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Plugins {
    pub volume: Vec<String>,
    pub network: Vec<String>,
    pub authorization: Option<Vec<String>>,
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Swarm {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_addr: String,
    pub local_node_state: String,
    pub control_available: bool,
    pub error: String,
}

fn operating_system() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// "2" when /sys/fs/cgroup is the unified hierarchy, else "1" (v1 or hybrid).
pub fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

pub fn system_info(agent: &Agent) -> SystemInfo {
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    SystemInfo {
        id: agent.id.clone(),
        name: hostname,
        server_version: crate::VERSION.into(),
        containers: 0,
        containers_running: 0,
        containers_paused: 0,
        containers_stopped: 0,
        images: agent.images.list().len() as u64,
        plugins: Plugins {
            network: agent.network_drivers(),
            ..Plugins::default()
        },
        kernel_version: kernel_release(),
        operating_system: operating_system(),
        os_type: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        ncpu: std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1),
        mem_total: mem_total_bytes(),
        docker_root_dir: agent.config.data_root.display().to_string(),
        cgroup_driver: "cgroupfs".into(),
        cgroup_version: cgroup_version().into(),
        debug: agent.config.debug,
        swarm: Swarm {
            node_id: String::new(),
            node_addr: String::new(),
            local_node_state: "inactive".into(),
            control_available: false,
            error: String::new(),
        },
        warnings: Vec::new(),
    }
}

async fn info(State(agent): State<Arc<Agent>>) -> Json<SystemInfo> {
    Json(system_info(&agent))
}
