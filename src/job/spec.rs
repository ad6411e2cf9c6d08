//! A job's parameters declared once: each [`ParamSpec`] gives the option's name, kind,
//! default, help and relations to other options. From the declarations come the
//! clap arguments of `mrpipe run JOB` ([`augment`]), the typed [`Values`] a job is
//! configured from, the manifest's record of a run's effective values (typed JSON,
//! [`Values::to_json`]) that `mrpipe verify` configures the job from again
//! ([`Values::from_json`], no command line involved), and the `$name` parameters of a
//! job's SQL twin ([`Values::sql_params`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use datafusion::scalar::ScalarValue;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::params::{self, MonthArg};
use crate::read::fields::format_timestamp;

/// What kind of value an option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Present or not.
    Flag,
    /// A whole number >= 1.
    Count,
    /// Any 64-bit integer.
    Int,
    /// Text.
    Text,
    /// A file.
    Path,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// An instant: `now`, a date, or a timestamp (UTC microseconds).
    When,
    /// Instants, the option repeated.
    Whens,
    /// A length of time: `7d`, `24h`, `30m`, `90s` (microseconds).
    Length,
    /// A month: `YYYY-MM` or `current`.
    Month,
    /// A size in bytes: `512MiB`, `2GiB`, ...
    Size,
}

/// One option of a job.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// The option's long name (`as-of`); its SQL parameter is `$as_of`.
    pub name: &'static str,
    /// What it takes.
    pub kind: Kind,
    /// The value when not given, as typed on the command line.
    pub default: Option<&'static str>,
    /// The value's name in `--help`.
    pub value_name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Options it cannot be given with.
    pub conflicts: &'static [&'static str],
    /// Options it needs.
    pub requires: &'static [&'static str],
    /// Whether it must be given.
    pub required: bool,
}

impl ParamSpec {
    /// An option of `kind` with no default and no relations.
    pub const fn new(name: &'static str, kind: Kind, value_name: &'static str, help: &'static str) -> ParamSpec {
        ParamSpec { name, kind, default: None, value_name, help, conflicts: &[], requires: &[], required: false }
    }

    /// The same option with a default.
    pub const fn default(self, value: &'static str) -> ParamSpec {
        ParamSpec { default: Some(value), ..self }
    }

    /// The same option, refused together with `others`.
    pub const fn conflicts(self, others: &'static [&'static str]) -> ParamSpec {
        ParamSpec { conflicts: others, ..self }
    }

    /// The same option, which must be given.
    pub const fn required(self) -> ParamSpec {
        ParamSpec { required: true, ..self }
    }

    /// The same option, given only with `others`.
    pub const fn requires(self, others: &'static [&'static str]) -> ParamSpec {
        ParamSpec { requires: others, ..self }
    }
}

/// The month options of the monthly jobs: one month, a backfill range, or every month.
pub const MONTH_PARAMS: [ParamSpec; 4] = [
    ParamSpec::new(
        "month",
        Kind::Month,
        "MONTH",
        "Keep one month: YYYY-MM, or `current` (the month of --as-of). Default: every month.",
    )
    .conflicts(&["from", "to"]),
    ParamSpec::new(
        "from",
        Kind::Month,
        "MONTH",
        "Backfill from this month (YYYY-MM or current), each month published on its own.",
    )
    .requires(&["to"]),
    ParamSpec::new("to", Kind::Month, "MONTH", "Last month of a backfill, inclusive.").requires(&["from"]),
    ParamSpec::new("as-of", Kind::When, "WHEN", "The instant `current` refers to: now, a date or a timestamp.")
        .default("now"),
];

/// A typed option value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// [`Kind::Flag`].
    Flag(bool),
    /// [`Kind::Count`].
    Count(u64),
    /// [`Kind::Int`].
    Int(i64),
    /// [`Kind::Text`].
    Text(String),
    /// [`Kind::Path`].
    Path(PathBuf),
    /// [`Kind::Choice`].
    Choice(String),
    /// [`Kind::When`], UTC microseconds.
    When(i64),
    /// [`Kind::Whens`], UTC microseconds.
    Whens(Vec<i64>),
    /// [`Kind::Length`], microseconds.
    Length(i64),
    /// [`Kind::Month`].
    Month(MonthArg),
    /// [`Kind::Size`], bytes.
    Size(u64),
}

