//! What the language bindings (`bindings/python`, `bindings/node`) share, so the surfaces
//! cannot drift and neither holds policy of its own:
//!
//! - **the JSON shapes** they answer in: a completion with Aegis's metadata under `aegis`,
//!   a paused run, a scan report, decisions and requests read from JSON;
//! - **the plugin adapters**: a guard, provider, retriever or telemetry sink written in
//!   another language is a [`PluginHost`] (how to call a method of the foreign object) wrapped
//!   in [`HostGuard`], [`HostProvider`], [`HostRetriever`] — which implement the Rust
//!   contracts and keep the rules here: a guard's answer is validated by the same function
//!   as the `http` guard protocol's, a retriever is never called without a principal and
//!   its documents are checked against the caller's ACL again.

#![forbid(unsafe_code)]

use std::{sync::Arc, time::Duration};

use aegis::{
    Approval, BudgetLedger, ChatRequest, CheckpointStore, Completion, Document, Error, ErrorKind,
    Filter, Interrupt, PipelineOutcome, Principal, Registry, RequestContext, ResponseMeta,
    Retriever, Stage, async_trait, config::AegisConfig, providers::wire::completion_to_openai,
};
use serde_json::{Value, json};

/// Builds the pipeline `config` describes with `registry`. `store` is a database URL
/// (`sqlite://…`, `postgres://…`) keeping runs, paused approvals and budgets — shared by
/// every process using it; without one they live in memory.
pub async fn build(
    mut registry: Registry,
    config: &AegisConfig,
    store: Option<&str>,
) -> Result<aegis::Pipeline, Error> {
    let checkpoints: Option<Arc<dyn CheckpointStore>> = match store {
        None => None,
        Some(url) => {
            let db = aegis_store::Store::connect(url).await?;
            // Budgets spend through the same database, so processes share one ledger.
            registry.insert_extension::<Arc<dyn BudgetLedger>>(Arc::new(db.clone()));
            Some(Arc::new(db))
        }
    };
    aegis::Pipeline::from_config_with_store(&registry, config, checkpoints).await
}

/// A chat request from its OpenAI-shaped JSON, with the caller the host authenticated.
pub fn request(value: Value, principal: Option<Value>) -> Result<ChatRequest, Error> {
    let mut req: ChatRequest = typed(value, "the chat request")?;
    if let Some(p) = principal.filter(|p| !p.is_null()) {
        req.ctx.principal = Some(typed::<Principal>(p, "the principal")?);
    }
    Ok(req)
}

/// `value` as `T`, or an `invalid_request` error naming `what` and the first mismatch.
pub fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(value)
        .map_err(|e| Error::invalid_request(format!("{what} is not valid: {e}")))
}

/// A human decision from its name: `approve`, `reject` (with a reason) or `edit` (with the
/// replacement value).
pub fn decision(
    name: &str,
    reason: Option<String>,
    value: Option<Value>,
) -> Result<Approval, Error> {
    match (name, value) {
        ("approve", None) => Ok(Approval::Approve),
        ("reject", None) => Ok(Approval::Reject {
            reason: reason.unwrap_or_default(),
        }),
        ("edit", Some(value)) => Ok(Approval::Edit { value }),
        ("edit", None) => Err(Error::invalid_request("an `edit` decision needs a `value`")),
        (_, Some(_)) => Err(Error::invalid_request(
            "only an `edit` decision takes a `value`",
        )),
        (other, None) => Err(Error::invalid_request(format!(
            "decision `{other}`: use approve, reject or edit"
        ))),
    }
}

/// A stage from its name (`input`, `output`, `tool_result`, `retrieved`, ...).
pub fn stage(name: &str) -> Result<Stage, Error> {
    serde_json::from_value(json!(name))
        .map_err(|_| Error::invalid_request(format!("unknown stage `{name}`")))
}

/// Judges `text` with the pipeline's guard chain as `stage`: the report `aegis scan` prints.
pub async fn scan(pipeline: &aegis::Pipeline, text: String, stage: &str) -> Result<Value, Error> {
    let stage = self::stage(stage)?;
    let report = aegis::guard::scan(pipeline.chain(), stage, text).await?;
    Ok(json!(report))
}

/// A paused run as the bindings answer it (the gateway's `aegis.run` object).
pub fn paused(run_id: &str, interrupt: &Interrupt) -> Value {
    json!({
        "id": run_id,
        "object": "aegis.run",
        "status": "paused",
        // The judged subject stays in the run record; the caller sees the question.
        "interrupt": interrupt.public_json(),
        "message": format!(
            "{}. Decide with pipeline.resume({run_id:?}, \"approve\" | \"reject\").",
            interrupt.request.reason
        ),
    })
}

