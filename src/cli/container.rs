//! Container commands, shaped like docker's: `create`, `run`, `start`, `ps`, `stop`, `kill`,
//! `rm`, `logs`, `exec`, `inspect`, `wait`. `run` without `-d` does what the docker CLI does:
//! wait (registered before start, so no exit is missed) + attach, then start, print the
//! output as it comes, and exit with the container's exit code.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use crate::agent::containers::{parse_cpus, parse_memory};
use crate::api::client::{encode_query, Client};
use crate::api::containers::{
    ContainerCreateRequest, ExecCreateRequest, HostConfig, NetworkingConfig, PortBinding,
};
use crate::api::types::{EndpointIpamConfig, EndpointSettings};
use crate::cli::output::{inspect_format, print_inspect, print_json, table, Format};
use crate::cli::template::Template;
use crate::cli::GlobalOptions;
use crate::error::{Error, ErrorKind};
use crate::firewall::{parse_port_spec, HostPort};
use crate::runtime::confine::{DeviceMapping, Ulimit};

/// Options of `create` and `run`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Container host name
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set an environment variable (KEY=VALUE); repeatable
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Connect to a network (bridge, host, none or a user network); repeatable
    #[arg(long = "network", alias = "net", value_name = "NET")]
    pub networks: Vec<String>,
    /// IPv4 address on the (first) network
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// Network-scoped alias on the (first) network; repeatable
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub aliases: Vec<String>,
    /// Publish a port, [HOSTIP:][HOSTPORT:]CTRPORT[/PROTO]; repeatable
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Memory limit, e.g. 64m
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Limit on the number of processes (0 or -1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Number of CPUs, e.g. 1.5
    #[arg(long)]
    pub cpus: Option<String>,
    /// Run the built-in init as PID 1 (default true; --init=false makes the command PID 1)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub init: Option<bool>,
    /// Every capability, no seccomp, every device, writable /sys and /proc/sys (as docker)
    #[arg(long)]
    pub privileged: bool,
    /// Add a capability (NET_ADMIN, CAP_SYS_TIME, ALL); repeatable
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (ALL drops every one); repeatable
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false], systempaths=unconfined
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add a supplementary group (name or gid); repeatable
    #[arg(long = "group-add", value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Give access to a host device, HOST[:CONTAINER][:rwm]; repeatable
    #[arg(long = "device", value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Allow devices in the device cgroup, e.g. "c 1:3 rwm"; repeatable
    #[arg(long = "device-cgroup-rule", value_name = "RULE")]
    pub device_cgroup_rules: Vec<String>,
    /// Set a namespaced sysctl (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*); repeatable
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctls: Vec<String>,
    /// Set a resource limit, e.g. nofile=1024:2048; repeatable
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Cgroup namespace: private or host (default: the daemon's, private unless configured)
    #[arg(long, value_name = "MODE")]
    pub cgroupns: Option<String>,
    /// Image: a name from `warren image ls`, or an absolute path to a root filesystem dir
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running only)
    #[arg(short, long)]
    pub all: bool,
    /// Only IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter, e.g. status=exited, name=web, label=a=b
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing (default 10; -1 waits forever)
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_hyphen_values = true
    )]
    pub time: Option<i64>,
    /// Signal to send first (default SIGTERM)
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send (default KILL)
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow output
    #[arg(short, long)]
    pub follow: bool,
    /// Lines from the end ("all" or a number)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Set an environment variable; repeatable
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Run in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Give the process every capability the container could be given
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Options of `inspect`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  warren inspect -f '{{.NetworkSettings.IPAddress}}' web")]
pub struct InspectArgs {
    /// Print each container through a Go template (see the README), or `json` for one JSON
    /// document per line
    #[arg(short, long, value_name = "TEMPLATE", value_parser = inspect_format)]
    pub format: Option<Template>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::msg(ErrorKind::Invalid, message)
}

