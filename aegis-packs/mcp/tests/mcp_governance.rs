#![allow(clippy::unwrap_used)]
//! The hub and the Aegis MCP server against a real MCP server (the fixture, over streamable
//! HTTP on loopback): routing, access, pinning, judging, bounds, session recovery.

#[allow(dead_code)]
mod support;

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use aegis_contracts::{ErrorKind, GuardPolicy, Principal, RequestContext, Stage};
use aegis_core::guard::{GuardChain, GuardEntry};
use aegis_guards::{Action, PromptInjection, PromptInjectionConfig, Secrets, SecretsConfig};
use aegis_mcp::{AegisMcpServer, Caller, McpHub, MemoryPins, ResolvedServer, parse_servers, rmcp};
use rmcp::{
    ServiceExt,
    model::CallToolRequestParams,
    transport::{
        StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::local::LocalSessionManager,
    },
};
use serde_json::{Value, json};
use support::fixture::{Fixture, FixtureState};
use tokio_util::sync::CancellationToken;

/// Serves `handler` at `http://127.0.0.1:{port}/mcp` (port 0: any) until `ct` is cancelled.
async fn serve<S: rmcp::ServerHandler + Clone>(
    handler: S,
    port: u16,
    ct: CancellationToken,
    layer: Option<RequestContext>,
) -> u16 {
    let service: StreamableHttpService<S, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let mut router = axum::Router::new().nest_service("/mcp", service);
    if let Some(caller) = layer {
        router = router.layer(axum::Extension(Caller(caller)));
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(ct.cancelled_owned())
            .await;
    });
    port
}

fn chain() -> GuardChain {
    let secrets = Secrets::new(SecretsConfig {
        action: Action::Redact,
        stages: vec![Stage::ToolResult],
        ..SecretsConfig::default()
    })
    .unwrap();
    let blocking = Secrets::new(SecretsConfig {
        stages: vec![Stage::ToolCall],
        ..SecretsConfig::default()
    })
    .unwrap();
    let injection = PromptInjection::new(PromptInjectionConfig::default()).unwrap();
    GuardChain::new(vec![
        GuardEntry::new("secrets", Arc::new(secrets), GuardPolicy::default()),
        GuardEntry::new("no-secrets-out", Arc::new(blocking), GuardPolicy::default()),
        GuardEntry::new("injection", Arc::new(injection), GuardPolicy::default()),
    ])
}

struct Setup {
    hub: McpHub,
    state: Arc<FixtureState>,
    port: u16,
    ct: CancellationToken,
}

async fn setup(extra: Value, rug_pulled: bool) -> Setup {
    let fixture = Fixture::default();
    fixture.state.rug_pull.store(rug_pulled, Ordering::SeqCst);
    let state = fixture.state.clone();
    let ct = CancellationToken::new();
    let port = serve(fixture, 0, ct.clone(), None).await;
    let mut entry = json!({"id": "fx", "http": {"url": format!("http://127.0.0.1:{port}/mcp")}, "timeout_ms": 2000});
    for (k, v) in extra.as_object().unwrap() {
        entry[k] = v.clone();
    }
    let servers = parse_servers(&[
        entry,
        json!({"id": "gone", "http": {"url": "http://127.0.0.1:9/mcp"}, "timeout_ms": 1000}),
    ])
    .unwrap();
    let hub = McpHub::new(
        servers.into_iter().map(ResolvedServer::plain).collect(),
        chain(),
        Arc::new(MemoryPins::new()),
    );
    Setup {
        hub,
        state,
        port,
        ct,
    }
}