/// The run's metadata the bindings show beside an answer (`aegis`).
pub fn meta(meta: &ResponseMeta) -> Value {
    json!({
        "run_id": meta.run_id,
        "provider": meta.provider,
        "guards": meta.guards,
        "region": meta.region,
        "retrieval": meta.retrieval,
    })
}

/// A complete answer as a `chat.completion` object with the run's metadata.
pub fn completion(completion: &Completion, meta: &ResponseMeta) -> Value {
    let mut body = completion_to_openai(completion);
    body["aegis"] = self::meta(meta);
    body
}

/// What a run produced: a `chat.completion` (a stream is read to its end), or a paused run.
pub async fn answer(outcome: PipelineOutcome) -> Result<Value, Error> {
    match outcome {
        PipelineOutcome::Paused { run_id, interrupt } => Ok(paused(&run_id, &interrupt)),
        PipelineOutcome::Response(resp) => {
            let meta = resp.meta.clone();
            Ok(completion(&resp.collect().await?, &meta))
        }
    }
}

/// A streamed answer a binding hands out as an iterator. Dropped where the host drops it —
/// a Python deallocation, a JavaScript finalizer, outside any tokio context — it still ends
/// its run (the run-end hooks settle or release what the run reserved): the stream is
/// dropped inside the runtime it was made on. In a process forked from the one that made it,
/// it is never touched (its connections belong to the parent) and `next` refuses.
pub struct OwnedStream {
    stream: Option<aegis::ChatStream>,
    runtime: Option<tokio::runtime::Handle>,
    pid: u32,
}

impl OwnedStream {
    /// `stream`, made on the current tokio runtime (if any).
    pub fn new(stream: aegis::ChatStream) -> Self {
        Self {
            stream: Some(stream),
            runtime: tokio::runtime::Handle::try_current().ok(),
            pid: std::process::id(),
        }
    }

    /// A stream of one chunk: `completion` whole.
    pub fn whole(completion: Completion) -> Self {
        let chunk = aegis::providers::wire::completion_to_chunk(completion);
        Self::new(Box::pin(futures_util::stream::iter([Ok(chunk)])))
    }

    /// The next chunk (as a `chat.completion.chunk` object), or `None` at the end. After an
    /// error or the end, the stream is dropped (and its run ended).
    pub async fn next(&mut self) -> Result<Option<Value>, Error> {
        use futures_util::StreamExt;
        if self.pid != std::process::id() {
            return Err(Error::invalid_request(
                "this stream was opened before the process forked; open it again in this process",
            ));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        match stream.next().await {
            Some(Ok(chunk)) => Ok(Some(aegis::providers::wire::chunk_to_openai(&chunk))),
            Some(Err(e)) => {
                self.close();
                Err(e)
            }
            None => {
                self.close();
                Ok(None)
            }
        }
    }

    /// Ends the stream (and its run) now.
    pub fn close(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        if self.pid != std::process::id() {
            // Forked: dropping would deregister the parent's sockets from the shared epoll.
            std::mem::forget(stream);
            return;
        }
        let _entered = self.runtime.as_ref().map(|rt| rt.enter());
        drop(stream);
    }
}

impl Drop for OwnedStream {
    fn drop(&mut self) {
        self.close();
    }
}

/// What a run produced for a caller that asked for a stream.
pub enum Streamed {
    /// The run paused for a human decision (the `aegis.run` object).
    Paused(Value),
    /// The answer as a stream (a whole answer is a stream of one chunk), with the run's
    /// metadata.
    Stream {
        /// `run_id`, `provider`, `guards`, `region`, `retrieval`.
        meta: Value,
        /// The chunks.
        stream: OwnedStream,
    },
}

/// `outcome` as a [`Streamed`].
pub fn streamed(outcome: PipelineOutcome) -> Streamed {
    match outcome {
        PipelineOutcome::Paused { run_id, interrupt } => {
            Streamed::Paused(paused(&run_id, &interrupt))
        }
        PipelineOutcome::Response(resp) => {
            let meta = self::meta(&resp.meta);
            let stream = match resp.body {
                aegis::ChatBody::Stream(stream) => OwnedStream::new(stream),
                aegis::ChatBody::Complete(c) => OwnedStream::whole(c),
            };
            Streamed::Stream { meta, stream }
        }
    }
}

pub use aegis::adapters::{
    DEFAULT_GUARD_STAGES, HostGuard, HostProvider, PROVIDER_DEADLINE, PluginHost, within,
};

/// How long a retriever plugin may take to answer unless it says otherwise.
pub const RETRIEVER_DEADLINE: Duration = Duration::from_secs(30);

/// A retriever written in another language: `retrieve(query, k, filter, ctx)` returns
/// documents (`{"id", "content", "metadata", "score"}`). A call without a principal never
/// reaches it, and any document whose `acl` metadata does not admit the caller is dropped
/// after it answers — a foreign store that ignores permissions cannot leak.
pub struct HostRetriever<H> {
    who: String,
    host: H,
    deadline: Duration,
}

impl<H: PluginHost> HostRetriever<H> {
    /// The retriever described as `who` in errors, answering through `host` within
    /// [`RETRIEVER_DEADLINE`].
    pub fn new(who: String, host: H) -> Self {
        Self {
            who,
            host,
            deadline: RETRIEVER_DEADLINE,
        }
    }

