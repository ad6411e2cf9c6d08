//! The Ballista engine: a plan's SQL twin run by Apache DataFusion Ballista, with the
//! logs read on the executors ([`super::log_scan`]).
//!
//! plan the read and cut it into one part per scan partition -> register the logs as a
//! [`LogTable`], the side tables and the job's functions -> run each statement of
//! `jobs/<job>.sql` on the cluster (its physical plan travels to the executors through
//! [`super::codec`]) -> merge the partitions' read reports into the run's counts,
//! rejects and input hashes -> conform the results to the spec's tables, as the
//! DataFusion engine does.
//!
//! Without `--cluster` the cluster is in this process (a scheduler and one executor
//! on loopback, its shuffle files in a scratch directory removed after the run); with
//! it, the scheduler at that address (`mrpipe scheduler`, see [`super::cluster`]).

use std::sync::Arc;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;

use super::codec::{LogicalCodec, MAX_MESSAGE_BYTES, PhysicalCodec};
use super::datafusion::{Session, Twin, out_of_memory, run_statements};
use super::log_scan::{LogTable, ScanSpec};
use super::{JobOutput, RunContext};
use crate::error::{Error, Result};
use crate::read::input::Encoding;
use crate::scratch::scratch_dir;

/// Runs a plan's twin on Ballista: in this process without `cluster`, else on the
/// cluster whose scheduler is at `cluster` (`df://HOST:PORT`). Errors: a stream input
/// (executors read files), an unreachable cluster, a node of another version, and
/// every error of the SQL or of reading the inputs (naming the file).
pub fn run_twin(twin: Twin, ctx: &RunContext, cluster: Option<&str>) -> Result<JobOutput> {
    if let Some(stream) = ctx.inputs.iter().find(|f| matches!(f.encoding, Encoding::Stdin | Encoding::Stream)) {
        return Err(Error::Usage(format!(
            "--engine ballista reads its inputs on the executors, which cannot read '{}' (stdin or a pipe): \
             write it to a file first, or use --engine native",
            stream.display_name()
        )));
    }
    let sql_error = |e: &dyn std::fmt::Display| Error::Job { job: twin.sql.path, message: e.to_string() };
    let statements = DFParser::parse_sql(twin.sql.text).map_err(|e| sql_error(&e))?;
    if statements.len() < twin.outputs.len() {
        return Err(sql_error(&format!("{} statements for {} tables", statements.len(), twin.outputs.len())));
    }
    let threads = rayon::current_num_threads();
    // The partitions' read reports: beside the output, which a cluster shares.
    let reports = scratch_dir(&ctx.temp_dir)?;
    let (name, format) = &twin.input;
    ctx.progress.set_message("plan");
    let spec = ScanSpec::plan(&ctx.inputs, format.name(), &ctx.read, threads, reports.path())?;
    let session = connect(threads, ctx, &twin.functions, cluster)?;
    for (table, batch) in &twin.tables {
        session.register(table, batch.schema(), vec![vec![batch.clone()]])?;
    }
    let table = LogTable::new(spec).map_err(|e| Error::sink(*name, e))?;
    let spec = table.spec.clone();
    session.ctx.register_table(*name, Arc::new(table)).map_err(|e| Error::sink(*name, e))?;
    ctx.progress.set_message("read + sql (ballista)");
    let tables = run_statements(&session, &twin, statements.into_iter(), Vec::new(), ctx.memory_limit)
        .map_err(|e| cluster_error(e, cluster));
    // A read over the bad-line budget fails the run on that, as natively, even when the
    // SQL failed on the partial read; a failed query whose parts were not all read
    // fails on its own error (reading the rest here would only delay it).
    let read = match spec.finish(&ctx.temp_dir, tables.is_ok()) {
        Ok(read) => read,
        Err(_) if tables.is_err() => None, // the query's error is the one to report
        Err(e) => return Err(e),
    };
    match (tables, read) {
        (_, Some(read)) if read.stopped => {
            Ok(JobOutput { tables: Vec::new(), read: read.into(), warnings: twin.warnings })
        }
        (Ok(tables), Some(read)) => Ok(JobOutput { tables, read: read.into(), warnings: twin.warnings }),
        (Err(e), _) => Err(e),
        (Ok(_), None) => Err(Error::Cluster("ballista: a part of the read has no report".into())),
    }
}

/// A session whose queries run on Ballista: in-process (a scheduler and an executor
/// with `threads` task slots) or on the cluster at `cluster`.
fn connect(threads: usize, ctx: &RunContext, functions: &[ScalarUDF], cluster: Option<&str>) -> Result<Session> {
    let config = ballista_config(threads);
    let functions = functions.to_vec();
    Session::build(threads, ctx.memory_limit, &ctx.temp_dir, config, move |runtime, mut state| {
        for function in &functions {
            state.register_udf(Arc::new(function.clone())).map_err(|e| Error::Cluster(format!("ballista: {e}")))?;
        }
        let url = match cluster {
            Some(cluster) => reachable(cluster)?,
            None => runtime.block_on(start_standalone(&state, threads, ctx))?,
        };
        let state = state.upgrade_for_ballista(url).map_err(|e| Error::Cluster(format!("ballista: {e}")))?;
        // The upgrade replaces the state's functions with Ballista's: the client plans
        // the statements, so it needs the job's again.
        let ctx = SessionContext::new_with_state(state);
        for function in &functions {
            ctx.register_udf(function.clone());
        }
        Ok(ctx)
    })
}

