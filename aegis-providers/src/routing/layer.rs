//! The router as tower middleware: [`RouteLayer`] + [`Route<S>`], and [`Router`] as a
//! terminal `Service<ChatRequest>`.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use aegis_contracts::{ChatRequest, ChatResponse, Error, Provider};
use tower_layer::Layer;
use tower_service::Service;

use super::{Router, future::ResponseFuture};

/// Wraps a service so that requests for a model the [`Router`] serves (a group or an alias)
/// go through the router, and every other request goes to the inner service unchanged.
///
/// ```
/// use std::sync::Arc;
/// use aegis_contracts::{ChatRequest, Error, Message, Provider};
/// use aegis_providers::{Echo, routing::{Deployment, RouteLayer, Router}};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let router = Router::builder("llm")
///     .deployment("routed", Deployment::new("d1", Arc::new(Echo::new("echo")), "m"))
///     .build()?;
/// let fallback = service_fn(|req: ChatRequest| async move {
///     Echo::new("direct").chat(req).await
/// });
/// let svc = RouteLayer::new(router).layer(fallback);
/// let resp = svc.clone().oneshot(ChatRequest::new("routed", vec![Message::user("a")])).await?;
/// assert_eq!(resp.meta.provider, "echo");
/// let resp = svc.oneshot(ChatRequest::new("other", vec![Message::user("b")])).await?;
/// assert_eq!(resp.meta.provider, "direct");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RouteLayer {
    router: Router,
}

impl RouteLayer {
    /// A layer routing through `router`.
    pub fn new(router: Router) -> Self {
        Self { router }
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Route<S> {
        Route::new(inner, self.router.clone())
    }
}

/// The service produced by [`RouteLayer`].
#[derive(Clone, Debug)]
pub struct Route<S> {
    inner: S,
    router: Router,
}

impl<S> Route<S> {
    /// Routes requests for `router`'s models through it, the rest to `inner`.
    pub fn new(inner: S, router: Router) -> Self {
        Self { inner, router }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<ChatRequest> for Route<S>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = Error>,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        if self.router.serves(&req.model) {
            let router = self.router.clone();
            ResponseFuture::routed(Box::pin(async move { router.chat(req).await }))
        } else {
            ResponseFuture::inner(self.inner.call(req))
        }
    }
}

/// A boxed, `Send` response future.
pub(crate) type BoxedResponse =
    Pin<Box<dyn std::future::Future<Output = Result<ChatResponse, Error>> + Send + 'static>>;

impl Service<ChatRequest> for Router {
    type Response = ChatResponse;
    type Error = Error;
    type Future = BoxedResponse;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let router = self.clone();
        Box::pin(async move { router.chat(req).await })
    }
}
