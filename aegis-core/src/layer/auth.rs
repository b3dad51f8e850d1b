//! [`AuthLayer`]: resolves the request's credentials to a [`Principal`](aegis_contracts::Principal).

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use aegis_contracts::{Authenticator, ChatRequest, ChatResponse, Error, ErrorKind};
use tower_layer::Layer;
use tower_service::Service;

use self::future::ResponseFuture;

/// Authenticates every request with an [`Authenticator`] and stores the principal in
/// `req.ctx.principal`. Missing credentials are
/// [`Unauthenticated`](ErrorKind::Unauthenticated); the credentials are dropped from the
/// context once used.
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Arc<dyn Authenticator>,
}

impl AuthLayer {
    /// A layer using `authenticator`.
    pub fn new(authenticator: Arc<dyn Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthLayer")
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    authenticator: Arc<dyn Authenticator>,
}

impl<S> Auth<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            inner,
            authenticator,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("inner", &self.inner).finish()
    }
}

/// Resolves `credentials` to a principal, or explains what is missing.
pub(crate) async fn authenticate(
    authenticator: &dyn Authenticator,
    credentials: Option<aegis_contracts::Credentials>,
) -> Result<aegis_contracts::Principal, Error> {
    let credentials = credentials.filter(|c| c.token().is_some()).ok_or_else(|| {
        Error::new(
            ErrorKind::Unauthenticated,
            "no credentials: send `Authorization: Bearer <key>`",
        )
    })?;
    authenticator.authenticate(&credentials).await
}

impl<S> Service<ChatRequest> for Auth<S>
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
        let authenticator = self.authenticator.clone();
        ResponseFuture::new(async move {
            let principal =
                authenticate(authenticator.as_ref(), req.ctx.credentials.take()).await?;
            req.ctx.principal = Some(principal);
            inner.call(req).await
        })
    }
}

crate::response_future!(Auth);
