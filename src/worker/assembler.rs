//! Turns the series a remote read answer carries into remote write batches: clips samples to the
//! window (whole TSDB chunks overrun it, and without clipping neighbouring windows would write
//! the same samples twice), merges a series that the source split across frames, relabels, and
//! counts every sample as sent or skipped. Float samples and native histogram samples take the
//! same path; a chunk encoding this build does not know fails the window, never vanishes.

use std::collections::BTreeMap;

use prost::Message;

use crate::decode::histogram::decode_histograms;
use crate::decode::xor::{self, ChunkError, RawSamples};
use crate::destination::batch::{Batch, BatchLimits, Batcher};
use crate::error::{Error, Result};
use crate::proto::{Chunk, Histogram, Label, chunk::Encoding};
use crate::relabel::{LabelRules, render};
use crate::window::Window;

/// Limits on what a source may send in one series, so hostile or broken data is a clear error
/// rather than memory exhaustion: far above what any real series carries.
pub const MAX_LABELS_PER_SERIES: usize = 256;
pub const MAX_LABEL_BYTES: usize = 64 * 1024;
/// Series in one window: a limit on what one worker holds open, not on an import.
pub const MAX_SERIES_PER_WINDOW: u64 = 20_000_000;

/// Checks a series' labels against the limits; the message names the series (cut short).
pub fn check_limits(labels: &[Label]) -> std::result::Result<(), String> {
    if labels.len() > MAX_LABELS_PER_SERIES {
        return Err(format!(
            "a series with {} labels (at most {MAX_LABELS_PER_SERIES})",
            labels.len()
        ));
    }
    if let Some(label) = labels
        .iter()
        .find(|l| l.name.len() > MAX_LABEL_BYTES || l.value.len() > MAX_LABEL_BYTES)
    {
        let name: String = label.name.chars().take(64).collect();
        return Err(format!(
            "label {name:?} longer than {MAX_LABEL_BYTES} bytes"
        ));
    }
    Ok(())
}

pub const SKIP_UNORDERED: &str = "samples out of order inside the source's answer";
pub const SKIP_CONFLICT: &str = "samples at a timestamp the source sent twice with another value";

pub struct WindowAssembler<'a> {
    window: Window,
    rules: &'a LabelRules,
    batcher: Batcher,
    /// The current series as the source labelled it, to recognise its continuation; `None`
    /// when relabelling kept its labels as they were (the batcher's open labels are they).
    raw_labels: Option<Vec<Label>>,
    has_series: bool,
    series_counted: bool,
    last: Option<(i64, u64)>,
    last_histogram: Option<Histogram>,
    decoded: RawSamples,
    decoded_histograms: Vec<Histogram>,
    /// For a destination that stores chunks: chunks whole inside the window, after the
    /// series' samples so far, are passed on as they came.
    copy_chunks: bool,
    /// The current series' last chunk passed on whole, until a later chunk needs its last
    /// sample to compare with (it overlaps): decoded only then.
    copied: Option<Chunk>,
    pub series: u64,
    /// Samples sent on, float and histogram; `histograms` counts the latter alone.
    pub samples: u64,
    pub histograms: u64,
    /// Histogram samples among the skipped ones, so histograms read add up.
    pub histograms_skipped: u64,
    /// The first histogram sent on (labels as written, timestamp): what a destination is
    /// asked for afterwards, to learn whether it kept histograms or dropped them.
    pub first_histogram: Option<(Vec<Label>, i64)>,
    pub skipped: BTreeMap<String, u64>,
}

impl<'a> WindowAssembler<'a> {
    pub fn new(
        window: Window,
        rules: &'a LabelRules,
        limits: BatchLimits,
        copy_chunks: bool,
    ) -> Self {
        WindowAssembler {
            window,
            rules,
            batcher: Batcher::new(limits),
            raw_labels: None,
            has_series: false,
            series_counted: false,
            last: None,
            last_histogram: None,
            decoded: Vec::new(),
            decoded_histograms: Vec::new(),
            copy_chunks,
            copied: None,
            series: 0,
            samples: 0,
            histograms: 0,
            histograms_skipped: 0,
            first_histogram: None,
            skipped: BTreeMap::new(),
        }
    }

