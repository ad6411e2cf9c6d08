//! Chunk planning in the `read` stage: a file's length in, chunks out. A chunk is
//! one aligned block of the file (a power-of-two size, so its content hash can be
//! computed on its own, see [`super::hash`]) plus the line-aligned range of lines that
//! *start* in that block, which is what its rayon task decodes.
//!
//! The planner is given a probe returning the first line start at or after an offset,
//! so the same logic serves in-memory slices (tests) and files read with `pread`.

use std::ops::Range;

/// Which chunk of which input a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct ChunkId {
    /// Index of the input file in the run's sorted input list.
    pub file: u32,
    /// Index of the chunk within its file, in file order.
    pub index: u32,
}

/// One unit of parallel reading.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedChunk {
    /// Bytes to read: the block, extended to the end of its last line.
    pub read: Range<u64>,
    /// Where the chunk's first line starts (lines starting before belong to the previous chunk).
    pub decode_from: u64,
    /// End of the block (the hashed bytes are `read.start..block_end`).
    pub block_end: u64,
}

/// Plans the chunks of a file of `len` bytes with blocks of `block` bytes.
/// `next_line_start(offset)` is the first line start at or after `offset` (> 0), `None` past the last line.
pub fn plan_chunks<E>(
    len: u64,
    block: u64,
    mut next_line_start: impl FnMut(u64) -> Result<Option<u64>, E>,
) -> Result<Vec<PlannedChunk>, E> {
    let blocks = len.div_ceil(block);
    let mut starts = Vec::with_capacity(blocks as usize + 1);
    starts.push(0);
    for k in 1..blocks {
        let previous = *starts.last().unwrap_or(&0);
        // A block inside a long line that started before it starts where that line
        // ends: found once, not probed again per block (a 1 GiB line is scanned once).
        let start = if previous >= k * block { previous } else { next_line_start(k * block)?.unwrap_or(len) };
        starts.push(start);
    }
    starts.push(len);
    Ok((0..blocks)
        .map(|k| {
            let i = k as usize;
            PlannedChunk {
                read: k * block..starts[i + 1],
                decode_from: starts[i],
                block_end: ((k + 1) * block).min(len),
            }
        })
        .collect())
}

/// [`plan_chunks`] over a slice held in memory.
pub fn plan_slice(data: &[u8], block: u64) -> Vec<PlannedChunk> {
    let probe = |at: u64| -> Result<Option<u64>, std::convert::Infallible> {
        Ok(memchr::memchr(b'\n', &data[at as usize - 1..]).map(|j| at + j as u64))
    };
    match plan_chunks(data.len() as u64, block, probe) {
        Ok(chunks) => chunks,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_block_size_gives_the_same_lines_and_covers_every_block() {
        let data = b"a\nbb\n\nccc\r\ndddddddddddd\ne\nffffffffffffffffffffffffffffffffff\ng";
        let whole: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        for block in [1u64, 2, 4, 8, 16, 64, 128] {
            let chunks = plan_slice(data, block);
            let mut lines = Vec::new();
            for (k, c) in chunks.iter().enumerate() {
                assert_eq!(c.read.start, k as u64 * block, "block {block}: chunk {k} is not aligned");
                assert!(c.block_end <= c.read.end && c.decode_from >= c.read.start, "block {block}: {c:?}");
                let d = c.decode_from as usize;
                assert!(d == 0 || data[d - 1] == b'\n', "block {block}: chunk {k} starts mid-line");
                let part = &data[d..c.read.end as usize];
                if !part.is_empty() {
                    lines.extend(part.strip_suffix(b"\n").unwrap_or(part).split(|&b| b == b'\n'));
                }
            }
            assert_eq!(lines, whole, "block {block}");
        }
    }

    #[test]
    fn empty_and_single_line() {
        assert!(plan_slice(b"", 4).is_empty());
        assert_eq!(plan_slice(b"abc", 4), vec![PlannedChunk { read: 0..3, decode_from: 0, block_end: 3 }]);
    }
}
