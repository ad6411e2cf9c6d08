//! Property tests of the reader's invariants, in the normal suite so CI keeps them:
//! on any bytes, decoding never panics and every line is counted exactly once (lines
//! = good + bad + empty + header); a line built from valid field values decodes to
//! exactly those values; timestamps, money and integers parse as the spec says.

use mrpipe::read::decode::{Chunk, ChunkId, ChunkReport, DecodeLimits, decode_chunk};
use mrpipe::read::fields::{format_cents, format_timestamp, parse_int, parse_money, parse_timestamp};
use mrpipe::read::format::{ACCESS_LOG, Format, SALES, TRANSACTIONS, escape, unescape};
use proptest::prelude::*;

fn formats() -> [Format; 5] {
    [Format::Tsv(SALES), Format::Tsv(TRANSACTIONS), Format::Tsv(ACCESS_LOG), Format::Clf, Format::UrlList]
}

/// Bytes shaped like log text: fields, tabs, line ends, odd bytes.
fn log_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\t".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"2026-11-20T13:45:12Z".to_vec()),
        Just(b"12.50".to_vec()),
        Just(b"[20/Nov/2026:13:45:12 +0000] \"GET /x HTTP/1.1\" 200 5".to_vec()),
        Just("\u{feff}".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
        "[a-z0-9 ./:-]{0,12}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_line_is_counted_once_and_nothing_panics(
        data in log_bytes(),
        first in any::<bool>(),
        max_line in prop_oneof![Just(usize::MAX), 1usize..80],
        tail in proptest::option::of(0u64..1000),
    ) {
        for format in formats() {
            let mut report = ChunkReport::new(DecodeLimits { max_line_bytes: max_line, ..DecodeLimits::default() });
            let id = ChunkId { file: 0, index: if first { 0 } else { 1 } };
            // An overlong last line, read past by the reader, is one more (bad) line.
            let overlong = tail.map(|len| (&b"x"[..], len + max_line.min(1 << 20) as u64));
            let mut rows = 0u64;
            let chunk = Chunk { id, data: &data, overlong };
            decode_chunk(chunk, &format, format.all_columns(), &mut report, &mut |b| { rows += b.num_rows() as u64; Ok(()) }).unwrap();
            let s = report.stats;
            prop_assert_eq!(s.lines, s.good + s.bad + s.empty + s.headers);
            prop_assert_eq!(rows, s.good);
            prop_assert_eq!(report.bad_lines().len() as u64, s.bad);
            for bad in report.bad_lines() {
                prop_assert!(bad.raw.len() <= max_line.max(1024), "a kept line is bounded");
            }
        }
    }

    #[test]
    fn valid_values_decode_to_themselves(
        secs in -62_167_219_200i64..253_402_300_799i64,
        cents in -9_999_999_999_999_999i64..9_999_999_999_999_999i64,
        quantity in 1i64..1_000_000_000_000_000_000i64,
        id in "[a-zA-Z0-9 _.-]{0,20}",
    ) {
        let ts = format_timestamp(secs * 1_000_000);
        prop_assert_eq!(parse_timestamp(ts.as_bytes()), Some(secs * 1_000_000));
        let money = format_cents(i128::from(cents));
        prop_assert_eq!(parse_money(money.as_bytes()), Some(cents));
        prop_assert_eq!(parse_int(quantity.to_string().as_bytes()), Some(quantity));
        let line = format!("{ts}\t{id}\tc\t{quantity}\t{money}\ts\tb\n");
        let mut report = ChunkReport::default();
        let chunk = Chunk { id: ChunkId { file: 0, index: 1 }, data: line.as_bytes(), overlong: None };
        decode_chunk(chunk, &Format::Tsv(SALES), Format::Tsv(SALES).all_columns(), &mut report, &mut |_| Ok(())).unwrap();
        prop_assert_eq!(report.stats.good, 1, "{}", line);
    }

    #[test]
    fn escaping_is_lossless(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(unescape(&escape(&bytes)), bytes);
    }
}
