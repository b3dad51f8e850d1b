//! A run's lifecycle: its [`RunStatus`], human [`Interrupt`]s and the [`Approval`]s that
//! answer them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A node's request for a human decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InterruptRequest {
    /// Why, for the approver.
    pub reason: String,
    /// Context for the approver (the guard's findings, the tool call, ...).
    pub payload: Value,
    /// JSON Schema an `edit` value must satisfy; `null` when edits are not accepted.
    #[serde(default)]
    pub edit_schema: Value,
}

impl InterruptRequest {
    /// An interrupt with a reason and payload, accepting no edits.
    pub fn new(reason: impl Into<String>, payload: Value) -> Self {
        Self {
            reason: reason.into(),
            payload,
            edit_schema: Value::Null,
        }
    }

    /// The payload as anyone but the run's reviewers sees it (and as an interrupt history
    /// keeps it): without the held subject ([`INTERRUPT_SUBJECT_KEY`]).
    pub fn public_payload(&self) -> Value {
        let mut payload = self.payload.clone();
        if let Some(map) = payload.as_object_mut() {
            map.remove(INTERRUPT_SUBJECT_KEY);
        }
        payload
    }

    /// Accept edits that satisfy `schema`.
    pub fn with_edit_schema(mut self, schema: Value) -> Self {
        self.edit_schema = schema;
        self
    }
}

/// The key of an [`InterruptRequest::payload`] holding the subject as the guards left it
/// when one asked (the prompt's messages, or a held answer's content and tool calls). It is
/// for the run's reviewers only: a host strips it from what anyone else sees, and a store
/// keeps it only with the run's live checkpoint, never in its interrupt history.
pub const INTERRUPT_SUBJECT_KEY: &str = "subject";

/// A persisted interrupt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interrupt {
    /// Unique id.
    pub id: String,
    /// The node that asked.
    pub node: String,
    /// The request.
    #[serde(flatten)]
    pub request: InterruptRequest,
    /// Set while a resume holds the run: the decision being carried out and the lease on
    /// the claim. A claim whose lease has expired (its process crashed or timed out) may be
    /// taken over, with the same decision, by another process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
}

impl Interrupt {
    /// The interrupt as JSON for anyone who may see its run: its payload is the
    /// [`public_payload`](InterruptRequest::public_payload), without the held subject.
    pub fn public_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(map) = v.as_object_mut() {
            map.insert("payload".into(), self.request.public_payload());
        }
        v
    }
}

/// A resume's hold on a run (see [`Interrupt::claim`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Claim {
    /// The decision being carried out.
    pub decision: Approval,
    /// Who decided, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Unix milliseconds after which the claim may be taken over.
    pub lease_until_ms: u64,
}

impl Claim {
    /// A claim carrying out `decision` until `lease_until_ms`.
    pub fn new(decision: Approval, by: Option<String>, lease_until_ms: u64) -> Self {
        Self {
            decision,
            by,
            lease_until_ms,
        }
    }

    /// Whether the lease has run out at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.lease_until_ms
    }
}

/// A human's answer to an interrupt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Approval {
    /// Go ahead.
    Approve,
    /// Stop the run.
    Reject {
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Go ahead with this replacement (an edited prompt or tool call).
    Edit {
        /// The replacement; its shape is the interrupt's `edit_schema`.
        value: Value,
    },
}

impl Approval {
    /// `approve`, `reject` or `edit`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject { .. } => "reject",
            Self::Edit { .. } => "edit",
        }
    }
}

/// The lifecycle status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Executing (or crashed while executing).
    Running,
    /// Waiting for a human decision.
    Paused,
    /// Finished normally.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped by a human.
    Rejected,
    /// Refused by policy: a guard blocked it, or a pack short-circuited it (budget,
    /// residency, ...).
    Blocked,
    /// The caller went away before the response was delivered (a dropped stream or request).
    Cancelled,
}

impl RunStatus {
    /// Whether no further transition is possible.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Running | Self::Paused)
    }

    /// The terminal status of a run that ended with `err`: `blocked` when a policy refused
    /// it (a guard block, a budget, residency, a missing permission), `failed` otherwise.
    pub fn of_error(err: &crate::Error) -> Self {
        use crate::ErrorKind as K;
        match err.kind() {
            K::PolicyBlocked | K::BudgetExceeded | K::ResidencyViolation | K::Forbidden => {
                Self::Blocked
            }
            _ => Self::Failed,
        }
    }

    /// The status as stored and shown (`running`, `paused`, `completed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Blocked => "blocked",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "running" => Self::Running,
            "paused" => Self::Paused,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "rejected" => Self::Rejected,
            "blocked" => Self::Blocked,
            "cancelled" => Self::Cancelled,
            other => {
                return Err(crate::Error::invalid_request(format!(
                    "unknown run status `{other}` (running, paused, completed, failed, rejected, blocked, cancelled)"
                )));
            }
        })
    }
}
