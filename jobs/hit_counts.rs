//! hit-counts: monthly hits per URL from web-server access logs (System Design
//! Primer, "Pastebin", HitCounts).
//!
//! Input is TSV (`timestamp client_ip method url status bytes`) or, with
//! `--format clf`, nginx/Apache Common or Combined Log Format. Map/reduce:
//! `(YYYY-MM, url)` -> request count; `--strip-query` cuts the url at its first `?`.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;

use crate::engine::native;
use crate::error::Result;
use crate::job::spec::{Kind, MONTH_PARAMS, ParamSpec, Values};
use crate::job::{self, Job, JobInfo, JobOutput, Period, Plan, RunContext, SqlFile, Twin};
use crate::map::{Combiner, Groups, MapReduce, columns, rows_from_groups, split_key};
use crate::params;
use crate::read::fields::{push_year_month, year_month};
use crate::read::format::{ACCESS_LOG, Format};
use crate::table::Sort::{Asc, Desc};
use crate::table::{self, Rows, TableSpec};

/// The hit-counts job.
pub struct HitCounts;

/// The output table.
pub static HIT_COUNTS: TableSpec = TableSpec {
    name: "hit_counts",
    columns: &[("month", DataType::Utf8), ("url", DataType::Utf8), ("hits", DataType::Int64)],
    indexes: &[&["month", "hits"], &["url"]],
    order: &[Asc("month"), Desc("hits"), Asc("url")],
    notify_key: &[],
};

/// The job as SQL, for `--engine datafusion`.
static SQL: SqlFile = SqlFile { path: "jobs/hit_counts.sql", text: include_str!("hit_counts.sql") };

static INFO: JobInfo = JobInfo {
    name: "hit-counts",
    about: "Monthly hits per URL from access logs (TSV or nginx/Apache format)",
    input: "TSV: timestamp client_ip method url status bytes, or --format clf (Common/Combined Log Format)",
    params: &[
        ParamSpec::new(
            "format",
            Kind::Choice(&["tsv", "clf"]),
            "FORMAT",
            "Input line format: tsv, or clf (nginx/Apache).",
        )
        .default("tsv"),
        ParamSpec::new("strip-query", Kind::Flag, "", "Count URLs without their query string (from the first `?`)."),
        MONTH_PARAMS[0],
        MONTH_PARAMS[1],
        MONTH_PARAMS[2],
        MONTH_PARAMS[3],
    ],
    outputs: &[&HIT_COUNTS],
    example: "  mrpipe run hit-counts /var/log/nginx/access.log* --format clf --strip-query --output sqlite:hits.db\n  \
              mrpipe run hit-counts logs/access/ --month current --output sqlite:hits.db\n  \
              mrpipe run hit-counts logs/access/ --output out/",
    sample: &["sample_data/access/tsv"],
};

impl Job for HitCounts {
    fn info(&self) -> &'static JobInfo {
        &INFO
    }

    fn configure(&self, values: &Values) -> Result<Vec<Box<dyn Plan>>> {
        let format = if values.choice("format") == "clf" { Format::Clf } else { Format::Tsv(ACCESS_LOG) };
        let strip_query = values.flag("strip-query");
        let plan = |month| -> Box<dyn Plan> {
            Box::new(HitCountsPlan { format, count: CountHits { strip_query, month }, values: values.for_month(month) })
        };
        Ok(match values.months()? {
            None => vec![plan(None)],
            Some(months) => months.into_iter().map(|m| plan(Some(m))).collect(),
        })
    }
}

struct HitCountsPlan {
    format: Format,
    count: CountHits,
    values: Values,
}

/// Map/reduce step: `YYYY-MM \t url` -> hits.
#[derive(Clone)]
struct CountHits {
    strip_query: bool,
    /// Keep only this month, when set.
    month: Option<(i64, i64)>,
}

impl CountHits {
    fn count_month_mismatch(&self, y: i64, m: i64) -> bool {
        self.month.is_some_and(|want| want != (y, m))
    }
}

impl MapReduce for CountHits {
    type Key = String;
    type Acc = u64;

    fn input_columns(&self) -> Option<&'static [&'static str]> {
        Some(&["timestamp", "url"])
    }

    fn update(&self, batch: &RecordBatch, groups: &mut Combiner<String, u64>) -> Result<()> {
        let ts = columns::timestamp(batch, "timestamp")?;
        let url = columns::text(batch, "url")?;
        let mut key = String::with_capacity(96);
        for i in 0..batch.num_rows() {
            let (y, m) = year_month(ts.value(i));
            if self.count_month_mismatch(y, m) {
                continue;
            }
            let mut u = url.value(i);
            if self.strip_query {
                u = u.split_once('?').map_or(u, |(path, _)| path);
            }
            key.clear();
            push_year_month(&mut key, y, m);
            key.push('\t');
            key.push_str(u);
            *groups.entry(key.as_str()) += 1;
        }
        Ok(())
    }

    fn merge(&self, into: &mut u64, other: u64) {
        *into += other;
    }

    fn finish<'a>(&'a self, groups: Groups<'a, String, u64>) -> Result<Vec<Rows<'a>>> {
        let rows = rows_from_groups(&HIT_COUNTS, groups, |groups: &[(String, u64)]| {
            fn split(key: &str) -> (&str, &str) {
                split_key(key)
            }
            Ok(vec![
                table::text(groups.iter().map(|(key, _)| split(key).0)),
                table::text(groups.iter().map(|(key, _)| split(key).1)),
                table::bigint("hits", groups.iter().map(|(_, hits)| i128::from(*hits)))?,
            ])
        });
        Ok(vec![rows])
    }
}

impl Plan for HitCountsPlan {
    fn values(&self) -> &Values {
        &self.values
    }

    fn period(&self) -> Option<Period> {
        self.count.month.map(params::month_period)
    }

    fn twin(&self) -> Result<Twin> {
        Ok(Twin::new(&SQL, ("access", self.format), vec![&HIT_COUNTS], &INFO, &self.values))
    }

    fn run(&self, ctx: &RunContext) -> Result<JobOutput> {
        let (tables, read) = native::run(&self.count, &self.format, ctx)?;
        Ok(JobOutput { tables, read: read.into(), warnings: Vec::new() })
    }

    /// The months of a backfill from one read.
    fn run_with(&self, rest: &[&dyn Plan], ctx: &RunContext) -> Option<Result<Vec<JobOutput>>> {
        let counts: Vec<CountHits> = job::same_kind(self, rest)?.iter().map(|p| p.count.clone()).collect();
        let run = native::run_periods(&counts, &self.format, ctx);
        Some(run.map(|(tables, read)| JobOutput::shared(tables, read, Vec::new())))
    }
}
