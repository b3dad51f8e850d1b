//! The default request lifecycle as a graph — authenticate → input guards → route →
//! provider call → output guards — with the named positions where policy packs insert their
//! steps, and [`Pipeline`], the tower service that runs it.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use aegis_contracts::*;
//! use aegis_core::Pipeline;
//! use std::sync::Arc;
//!
//! struct Fixed;
//! #[async_trait]
//! impl Provider for Fixed {
//!     fn name(&self) -> &str { "fixed" }
//!     fn capabilities(&self) -> ProviderCapabilities { ProviderCapabilities::default() }
//!     async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
//!         Ok(ChatResponse::complete(ResponseMeta::new("fixed", &req.model), Completion::text("1", &req.model, "hi")))
//!     }
//! }
//!
//! let pipeline = Pipeline::builder().provider("fixed", Arc::new(Fixed)).build().unwrap();
//! let resp = pipeline.chat(ChatRequest::new("any-model", vec![Message::user("hello")])).await.unwrap();
//! assert!(resp.meta.run_id.is_some());
//! assert_eq!(resp.collect().await.unwrap().message().unwrap().text(), "hi");
//! println!("{}", pipeline.graph().to_mermaid());
//! # });
//! ```
//!
//! # How a run ends
//!
//! A run ends when its response ends (see [`Pipeline::run`]): for a stream, when the last
//! chunk has passed the output guards and been handed to the caller, or when the stream is
//! blocked, fails, or is dropped. One path then records the final status (`completed`,
//! `blocked`, `failed`, `rejected` or `cancelled`), the audit record with the real usage, the
//! policies' run-end hooks and the terminal run event — exactly once per run.
//!
//! # Extension points
//!
//! Policies from `[[policies]]` run, in config order, at the [`Position`]s they declare:
//! `authenticate → after_auth → input_guards → before_route → route → before_call →
//! provider_call → after_call → output_guards`. Each step is a node named `{id}.{position}`,
//! so `aegis graph show` draws it.

mod admission;
mod approval;
mod builder;
mod exchange;
mod nodes;
mod routes;
mod run_end;

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use aegis_contracts::{
    Approval, Authenticator, ChatBody, ChatRequest, ChatResponse, Credentials, EmbeddingRequest,
    EmbeddingResponse, Error, ErrorKind, Interrupt, Message, Policy, Position, PriceTable,
    Principal, RequestContext, RunEventKind, RunStatus, StepInput,
};
use tower_service::Service;

pub use builder::{PipelineBuilder, PipelineSet};
pub use exchange::{Exchange, ExchangeUpdate, Route};

use self::{routes::ModelTable, run_end::RunEnd};
use crate::{
    Telemetry,
    graph::{Graph, RunOptions, RunOutcome, new_run_id},
    guard::{GuardChain, Holdback},
    layer::authenticate,
};

/// What every node of one pipeline shares.
pub(crate) struct Shared {
    routes: ModelTable,
    chain: GuardChain,
    admission: admission::Admission,
    authenticators: Vec<(String, Arc<dyn Authenticator>)>,
    policies: Vec<(String, Arc<dyn Policy>)>,
    require_auth: bool,
    telemetry: Telemetry,
    prices: PriceTable,
}

