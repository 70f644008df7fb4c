//! Embedded DNS for user-defined networks (hickory): an immutable name snapshot swapped
//! atomically, per-network listeners and upstream forwarding. Built by the DNS issue; nothing
//! in the agent depends on it yet.
