//! The audit log: append-only, hash-chained records of every verdict, decision, key event
//! and run transition.
//!
//! Each record stores the previous record's hash and its own hash, a SHA-256 over the
//! canonical JSON of the record (sorted keys, no whitespace; `data` is kept as the exact
//! canonical text that was hashed). [`Store::verify_audit`] walks the chain and reports
//! every record that was changed ([`AuditProblem::Altered`]), removed
//! ([`AuditProblem::Missing`]) or re-linked ([`AuditProblem::BrokenLink`]). Appends lock the
//! one-row `aegis_audit_head` table first, so concurrent appends — from tasks, connections
//! or processes — always extend one linear chain. The head also lets `verify` notice records
//! cut off the end; hosts that need protection against a full rewrite can anchor
//! [`AuditReport::head_hash`] elsewhere (a log line, a transparency service):
//! [`Store::audit_head`] gives it signed.
//!
//! **Keyed chains.** With [`StoreOptions::audit_key`](crate::StoreOptions::audit_key) each
//! record's hash is an HMAC-SHA256 under the key (stored as `hmac-sha256:<hex>`): someone who
//! can write rows — and so could recompute plain SHA-256 hashes — cannot forge a record that
//! verifies without the key. An unkeyed record in a keyed log is reported
//! ([`AuditProblem::Unkeyed`]) — unless it lies in the prefix written before the key was
//! adopted ([`StoreOptions::audit_unkeyed_before`](crate::StoreOptions::audit_unkeyed_before)),
//! which the first keyed record seals (its HMAC covers its predecessor's hash). A keyed
//! record checked without the key is [`AuditProblem::KeyRequired`].
//!
//! Content (prompts, completions, edited tool calls) is not stored unless
//! [`StoreOptions::record_content`](crate::StoreOptions::record_content) or
//! [`AuditWriterConfig::record_content`] says so; a SHA-256 of the value is kept instead.
//!
//! [`AuditWriter`] turns run events into audit records without blocking the caller:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use aegis_contracts::{RunEvent, RunEventKind, TelemetrySink, Verdict, Stage};
//! use aegis_store::{AuditWriter, Store};
//!
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! let (sink, task) = AuditWriter::spawn(store.clone()); // the host starts the task
//! sink.on_event(&RunEvent::now("run-1", RunEventKind::Verdict {
//!     stage: Stage::Input, verdict: Verdict::block("no", "rule"), enforced: true,
//! }));
//! sink.flush().await; // waits until everything sent so far is written
//! let records = store.audit_records(Some("run-1"), 0, 100).await.unwrap();
//! assert_eq!(records[0].kind, "event.verdict");
//! drop(sink);
//! task.await.unwrap(); // ends once every sink is dropped
//! # });
//! ```

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use aegis_contracts::{Error, ErrorKind, RunEvent, RunEventKind, Secret, TelemetrySink};
use schemars::JsonSchema;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{Store, db_err, entity, now_ms};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Something to append to the audit log.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditEntry {
    /// What happened: `run.transition`, `run.decision`, `key.created`, `event.verdict`, ...
    pub kind: String,
    /// The run it concerns.
    pub run_id: Option<String>,
    /// Who did it (a principal id).
    pub actor: Option<String>,
    /// Details (never a secret; content only when configured).
    pub data: Value,
    /// When, Unix ms (default: now).
    pub at_ms: Option<u64>,
}

impl AuditEntry {
    /// An entry of `kind` with `data`.
    pub fn new(kind: impl Into<String>, data: Value) -> Self {
        Self {
            kind: kind.into(),
            run_id: None,
            actor: None,
            data,
            at_ms: None,
        }
    }

    /// About this run.
    pub fn run(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Done by this principal.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// Unix ms.
    pub at_ms: u64,
    /// What happened.
    pub kind: String,
    /// The run it concerns.
    pub run_id: Option<String>,
    /// Who did it.
    pub actor: Option<String>,
    /// Details.
    pub data: Value,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) of this record's canonical JSON.
    pub hash: String,
}

