//! Group commit: the store's hot writes — checkpoints and audit records — share transactions.
//!
//! A writer queues its work and then either finds it done or becomes the *leader*: it takes
//! the store's write slot, drains the queue and commits everything queued in **one**
//! transaction, then hands each writer its own result. A caller's `put` still returns only
//! once its checkpoint is committed (so [`Durability::Exit`] keeps its meaning: a completed
//! run is stored before its answer goes out); what is shared is the transaction, not the
//! guarantee. Under load a commit carries dozens of runs; alone, a write commits at once.
//!
//! - **Failure isolation.** If any work in a batch fails (a version conflict, a duplicate
//!   interrupt id), the batch is rolled back and every piece of work is retried alone, so a
//!   failure belongs to the writer that caused it and to nobody else.
//! - **Back-pressure.** The queue holds one piece of work per waiting writer, and writers
//!   wait: it is bounded by the callers' own concurrency (the gateway's limits), never by
//!   memory. A batch takes at most [`MAX_BATCH`] pieces; the rest go in the next one.
//! - **Cancellation.** The batch runs in a task of its own, so a leader whose caller goes
//!   away still commits for everyone in it. Work whose caller has gone before its batch
//!   starts is skipped — as a cancelled transaction would have been rolled back.
//! - **Shutdown.** Nothing is buffered outside a waiting caller: when the callers have their
//!   answers, everything is stored; there is nothing to flush.
//!
//! [`Durability::Exit`]: https://docs.rs/aegis-core/latest/aegis_core/graph/enum.Durability.html

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use aegis_contracts::{Checkpoint, Error};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use sea_orm::{DatabaseTransaction, EntityTrait};

use crate::{
    Store, WriteTxn,
    audit::{AuditEntry, Link, queue_in},
    checkpoint::write_err,
    entity,
};

/// The most pieces of work one transaction carries.
pub(crate) const MAX_BATCH: usize = 512;

/// A write that may share a transaction with others.
pub(crate) enum Work {
    /// [`CheckpointStore::put`](aegis_contracts::CheckpointStore::put).
    Put {
        cp: Box<Checkpoint>,
        expected: Option<u64>,
    },
    /// Audit records, appended in order.
    Audit(Arc<Vec<AuditEntry>>),
}

/// What a piece of [`Work`] produced.
pub(crate) enum Done {
    Put,
    Audit(Vec<Link>),
}

/// What a piece of [`Work`] did inside its transaction, before the commit linked its audit
/// records: those are the ones at these indices of the commit's links.
enum Applied {
    Put,
    Audit(std::ops::Range<usize>),
}

impl Applied {
    fn done(self, links: &[Link]) -> Done {
        match self {
            Self::Put => Done::Put,
            Self::Audit(range) => {
                Done::Audit(links.get(range).map(<[Link]>::to_vec).unwrap_or_default())
            }
        }
    }
}

/// How a batch's shared transaction ended.
enum Together {
    Committed(Vec<Done>),
    /// A piece of work failed: rolled back, each is redone alone.
    Refused,
    /// The transaction could not begin, or its commit failed (and may have reached the
    /// database): no piece is redone.
    Failed(String),
}

/// Why a piece of work did not commit.
pub(crate) enum WriteFailure {
    /// A checkpoint's expected version was not the stored one (or another writer won).
    Conflict,
    Other(Error),
}

impl From<Error> for WriteFailure {
    fn from(e: Error) -> Self {
        Self::Other(e)
    }
}

pub(crate) type Outcome = Result<Done, WriteFailure>;

struct Job {
    work: Work,
    done: oneshot::Sender<Outcome>,
}

/// A principal's team and organisation.
pub(crate) type TeamOrg = (Option<String>, Option<String>);

/// What a transaction's puts share: lookups made once however many runs need them (a
/// principal's team and organisation, by id), and new runs' rows, inserted together.
#[derive(Default)]
pub(crate) struct BatchCache {
    /// A principal's row, `None` when it has none.
    pub(crate) principals: HashMap<String, Option<TeamOrg>>,
    pub(crate) new_runs: Vec<entity::run::ActiveModel>,
    pub(crate) checkpoints: Vec<entity::checkpoint::ActiveModel>,
}

