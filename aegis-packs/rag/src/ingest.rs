//! Ingestion: texts cut into chunks, each judged by the guard chain before it is indexed (a
//! secret is redacted or the text refused, never stored), then written whole.

use aegis_contracts::{Document, Error, OnBlocked, RequestContext, SOURCE_KEY, VectorStore};
use aegis_core::guard::GuardChain;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ACL_KEY, Acl};

/// The longest source name, in bytes (it is in every chunk's id, the prompt's document tag,
/// the response metadata and the audit).
pub const MAX_SOURCE_BYTES: usize = 512;

/// The most texts one ingestion takes.
pub const MAX_INGEST_TEXTS: usize = 1_000;

/// The largest text one ingestion takes, in bytes (before chunking).
pub const MAX_TEXT_BYTES: usize = 16 << 20;

/// How texts are cut: chunks of at most `max_chars` characters, each starting `overlap`
/// characters before the previous one ended; cuts fall at a paragraph, line, sentence or
/// word boundary when there is one in the second half of the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Chunking {
    /// The longest chunk, in characters (default 1000; 50 to 100000).
    #[serde(default = "default_max_chars")]
    pub max_chars: usize,
    /// How many characters a chunk repeats of the previous one (default 100; less than
    /// half of `max_chars`).
    #[serde(default = "default_overlap")]
    pub overlap: usize,
}

fn default_max_chars() -> usize {
    1_000
}

fn default_overlap() -> usize {
    100
}

impl Default for Chunking {
    fn default() -> Self {
        Self {
            max_chars: default_max_chars(),
            overlap: default_overlap(),
        }
    }
}

impl Chunking {
    /// Chunks of `max_chars` with `overlap`, checked.
    pub fn new(max_chars: usize, overlap: usize) -> Result<Self, Error> {
        let c = Self { max_chars, overlap };
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), Error> {
        if !(50..=100_000).contains(&self.max_chars) || self.overlap * 2 >= self.max_chars {
            return Err(Error::invalid_request(
                "chunking: max_chars must be between 50 and 100000, and overlap less than half of it",
            ));
        }
        Ok(())
    }

    /// `text` cut into chunks (none for a blank text).
    pub fn split(&self, text: &str) -> Vec<String> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let hard_end = (start + self.max_chars).min(chars.len());
            let end = if hard_end == chars.len() {
                hard_end
            } else {
                cut_at(&chars, start + self.max_chars / 2, hard_end)
            };
            let from = chars[start].0;
            let to = chars.get(end).map_or(text.len(), |c| c.0);
            let chunk = text[from..to].trim();
            if !chunk.is_empty() {
                chunks.push(chunk.to_owned());
            }
            if end == chars.len() {
                break;
            }
            start = end.saturating_sub(self.overlap).max(start + 1);
        }
        chunks
    }
}

/// The best place to cut in `chars[lo..hi]`: after the last paragraph break, else line
/// break, else sentence end, else space; `hi` when there is none.
fn cut_at(chars: &[(usize, char)], lo: usize, hi: usize) -> usize {
    let window = lo..hi;
    let last = |pred: &dyn Fn(usize) -> bool| window.clone().rev().find(|&i| pred(i));
    let ch = |i: usize| chars.get(i).map(|c| c.1);
    last(&|i| ch(i) == Some('\n') && i > 0 && ch(i - 1) == Some('\n'))
        .or_else(|| last(&|i| ch(i) == Some('\n')))
        .or_else(|| last(&|i| matches!(ch(i), Some('.' | '!' | '?')) && ch(i + 1) == Some(' ')))
        .or_else(|| last(&|i| ch(i) == Some(' ')))
        .map_or(hi, |i| i + 1)
}

/// One text to ingest: its source (what a re-ingestion replaces), who may read it, and
/// metadata for every chunk.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IngestText {
    /// Where the text comes from (a path, a URL): chunk ids are `{source}#{n}`, and
    /// ingesting a source again replaces all of its chunks.
    pub source: String,
    /// The text.
    pub text: String,
    /// Who may read it. Required: a document nobody is granted is read by nobody.
    pub acl: Acl,
    /// Metadata every chunk carries (filterable when the store indexes the field).
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl IngestText {
    /// A text from `source` readable as `acl` says.
    pub fn new(source: impl Into<String>, text: impl Into<String>, acl: Acl) -> Self {
        Self {
            source: source.into(),
            text: text.into(),
            acl,
            metadata: Map::new(),
        }
    }
}

/// What an ingestion stored, per source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Ingested {
    /// The source.
    pub source: String,
    /// How many chunks it was stored as.
    pub chunks: usize,
    /// How many of them a guard sanitized (a secret redacted, say) before they were
    /// stored.
    pub sanitized: usize,
}

