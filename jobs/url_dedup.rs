//! url-dedup: distinct (or exactly-once) URLs for a crawler, larger than memory
//! (System Design Primer, "Web crawler", RemoveDuplicateUrls).
//!
//! Map/reduce: url -> occurrences. `--mode distinct` keeps every url once,
//! `--mode singletons` only urls seen exactly once. Larger than memory is the
//! engine's business: with `--memory-limit` the counting tables and the sort spill to
//! disk, so neither input nor output has to fit in memory.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::scalar::ScalarValue;

use crate::engine::native;
use crate::error::Result;
use crate::job::spec::{Kind, ParamSpec, Values};
use crate::job::{Job, JobInfo, JobOutput, Plan, RunContext, SqlFile, Twin};
use crate::map::{Combiner, Groups, MapReduce, columns, rows_from_groups};
use crate::read::format::Format;
use crate::table::Sort::Asc;
use crate::table::{self, Rows, TableSpec};

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
        let mode = if values.choice("mode") == "singletons" { Mode::Singletons } else { Mode::Distinct };
        Ok(vec![Box::new(UrlDedupPlan {
            count: CountUrls { normalize: values.flag("normalize"), mode },
            values: values.clone(),
        })])
    }
}

struct UrlDedupPlan {
    count: CountUrls,
    values: Values,
}

/// Map/reduce step: url -> occurrences, keeping the urls `mode` asks for.
struct CountUrls {
    normalize: bool,
    mode: Mode,
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

    fn update(&self, batch: &RecordBatch, groups: &mut Combiner<String, u64>) -> Result<()> {
        self.each_url(batch, |url| *groups.entry(url) += 1)
    }

    fn merge(&self, into: &mut u64, other: u64) {
        *into += other;
    }

    fn finish<'a>(&'a self, groups: Groups<'a, String, u64>) -> Result<Vec<Rows<'a>>> {
        let kept = groups.filter(|g| g.as_ref().map_or(true, |(_, count)| self.mode == Mode::Distinct || *count == 1));
        let rows = rows_from_groups(&URLS, kept, |urls: &[(String, u64)]| {
            Ok(vec![
                table::text(urls.iter().map(|(url, _)| url.as_str())),
                table::bigint("occurrences", urls.iter().map(|(_, count)| i128::from(*count)))?,
            ])
        });
        Ok(vec![rows])
    }
}

/// The output table.
pub static URLS: TableSpec = TableSpec {
    name: "urls",
    columns: &[("url", DataType::Utf8), ("occurrences", DataType::Int64)],
    indexes: &[],
    order: &[Asc("url")],
    notify_key: &[],
};

impl Plan for UrlDedupPlan {
    fn values(&self) -> &Values {
        &self.values
    }

    fn twin(&self) -> Result<Twin> {
        let mut twin = Twin::new(&SQL, ("links_to_crawl", Format::UrlList), vec![&URLS], &INFO, &self.values);
        twin.functions.push(normalize_url_function());
        Ok(twin)
    }

    fn run(&self, ctx: &RunContext) -> Result<JobOutput> {
        let (tables, read) = native::run(&self.count, &Format::UrlList, ctx)?;
        Ok(JobOutput { tables, read: read.into(), warnings: Vec::new() })
    }
}

/// `normalize_url(url)`: [`normalize_into`] as a SQL function, for the job's SQL twin.
pub fn normalize_url_function() -> ScalarUDF {
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
        && let Some(bare) = host.strip_suffix(port)
        // Only a `host:port` authority has a port to drop: `h:443:443` is kept whole,
        // so that the normal form is its own normal form (found by fuzzing).
        && (!bare.contains(':') || (bare.starts_with('[') && bare.ends_with(']')))
    {
        host.truncate(bare.len());
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

    #[test]
    fn normalizing_is_idempotent_even_for_a_malformed_authority() {
        for url in ["https://h:443:443/x", "http://[::1]:80/", "https://[::1]:443", "HTTP://Host:80:80#f"] {
            let mut once = String::new();
            normalize_into(url, &mut once);
            let mut twice = String::new();
            normalize_into(&once, &mut twice);
            assert_eq!(once, twice, "{url}");
        }
        let mut out = String::new();
        normalize_into("http://[::1]:80/a", &mut out);
        assert_eq!(out, "http://[::1]/a");
        normalize_into("https://h:443:443/x", &mut out);
        assert_eq!(out, "https://h:443:443/x");
    }
}
