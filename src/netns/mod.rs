//! Network namespaces: names and pinning under /run/netns (shared with iproute2) and running code inside one on a dedicated thread.
