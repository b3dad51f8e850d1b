//! For random text with planted matches, judging overlapping windows of each guard's
//! declared size finds exactly what judging the whole text finds (BanSubstrings, Secrets,
//! InvisibleText, UrlAllowList, RegexGuard).
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::Guardrail;
use aegis_guards::{
    Action, BanSubstrings, BanSubstringsConfig, InvisibleText, InvisibleTextConfig, RegexGuard,
    RegexGuardConfig, Secrets, SecretsConfig, UrlAllowList, UrlAllowListConfig,
};
use common::{check_text, declared_window, spans, windowed_spans};
use proptest::prelude::*;

/// Random filler: ASCII words, punctuation, digits and some multi-byte characters.
fn filler() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            "[a-z]{1,8}",
            "[A-Za-z0-9]{1,12}",
            Just(" ".to_owned()),
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            Just(". ".to_owned()),
            Just("é".to_owned()),
            Just("日本".to_owned()),
            Just("🙂".to_owned()),
            Just("_".to_owned()),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

/// Text made of filler with `plants` chosen from `pool` in between.
fn planted(pool: Vec<String>, max_plants: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (filler(), proptest::sample::select(pool), any::<bool>()),
        1..max_plants,
    )
    .prop_map(|parts| {
        let mut s = String::new();
        for (f, p, glue) in parts {
            s.push_str(&f);
            // Sometimes glue the plant to its neighbours to exercise boundaries.
            if !glue {
                s.push(' ');
            }
            s.push_str(&p);
            if !glue {
                s.push(' ');
            }
        }
        s
    })
}

fn assert_equivalent(guard: &dyn Guardrail, text: &str) -> Result<(), TestCaseError> {
    let whole = spans(&check_text(guard, text));
    let windowed = windowed_spans(guard, text, declared_window(guard));
    prop_assert_eq!(whole, windowed, "text: {:?}", text);
    Ok(())
}

fn secret_pool() -> Vec<String> {
    include_str!("data/secrets_examples.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut p = l.splitn(3, '\t');
            let (_, expect, text) = (p.next()?, p.next()?, p.next()?);
            (expect == "true").then(|| text.replace("%%", "").replace("\\n", "\n"))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ban_substrings_windows_match_whole_text(
        text in planted(vec!["Falcon".into(), "falcon x".into(), "Über".into(), "ÜBER".into(), "con".into(), "日本".into()], 12),
        whole_word in any::<bool>(),
    ) {
        let cfg = BanSubstringsConfig { whole_word, ..BanSubstringsConfig::new(["falcon", "con", "über", "本"]) };
        let guard = BanSubstrings::new(cfg).unwrap();
        assert_equivalent(&guard, &text)?;
    }

    #[test]
    fn invisible_text_windows_match_whole_text(
        text in planted(vec!["\u{200b}".into(), "\u{202e}".into(), "\u{e0041}\u{e0042}".into(), "\u{7}".into(), "\u{feff}".into()], 12),
    ) {
        let guard = InvisibleText::new(InvisibleTextConfig::default()).unwrap();
        assert_equivalent(&guard, &text)?;
    }

    #[test]
    fn url_allow_list_windows_match_whole_text(
        text in planted(vec![
            "https://ok.example/path".into(),
            "see https://evil.example/x?y=1).".into(),
            "http://sub.ok.example".into(),
            "ftp://files.evil.example/a.zip,".into(),
            "evil.com/landing".into(),
        ], 10),
    ) {
        let cfg = UrlAllowListConfig { bare_domains: true, ..UrlAllowListConfig::new(["ok.example"]) };
        let guard = UrlAllowList::new(cfg).unwrap();
        assert_equivalent(&guard, &text)?;
    }

    #[test]
    fn regex_guard_windows_match_whole_text(
        text in planted(vec!["4111 1111 1111 1111".into(), "order #12345".into(), "id-77".into()], 10),
    ) {
        let cfg = RegexGuardConfig { max_match_bytes: 32, action: Action::Redact, ..RegexGuardConfig::deny([r"\b\d{4}(?: \d{4}){3}\b", r"#\d{5}\b"]) };
        let guard = RegexGuard::new(cfg).unwrap();
        assert_equivalent(&guard, &text)?;
    }
}

proptest! {
    // Secrets has a large window (its longest rule), so fewer, longer cases.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn secrets_windows_match_whole_text(text in planted(secret_pool(), 24)) {
        let guard = Secrets::new(SecretsConfig { pem_max_bytes: 1024, ..SecretsConfig::default() }).unwrap();
        assert_equivalent(&guard, &text)?;
    }
}

#[test]
fn secrets_window_equivalence_holds_across_many_windows() {
    // A long deterministic text: every true example separated by filler, several windows long.
    let guard = Secrets::new(SecretsConfig {
        pem_max_bytes: 1024,
        ..SecretsConfig::default()
    })
    .unwrap();
    let mut text = String::new();
    for round in 0..5 {
        for (i, s) in secret_pool().iter().enumerate() {
            text.push_str(&format!(
                "line {round}.{i}: lorem ipsum dolor {s} sit amet.\n"
            ));
        }
    }
    let window = declared_window(&guard);
    assert!(text.len() > 8 * window, "{} vs window {window}", text.len());
    let whole = spans(&check_text(&guard, &text));
    assert!(whole.len() >= 5 * 90, "{}", whole.len());
    assert_eq!(whole, windowed_spans(&guard, &text, window));
}
