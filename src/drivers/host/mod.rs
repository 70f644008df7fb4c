//! Host and null drivers: networks whose endpoints get no interfaces of their own.
//!
//! `host` (the built-in network of that name): containers share the host's network namespace,
//! so there is nothing to wire; the runtime simply does not join another namespace.
//! `null` (the built-in `none` network): containers get a namespace with only loopback.
//! Both exist once, created by the agent; users cannot create more, and nothing can be
//! connected to or disconnected from them (Docker's rules).

use std::collections::BTreeMap;

use super::{Driver, DriverError, EndpointConfig, NetworkConfig, NetworkSettings};

/// Driver of the built-in `host` network.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostDriver;

/// Driver of the built-in `none` network.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullDriver;

/// Settings of a network without host-side objects.
pub fn settings() -> NetworkSettings {
    NetworkSettings {
        interface: String::new(),
        mtu: None,
        icc: false,
        masquerade: false,
        host_binding_ipv4: None,
        macvlan: None,
        ports_per_bridge: None,
    }
}

macro_rules! no_interface_driver {
    ($ty:ty, $name:literal, $network:literal) => {
        #[async_trait::async_trait]
        impl Driver for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn configure(
                &self,
                _network_id: &str,
                _options: &BTreeMap<String, String>,
                _internal: bool,
                _default_mtu: Option<u32>,
            ) -> Result<NetworkSettings, DriverError> {
                Err(DriverError::Unsupported(format!(
                    "only one instance of \"{}\" network is allowed",
                    $network
                )))
            }

            async fn create_network(&self, _network: &NetworkConfig) -> Result<(), DriverError> {
                Ok(())
            }

            async fn delete_network(&self, _network: &NetworkConfig) -> Result<(), DriverError> {
                Ok(())
            }

            async fn attach(
                &self,
                _network: &NetworkConfig,
                _endpoint: &EndpointConfig,
            ) -> Result<(), DriverError> {
                Err(DriverError::Unsupported(format!(
                    "container cannot be disconnected from or connected to the {} network; \
                     choose it when the container is created (--network {})",
                    $network, $network
                )))
            }

            async fn detach(
                &self,
                _network: &NetworkConfig,
                _endpoint: &EndpointConfig,
            ) -> Result<(), DriverError> {
                Ok(())
            }
        }
    };
}

no_interface_driver!(HostDriver, "host", "host");
no_interface_driver!(NullDriver, "null", "none");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_cannot_create_more_host_networks() {
        let err = HostDriver
            .configure("x", &BTreeMap::new(), false, None)
            .unwrap_err();
        assert!(err.to_string().contains("only one instance"), "{err}");
        assert_eq!(NullDriver.name(), "null");
    }
}
