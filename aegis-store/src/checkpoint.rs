//! `impl CheckpointStore for Store`: optimistic concurrency that holds across processes.
//!
//! A put runs in one write transaction: it reads the run's row, refuses a stale
//! `expected_version` ([`Conflict`](aegis_contracts::ErrorKind::Conflict)), then moves the
//! run row with a conditional update (`WHERE version = expected`) and inserts the checkpoint
//! under the primary key `(run_id, version)`. Whatever the isolation level, of two writers
//! of the same version the database lets exactly one commit; the other gets `Conflict`.

use aegis_contracts::{
    Checkpoint, CheckpointStore, Error, Interrupt, Principal, RunStatus, async_trait,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use serde_json::json;

use crate::{
    Store,
    audit::AuditEntry,
    conflict, db_err, entity, from_json,
    group::{BatchCache, Work, WriteFailure},
    is_unique_violation, now_ms, to_json,
};

pub(crate) fn status_str(s: RunStatus) -> &'static str {
    s.as_str()
}

pub(crate) fn parse_status(s: &str) -> Result<RunStatus, Error> {
    s.parse()
        .map_err(|_| Error::storage(format!("unknown stored run status `{s}`")))
}

pub(crate) fn to_checkpoint(m: entity::checkpoint::Model) -> Result<Checkpoint, Error> {
    let interrupt: Option<Interrupt> = match &m.interrupt {
        Some(s) => Some(from_json("interrupt", s)?),
        None => None,
    };
    let mut cp = Checkpoint::new(
        m.run_id,
        m.version as u64,
        m.graph,
        u32::try_from(m.schema_version).unwrap_or(u32::MAX),
        from_json("state", &m.state)?,
        m.next,
        parse_status(&m.status)?,
        interrupt,
    );
    cp.principal = m.principal;
    cp.at_ms = m.at_ms.max(0) as u64;
    Ok(cp)
}

pub(crate) fn write_err(context: &str, e: sea_orm::DbErr) -> WriteFailure {
    if is_unique_violation(&e) {
        WriteFailure::Conflict
    } else {
        WriteFailure::Other(db_err(context, e))
    }
}

