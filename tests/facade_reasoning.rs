//! Reasoning and refusal text is an output segment: judged and sanitized like `content`,
//! streamed and not. An OpenAI-compatible upstream (a real local HTTP server, DeepSeek-style
//! `reasoning_content`) puts a planted secret in the content and in the reasoning; the
//! redacting secrets guard must remove it from both.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use aegis::{ChatRequest, Message, Pipeline, config::AegisConfig};
use axum::{
    body::{Body, Bytes},
    http::header,
    response::{IntoResponse, Response},
    routing::post,
};

const SECRET: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

fn chunk(delta: &str) -> String {
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta}}}]}}\n\n"
    )
}

/// Answers with the secret in the reasoning and in the content, split across chunks.
async fn upstream() -> SocketAddr {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|body: Bytes| async move {
            let stream = std::str::from_utf8(&body)
                .unwrap()
                .contains("\"stream\":true");
            let (head, tail) = SECRET.split_at(12);
            if stream {
                let pieces = [
                    chunk("{\"role\":\"assistant\",\"reasoning_content\":\"the token is \"}"),
                    chunk(&format!("{{\"reasoning_content\":\"{head}\"}}")),
                    chunk(&format!("{{\"reasoning_content\":\"{tail} so use it\"}}")),
                    chunk(&format!("{{\"content\":\"use {head}\"}}")),
                    chunk(&format!("{{\"content\":\"{tail} now\"}}")),
                    chunk("{},\"finish_reason\":\"stop\""),
                    "data: [DONE]\n\n".to_owned(),
                ];
                let body: Vec<Result<Bytes, std::io::Error>> =
                    pieces.into_iter().map(|p| Ok(Bytes::from(p))).collect();
                return Response::builder()
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .body(Body::from_stream(futures_util::stream::iter(body)))
                    .unwrap();
            }
            let answer = serde_json::json!({
                "id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{ "index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant",
                    "content": format!("use {SECRET} now"),
                    "reasoning_content": format!("the token is {SECRET} so use it"),
                    "refusal": format!("I will not print {SECRET}"),
                }}],
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                answer.to_string(),
            )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn pipeline(addr: SocketAddr) -> Pipeline {
    let toml = format!(
        r#"
[[providers]]
id = "up"
type = "openai"
config = {{ base_url = "http://{addr}/v1" }}

[[guardrails]]
id = "secrets"
type = "secrets"
stages = ["output"]
config = {{ action = "redact" }}
"#
    );
    let cfg = AegisConfig::from_toml_str(&toml, std::iter::empty::<(&str, &str)>()).unwrap();
    Pipeline::from_config(&aegis::registry(), &cfg)
        .await
        .unwrap()
}

fn ask() -> ChatRequest {
    ChatRequest::new("up/m", vec![Message::user("what is the token?")])
}

#[tokio::test]
async fn a_secret_redacted_from_content_is_redacted_from_reasoning_and_refusal_too() {
    let p = pipeline(upstream().await).await;
    let c = p.chat(ask()).await.unwrap().collect().await.unwrap();
    let m = c.message().unwrap();
    let all = serde_json::to_string(&c).unwrap();
    assert!(!all.contains(SECRET), "{all}");
    assert!(m.text().contains("[REDACTED:"), "{all}");
    for field in ["reasoning_content", "refusal"] {
        let t = m.extra[field].as_str().unwrap();
        assert!(t.contains("[REDACTED:"), "{field}: {t}");
    }
}

#[tokio::test]
async fn a_streamed_secret_split_across_reasoning_chunks_is_redacted() {
    let p = pipeline(upstream().await).await;
    let mut chunks = Vec::new();
    let aegis::ChatBody::Stream(mut stream) = p.chat(ask().with_stream(true)).await.unwrap().body
    else {
        panic!("a streamed request answers with a stream");
    };
    while let Some(c) = futures_util::StreamExt::next(&mut stream).await {
        chunks.push(c.unwrap());
    }
    let wire = serde_json::to_string(&chunks).unwrap();
    assert!(!wire.contains(SECRET), "{wire}");
    let (head, tail) = SECRET.split_at(12);
    assert!(!wire.contains(head) && !wire.contains(tail), "{wire}");
    let reasoning: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|ch| ch.delta.extra.get("reasoning_content")?.as_str())
        .collect();
    assert!(
        reasoning.starts_with("the token is [REDACTED:") && reasoning.ends_with(" so use it"),
        "{reasoning}"
    );
    let content: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|ch| ch.delta.content.as_deref())
        .collect();
    assert!(content.contains("[REDACTED:"), "{content}");
}
