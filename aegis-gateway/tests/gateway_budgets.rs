//! Budgets at the gateway: the database ledger (shared by replicas) admits a team's requests
//! while their worst case fits beside what was already spent (settled to the real usage),
//! then answers `429 budget_exceeded`, OpenAI-shaped.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use aegis::{BudgetLedger, PipelineSet, config::AegisConfig};
use aegis_gateway::server::{EventFeed, Gateway, Limits};
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
    let registry = aegis_gateway::bootstrap::registry_for(Some(&store))
        .await
        .unwrap();
    let cfg = AegisConfig::from_toml_str(CONFIG, std::iter::empty::<(&str, &str)>()).unwrap();
    let feed = EventFeed::default();
    let set = PipelineSet::from_config_with(
        &registry,
        &cfg,
        Some(Arc::new(store.clone())),
        vec![Arc::new(feed.clone())],
    )
    .await
    .unwrap();
    let addr = common::serve(Gateway::with_store(
        set,
        Limits::default(),
        feed,
        store.clone(),
    ))
    .await;

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
    let line = store
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
    let after = store
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
}