impl Store {
    /// Writes `cp` inside `write` (see the module docs); `cache` holds the lookups its batch
    /// already made.
    pub(crate) async fn put_in(
        &self,
        write: &crate::WriteTxn,
        cp: &Checkpoint,
        expected: Option<u64>,
        cache: &mut BatchCache,
    ) -> Result<(), WriteFailure> {
        use entity::run;
        let txn: &DatabaseTransaction = write;
        // A plain new run has no row to read: if one exists after all, inserting it fails on
        // the primary key, which is the same conflict. One that would fail on something else
        // first (a version that does not follow, its interrupt's id) reads it, so an existing
        // run is still a conflict.
        let plain_new = expected.is_none() && cp.version == 1 && cp.interrupt.is_none();
        let prev = if plain_new {
            None
        } else {
            // This run's earlier rows may still wait in the batch.
            cache.insert_new_runs(write).await?;
            run::Entity::find_by_id(cp.run_id.clone())
                .one(txn)
                .await
                .map_err(|e| write_err("cannot read the run", e))?
        };
        let current = prev.as_ref().map(|r| r.version as u64);
        if current != expected {
            return Err(WriteFailure::Conflict);
        }
        if cp.version != expected.unwrap_or(0) + 1 {
            return Err(WriteFailure::Other(Error::internal(format!(
                "checkpoint version {} does not follow {}",
                cp.version,
                expected.unwrap_or(0)
            ))));
        }
        // A claim (paused → running) is committed durably like every other write: it
        // records the decision being carried out and its lease, which is what recovery
        // reads after a crash.
        let version = i64::try_from(cp.version)
            .map_err(|_| Error::invalid_request("checkpoint version out of range"))?;
        let now = now_ms();
        let at = if cp.at_ms == 0 { now } else { cp.at_ms as i64 };
        let status = status_str(cp.status);
        // A claimed interrupt (a resume carrying it out) is no longer pending.
        let pending = cp.interrupt.as_ref().filter(|i| i.claim.is_none());
        let interrupt_id = pending.map(|i| i.id.clone());
        // The run's owner: the checkpoint's principal, else (the lifecycle pipeline
        // authenticates inside the graph, after the run began) the authenticated principal
        // the state carries. Set once; a run never changes owner.
        let needs_owner = prev.as_ref().is_none_or(|r| r.principal.is_none());
        // An ended run's usage and cost go on its run row (the lifecycle's state records
        // them at the end), so runs can be listed and summed by cost.
        let ended = cp.status.is_terminal();
        // Read apart, so a state whose usage has another shape still names its owner.
        let state_principal: Option<Principal> = if needs_owner {
            serde_json::from_str::<Owner>(cp.state.get())
                .ok()
                .and_then(|o| o.principal)
        } else {
            None
        };
        let facts: StateFacts = if ended {
            serde_json::from_str(cp.state.get()).unwrap_or_default()
        } else {
            StateFacts::default()
        };
        let (input_tokens, output_tokens) =
            facts.usage.filter(|_| ended).map_or((None, None), |u| {
                (Some(big(u.input_tokens)), Some(big(u.output_tokens)))
            });
        let cost = facts.cost_usd_micros.filter(|_| ended).map(big);
        let owner = cp
            .principal
            .clone()
            .or_else(|| state_principal.as_ref().map(|p| p.id.clone()))
            .filter(|id| !id.is_empty());
        let (team, org) = match (&owner, needs_owner) {
            (Some(id), true) => {
                // The principal's row, read once per batch; without one, what this run's own
                // state says (never cached: another run may say something else).
                let row = match cache.principals.get(id) {
                    Some(row) => row.clone(),
                    None => {
                        let row = entity::principal::Entity::find_by_id(id.clone())
                            .one(txn)
                            .await
                            .map_err(|e| write_err("cannot read the principal", e))?
                            .map(|p| (p.team, p.org));
                        cache.principals.insert(id.clone(), row.clone());
                        row
                    }
                };
                row.unwrap_or_else(|| {
                    state_principal
                        .as_ref()
                        .filter(|p| &p.id == id)
                        .map(|p| (p.team.clone(), p.org.clone()))
                        .unwrap_or_default()
                })
            }
            _ => (None, None),
        };
        let checkpoint = entity::checkpoint::ActiveModel {
            run_id: Set(cp.run_id.clone()),
            version: Set(version),
            graph: Set(cp.graph.clone()),
            schema_version: Set(i64::from(cp.schema_version)),
            state: Set(to_json(&cp.state)?),
            next: Set(cp.next.clone()),
            status: Set(status.to_owned()),
            interrupt: Set(cp.interrupt.as_ref().map(to_json).transpose()?),
            principal: Set(cp.principal.clone()),
            at_ms: Set(at),
        };
        match &prev {
            None => {
                // A new run's rows wait for the batch's multi-row inserts.
                cache.new_runs.push(run::ActiveModel {
                    run_id: Set(cp.run_id.clone()),
                    graph: Set(cp.graph.clone()),
                    status: Set(status.to_owned()),
                    principal: Set(owner.clone()),
                    team: Set(team),
                    org: Set(org),
                    version: Set(version),
                    next: Set(cp.next.clone()),
                    interrupt_id: Set(interrupt_id.clone()),
                    created_at_ms: Set(at),
                    updated_at_ms: Set(at),
                    input_tokens: Set(input_tokens),
                    output_tokens: Set(output_tokens),
                    cost_usd_micros: Set(cost),
                });
                cache.checkpoints.push(checkpoint);
            }
            Some(_) => {
                let mut update = run::Entity::update_many()
                    .col_expr(run::Column::Version, Expr::value(version))
                    .col_expr(run::Column::Graph, Expr::value(cp.graph.clone()))
                    .col_expr(run::Column::Status, Expr::value(status))
                    .col_expr(run::Column::Next, Expr::value(cp.next.clone()))
                    .col_expr(run::Column::InterruptId, Expr::value(interrupt_id.clone()))
                    .col_expr(run::Column::UpdatedAtMs, Expr::value(at));
                if ended {
                    update = update
                        .col_expr(run::Column::InputTokens, Expr::value(input_tokens))
                        .col_expr(run::Column::OutputTokens, Expr::value(output_tokens))
                        .col_expr(run::Column::CostUsdMicros, Expr::value(cost));
                }
                if let (Some(p), true) = (&owner, needs_owner) {
                    update = update
                        .col_expr(run::Column::Principal, Expr::value(p.clone()))
                        .col_expr(run::Column::Team, Expr::value(team))
                        .col_expr(run::Column::Org, Expr::value(org));
                }
                let res = update
                    .filter(run::Column::RunId.eq(cp.run_id.clone()))
                    .filter(run::Column::Version.eq(version - 1))
                    .exec(txn)
                    .await
                    .map_err(|e| write_err("cannot update the run", e))?;
                if res.rows_affected != 1 {
                    return Err(WriteFailure::Conflict);
                }
                entity::checkpoint::Entity::insert(checkpoint)
                    .exec_without_returning(txn)
                    .await
                    .map_err(|e| write_err("cannot insert the checkpoint", e))?;
            }
        }
        // A terminal checkpoint supersedes the run's history (the contract of `put`).
        if cp.status.is_terminal() && version > 1 {
            use entity::checkpoint::Column;
            entity::checkpoint::Entity::update_many()
                .col_expr(Column::State, Expr::value("null"))
                .col_expr(Column::Interrupt, Expr::value(Option::<String>::None))
                .filter(Column::RunId.eq(cp.run_id.clone()))
                .filter(Column::Version.lt(version))
                .exec(txn)
                .await
                .map_err(|e| write_err("cannot drop the run's earlier states", e))?;
        }
        // A run that did not complete keeps no content, a reviewer's edit included (the
        // audit log keeps its SHA-256).
        if cp.status.is_terminal() && cp.status != RunStatus::Completed && prev.is_some() {
            use entity::decision::Column;
            entity::decision::Entity::update_many()
                .col_expr(Column::Value, Expr::value(Option::<String>::None))
                .filter(Column::RunId.eq(cp.run_id.clone()))
                .exec(txn)
                .await
                .map_err(|e| write_err("cannot drop the run's edits", e))?;
        }

        // The pending interrupt: resolved once a later checkpoint moves past it.
        let prev_interrupt = prev.as_ref().and_then(|r| r.interrupt_id.clone());
        if let Some(old) = &prev_interrupt
            && interrupt_id.as_ref() != Some(old)
        {
            entity::interrupt::Entity::update_many()
                .col_expr(
                    entity::interrupt::Column::ResolvedVersion,
                    Expr::value(version),
                )
                .col_expr(entity::interrupt::Column::ResolvedAtMs, Expr::value(at))
                .filter(entity::interrupt::Column::Id.eq(old.clone()))
                .filter(entity::interrupt::Column::ResolvedVersion.is_null())
                .exec(txn)
                .await
                .map_err(|e| write_err("cannot resolve the interrupt", e))?;
        }
        if let Some(i) = pending
            && prev_interrupt.as_ref() != Some(&i.id)
        {
            entity::interrupt::Entity::insert(entity::interrupt::ActiveModel {
                id: Set(i.id.clone()),
                run_id: Set(cp.run_id.clone()),
                version: Set(version),
                node: Set(i.node.clone()),
                reason: Set(i.request.reason.clone()),
                // The held subject lives only in the run's live checkpoint.
                payload: Set(to_json(&i.request.public_payload())?),
                edit_schema: Set(to_json(&i.request.edit_schema)?),
                created_at_ms: Set(at),
                decided_at_ms: Set(None),
                resolved_version: Set(None),
                resolved_at_ms: Set(None),
            })
            .exec_without_returning(txn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    WriteFailure::Other(Error::invalid_request(format!(
                        "interrupt id `{}` is already used",
                        i.id
                    )))
                } else {
                    WriteFailure::Other(db_err("cannot insert the interrupt", e))
                }
            })?;
        }

        // Run transitions are audited in the same transaction as the checkpoint.
        let prev_status = prev.as_ref().map(|r| r.status.as_str());
        if prev_status != Some(status) {
            let mut data = json!({
                "from": prev_status,
                "to": status,
                "version": cp.version,
                "graph": cp.graph,
                "next": cp.next,
            });
            if let Some(i) = &cp.interrupt {
                data["interrupt"] = json!({"id": i.id, "node": i.node, "reason": i.request.reason});
            }
            let mut entry = AuditEntry::new("run.transition", data).run(cp.run_id.clone());
            entry.at_ms = Some(at as u64);
            entry.actor = owner.clone();
            crate::audit::append_in(write, &entry);
        }
        Ok(())
    }

    async fn current_version(&self, run_id: &str) -> Option<u64> {
        entity::run::Entity::find_by_id(run_id.to_owned())
            .select_only()
            .column(entity::run::Column::Version)
            .into_tuple::<i64>()
            .one(self.db())
            .await
            .ok()
            .flatten()
            .map(|v| v as u64)
    }
}

