//! The remote write 1.0 sender: protobuf `WriteRequest` → snappy block → POST with the
//! spec's headers, retried per the table in `retry.rs`.

mod encode;
pub mod pace;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::Retryable;

use crate::answer::{Disposition, RejectReason, classify, first_line, parse_retry_after};
use crate::destination::batch::{
    Batch, histograms_in, samples_in, split_by_label_limit, split_samples, split_series,
};
use crate::destination::delivery::{Delivery, Refused, SendCosts};
use crate::destination::kept;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::proto::WriteRequest;
use crate::protocol;
use crate::retry::RetryPolicy;
use pace::Pacer;

/// 429s naming the rate limit in a row for one request before it is split (it may be larger
/// than the tenant's burst, which Cortex does not name) or given up on.
const THROTTLES_BEFORE_SPLIT: u32 = 3;
const MAX_THROTTLES: u32 = 30;

#[derive(Clone)]
pub struct DestinationWriter {
    endpoint: Endpoint,
    retry: RetryPolicy,
    timeout: Duration,
    /// Shared by every clone, so all windows of a run keep to one pace per destination.
    pacer: Arc<Pacer>,
}

/// The destination's answer to one request, once retries are over.
#[derive(Debug, PartialEq)]
enum Verdict {
    Accepted,
    Rejected {
        reason: RejectReason,
        message: String,
    },
}

/// One failed attempt, as the retry loop sees it.
struct Attempt {
    disposition: Disposition,
    status: Option<u16>,
    message: String,
    /// The certificate problem that failed it, if one did: permanent, never retried.
    certificate: Option<String>,
}

/// One request's answer, as the batch's resolution needs it.
enum Answer {
    Accepted,
    Rejected {
        reason: RejectReason,
        message: String,
    },
    /// Refused for rate again and again while paced: more samples than the limit lets
    /// through at once (Cortex's `ingestion_burst_size` is not in its message).
    TooLarge,
}

/// Refuses a destination URL that is plainly not a remote write endpoint (a remote read or
/// query URL, which users copy from the source's side), before anything is sent.
pub fn check_write_url(url: &reqwest::Url) -> Result<()> {
    let path = url.path().trim_end_matches('/');
    let kind = if path.ends_with("/read") {
        "a remote read URL"
    } else if path.ends_with("/query") || path.ends_with("/query_range") {
        "a query API URL"
    } else {
        return Ok(());
    };
    Err(Error::invalid(
        "--dest",
        url.as_str(),
        format!(
            "is {kind}; samples are written to the remote write URL: Cortex and Mimir \
             /api/v1/push, Prometheus and VictoriaMetrics /api/v1/write"
        ),
    ))
}

impl DestinationWriter {
    pub fn new(
        endpoint: Endpoint,
        retry: RetryPolicy,
        timeout: Duration,
        max_samples_per_second: Option<f64>,
    ) -> Self {
        DestinationWriter {
            endpoint,
            retry,
            timeout,
            pacer: Arc::new(Pacer::new(max_samples_per_second)),
        }
    }

    pub fn url(&self) -> String {
        self.endpoint.display_url()
    }

    /// Whether a connection to the destination can be made at all (see `endpoint::probe`).
    pub async fn probe(&self) -> Result<()> {
        self.endpoint.probe("destination").await
    }

