//! Runs and approvals: list runs, show one with its timeline, record who decided what, and
//! resume on behalf of a principal.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use aegis_contracts::{Checkpoint, CheckpointStore, Principal, RunStatus};
//! use aegis_store::{RunQuery, Store};
//!
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! store.upsert_principal(&Principal::new("alice").with_team("pay")).await.unwrap();
//! let mut cp = Checkpoint::new("run-1", 1, "g", 1, serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(), None, RunStatus::Completed, None);
//! cp.principal = Some("alice".into());
//! store.put(&cp, None).await.unwrap();
//!
//! let approver = Principal::new("carol").with_team("pay").with_role("approver");
//! let page = store.list_runs(&approver, &RunQuery::new().status(RunStatus::Completed)).await.unwrap();
//! assert_eq!(page.runs[0].principal.as_deref(), Some("alice"));
//! let outsider = Principal::new("eve").with_team("ops").with_role("approver");
//! assert!(store.list_runs(&outsider, &RunQuery::new()).await.unwrap().runs.is_empty());
//! # });
//! ```
//!
//! # Visibility
//!
//! A [`Principal`] may see a run when
//!
//! 1. it started the run (`run.principal == principal.id`), or
//! 2. it holds the role [`ROLE_APPROVER`] or [`ROLE_ADMIN`] and belongs to the run's team
//!    in the run's organisation (the starter's team and org, looked up in
//!    `aegis_principals` when the run was first checkpointed), or
//! 3. it holds [`ROLE_ADMIN`] and the run has no principal (an anonymous run).
//!
//! It may decide on (and resume) a run only by 2 or 3 — and, with four eyes (the default,
//! [`StoreOptions::four_eyes`](crate::StoreOptions::four_eyes)), not a run it started:
//! [`Forbidden`](aegis_contracts::ErrorKind::Forbidden) with code `not_an_approver` or
//! `four_eyes`, nothing stored.
//!
//! Everything else is invisible: a run the principal may not see is reported exactly like a
//! run that does not exist ([`NotFound`](aegis_contracts::ErrorKind::NotFound), same
//! message), so ids of other teams' runs cannot be probed. Trusted host code (the CLI
//! running as operator) uses the unscoped [`Store::run`] / [`Store::list_all_runs`].
//!
//! # Deciding and resuming
//!
//! [`Store::resume`] (graphs) and [`Store::resume_pipeline`] (the lifecycle pipeline)
//! check visibility, record the decision ([`Store::decide`]) and then resume through
//! `aegis-core`, whose checkpoint claim lets exactly one concurrent resume through. A
//! decision is refused with a typed error and nothing stored when the run is unknown or
//! invisible (`NotFound`), not paused or already decided (`Conflict`), or the edit does not
//! fit the interrupt's schema (`InvalidRequest`). If the resume itself is refused before it
//! claims the run, the decision is withdrawn again (and the withdrawal audited).

use std::future::Future;

use aegis_contracts::{
    Approval, Checkpoint, CheckpointStore, Error, ErrorKind, Principal, RunStatus, State,
};
use aegis_core::{
    Exchange, Pipeline, PipelineOutcome,
    graph::{Graph, RunOutcome, check_schema},
};
use schemars::JsonSchema;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    Store,
    audit::{AuditEntry, AuditRecord, append_in, sha256_hex},
    checkpoint::{parse_status, status_str},
    conflict, db_err, entity, from_json, is_unique_violation, not_found, now_ms, to_json,
};

/// The role that may decide on the runs of its team.
pub const ROLE_APPROVER: &str = "approver";
/// The role that may decide on the runs of its team and on anonymous runs.
pub const ROLE_ADMIN: &str = "admin";

/// A run, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct RunRecord {
    /// The run.
    pub run_id: String,
    /// The graph's name.
    pub graph: String,
    /// Status.
    pub status: RunStatus,
    /// Who started it.
    pub principal: Option<String>,
    /// The starter's team when the run began.
    pub team: Option<String>,
    /// The starter's organisation when the run began.
    pub org: Option<String>,
    /// The latest checkpoint version.
    pub version: u64,
    /// The node to run next.
    pub next: Option<String>,
    /// The pending interrupt's id, when paused.
    pub interrupt_id: Option<String>,
    /// Unix ms of the first checkpoint.
    pub created_at_ms: u64,
    /// Unix ms of the latest checkpoint.
    pub updated_at_ms: u64,
    /// Input tokens of the ended run, when the provider reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens of the ended run, when the provider reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// What the ended run cost, in millionths of a US dollar (its usage at the
    /// pipeline's `[pricing]`), when its usage and model price are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd_micros: Option<u64>,
}

