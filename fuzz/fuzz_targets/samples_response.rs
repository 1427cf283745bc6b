//! Any bytes as a SAMPLES answer (snappy block ReadResponse), within a 1 MiB limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promimport::remote_read::decode_samples_response;

fuzz_target!(|data: &[u8]| {
    let _ = decode_samples_response(data, 1 << 20, "http://fuzz/api/v1/read");
});
