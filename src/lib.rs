//! mrpipe: batch analytics over tab-delimited logs in the MapReduce style.
//!
//! ```text
//!  inputs ──read──▶ Arrow batches ──map+combine──▶ partials ──shuffle──▶ P partitions
//!  (files, dirs,    (parallel,       (per rayon task)          (hash of key)
//!   globs, gz/zst,   line-aligned                                    │
//!   stdin)           chunks)                                       reduce (parallel)
//!                       │                                            │
//!                  bad lines ──▶ rejects file          tables ◀── job's finish (rank, alerts),
//!                                                        │       sorted by declared order
//!                                                      sink ──▶ Parquet | TSV | SQLite | PostgreSQL | MySQL
//! ```
//!
//! [`read`] turns inputs into record batches and quarantines bad lines; a job
//! ([`job::Job`], one file per job in `jobs/`) implements [`map::MapReduce`];
//! [`engine::native`] runs it through [`shuffle`] and [`reduce`] (spilling both under
//! `--memory-limit`) and sorts its tables, or
//! [`engine::datafusion`] runs the job's SQL twin (`jobs/<job>.sql`) on the same
//! batches, or [`engine::ballista`] runs it on a Ballista cluster whose executors read
//! the logs; [`run`] publishes the job's [`table::Table`]s through a [`sink::Target`]
//! atomically.
//!
//! Layers, each using only those below it: `error`, `failpoint`, `log`, `progress`, `scratch` -> [`read`] ->
//! [`table`], [`manifest`] -> [`map`], [`shuffle`], [`reduce`], [`engine`] -> [`job`]
//! and the jobs -> [`sink`] (one `Target` per kind of output; only `sink::parse`
//! knows them all) -> [`notify`], [`quarantine`] -> [`run`] -> [`verify`], [`query`], [`metrics`]
//! -> [`cli`], [`config`] -> `main.rs`. No framework module names a job or a backend.

pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod failpoint;
pub mod job;
#[path = "../jobs/mod.rs"]
pub mod jobs;
pub mod log;
pub mod manifest;
pub mod map;
pub mod metrics;
pub mod notify;
pub mod params;
pub mod progress;
pub mod quarantine;
pub mod query;
pub mod read;
pub mod reduce;
pub mod run;
pub mod scratch;
pub mod shuffle;
pub mod sink;
pub mod table;
pub mod testing;
pub mod verify;
