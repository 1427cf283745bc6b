//! What a peer's answer means: the retry table of remote write receivers (accepted, retry,
//! throttled, refused and why, with the fix), a source's over-limit answers, and the
//! Kubernetes API's transient answers. Remote write 1.0 spec ("Retries & Backoff"): retry 5xx
//! and 429, never other 4xx. Receivers bend this: Prometheus answers 500 for "too old sample" (a
//! rejection that never heals), so the body is read before the status code. How long and how
//! often to try again is `retry.rs`; errors (`error.rs`) ask this module what they are.

use std::time::Duration;

/// Why the destination refused samples. Each reason carries the fix a user needs.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Older than the receiver's head block and no out-of-order window (TSDB "out of bounds").
    OutOfBounds,
    /// Older than the receiver's out-of-order window ("too old sample").
    TooOld,
    /// Behind a newer sample of the same series without an out-of-order window.
    OutOfOrder,
    /// Cortex's `reject_old_samples` limit ("timestamp too old").
    RejectOldSamples,
    /// The receiver holds a different value at the same timestamp.
    DuplicateSample,
    /// More labels than the tenant's `max_label_names_per_series` (Cortex, Mimir).
    TooManyLabels,
    /// A label name or value longer than the tenant allows.
    LabelTooLong,
    /// A label set the receiver calls invalid: duplicate or invalid names, no metric name.
    InvalidLabels,
    /// Ahead of the receiver's clock by more than its grace period.
    TooFarInFuture,
    /// The tenant holds as many series as it may.
    SeriesLimit,
    /// The receiver does not take native histograms (a feature flag or setting is off).
    NativeHistogramsDisabled,
    /// The receiver answered 2xx to native histograms and stored none: found by reading one back.
    NativeHistogramsDropped,
    /// `--dest-blocks`: a native histogram sample a chunk cannot hold as it is (its buckets
    /// are not as many as its spans say).
    InvalidHistogram,
    /// `--dest-blocks`: a sample at or before one its series already has in the block (two
    /// source series made one by --drop-label, or selectors that overlap).
    DisorderedInBlock,
    /// Any other 400/422: the first line of the receiver's message.
    Other(String),
}

/// The out-of-order advice, one text for every reason that refuses old history.
const OUT_OF_ORDER_FIX: &str = "the destination needs an out-of-order window at least as long as \
    the history imported. Cortex >= 1.15: `limits: {out_of_order_time_window: 30d}` in its config, or \
    for one tenant in the runtime overrides file (`overrides: {TENANT: {out_of_order_time_window: 30d}}`); \
    Mimir: `-ingester.out-of-order-time-window=30d` or the tenant's `out_of_order_time_window` override; \
    Prometheus >= 2.39: `storage: {tsdb: {out_of_order_time_window: 30d}}`. Without it: import oldest \
    first (--parallel 1, --window 1h or less) into a tenant that receives no live data yet";

impl RejectReason {
    /// Whether the receiver will refuse all older history too: an import that meets this on a
    /// whole window stops instead of sending every other window to the same fate.
    pub fn rejects_all_history(&self) -> bool {
        matches!(
            self,
            RejectReason::OutOfBounds
                | RejectReason::TooOld
                | RejectReason::OutOfOrder
                | RejectReason::RejectOldSamples
                | RejectReason::NativeHistogramsDisabled
                | RejectReason::NativeHistogramsDropped
        )
    }

