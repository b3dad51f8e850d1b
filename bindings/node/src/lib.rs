//! `aegis-pipeline` for Node: the governed pipeline in-process. A thin adapter — JSON-shaped
//! values in and out, Promises over napi's tokio runtime; every decision is made by the
//! same Rust code the gateway runs. `lib/index.js` wraps this native module with the
//! public API (`Pipeline.fromToml`, async iterators, `AegisError`).

use std::sync::Arc;

use aegis::{
    Approval, BudgetLedger, ChatBody, ChatRequest, CheckpointStore, PipelineOutcome, Principal,
    Stage,
    config::AegisConfig,
    providers::wire::{chunk_to_openai, completion_to_openai},
};
use futures_util::StreamExt;
use napi::bindgen_prelude::block_on;
use napi_derive::napi;
use serde_json::{Value, json};

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

fn invalid(message: impl Into<String>) -> napi::Error {
    js_error(aegis::Error::invalid_request(message))
}

fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> napi::Result<T> {
    serde_json::from_value(value).map_err(|e| invalid(format!("{what} is not valid: {e}")))
}

async fn build(
    config: AegisConfig,
    store: Option<String>,
) -> Result<aegis::Pipeline, aegis::Error> {
    let mut registry = aegis::registry();
    let checkpoints: Option<Arc<dyn CheckpointStore>> = match store {
        None => None,
        Some(url) => {
            let db = aegis_store::Store::connect(&url).await?;
            // Budgets spend through the same database, so processes share one ledger.
            registry.insert_extension::<Arc<dyn BudgetLedger>>(Arc::new(db.clone()));
            Some(Arc::new(db))
        }
    };
    aegis::Pipeline::from_config_with_store(&registry, &config, checkpoints).await
}

/// The native pipeline (see `lib/index.js` for the public `Pipeline`).
#[napi]
pub struct NativePipeline {
    inner: aegis::Pipeline,
}

#[napi]
impl NativePipeline {
    /// A pipeline from TOML text (with `AEGIS_*` overrides from the environment); `store`
    /// is a database URL keeping runs, approvals and budgets.
    #[napi(factory)]
    pub fn from_toml(text: String, store: Option<String>) -> napi::Result<Self> {
        let config = AegisConfig::from_toml_str(&text, std::env::vars()).map_err(js_error)?;
        let inner = block_on(build(config, store)).map_err(js_error)?;
        Ok(Self { inner })
    }

    /// A pipeline from an object shaped like the TOML file.
    #[napi(factory)]
    pub fn from_object(config: Value, store: Option<String>) -> napi::Result<Self> {
        let config = AegisConfig::from_json(config).map_err(js_error)?;
        let inner = block_on(build(config, store)).map_err(js_error)?;
        Ok(Self { inner })
    }

    /// Runs a chat request: a `chat.completion` object, or a paused run. A streamed request
    /// goes through `stream`.
    #[napi]
    pub async fn chat(&self, request: Value, principal: Option<Value>) -> napi::Result<Value> {
        let req = request_of(request, principal)?;
        let pipeline = self.inner.clone();
        match pipeline.run(req).await.map_err(js_error)? {
            PipelineOutcome::Paused { run_id, interrupt } => Ok(paused(&run_id, &interrupt)),
            PipelineOutcome::Response(resp) => complete(resp).await,
        }
    }

    /// Runs a streamed chat request: a stream of `chat.completion.chunk` objects (or, when
    /// the run paused, a stream whose `paused()` is the paused run).
    #[napi]
    pub async fn stream(
        &self,
        request: Value,
        principal: Option<Value>,
    ) -> napi::Result<NativeStream> {
        let mut req = request_of(request, principal)?;
        req.stream = true;
        let pipeline = self.inner.clone();
        let outcome = pipeline.run(req).await.map_err(js_error)?;
        Ok(NativeStream::of(outcome))
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
        let decision = match (decision.as_str(), value) {
            ("approve", None) => Approval::Approve,
            ("reject", None) => Approval::Reject {
                reason: reason.unwrap_or_default(),
            },
            ("edit", Some(value)) => Approval::Edit { value },
            ("edit", None) => return Err(invalid("an `edit` decision needs a `value`")),
            (_, Some(_)) => return Err(invalid("only an `edit` decision takes a `value`")),
            (other, None) => {
                return Err(invalid(format!(
                    "decision `{other}`: use approve, reject or edit"
                )));
            }
        };
        let pipeline = self.inner.clone();
        match pipeline.resume(&run_id, decision).await.map_err(js_error)? {
            PipelineOutcome::Paused { run_id, interrupt } => Ok(paused(&run_id, &interrupt)),
            PipelineOutcome::Response(resp) => complete(resp).await,
        }
    }

