//! The destination seam: where a worker writes a window. The reading half (read, clip, merge,
//! relabel, account) hands batches to a `Destination` and never knows which one it is. Remote
//! write (`remote_write::DestinationWriter`) is the one there is; TSDB blocks written into a
//! bucket are the next.

use std::future::Future;

use crate::error::Result;
use crate::proto::Label;
use crate::remote_write::batch::Batch;
use crate::remote_write::kept::HistogramCheck;
use crate::remote_write::{Delivery, SendCosts};

pub trait Destination: Clone + Send + Sync + 'static {
    /// Where the samples go, as it may be shown to a person (no credentials).
    fn url(&self) -> String;

    /// Whether the destination can be reached at all, checked once before the first window.
    fn probe(&self) -> impl Future<Output = Result<()>> + Send;

    /// Writes one batch. `Ok` says what the destination holds of it: samples written, and
    /// samples refused with the reason; `Err` means the import cannot go on against this
    /// destination as it is.
    fn send(
        &self,
        batch: Batch,
        costs: &mut SendCosts,
    ) -> impl Future<Output = Result<Delivery>> + Send;

    /// Whether the destination stored a native histogram sample it accepted (`labels` as
    /// written, at `t`): some answer 2xx and keep none.
    fn check_histograms(
        &self,
        labels: &[Label],
        t: i64,
    ) -> impl Future<Output = HistogramCheck> + Send;
}
