//! The [`Provider`] contract: an LLM backend.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Error, ErrorKind};

/// What a provider supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ProviderCapabilities {
    /// Streams chunks.
    pub streaming: bool,
    /// Calls tools.
    pub tools: bool,
    /// Reads images.
    pub vision: bool,
    /// Honours `response_format`.
    pub json_mode: bool,
    /// Serves embeddings.
    pub embeddings: bool,
}

impl ProviderCapabilities {
    /// Everything supported.
    pub fn all() -> Self {
        Self {
            streaming: true,
            tools: true,
            vision: true,
            json_mode: true,
            embeddings: true,
        }
    }
}

/// Contract: an LLM backend. Returns a complete or a streamed [`ChatResponse`] according to
/// `req.stream`.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The instance name (from config), used in telemetry and errors.
    fn name(&self) -> &str;

    /// What the backend supports.
    fn capabilities(&self) -> ProviderCapabilities;

    /// The region the backend processes data in, for residency policy.
    fn region(&self) -> Option<&str> {
        None
    }

    /// The models it serves; empty means "whatever is asked".
    fn models(&self) -> Vec<String> {
        Vec::new()
    }

    /// Every region a request for `model` may be processed in: the provider's own region,
    /// or for a router the regions of the deployments (and fallbacks) that serve it. A
    /// residency policy refuses a route none of whose regions it allows, before the call.
    fn regions(&self, model: &str) -> Vec<String> {
        let _ = model;
        self.region().map(str::to_owned).into_iter().collect()
    }

    /// Every upstream model a request for `model` may be served by — for a router, the
    /// models of the deployments (and fallbacks) that serve it; empty (the default) when
    /// it is `model` itself. A budget reserves at the dearest of them.
    fn upstream_models(&self, model: &str) -> Vec<String> {
        let _ = model;
        Vec::new()
    }

    /// Ids of the provider instances this one routes over (a router's deployments). The
    /// pipeline hides them from callers, so the router's filters cannot be bypassed by
    /// addressing a member directly. Read once, when a pipeline is built.
    fn members(&self) -> Vec<String> {
        Vec::new()
    }

    /// One chat call.
    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error>;

    /// Embeddings; providers without them answer [`ErrorKind::InvalidRequest`].
    async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        let _ = req;
        Err(Error::new(
            ErrorKind::InvalidRequest,
            format!("provider `{}` does not serve embeddings", self.name()),
        ))
    }
}