    /// Clips what follows to `range`, a part of the window read in its own query (the source
    /// refused the whole as over its limit); a series read again in the next part starts anew.
    pub fn clip_to(&mut self, range: Window) {
        self.window = range;
        self.has_series = false;
        self.copied = None;
    }

    /// Begins a series, or continues the current one when the source repeats its labels
    /// (Prometheus splits a long series across frames, in order).
    pub fn series(&mut self, raw_labels: Vec<Label>) -> Result<()> {
        if self.has_series && raw_labels == self.raw_labels() {
            return Ok(());
        }
        if self.rules.keeps(&raw_labels) {
            self.batcher.start_series(raw_labels);
            self.raw_labels = None;
        } else {
            let labels = self.rules.apply(raw_labels.clone())?;
            self.batcher.start_series(labels);
            self.raw_labels = Some(raw_labels);
        }
        self.has_series = true;
        self.series_counted = false;
        self.last = None;
        self.last_histogram = None;
        self.copied = None;
        Ok(())
    }

    /// Feeds one chunk of the current series.
    pub fn chunk(&mut self, chunk: &Chunk) -> std::result::Result<(), ChunkError> {
        if chunk.max_time_ms < self.window.start_ms || chunk.min_time_ms >= self.window.end_ms {
            return Ok(());
        }
        if self.copy_chunks && self.copy(chunk)? {
            return Ok(());
        }
        // What follows is compared sample by sample with what came before, which needs the
        // last sample of a chunk passed on whole.
        if let Some(copied) = self.copied.take() {
            self.decode_last(&copied)?;
        }
        self.decode(chunk)
    }

