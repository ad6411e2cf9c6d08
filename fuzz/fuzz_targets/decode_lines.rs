//! Every line decoder (the three TSV formats, CLF, URL lists) on arbitrary bytes:
//! decoding never fails or panics, every line is counted once (lines = good + bad +
//! empty + header), every good line is a row, and decoding is line-local: each line
//! decoded on its own gives the same verdict and the same values as in the chunk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrpipe::read::decode::{Chunk, ChunkId, ChunkReport, DecodeLimits, decode_chunk};
use mrpipe::read::format::{ACCESS_LOG, Format, SALES, TRANSACTIONS};

fn decode(format: &Format, data: &[u8], index: u32, max_line: usize) -> (ChunkReport, Vec<arrow::array::RecordBatch>) {
    let mut report = ChunkReport::new(DecodeLimits { max_line_bytes: max_line, ..DecodeLimits::default() });
    let mut batches = Vec::new();
    let chunk = Chunk { id: ChunkId { file: 0, index }, data, overlong: None };
    decode_chunk(chunk, format, format.all_columns(), &mut report, &mut |b| {
        batches.push(b);
        Ok(())
    })
    .expect("decoding in memory cannot fail");
    (report, batches)
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else { return };
    let formats =
        [Format::Tsv(SALES), Format::Tsv(TRANSACTIONS), Format::Tsv(ACCESS_LOG), Format::Clf, Format::UrlList];
    let format = &formats[usize::from(selector % 5)];
    let max_line = if selector & 0x80 != 0 { usize::from(selector & 0x3f) + 1 } else { usize::MAX };
    // The file's first chunk (header and BOM rules) keeps the counting invariant.
    let (first, _) = decode(format, data, 0, max_line);
    let s = first.stats;
    assert_eq!(s.lines, s.good + s.bad + s.empty + s.headers);

    let (whole, batches) = decode(format, data, 1, max_line);
    let s = whole.stats;
    assert_eq!(s.lines, s.good + s.bad + s.empty + s.headers);
    assert_eq!(batches.iter().map(|b| b.num_rows() as u64).sum::<u64>(), s.good);
    assert_eq!(whole.bad_lines().len() as u64, s.bad);

    let mut good = 0;
    let mut rows = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() && std::ptr::eq(line.as_ptr_range().end, data.as_ptr_range().end) {
            continue; // after the final line end: no line
        }
        let framed = [line, b"\n"].concat();
        let (one, batches) = decode(format, &framed, 1, max_line);
        assert_eq!(one.stats.lines, 1);
        good += one.stats.good;
        rows.extend(batches);
    }
    assert_eq!(good, s.good, "a line's verdict depends on its neighbours");
    if let (Some(all), Some(one)) = (
        arrow::compute::concat_batches(&format.schema(), &batches).ok(),
        arrow::compute::concat_batches(&format.schema(), &rows).ok(),
    ) {
        assert_eq!(all, one, "a line's values depend on its neighbours");
    }
});