    pub fn fix(&self) -> &'static str {
        match self {
            RejectReason::OutOfBounds | RejectReason::TooOld | RejectReason::OutOfOrder => {
                OUT_OF_ORDER_FIX
            }
            RejectReason::RejectOldSamples => {
                "the tenant refuses samples older than `reject_old_samples_max_age`: set \
                 `reject_old_samples: false` for it while importing (Cortex limits or the runtime \
                 overrides file), then import again"
            }
            RejectReason::DuplicateSample => {
                "the destination already holds other values at these timestamps (another writer, or \
                 an earlier import with other --drop-label/--set-label): import into an empty range or \
                 change the relabelling"
            }
            RejectReason::TooManyLabels => {
                "drop labels the destination does not need with --drop-label (often the Prometheus \
                 operator's external labels, e.g. prometheus_replica), or raise the tenant's \
                 `max_label_names_per_series` (Cortex limits or runtime overrides; Mimir \
                 -validation.max-label-names-per-series), then import again"
            }
            RejectReason::LabelTooLong => {
                "raise the tenant's `max_label_name_length` / `max_label_value_length` (Cortex limits or \
                 runtime overrides; Mimir -validation.max-length-label-name/-value) or drop the label \
                 with --drop-label, then import again"
            }
            RejectReason::InvalidLabels => {
                "the destination refuses these label sets: rename or drop the offending labels with \
                 --drop-label/--set-label, then import again"
            }
            RejectReason::TooFarInFuture => {
                "the source holds samples ahead of the destination's clock: check both clocks; Cortex \
                 `creation_grace_period`, Mimir -validation.create-grace-period"
            }
            RejectReason::SeriesLimit => {
                "the tenant holds as many series as it may: raise `max_series_per_user` / \
                 `max_global_series_per_user` (Cortex) or -ingester.max-global-series-per-user (Mimir), \
                 or import fewer series with --match"
            }
            RejectReason::NativeHistogramsDisabled => {
                "the destination does not take native histograms yet: Prometheus 2.40 to 2.x needs \
                 --enable-feature=native-histograms (restart it), Mimir \
                 -ingester.native-histograms-ingestion-enabled, Cortex \
                 `blocks_storage: {tsdb: {enable_native_histograms: true}}`; then import again, or \
                 leave the histogram series out with --match"
            }
            RejectReason::NativeHistogramsDropped => {
                "the destination takes native histograms without storing them: Cortex needs \
                 `blocks_storage: {tsdb: {enable_native_histograms: true}}` (off by default), \
                 Mimir -ingester.native-histograms-ingestion-enabled; \
                 VictoriaMetrics before native histogram support cannot keep them. Enable them, then \
                 import again, or leave the histogram series out with --match"
            }
            RejectReason::InvalidHistogram => {
                "the source answered native histogram samples whose buckets do not match their \
                 spans, which no TSDB chunk can hold: leave the series out with --match, or \
                 import it by remote write (--dest) and let the receiver judge it"
            }
            RejectReason::DisorderedInBlock => {
                "series became one after relabelling (--drop-label) or were selected twice by \
                 overlapping --match selectors: keep a label that tells them apart, or make the \
                 selectors disjoint"
            }
            RejectReason::Other(_) => {
                "read the destination's message above; if it names a limit, raise it for the tenant \
                 or leave the series out with --match/--drop-label"
            }
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::OutOfBounds => f.write_str("out of bounds"),
            RejectReason::TooOld => f.write_str("too old"),
            RejectReason::OutOfOrder => f.write_str("out of order"),
            RejectReason::RejectOldSamples => f.write_str("older than the tenant accepts"),
            RejectReason::DuplicateSample => f.write_str("duplicate sample with another value"),
            RejectReason::TooManyLabels => f.write_str("too many labels"),
            RejectReason::LabelTooLong => f.write_str("label name or value too long"),
            RejectReason::InvalidLabels => f.write_str("invalid labels"),
            RejectReason::TooFarInFuture => f.write_str("too far in the future"),
            RejectReason::SeriesLimit => f.write_str("over the tenant's series limit"),
            RejectReason::NativeHistogramsDisabled => {
                f.write_str("native histograms not enabled at the destination")
            }
            RejectReason::NativeHistogramsDropped => {
                f.write_str("native histograms accepted, then not stored")
            }
            RejectReason::InvalidHistogram => {
                f.write_str("native histogram whose buckets do not match its spans")
            }
            RejectReason::DisorderedInBlock => {
                f.write_str("at or before a sample already in the series' block")
            }
            RejectReason::Other(message) => write!(f, "refused: {message}"),
        }
    }
}

/// A receiver's per-tenant ingestion rate limit, as its 429 names it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Samples per second.
    pub rate: f64,
    /// The most samples one request may carry, when the receiver says (Mimir does).
    pub burst: Option<u64>,
}

impl RateLimit {
    /// Cortex: "ingestion rate limit (25000) exceeded while adding 10000 samples and 0 metadata".
    /// Mimir: "... exceeded the ingestion rate limit, set to 10000 items/s with a maximum allowed
    /// burst of 200000 ...".
    pub fn parse(body: &str) -> Option<RateLimit> {
        let lower = body.to_ascii_lowercase();
        let rest = &lower[lower.find("ingestion rate limit")? + "ingestion rate limit".len()..];
        let rate = number_after(rest, "(").or_else(|| number_after(rest, "set to "))?;
        let burst = number_after(rest, "burst of ").map(|b| b as u64);
        Some(RateLimit { rate, burst })
    }
}

/// The number that follows `marker` in `text` (the first occurrence), e.g. 25000 in "(25000)".
fn number_after(text: &str, marker: &str) -> Option<f64> {
    let start = text.find(marker)? + marker.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().ok().filter(|n: &f64| *n > 0.0)
}