/// An interrupt a run paused on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct InterruptRecord {
    /// Its id.
    pub id: String,
    /// The run.
    pub run_id: String,
    /// The checkpoint version that paused.
    pub version: u64,
    /// The node that asked.
    pub node: String,
    /// Why.
    pub reason: String,
    /// Context for the approver.
    pub payload: Value,
    /// JSON Schema of an accepted edit (`null`: no edits).
    pub edit_schema: Value,
    /// Unix ms.
    pub created_at_ms: u64,
    /// When a decision was recorded through [`Store::decide`].
    pub decided_at_ms: Option<u64>,
    /// The checkpoint version that moved past it.
    pub resolved_version: Option<u64>,
}

/// A recorded human decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct DecisionRecord {
    /// Its id.
    pub id: String,
    /// The interrupt decided.
    pub interrupt_id: String,
    /// The run.
    pub run_id: String,
    /// `approve`, `reject` or `edit`.
    pub decision: String,
    /// A rejection's reason.
    pub reason: Option<String>,
    /// An edit's value.
    pub value: Option<Value>,
    /// Who decided (principal id).
    pub decided_by: String,
    /// Unix ms.
    pub at_ms: u64,
}

impl DecisionRecord {
    /// The decision as the graph engine takes it.
    pub fn approval(&self) -> Approval {
        match self.decision.as_str() {
            "approve" => Approval::Approve,
            "edit" => Approval::Edit {
                value: self.value.clone().unwrap_or(Value::Null),
            },
            _ => Approval::Reject {
                reason: self.reason.clone().unwrap_or_default(),
            },
        }
    }
}

/// One entry of a run's timeline, ordered by time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "entry", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TimelineEntry {
    /// A checkpoint was written.
    Checkpoint {
        /// Unix ms.
        at_ms: u64,
        /// Its version.
        version: u64,
        /// The status it recorded.
        status: RunStatus,
        /// The node to run next.
        next: Option<String>,
    },
    /// The run paused.
    Interrupt {
        /// Unix ms.
        at_ms: u64,
        /// The interrupt.
        id: String,
        /// The node that asked.
        node: String,
        /// Why.
        reason: String,
    },
    /// A human decided.
    Decision {
        /// Unix ms.
        at_ms: u64,
        /// `approve`, `reject` or `edit`.
        decision: String,
        /// Who.
        by: String,
    },
    /// An audit record about the run.
    Audit {
        /// Unix ms.
        at_ms: u64,
        /// Its seq.
        seq: u64,
        /// Its kind.
        kind: String,
    },
}

impl TimelineEntry {
    /// When it happened.
    pub fn at_ms(&self) -> u64 {
        match self {
            Self::Checkpoint { at_ms, .. }
            | Self::Interrupt { at_ms, .. }
            | Self::Decision { at_ms, .. }
            | Self::Audit { at_ms, .. } => *at_ms,
        }
    }
}

/// A run with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct RunDetail {
    /// The run.
    pub run: RunRecord,
    /// Its checkpoints, oldest first.
    pub checkpoints: Vec<Checkpoint>,
    /// Its interrupts, oldest first.
    pub interrupts: Vec<InterruptRecord>,
    /// Its decisions, oldest first.
    pub decisions: Vec<DecisionRecord>,
    /// Its audit records, in chain order.
    pub audit: Vec<AuditRecord>,
}

