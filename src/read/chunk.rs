//! Line-aligned chunking in the `read` stage: an input's length in, byte ranges
//! out, each starting at a line start, so each can be decoded on its own rayon task.
//!
//! The cut finder is given a probe that returns the first line start at or after an
//! offset, so the same logic serves in-memory slices and files read with `pread`.

use std::ops::Range;

/// Cuts `0..len` into about `n` ranges of equal size, each cut moved forward to the
/// next line start (found by `next_line_start(offset)`, `None` past the last line).
/// The ranges cover `0..len` exactly, in order, none empty.
pub fn line_aligned_ranges<E>(
    len: usize,
    n: usize,
    mut next_line_start: impl FnMut(usize) -> Result<Option<usize>, E>,
) -> Result<Vec<Range<usize>>, E> {
    let n = n.max(1);
    let mut ranges = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..n {
        let target = (len as u128 * i as u128 / n as u128) as usize;
        if target <= start {
            continue;
        }
        let Some(end) = next_line_start(target)? else {
            break;
        };
        if end >= len {
            break;
        }
        ranges.push(start..end);
        start = end;
    }
    if start < len {
        ranges.push(start..len);
    }
    Ok(ranges)
}

/// [`line_aligned_ranges`] over a slice held in memory.
pub fn slice_ranges(data: &[u8], n: usize) -> Vec<Range<usize>> {
    let probe = |target: usize| -> Result<Option<usize>, std::convert::Infallible> {
        Ok(memchr::memchr(b'\n', &data[target - 1..]).map(|j| target + j))
    };
    match line_aligned_ranges(data.len(), n, probe) {
        Ok(ranges) => ranges,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_chunk_count_gives_the_same_lines() {
        let data = b"a\nbb\n\nccc\r\ndddd\ne";
        let whole: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        for n in 1..=20 {
            let ranges = slice_ranges(data, n);
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(data.len()));
            let mut lines = Vec::new();
            for (k, r) in ranges.iter().enumerate() {
                assert!(
                    r.start == 0 || data[r.start - 1] == b'\n',
                    "n={n}: range {k} starts mid-line"
                );
                if k > 0 {
                    assert_eq!(ranges[k - 1].end, r.start);
                }
                let chunk = &data[r.clone()];
                let chunk = chunk.strip_suffix(b"\n").unwrap_or(chunk);
                lines.extend(chunk.split(|&b| b == b'\n'));
            }
            assert_eq!(lines, whole, "n={n}");
        }
    }

    #[test]
    fn empty_and_single_line() {
        assert!(slice_ranges(b"", 4).is_empty());
        assert_eq!(slice_ranges(b"abc", 4), vec![0..3]);
        assert_eq!(slice_ranges(b"abc\n", 4), vec![0..4]);
    }
}
