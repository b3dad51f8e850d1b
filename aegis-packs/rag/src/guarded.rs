//! [`GuardedRetriever`]: retrieval whose documents pass the guard chain before anyone reads
//! them — the traffic most pipelines let straight into the prompt.

use aegis_contracts::{Document, Error, Filter, OnBlocked, Provenance, RequestContext, Retriever};
use aegis_core::guard::GuardChain;

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
        self.chain
            .judge_documents(found, ctx, self.on_blocked)
            .await
    }
}
