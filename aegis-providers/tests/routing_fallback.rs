//! Router fallbacks: injected 5xx and timeouts move on, other errors do not; unknown models
//! are typed errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use aegis_contracts::{Error, ErrorKind, Provider, Secret};
use aegis_providers::{
    OpenAiCompatible,
    routing::{Deployment, RetryPolicy, Router, Strategy},
};
use common::*;
use serde_json::json;

fn openai_at(name: &str, base: &str) -> Arc<dyn Provider> {
    Arc::new(
        OpenAiCompatible::builder(name, format!("{base}/v1"))
            .api_key(Secret::new("sk-x"))
            .build()
            .unwrap(),
    )
}

fn completion(text: &str) -> serde_json::Value {
    json!({ "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{ "index": 0, "finish_reason": "stop",
            "message": { "role": "assistant", "content": text } }] })
}

#[tokio::test]
async fn injected_5xx_on_the_first_deployment_falls_back_to_the_next_over_http() {
    let (bad, bad_seen) =
        serve(|_| async { json_response(503, &json!({"error": {"message": "upstream down"}})) })
            .await;
    let (good, good_seen) = serve(|_| async { json_response(200, &completion("from good")) }).await;
    let router = Router::builder("llm")
        .strategy(Strategy::Ordered)
        .retry(RetryPolicy::none())
        .deployment("m", Deployment::new("bad", openai_at("bad", &bad), "m"))
        .deployment("m", Deployment::new("good", openai_at("good", &good), "m"))
        .build()
        .unwrap();
    let c = router
        .chat(hello("m"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "from good");
    assert_eq!((bad_seen.count(), good_seen.count()), (1, 1));
}

#[tokio::test]
async fn a_non_retryable_400_is_returned_at_once_without_fallback() {
    let bad = Scripted::new("bad", |_, _| {
        Reply::Fail(
            Error::provider("bad request")
                .with_retryable(false)
                .with_status(400),
        )
    });
    let good = Scripted::ok("good");
    let router = Router::builder("llm")
        .strategy(Strategy::Ordered)
        .deployment("m", Deployment::new("bad", bad.clone(), "m"))
        .deployment("m", Deployment::new("good", good.clone(), "m"))
        .build()
        .unwrap();
    let err = router.chat(hello("m")).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!((bad.count(), good.count()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_past_its_timeout_falls_back_and_counts_as_a_timeout() {
    let slow = Scripted::new("slow", |_, _| {
        Reply::After(
            Duration::from_secs(60),
            Box::new(Reply::Text("late".into())),
        )
    });
    let fast = Scripted::ok("fast");
    let router = Router::builder("llm")
        .strategy(Strategy::Ordered)
        .retry(RetryPolicy::none())
        .attempt_timeout(Duration::from_secs(2))
        .deployment("m", Deployment::new("slow", slow.clone(), "m"))
        .deployment("m", Deployment::new("fast", fast.clone(), "m"))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let c = router
        .chat(hello("m"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "from fast");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // With no second deployment, the timeout itself is the answer.
    let only_slow = Router::builder("llm")
        .retry(RetryPolicy::none())
        .attempt_timeout(Duration::from_secs(2))
        .deployment("m", Deployment::new("slow", slow, "m"))
        .build()
        .unwrap();
    let err = only_slow.chat(hello("m")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        err.message().contains("`slow`") && err.message().contains("2000 ms"),
        "{err}"
    );
}

#[tokio::test]
async fn fallback_groups_are_tried_in_declared_order_after_the_primary_fails() {
    let big = Scripted::new("big", |_, _| Reply::Fail(server_error("big")));
    let medium = Scripted::new("medium", |_, _| Reply::Fail(server_error("medium")));
    let small = Scripted::ok("small");
    let router = Router::builder("llm")
        .retry(RetryPolicy::none())
        .deployment("big", Deployment::new("b", big.clone(), "big-model"))
        .deployment(
            "medium",
            Deployment::new("m", medium.clone(), "medium-model"),
        )
        .deployment("small", Deployment::new("s", small.clone(), "small-model"))
        .fallbacks("big", ["medium", "small"])
        .build()
        .unwrap();
    let resp = router.chat(hello("big")).await.unwrap();
    assert_eq!(resp.meta.provider, "small");
    assert_eq!(
        resp.meta.model, "small-model",
        "the deployment's model name is sent"
    );
    assert_eq!((big.count(), medium.count(), small.count()), (1, 1, 1));
}

#[tokio::test]
async fn every_deployment_gets_one_attempt_then_retries_repeat_and_the_error_counts_them() {
    let a = Scripted::new("a", |_, _| Reply::Fail(server_error("a")));
    let b = Scripted::new("b", |_, _| Reply::Fail(server_error("b")));
    let router = Router::builder("llm")
        .retry(RetryPolicy::retries(1).backoff(Duration::ZERO, Duration::ZERO))
        .deployment("m", Deployment::new("a", a.clone(), "m"))
        .deployment("m", Deployment::new("b", b.clone(), "m"))
        .build()
        .unwrap();
    let err = router.chat(hello("m")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(err.is_retryable());
    assert_eq!(err.status(), Some(500));
    assert!(err.message().contains("after 3 attempts"), "{err}");
    assert!(
        a.count() >= 1 && b.count() >= 1,
        "each fresh deployment once"
    );
    assert_eq!(a.count() + b.count(), 3, "then one retry");
}

#[tokio::test]
async fn unknown_model_or_alias_is_a_typed_error_naming_the_router_and_known_names() {
    let router = Router::builder("llm")
        .deployment("gpt", Deployment::new("d", Scripted::ok("p"), "gpt-4o"))
        .alias("fast", "gpt")
        .build()
        .unwrap();
    let err = router.chat(hello("gtp")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(err.code(), "model_not_found");
    assert!(err.message().contains("router `llm`"), "{err}");
    assert!(
        err.message().contains("`gtp`") && err.message().contains("fast, gpt"),
        "{err}"
    );
    assert!(router.chat(hello("fast")).await.is_ok(), "aliases resolve");
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_bounds_attempts_and_backoffs_together() {
    let slow = Scripted::new("slow", |_, _| {
        Reply::After(
            Duration::from_secs(3),
            Box::new(Reply::Fail(server_error("slow"))),
        )
    });
    let router = Router::builder("llm")
        .retry(
            RetryPolicy::retries(10)
                .backoff(Duration::from_secs(1), Duration::from_secs(1))
                .jitter(false),
        )
        .total_timeout(Duration::from_secs(10))
        .deployment("m", Deployment::new("slow", slow.clone(), "m"))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = router.chat(hello("m")).await.unwrap_err();
    assert!(
        started.elapsed() <= Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        slow.count() < 11,
        "stopped by the total budget, not the retry count"
    );
    assert!(err.is_retryable(), "{err}");
}

#[cfg(all(feature = "anthropic", feature = "gemini"))]
#[tokio::test]
async fn a_fallback_across_provider_types_translates_the_same_request_for_each() {
    use aegis_contracts::{ChatRequest, Message};
    use aegis_providers::{Anthropic, Gemini};

    let (claude_base, claude_seen) = serve(|_| async {
        json_response(529, &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    })
    .await;
    let (gemini_base, gemini_seen) = serve(|_| async {
        json_response(200, &json!({ "candidates": [{ "content": { "role": "model",
            "parts": [{ "text": "Bonjour" }] }, "finishReason": "STOP" }], "modelVersion": "gemini-2.5-flash" }))
    })
    .await;
    let claude: Arc<dyn Provider> = Arc::new(
        Anthropic::builder("claude")
            .base_url(claude_base)
            .api_key(Secret::new("k"))
            .build()
            .unwrap(),
    );
    let gemini: Arc<dyn Provider> = Arc::new(
        Gemini::builder("gemini")
            .base_url(gemini_base)
            .api_key(Secret::new("k"))
            .build()
            .unwrap(),
    );
    let router = Router::builder("llm")
        .retry(RetryPolicy::none())
        .deployment(
            "smart",
            Deployment::new("claude", claude, "claude-sonnet-4-5"),
        )
        .deployment(
            "backup",
            Deployment::new("gemini", gemini, "gemini-2.5-flash"),
        )
        .fallbacks("smart", ["backup"])
        .build()
        .unwrap();
    let req = ChatRequest::new(
        "smart",
        vec![Message::system("Be brief."), Message::user("Hi")],
    );
    let c = router.chat(req).await.unwrap().collect().await.unwrap();
    assert_eq!(c.message().unwrap().text(), "Bonjour");
    let a = claude_seen.last().json();
    assert_eq!(
        (a["model"].as_str(), a["system"][0]["text"].as_str()),
        (Some("claude-sonnet-4-5"), Some("Be brief."))
    );
    let g = gemini_seen.last();
    assert_eq!(g.uri.path(), "/models/gemini-2.5-flash:generateContent");
    assert_eq!(
        g.json()["systemInstruction"]["parts"][0]["text"],
        "Be brief."
    );
    assert_eq!(g.json()["contents"][0]["parts"][0]["text"], "Hi");
}
