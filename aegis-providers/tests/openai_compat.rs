//! `OpenAiCompatible` against a real local HTTP server speaking the OpenAI wire format.
#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use aegis_contracts::{
    ChatBody, ChatRequest, EmbeddingRequest, ErrorKind, Message, Provider, Secret, ToolSpec,
};
use aegis_providers::{OpenAiCompatible, OpenAiConfig, transport};
use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Uri},
    response::Response,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tower::ServiceBuilder;

const KEY: &str = "sk-test-SECRET-0123456789";

/// What the server received: path and query, headers, JSON body.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(Uri, HeaderMap, Value)>>>);

impl Seen {
    fn last(&self) -> (Uri, HeaderMap, Value) {
        self.0.lock().unwrap().last().cloned().unwrap()
    }
}

/// Serves every request with `reply(path, json_body)` on 127.0.0.1:0; returns the base URL.
async fn serve<F, Fut>(reply: F) -> (String, Seen)
where
    F: Fn(String, Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let seen = Seen::default();
    let log = seen.clone();
    let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let reply = reply.clone();
        let log = log.clone();
        async move {
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            log.0
                .lock()
                .unwrap()
                .push((uri.clone(), headers, json.clone()));
            reply(uri.path().to_owned(), json).await
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn json_response(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn raw_response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

/// An SSE response whose body is written as the given pieces, one write each.
fn sse_response(pieces: Vec<String>, pause: Duration) -> Response {
    let stream = futures_util::stream::iter(pieces).then(move |p| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Ok::<_, Infallible>(Bytes::from(p))
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn events(datas: &[Value]) -> Vec<String> {
    datas.iter().map(|d| format!("data: {d}\n\n")).collect()
}

fn provider(base: &str) -> OpenAiCompatible {
    OpenAiCompatible::builder("mock", format!("{base}/v1"))
        .api_key(Secret::new(KEY))
        .client(reqwest::Client::new())
        .build()
        .unwrap()
}

fn hello() -> ChatRequest {
    ChatRequest::new("gpt-4o-mini", vec![Message::user("Hello?")])
}

fn completion_fixture() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_44709d6fcb",
        "choices": [{ "index": 0, "logprobs": null, "finish_reason": "stop",
            "message": { "role": "assistant", "content": "Hello! How can I help?", "refusal": null } }],
        "usage": { "prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18,
            "prompt_tokens_details": { "cached_tokens": 8, "audio_tokens": 0 },
            "completion_tokens_details": { "reasoning_tokens": 2 } }
    })
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({ "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1_700_000_001,
        "model": "gpt-4o-mini", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        "usage": null })
}

fn usage_chunk() -> Value {
    json!({ "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1_700_000_001,
        "model": "gpt-4o-mini", "choices": [],
        "usage": { "prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
            "prompt_tokens_details": { "cached_tokens": 0 },
            "completion_tokens_details": { "reasoning_tokens": 0 } } })
}

fn text_stream_events() -> Vec<String> {
    let mut out = vec![": OPENROUTER PROCESSING\n\n".to_owned()];
    out.extend(events(&[
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hel"}), Value::Null),
        chunk(json!({"content": "lo"}), Value::Null),
        chunk(json!({}), json!("stop")),
        usage_chunk(),
    ]));
    out.push("data: [DONE]\n\n".to_owned());
    out
}

#[tokio::test]
async fn complete_maps_text_usage_details_extra_fields_and_meta() {
    let (base, seen) = serve(|_, _| async { json_response(200, &completion_fixture()) }).await;
    let resp = provider(&base).chat(hello()).await.unwrap();
    assert_eq!(resp.meta.provider, "mock");
    assert_eq!(resp.meta.model, "gpt-4o-mini-2024-07-18");
    assert!(resp.meta.provider_latency.is_some());
    let ChatBody::Complete(c) = resp.body else {
        panic!("expected a complete body")
    };
    assert_eq!(c.id, "chatcmpl-1");
    assert_eq!(c.created, 1_700_000_000);
    assert_eq!(c.message().unwrap().text(), "Hello! How can I help?");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    let u = c.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.reasoning_tokens
        ),
        (12, 6, 8, 2)
    );
    assert_eq!(c.extra["system_fingerprint"], "fp_44709d6fcb");
    let (uri, headers, body) = seen.last();
    assert_eq!(uri.path(), "/v1/chat/completions");
    assert_eq!(headers["accept"], "application/json");
    assert!(
        body.get("stream_options").is_none(),
        "no stream_options on a complete call"
    );
}

