//! The `CheckpointStore` contract on SQLite and PostgreSQL: the same semantics as the
//! kernel's `MemoryCheckpointStore`, and the graph engine's durable-run behaviour on top.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aegis_contracts::*;
use aegis_core::graph::{Durability, END, Graph, MemoryCheckpointStore, START, node_fn};
use common::{Doc, approval_graph, backends};
use serde_json::json;

fn cp(run: &str, version: u64, status: RunStatus) -> Checkpoint {
    let mut c = Checkpoint::new(
        run,
        version,
        "g",
        1,
        raw(json!({"v": version, "nested": {"b": [1, 2.5, "x"], "a": null}})),
        Some("n".into()),
        status,
        None,
    );
    c.at_ms = 1_700_000_000_000 + version;
    c
}

/// Runs one script of puts against a store and returns each outcome (error kind or ok).
async fn script(store: &dyn CheckpointStore, run: &str) -> Vec<Result<(), ErrorKind>> {
    let k = |r: Result<(), Error>| r.map_err(|e| e.kind());
    vec![
        k(store.put(&cp(run, 1, RunStatus::Running), None).await),
        // A second "new run" with the same id: conflict.
        k(store.put(&cp(run, 1, RunStatus::Running), None).await),
        // Stale expectation.
        k(store.put(&cp(run, 2, RunStatus::Running), Some(0)).await),
        // Expected version ahead of the store.
        k(store.put(&cp(run, 6, RunStatus::Running), Some(5)).await),
        // Right expectation but a version that does not follow: internal error.
        k(store.put(&cp(run, 3, RunStatus::Running), Some(1)).await),
        k(store.put(&cp(run, 2, RunStatus::Paused), Some(1)).await),
        k(store.put(&cp(run, 3, RunStatus::Completed), Some(2)).await),
        k(store.put(&cp(run, 3, RunStatus::Completed), Some(2)).await),
        // Unknown run with an expectation.
        k(store
            .put(&cp(&format!("{run}-other"), 2, RunStatus::Running), Some(1))
            .await),
    ]
}

#[tokio::test]
async fn put_outcomes_match_the_memory_store_exactly() {
    let memory = MemoryCheckpointStore::new();
    let expected = script(&memory, "r1").await;
    assert_eq!(
        expected,
        vec![
            Ok(()),
            Err(ErrorKind::Conflict),
            Err(ErrorKind::Conflict),
            Err(ErrorKind::Conflict),
            Err(ErrorKind::Internal),
            Ok(()),
            Ok(()),
            Err(ErrorKind::Conflict),
            Err(ErrorKind::Conflict),
        ]
    );
    for db in backends().await {
        let got = script(&db.store, "r1").await;
        assert_eq!(got, expected, "{}", db.name);
        let mem_list = memory.list("r1").await.unwrap();
        let db_list = db.store.list("r1").await.unwrap();
        assert_eq!(
            db_list, mem_list,
            "{}: the stored history is identical",
            db.name
        );
        assert_eq!(
            db.store.latest("r1").await.unwrap(),
            memory.latest("r1").await.unwrap(),
            "{}",
            db.name
        );
        assert_eq!(
            db.store.get("r1", 2).await.unwrap(),
            memory.get("r1", 2).await.unwrap()
        );
        assert_eq!(db.store.get("r1", 9).await.unwrap(), None);
        assert_eq!(db.store.latest("nope").await.unwrap(), None);
        assert!(db.store.list("nope").await.unwrap().is_empty());
        db.finish().await;
    }
}

