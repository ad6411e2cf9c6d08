//! SQL jobs: a `.sql` file with a declaration header ([`super::sql_file`]) loaded at
//! run time as a job with everything a built-in job has: mrpipe's reader and
//! bad-line accounting, every sink, periods, locks and manifests.
//!
//! Loading parses the file, then plans every statement with DataFusion against the
//! input format's schema (earlier outputs registered as empty tables), so a wrong
//! column or type is a usage error naming the file and line before anything is read,
//! and each output's columns are known: they become the output's [`TableSpec`]. At
//! run time each statement is wrapped as `SELECT * FROM (statement) ORDER BY <the
//! declared keys, then every other column>` so the rows come in a total order, and,
//! for a job whose every output has a `month` column, filtered to the period's month.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use super::spec::{Kind, MONTH_PARAMS, ParamSpec, Values, parse_value};
use super::sql_file::{self, ParamDefault, ParamType};
use super::{Job, JobInfo, JobOutput, Plan, RunContext, SqlFile, Twin};
use crate::engine::datafusion::{Session, run_twin};
use crate::error::{Error, Result};
use crate::params;
use crate::read::format::{FORMAT_NAMES, Format};
use crate::table::{Period, Sort, TableSpec};

/// Options a monthly SQL job takes besides its own parameters.
const MONTH_OPTIONS: &[&str] = &["month", "from", "to", "as-of"];

/// A job loaded from a SQL file.
pub struct SqlJob {
    info: &'static JobInfo,
    path: PathBuf,
    input: (&'static str, Format),
    /// The wrapped statements, one per output.
    sql: &'static SqlFile,
    outputs: Vec<&'static TableSpec>,
    /// Whether every output has a `month` column, so the job takes `--month` and backfills.
    monthly: bool,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// `"name"`: an identifier quoted for DataFusion.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The column type an output keeps: what every sink stores the same way (`jobs.md`:
/// TEXT, BIGINT, DECIMAL(18,2); floats, other decimals, booleans, dates and
/// timestamps are kept); `None` for anything else.
fn output_type(t: &DataType) -> std::result::Result<DataType, &'static str> {
    Ok(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => DataType::Int64,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        // Money stays DECIMAL(18,2) whatever precision a SUM widened it to; overflow is an error.
        DataType::Decimal128(_, 2) | DataType::Decimal256(_, 2) => DataType::Decimal128(18, 2),
        DataType::Decimal128(p, s) if *s >= 0 => DataType::Decimal128(*p, *s),
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        // A float sum depends on the order of its terms, so on the thread count.
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            return Err("floats are not exact: CAST it to DECIMAL(18,4) (or ROUND it to a DECIMAL)");
        }
        DataType::Boolean => return Err("CAST it to BIGINT (1, 0) or to VARCHAR"),
        DataType::Timestamp(..) => return Err("CAST it to VARCHAR, or to DATE"),
        _ => return Err("CAST it in the statement"),
    })
}

/// A placeholder value of a parameter's type, to plan with before real values exist.
fn sample_value(ty: ParamType) -> ScalarValue {
    match ty {
        ParamType::Bigint => ScalarValue::Int64(Some(0)),
        ParamType::Text => ScalarValue::Utf8(Some(String::new())),
        ParamType::Boolean => ScalarValue::Boolean(Some(false)),
        ParamType::Timestamp => ScalarValue::TimestampMicrosecond(Some(0), Some("UTC".into())),
    }
}

/// The option kind of a parameter's SQL type.
fn kind(ty: ParamType) -> Kind {
    match ty {
        ParamType::Bigint => Kind::Int,
        ParamType::Text => Kind::Text,
        ParamType::Boolean => Kind::Flag,
        ParamType::Timestamp => Kind::When,
    }
}

