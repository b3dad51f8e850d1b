//! The audit log survives a graceful shutdown under load, and in `required` mode it is a
//! gate: a request whose audit records cannot be stored fails closed, and no event is ever
//! dropped. The gateway is the real binary on SQLite.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{free_port, start_binary};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::json;

const KEY: &str = "sk-test-audit-durability";

fn config(db: &str, extra: &str) -> String {
    format!(
        r#"
[server]
database_url = "{db}"
{extra}

[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [ {{ key = "{KEY}", principal = "load", team = "ops" }} ] }}

[[guardrails]]
id = "secrets"
type = "secrets"
config = {{ action = "redact" }}
"#
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "aegis-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One chat completion; the run id when it completed (for a stream: when `[DONE]` came).
async fn chat(client: &reqwest::Client, base: &str, i: usize) -> Result<String, String> {
    let stream = i % 3 == 0;
    let body = json!({"model": "echo", "stream": stream,
                      "messages": [{"role": "user", "content": format!("request number {i}")}]});
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let run = resp
        .headers()
        .get("x-aegis-run-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.map_err(|e| e.to_string())?;
    let complete = status == 200 && (!stream || text.contains("[DONE]"));
    match run {
        Some(run) if complete => Ok(run),
        _ => Err(format!("{status} {text}")),
    }
}

async fn sqlite(path: &Path) -> DatabaseConnection {
    let db = Database::connect(format!("sqlite://{}?mode=rw", path.display()))
        .await
        .unwrap();
    db.execute_unprepared("PRAGMA busy_timeout = 10000")
        .await
        .unwrap();
    db
}

async fn audited_runs(db: &DatabaseConnection) -> BTreeSet<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT run_id FROM aegis_audit_log WHERE kind = 'event.audit' AND run_id IS NOT NULL",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "run_id").unwrap())
        .collect()
}

async fn count(db: &DatabaseConnection, kind: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM aegis_audit_log WHERE kind = '{kind}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// The audit chain of the database at `path` verifies end to end.
async fn assert_chain_valid(path: &Path) {
    let store = aegis_store::Store::connect(&format!("sqlite://{}?mode=rw", path.display()))
        .await
        .unwrap();
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_valid(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_leaves_every_completed_run_in_the_audit_log() {
    let dir = temp_dir("sigterm");
    let db_path = dir.join("aegis.db");
    let cfg = dir.join("aegis.toml");
    std::fs::write(
        &cfg,
        config(&format!("sqlite://{}?mode=rwc", db_path.display()), ""),
    )
    .unwrap();
    let (mut server, base) = start_binary(&cfg, &dir);
    let completed = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(6);
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, base, completed) = (client.clone(), base.clone(), completed.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < until {
                match chat(&client, &base, i).await {
                    Ok(run) => completed.lock().unwrap().push(run),
                    // Refused or cut off by the shutdown: not completed, nothing to check.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                i += 8;
            }
        }));
    }
    // Let the load build up, then ask the gateway to stop while requests are in flight.
    while completed.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = server.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = tokio::task::spawn_blocking(move || {
        let status = server.0.wait().unwrap();
        (server, status)
    })
    .await
    .unwrap();
    assert!(
        exit.1.success(),
        "a graceful shutdown exits 0: {:?}",
        exit.1
    );
    for w in workers {
        w.await.unwrap();
    }
    let completed = completed.lock().unwrap().clone();
    assert!(completed.len() >= 100, "{} completed", completed.len());
    let db = sqlite(&db_path).await;
    let audited = audited_runs(&db).await;
    let missing: Vec<&String> = completed.iter().filter(|r| !audited.contains(*r)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} completed runs have no audit record: {:?}",
        missing.len(),
        completed.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(count(&db, "audit.dropped").await, 0, "nothing was dropped");
    drop(db);
    assert_chain_valid(&db_path).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_audit_log_fails_requests_closed_and_drops_nothing() {
    let dir = temp_dir("required");
    let db_path = dir.join("aegis.db");
    let cfg = dir.join("aegis.toml");
    let extra = "audit = \"required\"\naudit_required_wait_ms = 500";
    std::fs::write(
        &cfg,
        config(&format!("sqlite://{}?mode=rwc", db_path.display()), extra),
    )
    .unwrap();
    let (server, base) = start_binary(&cfg, &dir);
    let client = reqwest::Client::new();
    let first = chat(&client, &base, 1)
        .await
        .expect("the log works: the request completes");

    // The audit table goes away: requests fail closed, streamed or not.
    let db = sqlite(&db_path).await;
    db.execute_unprepared("ALTER TABLE aegis_audit_log RENAME TO aegis_audit_log_away")
        .await
        .unwrap();
    for i in [2, 3] {
        let err = chat(&client, &base, i)
            .await
            .expect_err("no audit, no answer");
        assert!(err.contains("audit_unavailable"), "{err}");
    }

    // It comes back: requests complete again, and what was held is written, not dropped.
    db.execute_unprepared("ALTER TABLE aegis_audit_log_away RENAME TO aegis_audit_log")
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..50 {
        if let Ok(run) = chat(&client, &base, 4).await {
            last = Some(run);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = last.expect("the log is back: requests complete");
    drop(server);
    let audited = audited_runs(&db).await;
    assert!(
        audited.contains(&first) && audited.contains(&last),
        "{audited:?}"
    );
    // The two refused requests' runs were recorded once the table was back.
    let refused = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(DISTINCT run_id) AS n FROM aegis_audit_log WHERE kind = 'event.audit'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(refused, 4, "every run, refused or not, is in the log");
    assert_eq!(count(&db, "audit.dropped").await, 0, "nothing was dropped");
    drop(db);
    assert_chain_valid(&db_path).await;
    let _ = std::fs::remove_dir_all(&dir);
}
