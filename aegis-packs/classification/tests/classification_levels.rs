//! Classification labels every request with a level from rules, detectors and the caller
//! (who can raise it, never lower it), within a time limit that fails closed by default.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use aegis_classification::{Classification, ClassificationConfig};
use aegis_contracts::*;
use serde_json::json;

fn policy(config: serde_json::Value, guards: &[(String, Arc<dyn Guardrail>)]) -> Classification {
    Classification::new(serde_json::from_value(config).unwrap(), guards).unwrap()
}

async fn level(p: &Classification, text: &str, labels: &[(&str, &str)]) -> Result<Step, Error> {
    let request = ChatRequest::new("m", vec![Message::user(text)]);
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let context = ContextView::new("run-1", None, labels);
    p.step(&StepInput::new(Position::AfterAuth, &request, &context))
        .await
}

/// A detector guard: finds `kind` wherever `needle` occurs; optionally slow.
struct Finds {
    needle: &'static str,
    kind: &'static str,
    delay: Duration,
}

#[async_trait]
impl Guardrail for Finds {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::FullText)
    }
    async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        tokio::time::sleep(self.delay).await;
        let hit = s
            .segments()
            .iter()
            .any(|seg| seg.text.contains(self.needle));
        Ok(if hit {
            Verdict::allow().with_finding(Finding::new(self.kind, None, 1.0, "finds"))
        } else {
            Verdict::allow()
        })
    }
}

fn finds(
    needle: &'static str,
    kind: &'static str,
    delay_ms: u64,
) -> Vec<(String, Arc<dyn Guardrail>)> {
    vec![(
        "pii".to_owned(),
        Arc::new(Finds {
            needle,
            kind,
            delay: Duration::from_millis(delay_ms),
        }) as Arc<dyn Guardrail>,
    )]
}

#[tokio::test]
async fn rules_and_detectors_set_the_highest_level_that_matches() {
    let p = policy(
        json!({
            "rules": [
                {"keywords": ["Salary"], "level": "confidential"},
                {"patterns": ["(?i)project\\s+nightingale"], "level": "restricted"},
            ],
            "detectors": [{"guard": "pii", "kinds": {"CREDIT_CARD": "restricted"}, "level": "internal"}],
        }),
        &finds("4111", "CREDIT_CARD", 0),
    );
    let of = |s: Step| s.labels[CLASSIFICATION_LABEL].clone();
    assert_eq!(of(level(&p, "hello", &[]).await.unwrap()), "public");
    assert_eq!(
        of(level(&p, "what is my SALARY", &[]).await.unwrap()),
        "confidential"
    );
    assert_eq!(
        of(level(&p, "about Project  Nightingale and salary", &[])
            .await
            .unwrap()),
        "restricted"
    );
    assert_eq!(
        of(level(&p, "card 4111 1111", &[]).await.unwrap()),
        "restricted"
    );
}

#[tokio::test]
async fn the_caller_can_raise_the_level_but_never_lower_it() {
    let p = policy(
        json!({"rules": [{"keywords": ["salary"], "level": "confidential"}]}),
        &[],
    );
    let asked = |l: &'static str| [(REQUESTED_CLASSIFICATION_LABEL, l)];
    let of = |s: Step| s.labels[CLASSIFICATION_LABEL].clone();
    assert_eq!(
        of(level(&p, "hi", &asked("restricted")).await.unwrap()),
        "restricted"
    );
    assert_eq!(
        of(level(&p, "my salary", &asked("public")).await.unwrap()),
        "confidential",
        "a lower requested level changes nothing"
    );
    let err = level(&p, "hi", &asked("top-secret")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn a_scan_that_outlives_its_time_limit_fails_closed_by_default_and_open_high_when_told() {
    let closed = policy(
        json!({"timeout_ms": 20, "detectors": [{"guard": "pii", "level": "internal"}]}),
        &finds("x", "EMAIL_ADDRESS", 500),
    );
    let err = level(&closed, "x", &[]).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::PolicyBlocked, "classification_timeout")
    );
    let open = policy(
        json!({"timeout_ms": 20, "fail_mode": "open", "detectors": [{"guard": "pii", "level": "internal"}]}),
        &finds("x", "EMAIL_ADDRESS", 500),
    );
    let step = level(&open, "x", &[]).await.unwrap();
    assert_eq!(
        step.labels[CLASSIFICATION_LABEL], "restricted",
        "failing open labels the request with the highest level, never a lower one"
    );
}

#[tokio::test]
async fn require_approval_at_a_level_asks_for_a_human() {
    let p = policy(
        json!({"rules": [{"keywords": ["merger"], "level": "restricted"}], "require_approval_at": "confidential"}),
        &[],
    );
    assert!(level(&p, "hello", &[]).await.unwrap().approval.is_none());
    let step = level(&p, "the merger plan", &[]).await.unwrap();
    assert!(step.approval.unwrap().contains("restricted"));
}

#[test]
fn bad_config_names_every_problem_with_its_path() {
    let config: ClassificationConfig = serde_json::from_value(json!({
        "levels": ["low", "high"],
        "default": "medium",
        "rules": [{"patterns": ["("], "level": "high"}, {"level": "low"}],
        "detectors": [{"guard": "ghost"}],
        "require_approval_at": "secret",
    }))
    .unwrap();
    let err = Classification::new(config, &[]).unwrap_err();
    let m = err.message();
    for needle in [
        "default: unknown level `medium`",
        "rules[0].patterns: ",
        "rules[1]: give `keywords` or `patterns`",
        "detectors[0].guard: no guardrail has id `ghost`",
        "require_approval_at: unknown level `secret`",
    ] {
        assert!(m.contains(needle), "missing {needle:?} in {m}");
    }
}

#[tokio::test]
async fn invisible_characters_tool_calls_and_unreadable_parts_do_not_hide_the_level() {
    let p = policy(
        json!({"rules": [{"keywords": ["salary"], "level": "confidential"}], "non_text_level": "internal"}),
        &[],
    );
    let of = |s: Step| s.labels[CLASSIFICATION_LABEL].clone();
    assert_eq!(
        of(level(&p, "my sal\u{200b}a\u{2060}ry", &[]).await.unwrap()),
        "confidential"
    );

    let mut call = Message::assistant("");
    call.tool_calls
        .push(ToolCall::new("c1", "lookup", "{\"q\": \"salary bands\"}"));
    let request = ChatRequest::new("m", vec![Message::user("look it up"), call]);
    let context = ContextView::new("run-1", None, Default::default());
    let step = p
        .step(&StepInput::new(Position::AfterAuth, &request, &context))
        .await
        .unwrap();
    assert_eq!(of(step), "confidential", "tool-call arguments are read");

    let mut image = Message::user("what is this?");
    image.content = Some(Content::Parts(vec![
        ContentPart::Text {
            text: "what is this?".into(),
        },
        ContentPart::ImageUrl {
            image_url: json!({"url": "data:image/png;base64,AAAA"}),
        },
    ]));
    let request = ChatRequest::new("m", vec![image]);
    let step = p
        .step(&StepInput::new(Position::AfterAuth, &request, &context))
        .await
        .unwrap();
    assert_eq!(
        of(step),
        "internal",
        "a part no rule can read gets non_text_level"
    );
}
