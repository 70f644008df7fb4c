//! rtnetlink operations on links, addresses and routes, each idempotent and bound to one network namespace.
