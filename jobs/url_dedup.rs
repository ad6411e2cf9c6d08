//! url-dedup: distinct (or exactly-once) URLs for a crawler, larger than memory
//! (System Design Primer, "Web crawler", RemoveDuplicateUrls).
//!
//! Map/reduce: url -> occurrences. `--mode distinct` keeps every url once,
//! `--mode singletons` only urls seen exactly once. With `--memory-limit`, map tasks
//! spill their combiners to hash partitions on disk when they outgrow their share,
//! each partition is counted and sorted on its own, and the sorted runs are merged
//! into the output as a stream, so neither input nor output has to fit in memory.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::scalar::ScalarValue;
use rayon::prelude::*;

use crate::engine::{ReadSummary, map_reduce, split_outcome};
use crate::error::{Error, Result};
use crate::job::spec::{Kind, ParamSpec, Values};
use crate::job::{Job, JobInfo, JobOutput, Plan, RunContext, SqlFile, Twin};
use crate::map::{Combiner, MapReduce, columns};
use crate::read::format::Format;
use crate::read::input::Encoding;
use crate::read::read_fold;
use crate::shuffle::spill::SpillWriter;
use crate::table::Sort::Asc;
use crate::table::{self, Batches, OUTPUT_BATCH_ROWS, Table, TableSpec};

/// The url-dedup job.
pub struct UrlDedup;

/// The job as SQL, for `--engine datafusion`.
static SQL: SqlFile = SqlFile { path: "jobs/url_dedup.sql", text: include_str!("url_dedup.sql") };

static INFO: JobInfo = JobInfo {
    name: "url-dedup",
    about: "Distinct or exactly-once URLs of a crawl list, larger than memory",
    input: "one URL per line (links_to_crawl); surrounding spaces and tabs trimmed",
    params: &[
        ParamSpec::new(
            "mode",
            Kind::Choice(&["distinct", "singletons"]),
            "MODE",
            "Which URLs to keep: distinct (every URL once, sort -u) or singletons (URLs seen exactly once, uniq -u).",
        )
        .default("distinct"),
        ParamSpec::new(
            "normalize",
            Kind::Flag,
            "",
            "Lower-case scheme and host, drop default ports, fragments and an empty query.",
        ),
        ParamSpec::new(
            "memory-limit",
            Kind::Size,
            "SIZE",
            "Bound the memory of the counting tables (e.g. 512MiB); spills to disk beyond it.",
        ),
    ],
    outputs: &[&URLS],
    example: "  mrpipe run url-dedup links/ --normalize --memory-limit 512MiB --output out/\n  \
              mrpipe run url-dedup links.txt.zst --mode singletons --output -",
    sample: &["sample_data/urls"],
};

/// Which URLs to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every URL once (`sort -u`).
    Distinct,
    /// Only URLs that occur exactly once (`sort | uniq -u`).
    Singletons,
}

impl Job for UrlDedup {
    fn info(&self) -> &'static JobInfo {
        &INFO
    }

    fn configure(&self, values: &Values) -> Result<Vec<Box<dyn Plan>>> {
        Ok(vec![Box::new(UrlDedupPlan {
            count: CountUrls { normalize: values.flag("normalize") },
            mode: if values.choice("mode") == "singletons" { Mode::Singletons } else { Mode::Distinct },
            memory_limit: values.size("memory-limit"),
            values: values.clone(),
        })])
    }
}

struct UrlDedupPlan {
    count: CountUrls,
    mode: Mode,
    memory_limit: Option<u64>,
    values: Values,
}

/// Map/reduce step: url -> occurrences.
struct CountUrls {
    normalize: bool,
}

impl CountUrls {
    fn each_url(&self, batch: &RecordBatch, mut f: impl FnMut(&str)) -> Result<()> {
        let urls = columns::text(batch, "url")?;
        let mut buf = String::new();
        for i in 0..batch.num_rows() {
            let url = urls.value(i);
            if self.normalize {
                normalize_into(url, &mut buf);
                f(&buf);
            } else {
                f(url);
            }
        }
        Ok(())
    }
}

impl MapReduce for CountUrls {
    type Key = String;
    type Acc = u64;