impl Store {
    /// After a run's history was dropped: SQLite still has the old page images in its
    /// write-ahead log, so the log is checkpointed and truncated (the database file itself
    /// zeroes what was deleted: `secure_delete`). Best effort — with a reader in the middle
    /// of a transaction the log is truncated at the next such write instead.
    pub(crate) async fn forget_old_pages(&self) {
        if self.inner.db.get_database_backend() != sea_orm::DbBackend::Sqlite {
            return;
        }
        use sea_orm::ConnectionTrait;
        if let Err(e) = self
            .inner
            .db
            .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
        {
            tracing::debug!(error = %e, "truncating the SQLite write-ahead log was deferred");
        }
    }
}

#[async_trait]
impl CheckpointStore for Store {
    async fn put(&self, cp: &Checkpoint, expected_version: Option<u64>) -> Result<(), Error> {
        let work = Work::Put {
            cp: Box::new(cp.clone()),
            expected: expected_version,
        };
        match self.commit_grouped(work).await {
            Ok(_) => Ok(()),
            Err(WriteFailure::Other(e)) => Err(e),
            Err(WriteFailure::Conflict) => {
                let current = self.current_version(&cp.run_id).await;
                Err(conflict(format!(
                    "run {} is at version {}, not {}: another writer got there first",
                    cp.run_id,
                    current.unwrap_or(0),
                    expected_version.unwrap_or(0)
                ))
                .with_run_id(cp.run_id.clone()))
            }
        }
    }

