//! Streaming that streams, with the real scanners: the PII and secrets guards hold back
//! only what a candidate still in progress needs (their automata say where), so a clean
//! answer reaches the client chunk for chunk — and a streamed answer is still judged
//! exactly like the whole one, for any chunking, through the real stream host.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, LazyLock};

use aegis::guard::{ChainDecision, GuardChain, GuardEntry};
use aegis::guards::{Action, Secrets, SecretsConfig};
use aegis::pii::{Operator, PiiGuard, PiiGuardConfig};
use aegis::{ChatChunk, ChatStream, Error, GuardPolicy, GuardSubject, Message, RequestContext};
use futures_util::StreamExt;
use proptest::prelude::*;

fn pii(config: PiiGuardConfig) -> GuardEntry {
    GuardEntry::new(
        "pii",
        Arc::new(PiiGuard::new(config).unwrap()),
        GuardPolicy::default(),
    )
}

fn secrets() -> GuardEntry {
    let config = SecretsConfig {
        action: Action::Redact,
        ..SecretsConfig::default()
    };
    GuardEntry::new(
        "secrets",
        Arc::new(Secrets::new(config).unwrap()),
        GuardPolicy::default(),
    )
}

/// The default gateway's output detectors; built once (compiling them takes the time).
static DEFAULTS: LazyLock<GuardChain> =
    LazyLock::new(|| GuardChain::new(vec![pii(PiiGuardConfig::default()), secrets()]));

fn upstream(parts: Vec<String>) -> ChatStream {
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

fn content(chunk: &ChatChunk) -> Option<&str> {
    chunk.choices.first()?.delta.content.as_deref()
}

/// The streamed answer: its content chunks, or the error it ended with.
async fn streamed(chain: &GuardChain, parts: Vec<String>, ctx: RequestContext) -> Vec<String> {
    let mut s = chain.guard_stream(upstream(parts), ctx);
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        let chunk = item.unwrap();
        if let Some(t) = content(&chunk) {
            out.push(t.to_owned());
        }
    }
    out
}

async fn whole(chain: &GuardChain, text: &str, ctx: &RequestContext) -> String {
    let out = chain
        .check(
            GuardSubject::Output {
                message: Message::assistant(text),
            },
            ctx,
            &[],
        )
        .await;
    assert!(
        matches!(out.decision, ChainDecision::Allowed),
        "{:?}",
        out.decision
    );
    out.subject.segments()[0].text.to_owned()
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const PIECES: &[&str] = &[
    "hello ",
    "the answer is ",
    "call ",
    ". ",
    "\n",
    " ",
    "é",
    "2024 ",
    "version 1.2.3 ",
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "4111111111111111",
    "+1 415 555 0100",
    "(415) 555-0100",
    "DE89 3704 0044 0532 0130 00",
    "https://example.com/x?y=1",
    "192.168.10.20",
    "AKIAZQ3DRSTUVWXY2345",
    "ghp_Zq8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE0uW",
    "password = \"hunter2hunter2\"",
    "q8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----",
    "postgres://admin:s3cr3tpassw0rd@db.internal:5432/app",
    "\u{200b}",
    "e",
    "\u{301}",
    "\u{301} ok",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_streamed_answer_is_judged_exactly_like_the_whole_one_for_any_chunking(
        pieces in proptest::collection::vec(0..PIECES.len(), 0..24),
        cuts in proptest::collection::vec(0usize..2000, 0..40),
    ) {
        let text: String = pieces.iter().map(|&i| PIECES[i]).collect();
        runtime().block_on(async {
            let ctx = RequestContext::default();
            let expected = whole(&DEFAULTS, &text, &ctx).await;
            let got = streamed(&DEFAULTS, split(&text, &cuts), ctx).await.concat();
            prop_assert_eq!(got, expected, "text {:?}", text);
            Ok(())
        })?;
    }
}

#[test]
fn a_combining_mark_after_a_held_candidate_changes_nothing_already_released() {
    // "1111e" ends no card; "1111e\u{301}" is "1111é", which does: the digits before the
    // last character must not be released as final.
    let text = "version 1.2.3 hello 192.168.10.20 2024 4111 1111 1111 1111e\u{301}\u{301} ok";
    let cut = text.find("e\u{301}").unwrap() + 1;
    runtime().block_on(async {
        let ctx = RequestContext::default();
        let expected = whole(&DEFAULTS, text, &ctx).await;
        let parts = vec![text[..cut].to_owned(), text[cut..].to_owned()];
        let got = streamed(&DEFAULTS, parts, ctx).await.concat();
        assert_eq!(got, expected);
    });
}

/// About 1 KB of prose with no entity, as 50 upstream chunks.
fn clean_answer() -> Vec<String> {
    let words = "the quick brown fox jumps over the lazy dog while a model explains how \
                 streaming works and why nobody likes to wait for the first token to arrive";
    let words: Vec<&str> = words.split(' ').collect();
    (0..50)
        .map(|i| {
            let w = |k: usize| words[(i * 3 + k) % words.len()];
            format!("{} {} {} {}. ", w(0), w(1), w(2), w(3))
        })
        .collect()
}

#[test]
fn a_clean_answer_streams_chunk_for_chunk_through_the_default_detectors() {
    runtime().block_on(async {
        let parts = clean_answer();
        let n = parts.len();
        let out = streamed(&DEFAULTS, parts.clone(), RequestContext::default()).await;
        assert_eq!(out.concat(), parts.concat());
        // Each upstream chunk releases at once (at most the word still arriving is held).
        assert!(out.len() >= n, "{} chunks came out of {n}", out.len());
    });
}

#[test]
fn the_first_chunk_is_released_before_the_second_arrives() {
    runtime().block_on(async {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let upstream: ChatStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            let part = rx.recv().await?;
            Some((Ok(ChatChunk::text("c", "m", part)), rx))
        }));
        let mut s = DEFAULTS.guard_stream(upstream, RequestContext::default());
        let sent = "Streaming answers should arrive now";
        tx.send(sent.into()).unwrap();
        let first = s.next().await.unwrap().unwrap();
        // Only the last words, which a candidate may still be growing over ("now" may become
        // "now.example.com"), are held.
        let first = content(&first).unwrap().to_owned();
        assert!(sent.starts_with(&first), "{first:?}");
        assert!(first.len() >= "Streaming answers should".len(), "{first:?}");
        // A card number in progress is held, not the text before it.
        tx.send("; my card is 4111 1111".into()).unwrap();
        let second = s.next().await.unwrap().unwrap();
        let second = content(&second).unwrap().to_owned();
        assert!(
            second.contains("; my card") && !second.contains("4111"),
            "{second:?}"
        );
        tx.send(" 1111 1111 thanks".into()).unwrap();
        drop(tx);
        let mut rest = String::new();
        while let Some(item) = s.next().await {
            if let Some(t) = content(&item.unwrap()) {
                rest.push_str(t);
            }
        }
        assert_eq!(
            format!("{first}{second}{rest}"),
            "Streaming answers should arrive now; my card is <CREDIT_CARD> thanks"
        );
    });
}

