//! Assembling a [`Pipeline`]: components (or a config) in, the compiled lifecycle graph out.

use std::sync::Arc;

use aegis_contracts::{
    Authenticator, CheckpointStore, Error, Policy, Position, PriceTable, Provider, TelemetrySink,
};

use super::{Exchange, Pipeline, Shared, nodes, routes::ModelTable};
use crate::{
    Components, Registry, Telemetry,
    config::{AdmissionConfig, AegisConfig, RoutingConfig, StoreContent},
    graph::{BoxNode, Durability, END, Graph, START},
    guard::{GuardChain, GuardEntry},
};

/// Builds a [`Pipeline`] from components (see also [`Pipeline::from_config`]).
#[derive(Default)]
pub struct PipelineBuilder {
    name: Option<String>,
    providers: Vec<(String, Arc<dyn Provider>)>,
    guards: Vec<GuardEntry>,
    authenticators: Vec<(String, Arc<dyn Authenticator>)>,
    policies: Vec<(String, Arc<dyn Policy>)>,
    sinks: Vec<Arc<dyn TelemetrySink>>,
    routing: RoutingConfig,
    store: Option<Arc<dyn CheckpointStore>>,
    durability: Durability,
    require_auth: bool,
    admission: AdmissionConfig,
    store_content: StoreContent,
    stream_buffering: Option<bool>,
    resume_lease: Option<std::time::Duration>,
    default_model: Option<String>,
    prices: Option<PriceTable>,
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

    /// Appends a policy: its steps run at the positions it declares, after the policies
    /// added before it; its run-end hook runs once per run.
    pub fn policy(mut self, id: impl Into<String>, policy: Arc<dyn Policy>) -> Self {
        self.policies.push((id.into(), policy));
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

    /// What happens to request parts the guards cannot judge (default: fail closed; see
    /// [`AdmissionConfig`]).
    pub fn admission(mut self, admission: AdmissionConfig) -> Self {
        self.admission = admission;
        self
    }

    /// What a run's final checkpoint keeps of its content (default
    /// [`StoreContent::Sanitized`]); a run that did not complete keeps none either way.
    pub fn store_content(mut self, content: StoreContent) -> Self {
        self.store_content = content;
        self
    }

    /// Whether full-text output guards may buffer streams (default true).
    pub fn stream_buffering(mut self, yes: bool) -> Self {
        self.stream_buffering = Some(yes);
        self
    }

    /// How long a resume holds its claim on a run (default
    /// [`DEFAULT_RESUME_LEASE`](crate::graph::DEFAULT_RESUME_LEASE)); see
    /// [`Pipeline::recover`].
    pub fn resume_lease(mut self, lease: std::time::Duration) -> Self {
        self.resume_lease = Some(lease);
        self
    }

    /// The model of requests that name none (or name `default`).
    pub fn default_model(mut self, model: impl Into<String>) -> Self {
        self.default_model = Some(model.into());
        self
    }

    /// What runs cost: the price table every run record and audit record is priced with
    /// (default: the shipped table, [`PriceTable::shipped`]).
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = Some(prices);
        self
    }

    /// Compiles the routing table and the lifecycle graph. Errors: alias targets that do
    /// not resolve, an unknown default provider, duplicate policy ids, output guards that
    /// cannot judge a stream without buffering when buffering is off.
    pub fn build(self) -> Result<Pipeline, Error> {
        let telemetry = Telemetry::new(self.sinks);
        let routes = ModelTable::new(self.providers, &self.routing)?;
        if let Some(m) = &self.default_model {
            routes.resolve(m).map_err(|e| {
                Error::config(format!(
                    "default_model: `{m}` does not resolve: {}",
                    e.message()
                ))
            })?;
        }
        let chain = GuardChain::new(self.guards).with_telemetry(telemetry.clone());
        for warning in chain.order_warnings() {
            tracing::warn!("{warning}");
        }
        // Hold-back negotiation is the pipeline's business; the engine only reports it.
        let holdback = chain.stream_holdback(self.stream_buffering.unwrap_or(true));
        let admission = super::admission::Admission::new(self.admission, &chain);
        let shared = Arc::new(Shared {
            routes,
            chain,
            admission,
            authenticators: self.authenticators,
            policies: self.policies,
            require_auth: self.require_auth,
            telemetry,
            prices: self.prices.unwrap_or_default(),
        });
        let name = self.name.unwrap_or_else(|| "default".into());
        let steps = lifecycle_steps(&shared);
        let mut builder = Graph::<Exchange>::builder(name)
            .durability(self.durability)
            .telemetry(shared.telemetry.clone())
            .resume_lease(
                self.resume_lease
                    .unwrap_or(crate::graph::DEFAULT_RESUME_LEASE),
            )
            .open_end(true)
            .terminal_view({
                let content = self.store_content;
                Arc::new(move |x: &Exchange, status| x.stored_view(status, content))
            });
        let mut previous = START.to_owned();
        for (name, node) in steps {
            builder = builder
                .node(name.clone(), node)
                .edge(previous, name.clone());
            previous = name;
        }
        builder = builder.edge(previous, END);
        let problem = holdback.as_ref().err().map(|e| e.message().to_owned());
        builder = builder.check(move |_| problem.into_iter().collect());
        if let Some(store) = self.store {
            builder = builder.checkpointer(store);
        }
        let graph = builder.compile()?;
        let holdback = holdback?;
        Ok(Pipeline {
            graph,
            shared,
            holdback,
            default_model: self.default_model.map(Arc::from),
        })
    }
}

