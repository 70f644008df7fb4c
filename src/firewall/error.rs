//! The firewall's error enum: one variant per action, carrying what `nft` said.

use crate::error::{ErrorKind, HasKind};

/// The errno `nft` reported, recovered from its message.
///
/// `nft` exits 1 for every failure and only prints `strerror(errno)`, so the text is all there
/// is to classify; this is the one place that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftErrno {
    /// EEXIST: e.g. a map key already bound to a different value.
    Exists,
    /// ENOENT: the table, chain, map or element is missing.
    NotFound,
    /// EBUSY: e.g. deleting a chain still referenced by a map element.
    Busy,
    /// EPERM: not allowed to change the ruleset (needs CAP_NET_ADMIN).
    Permission,
    /// EOPNOTSUPP: the kernel lacks an expression this ruleset uses.
    Unsupported,
    /// Anything else, syntax errors included.
    Other,
}

impl NftErrno {
    pub(crate) fn from_stderr(stderr: &str) -> NftErrno {
        const KNOWN: [(&str, NftErrno); 5] = [
            ("File exists", NftErrno::Exists),
            ("No such file or directory", NftErrno::NotFound),
            ("Device or resource busy", NftErrno::Busy),
            ("Operation not permitted", NftErrno::Permission),
            ("Operation not supported", NftErrno::Unsupported),
        ];
        KNOWN
            .iter()
            .find(|(text, _)| stderr.contains(text))
            .map_or(NftErrno::Other, |&(_, errno)| errno)
    }
}

/// A failed `nft` run.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("run nft")]
    Exec(#[source] std::io::Error),
    #[error("nft: {stderr}")]
    Rejected { errno: NftErrno, stderr: String },
    #[error("unreadable nft output: {0}")]
    Output(String),
}

impl NftError {
    /// A failure as nft printed it on stderr.
    pub(crate) fn rejected(stderr: &str) -> NftError {
        // nft prefixes every line with a location, meaningless for JSON input.
        let stderr = stderr
            .lines()
            .map(|l| l.trim_start_matches("internal:0:0-0: ").trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        NftError::Rejected {
            errno: NftErrno::from_stderr(&stderr),
            stderr,
        }
    }

    pub fn errno(&self) -> Option<NftErrno> {
        match self {
            NftError::Rejected { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("invalid network policy {id}: {reason}")]
    InvalidNetwork { id: String, reason: String },
    #[error("invalid port mapping {mapping}: {reason}")]
    InvalidPort { mapping: String, reason: String },
    #[error("invalid port spec {spec:?}: {reason}")]
    InvalidPortSpec { spec: String, reason: String },
    #[error("port {mapping} is published twice")]
    DuplicatePort { mapping: String },
    #[error("network {id} or its bridge {bridge} is listed twice")]
    DuplicateNetwork { id: String, bridge: String },
    #[error("port {mapping} refers to unknown network {network_id}")]
    UnknownNetwork { mapping: String, network_id: String },
    #[error("port {mapping} cannot be published on internal network {network_id}")]
    InternalNetworkPort { mapping: String, network_id: String },
    #[error("replace nftables table {table}")]
    ReplaceAll {
        table: String,
        #[source]
        source: NftError,
    },
    #[error("add network {network} (bridge {bridge}) to nftables table {table}")]
    AddNetwork {
        table: String,
        network: String,
        bridge: String,
        #[source]
        source: NftError,
    },
    #[error("remove network {network} (bridge {bridge}) from nftables table {table}")]
    RemoveNetwork {
        table: String,
        network: String,
        bridge: String,
        #[source]
        source: NftError,
    },
    #[error("publish ports {ports} in nftables table {table}")]
    AddPorts {
        table: String,
        ports: String,
        #[source]
        source: NftError,
    },
    #[error("unpublish ports {ports} in nftables table {table}")]
    RemovePorts {
        table: String,
        ports: String,
        #[source]
        source: NftError,
    },
    #[error("delete nftables table {table}")]
    DeleteTable {
        table: String,
        #[source]
        source: NftError,
    },
    #[error("list nftables table {table}")]
    ListTable {
        table: String,
        #[source]
        source: NftError,
    },
}

impl FirewallError {
    /// The `nft` failure behind this error, if it came from running `nft`.
    pub fn nft(&self) -> Option<&NftError> {
        match self {
            FirewallError::ReplaceAll { source, .. }
            | FirewallError::AddNetwork { source, .. }
            | FirewallError::RemoveNetwork { source, .. }
            | FirewallError::AddPorts { source, .. }
            | FirewallError::RemovePorts { source, .. }
            | FirewallError::DeleteTable { source, .. }
            | FirewallError::ListTable { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl HasKind for FirewallError {
    fn kind(&self) -> ErrorKind {
        match self {
            FirewallError::InvalidNetwork { .. }
            | FirewallError::InvalidPort { .. }
            | FirewallError::InvalidPortSpec { .. }
            | FirewallError::InternalNetworkPort { .. } => ErrorKind::Invalid,
            FirewallError::DuplicatePort { .. } | FirewallError::DuplicateNetwork { .. } => {
                ErrorKind::Conflict
            }
            FirewallError::UnknownNetwork { .. } => ErrorKind::NotFound,
            // Batches are built so that only a real clash yields EEXIST/EBUSY (a port or a
            // bridge already bound elsewhere) and only a missing table yields ENOENT.
            _ => match self.nft().and_then(NftError::errno) {
                Some(NftErrno::Exists | NftErrno::Busy) => ErrorKind::Conflict,
                Some(NftErrno::NotFound) => ErrorKind::NotFound,
                _ => ErrorKind::Internal,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(stderr: &str) -> NftError {
        NftError::rejected(stderr)
    }

    #[test]
    fn nft_stderr_maps_to_kind() {
        let source = rejected("internal:0:0-0: Error: Could not process rule: File exists\n\n");
        assert_eq!(
            source.to_string(),
            "nft: Error: Could not process rule: File exists"
        );
        let err = FirewallError::AddPorts {
            table: "warren".into(),
            ports: "*:8080->10.0.0.2:80/tcp".into(),
            source,
        };
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let missing = FirewallError::AddPorts {
            table: "warren".into(),
            ports: String::new(),
            source: rejected("Error: Could not process rule: No such file or directory"),
        };
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        let syntax = FirewallError::ReplaceAll {
            table: "warren".into(),
            source: rejected("Error: syntax error"),
        };
        assert_eq!(syntax.kind(), ErrorKind::Internal);
    }
}
