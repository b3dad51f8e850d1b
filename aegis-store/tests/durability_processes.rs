//! Durability across real processes: a run paused by a process that is then SIGKILLed is
//! resumed by another process on the same database; two processes resuming one run at once
//! let exactly one through.
//!
//! The child processes are this test binary re-executed with `AEGIS_STORE_CHILD` set; the
//! `child_process_entry_point` test is their `main` and does nothing otherwise.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use aegis_contracts::*;
use aegis_core::graph::{Durability, END, Graph, RunOptions, START, node_fn};
use aegis_store::{Store, StoreOptions};
use common::Doc;

const CHILD: &str = "AEGIS_STORE_CHILD";

/// The graph every process builds: `plan` (+100), then `pay`, which pauses for approval.
fn graph(store: Store, effects: Arc<AtomicUsize>) -> Graph<Doc> {
    Graph::<Doc>::builder("payments")
        .node(
            "plan",
            node_fn(|_: NodeInput<Doc>| async { Ok(NodeOutput::Update(("plan".into(), 100))) }),
        )
        .node(
            "pay",
            node_fn(move |input: NodeInput<Doc>| {
                let effects = effects.clone();
                async move {
                    match input.ctx.resume {
                        None => Ok(NodeOutput::Interrupt(InterruptRequest::new(
                            "large payment",
                            serde_json::json!({"amount": input.state.amount}),
                        ))),
                        Some(_) => {
                            effects.fetch_add(1, Ordering::SeqCst);
                            Ok(NodeOutput::Update((
                                format!("paid {}", input.state.amount),
                                0,
                            )))
                        }
                    }
                }
            }),
        )
        .edge(START, "plan")
        .edge("plan", "pay")
        .edge("pay", END)
        .durability(Durability::Sync)
        .checkpointer(Arc::new(store))
        .compile()
        .unwrap()
}

async fn open(url: &str, schema: Option<&str>) -> Store {
    let mut o = StoreOptions::new(url);
    if let Some(s) = schema {
        o = o.schema(s);
    }
    Store::connect_with(o).await.unwrap()
}

fn wait_for(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "child never wrote {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_child(mode: &str, envs: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_process_entry_point",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, mode)
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// The children's `main`: a no-op unless `AEGIS_STORE_CHILD` is set.
#[test]
fn child_process_entry_point() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let url = var("AEGIS_STORE_URL");
    let schema = std::env::var("AEGIS_STORE_SCHEMA").ok();
    let run_id = var("AEGIS_STORE_RUN");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = open(&url, schema.as_deref()).await;
        let g = graph(store.clone(), Arc::default());
        match mode.as_str() {
            "pause" => {
                let out = g
                    .invoke_with(Doc::default(), RunOptions::default().run_id(run_id))
                    .await
                    .unwrap();
                assert_eq!(out.status, RunStatus::Paused);
                std::fs::write(var("AEGIS_STORE_READY"), "paused").unwrap();
                // A live server holding its pool open, until it is killed.
                tokio::time::sleep(Duration::from_secs(120)).await;
                panic!("should have been killed");
            }
            "resume" | "resume_graph" => {
                std::fs::write(var("AEGIS_STORE_READY"), "ready").unwrap();
                let go = PathBuf::from(var("AEGIS_STORE_GO"));
                while !go.exists() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let result = if mode == "resume" {
                    // Through the store: visibility check and decision record first.
                    store
                        .resume(&g, &approver(), &run_id, Approval::Approve)
                        .await
                } else {
                    // Straight through the engine: only the checkpoint claim decides.
                    g.resume(&run_id, Approval::Approve).await
                };
                let outcome = match result {
                    Ok(out) => format!("won:{}", out.state.log.join(",")),
                    Err(e) => format!("lost:{}", e.kind()),
                };
                std::fs::write(var("AEGIS_STORE_OUT"), outcome).unwrap();
            }
            other => panic!("unknown child mode {other}"),
        }
    });
}

/// Databases shared between processes: a SQLite file, and PostgreSQL when configured.
async fn shared(dir: &Path) -> Vec<(String, Option<String>)> {
    let mut out = vec![(format!("sqlite://{}", dir.join("runs.db").display()), None)];
    if let Some((url, schema)) = common::pg_schema().await {
        out.push((url, Some(schema)));
    }
    out
}

