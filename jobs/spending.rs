//! spending: monthly spending per user and category, with budget alerts (System
//! Design Primer, "Mint.com", SpendingByCategory).
//!
//! Before the map, a [`Categorizer`] is built from the seller map (seed) and the
//! crowd overrides. Map/reduce: `(user_id, month, category)` -> exact sum of
//! `amount`. Then, when incomes or budget overrides are given, each
//! user-month-category with a budget is checked: >= 80% `near`, >= 100% `exceeded`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, RecordBatch};
use arrow::datatypes::DataType;

use crate::engine::native;
use crate::error::Result;
use crate::job::spec::{Kind, MONTH_PARAMS, ParamSpec, Values};
use crate::job::{self, Job, JobInfo, JobOutput, Period, Plan, RunContext, SqlFile, Twin};
use crate::map::{Combiner, Groups, MapReduce, columns, split_key};
use crate::params;
use crate::read::fields::{parse_money, push_year_month, year_month};
use crate::read::format::{Format, TRANSACTIONS, quote};
use crate::read::side::{SideRow, parse_side, read_side_file};
use crate::table::Sort::Asc;
use crate::table::{self, MONEY, Rows, TableSpec};

/// The spending job.
pub struct Spending;

/// The seed seller map used when `--sellers` is not given.
const BUILTIN_SELLERS: &str = include_str!("../sample_data/spending/sellers.tsv");

/// Default monthly budget per category, in percent of income.
const BUDGET_SHARES: &[(&str, i128)] = &[("housing", 40), ("food", 20), ("gas", 10), ("shopping", 20)];

/// The output tables.
pub static MONTHLY_SPENDING: TableSpec = TableSpec {
    name: "monthly_spending",
    columns: &[("user_id", DataType::Utf8), ("month", DataType::Utf8), ("category", DataType::Utf8), ("amount", MONEY)],
    indexes: &[&["user_id", "month"], &["month"]],
    order: &[Asc("user_id"), Asc("month"), Asc("category")],
    notify_key: &[],
};
pub static BUDGET_ALERTS: TableSpec = TableSpec {
    name: "budget_alerts",
    columns: &[
        ("user_id", DataType::Utf8),
        ("month", DataType::Utf8),
        ("category", DataType::Utf8),
        ("amount", MONEY),
        ("budget", MONEY),
        ("status", DataType::Utf8),
    ],
    indexes: &[&["user_id", "month"], &["month"]],
    order: &[Asc("user_id"), Asc("month"), Asc("category")],
    // A user is told once per (user, month, category, status): `near` turning `exceeded` is news.
    notify_key: &["user_id", "month", "category", "status"],
};

/// The job as SQL, for `--engine datafusion`.
static SQL: SqlFile = SqlFile { path: "jobs/spending.sql", text: include_str!("spending.sql") };

static INFO: JobInfo = JobInfo {
    name: "spending",
    about: "Monthly spending per user and category, with budget alerts",
    input: "TSV: user_id timestamp seller amount (+ seller map, crowd overrides, incomes, budget overrides)",
    params: &[
        ParamSpec::new(
            "sellers",
            Kind::Path,
            "FILE",
            "Seller -> category map, TSV `seller category` (default: the built-in seed map).",
        ),
        ParamSpec::new(
            "overrides",
            Kind::Path,
            "FILE",
            "Crowd overrides, TSV `user_id seller category`; used for sellers missing from the map.",
        ),
        MONTH_PARAMS[0],
        MONTH_PARAMS[1],
        MONTH_PARAMS[2],
        MONTH_PARAMS[3],
        ParamSpec::new(
            "incomes",
            Kind::Path,
            "FILE",
            "Monthly incomes, TSV `user_id monthly_income`; enables budget alerts.",
        ),
        ParamSpec::new(
            "budget-overrides",
            Kind::Path,
            "FILE",
            "Budget overrides, TSV `user_id category amount`; enables budget alerts.",
        ),
    ],
    outputs: &[&MONTHLY_SPENDING, &BUDGET_ALERTS],
    example: "  mrpipe run spending logs/transactions/ --month current --incomes incomes.tsv --output sqlite:mint.db\n  \
              mrpipe run spending logs/transactions/ --from 2026-01 --to 2026-10 --skip-unchanged -o sqlite:mint.db\n  \
              mrpipe run spending tx.tsv --sellers sellers.tsv --overrides crowd.tsv --output -",
    sample: &["sample_data/spending/transactions", "--incomes", "sample_data/spending/incomes.tsv"],
};

