//! Judging whole requests and completions: every stage a chat exchange contains.

use aegis_contracts::{
    ChatRequest, Completion, Content, Decision, Document, Error, GuardSubject, OnBlocked,
    Provenance, RequestContext, Role, Stage, ToolSpec, Verdict,
};

use serde_json::Value;

use super::chain::{ChainDecision, GuardChain, approval_error, blocked_error};
use super::waiver::{Waiver, digest};

/// The combined result of judging every subject of a request or a completion.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// Allowed (possibly sanitized in place), blocked, or needing approval.
    pub decision: ChainDecision,
    /// Every verdict, in order, with whether it was enforced.
    pub verdicts: Vec<(Verdict, bool)>,
}

impl Judgement {
    fn allowed() -> Self {
        Self {
            decision: ChainDecision::Allowed,
            verdicts: Vec::new(),
        }
    }

    /// The ids of the guards that judged, in chain order of their first verdict, each once:
    /// what `ResponseMeta::guards` and the audit record list, everywhere.
    pub fn guard_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for (v, _) in &self.verdicts {
            if !ids.contains(&v.guard) {
                ids.push(v.guard.clone());
            }
        }
        ids
    }

    /// `Ok` when allowed; the block or the approval request as the boundary error.
    pub fn into_result(self) -> Result<(), Error> {
        match self.decision {
            ChainDecision::Allowed => Ok(()),
            ChainDecision::Blocked(v) => Err(blocked_error(&v)),
            ChainDecision::NeedsApproval(v) => Err(approval_error(&v)),
        }
    }

    fn absorb(&mut self, decision: ChainDecision, verdicts: Vec<(Verdict, bool)>) -> bool {
        self.verdicts.extend(verdicts);
        let stop = !matches!(decision, ChainDecision::Allowed);
        self.decision = decision;
        stop
    }
}

impl GuardChain {
    /// Judges retrieved `documents` — untrusted content on its way into a prompt — each as
    /// [`GuardSubject::Retrieved`] (origin `retrieval`): those allowed (sanitized in place
    /// when a guard sanitized them) and a [`Provenance`] for every one. A blocked (or
    /// approval-needing) document is dropped and recorded, or — with
    /// [`OnBlocked::Refuse`] — refuses the whole request with the guard's error. The one
    /// routine for documents, used by the lifecycle and by embedding hosts alike.
    pub async fn judge_documents(
        &self,
        documents: Vec<Document>,
        ctx: &RequestContext,
        on_blocked: OnBlocked,
    ) -> Result<(Vec<Document>, Vec<Provenance>), Error> {
        let mut passed = Vec::with_capacity(documents.len());
        let mut provenance = Vec::with_capacity(documents.len());
        for document in documents {
            let mut record = Provenance::of(&document);
            let outcome = self
                .check(GuardSubject::Retrieved { document }, ctx, &[])
                .await;
            let sanitized = outcome.sanitized();
            match (outcome.decision, outcome.subject) {
                (ChainDecision::Allowed, GuardSubject::Retrieved { document }) => {
                    if sanitized {
                        "sanitized".clone_into(&mut record.verdict);
                    }
                    passed.push(document);
                }
                (ChainDecision::Allowed, _) => {
                    return Err(Error::internal("the chain changed a document's kind"));
                }
                (ChainDecision::Blocked(v) | ChainDecision::NeedsApproval(v), _) => {
                    if on_blocked == OnBlocked::Refuse {
                        return Err(blocked_error(&v));
                    }
                    record.verdict = if v.is_block() {
                        "blocked"
                    } else {
                        "needs_approval"
                    }
                    .into();
                    if let Decision::Block { code, .. } = &v.decision {
                        record.code = Some(code.clone());
                    }
                    record.guard = Some(v.guard);
                }
            }
            provenance.push(record);
        }
        Ok((passed, provenance))
    }