impl SqlJob {
    /// Loads the job file at `path`; a header or SQL error is `Error::Usage` naming the
    /// file and line. `reserved` are the option names every job has.
    pub fn load(path: &Path, reserved: &[&str]) -> Result<SqlJob> {
        // A FIFO or a device would block or never end: only a regular file is a job.
        if !std::fs::metadata(path).map_err(|e| Error::io(path, e))?.is_file() {
            return Err(Error::Usage(format!("{}: not a regular file", path.display())));
        }
        let text = String::from_utf8(std::fs::read(path).map_err(|e| Error::io(path, e))?).map_err(|e| {
            Error::Usage(format!("{}: not UTF-8 (at byte {})", path.display(), e.utf8_error().valid_up_to()))
        })?;
        let at = |line: usize, message: &dyn std::fmt::Display| {
            Error::Usage(format!("{}:{line}: {message}", path.display()))
        };
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let file =
            sql_file::parse(&text, stem.as_deref(), FORMAT_NAMES, reserved).map_err(|e| at(e.line, &e.message))?;
        if let Some(p) = file.params.iter().find(|p| p.name.starts_with("mrpipe_")) {
            return Err(at(p.line, &format!("parameter names starting with mrpipe_ are mrpipe's own ('{}')", p.name)));
        }
        let mut specs = Vec::with_capacity(file.params.len() + MONTH_PARAMS.len());
        for p in &file.params {
            let help = leak(&format!("${} ({})", p.name, p.ty.sql_name()));
            let mut spec = ParamSpec::new(leak(&p.option()), kind(p.ty), p.ty.sql_name(), help);
            match &p.default {
                ParamDefault::Value(v) if p.ty != ParamType::Boolean => {
                    parse_value(spec.kind, v).map_err(|e| at(p.line, &format!("default of {}: {e}", p.name)))?;
                    spec = spec.default(leak(v));
                }
                ParamDefault::Required => spec = spec.required(),
                _ => {}
            }
            specs.push(spec);
        }
        let format = Format::by_name(&file.input_format)
            .ok_or_else(|| at(1, &format!("unknown input format '{}'", file.input_format)))?;

        // Plan every statement on empty tables: the outputs' columns, and SQL errors now.
        let session = Session::new(1, None, &std::env::temp_dir())?;
        session.register(&file.input_table, format.schema(), Vec::new())?;
        let samples = ParamValues::from(
            file.params.iter().map(|p| (p.name.clone(), sample_value(p.ty))).collect::<Vec<(String, ScalarValue)>>(),
        );
        let mut schemas = Vec::with_capacity(file.outputs.len());
        for (output, statement) in file.outputs.iter().zip(&file.statements) {
            // Only queries: a statement that writes (COPY, INSERT, CREATE) or explains is no output.
            let parsed = DFParser::parse_sql(&statement.text).map_err(|e| at(statement.line, &e))?;
            if !matches!(parsed.front(), Some(DfStatement::Statement(s)) if matches!(**s, SqlStatement::Query(_)))
                || parsed.len() != 1
            {
                return Err(at(
                    statement.line,
                    &format!("the statement of output {} must be a query (SELECT, WITH ...)", output.table),
                ));
            }
            let state = session.ctx.state();
            let schema = session
                .runtime
                .block_on(async {
                    let plan = state.create_logical_plan(&statement.text).await?.with_param_values(samples.clone())?;
                    Ok::<_, datafusion::error::DataFusionError>(plan.schema().as_arrow().clone())
                })
                .map_err(|e| at(statement.line, &sql_message(&e, statement.line)))?;
            let mut fields = Vec::with_capacity(schema.fields().len());
            for field in schema.fields() {
                let ty = output_type(field.data_type()).map_err(|hint| {
                    at(
                        statement.line,
                        &format!(
                            "output {} column {} has type {}, which SQL job outputs do not publish \
                             (TEXT, BIGINT, DECIMAL, DATE give the same bytes on every sink and thread count); {hint}",
                            output.table,
                            field.name(),
                            field.data_type()
                        ),
                    )
                })?;
                fields.push((field.name().clone(), ty));
            }
            for key in &output.order {
                if !fields.iter().any(|(name, _)| *name == key.column) {
                    return Err(at(
                        output.line,
                        &format!(
                            "output {} is ordered by {}, which its statement does not return",
                            output.table, key.column
                        ),
                    ));
                }
            }
            let arrow = Schema::new(
                fields.iter().map(|(n, t)| arrow::datatypes::Field::new(n, t.clone(), true)).collect::<Vec<_>>(),
            );
            session.register(&output.table, Arc::new(arrow), Vec::new())?;
            schemas.push(fields);
        }

        let monthly = schemas.iter().all(|cols| cols.iter().any(|(n, t)| n == "month" && *t == DataType::Utf8));
        if monthly {
            if let Some(p) = file.params.iter().find(|p| MONTH_OPTIONS.contains(&p.option().as_str())) {
                return Err(at(p.line, &format!("a monthly job has --{} already", p.option())));
            }
            specs.extend(MONTH_PARAMS);
        }
        let mut outputs = Vec::with_capacity(schemas.len());
        let mut statements = Vec::with_capacity(schemas.len());
        for ((output, statement), columns) in file.outputs.iter().zip(&file.statements).zip(schemas) {
            let mut order: Vec<Sort> = output
                .order
                .iter()
                .map(|k| if k.descending { Sort::Desc(leak(&k.column)) } else { Sort::Asc(leak(&k.column)) })
                .collect();
            // Every other column breaks ties, so the order is total and the bytes reproducible.
            for (name, _) in &columns {
                if !output.order.iter().any(|k| k.column == *name) {
                    order.push(Sort::Asc(leak(name)));
                }
            }
            let keys: Vec<String> = order
                .iter()
                .map(|s| match s {
                    Sort::Asc(c) => quoted(c),
                    Sort::Desc(c) => format!("{} DESC", quoted(c)),
                })
                .collect();
            statements.push(format!(
                "SELECT * FROM (\n{}\n) AS mrpipe_output ORDER BY {}",
                statement.text,
                keys.join(", ")
            ));
            let columns: Vec<(&'static str, DataType)> = columns.into_iter().map(|(n, t)| (leak(&n), t)).collect();
            outputs.push(&*Box::leak(Box::new(TableSpec {
                name: leak(&output.table),
                columns: Box::leak(columns.into_boxed_slice()),
                indexes: &[],
                order: Box::leak(order.into_boxed_slice()),
                notify_key: &[],
            })));
        }
        let display = path.display().to_string();
        let info = Box::leak(Box::new(JobInfo {
            name: leak(&file.name),
            about: leak(&file.about),
            input: leak(&format!("{} (SQL job {display}, input table {})", file.input_format, file.input_table)),
            params: Box::leak(specs.into_boxed_slice()),
            outputs: Box::leak(outputs.clone().into_boxed_slice()),
            example: leak(&format!("  mrpipe run {} INPUT... -o out/", file.name)),
            sample: &[],
        }));
        let sql = Box::leak(Box::new(SqlFile { path: leak(&display), text: leak(&statements.join(";\n")) }));
        let input = (leak(&file.input_table), format);
        // The manifest records where the job is, so verify finds it from any directory.
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(SqlJob { info, path, input, sql, outputs, monthly })
    }
}

/// A DataFusion error; a parser position is moved from the statement to the file.
fn sql_message(e: &datafusion::error::DataFusionError, first_line: usize) -> String {
    let message = crate::engine::datafusion::error_text(e);
    match message.rfind("Line: ").and_then(|at| {
        let line: String = message[at + 6..].chars().take_while(char::is_ascii_digit).collect();
        Some((at, line.parse::<usize>().ok()?))
    }) {
        Some((at, line)) => format!("{}(file line {})", &message[..at], first_line + line - 1),
        None => message,
    }
}

impl Job for SqlJob {
    fn info(&self) -> &'static JobInfo {
        self.info
    }

