//! Prints the detection numbers of a split: `cargo run -p aegis-eval --release --bin
//! eval-report -- [tune|test] [pii|secrets|injection] [--mistakes]`. Tuning reads `tune`
//! only; `test` is for the published numbers.

use aegis_eval::{Split, pii, run};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = if args.iter().any(|a| a == "test") {
        Split::Test
    } else {
        Split::Tune
    };
    let show = |name: &str| {
        args.iter()
            .all(|a| !["pii", "secrets", "injection"].contains(&a.as_str()))
            || args.iter().any(|a| a == name)
    };
    let mistakes = args.iter().any(|a| a == "--mistakes");
    println!("# split: {split:?}\n");
    if show("pii") {
        let (_, report) = run::pii(split);
        println!("## PII\n\n{}", report.table(&pii::KINDS));
        if mistakes {
            for (text, why) in &report.mistakes {
                println!("- {why}\n    {text:?}");
            }
        }
    }
    if show("secrets") {
        let (_, report) = run::secrets(split);
        println!(
            "## Secrets\n\n{}",
            report.table(&[aegis_eval::secrets::KIND])
        );
        if mistakes {
            for (text, why) in &report.mistakes {
                println!("- {why}\n    {text:?}");
            }
        }
    }
    if show("injection") {
        let results = run::injection(split);
        let c = results.decisions();
        println!(
            "## Prompt injection\n\nguard decisions: precision {:.2}, recall {:.2} ({} attacks, {} benign)\n",
            c.precision(),
            c.recall(),
            results.labels.iter().filter(|l| **l).count(),
            results.labels.iter().filter(|l| !**l).count()
        );
        for r in [0.6, 0.8, 0.9] {
            let (p, t) =
                aegis_eval::score::precision_at_recall(&results.labels, &results.scores, r);
            println!("precision at recall ≥ {r:.1}: {p:.2} (score threshold {t:.2})");
        }
        println!();
        for (family, recall) in results.recall_by_family() {
            println!("- {family}: recall {recall:.2}");
        }
        if mistakes {
            for ((c, y), b) in results
                .cases
                .iter()
                .zip(&results.labels)
                .zip(&results.blocked)
            {
                if y != b {
                    println!(
                        "- {} {}: {:?}",
                        if *y { "missed" } else { "false" },
                        c.family,
                        c.case.text
                    );
                }
            }
        }
    }
}
