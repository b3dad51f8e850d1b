//! [`GuardLayer`]: a guard chain around any chat service, without a graph.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use aegis_contracts::{ChatBody, ChatRequest, ChatResponse, Error};
use tower_layer::Layer;
use tower_service::Service;

use super::{
    chain::{ChainDecision, GuardChain, approval_error, blocked_error},
    stream::Holdback,
};

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

fn refuse(decision: ChainDecision) -> Result<(), Error> {
    match decision {
        ChainDecision::Allowed => Ok(()),
        ChainDecision::Blocked(v) => Err(blocked_error(&v)),
        ChainDecision::NeedsApproval(v) => Err(approval_error(&v)),
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
            refuse(chain.judge_request(&mut req, &ctx, false).await.decision)?;
            let mut resp = inner.call(req).await?;
            let guards: Vec<String> = chain.entries().iter().map(|e| e.id().to_owned()).collect();
            resp.meta.guards.extend(guards);
            resp.body = match resp.body {
                ChatBody::Complete(mut completion) => {
                    refuse(
                        chain
                            .judge_completion(&mut completion, &ctx, false)
                            .await
                            .decision,
                    )?;
                    ChatBody::Complete(completion)
                }
                ChatBody::Stream(stream) => ChatBody::Stream(chain.guard_stream(stream, ctx)),
            };
            Ok(resp)
        })
    }
}

/// Response future of the Aegis chat-level middlewares.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<ChatResponse, Error>> + Send + 'static>>,
}

impl ResponseFuture {
    pub(crate) fn new(
        fut: impl Future<Output = Result<ChatResponse, Error>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Box::pin(fut),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<ChatResponse, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}
