//! Logs: human-readable on a terminal, one JSON object per line elsewhere (a pod, CI), always on
//! stderr so stdout carries only results (the summary, `worker`'s JSON line).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::progress::BarAwareWriter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| BarAwareWriter);
    // An error here means a subscriber is already installed (tests): keep that one.
    let _ = if std::io::stderr().is_terminal() {
        builder.with_target(false).compact().try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
}
