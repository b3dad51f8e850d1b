//! `aegis_approvals_pending` counts the runs waiting in the store, not the pauses one process
//! happened to see: a gateway started after a run paused (a restart, another replica)
//! reports it, and a decision taken anywhere takes it off.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use aegis_gateway::server::Limits;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[providers]]
id = "echo"
type = "echo"

[routing]
default_provider = "echo"

[[guardrails]]
id = "ask"
type = "ban_substrings"
stages = ["input"]
config = { substrings = ["please hold"], action = "require_approval" }
"#;

/// `aegis_approvals_pending` on `port`'s `/metrics`, once it equals `want` (or what it was
/// when the wait ran out).
async fn pending_becomes(port: u16, want: f64) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = text
            .lines()
            .find(|l| l.starts_with("aegis_approvals_pending "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        if value == Some(want) || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_pending_counts_the_paused_runs_in_the_store() {
    let dir = std::env::temp_dir().join(format!("aegis-approvals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("aegis.db").display());
    let store = aegis_store::Store::connect(&url).await.unwrap();

    // A gateway without metrics pauses a run, and is gone.
    let before = common::gateway_on(&store, CONFIG, Limits::default(), vec![]).await;
    let before = common::serve(before).await;
    let paused: Value = reqwest::Client::new()
        .post(format!("http://{before}/v1/runs"))
        .json(&json!({"input": {"model": "echo", "messages": [{"role": "user", "content": "please hold"}]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = paused["id"].as_str().unwrap().to_owned();

    // The gateway started after it, with metrics on the same store, reports the waiting run.
    let port = common::free_port();
    let config = format!(
        "{CONFIG}\n[[telemetry]]\nid = \"prometheus\"\ntype = \"prometheus\"\nconfig = {{ listen = \"127.0.0.1:{port}\" }}\n"
    );
    let after = common::gateway_on(&store, &config, Limits::default(), vec![]).await;
    common::serve(after).await;
    assert_eq!(pending_becomes(port, 1.0).await, Some(1.0));

    // Decided through the first gateway, which this process's metrics never hear from.
    let resp = reqwest::Client::new()
        .post(format!("http://{before}/v1/runs/{run_id}/reject"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    assert_eq!(pending_becomes(port, 0.0).await, Some(0.0));
    std::fs::remove_dir_all(&dir).ok();
}