/// Docker's request for `create`/`run` flags, validated client-side for clear messages (the
/// agent checks again).
pub fn create_request(
    args: &CreateArgs,
    auto_remove: bool,
) -> Result<ContainerCreateRequest, Error> {
    let mut port_bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for spec in &args.publish {
        for p in parse_port_spec(spec)? {
            let host_port = match p.host_port {
                HostPort::Ephemeral => String::new(),
                HostPort::Fixed(n) => n.to_string(),
                HostPort::OneOf { start, end } => format!("{start}-{end}"),
            };
            port_bindings
                .entry(format!("{}/{}", p.container_port, p.proto))
                .or_default()
                .push(PortBinding {
                    host_ip: p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    host_port,
                });
        }
    }
    let memory = args
        .memory
        .as_deref()
        .map(parse_memory)
        .transpose()?
        .unwrap_or(0);
    let nano_cpus = args
        .cpus
        .as_deref()
        .map(parse_cpus)
        .transpose()?
        .unwrap_or(0);
    let mut endpoints = BTreeMap::new();
    for (i, net) in args.networks.iter().enumerate() {
        let mut settings = EndpointSettings::default();
        if i == 0 {
            settings.aliases = args.aliases.clone();
            if let Some(ip) = &args.ip {
                settings.ipam_config = Some(EndpointIpamConfig {
                    ipv4_address: ip.clone(),
                    ..Default::default()
                });
            }
        }
        endpoints.insert(net.clone(), settings);
    }
    if args.networks.is_empty() && (args.ip.is_some() || !args.aliases.is_empty()) {
        return Err(invalid(
            "--ip and --network-alias need a user-defined network (--network NET)",
        ));
    }
    Ok(ContainerCreateRequest {
        hostname: args.hostname.clone().unwrap_or_default(),
        user: args.user.clone().unwrap_or_default(),
        env: args.env.clone(),
        cmd: args.command.clone(),
        entrypoint: args.entrypoint.clone().into_iter().collect(),
        image: args.image.clone(),
        working_dir: args.workdir.clone().unwrap_or_default(),
        host_config: Some(HostConfig {
            network_mode: args.networks.first().cloned().unwrap_or_default(),
            port_bindings,
            auto_remove,
            memory,
            pids_limit: args.pids_limit,
            nano_cpus,
            init: args.init,
            ..confinement_options(args)?
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: endpoints,
        }),
        ..Default::default()
    })
}

/// The confinement flags as Docker's HostConfig fields. A `seccomp=FILE` option sends the
/// file's content, as the docker CLI does (the agent may run on another machine).
fn confinement_options(args: &CreateArgs) -> Result<HostConfig, Error> {
    let mut security_opt = Vec::new();
    for opt in &args.security_opt {
        let profile = opt
            .strip_prefix("seccomp=")
            .or_else(|| opt.strip_prefix("seccomp:"))
            .filter(|v| !matches!(*v, "unconfined" | "builtin"));
        match profile {
            Some(file) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    invalid(format!("opening seccomp profile ({file}) failed: {e}"))
                })?;
                security_opt.push(format!("seccomp={text}"));
            }
            None => security_opt.push(opt.clone()),
        }
    }
    let mut sysctls = BTreeMap::new();
    for kv in &args.sysctls {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| invalid(format!("invalid --sysctl {kv:?}: expected KEY=VALUE")))?;
        sysctls.insert(k.to_string(), v.to_string());
    }
    let ulimits = args
        .ulimits
        .iter()
        .map(|u| Ulimit::parse(u).map_err(|e| invalid(format!("invalid --ulimit {u:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HostConfig {
        privileged: args.privileged,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        security_opt,
        readonly_rootfs: args.read_only,
        group_add: args.group_add.clone(),
        devices: args.devices.iter().map(|d| device_mapping(d)).collect(),
        device_cgroup_rules: args.device_cgroup_rules.clone(),
        sysctls,
        ulimits,
        cgroupns_mode: args.cgroupns.clone().unwrap_or_default(),
        ..HostConfig::default()
    })
}

/// `HOST[:CONTAINER][:PERMISSIONS]`, split as the docker CLI does: a last part made only of
/// r, w and m is the permissions.
fn device_mapping(spec: &str) -> DeviceMapping {
    let parts: Vec<&str> = spec.split(':').collect();
    let is_permissions = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, container, permissions) = match parts.as_slice() {
        [host] => (*host, "", ""),
        [host, last] if is_permissions(last) => (*host, "", *last),
        [host, container] => (*host, *container, ""),
        [host, container, permissions, ..] => (*host, *container, *permissions),
        [] => ("", "", ""),
    };
    DeviceMapping {
        path_on_host: host.to_string(),
        path_in_container: container.to_string(),
        cgroup_permissions: permissions.to_string(),
    }
}

