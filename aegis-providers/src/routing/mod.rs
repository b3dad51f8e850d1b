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

mod config;
mod layer;

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
pub use layer::{Route, RouteLayer};

/// Response futures of [`Route`].
pub mod future {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use aegis_contracts::{ChatResponse, Error};
    use pin_project_lite::pin_project;

    use super::layer::BoxedResponse;

    pin_project! {
        /// The response future of [`Route`](super::Route): the router's or the inner
        /// service's.
        pub struct ResponseFuture<F> {
            #[pin]
            kind: Kind<F>,
        }
    }

    pin_project! {
        #[project = KindProj]
        enum Kind<F> {
            Routed { fut: BoxedResponse },
            Inner { #[pin] fut: F },
        }
    }

    impl<F> ResponseFuture<F> {
        pub(super) fn routed(fut: BoxedResponse) -> Self {
            Self {
                kind: Kind::Routed { fut },
            }
        }

        pub(super) fn inner(fut: F) -> Self {
            Self {
                kind: Kind::Inner { fut },
            }
        }
    }

    impl<F> std::future::Future for ResponseFuture<F>
    where
        F: std::future::Future<Output = Result<ChatResponse, Error>>,
    {
        type Output = Result<ChatResponse, Error>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            match self.project().kind.project() {
                KindProj::Routed { fut } => fut.as_mut().poll(cx),
                KindProj::Inner { fut } => fut.poll(cx),
            }
        }
    }
}

/// How a deployment is chosen among the eligible ones.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Strategy {
    /// Random, proportional to `weight` (weight 0: only when no weighted one is left).
    #[default]
    Weighted,
    /// The lowest moving average of time to answer (time to first chunk for streams);
    /// deployments without a measurement yet are tried first.
    LeastLatency,
    /// The fewest requests in flight.
    LeastBusy,
    /// Declaration order: the first eligible deployment.
    Ordered,
}

/// Retries within a model group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Repeated attempts per group once every eligible deployment has been tried once.
    pub max_retries: u32,
    /// Backoff before the first repeated attempt; doubles each time.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff (a larger `retry_after` still wins).
    pub max_backoff: Duration,
    /// Randomize each backoff within `[backoff / 2, backoff]`.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retries: each eligible deployment of a group gets exactly one attempt.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// A policy with `max_retries` and the default backoff.
    pub fn retries(max_retries: u32) -> Self {
        Self {
            max_retries,
            ..Self::default()
        }
    }

    /// Sets the backoff bounds.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// Turns jitter on or off.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The backoff before repeated attempt `n` (1-based), before `retry_after`.
    fn delay(&self, n: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
        let d = exp.min(self.max_backoff);
        if self.jitter && !d.is_zero() {
            let half = d / 2;
            half + Duration::from_nanos(fastrand::u64(0..=(d - half).as_nanos() as u64))
        } else {
            d
        }
    }
}

/// Circuit breaker settings, per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CircuitBreaker {
    /// Consecutive retryable failures that open the circuit (eject the deployment).
    pub failure_threshold: u32,
    /// How long an open circuit stays open before one probe request is let through.
    pub cooldown: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

impl CircuitBreaker {
    /// Opens after `failure_threshold` consecutive failures, probes after `cooldown`.
    pub fn new(failure_threshold: u32, cooldown: Duration) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            cooldown,
        }
    }
}

/// A residency (or any other) filter: may `deployment` serve `request`?
pub type RegionFilter = Arc<dyn Fn(&Deployment, &ChatRequest) -> bool + Send + Sync>;

