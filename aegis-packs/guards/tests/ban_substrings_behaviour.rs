//! BanSubstrings: block, allow, redact; case and whole-word options; config errors; window.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{ErrorKind, Granularity, Guardrail};
use aegis_guards::{Action, BanSubstrings, BanSubstringsConfig};
use common::{check_text, sanitized, spans};

#[test]
fn blocks_a_banned_substring_case_insensitively_by_default() {
    let guard = BanSubstrings::new(BanSubstringsConfig::new(["Project Falcon"])).unwrap();
    let v = check_text(&guard, "what is the status of PROJECT falcon?");
    assert!(v.is_block());
    assert_eq!(spans(&v), vec![(22, 36, "banned_substring".to_owned())]);
    assert!(check_text(&guard, "what is the status of project eagle?").is_allow());
}

#[test]
fn case_sensitive_option_respects_case() {
    let cfg = BanSubstringsConfig {
        case_insensitive: false,
        ..BanSubstringsConfig::new(["Falcon"])
    };
    let guard = BanSubstrings::new(cfg).unwrap();
    assert!(check_text(&guard, "a falcon flew").is_allow());
    assert!(check_text(&guard, "a Falcon flew").is_block());
}

#[test]
fn non_ascii_patterns_match_lower_and_upper_case_forms() {
    let guard = BanSubstrings::new(BanSubstringsConfig::new(["Über"])).unwrap();
    assert!(check_text(&guard, "das ist über alles").is_block());
    assert!(check_text(&guard, "DAS IST ÜBER ALLES").is_block());
    assert!(check_text(&guard, "das ist uber alles").is_allow());
}

#[test]
fn whole_word_needs_non_word_neighbours() {
    let cfg = BanSubstringsConfig {
        whole_word: true,
        ..BanSubstringsConfig::new(["cat"])
    };
    let guard = BanSubstrings::new(cfg).unwrap();
    assert!(check_text(&guard, "the cat sat").is_block());
    assert!(check_text(&guard, "cat").is_block());
    assert!(check_text(&guard, "(cat)").is_block());
    assert!(check_text(&guard, "concatenate").is_allow());
    assert!(check_text(&guard, "cat_food").is_allow());
    assert!(
        check_text(&guard, "écat").is_allow(),
        "a non-ASCII letter is a word character"
    );
    // Substring mode finds it inside words.
    let guard = BanSubstrings::new(BanSubstringsConfig::new(["cat"])).unwrap();
    assert!(check_text(&guard, "concatenate").is_block());
}

#[test]
fn redact_replaces_every_occurrence_and_merges_overlaps() {
    let cfg = BanSubstringsConfig {
        action: Action::Redact,
        ..BanSubstringsConfig::new(["abc", "bcd", "secret"])
    };
    let guard = BanSubstrings::new(cfg).unwrap();
    assert!(guard.capabilities().sanitizes);
    assert_eq!(
        sanitized(&guard, "x abcd y Secret z secret"),
        "x [REDACTED] y [REDACTED] z [REDACTED]"
    );
}

#[test]
fn custom_replacement_is_used() {
    let cfg = BanSubstringsConfig {
        action: Action::Redact,
        replacement: "***".into(),
        ..BanSubstringsConfig::new(["darn"])
    };
    let guard = BanSubstrings::new(cfg).unwrap();
    assert_eq!(sanitized(&guard, "oh darn it"), "oh *** it");
}

#[test]
fn declares_a_window_of_the_longest_pattern() {
    let guard = BanSubstrings::new(BanSubstringsConfig::new(["ab", "abcdef"])).unwrap();
    assert_eq!(guard.capabilities().granularity, Granularity::Window(6));
    assert!(!guard.capabilities().sanitizes);
    let cfg = BanSubstringsConfig {
        whole_word: true,
        ..BanSubstringsConfig::new(["ab", "abcdef"])
    };
    let guard = BanSubstrings::new(cfg).unwrap();
    assert_eq!(guard.capabilities().granularity, Granularity::Window(14));
}

#[test]
fn bad_config_is_a_config_error() {
    let empty = BanSubstrings::new(BanSubstringsConfig::new(Vec::<String>::new())).unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::Config);
    assert!(
        empty.message().contains("must not be empty"),
        "{}",
        empty.message()
    );
    let blank = BanSubstrings::new(BanSubstringsConfig::new(["ok", ""])).unwrap_err();
    assert_eq!(blank.kind(), ErrorKind::Config);
    assert!(blank.message().contains("substrings[1]"));
    let no_stages = BanSubstrings::new(BanSubstringsConfig {
        stages: vec![],
        ..BanSubstringsConfig::new(["x"])
    })
    .unwrap_err();
    assert_eq!(no_stages.kind(), ErrorKind::Config);
}

#[test]
fn config_rejects_unknown_fields() {
    let err =
        serde_json::from_str::<BanSubstringsConfig>(r#"{"substrings": ["a"], "redcat": true}"#)
            .unwrap_err();
    assert!(err.to_string().contains("unknown field"));
}

#[test]
fn require_approval_action_pauses_instead_of_blocking() {
    let cfg = BanSubstringsConfig {
        action: Action::RequireApproval,
        ..BanSubstringsConfig::new(["wire transfer"])
    };
    let guard = BanSubstrings::new(cfg).unwrap();
    let v = check_text(&guard, "please make a wire transfer today");
    match &v.decision {
        aegis_contracts::Decision::RequireApproval { payload, .. } => {
            assert_eq!(payload["kinds"][0], "banned_substring");
            assert!(
                !payload.to_string().contains("wire transfer"),
                "the approver payload carries no text"
            );
        }
        other => panic!("expected RequireApproval, got {other:?}"),
    }
    assert!(!guard.capabilities().sanitizes);
    assert!(check_text(&guard, "no money moves").is_allow());
}
