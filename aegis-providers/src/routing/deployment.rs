//! A deployment and its shared health state (in-flight count, latency, circuit breaker).

use super::*;

/// One place a model can be served: a provider, the model name it knows, a weight and a
/// region. Cheap to clone (shares its health state with its clones).
#[derive(Clone)]
pub struct Deployment {
    pub(super) id: String,
    pub(super) provider: Arc<dyn Provider>,
    pub(super) model: String,
    pub(super) weight: u32,
    pub(super) region: Option<String>,
    pub(super) state: Arc<DeploymentState>,
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
    /// Records a success of this deployment in router `router`'s circuit breaker; a breaker
    /// that closes is reported (`aegis_circuit_open` = 0).
    pub(super) fn succeeded(&self, router: &str) {
        if self.state.on_success() {
            self.report_circuit(router, false);
        }
    }

    /// Records a retryable failure; a breaker that opens is reported
    /// (`aegis_circuit_open` = 1, `aegis_circuit_opened_total` + 1).
    pub(super) fn failed(&self, router: &str, now_ms: u64, breaker: &CircuitBreaker) {
        if self.state.on_failure(now_ms, breaker) {
            self.report_circuit(router, true);
        }
    }

    fn report_circuit(&self, router: &str, open: bool) {
        let labels = [
            ("router", router.to_owned()),
            ("deployment", self.id.clone()),
        ];
        metrics::gauge!("aegis_circuit_open", &labels).set(if open { 1.0 } else { 0.0 });
        if open {
            metrics::counter!("aegis_circuit_opened_total", &labels).increment(1);
            tracing::warn!(router, deployment = %self.id, "circuit breaker opened");
        }
    }

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
pub(super) struct DeploymentState {
    pub(super) in_flight: AtomicU32,
    /// f64 bits of the latency moving average in microseconds; 0 = unmeasured.
    pub(super) ewma_us: AtomicU64,
    pub(super) failures: AtomicU32,
    /// Router-clock milliseconds until which the circuit is open; 0 = closed.
    pub(super) open_until_ms: AtomicU64,
    pub(super) probing: AtomicBool,
}

pub(super) enum Health {
    Closed,
    Open,
    HalfOpen,
}

impl DeploymentState {
    pub(super) fn health(&self, now_ms: u64) -> Health {
        match self.open_until_ms.load(Ordering::Acquire) {
            0 => Health::Closed,
            until if now_ms < until => Health::Open,
            _ if self.probing.load(Ordering::Acquire) => Health::Open,
            _ => Health::HalfOpen,
        }
    }

    pub(super) fn record_latency(&self, d: Duration) {
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

    /// A success: the breaker closes. `true` when it was open (or half-open) until now.
    fn on_success(&self) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        self.probing.store(false, Ordering::Release);
        self.open_until_ms.swap(0, Ordering::AcqRel) != 0
    }

    /// A retryable failure: the breaker opens past the threshold or when a half-open probe
    /// fails. `true` when it opened now.
    fn on_failure(&self, now_ms: u64, breaker: &CircuitBreaker) -> bool {
        let was_probe = self.probing.swap(false, Ordering::AcqRel);
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if was_probe || failures >= breaker.failure_threshold {
            let until = now_ms + (breaker.cooldown.as_millis() as u64).max(1);
            let before = self.open_until_ms.swap(until, Ordering::AcqRel);
            return before == 0 || was_probe;
        }
        false
    }
}
