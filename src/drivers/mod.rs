//! Network drivers: bridge, host, macvlan and overlay implement one `Driver` trait.
pub mod bridge;
pub mod host;
pub mod macvlan;
pub mod overlay;
