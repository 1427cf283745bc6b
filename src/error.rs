//! The crate's one error type. Every message names what failed, with which input, and what to do.

use std::path::PathBuf;

use crate::decode::frame::FrameError;
use crate::decode::xor::ChunkError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, environment variable or spec field has a value we cannot use.
    #[error("invalid {what} {input:?}: {reason}")]
    InvalidInput {
        what: &'static str,
        input: String,
        reason: String,
    },

    #[error("cannot read {what} {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {what} {}: {source}", path.display())]
    WriteFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot set up the HTTP client for {url}: {}", chain(cause))]
    HttpClient { url: String, cause: reqwest::Error },

    /// The source could not be reached or the connection broke; worth another try.
    #[error(
        "source {url} is unreachable: {}; check the URL and that the server runs",
        chain(cause)
    )]
    SourceUnreachable { url: String, cause: reqwest::Error },

    /// A certificate problem: the server's certificate is not trusted or not for this name,
    /// or the server refused ours. Trying again cannot help.
    #[error("{role} {url}: TLS certificate problem: {problem}; {fix}")]
    Certificate {
        role: &'static str,
        url: String,
        problem: String,
        fix: String,
    },

    /// Reading the destination back (verify) failed.
    #[error("destination {url} {what}; {fix}")]
    DestinationRead {
        url: String,
        what: String,
        fix: &'static str,
    },

    #[error("source {url} answered HTTP {status}: {body}; {fix}")]
    SourceStatus {
        url: String,
        status: u16,
        /// The first line of the source's answer.
        body: String,
        fix: &'static str,
    },

    /// A 200 that is not a remote read answer: typically an auth proxy's login page.
    #[error(
        "source {url} answered {content_type:?} instead of a remote read response; \
         it is not a Prometheus remote read endpoint (an authentication proxy or a UI page?): \
         point --source at the server's /api/v1/read"
    )]
    SourceNotRemoteRead { url: String, content_type: String },

    #[error("source {url} sent a corrupt remote read stream: {source}")]
    SourceFrame {
        url: String,
        #[source]
        source: FrameError,
    },

    #[error("source {url} answered 200, then failed mid-stream: {message}; {fix}")]
    SourceFailedMidStream {
        url: String,
        message: String,
        fix: &'static str,
    },

    #[error("source {url} sent a chunk promimport cannot decode, for series {series}: {source}")]
    SourceChunk {
        url: String,
        series: String,
        #[source]
        source: ChunkError,
    },

    #[error("source {url} sent a response that is not valid protobuf: {source}")]
    SourceDecode {
        url: String,
        #[source]
        source: prost::DecodeError,
    },

    #[error(
        "source {url} sent a SAMPLES answer that is not valid snappy ({cause}); check that --source is a Prometheus remote read endpoint"
    )]
    SourceNotSnappy { url: String, cause: snap::Error },

    /// Snappy refused a request body; only a body past its 4 GiB limit can be.
    #[error(
        "a remote write request of {bytes} bytes could not be compressed ({cause}); lower --batch-samples and --batch-bytes"
    )]
    Compress { bytes: usize, cause: snap::Error },

    #[error("source {url} exceeded a limit: {what}; {fix}")]
    SourceLimit {
        url: String,
        what: String,
        fix: &'static str,
    },

    #[error(
        "query API {url} is unreachable: {}; check the URL and that the server runs",
        chain(cause)
    )]
    QueryUnreachable { url: String, cause: reqwest::Error },

    #[error("query API {url} answered HTTP {status}: {body}")]
    QueryFailed {
        url: String,
        status: u16,
        body: String,
    },

    #[error("destination {url} is unreachable after {attempts} attempts: {message}")]
    DestinationUnreachable {
        url: String,
        attempts: usize,
        message: String,
    },

    /// The destination kept refusing one request for its ingestion rate, even at the pace it
    /// named: other writers to the tenant take the whole limit.
    #[error(
        "destination {url} refused one request {throttles} times in a row for its ingestion rate limit \
         ({rate} samples/s): {message}; other writers to this tenant use the whole limit. Raise the \
         tenant's `ingestion_rate` and `ingestion_burst_size` (Cortex limits or runtime overrides; Mimir \
         -distributor.ingestion-rate-limit and -burst-size), or import when the tenant is quieter"
    )]
    DestinationThrottled {
        url: String,
        rate: f64,
        throttles: u32,
        message: String,
    },

    /// The destination refuses every request the same way (auth, wrong path, too large).
    #[error("destination {url} answered HTTP {status}: {body}; {fix}")]
    DestinationRefused {
        url: String,
        status: u16,
        body: String,
        fix: &'static str,
    },

    #[error("a series from the source has labels the destination cannot take: {0}")]
    BadLabels(String),

    /// A request to the Kubernetes API server failed; `cause` keeps its answer, so the retry
    /// table (`answer::kube_is_transient`) can tell a conflict or an overload from a refusal.
    #[error("cannot {action}: {}", kube_message(cause))]
    Kubernetes { action: String, cause: kube::Error },

    /// Something in the cluster is not as promimport can use it: an import that does not
    /// exist, a ledger edited by hand, a name taken by another import.
    #[error("{object}: {reason}")]
    ClusterState { object: String, reason: String },

    #[error(
        "import {import} did not finish within {timeout}; it goes on when its scheduler runs again (`promimport resume {import}`)"
    )]
    SchedulerTimeout { import: String, timeout: String },

    /// Nothing answered at an endpoint when an import began: checked once, quickly, so a wrong
    /// URL ends the import in seconds instead of after every window's retries.
    #[error("{role} {url} is unreachable ({attempts} tries): {cause}; {check}")]
    EndpointUnreachable {
        role: &'static str,
        url: String,
        attempts: usize,
        cause: String,
        check: &'static str,
    },

    /// A bug: a task panicked or vanished.
    #[error("internal error: {0}; please report it")]
    Internal(String),

    #[error("blocks destination {url}: {message}")]
    BlockStore {
        url: String,
        message: String,
        /// A network failure (worth another try) rather than credentials or permissions.
        transient: bool,
    },

    #[error(
        "block {block} is there already for this window and holds {held} samples, but the \
         source now holds {read}: it changed since that block was written. Delete the block (its \
         directory, or its objects) and import the window again"
    )]
    BlockDiffers {
        block: String,
        held: String,
        read: u64,
    },

    #[error("ledger {}: {reason}", path.display())]
    Ledger { path: PathBuf, reason: String },

    #[error("ledger {}: {source}", path.display())]
    LedgerIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An HTTP error with its causes ("error sending request: ... invalid peer certificate: ..."):