impl Shared {
    /// The first authenticator that accepts `credentials` wins; `Ok(None)` when none is
    /// configured and authentication is not required.
    async fn authenticate(
        &self,
        credentials: Option<Credentials>,
    ) -> Result<Option<Principal>, Error> {
        if self.authenticators.is_empty() {
            if self.require_auth {
                return Err(Error::new(
                    ErrorKind::Unauthenticated,
                    "authentication is required",
                ));
            }
            return Ok(None);
        }
        let mut last = None;
        for (_, a) in &self.authenticators {
            match authenticate(a.as_ref(), credentials.clone()).await {
                Ok(p) => return Ok(Some(p)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                ErrorKind::Unauthenticated,
                "no authenticator accepted the credentials",
            )
        }))
    }

    /// Refuses a request whose `aegis` options name a key no configured policy reads: an
    /// option nobody acts on must not look as if it had been honoured.
    fn check_options(&self, req: &ChatRequest) -> Result<(), Error> {
        let Some(options) = req.extra.get(aegis_contracts::OPTIONS_FIELD) else {
            return Ok(());
        };
        let Some(options) = options.as_object() else {
            return Err(Error::invalid_request(
                "`aegis` must be an object of per-request options",
            ));
        };
        let read: Vec<&str> = self
            .policies
            .iter()
            .flat_map(|(_, p)| p.request_options().iter().copied())
            .collect();
        match options.keys().find(|k| !read.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => Err(Error::invalid_request(format!(
                "`aegis.{key}`: no configured policy reads this option (read: {})",
                if read.is_empty() {
                    "none".to_owned()
                } else {
                    read.join(", ")
                }
            ))
            .with_code("unknown_option")),
        }
    }

    /// The policies that run at `position`, in config order.
    fn policies_at(&self, position: Position) -> impl Iterator<Item = &(String, Arc<dyn Policy>)> {
        self.policies
            .iter()
            .filter(move |(_, p)| p.positions().contains(&position))
    }
}

