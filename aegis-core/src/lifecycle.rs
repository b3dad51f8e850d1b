//! The default request lifecycle as a graph — authenticate → input guards → route →
//! provider call → output guards → audit — and [`Pipeline`], the tower service that runs it.
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

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Instant,
};

use aegis_contracts::{
    Approval, Authenticator, ChatBody, ChatRequest, ChatResponse, ChatStream, CheckpointStore,
    Completion, Credentials, EmbeddingRequest, EmbeddingResponse, Error, ErrorKind, Interrupt,
    InterruptRequest, Message, NodeInput, NodeOutput, Principal, Provider, RequestContext,
    ResponseMeta, RunEventKind, RunStatus, Stage, State, TelemetrySink, Verdict,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_service::Service;

use crate::{
    Registry, Telemetry,
    config::{AegisConfig, RoutingConfig},
    graph::{Durability, END, Graph, RunOptions, START, node_fn},
    guard::{ChainDecision, GuardChain, GuardEntry, Judgement, blocked_error},
    layer::{StreamObserver, authenticate},
};

/// Where a request is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Provider id.
    pub provider: String,
    /// Model name as the provider knows it.
    pub model: String,
}

/// The state of one governed exchange: what the lifecycle graph's nodes read and update.
#[derive(Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Exchange {
    /// The request (sanitized in place by input guards).
    pub request: ChatRequest,
    /// The caller, once authenticated.
    pub principal: Option<Principal>,
    /// Where the request goes.
    pub route: Option<Route>,
    /// The complete answer (sanitized in place by output guards).
    pub completion: Option<Completion>,
    /// Metadata of the provider's answer.
    pub meta: Option<ResponseMeta>,
    /// Guards that judged the exchange, in order.
    pub guards: Vec<String>,
    /// A streamed answer in flight; never checkpointed (a stream cannot outlive its process).
    #[serde(skip)]
    stream: StreamSlot,
    /// The presented credentials; never checkpointed.
    #[serde(skip)]
    credentials: Option<Credentials>,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("model", &self.request.model)
            .field("principal", &self.principal)
            .field("route", &self.route)
            .field("guards", &self.guards)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Default)]
struct StreamSlot(Arc<Mutex<Option<ChatStream>>>);

impl StreamSlot {
    fn put(&self, stream: ChatStream) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(stream);
        }
    }

    fn take(&self) -> Option<ChatStream> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// Updates the lifecycle nodes return.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExchangeUpdate {
    /// Authentication result.
    Principal(Option<Principal>),
    /// The judged (possibly sanitized) request and the guards that judged it.
    Request(Box<ChatRequest>, Vec<String>),
    /// The chosen route.
    Route(Route),
    /// The provider's complete answer.
    Completion(Box<Completion>, ResponseMeta),
    /// The provider streams (the stream sits in the state's slot).
    Streaming(ResponseMeta),
    /// The judged answer and the guards that judged it.
    Judged(Option<Box<Completion>>, Vec<String>),
    /// Nothing changes.
    Nothing,
}

impl State for Exchange {
    type Update = ExchangeUpdate;
    const SCHEMA_VERSION: u32 = 1;

    fn apply(&mut self, update: ExchangeUpdate) {
        match update {
            ExchangeUpdate::Principal(p) => {
                self.principal = p;
                self.credentials = None;
            }
            ExchangeUpdate::Request(req, guards) => {
                self.request = *req;
                self.guards.extend(guards);
            }
            ExchangeUpdate::Route(r) => self.route = Some(r),
            ExchangeUpdate::Completion(c, meta) => {
                self.completion = Some(*c);
                self.meta = Some(meta);
            }
            ExchangeUpdate::Streaming(meta) => self.meta = Some(meta),
            ExchangeUpdate::Judged(c, guards) => {
                if let Some(c) = c {
                    self.completion = Some(*c);
                }
                for g in guards {
                    if !self.guards.contains(&g) {
                        self.guards.push(g);
                    }
                }
            }
            ExchangeUpdate::Nothing => {}
        }
    }
}