/// Parses one option value of `kind` as typed on the command line.
pub fn parse_value(kind: Kind, text: &str) -> std::result::Result<Value, String> {
    Ok(match kind {
        Kind::Flag => Value::Flag(text == "true"),
        Kind::Count => match text.parse::<u64>() {
            Ok(n) if n >= 1 => Value::Count(n),
            _ => return Err("expected a whole number of at least 1".into()),
        },
        Kind::Int => Value::Int(text.parse::<i64>().map_err(|_| "expected a whole number".to_string())?),
        Kind::Text => Value::Text(text.to_string()),
        Kind::Path => Value::Path(PathBuf::from(text)),
        Kind::Choice(words) => match words.iter().find(|w| **w == text) {
            Some(w) => Value::Choice(w.to_string()),
            None => return Err(format!("expected one of {}", words.join(", "))),
        },
        Kind::When => Value::When(params::parse_as_of(text)?),
        Kind::Whens => Value::Whens(vec![params::parse_as_of(text)?]),
        Kind::Length => Value::Length(params::parse_window(text)?),
        Kind::Month => Value::Month(params::parse_month(text)?),
        Kind::Size => Value::Size(params::parse_byte_size(text)?),
    })
}

/// Adds the options of `specs` to a job's subcommand.
pub fn augment(mut cmd: Command, specs: &[ParamSpec]) -> Command {
    for spec in specs {
        // Headings as in `--help` of cargo or ripgrep: which period(s) to publish, apart
        // from what the job computes.
        let heading = match spec.name {
            "month" | "from" | "to" | "as-of" | "every" => "Periods",
            _ => "Job options",
        };
        let mut arg = Arg::new(spec.name).long(spec.name).help(spec.help).help_heading(heading);
        arg = match spec.kind {
            Kind::Flag => arg.action(ArgAction::SetTrue),
            Kind::Whens => arg.action(ArgAction::Append).value_name(spec.value_name),
            _ => arg.action(ArgAction::Set).value_name(spec.value_name),
        };
        if let Kind::Choice(words) = spec.kind {
            arg = arg.value_parser(clap::builder::PossibleValuesParser::new(words));
        } else if spec.kind != Kind::Flag {
            let kind = spec.kind;
            arg = arg.value_parser(move |s: &str| parse_value(kind, s).map(|_| s.to_string()));
        }
        if let Some(default) = spec.default {
            arg = arg.default_value(default);
        }
        arg = arg.required(spec.required);
        for other in spec.conflicts {
            arg = arg.conflicts_with(*other);
        }
        for other in spec.requires {
            arg = arg.requires(*other);
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// A job's option values, typed: what it is configured from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Values {
    values: BTreeMap<&'static str, Value>,
}

impl Values {
    /// The values clap parsed for `specs` (defaults included).
    pub fn from_matches(specs: &[ParamSpec], matches: &ArgMatches) -> Result<Values> {
        let mut values = Values::default();
        for spec in specs {
            let value = match spec.kind {
                Kind::Flag => matches.get_flag(spec.name).then_some(Value::Flag(true)),
                Kind::Whens => {
                    let texts: Vec<&String> = matches.get_many::<String>(spec.name).into_iter().flatten().collect();
                    let mut all = Vec::with_capacity(texts.len());
                    for t in texts {
                        let Value::Whens(one) = parse_value(spec.kind, t).map_err(|e| bad(spec, t, &e))? else {
                            continue;
                        };
                        all.extend(one);
                    }
                    (!all.is_empty()).then_some(Value::Whens(all))
                }
                kind => match matches.get_one::<String>(spec.name) {
                    Some(text) => Some(parse_value(kind, text).map_err(|e| bad(spec, text, &e))?),
                    None => None,
                },
            };
            if let Some(value) = value {
                values.values.insert(spec.name, value);
            }
        }
        Ok(values)
    }

    /// The values a manifest recorded with [`Values::to_json`].
    pub fn from_json(specs: &[ParamSpec], json: &Map<String, Json>) -> Result<Values> {
        let mut values = Values::default();
        for (name, value) in json {
            // A common option recorded by a version where it was the job's own
            // (url-dedup's `memory-limit`): it never changed the results.
            if super::COMMON_OPTIONS.contains(&name.as_str()) && !specs.iter().any(|s| s.name == name) {
                continue;
            }
            let spec = specs
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| Error::Usage(format!("the recorded parameter '{name}' is not an option of this job")))?;
            let text = |v: &Json| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string()));
            let parsed = match (spec.kind, value) {
                (Kind::Flag, Json::Bool(b)) => Value::Flag(*b),
                (Kind::Whens, Json::Array(items)) => {
                    let mut all = Vec::with_capacity(items.len());
                    for item in items {
                        let t = text(item).unwrap_or_default();
                        all.push(params::parse_as_of(&t).map_err(|e| bad(spec, &t, &e))?);
                    }
                    Value::Whens(all)
                }
                (kind, v) => {
                    let t = text(v).ok_or_else(|| Error::Usage(format!("the recorded parameter '{name}' is {v}")))?;
                    parse_value(kind, &t).map_err(|e| bad(spec, &t, &e))?
                }
            };
            values.values.insert(spec.name, parsed);
        }
        Ok(values)
    }

    /// The values as typed JSON (keys sorted): flags as booleans, counts and sizes
    /// as numbers, instants as RFC 3339 UTC text, lengths as `7d`, months as `YYYY-MM`.
    pub fn to_json(&self, specs: &[ParamSpec]) -> Map<String, Json> {
        let mut map = Map::new();
        for spec in specs {
            let Some(value) = self.values.get(spec.name) else { continue };
            let json = match value {
                Value::Flag(b) => Json::Bool(*b),
                Value::Count(n) | Value::Size(n) => Json::from(*n),
                Value::Int(n) => Json::from(*n),
                Value::Text(s) => Json::from(s.clone()),
                Value::Path(p) => Json::from(p.display().to_string()),
                Value::Choice(s) => Json::from(s.clone()),
                Value::When(t) => Json::from(format_timestamp(*t)),
                Value::Whens(ts) => Json::Array(ts.iter().map(|t| Json::from(format_timestamp(*t))).collect()),
                Value::Length(l) => Json::from(params::format_window(*l)),
                Value::Month(MonthArg::Month(y, m)) => Json::from(format!("{y:04}-{m:02}")),
                Value::Month(MonthArg::Current) => Json::from("current"),
            };
            map.insert(spec.name.to_string(), json);
        }
        map
    }

    /// The values as `$name` parameters of SQL (`as-of` is `$as_of`), one for every
    /// option of `specs` but files and repeated instants: a typed NULL for an option not
    /// given (false for a flag). Instants are UTC timestamps, lengths BIGINT
    /// microseconds, months `YYYY-MM` text.
    pub fn sql_params(&self, specs: &[ParamSpec]) -> Vec<(String, ScalarValue)> {
        let instant = |t: Option<i64>| ScalarValue::TimestampMicrosecond(t, Some("UTC".into()));
        let mut params = Vec::with_capacity(specs.len());
        for spec in specs {
            let value = self.values.get(spec.name);
            let v = match spec.kind {
                Kind::Path | Kind::Whens => continue,
                Kind::Flag => ScalarValue::Boolean(Some(self.flag(spec.name))),
                Kind::Count | Kind::Size => ScalarValue::Int64(
                    self.count(spec.name).or(self.size(spec.name)).map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                ),
                Kind::Int => ScalarValue::Int64(match value {
                    Some(Value::Int(n)) => Some(*n),
                    _ => None,
                }),
                Kind::Text | Kind::Choice(_) => ScalarValue::Utf8(match value {
                    Some(Value::Text(s) | Value::Choice(s)) => Some(s.clone()),
                    _ => None,
                }),
                Kind::When => instant(self.when(spec.name)),
                Kind::Length => ScalarValue::Int64(self.length(spec.name)),
                Kind::Month => ScalarValue::Utf8(match self.month(spec.name) {
                    Some(MonthArg::Month(y, m)) => Some(format!("{y:04}-{m:02}")),
                    _ => None,
                }),
            };
            params.push((spec.name.replace('-', "_"), v));
        }
        params
    }

    /// Sets (or with `None` removes) a value.
    pub fn set(&mut self, name: &'static str, value: Option<Value>) {
        match value {
            Some(v) => self.values.insert(name, v),
            None => self.values.remove(name),
        };
    }

    /// Whether a flag is set.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Flag(true)))
    }

    /// A count, if given.
    pub fn count(&self, name: &str) -> Option<u64> {
        match self.values.get(name) {
            Some(Value::Count(n)) => Some(*n),
            _ => None,
        }
    }

    /// A path, if given.
    pub fn path(&self, name: &str) -> Option<&Path> {
        match self.values.get(name) {
            Some(Value::Path(p)) => Some(p),
            _ => None,
        }
    }

    /// A choice (its default when not given).
    pub fn choice(&self, name: &str) -> &str {
        match self.values.get(name) {
            Some(Value::Choice(s)) => s,
            _ => "",
        }
    }

    /// An instant, if given.
    pub fn when(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::When(t)) => Some(*t),
            _ => None,
        }
    }

    /// Instants of a repeated option.
    pub fn whens(&self, name: &str) -> &[i64] {
        match self.values.get(name) {
            Some(Value::Whens(ts)) => ts,
            _ => &[],
        }
    }

    /// A length, if given.
    pub fn length(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Length(l)) => Some(*l),
            _ => None,
        }
    }

    /// A month, if given.
    pub fn month(&self, name: &str) -> Option<MonthArg> {
        match self.values.get(name) {
            Some(Value::Month(m)) => Some(*m),
            _ => None,
        }
    }

    /// A size, if given.
    pub fn size(&self, name: &str) -> Option<u64> {
        match self.values.get(name) {
            Some(Value::Size(n)) => Some(*n),
            _ => None,
        }
    }

    /// The months to publish one by one (`--month`, or `--from`..`--to`, resolved
    /// against `--as-of`), or `None` for one run over every month.
    pub fn months(&self) -> Result<Option<Vec<(i64, i64)>>> {
        let as_of = self.when("as-of").unwrap_or(0);
        let resolve = |m: MonthArg| match m {
            MonthArg::Month(y, m) => (y, m),
            MonthArg::Current => crate::read::fields::year_month(as_of),
        };
        if let Some(m) = self.month("month") {
            return Ok(Some(vec![resolve(m)]));
        }
        let (Some(from), Some(to)) = (self.month("from").map(resolve), self.month("to").map(resolve)) else {
            return Ok(None);
        };
        if from > to {
            return Err(Error::Usage(format!(
                "--from {:04}-{:02} is after --to {:04}-{:02}",
                from.0, from.1, to.0, to.1
            )));
        }
        let mut months = Vec::new();
        let mut m = from;
        while m <= to {
            months.push(m);
            m = if m.1 == 12 { (m.0 + 1, 1) } else { (m.0, m.1 + 1) };
        }
        Ok(Some(months))
    }

    /// The effective values of one plan of a monthly job: `--month` set to its month
    /// (`current` resolved), `--from`/`--to` gone, and `--as-of` gone, since it only
    /// served to resolve `current` (so a repeated run records the same values).
    pub fn for_month(&self, month: Option<(i64, i64)>) -> Values {
        let mut v = self.clone();
        v.set("as-of", None);
        if let Some((y, m)) = month {
            v.set("month", Some(Value::Month(MonthArg::Month(y, m))));
            v.set("from", None);
            v.set("to", None);
        }
        v
    }
}

