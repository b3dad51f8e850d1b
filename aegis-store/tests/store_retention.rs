//! Retention: `purge_runs` deletes the runs that ended before a cutoff with their
//! checkpoints, interrupts and decisions; paused and running runs stay whatever their age;
//! the audit log keeps its chain and records the purge. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use aegis_contracts::*;
use aegis_core::graph::RunOptions;
use common::{Doc, approval_graph, backends};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn ended_runs_before_the_cutoff_are_purged_and_paused_ones_stay() {
    for db in backends().await {
        let s = &db.store;
        let mut root = Principal::new("root");
        root.roles = vec!["admin".into()];
        s.upsert_principal(&root).await.unwrap();
        let g = approval_graph(Arc::new(s.clone()), Arc::default());
        // Anonymous runs, decided by an admin (nobody decides a run they started).
        let start = || {
            let g = g.clone();
            async move {
                g.invoke_with(Doc::default(), RunOptions::default())
                    .await
                    .unwrap()
                    .run_id
            }
        };
        let finished = start().await;
        s.resume(&g, &root, &finished, Approval::Approve)
            .await
            .unwrap();
        let rejected = start().await;
        s.resume(
            &g,
            &root,
            &rejected,
            Approval::Reject {
                reason: "no".into(),
            },
        )
        .await
        .unwrap();
        let paused = start().await;

        assert_eq!(
            s.purge_runs(0, "root").await.unwrap(),
            0,
            "{}: nothing that old",
            db.name
        );
        let head_before = s.verify_audit().await.unwrap().head_seq;
        let purged = s.purge_runs(now_ms() + 1_000, "root").await.unwrap();
        assert_eq!(purged, 2, "{}", db.name);

        for gone in [&finished, &rejected] {
            assert!(s.latest(gone).await.unwrap().is_none(), "{}", db.name);
            assert!(s.list(gone).await.unwrap().is_empty(), "{}", db.name);
            assert!(s.run_detail_unscoped(gone).await.is_err(), "{}", db.name);
        }
        let still = s.latest(&paused).await.unwrap().unwrap();
        assert_eq!(still.status, RunStatus::Paused, "{}", db.name);
        s.resume(&g, &root, &paused, Approval::Approve)
            .await
            .unwrap();

        let report = s.verify_audit().await.unwrap();
        assert!(
            report.is_valid(),
            "{}: the chain survives the purge",
            db.name
        );
        assert!(
            report.head_seq > head_before,
            "{}: the purge is audited",
            db.name
        );
        db.finish().await;
    }
}
