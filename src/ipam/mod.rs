//! IP address management: pools, subnets, addresses, ranges and reservations, as pure logic over the store.
