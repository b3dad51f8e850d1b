//! Analyzer throughput on mixed English text with a few planted entities per KB.
#![allow(missing_docs, clippy::unwrap_used)]

use aegis_pii::{Analyzer, AnalyzerConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const WORDS: &[&str] = &[
    "the",
    "customer",
    "asked",
    "about",
    "their",
    "order",
    "and",
    "we",
    "replied",
    "that",
    "shipping",
    "takes",
    "three",
    "days.",
    "Please",
    "note:",
    "our",
    "policy",
    "is",
    "clear,",
    "refunds",
    "are",
    "processed",
    "within",
    "a",
    "week",
    "of",
    "receipt.",
    "Thanks",
    "for",
    "reaching",
    "out",
    "to",
    "support;",
    "meeting",
    "at",
    "10am",
    "in",
    "room",
    "B2",
    "with",
    "Alice",
    "and",
    "Bob.",
    "Version",
    "2.3",
    "released",
    "today",
    "(see",
    "notes)",
];
const ENTITIES: &[&str] = &[
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "078-05-1123",
    "+44 20 7946 0958",
    "192.168.10.14",
    "DE89 3704 0044 0532 0130 00",
    "https://www.example.org/path?q=1",
    "(415) 555-0132",
    "2024-03-15",
];

/// Deterministic text of `len` bytes: words with an entity roughly every 330 bytes.
fn text(len: usize) -> String {
    let mut s = String::with_capacity(len + 64);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut since = 0usize;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if since > 300 && x % 8 == 0 {
            s.push_str(ENTITIES[(x >> 8) as usize % ENTITIES.len()]);
            since = 0;
        } else {
            s.push_str(WORDS[(x >> 8) as usize % WORDS.len()]);
        }
        s.push(' ');
        since += 8;
    }
    s.truncate(len);
    while !s.is_char_boundary(s.len()) {
        s.pop();
    }
    s
}

fn bench(c: &mut Criterion) {
    let analyzer = Analyzer::new(AnalyzerConfig {
        score_threshold: 0.5,
        ..Default::default()
    })
    .unwrap();
    let mut g = c.benchmark_group("analyze");
    for (name, len) in [("1KB", 1 << 10), ("100KB", 100 << 10), ("10MB", 10 << 20)] {
        let t = text(len);
        g.throughput(Throughput::Bytes(t.len() as u64));
        if len >= 10 << 20 {
            g.sample_size(10);
        }
        g.bench_function(name, |b| {
            b.iter(|| analyzer.analyze(std::hint::black_box(&t)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
