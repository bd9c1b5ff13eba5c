//! Where caller-supplied expressions are parsed, planned and run: a runtime of its own
//! (`kho-query`), apart from the one that serves HTTP and ingest, with threads whose stacks
//! are large enough for the deepest expression the limits allow ([`limits`]). A CPU-heavy
//! query then holds only this runtime's threads; `/healthz` and appends keep answering.
//! Its time limit drops the query's future (and with it every task DataFusion spawned for
//! it) at the deadline, and [`shutdown`] drops every running query so that the process
//! stops within seconds of SIGTERM.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::{QueryError, Result};

/// Stack of each query thread: planning recurses once per expression level.
const STACK_BYTES: usize = 64 * 1024 * 1024;

struct Compute {
    runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
}

fn compute() -> &'static Compute {
    static COMPUTE: OnceLock<Compute> = OnceLock::new();
    COMPUTE.get_or_init(|| {
        // Leave a core to HTTP and ingest when there is more than one.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = cores.saturating_sub(1).max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .max_blocking_threads(workers.max(2))
            .thread_name("kho-query")
            .thread_stack_size(STACK_BYTES)
            .enable_all()
            .build()
            .expect("the query runtime starts");
        Compute {
            runtime,
            stop: watch::channel(false).0,
        }
    })
}

/// Runs `work` on the query runtime, for at most `limit`. Past the limit the work is
/// dropped and the caller gets a [`QueryError::Limit`] naming it; once [`shutdown`] has
/// been called, [`QueryError::ShuttingDown`].
pub async fn run<T, F>(limit: Duration, what: &str, work: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let c = compute();
    let mut stop = c.stop.subscribe();
    if *stop.borrow() {
        return Err(QueryError::ShuttingDown);
    }
    let mut task = c.runtime.spawn(work);
    tokio::select! {
        joined = &mut task => match joined {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(QueryError::Internal(format!("{what} failed: {e}"))),
            Err(_) => Err(QueryError::ShuttingDown),
        },
        () = tokio::time::sleep(limit) => {
            task.abort();
            Err(QueryError::Limit(format!(
                "{what} ran past its time limit of {} ms and was stopped",
                limit.as_millis()
            )))
        }
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            task.abort();
            Err(QueryError::ShuttingDown)
        }
    }
}

/// Runs a synchronous piece of planning (parsing, checking an expression) on a query
/// thread, whose stack holds the recursion the limits allow.
pub async fn plan<T, F>(what: &str, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    run(Duration::from_secs(30), what, async move { work() }).await
}

/// Drops every running query and refuses new ones: the process is stopping.
pub fn shutdown() {
    let c = compute();
    let _ = c.stop.send(true);
}
