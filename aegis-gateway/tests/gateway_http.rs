//! The gateway over real HTTP: OpenAI wire format, SSE framing, auth, errors, limits, runs,
//! and the official OpenAI Python and Node SDKs as clients.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, path::PathBuf, process::Command, sync::Arc};

use aegis::{Pipeline, config::AegisConfig};
use aegis_gateway::server::{self, EventFeed, Gateway, Limits};
use serde_json::{Value, json};

/// `AEGIS_TEST_SECRET_ENV` is set by .cargo/config.toml.
const KEY: &str = "sk-env-value-for-tests";

const CONFIG: &str = r#"
[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "static_keys"
config = { keys = [
    { key = "secret://env/AEGIS_TEST_SECRET_ENV", principal = "tester", roles = ["admin"] },
] }

[[guardrails]]
id = "words"
type = "ban_substrings"
config = { substrings = ["project nightingale"] }

[[guardrails]]
id = "animal-filter"
type = "ban_substrings"
stages = ["output"]
config = { substrings = ["zebra"] }

[[guardrails]]
id = "secrets"
type = "secrets"
config = { action = "redact" }
"#;

async fn pipeline_of(config: &str, feed: &EventFeed) -> Pipeline {
    let cfg = AegisConfig::from_toml_str(config, std::iter::empty::<(&str, &str)>()).unwrap();
    Pipeline::from_config_with(
        &aegis_gateway::static_keys::registry(),
        &cfg,
        None,
        vec![Arc::new(feed.clone())],
    )
    .await
    .unwrap()
}

async fn spawn_gateway(config: &str, limits: Limits) -> (SocketAddr, Arc<Gateway>) {
    let feed = EventFeed::default();
    let gw = Gateway::new(pipeline_of(config, &feed).await, limits, feed);
    let app = server::router(gw.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, gw)
}

async fn spawn(config: &str, limits: Limits) -> SocketAddr {
    spawn_gateway(config, limits).await.0
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(addr: SocketAddr, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("http://{addr}{path}"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn chat_completions_answer_in_openai_shape_with_run_headers() {
    let addr = spawn(CONFIG, Limits::default()).await;
    let resp = post(
        addr,
        "/v1/chat/completions",
        json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["x-aegis-run-id"].to_str().unwrap().len() > 10);
    assert_eq!(
        resp.headers()["x-aegis-guards"],
        "words,secrets,animal-filter"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hi");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn streams_use_openai_chunks_and_end_with_done() {
    let addr = spawn(CONFIG, Limits::default()).await;
    let body = json!({"model": "echo", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "one two three"}]});
    let resp = post(addr, "/v1/chat/completions", body).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: one two three");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Without include_usage there is no usage chunk.
    let body =
        json!({"model": "echo", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let text = post(addr, "/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
}

#[tokio::test]
async fn a_block_after_the_first_byte_is_an_sse_error_without_done() {
    let addr = spawn(CONFIG, Limits::default()).await;
    let body = json!({"model": "echo", "stream": true, "messages": [{"role": "user", "content": "a zebra"}]});
    let text = post(addr, "/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(!text.contains("zebra"), "{text}");
    let last: Value = serde_json::from_str(
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .next_back()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["error"]["code"], "banned_substring");
}

#[tokio::test]
async fn blocked_prompts_are_openai_errors_with_stable_codes() {
    let addr = spawn(CONFIG, Limits::default()).await;
    let resp = post(
        addr,
        "/v1/chat/completions",
        json!({"model": "echo", "messages": [{"role": "user", "content": "Project Nightingale"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "policy_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("words"));
    assert!(v["error"]["code"].is_string());
}

#[tokio::test]
async fn credentials_are_required_and_both_header_styles_work() {
    let addr = spawn(CONFIG, Limits::default()).await;
    let body = json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]});
    let url = format!("http://{addr}/v1/chat/completions");
    let none = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let wrong = client()
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let v: Value = wrong.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    let api_key = client()
        .post(&url)
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(api_key.status(), 200);
}

#[tokio::test]
async fn bad_bodies_get_clear_4xx_errors() {
    let addr = spawn(
        CONFIG,
        Limits {
            max_body_bytes: 64 * 1024,
            ..Limits::default()
        },
    )
    .await;
    let url = format!("http://{addr}/v1/chat/completions");
    let send = |body: Vec<u8>| {
        client()
            .post(&url)
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let r = send(b"{not json".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r =
        send(br#"{"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}"#.to_vec())
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages[0].role"),
        "{v}"
    );
    let r = send(br#"{"model": 7, "messages": []}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(br#"{"model": "echo", "messages": []}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(
        b"{\"model\": \"echo\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}"
            .to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("UTF-8"),
        "{v}"
    );
    let huge = format!(
        r#"{{"model": "echo", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "a".repeat(100_000)
    );
    let r = send(huge.into_bytes()).await.unwrap();
    assert_eq!(r.status(), 413);
    // Unknown fields are kept and forwarded, not refused.
    let r = send(br#"{"model": "echo", "messages": [{"role": "user", "content": "x"}], "logit_bias": {}, "vendor_knob": 1}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// What the HTTP plumbing answers on its own — the body-size limit, an unknown route, a
/// wrong method — is OpenAI-shaped JSON like every other error, so SDKs can read it.
#[tokio::test]
async fn errors_the_plumbing_produces_are_openai_shaped_json() {
    let addr = spawn(
        CONFIG,
        Limits {
            max_body_bytes: 1024,
            ..Limits::default()
        },
    )
    .await;
    let huge =
        json!({ "model": "echo", "messages": [{ "role": "user", "content": "a".repeat(4096) }] });
    let too_large = post(addr, "/v1/chat/completions", huge).await;
    let unknown = post(addr, "/v1/no/such/route", json!({})).await;
    let wrong_method = client()
        .get(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    for (r, status, code) in [
        (too_large, 413, "request_too_large"),
        (unknown, 404, "not_found"),
        (wrong_method, 405, "method_not_allowed"),
    ] {
        assert_eq!(r.status(), status);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/json"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{v}");
    }
}

#[tokio::test]
async fn embeddings_and_models_speak_openai() {
    let addr = spawn(CONFIG, Limits::default()).await;
    let v: Value = post(
        addr,
        "/v1/embeddings",
        json!({"model": "echo", "input": ["a b", "c"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 16);
    let v: Value = post(
        addr,
        "/v1/embeddings",
        json!({"model": "echo", "input": "a", "encoding_format": "base64"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        v["data"][0]["embedding"].as_str().unwrap().len(),
        88,
        "16 f32 = 64 bytes = 88 base64 chars"
    );
    let anonymous = client()
        .get(format!("http://{addr}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "the model list needs a key");
    let v: Value = client()
        .get(format!("http://{addr}/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "echo")
    );
}

#[tokio::test]
async fn the_served_openapi_document_matches_the_checked_in_copy() {
    let generated = serde_json::to_string_pretty(&server::openapi::document()).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("AEGIS_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "openapi.json is stale: regenerate with `AEGIS_UPDATE_OPENAPI=1 cargo test -p aegis-gateway --test gateway_http`"
    );
    let addr = spawn(CONFIG, Limits::default()).await;
    let served: Value = client()
        .get(format!("http://{addr}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, server::openapi::document());
    assert!(served["paths"]["/v1/runs/{id}/approve"]["post"].is_object());
}

#[test]
fn every_route_of_the_router_is_in_the_openapi_document() {
    // The route table, read from the router's source: each `.route("PATH", get(..).post(..))`.
    let source = include_str!("../src/server/mod.rs");
    let table = &source[source.find("fn router(").unwrap()..];
    let doc = server::openapi::document();
    let mut routes = 0;
    let mut missing = Vec::new();
    for call in table.split(".route(").skip(1) {
        let call = call.split(".layer(").next().unwrap();
        let path = call.split('"').nth(1).unwrap();
        for method in ["get", "post", "put", "patch", "delete"] {
            if call.contains(&format!("{method}(")) {
                routes += 1;
                if !doc["paths"][path][method].is_object() {
                    missing.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
    }
    assert!(
        routes >= 25,
        "the route table was not read: {routes} routes"
    );
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
}

/// Runs an SDK client script; `AEGIS_CLIENT_TESTS=1` (set by scripts/test.sh, which installs
/// the SDKs) makes a missing SDK a failure instead of a skip.
fn run_client(program: &str, args: &[&str], installed: bool) {
    let required = std::env::var_os("AEGIS_CLIENT_TESTS").is_some();
    if !installed {
        assert!(
            !required,
            "{program} SDK not installed; run scripts/test.sh"
        );
        eprintln!("skipping: {program} SDK not installed (scripts/test.sh installs it)");
        return;
    }
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_against_the_gateway() {
    let addr = spawn(CONFIG, Limits::default()).await;
    let python = std::env::var("AEGIS_PYTHON")
        .unwrap_or_else(|_| clients_dir().join(".venv/bin/python").display().to_string());
    let installed = std::path::Path::new(&python).exists();
    let script = clients_dir().join("python_sdk.py");
    let base = format!("http://{addr}/v1");
    tokio::task::spawn_blocking(move || {
        run_client(&python, &[script.to_str().unwrap(), &base, KEY], installed)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_node_sdk_works_against_the_gateway() {
    let addr = spawn(CONFIG, Limits::default()).await;
    let installed = clients_dir().join("node_modules/openai").exists();
    let script = clients_dir().join("node_sdk.mjs");
    let base = format!("http://{addr}/v1");
    tokio::task::spawn_blocking(move || {
        run_client("node", &[script.to_str().unwrap(), &base, KEY], installed)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_under_load_loses_no_request() {
    let (addr, gw) = spawn_gateway(CONFIG, Limits::default()).await;
    let renamed = CONFIG.replace(
        "id = \"echo\"\ntype = \"echo\"",
        "id = \"echo2\"\ntype = \"echo\"",
    );
    let alternatives = [
        pipeline_of(CONFIG, &EventFeed::default()).await,
        pipeline_of(&renamed, &EventFeed::default()).await,
    ];
    let requests: Vec<_> = (0..300)
        .map(|i| {
            tokio::spawn(async move {
                let body = json!({"model": "any", "stream": i % 3 == 0, "messages": [{"role": "user", "content": format!("n{i}")}]});
                let resp = post(addr, "/v1/chat/completions", body).await;
                let status = resp.status();
                let text = resp.text().await.unwrap();
                (status, text, i)
            })
        })
        .collect();
    for round in 0..40 {
        gw.replace_pipeline(alternatives[round % 2].clone());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for r in requests {
        let (status, text, i) = r.await.unwrap();
        assert_eq!(status, 200, "request {i}: {text}");
        assert!(
            text.contains(&format!("echo: n{i}")) || text.contains(&format!("n{i}")),
            "request {i}: {text}"
        );
        if i % 3 == 0 {
            assert!(
                text.trim_end().ends_with("data: [DONE]"),
                "stream {i} was cut: {text}"
            );
        }
    }
}

#[tokio::test]
async fn admin_reload_swaps_the_pipeline_and_needs_an_admin() {
    let (addr, gw) = spawn_gateway(CONFIG, Limits::default()).await;
    let renamed = CONFIG.replace(
        "id = \"echo\"\ntype = \"echo\"",
        "id = \"backup\"\ntype = \"echo\"",
    );
    let weak = Arc::downgrade(&gw);
    gw.set_reloader(Arc::new(move || {
        let (weak, renamed) = (weak.clone(), renamed.clone());
        Box::pin(async move {
            let next = pipeline_of(&renamed, &EventFeed::default()).await;
            weak.upgrade().unwrap().replace_pipeline(next);
            Ok(())
        })
    }));
    let url = format!("http://{addr}/admin/reload");
    assert_eq!(client().post(&url).send().await.unwrap().status(), 401);
    let resp = client().post(&url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = client()
        .get(format!("http://{addr}/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "backup"),
        "{v}"
    );
}

async fn spawn_served(
    limits: Limits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    spawn_served_with(CONFIG, limits).await
}

async fn spawn_served_with(
    config: &str,
    limits: Limits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let feed = EventFeed::default();
    let gw = Gateway::new(pipeline_of(config, &feed).await, limits, feed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server::serve(listener, gw, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    (addr, tx, task)
}

#[tokio::test]
async fn slow_clients_are_cut_off_headers_and_bodies() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = Limits {
        header_read_timeout_ms: 300,
        body_read_timeout_ms: 300,
        ..Limits::default()
    };
    let (addr, _stop, _task) = spawn_served(limits).await;

    // Slow-loris: headers that never finish. The server closes the connection.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection must be closed by the server");

    // A body that never finishes: 408.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\""
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        answer.starts_with("HTTP/1.1 408") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_streams() {
    let (addr, stop, task) = spawn_served(Limits::default()).await;
    let body = json!({"model": "echo", "stream": true, "messages": [{"role": "user", "content": "one two three four"}]});
    let resp = post(addr, "/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    stop.send(()).unwrap();
    // The stream that started before the shutdown still completes with [DONE].
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err(),
        "no new connections"
    );
}

/// A run's event feed is a stream like any other: it holds a place of the stream limit, and
/// it ends (with a `shutdown` event) when the gateway shuts down — a feed of a paused run must
/// not hold a graceful shutdown up for as long as the run waits.
#[tokio::test]
async fn event_feeds_count_against_the_stream_limit_and_end_at_shutdown() {
    let config = format!(
        "{CONFIG}\n[[guardrails]]\nid = \"ask\"\ntype = \"ban_substrings\"\nstages = [\"input\"]\nconfig = {{ substrings = [\"wire transfer\"], action = \"require_approval\" }}\n"
    );
    let (addr, stop, task) = spawn_served_with(
        &config,
        Limits {
            max_concurrent_streams: 1,
            ..Limits::default()
        },
    )
    .await;
    let paused = post(
        addr,
        "/v1/runs",
        json!({"input": {"model": "echo", "messages": [{"role": "user", "content": "book the wire transfer"}]}}),
    )
    .await;
    assert_eq!(paused.status(), 202);
    let id = paused.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut feed = client()
        .get(format!("http://{addr}/v1/runs/{id}/events"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let first = feed.chunk().await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("status"),
        "{first:?}"
    );

    let body =
        json!({"model": "echo", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let refused = post(addr, "/v1/chat/completions", body).await;
    assert_eq!(
        refused.status(),
        429,
        "the feed holds the only stream place"
    );

    stop.send(()).unwrap();
    let mut rest = String::new();
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(5), feed.chunk())
        .await
        .expect("the feed ends at shutdown")
        .unwrap()
    {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("event: shutdown"), "{rest}");
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("shutdown is not held up by the feed")
        .unwrap();
}

#[tokio::test]
async fn a_header_switches_the_model_per_request() {
    let two = format!(
        "{CONFIG}\n[[providers]]\nid = \"second\"\ntype = \"echo\"\nconfig = {{ models = [\"m2\"] }}\n"
    );
    let addr = spawn(&two, Limits::default()).await;
    let resp = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-aegis-model", "second/m2")
        .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-aegis-provider"], "second");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "m2");
}
