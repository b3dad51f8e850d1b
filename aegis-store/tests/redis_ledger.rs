//! The Redis budget ledger against a real Redis (`AEGIS_TEST_REDIS_URL`, e.g.
//! `redis://127.0.0.1:6379`; the tests are skipped without it), reconciled with the store on
//! SQLite and on PostgreSQL: concurrent reservations through three connections never
//! overspend; settlements reach the store once, through the journal, in order with resets;
//! a Redis that lost its data is re-seeded from the store; expired holds are reaped and a
//! late settlement still charges; admin limits apply at once.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::*;
use aegis_store::{LineChange, RedisLedger, Store};

const REDIS_ENV: &str = "AEGIS_TEST_REDIS_URL";

fn redis_url() -> Option<String> {
    let url = std::env::var(REDIS_ENV).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("{REDIS_ENV} is not set: skipping the Redis ledger tests");
    }
    url
}

/// A ledger on its own key prefix (tests run concurrently on one Redis).
async fn ledger(url: &str, store: &Store, prefix: &str) -> RedisLedger {
    RedisLedger::connect_with_prefix(url, store.clone(), prefix)
        .await
        .unwrap()
}

fn fresh_prefix() -> String {
    format!("aegis-test:{{{}}}:", uuid::Uuid::now_v7().simple())
}

fn team_line(limit_tokens: u64) -> BudgetLine {
    BudgetLine::new("team:t", "total").with_limit(Spend::tokens(limit_tokens))
}

fn reservation(id: &str, tokens: u64) -> Reservation {
    Reservation::new(
        id,
        vec![
            team_line(100),
            BudgetLine::new("org:o", "month:2026-12").with_limit(Spend::usd_micros(50_000_000)),
        ],
        Spend::new(1_000, tokens),
        u64::MAX,
    )
}

async fn tokens(ledger: &RedisLedger, account: &str, period: &str) -> (u64, u64) {
    let b = ledger.balance(account, period).await.unwrap().unwrap();
    (b.spent.tokens, b.reserved.tokens)
}

