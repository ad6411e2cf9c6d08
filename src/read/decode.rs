//! Decoding in the `read` stage: one line-aligned byte range in, Arrow record
//! batches (handed to a callback as they fill) and a [`ChunkReport`] out.
//!
//! Line numbers of bad lines are relative to the chunk here; the reader turns them
//! into file line numbers once every chunk of the file has reported its line count.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;

use super::format::{Format, Kind, MAX_COLUMNS, Value};
use crate::error::Result;

/// Which chunk of which input a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkId {
    /// Index of the input file in the run's sorted input list.
    pub file: u32,
    /// Index of the chunk within its file, in file order.
    pub index: u32,
}

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

/// A quarantined line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// Where it came from.
    pub chunk: ChunkId,
    /// 1-based line number (relative to the chunk until the reader fixes it up).
    pub line: u64,
    /// Why it is bad.
    pub reason: String,
    /// The line's bytes, without its line end.
    pub raw: Vec<u8>,
}

/// What decoding one or more chunks found, besides the rows.
#[derive(Debug, Default)]
pub struct ChunkReport {
    /// Counts.
    pub stats: ReadStats,
    /// Bad lines, in chunk-relative numbering.
    pub bad_lines: Vec<BadLine>,
    /// How many lines each decoded chunk held.
    pub chunk_lines: Vec<(ChunkId, u64)>,
    /// BLAKE3 pieces of the plain-file blocks read (see `read::hash`).
    pub hash_pieces: Vec<(ChunkId, [u8; 32])>,
}

impl ChunkReport {
    /// Counts and keeps one bad line.
    pub fn quarantine(&mut self, bad: BadLine) {
        self.stats.bad += 1;
        self.bad_lines.push(bad);
    }
}

/// Accumulates typed rows into Arrow arrays of one format's schema.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

enum ColumnBuilder {
    Text(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Int(Int64Builder),
    Money(Decimal128Builder),
}

impl BatchBuilder {
    /// An empty builder for `format` with room for `capacity` rows.
    pub fn new(format: &Format, capacity: usize) -> Self {
        let columns = format
            .columns()
            .iter()
            .map(|c| match c.kind {
                Kind::Text => ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
                Kind::Timestamp => {
                    ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"))
                }
                Kind::Int | Kind::PositiveInt => ColumnBuilder::Int(Int64Builder::with_capacity(capacity)),
                Kind::Money => ColumnBuilder::Money(
                    Decimal128Builder::with_capacity(capacity)
                        .with_precision_and_scale(18, 2)
                        .expect("18,2 is a valid decimal precision and scale"),
                ),
            })
            .collect();
        BatchBuilder { schema: format.schema(), columns, rows: 0 }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row; `values` holds one value of the right kind per column.
    pub fn append(&mut self, values: &[Value<'_>]) {
        for (builder, value) in self.columns.iter_mut().zip(values) {
            match (builder, *value) {
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
            .map(|c| -> ArrayRef {
                match c {
                    ColumnBuilder::Text(b) => Arc::new(b.finish()),
                    ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
                    ColumnBuilder::Int(b) => Arc::new(b.finish()),
                    ColumnBuilder::Money(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        // The arrays were built from this schema's column kinds, so they always match it.
        RecordBatch::try_new(self.schema.clone(), arrays).expect("builders match their schema")
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

/// Decodes the lines of one chunk, calling `on_batch` for each full batch and once
/// for the rest. `data` starts at a line start and ends at a line end or end of file.
pub fn decode_chunk(
    data: &[u8],
    chunk: ChunkId,
    format: &Format,
    report: &mut ChunkReport,
    on_batch: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut builder = BatchBuilder::new(format, BATCH_ROWS);
    let mut values = [Value::Null; MAX_COLUMNS];
    let mut line_no = 0u64;
    report.stats.bytes += data.len() as u64;
    // A file's first chunk starts at its first byte (after decompression), where a BOM may be.
    let data = if chunk.index == 0 { strip_bom(data) } else { data };
    // PostgreSQL text cannot hold a NUL: a line with one is bad for every format and
    // output alike, rather than failing one sink's whole load. One scan per chunk; lines
    // are looked at only in the rare chunk that has one.
    let has_nul = memchr::memchr(0, data).is_some();
    let mut start = 0usize;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let mut line = &data[start..end];
        start = end + 1;
        line_no += 1;
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if format.is_empty_line(line) {
            report.stats.empty += 1;
            continue;
        }
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(e) => {
                let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1);
                report.quarantine(BadLine { chunk, line: line_no, reason, raw: line.to_vec() });
                continue;
            }
        };
        if has_nul && let Some(at) = memchr::memchr(0, line) {
            let reason = format!("NUL byte at byte {} (no SQL output can store it)", at + 1);
            report.quarantine(BadLine { chunk, line: line_no, reason, raw: line.to_vec() });
            continue;
        }
        if line_no == 1 && chunk.index == 0 && format.is_header(text) {
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
            Err(reason) => report.quarantine(BadLine { chunk, line: line_no, reason, raw: line.to_vec() }),
        }
    }
    report.stats.lines += line_no;
    report.chunk_lines.push((chunk, line_no));
    if !builder.is_empty() {
        on_batch(builder.finish())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::format::{Column, col};

    const TWO: &[Column] = &[col("id", Kind::Text), col("n", Kind::Int)];

    fn decode(data: &[u8], index: u32) -> (Vec<RecordBatch>, ChunkReport) {
        let mut batches = Vec::new();
        let mut report = ChunkReport::default();
        let chunk = ChunkId { file: 0, index };
        decode_chunk(data, chunk, &Format::Tsv(TWO), &mut report, &mut |b| {
            batches.push(b);
            Ok(())
        })
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
        let bad: Vec<(u64, &str)> = report.bad_lines.iter().map(|b| (b.line, b.reason.as_str())).collect();
        assert_eq!(bad, vec![(6, "expected 2 fields, found 1"), (7, "invalid UTF-8 at byte 1")]);
    }

    #[test]
    fn a_bom_is_removed_at_the_start_of_a_file_only() {
        let format = Format::Tsv(crate::read::format::ACCESS_LOG);
        let header = "\u{feff}timestamp\tclient_ip\tmethod\turl\tstatus\tbytes\r\n";
        let line = "2026-11-20T13:45:12Z\t1.2.3.4\tGET\t/x\t200\t1\n";
        let first = ChunkId { file: 0, index: 0 };
        let mut report = ChunkReport::default();
        decode_chunk(format!("{header}\u{feff}{line}").as_bytes(), first, &format, &mut report, &mut |_| Ok(()))
            .unwrap();
        let s = report.stats;
        assert_eq!((s.lines, s.good, s.bad, s.headers), (2, 0, 1, 1), "a BOM inside the file is data");
        let mut report = ChunkReport::default();
        decode_chunk(format!("\u{feff}{line}").as_bytes(), first, &format, &mut report, &mut |_| Ok(())).unwrap();
        assert_eq!(report.stats.good, 1, "the first record after a BOM parses");
        let later = ChunkId { file: 0, index: 1 };
        let mut report = ChunkReport::default();
        decode_chunk(format!("\u{feff}{line}").as_bytes(), later, &format, &mut report, &mut |_| Ok(())).unwrap();
        assert_eq!(report.stats.bad, 1, "a later chunk does not start the file");
    }

    #[test]
    fn header_only_in_first_chunk() {
        let (_, report) = decode(b"id\tn\n", 1);
        assert_eq!(report.stats.bad, 1);
        assert_eq!(report.stats.headers, 0);
    }
}