    /// Sends one batch. `Err` means the import cannot go on against this destination as it is:
    /// the retry budget is spent, or every request will be refused (auth, URL, size).
    ///
    /// A receiver may refuse part of a request: Cortex and Mimir store the valid series and
    /// answer 400 naming one refused series; Prometheus stores none. A refused request with
    /// more than one series is therefore sent again split (series over a label limit the
    /// answer names are set aside at once; otherwise in halves), until every series has its
    /// own answer. Sending accepted samples again is harmless: receivers take an identical
    /// sample twice without complaint.
    #[tracing::instrument(level = "debug", name = "request", skip_all, fields(kind = "remote write", samples = batch.samples))]
    pub async fn send(&self, batch: Batch, costs: &mut SendCosts) -> Result<Delivery> {
        let mut delivery = Delivery::default();
        if !batch.chunks.is_empty() {
            return Err(Error::Internal(
                "whole chunks were handed to remote write, which sends samples".into(),
            ));
        }
        let mut parts = vec![batch.request];
        while let Some(request) = parts.pop() {
            let samples = samples_in(&request);
            let burst = self.pacer.limit().and_then(|l| l.burst);
            let answer = match burst {
                Some(burst) if samples > burst => Answer::TooLarge,
                _ => self.post(&request, samples, costs).await?,
            };
            match answer {
                Answer::Accepted => {
                    delivery.written += samples;
                    delivery.written_histograms += histograms_in(&request);
                }
                Answer::TooLarge => {
                    // Older samples first, so each series stays in order at the receiver.
                    let (older, newer) = split_samples(request);
                    parts.push(newer);
                    parts.push(older);
                }
                Answer::Rejected { reason, message } if request.timeseries.len() > 1 => {
                    let (refused, rest) = if reason == RejectReason::TooManyLabels {
                        split_by_label_limit(request, &message)
                    } else {
                        (WriteRequest::default(), request)
                    };
                    if refused.timeseries.is_empty() {
                        let (first, second) = split_series(rest);
                        parts.push(second);
                        parts.push(first);
                        continue;
                    }
                    delivery.refused.push(Refused {
                        reason,
                        samples: samples_in(&refused),
                        histograms: histograms_in(&refused),
                        message,
                    });
                    if !rest.timeseries.is_empty() {
                        parts.push(rest);
                    }
                }
                Answer::Rejected { reason, message } => delivery.refused.push(Refused {
                    reason,
                    samples,
                    histograms: histograms_in(&request),
                    message,
                }),
            }
        }
        costs.limit = self.pacer.limit();
        Ok(delivery)
    }

    /// Sends one request at the destination's pace, retrying per the retry table.
    async fn post(
        &self,
        request: &WriteRequest,
        samples: u64,
        costs: &mut SendCosts,
    ) -> Result<Answer> {
        let started = Instant::now();
        let body = protocol::snappy(&encode::encode_write_request(request))?;
        costs.encode += started.elapsed();
        costs.requests += 1;
        costs.bytes += body.len() as u64;
        let mut throttles = 0;
        loop {
            costs.throttled += self.pacer.admit(samples).await;
            let started = Instant::now();
            let verdict = self.with_retries(&body, costs).await;
            costs.write += started.elapsed();
            let failed = match verdict {
                Ok(Verdict::Accepted) => {
                    self.pacer.accepted();
                    return Ok(Answer::Accepted);
                }
                Ok(Verdict::Rejected { reason, message }) => {
                    return Ok(Answer::Rejected { reason, message });
                }
                Err(failed) => failed,
            };
            let Disposition::Throttled(limit) = failed.disposition else {
                return Err(self.failure(failed));
            };
            throttles += 1;
            costs.throttles += 1;
            self.pacer.throttled(limit, samples);
            tracing::info!(
                limit = limit.rate,
                samples,
                "destination's ingestion rate limit reached; slowing down"
            );
            // A burst the receiver names is a hard bound; one it does not name (Cortex) is
            // guessed from refusals that go on even at the pace. Whatever the request's size:
            // a tenant's burst may be below its rate (a 22 000-sample request against a burst
            // of 20 000 and a rate of 25 000 would otherwise wait forever), and halving a
            // request that only met live traffic costs one request more.
            let over_burst = limit.burst.is_some_and(|burst| samples > burst);
            let over_guess = throttles >= THROTTLES_BEFORE_SPLIT;
            if samples > 1 && (over_burst || over_guess) {
                return Ok(Answer::TooLarge);
            }
            if throttles >= MAX_THROTTLES {
                return Err(Error::DestinationThrottled {
                    url: self.url(),
                    rate: limit.rate,
                    throttles,
                    message: failed.message,
                });
            }
        }
    }