/// The side-file options, each naming a TSV file.
const SIDE_FILES: [&str; 4] = ["sellers", "overrides", "incomes", "budget-overrides"];

impl Job for Spending {
    fn info(&self) -> &'static JobInfo {
        &INFO
    }

    fn configure(&self, values: &Values) -> Result<Vec<Box<dyn Plan>>> {
        for path in SIDE_FILES.iter().filter_map(|f| values.path(f)) {
            if !path.is_file() {
                return Err(crate::error::Error::Usage(format!("side file '{}' does not exist", path.display())));
            }
        }
        let plan = |month| -> Box<dyn Plan> { Box::new(SpendingPlan { values: values.for_month(month), month }) };
        Ok(match values.months()? {
            None => vec![plan(None)],
            Some(months) => months.into_iter().map(|m| plan(Some(m))).collect(),
        })
    }
}

struct SpendingPlan {
    values: Values,
    month: Option<(i64, i64)>,
}

impl SpendingPlan {
    /// Whether budgets are given, so the run writes budget alerts.
    fn alerts(&self) -> bool {
        self.values.path("incomes").is_some() || self.values.path("budget-overrides").is_some()
    }

    /// The categorizer and, when there are budgets, the budgets; with the warnings of
    /// the side-file rows they skipped.
    fn load_side_files(&self) -> Result<(Categorizer, Option<Budgets>, Vec<String>)> {
        let v = &self.values;
        let mut warnings = Vec::new();
        let categorizer = Categorizer::load(v.path("sellers"), v.path("overrides"), &mut warnings)?;
        let budgets = match self.alerts() {
            true => Some(Budgets::load(v.path("incomes"), v.path("budget-overrides"), &mut warnings)?),
            false => None,
        };
        Ok((categorizer, budgets, warnings))
    }
}

/// Seller -> category, from the seed map, then the crowd's favourite, else `uncategorized`.
#[derive(Debug, Default)]
pub struct Categorizer {
    /// Looked up once per transaction: hashbrown's foldhash, not std's SipHash.
    categories: hashbrown::HashMap<String, String>,
}

impl Categorizer {
    /// Builds the categorizer; skipped side-file rows add warnings.
    pub fn load(sellers: Option<&Path>, overrides: Option<&Path>, warnings: &mut Vec<String>) -> Result<Categorizer> {
        let seed = seller_rows(sellers, warnings)?;
        let mut categories = hashbrown::HashMap::<String, String>::new();
        for row in seed {
            let seller = row.fields[0].trim_matches(' ').to_string();
            let category = row.fields[1].trim_matches(' ').to_string();
            // A seller listed twice takes the bytewise smallest category.
            categories
                .entry(seller)
                .and_modify(|c| {
                    if category < *c {
                        c.clone_from(&category)
                    }
                })
                .or_insert(category);
        }
        if let Some(path) = overrides {
            // seller -> category -> distinct voters
            let mut votes: BTreeMap<String, BTreeMap<String, HashSet<String>>> = BTreeMap::new();
            for row in crowd_rows(Some(path), warnings)? {
                let seller = row.fields[1].trim_matches(' ').to_string();
                let category = row.fields[2].trim_matches(' ').to_string();
                votes.entry(seller).or_default().entry(category).or_default().insert(row.fields[0].clone());
            }
            for (seller, by_category) in votes {
                if categories.contains_key(&seller) {
                    continue;
                }
                // Most voters wins; BTreeMap order makes the bytewise smallest category win ties.
                let mut best: Option<(&String, usize)> = None;
                for (category, voters) in &by_category {
                    if best.is_none_or(|(_, n)| voters.len() > n) {
                        best = Some((category, voters.len()));
                    }
                }
                if let Some((category, _)) = best {
                    categories.insert(seller, category.clone());
                }
            }
        }
        Ok(Categorizer { categories })
    }

    /// The category of a seller (surrounding spaces ignored).
    pub fn category(&self, seller: &str) -> &str {
        self.categories.get(seller.trim_matches(' ')).map_or("uncategorized", String::as_str)
    }
}

