//! The `reduce` stage: one hash partition's partial aggregates (from every map task)
//! in, one final aggregate per key out. Partitions are reduced in parallel; since no
//! key spans two partitions, each reduce task may assume it sees all of a key's rows.

use rayon::prelude::*;

use crate::map::{Combiner, MapReduce};

/// Merges each partition's partials into one entry per key, in parallel.
pub fn reduce_partitions<J: MapReduce>(
    job: &J,
    partitions: Vec<Vec<Vec<(J::Key, J::Acc)>>>,
) -> Vec<(J::Key, J::Acc)> {
    let reduced: Vec<Vec<(J::Key, J::Acc)>> = partitions
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
