//! Pathological inputs complete (linear time) with correct results and no panic.
#![allow(clippy::unwrap_used)]

use aegis_pii::{Analyzer, AnalyzerConfig};

fn analyzer() -> Analyzer {
    Analyzer::new(AnalyzerConfig {
        score_threshold: 0.5,
        ..Default::default()
    })
    .unwrap()
}

fn with_tail(junk: String) -> (String, usize) {
    let text = format!("{junk} mail bob@example.com");
    let at = text.find("bob@").unwrap();
    (text, at)
}

fn assert_finds_tail_email(junk: String) {
    let a = analyzer();
    let (text, at) = with_tail(junk);
    let found = a.analyze_resolved(&text);
    let email = found.iter().find(|r| r.entity == "EMAIL_ADDRESS").unwrap();
    assert_eq!((email.start, email.end), (at, text.len()));
}

#[test]
fn one_megabyte_of_digits() {
    let a = analyzer();
    let digits: String = (0..1_000_000)
        .map(|i| char::from(b'0' + (i * 7 % 10) as u8))
        .collect();
    let _ = a.analyze(&digits);
    assert_finds_tail_email(digits);
}

#[test]
fn long_runs_of_at_signs_dots_and_colons() {
    for unit in ["@", ".", "a.", "a@", ":", "1.", "-", "<", "a", "1 "] {
        assert_finds_tail_email(unit.repeat(1_000_000 / unit.len()));
    }
}

#[test]
fn many_entities_back_to_back() {
    let a = analyzer();
    let text = "4111111111111111 ".repeat(20_000);
    let found = a.analyze_resolved(&text);
    assert_eq!(found.len(), 20_000);
    assert!(found.iter().all(|r| r.entity == "CREDIT_CARD"));
}

#[test]
fn non_ascii_text_keeps_char_boundaries() {
    let a = analyzer();
    let text = "é".repeat(10_000)
        + " ünïcödé 4111111111111111 ñ https://exämple.com/ü 東京 bob@example.com";
    for r in a.analyze(&text) {
        assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
    }
}
