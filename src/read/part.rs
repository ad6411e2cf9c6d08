//! A read spread over processes (Ballista's executors): a planned read
//! ([`super::ReadPlan`]) is cut into parts ([`split`]), each part is read on its own
//! ([`super::read_units`]), and its [`PartReport`] (counts, line counts of its chunks,
//! hash pieces, stream digests and bad lines) is written to a file that the run reads
//! back and merges ([`super::finish_read`]). Counts, rejects and input hashes are then
//! those of a read in one process, since chunks are numbered and hashed the same way.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::bad::{self, BadLine, Segment, Spool};
use super::chunk::ChunkId;
use super::{InputDigest, ReadStats, Unit};
use crate::error::{Error, Result};

/// What reading one part found, besides its rows.
#[derive(Debug, Default)]
pub struct PartReport {
    /// Line counts.
    pub stats: ReadStats,
    /// Bad lines (chunk-relative numbering) by (chunk, number within the chunk).
    pub segments: Vec<((ChunkId, u32), Segment)>,
    /// Each decoded chunk's line count, and whether it was decoded to its end.
    pub chunk_lines: Vec<(ChunkId, u64, bool)>,
    /// BLAKE3 pieces of the plain-file blocks read.
    pub pieces: Vec<(ChunkId, [u8; 32])>,
    /// Size and hash of each streamed input read to its end, by input index.
    pub stream_digests: Vec<(u32, InputDigest)>,
}

/// First bytes of a report file; the number changes with its layout.
const MAGIC: &[u8] = b"mrpipe part report 1\n";
/// Last bytes: a report without them was cut short.
const END: &[u8] = b"end\n";

/// Cuts `units` into at most `parts` runs of consecutive units of about equal bytes
/// (a streamed input counts as `block` bytes); none is empty.
pub fn split(units: &[Unit], parts: usize, block: u64) -> Vec<Vec<Unit>> {
    let weight = |u: &Unit| match u {
        Unit::Chunk(c) => (c.planned.block_end - c.planned.read.start).max(1),
        Unit::Stream { .. } => block.max(1),
    };
    let total: u64 = units.iter().map(weight).sum();
    let parts = parts.clamp(1, units.len().max(1)) as u64;
    let mut out: Vec<Vec<Unit>> = Vec::with_capacity(parts as usize);
    let mut done = 0u64;
    for unit in units {
        // The part a unit falls in: where the middle of its bytes lies.
        let part = ((done + weight(unit) / 2) * parts / total.max(1)).min(parts - 1) as usize;
        done += weight(unit);
        if out.len() <= part {
            out.push(Vec::new());
        }
        out.last_mut().expect("a part was pushed").push(unit.clone());
    }
    out
}

impl PartReport {
    /// Writes the report, with the bad lines `spool` holds for it, to `path`: to a
    /// temporary file beside it renamed over it, so a retried task replaces a report
    /// whole and a reader never sees half of one. Errors: the file cannot be written.
    pub fn write(&self, spool: &Spool, path: &Path) -> Result<()> {
        // A name of this writer's own: two scans of one input (a UNION of it with
        // itself) write the same part's report at once.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        let io = |e| Error::io(&temp, e);
        let mut out = BufWriter::new(File::create(&temp).map_err(io)?);
        let mut head = MAGIC.to_vec();
        let s = &self.stats;
        for n in [s.lines, s.good, s.bad, s.empty, s.headers, s.bytes] {
            head.extend_from_slice(&n.to_le_bytes());
        }
        head.extend_from_slice(&(self.chunk_lines.len() as u64).to_le_bytes());
        for (id, lines, complete) in &self.chunk_lines {
            put_id(&mut head, *id);
            head.extend_from_slice(&lines.to_le_bytes());
            head.push(u8::from(*complete));
        }
        head.extend_from_slice(&(self.pieces.len() as u64).to_le_bytes());
        for (id, piece) in &self.pieces {
            put_id(&mut head, *id);
            head.extend_from_slice(piece);
        }
        head.extend_from_slice(&(self.stream_digests.len() as u64).to_le_bytes());
        for (file, digest) in &self.stream_digests {
            head.extend_from_slice(&file.to_le_bytes());
            head.extend_from_slice(&digest.size.to_le_bytes());
            head.extend_from_slice(&(digest.blake3.len() as u64).to_le_bytes());
            head.extend_from_slice(digest.blake3.as_bytes());
        }
        head.extend_from_slice(&(self.segments.len() as u64).to_le_bytes());
        out.write_all(&head).map_err(io)?;
        // One segment at a time: a part's bad lines may be more than memory holds.
        for ((id, number), segment) in &self.segments {
            let mut bytes = Vec::new();
            for line in spool.lines_of(segment)? {
                bad::encode(&line, &mut bytes);
            }
            let mut key = Vec::with_capacity(20);
            put_id(&mut key, *id);
            key.extend_from_slice(&number.to_le_bytes());
            key.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.write_all(&key).and_then(|()| out.write_all(&bytes)).map_err(io)?;
        }
        out.write_all(END).map_err(io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temp, path).map_err(|e| Error::io(path, e))
    }

