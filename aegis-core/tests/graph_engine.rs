//! The graph engine: compile-time validation, execution, interrupts and durable resume.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aegis_contracts::*;
use aegis_core::{
    Telemetry,
    graph::{Durability, END, Graph, GraphBuilder, MemoryCheckpointStore, START, node_fn},
};
use common::{JsonOnly, Recorder, entry};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Doc {
    log: Vec<String>,
    amount: u32,
}

impl State for Doc {
    type Update = (String, u32);
    fn apply(&mut self, (entry, amount): (String, u32)) {
        self.log.push(entry);
        self.amount += amount;
    }
}

fn step(name: &'static str) -> impl Node<Doc> {
    node_fn(move |_: NodeInput<Doc>| async move { Ok(NodeOutput::Update((name.to_owned(), 0))) })
}

fn compile_err(b: GraphBuilder<Doc>) -> String {
    b.compile().unwrap_err().message().to_owned()
}

#[test]
fn compile_rejects_unknown_nodes() {
    let msg = compile_err(
        Graph::builder("g")
            .node("a", step("a"))
            .edge(START, "a")
            .edge("a", "b"),
    );
    assert!(msg.contains("edge from `a` to unknown node `b`"), "{msg}");
    let msg = compile_err(
        Graph::builder("g")
            .node("a", step("a"))
            .edge(START, "a")
            .edge("a", END)
            .edge("zz", "a"),
    );
    assert!(msg.contains("edge from unknown node `zz`"), "{msg}");
}

#[test]
fn compile_rejects_unreachable_nodes() {
    let msg = compile_err(
        Graph::builder("g")
            .node("a", step("a"))
            .node("orphan", step("o"))
            .edge(START, "a")
            .edge("a", END)
            .edge("orphan", END),
    );
    assert!(msg.contains("node `orphan` is unreachable"), "{msg}");
}

#[test]
fn compile_rejects_nodes_with_no_path_to_end() {
    let msg = compile_err(
        Graph::builder("g")
            .node("a", step("a"))
            .node("loop1", step("l1"))
            .node("loop2", step("l2"))
            .edge(START, "a")
            .branch("a", |_: &Doc| END, ["loop1", END])
            .edge("loop1", "loop2")
            .edge("loop2", "loop1"),
    );
    assert!(msg.contains("node `loop1` has no path to __end__"), "{msg}");
    assert!(msg.contains("node `loop2` has no path to __end__"), "{msg}");
}

#[test]
fn compile_rejects_duplicates_and_ambiguous_edges_and_reports_them_all() {
    let msg = compile_err(
        Graph::builder("g")
            .node("a", step("a"))
            .node("a", step("a"))
            .node("b", step("b"))
            .edge(START, "a")
            .edge("a", "b")
            .edge("a", END)
            .edge("b", END)
            .interrupt_before(["nope"]),
    );
    assert!(msg.contains("node `a` is defined twice"), "{msg}");
    assert!(
        msg.contains("node `a` has more than one outgoing edge"),
        "{msg}"
    );
    assert!(
        msg.contains("interrupt_before names unknown node `nope`"),
        "{msg}"
    );
    let msg = compile_err(Graph::builder("g").node("a", step("a")).edge("a", END));
    assert!(msg.contains("no edge from __start__"), "{msg}");
}

#[test]
fn compile_reports_problems_of_host_checks_with_its_own() {
    let b = || {
        Graph::<Doc>::builder("g")
            .node("out", step("o"))
            .edge(START, "out")
            .edge("out", END)
    };
    let msg = compile_err(b().check(|nodes| {
        assert_eq!(nodes, ["out"]);
        vec!["output guard `json` needs the full text".to_owned()]
    }));
    assert!(msg.contains("`json` needs the full text"), "{msg}");
    assert!(b().check(|_| Vec::new()).compile().is_ok());
}

#[test]
fn a_pipeline_whose_output_guards_cannot_stream_without_buffering_does_not_build() {
    let build = |buffering: bool| {
        aegis_core::Pipeline::builder()
            .provider("p", std::sync::Arc::new(common::Scripted::new(&["ok"])))
            .guard(entry("json", JsonOnly))
            .stream_buffering(buffering)
            .build()
    };
    let msg = build(false).unwrap_err().message().to_owned();
    assert!(msg.contains("`json` needs the full text"), "{msg}");
    assert!(build(true).is_ok());
}

