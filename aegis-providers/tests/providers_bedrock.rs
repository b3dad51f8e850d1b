//! AWS Bedrock Converse: golden translations, SigV4-signed requests and the binary
//! event-stream, against a local server speaking Bedrock's format.
#![cfg(feature = "bedrock")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aegis_contracts::{ChatRequest, EmbeddingRequest, ErrorKind, Message, Provider, Secret};
use aegis_providers::{
    Bedrock, BedrockConfig,
    bedrock::{AwsCredentials, eventstream::encode_message},
};
use common::*;
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-3-7-sonnet-20250219-v1:0";

fn provider(base: &str) -> Bedrock {
    Bedrock::builder("bedrock", "us-east-1")
        .endpoint(base)
        .credentials(AwsCredentials::new(
            "AKIDEXAMPLE",
            Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ))
        .build()
        .unwrap()
}

fn golden_request() -> ChatRequest {
    serde_json::from_value(fixture_json("bedrock/chat_request.json")).unwrap()
}

/// The stream fixture as event-stream bytes, one write per message.
fn stream_pieces(events: &[Value]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| {
            let event = e["event"].as_str().unwrap();
            encode_message(
                &[
                    (":event-type", event),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                e["payload"].to_string().as_bytes(),
            )
        })
        .collect()
}

fn eventstream_response(pieces: Vec<Vec<u8>>) -> axum::response::Response {
    pieces_response("application/vnd.amazon.eventstream", pieces, Duration::ZERO)
}

#[tokio::test]
async fn request_is_signed_sigv4_to_the_encoded_model_path_with_the_golden_body() {
    let (base, seen) = serve(|_| async {
        raw_response(
            200,
            &[
                ("content-type", "application/json"),
                ("x-amzn-requestid", "req-1"),
            ],
            fixture("bedrock/response_tool_use.json"),
        )
    })
    .await;
    provider(&base).chat(golden_request()).await.unwrap();
    let r = seen.last();
    assert_eq!(
        r.uri.path(),
        "/model/anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"
    );
    assert_eq!(r.json(), fixture_json("bedrock/wire_request.json"));
    let auth = r.headers["authorization"].to_str().unwrap();
    let date = r.headers["x-amz-date"].to_str().unwrap();
    assert_eq!(date.len(), 16);
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{}/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=",
        &date[..8]
    );
    assert!(auth.starts_with(&prefix), "{auth}");
    let sig = &auth[prefix.len()..];
    assert!(
        sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sig}"
    );
}

#[tokio::test]
async fn complete_response_maps_reasoning_tool_use_stop_reason_usage_and_request_id() {
    let (base, _) = serve(|_| async {
        raw_response(
            200,
            &[
                ("content-type", "application/json"),
                ("x-amzn-requestid", "req-1"),
            ],
            fixture("bedrock/response_tool_use.json"),
        )
    })
    .await;
    let c = provider(&base)
        .chat(golden_request())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.id, "req-1");
    assert_eq!(c.model, MODEL);
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let m = c.message().unwrap();
    assert_eq!(m.text(), "Checking now.");
    assert_eq!(m.tool_calls[0].id, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(
        m.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        m.extra["thinking_blocks"],
        json!([{ "type": "thinking", "thinking": "User wants Paris weather.", "signature": "EqoBCkgIARABGAIiQK" }])
    );
    let u = c.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens
        ),
        (530, 60, 400, 100)
    );
    assert_eq!(c.extra["metrics"]["latencyMs"], 1204);
}

