//! `warrend`: flags, configuration, and the agent's lifecycle (lock the roots, bind the API,
//! serve until SIGTERM/SIGINT, then clean up the sockets).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgAction, Parser};

use crate::agent::config::{self, AddressPoolConfig, Settings};
use crate::agent::lock::RootLock;
use crate::agent::Agent;
use crate::api::host::HostAddr;
use crate::api::server::{self, Listener};
use crate::error::{Error, ErrorKind};
use crate::runtime::confine::Ulimit;

/// warrend: Warren's network agent. Serves a Docker-compatible API on a unix socket and owns
/// the bridges, veths, nftables table and DNS it creates.
#[derive(Debug, Parser)]
#[command(name = "warrend", version, after_help = DAEMON_EXAMPLES)]
pub struct DaemonArgs {
    /// Daemon configuration file (dockerd's daemon.json keys)
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// Address to listen on: unix:///path or tcp://HOST:PORT (TCP requires --tlsverify); repeatable
    #[arg(short = 'H', long = "host", value_name = "ADDR")]
    pub hosts: Vec<String>,
    /// Persistent state (store, engine id) [default: /var/lib/warren]
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Runtime state (socket, lock, per-container files) [default: /run/warren]
    #[arg(long, value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Debug logging
    #[arg(short = 'D', long, action = ArgAction::SetTrue)]
    pub debug: bool,
    /// Address and prefix of the default bridge, e.g. 172.17.0.1/16
    #[arg(long, value_name = "CIDR")]
    pub bip: Option<String>,
    /// Restrict default-bridge addresses to this range
    #[arg(long, value_name = "CIDR")]
    pub fixed_cidr: Option<String>,
    /// MTU of the default bridge and its endpoints
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Pool for user networks, "base=10.10.0.0/16,size=24"; repeatable, replaces the defaults
    #[arg(long = "default-address-pool", value_name = "POOL", value_parser = parse_pool)]
    pub default_address_pools: Vec<AddressPoolConfig>,
    /// Upstream DNS servers for containers; repeatable
    #[arg(long)]
    pub dns: Vec<std::net::IpAddr>,
    /// Use TLS; implied by --tlsverify
    #[arg(long, action = ArgAction::SetTrue)]
    pub tls: bool,
    /// Require client certificates signed by --tlscacert (mandatory for tcp://)
    #[arg(long, action = ArgAction::SetTrue)]
    pub tlsverify: bool,
    /// CA certificate that signs client certificates
    #[arg(long, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Server certificate
    #[arg(long, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Server private key
    #[arg(long, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Default seccomp profile of containers: a file in Docker's format, "builtin" or "unconfined"
    #[arg(long, value_name = "PROFILE")]
    pub seccomp_profile: Option<String>,
    /// Set no_new_privs in every container unless it asks otherwise
    #[arg(long, action = ArgAction::SetTrue)]
    pub no_new_privileges: bool,
    /// Default ulimit of containers, e.g. nofile=1024:2048; repeatable
    #[arg(long = "default-ulimit", value_name = "ULIMIT", value_parser = parse_ulimit)]
    pub default_ulimits: Vec<Ulimit>,
    /// Cgroup namespace of containers that ask for none: private or host [default: private]
    #[arg(long, value_name = "MODE")]
    pub default_cgroupns_mode: Option<String>,
    /// Not supported yet (refused with the reason)
    #[arg(long, value_name = "USER")]
    pub userns_remap: Option<String>,
}

fn parse_ulimit(text: &str) -> Result<Ulimit, String> {
    Ulimit::parse(text).map_err(|e| e.to_string())
}

const DAEMON_EXAMPLES: &str = "Examples:
  warrend                                   # defaults: /var/lib/warren, unix:///run/warren/warren.sock
  warrend --data-root /tmp/w/data --exec-root /tmp/w/run -H unix:///tmp/w/run/warren.sock
  warrend -H tcp://0.0.0.0:2376 --tlsverify --tlscacert ca.pem --tlscert server.pem --tlskey server-key.pem";

fn parse_pool(text: &str) -> Result<AddressPoolConfig, String> {
    let mut base = None;
    let mut size = None;
    for part in text.split(',') {
        match part.split_once('=') {
            Some(("base", v)) => base = Some(v.parse().map_err(|e| format!("base {v:?}: {e}"))?),
            Some(("size", v)) => size = Some(v.parse().map_err(|e| format!("size {v:?}: {e}"))?),
            _ => return Err(format!("expected base=CIDR,size=N, got {part:?}")),
        }
    }
    match (base, size) {
        (Some(base), Some(size)) => Ok(AddressPoolConfig { base, size }),
        _ => Err("expected base=CIDR,size=N".into()),
    }
}

