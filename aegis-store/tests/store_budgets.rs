//! The database budget ledger, on SQLite and PostgreSQL: concurrent reservations from two
//! connection pools (two "replicas") never overspend any line; a refused reservation holds
//! nothing; settle is idempotent and moves holds to spend; the reaper returns expired holds.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::*;

fn lines(team: u64, key: u64) -> Vec<BudgetLine> {
    vec![
        BudgetLine::new("team:t", "total").with_limit(Spend::tokens(team)),
        BudgetLine::new("key:k", "month:2026-12").with_limit(Spend::new(1_000_000, key)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_from_two_replicas_never_overspend() {
    for db in common::backends().await {
        // Two pools on one PostgreSQL, as two replicas would open it (an in-memory SQLite
        // database exists once per pool, so SQLite shares its one store).
        let second = if db.schema.is_some() {
            db.reopen().await
        } else {
            db.store.clone()
        };
        let replicas = [db.store.clone(), second];
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let ledger = replicas[i % 2].clone();
                tokio::spawn(async move {
                    let r = Reservation::new(
                        format!("run-{i}"),
                        lines(100, 1000),
                        Spend::tokens(10),
                        u64::MAX,
                    );
                    match ledger.reserve(&r).await {
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
            admitted, 10,
            "{}: exactly what the team line allows",
            db.name
        );
        let team = db.store.balance("team:t", "total").await.unwrap().unwrap();
        let key = db
            .store
            .balance("key:k", "month:2026-12")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(team.reserved.tokens, 100, "{}", db.name);
        assert_eq!(
            key.reserved.tokens, 100,
            "{}: refused reservations hold nothing",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn settle_is_idempotent_and_reap_returns_expired_holds() {
    for db in common::backends().await {
        let s = &db.store;
        s.reserve(&Reservation::new(
            "a",
            lines(100, 100),
            Spend::tokens(40),
            u64::MAX,
        ))
        .await
        .unwrap();
        s.reserve(&Reservation::new(
            "b",
            lines(100, 100),
            Spend::tokens(40),
            5,
        ))
        .await
        .unwrap();
        let err = s
            .reserve(&Reservation::new(
                "c",
                lines(100, 100),
                Spend::tokens(40),
                u64::MAX,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "budget_exceeded");
        s.settle("a", Spend::new(12, 7)).await.unwrap();
        s.settle("a", Spend::new(12, 7)).await.unwrap();
        assert_eq!(s.reap(10).await.unwrap(), 1, "{}: b expired", db.name);
        assert_eq!(s.reap(10).await.unwrap(), 0);
        let team = s.balance("team:t", "total").await.unwrap().unwrap();
        assert_eq!(
            (team.spent.tokens, team.reserved.tokens),
            (7, 0),
            "{}",
            db.name
        );
        let key = s.balance("key:k", "month:2026-12").await.unwrap().unwrap();
        assert_eq!(key.spent.usd_micros, 12);
        assert_eq!(key.remaining(), (Some(999_988), Some(93)));
        db.finish().await;
    }
}