/// The built-in residency filter: the request label `label` (e.g. `region=eu,eu-west-1`)
/// lists the allowed regions; a deployment passes when its region is one of them. Requests
/// without the label pass everywhere; deployments without a region never pass a labelled
/// request.
///
/// ```
/// use std::sync::Arc;
/// use aegis_contracts::{ChatRequest, Message, RequestContext};
/// use aegis_providers::{Echo, routing::{Deployment, region_label_filter}};
/// let filter = region_label_filter("region");
/// let eu = Deployment::new("d", Arc::new(Echo::new("e").with_region("eu")), "m");
/// let mut req = ChatRequest::new("m", vec![Message::user("hi")]);
/// assert!(filter(&eu, &req));
/// req.ctx = RequestContext::default().with_label("region", "us, ca");
/// assert!(!filter(&eu, &req));
/// ```
pub fn region_label_filter(label: impl Into<String>) -> RegionFilter {
    let label = label.into();
    Arc::new(
        move |d: &Deployment, req: &ChatRequest| match req.ctx.labels.get(&label) {
            None => true,
            Some(allowed) => d
                .region()
                .is_some_and(|r| allowed.split(',').any(|a| a.trim() == r)),
        },
    )
}

/// One place a model can be served: a provider, the model name it knows, a weight and a
/// region. Cheap to clone (shares its health state with its clones).
#[derive(Clone)]
pub struct Deployment {
    id: String,
    provider: Arc<dyn Provider>,
    model: String,
    weight: u32,
    region: Option<String>,
    state: Arc<DeploymentState>,
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .field("provider", &self.provider.name())
            .field("model", &self.model)
            .field("weight", &self.weight)
            .field("region", &self.region)
            .finish()
    }
}

impl Deployment {
    /// `model` on `provider`, weight 1, in the provider's region.
    pub fn new(
        id: impl Into<String>,
        provider: Arc<dyn Provider>,
        model: impl Into<String>,
    ) -> Self {
        let region = provider.region().map(str::to_owned);
        Self {
            id: id.into(),
            provider,
            model: model.into(),
            weight: 1,
            region,
            state: Arc::default(),
        }
    }

    /// Sets the weight for [`Strategy::Weighted`].
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets (overrides) the region tag.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The deployment id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The provider that serves it.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// The model name sent to the provider.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Its weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Its region tag, if any.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Requests in flight on it right now (streams count until they end or are dropped).
    pub fn in_flight(&self) -> u32 {
        self.state.in_flight.load(Ordering::Relaxed)
    }

    /// Moving average of its time to answer, once measured.
    pub fn latency(&self) -> Option<Duration> {
        let us = f64::from_bits(self.state.ewma_us.load(Ordering::Relaxed));
        (us > 0.0).then(|| Duration::from_secs_f64(us / 1e6))
    }
}

#[derive(Default)]
struct DeploymentState {
    in_flight: AtomicU32,
    /// f64 bits of the latency moving average in microseconds; 0 = unmeasured.
    ewma_us: AtomicU64,
    failures: AtomicU32,
    /// Router-clock milliseconds until which the circuit is open; 0 = closed.
    open_until_ms: AtomicU64,
    probing: AtomicBool,
}

enum Health {
    Closed,
    Open,
    HalfOpen,
}

impl DeploymentState {
    fn health(&self, now_ms: u64) -> Health {
        match self.open_until_ms.load(Ordering::Acquire) {
            0 => Health::Closed,
            until if now_ms < until => Health::Open,
            _ if self.probing.load(Ordering::Acquire) => Health::Open,
            _ => Health::HalfOpen,
        }
    }

    fn record_latency(&self, d: Duration) {
        let x = d.as_secs_f64() * 1e6;
        let _ = self
            .ewma_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                let old = f64::from_bits(old);
                let new = if old <= 0.0 {
                    x.max(1.0)
                } else {
                    0.8 * old + 0.2 * x
                };
                Some(new.to_bits())
            });
    }

    fn on_success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until_ms.store(0, Ordering::Release);
        self.probing.store(false, Ordering::Release);
    }

    fn on_failure(&self, now_ms: u64, breaker: &CircuitBreaker) {
        let was_probe = self.probing.swap(false, Ordering::AcqRel);
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if was_probe || failures >= breaker.failure_threshold {
            let until = now_ms + (breaker.cooldown.as_millis() as u64).max(1);
            self.open_until_ms.store(until, Ordering::Release);
        }
    }
}

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

/// The outcome of choosing a deployment for one attempt.
enum Pick {
    /// Deployment index; whether this request already tried it.
    Chosen(usize, bool),
    /// No deployment passes the residency filter.
    NoneCompliant,
    /// Compliant deployments exist but every circuit is open.
    AllOpen,
}

