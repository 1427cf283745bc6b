//! The framing of a streamed remote read answer: each frame is a uvarint length, a 4-byte
//! big-endian CRC32 (Castagnoli) of the message, then the `ChunkedReadResponse` itself.
//! (prometheus/storage/remote/chunked.go.) Bytes arrive in arbitrary pieces; frames come out whole.

use bytes::{Buf, BytesMut};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(
        "frame {index} declares {len} bytes, more than the limit of {limit}; raise --max-frame-bytes if the source is trusted"
    )]
    TooLarge { index: u64, len: u64, limit: usize },
    #[error(
        "frame {index} fails its CRC32C check (header {expected:#010x}, computed {actual:#010x})"
    )]
    Checksum {
        index: u64,
        expected: u32,
        actual: u32,
    },
    #[error("frame {index} has a length prefix longer than 10 bytes")]
    BadLength { index: u64 },
    #[error("the stream ended inside frame {index} ({remaining} bytes of it received)")]
    Truncated { index: u64, remaining: usize },
    #[error("after {index} frames it wrote its own error instead of a frame: {text}")]
    ServerMessage { index: u64, text: String },
}

impl FrameError {
    /// A cut or damaged stream is what a broken connection looks like, and a server's own
    /// error mid-stream is a server-side failure (retried like a 500); a frame over the limit
    /// will be over it next time too.
    pub fn is_transient(&self) -> bool {
        !matches!(self, FrameError::TooLarge { .. })
    }
}

/// Collects bytes and hands out complete, checksum-verified frame payloads.
pub struct FrameReader {
    buffer: BytesMut,
    max_frame_bytes: usize,
    frames: u64,
}

impl FrameReader {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameReader {
            buffer: BytesMut::new(),
            max_frame_bytes,
            frames: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame's message, if all of it has arrived.
    pub fn next_frame(&mut self) -> Result<Option<bytes::Bytes>, FrameError> {
        let index = self.frames;
        let Some((len, prefix)) =
            read_uvarint(&self.buffer).map_err(|()| FrameError::BadLength { index })?
        else {
            return Ok(None);
        };
        if len > self.max_frame_bytes as u64 {
            return Err(FrameError::TooLarge {
                index,
                len,
                limit: self.max_frame_bytes,
            });
        }
        let len = len as usize;
        if self.buffer.len() < prefix + 4 + len {
            // Reserve once for the whole frame rather than growing piece by piece.
            self.buffer.reserve(prefix + 4 + len - self.buffer.len());
            return Ok(None);
        }
        let expected = u32::from_be_bytes([
            self.buffer[prefix],
            self.buffer[prefix + 1],
            self.buffer[prefix + 2],
            self.buffer[prefix + 3],
        ]);
        let actual = crc32c::crc32c(&self.buffer[prefix + 4..prefix + 4 + len]);
        if actual != expected {
            return Err(self.server_text().unwrap_or(FrameError::Checksum {
                index,
                expected,
                actual,
            }));
        }
        self.buffer.advance(prefix + 4);
        let message = self.buffer.split_to(len).freeze();
        self.frames += 1;
        Ok(Some(message))
    }

    /// Called at the end of the body: leftover bytes mean the stream was cut mid-frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(self.server_text().unwrap_or(FrameError::Truncated {
                index: self.frames,
                remaining: self.buffer.len(),
            }))
        }
    }

    /// A server that fails after it has sent its 200 and some frames can only write its error
    /// text into the body (Prometheus does, e.g. when re-encoding a histogram chunk fails).
    /// Where a frame should start, readable text is that message, not a corrupt frame: a
    /// frame's length prefix, checksum and protobuf tags are never all printable.
    fn server_text(&self) -> Option<FrameError> {
        let text = std::str::from_utf8(&self.buffer).ok()?.trim_end();
        let printable = text
            .chars()
            .all(|c| !c.is_control() || c == '\n' || c == '\t' || c == '\r');
        (printable && text.len() >= 4).then(|| FrameError::ServerMessage {
            index: self.frames,
            text: text.chars().take(2000).collect(),
        })
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }
}

/// `Ok(None)` while the varint is incomplete; `Err` when it runs past 10 bytes.
fn read_uvarint(bytes: &[u8]) -> Result<Option<(u64, usize)>, ()> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 10 { Err(()) } else { Ok(None) }
}