/// One problem [`Store::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditProblem {
    /// The record's content no longer matches its hash.
    Altered {
        /// The record.
        seq: u64,
    },
    /// Records `from..=to` are gone.
    Missing {
        /// First missing seq.
        from: u64,
        /// Last missing seq.
        to: u64,
    },
    /// The record does not point at its predecessor's hash.
    BrokenLink {
        /// The record.
        seq: u64,
    },
    /// The record is keyed (HMAC) and the store has no key to check it with.
    KeyRequired {
        /// The first such record.
        seq: u64,
    },
    /// The store has a key and the record is not keyed (and not in the unkeyed prefix the
    /// store was told about: [`StoreOptions::audit_unkeyed_before`](crate::StoreOptions::audit_unkeyed_before)).
    Unkeyed {
        /// The record.
        seq: u64,
    },
}

/// The outcome of [`Store::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct AuditReport {
    /// Records checked.
    pub checked: u64,
    /// The chain head's seq (the number of records ever appended).
    pub head_seq: u64,
    /// The chain head's hash: anchor it elsewhere to detect a wholesale rewrite.
    pub head_hash: String,
    /// Every problem found, in chain order; empty when the log is intact.
    pub problems: Vec<AuditProblem>,
    /// Records verified under the store's key (HMAC).
    #[serde(default)]
    pub keyed: u64,
    /// Records with a plain SHA-256 hash (all of them without a key; with a key, the
    /// prefix written before it was configured).
    #[serde(default)]
    pub unkeyed: u64,
}

impl AuditReport {
    /// Whether no problem was found.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Canonical JSON: object keys sorted, no whitespace.
pub(crate) fn canonical(v: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_canonical(v, &mut out);
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => write_scalar(other, out),
    }
}

/// A string, number, boolean or null as serde_json writes it (strings escaped).
fn write_scalar<T: Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    // Writing a scalar into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// The record's hash: SHA-256 over its canonical JSON, with `data` embedded as the exact
/// canonical text stored (so verification never depends on re-parsing numbers).
/// The prefix of a keyed record hash.
pub const HMAC_PREFIX: &str = "hmac-sha256:";

/// The hash of one record: its fields in the documented canonical form, under the key when
/// the chain is keyed. (One argument per hashed field, in hash order, on purpose.)
#[allow(clippy::too_many_arguments)]
fn record_hash(
    key: Option<&Secret>,
    seq: i64,
    at_ms: i64,
    kind: &str,
    run_id: Option<&str>,
    actor: Option<&str>,
    data_text: &str,
    prev_hash: &str,
) -> String {
    fn field(text: &mut Vec<u8>, name: &str, v: Option<&str>) {
        text.extend_from_slice(name.as_bytes());
        match v {
            Some(v) => write_scalar(v, text),
            None => text.extend_from_slice(b"null"),
        }
    }
    // Keys in sorted order.
    let mut text = Vec::with_capacity(data_text.len() + 256);
    field(&mut text, "{\"actor\":", actor);
    text.extend_from_slice(format!(",\"at_ms\":{at_ms},\"data\":").as_bytes());
    text.extend_from_slice(data_text.as_bytes());
    field(&mut text, ",\"kind\":", Some(kind));
    field(&mut text, ",\"prev_hash\":", Some(prev_hash));
    field(&mut text, ",\"run_id\":", run_id);
    text.extend_from_slice(format!(",\"seq\":{seq}}}").as_bytes());
    match key {
        Some(key) => format!("{HMAC_PREFIX}{}", hmac_hex(key, &text)),
        None => hex::encode(Sha256::digest(&text)),
    }
}

/// HMAC-SHA256 of `message` under `key`, in hex.
pub(crate) fn hmac_hex(key: &Secret, message: &[u8]) -> String {
    use hmac::Mac;
    // HMAC takes keys of any length; were it ever to refuse one, the empty hash verifies
    // nothing (fail closed).
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) else {
        return String::new();
    };
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) fn sha256_hex(v: &Value) -> String {
    hex::encode(Sha256::digest(canonical(v).as_bytes()))
}

