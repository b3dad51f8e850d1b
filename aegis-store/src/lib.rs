//! # aegis-store
//!
//! Durable Aegis runs on SQLite (the embedded default: one file, WAL) or PostgreSQL (for
//! several gateway replicas sharing state), through one sea-orm code base:
//!
//! - **checkpoints**: [`Store`] implements the [`CheckpointStore`] contract, so a graph or
//!   pipeline built with `.checkpointer(store)` survives restarts and resumes across
//!   processes; concurrent resumes of one run let exactly one through;
//! - **runs and approvals**: list runs, show a run with its timeline, record who approved,
//!   rejected or edited what, and resume on behalf of a [`Principal`] who may see the run
//!   (see [`runs`] for the visibility rule);
//! - **virtual API keys**: shown once, stored as a SHA-256 hash, resolved by
//!   [`KeyAuthenticator`] with a constant-time comparison (see [`keys`]);
//! - **audit log**: append-only, hash-chained, with [`Store::verify_audit`] to find changed
//!   or deleted records (see [`audit`]).
//!
//! Checkpoints and audit records are written by **group commit**: concurrent writers share
//! one transaction (the first to find the write slot free commits what the others queued),
//! and each `put` still returns only once its own checkpoint is committed. A failing write is
//! retried alone, so it fails nobody else; [`Store::write_stats`] shows the batching.
//!
//! Migrations run on [`Store::connect`]; every table is prefixed `aegis_`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use aegis_contracts::{Approval, InterruptRequest, NodeInput, NodeOutput, Principal, RunStatus, State};
//! use aegis_core::graph::{END, Graph, RunOptions, START, node_fn};
//! use aegis_store::Store;
//!
//! #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
//! struct Paid(Option<u32>);
//! impl State for Paid {
//!     type Update = u32;
//!     fn apply(&mut self, amount: u32) { self.0 = Some(amount) }
//! }
//!
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! let graph = Graph::<Paid>::builder("payments")
//!     .node("pay", node_fn(|input: NodeInput<Paid>| async move {
//!         Ok(match input.ctx.resume {
//!             None => NodeOutput::Interrupt(InterruptRequest::new("large payment", serde_json::json!({"amount": 900}))),
//!             Some(_) => NodeOutput::Update(900),
//!         })
//!     }))
//!     .edge(START, "pay")
//!     .edge("pay", END)
//!     .checkpointer(Arc::new(store.clone()))
//!     .compile()
//!     .unwrap();
//!
//! let alice = Principal::new("alice").with_team("pay");
//! let carol = Principal::new("carol").with_team("pay").with_role("approver");
//! store.upsert_principal(&alice).await.unwrap();
//! let paused = graph.invoke_with(Paid::default(), RunOptions::default().principal("alice")).await.unwrap();
//! assert_eq!(paused.status, RunStatus::Paused);
//!
//! // Alice may see her run but not approve it (four eyes); Carol, an approver of her team,
//! // resumes it. The decision and the transitions are audited.
//! assert!(store.resume(&graph, &alice, &paused.run_id, Approval::Approve).await.is_err());
//! let done = store.resume(&graph, &carol, &paused.run_id, Approval::Approve).await.unwrap();
//! assert_eq!((done.status, done.state.0), (RunStatus::Completed, Some(900)));
//! let detail = store.run_detail(&alice, &paused.run_id).await.unwrap();
//! assert_eq!(detail.decisions[0].decided_by, "carol");
//! assert!(store.verify_audit().await.unwrap().is_valid());
//! # });
//! ```
#![forbid(unsafe_code)]

pub mod audit;
mod budget;
pub use budget::{
    BUDGET_LEDGER_SETTING, BudgetAdmin, LINE_ACCOUNT_PATTERN, LINE_PERIOD_PATTERN, LineChange,
    check_line,
};
mod checkpoint;
mod entity;
mod group;
pub use group::WriteStats;
pub mod keys;
pub mod migration;
#[cfg(feature = "redis")]
pub mod redis_ledger;
#[cfg(feature = "redis")]
pub use redis_ledger::RedisLedger;
mod retention;
pub mod runs;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aegis_contracts::{Error, ErrorKind, Secret};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use aegis_contracts::{CheckpointStore, Principal};
pub use audit::{
    AuditEntry, AuditProblem, AuditRecord, AuditReport, AuditSink, AuditWriter, AuditWriterConfig,
};
pub use keys::{ApiKeyInfo, CreatedKey, KeyAuthenticator, NewKey, VirtualKeysConfig};
pub use migration::Migrator;
pub use runs::{
    DecisionRecord, InterruptRecord, RunDetail, RunPage, RunQuery, RunRecord, TimelineEntry,
};

