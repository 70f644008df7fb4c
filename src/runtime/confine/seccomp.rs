//! Seccomp profiles (filled in below).
