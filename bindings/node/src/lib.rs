//! `aegis-pipeline` for Node: the governed pipeline in-process. A thin adapter — JSON-shaped
//! values in and out, Promises over napi's tokio runtime; every decision is made by the
//! same Rust code the gateway runs. `lib/index.js` wraps this native module with the
//! public API (`Pipeline.fromToml`, async iterators, `AegisError`).

use std::sync::Arc;

use aegis::config::AegisConfig;
use std::future::Future;

use napi::{
    Env,
    bindgen_prelude::{Either, PromiseRaw, ToNapiValue, block_on, within_runtime_if_available},
};
use napi_derive::napi;
use serde_json::{Value, json};

pub mod plugins;

/// An `aegis::Error` as a JS error whose message is JSON (`kind`, `code`, `message`,
/// `run_id`, `status`); `lib/index.js` turns it into an `AegisError` with those fields.
fn js_error(e: aegis::Error) -> napi::Error {
    let kind = serde_json::to_value(e.kind()).unwrap_or(Value::Null);
    let body = json!({
        "kind": kind,
        "code": e.code(),
        "message": e.message(),
        "run_id": e.run_id(),
        "status": e.kind().http_status(),
        "details": e.details(),
    });
    napi::Error::from_reason(format!("aegis:{body}"))
}

/// `fut`'s value now if it finishes in one poll (a run that needs no I/O: the offline
/// provider, in-process guards), else a Promise of it. The poll runs inside the runtime's
/// context; an unfinished future moves to the runtime and is polled again there at once, so
/// every wake-up it waits for is registered with the runtime's waker. Saves the two thread
/// hops (to a runtime thread and back through the event loop) that dominate a fast call.
fn now_or_promise<'env, T>(
    env: &'env Env,
    fut: impl Future<Output = napi::Result<T>> + Send + 'static,
) -> napi::Result<Either<T, PromiseRaw<'env, T>>>
where
    T: ToNapiValue + Send + 'static,
{
    let mut fut = Box::pin(fut);
    let first = within_runtime_if_available(|| {
        let waker = futures_util::task::noop_waker();
        fut.as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
    });
    match first {
        std::task::Poll::Ready(out) => out.map(Either::A),
        std::task::Poll::Pending => env.spawn_future(fut).map(Either::B),
    }
}

/// The native pipeline (see `index.js` for the public `Pipeline`).
#[napi]
pub struct NativePipeline {
    inner: aegis::Pipeline,
}

fn build(config: AegisConfig, store: Option<String>) -> napi::Result<NativePipeline> {
    let inner = block_on(aegis_bindings::build(
        plugins::registry(),
        &config,
        store.as_deref(),
    ))
    .map_err(js_error)?;
    Ok(NativePipeline { inner })
}

#[napi]
impl NativePipeline {
    /// A pipeline from TOML text (with `AEGIS_*` overrides from the environment); `store`
    /// is a database URL keeping runs, approvals and budgets.
    #[napi(factory)]
    pub fn from_toml(text: String, store: Option<String>) -> napi::Result<Self> {
        build(
            AegisConfig::from_toml_str(&text, std::env::vars()).map_err(js_error)?,
            store,
        )
    }

    /// A pipeline from an object shaped like the TOML file.
    #[napi(factory)]
    pub fn from_object(config: Value, store: Option<String>) -> napi::Result<Self> {
        build(AegisConfig::from_json(config).map_err(js_error)?, store)
    }

    /// Runs a chat request: a `chat.completion` object, or a paused run. A streamed request
    /// goes through `stream`.
    #[napi(ts_return_type = "any")]
    pub fn chat<'env>(
        &self,
        env: &'env Env,
        request: Value,
        principal: Option<Value>,
    ) -> napi::Result<Either<Value, PromiseRaw<'env, Value>>> {
        let req = aegis_bindings::request(request, principal).map_err(js_error)?;
        let pipeline = self.inner.clone();
        now_or_promise(env, async move {
            let outcome = pipeline.run(req).await.map_err(js_error)?;
            aegis_bindings::answer(outcome).await.map_err(js_error)
        })
    }

    /// Runs a streamed chat request: a stream of `chat.completion.chunk` objects (a whole
    /// answer is one chunk), or — when the run paused — a stream whose `paused()` is the
    /// paused run.
    #[napi]
    pub async fn stream(
        &self,
        request: Value,
        principal: Option<Value>,
    ) -> napi::Result<NativeStream> {
        let mut req = aegis_bindings::request(request, principal).map_err(js_error)?;
        req.stream = true;
        let outcome = self.inner.clone().run(req).await.map_err(js_error)?;
        Ok(match aegis_bindings::streamed(outcome) {
            aegis_bindings::Streamed::Paused(run) => NativeStream {
                inner: None,
                meta: Value::Null,
                paused: Some(run),
            },
            aegis_bindings::Streamed::Stream { meta, stream } => NativeStream {
                inner: Some(Arc::new(tokio::sync::Mutex::new(stream))),
                meta,
                paused: None,
            },
        })
    }

    /// Decides a paused run (`approve`, `reject` with a reason, `edit` with a value).
    #[napi]
    pub async fn resume(
        &self,
        run_id: String,
        decision: String,
        reason: Option<String>,
        value: Option<Value>,
    ) -> napi::Result<Value> {
        let decision = aegis_bindings::decision(&decision, reason, value).map_err(js_error)?;
        let outcome = self
            .inner
            .clone()
            .resume(&run_id, decision)
            .await
            .map_err(js_error)?;
        aegis_bindings::answer(outcome).await.map_err(js_error)
    }

    /// Judges `text` with the guard chain as `stage` (default `input`): the report `aegis
    /// scan` prints. A Promise: a guard written in JavaScript runs on this thread.
    #[napi]
    pub async fn scan(&self, text: String, stage: Option<String>) -> napi::Result<Value> {
        let stage = stage.unwrap_or_else(|| "input".into());
        aegis_bindings::scan(&self.inner, text, &stage)
            .await
            .map_err(js_error)
    }

    /// The `provider/model` names the pipeline routes.
    #[napi]
    pub fn models(&self) -> Vec<String> {
        self.inner
            .models()
            .into_iter()
            .map(|(provider, model)| format!("{provider}/{model}"))
            .collect()
    }

    /// The lifecycle graph as Mermaid text.
    #[napi]
    pub fn graph_mermaid(&self) -> String {
        self.inner.graph().to_mermaid()
    }
}

/// A streamed answer. Dropping it (garbage collection, or `close`) ends its run.
#[napi]
pub struct NativeStream {
    inner: Option<Arc<tokio::sync::Mutex<aegis_bindings::OwnedStream>>>,
    meta: Value,
    paused: Option<Value>,
}

#[napi]
impl NativeStream {
    /// The next `chat.completion.chunk`, or `null` at the end.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<Value>> {
        match &self.inner {
            Some(inner) => inner.lock().await.next().await.map_err(js_error),
            None => Ok(None),
        }
    }

    /// Ends the stream (and its run) now.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        if let Some(inner) = &self.inner {
            inner.lock().await.close();
        }
        Ok(())
    }

    /// The paused run, when the request paused for a human decision.
    #[napi]
    pub fn paused(&self) -> Option<Value> {
        self.paused.clone()
    }

    /// The run's metadata: `run_id`, `provider`, `guards`, `region`, `retrieval`.
    #[napi]
    pub fn meta(&self) -> Value {
        self.meta.clone()
    }
}
