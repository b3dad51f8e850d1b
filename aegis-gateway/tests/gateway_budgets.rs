//! Budgets at the gateway: the database ledger (shared by replicas) admits a team's requests
//! while their worst case fits beside what was already spent (settled to the real usage),
//! then answers `429 budget_exceeded`, OpenAI-shaped; admins see, reset and limit lines.
//! The same again with the Redis ledger in front of the database (`AEGIS_TEST_REDIS_URL`).
#![allow(clippy::unwrap_used)]

mod common;

use aegis::BudgetLedger;
use aegis_gateway::server::Limits;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "static_keys"
config = { keys = [
    { key = "sk-research-key", principal = "ada", team = "research" },
    { key = "sk-admin-key", principal = "root", roles = ["admin"] },
] }

[[policies]]
id = "budgets"
type = "budgets"
[policies.config]
teams = { research = { tokens = 115, period = "total" } }
prices = { "echo" = { input_per_mtok = 1.0, output_per_mtok = 2.0 } }
max_output_tokens = 100
"#;

#[tokio::test]
async fn a_team_over_its_budget_gets_an_openai_shaped_429() {
    let store = aegis_store::Store::connect("sqlite::memory:")
        .await
        .unwrap();
    let gw = common::gateway_on(&store, CONFIG, Limits::default(), Vec::new()).await;
    over_budget_and_admin(&store, &store, gw).await;
}

#[tokio::test]
async fn on_a_redis_ledger_a_team_over_its_budget_gets_an_openai_shaped_429() {
    let Some(url) = std::env::var("AEGIS_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("AEGIS_TEST_REDIS_URL is not set: skipping");
        return;
    };
    let store = aegis_store::Store::connect("sqlite::memory:")
        .await
        .unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("aegis-gw-test:{{{}-{nanos}}}:", std::process::id());
    let redis = aegis_store::RedisLedger::connect_with_prefix(&url, store.clone(), &prefix)
        .await
        .unwrap();
    let registry = aegis_gateway::bootstrap::registry_with(
        Some(&store),
        Some(std::sync::Arc::new(redis.clone())),
    )
    .await
    .unwrap();
    let cfg = aegis::config::AegisConfig::from_toml_str(CONFIG, std::iter::empty::<(&str, &str)>())
        .unwrap();
    let feed = aegis_gateway::server::EventFeed::default();
    let set = aegis::PipelineSet::from_config_with(
        &registry,
        &cfg,
        Some(std::sync::Arc::new(store.clone())),
        vec![std::sync::Arc::new(feed.clone())],
    )
    .await
    .unwrap();
    let gw =
        aegis_gateway::server::Gateway::with_store(set, Limits::default(), feed, store.clone())
            .with_budgets(std::sync::Arc::new(redis.clone()));
    over_budget_and_admin(&redis, &store, gw).await;
    // Reconciled: the database holds what Redis counted once the journal is applied.
    redis.flush().await.unwrap();
    let counted = redis
        .balance("team:research", "total")
        .await
        .unwrap()
        .unwrap();
    let stored = store
        .balance("team:research", "total")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counted.spent, stored.spent);
}

