//! The engine's last step for a native job: a table's rows, in the order `finish` made
//! them, in; the same rows in the table's declared order (a total order, text bytewise)
//! out, cut into batches of [`OUTPUT_BATCH_ROWS`].
//!
//! Rows are compared in Arrow's row format (`arrow::row`: each row's sort columns
//! encoded as bytes that compare like the declared order), sorted in parallel. Under
//! `--memory-limit`, rows are buffered up to a quarter of the limit; a fuller buffer
//! is sorted and written as a run (an Arrow IPC stream) to a hidden spill directory,
//! and the runs are merged, at most [`MAX_FAN_IN`] at a time, as the sink reads the
//! table. So neither a job's groups nor its output has to fit in memory.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::{SortOptions, interleave_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, SortField};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::scratch::{Scratch, scratch_dir};
use crate::shuffle::spill::max_open_partitions;
use crate::table::{Batches, OUTPUT_BATCH_ROWS, Rows, Sort, Table, TableSpec};

/// Most runs merged at once: each holds one batch in memory and one open file.
pub const MAX_FAN_IN: usize = 64;

/// Most rows, and about the most bytes, per batch of a run file: merging holds one
/// batch per run, so wide rows make shorter batches.
const RUN_BATCH_ROWS: usize = 4096;
const RUN_BATCH_BYTES: usize = 256 << 10;

/// Rows per run batch for batches holding `bytes` in `rows` rows.
fn run_batch_rows(bytes: usize, rows: usize) -> usize {
    let per_row = (bytes / rows.max(1)).max(1);
    (RUN_BATCH_BYTES / per_row).clamp(1, RUN_BATCH_ROWS)
}

/// Sorts `rows` by their table's declared order. With `memory_limit` (bytes), rows
/// beyond a quarter of it go to sorted runs under `temp_dir`.
/// Errors: a batch that does not fit the table's schema, or a spill file I/O error.
pub fn sort_table(rows: Rows<'_>, memory_limit: Option<u64>, temp_dir: &Path) -> Result<Table> {
    let spec = rows.spec;
    let order = Order::new(spec)?;
    let budget = memory_limit.map_or(usize::MAX, |l| usize::try_from(l / 4).unwrap_or(usize::MAX));
    let mut buffer: Vec<RecordBatch> = Vec::new();
    let mut buffered = 0usize;
    let mut runs: Vec<PathBuf> = Vec::new();
    // Rows per run batch: the fewest any run needed, so merges stay small too.
    let mut run_rows = RUN_BATCH_ROWS;
    let mut dir: Option<Arc<Scratch>> = None;
    for batch in rows.batches {
        let batch = batch?;
        if batch.schema().fields() != order.schema.fields() {
            return Err(Error::sink(spec.name, "a batch does not have the table's columns"));
        }
        if batch.num_rows() == 0 {
            continue;
        }
        buffered += batch.get_array_memory_size();
        buffer.push(batch);
        if buffered > budget {
            let dir = match &dir {
                Some(d) => d.clone(),
                None => dir.insert(Arc::new(scratch_dir(temp_dir)?)).clone(),
            };
            run_rows = run_rows.min(run_batch_rows(buffered, buffer.iter().map(RecordBatch::num_rows).sum()));
            let sorted = Sorted::new(&order, std::mem::take(&mut buffer), run_rows)?;
            runs.push(write_run(&dir, runs.len(), &order.schema, sorted)?);
            buffered = 0;
        }
    }
    let batches: Batches = match dir {
        None => Box::new(Sorted::new(&order, buffer, OUTPUT_BATCH_ROWS)?),
        Some(dir) => {
            if !buffer.is_empty() {
                run_rows = run_rows.min(run_batch_rows(buffered, buffer.iter().map(RecordBatch::num_rows).sum()));
                let sorted = Sorted::new(&order, buffer, run_rows)?;
                runs.push(write_run(&dir, runs.len(), &order.schema, sorted)?);
            }
            let fan_in = MAX_FAN_IN.min(max_open_partitions());
            let mut made = runs.len();
            // Merge passes until one merge can take every run.
            while runs.len() > fan_in {
                let mut next = Vec::with_capacity(runs.len().div_ceil(fan_in));
                for group in runs.chunks(fan_in) {
                    let merged = Merge::new(Order::new(spec)?, dir.clone(), group, run_rows)?;
                    next.push(write_run(&dir, made, &order.schema, merged)?);
                    made += 1;
                    for run in group {
                        std::fs::remove_file(run).map_err(|e| Error::io(run, e))?;
                    }
                }
                runs = next;
            }
            Box::new(Merge::new(order, dir, &runs, OUTPUT_BATCH_ROWS)?)
        }
    };
    Ok(Table { name: spec.name, schema: spec.schema(), indexes: spec.indexes, batches })
}

