//! `Echo`, the offline development provider.
#![allow(clippy::unwrap_used)]

use aegis_contracts::{
    ChatBody, ChatRequest, Content, ContentPart, EmbeddingRequest, ErrorKind, Message, Provider,
    ToolCall, ToolSpec,
};
use aegis_providers::{Echo, EchoConfig};
use futures_util::StreamExt;
use serde_json::json;

fn tool(name: &str) -> ToolSpec {
    ToolSpec::function(name, "a tool", json!({"type": "object"}))
}

#[tokio::test]
async fn answers_the_last_user_message_with_word_usage() {
    let req = ChatRequest::new(
        "m",
        vec![
            Message::system("be nice"),
            Message::user("first question"),
            Message::assistant("ok"),
            Message::user("hello  big world"),
        ],
    );
    let resp = Echo::new("dev").chat(req).await.unwrap();
    assert_eq!(
        (resp.meta.provider.as_str(), resp.meta.model.as_str()),
        ("dev", "m")
    );
    let ChatBody::Complete(c) = resp.body else {
        panic!("expected a complete body")
    };
    assert_eq!(c.message().unwrap().text(), "echo: hello  big world");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    let u = c.usage.unwrap();
    assert_eq!((u.input_tokens, u.output_tokens), (2 + 2 + 1 + 3, 4));
}

#[tokio::test]
async fn multi_part_content_is_echoed_as_joined_text() {
    let mut msg = Message::user("");
    msg.content = Some(Content::Parts(vec![
        ContentPart::Text {
            text: "look at".into(),
        },
        ContentPart::ImageUrl {
            image_url: json!({"url": "data:,"}),
        },
        ContentPart::Text {
            text: "this".into(),
        },
    ]));
    let c = Echo::default()
        .chat(ChatRequest::new("m", vec![msg]))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "echo: look at\nthis");
    assert_eq!(c.usage.unwrap().input_tokens, 3);
}

