//! Ballista's processes, able to run mrpipe's plans: the executor of the in-process
//! cluster that `--engine ballista` starts without `--cluster` (its shuffle files in
//! a directory removed with the run), and the `mrpipe scheduler` and `mrpipe executor`
//! processes of a real cluster. Each registers mrpipe's codecs and SQL functions:
//! Ballista's stock binaries cannot decode mrpipe's scan of the logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use ballista_core::error::BallistaError;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::ExecutorRegistration;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::scheduler::{ExecutorOperatingSystemSpecification, ExecutorSpecification};
use ballista_core::utils::{GrpcServerConfig, create_grpc_server, default_session_builder};
use ballista_core::{BALLISTA_PROTOCOL_VERSION, ConfigProducer, RuntimeProducer};
use ballista_executor::executor::Executor;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_executor::flight_service::BallistaFlightService;
use ballista_executor::metrics::LoggingMetricsCollector;
use ballista_executor::shutdown::Shutdown;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;

use super::codec::{LogicalCodec, MAX_MESSAGE_BYTES, PhysicalCodec};
use crate::error::{Error, Result};
use crate::scratch::Scratch;

/// Starts an executor with `slots` task slots in this process (on a loopback port the
/// system picks) for the scheduler `scheduler`, running plans with `state`'s functions
/// and codecs. Its shuffle files go to `work`, which lives (and is removed) with the
/// runtime the executor runs on.
pub async fn start_local_executor(
    scheduler: SchedulerGrpcClient<Channel>,
    slots: usize,
    state: &SessionState,
    work: Scratch,
) -> ballista_core::error::Result<()> {
    let codec: BallistaCodec<LogicalPlanNode, PhysicalPlanNode> =
        BallistaCodec::new(Arc::new(LogicalCodec::default()), Arc::new(PhysicalCodec::default()));
    let config = state.config().clone();
    let runtime = state.runtime_env().clone();
    let config_producer: ConfigProducer = Arc::new(move || config.clone());
    let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let registration = ExecutorRegistration {
        id: ballista_core::ids::new_instance_id(),
        host: Some("127.0.0.1".to_string()),
        port: u32::from(address.port()),
        // Pull-based: the scheduler never calls this executor's gRPC port.
        grpc_port: 0,
        specification: Some(ExecutorSpecification::default().with_vcores(slots as u32).into()),
        os_info: Some(ExecutorOperatingSystemSpecification::default().into()),
        ballista_protocol_version: BALLISTA_PROTOCOL_VERSION,
    };
    let max_message = state.config().ballista_grpc_client_max_message_size();
    let work_dir = work.path().to_string_lossy().into_owned();
    let executor = Arc::new(Executor::with_default_execution_engine(
        registration,
        &work_dir,
        runtime_producer,
        config_producer,
        Arc::new(BallistaFunctionRegistry::from(state)),
        Arc::new(LoggingMetricsCollector::default()),
        slots,
    ));
    let flight = FlightServiceServer::new(BallistaFlightService::new(work_dir))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    tokio::spawn(
        create_grpc_server(&GrpcServerConfig::default())
            .add_service(flight)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let health = ballista_executor::health::ExecutorHealth::new();
    tokio::spawn(async move {
        let _work = work; // removed when the runtime drops this task
        ballista_executor::execution_loop::poll_loop(scheduler, executor, codec, None, None, health).await
    });
    Ok(())
}

/// `mrpipe scheduler`'s settings, named as the stock `ballista-scheduler`'s flags.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Address to listen on (`--bind-host`).
    pub bind_host: String,
    /// Port to listen on (`--bind-port`).
    pub bind_port: u16,
    /// Host name executors and clients reach this scheduler by (`--external-host`).
    pub external_host: Option<String>,
    /// An executor silent this long is lost, its tasks run again elsewhere
    /// (`--executor-timeout-seconds`).
    pub executor_timeout_seconds: u64,
    /// How often lost executors are looked for (`--expire-dead-executor-interval-seconds`).
    pub expire_dead_executor_interval_seconds: u64,
}

