//! [`GuardLayer`]: a guard chain around any chat service, without a graph.

use std::task::{Context, Poll};

use aegis_contracts::{ChatBody, ChatRequest, ChatResponse, Error};
use tower_layer::Layer;
use tower_service::Service;

use self::future::ResponseFuture;
use super::{chain::GuardChain, stream::Holdback};

/// Applies a [`GuardChain`] to requests (tool definitions, tool results, prompts) and to
/// responses (complete answers, tool calls and streams).
///
/// `RequireApproval` has nothing to pause here, so it fails the call with
/// [`ApprovalRequired`](aegis_contracts::ErrorKind::ApprovalRequired); use the graph
/// pipeline for resumable approvals.
#[derive(Clone, Debug)]
pub struct GuardLayer {
    chain: GuardChain,
}

impl GuardLayer {
    /// A layer applying `chain`; streams are buffered as far as the guards need.
    pub fn new(chain: GuardChain) -> Self {
        Self { chain }
    }

    /// A layer that refuses (at construction) chains whose output guards would need the
    /// whole answer buffered before a streamed byte can be released.
    pub fn without_stream_buffering(chain: GuardChain) -> Result<Self, Error> {
        chain.stream_holdback(false)?;
        Ok(Self { chain })
    }

    /// The hold-back streamed output will see.
    pub fn holdback(&self) -> Holdback {
        self.chain.stream_holdback(true).unwrap_or(Holdback::Full)
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            chain: self.chain.clone(),
        }
    }
}

/// The service produced by [`GuardLayer`].
#[derive(Clone, Debug)]
pub struct Guard<S> {
    inner: S,
    chain: GuardChain,
}

impl<S> Guard<S> {
    /// Wraps `inner` with `chain`.
    pub fn new(inner: S, chain: GuardChain) -> Self {
        Self { inner, chain }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<ChatRequest> for Guard<S>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ChatRequest) -> ResponseFuture {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let chain = self.chain.clone();
        ResponseFuture::new(async move {
            req.validate()?;
            let ctx = req.ctx.clone();
            let input = chain.judge_request(&mut req, &ctx, None).await;
            let mut guards = input.guard_ids();
            input.into_result()?;
            let mut resp = inner.call(req).await?;
            resp.body = match resp.body {
                ChatBody::Complete(mut completion) => {
                    let output = chain.judge_completion(&mut completion, &ctx, None).await;
                    merge_ids(&mut guards, output.guard_ids());
                    output.into_result()?;
                    ChatBody::Complete(completion)
                }
                ChatBody::Stream(stream) => {
                    merge_ids(&mut guards, chain.stream_guard_ids());
                    ChatBody::Stream(chain.guard_stream(stream, ctx))
                }
            };
            merge_ids(&mut resp.meta.guards, guards);
            Ok(resp)
        })
    }
}

/// Appends the ids not yet in `into`, keeping order.
pub(crate) fn merge_ids(into: &mut Vec<String>, ids: Vec<String>) {
    for id in ids {
        if !into.contains(&id) {
            into.push(id);
        }
    }
}

crate::response_future!(Guard);
