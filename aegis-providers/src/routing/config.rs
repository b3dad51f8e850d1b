//! [`RouterConfig`]: a [`Router`] as it appears in the plugin registry.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use aegis_contracts::{Error, Provider};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CircuitBreaker, Deployment, RetryPolicy, Router, Strategy, region_label_filter};

/// Configuration of a [`Router`] (provider type `router`). Deployments name other provider
/// instances by id.
///
/// ```
/// use std::sync::Arc;
/// use aegis_contracts::Provider;
/// use aegis_providers::{Echo, routing::{Router, RouterConfig}};
///
/// let cfg: RouterConfig = serde_json::from_value(serde_json::json!({
///     "strategy": "least_latency",
///     "aliases": { "fast": "small" },
///     "models": [
///         { "name": "small", "fallbacks": ["big"], "deployments": [
///             { "provider": "eu", "model": "gpt-4o-mini", "weight": 2 },
///             { "provider": "us", "model": "gpt-4o-mini" } ] },
///         { "name": "big", "deployments": [ { "provider": "eu", "model": "gpt-4o" } ] }
///     ],
///     "retry": { "max_retries": 1, "initial_backoff_ms": 100 },
///     "timeouts": { "attempt_ms": 20000, "total_ms": 60000 },
///     "circuit_breaker": { "failure_threshold": 3, "cooldown_ms": 10000 },
///     "region_label": "region"
/// })).unwrap();
/// let eu: Arc<dyn Provider> = Arc::new(Echo::new("eu").with_region("eu"));
/// let us: Arc<dyn Provider> = Arc::new(Echo::new("us").with_region("us"));
/// let router = Router::from_config("llm", cfg, |id| match id {
///     "eu" => Some(eu.clone()),
///     "us" => Some(us.clone()),
///     _ => None,
/// }).unwrap();
/// assert_eq!(router.deployments("fast").unwrap()[0].id(), "eu/gpt-4o-mini");
/// ```
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouterConfig {
    /// How a deployment is chosen; default `weighted`.
    #[serde(default)]
    pub strategy: Strategy,
    /// Model groups, each a public model name served by one or more deployments.
    pub models: Vec<ModelGroupConfig>,
    /// Alternative names of model groups (`fast = "gpt-4o-mini"`).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Retries within a group.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Deadlines.
    #[serde(default)]
    pub timeouts: TimeoutConfig,
    /// The per-deployment circuit breaker.
    #[serde(default)]
    pub circuit_breaker: BreakerConfig,
    /// Residency: the request label (e.g. `region`) listing the allowed regions,
    /// comma-separated. Deployments outside them are never called; when none is left the
    /// request fails with `residency_violation`.
    #[serde(default)]
    pub region_label: Option<String>,
}

/// One model group.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelGroupConfig {
    /// The public model name requests use.
    pub name: String,
    /// Where it is served.
    pub deployments: Vec<DeploymentConfig>,
    /// Groups tried in order when this one has no answer (on retryable errors only).
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

/// One deployment of a model group.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DeploymentConfig {
    /// Deployment id; default `provider/model`.
    #[serde(default)]
    pub id: Option<String>,
    /// The id of the provider instance that serves it.
    pub provider: String,
    /// The model name sent to the provider; default the group's name.
    #[serde(default)]
    pub model: Option<String>,
    /// Weight for the `weighted` strategy; default 1 (0: standby, used only when no
    /// weighted deployment is left).
    #[serde(default = "one")]
    pub weight: u32,
    /// Region tag; default the provider's region.
    #[serde(default)]
    pub region: Option<String>,
    /// Whether callers may also address this deployment's provider directly
    /// (`provider/model`), around the router's residency filter and fallbacks. Default
    /// false: a router's members are reached only through the router.
    #[serde(default)]
    pub addressable: bool,
}

fn one() -> u32 {
    1
}

/// Retry settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Repeated attempts per group once each eligible deployment was tried; default 2.
    #[serde(default = "two")]
    pub max_retries: u32,
    /// First backoff in milliseconds (doubles per attempt); default 200.
    #[serde(default = "initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Largest backoff in milliseconds (a longer `retry-after` still wins); default 10000.
    #[serde(default = "max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Randomize backoffs; default true.
    #[serde(default = "yes")]
    pub jitter: bool,
}