/// How to open a [`Store`]: the URL plus tuning. [`Store::connect`] uses the defaults.
/// `Debug` never shows the URL's password.
#[derive(Clone)]
pub struct StoreOptions {
    url: String,
    max_connections: Option<u32>,
    schema: Option<String>,
    busy_timeout: Duration,
    connect_timeout: Duration,
    synchronous_full: bool,
    record_content: bool,
    four_eyes: bool,
    audit_key: Option<Secret>,
    audit_unkeyed_before: u64,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("schema", &self.schema)
            .field("busy_timeout", &self.busy_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("synchronous_full", &self.synchronous_full)
            .field("record_content", &self.record_content)
            .field("four_eyes", &self.four_eyes)
            .field("audit_key", &self.audit_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `scheme://user:password@host/...` → `scheme://user:***@host/...`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

impl StoreOptions {
    /// Options for `url`: `sqlite::memory:`, `sqlite://PATH` / `sqlite:PATH` (the file is
    /// created on first use), or `postgres://user@host/db`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: None,
            schema: None,
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            synchronous_full: false,
            record_content: false,
            four_eyes: true,
            audit_key: None,
            audit_unkeyed_before: 1,
        }
    }

    /// Pool size (default: 1 for `sqlite::memory:`, which is one private database per
    /// connection; 4 for SQLite files; 10 for PostgreSQL).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n.max(1));
        self
    }

    /// PostgreSQL only: the schema (`search_path`) the tables live in.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// SQLite only: how long a writer waits for another process's write lock (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long to wait for a connection, when opening and from the pool (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// SQLite only: `synchronous=FULL` (fsync on every commit; survives power loss) instead
    /// of the default `NORMAL`, which in WAL mode survives a process crash (SIGKILL included)
    /// but may lose the last commits on power loss.
    pub fn synchronous_full(mut self, yes: bool) -> Self {
        self.synchronous_full = yes;
        self
    }

    /// Whether audit records may carry content (edited prompts or tool calls in decisions).
    /// Off by default: the audit log then stores a SHA-256 of such values instead.
    pub fn record_content(mut self, yes: bool) -> Self {
        self.record_content = yes;
        self
    }

    /// Whether the principal who started a run is refused as its approver (default `true`:
    /// separation of duties — someone else with the approver or admin role for the run's
    /// team decides).
    pub fn four_eyes(mut self, yes: bool) -> Self {
        self.four_eyes = yes;
        self
    }

    /// The key of the audit chain: records are then linked with HMAC-SHA256 under it, so
    /// someone who can write rows but does not hold the key cannot forge a valid chain
    /// (see [`audit`]). Resolve it from a `secret://` reference; never put it in config.
    pub fn audit_key(mut self, key: Secret) -> Self {
        self.audit_key = Some(key);
        self
    }

    /// With [`audit_key`](Self::audit_key), for a log that existed before the key was
    /// configured: records with a seq below `seq` may be unkeyed (default 1: none may — an
    /// unkeyed record in a keyed log is reported, so a wholesale rewrite without the key
    /// cannot pass as an old unkeyed log). Note the head seq when the key is adopted.
    pub fn audit_unkeyed_before(mut self, seq: u64) -> Self {
        self.audit_unkeyed_before = seq.max(1);
        self
    }
}

/// The database handle: checkpoints, runs, approvals, keys and the audit log. Cheap to clone
/// (a shared pool).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    record_content: bool,
    four_eyes: bool,
    audit_key: Option<Arc<Secret>>,
    audit_unkeyed_before: u64,
    /// SQLite: in-process writers queue here (fair, FIFO) instead of spinning in SQLite's
    /// busy handler; other processes are still serialized by `BEGIN IMMEDIATE`.
    write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Resolved virtual keys, for [`Store::resolve_key_cached`].
    key_cache: keys::KeyCache,
    /// Checkpoints and audit records, committed many to a transaction (see [`group`]).
    group: group::GroupCommit,
}

/// A write transaction (holding the in-process SQLite write slot, if any).
pub(crate) struct WriteTxn {
    txn: DatabaseTransaction,
    _slot: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The audit chain's key, for the records this transaction appends.
    pub(crate) audit_key: Option<Arc<Secret>>,
    /// The records appended so far, inserted by [`commit`](Self::commit).
    audit: std::sync::Mutex<audit::AuditTail>,
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTxn {
    /// Inserts the audit records appended in this transaction, then commits.
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.commit_linked().await.map(drop)
    }

