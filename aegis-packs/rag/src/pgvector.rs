//! [`PgVectorStore`]: a collection in PostgreSQL with pgvector — an HNSW index (cosine) and
//! the ACL in columns the search's `WHERE` applies, with iterative index scans so a
//! filtered search still returns `k` rows.
//!
//! pgvector's HNSW search without iterative scans visits `ef_search` candidates and then
//! filters them, so a search where the reader may read 1 % of the rows returns a handful of
//! the `k` asked for. Each search here runs in a transaction with
//! `hnsw.iterative_scan = strict_order`: the index keeps yielding candidates in distance
//! order until `k` rows pass the `WHERE` (or `hnsw.max_scan_tuples` is reached).

use std::{collections::BTreeSet, sync::Arc};

use aegis_contracts::{
    Document, Error, ErrorKind, Filter, RequestContext, Retriever, VectorStore, async_trait,
};
use serde_json::{Map, Value};
use sqlx::{PgPool, Row, postgres::PgPoolOptions};
use tokio::sync::OnceCell;

use crate::{
    ACL_KEY, Embedder,
    index::{Entry, Search, indexed_fields, prepare},
};

/// A collection in PostgreSQL with pgvector (see the [module docs](self)): table
/// `aegis_rag_{collection}`, created on first use with the embedder's dimensions.
pub struct PgVectorStore {
    url: String,
    table: String,
    embedder: Arc<dyn Embedder>,
    indexed: BTreeSet<String>,
    ef_search: usize,
    pool: OnceCell<PgPool>,
}

impl std::fmt::Debug for PgVectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("PgVectorStore")
            .field("table", &self.table)
            .field("indexed", &self.indexed)
            .field("ef_search", &self.ef_search)
            .finish_non_exhaustive()
    }
}

fn storage(context: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Storage, format!("{context}: {e}"))
}

