//! The field parsers on arbitrary bytes: no panic, and every value they accept prints
//! back (as the sinks print it) to text that parses to the same value; escaping of
//! rejects-file text is lossless.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrpipe::read::fields::{format_cents, format_timestamp, parse_int, parse_money, parse_timestamp};
use mrpipe::read::format::{escape, unescape};

fuzz_target!(|data: &[u8]| {
    if let Some(t) = parse_timestamp(data) {
        assert_eq!(parse_timestamp(format_timestamp(t).as_bytes()), Some(t), "{:?}", String::from_utf8_lossy(data));
    }
    if let Some(c) = parse_money(data) {
        assert_eq!(parse_money(format_cents(i128::from(c)).as_bytes()), Some(c), "{:?}", String::from_utf8_lossy(data));
    }
    if let Some(n) = parse_int(data) {
        assert_eq!(parse_int(n.to_string().as_bytes()), Some(n));
    }
    assert_eq!(unescape(&escape(data)), data);
});
