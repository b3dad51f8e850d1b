//! The gateway keys its audit chain with `[server].audit_key` (a `secret://` reference):
//! `aegis audit verify` and `GET /v1/admin/audit/verify` report a valid keyed chain and,
//! after a row is rewritten in the database, the first broken link (exit code 2);
//! `aegis audit head` exports the head with its signature. A literal key is refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{free_port, start_binary};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

const KEY: &str = "sk-test-audit-admin";

fn cli(base: &str, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(args)
        .args(["--url", base, "--key", KEY])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_keys_its_audit_chain_and_reports_the_first_broken_link() {
    let dir = common::scratch_dir("audit");
    let key_file = dir.join("audit.key");
    std::fs::write(&key_file, "a-long-random-audit-key\n").unwrap();
    let db = dir.join("aegis.db");
    let config = |audit_key: &str| {
        format!(
            r#"
[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [ {{ key = "{KEY}", principal = "ops", roles = ["admin"] }} ] }}

[server]
database_url = "sqlite://{db}?mode=rwc"
audit_key = "{audit_key}"
"#,
            db = db.display()
        )
    };
    let config_path = dir.join("aegis.toml");

    // A literal key in the config is refused at start-up.
    std::fs::write(&config_path, config("not-a-reference")).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args([
            "serve",
            "--config",
            config_path.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("server.audit_key"), "{stderr}");
    assert!(
        !stderr.contains("not-a-reference"),
        "the value is not echoed: {stderr}"
    );

    std::fs::write(
        &config_path,
        config(&format!("secret://file/{}", key_file.display())),
    )
    .unwrap();
    let (server, base) = start_binary(&config_path, &dir);
    let client = reqwest::Client::new();
    for i in 0..3 {
        let r = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": "echo", "messages": [{"role": "user", "content": format!("hello {i}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The audit writer is asynchronous: wait until the records are there.
    let mut report = Value::Null;
    for _ in 0..50 {
        let (code, v) = cli(&base, &["audit", "verify"]);
        assert_eq!(code, 0, "{v}");
        report = v;
        if report["report"]["keyed"].as_u64().unwrap_or(0) >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["report"]["unkeyed"], 0, "{report}");
    assert!(report["report"]["keyed"].as_u64().unwrap() >= 3, "{report}");
    let (code, head) = cli(&base, &["audit", "head"]);
    assert_eq!(code, 0);
    assert!(
        head["head"]["signature"]
            .as_str()
            .is_some_and(|s| s.len() == 64),
        "{head}"
    );
    assert!(
        head["head"]["hash"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:"),
        "{head}"
    );

    // Someone with write access to the database rewrites a record.
    let conn = Database::connect(format!("sqlite://{}", db.display()).as_str())
        .await
        .unwrap();
    conn.execute_unprepared(r#"UPDATE aegis_audit_log SET actor = 'mallory' WHERE seq = 2"#)
        .await
        .unwrap();
    drop(conn);
    let (code, broken) = cli(&base, &["audit", "verify"]);
    assert_eq!(code, 2, "{broken}");
    assert_eq!(broken["valid"], false);
    assert_eq!(
        broken["first_problem"],
        json!({"problem": "altered", "seq": 2}),
        "{broken}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
