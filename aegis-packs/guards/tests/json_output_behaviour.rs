//! JsonOutput: valid JSON passes, invalid or incomplete JSON blocks, code fences, output
//! stage only, full text.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{ErrorKind, Granularity, GuardSubject, Guardrail, Message, Stage, ToolCall};
use aegis_guards::{JsonOutput, JsonOutputConfig};
use common::check;

fn output(text: &str) -> GuardSubject {
    GuardSubject::Output {
        message: Message::assistant(text),
    }
}

#[test]
fn valid_json_passes_and_invalid_blocks() {
    let g = JsonOutput::new(JsonOutputConfig::default()).unwrap();
    assert!(check(&g, &output(r#"{"a": 1}"#)).is_allow());
    assert!(check(&g, &output(" [1, 2, 3]\n")).is_allow());
    let v = check(&g, &output("Sure! {\"a\": 1}"));
    assert!(v.is_block());
    assert_eq!(v.findings[0].kind, "invalid_json");
    assert!(check(&g, &output("")).is_block());
}

#[test]
fn required_keys_and_pointers() {
    let g = JsonOutput::new(JsonOutputConfig {
        required_keys: vec!["name".into(), "/user/id".into()],
        ..JsonOutputConfig::default()
    })
    .unwrap();
    assert!(check(&g, &output(r#"{"name": "x", "user": {"id": 7}}"#)).is_allow());
    let v = check(&g, &output(r#"{"name": "x", "user": {}}"#));
    assert!(v.is_block());
    let aegis_contracts::Decision::Block { reason, .. } = &v.decision else {
        unreachable!()
    };
    assert!(reason.contains("/user/id"));
}

#[test]
fn require_object_and_code_fences() {
    let strict = JsonOutput::new(JsonOutputConfig {
        require_object: true,
        ..JsonOutputConfig::default()
    })
    .unwrap();
    assert!(check(&strict, &output("[1]")).is_block());
    let fenced = "```json\n{\"a\": 1}\n```";
    assert!(check(&strict, &output(fenced)).is_block());
    let lenient = JsonOutput::new(JsonOutputConfig {
        allow_code_fence: true,
        ..JsonOutputConfig::default()
    })
    .unwrap();
    assert!(check(&lenient, &output(fenced)).is_allow());
    assert!(check(&lenient, &output("```python\n{}\n```")).is_block());
}

#[test]
fn tool_call_only_answers_and_chunks() {
    let g = JsonOutput::new(JsonOutputConfig::default()).unwrap();
    let mut m = Message::assistant("");
    m.content = None;
    m.tool_calls.push(ToolCall::new("1", "f", "{}"));
    assert!(check(&g, &GuardSubject::Output { message: m }).is_allow());
    let chunk = GuardSubject::OutputChunk {
        text: "{\"a\":".into(),
        offset: 0,
    };
    assert!(check(&g, &chunk).is_block());
}

#[test]
fn capabilities_are_output_only_full_text() {
    let caps = JsonOutput::new(JsonOutputConfig::default())
        .unwrap()
        .capabilities();
    assert_eq!(caps.stages, vec![Stage::Output]);
    assert_eq!(caps.granularity, Granularity::FullText);
    assert!(!caps.sanitizes);
}

#[test]
fn bad_config_is_a_config_error() {
    let err = JsonOutput::new(JsonOutputConfig {
        required_keys: vec![String::new()],
        ..JsonOutputConfig::default()
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}
