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
//!   failure belongs to the writer that caused it and to nobody else. A failed *commit* is
//!   not redone (it may have reached the database): every writer in it gets the error.
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
    audit::{AuditEntry, Link, append_in},
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

/// Where a transaction of [`Store::transact`] stopped.
enum Failed {
    /// It could not begin.
    Begin(Error),
    /// A piece of work failed; it was rolled back.
    Work(WriteFailure),
    /// Its commit failed (and may have reached the database).
    Commit(sea_orm::DbErr),
}

impl Failed {
    fn into_failure(self) -> WriteFailure {
        match self {
            Self::Begin(e) => WriteFailure::Other(e),
            Self::Work(f) => f,
            Self::Commit(e) => write_err("cannot commit", e),
        }
    }
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
        for chunk in crate::take_chunks(&mut self.new_runs, ROWS) {
            entity::run::Entity::insert_many(chunk)
                .exec_without_returning(txn)
                .await
                .map_err(|e| write_err("cannot insert the runs", e))?;
        }
        for chunk in crate::take_chunks(&mut self.checkpoints, ROWS) {
            entity::checkpoint::Entity::insert_many(chunk)
                .exec_without_returning(txn)
                .await
                .map_err(|e| write_err("cannot insert the checkpoints", e))?;
        }
        Ok(())
    }
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

/// Gives every writer in `batch` the storage error `why`, then lets the slot go.
fn fail_all(batch: Vec<Job>, why: &str, slot: OwnedMutexGuard<()>) {
    for job in batch {
        let _ = job
            .done
            .send(Err(WriteFailure::Other(Error::storage(why.to_owned()))));
    }
    drop(slot);
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
        if batch.len() > 1 {
            group.transactions.fetch_add(1, Ordering::Relaxed);
            match self.transact(batch.iter().map(|j| &j.work)).await {
                Ok(outcomes) => {
                    self.after_commit(batch.iter().map(|j| &j.work)).await;
                    for (job, outcome) in batch.into_iter().zip(outcomes) {
                        let _ = job.done.send(Ok(outcome));
                    }
                    return drop(slot);
                }
                // A piece of work failed: rolled back, each is redone alone below.
                Err(Failed::Work(_)) => {
                    group.alone.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                // Nothing was written (the transaction never began) or its commit failed —
                // and a failed commit may have reached the database: redoing the batch could
                // write it twice. Every writer gets the error.
                Err(Failed::Begin(e)) => return fail_all(batch, e.message(), slot),
                Err(Failed::Commit(e)) => {
                    return fail_all(batch, &format!("cannot commit: {e}"), slot);
                }
            }
        }
        // Alone: one transaction each, so a failure is its writer's own.
        for job in batch {
            if job.done.is_closed() {
                continue;
            }
            group.transactions.fetch_add(1, Ordering::Relaxed);
            let outcome = self.transact(std::iter::once(&job.work)).await;
            let outcome = match outcome {
                Ok(mut done) => {
                    self.after_commit(std::iter::once(&job.work)).await;
                    done.pop().ok_or_else(|| {
                        WriteFailure::Other(Error::internal("a write produced nothing"))
                    })
                }
                Err(failed) => Err(failed.into_failure()),
            };
            let _ = job.done.send(outcome);
        }
        drop(slot);
    }

    /// `works` in one transaction, in order; nothing is committed unless all of them are.
    async fn transact<'w>(
        &self,
        works: impl Iterator<Item = &'w Work>,
    ) -> Result<Vec<Done>, Failed> {
        let txn = self.begin_in_slot().await.map_err(Failed::Begin)?;
        let applied = match self.apply_all(&txn, works).await {
            Ok(applied) => applied,
            Err(e) => {
                // Dropping an open transaction rolls it back; do it explicitly to free the
                // connection before the next piece of work.
                let _ = txn.rollback().await;
                return Err(Failed::Work(e));
            }
        };
        let links = txn.commit_linked().await.map_err(Failed::Commit)?;
        Ok(applied.into_iter().map(|a| a.done(&links)).collect())
    }

    /// Does every piece of `works` inside `txn`, then inserts the new runs' rows.
    async fn apply_all<'w>(
        &self,
        txn: &WriteTxn,
        works: impl Iterator<Item = &'w Work>,
    ) -> Result<Vec<Applied>, WriteFailure> {
        let mut cache = BatchCache::default();
        let mut applied = Vec::new();
        for work in works {
            applied.push(self.apply(txn, work, &mut cache).await?);
        }
        cache.insert_new_runs(txn).await?;
        Ok(applied)
    }

    /// Does `work` inside `txn`.
    async fn apply(
        &self,
        txn: &WriteTxn,
        work: &Work,
        cache: &mut BatchCache,
    ) -> Result<Applied, WriteFailure> {
        match work {
            Work::Put { cp, expected } => {
                self.put_in(txn, cp, *expected, cache).await?;
                Ok(Applied::Put)
            }
            Work::Audit(entries) => {
                let mut range = 0..0;
                for (n, entry) in entries.iter().enumerate() {
                    let i = append_in(txn, entry);
                    if n == 0 {
                        range.start = i;
                    }
                    range.end = i + 1;
                }
                Ok(Applied::Audit(range))
            }
        }
    }

    /// After `works` committed: a run's dropped history leaves SQLite's log at once.
    async fn after_commit<'w>(&self, mut works: impl Iterator<Item = &'w Work>) {
        let drops_history = |w: &Work| matches!(w, Work::Put { cp, .. } if cp.status.is_terminal() && cp.version > 1);
        if works.any(drops_history) {
            self.forget_old_pages().await;
        }
    }
}
