//! Retries: exponential backoff, `retry_after` honoured, budgets respected (paused clock).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aegis_contracts::{Error, ErrorKind, Provider};
use aegis_providers::routing::{Deployment, RetryPolicy, Router};
use common::*;
use tokio::time::Instant;

fn rate_limited(after: Duration) -> Error {
    Error::new(
        ErrorKind::RateLimited,
        "provider `p` is rate limiting (429): slow down",
    )
    .with_status(429)
    .with_retry_after(after)
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_before_retrying_the_same_deployment() {
    let p = Scripted::new("p", |n, _| {
        if n == 0 {
            Reply::Fail(rate_limited(Duration::from_secs(7)))
        } else {
            Reply::Text("ok".into())
        }
    });
    let router = Router::builder("llm")
        .retry(RetryPolicy::retries(2).backoff(Duration::from_millis(100), Duration::from_secs(1)))
        .deployment("m", Deployment::new("only", p.clone(), "m"))
        .build()
        .unwrap();
    let started = Instant::now();
    let c = router
        .chat(hello("m"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "ok");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(7) && waited < Duration::from_millis(7100),
        "waited {waited:?}: retry_after (7 s) beats the 100 ms backoff"
    );
    assert_eq!(p.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_total_budget_gives_up_at_once() {
    let p = Scripted::new("p", |_, _| {
        Reply::Fail(rate_limited(Duration::from_secs(120)))
    });
    let router = Router::builder("llm")
        .retry(RetryPolicy::retries(3))
        .total_timeout(Duration::from_secs(30))
        .deployment("m", Deployment::new("only", p.clone(), "m"))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = router.chat(hello("m")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(120)),
        "passed on to the caller"
    );
    assert_eq!(p.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_per_repeated_attempt_without_jitter() {
    let p = Scripted::new("p", |n, _| {
        if n < 3 {
            Reply::Fail(server_error("p"))
        } else {
            Reply::Text("ok".into())
        }
    });
    let router = Router::builder("llm")
        .retry(
            RetryPolicy::retries(3)
                .backoff(Duration::from_millis(100), Duration::from_secs(10))
                .jitter(false),
        )
        .deployment("m", Deployment::new("only", p.clone(), "m"))
        .build()
        .unwrap();
    let started = Instant::now();
    router.chat(hello("m")).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(100 + 200 + 400));
    assert_eq!(p.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_fresh_deployment_is_tried_immediately_without_waiting_out_retry_after() {
    let limited = Scripted::new("limited", |_, _| {
        Reply::Fail(rate_limited(Duration::from_secs(60)))
    });
    let free = Scripted::ok("free");
    let router = Router::builder("llm")
        .strategy(aegis_providers::routing::Strategy::Ordered)
        .deployment("m", Deployment::new("limited", limited.clone(), "m"))
        .deployment("m", Deployment::new("free", free.clone(), "m"))
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = router.chat(hello("m")).await.unwrap();
    assert_eq!(resp.meta.provider, "free");
    assert!(started.elapsed() < Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn jittered_backoff_stays_within_half_and_full_delay() {
    let p = Scripted::new("p", |n, _| {
        if n == 0 {
            Reply::Fail(server_error("p"))
        } else {
            Reply::Text("ok".into())
        }
    });
    let router = Router::builder("llm")
        .retry(RetryPolicy::retries(1).backoff(Duration::from_secs(4), Duration::from_secs(4)))
        .deployment("m", Deployment::new("only", p.clone(), "m"))
        .build()
        .unwrap();
    let started = Instant::now();
    router.chat(hello("m")).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited <= Duration::from_secs(4),
        "{waited:?}"
    );
}
