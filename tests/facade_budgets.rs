//! Budgets through the pipeline: a run reserves before the provider call and settles to the
//! real usage when it ends — streamed or not, cancelled included — and a request over budget
//! is refused with `budget_exceeded` before the provider is called.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use aegis::{
    BudgetLedger, ChatBody, ChatRequest, ErrorKind, Message, Principal, RequestContext,
    budgets::MemoryLedger,
};
use futures_util::StreamExt;

async fn pipeline(ledger: Arc<MemoryLedger>, team_tokens: u64) -> aegis::Pipeline {
    let mut registry = aegis::registry();
    registry.insert_extension(ledger as Arc<dyn BudgetLedger>);
    let config = aegis::config::AegisConfig::from_toml_str(
        &format!(
            r#"
            [[providers]]
            id = "echo"
            type = "echo"

            [[policies]]
            id = "budgets"
            type = "budgets"
            [policies.config]
            teams = {{ research = {{ tokens = {team_tokens}, period = "total" }} }}
            prices = {{ "echo" = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }} }}
            max_output_tokens = 50
            "#
        ),
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    aegis::Pipeline::from_config(&registry, &config)
        .await
        .unwrap()
}

fn ask(stream: bool) -> ChatRequest {
    let mut req = ChatRequest::new("echo", vec![Message::user("hello budget")]);
    req.stream = stream;
    req.ctx = RequestContext::default().with_principal(Principal::new("ada").with_team("research"));
    req
}

async fn balance(ledger: &MemoryLedger) -> aegis::Balance {
    ledger
        .balance("team:research", "total")
        .await
        .unwrap()
        .unwrap()
}

