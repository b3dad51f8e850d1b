//! [`ToolLoop`]: a governed chat in which the model uses the MCP tools its caller may use.
//!
//! The caller's tools (from the [`McpHub`], filtered by its access rules) are offered to the
//! model; when the model answers with calls to them, each is executed through the hub —
//! judged as a tool call carrying its server's id, executed once, its result judged as
//! untrusted tool output — and the results go back to the model, until it answers without
//! calling a hub tool or `max_steps` model calls were made. Every model call is its own
//! pipeline run (judged, budgeted and audited like any other), so the audit log shows each
//! step; the final answer carries the last run's id.

use aegis_contracts::{
    ChatRequest, ChatResponse, Error, ErrorKind, Message, ResponseMeta, ToolCall, ToolSpec,
};
use aegis_core::Pipeline;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::McpHub;

/// Model calls one chat may make by default (each answered tool round is one).
pub const DEFAULT_MAX_STEPS: usize = 8;

/// A pipeline whose model may call the caller's MCP tools. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ToolLoop {
    hub: McpHub,
    pipeline: Pipeline,
    max_steps: usize,
}

impl ToolLoop {
    /// The loop over `pipeline`, with `hub`'s tools, at most [`DEFAULT_MAX_STEPS`] model
    /// calls per chat.
    pub fn new(hub: McpHub, pipeline: Pipeline) -> Self {
        Self {
            hub,
            pipeline,
            max_steps: DEFAULT_MAX_STEPS,
        }
    }

    /// At most `n` model calls per chat (at least 1).
    pub fn max_steps(mut self, n: usize) -> Self {
        self.max_steps = n.max(1);
        self
    }

    /// Runs `req` with the caller's MCP tools offered to the model. The answer is complete
    /// (a tool round cannot be streamed to the caller before it is executed). A call whose
    /// guard asks for a human decision ends the chat with
    /// [`ApprovalRequired`](ErrorKind::ApprovalRequired) — it does not execute; a call the
    /// hub refuses otherwise (not allowed, blocked, failed) is reported to the model as
    /// that tool's error, so it can answer without it.
    pub async fn chat(&self, mut req: ChatRequest) -> Result<ChatResponse, Error> {
        if req.ctx.principal.is_none() {
            req.ctx.principal = self.pipeline.authenticate(&req.ctx).await?;
        }
        let listing = self.hub.list_tools(req.ctx.principal.as_ref()).await;
        let names: Vec<String> = listing.tools.iter().map(|t| t.name.to_string()).collect();
        if let Some(clash) = req.tools.iter().find(|t| names.contains(&t.function.name)) {
            return Err(Error::invalid_request(format!(
                "tool `{}` is both the request's and an MCP server's",
                clash.function.name
            ))
            .with_code("tool_name_conflict"));
        }
        req.tools.extend(listing.tools.iter().map(|t| {
            ToolSpec::function(
                t.name.to_string(),
                t.description.as_deref().unwrap_or_default(),
                Value::Object((*t.input_schema).clone()),
            )
        }));
        req.stream = false;
        let ctx = req.ctx.clone();
        for _ in 0..self.max_steps {
            let mut step = req.clone();
            step.ctx = ctx.clone();
            let response = self.pipeline.chat(step).await?;
            let meta = response.meta.clone();
            let completion = response.collect().await?;
            let Some(message) = completion.message().cloned() else {
                return Ok(ChatResponse::complete(meta, completion));
            };
            let calls: Vec<ToolCall> = message.tool_calls.clone();
            // Answered, or calling a tool of the caller's own: the caller takes it from here.
            if calls.is_empty() || calls.iter().any(|c| !names.contains(&c.function.name)) {
                return Ok(ChatResponse::complete(meta, completion));
            }
            req.messages.push(message);
            for call in calls {
                let result = self.execute(&ctx, &meta, &call).await?;
                req.messages.push(Message::tool(call.id.clone(), result));
            }
        }
        Err(Error::new(
            ErrorKind::InvalidRequest,
            format!(
                "the model was still calling tools after {} steps",
                self.max_steps
            ),
        )
        .with_code("tool_steps_exceeded"))
    }

    /// One call through the hub; what the model reads back.
    async fn execute(
        &self,
        ctx: &aegis_contracts::RequestContext,
        meta: &ResponseMeta,
        call: &ToolCall,
    ) -> Result<String, Error> {
        let arguments = match call.arguments_json() {
            Ok(Value::Object(o)) => Some(o),
            Ok(_) => return Ok("error: the arguments must be a JSON object".to_owned()),
            Err(e) => return Ok(format!("error: {}", e.message())),
        };
        let mut ctx = ctx.clone();
        ctx.run_id = meta.run_id.clone();
        match self
            .hub
            .call_tool(&ctx, &call.function.name, arguments)
            .await
        {
            Ok(result) => Ok(text_of(&result)),
            Err(e) if e.kind() == ErrorKind::ApprovalRequired => Err(e),
            Err(e) => Ok(format!("error: {}: {}", e.code(), e.message())),
        }
    }
}

/// A result as the model reads it: its texts, embedded text resources and structured
/// content; other content named by type.
fn text_of(result: &CallToolResult) -> String {
    let mut parts = Vec::new();
    if result.is_error == Some(true) {
        parts.push("error:".to_owned());
    }
    for block in &result.content {
        parts.push(match block {
            ContentBlock::Text(t) => t.text.clone(),
            ContentBlock::Resource(r) => match &r.resource {
                rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
                rmcp::model::ResourceContents::BlobResourceContents { uri, .. } => {
                    format!("[binary resource {uri}]")
                }
                _ => "[resource]".to_owned(),
            },
            ContentBlock::Image(_) => "[image]".to_owned(),
            ContentBlock::Audio(_) => "[audio]".to_owned(),
            ContentBlock::ResourceLink(_) => "[resource link]".to_owned(),
            _ => "[content]".to_owned(),
        });
    }
    if let Some(s) = &result.structured_content {
        parts.push(s.to_string());
    }
    parts.join("\n")
}
