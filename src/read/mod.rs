//! The `read` stage: input files in, Arrow record batches out, decoded in parallel.
//!
//! A plain file is cut into aligned blocks extended to line ends ([`chunk`]) that
//! rayon tasks read with `pread`, hash ([`hash`]) and decode ([`decode`]) on their
//! own; gzip, zstd and stdin are read (and hashed) as one stream of line-aligned
//! blocks that rayon tasks decode as they come. Each task folds its batches into a
//! caller-given state (the map stage's combiner) and its [`ChunkReport`]; when all
//! are done, chunk-relative line numbers of bad lines become file line numbers and
//! block hashes become each input's BLAKE3 hash.
//!
//! Memory is bounded whatever the input: bad lines go to a [`bad::Spool`] (memory,
//! then disk), a line longer than `--max-line-bytes` is read past without being held
//! whole, and a count budget of bad lines stops the read as soon as it is exceeded.

pub mod bad;
pub mod chunk;
pub mod clf;
pub mod decode;
pub mod fields;
pub mod format;
pub mod hash;
pub mod input;
pub mod object;
pub mod part;
pub mod side;

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::RecordBatch;
use rayon::prelude::*;

pub use bad::BadLines;
pub use decode::{BadLine, ChunkId, ChunkReport, ReadStats};
use decode::{Chunk, DecodeLimits};
use format::Format;
use input::{Encoding, InputFile};
pub use part::PartReport;

use crate::error::{Error, Result};
use crate::progress::Progress;

thread_local! {
    /// Each reading thread's block buffer, reused from block to block: a read holds one
    /// block per thread, instead of as many as the allocator keeps back from freed ones,
    /// and pays no page faults per block.
    static BLOCK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Smallest and largest byte range one task decodes at a time.
const MIN_CHUNK: u64 = 1 << 20;
const MAX_CHUNK: u64 = 32 << 20;
/// Block size of streamed (compressed or stdin) input.
const STREAM_BLOCK: usize = 8 << 20;

/// What a read produced besides the folded states.
#[derive(Debug, Default)]
pub struct ReadOutcome<S> {
    /// One state per pool thread that folded (a few more if work nested; merge them).
    pub states: Vec<S>,
    /// Line counts over all inputs.
    pub stats: ReadStats,
    /// Bad lines with file line numbers, in (file, line) order.
    pub bad_lines: BadLines,
    /// Size and content hash of each input, in input order (empty when `stopped`).
    pub digests: Vec<InputDigest>,
    /// Whether reading stopped early, at the bad line that exceeded the budget.
    pub stopped: bool,
}

/// What reading the inputs found, besides rows.
#[derive(Debug, Default)]
pub struct ReadSummary {
    /// Line counts.
    pub stats: ReadStats,
    /// Quarantined lines, in (file, line) order.
    pub bad_lines: BadLines,
    /// Size and BLAKE3 of each input, in input order (empty when `stopped`).
    pub digests: Vec<InputDigest>,
    /// Whether reading stopped early, at the bad line that exceeded the budget: the
    /// counts are then those of the part read.
    pub stopped: bool,
}

impl<S> ReadOutcome<S> {
    /// Splits the outcome into the per-task states and the summary.
    pub fn split(self) -> (Vec<S>, ReadSummary) {
        let ReadOutcome { states, stats, bad_lines, digests, stopped } = self;
        (states, ReadSummary { stats, bad_lines, digests, stopped })
    }
}

/// What a run read of one input: its size on disk (bytes read for stdin) and BLAKE3 hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputDigest {
    /// Bytes of the file as stored (compressed bytes for `.gz`/`.zst`).
    pub size: u64,
    /// BLAKE3 of those bytes, lower-case hex.
    pub blake3: String,
}

/// Bounds of a read, from the command line.
#[derive(Clone, Debug)]
pub struct ReadLimits {
    /// A longer line is a bad line (`--max-line-bytes`, default 64 MiB).
    pub max_line_bytes: usize,
    /// Reading stops when more bad lines than this are found (a count budget:
    /// `--max-bad-lines N`, `--strict`); `None` reads everything.
    pub stop_after_bad: Option<u64>,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits { max_line_bytes: decode::MAX_LINE_BYTES, stop_after_bad: None }
    }
}

