//! Fuzzing the streamed-answer parsers (SSE framing and each provider's decoder) with
//! structured, property-based inputs: event-stream text built from fragments a provider
//! sends (and breaks), cut into random network chunks, served by a local HTTP server to the
//! real providers. Nothing may panic, hang or allocate without bound; every item is a chunk
//! or a typed error. Ignored in the test suite; `scripts/fuzz.sh` runs it for a time budget
//! (`AEGIS_FUZZ_SECS`, default 10).
#![cfg(all(feature = "anthropic", feature = "gemini"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aegis_contracts::{ChatRequest, Message, Provider, Secret};
use aegis_providers::{Anthropic, Gemini, OpenAiCompatible};
use common::*;
use futures_util::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// What the next request gets: the body, cut into network pieces.
type Slot = Arc<Mutex<Vec<Vec<u8>>>>;

fn fragment() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        Just("0".to_owned()),
        Just("4294967295".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("-1".to_owned()),
        Just("1e308".to_owned()),
        Just("99999999999999999999999".to_owned()),
        (0u32..5).prop_map(|n| n.to_string()),
    ];
    let text = prop_oneof![
        Just("hello".to_owned()),
        Just("\\u0000".to_owned()),
        Just("\\ud800".to_owned()),
        Just("é☕".to_owned()),
        "[a-z \\\\\"]{0,12}",
    ];
    prop_oneof![
        // OpenAI chunks.
        (text.clone(), number.clone()).prop_map(|(t, n)| format!(
            r#"data: {{"id":"c","object":"chat.completion.chunk","created":{n},"model":"m","choices":[{{"index":{n},"delta":{{"content":"{t}"}},"finish_reason":null}}]}}"#
        )),
        (text.clone(), number.clone()).prop_map(|(t, n)| format!(
            r#"data: {{"id":"c","choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":{n},"id":"t","function":{{"name":"{t}","arguments":"{t}"}}}}]}}}}]}}"#
        )),
        number.clone().prop_map(|n| format!(
            r#"data: {{"id":"c","choices":[],"usage":{{"prompt_tokens":{n},"completion_tokens":{n},"total_tokens":{n}}}}}"#
        )),
        Just("data: [DONE]".to_owned()),
        // Anthropic events.
        Just("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}".to_owned()),
        (number.clone(), text.clone()).prop_map(|(n, t)| format!(
            "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{n},\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"{t}\",\"input\":{{}}}}}}"
        )),
        (number.clone(), text.clone()).prop_map(|(n, t)| format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{n},\"delta\":{{\"type\":\"text_delta\",\"text\":\"{t}\"}}}}"
        )),
        (number.clone(), text.clone()).prop_map(|(n, t)| format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{n},\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{t}\"}}}}"
        )),
        number.clone().prop_map(|n| format!(
            "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{n}}}}}"
        )),
        Just("event: message_stop\ndata: {\"type\":\"message_stop\"}".to_owned()),
        Just("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}".to_owned()),
        // Gemini chunks.
        (text.clone(), number.clone()).prop_map(|(t, n)| format!(
            r#"data: {{"candidates":[{{"index":{n},"content":{{"role":"model","parts":[{{"text":"{t}"}},{{"functionCall":{{"name":"{t}","args":{{}}}}}}]}},"finishReason":"STOP"}}],"usageMetadata":{{"promptTokenCount":{n},"candidatesTokenCount":{n}}}}}"#
        )),
        // Framing noise.
        Just(": keep-alive".to_owned()),
        Just("data:".to_owned()),
        Just("data: {".to_owned()),
        Just("retry: 10".to_owned()),
        Just("id: 7".to_owned()),
        Just("event:".to_owned()),
        "[ -~]{0,20}",
    ]
}

fn body() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    let sep = prop_oneof![
        Just("\n\n"),
        Just("\r\n\r\n"),
        Just("\n"),
        Just("\r"),
        Just("")
    ];
    (
        proptest::collection::vec((fragment(), sep), 0..24),
        proptest::collection::vec(0usize..4096, 0..16),
        any::<bool>(),
    )
        .prop_map(|(frags, cuts, raw_byte)| {
            let mut text = String::new();
            for (f, s) in frags {
                text.push_str(&f);
                text.push_str(s);
            }
            let mut bytes = text.into_bytes();
            if raw_byte && !bytes.is_empty() {
                // A byte that is not UTF-8, somewhere.
                let at = cuts.first().copied().unwrap_or(0) % bytes.len();
                bytes[at] = 0xff;
            }
            (bytes, cuts)
        })
}

fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut prev = 0;
    for p in points {
        out.push(bytes[prev..p].to_vec());
        prev = p;
    }
    out.push(bytes[prev..].to_vec());
    out
}

fn budget() -> Duration {
    Duration::from_secs(
        std::env::var("AEGIS_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    )
}

#[test]
#[ignore = "fuzzing: run with scripts/fuzz.sh"]
fn fuzz_stream_parsers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let slot: Slot = Arc::default();
    let served = slot.clone();
    let base = rt.block_on(async move {
        let (base, _) = serve(move |_| {
            let body = served.lock().unwrap().clone();
            async move { pieces_response("text/event-stream", body, Duration::ZERO) }
        })
        .await;
        base
    });
    let providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(
            OpenAiCompatible::builder("openai", format!("{base}/v1"))
                .build()
                .unwrap(),
        ),
        Arc::new(
            Anthropic::builder("anthropic")
                .base_url(&base)
                .api_key(Secret::new("k"))
                .build()
                .unwrap(),
        ),
        Arc::new(
            Gemini::builder("gemini")
                .base_url(&base)
                .api_key(Secret::new("k"))
                .build()
                .unwrap(),
        ),
    ];
    let deadline = Instant::now() + budget();
    let mut cases = 0u64;
    while Instant::now() < deadline {
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&body(), |(bytes, cuts)| {
            *slot.lock().unwrap() = pieces(&bytes, &cuts);
            rt.block_on(async {
                for p in &providers {
                    let req = ChatRequest::new("m", vec![Message::user("hi")]).with_stream(true);
                    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
                        match p.chat(req).await {
                            Ok(resp) => {
                                let mut n = 0usize;
                                if let aegis_contracts::ChatBody::Stream(mut s) = resp.body {
                                    while let Some(item) = s.next().await {
                                        n += 1;
                                        if item.is_err() || n > 10_000 {
                                            break;
                                        }
                                    }
                                }
                            }
                            Err(e) => {
                                prop_assert!(!e.message().is_empty(), "an error says why");
                            }
                        }
                        Ok(())
                    })
                    .await;
                    prop_assert!(outcome.is_ok(), "{} hung", p.name());
                    outcome.unwrap()?;
                }
                Ok(())
            })
        });
        if let Err(e) = result {
            panic!("fuzz_stream_parsers found a failure after {cases} cases: {e}");
        }
        cases += 64;
    }
    eprintln!("fuzz_stream_parsers: {cases} cases, no failure");
}