/// Ballista's session configuration with mrpipe's codecs and `partitions` partitions
/// (Ballista's default of 16 costs seconds of scheduling on a small machine), planned
/// statically.
pub fn ballista_config(partitions: usize) -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_target_partitions(partitions.max(1))
        .with_ballista_standalone_parallelism(partitions.max(1))
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
        // Plans carry the side tables and earlier statements' results: gRPC's default
        // bound (4-16 MiB) made a large one fail, or retry for ever in-process.
        .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES)
        // Ballista 55's adaptive planner never finishes a job whose aggregation has no
        // input rows (a window with no sales): the static planner does.
        .set_bool("ballista.planner.adaptive.enabled", false)
        // The client follows its job on one gRPC stream: with Ballista's 300 s between
        // HTTP/2 pings, a scheduler that froze mid-job (a hung host) held the run and its
        // lock for minutes; now it is given up within KEEPALIVE_SECONDS + 20 s.
        .set_u64(ballista_core::config::BALLISTA_CLIENT_GRPC_HTTP2_KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_SECONDS)
}

/// Seconds between HTTP/2 pings from the client to the scheduler.
const KEEPALIVE_SECONDS: u64 = 5;

/// A query that failed because of the cluster says so, naming the scheduler, instead
/// of reading as an error of the job's SQL: a scheduler that went away or stopped
/// answering (before or during the job), and, on a remote cluster, an executor out of
/// its memory pool. Ballista hands these errors over as text only.
fn cluster_error(e: Error, cluster: Option<&str>) -> Error {
    const TRANSPORT: [&str; 6] = [
        "transport error",
        "keep-alive timed out",
        "Stream closed without job completing",
        "h2 protocol",
        "Timeout expired",
        "GoAway",
    ];
    let at = cluster.unwrap_or("(in-process)");
    match e {
        Error::Job { message, .. } if TRANSPORT.iter().any(|t| message.contains(t)) => Error::Cluster(format!(
            "the scheduler at {at} stopped answering or went away (is it a running `mrpipe scheduler`?); \
             nothing was published: {message}"
        )),
        Error::Job { message, .. } if cluster.is_some() && out_of_memory(&message) => Error::Cluster(format!(
            "an executor of {at} ran out of its memory pool: start the executors with a larger \
                 `--memory-pool-size`, or more of them; nothing was published: {message}"
        )),
        e => e,
    }
}

/// `df://HOST:PORT` as the scheduler's gRPC address. Errors: another scheme, no host.
pub fn scheduler_url(cluster: &str) -> Result<String> {
    let bad = |why: &str| Error::Usage(format!("--cluster '{cluster}' {why} (expected df://HOST:PORT)"));
    let url = url::Url::parse(cluster).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "df" {
        return Err(bad("is not a df:// address"));
    }
    // A path, query or credentials would be dropped without a word: refuse them.
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("has more than a host and port"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("holds credentials, which Ballista's scheduler does not take"));
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("names no host"))?;
    Ok(format!("http://{host}:{}", url.port().unwrap_or(50050)))
}

/// The scheduler's URL, once something answers at `cluster`'s address (within 10 s):
/// a cluster that cannot be reached is said so, not as a transport error mid-query.
fn reachable(cluster: &str) -> Result<String> {
    let url = scheduler_url(cluster)?;
    let address = url.trim_start_matches("http://");
    let unreachable = |e: &dyn std::fmt::Display| {
        Error::Cluster(format!("cannot reach the scheduler at {cluster} ({e}); is `mrpipe scheduler` running there?"))
    };
    let addresses = std::net::ToSocketAddrs::to_socket_addrs(address).map_err(|e| unreachable(&e))?;
    let mut last: Option<std::io::Error> = None;
    for a in addresses {
        match std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(10)) {
            Ok(_) => return Ok(url),
            Err(e) => last = Some(e),
        }
    }
    Err(unreachable(&last.map_or_else(|| "no address".to_string(), |e| e.to_string())))
}

/// Starts a scheduler and one executor in this process, on loopback ports the system
/// picks; returns the scheduler's URL. The executor keeps its shuffle files in a
/// scratch directory removed with the run's.
async fn start_standalone(state: &SessionState, slots: usize, ctx: &RunContext) -> Result<String> {
    let fail = |e: &dyn std::fmt::Display| Error::Cluster(format!("ballista (in-process cluster): {e}"));
    let address =
        ballista_scheduler::standalone::new_standalone_scheduler_from_state(state).await.map_err(|e| fail(&e))?;
    let url = format!("http://127.0.0.1:{}", address.port());
    let scheduler = SchedulerGrpcClient::connect(url.clone())
        .await
        .map_err(|e| fail(&e))?
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let work = scratch_dir(&ctx.temp_dir)?;
    super::cluster::start_local_executor(scheduler, slots, state, work).await.map_err(|e| fail(&e))?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_addresses_are_df_urls() {
        assert_eq!(scheduler_url("df://10.0.0.5:50050").unwrap(), "http://10.0.0.5:50050");
        assert_eq!(scheduler_url("df://sched").unwrap(), "http://sched:50050");
        for bad in
            ["http://x:1", "10.0.0.5:50050", "df://:1", "df:x", "df://x:1/data", "df://u:p@x:1", "df://x:1?tls=1"]
        {
            let err = scheduler_url(bad).unwrap_err().to_string();
            assert!(err.contains("df://HOST:PORT"), "{bad}: {err}");
        }
    }
}