struct Shared {
    providers: Vec<(String, Arc<dyn Provider>)>,
    routing: RoutingConfig,
    chain: GuardChain,
    authenticators: Vec<(String, Arc<dyn Authenticator>)>,
    require_auth: bool,
    telemetry: Telemetry,
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

    fn ctx(&self, state: &Exchange, run_id: &str) -> RequestContext {
        let mut ctx = RequestContext::default();
        ctx.run_id = Some(run_id.to_owned());
        ctx.principal.clone_from(&state.principal);
        ctx.labels.clone_from(&state.request.ctx.labels);
        ctx
    }

    fn provider(&self, id: &str) -> Option<&Arc<dyn Provider>> {
        self.providers
            .iter()
            .find(|(pid, _)| pid == id)
            .map(|(_, p)| p)
    }

    /// `alias` → target; `provider/model` → that provider; a model a provider lists → it;
    /// otherwise the default provider with the model as given.
    fn route(&self, model: &str) -> Result<Route, Error> {
        let model = self
            .routing
            .aliases
            .get(model)
            .map_or(model, String::as_str);
        if let Some((p, m)) = model.split_once('/')
            && self.provider(p).is_some()
        {
            return Ok(Route {
                provider: p.to_owned(),
                model: m.to_owned(),
            });
        }
        if let Some((id, _)) = self
            .providers
            .iter()
            .find(|(_, p)| p.models().iter().any(|m| m == model))
        {
            return Ok(Route {
                provider: id.clone(),
                model: model.to_owned(),
            });
        }
        let default = match &self.routing.default_provider {
            Some(id) => self.provider(id).map(|_| id.clone()),
            None => self.providers.first().map(|(id, _)| id.clone()),
        };
        match default {
            Some(provider) => Ok(Route {
                provider,
                model: model.to_owned(),
            }),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("no provider serves model `{model}` and no default provider is configured"),
            )),
        }
    }
}

fn approval_interrupt(
    v: &Verdict,
    stage: Stage,
    edit_schema: serde_json::Value,
) -> InterruptRequest {
    let reason = match &v.decision {
        aegis_contracts::Decision::RequireApproval { reason, .. } => reason.clone(),
        _ => "approval required".into(),
    };
    let payload = match &v.decision {
        aegis_contracts::Decision::RequireApproval { payload, .. } => payload.clone(),
        _ => serde_json::Value::Null,
    };
    InterruptRequest::new(
        format!("guard `{}` requires approval: {reason}", v.guard),
        json!({ "guard": v.guard, "stage": stage, "findings": v.findings, "score": v.score, "details": payload }),
    )
    .with_edit_schema(edit_schema)
}

fn messages_edit_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["messages"],
        "additionalProperties": false,
        "properties": {"messages": {"type": "array", "items": {"type": "object", "required": ["role"]}}}
    })
}

fn content_edit_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["content"],
        "additionalProperties": false,
        "properties": {"content": {"type": "string"}}
    })
}

fn judged_ids(j: &Judgement) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for (v, _) in &j.verdicts {
        if !ids.contains(&v.guard) {
            ids.push(v.guard.clone());
        }
    }
    ids
}