/// SQL built with `format!`: only the table name — checked to be `aegis_rag_` and an
/// identifier of lower-case letters, digits and `_` by [`PgVectorStore::new`] — and numbers
/// are ever interpolated; every value is a bound parameter.
fn safe(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// `v` as pgvector's text form, `[1,2,3]`.
fn vector_literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 10 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

impl PgVectorStore {
    /// Collection `collection` (letters, digits and `_`, starting with a letter; at most
    /// 40) in the database at `url`, embedding with `embedder`, filterable on `indexed`
    /// metadata fields and `source`. The database needs the `vector` extension (created
    /// when the user may).
    pub fn new<S: Into<String>>(
        url: impl Into<String>,
        collection: &str,
        embedder: Arc<dyn Embedder>,
        indexed: impl IntoIterator<Item = S>,
    ) -> Result<Self, Error> {
        let valid = collection.len() <= 40
            && collection.starts_with(|c: char| c.is_ascii_lowercase())
            && collection
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::config(format!(
                "collection `{collection}`: lower-case letters, digits and `_`, starting with a letter, at most 40 (it names a table)"
            )));
        }
        Ok(Self {
            url: url.into(),
            table: format!("aegis_rag_{collection}"),
            embedder,
            indexed: indexed_fields(indexed),
            ef_search: 100,
            pool: OnceCell::new(),
        })
    }

    /// With HNSW's `ef_search` (candidates per search; default 100): higher is more exact
    /// and slower.
    pub fn with_ef_search(mut self, ef_search: usize) -> Self {
        self.ef_search = ef_search.clamp(1, 1_000);
        self
    }

    async fn pool(&self) -> Result<&PgPool, Error> {
        self.pool.get_or_try_init(|| self.open()).await
    }

    async fn open(&self) -> Result<PgPool, Error> {
        let at = format!("RAG store `{}`", self.table);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&self.url)
            .await
            // The driver's message, never the URL (it may hold a password).
            .map_err(|e| storage(&at, e))?;
        let dims = self.embedder.dimensions();
        let mut tx = pool.begin().await.map_err(|e| storage(&at, e))?;
        // Replicas starting together create the table once.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(&self.table)
            .execute(&mut *tx)
            .await
            .map_err(|e| storage(&at, e))?;
        let has_vector: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| storage(&at, e))?;
        if !has_vector {
            sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    Error::config(format!(
                        "{at}: the database has no pgvector (`CREATE EXTENSION vector` failed: {e})"
                    ))
                })?;
        }
        let t = &self.table;
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                id TEXT PRIMARY KEY,
                source TEXT,
                content TEXT NOT NULL,
                metadata JSONB NOT NULL,
                acl_public BOOLEAN NOT NULL,
                acl_org TEXT,
                acl_principals TEXT[] NOT NULL,
                acl_teams TEXT[] NOT NULL,
                acl_labels JSONB NOT NULL,
                embedding vector({dims}) NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {t}_embedding ON {t} USING hnsw (embedding vector_cosine_ops);
            CREATE INDEX IF NOT EXISTS {t}_source ON {t} (source);
            CREATE INDEX IF NOT EXISTS {t}_metadata ON {t} USING gin (metadata jsonb_path_ops);"
        );
        sqlx::raw_sql(safe(ddl))
            .execute(&mut *tx)
            .await
            .map_err(|e| storage(&at, e))?;
        let stored: i32 = sqlx::query_scalar(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'embedding'",
        )
        .bind(t)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| storage(&at, e))?;
        if stored != dims as i32 {
            return Err(Error::config(format!(
                "{at} holds vectors of {stored} dimensions; its embedder makes {dims} (use another collection)"
            )));
        }
        tx.commit().await.map_err(|e| storage(&at, e))?;
        Ok(pool)
    }

    async fn write(
        &self,
        delete_ids: &[String],
        delete_sources: &[String],
        entries: Vec<Entry>,
    ) -> Result<u64, Error> {
        let pool = self.pool().await?;
        let t = &self.table;
        let mut tx = pool.begin().await.map_err(|e| storage("writing", e))?;
        let mut deleted = 0;
        if !delete_ids.is_empty() {
            deleted += sqlx::query(safe(format!("DELETE FROM {t} WHERE id = ANY($1)")))
                .bind(delete_ids)
                .execute(&mut *tx)
                .await
                .map_err(|e| storage("deleting", e))?
                .rows_affected();
        }
        if !delete_sources.is_empty() {
            deleted += sqlx::query(safe(format!("DELETE FROM {t} WHERE source = ANY($1)")))
                .bind(delete_sources)
                .execute(&mut *tx)
                .await
                .map_err(|e| storage("deleting", e))?
                .rows_affected();
        }
        let insert = format!(
            "INSERT INTO {t} (id, source, content, metadata, acl_public, acl_org, acl_principals, acl_teams, acl_labels, embedding)
             VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9::jsonb, $10::vector)
             ON CONFLICT (id) DO UPDATE SET source = excluded.source, content = excluded.content,
                metadata = excluded.metadata, acl_public = excluded.acl_public, acl_org = excluded.acl_org,
                acl_principals = excluded.acl_principals, acl_teams = excluded.acl_teams,
                acl_labels = excluded.acl_labels, embedding = excluded.embedding"
        );
        for e in &entries {
            let mut metadata = e.doc.metadata.clone();
            metadata.remove(ACL_KEY);
            sqlx::query(safe(insert.clone()))
                .bind(&e.doc.id)
                .bind(e.doc.source())
                .bind(&e.doc.content)
                .bind(Value::Object(metadata).to_string())
                .bind(e.acl.public)
                .bind(e.acl.org.as_deref())
                .bind(&e.acl.principals)
                .bind(&e.acl.teams)
                .bind(serde_json::to_string(&e.acl.labels).unwrap_or_else(|_| "{}".into()))
                .bind(vector_literal(&e.vector))
                .execute(&mut *tx)
                .await
                .map_err(|e| storage("writing", e))?;
        }
        tx.commit().await.map_err(|e| storage("writing", e))?;
        Ok(deleted)
    }
}