/// What a read goes over and how.
pub struct Source<'a> {
    /// The inputs, in input order.
    pub inputs: &'a [InputFile],
    /// How their lines are decoded.
    pub format: &'a Format,
    /// Where progress is shown.
    pub progress: &'a Progress,
    /// Line length and bad-line bounds.
    pub limits: &'a ReadLimits,
    /// Where bad lines beyond the in-memory bound are spooled.
    pub scratch: &'a Path,
    /// The columns built into the batches (by name), or `None` for all of them; the
    /// others are parsed and checked all the same (see [`format::Projection`]).
    pub columns: Option<&'a [&'a str]>,
}

/// Folds `items` in parallel into one state per pool thread. rayon's `fold` makes one
/// per split of the work, often several per thread, and a job's state is a hash table
/// that may hold most of the keys (url-dedup): each extra one costs memory and a merge.
/// A thread that takes up an item while folding another (rayon steals work when a fold
/// waits on nested parallel work) starts a state of its own for it.
fn fold_per_thread<T, S, P, I, F>(items: P, start: I, fold: F) -> Vec<S>
where
    P: ParallelIterator<Item = T>,
    S: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(S, T) -> S + Sync + Send,
{
    let slots: Vec<Mutex<Vec<S>>> = (0..rayon::current_num_threads().max(1)).map(|_| Mutex::new(Vec::new())).collect();
    let lock = |i: usize| slots[i % slots.len()].lock().unwrap_or_else(PoisonError::into_inner);
    items.for_each(|item| {
        let thread = rayon::current_thread_index().unwrap_or(0);
        let state = lock(thread).pop().unwrap_or_else(&start);
        let state = fold(state, item);
        lock(thread).push(state);
    });
    slots.into_iter().flat_map(|slot| slot.into_inner().unwrap_or_else(PoisonError::into_inner)).collect()
}

/// Reads every input, folding each decoded batch into a per-task state made by `init`.
///
/// Must run inside the rayon pool that sets the thread count.
pub fn read_fold<S, I, F>(source: &Source<'_>, init: I, fold: F) -> Result<ReadOutcome<S>>
where
    S: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, RecordBatch) -> Result<()> + Sync + Send,
{
    let plan = plan_read(source.inputs, rayon::current_num_threads())?;
    let spool = Arc::new(bad::Spool::new(source.scratch, source.limits.stop_after_bad));
    let (states, report) = read_units(source, &plan.units, &spool, init, fold)?;
    let (stats, bad_lines, digests, stopped) = finish_read(&plan, source.inputs, spool, vec![report])?;
    Ok(ReadOutcome { states, stats, bad_lines, digests, stopped })
}