#[tokio::test]
async fn converse_stream_event_stream_is_decoded_and_collects_like_the_complete_answer() {
    let events: Vec<Value> =
        serde_json::from_value(fixture_json("bedrock/stream_events.json")).unwrap();
    let pieces = stream_pieces(&events);
    let (base, seen) = serve(move |_| {
        // Re-split at arbitrary points: frames must survive any TCP segmentation.
        let whole: Vec<u8> = pieces.concat();
        let chunks = whole.chunks(7).map(<[u8]>::to_vec).collect();
        async move { eventstream_response(chunks) }
    })
    .await;
    let c = provider(&base)
        .chat(golden_request().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let r = seen.last();
    assert!(r.uri.path().ends_with("/converse-stream"), "{}", r.uri);
    assert_eq!(r.headers["accept"], "application/vnd.amazon.eventstream");
    let m = c.message().unwrap();
    assert_eq!(m.text(), "Checking now.");
    assert_eq!(m.extra["reasoning_content"], "User wants weather.");
    assert_eq!(
        m.extra["thinking_blocks"],
        json!([{ "type": "thinking", "thinking": "User wants weather.", "signature": "EqoBCkgI" }])
    );
    assert_eq!(m.tool_calls[0].id, "tooluse_s1");
    assert_eq!(
        m.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let u = c.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens),
        (75, 40, 50)
    );
}

