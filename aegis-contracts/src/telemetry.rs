//! The [`TelemetrySink`] contract and the [`RunEvent`]s it observes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ErrorKind, RunStatus, Stage, Usage, Verdict};

/// Something that happened in a run. Carries no prompt or completion text and no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunEvent {
    /// The run.
    pub run_id: String,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: RunEventKind,
}

impl RunEvent {
    /// An event for `run_id`, stamped now.
    pub fn now(run_id: impl Into<String>, kind: RunEventKind) -> Self {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Self {
            run_id: run_id.into(),
            at_ms,
            kind,
        }
    }
}

/// The kinds of [`RunEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunEventKind {
    /// A run began.
    RunStarted {
        /// The graph (or `layers` for a layer stack).
        graph: String,
    },
    /// Execution entered a node.
    NodeEntered {
        /// Node name.
        node: String,
    },
    /// Execution left a node.
    NodeLeft {
        /// Node name.
        node: String,
        /// Time spent.
        #[schemars(with = "u64")]
        #[serde(with = "micros")]
        elapsed_us: Duration,
    },
    /// A guard judged something.
    Verdict {
        /// The stage judged.
        stage: Stage,
        /// The verdict (guard, decision, findings, score; no text).
        verdict: Verdict,
        /// Recorded only (shadow mode), or not applied because the guard failed open.
        enforced: bool,
    },
    /// A guard failed (error or timeout) and its fail mode decided.
    GuardFailed {
        /// Guard id.
        guard: String,
        /// The error kind.
        error: ErrorKind,
        /// The error message.
        message: String,
        /// `true` when the failure let traffic through (fail open).
        failed_open: bool,
    },
    /// A provider call finished.
    ProviderCall {
        /// Provider instance.
        provider: String,
        /// Model.
        model: String,
        /// Usage, when reported.
        usage: Option<Usage>,
        /// Latency (to headers for streams).
        #[schemars(with = "u64")]
        #[serde(with = "micros")]
        latency_us: Duration,
        /// Error kind when it failed.
        error: Option<ErrorKind>,
    },
    /// The run paused for a human decision.
    Paused {
        /// The node that interrupted.
        node: String,
        /// The interrupt's id.
        interrupt_id: String,
        /// Why.
        reason: String,
    },
    /// A decision resumed the run.
    Resumed {
        /// `approve`, `reject` or `edit`.
        decision: String,
        /// Who decided, when known.
        by: Option<String>,
    },
    /// The audit summary of one governed exchange (no prompt or completion text), written
    /// once when the run ends — for a stream, when the stream ends — with the final usage.
    Audit {
        /// Who called.
        principal: Option<String>,
        /// The caller's team, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team: Option<String>,
        /// How the run ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<RunStatus>,
        /// The route the request resolved to (a provider or router id).
        provider: Option<String>,
        /// The deployment that answered, when the route is a router.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deployment: Option<String>,
        /// The region the data was processed in, when declared.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// The model that answered.
        model: Option<String>,
        /// The guards that judged the exchange, in order.
        guards: Vec<String>,
        /// Usage, when known (streams report it on their last chunk).
        usage: Option<Usage>,
        /// What the usage cost, in millionths of a US dollar, when the model has a price.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd_micros: Option<u64>,
        /// Every retrieved document and what the guards made of it (ids, never content).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        retrieval: Vec<crate::Provenance>,
    },
    /// The run finished.
    Completed,
    /// The run was rejected by a human.
    Rejected,
    /// The run failed.
    Failed {
        /// The error kind.
        error: ErrorKind,
        /// The error message (never a secret; never prompt text).
        message: String,
    },
    /// The run was refused by policy (a guard block, a budget, residency).
    Blocked {
        /// The error kind.
        error: ErrorKind,
        /// The error code (`policy_blocked`, `budget_exceeded`, ...).
        code: Option<String>,
        /// The error message (never a secret; never prompt text).
        message: String,
    },
    /// The caller went away before the response was delivered.
    Cancelled,
    /// The first chunk of a streamed answer was handed to the caller (time to first token).
    FirstToken,
}

impl RunEventKind {
    /// Whether this event ends a run (`completed`, `failed`, `blocked`, `rejected`,
    /// `cancelled`): exactly one such event is emitted per run.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::Rejected
                | Self::Failed { .. }
                | Self::Blocked { .. }
                | Self::Cancelled
        )
    }
}

mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

/// Contract: observes run events. `on_event` is called inline on the request path, so it must
/// not block: hand the event to a channel or a buffered exporter.
pub trait TelemetrySink: Send + Sync + 'static {
    /// Observes one event.
    fn on_event(&self, event: &RunEvent);

    /// For a sink whose records must be stored before a run's answer is acknowledged (an
    /// audit log in `required` mode): a future that resolves once every event this sink has
    /// observed so far is stored, or with an error when that cannot be done in time — the
    /// run's caller then gets the error instead of the answer (fail closed). `None`, the
    /// default: the sink never holds up a run.
    fn durable(&self) -> Option<DurableFuture> {
        None
    }
}

/// What [`TelemetrySink::durable`] returns.
pub type DurableFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::Error>> + Send>>;
