//! The `read` stage: input files in, Arrow record batches out, decoded in parallel.
//!
//! A plain file is cut into aligned blocks extended to line ends ([`chunk`]) that
//! rayon tasks read with `pread`, hash ([`hash`]) and decode ([`decode`]) on their
//! own; gzip, zstd and stdin are read (and hashed) as one stream of line-aligned
//! blocks that rayon tasks decode as they come. Each task folds its batches into a
//! caller-given state (the map stage's combiner) and its [`ChunkReport`]; when all
//! are done, chunk-relative line numbers of bad lines become file line numbers and
//! block hashes become each input's BLAKE3 hash.

pub mod chunk;
pub mod clf;
pub mod decode;
pub mod fields;
pub mod format;
pub mod hash;
pub mod input;
pub mod side;

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::sync_channel;

use arrow::array::RecordBatch;
use rayon::prelude::*;

pub use decode::{BadLine, ChunkId, ChunkReport, ReadStats};
use format::Format;
use input::{Encoding, InputFile};

use crate::error::{Error, Result};
use crate::progress::Progress;

/// Smallest and largest byte range one task decodes at a time.
const MIN_CHUNK: u64 = 1 << 20;
const MAX_CHUNK: u64 = 32 << 20;
/// Block size of streamed (compressed or stdin) input.
const STREAM_BLOCK: usize = 8 << 20;

/// What a read produced besides the folded states.
#[derive(Debug, Default)]
pub struct ReadOutcome<S> {
    /// One state per rayon fold (how many depends on scheduling; merge them).
    pub states: Vec<S>,
    /// Line counts over all inputs.
    pub stats: ReadStats,
    /// Bad lines with file line numbers, in (file, line) order.
    pub bad_lines: Vec<BadLine>,
    /// Size and content hash of each input, in input order.
    pub digests: Vec<InputDigest>,
}

/// What reading the inputs found, besides rows.
#[derive(Debug, Default)]
pub struct ReadSummary {
    /// Line counts.
    pub stats: ReadStats,
    /// Quarantined lines, in (file, line) order.
    pub bad_lines: Vec<BadLine>,
    /// Size and BLAKE3 of each input, in input order.
    pub digests: Vec<InputDigest>,
}

impl<S> ReadOutcome<S> {
    /// Splits the outcome into the per-task states and the summary.
    pub fn split(self) -> (Vec<S>, ReadSummary) {
        let ReadOutcome { states, stats, bad_lines, digests } = self;
        (states, ReadSummary { stats, bad_lines, digests })
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

/// Reads every input, folding each decoded batch into a per-task state made by `init`.
///
/// Must run inside the rayon pool that sets the thread count.
pub fn read_fold<S, I, F>(
    inputs: &[InputFile],
    format: &Format,
    progress: &Progress,
    init: I,
    fold: F,
) -> Result<ReadOutcome<S>>
where
    S: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, RecordBatch) -> Result<()> + Sync + Send,
{
    let mut outcome =
        ReadOutcome { states: Vec::new(), stats: ReadStats::default(), bad_lines: Vec::new(), digests: Vec::new() };
    let mut chunk_lines = Vec::new();
    let mut pieces: Vec<(ChunkId, [u8; 32])> = Vec::new();
    let mut stream_digests: HashMap<usize, InputDigest> = HashMap::new();
    let mut absorb = |results: Vec<Result<(S, ChunkReport)>>| -> Result<()> {
        for result in results {
            let (state, report) = result?;
            outcome.states.push(state);
            outcome.stats.add(&report.stats);
            outcome.bad_lines.extend(report.bad_lines);
            chunk_lines.extend(report.chunk_lines);
            pieces.extend(report.hash_pieces);
        }
        Ok(())
    };
    let fold_chunk = |acc: Result<(S, ChunkReport)>, id: ChunkId, data: &[u8]| -> Result<(S, ChunkReport)> {
        let (mut state, mut report) = acc?;
        decode::decode_chunk(data, id, format, &mut report, &mut |batch| fold(&mut state, batch))?;
        progress.add(data.len() as u64);
        Ok((state, report))
    };
    let start = || Ok((init(), ChunkReport::default()));

    let plan = plan_plain_chunks(inputs)?;
    let results: Vec<Result<(S, ChunkReport)>> = plan
        .chunks
        .into_par_iter()
        .fold(start, |acc, chunk| {
            let (state, mut report) = acc?;
            let path = &inputs[chunk.id.file as usize].path;
            let planned = &chunk.planned;
            let mut data = Vec::new();
            read_range(path, planned.read.clone(), &mut data).map_err(|e| Error::io(path, e))?;
            let block = &data[..data.len().min((planned.block_end - planned.read.start) as usize)];
            report.hash_pieces.push((chunk.id, hash::block_piece(block, planned.read.start, chunk.file_len)));
            let lines = &data[((planned.decode_from - planned.read.start) as usize).min(data.len())..];
            fold_chunk(Ok((state, report)), chunk.id, lines)
        })
        .collect();
    absorb(results)?;

    for (file_index, input) in inputs.iter().enumerate() {
        if input.encoding == Encoding::Plain {
            continue;
        }
        let (results, digest) = std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<Result<(ChunkId, Vec<u8>)>>(rayon::current_num_threads() * 2);
            let producer = scope.spawn(move || stream_blocks(input, file_index as u32, &tx));
            let results = rx
                .into_iter()
                .par_bridge()
                .fold(start, |acc, block| {
                    let (id, data) = block?;
                    fold_chunk(acc, id, &data)
                })
                .collect::<Vec<_>>();
            (results, producer.join().ok().flatten())
        });
        absorb(results)?;
        if let Some(digest) = digest {
            stream_digests.insert(file_index, digest);
        }
    }

    pieces.sort_unstable_by_key(|(id, _)| *id);
    for (file_index, input) in inputs.iter().enumerate() {
        let digest = match input.encoding {
            Encoding::Plain => {
                let len = plan.sizes[file_index];
                let file_pieces: Vec<[u8; 32]> =
                    pieces.iter().filter(|(id, _)| id.file as usize == file_index).map(|(_, p)| *p).collect();
                InputDigest { size: len, blake3: hash::root_hash(&file_pieces, plan.block, len).to_hex().to_string() }
            }
            _ => stream_digests.remove(&file_index).unwrap_or(InputDigest { size: 0, blake3: String::new() }),
        };
        outcome.digests.push(digest);
    }
    number_bad_lines(&mut outcome.bad_lines, &mut chunk_lines);
    Ok(outcome)
}

