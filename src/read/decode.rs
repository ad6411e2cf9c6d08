//! Decoding in the `read` stage: one line-aligned byte range in, Arrow record
//! batches (handed to a callback as they fill) and a [`ChunkReport`] out.
//!
//! Line numbers of bad lines are relative to the chunk here; the reader turns them
//! into file line numbers once every chunk of the file has reported its line count.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Builder, Int64Builder, RecordBatch, RecordBatchOptions, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;

use super::bad::{FLUSH_BYTES, Segment, Spool};
use super::format::{Format, Kind, MAX_COLUMNS, Projection, Value};
use crate::error::Result;

pub use super::chunk::ChunkId;

/// Line counts of a read; `lines == good + bad + empty + headers`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Every line read.
    pub lines: u64,
    /// Lines decoded into a row.
    pub good: u64,
    /// Lines quarantined.
    pub bad: u64,
    /// Empty lines skipped.
    pub empty: u64,
    /// Header lines skipped.
    pub headers: u64,
    /// Input bytes read (decompressed).
    pub bytes: u64,
}

impl ReadStats {
    /// Adds another report's counts to this one.
    pub fn add(&mut self, other: &ReadStats) {
        self.lines += other.lines;
        self.good += other.good;
        self.bad += other.bad;
        self.empty += other.empty;
        self.headers += other.headers;
        self.bytes += other.bytes;
    }
}

pub use super::bad::BadLine;

/// Longest line decoded by default (`--max-line-bytes`): 64 MiB.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Bytes of a line longer than `--max-line-bytes` kept in the rejects file.
pub const OVERLONG_KEPT_BYTES: usize = 1024;

/// One decoding task's view of the read: the spool its bad lines go to and the
/// longest line it decodes.
#[derive(Clone)]
pub struct DecodeLimits {
    /// Where bad lines go (and how many may be found before reading stops).
    pub spool: Arc<Spool>,
    /// A longer line is a bad line, read past without being held whole.
    pub max_line_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { spool: Arc::new(Spool::new(&std::env::temp_dir(), None)), max_line_bytes: MAX_LINE_BYTES }
    }
}

/// What decoding one or more chunks found, besides the rows.
#[derive(Default)]
pub struct ChunkReport {
    /// Counts.
    pub stats: ReadStats,
    /// Segments of bad lines (chunk-relative numbering), keyed by chunk and number.
    pub segments: Vec<((ChunkId, u32), Segment)>,
    /// How many lines each decoded chunk held, and whether it was decoded to its end.
    pub chunk_lines: Vec<(ChunkId, u64, bool)>,
    /// BLAKE3 pieces of the plain-file blocks read (see `read::hash`).
    pub hash_pieces: Vec<(ChunkId, [u8; 32])>,
    /// The spool and line bound.
    pub limits: DecodeLimits,
    /// The current chunk's bad lines not yet stored as a segment, and their bytes.
    pending: Vec<BadLine>,
    pending_bytes: usize,
    /// Segments the current chunk stored so far.
    segment_no: u32,
    /// Bad lines of the current chunk so far.
    chunk_bad: u64,
}

impl ChunkReport {
    /// An empty report of a task that decodes under `limits`.
    pub fn new(limits: DecodeLimits) -> ChunkReport {
        ChunkReport { limits, ..ChunkReport::default() }
    }

    /// Counts and keeps one bad line; true when the chunk may stop (it alone holds
    /// more bad lines than the read's count budget allows).
    pub fn quarantine(&mut self, bad: BadLine) -> Result<bool> {
        self.stats.bad += 1;
        self.chunk_bad += 1;
        self.pending_bytes += bad.raw.len() + bad.reason.len();
        let chunk = bad.chunk;
        self.pending.push(bad);
        if self.pending_bytes > FLUSH_BYTES {
            self.store(chunk)?;
        }
        self.limits.spool.count();
        Ok(self.limits.spool.chunk_is_over(self.chunk_bad))
    }

    /// Stores the current chunk's pending bad lines as its next segment.
    fn store(&mut self, chunk: ChunkId) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let segment = self.limits.spool.store(std::mem::take(&mut self.pending))?;
        self.segments.push(((chunk, self.segment_no), segment));
        self.segment_no += 1;
        self.pending_bytes = 0;
        Ok(())
    }

    /// The bad lines kept so far, for tests of a decoder (segments held in memory only).
    pub fn bad_lines(&self) -> Vec<&BadLine> {
        self.segments
            .iter()
            .flat_map(|(_, s)| match s {
                Segment::Memory(lines) => lines.iter().collect(),
                Segment::Spooled { .. } => Vec::new(),
            })
            .chain(&self.pending)
            .collect()
    }
}

