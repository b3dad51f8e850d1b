//! Nothing secret reaches a log line, a span or a metric: the real binary runs with debug
//! logging in JSON and an OTLP trace exporter, keys and secrets are planted in requests
//! (prompts a guard redacts or blocks, a failing upstream, a bad key, a paused run), and
//! every log line — each one a JSON object —, every exported span batch (the raw protobuf,
//! where strings are stored as they are) and the metrics text are scanned for them.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, routing::post};

use serde_json::{Value, json};

const KEY: &str = "sk-test-loghygiene-key-7Q2X";
const SECRET: &str = "ghp_Zq8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE0uW";
const PROMPT: &str = "PLANTED-PROMPT-TEXT-4K9";
const PII: &str = "jane.planted@example.com";

/// An OTLP/HTTP receiver keeping every request body as it came.
async fn collector() -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let raw = Arc::new(Mutex::new(Vec::new()));
    let keep = raw.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().extend_from_slice(&body);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_span_or_metric_carries_a_key_a_secret_or_content() {
    let (collector, spans) = collector().await;
    let dir = std::env::temp_dir().join(format!(
        "aegis-logs-{}-{}",
        std::process::id(),
        common::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let metrics_port = common::free_port();
    let dead_port = common::free_port();
    let cfg = dir.join("aegis.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[server]
database_url = "sqlite://{db}?mode=rwc"

[[providers]]
id = "echo"
type = "echo"

[[providers]]
id = "down"
type = "openai"
config = {{ base_url = "http://127.0.0.1:{dead_port}/v1", api_key = "secret://env/UPSTREAM_KEY" }}

[routing]
default_provider = "echo"
[routing.aliases]
broken = "down/gpt-x"

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [ {{ key = "secret://env/GW_KEY", principal = "ops", team = "ops", roles = ["admin", "approver"] }} ] }}

[[guardrails]]
id = "pii"
type = "pii"

[[guardrails]]
id = "secrets"
type = "secrets"
config = {{ action = "redact" }}

[[guardrails]]
id = "hold"
type = "ban_substrings"
stages = ["input"]
config = {{ substrings = ["hold this"], action = "require_approval" }}

[[guardrails]]
id = "ban"
type = "ban_substrings"
stages = ["input"]
config = {{ substrings = ["forbidden"] }}

[[telemetry]]
id = "prometheus"
type = "prometheus"
config = {{ listen = "127.0.0.1:{metrics_port}" }}

[[telemetry]]
id = "traces"
type = "otlp"
config = {{ endpoint = "http://{collector}/v1/traces", export_interval_ms = 100 }}
"#,
            db = dir.join("aegis.db").display()
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", common::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args([
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .current_dir(&dir)
        .env("AEGIS_LOG", "debug")
        .env("AEGIS_LOG_FORMAT", "json")
        .env("GW_KEY", KEY)
        .env("UPSTREAM_KEY", "sk-upstream-planted-9Z4W")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().starts_with("aegis: listening on") {
            break;
        }
    }
    let base = format!("http://{listen}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let send = |model: &str, text: String, stream: bool, key: &str| {
        let req = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}));
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let planted = format!("{PROMPT} my token {SECRET} mail {PII}");
    assert_eq!(send("echo", planted.clone(), false, KEY).await.0, 200);
    assert_eq!(send("echo", planted.clone(), true, KEY).await.0, 200);
    assert_eq!(
        send("echo", format!("forbidden {planted}"), false, KEY)
            .await
            .0,
        400
    );
    assert_eq!(
        send("echo", format!("hold this {planted}"), false, KEY)
            .await
            .0,
        202
    );
    assert!(send("broken", planted.clone(), false, KEY).await.0 >= 500);
    assert_eq!(
        send("echo", planted.clone(), false, "sk-wrong-planted-key-3X1K")
            .await
            .0,
        401
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A graceful stop flushes every log line.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let lines = logs.join().unwrap();
    assert!(lines.len() >= 5, "debug logging logged: {lines:?}");
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }
    let all = lines.join("\n");
    let spans = String::from_utf8_lossy(&spans.lock().unwrap()).into_owned();
    assert!(
        spans.contains("aegis.run") && spans.contains("aegis.guard"),
        "the spans were exported"
    );
    for planted in [
        KEY,
        SECRET,
        PROMPT,
        PII,
        "sk-upstream-planted-9Z4W",
        "sk-wrong-planted-key-3X1K",
    ] {
        assert!(!all.contains(planted), "`{planted}` is in the logs");
        assert!(!metrics.contains(planted), "`{planted}` is in the metrics");
        assert!(!spans.contains(planted), "`{planted}` is in a span");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
