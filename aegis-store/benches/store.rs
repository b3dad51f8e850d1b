//! Checkpoint write and run resume on SQLite (WAL file in a temp dir) and, when
//! `AEGIS_TEST_DATABASE_URL` is set, PostgreSQL. Targets (DESIGN §12): ≤ 1 ms per
//! checkpoint on SQLite WAL, resume ≤ 5 ms. Results: aegis-store/README.md.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aegis_contracts::{
    Approval, Checkpoint, CheckpointStore, InterruptRequest, NodeInput, NodeOutput, Principal,
    RunStatus, State,
};
use aegis_core::graph::{END, Graph, RunOptions, START, node_fn};
use aegis_store::{Store, StoreOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Doc {
    messages: Vec<String>,
    paid: bool,
}

impl State for Doc {
    type Update = bool;
    fn apply(&mut self, paid: bool) {
        self.paid = paid;
    }
}

fn graph(store: Store) -> Graph<Doc> {
    Graph::<Doc>::builder("bench")
        .node(
            "pay",
            node_fn(|input: NodeInput<Doc>| async move {
                Ok(match input.ctx.resume {
                    None => NodeOutput::Interrupt(InterruptRequest::new(
                        "approve",
                        serde_json::json!({"amount": 1}),
                    )),
                    Some(_) => NodeOutput::Update(true),
                })
            }),
        )
        .edge(START, "pay")
        .edge("pay", END)
        .checkpointer(Arc::new(store))
        .compile()
        .unwrap()
}

/// A state of about 1 KB, like a short chat exchange.
fn state() -> serde_json::Value {
    serde_json::json!({"messages": vec!["lorem ipsum dolor sit amet, consectetur adipiscing"; 18], "paid": false})
}

async fn stores(dir: &std::path::Path) -> Vec<(&'static str, Store, Option<(String, String)>)> {
    let mut out = vec![(
        "sqlite_wal",
        Store::connect(&format!("sqlite://{}", dir.join("bench.db").display()))
            .await
            .unwrap(),
        None,
    )];
    // synchronous=FULL: an fsync per commit, like PostgreSQL's default.
    out.push((
        "sqlite_wal_full",
        Store::connect_with(
            StoreOptions::new(format!("sqlite://{}", dir.join("bench-full.db").display()))
                .synchronous_full(true),
        )
        .await
        .unwrap(),
        None,
    ));
    if let Ok(url) = std::env::var("AEGIS_TEST_DATABASE_URL") {
        let schema = format!("aegis_bench_{}", uuid::Uuid::now_v7().simple());
        let admin = sea_orm::Database::connect(url.as_str()).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let store = Store::connect_with(StoreOptions::new(url.clone()).schema(schema.clone()))
            .await
            .unwrap();
        out.push(("postgres", store, Some((url, schema))));
    }
    out
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let all = rt.block_on(stores(dir.path()));

    let mut group = c.benchmark_group("checkpoint_write");
    for (name, store, _) in &all {
        // One long run; each iteration writes the next version (a node-level checkpoint of
        // a running run, as `Durability::Sync` does after every node).
        let run_id = aegis_core::graph::new_run_id();
        let version = Arc::new(AtomicU64::new(0));
        let value = state();
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                let (store, run_id, version, value) = (
                    store.clone(),
                    run_id.clone(),
                    version.clone(),
                    value.clone(),
                );
                async move {
                    let v = version.fetch_add(1, Ordering::SeqCst);
                    let cp = Checkpoint::new(
                        run_id,
                        v + 1,
                        "bench",
                        1,
                        serde_json::value::to_raw_value(&value).unwrap(),
                        Some("next".into()),
                        RunStatus::Running,
                        None,
                    );
                    store
                        .put(&cp, if v == 0 { None } else { Some(v) })
                        .await
                        .unwrap();
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("run_resume");
    for (name, store, _) in &all {
        let g = graph(store.clone());
        // Graph::resume: claim (paused → running), re-run the node, complete.
        group.bench_function(format!("{name}/graph"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let g = g.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let run = g.invoke(Doc::default()).await.unwrap();
                        let start = Instant::now();
                        let out = g.resume(&run.run_id, Approval::Approve).await.unwrap();
                        total += start.elapsed();
                        assert_eq!(out.status, RunStatus::Completed);
                    }
                    total
                }
            })
        });
        // Store::resume: + visibility check, decision record and its audit record.
        let alice = Principal::new("alice");
        group.bench_function(format!("{name}/store_with_decision"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (g, store, alice) = (g.clone(), store.clone(), alice.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let run = g
                            .invoke_with(Doc::default(), RunOptions::default().principal("alice"))
                            .await
                            .unwrap();
                        let start = Instant::now();
                        let out = store
                            .resume(&g, &alice, &run.run_id, Approval::Approve)
                            .await
                            .unwrap();
                        total += start.elapsed();
                        assert_eq!(out.status, RunStatus::Completed);
                    }
                    total
                }
            })
        });
    }
    group.finish();

    for (_, store, pg) in all {
        drop(store);
        if let Some((url, schema)) = pg {
            rt.block_on(async {
                let admin = sea_orm::Database::connect(url.as_str()).await.unwrap();
                admin
                    .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .unwrap();
            });
        }
    }
}

criterion_group! {
    name = store;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(store);
