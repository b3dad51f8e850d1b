//! Runs and approvals: listing with filters, paging and visibility; a run's timeline;
//! decisions; resuming on behalf of a principal; bad input changes nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aegis_contracts::*;
use aegis_core::graph::{Graph, MemoryCheckpointStore, RunOptions};
use aegis_store::{RunQuery, Store, StoreOptions, TimelineEntry, runs::parse_decision};
use common::{Doc, approval_graph, backends};
use serde_json::json;

fn p(id: &str, team: Option<&str>, roles: &[&str]) -> Principal {
    let mut p = Principal::new(id);
    p.team = team.map(str::to_owned);
    p.roles = roles.iter().map(|r| r.to_string()).collect();
    p
}

struct Cast {
    alice: Principal,
    bob: Principal,
    carol: Principal,
    dave: Principal,
    erin: Principal,
    root: Principal,
}

async fn cast(store: &Store) -> Cast {
    let c = Cast {
        alice: p("alice", Some("pay"), &[]),
        bob: p("bob", Some("pay"), &[]),
        carol: p("carol", Some("pay"), &["approver"]),
        dave: p("dave", Some("ops"), &["approver"]),
        erin: p("erin", Some("pay"), &["admin"]),
        root: p("root", None, &["admin"]),
    };
    for x in [&c.alice, &c.bob, &c.carol, &c.dave, &c.erin, &c.root] {
        store.upsert_principal(x).await.unwrap();
    }
    c
}

async fn start(g: &Graph<Doc>, who: Option<&str>) -> String {
    let mut o = RunOptions::default();
    if let Some(w) = who {
        o = o.principal(w);
    }
    g.invoke_with(Doc::default(), o).await.unwrap().run_id
}

/// Everything a refused operation must leave untouched.
async fn snapshot(store: &Store, run_id: &str) -> (Vec<Checkpoint>, usize, u64) {
    let detail = store.run_detail_unscoped(run_id).await.unwrap();
    (
        detail.checkpoints,
        detail.decisions.len(),
        store.verify_audit().await.unwrap().head_seq,
    )
}

