//! TokenLimit (feature `tiktoken`): under the limit passes, over it blocks, encodings and
//! per-segment mode, config errors.
#![cfg(feature = "tiktoken")]
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{ErrorKind, Granularity, GuardSubject, Guardrail, Message};
use aegis_guards::{Encoding, TokenLimit, TokenLimitConfig};
use common::{check, check_text};

#[test]
fn counts_tokens_and_blocks_over_the_limit() {
    let g = TokenLimit::new(TokenLimitConfig::new(5)).unwrap();
    assert_eq!(g.count("hello world"), 2);
    assert!(check_text(&g, "hello world").is_allow());
    let v = check_text(&g, "one two three four five six seven eight");
    assert!(v.is_block());
    assert_eq!(v.findings[0].kind, "token_limit_exceeded");
    assert_eq!(g.capabilities().granularity, Granularity::FullText);
}

#[test]
fn sums_segments_unless_per_segment() {
    let subject = GuardSubject::Input {
        messages: vec![
            Message::user("alpha beta gamma"),
            Message::user("delta epsilon zeta"),
        ],
    };
    let total = TokenLimit::new(TokenLimitConfig::new(4)).unwrap();
    assert!(check(&total, &subject).is_block());
    let each = TokenLimit::new(TokenLimitConfig {
        per_segment: true,
        ..TokenLimitConfig::new(4)
    })
    .unwrap();
    assert!(check(&each, &subject).is_allow());
}

#[test]
fn encodings_are_selectable() {
    let cl = TokenLimit::new(TokenLimitConfig {
        encoding: Encoding::Cl100kBase,
        ..TokenLimitConfig::new(10)
    })
    .unwrap();
    assert!(cl.count("The quick brown fox") >= 4);
}

#[test]
fn zero_limit_is_a_config_error() {
    assert_eq!(
        TokenLimit::new(TokenLimitConfig::new(0))
            .unwrap_err()
            .kind(),
        ErrorKind::Config
    );
    let cfg: TokenLimitConfig =
        serde_json::from_str(r#"{"limit": 10, "encoding": "cl100k_base"}"#).unwrap();
    assert_eq!(cfg.encoding, Encoding::Cl100kBase);
}
