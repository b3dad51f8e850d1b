//! The audit log: a hash chain that `verify_audit` proves intact, and that reports altered
//! and deleted records; concurrent appends keep one chain; the telemetry writer records run
//! events without content.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use aegis_contracts::*;
use aegis_core::{Telemetry, graph::RunOptions};
use aegis_store::{AuditEntry, AuditProblem, AuditWriter, AuditWriterConfig, Store, StoreOptions};
use common::{Doc, approval_graph, backends};
use sea_orm::ConnectionTrait;
use serde_json::json;

async fn fill(store: &Store, n: usize) {
    for i in 0..n {
        store
            .append_audit(
                AuditEntry::new(
                "test.entry",
                json!({"i": i, "f": 0.1 * i as f64, "score": 0.9f32, "tiny": 1e-300, "big": u64::MAX}),
            )
            .run("r"),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_untouched_chain_verifies_and_links_each_record_to_the_last() {
    for db in backends().await {
        fill(&db.store, 5).await;
        let report = db.store.verify_audit().await.unwrap();
        assert!(report.is_valid(), "{}: {report:?}", db.name);
        assert_eq!((report.checked, report.head_seq), (5, 5));
        let records = db.store.audit_records(None, 0, 10).await.unwrap();
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(records[0].prev_hash, aegis_store::audit::GENESIS);
        for w in records.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash);
        }
        assert_eq!(report.head_hash, records[4].hash);
        db.finish().await;
    }
}

#[tokio::test]
async fn verify_reports_an_altered_record() {
    for db in backends().await {
        fill(&db.store, 5).await;
        db.store
            .connection()
            .execute_unprepared(
                r#"UPDATE aegis_audit_log SET data = '{"f":0.1,"i":99}' WHERE seq = 3"#,
            )
            .await
            .unwrap();
        let report = db.store.verify_audit().await.unwrap();
        assert_eq!(
            report.problems,
            vec![AuditProblem::Altered { seq: 3 }],
            "{}",
            db.name
        );

        // Other fields are covered too.
        db.store
            .connection()
            .execute_unprepared("UPDATE aegis_audit_log SET actor = 'mallory' WHERE seq = 4")
            .await
            .unwrap();
        let report = db.store.verify_audit().await.unwrap();
        assert_eq!(
            report.problems,
            vec![
                AuditProblem::Altered { seq: 3 },
                AuditProblem::Altered { seq: 4 }
            ]
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn verify_reports_a_deleted_record_in_the_middle_and_at_the_end() {
    for db in backends().await {
        fill(&db.store, 6).await;
        db.store
            .connection()
            .execute_unprepared("DELETE FROM aegis_audit_log WHERE seq = 2")
            .await
            .unwrap();
        let report = db.store.verify_audit().await.unwrap();
        assert_eq!(
            report.problems,
            vec![AuditProblem::Missing { from: 2, to: 2 }],
            "{}",
            db.name
        );

        db.store
            .connection()
            .execute_unprepared("DELETE FROM aegis_audit_log WHERE seq = 6")
            .await
            .unwrap();
        let report = db.store.verify_audit().await.unwrap();
        assert_eq!(
            report.problems,
            vec![
                AuditProblem::Missing { from: 2, to: 2 },
                AuditProblem::Missing { from: 6, to: 6 }
            ],
            "{}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn renumbering_after_a_deletion_is_detected() {
    for db in backends().await {
        fill(&db.store, 4).await;
        let c = db.store.connection();
        c.execute_unprepared("DELETE FROM aegis_audit_log WHERE seq = 2")
            .await
            .unwrap();
        c.execute_unprepared("UPDATE aegis_audit_log SET seq = seq - 1 WHERE seq > 2")
            .await
            .unwrap();
        c.execute_unprepared("UPDATE aegis_audit_head SET seq = 3")
            .await
            .unwrap();
        let report = db.store.verify_audit().await.unwrap();
        assert!(!report.is_valid(), "{}", db.name);
        assert!(
            report.problems.contains(&AuditProblem::Altered { seq: 2 }),
            "{report:?}"
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn concurrent_appends_keep_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    for db in common::shared_backends(dir.path()).await {
        let other = db.reopen().await; // a second pool, as another process
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let s = if i % 2 == 0 {
                    db.store.clone()
                } else {
                    other.clone()
                };
                tokio::spawn(async move {
                    s.append_audit(AuditEntry::new("test.concurrent", json!({"i": i})))
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let report = db.store.verify_audit().await.unwrap();
        assert!(report.is_valid(), "{}: {report:?}", db.name);
        assert_eq!((report.checked, report.head_seq), (40, 40), "{}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn the_audit_writer_records_run_events_without_blocking_and_without_content() {
    for db in backends().await {
        let (sink, task) = AuditWriter::spawn(db.store.clone());
        // A graph whose telemetry goes to the audit log.
        let graph = {
            let store: Arc<dyn CheckpointStore> = Arc::new(db.store.clone());
            aegis_core::graph::Graph::<Doc>::builder("payments")
                .node(
                    "pay",
                    aegis_core::graph::node_fn(|i: NodeInput<Doc>| async move {
                        Ok(match i.ctx.resume {
                            None => NodeOutput::Interrupt(InterruptRequest::new(
                                "check",
                                json!({"prompt": "TOP SECRET PLAN"}),
                            )),
                            Some(_) => NodeOutput::Update(("paid".into(), 1)),
                        })
                    }),
                )
                .edge(aegis_core::graph::START, "pay")
                .edge("pay", aegis_core::graph::END)
                .checkpointer(store)
                .telemetry(Telemetry::new([
                    Arc::new(sink.clone()) as Arc<dyn TelemetrySink>
                ]))
                .compile()
                .unwrap()
        };
        let run = graph
            .invoke_with(Doc::default(), RunOptions::default())
            .await
            .unwrap();
        graph
            .resume_by(&run.run_id, Approval::Approve, Some("carol"))
            .await
            .unwrap();
        sink.on_event(&RunEvent::now(
            run.run_id.clone(),
            RunEventKind::Verdict {
                stage: Stage::Input,
                verdict: Verdict::require_approval("risky", json!({"prompt": "TOP SECRET PLAN"})),
                enforced: true,
            },
        ));
        sink.flush().await;
        let records = db
            .store
            .audit_records(Some(&run.run_id), 0, 100)
            .await
            .unwrap();
        let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
        for k in [
            "event.run_started",
            "event.paused",
            "event.resumed",
            "event.completed",
            "event.verdict",
            "run.transition",
        ] {
            assert!(
                kinds.contains(&k),
                "{}: {k} missing from {kinds:?}",
                db.name
            );
        }
        assert!(
            !kinds.contains(&"event.node_entered"),
            "node events are off by default"
        );
        let resumed = records.iter().find(|r| r.kind == "event.resumed").unwrap();
        assert_eq!(resumed.actor.as_deref(), Some("carol"));
        let all = serde_json::to_string(&records).unwrap();
        assert!(
            !all.contains("TOP SECRET PLAN"),
            "content is not stored by default"
        );
        assert!(db.store.verify_audit().await.unwrap().is_valid());
        drop(graph);
        drop(sink);
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        db.finish().await;
    }
}

#[tokio::test]
async fn content_is_recorded_only_when_configured() {
    let store = Store::connect_with(StoreOptions::new("sqlite::memory:").record_content(true))
        .await
        .unwrap();
    let (sink, _task) = AuditWriter::spawn_with(store.clone(), {
        let mut c = AuditWriterConfig::default();
        c.record_content = true;
        c.include_node_events = true;
        c
    });
    sink.on_event(&RunEvent::now(
        "r",
        RunEventKind::Verdict {
            stage: Stage::Input,
            verdict: Verdict::require_approval("risky", json!({"prompt": "visible"})),
            enforced: true,
        },
    ));
    sink.on_event(&RunEvent::now(
        "r",
        RunEventKind::NodeEntered { node: "n".into() },
    ));
    sink.flush().await;
    let records = store.audit_records(Some("r"), 0, 10).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].data["verdict"]["payload"]["prompt"], "visible");

    // Decision edits: kept verbatim only with record_content.
    let g = approval_graph(Arc::new(store.clone()), Default::default());
    let run = g
        .invoke_with(Doc::default(), RunOptions::default())
        .await
        .unwrap();
    store
        .resume(
            &g,
            &approver(),
            &run.run_id,
            Approval::Edit {
                value: json!({"amount": 3}),
            },
        )
        .await
        .unwrap();
    let d = store.run_detail_unscoped(&run.run_id).await.unwrap();
    let dec = d.audit.iter().find(|r| r.kind == "run.decision").unwrap();
    assert_eq!(dec.data["value"], json!({"amount": 3}));

    let plain = Store::connect("sqlite::memory:").await.unwrap();
    let g = approval_graph(Arc::new(plain.clone()), Default::default());
    let run = g
        .invoke_with(Doc::default(), RunOptions::default())
        .await
        .unwrap();
    plain
        .resume(
            &g,
            &approver(),
            &run.run_id,
            Approval::Edit {
                value: json!({"amount": 3}),
            },
        )
        .await
        .unwrap();
    let d = plain.run_detail_unscoped(&run.run_id).await.unwrap();
    let dec = d.audit.iter().find(|r| r.kind == "run.decision").unwrap();
    assert_eq!(dec.data["value"]["redacted"], true);
    assert_eq!(dec.data["value"]["sha256"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn a_full_queue_drops_without_blocking_and_audits_the_loss() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let rt = tokio::runtime::Handle::current();
    let (sink, _task) = AuditWriter::spawn_on(&rt, store.clone(), {
        let mut c = AuditWriterConfig::default();
        c.capacity = 1;
        c
    });
    // The writer task cannot run while this test holds the thread (current-thread runtime),
    // so the second and third events find the queue full.
    for _ in 0..3 {
        sink.on_event(&RunEvent::now("r", RunEventKind::Completed));
    }
    assert_eq!(sink.dropped(), 2);
    sink.flush().await;
    let records = store.audit_records(None, 0, 10).await.unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["event.completed", "audit.dropped"]);
    assert_eq!(records[1].data["events"], 2);
}

/// Who decides these anonymous runs: an admin (the starter of a run may not decide it).
fn approver() -> Principal {
    Principal::new("root").with_role("admin")
}