/// One line-aligned range of an input to decode.
pub struct Chunk<'a> {
    /// Which input and which of its chunks.
    pub id: ChunkId,
    /// Whole lines: starts at a line start, ends at a line end or the end of the input.
    pub data: &'a [u8],
    /// A line after `data` longer than `--max-line-bytes`, not read whole: its first
    /// bytes and its length (without its line end).
    pub overlong: Option<(&'a [u8], u64)>,
}

/// Accumulates typed rows into Arrow arrays of one format's projected schema.
pub struct BatchBuilder {
    schema: SchemaRef,
    /// The builder of each projected column, with that column's index in the format.
    columns: Vec<(usize, ColumnBuilder)>,
    rows: usize,
}

enum ColumnBuilder {
    Text(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Int(Int64Builder),
    Money(Decimal128Builder),
}

impl BatchBuilder {
    /// An empty builder of `projection`'s columns of `format`, with room for `capacity` rows.
    pub fn new(format: &Format, projection: Projection, capacity: usize) -> Self {
        let columns = format
            .columns()
            .iter()
            .enumerate()
            .filter(|(i, _)| projection.contains(*i))
            .map(|(i, c)| {
                (
                    i,
                    match c.kind {
                        Kind::Text => ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
                        Kind::Timestamp => ColumnBuilder::Timestamp(
                            TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
                        ),
                        Kind::Int | Kind::PositiveInt => ColumnBuilder::Int(Int64Builder::with_capacity(capacity)),
                        Kind::Money => ColumnBuilder::Money(
                            Decimal128Builder::with_capacity(capacity)
                                .with_precision_and_scale(18, 2)
                                .expect("18,2 is a valid decimal precision and scale"),
                        ),
                    },
                )
            })
            .collect();
        BatchBuilder { schema: format.projected_schema(projection), columns, rows: 0 }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row; `values` holds one value of the right kind per format column.
    pub fn append(&mut self, values: &[Value<'_>]) {
        for (i, builder) in &mut self.columns {
            match (builder, values[*i]) {
                (ColumnBuilder::Text(b), Value::Text(s)) => b.append_value(s),
                (ColumnBuilder::Timestamp(b), Value::Timestamp(t)) => b.append_value(t),
                (ColumnBuilder::Int(b), Value::Int(i)) => b.append_value(i),
                (ColumnBuilder::Money(b), Value::Money(c)) => b.append_value(i128::from(c)),
                (ColumnBuilder::Int(b), Value::Null) => b.append_null(),
                // Format parsers produce exactly their columns' kinds; anything else is a bug.
                (_, v) => unreachable!("value {v:?} does not match its column"),
            }
        }
        self.rows += 1;
    }

    /// Takes the rows appended so far as a record batch and starts over.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|(_, c)| -> ArrayRef {
                match c {
                    ColumnBuilder::Text(b) => Arc::new(b.finish()),
                    ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
                    ColumnBuilder::Int(b) => Arc::new(b.finish()),
                    ColumnBuilder::Money(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        // The row count too: a projection of no columns (`SELECT count(*)`) has rows.
        let options = RecordBatchOptions::new().with_row_count(Some(std::mem::take(&mut self.rows)));
        // The arrays were built from this schema's column kinds, so they always match it.
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options).expect("builders match their schema")
    }
}

/// The UTF-8 byte-order mark that Excel and Notepad put at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `data` without one leading UTF-8 BOM. `jobs.md`: one BOM at the very start of an
/// input (after decompression, stdin too) or side file is removed before framing; the
/// line it starts is still line 1. A BOM anywhere else is data.
pub fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(BOM).unwrap_or(data)
}

/// Rows per record batch handed to the map stage.
pub const BATCH_ROWS: usize = 16 * 1024;

/// Decodes the lines of one chunk, calling `on_batch` for each full batch (of
/// `projection`'s columns) and once for the rest. Stops early, with the chunk marked
/// unfinished, once the chunk alone holds more bad lines than the read's count budget
/// allows.
pub fn decode_chunk(
    chunk: Chunk<'_>,
    format: &Format,
    projection: Projection,
    report: &mut ChunkReport,
    on_batch: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let id = chunk.id;
    let mut builder = BatchBuilder::new(format, projection, BATCH_ROWS);
    let mut values = [Value::Null; MAX_COLUMNS];
    let mut line_no = 0u64;
    let max_line = report.limits.max_line_bytes;
    report.segment_no = 0;
    report.chunk_bad = 0;
    report.stats.bytes += chunk.data.len() as u64;
    // A file's first chunk starts at its first byte (after decompression), where a BOM may be.
    let data = if id.index == 0 { strip_bom(chunk.data) } else { chunk.data };
    // PostgreSQL text cannot hold a NUL: a line with one is bad for every format and
    // output alike, rather than failing one sink's whole load. One scan per chunk; lines
    // are looked at only in the rare chunk that has one.
    let has_nul = memchr::memchr(0, data).is_some();
    // One SIMD UTF-8 check of the whole chunk instead of one per line; only a chunk
    // with invalid bytes somewhere checks its lines one by one, to find them.
    let chunk_text = simdutf8::basic::from_utf8(data).ok();
    let mut stopped = false;
    let mut start = 0usize;
    while start < data.len() && !stopped {
        let line_start = start;
        let mut end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        start = end + 1;
        line_no += 1;
        if end > line_start && data[end - 1] == b'\r' {
            end -= 1;
        }
        let line = &data[line_start..end];
        let bad = |reason: String, raw: &[u8]| BadLine { chunk: id, line: line_no, reason, raw: raw.to_vec() };
        if line.len() > max_line {
            stopped = report.quarantine(overlong(id, line_no, line, line.len() as u64, max_line))?;
            continue;
        }
        if format.is_empty_line(line) {
            report.stats.empty += 1;
            continue;
        }
        // A line end is ASCII, so a line of a valid chunk is itself valid.
        let text = match chunk_text.map_or_else(|| std::str::from_utf8(line), |t| Ok(&t[line_start..end])) {
            Ok(text) => text,
            Err(e) => {
                stopped = report.quarantine(bad(format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1), line))?;
                continue;
            }
        };
        if has_nul && let Some(at) = memchr::memchr(0, line) {
            let reason = format!("NUL byte at byte {} (no SQL output can store it)", at + 1);
            stopped = report.quarantine(bad(reason, line))?;
            continue;
        }
        if line_no == 1 && id.index == 0 && format.is_header(text) {
            report.stats.headers += 1;
            continue;
        }
        match format.parse_line(text, &mut values) {
            Ok(()) => {
                builder.append(&values[..format.columns().len()]);
                report.stats.good += 1;
                if builder.len() == BATCH_ROWS {
                    on_batch(builder.finish())?;
                }
            }
            Err(reason) => stopped = report.quarantine(bad(reason, line))?,
        }
    }
    if let Some((prefix, len)) = chunk.overlong
        && !stopped
    {
        line_no += 1;
        report.stats.bytes += len;
        let prefix = if id.index == 0 && line_no == 1 { strip_bom(prefix) } else { prefix };
        stopped = report.quarantine(overlong(id, line_no, prefix, len, max_line))?;
    }
    report.stats.lines += line_no;
    report.chunk_lines.push((id, line_no, !stopped));
    report.store(id)?;
    report.limits.spool.chunk_done(id, report.chunk_bad);
    if !builder.is_empty() {
        on_batch(builder.finish())?;
    }
    Ok(())
}

/// The bad line of a line of `len` bytes longer than `max` whose first bytes are `prefix`.
fn overlong(chunk: ChunkId, line: u64, prefix: &[u8], len: u64, max: usize) -> BadLine {
    let kept = &prefix[..prefix.len().min(OVERLONG_KEPT_BYTES)];
    BadLine {
        chunk,
        line,
        reason: format!(
            "line of {len} bytes is longer than --max-line-bytes ({max}); its first {} bytes are kept",
            kept.len()
        ),
        raw: kept.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::format::{Column, col};

    const TWO: &[Column] = &[col("id", Kind::Text), col("n", Kind::Int)];

    fn chunk(id: ChunkId, data: &[u8]) -> Chunk<'_> {
        Chunk { id, data, overlong: None }
    }

    fn decode(data: &[u8], index: u32) -> (Vec<RecordBatch>, ChunkReport) {
        let mut batches = Vec::new();
        let mut report = ChunkReport::default();
        let chunk = ChunkId { file: 0, index };
        decode_chunk(
            Chunk { id: chunk, data, overlong: None },
            &Format::Tsv(TWO),
            Format::Tsv(TWO).all_columns(),
            &mut report,
            &mut |b| {
                batches.push(b);
                Ok(())
            },
        )
        .unwrap();
        (batches, report)
    }

    #[test]
    fn crlf_header_empty_and_no_final_newline() {
        let (batches, report) = decode(b"id\tn\r\na\t1\r\n\r\n\nb\t2\nbad\n\xff\t3\nc\t3", 0);
        let s = report.stats;
        assert_eq!((s.lines, s.good, s.bad, s.empty, s.headers), (8, 3, 2, 2, 1));
        assert_eq!(s.lines, s.good + s.bad + s.empty + s.headers);
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
        let bad: Vec<(u64, &str)> = report.bad_lines().iter().map(|b| (b.line, b.reason.as_str())).collect();
        assert_eq!(bad, vec![(6, "expected 2 fields, found 1"), (7, "invalid UTF-8 at byte 1")]);
    }

    /// The report of decoding `chunk` as `format`, every column built.
    fn stats_of(format: &Format, chunk: Chunk<'_>) -> ChunkReport {
        let mut report = ChunkReport::default();
        decode_chunk(chunk, format, format.all_columns(), &mut report, &mut |_| Ok(())).unwrap();
        report
    }

    #[test]
    fn a_bom_is_removed_at_the_start_of_a_file_only() {
        let format = Format::Tsv(crate::read::format::ACCESS_LOG);
        let header = "\u{feff}timestamp\tclient_ip\tmethod\turl\tstatus\tbytes\r\n";
        let line = "2026-11-20T13:45:12Z\t1.2.3.4\tGET\t/x\t200\t1\n";
        let first = ChunkId { file: 0, index: 0 };
        let report = stats_of(&format, chunk(first, format!("{header}\u{feff}{line}").as_bytes()));
        let s = report.stats;
        assert_eq!((s.lines, s.good, s.bad, s.headers), (2, 0, 1, 1), "a BOM inside the file is data");
        let report = stats_of(&format, chunk(first, format!("\u{feff}{line}").as_bytes()));
        assert_eq!(report.stats.good, 1, "the first record after a BOM parses");
        let later = ChunkId { file: 0, index: 1 };
        let report = stats_of(&format, chunk(later, format!("\u{feff}{line}").as_bytes()));
        assert_eq!(report.stats.bad, 1, "a later chunk does not start the file");
    }

    #[test]
    fn header_only_in_first_chunk() {
        let (_, report) = decode(b"id\tn\n", 1);
        assert_eq!(report.stats.bad, 1);
        assert_eq!(report.stats.headers, 0);
    }

    #[test]
    fn a_line_longer_than_the_bound_is_a_bad_line_with_its_first_bytes_kept() {
        let limits = DecodeLimits { max_line_bytes: 2000, ..DecodeLimits::default() };
        let mut report = ChunkReport::new(limits);
        let long = format!("a\t{}", "9".repeat(5000));
        let data = format!("a\t1\n{long}\nb\t2\n");
        let first = ChunkId { file: 0, index: 0 };
        let tail = b"c\t3333";
        let chunk = Chunk { id: first, data: data.as_bytes(), overlong: Some((tail, 7_000_000)) };
        decode_chunk(chunk, &Format::Tsv(TWO), Format::Tsv(TWO).all_columns(), &mut report, &mut |_| Ok(())).unwrap();
        let s = report.stats;
        assert_eq!((s.lines, s.good, s.bad), (4, 2, 2));
        let bad: Vec<(u64, usize, bool)> =
            report.bad_lines().iter().map(|b| (b.line, b.raw.len(), b.reason.contains("longer than"))).collect();
        assert_eq!(bad, vec![(2, OVERLONG_KEPT_BYTES, true), (4, tail.len(), true)]);
        assert!(report.bad_lines()[1].reason.starts_with("line of 7000000 bytes"), "{:?}", report.bad_lines()[1]);
    }

    #[test]
    fn decoding_stops_once_the_bad_line_budget_is_exceeded() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::new(dir.path(), Some(2)));
        let mut report = ChunkReport::new(DecodeLimits { spool, max_line_bytes: MAX_LINE_BYTES });
        let data = b"x\ny\nz\nw\na\t1\n";
        decode_chunk(
            chunk(ChunkId { file: 0, index: 1 }, data),
            &Format::Tsv(TWO),
            Format::Tsv(TWO).all_columns(),
            &mut report,
            &mut |_| Ok(()),
        )
        .unwrap();
        assert_eq!(report.stats.bad, 3, "stops at the chunk's third bad line");
        assert_eq!(report.stats.good, 0);
        assert_eq!(report.chunk_lines, vec![(ChunkId { file: 0, index: 1 }, 3, false)]);
    }

    #[test]
    fn a_projection_builds_some_columns_and_still_checks_the_others() {
        let format = Format::Tsv(TWO);
        let ids = format.projection(Some(&["id"])).unwrap();
        let mut batches = Vec::new();
        let mut report = ChunkReport::default();
        let chunk = chunk(ChunkId { file: 0, index: 1 }, b"a\t1\nb\tx\nc\t3\n");
        decode_chunk(chunk, &format, ids, &mut report, &mut |b| {
            batches.push(b);
            Ok(())
        })
        .unwrap();
        assert_eq!((report.stats.good, report.stats.bad), (2, 1), "the unbuilt column is still checked");
        let names: Vec<String> = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["id"]);
        assert_eq!(batches[0].num_rows(), 2);
        assert!(format.projection(Some(&["nope"])).unwrap_err().contains("no input column 'nope'"));
    }
}
