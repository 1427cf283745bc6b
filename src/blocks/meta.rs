//! A block's `meta.json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::window::Window;

/// What `meta.json` counts of a block.
pub(super) struct BlockCounts {
    pub samples: u64,
    pub series: u64,
    pub chunks: u64,
}

/// `meta.json` as Prometheus reads it, with the `thanos` section Cortex reads: its only label
/// `__org_id__`, the tenant (any other label would be added to every series it returns).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Meta {
    ulid: String,
    min_time: i64,
    max_time: i64,
    stats: Stats,
    compaction: Compaction,
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    thanos: Option<Thanos>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    num_samples: u64,
    num_series: u64,
    num_chunks: u64,
}

#[derive(Serialize)]
struct Compaction {
    level: u32,
    sources: Vec<String>,
}

#[derive(Serialize)]
struct Thanos {
    labels: BTreeMap<String, String>,
    downsample: Downsample,
    source: &'static str,
    segment_files: Vec<String>,
}

#[derive(Serialize)]
struct Downsample {
    resolution: i64,
}

impl Meta {
    /// The block `id` of `window`, with its counts; `segments` are its chunk files.
    pub(super) fn new(
        id: ulid::Ulid,
        window: Window,
        counts: BlockCounts,
        tenant: Option<&str>,
        segments: &[String],
    ) -> Self {
        let id = id.to_string();
        Meta {
            ulid: id.clone(),
            // A block's range is half-open, as a window is.
            min_time: window.start_ms,
            max_time: window.end_ms,
            stats: Stats {
                num_samples: counts.samples,
                num_series: counts.series,
                num_chunks: counts.chunks,
            },
            compaction: Compaction {
                level: 1,
                sources: vec![id],
            },
            version: 1,
            thanos: tenant.map(|t| Thanos {
                labels: BTreeMap::from([("__org_id__".to_string(), t.to_string())]),
                downsample: Downsample { resolution: 0 },
                source: "promimport",
                segment_files: segments.to_vec(),
            }),
        }
    }
}
