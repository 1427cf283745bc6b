//! Any bytes as an XOR chunk: an error or samples, never a panic, and never more samples than
//! the chunk declares.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promimport::decode::xor::{declared_samples, decode_xor};

fuzz_target!(|data: &[u8]| {
    let mut samples = Vec::new();
    if decode_xor(data, &mut samples).is_ok() {
        assert_eq!(
            samples.len(),
            usize::from(declared_samples(data).unwrap_or(0))
        );
    }
});
