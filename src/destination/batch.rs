//! Cuts a stream of series and samples into remote write requests bounded by sample count and
//! encoded size, so no request comes near receivers' limits (32 MiB decoded for Prometheus and
//! VictoriaMetrics) and memory is bounded by the batch, not the window.

use std::collections::VecDeque;

use prost::Message;

use crate::proto::{Histogram, Label, Sample, TimeSeries, WriteRequest};

#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_samples: usize,
    pub max_bytes: usize,
}

/// A request ready to send, with its sample count (float and histogram) for accounting.
#[derive(Debug)]
pub struct Batch {
    pub request: WriteRequest,
    pub samples: usize,
    /// Chunks passed on as the source sent them, for a destination that stores chunks
    /// (blocks); empty for remote write. Each comes before `request.timeseries[position]`.
    pub chunks: Vec<RawChunk>,
}

/// A source's chunk, whole and inside the window, passed on without decoding.
#[derive(Debug)]
pub struct RawChunk {
    /// Where it falls among the request's series: samples of its series before it are in
    /// earlier entries, samples after it in later ones.
    pub position: usize,
    /// Shared by every chunk of the series: one allocation a series, not one a chunk.
    pub labels: std::sync::Arc<[Label]>,
    pub chunk: crate::proto::Chunk,
    /// The samples its header declares.
    pub samples: u64,
    pub histograms: bool,
}

/// The most a request may hold in memory before it is sent, whatever its sample count: a
/// native histogram sample takes ~400 bytes as a `Histogram` with its buckets (against ~50
/// encoded), so 10 000 of them per request made every batch in flight 4 MB, and a worker's
/// memory grew with them (BENCHMARKS.md). Float samples take 16 bytes and never reach it.
const MAX_BATCH_MEMORY: usize = 1 << 20;

pub struct Batcher {
    limits: BatchLimits,
    series: Vec<TimeSeries>,
    samples: usize,
    bytes: usize,
    /// What the request's samples take in memory, against `MAX_BATCH_MEMORY`.
    memory: usize,
    /// Labels of the series being fed (shared with the whole chunks passed on for it), and its
    /// slot in `series` once it has a sample there.
    open_labels: std::sync::Arc<[Label]>,
    open_slot: Option<usize>,
    /// The kind of the open series' last sample in this request.
    open_kind: Option<Kind>,
    chunks: Vec<RawChunk>,
    ready: VecDeque<Batch>,
}