/// What to do with one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    Accepted,
    /// Try again after the backoff, or after `after` when the receiver said (Retry-After).
    Retry {
        after: Option<Duration>,
    },
    /// The tenant's ingestion rate limit: slow down to it and send again. Waiting on a limit
    /// is pacing, not trouble, so it does not spend the retry budget.
    Throttled(RateLimit),
    /// The samples in this request were refused; other requests may still succeed.
    Rejected(RejectReason),
    /// Every request will be refused the same way (auth, wrong URL, too large): stop.
    Fatal {
        fix: &'static str,
    },
}

/// The table. `None` status means the request got no answer (connect error, reset, timeout).
pub fn classify(status: Option<u16>, body: &str, retry_after: Option<Duration>) -> Disposition {
    let Some(status) = status else {
        return Disposition::Retry { after: None };
    };
    if (200..300).contains(&status) {
        return Disposition::Accepted;
    }
    if status >= 400
        && let Some(reason) = known_rejection(body)
    {
        return Disposition::Rejected(reason);
    }
    if status == 400 && not_a_write_request(body) {
        return Disposition::Fatal {
            fix: "the destination could not decode a remote write request: check that --dest is its \
                  remote write URL (Cortex, Mimir: /api/v1/push; Prometheus, VictoriaMetrics: \
                  /api/v1/write), not a remote read or query URL",
        };
    }
    if status == 429
        && let Some(limit) = RateLimit::parse(body)
    {
        return Disposition::Throttled(limit);
    }
    match status {
        429 | 500..=599 => Disposition::Retry { after: retry_after },
        400 | 422 => Disposition::Rejected(RejectReason::Other(first_line(body))),
        401 if tenant_missing(body) => Disposition::Fatal { fix: TENANT_FIX },
        401 | 403 => Disposition::Fatal {
            fix: "check the destination credentials (--dest-bearer-token-file, --dest-basic-user) \
                  and, for Cortex or Mimir, the tenant (--dest-header X-Scope-OrgID=TENANT)",
        },
        404 | 405 => Disposition::Fatal {
            fix: "check the destination URL: Prometheus takes remote write at /api/v1/write \
                  (with --web.enable-remote-write-receiver), Cortex and Mimir at /api/v1/push, \
                  VictoriaMetrics at /api/v1/write",
        },
        413 => Disposition::Fatal {
            fix: "the destination refuses requests this large: lower --batch-samples",
        },
        _ => Disposition::Fatal {
            fix: "the destination refuses the request; read its message",
        },
    }
}

/// Matches the error texts that Prometheus, Cortex and Mimir put in their bodies. Order
/// matters: "timestamp too old" is Cortex's limit, "too old sample" the TSDB's.
fn known_rejection(body: &str) -> Option<RejectReason> {
    let body = body.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| body.contains(n));
    let reason = if has(&[
        "native histograms are disabled",
        "native histogram ingestion is disabled",
        "native histograms ingestion is disabled",
    ]) {
        RejectReason::NativeHistogramsDisabled
    } else if has(&["timestamp too old", "sample-timestamp-too-old"]) {
        RejectReason::RejectOldSamples
    } else if has(&["out of bounds"]) {
        RejectReason::OutOfBounds
    } else if has(&["too old"]) {
        RejectReason::TooOld
    } else if has(&["out of order"]) {
        RejectReason::OutOfOrder
    } else if has(&["duplicate sample"]) {
        RejectReason::DuplicateSample
    } else if has(&[
        "too many labels",
        "number of labels exceeds",
        "label names; limit",
    ]) {
        RejectReason::TooManyLabels
    } else if has(&[
        "label name too long",
        "label value too long",
        "label name length exceeds",
        "label value length exceeds",
    ]) {
        RejectReason::LabelTooLong
    } else if has(&[
        "duplicate label name",
        "invalid label",
        "labels not sorted",
        "invalid metric name",
        "missing metric name",
    ]) {
        RejectReason::InvalidLabels
    } else if has(&[
        "timestamp too new",
        "too far in the future",
        "too far in future",
    ]) {
        RejectReason::TooFarInFuture
    } else if has(&[
        "series limit",
        "max-series-per-user",
        "max-global-series-per-user",
    ]) {
        RejectReason::SeriesLimit
    } else {
        return None;
    };
    Some(reason)
}

