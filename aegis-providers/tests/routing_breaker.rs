//! The circuit breaker: a failing deployment is ejected after N consecutive failures and
//! probed back after a cool-down.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use aegis_contracts::Provider;
use aegis_providers::routing::{CircuitBreaker, Deployment, RetryPolicy, Router, Strategy};
use common::*;

#[tokio::test(start_paused = true)]
async fn circuit_opens_after_n_failures_and_closes_after_a_successful_probe() {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let flaky = Scripted::new("flaky", move |_, _| {
        if h.load(Ordering::SeqCst) {
            Reply::Text("flaky ok".into())
        } else {
            Reply::Fail(server_error("flaky"))
        }
    });
    let steady = Scripted::ok("steady");
    let router = Router::builder("llm")
        .strategy(Strategy::Ordered)
        .retry(RetryPolicy::none())
        .circuit_breaker(CircuitBreaker::new(3, Duration::from_secs(30)))
        .deployment("m", Deployment::new("flaky", flaky.clone(), "m"))
        .deployment("m", Deployment::new("steady", steady.clone(), "m"))
        .build()
        .unwrap();

    // Three failures (each falls back to `steady`), then `flaky` is ejected.
    for _ in 0..3 {
        assert_eq!(
            router.chat(hello("m")).await.unwrap().meta.provider,
            "steady"
        );
    }
    assert_eq!(flaky.count(), 3);
    for _ in 0..5 {
        router.chat(hello("m")).await.unwrap();
    }
    assert_eq!(
        flaky.count(),
        3,
        "open circuit: no traffic to the ejected deployment"
    );
    assert_eq!(router.route(&hello("m")).unwrap().id(), "steady");

    // After the cool-down, one probe; it fails, so the circuit opens again.
    tokio::time::advance(Duration::from_secs(31)).await;
    router.chat(hello("m")).await.unwrap();
    assert_eq!(flaky.count(), 4, "exactly one probe");
    router.chat(hello("m")).await.unwrap();
    assert_eq!(
        flaky.count(),
        4,
        "a failed probe re-opens the circuit at once"
    );

    // Next cool-down: the deployment recovered; the probe succeeds and closes the circuit.
    healthy.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(
        router.chat(hello("m")).await.unwrap().meta.provider,
        "flaky"
    );
    for _ in 0..3 {
        assert_eq!(
            router.chat(hello("m")).await.unwrap().meta.provider,
            "flaky"
        );
    }
    assert_eq!(flaky.count(), 8);
}

#[tokio::test(start_paused = true)]
async fn with_every_circuit_open_the_error_says_so_and_is_retryable() {
    let down = Scripted::new("down", |_, _| Reply::Fail(server_error("down")));
    let router = Router::builder("llm")
        .retry(RetryPolicy::none())
        .circuit_breaker(CircuitBreaker::new(1, Duration::from_secs(10)))
        .deployment("m", Deployment::new("down", down.clone(), "m"))
        .build()
        .unwrap();
    router.chat(hello("m")).await.unwrap_err();
    let err = router.chat(hello("m")).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(
        err.message().contains("circuit open") && err.message().contains("router `llm`"),
        "{err}"
    );
    assert_eq!(down.count(), 1);
}

#[tokio::test]
async fn non_retryable_errors_do_not_eject_a_deployment() {
    let picky = Scripted::new("picky", |_, _| {
        Reply::Fail(aegis_contracts::Error::provider("bad request").with_retryable(false))
    });
    let router = Router::builder("llm")
        .circuit_breaker(CircuitBreaker::new(1, Duration::from_secs(60)))
        .deployment("m", Deployment::new("picky", picky.clone(), "m"))
        .build()
        .unwrap();
    for _ in 0..3 {
        router.chat(hello("m")).await.unwrap_err();
    }
    assert_eq!(
        picky.count(),
        3,
        "the caller's mistakes are not the deployment's failures"
    );
}
