//! Every rule of the guard chain (DESIGN.md §4), proven on the chain itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use aegis_contracts::*;
use aegis_core::{
    Telemetry,
    guard::{ChainDecision, GuardChain},
};
use common::*;

fn input(text: &str) -> GuardSubject {
    GuardSubject::Input {
        messages: vec![Message::user(text)],
    }
}

#[tokio::test]
async fn guards_run_in_config_order_and_sanitize_feeds_the_next_guard() {
    // The redactor turns "secret" into "banana"; the ban on "banana" must see the sanitized text.
    let chain = GuardChain::new(vec![
        entry("redact", Redact::new("secret", "banana")),
        entry("ban", Ban::new("banana")),
    ]);
    let out = chain
        .check(input("my secret"), &RequestContext::default(), &[])
        .await;
    match out.decision {
        ChainDecision::Blocked(v) => assert_eq!(v.guard, "ban"),
        other => panic!("expected the second guard to block, got {other:?}"),
    }
    assert_eq!(out.verdicts.len(), 2);
    assert_eq!(out.verdicts[0].0.guard, "redact");
}

#[tokio::test]
async fn sanitized_subject_is_returned_when_nothing_blocks() {
    let chain = GuardChain::new(vec![entry("redact", Redact::new("secret", "******"))]);
    let out = chain
        .check(
            input("a secret and a secret"),
            &RequestContext::default(),
            &[],
        )
        .await;
    assert_eq!(out.decision, ChainDecision::Allowed);
    assert!(out.sanitized());
    assert_eq!(out.subject.segments()[0].text, "a ****** and a ******");
}

#[tokio::test]
async fn block_short_circuits_the_rest_of_the_chain() {
    let later = Ban::new("never-present");
    let calls = later.calls.clone();
    let chain = GuardChain::new(vec![
        entry("first", Ban::new("bad")),
        entry("second", later),
    ]);
    let out = chain
        .check(input("bad input"), &RequestContext::default(), &[])
        .await;
    assert!(matches!(out.decision, ChainDecision::Blocked(_)));
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the guard after a block must not run"
    );
    let err = out.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyBlocked);
    assert_eq!(err.code(), "banned_word");
}

#[tokio::test]
async fn require_approval_stops_the_chain_unless_already_approved() {
    let chain = GuardChain::new(vec![
        entry("ask", AskFor("wire money".into())),
        entry("ban", Ban::new("zzz")),
    ]);
    let out = chain
        .check(input("please wire money"), &RequestContext::default(), &[])
        .await;
    assert!(matches!(out.decision, ChainDecision::NeedsApproval(_)));
    let approved = chain
        .check(
            input("please wire money"),
            &RequestContext::default(),
            &["ask"],
        )
        .await;
    assert_eq!(approved.decision, ChainDecision::Allowed);
    assert!(
        !approved.verdicts[0].1,
        "an approved RequireApproval is recorded as not enforced"
    );
}

