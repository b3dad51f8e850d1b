//! [`node_fn`]: a plain async function as a graph node.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use aegis_contracts::{Error, NodeInput, NodeOutput, State};
use tower_service::Service;

/// Wraps `f` as a [`Node`](aegis_contracts::Node).
///
/// ```
/// use aegis_core::graph::node_fn;
/// use aegis_contracts::{NodeInput, NodeOutput};
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Count(u32);
/// # impl aegis_contracts::State for Count { type Update = u32; fn apply(&mut self, u: u32) { self.0 += u } }
/// let add_one = node_fn(|_input: NodeInput<Count>| async { Ok(NodeOutput::Update(1)) });
/// ```
pub fn node_fn<S, F, Fut>(f: F) -> NodeFn<F>
where
    S: State,
    F: Fn(NodeInput<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<NodeOutput<S::Update>, Error>> + Send + 'static,
{
    NodeFn { f: Arc::new(f) }
}

/// A node made from an async function; see [`node_fn`].
pub struct NodeFn<F> {
    f: Arc<F>,
}

impl<F> Clone for NodeFn<F> {
    fn clone(&self) -> Self {
        Self { f: self.f.clone() }
    }
}

impl<F> std::fmt::Debug for NodeFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeFn")
    }
}

impl<S, F, Fut> Service<NodeInput<S>> for NodeFn<F>
where
    S: State,
    F: Fn(NodeInput<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<NodeOutput<S::Update>, Error>> + Send + 'static,
{
    type Response = NodeOutput<S::Update>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<NodeOutput<S::Update>, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, input: NodeInput<S>) -> Self::Future {
        Box::pin((self.f)(input))
    }
}