/// Cuts `texts` into chunks, judges every chunk with `chain` as a retrieved document
/// (origin `retrieval`) — a sanitized chunk is stored sanitized, a blocked one refuses the
/// whole ingestion — and replaces the texts' sources in `store` in one write. Bad input (a
/// blank source, metadata that tries to set `source` or `acl`, too many or too large
/// texts) and a blocked chunk change nothing stored.
pub async fn ingest(
    store: &dyn VectorStore,
    chain: &GuardChain,
    ctx: &RequestContext,
    texts: Vec<IngestText>,
    chunking: Chunking,
) -> Result<Vec<Ingested>, Error> {
    chunking.check()?;
    if texts.is_empty() || texts.len() > MAX_INGEST_TEXTS {
        return Err(Error::invalid_request(format!(
            "an ingestion takes 1 to {MAX_INGEST_TEXTS} texts"
        )));
    }
    let mut sources: Vec<String> = Vec::with_capacity(texts.len());
    let mut report = Vec::with_capacity(texts.len());
    let mut documents = Vec::new();
    for (i, t) in texts.into_iter().enumerate() {
        let at = format!("documents[{i}]");
        if t.source.trim().is_empty()
            || t.source.len() > MAX_SOURCE_BYTES
            || t.source.chars().any(char::is_control)
        {
            return Err(Error::invalid_request(format!(
                "{at}.source: 1 to {MAX_SOURCE_BYTES} bytes without control characters"
            )));
        }
        if sources.contains(&t.source) {
            return Err(Error::invalid_request(format!(
                "{at}.source: `{}` is in the request twice",
                t.source
            )));
        }
        if t.text.len() > MAX_TEXT_BYTES {
            return Err(Error::invalid_request(format!(
                "{at}.text: {} bytes; at most {MAX_TEXT_BYTES}",
                t.text.len()
            )));
        }
        if let Some(key) = [SOURCE_KEY, ACL_KEY, "chunk"]
            .into_iter()
            .find(|k| t.metadata.contains_key(*k))
        {
            return Err(Error::invalid_request(format!(
                "{at}.metadata.{key}: set by ingestion, not by the caller"
            )));
        }
        // The source name travels where no guard looks again (chunk ids, the document tag,
        // the response metadata, the audit): it must pass the guards untouched.
        let name = Document::new("source", t.source.clone());
        if judge(chain, ctx, name, &format!("{at}.source"), &t.source)
            .await?
            .1
        {
            return Err(Error::invalid_request(format!(
                "{at}.source: a guard would redact part of it (a credential in a URL?); name the source without it"
            )));
        }
        // The whole text first — a secret that chunking would cut in two is still found —
        // then each chunk of what the guards let through.
        let text = Document::new("text", t.text);
        let (whole, whole_sanitized) = judge(chain, ctx, text, &at, &t.source).await?;
        let mut entry = Ingested {
            source: t.source.clone(),
            chunks: 0,
            sanitized: 0,
        };
        for (n, chunk) in chunking.split(&whole.content).into_iter().enumerate() {
            let mut doc = Document::new(format!("{}#{n}", t.source), chunk);
            doc.metadata.clone_from(&t.metadata);
            doc.metadata
                .insert(SOURCE_KEY.to_owned(), Value::String(t.source.clone()));
            doc.metadata.insert("chunk".to_owned(), Value::from(n));
            let what = format!("{at}: chunk {n}");
            let (document, sanitized) = judge(chain, ctx, doc, &what, &t.source).await?;
            entry.sanitized += usize::from(sanitized || whole_sanitized);
            entry.chunks += 1;
            documents.push(t.acl.attach(document));
        }
        sources.push(t.source);
        report.push(entry);
    }
    store.replace_sources(&sources, documents).await?;
    Ok(report)
}

/// `doc` judged as a retrieved document: as the guards left it and whether one sanitized
/// it, or the refusal naming `what` of `source` and the guard.
async fn judge(
    chain: &GuardChain,
    ctx: &RequestContext,
    doc: Document,
    what: &str,
    source: &str,
) -> Result<(Document, bool), Error> {
    // The same judgement retrieval makes, refusing instead of dropping.
    let (mut passed, provenance) = chain
        .judge_documents(vec![doc], ctx, OnBlocked::Refuse)
        .await
        .map_err(|e| {
            Error::new(
                e.kind(),
                format!(
                    "{what} of `{source}` was refused ({}); nothing was ingested",
                    e.message()
                ),
            )
            .with_code(e.code())
        })?;
    let sanitized = provenance.first().is_some_and(|p| p.verdict == "sanitized");
    passed
        .pop()
        .map(|doc| (doc, sanitized))
        .ok_or_else(|| Error::internal("the chain passed no document and refused none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_text_cut_at_boundaries_with_overlap() {
        let c = Chunking::new(60, 10).unwrap();
        let text = "The first paragraph is right here now.\n\nSecond one is a little longer than that. Third sentence ends it.";
        let chunks = c.split(text);
        assert!(chunks.len() >= 2, "{chunks:?}");
        assert!(chunks.iter().all(|ch| ch.chars().count() <= 60));
        assert_eq!(
            chunks[0], "The first paragraph is right here now.",
            "cut at the paragraph"
        );
        // Every word of the text is in some chunk.
        for word in text.split_whitespace() {
            assert!(chunks.iter().any(|ch| ch.contains(word)), "{word} lost");
        }
        // Unicode never splits a character, and a text without spaces is still cut.
        let wide = "é".repeat(250);
        let parts = c.split(&wide);
        assert!(parts.iter().all(|p| p.chars().count() <= 60));
        assert!(parts.iter().map(|p| p.chars().count()).sum::<usize>() >= 250);
        assert!(c.split("   \n  ").is_empty());
        assert!(Chunking::new(60, 30).is_err(), "overlap of half a chunk");
        assert!(Chunking::new(10, 0).is_err());
    }
}