/// The default governed pipeline: a tower `Service<ChatRequest>` running the lifecycle
/// graph, with resumable human approvals.
#[derive(Clone)]
pub struct Pipeline {
    graph: Graph<Exchange>,
    shared: Arc<Shared>,
    holdback: Holdback,
    default_model: Option<Arc<str>>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("graph", &self.graph)
            .field("providers", &self.provider_ids())
            .field("guards", &self.shared.chain)
            .field(
                "policies",
                &self
                    .shared
                    .policies
                    .iter()
                    .map(|(id, _)| id)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a pipeline run produced.
#[derive(Debug)]
pub enum PipelineOutcome {
    /// The answer.
    Response(ChatResponse),
    /// The run paused for a human decision.
    Paused {
        /// The run to resume.
        run_id: String,
        /// What the human is asked.
        interrupt: Interrupt,
    },
}

impl Pipeline {
    /// Starts building a pipeline from components.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The compiled lifecycle graph.
    pub fn graph(&self) -> &Graph<Exchange> {
        &self.graph
    }

    /// The guard chain.
    pub fn chain(&self) -> &GuardChain {
        &self.shared.chain
    }

    /// The hold-back a streamed answer needs, negotiated from the output guards when the
    /// pipeline was built.
    pub fn holdback(&self) -> Holdback {
        self.holdback
    }

    /// Provider ids, in config order.
    pub fn provider_ids(&self) -> Vec<&str> {
        self.shared
            .routes
            .providers()
            .iter()
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// Policy ids, in config order.
    pub fn policy_ids(&self) -> Vec<&str> {
        self.shared
            .policies
            .iter()
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// The model a request naming none (or `default`) is sent to, when one is configured.
    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    /// The models callers can name: each addressable provider's id, `provider/model` for
    /// every model a provider lists, and every alias — with the provider serving each.
    /// A router's deployments are not listed (they are reached through the router).
    pub fn models(&self) -> Vec<(String, String)> {
        self.shared.routes.models()
    }

    /// What this pipeline would do with a request of `principal` (with `labels`) for
    /// `model`: the route and the regions it may be served in, and each policy's
    /// [`explain`](Policy::explain) — for `aegis policy explain`.
    pub fn explain(
        &self,
        principal: Option<Principal>,
        labels: std::collections::BTreeMap<String, String>,
        model: &str,
    ) -> serde_json::Value {
        let labels = caller_labels(labels, principal.as_ref());
        let context = aegis_contracts::ContextView::new("explain", principal, labels);
        let route = self.shared.routes.resolve_with_regions(model);
        let policies: Vec<serde_json::Value> = self
            .shared
            .policies
            .iter()
            .map(|(id, p)| {
                serde_json::json!({
                    "id": id,
                    "positions": p.positions(),
                    "explain": p.explain(&context, route.as_ref().ok()),
                })
            })
            .collect();
        serde_json::json!({
            "pipeline": self.graph.name(),
            "principal": context.principal,
            "model": model,
            "route": match &route {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err(e) => serde_json::json!({"error": e.message(), "code": e.code()}),
            },
            "guards": self.shared.chain.entries().iter().map(|e| e.id()).collect::<Vec<_>>(),
            "policies": policies,
        })
    }

    /// Where a request for `model` goes, or `404 model_not_found`.
    pub fn resolve(&self, model: &str) -> Result<Route, Error> {
        self.shared.routes.resolve(model)
    }

    /// Runs one request; a pause is an outcome, not an error.
    ///
    /// The run ends when its response ends: a complete answer is recorded before this
    /// returns; a streamed one when the stream is finished, fails, or is dropped (then the
    /// run is `cancelled`). Dropping this future before it resolves also cancels the run.
    pub async fn run(&self, mut req: ChatRequest) -> Result<PipelineOutcome, Error> {
        if let Some(m) = &self.default_model
            && (req.model.trim().is_empty() || req.model == "default")
        {
            req.model = m.to_string();
        }
        req.validate()?;
        let mut ctx = std::mem::take(&mut req.ctx);
        // Identify the caller before the run exists, so the run records its owner and an
        // unauthenticated request stores nothing.
        if ctx.principal.is_none() {
            ctx.principal = self.authenticate(&ctx).await?;
        }
        let run_id = ctx.run_id.take().unwrap_or_else(new_run_id);
        let mut options = RunOptions::default().run_id(run_id.clone());
        if let Some(p) = &ctx.principal {
            options = options.principal(p.id.clone());
        }
        let labels = caller_labels(ctx.labels, ctx.principal.as_ref());
        let state = Exchange {
            host_judged: ctx.extensions.get().cloned(),
            principal: ctx.principal,
            credentials: ctx.credentials,
            labels,
            request: req,
            ..Exchange::default()
        };
        // What the end path needs if the graph never hands the state back (a dropped future):
        // who, which model, the labels — not the prompt.
        let seed = Exchange {
            request: ChatRequest::new(state.request.model.clone(), Vec::new()),
            principal: state.principal.clone(),
            labels: state.labels.clone(),
            response: state.response.clone(),
            ..Exchange::default()
        };
        let end = RunEnd::new(self.clone(), run_id, Some(seed));
        let span = end.span().clone();
        let outcome =
            tracing::Instrument::instrument(self.graph.invoke_with(state, options), span.clone())
                .await;
        tracing::Instrument::instrument(self.conclude(end, outcome), span).await
    }

    /// Runs one request; a pause is an [`ApprovalRequired`](ErrorKind::ApprovalRequired)
    /// error naming the run.
    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        paused_is_error(self.run(req).await?)
    }

    /// Resumes a paused run with a human decision and returns its answer.
    pub async fn resume(&self, run_id: &str, decision: Approval) -> Result<PipelineOutcome, Error> {
        self.resume_by(run_id, decision, None).await
    }

    /// [`resume`](Self::resume), recording who decided.
    pub async fn resume_by(
        &self,
        run_id: &str,
        decision: Approval,
        by: Option<&str>,
    ) -> Result<PipelineOutcome, Error> {
        let end = RunEnd::new(self.clone(), run_id.to_owned(), None).leased();
        let span = end.span().clone();
        let resumed = tracing::Instrument::instrument(
            self.graph.resume_by(run_id, decision, by),
            span.clone(),
        );
        let outcome = match resumed.await {
            // A refused resume (unknown run, not paused, lost the race, bad edit) changes
            // nothing: the run has not ended here.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::InvalidRequest
                ) || e.code() == crate::graph::LEASE_EXPIRED =>
            {
                end.disarm();
                return Err(e);
            }
            other => other,
        };
        tracing::Instrument::instrument(self.conclude(end, outcome), span).await
    }

    /// Finishes a resumed run whose claim expired (the process carrying it out crashed or
    /// timed out), with the decision it recorded. `Ok(None)` when the run needs no recovery.
    /// A host calls this for its `running` runs, periodically and at start-up; exactly one
    /// recoverer wins.
    pub async fn recover(&self, run_id: &str) -> Result<Option<PipelineOutcome>, Error> {
        let end = RunEnd::new(self.clone(), run_id.to_owned(), None).leased();
        let outcome = match self.graph.recover(run_id).await {
            Ok(Some(o)) => Ok(o),
            // Nothing to recover, or another recoverer won the claim.
            Ok(None) => {
                end.disarm();
                return Ok(None);
            }
            Err(e) if e.kind() == ErrorKind::Conflict => {
                end.disarm();
                return Ok(None);
            }
            Err(e) if e.code() == crate::graph::LEASE_EXPIRED => {
                end.disarm();
                return Err(e);
            }
            Err(e) => Err(e),
        };
        self.conclude(end, outcome).await.map(Some)
    }

    /// The one place a graph outcome becomes a pipeline outcome, and where every run that
    /// is not paused is handed to its end.
    async fn conclude(
        &self,
        mut end: RunEnd,
        outcome: Result<RunOutcome<Exchange>, Error>,
    ) -> Result<PipelineOutcome, Error> {
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                let status = RunStatus::of_error(&e);
                end.finish(status, Some(&e), None).await.ok();
                return Err(e);
            }
        };
        let RunOutcome {
            run_id,
            status,
            state,
            interrupt,
            error,
            open,
            ..
        } = outcome;
        if status == RunStatus::Paused {
            end.disarm();
            return Ok(PipelineOutcome::Paused {
                run_id,
                interrupt: interrupt
                    .ok_or_else(|| Error::internal("paused without an interrupt"))?,
            });
        }
        let mut meta = state.meta.clone().unwrap_or_default();
        meta.run_id = Some(run_id.clone());
        meta.guards.clone_from(&state.guards);
        meta.retrieval.clone_from(&state.retrieval);
        meta.labels.clone_from(&state.labels);
        let stream = state.response.take();
        let answered = state.completion.is_some();
        end.hold(open, state);
        if let Some(err) = error {
            end.finish(status, Some(&err), None).await.ok();
            return Err(err);
        }
        if status == RunStatus::Rejected {
            let err = Error::new(
                ErrorKind::PolicyBlocked,
                "the run was rejected by a reviewer",
            )
            .with_code("rejected")
            .with_run_id(run_id);
            end.finish(status, Some(&err), None).await.ok();
            return Err(err);
        }
        let body = match (stream, answered) {
            (Some(stream), _) => ChatBody::Stream(run_end::end_with_stream(stream, end)),
            (None, true) => {
                let state = end
                    .finish(RunStatus::Completed, None, None)
                    .await
                    .map_err(|e| e.with_run_id(run_id.clone()))?;
                match state.and_then(|s| s.completion) {
                    Some(c) => ChatBody::Complete(c),
                    None => {
                        return Err(Error::internal("the answer went missing").with_run_id(run_id));
                    }
                }
            }
            (None, false) => {
                let err = Error::internal("the run reached its end without an answer")
                    .with_run_id(run_id);
                end.finish(RunStatus::Failed, Some(&err), None).await.ok();
                return Err(err);
            }
        };
        Ok(PipelineOutcome::Response(ChatResponse { meta, body }))
    }

