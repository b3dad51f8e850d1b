//! Group commit on SQLite and PostgreSQL: concurrent checkpoint puts and audit appends share
//! transactions, every one of them is stored when its call returns, a failing write fails
//! alone, and callers that go away neither lose nor block anyone else's write.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::*;
use aegis_store::{AuditEntry, Store};
use common::{backends, shared_backends};
use futures_util::future::join_all;
use serde_json::json;

fn ended(run: &str, principal: &str) -> Checkpoint {
    let mut c = Checkpoint::new(
        run,
        1,
        "chat",
        1,
        raw(json!({"principal": {"id": principal, "team": "core"}, "n": run})),
        None,
        RunStatus::Completed,
        None,
    );
    c.principal = Some(principal.to_owned());
    c
}

fn raw(v: serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&v).unwrap()
}

async fn audit_count(store: &Store, kind: &str) -> usize {
    store
        .audit_records(None, 0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.kind == kind)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_transactions_and_every_one_is_stored_on_return() {
    let dir = tempfile::tempdir().unwrap();
    for db in shared_backends(dir.path()).await {
        let store = db.store.clone();
        let before = store.write_stats();
        let other = db.reopen().await;
        let puts = (0..200).map(|i| {
            let (store, other) = (store.clone(), other.clone());
            async move {
                let run = format!("run-{i}");
                store.put(&ended(&run, "ann"), None).await?;
                // Stored the moment the call returns: read through another pool at once.
                other.latest(&run).await
            }
        });
        let appends = (0..50).map(|i| {
            let store = store.clone();
            async move {
                store
                    .append_audit_batch(vec![
                        AuditEntry::new("test.note", json!({"i": i})),
                        AuditEntry::new("test.note", json!({"i": i, "second": true})),
                    ])
                    .await
            }
        });
        let (puts, appends) = tokio::join!(join_all(puts), join_all(appends));
        for read in &puts {
            let cp = read
                .as_ref()
                .unwrap()
                .as_ref()
                .expect("committed before put returned");
            assert_eq!(cp.status, RunStatus::Completed, "{}", db.name);
        }
        // Each append's records come back in order, linked to each other.
        for records in appends {
            let records = records.unwrap();
            assert_eq!(records.len(), 2, "{}", db.name);
            assert_eq!(records[1].seq, records[0].seq + 1);
            assert_eq!(records[1].prev_hash, records[0].hash);
        }
        let page = other
            .list_runs(
                &Principal::new("ann"),
                &aegis_store::RunQuery::default().limit(500),
            )
            .await
            .unwrap();
        assert_eq!(page.runs.len(), 200, "{}", db.name);
        assert_eq!(audit_count(&other, "run.transition").await, 200);
        assert_eq!(audit_count(&other, "test.note").await, 100);
        assert!(
            other.verify_audit().await.unwrap().is_valid(),
            "{}",
            db.name
        );

        let after = store.write_stats();
        let (writes, transactions) = (
            after.writes - before.writes,
            after.transactions - before.transactions,
        );
        assert_eq!(writes, 250, "{}", db.name);
        assert!(
            transactions * 10 <= writes,
            "{}: 250 concurrent writes took {transactions} transactions",
            db.name
        );
        assert_eq!(after.retried_alone, before.retried_alone, "{}", db.name);
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_write_fails_alone_and_the_rest_of_its_batch_commits() {
    for db in backends().await {
        let store = db.store.clone();
        store.put(&ended("taken", "ann"), None).await.unwrap();
        let records_before = store.audit_records(None, 0, 100_000).await.unwrap().len();
        // 60 new runs, 3 of them reusing an id that is already stored and 1 with a stale
        // version: all queued together.
        let writes = (0..64).map(|i| {
            let store = store.clone();
            async move {
                let outcome = match i {
                    10 | 20 | 30 => store.put(&ended("taken", "ann"), None).await,
                    40 => {
                        let mut cp = ended("taken", "ann");
                        cp.version = 5;
                        store.put(&cp, Some(4)).await
                    }
                    _ => store.put(&ended(&format!("new-{i}"), "bob"), None).await,
                };
                (i, outcome)
            }
        });
        for (i, outcome) in join_all(writes).await {
            match i {
                10 | 20 | 30 | 40 => assert_eq!(
                    outcome.map_err(|e| e.kind()),
                    Err(ErrorKind::Conflict),
                    "{}: write {i}",
                    db.name
                ),
                _ => assert!(outcome.is_ok(), "{}: write {i}: {outcome:?}", db.name),
            }
        }
        let stats = store.write_stats();
        assert!(stats.retried_alone > 0, "{}: {stats:?}", db.name);
        let bob = store
            .list_runs(
                &Principal::new("bob"),
                &aegis_store::RunQuery::default().limit(500),
            )
            .await
            .unwrap();
        assert_eq!(bob.runs.len(), 60, "{}", db.name);
        // The stored run is untouched, and the refused writes left no audit record.
        let taken = store.latest("taken").await.unwrap().unwrap();
        assert_eq!(taken.version, 1, "{}", db.name);
        let records = store.audit_records(None, 0, 100_000).await.unwrap();
        assert_eq!(records.len(), records_before + 60, "{}", db.name);
        assert!(
            store.verify_audit().await.unwrap().is_valid(),
            "{}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_go_away_block_nobody_and_leave_a_valid_log() {
    for db in backends().await {
        let store = db.store.clone();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.put(&ended(&format!("c-{i}"), "cy"), None).await })
            })
            .collect();
        // Every third caller goes away at once: its write is either committed whole or not
        // at all.
        for (i, task) in tasks.iter().enumerate() {
            if i % 3 == 0 {
                task.abort();
            }
        }
        let mut kept = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(outcome) => {
                    outcome.unwrap();
                    kept += 1;
                }
                Err(e) => assert!(e.is_cancelled() && i % 3 == 0, "{}: {e}", db.name),
            }
        }
        // Later writers are not blocked by the ones that went away.
        store.put(&ended("after", "dee"), None).await.unwrap();
        assert!(store.latest("after").await.unwrap().is_some());
        let runs = store
            .list_runs(
                &Principal::new("cy"),
                &aegis_store::RunQuery::default().limit(500),
            )
            .await
            .unwrap()
            .runs;
        // Every caller that stayed has its run; one that left has it whole or not at all.
        assert!(
            runs.len() >= kept,
            "{}: {} stored, {kept} kept",
            db.name,
            runs.len()
        );
        for run in &runs {
            // Whole: a run row always has its checkpoint and its transition record.
            assert!(store.latest(&run.run_id).await.unwrap().is_some());
        }
        assert_eq!(audit_count(&store, "run.transition").await, runs.len() + 1);
        assert!(
            store.verify_audit().await.unwrap().is_valid(),
            "{}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_run_put_that_collides_with_a_stored_run_is_a_conflict_whatever_it_carries() {
    for db in backends().await {
        let store = db.store.clone();
        store.put(&ended("held", "ann"), None).await.unwrap();
        let mut paused = ended("held", "ann");
        paused.status = RunStatus::Paused;
        paused.interrupt = Some(Interrupt {
            id: "i-1".into(),
            node: "pay".into(),
            request: InterruptRequest::new("check", json!({})),
            claim: None,
        });
        let mut later = ended("held", "ann");
        later.version = 2;
        // Queued together with a plain new run, and then alone.
        let fresh = ended("fresh", "ann");
        let (a, b, c) = tokio::join!(
            store.put(&paused, None),
            store.put(&later, None),
            store.put(&fresh, None),
        );
        for (what, outcome) in [("an interrupt", a), ("version 2", b)] {
            assert_eq!(
                outcome.map_err(|e| e.kind()),
                Err(ErrorKind::Conflict),
                "{}: {what}",
                db.name
            );
        }
        c.unwrap();
        let again = store.put(&paused, None).await.map_err(|e| e.kind());
        assert_eq!(again, Err(ErrorKind::Conflict), "{}", db.name);
        let held = store.latest("held").await.unwrap().unwrap();
        assert_eq!(held.status, RunStatus::Completed, "{}", db.name);
        db.finish().await;
    }
}
