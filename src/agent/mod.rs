//! The agent: configuration, lifecycle and orchestration (validate → ipam → driver → firewall → dns → store).
