//! Tower layers for composing governance without a graph: [`AuthLayer`],
//! [`TelemetryLayer`], and (in [`crate::guard`]) `GuardLayer`; plus [`Upstream`], the bare
//! provider call as a tower service.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use aegis_contracts::*;
//! use aegis_core::{Telemetry, guard::{GuardChain, GuardLayer}, layer::{TelemetryLayer, Upstream}};
//! use std::sync::Arc;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! struct Fixed;
//! #[async_trait]
//! impl Provider for Fixed {
//!     fn name(&self) -> &str { "fixed" }
//!     fn capabilities(&self) -> ProviderCapabilities { ProviderCapabilities::default() }
//!     async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
//!         Ok(ChatResponse::complete(ResponseMeta::new("fixed", &req.model), Completion::text("1", &req.model, "hi")))
//!     }
//! }
//!
//! let svc = ServiceBuilder::new()
//!     .layer(TelemetryLayer::new(Telemetry::default()))
//!     .layer(GuardLayer::new(GuardChain::default()))
//!     .service(Upstream::new(Arc::new(Fixed)));
//! let resp = svc.oneshot(ChatRequest::new("m", vec![Message::user("hello")])).await.unwrap();
//! assert_eq!(resp.collect().await.unwrap().message().unwrap().text(), "hi");
//! # });
//! ```

pub mod auth;
pub mod telemetry;
pub mod upstream;

pub(crate) use auth::authenticate;
pub use auth::{Auth, AuthLayer};
pub(crate) use telemetry::StreamObserver;
pub use telemetry::{Telemetered, TelemetryLayer};
pub use upstream::Upstream;
