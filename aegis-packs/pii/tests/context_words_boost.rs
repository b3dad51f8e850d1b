//! Context words shortly before a weak match lift it over the threshold.
#![allow(clippy::unwrap_used)]

use aegis_pii::{Analyzer, AnalyzerConfig, CONTEXT_BYTES};

fn analyzer() -> Analyzer {
    Analyzer::new(AnalyzerConfig {
        entities: Some(vec!["US_SSN".into(), "US_BANK_NUMBER".into()]),
        score_threshold: 0.4,
    })
    .unwrap()
}

#[test]
fn weak_ssn_without_context_is_below_threshold() {
    assert!(
        analyzer()
            .analyze("the code is 078051121 today")
            .iter()
            .all(|r| r.entity != "US_SSN")
    );
}

#[test]
fn ssn_context_word_raises_score_over_threshold() {
    let found = analyzer().analyze("my ssn is 078051121");
    let ssn = found.iter().find(|r| r.entity == "US_SSN").unwrap();
    assert_eq!(ssn.context_word, Some("ssn"));
    // The bare 9-digit pattern scores 0.2; the context word adds 0.35.
    assert!((ssn.score - 0.55).abs() < 1e-6, "{}", ssn.score);
}

#[test]
fn context_word_must_start_a_word() {
    // "passport" is not a context word of bank numbers; "debit" inside "undebited" does not count.
    assert!(analyzer().analyze("undebited 12345678901").is_empty());
    assert_eq!(
        analyzer().analyze("debit account 12345678901")[0].entity,
        "US_BANK_NUMBER"
    );
}

#[test]
fn context_too_far_before_does_not_count() {
    let far = format!("ssn {} 078051121", "x ".repeat(CONTEXT_BYTES));
    assert!(
        analyzer()
            .analyze(&far)
            .iter()
            .all(|r| r.entity != "US_SSN")
    );
}

/// Patterns that need a context word are only scanned near context words and weak patterns
/// that can never reach the threshold are not compiled at all; neither may change results.
#[test]
fn threshold_pruning_and_context_gating_change_no_result() {
    let words = [
        "my",
        "phone",
        "number",
        "is",
        "(415) 555-0132",
        "call",
        "driver",
        "license",
        "B2",
        "A1234567",
        "ssn",
        "078051121",
        "078-05-1123",
        "date",
        "3/2024",
        "tin",
        "912-70-1234",
        "the",
        "x",
        "voter",
        "ABC1234567",
        "4111111111111111",
        "\n",
        "bank",
        "12345678",
    ];
    let mut x: u64 = 7;
    let text: Vec<&str> = (0..3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            words[(x % words.len() as u64) as usize]
        })
        .collect();
    let text = text.join(" ");
    let all = Analyzer::new(AnalyzerConfig::default()).unwrap();
    for threshold in [0.3f32, 0.4, 0.5, 0.7] {
        let fast = Analyzer::new(AnalyzerConfig {
            entities: None,
            score_threshold: threshold,
        })
        .unwrap();
        let key =
            |r: &aegis_pii::RecognizerResult| (r.start, r.end, r.entity, (r.score * 1e4) as u32);
        let mut want: Vec<_> = all
            .analyze(&text)
            .iter()
            .filter(|r| r.score >= threshold)
            .map(key)
            .collect();
        let mut got: Vec<_> = fast.analyze(&text).iter().map(key).collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "threshold {threshold}");
    }
}
