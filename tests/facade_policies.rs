//! `examples/policies.toml` runs: classification labels each request and residency acts on
//! the level — confidential prompts stay in the eu, restricted ones wait for a reviewer,
//! a research key is eu-bound — all on the offline echo provider.
#![allow(clippy::unwrap_used)]

use aegis::{
    Approval, CLASSIFICATION_LABEL, ChatRequest, Message, PipelineOutcome, Principal,
    REQUESTED_CLASSIFICATION_LABEL, RequestContext,
};

async fn pipeline() -> aegis::Pipeline {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies.toml"
    ))
    .unwrap()
    // The example authenticates with virtual keys; these tests bring their principals.
    .replace(
        "[[authenticators]]\nid = \"keys\"\ntype = \"virtual_keys\"\n",
        "",
    );
    aegis::pipeline_from_toml(&text).await.unwrap()
}

fn ask(text: &str, principal: Option<Principal>) -> ChatRequest {
    let mut req = ChatRequest::new("chat", vec![Message::user(text)]);
    if let Some(p) = principal {
        req.ctx = RequestContext::default().with_principal(p);
    }
    req
}

#[tokio::test]
async fn an_unclassified_prompt_goes_to_the_first_deployment() {
    let p = pipeline().await;
    let resp = p.chat(ask("hello there", None)).await.unwrap();
    assert_eq!(resp.meta.deployment.as_deref(), Some("chat-us"));
}

#[tokio::test]
async fn a_confidential_prompt_is_processed_only_in_the_eu() {
    let p = pipeline().await;
    let resp = p.chat(ask("what is the salary band?", None)).await.unwrap();
    assert_eq!(
        (resp.meta.deployment.as_deref(), resp.meta.region.as_deref()),
        (Some("chat-eu"), Some("eu"))
    );
}

#[tokio::test]
async fn a_research_key_is_eu_bound_whatever_it_asks() {
    let p = pipeline().await;
    let ada = Principal::new("ada").with_team("research");
    let resp = p.chat(ask("hello there", Some(ada))).await.unwrap();
    assert_eq!(resp.meta.region.as_deref(), Some("eu"));
}

#[tokio::test]
async fn the_caller_may_raise_the_level_and_so_the_rules() {
    let p = pipeline().await;
    let mut req = ask("hello there", None);
    req.ctx = RequestContext::default().with_label(REQUESTED_CLASSIFICATION_LABEL, "confidential");
    let resp = p.chat(req).await.unwrap();
    assert_eq!(resp.meta.region.as_deref(), Some("eu"));
}

#[tokio::test]
async fn a_restricted_prompt_waits_for_a_reviewer_then_stays_in_the_eu() {
    let p = pipeline().await;
    let outcome = p
        .run(ask("charge my card 4111 1111 1111 1111 please", None))
        .await
        .unwrap();
    let PipelineOutcome::Paused { run_id, interrupt } = outcome else {
        panic!("restricted: a reviewer decides")
    };
    assert_eq!(interrupt.node, "classification.after_auth");
    assert!(
        interrupt.request.reason.contains("restricted"),
        "{}",
        interrupt.request.reason
    );
    let PipelineOutcome::Response(resp) = p.resume(&run_id, Approval::Approve).await.unwrap()
    else {
        panic!("approved: answered")
    };
    assert_eq!(resp.meta.region.as_deref(), Some("eu"));
    let (state, _) = p.graph().snapshot(&run_id).await.unwrap().unwrap();
    assert_eq!(
        state.labels[CLASSIFICATION_LABEL], "restricted",
        "the level is checkpointed"
    );
    let text = resp
        .collect()
        .await
        .unwrap()
        .message()
        .unwrap()
        .text()
        .into_owned();
    assert!(
        !text.contains("4111 1111 1111 1111"),
        "the pii guard still masks: {text}"
    );
}

#[tokio::test]
async fn a_raised_level_above_every_rule_is_still_bound_by_the_rules_below_it() {
    let p = pipeline().await;
    let mut req = ask("hello there", None);
    req.ctx = RequestContext::default().with_label(REQUESTED_CLASSIFICATION_LABEL, "restricted");
    // `restricted` has no rule of its own; `confidential`'s binds it. (The run pauses for
    // a reviewer first: restricted needs approval.)
    let PipelineOutcome::Paused { run_id, .. } = p.run(req).await.unwrap() else {
        panic!("restricted: a reviewer decides")
    };
    let PipelineOutcome::Response(resp) = p.resume(&run_id, Approval::Approve).await.unwrap()
    else {
        panic!("approved")
    };
    assert_eq!(resp.meta.region.as_deref(), Some("eu"));
}

#[tokio::test]
async fn embeddings_cannot_wait_for_approval_so_a_restricted_text_is_refused() {
    let p = pipeline().await;
    let req = aegis::EmbeddingRequest::new("chat", vec!["card 4111 1111 1111 1111".into()]);
    let err = p.embed(req).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (aegis::ErrorKind::ApprovalRequired, "approval_required"),
        "{err}"
    );
}

#[tokio::test]
async fn a_request_whose_worst_case_exceeds_the_team_budget_is_refused_before_the_call() {
    let p = pipeline().await;
    let ada = Principal::new("ada").with_team("research");
    let ok = p.chat(ask("hello there", Some(ada.clone()))).await;
    assert!(ok.is_ok(), "{ok:?}");
    let mut big = ask("hello there", Some(ada));
    big.max_tokens = Some(30_000);
    let err = p.chat(big).await.unwrap_err();
    assert_eq!(err.kind(), aegis::ErrorKind::BudgetExceeded, "{err}");
    assert_eq!(err.code(), "budget_exceeded");
}
