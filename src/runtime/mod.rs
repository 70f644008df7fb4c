//! The bundled container runtime: images and rootfs, container lifecycle, the per-container
//! shim, the init process and cgroups. Built by the runtime issue; networking never depends on it.

pub mod image;