/// Runs a Ballista scheduler with mrpipe's codecs and `functions` until it is stopped
/// (SIGINT/SIGTERM). Errors: a bad address, a port in use.
pub fn serve_scheduler(opts: &SchedulerOptions, functions: Vec<ScalarUDF>) -> Result<()> {
    let address = socket_address(&opts.bind_host, opts.bind_port)?;
    let functions: Vec<Arc<ScalarUDF>> = functions.into_iter().map(Arc::new).collect();
    let builder = move |config: SessionConfig| {
        let mut state = default_session_builder(config)?;
        for function in &functions {
            state.register_udf(function.clone())?;
        }
        Ok(state)
    };
    let config = SchedulerConfig {
        bind_host: opts.bind_host.clone(),
        bind_port: opts.bind_port,
        external_host: opts.external_host.clone().unwrap_or_else(|| opts.bind_host.clone()),
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        override_session_builder: Some(Arc::new(builder)),
        grpc_server_max_decoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_server_max_encoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_client_max_message_size: MAX_MESSAGE_BYTES as u32,
        executor_timeout_seconds: opts.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: opts.expire_dead_executor_interval_seconds,
        ..SchedulerConfig::default()
    };
    runtime()?.block_on(async move {
        let cluster =
            BallistaCluster::new_from_config(&config).await.map_err(|e| Error::Cluster(format!("scheduler: {e}")))?;
        let serve = start_server(cluster, address, Arc::new(config));
        tokio::select! {
            served = serve => served.map_err(|e| Error::Cluster(format!("scheduler on {address}: {e}"))),
            () = stopped() => Ok(()),
        }
    })
}

/// `mrpipe executor`'s settings, named as the stock `ballista-executor`'s flags.
#[derive(Clone, Debug)]
pub struct ExecutorOptions {
    /// Address to listen on (`--bind-host`).
    pub bind_host: String,
    /// Port of the Arrow Flight service other executors fetch shuffle data from (`--bind-port`).
    pub bind_port: u16,
    /// Port of the gRPC service the scheduler pushes tasks to (`--bind-grpc-port`).
    pub bind_grpc_port: u16,
    /// Host name the scheduler and other executors reach this one by (`--external-host`).
    pub external_host: Option<String>,
    /// The scheduler (`--scheduler-host`, `--scheduler-port`).
    pub scheduler_host: String,
    /// See `scheduler_host`.
    pub scheduler_port: u16,
    /// Where shuffle files go (`--work-dir`); a directory removed on exit when not given.
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once (`--concurrent-tasks`), each on one thread.
    pub concurrent_tasks: usize,
    /// Shuffle files older than this are removed (`--job-data-ttl-seconds`).
    pub job_data_ttl_seconds: u64,
    /// How often they are looked for (`--job-data-clean-up-interval-seconds`).
    pub job_data_clean_up_interval_seconds: u64,
    /// How often the executor tells the scheduler it is alive (`--executor-heartbeat-interval-seconds`).
    pub executor_heartbeat_interval_seconds: u64,
    /// Bytes of memory for the tasks, shared by the slots (`--memory-pool-size`); `None`:
    /// 70% of the host's or cgroup's memory, Ballista's default.
    pub memory_pool_size: Option<u64>,
}