impl BatchCache {
    /// Inserts the new runs' rows queued so far: before anything reads them, and before the
    /// commit. A duplicate run id fails the whole insert (the batch is then retried alone,
    /// where it is that writer's conflict).
    pub(crate) async fn insert_new_runs(&mut self, txn: &WriteTxn) -> Result<(), WriteFailure> {
        // At most a few thousand bound parameters a statement (15 and 10 columns a row):
        // below SQLite's and PostgreSQL's limits.
        const ROWS: usize = 200;
        let txn: &DatabaseTransaction = txn;
        for chunk in take_chunks(&mut self.new_runs, ROWS) {
            entity::run::Entity::insert_many(chunk)
                .exec_without_returning(txn)
                .await
                .map_err(|e| write_err("cannot insert the runs", e))?;
        }
        for chunk in take_chunks(&mut self.checkpoints, ROWS) {
            entity::checkpoint::Entity::insert_many(chunk)
                .exec_without_returning(txn)
                .await
                .map_err(|e| write_err("cannot insert the checkpoints", e))?;
        }
        Ok(())
    }
}

/// Empties `rows` into chunks of at most `n`.
fn take_chunks<T>(rows: &mut Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut rows = std::mem::take(rows).into_iter().peekable();
    let mut chunks = Vec::new();
    while rows.peek().is_some() {
        chunks.push(rows.by_ref().take(n).collect());
    }
    chunks
}

/// The queue and the slot its leaders take.
pub(crate) struct GroupCommit {
    queue: std::sync::Mutex<Vec<Job>>,
    /// SQLite: the store's write lock itself (one writer per process); PostgreSQL: a lock
    /// of the group alone (other writes run concurrently, as before).
    slot: Arc<Mutex<()>>,
    transactions: AtomicU64,
    writes: AtomicU64,
    alone: AtomicU64,
}

/// How the store's checkpoint and audit writes were grouped into transactions, since it was
/// opened ([`Store::write_stats`]): `writes / transactions` is the mean batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteStats {
    /// Transactions committed (or attempted) for these writes.
    pub transactions: u64,
    /// Writes: checkpoints put, and audit batches appended.
    pub writes: u64,
    /// Writes redone in a transaction of their own because another write of their batch
    /// failed (a version conflict, say).
    pub retried_alone: u64,
}

impl GroupCommit {
    pub(crate) fn new(slot: Arc<Mutex<()>>) -> Self {
        Self {
            queue: std::sync::Mutex::new(Vec::new()),
            slot,
            transactions: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            alone: AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            retried_alone: self.alone.load(Ordering::Relaxed),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        // Only pushes and drains happen under the lock: a poisoned queue is still whole.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_batch(&self) -> Vec<Job> {
        let mut queue = self.queue();
        let n = queue.len().min(MAX_BATCH);
        queue.drain(..n).collect()
    }
}

fn interrupted() -> WriteFailure {
    WriteFailure::Other(Error::storage(
        "the write was interrupted before it committed (its batch's task ended)",
    ))
}

impl Store {
    /// How checkpoint and audit writes were grouped into transactions so far: a writer
    /// that finds others queued commits all of them in one transaction.
    pub fn write_stats(&self) -> WriteStats {
        self.inner.group.stats()
    }

    /// Commits `work`, in a transaction it may share with other writers' work; returns once
    /// it is committed (or has failed).
    pub(crate) async fn commit_grouped(&self, work: Work) -> Outcome {
        let group = &self.inner.group;
        let (done, mut result) = oneshot::channel();
        group.queue().push(Job { work, done });
        loop {
            tokio::select! {
                biased;
                r = &mut result => return r.unwrap_or_else(|_| Err(interrupted())),
                slot = group.slot.clone().lock_owned() => {
                    let batch = group.take_batch();
                    if batch.is_empty() {
                        // An earlier leader took this work; its result is sent before that
                        // leader let the slot go, so the next turn returns it.
                        continue;
                    }
                    let store = self.clone();
                    // Its own task: the batch commits for everyone in it even if this
                    // caller goes away meanwhile.
                    let _ = tokio::spawn(async move { store.run_batch(slot, batch).await }).await;
                }
            }
        }
    }