#[tokio::test]
async fn branches_route_on_state_and_refuse_undeclared_targets() {
    let g = Graph::<Doc>::builder("g")
        .node(
            "add",
            node_fn(|_: NodeInput<Doc>| async { Ok(NodeOutput::Update(("add".into(), 5))) }),
        )
        .node("big", step("big"))
        .node("small", step("small"))
        .edge(START, "add")
        .branch(
            "add",
            |s: &Doc| if s.amount > 3 { "big" } else { "small" },
            ["big", "small"],
        )
        .edge("big", END)
        .edge("small", END)
        .compile()
        .unwrap();
    let out = g.invoke(Doc::default()).await.unwrap();
    assert_eq!(out.state.log, ["add", "big"]);

    let bad = Graph::<Doc>::builder("g")
        .node("a", step("a"))
        .edge(START, "a")
        .branch("a", |_: &Doc| "elsewhere", [END])
        .compile()
        .unwrap();
    let err = bad.invoke(Doc::default()).await.unwrap_err();
    assert!(err.message().contains("not one of its declared targets"));
}

#[tokio::test]
async fn mermaid_shows_edges_branches_and_approval_nodes() {
    let g = Graph::<Doc>::builder("g")
        .node("a", step("a"))
        .node("b", step("b"))
        .edge(START, "a")
        .branch("a", |_: &Doc| "b", ["b", END])
        .edge("b", END)
        .interrupt_before(["b"])
        .compile()
        .unwrap();
    let m = g.to_mermaid();
    assert!(m.starts_with("flowchart TD\n"));
    assert!(m.contains("__start__([START]) --> a"));
    assert!(m.contains("a -.-> b") && m.contains("a -.-> __end__([END])"));
    assert!(m.contains("b --> __end__([END])"));
    assert!(m.contains("b:::approval"));
}

/// A node that asks for approval until a human decides, counting its runs.
fn approval_graph(store: Arc<dyn CheckpointStore>, side_effects: Arc<AtomicUsize>) -> Graph<Doc> {
    Graph::<Doc>::builder("payments")
        .node("plan", node_fn(|_: NodeInput<Doc>| async { Ok(NodeOutput::Update(("plan".into(), 100))) }))
        .node(
            "pay",
            node_fn(move |input: NodeInput<Doc>| {
                let side_effects = side_effects.clone();
                async move {
                    match input.ctx.resume {
                        None => Ok(NodeOutput::Interrupt(
                            InterruptRequest::new("large payment", serde_json::json!({"amount": input.state.amount}))
                                .with_edit_schema(serde_json::json!({"type":"object","required":["amount"],"properties":{"amount":{"type":"integer"}}})),
                        )),
                        Some(Approval::Edit { value }) => {
                            side_effects.fetch_add(1, Ordering::SeqCst);
                            let amount = value["amount"].as_u64().unwrap() as u32;
                            Ok(NodeOutput::Update((format!("paid {amount}"), 0)))
                        }
                        Some(_) => {
                            side_effects.fetch_add(1, Ordering::SeqCst);
                            Ok(NodeOutput::Update((format!("paid {}", input.state.amount), 0)))
                        }
                    }
                }
            }),
        )
        .edge(START, "plan")
        .edge("plan", "pay")
        .edge("pay", END)
        .checkpointer(store)
        .compile()
        .unwrap()
}

