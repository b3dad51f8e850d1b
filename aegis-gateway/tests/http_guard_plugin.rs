//! Guard plugins in any language for the shipped binary: the `http` guard type speaks
//! `aegis.guard.v1` to a service. The Python example service (`examples/http-guard`) run
//! as a real process sanitizes and blocks through `aegis serve`; a service that hangs,
//! fails, answers garbage or an edit outside its text blocks the request (`fail_mode =
//! "closed"`, the default) or lets it through (`"open"`) — never a crash.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use axum::{Json, routing::post};
use serde_json::{Value, json};

/// The example service, killed on drop.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python_service() -> (Service, String) {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/http-guard/guard_service.py");
    let port = common::free_port();
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the example guard service");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("guard service on"), "{line}");
    (Service(child), format!("http://127.0.0.1:{port}/check"))
}

async fn chat(base: &str, text: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "echo", "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_guard_service_extends_the_shipped_binary() {
    let (_service, url) = python_service();
    let dir = common::scratch_dir("http-guard");
    let config = dir.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[providers]]
id = "echo"
type = "echo"

[[guardrails]]
id = "codenames"
type = "http"
config = {{ url = "{url}" }}

[server]
database_url = "sqlite://{}/aegis.db"
"#,
            dir.display()
        ),
    )
    .unwrap();
    let (_gateway, base) = common::start_binary(&config, &dir);

    let (status, body) = chat(&base, "Where is Nightingale now? And Kestrel, café?").await;
    assert_eq!(status, 200, "{body}");
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        answer.contains("Where is [CODENAME] now? And [CODENAME], café?"),
        "the model saw the sanitized prompt: {answer}"
    );
    assert!(!answer.contains("Nightingale"), "{answer}");

    let (status, body) = chat(&base, "what is the status of Project Blackbird?").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "forbidden_project", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`codenames`"),
        "{body}"
    );

    let (status, body) = chat(&base, "nothing to see here").await;
    assert_eq!(status, 200, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_provider_service_answers_through_the_shipped_binary() {
    let (_service, check_url) = python_service();
    let chat_url = check_url.replace("/check", "/chat");
    let dir = common::scratch_dir("http-provider");
    let config = dir.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[providers]]
id = "svc"
type = "http"
config = {{ url = "{chat_url}" }}

[[guardrails]]
id = "codenames"
type = "http"
config = {{ url = "{check_url}" }}

[server]
database_url = "sqlite://{}/aegis.db"
"#,
            dir.display()
        ),
    )
    .unwrap();
    let (_gateway, base) = common::start_binary(&config, &dir);
    let client = reqwest::Client::new();
    let ask = |stream: bool| {
        client
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "svc/any", "stream": stream,
                          "messages": [{"role": "user", "content": "Is Kestrel ready?"}]}))
            .send()
    };
    let resp = ask(false).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"], "service heard: Is [CODENAME] ready?",
        "the provider service saw the guarded prompt: {body}"
    );
    assert_eq!(body["usage"]["total_tokens"], 8, "{body}");
    // A streamed request is answered as one chunk, then [DONE].
    let text = ask(true).await.unwrap().text().await.unwrap();
    assert!(
        text.contains("service heard: Is [CODENAME] ready?"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A service at `/{behaviour}` that misbehaves that way.
async fn hostile_service() -> String {
    let app = axum::Router::new()
        .route(
            "/hang",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Json(json!({"decision": "allow"}))
            }),
        )
        .route(
            "/crash",
            post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Traceback ...") }),
        )
        .route("/garbage", post(|| async { "<html>not a verdict</html>" }))
        .route(
            "/redirect",
            post(|| async {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [("location", "http://127.0.0.1:9/elsewhere")],
                )
            }),
        )
        .route(
            "/flood",
            post(|| async { format!("{{\"decision\": \"allow\", \"pad\": \"{}\"}}", "x".repeat(17 << 20)) }),
        )
        .route(
            "/wrong-shape",
            post(|| async { Json(json!({"verdict": "ok"})) }),
        )
        .route(
            "/bad-edit",
            post(|| async {
                Json(json!({"decision": "sanitize",
                            "edits": [{"segment": 0, "start": 2, "end": 4000, "replacement": "x"}]}))
            }),
        )
        .route(
            "/check-protocol",
            post(|headers: axum::http::HeaderMap, Json(call): Json<Value>| async move {
                // The prompt on the way in, the echo's answer on the way out.
                let (origin, text) = match call["stage"].as_str() {
                    Some("input") => ("user", "hello"),
                    Some("output") => ("model", "echo: hello"),
                    _ => ("", ""),
                };
                let spoken = headers.get("aegis-protocol").is_some_and(|v| v == "aegis.guard.v1")
                    && call["protocol"] == "aegis.guard.v1"
                    && call["guard"] == "remote"
                    && call["segments"][0]["origin"] == origin
                    && call["segments"][0]["text"] == text
                    && call["context"]["run_id"].is_string()
                    && call["subject"]["kind"] == call["stage"];
                Json(if spoken {
                    json!({"decision": "allow"})
                } else {
                    json!({"decision": "block", "reason": format!("unexpected call: {call}"), "code": "bad_call"})
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn config(url: &str, fail_mode: &str) -> String {
    format!(
        r#"
[[providers]]
id = "echo"
type = "echo"

[[guardrails]]
id = "remote"
type = "http"
fail_mode = "{fail_mode}"
config = {{ url = "{url}", timeout_ms = 300 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_guard_service_fails_closed_or_open_as_configured() {
    let service = hostile_service().await;
    let addr = common::gateway(&config(&format!("{service}/check-protocol"), "closed")).await;
    let (status, body) = chat(&format!("http://{addr}"), "hello").await;
    assert_eq!(status, 200, "the call follows the protocol: {body}");

    for behaviour in [
        "hang",
        "crash",
        "garbage",
        "flood",
        "wrong-shape",
        "bad-edit",
    ] {
        let url = format!("{service}/{behaviour}");
        let closed = common::gateway(&config(&url, "closed")).await;
        let started = std::time::Instant::now();
        let (status, body) = chat(&format!("http://{closed}"), "hello there").await;
        assert_eq!(status, 400, "{behaviour}: {body}");
        assert_eq!(
            body["error"]["code"], "guard_unavailable",
            "{behaviour}: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{behaviour}: the deadline holds"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("127.0.0.1") && !message.contains("Traceback"),
            "{behaviour}: the service's address and error body stay out of the answer: {message}"
        );
        let open = common::gateway(&config(&url, "open")).await;
        let (status, body) = chat(&format!("http://{open}"), "hello there").await;
        assert_eq!(status, 200, "{behaviour} with fail_mode open: {body}");
    }
}