impl RunDetail {
    /// Checkpoints, interrupts, decisions and audit records merged by time (stable).
    pub fn timeline(&self) -> Vec<TimelineEntry> {
        let mut out: Vec<TimelineEntry> = Vec::new();
        out.extend(self.checkpoints.iter().map(|c| TimelineEntry::Checkpoint {
            at_ms: c.at_ms,
            version: c.version,
            status: c.status,
            next: c.next.clone(),
        }));
        out.extend(self.interrupts.iter().map(|i| TimelineEntry::Interrupt {
            at_ms: i.created_at_ms,
            id: i.id.clone(),
            node: i.node.clone(),
            reason: i.reason.clone(),
        }));
        out.extend(self.decisions.iter().map(|d| TimelineEntry::Decision {
            at_ms: d.at_ms,
            decision: d.decision.clone(),
            by: d.decided_by.clone(),
        }));
        out.extend(self.audit.iter().map(|a| TimelineEntry::Audit {
            at_ms: a.at_ms,
            seq: a.seq,
            kind: a.kind.clone(),
        }));
        out.sort_by_key(TimelineEntry::at_ms);
        out
    }
}

/// Filters and paging for [`Store::list_runs`]. Newest runs first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RunQuery {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs started by this principal id.
    pub principal: Option<String>,
    /// Only runs of this graph.
    pub graph: Option<String>,
    /// Page size: default 50, at most 500.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl RunQuery {
    /// Every run (the viewer may see), newest first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only runs with `status`.
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only runs started by `principal`.
    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// Only runs of `graph`.
    pub fn graph(mut self, graph: impl Into<String>) -> Self {
        self.graph = Some(graph.into());
        self
    }

    /// Page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue after a previous page.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

/// One page of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct RunPage {
    /// The runs, newest first.
    pub runs: Vec<RunRecord>,
    /// Pass to [`RunQuery::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Whether `viewer` may see `run` (the rule in the [module docs](self)).
pub fn can_see(viewer: &Principal, run: &RunRecord) -> bool {
    run.principal.as_deref() == Some(viewer.id.as_str()) || reviews(viewer, run)
}

/// Whether `viewer` reviews `run`: the approver or admin role in the run's team (of the
/// same organisation), or admin for an anonymous run. A reviewer sees what a paused run
/// holds for review.
pub fn reviews(viewer: &Principal, run: &RunRecord) -> bool {
    let privileged = viewer.has_role(ROLE_APPROVER) || viewer.has_role(ROLE_ADMIN);
    if privileged && viewer.team.is_some() && run.team == viewer.team && run.org == viewer.org {
        return true;
    }
    run.principal.is_none() && viewer.has_role(ROLE_ADMIN)
}

/// Whether `by` may decide on `run`: a reviewer of it ([`can_see`] is not enough — the
/// starter alone may not approve), and with `four_eyes` not its starter.
pub fn can_decide(by: &Principal, run: &RunRecord, four_eyes: bool) -> Result<(), Error> {
    if !reviews(by, run) {
        return Err(Error::new(
            ErrorKind::Forbidden,
            format!(
                "`{}` may not decide run `{}`: deciding needs the approver or admin role in the run's team",
                by.id, run.run_id
            ),
        )
        .with_code("not_an_approver")
        .with_run_id(run.run_id.clone()));
    }
    if four_eyes && run.principal.as_deref() == Some(by.id.as_str()) {
        return Err(Error::new(
            ErrorKind::Forbidden,
            format!(
                "`{}` started run `{}` and may not decide it (four eyes): another approver of the team decides",
                by.id, run.run_id
            ),
        )
        .with_code("four_eyes")
        .with_run_id(run.run_id.clone()));
    }
    Ok(())
}

fn visibility(viewer: &Principal) -> Condition {
    use entity::run::Column;
    let mut any = Condition::any().add(Column::Principal.eq(viewer.id.clone()));
    if (viewer.has_role(ROLE_APPROVER) || viewer.has_role(ROLE_ADMIN))
        && let Some(team) = &viewer.team
    {
        let org = match &viewer.org {
            Some(org) => Column::Org.eq(org.clone()),
            None => Column::Org.is_null(),
        };
        any = any.add(Condition::all().add(Column::Team.eq(team.clone())).add(org));
    }
    if viewer.has_role(ROLE_ADMIN) {
        any = any.add(Column::Principal.is_null());
    }
    any
}

fn to_run(m: entity::run::Model) -> Result<RunRecord, Error> {
    Ok(RunRecord {
        status: parse_status(&m.status)?,
        run_id: m.run_id,
        graph: m.graph,
        principal: m.principal,
        team: m.team,
        org: m.org,
        version: m.version.max(0) as u64,
        next: m.next,
        interrupt_id: m.interrupt_id,
        created_at_ms: m.created_at_ms.max(0) as u64,
        updated_at_ms: m.updated_at_ms.max(0) as u64,
        input_tokens: m.input_tokens.map(|v| v.max(0) as u64),
        output_tokens: m.output_tokens.map(|v| v.max(0) as u64),
        cost_usd_micros: m.cost_usd_micros.map(|v| v.max(0) as u64),
    })
}

