//! The `warren` command line. Commands that need the agent talk to it through
//! [`crate::api::client`]; the `netns` verbs work without it, like `ip netns`.

pub mod container;
pub mod daemon;
pub mod image;
pub mod netns;
pub mod network;
pub mod output;
pub mod system;
pub mod template;

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};

use crate::api::client::{Client, ClientTls};
use crate::api::host::HostAddr;
use crate::error::Error;

/// warren: container networking for Linux. Networks, namespaces and containers, driven like
/// `docker network …` and `ip netns …`.
#[derive(Debug, Parser)]
#[command(name = "warren", version, propagate_version = true, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every agent command shares: where the agent is and how to reach it.
#[derive(Debug, clap::Args)]
pub struct GlobalOptions {
    /// Agent address: unix:///path or tcp://HOST:PORT
    #[arg(
        short = 'H',
        long = "host",
        env = "WARREN_HOST",
        global = true,
        value_name = "ADDR",
        default_value = "unix:///run/warren/warren.sock"
    )]
    pub host: String,
    /// Use mutual TLS and verify the agent (needed for tcp://)
    #[arg(long, env = "WARREN_TLS_VERIFY", global = true, action = ArgAction::SetTrue,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub tlsverify: bool,
    /// CA certificate [default: $WARREN_CERT_PATH/ca.pem]
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Client certificate [default: $WARREN_CERT_PATH/cert.pem]
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Client private key [default: $WARREN_CERT_PATH/key.pem]
    #[arg(long, global = true, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
}

const EXAMPLES: &str = "Examples:
  warren version
  warren info --format json
  warren completion bash > /etc/bash_completion.d/warren

Environment: WARREN_HOST (like DOCKER_HOST), WARREN_TLS_VERIFY, WARREN_CERT_PATH.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show client and agent versions
    Version(system::FormatArgs),
    /// Show agent-wide information
    Info(system::FormatArgs),
    /// Manage network namespaces without the agent (like `ip netns`)
    Netns(netns::NetnsArgs),
    /// Manage networks (create, ls, inspect, rm, prune, connect, disconnect)
    Network(network::NetworkArgs),
    /// Create a container (it starts with `warren start`)
    Create(container::CreateArgs),
    /// Create and start a container; without -d, print its output and exit with its code
    Run(container::RunArgs),
    /// Start created or stopped containers
    Start(container::NamesArgs),
    /// List containers
    Ps(container::PsArgs),
    /// Stop containers (SIGTERM, then SIGKILL after -t seconds)
    Stop(container::StopArgs),
    /// Send a signal to containers
    Kill(container::KillArgs),
    /// Remove containers
    Rm(container::RmArgs),
    /// Show a container's output
    Logs(container::LogsArgs),
    /// Run a command in a running container
    Exec(container::ExecArgs),
    /// Show containers in detail (JSON, or -f TEMPLATE)
    Inspect(container::InspectArgs),
    /// Wait for containers to stop and print their exit codes
    Wait(container::NamesArgs),
    /// Manage images (import, load, ls, inspect, tag, rm)
    Image(image::ImageArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl GlobalOptions {
    /// The API client for `-H`/TLS settings (connects lazily, on the first request).
    pub fn client(&self) -> Result<Client, Error> {
        let host = HostAddr::parse(&self.host)?;
        let cert_dir = std::env::var_os("WARREN_CERT_PATH")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".warren")));
        let from_dir = |name: &str| cert_dir.as_ref().map(|d| d.join(name));
        let tls = self.tlsverify.then(|| ClientTls {
            ca: self
                .tlscacert
                .clone()
                .or_else(|| from_dir("ca.pem"))
                .unwrap_or_default(),
            cert: self.tlscert.clone().or_else(|| from_dir("cert.pem")),
            key: self.tlskey.clone().or_else(|| from_dir("key.pem")),
        });
        Ok(Client::new(host, tls))
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let global = &cli.global;
    match cli.command {
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "warren", &mut std::io::stdout());
            Ok(())
        }
        // Daemonless; `netns exec` must run before any thread (tokio) exists.
        Command::Netns(args) => netns::run(args),
        Command::Version(args) => block_on(system::version(global, &args)),
        Command::Info(args) => block_on(system::info(global, &args)),
        Command::Network(args) => block_on(network::run(global, &args)),
        Command::Create(args) => block_on(container::create_cmd(global, &args)),
        Command::Run(args) => block_on(container::run_cmd(global, &args)),
        Command::Start(args) => block_on(container::start_cmd(global, &args)),
        Command::Ps(args) => block_on(container::ps_cmd(global, &args)),
        Command::Stop(args) => block_on(container::stop_cmd(global, &args)),
        Command::Kill(args) => block_on(container::kill_cmd(global, &args)),
        Command::Rm(args) => block_on(container::rm_cmd(global, &args)),
        Command::Logs(args) => block_on(container::logs_cmd(global, &args)),
        Command::Exec(args) => block_on(container::exec_cmd(global, &args)),
        Command::Inspect(args) => block_on(container::inspect_cmd(global, &args)),
        Command::Wait(args) => block_on(container::wait_cmd(global, &args)),
        Command::Image(args) => block_on(image::run(global, &args)),
    }
}

/// Agent commands are a request or two: a current-thread runtime is all they need.
pub fn block_on<F: std::future::Future<Output = Result<(), Error>>>(
    future: F,
) -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::msg(
                crate::ErrorKind::Internal,
                format!("start the async runtime: {e}"),
            )
        })?
        .block_on(future)
}
