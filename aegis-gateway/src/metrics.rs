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
    r.register_telemetry::<PrometheusConfig, _>("prometheus", |cfg, _| {
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
        Ok(Arc::new(aegis::metrics::MetricsSink::new()) as Arc<dyn TelemetrySink>)
    });
}
