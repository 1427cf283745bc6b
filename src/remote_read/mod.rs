//! The remote read client: asks for streamed XOR chunks, accepts SAMPLES from servers that only
//! speak that, and hands out the answer piece by piece.
//!
//! Request path: `ReadRequest` (one query) → protobuf → snappy block → POST. Answer: either a
//! stream of CRC-checked frames (`frame.rs`), each a `ChunkedReadResponse` whose chunks
//! `xor.rs` decodes, or one snappy `ReadResponse` with raw samples.

pub mod shards;

use std::time::Duration;

use backon::Retryable;
use prost::Message;

use crate::decode::frame::FrameReader;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::proto::{
    ChunkedReadResponse, LabelMatcher, Query, QueryResult, ReadRequest, ReadResponse,
    read_request::ResponseType,
};
use crate::protocol;
use crate::retry::RetryPolicy;

/// What a source may send before we call it hostile or misconfigured.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// One streamed frame (Prometheus cuts at 1 MiB by default).
    pub max_frame_bytes: usize,
    /// A whole SAMPLES answer, decompressed; it is held in memory at once.
    pub max_samples_response_bytes: usize,
}

#[derive(Clone)]
pub struct SourceReader {
    endpoint: Endpoint,
    limits: ReadLimits,
    retry: RetryPolicy,
}

/// One piece of an answer, in the order the source sent it.
pub enum ReadPart {
    Chunked(ChunkedReadResponse),
    Samples(QueryResult),
}

/// An answer being read.
pub struct ReadStream {
    url: String,
    body: Body,
    bytes_read: u64,
}

enum Body {
    Streamed {
        response: reqwest::Response,
        frames: FrameReader,
    },
    Samples(std::vec::IntoIter<QueryResult>),
}

impl SourceReader {
    pub fn new(endpoint: Endpoint, limits: ReadLimits, retry: RetryPolicy) -> Self {
        SourceReader {
            endpoint,
            limits,
            retry,
        }
    }

    pub fn url(&self) -> String {
        self.endpoint.display_url()
    }

    /// Whether a connection to the source can be made at all (see `endpoint::probe`).
    pub async fn probe(&self) -> Result<()> {
        self.endpoint.probe("source").await
    }

