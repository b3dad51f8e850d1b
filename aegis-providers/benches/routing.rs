//! Routing decision cost: choosing a deployment among 100 (the dry-run `Router::route`, the
//! same selection every attempt of `chat` makes), per strategy, with and without a residency
//! filter. Target: ≤ 2 µs per decision.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{hint::black_box, sync::Arc};

use aegis_contracts::{ChatRequest, Message, Provider, RequestContext};
use aegis_providers::{
    Echo,
    routing::{Deployment, Router, Strategy, region_label_filter},
};
use criterion::{Criterion, criterion_group, criterion_main};

fn router(strategy: Strategy, filtered: bool) -> Router {
    let mut b = Router::builder("bench").strategy(strategy);
    for i in 0..100u32 {
        let region = ["eu", "us", "ap"][(i % 3) as usize];
        let p: Arc<dyn Provider> = Arc::new(Echo::new(format!("p{i}")).with_region(region));
        b = b.deployment(
            "gpt",
            Deployment::new(format!("d{i}"), p, "gpt-4o").with_weight(1 + i % 5),
        );
    }
    b = b.alias("default", "gpt");
    if filtered {
        b = b.region_filter(region_label_filter("region"));
    }
    b.build().unwrap()
}

fn bench(c: &mut Criterion) {
    let mut req = ChatRequest::new("default", vec![Message::user("hello")]);
    let mut g = c.benchmark_group("route_100_deployments");
    for (name, strategy) in [
        ("weighted", Strategy::Weighted),
        ("least_latency", Strategy::LeastLatency),
        ("least_busy", Strategy::LeastBusy),
        ("ordered", Strategy::Ordered),
    ] {
        let r = router(strategy, false);
        g.bench_function(name, |b| {
            b.iter(|| black_box(r.route(black_box(&req)).unwrap().id().len()))
        });
    }
    let r = router(Strategy::Weighted, true);
    req.ctx = RequestContext::default().with_label("region", "eu,ap");
    g.bench_function("weighted_with_region_filter", |b| {
        b.iter(|| black_box(r.route(black_box(&req)).unwrap().id().len()))
    });
    g.finish();

    // The whole routed call over an in-process provider: decision + attempt bookkeeping.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let r = router(Strategy::Weighted, false);
    let plain = ChatRequest::new("default", vec![Message::user("hello")]);
    c.bench_function("routed_chat_100_deployments_echo", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(r.chat(plain.clone()).await.unwrap()) })
    });
    let direct = Echo::new("direct");
    c.bench_function("direct_chat_echo_baseline", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(direct.chat(plain.clone()).await.unwrap()) })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