fn bad(spec: &ParamSpec, text: &str, why: &str) -> Error {
    Error::Usage(format!("invalid value '{text}' for '--{} <{}>': {why}", spec.name, spec.value_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec::new("top", Kind::Count, "N", "Keep N."),
        ParamSpec::new("window", Kind::Length, "LEN", "Window.").default("7d"),
        ParamSpec::new("as-of", Kind::Whens, "WHEN", "When."),
        ParamSpec::new("mode", Kind::Choice(&["a", "b"]), "MODE", "Mode.").default("a"),
        ParamSpec::new("strict-ish", Kind::Flag, "", "A flag."),
        ParamSpec::new("month", Kind::Month, "MONTH", "Month."),
    ];

    #[test]
    fn values_round_trip_through_the_command_line_and_json() {
        let cmd = augment(Command::new("job").no_binary_name(true), SPECS);
        let m = cmd
            .try_get_matches_from([
                "--top",
                "3",
                "--as-of",
                "2026-11-23",
                "--as-of",
                "2026-11-24",
                "--strict-ish",
                "--month",
                "2026-10",
            ])
            .unwrap();
        let v = Values::from_matches(SPECS, &m).unwrap();
        let json = v.to_json(SPECS);
        assert_eq!(
            Json::Object(json.clone()).to_string(),
            r#"{"as-of":["2026-11-23T00:00:00Z","2026-11-24T00:00:00Z"],"mode":"a","month":"2026-10","strict-ish":true,"top":3,"window":"7d"}"#
        );
        assert_eq!(Values::from_json(SPECS, &json).unwrap(), v);
        let params: Vec<String> = v.sql_params(SPECS).into_iter().map(|(n, _)| n).collect();
        assert_eq!(params, ["top", "window", "mode", "strict_ish", "month"]);
        let err =
            augment(Command::new("job").no_binary_name(true), SPECS).try_get_matches_from(["--top", "0"]).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        let bad = serde_json::json!({"nope": 1});
        assert!(Values::from_json(SPECS, bad.as_object().unwrap()).is_err());
    }
}
