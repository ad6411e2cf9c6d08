//! The `map` stage: record batches in, keyed partial aggregates out.
//!
//! A job implements [`MapReduce`]: `map` folds one batch into the task's
//! [`Combiner`] (map and combine in one pass, so each rayon task pre-aggregates its
//! chunk), and `merge` adds two partial aggregates of one key. Partial aggregates must
//! be mergeable in any order and grouping (sums, counts): that is what makes one
//! partition and N partitions, one thread and N threads, give the same result.

use std::borrow::Borrow;
use std::hash::Hash;

use arrow::array::RecordBatch;
use hashbrown::HashTable;

use crate::error::Result;

/// A map/reduce step: how batches become keyed partial aggregates, and how two
/// partial aggregates of one key merge.
pub trait MapReduce: Sync {
    /// The group key (e.g. `(category_id, product_id)` joined into one string).
    type Key: Hash + Eq + Send;
    /// The partial aggregate of a key (e.g. a sum).
    type Acc: Default + Send;

    /// Folds one batch into the task's combiner.
    fn map(&self, batch: &RecordBatch, combiner: &mut Combiner<Self::Key, Self::Acc>) -> Result<()>;

    /// Adds `other` into `into`; both are partial aggregates of the same key.
    fn merge(&self, into: &mut Self::Acc, other: Self::Acc);
}

/// One entry per key of a step: what reduce produces and a job's final step consumes.
pub type Entries<J> = Vec<(<J as MapReduce>::Key, <J as MapReduce>::Acc)>;

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
}

impl<K, A> Default for Combiner<K, A> {
    fn default() -> Self {
        Combiner { table: HashTable::new() }
    }
}

impl<K: Hash + Eq, A: Default> Combiner<K, A> {
    /// An empty combiner with room for `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        Combiner { table: HashTable::with_capacity(capacity) }
    }

    /// The partial aggregate of `key`, created empty if absent. Looks up by a borrowed
    /// form (`&str` for a `String` key), so the key is allocated once per group, not per row.
    pub fn entry<Q>(&mut self, key: &Q) -> &mut A
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = fixed_hash(key);
        let entry = self.table.entry(hash, |e| e.key.borrow() == key, |e| e.hash);
        &mut entry.or_insert_with(|| Entry { hash, key: key.to_owned(), acc: A::default() }).into_mut().acc
    }

    /// The partial aggregate of an owned key, created empty if absent.
    pub fn entry_owned(&mut self, key: K) -> &mut A {
        let hash = fixed_hash(&key);
        match self.table.entry(hash, |e| e.key == key, |e| e.hash) {
            hashbrown::hash_table::Entry::Occupied(e) => &mut e.into_mut().acc,
            hashbrown::hash_table::Entry::Vacant(e) => {
                &mut e.insert(Entry { hash, key, acc: A::default() }).into_mut().acc
            }
        }
    }

    /// Adds a whole entry (from another task) with `merge` if its key is present.
    pub fn merge_entry(&mut self, other: Entry<K, A>, merge: impl FnOnce(&mut A, A)) {
        match self.table.entry(other.hash, |e| e.key == other.key, |e| e.hash) {
            hashbrown::hash_table::Entry::Occupied(mut e) => merge(&mut e.get_mut().acc, other.acc),
            hashbrown::hash_table::Entry::Vacant(e) => {
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
    pub fn drain(&mut self) -> impl Iterator<Item = Entry<K, A>> + '_ {
        self.table.drain()
    }

    /// Consumes the combiner into its entries.
    pub fn into_entries(self) -> impl Iterator<Item = Entry<K, A>> {
        self.table.into_iter()
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
