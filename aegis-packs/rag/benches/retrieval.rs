#![allow(clippy::unwrap_used, missing_docs)]
//! Retrieval and ingestion on the SQLite store at 100 k chunks (`AEGIS_BENCH_CHUNKS`), with
//! 384-dimensional vectors from the offline echo embedder:
//!
//! - ingest throughput (chunks per second through `upsert`, batches of 1,000: embedding,
//!   checks, one transaction per batch);
//! - opening a store over the file (the first search loads the collection);
//! - search p50 / p99 over 300 queries, k = 8, for a reader who may read every chunk (no ACL
//!   narrowing), 10 % and 1 % of them, and 10 % plus a metadata filter;
//! - the alternative the store does not take — reading every vector BLOB from SQLite per
//!   query and scoring it — for comparison;
//! - the resident memory the in-memory copy costs;
//! - with `AEGIS_TEST_PGVECTOR_URL` set (a database with pgvector: `scripts/pgvector.sh`),
//!   the same ingest and searches on the pgvector store (HNSW, iterative scans).
//!
//! `cargo bench -p aegis-rag --bench retrieval`.

use std::{sync::Arc, time::Instant};

use aegis_contracts::{Document, Principal, RequestContext, Retriever, VectorStore};
use aegis_rag::{Acl, Embedder, PgVectorStore, ProviderEmbedder, SqliteVectorStore};

const WORDS: [&str; 64] = [
    "budget",
    "salary",
    "holiday",
    "policy",
    "laptop",
    "travel",
    "expense",
    "contract",
    "invoice",
    "vendor",
    "security",
    "badge",
    "parking",
    "training",
    "benefit",
    "pension",
    "payroll",
    "audit",
    "privacy",
    "incident",
    "backup",
    "network",
    "printer",
    "canteen",
    "office",
    "remote",
    "meeting",
    "report",
    "quarter",
    "review",
    "hiring",
    "onboarding",
    "laptop",
    "phone",
    "insurance",
    "leave",
    "sick",
    "parental",
    "overtime",
    "shift",
    "roster",
    "safety",
    "fire",
    "drill",
    "access",
    "vpn",
    "password",
    "account",
    "ticket",
    "support",
    "release",
    "deploy",
    "server",
    "database",
    "customer",
    "order",
    "refund",
    "shipping",
    "warehouse",
    "supplier",
    "tax",
    "legal",
    "compliance",
    "retention",
];
const DIMENSIONS: usize = 384;
const K: usize = 8;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn text(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| WORDS[(self.next() % WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn embedder() -> Arc<dyn Embedder> {
    Arc::new(ProviderEmbedder::new(
        Arc::new(aegis_providers::Echo::new("echo")),
        "echo",
        DIMENSIONS,
    ))
}

/// Chunk `i`: public to 1 in 1, team `t10` to 1 in 10, team `t100` to 1 in 100 readers'
/// worth — every chunk names the teams that may read it, so a reader of team `t10` sees
/// 10 % of the corpus and one of `t100` sees 1 %.
fn chunk(i: usize, rng: &mut Rng) -> Document {
    let mut teams = vec!["all".to_owned()];
    if i % 10 == 0 {
        teams.push("t10".into());
    }
    if i % 100 == 0 {
        teams.push("t100".into());
    }
    let mut d = Acl::teams(teams).attach(Document::new(format!("c{i}"), rng.text(60)));
    d.metadata
        .insert("source".into(), format!("file-{}", i / 20).into());
    d.metadata
        .insert("lang".into(), if i % 20 < 10 { "en" } else { "de" }.into());
    d
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn reader(team: &str) -> RequestContext {
    RequestContext::default().with_principal(Principal::new("reader").with_team(team))
}

async fn search(
    store: &dyn Retriever,
    label: &str,
    team: &str,
    filter: Option<&aegis_contracts::Filter>,
) {
    let mut rng = Rng(99);
    let ctx = reader(team);
    let mut times = Vec::new();
    let mut returned = 0;
    for _ in 0..300 {
        let q = rng.text(6);
        let t = Instant::now();
        let hits = store.retrieve(&q, K, filter, &ctx).await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        returned += hits.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "search {label:<28} p50 {:>7.2} ms  p99 {:>7.2} ms  (k = {K}, {:.1} returned on average)",
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        returned as f64 / 300.0
    );
}

async fn ingest(store: &dyn VectorStore, n: usize) {
    let mut rng = Rng(7);
    let t = Instant::now();
    for start in (0..n).step_by(1_000) {
        let batch: Vec<Document> = (start..(start + 1_000).min(n))
            .map(|i| chunk(i, &mut rng))
            .collect();
        store.upsert(batch).await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "ingest: {:.0} chunks/s ({secs:.1} s; embedding by echo, checks, one transaction per 1,000)",
        n as f64 / secs
    );
}

async fn searches(store: &dyn Retriever) {
    search(store, "all readable (no narrowing)", "all", None).await;
    search(store, "10 % readable", "t10", None).await;
    search(store, "1 % readable", "t100", None).await;
    let en = serde_json::json!({"lang": "en"})
        .as_object()
        .unwrap()
        .clone();
    search(store, "10 % readable + filter", "t10", Some(&en)).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::var("AEGIS_BENCH_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("aegis-rag-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rag.db");
    println!(
        "{n} chunks of 60 words, {DIMENSIONS} dimensions, SQLite at {}",
        path.display()
    );

    let store = SqliteVectorStore::new(&path, "bench", embedder(), ["lang"]);
    ingest(&store, n).await;
    println!(
        "in-memory copy: {:.0} MiB of vectors, {:.0} MiB of text",
        (n * DIMENSIONS * 4) as f64 / (1 << 20) as f64,
        (n * 60 * 8) as f64 / (1 << 20) as f64
    );
    searches(&store).await;

    drop(store);
    let reopened = SqliteVectorStore::new(&path, "bench", embedder(), ["lang"]);
    let t = Instant::now();
    reopened
        .retrieve("budget", K, None, &reader("t100"))
        .await
        .unwrap();
    println!(
        "open + first search (loads the collection): {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // The road not taken: read every vector from SQLite per query and score it.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let query = embedder()
        .embed(&["holiday policy".to_owned()])
        .await
        .unwrap()
        .remove(0);
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT id, vector FROM aegis_rag_documents WHERE collection = 'bench'")
                .fetch_all(&pool)
                .await
                .unwrap();
        let mut best: Vec<(f32, String)> = rows
            .into_iter()
            .map(|(id, blob)| {
                let v: Vec<f32> = blob
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (aegis_rag::cosine(&query, &v), id)
            })
            .collect();
        best.sort_by(|a, b| b.0.total_cmp(&a.0));
        best.truncate(K);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "per-query BLOB scan (not used): p50 {:.1} ms, max {:.1} ms",
        percentile(&times, 0.5),
        times[times.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);

    if let Some(url) = std::env::var("AEGIS_TEST_PGVECTOR_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let collection = format!("bench_{}", std::process::id());
        println!(
            "\npgvector (HNSW m=16, ef_construction=64, ef_search=100, iterative scans), {n} chunks"
        );
        let store = PgVectorStore::new(url, &collection, embedder(), ["lang"]).unwrap();
        ingest(&store, n).await;
        searches(&store).await;
    }
}
