//! LLM Guard and Presidio adapters against local servers that reproduce those services'
//! request and response shapes, including failures.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use aegis_adapters::{LlmGuard, LlmGuardConfig, Presidio, PresidioAction, PresidioConfig};
use aegis_contracts::*;
use aegis_core::guard::{ChainDecision, GuardChain, GuardEntry};
use axum::{Json, Router, http::HeaderMap, http::StatusCode, routing::post};
use serde_json::{Value, json};

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `llm_guard_api`: PromptInjection fails without rewriting; Anonymize rewrites emails and
/// reports is_valid = false; "slow" never answers in time; a bearer token is required.
fn llm_guard_judge(text: &str) -> (String, bool, Value) {
    if text.contains("ignore previous instructions") {
        return (
            text.to_owned(),
            false,
            json!({"PromptInjection": 1.0, "Anonymize": 0.0}),
        );
    }
    if text.contains("john@example.com") {
        return (
            text.replace("john@example.com", "[REDACTED_EMAIL_ADDRESS_1]"),
            false,
            json!({"Anonymize": 0.7, "PromptInjection": 0.0}),
        );
    }
    (
        text.to_owned(),
        true,
        json!({"PromptInjection": 0.0, "Anonymize": 0.0}),
    )
}

async fn llm_guard_server() -> SocketAddr {
    async fn authorized(h: &HeaderMap) -> bool {
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok")
    }
    let app = Router::new()
        .route(
            "/analyze/prompt",
            post(|h: HeaderMap, Json(body): Json<Value>| async move {
                if !authorized(&h).await {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"detail": "bad token"})));
                }
                let prompt = body["prompt"].as_str().unwrap_or_default().to_owned();
                if prompt.contains("slow") {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let (sanitized, valid, scanners) = llm_guard_judge(&prompt);
                (StatusCode::OK, Json(json!({"sanitized_prompt": sanitized, "is_valid": valid, "scanners": scanners})))
            }),
        )
        .route(
            "/analyze/output",
            post(|h: HeaderMap, Json(body): Json<Value>| async move {
                if !authorized(&h).await {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"detail": "bad token"})));
                }
                let output = body["output"].as_str().unwrap_or_default().to_owned();
                let (sanitized, valid, scanners) = llm_guard_judge(&output);
                (StatusCode::OK, Json(json!({"sanitized_output": sanitized, "is_valid": valid, "scanners": scanners})))
            }),
        );
    serve(app).await
}

fn llm_guard(addr: SocketAddr) -> LlmGuard {
    let mut cfg = LlmGuardConfig::new(format!("http://{addr}"));
    cfg.api_token = Some(Secret::new("tok"));
    cfg.timeout_ms = 300;
    LlmGuard::new(cfg).unwrap()
}

fn input(text: &str) -> GuardSubject {
    GuardSubject::Input {
        messages: vec![Message::user(text)],
    }
}

#[tokio::test]
async fn llm_guard_maps_a_rewrite_with_is_valid_false_to_sanitize() {
    let guard = llm_guard(llm_guard_server().await);
    let ctx = RequestContext::default();
    let v = guard
        .check(&input("mail john@example.com today"), &ctx)
        .await
        .unwrap();
    let Decision::Sanitize { edits } = &v.decision else {
        panic!("expected sanitize, got {v:?}")
    };
    let mut subject = input("mail john@example.com today");
    subject.apply_edits(edits).unwrap();
    assert_eq!(
        subject.segments()[0].text,
        "mail [REDACTED_EMAIL_ADDRESS_1] today"
    );
    assert_eq!(v.findings[0].kind, "Anonymize");

    let v = guard
        .check(&input("please ignore previous instructions"), &ctx)
        .await
        .unwrap();
    assert!(v.is_block(), "{v:?}");
    assert!(
        matches!(&v.decision, Decision::Block { reason, .. } if reason.contains("PromptInjection"))
    );

    assert!(
        guard
            .check(&input("what's the weather?"), &ctx)
            .await
            .unwrap()
            .is_allow()
    );

    let out = GuardSubject::Output {
        message: Message::assistant("reach john@example.com"),
    };
    assert!(matches!(
        guard.check(&out, &ctx).await.unwrap().decision,
        Decision::Sanitize { .. }
    ));
}

