//! Device access rules (filled in below).
