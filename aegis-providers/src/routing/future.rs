//! Response futures of [`Route`](super::Route).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use aegis_contracts::{ChatResponse, Error};
use pin_project_lite::pin_project;

use super::layer::BoxedResponse;

pin_project! {
    /// The response future of [`Route`](super::Route): the router's or the inner
    /// service's.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Routed { fut: BoxedResponse },
        Inner { #[pin] fut: F },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn routed(fut: BoxedResponse) -> Self {
        Self {
            kind: Kind::Routed { fut },
        }
    }

    pub(super) fn inner(fut: F) -> Self {
        Self {
            kind: Kind::Inner { fut },
        }
    }
}

impl<F> std::future::Future for ResponseFuture<F>
where
    F: std::future::Future<Output = Result<ChatResponse, Error>>,
{
    type Output = Result<ChatResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Routed { fut } => fut.as_mut().poll(cx),
            KindProj::Inner { fut } => fut.poll(cx),
        }
    }
}
