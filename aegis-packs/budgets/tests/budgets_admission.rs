//! Admission never overspends: concurrent reservations against shared lines succeed exactly
//! as far as the limit allows, all lines or none; settling and releasing are idempotent;
//! expired reservations are reaped; bad limits are config errors with their paths.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aegis_budgets::{Budgets, BudgetsConfig, MemoryLedger, period_key};
use aegis_contracts::*;

fn lines(limit_team: u64, limit_key: u64) -> Vec<BudgetLine> {
    vec![
        BudgetLine::new("team:t", "total").with_limit(Spend::tokens(limit_team)),
        BudgetLine::new("key:k", "total").with_limit(Spend::tokens(limit_key)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_never_overspend_any_line() {
    let ledger = Arc::new(MemoryLedger::new());
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let r = Reservation::new(
                    format!("run-{i}"),
                    lines(100, 1000),
                    Spend::tokens(10),
                    u64::MAX,
                );
                ledger.reserve(&r).await.is_ok()
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 10, "the team line admits exactly ten");
    let team = ledger.balance("team:t", "total").await.unwrap().unwrap();
    let key = ledger.balance("key:k", "total").await.unwrap().unwrap();
    assert_eq!(team.reserved.tokens, 100);
    assert_eq!(
        key.reserved.tokens, 100,
        "a refused reservation holds nothing anywhere"
    );
}

#[tokio::test]
async fn settle_and_release_are_idempotent_and_reap_returns_expired_holds() {
    let ledger = MemoryLedger::new();
    ledger
        .reserve(&Reservation::new(
            "a",
            lines(100, 100),
            Spend::tokens(40),
            u64::MAX,
        ))
        .await
        .unwrap();
    ledger
        .reserve(&Reservation::new(
            "b",
            lines(100, 100),
            Spend::tokens(40),
            5,
        ))
        .await
        .unwrap();
    ledger.settle("a", Spend::tokens(7)).await.unwrap();
    ledger.settle("a", Spend::tokens(7)).await.unwrap();
    assert_eq!(ledger.reap(10).await.unwrap(), 1, "b's lease expired");
    let team = ledger.balance("team:t", "total").await.unwrap().unwrap();
    assert_eq!((team.spent.tokens, team.reserved.tokens), (7, 0));
    assert_eq!(team.remaining(), (None, Some(93)));
}

#[test]
fn negative_absurd_or_empty_limits_are_errors_with_their_paths() {
    let config: BudgetsConfig = serde_json::from_value(serde_json::json!({
        "teams": {"a": {"usd": -1.0}, "b": {"usd": 1e12}, "c": {}, "d": {"tokens": 0}},
        "prices": {"m": {"input_per_mtok": -2.0, "output_per_mtok": 1.0}},
    }))
    .unwrap();
    let err = Budgets::new(config, Arc::new(MemoryLedger::new())).unwrap_err();
    for needle in [
        "teams.a.usd: -1 is not a limit",
        "teams.b.usd: 1000000000000 is not a limit",
        "teams.c: give `usd` and/or `tokens`",
        "teams.d.tokens: must be at least 1",
        "prices.m.input_per_mtok: -2 is not a price",
    ] {
        assert!(err.message().contains(needle), "missing {needle:?}: {err}");
    }
}

#[test]
fn periods_are_utc_calendar_days_and_months() {
    // 2026-12-01T08:56:18Z
    let t = 1_796_115_378_000;
    assert_eq!(period_key(aegis_budgets::Period::Day, t), "day:2026-12-01");
    assert_eq!(period_key(aegis_budgets::Period::Month, t), "month:2026-12");
    assert_eq!(
        period_key(aegis_budgets::Period::Day, 951_782_400_000),
        "day:2000-02-29"
    );
}
