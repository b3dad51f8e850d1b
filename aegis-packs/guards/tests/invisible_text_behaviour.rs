//! InvisibleText: every hidden-character class blocks, strip sanitizes, ordinary text and
//! emoji pass, the allow list works, config errors.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{ErrorKind, Granularity, Guardrail};
use aegis_guards::{InvisibleAction, InvisibleText, InvisibleTextConfig};
use common::{check_text, sanitized};

fn guard() -> InvisibleText {
    InvisibleText::new(InvisibleTextConfig::default()).unwrap()
}

#[test]
fn each_hidden_class_is_blocked_with_its_kind() {
    let g = guard();
    for (text, kind) in [
        ("a\u{200b}b", "zero_width"),
        ("a\u{feff}b", "zero_width"),
        ("a\u{2060}b", "zero_width"),
        ("a\u{202e}b", "bidi_control"),
        ("a\u{2066}b", "bidi_control"),
        ("a\u{200f}b", "bidi_control"),
        ("a\u{e0049}\u{e0067}b", "tag_character"),
        ("a\u{e0100}b", "variation_selector"),
        ("a\u{00ad}b", "invisible_format"),
        ("a\u{2062}b", "invisible_format"),
        ("a\u{3164}b", "invisible_format"),
        ("a\u{1b}[31mb", "control_character"),
        ("a\u{0}b", "control_character"),
        ("a\u{85}b", "control_character"),
        ("a\u{e000}b", "private_use"),
    ] {
        let v = check_text(&g, text);
        assert!(v.is_block(), "{text:?}");
        assert_eq!(v.findings[0].kind, kind, "{text:?}");
        let span = v.findings[0].span.unwrap();
        assert_eq!(span.start, 1);
    }
}

#[test]
fn ordinary_text_emoji_and_whitespace_pass() {
    let g = guard();
    for text in [
        "plain ascii\twith tabs\r\nand newlines",
        "héllo wörld 日本語 العربية",
        "❤\u{fe0f} thumbs 👍🏽",
        "",
    ] {
        assert!(check_text(&g, text).is_allow(), "{text:?}");
    }
}

#[test]
fn strip_removes_hidden_characters() {
    let g = InvisibleText::new(InvisibleTextConfig {
        action: InvisibleAction::Strip,
        ..InvisibleTextConfig::default()
    })
    .unwrap();
    assert!(g.capabilities().sanitizes);
    let smuggled: String = "Hi"
        .chars()
        .chain(
            "IGNORE"
                .chars()
                .map(|c| char::from_u32(0xE0000 + c as u32).unwrap()),
        )
        .collect();
    assert_eq!(sanitized(&g, &smuggled), "Hi");
    assert_eq!(sanitized(&g, "pa\u{200b}y\u{202e}pal\u{200d}"), "paypal");
}

#[test]
fn allow_list_and_private_use_option() {
    let g = InvisibleText::new(InvisibleTextConfig {
        allow: vec!["\u{200d}".into()],
        private_use: false,
        ..InvisibleTextConfig::default()
    })
    .unwrap();
    assert!(check_text(&g, "👨\u{200d}👩\u{200d}👧").is_allow());
    assert!(check_text(&g, "icon \u{e0a0}").is_allow());
    assert!(check_text(&g, "a\u{200b}b").is_block());
}

#[test]
fn granularity_is_char() {
    assert_eq!(guard().capabilities().granularity, Granularity::Char);
    assert!(!guard().capabilities().sanitizes);
}

#[test]
fn bad_allow_entry_is_a_config_error() {
    let err = InvisibleText::new(InvisibleTextConfig {
        allow: vec!["ab".into()],
        ..InvisibleTextConfig::default()
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("allow[0]"));
}
