//! `aegis` for Python: the governed pipeline in-process. A thin adapter — conversion between
//! Python objects and the pipeline's JSON-shaped types, an asyncio bridge, and plugin
//! adapters; every decision is made by the same Rust code the gateway runs.

use std::sync::{Arc, Mutex};

use aegis::config::AegisConfig;
use pyo3::{exceptions::PyStopAsyncIteration, prelude::*, types::PyDict};
use serde_json::Value;

mod convert;
mod error;
mod plugins;
mod runtime;

use error::{AegisError, to_py};
use runtime::{Produce, awaitable, block_on};

/// Where a pipeline's config came from, kept so a forked child can build its own.
#[derive(Clone)]
enum Source {
    Toml(String),
    Json(Value),
}

/// A pipeline and the process it was built in.
struct Built {
    pid: u32,
    pipeline: Option<aegis::Pipeline>,
}

impl Drop for Built {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // Inherited through a fork: its sockets are registered with the parent's epoll
            // (shared with this process), and dropping them would deregister the parent's.
            std::mem::forget(self.pipeline.take());
        }
    }
}

/// A governed pipeline, built from TOML or a dict with the built-in plugin types and every
/// type registered with `register_guard`, `register_provider` or `register_retriever`.
///
/// After `os.fork` (gunicorn `--preload`, `multiprocessing`) a pipeline built in the parent
/// rebuilds itself from the same config on first use in the child — its connections and
/// threads did not survive the fork. In-memory state (paused runs without a `store`, an
/// in-process budget ledger) is per process; with a `store`, the child sees the parent's
/// runs.
#[pyclass(frozen, module = "aegis")]
struct Pipeline {
    /// What it was built from — config, the environment's `AEGIS_*` overrides, the plugin
    /// types registered then, the store — so a forked child builds the same pipeline.
    source: Source,
    env: Vec<(String, String)>,
    plugins: plugins::Snapshot,
    store: Option<String>,
    built: Mutex<Built>,
}

impl Pipeline {
    fn new(py: Python<'_>, source: Source, store: Option<String>) -> PyResult<Self> {
        let mut this = Self {
            source,
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("AEGIS_"))
                .collect(),
            // Taken with the GIL held: no lock of ours is held while it is released.
            plugins: plugins::snapshot(py),
            store,
            built: Mutex::new(Built {
                pid: std::process::id(),
                pipeline: None,
            }),
        };
        let pipeline = this.build(py)?;
        this.built
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .pipeline = Some(pipeline);
        Ok(this)
    }

    fn build(&self, py: Python<'_>) -> PyResult<aegis::Pipeline> {
        let config = match &self.source {
            Source::Toml(text) => AegisConfig::from_toml_str(text, self.env.iter().cloned()),
            Source::Json(value) => AegisConfig::from_json(value.clone()),
        }
        .map_err(to_py)?;
        let registry = self.plugins.registry();
        block_on(
            py,
            aegis_bindings::build(registry, &config, self.store.as_deref()),
        )
    }

    /// The pipeline of this process (rebuilt after a fork). The lock is never held while
    /// the GIL is released: a build may call Python plugin factories.
    fn current(&self, py: Python<'_>) -> PyResult<aegis::Pipeline> {
        let pid = std::process::id();
        {
            let built = self.built.lock().unwrap_or_else(|p| p.into_inner());
            if let (true, Some(p)) = (built.pid == pid, &built.pipeline) {
                return Ok(p.clone());
            }
        }
        let pipeline = self.build(py)?;
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        // The parent's is forgotten, not dropped (see `Built`'s `Drop`).
        *built = Built {
            pid,
            pipeline: Some(pipeline.clone()),
        };
        Ok(pipeline)
    }
}

#[pymethods]
impl Pipeline {
    /// Builds a pipeline from TOML text (with `AEGIS_*` overrides from the environment).
    /// `store` is a database URL (`sqlite://runs.db?mode=rwc`, `postgres://…`) keeping runs,
    /// paused approvals and budgets across processes; without one they live in memory.
    #[staticmethod]
    #[pyo3(signature = (text, *, store = None))]
    fn from_toml(py: Python<'_>, text: String, store: Option<String>) -> PyResult<Self> {
        Self::new(py, Source::Toml(text), store)
    }

