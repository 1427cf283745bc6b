//! The remote write 1.0 sender: protobuf `WriteRequest` → snappy block → POST with the
//! spec's headers, retried per the table in `retry.rs`.

pub mod batch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::Retryable;
use prost::Message;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::protocol;
use crate::retry::{
    Disposition, RejectReason, RetryPolicy, classify, first_line, parse_retry_after,
};
use batch::Batch;

#[derive(Clone)]
pub struct DestinationWriter {
    endpoint: Endpoint,
    retry: RetryPolicy,
    timeout: Duration,
}

/// The destination's verdict on one request, once retries are over.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Accepted,
    Rejected {
        reason: RejectReason,
        message: String,
    },
}

/// Costs of sending, for the outcome.
#[derive(Debug, Default)]
pub struct SendCosts {
    pub bytes: u64,
    pub retries: u64,
    pub encode: Duration,
    pub write: Duration,
}

/// One failed attempt, as the retry loop sees it.
struct Attempt {
    disposition: Disposition,
    status: Option<u16>,
    message: String,
}

impl DestinationWriter {
    pub fn new(endpoint: Endpoint, retry: RetryPolicy, timeout: Duration) -> Self {
        DestinationWriter {
            endpoint,
            retry,
            timeout,
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
    #[tracing::instrument(level = "debug", name = "request", skip_all, fields(kind = "remote write", samples = batch.samples))]
    pub async fn send(&self, batch: &Batch, costs: &mut SendCosts) -> Result<Verdict> {
        let started = Instant::now();
        let encoded = batch.request.encode_to_vec();
        let body = bytes::Bytes::from(snap::raw::Encoder::new().compress_vec(&encoded).map_err(
            |cause| Error::Compress {
                bytes: encoded.len(),
                cause,
            },
        )?);
        costs.encode += started.elapsed();
        costs.bytes += body.len() as u64;

        let started = Instant::now();
        let retries = AtomicU64::new(0);
        let attempt = || self.attempt(&body);
        let verdict = attempt
            .retry(self.retry.backoff())
            .when(|a: &Attempt| matches!(a.disposition, Disposition::Retry { .. }))
            .adjust(|a: &Attempt, backoff| match a.disposition {
                Disposition::Retry { after } => self.retry.next_delay(backoff, after),
                _ => backoff,
            })
            .notify(|a: &Attempt, wait| {
                retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(status = ?a.status, message = %a.message, retry_in = ?wait, "remote write failed; retrying");
            })
            .await;
        costs.write += started.elapsed();
        costs.retries += retries.load(Ordering::Relaxed);
        verdict.map_err(|a| match a.disposition {
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
        })
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
                return Err(Attempt {
                    disposition: classify(None, "", None),
                    status: None,
                    message: e.without_url().to_string(),
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

    async fn send(&self, batch: &Batch, costs: &mut SendCosts) -> Result<Verdict> {
        DestinationWriter::send(self, batch, costs).await
    }
}
