//! Turning a guard's `RequireApproval` verdict into a graph interrupt, and the shapes of the
//! edits a reviewer may make.

use aegis_contracts::{Decision, InterruptRequest, Stage, Verdict};
use serde_json::{Value, json};

/// The interrupt asking a human about verdict `v` at `stage`, accepting edits of
/// `edit_schema`'s shape.
pub(super) fn approval_interrupt(
    v: &Verdict,
    stage: Stage,
    edit_schema: Value,
) -> InterruptRequest {
    let (reason, payload) = match &v.decision {
        Decision::RequireApproval { reason, payload } => (reason.clone(), payload.clone()),
        _ => ("approval required".into(), Value::Null),
    };
    InterruptRequest::new(
        format!("guard `{}` requires approval: {reason}", v.guard),
        json!({ "guard": v.guard, "stage": stage, "findings": v.findings, "score": v.score, "details": payload }),
    )
    .with_edit_schema(edit_schema)
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

/// An edit of a paused answer: replacement content.
pub(super) fn content_edit_schema() -> Value {
    json!({
        "type": "object",
        "required": ["content"],
        "additionalProperties": false,
        "properties": {"content": {"type": "string"}}
    })
}