/// The seed map's rows: `seller category`.
fn seller_rows(sellers: Option<&Path>, warnings: &mut Vec<String>) -> Result<Vec<SideRow>> {
    Ok(match sellers {
        Some(path) => read_side_file(path, "seller", 2, warnings)?,
        None => parse_side(BUILTIN_SELLERS.as_bytes(), "built-in seller map", "seller", 2, warnings),
    })
}

/// The crowd overrides' rows: `user_id seller category`.
fn crowd_rows(overrides: Option<&Path>, warnings: &mut Vec<String>) -> Result<Vec<SideRow>> {
    overrides.map_or(Ok(Vec::new()), |path| read_side_file(path, "user_id", 3, warnings))
}

/// The rows of a side file whose last field is an amount, with the amount in cents;
/// a row with a bad amount is skipped with a warning.
fn money_rows(
    path: Option<&Path>,
    header: &str,
    fields: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<(SideRow, i128)>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in read_side_file(path, header, fields, warnings)? {
        let amount = &row.fields[fields - 1];
        match parse_money(amount.as_bytes()) {
            Some(cents) => out.push((row, i128::from(cents))),
            None => {
                warnings.push(format!("{}:{}: bad amount {}; row skipped", path.display(), row.line, quote(amount)))
            }
        }
    }
    Ok(out)
}

/// Incomes' rows: `user_id monthly_income`.
fn income_rows(incomes: Option<&Path>, warnings: &mut Vec<String>) -> Result<Vec<(SideRow, i128)>> {
    money_rows(incomes, "user_id", 2, warnings)
}

/// Budget overrides' rows: `user_id category amount`.
fn budget_override_rows(overrides: Option<&Path>, warnings: &mut Vec<String>) -> Result<Vec<(SideRow, i128)>> {
    money_rows(overrides, "user_id", 3, warnings)
}

/// Map/reduce step: `user_id \t YYYY-MM \t category` -> cents; then each
/// user-month-category checked against its budget, when there are budgets.
struct SumSpending<'a> {
    categorizer: &'a Categorizer,
    month: Option<(i64, i64)>,
    budgets: Option<&'a Budgets>,
}

impl MapReduce for SumSpending<'_> {
    type Key = String;
    type Acc = i128;

    fn update(&self, batch: &RecordBatch, groups: &mut Combiner<String, i128>) -> Result<()> {
        let user = columns::text(batch, "user_id")?;
        let ts = columns::timestamp(batch, "timestamp")?;
        let seller = columns::text(batch, "seller")?;
        let amount = columns::money(batch, "amount")?;
        let mut key = String::with_capacity(64);
        for i in 0..batch.num_rows() {
            let (y, m) = year_month(ts.value(i));
            if self.month.is_some_and(|want| want != (y, m)) {
                continue;
            }
            key.clear();
            key.push_str(user.value(i));
            key.push('\t');
            push_year_month(&mut key, y, m);
            key.push('\t');
            key.push_str(self.categorizer.category(seller.value(i)));
            *groups.entry(key.as_str()) += amount.value(i);
        }
        Ok(())
    }

    fn merge(&self, into: &mut i128, other: i128) {
        *into += other;
    }

    fn finish<'a>(&'a self, groups: Groups<'a, String, i128>) -> Result<Vec<Rows<'a>>> {
        let sums = groups.collect::<Result<Vec<_>>>()?;
        let rows: Vec<Spent> = sums
            .iter()
            .map(|(key, cents)| {
                let (user, rest) = split_key(key);
                let (month, category) = split_key(rest);
                Spent { user, month, category, cents: *cents }
            })
            .collect();
        let spending = Rows::from_columns(
            &MONTHLY_SPENDING,
            vec![
                table::text(rows.iter().map(|r| r.user)),
                table::text(rows.iter().map(|r| r.month)),
                table::text(rows.iter().map(|r| r.category)),
                table::money("amount", rows.iter().map(|r| r.cents))?,
            ],
        )?;
        let mut tables = vec![spending];
        if let Some(budgets) = self.budgets {
            let alerts: Vec<(&Spent, i128, &str)> = rows
                .iter()
                .filter_map(|r| {
                    let budget = budgets.budget(r.user, r.category)?;
                    let status = if r.cents >= budget {
                        "exceeded"
                    } else if r.cents * 100 >= budget * 80 {
                        "near"
                    } else {
                        return None;
                    };
                    Some((r, budget, status))
                })
                .collect();
            tables.push(Rows::from_columns(
                &BUDGET_ALERTS,
                vec![
                    table::text(alerts.iter().map(|a| a.0.user)),
                    table::text(alerts.iter().map(|a| a.0.month)),
                    table::text(alerts.iter().map(|a| a.0.category)),
                    table::money("amount", alerts.iter().map(|a| a.0.cents))?,
                    table::money("budget", alerts.iter().map(|a| a.1))?,
                    table::text(alerts.iter().map(|a| a.2)),
                ],
            )?);
        }
        Ok(tables)
    }
}

