//! Permission-aware retrieval against a brute-force oracle, on synthetic corpora where the
//! reader may see 1 %, 10 % and 50 % of the documents: every store returns exactly the
//! oracle's top k of what the reader may read (recall@k = 1.0, same order), and never one it
//! may not. Searches without a principal, filters on unindexed fields and bad batches are
//! errors that store nothing. Every test runs on every store, through the contract only: in
//! memory, SQLite, and PostgreSQL with pgvector when `AEGIS_TEST_PGVECTOR_URL` names a
//! database with the extension (`scripts/pgvector.sh start`; `.ci/run` does).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aegis_contracts::*;
use aegis_rag::{
    Acl, Embedder, MemoryVectorStore, PgVectorStore, ProviderEmbedder, SqliteVectorStore,
};
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

/// The oracle's scores of documents `ids` for `query`.
async fn oracle_scores(docs: &[(Document, bool)], query: &str, ids: &[String]) -> Vec<f32> {
    let e = embedder();
    let q = e.embed(&[query.to_owned()]).await.unwrap().remove(0);
    let mut out = Vec::new();
    for id in ids {
        let doc = &docs.iter().find(|(d, _)| &d.id == id).unwrap().0;
        let v = e
            .embed(std::slice::from_ref(&doc.content))
            .await
            .unwrap()
            .remove(0);
        out.push(aegis_rag::cosine(&q, &v));
    }
    out
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A fresh SQLite file.
fn scratch_db() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("aegis-rag-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("store-{n}.db"));
    let _ = std::fs::remove_file(&path);
    path
}

/// Every store, empty, embedding with `embedder`.
fn stores_with(embedder: Arc<dyn Embedder>) -> Vec<(&'static str, Arc<dyn VectorStore>)> {
    let mut stores: Vec<(&'static str, Arc<dyn VectorStore>)> = Vec::new();
    if let Some(url) = std::env::var("AEGIS_TEST_PGVECTOR_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let collection = format!("t{}_{n}_{nanos}", std::process::id());
        stores.push((
            "pgvector",
            Arc::new(PgVectorStore::new(url, &collection, embedder.clone(), ["source"]).unwrap()),
        ));
    }
    stores.push((
        "memory",
        Arc::new(MemoryVectorStore::new(embedder.clone(), ["source"])),
    ));
    stores.push((
        "sqlite",
        Arc::new(SqliteVectorStore::new(
            scratch_db(),
            "docs",
            embedder,
            ["source"],
        )),
    ));
    stores
}

fn stores() -> Vec<(&'static str, Arc<dyn VectorStore>)> {
    stores_with(embedder())
}

/// How many documents `store` holds that a reader cleared for everything public may read.
async fn public_count(store: &dyn VectorStore) -> usize {
    store
        .retrieve("any", 100_000, None, &reader())
        .await
        .unwrap()
        .len()
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
            for (name, store) in stores() {
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
                if name == "pgvector" {
                    // An index orders equal distances as it finds them, not by id, and
                    // scores in its own float arithmetic: the same scores, k of them.
                    let got_s = oracle_scores(&docs, &query, &ids).await;
                    let want_s = oracle_scores(&docs, &query, &expected).await;
                    prop_assert_eq!(got_s.len(), want_s.len(), "pgvector, query {:?}", query);
                    for (g, w) in got_s.iter().zip(&want_s) {
                        prop_assert!((g - w).abs() < 1e-4, "pgvector, query {:?}: {:?} vs {:?}", query, got_s, want_s);
                    }
                } else {
                    prop_assert_eq!(&ids, &expected, "{} store, query {:?}", name, query);
                }
                for d in &got {
                    let visible = docs.iter().any(|(c, v)| c.id == d.id && *v);
                    prop_assert!(visible, "{} is not ada's to read", d.id);
                    prop_assert!(d.score.is_some());
                    prop_assert!(!d.metadata.contains_key("acl"), "who else may read it stays in the store");
                }
            }
            }
            Ok(())
        })?;
    }
}

#[test]
fn a_search_without_a_principal_is_an_error_never_an_unfiltered_result() {
    run(async {
        for (name, store) in stores() {
            store
                .upsert(corpus(7, 20, 50).into_iter().map(|(d, _)| d).collect())
                .await
                .unwrap();
            let err = store
                .retrieve("budget", 5, None, &RequestContext::default())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{name}");
        }
    });
}