#[tokio::test]
async fn interrupt_pauses_and_resume_reruns_the_node_with_the_decision() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let effects = Arc::new(AtomicUsize::new(0));
    let g = approval_graph(store.clone(), effects.clone());
    let out = g.invoke(Doc::default()).await.unwrap();
    assert_eq!(out.status, RunStatus::Paused);
    let interrupt = out.interrupt.unwrap();
    assert_eq!(
        (
            interrupt.node.as_str(),
            interrupt.request.payload["amount"].as_u64()
        ),
        ("pay", Some(100))
    );
    assert_eq!(
        effects.load(Ordering::SeqCst),
        0,
        "no side effect before approval"
    );
    let cp = store.latest(&out.run_id).await.unwrap().unwrap();
    assert_eq!(
        (cp.status, cp.next.as_deref()),
        (RunStatus::Paused, Some("pay"))
    );

    let done = g.resume(&out.run_id, Approval::Approve).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.state.log, ["plan", "paid 100"]);
    assert_eq!(effects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn resume_works_on_a_graph_rebuilt_from_scratch_with_the_same_store() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let run_id = {
        let g = approval_graph(store.clone(), Arc::default());
        g.invoke(Doc::default()).await.unwrap().run_id
    }; // the first graph is gone
    let rebuilt = approval_graph(store.clone(), Arc::default());
    let done = rebuilt
        .resume(
            &run_id,
            Approval::Edit {
                value: serde_json::json!({"amount": 40}),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.state.log, ["plan", "paid 40"]);
}

#[tokio::test]
async fn concurrent_resumes_of_one_run_let_exactly_one_win() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let effects = Arc::new(AtomicUsize::new(0));
    let g = approval_graph(store.clone(), effects.clone());
    let run_id = g.invoke(Doc::default()).await.unwrap().run_id;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (g, id) = (g.clone(), run_id.clone());
            tokio::spawn(async move { g.resume(&id, Approval::Approve).await })
        })
        .collect();
    let mut wins = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(out) => {
                assert_eq!(out.status, RunStatus::Completed);
                wins += 1
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                conflicts += 1
            }
        }
    }
    assert_eq!((wins, conflicts), (1, 7));
    assert_eq!(
        effects.load(Ordering::SeqCst),
        1,
        "the side effect ran once"
    );
}

#[tokio::test]
async fn reject_ends_the_run_without_running_the_node() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let effects = Arc::new(AtomicUsize::new(0));
    let g = approval_graph(store.clone(), effects.clone());
    let run_id = g.invoke(Doc::default()).await.unwrap().run_id;
    let out = g
        .resume(
            &run_id,
            Approval::Reject {
                reason: "too much".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Rejected);
    assert_eq!(effects.load(Ordering::SeqCst), 0);
    assert_eq!(
        store.latest(&run_id).await.unwrap().unwrap().status,
        RunStatus::Rejected
    );
}

#[tokio::test]
async fn bad_resumes_are_typed_errors_that_change_nothing() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let g = approval_graph(store.clone(), Arc::default());
    let err = g
        .resume("no-such-run", Approval::Approve)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let run_id = g.invoke(Doc::default()).await.unwrap().run_id;
    let before = store.list(&run_id).await.unwrap();
    let err = g
        .resume(
            &run_id,
            Approval::Edit {
                value: serde_json::json!({"amount": "lots"}),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(
        err.message().contains("$.amount: expected integer"),
        "{err}"
    );
    assert_eq!(
        store.list(&run_id).await.unwrap(),
        before,
        "a refused decision stores nothing"
    );

    g.resume(&run_id, Approval::Approve).await.unwrap();
    let err = g.resume(&run_id, Approval::Approve).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "a completed run cannot be resumed"
    );
}

