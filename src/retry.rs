//! The retry table: what each answer of a remote write receiver means and what to do about it.
//! Remote write 1.0 spec ("Retries & Backoff"): retry 5xx and 429, never other 4xx. Receivers
//! bend this: Prometheus answers 500 for "too old sample" (a rejection that never heals), so the
//! body is read before the status code.

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
    /// The receiver holds a different value at the same timestamp.
    DuplicateSample,
    /// Any other 400/422: the first line of the receiver's message.
    Other(String),
}

impl RejectReason {
    /// Whether the receiver will refuse all older history too: an import that meets this on a
    /// whole window stops instead of sending every other window to the same fate.
    pub fn rejects_all_history(&self) -> bool {
        matches!(
            self,
            RejectReason::OutOfBounds | RejectReason::TooOld | RejectReason::OutOfOrder
        )
    }

    pub fn fix(&self) -> &'static str {
        match self {
            RejectReason::OutOfBounds | RejectReason::TooOld | RejectReason::OutOfOrder => {
                "enable an out-of-order window on the destination at least as long as the \
                 history imported: Prometheus >= 2.39 `storage: {tsdb: {out_of_order_time_window: 30d}}` \
                 in its config file; Cortex and Mimir the per-tenant `out_of_order_time_window` limit"
            }
            RejectReason::DuplicateSample => {
                "the destination already holds other values at these timestamps (another writer, or \
                 an earlier import with other --drop-label/--set-label): import into an empty range or \
                 change the relabelling"
            }
            RejectReason::Other(_) => "read the destination's message above",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::OutOfBounds => f.write_str("out of bounds"),
            RejectReason::TooOld => f.write_str("too old"),
            RejectReason::OutOfOrder => f.write_str("out of order"),
            RejectReason::DuplicateSample => f.write_str("duplicate sample with another value"),
            RejectReason::Other(message) => write!(f, "refused: {message}"),
        }
    }
}

/// What to do with one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    Accepted,
    /// Try again after the backoff, or after `after` when the receiver said (Retry-After).
    Retry {
        after: Option<Duration>,
    },
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
    match status {
        429 | 500..=599 => Disposition::Retry { after: retry_after },
        400 | 422 => Disposition::Rejected(RejectReason::Other(first_line(body))),
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

/// Matches the TSDB error texts that Prometheus, Cortex and Mimir put in their bodies.
fn known_rejection(body: &str) -> Option<RejectReason> {
    let body = body.to_ascii_lowercase();
    if body.contains("out of bounds") {
        Some(RejectReason::OutOfBounds)
    } else if body.contains("too old") {
        Some(RejectReason::TooOld)
    } else if body.contains("out of order") {
        Some(RejectReason::OutOfOrder)
    } else if body.contains("duplicate sample") {
        Some(RejectReason::DuplicateSample)
    } else {
        None
    }
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
        ];
        for (body, reason) in cases {
            assert_eq!(classify(Some(400), body, None), Rejected(reason));
        }
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

/// How often a Kubernetes request is tried when its answer is transient: five tries over
/// about ten seconds, so a worker's ledger write survives an API server restart or a burst
/// of conflicts instead of failing the Job and importing the window again.
pub fn kube_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(5)
        .with_jitter()
}

/// Sends a request again while the API server's answer is transient (the Kubernetes rows of
/// the retry table), within `retry::kube_backoff`.
pub async fn kube_with_retries<T, F, Fut>(action: String, request: F) -> crate::error::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
{
    use backon::Retryable;
    request
        .retry(kube_backoff())
        .when(kube_is_transient)
        .notify(|e, after| tracing::warn!(%action, error = %e, ?after, "Kubernetes API answer is transient; trying again"))
        .await
        .map_err(crate::error::kube_error(action.clone()))
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

/// How hard to try before giving up on an endpoint: capped exponential backoff with jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // 10 retries capped at 30 s ride out about three minutes of trouble: a receiver restart.
        RetryPolicy {
            retries: 10,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.retries)
            .with_jitter()
    }

    /// The wait before the next attempt: the receiver's Retry-After when it gave one (bounded,
    /// so a hostile or confused server cannot park us for a day), else the backoff's. `None`
    /// from the backoff means the budget is spent, and Retry-After does not extend it.
    pub fn next_delay(
        &self,
        backoff: Option<Duration>,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let backoff = backoff?;
        Some(retry_after.map_or(backoff, |after| after.min(MAX_RETRY_AFTER)))
    }
}

const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn retry_after_replaces_the_backoff_but_not_the_budget() {
        let policy = RetryPolicy::default();
        let backoff = Some(Duration::from_secs(2));
        assert_eq!(
            policy.next_delay(backoff, Some(Duration::from_secs(9))),
            Some(Duration::from_secs(9))
        );
        assert_eq!(policy.next_delay(backoff, None), backoff);
        assert_eq!(
            policy.next_delay(backoff, Some(Duration::from_secs(86_400))),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(policy.next_delay(None, Some(Duration::from_secs(1))), None);
    }
}