#[tokio::test]
async fn principals_see_their_own_runs_and_their_teams_with_a_role() {
    for db in backends().await {
        let s = &db.store;
        let c = cast(s).await;
        let g = approval_graph(Arc::new(s.clone()), Arc::default());
        let mut alice_runs = Vec::new();
        for _ in 0..3 {
            alice_runs.push(start(&g, Some("alice")).await);
        }
        let bob_run = start(&g, Some("bob")).await;
        let anon = start(&g, None).await;

        let ids = |page: aegis_store::RunPage| {
            page.runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>()
        };
        let mut seen = ids(s.list_runs(&c.alice, &RunQuery::new()).await.unwrap());
        seen.sort();
        let mut want = alice_runs.clone();
        want.sort();
        assert_eq!(seen, want, "{}: alice sees only her runs", db.name);
        assert_eq!(
            ids(s.list_runs(&c.bob, &RunQuery::new()).await.unwrap()),
            [bob_run.as_str()]
        );
        assert_eq!(
            s.list_runs(&c.carol, &RunQuery::new())
                .await
                .unwrap()
                .runs
                .len(),
            4,
            "an approver sees the team's runs"
        );
        assert!(
            s.list_runs(&c.dave, &RunQuery::new())
                .await
                .unwrap()
                .runs
                .is_empty()
        );
        assert_eq!(
            ids(s.list_runs(&c.root, &RunQuery::new()).await.unwrap()),
            [anon.as_str()]
        );
        assert_eq!(
            s.list_all_runs(&RunQuery::new()).await.unwrap().runs.len(),
            5
        );

        // Filters.
        let bobs = s
            .list_runs(&c.carol, &RunQuery::new().principal("bob"))
            .await
            .unwrap();
        assert_eq!(ids(bobs), [bob_run.as_str()]);
        assert!(
            s.list_runs(&c.alice, &RunQuery::new().principal("bob"))
                .await
                .unwrap()
                .runs
                .is_empty()
        );
        g.resume(&alice_runs[0], Approval::Approve).await.unwrap();
        let done = s
            .list_runs(&c.carol, &RunQuery::new().status(RunStatus::Completed))
            .await
            .unwrap();
        assert_eq!(ids(done), [alice_runs[0].as_str()]);
        assert_eq!(
            s.list_runs(&c.carol, &RunQuery::new().status(RunStatus::Paused))
                .await
                .unwrap()
                .runs
                .len(),
            3
        );
        assert!(
            s.list_runs(&c.carol, &RunQuery::new().graph("other"))
                .await
                .unwrap()
                .runs
                .is_empty()
        );

        // Invisible runs look exactly like unknown ones.
        let hidden = s.authorize_run(&c.dave, &bob_run).await.unwrap_err();
        let unknown = s.authorize_run(&c.dave, "no-such-run").await.unwrap_err();
        assert_eq!(
            (hidden.kind(), unknown.kind()),
            (ErrorKind::NotFound, ErrorKind::NotFound)
        );
        assert_eq!(
            hidden.message().replace(&bob_run, "ID"),
            unknown.message().replace("no-such-run", "ID")
        );
        assert_eq!(
            s.authorize_run(&c.carol, &bob_run)
                .await
                .unwrap()
                .team
                .as_deref(),
            Some("pay")
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn run_listing_pages_through_every_run_once() {
    for db in backends().await {
        let s = &db.store;
        let g = approval_graph(Arc::new(s.clone()), Arc::default());
        let mut all = Vec::new();
        for _ in 0..7 {
            all.push(start(&g, Some("alice")).await);
        }
        let alice = Principal::new("alice");
        let mut seen = Vec::new();
        let mut q = RunQuery::new().limit(3);
        let mut pages = 0;
        loop {
            let page = s.list_runs(&alice, &q).await.unwrap();
            pages += 1;
            assert!(page.runs.len() <= 3);
            seen.extend(page.runs.into_iter().map(|r| r.run_id));
            match page.next_cursor {
                Some(c) => q = q.cursor(c),
                None => break,
            }
        }
        assert_eq!(pages, 3, "{}", db.name);
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 7, "no run twice");
        let mut want = all.clone();
        want.sort();
        assert_eq!(sorted, want);

        let err = s
            .list_runs(&alice, &RunQuery::new().cursor("garbage"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        let err = s
            .list_runs(&alice, &RunQuery::new().limit(0))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_resumed_run_shows_its_whole_timeline() {
    for db in backends().await {
        let s = &db.store;
        let c = cast(s).await;
        let g = approval_graph(Arc::new(s.clone()), Arc::default());
        let run_id = start(&g, Some("bob")).await;
        let out = s
            .resume(
                &g,
                &c.carol,
                &run_id,
                Approval::Edit {
                    value: json!({"amount": 7}),
                },
            )
            .await
            .unwrap();
        assert_eq!(out.state.log, ["plan", "paid 7"], "{}", db.name);

        let d = s.run_detail(&c.bob, &run_id).await.unwrap();
        assert_eq!(d.run.status, RunStatus::Completed);
        assert_eq!(d.run.principal.as_deref(), Some("bob"));
        assert_eq!(d.checkpoints.len(), 3, "paused, claimed, completed");
        assert_eq!(d.interrupts.len(), 1);
        assert_eq!(d.interrupts[0].resolved_version, Some(2));
        assert_eq!(d.interrupts[0].payload["amount"], 100);
        assert_eq!(d.decisions.len(), 1);
        let dec = &d.decisions[0];
        assert_eq!(
            (dec.decision.as_str(), dec.decided_by.as_str()),
            ("edit", "carol")
        );
        assert_eq!(dec.value, Some(json!({"amount": 7})));
        assert_eq!(
            dec.approval(),
            Approval::Edit {
                value: json!({"amount": 7})
            }
        );
        let kinds: Vec<&str> = d.audit.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "run.transition",
                "run.decision",
                "run.transition",
                "run.transition"
            ],
            "{}",
            db.name
        );
        assert_eq!(d.audit[1].actor.as_deref(), Some("carol"));
        let tl = d.timeline();
        assert_eq!(tl.len(), 3 + 1 + 1 + 4);
        assert!(tl.windows(2).all(|w| w[0].at_ms() <= w[1].at_ms()));
        assert!(
            tl.iter()
                .any(|e| matches!(e, TimelineEntry::Decision { by, .. } if by == "carol"))
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn bad_decisions_are_typed_errors_that_change_nothing() {
    for db in backends().await {
        let s = &db.store;
        let c = cast(s).await;
        let effects = Arc::new(AtomicUsize::new(0));
        let g = approval_graph(Arc::new(s.clone()), effects.clone());
        let run_id = start(&g, Some("alice")).await;
        let before = snapshot(s, &run_id).await;

        let err = s
            .decide(&c.alice, "no-such-run", &Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = s
            .resume(&g, &c.dave, &run_id, Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "another team's approver");
        let err = s
            .resume(&g, &c.bob, &run_id, Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::NotFound,
            "a teammate without the role"
        );
        // The starter may see the run but, without a role, not decide it.
        let err = s
            .resume(&g, &c.alice, &run_id, Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::Forbidden, "not_an_approver"),
            "{}: {err}",
            db.name
        );

        let err = s
            .resume(
                &g,
                &c.carol,
                &run_id,
                Approval::Edit {
                    value: json!({"amount": "lots"}),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        assert!(
            err.message().contains("$.amount: expected integer"),
            "{err}"
        );
        let err = parse_decision(&json!({"decision": "maybe"})).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        let err = parse_decision(&json!({"decision": "edit"})).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidRequest,
            "edit without a value"
        );
        let other = Graph::<Doc>::builder("not-payments")
            .node(
                "x",
                aegis_core::graph::node_fn(|_: NodeInput<Doc>| async {
                    Ok(NodeOutput::Update((String::new(), 0)))
                }),
            )
            .edge(aegis_core::graph::START, "x")
            .edge("x", aegis_core::graph::END)
            .checkpointer(Arc::new(s.clone()))
            .compile()
            .unwrap();
        let err = s
            .resume(&other, &c.alice, &run_id, Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "wrong graph");
        assert_eq!(
            snapshot(s, &run_id).await,
            before,
            "{}: nothing changed",
            db.name
        );
        assert_eq!(effects.load(Ordering::SeqCst), 0);

        // Decided once; a second decision on the same interrupt is a conflict.
        s.decide(&c.carol, &run_id, &Approval::Approve)
            .await
            .unwrap();
        let after_first = snapshot(s, &run_id).await;
        let err = s
            .decide(
                &c.erin,
                &run_id,
                &Approval::Reject {
                    reason: "no".into(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(snapshot(s, &run_id).await, after_first);

        // A completed run cannot be decided on or resumed.
        g.resume(&run_id, Approval::Approve).await.unwrap();
        let done = snapshot(s, &run_id).await;
        let err = s
            .resume(&g, &c.carol, &run_id, Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.message().contains("completed"), "{err}");
        assert_eq!(snapshot(s, &run_id).await, done);
        db.finish().await;
    }
}

#[tokio::test]
async fn concurrent_resumes_by_principals_record_one_decision_and_run_once() {
    for db in backends().await {
        let s = &db.store;
        let c = cast(s).await;
        let effects = Arc::new(AtomicUsize::new(0));
        let g = approval_graph(Arc::new(s.clone()), effects.clone());
        let run_id = start(&g, Some("alice")).await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (s, g, id) = (s.clone(), g.clone(), run_id.clone());
                let who = if i % 2 == 0 {
                    c.carol.clone()
                } else {
                    c.erin.clone()
                };
                tokio::spawn(async move { s.resume(&g, &who, &id, Approval::Approve).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(out) => {
                    assert_eq!(out.status, RunStatus::Completed);
                    wins += 1;
                }
                Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{}: {e}", db.name),
            }
        }
        assert_eq!(wins, 1, "{}", db.name);
        assert_eq!(effects.load(Ordering::SeqCst), 1);
        let d = s.run_detail_unscoped(&run_id).await.unwrap();
        assert_eq!(d.decisions.len(), 1, "{}", db.name);
        assert!(s.verify_audit().await.unwrap().is_valid());
        db.finish().await;
    }
}

#[tokio::test]
async fn a_decision_whose_resume_is_refused_is_withdrawn() {
    for db in backends().await {
        let s = &db.store;
        let c = cast(s).await;
        let alice = c.carol.clone();
        let g = approval_graph(Arc::new(s.clone()), Arc::default());
        let run_id = start(&g, Some("alice")).await;
        // Same graph name, but its checkpointer is not this store: the engine cannot find
        // the run, after the store recorded the decision.
        let detached = approval_graph(Arc::new(MemoryCheckpointStore::new()), Arc::default());
        let err = s
            .resume(&detached, &alice, &run_id, Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let d = s.run_detail_unscoped(&run_id).await.unwrap();
        assert!(d.decisions.is_empty(), "{}: withdrawn", db.name);
        assert_eq!(d.interrupts[0].decided_at_ms, None);
        assert_eq!(d.audit.last().unwrap().kind, "run.decision_withdrawn");
        // The run can still be decided and resumed.
        let out = s
            .resume(&g, &alice, &run_id, Approval::Approve)
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Completed);
        db.finish().await;
    }
}

#[tokio::test]
async fn an_admin_decides_anonymous_runs_and_rejection_is_recorded() {
    for db in backends().await {
        let s = &db.store;
        let c = cast(s).await;
        let g = approval_graph(Arc::new(s.clone()), Arc::default());
        let run_id = start(&g, None).await;
        let err = s
            .resume(&g, &c.carol, &run_id, Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let out = s
            .resume(
                &g,
                &c.root,
                &run_id,
                Approval::Reject {
                    reason: "not today".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Rejected);
        let d = s.run_detail(&c.root, &run_id).await.unwrap();
        assert_eq!(d.decisions[0].reason.as_deref(), Some("not today"));
        assert_eq!(s.count_runs(RunStatus::Rejected).await.unwrap(), 1);
        db.finish().await;
    }
}

/// Four eyes: an admin of the team who started a run may not decide it (nothing is
/// recorded); another approver of the team may. Off, the starter may.
#[tokio::test]
async fn the_starter_of_a_run_may_not_decide_it() {
    for db in backends().await {
        let s = &db.store;
        let c = cast(s).await;
        let g = approval_graph(Arc::new(s.clone()), Arc::default());
        let own = start(&g, Some("erin")).await;
        let err = s
            .resume(&g, &c.erin, &own, Approval::Approve)
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::Forbidden, "four_eyes"),
            "{}: {err}",
            db.name
        );
        assert!(
            s.run_detail_unscoped(&own)
                .await
                .unwrap()
                .decisions
                .is_empty()
        );
        s.resume(&g, &c.carol, &own, Approval::Approve)
            .await
            .unwrap();

        db.finish().await;
    }
    let relaxed = Store::connect_with(StoreOptions::new("sqlite::memory:").four_eyes(false))
        .await
        .unwrap();
    let c = cast(&relaxed).await;
    let g = approval_graph(Arc::new(relaxed.clone()), Arc::default());
    let own = start(&g, Some("erin")).await;
    relaxed
        .resume(&g, &c.erin, &own, Approval::Approve)
        .await
        .unwrap();
}