/// A table's declared order as Arrow sort columns.
struct Order {
    schema: SchemaRef,
    columns: Vec<usize>,
    descending: Vec<bool>,
    converter: RowConverter,
}

impl Order {
    fn new(spec: &TableSpec) -> Result<Order> {
        let schema = spec.schema();
        let mut columns = Vec::with_capacity(spec.order.len());
        let mut descending_flags = Vec::with_capacity(spec.order.len());
        let mut fields = Vec::with_capacity(spec.order.len());
        for sort in spec.order {
            let (name, descending) = match *sort {
                Sort::Asc(name) => (name, false),
                Sort::Desc(name) => (name, true),
            };
            let i = schema
                .index_of(name)
                .map_err(|_| Error::sink(spec.name, format!("the declared order names no column '{name}'")))?;
            columns.push(i);
            descending_flags.push(descending);
            let options = SortOptions { descending, nulls_first: false };
            fields.push(SortField::new_with_options(schema.field(i).data_type().clone(), options));
        }
        let converter = RowConverter::new(fields).map_err(|e| Error::sink(spec.name, e))?;
        Ok(Order { schema, columns, descending: descending_flags, converter })
    }

    fn sort_columns(&self, batch: &RecordBatch) -> Vec<ArrayRef> {
        self.columns.iter().map(|&i| batch.column(i).clone()).collect()
    }

    fn keys(&self, batch: &RecordBatch) -> Result<arrow::row::Rows> {
        self.converter.convert_columns(&self.sort_columns(batch)).map_err(|e| Error::sink("sort", e))
    }
}

/// Batches held in memory and the sorted order of their rows, emitted `chunk` rows at a time.
struct Sorted {
    batches: Vec<RecordBatch>,
    /// Global row number at which each batch starts.
    starts: Vec<usize>,
    order: Vec<u32>,
    pos: usize,
    chunk: usize,
}

impl Sorted {
    fn new(order: &Order, batches: Vec<RecordBatch>, chunk: usize) -> Result<Sorted> {
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let total32 = u32::try_from(total)
            .map_err(|_| Error::sink("sort", "more than 4 billion rows to sort in memory; set --memory-limit"))?;
        // The usual sort keys (text, integers, money, without nulls) are compared as
        // they are: no copy into row format, and short keys compare faster than their
        // row encoding (text is padded to 32-byte blocks there).
        let typed = order.columns.iter().all(|&i| {
            matches!(order.schema.field(i).data_type(), DataType::Utf8 | DataType::Int64 | DataType::Decimal128(..))
                && batches.iter().all(|b| b.column(i).null_count() == 0)
        });
        if typed
            && let Ok(one) = arrow::compute::concat_batches(&order.schema, &batches)
            && let Some(keys) = typed_keys(order, &one)
        {
            let (prefixes, packing) = prefixes(&keys, total);
            let mut sorted: Vec<(u64, u32)> = prefixes.into_iter().zip(0..total32).collect();
            match packing {
                Packing::TextCut { key, at } => sort_by_digits(&mut sorted, &keys, key, at),
                Packing::Exact => sorted.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1))),
                Packing::Partial => sorted.par_sort_unstable_by(|a, b| {
                    let rest = || compare_typed(&keys, a.1 as usize, b.1 as usize).then(a.1.cmp(&b.1));
                    a.0.cmp(&b.0).then_with(rest)
                }),
            }
            let order = sorted.into_iter().map(|(_, i)| i).collect();
            return Ok(Sorted { batches: vec![one], starts: vec![0], order, pos: 0, chunk });
        }
        let mut keys = order.converter.empty_rows(total, 0);
        let mut starts = Vec::with_capacity(batches.len());
        let mut start = 0;
        for batch in &batches {
            starts.push(start);
            start += batch.num_rows();
            order.converter.append(&mut keys, &order.sort_columns(batch)).map_err(|e| Error::sink("sort", e))?;
        }
        let mut sorted: Vec<u32> = (0..total32).collect();
        // The declared order is total; ties (identical rows) keep input order, so the
        // result never depends on how the sort was split across threads.
        sorted.par_sort_unstable_by(|&a, &b| keys.row(a as usize).cmp(&keys.row(b as usize)).then(a.cmp(&b)));
        Ok(Sorted { batches, starts, order: sorted, pos: 0, chunk })
    }
}

