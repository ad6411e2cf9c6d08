//! The `map` stage and the contract of a native job: record batches in, keyed
//! partial aggregates out, and at the end of the run the final aggregates in, output
//! rows out.
//!
//! A job implements [`MapReduce`], whose verbs are those of DataFusion's accumulators:
//! `update` folds one batch into the task's [`Combiner`] (map and combine in one pass,
//! so each rayon task pre-aggregates its chunk), `merge` adds two partial aggregates of
//! one key, and `finish` turns every key's final aggregate into output rows. Partial
//! aggregates must be mergeable in any order and grouping (sums, counts): that is what
//! makes one partition and N partitions, one thread and N threads, give the same
//! result. Keys and aggregates are [`State`]: sized and encodable, so the engine can
//! spill them under `--memory-limit` whatever the job.

pub mod state;

use std::borrow::Borrow;
use std::hash::Hash;

use arrow::array::RecordBatch;
use hashbrown::HashTable;

use arrow::array::ArrayRef;

use crate::error::Result;
use crate::table::{OUTPUT_BATCH_ROWS, Rows, TableSpec};
pub use state::State;

/// A native job's computation: how batches become keyed partial aggregates, how two
/// partial aggregates of one key merge, and how the final aggregates become rows.
pub trait MapReduce: Sync + Sized {
    /// The group key (e.g. `(category_id, product_id)` joined into one string).
    type Key: Hash + Eq + Send + State;
    /// The partial aggregate of a key (e.g. a sum).
    type Acc: Default + Send + State;

    /// The input columns `update` reads, by name, or `None` for all of them. The reader
    /// builds Arrow arrays of these only; it still parses and checks every column of
    /// every line, so which lines are bad does not depend on it.
    fn input_columns(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Folds one batch (of [`MapReduce::input_columns`]) into the task's groups.
    fn update(&self, batch: &RecordBatch, groups: &mut Combiner<Self::Key, Self::Acc>) -> Result<()>;

    /// Adds `other` into `into`; both are partial aggregates of the same key.
    fn merge(&self, into: &mut Self::Acc, other: Self::Acc);

    /// Turns the run's groups (one final aggregate per key, in no particular order)
    /// into the rows of each output table, in any order: the engine sorts each table
    /// by its declared order. Groups may stream from disk (under `--memory-limit`), so
    /// a job that can map them one at a time should not collect them.
    fn finish<'a>(&'a self, groups: Groups<'a, Self::Key, Self::Acc>) -> Result<Vec<Rows<'a>>>;
}

/// Every key of a run with its final aggregate, each key once, in no particular order.
pub type Groups<'a, K, A> = Box<dyn Iterator<Item = Result<(K, A)>> + Send + 'a>;

/// Most bytes of keys and partials behind one batch of [`rows_from_groups`]: wide rows
/// (2 KB URLs) make smaller batches, so memory stays bounded by bytes, not rows.
pub const GROUP_BATCH_BYTES: usize = 4 << 20;

/// A table's rows made from the groups as they stream in, without collecting them:
/// `columns` builds one batch's columns from up to [`OUTPUT_BATCH_ROWS`] groups or
/// about [`GROUP_BATCH_BYTES`] of them, whichever comes first.
pub fn rows_from_groups<'a, K, A>(
    spec: &'static TableSpec,
    groups: impl Iterator<Item = Result<(K, A)>> + Send + 'a,
    columns: impl Fn(&[(K, A)]) -> Result<Vec<ArrayRef>> + Send + 'a,
) -> Rows<'a>
where
    K: State + Send + 'a,
    A: State + Send + 'a,
{
    let mut groups = groups.fuse();
    let mut chunk = Vec::new();
    let batches = std::iter::from_fn(move || {
        chunk.clear();
        let mut bytes = 0;
        for group in groups.by_ref() {
            match group {
                Ok(group) => {
                    bytes += size_of::<(K, A)>() + group.0.heap_bytes() + group.1.heap_bytes();
                    chunk.push(group);
                }
                Err(e) => return Some(Err(e)),
            }
            if chunk.len() == OUTPUT_BATCH_ROWS || bytes >= GROUP_BATCH_BYTES {
                break;
            }
        }
        (!chunk.is_empty()).then(|| columns(&chunk).and_then(|c| spec.batch(c)))
    });
    Rows { spec, batches: Box::new(batches) }
}

/// A key, its partial aggregate, and the key's hash, computed once when the key is
/// first seen and reused by every later stage (table growth, shuffle, reduce).
pub struct Entry<K, A> {
    /// [`fixed_hash`] of the key.
    pub hash: u64,
    /// The group key.
    pub key: K,
    /// Its partial aggregate.
    pub acc: A,
}

/// A task-local map from key to partial aggregate.
///
/// Uses a fixed-seed hash so that partition assignment, and so every intermediate
/// file, is the same from run to run.
pub struct Combiner<K, A> {
    table: HashTable<Entry<K, A>>,
    /// Heap bytes owned by the keys and aggregates in the table.
    heap_bytes: usize,
}

