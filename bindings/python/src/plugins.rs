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

use std::sync::{Arc, Mutex};

use aegis::{
    ChatRequest, ChatResponse, Document, Error, Filter, Granularity, GuardCapabilities,
    GuardSubject, Guardrail, Provider, ProviderCapabilities, Registry, RequestContext,
    ResponseMeta, Retriever, RunEvent, Stage, TelemetrySink, Verdict, async_trait,
};
use pyo3::{prelude::*, types::PyTuple};
use serde_json::{Value, json};

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
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(Error::invalid_request(format!(
            "plugin type name `{name}`: use letters, digits, `_`, `-` and `.`"
        )));
    }
    let builtin = aegis::registry().type_names();
    if builtin
        .get(kind.registry_key())
        .is_some_and(|names| names.iter().any(|n| n == name))
    {
        return Err(Error::invalid_request(format!(
            "`{name}` is a built-in {} type; register the plugin under another name",
            kind.registry_key()
        )));
    }
    let mut plugins = PLUGINS.lock().unwrap_or_else(|p| p.into_inner());
    plugins.retain(|p| !(p.kind == kind && p.name == name));
    plugins.push(PluginType {
        kind,
        name: name.to_owned(),
        factory: Arc::new(factory),
    });
    Ok(())
}

/// The facade's registry plus every plugin type registered from Python.
pub fn registry() -> Registry {
    let mut r = aegis::registry();
    let plugins = PLUGINS.lock().unwrap_or_else(|p| p.into_inner());
    for p in plugins.iter() {
        let (factory, name) = (p.factory.clone(), p.name.clone());
        match p.kind {
            Kind::Guard => {
                r.register_guardrail::<Value, _>(&p.name, move |config, ctx| {
                    let instance = instantiate(&factory, &name, &config)?;
                    Ok(Arc::new(PyGuard::new(ctx.id, &name, instance)?) as Arc<dyn Guardrail>)
                });
            }
            Kind::Provider => {
                r.register_provider::<Value, _>(&p.name, move |config, ctx| {
                    let instance = instantiate(&factory, &name, &config)?;
                    Ok(Arc::new(PyProvider::new(ctx.id, instance)) as Arc<dyn Provider>)
                });
            }
            Kind::Retriever => {
                r.register_retriever::<Value, _>(&p.name, move |config, ctx| {
                    let instance = instantiate(&factory, &name, &config)?;
                    Ok(Arc::new(PyRetriever::new(ctx.id, instance)) as Arc<dyn Retriever>)
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

/// `factory(config)`: the plugin instance for one config entry.
fn instantiate(factory: &Py<PyAny>, name: &str, config: &Value) -> Result<Py<PyAny>, Error> {
    Python::attach(|py| {
        // An entry without a `config` table gets an empty one.
        let config = match config {
            Value::Null => Value::Object(Default::default()),
            other => other.clone(),
        };
        let config = convert::to_py(py, &config).map_err(|e| error::from_plugin(py, name, &e))?;
        factory
            .call1(py, (config,))
            .map_err(|e| error::from_plugin(py, &format!("plugin type `{name}`"), &e))
    })
}

/// Calls `obj.method(*args)` on a blocking thread and returns its answer as JSON; an
/// awaitable answer is awaited first (on the run's event loop when there is one).
async fn call(
    obj: Arc<Py<PyAny>>,
    who: String,
    method: &'static str,
    args: Vec<Value>,
) -> Result<Value, Error> {
    let event_loop = EVENT_LOOP
        .try_with(|l| Python::attach(|py| l.clone_ref(py)))
        .ok();
    let label = who.clone();
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
                        Some(l) => asyncio
                            .call_method1("run_coroutine_threadsafe", (out, l))?
                            .call_method0("result")?,
                        None => asyncio.call_method1("run", (out,))?,
                    };
                }
                convert::from_py(&out)
            };
            run().map_err(|e| error::from_plugin(py, &label, &e))
        })
    });
    task.await
        .map_err(|e| error::internal(format!("{who} did not finish: {e}")))?
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

/// A guard written in Python: `check(subject, ctx)` returns a verdict (`aegis.Verdict` or a
/// dict of the same shape). `stages` (optional attribute) lists where it runs.
struct PyGuard {
    id: String,
    who: String,
    stages: Vec<Stage>,
    instance: Arc<Py<PyAny>>,
}

impl PyGuard {
    fn new(id: &str, type_name: &str, instance: Py<PyAny>) -> Result<Self, Error> {
        let who = format!("python guard `{id}` ({type_name})");
        let stages = attribute::<Vec<Stage>>(&instance, "stages", &who)?.unwrap_or_else(|| {
            vec![
                Stage::Input,
                Stage::Output,
                Stage::ToolResult,
                Stage::Retrieved,
            ]
        });
        if stages.is_empty() {
            return Err(Error::config(format!(
                "{who}: `stages` must name at least one stage"
            )));
        }
        let callable = Python::attach(|py| {
            instance
                .bind(py)
                .getattr("check")
                .is_ok_and(|m| m.is_callable())
        });
        if !callable {
            return Err(Error::config(format!(
                "{who}: the instance has no `check(subject, ctx)` method"
            )));
        }
        Ok(Self {
            id: id.to_owned(),
            who,
            stages,
            instance: Arc::new(instance),
        })
    }
}