impl Iterator for Sorted {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = self.order.len().min(self.pos + self.chunk);
        let indices: Vec<(usize, usize)> = self.order[self.pos..end]
            .iter()
            .map(|&i| {
                let i = i as usize;
                // `starts` is ascending from 0, so some batch starts at or before `i`.
                let b = self.starts.partition_point(|&s| s <= i) - 1;
                (b, i - self.starts[b])
            })
            .collect();
        self.pos = end;
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        Some(interleave_record_batch(&batches, &indices).map_err(|e| Error::sink("sort", e)))
    }
}

/// A sort column as its typed array, and whether it sorts descending.
enum TypedKey<'a> {
    Text(&'a StringArray, bool),
    Int(&'a Int64Array, bool),
    Money(&'a Decimal128Array, bool),
}

/// The sort columns of `batch` as typed arrays, when all are text, integers or money
/// without nulls; `None` otherwise (the row format handles every type).
fn typed_keys<'a>(order: &Order, batch: &'a RecordBatch) -> Option<Vec<TypedKey<'a>>> {
    order
        .columns
        .iter()
        .zip(&order.descending)
        .map(|(&i, &desc)| {
            let column = batch.column(i);
            if column.null_count() > 0 {
                return None;
            }
            let any = column.as_any();
            if let Some(a) = any.downcast_ref::<StringArray>() {
                Some(TypedKey::Text(a, desc))
            } else if let Some(a) = any.downcast_ref::<Int64Array>() {
                Some(TypedKey::Int(a, desc))
            } else {
                any.downcast_ref::<Decimal128Array>().map(|a| TypedKey::Money(a, desc))
            }
        })
        .collect()
}

/// Each row's normalized-key prefix (the technique of DuckDB's and Spark's sorts): the
/// sort columns packed into 8 big-endian bytes that compare like the declared order,
/// so most comparisons are one integer comparison on contiguous memory instead of a
/// lookup into each column. Prefix order is consistent with the declared order (a
/// smaller prefix is a smaller row); equal prefixes are compared in full, unless the
/// second value says the prefix holds every sort column whole (then they are ties).
///
/// Each column, in order, takes only the bytes its values need: an integer or money
/// column its range above its minimum (`hits` from 1 to 90000 takes 3 bytes, a constant
/// column none), a text column its bytes after the prefix all its values share, zero
/// padded (`2026-10`/`2026-11` take 1 byte). Packing goes on to the next column only
/// when a column fit whole (and, for text, holds no NUL byte, which padding could not
/// be told from); the first column that does not fit fills the rest and ends it.
fn prefixes(keys: &[TypedKey<'_>], rows: usize) -> (Vec<u64>, Packing) {
    let mut prefixes = vec![0u64; rows];
    if rows == 0 {
        return (prefixes, Packing::Exact);
    }
    let mut free = 8usize; // bytes of the prefix not yet used
    for (k, key) in keys.iter().enumerate() {
        if free == 0 {
            return (prefixes, Packing::Partial);
        }
        let (width, whole) = match *key {
            TypedKey::Text(c, desc) => {
                let values = |i: usize| c.value(i).as_bytes();
                let first = values(0);
                let mut shared = first.len();
                let mut longest = 0;
                for i in 0..rows {
                    let v = values(i);
                    shared = v.iter().zip(&first[..shared]).take_while(|(a, b)| a == b).count();
                    longest = longest.max(v.len());
                }
                let width = (longest - shared).min(free);
                let whole = longest - shared <= free && memchr::memchr(0, c.value_data()).is_none();
                for (i, p) in prefixes.iter_mut().enumerate() {
                    *p = shift(*p, width) | text_bytes(values(i), shared, width, desc);
                }
                if longest - shared > free {
                    // The text goes on past the prefix: ties are sorted by its next bytes.
                    return (prefixes, Packing::TextCut { key: k, at: shared + width });
                }
                (width, whole)
            }
            TypedKey::Int(c, desc) => pack_integers(&mut prefixes, free, desc, |i| i128::from(c.value(i))),
            TypedKey::Money(c, desc) => pack_integers(&mut prefixes, free, desc, |i| c.value(i)),
        };
        free -= width;
        if !whole {
            for p in &mut prefixes {
                *p = shift(*p, free);
            }
            return (prefixes, Packing::Partial);
        }
    }
    for p in &mut prefixes {
        *p = shift(*p, free);
    }
    (prefixes, Packing::Exact)
}

/// What the prefixes of [`prefixes`] hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Packing {
    /// Every sort column whole: equal prefixes are equal rows.
    Exact,
    /// Equal prefixes must be compared in full.
    Partial,
    /// The last bytes are text column `key`'s up to byte `at`, which some values go past.
    TextCut { key: usize, at: usize },
}

