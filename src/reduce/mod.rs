//! The `reduce` stage: one hash partition's partial aggregates (from every map task)
//! in, one final aggregate per key out. Partitions are reduced in parallel; since no
//! key spans two partitions, each reduce task may assume it sees all of a key's rows.

use rayon::prelude::*;

use crate::map::{Combiner, Entries, MapReduce};

/// Merges each partition's partials into one entry per key, in parallel.
/// `partitions[p]` holds every map task's entries of partition `p`.
pub fn reduce_partitions<J: MapReduce>(job: &J, partitions: Vec<Vec<Entries<J>>>) -> Entries<J> {
    let reduced: Vec<Entries<J>> = partitions
        .into_par_iter()
        .map(|tasks| {
            let mut merged: Combiner<J::Key, J::Acc> = Combiner::default();
            for (key, acc) in tasks.into_iter().flatten() {
                job.merge(merged.entry_owned(key), acc);
            }
            merged.into_entries().collect()
        })
        .collect();
    reduced.into_iter().flatten().collect()
}