#[test]
fn bad_input_is_a_clear_error_and_stores_nothing() {
    run(async {
        for (name, store) in stores() {
            let filter = serde_json::json!({"author": "bob"})
                .as_object()
                .unwrap()
                .clone();
            let err = store
                .retrieve("budget", 5, Some(&filter), &reader())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{name}");
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
            let twice = vec![good.clone(), good.clone()];
            for batch in [vec![good.clone(), bad_acl], vec![good.clone(), huge], twice] {
                assert_eq!(
                    store.upsert(batch).await.unwrap_err().kind(),
                    ErrorKind::InvalidRequest,
                    "{name}"
                );
                assert_eq!(
                    public_count(store.as_ref()).await,
                    0,
                    "{name}: nothing half-ingested"
                );
            }
            let mut elsewhere = good.clone();
            elsewhere.metadata.insert("source".into(), "b.md".into());
            let err = store
                .replace_sources(&["a.md".into()], vec![elsewhere])
                .await
                .unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidRequest,
                "{name}: a document of another source"
            );
            assert_eq!(public_count(store.as_ref()).await, 0, "{name}");
        }
        // An embedder answering too few vectors, or of the wrong length, or not finite: an
        // error, nothing stored.
        for answer in [vec![], vec![vec![0.5; 3]], vec![vec![f32::INFINITY; 16]]] {
            for (name, wrong) in stores_with(Arc::new(Fixed(answer.clone()))) {
                let good = Acl::public().attach(Document::new("ok", "fine text"));
                let err = wrong.upsert(vec![good]).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Provider, "{name}: {err}");
            }
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
        for (name, store) in stores() {
            let doc = Document::new("d", "budget policy");
            store
                .upsert(vec![Acl::public().attach(doc.clone())])
                .await
                .unwrap();
            assert_eq!(public_count(store.as_ref()).await, 1, "{name}");
            store
                .upsert(vec![Acl::teams(["hr"]).attach(doc)])
                .await
                .unwrap();
            assert_eq!(public_count(store.as_ref()).await, 0, "{name}");
        }
    });
}

#[test]
fn deletes_by_id_and_by_source_and_replaces_a_source_whole() {
    run(async {
        for (name, store) in stores() {
            let docs: Vec<Document> = (0..40)
                .map(|i| {
                    let mut d = Acl::public().attach(Document::new(format!("d{i}"), "budget"));
                    d.metadata
                        .insert("source".into(), format!("file-{}", i % 4).into());
                    d
                })
                .collect();
            store.upsert(docs.clone()).await.unwrap();
            assert_eq!(store.delete_source("file-1").await.unwrap(), 10, "{name}");
            assert_eq!(
                store.delete(&["d0".into(), "d1".into()]).await.unwrap(),
                1,
                "{name}: d1 went with file-1"
            );
            assert_eq!(public_count(store.as_ref()).await, 29, "{name}");
            // A shorter new version of file-2 leaves none of the old chunks behind.
            let new: Vec<Document> = docs[..2]
                .iter()
                .map(|d| {
                    let mut d = d.clone();
                    d.id = format!("{}-v2", d.id);
                    d.metadata.insert("source".into(), "file-2".into());
                    d
                })
                .collect();
            store
                .replace_sources(&["file-2".into()], new)
                .await
                .unwrap();
            let filter = serde_json::json!({"source": "file-2"})
                .as_object()
                .unwrap()
                .clone();
            let mut ids: Vec<String> = store
                .retrieve("budget", 100, Some(&filter), &reader())
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect();
            ids.sort();
            assert_eq!(ids, ["d0-v2", "d1-v2"], "{name}");
        }
    });
}

#[test]
fn a_sqlite_store_survives_a_restart_and_sees_another_processes_writes() {
    run(async {
        let path = scratch_db();
        let writer = SqliteVectorStore::new(&path, "docs", embedder(), ["source"]);
        let reader_store = SqliteVectorStore::new(&path, "docs", embedder(), ["source"]);
        writer
            .upsert(vec![Acl::public().attach(Document::new("a", "budget"))])
            .await
            .unwrap();
        assert_eq!(public_count(&reader_store).await, 1);
        // A write by "another process" (another handle on the file) is seen by the next
        // search of the first, whose copy is older than the file.
        writer
            .upsert(vec![Acl::public().attach(Document::new("b", "budget"))])
            .await
            .unwrap();
        assert_eq!(public_count(&reader_store).await, 2);
        drop((writer, reader_store));
        let reopened = SqliteVectorStore::new(&path, "docs", embedder(), ["source"]);
        assert_eq!(public_count(&reopened).await, 2, "the file is the truth");
        // The same collection opened with an embedder of other dimensions is refused
        // up front, never a misfiled vector.
        let wider = Arc::new(ProviderEmbedder::new(
            Arc::new(aegis_providers::Echo::new("echo")),
            "echo",
            32,
        ));
        let wrong = SqliteVectorStore::new(&path, "docs", wider.clone(), ["source"]);
        let err = wrong.ready().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("16 dimensions"), "{err}");
        // Another collection in the same file may have other dimensions.
        let other = SqliteVectorStore::new(&path, "wide", wider, ["source"]);
        other.ready().await.unwrap();
        assert_eq!(public_count(&other).await, 0);
    });
}