    fn configure(&self, values: &Values) -> Result<Vec<Box<dyn Plan>>> {
        let months = if self.monthly { values.months()? } else { None };
        let plan = |month: Option<(i64, i64)>| -> Box<dyn Plan> {
            Box::new(SqlPlan {
                path: self.path.clone(),
                twin: (self.sql, self.input, self.outputs.clone(), self.info),
                values: values.for_month(month),
                month,
            })
        };
        Ok(match months {
            None => vec![plan(None)],
            Some(months) => months.into_iter().map(|m| plan(Some(m))).collect(),
        })
    }

    fn source(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// What a plan's twin is made of: the wrapped statements, the input, the outputs, the job.
type TwinParts = (&'static SqlFile, (&'static str, Format), Vec<&'static TableSpec>, &'static JobInfo);

/// One run (or one month) of a SQL job with its option values.
struct SqlPlan {
    path: PathBuf,
    twin: TwinParts,
    values: Values,
    month: Option<(i64, i64)>,
}

impl Plan for SqlPlan {
    fn run(&self, ctx: &RunContext) -> Result<JobOutput> {
        run_twin(self.twin()?, ctx)
    }

    fn values(&self) -> &Values {
        &self.values
    }

    fn period(&self) -> Option<Period> {
        self.month.map(params::month_period)
    }

    fn side_files(&self) -> Vec<PathBuf> {
        // The job file itself: an edited job is a changed run for verify and --skip-unchanged.
        vec![self.path.clone()]
    }

    fn twin(&self) -> Result<Twin> {
        let (sql, input, outputs, info) = &self.twin;
        let mut twin = Twin::new(sql, *input, outputs.clone(), info, &self.values);
        twin.published_rows = self.month.map(|p| ("month".to_string(), params::month_period(p).value));
        Ok(twin)
    }
}