    fn map(&self, batch: &RecordBatch, combiner: &mut Combiner<String, u64>) -> Result<()> {
        self.each_url(batch, |url| *combiner.entry(url) += 1)
    }

    fn merge(&self, into: &mut u64, other: u64) {
        *into += other;
    }
}

/// Estimated bytes a combiner entry costs: the key, the count, and table overhead.
fn entry_cost(key: &str) -> u64 {
    key.len() as u64 + 56
}

/// The output table.
pub static URLS: TableSpec = TableSpec {
    name: "urls",
    columns: &[("url", DataType::Utf8), ("occurrences", DataType::Int64)],
    indexes: &[],
    order: &[Asc("url")],
    notify_key: &[],
};

impl UrlDedupPlan {
    fn keep(&self, count: u64) -> bool {
        self.mode == Mode::Distinct || count == 1
    }

    fn in_memory(&self, ctx: &RunContext) -> Result<(Table, ReadSummary)> {
        let (counts, read) = map_reduce(&self.count, &Format::UrlList, ctx)?;
        let mut rows: Vec<(String, u64)> = counts.into_iter().filter(|(_, c)| self.keep(*c)).collect();
        rows.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let columns = vec![
            table::text(rows.iter().map(|r| r.0.as_str())),
            table::bigint("occurrences", rows.iter().map(|r| i128::from(r.1)))?,
        ];
        Ok((Table::from_columns(&URLS, columns)?, read))
    }

    fn spilling(&self, ctx: &RunContext, limit: u64) -> Result<(Table, ReadSummary)> {
        let threads = rayon::current_num_threads() as u64;
        let estimated_input: u64 = ctx
            .inputs
            .iter()
            .map(|f| match f.encoding {
                Encoding::Plain => std::fs::metadata(&f.path).map_or(0, |m| m.len()),
                // Compressed text of URLs is typically 4-8x smaller; a stream's size is unknown.
                Encoding::Gzip | Encoding::Zstd => std::fs::metadata(&f.path).map_or(0, |m| m.len() * 8),
                Encoding::Stdin | Encoding::Stream => limit * 16,
            })
            .sum();
        // Reduce tasks count one partition each in memory, `threads` at a time.
        let partitions = ((estimated_input * 2 * threads).div_ceil(limit).clamp(threads.max(2), 4096) as usize)
            .min(crate::shuffle::spill::max_open_partitions());
        let task_budget = (limit / (threads * 2)).max(1);
        let spill = SpillWriter::new(&ctx.temp_dir, partitions)?;

        ctx.progress.set_message("map");
        let outcome = read_fold(
            &ctx.inputs,
            &Format::UrlList,
            &ctx.progress,
            || (Combiner::<String, u64>::default(), 0u64),
            |(combiner, bytes), batch| {
                let mut full = false;
                self.count.each_url(&batch, |url| {
                    let count = combiner.entry(url);
                    if *count == 0 {
                        *bytes += entry_cost(url);
                        full |= *bytes > task_budget;
                    }
                    *count += 1;
                })?;
                if full {
                    spill.drain(combiner)?;
                    *bytes = 0;
                }
                Ok(())
            },
        )?;
        let (states, summary) = split_outcome(outcome);
        for (mut combiner, _) in states {
            spill.drain(&mut combiner)?;
        }
        let parts = spill.finish()?;

        ctx.progress.set_message("reduce");
        let keep = |c: u64| self.keep(c);
        let runs: Vec<_> =
            (0..parts.len()).into_par_iter().map(|p| parts.reduce_to_run(p, &keep)).collect::<Result<_>>()?;
        let merged = parts.merge_runs(&runs)?;
        let batches: Batches = Box::new(BatchStream { rows: merged, schema: URLS.schema() });
        let table = Table { name: URLS.name, schema: URLS.schema(), indexes: URLS.indexes, batches };
        Ok((table, summary))
    }
}

/// Cuts a sorted (url, count) stream into fixed-size record batches.
struct BatchStream<I> {
    rows: I,
    schema: SchemaRef,
}

