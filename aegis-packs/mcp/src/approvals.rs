//! Human approval of tool calls. A call a guard says needs a human decision is not executed:
//! it is recorded (who asked, which server and tool, the arguments, why) and refused with the
//! approval's id. Once a reviewer — not the caller — approves it, the caller sends the same
//! call again naming the approval (`_meta: {"aegis/approval": id}`), and it executes exactly
//! once: the approval is consumed atomically before the call goes out, so a retry, a second
//! replica or a replay never executes it again. A rejected call never executes.

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
    /// The guard that asked, and why.
    pub reason: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When it was asked, Unix ms.
    pub asked_at_ms: u64,
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
    /// Every approval still pending.
    async fn pending(&self) -> Result<Vec<ToolApproval>, Error>;
    /// Records a decision on a pending approval (a [`Conflict`](ErrorKind::Conflict) once
    /// decided).
    async fn decide(&self, id: &str, approve: bool, by: &str) -> Result<ToolApproval, Error>;
    /// Marks an approved call executed; `false` when it already was (or is not approved):
    /// exactly one caller wins, and only the winner executes the call.
    async fn consume(&self, id: &str) -> Result<bool, Error>;
}

/// Approvals in memory (embedding hosts, tests): lost with the process.
#[derive(Debug, Default)]
pub struct MemoryApprovals {
    all: Mutex<BTreeMap<String, ToolApproval>>,
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

    async fn pending(&self) -> Result<Vec<ToolApproval>, Error> {
        Ok(self
            .lock()
            .values()
            .filter(|a| a.state == ApprovalState::Pending)
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

/// Applies a decision to a pending approval: refused once decided, and refused to the
/// caller who asked (separation of duties).
pub fn decide(a: &mut ToolApproval, approve: bool, by: &str) -> Result<(), Error> {
    if a.state != ApprovalState::Pending {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!("approval `{}` is already {:?}", a.id, a.state).to_lowercase(),
        )
        .with_code("already_decided"));
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