fn pseudonymizing() -> GuardChain {
    GuardChain::new(vec![
        pii(PiiGuardConfig {
            default_operator: Operator::Pseudonymize,
            ..PiiGuardConfig::default()
        }),
        secrets(),
    ])
}

fn run_ctx() -> RequestContext {
    let mut ctx = RequestContext::default();
    ctx.run_id = Some("run-1".into());
    ctx
}

/// Pseudonymizes a prompt into the run's vault; returns the prompt as the provider sees it.
async fn pseudonymize(chain: &GuardChain, ctx: &RequestContext) -> String {
    let out = chain
        .check(
            GuardSubject::Input {
                messages: vec![Message::user(
                    "write to jane.doe@example.com about 4111 1111 1111 1111",
                )],
            },
            ctx,
            &[],
        )
        .await;
    out.subject.segments()[0].text.to_owned()
}

#[test]
fn pseudonym_tokens_split_at_every_position_are_restored_by_the_stream_host() {
    runtime().block_on(async {
        let chain = pseudonymizing();
        let ctx = run_ctx();
        let prompt = pseudonymize(&chain, &ctx).await;
        assert_eq!(prompt, "write to <EMAIL_ADDRESS_1> about <CREDIT_CARD_1>");
        let answer = "Sent to <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>; <UNKNOWN_9> stays.";
        let restored = "Sent to jane.doe@example.com, card 4111 1111 1111 1111; <UNKNOWN_9> stays.";
        assert_eq!(whole(&chain, answer, &ctx).await, restored);
        for a in 0..answer.len() {
            for b in [a + 1, a + 3, a + 7] {
                let cuts = [a, b.min(answer.len())];
                let got = streamed(&chain, split(answer, &cuts), ctx.clone())
                    .await
                    .concat();
                assert_eq!(got, restored, "cut at {cuts:?}");
            }
        }
    });
}

#[test]
fn with_pseudonymization_on_pii_the_model_writes_itself_is_still_caught() {
    runtime().block_on(async {
        let chain = pseudonymizing();
        let ctx = run_ctx();
        pseudonymize(&chain, &ctx).await;
        let answer =
            "Done: <EMAIL_ADDRESS_1>. Also reach bob.smith@example.org, card 5555 5555 5555 4444.";
        let expected =
            "Done: jane.doe@example.com. Also reach <EMAIL_ADDRESS>, card <CREDIT_CARD>.";
        assert_eq!(whole(&chain, answer, &ctx).await, expected);
        let got = streamed(&chain, split(answer, &[9, 30, 41, 60]), ctx.clone())
            .await
            .concat();
        assert_eq!(got, expected);
    });
}