fn two() -> u32 {
    2
}
fn initial_backoff_ms() -> u64 {
    200
}
fn max_backoff_ms() -> u64 {
    10_000
}
fn yes() -> bool {
    true
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: two(),
            initial_backoff_ms: initial_backoff_ms(),
            max_backoff_ms: max_backoff_ms(),
            jitter: true,
        }
    }
}

/// Deadlines, in milliseconds.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeoutConfig {
    /// One attempt (to the answer, or to a stream's first chunk).
    #[serde(default)]
    pub attempt_ms: Option<u64>,
    /// The whole request across attempts and backoffs.
    #[serde(default)]
    pub total_ms: Option<u64>,
}

/// Circuit breaker settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive retryable failures that eject a deployment; default 5.
    #[serde(default = "five")]
    pub failure_threshold: u32,
    /// Milliseconds before an ejected deployment gets one probe request; default 30000.
    #[serde(default = "cooldown_ms")]
    pub cooldown_ms: u64,
}

fn five() -> u32 {
    5
}
fn cooldown_ms() -> u64 {
    30_000
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: five(),
            cooldown_ms: cooldown_ms(),
        }
    }
}

impl Router {
    /// Builds the router instance `name` from its registry configuration; `lookup` resolves
    /// provider ids to the instances already built. Unknown provider ids, empty groups and
    /// dangling aliases or fallbacks are [`ErrorKind::Config`](aegis_contracts::ErrorKind::Config)
    /// errors naming the offending entry.
    pub fn from_config(
        name: impl Into<String>,
        cfg: RouterConfig,
        lookup: impl Fn(&str) -> Option<Arc<dyn Provider>>,
    ) -> Result<Router, Error> {
        let name = name.into();
        if cfg.models.is_empty() {
            return Err(Error::config(format!("router `{name}`: `models` is empty")));
        }
        let mut b = Router::builder(name.clone())
            .strategy(cfg.strategy)
            .retry(
                RetryPolicy::retries(cfg.retry.max_retries)
                    .backoff(
                        Duration::from_millis(cfg.retry.initial_backoff_ms),
                        Duration::from_millis(cfg.retry.max_backoff_ms),
                    )
                    .jitter(cfg.retry.jitter),
            )
            .circuit_breaker(CircuitBreaker::new(
                cfg.circuit_breaker.failure_threshold,
                Duration::from_millis(cfg.circuit_breaker.cooldown_ms),
            ));
        if let Some(ms) = cfg.timeouts.attempt_ms {
            b = b.attempt_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = cfg.timeouts.total_ms {
            b = b.total_timeout(Duration::from_millis(ms));
        }
        if let Some(label) = cfg.region_label {
            b = b.region_filter(region_label_filter(label));
        }
        for (gi, group) in cfg.models.into_iter().enumerate() {
            if group.deployments.is_empty() {
                return Err(Error::config(format!(
                    "router `{name}`: models[{gi}] (`{}`) has no deployments",
                    group.name
                )));
            }
            for (di, d) in group.deployments.into_iter().enumerate() {
                let provider = lookup(&d.provider).ok_or_else(|| {
                    Error::config(format!(
                        "router `{name}`: models[{gi}].deployments[{di}]: no provider with id `{}`",
                        d.provider
                    ))
                })?;
                if !d.addressable {
                    b = b.member(&d.provider);
                }
                let model = d.model.unwrap_or_else(|| group.name.clone());
                let id = d.id.unwrap_or_else(|| format!("{}/{model}", d.provider));
                let mut dep = Deployment::new(id, provider, model).with_weight(d.weight);
                if let Some(r) = d.region {
                    dep = dep.with_region(r);
                }
                b = b.deployment(&group.name, dep);
            }
            if !group.fallbacks.is_empty() {
                b = b.fallbacks(&group.name, group.fallbacks);
            }
        }
        for (alias, target) in cfg.aliases {
            b = b.alias(alias, target);
        }
        b.build()
    }
}
