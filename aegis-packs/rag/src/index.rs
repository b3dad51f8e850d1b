//! The exact, permission-aware index every store searches: documents with their ACL and
//! vector, scored only when the reader may read them and the filter matches.

use std::{cmp::Ordering, collections::BTreeSet, collections::HashMap};

use aegis_contracts::{Document, Error, Filter, Principal, RequestContext, SOURCE_KEY};

use crate::{ACL_KEY, Acl, Embedder, checked_vectors, reader};

/// The largest document text a store takes, in bytes (chunk before ingesting).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// How many texts go to the embedder in one call.
const EMBED_BATCH: usize = 128;

/// One stored document: its ACL parsed once, its vector checked once.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) doc: Document,
    pub(crate) acl: Acl,
    pub(crate) vector: Vec<f32>,
    /// The vector's length, computed once: a search computes only dot products.
    norm: f64,
    /// Its ACL's number among the index's distinct ACLs (set by the index).
    acl_id: u32,
}

impl Entry {
    pub(crate) fn new(doc: Document, acl: Acl, vector: Vec<f32>) -> Self {
        let norm = norm(&vector);
        Self {
            doc,
            acl,
            vector,
            norm,
            acl_id: 0,
        }
    }
}

/// The Euclidean length of `v`, in `f64`.
fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt()
}

/// The cosine similarity of `query` (of length `query_norm`) and `e`, with the lengths
/// computed once.
fn score(query: &[f32], query_norm: f64, e: &Entry) -> f32 {
    if query_norm == 0.0 || e.norm == 0.0 {
        return 0.0;
    }
    (dot(query, &e.vector) / (query_norm * e.norm)) as f32
}

/// The dot product in `f64`, summed in four independent lanes (so the compiler keeps
/// several additions in flight instead of one long dependency chain).
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for (lane, (p, q)) in lanes.iter_mut().zip(x.iter().zip(y)) {
            *lane += f64::from(*p) * f64::from(*q);
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Checks every document (id, text size, ACL, and its `source` when `sources` is given)
/// and embeds them all: entries ready to store, or an error that stores nothing.
pub(crate) async fn prepare(
    embedder: &dyn Embedder,
    docs: Vec<Document>,
    sources: Option<&[String]>,
) -> Result<Vec<Entry>, Error> {
    let mut acls = Vec::with_capacity(docs.len());
    let mut ids = BTreeSet::new();
    for d in &docs {
        if d.id.is_empty() {
            return Err(Error::invalid_request("a document needs an id"));
        }
        if !ids.insert(d.id.as_str()) {
            return Err(Error::invalid_request(format!(
                "document `{}` is in the batch twice",
                d.id
            )));
        }
        if d.content.len() > MAX_DOCUMENT_BYTES {
            return Err(Error::invalid_request(format!(
                "document `{}` is {} bytes; at most {MAX_DOCUMENT_BYTES} (chunk it)",
                d.id,
                d.content.len()
            )));
        }
        if let Some(sources) = sources {
            if !d.source().is_some_and(|s| sources.iter().any(|x| x == s)) {
                return Err(Error::invalid_request(format!(
                    "document `{}` does not carry a `metadata.{SOURCE_KEY}` among those it replaces ({sources:?})",
                    d.id
                )));
            }
        }
        acls.push(Acl::of(d)?);
    }
    let mut vectors = Vec::with_capacity(docs.len());
    for batch in docs.chunks(EMBED_BATCH) {
        let texts: Vec<String> = batch.iter().map(|d| d.content.clone()).collect();
        vectors.extend(checked_vectors(
            embedder.embed(&texts).await?,
            texts.len(),
            embedder.dimensions(),
        )?);
    }
    Ok(docs
        .into_iter()
        .zip(acls)
        .zip(vectors)
        .map(|((doc, acl), vector)| Entry::new(doc, acl, vector))
        .collect())
}

/// `filter`, refused when it names a field the store does not index.
pub(crate) fn check_filter<'f>(
    indexed: &BTreeSet<String>,
    filter: Option<&'f Filter>,
) -> Result<Option<&'f Filter>, Error> {
    if let Some(key) = filter.and_then(|f| f.keys().find(|k| !indexed.contains(*k))) {
        return Err(Error::invalid_request(format!(
            "cannot filter on `{key}`: the store indexes {indexed:?}"
        )));
    }
    // Equality on strings, booleans and integers only: every store compares those alike
    // (arrays, objects and fractions would mean containment in one store, equality in
    // another).
    if let Some((key, _)) = filter.and_then(|f| {
        f.iter()
            .find(|(_, v)| !(v.is_string() || v.is_boolean() || v.is_i64() || v.is_u64()))
    }) {
        return Err(Error::invalid_request(format!(
            "filter `{key}`: only a string, a boolean or an integer can be matched"
        )));
    }
    Ok(filter)
}

/// The fields a store may filter on: `indexed`, and always `source`.
pub(crate) fn indexed_fields<S: Into<String>>(
    indexed: impl IntoIterator<Item = S>,
) -> BTreeSet<String> {
    let mut fields: BTreeSet<String> = indexed.into_iter().map(Into::into).collect();
    fields.insert(SOURCE_KEY.to_owned());
    fields
}

