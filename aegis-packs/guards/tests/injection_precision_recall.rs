//! The prompt-injection heuristics on the labelled set in `tests/data/prompt_injection.tsv`:
//! precision must be at least 0.9 and recall at least 0.7 (printed with `--nocapture`).
#![allow(clippy::unwrap_used)]

mod common;

use aegis_guards::{PromptInjection, PromptInjectionConfig};
use common::check_text;

fn labelled() -> Vec<(bool, String)> {
    include_str!("data/prompt_injection.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (label, text) = l.split_once('\t').unwrap();
            assert!(
                label == "injection" || label == "benign",
                "bad label {label}"
            );
            (label == "injection", text.replace("\\n", "\n"))
        })
        .collect()
}

#[test]
fn labelled_set_is_large_enough() {
    let set = labelled();
    assert!(set.iter().filter(|(inj, _)| *inj).count() >= 60);
    assert!(set.iter().filter(|(inj, _)| !*inj).count() >= 60);
}

#[test]
fn precision_and_recall_meet_the_bar() {
    let guard = PromptInjection::new(PromptInjectionConfig::default()).unwrap();
    let (mut tp, mut fp, mut fn_, mut tn) = (0u32, 0u32, 0u32, 0u32);
    for (is_injection, text) in labelled() {
        let flagged = check_text(&guard, &text).is_block();
        match (is_injection, flagged) {
            (true, true) => tp += 1,
            (false, true) => {
                fp += 1;
                println!("false positive (score {:.2}): {text}", guard.score(&text));
            }
            (true, false) => {
                fn_ += 1;
                println!("missed (score {:.2}): {text}", guard.score(&text));
            }
            (false, false) => tn += 1,
        }
    }
    let precision = f64::from(tp) / f64::from(tp + fp);
    let recall = f64::from(tp) / f64::from(tp + fn_);
    println!(
        "prompt injection: tp={tp} fp={fp} fn={fn_} tn={tn} precision={precision:.3} recall={recall:.3}"
    );
    assert!(precision >= 0.9, "precision {precision:.3}");
    assert!(recall >= 0.7, "recall {recall:.3}");
}
