//! Nothing is stored or returned that the guards have not passed. Secrets are planted in a
//! prompt an input guard blocks, in an answer an output guard blocks (complete and
//! streamed), in a paused prompt that is then rejected, and in a completed run's prompt that a
//! guard redacts. Afterwards none of them is in the SQLite files (database, WAL, shared
//! memory) or in any PostgreSQL table, nor in any runs API answer. The gateway is the real
//! binary with its default (`exit`) durability.
#![allow(clippy::unwrap_used)]

mod common;

use std::{path::Path, time::Duration};

use common::{free_port, start_binary};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

const KEY: &str = "sk-test-hygiene-key";
/// A deployment-wide admin (no team): purging takes one.
const ROOT: &str = "sk-test-hygiene-root";
const BLOCKED_IN: &str = "PLANTED-IN-7Q2X";
const BLOCKED_OUT: &str = "PLANTED-OUT-9Z4W";
const REJECTED: &str = "PLANTED-ASK-3X1K";
/// A GitHub token the secrets guard redacts from a completed run's prompt (and answer).
const REDACTED: &str = "ghp_Zq8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE0uW";

fn config(db_url: &str) -> String {
    format!(
        r#"
[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [ {{ key = "{KEY}", principal = "ops", team = "ops", roles = ["admin"] }},
    {{ key = "{ROOT}", principal = "root", roles = ["admin"] }} ] }}

[[guardrails]]
id = "in"
type = "ban_substrings"
stages = ["input"]
config = {{ substrings = ["{BLOCKED_IN}"] }}

[[guardrails]]
id = "ask"
type = "ban_substrings"
stages = ["input"]
config = {{ substrings = ["{REJECTED}"], action = "require_approval" }}

[[guardrails]]
id = "out"
type = "ban_substrings"
stages = ["output"]
config = {{ substrings = ["{BLOCKED_OUT}"] }}

[[guardrails]]
id = "secrets"
type = "secrets"
config = {{ action = "redact" }}

[server]
# One key plays every part here; separation of duties has its own test.
four_eyes = false
database_url = "{db_url}"
"#
    )
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, String) {
    call_as(KEY, method, url, body).await
}

