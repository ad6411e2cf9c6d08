//! sales-rank: the past window's best-selling products per category (System Design
//! Primer, "Amazon's sales rank by category").
//!
//! Step 1 (map/reduce): sum `quantity` and `total_price` per `(category_id,
//! product_id)` over `as_of - window <= timestamp < as_of`. Step 2 (rank): within each
//! category order by `total_sold` desc, `product_id` asc, number the rows 1, 2, 3...
//! and keep ranks `1..=top`.

use arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use rayon::prelude::*;

use crate::engine::map_reduce;
use crate::error::{Error, Result};
use crate::job::{Job, JobInfo, JobOutput, Period, Plan, RunContext, SqlFile, Twin};
use crate::map::{Combiner, MapReduce, columns};
use crate::params;
use crate::read::fields::format_timestamp;
use crate::read::format::{Format, SALES};
use crate::table::Sort::Asc;
use crate::table::{self, MONEY, Table, TableSpec};

/// The sales-rank job.
pub struct SalesRank;

/// The output table.
pub static SALES_RANK: TableSpec = TableSpec {
    name: "sales_rank",
    columns: &[
        ("category_id", DataType::Utf8),
        ("rank", DataType::Int64),
        ("product_id", DataType::Utf8),
        ("total_sold", DataType::Int64),
        ("revenue", MONEY),
    ],
    indexes: &[&["category_id", "rank"], &["product_id"]],
    order: &[Asc("category_id"), Asc("rank")],
    notify_key: &[],
};

/// The job as SQL, for `--engine datafusion`.
static SQL: SqlFile = SqlFile { path: "jobs/sales_rank.sql", text: include_str!("sales_rank.sql") };

static INFO: JobInfo = JobInfo {
    name: "sales-rank",
    about: "Best-selling products per category over a time window",
    input: "TSV: timestamp product_id category_id quantity total_price seller_id buyer_id",
    outputs: &[&SALES_RANK],
    example: "  mrpipe run sales-rank logs/sales/ --as-of 2026-11-23 --top 10 --output sqlite:ranks.db\n  \
              mrpipe run sales-rank 'logs/*.tsv.gz' --window 24h --output -\n  \
              mrpipe run sales-rank logs/sales/ --from 2026-11-01 --to 2026-11-02 --every 1h --output out/hourly/",
};

/// Arguments of `mrpipe run sales-rank`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// End of the window, exclusive: now, a date (midnight UTC) or a timestamp.
    /// Repeat it to build several rankings, each published on its own.
    #[arg(long, default_value = "now", value_parser = params::parse_as_of, value_name = "WHEN", conflicts_with = "from")]
    as_of: Vec<i64>,
    /// Backfill rankings at --from, --from + --every, ... up to --to (inclusive).
    #[arg(long, value_parser = params::parse_as_of, value_name = "WHEN", requires_all = ["to", "every"])]
    from: Option<i64>,
    /// Last ranking instant of a backfill.
    #[arg(long, value_parser = params::parse_as_of, value_name = "WHEN", requires = "from")]
    to: Option<i64>,
    /// Step between backfilled rankings: 1h, 1d, ...
    #[arg(long, value_parser = params::parse_window, value_name = "LEN", requires = "from")]
    every: Option<i64>,
    /// Length of the window before --as-of: 7d, 24h, 30m, 90s.
    #[arg(long, default_value = "7d", value_parser = params::parse_window, value_name = "LEN")]
    window: i64,
    /// Keep ranks 1..=N per category (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    top: Option<u64>,
}

impl Job for SalesRank {
    type Args = Args;

    fn info(&self) -> &'static JobInfo {
        &INFO
    }

    fn configure(&self, args: Args) -> Result<Vec<Box<dyn Plan>>> {
        const MAX_RANKINGS: usize = 100_000;
        let mut instants = args.as_of.clone();
        if let (Some(from), Some(to), Some(every)) = (args.from, args.to, args.every) {
            if from > to {
                return Err(Error::Usage("--from is after --to".into()));
            }
            instants = (0..).map(|k| from + k * every).take_while(|&t| t <= to).take(MAX_RANKINGS + 1).collect();
        }
        instants.sort_unstable();
        instants.dedup();
        if instants.len() > MAX_RANKINGS {
            return Err(Error::Usage(format!("more than {MAX_RANKINGS} rankings requested; use a larger --every")));
        }
        let several = instants.len() > 1;
        Ok(instants
            .into_iter()
            .map(|t| {
                let sum = SumSales { from: t - args.window, to: t };
                Box::new(SalesRankPlan { sum, top: args.top, periodic: several }) as Box<dyn Plan>
            })
            .collect())
    }
}

