//! What the SQL sinks (SQLite, PostgreSQL, MySQL) share: reading one Arrow cell as a
//! SQL value, and the rule for which rows a run replaces: tables with a `month`
//! column lose only the months the run holds (and its period's month, even when
//! the run has no rows for it); other tables lose everything.

use arrow::array::{Array, AsArray, Decimal128Array};
use arrow::datatypes::{DataType, Int64Type};

use crate::job::Period;

/// One output cell, borrowed from its Arrow column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlCell<'a> {
    /// NULL (the output tables have none; kept for completeness).
    Null,
    /// A BIGINT.
    Int(i64),
    /// Money in hundredths (a `DECIMAL(18,2)` value).
    Cents(i128),
    /// Text.
    Text(&'a str),
}

/// The cell at `row` of an output column.
pub fn cell(column: &dyn Array, row: usize) -> SqlCell<'_> {
    if column.is_null(row) {
        return SqlCell::Null;
    }
    match column.data_type() {
        DataType::Int64 => SqlCell::Int(column.as_primitive::<Int64Type>().value(row)),
        DataType::Decimal128(_, 2) => {
            SqlCell::Cents(column.as_any().downcast_ref::<Decimal128Array>().map_or(0, |a| a.value(row)))
        }
        _ => SqlCell::Text(column.as_string::<i32>().value(row)),
    }
}

/// A table copied into its staging table, waiting for the commit.
pub struct Staged {
    /// Target table name.
    pub name: &'static str,
    /// Whether its rows carry a `month`, so a run replaces only its months.
    pub has_month: bool,
}

impl Staged {
    /// The staging table's name.
    pub fn stage(&self) -> String {
        format!("mrpipe_stage_{}", self.name)
    }
}

/// The months a run replaces: those found in its staged tables plus its period's.
pub fn months_to_replace(period: Option<&Period>, found: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut months: Vec<String> = period.map(|p| p.value.clone()).into_iter().chain(found).collect();
    months.sort();
    months.dedup();
    months
}
