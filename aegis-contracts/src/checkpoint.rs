//! The [`CheckpointStore`] contract that makes runs durable, and the [`Checkpoint`] it stores.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Interrupt, RunStatus, State};

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
    ///
    /// A terminal checkpoint ([`RunStatus::is_terminal`]) supersedes the run's history: in
    /// the same write, the `state` of its earlier versions becomes `null` and their
    /// `interrupt` is dropped (version, status, node and time stay). What a run ended
    /// without — a prompt a guard blocked, a paused answer that was rejected, a reviewer's
    /// edit — is then not kept in an older version either.
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
