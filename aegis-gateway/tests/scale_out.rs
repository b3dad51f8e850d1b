//! Two `aegis` replicas on one database (PostgreSQL when `AEGIS_TEST_DATABASE_URL` is set,
//! else one SQLite file), as behind any load balancer: a run paused on one is approved on the
//! other and finishes, and a client following its events on the first hears that it ended;
//! a key revoked on one is refused there at once and by the other within
//! the virtual-key cache bound (`cache_ms`, 1 s by default).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use aegis::Principal;
use common::call;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_approvals_and_revocations() {
    let dir = std::env::temp_dir().join(format!(
        "aegis-scale-{}-{}",
        std::process::id(),
        common::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let db = common::SharedDb::new(&dir, "scale").await;
    let (admin, user) = {
        let store = aegis_store::Store::connect(&db.url).await.unwrap();
        let admin = store
            .create_key(aegis_store::NewKey::new(
                Principal::new("ops")
                    .with_team("research")
                    .with_role("admin")
                    .with_role("approver"),
            ))
            .await
            .unwrap();
        let user = store
            .create_key(aegis_store::NewKey::new(
                Principal::new("ada").with_team("research"),
            ))
            .await
            .unwrap();
        (admin, user)
    };
    let config = dir.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
database_url = "{url}"

[[providers]]
id = "echo"
type = "echo"

[routing]
default_provider = "echo"

[[authenticators]]
id = "keys"
type = "virtual_keys"

[[guardrails]]
id = "ask"
type = "ban_substrings"
stages = ["input"]
config = {{ substrings = ["wire transfer"], action = "require_approval" }}
"#,
            url = db.url
        ),
    )
    .unwrap();
    let (first, a) = common::start_binary(&config, &dir);
    let (second, b) = common::start_binary(&config, &dir);
    let (admin_key, user_key) = (admin.key.expose(), user.key.expose());

    // Paused on A…
    let (status, paused) = call(
        reqwest::Method::POST,
        format!("{a}/v1/runs"),
        user_key,
        Some(json!({"input": {"model": "echo", "messages": [{"role": "user", "content": "book the wire transfer"}]}})),
    )
    .await;
    assert_eq!(status, 202, "{paused}");
    let run_id = paused["id"].as_str().unwrap().to_owned();
    // A client follows the run's events on A…
    let feed = {
        let resp = reqwest::Client::new()
            .get(format!("{a}/v1/runs/{run_id}/events"))
            .bearer_auth(user_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        tokio::spawn(async move {
            let mut text = String::new();
            let mut body = resp.bytes_stream();
            while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut body).await {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
            text
        })
    };
    // …approved on B, where it finishes…
    let (status, approved) = call(
        reqwest::Method::POST,
        format!("{b}/v1/runs/{run_id}/approve"),
        admin_key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    // …and A sees it finished.
    let (status, run) = call(
        reqwest::Method::GET,
        format!("{a}/v1/runs/{run_id}"),
        user_key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["output"]["choices"][0]["message"]["content"],
        "echo: book the wire transfer"
    );

    // A's feed heard of the end from the store, and closed.
    let events = tokio::time::timeout(Duration::from_secs(10), feed)
        .await
        .expect("A's event feed never ended")
        .unwrap();
    assert!(
        events.contains("\"status\":\"completed\""),
        "A's feed: {events}"
    );

    // The user's key works on both (and is now in both caches).
    let chat = json!({"model": "echo", "messages": [{"role": "user", "content": "hello"}]});
    for base in [&a, &b] {
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{base}/v1/chat/completions"),
            user_key,
            Some(chat.clone()),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // Revoked on A: refused there at once, and by B within the bound.
    let (status, revoked) = call(
        reqwest::Method::POST,
        format!("{a}/v1/admin/keys/{}/revoke", user.info.id),
        admin_key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let revoked_at = Instant::now();
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{a}/v1/chat/completions"),
        user_key,
        Some(chat.clone()),
    )
    .await;
    assert_eq!(
        status, 401,
        "the replica that revoked the key still took it"
    );
    let refused_by_b = loop {
        let (status, _) = call(
            reqwest::Method::POST,
            format!("{b}/v1/chat/completions"),
            user_key,
            Some(chat.clone()),
        )
        .await;
        if status == 401 {
            break revoked_at.elapsed();
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "the other replica still takes a key revoked 5 s ago"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused_by_b <= Duration::from_millis(1500),
        "the other replica refused the revoked key only after {refused_by_b:?} (bound: 1 s)"
    );
    drop((first, second));
    db.finish().await;
    std::fs::remove_dir_all(&dir).ok();
}
