//! The [`Node`] contract (a pipeline step as a tower service), run [`State`], human
//! interrupts, and the [`CheckpointStore`] contract that makes runs durable.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::Error;

/// The state of a graph run. Nodes return updates; [`apply`](Self::apply) is the reducer.
/// State is serialized into checkpoints, tagged with [`SCHEMA_VERSION`](Self::SCHEMA_VERSION).
pub trait State: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What a node returns.
    type Update: Send + 'static;

    /// Bump when the serialized shape changes; newer checkpoints are refused.
    const SCHEMA_VERSION: u32 = 1;

    /// Folds a node's update into the state.
    fn apply(&mut self, update: Self::Update);
}

/// What a node receives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeInput<S> {
    /// The state so far (shared: the engine reclaims it without a copy when the node is done).
    pub state: Arc<S>,
    /// Where the node runs.
    pub ctx: NodeContext,
}

impl<S> NodeInput<S> {
    /// Input for a node.
    pub fn new(state: Arc<S>, ctx: NodeContext) -> Self {
        Self { state, ctx }
    }
}

/// Where a node runs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NodeContext {
    /// The run.
    pub run_id: String,
    /// This node's name.
    pub node: String,
    /// Set when the node is re-run after a human decided on its interrupt.
    pub resume: Option<Approval>,
}

impl NodeContext {
    /// Context for `node` in `run_id`.
    pub fn new(run_id: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            node: node.into(),
            resume: None,
        }
    }

    /// With a resume decision.
    pub fn with_resume(mut self, decision: Approval) -> Self {
        self.resume = Some(decision);
        self
    }
}

/// What a node returns.
#[derive(Debug)]
pub enum NodeOutput<U> {
    /// Apply this update and move on.
    Update(U),
    /// Pause the run for a human. When resumed, the node runs again from its start with
    /// [`NodeContext::resume`] set, so its side effects belong after the approval check.
    Interrupt(InterruptRequest),
}

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

    /// Accept edits that satisfy `schema`.
    pub fn with_edit_schema(mut self, schema: Value) -> Self {
        self.edit_schema = schema;
        self
    }
}

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

/// Contract: a pipeline step. Any `tower::Service` of the right shape is a node; the graph
/// builder takes any of them, and `node_fn` in `aegis-core` wraps a plain async fn.
pub trait Node<S: State>:
    tower_service::Service<
        NodeInput<S>,
        Response = NodeOutput<S::Update>,
        Error = Error,
        Future: Send,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S: State, T> Node<S> for T where
    T: tower_service::Service<
            NodeInput<S>,
            Response = NodeOutput<S::Update>,
            Error = Error,
            Future: Send,
        > + Clone
        + Send
        + Sync
        + 'static
{
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
}

impl RunStatus {
    /// Whether no further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Rejected)
    }
}

/// One durable snapshot of a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The run.
    pub run_id: String,
    /// Monotonic version, 1 for the first checkpoint of a run.
    pub version: u64,
    /// The graph's name.
    pub graph: String,
    /// [`State::SCHEMA_VERSION`] of `state`.
    pub schema_version: u32,
    /// The serialized state, as JSON text (stores persist it as is; no value tree is built
    /// on the hot path). [`decode_state`] reads it back.
    #[schemars(with = "Value")]
    pub state: Box<serde_json::value::RawValue>,
    /// The node to run next; `None` when the run is finished.
    pub next: Option<String>,
    /// Status.
    pub status: RunStatus,
    /// The pending interrupt, when paused.
    pub interrupt: Option<Interrupt>,
    /// Who started the run, when known.
    pub principal: Option<String>,
    /// Unix milliseconds.
    pub at_ms: u64,
}

impl Checkpoint {
    /// A checkpoint; `at_ms` is stamped by the caller.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run_id: impl Into<String>,
        version: u64,
        graph: impl Into<String>,
        schema_version: u32,
        state: Box<serde_json::value::RawValue>,
        next: Option<String>,
        status: RunStatus,
        interrupt: Option<Interrupt>,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            version,
            graph: graph.into(),
            schema_version,
            state,
            next,
            status,
            interrupt,
            principal: None,
            at_ms: 0,
        }
    }
}

impl PartialEq for Checkpoint {
    fn eq(&self, other: &Self) -> bool {
        self.run_id == other.run_id
            && self.version == other.version
            && self.graph == other.graph
            && self.schema_version == other.schema_version
            && self.state.get() == other.state.get()
            && self.next == other.next
            && self.status == other.status
            && self.interrupt == other.interrupt
            && self.principal == other.principal
            && self.at_ms == other.at_ms
    }
}

impl Checkpoint {
    /// The state as a JSON value (for inspection; [`decode_state`] for the typed state).
    pub fn state_value(&self) -> Value {
        serde_json::from_str(self.state.get()).unwrap_or(Value::Null)
    }
}

/// Contract: durable storage of run checkpoints with optimistic concurrency.
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// Stores `cp`. `expected_version` is the version the writer last saw (`None` for a new
    /// run); if the stored latest differs, nothing is written and the error is
    /// [`Conflict`](crate::ErrorKind::Conflict). `cp.version` must be `expected + 1` (or 1).
    async fn put(&self, cp: &Checkpoint, expected_version: Option<u64>) -> Result<(), Error>;

    /// The newest checkpoint of a run.
    async fn latest(&self, run_id: &str) -> Result<Option<Checkpoint>, Error>;

    /// A specific version.
    async fn get(&self, run_id: &str, version: u64) -> Result<Option<Checkpoint>, Error>;

    /// All versions of a run, oldest first.
    async fn list(&self, run_id: &str) -> Result<Vec<Checkpoint>, Error>;
}

/// Deserializes a checkpoint's state, refusing newer schemas with a clear error.
pub fn decode_state<S: State>(cp: &Checkpoint) -> Result<S, Error> {
    if cp.schema_version > S::SCHEMA_VERSION {
        return Err(Error::storage(format!(
            "run {} was checkpointed with state schema v{}, this build understands up to v{}; upgrade Aegis to resume it",
            cp.run_id,
            cp.schema_version,
            S::SCHEMA_VERSION
        )));
    }
    serde_json::from_str(cp.state.get()).map_err(|e| {
        Error::storage(format!(
            "run {}: checkpointed state does not decode: {e}",
            cp.run_id
        ))
    })
}
