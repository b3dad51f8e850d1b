//! Fuzzing the request parser (and admission behind it), the PII engine and the secrets
//! scanner with structured, property-based inputs. Nothing may panic; every finding's span
//! lies on character boundaries inside its text; a streamed text's settled offset lies in
//! it; a request is answered or refused with a typed error. Ignored in the test suite;
//! `scripts/fuzz.sh` runs each target for a time budget (`AEGIS_FUZZ_SECS`, default 10).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aegis::guards::{Action, Secrets, SecretsConfig};
use aegis::pii::{Analyzer, AnalyzerConfig};
use aegis::{ChatRequest, ErrorKind, GuardSubject, Guardrail, RequestContext};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

fn budget() -> Duration {
    Duration::from_secs(
        std::env::var("AEGIS_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    )
}

/// Runs `check` on values of `strategy` until the time budget is spent; a failure panics
/// with the shrunk input (add it to the regression tests).
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let deadline = Instant::now() + budget();
    let mut cases = 0u64;
    while Instant::now() < deadline {
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &check) {
            panic!("{name} found a failure after {cases} cases: {e}");
        }
        cases += 256;
    }
    eprintln!("{name}: {cases} cases, no failure");
}

/// Text shaped like what the detectors look for, and like what breaks them.
fn detector_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[0-9]{1,20}",
        "[0-9 -]{1,24}",
        "[a-z0-9._%+-]{1,12}@[a-z0-9-]{1,10}\\.[a-z]{2,5}",
        "\\+?[0-9() .-]{6,20}",
        "[A-Z]{2}[0-9]{2}[A-Z0-9 ]{10,30}",
        "(AKIA|ghp_|xoxb-|sk-|glpat-|AIza)[A-Za-z0-9_-]{0,44}",
        "(password|api_key|secret|token|DOB|born|ssn|card)\\s*[:=]\\s*\"?[!-~]{0,30}",
        "-----BEGIN [A-Z ]{0,12}PRIVATE KEY-----\n[A-Za-z0-9+/=\n]{0,120}(-----END [A-Z ]{0,12}-----)?",
        "(https?|postgres|mongodb)://[a-z0-9:@._/-]{0,40}",
        "[A-Za-z0-9+/=_-]{16,80}",
        "\\PC{0,12}",
        "[\u{200b}\u{feff}\u{ff10}-\u{ff5a}\u{0301}\u{202e}]{1,4}",
        Just(" ".to_owned()),
        Just("\n".to_owned()),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

fn span_ok(text: &str, start: usize, end: usize) -> bool {
    start <= end && end <= text.len() && text.is_char_boundary(start) && text.is_char_boundary(end)
}

#[test]
#[ignore = "fuzzing: run with scripts/fuzz.sh"]
fn fuzz_pii_engine() {
    let analyzer = Analyzer::new(AnalyzerConfig {
        score_threshold: 0.0,
        ..AnalyzerConfig::default()
    })
    .unwrap();
    fuzz(
        "fuzz_pii_engine",
        (detector_text(), 0usize..512),
        |(text, from)| {
            for r in analyzer.analyze_resolved(&text) {
                prop_assert!(span_ok(&text, r.start, r.end), "{r:?} in {text:?}");
            }
            let from = from.min(text.len());
            let settled = analyzer.settled(&text, from).unwrap();
            prop_assert!(
                settled <= text.len(),
                "settled {settled} past {}",
                text.len()
            );
            Ok(())
        },
    );
}

