//! Decoding what a source streams, with no I/O and nothing from the rest of the crate: the
//! frames of a streamed remote read answer, and the XOR chunks inside them. The remote read
//! client feeds bytes in, the assembler takes samples out, and the crate's error type wraps
//! these errors from above.

pub mod frame;
pub mod xor;
