//! The Rust side of the bindings bench (`benches/bindings/run.sh`): the same governed echo
//! calls the Python and Node scripts make, in-process from Rust, on a two-worker runtime like
//! the bindings'. Prints one JSON line per case: p50 / p99 in microseconds.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Instant;

use aegis::{ChatRequest, Message};

const N: usize = 5_000;
const WARM: usize = 500;

fn percentiles(mut ns: Vec<u128>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

async fn case(name: &str, toml: &str) {
    let pipeline = aegis::pipeline_from_toml(toml).await.unwrap();
    let prompt = "x ".repeat(512);
    let request = || ChatRequest::new("local/echo-1", vec![Message::user(prompt.clone())]);
    for _ in 0..WARM {
        pipeline
            .chat(request())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
    }
    let mut ns = Vec::with_capacity(N);
    for _ in 0..N {
        let started = Instant::now();
        pipeline
            .chat(request())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        ns.push(started.elapsed().as_nanos());
    }
    let (p50, p99) = percentiles(ns);
    println!(r#"{{"surface": "rust", "case": "{name}", "p50_us": {p50:.1}, "p99_us": {p99:.1}}}"#);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let echo = "[[providers]]\nid = \"local\"\ntype = \"echo\"\n";
    case("echo, default graph, no guards", echo).await;
    let guarded = format!(
        "{echo}[[guardrails]]\nid = \"words\"\ntype = \"ban_substrings\"\nstages = [\"input\"]\nconfig = {{ substrings = [\"forbidden\"] }}\n"
    );
    case("echo + one input guard (built-in ban_substrings)", &guarded).await;
}
