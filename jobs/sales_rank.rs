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

use crate::engine::native;
use crate::error::{Error, Result};
use crate::job::spec::{Kind, ParamSpec, Value, Values};
use crate::job::{self, Job, JobInfo, JobOutput, Period, Plan, RunContext, SqlFile, Twin};
use crate::map::{Combiner, Groups, MapReduce, State, columns, split_key};
use crate::read::fields::format_timestamp;
use crate::read::format::{Format, SALES};
use crate::table::Sort::Asc;
use crate::table::{self, MONEY, Rows, TableSpec};

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
    params: &[
        ParamSpec::new("as-of", Kind::Whens, "WHEN", "End of the window, exclusive: now, a date (midnight UTC) or a timestamp. Repeat it to build several rankings, each published on its own.")
            .default("now")
            .conflicts(&["from"]),
        ParamSpec::new("from", Kind::When, "WHEN", "Backfill rankings at --from, --from + --every, ... up to --to (inclusive).")
            .requires(&["to", "every"]),
        ParamSpec::new("to", Kind::When, "WHEN", "Last ranking instant of a backfill.").requires(&["from"]),
        ParamSpec::new("every", Kind::Length, "LEN", "Step between backfilled rankings: 1h, 1d, ...").requires(&["from"]),
        ParamSpec::new("window", Kind::Length, "LEN", "Length of the window before --as-of: 7d, 24h, 30m, 90s.").default("7d"),
        ParamSpec::new("top", Kind::Count, "N", "Keep ranks 1..=N per category (default: all)."),
    ],
    outputs: &[&SALES_RANK],
    example: "  mrpipe run sales-rank logs/sales/ --as-of 2026-11-23 --top 10 --output sqlite:ranks.db\n  \
              mrpipe run sales-rank 'logs/*.tsv.gz' --window 24h --output -\n  \
              mrpipe run sales-rank logs/sales/ --from 2026-11-01 --to 2026-11-02 --every 1h --output out/hourly/",
    sample: &["sample_data/sales", "--as-of", "2026-11-23"],
};

impl Job for SalesRank {
    fn info(&self) -> &'static JobInfo {
        &INFO
    }

    fn configure(&self, values: &Values) -> Result<Vec<Box<dyn Plan>>> {
        const MAX_RANKINGS: usize = 100_000;
        let mut instants = values.whens("as-of").to_vec();
        if let (Some(from), Some(to), Some(every)) = (values.when("from"), values.when("to"), values.length("every")) {
            if from > to {
                return Err(Error::Usage("--from is after --to".into()));
            }
            // Checked: a huge --every ends the series instead of wrapping around.
            instants = (0..)
                .map_while(|k: i64| k.checked_mul(every).and_then(|d| from.checked_add(d)))
                .take_while(|&t| t <= to)
                .take(MAX_RANKINGS + 1)
                .collect();
        }
        instants.sort_unstable();
        instants.dedup();
        if instants.len() > MAX_RANKINGS {
            return Err(Error::Usage(format!("more than {MAX_RANKINGS} rankings requested; use a larger --every")));
        }
        let window = values.length("window").unwrap_or(7 * 86_400 * 1_000_000);
        let several = instants.len() > 1;
        instants
            .into_iter()
            .map(|t| {
                let start =
                    t.checked_sub(window).ok_or_else(|| Error::Usage("--window reaches before year 0".into()))?;
                let mut one = values.clone();
                one.set("as-of", Some(Value::Whens(vec![t])));
                for backfill in ["from", "to", "every"] {
                    one.set(backfill, None);
                }
                let sum = SumSales { from: start, to: t, top: values.count("top") };
                Ok(Box::new(SalesRankPlan { sum, periodic: several, values: one }) as Box<dyn Plan>)
            })
            .collect()
    }
}

struct SalesRankPlan {
    sum: SumSales,
    values: Values,
    /// Whether this ranking is one of several, published each on its own.
    periodic: bool,
}

/// Step 1: `(category_id, product_id)` -> units sold and revenue.
struct SumSales {
    from: i64,
    to: i64,
    /// Keep ranks `1..=top` of each category.
    top: Option<u64>,
}

/// Partial sums of one product; i128 so that no input can overflow before the output check.
#[derive(Default)]
struct Sold {
    quantity: i128,
    cents: i128,
}

impl Sold {
    fn add(&mut self, other: &Sold) {
        self.quantity += other.quantity;
        self.cents += other.cents;
    }
}

/// The sales columns [`sum_batch`] reads.
const SUMMED_COLUMNS: &[&str] = &["timestamp", "product_id", "category_id", "quantity", "total_price"];