    /// Passes a chunk on whole when it lies inside the window and after everything of its
    /// series so far (the source's chunks in time order, the common case); `false` when it
    /// must be decoded instead (a window's edge, chunks that overlap).
    fn copy(&mut self, chunk: &Chunk) -> std::result::Result<bool, ChunkError> {
        let histograms = match Encoding::try_from(chunk.r#type) {
            Ok(Encoding::Xor) => false,
            Ok(Encoding::Histogram | Encoding::FloatHistogram) => true,
            Ok(Encoding::Unknown) | Err(_) => return Err(unknown_encoding(chunk.r#type)),
        };
        let inside = self.window.start_ms <= chunk.min_time_ms
            && chunk.max_time_ms < self.window.end_ms
            && chunk.min_time_ms <= chunk.max_time_ms;
        let last = [
            self.last.map(|(t, _)| t),
            self.last_histogram.as_ref().map(|h| h.timestamp),
            self.copied.as_ref().map(|c| c.max_time_ms),
        ]
        .into_iter()
        .flatten()
        .max();
        if !inside || last.is_some_and(|t| chunk.min_time_ms <= t) {
            return Ok(false);
        }
        let n = u64::from(xor::declared_samples(&chunk.data)?);
        if n == 0 {
            return Ok(true);
        }
        if !self.series_counted {
            self.series_counted = true;
            self.series += 1;
        }
        self.samples += n;
        if histograms {
            self.histograms += n;
        }
        self.copied = Some(chunk.clone());
        self.batcher.push_chunk(chunk.clone(), n, histograms);
        Ok(true)
    }

    /// Takes the last sample of a chunk passed on whole as the series' last.
    fn decode_last(&mut self, chunk: &Chunk) -> std::result::Result<(), ChunkError> {
        if chunk.r#type == Encoding::Xor as i32 {
            xor::decode_xor(&chunk.data, &mut self.decoded)?;
            if let Some(&last) = self.decoded.last() {
                self.last = Some(last);
            }
        } else {
            let float = chunk.r#type == Encoding::FloatHistogram as i32;
            decode_histograms(&chunk.data, float, &mut self.decoded_histograms)?;
            if let Some(last) = self.decoded_histograms.pop() {
                self.last_histogram = Some(last);
            }
            self.decoded_histograms.clear();
        }
        Ok(())
    }

    fn decode(&mut self, chunk: &Chunk) -> std::result::Result<(), ChunkError> {
        match Encoding::try_from(chunk.r#type) {
            Ok(Encoding::Xor) => {
                let mut decoded = std::mem::take(&mut self.decoded);
                let result = xor::decode_xor(&chunk.data, &mut decoded);
                if result.is_ok() {
                    for &(t, bits) in &decoded {
                        self.sample(t, bits);
                    }
                }
                self.decoded = decoded;
                result
            }
            Ok(encoding @ (Encoding::Histogram | Encoding::FloatHistogram)) => {
                let mut decoded = std::mem::take(&mut self.decoded_histograms);
                let float = encoding == Encoding::FloatHistogram;
                let result = decode_histograms(&chunk.data, float, &mut decoded);
                if result.is_ok() {
                    for h in decoded.drain(..) {
                        self.histogram(h);
                    }
                }
                self.decoded_histograms = decoded;
                result
            }
            Ok(Encoding::Unknown) | Err(_) => Err(unknown_encoding(chunk.r#type)),
        }
    }

    /// Feeds one sample of the current series; samples outside the window are not ours.
    pub fn sample(&mut self, t: i64, bits: u64) {
        if !self.window.contains(t) {
            return;
        }
        if let Some((last_t, last_bits)) = self.last
            && t <= last_t
        {
            // Overlapping chunks repeat samples; an identical repeat is the same sample.
            if t < last_t {
                self.skip(SKIP_UNORDERED, 1);
            } else if bits != last_bits {
                self.skip(SKIP_CONFLICT, 1);
            }
            return;
        }
        self.last = Some((t, bits));
        if !self.series_counted {
            self.series_counted = true;
            self.series += 1;
        }
        self.samples += 1;
        self.batcher.push(t, f64::from_bits(bits));
    }

    /// Feeds one histogram sample of the current series, under the same rules as `sample`.
    pub fn histogram(&mut self, h: Histogram) {
        if !self.window.contains(h.timestamp) {
            return;
        }
        if let Some(last) = &self.last_histogram
            && h.timestamp <= last.timestamp
        {
            let reason = if h.timestamp < last.timestamp {
                Some(SKIP_UNORDERED)
            } else {
                (!same_histogram(&h, last)).then_some(SKIP_CONFLICT)
            };
            if let Some(reason) = reason {
                self.skip(reason, 1);
                self.histograms_skipped += 1;
            }
            return;
        }
        if !self.series_counted {
            self.series_counted = true;
            self.series += 1;
        }
        self.samples += 1;
        self.histograms += 1;
        if self.first_histogram.is_none() {
            self.first_histogram = Some((self.batcher.open_labels().to_vec(), h.timestamp));
        }
        self.last_histogram = Some(h.clone());
        self.batcher.push_histogram(h);
    }

    pub fn skip(&mut self, reason: &str, n: u64) {
        if n > 0 {
            *self.skipped.entry(reason.to_string()).or_default() += n;
        }
    }

    pub fn take_ready(&mut self) -> Option<Batch> {
        self.batcher.take_ready()
    }

    /// Closes the last batch; call `take_ready` after it.
    pub fn finish(&mut self) {
        self.batcher.flush();
    }

    fn raw_labels(&self) -> &[Label] {
        match &self.raw_labels {
            Some(raw) => raw,
            None => self.batcher.open_labels(),
        }
    }

    pub fn series_name(&self) -> String {
        render(self.raw_labels())
    }
}

/// Two histogram samples are the same when every field is, bit for bit (a stale sum is a NaN,
/// which `==` never finds equal), but the reset hint: Prometheus derives it from where the
/// sample sits in its chunk (the first of a chunk is "unknown", later ones "no"), so the same
/// sample in two overlapping chunks can carry two hints.
pub fn same_histogram(a: &Histogram, b: &Histogram) -> bool {
    let unhinted = |h: &Histogram| {
        Histogram {
            reset_hint: 0,
            ..h.clone()
        }
        .encode_to_vec()
    };
    unhinted(a) == unhinted(b)
}

/// A chunk in an encoding this build cannot decode: newer servers add encodings, and dropping
/// their chunks would lose the samples without a word.
fn unknown_encoding(number: i32) -> ChunkError {
    ChunkError::UnknownEncoding {
        number,
        name: match number {
            0 => "UNKNOWN",
            _ => {
                "not in Prometheus 2.42's list: a newer server's, e.g. XOR2, HISTOGRAM_ST or FLOAT_HISTOGRAM_ST"
            }
        },
        fix: "this build decodes XOR (1), HISTOGRAM (2) and FLOAT_HISTOGRAM (3); the window is \
              left unimported rather than imported without these samples: run a promimport that \
              knows the encoding, then `resume`",
    }
}

/// A chunk error with the series it belongs to, for the message.
pub fn chunk_error(url: String, assembler: &WindowAssembler, source: ChunkError) -> Error {
    Error::SourceChunk {
        url,
        series: assembler.series_name(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &str) -> Vec<Label> {
        vec![Label {
            name: "__name__".into(),
            value: v.into(),
        }]
    }

    fn drain(a: &mut WindowAssembler) -> Vec<(String, i64, f64)> {
        a.finish();
        let mut out = Vec::new();
        while let Some(batch) = a.take_ready() {
            for s in batch.request.timeseries {
                for x in s.samples {
                    out.push((s.labels[0].value.clone(), x.timestamp, x.value));
                }
            }
        }
        out
    }

    #[test]
    fn clips_to_the_window_and_merges_a_series_split_across_frames() {
        let rules = LabelRules::default();
        let mut a = WindowAssembler::new(
            Window {
                start_ms: 10,
                end_ms: 30,
            },
            &rules,
            BatchLimits {
                max_samples: 100,
                max_bytes: 1 << 20,
            },
            false,
        );
        a.series(labels("a")).unwrap();
        for t in [0, 10, 20] {
            a.sample(t, 1.0f64.to_bits());
        }
        a.series(labels("a")).unwrap(); // the next frame continues series a
        for t in [20, 25, 30, 40] {
            a.sample(t, 1.0f64.to_bits());
        }
        a.series(labels("b")).unwrap();
        a.sample(29, 2.0f64.to_bits());
        assert_eq!(a.series, 2);
        assert_eq!(a.samples, 4);
        assert!(a.skipped.is_empty());
        assert_eq!(
            drain(&mut a),
            vec![
                ("a".into(), 10, 1.0),
                ("a".into(), 20, 1.0),
                ("a".into(), 25, 1.0),
                ("b".into(), 29, 2.0)
            ]
        );
    }

    #[test]
    fn disorder_and_conflicts_in_the_source_are_counted_not_hidden() {
        let rules = LabelRules::default();
        let mut a = WindowAssembler::new(
            Window {
                start_ms: 0,
                end_ms: 100,
            },
            &rules,
            BatchLimits {
                max_samples: 100,
                max_bytes: 1 << 20,
            },
            false,
        );
        a.series(labels("a")).unwrap();
        a.sample(20, 1.0f64.to_bits());
        a.sample(20, 1.0f64.to_bits());
        a.sample(20, 2.0f64.to_bits());
        a.sample(10, 1.0f64.to_bits());
        assert_eq!(a.samples, 1);
        assert_eq!(a.skipped[SKIP_CONFLICT], 1);
        assert_eq!(a.skipped[SKIP_UNORDERED], 1);
    }

    #[test]
    fn a_series_with_no_sample_in_the_window_is_not_counted() {
        let rules = LabelRules::default();
        let mut a = WindowAssembler::new(
            Window {
                start_ms: 0,
                end_ms: 10,
            },
            &rules,
            BatchLimits {
                max_samples: 100,
                max_bytes: 1 << 20,
            },
            false,
        );
        a.series(labels("a")).unwrap();
        a.sample(50, 0);
        assert_eq!(a.series, 0);
        assert!(drain(&mut a).is_empty());
    }

    fn xor_chunk(samples: &[(i64, f64)]) -> Chunk {
        let mut encoder = crate::blocks::xor::XorChunk::default();
        for &(t, v) in samples {
            encoder.append(t, v.to_bits());
        }
        Chunk {
            min_time_ms: samples[0].0,
            max_time_ms: samples[samples.len() - 1].0,
            r#type: Encoding::Xor as i32,
            data: encoder.bytes().to_vec().into(),
        }
    }

    #[test]
    fn for_blocks_whole_chunks_pass_undecoded_and_edges_and_overlaps_are_decoded_and_compared() {
        let rules = LabelRules::default();
        let mut a = WindowAssembler::new(
            Window {
                start_ms: 100,
                end_ms: 200,
            },
            &rules,
            BatchLimits {
                max_samples: 1000,
                max_bytes: 1 << 20,
            },
            true,
        );
        a.series(labels("a")).unwrap();
        // Across the window's start: decoded, clipped.
        a.chunk(&xor_chunk(&[(90, 1.0), (100, 2.0), (110, 3.0)]))
            .unwrap();
        // Whole inside: passed on as it is.
        let whole = xor_chunk(&[(120, 4.0), (130, 5.0)]);
        a.chunk(&whole).unwrap();
        // Overlapping the copied chunk (an out-of-order head's chunk): compared with its last
        // sample, the conflict at 130 counted, the repeat at 130 dropped, 140 kept.
        a.chunk(&xor_chunk(&[(130, 9.0)])).unwrap();
        a.chunk(&xor_chunk(&[(130, 5.0), (140, 6.0)])).unwrap();
        a.finish();
        let batch = a.take_ready().unwrap();
        assert!(a.take_ready().is_none());
        assert_eq!(batch.chunks.len(), 1);
        let raw = &batch.chunks[0];
        assert_eq!((raw.position, raw.samples), (1, 2));
        assert_eq!(raw.chunk.data, whole.data);
        let entries: Vec<Vec<i64>> = batch
            .request
            .timeseries
            .iter()
            .map(|s| s.samples.iter().map(|x| x.timestamp).collect())
            .collect();
        assert_eq!(entries, [vec![100, 110], vec![140]]);
        assert_eq!(a.samples, 5);
        assert_eq!(a.skipped[SKIP_CONFLICT], 1);
    }

    #[test]
    fn oversized_label_sets_are_refused() {
        assert!(check_limits(&labels("ok")).is_ok());
        let many: Vec<Label> = (0..=MAX_LABELS_PER_SERIES)
            .map(|i| Label {
                name: format!("l{i}"),
                value: "v".into(),
            })
            .collect();
        assert!(check_limits(&many).unwrap_err().contains("257 labels"));
        let long = vec![Label {
            name: "big".into(),
            value: "x".repeat(MAX_LABEL_BYTES + 1),
        }];
        assert!(
            check_limits(&long)
                .unwrap_err()
                .contains("\"big\" longer than")
        );
    }

    #[test]
    fn histogram_chunks_are_clipped_merged_and_unknown_encodings_refused() {
        use crate::blocks::histogram::test_chunk;
        use crate::proto::histogram::{Count, ZeroCount};
        let rules = LabelRules::default();
        let mut a = WindowAssembler::new(
            Window {
                start_ms: 10,
                end_ms: 40,
            },
            &rules,
            BatchLimits {
                max_samples: 100,
                max_bytes: 1 << 20,
            },
            false,
        );
        let h = |t: i64| Histogram {
            count: Some(Count::CountInt(t as u64)),
            zero_count: Some(ZeroCount::ZeroCountInt(0)),
            sum: t as f64,
            timestamp: t,
            reset_hint: 2,
            ..Histogram::default()
        };
        let chunk = |times: &[i64]| Chunk {
            min_time_ms: times[0],
            max_time_ms: times[times.len() - 1],
            r#type: Encoding::Histogram as i32,
            data: test_chunk(
                0b0100_0000,
                &times.iter().map(|&t| h(t)).collect::<Vec<_>>(),
            )
            .into(),
        };
        a.series(labels("h")).unwrap();
        a.chunk(&chunk(&[0, 10, 20])).unwrap();
        // Overlapping chunks: 20 again, identical, is the same sample.
        a.chunk(&chunk(&[20, 30, 40])).unwrap();
        assert_eq!((a.samples, a.histograms, a.series), (3, 3, 1));
        assert!(a.skipped.is_empty(), "{:?}", a.skipped);
        a.finish();
        let batch = a.take_ready().unwrap();
        let times: Vec<i64> = batch.request.timeseries[0]
            .histograms
            .iter()
            .map(|h| h.timestamp)
            .collect();
        assert_eq!(times, [10, 20, 30]);
        for number in [0, 4, 99] {
            let err = a
                .chunk(&Chunk {
                    r#type: number,
                    ..chunk(&[10])
                })
                .unwrap_err();
            assert!(
                err.to_string().contains(&format!("encoding {number}"))
                    && err.to_string().contains("run a promimport that knows"),
                "{err}"
            );
        }
    }
}
