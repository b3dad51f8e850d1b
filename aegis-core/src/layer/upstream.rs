//! [`Upstream`]: a [`Provider`] as the innermost tower service.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use aegis_contracts::{ChatRequest, ChatResponse, Error, Provider};
use tower_service::Service;

use self::future::ResponseFuture;

/// Calls a provider; the service every governance layer ultimately wraps.
#[derive(Clone)]
pub struct Upstream {
    provider: Arc<dyn Provider>,
}

impl Upstream {
    /// A service calling `provider`.
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        Self { provider }
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("provider", &self.provider.name())
            .finish()
    }
}

impl Service<ChatRequest> for Upstream {
    type Response = ChatResponse;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> ResponseFuture {
        let provider = self.provider.clone();
        ResponseFuture::new(async move { provider.chat(req).await })
    }
}

crate::response_future!(Upstream);