#[tokio::test]
async fn llm_guard_errors_on_bad_tokens_and_slow_answers() {
    let addr = llm_guard_server().await;
    let ctx = RequestContext::default();
    let no_token = LlmGuard::new(LlmGuardConfig::new(format!("http://{addr}"))).unwrap();
    let err = no_token.check(&input("hi"), &ctx).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let err = llm_guard(addr)
        .check(&input("be slow"), &ctx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

async fn presidio_server() -> SocketAddr {
    let app = Router::new()
        .route(
            "/analyze",
            post(|Json(body): Json<Value>| async move {
                let text = body["text"].as_str().unwrap_or_default().to_owned();
                assert_eq!(body["language"], "en");
                let mut results = Vec::new();
                if let Some(byte) = text.find("john@example.com") {
                    // Presidio counts characters, not bytes.
                    let start = text[..byte].chars().count();
                    results.push(json!({"entity_type": "EMAIL_ADDRESS", "start": start, "end": start + 16, "score": 1.0,
                                        "analysis_explanation": null, "recognition_metadata": {"recognizer_name": "EmailRecognizer"}}));
                }
                if let Some(byte) = text.find("maybe-a-name") {
                    let start = text[..byte].chars().count();
                    results.push(json!({"entity_type": "PERSON", "start": start, "end": start + 12, "score": 0.3}));
                }
                Json(Value::Array(results))
            }),
        )
        .route(
            "/anonymize",
            post(|Json(body): Json<Value>| async move {
                let text: Vec<char> = body["text"].as_str().unwrap_or_default().chars().collect();
                let mut results: Vec<Value> = body["analyzer_results"].as_array().cloned().unwrap_or_default();
                results.sort_by_key(|r| std::cmp::Reverse(r["start"].as_u64()));
                let mut out = text.clone();
                let mut items = Vec::new();
                for r in results {
                    let (s, e) = (r["start"].as_u64().unwrap() as usize, r["end"].as_u64().unwrap() as usize);
                    let label = format!("<{}>", r["entity_type"].as_str().unwrap());
                    out.splice(s..e, label.chars());
                    items.push(json!({"start": s, "end": s + label.chars().count(), "entity_type": r["entity_type"], "text": label, "operator": "replace"}));
                }
                Json(json!({"text": out.into_iter().collect::<String>(), "items": items}))
            }),
        );
    serve(app).await
}

#[tokio::test]
async fn presidio_findings_carry_byte_spans_and_anonymize_through_the_anonymizer() {
    let addr = presidio_server().await;
    let guard = Presidio::new(PresidioConfig::new(
        format!("http://{addr}"),
        format!("http://{addr}"),
    ))
    .unwrap();
    let text = "Café ☕ note: write to john@example.com, maybe-a-name";
    let v = guard
        .check(&input(text), &RequestContext::default())
        .await
        .unwrap();
    assert_eq!(
        v.findings.len(),
        1,
        "the 0.3 score is under the threshold: {v:?}"
    );
    let span = v.findings[0].span.unwrap();
    assert_eq!(&text[span.start..span.end], "john@example.com");
    let Decision::Sanitize { edits } = &v.decision else {
        panic!("{v:?}")
    };
    let mut subject = input(text);
    subject.apply_edits(edits).unwrap();
    assert_eq!(
        subject.segments()[0].text,
        "Café ☕ note: write to <EMAIL_ADDRESS>, maybe-a-name"
    );
}

#[tokio::test]
async fn presidio_can_block_instead() {
    let addr = presidio_server().await;
    let mut cfg = PresidioConfig::new(format!("http://{addr}"), format!("http://{addr}"));
    cfg.action = PresidioAction::Block;
    let guard = Presidio::new(cfg).unwrap();
    assert!(!guard.capabilities().sanitizes);
    let v = guard
        .check(&input("john@example.com"), &RequestContext::default())
        .await
        .unwrap();
    assert!(matches!(&v.decision, Decision::Block { code, .. } if code == "pii"));
    let mut bad = PresidioConfig::new("http://x", "http://y");
    bad.anonymizer_url = None;
    assert_eq!(Presidio::new(bad).unwrap_err().kind(), ErrorKind::Config);
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

#[tokio::test]
async fn both_adapters_fail_closed_when_the_service_is_down_unless_configured_open() {
    let down = closed_port().await;
    let guards: Vec<(&str, Arc<dyn Guardrail>)> = vec![
        (
            "llm-guard",
            Arc::new(LlmGuard::new(LlmGuardConfig::new(format!("http://{down}"))).unwrap()),
        ),
        (
            "presidio",
            Arc::new(
                Presidio::new(PresidioConfig::new(
                    format!("http://{down}"),
                    format!("http://{down}"),
                ))
                .unwrap(),
            ),
        ),
    ];
    for (id, guard) in guards {
        let closed = GuardChain::new(vec![GuardEntry::new(
            id,
            guard.clone(),
            GuardPolicy::default(),
        )]);
        let out = closed
            .check(input("hello"), &RequestContext::default(), &[])
            .await;
        assert!(
            matches!(out.decision, ChainDecision::Blocked(_)),
            "{id} must fail closed"
        );
        let open = GuardPolicy {
            fail_mode: FailMode::Open,
            ..GuardPolicy::default()
        };
        let open = GuardChain::new(vec![GuardEntry::new(id, guard, open)]);
        let out = open
            .check(input("hello"), &RequestContext::default(), &[])
            .await;
        assert_eq!(
            out.decision,
            ChainDecision::Allowed,
            "{id} configured open lets traffic through"
        );
    }
}

#[tokio::test]
async fn unexpected_answers_are_errors_naming_the_service() {
    let app = Router::new()
        .route(
            "/analyze/prompt",
            post(|| async { Json(json!({"weird": true})) }),
        )
        .route("/analyze", post(|| async { "not json" }));
    let addr = serve(app).await;
    let err = LlmGuard::new(LlmGuardConfig::new(format!("http://{addr}")))
        .unwrap()
        .check(&input("x"), &RequestContext::default())
        .await
        .unwrap_err();
    assert!(err.message().contains("LLM Guard"), "{err}");
    let mut cfg = PresidioConfig::new(format!("http://{addr}"), format!("http://{addr}"));
    cfg.action = PresidioAction::Block;
    let err = Presidio::new(cfg)
        .unwrap()
        .check(&input("x"), &RequestContext::default())
        .await
        .unwrap_err();
    assert!(err.message().contains("Presidio analyzer"), "{err}");
}

/// A subject of three messages: one call per service, edits in the right segments.
#[tokio::test]
async fn remote_adapters_are_called_once_per_subject_not_once_per_segment() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let presidio = Router::new()
        .route(
            "/analyze",
            post(move |Json(body): Json<Value>| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    let text = body["text"].as_str().unwrap_or_default().to_owned();
                    let results: Vec<Value> = text
                        .match_indices("john@example.com")
                        .map(|(b, _)| {
                            let start = text[..b].chars().count();
                            json!({"entity_type": "EMAIL_ADDRESS", "start": start, "end": start + 16, "score": 1.0})
                        })
                        .collect();
                    Json(Value::Array(results))
                }
            }),
        )
        .route(
            "/anonymize",
            post(|Json(body): Json<Value>| async move {
                let text = body["text"].as_str().unwrap_or_default();
                Json(json!({"text": text.replace("john@example.com", "<EMAIL_ADDRESS>")}))
            }),
        );
    let addr = serve(presidio).await;
    let guard = Presidio::new(PresidioConfig::new(
        format!("http://{addr}"),
        format!("http://{addr}"),
    ))
    .unwrap();
    let mut subject = GuardSubject::Input {
        messages: vec![
            Message::system("Be brief.\n\nAlways."),
            Message::user("mail john@example.com"),
            Message::user("or ☕ john@example.com again"),
        ],
    };
    let v = guard
        .check(&subject, &RequestContext::default())
        .await
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one analyzer call for three messages"
    );
    let spans: Vec<Span> = v.findings.iter().map(|f| f.span.unwrap()).collect();
    assert_eq!(spans.iter().map(|s| s.segment).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        &subject.segments()[2].text[spans[1].start..spans[1].end],
        "john@example.com"
    );
    let Decision::Sanitize { edits } = &v.decision else {
        panic!("{v:?}")
    };
    subject.apply_edits(edits).unwrap();
    let texts: Vec<&str> = subject.segments().iter().map(|s| s.text).collect();
    assert_eq!(
        texts,
        [
            "Be brief.\n\nAlways.",
            "mail <EMAIL_ADDRESS>",
            "or ☕ <EMAIL_ADDRESS> again"
        ]
    );

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let llm = Router::new().route(
        "/analyze/prompt",
        post(move |Json(body): Json<Value>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                let (sanitized, valid, scanners) =
                    llm_guard_judge(body["prompt"].as_str().unwrap_or_default());
                Json(
                    json!({"sanitized_prompt": sanitized, "is_valid": valid, "scanners": scanners}),
                )
            }
        }),
    );
    let addr = serve(llm).await;
    let mut cfg = LlmGuardConfig::new(format!("http://{addr}"));
    cfg.sanitizing_scanners = vec!["Anonymize".into()];
    let guard = LlmGuard::new(cfg).unwrap();
    let mut subject = GuardSubject::Input {
        messages: vec![
            Message::user("hello"),
            Message::user("write john@example.com"),
        ],
    };
    let v = guard
        .check(&subject, &RequestContext::default())
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one scan for two messages");
    let Decision::Sanitize { edits } = &v.decision else {
        panic!("{v:?}")
    };
    subject.apply_edits(edits).unwrap();
    assert_eq!(subject.segments()[0].text, "hello");
    assert_eq!(
        subject.segments()[1].text,
        "write [REDACTED_EMAIL_ADDRESS_1]"
    );
}
