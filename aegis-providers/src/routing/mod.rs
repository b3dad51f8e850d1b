//! Routing: a [`Router`] is itself a [`Provider`] that spreads requests over a set of
//! [`Deployment`]s — model aliases, weighted / least-latency / least-busy selection, ordered
//! fallbacks on retryable errors, retries with exponential backoff and jitter that honour
//! `retry_after`, per-attempt and total timeouts, a circuit breaker per deployment, and a
//! residency filter re-checked before every attempt.
//!
//! ```
//! use std::sync::Arc;
//! use aegis_contracts::{ChatRequest, Message, Provider};
//! use aegis_providers::{Echo, routing::{Deployment, Router, Strategy}};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), aegis_contracts::Error> {
//! let eu = Arc::new(Echo::new("echo-eu").with_region("eu"));
//! let us = Arc::new(Echo::new("echo-us").with_region("us"));
//! let router = Router::builder("llm")
//!     .strategy(Strategy::Weighted)
//!     .deployment("chat", Deployment::new("eu-1", eu, "small").with_weight(3))
//!     .deployment("chat", Deployment::new("us-1", us, "small").with_weight(1))
//!     .alias("default", "chat")
//!     .build()?;
//! let answer = router
//!     .chat(ChatRequest::new("default", vec![Message::user("hi")]))
//!     .await?
//!     .collect()
//!     .await?;
//! assert_eq!(answer.message().unwrap().text(), "echo: hi");
//! # Ok(()) }
//! ```
//!
//! # Attempts
//!
//! A request names a model group (or an alias of one). Each group is tried in turn — the
//! requested one, then its `fallbacks` in order. Within a group, an attempt picks (by
//! strategy), among the deployments that pass the residency filter and whose circuit is not
//! open, one not yet tried by this request: every eligible deployment gets one attempt, and
//! moving to a fresh one is immediate. When all have been tried, up to `max_retries` more
//! attempts go back to one of them, each after an exponential backoff with jitter that is
//! never shorter than the last error's `retry_after`.
//!
//! Only retryable errors ([`Error::is_retryable`]) move on; anything else is returned at
//! once. A streamed answer may fall back until its first chunk arrives; after the first
//! chunk, a failure is an `Err` item of the stream and no second request is ever made.
//!
//! # Residency
//!
//! The filter (`Fn(&Deployment, &ChatRequest) -> bool`) is evaluated before every attempt,
//! fallbacks and retries included. A deployment that fails it is never called. When no
//! deployment of the group or its fallbacks passes, the answer is an
//! [`ErrorKind::ResidencyViolation`] error — never a silent fallback elsewhere.

mod attempt;
mod config;
mod deployment;
pub mod future;
mod layer;
mod policy;
mod select;

use std::{
    collections::HashMap,
    fmt,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use aegis_contracts::{
    ChatBody, ChatChunk, ChatRequest, ChatResponse, ChatStream, EmbeddingRequest,
    EmbeddingResponse, Error, ErrorKind, Provider, ProviderCapabilities, async_trait,
};
use futures_core::Stream;
use futures_util::StreamExt;
use tokio::time::Instant;

pub use config::{
    BreakerConfig, DeploymentConfig, ModelGroupConfig, RetryConfig, RouterConfig, TimeoutConfig,
};
pub use deployment::Deployment;
pub use layer::{Route, RouteLayer};
pub use policy::{CircuitBreaker, RegionFilter, RetryPolicy, Strategy, region_label_filter};

use self::{attempt::*, deployment::*, select::*};

struct Group {
    name: String,
    deployments: Vec<Deployment>,
    fallbacks: Vec<usize>,
}

struct Inner {
    name: String,
    groups: Vec<Group>,
    by_name: HashMap<String, usize>,
    aliases: HashMap<String, String>,
    strategy: Strategy,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    attempt_timeout: Option<Duration>,
    total_timeout: Option<Duration>,
    filter: Option<RegionFilter>,
    epoch: Instant,
    /// Provider ids reached only through this router.
    members: Vec<String>,
}

/// A [`Provider`] over a set of deployments; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Router")
            .field("name", &i.name)
            .field("strategy", &i.strategy)
            .field(
                "models",
                &i.groups
                    .iter()
                    .map(|g| (&g.name, &g.deployments))
                    .collect::<Vec<_>>(),
            )
            .field("aliases", &i.aliases)
            .finish()
    }
}

/// Builds a [`Router`]; see [`Router::builder`].
#[must_use]
pub struct RouterBuilder {
    name: String,
    groups: Vec<(String, Vec<Deployment>, Vec<String>)>,
    aliases: Vec<(String, String)>,
    strategy: Strategy,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    attempt_timeout: Option<Duration>,
    total_timeout: Option<Duration>,
    filter: Option<RegionFilter>,
    members: Vec<String>,
}