/// Reads `units` of a planned read (all of them, or one part's), folding each decoded
/// batch into a per-task state made by `init`; bad lines go to `spool`. The report is
/// merged with those of the other parts by [`finish_read`].
///
/// Must run inside the rayon pool that sets the thread count.
pub fn read_units<S, I, F>(
    source: &Source<'_>,
    units: &[Unit],
    spool: &Arc<bad::Spool>,
    init: I,
    fold: F,
) -> Result<(Vec<S>, PartReport)>
where
    S: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, RecordBatch) -> Result<()> + Sync + Send,
{
    let Source { inputs, format, progress, limits, scratch: _, columns } = *source;
    let projection = format.projection(columns).map_err(|message| Error::Job { job: "read", message })?;
    let decode_limits = DecodeLimits { spool: spool.clone(), max_line_bytes: limits.max_line_bytes.max(1) };
    let mut states = Vec::new();
    let mut part = PartReport::default();
    let mut absorb = |results: Vec<Result<(S, ChunkReport)>>| -> Result<()> {
        for result in results {
            let (state, report) = result?;
            states.push(state);
            part.stats.add(&report.stats);
            part.segments.extend(report.segments);
            part.chunk_lines.extend(report.chunk_lines);
            part.pieces.extend(report.hash_pieces);
        }
        Ok(())
    };
    let fold_chunk = |acc: Result<(S, ChunkReport)>, chunk: Chunk<'_>| -> Result<(S, ChunkReport)> {
        let (mut state, mut report) = acc?;
        let bytes = chunk.data.len() as u64;
        decode::decode_chunk(chunk, format, projection, &mut report, &mut |batch| fold(&mut state, batch))?;
        progress.add(bytes);
        Ok((state, report))
    };
    let start = || Ok((init(), ChunkReport::new(decode_limits.clone())));
    let max_line = decode_limits.max_line_bytes as u64;

    let chunks = units.iter().filter_map(|u| match u {
        Unit::Chunk(c) => Some(c),
        Unit::Stream { .. } => None,
    });
    let chunks: Vec<&PlainChunk> = chunks.collect();
    let results: Vec<Result<(S, ChunkReport)>> = fold_per_thread(chunks.into_par_iter(), start, |acc, chunk| {
        if spool.skips(chunk.id) {
            return acc; // the chunks before hold more bad lines than the budget allows
        }
        let (state, mut report) = acc?;
        let path = &inputs[chunk.id.file as usize].path;
        let planned = &chunk.planned;
        // A block inside a line that started before it only needs hashing; and when
        // the last line starting in the block runs past it further than any line
        // may, only the block is read, which holds that line's first bytes.
        let has_lines = planned.decode_from < planned.block_end;
        let overlong = has_lines && planned.read.end - planned.block_end > max_line;
        let read = if has_lines && !overlong { planned.read.clone() } else { planned.read.start..planned.block_end };
        let mut data = BLOCK.with(|b| std::mem::take(&mut *b.borrow_mut()));
        read_range(path, read, &mut data).map_err(|e| Error::io(path, e))?;
        let block = &data[..data.len().min((planned.block_end - planned.read.start) as usize)];
        report.hash_pieces.push((chunk.id, hash::block_piece(block, planned.read.start, chunk.file_len)));
        let lines = &data[((planned.decode_from - planned.read.start) as usize).min(data.len())..];
        let chunk = if overlong {
            let cut = memchr::memrchr(b'\n', lines).map_or(0, |i| i + 1);
            let (whole, tail) = lines.split_at(cut);
            let tail_start = planned.read.start + (data.len() - tail.len()) as u64;
            // The line runs to the next line start, or to the end of the file without a line end.
            let mut last = [0u8; 1];
            File::open(path)
                .and_then(|f| f.read_exact_at(&mut last, planned.read.end - 1))
                .map_err(|e| Error::io(path, e))?;
            let len = planned.read.end - tail_start - u64::from(last[0] == b'\n');
            Chunk { id: chunk.id, data: whole, overlong: Some((tail, len)) }
        } else {
            Chunk { id: chunk.id, data: lines, overlong: None }
        };
        let folded = fold_chunk(Ok((state, report)), chunk);
        BLOCK.with(|b| *b.borrow_mut() = data);
        folded
    });
    // The pool's threads outlive the read: their block buffers must not.
    rayon::broadcast(|_| BLOCK.with(|b| drop(std::mem::take(&mut *b.borrow_mut()))));
    absorb(results)?;

    for unit in units {
        let Unit::Stream { file } = *unit else { continue };
        let input = &inputs[file as usize];
        if spool.skips(ChunkId { file, index: 0 }) {
            continue;
        }
        let (results, produced) = std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<StreamBlock>(rayon::current_num_threads() * 2);
            let stream = Stream { input, file, max_line: decode_limits.max_line_bytes, spool };
            let producer = scope.spawn(move || stream_blocks(&stream, &tx));
            let results = fold_per_thread(rx.into_iter().par_bridge(), start, |acc, block| {
                let overlong = block.overlong.map(|len| (block.data.as_slice(), len));
                let data = if overlong.is_some() { &[][..] } else { block.data.as_slice() };
                fold_chunk(acc, Chunk { id: block.id, data, overlong })
            });
            (results, producer.join())
        });
        absorb(results)?;
        match produced {
            Ok(Ok(Some(digest))) => part.stream_digests.push((file, digest)),
            Ok(Ok(None)) => {}
            // Damage (a corrupt .gz) past the point where the blocks before it already
            // exceed the count budget: the read stopped there, at any thread count.
            Ok(Err((index, _))) if spool.skips(ChunkId { file, index }) => {}
            Ok(Err((_, e))) => return Err(e),
            Err(_) => return Err(Error::Job { job: "read", message: "the decompressing thread panicked".into() }),
        }
    }
    Ok((states, part))
}