    /// Judges a request in place (a `waiver` lets through the one approval a human granted,
    /// when the request is the one approved: [`request_digest`]): tool definitions and a `response_format` JSON schema (as
    /// a tool definition), then tool results (tool messages), then the prompt messages (tool
    /// messages included). Sanitized text is written back into
    /// `req`.
    pub async fn judge_request(
        &self,
        req: &mut ChatRequest,
        ctx: &RequestContext,
        waiver: Option<&Waiver>,
    ) -> Judgement {
        let digest = waiver.map(|_| request_digest(req));
        let approved = waived(waiver, digest.as_deref());
        let approved = approved.as_slice();
        let mut out = Judgement::allowed();
        if !self.is_empty_for(Stage::ToolDefinition) {
            for tool in &mut req.tools {
                let subject = GuardSubject::ToolDefinition { tool: tool.clone() };
                let o = self.check(subject, ctx, approved).await;
                if let GuardSubject::ToolDefinition { tool: t } = o.subject {
                    *tool = t;
                }
                if out.absorb(o.decision, o.verdicts) {
                    return out;
                }
            }
            // A structured-output schema is read by the model like a tool's: judged whole.
            if let Some(schema) = req
                .response_format
                .as_mut()
                .and_then(|f| f.get_mut("json_schema"))
                .filter(|s| s.is_object())
            {
                let text = |k: &str| schema.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                let mut tool = ToolSpec::function(
                    text("name").unwrap_or_default(),
                    String::new(),
                    Value::Null,
                );
                tool.function.description = text("description");
                tool.function.parameters = schema.get("schema").cloned();
                let o = self
                    .check(GuardSubject::ToolDefinition { tool }, ctx, approved)
                    .await;
                if o.sanitized()
                    && let GuardSubject::ToolDefinition { tool } = &o.subject
                {
                    schema["name"] = tool.function.name.clone().into();
                    if let Some(d) = &tool.function.description {
                        schema["description"] = d.clone().into();
                    }
                    if let Some(p) = &tool.function.parameters {
                        schema["schema"] = p.clone();
                    }
                }
                if out.absorb(o.decision, o.verdicts) {
                    return out;
                }
            }
        }
        if !self.is_empty_for(Stage::ToolResult) {
            for m in req.messages.iter_mut().filter(|m| m.role == Role::Tool) {
                let subject = GuardSubject::ToolResult {
                    call_id: m.tool_call_id.clone().unwrap_or_default(),
                    name: m.name.clone().unwrap_or_default(),
                    content: m.text().into_owned(),
                    server: None,
                };
                let o = self.check(subject, ctx, approved).await;
                if o.sanitized()
                    && let GuardSubject::ToolResult { content, .. } = &o.subject
                {
                    m.content = Some(Content::Text(content.clone()));
                }
                if out.absorb(o.decision, o.verdicts) {
                    return out;
                }
            }
        }
        if !self.is_empty_for(Stage::Input) {
            // Tool messages stay part of the prompt: a guard that judges only the input
            // stage must see them too (a guard that judges both sees them twice — the price
            // of never letting a tool message past an input-only guard).
            let subject = GuardSubject::Input {
                messages: std::mem::take(&mut req.messages),
            };
            let o = self.check(subject, ctx, approved).await;
            if let GuardSubject::Input { messages } = o.subject {
                req.messages = messages;
            }
            out.absorb(o.decision, o.verdicts);
        }
        out
    }

    /// The ids of the guards that judge a streamed answer (output and tool-call stages), in
    /// chain order: what a stream's `ResponseMeta::guards` adds to its input guards.
    pub fn stream_guard_ids(&self) -> Vec<String> {
        self.entries()
            .iter()
            .filter(|e| {
                e.capabilities().applies_to(Stage::Output)
                    || e.capabilities().applies_to(Stage::ToolCall)
            })
            .map(|e| e.id().to_owned())
            .collect()
    }

    /// Judges a complete answer in place (a `waiver` as for
    /// [`judge_request`](Self::judge_request), on [`completion_digest`]): the message (text and tool-call arguments) as
    /// output, then each tool call on its own.
    pub async fn judge_completion(
        &self,
        completion: &mut Completion,
        ctx: &RequestContext,
        waiver: Option<&Waiver>,
    ) -> Judgement {
        let digest = waiver.map(|_| completion_digest(completion));
        let approved = waived(waiver, digest.as_deref());
        let approved = approved.as_slice();
        let mut out = Judgement::allowed();
        for choice in &mut completion.choices {
            if !self.is_empty_for(Stage::Output) {
                let subject = GuardSubject::Output {
                    message: std::mem::take(&mut choice.message),
                };
                let o = self.check(subject, ctx, approved).await;
                if let GuardSubject::Output { message } = o.subject {
                    choice.message = message;
                }
                if out.absorb(o.decision, o.verdicts) {
                    return out;
                }
            }
            if !self.is_empty_for(Stage::ToolCall) {
                let host = ctx.extensions.get::<aegis_contracts::HostJudgedTools>();
                for call in &mut choice.message.tool_calls {
                    if host.is_some_and(|h| h.judges(&call.function.name)) {
                        continue;
                    }
                    let o = self
                        .check(
                            GuardSubject::ToolCall {
                                call: call.clone(),
                                server: None,
                            },
                            ctx,
                            approved,
                        )
                        .await;
                    if let GuardSubject::ToolCall { call: c, .. } = o.subject {
                        *call = c;
                    }
                    if out.absorb(o.decision, o.verdicts) {
                        return out;
                    }
                }
            }
        }
        out
    }
}

/// The digest of what [`GuardChain::judge_request`] judges: a waiver granted on it applies
/// only while the request is unchanged.
pub fn request_digest(req: &ChatRequest) -> String {
    digest(&(&req.messages, &req.tools, &req.response_format))
}

/// The digest of what [`GuardChain::judge_completion`] judges.
pub fn completion_digest(completion: &Completion) -> String {
    digest(&completion.choices)
}

fn waived<'a>(waiver: Option<&'a Waiver>, digest: Option<&str>) -> Vec<&'a str> {
    match (waiver, digest) {
        (Some(w), Some(d)) => w.waived_guards(d),
        _ => Vec::new(),
    }
}
