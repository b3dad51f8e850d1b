//! [`Reloadable`]: a provider whose implementation is swapped atomically at run time.

use std::{fmt, sync::Arc};

use aegis_contracts::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Error, Provider,
    ProviderCapabilities, async_trait,
};
use arc_swap::ArcSwap;

/// A provider (or [`Router`](crate::routing::Router)) that can be replaced while serving.
///
/// Each call takes the current inner provider once, at its start, and keeps it to the end:
/// requests in flight — streams included — finish on the provider they started on, and the
/// next call sees the new one. Swapping is lock-free and never blocks callers (ArcSwap).
/// Hosts call [`reload`](Self::reload) on a config-file change, a SIGHUP or an admin call.
///
/// ```
/// use std::sync::Arc;
/// use aegis_contracts::{ChatRequest, Message, Provider};
/// use aegis_providers::{Echo, Reloadable};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), aegis_contracts::Error> {
/// let llm = Reloadable::new("llm", Arc::new(Echo::new("v1")));
/// let hi = || ChatRequest::new("m", vec![Message::user("hi")]);
/// assert_eq!(llm.chat(hi()).await?.meta.provider, "v1");
/// let old = llm.reload(Arc::new(Echo::new("v2")));
/// assert_eq!(old.name(), "v1");
/// assert_eq!(llm.chat(hi()).await?.meta.provider, "v2");
/// # Ok(()) }
/// ```
pub struct Reloadable {
    name: String,
    current: ArcSwap<Arc<dyn Provider>>,
}

impl fmt::Debug for Reloadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloadable")
            .field("name", &self.name)
            .field("current", &self.current.load().name())
            .finish()
    }
}

impl Reloadable {
    /// Serves as `name`, starting with `initial`.
    pub fn new(name: impl Into<String>, initial: Arc<dyn Provider>) -> Self {
        Self {
            name: name.into(),
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// Replaces the inner provider; returns the previous one (still serving the requests
    /// that started on it).
    pub fn reload(&self, next: Arc<dyn Provider>) -> Arc<dyn Provider> {
        Arc::clone(&self.current.swap(Arc::new(next)))
    }

    /// The provider new requests go to.
    pub fn current(&self) -> Arc<dyn Provider> {
        Arc::clone(&self.current.load())
    }
}

#[async_trait]
impl Provider for Reloadable {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> ProviderCapabilities {
        self.current.load().capabilities()
    }

    /// The region of the current provider. A `Reloadable` cannot lend out a borrow of a
    /// provider that may be swapped away, so it reports none; residency filters should tag
    /// the deployments inside a router instead.
    fn region(&self) -> Option<&str> {
        None
    }

    fn models(&self) -> Vec<String> {
        self.current.load().models()
    }

    fn regions(&self, model: &str) -> Vec<String> {
        self.current.load().regions(model)
    }

    fn members(&self) -> Vec<String> {
        self.current.load().members()
    }

    fn upstream_models(&self, model: &str) -> Vec<String> {
        self.current.load().upstream_models(model)
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        // One owned snapshot for the whole call: a reload mid-call cannot touch it.
        let provider = self.current();
        provider.chat(req).await
    }

    async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        let provider = self.current();
        provider.embed(req).await
    }
}
