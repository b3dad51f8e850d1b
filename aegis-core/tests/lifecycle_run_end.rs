//! A run ends when its response ends: one end path records the final status, the audit
//! record with the real usage and exactly one terminal event — for complete answers, for
//! streams that finish, are blocked mid-way or fail, and for callers that go away.
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use aegis_contracts::*;
use aegis_core::{Pipeline, graph::Durability};
use common::{Ban, Recorder, Scripted, entry, user};
use futures_util::StreamExt;

fn streamed(text: &str) -> ChatRequest {
    let mut req = user(text);
    req.stream = true;
    req
}

fn pipeline(provider: impl Provider, rec: &Arc<Recorder>) -> Pipeline {
    Pipeline::builder()
        .provider("main", Arc::new(provider))
        .guard(entry("ban", Ban::new("forbidden")))
        .telemetry(rec.clone())
        .durability(Durability::Sync)
        .build()
        .unwrap()
}

fn terminal_events(rec: &Recorder, run_id: &str) -> Vec<RunEventKind> {
    rec.0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.run_id == run_id && e.kind.is_terminal())
        .map(|e| e.kind.clone())
        .collect()
}

fn audit_of(rec: &Recorder, run_id: &str) -> Option<(Option<RunStatus>, Option<Usage>)> {
    rec.0.lock().unwrap().iter().find_map(|e| match &e.kind {
        RunEventKind::Audit { status, usage, .. } if e.run_id == run_id => Some((*status, *usage)),
        _ => None,
    })
}

async fn status_of(p: &Pipeline, run_id: &str) -> RunStatus {
    p.graph()
        .store()
        .latest(run_id)
        .await
        .unwrap()
        .unwrap()
        .status
}

/// Waits for the background end of a dropped run.
async fn eventually(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the condition never held");
}

#[tokio::test]
async fn a_streamed_run_is_running_until_its_last_chunk_is_read_then_completed_with_usage() {
    let rec = Arc::new(Recorder::default());
    let p = pipeline(Scripted::new(&["hel", "lo"]), &rec);
    let resp = p.chat(streamed("hi")).await.unwrap();
    let run_id = resp.meta.run_id.clone().unwrap();
    assert_eq!(
        status_of(&p, &run_id).await,
        RunStatus::Running,
        "unread chunks: not finished"
    );
    assert!(terminal_events(&rec, &run_id).is_empty());
    assert!(audit_of(&rec, &run_id).is_none(), "no audit before the end");

    let answer = resp.collect().await.unwrap();
    assert_eq!(answer.message().unwrap().text(), "hello");
    assert_eq!(status_of(&p, &run_id).await, RunStatus::Completed);
    let (status, usage) = audit_of(&rec, &run_id).unwrap();
    assert_eq!(status, Some(RunStatus::Completed));
    assert_eq!(
        usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((3, 5))
    );
    assert_eq!(terminal_events(&rec, &run_id), [RunEventKind::Completed]);
    let (state, _) = p.graph().snapshot(&run_id).await.unwrap().unwrap();
    assert_eq!(
        state.completion.unwrap().message().unwrap().text(),
        "hello",
        "the delivered answer is the run's output"
    );
}

#[tokio::test]
async fn a_stream_blocked_mid_way_is_stored_blocked_and_audited_as_such() {
    let rec = Arc::new(Recorder::default());
    let p = pipeline(
        Scripted::new(&["fine text, ", "then forbidden", " words"]),
        &rec,
    );
    let resp = p.chat(streamed("hi")).await.unwrap();
    let run_id = resp.meta.run_id.clone().unwrap();
    let ChatBody::Stream(mut stream) = resp.body else {
        panic!("a stream was asked for")
    };
    let mut error = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            error = Some(e);
        }
    }
    assert_eq!(error.unwrap().kind(), ErrorKind::PolicyBlocked);
    assert_eq!(status_of(&p, &run_id).await, RunStatus::Blocked);
    assert_eq!(audit_of(&rec, &run_id).unwrap().0, Some(RunStatus::Blocked));
    let terminal = terminal_events(&rec, &run_id);
    assert!(
        matches!(terminal.as_slice(), [RunEventKind::Blocked { error: ErrorKind::PolicyBlocked, code: Some(code), .. }] if code == "banned_word"),
        "{terminal:?}"
    );
}

