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

        // A run that outlived its lease (a long stream) is still charged when it ends, once,
        // without its returned hold being taken back twice.
        s.settle("b", Spend::tokens(30)).await.unwrap();
        s.settle("b", Spend::tokens(30)).await.unwrap();
        let team = s.balance("team:t", "total").await.unwrap().unwrap();
        assert_eq!(
            (team.spent.tokens, team.reserved.tokens),
            (37, 0),
            "{}: the late settlement is charged",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn an_admin_limit_overrides_the_configured_one_until_cleared_and_is_audited() {
    for db in common::backends().await {
        let s = &db.store;
        let line = || vec![BudgetLine::new("team:t", "total").with_limit(Spend::tokens(100))];
        let take = |id: &str, n: u64| Reservation::new(id, line(), Spend::tokens(n), u64::MAX);
        s.reserve(&take("a", 100)).await.unwrap();
        s.settle("a", Spend::tokens(100)).await.unwrap();
        let refused = s.reserve(&take("b", 10)).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::BudgetExceeded, "{}", db.name);

        // Raised: the configured limit the next reservation brings does not undo it.
        s.change_budget(
            "team:t",
            "total",
            aegis_store::LineChange::SetLimit(Limit::new(None, Some(150))),
            Some("root"),
        )
        .await
        .unwrap();
        s.reserve(&take("b", 40)).await.unwrap();
        s.settle("b", Spend::tokens(40)).await.unwrap();
        let b = s.balance("team:t", "total").await.unwrap().unwrap();
        assert_eq!(b.limit.tokens, Some(150), "{}", db.name);
        assert!(b.limit_set_at_ms.is_some());
        // More than the configured limit in one go fits under the raised one.
        s.clear_limit("team:t", "total").await.unwrap();
        s.set_limit("team:t", "total", Limit::new(None, Some(400)))
            .await
            .unwrap();
        s.reserve(&take("c", 200)).await.unwrap();
        s.release("c").await.unwrap();
        let over = s.reserve(&take("d", 300)).await.unwrap_err();
        assert_eq!(over.kind(), ErrorKind::BudgetExceeded, "{}", db.name);

        // Frozen: nothing fits.
        s.set_limit("team:t", "total", Limit::new(None, Some(0)))
            .await
            .unwrap();
        assert!(s.reserve(&take("e", 1)).await.is_err(), "{}", db.name);

        // Cleared: the configured limit is back at the next reservation (140 spent > 100).
        s.clear_limit("team:t", "total").await.unwrap();
        assert!(s.reserve(&take("f", 1)).await.is_err(), "{}", db.name);
        let b = s.balance("team:t", "total").await.unwrap().unwrap();
        assert_eq!(b.limit.tokens, Some(100), "{}", db.name);
        assert_eq!(b.limit_set_at_ms, None);
        assert_eq!(b.reserved.tokens, 0, "refusals hold nothing");

        // Bad input changes nothing.
        let none = s
            .set_limit("team:t", "total", Limit::new(None, None))
            .await
            .unwrap_err();
        assert_eq!(none.kind(), ErrorKind::InvalidRequest);
        let missing = s.clear_limit("team:nobody", "total").await.unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        assert!(s.balance("team:nobody", "total").await.unwrap().is_none());
        assert_eq!(s.balance("team:t", "total").await.unwrap().unwrap(), b);

        // Every change is in the audit log, with who made it when known.
        let kinds: Vec<(String, Option<String>)> = s
            .audit_records(None, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.kind.starts_with("budget."))
            .map(|r| (r.kind, r.actor))
            .collect();
        assert_eq!(
            kinds,
            [
                ("budget.limit_set".into(), Some("root".into())),
                ("budget.limit_cleared".into(), None),
                ("budget.limit_set".into(), None),
                ("budget.limit_set".into(), None),
                ("budget.limit_cleared".into(), None),
            ],
            "{}",
            db.name
        );

        // Setting one unit leaves the other's limit in force.
        s.set_limit("team:t", "total", Limit::new(Some(5_000_000), None))
            .await
            .unwrap();
        let b = s.balance("team:t", "total").await.unwrap().unwrap();
        assert_eq!(
            b.limit,
            Limit::new(Some(5_000_000), Some(100)),
            "{}",
            db.name
        );
        assert!(
            s.reserve(&take("g", 1)).await.is_err(),
            "the token cap still holds"
        );
    }
}

#[tokio::test]
async fn an_admin_change_to_a_line_no_policy_could_make_is_refused_and_stores_nothing() {
    for db in common::backends().await {
        let s = &db.store;
        let head = s.verify_audit().await.unwrap().head_seq;
        let set = aegis_store::LineChange::SetLimit(Limit::new(None, Some(10)));
        for (account, period) in [
            ("", "total"),
            ("team:", "total"),
            ("research", "total"),
            ("team:t\n", "total"),
            ("team:t", ""),
            ("team:t", "month:2026-1"),
            ("team:t", "day:2026-12"),
            ("team:t", "week:2026-49"),
        ] {
            let err = s
                .change_budget(account, period, set, Some("root"))
                .await
                .unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidRequest,
                "{account:?} {period:?}"
            );
            assert!(s.balance(account, period).await.unwrap().is_none());
        }
        assert_eq!(
            s.verify_audit().await.unwrap().head_seq,
            head,
            "{}: nothing audited",
            db.name
        );
        for (account, period) in [
            ("team:t", "total"),
            ("org:acme", "month:2026-12"),
            ("key:ada", "day:2026-12-01"),
        ] {
            s.change_budget(account, period, set, Some("root"))
                .await
                .unwrap();
        }
        db.finish().await;
    }
}
