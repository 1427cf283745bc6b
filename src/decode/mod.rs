//! Decoding what a source streams, with no I/O and nothing from the rest of the crate but its
//! protobuf types: the frames of a streamed remote read answer, and the XOR and native
//! histogram chunks inside them. The remote read
//! client feeds bytes in, the assembler takes samples out, and the crate's error type wraps
//! these errors from above.

pub mod frame;
pub mod histogram;
pub mod xor;
