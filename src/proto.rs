//! Prometheus' remote read and write messages, compiled from the vendored `proto/` by build.rs
//! (prost-build fed by protox). A module of its own, at the bottom: everything that speaks
//! the protocol imports it, and it imports nothing of the crate.

include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