struct SalesRankPlan {
    sum: SumSales,
    top: Option<u64>,
    /// Whether this ranking is one of several, published each on its own.
    periodic: bool,
}

/// Step 1: `(category_id, product_id)` -> units sold and revenue.
struct SumSales {
    from: i64,
    to: i64,
}

/// Partial sums of one product; i128 so that no input can overflow before the output check.
#[derive(Default)]
struct Sold {
    quantity: i128,
    cents: i128,
}

impl MapReduce for SumSales {
    /// `category_id \t product_id`: neither field can hold a TAB, so the split is unambiguous.
    type Key = String;
    type Acc = Sold;

    fn map(&self, batch: &arrow::array::RecordBatch, combiner: &mut Combiner<String, Sold>) -> Result<()> {
        let ts = columns::timestamp(batch, "timestamp")?;
        let product = columns::text(batch, "product_id")?;
        let category = columns::text(batch, "category_id")?;
        let quantity = columns::int64(batch, "quantity")?;
        let price = columns::money(batch, "total_price")?;
        let mut key = String::with_capacity(64);
        for i in 0..batch.num_rows() {
            let t = ts.value(i);
            if t < self.from || t >= self.to {
                continue;
            }
            key.clear();
            key.push_str(category.value(i));
            key.push('\t');
            key.push_str(product.value(i));
            let sold = combiner.entry(key.as_str());
            sold.quantity += i128::from(quantity.value(i));
            sold.cents += price.value(i);
        }
        Ok(())
    }

    fn merge(&self, into: &mut Sold, other: Sold) {
        into.quantity += other.quantity;
        into.cents += other.cents;
    }
}

impl Plan for SalesRankPlan {
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--as-of".to_string(),
            format_timestamp(self.sum.to),
            "--window".to_string(),
            params::format_window(self.sum.to - self.sum.from),
        ];
        if let Some(top) = self.top {
            args.extend(["--top".to_string(), top.to_string()]);
        }
        args
    }

    fn period(&self) -> Option<Period> {
        self.periodic.then(|| {
            let at = format_timestamp(self.sum.to);
            Period { label: at.replace(['-', ':'], ""), column: None, value: at }
        })
    }

    fn twin(&self) -> Result<Twin> {
        let instant = |t: i64| ScalarValue::TimestampMicrosecond(Some(t), Some("UTC".into()));
        let top = self.top.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        Ok(Twin {
            sql: &SQL,
            input: ("sales", Format::Tsv(SALES)),
            params: vec![
                ("from", instant(self.sum.from)),
                ("to", instant(self.sum.to)),
                ("top", ScalarValue::Int64(top)),
            ],
            tables: Vec::new(),
            functions: Vec::new(),
            outputs: vec![&SALES_RANK],
            warnings: Vec::new(),
            memory_limit: None,
        })
    }

    fn run(&self, ctx: &RunContext) -> Result<JobOutput> {
        let (sums, read) = map_reduce(&self.sum, &Format::Tsv(SALES), ctx)?;

        // Step 2: rank within each category.
        let mut rows: Vec<(&str, &str, &Sold)> = sums
            .iter()
            .map(|(key, sold)| {
                let (category, product) = key.split_once('\t').unwrap_or((key, ""));
                (category, product, sold)
            })
            .collect();
        rows.par_sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.2.quantity.cmp(&a.2.quantity)).then(a.1.cmp(b.1)));
        let mut ranked = Vec::with_capacity(rows.len());
        let mut rank = 0u64;
        for (i, row) in rows.iter().enumerate() {
            rank = if i > 0 && rows[i - 1].0 == row.0 { rank + 1 } else { 1 };
            if self.top.is_none_or(|top| rank <= top) {
                ranked.push((rank, row));
            }
        }

        let columns = vec![
            table::text(ranked.iter().map(|(_, r)| r.0)),
            table::bigint("rank", ranked.iter().map(|(rank, _)| i128::from(*rank)))?,
            table::text(ranked.iter().map(|(_, r)| r.1)),
            table::bigint("total_sold", ranked.iter().map(|(_, r)| r.2.quantity))?,
            table::money("revenue", ranked.iter().map(|(_, r)| r.2.cents))?,
        ];
        let table = Table::from_columns(&SALES_RANK, columns)?;
        Ok(JobOutput { tables: vec![table], read, warnings: Vec::new() })
    }
}
