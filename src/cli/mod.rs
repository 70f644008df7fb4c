//! The `warren` command line: clap commands that talk to the agent through `api::client`, plus daemonless `netns` verbs.
//!
//! Minimal wiring for the `netns` verbs only; the full command tree lives on main.

pub mod netns;

use clap::{Parser, Subcommand};

use crate::error::Error;

#[derive(Debug, Parser)]
#[command(name = "warren", version = crate::VERSION, about = "Container networking agent and netns toolkit")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage network namespaces (daemonless, like `ip netns`)
    Netns(netns::NetnsArgs),
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Netns(args) => netns::run(args),
    }
}
