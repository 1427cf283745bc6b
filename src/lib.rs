//! promimport moves Prometheus history into another store, exactly: it reads time windows
//! through the remote read API and remote-writes them to any receiver, and accounts for every
//! sample. See README.md for the shape of the whole.

pub mod answer;
pub mod blocks;
pub mod cli;
pub mod commands;
pub mod decode;
pub mod destination;
pub mod endpoint;
pub mod error;
pub mod kube;
pub mod ledger;
pub mod local;
pub mod logging;
pub mod name_value;
pub mod outcome;
pub mod plan;
pub mod progress;
pub mod proto;
pub mod protocol;
pub mod query;
pub mod relabel;
pub mod remote_read;
pub mod remote_write;
pub mod retry;
pub mod selector;
pub mod spec;
pub mod targets;
pub mod timespec;
pub mod tls;
pub mod verify;
pub mod window;
pub mod worker;

pub use error::{Error, Result};
