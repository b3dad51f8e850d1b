//! The detection packs' cost: pathological inputs (megabytes of digits, `=`, base64, nested
//! quotes) at two sizes — time that grows with the input, not faster, is what linear
//! means — and the build of each pack with its default config (start-up).
#![allow(clippy::unwrap_used, missing_docs)]

use aegis_contracts::{GuardSubject, Guardrail, Message, RequestContext};
use aegis_guards::{PromptInjection, PromptInjectionConfig, Secrets, SecretsConfig};
use aegis_pii::{PiiGuard, PiiGuardConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn pathological(kind: &str, len: usize) -> String {
    let unit = match kind {
        "digits" => "0123456789",
        "equals" => "==========",
        "base64" => "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk",
        "quotes" => "\"'\"'{[(\"",
        _ => "lorem ipsum dolor sit amet, ",
    };
    unit.repeat(len / unit.len() + 1)[..len].to_owned()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let guards: Vec<(&str, Box<dyn Guardrail>)> = vec![
        (
            "pii",
            Box::new(PiiGuard::new(PiiGuardConfig::default()).unwrap()),
        ),
        (
            "secrets",
            Box::new(Secrets::new(SecretsConfig::default()).unwrap()),
        ),
        (
            "injection",
            Box::new(PromptInjection::new(PromptInjectionConfig::default()).unwrap()),
        ),
    ];
    let ctx = RequestContext::default();
    let mut g = c.benchmark_group("pathological");
    g.sample_size(10);
    for kind in ["digits", "equals", "base64", "quotes"] {
        for mb in [1usize, 4] {
            let subject = GuardSubject::Input {
                messages: vec![Message::user(pathological(kind, mb << 20))],
            };
            g.throughput(Throughput::Bytes((mb << 20) as u64));
            for (name, guard) in &guards {
                g.bench_with_input(
                    BenchmarkId::new(format!("{name}/{kind}"), format!("{mb}MB")),
                    &subject,
                    |b, s| b.iter(|| rt.block_on(guard.check(s, &ctx)).unwrap()),
                );
            }
        }
    }
    g.finish();
    let mut g = c.benchmark_group("build");
    g.sample_size(20);
    g.bench_function("pii", |b| {
        b.iter(|| PiiGuard::new(PiiGuardConfig::default()).unwrap())
    });
    g.bench_function("secrets", |b| {
        b.iter(|| Secrets::new(SecretsConfig::default()).unwrap())
    });
    g.bench_function("injection", |b| {
        b.iter(|| PromptInjection::new(PromptInjectionConfig::default()).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