#[async_trait]
impl Guardrail for PyGuard {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(self.stages.clone(), Granularity::FullText).sanitizing()
    }

    async fn check(&self, subject: &GuardSubject, ctx: &RequestContext) -> Result<Verdict, Error> {
        // The `aegis.guard.v1` call, split into the two arguments: the subject (with its
        // stage and segments) and the run's context (with the guard's id).
        let call = aegis::adapters::GuardCall::new(&self.id, subject, ctx);
        let mut call = serde_json::to_value(&call)
            .map_err(|e| error::internal(format!("a guard call does not serialize: {e}")))?;
        let mut subject_arg = call["subject"].take();
        subject_arg["stage"] = call["stage"].take();
        subject_arg["segments"] = call["segments"].take();
        let mut ctx_arg = call["context"].take();
        ctx_arg["guard"] = call["guard"].take();
        let answer = call_method(self, "check", vec![subject_arg, ctx_arg]).await?;
        aegis::adapters::verdict_from(answer, subject, &self.who)
    }
}

async fn call_method(
    guard: &PyGuard,
    method: &'static str,
    args: Vec<Value>,
) -> Result<Value, Error> {
    call(guard.instance.clone(), guard.who.clone(), method, args).await
}

/// A provider written in Python: `chat(request)` takes an OpenAI-shaped request dict and
/// returns an OpenAI `chat.completion` dict. A streamed request gets the answer as one
/// chunk.
struct PyProvider {
    id: String,
    who: String,
    instance: Arc<Py<PyAny>>,
}

impl PyProvider {
    fn new(id: &str, instance: Py<PyAny>) -> Self {
        Self {
            id: id.to_owned(),
            who: format!("python provider `{id}`"),
            instance: Arc::new(instance),
        }
    }
}

#[async_trait]
impl Provider for PyProvider {
    fn name(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> ProviderCapabilities {
        // Streamed requests are answered with the whole answer as one chunk.
        let mut caps = ProviderCapabilities::default();
        caps.streaming = true;
        caps
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        let stream = req.stream;
        let mut body = serde_json::to_value(&req)
            .map_err(|e| error::internal(format!("a request does not serialize: {e}")))?;
        if let Some(o) = body.as_object_mut() {
            o.remove("ctx");
        }
        let answer = call(self.instance.clone(), self.who.clone(), "chat", vec![body]).await?;
        let bad = |e: serde_json::Error| {
            Error::provider(format!(
                "{} answered something that is not a chat.completion: {e}",
                self.who
            ))
        };
        let completion = aegis::providers::wire::completion_from_openai(answer.clone()).map_err(bad)?;
        if completion.choices.is_empty() {
            return Err(Error::provider(format!("{} answered no choices", self.who)));
        }
        let model = completion.model.clone();
        if !stream {
            return Ok(ChatResponse::complete(
                ResponseMeta::new(self.id.clone(), model),
                completion,
            ));
        }
        let mut chunk: aegis::ChatChunk = serde_json::from_value(json!({
            "id": answer["id"],
            "model": answer["model"],
            "created": answer["created"],
            "choices": answer["choices"].as_array().map(|cs| cs.iter().map(|c| json!({
                "index": c["index"],
                "delta": c["message"],
                "finish_reason": c["finish_reason"],
            })).collect::<Vec<_>>()),
        }))
        .map_err(bad)?;
        chunk.usage = completion.usage;
        Ok(ChatResponse::stream(
            ResponseMeta::new(self.id.clone(), model),
            Box::pin(futures_util::stream::iter([Ok(chunk)])),
        ))
    }
}

/// A retriever written in Python: `retrieve(query, k, filter, ctx)` returns documents
/// (`{"id", "content", "metadata", "score"}`). Aegis refuses a call without a principal
/// before it reaches Python, and drops any document whose `acl` metadata does not admit the
/// caller after it answers — so a foreign store that ignores permissions cannot leak.
struct PyRetriever {
    who: String,
    instance: Arc<Py<PyAny>>,
}

impl PyRetriever {
    fn new(id: &str, instance: Py<PyAny>) -> Self {
        Self {
            who: format!("python retriever `{id}`"),
            instance: Arc::new(instance),
        }
    }
}

#[async_trait]
impl Retriever for PyRetriever {
    async fn retrieve(
        &self,
        query: &str,
        k: usize,
        filter: Option<&Filter>,
        ctx: &RequestContext,
    ) -> Result<Vec<Document>, Error> {
        let Some(reader) = ctx.principal.clone() else {
            return Err(Error::new(
                aegis::ErrorKind::Unauthenticated,
                format!("{}: retrieval needs an authenticated principal", self.who),
            ));
        };
        let args = vec![
            json!(query),
            json!(k),
            serde_json::to_value(filter).unwrap_or(Value::Null),
            json!({
                "run_id": ctx.run_id,
                "principal": reader,
                "labels": ctx.labels,
            }),
        ];
        let answer = call(self.instance.clone(), self.who.clone(), "retrieve", args).await?;
        let docs: Vec<Document> = serde_json::from_value(answer).map_err(|e| {
            Error::provider(format!(
                "{} answered something that is not a list of documents: {e}",
                self.who
            ))
        })?;
        let mut readable = Vec::with_capacity(docs.len().min(k));
        for doc in docs {
            // A document whose ACL is missing or malformed is read by nobody.
            if aegis::rag::Acl::of(&doc).is_ok_and(|acl| acl.allows(&reader)) {
                readable.push(doc);
            }
        }
        readable.truncate(k);
        Ok(readable)
    }
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
                    Python::attach(|py| {
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
