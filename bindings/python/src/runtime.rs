//! The tokio runtime the bindings run on, and the bridge from its futures to asyncio.
//!
//! **Fork.** A tokio runtime's worker threads do not survive `fork` (gunicorn's `--preload`,
//! `multiprocessing`): a child that used the parent's runtime would wait forever for threads
//! that are not there. So the runtime is per process: [`handle`] notices it is in a new
//! process and starts a fresh runtime; the parent's is leaked in the child (dropping it
//! would join threads that do not exist). Pipelines rebuild themselves the same way (see
//! `Pipeline` in `lib.rs`).
//!
//! **Awaitables.** [`awaitable`] spawns a future on the runtime and returns an asyncio
//! future of the caller's running loop, resolved from the runtime thread with
//! `loop.call_soon_threadsafe`. Cancelling the asyncio future aborts the task, so a
//! cancelled `await pipeline.chat(...)` ends its run (and releases what it reserved) the
//! same way a dropped Rust future does.

use std::{future::Future, panic::AssertUnwindSafe, sync::Mutex};

use futures_util::FutureExt;

use pyo3::prelude::*;

use crate::error::{internal, to_py};

/// The current process's runtime. Locked only by threads holding the GIL, and never across
/// a point that releases it — and `os.fork` needs the GIL — so a fork cannot happen while
/// the lock is held and leave it locked in the child.
static CURRENT: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);

/// The runtime of this process, started on first use (and again after a fork). Taking the
/// `Python` token proves the caller holds the GIL (see [`CURRENT`]).
pub fn handle(_py: Python<'_>) -> PyResult<tokio::runtime::Handle> {
    let pid = std::process::id();
    let mut current = CURRENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((owner, runtime)) = *current {
        if owner == pid {
            return Ok(runtime.handle().clone());
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("aegis")
        .enable_all()
        .build()
        .map_err(|e| to_py(internal(format!("cannot start the runtime: {e}"))))?;
    // Leaked on purpose: a runtime inherited through a fork must never be dropped.
    let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
    *current = Some((pid, runtime));
    Ok(runtime.handle().clone())
}

/// Runs `fut` to its end on the runtime, with the GIL released meanwhile (so plugins written
/// in Python can run on the runtime's threads). For the synchronous entry points.
pub fn block_on<T: Send>(
    py: Python<'_>,
    fut: impl Future<Output = Result<T, aegis::Error>> + Send,
) -> PyResult<T> {
    let rt = handle(py)?;
    // tokio refuses (panics) to block a thread that drives async tasks — a synchronous call
    // made from code the runtime itself runs. That is a typed error here, not a crash.
    let out = py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(fut))));
    match out {
        Ok(result) => result.map_err(to_py),
        Err(_) => Err(to_py(internal(
            "a synchronous Aegis call cannot run on the pipeline's own threads; await the async API instead",
        ))),
    }
}

/// What a bridged future produces: a conversion into a Python object, run with the GIL.
pub type Produce = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

tokio::task_local! {
    /// The asyncio loop of the `await` a task serves: a plugin's coroutine runs there.
    pub static EVENT_LOOP: std::sync::Arc<Py<PyAny>>;
}

/// `fut` as an asyncio future of the running loop.
///
/// **Fast path.** `fut` is polled once right here (the GIL released, inside the runtime's
/// context): a run that needs no I/O — the offline provider, guards that decide in-process —
/// finishes in that poll, and the asyncio future is resolved before it is returned, with no
/// hop to a runtime thread and back (two thread wake-ups: most of a call's cost from Python).
/// A run that is not finished is moved to the runtime and re-polled there at once, so every
/// wake-up it waits for is registered with the runtime's waker.
pub fn awaitable<'py>(
    py: Python<'py>,
    fut: impl Future<Output = Result<Produce, aegis::Error>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>> {
    let rt = handle(py)?;
    let asyncio = py.import("asyncio")?;
    let event_loop = asyncio.call_method0("get_running_loop")?;
    let py_future = event_loop.call_method0("create_future")?;
    let scope = std::sync::Arc::new(event_loop.clone().unbind());
    // A panic (a bug) must still resolve the awaitable, or its `await` would never end.
    let mut run = Box::pin(EVENT_LOOP.scope(scope, async move {
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(out) => out,
            Err(_) => Err(internal(
                "the call panicked (a bug in Aegis); nothing was returned",
            )),
        }
    }));
    let first = py.detach(|| {
        let _entered = rt.enter();
        let waker = futures_util::task::noop_waker();
        run.as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
    });
    if let std::task::Poll::Ready(out) = first {
        match out.map_err(to_py).and_then(|produce| produce(py)) {
            Ok(v) => py_future.call_method1("set_result", (v,))?,
            Err(e) => py_future.call_method1("set_exception", (e.into_value(py),))?,
        };
        return Ok(py_future);
    }
    let (loop_ref, future_ref) = (event_loop.clone().unbind(), py_future.clone().unbind());
    let task = rt.spawn(async move {
        let out = run.await;
        Python::attach(|py| {
            let (ok, value) = match out.map_err(to_py).and_then(|produce| produce(py)) {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            let resolve = match wrap_pyfunction!(resolve, py) {
                Ok(f) => f,
                Err(e) => return e.write_unraisable(py, None),
            };
            // The loop may be closed by now (the caller went away): nothing to tell.
            let _ =
                loop_ref.call_method1(py, "call_soon_threadsafe", (resolve, future_ref, ok, value));
        });
    });
    py_future.call_method1("add_done_callback", (Canceller(task.abort_handle()),))?;
    Ok(py_future)
}

/// Sets the outcome of `future` unless it is already done (cancelled by its caller).
#[pyfunction]
fn resolve(future: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        future.call_method1("set_result", (value,))?;
    } else {
        future.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// Aborts the task behind an asyncio future when that future is cancelled.
#[pyclass(frozen)]
struct Canceller(tokio::task::AbortHandle);

#[pymethods]
impl Canceller {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.0.abort();
        }
        Ok(())
    }
}
