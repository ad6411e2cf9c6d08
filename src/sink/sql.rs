//! What the SQL targets (SQLite, PostgreSQL, MySQL) share: which Arrow types they
//! store and how ([`SqlType`], one rule for every column a job or `mrpipe query` can
//! produce: stored, or refused with an error naming the column, never a panic), one
//! Arrow cell as a SQL value ([`SqlCell`]), and which rows a run replaces: tables with
//! a `month` column lose only the months the run holds (and its period's month, even
//! when the run has no rows for it); other tables lose everything.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};

use super::Recorded;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::read::fields::civil_from_days;
use crate::table::Period;

/// A kind of value the SQL targets store, each read from one canonical Arrow type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    /// 64-bit integer (from any integer type that fits; Arrow `Int64`).
    Int,
    /// Double-precision float (Arrow `Float64`).
    Float,
    /// Exact decimal (Arrow `Decimal128(precision, scale)`); money is `(18, 2)`.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// UTF-8 text (from `Utf8`, `LargeUtf8`, `Utf8View` or a dictionary of them).
    Text,
    /// Boolean.
    Bool,
    /// Calendar date (Arrow `Date32`: days since 1970-01-01).
    Date,
    /// Instant or wall-clock time in microseconds (Arrow `Timestamp(Microsecond, tz)`).
    Timestamp {
        /// Whether the Arrow type carries a time zone: an instant, stored in UTC.
        utc: bool,
    },
    /// Bytes.
    Binary,
}

fn decimal(precision: u8, scale: i8) -> SqlType {
    if scale < 0 {
        return SqlType::Decimal { precision: precision.saturating_add(scale.unsigned_abs()).min(38), scale: 0 };
    }
    SqlType::Decimal { precision, scale }
}

/// An output column as the SQL targets see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlColumn {
    /// The column name.
    pub name: String,
    /// What it stores.
    pub ty: SqlType,
    /// Whether it may hold NULL (the job tables never do).
    pub nullable: bool,
}

impl SqlColumn {
    /// The SQL type of `field`; a type no SQL target stores is a usage error naming the column.
    pub fn of(field: &Field) -> Result<SqlColumn> {
        let ty = match field.data_type() {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => SqlType::Int,
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => SqlType::Int,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => SqlType::Float,
            // A negative scale (hundreds, thousands) is stored as whole numbers.
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => decimal(*p, *s),
            DataType::Decimal256(p, s) if *p <= 38 => decimal(*p, *s),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => SqlType::Text,
            DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                SqlType::Text
            }
            DataType::Boolean => SqlType::Bool,
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Timestamp(_, tz) => SqlType::Timestamp { utc: tz.is_some() },
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                SqlType::Binary
            }
            other => {
                return Err(Error::Usage(format!(
                    "column '{}' has type {other}, which SQL outputs cannot store; convert it in the query \
                     (e.g. CAST({} AS VARCHAR)) or write Parquet",
                    field.name(),
                    field.name()
                )));
            }
        };
        Ok(SqlColumn { name: field.name().clone(), ty, nullable: field.is_nullable() })
    }

    /// The columns of a table's schema.
    pub fn all(schema: &arrow::datatypes::Schema) -> Result<Vec<SqlColumn>> {
        schema.fields().iter().map(|f| SqlColumn::of(f)).collect()
    }

    /// `NOT NULL` for columns that cannot hold NULL, else nothing.
    pub fn not_null(&self) -> &'static str {
        if self.nullable { "" } else { " NOT NULL" }
    }

    fn arrow_type(&self) -> DataType {
        match self.ty {
            SqlType::Int => DataType::Int64,
            SqlType::Float => DataType::Float64,
            SqlType::Decimal { precision, scale } => DataType::Decimal128(precision.min(38), scale),
            SqlType::Text => DataType::Utf8,
            SqlType::Bool => DataType::Boolean,
            SqlType::Date => DataType::Date32,
            SqlType::Timestamp { utc } => DataType::Timestamp(TimeUnit::Microsecond, utc.then(|| "UTC".into())),
            SqlType::Binary => DataType::Binary,
        }
    }
}

