//! Golden spans: the `aegis` binary with an `otlp` telemetry entry sends OpenTelemetry
//! traces to a local OTLP/HTTP receiver (decoded with `opentelemetry-proto`). A run is one
//! `aegis.run` span; its guard judgements, provider call and the call's attempts are its
//! descendants; the provider span carries the GenAI attributes, and a streamed call's span
//! ends with the last chunk, with the final chunk's usage and the time to the first. No
//! prompt or answer text is in any span.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Bytes, http::Response, routing::post};
use futures_util::StreamExt as _;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value as Av},
    trace::v1::Span,
};
use prost::Message as _;
use serde_json::json;

const PROMPT: &str = "tell me about the lighthouse keeper";
const ANSWER_WORD: &str = "beacon";

/// An OpenAI-compatible upstream: complete answers at once; streams as four chunks 100 ms
/// apart, then the usage (7 prompt + 4 completion tokens).
async fn upstream() -> SocketAddr {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|body: Bytes| async move {
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if req["stream"] != true {
                let answer = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m-2026",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER_WORD}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}});
                return Response::builder()
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(answer.to_string()))
                    .unwrap();
            }
            let chunk = |delta: serde_json::Value, extra: serde_json::Value| {
                let mut c = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m-2026",
                                   "choices": [{"index": 0, "delta": delta}]});
                if let Some(o) = extra.as_object() {
                    for (k, v) in o {
                        if k == "finish_reason" {
                            c["choices"][0]["finish_reason"] = v.clone();
                        } else {
                            c[k] = v.clone();
                        }
                    }
                }
                format!("data: {c}\n\n")
            };
            let mut parts: Vec<String> = (0..4)
                .map(|_| chunk(json!({"content": format!("{ANSWER_WORD} ")}), json!({})))
                .collect();
            parts.push(chunk(
                json!({}),
                json!({"finish_reason": "stop",
                       "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}}),
            ));
            parts.push("data: [DONE]\n\n".into());
            let body = futures_util::stream::iter(parts).then(|p| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(p)
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(axum::body::Body::from_stream(body))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

type Spans = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP receiver keeping every span it is sent (and every raw body, to search).
async fn receiver() -> (SocketAddr, Spans, Arc<Mutex<Vec<u8>>>) {
    let spans: Spans = Arc::default();
    let raw: Arc<Mutex<Vec<u8>>> = Arc::default();
    let (s, r) = (spans.clone(), raw.clone());
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                r.lock().unwrap().extend_from_slice(&body);
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                let mut out = s.lock().unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        out.extend(ss.spans);
                    }
                }
                Response::builder()
                    .header("content-type", "application/x-protobuf")
                    .body(axum::body::Body::empty())
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, spans, raw)
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Av> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        Av::StringValue(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    }
}

fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        Av::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// The spans of run `run_id`: its `aegis.run` span and every descendant.
fn run_tree(spans: &[Span], run_id: &str) -> Option<(Span, Vec<Span>)> {
    let root = spans
        .iter()
        .find(|s| {
            s.name == "aegis.run" && text(&s.attributes, "aegis.run_id").as_deref() == Some(run_id)
        })?
        .clone();
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let under_root = |s: &Span| {
        let mut parent = s.parent_span_id.as_slice();
        while !parent.is_empty() {
            if parent == root.span_id.as_slice() {
                return true;
            }
            parent = by_id
                .get(parent)
                .map_or(&[][..], |p| p.parent_span_id.as_slice());
        }
        false
    };
    let descendants = spans.iter().filter(|s| under_root(s)).cloned().collect();
    Some((root, descendants))
}

