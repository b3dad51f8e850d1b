//! The [`Retriever`] contract (RAG) and the [`VectorStore`] extension.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, RequestContext};

/// A retrieved or stored document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Document {
    /// Stable id.
    pub id: String,
    /// The text.
    pub content: String,
    /// Metadata (source, ACL labels, classification).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Similarity score, when retrieved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

impl Document {
    /// A document with an id and text.
    pub fn new(id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            content: content.into(),
            ..Self::default()
        }
    }
}

/// Metadata equality filter: every key must match.
pub type Filter = Map<String, Value>;

/// Contract: fetches documents for a query.
#[async_trait]
pub trait Retriever: Send + Sync + 'static {
    /// The `k` best documents for `query` that match `filter`.
    async fn retrieve(
        &self,
        query: &str,
        k: usize,
        filter: Option<&Filter>,
        ctx: &RequestContext,
    ) -> Result<Vec<Document>, Error>;
}

/// A retriever that can also be written to.
#[async_trait]
pub trait VectorStore: Retriever {
    /// Inserts or replaces documents by id.
    async fn upsert(&self, docs: Vec<Document>) -> Result<(), Error>;

    /// Deletes documents by id; unknown ids are ignored.
    async fn delete(&self, ids: &[String]) -> Result<(), Error>;
}