#[tokio::test]
async fn request_forwards_extra_fields_bearer_key_and_custom_headers() {
    let (base, seen) = serve(|_, _| async { json_response(200, &completion_fixture()) }).await;
    let p = OpenAiCompatible::builder("mock", format!("{base}/v1"))
        .api_key(Secret::new(KEY))
        .header("OpenAI-Organization", "org-42")
        .build()
        .unwrap();
    let mut req = ChatRequest::new(
        "gpt-4o",
        vec![Message::system("be brief"), Message::user("hi")],
    );
    req.temperature = Some(0.5);
    req.extra
        .insert("logit_bias".into(), json!({"50256": -100}));
    req.extra.insert("user".into(), json!("end-user-7"));
    p.chat(req).await.unwrap();
    let (_, headers, body) = seen.last();
    assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());
    assert_eq!(headers["openai-organization"], "org-42");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "hi"})
    );
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["logit_bias"], json!({"50256": -100}));
    assert_eq!(body["user"], "end-user-7");
}

#[tokio::test]
async fn stream_yields_each_chunk_and_collects_text_finish_reason_and_usage() {
    let (base, seen) =
        serve(|_, _| async { sse_response(text_stream_events(), Duration::ZERO) }).await;
    let p = provider(&base);

    let resp = p.chat(hello().with_stream(true)).await.unwrap();
    let ChatBody::Stream(mut stream) = resp.body else {
        panic!("expected a stream")
    };
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        chunks.push(item.unwrap());
    }
    assert_eq!(chunks.len(), 5, "role, two texts, finish, usage");
    assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hel"));
    assert!(chunks[4].choices.is_empty());
    assert_eq!(chunks[4].usage.unwrap().input_tokens, 9);

    let c = p
        .chat(hello().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "Hello");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(c.usage.unwrap().total_tokens(), 11);
    let (_, headers, body) = seen.last();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(headers["accept"], "text/event-stream");
}

#[tokio::test]
async fn stream_keeps_stream_options_the_caller_chose() {
    let (base, seen) =
        serve(|_, _| async { sse_response(text_stream_events(), Duration::ZERO) }).await;
    let mut req = hello().with_stream(true);
    req.extra
        .insert("stream_options".into(), json!({"include_usage": false}));
    provider(&base)
        .chat(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        seen.last().2["stream_options"],
        json!({"include_usage": false})
    );
}

fn weather_tool() -> ToolSpec {
    ToolSpec::function(
        "get_weather",
        "Weather in a city",
        json!({"type": "object"}),
    )
}

