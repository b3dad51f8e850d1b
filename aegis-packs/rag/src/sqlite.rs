//! [`SqliteVectorStore`]: the embedded default — documents and vectors in a SQLite file,
//! searched exactly.
//!
//! The file is the truth; searches run over a copy of the collection in memory (vectors,
//! ACLs, texts), the same exact index the memory store uses. Every write bumps the
//! collection's `generation` in the same transaction as the rows, and every search reads
//! the generation first (one indexed row): a copy older than the file — another process
//! wrote to it — is reloaded before it is searched, so a search never sees a stale or
//! half-written collection. Why a copy and not a scan of the BLOBs per query, or the
//! `sqlite-vec` extension: see the crate README (measured).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use aegis_contracts::{
    Document, Error, ErrorKind, Filter, RequestContext, Retriever, VectorStore, async_trait,
};
use serde_json::{Map, Value};
use sqlx::{
    Row, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::{OnceCell, RwLock};

use crate::{
    Acl, Embedder,
    index::{Entry, Index, Search, indexed_fields, prepare},
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS aegis_rag_collections (
    name TEXT PRIMARY KEY,
    dimensions INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS aegis_rag_documents (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    source TEXT,
    content TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE INDEX IF NOT EXISTS aegis_rag_documents_source ON aegis_rag_documents (collection, source);
";

/// The in-memory copy of the collection and the generation it was read at (`None`: not
/// read yet, or a write of ours could not be applied to it).
#[derive(Default)]
struct Copy {
    index: Index,
    generation: Option<i64>,
}

/// A collection of documents in a SQLite file, searched exactly and permission-aware (see
/// the [module docs](self)). Several collections (one per `[[retrievers]]` entry) may share
/// one file. The file is opened on first use, or by [`Retriever::ready`], which hosts call
/// at start-up.
pub struct SqliteVectorStore {
    path: PathBuf,
    collection: String,
    embedder: Arc<dyn Embedder>,
    indexed: BTreeSet<String>,
    pool: OnceCell<SqlitePool>,
    copy: RwLock<Copy>,
}

impl std::fmt::Debug for SqliteVectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteVectorStore")
            .field("path", &self.path)
            .field("collection", &self.collection)
            .field("indexed", &self.indexed)
            .finish_non_exhaustive()
    }
}

fn storage(context: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Storage, format!("{context}: {e}"))
}

impl SqliteVectorStore {
    /// Collection `collection` in the SQLite file at `path` (created when missing),
    /// embedding with `embedder`, filterable on `indexed` metadata fields and `source`.
    pub fn new<S: Into<String>>(
        path: impl AsRef<Path>,
        collection: impl Into<String>,
        embedder: Arc<dyn Embedder>,
        indexed: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            collection: collection.into(),
            embedder,
            indexed: indexed_fields(indexed),
            pool: OnceCell::new(),
            copy: RwLock::new(Copy::default()),
        }
    }

    /// How many documents the collection holds.
    pub async fn len(&self) -> Result<usize, Error> {
        self.synced().await.map(|c| c.index.len())
    }

    /// Whether the collection holds none.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// The pool, opening the file, creating the schema and checking the collection's
    /// dimensions the first time (a failure is retried on the next call).
    async fn pool(&self) -> Result<&SqlitePool, Error> {
        self.pool.get_or_try_init(|| self.open()).await
    }

    async fn open(&self) -> Result<SqlitePool, Error> {
        let at = format!("RAG store {}", self.path.display());
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| storage(&at, e))?
            .filename(&self.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| storage(&at, e))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .map_err(|e| storage(&at, e))?;
        let wanted = self.embedder.dimensions() as i64;
        sqlx::query(
            "INSERT INTO aegis_rag_collections (name, dimensions) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&self.collection)
        .bind(wanted)
        .execute(&pool)
        .await
        .map_err(|e| storage(&at, e))?;
        let stored: i64 =
            sqlx::query_scalar("SELECT dimensions FROM aegis_rag_collections WHERE name = ?")
                .bind(&self.collection)
                .fetch_one(&pool)
                .await
                .map_err(|e| storage(&at, e))?;
        if stored != wanted {
            return Err(Error::config(format!(
                "{at}: collection `{}` holds vectors of {stored} dimensions; its embedder makes {wanted} (use another collection, or re-ingest into a new one)",
                self.collection
            )));
        }
        Ok(pool)
    }

    async fn generation(&self, pool: &SqlitePool) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT generation FROM aegis_rag_collections WHERE name = ?")
            .bind(&self.collection)
            .fetch_one(pool)
            .await
            .map_err(|e| storage("reading the collection's generation", e))
    }

    /// The copy, reloaded first when the file has changed since it was read.
    async fn synced(&self) -> Result<tokio::sync::RwLockReadGuard<'_, Copy>, Error> {
        let pool = self.pool().await?;
        let generation = self.generation(pool).await?;
        {
            let copy = self.copy.read().await;
            if copy.generation == Some(generation) {
                return Ok(copy);
            }
        }
        let mut copy = self.copy.write().await;
        // Read the generation and the rows in one transaction, so they agree.
        let mut tx = pool.begin().await.map_err(|e| storage("reloading", e))?;
        let generation: i64 =
            sqlx::query_scalar("SELECT generation FROM aegis_rag_collections WHERE name = ?")
                .bind(&self.collection)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| storage("reloading", e))?;
        if copy.generation != Some(generation) {
            let rows = sqlx::query(
                "SELECT id, content, metadata, vector FROM aegis_rag_documents WHERE collection = ?",
            )
            .bind(&self.collection)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| storage("reloading", e))?;
            let dimensions = self.embedder.dimensions();
            let entries = rows
                .iter()
                .map(|row| entry_of(row, dimensions))
                .collect::<Result<Vec<_>, _>>()?;
            *copy = Copy {
                index: Index::of(entries),
                generation: Some(generation),
            };
        }
        tx.commit().await.map_err(|e| storage("reloading", e))?;
        Ok(copy.downgrade())
    }

    /// Writes in one transaction — deleting what `delete` names, then inserting `entries`
    /// — bumps the generation, and applies the same change to the copy when it was current.
    async fn write(&self, delete: Delete<'_>, entries: Vec<Entry>) -> Result<u64, Error> {
        let pool = self.pool().await?;
        let mut copy = self.copy.write().await;
        let mut tx = pool.begin().await.map_err(|e| storage("writing", e))?;
        let deleted = match delete {
            Delete::Nothing => 0,
            Delete::Ids(ids) => {
                let mut n = 0;
                for id in ids {
                    n += sqlx::query(
                        "DELETE FROM aegis_rag_documents WHERE collection = ? AND id = ?",
                    )
                    .bind(&self.collection)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| storage("deleting", e))?
                    .rows_affected();
                }
                n
            }
            Delete::Sources(sources) => {
                let mut n = 0;
                for source in sources {
                    n += sqlx::query(
                        "DELETE FROM aegis_rag_documents WHERE collection = ? AND source = ?",
                    )
                    .bind(&self.collection)
                    .bind(source)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| storage("deleting", e))?
                    .rows_affected();
                }
                n
            }
        };
        for e in &entries {
            let metadata = Value::Object(e.doc.metadata.clone()).to_string();
            sqlx::query(
                "INSERT INTO aegis_rag_documents (collection, id, source, content, metadata, vector) VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (collection, id) DO UPDATE SET source = excluded.source, content = excluded.content, metadata = excluded.metadata, vector = excluded.vector",
            )
            .bind(&self.collection)
            .bind(&e.doc.id)
            .bind(e.doc.source())
            .bind(&e.doc.content)
            .bind(metadata)
            .bind(blob_of(&e.vector))
            .execute(&mut *tx)
            .await
            .map_err(|e| storage("writing", e))?;
        }
        let generation: i64 = sqlx::query_scalar(
            "UPDATE aegis_rag_collections SET generation = generation + 1 WHERE name = ? RETURNING generation",
        )
        .bind(&self.collection)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| storage("writing", e))?;
        tx.commit().await.map_err(|e| storage("writing", e))?;
        if copy.generation == Some(generation - 1) {
            match delete {
                Delete::Nothing => 0,
                Delete::Ids(ids) => copy.index.delete(ids),
                Delete::Sources(sources) => copy.index.delete_sources(sources),
            };
            copy.index.upsert(entries);
            copy.generation = Some(generation);
        } else {
            // Someone else wrote in between: the next search reloads.
            copy.generation = None;
        }
        Ok(deleted)
    }
}

