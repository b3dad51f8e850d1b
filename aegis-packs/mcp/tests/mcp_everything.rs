//! `@modelcontextprotocol/server-everything` (the reference server, in Node) governed by the
//! hub, over stdio and over streamable HTTP. Needs `AEGIS_TEST_NODE` (a Node ≥ 22 binary) and
//! `AEGIS_TEST_MCP_EVERYTHING` (its `dist/index.js`); `scripts/test.sh` installs both from
//! npm. Without them the tests say so and pass — except under `CI`, where they fail.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use aegis_contracts::RequestContext;
use aegis_core::guard::GuardChain;
use aegis_mcp::{McpHub, MemoryPins, ResolvedServer, parse_servers};
use serde_json::{Value, json};

fn everything() -> Option<(String, String)> {
    match (
        std::env::var("AEGIS_TEST_NODE"),
        std::env::var("AEGIS_TEST_MCP_EVERYTHING"),
    ) {
        (Ok(node), Ok(index)) => Some((node, index)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("AEGIS_TEST_NODE and AEGIS_TEST_MCP_EVERYTHING must be set under CI")
        }
        _ => {
            eprintln!("skipped: AEGIS_TEST_NODE / AEGIS_TEST_MCP_EVERYTHING not set");
            None
        }
    }
}

fn hub(entry: Value) -> McpHub {
    let servers = parse_servers(&[entry]).unwrap();
    McpHub::new(
        servers.into_iter().map(ResolvedServer::plain).collect(),
        GuardChain::default(),
        Arc::new(MemoryPins::new()),
    )
}

async fn echo_through(hub: &McpHub) {
    let caller =
        RequestContext::default().with_principal(aegis_contracts::Principal::new("tester"));
    let listing = hub.list_tools(caller.principal.as_ref()).await;
    assert!(listing.problems.is_empty(), "{:?}", listing.problems);
    let names: Vec<&str> = listing.tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"everything__echo"), "{names:?}");
    let args = json!({"message": "governed hello"})
        .as_object()
        .unwrap()
        .clone();
    let r = hub
        .call_tool(&caller, "everything__echo", Some(args))
        .await
        .unwrap();
    let text = serde_json::to_string(&r.content).unwrap();
    assert!(text.contains("governed hello"), "{text}");
    hub.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_server_is_governed_over_stdio() {
    let Some((node, index)) = everything() else {
        return;
    };
    let hub = hub(
        json!({"id": "everything", "stdio": {"command": node, "args": [index, "stdio"]}, "timeout_ms": 20000}),
    );
    echo_through(&hub).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_server_is_governed_over_streamable_http() {
    let Some((node, index)) = everything() else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(node)
        .args([index.as_str(), "streamableHttp"])
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "server-everything did not listen on {port}");
    let hub = hub(
        json!({"id": "everything", "http": {"url": format!("http://127.0.0.1:{port}/mcp")}, "timeout_ms": 20000}),
    );
    echo_through(&hub).await;
    let _ = child.kill().await;
}
