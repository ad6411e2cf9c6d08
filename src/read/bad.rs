//! Bad lines in the `read` stage, held in bounded memory: decoding tasks quarantine
//! lines into a [`Spool`], and the run gets them back as [`BadLines`], in (file, line)
//! order, however many there are.
//!
//! A task buffers its chunk's bad lines; a full buffer ([`FLUSH_BYTES`]), and the rest
//! at the chunk's end, becomes a segment, kept in memory while all segments together
//! stay under [`MEMORY_BYTES`] and appended to a spool file in the run's scratch
//! directory beyond. Segments are numbered within their chunk, so sorting them by
//! (chunk, number) restores file order; line numbers, relative to the chunk while
//! decoding, become file line numbers once every chunk has reported its line count.
//!
//! Under a count budget (`--max-bad-lines N`, `--strict`) the read stops early, yet
//! deterministically: the run fails on the (N+1)th bad line in (file, line) order,
//! whichever tasks ran first. A task stops its chunk once the chunk alone holds N+1
//! bad lines, and a chunk is not read at all once the finished chunks before it hold
//! N+1; so every chunk up to the one holding the (N+1)th bad line is read, and the
//! rejects file holds exactly the first N+1.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::chunk::ChunkId;
use crate::error::{Error, Result};
use crate::scratch::{Scratch, scratch_dir};

/// A task's buffered bad lines become a segment past this many bytes.
pub const FLUSH_BYTES: usize = 256 << 10;

/// Bytes of bad lines kept in memory by a whole run; the rest go to the spool file.
pub const MEMORY_BYTES: usize = 16 << 20;

/// A quarantined line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// Where it came from.
    pub chunk: ChunkId,
    /// 1-based line number (relative to the chunk until the reader fixes it up).
    pub line: u64,
    /// Why it is bad.
    pub reason: String,
    /// The line's bytes, without its line end (the first bytes only, for a line longer
    /// than `--max-line-bytes`).
    pub raw: Vec<u8>,
}

impl BadLine {
    /// Bytes it holds, for the memory bound.
    fn bytes(&self) -> usize {
        size_of::<BadLine>() + self.reason.len() + self.raw.len()
    }
}

/// Where the bad lines of a run go while it reads, shared by its decoding tasks.
pub struct Spool {
    /// Where the spool file is made, on first need.
    parent: PathBuf,
    file: Mutex<Option<SpoolFile>>,
    in_memory: AtomicUsize,
    found: AtomicU64,
    /// The count budget: the read fails past this many bad lines.
    stop_after: Option<u64>,
    /// Bad lines of each finished chunk, kept under a count budget to decide skips.
    finished: Mutex<BTreeMap<ChunkId, u64>>,
}

struct SpoolFile {
    dir: Scratch,
    path: PathBuf,
    writer: BufWriter<File>,
    len: u64,
}

/// A run of consecutive bad lines of one chunk.
#[derive(Debug)]
pub enum Segment {
    /// Held in memory.
    Memory(Vec<BadLine>),
    /// In the spool file at `offset`, `len` bytes.
    Spooled { offset: u64, len: u64 },
}