    /// Builds a pipeline from a dict shaped like the TOML file.
    #[staticmethod]
    #[pyo3(signature = (config, *, store = None))]
    fn from_dict(
        py: Python<'_>,
        config: &Bound<'_, PyAny>,
        store: Option<String>,
    ) -> PyResult<Self> {
        Self::new(py, Source::Json(convert::from_py(config)?), store)
    }

    /// Runs an OpenAI-shaped chat request (a dict) through the pipeline. Awaits to a
    /// `chat.completion` dict (with Aegis's metadata under `aegis`), to an async iterator
    /// of `chat.completion.chunk` dicts when `stream` is true, or — when a guard asks for a
    /// human decision — to a paused run (`{"object": "aegis.run", "status": "paused",
    /// "id": …}`) to `resume`. `principal` (`{"id", "team", "org", "roles", "labels"}`)
    /// is the caller the host authenticated: budgets, residency and retrieval use it.
    /// Raises `AegisError` (`kind` = `policy_blocked`, `budget_exceeded`, ...).
    #[pyo3(signature = (request, *, principal = None))]
    fn chat<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
        principal: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let principal = principal.map(convert::from_py).transpose()?;
        let req = aegis_bindings::request(convert::from_py(request)?, principal).map_err(to_py)?;
        let pipeline = self.current(py)?;
        awaitable(py, async move {
            let streamed = req.stream;
            let outcome = pipeline.run(req).await?;
            if !streamed {
                return Ok(json_result(aegis_bindings::answer(outcome).await?));
            }
            Ok(match aegis_bindings::streamed(outcome) {
                aegis_bindings::Streamed::Paused(run) => json_result(run),
                aegis_bindings::Streamed::Stream { meta, stream } => {
                    Box::new(move |py: Python<'_>| {
                        let stream = ChatStream {
                            inner: Arc::new(tokio::sync::Mutex::new(stream)),
                            meta,
                        };
                        Ok(Py::new(py, stream)?.into_any())
                    }) as Produce
                }
            })
        })
    }

    /// Decides a paused run: `decision` is `approve`, `reject` (with a `reason`) or `edit`
    /// (with the replacement `value`). Awaits to what `chat` would have answered.
    #[pyo3(signature = (run_id, decision = "approve", *, reason = None, value = None))]
    fn resume<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
        decision: &str,
        reason: Option<String>,
        value: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = value.map(convert::from_py).transpose()?;
        let decision = aegis_bindings::decision(decision, reason, value).map_err(to_py)?;
        let pipeline = self.current(py)?;
        awaitable(py, async move {
            let outcome = pipeline.resume(&run_id, decision).await?;
            Ok(json_result(aegis_bindings::answer(outcome).await?))
        })
    }

    /// Judges `text` with the pipeline's guard chain as `stage` (`input`, `output`,
    /// `tool_result`, `retrieved`) and returns the report `aegis scan` prints: `verdict`,
    /// `guard`, `reason`, `findings` (byte offsets into `text`) and `sanitized`. Blocks
    /// the calling thread (the GIL is released meanwhile).
    #[pyo3(signature = (text, *, stage = "input"))]
    fn scan(&self, py: Python<'_>, text: String, stage: &str) -> PyResult<Py<PyAny>> {
        let pipeline = self.current(py)?;
        let report = block_on(py, aegis_bindings::scan(&pipeline, text, stage))?;
        convert::to_py(py, &report)
    }

    /// The `provider/model` names the pipeline routes.
    fn models(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        Ok(self
            .current(py)?
            .models()
            .into_iter()
            .map(|(provider, model)| format!("{provider}/{model}"))
            .collect())
    }

    /// The lifecycle graph as Mermaid text.
    fn graph_mermaid(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.current(py)?.graph().to_mermaid())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let p = self.current(py)?;
        Ok(format!(
            "<aegis.Pipeline providers={:?} guards={:?}>",
            p.provider_ids(),
            p.chain()
                .entries()
                .iter()
                .map(|e| e.id().to_owned())
                .collect::<Vec<_>>()
        ))
    }
}

