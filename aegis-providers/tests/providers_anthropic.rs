//! Anthropic Messages API: golden translations against a local server speaking its format.
#![cfg(feature = "anthropic")]
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{ChatBody, ChatRequest, ErrorKind, Message, Provider, Role, Secret};
use aegis_providers::{Anthropic, AnthropicConfig};
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

const KEY: &str = "sk-ant-test-SECRET";

fn provider(base: &str) -> Anthropic {
    Anthropic::builder("claude")
        .base_url(format!("{base}/v1"))
        .api_key(Secret::new(KEY))
        .build()
        .unwrap()
}

fn golden_request() -> ChatRequest {
    serde_json::from_value(fixture_json("anthropic/chat_request.json")).unwrap()
}

#[tokio::test]
async fn request_translation_matches_the_golden_wire_body() {
    let (base, seen) = serve(|_| async {
        json_response(
            200,
            &fixture_json("anthropic/response_thinking_tool_use.json"),
        )
    })
    .await;
    provider(&base).chat(golden_request()).await.unwrap();
    let r = seen.last();
    assert_eq!(r.uri.path(), "/v1/messages");
    assert_eq!(r.headers["x-api-key"], KEY);
    assert_eq!(r.headers["anthropic-version"], "2023-06-01");
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(r.json(), fixture_json("anthropic/wire_request.json"));
}

#[tokio::test]
async fn complete_response_keeps_thinking_signature_tool_use_stop_reason_and_cache_usage() {
    let (base, _) = serve(|_| async {
        json_response(
            200,
            &fixture_json("anthropic/response_thinking_tool_use.json"),
        )
    })
    .await;
    let resp = provider(&base).chat(golden_request()).await.unwrap();
    assert_eq!(resp.meta.provider, "claude");
    assert_eq!(resp.meta.model, "claude-sonnet-4-5-20250929");
    let c = resp.collect().await.unwrap();
    assert_eq!(c.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let m = c.message().unwrap();
    assert_eq!(m.text(), "Je vérifie la météo.");
    assert_eq!(m.tool_calls[0].id, "toolu_02");
    assert_eq!(m.tool_calls[0].function.name, "get_weather");
    assert_eq!(
        m.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        m.extra["thinking_blocks"],
        json!([{ "type": "thinking", "thinking": "Need the weather tool.",
            "signature": "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve" }])
    );
    assert_eq!(m.extra["reasoning_content"], "Need the weather tool.");
    let u = c.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens
        ),
        (3050, 80, 2000, 1000),
        "input includes both cache counts"
    );
}

