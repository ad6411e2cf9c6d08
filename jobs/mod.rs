//! The jobs: the built-in ones, one file each, named as the user types them
//! (`mrpipe run sales-rank` is `jobs/sales_rank.rs`; adding one means its file and one
//! line in [`ALL`]), and the [`Catalog`] that also finds jobs written as one SQL file
//! (`NAME.sql` in a jobs directory, or a path to the file; `shared/spec/sql-jobs.md`).

pub mod hit_counts;
pub mod sales_rank;
pub mod spending;
pub mod url_dedup;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::job::sql_job::SqlJob;
use crate::job::{COMMON_OPTIONS, Job};

/// Every built-in job, in the order `mrpipe jobs` lists them.
pub static ALL: &[&dyn Job] =
    &[&sales_rank::SalesRank, &spending::Spending, &hit_counts::HitCounts, &url_dedup::UrlDedup];

/// The SQL functions the jobs' twins call besides DataFusion's own: what a cluster's
/// scheduler and executors register (`mrpipe scheduler`, `mrpipe executor`).
pub fn sql_functions() -> Vec<datafusion::logical_expr::ScalarUDF> {
    vec![url_dedup::normalize_url_function()]
}

/// The built-in job named `name`, as typed on the command line.
pub fn find(name: &str) -> Option<&'static dyn Job> {
    ALL.iter().copied().find(|j| j.info().name == name)
}

/// Whether a `mrpipe run` word names a job file rather than a job.
pub fn is_job_file(word: &str) -> bool {
    word.ends_with(".sql")
}

/// Loads the SQL job file at `path` (kept for the life of the process); it may not
/// take a built-in job's name.
pub fn load_sql(path: &Path) -> Result<&'static dyn Job> {
    let job = SqlJob::load(path, COMMON_OPTIONS)?;
    let name = job.info().name;
    if find(name).is_some() {
        return Err(Error::Usage(format!(
            "{}: '{name}' is a built-in job; give the SQL job another name",
            path.display()
        )));
    }
    Ok(Box::leak(Box::new(job)))
}

/// Where jobs are found: the built-in jobs, then `NAME.sql` in each jobs directory in
/// order (`--jobs-dir`, then `$MRPIPE_JOBS`, then `jobs-dir` in `mrpipe.toml`).
#[derive(Clone, Default)]
pub struct Catalog {
    dirs: Vec<PathBuf>,
    /// Jobs loaded from a path given on the command line, found again by name.
    loaded: Vec<&'static dyn Job>,
}

impl Catalog {
    /// A catalog over these jobs directories, in lookup order.
    pub fn new(dirs: Vec<PathBuf>) -> Catalog {
        Catalog { dirs, loaded: Vec::new() }
    }

    /// Loads the job `word` names (a job's name or a job file's path) and keeps it, so
    /// that its name finds it afterwards.
    pub fn load(&mut self, word: &str) -> Result<&'static dyn Job> {
        let job = self.get(word)?;
        if is_job_file(word) {
            self.loaded.push(job);
        }
        Ok(job)
    }

    /// The job `name`: a built-in job, the first `name.sql` of the jobs directories, or
    /// a path to a job file. `None` when there is none; a file that does not load is
    /// its error.
    pub fn find(&self, name: &str) -> Result<Option<&'static dyn Job>> {
        if let Some(job) = find(name).or_else(|| self.loaded.iter().copied().find(|j| j.info().name == name)) {
            return Ok(Some(job));
        }
        if is_job_file(name) {
            return load_sql(Path::new(name)).map(Some);
        }
        for dir in &self.dirs {
            let path = dir.join(format!("{name}.sql"));
            if path.exists() {
                return load_sql(&path).map(Some);
            }
        }
        Ok(None)
    }

    /// The job `name`, or a usage error saying where it was looked for.
    pub fn get(&self, name: &str) -> Result<&'static dyn Job> {
        self.find(name)?.ok_or_else(|| {
            let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
            Error::Usage(format!(
                "unknown job '{name}': not a built-in job (see `mrpipe jobs`), and no {name}.sql in {}",
                if dirs.is_empty() {
                    "a jobs directory (none given: --jobs-dir, $MRPIPE_JOBS)".into()
                } else {
                    dirs.join(", ")
                }
            ))
        })
    }

    /// Every job: the built-in ones, then each directory's `*.sql` files by name (the
    /// first of a name wins). A file that does not load comes as its error.
    pub fn all(&self) -> Vec<Result<&'static dyn Job>> {
        let mut jobs: Vec<Result<&'static dyn Job>> = ALL.iter().copied().map(Ok).collect();
        let mut names: Vec<String> = ALL.iter().map(|j| j.info().name.to_string()).collect();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut files: Vec<PathBuf> =
                entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "sql")).collect();
            // Loading refuses what is not a regular file (a FIFO would block `mrpipe jobs`).
            files.sort();
            for path in files {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                if find(&stem).is_some() {
                    let e = format!("{}: '{stem}' is a built-in job; give the SQL job another name", path.display());
                    jobs.push(Err(Error::Usage(e)));
                    continue;
                }
                if names.contains(&stem) {
                    continue;
                }
                names.push(stem);
                jobs.push(load_sql(&path));
            }
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use clap::Command;

    use super::*;
    use crate::job::sql_file;
    use crate::read::format::FORMAT_NAMES;
    use crate::table::Sort;

    /// A twin's header is the job's declaration in SQL: the same parser reads it as a
    /// user's SQL job, and it must name the job's outputs in their order and only
    /// parameters the twin binds.
    #[test]
    fn every_built_in_twin_declares_its_jobs_outputs_and_parameters() {
        for job in ALL {
            let info = job.info();
            let plans = job
                .configure_from(&job.augment(Command::new(info.name).no_binary_name(true)).get_matches_from([""; 0]))
                .unwrap();
            let twin = plans[0].twin().unwrap();
            let file = sql_file::parse(twin.sql.text, None, FORMAT_NAMES, &[])
                .unwrap_or_else(|e| panic!("{}: {e}", twin.sql.path));
            assert_eq!((file.name.as_str(), file.about.as_str()), (info.name, info.about), "{}", twin.sql.path);
            let declared: Vec<(String, Vec<(String, bool)>)> = file
                .outputs
                .iter()
                .map(|o| (o.table.clone(), o.order.iter().map(|k| (k.column.clone(), k.descending)).collect()))
                .collect();
            let specs: Vec<(String, Vec<(String, bool)>)> = info
                .outputs
                .iter()
                .map(|t| {
                    let order = t.order.iter().map(|s| match s {
                        Sort::Asc(c) => (c.to_string(), false),
                        Sort::Desc(c) => (c.to_string(), true),
                    });
                    (t.name.to_string(), order.collect())
                })
                .collect();
            assert_eq!(declared, specs, "{}", twin.sql.path);
            let bound: Vec<&str> = twin.params.iter().map(|(n, _)| n.as_str()).collect();
            for p in &file.params {
                assert!(bound.contains(&p.name.as_str()), "{}: ${} is not bound ({bound:?})", twin.sql.path, p.name);
            }
        }
    }
}
