//! Any bytes as an integer and as a float native histogram chunk: an error or samples, never a
//! panic or an allocation the bytes cannot justify, and never more samples than the chunk
//! declares.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promimport::decode::histogram::decode_histograms;
use promimport::decode::xor::declared_samples;

fuzz_target!(|data: &[u8]| {
    let mut samples = Vec::new();
    for float in [false, true] {
        if decode_histograms(data, float, &mut samples).is_ok() {
            assert_eq!(
                samples.len(),
                usize::from(declared_samples(data).unwrap_or(0))
            );
        }
    }
});
