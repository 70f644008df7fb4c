//! HTTP API following the Docker Engine API: server routes, wire types and the client used by the CLI.
