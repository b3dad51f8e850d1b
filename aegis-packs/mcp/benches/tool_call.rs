#![allow(missing_docs)]
//! A governed `tools/call` through Aegis against the same call made directly: an MCP client
//! over streamable HTTP on loopback calls the fixture's `echo`, once straight to the fixture,
//! once through `AegisMcpServer` (access check, pinned catalog, the call and its result judged
//! by the secrets and prompt-injection guards, then the upstream call). Results in
//! benches/README.md.

#[allow(dead_code, missing_docs)]
#[path = "../tests/support/fixture.rs"]
mod fixture;

use std::sync::Arc;

use aegis_contracts::{GuardPolicy, RequestContext};
use aegis_core::guard::{GuardChain, GuardEntry};
use aegis_guards::{PromptInjection, PromptInjectionConfig, Secrets, SecretsConfig};
use aegis_mcp::{AegisMcpServer, Caller, McpHub, MemoryPins, ResolvedServer, parse_servers, rmcp};
use criterion::{Criterion, criterion_group, criterion_main};
use rmcp::{
    RoleClient, ServiceExt,
    model::CallToolRequestParams,
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::local::LocalSessionManager,
    },
};

async fn serve<S: rmcp::ServerHandler + Clone>(handler: S, caller: Option<RequestContext>) -> u16 {
    let service: StreamableHttpService<S, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let mut router = axum::Router::new().nest_service("/mcp", service);
    if let Some(c) = caller {
        router = router.layer(axum::Extension(Caller(c)));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    port
}

async fn client(port: u16) -> RunningService<RoleClient, ()> {
    ().serve(StreamableHttpClientTransport::from_uri(format!(
        "http://127.0.0.1:{port}/mcp"
    )))
    .await
    .expect("client")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (direct, governed) = rt.block_on(async {
        let upstream = serve(fixture::Fixture::default(), None).await;
        let servers = parse_servers(&[serde_json::json!({
            "id": "fx", "http": {"url": format!("http://127.0.0.1:{upstream}/mcp")}
        })])
        .expect("config");
        let chain = GuardChain::new(vec![
            GuardEntry::new(
                "secrets",
                Arc::new(Secrets::new(SecretsConfig::default()).expect("secrets")),
                GuardPolicy::default(),
            ),
            GuardEntry::new(
                "injection",
                Arc::new(
                    PromptInjection::new(PromptInjectionConfig::default()).expect("injection"),
                ),
                GuardPolicy::default(),
            ),
        ]);
        let hub = McpHub::new(
            servers.into_iter().map(ResolvedServer::plain).collect(),
            chain,
            Arc::new(MemoryPins::new()),
        );
        let aegis = serve(
            AegisMcpServer::new(hub, None),
            Some(
                RequestContext::default().with_principal(aegis_contracts::Principal::new("bench")),
            ),
        )
        .await;
        (client(upstream).await, client(aegis).await)
    });
    let args = serde_json::json!({"text": "the quarterly numbers are in the shared folder"});
    let args = args.as_object().expect("object").clone();
    let mut group = c.benchmark_group("mcp_tools_call");
    group.bench_function("direct", |b| {
        b.to_async(&rt).iter(|| async {
            let mut p = CallToolRequestParams::new("echo");
            p.arguments = Some(args.clone());
            direct.call_tool(p).await.expect("call")
        })
    });
    group.bench_function("through_aegis_governed", |b| {
        b.to_async(&rt).iter(|| async {
            let mut p = CallToolRequestParams::new("fx__echo");
            p.arguments = Some(args.clone());
            governed.call_tool(p).await.expect("call")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