#[tokio::test]
async fn slash_call_with_tools_answers_a_tool_call() {
    let req = ChatRequest::new(
        "m",
        vec![Message::user(
            r#"/call get_weather {"city": "Paris", "unit": "C"}"#,
        )],
    )
    .with_tool(tool("search"))
    .with_tool(tool("get_weather"));
    let c = Echo::default()
        .chat(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let msg = c.message().unwrap();
    assert!(msg.content.is_none());
    assert_eq!(msg.tool_calls.len(), 1);
    assert_eq!(msg.tool_calls[0].function.name, "get_weather");
    assert_eq!(
        msg.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Paris", "unit": "C"})
    );
    assert!(!msg.tool_calls[0].id.is_empty());
}

#[tokio::test]
async fn slash_call_without_arguments_calls_with_an_empty_object() {
    let req = ChatRequest::new("m", vec![Message::user("/call now")]).with_tool(tool("now"));
    let c = Echo::default()
        .chat(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().tool_calls[0].function.arguments, "{}");
}

#[tokio::test]
async fn slash_call_without_tools_is_echoed_as_text() {
    let req = ChatRequest::new("m", vec![Message::user("/call get_weather {}")]);
    let c = Echo::default()
        .chat(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "echo: /call get_weather {}");
    assert!(c.message().unwrap().tool_calls.is_empty());
}

#[tokio::test]
async fn slash_call_of_an_unknown_tool_or_with_bad_json_is_an_invalid_request() {
    let echo = Echo::default();
    let req =
        ChatRequest::new("m", vec![Message::user("/call nope {}")]).with_tool(tool("get_weather"));
    let err = echo.chat(req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.message().contains("nope"), "{err}");
    let req = ChatRequest::new("m", vec![Message::user("/call get_weather {city: Paris}")])
        .with_tool(tool("get_weather"));
    assert_eq!(
        echo.chat(req).await.unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
}

#[tokio::test]
async fn a_tool_result_after_a_call_is_echoed_so_agent_loops_end() {
    let mut assistant = Message::assistant("");
    assistant.content = None;
    assistant.tool_calls = vec![ToolCall::new("call_echo_1", "get_weather", "{}")];
    let req = ChatRequest::new(
        "m",
        vec![
            Message::user("/call get_weather {}"),
            assistant,
            Message::tool("call_echo_1", "sunny, 21C"),
        ],
    )
    .with_tool(tool("get_weather"));
    let c = Echo::default()
        .chat(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "echo: sunny, 21C");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn stream_is_word_chunks_with_role_first_and_finish_and_usage_last() {
    let echo = Echo::default();
    let req = ChatRequest::new("m", vec![Message::user("one two  three")]);
    let complete = echo
        .chat(req.clone())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let ChatBody::Stream(mut stream) = echo.chat(req.with_stream(true)).await.unwrap().body else {
        panic!("expected a stream")
    };
    let mut chunks = Vec::new();
    while let Some(c) = stream.next().await {
        chunks.push(c.unwrap());
    }
    let pieces: Vec<&str> = chunks
        .iter()
        .map(|c| c.choices[0].delta.content.as_deref().unwrap())
        .collect();
    assert_eq!(pieces, ["echo:", " one", " two", "  three"]);
    assert!(chunks[0].choices[0].delta.role.is_some());
    assert!(
        chunks[1..]
            .iter()
            .all(|c| c.choices[0].delta.role.is_none())
    );
    assert!(
        chunks[..3]
            .iter()
            .all(|c| c.choices[0].finish_reason.is_none() && c.usage.is_none())
    );
    assert_eq!(chunks[3].choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(chunks[3].usage, complete.usage);

    let collected = echo
        .chat(ChatRequest::new("m", vec![Message::user("one two  three")]).with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(collected.choices, complete.choices);
    assert_eq!(collected.usage, complete.usage);
}

#[tokio::test]
async fn streamed_tool_call_assembles_to_the_complete_one() {
    let req = ChatRequest::new(
        "m",
        vec![Message::user(r#"/call get_weather {"city": "New York"}"#)],
    )
    .with_tool(tool("get_weather"));
    let echo = Echo::default();
    let complete = echo
        .chat(req.clone())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let ChatBody::Stream(stream) = echo.chat(req.clone().with_stream(true)).await.unwrap().body
    else {
        panic!("expected a stream")
    };
    assert!(stream.count().await > 1, "arguments arrive in fragments");
    let streamed = echo
        .chat(req.with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(streamed.choices, complete.choices);
    assert_eq!(streamed.usage, complete.usage);
    assert_eq!(
        streamed.choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
}

#[tokio::test]
async fn embeddings_are_deterministic_unit_vectors_of_16_dimensions() {
    let echo = Echo::default();
    let input = vec![
        "the cat sat".to_owned(),
        "The Cat sat".to_owned(),
        "stock prices fell".to_owned(),
        String::new(),
    ];
    let r = echo
        .embed(EmbeddingRequest::new("e", input.clone()))
        .await
        .unwrap();
    assert_eq!(r.data.len(), 4);
    assert!(r.data.iter().all(|v| v.len() == 16));
    for v in &r.data[..3] {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
    assert_eq!(r.data[0], r.data[1], "case-insensitive bag of words");
    assert_ne!(r.data[0], r.data[2]);
    assert!(r.data[3].iter().all(|x| *x == 0.0));
    assert_eq!(r.usage.input_tokens, 9);
    let again = echo.embed(EmbeddingRequest::new("e", input)).await.unwrap();
    assert_eq!(again.data, r.data);

    let mut req = EmbeddingRequest::new("e", vec!["x".into()]);
    req.dimensions = Some(64);
    assert_eq!(echo.embed(req).await.unwrap().data[0].len(), 64);
    let mut req = EmbeddingRequest::new("e", vec!["x".into()]);
    req.dimensions = Some(0);
    assert_eq!(
        echo.embed(req).await.unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
}

#[test]
fn from_config_sets_region_and_models_and_config_rejects_unknown_fields() {
    let cfg: EchoConfig =
        serde_json::from_value(json!({"region": "eu", "models": ["echo-1"]})).unwrap();
    let echo = Echo::from_config("offline", cfg);
    assert_eq!(
        (echo.name(), echo.region(), echo.models()),
        ("offline", Some("eu"), vec!["echo-1".to_owned()])
    );
    assert!(
        echo.capabilities().streaming
            && echo.capabilities().tools
            && echo.capabilities().embeddings
    );
    assert!(serde_json::from_value::<EchoConfig>(json!({"model": "x"})).is_err());
    let schema = serde_json::to_value(schemars::schema_for!(EchoConfig)).unwrap();
    assert_eq!(schema["additionalProperties"], false);
}