/// A row of `monthly_spending`.
struct Spent<'a> {
    user: &'a str,
    month: &'a str,
    category: &'a str,
    cents: i128,
}

/// Budgets per (user, category) in cents.
struct Budgets {
    incomes: HashMap<String, i128>,
    /// user -> category -> budget: looked up by `&str`s, once per group.
    overrides: HashMap<String, HashMap<String, i128>>,
}

impl Budgets {
    fn load(incomes: Option<&Path>, overrides: Option<&Path>, warnings: &mut Vec<String>) -> Result<Budgets> {
        let incomes = income_rows(incomes, warnings)?.into_iter().map(|(r, c)| (r.fields[0].clone(), c)).collect();
        let mut by_user: HashMap<String, HashMap<String, i128>> = HashMap::new();
        for (row, cents) in budget_override_rows(overrides, warnings)? {
            // A later row of the same user and category wins, as a map built in file order does.
            by_user
                .entry(row.fields[0].clone())
                .or_default()
                .insert(row.fields[1].trim_matches(' ').to_string(), cents);
        }
        Ok(Budgets { incomes, overrides: by_user })
    }

    /// The monthly budget of a user's category, if there is one.
    fn budget(&self, user: &str, category: &str) -> Option<i128> {
        if let Some(b) = self.overrides.get(user).and_then(|by_category| by_category.get(category)) {
            return Some(*b);
        }
        let income = self.incomes.get(user)?;
        let share = BUDGET_SHARES.iter().find(|(c, _)| *c == category)?.1;
        Some(div_round_half_away(income * share, 100))
    }
}

/// A side table for the SQL twin.
fn side_table(names: &[&str], columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_from_iter(names.iter().zip(columns)).map_err(|e| crate::error::Error::sink("side table", e))
}

/// `n / d` rounded half away from zero (d > 0).
fn div_round_half_away(n: i128, d: i128) -> i128 {
    let q = (n.abs() + d / 2) / d;
    if n < 0 { -q } else { q }
}

impl Plan for SpendingPlan {
    fn values(&self) -> &Values {
        &self.values
    }

    fn period(&self) -> Option<Period> {
        self.month.map(params::month_period)
    }

    fn side_files(&self) -> Vec<PathBuf> {
        SIDE_FILES.iter().filter_map(|f| self.values.path(f)).map(PathBuf::from).collect()
    }

