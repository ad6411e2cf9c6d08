//! Result tables: what a job hands to the `sink` stage. A [`Table`] is a name, an
//! Arrow schema, the indexes SQL sinks create, and the rows as a stream of record
//! batches of a fixed size (fixed so Parquet page and row-group cuts never depend on
//! how the rows were computed).

use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};

/// Rows per output record batch.
pub const OUTPUT_BATCH_ROWS: usize = 64 * 1024;

/// A stream of record batches.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// One output table.
pub struct Table {
    /// Table name, as in the spec (`sales_rank`, `monthly_spending`, ...).
    pub name: &'static str,
    /// Column names and types.
    pub schema: SchemaRef,
    /// Column lists that SQL sinks index.
    pub indexes: &'static [&'static [&'static str]],
    /// The rows, in the table's final order.
    pub batches: Batches,
}

/// A native job's rows of one output table, in no particular order: the engine sorts
/// them by the spec's declared order into a [`Table`].
pub struct Rows<'a> {
    /// The table they belong to.
    pub spec: &'static TableSpec,
    /// The rows, in batches of any size (each checked against the spec's schema).
    pub batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send + 'a>,
}

impl<'a> Rows<'a> {
    /// Rows all in memory, as columns in the spec's order.
    pub fn from_columns(spec: &'static TableSpec, columns: Vec<ArrayRef>) -> Result<Rows<'static>> {
        let batch = spec.batch(columns)?;
        Ok(Rows { spec, batches: Box::new(std::iter::once(Ok(batch))) })
    }
}

/// An output table's layout as the spec gives it: what every engine must produce.
pub struct TableSpec {
    /// Table name (`sales_rank`, ...).
    pub name: &'static str,
    /// Column names and types, in order; no column holds nulls.
    pub columns: &'static [(&'static str, DataType)],
    /// Column lists that SQL sinks index.
    pub indexes: &'static [&'static [&'static str]],
    /// The rows' order, a total order (text compares bytewise).
    pub order: &'static [Sort],
    /// Columns that identify a row across runs when the table's new rows are sent to
    /// `--notify`; empty for a table that is not notified.
    pub notify_key: &'static [&'static str],
}

/// The slice of results a plan publishes as its own unit: one month of a monthly job,
/// or one ranking instant of a sales-rank backfill. Each period has its own output
/// files (a Hive partition `<table>/<key>=<label>/` of a directory output) and manifest;
/// SQL targets replace only the rows whose `column` holds `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// The Hive partition key of directory outputs (`month`, `as_of`).
    pub key: &'static str,
    /// Used in file names and as the partition value (`2026-11`, `20261123T000000Z`).
    pub label: String,
    /// The column that holds the period in the output rows, if they carry it (`month`).
    pub column: Option<&'static str>,
    /// The value of that column for this period.
    pub value: String,
}

/// One key of a table's row order.
#[derive(Clone, Copy, Debug)]
pub enum Sort {
    /// Ascending by the named column.
    Asc(&'static str),
    /// Descending by the named column.
    Desc(&'static str),
}

impl TableSpec {
    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        schema(self.columns)
    }

    /// Whether the rows carry a `month` column, so a run replaces only its months in SQL tables.
    pub fn has_month(&self) -> bool {
        self.columns.iter().any(|(c, _)| *c == "month")
    }

    /// Checks that `columns` fit the layout and makes them one batch.
    pub fn batch(&self, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
        RecordBatch::try_new(self.schema(), columns).map_err(|e| Error::sink(self.name, e))
    }
}

impl Table {
    /// A table whose rows are all in memory, cut into fixed-size batches.
    pub fn from_columns(spec: &TableSpec, columns: Vec<ArrayRef>) -> Result<Table> {
        Ok(Table::from_batch(spec, spec.batch(columns)?))
    }

    /// [`Table::from_columns`] of a batch already checked by [`TableSpec::batch`].
    pub fn from_batch(spec: &TableSpec, batch: RecordBatch) -> Table {
        let rows = batch.num_rows();
        let slices: Vec<Result<RecordBatch>> = (0..rows)
            .step_by(OUTPUT_BATCH_ROWS)
            .map(|start| Ok(batch.slice(start, OUTPUT_BATCH_ROWS.min(rows - start))))
            .collect();
        Table { name: spec.name, schema: batch.schema(), indexes: spec.indexes, batches: Box::new(slices.into_iter()) }
    }
}

/// A schema of non-null columns.
pub fn schema(columns: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(columns.iter().map(|(n, t)| Field::new(*n, t.clone(), false)).collect::<Vec<_>>()))
}

/// The Arrow type of money columns.
pub const MONEY: DataType = DataType::Decimal128(18, 2);

/// A text column.
pub fn text<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// A BIGINT column; `what` names the column in the overflow error.
pub fn bigint(what: &str, values: impl Iterator<Item = i128>) -> Result<ArrayRef> {
    let values: Vec<i64> =
        values.map(|v| i64::try_from(v).map_err(|_| overflow(what, v, "BIGINT"))).collect::<Result<_>>()?;
    Ok(Arc::new(Int64Array::from(values)))
}

/// A DECIMAL(18,2) column from cents; `what` names the column in the overflow error.
pub fn money(what: &str, cents: impl Iterator<Item = i128>) -> Result<ArrayRef> {
    const LIMIT: i128 = 1_000_000_000_000_000_000;
    let values: Vec<i128> = cents
        .map(|c| if c.abs() < LIMIT { Ok(c) } else { Err(overflow(what, c, "DECIMAL(18,2)")) })
        .collect::<Result<_>>()?;
    let array = Decimal128Array::from(values).with_precision_and_scale(18, 2).map_err(|e| Error::sink(what, e))?;
    Ok(Arc::new(array))
}

fn overflow(what: &str, value: i128, ty: &str) -> Error {
    Error::sink(what, format!("value {value} does not fit {ty}"))
}