/// The lifecycle in order, with each policy's step at the positions it declares.
fn lifecycle_steps(shared: &Arc<Shared>) -> Vec<(String, BoxNode<Exchange>)> {
    let mut steps: Vec<(String, BoxNode<Exchange>)> = Vec::new();
    let at = |steps: &mut Vec<(String, BoxNode<Exchange>)>, position: Position| {
        for (id, policy) in shared.policies_at(position) {
            steps.push((
                format!("{id}.{position}"),
                nodes::policy_step(shared.clone(), id.clone(), policy.clone(), position),
            ));
        }
    };
    steps.push(("authenticate".into(), nodes::authenticate(shared.clone())));
    at(&mut steps, Position::AfterAuth);
    steps.push(("input_guards".into(), nodes::input_guards(shared.clone())));
    at(&mut steps, Position::BeforeRoute);
    steps.push(("route".into(), nodes::route(shared.clone())));
    at(&mut steps, Position::BeforeCall);
    steps.push(("provider_call".into(), nodes::provider_call(shared.clone())));
    at(&mut steps, Position::AfterCall);
    steps.push(("output_guards".into(), nodes::output_guards(shared.clone())));
    steps
}

impl Pipeline {
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
    /// supplied by the host (e.g. an audit writer, a live event feed). Only the main
    /// pipeline; [`PipelineSet::from_config_with`] builds the `[[pipelines]]` too.
    pub async fn from_config_with(
        registry: &Registry,
        config: &AegisConfig,
        store: Option<Arc<dyn CheckpointStore>>,
        sinks: Vec<Arc<dyn TelemetrySink>>,
    ) -> Result<Self, Error> {
        let c = registry.build(config).await?;
        let main = Selection {
            name: config.pipeline.name.clone(),
            guards: c.guards.clone(),
            policies: c.policies.clone(),
            default_model: config.pipeline.default_model.clone(),
        };
        assemble(config, &c, main, store, sinks)
    }
}

/// What one pipeline of a config takes from the shared components.
struct Selection {
    name: String,
    guards: Vec<GuardEntry>,
    policies: Vec<(String, Arc<dyn Policy>)>,
    default_model: Option<String>,
}

/// One pipeline over the shared components (providers, routing and authenticators are the
/// same instances for every pipeline of a config: one router's health, one reload).
fn assemble(
    config: &AegisConfig,
    c: &Components,
    pick: Selection,
    store: Option<Arc<dyn CheckpointStore>>,
    sinks: Vec<Arc<dyn TelemetrySink>>,
) -> Result<Pipeline, Error> {
    if config.pipeline.resume_lease_ms < 100 {
        return Err(Error::config(
            "pipeline.resume_lease_ms: must be at least 100 (shorter leases would hand every resume to recovery)",
        ));
    }
    let mut b = Pipeline::builder()
        .name(pick.name)
        .routing(config.routing.clone())
        .durability(config.pipeline.durability)
        .require_auth(config.pipeline.require_auth)
        .admission(config.pipeline.admission.clone())
        .store_content(config.pipeline.store_content)
        .prices(c.prices.clone())
        .stream_buffering(config.pipeline.stream_buffering)
        .resume_lease(std::time::Duration::from_millis(
            config.pipeline.resume_lease_ms,
        ));
    if let Some(m) = pick.default_model {
        b = b.default_model(m);
    }
    for (id, p) in &c.providers {
        b = b.provider(id.clone(), p.clone());
    }
    for g in pick.guards {
        b = b.guard(g);
    }
    for (id, a) in &c.authenticators {
        b = b.authenticator(id.clone(), a.clone());
    }
    for (id, p) in pick.policies {
        b = b.policy(id, p);
    }
    for t in c.telemetry.iter().map(|(_, t)| t.clone()).chain(sinks) {
        b = b.telemetry(t);
    }
    if let Some(store) = store {
        b = b.checkpointer(store);
    }
    b.build()
}