    /// Starts reading `[start_ms, end_ms)`. Connection failures, 429 and 5xx are retried
    /// until the body starts; a stream that breaks later fails the window, which is then
    /// read again from the start (re-sent samples are accepted as identical).
    #[tracing::instrument(
        level = "debug",
        name = "request",
        skip_all,
        fields(kind = "remote read")
    )]
    pub async fn open(
        &self,
        start_ms: i64,
        end_ms: i64,
        matchers: &[LabelMatcher],
    ) -> Result<ReadStream> {
        let request = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: start_ms,
                // Remote read ranges are inclusive at both ends; ours exclude the end.
                end_timestamp_ms: end_ms - 1,
                matchers: matchers.to_vec(),
                hints: None,
            }],
            accepted_response_types: vec![
                ResponseType::StreamedXorChunks as i32,
                ResponseType::Samples as i32,
            ],
        };
        let response = self.post(protocol::snappy_body(&request)?).await?;
        self.answer(response).await
    }

    /// Sends the query; connection failures, 429 and 5xx are tried again within the budget.
    async fn post(&self, body: bytes::Bytes) -> Result<reqwest::Response> {
        let send = || async {
            let response = self
                .endpoint
                .client
                .post(self.endpoint.url.clone())
                .header(reqwest::header::CONTENT_TYPE, protocol::PROTOBUF)
                .header(
                    reqwest::header::CONTENT_ENCODING,
                    protocol::CONTENT_ENCODING,
                )
                .header(
                    protocol::REMOTE_READ_VERSION_HEADER,
                    protocol::REMOTE_READ_VERSION,
                )
                .body(body.clone())
                .send()
                .await
                .map_err(|source| Error::source_request(self.url(), source))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let text = crate::endpoint::read_bounded(response, 4096).await;
            let body = crate::answer::first_line(&text);
            Err(Error::SourceStatus {
                url: self.url(),
                status: status.as_u16(),
                fix: source_fix(status.as_u16(), &body),
                body,
            })
        };
        send.retry(self.retry.backoff())
            .when(Error::is_transient)
            .notify(|err, wait: Duration| tracing::warn!(error = %err, retry_in = ?wait, "remote read failed; retrying"))
            .await
    }

    /// The answer by its content type: a stream of chunk frames, or one SAMPLES message.
    async fn answer(&self, response: reqwest::Response) -> Result<ReadStream> {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if content_type.starts_with(protocol::STREAMED_PROTOBUF) {
            return Ok(ReadStream {
                url: self.url(),
                body: Body::Streamed {
                    response,
                    frames: FrameReader::new(self.limits.max_frame_bytes),
                },
                bytes_read: 0,
            });
        }
        if content_type.starts_with(protocol::PROTOBUF) {
            let (results, bytes_read) = self.read_samples(response).await?;
            return Ok(ReadStream {
                url: self.url(),
                body: Body::Samples(results.into_iter()),
                bytes_read,
            });
        }
        Err(Error::SourceNotRemoteRead {
            url: self.url(),
            content_type,
        })
    }

    /// The metric names the source holds for `[start_ms, end_ms)` among the series a selector
    /// picks, from its label values API beside the remote read URL
    /// (`.../api/v1/read` -> `.../api/v1/label/__name__/values`, which Prometheus, Cortex and
    /// Mimir serve). `None` when the source has no such API, refuses the question or fails to
    /// answer it: the window is then read in one query, as without sharding. Asking costs the
    /// source an index lookup, no chunk.
    pub async fn metric_names(
        &self,
        start_ms: i64,
        end_ms: i64,
        selector: &str,
    ) -> Option<Vec<String>> {
        let mut url = label_values_url(&self.endpoint.url)?;
        url.query_pairs_mut()
            .append_pair("start", &seconds(start_ms))
            .append_pair("end", &seconds(end_ms - 1))
            .append_pair("match[]", selector);
        // One try: without the names the window is still read whole, and a source that is
        // failing would otherwise cost the retry budget twice, here and for the read.
        let answer = match self.endpoint.client.get(url).send().await {
            Ok(response) if response.status().is_success() => {
                Ok(crate::endpoint::read_bounded(response, MAX_NAMES_ANSWER_BYTES).await)
            }
            Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
            Err(e) => Err(e.to_string()),
        };
        let names = answer.and_then(|text| {
            serde_json::from_str::<LabelValues>(&text)
                .ok()
                .filter(|v| v.status == "success")
                .ok_or_else(|| "not a label values answer".to_string())
        });
        match names {
            Ok(names) => Some(names.data),
            Err(why) => {
                tracing::info!(
                    url = %self.url(),
                    %why,
                    "the source's label values API did not answer; reading the window in one query"
                );
                None
            }
        }
    }

    /// A SAMPLES answer is one message: read it whole, within the limit.
    async fn read_samples(
        &self,
        mut response: reqwest::Response,
    ) -> Result<(Vec<QueryResult>, u64)> {
        let limit = self.limits.max_samples_response_bytes;
        let too_large = |what: String| Error::SourceLimit {
            url: self.url(),
            what,
            fix: "the source answered with SAMPLES, which holds a whole window in memory: \
                  use a smaller --window, or raise --max-samples-response-bytes",
        };
        let mut compressed = Vec::new();
        while let Some(piece) = response
            .chunk()
            .await
            .map_err(|source| Error::source_request(self.url(), source))?
        {
            compressed.extend_from_slice(&piece);
            if compressed.len() > limit {
                return Err(too_large(format!("SAMPLES answer over {limit} bytes")));
            }
        }
        let results = decode_samples_response(&compressed, limit, &self.url())?;
        Ok((results, compressed.len() as u64))
    }
}

