//! The wire protocol's constants, in one place for both clients, the benchmark's receiver and
//! the tests. Remote write 1.0: prometheus docs `specs/prw/remote_write_spec`; remote read:
//! `prompb/remote.proto` and its streamed `ChunkedReadResponse`.

/// Both request bodies are snappy block format (not framed).
pub const CONTENT_ENCODING: &str = "snappy";
/// A protobuf body: a `WriteRequest`, a `ReadRequest`, or a SAMPLES `ReadResponse`.
pub const PROTOBUF: &str = "application/x-protobuf";
/// A streamed remote read answer: frames of `ChunkedReadResponse`.
pub const STREAMED_PROTOBUF: &str = "application/x-streamed-protobuf";
pub const REMOTE_WRITE_VERSION_HEADER: &str = "X-Prometheus-Remote-Write-Version";
pub const REMOTE_WRITE_VERSION: &str = "0.1.0";
pub const REMOTE_READ_VERSION_HEADER: &str = "X-Prometheus-Remote-Read-Version";
pub const REMOTE_READ_VERSION: &str = "0.1.0";
/// Receivers' logs name the sender; the spec asks for a User-Agent.
pub const USER_AGENT: &str = concat!("promimport/", env!("CARGO_PKG_VERSION"));

/// A request body: the message as protobuf, in snappy block format.
pub fn snappy_body(message: &impl prost::Message) -> crate::Result<bytes::Bytes> {
    snappy(&message.encode_to_vec())
}

/// Protobuf bytes in snappy block format.
pub fn snappy(encoded: &[u8]) -> crate::Result<bytes::Bytes> {
    let body = snap::raw::Encoder::new()
        .compress_vec(encoded)
        .map_err(|cause| crate::Error::Compress {
            bytes: encoded.len(),
            cause,
        })?;
    Ok(bytes::Bytes::from(body))
}