#[tokio::test]
async fn every_checkpoint_field_round_trips() {
    for db in backends().await {
        let mut c = Checkpoint::new(
            "rt",
            1,
            "graph-name",
            7,
            raw(json!({"text": "héllo ✓", "big": u64::MAX, "neg": -3, "f": 0.1})),
            Some("pay".into()),
            RunStatus::Paused,
            Some(Interrupt {
                id: "int-1".into(),
                node: "pay".into(),
                request: InterruptRequest::new("why", json!({"amount": 5}))
                    .with_edit_schema(json!({"type": "object"})),
                claim: None,
            }),
        );
        c.principal = Some("alice".into());
        c.at_ms = 1_234;
        db.store.put(&c, None).await.unwrap();
        assert_eq!(
            db.store.latest("rt").await.unwrap().unwrap(),
            c,
            "{}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn a_conflict_error_names_the_current_version_and_run() {
    for db in backends().await {
        db.store
            .put(&cp("c", 1, RunStatus::Running), None)
            .await
            .unwrap();
        db.store
            .put(&cp("c", 2, RunStatus::Running), Some(1))
            .await
            .unwrap();
        let err = db
            .store
            .put(&cp("c", 2, RunStatus::Running), Some(1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(
            err.message().contains("run c is at version 2, not 1"),
            "{err}"
        );
        assert_eq!(err.run_id(), Some("c"));
        db.finish().await;
    }
}

#[tokio::test]
async fn interrupt_pauses_and_resume_reruns_the_node_with_the_decision() {
    for db in backends().await {
        let effects = Arc::new(AtomicUsize::new(0));
        let g = approval_graph(Arc::new(db.store.clone()), effects.clone());
        let out = g.invoke(Doc::default()).await.unwrap();
        assert_eq!(out.status, RunStatus::Paused);
        let cp = db.store.latest(&out.run_id).await.unwrap().unwrap();
        assert_eq!(
            (cp.status, cp.next.as_deref()),
            (RunStatus::Paused, Some("pay"))
        );
        assert_eq!(cp.interrupt.unwrap().request.payload["amount"], 100);
        assert_eq!(effects.load(Ordering::SeqCst), 0);
        let done = g.resume(&out.run_id, Approval::Approve).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed, "{}", db.name);
        assert_eq!(done.state.log, ["plan", "paid 100"]);
        assert_eq!(effects.load(Ordering::SeqCst), 1);
        db.finish().await;
    }
}

#[tokio::test]
async fn resume_works_on_a_graph_rebuilt_on_a_new_connection() {
    for db in backends().await {
        let run_id = {
            let g = approval_graph(Arc::new(db.store.clone()), Arc::default());
            g.invoke(Doc::default()).await.unwrap().run_id
        };
        if db.schema.is_none() {
            // In-memory SQLite cannot be reopened; the graph is still rebuilt from scratch.
            let g = approval_graph(Arc::new(db.store.clone()), Arc::default());
            let done = g
                .resume(
                    &run_id,
                    Approval::Edit {
                        value: json!({"amount": 40}),
                    },
                )
                .await
                .unwrap();
            assert_eq!(done.state.log, ["plan", "paid 40"]);
        } else {
            let other = db.reopen().await;
            let g = approval_graph(Arc::new(other), Arc::default());
            let done = g
                .resume(
                    &run_id,
                    Approval::Edit {
                        value: json!({"amount": 40}),
                    },
                )
                .await
                .unwrap();
            assert_eq!(done.state.log, ["plan", "paid 40"], "{}", db.name);
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn concurrent_resumes_of_one_run_let_exactly_one_win() {
    for db in backends().await {
        let effects = Arc::new(AtomicUsize::new(0));
        let g = approval_graph(Arc::new(db.store.clone()), effects.clone());
        let run_id = g.invoke(Doc::default()).await.unwrap().run_id;
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (g, id) = (g.clone(), run_id.clone());
                tokio::spawn(async move { g.resume(&id, Approval::Approve).await })
            })
            .collect();
        let (mut wins, mut conflicts) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(out) => {
                    assert_eq!(out.status, RunStatus::Completed);
                    wins += 1;
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Conflict, "{}: {e}", db.name);
                    conflicts += 1;
                }
            }
        }
        assert_eq!((wins, conflicts), (1, 7), "{}", db.name);
        assert_eq!(
            effects.load(Ordering::SeqCst),
            1,
            "the side effect ran once"
        );
        let history = db.store.list(&run_id).await.unwrap();
        let versions: Vec<u64> = history.iter().map(|c| c.version).collect();
        assert_eq!(versions, (1..=history.len() as u64).collect::<Vec<_>>());
        db.finish().await;
    }
}

#[tokio::test]
async fn concurrent_resumes_through_separate_pools_let_exactly_one_win() {
    let dir = tempfile::tempdir().unwrap();
    for db in common::shared_backends(dir.path()).await {
        let g = approval_graph(Arc::new(db.store.clone()), Arc::default());
        let run_id = g.invoke(Doc::default()).await.unwrap().run_id;
        let mut tasks = Vec::new();
        for _ in 0..4 {
            // Each contender has its own connection pool, as separate processes would.
            let g = approval_graph(Arc::new(db.reopen().await), Arc::default());
            let id = run_id.clone();
            tasks.push(tokio::spawn(async move {
                g.resume(&id, Approval::Approve).await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{}: {e}", db.name),
            }
        }
        assert_eq!(wins, 1, "{}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn bad_resumes_are_typed_errors_that_change_nothing() {
    for db in backends().await {
        let g = approval_graph(Arc::new(db.store.clone()), Arc::default());
        let err = g
            .resume("no-such-run", Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let run_id = g.invoke(Doc::default()).await.unwrap().run_id;
        let before = db.store.list(&run_id).await.unwrap();
        let audit_before = db.store.verify_audit().await.unwrap().head_seq;
        let err = g
            .resume(
                &run_id,
                Approval::Edit {
                    value: json!({"amount": "lots"}),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        assert_eq!(db.store.list(&run_id).await.unwrap(), before);
        assert_eq!(
            db.store.verify_audit().await.unwrap().head_seq,
            audit_before
        );
        g.resume(&run_id, Approval::Approve).await.unwrap();
        let err = g.resume(&run_id, Approval::Approve).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Conflict,
            "a completed run cannot be resumed"
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn reject_ends_the_run_without_running_the_node() {
    for db in backends().await {
        let effects = Arc::new(AtomicUsize::new(0));
        let g = approval_graph(Arc::new(db.store.clone()), effects.clone());
        let run_id = g.invoke(Doc::default()).await.unwrap().run_id;
        let out = g
            .resume(
                &run_id,
                Approval::Reject {
                    reason: "no".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Rejected);
        assert_eq!(effects.load(Ordering::SeqCst), 0);
        let run = db.store.run(&run_id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Rejected, "{}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_checkpoint_from_a_newer_schema_is_refused_clearly() {
    for db in backends().await {
        let g = approval_graph(Arc::new(db.store.clone()), Arc::default());
        let run_id = g.invoke(Doc::default()).await.unwrap().run_id;
        let mut cp = db.store.latest(&run_id).await.unwrap().unwrap();
        cp.schema_version = 99;
        cp.version += 1;
        db.store.put(&cp, Some(cp.version - 1)).await.unwrap();
        let err = g.resume(&run_id, Approval::Approve).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage);
        assert!(err.message().contains("schema v99"), "{err}");
        db.finish().await;
    }
}

#[tokio::test]
async fn durability_sync_checkpoints_after_every_node() {
    for db in backends().await {
        let step = |name: &'static str| {
            node_fn(
                move |_: NodeInput<Doc>| async move { Ok(NodeOutput::Update((name.to_owned(), 1))) },
            )
        };
        let g = Graph::<Doc>::builder("sync")
            .node("a", step("a"))
            .node("b", step("b"))
            .edge(START, "a")
            .edge("a", "b")
            .edge("b", END)
            .checkpointer(Arc::new(db.store.clone()))
            .durability(Durability::Sync)
            .compile()
            .unwrap();
        let out = g.invoke(Doc::default()).await.unwrap();
        let history = db.store.list(&out.run_id).await.unwrap();
        let seen: Vec<(u64, RunStatus, Option<&str>)> = history
            .iter()
            .map(|c| (c.version, c.status, c.next.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1, RunStatus::Running, Some("a")),
                (2, RunStatus::Running, Some("b")),
                (3, RunStatus::Completed, None)
            ],
            "{}",
            db.name
        );
        assert_eq!(history[2].state_value()["amount"], 2);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_runs_owner_is_set_once_from_the_checkpoint_or_the_authenticated_state() {
    for db in backends().await {
        let mut first = cp("own", 1, RunStatus::Running);
        first.principal = Some("alice".into());
        db.store.put(&first, None).await.unwrap();
        let mut second = cp("own", 2, RunStatus::Running);
        second.principal = Some("mallory".into());
        db.store.put(&second, Some(1)).await.unwrap();
        let run = db.store.run("own").await.unwrap().unwrap();
        assert_eq!(run.principal.as_deref(), Some("alice"), "{}", db.name);
        assert_eq!(
            db.store
                .get("own", 2)
                .await
                .unwrap()
                .unwrap()
                .principal
                .as_deref(),
            Some("mallory"),
            "the checkpoint itself is stored as given"
        );

        // A run that authenticates inside the graph: the owner comes from the state, once.
        db.store
            .put(&cp("late", 1, RunStatus::Running), None)
            .await
            .unwrap();
        assert_eq!(db.store.run("late").await.unwrap().unwrap().principal, None);
        let mut authed = cp("late", 2, RunStatus::Running);
        authed.state = raw(json!({"principal": {"id": "bob", "team": "ops"}}));
        db.store.put(&authed, Some(1)).await.unwrap();
        let run = db.store.run("late").await.unwrap().unwrap();
        assert_eq!(
            (run.principal.as_deref(), run.team.as_deref()),
            (Some("bob"), Some("ops")),
            "{}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_writers_all_succeed_with_complete_histories() {
    let dir = tempfile::tempdir().unwrap();
    for db in common::shared_backends(dir.path()).await {
        let other = db.reopen().await; // a second pool on the same database
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let s = if i % 2 == 0 {
                    db.store.clone()
                } else {
                    other.clone()
                };
                tokio::spawn(async move {
                    let run = format!("w{i}");
                    for v in 1..=10u64 {
                        let status = if v == 10 {
                            RunStatus::Completed
                        } else {
                            RunStatus::Running
                        };
                        s.put(&cp(&run, v, status), (v > 1).then_some(v - 1))
                            .await?;
                    }
                    Ok::<_, Error>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        for i in 0..32 {
            assert_eq!(
                db.store.list(&format!("w{i}")).await.unwrap().len(),
                10,
                "{}",
                db.name
            );
        }
        assert_eq!(db.store.count_runs(RunStatus::Completed).await.unwrap(), 32);
        assert!(db.store.verify_audit().await.unwrap().is_valid());
        db.finish().await;
    }
}

fn raw(v: serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&v).unwrap()
}
