//! Policy packs plug into the lifecycle through public API only: a test pack — a per-team
//! request quota configured in `[[policies]]` — reserves before the provider call, refuses
//! with a typed error, and settles exactly once in the run-end hook, streamed and not,
//! cancelled included.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use aegis_contracts::*;
use aegis_core::{Pipeline, Registry, config::AegisConfig};
use common::{Recorder, Scripted};
use futures_util::StreamExt;

/// The pack: at most `max_in_flight` reserved requests per team; a reservation is taken
/// before the provider call and settled (released, with the run's usage) when the run ends.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct QuotaConfig {
    max_in_flight: u32,
}

#[derive(Default)]
struct Ledger {
    reserved: HashMap<String, u32>,
    /// (run id, status, output tokens, provider called)
    settled: Vec<(String, RunStatus, Option<u64>, bool)>,
}

struct Quota {
    max: u32,
    ledger: Arc<Mutex<Ledger>>,
}

fn team(ctx: &ContextView) -> String {
    ctx.labels.get("team").cloned().unwrap_or_default()
}

#[async_trait]
impl Policy for Quota {
    fn positions(&self) -> &[Position] {
        &[Position::BeforeCall]
    }

    async fn step(&self, input: &StepInput<'_>) -> Result<Step, Error> {
        assert!(input.route.is_some(), "before_call sees the route");
        let mut ledger = self.ledger.lock().unwrap();
        let held = ledger.reserved.entry(team(input.context)).or_default();
        if *held >= self.max {
            return Err(
                Error::new(ErrorKind::BudgetExceeded, "the team's quota is used up")
                    .with_code("budget_exceeded"),
            );
        }
        *held += 1;
        Ok(Step::proceed().label("quota", "reserved"))
    }

    async fn on_run_end(&self, run: &RunSummary) {
        let mut ledger = self.ledger.lock().unwrap();
        if run.context.labels.get("quota").map(String::as_str) == Some("reserved") {
            *ledger.reserved.entry(team(&run.context)).or_default() -= 1;
        }
        ledger.settled.push((
            run.context.run_id.clone(),
            run.status,
            run.usage.map(|u| u.output_tokens),
            run.provider_called,
        ));
    }
}

/// Panics in its step.
struct Explodes;

#[async_trait]
impl Policy for Explodes {
    fn positions(&self) -> &[Position] {
        &[Position::BeforeRoute]
    }
    async fn step(&self, _: &StepInput<'_>) -> Result<Step, Error> {
        panic!("a bug in a pack")
    }
}

fn registry(ledger: &Arc<Mutex<Ledger>>, provider: Scripted) -> Registry {
    let mut r = Registry::new();
    let provider = Arc::new(provider);
    r.register_provider::<serde_json::Value, _>("scripted", move |_, _| Ok(provider.clone()));
    let ledger = ledger.clone();
    r.register_policy::<QuotaConfig, _>("quota", move |cfg, _| {
        Ok(Arc::new(Quota {
            max: cfg.max_in_flight,
            ledger: ledger.clone(),
        }))
    });
    r.register_policy::<serde_json::Value, _>("explodes", |_, _| Ok(Arc::new(Explodes)));
    r
}

const CONFIG: &str = r#"
[[providers]]
id = "main"
type = "scripted"

[[policies]]
id = "quota"
type = "quota"
config = { max_in_flight = 1 }
"#;

async fn build(ledger: &Arc<Mutex<Ledger>>, provider: Scripted, rec: &Arc<Recorder>) -> Pipeline {
    let config = AegisConfig::from_toml_str(CONFIG, std::iter::empty::<(&str, &str)>()).unwrap();
    Pipeline::from_config_with(
        &registry(ledger, provider),
        &config,
        None,
        vec![rec.clone() as Arc<dyn TelemetrySink>],
    )
    .await
    .unwrap()
}

fn req(stream: bool) -> ChatRequest {
    let mut r = common::user("hello");
    r.stream = stream;
    r.ctx.labels.insert("team".into(), "research".into());
    r
}