    /// Embeddings are runs too: authenticated, input-guarded (the texts are judged as user
    /// input), routed through the same table, passed through the policies' steps and
    /// run-end hooks, and audited.
    pub async fn embed(&self, mut req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        if req.input.is_empty() {
            return Err(Error::invalid_request(
                "`input` must contain at least one text",
            ));
        }
        let mut ctx = std::mem::take(&mut req.ctx);
        if ctx.principal.is_none() {
            ctx.principal = self.authenticate(&ctx).await?;
        }
        let run_id = ctx.run_id.take().unwrap_or_else(new_run_id);
        let labels = caller_labels(std::mem::take(&mut ctx.labels), ctx.principal.as_ref());
        let mut state = Exchange {
            principal: ctx.principal.take(),
            labels,
            request: ChatRequest::new(
                req.model.clone(),
                req.input.iter().map(Message::user).collect(),
            ),
            ..Exchange::default()
        };
        self.shared
            .telemetry
            .emit(&run_id, || RunEventKind::RunStarted {
                graph: "embeddings".into(),
            });
        let mut end = RunEnd::new(self.clone(), run_id.clone(), Some(state.clone())).unstored();
        let result = self.embed_run(&run_id, &mut state, req).await;
        let usage = result.as_ref().ok().map(|r| r.usage);
        end.hold(None, state);
        match result {
            Ok(resp) => {
                end.finish(RunStatus::Completed, None, usage).await?;
                Ok(resp)
            }
            Err(e) => {
                let e = e.with_run_id(run_id);
                end.finish(RunStatus::of_error(&e), Some(&e), None)
                    .await
                    .ok();
                Err(e)
            }
        }
    }