#[test]
#[ignore = "fuzzing: run with scripts/fuzz.sh"]
fn fuzz_secrets_scanner() {
    let secrets = Secrets::new(SecretsConfig {
        action: Action::Redact,
        ..SecretsConfig::default()
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    fuzz(
        "fuzz_secrets_scanner",
        (detector_text(), 0usize..512),
        |(text, from)| {
            let subject = GuardSubject::OutputChunk {
                text: text.clone(),
                offset: 0,
            };
            let v = rt
                .block_on(secrets.check(&subject, &RequestContext::default()))
                .unwrap();
            for f in &v.findings {
                let s = f.span.unwrap();
                prop_assert!(span_ok(&text, s.start, s.end), "{f:?} in {text:?}");
            }
            let mut edited = subject.clone();
            if let aegis::Decision::Sanitize { edits } = &v.decision {
                prop_assert!(
                    edited.apply_edits(edits).is_ok(),
                    "bad edits {edits:?} for {text:?}"
                );
            }
            let settled = secrets.settled(&text, from.min(text.len())).unwrap();
            prop_assert!(settled <= text.len());
            Ok(())
        },
    );
}

/// JSON shaped like a chat request, with the fields and values that break parsers.
fn request_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        "\\PC{0,16}".prop_map(Value::from),
    ];
    let any_json = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let role = prop_oneof![
        Just(json!("user")),
        Just(json!("system")),
        Just(json!("assistant")),
        Just(json!("tool")),
        Just(json!("developer")),
        Just(json!("nobody")),
        Just(json!(7)),
    ];
    let part = prop_oneof![
        "\\PC{0,20}".prop_map(|t| json!({"type": "text", "text": t})),
        Just(json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})),
        Just(json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}})),
        Just(json!({"type": "file", "file": {"file_id": "file-1"}})),
        any_json
            .clone()
            .prop_map(|v| json!({"type": "text", "text": v})),
        any_json.clone(),
    ];
    let content = prop_oneof![
        "\\PC{0,40}".prop_map(Value::from),
        proptest::collection::vec(part, 0..4).prop_map(Value::from),
        any_json.clone(),
    ];
    let message = (
        role,
        content,
        proptest::option::of(any_json.clone()),
        any::<u8>(),
    )
        .prop_map(|(role, content, extra, pick)| {
            let mut m = json!({"role": role, "content": content});
            let field = match pick % 8 {
                0 => "reasoning_content",
                1 => "thinking_blocks",
                2 => "tool_calls",
                3 => "name",
                4 => "tool_call_id",
                5 => "refusal",
                6 => "gemini_parts",
                _ => "x_vendor",
            };
            if let Some(v) = extra {
                m[field] = v;
            }
            m
        });
    (
        proptest::collection::vec(message, 0..5),
        proptest::option::of(any_json.clone()),
        proptest::option::of(any_json),
        any::<u8>(),
    )
        .prop_map(|(messages, tools, extra, pick)| {
            let mut r = json!({"model": "echo", "messages": messages});
            if let Some(t) = tools {
                r["tools"] = t;
            }
            let field = match pick % 8 {
                0 => "response_format",
                1 => "max_tokens",
                2 => "n",
                3 => "stream",
                4 => "prediction",
                5 => "tool_choice",
                6 => "metadata",
                _ => "temperature",
            };
            if let Some(v) = extra {
                r[field] = v;
            }
            r
        })
}

#[test]
#[ignore = "fuzzing: run with scripts/fuzz.sh"]
fn fuzz_request_parser() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pipeline = rt
        .block_on(aegis::pipeline_from_toml(
            r#"
[[providers]]
id = "echo"
type = "echo"

[[guardrails]]
id = "invisible"
type = "invisible_text"
config = { action = "strip" }

[[guardrails]]
id = "pii"
type = "pii"

[[guardrails]]
id = "secrets"
type = "secrets"
config = { action = "redact" }
"#,
        ))
        .unwrap();
    fuzz("fuzz_request_parser", request_json(), |body| {
        let bytes = serde_json::to_vec(&body).unwrap();
        let Ok(mut req) = serde_json::from_slice::<ChatRequest>(&bytes) else {
            return Ok(());
        };
        req.stream = body["stream"] == json!(true);
        let outcome = rt.block_on(async {
            match pipeline.chat(req).await {
                Ok(resp) => resp.collect().await.map(|_| ()),
                Err(e) => Err(e),
            }
        });
        if let Err(e) = outcome {
            prop_assert!(
                !matches!(e.kind(), ErrorKind::Internal),
                "an internal error for a request: {e} ({body})"
            );
        }
        Ok(())
    });
}
