//! Content hashes of inputs, computed while reading, not in a second pass: BLAKE3,
//! the value `b3sum` prints. Plain files are read by parallel tasks in blocks whose
//! size is a power of two and whose offsets are multiples of it; each task turns its
//! block into a BLAKE3 chaining value ([`block_piece`]), and [`root_hash`] merges the
//! pieces along BLAKE3's canonical tree. Streams are hashed as their bytes are read.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

/// The hash piece of the block at `offset` (a multiple of `block.len()`'s power-of-two
/// block size): a chaining value, or the final hash when the block is the whole file.
pub fn block_piece(block: &[u8], offset: u64, file_len: u64) -> [u8; 32] {
    if offset == 0 && block.len() as u64 == file_len {
        return *blake3::hash(block).as_bytes();
    }
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    hasher.update(block);
    hasher.finalize_non_root()
}

/// The BLAKE3 hash of a file of `file_len` bytes from its blocks' pieces, in order.
pub fn root_hash(pieces: &[[u8; 32]], block_len: u64, file_len: u64) -> blake3::Hash {
    match pieces {
        [] => blake3::hash(b""),
        [whole] if file_len <= block_len => blake3::Hash::from_bytes(*whole),
        _ => {
            let left = left_subtree_len(file_len);
            let split = (left / block_len) as usize;
            let l = subtree(&pieces[..split], left, block_len);
            let r = subtree(&pieces[split..], file_len - left, block_len);
            merge_subtrees_root(&l, &r, Mode::Hash)
        }
    }
}

/// The chaining value of a subtree of `len` bytes made of whole blocks (the last may be short).
fn subtree(pieces: &[[u8; 32]], len: u64, block_len: u64) -> ChainingValue {
    if len <= block_len {
        return pieces[0];
    }
    // BLAKE3's left subtree is the largest power-of-two number of chunks below `len`,
    // so with power-of-two blocks it always ends on a block boundary.
    let left = left_subtree_len(len);
    let split = (left / block_len) as usize;
    let l = subtree(&pieces[..split], left, block_len);
    let r = subtree(&pieces[split..], len - left, block_len);
    merge_subtrees_non_root(&l, &r, Mode::Hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_pieces_merge_to_the_plain_blake3_hash() {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 1023, 1024, 1025, 2048, 4097, 10_000, 32_768, 40_000] {
            let file = &data[..len];
            for block in [1024u64, 2048, 4096, 16_384] {
                let pieces: Vec<[u8; 32]> = file
                    .chunks(block as usize)
                    .enumerate()
                    .map(|(k, b)| block_piece(b, k as u64 * block, len as u64))
                    .collect();
                assert_eq!(root_hash(&pieces, block, len as u64), blake3::hash(file), "len {len}, block {block}");
            }
        }
    }
}