/// The source's row for an answer larger than its own limits: a query it refuses for its size
/// is read again in two halves of its time range, never reported as a failed window that a
/// person must tune. Prometheus in SAMPLES mode: 400 "exceeded sample limit (N)"
/// (`--storage.remote.read-sample-limit`, 5e7); Cortex: "the query hit the max number of
/// chunks limit" / "... series limit" / "aggregated chunks size limit"; Mimir: "the query
/// exceeded the maximum number of chunks"; Thanos: "exceeded chunks limit".
pub fn source_answer_over_limit(status: u16, body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    (400..600).contains(&status)
        && [
            "exceeded sample limit",
            "max number of chunks",
            "max number of series",
            "maximum number of chunks",
            "maximum number of series",
            "chunks size limit",
            "exceeded chunks limit",
            "exceeded series limit",
        ]
        .iter()
        .any(|phrase| body.contains(phrase))
}

/// Cortex's and Mimir's answer to a request without the tenant header.
pub fn tenant_missing(body: &str) -> bool {
    body.to_ascii_lowercase().contains("no org id")
}

pub const TENANT_FIX: &str = "Cortex and Mimir need the tenant: --dest-header X-Scope-OrgID=TENANT \
    (in Opni, the cluster's ID)";

/// A receiver that took our request for something else: a remote read endpoint decoding a
/// `WriteRequest` as a `ReadRequest` ("proto: wrong wireType"), or one that cannot parse it.
fn not_a_write_request(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("wrong wiretype") || body.contains("illegal tag") || body.contains("proto: ")
}

/// The first line of a receiver's message, bounded so a huge HTML page cannot flood the logs.
pub fn first_line(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return "(empty body)".to_string();
    }
    let mut end = line.len().min(300);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}