/// The lifecycle graph over `shared`.
fn lifecycle_graph(
    shared: Arc<Shared>,
    name: &str,
    store: Option<Arc<dyn CheckpointStore>>,
    durability: Durability,
    stream_buffering: bool,
) -> Result<Graph<Exchange>, Error> {
    let s = shared.clone();
    let authenticate_node = node_fn(move |input: NodeInput<Exchange>| {
        let s = s.clone();
        async move {
            let state = &input.state;
            if state.principal.is_some() {
                return Ok(NodeOutput::Update(ExchangeUpdate::Nothing));
            }
            let principal = s.authenticate(state.credentials.clone()).await?;
            Ok(NodeOutput::Update(ExchangeUpdate::Principal(principal)))
        }
    });

    let s = shared.clone();
    let input_node =
        node_fn(move |input: NodeInput<Exchange>| {
            let s = s.clone();
            async move {
                let ctx = s.ctx(&input.state, &input.ctx.run_id);
                let mut req = input.state.request.clone();
                let approved = matches!(input.ctx.resume, Some(Approval::Approve));
                if let Some(Approval::Edit { value }) = &input.ctx.resume {
                    let messages: Vec<Message> = serde_json::from_value(value["messages"].clone())
                        .map_err(|e| {
                            Error::invalid_request(format!("edited messages do not parse: {e}"))
                        })?;
                    req.messages = messages;
                    req.validate()?;
                }
                let judgement = s.chain.judge_request(&mut req, &ctx, approved).await;
                let ids = judged_ids(&judgement);
                match &judgement.decision {
                    ChainDecision::Allowed => Ok(NodeOutput::Update(ExchangeUpdate::Request(
                        Box::new(req),
                        ids,
                    ))),
                    ChainDecision::Blocked(v) => Err(blocked_error(v)),
                    ChainDecision::NeedsApproval(v) => Ok(NodeOutput::Interrupt(
                        approval_interrupt(v, Stage::Input, messages_edit_schema()),
                    )),
                }
            }
        });

    let s = shared.clone();
    let route_node = node_fn(move |input: NodeInput<Exchange>| {
        let s = s.clone();
        async move {
            Ok(NodeOutput::Update(ExchangeUpdate::Route(
                s.route(&input.state.request.model)?,
            )))
        }
    });

    let s = shared.clone();
    let call_node = node_fn(move |input: NodeInput<Exchange>| {
        let s = s.clone();
        async move {
            let state = &input.state;
            let route = state
                .route
                .clone()
                .ok_or_else(|| Error::internal("provider call before routing"))?;
            let provider = s
                .provider(&route.provider)
                .ok_or_else(|| {
                    Error::internal(format!("route names unknown provider `{}`", route.provider))
                })?
                .clone();
            let mut req = state.request.clone();
            req.model.clone_from(&route.model);
            req.ctx = s.ctx(state, &input.ctx.run_id);
            // OpenTelemetry GenAI semantic conventions; no prompt or completion text.
            let span = tracing::info_span!(
                "gen_ai",
                otel.name = %format_args!("chat {}", route.model),
                gen_ai.operation.name = "chat",
                gen_ai.provider.name = %route.provider,
                gen_ai.request.model = %route.model,
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
                aegis.run_id = %input.ctx.run_id,
            );
            let started = Instant::now();
            let result = tracing::Instrument::instrument(provider.chat(req), span.clone()).await;
            let latency = started.elapsed();
            if let Ok(ChatResponse {
                body: ChatBody::Complete(c),
                ..
            }) = &result
                && let Some(u) = c.usage
            {
                span.record("gen_ai.usage.input_tokens", u.input_tokens);
                span.record("gen_ai.usage.output_tokens", u.output_tokens);
            }
            let run_id = input.ctx.run_id.as_str();
            let mut resp = match result {
                Ok(r) => r,
                Err(e) => {
                    s.telemetry.emit(run_id, || RunEventKind::ProviderCall {
                        provider: route.provider.clone(),
                        model: route.model.clone(),
                        usage: None,
                        latency_us: latency,
                        error: Some(e.kind()),
                    });
                    return Err(e);
                }
            };
            resp.meta.provider.clone_from(&route.provider);
            resp.meta.provider_latency.get_or_insert(latency);
            match resp.body {
                ChatBody::Complete(c) => {
                    s.telemetry.emit(run_id, || RunEventKind::ProviderCall {
                        provider: route.provider.clone(),
                        model: resp.meta.model.clone(),
                        usage: c.usage,
                        latency_us: latency,
                        error: None,
                    });
                    Ok(NodeOutput::Update(ExchangeUpdate::Completion(
                        Box::new(c),
                        resp.meta,
                    )))
                }
                ChatBody::Stream(stream) => {
                    let observer = StreamObserver {
                        telemetry: s.telemetry.clone(),
                        run_id: run_id.to_owned(),
                        provider: route.provider.clone(),
                        model: resp.meta.model.clone(),
                        latency,
                        usage: None,
                        report_outcome: false,
                    };
                    state.stream.put(observer.observe(stream));
                    Ok(NodeOutput::Update(ExchangeUpdate::Streaming(resp.meta)))
                }
            }
        }
    });

    let s = shared.clone();
    let output_node =
        node_fn(move |input: NodeInput<Exchange>| {
            let s = s.clone();
            async move {
                let state = &input.state;
                let ctx = s.ctx(state, &input.ctx.run_id);
                if let Some(stream) = state.stream.take() {
                    let ids: Vec<String> = s
                        .chain
                        .entries()
                        .iter()
                        .filter(|e| {
                            e.capabilities().applies_to(Stage::Output)
                                || e.capabilities().applies_to(Stage::ToolCall)
                        })
                        .map(|e| e.id().to_owned())
                        .collect();
                    state.stream.put(s.chain.guard_stream(stream, ctx));
                    return Ok(NodeOutput::Update(ExchangeUpdate::Judged(None, ids)));
                }
                let mut completion = state
                    .completion
                    .clone()
                    .ok_or_else(|| Error::internal("output guards before a provider answer"))?;
                let approved = matches!(input.ctx.resume, Some(Approval::Approve));
                if let Some(Approval::Edit { value }) = &input.ctx.resume {
                    let content = value["content"].as_str().unwrap_or_default().to_owned();
                    if let Some(choice) = completion.choices.first_mut() {
                        choice.message.content = Some(aegis_contracts::Content::Text(content));
                    }
                }
                let judgement = s
                    .chain
                    .judge_completion(&mut completion, &ctx, approved)
                    .await;
                let ids = judged_ids(&judgement);
                match &judgement.decision {
                    ChainDecision::Allowed => Ok(NodeOutput::Update(ExchangeUpdate::Judged(
                        Some(Box::new(completion)),
                        ids,
                    ))),
                    ChainDecision::Blocked(v) => Err(blocked_error(v)),
                    ChainDecision::NeedsApproval(v) => Ok(NodeOutput::Interrupt(
                        approval_interrupt(v, Stage::Output, content_edit_schema()),
                    )),
                }
            }
        });

    let s = shared.clone();
    let audit_node = node_fn(move |input: NodeInput<Exchange>| {
        let s = s.clone();
        async move {
            let state = &input.state;
            s.telemetry.emit(&input.ctx.run_id, || RunEventKind::Audit {
                principal: state.principal.as_ref().map(|p| p.id.clone()),
                provider: state.route.as_ref().map(|r| r.provider.clone()),
                model: state.meta.as_ref().map(|m| m.model.clone()),
                guards: state.guards.clone(),
                usage: state.completion.as_ref().and_then(|c| c.usage),
            });
            Ok(NodeOutput::Update(ExchangeUpdate::Nothing))
        }
    });

    let mut builder = Graph::<Exchange>::builder(name)
        .node("authenticate", authenticate_node)
        .node("input_guards", input_node)
        .node("route", route_node)
        .node("provider_call", call_node)
        .node("output_guards", output_node)
        .node("audit", audit_node)
        .edge(START, "authenticate")
        .edge("authenticate", "input_guards")
        .edge("input_guards", "route")
        .edge("route", "provider_call")
        .edge("provider_call", "output_guards")
        .edge("output_guards", "audit")
        .edge("audit", END)
        .durability(durability)
        .telemetry(shared.telemetry.clone())
        .output_guards("output_guards", shared.chain.clone())
        .streaming(stream_buffering);
    if let Some(store) = store {
        builder = builder.checkpointer(store);
    }
    builder.compile()
}

