//! Trains the prompt-injection classifier shipped in `aegis-guards` and writes
//! `aegis-packs/guards/src/injection_model.bin`:
//! `cargo run -p aegis-eval --release --bin train-injection`.
//!
//! Training reads the tuning split of the generated corpus and the guard crate's own
//! labelled set — never the held-out test split. The run is deterministic: the same sources
//! give the same bytes.

use aegis_eval::{Rng, Split, injection};
use aegis_guards::injection_model::{Model, deobfuscate, features};

fn model_input(text: &str) -> String {
    deobfuscate(text).unwrap_or_else(|| text.to_lowercase())
}

fn main() {
    let mut examples: Vec<(String, bool)> = injection::corpus(Split::Tune)
        .into_iter()
        .map(|c| {
            let attack = !c.case.expected.is_empty();
            (c.case.text, attack)
        })
        .collect();
    for line in include_str!("../../../aegis-packs/guards/tests/data/prompt_injection.tsv").lines()
    {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some((label, text)) = line.split_once('\t') {
            examples.push((text.replace("\\n", "\n"), label == "injection"));
        }
    }
    let mut rng = Rng::new(0x7261_696e);
    for i in (1..examples.len()).rev() {
        examples.swap(i, rng.below(i + 1));
    }
    let data: Vec<_> = examples
        .iter()
        .map(|(t, y)| (features(&model_input(t)), *y))
        .collect();
    let model = Model::train(&data, 40, 0.5, 1e-5);
    let correct = data
        .iter()
        .filter(|(x, y)| (model.probability(x) >= 0.5) == *y)
        .count();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../aegis-packs/guards/src/injection_model.bin"
    );
    std::fs::write(path, model.to_bytes()).expect("the model file is writable");
    println!(
        "trained on {} texts ({} attacks); training accuracy {:.3}; wrote {path}",
        data.len(),
        examples.iter().filter(|(_, y)| *y).count(),
        correct as f64 / data.len() as f64
    );
}