/// Parses Retry-After in its delay-seconds form; the HTTP-date form is rare among metric
/// receivers and is treated as absent (the backoff then applies).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Disposition::*;

    fn after(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    // One test per row of the table.
    #[test]
    fn success_is_any_2xx() {
        assert_eq!(classify(Some(200), "", None), Accepted);
        assert_eq!(classify(Some(204), "", None), Accepted);
    }

    #[test]
    fn no_answer_is_retried() {
        assert_eq!(classify(None, "", None), Retry { after: None });
    }

    #[test]
    fn too_many_requests_is_retried_after_what_the_receiver_says() {
        assert_eq!(
            classify(Some(429), "slow down", after(7)),
            Retry { after: after(7) }
        );
        assert_eq!(
            classify(Some(429), "slow down", None),
            Retry { after: None }
        );
    }

    #[test]
    fn an_ingestion_rate_limit_is_throttling_with_the_limit_it_names() {
        let cortex =
            "ingestion rate limit (25000) exceeded while adding 10000 samples and 0 metadata";
        assert_eq!(
            classify(Some(429), cortex, None),
            Throttled(RateLimit {
                rate: 25000.0,
                burst: None
            })
        );
        let mimir = "the request has been rejected because the tenant exceeded the ingestion rate \
                     limit, set to 10000 items/s with a maximum allowed burst of 200000. This limit \
                     is applied on the total number of samples (err-mimir-tenant-max-ingestion-rate)";
        assert_eq!(
            classify(Some(429), mimir, None),
            Throttled(RateLimit {
                rate: 10000.0,
                burst: Some(200000)
            })
        );
        // A 429 that names no limit (a proxy, VictoriaMetrics) is an ordinary retry.
        assert_eq!(
            classify(Some(429), "ingestion rate limit exceeded", None),
            Retry { after: None }
        );
    }

    #[test]
    fn server_errors_are_retried() {
        for status in [500, 502, 503, 504] {
            assert_eq!(
                classify(Some(status), "boom", after(1)),
                Retry { after: after(1) }
            );
        }
    }

    #[test]
    fn prometheus_too_old_as_500_is_a_rejection_not_a_retry() {
        let body = "too old sample\n";
        assert_eq!(
            classify(Some(500), body, None),
            Rejected(RejectReason::TooOld)
        );
    }

    #[test]
    fn tsdb_rejections_are_classified_by_body() {
        let cases = [
            ("out of bounds", RejectReason::OutOfBounds),
            (
                "err: out of order sample. timestamp=...",
                RejectReason::OutOfOrder,
            ),
            (
                "duplicate sample for timestamp",
                RejectReason::DuplicateSample,
            ),
            ("Too Old Sample", RejectReason::TooOld),
            (
                "timestamp too old: 1700000000000 metric: \"up\"",
                RejectReason::RejectOldSamples,
            ),
            (
                "series has too many labels (actual: 37, limit: 30) series: 'k{i=\"0\"}'",
                RejectReason::TooManyLabels,
            ),
            (
                "received a series whose number of labels exceeds the limit (actual: 31, limit: 30)",
                RejectReason::TooManyLabels,
            ),
            (
                "label value too long: \"aaaa\" metric \"up\"",
                RejectReason::LabelTooLong,
            ),
            (
                "duplicate label name: \"job\" metric \"up\"",
                RejectReason::InvalidLabels,
            ),
            (
                "timestamp too new: 1900000000000 metric: \"up\"",
                RejectReason::TooFarInFuture,
            ),
            (
                "per-user series limit of 5000000 exceeded",
                RejectReason::SeriesLimit,
            ),
        ];
        for (body, reason) in cases {
            assert_eq!(classify(Some(400), body, None), Rejected(reason));
        }
        // Prometheus 2.42 without --enable-feature=native-histograms answers 500: not a
        // failure another try fixes.
        assert_eq!(
            classify(Some(500), "native histograms are disabled\n", None),
            Rejected(RejectReason::NativeHistogramsDisabled)
        );
        assert!(RejectReason::NativeHistogramsDisabled.rejects_all_history());
    }

    #[test]
    fn other_bad_requests_reject_the_batch_with_the_message() {
        assert_eq!(
            classify(Some(400), "label name \"\" is invalid\nmore", None),
            Rejected(RejectReason::Other("label name \"\" is invalid".into()))
        );
        assert_eq!(
            classify(Some(422), "", None),
            Rejected(RejectReason::Other("(empty body)".into()))
        );
    }

    #[test]
    fn a_missing_tenant_and_a_request_read_as_something_else_stop_the_import_with_their_fix() {
        assert_eq!(
            classify(Some(401), "no org id\n", None),
            Fatal { fix: TENANT_FIX }
        );
        let Fatal { fix } = classify(
            Some(400),
            "proto: wrong wireType = 2 for field Queries",
            None,
        ) else {
            panic!("not fatal");
        };
        assert!(fix.contains("/api/v1/push"), "{fix}");
    }

    #[test]
    fn auth_url_and_size_errors_stop_the_import() {
        for status in [401, 403, 404, 405, 413, 418] {
            assert!(
                matches!(classify(Some(status), "no", None), Fatal { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_takes_seconds() {
        assert_eq!(parse_retry_after(Some(" 3 ")), after(3));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn a_source_answer_over_its_own_limit_is_read_again_in_parts() {
        for (status, body) in [
            (400, "exceeded sample limit (50000000)"),
            (
                422,
                "the query hit the max number of chunks limit (limit: 2000000 series: 12)",
            ),
            (
                422,
                "the query hit the max number of series limit (limit: 100000 series)",
            ),
            (
                422,
                "the query exceeded the maximum number of chunks (limit: 1 chunks) (err-mimir-max-chunks-per-query)",
            ),
            (
                500,
                "rpc error: code = Aborted desc = exceeded chunks limit: limit 10 violated",
            ),
        ] {
            assert!(source_answer_over_limit(status, body), "{status} {body}");
        }
        for (status, body) in [
            (400, "parse error: bad matcher"),
            (503, "too many concurrent reads"),
            (200, "exceeded sample limit (10)"),
        ] {
            assert!(!source_answer_over_limit(status, body), "{status} {body}");
        }
    }

    #[test]
    fn first_line_is_bounded_and_utf8_safe() {
        let long = "é".repeat(400);
        let line = first_line(&long);
        assert!(line.len() <= 300 && line.chars().all(|c| c == 'é'));
    }
}

/// The Kubernetes rows: whether the API server's answer may change if the same request is
/// sent again. A write that lost a race (409 `Conflict`, not 409 `AlreadyExists`), an API
/// server shedding load (429) or failing (5xx), and a connection that broke are; anything
/// else (forbidden, not found, invalid) needs a person.
pub fn kube_is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => match status.code {
            409 => status.reason == "Conflict",
            429 | 500..=599 => true,
            _ => false,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod kube_tests {
    use super::*;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: "m".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn a_lost_race_an_overload_and_a_server_failure_are_retried() {
        assert!(kube_is_transient(&api(409, "Conflict")));
        assert!(kube_is_transient(&api(429, "TooManyRequests")));
        for code in [500, 502, 503, 504] {
            assert!(kube_is_transient(&api(code, "InternalError")), "{code}");
        }
    }

    #[test]
    fn an_existing_object_a_refusal_and_a_missing_one_are_not() {
        assert!(!kube_is_transient(&api(409, "AlreadyExists")));
        for code in [400, 401, 403, 404, 422] {
            assert!(!kube_is_transient(&api(code, "x")), "{code}");
        }
        let not_json = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(!kube_is_transient(&kube::Error::SerdeError(not_json)));
    }
}