fn to_record(m: entity::audit::Model) -> AuditRecord {
    AuditRecord {
        seq: m.seq as u64,
        at_ms: m.at_ms.max(0) as u64,
        kind: m.kind,
        run_id: m.run_id,
        actor: m.actor,
        data: serde_json::from_str(&m.data).unwrap_or(Value::String(m.data)),
        prev_hash: m.prev_hash,
        hash: m.hash,
    }
}

/// The records a write transaction appends, linked and inserted together when it commits
/// ([`flush_tail`]). The chain's head row is locked then — once per transaction, and after
/// every other row the transaction writes, as every writer of the store locks it: last. (A
/// batch that took the head at its first record and then moved other runs' rows would lock
/// in the opposite order to a decision, which takes its interrupt row, then the head.)
#[derive(Default)]
pub(crate) struct AuditTail {
    pending: Vec<Pending>,
}

/// A record waiting for its place in the chain.
struct Pending {
    at_ms: i64,
    kind: String,
    run_id: Option<String>,
    actor: Option<String>,
    data_text: String,
}

/// Locks the head row (serializing appenders across connections and processes) and reads
/// it, in one statement.
async fn lock_head(txn: &DatabaseTransaction) -> Result<(i64, String), DbErr> {
    use sea_orm::{ConnectionTrait, Statement};
    // A no-op update takes the row lock (PostgreSQL) inside the write transaction (SQLite's
    // is already exclusive); RETURNING reads it back (SQLite ≥ 3.35, PostgreSQL).
    let row = txn
        .query_one_raw(Statement::from_string(
            txn.get_database_backend(),
            "UPDATE aegis_audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash",
        ))
        .await?
        .ok_or_else(|| {
            DbErr::Custom("the audit head row is missing; the audit log was tampered with".into())
        })?;
    Ok((
        row.try_get::<i64>("", "seq")?,
        row.try_get::<String>("", "hash")?,
    ))
}

/// Where an appended entry went in the chain.
#[derive(Clone)]
pub(crate) struct Link {
    seq: i64,
    at_ms: i64,
    prev_hash: String,
    hash: String,
}