/// reqwest's own message alone hides why a connection failed. Its URL was removed before.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    text
}

/// The API server's message, with the fix where the answer needs one from the user.
fn kube_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "{}; the service account lacks this permission: apply manifests/rbac.yaml (or the chart's Role)",
            status.message
        ),
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message, status.code),
        other => chain(other),
    }
}

impl Error {
    /// Whether running the same window again may succeed without anyone changing anything:
    /// a broken connection or a stream cut short, as opposed to bad input or a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::SourceUnreachable { .. }
            | Error::DestinationUnreachable { .. }
            | Error::DestinationThrottled { .. } => true,
            Error::Kubernetes { cause, .. } => crate::answer::kube_is_transient(cause),
            Error::SourceStatus { status, .. } => *status == 429 || *status >= 500,
            // A frame cut short or failing its checksum is what a dropped connection looks like.
            Error::SourceFrame { source, .. } => source.is_transient(),
            Error::SourceFailedMidStream { .. } => true,
            Error::BlockStore { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Whether the source refused a query for being larger than its own limits (the retry
    /// table's source row): the query is read again in parts.
    pub fn is_source_answer_over_limit(&self) -> bool {
        matches!(self, Error::SourceStatus { status, body, .. }
            if crate::answer::source_answer_over_limit(*status, body))
    }

    /// Whether every window would fail the same way, so the import should stop: a wrong URL,
    /// credentials, an answer that is not remote read.
    pub fn stops_import(&self) -> bool {
        match self {
            Error::SourceStatus { status, .. } => (400..500).contains(status) && *status != 429,
            Error::SourceNotRemoteRead { .. }
            | Error::DestinationRefused { .. }
            | Error::InvalidInput { .. }
            | Error::ReadFile { .. }
            | Error::HttpClient { .. }
            | Error::EndpointUnreachable { .. }
            | Error::Certificate { .. }
            | Error::Compress { .. }
            | Error::SourceNotSnappy { .. } => true,
            Error::BlockStore { transient, .. } => !transient,
            Error::SourceChunk { source, .. } => {
                matches!(
                    source,
                    crate::decode::xor::ChunkError::UnknownEncoding { .. }
                )
            }
            _ => false,
        }
    }

    /// A request to the source that got no answer: a certificate problem (permanent) or the
    /// network (worth another try).
    pub fn source_request(url: String, cause: reqwest::Error) -> Self {
        Self::unanswered("source", "source", url, cause, |url, cause| {
            Error::SourceUnreachable { url, cause }
        })
    }

    /// A frame that cannot be read; the source's own error text when it wrote one instead.
    pub fn source_frame(url: String, source: crate::decode::frame::FrameError) -> Self {
        match source {
            crate::decode::frame::FrameError::ServerMessage { ref text, .. } => {
                // Prometheus re-encodes the chunks it cannot send as stored (still open, or
                // reaching past the range asked); 2.4x fails doing so on gauge histograms.
                let fix = if text.contains("re-encoding") || text.contains("histogram") {
                    "Prometheus re-encodes chunks that are still open or reach past the range \
                     asked, and fails on gauge histograms: import this range once it is older \
                     than the source's head block (about 3h) with windows on its block \
                     boundaries (the default 2h), so every chunk is sent as stored, or leave the \
                     gauge histogram series out with --match"
                } else {
                    "a failure inside the source: see its log; the window is retried like a 500"
                };
                Error::SourceFailedMidStream {
                    url,
                    message: source.to_string(),
                    fix,
                }
            }
            source => Error::SourceFrame { url, source },
        }
    }

    /// `source_request` for a query API (`query`, `verify` through one).
    pub fn query_request(url: String, cause: reqwest::Error) -> Self {
        Self::unanswered("query API", "dest", url, cause, |url, cause| {
            Error::QueryUnreachable { url, cause }
        })
    }

    /// A certificate problem as such (with the `--{flags}-*` that fix it), else `network`.
    fn unanswered(
        role: &'static str,
        flags: &str,
        url: String,
        cause: reqwest::Error,
        network: impl FnOnce(String, reqwest::Error) -> Error,
    ) -> Self {
        let cause = cause.without_url();
        match crate::tls::certificate_problem(&cause) {
            Some(problem) => Error::Certificate {
                role,
                url,
                problem,
                fix: crate::tls::fix(flags),
            },
            None => network(url, cause),
        }
    }

    /// An error of the remote read client, which was reading the destination (`verify`):
    /// worded for the destination, with the destination's fixes.
    pub fn about_destination(self) -> Self {
        match self {
            Error::SourceStatus {
                url, status, body, ..
            } => Error::DestinationRead {
                url,
                fix: if crate::answer::tenant_missing(&body) {
                    crate::answer::TENANT_FIX
                } else if matches!(status, 401 | 403) {
                    "check the destination credentials (--dest-bearer-token-file, --dest-basic-user)"
                } else {
                    "check that --dest is the destination's remote read URL (Cortex, Mimir: \
                     /prometheus/api/v1/read) or its query API base"
                },
                what: format!("answered HTTP {status}: {body}"),
            },
            Error::SourceUnreachable { url, cause } => Error::DestinationRead {
                url,
                what: format!("is unreachable: {}", chain(&cause)),
                fix: "check the URL and that the server runs",
            },
            Error::SourceNotRemoteRead { url, content_type } => Error::DestinationRead {
                url,
                what: format!("answered {content_type:?} instead of a remote read response"),
                fix: "point --dest at its remote read URL (Cortex, Mimir: /prometheus/api/v1/read) \
                      or its query API base",
            },
            Error::Certificate { url, problem, .. } => Error::Certificate {
                role: "destination",
                url,
                problem,
                fix: crate::tls::fix("dest"),
            },
            other => other,
        }
    }

    pub fn invalid(
        what: &'static str,
        input: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            what,
            input: input.into(),
            reason: reason.into(),
        }
    }
}

/// Wraps a kube error with what we were doing; the error keeps the API server's answer.
pub fn kube_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |cause| Error::Kubernetes { action, cause }
}

/// Whether a kube error is the API server saying 404 / 409.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == code)
}
