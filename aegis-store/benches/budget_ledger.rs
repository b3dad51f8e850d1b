#![allow(clippy::unwrap_used, missing_docs)]
//! Budget admission cost: one reserve (three lines: key, team, org) and its settle, per
//! request, offered open-loop at 500 requests per second for 10 seconds, on SQLite (a WAL
//! file) and, when `AEGIS_TEST_DATABASE_URL` is set, on PostgreSQL. Prints p50 / p99 / max of
//! the time each request spends in the ledger (reserve + settle), measured from the moment
//! it is issued — every request is issued on schedule whether or not earlier ones have
//! finished, so queueing behind a slow write counts. (Tokio's timer wakes the issuing loop
//! up to a millisecond late; that lateness belongs to the load generator and is reported
//! apart, as "issued late".)
//!
//! With `--features redis` and `AEGIS_TEST_REDIS_URL` set, the same load runs on the Redis
//! ledger in front of each store, its journal flushed into the store every 100 ms in the
//! background (as the gateway runs it); afterwards the store's spend is checked against
//! what was settled.
//!
//! `cargo bench -p aegis-store --features redis --bench budget_ledger`; `AEGIS_BENCH_RATE`
//! (requests per second) and `AEGIS_BENCH_SECONDS` change the offered load.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aegis_contracts::{BudgetLedger, BudgetLine, Reservation, Spend};
use aegis_store::Store;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lines(i: u64) -> Vec<BudgetLine> {
    vec![
        BudgetLine::new(format!("key:k{}", i % 50), "month:2026-12")
            .with_limit(Spend::tokens(u64::MAX / 4)),
        BudgetLine::new(format!("team:t{}", i % 5), "month:2026-12")
            .with_limit(Spend::tokens(u64::MAX / 4)),
        BudgetLine::new("org:acme", "month:2026-12").with_limit(Spend::tokens(u64::MAX / 4)),
    ]
}

async fn run(name: &str, store: Arc<dyn BudgetLedger>) {
    // Warm the pool (connections, prepared statements) outside the measurement.
    let t0 = Instant::now();
    for i in 0..200u64 {
        let id = format!("warm-{i}");
        store
            .reserve(&Reservation::new(
                id.clone(),
                lines(i),
                Spend::tokens(1),
                u64::MAX,
            ))
            .await
            .unwrap();
        store.settle(&id, Spend::tokens(1)).await.unwrap();
    }
    println!(
        "{name}: serial warm-up: {:.3} ms per reserve+settle",
        t0.elapsed().as_secs_f64() * 1000.0 / 200.0
    );
    let (rate, seconds) = (
        env_or("AEGIS_BENCH_RATE", 500).max(1),
        env_or("AEGIS_BENCH_SECONDS", 10).max(1),
    );
    let start = Instant::now();
    let n = rate * seconds;
    let mut tasks = Vec::with_capacity(n as usize);
    let mut late = Vec::with_capacity(n as usize);
    for i in 0..n {
        let scheduled = start + Duration::from_micros(i * 1_000_000 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let issued = Instant::now();
        late.push(issued - scheduled);
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("bench-run-{i}");
            store
                .reserve(&Reservation::new(
                    id.clone(),
                    lines(i),
                    Spend::tokens(100),
                    u64::MAX,
                ))
                .await
                .unwrap();
            store.settle(&id, Spend::tokens(60)).await.unwrap();
            issued.elapsed()
        }));
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(n as usize);
    for t in tasks {
        lat.push(t.await.unwrap());
    }
    let (lat, late) = (percentiles(lat), percentiles(late));
    println!(
        "{name}: {n} reserve+settle at {rate}/s: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms \
         (issued late: p50 {:.3} ms, p99 {:.3} ms)",
        lat[0], lat[1], lat[2], late[0], late[1]
    );
}

/// The same load on the Redis ledger (when configured), flushed into `store` every 100 ms;
/// then the store must hold exactly what was settled.
#[cfg(feature = "redis")]
async fn redis_in_front(name: &str, store: &Store) {
    let Some(url) = std::env::var("AEGIS_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return;
    };
    let prefix = format!("aegis-bench:{{{}}}:", uuid::Uuid::now_v7().simple());
    let ledger = aegis_store::RedisLedger::connect_with_prefix(&url, store.clone(), &prefix)
        .await
        .unwrap();
    let before = store
        .balance("org:acme", "month:2026-12")
        .await
        .unwrap()
        .map_or(0, |b| b.spent.tokens);
    let flusher = ledger.spawn_flusher(Duration::from_millis(100));
    run(name, Arc::new(ledger.clone())).await;
    flusher.stop().await;
    let left = ledger.journal_len().await.unwrap();
    ledger.drain(Duration::from_secs(10)).await.unwrap();
    let spent = store
        .balance("org:acme", "month:2026-12")
        .await
        .unwrap()
        .map_or(0, |b| b.spent.tokens);
    let in_redis = ledger
        .balance("org:acme", "month:2026-12")
        .await
        .unwrap()
        .map_or(0, |b| b.spent.tokens);
    println!(
        "{name}: journal entries waiting at the end: {left}; org line: {} tokens settled into the store this run, {in_redis} in redis (seeded with {before})",
        spent - before
    );
    assert_eq!(
        spent, in_redis,
        "the store and redis agree once the journal is drained"
    );
}

#[cfg(not(feature = "redis"))]
async fn redis_in_front(_: &str, _: &Store) {}

/// p50, p99 and max of `d`, in milliseconds.
fn percentiles(mut d: Vec<Duration>) -> [f64; 3] {
    d.sort_unstable();
    let at = |q: f64| d[((d.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    [at(0.5), at(0.99), at(1.0)]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        );
        let sqlite = Store::connect(&url).await.unwrap();
        // `AEGIS_BENCH_ONLY=redis` skips the database ledgers (profiling the Redis one).
        let redis_only = std::env::var("AEGIS_BENCH_ONLY").is_ok_and(|v| v == "redis");
        if !redis_only {
            run("sqlite (WAL file)", Arc::new(sqlite.clone())).await;
        }
        redis_in_front("redis in front of sqlite", &sqlite).await;
        if let Some(pg) = std::env::var("AEGIS_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            let schema = format!("aegis_bench_{}", std::process::id());
            let admin = sea_orm::Database::connect(pg.as_str()).await.unwrap();
            use sea_orm::ConnectionTrait;
            admin
                .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
                .await
                .unwrap();
            let store = Store::connect_with(
                aegis_store::StoreOptions::new(pg.clone()).schema(schema.clone()),
            )
            .await
            .unwrap();
            if !redis_only {
                run("postgresql (local server)", Arc::new(store.clone())).await;
            }
            redis_in_front("redis in front of postgresql", &store).await;
            admin
                .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
    });
}
