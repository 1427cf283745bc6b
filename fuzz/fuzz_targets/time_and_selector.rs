//! Any text as a time, a duration and a series selector: an error naming the input, or a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promimport::selector::parse_selector;
use promimport::timespec::{parse_duration, parse_time};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_time("--start", text, 1_793_491_200_000);
    let _ = parse_duration("--window", text);
    if let Ok(selector) = parse_selector(text) {
        assert!(!selector.matchers.is_empty());
    }
});
