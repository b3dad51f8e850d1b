//! Shared test helpers: every store test runs on SQLite and, when `AEGIS_TEST_DATABASE_URL`
//! is set, on PostgreSQL too, each Postgres store in its own fresh schema.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aegis_contracts::*;
use aegis_core::graph::{END, Graph, START, node_fn};
use aegis_store::{Store, StoreOptions};
use sea_orm::{ConnectionTrait, Database};
use serde::{Deserialize, Serialize};

pub const PG_ENV: &str = "AEGIS_TEST_DATABASE_URL";

/// A store under test and how to clean it up.
pub struct TestDb {
    pub name: &'static str,
    pub store: Store,
    pub url: String,
    pub schema: Option<String>,
}

impl TestDb {
    /// Another store (pool) on the same database, as a second process would open it.
    pub async fn reopen(&self) -> Store {
        let mut o = StoreOptions::new(self.url.clone());
        if let Some(s) = &self.schema {
            o = o.schema(s.clone());
        }
        Store::connect_with(o).await.unwrap()
    }

    /// Drops the Postgres schema (SQLite memory stores vanish on their own).
    pub async fn finish(self) {
        if let Some(schema) = self.schema {
            drop(self.store);
            let db = Database::connect(self.url.as_str()).await.unwrap();
            db.execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .unwrap();
        }
    }
}

/// A fresh Postgres schema, when the server is configured.
pub async fn pg_schema() -> Option<(String, String)> {
    let url = std::env::var(PG_ENV).ok().filter(|u| !u.is_empty())?;
    let schema = format!("aegis_t_{}", uuid::Uuid::now_v7().simple());
    let db = Database::connect(url.as_str()).await.unwrap();
    db.execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    Some((url, schema))
}

/// SQLite (in memory) always; PostgreSQL when configured.
pub async fn backends() -> Vec<TestDb> {
    let mut out = vec![TestDb {
        name: "sqlite",
        store: Store::connect("sqlite::memory:").await.unwrap(),
        url: "sqlite::memory:".into(),
        schema: None,
    }];
    if let Some((url, schema)) = pg_schema().await {
        let store = Store::connect_with(StoreOptions::new(url.clone()).schema(schema.clone()))
            .await
            .unwrap();
        out.push(TestDb {
            name: "postgres",
            store,
            url,
            schema: Some(schema),
        });
    }
    out
}

/// SQLite in a file (so several pools can share it) plus PostgreSQL when configured.
pub async fn shared_backends(dir: &std::path::Path) -> Vec<TestDb> {
    let url = format!("sqlite://{}", dir.join("aegis.db").display());
    let mut out = vec![TestDb {
        name: "sqlite-file",
        store: Store::connect(&url).await.unwrap(),
        url,
        schema: None,
    }];
    if let Some((url, schema)) = pg_schema().await {
        let store = Store::connect_with(StoreOptions::new(url.clone()).schema(schema.clone()))
            .await
            .unwrap();
        out.push(TestDb {
            name: "postgres",
            store,
            url,
            schema: Some(schema),
        });
    }
    out
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Doc {
    pub log: Vec<String>,
    pub amount: u32,
}

impl State for Doc {
    type Update = (String, u32);
    fn apply(&mut self, (entry, amount): (String, u32)) {
        self.log.push(entry);
        self.amount += amount;
    }
}

/// `plan` adds 100, `pay` asks for approval (edits: `{amount: integer}`) and counts its
/// side effects once approved.
pub fn approval_graph(
    store: Arc<dyn CheckpointStore>,
    side_effects: Arc<AtomicUsize>,
) -> Graph<Doc> {
    Graph::<Doc>::builder("payments")
        .node(
            "plan",
            node_fn(|_: NodeInput<Doc>| async { Ok(NodeOutput::Update(("plan".into(), 100))) }),
        )
        .node(
            "pay",
            node_fn(move |input: NodeInput<Doc>| {
                let side_effects = side_effects.clone();
                async move {
                    match input.ctx.resume {
                        None => Ok(NodeOutput::Interrupt(
                            InterruptRequest::new(
                                "large payment",
                                serde_json::json!({"amount": input.state.amount}),
                            )
                            .with_edit_schema(serde_json::json!({
                                "type": "object",
                                "required": ["amount"],
                                "properties": {"amount": {"type": "integer"}}
                            })),
                        )),
                        Some(Approval::Edit { value }) => {
                            side_effects.fetch_add(1, Ordering::SeqCst);
                            let amount = value["amount"].as_u64().unwrap() as u32;
                            Ok(NodeOutput::Update((format!("paid {amount}"), 0)))
                        }
                        Some(_) => {
                            side_effects.fetch_add(1, Ordering::SeqCst);
                            Ok(NodeOutput::Update((
                                format!("paid {}", input.state.amount),
                                0,
                            )))
                        }
                    }
                }
            }),
        )
        .edge(START, "plan")
        .edge("plan", "pay")
        .edge("pay", END)
        .checkpointer(store)
        .compile()
        .unwrap()
}
