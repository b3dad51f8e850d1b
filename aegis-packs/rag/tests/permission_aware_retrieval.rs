//! Permission-aware retrieval against a brute-force oracle, on synthetic corpora where the
//! reader may see 1 %, 10 % and 50 % of the documents: the store returns exactly the oracle's
//! top k of what the reader may read (recall@k = 1.0, same order), and never one it may not.
//! Searches without a principal, filters on unindexed fields and bad batches are errors that
//! store nothing.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aegis_contracts::*;
use aegis_rag::{Acl, Embedder, MemoryVectorStore, ProviderEmbedder, cosine};
use proptest::prelude::*;

const WORDS: [&str; 24] = [
    "budget", "salary", "holiday", "policy", "laptop", "travel", "expense", "contract", "invoice",
    "vendor", "security", "badge", "parking", "training", "benefit", "pension", "payroll", "audit",
    "privacy", "incident", "backup", "network", "printer", "canteen",
];

/// A tiny deterministic generator (xorshift), so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn text(&mut self) -> String {
        (0..4 + self.below(6))
            .map(|_| WORDS[self.below(WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn embedder() -> Arc<dyn Embedder> {
    Arc::new(ProviderEmbedder::new(
        Arc::new(aegis_providers::Echo::new("echo")),
        "echo",
        16,
    ))
}

fn reader() -> RequestContext {
    RequestContext::default().with_principal(Principal::new("ada").with_team("research"))
}

/// A corpus where each document is readable by ada with probability `percent` / 100, in
/// one of the ways an ACL can grant it (her id, her team, public), else by others only.
fn corpus(seed: u64, n: usize, percent: u64) -> Vec<Document> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|i| {
            let acl = if rng.below(100) < percent {
                match rng.below(3) {
                    0 => Acl::principals(["ada", "bob"]),
                    1 => Acl::teams(["research"]),
                    _ => Acl::public(),
                }
            } else {
                match rng.below(3) {
                    0 => Acl::principals(["bob"]),
                    1 => Acl::teams(["hr"]),
                    _ => Acl::public().requiring("clearance", "secret"),
                }
            };
            let mut doc = Document::new(format!("doc-{i:04}"), rng.text());
            doc.metadata.insert(
                "source".into(),
                serde_json::json!(format!("file-{}", rng.below(4))),
            );
            acl.attach(doc)
        })
        .collect()
}

/// The oracle: score every document the reader may read, best first (ties by id), top k.
async fn oracle(docs: &[Document], query: &str, k: usize, filter: Option<&Filter>) -> Vec<String> {
    let e = embedder();
    let q = e.embed(&[query.to_owned()]).await.unwrap().pop().unwrap();
    let ada = reader().principal.unwrap();
    let mut scored = Vec::new();
    for d in docs {
        let visible = Acl::of(d).unwrap().allows(&ada);
        let matches = filter.is_none_or(|f| f.iter().all(|(k, v)| d.metadata.get(k) == Some(v)));
        if visible && matches {
            let v = e
                .embed(std::slice::from_ref(&d.content))
                .await
                .unwrap()
                .pop()
                .unwrap();
            scored.push((cosine(&q, &v), d.id.clone()));
        }
    }
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn the_store_returns_the_oracles_top_k_of_what_the_reader_may_read(
        seed in any::<u64>(),
        percent in prop::sample::select(vec![1u64, 10, 50]),
        k in 1usize..12,
        filtered in any::<bool>(),
    ) {
        run(async move {
            let docs = corpus(seed, 300, percent);
            let store = MemoryVectorStore::new(embedder(), ["source"]);
            store.upsert(docs.clone()).await.unwrap();
            let mut rng = Rng(seed.rotate_left(17) | 1);
            let filter: Option<Filter> = filtered.then(|| {
                serde_json::json!({"source": "file-1"}).as_object().unwrap().clone()
            });
            for _ in 0..5 {
                let query = rng.text();
                let got = store.retrieve(&query, k, filter.as_ref(), &reader()).await.unwrap();
                let ids: Vec<String> = got.iter().map(|d| d.id.clone()).collect();
                let expected = oracle(&docs, &query, k, filter.as_ref()).await;
                prop_assert_eq!(&ids, &expected, "query {:?}", query);
                let ada = reader().principal.unwrap();
                for d in &got {
                    prop_assert!(Acl::of(d).unwrap().allows(&ada), "{} is not ada's to read", d.id);
                    prop_assert!(d.score.is_some());
                }
            }
            Ok(())
        })?;
    }
}

#[test]
fn a_search_without_a_principal_is_an_error_never_an_unfiltered_result() {
    run(async {
        let store = MemoryVectorStore::new(embedder(), ["source"]);
        store.upsert(corpus(7, 20, 50)).await.unwrap();
        let err = store
            .retrieve("budget", 5, None, &RequestContext::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    });
}

#[test]
fn bad_input_is_a_clear_error_and_stores_nothing() {
    run(async {
        let store = MemoryVectorStore::new(embedder(), ["source"]);
        let filter = serde_json::json!({"author": "bob"})
            .as_object()
            .unwrap()
            .clone();
        let err = store
            .retrieve("budget", 5, Some(&filter), &reader())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        assert!(err.message().contains("`author`"), "{err}");

        let good = Acl::public().attach(Document::new("ok", "fine text"));
        let mut bad_acl = Document::new("bad", "text");
        bad_acl
            .metadata
            .insert("acl".into(), serde_json::json!({"team": ["hr"]}));
        let huge = Acl::public().attach(Document::new(
            "huge",
            "x".repeat(aegis_rag::MAX_DOCUMENT_BYTES + 1),
        ));
        for batch in [vec![good.clone(), bad_acl], vec![good.clone(), huge]] {
            assert_eq!(
                store.upsert(batch).await.unwrap_err().kind(),
                ErrorKind::InvalidRequest
            );
            assert!(store.is_empty().await, "nothing half-ingested");
        }
        // A provider answering vectors of the wrong length: an error, nothing stored.
        let wrong = MemoryVectorStore::new(
            Arc::new(ProviderEmbedder::new(
                Arc::new(aegis_providers::Echo::new("echo")),
                "echo",
                0,
            )),
            ["source"],
        );
        assert!(wrong.upsert(vec![good]).await.is_err());
        assert!(wrong.is_empty().await);
    });
}

#[test]
fn deletes_by_id_and_by_source() {
    run(async {
        let store = MemoryVectorStore::new(embedder(), ["source"]);
        let docs = corpus(11, 40, 50);
        let from_one = docs
            .iter()
            .filter(|d| d.metadata["source"] == "file-1")
            .count();
        store.upsert(docs.clone()).await.unwrap();
        assert_eq!(store.delete_source("file-1").await, from_one);
        store.delete(&[docs[0].id.clone()]).await.unwrap();
        let left = 40 - from_one - usize::from(docs[0].metadata["source"] != "file-1");
        assert_eq!(store.len().await, left);
    });
}
