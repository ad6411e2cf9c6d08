//! The config file, `mrpipe.toml`: per-job defaults so a cron line can be just
//! `mrpipe run sales-rank`. Found via `--config PATH`, then `$MRPIPE_CONFIG`, then
//! `./mrpipe.toml`. A `[defaults]` table applies to every job, a `[<job>]` table to
//! one; keys are the job's long option names (`as-of`, `max-bad-lines`, ...) plus
//! `inputs`. The file's values are turned into command-line words placed before the
//! user's, so anything given on the command line wins. An unknown table or key is a
//! usage error that names it and the file. A top-level `jobs-dir` (a path or a list)
//! adds directories where SQL jobs are found, after `--jobs-dir` and `$MRPIPE_JOBS`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Command;

use crate::error::{Error, Result};
use crate::jobs::Catalog;

/// The config file's top-level key naming SQL jobs directories.
const JOBS_DIR: &str = "jobs-dir";

/// The jobs directories, in lookup order: every `--jobs-dir DIR` on the command line,
/// then `$MRPIPE_JOBS` (colon-separated), then `jobs-dir` in the config file.
pub fn jobs_dirs(argv: &[OsString]) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    let mut words = argv.iter().map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if word == "--jobs-dir" {
            dirs.extend(words.next().map(|d| PathBuf::from(d.as_ref())));
        } else if let Some(d) = word.strip_prefix("--jobs-dir=") {
            dirs.push(PathBuf::from(d));
        }
    }
    if let Some(env) = std::env::var_os("MRPIPE_JOBS") {
        dirs.extend(std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(path) = locate(argv)? {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let doc: toml::Table =
            text.parse().map_err(|e| Error::Usage(format!("{}: not valid TOML: {e}", path.display())))?;
        let bad = || Error::Usage(format!("{}: '{JOBS_DIR}' must be a path or a list of paths", path.display()));
        match doc.get(JOBS_DIR) {
            None => {}
            Some(toml::Value::String(d)) => dirs.push(PathBuf::from(d)),
            Some(toml::Value::Array(items)) => {
                for item in items {
                    dirs.push(PathBuf::from(item.as_str().ok_or_else(bad)?));
                }
            }
            Some(_) => return Err(bad()),
        }
    }
    Ok(dirs)
}

/// Where the config file is, if any: `--config`, `$MRPIPE_CONFIG`, `./mrpipe.toml`.
fn locate(argv: &[OsString]) -> Result<Option<PathBuf>> {
    let mut words = argv.iter().map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--config" {
            return Ok(words.next().map(|p| PathBuf::from(p.as_ref())));
        }
        if let Some(p) = word.strip_prefix("--config=") {
            return Ok(Some(PathBuf::from(p)));
        }
    }
    if let Some(p) = std::env::var_os("MRPIPE_CONFIG") {
        return Ok(Some(PathBuf::from(p)));
    }
    let local = PathBuf::from("mrpipe.toml");
    Ok(local.is_file().then_some(local))
}

/// Rewrites `mrpipe run <job> ...` with the config file's values for that job.
/// Other commands, and runs without a config file, are returned unchanged.
pub fn apply(argv: Vec<OsString>, catalog: &Catalog) -> Result<Vec<OsString>> {
    let Some(job_at) = argv.iter().position(|a| a == "run").map(|i| i + 1).filter(|&i| i < argv.len()) else {
        return Ok(argv);
    };
    let job_name = argv[job_at].to_string_lossy().into_owned();
    let Some(job) = catalog.find(&job_name)? else { return Ok(argv) };
    let Some(path) = locate(&argv)? else { return Ok(argv) };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let cmd = crate::cli::command(&[job])
        .find_subcommand("run")
        .and_then(|run| run.find_subcommand(job.info().name))
        .cloned()
        .ok_or_else(|| Error::Usage(format!("job '{job_name}' has no command")))?;
    let given = GivenOnCommandLine::scan(&cmd, &argv[job_at + 1..]);
    let extra = config_words(&text, &path, job.info().name, &cmd, &given, catalog)?;
    let mut out = argv[..=job_at].to_vec();
    out.extend(extra);
    out.extend_from_slice(&argv[job_at + 1..]);
    Ok(out)
}

