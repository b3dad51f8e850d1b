//! Plugins written in any language: the contract adapters ([`HostGuard`], [`HostProvider`])
//! over a [`PluginHost`] — how to call a method of the foreign object. Whatever the host (an
//! HTTP service, the Python and Node bindings), the rules live here: a guard's answer is
//! validated by [`verdict_from`](crate::verdict_from), a provider's must be a
//! `chat.completion`, every call has a deadline.

use std::time::Duration;

use aegis_contracts::{
    ChatRequest, ChatResponse, Cost, Error, ErrorKind, Granularity, GuardCapabilities,
    GuardSubject, Guardrail, Provider, ProviderCapabilities, RequestContext, ResponseMeta, Stage,
    Verdict, async_trait,
};
use aegis_providers::wire::{completion_from_openai, completion_to_chunk};
use serde_json::Value;

/// How Aegis calls a method of a plugin object written in another language — across an HTTP
/// service, in a Python interpreter, on a Node event loop. `args` and the
/// answer are JSON; a foreign exception is an `Err` naming the plugin.
#[async_trait]
pub trait PluginHost: Send + Sync + 'static {
    /// Calls `method(*args)` on the plugin object and awaits its answer.
    async fn call(&self, method: &'static str, args: Vec<Value>) -> Result<Value, Error>;
}

/// The stages a guard plugin judges when it names none.
pub const DEFAULT_GUARD_STAGES: [Stage; 4] = [
    Stage::Input,
    Stage::Output,
    Stage::ToolResult,
    Stage::Retrieved,
];

/// A guard written in another language: `check(subject, ctx)` returns a verdict.
///
/// `subject` is the `aegis.guard.v1` call's subject with its `stage` and `segments`; `ctx`
/// is the call's context (`run_id`, `principal`, `labels`) with the guard's id (`guard`) —
/// exactly what the `http` guard protocol sends — and the answer is validated by the same
/// function (`crate::verdict_from`).
pub struct HostGuard<H> {
    id: String,
    who: String,
    stages: Vec<Stage>,
    host: H,
}

impl<H: PluginHost> HostGuard<H> {
    /// The guard `id` (described as `who` in errors) judging `stages` through `host`.
    pub fn new(id: &str, who: String, stages: Vec<Stage>, host: H) -> Result<Self, Error> {
        if stages.is_empty() {
            return Err(Error::config(format!(
                "{who}: `stages` must name at least one stage"
            )));
        }
        Ok(Self {
            id: id.to_owned(),
            who,
            stages,
            host,
        })
    }
}

#[async_trait]
impl<H: PluginHost> Guardrail for HostGuard<H> {
    fn capabilities(&self) -> GuardCapabilities {
        // Expensive: checked on the async side like the `http` guard, never offloaded to a
        // blocking thread of the chain's (the foreign call leaves the workers anyway, and an
        // offload would lose the caller's event loop for an `async` plugin).
        GuardCapabilities::new(self.stages.clone(), Granularity::FullText)
            .sanitizing()
            .with_cost(Cost::Expensive)
    }

    async fn check(&self, subject: &GuardSubject, ctx: &RequestContext) -> Result<Verdict, Error> {
        let call = crate::GuardCall::new(&self.id, subject, ctx);
        let mut call = serde_json::to_value(&call)
            .map_err(|e| Error::internal(format!("a guard call does not serialize: {e}")))?;
        let mut subject_arg = call["subject"].take();
        subject_arg["stage"] = call["stage"].take();
        subject_arg["segments"] = call["segments"].take();
        let mut ctx_arg = call["context"].take();
        ctx_arg["guard"] = call["guard"].take();
        let answer = self.host.call("check", vec![subject_arg, ctx_arg]).await?;
        crate::verdict_from(answer, subject, &self.who)
    }
}

/// A provider written in another language: `chat(request)` takes an OpenAI-shaped request
/// and returns a `chat.completion`. A streamed request gets the answer as one chunk.
pub struct HostProvider<H> {
    id: String,
    who: String,
    host: H,
    deadline: Duration,
}

/// How long a provider plugin may take to answer unless it says otherwise.
pub const PROVIDER_DEADLINE: Duration = Duration::from_secs(120);

impl<H: PluginHost> HostProvider<H> {
    /// The provider `id` (described as `who` in errors) answering through `host` within
    /// [`PROVIDER_DEADLINE`].
    pub fn new(id: &str, who: String, host: H) -> Self {
        Self {
            id: id.to_owned(),
            who,
            host,
            deadline: PROVIDER_DEADLINE,
        }
    }

