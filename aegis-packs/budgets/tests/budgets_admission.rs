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

#[tokio::test]
async fn an_admin_limit_overrides_the_configured_one_until_cleared() {
    let ledger = MemoryLedger::new();
    let team = || vec![BudgetLine::new("team:t", "total").with_limit(Spend::tokens(100))];
    let take = |id: &str, n: u64| Reservation::new(id, team(), Spend::tokens(n), u64::MAX);
    ledger.reserve(&take("a", 100)).await.unwrap();
    ledger.settle("a", Spend::tokens(100)).await.unwrap();
    assert!(ledger.reserve(&take("b", 10)).await.is_err());

    ledger
        .set_limit("team:t", "total", Limit::new(None, Some(300)))
        .await
        .unwrap();
    ledger.reserve(&take("b", 150)).await.unwrap();
    let b = ledger.balance("team:t", "total").await.unwrap().unwrap();
    assert_eq!(b.limit.tokens, Some(300));
    assert!(b.limit_set_at_ms.is_some());

    ledger.clear_limit("team:t", "total").await.unwrap();
    assert!(ledger.reserve(&take("c", 1)).await.is_err(), "back to 100");
    let none = ledger
        .set_limit("team:t", "total", Limit::new(None, None))
        .await
        .unwrap_err();
    assert_eq!(none.kind(), ErrorKind::InvalidRequest);
    assert_eq!(
        ledger
            .clear_limit("team:x", "total")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn input_is_reserved_at_its_real_token_count_not_a_byte_guess() {
    // 600 bytes of symbols are 600 tokens or close in o200k_base: a three-bytes-per-token
    // guess would have held 200.
    let soup: String = (0..600)
        .map(|i| char::from(b"q7Zx!@#kL9$%"[(i * 7) % 12]))
        .collect();
    let config: BudgetsConfig = serde_json::from_value(serde_json::json!({
        "teams": {"t": {"tokens": 1_000_000, "period": "total"}},
        "max_output_tokens": 1,
    }))
    .unwrap();
    let ledger = Arc::new(MemoryLedger::new());
    let budgets = Budgets::new(config, ledger.clone()).unwrap();
    let request = ChatRequest::new("gpt-4o", vec![Message::user(soup)]);
    let ctx = ContextView::new(
        "run-1",
        Some(Principal::new("ada").with_team("t")),
        Default::default(),
    );
    budgets
        .step(&StepInput::new(Position::BeforeCall, &request, &ctx))
        .await
        .unwrap();
    let held = ledger
        .balance("team:t", "total")
        .await
        .unwrap()
        .unwrap()
        .reserved;
    assert!(held.tokens > 400, "held {} tokens", held.tokens);
    // And English prose is not over-held by a third: about four bytes per token.
    let prose =
        "The quarterly report is attached; please review the figures before Friday. ".repeat(8);
    let request = ChatRequest::new("gpt-4o", vec![Message::user(prose.clone())]);
    let ctx = ContextView::new(
        "run-2",
        Some(Principal::new("ada").with_team("t")),
        Default::default(),
    );
    budgets
        .step(&StepInput::new(Position::BeforeCall, &request, &ctx))
        .await
        .unwrap();
    let second = ledger
        .balance("team:t", "total")
        .await
        .unwrap()
        .unwrap()
        .reserved
        .tokens
        - held.tokens;
    let third_of_bytes = prose.len() as u64 / 3;
    assert!(
        second < third_of_bytes,
        "{second} tokens held for {} bytes",
        prose.len()
    );
}

#[tokio::test]
async fn a_run_that_outlived_its_lease_is_still_charged_once_when_it_ends() {
    let ledger = MemoryLedger::new();
    let r = Reservation::new("long", lines(100, 1000), Spend::tokens(40), 5);
    ledger.reserve(&r).await.unwrap();
    assert_eq!(ledger.reap(10).await.unwrap(), 1);
    let team = ledger.balance("team:t", "total").await.unwrap().unwrap();
    assert_eq!(
        (team.spent.tokens, team.reserved.tokens),
        (0, 0),
        "hold returned"
    );
    ledger.settle("long", Spend::tokens(25)).await.unwrap();
    ledger.settle("long", Spend::tokens(25)).await.unwrap();
    let team = ledger.balance("team:t", "total").await.unwrap().unwrap();
    assert_eq!(
        (team.spent.tokens, team.reserved.tokens),
        (25, 0),
        "charged once"
    );
}
