//! nftables: one table owned by Warren, rule builders as pure functions, every change one atomic batch.