/// The balance once a dropped run's background end has released its hold (or after five
/// seconds, when the assertions that follow say why it did not).
async fn after_the_end(ledger: &MemoryLedger) -> aegis::Balance {
    for _ in 0..1000 {
        let b = balance(ledger).await;
        if b.reserved.tokens == 0 {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    balance(ledger).await
}

#[tokio::test]
async fn a_completed_run_settles_to_its_reported_usage() {
    let ledger = Arc::new(MemoryLedger::new());
    let p = pipeline(ledger.clone(), 10_000).await;
    let answer = p.chat(ask(false)).await.unwrap().collect().await.unwrap();
    let usage = answer.usage.unwrap();
    let b = balance(&ledger).await;
    assert_eq!(b.reserved.tokens, 0, "nothing is left held");
    assert_eq!(b.spent.tokens, usage.input_tokens + usage.output_tokens);
    assert!(b.spent.usd_micros > 0, "priced, never free");
}

#[tokio::test]
async fn a_stream_holds_its_reservation_until_it_ends_and_a_cancelled_one_settles_too() {
    let ledger = Arc::new(MemoryLedger::new());
    let p = pipeline(ledger.clone(), 10_000).await;
    let resp = p.chat(ask(true)).await.unwrap();
    assert!(
        balance(&ledger).await.reserved.tokens > 0,
        "held while streaming"
    );
    let ChatBody::Stream(mut s) = resp.body else {
        panic!("a stream was asked for")
    };
    s.next().await.unwrap().unwrap();
    drop(s);
    let b = after_the_end(&ledger).await;
    assert_eq!(
        b.reserved.tokens, 0,
        "a cancelled stream leaks no reservation"
    );
    assert!(
        b.spent.tokens >= 50,
        "sent without usage back: the worst case is spent, never a free call ({b:?})"
    );
}

/// Never answers.
struct Hangs;

#[aegis::async_trait]
impl aegis::Provider for Hangs {
    fn name(&self) -> &str {
        "hangs"
    }
    fn capabilities(&self) -> aegis::ProviderCapabilities {
        aegis::ProviderCapabilities::all()
    }
    async fn chat(&self, _: ChatRequest) -> Result<aegis::ChatResponse, aegis::Error> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_request_dropped_during_the_provider_call_is_charged_its_worst_case() {
    let ledger = Arc::new(MemoryLedger::new());
    let mut registry = aegis::registry();
    registry.insert_extension(ledger.clone() as Arc<dyn BudgetLedger>);
    registry.register_provider::<serde_json::Value, _>("hangs", |_, _| {
        Ok(Arc::new(Hangs) as Arc<dyn aegis::Provider>)
    });
    let config = aegis::config::AegisConfig::from_toml_str(
        r#"
        [[providers]]
        id = "echo"
        type = "hangs"

        [[policies]]
        id = "team-budget"
        type = "budgets"
        [policies.config]
        teams = { research = { tokens = 10000, period = "total" } }
        prices = { "echo" = { input_per_mtok = 1.0, output_per_mtok = 2.0 } }
        max_output_tokens = 50
        "#,
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let p = aegis::Pipeline::from_config(&registry, &config)
        .await
        .unwrap();
    let dropped = tokio::time::timeout(Duration::from_millis(50), p.chat(ask(false))).await;
    assert!(dropped.is_err());
    let b = after_the_end(&ledger).await;
    assert_eq!(
        b.reserved.tokens, 0,
        "settled at once, not left to the reaper"
    );
    assert!(
        b.spent.tokens >= 50,
        "the call was made: its worst case is spent ({b:?})"
    );
}

#[tokio::test]
async fn a_request_over_budget_is_refused_before_the_call() {
    let ledger = Arc::new(MemoryLedger::new());
    let p = pipeline(ledger.clone(), 20).await;
    let err = p.chat(ask(false)).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::BudgetExceeded, "budget_exceeded")
    );
    let b = balance(&ledger).await;
    assert_eq!((b.spent.tokens, b.reserved.tokens), (0, 0));
}

#[tokio::test]
async fn a_model_without_a_price_is_refused_never_free() {
    let ledger = Arc::new(MemoryLedger::new());
    let p = pipeline(ledger.clone(), 10_000).await;
    let mut req = ask(false);
    req.model = "echo/unpriced-model".into();
    let err = p.chat(req).await.unwrap_err();
    assert_eq!(err.code(), "price_unknown", "{err}");
}

#[tokio::test]
async fn a_router_reserves_at_its_dearest_deployment_and_settles_at_the_one_that_answered() {
    let ledger = Arc::new(MemoryLedger::new());
    let mut registry = aegis::registry();
    registry.insert_extension(ledger.clone() as Arc<dyn BudgetLedger>);
    let config = aegis::config::AegisConfig::from_toml_str(
        r#"
        [pricing]
        prices = { cheap = { input_per_mtok = 1.0, output_per_mtok = 1.0 }, dear = { input_per_mtok = 1000.0, output_per_mtok = 1000.0 } }

        [[providers]]
        id = "echo"
        type = "echo"

        [[providers]]
        id = "llm"
        type = "router"
        [providers.config]
        strategy = "ordered"
        [[providers.config.models]]
        name = "chat"
        deployments = [
            { id = "first", provider = "echo", model = "cheap" },
            { id = "second", provider = "echo", model = "dear" },
        ]

        [[policies]]
        id = "budgets"
        type = "budgets"
        [policies.config]
        teams = { research = { usd = 100.0, period = "total" } }
        max_output_tokens = 10
        "#,
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let p = aegis::Pipeline::from_config(&registry, &config)
        .await
        .unwrap();
    let mut req = ask(true);
    req.model = "llm/chat".into();
    let resp = p.chat(req).await.unwrap();
    // While the stream is open, the hold is the worst case at the dear deployment's price.
    let held = balance(&ledger).await.reserved.usd_micros;
    let ChatBody::Stream(mut s) = resp.body else {
        panic!("streamed")
    };
    while s.next().await.is_some() {}
    let end = after_the_end(&ledger).await;
    // "hello budget" is at least 2 input tokens, plus 10 output tokens held, at $1000/M.
    assert!(
        held >= 12_000,
        "held {held} micro-dollars: not the dear price"
    );
    // It was answered by the cheap one: a few tokens at $1 per million.
    assert!(
        end.spent.usd_micros > 0 && end.spent.usd_micros < 100,
        "spent {} micro-dollars: not the cheap price",
        end.spent.usd_micros
    );
    assert_eq!(end.reserved.usd_micros, 0);
}