async fn create(
    global: &GlobalOptions,
    args: &CreateArgs,
    auto_remove: bool,
) -> Result<String, Error> {
    let client = global.client()?;
    let request = create_request(args, auto_remove)?;
    let path = match &args.name {
        Some(n) => format!("/containers/create?name={}", encode_query(n)),
        None => "/containers/create".to_string(),
    };
    let answer: Value = client.post(&path, &request).await?;
    if let Some(warnings) = answer["Warnings"].as_array() {
        for w in warnings.iter().filter_map(Value::as_str) {
            eprintln!("WARNING: {w}");
        }
    }
    answer["Id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::msg(ErrorKind::Internal, "the agent returned no container id"))
}

pub async fn create_cmd(global: &GlobalOptions, args: &CreateArgs) -> Result<(), Error> {
    println!("{}", create(global, args, false).await?);
    Ok(())
}

/// Write demultiplexed frames of a streaming body to stdout/stderr.
async fn demux(body: hyper::body::Incoming) -> Result<(), Error> {
    let mut body = body;
    let mut buf: Vec<u8> = Vec::new();
    let mut raw = false;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::msg(ErrorKind::Internal, format!("read the stream: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        raw |= drain_frames(&mut buf, raw);
    }
    Ok(())
}

/// Print every complete frame in `buf`; returns true when the stream turned out not to be
/// multiplexed (then it is copied as is).
fn drain_frames(buf: &mut Vec<u8>, raw: bool) -> bool {
    let mut out = std::io::stdout().lock();
    if raw || (buf.len() >= 8 && !matches!(buf[0], 0..=3 | 0xff)) {
        let _ = out.write_all(buf);
        let _ = out.flush();
        buf.clear();
        return true;
    }
    let mut err = std::io::stderr().lock();
    while buf.len() >= 8 {
        let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            break;
        }
        let payload = &buf[8..8 + len];
        let _ = match buf[0] {
            2 | 3 => err.write_all(payload).and_then(|()| err.flush()),
            _ => out.write_all(payload).and_then(|()| out.flush()),
        };
        buf.drain(..8 + len);
    }
    false
}

/// Docker run's exit status for a container that could not start.
fn start_failure_code(err: &Error) -> i32 {
    let m = err.to_string();
    if m.contains("executable file not found") || m.contains("no such file") {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        125
    }
}

pub async fn run_cmd(global: &GlobalOptions, args: &RunArgs) -> Result<(), Error> {
    let id = create(global, &args.create, args.rm).await?;
    let client = global.client()?;
    if args.detach {
        client
            .post_empty(&format!("/containers/{id}/start"), &serde_json::json!({}))
            .await?;
        println!("{id}");
        return Ok(());
    }
    let condition = if args.rm { "removed" } else { "next-exit" };
    let wait = client
        .stream(
            Method::POST,
            &format!("/containers/{id}/wait?condition={condition}"),
            None,
            false,
        )
        .await?;
    let attach = client
        .stream(
            Method::POST,
            &format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1"),
            None,
            false,
        )
        .await?;
    let printer = tokio::spawn(demux(attach.into_body()));
    if let Err(e) = client
        .post_empty(&format!("/containers/{id}/start"), &serde_json::json!({}))
        .await
    {
        let e: Error = e.into();
        eprintln!("warren: {e}");
        printer.abort();
        exit_with(start_failure_code(&e));
    }
    let _ = printer.await;
    let body = wait
        .into_body()
        .collect()
        .await
        .map_err(|e| Error::msg(ErrorKind::Internal, format!("wait for the container: {e}")))?
        .to_bytes();
    let status: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let code = status["StatusCode"].as_i64().unwrap_or(255);
    exit_with(i32::try_from(code).unwrap_or(255));
}

/// Leave with the container's exit code (what `docker run` and `docker exec` do).
fn exit_with(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

pub async fn start_cmd(global: &GlobalOptions, args: &NamesArgs) -> Result<(), Error> {
    let client = global.client()?;
    for c in &args.containers {
        let answer = client
            .send(
                Method::POST,
                &format!("/containers/{}/start", encode_query(c)),
                Some(b"{}".to_vec()),
            )
            .await?;
        if !answer.status.is_success() && answer.status.as_u16() != 304 {
            return Err(client
                .call(
                    Method::POST,
                    &format!("/containers/{}/start", encode_query(c)),
                    Some(b"{}".to_vec()),
                )
                .await
                .err()
                .map(Error::from)
                .unwrap_or_else(|| Error::msg(ErrorKind::Internal, "start failed")));
        }
        println!("{c}");
    }
    Ok(())
}

fn ago(unix: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(u64::try_from(unix).unwrap_or(0));
    let d = Duration::from_secs(secs);
    let text = match d.as_secs() {
        0..=1 => "Less than a second".to_string(),
        s @ 2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        s @ 120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        s @ 7200..=172_799 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    };
    format!("{text} ago")
}

pub async fn ps_cmd(global: &GlobalOptions, args: &PsArgs) -> Result<(), Error> {
    let client = global.client()?;
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &args.filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| invalid(format!("bad filter {f:?}: expected KEY=VALUE")))?;
        filters
            .entry(k.to_string())
            .or_default()
            .push(v.to_string());
    }
    let mut path = format!("/containers/json?all={}", u8::from(args.all));
    if !filters.is_empty() {
        let json = serde_json::to_string(&filters).expect("filters serialize");
        path.push_str(&format!("&filters={}", encode_query(&json)));
    }
    let list: Vec<Value> = client.get(&path).await?;
    if args.format == Format::Json {
        print_json(&list);
        return Ok(());
    }
    let trunc = |s: &str, n: usize| -> String {
        if args.no_trunc {
            s.to_string()
        } else {
            s.chars().take(n).collect()
        }
    };
    if args.quiet {
        for c in &list {
            println!("{}", trunc(c["Id"].as_str().unwrap_or_default(), 12));
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let ports: Vec<String> = c["Ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!(
                                "{}:{}->{}/{}",
                                p["IP"].as_str().unwrap_or(""),
                                p["PublicPort"],
                                p["PrivatePort"],
                                p["Type"].as_str().unwrap_or("tcp")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let command = c["Command"].as_str().unwrap_or_default();
            vec![
                trunc(c["Id"].as_str().unwrap_or_default(), 12),
                c["Image"].as_str().unwrap_or_default().to_string(),
                format!("\"{}\"", trunc(command, 20)),
                ago(c["Created"].as_i64().unwrap_or(0)),
                c["Status"].as_str().unwrap_or_default().to_string(),
                ports.join(", "),
                c["Names"][0]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES"
            ],
            &rows
        )
    );
    Ok(())
}

pub async fn stop_cmd(global: &GlobalOptions, args: &StopArgs) -> Result<(), Error> {
    let client = global.client()?;
    for c in &args.containers {
        let mut path = format!("/containers/{}/stop", encode_query(c));
        let mut sep = '?';
        if let Some(t) = args.time {
            path.push_str(&format!("{sep}t={t}"));
            sep = '&';
        }
        if let Some(s) = &args.signal {
            path.push_str(&format!("{sep}signal={}", encode_query(s)));
        }
        let answer = client.send(Method::POST, &path, None).await?;
        if !answer.status.is_success() && answer.status.as_u16() != 304 {
            return Err(client
                .call(Method::POST, &path, None)
                .await
                .err()
                .map(Error::from)
                .unwrap_or_else(|| Error::msg(ErrorKind::Internal, "stop failed")));
        }
        println!("{c}");
    }
    Ok(())
}

pub async fn kill_cmd(global: &GlobalOptions, args: &KillArgs) -> Result<(), Error> {
    let client = global.client()?;
    for c in &args.containers {
        client
            .call(
                Method::POST,
                &format!(
                    "/containers/{}/kill?signal={}",
                    encode_query(c),
                    encode_query(&args.signal)
                ),
                None,
            )
            .await?;
        println!("{c}");
    }
    Ok(())
}

pub async fn rm_cmd(global: &GlobalOptions, args: &RmArgs) -> Result<(), Error> {
    let client = global.client()?;
    let mut failed = None;
    for c in &args.containers {
        match client
            .delete(&format!(
                "/containers/{}?force={}",
                encode_query(c),
                u8::from(args.force)
            ))
            .await
        {
            Ok(()) => println!("{c}"),
            // Like docker: try every container, report each failure, fail if any failed.
            Err(e) => {
                if let Some(previous) = failed.replace(Error::from(e)) {
                    eprintln!("warren: {previous}");
                }
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

pub async fn logs_cmd(global: &GlobalOptions, args: &LogsArgs) -> Result<(), Error> {
    let client = global.client()?;
    if args.tail != "all" && args.tail.parse::<usize>().is_err() {
        return Err(invalid(format!(
            "invalid --tail value {:?}: a number or \"all\"",
            args.tail
        )));
    }
    let path = format!(
        "/containers/{}/logs?stdout=1&stderr=1&follow={}&timestamps={}&tail={}",
        encode_query(&args.container),
        u8::from(args.follow),
        u8::from(args.timestamps),
        encode_query(&args.tail)
    );
    let response = client.stream(Method::GET, &path, None, false).await?;
    demux(response.into_body()).await
}

pub async fn exec_cmd(global: &GlobalOptions, args: &ExecArgs) -> Result<(), Error> {
    let client = global.client()?;
    let request = ExecCreateRequest {
        cmd: args.command.clone(),
        env: args.env.clone(),
        working_dir: args.workdir.clone().unwrap_or_default(),
        user: args.user.clone().unwrap_or_default(),
        privileged: args.privileged,
        ..Default::default()
    };
    let created: Value = client
        .post(
            &format!("/containers/{}/exec", encode_query(&args.container)),
            &request,
        )
        .await?;
    let id = created["Id"].as_str().unwrap_or_default().to_string();
    let body = serde_json::to_vec(&serde_json::json!({"Detach": args.detach, "Tty": false}))
        .expect("json");
    let response = client
        .stream(
            Method::POST,
            &format!("/exec/{id}/start"),
            Some(body),
            false,
        )
        .await?;
    if args.detach {
        return Ok(());
    }
    demux(response.into_body()).await?;
    let info: Value = client.get(&format!("/exec/{id}/json")).await?;
    let code = info["ExitCode"].as_i64().unwrap_or(0);
    if code != 0 {
        exit_with(i32::try_from(code).unwrap_or(255));
    }
    Ok(())
}

pub async fn inspect_cmd(global: &GlobalOptions, args: &InspectArgs) -> Result<(), Error> {
    let client = global.client()?;
    let mut out = Vec::new();
    for c in &args.containers {
        let v: Value = client
            .get(&format!("/containers/{}/json", encode_query(c)))
            .await?;
        out.push(v);
    }
    print_inspect(&out, args.format.as_ref())
}

pub async fn wait_cmd(global: &GlobalOptions, args: &NamesArgs) -> Result<(), Error> {
    let client = global.client()?;
    for c in &args.containers {
        let v: Value = client
            .post(
                &format!("/containers/{}/wait", encode_query(c)),
                &serde_json::json!({}),
            )
            .await?;
        println!("{}", v["StatusCode"]);
    }
    Ok(())
}

/// For callers that need a plain client (tests).
pub fn client(global: &GlobalOptions) -> Result<Client, Error> {
    global.client()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn run_flags_become_a_docker_request() {
        let t = T::parse_from([
            "t",
            "-d",
            "--name",
            "web",
            "--network",
            "lab",
            "--network-alias",
            "www",
            "-p",
            "8080:80",
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "20",
            "/rootfs",
            "httpd",
            "-f",
            "-p",
            "80",
        ]);
        let req = create_request(&t.run.create, false).unwrap();
        assert_eq!(req.cmd, ["httpd", "-f", "-p", "80"]);
        let host = req.host_config.unwrap();
        assert_eq!(host.network_mode, "lab");
        assert_eq!(host.port_bindings["80/tcp"][0].host_port, "8080");
        assert_eq!(host.memory, 64 << 20);
        assert_eq!(host.nano_cpus, 500_000_000);
        assert_eq!(
            req.networking_config.unwrap().endpoints_config["lab"].aliases,
            ["www"]
        );
    }

    #[test]
    fn bad_flags_are_refused_before_any_request() {
        for bad in [
            vec!["t", "-p", "80:x", "/r"],
            vec!["t", "--memory", "lots", "/r"],
            vec!["t", "--cpus", "fast", "/r"],
        ] {
            let t = T::parse_from(bad.clone());
            assert!(create_request(&t.run.create, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn frames_are_split_by_stream() {
        let mut buf = vec![1, 0, 0, 0, 0, 0, 0, 1, b'x', 2, 0, 0];
        assert!(!drain_frames(&mut buf, false));
        assert_eq!(buf, vec![2, 0, 0]);
    }
}
