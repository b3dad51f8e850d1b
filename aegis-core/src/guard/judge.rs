//! Judging whole requests and completions: every stage a chat exchange contains.

use aegis_contracts::{
    ChatRequest, Completion, Content, GuardSubject, RequestContext, Role, Stage, Verdict,
};

use super::chain::{ChainDecision, GuardChain};

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

    fn absorb(&mut self, decision: ChainDecision, verdicts: Vec<(Verdict, bool)>) -> bool {
        self.verdicts.extend(verdicts);
        let stop = !matches!(decision, ChainDecision::Allowed);
        self.decision = decision;
        stop
    }
}

impl GuardChain {
    /// Judges a request in place: tool definitions, then tool results (tool messages), then
    /// the prompt messages. Sanitized text is written back into `req`.
    pub async fn judge_request(
        &self,
        req: &mut ChatRequest,
        ctx: &RequestContext,
        approved: bool,
    ) -> Judgement {
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
        }
        if !self.is_empty_for(Stage::ToolResult) {
            for m in req.messages.iter_mut().filter(|m| m.role == Role::Tool) {
                let subject = GuardSubject::ToolResult {
                    call_id: m.tool_call_id.clone().unwrap_or_default(),
                    name: m.name.clone().unwrap_or_default(),
                    content: m.text().into_owned(),
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

    /// Judges a complete answer in place: the message (text and tool-call arguments) as
    /// output, then each tool call on its own.
    pub async fn judge_completion(
        &self,
        completion: &mut Completion,
        ctx: &RequestContext,
        approved: bool,
    ) -> Judgement {
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
                for call in &mut choice.message.tool_calls {
                    let o = self
                        .check(GuardSubject::ToolCall { call: call.clone() }, ctx, approved)
                        .await;
                    if let GuardSubject::ToolCall { call: c } = o.subject {
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