/// The default governed pipeline: a tower `Service<ChatRequest>` running the lifecycle
/// graph, with resumable human approvals.
#[derive(Clone)]
pub struct Pipeline {
    graph: Graph<Exchange>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("graph", &self.graph)
            .field(
                "providers",
                &self
                    .shared
                    .providers
                    .iter()
                    .map(|(id, _)| id)
                    .collect::<Vec<_>>(),
            )
            .field("guards", &self.shared.chain)
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

/// Builds a [`Pipeline`] from components (see also [`Pipeline::from_config`]).
#[derive(Default)]
pub struct PipelineBuilder {
    name: Option<String>,
    providers: Vec<(String, Arc<dyn Provider>)>,
    guards: Vec<GuardEntry>,
    authenticators: Vec<(String, Arc<dyn Authenticator>)>,
    sinks: Vec<Arc<dyn TelemetrySink>>,
    routing: RoutingConfig,
    store: Option<Arc<dyn CheckpointStore>>,
    durability: Durability,
    require_auth: bool,
    stream_buffering: Option<bool>,
}

impl PipelineBuilder {
    /// Names the graph (default `default`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a provider under `id`.
    pub fn provider(mut self, id: impl Into<String>, provider: Arc<dyn Provider>) -> Self {
        self.providers.push((id.into(), provider));
        self
    }