#[tokio::test]
async fn a_stream_that_fails_mid_way_is_failed_and_keeps_the_usage_seen_so_far() {
    let rec = Arc::new(Recorder::default());
    let mut provider = Scripted::new(&["par", "tial"]);
    provider.fail_mid_stream = true;
    let p = pipeline(provider, &rec);
    let resp = p.chat(streamed("hi")).await.unwrap();
    let run_id = resp.meta.run_id.clone().unwrap();
    assert_eq!(
        resp.collect().await.unwrap_err().kind(),
        ErrorKind::Provider
    );
    assert_eq!(status_of(&p, &run_id).await, RunStatus::Failed);
    assert!(matches!(
        terminal_events(&rec, &run_id).as_slice(),
        [RunEventKind::Failed {
            error: ErrorKind::Provider,
            ..
        }]
    ));
}

#[tokio::test]
async fn a_caller_that_disconnects_mid_stream_leaves_a_cancelled_run() {
    let rec = Arc::new(Recorder::default());
    let p = pipeline(Scripted::new(&["one ", "two ", "three"]), &rec);
    let resp = p.chat(streamed("hi")).await.unwrap();
    let run_id = resp.meta.run_id.clone().unwrap();
    let ChatBody::Stream(mut stream) = resp.body else {
        panic!("a stream was asked for")
    };
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream);
    eventually(|| !terminal_events(&rec, &run_id).is_empty()).await;
    assert_eq!(terminal_events(&rec, &run_id), [RunEventKind::Cancelled]);
    assert_eq!(status_of(&p, &run_id).await, RunStatus::Cancelled);
    assert_eq!(
        audit_of(&rec, &run_id).unwrap().0,
        Some(RunStatus::Cancelled)
    );
}

/// Never answers.
struct Hangs;

#[async_trait]
impl Provider for Hangs {
    fn name(&self) -> &str {
        "hangs"
    }
    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::all()
    }
    async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, Error> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_request_dropped_while_the_provider_thinks_is_cancelled() {
    let rec = Arc::new(Recorder::default());
    let p = pipeline(Hangs, &rec);
    let mut req = user("hi");
    req.ctx.run_id = Some("run-dropped".into());
    let waited = tokio::time::timeout(Duration::from_millis(50), p.chat(req)).await;
    assert!(waited.is_err(), "the provider never answers");
    eventually(|| !terminal_events(&rec, "run-dropped").is_empty()).await;
    assert_eq!(
        terminal_events(&rec, "run-dropped"),
        [RunEventKind::Cancelled]
    );
    assert_eq!(status_of(&p, "run-dropped").await, RunStatus::Cancelled);
}

#[tokio::test]
async fn every_run_has_exactly_one_terminal_event_and_its_audit_comes_first() {
    let rec = Arc::new(Recorder::default());
    let p = pipeline(Scripted::new(&["ok"]), &rec);
    let done = p.chat(user("hi")).await.unwrap();
    let blocked = p.chat(user("forbidden")).await.unwrap_err();
    for run_id in [
        done.meta.run_id.clone().unwrap(),
        blocked.run_id().unwrap().to_owned(),
    ] {
        let events: Vec<RunEventKind> = rec
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.run_id == run_id)
            .map(|e| e.kind.clone())
            .collect();
        let terminal: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].is_terminal())
            .collect();
        assert_eq!(terminal, [events.len() - 1], "{events:?}");
        assert!(matches!(
            events[events.len() - 2],
            RunEventKind::Audit { .. }
        ));
    }
}

