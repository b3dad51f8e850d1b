//! Plugins written in Python: guards, providers and retrievers registered under a type name
//! (`aegis.register_guard("keywords", KeywordGuard)`) and then used from TOML like any
//! built-in type. Each is an adapter from a Rust contract to a Python object; the policy —
//! what a verdict may say, who may read a document — stays in Rust:
//!
//! - a guard's `check(subject, ctx)` sees the same data the `http` guard protocol
//!   (`aegis.guard.v1`) sends, and its answer is validated by the same function;
//! - a retriever's documents are checked against the caller's ACL again after it answers,
//!   and a call without a principal never reaches it.
//!
//! A plugin that raises, returns garbage or hangs is an `Err` of the contract, which the
//! engine treats by the plugin's policy (a guard's `fail_mode`, a deadline) — never a crash.
//! Python code runs on the runtime's blocking threads with the GIL held only while it runs;
//! an `async def` method runs on the event loop of the `await` that started the run (or, for
//! synchronous entry points, on a loop of its own).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use aegis::{
    Error, Guardrail, Provider, Registry, Retriever, RunEvent, Stage, TelemetrySink, async_trait,
};
use aegis_bindings::{DEFAULT_GUARD_STAGES, HostGuard, HostProvider, HostRetriever, PluginHost};
use pyo3::{exceptions::PyTimeoutError, prelude::*, types::PyTuple};
use serde_json::Value;

use crate::{convert, error, runtime::EVENT_LOOP};

/// What a plugin type implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `Guardrail` (`[[guardrails]]`).
    Guard,
    /// A `Provider` (`[[providers]]`).
    Provider,
    /// A `Retriever` (`[[retrievers]]`).
    Retriever,
    /// A `TelemetrySink` (`[[telemetry]]`).
    Telemetry,
}

impl Kind {
    fn registry_key(self) -> &'static str {
        match self {
            Self::Guard => "guardrails",
            Self::Provider => "providers",
            Self::Retriever => "retrievers",
            Self::Telemetry => "telemetry",
        }
    }
}

/// A registered plugin type: its kind, name, and the factory (a class, or any callable)
/// called with the instance's config table to make an instance.
#[derive(Clone)]
struct PluginType {
    kind: Kind,
    name: String,
    factory: Arc<Py<PyAny>>,
}

/// The plugin types registered in this process, in registration order.
static PLUGINS: Mutex<Vec<PluginType>> = Mutex::new(Vec::new());

/// Registers `factory` as plugin type `name` of `kind`. A built-in type's name is refused (a
/// config must mean the same thing with and without the plugin); registering a name again
/// replaces the earlier factory.
pub fn register(kind: Kind, name: &str, factory: Py<PyAny>) -> Result<(), Error> {
    aegis_bindings::check_plugin_name(kind.registry_key(), name)?;
    let mut plugins = PLUGINS.lock().unwrap_or_else(|p| p.into_inner());
    plugins.retain(|p| !(p.kind == kind && p.name == name));
    plugins.push(PluginType {
        kind,
        name: name.to_owned(),
        factory: Arc::new(factory),
    });
    Ok(())
}

/// The plugin types registered at one moment: what a pipeline is built (and, after a fork,
/// rebuilt) with.
#[derive(Clone)]
pub struct Snapshot(Vec<PluginType>);