    /// Appends a guard to the chain.
    pub fn guard(mut self, entry: GuardEntry) -> Self {
        self.guards.push(entry);
        self
    }

    /// Adds an authenticator.
    pub fn authenticator(mut self, id: impl Into<String>, a: Arc<dyn Authenticator>) -> Self {
        self.authenticators.push((id.into(), a));
        self
    }

    /// Adds a telemetry sink.
    pub fn telemetry(mut self, sink: Arc<dyn TelemetrySink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Sets routing (aliases, default provider).
    pub fn routing(mut self, routing: RoutingConfig) -> Self {
        self.routing = routing;
        self
    }

    /// Keeps runs in `store` (default: in memory).
    pub fn checkpointer(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// When checkpoints are written.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Refuse unauthenticated requests even without authenticators.
    pub fn require_auth(mut self, yes: bool) -> Self {
        self.require_auth = yes;
        self
    }

    /// Whether full-text output guards may buffer streams (default true).
    pub fn stream_buffering(mut self, yes: bool) -> Self {
        self.stream_buffering = Some(yes);
        self
    }

    /// Compiles the lifecycle graph.
    pub fn build(self) -> Result<Pipeline, Error> {
        let telemetry = Telemetry::new(self.sinks);
        let shared = Arc::new(Shared {
            providers: self.providers,
            routing: self.routing,
            chain: GuardChain::new(self.guards).with_telemetry(telemetry.clone()),
            authenticators: self.authenticators,
            require_auth: self.require_auth,
            telemetry,
        });
        let name = self.name.unwrap_or_else(|| "default".into());
        let graph = lifecycle_graph(
            shared.clone(),
            &name,
            self.store,
            self.durability,
            self.stream_buffering.unwrap_or(true),
        )?;
        Ok(Pipeline { graph, shared })
    }
}

impl Pipeline {
    /// Starts building a pipeline from components.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// Builds the pipeline a config describes, with plugins from `registry`.
    pub async fn from_config(registry: &Registry, config: &AegisConfig) -> Result<Self, Error> {
        Self::from_config_with_store(registry, config, None).await
    }

    /// [`from_config`](Self::from_config) keeping runs in `store`.
    pub async fn from_config_with_store(
        registry: &Registry,
        config: &AegisConfig,
        store: Option<Arc<dyn CheckpointStore>>,
    ) -> Result<Self, Error> {
        Self::from_config_with(registry, config, store, Vec::new()).await
    }

    /// [`from_config`](Self::from_config) with a checkpoint store and extra telemetry sinks
    /// supplied by the host (e.g. an audit writer, a live event feed).
    pub async fn from_config_with(
        registry: &Registry,
        config: &AegisConfig,
        store: Option<Arc<dyn CheckpointStore>>,
        sinks: Vec<Arc<dyn TelemetrySink>>,
    ) -> Result<Self, Error> {
        let c = registry.build(config).await?;
        let mut b = Pipeline::builder()
            .name(config.pipeline.name.clone())
            .routing(config.routing.clone())
            .durability(config.pipeline.durability)
            .require_auth(config.pipeline.require_auth)
            .stream_buffering(config.pipeline.stream_buffering);
        if let Some(default) = &config.routing.default_provider
            && !c.providers.iter().any(|(id, _)| id == default)
        {
            return Err(Error::config(format!(
                "routing.default_provider: no provider has id `{default}`"
            )));
        }
        for (id, p) in c.providers {
            b = b.provider(id, p);
        }
        for g in c.guards {
            b = b.guard(g);
        }
        for (id, a) in c.authenticators {
            b = b.authenticator(id, a);
        }
        for t in c.telemetry.into_iter().map(|(_, t)| t).chain(sinks) {
            b = b.telemetry(t);
        }
        if let Some(store) = store {
            b = b.checkpointer(store);
        }
        b.build()
    }

    /// The compiled lifecycle graph.
    pub fn graph(&self) -> &Graph<Exchange> {
        &self.graph
    }

    /// The guard chain.
    pub fn chain(&self) -> &GuardChain {
        &self.shared.chain
    }

    /// Provider ids, in config order.
    pub fn provider_ids(&self) -> Vec<&str> {
        self.shared
            .providers
            .iter()
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// The models callers can name: each provider's id (its default model), `provider/model`
    /// for every model a provider lists, and every alias — with the provider serving each.
    pub fn models(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (id, p) in &self.shared.providers {
            out.push((id.clone(), id.clone()));
            for m in p.models() {
                out.push((format!("{id}/{m}"), id.clone()));
            }
        }
        for (alias, target) in &self.shared.routing.aliases {
            if let Ok(route) = self.shared.route(target) {
                out.push((alias.clone(), route.provider));
            }
        }
        out
    }

    /// Runs one request; a pause is an outcome, not an error.
    pub async fn run(&self, mut req: ChatRequest) -> Result<PipelineOutcome, Error> {
        req.validate()?;
        let mut ctx = std::mem::take(&mut req.ctx);
        // Identify the caller before the run exists, so the run records its owner and an
        // unauthenticated request stores nothing.
        if ctx.principal.is_none() {
            ctx.principal = self.authenticate(&ctx).await?;
        }
        let mut options = RunOptions::default();
        if let Some(id) = &ctx.run_id {
            options = options.run_id(id.clone());
        }
        if let Some(p) = &ctx.principal {
            options = options.principal(p.id.clone());
        }
        req.ctx.labels = ctx.labels;
        let state = Exchange {
            principal: ctx.principal,
            credentials: ctx.credentials,
            request: req,
            ..Exchange::default()
        };
        let outcome = self
            .graph
            .invoke_with(state, options)
            .await
            .inspect_err(|e| self.end_run(e))?;
        self.finish(
            outcome.run_id,
            outcome.status,
            outcome.state,
            outcome.interrupt,
        )
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
        let outcome = self
            .graph
            .resume_by(run_id, decision, by)
            .await
            .inspect_err(|e| self.end_run(e))?;
        self.finish(
            outcome.run_id,
            outcome.status,
            outcome.state,
            outcome.interrupt,
        )
    }

    /// Embeddings through the same identity and input guards (the texts are judged as user
    /// input) and routing.
    pub async fn embed(&self, mut req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        if req.input.is_empty() {
            return Err(Error::invalid_request(
                "`input` must contain at least one text",
            ));
        }
        let run_id = crate::graph::new_run_id();
        let mut ctx = std::mem::take(&mut req.ctx);
        ctx.run_id = Some(run_id);
        if ctx.principal.is_none() {
            ctx.principal = self.authenticate(&ctx).await?;
        }
        let mut chat = ChatRequest::new(
            req.model.clone(),
            req.input.iter().map(Message::user).collect(),
        );
        let judgement = self
            .shared
            .chain
            .judge_request(&mut chat, &ctx, false)
            .await;
        match judgement.decision {
            ChainDecision::Allowed => {}
            ChainDecision::Blocked(v) => return Err(blocked_error(&v)),
            ChainDecision::NeedsApproval(v) => return Err(crate::guard::approval_error(&v)),
        }
        req.input = chat
            .messages
            .iter()
            .map(|m| m.text().into_owned())
            .collect();
        let route = self.shared.route(&req.model)?;
        let provider = self
            .shared
            .provider(&route.provider)
            .ok_or_else(|| Error::internal("route names an unknown provider"))?
            .clone();
        req.model = route.model;
        req.ctx = ctx;
        provider.embed(req).await
    }

    /// Identifies the caller of `ctx` with the configured authenticators (the first that
    /// accepts wins). `Ok(None)` when no authenticator is configured and authentication is not
    /// required; [`Unauthenticated`](ErrorKind::Unauthenticated) otherwise.
    pub async fn authenticate(&self, ctx: &RequestContext) -> Result<Option<Principal>, Error> {
        self.shared.authenticate(ctx.credentials.clone()).await
    }

    /// A failed run has ended: let the guards drop its state.
    fn end_run(&self, err: &Error) {
        if let Some(run_id) = err.run_id() {
            self.shared.chain.end_run(run_id);
        }
    }

    fn finish(
        &self,
        run_id: String,
        status: RunStatus,
        state: Exchange,
        interrupt: Option<Interrupt>,
    ) -> Result<PipelineOutcome, Error> {
        match status {
            RunStatus::Paused => Ok(PipelineOutcome::Paused {
                run_id,
                interrupt: interrupt
                    .ok_or_else(|| Error::internal("paused without an interrupt"))?,
            }),
            RunStatus::Rejected => Err({
                self.shared.chain.end_run(&run_id);
                Error::new(
                    ErrorKind::PolicyBlocked,
                    "the run was rejected by a reviewer",
                )
                .with_code("rejected")
                .with_run_id(run_id)
            }),
            RunStatus::Completed => {
                let mut meta = state.meta.clone().unwrap_or_default();
                meta.run_id = Some(run_id.clone());
                meta.guards.clone_from(&state.guards);
                let body = match (state.stream.take(), state.completion) {
                    // The run ends when its stream does.
                    (Some(stream), _) => ChatBody::Stream(end_run_with(
                        stream,
                        self.shared.chain.clone(),
                        run_id.clone(),
                    )),
                    (None, Some(c)) => {
                        self.shared.chain.end_run(&run_id);
                        ChatBody::Complete(c)
                    }
                    (None, None) => {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            "this run streamed its answer in another process; the stream cannot be replayed",
                        )
                        .with_run_id(run_id));
                    }
                };
                Ok(PipelineOutcome::Response(ChatResponse { meta, body }))
            }
            RunStatus::Running | RunStatus::Failed => Err(Error::internal(format!(
                "run ended in unexpected status {status:?}"
            ))
            .with_run_id(run_id)),
        }
    }
}

/// Calls [`GuardChain::end_run`] when the stream ends or is dropped.
fn end_run_with(stream: ChatStream, chain: GuardChain, run_id: String) -> ChatStream {
    struct RunEnd(GuardChain, String);
    impl Drop for RunEnd {
        fn drop(&mut self) {
            self.0.end_run(&self.1);
        }
    }
    let end = RunEnd(chain, run_id);
    Box::pin(futures_util::StreamExt::map(stream, move |item| {
        let _keep_until_the_stream_is_gone = &end;
        item
    }))
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
