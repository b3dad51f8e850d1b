#![allow(clippy::unwrap_used, missing_docs)]
//! Governed call overhead: the default lifecycle graph (authenticate → input guards → route →
//! provider → output guards, then the run-end path: audit, policy hooks, terminal
//! checkpoint; in-memory checkpoints, exit durability) with three rule guards on input and
//! output and one no-op policy step before the provider call, against the bare `echo`
//! provider call, on a 1 KB prompt.
//!
//! Criterion reports the mean per call; a percentile pass at the end prints p50 / p99 of
//! both and of the difference (the overhead the targets are about).

use std::{sync::Arc, time::Instant};

use aegis::guards::{
    BanSubstrings, BanSubstringsConfig, InvisibleText, InvisibleTextConfig, Secrets, SecretsConfig,
};
use aegis::providers::Echo;
use aegis::{ChatRequest, GuardPolicy, Message, Pipeline, Provider, guard::GuardEntry};
use criterion::{Criterion, criterion_group};

fn prompt_1kb() -> String {
    let sentence =
        "Please summarise the quarterly report for the board, focusing on revenue and churn. ";
    let mut s = String::new();
    while s.len() < 1024 {
        s.push_str(sentence);
    }
    s.truncate(1024);
    s
}

fn guards() -> Vec<GuardEntry> {
    let entry =
        |id: &str, g: Arc<dyn aegis::Guardrail>| GuardEntry::new(id, g, GuardPolicy::default());
    vec![
        entry(
            "banned",
            Arc::new(
                BanSubstrings::new(BanSubstringsConfig::new([
                    "project nightingale",
                    "internal only",
                ]))
                .unwrap(),
            ),
        ),
        entry(
            "secrets",
            Arc::new(Secrets::new(SecretsConfig::default()).unwrap()),
        ),
        entry(
            "invisible",
            Arc::new(InvisibleText::new(InvisibleTextConfig::default()).unwrap()),
        ),
    ]
}

/// A policy that does nothing, at one extension point and in the run-end hook: the cost of
/// the extension points themselves.
struct Noop;

#[aegis::async_trait]
impl aegis::Policy for Noop {
    fn positions(&self) -> &[aegis::Position] {
        &[aegis::Position::BeforeCall]
    }
    async fn on_run_end(&self, run: &aegis::RunSummary) {
        std::hint::black_box(run);
    }
}

fn pipeline() -> Pipeline {
    builder().build().unwrap()
}

fn builder() -> aegis::PipelineBuilder {
    guards().into_iter().fold(
        Pipeline::builder()
            .provider("echo", Arc::new(Echo::new("echo")))
            .policy("noop", Arc::new(Noop)),
        |b, g| b.guard(g),
    )
}

/// The same pipeline with the metrics sink, recording into a Prometheus recorder (what the
/// gateway's `prometheus` telemetry type installs).
fn metered_pipeline() -> Pipeline {
    let _ = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder();
    builder()
        .telemetry(Arc::new(aegis::metrics::MetricsSink::new()))
        .build()
        .unwrap()
}

/// A span exporter that drops what it is given: the in-process cost of tracing (spans made,
/// recorded, queued and batched), without the network.
#[derive(Debug)]
struct Discard;

static PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> =
    std::sync::OnceLock::new();

