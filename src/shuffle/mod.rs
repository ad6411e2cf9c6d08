//! The `shuffle` stage: each map task's partial aggregates in, P hash partitions out,
//! so that every key's partials land in one partition and reduce tasks never share a key.
//!
//! [`spill`] does the same through temporary files when the data exceeds memory.

pub mod spill;

use std::hash::Hash;

use crate::map::{Combiner, fixed_hash};

/// The partition (0..partitions) that `key` belongs to.
pub fn partition_of<Q: Hash + ?Sized>(key: &Q, partitions: usize) -> usize {
    // Multiply-shift maps the hash onto 0..partitions without the bias of a modulo.
    ((u128::from(fixed_hash(key)) * partitions as u128) >> 64) as usize
}

/// Splits one task's combiner into `partitions` vectors by key hash.
pub fn partition<K: Hash + Eq, A: Default>(combiner: Combiner<K, A>, partitions: usize) -> Vec<Vec<(K, A)>> {
    let mut out: Vec<Vec<(K, A)>> = (0..partitions).map(|_| Vec::new()).collect();
    for (key, acc) in combiner.into_entries() {
        out[partition_of(&key, partitions)].push((key, acc));
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
                for (key, _) in tasks.iter().flatten() {
                    assert_eq!(*owner.entry(key.clone()).or_insert(p), p, "key {key} in two partitions");
                }
            }
            assert_eq!(owner.len(), 1000);
        }
    }
}
