//! MCP at the gateway over real HTTP: `/mcp` authenticated by key, the governed chat as a
//! tool, `[[mcp_servers]]` tools re-exported governed (against the Rust fixture MCP server on
//! loopback), the admin pin endpoints, and `aegis.mcp_tools` on chat completions.
#![allow(clippy::unwrap_used)]

mod common;
#[allow(dead_code, missing_docs)]
#[path = "../../aegis-packs/mcp/tests/support/fixture.rs"]
mod fixture;

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering};

use aegis::{Pipeline, config::AegisConfig};
use aegis_gateway::server::{self, EventFeed, Gateway, Limits, mcp};
use aegis_mcp::{MemoryPins, rmcp};
use rmcp::{
    ServiceExt,
    model::CallToolRequestParams,
    transport::{
        StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_client::StreamableHttpClientTransportConfig,
        streamable_http_server::session::local::LocalSessionManager,
    },
};
use serde_json::{Value, json};

/// `AEGIS_TEST_SECRET_ENV` is set by .cargo/config.toml.
const KEY: &str = "sk-env-value-for-tests";
/// `AEGIS_TEST_REVIEWER_KEY`, another admin.
const REVIEWER: &str = "sk-reviewer-value-for-tests";

async fn spawn_fixture(state: Arc<fixture::FixtureState>) -> u16 {
    let server = fixture::Fixture { state };
    let service: StreamableHttpService<fixture::Fixture, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(server.clone()),
            Default::default(),
            StreamableHttpServerConfig::default(),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().nest_service("/mcp", service);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

async fn spawn(state: Arc<fixture::FixtureState>) -> SocketAddr {
    spawn_with(state, "[[providers]]\nid = \"echo\"\ntype = \"echo\"\n").await
}

/// The gateway with `providers` (TOML) and the fixture as its MCP server `fx`.
async fn spawn_with(state: Arc<fixture::FixtureState>, providers: &str) -> SocketAddr {
    let port = spawn_fixture(state).await;
    let config = format!(
        r#"
{providers}

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [
    {{ key = "secret://env/AEGIS_TEST_SECRET_ENV", principal = "tester", roles = ["admin"] }},
    {{ key = "secret://env/AEGIS_TEST_REVIEWER_KEY", principal = "reviewer", roles = ["admin"] }},
] }}

[[guardrails]]
id = "ask-first"
type = "ban_substrings"
stages = ["tool_call"]
config = {{ substrings = ["wipe"], action = "require_approval" }}

[[guardrails]]
id = "words"
type = "ban_substrings"
config = {{ substrings = ["project nightingale"] }}

[[mcp_servers]]
id = "fx"
http = {{ url = "http://127.0.0.1:{port}/mcp" }}
access = {{ default = "deny", principals = {{ tester = ["echo", "counter"] }} }}
"#
    );
    let cfg = AegisConfig::from_toml_str(&config, std::iter::empty::<(&str, &str)>()).unwrap();
    let registry = aegis_gateway::static_keys::registry();
    let feed = EventFeed::default();
    let pipeline = Pipeline::from_config_with(&registry, &cfg, None, vec![Arc::new(feed.clone())])
        .await
        .unwrap();
    let hub = mcp::hub_from_config(
        &cfg,
        &registry,
        pipeline.chain().clone(),
        Arc::new(MemoryPins::new()),
        None,
        Arc::new(aegis_mcp::MemoryApprovals::default()),
    )
    .await
    .unwrap();
    let endpoint = mcp::McpEndpoint::new(hub, pipeline.clone(), &[]);
    let gw = Gateway::new(pipeline, Limits::default(), feed).with_mcp(endpoint);
    let app = server::router(gw);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An MCP client of the gateway's `/mcp`, authenticated with the admin key.
async fn connect(addr: SocketAddr) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(KEY),
    );
    ().serve(transport).await.unwrap()
}

