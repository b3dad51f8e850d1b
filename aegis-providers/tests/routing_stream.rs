//! Streams through the router: fallback only before the first chunk; after it, a failure is an
//! `Err` item and no second request is made.
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use aegis_contracts::{ChatBody, Provider, Secret};
use aegis_providers::{
    OpenAiCompatible,
    routing::{Deployment, RetryPolicy, Router, Strategy},
};
use common::*;
use futures_util::StreamExt;

fn openai_at(name: &str, base: &str) -> Arc<dyn Provider> {
    Arc::new(
        OpenAiCompatible::builder(name, format!("{base}/v1"))
            .api_key(Secret::new("sk-x"))
            .build()
            .unwrap(),
    )
}

const FIRST_THEN_ERROR: &str = "data: {\"id\":\"s\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n\
data: {\"error\":{\"message\":\"Overloaded mid-stream\",\"type\":\"server_error\"}}\n\n";

const GOOD_STREAM: &str = "data: {\"id\":\"s\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";

#[tokio::test]
async fn a_failure_after_the_first_streamed_chunk_is_an_err_item_and_exactly_one_request() {
    let (first, first_seen) = serve(|_| async { sse_text_response(FIRST_THEN_ERROR) }).await;
    let (second, second_seen) = serve(|_| async { sse_text_response(GOOD_STREAM) }).await;
    let router = Router::builder("llm")
        .strategy(Strategy::Ordered)
        .retry(RetryPolicy::retries(3))
        .deployment(
            "m",
            Deployment::new("first", openai_at("first", &first), "m"),
        )
        .deployment(
            "m",
            Deployment::new("second", openai_at("second", &second), "m"),
        )
        .build()
        .unwrap();
    let resp = router.chat(hello("m").with_stream(true)).await.unwrap();
    let ChatBody::Stream(mut s) = resp.body else {
        panic!("expected a stream")
    };
    let chunk = s.next().await.unwrap().unwrap();
    assert_eq!(chunk.choices[0].delta.content.as_deref(), Some("Hel"));
    let err = s.next().await.unwrap().unwrap_err();
    assert!(err.message().contains("Overloaded mid-stream"), "{err}");
    assert!(s.next().await.is_none(), "the stream ends after its error");
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(first_seen.count(), 1, "exactly one upstream request");
    assert_eq!(second_seen.count(), 0, "no fallback after the first byte");
    assert_eq!(router.deployments("m").unwrap()[0].in_flight(), 0);
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_chunk_still_falls_back() {
    let broken = Scripted::new("broken", |_, _| {
        Reply::Stream(vec![Err(server_error("broken"))], Duration::ZERO)
    });
    let good = Scripted::new("good", |_, _| {
        Reply::Stream(vec![Ok("Hi".into()), Ok(" there".into())], Duration::ZERO)
    });
    let router = Router::builder("llm")
        .strategy(Strategy::Ordered)
        .deployment("m", Deployment::new("broken", broken.clone(), "m"))
        .deployment("m", Deployment::new("good", good.clone(), "m"))
        .build()
        .unwrap();
    let c = router
        .chat(hello("m").with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "Hi there");
    assert_eq!((broken.count(), good.count()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_chunk_counts_against_the_attempt_timeout_but_later_gaps_do_not() {
    let slow_start = Scripted::new("slow", |_, _| {
        Reply::After(
            Duration::from_secs(5),
            Box::new(Reply::Stream(vec![Ok("late".into())], Duration::ZERO)),
        )
    });
    let steady = Scripted::new("steady", |_, _| {
        Reply::Stream(
            vec![Ok("a".into()), Ok("b".into()), Ok("c".into())],
            Duration::from_secs(2),
        )
    });
    let router = Router::builder("llm")
        .strategy(Strategy::Ordered)
        .retry(RetryPolicy::none())
        .attempt_timeout(Duration::from_secs(3))
        .deployment("m", Deployment::new("slow", slow_start.clone(), "m"))
        .deployment("m", Deployment::new("steady", steady.clone(), "m"))
        .build()
        .unwrap();
    let c = router
        .chat(hello("m").with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    // 2 s gaps between chunks exceed nothing: the attempt deadline ends at the first chunk.
    assert_eq!(c.message().unwrap().text(), "abc");
    assert_eq!((slow_start.count(), steady.count()), (1, 1));
}

#[tokio::test]
async fn a_mid_stream_failure_counts_against_the_deployments_circuit() {
    let flaky = Scripted::new("flaky", |_, _| {
        Reply::Stream(
            vec![Ok("x".into()), Err(server_error("flaky"))],
            Duration::ZERO,
        )
    });
    let router = Router::builder("llm")
        .circuit_breaker(aegis_providers::routing::CircuitBreaker::new(
            1,
            Duration::from_secs(60),
        ))
        .deployment("m", Deployment::new("flaky", flaky.clone(), "m"))
        .build()
        .unwrap();
    let err = router
        .chat(hello("m").with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    let err = router.chat(hello("m").with_stream(true)).await.unwrap_err();
    assert!(err.message().contains("circuit open"), "{err}");
    assert_eq!(flaky.count(), 1);
}
