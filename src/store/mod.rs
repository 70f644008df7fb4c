//! State store: a `Store` trait (keys by scope, compare-and-swap transactions, watch) with an embedded crash-safe default.