#[tokio::test]
async fn interrupt_before_pauses_until_approved() {
    let g = Graph::<Doc>::builder("g")
        .node("a", step("a"))
        .node("send", step("send"))
        .edge(START, "a")
        .edge("a", "send")
        .edge("send", END)
        .interrupt_before(["send"])
        .compile()
        .unwrap();
    let out = g.invoke(Doc::default()).await.unwrap();
    assert_eq!(
        (out.status, out.state.log.clone()),
        (RunStatus::Paused, vec!["a".to_owned()])
    );
    let err = g
        .resume(
            &out.run_id,
            Approval::Edit {
                value: serde_json::json!({}),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidRequest,
        "interrupt_before accepts no edits"
    );
    let done = g.resume(&out.run_id, Approval::Approve).await.unwrap();
    assert_eq!(done.state.log, ["a", "send"]);
}

#[tokio::test]
async fn durability_sync_checkpoints_after_every_node_and_exit_only_at_the_end() {
    // Sync and Async: at the start, after `a`, and after `b` (which completes the run).
    for (durability, expected) in [
        (Durability::Sync, 3),
        (Durability::Async, 3),
        (Durability::Exit, 1),
    ] {
        let store = Arc::new(MemoryCheckpointStore::new());
        let g = Graph::<Doc>::builder("g")
            .node("a", step("a"))
            .node("b", step("b"))
            .edge(START, "a")
            .edge("a", "b")
            .edge("b", END)
            .checkpointer(store.clone())
            .durability(durability)
            .compile()
            .unwrap();
        let out = g.invoke(Doc::default()).await.unwrap();
        let history = store.list(&out.run_id).await.unwrap();
        assert_eq!(history.len(), expected, "{durability:?}");
        assert_eq!(history.last().unwrap().status, RunStatus::Completed);
        let versions: Vec<u64> = history.iter().map(|c| c.version).collect();
        assert_eq!(versions, (1..=expected as u64).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_failing_node_records_the_run_as_failed_and_names_it_in_the_error() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let g = Graph::<Doc>::builder("g")
        .node(
            "boom",
            node_fn(|_: NodeInput<Doc>| async { Err(Error::provider("upstream down")) }),
        )
        .edge(START, "boom")
        .edge("boom", END)
        .checkpointer(store.clone())
        .compile()
        .unwrap();
    let err = g.invoke(Doc::default()).await.unwrap_err();
    let run_id = err.run_id().unwrap().to_owned();
    assert_eq!(
        store.latest(&run_id).await.unwrap().unwrap().status,
        RunStatus::Failed
    );
}

#[tokio::test]
async fn a_checkpoint_from_a_newer_schema_is_refused_clearly() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let g = approval_graph(store.clone(), Arc::default());
    let run_id = g.invoke(Doc::default()).await.unwrap().run_id;
    let mut cp = store.latest(&run_id).await.unwrap().unwrap();
    cp.schema_version = 99;
    cp.version += 1;
    store.put(&cp, Some(cp.version - 1)).await.unwrap();
    let err = g.resume(&run_id, Approval::Approve).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
    assert!(err.message().contains("schema v99"), "{err}");
}

#[tokio::test]
async fn telemetry_reports_the_run_lifecycle() {
    let rec = Arc::new(Recorder::default());
    let g = Graph::<Doc>::builder("g")
        .node("a", step("a"))
        .edge(START, "a")
        .edge("a", END)
        .telemetry(Telemetry::new([rec.clone() as Arc<dyn TelemetrySink>]))
        .compile()
        .unwrap();
    g.invoke(Doc::default()).await.unwrap();
    assert_eq!(
        rec.kinds(),
        ["run_started", "node_entered", "node_left", "completed"]
    );
}

#[tokio::test]
async fn the_compiled_graph_is_a_tower_service() {
    use tower::ServiceExt;
    let g = Graph::<Doc>::builder("g")
        .node("a", step("a"))
        .edge(START, "a")
        .edge("a", END)
        .compile()
        .unwrap();
    let out = g.oneshot(Doc::default()).await.unwrap();
    assert_eq!(out.state.log, ["a"]);
}

#[tokio::test]
async fn pause_durability_stores_only_runs_that_pause() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let plain = Graph::<Doc>::builder("g")
        .node("a", step("a"))
        .edge(START, "a")
        .edge("a", END)
        .checkpointer(store.clone())
        .durability(Durability::Pause)
        .compile()
        .unwrap();
    let out = plain.invoke(Doc::default()).await.unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert!(
        store.list(&out.run_id).await.unwrap().is_empty(),
        "a run that never paused leaves no checkpoint"
    );

    let effects = Arc::new(AtomicUsize::new(0));
    let g = Graph::<Doc>::builder("payments")
        .node(
            "plan",
            node_fn(|_: NodeInput<Doc>| async { Ok(NodeOutput::Update(("plan".into(), 1))) }),
        )
        .node(
            "pay",
            node_fn(move |input: NodeInput<Doc>| {
                let effects = effects.clone();
                async move {
                    if input.ctx.resume.is_none() {
                        return Ok(NodeOutput::Interrupt(InterruptRequest::new(
                            "ok?",
                            serde_json::json!({}),
                        )));
                    }
                    effects.fetch_add(1, Ordering::SeqCst);
                    Ok(NodeOutput::Update(("paid".into(), 0)))
                }
            }),
        )
        .edge(START, "plan")
        .edge("plan", "pay")
        .edge("pay", END)
        .checkpointer(store.clone())
        .durability(Durability::Pause)
        .compile()
        .unwrap();
    let paused = g.invoke(Doc::default()).await.unwrap();
    assert_eq!(
        store.latest(&paused.run_id).await.unwrap().unwrap().status,
        RunStatus::Paused
    );
    let done = g.resume(&paused.run_id, Approval::Approve).await.unwrap();
    assert_eq!(done.state.log, ["plan", "paid"]);
    let history = store.list(&paused.run_id).await.unwrap();
    assert_eq!(
        history.iter().map(|c| c.status).collect::<Vec<_>>(),
        [RunStatus::Paused, RunStatus::Running, RunStatus::Completed],
        "once paused, the run is stored to the end"
    );
}