/// Frames a message the way Prometheus does; used by tests and the bench tool's fake source.
pub fn encode_frame(message: &[u8], out: &mut Vec<u8>) {
    let mut len = message.len() as u64;
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(&crc32c::crc32c(message).to_be_bytes());
    out.extend_from_slice(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(messages: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            encode_frame(m, &mut out);
        }
        out
    }

    #[test]
    fn frames_come_out_whole_whatever_the_piece_sizes() {
        let big = vec![7u8; 300];
        let body = stream(&[b"one", &big, b""]);
        for piece in [1, 2, 3, 5, 64, body.len()] {
            let mut reader = FrameReader::new(1024);
            let mut got = Vec::new();
            for part in body.chunks(piece) {
                reader.push(part);
                while let Some(frame) = reader.next_frame().unwrap() {
                    got.push(frame.to_vec());
                }
            }
            reader.finish().unwrap();
            assert_eq!(
                got,
                vec![b"one".to_vec(), big.clone(), Vec::new()],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut body = stream(&[b"hello", b"world"]);
        let last = body.len() - 1;
        body[last] ^= 1;
        let mut reader = FrameReader::new(1024);
        reader.push(&body);
        assert_eq!(reader.next_frame().unwrap().unwrap().as_ref(), b"hello");
        let err = reader.next_frame().unwrap_err();
        assert!(
            matches!(err, FrameError::Checksum { index: 1, .. }),
            "{err}"
        );
        assert!(err.is_transient());
    }

    #[test]
    fn a_stream_cut_mid_frame_is_reported_at_the_end() {
        let body = stream(&[b"hello", b"world"]);
        let mut reader = FrameReader::new(1024);
        reader.push(&body[..body.len() - 2]);
        assert!(reader.next_frame().unwrap().is_some());
        assert!(reader.next_frame().unwrap().is_none());
        let err = reader.finish().unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { index: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn oversized_and_malformed_lengths_are_refused_before_buffering() {
        let mut reader = FrameReader::new(16);
        reader.push(&stream(&[&[0u8; 17]])[..3]);
        let err = reader.next_frame().unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 17, .. }), "{err}");
        assert!(!err.is_transient());

        let mut reader = FrameReader::new(16);
        reader.push(&[0xff; 11]);
        assert!(matches!(
            reader.next_frame(),
            Err(FrameError::BadLength { .. })
        ));
    }

    #[test]
    fn a_servers_error_text_after_some_frames_is_its_message_not_a_corrupt_frame() {
        // Prometheus 2.42, failing to re-encode a gauge histogram chunk mid-answer: short text
        // (read as a frame longer than what follows) and long text (a frame whose checksum
        // fails) are both shown as the source's words, and retried like a 500.
        let long =
            "expanding series: ".repeat(20) + "detected unexpected counter reset in histogram";
        for text in [
            "detected unexpected counter reset in histogram\n",
            long.as_str(),
        ] {
            let mut body = stream(&[b"one", b"two"]);
            body.extend_from_slice(text.as_bytes());
            let mut reader = FrameReader::new(1 << 20);
            reader.push(&body);
            assert_eq!(&reader.next_frame().unwrap().unwrap()[..], b"one");
            assert_eq!(&reader.next_frame().unwrap().unwrap()[..], b"two");
            let err = match reader.next_frame() {
                Err(e) => e,
                Ok(None) => reader.finish().unwrap_err(),
                Ok(Some(_)) => panic!("text read as a frame"),
            };
            assert!(
                matches!(&err, FrameError::ServerMessage { index: 2, text: t } if t == text.trim_end()),
                "{err}"
            );
            assert!(err.is_transient());
        }
        // Bytes that are not text stay a cut frame.
        let mut body = stream(&[b"one"]);
        body.extend_from_slice(&[0x05, 0xff, 0x00]);
        let mut reader = FrameReader::new(1 << 20);
        reader.push(&body);
        reader.next_frame().unwrap();
        assert!(reader.next_frame().unwrap().is_none());
        assert!(matches!(
            reader.finish().unwrap_err(),
            FrameError::Truncated { .. }
        ));
    }
}
