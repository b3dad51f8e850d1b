//! Retention: runs that ended long enough ago are deleted with everything they left —
//! checkpoints, interrupts, decisions. The audit log keeps its entries (its hash chain is
//! the record that the runs existed) and gains one `runs.purged` entry per purge.

use aegis_contracts::{Error, RunStatus};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::json;

use crate::{Store, audit::AuditEntry, db_err, entity};

/// How many runs one purge transaction deletes (a long purge never holds a write lock for
/// long).
const PURGE_BATCH: u64 = 500;

impl Store {
    /// Deletes every run that ended (completed, blocked, rejected, failed, cancelled) before
    /// `before_ms` (Unix milliseconds of its last change), with its checkpoints,
    /// interrupts and decisions; returns how many. Running and paused runs are kept whatever
    /// their age. Each batch is one transaction and one `runs.purged` audit entry by `actor`.
    pub async fn purge_runs(&self, before_ms: u64, actor: &str) -> Result<u64, Error> {
        let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
        let ended: Vec<&str> = [
            RunStatus::Completed,
            RunStatus::Blocked,
            RunStatus::Rejected,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        let mut total = 0u64;
        loop {
            let txn = self.begin_write().await?;
            let ids: Vec<String> = entity::run::Entity::find()
                .select_only()
                .column(entity::run::Column::RunId)
                .filter(entity::run::Column::Status.is_in(ended.clone()))
                .filter(entity::run::Column::UpdatedAtMs.lt(before))
                .limit(PURGE_BATCH)
                .into_tuple::<String>()
                .all(&*txn)
                .await
                .map_err(|e| db_err("cannot list the runs to purge", e))?;
            if ids.is_empty() {
                let _ = txn.rollback().await;
                return Ok(total);
            }
            entity::decision::Entity::delete_many()
                .filter(entity::decision::Column::RunId.is_in(ids.clone()))
                .exec(&*txn)
                .await
                .map_err(|e| db_err("cannot purge decisions", e))?;
            entity::interrupt::Entity::delete_many()
                .filter(entity::interrupt::Column::RunId.is_in(ids.clone()))
                .exec(&*txn)
                .await
                .map_err(|e| db_err("cannot purge interrupts", e))?;
            entity::checkpoint::Entity::delete_many()
                .filter(entity::checkpoint::Column::RunId.is_in(ids.clone()))
                .exec(&*txn)
                .await
                .map_err(|e| db_err("cannot purge checkpoints", e))?;
            let deleted = entity::run::Entity::delete_many()
                .filter(entity::run::Column::RunId.is_in(ids.clone()))
                .exec(&*txn)
                .await
                .map_err(|e| db_err("cannot purge runs", e))?
                .rows_affected;
            let mut entry = AuditEntry::new(
                "runs.purged",
                json!({ "count": deleted, "before_ms": before_ms }),
            );
            entry.actor = Some(actor.to_owned());
            crate::audit::append_in(&txn, &entry);
            txn.commit()
                .await
                .map_err(|e| db_err("cannot commit the purge", e))?;
            total += deleted;
            if (ids.len() as u64) < PURGE_BATCH {
                return Ok(total);
            }
        }
    }
}
