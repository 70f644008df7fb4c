//! Overlay driver: VXLAN networks spanning several hosts, one subnet across hosts, state in the shared store.