/// `width` bytes of `v` from byte `from`, zero padded, big-endian (inverted when descending).
fn text_bytes(v: &[u8], from: usize, width: usize, desc: bool) -> u64 {
    let mut bytes = 0u64;
    for k in 0..width {
        let b = v.get(from + k).copied().unwrap_or(0);
        bytes = bytes << 8 | u64::from(if desc { !b } else { b });
    }
    bytes
}

/// Below this many rows, a run of equal prefixes is sorted by full comparison.
const REFINE_MIN_ROWS: usize = 16;
/// Past this byte of a text, runs of equal prefixes are sorted by full comparison
/// (long identical texts would otherwise take one level per 8 bytes).
const REFINE_MAX_BYTES: usize = 4096;

/// Sorts `rows` (prefix, row) whose prefixes end inside text column `key` at byte
/// `at`, as a radix sort by 8-byte digits: by prefix, then each run of equal prefixes
/// by the text's next 8 bytes, and so on. Each level reads each row's text once, in
/// turn, instead of every comparison reading two texts from the start at random
/// places in memory (url-dedup's 4.3M distinct URLs share long prefixes). Runs whose
/// texts end within their digit, or that are small, are finished by full comparison.
fn sort_by_digits(rows: &mut [(u64, u32)], keys: &[TypedKey<'_>], key: usize, at: usize) {
    let by_rows = |rows: &mut [(u64, u32)]| {
        rows.sort_unstable_by(|a, b| compare_typed(keys, a.1 as usize, b.1 as usize).then(a.1.cmp(&b.1)));
    };
    rows.par_sort_unstable_by_key(|e| e.0);
    rows.par_chunk_by_mut(|a, b| a.0 == b.0).for_each(|run| {
        let TypedKey::Text(text, desc) = keys[key] else { return by_rows(run) };
        let longer = || run.iter().any(|e| text.value(e.1 as usize).len() > at);
        if run.len() < REFINE_MIN_ROWS || at > REFINE_MAX_BYTES || !longer() {
            return by_rows(run);
        }
        for e in run.iter_mut() {
            e.0 = text_bytes(text.value(e.1 as usize).as_bytes(), at, 8, desc);
        }
        sort_by_digits(run, keys, key, at + 8);
    });
}

/// `p` moved up by `bytes` bytes (0 for 8: a full shift is not a shift in Rust).
fn shift(p: u64, bytes: usize) -> u64 {
    p.checked_shl(8 * bytes as u32).unwrap_or(0)
}

/// Packs an integer column into the prefixes' next bytes (at most `free`): each value's
/// distance from the column's minimum (from its maximum when descending), in as many
/// bytes as the range needs, cut to its high bytes when they do not fit. Returns the
/// bytes used and whether the values fit whole.
fn pack_integers(prefixes: &mut [u64], free: usize, desc: bool, value: impl Fn(usize) -> i128) -> (usize, bool) {
    let (mut min, mut max) = (i128::MAX, i128::MIN);
    for i in 0..prefixes.len() {
        let v = value(i);
        min = min.min(v);
        max = max.max(v);
    }
    let range = max.abs_diff(min);
    let needed = (128 - range.leading_zeros() as usize).div_ceil(8);
    let width = needed.min(free);
    let cut = 8 * (needed - width) as u32;
    for (i, p) in prefixes.iter_mut().enumerate() {
        let v = value(i);
        let distance = if desc { max.abs_diff(v) } else { v.abs_diff(min) };
        *p = shift(*p, width) | (distance >> cut) as u64;
    }
    (width, needed <= free)
}

/// Rows `a` and `b` compared by the typed sort columns (text bytewise, as the row format does).
fn compare_typed(keys: &[TypedKey<'_>], a: usize, b: usize) -> Ordering {
    for key in keys {
        let (ordering, desc) = match key {
            TypedKey::Text(c, desc) => (c.value(a).as_bytes().cmp(c.value(b).as_bytes()), *desc),
            TypedKey::Int(c, desc) => (c.value(a).cmp(&c.value(b)), *desc),
            TypedKey::Money(c, desc) => (c.value(a).cmp(&c.value(b)), *desc),
        };
        if ordering.is_ne() {
            return if desc { ordering.reverse() } else { ordering };
        }
    }
    Ordering::Equal
}

/// Writes sorted batches as run `n` of `dir`.
fn write_run(
    dir: &Scratch,
    n: usize,
    schema: &SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<PathBuf> {
    let path = dir.path().join(format!("run-{n:020}.arrow"));
    let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
    let ipc = |e| Error::sink("sort", format!("{}: {e}", path.display()));
    let mut writer = StreamWriter::try_new(BufWriter::with_capacity(256 * 1024, file), schema).map_err(ipc)?;
    for batch in batches {
        writer.write(&batch?).map_err(ipc)?;
    }
    writer.finish().map_err(ipc)?;
    crate::failpoint::failpoint("spill-sorted-run");
    Ok(path)
}

/// One sorted run being merged: its current batch and position.
struct Cursor {
    reader: StreamReader<BufReader<File>>,
    batch: RecordBatch,
    keys: arrow::row::Rows,
    pos: usize,
    /// Index of `batch` in the merge's sources of the batch being built.
    source: usize,
}

impl Cursor {
    /// The run's next non-empty batch, if any.
    fn next_batch(
        reader: &mut StreamReader<BufReader<File>>,
        order: &Order,
    ) -> Result<Option<(RecordBatch, arrow::row::Rows)>> {
        for batch in reader.by_ref() {
            let batch = batch.map_err(|e| Error::sink("sort", e))?;
            if batch.num_rows() > 0 {
                let keys = order.keys(&batch)?;
                return Ok(Some((batch, keys)));
            }
        }
        Ok(None)
    }
}

/// A k-way merge of sorted runs (keys compared in row format), `chunk` rows per batch.
struct Merge {
    order: Order,
    _dir: Arc<Scratch>,
    cursors: Vec<Cursor>,
    chunk: usize,
    failed: bool,
}

impl Merge {
    fn new(order: Order, dir: Arc<Scratch>, runs: &[PathBuf], chunk: usize) -> Result<Merge> {
        let mut cursors = Vec::with_capacity(runs.len());
        for run in runs {
            let file = File::open(run).map_err(|e| Error::io(run, e))?;
            let mut reader = StreamReader::try_new(BufReader::with_capacity(64 * 1024, file), None)
                .map_err(|e| Error::sink("sort", format!("{}: {e}", run.display())))?;
            if let Some((batch, keys)) = Cursor::next_batch(&mut reader, &order)? {
                cursors.push(Cursor { reader, batch, keys, pos: 0, source: 0 });
            }
        }
        Ok(Merge { order, _dir: dir, cursors, chunk, failed: false })
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut sources: Vec<RecordBatch> = Vec::with_capacity(self.cursors.len() + 1);
        for c in &mut self.cursors {
            c.source = sources.len();
            sources.push(c.batch.clone());
        }
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.chunk);
        while picks.len() < self.chunk && !self.cursors.is_empty() {
            // Fan-in is small: a linear scan for the least key; ties go to the earlier run.
            let mut best = 0;
            for i in 1..self.cursors.len() {
                let (a, b) = (&self.cursors[i], &self.cursors[best]);
                if a.keys.row(a.pos) < b.keys.row(b.pos) {
                    best = i;
                }
            }
            let c = &mut self.cursors[best];
            picks.push((c.source, c.pos));
            c.pos += 1;
            if c.pos == c.batch.num_rows() {
                match Cursor::next_batch(&mut c.reader, &self.order)? {
                    Some((batch, keys)) => {
                        c.source = sources.len();
                        sources.push(batch.clone());
                        (c.batch, c.keys, c.pos) = (batch, keys, 0);
                    }
                    None => {
                        self.cursors.remove(best);
                    }
                }
            }
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let sources: Vec<&RecordBatch> = sources.iter().collect();
        interleave_record_batch(&sources, &picks).map(Some).map_err(|e| Error::sink("sort", e))
    }
}

impl Iterator for Merge {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        if self.failed {
            return None;
        }
        let next = self.next_batch().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Sort::{Asc, Desc};
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::DataType;

    static T: TableSpec = TableSpec {
        name: "t",
        columns: &[("month", DataType::Utf8), ("url", DataType::Utf8), ("hits", DataType::Int64)],
        indexes: &[],
        order: &[Asc("month"), Desc("hits"), Asc("url")],
        notify_key: &[],
    };

    fn rows(n: usize, batch: usize) -> Vec<(String, String, i64)> {
        // A scrambled but reproducible sequence of rows, some sharing month and hits.
        (0..n)
            .map(|i| {
                let x = (i * 7919 + batch) % n;
                (format!("2026-{:02}", x % 3 + 1), format!("/p{}", x % 1013), (x % 17) as i64)
            })
            .collect()
    }

    fn unsorted(all: &[(String, String, i64)], batch: usize) -> Rows<'static> {
        let batches: Vec<Result<RecordBatch>> = all
            .chunks(batch)
            .map(|c| {
                T.batch(vec![
                    Arc::new(StringArray::from_iter_values(c.iter().map(|r| r.0.as_str()))),
                    Arc::new(StringArray::from_iter_values(c.iter().map(|r| r.1.as_str()))),
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.2))),
                ])
            })
            .collect();
        Rows { spec: &T, batches: Box::new(batches.into_iter()) }
    }

    fn collect(table: Table) -> (Vec<(String, String, i64)>, Vec<usize>) {
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        for batch in table.batches {
            let batch = batch.unwrap();
            sizes.push(batch.num_rows());
            let m = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let u = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            let h = batch.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..batch.num_rows() {
                out.push((m.value(i).to_string(), u.value(i).to_string(), h.value(i)));
            }
        }
        (out, sizes)
    }

    #[test]
    fn in_memory_and_external_sorts_give_the_declared_order_in_fixed_batches() {
        let all = rows(150_000, 3);
        let mut want = all.clone();
        want.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then(a.1.cmp(&b.1)));
        let temp = tempfile::tempdir().unwrap();
        // No limit; a limit that makes a few runs; one so small that runs need two merge passes.
        for limit in [None, Some(4 << 20), Some(64 << 10)] {
            let (got, sizes) = collect(sort_table(unsorted(&all, 1000), limit, temp.path()).unwrap());
            assert!(got == want, "limit {limit:?}: rows out of order");
            assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == OUTPUT_BATCH_ROWS), "limit {limit:?}: {sizes:?}");
            assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0, "spill files left behind");
        }
    }

    #[test]
    fn no_rows_is_an_empty_table() {
        let temp = tempfile::tempdir().unwrap();
        let (got, _) = collect(sort_table(unsorted(&[], 10), Some(1), temp.path()).unwrap());
        assert!(got.is_empty());
    }

    #[test]
    fn a_batch_of_other_columns_is_an_error() {
        let temp = tempfile::tempdir().unwrap();
        let wrong = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]).unwrap();
        let rows = Rows { spec: &T, batches: Box::new(std::iter::once(Ok(wrong))) };
        assert!(sort_table(rows, None, temp.path()).is_err());
    }

    /// Names descending (some sharing long prefixes, some with NUL bytes, some empty),
    /// then amounts ascending over a range wider than the prefix: the prefix is cut
    /// inside the first or the second column, so ties must fall back to full comparison.
    static MIXED: TableSpec = TableSpec {
        name: "mixed",
        columns: &[("name", DataType::Utf8), ("amount", crate::table::MONEY), ("n", DataType::Int64)],
        indexes: &[],
        order: &[Desc("name"), Asc("amount"), Asc("n")],
        notify_key: &[],
    };

    fn mixed_rows(n: usize, names: &[&str]) -> Vec<(String, i128, i64)> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let name = format!("{}{}", names[x as usize % names.len()], (x >> 8) % 5);
                let amount = ((x >> 16) % 2_000_001) as i128 * 100_000_007 - 100_000_000_000_000;
                (name, amount, (i % 7) as i64)
            })
            .collect()
    }

    #[test]
    fn prefix_sort_agrees_with_a_full_comparison_wherever_the_prefix_ends() {
        let deep = format!("{}a", "z".repeat(5000));
        let cases: [&[&str]; 6] = [
            &["", "a", "ab", "a\0", "b"],
            &["https://host.example.com/a", "https://host.example.com/ab", "https://host.example.com/"],
            &["x"],
            &["longer than eight bytes", "longer than eight bytez", "short"],
            // Runs refined by several 8-byte digits, texts ending inside one, NUL bytes.
            &["aaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaab", "aaaaaaaaaaaaaaaa\0", "aaaaaaaaaaaaaaaa"],
            // Identical long texts: refining stops at REFINE_MAX_BYTES.
            &[&deep, "b"],
        ];
        let temp = tempfile::tempdir().unwrap();
        for names in cases {
            let all = mixed_rows(20_000, names);
            let mut want = all.clone();
            want.sort_by(|a, b| b.0.as_bytes().cmp(a.0.as_bytes()).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let batches: Vec<Result<RecordBatch>> = all
                .chunks(777)
                .map(|c| {
                    MIXED.batch(vec![
                        Arc::new(StringArray::from_iter_values(c.iter().map(|r| r.0.as_str()))),
                        crate::table::money("amount", c.iter().map(|r| r.1)).unwrap(),
                        Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.2))),
                    ])
                })
                .collect();
            let rows = Rows { spec: &MIXED, batches: Box::new(batches.into_iter()) };
            let mut got = Vec::new();
            for batch in sort_table(rows, None, temp.path()).unwrap().batches {
                let batch = batch.unwrap();
                let name = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                let amount = batch.column(1).as_any().downcast_ref::<Decimal128Array>().unwrap();
                let n = batch.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
                got.extend((0..batch.num_rows()).map(|i| (name.value(i).to_string(), amount.value(i), n.value(i))));
            }
            assert!(got == want, "names {names:?}: rows out of order");
        }
    }

    #[test]
    fn long_texts_are_cut_into_digits_and_short_columns_pack_exactly() {
        let urls =
            StringArray::from_iter_values(["http://host1.example.com/page/1", "http://host2.example.com/page/22"]);
        let (p, packing) = prefixes(&[TypedKey::Text(&urls, false)], 2);
        assert_eq!(packing, Packing::TextCut { key: 0, at: 19 }, "after the shared 'http://host', 8 bytes");
        assert!(p[0] < p[1]);
        let months = StringArray::from_iter_values(["2026-11", "2026-10"]);
        let hits = Int64Array::from(vec![5, 90_000]);
        let (p, packing) = prefixes(&[TypedKey::Text(&months, false), TypedKey::Int(&hits, true)], 2);
        assert_eq!(packing, Packing::Exact, "1 byte of month, 3 of hits");
        assert!(p[1] < p[0], "the month decides first");
    }
}