impl ReadStream {
    /// Whether the source streams chunks (`true`) or sent SAMPLES.
    pub fn is_streamed(&self) -> bool {
        matches!(self.body, Body::Streamed { .. })
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub async fn next(&mut self) -> Result<Option<ReadPart>> {
        match &mut self.body {
            Body::Samples(results) => Ok(results.next().map(ReadPart::Samples)),
            Body::Streamed { response, frames } => loop {
                let frame = frames
                    .next_frame()
                    .map_err(|source| Error::source_frame(self.url.clone(), source))?;
                if let Some(frame) = frame {
                    let message = ChunkedReadResponse::decode(frame).map_err(|source| {
                        Error::SourceDecode {
                            url: self.url.clone(),
                            source,
                        }
                    })?;
                    return Ok(Some(ReadPart::Chunked(message)));
                }
                let piece = response
                    .chunk()
                    .await
                    .map_err(|source| Error::source_request(self.url.clone(), source))?;
                match piece {
                    Some(piece) => {
                        self.bytes_read += piece.len() as u64;
                        frames.push(&piece);
                    }
                    None => {
                        frames
                            .finish()
                            .map_err(|source| Error::source_frame(self.url.clone(), source))?;
                        return Ok(None);
                    }
                }
            },
        }
    }
}

/// Decodes a whole SAMPLES answer (snappy block `ReadResponse`), refusing one that would
/// decompress past `limit` before allocating for it.
pub fn decode_samples_response(
    compressed: &[u8],
    limit: usize,
    url: &str,
) -> Result<Vec<QueryResult>> {
    let not_snappy = |e: snap::Error| Error::SourceNotSnappy {
        url: url.to_string(),
        cause: e,
    };
    let decompressed_len = snap::raw::decompress_len(compressed).map_err(not_snappy)?;
    if decompressed_len > limit {
        return Err(Error::SourceLimit {
            url: url.to_string(),
            what: format!("SAMPLES answer decompresses to {decompressed_len} bytes, over {limit}"),
            fix: "the source answered with SAMPLES, which holds a whole window in memory: \
                  use a smaller --window, or raise --max-samples-response-bytes",
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(not_snappy)?;
    let answer = ReadResponse::decode(raw.as_slice()).map_err(|source| Error::SourceDecode {
        url: url.to_string(),
        source,
    })?;
    Ok(answer.results)
}

/// The most of a label values answer read: about a million metric names, far beyond any
/// Prometheus; a longer answer is cut, fails to parse, and the window is read unsharded.
const MAX_NAMES_ANSWER_BYTES: usize = 64 << 20;

#[derive(serde::Deserialize)]
struct LabelValues {
    status: String,
    #[serde(default)]
    data: Vec<String>,
}

/// The label values URL for metric names beside a remote read URL, if it has the usual path.
fn label_values_url(read_url: &reqwest::Url) -> Option<reqwest::Url> {
    let base = read_url.path().strip_suffix("/api/v1/read")?;
    let mut url = read_url.clone();
    url.set_path(&format!("{base}/api/v1/label/__name__/values"));
    url.set_query(None);
    Some(url)
}

/// Unix seconds with milliseconds, as the HTTP API takes times.
fn seconds(ms: i64) -> String {
    // Exact: a millisecond count below 2^53 is an exact f64, and three decimals print it back.
    format!("{:.3}", ms as f64 / 1000.0)
}

fn source_fix(status: u16, message: &str) -> &'static str {
    match status {
        401 if crate::answer::tenant_missing(message) => {
            "Cortex and Mimir need the tenant: --source-header X-Scope-OrgID=TENANT"
        }
        401 | 403 => "check --source-bearer-token-file / --source-basic-user",
        404 | 405 => {
            "check the URL: Prometheus serves remote read at /api/v1/read, Cortex and Mimir at /prometheus/api/v1/read"
        }
        400 | 422 => "the source refused the query: check the --match selectors",
        429 | 500..=599 => "the source is overloaded or failing; it was retried",
        _ => "read the source's message",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_api_lies_beside_the_remote_read_url() {
        for (read, names) in [
            (
                "http://prom:9090/api/v1/read",
                Some("http://prom:9090/api/v1/label/__name__/values"),
            ),
            (
                "https://cortex/prometheus/api/v1/read?x=1",
                Some("https://cortex/prometheus/api/v1/label/__name__/values"),
            ),
            ("http://proxy/read", None),
        ] {
            let url = reqwest::Url::parse(read).unwrap();
            assert_eq!(
                label_values_url(&url).map(|u| u.to_string()).as_deref(),
                names,
                "{read}"
            );
        }
    }

    #[test]
    fn times_are_seconds_with_milliseconds() {
        assert_eq!(seconds(1_793_491_200_123), "1793491200.123");
        assert_eq!(seconds(-1), "-0.001");
        assert_eq!(seconds(5), "0.005");
    }
}
