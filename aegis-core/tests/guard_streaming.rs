//! Streamed output is judged exactly like the complete answer, with a bounded hold-back.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::*;
use aegis_core::guard::{ChainDecision, GuardChain, GuardLayer, Holdback};
use common::*;
use futures_util::StreamExt;
use proptest::prelude::*;

fn chunks_stream(parts: Vec<String>) -> ChatStream {
    let mut items: Vec<Result<ChatChunk, Error>> = parts
        .into_iter()
        .map(|p| Ok(ChatChunk::text("c", "m", p)))
        .collect();
    let mut last = ChatChunk::text("c", "m", "");
    last.choices[0].delta.content = None;
    last.choices[0].finish_reason = Some("stop".into());
    items.push(Ok(last));
    Box::pin(futures_util::stream::iter(items))
}

/// The streamed result: the text released before the end or an error, and whether it ended in error.
async fn run_stream(chain: &GuardChain, parts: Vec<String>) -> (String, Option<Error>) {
    let mut s = chain.guard_stream(chunks_stream(parts), RequestContext::default());
    let mut text = String::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(c) => text.push_str(
                c.choices
                    .first()
                    .and_then(|c| c.delta.content.as_deref())
                    .unwrap_or(""),
            ),
            Err(e) => return (text, Some(e)),
        }
    }
    (text, None)
}

/// The non-streamed result over the whole text.
async fn run_whole(chain: &GuardChain, text: &str) -> (String, bool) {
    let out = chain
        .check(
            GuardSubject::Output {
                message: Message::assistant(text),
            },
            &RequestContext::default(),
            &[],
        )
        .await;
    let blocked = !matches!(out.decision, ChainDecision::Allowed);
    (out.subject.segments()[0].text.to_owned(), blocked)
}

fn split(text: &str, cuts: &[usize]) -> Vec<String> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| c % (text.len() + 1))
        .filter(|c| text.is_char_boundary(*c))
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut prev = 0;
    for p in points {
        out.push(text[prev..p].to_owned());
        prev = p;
    }
    out.push(text[prev..].to_owned());
    out
}