    /// Judges `text` with the guard chain as `stage`: the report `aegis scan` prints.
    #[napi]
    pub fn scan(&self, text: String, stage: Option<String>) -> napi::Result<Value> {
        let stage = stage.unwrap_or_else(|| "input".into());
        let stage: Stage = serde_json::from_value(json!(stage))
            .map_err(|_| invalid(format!("unknown stage `{stage}`")))?;
        let pipeline = self.inner.clone();
        let report =
            block_on(async move { aegis::guard::scan(pipeline.chain(), stage, text).await })
                .map_err(js_error)?;
        Ok(json!(report))
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

fn request_of(request: Value, principal: Option<Value>) -> napi::Result<ChatRequest> {
    let mut req: ChatRequest = typed(request, "the chat request")?;
    if let Some(p) = principal.filter(|p| !p.is_null()) {
        req.ctx.principal = Some(typed::<Principal>(p, "the principal")?);
    }
    Ok(req)
}

fn paused(run_id: &str, interrupt: &aegis::Interrupt) -> Value {
    let mut shown = serde_json::to_value(interrupt).unwrap_or(Value::Null);
    // The judged subject stays in the run record; the caller sees the question.
    if let Some(payload) = shown.get_mut("payload").and_then(Value::as_object_mut) {
        payload.remove(aegis::INTERRUPT_SUBJECT_KEY);
    }
    json!({
        "id": run_id,
        "object": "aegis.run",
        "status": "paused",
        "interrupt": shown,
        "message": format!("{}. Decide with pipeline.resume({run_id:?}, \"approve\" | \"reject\").", interrupt.request.reason),
    })
}

fn meta_of(resp: &aegis::ChatResponse) -> Value {
    json!({
        "run_id": resp.meta.run_id,
        "provider": resp.meta.provider,
        "guards": resp.meta.guards,
        "region": resp.meta.region,
        "retrieval": resp.meta.retrieval,
    })
}

/// A response as one `chat.completion` object (a stream is read to its end).
async fn complete(resp: aegis::ChatResponse) -> napi::Result<Value> {
    let meta = meta_of(&resp);
    let completion = match resp.body {
        ChatBody::Complete(c) => c,
        body @ ChatBody::Stream(_) => aegis::ChatResponse {
            meta: resp.meta,
            body,
        }
        .collect()
        .await
        .map_err(js_error)?,
    };
    let mut body = completion_to_openai(&completion);
    body["aegis"] = meta;
    Ok(body)
}

/// A streamed answer. Dropping it (garbage collection, or `close`) ends its run.
#[napi]
pub struct NativeStream {
    inner: Arc<tokio::sync::Mutex<Option<aegis::ChatStream>>>,
    first: Option<Value>,
    meta: Value,
    paused: Option<Value>,
}

impl NativeStream {
    fn of(outcome: PipelineOutcome) -> Self {
        match outcome {
            PipelineOutcome::Paused { run_id, interrupt } => Self {
                inner: Arc::new(tokio::sync::Mutex::new(None)),
                first: None,
                meta: Value::Null,
                paused: Some(paused(&run_id, &interrupt)),
            },
            PipelineOutcome::Response(resp) => {
                let meta = meta_of(&resp);
                match resp.body {
                    ChatBody::Stream(stream) => Self {
                        inner: Arc::new(tokio::sync::Mutex::new(Some(stream))),
                        first: None,
                        meta,
                        paused: None,
                    },
                    // A provider that answered whole: one chunk-shaped object.
                    ChatBody::Complete(c) => Self {
                        inner: Arc::new(tokio::sync::Mutex::new(None)),
                        first: Some(completion_to_openai(&c)),
                        meta,
                        paused: None,
                    },
                }
            }
        }
    }
}

#[napi]
impl NativeStream {
    /// The next `chat.completion.chunk`, or `null` at the end.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<Value>> {
        let mut guard = self.inner.lock().await;
        let next = match guard.as_mut() {
            Some(stream) => stream.next().await,
            None => None,
        };
        match next {
            Some(Ok(chunk)) => Ok(Some(chunk_to_openai(&chunk))),
            Some(Err(e)) => {
                *guard = None;
                Err(js_error(e))
            }
            None => {
                *guard = None;
                Ok(None)
            }
        }
    }

    /// Ends the stream (and its run) now.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.inner.lock().await.take();
        Ok(())
    }

    /// A whole answer given for a streamed request, if the provider answered that way.
    #[napi]
    pub fn first(&self) -> Option<Value> {
        self.first.clone()
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