#[tokio::test]
async fn tool_call_in_a_complete_answer_is_mapped() {
    let body = json!({
        "id": "chatcmpl-t", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{ "index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{ "id": "call_abc", "type": "function",
                "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }] } }],
        "usage": { "prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30 }
    });
    let (base, seen) = serve(move |_, _| {
        let body = body.clone();
        async move { json_response(200, &body) }
    })
    .await;
    let c = provider(&base)
        .chat(hello().with_tool(weather_tool()))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let msg = c.message().unwrap();
    assert!(msg.content.is_none());
    assert_eq!(msg.tool_calls[0].id, "call_abc");
    assert_eq!(msg.tool_calls[0].function.name, "get_weather");
    assert_eq!(
        msg.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(seen.last().2["tools"][0]["function"]["name"], "get_weather");
}

#[tokio::test]
async fn tool_calls_streamed_in_fragments_are_assembled() {
    let tc = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut f = json!({ "arguments": args });
        if let Some(n) = name {
            f["name"] = json!(n);
        }
        let mut call = json!({ "index": index, "function": f });
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        chunk(json!({ "tool_calls": [call] }), Value::Null)
    };
    let mut pieces = events(&[
        chunk(json!({"role": "assistant", "content": null}), Value::Null),
        tc(0, Some("call_1"), Some("get_weather"), ""),
        tc(0, None, None, "{\"ci"),
        tc(0, None, None, "ty\": \"Par"),
        tc(1, Some("call_2"), Some("get_time"), "{\"tz\":"),
        tc(0, None, None, "is\"}"),
        tc(1, None, None, " \"CET\"}"),
        chunk(json!({}), json!("tool_calls")),
    ]);
    pieces.push("data: [DONE]\n\n".into());
    let (base, _) = serve(move |_, _| {
        let pieces = pieces.clone();
        async move { sse_response(pieces, Duration::ZERO) }
    })
    .await;
    let req = hello().with_tool(weather_tool()).with_stream(true);
    let c = provider(&base)
        .chat(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let msg = c.message().unwrap();
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(msg.tool_calls.len(), 2);
    assert_eq!(
        (
            msg.tool_calls[0].id.as_str(),
            msg.tool_calls[0].function.name.as_str()
        ),
        ("call_1", "get_weather")
    );
    assert_eq!(
        msg.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        (
            msg.tool_calls[1].id.as_str(),
            msg.tool_calls[1].function.name.as_str()
        ),
        ("call_2", "get_time")
    );
    assert_eq!(
        msg.tool_calls[1].arguments_json().unwrap(),
        json!({"tz": "CET"})
    );
}

/// One streamed chunk with a tool-call index of 2^32 − 1 (and a choice index as large) used to
/// make the fold allocate that many slots and abort the whole process; indexes now key
/// sparse maps and the folded answer numbers choices and calls densely.
#[tokio::test]
async fn a_huge_streamed_index_is_folded_without_allocating_by_its_value() {
    let call = json!({ "index": u32::MAX, "id": "call_x", "type": "function",
        "function": { "name": "get_weather", "arguments": "{}" } });
    let huge_choice = json!({ "id": "c", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini", "choices": [{ "index": u32::MAX,
        "delta": { "content": "tail" }, "finish_reason": null }] });
    let mut pieces = events(&[
        chunk(
            json!({"role": "assistant", "tool_calls": [call]}),
            Value::Null,
        ),
        huge_choice,
        chunk(json!({}), json!("tool_calls")),
    ]);
    pieces.push("data: [DONE]\n\n".into());
    let (base, _) = serve(move |_, _| {
        let pieces = pieces.clone();
        async move { sse_response(pieces, Duration::ZERO) }
    })
    .await;
    let req = hello().with_tool(weather_tool()).with_stream(true);
    let c = provider(&base)
        .chat(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.choices.len(), 2, "{c:?}");
    assert_eq!((c.choices[0].index, c.choices[1].index), (0, 1));
    let msg = c.message().unwrap();
    assert_eq!(msg.tool_calls.len(), 1);
    assert_eq!(msg.tool_calls[0].function.name, "get_weather");
    assert_eq!(c.choices[1].message.text(), "tail");
}

#[tokio::test]
async fn embeddings_come_back_in_input_order_with_usage() {
    let (base, seen) = serve(|_, _| async {
        json_response(
            200,
            &json!({
                "object": "list", "model": "text-embedding-3-small",
                "data": [
                    { "object": "embedding", "index": 1, "embedding": [0.0, 1.0] },
                    { "object": "embedding", "index": 0, "embedding": [1.0, 0.0] }
                ],
                "usage": { "prompt_tokens": 4, "total_tokens": 4 }
            }),
        )
    })
    .await;
    let req = EmbeddingRequest::new(
        "text-embedding-3-small",
        vec!["first".into(), "second".into()],
    );
    let r = provider(&base).embed(req).await.unwrap();
    assert_eq!(r.data, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    assert_eq!(r.usage.input_tokens, 4);
    assert_eq!(r.model, "text-embedding-3-small");
    let (uri, headers, body) = seen.last();
    assert_eq!(uri.path(), "/v1/embeddings");
    assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());
    assert_eq!(body["input"], json!(["first", "second"]));
}

#[tokio::test]
async fn embeddings_with_a_missing_vector_are_an_error() {
    let (base, _) = serve(|_, _| async {
        json_response(
            200,
            &json!({ "data": [{ "index": 0, "embedding": [1.0] }], "model": "m" }),
        )
    })
    .await;
    let req = EmbeddingRequest::new("m", vec!["a".into(), "b".into()]);
    let err = provider(&base).embed(req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(err.message().contains("1 embeddings for 2 inputs"), "{err}");
}

#[tokio::test]
async fn status_400_is_the_requests_fault_keeping_the_upstream_status_code_and_message() {
    let (base, _) = serve(|_, _| async {
        json_response(
            400,
            &json!({ "error": { "message": "Invalid value for 'temperature': 3.5",
            "type": "invalid_request_error", "param": "temperature", "code": "invalid_value" } }),
        )
    })
    .await;
    let err = provider(&base).chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.code(), "invalid_value", "the upstream's code survives");
    assert!(!err.is_retryable());
    assert!(
        err.message()
            .contains("Invalid value for 'temperature': 3.5"),
        "{err}"
    );
    assert!(err.message().contains("mock"), "{err}");
}

#[tokio::test]
async fn status_500_is_retryable_with_its_status() {
    let (base, _) = serve(|_, _| async {
        json_response(
            500,
            &json!({ "error": { "message": "The server had an error", "type": "server_error" } }),
        )
    })
    .await;
    let err = provider(&base).chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert_eq!(err.status(), Some(500));
    assert!(err.is_retryable());
    assert!(err.message().contains("The server had an error"), "{err}");
}

#[tokio::test]
async fn status_500_with_an_html_body_shows_its_start() {
    let (base, _) =
        serve(|_, _| async { raw_response(502, &[], "<html>Bad Gateway</html>") }).await;
    let err = provider(&base).chat(hello()).await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert!(err.is_retryable());
    assert!(err.message().contains("<html>Bad Gateway</html>"), "{err}");
}

#[tokio::test]
async fn status_429_with_retry_after_seconds_is_rate_limited() {
    let (base, _) = serve(|_, _| async {
        raw_response(429, &[("retry-after", "7"), ("content-type", "application/json")],
            r#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}"#)
    })
    .await;
    let err = provider(&base).chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.status(), Some(429));
    assert!(err.is_retryable());
    assert!(err.message().contains("Rate limit reached"), "{err}");
}

#[tokio::test]
async fn status_429_with_retry_after_ms_and_503_with_an_http_date_set_retry_after() {
    let (base, _) = serve(|path, _| async move {
        if path.ends_with("/embeddings") {
            let at = httpdate_in(Duration::from_secs(30));
            raw_response(503, &[("retry-after", at.as_str())], "")
        } else {
            raw_response(429, &[("retry-after-ms", "250")], "")
        }
    })
    .await;
    let p = provider(&base);
    let err = p.chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));

    let err = p
        .embed(EmbeddingRequest::new("m", vec!["x".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(err.is_retryable());
    let after = err.retry_after().unwrap();
    assert!(
        after > Duration::from_secs(25) && after <= Duration::from_secs(30),
        "{after:?}"
    );
}

fn httpdate_in(d: Duration) -> String {
    // RFC 7231 IMF-fixdate, built by hand to keep the test independent of the parser.
    let secs = (SystemTime::now() + d)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil-from-days (Howard Hinnant).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[tokio::test]
async fn status_401_says_the_key_was_rejected_and_never_echoes_the_key() {
    let (base, _) = serve(|_, _| async {
        json_response(
            401,
            &json!({ "error": { "message": format!("Incorrect API key provided: {KEY}."),
            "type": "invalid_request_error", "code": "invalid_api_key" } }),
        )
    })
    .await;
    let err = provider(&base).chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_retryable());
    assert!(err.message().contains("rejected the API key"), "{err}");
    assert!(
        err.message().contains("Incorrect API key provided"),
        "{err}"
    );
    assert!(
        !format!("{err} {err:?}").contains(KEY),
        "the key leaked: {err:?}"
    );
}

#[tokio::test]
async fn success_status_with_malformed_json_is_a_provider_error() {
    let (base, _) = serve(|path, _| async move {
        if path.ends_with("/embeddings") {
            raw_response(200, &[("content-type", "application/json")], "{\"data\": [")
        } else {
            json_response(200, &json!({ "id": "x", "choices": "not a list" }))
        }
    })
    .await;
    let p = provider(&base);
    let err = p.chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(
        err.message()
            .contains("returned a body that is not a chat completion"),
        "{err}"
    );
    let err = p
        .embed(EmbeddingRequest::new("m", vec!["x".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(
        err.message().contains("not an embeddings response"),
        "{err}"
    );
}

#[tokio::test]
async fn success_status_with_an_error_object_surfaces_the_upstream_message() {
    let (base, _) = serve(|_, _| async {
        json_response(
            200,
            &json!({ "error": { "message": "model is loading", "code": 503 } }),
        )
    })
    .await;
    let err = provider(&base).chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(err.message().contains("model is loading"), "{err}");
}

#[tokio::test]
async fn stream_cut_before_done_yields_an_err_item_and_collect_fails() {
    let pieces = events(&[
        chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null),
        chunk(json!({"content": "lo"}), Value::Null),
    ]);
    let (base, _) = serve(move |_, _| {
        let pieces = pieces.clone();
        async move { sse_response(pieces, Duration::ZERO) }
    })
    .await;
    let p = provider(&base);
    let ChatBody::Stream(mut stream) = p.chat(hello().with_stream(true)).await.unwrap().body else {
        panic!("expected a stream")
    };
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    let err = items[2].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(
        err.message().contains("stream ended before [DONE]"),
        "{err}"
    );

    let err = p
        .chat(hello().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(err.message().contains("[DONE]"), "{err}");
}

#[tokio::test]
async fn stream_with_a_garbage_data_line_yields_an_err_naming_the_provider() {
    let mut pieces = events(&[chunk(
        json!({"role": "assistant", "content": "Hi"}),
        Value::Null,
    )]);
    pieces.push("data: {this is not json\n\n".into());
    pieces.push("data: [DONE]\n\n".into());
    let (base, _) = serve(move |_, _| {
        let pieces = pieces.clone();
        async move { sse_response(pieces, Duration::ZERO) }
    })
    .await;
    let ChatBody::Stream(mut stream) = provider(&base)
        .chat(hello().with_stream(true))
        .await
        .unwrap()
        .body
    else {
        panic!("expected a stream")
    };
    assert!(stream.next().await.unwrap().is_ok());
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(err.message().contains("`mock`"), "{err}");
    assert!(
        err.message().contains("not a chat completion chunk"),
        "{err}"
    );
    assert!(stream.next().await.is_none(), "nothing after the error");
}

#[tokio::test]
async fn stream_with_an_upstream_error_event_yields_an_err_with_its_message() {
    let mut pieces = events(&[chunk(
        json!({"role": "assistant", "content": "Hi"}),
        Value::Null,
    )]);
    pieces.push(
        "data: {\"error\":{\"message\":\"Overloaded, try later\",\"type\":\"server_error\"}}\n\n"
            .into(),
    );
    let (base, _) = serve(move |_, _| {
        let pieces = pieces.clone();
        async move { sse_response(pieces, Duration::ZERO) }
    })
    .await;
    let err = provider(&base)
        .chat(hello().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(err.message().contains("Overloaded, try later"), "{err}");
}

#[tokio::test]
async fn stream_split_across_tcp_writes_at_every_byte_is_reassembled() {
    let whole: String = text_stream_events().concat().replace("\n", "\r\n");
    let bytes: Vec<String> = whole.chars().map(String::from).collect();
    let (base, _) = serve(move |_, _| {
        let bytes = bytes.clone();
        async move { sse_response(bytes, Duration::from_micros(50)) }
    })
    .await;
    let c = provider(&base)
        .chat(hello().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "Hello");
    assert_eq!(c.usage.unwrap().total_tokens(), 11);
}

#[tokio::test]
async fn provider_debug_never_shows_the_api_key_or_header_values() {
    let p = OpenAiCompatible::builder("openai", "https://api.openai.com/v1")
        .api_key(Secret::new(KEY))
        .header("api-key", "azure-SECRET-value")
        .region("eu")
        .build()
        .unwrap();
    let debug = format!("{p:?}");
    assert!(!debug.contains(KEY) && !debug.contains("SECRET"), "{debug}");
    assert!(
        debug.contains("openai") && debug.contains("api-key") && debug.contains("eu"),
        "{debug}"
    );
    assert_eq!(p.region(), Some("eu"));
}

#[tokio::test]
async fn tower_timeout_in_the_transport_maps_to_timeout() {
    let (base, _) = serve(|_, _| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        json_response(200, &completion_fixture())
    })
    .await;
    let stack = ServiceBuilder::new()
        .timeout(Duration::from_millis(100))
        .concurrency_limit(4)
        .service(reqwest::Client::new());
    let p = OpenAiCompatible::builder("mock", format!("{base}/v1"))
        .transport(transport::from_service(stack))
        .build()
        .unwrap();
    let err = p.chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn builder_timeout_bounds_complete_calls_and_stream_silences() {
    let (base, _) = serve(|_, body| async move {
        if body["stream"] == true {
            let mut pieces = events(&[chunk(
                json!({"role": "assistant", "content": "Hi"}),
                Value::Null,
            )]);
            pieces.push(String::new()); // stalls: every piece waits `pause`
            pieces.push("data: [DONE]\n\n".into());
            sse_response(pieces, Duration::from_millis(700))
        } else {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json_response(200, &completion_fixture())
        }
    })
    .await;
    let p = OpenAiCompatible::builder("mock", format!("{base}/v1"))
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let err = p.chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");

    // Headers come at once; the first chunk after 700 ms of silence: past the 400 ms bound.
    let ChatBody::Stream(mut stream) = p.chat(hello().with_stream(true)).await.unwrap().body else {
        panic!("expected a stream")
    };
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn connection_refused_is_a_retryable_provider_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = provider(&format!("http://{addr}"))
        .chat(hello())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider, "{err}");
    assert!(err.is_retryable());
    assert!(err.message().contains("could not be reached"), "{err}");
}

#[test]
fn bad_base_urls_and_headers_are_config_errors() {
    for url in ["", "not a url", "ftp://example.com/v1", "mailto:a@b.c"] {
        let err = OpenAiCompatible::builder("p", url).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err}");
    }
    let err = OpenAiCompatible::builder("p", "http://x/v1")
        .header("bad header", "v")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = OpenAiCompatible::builder("p", "http://x/v1")
        .api_key(Secret::new("secret://env/OPENAI_API_KEY"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message().contains("unresolved secret reference"),
        "{err}"
    );
}

#[tokio::test]
async fn base_url_with_trailing_slash_and_query_keeps_the_query() {
    let (base, seen) = serve(|_, _| async { json_response(200, &completion_fixture()) }).await;
    let p = OpenAiCompatible::builder("azure", format!("{base}/openai/v1/?api-version=preview"))
        .build()
        .unwrap();
    p.chat(hello()).await.unwrap();
    let (uri, _, _) = seen.last();
    assert_eq!(uri.path(), "/openai/v1/chat/completions");
    assert_eq!(uri.query(), Some("api-version=preview"));
}

#[tokio::test]
async fn from_config_builds_a_working_provider_and_rejects_unknown_fields() {
    let (base, seen) = serve(|_, _| async { json_response(200, &completion_fixture()) }).await;
    let cfg: OpenAiConfig = serde_json::from_value(json!({
        "base_url": format!("{base}/v1"), "api_key": KEY, "region": "eu-west-1",
        "models": ["gpt-4o-mini"], "timeout_ms": 5000, "headers": { "x-team": "search" }
    }))
    .unwrap();
    let p = OpenAiCompatible::from_config("cfg", cfg, Some(reqwest::Client::new())).unwrap();
    assert_eq!(
        (p.name(), p.region(), p.models()),
        ("cfg", Some("eu-west-1"), vec!["gpt-4o-mini".to_owned()])
    );
    p.chat(hello()).await.unwrap();
    let (_, headers, _) = seen.last();
    assert_eq!(headers["x-team"], "search");
    assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());

    let err =
        serde_json::from_value::<OpenAiConfig>(json!({ "base_url": "http://x", "timeout": 5 }))
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `timeout`"), "{err}");
    let schema = serde_json::to_value(schemars::schema_for!(OpenAiConfig)).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    // `base_url` may come from a preset, so nothing is required by the schema itself;
    // a config with neither is refused when building.
    assert!(schema["properties"]["preset"].is_object());
    let err = OpenAiCompatible::from_config("none", OpenAiConfig::preset(None), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("base_url is required"), "{err}");
}

#[test]
fn public_futures_are_send_and_static_when_the_provider_is_shared() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let p: Arc<dyn Provider> = Arc::new(
        OpenAiCompatible::builder("p", "http://127.0.0.1:9/v1")
            .build()
            .unwrap(),
    );
    let chat = {
        let p = Arc::clone(&p);
        async move { p.chat(hello()).await }
    };
    assert_send(&chat);
    let embed = async move { p.embed(EmbeddingRequest::new("m", vec![])).await };
    assert_send(&embed);
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<OpenAiCompatible>();
}

#[tokio::test]
async fn stream_request_answered_with_plain_json_becomes_a_one_chunk_stream() {
    let (base, _) = serve(|_, _| async { json_response(200, &completion_fixture()) }).await;
    let c = provider(&base)
        .chat(hello().with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "Hello! How can I help?");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(c.usage.unwrap().cache_read_tokens, 8);
}

#[tokio::test]
async fn reqwest_client_timeout_maps_to_timeout() {
    let (base, _) = serve(|_, _| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        json_response(200, &completion_fixture())
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let p = OpenAiCompatible::builder("mock", format!("{base}/v1"))
        .client(client)
        .build()
        .unwrap();
    let err = p.chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

#[tokio::test]
async fn status_429_for_an_exhausted_quota_is_not_retryable() {
    let (base, _) = serve(|_, _| async {
        json_response(
            429,
            &json!({ "error": { "message": "You exceeded your current quota",
            "type": "insufficient_quota", "code": "insufficient_quota" } }),
        )
    })
    .await;
    let err = provider(&base).chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(!err.is_retryable());
    assert!(
        err.message().contains("exceeded your current quota"),
        "{err}"
    );
}

#[tokio::test]
async fn status_401_without_a_configured_key_says_so() {
    let (base, _) = serve(|_, _| async {
        json_response(
            401,
            &json!({ "error": { "message": "Missing bearer token" } }),
        )
    })
    .await;
    let p = OpenAiCompatible::builder("mock", format!("{base}/v1"))
        .build()
        .unwrap();
    let err = p.chat(hello()).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.message().contains("no API key is configured"), "{err}");
}

#[tokio::test]
async fn absurd_retry_after_values_are_ignored_not_a_panic() {
    let (base, _) =
        serve(|_, _| async { raw_response(429, &[("retry-after", "1e300")], "") }).await;
    let err = provider(&base).chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), None);
}