/// Spends a team's budget to a 429 through `gw`, then resets, freezes, raises and clears
/// its line as an admin; `ledger` is where the gateway keeps budgets, `store` its database.
async fn over_budget_and_admin(
    ledger: &dyn BudgetLedger,
    store: &aegis_store::Store,
    gw: std::sync::Arc<aegis_gateway::server::Gateway>,
) {
    let addr = common::serve(gw).await;

    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut last = Value::Null;
    let mut last_headers = reqwest::header::HeaderMap::new();
    for _ in 0..10 {
        let resp = client
            .post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth("sk-research-key")
            .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        last_headers = resp.headers().clone();
        last = resp.json().await.unwrap();
    }
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(statuses.contains(&429), "the budget runs out: {statuses:?}");
    assert_eq!(last["error"]["code"], "budget_exceeded", "{last}");
    assert_eq!(last["error"]["type"], "rate_limit_error", "{last}");
    assert_eq!(
        last["error"]["details"]["account"], "team:research",
        "{last}"
    );
    assert_eq!(last_headers["x-aegis-budget-account"], "team:research");
    assert_eq!(last_headers["x-aegis-budget-period"], "total");
    let left: u64 = last_headers["x-aegis-budget-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(last["error"]["details"]["remaining_tokens"], left, "{last}");
    assert!(left < 115, "some of the budget was spent: {left} left");
    let line = ledger
        .balance("team:research", "total")
        .await
        .unwrap()
        .unwrap();
    assert!(line.spent.tokens <= 115, "never overspent: {line:?}");
    assert_eq!(line.reserved.tokens, 0, "nothing left held");

    // Admins see the line and can reset it; others cannot.
    let show = |key: &'static str| {
        client
            .get(format!(
                "http://{addr}/v1/admin/budgets?account=team:research&period=total"
            ))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(show("sk-research-key").await.unwrap().status(), 403);
    let shown: Value = show("sk-admin-key").await.unwrap().json().await.unwrap();
    assert_eq!(shown["spent"]["tokens"], line.spent.tokens, "{shown}");
    assert_eq!(shown["limit"]["tokens"], 115);
    let reset = client
        .post(format!("http://{addr}/v1/admin/budgets/reset"))
        .bearer_auth("sk-admin-key")
        .json(&json!({"account": "team:research", "period": "total"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    let after = ledger
        .balance("team:research", "total")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.spent.tokens, 0);
    let missing = client
        .get(format!(
            "http://{addr}/v1/admin/budgets?account=team:nobody&period=total"
        ))
        .bearer_auth("sk-admin-key")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // An admin freezes the line, then raises it; each change is audited with who made it.
    let limit = |body: Value, key: &'static str| {
        client
            .post(format!("http://{addr}/v1/admin/budgets/limit"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let chat = || {
        client
            .post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth("sk-research-key")
            .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "hello"}]}))
            .send()
    };
    let line = json!({"account": "team:research", "period": "total"});
    let with = |extra: Value| {
        let mut b = line.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    assert_eq!(
        limit(with(json!({"tokens": 0})), "sk-research-key")
            .await
            .unwrap()
            .status(),
        403
    );
    let frozen: Value = limit(with(json!({"tokens": 0})), "sk-admin-key")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(frozen["limit"]["tokens"], 0, "{frozen}");
    assert_eq!(frozen["limit_source"], "admin", "{frozen}");
    assert_eq!(chat().await.unwrap().status(), 429, "frozen");
    let raised = limit(with(json!({"tokens": 100000})), "sk-admin-key")
        .await
        .unwrap();
    assert_eq!(raised.status(), 200);
    for _ in 0..12 {
        assert_eq!(
            chat().await.unwrap().status(),
            200,
            "raised past the config's 115"
        );
    }
    // Bad input is a 400 and changes nothing.
    for bad in [
        json!({}),
        json!({"usd": -1.0}),
        json!({"clear": true, "tokens": 5}),
    ] {
        let resp = limit(with(bad.clone()), "sk-admin-key").await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    let b = ledger
        .balance("team:research", "total")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.limit.tokens, Some(100000));
    let cleared: Value = limit(with(json!({"clear": true})), "sk-admin-key")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["limit_source"], "config", "{cleared}");
    assert_eq!(
        chat().await.unwrap().status(),
        429,
        "back to the config's 115"
    );
    // The CLI sets a limit the same way.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_aegis"))
            .args(["budgets", "set", "team:research", "total", "--tokens", "7"])
            .args(["--url", &format!("http://{addr}"), "--key", "sk-admin-key"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["limit"]["tokens"], 7, "{shown}");
    let audited: Vec<(String, Option<String>)> = store
        .audit_records(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind.starts_with("budget."))
        .map(|r| (r.kind, r.actor))
        .collect();
    let root = Some("root".to_owned());
    assert_eq!(
        audited,
        [
            ("budget.reset".to_owned(), root.clone()),
            ("budget.limit_set".to_owned(), root.clone()),
            ("budget.limit_set".to_owned(), root.clone()),
            ("budget.limit_cleared".to_owned(), root.clone()),
            ("budget.limit_set".to_owned(), root),
        ]
    );
}

#[tokio::test]
async fn a_replica_on_the_database_ledger_refuses_to_start_beside_replicas_on_redis() {
    let dir = common::scratch_dir("mixed-fleet");
    let db_url = format!("sqlite://{}/aegis.db?mode=rwc", dir.display());
    let store = aegis_store::Store::connect(&db_url).await.unwrap();
    // What a replica with budget_redis_url records when it connects.
    store
        .set_setting(
            aegis_store::BUDGET_LEDGER_SETTING,
            Some("redis:aegis:{budget}:"),
        )
        .await
        .unwrap();
    drop(store);
    let config = dir.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            "{CONFIG}\n[server]\ndatabase_url = \"{db_url}\"\nlisten = \"127.0.0.1:{}\"\n",
            common::free_port()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_aegis"))
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("counted in Redis") && stderr.contains("budget_redis_url"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