/// Approving one guard's request waives no other guard's: a second guard asking for
/// approval on the same text still pauses.
#[tokio::test]
async fn an_approval_waives_only_the_guard_it_was_granted_to() {
    let chain = GuardChain::new(vec![
        entry("ask", AskFor("wire money".into())),
        entry("ask-too", AskFor("money".into())),
    ]);
    let ctx = RequestContext::default();
    let out = chain
        .check(input("please wire money"), &ctx, &["ask"])
        .await;
    match &out.decision {
        ChainDecision::NeedsApproval(v) => assert_eq!(v.guard, "ask-too"),
        other => panic!("the second guard must still ask: {other:?}"),
    }
    let out = chain
        .check(input("please wire money"), &ctx, &["nobody"])
        .await;
    match &out.decision {
        ChainDecision::NeedsApproval(v) => assert_eq!(v.guard, "ask"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_failing_guard_blocks_by_default() {
    let chain = GuardChain::new(vec![entry("broken", Broken)]);
    let out = chain
        .check(input("hello"), &RequestContext::default(), &[])
        .await;
    match out.decision {
        ChainDecision::Blocked(v) => {
            assert_eq!(v.guard, "broken");
            assert!(
                matches!(v.decision, Decision::Block { ref code, .. } if code == "guard_unavailable")
            );
        }
        other => panic!("fail-closed guard must block, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_guard_that_times_out_blocks_by_default() {
    let chain = GuardChain::new(vec![entry_with("slow", Slow, |p| {
        p.timeout = Duration::from_millis(50)
    })]);
    let out = chain
        .check(input("hello"), &RequestContext::default(), &[])
        .await;
    match out.decision {
        ChainDecision::Blocked(v) => assert!(format!("{:?}", v.decision).contains("timed out")),
        other => panic!("timeout must block, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn fail_open_allows_but_records_the_failure() {
    let rec = Arc::new(Recorder::default());
    let chain = GuardChain::new(vec![
        entry_with("broken", Broken, |p| p.fail_mode = FailMode::Open),
        entry_with("slow", Slow, |p| {
            p.fail_mode = FailMode::Open;
            p.timeout = Duration::from_millis(10)
        }),
    ])
    .with_telemetry(Telemetry::new([rec.clone() as Arc<dyn TelemetrySink>]));
    let ctx = RequestContext::default().with_run_id("r1");
    let out = chain.check(input("hello"), &ctx, &[]).await;
    assert_eq!(out.decision, ChainDecision::Allowed);
    let events = rec.0.lock().unwrap().clone();
    let failures: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::GuardFailed {
                guard,
                failed_open,
                error,
                ..
            } => Some((guard.clone(), *failed_open, *error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        vec![
            ("broken".into(), true, ErrorKind::Provider),
            ("slow".into(), true, ErrorKind::Timeout)
        ]
    );
    assert!(events.iter().all(|e| e.run_id == "r1"));
}

#[tokio::test]
async fn shadow_mode_records_a_block_without_blocking() {
    let rec = Arc::new(Recorder::default());
    let chain = GuardChain::new(vec![entry_with("new-rule", Ban::new("bad"), |p| {
        p.mode = GuardMode::Shadow
    })])
    .with_telemetry(Telemetry::new([rec.clone() as Arc<dyn TelemetrySink>]));
    let out = chain
        .check(input("bad input"), &RequestContext::default(), &[])
        .await;
    assert_eq!(out.decision, ChainDecision::Allowed);
    assert_eq!(out.verdicts.len(), 1);
    assert!(out.verdicts[0].0.is_block() && !out.verdicts[0].1);
    let events = rec.0.lock().unwrap();
    assert!(
        matches!(&events[0].kind, RunEventKind::Verdict { enforced: false, verdict, .. } if verdict.is_block())
    );
}

#[tokio::test]
async fn shadow_sanitizer_does_not_change_the_subject() {
    let chain = GuardChain::new(vec![entry_with("r", Redact::new("secret", "***"), |p| {
        p.mode = GuardMode::Shadow
    })]);
    let out = chain
        .check(input("a secret"), &RequestContext::default(), &[])
        .await;
    assert_eq!(out.subject.segments()[0].text, "a secret");
}

#[tokio::test]
async fn guards_only_judge_the_stages_they_declare() {
    let mut ban = Ban::new("bad");
    ban.stages = vec![Stage::Output];
    let chain = GuardChain::new(vec![entry("out-only", ban)]);
    let out = chain
        .check(input("bad input"), &RequestContext::default(), &[])
        .await;
    assert_eq!(out.decision, ChainDecision::Allowed);
    let out = chain
        .check(
            GuardSubject::Output {
                message: Message::assistant("bad output"),
            },
            &RequestContext::default(),
            &[],
        )
        .await;
    assert!(matches!(out.decision, ChainDecision::Blocked(_)));
}

#[tokio::test]
async fn a_sanitize_from_a_guard_that_does_not_declare_it_fails_closed() {
    struct Liar;
    #[async_trait]
    impl Guardrail for Liar {
        fn capabilities(&self) -> GuardCapabilities {
            GuardCapabilities::new(Stage::ALL, Granularity::Char)
        }
        async fn check(&self, _: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
            Ok(Verdict::sanitize(vec![Edit {
                segment: 0,
                start: 0,
                end: 1,
                replacement: "x".into(),
            }]))
        }
    }
    let chain = GuardChain::new(vec![entry("liar", Liar)]);
    let out = chain
        .check(input("hello"), &RequestContext::default(), &[])
        .await;
    assert!(matches!(out.decision, ChainDecision::Blocked(_)));
}

#[tokio::test]
async fn out_of_range_edits_block_and_leave_the_subject_untouched() {
    struct BadEdit;
    #[async_trait]
    impl Guardrail for BadEdit {
        fn capabilities(&self) -> GuardCapabilities {
            GuardCapabilities::new(Stage::ALL, Granularity::Char).sanitizing()
        }
        async fn check(&self, _: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
            Ok(Verdict::sanitize(vec![Edit {
                segment: 0,
                start: 2,
                end: 999,
                replacement: "x".into(),
            }]))
        }
    }
    let chain = GuardChain::new(vec![entry("bad", BadEdit)]);
    let out = chain
        .check(input("hello"), &RequestContext::default(), &[])
        .await;
    assert!(matches!(out.decision, ChainDecision::Blocked(_)));
    assert_eq!(out.subject.segments()[0].text, "hello");
}

#[tokio::test]
async fn judge_request_covers_tool_definitions_tool_results_and_prompts() {
    let chain = GuardChain::new(vec![entry("redact", Redact::new("secret", "[x]"))]);
    let mut req = ChatRequest::new(
        "m",
        vec![
            Message::user("my secret"),
            Message::tool("call-1", "tool says secret"),
        ],
    )
    .with_tool(ToolSpec::function(
        "lookup",
        "finds a secret",
        serde_json::json!({"type": "object"}),
    ));
    let j = chain
        .judge_request(&mut req, &RequestContext::default(), None)
        .await;
    assert_eq!(j.decision, ChainDecision::Allowed);
    assert_eq!(
        req.tools[0].function.description.as_deref(),
        Some("finds a [x]")
    );
    assert_eq!(req.messages[1].text(), "tool says [x]");
    assert_eq!(req.messages[0].text(), "my [x]");
}

#[tokio::test]
async fn judge_completion_checks_tool_call_arguments() {
    let chain = GuardChain::new(vec![entry("ban", Ban::new("rm -rf"))]);
    let mut c = Completion::text("1", "m", "running it");
    c.choices[0]
        .message
        .tool_calls
        .push(ToolCall::new("c1", "shell", r#"{"cmd":"rm -rf /"}"#));
    let j = chain
        .judge_completion(&mut c, &RequestContext::default(), None)
        .await;
    assert!(matches!(j.decision, ChainDecision::Blocked(_)));
}

/// A local-model guard that computes for a long time without ever yielding.
struct Spinning(Duration);

#[async_trait]
impl Guardrail for Spinning {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::FullText).with_cost(Cost::Moderate)
    }

    async fn check(&self, _: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        let until = std::time::Instant::now() + self.0;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
        Ok(Verdict::allow())
    }
}

#[test]
fn a_cpu_heavy_guard_runs_off_the_async_workers_and_its_timeout_really_preempts() {
    // One worker thread: a guard computing on it would stall everything else.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let chain = GuardChain::new(vec![entry_with(
            "model",
            Spinning(Duration::from_secs(2)),
            |p| p.timeout = Duration::from_millis(150),
        )]);
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        let started = std::time::Instant::now();
        let out = chain
            .check(input("hello"), &RequestContext::default(), &[])
            .await;
        let took = started.elapsed();
        ticker.abort();
        assert!(
            took < Duration::from_millis(1000),
            "the deadline held: {took:?}"
        );
        let ChainDecision::Blocked(v) = out.decision else {
            panic!("a timed-out guard fails closed: {:?}", out.decision);
        };
        let Decision::Block { reason, .. } = &v.decision else {
            panic!("{v:?}")
        };
        assert!(reason.contains("timed out"), "{reason}");
        assert!(
            ticks.load(std::sync::atomic::Ordering::Relaxed) >= 5,
            "other tasks ran while the guard computed"
        );
    });
}