impl Spool {
    /// A spool making its file in `parent` if it must; reading stops past `stop_after` bad lines.
    pub fn new(parent: &Path, stop_after: Option<u64>) -> Spool {
        Spool {
            parent: parent.to_path_buf(),
            file: Mutex::new(None),
            in_memory: AtomicUsize::new(0),
            found: AtomicU64::new(0),
            stop_after,
            finished: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one bad line found.
    pub fn count(&self) {
        self.found.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a chunk holding `bad` bad lines so far may stop: the budget's
    /// (N+1)th bad line is then at or before its last one.
    pub fn chunk_is_over(&self, bad: u64) -> bool {
        self.stop_after.is_some_and(|n| bad > n)
    }

    /// Records that `chunk` was decoded (to its end or to its stop) with `bad` bad lines.
    pub fn chunk_done(&self, chunk: ChunkId, bad: u64) {
        if self.stop_after.is_some()
            && let Ok(mut finished) = self.finished.lock()
        {
            finished.insert(chunk, bad);
        }
    }

    /// Whether `chunk` need not be read: the finished chunks before it already hold
    /// more bad lines than the budget allows.
    pub fn skips(&self, chunk: ChunkId) -> bool {
        let Some(n) = self.stop_after else { return false };
        self.finished.lock().is_ok_and(|f| f.range(..chunk).map(|(_, bad)| bad).sum::<u64>() > n)
    }

    /// Whether the read found more bad lines than the count budget allows (so it may
    /// have stopped early). The same for every thread count: a skipped chunk implies it.
    pub fn stopped(&self) -> bool {
        self.stop_after.is_some_and(|n| self.found.load(Ordering::Relaxed) > n)
    }

    /// Stores a chunk's buffered bad lines as one segment.
    pub fn store(&self, lines: Vec<BadLine>) -> Result<Segment> {
        let bytes: usize = lines.iter().map(BadLine::bytes).sum();
        let held = self.in_memory.fetch_add(bytes, Ordering::Relaxed);
        if held + bytes <= MEMORY_BYTES {
            return Ok(Segment::Memory(lines));
        }
        self.in_memory.fetch_sub(bytes, Ordering::Relaxed);
        let mut encoded = Vec::with_capacity(bytes);
        for line in &lines {
            encode(line, &mut encoded);
        }
        let mut slot = self.file.lock().map_err(|_| Error::sink("rejects", "a task panicked while spooling"))?;
        if slot.is_none() {
            let dir = scratch_dir(&self.parent)?;
            let path = dir.path().join("bad-lines");
            let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
            *slot = Some(SpoolFile { dir, path, writer: BufWriter::with_capacity(1 << 20, file), len: 0 });
        }
        let Some(spool) = slot.as_mut() else { unreachable!("the spool file was just made") };
        spool.writer.write_all(&encoded).map_err(|e| Error::io(&spool.path, e))?;
        let offset = spool.len;
        spool.len += encoded.len() as u64;
        Ok(Segment::Spooled { offset, len: encoded.len() as u64 })
    }

    /// The lines of a segment this spool stored, as stored (chunk-relative numbering).
    /// Errors: the spool file cannot be read back.
    pub fn lines_of(&self, segment: &Segment) -> Result<Vec<BadLine>> {
        let (offset, len) = match segment {
            Segment::Memory(lines) => return Ok(lines.clone()),
            Segment::Spooled { offset, len } => (*offset, *len),
        };
        let mut slot = self.file.lock().map_err(|_| Error::sink("rejects", "a task panicked while spooling"))?;
        let Some(spool) = slot.as_mut() else {
            return Err(Error::sink("rejects", "a spooled segment without a spool file"));
        };
        spool.writer.flush().map_err(|e| Error::io(&spool.path, e))?;
        let mut file = File::open(&spool.path).map_err(|e| Error::io(&spool.path, e))?;
        file.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(&spool.path, e))?;
        let mut bytes = vec![0u8; usize::try_from(len).map_err(|_| Error::sink("rejects", "segment too large"))?];
        file.read_exact(&mut bytes).map_err(|e| Error::io(&spool.path, e))?;
        decode_all(&bytes).ok_or_else(|| Error::sink("rejects", "damaged bad-line spool"))
    }

    /// The bad lines of the whole read: `segments` by (chunk, number within the chunk),
    /// numbered with `chunk_lines` (each decoded chunk's line count, and whether it was
    /// decoded to its end). A chunk after a missing or unfinished one in its file (the
    /// read stopped early) cannot be numbered: its bad lines are left out.
    pub fn finish(
        self,
        segments: Vec<((ChunkId, u32), Segment)>,
        chunk_lines: Vec<(ChunkId, u64, bool)>,
    ) -> Result<BadLines> {
        // Past the budget, the first N+1 in file order are the run's verdict; the rest
        // depend on which tasks ran first.
        let keep = if self.stopped() { self.stop_after.map(|n| n + 1) } else { None };
        let file = match self.file.into_inner().map_err(|_| Error::sink("rejects", "a task panicked while spooling"))? {
            Some(mut spool) => {
                spool.writer.flush().map_err(|e| Error::io(&spool.path, e))?;
                Some(spool)
            }
            None => None,
        };
        let mut chunk_lines = chunk_lines;
        chunk_lines.sort_unstable_by_key(|c| c.0);
        let mut offsets = HashMap::with_capacity(chunk_lines.len());
        // (file, next chunk index, lines so far) while the numbering of a file is exact.
        let mut exact: Option<(u32, u32, u64)> = None;
        let mut inexact_file: Option<u32> = None;
        for &(id, lines, complete) in &chunk_lines {
            if inexact_file == Some(id.file) {
                continue;
            }
            let before = match exact {
                Some((file, next, sum)) if file == id.file => (next == id.index).then_some(sum),
                _ => (id.index == 0).then_some(0),
            };
            match before {
                Some(sum) if complete => {
                    offsets.insert(id, sum);
                    exact = Some((id.file, id.index + 1, sum + lines));
                }
                Some(sum) => {
                    // Its own lines are numbered; the file's later chunks cannot be.
                    offsets.insert(id, sum);
                    (exact, inexact_file) = (None, Some(id.file));
                }
                None => (exact, inexact_file) = (None, Some(id.file)),
            }
        }
        let mut segments = segments;
        segments.sort_unstable_by_key(|(key, _)| *key);
        segments.retain(|((chunk, _), _)| offsets.contains_key(chunk));
        Ok(BadLines { segments, offsets, spool: file.map(|f| (f.dir, f.path)), keep })
    }
}

/// Every bad line of a read, in (file, line) order; most of them may be on disk.
#[derive(Debug, Default)]
pub struct BadLines {
    segments: Vec<((ChunkId, u32), Segment)>,
    /// Lines in the file before each chunk.
    offsets: HashMap<ChunkId, u64>,
    spool: Option<(Scratch, PathBuf)>,
    /// How many of them count, when the read stopped at the budget.
    keep: Option<u64>,
}

impl BadLines {
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|(_, s)| matches!(s, Segment::Memory(lines) if lines.is_empty()))
    }