    /// With another deadline for one answer.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }
}

#[async_trait]
impl<H: PluginHost> Retriever for HostRetriever<H> {
    async fn retrieve(
        &self,
        query: &str,
        k: usize,
        filter: Option<&Filter>,
        ctx: &RequestContext,
    ) -> Result<Vec<Document>, Error> {
        let Some(reader) = ctx.principal.clone() else {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                format!("{}: retrieval needs an authenticated principal", self.who),
            ));
        };
        let args = vec![
            json!(query),
            json!(k),
            serde_json::to_value(filter).unwrap_or(Value::Null),
            json!({ "run_id": ctx.run_id, "principal": reader, "labels": ctx.labels }),
        ];
        let answer = within(&self.host, &self.who, self.deadline, "retrieve", args).await?;
        let docs: Vec<Document> = serde_json::from_value(answer).map_err(|e| {
            Error::provider(format!(
                "{} answered something that is not a list of documents: {e}",
                self.who
            ))
        })?;
        Ok(readable(docs, &reader, k))
    }
}

/// The first `k` of `docs` that `reader` may read. A document whose ACL is missing or
/// malformed is read by nobody.
pub fn readable(docs: Vec<Document>, reader: &Principal, k: usize) -> Vec<Document> {
    docs.into_iter()
        .filter(|doc| aegis::rag::Acl::of(doc).is_ok_and(|acl| acl.allows(reader)))
        .take(k)
        .collect()
}

/// Whether `reader` may read a document whose ACL (`metadata["acl"]`) is `acl` — the rule
/// every Aegis store applies, for adapters that filter inside a foreign store.
pub fn acl_allows(acl: Value, reader: Value) -> Result<bool, Error> {
    let reader: Principal = typed(reader, "the principal")?;
    // A malformed ACL admits nobody, as in a store.
    Ok(serde_json::from_value::<aegis::rag::Acl>(acl).is_ok_and(|a| a.allows(&reader)))
}

/// The config table a plugin instance is made with: an entry without `config` gets an
/// empty table, so every plugin factory is called with a mapping.
pub fn plugin_config(config: Value) -> Value {
    if config.is_null() { json!({}) } else { config }
}