#[tokio::test]
async fn the_pack_step_is_a_graph_node_before_the_provider_call() {
    let ledger = Arc::default();
    let rec = Arc::new(Recorder::default());
    let p = build(&ledger, Scripted::new(&["ok"]), &rec).await;
    let mermaid = p.graph().to_mermaid();
    assert!(
        mermaid.contains("route --> quota_before_call[\"quota.before_call\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("quota_before_call[\"quota.before_call\"] --> provider_call"),
        "{mermaid}"
    );
    assert_eq!(p.policy_ids(), ["quota"]);
}

#[tokio::test]
async fn a_complete_run_reserves_then_settles_once_with_its_usage() {
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let rec = Arc::new(Recorder::default());
    let p = build(&ledger, Scripted::new(&["ok"]), &rec).await;
    let resp = p.chat(req(false)).await.unwrap();
    let run_id = resp.meta.run_id.clone().unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.reserved["research"], 0);
    assert_eq!(l.settled, [(run_id, RunStatus::Completed, Some(5), true)]);
}

#[tokio::test]
async fn a_streamed_run_holds_its_reservation_until_the_stream_ends() {
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let rec = Arc::new(Recorder::default());
    let p = build(&ledger, Scripted::new(&["o", "k"]), &rec).await;
    let first = p.chat(req(true)).await.unwrap();
    assert_eq!(ledger.lock().unwrap().reserved["research"], 1);

    // While the first stream is unread the quota is held: a second request is refused
    // with a typed error, before any provider call, and settles too.
    let refused = p.chat(req(true)).await.unwrap_err();
    assert_eq!(
        (refused.kind(), refused.code()),
        (ErrorKind::BudgetExceeded, "budget_exceeded")
    );
    {
        let l = ledger.lock().unwrap();
        assert_eq!(
            l.settled,
            [(
                refused.run_id().unwrap().to_owned(),
                RunStatus::Blocked,
                None,
                false
            )]
        );
    }

    let run_id = first.meta.run_id.clone().unwrap();
    first.collect().await.unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.reserved["research"], 0);
    assert_eq!(
        l.settled[1],
        (run_id, RunStatus::Completed, Some(5), true),
        "settled with the usage of the stream's last chunk"
    );
}

#[tokio::test]
async fn a_cancelled_stream_releases_its_reservation() {
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let rec = Arc::new(Recorder::default());
    let p = build(&ledger, Scripted::new(&["a", "b", "c"]), &rec).await;
    let resp = p.chat(req(true)).await.unwrap();
    let run_id = resp.meta.run_id.clone().unwrap();
    let ChatBody::Stream(mut s) = resp.body else {
        panic!("a stream was asked for")
    };
    s.next().await.unwrap().unwrap();
    drop(s);
    for _ in 0..1000 {
        if !ledger.lock().unwrap().settled.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let l = ledger.lock().unwrap();
    assert_eq!(l.reserved["research"], 0);
    assert_eq!(l.settled.len(), 1, "exactly once");
    assert_eq!(
        (l.settled[0].0.as_str(), l.settled[0].1),
        (run_id.as_str(), RunStatus::Cancelled)
    );
}

#[tokio::test]
async fn a_pack_that_panics_fails_the_run_closed_with_a_typed_error_and_a_terminal_event() {
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let rec = Arc::new(Recorder::default());
    let config = AegisConfig::from_toml_str(
        &format!("{CONFIG}\n[[policies]]\nid = \"boom\"\ntype = \"explodes\"\n"),
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let p = Pipeline::from_config_with(
        &registry(&ledger, Scripted::new(&["never"])),
        &config,
        None,
        vec![rec.clone() as Arc<dyn TelemetrySink>],
    )
    .await
    .unwrap();
    let err = p.chat(req(true)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.message().contains("policy `boom` panicked"), "{err}");
    let run_id = err.run_id().unwrap();
    let terminal: Vec<_> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.run_id == run_id && e.kind.is_terminal())
        .map(|e| e.kind.clone())
        .collect();
    assert!(matches!(
        terminal.as_slice(),
        [RunEventKind::Failed {
            error: ErrorKind::Internal,
            ..
        }]
    ));
    assert_eq!(
        ledger.lock().unwrap().settled[0].1,
        RunStatus::Failed,
        "the other packs' hooks still ran"
    );
}

#[tokio::test]
async fn a_policies_entry_with_an_unknown_type_or_bad_config_names_its_path() {
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let r = registry(&ledger, Scripted::new(&["x"]));
    let config = AegisConfig::from_toml_str(
        r#"
        [[policies]]
        id = "q"
        type = "quota"
        config = { max_in_flight = "lots" }

        [[policies]]
        id = "z"
        type = "zebra"
        "#,
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let problems = r.validate(&config).await;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("policies[0].config.max_in_flight: ")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("policies[1].type: unknown type `zebra`")),
        "{problems:?}"
    );
}
