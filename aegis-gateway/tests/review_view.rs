//! A reviewer sees what they decide on, and may change a held tool call before letting it
//! through: `GET /v1/runs/{id}` shows a paused run's pending subject and findings to the
//! approvers of its team only (not to its starter, not to other teams), and an edit of the
//! held tool calls is judged again by the whole chain — a safe edit completes, an edit
//! another guard blocks fails the run, a secret in an edit is redacted.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::start_binary;
use serde_json::{Value, json};

const DEV: &str = "sk-test-review-dev";
const REVIEWER: &str = "sk-test-review-approver";
const OTHER: &str = "sk-test-review-other-team";
/// An approver of the team who starts a run of their own.
const SAM: &str = "sk-test-review-approver-starter";
const SECRET: &str = "ghp_Zq8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE0uW";

fn config(db: &str) -> String {
    format!(
        r#"
[server]
database_url = "{db}"

[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [
    {{ key = "{DEV}", principal = "dev", team = "payments" }},
    {{ key = "{REVIEWER}", principal = "rita", team = "payments", roles = ["approver"] }},
    {{ key = "{OTHER}", principal = "olga", team = "search", roles = ["approver"] }},
    {{ key = "{SAM}", principal = "sam", team = "payments", roles = ["approver"] }},
] }}

[[guardrails]]
id = "secrets"
type = "secrets"
config = {{ action = "redact" }}

[[guardrails]]
id = "hold"
type = "ban_substrings"
stages = ["output"]
config = {{ substrings = ["HOLD-ME"], action = "require_approval" }}

[[guardrails]]
id = "ddl"
type = "ban_substrings"
stages = ["tool_call"]
config = {{ substrings = ["DROP TABLE"], action = "require_approval" }}

[[guardrails]]
id = "shell"
type = "ban_substrings"
stages = ["tool_call"]
config = {{ substrings = ["rm -rf"] }}
"#
    )
}

async fn call(
    key: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(key)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn start_run(base: &str, input: Value) -> String {
    start_run_as(base, DEV, input).await
}

async fn start_run_as(base: &str, key: &str, input: Value) -> String {
    let (status, run) = call(
        key,
        reqwest::Method::POST,
        format!("{base}/v1/runs"),
        Some(json!({"input": input})),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    assert!(
        run["interrupt"]["payload"]["subject"].is_null(),
        "the starter is not shown the held subject: {run}"
    );
    run["id"].as_str().unwrap().to_owned()
}

async fn get(base: &str, key: &str, id: &str) -> (u16, Value) {
    call(
        key,
        reqwest::Method::GET,
        format!("{base}/v1/runs/{id}"),
        None,
    )
    .await
}

fn sql_call(query: &str) -> Value {
    json!({
        "model": "echo",
        "tools": [{"type": "function", "function": {"name": "run_sql", "description": "Runs SQL",
                   "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "messages": [{"role": "user", "content": format!("/call run_sql {}", json!({"q": query}))}]
    })
}

async fn edit_calls(base: &str, id: &str, pending: &Value, query: &str) -> (u16, Value) {
    let call_id = pending["subject"]["tool_calls"][0]["id"].as_str().unwrap();
    let value = json!({"tool_calls": [{"id": call_id, "type": "function",
        "function": {"name": "run_sql", "arguments": json!({"q": query}).to_string()}}]});
    call(
        REVIEWER,
        reqwest::Method::POST,
        format!("{base}/v1/runs/{id}/edit"),
        Some(json!({"value": value})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_see_the_held_subject_and_edited_tool_calls_are_judged_again() {
    let dir = tempfile_dir();
    let cfg = dir.join("aegis.toml");
    let db = format!("sqlite://{}", dir.join("aegis.db").display());
    std::fs::write(&cfg, config(&db)).unwrap();
    let (_server, base) = start_binary(&cfg, &dir);

    // A held answer: the reviewer sees it with the findings; its starter and another team do not.
    let held = json!({"model": "echo", "messages": [{"role": "user", "content": format!("say HOLD-ME now {SECRET}")}]});
    let id = start_run(&base, held.clone()).await;
    let (_, own) = get(&base, DEV, &id).await;
    assert_eq!(own["status"], "paused");
    assert!(own["pending"].is_null() && own["output"].is_null(), "{own}");
    assert!(!own.to_string().contains("echo: say HOLD-ME"), "{own}");
    let (status, _) = get(&base, OTHER, &id).await;
    assert_eq!(status, 404, "another team's approver does not see the run");
    let (_, seen) = get(&base, REVIEWER, &id).await;
    let pending = &seen["pending"];
    assert_eq!(pending["stage"], "output", "{seen}");
    // As the guards left it: the secret an earlier guard redacted stays redacted.
    assert_eq!(
        pending["subject"]["content"], "echo: say HOLD-ME now [REDACTED:github_pat]",
        "{seen}"
    );
    assert_eq!(pending["findings"][0]["kind"], "banned_substring", "{seen}");
    assert!(!seen.to_string().contains(SECRET), "{seen}");
    // An approver who started the run does not review it (four eyes).
    let mine = start_run_as(&base, SAM, held).await;
    let (_, as_starter) = get(&base, SAM, &mine).await;
    assert!(as_starter["pending"].is_null(), "{as_starter}");
    assert!(
        as_starter["interrupt"]["payload"]["subject"].is_null(),
        "{as_starter}"
    );

    // A held tool call, edited into a safe one: judged again, and the run completes with it.
    let id = start_run(&base, sql_call("DROP TABLE users")).await;
    let (_, seen) = get(&base, REVIEWER, &id).await;
    let pending = seen["pending"].clone();
    let args = pending["subject"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert!(args.contains("DROP TABLE users"), "{seen}");
    let (status, done) = edit_calls(&base, &id, &pending, "SELECT count(*) FROM users").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    let call = &done["output"]["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(
        call["arguments"],
        json!({"q": "SELECT count(*) FROM users"}).to_string()
    );

    // An edit another guard blocks fails the run: the edit is not waved through.
    let id = start_run(&base, sql_call("DROP TABLE users")).await;
    let (_, seen) = get(&base, REVIEWER, &id).await;
    let (status, err) = edit_calls(&base, &id, &seen["pending"], "rm -rf /").await;
    assert_eq!(status, 400, "{err}");
    let (_, after) = get(&base, REVIEWER, &id).await;
    assert_eq!(after["status"], "blocked", "{after}");

    // A secret in an edit is redacted like any other.
    let id = start_run(&base, sql_call("DROP TABLE users")).await;
    let (_, seen) = get(&base, REVIEWER, &id).await;
    let (status, done) =
        edit_calls(&base, &id, &seen["pending"], &format!("SELECT '{SECRET}'")).await;
    assert_eq!(status, 200, "{done}");
    let text = done.to_string();
    assert!(
        !text.contains(SECRET) && text.contains("[REDACTED:"),
        "{done}"
    );

    // An edit that still asks for approval pauses again: approving the original does not
    // cover a changed call.
    let id = start_run(&base, sql_call("DROP TABLE users")).await;
    let (_, seen) = get(&base, REVIEWER, &id).await;
    let (status, again) = edit_calls(&base, &id, &seen["pending"], "DROP TABLE orders").await;
    assert_eq!(status, 202, "{again}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "aegis-review-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