    /// Reads a report written by [`PartReport::write`], storing its bad lines in
    /// `spool` and counting them against its budget. Errors: the file cannot be read,
    /// or is not a whole report (nothing is allocated beyond the file's size).
    pub fn load(path: &Path, spool: &Spool) -> Result<PartReport> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut input = Input { reader: BufReader::new(file), left: len, path };
        if input.bytes(MAGIC.len() as u64)? != MAGIC {
            return Err(input.damaged());
        }
        let mut n = [0u64; 6];
        for v in &mut n {
            *v = input.u64()?;
        }
        let stats = ReadStats { lines: n[0], good: n[1], bad: n[2], empty: n[3], headers: n[4], bytes: n[5] };
        let mut report = PartReport { stats, ..PartReport::default() };
        for _ in 0..input.count(17)? {
            let (id, lines, complete) = (input.id()?, input.u64()?, input.bytes(1)?[0] != 0);
            report.chunk_lines.push((id, lines, complete));
        }
        for _ in 0..input.count(40)? {
            let id = input.id()?;
            let piece: [u8; 32] = input.bytes(32)?.try_into().map_err(|_| input.damaged())?;
            report.pieces.push((id, piece));
        }
        for _ in 0..input.count(20)? {
            let (file, size, hex_len) = (input.u32()?, input.u64()?, input.u64()?);
            let blake3 = String::from_utf8(input.bytes(hex_len)?).map_err(|_| input.damaged())?;
            report.stream_digests.push((file, InputDigest { size, blake3 }));
        }
        for _ in 0..input.count(20)? {
            let (id, number, bytes) = (input.id()?, input.u32()?, input.u64()?);
            let lines: Vec<BadLine> = bad::decode_all(&input.bytes(bytes)?).ok_or_else(|| input.damaged())?;
            lines.iter().for_each(|_| spool.count());
            report.segments.push(((id, number), spool.store(lines)?));
        }
        if input.bytes(END.len() as u64)? != END || input.left != 0 {
            return Err(input.damaged());
        }
        Ok(report)
    }
}

fn put_id(out: &mut Vec<u8>, id: ChunkId) {
    out.extend_from_slice(&id.file.to_le_bytes());
    out.extend_from_slice(&id.index.to_le_bytes());
}

/// A report being read, with the bytes left in it.
struct Input<'a> {
    reader: BufReader<File>,
    left: u64,
    path: &'a Path,
}

