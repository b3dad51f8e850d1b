//! Named pipelines: one gateway serves several pipelines — each its own guards and default
//! model — selected per route, by the key's `pipeline` label, or by `POST /v1/runs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use aegis::{PipelineSet, config::AegisConfig};
use common::gateway;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "static_keys"
config = { keys = [
    { key = "sk-main-key", principal = "ada", roles = ["admin"] },
    { key = "sk-support-key", principal = "bob", labels = { pipeline = "support" } },
] }

[[guardrails]]
id = "no-nightingale"
type = "ban_substrings"
config = { substrings = ["nightingale"] }

[[guardrails]]
id = "no-zebra"
type = "ban_substrings"
config = { substrings = ["zebra"] }

[[pipelines]]
name = "support"
guardrails = ["no-zebra"]
default_model = "echo"
"#;

async fn post(addr: SocketAddr, path: &str, key: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

fn ask(text: &str) -> Value {
    json!({"model": "echo", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn each_pipeline_runs_its_own_guards_selected_by_route() {
    let gw = gateway(CONFIG).await;
    let (status, _) = post(
        gw,
        "/v1/chat/completions",
        "sk-main-key",
        ask("nightingale"),
    )
    .await;
    assert_eq!(status, 400, "the main pipeline bans nightingale");
    let (status, body) = post(
        gw,
        "/v1/pipelines/support/chat/completions",
        "sk-main-key",
        ask("nightingale"),
    )
    .await;
    assert_eq!(status, 200, "support does not: {body}");
    let (status, _) = post(
        gw,
        "/v1/pipelines/support/chat/completions",
        "sk-main-key",
        ask("a zebra"),
    )
    .await;
    assert_eq!(status, 400, "support bans zebras");
    let (status, body) = post(
        gw,
        "/v1/pipelines/nope/chat/completions",
        "sk-main-key",
        ask("hi"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("pipeline_not_found"))
    );
}

#[tokio::test]
async fn a_key_pinned_to_a_pipeline_uses_it_and_cannot_leave_it() {
    let gw = gateway(CONFIG).await;
    let (status, body) = post(
        gw,
        "/v1/chat/completions",
        "sk-support-key",
        ask("nightingale"),
    )
    .await;
    assert_eq!(status, 200, "the key's pipeline is support: {body}");
    let (status, _) = post(gw, "/v1/chat/completions", "sk-support-key", ask("zebra")).await;
    assert_eq!(status, 400);
    let (status, body) = post(
        gw,
        "/v1/pipelines/default/chat/completions",
        "sk-support-key",
        ask("hi"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn the_default_model_applies_and_runs_name_their_pipeline() {
    let gw = gateway(CONFIG).await;
    let (status, body) = post(
        gw,
        "/v1/pipelines/support/chat/completions",
        "sk-main-key",
        json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hi");

    let (status, body) = post(
        gw,
        "/v1/runs",
        "sk-main-key",
        json!({"graph": "support", "input": ask("nightingale")}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(
        gw,
        "/v1/runs",
        "sk-main-key",
        json!({"graph": "default", "input": ask("nightingale")}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_named_pipeline_with_an_unknown_guard_is_a_config_error_with_its_path() {
    let bad = CONFIG.replace(
        r#"guardrails = ["no-zebra"]"#,
        r#"guardrails = ["no-zebra", "ghost"]"#,
    );
    let cfg = AegisConfig::from_toml_str(&bad, std::iter::empty::<(&str, &str)>()).unwrap();
    let err = PipelineSet::from_config_with(
        &aegis_gateway::static_keys::registry(),
        &cfg,
        None,
        Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.message()
            .contains("pipelines[0].guardrails[1]: no guardrail has id `ghost`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_named_pipeline_keeps_every_policy_unless_it_lists_its_own() {
    let config = r#"
[[providers]]
id = "echo"
type = "echo"

[[policies]]
id = "budgets"
type = "budgets"
[policies.config]
default_key = { tokens = 1, period = "total" }
prices = { "echo" = { input_per_mtok = 1.0, output_per_mtok = 1.0 } }

[[authenticators]]
id = "keys"
type = "static_keys"
config = { keys = [{ key = "sk-main-key", principal = "ada" }] }

[[pipelines]]
name = "inherits"

[[pipelines]]
name = "opts-out"
policies = []
"#;
    let gw = gateway(config).await;
    let (status, body) = post(
        gw,
        "/v1/pipelines/inherits/chat/completions",
        "sk-main-key",
        ask("hi"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("budget_exceeded")),
        "{body}"
    );
    let (status, body) = post(
        gw,
        "/v1/pipelines/opts-out/chat/completions",
        "sk-main-key",
        ask("hi"),
    )
    .await;
    assert_eq!(
        status, 200,
        "an explicit empty list is the config's choice: {body}"
    );
}