    /// One request, tried again while the answer is worth another try (the retry table).
    async fn with_retries(
        &self,
        body: &bytes::Bytes,
        costs: &mut SendCosts,
    ) -> std::result::Result<Verdict, Attempt> {
        let retries = AtomicU64::new(0);
        let attempt = || self.attempt(body);
        let verdict = attempt
            .retry(self.retry.backoff())
            .when(|a: &Attempt| matches!(a.disposition, Disposition::Retry { .. }))
            .adjust(|a: &Attempt, backoff| match a.disposition {
                Disposition::Retry { after } => self.retry.next_delay(backoff, after),
                _ => backoff,
            })
            .notify(|a: &Attempt, wait| {
                retries.fetch_add(1, Ordering::Relaxed);
                let status = a.status.map_or_else(|| "none".to_string(), |s| s.to_string());
                tracing::warn!(%status, answer = %a.message, retry_in = ?wait, "remote write failed; retrying");
            })
            .await;
        costs.retries += retries.load(Ordering::Relaxed);
        verdict
    }

    /// The error for an attempt that ended the retries without a verdict.
    fn failure(&self, a: Attempt) -> Error {
        if let Some(problem) = a.certificate {
            return Error::Certificate {
                role: "destination",
                url: self.url(),
                problem,
                fix: crate::tls::fix("dest"),
            };
        }
        match a.disposition {
            Disposition::Fatal { fix } => Error::DestinationRefused {
                url: self.url(),
                status: a.status.unwrap_or(0),
                body: a.message,
                fix,
            },
            _ => Error::DestinationUnreachable {
                url: self.url(),
                attempts: self.retry.retries + 1,
                message: match a.status {
                    Some(status) => format!("last answer HTTP {status}: {}", a.message),
                    None => format!("last error: {}", a.message),
                },
            },
        }
    }

    /// One try: the answer classified by the retry table.
    async fn attempt(&self, body: &bytes::Bytes) -> std::result::Result<Verdict, Attempt> {
        let answer = self
            .endpoint
            .client
            .post(self.endpoint.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, protocol::PROTOBUF)
            .header(
                reqwest::header::CONTENT_ENCODING,
                protocol::CONTENT_ENCODING,
            )
            .header(
                protocol::REMOTE_WRITE_VERSION_HEADER,
                protocol::REMOTE_WRITE_VERSION,
            )
            .body(body.clone())
            .send()
            .await;
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                let e = e.without_url();
                let certificate = crate::tls::certificate_problem(&e);
                return Err(Attempt {
                    disposition: match certificate {
                        Some(_) => Disposition::Fatal {
                            fix: "a certificate problem does not heal by trying again",
                        },
                        None => classify(None, "", None),
                    },
                    status: None,
                    message: crate::error::chain(&e),
                    certificate,
                });
            }
        };
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let text = crate::endpoint::read_bounded(response, 8192).await;
        match classify(Some(status), &text, retry_after) {
            Disposition::Accepted => Ok(Verdict::Accepted),
            Disposition::Rejected(reason) => Ok(Verdict::Rejected {
                reason,
                message: first_line(&text),
            }),
            disposition => Err(Attempt {
                disposition,
                status: Some(status),
                message: first_line(&text),
                certificate: None,
            }),
        }
    }
}

impl crate::destination::Destination for DestinationWriter {
    fn url(&self) -> String {
        DestinationWriter::url(self)
    }

    async fn probe(&self) -> Result<()> {
        DestinationWriter::probe(self).await
    }

    fn for_window(&self, _: crate::window::Window) -> Self {
        self.clone()
    }

    async fn send(&self, batch: Batch, costs: &mut SendCosts) -> Result<Delivery> {
        DestinationWriter::send(self, batch, costs).await
    }

    /// Every request was answered before `send` returned: nothing is pending.
    async fn finish(&self) -> Result<Option<crate::outcome::BlockWritten>> {
        Ok(None)
    }

    /// What was written stays written (the ledger says which window to write again).
    async fn abandon(&self) {}

    async fn check_histograms(
        &self,
        labels: &[crate::proto::Label],
        t: i64,
    ) -> kept::HistogramCheck {
        kept::check(&self.endpoint, labels, t).await
    }
}
