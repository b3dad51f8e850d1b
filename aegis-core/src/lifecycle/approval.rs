//! Turning a guard's `RequireApproval` verdict into a graph interrupt, and the shapes of the
//! edits a reviewer may make.

use aegis_contracts::{
    Approval, Completion, Content, Decision, Error, INTERRUPT_SUBJECT_KEY as SUBJECT_KEY,
    InterruptRequest, NodeContext, Stage, ToolCall, Verdict,
};
use serde_json::{Value, json};

use crate::guard::{Grant, Waiver};

/// The interrupt asking a human about verdict `v` at `stage` on content of digest `digest`
/// ([`request_digest`](crate::guard::request_digest) or
/// [`completion_digest`](crate::guard::completion_digest)), accepting edits of
/// `edit_schema`'s shape.
///
/// `granted` are the approvals the step already holds (a run paused again by another guard
/// after an approval): they travel in the payload, so the next approval adds to them.
pub(super) fn approval_interrupt(
    v: &Verdict,
    stage: Stage,
    digest: String,
    granted: Option<&Waiver>,
    edit_schema: Value,
    subject: Value,
) -> InterruptRequest {
    let granted: Vec<_> = granted
        .map(|w| w.grants().iter().filter(|g| g.digest == digest).collect())
        .unwrap_or_default();
    let (reason, payload) = match &v.decision {
        Decision::RequireApproval { reason, payload } => (reason.clone(), payload.clone()),
        _ => ("approval required".into(), Value::Null),
    };
    InterruptRequest::new(
        format!("guard `{}` requires approval: {reason}", v.guard),
        json!({ "guard": v.guard, "stage": stage, "digest": digest, "granted": granted,
                "findings": v.findings, "score": v.score, "details": payload,
                SUBJECT_KEY: subject }),
    )
    .with_edit_schema(edit_schema)
}

/// The subject of an output interrupt: the held answer's content and tool calls.
pub(super) fn answer_subject(completion: &Completion) -> Value {
    let message = completion.choices.first().map(|c| &c.message);
    json!({
        "content": message.and_then(|m| m.content.as_ref()),
        "tool_calls": message.map(|m| &m.tool_calls),
    })
}

/// An edit of a paused prompt: replacement messages.
pub(super) fn messages_edit_schema() -> Value {
    json!({
        "type": "object",
        "required": ["messages"],
        "additionalProperties": false,
        "properties": {"messages": {"type": "array", "items": {"type": "object", "required": ["role"]}}}
    })
}

/// An edit of a paused answer: replacement content, replacement tool calls, or both.
pub(super) fn content_edit_schema() -> Value {
    json!({
        "type": "object",
        "minProperties": 1,
        "additionalProperties": false,
        "properties": {
            "content": {"type": "string"},
            "tool_calls": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "function"],
                    "additionalProperties": false,
                    "properties": {
                        "id": {"type": "string", "minLength": 1},
                        "type": {"enum": ["function"]},
                        "function": {
                            "type": "object",
                            "required": ["name", "arguments"],
                            "additionalProperties": false,
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "arguments": {"type": "string"}
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Applies a reviewer's edit (checked against [`content_edit_schema`]) to a paused answer:
/// what it names replaces the first choice's content or tool calls. The caller re-judges
/// the result with the whole chain.
pub(super) fn apply_answer_edit(completion: &mut Completion, value: &Value) -> Result<(), Error> {
    let Some(choice) = completion.choices.first_mut() else {
        return Err(Error::invalid_request(
            "the paused answer has no choice to edit",
        ));
    };
    if let Some(content) = value.get("content").and_then(Value::as_str) {
        choice.message.content = Some(Content::Text(content.to_owned()));
    }
    if let Some(calls) = value.get("tool_calls") {
        choice.message.tool_calls = serde_json::from_value::<Vec<ToolCall>>(calls.clone())
            .map_err(|e| Error::invalid_request(format!("edit: tool_calls: {e}")))?;
        choice.finish_reason = Some(if choice.message.tool_calls.is_empty() {
            "stop".into()
        } else {
            "tool_calls".into()
        });
    }
    Ok(())
}

/// The waiver an approval grants: the guard of the interrupt it answers, on the content it
/// was shown. `None` unless the node is re-run after an `approve` of a guard's interrupt.
pub(super) fn waiver_of(ctx: &NodeContext) -> Option<Waiver> {
    if !matches!(ctx.resume, Some(Approval::Approve)) {
        return None;
    }
    let payload = &ctx.interrupt.as_ref()?.payload;
    let earlier: Vec<Grant> = payload
        .get("granted")
        .and_then(|g| serde_json::from_value(g.clone()).ok())
        .unwrap_or_default();
    let waiver = earlier
        .into_iter()
        .fold(Waiver::default(), |w, g| w.and(g.guard, g.digest));
    Some(waiver.and(
        payload.get("guard")?.as_str()?,
        payload.get("digest")?.as_str()?,
    ))
}