/// Folds a batch of sales into `groups`, each keyed `prefix category_id \t product_id`:
/// `prefix(timestamp)` is the key's start for a sale that counts, `None` for one that
/// does not (outside the window).
fn sum_batch<'p>(
    batch: &arrow::array::RecordBatch,
    groups: &mut Combiner<String, Sold>,
    prefix: impl Fn(i64) -> Option<&'p str>,
) -> Result<()> {
    let ts = columns::timestamp(batch, "timestamp")?;
    let product = columns::text(batch, "product_id")?;
    let category = columns::text(batch, "category_id")?;
    let quantity = columns::int64(batch, "quantity")?;
    let price = columns::money(batch, "total_price")?;
    let mut key = String::with_capacity(64);
    for i in 0..batch.num_rows() {
        let Some(prefix) = prefix(ts.value(i)) else { continue };
        key.clear();
        key.push_str(prefix);
        key.push_str(category.value(i));
        key.push('\t');
        key.push_str(product.value(i));
        let sold = groups.entry(key.as_str());
        sold.quantity += i128::from(quantity.value(i));
        sold.cents += price.value(i);
    }
    Ok(())
}

impl State for Sold {
    fn encode(&self, out: &mut Vec<u8>) {
        self.quantity.encode(out);
        self.cents.encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Sold> {
        Ok(Sold { quantity: i128::decode(input)?, cents: i128::decode(input)? })
    }
}

impl MapReduce for SumSales {
    /// `category_id \t product_id`: neither field can hold a TAB, so the split is unambiguous.
    type Key = String;
    type Acc = Sold;

    fn input_columns(&self) -> Option<&'static [&'static str]> {
        Some(SUMMED_COLUMNS)
    }

    fn update(&self, batch: &arrow::array::RecordBatch, groups: &mut Combiner<String, Sold>) -> Result<()> {
        sum_batch(batch, groups, |t| (self.from <= t && t < self.to).then_some(""))
    }

    fn merge(&self, into: &mut Sold, other: Sold) {
        into.add(&other);
    }

    /// Step 2: rank within each category (the engine then orders by category and rank).
    fn finish<'a>(&'a self, groups: Groups<'a, String, Sold>) -> Result<Vec<Rows<'a>>> {
        let sums = groups.collect::<Result<Vec<_>>>()?;
        let rows = sums.iter().map(|(key, sold)| (split_key(key), sold)).collect();
        Ok(vec![ranking(rows, self.top)?])
    }
}

/// One ranking's rows from its products' sums, `((category, product), sold)` in any
/// order: ranked within each category by units sold (desc) then product id, ranks
/// `1..=top` kept.
fn ranking(mut rows: Vec<((&str, &str), &Sold)>, top: Option<u64>) -> Result<Rows<'static>> {
    rows.par_sort_unstable_by(|(a, a_sold), (b, b_sold)| {
        a.0.cmp(b.0).then(b_sold.quantity.cmp(&a_sold.quantity)).then(a.1.cmp(b.1))
    });
    let mut ranked = Vec::with_capacity(rows.len());
    let mut rank = 0u64;
    for (i, row) in rows.iter().enumerate() {
        rank = if i > 0 && rows[i - 1].0.0 == row.0.0 { rank + 1 } else { 1 };
        if top.is_none_or(|top| rank <= top) {
            ranked.push((rank, row));
        }
    }
    let columns = vec![
        table::text(ranked.iter().map(|(_, r)| r.0.0)),
        table::bigint("rank", ranked.iter().map(|(rank, _)| i128::from(*rank)))?,
        table::text(ranked.iter().map(|(_, r)| r.0.1)),
        table::bigint("total_sold", ranked.iter().map(|(_, r)| r.1.quantity))?,
        table::money("revenue", ranked.iter().map(|(_, r)| r.1.cents))?,
    ];
    Rows::from_columns(&SALES_RANK, columns)
}

/// The rankings of a backfill as one map/reduce over panes (Li et al., "No pane, no
/// gain", SIGMOD Record 2005): the rankings' window starts and ends cut time into
/// panes, each sale is summed once, into its pane, and each ranking adds up the panes
/// its window covers. Overlapping windows (7 daily rankings of a 7-day window) then
/// cost one sum per sale, not one per ranking.
struct SumPanes {
    /// Pane boundaries, ascending: pane `j` is `bounds[j] <= timestamp < bounds[j + 1]`.
    bounds: Vec<i64>,
    /// Whether some ranking covers pane `j` (with `--every` longer than `--window`, not all do).
    covered: Vec<bool>,
    /// Each ranking's panes, in the order of its plan.
    rankings: Vec<std::ops::Range<usize>>,
    /// Pane `j`'s key prefix, `j` in decimal then a TAB (made once, not per sale).
    prefixes: Vec<String>,
    top: Option<u64>,
}

