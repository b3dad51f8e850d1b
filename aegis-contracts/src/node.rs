//! The [`Node`] contract: a pipeline step as a tower service over a run's [`State`].

use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};

use crate::{Approval, Error, InterruptRequest};

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
    /// With [`resume`](Self::resume): the interrupt the decision answers, so a node can
    /// check that what was approved is what it is about to let through.
    pub interrupt: Option<crate::InterruptRequest>,
}

impl NodeContext {
    /// Context for `node` in `run_id`.
    pub fn new(run_id: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            node: node.into(),
            resume: None,
            interrupt: None,
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
