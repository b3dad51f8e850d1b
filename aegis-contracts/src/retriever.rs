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

/// The metadata key naming the source a document was ingested from (a file, a URL); what
/// [`VectorStore::replace_sources`] and [`VectorStore::delete_source`] act on.
pub const SOURCE_KEY: &str = "source";

impl Document {
    /// Its `source` metadata, when it has one.
    pub fn source(&self) -> Option<&str> {
        self.metadata.get(SOURCE_KEY).and_then(Value::as_str)
    }
}

/// What a blocked (or approval-needing) retrieved document does to the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnBlocked {
    /// It is left out, and recorded in the provenance (default).
    #[default]
    Drop,
    /// The whole request is refused with the guard's error.
    Refuse,
}

/// What became of one retrieved document: kept in the run record and returned in the
/// response's metadata, so an auditor can see what entered a prompt and what was kept out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Provenance {
    /// The document's id.
    pub id: String,
    /// Its `source` metadata, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Its similarity score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// `allowed`, `sanitized`, `blocked` or `needs_approval`; only the first two entered
    /// the prompt.
    pub verdict: String,
    /// The guard that blocked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// The blocking guard's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Provenance {
    /// The record of `doc`, allowed until judged otherwise.
    pub fn of(doc: &Document) -> Self {
        Self {
            id: doc.id.clone(),
            source: doc.source().map(str::to_owned),
            score: doc.score,
            verdict: "allowed".to_owned(),
            guard: None,
            code: None,
        }
    }

    /// Whether the document entered the prompt.
    pub fn used(&self) -> bool {
        matches!(self.verdict.as_str(), "allowed" | "sanitized")
    }
}

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

    /// The same retriever as a writable store, when it is one (ingestion needs it); `None`
    /// for a read-only retriever.
    fn as_store(&self) -> Option<&dyn VectorStore> {
        None
    }

    /// Whether the retriever can serve: its storage reachable and set up. Hosts call it
    /// at start-up (to fail fast on a bad path or a store made for other dimensions) and
    /// from readiness probes. The default is ready.
    async fn ready(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// A retriever that can also be written to.
#[async_trait]
pub trait VectorStore: Retriever {
    /// Inserts or replaces documents by id.
    async fn upsert(&self, docs: Vec<Document>) -> Result<(), Error>;

    /// Deletes documents by id; unknown ids are ignored. Returns how many were deleted.
    async fn delete(&self, ids: &[String]) -> Result<u64, Error>;

    /// Deletes every document whose [`SOURCE_KEY`] is `source`; returns how many.
    async fn delete_source(&self, source: &str) -> Result<u64, Error>;

    /// Replaces every document of the `sources` with `docs` (each of which must carry one
    /// of them), atomically: readers see the old versions or the new ones, and a failure
    /// leaves the old ones. Re-ingesting a shorter file leaves no stale chunks behind.
    async fn replace_sources(&self, sources: &[String], docs: Vec<Document>) -> Result<(), Error>;
}
