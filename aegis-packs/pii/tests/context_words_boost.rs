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
    assert!((ssn.score - 0.4).abs() < 1e-6, "{}", ssn.score);
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
