//! [`AegisMcpServer`]: Aegis as an MCP server — the governed chat as a tool, and every
//! governed upstream tool re-exported under its server's prefix.
//!
//! Over streamable HTTP the host authenticates each request and puts the caller's
//! [`Caller`] into the request's extensions (the gateway does this at `/mcp` with the
//! virtual keys); over stdio the caller is fixed when the server starts. A refusal — a
//! guard, an access rule, a quarantined server, a failing upstream — is a tool result with
//! `isError: true` and the reason, answered with HTTP 200: a protocol error only for a
//! request that cannot be routed at all (an unknown tool), as the spec asks, or when the
//! upstream itself answered with one (its code passed on, its message judged) — also with
//! HTTP 200.

use std::sync::{Arc, RwLock};

use aegis_contracts::{ChatRequest, Error, ErrorKind, Message, RequestContext};
use aegis_core::Pipeline;
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams,
        CompleteResult, ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation,
        JsonObject, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
        ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
        ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext as McpContext,
};
use serde_json::{Value, json};

use crate::McpHub;

/// The name of the governed-chat tool.
pub const CHAT_TOOL: &str = "chat";

/// Who is calling, put into an HTTP request's extensions by the host before the request
/// reaches the MCP service.
#[derive(Debug, Clone)]
pub struct Caller(pub RequestContext);

/// Aegis as an MCP server. Cheap to clone: one per session shares the hub and pipeline,
/// and [`replace`](Self::replace) swaps them for every session at once (a config reload).
#[derive(Clone)]
pub struct AegisMcpServer {
    served: Arc<RwLock<Served>>,
    fixed: Option<Arc<RequestContext>>,
}

/// What the server serves: the hub's tools, and the governed chat.
#[derive(Clone)]
struct Served {
    hub: McpHub,
    chat: Option<Pipeline>,
}

impl std::fmt::Debug for AegisMcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let served = self.served();
        f.debug_struct("AegisMcpServer")
            .field("hub", &served.hub)
            .field("chat", &served.chat.is_some())
            .finish_non_exhaustive()
    }
}

impl AegisMcpServer {
    /// A server of `hub`'s tools, with the governed chat of `chat` when given.
    pub fn new(hub: McpHub, chat: Option<Pipeline>) -> Self {
        Self {
            served: Arc::new(RwLock::new(Served { hub, chat })),
            fixed: None,
        }
    }

    /// Serves `hub` and `chat` from now on, in every session (each request works with what
    /// was served when it began); the hub served until now, for the host to close once its
    /// requests are done.
    pub fn replace(&self, hub: McpHub, chat: Option<Pipeline>) -> McpHub {
        let mut served = self.served.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *served, Served { hub, chat }).hub
    }

    /// The hub served now.
    pub fn hub(&self) -> McpHub {
        self.served().hub
    }

    fn served(&self) -> Served {
        self.served
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every request is made by `caller` (stdio, where there is no request to carry one).
    pub fn with_caller(mut self, caller: RequestContext) -> Self {
        self.fixed = Some(Arc::new(caller));
        self
    }

    /// Serves MCP over this process's stdin and stdout until the client disconnects (for
    /// clients that launch their servers; stdout then carries only the protocol).
    pub async fn serve_stdio(self) -> Result<(), Error> {
        use rmcp::ServiceExt as _;
        let running = self.serve(rmcp::transport::stdio()).await.map_err(|e| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("MCP handshake failed: {e}"),
            )
        })?;
        running
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| Error::new(ErrorKind::Internal, format!("the MCP session failed: {e}")))
    }

    fn caller(&self, ctx: &McpContext<RoleServer>) -> Result<RequestContext, ErrorData> {
        if let Some(Caller(c)) = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
        {
            return Ok(c.clone());
        }
        match &self.fixed {
            Some(c) => Ok((**c).clone()),
            None => Err(ErrorData::invalid_request(
                "the caller is not authenticated",
                None,
            )),
        }
    }

    /// The caller, with the approval its request names, if any: a request repeated after
    /// a reviewer approved it names its approval in `_meta` (rmcp hands the request's
    /// `_meta` over in the context; a host may also set it on the params).
    fn claiming(
        &self,
        context: &McpContext<RoleServer>,
        meta: Option<&rmcp::model::RequestMetaObject>,
    ) -> Result<RequestContext, ErrorData> {
        let mut caller = self.caller(context)?;
        let claimed = meta
            .and_then(|m| m.0.0.get(crate::APPROVAL_META))
            .or_else(|| context.meta.0.0.get(crate::APPROVAL_META))
            .and_then(Value::as_str);
        if let Some(id) = claimed {
            caller
                .labels
                .insert(crate::APPROVAL_META.to_owned(), id.to_owned());
        }
        Ok(caller)
    }

    fn chat_tool() -> Tool {
        let schema = json!({
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "description": "What to ask."},
                "system": {"type": "string", "description": "Instructions for the model."},
                "model": {"type": "string", "description": "The model or alias (default: the pipeline's default model, or its only provider)."}
            },
            "required": ["prompt"],
        });
        let Value::Object(schema) = schema else {
            unreachable!("a JSON object literal")
        };
        Tool::new(
            CHAT_TOOL,
            "Ask a model through the Aegis governed pipeline: the prompt and the answer pass its guards, budgets and audit.",
            Arc::new(schema),
        )
    }

    async fn chat(&self, caller: RequestContext, args: Option<JsonObject>) -> CallToolResult {
        let Some(pipeline) = self.served().chat else {
            return refusal(&Error::new(
                ErrorKind::NotFound,
                "no chat pipeline is served",
            ));
        };
        let args = args.unwrap_or_default();
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
        let Some(prompt) = text("prompt") else {
            return refusal(&Error::invalid_request("`prompt` (a string) is required"));
        };
        let mut messages = Vec::new();
        if let Some(system) = text("system") {
            messages.push(Message::system(system));
        }
        messages.push(Message::user(prompt));
        // The model asked for; else the pipeline's default; else its only provider.
        let providers = pipeline.provider_ids();
        let model = text("model")
            .or_else(|| pipeline.default_model().map(str::to_owned))
            .or_else(|| (providers.len() == 1).then(|| providers[0].to_owned()));
        let Some(model) = model else {
            return refusal(&Error::invalid_request(
                "`model` is required: this pipeline has no default model",
            ));
        };
        let mut req = ChatRequest::new(model, messages);
        req.ctx = caller;
        let answer = async {
            let response = pipeline.chat(req).await?;
            let run_id = response.meta.run_id.clone();
            let done = response.collect().await?;
            let text = done
                .message()
                .map(|m| m.text().into_owned())
                .unwrap_or_default();
            Ok::<_, Error>((text, run_id))
        };
        match answer.await {
            Ok((text, run_id)) => {
                let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
                r.meta = run_id.map(|id| {
                    let mut m = JsonObject::new();
                    m.insert("aegis/run_id".into(), Value::String(id));
                    rmcp::model::MetaObject(m)
                });
                r
            }
            Err(e) => refusal(&e),
        }
    }
}

