//! TSDB blocks as a destination: each window becomes one block written straight into a
//! Prometheus data directory, a Cortex bucket (`TENANT/ULID/`, on a filesystem or in S3, GCS,
//! Azure), so the receiver's out-of-order window does not matter (`--dest-blocks`).
//!
//! A block is written into a staging directory named `ULID.tmp-promimport` (a name neither
//! Prometheus nor Cortex loads: both load only directories named by a ULID), `meta.json` last,
//! then put in place (`target.rs`): every file synced and renamed in one step, or uploaded
//! with `meta.json` last. The ULID comes from the import and the 2h range, so a window written
//! again finds its block already there instead of adding a second copy of its samples.
//!
//! Here: the destination (`BlockWriter`) and the blocks' IDs. A window's block is built by
//! `builder.rs` from its chunks (`xor.rs`, `histogram.rs`, written by `chunks.rs`), its index
//! (`index.rs`) and `meta.json` (`meta.rs`), and put in place by `target.rs`.

pub mod bits;
mod builder;
mod chunks;
#[cfg(test)]
mod decoder_tests;
pub mod histogram;
pub mod index;
mod meta;
mod target;
pub mod xor;

pub use target::{BlocksTarget, BucketTls, describe};

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::Digest;

use crate::destination::Destination;
use crate::destination::batch::Batch;
use crate::destination::delivery::{Delivery, SendCosts};
use crate::destination::kept::HistogramCheck;
use crate::error::{Error, Result};
use crate::outcome::BlockWritten;
use crate::proto::Label;
use crate::window::Window;
use builder::{Builder, Sealed};

/// The range of the blocks Prometheus and Cortex cut: each block written covers this much (or
/// less, at a range's ends), and `--window` is a multiple of it.
pub const BLOCK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// Checks a window length for blocks (`what` is `--window` or a spec's `window`, as typed in
/// `input`): a window is written as its 2h blocks, so it is a multiple of 2h.
pub fn check_window(what: &'static str, input: &str, window_ms: i64) -> Result<()> {
    if window_ms % BLOCK_RANGE_MS != 0 {
        return Err(Error::invalid(
            what,
            input,
            "with blocks a window is written as 2h TSDB blocks: give 2h (the default) or a multiple of it, e.g. 1d (twelve blocks a window, one Job in Kubernetes)",
        ));
    }
    Ok(())
}

/// What makes the IDs of an import's blocks (`BlockWriter::block_id`): what decides a block's
/// samples (the source, the selectors, the relabelling) and where it goes. The text is the one
/// 0.1.0 made from its types' `Debug` form, written out here so that it no longer moves with a
/// derive, a renamed field or Rust's escaping: a resumed import must find its blocks' IDs again.
pub fn block_identity(
    source: &str,
    selectors: &[crate::selector::Selector],
    labels: &crate::relabel::LabelRules,
    destination: &str,
) -> String {
    let list = |items: Vec<String>| format!("[{}]", items.join(", "));
    let selectors = list(selectors.iter().map(|s| quoted(&s.to_string())).collect());
    let drop = list(labels.drop.iter().map(|name| quoted(name)).collect());
    let set = list(
        labels
            .set
            .iter()
            .map(|l| {
                format!(
                    "NameValue {{ name: {}, value: {} }}",
                    quoted(&l.name),
                    quoted(&l.value)
                )
            })
            .collect(),
    );
    format!("{source}\n{selectors}\nLabelRules {{ drop: {drop}, set: {set} }}\n{destination}")
}

/// `text` in double quotes, with quotes, backslashes and control characters escaped as Rust's
/// `Debug` wrote them in 0.1.0. That also escaped combining marks and the few other characters
/// its Unicode tables call unprintable (zero-width ones): an identity holding those differs
/// from 0.1.0's, and from now on stays as it is here, whatever Rust's tables become.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The blocks destination: one per import, and one builder per window (`for_window`).
#[derive(Clone)]
pub struct BlockWriter {
    target: Arc<BlocksTarget>,
    /// What makes a block's ID: the import (source, selectors, relabelling, destination).
    identity: Arc<String>,
    window: Option<Window>,
    builder: Arc<tokio::sync::Mutex<Option<Builder>>>,
    /// The most series a window of this import held so far: the next window's builder starts
    /// with room for as many, instead of growing its maps series by series.
    series_hint: Arc<AtomicUsize>,
}

impl BlockWriter {
    pub fn new(target: BlocksTarget, identity: String) -> Self {
        BlockWriter {
            target: Arc::new(target),
            identity: Arc::new(identity),
            window: None,
            builder: Arc::default(),
            series_hint: Arc::default(),
        }
    }

    /// The block's ID: the window's start as the ULID's time, and a hash of the import and
    /// window as its random part, so the same window of the same import has the same ID.
    pub fn block_id(&self, window: Window) -> ulid::Ulid {
        let digest = sha2::Sha256::digest(format!("{}\n{}", self.identity, window.key()));
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        ulid::Ulid::from_parts(window.start_ms.max(0) as u64, u128::from_be_bytes(random))
    }
}