/// What every store checks before it searches: the reader (a search without one is an
/// error, never unfiltered), the filter (only indexed fields), and the query's vector —
/// `None` when `k` is 0 and there is nothing to search for.
pub(crate) struct Search<'a> {
    pub(crate) reader: &'a Principal,
    pub(crate) filter: Option<&'a Filter>,
    pub(crate) query: Vec<f32>,
}

impl<'a> Search<'a> {
    pub(crate) async fn begin(
        embedder: &dyn Embedder,
        indexed: &BTreeSet<String>,
        query: &str,
        k: usize,
        filter: Option<&'a Filter>,
        ctx: &'a RequestContext,
    ) -> Result<Option<Search<'a>>, Error> {
        let reader = reader(ctx)?;
        let filter = check_filter(indexed, filter)?;
        if k == 0 {
            return Ok(None);
        }
        let dimensions = embedder.dimensions();
        let query =
            checked_vectors(embedder.embed(&[query.to_owned()]).await?, 1, dimensions)?.remove(0);
        Ok(Some(Search {
            reader,
            filter,
            query,
        }))
    }
}

/// Documents by id, searched exactly.
#[derive(Debug, Default)]
pub(crate) struct Index {
    entries: Vec<Entry>,
    by_id: HashMap<String, usize>,
    /// The distinct ACLs of the entries: a search decides each once for its reader (most
    /// documents share their source's ACL), then checks a flag per entry instead of
    /// following the ACL's strings.
    acls: Vec<Acl>,
    acl_ids: HashMap<Acl, u32>,
}

impl Index {
    /// An index of `entries` (later ones replace earlier ones of the same id).
    pub(crate) fn of(entries: Vec<Entry>) -> Self {
        let mut index = Self::default();
        index.upsert(entries);
        index
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn intern(&mut self, acl: &Acl) -> u32 {
        if let Some(&id) = self.acl_ids.get(acl) {
            return id;
        }
        let id = u32::try_from(self.acls.len()).unwrap_or(u32::MAX);
        self.acls.push(acl.clone());
        self.acl_ids.insert(acl.clone(), id);
        id
    }

    /// Inserts or replaces by id.
    pub(crate) fn upsert(&mut self, entries: Vec<Entry>) {
        for mut entry in entries {
            entry.acl_id = self.intern(&entry.acl);
            match self.by_id.get(&entry.doc.id) {
                Some(&at) => self.entries[at] = entry,
                None => {
                    self.by_id.insert(entry.doc.id.clone(), self.entries.len());
                    self.entries.push(entry);
                }
            }
        }
    }

    /// Removes the entries `gone` says to; returns how many.
    pub(crate) fn remove_where(&mut self, gone: impl Fn(&Entry) -> bool) -> u64 {
        let before = self.entries.len();
        self.entries.retain(|e| !gone(e));
        let removed = before - self.entries.len();
        if removed > 0 {
            self.by_id = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.doc.id.clone(), i))
                .collect();
            // Forget the ACLs no entry has any more.
            self.acls.clear();
            self.acl_ids.clear();
            for i in 0..self.entries.len() {
                let acl = self.entries[i].acl.clone();
                self.entries[i].acl_id = self.intern(&acl);
            }
        }
        removed as u64
    }

    /// Removes documents by id; returns how many.
    pub(crate) fn delete(&mut self, ids: &[String]) -> u64 {
        let ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        self.remove_where(|e| ids.contains(e.doc.id.as_str()))
    }

    /// Removes every document of `source`; returns how many.
    pub(crate) fn delete_source(&mut self, source: &str) -> u64 {
        self.remove_where(|e| e.doc.source() == Some(source))
    }

    /// Removes every document of any of `sources`; returns how many.
    pub(crate) fn delete_sources(&mut self, sources: &[String]) -> u64 {
        self.remove_where(|e| {
            e.doc
                .source()
                .is_some_and(|s| sources.iter().any(|x| x == s))
        })
    }

    /// The `k` best documents for `query` among those `reader` may read that match
    /// `filter`, best first, each with its score and without its ACL. The reader's
    /// permissions and the filter decide what is scored at all.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        reader: &Principal,
    ) -> Vec<Document> {
        let query_norm = norm(query);
        let allowed: Vec<bool> = self.acls.iter().map(|a| a.allows(reader)).collect();
        let mut hits: Vec<(f32, &Entry)> = self
            .entries
            .iter()
            .filter(|e| allowed.get(e.acl_id as usize) == Some(&true))
            .filter(|e| {
                filter.is_none_or(|f| f.iter().all(|(k, v)| e.doc.metadata.get(k) == Some(v)))
            })
            .map(|e| (score(query, query_norm, e), e))
            .collect();
        let k = k.min(hits.len());
        if k < hits.len() {
            hits.select_nth_unstable_by(k, best_first);
            hits.truncate(k);
        }
        hits.sort_by(best_first);
        hits.into_iter()
            .map(|(score, e)| {
                let mut d = e.doc.clone();
                // Who else may read it is not the reader's to know, nor the prompt's.
                d.metadata.remove(ACL_KEY);
                d.score = Some(score);
                d
            })
            .collect()
    }
}

/// Orders hits best first: higher score, then id (so equal scores rank the same
/// everywhere). A total order (scores are finite: vectors are checked on the way in).
fn best_first(a: &(f32, &Entry), b: &(f32, &Entry)) -> Ordering {
    b.0.total_cmp(&a.0)
        .then_with(|| a.1.doc.id.cmp(&b.1.doc.id))
}