fn chain() -> GuardChain {
    GuardChain::new(vec![
        entry("zw", StripZw),
        entry("redact", Redact::new("password", "********")),
        entry("ban", Ban::new("forbidden")),
        entry("sentence", SentenceBan("launch codes".into())),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn streaming_verdict_equals_the_complete_verdict_for_every_split(
        words in proptest::collection::vec(
            prop_oneof![
                Just("password"), Just("forbidden"), Just("launch codes"), Just("pass"), Just("word"),
                Just("for"), Just("bidden"), Just("\u{200b}"), Just("é"), Just(". "), Just("\n"), Just("ok "),
            ],
            0..30,
        ),
        cuts in proptest::collection::vec(0usize..400, 0..12),
    ) {
        let text: String = words.concat();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let chain = chain();
            let (whole_text, whole_blocked) = run_whole(&chain, &text).await;
            let (streamed, err) = run_stream(&chain, split(&text, &cuts)).await;
            prop_assert_eq!(err.is_some(), whole_blocked, "text {:?}", text);
            if let Some(e) = err {
                prop_assert_eq!(e.kind(), ErrorKind::PolicyBlocked);
                // Nothing released before the block contains the banned material.
                prop_assert!(!streamed.contains("forbidden"));
            } else {
                prop_assert_eq!(streamed, whole_text);
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_block_mid_stream_ends_with_an_error_never_a_clean_finish() {
    let chain = GuardChain::new(vec![entry("ban", Ban::new("forbidden"))]);
    let parts = vec![
        "this is fine. ".into(),
        "and this is for".into(),
        "bidden text".into(),
        " more".into(),
    ];
    let mut s = chain.guard_stream(chunks_stream(parts), RequestContext::default());
    let mut saw_finish = false;
    let mut last_err = None;
    while let Some(item) = s.next().await {
        match item {
            Ok(c) => saw_finish |= c.choices.iter().any(|c| c.finish_reason.is_some()),
            Err(e) => last_err = Some(e),
        }
    }
    assert!(
        !saw_finish,
        "a blocked stream must not carry a finish_reason"
    );
    let e = last_err.expect("the stream must end with an error");
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::PolicyBlocked, "banned_word")
    );
}

#[tokio::test]
async fn window_guards_hold_back_only_their_window() {
    let chain = GuardChain::new(vec![entry("ban", Ban::new("forbidden"))]);
    assert_eq!(chain.stream_holdback(false).unwrap(), Holdback::Bytes(9));
    let parts: Vec<String> = (0..20).map(|i| format!("chunk number {i:02} ")).collect();
    let mut s = chain.guard_stream(chunks_stream(parts), RequestContext::default());
    // The first chunk (16 bytes) already releases 16 - 9 = 7 bytes.
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first.choices[0].delta.content.as_deref(), Some("chunk n"));
    assert_eq!(first.choices[0].delta.role, Some(Role::Assistant));
}

#[tokio::test]
async fn full_text_guards_buffer_or_refuse_to_compile() {
    let chain = GuardChain::new(vec![entry("json", JsonOnly), entry("ban", Ban::new("x"))]);
    assert_eq!(chain.stream_holdback(true).unwrap(), Holdback::Full);
    let err = chain.stream_holdback(false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message().contains("`json` needs the full text"),
        "{}",
        err.message()
    );
    assert!(GuardLayer::without_stream_buffering(chain.clone()).is_err());

    let (text, err) = run_stream(&chain, vec!["{\"a\":".into(), " 1}".into()]).await;
    assert!(err.is_none());
    assert_eq!(text, "{\"a\": 1}");
    let (_, err) = run_stream(&chain, vec!["{\"a\":".into(), " oops".into()]).await;
    assert_eq!(err.unwrap().code(), "invalid_json");
}

#[tokio::test]
async fn streamed_tool_calls_are_held_and_judged_whole() {
    let chain = GuardChain::new(vec![entry("ban", Ban::new("rm -rf"))]);
    let mut provider = Scripted::new(&["running"]);
    provider.tool_call = Some(ToolCall::new("c1", "shell", r#"{"cmd":"rm -rf /"}"#));
    let resp = provider.chat(user("go").with_stream(true)).await.unwrap();
    let ChatBody::Stream(stream) = resp.body else {
        panic!("expected a stream")
    };
    let mut s = chain.guard_stream(stream, RequestContext::default());
    let mut err = None;
    while let Some(item) = s.next().await {
        if let Err(e) = item {
            err = Some(e);
        }
    }
    assert_eq!(
        err.unwrap().kind(),
        ErrorKind::PolicyBlocked,
        "split arguments must be judged reassembled"
    );

    let mut provider = Scripted::new(&["ok"]);
    provider.tool_call = Some(ToolCall::new("c1", "shell", r#"{"cmd":"ls"}"#));
    let resp = provider.chat(user("go").with_stream(true)).await.unwrap();
    let ChatBody::Stream(stream) = resp.body else {
        panic!("expected a stream")
    };
    let guarded = ChatResponse::stream(
        ResponseMeta::default(),
        chain.guard_stream(stream, RequestContext::default()),
    );
    let c = guarded.collect().await.unwrap();
    assert_eq!(
        c.choices[0].message.tool_calls[0].function.arguments,
        r#"{"cmd":"ls"}"#
    );
    assert_eq!(c.usage.unwrap().output_tokens, 5, "usage survives guarding");
}

#[tokio::test]
async fn an_upstream_error_mid_stream_is_passed_on() {
    let chain = GuardChain::new(vec![entry("ban", Ban::new("zzz"))]);
    let mut provider = Scripted::new(&["a", "b"]);
    provider.fail_mid_stream = true;
    let resp = provider.chat(user("go").with_stream(true)).await.unwrap();
    let ChatBody::Stream(stream) = resp.body else {
        panic!("expected a stream")
    };
    let guarded = ChatResponse::stream(
        ResponseMeta::default(),
        chain.guard_stream(stream, RequestContext::default()),
    );
    let err = guarded.collect().await.unwrap_err();
    assert!(err.message().contains("connection reset"));
}

#[tokio::test]
async fn chunk_metadata_survives_the_output_guards_and_unjudged_fields_do_not() {
    let mut first = ChatChunk::text("c", "m", "hello ");
    first
        .extra
        .insert("system_fingerprint".into(), "fp_42".into());
    first
        .extra
        .insert("x_vendor_note".into(), "unjudged model text".into());
    let second = ChatChunk::text("c", "m", "world");
    let stream: ChatStream = Box::pin(futures_util::stream::iter([Ok(first), Ok(second)]));
    let mut s = chain().guard_stream(stream, RequestContext::default());
    let mut seen = 0;
    while let Some(item) = s.next().await {
        let chunk = item.unwrap();
        assert_eq!(
            chunk.extra.get("system_fingerprint"),
            Some(&serde_json::Value::from("fp_42")),
            "{chunk:?}"
        );
        assert!(!chunk.extra.contains_key("x_vendor_note"), "{chunk:?}");
        seen += 1;
    }
    assert!(seen > 0);
}