    async fn latest(&self, run_id: &str) -> Result<Option<Checkpoint>, Error> {
        entity::checkpoint::Entity::find()
            .filter(entity::checkpoint::Column::RunId.eq(run_id))
            .order_by_desc(entity::checkpoint::Column::Version)
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot read checkpoints", e))?
            .map(to_checkpoint)
            .transpose()
    }

    async fn get(&self, run_id: &str, version: u64) -> Result<Option<Checkpoint>, Error> {
        let Ok(version) = i64::try_from(version) else {
            return Ok(None);
        };
        entity::checkpoint::Entity::find_by_id((run_id.to_owned(), version))
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot read checkpoints", e))?
            .map(to_checkpoint)
            .transpose()
    }

    async fn list(&self, run_id: &str) -> Result<Vec<Checkpoint>, Error> {
        entity::checkpoint::Entity::find()
            .filter(entity::checkpoint::Column::RunId.eq(run_id))
            .order_by_asc(entity::checkpoint::Column::Version)
            .all(self.db())
            .await
            .map_err(|e| db_err("cannot read checkpoints", e))?
            .into_iter()
            .map(to_checkpoint)
            .collect()
    }
}

/// What the store reads of a run's state: its owner, and once it has ended, its usage and
/// cost. Anything else in the state is opaque to the store.
#[derive(serde::Deserialize)]
struct Owner {
    #[serde(default)]
    principal: Option<Principal>,
}

/// See [`Owner`].
#[derive(Default, serde::Deserialize)]
struct StateFacts {
    #[serde(default)]
    usage: Option<aegis_contracts::Usage>,
    #[serde(default)]
    cost_usd_micros: Option<u64>,
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
