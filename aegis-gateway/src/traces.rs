//! Traces over OTLP/HTTP: the `otlp` telemetry type.
//!
//! ```toml
//! [[telemetry]]
//! id = "traces"
//! type = "otlp"
//! config = { endpoint = "http://127.0.0.1:4318/v1/traces" }
//! ```
//!
//! The library crates describe what happens with `tracing` spans — one `aegis.run` span per
//! run, with a child per guard judgement (its verdict an event in it), per provider call
//! (`gen_ai` attributes of the OpenTelemetry GenAI conventions; a stream's span ends with its
//! last chunk and carries the final usage and the time to the first chunk) and per router
//! attempt. This module exports them: spans are queued (bounded; when the queue is full they
//! are dropped, never waited for) and sent in batches by a background thread, so a slow or
//! unreachable collector never holds up or fails a request. Every span lost is counted in
//! `aegis_trace_spans_dropped_total` (label `reason`: `queue_full`, or `export_failed` for
//! a batch the collector did not take). Spans carry ids, names, models, counts, verdicts
//! and finding kinds — no prompt, answer or finding text.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aegis::{Error, RunEvent, TelemetrySink};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
        SpanProcessor,
    },
};
use tracing_subscriber::Layer;

/// Config of the `otlp` telemetry type.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP traces endpoint (`http://127.0.0.1:4318/v1/traces`).
    pub endpoint: String,
    /// `service.name` of the spans (default `aegis`).
    #[serde(default = "default_service")]
    pub service_name: String,
    /// How often queued spans are sent, in milliseconds (default 1000).
    #[serde(default = "default_interval")]
    pub export_interval_ms: u64,
    /// Spans queued at most; past it new spans are dropped (default 4096).
    #[serde(default = "default_queue")]
    pub max_queue: usize,
    /// How long one export may take, in milliseconds (default 5000).
    #[serde(default = "default_timeout")]
    pub export_timeout_ms: u64,
}

fn default_service() -> String {
    "aegis".into()
}
fn default_interval() -> u64 {
    1000
}
fn default_queue() -> usize {
    4096
}
fn default_timeout() -> u64 {
    5000
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The `otlp` entry of `config`'s telemetry, if any (its config checked).
pub fn config_of(config: &aegis::config::AegisConfig) -> Result<Option<OtlpConfig>, Error> {
    let Some((i, entry)) = config
        .telemetry
        .iter()
        .enumerate()
        .find(|(_, t)| t.kind == "otlp")
    else {
        return Ok(None);
    };
    let value = if entry.config.is_null() {
        serde_json::json!({})
    } else {
        entry.config.clone()
    };
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| Error::config(format!("telemetry[{i}].config: {e}")))
}

/// Registers the `otlp` telemetry type: its config is checked with the rest; the exporter
/// itself is part of the process's tracing subscriber, built by `aegis serve` at start-up
/// ([`layer`]) — a reload that changes it takes effect at the next restart.
pub fn register(r: &mut aegis::Registry) {
    r.register_telemetry::<OtlpConfig, _>("otlp", |cfg, _| {
        check(&cfg)?;
        Ok(std::sync::Arc::new(SpansOnly) as std::sync::Arc<dyn TelemetrySink>)
    });
}

fn check(cfg: &OtlpConfig) -> Result<(), Error> {
    if cfg.endpoint.starts_with("http://") || cfg.endpoint.starts_with("https://") {
        Ok(())
    } else {
        Err(Error::config(
            "otlp.endpoint: must be an http:// or https:// URL (the collector's /v1/traces)",
        ))
    }
}

/// Sends what is queued and stops exporting (at shutdown).
pub fn shutdown() {
    if let Some(p) = PROVIDER.get()
        && let Err(e) = p.shutdown()
    {
        tracing::warn!(error = %e, "flushing traces at shutdown failed");
    }
}

/// The exporter is a tracing layer, not a run-event sink: its sink observes nothing.
struct SpansOnly;

impl TelemetrySink for SpansOnly {
    fn on_event(&self, _event: &RunEvent) {}
}

/// The exporting layer for `cfg`: the pipeline's spans (targets `aegis*`, at info) sent to
/// the collector in batches from a background thread. Needs a Tokio runtime (the exporter's
/// HTTP requests run on it).
pub fn layer<S>(cfg: &OtlpConfig) -> Result<Box<dyn Layer<S> + Send + Sync>, Error>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    check(cfg)?;
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| Error::config("otlp: needs a Tokio runtime"))?;
    let timeout = Duration::from_millis(cfg.export_timeout_ms.max(1));
    let client = Client {
        inner: reqwest::Client::new(),
        runtime,
        timeout,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(cfg.endpoint.clone())
        .with_timeout(timeout)
        .build()
        .map_err(|e| Error::config(format!("otlp: {e}")))?;
    let max_queue = cfg.max_queue.max(1);
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(max_queue)
        .with_scheduled_delay(Duration::from_millis(cfg.export_interval_ms.max(10)))
        .build();
    let queued = Arc::new(AtomicUsize::new(0));
    let exporter = Counted {
        inner: exporter,
        queued: queued.clone(),
    };
    let processor = Bounded {
        inner: BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build(),
        queued,
        max: max_queue,
    };
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("aegis");
    // Only the pipeline's own spans (and their events), at info: not every dependency's.
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("aegis", tracing::Level::INFO)
        .with_target("aegis_core", tracing::Level::INFO)
        .with_target("aegis_providers", tracing::Level::INFO);
    let layer = Box::new(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // Per span: no code location, thread, target or busy/idle timings — what a
            // trace reader needs is in the span's own attributes, and each of these costs.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(targets),
    );
    let _ = PROVIDER.set(provider);
    Ok(layer)
}

/// Counts spans lost on the way to the collector.
fn dropped(reason: &'static str, n: usize) {
    ::metrics::counter!("aegis_trace_spans_dropped_total", "reason" => reason).increment(n as u64);
}

/// The batch processor behind a counted bound: a span ended while `max` are waiting for the
/// exporter is dropped here and counted (the processor's own queue, as large, never fills,
/// so it never drops one uncounted).
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    /// Spans handed to `inner` and not yet to the exporter.
    queued: Arc<AtomicUsize>,
    max: usize,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let fits = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.max).then_some(q + 1)
            })
            .is_ok();
        if fits {
            self.inner.on_end(span);
        } else {
            dropped("queue_full", 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting the spans of every batch it could not deliver and taking each
/// batch off [`Bounded`]'s count as it starts.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(n))
            });
        let result = self.inner.export(batch).await;
        if result.is_err() {
            dropped("export_failed", n);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter's HTTP client: the gateway's `reqwest`, run on the gateway's runtime (the
/// batch processor sends from its own thread, outside any runtime).
#[derive(Debug)]
struct Client {
    inner: reqwest::Client,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

#[aegis::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.inner.clone();
        let timeout = self.timeout;
        let send = async move {
            let (parts, body) = request.into_parts();
            let uri = parts.uri.to_string();
            let resp = client
                .request(parts.method, uri)
                .headers(parts.headers)
                .timeout(timeout)
                .body(body)
                .send()
                .await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            let mut out = http::Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok::<_, reqwest::Error>(out)
        };
        self.runtime
            .spawn(send)
            .await
            .map_err(|e| Box::new(e) as opentelemetry_http::HttpError)?
            .map_err(|e| Box::new(e) as opentelemetry_http::HttpError)
    }
}