async fn drop_schema(url: &str, schema: Option<String>) {
    if let Some(schema) = schema {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(url).await.unwrap();
        db.execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_paused_by_a_sigkilled_process_resumes_in_another() {
    let dir = tempfile::tempdir().unwrap();
    for (url, schema) in shared(dir.path()).await {
        // Migrate first, as a deployment would, so the child only opens it.
        drop(open(&url, schema.as_deref()).await);
        let run_id = aegis_core::graph::new_run_id();
        let ready = dir.path().join(format!("ready-{run_id}"));
        let mut envs = vec![
            ("AEGIS_STORE_URL", url.clone()),
            ("AEGIS_STORE_RUN", run_id.clone()),
            ("AEGIS_STORE_READY", ready.display().to_string()),
        ];
        if let Some(s) = &schema {
            envs.push(("AEGIS_STORE_SCHEMA", s.clone()));
        }
        let mut child = spawn_child("pause", &envs);
        wait_for(&ready, &mut child);
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child is alive when killed"
        );
        child.kill().unwrap(); // SIGKILL on Unix: no destructors, no flush, no goodbye
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{url}: killed by SIGKILL");

        // A new process (this one), a new pool, a freshly built graph.
        let store = open(&url, schema.as_deref()).await;
        let cp = store.latest(&run_id).await.unwrap().unwrap();
        assert_eq!(
            (cp.status, cp.next.as_deref()),
            (RunStatus::Paused, Some("pay"))
        );
        let effects = Arc::new(AtomicUsize::new(0));
        let g = graph(store.clone(), effects.clone());
        let done = store
            .resume(&g, &approver(), &run_id, Approval::Approve)
            .await
            .unwrap();
        assert_eq!(done.status, RunStatus::Completed, "{url}");
        assert_eq!(done.state.log, ["plan", "paid 100"]);
        assert_eq!(done.state.amount, 100);
        assert_eq!(effects.load(Ordering::SeqCst), 1);
        let history: Vec<RunStatus> = store
            .list(&run_id)
            .await
            .unwrap()
            .iter()
            .map(|c| c.status)
            .collect();
        assert_eq!(
            history,
            [
                RunStatus::Running,
                RunStatus::Running,
                RunStatus::Paused,
                RunStatus::Running,
                RunStatus::Completed
            ]
        );
        assert!(store.verify_audit().await.unwrap().is_valid());
        drop(store);
        drop_schema(&url, schema).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_resuming_one_run_let_exactly_one_through() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for mode in ["resume", "resume_graph"] {
        for db in shared(dir.path()).await {
            cases.push((mode, db));
        }
    }
    for (mode, (url, schema)) in cases {
        let store = open(&url, schema.as_deref()).await;
        let run_id = aegis_core::graph::new_run_id();
        let g = graph(store.clone(), Arc::default());
        g.invoke_with(Doc::default(), RunOptions::default().run_id(run_id.clone()))
            .await
            .unwrap();
        let go = dir.path().join(format!("go-{run_id}"));
        let mut children = Vec::new();
        for i in 0..2 {
            let ready = dir.path().join(format!("ready-{run_id}-{i}"));
            let out = dir.path().join(format!("out-{run_id}-{i}"));
            let mut envs = vec![
                ("AEGIS_STORE_URL", url.clone()),
                ("AEGIS_STORE_RUN", run_id.clone()),
                ("AEGIS_STORE_READY", ready.display().to_string()),
                ("AEGIS_STORE_GO", go.display().to_string()),
                ("AEGIS_STORE_OUT", out.display().to_string()),
            ];
            if let Some(s) = &schema {
                envs.push(("AEGIS_STORE_SCHEMA", s.clone()));
            }
            let mut child = spawn_child(mode, &envs);
            wait_for(&ready, &mut child);
            children.push((child, out));
        }
        std::fs::write(&go, "go").unwrap();
        let mut outcomes = Vec::new();
        for (mut child, out) in children {
            assert!(child.wait().unwrap().success(), "{url}");
            outcomes.push(std::fs::read_to_string(out).unwrap());
        }
        outcomes.sort();
        assert_eq!(
            outcomes,
            ["lost:conflict", "won:plan,paid 100"],
            "{mode} {url}"
        );
        let d = store.run_detail_unscoped(&run_id).await.unwrap();
        assert_eq!(d.run.status, RunStatus::Completed);
        let decisions = usize::from(mode == "resume");
        assert_eq!(
            d.decisions.len(),
            decisions,
            "one decision recorded through the store"
        );
        assert!(store.verify_audit().await.unwrap().is_valid());
        drop(store);
        drop_schema(&url, schema).await;
    }
}

/// Who decides these anonymous runs: an admin (the starter of a run may not decide it).
fn approver() -> Principal {
    Principal::new("root").with_role("admin")
}
