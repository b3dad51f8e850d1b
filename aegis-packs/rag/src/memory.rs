//! [`MemoryVectorStore`]: exact, permission-aware search in memory.

use std::{collections::BTreeSet, sync::Arc};

use aegis_contracts::{
    Document, Error, Filter, RequestContext, Retriever, VectorStore, async_trait,
};
use tokio::sync::RwLock;

use crate::{
    Embedder,
    index::{Index, Search, indexed_fields, prepare},
};

/// Documents and their vectors in memory; every search is exact (each visible document is
/// scored) and sees only what the reader may read, before anything is ranked.
pub struct MemoryVectorStore {
    embedder: Arc<dyn Embedder>,
    indexed: BTreeSet<String>,
    index: RwLock<Index>,
}

impl std::fmt::Debug for MemoryVectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryVectorStore")
            .field("indexed", &self.indexed)
            .finish_non_exhaustive()
    }
}

impl MemoryVectorStore {
    /// An empty store embedding with `embedder`, whose searches may filter on the metadata
    /// fields `indexed` (equality), and always on `source`.
    pub fn new<S: Into<String>>(
        embedder: Arc<dyn Embedder>,
        indexed: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            embedder,
            indexed: indexed_fields(indexed),
            index: RwLock::new(Index::default()),
        }
    }

    /// How many documents it holds.
    pub async fn len(&self) -> usize {
        self.index.read().await.len()
    }

    /// Whether it holds none.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

#[async_trait]
impl Retriever for MemoryVectorStore {
    async fn retrieve(
        &self,
        query: &str,
        k: usize,
        filter: Option<&Filter>,
        ctx: &RequestContext,
    ) -> Result<Vec<Document>, Error> {
        let embedder = self.embedder.as_ref();
        let Some(s) = Search::begin(embedder, &self.indexed, query, k, filter, ctx).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .index
            .read()
            .await
            .search(&s.query, k, s.filter, s.reader))
    }

    fn as_store(&self) -> Option<&dyn VectorStore> {
        Some(self)
    }
}

#[async_trait]
impl VectorStore for MemoryVectorStore {
    /// Checks every document (id, text size, ACL) and embeds them all before storing any:
    /// a batch with one bad document changes nothing.
    async fn upsert(&self, docs: Vec<Document>) -> Result<(), Error> {
        let entries = prepare(self.embedder.as_ref(), docs, None).await?;
        self.index.write().await.upsert(entries);
        Ok(())
    }

    async fn delete(&self, ids: &[String]) -> Result<u64, Error> {
        Ok(self.index.write().await.delete(ids))
    }

    async fn delete_source(&self, source: &str) -> Result<u64, Error> {
        Ok(self.index.write().await.delete_source(source))
    }

    async fn replace_sources(&self, sources: &[String], docs: Vec<Document>) -> Result<(), Error> {
        let entries = prepare(self.embedder.as_ref(), docs, Some(sources)).await?;
        let mut index = self.index.write().await;
        index.delete_sources(sources);
        index.upsert(entries);
        Ok(())
    }
}
