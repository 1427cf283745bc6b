//! The destination seam: where a worker writes a window. The reading half (read, clip, merge,
//! relabel, account) hands batches to a `Destination` and never knows which one it is: remote
//! write (`remote_write::DestinationWriter`) or TSDB blocks (`blocks::BlockWriter`).

pub mod batch;
pub mod delivery;
pub mod kept;

use std::future::Future;

use crate::error::Result;
use crate::outcome::BlockWritten;
use crate::proto::Label;
use crate::window::Window;
use batch::Batch;
use delivery::{Delivery, SendCosts};
use kept::HistogramCheck;

pub trait Destination: Clone + Send + Sync + 'static {
    /// Where the samples go, as it may be shown to a person (no credentials).
    fn url(&self) -> String;

    /// Whether the destination can be reached at all, checked once before the first window.
    fn probe(&self) -> impl Future<Output = Result<()>> + Send;

    /// The destination as one window writes to it: the same for remote write; a block of its
    /// own for blocks.
    fn for_window(&self, window: Window) -> Self;

    /// A destination that takes windows in parts of this length, aligned to it (blocks: a
    /// window longer than 2h is written as its 2h blocks, one after another).
    fn window_part_ms(&self) -> Option<i64> {
        None
    }

    /// Writes one batch. `Ok` says what the destination holds of it: samples written, and
    /// samples refused with the reason; `Err` means the import cannot go on against this
    /// destination as it is.
    fn send(
        &self,
        batch: Batch,
        costs: &mut SendCosts,
    ) -> impl Future<Output = Result<Delivery>> + Send;

    /// After the window's last batch: what has been sent becomes visible (a block is moved
    /// into place). Remote write has nothing left to do.
    fn finish(&self) -> impl Future<Output = Result<Option<BlockWritten>>> + Send;

    /// After an error: nothing of the window may stay half-written.
    fn abandon(&self) -> impl Future<Output = ()> + Send;

    /// Whether the destination stored a native histogram sample it accepted (`labels` as
    /// written, at `t`): some answer 2xx and keep none.
    fn check_histograms(
        &self,
        labels: &[Label],
        t: i64,
    ) -> impl Future<Output = HistogramCheck> + Send;
}
