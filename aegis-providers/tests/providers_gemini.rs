//! Gemini API: golden translations against a local server speaking its format.
#![cfg(feature = "gemini")]
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{
    ChatBody, ChatRequest, EmbeddingRequest, ErrorKind, Message, Provider, Role, Secret,
};
use aegis_providers::Gemini;
use common::*;
use futures_util::StreamExt;
use serde_json::json;

const KEY: &str = "AIza-test-SECRET";

fn provider(base: &str) -> Gemini {
    Gemini::builder("gemini")
        .base_url(format!("{base}/v1beta"))
        .api_key(Secret::new(KEY))
        .build()
        .unwrap()
}

fn golden_request() -> ChatRequest {
    serde_json::from_value(fixture_json("gemini/chat_request.json")).unwrap()
}

#[tokio::test]
async fn request_translation_matches_the_golden_wire_body_and_url() {
    let (base, seen) = serve(|_| async {
        json_response(200, &fixture_json("gemini/response_function_call.json"))
    })
    .await;
    provider(&base).chat(golden_request()).await.unwrap();
    let r = seen.last();
    assert_eq!(
        r.uri.path(),
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(r.headers["x-goog-api-key"], KEY);
    assert_eq!(r.json(), fixture_json("gemini/wire_request.json"));
}

#[tokio::test]
async fn complete_response_maps_thoughts_function_calls_signatures_and_usage() {
    let (base, _) = serve(|_| async {
        json_response(200, &fixture_json("gemini/response_function_call.json"))
    })
    .await;
    let resp = provider(&base).chat(golden_request()).await.unwrap();
    assert_eq!(resp.meta.model, "gemini-2.5-flash");
    let c = resp.collect().await.unwrap();
    assert_eq!(c.id, "resp-abc");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let m = c.message().unwrap();
    assert_eq!(m.text(), "Let me look that up.");
    assert_eq!(m.extra["reasoning_content"], "Checking the forecast.");
    assert_eq!(m.tool_calls[0].id, "call_resp-abc_0");
    assert_eq!(
        m.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        m.extra["gemini_parts"][2]["thoughtSignature"],
        "CiQBVKhc7vB+sig=="
    );
    let u = c.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.reasoning_tokens
        ),
        (120, 80, 100, 50)
    );
}