async fn call_as(
    key: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(key)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn chat(text: &str, stream: bool) -> Value {
    json!({ "model": "echo", "stream": stream,
            "messages": [{ "role": "user", "content": text }] })
}

fn assert_clean(haystack: &str, place: &str) {
    for planted in [BLOCKED_IN, BLOCKED_OUT, REJECTED, REDACTED] {
        assert!(!haystack.contains(planted), "`{planted}` is in {place}");
    }
}

/// Drives the planted traffic through the gateway at `base`; returns every runs API answer.
async fn plant(base: &str) -> String {
    let post = reqwest::Method::POST;
    let url = |p: &str| format!("{base}{p}");
    let (status, _) = call(
        post.clone(),
        url("/v1/chat/completions"),
        Some(chat(&format!("say {BLOCKED_IN}"), false)),
    )
    .await;
    assert_eq!(status, 400, "the input guard blocks");
    let (status, _) = call(
        post.clone(),
        url("/v1/chat/completions"),
        Some(chat(&format!("say {BLOCKED_OUT}"), false)),
    )
    .await;
    assert_eq!(status, 400, "the output guard blocks");
    let (status, body) = call(
        post.clone(),
        url("/v1/chat/completions"),
        Some(chat(&format!("say {BLOCKED_OUT}"), true)),
    )
    .await;
    assert!(
        status == 200 && !body.contains("[DONE]"),
        "the stream is cut: {body}"
    );
    let (status, paused) = call(
        post.clone(),
        url("/v1/runs"),
        Some(json!({ "input": chat(&format!("do {REJECTED}"), false) })),
    )
    .await;
    assert_eq!(status, 202, "{paused}");
    let run: Value = serde_json::from_str(&paused).unwrap();
    let id = run["id"].as_str().unwrap();
    let (status, _) = call(post.clone(), url(&format!("/v1/runs/{id}/reject")), None).await;
    assert!(status < 300, "rejected");
    let (status, done) = call(
        post,
        url("/v1/chat/completions"),
        Some(chat(&format!("my token is {REDACTED}"), false)),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("[REDACTED:"), "{done}");
    assert_clean(&done, "a completed answer");

    let (_, list) = call(reqwest::Method::GET, url("/v1/runs?limit=100"), None).await;
    let runs: Value = serde_json::from_str(&list).unwrap();
    let mut answers = list.clone();
    for r in runs["runs"].as_array().or(runs["data"].as_array()).unwrap() {
        let id = r["id"].as_str().or(r["run_id"].as_str()).unwrap();
        let (_, one) = call(reqwest::Method::GET, url(&format!("/v1/runs/{id}")), None).await;
        answers.push_str(&one);
    }
    answers
}

fn files_text(dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            continue;
        }
        all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_are_not_in_the_sqlite_files_or_the_runs_api() {
    let dir = std::env::temp_dir().join(format!(
        "aegis-hygiene-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("aegis.toml");
    let db = format!("sqlite://{}?mode=rwc", dir.join("aegis.db").display());
    std::fs::write(&config_path, config(&db)).unwrap();
    let (server, base) = start_binary(&config_path, &dir);
    let answers = plant(&base).await;
    assert_clean(&answers, "the runs API");
    // Retention: a team's admin may not purge every team's runs; a deployment-wide one
    // purges what ended, and nothing is listed afterwards.
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{base}/v1/admin/runs/purge"),
        Some(json!({ "older_than": "0s" })),
    )
    .await;
    assert_eq!(status, 403);
    let (status, purged) = call_as(
        ROOT,
        reqwest::Method::POST,
        format!("{base}/v1/admin/runs/purge"),
        Some(json!({ "older_than": "0s" })),
    )
    .await;
    assert_eq!(status, 200, "{purged}");
    let purged: Value = serde_json::from_str(&purged).unwrap();
    assert!(purged["purged"].as_u64().unwrap() >= 5, "{purged}");
    let (_, list) = call(reqwest::Method::GET, format!("{base}/v1/runs"), None).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");
    let (status, _) = call_as(
        ROOT,
        reqwest::Method::POST,
        format!("{base}/v1/admin/runs/purge"),
        Some(json!({ "older_than": "a while" })),
    )
    .await;
    assert_eq!(status, 400, "a bad age is refused");
    // Killed, not shut down: whatever is in the WAL stays there.
    drop(server);
    let files = files_text(&dir);
    assert!(files.contains("SQLite format 3"), "the database is there");
    assert_clean(&files, "the SQLite files");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_are_not_in_any_postgres_table() {
    let Some(url) = std::env::var("AEGIS_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("AEGIS_TEST_DATABASE_URL is not set; PostgreSQL half skipped");
        return;
    };
    let name = format!("aegis_hygiene_{}", uuid_like());
    let admin = Database::connect(url.as_str()).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let db_url = match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("AEGIS_TEST_DATABASE_URL has no database name"),
    };
    let dir = std::env::temp_dir().join(format!(
        "aegis-hygiene-pg-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("aegis.toml");
    std::fs::write(&config_path, config(&db_url)).unwrap();
    let (server, base) = start_binary(&config_path, &dir);
    let answers = plant(&base).await;
    assert_clean(&answers, "the runs API");
    drop(server);

    let db = Database::connect(db_url.as_str()).await.unwrap();
    let tables = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
        ))
        .await
        .unwrap();
    assert!(tables.len() >= 5, "the store's tables exist");
    for row in tables {
        let table: String = row.try_get("", "t").unwrap();
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT row_to_json(x)::text AS j FROM {table} x"),
            ))
            .await
            .unwrap();
        let dump: String = rows
            .iter()
            .map(|r| r.try_get::<String>("", "j").unwrap())
            .collect();
        assert_clean(&dump, &table);
    }
    drop(db);
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn uuid_like() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