impl Destination for BlockWriter {
    fn url(&self) -> String {
        self.target.describe()
    }

    /// The directory or bucket takes what an import writes.
    async fn probe(&self) -> Result<()> {
        self.target.probe().await
    }

    fn window_part_ms(&self) -> Option<i64> {
        Some(BLOCK_RANGE_MS)
    }

    fn for_window(&self, window: Window) -> Self {
        BlockWriter {
            target: self.target.clone(),
            identity: self.identity.clone(),
            window: Some(window),
            builder: Arc::default(),
            series_hint: self.series_hint.clone(),
        }
    }

    async fn send(&self, batch: Batch, costs: &mut SendCosts) -> Result<Delivery> {
        let window = self.window.ok_or_else(|| {
            Error::Internal("a block writer was sent samples outside a window".into())
        })?;
        let mut builder = self.builder.lock().await;
        if builder.is_none() {
            let capacity = self.series_hint.load(Ordering::Relaxed);
            *builder = Some(Builder::start(
                &self.target,
                self.block_id(window),
                window,
                capacity,
            )?);
        }
        let Some(builder) = builder.as_mut() else {
            return Err(Error::Internal("the block builder vanished".into()));
        };
        let started = std::time::Instant::now();
        let delivery = builder.add(batch);
        costs.encode += started.elapsed();
        delivery
    }

    /// Writes the window's block, if it has any samples, and moves it into place.
    async fn finish(&self) -> Result<Option<BlockWritten>> {
        let Some(builder) = self.builder.lock().await.take() else {
            return Ok(None);
        };
        self.series_hint
            .fetch_max(builder.series_count(), Ordering::Relaxed);
        let tenant = self.target.tenant.clone();
        let sealed = tokio::task::spawn_blocking(move || builder.seal(tenant.as_deref()))
            .await
            .map_err(|e| Error::Internal(format!("the block writer task ended: {e}")))??;
        self.target.place(sealed).await.map(Some)
    }

    /// Removes what an unfinished window wrote (an error stopped it).
    async fn abandon(&self) {
        if let Some(builder) = self.builder.lock().await.take() {
            builder.remove();
        }
    }

    /// A block holds what was written into it; there is no receiver that might drop some.
    async fn check_histograms(&self, _: &[Label], _: i64) -> HistogramCheck {
        HistogramCheck::Kept
    }
}

fn write_file(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    match durable {
        true => file.sync_all(),
        false => Ok(()),
    }
}

/// A rename is durable once its directory is synced.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Block IDs are what make a window written again (a resume, a Job's retry) land on its own
    /// block instead of beside it: they must not change between versions of promimport. These
    /// are the IDs that 0.1.0 gave; an import started by it and resumed by a later version
    /// must find the same ones.
    #[test]
    fn block_ids_are_those_of_earlier_versions() {
        let selectors: Vec<crate::selector::Selector> =
            ["{job=\"node\"}", "up", "{\"a.b\"=~\"x|\\\"y\"}"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        let labels = crate::relabel::LabelRules {
            drop: vec!["pod".into(), "instance".into()],
            set: vec![
                crate::name_value::NameValue::new("cluster", "größe\tä \"q\" \\ \u{7f}"),
                crate::name_value::NameValue::new("env", "prod\nnext"),
            ],
        };
        let identity = block_identity(
            "http://prometheus:9090/api/v1/read",
            &selectors,
            &labels,
            "s3://bucket/cortex (tenant anonymous)",
        );
        assert_eq!(
            identity,
            concat!(
                "http://prometheus:9090/api/v1/read\n",
                r#"["{job=\"node\"}", "up", "{\"a.b\"=~\"x|\\\"y\"}"]"#,
                "\n",
                r#"LabelRules { drop: ["pod", "instance"], set: [NameValue { name: "cluster", value: "größe\tä \"q\" \\ \u{7f}" }, NameValue { name: "env", value: "prod\nnext" }] }"#,
                "\ns3://bucket/cortex (tenant anonymous)"
            )
        );
        let target = |url: &str| BlocksTarget::parse(url, None, &BucketTls::default()).unwrap();
        let window = Window::new(1_793_491_200_000, 1_793_498_400_000).unwrap();
        let writer = BlockWriter::new(target("file:///nonexistent"), identity);
        assert_eq!(
            writer.block_id(window).to_string(),
            "01M6A6FT00D729HB1YPPG510WG"
        );
        let plain = block_identity(
            "http://p:9090/api/v1/read",
            &[],
            &Default::default(),
            "file:///data",
        );
        let plain = BlockWriter::new(target("file:///nonexistent"), plain);
        assert_eq!(
            plain.block_id(window).to_string(),
            "01M6A6FT00N5NJG90XHP3MXQVJ"
        );
    }
}
