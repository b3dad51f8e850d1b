//! The test fixture MCP server as a program: `mcp_fixture stdio`, or
//! `mcp_fixture http PORT` (streamable HTTP at `http://127.0.0.1:PORT/mcp`). Used by the
//! gateway's MCP tests and the conformance run (`scripts/mcp-conformance.sh`).

#[allow(dead_code, missing_docs)]
#[path = "../tests/support/fixture.rs"]
mod fixture;

use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::local::LocalSessionManager,
    },
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let server = fixture::Fixture::default();
    match args.first().map(String::as_str) {
        Some("stdio") => {
            let running = server.serve(rmcp::transport::stdio()).await?;
            running.waiting().await?;
        }
        Some("http") => {
            let port: u16 = args.get(1).ok_or("a port is required")?.parse()?;
            let service: StreamableHttpService<fixture::Fixture, LocalSessionManager> =
                StreamableHttpService::new(
                    move || Ok(server.clone()),
                    Default::default(),
                    StreamableHttpServerConfig::default(),
                );
            let router = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            axum::serve(listener, router).await?;
        }
        _ => return Err("usage: mcp_fixture stdio | mcp_fixture http PORT".into()),
    }
    Ok(())
}