/// A plugin type name a binding may register: not empty, letters, digits, `_`, `-`, `.`,
/// and not the name of a built-in type of `kind` (`guardrails`, `providers`, ...) — a
/// config must mean the same thing with and without the plugin.
pub fn check_plugin_name(kind: &str, name: &str) -> Result<(), Error> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(Error::invalid_request(format!(
            "plugin type name `{name}`: use letters, digits, `_`, `-` and `.`"
        )));
    }
    if aegis::registry()
        .type_names()
        .get(kind)
        .is_some_and(|names| names.iter().any(|n| n == name))
    {
        return Err(Error::invalid_request(format!(
            "`{name}` is a built-in {kind} type; register the plugin under another name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin answering a fixed value to every call.
    struct Fixed(Value);

    #[async_trait]
    impl PluginHost for Fixed {
        async fn call(&self, _: &'static str, _: Vec<Value>) -> Result<Value, Error> {
            Ok(self.0.clone())
        }
    }

    fn ctx(principal: Option<Principal>) -> RequestContext {
        let mut ctx = RequestContext::default();
        ctx.principal = principal;
        ctx
    }

    #[tokio::test]
    async fn a_retriever_plugin_never_hands_out_what_the_caller_may_not_read() {
        let docs = json!([
            {"id": "open", "content": "a", "metadata": {"acl": {"public": true}}},
            {"id": "sales", "content": "b", "metadata": {"acl": {"teams": ["sales"]}}},
            {"id": "bare", "content": "c"},
            {"id": "broken", "content": "d", "metadata": {"acl": "everyone"}},
        ]);
        let r = HostRetriever::new("r".into(), Fixed(docs));
        let ada = Principal::new("ada");
        let got = r
            .retrieve("q", 5, None, &ctx(Some(ada)))
            .await
            .expect("docs");
        assert_eq!(
            got.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["open"]
        );
        let err = r
            .retrieve("q", 5, None, &ctx(None))
            .await
            .expect_err("no principal");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    }

    #[test]
    fn decisions_and_names_are_checked_before_anything_runs() {
        assert!(matches!(
            decision("approve", None, None),
            Ok(Approval::Approve)
        ));
        assert!(decision("edit", None, None).is_err());
        assert!(decision("approve", None, Some(json!(1))).is_err());
        assert!(decision("maybe", None, None).is_err());
        assert!(check_plugin_name("guardrails", "pii").is_err());
        assert!(check_plugin_name("guardrails", "bad name").is_err());
        assert!(check_plugin_name("guardrails", "my_guard").is_ok());
        assert!(stage("sideways").is_err());
    }
}

/// The most of a plugin's own failure message an error carries.
pub const PLUGIN_MESSAGE_MAX: usize = 300;

/// A plugin's failure (`what`: "raised ValueError", "rejected", "threw") as an error naming
/// it. The plugin's message is its author's text, and may hold anything the plugin had at
/// hand — a credential in a connection string, a token in a URL: every secret the secrets
/// detector recognizes in it is replaced by `[REDACTED:<kind>]` before the message goes
/// anywhere (errors, logs, run records), and it is then cut to [`PLUGIN_MESSAGE_MAX`] bytes.
pub fn plugin_failure(plugin: &str, what: &str, message: &str) -> Error {
    // Redacted before it is cut, so a secret on the cut is not half shown; a huge message
    // is bounded first (the detector is linear, the cap keeps it cheap).
    let message = redact_secrets(shorten(message, 16 * 1024));
    Error::provider(format!(
        "{plugin} {what}: {}",
        shorten(&message, PLUGIN_MESSAGE_MAX)
    ))
}

fn shorten(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// `text` with every secret the default secrets detector finds replaced; a detector that
/// cannot run withholds the whole text (fail closed).
fn redact_secrets(text: &str) -> String {
    use aegis::{Guardrail, guards::Secrets};
    use futures_util::FutureExt;
    const WITHHELD: &str = "[message withheld: it could not be checked for secrets]";
    static DETECTOR: std::sync::OnceLock<Option<Secrets>> = std::sync::OnceLock::new();
    let Some(detector) = DETECTOR.get_or_init(|| Secrets::new(Default::default()).ok()) else {
        return WITHHELD.to_owned();
    };
    let Ok(subject) = aegis::guard::text_subject(Stage::Output, text.to_owned()) else {
        return WITHHELD.to_owned();
    };
    // The detector does not wait on anything: its check is ready at the first poll.
    let Some(Ok(verdict)) = detector
        .check(&subject, &RequestContext::default())
        .now_or_never()
    else {
        return WITHHELD.to_owned();
    };
    let mut spans: Vec<(usize, usize, &str)> = verdict
        .findings
        .iter()
        .filter_map(|f| f.span.map(|s| (s.start, s.end, f.kind.as_str())))
        .filter(|(start, end, _)| start < end && *end <= text.len())
        .collect();
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, kind) in spans {
        if start < at || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            // Overlapping or misaligned: widen the redaction rather than show a part.
            at = at.max(end.min(text.len()));
            while !text.is_char_boundary(at) {
                at += 1;
            }
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(&format!("[REDACTED:{kind}]"));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod plugin_failure_tests {
    use super::*;

    #[test]
    fn a_plugins_message_names_it_and_never_carries_a_secret_it_held() {
        let key = "sk-proj-7fQ2xLm9Rt4Vb8Nc1Zd6Hj3Kp5Ws0YgE2uA9iOqTr";
        let e = plugin_failure(
            "python guard `g`",
            "raised ValueError",
            &format!("upstream refused key={key}; dsn postgres://app:Sunflower9910Q@db:5432/x"),
        );
        let msg = e.message();
        assert!(
            msg.starts_with("python guard `g` raised ValueError: upstream refused"),
            "{msg}"
        );
        assert!(
            !msg.contains(key) && !msg.contains("Sunflower9910Q"),
            "{msg}"
        );
        assert!(msg.contains("[REDACTED:"), "{msg}");
        assert_eq!(e.kind(), ErrorKind::Provider);
    }

    #[test]
    fn a_long_message_is_cut_on_a_character_boundary() {
        let e = plugin_failure("node provider `p`", "threw", &"é".repeat(10_000));
        let tail = e.message().split(": ").nth(1).unwrap_or_default();
        assert!(tail.len() <= PLUGIN_MESSAGE_MAX, "{}", tail.len());
        assert!(tail.chars().all(|c| c == 'é'));
    }
}