#[tokio::test]
async fn a_throttling_exception_mid_stream_is_a_rate_limited_err_item() {
    let events: Vec<Value> =
        serde_json::from_value(fixture_json("bedrock/stream_events.json")).unwrap();
    let mut pieces = stream_pieces(&events[..6]);
    pieces.push(encode_message(
        &[
            (":exception-type", "throttlingException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        br#"{"message":"Too many tokens, please wait before trying again."}"#,
    ));
    let (base, _) = serve(move |_| {
        let pieces = pieces.clone();
        async move { eventstream_response(pieces) }
    })
    .await;
    let err = provider(&base)
        .chat(golden_request().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert!(
        err.message().contains("`bedrock`") && err.message().contains("throttlingException"),
        "{err}"
    );
}

#[tokio::test]
async fn a_corrupted_frame_or_a_cut_stream_is_a_typed_error_naming_the_provider() {
    let events: Vec<Value> =
        serde_json::from_value(fixture_json("bedrock/stream_events.json")).unwrap();
    let good = stream_pieces(&events);
    let mut corrupt = good.clone();
    let last = corrupt[5].len() - 6;
    corrupt[5][last] ^= 0x20;
    let cut: Vec<Vec<u8>> = good[..8].to_vec();
    let (base, _) = serve(move |r| {
        let pieces = if r.uri.path().contains("corrupt") {
            corrupt.clone()
        } else {
            cut.clone()
        };
        async move { eventstream_response(pieces) }
    })
    .await;
    let p = provider(&base);
    let err = p
        .chat(ChatRequest::new("corrupt", vec![Message::user("x")]).with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(
        err.message().contains("`bedrock`") && err.message().contains("checksum"),
        "{err}"
    );
    let err = p
        .chat(ChatRequest::new("cut", vec![Message::user("x")]).with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(
        err.message().contains("`bedrock`") && err.message().contains("messageStop"),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn aws_error_bodies_and_error_type_headers_become_typed_errors() {
    let (base, _) = serve(|r| async move {
        if r.uri.path().contains("busy") {
            raw_response(
                429,
                &[
                    ("content-type", "application/json"),
                    (
                        "x-amzn-errortype",
                        "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                    ),
                ],
                fixture("bedrock/error_throttling.json"),
            )
        } else {
            raw_response(
                400,
                &[
                    ("content-type", "application/json"),
                    ("x-amzn-errortype", "ValidationException"),
                ],
                fixture("bedrock/error_validation.json"),
            )
        }
    })
    .await;
    let p = provider(&base);
    let err = p
        .chat(ChatRequest::new("busy", vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.is_retryable());
    assert!(
        err.message().contains("Too many requests")
            && err.message().contains("ThrottlingException"),
        "{err}"
    );
    let err = p
        .chat(ChatRequest::new("bad", vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
    assert!(
        err.message().contains("roles must alternate")
            && err.message().contains("ValidationException"),
        "{err}"
    );
}

#[tokio::test]
async fn api_key_auth_sends_a_bearer_and_does_not_sign() {
    let (base, seen) =
        serve(|_| async { json_response(200, &fixture_json("bedrock/response_tool_use.json")) })
            .await;
    let cfg: BedrockConfig = serde_json::from_value(json!({
        "region": "eu-west-1", "api_key": "bedrock-api-key-SECRET", "endpoint": base
    }))
    .unwrap();
    let p = Bedrock::from_config("bedrock", cfg, None).unwrap();
    assert_eq!(p.region(), Some("eu-west-1"));
    p.chat(ChatRequest::new(MODEL, vec![Message::user("x")]))
        .await
        .unwrap();
    let r = seen.last();
    assert_eq!(r.headers["authorization"], "Bearer bedrock-api-key-SECRET");
    assert!(r.headers.get("x-amz-date").is_none());
    assert!(!format!("{p:?}").contains("SECRET"));
}

#[tokio::test]
async fn http_image_urls_are_refused_before_sending() {
    let (base, seen) = serve(|_| async { json_response(200, &json!({})) }).await;
    let req: ChatRequest = serde_json::from_value(json!({ "model": MODEL, "messages": [{ "role": "user",
        "content": [{ "type": "image_url", "image_url": { "url": "https://example.com/a.png" } }] }] }))
    .unwrap();
    let err = provider(&base).chat(req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.message().contains("`bedrock`"), "{err}");
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn titan_and_cohere_embeddings_use_their_invoke_bodies() {
    let (base, seen) = serve(|r| async move {
        if r.uri.path().contains("titan") {
            let n = r.json()["inputText"].as_str().unwrap().len() as f64;
            json_response(
                200,
                &json!({ "embedding": [n, 0.5], "inputTextTokenCount": 2 }),
            )
        } else {
            json_response(
                200,
                &json!({ "embeddings": { "float": [[1.0], [2.0]] }, "id": "x" }),
            )
        }
    })
    .await;
    let p = provider(&base);
    let r = p
        .embed(EmbeddingRequest::new(
            "amazon.titan-embed-text-v2:0",
            vec!["ab".into(), "abc".into()],
        ))
        .await
        .unwrap();
    assert_eq!(r.data, vec![vec![2.0, 0.5], vec![3.0, 0.5]]);
    assert_eq!(r.usage.input_tokens, 4);
    let r = p
        .embed(EmbeddingRequest::new(
            "cohere.embed-english-v3",
            vec!["a".into(), "b".into()],
        ))
        .await
        .unwrap();
    assert_eq!(r.data, vec![vec![1.0], vec![2.0]]);
    let last = seen.last();
    assert_eq!(last.uri.path(), "/model/cohere.embed-english-v3/invoke");
    assert_eq!(last.json()["input_type"], "search_document");
    let err = p
        .embed(EmbeddingRequest::new("meta.llama3", vec!["a".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

struct Rotating(std::sync::atomic::AtomicUsize);

#[aegis_contracts::async_trait]
impl aegis_providers::bedrock::AwsCredentialsSource for Rotating {
    async fn credentials(&self) -> Result<AwsCredentials, aegis_contracts::Error> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(
            AwsCredentials::new(format!("ASIAROTATING{n}"), Secret::new("s3cr3t-rotating"))
                .with_session_token(Secret::new(format!("token-{n}"))),
        )
    }
}

#[tokio::test]
async fn a_credentials_source_is_asked_per_request_and_its_session_token_is_signed() {
    let (base, seen) =
        serve(|_| async { json_response(200, &fixture_json("bedrock/response_tool_use.json")) })
            .await;
    let p = Bedrock::builder("bedrock", "us-east-1")
        .endpoint(&base)
        .credentials_source(std::sync::Arc::new(Rotating(Default::default())))
        .build()
        .unwrap();
    p.chat(ChatRequest::new(MODEL, vec![Message::user("x")]))
        .await
        .unwrap();
    p.chat(ChatRequest::new(MODEL, vec![Message::user("x")]))
        .await
        .unwrap();
    let all = seen.all();
    for (n, r) in all.iter().enumerate() {
        let auth = r.headers["authorization"].to_str().unwrap();
        assert!(
            auth.contains(&format!("Credential=ASIAROTATING{n}/")),
            "{auth}"
        );
        assert!(auth.contains("x-amz-security-token"), "{auth}");
        assert_eq!(
            r.headers["x-amz-security-token"],
            format!("token-{n}").as_str()
        );
    }
    let err = Bedrock::builder("bedrock", "us-east-1")
        .credentials_source(std::sync::Arc::new(Rotating(Default::default())))
        .api_key(Secret::new("k"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}