impl<I: Iterator<Item = Result<(String, u64)>>> Iterator for BatchStream<I> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        let mut urls = Vec::with_capacity(OUTPUT_BATCH_ROWS);
        let mut counts = Vec::with_capacity(OUTPUT_BATCH_ROWS);
        for row in self.rows.by_ref() {
            match row {
                Ok((url, count)) => {
                    urls.push(url);
                    counts.push(count as i64);
                }
                Err(e) => return Some(Err(e)),
            }
            if urls.len() == OUTPUT_BATCH_ROWS {
                break;
            }
        }
        if urls.is_empty() {
            return None;
        }
        let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(urls)), Arc::new(Int64Array::from(counts))];
        Some(RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| Error::sink("urls", e)))
    }
}

impl Plan for UrlDedupPlan {
    fn values(&self) -> &Values {
        &self.values
    }

    fn twin(&self) -> Result<Twin> {
        let mut twin = Twin::new(&SQL, ("links_to_crawl", Format::UrlList), vec![&URLS], &INFO, &self.values);
        twin.functions.push(normalize_url_function());
        twin.memory_limit = self.memory_limit;
        Ok(twin)
    }

    fn run(&self, ctx: &RunContext) -> Result<JobOutput> {
        let (table, read) = match self.memory_limit {
            Some(limit) => self.spilling(ctx, limit)?,
            None => self.in_memory(ctx)?,
        };
        Ok(JobOutput { tables: vec![table], read, warnings: Vec::new() })
    }
}

/// `normalize_url(url)`: [`normalize_into`] as a SQL function, for the job's SQL twin.
fn normalize_url_function() -> ScalarUDF {
    let normalize = |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let mut buf = String::new();
        let mut one = |url: &str| {
            normalize_into(url, &mut buf);
            buf.clone()
        };
        match args {
            [ColumnarValue::Scalar(ScalarValue::Utf8(url))] => {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(url.as_deref().map(&mut one))))
            }
            [ColumnarValue::Array(urls)] => {
                let urls = urls.as_string::<i32>();
                let mut out = StringBuilder::with_capacity(urls.len(), urls.value_data().len());
                for url in urls {
                    out.append_option(url.map(|u| {
                        normalize_into(u, &mut buf);
                        buf.as_str()
                    }));
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
            _ => datafusion::common::exec_err!("normalize_url takes one text argument"),
        }
    };
    create_udf("normalize_url", vec![DataType::Utf8], DataType::Utf8, Volatility::Immutable, Arc::new(normalize))
}

/// Writes the normalized form of `url` into `out` (see the spec's `--normalize`).
pub fn normalize_into(url: &str, out: &mut String) {
    out.clear();
    let Some((scheme, rest)) = url.split_once("://") else {
        out.push_str(url);
        return;
    };
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        out.push_str(url);
        return;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, mut tail) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let scheme = scheme.to_lowercase();
    let mut host = hostport.to_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    if let Some(port) = default_port
        && host.ends_with(port)
    {
        host.truncate(host.len() - port.len());
    }
    if let Some(hash) = tail.find('#') {
        tail = &tail[..hash];
    }
    if tail.find('?') == Some(tail.len().wrapping_sub(1)) {
        tail = &tail[..tail.len() - 1];
    }
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(userinfo);
    out.push_str(&host);
    out.push_str(tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(url: &str) -> String {
        let mut out = String::new();
        normalize_into(url, &mut out);
        out
    }

    #[test]
    fn normalization_rules() {
        let cases = [
            ("HTTP://Example.COM:80/A?b=1#frag", "http://example.com/A?b=1"),
            ("https://User:PW@Example.com:443/", "https://User:PW@example.com/"),
            ("https://example.com:8443/x?", "https://example.com:8443/x"),
            ("http://example.com:443/", "http://example.com:443/"),
            ("http://example.com/a??", "http://example.com/a??"),
            ("http://example.com/a?#x", "http://example.com/a"),
            ("http://EXAMPLE.com?", "http://example.com"),
            ("mailto:Someone@Example.com", "mailto:Someone@Example.com"),
            ("/relative/Path#x", "/relative/Path#x"),
            ("1http://A/", "1http://A/"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "input {input:?}");
        }
    }
}
