//! Prometheus metrics: the `prometheus` telemetry type installs the process's metrics
//! recorder and records run events through [`aegis::metrics::MetricsSink`]; the gateway
//! serves them at `GET /metrics` (an admin key is required when authenticators are
//! configured), or unauthenticated on a listener of their own (`listen`, for a scraper on a
//! private network).
//!
//! ```toml
//! [[telemetry]]
//! id = "prometheus"
//! type = "prometheus"
//! config = { listen = "127.0.0.1:9464" }   # optional
//! ```

use std::{net::SocketAddr, sync::Arc, sync::OnceLock};

use aegis::{Error, TelemetrySink};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use schemars::JsonSchema;
use serde::Deserialize;

/// `config` of a `prometheus` telemetry entry.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Serve `/metrics` on this address too, without authentication.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static LISTENER: OnceLock<SocketAddr> = OnceLock::new();

/// Latency buckets, in seconds: 100 µs to 60 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The installed recorder's handle, once a `prometheus` telemetry entry was built.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get()
}

fn install() -> Result<&'static PrometheusHandle, Error> {
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING.lock();
    if let Some(h) = HANDLE.get() {
        return Ok(h);
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| Error::config(format!("prometheus: cannot install the recorder: {e}")))?;
    Ok(HANDLE.get_or_init(|| handle))
}

/// Registers the `prometheus` telemetry type.
pub fn register(r: &mut aegis::Registry) {
    r.register_telemetry::<PrometheusConfig, _>("prometheus", |cfg, ctx| {
        let handle = install()?;
        if let Some(addr) = cfg.listen
            && LISTENER.get().is_none()
        {
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| Error::config(format!("prometheus: cannot listen on {addr}: {e}")))?;
            let _ = LISTENER.set(addr);
            let runtime = tokio::runtime::Handle::try_current()
                .map_err(|_| Error::config("prometheus: `listen` needs a Tokio runtime"))?;
            runtime.spawn(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || async move { handle.render() }),
                );
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            });
        }
        let sink = aegis::metrics::MetricsSink::new();
        let sink = match ctx.extensions.get::<PausedRuns>() {
            Some(paused) => {
                paused.sample();
                sink.approvals_counted_elsewhere()
            }
            None => sink,
        };
        Ok(Arc::new(sink) as Arc<dyn TelemetrySink>)
    });
}

/// The store whose paused runs `aegis_approvals_pending` counts (a registry extension the
/// gateway inserts when it has a store): every replica and every restart reports what is
/// really waiting, not what one process saw pause.
#[derive(Clone)]
pub struct PausedRuns(pub aegis_store::Store);

/// How often the paused runs are counted.
const PAUSED_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl PausedRuns {
    /// Starts counting, once per process (a reload builds the sink again, not the sampler).
    fn sample(&self) {
        static STARTED: OnceLock<()> = OnceLock::new();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if STARTED.set(()).is_err() {
            return;
        }
        let store = self.0.clone();
        runtime.spawn(async move {
            loop {
                match store.count_runs(aegis::RunStatus::Paused).await {
                    Ok(n) => ::metrics::gauge!("aegis_approvals_pending").set(n as f64),
                    Err(e) => tracing::warn!(error = %e, "cannot count the paused runs"),
                }
                tokio::time::sleep(PAUSED_SAMPLE_EVERY).await;
            }
        });
    }
}