    /// The first bad line, if any.
    pub fn first(&self) -> Result<Option<BadLine>> {
        self.iter().next().transpose()
    }

    /// The bad lines in (file, line) order, with file line numbers. Errors: the spool
    /// file could not be read back.
    pub fn iter(&self) -> impl Iterator<Item = Result<BadLine>> + '_ {
        let mut reader: Option<File> = None;
        let keep = self.keep.and_then(|k| usize::try_from(k).ok()).unwrap_or(usize::MAX);
        self.segments
            .iter()
            .flat_map(move |((chunk, _), segment)| {
                let offset = self.offsets.get(chunk).copied().unwrap_or(0);
                let lines: Vec<Result<BadLine>> = match segment {
                    Segment::Memory(lines) => lines.iter().cloned().map(Ok).collect(),
                    Segment::Spooled { offset: at, len } => match self.read_segment(&mut reader, *at, *len) {
                        Ok(lines) => lines.into_iter().map(Ok).collect(),
                        Err(e) => vec![Err(e)],
                    },
                };
                lines.into_iter().map(move |l| {
                    l.map(|mut l| {
                        l.line += offset;
                        l
                    })
                })
            })
            .take(keep)
    }

    fn read_segment(&self, reader: &mut Option<File>, offset: u64, len: u64) -> Result<Vec<BadLine>> {
        let Some((_, path)) = &self.spool else {
            return Err(Error::sink("rejects", "a spooled segment without a spool file"));
        };
        let io = |e| Error::io(path, e);
        if reader.is_none() {
            *reader = Some(File::open(path).map_err(io)?);
        }
        let Some(file) = reader.as_mut() else { unreachable!("opened above") };
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut bytes = vec![0u8; usize::try_from(len).map_err(|_| Error::sink("rejects", "segment too large"))?];
        file.read_exact(&mut bytes).map_err(io)?;
        decode_all(&bytes).ok_or_else(|| Error::sink("rejects", "damaged bad-line spool"))
    }
}

/// Every line [`encode`]d in `bytes`; `None` when they are damaged.
pub(super) fn decode_all(bytes: &[u8]) -> Option<Vec<BadLine>> {
    let mut input = bytes;
    let mut lines = Vec::new();
    while !input.is_empty() {
        lines.push(decode(&mut input)?);
    }
    Some(lines)
}