#[derive(Clone, Copy)]
enum Delete<'a> {
    Nothing,
    Ids(&'a [String]),
    Sources(&'a [String]),
}

fn blob_of(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored row as an index entry; a row that does not parse (a file written by something
/// else, or damaged) is an error naming it, never a silently skipped document.
fn entry_of(row: &sqlx::sqlite::SqliteRow, dimensions: usize) -> Result<Entry, Error> {
    let id: String = row.get("id");
    let bad = |what: &str| storage("reading the collection", format!("document `{id}`: {what}"));
    let metadata: String = row.get("metadata");
    let metadata: Map<String, Value> =
        serde_json::from_str(&metadata).map_err(|_| bad("its metadata is not a JSON object"))?;
    let blob: Vec<u8> = row.get("vector");
    if blob.len() != dimensions * 4 {
        return Err(bad("its vector has the wrong length"));
    }
    let vector: Vec<f32> = blob
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(bad("its vector is not finite"));
    }
    let mut doc = Document::new(id.clone(), row.get::<String, _>("content"));
    doc.metadata = metadata;
    let acl = Acl::of(&doc)?;
    Ok(Entry::new(doc, acl, vector))
}

#[async_trait]
impl Retriever for SqliteVectorStore {
    async fn retrieve(
        &self,
        query: &str,
        k: usize,
        filter: Option<&Filter>,
        ctx: &RequestContext,
    ) -> Result<Vec<Document>, Error> {
        let embedder = self.embedder.as_ref();
        let Some(s) = Search::begin(embedder, &self.indexed, query, k, filter, ctx).await? else {
            return Ok(Vec::new());
        };
        let copy = self.synced().await?;
        Ok(copy.index.search(&s.query, k, s.filter, s.reader))
    }

    fn as_store(&self) -> Option<&dyn VectorStore> {
        Some(self)
    }

    async fn ready(&self) -> Result<(), Error> {
        let pool = self.pool().await?;
        self.generation(pool).await.map(drop)
    }
}

#[async_trait]
impl VectorStore for SqliteVectorStore {
    /// Checks and embeds every document before writing any, then writes them in one
    /// transaction: a batch with one bad document changes nothing.
    async fn upsert(&self, docs: Vec<Document>) -> Result<(), Error> {
        let entries = prepare(self.embedder.as_ref(), docs, None).await?;
        self.write(Delete::Nothing, entries).await.map(drop)
    }

    async fn delete(&self, ids: &[String]) -> Result<u64, Error> {
        self.write(Delete::Ids(ids), Vec::new()).await
    }

    async fn delete_source(&self, source: &str) -> Result<u64, Error> {
        self.write(Delete::Sources(&[source.to_owned()]), Vec::new())
            .await
    }

    async fn replace_sources(&self, sources: &[String], docs: Vec<Document>) -> Result<(), Error> {
        let entries = prepare(self.embedder.as_ref(), docs, Some(sources)).await?;
        self.write(Delete::Sources(sources), entries)
            .await
            .map(drop)
    }
}