/// A refusal the caller reads: `isError: true`, `{code}: {message}`.
fn refusal(e: &Error) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "{}: {}",
        e.code(),
        e.message()
    ))])
}

/// A refusal of a request that has no error result to carry it (resources, prompts): a
/// JSON-RPC error (answered with HTTP 200) with the code and, for an approval, its id.
fn protocol_refusal(e: &Error) -> ErrorData {
    let mut data = serde_json::Map::new();
    data.insert("code".into(), Value::String(e.code().to_owned()));
    if let Some(Value::Object(details)) = e.details() {
        data.extend(details.clone());
    }
    let message = format!("{}: {}", e.code(), e.message());
    match upstream_code(e) {
        Some(code) => ErrorData::new(
            rmcp::model::ErrorCode(code),
            message,
            Some(Value::Object(data)),
        ),
        None => ErrorData::invalid_request(message, Some(Value::Object(data))),
    }
}

/// The JSON-RPC code of an error an upstream answered with.
fn upstream_code(e: &Error) -> Option<i32> {
    e.details()?
        .get(crate::upstream::UPSTREAM_CODE)?
        .as_i64()
        .and_then(|c| i32::try_from(c).ok())
}

impl ServerHandler for AegisMcpServer {
    fn get_info(&self) -> ServerConfig {
        // Upstream resources and prompts are re-exported when there are upstreams at all.
        let capabilities = match self.served().hub.is_empty() {
            true => ServerCapabilities::builder().enable_tools().build(),
            false => ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .enable_completions()
                .build(),
        };
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("aegis", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Aegis: every tool call and result here passes the operator's guard chain and access rules.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: McpContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&context)?;
        let served = self.served();
        let listing = served.hub.list_tools(caller.principal.as_ref()).await;
        let mut tools = Vec::with_capacity(listing.tools.len() + 1);
        if served.chat.is_some() {
            tools.push(Self::chat_tool());
        }
        tools.extend(listing.tools);
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.claiming(&context, request.meta.as_ref())?;
        let served = self.served();
        if request.name == CHAT_TOOL && served.chat.is_some() {
            return Ok(self.chat(caller, request.arguments).await.into());
        }
        match served
            .hub
            .call_tool(&caller, &request.name, request.arguments)
            .await
        {
            Ok(result) => Ok(result.into()),
            Err(e) if e.code() == "unknown_tool" => {
                Err(ErrorData::invalid_params(e.message().to_owned(), None))
            }
            // The upstream answered with a JSON-RPC error: passed on as one (its code, its
            // message judged), answered with HTTP 200 — not turned into a tool result.
            Err(e) if upstream_code(&e).is_some() => Err(protocol_refusal(&e)),
            Err(e) => Ok(refusal(&e).into()),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: McpContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = self.caller(&context)?;
        Ok(ListResourcesResult::with_all_items(
            self.hub().list_resources(caller.principal.as_ref()).await,
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: McpContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let caller = self.caller(&context)?;
        Ok(ListResourceTemplatesResult::with_all_items(
            self.hub()
                .list_resource_templates(caller.principal.as_ref())
                .await,
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = self.claiming(&context, request.meta.as_ref())?;
        match self.hub().read_resource(&caller, &request.uri).await {
            Ok(read) => Ok(read.into()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Err(ErrorData::resource_not_found(e.message().to_owned(), None))
            }
            Err(e) => Err(protocol_refusal(&e)),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: McpContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let caller = self.caller(&context)?;
        Ok(ListPromptsResult::with_all_items(
            self.hub().list_prompts(caller.principal.as_ref()).await,
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let caller = self.claiming(&context, request.meta.as_ref())?;
        match self
            .hub()
            .get_prompt(&caller, &request.name, request.arguments)
            .await
        {
            Ok(prompt) => Ok(prompt.into()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Err(ErrorData::invalid_params(e.message().to_owned(), None))
            }
            Err(e) => Err(protocol_refusal(&e)),
        }
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let caller = self.caller(&context)?;
        match self.hub().complete(&caller, request).await {
            Ok(done) => Ok(done),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Err(ErrorData::invalid_params(e.message().to_owned(), None))
            }
            Err(e) => Err(protocol_refusal(&e)),
        }
    }
}