/// `file u32, index u32, line u64, reason (u32 length, bytes), raw (u32 length, bytes)`, little-endian.
pub(super) fn encode(line: &BadLine, out: &mut Vec<u8>) {
    out.extend_from_slice(&line.chunk.file.to_le_bytes());
    out.extend_from_slice(&line.chunk.index.to_le_bytes());
    out.extend_from_slice(&line.line.to_le_bytes());
    // Both are bounded by --max-line-bytes (at most 4 GiB) plus a short message.
    out.extend_from_slice(&(line.reason.len() as u32).to_le_bytes());
    out.extend_from_slice(line.reason.as_bytes());
    out.extend_from_slice(&(line.raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&line.raw);
}

fn decode(input: &mut &[u8]) -> Option<BadLine> {
    fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        (input.len() >= n).then(|| {
            let (head, rest) = input.split_at(n);
            *input = rest;
            head
        })
    }
    let u32_of = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let file = u32_of(take(input, 4)?);
    let index = u32_of(take(input, 4)?);
    let line = u64::from_le_bytes(take(input, 8)?.try_into().ok()?);
    let len = u32_of(take(input, 4)?) as usize;
    let reason = String::from_utf8(take(input, len)?.to_vec()).ok()?;
    let len = u32_of(take(input, 4)?) as usize;
    let raw = take(input, len)?.to_vec();
    Some(BadLine { chunk: ChunkId { file, index }, line, reason, raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(file: u32, index: u32, line: u64, raw: &str) -> BadLine {
        BadLine { chunk: ChunkId { file, index }, line, reason: format!("reason {raw}"), raw: raw.as_bytes().to_vec() }
    }

    #[test]
    fn spooled_and_in_memory_segments_come_back_in_file_order_with_file_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path(), None);
        // Enough to pass the memory bound, so later segments are spooled.
        let big = "x".repeat(MEMORY_BYTES / 4);
        let c = |file, index| ChunkId { file, index };
        let segments = vec![
            ((c(0, 1), 0), spool.store(vec![bad(0, 1, 2, &big)]).unwrap()),
            ((c(0, 0), 0), spool.store(vec![bad(0, 0, 1, &big), bad(0, 0, 3, &big)]).unwrap()),
            ((c(0, 0), 1), spool.store(vec![bad(0, 0, 9, &big)]).unwrap()),
            ((c(1, 0), 0), spool.store(vec![bad(1, 0, 5, "e")]).unwrap()),
        ];
        assert!(segments.iter().any(|(_, s)| matches!(s, Segment::Spooled { .. })), "nothing was spooled");
        let lines = vec![(c(0, 1), 4, true), (c(0, 0), 10, true), (c(1, 0), 7, true)];
        let all = spool.finish(segments, lines).unwrap();
        let got: Vec<(u32, u64)> = all.iter().map(|b| b.unwrap()).map(|b| (b.chunk.file, b.line)).collect();
        assert_eq!(got, vec![(0, 1), (0, 3), (0, 9), (0, 12), (1, 5)]);
        assert_eq!(all.first().unwrap().unwrap().line, 1);
    }

    #[test]
    fn chunks_after_a_gap_or_an_unfinished_chunk_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path(), Some(2));
        for _ in 0..3 {
            spool.count();
        }
        assert!(spool.stopped(), "the third bad line exceeds a budget of 2");
        assert!(!spool.chunk_is_over(2) && spool.chunk_is_over(3));
        spool.chunk_done(ChunkId { file: 0, index: 0 }, 2);
        assert!(!spool.skips(ChunkId { file: 0, index: 1 }));
        spool.chunk_done(ChunkId { file: 0, index: 1 }, 1);
        assert!(spool.skips(ChunkId { file: 0, index: 2 }) && spool.skips(ChunkId { file: 1, index: 0 }));
        assert!(!spool.skips(ChunkId { file: 0, index: 1 }), "only chunks after those count");
        let c = |index| ChunkId { file: 0, index };
        let segments = vec![
            ((c(0), 0), Segment::Memory(vec![bad(0, 0, 2, "a")])),
            ((c(1), 0), Segment::Memory(vec![bad(0, 1, 1, "b")])),
            ((c(3), 0), Segment::Memory(vec![bad(0, 3, 1, "d")])),
        ];
        // Chunk 1 stopped midway; chunk 2 was never read.
        let all = spool.finish(segments, vec![(c(0), 5, true), (c(1), 1, false), (c(3), 4, true)]).unwrap();
        let got: Vec<u64> = all.iter().map(|b| b.unwrap().line).collect();
        assert_eq!(got, vec![2, 6]);
    }
}
