//! Permission-aware retrieval against a brute-force oracle, on synthetic corpora where the
//! reader may see 1 %, 10 % and 50 % of the documents: the store returns exactly the oracle's
//! top k of what the reader may read (recall@k = 1.0, same order), and never one it may not.
//! Searches without a principal, filters on unindexed fields and bad batches are errors that
//! store nothing.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aegis_contracts::*;
use aegis_rag::{Acl, Embedder, MemoryVectorStore, ProviderEmbedder};
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

/// The reader: ada of team research in organisation acme, cleared `confidential`.
fn reader() -> RequestContext {
    let mut ada = Principal::new("ada").with_team("research");
    ada.org = Some("acme".into());
    ada.labels.insert("clearance".into(), "confidential".into());
    RequestContext::default().with_principal(ada)
}

/// A corpus where each document is readable by the reader with probability `percent` /
/// 100 — through each way an ACL grants access — and otherwise denied to it in each way one
/// denies it; with whether the reader may read it, decided here, not by the crate's ACL code.
fn corpus(seed: u64, n: usize, percent: u64) -> Vec<(Document, bool)> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|i| {
            let visible = rng.below(100) < percent;
            let acl = if visible {
                match rng.below(5) {
                    0 => Acl::principals(["ada", "bob"]),
                    1 => Acl::teams(["research"]),
                    2 => Acl::public(),
                    3 => Acl::public().in_org("acme"),
                    _ => Acl::teams(["research"]).requiring("clearance", "confidential"),
                }
            } else {
                match rng.below(5) {
                    0 => Acl::principals(["bob"]),
                    1 => Acl::teams(["hr"]),
                    2 => Acl::public().requiring("clearance", "secret"),
                    3 => Acl::teams(["research"]).in_org("globex"),
                    _ => Acl::default(),
                }
            };
            let mut doc = Document::new(format!("doc-{i:04}"), rng.text());
            doc.metadata.insert(
                "source".into(),
                serde_json::json!(format!("file-{}", rng.below(4))),
            );
            (acl.attach(doc), visible)
        })
        .collect()
}

/// The oracle: score every document the corpus says the reader may read, best first (ties
/// by id), top k — one at a time, with its own arithmetic.
async fn oracle(
    docs: &[(Document, bool)],
    query: &str,
    k: usize,
    filter: Option<&Filter>,
) -> Vec<String> {
    let e = embedder();
    let q = e.embed(&[query.to_owned()]).await.unwrap().pop().unwrap();
    let mut scored = Vec::new();
    for (d, visible) in docs {
        let matches = filter.is_none_or(|f| f.iter().all(|(k, v)| d.metadata.get(k) == Some(v)));
        if *visible && matches {
            let v = e
                .embed(std::slice::from_ref(&d.content))
                .await
                .unwrap()
                .pop()
                .unwrap();
            let dot: f64 = q
                .iter()
                .zip(&v)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            let norm = |x: &[f32]| x.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            let score = if norm(&q) == 0.0 || norm(&v) == 0.0 {
                0.0
            } else {
                (dot / (norm(&q) * norm(&v))) as f32
            };
            scored.push((score, d.id.clone()));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
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
            store.upsert(docs.iter().map(|(d, _)| d.clone()).collect()).await.unwrap();
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
                for d in &got {
                    let visible = docs.iter().any(|(c, v)| c.id == d.id && *v);
                    prop_assert!(visible, "{} is not ada's to read", d.id);
                    prop_assert!(d.score.is_some());
                    prop_assert!(!d.metadata.contains_key("acl"), "who else may read it stays in the store");
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
        store
            .upsert(corpus(7, 20, 50).into_iter().map(|(d, _)| d).collect())
            .await
            .unwrap();
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
        // An embedder answering too few vectors, or of the wrong length, or not finite: an
        // error, nothing stored.
        for answer in [vec![], vec![vec![0.5; 3]], vec![vec![f32::INFINITY; 16]]] {
            let wrong = MemoryVectorStore::new(Arc::new(Fixed(answer)), ["source"]);
            let err = wrong.upsert(vec![good.clone()]).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Provider, "{err}");
            assert!(wrong.is_empty().await);
        }
    });
}

/// An embedder that always answers the same vectors.
struct Fixed(Vec<Vec<f32>>);

#[async_trait]
impl Embedder for Fixed {
    fn dimensions(&self) -> usize {
        16
    }
    async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, Error> {
        Ok(self.0.clone())
    }
}

#[test]
fn replacing_a_document_replaces_its_acl() {
    run(async {
        let store = MemoryVectorStore::new(embedder(), ["source"]);
        let doc = Document::new("d", "budget policy");
        store
            .upsert(vec![Acl::public().attach(doc.clone())])
            .await
            .unwrap();
        assert_eq!(
            store
                .retrieve("budget", 3, None, &reader())
                .await
                .unwrap()
                .len(),
            1
        );
        store
            .upsert(vec![Acl::teams(["hr"]).attach(doc)])
            .await
            .unwrap();
        assert!(
            store
                .retrieve("budget", 3, None, &reader())
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn deletes_by_id_and_by_source() {
    run(async {
        let store = MemoryVectorStore::new(embedder(), ["source"]);
        let docs: Vec<Document> = corpus(11, 40, 50).into_iter().map(|(d, _)| d).collect();
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