/// A batch's columns cast to the canonical type of each [`SqlColumn`], so [`cell`] can
/// read them; a value that does not fit (a `UInt64` over `i64::MAX`) is an error.
pub fn canonical(batch: &RecordBatch, columns: &[SqlColumn]) -> Result<Vec<ArrayRef>> {
    let strict = CastOptions { safe: false, ..CastOptions::default() };
    batch
        .columns()
        .iter()
        .zip(columns)
        .map(|(array, column)| {
            let want = column.arrow_type();
            let array = if array.data_type() == &want {
                Arc::clone(array)
            } else {
                cast_with_options(array, &want, &strict)
                    .map_err(|e| Error::Usage(format!("column '{}' cannot be stored in SQL: {e}", column.name)))?
            };
            // SQLite would store NaN as NULL and MySQL refuses it: refused alike everywhere.
            if column.ty == SqlType::Float && array.as_primitive::<Float64Type>().iter().flatten().any(|f| !f.is_finite()) {
                return Err(Error::Usage(format!(
                    "column '{}' holds NaN or an infinity, which SQL outputs do not store alike; filter it or write Parquet",
                    column.name
                )));
            }
            Ok(array)
        })
        .collect()
}

/// One output cell, borrowed from its canonical Arrow column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SqlCell<'a> {
    /// NULL.
    Null,
    /// A BIGINT.
    Int(i64),
    /// A DOUBLE.
    Float(f64),
    /// An exact decimal: the unscaled value and the scale (money: cents and 2).
    Decimal(i128, i8),
    /// Text.
    Text(&'a str),
    /// A boolean.
    Bool(bool),
    /// A date: days since 1970-01-01.
    Date(i32),
    /// A timestamp: microseconds since 1970-01-01T00:00:00 (UTC for an instant).
    Timestamp(i64),
    /// Bytes.
    Binary(&'a [u8]),
}

/// The cell at `row` of a column made canonical by [`canonical`].
pub fn cell(column: &dyn Array, ty: SqlType, row: usize) -> SqlCell<'_> {
    if column.is_null(row) {
        return SqlCell::Null;
    }
    match ty {
        SqlType::Int => SqlCell::Int(column.as_primitive::<Int64Type>().value(row)),
        SqlType::Float => SqlCell::Float(column.as_primitive::<Float64Type>().value(row)),
        SqlType::Decimal { scale, .. } => SqlCell::Decimal(column.as_primitive::<Decimal128Type>().value(row), scale),
        SqlType::Text => SqlCell::Text(column.as_string::<i32>().value(row)),
        SqlType::Bool => SqlCell::Bool(column.as_boolean().value(row)),
        SqlType::Date => SqlCell::Date(column.as_primitive::<Date32Type>().value(row)),
        SqlType::Timestamp { .. } => SqlCell::Timestamp(column.as_primitive::<TimestampMicrosecondType>().value(row)),
        SqlType::Binary => SqlCell::Binary(column.as_binary::<i32>().value(row)),
    }
}

/// An exact decimal as text with `scale` fraction digits (`-3.10`, `1234`).
pub fn decimal_text(value: i128, scale: i8) -> String {
    if scale <= 0 {
        let factor = 10i128.checked_pow(u32::from(scale.unsigned_abs())).unwrap_or(1);
        return value.saturating_mul(factor).to_string();
    }
    let digits = value.unsigned_abs().to_string();
    let scale = usize::from(scale.unsigned_abs());
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if value < 0 { "-" } else { "" })
}

/// A URL query value (a certificate path) with its `%XX` escapes undone.
pub fn percent_decoded(value: &str) -> String {
    percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned()
}