/// A set of deployment indices; no allocation up to 128 deployments.
enum Bits {
    Inline([u64; 2]),
    Heap(Vec<u64>),
}

impl Bits {
    fn new(n: usize) -> Self {
        if n <= 128 {
            Self::Inline([0; 2])
        } else {
            Self::Heap(vec![0; n.div_ceil(64)])
        }
    }

    fn words(&self) -> &[u64] {
        match self {
            Self::Inline(w) => w,
            Self::Heap(w) => w,
        }
    }

    fn set(&mut self, i: usize) {
        let w = match self {
            Self::Inline(w) => &mut w[..],
            Self::Heap(w) => &mut w[..],
        };
        w[i / 64] |= 1 << (i % 64);
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(wi, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

/// The strategy's choice among a set of candidates, accumulated in one pass (weighted
/// selection draws one random number afterwards, over the recorded set).
struct Best {
    strategy: Strategy,
    members: Bits,
    chosen: Option<usize>,
    total_weight: u64,
    zero_weight: u32,
    score: f64,
}

impl Best {
    fn new(strategy: Strategy, n: usize) -> Self {
        Self {
            strategy,
            members: Bits::new(if strategy == Strategy::Weighted { n } else { 0 }),
            chosen: None,
            total_weight: 0,
            zero_weight: 0,
            score: f64::INFINITY,
        }
    }

    fn offer(&mut self, i: usize, d: &Deployment) {
        let score = match self.strategy {
            Strategy::Ordered => {
                if self.chosen.is_none() {
                    self.chosen = Some(i);
                }
                return;
            }
            Strategy::Weighted => {
                self.members.set(i);
                match d.weight {
                    0 => self.zero_weight += 1,
                    w => self.total_weight += u64::from(w),
                }
                return;
            }
            Strategy::LeastLatency => f64::from_bits(d.state.ewma_us.load(Ordering::Relaxed)),
            Strategy::LeastBusy => f64::from(d.state.in_flight.load(Ordering::Relaxed)),
        };
        if score < self.score {
            self.score = score;
            self.chosen = Some(i);
        }
    }

    fn finish(&self, deployments: &[Deployment]) -> Option<usize> {
        if self.strategy != Strategy::Weighted {
            return self.chosen;
        }
        if self.total_weight > 0 {
            let mut r = fastrand::u64(0..self.total_weight);
            for i in self.members.iter() {
                let w = u64::from(deployments[i].weight);
                if r < w {
                    return Some(i);
                }
                r -= w;
            }
            None
        } else if self.zero_weight > 0 {
            // Only standby (weight 0) deployments are left: uniformly among them.
            let k = fastrand::u32(0..self.zero_weight) as usize;
            self.members.iter().nth(k)
        } else {
            None
        }
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u64
            + 1
    }

    fn resolve(&self, model: &str) -> Result<usize, Error> {
        let target = self.aliases.get(model).map_or(model, String::as_str);
        self.by_name.get(target).copied().ok_or_else(|| {
            let mut known: Vec<&str> = self
                .by_name
                .keys()
                .chain(self.aliases.keys())
                .map(String::as_str)
                .collect();
            known.sort_unstable();
            Error::invalid_request(format!(
                "router `{}`: unknown model or alias `{model}` (known: {})",
                self.name,
                known.join(", ")
            ))
            .with_code("model_not_found")
        })
    }

    fn select(&self, g: &Group, req: &ChatRequest, tried: &[(usize, usize)], gi: usize) -> Pick {
        let now_ms = self.now_ms();
        let n = g.deployments.len();
        let mut fresh = Best::new(self.strategy, n);
        let mut again = Best::new(self.strategy, n);
        let mut compliant = false;
        for (i, d) in g.deployments.iter().enumerate() {
            if let Some(f) = &self.filter
                && !f(d, req)
            {
                continue;
            }
            compliant = true;
            if let Health::Open = d.state.health(now_ms) {
                continue;
            }
            if tried.contains(&(gi, i)) {
                again.offer(i, d);
            } else {
                fresh.offer(i, d);
            }
        }
        match (fresh.finish(&g.deployments), again.finish(&g.deployments)) {
            (Some(i), _) => Pick::Chosen(i, false),
            (None, Some(i)) => Pick::Chosen(i, true),
            (None, None) if compliant => Pick::AllOpen,
            (None, None) => Pick::NoneCompliant,
        }
    }

    fn remaining(&self, deadline: Option<Instant>) -> Option<Duration> {
        deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn attempt_deadline(&self, deadline: Option<Instant>) -> Option<Duration> {
        match (self.attempt_timeout, self.remaining(deadline)) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }
}

/// What one attempt produced.
enum Outcome<T> {
    Done(T),
    /// Retryable: try elsewhere or again.
    Retry(Error),
}

impl Router {
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

    fn no_candidate(&self, model: &str, compliant: bool, last: Option<Error>) -> Error {
        let name = &self.inner.name;
        if let Some(e) = last {
            return e;
        }
        if compliant {
            Error::provider(format!(
                "router `{name}`: every deployment of model `{model}` and its fallbacks is ejected (circuit open)"
            ))
            .with_retryable(true)
        } else {
            Error::new(
                ErrorKind::ResidencyViolation,
                format!(
                    "router `{name}`: no deployment of model `{model}` or its fallbacks satisfies the residency filter; the request is refused, not sent elsewhere"
                ),
            )
        }
    }

    /// The attempt loop shared by chat and embeddings.
    async fn run<T, F, Fut>(&self, req: &ChatRequest, mut call: F) -> Result<T, Error>
    where
        F: FnMut(usize, usize, Option<Duration>) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let inner = &*self.inner;
        let gi = inner.resolve(&req.model)?;
        let deadline = inner.total_timeout.map(|t| Instant::now() + t);
        let mut chain = vec![gi];
        chain.extend(inner.groups[gi].fallbacks.iter().copied());
        let mut tried: Vec<(usize, usize)> = Vec::new();
        let mut compliant = false;
        let mut last: Option<Error> = None;
        let mut attempts = 0u32;
        for g in chain {
            let group = &inner.groups[g];
            let mut repeats = 0u32;
            loop {
                let (mut i, repeat) = match inner.select(group, req, &tried, g) {
                    Pick::Chosen(i, repeat) => (i, repeat),
                    Pick::AllOpen => {
                        compliant = true;
                        break;
                    }
                    Pick::NoneCompliant => break,
                };
                compliant = true;
                if repeat {
                    if repeats >= inner.retry.max_retries {
                        break;
                    }
                    repeats += 1;
                    let mut wait = inner.retry.delay(repeats);
                    if let Some(ra) = last.as_ref().and_then(Error::retry_after) {
                        wait = wait.max(ra);
                    }
                    if let Some(left) = inner.remaining(deadline)
                        && wait >= left
                    {
                        // Waiting would outlast the whole budget: give up now.
                        return Err(self.exhausted(&req.model, attempts, last));
                    }
                    tokio::time::sleep(wait).await;
                    // The world may have changed while we slept: choose again, re-checking
                    // the residency filter.
                    match inner.select(group, req, &tried, g) {
                        Pick::Chosen(again, _) => i = again,
                        _ => break,
                    }
                }
                if let Some(left) = inner.remaining(deadline)
                    && left.is_zero()
                {
                    return Err(self.exhausted(&req.model, attempts, last));
                }
                attempts += 1;
                if !tried.contains(&(g, i)) {
                    tried.push((g, i));
                }
                match call(g, i, inner.attempt_deadline(deadline)).await {
                    Outcome::Done(t) => return Ok(t),
                    Outcome::Retry(e) => last = Some(e),
                }
            }
        }
        if attempts == 0 {
            return Err(self.no_candidate(&req.model, compliant, None));
        }
        Err(self.exhausted(&req.model, attempts, last))
    }

    fn exhausted(&self, model: &str, attempts: u32, last: Option<Error>) -> Error {
        match last {
            Some(e) if attempts <= 1 => e,
            Some(e) => {
                let msg = format!(
                    "router `{}`: model `{model}` failed after {attempts} attempts; last: {e}",
                    self.inner.name
                );
                let mut out = Error::new(e.kind(), msg).with_retryable(e.is_retryable());
                if let Some(s) = e.status() {
                    out = out.with_status(s);
                }
                if let Some(ra) = e.retry_after() {
                    out = out.with_retry_after(ra);
                }
                out.with_source(e)
            }
            None => Error::new(
                ErrorKind::Timeout,
                format!(
                    "router `{}`: model `{model}` got no answer within the total timeout",
                    self.inner.name
                ),
            ),
        }
    }

    fn deployment(&self, g: usize, i: usize) -> &Deployment {
        &self.inner.groups[g].deployments[i]
    }

    fn attempt_timeout_error(&self, d: &Deployment, t: Duration) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "router `{}`: deployment `{}` did not answer within {} ms",
                self.inner.name,
                d.id,
                t.as_millis()
            ),
        )
    }