/// Merges the reports of every part of a planned read (bad lines already stored in
/// `spool`, see [`PartReport::load`]) into the whole read's counts, bad lines in
/// (file, line) order, input digests (none when the read stopped at the bad-line
/// budget) and whether it stopped.
pub fn finish_read(
    plan: &ReadPlan,
    inputs: &[InputFile],
    spool: Arc<bad::Spool>,
    parts: Vec<PartReport>,
) -> Result<(ReadStats, BadLines, Vec<InputDigest>, bool)> {
    let mut stats = ReadStats::default();
    let (mut segments, mut chunk_lines, mut pieces) = (Vec::new(), Vec::new(), Vec::new());
    let mut stream_digests: HashMap<u32, InputDigest> = HashMap::new();
    for part in parts {
        stats.add(&part.stats);
        segments.extend(part.segments);
        chunk_lines.extend(part.chunk_lines);
        pieces.extend(part.pieces);
        stream_digests.extend(part.stream_digests);
    }
    let stopped = spool.stopped();
    let mut digests = Vec::with_capacity(inputs.len());
    // A stopped read has not seen every block: it has no hashes (and the run fails).
    if !stopped {
        pieces.sort_unstable_by_key(|(id, _)| *id);
        for (file_index, input) in inputs.iter().enumerate() {
            let digest = match input.encoding {
                Encoding::Plain => {
                    let len = plan.sizes[file_index];
                    let file_pieces: Vec<[u8; 32]> =
                        pieces.iter().filter(|(id, _)| id.file as usize == file_index).map(|(_, p)| *p).collect();
                    InputDigest {
                        size: len,
                        blake3: hash::root_hash(&file_pieces, plan.block, len).to_hex().to_string(),
                    }
                }
                _ => stream_digests
                    .remove(&(file_index as u32))
                    .unwrap_or(InputDigest { size: 0, blake3: String::new() }),
            };
            digests.push(digest);
        }
    }
    let spool = Arc::try_unwrap(spool).map_err(|_| Error::sink("rejects", "the bad-line spool is still shared"))?;
    let bad_lines = spool.finish(segments, chunk_lines)?;
    Ok((stats, bad_lines, digests, stopped))
}

/// Total bytes of the plain inputs, for progress; `None` when a stream is among them.
pub fn plain_size(inputs: &[InputFile]) -> Option<u64> {
    inputs
        .iter()
        .map(|f| match f.encoding {
            Encoding::Plain => f.size().ok(),
            _ => None,
        })
        .sum()
}

/// One planned chunk of a plain input.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlainChunk {
    /// Which input, which chunk.
    pub id: ChunkId,
    /// Its byte ranges.
    pub planned: chunk::PlannedChunk,
    /// Size of its file (bytes), which the hash of a block depends on.
    pub file_len: u64,
}

/// One unit of a read that a task takes up on its own.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Unit {
    /// A chunk of a plain file.
    Chunk(PlainChunk),
    /// A whole compressed file or stream (input index), read in order.
    Stream {
        /// Index of the input.
        file: u32,
    },
}

/// A read cut into units: every plain input's chunks, then every streamed input.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadPlan {
    /// The units, in (input, chunk) order.
    pub units: Vec<Unit>,
    /// Size of each input in bytes (0 for streams), by input index.
    pub sizes: Vec<u64>,
    /// Block size of the plain inputs' chunks (a power of two).
    pub block: u64,
}