fn text_of(r: &rmcp::model::CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| match c {
            rmcp::model::ContentBlock::Text(t) => Some(t.text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_without_a_key_is_refused_before_any_tool_is_listed() {
    let addr = spawn(Default::default()).await;
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_with_a_key_gets_the_governed_chat_and_its_allowed_tools() {
    let state = Arc::new(fixture::FixtureState::default());
    let addr = spawn(state.clone()).await;
    let client = connect(addr).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["chat", "fx__counter", "fx__echo"]);
    let mut chat = CallToolRequestParams::new("chat");
    chat.arguments = Some(
        json!({"prompt": "hello there"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let r = client.call_tool(chat).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(text_of(&r).contains("hello there"), "{}", text_of(&r));
    // The chat tool is the governed pipeline: its guards apply.
    let mut banned = CallToolRequestParams::new("chat");
    banned.arguments = Some(
        json!({"prompt": "tell me about project nightingale"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let r = client.call_tool(banned).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).starts_with("banned_substring: blocked by guard `words`"),
        "{}",
        text_of(&r)
    );
    // A tool outside the caller's access rule: refused, never executed.
    let r = client
        .call_tool(CallToolRequestParams::new("fx__leak"))
        .await
        .unwrap();
    assert!(
        text_of(&r).starts_with("tool_not_allowed"),
        "{}",
        text_of(&r)
    );
    let r = client
        .call_tool(CallToolRequestParams::new("fx__counter"))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "executed 1 times");
    assert_eq!(state.counted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_endpoints_show_a_quarantine_with_its_diff_and_approve_the_catalog_shown() {
    let state = Arc::new(fixture::FixtureState::default());
    let addr = spawn(state.clone()).await;
    let http = reqwest::Client::new();
    let servers = || async {
        http.get(format!("http://{addr}/v1/admin/mcp/servers"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(servers().await["servers"][0]["state"], "served");
    state.rug_pull.store(true, Ordering::SeqCst);
    let v = servers().await;
    let fx = &v["servers"][0];
    assert_eq!(fx["state"], "quarantined", "{v}");
    assert_eq!(fx["diff"]["added"], json!(["extra"]));
    let hash = fx["pin"]["seen_hash"].as_str().unwrap().to_owned();
    let stale = http
        .post(format!("http://{addr}/v1/admin/mcp/servers/fx/approve"))
        .bearer_auth(KEY)
        .json(&json!({"hash": "sha256:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    let ok = http
        .post(format!("http://{addr}/v1/admin/mcp/servers/fx/approve"))
        .bearer_auth(KEY)
        .json(&json!({"hash": hash}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(servers().await["servers"][0]["state"], "served");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_completion_with_mcp_tools_is_answered_and_the_option_never_reaches_the_pipeline() {
    let addr = spawn(Default::default()).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}], "aegis": {"mcp_tools": {"max_steps": 2}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("hi"),
        "{body}"
    );
    let bad = http
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "echo", "stream": true, "messages": [{"role": "user", "content": "hi"}], "aegis": {"mcp_tools": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_call_held_for_approval_runs_once_after_another_admin_approves_it() {
    let state = Arc::new(fixture::FixtureState::default());
    let addr = spawn(state.clone()).await;
    let client = connect(addr).await;
    let call = |approval: Option<&str>| {
        let mut p = CallToolRequestParams::new("fx__counter");
        p.arguments = Some(
            json!({"note": "wipe the cache"})
                .as_object()
                .unwrap()
                .clone(),
        );
        if let Some(id) = approval {
            let mut meta = serde_json::Map::new();
            meta.insert(aegis_mcp::APPROVAL_META.into(), id.into());
            p.meta = Some(rmcp::model::RequestMetaObject(rmcp::model::MetaObject(
                meta,
            )));
        }
        p
    };
    let r = client.call_tool(call(None)).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).starts_with("approval_required"),
        "{}",
        text_of(&r)
    );
    let http = reqwest::Client::new();
    let pending: Value = http
        .get(format!("http://{addr}/v1/admin/mcp/approvals"))
        .bearer_auth(REVIEWER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = pending["approvals"][0]["id"].as_str().unwrap().to_owned();
    assert!(text_of(&r).contains(&id));
    assert_eq!(
        pending["approvals"][0]["arguments"]["note"],
        "wipe the cache"
    );
    let own = http
        .post(format!("http://{addr}/v1/admin/mcp/approvals/{id}/approve"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        own.status(),
        403,
        "the caller does not approve its own call"
    );
    let ok = http
        .post(format!("http://{addr}/v1/admin/mcp/approvals/{id}/approve"))
        .bearer_auth(REVIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(state.counted.load(Ordering::SeqCst), 0);
    let r = client.call_tool(call(Some(&id))).await.unwrap();
    assert_eq!(text_of(&r), "executed 1 times");
    let again = client.call_tool(call(Some(&id))).await.unwrap();
    assert!(
        text_of(&again).starts_with("already_executed"),
        "{}",
        text_of(&again)
    );
    assert_eq!(state.counted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_session_serves_only_the_key_that_opened_it() {
    let state = Arc::new(fixture::FixtureState::default());
    let addr = spawn(state.clone()).await;
    let http = reqwest::Client::new();
    let post = |key: &'static str, session: Option<String>, body: Value| {
        let mut r = http
            .post(format!("http://{addr}/mcp"))
            .bearer_auth(key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let opened = post(KEY, None, json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(
        post(KEY, Some(session.clone()), initialized)
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "fx__counter", "arguments": {}}});
    // Another valid key holding the session id: as if the session did not exist.
    let stolen = post(REVIEWER, Some(session.clone()), call.clone())
        .await
        .unwrap();
    assert_eq!(stolen.status(), 404);
    let stream = http
        .get(format!("http://{addr}/mcp"))
        .bearer_auth(REVIEWER)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream.status(),
        404,
        "another key cannot read the session's stream"
    );
    assert_eq!(state.counted.load(Ordering::SeqCst), 0);
    // Its owner goes on using it.
    let own = post(KEY, Some(session), call).await.unwrap();
    assert_eq!(own.status(), 200);
    let body = own.text().await.unwrap();
    assert!(body.contains("executed 1 times"), "{body}");
}

/// An OpenAI-compatible model that asks for `fx__counter` with a note saying `wipe`, then
/// answers with what the tool said.
async fn spawn_tool_calling_model() -> SocketAddr {
    async fn complete(axum::Json(req): axum::Json<Value>) -> axum::Json<Value> {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        let message = match last["role"].as_str() {
            Some("tool") => {
                json!({"role": "assistant", "content": format!("the tool said: {}", last["content"].as_str().unwrap_or_default())})
            }
            _ => json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call-1", "type": "function", "function": {"name": "fx__counter", "arguments": "{\"note\":\"wipe\"}"}}
            ]}),
        };
        axum::Json(json!({
            "id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }))
    }
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(complete));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_held_on_a_tool_call_resumes_over_http_once_another_admin_approves_it() {
    let state = Arc::new(fixture::FixtureState::default());
    let model = spawn_tool_calling_model().await;
    let addr = spawn_with(
        state.clone(),
        &format!(
            "[[providers]]\nid = \"up\"\ntype = \"openai\"\nconfig = {{ base_url = \"http://{model}/v1\", models = [\"m\"] }}\n"
        ),
    )
    .await;
    let http = reqwest::Client::new();
    let held = http
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "clean up"}], "aegis": {"mcp_tools": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 202);
    let body: Value = held.json().await.unwrap();
    assert_eq!(body["error"]["code"], "approval_required", "{body}");
    let id = body["error"]["details"]["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(state.counted.load(Ordering::SeqCst), 0);
    let resume = |key: &'static str| {
        http.post(format!("http://{addr}/v1/mcp/approvals/{id}/resume"))
            .bearer_auth(key)
            .send()
    };
    // Before a decision it stays held; another key cannot resume it.
    assert_eq!(resume(KEY).await.unwrap().status(), 202);
    assert_eq!(resume(REVIEWER).await.unwrap().status(), 403);
    let approved = http
        .post(format!("http://{addr}/v1/admin/mcp/approvals/{id}/approve"))
        .bearer_auth(REVIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let done = resume(KEY).await.unwrap();
    assert_eq!(done.status(), 200);
    let body: Value = done.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"], "the tool said: executed 1 times",
        "{body}"
    );
    assert_eq!(state.counted.load(Ordering::SeqCst), 1);
    let again = resume(KEY).await.unwrap();
    assert_eq!(again.status(), 404, "a held chat resumes once");
    assert_eq!(state.counted.load(Ordering::SeqCst), 1);
}

/// `aegis serve` with the fixture as MCP server `fx` and, when `banned` is given, a guard
/// blocking tool calls that mention it.
fn reload_config(fixture_port: u16, banned: Option<&str>) -> String {
    let guard = banned
        .map(|word| {
            format!(
                "[[guardrails]]\nid = \"no-{word}\"\ntype = \"ban_substrings\"\nstages = [\"tool_call\"]\nconfig = {{ substrings = [\"{word}\"] }}\n"
            )
        })
        .unwrap_or_default();
    format!(
        r#"
[server]
database_url = "sqlite://aegis.db?mode=rwc"

[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [ {{ key = "secret://env/AEGIS_TEST_SECRET_ENV", principal = "tester", roles = ["admin"] }} ] }}

{guard}
[[mcp_servers]]
id = "fx"
http = {{ url = "http://127.0.0.1:{fixture_port}/mcp" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_reload_rebuilds_the_hub_so_new_guards_judge_mcp_calls_in_open_sessions() {
    let state = Arc::new(fixture::FixtureState::default());
    let fixture_port = spawn_fixture(state.clone()).await;
    let dir = common::scratch_dir("mcp-reload");
    let config = dir.join("aegis.toml");
    std::fs::write(&config, reload_config(fixture_port, None)).unwrap();
    let (_server, url) = common::start_binary(&config, &dir);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp")).auth_header(KEY),
    );
    let client = ().serve(transport).await.unwrap();
    let call = || {
        let mut p = CallToolRequestParams::new("fx__counter");
        p.arguments = Some(json!({"note": "wipe"}).as_object().unwrap().clone());
        p
    };
    let r = client.call_tool(call()).await.unwrap();
    assert_eq!(text_of(&r), "executed 1 times");
    std::fs::write(&config, reload_config(fixture_port, Some("wipe"))).unwrap();
    let reloaded = reqwest::Client::new()
        .post(format!("{url}/admin/reload"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 200, "{}", reloaded.text().await.unwrap());
    // The same session, after the reload: the new guard judges the call, which never runs.
    let r = client.call_tool(call()).await.unwrap();
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(text_of(&r).contains("no-wipe"), "{}", text_of(&r));
    assert_eq!(state.counted.load(Ordering::SeqCst), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_chat_is_taken_once_even_by_racing_resumes_and_kept_apart_from_the_approvals() {
    use aegis_mcp::ApprovalStore as _;
    let dir = common::scratch_dir("mcp-held");
    let store = aegis_store::Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("aegis.db").display()
    ))
    .await
    .unwrap();
    let approvals = mcp::StoreApprovals(store.clone());
    let state = json!({"conversation": "x".repeat(1000)});
    approvals.hold("mcpa_1", &state).await.unwrap();
    // Listing approvals does not read held conversations.
    assert!(
        store
            .settings_with_prefix("mcp.approval.")
            .await
            .unwrap()
            .is_empty()
    );
    let (a, b) = tokio::join!(approvals.take_held("mcpa_1"), approvals.take_held("mcpa_1"));
    let taken = [a.unwrap(), b.unwrap()];
    assert_eq!(taken.iter().filter(|t| t.is_some()).count(), 1, "{taken:?}");
    assert_eq!(approvals.take_held("mcpa_1").await.unwrap(), None);
    // Held again (resumed before a decision): it can be taken again, once.
    approvals.hold("mcpa_1", &state).await.unwrap();
    assert_eq!(approvals.take_held("mcpa_1").await.unwrap(), Some(state));
    assert_eq!(approvals.take_held("mcpa_1").await.unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_json_rpc_frame_gets_a_clear_error_and_the_session_goes_on() {
    let state = Arc::new(fixture::FixtureState::default());
    let addr = spawn(state.clone()).await;
    let http = reqwest::Client::new();
    let post = |session: Option<String>, body: String| {
        let mut r = http
            .post(format!("http://{addr}/mcp"))
            .bearer_auth(KEY)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body);
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let opened = post(None, json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string())
        .await
        .unwrap();
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    post(
        Some(session.clone()),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    )
    .await
    .unwrap();
    for frame in [
        "{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": ",
        "[1, 2, 3]",
        "{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"tools/call\", \"params\": {\"name\": 7}}",
    ] {
        let r = post(Some(session.clone()), frame.to_owned()).await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(
            status.is_client_error() || body.contains("\"error\""),
            "{frame}: {status} {body}"
        );
        assert!(!status.is_server_error(), "{frame}: {status} {body}");
    }
    assert_eq!(state.counted.load(Ordering::SeqCst), 0);
    // The session is still usable.
    let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "fx__counter", "arguments": {}}});
    let ok = post(Some(session), call.to_string()).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("executed 1 times"));
}

#[tokio::test(flavor = "multi_thread")]
async fn aegis_mcp_serve_governs_the_same_tools_over_stdio_for_the_keys_principal() {
    use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
    let state = Arc::new(fixture::FixtureState::default());
    let fixture_port = spawn_fixture(state.clone()).await;
    let dir = common::scratch_dir("mcp-stdio");
    let config = dir.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
database_url = "sqlite://aegis.db?mode=rwc"

[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [ {{ key = "secret://env/AEGIS_TEST_SECRET_ENV", principal = "tester" }} ] }}

[[guardrails]]
id = "secrets"
type = "secrets"
config = {{ action = "redact" }}

[[mcp_servers]]
id = "fx"
http = {{ url = "http://127.0.0.1:{fixture_port}/mcp" }}
access = {{ default = "deny", principals = {{ tester = ["leak", "counter"] }} }}
"#
        ),
    )
    .unwrap();
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_aegis")).configure(|c| {
        c.args([
            "mcp",
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--key",
            KEY,
        ])
        .current_dir(&dir)
        .env("AEGIS_LOG", "error")
        .env_remove("AEGIS_API_KEY");
    });
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = ().serve(transport).await.unwrap();
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    // The key's principal sees what its access rule allows, beside the governed chat.
    assert_eq!(names, ["chat", "fx__counter", "fx__leak"]);
    let leak = client
        .call_tool(CallToolRequestParams::new("fx__leak"))
        .await
        .unwrap();
    assert!(
        !text_of(&leak).contains(fixture::PLANTED) && text_of(&leak).contains("[REDACTED:"),
        "{}",
        text_of(&leak)
    );
    let hidden = client
        .call_tool(CallToolRequestParams::new("fx__echo"))
        .await
        .unwrap();
    assert_eq!(hidden.is_error, Some(true), "{}", text_of(&hidden));
    let mut chat = CallToolRequestParams::new("chat");
    chat.arguments = Some(
        json!({"prompt": "hello over stdio"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let answer = client.call_tool(chat).await.unwrap();
    assert!(
        text_of(&answer).contains("hello over stdio"),
        "{}",
        text_of(&answer)
    );
    client.cancel().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_servers_credential_comes_from_a_secret_reference_and_is_sent_to_it() {
    // The fixture behind a check of its credential: the value of AEGIS_TEST_SECRET_ENV.
    let server = fixture::Fixture::default();
    let service: StreamableHttpService<fixture::Fixture, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(server.clone()),
            Default::default(),
            StreamableHttpServerConfig::default(),
        );
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            |req: axum::extract::Request, next: axum::middleware::Next| async move {
                match req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                {
                    Some(KEY) => next.run(req).await,
                    _ => axum::response::IntoResponse::into_response(
                        axum::http::StatusCode::UNAUTHORIZED,
                    ),
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hub = |reference: &str| {
        let cfg = AegisConfig::from_toml_str(
            &format!(
                "[[providers]]\nid = \"echo\"\ntype = \"echo\"\n\n[[mcp_servers]]\nid = \"fx\"\nhttp = {{ url = \"http://127.0.0.1:{port}/mcp\", headers = {{ authorization = \"{reference}\" }} }}\ntimeout_ms = 2000\n"
            ),
            std::iter::empty::<(&str, &str)>(),
        )
        .unwrap();
        async move {
            let registry = aegis::registry();
            mcp::hub_from_config(
                &cfg,
                &registry,
                aegis::guard::GuardChain::default(),
                Arc::new(MemoryPins::new()),
                None,
                Arc::new(aegis_mcp::MemoryApprovals::default()),
            )
            .await
            .unwrap()
        }
    };
    let someone = aegis::Principal::new("tester");
    let right = hub("secret://env/AEGIS_TEST_SECRET_ENV").await;
    let listing = right.list_tools(Some(&someone)).await;
    assert!(
        listing.tools.iter().any(|t| t.name == "fx__echo"),
        "{:?}",
        listing.problems
    );
    let wrong = hub("secret://env/AEGIS_TEST_REVIEWER_KEY").await;
    let listing = wrong.list_tools(Some(&someone)).await;
    assert!(listing.tools.is_empty());
    assert!(
        listing.problems[0].contains("`fx` is unavailable"),
        "{:?}",
        listing.problems
    );
    // A credential written into the config as a literal is refused, with its path.
    let literal = AegisConfig::from_toml_str(
        &format!("[[providers]]\nid = \"echo\"\ntype = \"echo\"\n\n[[mcp_servers]]\nid = \"fx\"\nhttp = {{ url = \"http://127.0.0.1:{port}/mcp\", headers = {{ authorization = \"{KEY}\" }} }}\n"),
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let err = mcp::hub_from_config(
        &literal,
        &aegis::registry(),
        aegis::guard::GuardChain::default(),
        Arc::new(MemoryPins::new()),
        None,
        Arc::new(aegis_mcp::MemoryApprovals::default()),
    )
    .await
    .unwrap_err();
    assert!(
        err.message()
            .contains("mcp_servers[0].http.headers.authorization"),
        "{}",
        err.message()
    );
    assert!(
        !err.message().contains(KEY),
        "the literal is not echoed: {}",
        err.message()
    );
}
