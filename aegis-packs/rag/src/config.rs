//! The `[[retrievers]]` types this crate registers — `memory` and `sqlite` — and their
//! configs.

use std::{path::PathBuf, sync::Arc};

use aegis_contracts::{Error, Retriever};
use aegis_core::BuildContext;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{Embedder, MemoryVectorStore, ProviderEmbedder};

/// The most dimensions a store's vectors may have.
pub const MAX_DIMENSIONS: usize = 8_192;

/// How a store embeds texts: through one of the configured providers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EmbeddingConfig {
    /// The `[[providers]]` entry that embeds (the `echo` provider embeds offline).
    pub provider: String,
    /// The embedding model.
    pub model: String,
    /// The length of every vector (1 to 8192); a store keeps the dimensions it was made
    /// with.
    pub dimensions: usize,
}

impl EmbeddingConfig {
    /// The embedder this config describes, with the provider from `ctx`.
    pub fn build(&self, ctx: &BuildContext<'_>) -> Result<Arc<dyn Embedder>, Error> {
        if self.dimensions == 0 || self.dimensions > MAX_DIMENSIONS {
            return Err(Error::config(format!(
                "embedding.dimensions must be between 1 and {MAX_DIMENSIONS}"
            )));
        }
        let provider = ctx.provider(&self.provider)?;
        Ok(Arc::new(ProviderEmbedder::new(
            provider,
            self.model.clone(),
            self.dimensions,
        )))
    }
}

/// Config of the `memory` store: documents live in the process (tests, embedding hosts).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MemoryStoreConfig {
    /// How texts are embedded.
    pub embedding: EmbeddingConfig,
    /// Metadata fields searches may filter on (equality), besides `source`.
    #[serde(default)]
    pub indexed: Vec<String>,
}

/// Builds a `memory` store.
pub fn memory_store(
    config: MemoryStoreConfig,
    ctx: &BuildContext<'_>,
) -> Result<Arc<dyn Retriever>, Error> {
    Ok(Arc::new(MemoryVectorStore::new(
        config.embedding.build(ctx)?,
        config.indexed,
    )))
}

/// Config of the `sqlite` store: the embedded default, a collection in a SQLite file.
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SqliteStoreConfig {
    /// The SQLite file (created when missing; relative paths from the working directory).
    pub path: PathBuf,
    /// The collection in the file (default: the retriever's id).
    #[serde(default)]
    pub collection: Option<String>,
    /// How texts are embedded.
    pub embedding: EmbeddingConfig,
    /// Metadata fields searches may filter on (equality), besides `source`.
    #[serde(default)]
    pub indexed: Vec<String>,
}

/// Builds a `sqlite` store (the file is opened on first use or by `ready`).
#[cfg(feature = "sqlite")]
pub fn sqlite_store(
    config: SqliteStoreConfig,
    ctx: &BuildContext<'_>,
) -> Result<Arc<dyn Retriever>, Error> {
    if config.path.as_os_str().is_empty() {
        return Err(Error::config("path must not be empty"));
    }
    Ok(Arc::new(crate::SqliteVectorStore::new(
        &config.path,
        config.collection.unwrap_or_else(|| ctx.id.to_owned()),
        config.embedding.build(ctx)?,
        config.indexed,
    )))
}

/// Config of the `pgvector` store: a collection in PostgreSQL with pgvector (HNSW,
/// iterative index scans).
#[cfg(feature = "pgvector")]
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PgVectorStoreConfig {
    /// The database URL (`secret://env/NAME` keeps a password out of the file).
    pub url: String,
    /// The collection: table `aegis_rag_{collection}` (default: the retriever's id).
    #[serde(default)]
    pub collection: Option<String>,
    /// How texts are embedded.
    pub embedding: EmbeddingConfig,
    /// Metadata fields searches may filter on (equality), besides `source`.
    #[serde(default)]
    pub indexed: Vec<String>,
    /// HNSW candidates per search (default 100): higher is more exact and slower.
    #[serde(default)]
    pub ef_search: Option<usize>,
}

#[cfg(feature = "pgvector")]
impl std::fmt::Debug for PgVectorStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("PgVectorStoreConfig")
            .field("collection", &self.collection)
            .field("embedding", &self.embedding)
            .field("indexed", &self.indexed)
            .field("ef_search", &self.ef_search)
            .finish_non_exhaustive()
    }
}

/// Builds a `pgvector` store (the database is opened on first use or by `ready`).
#[cfg(feature = "pgvector")]
pub fn pgvector_store(
    config: PgVectorStoreConfig,
    ctx: &BuildContext<'_>,
) -> Result<Arc<dyn Retriever>, Error> {
    let collection = config.collection.unwrap_or_else(|| ctx.id.to_owned());
    let mut store = crate::PgVectorStore::new(
        config.url,
        &collection,
        config.embedding.build(ctx)?,
        config.indexed,
    )?;
    if let Some(ef) = config.ef_search {
        store = store.with_ef_search(ef);
    }
    Ok(Arc::new(store))
}

/// Registers the `memory`, `sqlite` and `pgvector` retriever types and the `retrieval`
/// policy.
pub fn register(registry: &mut aegis_core::Registry) {
    registry.register_retriever::<MemoryStoreConfig, _>("memory", memory_store);
    #[cfg(feature = "sqlite")]
    registry.register_retriever::<SqliteStoreConfig, _>("sqlite", sqlite_store);
    #[cfg(feature = "pgvector")]
    registry.register_retriever::<PgVectorStoreConfig, _>("pgvector", pgvector_store);
    registry.register_policy::<crate::RetrievalConfig, _>("retrieval", |c, ctx| {
        let retriever = ctx.retriever(&c.retriever)?;
        Ok(Arc::new(crate::Retrieval::new(c, retriever)?))
    });
}
