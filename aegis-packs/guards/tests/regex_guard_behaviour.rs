//! RegexGuard: deny (block / redact), allow-list semantics, granularity, config errors.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{ErrorKind, Granularity, Guardrail};
use aegis_guards::{Action, RegexGuard, RegexGuardConfig};
use common::{check_text, sanitized, spans};

#[test]
fn deny_pattern_blocks_and_reports_spans() {
    let guard = RegexGuard::new(RegexGuardConfig::deny([r"\b\d{3}-\d{2}-\d{4}\b"])).unwrap();
    let v = check_text(&guard, "ssn 123-45-6789 ok");
    assert!(v.is_block());
    assert_eq!(spans(&v), vec![(4, 15, "regex_deny".to_owned())]);
    assert!(check_text(&guard, "phone 123-456-7890").is_allow());
}

#[test]
fn deny_pattern_redacts_every_match() {
    let cfg = RegexGuardConfig {
        action: Action::Redact,
        ..RegexGuardConfig::deny([r"\d{4}", r"[a-z]+@[a-z]+\.com"])
    };
    let guard = RegexGuard::new(cfg).unwrap();
    assert!(guard.capabilities().sanitizes);
    assert_eq!(
        sanitized(&guard, "pin 1234, mail bob@corp.com"),
        "pin [REDACTED], mail [REDACTED]"
    );
}

#[test]
fn case_insensitive_applies_to_deny_patterns() {
    let cfg = RegexGuardConfig {
        case_insensitive: true,
        ..RegexGuardConfig::deny(["drop table"])
    };
    let guard = RegexGuard::new(cfg).unwrap();
    assert!(check_text(&guard, "DROP TABLE users").is_block());
}

#[test]
fn allow_list_requires_each_segment_to_match_one_pattern() {
    let cfg = RegexGuardConfig {
        allow: vec![r"^[A-Z]{3}-\d{4}$".into(), r"^ok$".into()],
        ..RegexGuardConfig::deny(Vec::<String>::new())
    };
    let guard = RegexGuard::new(cfg).unwrap();
    assert!(check_text(&guard, "ABC-1234").is_allow());
    assert!(check_text(&guard, "ok").is_allow());
    let v = check_text(&guard, "ABC-1234 and more");
    assert!(v.is_block());
    assert_eq!(v.findings[0].kind, "regex_not_allowed");
    assert_eq!(guard.capabilities().granularity, Granularity::FullText);
}

#[test]
fn granularity_follows_max_match_bytes_or_unbounded() {
    let guard = RegexGuard::new(RegexGuardConfig::deny(["x"])).unwrap();
    assert_eq!(guard.capabilities().granularity, Granularity::Window(256));
    let guard = RegexGuard::new(RegexGuardConfig {
        max_match_bytes: 40,
        ..RegexGuardConfig::deny(["x"])
    })
    .unwrap();
    assert_eq!(guard.capabilities().granularity, Granularity::Window(40));
    let guard = RegexGuard::new(RegexGuardConfig {
        unbounded: true,
        ..RegexGuardConfig::deny(["x.*y"])
    })
    .unwrap();
    assert_eq!(guard.capabilities().granularity, Granularity::FullText);
}

#[test]
fn bad_config_is_a_config_error() {
    let bad = RegexGuard::new(RegexGuardConfig::deny(["ok", "(unclosed"])).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::Config);
    assert!(bad.message().contains("deny[1]"), "{}", bad.message());
    let lookaround = RegexGuard::new(RegexGuardConfig::deny([r"foo(?=bar)"])).unwrap_err();
    assert_eq!(lookaround.kind(), ErrorKind::Config);
    let empty_match = RegexGuard::new(RegexGuardConfig::deny(["a*"])).unwrap_err();
    assert!(empty_match.message().contains("empty string"));
    let nothing = RegexGuard::new(RegexGuardConfig::deny(Vec::<String>::new())).unwrap_err();
    assert_eq!(nothing.kind(), ErrorKind::Config);
    let zero = RegexGuard::new(RegexGuardConfig {
        max_match_bytes: 0,
        ..RegexGuardConfig::deny(["x"])
    })
    .unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::Config);
    let bad_allow = RegexGuard::new(RegexGuardConfig {
        allow: vec!["[".into()],
        ..RegexGuardConfig::deny(Vec::<String>::new())
    })
    .unwrap_err();
    assert!(bad_allow.message().contains("allow[0]"));
}