impl From<Pipeline> for PipelineSet {
    fn from(main: Pipeline) -> Self {
        Self::single(main)
    }
}

/// The pipelines one config describes: the main one and every `[[pipelines]]` entry,
/// sharing providers, routing, authenticators and the checkpoint store. Cheap to clone.
#[derive(Clone)]
pub struct PipelineSet {
    main: Pipeline,
    named: Vec<(String, Pipeline)>,
    retrievers: Vec<(String, Arc<dyn aegis_contracts::Retriever>)>,
}

impl std::fmt::Debug for PipelineSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineSet")
            .field("main", &self.main)
            .field("named", &self.named)
            .field(
                "retrievers",
                &self.retrievers.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PipelineSet {
    /// Builds every pipeline of `config`. A `[[pipelines]]` entry naming an unknown guard or
    /// policy, or reusing a name, is an error with its path.
    pub async fn from_config_with(
        registry: &Registry,
        config: &AegisConfig,
        store: Option<Arc<dyn CheckpointStore>>,
        sinks: Vec<Arc<dyn TelemetrySink>>,
    ) -> Result<Self, Error> {
        let c = registry.build(config).await?;
        let main = assemble(
            config,
            &c,
            Selection {
                name: config.pipeline.name.clone(),
                guards: c.guards.clone(),
                policies: c.policies.clone(),
                default_model: config.pipeline.default_model.clone(),
            },
            store.clone(),
            sinks.clone(),
        )?;
        let mut problems = Vec::new();
        let mut named: Vec<(String, Pipeline)> = Vec::new();
        for (i, n) in config.pipelines.iter().enumerate() {
            let at = format!("pipelines[{i}]");
            if n.name.trim().is_empty()
                || !n
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                problems.push(format!(
                    "{at}.name: `{}` must be letters, digits, `-` or `_` (it is part of a URL)",
                    n.name
                ));
                continue;
            }
            if n.name == config.pipeline.name || named.iter().any(|(x, _)| *x == n.name) {
                problems.push(format!("{at}.name: `{}` is used twice", n.name));
                continue;
            }
            let mut guards = Vec::new();
            for (j, id) in n.guardrails.iter().enumerate() {
                match c.guards.iter().find(|g| g.id() == id) {
                    Some(g) => guards.push(g.clone()),
                    None => {
                        problems.push(format!("{at}.guardrails[{j}]: no guardrail has id `{id}`"))
                    }
                }
            }
            let mut policies = Vec::new();
            match &n.policies {
                None => policies.clone_from(&c.policies),
                Some(ids) => {
                    for (j, id) in ids.iter().enumerate() {
                        match c.policies.iter().find(|(p, _)| p == id) {
                            Some(p) => policies.push(p.clone()),
                            None => problems
                                .push(format!("{at}.policies[{j}]: no policy has id `{id}`")),
                        }
                    }
                }
            }
            let pick = Selection {
                name: n.name.clone(),
                guards,
                policies,
                default_model: n.default_model.clone(),
            };
            match assemble(config, &c, pick, store.clone(), sinks.clone()) {
                Ok(p) => named.push((n.name.clone(), p)),
                Err(e) => problems.push(format!("{at}: {}", e.message())),
            }
        }
        if !problems.is_empty() {
            return Err(Error::config(problems.join("\n")));
        }
        Ok(Self {
            main,
            named,
            retrievers: c.retrievers.clone(),
        })
    }

    /// A set of one pipeline.
    pub fn single(main: Pipeline) -> Self {
        Self {
            main,
            named: Vec::new(),
            retrievers: Vec::new(),
        }
    }

    /// The `[[retrievers]]` of the config, in order (ingestion writes to the stores among
    /// them).
    pub fn retrievers(&self) -> &[(String, Arc<dyn aegis_contracts::Retriever>)] {
        &self.retrievers
    }

    /// The main pipeline.
    pub fn main(&self) -> &Pipeline {
        &self.main
    }

    /// The pipeline called `name` (the main one answers to its own name too).
    pub fn get(&self, name: &str) -> Option<&Pipeline> {
        if self.main.graph().name() == name {
            return Some(&self.main);
        }
        self.named.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// The names of the named pipelines, in config order.
    pub fn names(&self) -> Vec<&str> {
        self.named.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Warnings about the pipelines' configuration that do not stop them (see
    /// [`GuardChain::order_warnings`]); a named pipeline's are prefixed with its name.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = self.main.chain().order_warnings();
        for (name, p) in &self.named {
            out.extend(
                p.chain()
                    .order_warnings()
                    .into_iter()
                    .map(|w| format!("pipelines.{name}: {w}")),
            );
        }
        out
    }

    /// Whether there is more than the main pipeline.
    pub fn has_named(&self) -> bool {
        !self.named.is_empty()
    }
}