#[async_trait]
impl Retriever for PgVectorStore {
    async fn retrieve(
        &self,
        query: &str,
        k: usize,
        filter: Option<&Filter>,
        ctx: &RequestContext,
    ) -> Result<Vec<Document>, Error> {
        let embedder = self.embedder.as_ref();
        let Some(Search {
            reader,
            filter,
            query,
        }) = Search::begin(embedder, &self.indexed, query, k, filter, ctx).await?
        else {
            return Ok(Vec::new());
        };
        let pool = self.pool().await?;
        let t = &self.table;
        let mut tx = pool.begin().await.map_err(|e| storage("searching", e))?;
        // Filtered searches keep scanning the index until k rows pass the filter.
        let ef = self.ef_search.max(k).min(1_000);
        sqlx::raw_sql(safe(format!(
            "SET LOCAL hnsw.iterative_scan = strict_order; SET LOCAL hnsw.ef_search = {ef}"
        )))
        .execute(&mut *tx)
        .await
        .map_err(|e| storage("searching", e))?;
        // The reader's permissions are part of the search, never a cut after it.
        let sql = format!(
            "SELECT id, content, metadata::text AS metadata, 1 - (embedding <=> $1::vector) AS score
             FROM {t}
             WHERE (acl_public OR $2 = ANY(acl_principals) OR $3 = ANY(acl_teams))
               AND (acl_org IS NULL OR acl_org = $4)
               AND acl_labels <@ $5::jsonb
               AND metadata @> $6::jsonb
             ORDER BY embedding <=> $1::vector
             LIMIT $7"
        );
        let labels = serde_json::to_string(&reader.labels).unwrap_or_else(|_| "{}".into());
        let filter = Value::Object(filter.cloned().unwrap_or_default()).to_string();
        let rows = sqlx::query(safe(sql))
            .bind(vector_literal(&query))
            .bind(&reader.id)
            .bind(reader.team.as_deref())
            .bind(reader.org.as_deref())
            .bind(labels)
            .bind(filter)
            .bind(k as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| storage("searching", e))?;
        tx.commit().await.map_err(|e| storage("searching", e))?;
        rows.iter()
            .map(|row| {
                let id: String = row.get("id");
                let metadata: Map<String, Value> =
                    serde_json::from_str(&row.get::<String, _>("metadata")).map_err(|_| {
                        storage(
                            "reading",
                            format!("document `{id}`: metadata is not an object"),
                        )
                    })?;
                let score: f64 = row.get("score");
                let mut d = Document::new(id, row.get::<String, _>("content"));
                d.metadata = metadata;
                // A zero vector has no direction: pgvector says NaN, the other stores 0.
                d.score = Some(if score.is_finite() { score as f32 } else { 0.0 });
                Ok(d)
            })
            .collect()
    }

    fn as_store(&self) -> Option<&dyn VectorStore> {
        Some(self)
    }

    async fn ready(&self) -> Result<(), Error> {
        let pool = self.pool().await?;
        sqlx::query(safe(format!("SELECT 1 FROM {} LIMIT 1", self.table)))
            .execute(pool)
            .await
            .map(drop)
            .map_err(|e| storage("checking the store", e))
    }
}

#[async_trait]
impl VectorStore for PgVectorStore {
    async fn upsert(&self, docs: Vec<Document>) -> Result<(), Error> {
        let entries = prepare(self.embedder.as_ref(), docs, None).await?;
        self.write(&[], &[], entries).await.map(drop)
    }

    async fn delete(&self, ids: &[String]) -> Result<u64, Error> {
        self.write(ids, &[], Vec::new()).await
    }

    async fn delete_source(&self, source: &str) -> Result<u64, Error> {
        self.write(&[], &[source.to_owned()], Vec::new()).await
    }

    async fn replace_sources(&self, sources: &[String], docs: Vec<Document>) -> Result<(), Error> {
        let entries = prepare(self.embedder.as_ref(), docs, Some(sources)).await?;
        self.write(&[], sources, entries).await.map(drop)
    }
}
