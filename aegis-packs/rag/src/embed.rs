//! [`Embedder`]: texts to vectors, checked for the dimensions a store was made for.

use std::sync::Arc;

use aegis_contracts::{EmbeddingRequest, Error, ErrorKind, Provider, async_trait};

/// Contract: turns texts into vectors of [`dimensions`](Self::dimensions) each.
#[async_trait]
pub trait Embedder: Send + Sync + 'static {
    /// The length of every vector.
    fn dimensions(&self) -> usize;

    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Error>;
}

/// Embeddings through a provider (`model`, asking for `dimensions`); an answer with the
/// wrong count or length of vectors is an error, never a silently misfiled document.
pub struct ProviderEmbedder {
    provider: Arc<dyn Provider>,
    model: String,
    dimensions: usize,
}

impl std::fmt::Debug for ProviderEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderEmbedder")
            .field("provider", &self.provider.name())
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .finish()
    }
}

impl ProviderEmbedder {
    /// Embeds with `provider`'s `model` into `dimensions`-long vectors.
    pub fn new(provider: Arc<dyn Provider>, model: impl Into<String>, dimensions: usize) -> Self {
        Self {
            provider,
            model: model.into(),
            dimensions,
        }
    }
}

#[async_trait]
impl Embedder for ProviderEmbedder {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut req = EmbeddingRequest::new(self.model.clone(), texts.to_vec());
        req.dimensions = u32::try_from(self.dimensions).ok();
        let answer = self.provider.embed(req).await?;
        crate::checked_vectors(answer.data, texts.len(), self.dimensions).map_err(|e| {
            Error::new(
                ErrorKind::Provider,
                format!("provider `{}`: {}", self.provider.name(), e.message()),
            )
        })
    }
}
