//! macvlan driver: endpoints are macvlan links on a parent interface, created inside the target namespace.
