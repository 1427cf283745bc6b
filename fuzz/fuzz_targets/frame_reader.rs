//! A streamed remote read answer, arriving in two pieces, through the frame reader, the
//! protobuf decoder and the XOR decoder: errors are fine, panics and hangs are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promimport::proto::ChunkedReadResponse;
use promimport::decode::frame::FrameReader;
use promimport::decode::xor::decode_xor;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(body.len());
    let mut frames = FrameReader::new(1 << 20);
    let mut samples = Vec::new();
    for piece in [&body[..split], &body[split..]] {
        frames.push(piece);
        while let Ok(Some(frame)) = frames.next_frame() {
            let Ok(message) = ChunkedReadResponse::decode(frame) else {
                continue;
            };
            for series in &message.chunked_series {
                for chunk in &series.chunks {
                    let _ = decode_xor(&chunk.data, &mut samples);
                }
            }
        }
    }
    let _ = frames.finish();
});
