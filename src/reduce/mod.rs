//! The `reduce` stage: one hash partition's partial aggregates (from every map task)
//! in, one final aggregate per key out. Partitions are reduced in parallel; since no
//! key spans two partitions, each reduce task may assume it sees all of a key's rows.

use rayon::prelude::*;

use crate::map::{Combiner, Entries, MapReduce};
use crate::shuffle::Shard;

/// Merges each partition's partials into one entry per key, in parallel.
/// `partitions[p]` holds every map task's entries of partition `p`.
pub fn reduce_partitions<J: MapReduce>(job: &J, partitions: Vec<Vec<Shard<J::Key, J::Acc>>>) -> Entries<J> {
    let reduced: Vec<Entries<J>> = partitions
        .into_par_iter()
        .map(|mut tasks| {
            tasks.retain(|t| !t.is_empty());
            // Keys are unique within one task's output: a lone task needs no merge.
            if tasks.len() == 1 {
                return tasks.pop().into_iter().flatten().map(|e| (e.key, e.acc)).collect();
            }
            let mut merged: Combiner<J::Key, J::Acc> =
                Combiner::with_capacity(tasks.iter().map(Vec::len).max().unwrap_or(0));
            for entry in tasks.into_iter().flatten() {
                merged.merge_entry(entry, |into, acc| job.merge(into, acc));
            }
            merged.into_entries().map(|e| (e.key, e.acc)).collect()
        })
        .collect();
    reduced.into_iter().flatten().collect()
}
