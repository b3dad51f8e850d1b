//! Routing policy: how a deployment is chosen, retried and taken out of rotation, and the
//! residency filter.

use super::*;

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
    pub(super) fn delay(&self, n: u32) -> Duration {
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