    async fn embed_run(
        &self,
        run_id: &str,
        state: &mut Exchange,
        mut req: EmbeddingRequest,
    ) -> Result<EmbeddingResponse, Error> {
        self.steps(Position::AfterAuth, run_id, state).await?;
        let ctx = state.request_context(run_id);
        let judgement = self
            .shared
            .chain
            .judge_request(&mut state.request, &ctx, None)
            .await;
        state.guards = judgement.guard_ids();
        judgement.into_result()?;
        self.steps(Position::BeforeRoute, run_id, state).await?;
        state.route = Some(self.shared.routes.resolve_with_regions(&req.model)?);
        self.steps(Position::BeforeCall, run_id, state).await?;
        let route = state.route.clone().unwrap_or_default();
        let provider = self
            .shared
            .routes
            .provider(&route.provider)
            .ok_or_else(|| Error::internal("route names an unknown provider"))?
            .clone();
        req.input = state
            .request
            .messages
            .iter()
            .map(|m| m.text().into_owned())
            .collect();
        req.model = route.model;
        req.ctx = state.request_context(run_id);
        state.provider_called = true;
        let resp = provider.embed(req).await?;
        if let Some(r) = state.route.as_mut() {
            r.region = provider.region().map(str::to_owned);
        }
        self.steps(Position::AfterCall, run_id, state).await?;
        Ok(resp)
    }

    /// The policy steps at `position`, outside the graph (embeddings).
    async fn steps(
        &self,
        position: Position,
        run_id: &str,
        state: &mut Exchange,
    ) -> Result<(), Error> {
        for (id, policy) in self.shared.policies_at(position) {
            let view = state.context_view(run_id);
            let input =
                StepInput::new(position, &state.request, &view).with_route(state.route.as_ref());
            let step = nodes::call_step(id, policy.as_ref(), &input).await?;
            if let Some(reason) = step.approval {
                return Err(Error::new(
                    ErrorKind::ApprovalRequired,
                    format!(
                        "policy `{id}` requires approval ({reason}), which an embeddings request cannot wait for"
                    ),
                )
                .with_code("approval_required"));
            }
            if !step.documents.is_empty() {
                return Err(Error::internal(format!(
                    "policy `{id}` offered documents to an embeddings request, which has no prompt to put them in"
                )));
            }
            state.labels.extend(step.labels);
        }
        Ok(())
    }

    /// Identifies the caller of `ctx` with the configured authenticators (the first that
    /// accepts wins). `Ok(None)` when no authenticator is configured and authentication is not
    /// required; [`Unauthenticated`](ErrorKind::Unauthenticated) otherwise.
    pub async fn authenticate(&self, ctx: &RequestContext) -> Result<Option<Principal>, Error> {
        self.shared.authenticate(ctx.credentials.clone()).await
    }
}

/// A run's labels: the host's, then the principal's over them — facts about the caller,
/// which the caller cannot override.
fn caller_labels(
    mut labels: std::collections::BTreeMap<String, String>,
    principal: Option<&Principal>,
) -> std::collections::BTreeMap<String, String> {
    if let Some(p) = principal {
        labels.extend(p.labels.clone());
    }
    labels
}

fn paused_is_error(outcome: PipelineOutcome) -> Result<ChatResponse, Error> {
    match outcome {
        PipelineOutcome::Response(r) => Ok(r),
        PipelineOutcome::Paused { run_id, interrupt } => Err(Error::new(
            ErrorKind::ApprovalRequired,
            format!(
                "{}; approve or reject run {run_id} (e.g. `aegis runs approve {run_id}`)",
                interrupt.request.reason
            ),
        )
        .with_run_id(run_id)),
    }
}

impl Service<ChatRequest> for Pipeline {
    type Response = ChatResponse;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<ChatResponse, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.chat(req).await })
    }
}
