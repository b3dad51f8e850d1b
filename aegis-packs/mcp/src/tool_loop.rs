//! [`ToolLoop`]: a governed chat in which the model uses the MCP tools its caller may use.
//!
//! The caller's tools (from the [`McpHub`], filtered by its access rules) are offered to the
//! model; when the model answers with calls to them, each is executed through the hub —
//! judged as a tool call carrying its server's id, executed once, its result judged as
//! untrusted tool output — and the results go back to the model, until it answers without
//! calling a hub tool or `max_steps` model calls were made. Every model call is its own
//! pipeline run (judged, budgeted and audited like any other), so the audit log shows each
//! step; the final answer carries the last run's id.

use aegis_contracts::{ChatRequest, ChatResponse, Error, ErrorKind, Message, ToolCall, ToolSpec};
use aegis_core::Pipeline;
use rmcp::model::{CallToolResult, ContentBlock};
use serde::{Deserialize, Serialize};
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
    /// guard asks for a human decision holds the chat: it does not execute, the chat's
    /// state is kept with the approval, and the answer is
    /// [`ApprovalRequired`](ErrorKind::ApprovalRequired) naming it — once a reviewer decided,
    /// [`resume`](Self::resume) goes on from there. A call the hub refuses otherwise (not
    /// allowed, blocked, failed) is reported to the model as that tool's error, so it can
    /// answer without it.
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
        let held = Held {
            request: req,
            names,
            calls: Vec::new(),
            steps_left: self.max_steps,
            run_id: None,
            labels: Default::default(),
        };
        self.run(held, None).await
    }

    /// Goes on with the chat held on the tool call of `approval_id`, for the caller of
    /// `ctx` (the one who asked): the held call is made with the reviewer's decision (an
    /// approved call executes, once; a rejected one is reported to the model as refused),
    /// then the other calls of that round, then the model is asked again — not asked the
    /// same question twice. A held chat resumes once.
    pub async fn resume(
        &self,
        mut ctx: aegis_contracts::RequestContext,
        approval_id: &str,
    ) -> Result<ChatResponse, Error> {
        if ctx.principal.is_none() {
            ctx.principal = self.pipeline.authenticate(&ctx).await?;
        }
        let Some(state) = self
            .hub
            .take_held_chat(approval_id, ctx.principal.as_ref())
            .await?
        else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no chat is held on approval `{approval_id}` (or it was resumed already)"),
            )
            .with_code("no_held_chat"));
        };
        let mut held: Held = serde_json::from_value(state).map_err(|e| {
            Error::storage(format!(
                "the chat held on `{approval_id}` cannot be read: {e}"
            ))
        })?;
        held.request.ctx = ctx;
        self.run(held, Some(approval_id)).await
    }

    /// The loop, from `held`: its pending calls first (the first claiming `claim`), then
    /// model calls while steps are left.
    async fn run(&self, mut held: Held, mut claim: Option<&str>) -> Result<ChatResponse, Error> {
        let mut ctx = held.request.ctx.clone();
        // The hub judges each call to its tools (with the server's identity, holding it for
        // a reviewer if a guard asks): the pipeline does not judge them a second time.
        ctx.extensions
            .insert(aegis_contracts::HostJudgedTools(held.names.clone()));
        loop {
            while let Some(call) = held.calls.first().cloned() {
                // Judged with what the run that asked for the call knew of it (its labels:
                // a classification, the caller's, the host's).
                let mut call_ctx = ctx.clone();
                call_ctx.run_id = held.run_id.clone();
                call_ctx.labels.extend(held.labels.clone());
                if let Some(id) = claim.take() {
                    call_ctx
                        .labels
                        .insert(crate::APPROVAL_META.to_owned(), id.to_owned());
                }
                match self.execute(&call_ctx, &call).await {
                    Ok(result) => {
                        held.request
                            .messages
                            .push(Message::tool(call.id.clone(), result));
                        held.calls.remove(0);
                    }
                    Err(e) => return Err(self.hold(held, e).await),
                }
            }
            if held.steps_left == 0 {
                return Err(Error::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "the model was still calling tools after {} steps",
                        self.max_steps
                    ),
                )
                .with_code("tool_steps_exceeded"));
            }
            held.steps_left -= 1;
            let mut step = held.request.clone();
            step.ctx = ctx.clone();
            let response = self.pipeline.chat(step).await?;
            let meta = response.meta.clone();
            let completion = response.collect().await?;
            let Some(message) = completion.message().cloned() else {
                return Ok(ChatResponse::complete(meta, completion));
            };
            // Answered, or calling a tool of the caller's own: the caller takes it from here
            // — with any call to a hub tool judged as the pipeline would have (it left them
            // to the hub).
            if message.tool_calls.is_empty()
                || message
                    .tool_calls
                    .iter()
                    .any(|c| !held.names.contains(&c.function.name))
            {
                let completion = self
                    .judge_hub_calls(completion, &held.names, &meta, &ctx)
                    .await?;
                return Ok(ChatResponse::complete(meta, completion));
            }
            held.calls = message.tool_calls.clone();
            held.run_id = meta.run_id.clone();
            held.labels = meta.labels.clone();
            held.request.messages.push(message);
        }
    }

    /// `completion` with its calls to hub tools judged as tool calls (the pipeline left
    /// them to the hub, which will not make them: they go to the caller).
    async fn judge_hub_calls(
        &self,
        mut completion: aegis_contracts::Completion,
        names: &[String],
        meta: &aegis_contracts::ResponseMeta,
        caller: &aegis_contracts::RequestContext,
    ) -> Result<aegis_contracts::Completion, Error> {
        let mut ctx = caller.clone();
        ctx.run_id = meta.run_id.clone();
        ctx.labels.extend(meta.labels.clone());
        for choice in &mut completion.choices {
            for call in &mut choice.message.tool_calls {
                if !names.contains(&call.function.name) {
                    continue;
                }
                let subject = aegis_contracts::GuardSubject::ToolCall {
                    call: call.clone(),
                    server: None,
                };
                let judged = self.pipeline.chain().check(subject, &ctx, &[]).await;
                if let aegis_contracts::GuardSubject::ToolCall { call: c, .. } =
                    judged.into_result()?
                {
                    *call = c;
                }
            }
        }
        Ok(completion)
    }

    /// `error` of a held call, the chat's state kept with its approval when a reviewer is
    /// asked, so [`resume`](Self::resume) can go on. What is kept is what the model saw:
    /// the conversation as the input guards left it (masked, redacted), not as sent.
    async fn hold(&self, mut held: Held, error: Error) -> Error {
        let Some(id) = error
            .details()
            .and_then(|d| d.get("approval_id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return error;
        };
        let mut ctx = held.request.ctx.clone();
        ctx.labels.extend(held.labels.clone());
        let judged = self
            .pipeline
            .chain()
            .judge_request(&mut held.request, &ctx, None)
            .await;
        if matches!(
            judged.decision,
            aegis_core::guard::ChainDecision::Blocked(_)
        ) {
            return error;
        }
        let state = match serde_json::to_value(&held) {
            Ok(v) => v,
            Err(e) => return Error::internal(format!("a held chat: {e}")),
        };
        match self.hub.hold_chat(&id, state).await {
            Ok(()) => {}
            // Another chat made the same call and waits on the same approval: that one
            // resumes; this one is not kept.
            Err(e) if e.code() == "already_held" => {
                let message = format!(
                    "{}; {}: this chat is not kept",
                    error.message(),
                    e.message()
                );
                return Error::new(error.kind(), message)
                    .with_code(error.code().to_owned())
                    .with_details(serde_json::json!({ "approval_id": id, "held": false }));
            }
            Err(e) => return e,
        }
        let message = format!(
            "{}; once decided, the chat goes on with POST /v1/mcp/approvals/{id}/resume",
            error.message()
        );
        Error::new(error.kind(), message)
            .with_code(error.code().to_owned())
            .with_details(serde_json::json!({ "approval_id": id, "held": true }))
    }

    /// One call through the hub; what the model reads back. Only a call waiting for a
    /// reviewer is an error: every other refusal is the tool's error, for the model.
    async fn execute(
        &self,
        ctx: &aegis_contracts::RequestContext,
        call: &ToolCall,
    ) -> Result<String, Error> {
        let arguments = match call.arguments_json() {
            Ok(Value::Object(o)) => Some(o),
            Ok(_) => return Ok("error: the arguments must be a JSON object".to_owned()),
            Err(e) => return Ok(format!("error: {}", e.message())),
        };
        match self
            .hub
            .call_tool(ctx, &call.function.name, arguments)
            .await
        {
            Ok(result) => Ok(text_of(&result)),
            Err(e) if e.kind() == ErrorKind::ApprovalRequired => Err(e),
            Err(e) => Ok(format!("error: {}: {}", e.code(), e.message())),
        }
    }
}

/// What a held chat needs to go on without asking the model again.
#[derive(Serialize, Deserialize)]
struct Held {
    /// The conversation so far: the model's message with the calls, and the results of
    /// the calls already made.
    request: ChatRequest,
    /// The hub's tools offered to the model.
    names: Vec<String>,
    /// The calls of that message not made yet, the held one first.
    calls: Vec<ToolCall>,
    /// Model calls left.
    steps_left: usize,
    /// The run that asked for the calls.
    run_id: Option<String>,
    /// That run's labels, which the calls are judged with.
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
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
