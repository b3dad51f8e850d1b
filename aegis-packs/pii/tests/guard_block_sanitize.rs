//! The guard's verdicts: block with code `pii`, sanitize with non-overlapping edits per
//! segment, findings carrying entity, span, score and recognizer; strict config.
#![allow(clippy::unwrap_used)]

use aegis_contracts::{Decision, GuardSubject, Guardrail, Message, RequestContext, Stage};
use aegis_pii::{PiiAction, PiiGuard, PiiGuardConfig};

fn subject() -> GuardSubject {
    GuardSubject::Input {
        messages: vec![
            Message::system("be nice"),
            Message::user("I am jane@example.com, card 4111-1111-1111-1111, ip 10.1.2.3"),
        ],
    }
}

#[tokio::test]
async fn block_action_blocks_with_pii_code_and_findings() {
    let g = PiiGuard::new(PiiGuardConfig {
        action: PiiAction::Block,
        ..Default::default()
    })
    .unwrap();
    let v = g
        .check(&subject(), &RequestContext::default())
        .await
        .unwrap();
    let Decision::Block { code, reason } = &v.decision else {
        panic!("{v:?}")
    };
    assert_eq!(code, "pii");
    assert!(reason.contains("CREDIT_CARD"));
    let kinds: Vec<_> = v.findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["EMAIL_ADDRESS", "CREDIT_CARD", "IP_ADDRESS"]);
    let card = &v.findings[1];
    assert_eq!(
        (
            card.span.unwrap().segment,
            card.score,
            card.detector.as_str()
        ),
        (1, 1.0, "CreditCardRecognizer")
    );
    assert_eq!(v.score, 1.0);
}

#[tokio::test]
async fn sanitize_edits_apply_cleanly() {
    let g = PiiGuard::new(PiiGuardConfig::default()).unwrap();
    let mut s = subject();
    let v = g.check(&s, &RequestContext::default()).await.unwrap();
    let Decision::Sanitize { edits } = &v.decision else {
        panic!("{v:?}")
    };
    s.apply_edits(edits).unwrap();
    assert_eq!(
        s.segments()[1].text,
        "I am <EMAIL_ADDRESS>, card <CREDIT_CARD>, ip <IP_ADDRESS>"
    );
    assert_eq!(s.segments()[0].text, "be nice");
}

#[tokio::test]
async fn clean_text_is_allowed() {
    let g = PiiGuard::new(PiiGuardConfig::default()).unwrap();
    let s = GuardSubject::Input {
        messages: vec![Message::user("The meeting moved to room 12 at noon.")],
    };
    assert!(
        g.check(&s, &RequestContext::default())
            .await
            .unwrap()
            .is_allow()
    );
}

#[test]
fn capabilities_cover_all_stages_and_sanitize() {
    let g = PiiGuard::new(PiiGuardConfig::default()).unwrap();
    let c = g.capabilities();
    assert!(c.sanitizes);
    assert!(Stage::ALL.iter().all(|s| c.applies_to(*s)));
}

#[test]
fn config_is_strict() {
    assert!(
        serde_json::from_value::<PiiGuardConfig>(serde_json::json!({"threshold": 0.2})).is_err()
    );
    let cfg: PiiGuardConfig =
        serde_json::from_value(serde_json::json!({"entities": ["NOPE"]})).unwrap();
    assert!(PiiGuard::new(cfg).is_err());
    let schema = schemars::schema_for!(PiiGuardConfig);
    assert!(
        serde_json::to_string(&schema)
            .unwrap()
            .contains("score_threshold")
    );
}

#[test]
fn check_future_is_send() {
    fn send<T: Send + 'static>(_: T) {}
    let g: &'static PiiGuard =
        Box::leak(Box::new(PiiGuard::new(PiiGuardConfig::default()).unwrap()));
    let s: &'static GuardSubject = Box::leak(Box::new(subject()));
    let c: &'static RequestContext = Box::leak(Box::new(RequestContext::default()));
    send(g.check(s, c));
}
