//! [`Upstream`]: one connection to an MCP server (a child process or a streamable-HTTP
//! endpoint), opened on first use and again after it died.

use std::{collections::HashMap, sync::Arc, time::Duration};

use aegis_contracts::{Error, ErrorKind};
use rmcp::{
    RoleClient, ServiceError, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResult, CompleteRequestParams, CompleteResult,
        GetPromptRequestParams, GetPromptResult, JsonObject, Prompt, ReadResourceRequestParams,
        ReadResourceResult, Resource, ResourceTemplate, ServerCapabilities, Tool,
    },
    service::RunningService,
    transport::{
        ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use tokio::sync::Mutex;

use crate::config::ResolvedServer;

type Client = RunningService<RoleClient, ()>;

/// The code of an error the server answered with (a JSON-RPC error).
pub(crate) const UPSTREAM_ERROR: &str = "mcp_upstream_error";
/// Where such an error's details hold the server's own message (untrusted text).
pub(crate) const UPSTREAM_MESSAGE: &str = "upstream_message";
/// Where such an error's details hold its JSON-RPC code (a number: passed on as it is).
pub const UPSTREAM_CODE: &str = "jsonrpc_code";

/// One upstream MCP server. A streamable-HTTP session the server expired (HTTP 404) is
/// re-initialized by the transport and the request that met it retried once (the server
/// did not execute it); a connection that died is reopened by the next request. A tool
/// call that fails any other way is not retried — it may have executed.
pub struct Upstream {
    server: ResolvedServer,
    client: Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("id", &self.server.config.id)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A server, not connected yet.
    pub fn new(server: ResolvedServer) -> Self {
        Self {
            server,
            client: Mutex::new(None),
        }
    }

    /// Its config.
    pub fn config(&self) -> &crate::McpServerConfig {
        &self.server.config
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.server.config.timeout_ms)
    }

    fn id(&self) -> &str {
        &self.server.config.id
    }

    /// The live connection, opened (with the MCP handshake) when there is none or the last
    /// one closed.
    async fn client(&self) -> Result<Arc<Client>, Error> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        *slot = None;
        let client = Arc::new(
            tokio::time::timeout(self.timeout(), self.connect())
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "MCP server `{}` did not finish the handshake within {} ms",
                            self.id(),
                            self.server.config.timeout_ms
                        ),
                    )
                    .with_code("mcp_timeout")
                })??,
        );
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn connect(&self) -> Result<Client, Error> {
        let unavailable = |what: String| {
            Error::new(ErrorKind::Provider, what).with_code("mcp_server_unavailable")
        };
        let config = &self.server.config;
        if let Some(stdio) = &config.stdio {
            let command = tokio::process::Command::new(&stdio.command).configure(|c| {
                // A third-party server gets only what it is configured with (plus PATH and
                // HOME to run at all) — never the gateway's own environment, which holds
                // provider keys and the sources of `secret://env/…` references.
                c.env_clear();
                for keep in ["PATH", "HOME"] {
                    if let Some(v) = std::env::var_os(keep) {
                        c.env(keep, v);
                    }
                }
                c.args(&stdio.args);
                for (name, value) in &self.server.values {
                    c.env(name, value.expose());
                }
            });
            // The child's stderr is its own diagnostics: not ours to interleave with the
            // gateway's logs (it may print what it was given).
            let (transport, _) = TokioChildProcess::builder(command)
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| {
                    unavailable(format!(
                        "cannot start MCP server `{}` (`{}`): {e}",
                        config.id, stdio.command
                    ))
                })?;
            return ().serve(transport).await.map_err(|e| {
                unavailable(format!(
                    "MCP server `{}` failed the handshake: {e}",
                    config.id
                ))
            });
        }
        let Some(h) = &config.http else {
            return Err(Error::config(format!(
                "MCP server `{}` has no transport",
                config.id
            )));
        };
        let mut headers = HashMap::new();
        for (name, value) in &self.server.values {
            let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value.expose()),
            ) else {
                return Err(Error::config(format!(
                    "mcp_servers `{}`: header `{name}` has a value that cannot be sent",
                    config.id
                )));
            };
            headers.insert(n, v);
        }
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(h.url.as_str())
                .custom_headers(headers)
                .max_json_response_size(
                    // Room above the result bound, so an oversized result is refused by
                    // that bound with its own error, not cut off by the transport.
                    config
                        .max_result_bytes
                        .saturating_mul(2)
                        .saturating_add(64 << 10),
                ),
        );
        ().serve(transport).await.map_err(|e| {
            unavailable(format!(
                "MCP server `{}` at {} failed the handshake: {e}",
                config.id, h.url
            ))
        })
    }

    /// Every tool the server lists (all pages).
    pub async fn list_tools(&self) -> Result<Vec<Tool>, Error> {
        self.repeatable("tools/list", |c| async move { c.list_all_tools().await })
            .await
    }

    /// What the server said it offers in its handshake.
    pub async fn capabilities(&self) -> Result<ServerCapabilities, Error> {
        let client = self.client().await?;
        Ok(client
            .peer_info()
            .map(|info| info.capabilities.clone())
            .unwrap_or_default())
    }

    /// Every resource the server lists (all pages).
    pub async fn list_resources(&self) -> Result<Vec<Resource>, Error> {
        self.repeatable(
            "resources/list",
            |c| async move { c.list_all_resources().await },
        )
        .await
    }

    /// Every resource template the server lists (all pages).
    pub async fn list_resource_templates(&self) -> Result<Vec<ResourceTemplate>, Error> {
        self.repeatable("resources/templates/list", |c| async move {
            c.list_all_resource_templates().await
        })
        .await
    }

    /// Reads the resource `uri`.
    pub async fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, Error> {
        let params = ReadResourceRequestParams::new(uri.to_owned());
        self.once("resources/read", |c| async move {
            c.read_resource(params).await
        })
        .await
    }

    /// Every prompt the server lists (all pages).
    pub async fn list_prompts(&self) -> Result<Vec<Prompt>, Error> {
        self.repeatable(
            "prompts/list",
            |c| async move { c.list_all_prompts().await },
        )
        .await
    }

    /// The prompt `name` with `arguments`.
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<GetPromptResult, Error> {
        let mut params = GetPromptRequestParams::new(name.to_owned());
        params.arguments = arguments;
        self.once("prompts/get", |c| async move { c.get_prompt(params).await })
            .await
    }

    /// Completions of a prompt's or resource template's argument.
    pub async fn complete(&self, params: CompleteRequestParams) -> Result<CompleteResult, Error> {
        self.repeatable("completion/complete", move |c| {
            let params = params.clone();
            async move { c.complete(params).await }
        })
        .await
    }

    /// A request made once, within the timeout: not retried, as it may have been approved
    /// to happen once (a read or a prompt a guard held for a reviewer).
    async fn once<T, F, Fut>(&self, method: &str, request: F) -> Result<T, Error>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let client = self.client().await?;
        match tokio::time::timeout(self.timeout(), request(client)).await {
            Err(_) => Err(self.timed_out(method)),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.failed(method, e)),
        }
    }

    /// A request that is safe to repeat (it changes nothing), within the timeout: a
    /// connection found dead is reopened and the request asked again, once.
    async fn repeatable<T, F, Fut>(&self, method: &str, request: F) -> Result<T, Error>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let mut last = None;
        for _ in 0..2 {
            let client = self.client().await?;
            match tokio::time::timeout(self.timeout(), request(client.clone())).await {
                Err(_) => return Err(self.timed_out(method)),
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) if closed(&e) || client.is_closed() => last = Some(e),
                Ok(Err(e)) => return Err(self.failed(method, e)),
            }
        }
        Err(self.failed(method, last.unwrap_or(ServiceError::TransportClosed)))
    }

    /// Calls the server's tool `name`, within the timeout. Not retried: a call that failed
    /// may have executed.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, Error> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = arguments;
        self.once("tools/call", |c| async move { c.call_tool(params).await })
            .await
    }

    fn timed_out(&self, method: &str) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "MCP server `{}` did not answer {method} within {} ms",
                self.id(),
                self.server.config.timeout_ms
            ),
        )
        .with_code("mcp_timeout")
    }

    fn failed(&self, method: &str, e: ServiceError) -> Error {
        match e {
            // The server's own words are untrusted text: kept apart, for the hub to judge
            // before anyone reads them.
            ServiceError::McpError(data) => Error::new(
                ErrorKind::InvalidRequest,
                format!(
                    "MCP server `{}` refused {method} (JSON-RPC error {})",
                    self.id(),
                    data.code.0
                ),
            )
            .with_code(UPSTREAM_ERROR)
            .with_details(
                serde_json::json!({ UPSTREAM_MESSAGE: data.message, UPSTREAM_CODE: data.code.0 }),
            ),
            other => Error::new(
                ErrorKind::Provider,
                format!("MCP server `{}`: {method} failed: {other}", self.id()),
            )
            .with_code("mcp_server_unavailable"),
        }
    }

    /// Closes the connection (a child process is stopped).
    pub async fn close(&self) {
        if let Some(c) = self.client.lock().await.take()
            && let Ok(c) = Arc::try_unwrap(c)
        {
            let _ = c.cancel().await;
        }
    }
}

fn closed(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::TransportClosed | ServiceError::TransportSend(_)
    )
}