/// The plugin types registered now. Taking the `Python` token proves the GIL is held: the
/// lock is never held across a fork (which needs the GIL).
pub fn snapshot(_py: Python<'_>) -> Snapshot {
    Snapshot(PLUGINS.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

impl Snapshot {
    /// The facade's registry plus these plugin types.
    pub fn registry(&self) -> Registry {
        registry_with(&self.0)
    }
}

fn registry_with(plugins: &[PluginType]) -> Registry {
    let mut r = aegis::registry();
    for p in plugins {
        let (factory, name) = (p.factory.clone(), p.name.clone());
        match p.kind {
            Kind::Guard => {
                r.register_guardrail::<Value, _>(&p.name, move |config, ctx| {
                    let instance = instantiate(&factory, &name, &config)?;
                    let who = format!("python guard `{}` ({name})", ctx.id);
                    let stages = attribute::<Vec<Stage>>(&instance, "stages", &who)?
                        .unwrap_or_else(|| DEFAULT_GUARD_STAGES.to_vec());
                    let host = PyHost::new(instance, who.clone(), "check")?;
                    Ok(Arc::new(HostGuard::new(ctx.id, who, stages, host)?) as Arc<dyn Guardrail>)
                });
            }
            Kind::Provider => {
                r.register_provider::<Value, _>(&p.name, move |config, ctx| {
                    let instance = instantiate(&factory, &name, &config)?;
                    let who = format!("python provider `{}` ({name})", ctx.id);
                    let deadline = deadline(&instance, &who, aegis_bindings::PROVIDER_DEADLINE)?;
                    let host = PyHost::new(instance, who.clone(), "chat")?;
                    let provider = HostProvider::new(ctx.id, who, host).with_deadline(deadline);
                    Ok(Arc::new(provider) as Arc<dyn Provider>)
                });
            }
            Kind::Retriever => {
                r.register_retriever::<Value, _>(&p.name, move |config, ctx| {
                    let instance = instantiate(&factory, &name, &config)?;
                    let who = format!("python retriever `{}` ({name})", ctx.id);
                    let deadline = deadline(&instance, &who, aegis_bindings::RETRIEVER_DEADLINE)?;
                    let host = PyHost::new(instance, who.clone(), "retrieve")?;
                    let retriever = HostRetriever::new(who, host).with_deadline(deadline);
                    Ok(Arc::new(retriever) as Arc<dyn Retriever>)
                });
            }
            Kind::Telemetry => {
                r.register_telemetry::<Value, _>(&p.name, move |config, ctx| {
                    let instance = instantiate(&factory, &name, &config)?;
                    Ok(Arc::new(PySink::spawn(ctx.id, instance)?) as Arc<dyn TelemetrySink>)
                });
            }
        }
    }
    r
}

/// The instance's `timeout_ms` attribute as a deadline, or `default`.
fn deadline(instance: &Py<PyAny>, who: &str, default: Duration) -> Result<Duration, Error> {
    Ok(attribute::<u64>(instance, "timeout_ms", who)?
        .map(Duration::from_millis)
        .unwrap_or(default))
}

/// `factory(config)`: the plugin instance for one config entry.
fn instantiate(factory: &Py<PyAny>, name: &str, config: &Value) -> Result<Py<PyAny>, Error> {
    Python::attach(|py| {
        let config = aegis_bindings::plugin_config(config.clone());
        let config = convert::to_py(py, &config).map_err(|e| error::from_plugin(py, name, &e))?;
        factory
            .call1(py, (config,))
            .map_err(|e| error::from_plugin(py, &format!("plugin type `{name}`"), &e))
    })
}

/// A Python plugin object: its methods are called on the runtime's blocking threads with the
/// GIL held only while Python runs; an awaitable answer is awaited first — on the event loop
/// of the `await` that started the run when there is one, else on a loop of its own.
struct PyHost {
    instance: Arc<Py<PyAny>>,
    who: String,
}

impl PyHost {
    /// `instance`, which must have a callable `method` (checked now, not at the first call).
    fn new(instance: Py<PyAny>, who: String, method: &str) -> Result<Self, Error> {
        let callable = Python::attach(|py| {
            instance
                .bind(py)
                .getattr(method)
                .is_ok_and(|m| m.is_callable())
        });
        if !callable {
            return Err(Error::config(format!(
                "{who}: the plugin object has no `{method}` method"
            )));
        }
        Ok(Self {
            instance: Arc::new(instance),
            who,
        })
    }
}

#[async_trait]
impl PluginHost for PyHost {
    async fn call(&self, method: &'static str, args: Vec<Value>) -> Result<Value, Error> {
        let event_loop = EVENT_LOOP.try_with(Arc::clone).ok();
        // Set when this call is dropped (a deadline, a cancelled caller): a coroutine still
        // running on the loop is cancelled then instead of running on unobserved.
        let abandoned = Arc::new(AtomicBool::new(false));
        let _on_drop = SetOnDrop(abandoned.clone());
        let (obj, who) = (self.instance.clone(), self.who.clone());
        let task = tokio::task::spawn_blocking(move || {
            Python::attach(|py| {
                let run = || -> PyResult<Value> {
                    let args = args
                        .iter()
                        .map(|a| convert::to_py(py, a))
                        .collect::<PyResult<Vec<_>>>()?;
                    let mut out = obj.bind(py).call_method1(method, PyTuple::new(py, args)?)?;
                    let asyncio = py.import("asyncio")?;
                    if asyncio.call_method1("iscoroutine", (&out,))?.is_truthy()? {
                        out = match &event_loop {
                            Some(l) => on_loop(py, out, l.bind(py), &abandoned)?,
                            None => asyncio.call_method1("run", (out,))?,
                        };
                    }
                    convert::from_py(&out)
                };
                run().map_err(|e| error::from_plugin(py, &who, &e))
            })
        });
        task.await
            .map_err(|e| error::internal(format!("{} did not finish: {e}", self.who)))?
    }
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `coroutine` on `event_loop` and waits for it (the GIL released while waiting), until
/// it finishes, the call is `abandoned` (the coroutine is cancelled), or the loop closes.
fn on_loop<'py>(
    py: Python<'py>,
    coroutine: Bound<'py, PyAny>,
    event_loop: &Bound<'py, PyAny>,
    abandoned: &AtomicBool,
) -> PyResult<Bound<'py, PyAny>> {
    let asyncio = py.import("asyncio")?;
    let future = asyncio.call_method1("run_coroutine_threadsafe", (coroutine, event_loop))?;
    loop {
        match future.call_method1("result", (0.05,)) {
            Ok(out) => return Ok(out),
            Err(e) if e.is_instance_of::<PyTimeoutError>(py) => {
                let closed = event_loop.call_method0("is_closed")?.is_truthy()?;
                if abandoned.load(Ordering::Relaxed) || closed {
                    future.call_method0("cancel")?;
                    return Err(PyTimeoutError::new_err(if closed {
                        "the event loop closed before the plugin answered"
                    } else {
                        "abandoned: the call's deadline passed or its caller went away"
                    }));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The optional attribute `name` of `obj`, as `T` from JSON.
fn attribute<T: serde::de::DeserializeOwned>(
    obj: &Py<PyAny>,
    name: &str,
    who: &str,
) -> Result<Option<T>, Error> {
    Python::attach(|py| {
        let obj = obj.bind(py);
        if !obj.hasattr(name).unwrap_or(false) {
            return Ok(None);
        }
        let value = obj
            .getattr(name)
            .and_then(|v| convert::from_py(&v))
            .map_err(|e| error::from_plugin(py, who, &e))?;
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| Error::config(format!("{who}: attribute `{name}`: {e}")))
    })
}

/// How many run events may wait for a Python sink before new ones are dropped (and
/// counted): a slow sink must not stall the pipeline, whose `on_event` may not block.
const SINK_QUEUE: usize = 65_536;

/// A telemetry sink written in Python: `on_event(event)` receives every run event (verdicts,
/// provider calls, the run's end, ...) as a dict, in order, on a thread of its own — never
/// on the pipeline's threads. Events that arrive while `SINK_QUEUE` are waiting are dropped,
/// and the sink is told how many with the next event it gets (`"dropped_before": n`).
struct PySink {
    queue: std::sync::mpsc::SyncSender<Value>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl PySink {
    fn spawn(id: &str, instance: Py<PyAny>) -> Result<Self, Error> {
        let (queue, events) = std::sync::mpsc::sync_channel::<Value>(SINK_QUEUE);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (who, lost) = (format!("python telemetry sink `{id}`"), dropped.clone());
        std::thread::Builder::new()
            .name(format!("aegis-sink-{id}"))
            .spawn(move || {
                // Ends when the pipeline (every sender) is dropped.
                for mut event in events {
                    let n = lost.swap(0, std::sync::atomic::Ordering::Relaxed);
                    if n > 0 {
                        event["dropped_before"] = n.into();
                    }
                    // At interpreter shutdown Python cannot be entered: stop delivering.
                    let entered = Python::try_attach(|py| {
                        let delivered = convert::to_py(py, &event)
                            .and_then(|e| instance.call_method1(py, "on_event", (e,)));
                        if let Err(e) = delivered {
                            // A failing sink is reported where Python reports such things
                            // (`sys.unraisablehook`), and the next event is still delivered.
                            let err = error::from_plugin(py, &who, &e);
                            pyo3::exceptions::PyRuntimeError::new_err(err.message().to_owned())
                                .write_unraisable(py, None);
                        }
                    });
                    if entered.is_none() {
                        break;
                    }
                }
            })
            .map_err(|e| error::internal(format!("cannot start the sink thread: {e}")))?;
        Ok(Self { queue, dropped })
    }
}

impl TelemetrySink for PySink {
    fn on_event(&self, event: &RunEvent) {
        let Ok(value) = serde_json::to_value(event) else {
            return;
        };
        if self.queue.try_send(value).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
