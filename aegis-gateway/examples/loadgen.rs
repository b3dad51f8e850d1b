//! Open-loop load generator for the gateway benchmark: sends chat completions at a fixed
//! rate (or as fast as `--concurrency` allows) and prints latency percentiles as JSON.
//!
//! `loadgen URL RATE SECONDS [stream] [concurrency]` — RATE 0 means saturation.
//! For streams the latency is time to first token (first `data:` with content).

#![allow(clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().expect("URL");
    let rate: f64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(100.0);
    let seconds: f64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10.0);
    let stream = args.get(4).is_some_and(|v| v == "stream");
    let concurrency: usize = args.get(5).and_then(|v| v.parse().ok()).unwrap_or(256);
    let key = std::env::var("AEGIS_API_KEY").unwrap_or_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let body = json!({
        "model": "mock/gpt-test",
        "stream": stream,
        "messages": [{"role": "user", "content": "Summarise the quarterly report for the board, focusing on revenue, churn and the hiring plan for next year."}]
    });
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let slots = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    let mut tasks = Vec::new();
    while start.elapsed() < deadline {
        if rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        sent += 1;
        let (client, url, body, key) = (client.clone(), url.clone(), body.clone(), key.clone());
        let (latencies, errors) = (latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let resp = client.post(&url).bearer_auth(key).json(&body).send().await;
            let measured: Option<Duration> = match resp {
                Ok(r) if r.status().is_success() => {
                    if stream {
                        let mut s = r.bytes_stream();
                        let mut first = None;
                        while let Some(Ok(bytes)) = s.next().await {
                            if first.is_none() && bytes.windows(9).any(|w| w == b"\"content\"") {
                                first = Some(t.elapsed());
                            }
                        }
                        first
                    } else {
                        r.bytes().await.ok().map(|_| t.elapsed())
                    }
                }
                _ => None,
            };
            match measured {
                Some(d) => latencies.lock().await.push(d.as_micros() as u64),
                None => {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            drop(permit);
        }));
        tasks.retain(|t| !t.is_finished());
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut l = latencies.lock().await.clone();
    l.sort_unstable();
    let p = |q: f64| {
        if l.is_empty() {
            0.0
        } else {
            l[((l.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
        }
    };
    println!(
        "{}",
        json!({"sent": sent, "ok": l.len(), "errors": errors.load(std::sync::atomic::Ordering::Relaxed),
               "achieved_rps": (l.len() as f64 / elapsed).round(), "p50_ms": p(0.5), "p90_ms": p(0.9), "p99_ms": p(0.99), "max_ms": p(1.0)})
    );
}