/// Cuts every plain input into aligned blocks sized for `parallelism` tasks (a power
/// of two, so each block can be hashed on its own) and extends each block to its last
/// line end; each streamed input is one unit. Errors: an input cannot be opened.
pub fn plan_read(inputs: &[InputFile], parallelism: usize) -> Result<ReadPlan> {
    let mut sizes = vec![0u64; inputs.len()];
    for (i, f) in inputs.iter().enumerate().filter(|(_, f)| f.encoding == Encoding::Plain) {
        sizes[i] = f.size().map_err(|e| Error::io(&f.path, e))?;
    }
    let total: u64 = sizes.iter().sum();
    let block = (total / (parallelism.max(1) as u64 * 8)).clamp(MIN_CHUNK, MAX_CHUNK).next_power_of_two();
    let mut units = Vec::new();
    for (i, f) in inputs.iter().enumerate() {
        if f.encoding != Encoding::Plain {
            units.push(Unit::Stream { file: i as u32 });
            continue;
        }
        let planned = match f.path.to_str().filter(|_| f.is_object()) {
            Some(url) => chunk::plan_chunks(sizes[i], block, |at| object::next_line_start(url, at)),
            None => {
                let file = File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
                chunk::plan_chunks(sizes[i], block, |at| next_line_start(&file, at))
            }
        }
        .map_err(|e| Error::io(&f.path, e))?;
        for (k, planned) in planned.into_iter().enumerate() {
            let id = ChunkId { file: i as u32, index: k as u32 };
            units.push(Unit::Chunk(PlainChunk { id, planned, file_len: sizes[i] }));
        }
    }
    Ok(ReadPlan { units, sizes, block })
}

/// The first line start at or after `at` (> 0) in `file`, by reading forward from `at - 1`.
fn next_line_start(file: &File, at: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = at - 1;
    loop {
        let n = file.read_at(&mut buf, pos)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(j) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(Some(pos + j as u64 + 1));
        }
        pos += n as u64;
    }
}

/// Reads `range` of the file (or object) at `path` into `buf` (replacing its contents).
fn read_range(path: &std::path::Path, range: Range<u64>, buf: &mut Vec<u8>) -> std::io::Result<()> {
    if let Some(url) = path.to_str().filter(|_| object::is_object(path)) {
        return object::read_range(url, range, buf);
    }
    let file = File::open(path)?;
    buf.resize((range.end - range.start) as usize, 0);
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read_at(&mut buf[filled..], range.start + filled as u64)?;
        if n == 0 {
            // Shrunk since the run measured it (logrotate's copytruncate): its lines and
            // hash would not be the file's, so the run stops and publishes nothing.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while it was read (truncated by log rotation?); nothing was published, run again",
            ));
        }
        filled += n;
    }
    Ok(())
}

/// A reader that hashes and counts the bytes it passes on.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    size: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// One streamed input being cut into blocks.
struct Stream<'a> {
    input: &'a InputFile,
    file: u32,
    max_line: usize,
    spool: &'a bad::Spool,
}

/// A block of a streamed input: whole lines, or the first bytes of one line longer
/// than `--max-line-bytes` (`overlong` is then its length).
struct StreamBlock {
    id: ChunkId,
    data: Vec<u8>,
    overlong: Option<u64>,
}

