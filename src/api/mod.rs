//! HTTP API following the Docker Engine API for the endpoints Warren implements, so the real
//! `docker` CLI and docker-compose can drive it: server routes and wire types, plus the client
//! the `warren` CLI uses.

pub mod client;
pub mod containers;
pub mod error;
pub mod filters;
pub mod host;
pub mod images;
pub mod networks;
pub mod server;
pub mod system;
pub mod tls;
pub mod types;
pub mod unsupported;

/// The newest Engine API version served (what `Api-Version` announces).
pub const API_VERSION: &str = "1.50";
/// The oldest version prefix accepted.
pub const MIN_API_VERSION: &str = "1.24";
