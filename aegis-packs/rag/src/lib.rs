//! # aegis-rag
//!
//! Permission-aware retrieval: documents say who may read them, and a store's search
//! applies that inside the search — never a top-k cut first and permissions after it, which
//! returns 4 of the 40 documents asked for or, worse, leaks the others into a prompt.
//!
//! - [`Acl`]: who may read a document, kept in its metadata under `"acl"`: named
//!   principals, teams, or everyone (`public`), and labels the reader must hold.
//! - [`Embedder`]: texts to vectors; [`ProviderEmbedder`] through any provider's embeddings
//!   (the offline echo provider gives deterministic ones).
//! - [`GuardedRetriever`]: every retrieved document judged by the guard chain as
//!   `GuardSubject::Retrieved` (origin `retrieval`, untrusted) — dropped or refusing the
//!   request when blocked, sanitized when sanitized — with its [`Provenance`].
//! - [`MemoryVectorStore`]: exact search in memory (tests, embedding hosts), a
//!   [`Retriever`] and a [`VectorStore`]. A search without a principal is an error, never an
//!   unfiltered result; a filter on a field the store does not index is an error, never a
//!   silent full scan; a batch with one bad document stores none of it.
//!
//! ```
//! use std::sync::Arc;
//! use aegis_contracts::*;
//! use aegis_rag::{Acl, MemoryVectorStore, ProviderEmbedder};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let embedder = ProviderEmbedder::new(Arc::new(aegis_providers::Echo::new("echo")), "echo", 16);
//! let store = MemoryVectorStore::new(Arc::new(embedder), ["source"]);
//! store.upsert(vec![
//!     Acl::teams(["hr"]).attach(Document::new("salaries", "salary bands for 2027")),
//!     Acl::public().attach(Document::new("handbook", "the holiday policy")),
//! ]).await.unwrap();
//!
//! let ada = RequestContext::default().with_principal(Principal::new("ada").with_team("research"));
//! let found = store.retrieve("salary bands", 5, None, &ada).await.unwrap();
//! assert_eq!(found.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["handbook"]);
//!
//! let nobody = RequestContext::default();
//! assert_eq!(store.retrieve("salary", 5, None, &nobody).await.unwrap_err().kind(), ErrorKind::Unauthenticated);
//! # });
//! ```
#![forbid(unsafe_code)]

mod acl;
mod config;
mod embed;
mod guarded;
mod index;
mod ingest;
mod memory;
#[cfg(feature = "pgvector")]
mod pgvector;
mod policy;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use acl::{ACL_KEY, Acl};

pub use aegis_contracts::{Document, Filter, OnBlocked, Provenance, Retriever, VectorStore};
pub use config::{EmbeddingConfig, MAX_DIMENSIONS, MemoryStoreConfig, memory_store, register};
#[cfg(feature = "pgvector")]
pub use config::{PgVectorStoreConfig, pgvector_store};
#[cfg(feature = "sqlite")]
pub use config::{SqliteStoreConfig, sqlite_store};
pub use embed::{Embedder, ProviderEmbedder};
pub use guarded::GuardedRetriever;
pub use index::MAX_DOCUMENT_BYTES;
pub use ingest::{
    Chunking, IngestText, Ingested, MAX_INGEST_TEXTS, MAX_SOURCE_BYTES, MAX_TEXT_BYTES, ingest,
};
pub use memory::MemoryVectorStore;
#[cfg(feature = "pgvector")]
pub use pgvector::PgVectorStore;
pub use policy::{MAX_K, RETRIEVAL_OPTION, Retrieval, RetrievalConfig};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteVectorStore;

use aegis_contracts::{Error, ErrorKind, Principal, RequestContext};

/// The reader of a search: its principal, or an error — a search without one is never
/// unfiltered.
pub fn reader(ctx: &RequestContext) -> Result<&Principal, Error> {
    ctx.principal.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::Unauthenticated,
            "retrieval needs an authenticated principal: documents are filtered by who may read them",
        )
    })
}

/// Cosine similarity of two vectors of one length (0 when either is all zeros), computed in
/// `f64` so finite inputs give a finite score.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())) as f32
    }
}

/// `vectors` checked against what was asked of an embedder: one per text, each of
/// `dimensions` finite numbers — else an error, never a misfiled document.
pub fn checked_vectors(
    vectors: Vec<Vec<f32>>,
    texts: usize,
    dimensions: usize,
) -> Result<Vec<Vec<f32>>, Error> {
    if vectors.len() != texts {
        return Err(Error::new(
            ErrorKind::Provider,
            format!(
                "the embedder answered {} vectors for {texts} texts",
                vectors.len()
            ),
        ));
    }
    if let Some(v) = vectors
        .iter()
        .find(|v| v.len() != dimensions || v.iter().any(|x| !x.is_finite()))
    {
        return Err(Error::new(
            ErrorKind::Provider,
            format!(
                "the embedder answered a vector of {} dimensions (or not finite numbers); the store needs {dimensions}",
                v.len()
            ),
        ));
    }
    Ok(vectors)
}