impl SumPanes {
    /// The panes of the rankings `sums` (plans of one backfill: one `--top`).
    fn new(sums: &[&SumSales]) -> SumPanes {
        let mut bounds: Vec<i64> = sums.iter().flat_map(|s| [s.from, s.to]).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let at = |t: i64| bounds.partition_point(|&b| b < t);
        let rankings: Vec<_> = sums.iter().map(|s| at(s.from)..at(s.to)).collect();
        let mut covered = vec![false; bounds.len().saturating_sub(1)];
        for panes in &rankings {
            covered[panes.clone()].fill(true);
        }
        let prefixes = (0..covered.len()).map(|j| format!("{j}\t")).collect();
        SumPanes { bounds, covered, rankings, prefixes, top: sums.first().and_then(|s| s.top) }
    }
}

impl MapReduce for SumPanes {
    /// `pane \t category_id \t product_id`, the pane in decimal.
    type Key = String;
    type Acc = Sold;

    fn input_columns(&self) -> Option<&'static [&'static str]> {
        Some(SUMMED_COLUMNS)
    }

    fn update(&self, batch: &arrow::array::RecordBatch, groups: &mut Combiner<String, Sold>) -> Result<()> {
        sum_batch(batch, groups, |t| {
            // The pane holding the sale: the last boundary at or before it.
            let pane = self.bounds.partition_point(|&b| b <= t).checked_sub(1)?;
            self.covered.get(pane).copied().unwrap_or(false).then(|| self.prefixes[pane].as_str())
        })
    }

    fn merge(&self, into: &mut Sold, other: Sold) {
        into.add(&other);
    }

    /// One table per ranking, in the rankings' order.
    fn finish<'a>(&'a self, groups: Groups<'a, String, Sold>) -> Result<Vec<Rows<'a>>> {
        let sums = groups.collect::<Result<Vec<_>>>()?;
        let mut by_pane: Vec<Vec<(&str, &Sold)>> = vec![Vec::new(); self.covered.len()];
        for (key, sold) in &sums {
            let (pane, product_key) = split_key(key);
            if let Some(pane) = pane.parse::<usize>().ok().and_then(|p| by_pane.get_mut(p)) {
                pane.push((product_key, sold));
            }
        }
        self.rankings
            .iter()
            .map(|panes| {
                let mut totals: hashbrown::HashMap<&str, Sold> = hashbrown::HashMap::new();
                for (product_key, sold) in by_pane[panes.clone()].iter().flatten() {
                    totals.entry(product_key).or_default().add(sold);
                }
                ranking(totals.iter().map(|(key, sold)| (split_key(key), sold)).collect(), self.top)
            })
            .collect()
    }
}

impl Plan for SalesRankPlan {
    fn values(&self) -> &Values {
        &self.values
    }

    fn period(&self) -> Option<Period> {
        self.periodic.then(|| {
            let at = format_timestamp(self.sum.to);
            Period { key: "as_of", label: at.replace(['-', ':'], ""), column: None, value: at }
        })
    }

    fn twin(&self) -> Result<Twin> {
        let instant = |t: i64| ScalarValue::TimestampMicrosecond(Some(t), Some("UTC".into()));
        let mut twin = Twin::new(&SQL, ("sales", Format::Tsv(SALES)), vec![&SALES_RANK], &INFO, &self.values);
        twin.params.extend([
            ("window_start".to_string(), instant(self.sum.from)),
            ("window_end".to_string(), instant(self.sum.to)),
        ]);
        Ok(twin)
    }

    fn run(&self, ctx: &RunContext) -> Result<JobOutput> {
        let (tables, read) = native::run(&self.sum, &Format::Tsv(SALES), ctx)?;
        Ok(JobOutput { tables, read: read.into(), warnings: Vec::new() })
    }

    /// The rankings of a backfill from one read, summed by panes ([`SumPanes`]).
    fn run_with(&self, rest: &[&dyn Plan], ctx: &RunContext) -> Option<Result<Vec<JobOutput>>> {
        let sums: Vec<&SumSales> = job::same_kind(self, rest)?.iter().map(|p| &p.sum).collect();
        let panes = SumPanes::new(&sums);
        let run = native::run(&panes, &Format::Tsv(SALES), ctx).map(|(tables, read)| {
            // One table per ranking (none when the read stopped at the bad-line budget).
            let mut tables = tables.into_iter();
            let periods = sums.iter().map(|_| tables.next().into_iter().collect()).collect();
            JobOutput::shared(periods, read, Vec::new())
        });
        Some(run)
    }
}
