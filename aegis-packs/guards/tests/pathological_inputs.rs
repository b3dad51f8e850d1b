//! Pathological inputs finish without panicking and with correct verdicts: a megabyte of
//! digits, 100k nested brackets, long Unicode text, long token runs, huge hidden-text runs.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{GuardSubject, Guardrail, Message};
use aegis_guards::{
    Action, BanSubstrings, BanSubstringsConfig, InvisibleAction, InvisibleText,
    InvisibleTextConfig, JsonOutput, JsonOutputConfig, PromptInjection, PromptInjectionConfig,
    RegexGuard, RegexGuardConfig, Secrets, SecretsConfig, UrlAllowList, UrlAllowListConfig,
};
use common::{check, check_text, sanitized};

fn all_text_guards() -> Vec<Box<dyn Guardrail>> {
    vec![
        Box::new(
            BanSubstrings::new(BanSubstringsConfig {
                whole_word: true,
                ..BanSubstringsConfig::new(["forbidden", "日本"])
            })
            .unwrap(),
        ),
        Box::new(RegexGuard::new(RegexGuardConfig::deny([r"\b\d{3}-\d{2}-\d{4}\b"])).unwrap()),
        Box::new(Secrets::new(SecretsConfig::default()).unwrap()),
        Box::new(InvisibleText::new(InvisibleTextConfig::default()).unwrap()),
        Box::new(
            UrlAllowList::new(UrlAllowListConfig {
                bare_domains: true,
                ..UrlAllowListConfig::new(["example.com"])
            })
            .unwrap(),
        ),
        Box::new(PromptInjection::new(PromptInjectionConfig::default()).unwrap()),
    ]
}

#[test]
fn a_megabyte_of_digits_is_clean() {
    let text = "0123456789".repeat(100_000);
    for g in all_text_guards() {
        assert!(check_text(g.as_ref(), &text).is_allow());
    }
}

#[test]
fn deeply_nested_brackets_are_clean_and_json_rejects_them_without_overflow() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for g in all_text_guards() {
        assert!(check_text(g.as_ref(), &text).is_allow());
    }
    let json = JsonOutput::new(JsonOutputConfig::default()).unwrap();
    let v = check(
        &json,
        &GuardSubject::Output {
            message: Message::assistant(text),
        },
    );
    assert!(
        v.is_block(),
        "serde_json's recursion limit refuses it instead of overflowing the stack"
    );
}

#[test]
fn long_unicode_text_is_handled() {
    let text = "héllo wörld 日本語のテキスト 🙂🚀 العربية ".repeat(20_000);
    let ban = BanSubstrings::new(BanSubstringsConfig::new(["テキスト"])).unwrap();
    let v = check_text(&ban, &text);
    assert_eq!(v.findings.len(), 20_000);
    for g in all_text_guards().iter().skip(1) {
        assert!(check_text(g.as_ref(), &text).is_allow());
    }
}

#[test]
fn long_token_runs_are_not_entropy_findings() {
    // A 1 MB base64-like run (an inline image) is longer than any token judged by entropy.
    let text: String = (0..1_000_000u32)
        .map(|i| ['a', 'Z', '3', 'q', '9', 'K', '/', '+'][(i as usize * 7 + i as usize / 3) % 8])
        .collect();
    let secrets = Secrets::new(SecretsConfig::default()).unwrap();
    assert!(check_text(&secrets, &text).is_allow());
}

#[test]
fn a_megabyte_of_hidden_characters_is_stripped_in_one_edit() {
    let text = "\u{200b}".repeat(350_000);
    let g = InvisibleText::new(InvisibleTextConfig {
        action: InvisibleAction::Strip,
        ..InvisibleTextConfig::default()
    })
    .unwrap();
    let v = check_text(&g, &text);
    assert_eq!(v.findings.len(), aegis_guards::MAX_INVISIBLE_FINDINGS);
    assert_eq!(sanitized(&g, &text), "");
}

#[test]
fn many_secrets_are_all_redacted() {
    let key = ["ghp", "_", "aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA2cD4"].concat();
    let text = format!("{key} ").repeat(20_000);
    let g = Secrets::new(SecretsConfig {
        action: Action::Redact,
        ..SecretsConfig::default()
    })
    .unwrap();
    assert_eq!(
        sanitized(&g, &text),
        "[REDACTED:github_pat] ".repeat(20_000)
    );
}

#[test]
fn adversarial_repetition_does_not_explode() {
    // Many partial keyword hits and near-miss prefixes.
    let text = "sk-proj- AKIA ghp_ -----BEGIN xoxb- password= ://@ ".repeat(20_000);
    for g in all_text_guards() {
        let _ = check_text(g.as_ref(), &text);
    }
    // Near-miss phrase fragments repeated: no phrase signal fires (the classifier, which
    // reads a salad of attack words as attack-like, is off to test the signals alone).
    let injection = PromptInjection::new(PromptInjectionConfig {
        classifier: false,
        ..PromptInjectionConfig::default()
    })
    .unwrap();
    let text = "ignore ignore previous previous ".repeat(30_000);
    assert!(check_text(&injection, &text).is_allow());
}