fn caller(id: &str, team: Option<&str>) -> RequestContext {
    let mut p = Principal::new(id);
    p.team = team.map(str::to_owned);
    RequestContext::default().with_principal(p)
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| match c {
            rmcp::model::ContentBlock::Text(t) => Some(t.text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_is_down_leaves_only_its_own_tools_out() {
    let s = setup(json!({}), false).await;
    let listing = s.hub.list_tools(Some(&Principal::new("a"))).await;
    let names: Vec<&str> = listing.tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.contains(&"fx__echo") && names.contains(&"fx__test_simple_text"),
        "{names:?}"
    );
    assert_eq!(listing.problems.len(), 1, "{:?}", listing.problems);
    assert!(listing.problems[0].contains("`gone` is unavailable"));
    let err = s
        .hub
        .call_tool(&caller("a", None), "gone__x", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp_server_unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn access_rules_filter_the_list_and_are_enforced_on_every_call() {
    let s = setup(json!({"access": {"default": "deny", "teams": {"research": ["echo"]}, "principals": {"ops": ["*"]}}}), false).await;
    let ada = caller("ada", Some("research"));
    let listing = s.hub.list_tools(ada.principal.as_ref()).await;
    let names: Vec<&str> = listing.tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["fx__echo"]);
    assert!(
        s.hub.list_tools(None).await.tools.is_empty(),
        "an anonymous caller sees nothing"
    );
    // Knowing a hidden tool's name is not enough to call it.
    let err = s
        .hub
        .call_tool(&ada, "fx__counter", None)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Forbidden, "tool_not_allowed")
    );
    assert_eq!(
        s.state.counted.load(Ordering::SeqCst),
        0,
        "a refused call never executes"
    );
    let ops = caller("ops", Some("research"));
    let r = s.hub.call_tool(&ops, "fx__counter", None).await.unwrap();
    assert_eq!(text(&r), "executed 1 times");
    // A tool the server does not list is unknown, whatever the server would execute.
    let err = s.hub.call_tool(&ops, "fx__extra", None).await.unwrap_err();
    assert_eq!(err.code(), "unknown_tool");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_catalog_quarantines_the_server_until_an_admin_approves_it() {
    let s = setup(json!({}), false).await;
    let anyone = caller("a", None);
    assert_eq!(
        text(
            &s.hub
                .call_tool(
                    &anyone,
                    "fx__echo",
                    Some(json!({"text": "hi"}).as_object().unwrap().clone())
                )
                .await
                .unwrap()
        ),
        "hi"
    );
    s.state.rug_pull.store(true, Ordering::SeqCst);
    s.hub.refresh().await;
    let listing = s.hub.list_tools(Some(&Principal::new("a"))).await;
    assert!(
        listing.tools.is_empty(),
        "a quarantined server serves nothing"
    );
    assert!(
        listing
            .problems
            .iter()
            .any(|p| p.contains("`fx` is quarantined")
                && p.contains("+ extra")
                && p.contains("~ echo (description)")),
        "{:?}",
        listing.problems
    );
    let err = s
        .hub
        .call_tool(&anyone, "fx__echo", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp_server_quarantined");
    assert!(
        !err.message().contains("extra") && !err.message().contains("ssh"),
        "a caller is not shown the unapproved catalog: {}",
        err.message()
    );
    let status = s.hub.status().await;
    let fx = status.iter().find(|x| x.server == "fx").unwrap();
    assert_eq!(fx.state, "quarantined");
    let diff = fx.diff.as_ref().unwrap();
    assert_eq!(diff.added, ["extra"]);
    let seen = fx.pin.as_ref().unwrap().seen_hash.clone();
    let wrong = s
        .hub
        .approve("fx", "sha256:0000", "admin")
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Conflict);
    let pin = s.hub.approve("fx", &seen, "admin").await.unwrap();
    assert_eq!(pin.approved_by.as_deref(), Some("admin"));
    let r = s.hub.call_tool(&anyone, "fx__extra", None).await.unwrap();
    assert_eq!(text(&r), "extra ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_catalog_with_poisoned_descriptions_is_never_pinned_on_sight() {
    let s = setup(json!({}), true).await;
    let listing = s.hub.list_tools(Some(&Principal::new("a"))).await;
    assert!(listing.tools.is_empty());
    assert!(
        listing
            .problems
            .iter()
            .any(|p| p.contains("descriptions were refused") && p.contains("`echo`")),
        "{:?}",
        listing.problems
    );
    let status = s.hub.status().await;
    assert_eq!(status[0].pin.as_ref().unwrap().pinned_hash, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_and_results_pass_the_guard_chain() {
    let s = setup(json!({}), false).await;
    let anyone = caller("a", None);
    // The result's credential is redacted before anyone reads it.
    let r = s.hub.call_tool(&anyone, "fx__leak", None).await.unwrap();
    let t = text(&r);
    assert!(
        !t.contains("AKIAQWERTYUIOPASDFGH") && t.contains("[REDACTED:"),
        "{t}"
    );
    // A call carrying a credential is blocked, and never executes.
    let args = json!({"note": "AKIAQWERTYUIOPASDFGH"})
        .as_object()
        .unwrap()
        .clone();
    let err = s
        .hub
        .call_tool(&anyone, "fx__counter", Some(args))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyBlocked);
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 0);
    s.hub.call_tool(&anyone, "fx__counter", None).await.unwrap();
    assert_eq!(
        s.state.counted.load(Ordering::SeqCst),
        1,
        "executed exactly once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_bounds_results_are_typed_errors_within_the_timeout() {
    let s = setup(json!({"timeout_ms": 500}), false).await;
    let anyone = caller("a", None);
    let r = s.hub.call_tool(&anyone, "fx__weather", None).await.unwrap();
    assert_eq!(
        r.structured_content,
        Some(json!({"temperature": 21.5, "unit": "C"}))
    );
    let err = s
        .hub
        .call_tool(&anyone, "fx__bad_weather", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "tool_result_invalid", "{}", err.message());
    let err = s.hub.call_tool(&anyone, "fx__big", None).await.unwrap_err();
    assert_eq!(err.code(), "tool_result_too_large", "{}", err.message());
    let started = std::time::Instant::now();
    let err = s
        .hub
        .call_tool(&anyone, "fx__slow", None)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Timeout, "mcp_timeout")
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // An error result is passed on as the tool's own error, not as a failure of Aegis.
    let r = s
        .hub
        .call_tool(&anyone, "fx__test_error_handling", None)
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_session_that_expired_is_reinitialized_transparently() {
    let s = setup(json!({}), false).await;
    let anyone = caller("a", None);
    s.hub.call_tool(&anyone, "fx__counter", None).await.unwrap();
    // The upstream restarts: every session it knew is gone (its next answer is a 404).
    s.ct.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fixture = Fixture {
        state: s.state.clone(),
    };
    let ct = CancellationToken::new();
    serve(fixture, s.port, ct.clone(), None).await;
    let r = s.hub.call_tool(&anyone, "fx__counter", None).await.unwrap();
    assert_eq!(text(&r), "executed 2 times");
    ct.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn aegis_as_an_mcp_server_re_exports_governed_tools_and_answers_refusals_as_results() {
    let s = setup(
        json!({"access": {"default": "deny", "principals": {"ada": ["echo", "leak"]}}}),
        false,
    )
    .await;
    let server = AegisMcpServer::new(s.hub.clone(), None);
    let ct = CancellationToken::new();
    let port = serve(server, 0, ct.clone(), Some(caller("ada", None))).await;
    let transport = StreamableHttpClientTransport::from_uri(format!("http://127.0.0.1:{port}/mcp"));
    let client = ().serve(transport).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["fx__echo", "fx__leak"]);
    let r = client
        .call_tool(CallToolRequestParams::new("fx__leak"))
        .await
        .unwrap();
    assert!(text(&r).contains("[REDACTED:"));
    // Not allowed: a result the caller can read, not a protocol error that drops the session.
    let r = client
        .call_tool(CallToolRequestParams::new("fx__counter"))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).starts_with("tool_not_allowed:"), "{}", text(&r));
    // Unknown: a JSON-RPC error (invalid params), and the session goes on.
    let err = client
        .call_tool(CallToolRequestParams::new("nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no tool `nope`"), "{err}");
    assert_eq!(client.list_all_tools().await.unwrap().len(), 2);
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 0);
    ct.cancel();
}

/// A model that calls the first tool offered whose name ends in `tool` with `args`, then
/// answers with what the tool returned.
struct Caller1 {
    tool: &'static str,
    args: &'static str,
}

#[aegis_contracts::async_trait]
impl aegis_contracts::Provider for Caller1 {
    fn name(&self) -> &str {
        "scripted"
    }
    fn capabilities(&self) -> aegis_contracts::ProviderCapabilities {
        aegis_contracts::ProviderCapabilities::default()
    }
    async fn chat(
        &self,
        req: aegis_contracts::ChatRequest,
    ) -> Result<aegis_contracts::ChatResponse, aegis_contracts::Error> {
        use aegis_contracts::*;
        let meta = ResponseMeta::new("scripted", &req.model);
        let last = req.messages.last().unwrap();
        if last.role == Role::Tool {
            return Ok(ChatResponse::complete(
                meta,
                Completion::text("2", &req.model, format!("the tool said: {}", last.text())),
            ));
        }
        let offered = req
            .tools
            .iter()
            .find(|t| t.function.name.ends_with(self.tool));
        let mut c = Completion::text("1", &req.model, "");
        if let Some(t) = offered {
            c.choices[0].message.tool_calls =
                vec![ToolCall::new("call-1", t.function.name.clone(), self.args)];
            c.choices[0].finish_reason = Some("tool_calls".into());
        } else {
            c.choices[0].message = Message::assistant("no tool for that");
        }
        Ok(ChatResponse::complete(meta, c))
    }
}

/// A model that answers every request with calls to these tools (name, arguments).
struct AlwaysCalls(Vec<(&'static str, String)>);

#[aegis_contracts::async_trait]
impl aegis_contracts::Provider for AlwaysCalls {
    fn name(&self) -> &str {
        "always-calls"
    }
    fn capabilities(&self) -> aegis_contracts::ProviderCapabilities {
        aegis_contracts::ProviderCapabilities::default()
    }
    async fn chat(
        &self,
        req: aegis_contracts::ChatRequest,
    ) -> Result<aegis_contracts::ChatResponse, aegis_contracts::Error> {
        use aegis_contracts::*;
        let mut c = Completion::text("1", &req.model, "");
        c.choices[0].message.tool_calls = self
            .0
            .iter()
            .enumerate()
            .map(|(i, (name, args))| ToolCall::new(format!("c{i}"), *name, args.as_str()))
            .collect();
        Ok(ChatResponse::complete(
            ResponseMeta::new("always-calls", &req.model),
            c,
        ))
    }
}

fn pipeline_with(model: Caller1) -> aegis_core::Pipeline {
    aegis_core::Pipeline::builder()
        .provider("scripted", Arc::new(model))
        .guard(GuardEntry::new(
            "secrets",
            Arc::new(
                Secrets::new(SecretsConfig {
                    action: Action::Redact,
                    ..SecretsConfig::default()
                })
                .unwrap(),
            ),
            GuardPolicy::default(),
        ))
        .build()
        .unwrap()
}

/// What the loop answers to `question`.
async fn answered(tools: &aegis_mcp::ToolLoop, question: &str) -> String {
    let answer = tools.chat(ask(question)).await.unwrap();
    answer
        .collect()
        .await
        .unwrap()
        .message()
        .unwrap()
        .text()
        .into_owned()
}

fn ask(text: &str) -> aegis_contracts::ChatRequest {
    let mut req =
        aegis_contracts::ChatRequest::new("m", vec![aegis_contracts::Message::user(text)]);
    req.ctx = caller("ada", None);
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_uses_the_callers_tools_through_the_hub_and_answers_with_the_judged_result() {
    let s = setup(json!({}), false).await;
    let tools = aegis_mcp::ToolLoop::new(
        s.hub.clone(),
        pipeline_with(Caller1 {
            tool: "__leak",
            args: "{}",
        }),
    );
    let answer = tools.chat(ask("what is the config?")).await.unwrap();
    let text = answer
        .collect()
        .await
        .unwrap()
        .message()
        .unwrap()
        .text()
        .into_owned();
    assert!(
        text.starts_with("the tool said: db_host=10.0.0.5"),
        "{text}"
    );
    assert!(
        !text.contains("AKIAQWERTYUIOPASDFGH"),
        "the result was judged before the model read it: {text}"
    );
    // Each tool round executes once.
    let counting = aegis_mcp::ToolLoop::new(
        s.hub.clone(),
        pipeline_with(Caller1 {
            tool: "__counter",
            args: "{}",
        }),
    );
    assert_eq!(
        answered(&counting, "count").await,
        "the tool said: executed 1 times"
    );
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_the_caller_may_not_use_is_neither_offered_nor_executed() {
    let s = setup(
        json!({"access": {"default": "deny", "principals": {"ada": ["echo"]}}}),
        false,
    )
    .await;
    let tools = aegis_mcp::ToolLoop::new(
        s.hub.clone(),
        pipeline_with(Caller1 {
            tool: "__counter",
            args: "{}",
        }),
    );
    assert_eq!(answered(&tools, "count").await, "no tool for that");
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_never_stops_calling_tools_is_stopped_at_the_step_limit() {
    let s = setup(json!({}), false).await;
    let pipeline = aegis_core::Pipeline::builder()
        .provider(
            "loops",
            Arc::new(AlwaysCalls(vec![(
                "fx__echo",
                r#"{"text":"again"}"#.into(),
            )])),
        )
        .build()
        .unwrap();
    let err = aegis_mcp::ToolLoop::new(s.hub.clone(), pipeline)
        .max_steps(3)
        .chat(ask("go"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "tool_steps_exceeded");
}

/// A hub whose chain asks a human before any call mentioning `wipe` executes.
async fn approval_setup() -> Setup {
    let mut s = setup(json!({}), false).await;
    let gate: aegis_guards::BanSubstringsConfig = serde_json::from_value(json!({
        "substrings": ["wipe"], "action": "require_approval", "stages": ["tool_call"],
    }))
    .unwrap();
    let chain = GuardChain::new(vec![GuardEntry::new(
        "ask-first",
        Arc::new(aegis_guards::BanSubstrings::new(gate).unwrap()),
        GuardPolicy::default(),
    )]);
    let servers = parse_servers(&[
        json!({"id": "fx", "http": {"url": format!("http://127.0.0.1:{}/mcp", s.port)}}),
    ])
    .unwrap();
    s.hub = McpHub::new(
        servers.into_iter().map(ResolvedServer::plain).collect(),
        chain,
        Arc::new(MemoryPins::new()),
    );
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_needing_approval_executes_exactly_once_after_a_reviewer_approves_it() {
    let s = approval_setup().await;
    let ada = caller("ada", None);
    let args = || {
        Some(
            json!({"note": "wipe the cache"})
                .as_object()
                .unwrap()
                .clone(),
        )
    };
    let err = s
        .hub
        .call_tool(&ada, "fx__counter", args())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ApprovalRequired);
    let id = err.details().unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        s.state.counted.load(Ordering::SeqCst),
        0,
        "nothing executes before a decision"
    );
    assert_eq!(s.hub.pending_approvals().await.unwrap().len(), 1);
    // Claiming it before the decision, or deciding on one's own call: refused.
    let claim = ada.clone().with_label(aegis_mcp::APPROVAL_META, id.clone());
    let err = s
        .hub
        .call_tool(&claim, "fx__counter", args())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ApprovalRequired);
    assert_eq!(
        s.hub.decide(&id, true, "ada").await.unwrap_err().code(),
        "own_approval"
    );
    s.hub.decide(&id, true, "reviewer").await.unwrap();
    // Another caller, or other arguments, cannot use the approval.
    let bob = caller("bob", None).with_label(aegis_mcp::APPROVAL_META, id.clone());
    assert_eq!(
        s.hub
            .call_tool(&bob, "fx__counter", args())
            .await
            .unwrap_err()
            .code(),
        "approval_mismatch"
    );
    let other = Some(
        json!({"note": "wipe everything"})
            .as_object()
            .unwrap()
            .clone(),
    );
    assert_eq!(
        s.hub
            .call_tool(&claim, "fx__counter", other)
            .await
            .unwrap_err()
            .code(),
        "approval_mismatch"
    );
    let r = s
        .hub
        .call_tool(&claim, "fx__counter", args())
        .await
        .unwrap();
    assert_eq!(text(&r), "executed 1 times");
    // A replay of the approved call does not execute it again.
    let err = s
        .hub
        .call_tool(&claim, "fx__counter", args())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "already_executed");
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_call_never_executes() {
    let s = approval_setup().await;
    let ada = caller("ada", None);
    let args = || Some(json!({"note": "wipe"}).as_object().unwrap().clone());
    let err = s
        .hub
        .call_tool(&ada, "fx__counter", args())
        .await
        .unwrap_err();
    let id = err.details().unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.hub.decide(&id, false, "reviewer").await.unwrap();
    assert_eq!(
        s.hub
            .decide(&id, true, "reviewer")
            .await
            .unwrap_err()
            .code(),
        "already_decided"
    );
    let claim = ada.with_label(aegis_mcp::APPROVAL_META, id);
    let err = s
        .hub
        .call_tool(&claim, "fx__counter", args())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "approval_rejected");
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_nobody_authenticated_gets_no_tool_unless_the_server_allows_anonymous_callers() {
    let s = setup(json!({}), false).await;
    let anonymous = RequestContext::default();
    assert!(s.hub.list_tools(None).await.tools.is_empty());
    let err = s
        .hub
        .call_tool(&anonymous, "fx__counter", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "tool_not_allowed");
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 0);

    let open = setup(json!({"access": {"anonymous": "allow"}}), false).await;
    assert!(!open.hub.list_tools(None).await.tools.is_empty());
    open.hub
        .call_tool(&anonymous, "fx__counter", None)
        .await
        .unwrap();
    assert_eq!(open.state.counted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_an_upstream_says_is_judged_before_anyone_reads_it() {
    let s = setup(json!({}), false).await;
    let anyone = caller("a", None);
    // A JSON-RPC error's message is the server's own text: judged like a result.
    let err = s
        .hub
        .call_tool(&anyone, "fx__refuse", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp_upstream_error");
    assert!(
        !err.message().contains(support::fixture::PLANTED) && err.message().contains("[REDACTED:"),
        "{}",
        err.message()
    );
    assert_eq!(
        err.details(),
        Some(&json!({"jsonrpc_code": -32603})),
        "only the code is passed on in the details, never the raw message"
    );
    // A resource link's description and the result's `_meta` are judged too.
    let r = s.hub.call_tool(&anyone, "fx__link", None).await.unwrap();
    let all = serde_json::to_string(&r).unwrap();
    assert!(!all.contains(support::fixture::PLANTED), "{all}");
    let rmcp::model::ContentBlock::ResourceLink(link) = &r.content[1] else {
        panic!("the link is still a link: {all}");
    };
    assert_eq!(link.uri, "file:///srv/config.ini");
    assert!(
        link.description.as_deref().unwrap().contains("[REDACTED:"),
        "{all}"
    );
    assert!(
        r.meta.as_ref().unwrap().0["debug"]
            .as_str()
            .unwrap()
            .contains("[REDACTED:")
    );
    // `_meta` keys named like payloads and a free-text MIME type are judged too; the
    // block's own text and the image's bytes are left as they are.
    let rmcp::model::ContentBlock::Text(t) = &r.content[0] else {
        panic!("text first: {all}");
    };
    assert_eq!(t.text, "see the link");
    let rmcp::model::ContentBlock::Image(image) = &r.content[2] else {
        panic!("an image: {all}");
    };
    assert!(
        image.data.starts_with("iVBORw0KGgo"),
        "the payload is untouched"
    );
    // Binary payloads pass as they are.
    let r = s
        .hub
        .call_tool(&anyone, "fx__test_image_content", None)
        .await
        .unwrap();
    let rmcp::model::ContentBlock::Image(image) = &r.content[0] else {
        panic!("an image");
    };
    assert!(image.data.starts_with("iVBORw0KGgo"));
}

/// Accepts connections and never answers: a server that hangs.
async fn hanging_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_that_hang_cost_one_timeout_not_one_each_and_do_not_hide_the_others() {
    let fixture = Fixture::default();
    let ct = CancellationToken::new();
    let port = serve(fixture, 0, ct.clone(), None).await;
    let mut entries =
        vec![json!({"id": "fx", "http": {"url": format!("http://127.0.0.1:{port}/mcp")}})];
    for i in 0..3 {
        let hung = hanging_server().await;
        entries.push(json!({"id": format!("hung{i}"), "http": {"url": format!("http://127.0.0.1:{hung}/mcp")}, "timeout_ms": 1000}));
    }
    let hub = McpHub::new(
        parse_servers(&entries)
            .unwrap()
            .into_iter()
            .map(ResolvedServer::plain)
            .collect(),
        chain(),
        Arc::new(MemoryPins::new()),
    );
    let started = std::time::Instant::now();
    let listing = hub.list_tools(Some(&Principal::new("a"))).await;
    let took = started.elapsed();
    assert!(listing.tools.iter().any(|t| t.name == "fx__echo"));
    assert_eq!(listing.problems.len(), 3, "{:?}", listing.problems);
    assert!(
        took < Duration::from_millis(2500),
        "three hung servers were waited for one after another: {took:?}"
    );
    ct.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_is_not_told_the_command_line_or_address_of_a_failing_server() {
    let servers = parse_servers(&[
        json!({"id": "tools", "stdio": {"command": "/opt/internal/bin/tool-server-7f3a", "args": ["--db", "10.1.2.3"]}, "timeout_ms": 2000, "access": {"anonymous": "allow"}}),
    ])
    .unwrap();
    let hub = McpHub::new(
        servers.into_iter().map(ResolvedServer::plain).collect(),
        chain(),
        Arc::new(MemoryPins::new()),
    );
    let err = hub
        .call_tool(&caller("a", None), "tools__anything", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp_server_unavailable");
    assert!(
        !err.message().contains("/opt/internal") && !err.message().contains("10.1.2.3"),
        "{}",
        err.message()
    );
    // The operator still sees why.
    let status = hub.status().await;
    assert!(
        status[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("/opt/internal/bin/tool-server-7f3a"),
        "{:?}",
        status[0].reason
    );
}

/// A hub whose chain has two guards asking a human: one about `wipe`, one about `cache`.
async fn two_gate_setup(ttl_secs: u64) -> Setup {
    let mut s = setup(json!({}), false).await;
    let gate = |word: &str| {
        let config: aegis_guards::BanSubstringsConfig = serde_json::from_value(json!({
            "substrings": [word], "action": "require_approval", "stages": ["tool_call"],
        }))
        .unwrap();
        Arc::new(aegis_guards::BanSubstrings::new(config).unwrap())
    };
    let chain = GuardChain::new(vec![
        GuardEntry::new("ask-wipe", gate("wipe"), GuardPolicy::default()),
        GuardEntry::new("ask-cache", gate("cache"), GuardPolicy::default()),
    ]);
    let servers = parse_servers(&[json!({
        "id": "fx", "http": {"url": format!("http://127.0.0.1:{}/mcp", s.port)},
        "approval_ttl_secs": ttl_secs,
    })])
    .unwrap();
    s.hub = McpHub::new(
        servers.into_iter().map(ResolvedServer::plain).collect(),
        chain,
        Arc::new(MemoryPins::new()),
    );
    s
}

fn note(text: &str) -> Option<rmcp::model::JsonObject> {
    Some(json!({ "note": text }).as_object().unwrap().clone())
}

fn approval_id(err: &aegis_contracts::Error) -> String {
    err.details().unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_approval_covers_every_guard_that_asks_and_asking_again_reuses_it() {
    let s = two_gate_setup(3600).await;
    let ada = caller("ada", None);
    let err = s
        .hub
        .call_tool(&ada, "fx__counter", note("wipe the cache"))
        .await
        .unwrap_err();
    let id = approval_id(&err);
    assert!(
        err.message().contains("ask-wipe") || err.message().contains("wipe"),
        "{}",
        err.message()
    );
    // The same call again, before a decision: the same approval, not a second one.
    let again = s
        .hub
        .call_tool(&ada, "fx__counter", note("wipe the cache"))
        .await
        .unwrap_err();
    assert_eq!(approval_id(&again), id);
    let pending = s.hub.pending_approvals().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].guards, ["ask-wipe", "ask-cache"]);
    s.hub.decide(&id, true, "reviewer").await.unwrap();
    // Asked again by its caller once approved — naming the approval or not, as a chat sent
    // again does — it executes, once.
    let r = s
        .hub
        .call_tool(&ada, "fx__counter", note("wipe the cache"))
        .await
        .unwrap();
    assert_eq!(text(&r), "executed 1 times");
    let claim = ada.clone().with_label(aegis_mcp::APPROVAL_META, id.clone());
    assert_eq!(
        s.hub
            .call_tool(&claim, "fx__counter", note("wipe the cache"))
            .await
            .unwrap_err()
            .code(),
        "already_executed"
    );
    let fresh = s
        .hub
        .call_tool(&ada, "fx__counter", note("wipe the cache"))
        .await
        .unwrap_err();
    assert_ne!(
        approval_id(&fresh),
        id,
        "after it executed, the call needs a new approval"
    );
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_held_on_a_tool_approval_finishes_when_sent_again_after_the_decision() {
    let s = two_gate_setup(3600).await;
    let tools = aegis_mcp::ToolLoop::new(
        s.hub.clone(),
        pipeline_with(Caller1 {
            tool: "__counter",
            args: r#"{"note":"wipe"}"#,
        }),
    );
    let err = tools.chat(ask("clean up")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ApprovalRequired);
    let id = approval_id(&err);
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 0);
    s.hub.decide(&id, true, "reviewer").await.unwrap();
    assert_eq!(
        answered(&tools, "clean up").await,
        "the tool said: executed 1 times"
    );
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_lapses_after_its_ttl_and_a_caller_cannot_flood_the_reviewers() {
    let s = two_gate_setup(1).await;
    let ada = caller("ada", None);
    let err = s
        .hub
        .call_tool(&ada, "fx__counter", note("wipe"))
        .await
        .unwrap_err();
    let id = approval_id(&err);
    let other = approval_id(
        &s.hub
            .call_tool(&ada, "fx__counter", note("wipe the cache"))
            .await
            .unwrap_err(),
    );
    s.hub.decide(&id, true, "reviewer").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Lapsed: an approved one no longer executes, a pending one can no longer be decided.
    let claim = ada.clone().with_label(aegis_mcp::APPROVAL_META, id);
    assert_eq!(
        s.hub
            .call_tool(&claim, "fx__counter", note("wipe"))
            .await
            .unwrap_err()
            .code(),
        "approval_expired"
    );
    assert_eq!(
        s.hub
            .decide(&other, true, "reviewer")
            .await
            .unwrap_err()
            .code(),
        "approval_expired"
    );
    assert!(s.hub.pending_approvals().await.unwrap().is_empty());
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 0);

    let s = two_gate_setup(3600).await;
    for i in 0..aegis_mcp::MAX_PENDING_PER_CALLER {
        let err = s
            .hub
            .call_tool(&ada, "fx__counter", note(&format!("wipe {i}")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "approval_required");
    }
    let err = s
        .hub
        .call_tool(&ada, "fx__counter", note("wipe one more"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::RateLimited, "too_many_pending_approvals")
    );
    // Another caller is not held back by ada's backlog.
    let bob = caller("bob", None);
    let err = s
        .hub
        .call_tool(&bob, "fx__counter", note("wipe"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "approval_required");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_resources_and_prompts_are_re_exported_judged_and_enforced() {
    use support::fixture::PLANTED;
    let s = setup(json!({}), false).await;
    let ada = caller("ada", None);
    let p = ada.principal.as_ref();
    // Listed under the prefix; a description carrying a credential is judged like any text.
    let resources = s.hub.list_resources(p).await;
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(uris.contains(&"fx__test://static-text"), "{uris:?}");
    let listed = serde_json::to_string(&resources).unwrap();
    assert!(
        !listed.contains(PLANTED) && listed.contains("[REDACTED:"),
        "{listed}"
    );
    let templates = s.hub.list_resource_templates(p).await;
    assert_eq!(templates[0].uri_template, "fx__test://template/{id}/data");
    // Read: contents judged, URIs exported, binary untouched.
    let read = s
        .hub
        .read_resource(&ada, "fx__test://leaky-config")
        .await
        .unwrap();
    let all = serde_json::to_string(&read).unwrap();
    assert!(
        !all.contains(PLANTED) && all.contains("[REDACTED:"),
        "{all}"
    );
    assert!(all.contains("fx__test://leaky-config"), "{all}");
    let binary = s
        .hub
        .read_resource(&ada, "fx__test://static-binary")
        .await
        .unwrap();
    let rmcp::model::ResourceContents::BlobResourceContents { blob, .. } = &binary.contents[0]
    else {
        panic!("a blob");
    };
    assert!(blob.starts_with("iVBORw0KGgo"));
    let templated = s
        .hub
        .read_resource(&ada, "fx__test://template/7/data")
        .await
        .unwrap();
    assert!(
        serde_json::to_string(&templated)
            .unwrap()
            .contains("Data for ID: 7")
    );
    // The request is judged too: a credential in a URI never leaves.
    let err = s
        .hub
        .read_resource(&ada, &format!("fx__test://template/{PLANTED}/data"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyBlocked);
    assert_eq!(
        s.hub
            .read_resource(&ada, "nowhere://x")
            .await
            .unwrap_err()
            .code(),
        "unknown_resource"
    );
    // Prompts: listed under the prefix, got with arguments, messages judged.
    let prompts = s.hub.list_prompts(p).await;
    assert!(
        prompts
            .iter()
            .any(|p| p.name == "fx__test_prompt_with_arguments")
    );
    let mut args = rmcp::model::JsonObject::new();
    args.insert("arg1".into(), json!("hello"));
    args.insert("arg2".into(), json!("world"));
    let got = s
        .hub
        .get_prompt(&ada, "fx__test_prompt_with_arguments", Some(args))
        .await
        .unwrap();
    assert!(
        serde_json::to_string(&got)
            .unwrap()
            .contains("arg1='hello', arg2='world'")
    );
    // Protocol words (`"role": "user"`, `"type": "image"`) are not mistaken for an
    // injection by the guards judging the rest of a message.
    let image = s
        .hub
        .get_prompt(&ada, "fx__test_prompt_with_image", None)
        .await
        .unwrap();
    assert_eq!(image.messages.len(), 2);
    let leaky = s
        .hub
        .get_prompt(&ada, "fx__leaky_prompt", None)
        .await
        .unwrap();
    let all = serde_json::to_string(&leaky).unwrap();
    assert!(
        !all.contains(PLANTED) && all.contains("[REDACTED:"),
        "{all}"
    );
    // A quarantined server serves no resource or prompt either.
    s.state.rug_pull.store(true, Ordering::SeqCst);
    s.hub.refresh().await;
    assert!(s.hub.list_resources(p).await.is_empty());
    assert_eq!(
        s.hub
            .read_resource(&ada, "fx__test://static-text")
            .await
            .unwrap_err()
            .code(),
        "mcp_server_quarantined"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_rules_govern_resources_by_uri_and_prompts_by_name() {
    let s = setup(
        json!({"access": {"default": "deny", "principals": {"ada": ["test://static-text", "test_simple_prompt"]}}}),
        false,
    )
    .await;
    let ada = caller("ada", None);
    let uris: Vec<String> = s
        .hub
        .list_resources(ada.principal.as_ref())
        .await
        .into_iter()
        .map(|r| r.uri)
        .collect();
    assert_eq!(uris, ["fx__test://static-text"]);
    s.hub
        .read_resource(&ada, "fx__test://static-text")
        .await
        .unwrap();
    assert_eq!(
        s.hub
            .read_resource(&ada, "fx__test://leaky-config")
            .await
            .unwrap_err()
            .code(),
        "tool_not_allowed"
    );
    let names: Vec<String> = s
        .hub
        .list_prompts(ada.principal.as_ref())
        .await
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["fx__test_simple_prompt"]);
    assert_eq!(
        s.hub
            .get_prompt(&ada, "fx__leaky_prompt", None)
            .await
            .unwrap_err()
            .code(),
        "tool_not_allowed"
    );
    assert!(
        s.hub.list_resources(None).await.is_empty(),
        "anonymous: nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_held_on_a_tool_call_resumes_after_the_decision_without_asking_the_model_again() {
    let s = two_gate_setup(3600).await;
    let tools = aegis_mcp::ToolLoop::new(
        s.hub.clone(),
        pipeline_with(Caller1 {
            tool: "__counter",
            args: r#"{"note":"wipe"}"#,
        }),
    );
    let held = tools.chat(ask("clean up")).await.unwrap_err();
    assert_eq!(held.kind(), ErrorKind::ApprovalRequired);
    assert_eq!(held.details().unwrap()["held"], true);
    assert!(held.message().contains("/resume"), "{}", held.message());
    let id = approval_id(&held);
    // Before the decision: still held, and the state is kept for later.
    let ada = caller("ada", None);
    let again = tools.resume(ada.clone(), &id).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::ApprovalRequired);
    // Not another caller's to resume.
    assert_eq!(
        tools
            .resume(caller("bob", None), &id)
            .await
            .unwrap_err()
            .code(),
        "approval_mismatch"
    );
    s.hub.decide(&id, true, "reviewer").await.unwrap();
    let answer = tools.resume(ada.clone(), &id).await.unwrap();
    let text = answer
        .collect()
        .await
        .unwrap()
        .message()
        .unwrap()
        .text()
        .into_owned();
    assert_eq!(text, "the tool said: executed 1 times");
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 1);
    assert_eq!(
        tools.resume(ada.clone(), &id).await.unwrap_err().code(),
        "no_held_chat",
        "a held chat resumes once"
    );

    // Rejected: the model is told, and answers without the call.
    let held = tools.chat(ask("clean up")).await.unwrap_err();
    let id = approval_id(&held);
    s.hub.decide(&id, false, "reviewer").await.unwrap();
    let answer = tools.resume(ada, &id).await.unwrap();
    let text = answer
        .collect()
        .await
        .unwrap()
        .message()
        .unwrap()
        .text()
        .into_owned();
    assert!(
        text.starts_with("the tool said: error: approval_rejected"),
        "{text}"
    );
    assert_eq!(s.state.counted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_of_upstream_arguments_are_routed_and_judged_both_ways() {
    use rmcp::model::{ArgumentInfo, CompleteRequestParams, Reference};
    let s = setup(json!({}), false).await;
    let ada = caller("ada", None);
    let ask = |arg: &str, value: &str| {
        CompleteRequestParams::new(
            Reference::for_prompt("fx__test_prompt_with_arguments"),
            ArgumentInfo::new(arg, value),
        )
    };
    let done = s.hub.complete(&ada, ask("arg1", "par")).await.unwrap();
    assert_eq!(done.completion.values, ["paris", "park", "party"]);
    // What comes back is judged like any upstream text.
    let done = s.hub.complete(&ada, ask("arg2", "")).await.unwrap();
    let all = done.completion.values.join(" ");
    assert!(
        !all.contains(support::fixture::PLANTED) && all.contains("[REDACTED:"),
        "{all}"
    );
    // What goes out too: a credential typed into an argument never leaves.
    let err = s
        .hub
        .complete(&ada, ask("arg1", support::fixture::PLANTED))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyBlocked);
    // Anonymous: not allowed.
    assert_eq!(
        s.hub
            .complete(&RequestContext::default(), ask("arg1", "p"))
            .await
            .unwrap_err()
            .code(),
        "tool_not_allowed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_calls_returned_to_the_caller_in_a_mixed_round_are_still_judged() {
    let s = setup(json!({}), false).await;
    let pipeline = aegis_core::Pipeline::builder()
        // A hub tool called with a credential, and one of the caller's own tools, at once.
        .provider(
            "mixed",
            Arc::new(AlwaysCalls(vec![
                (
                    "fx__echo",
                    format!(r#"{{"text":"{}"}}"#, support::fixture::PLANTED),
                ),
                ("my_own_tool", "{}".into()),
            ])),
        )
        .guard(GuardEntry::new(
            "secrets",
            Arc::new(
                Secrets::new(SecretsConfig {
                    action: Action::Redact,
                    // The tool-call stage only: the one the pipeline leaves to the hub.
                    stages: vec![Stage::ToolCall],
                    ..SecretsConfig::default()
                })
                .unwrap(),
            ),
            GuardPolicy::default(),
        ))
        .build()
        .unwrap();
    let mut req = ask("go");
    req.tools.push(aegis_contracts::ToolSpec::function(
        "my_own_tool",
        "The caller's.",
        json!({"type": "object"}),
    ));
    let answer = aegis_mcp::ToolLoop::new(s.hub.clone(), pipeline)
        .chat(req)
        .await
        .unwrap();
    let done = answer.collect().await.unwrap();
    let calls = &done.message().unwrap().tool_calls;
    assert_eq!(calls.len(), 2);
    assert!(
        !calls[0]
            .function
            .arguments
            .contains(support::fixture::PLANTED),
        "{}",
        calls[0].function.arguments
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_speaking_garbage_is_a_typed_error_within_the_timeout() {
    // A child process that answers the handshake with a line that is not JSON-RPC, and an
    // HTTP endpoint that answers every request with a body that is not JSON.
    let garbage_http = {
        let app = axum::Router::new().route(
            "/mcp",
            axum::routing::any(|| async {
                (
                    [("content-type", "application/json")],
                    "{\"jsonrpc\": \"2.0\", \"id\": ",
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    };
    let servers = parse_servers(&[
        json!({"id": "babbler", "stdio": {"command": "sh", "args": ["-c", "read line; echo '{not json'; sleep 30"]}, "timeout_ms": 1000}),
        json!({"id": "broken", "http": {"url": format!("http://127.0.0.1:{garbage_http}/mcp")}, "timeout_ms": 1000}),
    ])
    .unwrap();
    let hub = McpHub::new(
        servers.into_iter().map(ResolvedServer::plain).collect(),
        chain(),
        Arc::new(MemoryPins::new()),
    );
    for tool in ["babbler__x", "broken__x"] {
        let started = std::time::Instant::now();
        let err = hub
            .call_tool(&caller("a", None), tool, None)
            .await
            .unwrap_err();
        assert!(
            ["mcp_server_unavailable", "mcp_timeout"].contains(&err.code()),
            "{tool}: {} {}",
            err.code(),
            err.message()
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{tool}: {:?}",
            started.elapsed()
        );
    }
    let listing = hub.list_tools(Some(&Principal::new("a"))).await;
    assert!(listing.tools.is_empty());
    assert_eq!(listing.problems.len(), 2, "{:?}", listing.problems);
    hub.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_not_pinned_or_not_what_it_claims_never_reaches_a_caller() {
    let s = setup(json!({}), false).await;
    let anyone = caller("a", None);
    // A tool's `_meta` is not pinned, so it is not passed on.
    let listing = s.hub.list_tools(anyone.principal.as_ref()).await;
    let counter = listing
        .tools
        .iter()
        .find(|t| t.name == "fx__counter")
        .unwrap();
    assert!(counter.meta.is_none(), "{:?}", counter.meta);
    // A binary payload that is not base64 is text in disguise: refused, not passed unjudged.
    let err = s
        .hub
        .call_tool(&anyone, "fx__fake_image", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "tool_result_invalid", "{}", err.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_catalog_pinned_on_sight_is_quarantined_once_the_guards_refuse_it() {
    // Pinned on sight by a hub without guards, poisoned descriptions and all.
    let poisoned = setup(json!({}), true).await;
    let pins = Arc::new(MemoryPins::new());
    let servers = || {
        parse_servers(&[
            json!({"id": "fx", "http": {"url": format!("http://127.0.0.1:{}/mcp", poisoned.port)}}),
        ])
        .unwrap()
        .into_iter()
        .map(ResolvedServer::plain)
        .collect::<Vec<_>>()
    };
    let open = McpHub::new(servers(), GuardChain::default(), pins.clone());
    assert!(
        !open
            .list_tools(Some(&Principal::new("a")))
            .await
            .tools
            .is_empty()
    );
    // The same pin, judged by guards that refuse it (a reload with new guards).
    let guarded = McpHub::new(servers(), chain(), pins.clone());
    let listing = guarded.list_tools(Some(&Principal::new("a"))).await;
    assert!(listing.tools.is_empty(), "{:?}", listing.tools);
    assert!(
        listing
            .problems
            .iter()
            .any(|p| p.contains("descriptions were refused")),
        "{:?}",
        listing.problems
    );
    // An admin who approves it as it is takes that decision: it is served.
    let seen = guarded.status().await[0]
        .pin
        .as_ref()
        .unwrap()
        .seen_hash
        .clone();
    guarded.approve("fx", &seen, "admin").await.unwrap();
    assert!(
        !guarded
            .list_tools(Some(&Principal::new("a")))
            .await
            .tools
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstreams_json_rpc_error_reaches_the_mcp_client_as_one_judged_and_the_session_goes_on()
{
    let s = setup(json!({}), false).await;
    let server = AegisMcpServer::new(s.hub.clone(), None);
    let ct = CancellationToken::new();
    let port = serve(server, 0, ct.clone(), Some(caller("ada", None))).await;
    let transport = StreamableHttpClientTransport::from_uri(format!("http://127.0.0.1:{port}/mcp"));
    let client = ().serve(transport).await.unwrap();
    let err = client
        .call_tool(CallToolRequestParams::new("fx__refuse"))
        .await
        .unwrap_err();
    let rmcp::ServiceError::McpError(data) = err else {
        panic!("a JSON-RPC error: {err}");
    };
    // The fixture answers -32603 (internal error): its code, passed on.
    assert_eq!(data.code.0, -32603, "{data:?}");
    assert!(
        !data.message.contains(support::fixture::PLANTED) && data.message.contains("[REDACTED:"),
        "{}",
        data.message
    );
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    ct.cancel();
}
