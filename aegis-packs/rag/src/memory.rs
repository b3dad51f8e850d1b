//! [`MemoryVectorStore`]: exact, permission-aware search in memory.

use std::{cmp::Ordering, collections::BTreeSet, sync::Arc};

use aegis_contracts::{
    Document, Error, Filter, RequestContext, Retriever, VectorStore, async_trait,
};
use tokio::sync::RwLock;

use crate::{ACL_KEY, Acl, Embedder, checked_vectors, cosine, reader};

/// The largest document text a store takes, in bytes (chunk before ingesting).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

struct Entry {
    doc: Document,
    acl: Acl,
    vector: Vec<f32>,
}

/// Documents and their vectors in memory; every search is exact (each visible document is
/// scored) and sees only what the reader may read, before anything is ranked.
pub struct MemoryVectorStore {
    embedder: Arc<dyn Embedder>,
    indexed: BTreeSet<String>,
    entries: RwLock<Vec<Entry>>,
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
    /// fields `indexed` (equality).
    pub fn new<S: Into<String>>(
        embedder: Arc<dyn Embedder>,
        indexed: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            embedder,
            indexed: indexed.into_iter().map(Into::into).collect(),
            entries: RwLock::new(Vec::new()),
        }
    }

    /// How many documents it holds.
    pub async fn len(&self) -> usize {
        self.entries.read().await.len()
    }

    /// Whether it holds none.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// Deletes every document whose metadata `source` is `source`; returns how many.
    pub async fn delete_source(&self, source: &str) -> usize {
        let mut entries = self.entries.write().await;
        let before = entries.len();
        entries.retain(|e| e.doc.metadata.get("source").and_then(|v| v.as_str()) != Some(source));
        before - entries.len()
    }

    /// `filter`, refused when it names a field the store does not index.
    fn check_filter<'f>(&self, filter: Option<&'f Filter>) -> Result<Option<&'f Filter>, Error> {
        if let Some(f) = filter {
            if let Some(key) = f.keys().find(|k| !self.indexed.contains(*k)) {
                return Err(Error::invalid_request(format!(
                    "cannot filter on `{key}`: the store indexes {:?}",
                    self.indexed
                )));
            }
        }
        Ok(filter)
    }
}

/// Orders hits best first: higher score, then id (so equal scores rank the same
/// everywhere). A total order (scores are finite: vectors are checked on the way in).
fn best_first(a: &(f32, &Entry), b: &(f32, &Entry)) -> Ordering {
    b.0.total_cmp(&a.0)
        .then_with(|| a.1.doc.id.cmp(&b.1.doc.id))
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
        let reader = reader(ctx)?;
        let filter = self.check_filter(filter)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let dimensions = self.embedder.dimensions();
        let query = checked_vectors(
            self.embedder.embed(&[query.to_owned()]).await?,
            1,
            dimensions,
        )?
        .remove(0);
        let entries = self.entries.read().await;
        // The reader's permissions and the filter decide what is scored at all.
        let mut hits: Vec<(f32, &Entry)> = entries
            .iter()
            .filter(|e| e.acl.allows(reader))
            .filter(|e| {
                filter.is_none_or(|f| f.iter().all(|(k, v)| e.doc.metadata.get(k) == Some(v)))
            })
            .map(|e| (cosine(&query, &e.vector), e))
            .collect();
        let k = k.min(hits.len());
        if k < hits.len() {
            hits.select_nth_unstable_by(k, best_first);
            hits.truncate(k);
        }
        hits.sort_by(best_first);
        Ok(hits
            .into_iter()
            .map(|(score, e)| {
                let mut d = e.doc.clone();
                // Who else may read it is not the reader's to know, nor the prompt's.
                d.metadata.remove(ACL_KEY);
                d.score = Some(score);
                d
            })
            .collect())
    }
}

#[async_trait]
impl VectorStore for MemoryVectorStore {
    /// Checks every document (text size, ACL) and embeds them all before storing any: a
    /// batch with one bad document changes nothing.
    async fn upsert(&self, docs: Vec<Document>) -> Result<(), Error> {
        let mut acls = Vec::with_capacity(docs.len());
        for d in &docs {
            if d.id.is_empty() {
                return Err(Error::invalid_request("a document needs an id"));
            }
            if d.content.len() > MAX_DOCUMENT_BYTES {
                return Err(Error::invalid_request(format!(
                    "document `{}` is {} bytes; at most {MAX_DOCUMENT_BYTES} (chunk it)",
                    d.id,
                    d.content.len()
                )));
            }
            acls.push(Acl::of(d)?);
        }
        let texts: Vec<String> = docs.iter().map(|d| d.content.clone()).collect();
        let vectors = checked_vectors(
            self.embedder.embed(&texts).await?,
            texts.len(),
            self.embedder.dimensions(),
        )?;
        let mut entries = self.entries.write().await;
        for ((doc, acl), vector) in docs.into_iter().zip(acls).zip(vectors) {
            let entry = Entry { doc, acl, vector };
            match entries.iter_mut().find(|e| e.doc.id == entry.doc.id) {
                Some(existing) => *existing = entry,
                None => entries.push(entry),
            }
        }
        Ok(())
    }

    async fn delete(&self, ids: &[String]) -> Result<(), Error> {
        self.entries
            .write()
            .await
            .retain(|e| !ids.contains(&e.doc.id));
        Ok(())
    }
}
