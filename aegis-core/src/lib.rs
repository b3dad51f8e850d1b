//! # aegis-core
//!
//! The Aegis kernel: plugin [`Registry`], typed [`config`], secret resolution, the
//! [`graph`] engine, the [`guard`] chain and the tower layers. It has no opinion about
//! what a pipeline does; providers, guards and the rest plug in through the contracts of
//! [`aegis_contracts`].
#![forbid(unsafe_code)]

/// Declares `pub mod future` with the `ResponseFuture` of one chat-level middleware (each
/// middleware has its own type, as in tower-http; they share this shape).
macro_rules! response_future {
    ($service:ident) => {
        /// Response futures of this module's middleware.
        pub mod future {
            use std::{
                future::Future,
                pin::Pin,
                task::{Context, Poll},
            };

            use aegis_contracts::{ChatResponse, Error};

            #[doc = concat!("The response future of [`", stringify!($service), "`](super::", stringify!($service), ").")]
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
        }
    };
}
pub(crate) use response_future;

pub mod graph;
pub mod guard;
pub mod layer;
pub mod metrics;
mod telemetry;

pub use telemetry::Telemetry;
pub mod config;
mod registry;
mod secrets;

pub use registry::{BuildContext, Components, Registry};
pub use secrets::{EnvSecrets, FileSecrets};
mod lifecycle;

pub use lifecycle::{
    Exchange, ExchangeUpdate, Pipeline, PipelineBuilder, PipelineOutcome, PipelineSet, Route,
};
