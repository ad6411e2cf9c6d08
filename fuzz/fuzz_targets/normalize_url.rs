//! url-dedup's `--normalize` on arbitrary text: no panic, and normalizing is
//! idempotent (a normalized URL is its own normal form), so deduplication by the
//! normal form is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrpipe::jobs::url_dedup::normalize_into;

fuzz_target!(|data: &[u8]| {
    let url = String::from_utf8_lossy(data);
    let mut once = String::new();
    normalize_into(&url, &mut once);
    let mut twice = String::new();
    normalize_into(&once, &mut twice);
    assert_eq!(once, twice, "input {url:?}");
});