/// Total bytes of the plain inputs, for progress; `None` when a stream is among them.
pub fn plain_size(inputs: &[InputFile]) -> Option<u64> {
    inputs
        .iter()
        .map(|f| match f.encoding {
            Encoding::Plain => std::fs::metadata(&f.path).ok().map(|m| m.len()),
            _ => None,
        })
        .sum()
}

/// One planned chunk of a plain input.
struct PlainChunk {
    id: ChunkId,
    planned: chunk::PlannedChunk,
    file_len: u64,
}

/// The chunks of every plain input, with the block size and each input's size.
struct PlainPlan {
    chunks: Vec<PlainChunk>,
    /// Size of each input (0 for streams), by input index.
    sizes: Vec<u64>,
    block: u64,
}

/// Cuts every plain input into aligned blocks sized for the pool (a power of two, so
/// each block can be hashed on its own) and extends each block to its last line end.
fn plan_plain_chunks(inputs: &[InputFile]) -> Result<PlainPlan> {
    let mut sizes = vec![0u64; inputs.len()];
    for (i, f) in inputs.iter().enumerate().filter(|(_, f)| f.encoding == Encoding::Plain) {
        sizes[i] = std::fs::metadata(&f.path).map_err(|e| Error::io(&f.path, e))?.len();
    }
    let total: u64 = sizes.iter().sum();
    let block = (total / (rayon::current_num_threads() as u64 * 8)).clamp(MIN_CHUNK, MAX_CHUNK).next_power_of_two();
    let mut chunks = Vec::new();
    for (i, f) in inputs.iter().enumerate().filter(|(_, f)| f.encoding == Encoding::Plain) {
        let file = File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
        let planned =
            chunk::plan_chunks(sizes[i], block, |at| next_line_start(&file, at)).map_err(|e| Error::io(&f.path, e))?;
        for (k, planned) in planned.into_iter().enumerate() {
            chunks.push(PlainChunk { id: ChunkId { file: i as u32, index: k as u32 }, planned, file_len: sizes[i] });
        }
    }
    Ok(PlainPlan { chunks, sizes, block })
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

/// Reads `range` of the file at `path` into `buf` (replacing its contents).
fn read_range(path: &std::path::Path, range: Range<u64>, buf: &mut Vec<u8>) -> std::io::Result<()> {
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

/// Reads a compressed file or stdin as line-aligned blocks and sends them in order;
/// returns the stored bytes' size and hash when the input was read to its end.
fn stream_blocks(
    input: &InputFile,
    file: u32,
    tx: &std::sync::mpsc::SyncSender<Result<(ChunkId, Vec<u8>)>>,
) -> Option<InputDigest> {
    let fail = |e: std::io::Error| {
        let _ = tx.send(Err(Error::io(&input.path, e)));
        None
    };
    let raw: Box<dyn Read> = match input.encoding {
        Encoding::Stdin => Box::new(std::io::stdin().lock()),
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
    let mut index = 0u32;
    loop {
        let mut block = std::mem::take(&mut carry);
        block.reserve(STREAM_BLOCK);
        let mut eof = false;
        // Read until the block is big enough and holds a line end (a line may be longer than a block).
        while block.len() < STREAM_BLOCK || memchr::memrchr(b'\n', &block).is_none() {
            match (&mut reader).take(STREAM_BLOCK as u64).read_to_end(&mut block) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => return fail(e),
            }
        }
        if !eof {
            // Keep the partial last line for the next block; the loop above ensured a line end.
            if let Some(last_nl) = memchr::memrchr(b'\n', &block) {
                carry = block.split_off(last_nl + 1);
            }
        }
        if !block.is_empty() {
            let id = ChunkId { file, index };
            index += 1;
            if tx.send(Ok((id, block))).is_err() {
                return None; // the consumer stopped on an error
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
            return Some(InputDigest { size: raw.size, blake3: raw.hasher.finalize().to_hex().to_string() });
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

/// Turns chunk-relative line numbers into file line numbers and sorts the bad lines.
fn number_bad_lines(bad_lines: &mut [BadLine], chunk_lines: &mut [(ChunkId, u64)]) {
    chunk_lines.sort_unstable();
    let mut offsets = HashMap::with_capacity(chunk_lines.len());
    let mut running: Option<(u32, u64)> = None;
    for &(id, lines) in chunk_lines.iter() {
        let before = match running {
            Some((file, sum)) if file == id.file => sum,
            _ => 0,
        };
        offsets.insert(id, before);
        running = Some((id.file, before + lines));
    }
    for bad in bad_lines.iter_mut() {
        bad.line += offsets.get(&bad.chunk).copied().unwrap_or(0);
    }
    bad_lines.sort_unstable_by_key(|b| (b.chunk.file, b.line));
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