impl DaemonArgs {
    /// The flags as a `Settings` layer, so they can be merged with daemon.json.
    fn settings(&self) -> Settings {
        fn nonempty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
            (!v.is_empty()).then(|| v.to_vec())
        }
        Settings {
            hosts: nonempty(&self.hosts),
            data_root: self.data_root.clone(),
            exec_root: self.exec_root.clone(),
            debug: self.debug.then_some(true),
            bip: self.bip.clone(),
            fixed_cidr: self.fixed_cidr.clone(),
            mtu: self.mtu,
            default_address_pools: nonempty(&self.default_address_pools),
            dns: nonempty(&self.dns),
            tls: self.tls.then_some(true),
            tlsverify: self.tlsverify.then_some(true),
            tlscacert: self.tlscacert.clone(),
            tlscert: self.tlscert.clone(),
            tlskey: self.tlskey.clone(),
            seccomp_profile: self.seccomp_profile.clone(),
            no_new_privileges: self.no_new_privileges.then_some(true),
            default_ulimits: (!self.default_ulimits.is_empty()).then(|| {
                self.default_ulimits
                    .iter()
                    .map(|u| (u.name.clone(), u.clone()))
                    .collect()
            }),
            default_cgroupns_mode: self.default_cgroupns_mode.clone(),
            userns_remap: self.userns_remap.clone(),
        }
    }
}

/// Build the configuration, then run the agent until a signal stops it.
pub fn run(args: DaemonArgs) -> Result<(), Error> {
    let explicit = args.config_file.as_path() != std::path::Path::new(config::DEFAULT_CONFIG_FILE);
    let file = Settings::from_file(&args.config_file, explicit)?;
    let config = Settings::merge(args.settings(), file)?;
    init_logging(config.debug);
    let hosts = config
        .hosts
        .iter()
        .map(|h| HostAddr::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    // Refuse insecure TCP before touching anything else.
    if config.tls.is_none() {
        if let Some(HostAddr::Tcp(addr)) = hosts.iter().find(|h| matches!(h, HostAddr::Tcp(_))) {
            return Err(server::ServeError::TcpWithoutTls { addr: addr.clone() }.into());
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::msg(ErrorKind::Internal, format!("start the async runtime: {e}")))?;
    runtime.block_on(serve(config, hosts))
}

async fn serve(config: config::DaemonConfig, hosts: Vec<HostAddr>) -> Result<(), Error> {
    // Handlers first: a SIGTERM that arrives while we start up must stop us cleanly too.
    let signals = Signals::install()?;
    let _lock = RootLock::acquire(&[&config.data_root, &config.exec_root])?;
    let mut listeners = Vec::new();
    for host in &hosts {
        listeners.push(Listener::bind(host, config.tls.as_ref()).await?);
    }
    let agent = Arc::new(Agent::new(config)?);
    agent.reconcile().await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let signal = signals.wait().await;
        tracing::info!(signal, "shutting down");
        let _ = stop_tx.send(true);
    });
    for l in &listeners {
        tracing::info!(listen = %l.describe(), "API listening");
    }
    tracing::info!(
        version = crate::VERSION,
        data_root = %agent.config.data_root.display(),
        exec_root = %agent.config.exec_root.display(),
        "warrend started"
    );
    server::serve(listeners, server::router(Arc::clone(&agent)), stop_rx).await;
    tracing::info!("warrend stopped");
    Ok(())
}

/// SIGTERM and SIGINT, caught from the moment the agent starts.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, Error> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind| {
            signal(kind).map_err(|e| {
                Error::msg(ErrorKind::Internal, format!("install signal handler: {e}"))
            })
        };
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

fn init_logging(debug: bool) {
    let default = if debug { "warren=debug,info" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_flag_parses() {
        let p = parse_pool("base=10.10.0.0/16,size=24").unwrap();
        assert_eq!(p.size, 24);
        assert!(parse_pool("base=10.10.0.0/16").is_err());
        assert!(parse_pool("size=x,base=10.0.0.0/8").is_err());
    }

    #[test]
    fn flags_become_a_settings_layer() {
        let args =
            DaemonArgs::parse_from(["warrend", "-D", "--mtu", "1400", "-H", "unix:///tmp/a.sock"]);
        let s = args.settings();
        assert_eq!(s.debug, Some(true));
        assert_eq!(s.mtu, Some(1400));
        assert_eq!(
            s.hosts.as_deref(),
            Some(&["unix:///tmp/a.sock".to_string()][..])
        );
        assert!(s.data_root.is_none() && s.tlsverify.is_none());
    }
}
