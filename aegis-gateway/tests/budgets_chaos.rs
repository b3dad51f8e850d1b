//! Budgets under chaos: three gateway processes on one database (PostgreSQL when
//! `AEGIS_TEST_DATABASE_URL` is set, else one SQLite file), 200 concurrent streaming
//! requests of one team against a loopback upstream that reports usage, a quarter of the
//! clients disconnecting after the first chunk, and one replica SIGKILLed mid-load.
//! Sampled throughout: spent + reserved never exceeds the limit. At the end: the team was
//! refused once its budget ran out, every completed stream was settled, and no reservation
//! outlives its lease (the survivors' reaper returns the killed replica's).
//!
//! Run twice: on the database ledger, and with the three replicas sharing a Redis ledger in
//! front of the database (`AEGIS_TEST_REDIS_URL`; skipped without it), where at the end the
//! database, once the journal is drained, holds exactly the spend Redis counted.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, start_binary};
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use aegis::BudgetLedger;
use axum::{body::Body, response::Response, routing::post};
use futures_util::StreamExt;
use serde_json::json;

const KEY: &str = "sk-chaos-research";
const LIMIT: u64 = 5_000;

/// A streaming OpenAI-compatible upstream: five chunks 10 ms apart, then usage
/// (10 prompt + 20 completion tokens).
async fn upstream() -> SocketAddr {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            let chunk = |c: &str| {
                format!(
                    "data: {}\n\n",
                    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": {"content": c}}]})
                )
            };
            let mut parts: Vec<String> = (0..5).map(|i| chunk(&format!("part{i} "))).collect();
            parts.push(format!(
                "data: {}\n\ndata: [DONE]\n\n",
                json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}})
            ));
            let body = futures_util::stream::iter(parts).then(|p| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<_, std::io::Error>(p)
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(body))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_never_overspend_and_leak_no_reservation_under_chaos() {
    chaos(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_a_redis_ledger_never_overspend_and_reconcile_with_the_store() {
    let Some(url) = std::env::var("AEGIS_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("AEGIS_TEST_REDIS_URL is not set: skipping the Redis ledger chaos test");
        return;
    };
    chaos(Some(url)).await;
}

/// The observed ledger: the database, or the Redis in front of it.
enum Observer {
    Store(aegis_store::Store),
    Redis(aegis_store::RedisLedger),
}

impl Observer {
    fn ledger(&self) -> &dyn BudgetLedger {
        match self {
            Observer::Store(s) => s,
            Observer::Redis(r) => r,
        }
    }
}

async fn chaos(redis: Option<String>) {
    let up = upstream().await;
    let dir = common::scratch_dir("chaos");
    let shared = common::SharedDb::new(&dir, "chaos").await;
    let db_url = shared.url.clone();
    let prefix = format!("aegis-chaos:{{{}-{}}}:", std::process::id(), free_port());
    let redis_lines = match &redis {
        Some(url) => format!(
            "budget_redis_url = \"{url}\"\nbudget_redis_prefix = \"{prefix}\"\nbudget_flush_interval_ms = 50"
        ),
        None => String::new(),
    };
    let config = dir.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[providers]]
id = "up"
type = "openai"
config = {{ base_url = "http://{up}/v1", models = ["m"] }}

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [ {{ key = "{KEY}", principal = "ada", team = "research" }} ] }}

[[policies]]
id = "budgets"
type = "budgets"
[policies.config]
teams = {{ research = {{ tokens = {LIMIT}, period = "total" }} }}
prices = {{ "m" = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }} }}
max_output_tokens = 50
lease_ms = 1500