fn to_interrupt(m: entity::interrupt::Model) -> Result<InterruptRecord, Error> {
    Ok(InterruptRecord {
        payload: from_json("interrupt payload", &m.payload)?,
        edit_schema: from_json("interrupt edit schema", &m.edit_schema)?,
        id: m.id,
        run_id: m.run_id,
        version: m.version.max(0) as u64,
        node: m.node,
        reason: m.reason,
        created_at_ms: m.created_at_ms.max(0) as u64,
        decided_at_ms: m.decided_at_ms.map(|t| t.max(0) as u64),
        resolved_version: m.resolved_version.map(|t| t.max(0) as u64),
    })
}

fn to_decision(m: entity::decision::Model) -> Result<DecisionRecord, Error> {
    Ok(DecisionRecord {
        value: m
            .value
            .as_deref()
            .map(|v| from_json("decision value", v))
            .transpose()?,
        id: m.id,
        interrupt_id: m.interrupt_id,
        run_id: m.run_id,
        decision: m.decision,
        reason: m.reason,
        decided_by: m.decided_by,
        at_ms: m.at_ms.max(0) as u64,
    })
}

/// Parses a decision payload (`{"decision": "approve"}`, `{"decision": "reject", "reason":
/// ...}`, `{"decision": "edit", "value": ...}`), as an API body would carry it. Anything
/// else is [`InvalidRequest`](ErrorKind::InvalidRequest).
pub fn parse_decision(payload: &Value) -> Result<Approval, Error> {
    serde_json::from_value(payload.clone()).map_err(|e| {
        Error::invalid_request(format!(
            "malformed decision (expected {{\"decision\": \"approve\" | \"reject\" | \"edit\", ...}}): {e}"
        ))
    })
}

fn no_run(run_id: &str) -> Error {
    not_found(format!("no run `{run_id}`")).with_run_id(run_id)
}

/// The cursors [`RunQuery::cursor`] accepts (empty: none), as a regular expression (for API
/// schemas).
pub const CURSOR_PATTERN: &str = r"^(-?[0-9]{1,18}:[\s\S]*)?(?![\s\S])";