    /// With another deadline for one answer.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }
}

/// `host.call(...)` within `deadline`: a plugin that never answers is a timeout error.
pub async fn within<H: PluginHost>(
    host: &H,
    who: &str,
    deadline: Duration,
    method: &'static str,
    args: Vec<Value>,
) -> Result<Value, Error> {
    tokio::time::timeout(deadline, host.call(method, args))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!("{who} did not answer within {} ms", deadline.as_millis()),
            )
        })?
}

#[async_trait]
impl<H: PluginHost> Provider for HostProvider<H> {
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
        // The request as its OpenAI body: the run's context (credentials, principal) is
        // not part of it and never reaches the plugin.
        let body = serde_json::to_value(&req)
            .map_err(|e| Error::internal(format!("a request does not serialize: {e}")))?;
        let answer = within(&self.host, &self.who, self.deadline, "chat", vec![body]).await?;
        let bad = |e: serde_json::Error| {
            Error::provider(format!(
                "{} answered something that is not a chat.completion: {e}",
                self.who
            ))
        };
        let completion = completion_from_openai(answer).map_err(bad)?;
        if completion.choices.is_empty() {
            return Err(Error::provider(format!("{} answered no choices", self.who)));
        }
        let meta = ResponseMeta::new(self.id.clone(), completion.model.clone());
        if !stream {
            return Ok(ChatResponse::complete(meta, completion));
        }
        let chunk = completion_to_chunk(completion);
        Ok(ChatResponse::stream(
            meta,
            Box::pin(futures_util::stream::iter([Ok(chunk)])),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A plugin answering a fixed value to every call.
    struct Fixed(Value);

    #[async_trait]
    impl PluginHost for Fixed {
        async fn call(&self, _: &'static str, _: Vec<Value>) -> Result<Value, Error> {
            Ok(self.0.clone())
        }
    }

    fn ctx(principal: Option<aegis_contracts::Principal>) -> RequestContext {
        let mut ctx = RequestContext::default();
        ctx.principal = principal;
        ctx
    }

    #[tokio::test]
    async fn a_guard_plugins_answer_is_validated_like_the_http_protocols() {
        let subject = GuardSubject::Input {
            messages: vec![aegis_contracts::Message::user("hello")],
        };
        for bad in [
            json!({"decision": "maybe"}),
            json!({"decision": "block", "reason": "r", "code": "guard_unavailable"}),
            json!({"decision": "sanitize", "edits": [{"segment": 3, "start": 0, "end": 1, "replacement": ""}]}),
            json!({"decision": "allow", "score": 7}),
        ] {
            let guard = HostGuard::new(
                "g",
                "g".into(),
                DEFAULT_GUARD_STAGES.to_vec(),
                Fixed(bad.clone()),
            )
            .expect("guard");
            assert!(guard.check(&subject, &ctx(None)).await.is_err(), "{bad}");
        }
        let guard = HostGuard::new(
            "g",
            "g".into(),
            vec![Stage::Input],
            Fixed(json!({"decision": "allow"})),
        )
        .expect("guard");
        assert!(guard.check(&subject, &ctx(None)).await.is_ok());
        assert!(HostGuard::new("g", "g".into(), vec![], Fixed(Value::Null)).is_err());
    }

    #[tokio::test]
    async fn a_provider_plugin_must_answer_a_completion_in_time() {
        let req = ChatRequest::new("m", vec![aegis_contracts::Message::user("hi")]);
        let garbage = HostProvider::new("p", "p".into(), Fixed(json!({"choices": "none"})));
        assert_eq!(
            garbage.chat(req.clone()).await.err().map(|e| e.kind()),
            Some(ErrorKind::Provider)
        );
        let empty = HostProvider::new("p", "p".into(), Fixed(json!({"choices": []})));
        assert!(empty.chat(req.clone()).await.is_err());

        struct Never;
        #[async_trait]
        impl PluginHost for Never {
            async fn call(&self, _: &'static str, _: Vec<Value>) -> Result<Value, Error> {
                std::future::pending().await
            }
        }
        let slow =
            HostProvider::new("p", "p".into(), Never).with_deadline(Duration::from_millis(50));
        assert_eq!(
            slow.chat(req).await.err().map(|e| e.kind()),
            Some(ErrorKind::Timeout)
        );
    }
}