impl fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("name", &self.name)
            .field(
                "groups",
                &self.groups.iter().map(|g| &g.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RouterBuilder {
    fn group_mut(&mut self, group: &str) -> &mut (String, Vec<Deployment>, Vec<String>) {
        let pos = match self.groups.iter().position(|g| g.0 == group) {
            Some(p) => p,
            None => {
                self.groups.push((group.to_owned(), Vec::new(), Vec::new()));
                self.groups.len() - 1
            }
        };
        &mut self.groups[pos]
    }

    /// Adds a deployment to model group `group` (created on first use).
    pub fn deployment(mut self, group: impl AsRef<str>, deployment: Deployment) -> Self {
        self.group_mut(group.as_ref()).1.push(deployment);
        self
    }

    /// The groups tried, in order, when `group` has no answer.
    pub fn fallbacks<I, S>(mut self, group: impl AsRef<str>, fallbacks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.group_mut(group.as_ref()).2 = fallbacks.into_iter().map(Into::into).collect();
        self
    }

    /// `alias` names model group `target`.
    pub fn alias(mut self, alias: impl Into<String>, target: impl Into<String>) -> Self {
        self.aliases.push((alias.into(), target.into()));
        self
    }

    /// The selection strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Retries and backoff.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The per-deployment circuit breaker.
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = breaker;
        self
    }

    /// Deadline of one attempt (to the complete answer, or to a stream's first chunk).
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }

    /// Deadline of the whole request across attempts and backoffs (to a stream's first
    /// chunk).
    pub fn total_timeout(mut self, d: Duration) -> Self {
        self.total_timeout = Some(d);
        self
    }

    /// The residency filter, checked before every attempt.
    pub fn region_filter(mut self, filter: RegionFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Declares that provider `id` is reached only through this router: a pipeline then
    /// refuses `id/model` from callers, so the router's filters cannot be bypassed.
    pub fn member(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        if !self.members.contains(&id) {
            self.members.push(id);
        }
        self
    }

    /// Builds the router. Empty groups, fallbacks or aliases naming unknown groups, and
    /// aliases shadowing groups are [`ErrorKind::Config`] errors.
    pub fn build(self) -> Result<Router, Error> {
        let name = self.name;
        let mut by_name = HashMap::new();
        for (i, (g, deps, _)) in self.groups.iter().enumerate() {
            if deps.is_empty() {
                return Err(Error::config(format!(
                    "router `{name}`: model `{g}` has no deployments"
                )));
            }
            by_name.insert(g.clone(), i);
        }
        let mut groups = Vec::with_capacity(self.groups.len());
        for (g, deployments, fallbacks) in self.groups {
            let mut fb = Vec::new();
            for f in fallbacks {
                let idx = *by_name.get(&f).ok_or_else(|| {
                    Error::config(format!(
                        "router `{name}`: model `{g}` falls back to unknown model `{f}`"
                    ))
                })?;
                if f != g && !fb.contains(&idx) {
                    fb.push(idx);
                }
            }
            groups.push(Group {
                name: g,
                deployments,
                fallbacks: fb,
            });
        }
        let mut aliases = HashMap::new();
        for (a, target) in self.aliases {
            if !by_name.contains_key(&target) {
                return Err(Error::config(format!(
                    "router `{name}`: alias `{a}` names unknown model `{target}`"
                )));
            }
            if by_name.contains_key(&a) {
                return Err(Error::config(format!(
                    "router `{name}`: alias `{a}` has the name of a model"
                )));
            }
            aliases.insert(a, target);
        }
        Ok(Router {
            inner: Arc::new(Inner {
                name,
                groups,
                by_name,
                aliases,
                strategy: self.strategy,
                retry: self.retry,
                breaker: self.breaker,
                attempt_timeout: self.attempt_timeout,
                total_timeout: self.total_timeout,
                filter: self.filter,
                epoch: Instant::now(),
                members: self.members,
            }),
        })
    }
}

impl Router {
    /// What `pick` finds on each deployment serving `model` (its group, then its
    /// fallbacks), each distinct value once, in order.
    fn each_deployment(
        &self,
        model: &str,
        pick: impl Fn(&Deployment) -> Option<String>,
    ) -> Vec<String> {
        let Ok(first) = self.inner.resolve(model) else {
            return Vec::new();
        };
        let group = &self.inner.groups[first];
        let mut out: Vec<String> = Vec::new();
        for g in std::iter::once(first).chain(group.fallbacks.iter().copied()) {
            for d in &self.inner.groups[g].deployments {
                if let Some(v) = pick(d)
                    && !out.contains(&v)
                {
                    out.push(v);
                }
            }
        }
        out
    }

    /// Starts a builder for the router instance `name`.
    pub fn builder(name: impl Into<String>) -> RouterBuilder {
        RouterBuilder {
            name: name.into(),
            groups: Vec::new(),
            aliases: Vec::new(),
            strategy: Strategy::default(),
            retry: RetryPolicy::default(),
            breaker: CircuitBreaker::default(),
            attempt_timeout: None,
            total_timeout: None,
            filter: None,
            members: Vec::new(),
        }
    }

    /// The router's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The deployments of model group (or alias) `model`.
    pub fn deployments(&self, model: &str) -> Result<&[Deployment], Error> {
        let gi = self.inner.resolve(model)?;
        Ok(&self.inner.groups[gi].deployments)
    }

    /// Whether `model` names one of the router's groups or aliases.
    pub fn serves(&self, model: &str) -> bool {
        self.inner.resolve(model).is_ok()
    }

    /// The deployment the first attempt of `req` would go to now (a dry run: nothing is
    /// sent, no state changes). Errors as [`chat`](Provider::chat) would: unknown model,
    /// residency violation, every circuit open.
    pub fn route(&self, req: &ChatRequest) -> Result<&Deployment, Error> {
        let inner = &*self.inner;
        let gi = inner.resolve(&req.model)?;
        let mut chain = vec![gi];
        chain.extend(inner.groups[gi].fallbacks.iter().copied());
        let mut compliant = false;
        for g in chain {
            match inner.select(&inner.groups[g], req, &[], g) {
                Pick::Chosen(i, _) => return Ok(&inner.groups[g].deployments[i]),
                Pick::AllOpen => compliant = true,
                Pick::NoneCompliant => {}
            }
        }
        Err(self.no_candidate(&req.model, compliant, None))
    }
}

#[async_trait]
impl Provider for Router {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn capabilities(&self) -> ProviderCapabilities {
        let mut c = ProviderCapabilities::default();
        for d in self.inner.groups.iter().flat_map(|g| &g.deployments) {
            let x = d.provider.capabilities();
            c.streaming |= x.streaming;
            c.tools |= x.tools;
            c.vision |= x.vision;
            c.json_mode |= x.json_mode;
            c.embeddings |= x.embeddings;
        }
        c
    }

    fn models(&self) -> Vec<String> {
        let mut m: Vec<String> = self.inner.groups.iter().map(|g| g.name.clone()).collect();
        m.extend(self.inner.aliases.keys().cloned());
        m
    }

    fn members(&self) -> Vec<String> {
        self.inner.members.clone()
    }

    fn regions(&self, model: &str) -> Vec<String> {
        self.each_deployment(model, |d| d.region().map(str::to_owned))
    }

    fn upstream_models(&self, model: &str) -> Vec<String> {
        self.each_deployment(model, |d| Some(d.model().to_owned()))
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        let req = &req;
        self.run(req, |g, i, limit| async move {
            match self.chat_attempt(g, i, req, limit).await {
                Ok(Outcome::Done(resp)) => Outcome::Done(Ok(resp)),
                Ok(Outcome::Retry(e)) => Outcome::Retry(e),
                Err(e) => Outcome::Done(Err(e)),
            }
        })
        .await?
    }

    async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        let mut probe = ChatRequest::new(req.model.clone(), Vec::new());
        probe.ctx = req.ctx.clone();
        let this = self;
        let req = &req;
        let result = self
            .run(&probe, |g, i, limit| async move {
                let d = this.deployment(g, i).clone();
                let mut r = req.clone();
                r.model.clone_from(&d.model);
                d.state.in_flight.fetch_add(1, Ordering::Relaxed);
                let _in_flight = InFlight(Some(Arc::clone(&d.state)));
                let started = Instant::now();
                let res = match limit {
                    None => d.provider.embed(r).await,
                    Some(t) => tokio::time::timeout(t, d.provider.embed(r))
                        .await
                        .unwrap_or_else(|_| Err(this.attempt_timeout_error(&d, t))),
                };
                match res {
                    Ok(resp) => {
                        d.state.record_latency(started.elapsed());
                        d.succeeded(&this.inner.name);
                        Outcome::Done(Ok(resp))
                    }
                    Err(e) => match this.failed::<EmbeddingResponse>(&d, e) {
                        Ok(Outcome::Retry(e)) => Outcome::Retry(e),
                        Ok(Outcome::Done(x)) => Outcome::Done(Ok(x)),
                        Err(e) => Outcome::Done(Err(e)),
                    },
                }
            })
            .await;
        result?
    }
}