#[tokio::test]
async fn returned_thinking_and_tool_calls_round_trip_into_the_next_request() {
    let (base, seen) = serve(|_| async {
        json_response(
            200,
            &fixture_json("anthropic/response_thinking_tool_use.json"),
        )
    })
    .await;
    let p = provider(&base);
    let first = p
        .chat(ChatRequest::new(
            "claude-sonnet-4-5",
            vec![Message::user("Weather in Paris?")],
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let answer = first.message().unwrap().clone();
    let call_id = answer.tool_calls[0].id.clone();
    let next = ChatRequest::new(
        "claude-sonnet-4-5",
        vec![
            Message::user("Weather in Paris?"),
            answer,
            Message::tool(call_id, "18°C"),
        ],
    );
    p.chat(next).await.unwrap();
    let body = seen.last().json();
    let assistant = &body["messages"][1];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(
        assistant["content"],
        json!([
            { "type": "thinking", "thinking": "Need the weather tool.",
              "signature": "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve" },
            { "type": "text", "text": "Je vérifie la météo." },
            { "type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": { "city": "Paris" } }
        ])
    );
    assert_eq!(
        body["messages"][2]["content"][0],
        json!({ "type": "tool_result", "tool_use_id": "toolu_02", "content": "18°C" })
    );
}

#[tokio::test]
async fn stream_translates_every_event_type_and_collects_like_the_complete_answer() {
    let (base, seen) =
        serve(|_| async { sse_text_response(&fixture("anthropic/stream_thinking_tool_use.sse")) })
            .await;
    let p = provider(&base);
    let resp = p.chat(golden_request().with_stream(true)).await.unwrap();
    let ChatBody::Stream(mut s) = resp.body else {
        panic!("expected a stream")
    };
    let mut chunks = Vec::new();
    while let Some(c) = s.next().await {
        chunks.push(c.unwrap());
    }
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(chunks[0].id, "msg_014p7gG3wDgGV9EUtLvnow3U");
    assert!(
        chunks.iter().any(|c| c.choices[0].delta.extra.get("reasoning_content")
            == Some(&json!("Need the "))),
        "thinking deltas stream as reasoning_content"
    );
    assert_eq!(seen.last().json()["stream"], true);

    let c = p
        .chat(golden_request().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let m = c.message().unwrap();
    assert_eq!(m.text(), "Je vérifie la météo.");
    assert_eq!(m.extra["reasoning_content"], "Need the weather tool.");
    assert_eq!(
        m.extra["thinking_blocks"],
        json!([{ "type": "thinking", "thinking": "Need the weather tool.",
            "signature": "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve" }])
    );
    assert_eq!(m.tool_calls.len(), 1);
    assert_eq!(m.tool_calls[0].id, "toolu_02");
    assert_eq!(
        m.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let u = c.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens),
        (572, 89, 100)
    );
}

#[tokio::test]
async fn stream_error_event_after_text_is_a_retryable_err_item_after_the_text() {
    let (base, _) =
        serve(|_| async { sse_text_response(&fixture("anthropic/stream_error_after_text.sse")) })
            .await;
    let resp = provider(&base)
        .chat(golden_request().with_stream(true))
        .await
        .unwrap();
    let ChatBody::Stream(mut s) = resp.body else {
        panic!("expected a stream")
    };
    let mut texts = String::new();
    let err = loop {
        match s.next().await.unwrap() {
            Ok(c) => texts.push_str(c.choices[0].delta.content.as_deref().unwrap_or("")),
            Err(e) => break e,
        }
    };
    assert_eq!(texts, "Hello");
    assert!(err.is_retryable());
    assert!(
        err.message().contains("`claude`") && err.message().contains("Overloaded"),
        "{err}"
    );
    assert!(s.next().await.is_none());
}

#[tokio::test]
async fn stream_without_message_stop_ends_with_an_err_naming_the_provider() {
    let text = fixture("anthropic/stream_thinking_tool_use.sse");
    let cut = text.split("event: message_stop").next().unwrap().to_owned();
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
    assert!(
        err.message().contains("message_stop") && err.message().contains("`claude`"),
        "{err}"
    );
}

#[tokio::test]
async fn stream_with_a_garbage_line_is_a_typed_error_naming_the_provider() {
    let text = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\ndata: {not json at all\n\n";
    let (base, _) = serve(move |_| async move { sse_text_response(text) }).await;
    let err = provider(&base)
        .chat(golden_request().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(
        err.message().contains("`claude`") && err.message().contains("not JSON"),
        "{err}"
    );
}

#[tokio::test]
async fn status_529_overloaded_is_retryable_and_400_is_not() {
    let (base, _) = serve(|r| async move {
        if r.json()["model"] == "overloaded" {
            json_response(529, &fixture_json("anthropic/error_overloaded.json"))
        } else {
            json_response(400, &fixture_json("anthropic/error_invalid_request.json"))
        }
    })
    .await;
    let p = provider(&base);
    let err = p
        .chat(ChatRequest::new("overloaded", vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(529));
    assert!(err.is_retryable());
    assert!(
        err.message()
            .contains("Overloaded (code: overloaded_error)"),
        "{err}"
    );
    let err = p
        .chat(ChatRequest::new("claude", vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
    assert!(err.message().contains("roles must alternate"), "{err}");
}

#[tokio::test]
async fn a_200_with_an_unexpected_body_shape_is_a_provider_error_not_a_success() {
    let (base, _) = serve(|_| async { json_response(200, &json!({"result": "ok"})) }).await;
    let err = provider(&base)
        .chat(ChatRequest::new("c", vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(err.message().contains("not an Anthropic message"), "{err}");
}

#[tokio::test]
async fn request_without_max_tokens_gets_the_configured_default_and_audio_is_refused() {
    let (base, seen) = serve(|_| async {
        json_response(
            200,
            &fixture_json("anthropic/response_thinking_tool_use.json"),
        )
    })
    .await;
    let cfg: AnthropicConfig = serde_json::from_value(json!({
        "base_url": format!("{base}/v1"), "api_key": KEY, "max_tokens": 777,
        "beta": ["a-1", "b-2"], "region": "us"
    }))
    .unwrap();
    let p = Anthropic::from_config("claude", cfg, None).unwrap();
    assert_eq!(p.region(), Some("us"));
    p.chat(ChatRequest::new("c", vec![Message::user("hi")]))
        .await
        .unwrap();
    let r = seen.last();
    assert_eq!(r.json()["max_tokens"], 777);
    assert_eq!(r.headers["anthropic-beta"], "a-1,b-2");

    let audio: ChatRequest =
        serde_json::from_value(json!({"model": "c", "messages": [{"role": "user",
        "content": [{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]}]}))
        .unwrap();
    let err = p.chat(audio).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(
        err.message().contains("`claude`") && err.message().contains("audio"),
        "{err}"
    );
    assert!(!format!("{p:?}").contains(KEY));
}

#[test]
fn request_body_is_inspectable_without_a_server() {
    let p = Anthropic::builder("claude").build().unwrap();
    let body = p.request_body(&golden_request()).unwrap();
    assert_eq!(body, fixture_json("anthropic/wire_request.json"));
    assert!(
        body.get("logit_bias").is_none(),
        "OpenAI-only fields are not forwarded"
    );
    let _: Value = body;
}
