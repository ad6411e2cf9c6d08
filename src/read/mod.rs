//! The `read` stage: input files in, Arrow record batches out, decoded in parallel.
//!
//! A plain file is cut into line-aligned byte ranges ([`chunk`]) that rayon tasks
//! read with `pread` and decode ([`decode`]) on their own; gzip, zstd and stdin are
//! read as one stream of line-aligned blocks that rayon tasks decode as they come.
//! Each task folds its batches into a caller-given state (the map stage's combiner)
//! and its [`ChunkReport`]; when all are done, chunk-relative line numbers of bad
//! lines become file line numbers.

pub mod chunk;
pub mod clf;
pub mod decode;
pub mod fields;
pub mod format;
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
    let mut outcome = ReadOutcome {
        states: Vec::new(),
        stats: ReadStats::default(),
        bad_lines: Vec::new(),
    };
    let mut chunk_lines = Vec::new();
    let mut absorb = |results: Vec<Result<(S, ChunkReport)>>| -> Result<()> {
        for result in results {
            let (state, report) = result?;
            outcome.states.push(state);
            outcome.stats.add(&report.stats);
            outcome.bad_lines.extend(report.bad_lines);
            chunk_lines.extend(report.chunk_lines);
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

    let plain = plan_plain_chunks(inputs)?;
    let results: Vec<Result<(S, ChunkReport)>> = plain
        .into_par_iter()
        .fold(start, |acc, (id, path, range)| {
            let mut data = Vec::new();
            read_range(&path, range, &mut data).map_err(|e| Error::io(&path, e))?;
            fold_chunk(acc, id, &data)
        })
        .collect();
    absorb(results)?;

    for (file_index, input) in inputs.iter().enumerate() {
        if input.encoding == Encoding::Plain {
            continue;
        }
        let results = std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<Result<(ChunkId, Vec<u8>)>>(rayon::current_num_threads() * 2);
            scope.spawn(move || stream_blocks(input, file_index as u32, &tx));
            rx.into_iter()
                .par_bridge()
                .fold(start, |acc, block| {
                    let (id, data) = block?;
                    fold_chunk(acc, id, &data)
                })
                .collect::<Vec<_>>()
        });
        absorb(results)?;
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

/// Cuts every plain input into line-aligned ranges sized for the pool.
fn plan_plain_chunks(inputs: &[InputFile]) -> Result<Vec<(ChunkId, std::path::PathBuf, Range<u64>)>> {
    let sizes: Vec<(usize, u64)> = inputs
        .iter()
        .enumerate()
        .filter(|(_, f)| f.encoding == Encoding::Plain)
        .map(|(i, f)| {
            std::fs::metadata(&f.path)
                .map(|m| (i, m.len()))
                .map_err(|e| Error::io(&f.path, e))
        })
        .collect::<Result<_>>()?;
    let total: u64 = sizes.iter().map(|(_, len)| len).sum();
    let target = (total / (rayon::current_num_threads() as u64 * 8)).clamp(MIN_CHUNK, MAX_CHUNK);
    let mut chunks = Vec::new();
    for (i, len) in sizes {
        let path = &inputs[i].path;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let n = len.div_ceil(target).max(1) as usize;
        let ranges = chunk::line_aligned_ranges(len as usize, n, |at| next_line_start(&file, at as u64))
            .map_err(|e| Error::io(path, e))?;
        for (k, r) in ranges.into_iter().enumerate() {
            let id = ChunkId {
                file: i as u32,
                index: k as u32,
            };
            chunks.push((id, path.clone(), r.start as u64..r.end as u64));
        }
    }
    Ok(chunks)
}

/// The first line start at or after `at` (> 0) in `file`, by reading forward from `at - 1`.
fn next_line_start(file: &File, at: u64) -> std::io::Result<Option<usize>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = at - 1;
    loop {
        let n = file.read_at(&mut buf, pos)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(j) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(Some((pos + j as u64 + 1) as usize));
        }
        pos += n as u64;
    }
}

/// Reads `range` of the file at `path` into `buf` (replacing its contents).
fn read_range(path: &std::path::Path, range: Range<u64>, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let file = File::open(path)?;
    buf.resize((range.end - range.start) as usize, 0);
    // A file shrunk during the run (copytruncate) reads short: decode what is there.
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read_at(&mut buf[filled..], range.start + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(())
}

/// Reads a compressed file or stdin as line-aligned blocks and sends them in order.
fn stream_blocks(input: &InputFile, file: u32, tx: &std::sync::mpsc::SyncSender<Result<(ChunkId, Vec<u8>)>>) {
    let opened: std::io::Result<Box<dyn Read>> = (|| {
        Ok(match input.encoding {
            Encoding::Stdin => Box::new(std::io::stdin().lock()) as Box<dyn Read>,
            Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(File::open(
                &input.path,
            )?))),
            Encoding::Zstd => Box::new(zstd::stream::read::Decoder::new(File::open(&input.path)?)?),
            Encoding::Plain => Box::new(File::open(&input.path)?),
        })
    })();
    let mut reader = match opened {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Err(Error::io(&input.path, e)));
            return;
        }
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
                Err(e) => {
                    let _ = tx.send(Err(Error::io(&input.path, e)));
                    return;
                }
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
                return; // the consumer stopped on an error
            }
        }
        if eof {
            return;
        }
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