    /// [`commit`](Self::commit), returning where each appended record went in the chain.
    pub(crate) async fn commit_linked(self) -> Result<Vec<audit::Link>, DbErr> {
        let tail = std::mem::take(&mut *self.audit_tail());
        let links = match audit::flush_tail(&self.txn, self.audit_key.as_deref(), tail).await {
            Ok(links) => links,
            Err(e) => {
                let _ = self.txn.rollback().await;
                return Err(e);
            }
        };
        self.txn.commit().await?;
        Ok(links)
    }

    /// The audit records appended so far (see [`audit::append_in`]).
    pub(crate) fn audit_tail(&self) -> std::sync::MutexGuard<'_, audit::AuditTail> {
        // The tail is only touched between awaits: a poisoned lock still holds a whole tail.
        self.audit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }

    /// Commits when the work done in it succeeded (a failed commit is `cannot commit
    /// {what}`), rolls back and passes its error on otherwise.
    pub(crate) async fn finish<T>(self, work: Result<T, Error>, what: &str) -> Result<T, Error> {
        match work {
            Ok(v) => {
                self.commit()
                    .await
                    .map_err(|e| db_err(&format!("cannot commit {what}"), e))?;
                Ok(v)
            }
            Err(e) => {
                self.rollback().await.ok();
                Err(e)
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// The database behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Store {
    /// Whether a run's starter is barred from deciding it (separation of duties).
    pub fn four_eyes(&self) -> bool {
        self.inner.four_eyes
    }

    /// Opens (and migrates) the store at `url`; see [`StoreOptions::new`] for the URL forms.
    /// A database migrated by a newer `aegis-store` is refused with a clear error.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(StoreOptions::new(url)).await
    }

    /// [`connect`](Self::connect) with options.
    pub async fn connect_with(options: StoreOptions) -> Result<Self, Error> {
        let url = options.url.trim().to_owned();
        let is_sqlite = url.starts_with("sqlite:");
        let is_pg = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !is_sqlite && !is_pg {
            return Err(Error::config(
                "store url must start with `sqlite:`, `postgres://` or `postgresql://`",
            ));
        }
        let memory = is_sqlite && url.contains(":memory:");
        let mut opts = ConnectOptions::new(url.clone());
        opts.sqlx_logging(false)
            .connect_timeout(options.connect_timeout)
            .acquire_timeout(options.connect_timeout)
            // The pool's default pings every connection it hands out: one more round trip
            // per statement. A connection that was in use a moment ago is alive; only one
            // idle long enough for a server, proxy or firewall to have dropped it is pinged.
            .test_before_acquire_if_idle_for(Duration::from_secs(30));
        if let Some(schema) = &options.schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                || schema.is_empty()
            {
                return Err(Error::config(
                    "store schema must be a plain identifier ([A-Za-z0-9_])",
                ));
            }
            opts.set_schema_search_path(schema.clone());
        }
        if memory {
            // Each connection to `sqlite::memory:` is its own database: keep exactly one,
            // forever.
            opts.max_connections(1)
                .min_connections(1)
                .idle_timeout(None::<Duration>)
                .max_lifetime(None::<Duration>);
        } else {
            opts.max_connections(
                options
                    .max_connections
                    .unwrap_or(if is_sqlite { 4 } else { 10 }),
            );
        }
        let busy = options.busy_timeout;
        let full = options.synchronous_full;
        opts.map_sqlx_sqlite_opts(move |o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            let o = o
                .create_if_missing(true)
                .busy_timeout(busy)
                .foreign_keys(true)
                // Deleted and overwritten content is zeroed in the file, not left in free
                // pages: a run's dropped state must not be recoverable from the database.
                .pragma("secure_delete", "on");
            if memory {
                o
            } else {
                o.journal_mode(SqliteJournalMode::Wal).synchronous(if full {
                    SqliteSynchronous::Full
                } else {
                    SqliteSynchronous::Normal
                })
            }
        });
        // Replicas opening a fresh SQLite file at once race to switch it to WAL; the loser's
        // switch fails with SQLITE_BUSY instead of waiting. Retry within the busy timeout.
        let started = std::time::Instant::now();
        let db = loop {
            match Database::connect(opts.clone()).await {
                Ok(db) => break db,
                Err(e)
                    if is_sqlite
                        && e.to_string().contains("database is locked")
                        && started.elapsed() < busy =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(Error::storage(format!(
                        "cannot open the {} store: {e}",
                        if is_sqlite { "SQLite" } else { "PostgreSQL" }
                    ))
                    .with_source(e));
                }
            }
        };
        let write_lock = is_sqlite.then(|| Arc::new(tokio::sync::Mutex::new(())));
        let store = Store {
            inner: Arc::new(Inner {
                db,
                record_content: options.record_content,
                four_eyes: options.four_eyes,
                audit_key: options.audit_key.map(Arc::new),
                audit_unkeyed_before: options.audit_unkeyed_before,
                write_lock: write_lock.clone(),
                group: group::GroupCommit::new(write_lock.unwrap_or_default()),
                key_cache: keys::KeyCache::default(),
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (done by [`connect`](Self::connect)); serialized across
    /// processes (an advisory lock on PostgreSQL, the write lock on SQLite).
    pub async fn migrate(&self) -> Result<(), Error> {
        let txn = self.begin_write().await?;
        if self.backend() == Backend::Postgres {
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7244531088)")
                .await
                .map_err(|e| db_err("migration lock", e))?;
        }
        Migrator::up(&*txn, None).await.map_err(|e| {
            let msg = e.to_string();
            if msg.contains("is missing") {
                Error::storage(format!(
                    "the database was migrated by a newer aegis-store ({msg}); upgrade Aegis to use it"
                ))
            } else {
                db_err("migration failed", e)
            }
        })?;
        txn.commit()
            .await
            .map_err(|e| db_err("migration commit", e))
    }

    /// Rolls every migration back: drops all `aegis_` tables and their data. For tests and
    /// uninstalls.
    pub async fn migrate_down(&self) -> Result<(), Error> {
        Migrator::down(&self.inner.db, None)
            .await
            .map_err(|e| db_err("migration rollback failed", e))
    }

    /// Whether the store can serve: the database answers and every migration this build
    /// knows is applied (a replica of an older build beside a newer schema is ready; one
    /// whose schema was rolled back, or is not yet migrated, is not). The error says which.
    pub async fn ready(&self) -> Result<(), Error> {
        // A plain read of the ledger: no DDL, and migrations of a newer build are fine.
        let rows = self
            .inner
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                self.inner.db.get_database_backend(),
                "SELECT version FROM aegis_migrations",
            ))
            .await
            .map_err(|e| db_err("the database does not answer", e))?;
        let applied: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String>("", "version").ok())
            .collect();
        let missing: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .filter(|name| !applied.contains(name))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::storage(format!(
                "the database is not migrated: {} pending ({})",
                missing.len(),
                missing.join(", ")
            ))
            .with_code("store_not_migrated"))
        }
    }

    /// The database behind this store.
    pub fn backend(&self) -> Backend {
        match self.inner.db.get_database_backend() {
            DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// The underlying sea-orm connection, for hosts that keep their own tables alongside.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub(crate) fn record_content(&self) -> bool {
        self.inner.record_content
    }

    /// A write transaction: `BEGIN IMMEDIATE` on SQLite, so the write lock is taken (waiting
    /// up to the busy timeout) before anything is read.
    pub(crate) async fn begin_write(&self) -> Result<WriteTxn, Error> {
        let slot = match &self.inner.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        self.begin_txn(slot).await
    }

    /// A write transaction for a caller that already holds the group commit's slot (which
    /// on SQLite is the write lock).
    pub(crate) async fn begin_in_slot(&self) -> Result<WriteTxn, Error> {
        self.begin_txn(None).await
    }

    async fn begin_txn(
        &self,
        slot: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Result<WriteTxn, Error> {
        let txn = self
            .inner
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .map_err(|e| db_err("cannot begin a transaction", e))?;
        Ok(WriteTxn {
            txn,
            _slot: slot,
            audit_key: self.inner.audit_key.clone(),
            audit: Default::default(),
        })
    }
}

/// Empties `rows` into chunks of at most `n`.
pub(crate) fn take_chunks<T>(rows: &mut Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut rows = std::mem::take(rows).into_iter().peekable();
    let mut chunks = Vec::new();
    while rows.peek().is_some() {
        chunks.push(rows.by_ref().take(n).collect());
    }
    chunks
}

/// Maps a database error to [`ErrorKind::Storage`] with context.
pub(crate) fn db_err(context: &str, e: DbErr) -> Error {
    Error::storage(format!("{context}: {e}")).with_source(e)
}

/// Whether `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

pub(crate) fn conflict(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Conflict, msg)
}

pub(crate) fn not_found(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotFound, msg)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub(crate) fn to_json(v: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::internal(format!("does not serialize: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, Error> {
    serde_json::from_str(s)
        .map_err(|e| Error::storage(format!("stored {what} does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_database_password() {
        let o = StoreOptions::new("postgres://app:s3cret@db.internal:5432/aegis?sslmode=require");
        let shown = format!("{o:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal:5432/aegis?sslmode=require"));
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
