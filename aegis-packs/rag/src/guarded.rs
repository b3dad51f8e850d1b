//! [`GuardedRetriever`]: retrieval whose documents pass the guard chain before anyone reads
//! them — the traffic most pipelines let straight into the prompt.

use aegis_contracts::{Document, Error, Filter, GuardSubject, RequestContext, Retriever};
use aegis_core::guard::{ChainDecision, GuardChain, blocked_error};
use serde::Serialize;

/// What a blocked (or approval-needing) document does to the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnBlocked {
    /// It is left out, and recorded in the provenance (default).
    #[default]
    Drop,
    /// The whole request is refused with the guard's error.
    Refuse,
}

/// What became of one retrieved document: for the run record and the response's metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Provenance {
    /// The document's id.
    pub id: String,
    /// Its `source` metadata, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Its similarity score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// `allowed`, `sanitized`, `blocked` or `needs_approval`.
    pub verdict: &'static str,
    /// The guard that blocked it, and its code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// The blocking guard's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A retriever whose every document is judged by `chain` as
/// [`GuardSubject::Retrieved`] (origin `retrieval`, untrusted): a sanitized document goes
/// on sanitized, a blocked one is dropped (or refuses the request, per [`OnBlocked`]) —
/// and each is accounted for in the [`Provenance`]. Only what the reader may read reaches
/// a guard: the inner store filters first.
pub struct GuardedRetriever<R> {
    inner: R,
    chain: GuardChain,
    on_blocked: OnBlocked,
}

impl<R: std::fmt::Debug> std::fmt::Debug for GuardedRetriever<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedRetriever")
            .field("inner", &self.inner)
            .field("on_blocked", &self.on_blocked)
            .finish_non_exhaustive()
    }
}

impl<R: Retriever> GuardedRetriever<R> {
    /// `inner`'s documents judged by `chain`.
    pub fn new(inner: R, chain: GuardChain, on_blocked: OnBlocked) -> Self {
        Self {
            inner,
            chain,
            on_blocked,
        }
    }

    /// The `k` best documents for `query` the reader may read that passed the chain, and
    /// what became of every document retrieved.
    pub async fn retrieve(
        &self,
        query: &str,
        k: usize,
        filter: Option<&Filter>,
        ctx: &RequestContext,
    ) -> Result<(Vec<Document>, Vec<Provenance>), Error> {
        let found = self.inner.retrieve(query, k, filter, ctx).await?;
        let mut passed = Vec::with_capacity(found.len());
        let mut provenance = Vec::with_capacity(found.len());
        for document in found {
            let mut record = Provenance {
                id: document.id.clone(),
                source: document
                    .metadata
                    .get("source")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                score: document.score,
                verdict: "allowed",
                guard: None,
                code: None,
            };
            let outcome = self
                .chain
                .check(GuardSubject::Retrieved { document }, ctx, &[])
                .await;
            let sanitized = outcome.sanitized();
            match (outcome.decision, outcome.subject) {
                (ChainDecision::Allowed, GuardSubject::Retrieved { document }) => {
                    if sanitized {
                        record.verdict = "sanitized";
                    }
                    passed.push(document);
                }
                (ChainDecision::Allowed, _) => {
                    return Err(Error::internal("the chain changed a document's kind"));
                }
                (ChainDecision::Blocked(v) | ChainDecision::NeedsApproval(v), _) => {
                    if self.on_blocked == OnBlocked::Refuse {
                        return Err(blocked_error(&v));
                    }
                    record.verdict = if v.is_block() {
                        "blocked"
                    } else {
                        "needs_approval"
                    };
                    record.code = match &v.decision {
                        aegis_contracts::Decision::Block { code, .. } => Some(code.clone()),
                        _ => None,
                    };
                    record.guard = Some(v.guard);
                }
            }
            provenance.push(record);
        }
        Ok((passed, provenance))
    }
}
