//! Every credential type has a true example detected as that type and a false example
//! (a near miss) that is not detected; the table lives in `tests/data/secrets_examples.tsv`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use aegis_guards::{Secrets, SecretsConfig};
use common::check_text;

struct Row {
    kind: String,
    expect: bool,
    text: String,
}

fn table() -> Vec<Row> {
    include_str!("data/secrets_examples.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let kind = parts.next().unwrap().to_owned();
            let expect = parts.next().unwrap() == "true";
            let text = parts.next().unwrap().replace("%%", "").replace("\\n", "\n");
            Row { kind, expect, text }
        })
        .collect()
}

#[test]
fn table_covers_every_type_with_a_true_and_a_false_example() {
    let rows = table();
    let types: BTreeSet<&str> = Secrets::types().collect();
    assert!(types.len() >= 60, "only {} types", types.len());
    for t in &types {
        assert!(
            rows.iter().any(|r| r.kind == *t && r.expect),
            "no true example for {t}"
        );
        assert!(
            rows.iter().any(|r| r.kind == *t && !r.expect),
            "no false example for {t}"
        );
    }
    for r in &rows {
        assert!(
            types.contains(r.kind.as_str()),
            "table names unknown type {}",
            r.kind
        );
    }
}

#[test]
fn true_examples_are_detected_as_their_type() {
    let guard = Secrets::new(SecretsConfig::default()).unwrap();
    let mut failures = Vec::new();
    for r in table().iter().filter(|r| r.expect) {
        let v = check_text(&guard, &r.text);
        if !v.is_block() || !v.findings.iter().any(|f| f.kind == r.kind) {
            let got: Vec<_> = v.findings.iter().map(|f| f.kind.as_str()).collect();
            failures.push(format!("{}: got {got:?}", r.kind));
        }
    }
    assert!(failures.is_empty(), "missed:\n{}", failures.join("\n"));
}

#[test]
fn false_examples_are_not_detected() {
    // Entropy off: a near miss must not match any rule at all.
    let rules_only = Secrets::new(SecretsConfig {
        entropy: false,
        ..SecretsConfig::default()
    })
    .unwrap();
    let with_entropy = Secrets::new(SecretsConfig::default()).unwrap();
    let mut failures = Vec::new();
    for r in table().iter().filter(|r| !r.expect) {
        let guard = if r.kind == "high_entropy_string" {
            &with_entropy
        } else {
            &rules_only
        };
        let v = check_text(guard, &r.text);
        if !v.is_allow() {
            let got: Vec<_> = v.findings.iter().map(|f| f.kind.as_str()).collect();
            failures.push(format!("{}: {:?} -> {got:?}", r.kind, r.text));
        }
        // With entropy on, the near miss is never reported as its own type.
        let v = check_text(&with_entropy, &r.text);
        if v.findings.iter().any(|f| f.kind == r.kind) {
            failures.push(format!("{} (entropy on): {:?}", r.kind, r.text));
        }
    }
    assert!(
        failures.is_empty(),
        "false positives:\n{}",
        failures.join("\n")
    );
}
