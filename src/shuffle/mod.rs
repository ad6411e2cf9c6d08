//! The `shuffle` stage: each map task's partial aggregates in, P hash partitions out,
//! so that every key's partials land in one partition and reduce tasks never share a key.
//!
//! [`spill`] does the same through temporary files when the data exceeds memory.

pub mod spill;

use std::hash::Hash;

use crate::map::{Combiner, Entry, State, fixed_hash};

/// One map task's entries of one partition.
pub type Shard<K, A> = Vec<Entry<K, A>>;

/// The partition (0..partitions) that `key` belongs to.
pub fn partition_of<Q: Hash + ?Sized>(key: &Q, partitions: usize) -> usize {
    partition_of_hash(fixed_hash(key), partitions)
}

/// The partition of a key with hash `hash`.
pub fn partition_of_hash(hash: u64, partitions: usize) -> usize {
    // Remix first: hash tables use the hash's top and bottom bits, and the entries of
    // one partition must not share them. Then multiply-shift onto 0..partitions.
    let mixed = (hash ^ (hash >> 31)).wrapping_mul(0x7fb5_d329_728e_a185);
    ((u128::from(mixed) * partitions as u128) >> 64) as usize
}

/// Splits one task's combiner into `partitions` vectors by key hash.
pub fn partition<K: Hash + Eq + State, A: Default + State>(
    combiner: Combiner<K, A>,
    partitions: usize,
) -> Vec<Shard<K, A>> {
    // The mean plus 4 standard deviations of a uniform hash's share: about half the
    // partitions get more than the mean, and a vector one entry past its capacity
    // doubles it.
    let mean = combiner.len() / partitions.max(1);
    let room = mean + 4 * mean.isqrt() + 16;
    let mut out: Vec<Shard<K, A>> = (0..partitions).map(|_| Vec::with_capacity(room)).collect();
    for entry in combiner.into_entries() {
        out[partition_of_hash(entry.hash, partitions)].push(entry);
    }
    out
}

/// Regroups per-task partitions into per-partition lists of task outputs.
pub fn transpose<T>(tasks: Vec<Vec<Vec<T>>>, partitions: usize) -> Vec<Vec<Vec<T>>> {
    let mut out: Vec<Vec<Vec<T>>> = (0..partitions).map(|_| Vec::with_capacity(tasks.len())).collect();
    for task in tasks {
        for (p, part) in task.into_iter().enumerate() {
            out[p].push(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_lands_in_one_partition() {
        for partitions in [1, 2, 7, 64] {
            let mut a: Combiner<String, u64> = Combiner::default();
            let mut b: Combiner<String, u64> = Combiner::default();
            for i in 0..1000 {
                *a.entry(format!("k{i}").as_str()) += 1;
                *b.entry(format!("k{}", i / 2).as_str()) += 1;
            }
            let parts = transpose(vec![partition(a, partitions), partition(b, partitions)], partitions);
            let mut owner = std::collections::HashMap::new();
            for (p, tasks) in parts.iter().enumerate() {
                for e in tasks.iter().flatten() {
                    assert_eq!(*owner.entry(e.key.clone()).or_insert(p), p, "key {} in two partitions", e.key);
                }
            }
            assert_eq!(owner.len(), 1000);
        }
    }
}