/// A date as `YYYY-MM-DD`.
pub fn date_text(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A timestamp as ISO 8601 with microseconds, `Z` for an instant.
pub fn timestamp_text(micros: i64, utc: bool) -> String {
    let (days, rest) = (micros.div_euclid(86_400_000_000), micros.rem_euclid(86_400_000_000));
    let (y, m, d) = civil_from_days(days);
    let secs = rest / 1_000_000;
    let (hh, mm, ss, us) = (secs / 3600, secs / 60 % 60, secs % 60, rest % 1_000_000);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{us:06}{}", if utc { "Z" } else { "" })
}

/// The months a table's rows hold, gathered while they are written.
pub struct Months {
    column: Option<usize>,
    seen: BTreeSet<String>,
}

impl Months {
    /// Watches the `month` text column of `schema`, if it has one.
    pub fn of(schema: &arrow::datatypes::Schema) -> Months {
        let column = schema.fields().iter().position(|f| f.name() == "month" && f.data_type() == &DataType::Utf8);
        Months { column, seen: BTreeSet::new() }
    }

    /// Notes the months of a batch.
    pub fn see(&mut self, batch: &RecordBatch) {
        let Some(i) = self.column else { return };
        let months = batch.column(i).as_string::<i32>();
        for row in 0..months.len() {
            let month = months.value(row);
            // Rows come sorted, mostly by month: skip the set for a repeated one.
            if row == 0 || months.value(row - 1) != month {
                self.seen.insert(month.to_string());
            }
        }
    }

    /// The months this table's rows replace: those seen plus the period's; `None` for
    /// a table without a `month` column (it is replaced whole).
    pub fn replaced(self, period: Option<&Period>) -> Option<Vec<String>> {
        self.column?;
        Some(months_to_replace(period, self.seen))
    }
}

/// A table copied into its staging table, waiting for the commit.
pub struct Staged {
    /// Target table name.
    pub name: &'static str,
    /// The months its rows replace; `None`: the whole table.
    pub months: Option<Vec<String>>,
}

impl Staged {
    /// The staging table's name.
    pub fn stage(&self) -> String {
        format!("mrpipe_stage_{}", self.name)
    }
}

/// The months a run replaces: those found in its staged tables plus its period's.
pub fn months_to_replace(period: Option<&Period>, found: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut months: Vec<String> =
        period.filter(|p| p.column == Some("month")).map(|p| p.value.clone()).into_iter().chain(found).collect();
    months.sort();
    months.dedup();
    months
}

/// Refuses to publish into an existing table whose columns differ from the result's
/// (names and types in order, as the server's catalog spells them): loading rows into
/// another layout would convert them silently. `found` is empty for a new table.
pub fn check_layout(output: &str, table: &str, found: &[(String, String)], want: &[(String, String)]) -> Result<()> {
    let same =
        found.len() == want.len() && found.iter().zip(want).all(|(f, w)| f.0 == w.0 && f.1.eq_ignore_ascii_case(&w.1));
    if found.is_empty() || same {
        return Ok(());
    }
    let list = |cols: &[(String, String)]| cols.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", ");
    Err(Error::sink(
        output,
        format!(
            "table {table} has columns ({}), the result has ({}); drop the table or publish to another schema",
            list(found),
            list(want)
        ),
    ))
}

/// How long connecting to a server may take, unless its URL says otherwise.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `connect` on its own thread and gives up after `timeout`: a server that
/// accepts the connection but never answers (frozen, stopped with SIGSTOP) must end a
/// cron run with an error, not hang it. The abandoned thread ends with the process.
pub fn connect_within<T: Send + 'static>(
    output: &str,
    timeout: std::time::Duration,
    connect: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mrpipe-connect".into())
        .spawn(move || {
            let _ = tx.send(connect());
        })
        .map_err(|e| Error::sink(output, e))?;
    rx.recv_timeout(timeout).map_err(|_| {
        Error::sink(
            output,
            format!("connecting timed out after {}s (the server accepted but did not answer)", timeout.as_secs()),
        )
    })?
}

