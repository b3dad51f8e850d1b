//! Translation cost per provider: one complete `chat` call over an in-memory transport
//! (request translation + serialization + SigV4 for Bedrock + response parsing), one
//! streamed call (SSE / event-stream decoding of a 20-chunk answer), and the pure request
//! translation where a provider exposes it. No network: the transport answers from memory.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{hint::black_box, sync::Arc};

use aegis_contracts::{BoxError, ChatRequest, Provider, Secret};
use aegis_providers::{
    Anthropic, AzureOpenAi, Bedrock, Gemini, OpenAiCompatible, Transport,
    bedrock::{AwsCredentials, eventstream::encode_message},
    transport,
};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn canned(content_type: &'static str, body: Bytes) -> Transport {
    transport::from_service(tower::service_fn(move |_req: reqwest::Request| {
        let body = body.clone();
        async move {
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", content_type)
                .body(body)
                .unwrap();
            Ok::<_, BoxError>(reqwest::Response::from(resp))
        }
    }))
}

/// A realistic request: system prompt, ~1 KB of conversation, a tool call and its result, a
/// tool declaration.
fn request() -> ChatRequest {
    serde_json::from_value(json!({
        "model": "m",
        "messages": [
            { "role": "system", "content": "You are a helpful assistant. Answer briefly." },
            { "role": "user", "content": "x".repeat(800) },
            { "role": "assistant", "content": "Let me check.", "tool_calls": [{ "id": "call_1", "type": "function",
                "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }] },
            { "role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 18}" },
            { "role": "user", "content": "Thanks, and tomorrow?" }
        ],
        "tools": [{ "type": "function", "function": { "name": "get_weather", "description": "Weather",
            "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } }],
        "temperature": 0.2, "max_tokens": 256
    }))
    .unwrap()
}

fn words() -> Vec<String> {
    (0..20).map(|i| format!("word{i} ")).collect()
}

fn openai_bodies() -> (Bytes, Bytes) {
    let complete = json!({ "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": "Tomorrow: 20°C and sunny." } }],
        "usage": { "prompt_tokens": 300, "completion_tokens": 8, "total_tokens": 308 } });
    let mut sse = String::new();
    for w in words() {
        sse.push_str(&format!("data: {}\n\n", json!({ "id": "c", "model": "m", "choices": [{ "index": 0, "delta": { "content": w } }] })));
    }
    sse.push_str("data: [DONE]\n\n");
    (Bytes::from(complete.to_string()), Bytes::from(sse))
}

fn anthropic_bodies() -> (Bytes, Bytes) {
    let complete = json!({ "id": "msg", "type": "message", "role": "assistant", "model": "m",
        "content": [{ "type": "text", "text": "Tomorrow: 20°C and sunny." }], "stop_reason": "end_turn",
        "usage": { "input_tokens": 300, "output_tokens": 8 } });
    let mut sse = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg\",\"model\":\"m\",\"usage\":{\"input_tokens\":300,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    for w in words() {
        sse.push_str(&format!("event: content_block_delta\ndata: {}\n\n",
            json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": w } })));
    }
    sse.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":20}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    (Bytes::from(complete.to_string()), Bytes::from(sse))
}

fn gemini_bodies() -> (Bytes, Bytes) {
    let complete = json!({ "candidates": [{ "content": { "role": "model", "parts": [{ "text": "Tomorrow: 20°C and sunny." }] },
        "finishReason": "STOP", "index": 0 }], "usageMetadata": { "promptTokenCount": 300, "candidatesTokenCount": 8 },
        "modelVersion": "m", "responseId": "r" });
    let mut sse = String::new();
    let ws = words();
    for (i, w) in ws.iter().enumerate() {
        let mut cand =
            json!({ "content": { "role": "model", "parts": [{ "text": w }] }, "index": 0 });
        if i + 1 == ws.len() {
            cand["finishReason"] = "STOP".into();
        }
        sse.push_str(&format!(
            "data: {}\n\n",
            json!({ "candidates": [cand], "modelVersion": "m", "responseId": "r" })
        ));
    }
    (Bytes::from(complete.to_string()), Bytes::from(sse))
}

fn bedrock_bodies() -> (Bytes, Bytes) {
    let complete = json!({ "output": { "message": { "role": "assistant", "content": [{ "text": "Tomorrow: 20°C and sunny." }] } },
        "stopReason": "end_turn", "usage": { "inputTokens": 300, "outputTokens": 8, "totalTokens": 308 } });
    let ev = |t: &str, p: serde_json::Value| {
        encode_message(
            &[(":event-type", t), (":message-type", "event")],
            p.to_string().as_bytes(),
        )
    };
    let mut es = ev("messageStart", json!({ "role": "assistant" }));
    for w in words() {
        es.extend(ev(
            "contentBlockDelta",
            json!({ "contentBlockIndex": 0, "delta": { "text": w } }),
        ));
    }
    es.extend(ev("contentBlockStop", json!({ "contentBlockIndex": 0 })));
    es.extend(ev("messageStop", json!({ "stopReason": "end_turn" })));
    es.extend(ev(
        "metadata",
        json!({ "usage": { "inputTokens": 300, "outputTokens": 20 } }),
    ));
    (Bytes::from(complete.to_string()), Bytes::from(es))
}

/// A provider answering complete calls, and the same provider answering streams.
type Pair = (&'static str, Arc<dyn Provider>, Arc<dyn Provider>);

fn providers() -> Vec<Pair> {
    let (oc, os) = openai_bodies();
    let (ac, asse) = anthropic_bodies();
    let (gc, gs) = gemini_bodies();
    let (bc, bs) = bedrock_bodies();
    let key = || Secret::new("sk-bench-0123456789");
    let openai = |t| -> Arc<dyn Provider> {
        Arc::new(
            OpenAiCompatible::builder("openai", "http://x/v1")
                .api_key(key())
                .transport(t)
                .build()
                .unwrap(),
        )
    };
    let anthropic = |t| -> Arc<dyn Provider> {
        Arc::new(
            Anthropic::builder("anthropic")
                .api_key(key())
                .transport(t)
                .build()
                .unwrap(),
        )
    };
    let gemini = |t| -> Arc<dyn Provider> {
        Arc::new(
            Gemini::builder("gemini")
                .api_key(key())
                .transport(t)
                .build()
                .unwrap(),
        )
    };
    let bedrock = |t| -> Arc<dyn Provider> {
        Arc::new(
            Bedrock::builder("bedrock", "us-east-1")
                .credentials(AwsCredentials::new("AKIDEXAMPLE", key()))
                .transport(t)
                .build()
                .unwrap(),
        )
    };
    let azure = |t| -> Arc<dyn Provider> {
        Arc::new(
            AzureOpenAi::builder("azure", "https://r.openai.azure.com")
                .api_key(key())
                .transport(t)
                .build()
                .unwrap(),
        )
    };
    vec![
        (
            "openai",
            openai(canned("application/json", oc.clone())),
            openai(canned("text/event-stream", os.clone())),
        ),
        (
            "azure",
            azure(canned("application/json", oc)),
            azure(canned("text/event-stream", os)),
        ),
        (
            "anthropic",
            anthropic(canned("application/json", ac)),
            anthropic(canned("text/event-stream", asse)),
        ),
        (
            "gemini",
            gemini(canned("application/json", gc)),
            gemini(canned("text/event-stream", gs)),
        ),
        (
            "bedrock",
            bedrock(canned("application/json", bc)),
            bedrock(canned("application/vnd.amazon.eventstream", bs)),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = request();
    let streamed = request().with_stream(true);
    let mut g = c.benchmark_group("translate_complete_call");
    for (name, complete, _) in providers() {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(complete.chat(req.clone()).await.unwrap()) })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("translate_stream_20_chunks");
    for (name, _, stream) in providers() {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    stream
                        .chat(streamed.clone())
                        .await
                        .unwrap()
                        .collect()
                        .await
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("translate_request_body_only");
    let anthropic = Anthropic::builder("a").build().unwrap();
    let gemini = Gemini::builder("g").build().unwrap();
    let bedrock = Bedrock::builder("b", "us-east-1").build().unwrap();
    g.bench_function("anthropic", |b| {
        b.iter(|| black_box(anthropic.request_body(&req).unwrap()))
    });
    g.bench_function("gemini", |b| {
        b.iter(|| black_box(gemini.request_body(&req).unwrap()))
    });
    g.bench_function("bedrock", |b| {
        b.iter(|| black_box(bedrock.request_body(&req).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