impl Input<'_> {
    fn damaged(&self) -> Error {
        Error::sink("read report", format!("'{}' is not a whole part report", self.path.display()))
    }

    /// The next `n` bytes; an error past the end of the file.
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>> {
        if n > self.left {
            return Err(self.damaged());
        }
        self.left -= n;
        let mut buf = vec![0u8; n as usize];
        self.reader.read_exact(&mut buf).map_err(|e| Error::io(self.path, e))?;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| self.damaged())?))
    }

    fn id(&mut self) -> Result<ChunkId> {
        Ok(ChunkId { file: self.u32()?, index: self.u32()? })
    }

    /// A count of records of at least `each` bytes, which must fit in what is left.
    fn count(&mut self, each: u64) -> Result<u64> {
        let n = self.u64()?;
        if n.saturating_mul(each) > self.left {
            return Err(self.damaged());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::PlainChunk;
    use crate::read::chunk::PlannedChunk;

    fn chunk(file: u32, index: u32, start: u64, end: u64) -> Unit {
        let planned = PlannedChunk { read: start..end, decode_from: start, block_end: end };
        Unit::Chunk(PlainChunk { id: ChunkId { file, index }, planned, file_len: 1 << 30 })
    }

    #[test]
    fn parts_are_consecutive_balanced_and_never_empty() {
        let units: Vec<Unit> = (0..10).map(|k| chunk(0, k, k as u64 * 100, (k as u64 + 1) * 100)).collect();
        for parts in 1..=12 {
            let split = split(&units, parts, 100);
            assert_eq!(split.len(), parts.min(10), "{parts} parts");
            assert!(split.iter().all(|p| !p.is_empty()));
            assert_eq!(split.concat(), units, "{parts} parts keep every unit once, in order");
            let sizes: Vec<usize> = split.iter().map(Vec::len).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        }
        assert!(split(&[], 4, 100).is_empty());
        let mixed = vec![chunk(0, 0, 0, 100), Unit::Stream { file: 1 }, Unit::Stream { file: 2 }];
        assert_eq!(split(&mixed, 3, 100).len(), 3);
    }

    #[test]
    fn a_report_round_trips_with_its_bad_lines_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path(), None);
        let id = ChunkId { file: 1, index: 2 };
        let lines = vec![
            BadLine { chunk: id, line: 3, reason: "bad\ttab".into(), raw: b"a\x00\xff".to_vec() },
            BadLine { chunk: id, line: 7, reason: "too few fields".into(), raw: Vec::new() },
        ];
        let report = PartReport {
            stats: ReadStats { lines: 9, good: 6, bad: 2, empty: 1, headers: 0, bytes: 1234 },
            segments: vec![((id, 0), spool.store(lines.clone()).unwrap())],
            chunk_lines: vec![(id, 9, true), (ChunkId { file: 1, index: 3 }, 0, false)],
            pieces: vec![(id, [7u8; 32])],
            stream_digests: vec![(4, InputDigest { size: 99, blake3: "ab".repeat(32) })],
        };
        let path = dir.path().join("part-0");
        report.write(&spool, &path).unwrap();
        let client = Spool::new(dir.path(), Some(1));
        let back = PartReport::load(&path, &client).unwrap();
        assert_eq!(back.stats, report.stats);
        assert_eq!(back.chunk_lines, report.chunk_lines);
        assert_eq!(back.pieces, report.pieces);
        assert_eq!(back.stream_digests, report.stream_digests);
        assert_eq!(client.lines_of(&back.segments[0].1).unwrap(), lines);
        assert!(client.stopped(), "the loaded bad lines count against the run's budget");

        let whole = std::fs::read(&path).unwrap();
        for cut in [0, 10, whole.len() / 2, whole.len() - 1] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let err = PartReport::load(&path, &Spool::new(dir.path(), None)).unwrap_err();
            assert!(err.to_string().contains("not a whole part report"), "cut at {cut}: {err}");
        }
        let mut huge = whole.clone();
        huge[MAGIC.len() + 48..MAGIC.len() + 56].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        assert!(PartReport::load(&path, &Spool::new(dir.path(), None)).is_err(), "a huge count allocates nothing");
    }

    /// A read in parts, each in its own pool with its own spool and its report written
    /// and read back, gives the whole read's counts, rows, bad lines and hashes.
    #[test]
    fn a_read_in_parts_merges_into_the_whole_read() {
        use std::sync::Arc;

        use crate::progress::Progress;
        use crate::read::format::Format;
        use crate::read::input::{Encoding, InputFile};
        use crate::read::{ReadLimits, Source, finish_read, plan_read, read_fold, read_units};

        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..120_000u64 {
            match i % 997 {
                5 => text.push_str("not a sale\n"),
                9 => text.push('\n'),
                _ => text.push_str(&format!(
                    "2026-11-20T10:00:00Z\tp{}\tc{}\t{}\t{}.50\ts\tb\n",
                    i % 50,
                    i % 7,
                    i % 3 + 1,
                    i % 90
                )),
            }
        }
        let plain = dir.path().join("a.tsv");
        std::fs::write(&plain, &text).unwrap();
        let packed = dir.path().join("b.tsv.zst");
        std::fs::write(&packed, zstd::encode_all(text.as_bytes(), 1).unwrap()).unwrap();
        let inputs = vec![
            InputFile { path: plain, encoding: Encoding::Plain },
            InputFile { path: packed, encoding: Encoding::Zstd },
        ];
        let format = Format::by_name("sales").unwrap();
        let progress = Progress::hidden();
        let limits = ReadLimits::default();
        let source = Source {
            inputs: &inputs,
            format: &format,
            progress: &progress,
            limits: &limits,
            scratch: dir.path(),
            columns: None,
        };
        let rows = |states: Vec<usize>| states.iter().sum::<usize>();
        let count = |n: &mut usize, b: arrow::array::RecordBatch| {
            *n += b.num_rows();
            Ok(())
        };
        let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        let whole = pool(2).install(|| read_fold(&source, || 0usize, count)).unwrap();

        // Planned for 16 tasks: the plain file gets several (1 MiB) chunks to spread.
        let plan = plan_read(&inputs, 16).unwrap();
        assert!(plan.units.len() > 4, "{} units", plan.units.len());
        let client = Arc::new(Spool::new(dir.path(), None));
        let (mut reports, mut total) = (Vec::new(), 0);
        for (k, units) in split(&plan.units, 3, plan.block).iter().enumerate() {
            let spool = Arc::new(Spool::new(dir.path(), None));
            let (states, report) = pool(1).install(|| read_units(&source, units, &spool, || 0usize, count)).unwrap();
            total += rows(states);
            let path = dir.path().join(format!("part-{k}"));
            report.write(&spool, &path).unwrap();
            reports.push(PartReport::load(&path, &client).unwrap());
        }
        let (stats, bad_lines, digests, stopped) = finish_read(&plan, &inputs, client, reports).unwrap();
        assert_eq!(total, rows(whole.states));
        assert_eq!(stats, whole.stats);
        assert_eq!(digests, whole.digests);
        assert!(!stopped && !whole.stopped);
        let lines = |b: &crate::read::BadLines| {
            b.iter().map(|l| l.unwrap()).map(|l| (l.chunk.file, l.line, l.raw)).collect::<Vec<_>>()
        };
        assert_eq!(lines(&bad_lines), lines(&whole.bad_lines));
        assert_eq!(lines(&bad_lines).len(), 2 * 121);
    }
}
