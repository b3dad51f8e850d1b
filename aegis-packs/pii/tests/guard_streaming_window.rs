//! Property: scanning a stream with the guard's declared window finds exactly the entities
//! of the one-shot scan, for random chunkings.
//!
//! The simulated streaming host keeps the last `2 × window` bytes, rescans them on every
//! chunk, and commits a finding once its start is at least `max_match_len + LOOKAHEAD` bytes before
//! the buffer's end (no later text can extend or veto it) and at least
//! `max_match_len + CONTEXT_BYTES + 1` bytes after the buffer's start (its context and any
//! containing duplicate lie inside), or it touches the text's edges. With chunks at most `window` bytes
//! apart every finding gets such a moment, which is what the declared window promises.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use aegis_contracts::{Granularity, Guardrail};
use aegis_pii::{Analyzer, AnalyzerConfig, CONTEXT_BYTES, LOOKAHEAD, PiiGuard, PiiGuardConfig};
use proptest::prelude::*;

type Key = (usize, usize, &'static str, u32);

fn key(start: usize, end: usize, entity: &'static str, score: f32) -> Key {
    (start, end, entity, (score * 1000.0).round() as u32)
}

fn one_shot(a: &Analyzer, text: &str) -> BTreeSet<Key> {
    a.analyze(text)
        .into_iter()
        .map(|r| key(r.start, r.end, r.entity, r.score))
        .collect()
}

fn streamed(a: &Analyzer, text: &str, window: usize, cuts: &[usize]) -> BTreeSet<Key> {
    let max = a.max_match_len();
    let mut found = BTreeSet::new();
    for &e in cuts.iter().chain(std::iter::once(&text.len())) {
        let mut b = e.saturating_sub(2 * window);
        while !text.is_char_boundary(b) {
            b += 1;
        }
        for r in a.analyze(&text[b..e]) {
            let (s, t) = (b + r.start, b + r.end);
            let right_ok = e == text.len() || (s + max + LOOKAHEAD <= e && t < e);
            let left_ok = b == 0 || s > b + CONTEXT_BYTES + max + 1;
            if right_ok && left_ok {
                found.insert(key(s, t, r.entity, r.score));
            }
        }
    }
    found
}

const WORDS: &[&str] = &[
    "hello",
    "my",
    "card",
    "is",
    "ssn",
    "phone",
    "email",
    "the",
    "iban",
    "at",
    "and",
    "ip",
    "account",
    "on",
    "x",
    "1",
    "-",
    ".",
    "4111 1111 1111 1111",
    "078-05-1123",
    "078051121",
    "jane@example.com",
    "+44 20 7946 0958",
    "(415) 555-0132",
    "DE89 3704 0044 0532 0130 00",
    "10.0.0.1",
    "2001:db8::1",
    "https://example.com/a",
    "2024-03-15",
    "12345678",
    "AB123456C",
    "X1234567L",
    "\n",
    "é",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 12 } else { 64 }))]
    #[test]
    fn window_scan_matches_one_shot(words in prop::collection::vec(0..WORDS.len(), 1..400), seeds in prop::collection::vec(1usize..4096, 1..60)) {
        let guard = PiiGuard::new(PiiGuardConfig { score_threshold: 0.3, ..Default::default() }).unwrap();
        let Granularity::Window(window) = guard.capabilities().granularity else { panic!("window granularity") };
        let a = guard.analyzer();
        let text = words.iter().map(|&i| WORDS[i]).collect::<Vec<_>>().join(" ");
        // Chunk ends at most `window` apart, as a host holding back `window` bytes produces.
        let mut cuts = Vec::new();
        let mut at = 0;
        for s in seeds.iter().cycle().take(text.len() / 8 + 1) {
            at += 1 + s % window;
            if at >= text.len() { break; }
            // Back off to a character boundary, so no gap ever exceeds the window.
            while !text.is_char_boundary(at) { at -= 1; }
            cuts.push(at);
        }
        prop_assert_eq!(streamed(a, &text, window, &cuts), one_shot(a, &text), "text {:?}", text);
    }
}

#[test]
fn declared_window_covers_longest_match_and_context() {
    let guard = PiiGuard::new(PiiGuardConfig::default()).unwrap();
    let a = guard.analyzer();
    assert_eq!(
        guard.capabilities().granularity,
        Granularity::Window(2 * a.max_match_len() + CONTEXT_BYTES + 1 + LOOKAHEAD)
    );
    assert!(
        a.max_match_len() < 1024,
        "every pattern is bounded: {}",
        a.max_match_len()
    );
    let _ = AnalyzerConfig::default();
}