async fn wait_for_run(spans: &Spans, run_id: &str) -> (Span, Vec<Span>) {
    let started = Instant::now();
    loop {
        if let Some((root, kids)) = run_tree(&spans.lock().unwrap(), run_id)
            && kids.iter().any(|s| s.name.starts_with("chat "))
        {
            return (root, kids);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no complete trace of run {run_id} arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_export_golden_genai_spans_and_a_stream_span_ends_with_its_last_chunk() {
    let up = upstream().await;
    let (collector, spans, raw) = receiver().await;
    let dir = std::env::temp_dir().join(format!("aegis-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
database_url = "sqlite://{db}?mode=rwc"

[[providers]]
id = "up"
type = "openai"
config = {{ base_url = "http://{up}/v1", models = ["m"] }}

[[guardrails]]
id = "secrets"
type = "secrets"

[[telemetry]]
id = "traces"
type = "otlp"
config = {{ endpoint = "http://{collector}/v1/traces", export_interval_ms = 100 }}
"#,
            db = dir.join("aegis.db").display()
        ),
    )
    .unwrap();
    let (_server, base) = common::start_binary(&config, &dir);
    let client = reqwest::Client::new();

    // A complete answer.
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "up/m", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let complete_run = resp.headers()["x-aegis-run-id"]
        .to_str()
        .unwrap()
        .to_owned();
    resp.text().await.unwrap();

    // A stream: the client reads it to the end.
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .json(
            &json!({"model": "up/m", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": PROMPT}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stream_run = resp.headers()["x-aegis-run-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = resp.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");

    // The complete run: one root, its guard spans (verdicts as events) and the GenAI span.
    let (root, kids) = wait_for_run(&spans, &complete_run).await;
    assert!(
        root.parent_span_id.is_empty() || !kids.iter().any(|k| k.span_id == root.parent_span_id)
    );
    assert_eq!(
        text(&root.attributes, "aegis.run.status").as_deref(),
        Some("completed")
    );
    assert_eq!(
        int(&root.attributes, "gen_ai.usage.input_tokens"),
        Some(7),
        "{:?}",
        root.attributes
    );
    let chat = kids
        .iter()
        .find(|s| s.name == "chat m")
        .expect("a GenAI span named `chat m`");
    assert_eq!(
        chat.parent_span_id, root.span_id,
        "the provider call is a child of the run"
    );
    assert_eq!(chat.kind, 3, "SPAN_KIND_CLIENT");
    for (key, want) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "up"),
        ("gen_ai.request.model", "m"),
        ("gen_ai.response.model", "m-2026"),
        ("gen_ai.response.finish_reasons", "stop"),
    ] {
        assert_eq!(text(&chat.attributes, key).as_deref(), Some(want), "{key}");
    }
    assert_eq!(int(&chat.attributes, "gen_ai.usage.input_tokens"), Some(7));
    assert_eq!(int(&chat.attributes, "gen_ai.usage.output_tokens"), Some(1));
    let guards: Vec<&Span> = kids.iter().filter(|s| s.name == "guard secrets").collect();
    assert!(
        guards.len() >= 2,
        "the prompt and the answer were judged: {guards:?}"
    );
    for g in &guards {
        assert_eq!(
            g.parent_span_id, root.span_id,
            "guards are children of the run"
        );
        let verdict = g
            .events
            .iter()
            .find(|e| e.name == "aegis.verdict")
            .expect("verdict event");
        assert_eq!(
            text(&verdict.attributes, "decision").as_deref(),
            Some("allow")
        );
        assert_eq!(
            text(&verdict.attributes, "guard").as_deref(),
            Some("secrets")
        );
    }

    // The stream: the GenAI span and the run span last until the last chunk (five chunks
    // 100 ms apart: at least 400 ms), not until the headers.
    let (root, kids) = wait_for_run(&spans, &stream_run).await;
    let chat = kids.iter().find(|s| s.name == "chat m").unwrap();
    let chat_ms = ms(chat.end_time_unix_nano - chat.start_time_unix_nano);
    assert!(
        chat_ms >= 400.0,
        "the stream span lasted {chat_ms} ms: {:?}",
        chat.attributes
    );
    let root_ms = ms(root.end_time_unix_nano - root.start_time_unix_nano);
    assert!(
        root_ms >= chat_ms,
        "the run span covers the call: {root_ms} < {chat_ms}"
    );
    assert_eq!(
        int(&chat.attributes, "gen_ai.usage.output_tokens"),
        Some(4),
        "the final chunk's usage"
    );
    assert_eq!(
        text(&chat.attributes, "gen_ai.response.finish_reasons").as_deref(),
        Some("stop")
    );
    let ttfc = match attr(&chat.attributes, "aegis.time_to_first_chunk_ms") {
        Some(Av::DoubleValue(v)) => *v,
        other => panic!("time to first chunk: {other:?}"),
    };
    assert!(
        (90.0..chat_ms).contains(&ttfc),
        "first chunk after {ttfc} ms"
    );
    assert_eq!(
        text(&root.attributes, "aegis.run.status").as_deref(),
        Some("completed")
    );
    assert_eq!(int(&root.attributes, "gen_ai.usage.output_tokens"), Some(4));

    // No content in any span: neither the prompt nor the answer.
    let raw = raw.lock().unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(!raw.contains("lighthouse"), "the prompt is in a span");
    assert!(!raw.contains(ANSWER_WORD), "the answer is in a span");
    std::fs::remove_dir_all(&dir).ok();
}

/// The value of the sample of `name` whose labels contain `label`, in Prometheus text.
fn sample(metrics: &str, name: &str, label: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn an_unreachable_collector_fails_no_request_and_every_lost_span_is_counted() {
    let up = upstream().await;
    let dead = common::free_port();
    let dir = std::env::temp_dir().join(format!("aegis-otlp-dead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("aegis.toml");
    // A queue of two spans, sent every 50 ms, to a port nobody listens on: a run's eight
    // spans overflow the queue, and every batch that does leave fails.
    std::fs::write(
        &config,
        format!(
            r#"
[server]
database_url = "sqlite://{db}?mode=rwc"

[[providers]]
id = "up"
type = "openai"
config = {{ base_url = "http://{up}/v1", models = ["m"] }}

[[guardrails]]
id = "secrets"
type = "secrets"

[[telemetry]]
id = "traces"
type = "otlp"
config = {{ endpoint = "http://127.0.0.1:{dead}/v1/traces", export_interval_ms = 50, max_queue = 2, export_timeout_ms = 500 }}

[[telemetry]]
id = "prometheus"
type = "prometheus"
"#,
            db = dir.join("aegis.db").display()
        ),
    )
    .unwrap();
    let (_server, base) = common::start_binary(&config, &dir);
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let started = Instant::now();
        let resp = client
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "up/m", "messages": [{"role": "user", "content": PROMPT}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "a dead collector failed a request");
        resp.text().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a dead collector held up a request for {:?}",
            started.elapsed()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let (full, failed) = loop {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let full = sample(
            &text,
            "aegis_trace_spans_dropped_total",
            "reason=\"queue_full\"",
        );
        let failed = sample(
            &text,
            "aegis_trace_spans_dropped_total",
            "reason=\"export_failed\"",
        );
        if (full.is_some() && failed.is_some()) || Instant::now() > deadline {
            break (full, failed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (full, failed) = (full.unwrap_or(0.0), failed.unwrap_or(0.0));
    assert!(full >= 1.0, "spans dropped at the queue: {full}");
    assert!(failed >= 1.0, "spans of failed exports: {failed}");
    // Nothing is lost uncounted: ten runs of eight spans at most, each counted once.
    assert!(full + failed <= 80.0, "{full} + {failed}");
    std::fs::remove_dir_all(&dir).ok();
}