/// Runs a Ballista executor with mrpipe's codecs and `functions` until it is stopped
/// by SIGINT/SIGTERM; its shuffle files are removed on the way out. Errors: a bad
/// address, a port in use, no scheduler, and stopping for any other reason (the
/// scheduler dropped it, a service failed), so that a supervisor restarts it.
pub fn serve_executor(opts: &ExecutorOptions, functions: Vec<ScalarUDF>) -> Result<()> {
    let flight_address = socket_address(&opts.bind_host, opts.bind_port)?;
    let grpc_address = socket_address(&opts.bind_host, opts.bind_grpc_port)?;
    // Ballista's executor stops with success, and no word, when a port of its own is
    // taken: the Flight port is bound here and served by `flight_service`; the task
    // port is checked (Ballista binds it a moment later).
    let flight =
        std::net::TcpListener::bind(flight_address).map_err(|e| listen_error("--bind-port", flight_address, e))?;
    drop(std::net::TcpListener::bind(grpc_address).map_err(|e| listen_error("--bind-grpc-port", grpc_address, e))?);
    flight.set_nonblocking(true).map_err(|e| listen_error("--bind-port", flight_address, e))?;
    let mut registry = BallistaFunctionRegistry::default();
    for function in functions {
        registry.scalar_functions.insert(function.name().to_string(), Arc::new(function));
    }
    // Without --work-dir, a directory of its own in the system's temporary directory,
    // removed when this function returns.
    let (work_dir, _scratch) = match &opts.work_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            // A subdirectory: Ballista's cleaner takes every entry of the work dir for
            // a job's directory, and the scratch directory holds its `.owner` file.
            let scratch = crate::scratch::scratch_dir(&std::env::temp_dir())?;
            (scratch.path().join("shuffle"), Some(scratch))
        }
    };
    std::fs::create_dir_all(&work_dir).map_err(|e| Error::io(&work_dir, e))?;
    let config = ExecutorProcessConfig {
        bind_host: opts.bind_host.clone(),
        external_host: opts.external_host.clone(),
        port: opts.bind_port,
        grpc_port: opts.bind_grpc_port,
        scheduler_host: opts.scheduler_host.clone(),
        scheduler_port: opts.scheduler_port,
        vcores: opts.concurrent_tasks.max(1),
        work_dir: Some(work_dir.to_string_lossy().into_owned()),
        job_data_ttl_seconds: opts.job_data_ttl_seconds,
        job_data_clean_up_interval_seconds: opts.job_data_clean_up_interval_seconds.max(1),
        executor_heartbeat_interval_seconds: opts.executor_heartbeat_interval_seconds.max(1),
        memory_pool_size: opts.memory_pool_size,
        grpc_max_decoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_max_encoding_message_size: MAX_MESSAGE_BYTES as u32,
        override_function_registry: Some(Arc::new(registry)),
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        override_arrow_flight_service: Some(Arc::new(flight_service(flight))),
        ..ExecutorProcessConfig::default()
    };
    let scheduler = format!("{}:{}", opts.scheduler_host, opts.scheduler_port);
    runtime()?.block_on(async move {
        // Ballista stops on a signal and on everything else alike, with success; a
        // watcher of our own tells a requested stop from the others.
        let signalled = tokio::spawn(stopped());
        start_executor_process(Arc::new(config))
            .await
            .map_err(|e| Error::Cluster(format!("executor (scheduler {scheduler}): {e}")))?;
        match tokio::time::timeout(std::time::Duration::from_secs(1), signalled).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::Cluster(format!(
                "the executor stopped unasked: the scheduler at {scheduler} dropped it (it missed heartbeats for the \
                 scheduler's --executor-timeout-seconds) or one of its services failed; RUST_LOG=info shows Ballista's log"
            ))),
        }
    })
}

/// Ballista's Arrow Flight service (shuffle data for other executors) on `listener`,
/// bound beforehand so that a port in use is an error naming it.
fn flight_service(
    listener: std::net::TcpListener,
) -> impl Fn(String, SocketAddr, Shutdown, GrpcServerConfig) -> JoinHandle<ballista_core::error::Result<()>> + Send + Sync
{
    let listener = std::sync::Mutex::new(Some(listener));
    move |work_dir, _address, mut shutdown, grpc| {
        let listener = listener.lock().ok().and_then(|mut l| l.take());
        tokio::spawn(async move {
            let listener = listener.ok_or_else(|| BallistaError::General("the Flight port is served once".into()))?;
            let incoming = TcpListenerStream::new(TcpListener::from_std(listener)?);
            let service = FlightServiceServer::new(BallistaFlightService::new(work_dir))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            create_grpc_server(&grpc)
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, shutdown.recv())
                .await
                .map_err(BallistaError::TonicError)
        })
    }
}

fn listen_error(flag: &str, address: SocketAddr, e: std::io::Error) -> Error {
    Error::Cluster(format!("cannot listen on {address} ({flag}): {e}"))
}

fn socket_address(host: &str, port: u16) -> Result<SocketAddr> {
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| Error::Usage(format!("--bind-host '{host}' is not an IP address")))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(super::WORKER_STACK_BYTES)
        .enable_all()
        .build()
        .map_err(|e| Error::Cluster(format!("tokio runtime: {e}")))
}

/// Resolves on SIGINT or SIGTERM.
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