/// Reads a compressed file or stdin as line-aligned blocks and sends them in order;
/// returns the stored bytes' size and hash when the input was read to its end.
/// Holds at most a block plus `--max-line-bytes`: a longer line is sent as its first
/// bytes and its length, the rest read past. Stops early when the spool says so.
/// Errors: a read or decompression error, with the index of the block it hit (so the
/// caller can tell whether the budget was exceeded before it, whatever the timing).
fn stream_blocks(
    stream: &Stream<'_>,
    tx: &std::sync::mpsc::SyncSender<StreamBlock>,
) -> std::result::Result<Option<InputDigest>, (u32, Error)> {
    let input = stream.input;
    // The index of the next block, which a read error is reported at.
    let index = std::cell::Cell::new(0u32);
    let fail = |e: std::io::Error| Err((index.get(), Error::io(&input.path, e)));
    let raw: Box<dyn Read> = match input.encoding {
        Encoding::Stdin => Box::new(std::io::stdin().lock()),
        _ if input.is_object() => match object::open(&input.path.to_string_lossy()) {
            Ok(r) => Box::new(std::io::BufReader::with_capacity(1 << 20, r)),
            Err(e) => return fail(e),
        },
        _ => match File::open(&input.path) {
            Ok(f) => Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            Err(e) => return fail(e),
        },
    };
    let digest =
        std::rc::Rc::new(std::cell::RefCell::new(HashingReader { inner: raw, hasher: blake3::Hasher::new(), size: 0 }));
    let shared = SharedReader(digest.clone());
    let mut reader: Box<dyn Read> = match input.encoding {
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(shared))),
        Encoding::Zstd => match zstd::stream::read::Decoder::new(shared) {
            Ok(d) => Box::new(d),
            Err(e) => return fail(e),
        },
        Encoding::Stdin | Encoding::Plain | Encoding::Stream => Box::new(shared),
    };
    let mut carry: Vec<u8> = Vec::new();
    let send = |data: Vec<u8>, overlong: Option<u64>| {
        let id = ChunkId { file: stream.file, index: index.get() };
        index.set(index.get() + 1);
        tx.send(StreamBlock { id, data, overlong }).is_ok()
    };
    loop {
        if stream.spool.skips(ChunkId { file: stream.file, index: index.get() }) {
            return Ok(None); // over the bad-line budget before here: the run fails, unhashed
        }
        let mut block = std::mem::take(&mut carry);
        block.reserve(STREAM_BLOCK);
        let mut eof = false;
        let mut overlong_from = None;
        // Read until the block is big enough and holds a line end (a line may be longer
        // than a block), unless its last line grows past the bound.
        while block.len() < STREAM_BLOCK || memchr::memrchr(b'\n', &block).is_none() {
            match (&mut reader).take(STREAM_BLOCK as u64).read_to_end(&mut block) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => return fail(e),
            }
            let line_start = memchr::memrchr(b'\n', &block).map_or(0, |i| i + 1);
            if block.len() - line_start > stream.max_line {
                overlong_from = Some(line_start);
                break;
            }
        }
        if let Some(line_start) = overlong_from {
            let mut prefix = block.split_off(line_start);
            let mut len = prefix.len() as u64;
            prefix.truncate(decode::OVERLONG_KEPT_BYTES);
            // Read past the rest of the line, a block at a time.
            let mut piece = Vec::with_capacity(STREAM_BLOCK);
            loop {
                piece.clear();
                match (&mut reader).take(STREAM_BLOCK as u64).read_to_end(&mut piece) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => match memchr::memchr(b'\n', &piece) {
                        Some(at) => {
                            len += at as u64;
                            carry = piece.split_off(at + 1);
                            break;
                        }
                        None => len += n as u64,
                    },
                    Err(e) => return fail(e),
                }
            }
            if (!block.is_empty() && !send(block, None)) || !send(prefix, Some(len)) {
                return Ok(None); // the consumer stopped
            }
        } else {
            if !eof {
                // Keep the partial last line for the next block; the loop above ensured a line end.
                if let Some(last_nl) = memchr::memrchr(b'\n', &block) {
                    carry = block.split_off(last_nl + 1);
                }
            }
            if !block.is_empty() && !send(block, None) {
                return Ok(None); // the consumer stopped
            }
        }
        if eof {
            drop(reader);
            let mut raw = digest.borrow_mut();
            // Bytes after the compressed stream's end (none in a well-formed file) still belong to the file.
            let mut rest = Vec::new();
            if let Err(e) = raw.read_to_end(&mut rest) {
                return fail(e);
            }
            return Ok(Some(InputDigest { size: raw.size, blake3: raw.hasher.finalize().to_hex().to_string() }));
        }
    }
}

/// Lets the decompressor read through the hashing reader while the caller keeps a handle to it.
struct SharedReader<R>(std::rc::Rc<std::cell::RefCell<R>>);

impl<R: Read> Read for SharedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_shrank_since_it_was_measured_is_an_error_not_a_short_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, b"line one\nline two\n").unwrap();
        let mut buf = Vec::new();
        read_range(&path, 0..18, &mut buf).unwrap();
        std::fs::write(&path, b"").unwrap(); // copytruncate
        let err = read_range(&path, 0..18, &mut buf).unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