fn parse_cursor(cursor: &str) -> Result<(i64, String), Error> {
    let bad = || Error::invalid_request(format!("invalid run cursor `{cursor}`"));
    let (at, id) = cursor.split_once(':').ok_or_else(bad)?;
    // `-?` and 1 to 18 digits ([`CURSOR_PATTERN`]): always an `i64`.
    let digits = at.strip_prefix('-').unwrap_or(at);
    if !(1..=18).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

impl Store {
    /// A run by id, unscoped (trusted host code; see [`authorize_run`](Self::authorize_run)
    /// for callers acting for a principal).
    pub async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, Error> {
        entity::run::Entity::find_by_id(run_id.to_owned())
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot read the run", e))?
            .map(to_run)
            .transpose()
    }

    /// The run, when `viewer` may see it; otherwise [`NotFound`](ErrorKind::NotFound),
    /// exactly as for an unknown id (existence is not leaked).
    pub async fn authorize_run(
        &self,
        viewer: &Principal,
        run_id: &str,
    ) -> Result<RunRecord, Error> {
        match self.run(run_id).await? {
            Some(run) if can_see(viewer, &run) => Ok(run),
            _ => Err(no_run(run_id)),
        }
    }

    /// The runs `viewer` may see, filtered and paged.
    pub async fn list_runs(&self, viewer: &Principal, query: &RunQuery) -> Result<RunPage, Error> {
        self.list_runs_where(Some(visibility(viewer)), query).await
    }

    /// Every run, filtered and paged, unscoped (trusted host code).
    pub async fn list_all_runs(&self, query: &RunQuery) -> Result<RunPage, Error> {
        self.list_runs_where(None, query).await
    }

    async fn list_runs_where(
        &self,
        scope: Option<Condition>,
        query: &RunQuery,
    ) -> Result<RunPage, Error> {
        use entity::run::Column;
        let limit = query.limit.unwrap_or(50);
        if limit == 0 || limit > 500 {
            return Err(Error::invalid_request("run page size must be 1..=500"));
        }
        let mut q = entity::run::Entity::find();
        if let Some(scope) = scope {
            q = q.filter(scope);
        }
        if let Some(s) = query.status {
            q = q.filter(Column::Status.eq(status_str(s)));
        }
        if let Some(p) = &query.principal {
            q = q.filter(Column::Principal.eq(p.clone()));
        }
        if let Some(g) = &query.graph {
            q = q.filter(Column::Graph.eq(g.clone()));
        }
        if let Some(c) = &query.cursor {
            let (at, id) = parse_cursor(c)?;
            q = q.filter(
                Condition::any().add(Column::CreatedAtMs.lt(at)).add(
                    Condition::all()
                        .add(Column::CreatedAtMs.eq(at))
                        .add(Column::RunId.lt(id)),
                ),
            );
        }
        let rows = q
            .order_by_desc(Column::CreatedAtMs)
            .order_by_desc(Column::RunId)
            .limit(u64::from(limit) + 1)
            .all(self.db())
            .await
            .map_err(|e| db_err("cannot list runs", e))?;
        let more = rows.len() > limit as usize;
        let runs: Vec<RunRecord> = rows
            .into_iter()
            .take(limit as usize)
            .map(to_run)
            .collect::<Result<_, _>>()?;
        let next_cursor = if more {
            runs.last()
                .map(|r| format!("{}:{}", r.created_at_ms, r.run_id))
        } else {
            None
        };
        Ok(RunPage { runs, next_cursor })
    }

    /// A run `viewer` may see, with its checkpoints, interrupts, decisions and audit records.
    pub async fn run_detail(&self, viewer: &Principal, run_id: &str) -> Result<RunDetail, Error> {
        let run = self.authorize_run(viewer, run_id).await?;
        self.detail_of(run).await
    }

    /// [`run_detail`](Self::run_detail), unscoped (trusted host code).
    pub async fn run_detail_unscoped(&self, run_id: &str) -> Result<RunDetail, Error> {
        let run = self.run(run_id).await?.ok_or_else(|| no_run(run_id))?;
        self.detail_of(run).await
    }

    async fn detail_of(&self, run: RunRecord) -> Result<RunDetail, Error> {
        let run_id = run.run_id.clone();
        let checkpoints = self.list(&run_id).await?;
        let interrupts = entity::interrupt::Entity::find()
            .filter(entity::interrupt::Column::RunId.eq(run_id.clone()))
            .order_by_asc(entity::interrupt::Column::Version)
            .all(self.db())
            .await
            .map_err(|e| db_err("cannot read interrupts", e))?
            .into_iter()
            .map(to_interrupt)
            .collect::<Result<_, _>>()?;
        let decisions = entity::decision::Entity::find()
            .filter(entity::decision::Column::RunId.eq(run_id.clone()))
            .order_by_asc(entity::decision::Column::AtMs)
            .all(self.db())
            .await
            .map_err(|e| db_err("cannot read decisions", e))?
            .into_iter()
            .map(to_decision)
            .collect::<Result<_, _>>()?;
        let audit = self.audit_records(Some(&run_id), 0, 10_000).await?;
        Ok(RunDetail {
            run,
            checkpoints,
            interrupts,
            decisions,
            audit,
        })
    }

    /// Records `by`'s decision on the pending interrupt of `run_id` (without resuming; see
    /// [`resume`](Self::resume)). Errors, each storing nothing: unknown or invisible run
    /// (`NotFound`); a run that is not paused or whose interrupt is already decided
    /// (`Conflict`); an edit on an interrupt that accepts none or that fails its schema
    /// (`InvalidRequest`).
    pub async fn decide(
        &self,
        by: &Principal,
        run_id: &str,
        decision: &Approval,
    ) -> Result<DecisionRecord, Error> {
        let run = self.authorize_run(by, run_id).await?;
        can_decide(by, &run, self.inner.four_eyes)?;
        if run.status != RunStatus::Paused {
            return Err(conflict(format!(
                "run `{run_id}` is {}, not paused; only a paused run can be decided",
                status_str(run.status)
            ))
            .with_run_id(run_id));
        }
        let interrupt_id = run.interrupt_id.clone().ok_or_else(|| {
            Error::storage(format!("run `{run_id}` is paused without an interrupt"))
        })?;
        let interrupt = entity::interrupt::Entity::find_by_id(interrupt_id.clone())
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot read the interrupt", e))?
            .map(to_interrupt)
            .transpose()?
            .ok_or_else(|| Error::storage(format!("interrupt `{interrupt_id}` is missing")))?;
        if interrupt.decided_at_ms.is_some() || interrupt.resolved_version.is_some() {
            return Err(already_decided(run_id));
        }
        let (reason, value) = match decision {
            Approval::Approve => (None, None),
            Approval::Reject { reason } => (Some(reason.clone()), None),
            Approval::Edit { value } => {
                if interrupt.edit_schema.is_null() {
                    return Err(Error::invalid_request(format!(
                        "the interrupt of run `{run_id}` accepts approve or reject, not edit"
                    )));
                }
                check_schema(&interrupt.edit_schema, value).map_err(|e| {
                    Error::invalid_request(format!(
                        "edit does not match the interrupt's schema: {e}"
                    ))
                })?;
                (None, Some(value.clone()))
            }
        };
        let now = now_ms();
        let record = DecisionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            interrupt_id: interrupt_id.clone(),
            run_id: run_id.to_owned(),
            decision: decision.name().to_owned(),
            reason,
            value,
            decided_by: by.id.clone(),
            at_ms: now as u64,
        };
        let txn = self.begin_write().await?;
        let result = async {
            // The gate: only one decision per interrupt, and none once the run moved on.
            let claimed = entity::interrupt::Entity::update_many()
                .col_expr(entity::interrupt::Column::DecidedAtMs, Expr::value(now))
                .filter(entity::interrupt::Column::Id.eq(interrupt_id.clone()))
                .filter(entity::interrupt::Column::DecidedAtMs.is_null())
                .filter(entity::interrupt::Column::ResolvedVersion.is_null())
                .exec(&*txn)
                .await
                .map_err(|e| db_err("cannot claim the interrupt", e))?;
            if claimed.rows_affected != 1 {
                return Err(already_decided(run_id));
            }
            entity::decision::Entity::insert(entity::decision::ActiveModel {
                id: Set(record.id.clone()),
                interrupt_id: Set(record.interrupt_id.clone()),
                run_id: Set(record.run_id.clone()),
                decision: Set(record.decision.clone()),
                reason: Set(record.reason.clone()),
                value: Set(record.value.as_ref().map(to_json).transpose()?),
                decided_by: Set(record.decided_by.clone()),
                at_ms: Set(now),
            })
            .exec_without_returning(&*txn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    already_decided(run_id)
                } else {
                    db_err("cannot record the decision", e)
                }
            })?;
            let mut data = json!({
                "decision_id": record.id,
                "interrupt_id": record.interrupt_id,
                "decision": record.decision,
                "reason": record.reason,
            });
            if let Some(v) = &record.value {
                data["value"] = if self.record_content() {
                    v.clone()
                } else {
                    json!({ "redacted": true, "sha256": sha256_hex(v) })
                };
            }
            let mut entry = AuditEntry::new("run.decision", data)
                .run(run_id)
                .actor(by.id.clone());
            entry.at_ms = Some(now as u64);
            append_in(&txn, &entry);
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                txn.commit()
                    .await
                    .map_err(|e| db_err("cannot commit the decision", e))?;
                Ok(record)
            }
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }

    /// Checks `by` may resume `run_id` on `graph`, records the decision and resumes the run
    /// through [`Graph::resume_by`] (which lets exactly one concurrent resume through). The
    /// graph's checkpointer must be this store.
    pub async fn resume<S: State>(
        &self,
        graph: &Graph<S>,
        by: &Principal,
        run_id: &str,
        decision: Approval,
    ) -> Result<RunOutcome<S>, Error> {
        self.resume_guarded(
            graph.name(),
            S::SCHEMA_VERSION,
            by,
            run_id,
            decision,
            |d, who| async move { graph.resume_by(run_id, d, Some(&who)).await },
        )
        .await
    }

    /// [`resume`](Self::resume) for the lifecycle [`Pipeline`] (whose checkpointer must be
    /// this store). An edited prompt or tool call passes the guard chain again.
    pub async fn resume_pipeline(
        &self,
        pipeline: &Pipeline,
        by: &Principal,
        run_id: &str,
        decision: Approval,
    ) -> Result<PipelineOutcome, Error> {
        self.resume_guarded(
            pipeline.graph().name(),
            Exchange::SCHEMA_VERSION,
            by,
            run_id,
            decision,
            |d, who| async move { pipeline.resume_by(run_id, d, Some(&who)).await },
        )
        .await
    }

    async fn resume_guarded<T, F, Fut>(
        &self,
        graph: &str,
        schema_version: u32,
        by: &Principal,
        run_id: &str,
        decision: Approval,
        go: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Approval, String) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let run = self.authorize_run(by, run_id).await?;
        if run.graph != graph {
            return Err(Error::invalid_request(format!(
                "run `{run_id}` belongs to graph `{}`, not `{graph}`",
                run.graph
            )));
        }
        if let Some(cp) = self.latest(run_id).await?
            && cp.schema_version > schema_version
        {
            return Err(Error::storage(format!(
                "run {run_id} was checkpointed with state schema v{}, this build understands up to v{schema_version}; upgrade Aegis to resume it",
                cp.schema_version
            )));
        }
        let record = self.decide(by, run_id, &decision).await?;
        match go(decision, by.id.clone()).await {
            Ok(out) => Ok(out),
            Err(e) => {
                if let Err(void) = self.withdraw_if_unclaimed(&record, &e).await {
                    tracing::error!(error = %void, run_id, "could not withdraw a decision");
                }
                Err(e)
            }
        }
    }

    /// After a failed resume: if the run never moved past the interrupt, the decision did
    /// not take effect — delete it (auditing the withdrawal) so it can be decided again.
    async fn withdraw_if_unclaimed(
        &self,
        record: &DecisionRecord,
        err: &Error,
    ) -> Result<(), Error> {
        let interrupt = entity::interrupt::Entity::find_by_id(record.interrupt_id.clone())
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot read the interrupt", e))?;
        // The claim resolves the interrupt in the same transaction, so an unresolved
        // interrupt means the resume never claimed the run, whatever the error says (a run
        // that failed after its claim — an upstream 400, an edit refused by the chain — keeps
        // its decision).
        let unresolved = interrupt.is_some_and(|i| i.resolved_version.is_none());
        if !unresolved {
            return Ok(());
        }
        let txn = self.begin_write().await?;
        let result = async {
            entity::decision::Entity::delete_by_id(record.id.clone())
                .exec(&*txn)
                .await
                .map_err(|e| db_err("cannot withdraw the decision", e))?;
            if unresolved {
                entity::interrupt::Entity::update_many()
                    .col_expr(
                        entity::interrupt::Column::DecidedAtMs,
                        Expr::value(Option::<i64>::None),
                    )
                    .filter(entity::interrupt::Column::Id.eq(record.interrupt_id.clone()))
                    .exec(&*txn)
                    .await
                    .map_err(|e| db_err("cannot reopen the interrupt", e))?;
            }
            append_in(
                &txn,
                &AuditEntry::new(
                    "run.decision_withdrawn",
                    json!({"decision_id": record.id, "interrupt_id": record.interrupt_id, "error": err.code(), "message": err.message()}),
                )
                .run(record.run_id.clone())
                .actor(record.decided_by.clone()),
            );
            Ok::<_, Error>(())
        }
        .await;
        match result {
            Ok(()) => txn
                .commit()
                .await
                .map_err(|e| db_err("cannot commit the withdrawal", e)),
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }

    /// How many runs there are per status (unscoped).
    pub async fn count_runs(&self, status: RunStatus) -> Result<u64, Error> {
        let n: Option<i64> = entity::run::Entity::find()
            .select_only()
            .column_as(entity::run::Column::RunId.count(), "n")
            .filter(entity::run::Column::Status.eq(status_str(status)))
            .into_tuple()
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot count runs", e))?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }
}

fn already_decided(run_id: &str) -> Error {
    conflict(format!(
        "the pending interrupt of run `{run_id}` is already decided"
    ))
    .with_run_id(run_id)
}
