//! Resumes cannot strand a run: a gateway process killed (SIGKILL) in the middle of a resumed
//! run leaves a claim whose lease expires; a second process sharing the database finishes the
//! run with the recorded decision, exactly once, and its answer is readable.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, start_binary};
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Json, routing::post};
use serde_json::{Value, json};

const KEY: &str = "sk-test-recovery-key";

/// An OpenAI-compatible upstream whose first call never answers (the process calling it is
/// killed meanwhile) and whose later calls answer at once.
async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let h = h.clone();
            async move {
                if h.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::future::pending::<()>().await;
                }
                Json(json!({
                    "id": "cmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "the transfer is booked"}}],
                    "usage": {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

/// A request as the test's key holder.
async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    common::call(method, url, KEY, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_killed_mid_run_is_finished_once_by_another_process() {
    let (up, hits) = upstream().await;
    let dir = std::env::temp_dir().join(format!(
        "aegis-recovery-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[pipeline]
durability = "exit"
resume_lease_ms = 1500

[[providers]]
id = "up"
type = "openai"
config = {{ base_url = "http://{up}/v1" }}

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [ {{ key = "{KEY}", principal = "ops", team = "ops", roles = ["admin"] }} ] }}

[[guardrails]]
id = "ask"
type = "ban_substrings"
config = {{ substrings = ["wire transfer"], action = "require_approval", stages = ["input"] }}

[server]
# One key plays every part here; separation of duties has its own test.
four_eyes = false
database_url = "sqlite://{db}?mode=rwc"
"#,
            db = dir.join("aegis.db").display()
        ),
    )
    .unwrap();

    let (first, a) = start_binary(&config, &dir);
    let (status, paused) = call(
        reqwest::Method::POST,
        format!("{a}/v1/runs"),
        Some(json!({"input": {"model": "up/m", "messages": [{"role": "user", "content": "book the wire transfer"}]}})),
    )
    .await;
    assert_eq!(status, 202, "{paused}");
    let run_id = paused["id"].as_str().unwrap().to_owned();

    // The approval starts the resumed run on process A, which hangs in the provider call…
    let approve = tokio::spawn(call(
        reqwest::Method::POST,
        format!("{a}/v1/runs/{run_id}/approve"),
        None,
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while hits.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the resume never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …and is killed there.
    drop(first);
    let _ = approve.await;

    let (_second, b) = start_binary(&config, &dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let (_, run) = call(reqwest::Method::GET, format!("{b}/v1/runs/{run_id}"), None).await;
        if run["status"] == "completed" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the stranded run was never finished: {run}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        run["output"]["choices"][0]["message"]["content"], "the transfer is booked",
        "{run}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "one lost call, one that finished"
    );

    // Exactly once: later sweeps leave the finished run alone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, again) = call(reqwest::Method::GET, format!("{b}/v1/runs/{run_id}"), None).await;
    assert_eq!(again["status"], "completed");
    assert_eq!(again["version"], run["version"]);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_paused_streaming_request_resumes_and_its_answer_is_kept_and_readable() {
    let addr = common::gateway(
        r#"
        [[providers]]
        id = "echo"
        type = "echo"

        [[guardrails]]
        id = "ask"
        type = "ban_substrings"
        config = { substrings = ["wire transfer"], action = "require_approval", stages = ["input"] }
        "#,
    )
    .await;

    let (status, paused) = call(
        reqwest::Method::POST,
        format!("http://{addr}/v1/chat/completions"),
        Some(json!({"model": "echo", "stream": true,
                    "messages": [{"role": "user", "content": "a wire transfer please"}]})),
    )
    .await;
    assert_eq!(status, 202, "{paused}");
    let run_id = paused["id"].as_str().unwrap();
    let (status, done) = call(
        reqwest::Method::POST,
        format!("http://{addr}/v1/runs/{run_id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        done["output"]["choices"][0]["message"]["content"],
        "echo: a wire transfer please"
    );
    let (_, run) = call(
        reqwest::Method::GET,
        format!("http://{addr}/v1/runs/{run_id}"),
        None,
    )
    .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["output"]["choices"][0]["message"]["content"],
        "echo: a wire transfer please"
    );
}