/// Spans the discarding exporter was given (so the bench shows they were made).
static EXPORTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl opentelemetry_sdk::trace::SpanExporter for Discard {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        EXPORTED.fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// The gateway's trace layer (OpenTelemetry, batched, the pipeline's targets at info) over
/// a discarding exporter.
fn traced_dispatch() -> tracing::Dispatch {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _};
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(opentelemetry_sdk::trace::BatchSpanProcessor::builder(Discard).build())
        .build();
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("aegis", tracing::Level::INFO)
        .with_target("aegis_core", tracing::Level::INFO)
        .with_target("aegis_providers", tracing::Level::INFO);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("aegis"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(targets);
    let _ = PROVIDER.set(provider);
    tracing::Dispatch::new(tracing_subscriber::Registry::default().with(layer))
}

fn request(prompt: &str) -> ChatRequest {
    ChatRequest::new("echo-1", vec![Message::user(prompt)])
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prompt = prompt_1kb();
    let pipeline = pipeline();
    let echo = Echo::new("echo");
    let mut g = c.benchmark_group("governed_call_1kb");
    g.bench_function("bare_echo", |b| {
        b.to_async(&rt).iter(|| async {
            echo.chat(request(&prompt))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap()
        })
    });
    g.bench_function("governed_default_graph_3_guards_1_noop_policy", |b| {
        b.to_async(&rt).iter(|| async {
            pipeline
                .chat(request(&prompt))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap()
        })
    });
    g.finish();

    // Where the overhead goes.
    let mut g = c.benchmark_group("overhead_breakdown_1kb");
    let bare_graph = Pipeline::builder()
        .provider("echo", Arc::new(Echo::new("echo")))
        .build()
        .unwrap();
    g.bench_function("default_graph_no_guards", |b| {
        b.to_async(&rt).iter(|| async {
            bare_graph
                .chat(request(&prompt))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap()
        })
    });
    let chain = aegis::guard::GuardChain::new(guards());
    let ctx = aegis::RequestContext::default();
    let answer = aegis::Completion::text("id", "echo-1", format!("echo: {prompt}"));
    g.bench_function("three_guards_on_request_and_answer", |b| {
        b.to_async(&rt).iter(|| async {
            let mut req = request(&prompt);
            chain.judge_request(&mut req, &ctx, None).await;
            let mut c = answer.clone();
            chain.judge_completion(&mut c, &ctx, None).await;
        })
    });
    g.finish();

    // Issue 3's target: the default input chain (what `aegis scan` runs: PII, secrets,
    // prompt injection, invisible text) on a 1 KB prompt, ≤ 30 µs p50.
    let mut g = c.benchmark_group("default_input_chain_1kb");
    let input_chain = aegis::guard::GuardChain::new(default_input_chain());
    g.bench_function("pii_secrets_injection_invisible", |b| {
        b.to_async(&rt).iter(|| async {
            let mut req = request(&prompt);
            input_chain.judge_request(&mut req, &ctx, None).await;
        })
    });
    g.finish();
}

fn default_input_chain() -> Vec<GuardEntry> {
    use aegis::guards::{PromptInjection, PromptInjectionConfig};
    use aegis::pii::{PiiGuard, PiiGuardConfig};
    let entry =
        |id: &str, g: Arc<dyn aegis::Guardrail>| GuardEntry::new(id, g, GuardPolicy::default());
    vec![
        entry(
            "pii",
            Arc::new(PiiGuard::new(PiiGuardConfig::default()).unwrap()),
        ),
        entry(
            "secrets",
            Arc::new(Secrets::new(SecretsConfig::default()).unwrap()),
        ),
        entry(
            "injection",
            Arc::new(PromptInjection::new(PromptInjectionConfig::default()).unwrap()),
        ),
        entry(
            "invisible",
            Arc::new(InvisibleText::new(InvisibleTextConfig::default()).unwrap()),
        ),
    ]
}

fn percentile(sorted: &[u128], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Interleaves bare and governed calls so both see the same machine noise.
fn percentiles() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prompt = prompt_1kb();
    let pipeline = pipeline();
    let metered = metered_pipeline();
    let echo = Echo::new("echo");
    let n = 20_000;
    let (mut bare, mut governed) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut with_metrics = Vec::with_capacity(n);
    rt.block_on(async {
        for _ in 0..2_000 {
            pipeline
                .chat(request(&prompt))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
        }
        for _ in 0..n {
            let t = Instant::now();
            echo.chat(request(&prompt))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            bare.push(t.elapsed().as_nanos());
            let t = Instant::now();
            pipeline
                .chat(request(&prompt))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            governed.push(t.elapsed().as_nanos());
            let t = Instant::now();
            metered
                .chat(request(&prompt))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            with_metrics.push(t.elapsed().as_nanos());
        }
    });

    bare.sort_unstable();
    governed.sort_unstable();
    with_metrics.sort_unstable();
    println!("\npercentiles over {n} interleaved calls (µs):");
    println!(
        "  bare echo:  p50 {:>7.2}  p99 {:>7.2}",
        percentile(&bare, 0.5),
        percentile(&bare, 0.99)
    );
    println!(
        "  governed:   p50 {:>7.2}  p99 {:>7.2}",
        percentile(&governed, 0.5),
        percentile(&governed, 0.99)
    );
    println!(
        "  overhead:   p50 {:>7.2}  p99 {:>7.2}",
        percentile(&governed, 0.5) - percentile(&bare, 0.5),
        percentile(&governed, 0.99) - percentile(&bare, 0.99)
    );
    println!(
        "  governed + prometheus metrics:  p50 {:>7.2}  p99 {:>7.2}  (added p50 {:.2})",
        percentile(&with_metrics, 0.5),
        percentile(&with_metrics, 0.99),
        percentile(&with_metrics, 0.5) - percentile(&governed, 0.5)
    );
    let chain = aegis::guard::GuardChain::new(default_input_chain());
    let ctx = aegis::RequestContext::default();
    let mut input = Vec::with_capacity(n);
    rt.block_on(async {
        for _ in 0..n {
            let mut req = request(&prompt);
            let t = Instant::now();
            chain.judge_request(&mut req, &ctx, None).await;
            input.push(t.elapsed().as_nanos());
        }
    });
    input.sort_unstable();
    println!(
        "  default input chain (pii, secrets, injection, invisible):  p50 {:>7.2}  p99 {:>7.2}",
        percentile(&input, 0.5),
        percentile(&input, 0.99)
    );
    traced_percentiles(&rt, &prompt, &pipeline, n);
}

/// Last, because it installs the process's subscriber for good (as the gateway does with
/// an `otlp` entry): governed calls again, untraced then traced, interleaved with bare ones.
fn traced_percentiles(rt: &tokio::runtime::Runtime, prompt: &str, pipeline: &Pipeline, n: usize) {
    let echo = Echo::new("echo");
    let run = |traced: bool| {
        let (mut bare, mut governed) = (Vec::with_capacity(n), Vec::with_capacity(n));
        rt.block_on(async {
            for _ in 0..n {
                let t = Instant::now();
                echo.chat(request(prompt))
                    .await
                    .unwrap()
                    .collect()
                    .await
                    .unwrap();
                bare.push(t.elapsed().as_nanos());
                let t = Instant::now();
                pipeline
                    .chat(request(prompt))
                    .await
                    .unwrap()
                    .collect()
                    .await
                    .unwrap();
                governed.push(t.elapsed().as_nanos());
            }
        });
        bare.sort_unstable();
        governed.sort_unstable();
        let _ = traced;
        (
            percentile(&bare, 0.5),
            percentile(&governed, 0.5),
            percentile(&governed, 0.99),
        )
    };
    let (bare_off, off_p50, off_p99) = run(false);
    let _ = tracing::dispatcher::set_global_default(traced_dispatch());
    let (bare_on, on_p50, on_p99) = run(true);
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
    }
    println!(
        "  governed, no exporter:           p50 {off_p50:>7.2}  p99 {off_p99:>7.2}  (bare p50 {bare_off:.2})"
    );
    println!(
        "  governed + OpenTelemetry spans:  p50 {on_p50:>7.2}  p99 {on_p99:>7.2}  (bare p50 {bare_on:.2}; added p50 {:.2}; {:.1} spans per run exported)",
        (on_p50 - bare_on) - (off_p50 - bare_off),
        EXPORTED.load(std::sync::atomic::Ordering::Relaxed) as f64 / n as f64
    );
}

criterion_group!(benches, bench);

/// `AEGIS_BENCH_PROFILE=1`: only governed calls, for 10 s, so a profiler (`perf record`)
/// sees the governed path and nothing else.
fn profile_governed() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prompt = prompt_1kb();
    let pipeline = pipeline();
    let until = Instant::now() + std::time::Duration::from_secs(10);
    rt.block_on(async {
        while Instant::now() < until {
            for _ in 0..1_000 {
                pipeline
                    .chat(request(&prompt))
                    .await
                    .unwrap()
                    .collect()
                    .await
                    .unwrap();
            }
        }
    });
}

fn main() {
    if std::env::var_os("AEGIS_BENCH_PROFILE").is_some() {
        return profile_governed();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().all(|a| a != "--list" && a != "--profile-time") {
        percentiles();
    }
}