    /// Classifies an attempt's error, updating the deployment's health.
    fn failed<T>(&self, d: &Deployment, e: Error) -> Result<Outcome<T>, Error> {
        if e.is_retryable() {
            d.state.on_failure(self.inner.now_ms(), &self.inner.breaker);
            Ok(Outcome::Retry(e))
        } else {
            // The deployment answered; the request itself is at fault.
            d.state.probing.store(false, Ordering::Release);
            Err(e)
        }
    }

    async fn chat_attempt(
        &self,
        g: usize,
        i: usize,
        req: &ChatRequest,
        limit: Option<Duration>,
    ) -> Result<Outcome<ChatResponse>, Error> {
        let d = self.deployment(g, i).clone();
        if let Health::HalfOpen = d.state.health(self.inner.now_ms()) {
            d.state.probing.store(true, Ordering::Release);
        }
        let mut r = req.clone();
        r.model.clone_from(&d.model);
        let started = Instant::now();
        d.state.in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(Some(Arc::clone(&d.state)));
        let fut = async {
            let resp = d.provider.chat(r).await?;
            match resp.body {
                ChatBody::Complete(c) => Ok((resp.meta, Peeked::Complete(c))),
                ChatBody::Stream(mut s) => match s.next().await {
                    // Fallback stays possible until the first chunk: peek it.
                    Some(Err(e)) => Err(e),
                    first => Ok((resp.meta, Peeked::Stream(first, s))),
                },
            }
        };
        let result = match limit {
            None => fut.await,
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => Err(self.attempt_timeout_error(&d, t)),
            },
        };
        match result {
            Ok((mut meta, peeked)) => {
                // The audit names the deployment that answered and where it runs.
                meta.deployment = Some(d.id.clone());
                meta.region.clone_from(&d.region);
                d.state.record_latency(started.elapsed());
                d.state.on_success();
                Ok(Outcome::Done(match peeked {
                    Peeked::Complete(c) => ChatResponse::complete(meta, c),
                    Peeked::Stream(first, rest) => {
                        let head = futures_util::stream::iter(first);
                        let stream = RoutedStream {
                            inner: Box::pin(head.chain(rest)),
                            deployment: d.clone(),
                            router: Arc::clone(&self.inner),
                            _in_flight: in_flight,
                        };
                        ChatResponse::stream(meta, Box::pin(stream))
                    }
                }))
            }
            Err(e) => self.failed(&d, e),
        }
    }
}

/// A successful attempt, with a stream's first item already read.
enum Peeked {
    Complete(aegis_contracts::Completion),
    Stream(Option<Result<ChatChunk, Error>>, ChatStream),
}

/// Decrements a deployment's in-flight count when dropped.
struct InFlight(Option<Arc<DeploymentState>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A routed stream: items pass through untouched; a mid-stream failure counts against the
/// deployment's health but never triggers another request.
struct RoutedStream {
    inner: ChatStream,
    deployment: Deployment,
    router: Arc<Inner>,
    _in_flight: InFlight,
}

impl Stream for RoutedStream {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Err(e))) = &item
            && e.is_retryable()
        {
            let now = self.router.now_ms();
            self.deployment.state.on_failure(now, &self.router.breaker);
        }
        item
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
                        d.state.on_success();
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
