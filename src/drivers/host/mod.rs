//! Host driver: endpoints share the host network namespace (no interfaces of their own).