impl<K, A> Default for Combiner<K, A> {
    fn default() -> Self {
        Combiner { table: HashTable::new(), heap_bytes: 0 }
    }
}

impl<K: Hash + Eq + State, A: Default + State> Combiner<K, A> {
    /// An empty combiner with room for `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        Combiner { table: HashTable::with_capacity(capacity), heap_bytes: 0 }
    }

    /// Bytes the combiner holds: its table's slots (allocated, used or not, plus one
    /// control byte each) and what keys and aggregates owned on the heap when inserted.
    /// An aggregate whose heap grows after insertion is counted at its first size.
    pub fn bytes(&self) -> usize {
        self.table.capacity() * (size_of::<Entry<K, A>>() + 1) + self.heap_bytes
    }

    /// The partial aggregate of `key`, created empty if absent. Looks up by a borrowed
    /// form (`&str` for a `String` key), so the key is allocated once per group, not per row.
    pub fn entry<Q>(&mut self, key: &Q) -> &mut A
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = fixed_hash(key);
        let heap_bytes = &mut self.heap_bytes;
        let entry = self.table.entry(hash, |e| e.key.borrow() == key, |e| e.hash);
        let inserted = entry.or_insert_with(|| {
            let (key, acc) = (key.to_owned(), A::default());
            *heap_bytes += key.heap_bytes() + acc.heap_bytes();
            Entry { hash, key, acc }
        });
        &mut inserted.into_mut().acc
    }

    /// The partial aggregate of an owned key, created empty if absent.
    pub fn entry_owned(&mut self, key: K) -> &mut A {
        let hash = fixed_hash(&key);
        match self.table.entry(hash, |e| e.key == key, |e| e.hash) {
            hashbrown::hash_table::Entry::Occupied(e) => &mut e.into_mut().acc,
            hashbrown::hash_table::Entry::Vacant(e) => {
                let acc = A::default();
                self.heap_bytes += key.heap_bytes() + acc.heap_bytes();
                &mut e.insert(Entry { hash, key, acc }).into_mut().acc
            }
        }
    }

    /// Adds a whole entry (from another task) with `merge` if its key is present.
    pub fn merge_entry(&mut self, other: Entry<K, A>, merge: impl FnOnce(&mut A, A)) {
        match self.table.entry(other.hash, |e| e.key == other.key, |e| e.hash) {
            hashbrown::hash_table::Entry::Occupied(mut e) => merge(&mut e.get_mut().acc, other.acc),
            hashbrown::hash_table::Entry::Vacant(e) => {
                self.heap_bytes += other.key.heap_bytes() + other.acc.heap_bytes();
                e.insert(other);
            }
        }
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key was seen.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Takes all entries out, leaving the combiner empty.
    /// The table's memory is released with it, so [`Combiner::bytes`] starts again from 0.
    pub fn drain(&mut self) -> impl Iterator<Item = Entry<K, A>> + use<K, A> {
        self.heap_bytes = 0;
        std::mem::take(&mut self.table).into_iter()
    }

    /// Consumes the combiner into its entries.
    pub fn into_entries(self) -> impl Iterator<Item = Entry<K, A>> {
        self.table.into_iter()
    }
}

/// A key joined from fields with TABs (`category \t product`), split at its first TAB
/// (`memchr`: `str::split_once(char)` cost a job's finish 3% of its instructions);
/// the whole key and `""` when it has none.
pub fn split_key(key: &str) -> (&str, &str) {
    match memchr::memchr(b'\t', key.as_bytes()) {
        Some(tab) => (&key[..tab], &key[tab + 1..]),
        None => (key, ""),
    }
}

/// The hash every stage uses to place keys, fixed so placement is reproducible.
pub fn fixed_hash<Q: Hash + ?Sized>(key: &Q) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(key)
}

/// Typed access to a decoded batch's columns by name. The reader built the batch from
/// the job's own column list, so a failure here is a bug in that list, reported as such.
pub mod columns {
    use arrow::array::{Array, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};

    use crate::error::{Error, Result};

    fn get<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
        batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or_else(|| Error::Job {
            job: "map",
            message: format!("input has no column '{name}' of the expected type"),
        })
    }

    /// A text column.
    pub fn text<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
        get(batch, name)
    }

    /// An integer column.
    pub fn int64<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array> {
        get(batch, name)
    }

    /// A timestamp column (UTC microseconds).
    pub fn timestamp<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a TimestampMicrosecondArray> {
        get(batch, name)
    }

    /// A money column (cents).
    pub fn money<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Decimal128Array> {
        get(batch, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_their_first_tab_only() {
        assert_eq!(split_key("books\tp3"), ("books", "p3"));
        assert_eq!(split_key("u1\t2026-11\tfood\tx"), ("u1", "2026-11\tfood\tx"));
        assert_eq!(split_key("\t"), ("", ""));
        assert_eq!(split_key("é\tü"), ("é", "ü"));
        assert_eq!(split_key("no tab"), ("no tab", ""));
    }
}