#[tokio::test]
async fn signed_parts_are_replayed_verbatim_in_the_next_turn() {
    let (base, seen) = serve(|_| async {
        json_response(200, &fixture_json("gemini/response_function_call.json"))
    })
    .await;
    let p = provider(&base);
    let first = p
        .chat(ChatRequest::new(
            "gemini-2.5-flash",
            vec![Message::user("Paris?")],
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let answer = first.message().unwrap().clone();
    let id = answer.tool_calls[0].id.clone();
    p.chat(ChatRequest::new(
        "gemini-2.5-flash",
        vec![
            Message::user("Paris?"),
            answer,
            Message::tool(id, "{\"temp_c\": 20}"),
        ],
    ))
    .await
    .unwrap();
    let body = seen.last().json();
    let original = fixture_json("gemini/response_function_call.json");
    assert_eq!(body["contents"][1]["role"], "model");
    assert_eq!(
        body["contents"][1]["parts"],
        original["candidates"][0]["content"]["parts"]
    );
    assert_eq!(
        body["contents"][2]["parts"][0],
        json!({ "functionResponse": { "name": "get_weather", "response": { "temp_c": 20 } } })
    );
}

#[tokio::test]
async fn stream_uses_alt_sse_and_collects_text_thoughts_calls_and_usage() {
    let (base, seen) =
        serve(|_| async { sse_text_response(&fixture("gemini/stream_function_call.sse")) }).await;
    let p = provider(&base);
    let resp = p.chat(golden_request().with_stream(true)).await.unwrap();
    let ChatBody::Stream(mut s) = resp.body else {
        panic!("expected a stream")
    };
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first.choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(
        first.choices[0].delta.extra["reasoning_content"],
        "Checking"
    );
    let r = seen.last();
    assert_eq!(
        r.uri.path(),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(r.uri.query(), Some("alt=sse"));

    let c = p
        .chat(golden_request().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let m = c.message().unwrap();
    assert_eq!(m.text(), "Bonjour Paris!");
    assert_eq!(m.tool_calls[0].id, "call_r1_0");
    assert_eq!(m.tool_calls[0].function.name, "get_weather");
    assert_eq!(
        m.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        m.extra["gemini_parts"][3]["thoughtSignature"],
        "c2lnbmF0dXJl"
    );
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let u = c.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.reasoning_tokens,
            u.cache_read_tokens
        ),
        (12, 15, 6, 4)
    );
}

#[tokio::test]
async fn stream_that_ends_without_a_finish_reason_is_an_err_naming_the_provider() {
    let text = fixture("gemini/stream_function_call.sse");
    let cut: String = text.split("\n\n").take(2).collect::<Vec<_>>().join("\n\n") + "\n\n";
    let (base, _) = serve(move |_| {
        let cut = cut.clone();
        async move { sse_text_response(&cut) }
    })
    .await;
    let err = provider(&base)
        .chat(golden_request().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(
        err.message().contains("`gemini`") && err.message().contains("finish reason"),
        "{err}"
    );
}

#[tokio::test]
async fn stream_error_object_and_garbage_lines_are_typed_errors() {
    let (base, _) = serve(|r| async move {
        if r.uri.path().contains("quota") {
            sse_text_response("data: {\"error\": {\"code\": 429, \"message\": \"Resource exhausted\", \"status\": \"RESOURCE_EXHAUSTED\"}}\n\n")
        } else {
            sse_text_response("data: [not, json\n\n")
        }
    })
    .await;
    let p = provider(&base);
    let err = p
        .chat(ChatRequest::new("quota", vec![Message::user("x")]).with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    let err = p
        .chat(ChatRequest::new("garbage", vec![Message::user("x")]).with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(
        err.message().contains("`gemini`") && err.message().contains("not a Gemini response"),
        "{err}"
    );
}

#[tokio::test]
async fn error_bodies_keep_google_status_and_retryability() {
    let (base, _) = serve(|r| async move {
        if r.uri.path().contains("busy") {
            json_response(429, &fixture_json("gemini/error_resource_exhausted.json"))
        } else {
            json_response(400, &fixture_json("gemini/error_invalid_argument.json"))
        }
    })
    .await;
    let p = provider(&base);
    let err = p
        .chat(ChatRequest::new("busy", vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.message().contains("RESOURCE_EXHAUSTED"), "{err}");
    let err = p
        .chat(ChatRequest::new("bad", vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
    assert!(
        err.message()
            .contains("contents is not specified (code: INVALID_ARGUMENT)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_blocked_prompt_is_a_content_filter_answer_with_feedback_kept() {
    let (base, _) = serve(|_| async {
        json_response(200, &fixture_json("gemini/response_prompt_blocked.json"))
    })
    .await;
    let c = provider(&base)
        .chat(ChatRequest::new(
            "gemini-2.5-flash",
            vec![Message::user("x")],
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        c.choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert_eq!(c.extra["prompt_feedback"]["blockReason"], "SAFETY");
}

#[tokio::test]
async fn a_200_without_candidates_is_an_error_not_an_empty_success() {
    let (base, _) = serve(|_| async { json_response(200, &json!({"unexpected": 1})) }).await;
    let err = provider(&base)
        .chat(ChatRequest::new("m", vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert!(err.message().contains("not a Gemini response"), "{err}");
}

#[tokio::test]
async fn tool_result_without_a_matching_call_is_refused_before_sending() {
    let (base, seen) = serve(|_| async { json_response(200, &json!({})) }).await;
    let req = ChatRequest::new("m", vec![Message::user("x"), Message::tool("nope", "r")]);
    let err = provider(&base).chat(req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.message().contains("`nope`"), "{err}");
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn embeddings_use_embed_content_for_one_and_batch_for_many() {
    let (base, seen) = serve(|r| async move {
        if r.uri.path().ends_with(":batchEmbedContents") {
            json_response(200, &fixture_json("gemini/embed_batch_response.json"))
        } else {
            json_response(200, &json!({ "embedding": { "values": [1.0, 2.0] } }))
        }
    })
    .await;
    let p = provider(&base);
    let mut req = EmbeddingRequest::new("gemini-embedding-001", vec!["a".into(), "b".into()]);
    req.dimensions = Some(3);
    let r = p.embed(req).await.unwrap();
    assert_eq!(r.data, vec![vec![0.1, 0.2, 0.3], vec![0.4, 0.5, 0.6]]);
    let body = seen.last().json();
    assert_eq!(body["requests"][1]["model"], "models/gemini-embedding-001");
    assert_eq!(body["requests"][1]["content"]["parts"][0]["text"], "b");
    assert_eq!(body["requests"][0]["outputDimensionality"], 3);
    let r = p
        .embed(EmbeddingRequest::new(
            "gemini-embedding-001",
            vec!["a".into()],
        ))
        .await
        .unwrap();
    assert_eq!(r.data, vec![vec![1.0, 2.0]]);
    assert_eq!(
        seen.last().uri.path(),
        "/v1beta/models/gemini-embedding-001:embedContent"
    );
}