impl Batcher {
    pub fn new(limits: BatchLimits) -> Self {
        Batcher {
            limits,
            series: Vec::new(),
            samples: 0,
            bytes: 0,
            memory: 0,
            open_labels: std::sync::Arc::from([]),
            open_slot: None,
            open_kind: None,
            chunks: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    /// The labels of the series being fed, as they are written.
    pub fn open_labels(&self) -> &[Label] {
        &self.open_labels
    }

    /// Starts a series; its samples must follow in timestamp order.
    pub fn start_series(&mut self, labels: Vec<Label>) {
        self.open_labels = labels.into();
        self.open_slot = None;
        self.open_kind = None;
    }

    /// The open series' slot in this request, opened with its labels on first use.
    fn slot(&mut self) -> usize {
        if let Some(slot) = self.open_slot {
            return slot;
        }
        self.bytes += self
            .open_labels
            .iter()
            .map(Message::encoded_len)
            .sum::<usize>()
            + 6;
        self.series.push(TimeSeries {
            labels: self.open_labels.to_vec(),
            samples: Vec::new(),
            histograms: Vec::new(),
        });
        self.open_slot = Some(self.series.len() - 1);
        self.series.len() - 1
    }

    /// A series whose samples change kind (float, integer or float histogram) within one
    /// request would lose samples: Prometheus commits a request's samples kind by kind, and
    /// drops without an error those older than what it committed first for the series (seen
    /// with 2.42: a float histogram series' stale marker, an integer one to 2.42, committed
    /// before the float histograms just before it). A change of kind starts a new request.
    fn kind_is(&mut self, kind: Kind) {
        if self.open_kind.is_some_and(|open| open != kind) {
            self.flush();
        }
        self.open_kind = Some(kind);
    }

    pub fn push(&mut self, timestamp: i64, value: f64) {
        self.kind_is(Kind::Float);
        let slot = self.slot();
        self.series[slot].samples.push(Sample { value, timestamp });
        self.memory += std::mem::size_of::<Sample>();
        // tag + length + double + tag + varint timestamp
        self.added(2 + 9 + 1 + prost::encoding::encoded_len_varint(timestamp as u64));
    }

    /// A histogram sample counts as one sample and its encoded size, which grows with its
    /// buckets (a few hundred bytes is common), so size bounds hold for histograms too.
    pub fn push_histogram(&mut self, histogram: Histogram) {
        self.kind_is(Kind::of(&histogram));
        let slot = self.slot();
        let bytes = histogram.encoded_len();
        self.memory += histogram_memory(&histogram);
        self.series[slot].histograms.push(histogram);
        self.added(1 + prost::encoding::encoded_len_varint(bytes as u64) + bytes);
    }

    /// Passes a whole chunk of the open series on: what follows of the series goes into a
    /// new entry, after it.
    pub fn push_chunk(&mut self, chunk: crate::proto::Chunk, samples: u64, histograms: bool) {
        let bytes = chunk.data.len();
        self.chunks.push(RawChunk {
            position: self.series.len(),
            labels: self.open_labels.clone(),
            chunk,
            samples,
            histograms,
        });
        self.open_slot = None;
        self.memory += bytes;
        self.admit(samples as usize, bytes);
    }

    fn added(&mut self, bytes: usize) {
        self.admit(1, bytes);
    }

    /// Counts what was added; a full request is closed.
    fn admit(&mut self, samples: usize, bytes: usize) {
        self.samples += samples;
        self.bytes += bytes;
        if self.samples >= self.limits.max_samples
            || self.bytes >= self.limits.max_bytes
            || self.memory >= MAX_BATCH_MEMORY
        {
            self.flush();
        }
    }

    /// Closes the current request, if it holds anything; the open series continues in the next.
    pub fn flush(&mut self) {
        if self.samples > 0 {
            self.ready.push_back(Batch {
                request: WriteRequest {
                    timeseries: std::mem::take(&mut self.series),
                },
                samples: self.samples,
                chunks: std::mem::take(&mut self.chunks),
            });
        }
        self.samples = 0;
        self.bytes = 0;
        self.memory = 0;
        self.open_slot = None;
        self.open_kind = None;
    }

    pub fn take_ready(&mut self) -> Option<Batch> {
        self.ready.pop_front()
    }
}

/// What a histogram sample takes in memory: the struct and its bucket vectors (each heap
/// allocation rounded up by the allocator's 16-byte header).
fn histogram_memory(h: &Histogram) -> usize {
    let vectors = [
        h.negative_spans.len() * std::mem::size_of::<crate::proto::BucketSpan>(),
        h.positive_spans.len() * std::mem::size_of::<crate::proto::BucketSpan>(),
        h.negative_deltas.len() * 8,
        h.positive_deltas.len() * 8,
        h.negative_counts.len() * 8,
        h.positive_counts.len() * 8,
        h.custom_values.len() * 8,
    ];
    std::mem::size_of::<Histogram>()
        + vectors
            .iter()
            .filter(|&&bytes| bytes > 0)
            .map(|bytes| bytes + 16)
            .sum::<usize>()
}

/// The kinds of sample a receiver appends apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Float,
    IntegerHistogram,
    FloatHistogram,
}

impl Kind {
    /// As Prometheus 2.42's receiver tells them: a float histogram has a float count or zero
    /// count above 0 (so a stale marker is an integer one). Later versions go by the field
    /// set; the only sample they see otherwise, a float stale marker, is then split off too.
    fn of(h: &Histogram) -> Kind {
        use crate::proto::histogram::{Count, ZeroCount};
        let float = matches!(h.count, Some(Count::CountFloat(c)) if c > 0.0)
            || matches!(h.zero_count, Some(ZeroCount::ZeroCountFloat(z)) if z > 0.0);
        if float {
            Kind::FloatHistogram
        } else {
            Kind::IntegerHistogram
        }
    }
}

/// Samples in a request, float and histogram.
pub fn samples_in(request: &WriteRequest) -> u64 {
    request
        .timeseries
        .iter()
        .map(|s| (s.samples.len() + s.histograms.len()) as u64)
        .sum()
}

/// Histogram samples in a request.
pub fn histograms_in(request: &WriteRequest) -> u64 {
    request
        .timeseries
        .iter()
        .map(|s| s.histograms.len() as u64)
        .sum()
}

/// Cuts a request into two of about half the series each.
pub fn split_series(mut request: WriteRequest) -> (WriteRequest, WriteRequest) {
    let second = request.timeseries.split_off(request.timeseries.len() / 2);
    (request, WriteRequest { timeseries: second })
}

/// Cuts a request into two of about half the samples each. A series cut in two keeps its
/// labels in both and its older samples in the first, so sending the first, then the second,
/// keeps every series in timestamp order. A series holding both kinds is cut in its floats
/// first, then in its histograms, the order a receiver appends them in.
pub fn split_samples(request: WriteRequest) -> (WriteRequest, WriteRequest) {
    let mut left = (samples_in(&request) / 2).max(1) as usize;
    let mut first = Vec::new();
    let mut second = Vec::new();
    for mut series in request.timeseries {
        let size = series.samples.len() + series.histograms.len();
        if left == 0 {
            second.push(series);
        } else if size <= left {
            left -= size;
            first.push(series);
        } else {
            let (samples, histograms) = if left < series.samples.len() {
                (
                    series.samples.split_off(left),
                    std::mem::take(&mut series.histograms),
                )
            } else {
                let keep = left - series.samples.len();
                (Vec::new(), series.histograms.split_off(keep))
            };
            left = 0;
            second.push(TimeSeries {
                labels: series.labels.clone(),
                samples,
                histograms,
            });
            first.push(series);
        }
    }
    (
        WriteRequest { timeseries: first },
        WriteRequest { timeseries: second },
    )
}

/// Sets aside the series that a receiver's "too many labels (actual: N, limit: L)" refuses:
/// every series with more than L labels, since the limit applies to each alike. Returns the
/// refused series and the rest; nothing is refused when the message names no such limit.
pub fn split_by_label_limit(request: WriteRequest, message: &str) -> (WriteRequest, WriteRequest) {
    let limit = label_limit(message);
    let (refused, rest) = request
        .timeseries
        .into_iter()
        .partition(|s| limit.is_some_and(|limit| s.labels.len() > limit));
    (
        WriteRequest {
            timeseries: refused,
        },
        WriteRequest { timeseries: rest },
    )
}

/// L in Cortex's and Mimir's "... labels ... (actual: N, limit: L)".
fn label_limit(message: &str) -> Option<usize> {
    if !message.contains("labels") {
        return None;
    }
    let start = message.find("limit: ")? + "limit: ".len();
    let digits: String = message[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(n: &str, v: &str) -> Label {
        Label {
            name: n.into(),
            value: v.into(),
        }
    }

    fn drain(b: &mut Batcher) -> Vec<Batch> {
        std::iter::from_fn(|| b.take_ready()).collect()
    }

    #[test]
    fn a_series_changing_kind_starts_a_new_request_so_no_kind_is_committed_first() {
        use crate::proto::histogram::{Count, ZeroCount};
        let mut b = Batcher::new(BatchLimits {
            max_samples: 100,
            max_bytes: 1 << 20,
        });
        let float_histogram = |t: i64, count: f64| Histogram {
            count: Some(Count::CountFloat(count)),
            zero_count: Some(ZeroCount::ZeroCountFloat(0.0)),
            timestamp: t,
            ..Histogram::default()
        };
        b.start_series(vec![label("__name__", "h")]);
        b.push_histogram(float_histogram(1, 2.5));
        b.push_histogram(float_histogram(2, 3.5));
        // Its stale marker is an integer histogram to Prometheus 2.42.
        b.push_histogram(Histogram {
            sum: f64::from_bits(0x7ff0_0000_0000_0002),
            ..float_histogram(3, 0.0)
        });
        b.start_series(vec![label("__name__", "f")]);
        b.push(1, 1.0);
        b.push(2, 2.0);
        b.flush();
        let batches = drain(&mut b);
        let shape: Vec<Vec<(usize, usize)>> = batches
            .iter()
            .map(|batch| {
                batch
                    .request
                    .timeseries
                    .iter()
                    .map(|s| (s.samples.len(), s.histograms.len()))
                    .collect()
            })
            .collect();
        // Another series of another kind shares a request; the same series does not.
        assert_eq!(shape, [vec![(0, 2)], vec![(0, 1), (2, 0)]]);
        assert_eq!(batches.iter().map(|b| b.samples).sum::<usize>(), 5);
    }

    #[test]
    fn requests_of_native_histograms_are_bounded_by_their_memory_not_only_their_count() {
        use crate::proto::BucketSpan;
        use crate::proto::histogram::Count;
        let mut b = Batcher::new(BatchLimits {
            max_samples: 10_000,
            max_bytes: 8 << 20,
        });
        b.start_series(vec![label("__name__", "latency")]);
        let histogram = |t: i64| Histogram {
            count: Some(Count::CountInt(12)),
            positive_spans: vec![BucketSpan {
                offset: 0,
                length: 12,
            }],
            positive_deltas: vec![1; 12],
            timestamp: t,
            ..Histogram::default()
        };
        let each = histogram_memory(&histogram(0));
        assert!(each > 300, "a 12-bucket histogram takes {each} bytes");
        for t in 0..10_000 {
            b.push_histogram(histogram(t));
        }
        b.flush();
        let batches = drain(&mut b);
        let per_request = MAX_BATCH_MEMORY.div_ceil(each);
        assert!(
            batches.len() > 1,
            "10 000 histograms are more than one request's memory"
        );
        for batch in &batches[..batches.len() - 1] {
            assert_eq!(batch.samples, per_request);
        }
        assert_eq!(batches.iter().map(|b| b.samples).sum::<usize>(), 10_000);
        // Float samples are small: 10 000 of them still make one request.
        b.start_series(vec![label("__name__", "up")]);
        for t in 0..10_000 {
            b.push(t, 1.0);
        }
        assert_eq!(drain(&mut b).len(), 1);
    }

    #[test]
    fn a_series_longer_than_a_batch_continues_in_the_next_with_its_labels() {
        let mut b = Batcher::new(BatchLimits {
            max_samples: 3,
            max_bytes: 1 << 20,
        });
        b.start_series(vec![label("__name__", "a")]);
        for t in 0..4 {
            b.push(t, t as f64);
        }
        b.start_series(vec![label("__name__", "b")]);
        b.push(10, 1.0);
        b.flush();
        let batches = drain(&mut b);
        assert_eq!(
            batches.iter().map(|b| b.samples).collect::<Vec<_>>(),
            [3, 2]
        );
        let second = &batches[1].request.timeseries;
        assert_eq!(second.len(), 2);
        assert_eq!(second[0].labels, vec![label("__name__", "a")]);
        assert_eq!(
            second[0].samples,
            vec![Sample {
                value: 3.0,
                timestamp: 3
            }]
        );
        assert_eq!(second[1].labels, vec![label("__name__", "b")]);
    }

    #[test]
    fn batches_stay_under_the_byte_limit_as_encoded() {
        let limit = 4096;
        let mut b = Batcher::new(BatchLimits {
            max_samples: usize::MAX,
            max_bytes: limit,
        });
        for s in 0..100 {
            b.start_series(vec![
                label("__name__", "m"),
                label("instance", &format!("host-{s:04}")),
            ]);
            for t in 0..37 {
                b.push(1_700_000_000_000 + t * 15_000, t as f64);
            }
        }
        b.flush();
        let batches = drain(&mut b);
        assert!(batches.len() > 10);
        let total: usize = batches.iter().map(|b| b.samples).sum();
        assert_eq!(total, 3700);
        for batch in &batches {
            let encoded = batch.request.encoded_len();
            // The limit is checked after a push, so a batch may pass it by one sample at most.
            assert!(encoded <= limit + 32, "{encoded}");
            let counted: usize = batch
                .request
                .timeseries
                .iter()
                .map(|s| s.samples.len())
                .sum();
            assert_eq!(counted, batch.samples);
        }
    }

    fn series(name: &str, labels: usize, samples: std::ops::Range<i64>) -> TimeSeries {
        let mut all = vec![label("__name__", name)];
        all.extend((1..labels).map(|i| label(&format!("l{i:02}"), "v")));
        TimeSeries {
            labels: all,
            samples: samples
                .map(|t| Sample {
                    value: t as f64,
                    timestamp: t,
                })
                .collect(),
            histograms: Vec::new(),
        }
    }

    #[test]
    fn split_samples_halves_and_keeps_each_series_in_order() {
        let request = WriteRequest {
            timeseries: vec![series("a", 1, 0..3), series("b", 1, 0..5)],
        };
        let (first, second) = split_samples(request.clone());
        assert_eq!((samples_in(&first), samples_in(&second)), (4, 4));
        // b is cut: its older sample in the first, the rest in the second, labels in both.
        assert_eq!(first.timeseries[1].samples.len(), 1);
        assert_eq!(second.timeseries[0].labels, request.timeseries[1].labels);
        assert_eq!(second.timeseries[0].samples[0].timestamp, 1);
        let (one, none) = split_samples(WriteRequest {
            timeseries: vec![series("c", 1, 0..1)],
        });
        assert_eq!((samples_in(&one), none.timeseries.len()), (1, 0));
    }

    #[test]
    fn split_series_halves_by_series() {
        let request = WriteRequest {
            timeseries: (0..5).map(|i| series(&format!("s{i}"), 1, 0..2)).collect(),
        };
        let (first, second) = split_series(request);
        assert_eq!((first.timeseries.len(), second.timeseries.len()), (2, 3));
    }

    #[test]
    fn a_named_label_limit_sets_aside_every_series_over_it() {
        let request = WriteRequest {
            timeseries: vec![
                series("wide", 37, 0..4),
                series("narrow", 30, 0..4),
                series("wider", 40, 0..2),
            ],
        };
        let message =
            "series has too many labels (actual: 37, limit: 30) series: 'wide{l01=\"v\"}'";
        let (refused, rest) = split_by_label_limit(request.clone(), message);
        assert_eq!(samples_in(&refused), 6);
        assert_eq!(rest.timeseries.len(), 1);
        assert_eq!(rest.timeseries[0].labels.len(), 30);
        let (refused, rest) = split_by_label_limit(request, "out of bounds");
        assert_eq!((refused.timeseries.len(), rest.timeseries.len()), (0, 3));
    }

    #[test]
    fn a_series_without_samples_is_not_sent_and_flush_of_nothing_is_nothing() {
        let mut b = Batcher::new(BatchLimits {
            max_samples: 10,
            max_bytes: 1 << 20,
        });
        b.start_series(vec![label("__name__", "empty")]);
        b.flush();
        assert!(b.take_ready().is_none());
    }
}
