//! Docker Engine API wire types for networks, shared by the server and the client. Field names
//! are Docker's; optional fields accept `null` and absence, as Docker's Go decoder does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::unsupported::Unsupported;

pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One `IPAM.Config` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfigEntry {
    #[serde(rename = "Subnet", default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(rename = "Gateway", default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(
        rename = "AuxiliaryAddresses",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    #[serde(rename = "Driver", default, deserialize_with = "null_as_default")]
    pub driver: String,
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "Config", default, deserialize_with = "null_as_default")]
    pub config: Vec<IpamConfigEntry>,
}

/// `POST /networks/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateRequest {
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub driver: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub scope: String,
    #[serde(
        rename = "EnableIPv6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ipv6: Option<bool>,
    #[serde(
        rename = "EnableIPv4",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ipv4: Option<bool>,
    #[serde(rename = "IPAM", default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub internal: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attachable: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ingress: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub config_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_from: Option<ConfigFrom>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Sent by old clients; names are always unique in Warren.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_duplicate: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFrom {
    #[serde(rename = "Network", default)]
    pub network: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// One entry of a network's `Containers` map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkContainer {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `GET /networks/{id}` and the items of `GET /networks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigFrom,
    pub config_only: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub containers: BTreeMap<String, NetworkContainer>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIpamConfig {
    #[serde(
        rename = "IPv4Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_address: String,
    #[serde(
        rename = "IPv6Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_address: String,
    /// `LinkLocalIPs` and anything else: refused unless zero.
    #[serde(flatten, skip_serializing)]
    pub unsupported: Unsupported,
}

/// `EndpointConfig` of a connect request (and, later, of container creation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSettings {
    #[serde(
        rename = "IPAMConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_config: Option<EndpointIpamConfig>,
    #[serde(
        rename = "Aliases",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aliases: Vec<String>,
    /// `MacAddress`, `Links`, `DriverOpts`, … and the live endpoint's fields that clients echo.
    #[serde(flatten, skip_serializing)]
    pub unsupported: Unsupported,
}

impl EndpointSettings {
    /// Refuse any field Warren does not implement that is set; `context` names where.
    pub fn refuse_unsupported(&self, context: &str) -> Result<(), super::error::ApiError> {
        self.unsupported
            .refuse(context, super::unsupported::ENDPOINT_TOLERATED)?;
        if let Some(ipam) = &self.ipam_config {
            ipam.unsupported
                .refuse(&format!("{context}IPAMConfig."), &[])?;
        }
        Ok(())
    }
}

/// `POST /networks/{id}/connect`. `Container` names a container; Warren also accepts a
/// network namespace: `netns:NAME` (pinned under /run/netns) or an absolute path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConnectRequest {
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_config: Option<EndpointSettings>,
    /// Warren extension: ports to publish for this endpoint (`[HOSTIP:]HOSTPORT:CTRPORT[/proto]`),
    /// so plain namespaces can publish too. Docker clients never send it.
    #[serde(
        rename = "Publish",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub publish: Vec<String>,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkDisconnectRequest {
    pub container: String,
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkPruneResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    pub networks_deleted: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_cli_create_body_parses() {
        // What docker 28 sends for
        // `network create --subnet 10.30.0.0/24 --gateway 10.30.0.1 --ip-range 10.30.0.128/25 -o …name=br-lab --label team=a lab`.
        let body = r#"{"Name":"lab","CheckDuplicate":true,"Driver":"bridge","Scope":"","EnableIPv4":null,"EnableIPv6":null,
            "IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.30.0.0/24","IPRange":"10.30.0.128/25","Gateway":"10.30.0.1"}]},
            "Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,
            "Options":{"com.docker.network.bridge.name":"br-lab"},"Labels":{"team":"a"}}"#;
        let req: NetworkCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.name, "lab");
        let ipam = req.ipam.unwrap();
        assert_eq!(ipam.config[0].ip_range, "10.30.0.128/25");
        assert_eq!(req.labels["team"], "a");
        assert_eq!(req.enable_ipv6, None);
    }

    #[test]
    fn docker_py_create_body_with_nulls_parses() {
        let body = r#"{"Name":"n","Driver":null,"Options":null,"IPAM":null,"Labels":null,"Internal":null}"#;
        let req: NetworkCreateRequest = serde_json::from_str(body).unwrap();
        assert!(req.driver.is_empty() && req.options.is_empty() && !req.internal);
    }

    #[test]
    fn connect_body_parses() {
        let body = r#"{"Container":"web","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.1.0.5"},"Aliases":["www"]}}"#;
        let req: NetworkConnectRequest = serde_json::from_str(body).unwrap();
        let ep = req.endpoint_config.unwrap();
        assert_eq!(ep.ipam_config.unwrap().ipv4_address, "10.1.0.5");
        assert_eq!(ep.aliases, ["www"]);
    }
}