#[tokio::test]
async fn a_streamed_answer_that_needs_approval_pauses_the_run_and_resumes_into_the_whole_answer() {
    use common::AskFor;
    let rec = Arc::new(Recorder::default());
    let provider = Scripted::new(&["the wire ", "transfer ", "is ready"]);
    let calls = provider.calls.clone();
    let p = Pipeline::builder()
        .provider("main", Arc::new(provider))
        .guard(entry("ask", AskFor("transfer".into())).with_stages(&[Stage::Output]))
        .telemetry(rec.clone())
        .build()
        .unwrap();
    let resp = p.chat(streamed("status?")).await.unwrap();
    let run_id = resp.meta.run_id.clone().unwrap();
    let err = resp.collect().await.unwrap_err();
    assert_eq!(
        (err.kind(), err.code(), err.run_id()),
        (
            ErrorKind::ApprovalRequired,
            "approval_required",
            Some(run_id.as_str())
        ),
        "{err}"
    );
    assert_eq!(status_of(&p, &run_id).await, RunStatus::Paused);
    assert!(
        terminal_events(&rec, &run_id).is_empty(),
        "a pause is not an end"
    );
    assert!(audit_of(&rec, &run_id).is_none());

    let outcome = p.resume(&run_id, Approval::Approve).await.unwrap();
    let aegis_core::PipelineOutcome::Response(answer) = outcome else {
        panic!("approved: the answer")
    };
    let answer = answer.collect().await.unwrap();
    assert_eq!(
        answer.message().unwrap().text(),
        "the wire transfer is ready",
        "the whole upstream answer, kept"
    );
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no second call"
    );
    assert_eq!(status_of(&p, &run_id).await, RunStatus::Completed);
    assert_eq!(terminal_events(&rec, &run_id), [RunEventKind::Completed]);
    let (state, _) = p.graph().snapshot(&run_id).await.unwrap().unwrap();
    assert_eq!(
        state.completion.unwrap().message().unwrap().text(),
        "the wire transfer is ready"
    );
}

#[tokio::test]
async fn a_rejected_streamed_answer_is_never_released_and_ends_rejected() {
    use common::AskFor;
    let rec = Arc::new(Recorder::default());
    let p = Pipeline::builder()
        .provider("main", Arc::new(Scripted::new(&["please transfer"])))
        .guard(entry("ask", AskFor("transfer".into())).with_stages(&[Stage::Output]))
        .telemetry(rec.clone())
        .build()
        .unwrap();
    let resp = p.chat(streamed("status?")).await.unwrap();
    let run_id = resp.meta.run_id.clone().unwrap();
    assert!(resp.collect().await.is_err());
    let err = p
        .resume(
            &run_id,
            Approval::Reject {
                reason: "no".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rejected");
    assert_eq!(status_of(&p, &run_id).await, RunStatus::Rejected);
    assert_eq!(terminal_events(&rec, &run_id), [RunEventKind::Rejected]);
}

/// Hangs on its first call, answers afterwards.
#[derive(Default)]
struct HangsOnce(std::sync::atomic::AtomicUsize);

#[async_trait]
impl Provider for HangsOnce {
    fn name(&self) -> &str {
        "hangs-once"
    }
    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::all()
    }
    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        Ok(ChatResponse::complete(
            ResponseMeta::new("hangs-once", &req.model),
            Completion::text("1", &req.model, "done"),
        ))
    }
}

#[tokio::test]
async fn a_dropped_resume_keeps_its_claim_until_the_lease_expires_then_recovers_once() {
    use common::AskFor;
    let rec = Arc::new(Recorder::default());
    let p = Pipeline::builder()
        .provider("main", Arc::new(HangsOnce::default()))
        .guard(entry("ask", AskFor("transfer".into())).with_stages(&[Stage::Input]))
        .telemetry(rec.clone())
        .resume_lease(Duration::from_millis(1000))
        .build()
        .unwrap();
    let aegis_core::PipelineOutcome::Paused { run_id, .. } =
        p.run(user("transfer it")).await.unwrap()
    else {
        panic!("the guard asks")
    };
    let dropped = tokio::time::timeout(
        Duration::from_millis(50),
        p.resume(&run_id, Approval::Approve),
    )
    .await;
    assert!(dropped.is_err(), "the provider hangs");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        status_of(&p, &run_id).await,
        RunStatus::Running,
        "a dropped resume is left to recovery, not cancelled"
    );
    assert!(terminal_events(&rec, &run_id).is_empty());
    let again = p.resume(&run_id, Approval::Approve).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict);
    assert!(again.message().contains("already being resumed"), "{again}");
    assert!(
        p.recover(&run_id).await.unwrap().is_none(),
        "the lease is still live"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let recovered = p
        .recover(&run_id)
        .await
        .unwrap()
        .expect("the lease expired");
    let aegis_core::PipelineOutcome::Response(answer) = recovered else {
        panic!("the recorded approval is carried out")
    };
    assert_eq!(
        answer.collect().await.unwrap().message().unwrap().text(),
        "done"
    );
    assert_eq!(status_of(&p, &run_id).await, RunStatus::Completed);
    assert!(p.recover(&run_id).await.unwrap().is_none(), "exactly once");
    assert_eq!(terminal_events(&rec, &run_id), [RunEventKind::Completed]);
}