    fn twin(&self) -> Result<Twin> {
        let v = &self.values;
        let mut warnings = Vec::new();
        let text = |rows: &[SideRow], i: usize| table::text(rows.iter().map(|r| r.fields[i].as_str()));
        let sellers = seller_rows(v.path("sellers"), &mut warnings)?;
        let crowd = crowd_rows(v.path("overrides"), &mut warnings)?;
        let mut tables = vec![
            ("sellers", side_table(&["seller", "category"], vec![text(&sellers, 0), text(&sellers, 1)])?),
            (
                "crowd_overrides",
                side_table(
                    &["user_id", "seller", "category"],
                    vec![text(&crowd, 0), text(&crowd, 1), text(&crowd, 2)],
                )?,
            ),
        ];
        let mut outputs = vec![&MONTHLY_SPENDING];
        if self.alerts() {
            let money = |what, rows: &[(SideRow, i128)]| table::money(what, rows.iter().map(|r| r.1));
            let line = |rows: &[(SideRow, i128)]| table::bigint("line", rows.iter().map(|r| i128::from(r.0.line)));
            let field = |rows: &[(SideRow, i128)], i: usize| table::text(rows.iter().map(|r| r.0.fields[i].as_str()));
            let incomes = income_rows(v.path("incomes"), &mut warnings)?;
            let overrides = budget_override_rows(v.path("budget-overrides"), &mut warnings)?;
            let shares = Decimal128Array::from_iter_values(BUDGET_SHARES.iter().map(|s| s.1))
                .with_precision_and_scale(3, 2)
                .map_err(|e| crate::error::Error::sink("budget_shares", e))?;
            tables.extend([
                (
                    "incomes",
                    side_table(
                        &["line", "user_id", "monthly_income"],
                        vec![line(&incomes)?, field(&incomes, 0), money("monthly_income", &incomes)?],
                    )?,
                ),
                (
                    "budget_overrides",
                    side_table(
                        &["line", "user_id", "category", "amount"],
                        vec![
                            line(&overrides)?,
                            field(&overrides, 0),
                            field(&overrides, 1),
                            money("amount", &overrides)?,
                        ],
                    )?,
                ),
                (
                    "budget_shares",
                    side_table(
                        &["category", "share"],
                        vec![table::text(BUDGET_SHARES.iter().map(|s| s.0)), Arc::new(shares)],
                    )?,
                ),
            ]);
            outputs.push(&BUDGET_ALERTS);
        }
        let mut twin = Twin::new(&SQL, ("transactions", Format::Tsv(TRANSACTIONS)), outputs, &INFO, &self.values);
        twin.tables = tables;
        twin.warnings = warnings;
        Ok(twin)
    }

    fn run(&self, ctx: &RunContext) -> Result<JobOutput> {
        let (categorizer, budgets, warnings) = self.load_side_files()?;
        let step = SumSpending { categorizer: &categorizer, month: self.month, budgets: budgets.as_ref() };
        let (tables, read) = native::run(&step, &Format::Tsv(TRANSACTIONS), ctx)?;
        Ok(JobOutput { tables, read: read.into(), warnings })
    }

    /// The months of a backfill from one read, the side files loaded once.
    fn run_with(&self, rest: &[&dyn Plan], ctx: &RunContext) -> Option<Result<Vec<JobOutput>>> {
        let months: Vec<_> = job::same_kind(self, rest)?.iter().map(|p| p.month).collect();
        Some(self.load_side_files().and_then(|(categorizer, budgets, warnings)| {
            let steps: Vec<SumSpending> = months
                .into_iter()
                .map(|month| SumSpending { categorizer: &categorizer, month, budgets: budgets.as_ref() })
                .collect();
            let (tables, read) = native::run_periods(&steps, &Format::Tsv(TRANSACTIONS), ctx)?;
            Ok(JobOutput::shared(tables, read, warnings))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_round_half_away_from_zero() {
        assert_eq!(div_round_half_away(12_345 * 10, 100), 1_235); // 123.45 * 10% = 12.345 -> 12.35
        assert_eq!(div_round_half_away(-12_345 * 10, 100), -1_235);
        assert_eq!(div_round_half_away(12_344 * 10, 100), 1_234);
    }

    #[test]
    fn crowd_votes_count_distinct_users_and_ties_take_smallest() {
        let dir = tempfile::tempdir().unwrap();
        let sellers = dir.path().join("sellers.tsv");
        let crowd = dir.path().join("crowd.tsv");
        std::fs::write(&sellers, "seller\tcategory\nExxon\tgas\nExxon\tauto\n").unwrap();
        std::fs::write(
            &crowd,
            "user_id\tseller\tcategory\nu1\tCafe\tfood\nu1\tCafe\tfood\nu2\tCafe\tshopping\nu3\tBar\tb\nu4\tBar\ta\nu5\tExxon\tfood\n",
        )
        .unwrap();
        let mut warnings = Vec::new();
        let c = Categorizer::load(Some(&sellers), Some(&crowd), &mut warnings).unwrap();
        assert_eq!(c.category(" Exxon "), "auto");
        assert_eq!(c.category("Cafe"), "food"); // u1 counted once: 1 vs 1, 'food' < 'shopping'
        assert_eq!(c.category("Bar"), "a");
        assert_eq!(c.category("Nowhere"), "uncategorized");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