impl Link {
    fn record(self, entry: AuditEntry) -> AuditRecord {
        AuditRecord {
            seq: self.seq as u64,
            at_ms: self.at_ms as u64,
            kind: entry.kind,
            run_id: entry.run_id,
            actor: entry.actor,
            data: entry.data,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Appends `entry` inside `write`: it is linked and inserted when the transaction commits,
/// and its [`Link`] is the one at the returned index of those
/// [`WriteTxn::commit_linked`](crate::WriteTxn::commit_linked) returns.
pub(crate) fn append_in(write: &crate::WriteTxn, entry: &AuditEntry) -> usize {
    let pending = Pending {
        at_ms: entry.at_ms.map_or_else(now_ms, |t| t as i64),
        kind: entry.kind.clone(),
        run_id: entry.run_id.clone(),
        actor: entry.actor.clone(),
        data_text: canonical(&entry.data),
    };
    let mut tail = write.audit_tail();
    tail.pending.push(pending);
    tail.pending.len() - 1
}

/// Links the records queued in `txn` to the chain's head (locking it), inserts them and
/// moves the head past them; before the commit. The links come back in queue order.
pub(crate) async fn flush_tail(
    txn: &DatabaseTransaction,
    key: Option<&Secret>,
    tail: AuditTail,
) -> Result<Vec<Link>, DbErr> {
    use entity::audit_head as head;
    if tail.pending.is_empty() {
        return Ok(Vec::new());
    }
    let (mut seq, mut prev_hash) = lock_head(txn).await?;
    let mut links = Vec::with_capacity(tail.pending.len());
    let mut rows = Vec::with_capacity(tail.pending.len());
    for p in tail.pending {
        seq += 1;
        let hash = record_hash(
            key,
            seq,
            p.at_ms,
            &p.kind,
            p.run_id.as_deref(),
            p.actor.as_deref(),
            &p.data_text,
            &prev_hash,
        );
        rows.push(entity::audit::ActiveModel {
            seq: Set(seq),
            at_ms: Set(p.at_ms),
            kind: Set(p.kind),
            run_id: Set(p.run_id),
            actor: Set(p.actor),
            data: Set(p.data_text),
            prev_hash: Set(prev_hash.clone()),
            hash: Set(hash.clone()),
        });
        links.push(Link {
            seq,
            at_ms: p.at_ms,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
    }
    // Eight columns a row: well below SQLite's and PostgreSQL's bound parameters per statement.
    for chunk in crate::take_chunks(&mut rows, 500) {
        entity::audit::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    head::Entity::update_many()
        .col_expr(head::Column::Seq, Expr::value(seq))
        .col_expr(head::Column::Hash, Expr::value(prev_hash))
        .filter(head::Column::Id.eq(1))
        .exec(txn)
        .await?;
    Ok(links)
}

impl Store {
    /// Appends one record (atomically; concurrent appends keep one linear chain).
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<AuditRecord, Error> {
        let mut out = self.append_audit_batch(vec![entry]).await?;
        out.pop()
            .ok_or_else(|| Error::internal("audit append returned nothing"))
    }

    /// Appends several records in one transaction, in order.
    pub async fn append_audit_batch(
        &self,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<AuditRecord>, Error> {
        let entries = Arc::new(entries);
        let links = self.append_shared(entries.clone()).await?;
        // The batch has let go of its share by now, but for a moment it may not have.
        let entries = Arc::try_unwrap(entries).unwrap_or_else(|shared| (*shared).clone());
        Ok(links
            .into_iter()
            .zip(entries)
            .map(|(link, entry)| link.record(entry))
            .collect())
    }

    /// Appends `entries` (shared, so a retry does not copy them), in a transaction they may
    /// share with other writers' work.
    async fn append_shared(&self, entries: Arc<Vec<AuditEntry>>) -> Result<Vec<Link>, Error> {
        use crate::group::{Done, Work, WriteFailure};
        match self.commit_grouped(Work::Audit(entries)).await {
            Ok(Done::Audit(links)) => Ok(links),
            Ok(Done::Put) => Err(Error::internal("an audit append committed as a checkpoint")),
            Err(WriteFailure::Other(e)) => Err(e),
            Err(WriteFailure::Conflict) => Err(Error::internal("an audit append conflicted")),
        }
    }

    /// Audit records in chain order with `seq > after_seq`, at most `limit`; only those of
    /// `run_id` when given.
    pub async fn audit_records(
        &self,
        run_id: Option<&str>,
        after_seq: u64,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, Error> {
        let mut q = entity::audit::Entity::find()
            .filter(entity::audit::Column::Seq.gt(after_seq as i64))
            .order_by_asc(entity::audit::Column::Seq)
            .limit(limit);
        if let Some(run_id) = run_id {
            q = q.filter(entity::audit::Column::RunId.eq(run_id));
        }
        Ok(q.all(self.db())
            .await
            .map_err(|e| db_err("cannot read the audit log", e))?
            .into_iter()
            .map(to_record)
            .collect())
    }

    /// Walks the whole chain and reports every altered, missing or re-linked record.
    pub async fn verify_audit(&self) -> Result<AuditReport, Error> {
        const PAGE: u64 = 1000;
        let head = entity::audit_head::Entity::find_by_id(1)
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot read the audit head", e))?;
        let mut problems = Vec::new();
        let (head_seq, head_hash) = match head {
            Some(h) => (h.seq.max(0) as u64, h.hash),
            None => {
                problems.push(AuditProblem::BrokenLink { seq: 0 });
                (0, String::new())
            }
        };
        let mut expected_seq = 1u64;
        let mut prev_hash = GENESIS.to_owned();
        let mut checked = 0u64;
        let (mut seen_keyed, mut keyed_count, mut unkeyed_count) = (false, 0u64, 0u64);
        loop {
            let page = entity::audit::Entity::find()
                .filter(entity::audit::Column::Seq.gte(expected_seq as i64))
                .order_by_asc(entity::audit::Column::Seq)
                .limit(PAGE)
                .all(self.db())
                .await
                .map_err(|e| db_err("cannot read the audit log", e))?;
            let n = page.len() as u64;
            for m in page {
                checked += 1;
                let seq = m.seq.max(0) as u64;
                let gap = seq > expected_seq;
                if gap {
                    problems.push(AuditProblem::Missing {
                        from: expected_seq,
                        to: seq - 1,
                    });
                }
                let keyed = m.hash.starts_with(HMAC_PREFIX);
                let key = match (keyed, self.audit_key()) {
                    (true, Some(k)) => Some(k),
                    (true, None) => {
                        if !problems
                            .iter()
                            .any(|p| matches!(p, AuditProblem::KeyRequired { .. }))
                        {
                            problems.push(AuditProblem::KeyRequired { seq });
                        }
                        prev_hash = m.hash;
                        expected_seq = seq + 1;
                        continue;
                    }
                    (false, _) => None,
                };
                if keyed {
                    seen_keyed = true;
                    keyed_count += 1;
                } else {
                    unkeyed_count += 1;
                }
                let recomputed = record_hash(
                    key,
                    m.seq,
                    m.at_ms,
                    &m.kind,
                    m.run_id.as_deref(),
                    m.actor.as_deref(),
                    &m.data,
                    &m.prev_hash,
                );
                // The hash covers the stored text verbatim, so any edit shows; nothing is
                // re-parsed (float parsing is not guaranteed to round-trip bit for bit).
                // Unkeyed in a keyed log, past the known unkeyed prefix: a record rewritten
                // without the key.
                if !keyed
                    && self.audit_key().is_some()
                    && (seen_keyed || seq >= self.inner.audit_unkeyed_before)
                {
                    problems.push(AuditProblem::Unkeyed { seq });
                } else if recomputed != m.hash {
                    problems.push(AuditProblem::Altered { seq });
                } else if !gap && m.prev_hash != prev_hash {
                    problems.push(AuditProblem::BrokenLink { seq });
                }
                prev_hash = m.hash;
                expected_seq = seq + 1;
            }
            if n < PAGE {
                break;
            }
        }
        if head_seq >= expected_seq {
            problems.push(AuditProblem::Missing {
                from: expected_seq,
                to: head_seq,
            });
        } else if head_seq + 1 == expected_seq && head_hash != prev_hash && head_seq > 0 {
            problems.push(AuditProblem::Altered { seq: head_seq });
        }
        Ok(AuditReport {
            checked,
            head_seq,
            head_hash,
            problems,
            keyed: keyed_count,
            unkeyed: unkeyed_count,
        })
    }

    fn audit_key(&self) -> Option<&Secret> {
        self.inner.audit_key.as_deref()
    }

    /// The chain's head for anchoring elsewhere (a log line, a ticket, a transparency
    /// service): its seq and hash, and with a key an HMAC over both, so a copy can later be
    /// compared with [`verify_audit`](Self::verify_audit)'s head and shown to be genuine.
    pub async fn audit_head(&self) -> Result<AuditHead, Error> {
        let h = entity::audit_head::Entity::find_by_id(1)
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot read the audit head", e))?
            .ok_or_else(|| Error::storage("the audit head row is missing"))?;
        let seq = h.seq.max(0) as u64;
        let signature = self
            .audit_key()
            .map(|k| hmac_hex(k, head_message(seq, &h.hash).as_bytes()));
        Ok(AuditHead {
            seq,
            hash: h.hash,
            at_ms: now_ms() as u64,
            signature,
        })
    }

    /// Whether `head` (an exported [`audit_head`](Self::audit_head)) carries a valid
    /// signature under this store's key.
    pub fn audit_head_is_genuine(&self, head: &AuditHead) -> bool {
        match (self.audit_key(), &head.signature) {
            (Some(k), Some(sig)) => {
                hmac_hex(k, head_message(head.seq, &head.hash).as_bytes()) == *sig
            }
            _ => false,
        }
    }
}

/// An exported chain head: see [`Store::audit_head`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditHead {
    /// The number of records ever appended.
    pub seq: u64,
    /// The last record's hash.
    pub hash: String,
    /// When it was read (Unix milliseconds).
    pub at_ms: u64,
    /// HMAC-SHA256 under the audit key of `aegis-audit-head:{seq}:{hash}`, when keyed.
    pub signature: Option<String>,
}

fn head_message(seq: u64, hash: &str) -> String {
    format!("aegis-audit-head:{seq}:{hash}")
}

/// What [`AuditWriter`] records.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AuditWriterConfig {
    /// Events buffered before new ones are dropped (and the drop itself audited).
    pub capacity: usize,
    /// Record `node_entered` / `node_left` events too (noisy; off by default).
    pub include_node_events: bool,
    /// Keep content-bearing fields (approval payloads, sanitize replacements) verbatim
    /// instead of a SHA-256 of them.
    pub record_content: bool,
    /// The audit log is required: no event is ever dropped (the queue is unbounded and a
    /// failing write is retried until the database takes it), and a run's answer is held
    /// until its records are stored — if that takes longer than `required_wait_ms`, the
    /// caller gets an `audit_unavailable` error instead of the answer.
    pub required: bool,
    /// How long a run waits for its audit records in `required` mode, in milliseconds
    /// (default 5000).
    pub required_wait_ms: u64,
}

impl Default for AuditWriterConfig {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            include_node_events: false,
            record_content: false,
            required: false,
            required_wait_ms: 5_000,
        }
    }
}

/// The writer's queue: bounded (a full queue drops, and says so), or unbounded when the
/// audit log is required.
#[derive(Clone)]
enum Queue {
    Bounded(mpsc::Sender<Msg>),
    Unbounded(mpsc::UnboundedSender<Msg>),
}

impl Queue {
    /// Queues `m`; `false` when it was dropped.
    fn offer(&self, m: Msg) -> bool {
        match self {
            Self::Bounded(tx) => tx.try_send(m).is_ok(),
            Self::Unbounded(tx) => tx.send(m).is_ok(),
        }
    }

    async fn send(&self, m: Msg) -> bool {
        match self {
            Self::Bounded(tx) => tx.send(m).await.is_ok(),
            Self::Unbounded(tx) => tx.send(m).is_ok(),
        }
    }
}

/// The receiving end of a [`Queue`].
enum Inbox {
    Bounded(mpsc::Receiver<Msg>),
    Unbounded(mpsc::UnboundedReceiver<Msg>),
}

impl Inbox {
    async fn recv(&mut self) -> Option<Msg> {
        match self {
            Self::Bounded(rx) => rx.recv().await,
            Self::Unbounded(rx) => rx.recv().await,
        }
    }

    fn try_recv(&mut self) -> Option<Msg> {
        match self {
            Self::Bounded(rx) => rx.try_recv().ok(),
            Self::Unbounded(rx) => rx.try_recv().ok(),
        }
    }
}

enum Msg {
    Entry(AuditEntry),
    Flush(oneshot::Sender<()>),
}

/// Starts the background task that writes [`RunEvent`]s into the audit log.
#[derive(Debug)]
pub struct AuditWriter;

impl AuditWriter {
    /// Spawns the writer on the current Tokio runtime (panics outside one, like
    /// `tokio::spawn`) with the default config. The task ends once every [`AuditSink`]
    /// clone is dropped and the queue is written.
    pub fn spawn(store: Store) -> (AuditSink, JoinHandle<()>) {
        Self::spawn_with(store, AuditWriterConfig::default())
    }

    /// [`spawn`](Self::spawn) with a config.
    pub fn spawn_with(store: Store, config: AuditWriterConfig) -> (AuditSink, JoinHandle<()>) {
        Self::spawn_on(&tokio::runtime::Handle::current(), store, config)
    }

    /// [`spawn_with`](Self::spawn_with) on a given runtime.
    pub fn spawn_on(
        handle: &tokio::runtime::Handle,
        store: Store,
        config: AuditWriterConfig,
    ) -> (AuditSink, JoinHandle<()>) {
        let (tx, rx) = if config.required {
            let (tx, rx) = mpsc::unbounded_channel();
            (Queue::Unbounded(tx), Inbox::Unbounded(rx))
        } else {
            let (tx, rx) = mpsc::channel(config.capacity.max(1));
            (Queue::Bounded(tx), Inbox::Bounded(rx))
        };
        let dropped = Arc::new(AtomicU64::new(0));
        let task = handle.spawn(write_loop(store, rx, dropped.clone(), config.required));
        (
            AuditSink {
                tx,
                dropped,
                config: Arc::new(config),
            },
            task,
        )
    }
}

/// How long the writer gathers events after the first one before it writes them (unless the
/// log is required or a flush is waiting).
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

async fn write_loop(store: Store, mut rx: Inbox, dropped: Arc<AtomicU64>, required: bool) {
    const BATCH: usize = 256;
    while let Some(first) = rx.recv().await {
        let mut entries = Vec::new();
        let mut acks = Vec::new();
        fn push(m: Msg, entries: &mut Vec<AuditEntry>, acks: &mut Vec<oneshot::Sender<()>>) {
            match m {
                Msg::Entry(e) => entries.push(e),
                Msg::Flush(ack) => acks.push(ack),
            }
        }
        push(first, &mut entries, &mut acks);
        // The events of a run arrive over its whole life: gathering them for a moment makes
        // one transaction of what would be several, and keeps the writer out of the way of
        // the runs' own checkpoint writes. A required log, or a flush, writes at once.
        let deadline = tokio::time::Instant::now() + LINGER;
        while entries.len() < BATCH {
            match rx.try_recv() {
                Some(m) => push(m, &mut entries, &mut acks),
                None if required || !acks.is_empty() => break,
                None => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(m)) => push(m, &mut entries, &mut acks),
                    // The deadline, or every sink gone.
                    _ => break,
                },
            }
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            entries.push(AuditEntry::new(
                "audit.dropped",
                serde_json::json!({ "events": lost, "why": "the audit queue was full or the database failed" }),
            ));
        }
        if !entries.is_empty() {
            let n = entries.len() as u64;
            let entries = Arc::new(entries);
            let mut attempt = 0;
            loop {
                match store.append_shared(entries.clone()).await {
                    Ok(_) => break,
                    // A required log keeps every event: retry until the database takes it
                    // (runs waiting on it fail closed meanwhile).
                    Err(e) if attempt < 3 || required => {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "audit write failed; retrying");
                        let backoff = 50u64 << attempt.min(4);
                        tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, events = n, "audit write failed; events lost");
                        dropped.fetch_add(n, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// A [`TelemetrySink`] that queues run events for the audit log; `on_event` never blocks
/// (a full queue drops the event and the loss is itself audited as `audit.dropped`).
#[derive(Clone)]
pub struct AuditSink {
    tx: Queue,
    dropped: Arc<AtomicU64>,
    config: Arc<AuditWriterConfig>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AuditSink {
    /// Waits until every event queued before this call is written; `false` when the writer
    /// is gone (its task ended), so nothing queued can be written any more.
    pub async fn flush(&self) -> bool {
        let (ack, done) = oneshot::channel();
        self.tx.send(Msg::Flush(ack)).await && done.await.is_ok()
    }

    /// Events dropped (queue full or writes failing) and not yet recorded as dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn entry_for(&self, event: &RunEvent) -> Option<AuditEntry> {
        if matches!(
            event.kind,
            RunEventKind::NodeEntered { .. } | RunEventKind::NodeLeft { .. }
        ) && !self.config.include_node_events
        {
            return None;
        }
        // Timing, not a fact about what the run did.
        if matches!(event.kind, RunEventKind::FirstToken) {
            return None;
        }
        let mut data = serde_json::to_value(&event.kind).ok()?;
        let tag = data
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        if !self.config.record_content {
            redact(&mut data);
        }
        let actor = match &event.kind {
            RunEventKind::Resumed { by, .. } => by.clone(),
            RunEventKind::Audit { principal, .. } => principal.clone(),
            _ => None,
        };
        let mut entry = AuditEntry::new(format!("event.{tag}"), data).run(event.run_id.clone());
        entry.actor = actor;
        entry.at_ms = Some(event.at_ms);
        Some(entry)
    }
}

/// Replaces content-bearing fields of a verdict with their SHA-256.
fn redact(data: &mut Value) {
    let Some(verdict) = data.get_mut("verdict").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(payload) = verdict.get_mut("payload")
        && !payload.is_null()
    {
        *payload = serde_json::json!({ "redacted": true, "sha256": sha256_hex(payload) });
    }
    if let Some(Value::Array(edits)) = verdict.get_mut("edits") {
        for edit in edits {
            if let Some(r) = edit.get_mut("replacement") {
                *r = serde_json::json!({ "redacted": true, "sha256": sha256_hex(r) });
            }
        }
    }
}

impl TelemetrySink for AuditSink {
    fn on_event(&self, event: &RunEvent) {
        let Some(entry) = self.entry_for(event) else {
            return;
        };
        if !self.tx.offer(Msg::Entry(entry)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn durable(&self) -> Option<aegis_contracts::DurableFuture> {
        if !self.config.required {
            return None;
        }
        let sink = self.clone();
        let wait = std::time::Duration::from_millis(self.config.required_wait_ms);
        Some(Box::pin(async move {
            let written = tokio::time::timeout(wait, sink.flush()).await;
            if written == Ok(true) {
                return Ok(());
            }
            let why = if written.is_err() {
                format!("could not be written within {} ms", wait.as_millis())
            } else {
                "writer has stopped".to_owned()
            };
            Err(Error::new(
                ErrorKind::Storage,
                format!("the audit log {why}; the answer is withheld (audit = \"required\")"),
            )
            .with_code("audit_unavailable"))
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let v = json!({"b": [1, {"z": null, "a": "x"}], "a": 1.5});
        assert_eq!(canonical(&v), r#"{"a":1.5,"b":[1,{"a":"x","z":null}]}"#);
    }

    #[test]
    fn the_record_hash_covers_every_field() {
        let base = record_hash(None, 1, 2, "k", Some("r"), Some("a"), "{}", GENESIS);
        assert_ne!(
            base,
            record_hash(None, 2, 2, "k", Some("r"), Some("a"), "{}", GENESIS)
        );
        assert_ne!(
            base,
            record_hash(None, 1, 3, "k", Some("r"), Some("a"), "{}", GENESIS)
        );
        assert_ne!(
            base,
            record_hash(None, 1, 2, "j", Some("r"), Some("a"), "{}", GENESIS)
        );
        assert_ne!(
            base,
            record_hash(None, 1, 2, "k", None, Some("a"), "{}", GENESIS)
        );
        assert_ne!(
            base,
            record_hash(None, 1, 2, "k", Some("r"), None, "{}", GENESIS)
        );
        assert_ne!(
            base,
            record_hash(None, 1, 2, "k", Some("r"), Some("a"), "[]", GENESIS)
        );
        assert_ne!(
            base,
            record_hash(None, 1, 2, "k", Some("r"), Some("a"), "{}", "1")
        );
    }

    #[test]
    fn redaction_hides_approval_payloads_and_replacements() {
        let mut data = json!({"event":"verdict","verdict":{"decision":"require_approval","payload":{"prompt":"secret plan"},"edits":[{"replacement":"<P1>"}]}});
        redact(&mut data);
        let text = data.to_string();
        assert!(
            !text.contains("secret plan") && !text.contains("<P1>"),
            "{text}"
        );
        assert_eq!(data["verdict"]["payload"]["redacted"], true);
    }
}