async fn store_spent(store: &Store, account: &str, period: &str) -> u64 {
    store
        .balance(account, period)
        .await
        .unwrap()
        .map_or(0, |b| b.spent.tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_through_three_connections_never_overspend() {
    let Some(url) = redis_url() else { return };
    for db in common::backends().await {
        let prefix = fresh_prefix();
        let replicas = [
            ledger(&url, &db.store, &prefix).await,
            ledger(&url, &db.store, &prefix).await,
            ledger(&url, &db.store, &prefix).await,
        ];
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let ledger = replicas[i % 3].clone();
                tokio::spawn(async move {
                    match ledger.reserve(&reservation(&format!("run-{i}"), 7)).await {
                        Ok(()) => true,
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::BudgetExceeded, "{e}");
                            false
                        }
                    }
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            admitted += usize::from(t.await.unwrap());
        }
        assert_eq!(
            admitted, 14,
            "{}: 100 tokens hold 14 reservations of 7",
            db.name
        );
        assert_eq!(tokens(&replicas[0], "team:t", "total").await, (0, 98));
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_reach_the_store_once_and_in_order_with_resets() {
    let Some(url) = redis_url() else { return };
    for db in common::backends().await {
        let ledger = ledger(&url, &db.store, &fresh_prefix()).await;
        for i in 0..6 {
            ledger
                .reserve(&reservation(&format!("a{i}"), 10))
                .await
                .unwrap();
            ledger
                .settle(&format!("a{i}"), Spend::tokens(4))
                .await
                .unwrap();
            // A second settlement of the same run moves nothing.
            ledger
                .settle(&format!("a{i}"), Spend::tokens(4))
                .await
                .unwrap();
        }
        assert_eq!(
            store_spent(&db.store, "team:t", "total").await,
            0,
            "not flushed yet"
        );
        assert_eq!(ledger.journal_len().await.unwrap(), 6);
        // Reset between settlements: the store must zero the line at that point of the
        // journal, not after the settlements that follow it.
        ledger
            .change_budget("team:t", "total", LineChange::Reset, Some("root"))
            .await
            .unwrap();
        ledger.reserve(&reservation("b", 10)).await.unwrap();
        ledger.settle("b", Spend::tokens(5)).await.unwrap();
        assert_eq!(ledger.flush().await.unwrap(), 8);
        assert_eq!(ledger.journal_len().await.unwrap(), 0);
        assert_eq!(tokens(&ledger, "team:t", "total").await, (5, 0));
        assert_eq!(
            store_spent(&db.store, "team:t", "total").await,
            5,
            "{}",
            db.name
        );
        // The organisation's line was never reset: every settlement is on it.
        let org = db
            .store
            .balance("org:o", "month:2026-12")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(org.spent, Spend::tokens(6 * 4 + 5));
        assert_eq!(ledger.flush().await.unwrap(), 0, "nothing applied twice");
        assert_eq!(store_spent(&db.store, "team:t", "total").await, 5);
        // A run id reserved again after its settlement is charged again, in both.
        ledger.reserve(&reservation("b", 10)).await.unwrap();
        ledger.settle("b", Spend::tokens(2)).await.unwrap();
        ledger.flush().await.unwrap();
        assert_eq!(tokens(&ledger, "team:t", "total").await, (7, 0));
        assert_eq!(
            store_spent(&db.store, "team:t", "total").await,
            7,
            "{}",
            db.name
        );
        let audit = db.store.audit_records(None, 0, 1000).await.unwrap();
        assert!(
            audit
                .iter()
                .any(|r| r.kind == "budget.reset" && r.actor.as_deref() == Some("root")),
            "the reset is audited with who did it"
        );
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_the_store_cannot_apply_is_set_aside_not_blocking_the_rest() {
    let Some(url) = redis_url() else { return };
    for db in common::backends().await {
        let prefix = fresh_prefix();
        let ledger = ledger(&url, &db.store, &prefix).await;
        ledger.reserve(&reservation("a", 10)).await.unwrap();
        ledger.settle("a", Spend::tokens(6)).await.unwrap();
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        // Not an entry at all; and one PostgreSQL refuses (a NUL in the account).
        let nul =
            r#"{"id":"x:1","u":0,"t":1,"lines":[{"account":"key:a\u0000b","period":"total"}]}"#;
        for raw in ["{not an entry", nul] {
            let _: i64 = redis::cmd("RPUSH")
                .arg(format!("{prefix}journal"))
                .arg(raw)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        ledger.reserve(&reservation("b", 10)).await.unwrap();
        ledger.settle("b", Spend::tokens(4)).await.unwrap();
        assert_eq!(ledger.flush().await.unwrap(), 4);
        assert_eq!(
            store_spent(&db.store, "team:t", "total").await,
            10,
            "{}",
            db.name
        );
        let dead: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("{prefix}journal:dead"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let expected: &[&str] = if db.name == "postgres" {
            &["{not an entry", nul]
        } else {
            &["{not an entry"]
        };
        assert_eq!(dead, expected, "{}", db.name);
        // What the store could never keep is refused before it is admitted.
        let mut long = reservation("c", 1);
        long.lines[0].account = format!("key:{}", "x".repeat(2000));
        let err = ledger.reserve(&long).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_is_reseeded_from_the_store() {
    let Some(url) = redis_url() else { return };
    for db in common::backends().await {
        let prefix = fresh_prefix();
        let first = ledger(&url, &db.store, &prefix).await;
        first.reserve(&reservation("a", 90)).await.unwrap();
        first.settle("a", Spend::tokens(90)).await.unwrap();
        first.flush().await.unwrap();
        wipe(&url, &prefix).await;
        // Redis has forgotten the line; the store remembers 90 of 100 tokens spent.
        let second = ledger(&url, &db.store, &prefix).await;
        let err = second.reserve(&reservation("b", 11)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BudgetExceeded, "{}: {err}", db.name);
        assert_eq!(err.details().unwrap()["remaining_tokens"], 10);
        second.reserve(&reservation("c", 10)).await.unwrap();
        assert_eq!(tokens(&second, "team:t", "total").await, (90, 10));
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_reseeded_mid_flight_keeps_the_holds_taken_since() {
    let Some(url) = redis_url() else { return };
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let prefix = fresh_prefix();
    let ledger = ledger(&url, &store, &prefix).await;
    ledger.reserve(&reservation("before", 60)).await.unwrap();
    // The lines are evicted (the reservation survives); the next request re-seeds them.
    wipe(&url, &format!("{prefix}l:")).await;
    ledger.reserve(&reservation("after", 30)).await.unwrap();
    assert_eq!(tokens(&ledger, "team:t", "total").await, (0, 30));
    // The earlier run ends: its hold was never on the new line, so it takes none off it.
    ledger.settle("before", Spend::tokens(50)).await.unwrap();
    assert_eq!(tokens(&ledger, "team:t", "total").await, (50, 30));
    let err = ledger.reserve(&reservation("third", 30)).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::BudgetExceeded,
        "50 + 30 held + 30 > 100: {err}"
    );
}

/// Deletes every key under `prefix`, as a Redis restarted without persistence would.
async fn wipe(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for k in keys {
        let _: i64 = redis::cmd("DEL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_holds_are_reaped_and_a_late_settlement_still_charges() {
    let Some(url) = redis_url() else { return };
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let ledger = ledger(&url, &store, &fresh_prefix()).await;
    let mut expiring = reservation("crashed", 30);
    expiring.expires_at_ms = 1_000;
    ledger.reserve(&expiring).await.unwrap();
    ledger.reserve(&reservation("alive", 20)).await.unwrap();
    assert_eq!(tokens(&ledger, "team:t", "total").await, (0, 50));
    assert_eq!(ledger.reap(2_000).await.unwrap(), 1);
    assert_eq!(ledger.reap(2_000).await.unwrap(), 0, "reaped once");
    assert_eq!(tokens(&ledger, "team:t", "total").await, (0, 20));
    // The crashed replica's stream ends after all: it is charged, its hold not returned twice.
    ledger.settle("crashed", Spend::tokens(25)).await.unwrap();
    assert_eq!(tokens(&ledger, "team:t", "total").await, (25, 20));
    ledger.flush().await.unwrap();
    assert_eq!(store_spent(&store, "team:t", "total").await, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_limits_apply_at_once_and_clear_back_to_config() {
    let Some(url) = redis_url() else { return };
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let ledger = ledger(&url, &store, &fresh_prefix()).await;
    let missing = ledger
        .change_budget("team:t", "total", LineChange::Reset, None)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    ledger
        .set_limit("team:t", "total", Limit::new(None, Some(0)))
        .await
        .unwrap();
    let err = ledger.reserve(&reservation("a", 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded, "frozen: {err}");
    let b = ledger.balance("team:t", "total").await.unwrap().unwrap();
    assert!(b.limit_set_at_ms.is_some());
    assert_eq!(b.limit.tokens, Some(0));
    ledger.clear_limit("team:t", "total").await.unwrap();
    ledger.reserve(&reservation("a", 1)).await.unwrap();
    let b = ledger.balance("team:t", "total").await.unwrap().unwrap();
    assert_eq!((b.limit.tokens, b.limit_set_at_ms), (Some(100), None));
    let bad = ledger
        .set_limit("team:t", "total", Limit::new(None, Some(1 << 50)))
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_storage_error() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisLedger::connect(&format!("redis://:hunter2@127.0.0.1:{port}"), store)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
    assert!(err.to_string().contains("redis"), "{err}");
    assert!(
        !err.to_string().contains("hunter2"),
        "no password in errors: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_out_a_flusher_that_died_holding_the_lock() {
    let Some(url) = redis_url() else { return };
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let prefix = fresh_prefix();
    let ledger = ledger(&url, &store, &prefix).await;
    ledger.reserve(&reservation("a", 10)).await.unwrap();
    ledger.settle("a", Spend::tokens(6)).await.unwrap();
    // A flusher on a replica that was killed: its lock outlives it until the lease ends.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}flush-lock"))
        .arg("dead-replica")
        .arg("PX")
        .arg(400)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ledger.flush().await.unwrap(), 0, "the lock is not ours");
    let err = ledger
        .drain(std::time::Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1 entries"), "{err}");
    assert_eq!(
        ledger
            .drain(std::time::Duration::from_secs(5))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store_spent(&store, "team:t", "total").await, 6);
    // A stopped flusher finishes its flush and leaves no lock behind.
    ledger.reserve(&reservation("b", 10)).await.unwrap();
    ledger.settle("b", Spend::tokens(3)).await.unwrap();
    let flusher = ledger.spawn_flusher(std::time::Duration::from_millis(10));
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    flusher.stop().await;
    assert_eq!(store_spent(&store, "team:t", "total").await, 9);
    let lock: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}flush-lock"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(lock, None);
}
