//! Human approval of tool calls. A call a guard says needs a human decision is not executed:
//! it is recorded (who asked, which server and tool, the arguments, why) and refused with the
//! approval's id; asking again before the decision names the same approval. Once a reviewer
//! — not the caller — approves it, the same caller sending the same call again (naming the
//! approval with `_meta: {"aegis/approval": id}`, or not: a chat sent again makes the same
//! call) executes it at most once: the approval is consumed atomically before the call goes
//! out, so a retry, a second replica or a replay never executes it again. A rejected call
//! never executes; an approval not used within its server's `approval_ttl_secs` lapses.

use std::{collections::BTreeMap, sync::Mutex};

use aegis_contracts::{Error, ErrorKind};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `_meta` key (and run label) that names the approval a repeated call claims.
pub const APPROVAL_META: &str = "aegis/approval";

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a reviewer.
    Pending,
    /// Approved; not executed yet.
    Approved,
    /// Rejected: it never executes.
    Rejected,
    /// Approved and executed (once).
    Executed,
}

/// One tool call waiting for, or past, a human decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolApproval {
    /// Its id (quoted back by the caller).
    pub id: String,
    /// Who made the call.
    pub requester: Option<String>,
    /// The server.
    pub server: String,
    /// The tool, as exported (`files__delete`).
    pub tool: String,
    /// The arguments, for the reviewer.
    pub arguments: Value,
    /// The SHA-256 of the canonical arguments: the repeated call must carry the same ones.
    pub arguments_hash: String,
    /// The guards that asked, and why.
    pub reason: String,
    /// The guards whose approval this is: the repeated call executes only if no other
    /// guard asks for one.
    #[serde(default)]
    pub guards: Vec<String>,
    /// Where it stands.
    pub state: ApprovalState,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When it was asked, Unix ms.
    pub asked_at_ms: u64,
    /// When it lapses, Unix ms: a pending approval can no longer be decided, an approved
    /// one no longer executes (the call must be asked for again).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

impl ToolApproval {
    /// Whether it has lapsed at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }

    /// Whether it waits for a decision at `now_ms`.
    pub fn is_pending(&self, now_ms: u64) -> bool {
        self.state == ApprovalState::Pending && !self.expired(now_ms)
    }

    /// Whether it is pending or approved-not-executed at `now_ms`.
    pub fn is_open(&self, now_ms: u64) -> bool {
        matches!(self.state, ApprovalState::Pending | ApprovalState::Approved)
            && !self.expired(now_ms)
    }
}

/// The hash of a call's arguments, as [`ToolApproval::arguments_hash`] holds it.
pub fn arguments_hash(arguments: &Value) -> String {
    let digest = Sha256::digest(arguments.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where approvals live (the gateway: its database, shared by replicas).
#[async_trait]
pub trait ApprovalStore: Send + Sync + 'static {
    /// Records a new pending approval.
    async fn create(&self, approval: &ToolApproval) -> Result<(), Error>;
    /// The approval `id`.
    async fn get(&self, id: &str) -> Result<Option<ToolApproval>, Error>;
    /// Every approval still open at `now_ms`: pending or approved, not executed, not
    /// lapsed.
    async fn open(&self, now_ms: u64) -> Result<Vec<ToolApproval>, Error>;
    /// Every approval waiting for a reviewer at `now_ms`, oldest first.
    async fn pending(&self, now_ms: u64) -> Result<Vec<ToolApproval>, Error> {
        let mut out: Vec<ToolApproval> = self
            .open(now_ms)
            .await?
            .into_iter()
            .filter(|a| a.is_pending(now_ms))
            .collect();
        out.sort_by_key(|a| a.asked_at_ms);
        Ok(out)
    }
    /// Records a decision on a pending approval (a [`Conflict`](ErrorKind::Conflict) once
    /// decided).
    async fn decide(&self, id: &str, approve: bool, by: &str) -> Result<ToolApproval, Error>;
    /// Keeps `state` with the approval `id`: what a chat held on it needs to go on. One
    /// chat is held per approval: while one is, another is refused
    /// ([`Conflict`](ErrorKind::Conflict)) rather than written over it.
    async fn hold(&self, id: &str, state: &Value) -> Result<(), Error>;
    /// Takes the state kept with the approval `id`, if any (a held chat resumes once).
    async fn take_held(&self, id: &str) -> Result<Option<Value>, Error>;
    /// Marks an approved call executed; `false` when it already was (or is not approved):
    /// exactly one caller wins, and only the winner executes the call.
    async fn consume(&self, id: &str) -> Result<bool, Error>;
}

/// Approvals in memory (embedding hosts, tests): lost with the process.
#[derive(Debug, Default)]
pub struct MemoryApprovals {
    all: Mutex<BTreeMap<String, ToolApproval>>,
    held: Mutex<BTreeMap<String, Value>>,
}

#[async_trait]
impl ApprovalStore for MemoryApprovals {
    async fn create(&self, approval: &ToolApproval) -> Result<(), Error> {
        self.lock().insert(approval.id.clone(), approval.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<ToolApproval>, Error> {
        Ok(self.lock().get(id).cloned())
    }

    async fn open(&self, now_ms: u64) -> Result<Vec<ToolApproval>, Error> {
        Ok(self
            .lock()
            .values()
            .filter(|a| a.is_open(now_ms))
            .cloned()
            .collect())
    }

    async fn decide(&self, id: &str, approve: bool, by: &str) -> Result<ToolApproval, Error> {
        let mut all = self.lock();
        let Some(a) = all.get_mut(id) else {
            return Err(unknown(id));
        };
        decide(a, approve, by)?;
        Ok(a.clone())
    }

    async fn hold(&self, id: &str, state: &Value) -> Result<(), Error> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.contains_key(id) {
            return Err(held_already(id));
        }
        held.insert(id.to_owned(), state.clone());
        Ok(())
    }

    async fn take_held(&self, id: &str) -> Result<Option<Value>, Error> {
        Ok(self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id))
    }

    async fn consume(&self, id: &str) -> Result<bool, Error> {
        let mut all = self.lock();
        match all.get_mut(id) {
            Some(a) if a.state == ApprovalState::Approved => {
                a.state = ApprovalState::Executed;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl MemoryApprovals {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ToolApproval>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Applies a decision to a pending approval: refused once decided or lapsed, and refused
/// to the caller who asked (separation of duties).
pub fn decide(a: &mut ToolApproval, approve: bool, by: &str) -> Result<(), Error> {
    if a.state != ApprovalState::Pending {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!("approval `{}` is already {:?}", a.id, a.state).to_lowercase(),
        )
        .with_code("already_decided"));
    }
    if a.expired(crate::pins::now_ms()) {
        return Err(expired(&a.id));
    }
    if a.requester.as_deref() == Some(by) {
        return Err(Error::new(
            ErrorKind::Forbidden,
            "the caller who asked for a tool call cannot approve or reject it",
        )
        .with_code("own_approval"));
    }
    a.state = match approve {
        true => ApprovalState::Approved,
        false => ApprovalState::Rejected,
    };
    a.decided_by = Some(by.to_owned());
    Ok(())
}

/// The error for an approval id nobody issued.
pub fn unknown(id: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no tool-call approval `{id}`"))
        .with_code("unknown_approval")
}

/// The error for an approval that lapsed before it was decided or used.
pub fn expired(id: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("approval `{id}` has expired: send the call again to ask for a new one"),
    )
    .with_code("approval_expired")
}

/// The error for a second chat held on an approval another chat is held on.
pub fn held_already(id: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("another chat is already held on approval `{id}`"),
    )
    .with_code("already_held")
}
