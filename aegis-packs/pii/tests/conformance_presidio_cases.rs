//! Runs Presidio's own recognizer test cases (ported as data) against this engine, prints
//! the pass rate per recognizer and asserts an overall floor.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use aegis_pii::{Analyzer, AnalyzerConfig};
use serde_json::Value;

/// The overall pass rate this engine achieves on the implemented recognizers.
const FLOOR: f64 = 0.95;

#[test]
fn presidio_recognizer_cases_pass_rate_meets_floor() {
    let data: Value = serde_json::from_str(include_str!("data/presidio_cases.json")).unwrap();
    let cases = data["cases"].as_array().unwrap();
    let all = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let implemented: Vec<&str> = all.entities();
    let mut analyzers: BTreeMap<String, Analyzer> = BTreeMap::new();
    // recognizer file -> (entity, passed, total)
    let mut table: BTreeMap<String, (String, usize, usize)> = BTreeMap::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let verbose = std::env::var("PII_CONFORMANCE_VERBOSE").is_ok();
    for case in cases {
        let entity = case["entity"].as_str().unwrap().to_owned();
        let file = case["recognizer"].as_str().unwrap().to_owned();
        if !implemented.contains(&entity.as_str()) {
            *skipped.entry(file).or_default() += 1;
            continue;
        }
        let analyzer = analyzers.entry(entity.clone()).or_insert_with(|| {
            Analyzer::new(AnalyzerConfig {
                entities: Some(vec![entity.clone()]),
                score_threshold: 0.0,
            })
            .unwrap()
        });
        let text = case["text"].as_str().unwrap();
        let got = analyzer.analyze(text);
        let want = case["expected_count"].as_u64().unwrap() as usize;
        let mut ok = got.len() == want;
        if ok {
            if let Some(spans) = case["expected_spans"].as_array() {
                // Presidio's offsets are in characters; convert ours.
                let char_at = |b: usize| text[..b].chars().count() as u64;
                for (r, s) in got.iter().zip(spans) {
                    let s = s.as_array().unwrap();
                    if char_at(r.start) != s[0].as_u64().unwrap()
                        || char_at(r.end) != s[1].as_u64().unwrap()
                    {
                        ok = false;
                    }
                }
            }
        }
        if !ok && verbose {
            let spans: Vec<_> = got.iter().map(|r| (r.start, r.end, r.score)).collect();
            println!(
                "FAIL {file}: {text:?} want {want} {:?} got {spans:?}",
                case["expected_spans"]
            );
        }
        let e = table.entry(file).or_insert((entity, 0, 0));
        e.1 += usize::from(ok);
        e.2 += 1;
    }
    let (mut passed, mut total) = (0, 0);
    println!("| recognizer cases | entity | passed | total | rate |");
    println!("|---|---|---|---|---|");
    for (file, (entity, p, t)) in &table {
        println!(
            "| {file} | {entity} | {p} | {t} | {:.1}% |",
            100.0 * *p as f64 / *t as f64
        );
        passed += p;
        total += t;
    }
    let rate = passed as f64 / total as f64;
    println!(
        "| **all implemented** | | {passed} | {total} | {:.1}% |",
        100.0 * rate
    );
    println!("not implemented (cases skipped): {skipped:?}");
    assert!(rate >= FLOOR, "pass rate {rate:.3} below floor {FLOOR}");
}