fn json_result(value: Value) -> Produce {
    Box::new(move |py: Python<'_>| convert::to_py(py, &value))
}

/// A streamed answer: an async iterator of `chat.completion.chunk` dicts. The run ends when
/// the iterator is exhausted, closed (`aclose`), or garbage-collected — what a stream
/// reserved (a budget) is released or settled then, never leaked.
#[pyclass(frozen, module = "aegis")]
struct ChatStream {
    inner: Arc<tokio::sync::Mutex<aegis_bindings::OwnedStream>>,
    meta: Value,
}

#[pymethods]
impl ChatStream {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        awaitable(py, async move {
            Ok(match inner.lock().await.next().await? {
                Some(chunk) => json_result(chunk),
                None => {
                    Box::new(|_py: Python<'_>| Err(PyStopAsyncIteration::new_err(()))) as Produce
                }
            })
        })
    }

    /// Ends the stream (and its run) — after the chunk being awaited, if any.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        awaitable(py, async move {
            inner.lock().await.close();
            Ok(json_result(Value::Null))
        })
    }

    /// The run's metadata: `run_id`, `provider`, `guards`, `region`, `retrieval`.
    #[getter]
    fn aegis(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        convert::to_py(py, &self.meta)
    }
}

/// Registers a guard type written in Python. `factory(config)` (usually the class) makes an
/// instance from a `[[guardrails]]` entry's table; the instance's `check(subject, ctx)`
/// returns an `aegis.Verdict` (or a dict of the same shape), sync or `async`. An optional
/// `stages` attribute lists the stages it judges.
#[pyfunction]
fn register_guard(name: &str, factory: Py<PyAny>) -> PyResult<()> {
    plugins::register(plugins::Kind::Guard, name, factory).map_err(to_py)
}

/// Registers a provider type written in Python: the instance's `chat(request)` takes an
/// OpenAI-shaped request dict and returns a `chat.completion` dict (sync or `async`).
#[pyfunction]
fn register_provider(name: &str, factory: Py<PyAny>) -> PyResult<()> {
    plugins::register(plugins::Kind::Provider, name, factory).map_err(to_py)
}

/// Registers a retriever type written in Python: the instance's `retrieve(query, k,
/// filter, ctx)` returns a list of documents (`{"id", "content", "metadata", "score"}`).
/// Aegis re-checks each document's `metadata.acl` against the caller: a document the
/// caller may not read is dropped even if the store returned it.
#[pyfunction]
fn register_retriever(name: &str, factory: Py<PyAny>) -> PyResult<()> {
    plugins::register(plugins::Kind::Retriever, name, factory).map_err(to_py)
}

/// Registers a telemetry sink type written in Python: the instance's `on_event(event)`
/// receives every run event as a dict (`run_id`, `at_ms`, `kind`, ...), in order, on a
/// thread of its own.
#[pyfunction]
fn register_telemetry(name: &str, factory: Py<PyAny>) -> PyResult<()> {
    plugins::register(plugins::Kind::Telemetry, name, factory).map_err(to_py)
}

/// Whether `principal` may read a document whose ACL (`metadata["acl"]`) is `acl` — the
/// rule every Aegis store applies, for adapters that filter inside a foreign store.
#[pyfunction]
fn acl_allows(acl: &Bound<'_, PyAny>, principal: &Bound<'_, PyAny>) -> PyResult<bool> {
    aegis_bindings::acl_allows(convert::from_py(acl)?, convert::from_py(principal)?).map_err(to_py)
}

/// The registered plugin type names per kind (built-in and Python).
#[pyfunction]
fn plugin_types(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let names = plugins::snapshot(py).registry().type_names();
    let dict = PyDict::new(py);
    for (kind, names) in names {
        dict.set_item(kind, names)?;
    }
    Ok(dict.into_any().unbind())
}

/// The native module behind the `aegis` package.
#[pymodule]
fn _aegis(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("AegisError", m.py().get_type::<AegisError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Pipeline>()?;
    m.add_class::<ChatStream>()?;
    m.add_function(wrap_pyfunction!(register_guard, m)?)?;
    m.add_function(wrap_pyfunction!(register_provider, m)?)?;
    m.add_function(wrap_pyfunction!(register_retriever, m)?)?;
    m.add_function(wrap_pyfunction!(register_telemetry, m)?)?;
    m.add_function(wrap_pyfunction!(acl_allows, m)?)?;
    m.add_function(wrap_pyfunction!(plugin_types, m)?)?;
    Ok(())
}