    async fn run_batch(&self, slot: OwnedMutexGuard<()>, batch: Vec<Job>) {
        let batch: Vec<Job> = batch.into_iter().filter(|j| !j.done.is_closed()).collect();
        let group = &self.inner.group;
        group
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut wal = false;
        if batch.len() > 1 {
            group.transactions.fetch_add(1, Ordering::Relaxed);
            match self.together(&batch, &mut wal).await {
                Together::Committed(outcomes) => {
                    self.after_commit(wal).await;
                    for (job, outcome) in batch.into_iter().zip(outcomes) {
                        let _ = job.done.send(Ok(outcome));
                    }
                    return drop(slot);
                }
                // Nothing was written (the transaction never began) or its commit failed —
                // and a failed commit may have reached the database: redoing the batch could
                // write it twice. Every writer gets the error.
                Together::Failed(why) => {
                    for job in batch {
                        let _ = job
                            .done
                            .send(Err(WriteFailure::Other(Error::storage(why.clone()))));
                    }
                    return drop(slot);
                }
                Together::Refused => {
                    wal = false;
                    group.alone.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
            }
        }
        // Alone: one transaction each, so a failure is its writer's own.
        for job in batch {
            if job.done.is_closed() {
                continue;
            }
            group.transactions.fetch_add(1, Ordering::Relaxed);
            let outcome = self.alone(&job.work, &mut wal).await;
            self.after_commit(std::mem::take(&mut wal)).await;
            let _ = job.done.send(outcome);
        }
        drop(slot);
    }

    /// Every piece of work in one transaction.
    async fn together(&self, batch: &[Job], wal: &mut bool) -> Together {
        let txn = match self.begin_in_slot().await {
            Ok(txn) => txn,
            Err(e) => return Together::Failed(e.message().to_owned()),
        };
        let mut cache = BatchCache::default();
        let mut applied = Vec::with_capacity(batch.len());
        for job in batch {
            match self.apply(&txn, &job.work, &mut cache, wal).await {
                Ok(a) => applied.push(a),
                Err(_) => {
                    let _ = txn.rollback().await;
                    return Together::Refused;
                }
            }
        }
        if cache.insert_new_runs(&txn).await.is_err() {
            let _ = txn.rollback().await;
            return Together::Refused;
        }
        match txn.commit_linked().await {
            Ok(links) => Together::Committed(applied.into_iter().map(|a| a.done(&links)).collect()),
            Err(e) => Together::Failed(format!("cannot commit: {e}")),
        }
    }

    async fn alone(&self, work: &Work, wal: &mut bool) -> Outcome {
        let txn = self.begin_in_slot().await?;
        let mut cache = BatchCache::default();
        let applied = match self.apply(&txn, work, &mut cache, wal).await {
            Ok(a) => cache.insert_new_runs(&txn).await.map(|()| a),
            Err(e) => Err(e),
        };
        match applied {
            Ok(a) => match txn.commit_linked().await {
                Ok(links) => Ok(a.done(&links)),
                Err(e) => Err(write_err("cannot commit", e)),
            },
            Err(e) => {
                // Dropping an open transaction rolls it back; do it explicitly to free the
                // connection before the next piece of work.
                let _ = txn.rollback().await;
                *wal = false;
                Err(e)
            }
        }
    }

    /// Does `work` inside `txn`; `wal` is set when it dropped a run's history (see
    /// [`after_commit`](Self::after_commit)).
    async fn apply(
        &self,
        txn: &WriteTxn,
        work: &Work,
        cache: &mut BatchCache,
        wal: &mut bool,
    ) -> Result<Applied, WriteFailure> {
        match work {
            Work::Put { cp, expected } => {
                self.put_in(txn, cp, *expected, cache).await?;
                *wal |= cp.status.is_terminal() && cp.version > 1;
                Ok(Applied::Put)
            }
            Work::Audit(entries) => {
                let mut range = None::<std::ops::Range<usize>>;
                for entry in entries.iter() {
                    let i = queue_in(txn, entry);
                    range = Some(range.map_or(i..i + 1, |r| r.start..i + 1));
                }
                Ok(Applied::Audit(range.unwrap_or(0..0)))
            }
        }
    }

    async fn after_commit(&self, dropped_history: bool) {
        if dropped_history {
            self.forget_old_pages().await;
        }
    }
}