[server]
database_url = "{db_url}"
budget_reap_interval_ms = 300
{redis_lines}
[server.limits]
max_concurrent_streams = 1000
"#
        ),
    )
    .unwrap();
    let mut replicas: Vec<Option<common::Server>> = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let (s, u) = start_binary(&config, &dir);
        replicas.push(Some(s));
        urls.push(u);
    }

    // The sampler: spent + reserved <= limit, always.
    let store = aegis_store::Store::connect(&db_url).await.unwrap();
    let observer = Arc::new(match &redis {
        Some(url) => Observer::Redis(
            aegis_store::RedisLedger::connect_with_prefix(url, store.clone(), &prefix)
                .await
                .unwrap(),
        ),
        None => Observer::Store(store.clone()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (observer, stop, worst) = (observer.clone(), stop.clone(), worst.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Some(b) = observer
                    .ledger()
                    .balance("team:research", "total")
                    .await
                    .unwrap()
                {
                    let used = b.spent.tokens + b.reserved.tokens;
                    worst.fetch_max(used as usize, Ordering::SeqCst);
                    samples += 1;
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            samples
        })
    };

    let client = reqwest::Client::new();
    let (completed, refused, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let url = urls[i % 3].clone();
            let (client, completed, refused, failed) = (
                client.clone(),
                completed.clone(),
                refused.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis((i as u64 % 40) * 5)).await;
                let sent = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(KEY)
                    .json(&json!({"model": "up/m", "stream": true,
                                  "messages": [{"role": "user", "content": "hello"}]}))
                    .send()
                    .await;
                let Ok(resp) = sent else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                if resp.status() == 429 {
                    refused.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let mut body = resp.bytes_stream();
                if i % 4 == 0 {
                    // Disconnect after the first chunk.
                    let _ = body.next().await;
                    return;
                }
                let mut text = String::new();
                while let Some(part) = body.next().await {
                    match part {
                        Ok(b) => text.push_str(&String::from_utf8_lossy(&b)),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
                if text.contains("[DONE]") && i % 3 != 2 {
                    completed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Mid-load, the third replica dies without a chance to settle anything.
    tokio::time::sleep(Duration::from_millis(120)).await;
    replicas[2].take();
    for t in tasks {
        t.await.unwrap();
    }

    // Past the lease and a reap interval of the survivors, no reservation is left.
    let deadline = Instant::now() + Duration::from_secs(15);
    let last = loop {
        let b = observer
            .ledger()
            .balance("team:research", "total")
            .await
            .unwrap()
            .unwrap();
        if b.reserved.tokens == 0 || Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await.unwrap();
    let (completed, refused) = (
        completed.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
    );
    eprintln!(
        "chaos: {completed} completed, {refused} refused, {} failed, {samples} samples, worst {} of {LIMIT}, final {last:?}",
        failed.load(Ordering::SeqCst),
        worst.load(Ordering::SeqCst)
    );
    assert!(
        samples > 10,
        "the ledger was sampled throughout ({samples})"
    );
    assert!(
        worst.load(Ordering::SeqCst) as u64 <= LIMIT,
        "spent + reserved exceeded the limit: {} > {LIMIT}",
        worst.load(Ordering::SeqCst)
    );
    assert_eq!(
        last.reserved.tokens, 0,
        "a reservation outlived its lease: {last:?}"
    );
    assert!(last.spent.tokens <= LIMIT, "{last:?}");
    assert!(refused > 0, "the budget ran out: {refused} refused");
    assert!(completed > 0, "some streams completed");
    assert!(
        last.spent.tokens >= 30 * completed as u64,
        "every completed stream on a surviving replica was settled to its usage: {} < 30 × {completed}",
        last.spent.tokens
    );
    if let Observer::Redis(r) = &*observer {
        // Reconciled: once the journal is drained, the database holds what Redis counted.
        // (A survivor may be flushing, or the killed replica may have died holding the
        // flush lock: its lease runs out.)
        r.drain(Duration::from_secs(15)).await.unwrap();
        let stored = store
            .balance("team:research", "total")
            .await
            .unwrap()
            .unwrap();
        let counted = r.balance("team:research", "total").await.unwrap().unwrap();
        assert_eq!(stored.spent, counted.spent, "the store and Redis agree");
    }
    drop(replicas);
    drop(observer);
    drop(store);
    shared.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
}
