//! The held-out test split against floors that only go up: when a change makes a number
//! better, raise its floor here in the same commit. Run with `--nocapture` for the tables.
#![allow(clippy::unwrap_used)]

use aegis_eval::{Split, pii, run, score::precision_at_recall};

#[track_caller]
fn at_least(what: &str, value: f64, floor: f64) {
    assert!(
        value >= floor,
        "{what}: {value:.3} is under its floor {floor:.3}"
    );
}

#[test]
fn pii_on_the_held_out_split_meets_its_floors() {
    let (_, report) = run::pii(Split::Test);
    println!("{}", report.table(&pii::KINDS));
    let micro = report.micro();
    at_least("PII micro precision", micro.precision(), 0.98);
    at_least("PII micro recall", micro.recall(), 0.98);
    at_least("PII micro F1", micro.f1(), 0.98);
    at_least("PII macro-F1", report.macro_f1(&pii::KINDS), 0.98);
    for kind in pii::KINDS {
        let f1 = report.per_kind.get(kind).copied().unwrap_or_default().f1();
        at_least(&format!("{kind} F1"), f1, 0.85);
    }
    assert!(
        report.lookalikes_hit() <= 2,
        "look-alikes flagged: {:?}",
        report.lookalikes_flagged
    );
    assert_eq!(report.clean_flagged, 0, "entity-free texts flagged");
}

#[test]
fn secrets_on_the_held_out_split_meet_their_floors() {
    let (_, report) = run::secrets(Split::Test);
    println!("{}", report.table(&[aegis_eval::secrets::KIND]));
    let micro = report.micro();
    at_least("secrets micro precision", micro.precision(), 0.70);
    at_least("secrets micro recall", micro.recall(), 0.70);
    at_least("secrets micro F1", micro.f1(), 0.70);
    assert!(
        report.lookalikes_hit() <= 8,
        "look-alikes flagged: {}",
        report.lookalikes_hit()
    );
    assert!(
        report.clean_flagged <= 1,
        "entity-free texts flagged: {}",
        report.clean_flagged
    );
}

#[test]
fn prompt_injection_on_the_held_out_split_meets_its_floors() {
    let results = run::injection(Split::Test);
    let decisions = results.decisions();
    println!(
        "decisions: precision {:.3} recall {:.3}",
        decisions.precision(),
        decisions.recall()
    );
    for (family, recall) in results.recall_by_family() {
        println!("  {family}: recall {recall:.2}");
    }
    at_least("injection precision", decisions.precision(), 0.97);
    at_least("injection recall", decisions.recall(), 0.95);
    let (p, _) = precision_at_recall(&results.labels, &results.scores, 0.6);
    at_least("injection precision at recall 0.6", p, 0.97);
    let (p, _) = precision_at_recall(&results.labels, &results.scores, 0.9);
    at_least("injection precision at recall 0.9", p, 0.97);
}

#[test]
fn the_test_split_shares_no_text_with_the_tuning_split() {
    let tune: std::collections::HashSet<String> = pii::corpus(Split::Tune)
        .into_iter()
        .map(|c| c.text)
        .collect();
    let test = pii::corpus(Split::Test);
    let shared = test.iter().filter(|c| tune.contains(&c.text)).count();
    assert_eq!(shared, 0, "texts in both splits");
    let tune: std::collections::HashSet<String> = aegis_eval::injection::corpus(Split::Tune)
        .into_iter()
        .map(|c| c.case.text)
        .collect();
    let shared = aegis_eval::injection::corpus(Split::Test)
        .iter()
        .filter(|c| tune.contains(&c.case.text))
        .count();
    assert_eq!(shared, 0, "injection texts in both splits");
}