/// A manifest recorded in `mrpipe_runs` if it is the run `which` asks for (runs are
/// read newest first); `output` names the database in the error for an unreadable one.
pub fn pick_manifest(output: &str, json: &str, which: Recorded<'_>) -> Result<Option<Manifest>> {
    let manifest: Manifest = serde_json::from_str(json)
        .map_err(|e| Error::Usage(format!("the manifest recorded at {output} is unreadable: {e}")))?;
    let wanted = match which {
        Recorded::Newest => true,
        Recorded::Unit(period) => manifest.period.as_deref() == period.map(|p| p.label.as_str()),
    };
    Ok(wanted.then_some(manifest))
}

/// SQL tables hold a period only through a column (`month`): a period without one
/// (one of several sales-rank rankings) cannot share a table with the others.
pub fn check_period(period: Option<&Period>) -> Result<()> {
    if period.is_some_and(|p| p.column.is_none()) {
        return Err(Error::Usage(
            "several rankings cannot share one SQL table; give a directory output for a sales-rank backfill".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Decimal128Array, Float64Array, ListArray, StringViewArray, UInt64Array};
    use arrow::datatypes::{Int32Type, Schema};

    #[test]
    fn texts_of_decimals_dates_and_timestamps() {
        assert_eq!(decimal_text(-310, 2), "-3.10");
        assert_eq!(decimal_text(5, 6), "0.000005");
        assert_eq!(decimal_text(1234, 0), "1234");
        assert_eq!(decimal_text(12, -2), "1200");
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(timestamp_text(1_500_000, true), "1970-01-01T00:00:01.500000Z");
        assert_eq!(timestamp_text(-1, false), "1969-12-31T23:59:59.999999");
    }

    #[test]
    fn every_column_type_a_query_makes_is_stored_or_refused_by_name() {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("f", Arc::new(Float64Array::from(vec![1.5]))),
            ("d", Arc::new(Decimal128Array::from(vec![1_500_000]).with_precision_and_scale(10, 6).unwrap())),
            ("day", Arc::new(Date32Array::from(vec![20_000]))),
            ("s", Arc::new(StringViewArray::from(vec!["v"]))),
            ("u", Arc::new(UInt64Array::from(vec![7]))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let sql = SqlColumn::all(&batch.schema()).unwrap();
        let arrays = canonical(&batch, &sql).unwrap();
        let cells: Vec<SqlCell> = arrays.iter().zip(&sql).map(|(a, c)| cell(a.as_ref(), c.ty, 0)).collect();
        assert_eq!(
            cells,
            vec![
                SqlCell::Float(1.5),
                SqlCell::Decimal(1_500_000, 6),
                SqlCell::Date(20_000),
                SqlCell::Text("v"),
                SqlCell::Int(7)
            ]
        );
        let too_big =
            RecordBatch::try_from_iter([("u", Arc::new(UInt64Array::from(vec![u64::MAX])) as ArrayRef)]).unwrap();
        let err = canonical(&too_big, &SqlColumn::all(&too_big.schema()).unwrap()).unwrap_err().to_string();
        assert!(err.contains("column 'u'"), "{err}");
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)])]);
        let schema = Schema::new(vec![Field::new("xs", list.data_type().clone(), true)]);
        let err = SqlColumn::all(&schema).unwrap_err().to_string();
        assert!(err.contains("column 'xs'") && err.contains("cannot store"), "{err}");
    }

    #[test]
    fn months_replaced_are_the_rows_and_the_periods() {
        let batch = RecordBatch::try_from_iter([(
            "month",
            Arc::new(arrow::array::StringArray::from(vec!["2026-10", "2026-10", "2026-09"])) as ArrayRef,
        )])
        .unwrap();
        let mut months = Months::of(&batch.schema());
        months.see(&batch);
        let period = crate::params::month_period((2026, 11));
        assert_eq!(months.replaced(Some(&period)).unwrap(), vec!["2026-09", "2026-10", "2026-11"]);
        let none =
            RecordBatch::try_from_iter([("url", Arc::new(arrow::array::StringArray::from(vec!["x"])) as ArrayRef)])
                .unwrap();
        assert_eq!(Months::of(&none.schema()).replaced(None), None);
    }
}