/// Which options and whether inputs the user gave on the command line.
struct GivenOnCommandLine {
    longs: Vec<String>,
    inputs: bool,
}

impl GivenOnCommandLine {
    fn scan(cmd: &Command, words: &[OsString]) -> GivenOnCommandLine {
        let takes_value =
            |long: &str| cmd.get_arguments().any(|a| a.get_long() == Some(long) && a.get_action().takes_values());
        let mut given = GivenOnCommandLine { longs: Vec::new(), inputs: false };
        let mut i = 0;
        while i < words.len() {
            let w = words[i].to_string_lossy();
            if w == "--" {
                given.inputs |= i + 1 < words.len();
                break;
            } else if let Some(long) = w.strip_prefix("--") {
                let (name, inline) = long.split_once('=').map_or((long, false), |(n, _)| (n, true));
                if !inline && takes_value(name) {
                    i += 1;
                }
                given.longs.push(name.to_string());
            } else if w.len() > 1 && w.starts_with('-') {
                for (k, c) in w.chars().skip(1).enumerate() {
                    let Some(arg) = cmd.get_arguments().find(|a| a.get_short() == Some(c)) else { continue };
                    given.longs.extend(arg.get_long().map(str::to_string));
                    if arg.get_action().takes_values() {
                        if k + 2 == w.chars().count() {
                            i += 1; // the value is the next word
                        }
                        break;
                    }
                }
            } else {
                given.inputs = true;
            }
            i += 1;
        }
        given
    }
}

/// The command-line words a config file contributes to one job's run.
fn config_words(
    text: &str,
    path: &Path,
    job: &str,
    cmd: &Command,
    given: &GivenOnCommandLine,
    catalog: &Catalog,
) -> Result<Vec<OsString>> {
    let bad = |what: String| Error::Usage(format!("{}: {what}", path.display()));
    let doc: toml::Table = text.parse().map_err(|e| bad(format!("not valid TOML: {e}")))?;
    for name in doc.keys() {
        if name != "defaults" && name != JOBS_DIR && catalog.find(name)?.is_none() {
            return Err(bad(format!("unknown table [{name}] (expected [defaults] or a job name)")));
        }
    }
    let mut merged: Vec<(String, toml::Value)> = Vec::new();
    for table in ["defaults", job] {
        let Some(values) = doc.get(table) else { continue };
        let values = values.as_table().ok_or_else(|| bad(format!("[{table}] must be a table")))?;
        for (key, value) in values {
            let known = key == "inputs" || cmd.get_arguments().any(|a| a.get_long() == Some(key.as_str()));
            if !known || key == "config" {
                return Err(bad(format!("unknown key '{key}' in [{table}] (not an option of '{job}')")));
            }
            merged.retain(|(k, _)| k != key);
            merged.push((key.clone(), value.clone()));
        }
    }
    let mut words = Vec::new();
    let mut inputs = Vec::new();
    for (key, value) in merged {
        let scalars: Vec<toml::Value> = match value {
            toml::Value::Array(items) => items,
            other => vec![other],
        };
        if key == "inputs" {
            if !given.inputs {
                for v in scalars {
                    inputs.push(OsString::from(
                        scalar(&v).ok_or_else(|| bad(format!("'inputs' must hold strings, got {v}")))?,
                    ));
                }
            }
            continue;
        }
        if given.longs.contains(&key) {
            continue;
        }
        for v in scalars {
            match v {
                toml::Value::Boolean(true) => words.push(OsString::from(format!("--{key}"))),
                toml::Value::Boolean(false) => {}
                v => {
                    let text = scalar(&v)
                        .ok_or_else(|| bad(format!("'{key}' must be a string, number or boolean, got {v}")))?;
                    words.push(OsString::from(format!("--{key}={text}")));
                }
            }
        }
    }
    words.extend(inputs);
    Ok(words)
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        _ => None,
    }
}
