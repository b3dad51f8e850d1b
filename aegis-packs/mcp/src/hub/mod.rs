//! [`McpHub`]: the governed merge of every configured MCP server's tools.
//!
//! One routing rule serves listing and calling alike, so what a caller cannot see it cannot
//! call: a name resolves to one server's tool, that server must serve its pinned catalog,
//! the tool must be in it, and the caller's access rule must allow it — checked on every
//! `tools/call`, not only when filtering `tools/list`.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use aegis_contracts::{
    Error, ErrorKind, GuardSubject, Principal, RequestContext, ToolCall, ToolSpec,
};
use aegis_core::guard::{ChainDecision, GuardChain, approval_error, blocked_error};
use rmcp::model::{CallToolResult, JsonObject, Tool};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

mod resources;

use crate::{
    Catalog, CatalogDiff, PinRecord, PinStore, Pinning, ResolvedServer, Upstream,
    approvals::{
        APPROVAL_META, ApprovalState, ApprovalStore, MemoryApprovals, ToolApproval, arguments_hash,
        unknown,
    },
    config::PREFIX_SEPARATOR,
    schema,
    upstream::{UPSTREAM_CODE, UPSTREAM_ERROR, UPSTREAM_MESSAGE},
};

/// How long a server's catalog (and its pin state) is trusted before it is listed again:
/// a catalog change, or an approval made on another replica, takes effect within this.
pub const CATALOG_TTL: Duration = Duration::from_secs(30);
/// How long a server that could not be listed is left alone before it is tried again.
const DOWN_RETRY: Duration = Duration::from_secs(5);

/// What became of one tool call (or resource read, or prompt get), for the audit log (never
/// the arguments or the result).
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallRecord {
    /// The server's id.
    pub server: String,
    /// The tool's name on the server (a resource's URI, a prompt's name).
    pub tool: String,
    /// Who called it.
    pub principal: Option<String>,
    /// The run it was made for (a chat's model step), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// `executed`, `awaiting_approval` (recorded for a reviewer, not executed), `blocked`
    /// (a guard refused the call), `result_blocked` (it executed;
    /// a guard withheld the result), `refused` (unknown, not allowed, quarantined) or
    /// `failed` (the server failed, timed out, or answered out of bounds).
    pub outcome: &'static str,
    /// The error code, when it did not execute cleanly.
    pub code: Option<String>,
    /// How long it took, in ms.
    pub duration_ms: u64,
}

/// Receives a [`ToolCallRecord`] for every call, however it ended (the gateway writes them
/// to the audit log).
pub trait ToolObserver: Send + Sync + 'static {
    /// One call ended.
    fn on_call(&self, record: ToolCallRecord);
}

/// The state of one server, as the last listing left it.
#[derive(Debug, Clone)]
enum View {
    /// Serving its pinned catalog.
    Served(Arc<Catalog>),
    /// Serving a catalog nobody approved (changed, new under `approve_first`, or flagged by
    /// a guard): none of its tools is listed or callable.
    Quarantined { reason: String, record: PinRecord },
    /// Could not be listed.
    Down(String),
}

struct Slot {
    upstream: Upstream,
    view: Mutex<Option<(Instant, View)>>,
    /// Catalog hashes whose descriptions were judged, with the refusal if any.
    judged: Mutex<HashMap<String, Option<String>>>,
}

/// One server's state, for `aegis mcp pins list` and the admin endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    /// The server's id.
    pub server: String,
    /// `served`, `quarantined` or `down`.
    pub state: &'static str,
    /// Why it is not served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many tools it serves.
    pub tools: usize,
    /// Its pin record, once listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinRecord>,
    /// What changed from the pinned catalog to the served one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<CatalogDiff>,
}

/// The merged tool list a caller may see, and the servers left out of it.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The tools, under their exported names.
    pub tools: Vec<Tool>,
    /// Servers whose tools are missing and why (down, quarantined), and tools skipped
    /// because another server exports the same name.
    pub problems: Vec<String>,
}

/// Every configured MCP server's tools, governed. Cheap to clone.
#[derive(Clone)]
pub struct McpHub {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Vec<Slot>,
    chain: GuardChain,
    pins: Arc<dyn PinStore>,
    observer: Option<Arc<dyn ToolObserver>>,
    reserved: Vec<String>,
    approvals: Arc<dyn ApprovalStore>,
    /// Held while a caller's pending approvals are counted and a new one recorded, so
    /// concurrent calls cannot all pass the cap (on this replica).
    asking: Mutex<()>,
}

impl std::fmt::Debug for McpHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHub")
            .field(
                "servers",
                &self
                    .inner
                    .slots
                    .iter()
                    .map(|s| &s.upstream.config().id)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl McpHub {
    /// The hub of `servers` (in config order), judging with `chain`, pinning in `pins`,
    /// keeping approvals of tool calls in memory.
    pub fn new(servers: Vec<ResolvedServer>, chain: GuardChain, pins: Arc<dyn PinStore>) -> Self {
        Self::with(
            servers,
            chain,
            pins,
            None,
            Vec::new(),
            Arc::new(MemoryApprovals::default()),
        )
    }

    /// [`new`](Self::new) with an observer of every call, names of the host's own tools no
    /// upstream tool may be exported under, and where approvals of tool calls live.
    pub fn with(
        servers: Vec<ResolvedServer>,
        chain: GuardChain,
        pins: Arc<dyn PinStore>,
        observer: Option<Arc<dyn ToolObserver>>,
        reserved: Vec<String>,
        approvals: Arc<dyn ApprovalStore>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                slots: servers
                    .into_iter()
                    .map(|s| Slot {
                        upstream: Upstream::new(s),
                        view: Mutex::new(None),
                        judged: Mutex::new(HashMap::new()),
                    })
                    .collect(),
                chain,
                pins,
                observer,
                reserved,
                approvals,
                asking: Mutex::new(()),
            }),
        }
    }

    /// Whether no server is configured.
    pub fn is_empty(&self) -> bool {
        self.inner.slots.is_empty()
    }

    /// The server `prefix__tool` names, or the first unprefixed server serving `name`.
    async fn route(&self, name: &str) -> Option<(usize, String)> {
        if self.inner.reserved.iter().any(|r| r == name) {
            return None;
        }
        if let Some(routed) = self.route_prefixed(name) {
            return Some(routed);
        }
        let unprefixed: Vec<usize> = (0..self.inner.slots.len())
            .filter(|&i| self.inner.slots[i].upstream.config().prefix().is_empty())
            .collect();
        let views = futures_util::future::join_all(unprefixed.iter().map(|&i| self.view(i))).await;
        unprefixed
            .into_iter()
            .zip(views)
            .find(|(_, view)| matches!(view, View::Served(c) if c.get(name).is_some()))
            .map(|(i, _)| (i, name.to_owned()))
    }

    /// The server whose prefix `name` starts with (`prefix__rest`), and the rest.
    fn route_prefixed(&self, name: &str) -> Option<(usize, String)> {
        let (prefix, rest) = name.split_once(PREFIX_SEPARATOR)?;
        let i = self
            .inner
            .slots
            .iter()
            .position(|s| !prefix.is_empty() && s.upstream.config().prefix() == prefix)?;
        Some((i, rest.to_owned()))
    }

    /// Every server's state, those that are stale listed again concurrently: a server that
    /// hangs costs one timeout, not one per server behind it.
    async fn views(&self) -> Vec<View> {
        futures_util::future::join_all((0..self.inner.slots.len()).map(|i| self.view(i))).await
    }

    /// Server `i`'s state, listed again when stale.
    async fn view(&self, i: usize) -> View {
        let slot = &self.inner.slots[i];
        let mut state = slot.view.lock().await;
        if let Some((at, view)) = state.as_ref() {
            let ttl = match view {
                View::Down(_) => DOWN_RETRY,
                _ => CATALOG_TTL,
            };
            if at.elapsed() < ttl {
                return view.clone();
            }
        }
        let view = self.list_server(slot).await;
        if let View::Down(e) = &view {
            tracing::warn!(server = %slot.upstream.config().id, error = %e, "MCP server unavailable; its tools are left out");
        }
        *state = Some((Instant::now(), view.clone()));
        view
    }

    async fn list_server(&self, slot: &Slot) -> View {
        let config = slot.upstream.config();
        let catalog = match slot.upstream.list_tools().await {
            Ok(tools) => Catalog::new(tools),
            Err(e) => return View::Down(e.message().to_owned()),
        };
        let hash = catalog.hash();
        let refusal = self.judge_catalog(slot, &catalog, &hash).await;
        let record = match self
            .inner
            .pins
            .observe(
                &config.id,
                &hash,
                &catalog.canonical_json(),
                config.pinning == Pinning::TrustFirst && refusal.is_none(),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => return View::Down(format!("cannot read its pin: {}", e.message())),
        };
        // Served only if what *this* listing saw is the pinned catalog: the record's "seen"
        // may have been written meanwhile by another replica that saw something else.
        // A catalog the guards refuse is served only if an admin approved it as it is: a
        // pin made on sight (`trust_first`) does not outlive guards that now refuse it.
        let approved_by_admin = record
            .approved_by
            .as_deref()
            .is_some_and(|by| by != crate::pins::TRUST_FIRST);
        if record.pinned_hash.as_deref() == Some(hash.as_str())
            && (refusal.is_none() || approved_by_admin)
        {
            return View::Served(Arc::new(catalog));
        }
        let mut reason = match &record.pinned_catalog {
            None => "its catalog awaits a first approval".to_owned(),
            Some(pinned) => {
                let diff = Catalog::from_json(pinned)
                    .map(|old| catalog.diff(&old).to_string())
                    .unwrap_or_default();
                format!(
                    "its catalog changed since it was approved ({})",
                    diff.trim().replace('\n', ", ")
                )
            }
        };
        if let Some(r) = &refusal {
            reason.push_str(&format!("; its tool descriptions were refused: {r}"));
        }
        tracing::warn!(server = %config.id, %reason, hash = %hash, "MCP server quarantined");
        View::Quarantined { reason, record }
    }

    /// Judges every description of a catalog not judged before (tool poisoning); the first
    /// refusal, if any.
    async fn judge_catalog(&self, slot: &Slot, catalog: &Catalog, hash: &str) -> Option<String> {
        if let Some(done) = slot.judged.lock().await.get(hash) {
            return done.clone();
        }
        let ctx = RequestContext::default()
            .with_label("aegis.mcp.server", slot.upstream.config().id.clone());
        let mut refusal = None;
        for tool in catalog.tools() {
            let spec = ToolSpec::function(
                tool.name.to_string(),
                definition_text(tool),
                Value::Object((*tool.input_schema).clone()),
            );
            let out = self
                .inner
                .chain
                .check(GuardSubject::ToolDefinition { tool: spec }, &ctx, &[])
                .await;
            match out.decision {
                ChainDecision::Allowed => {}
                ChainDecision::Blocked(v) => {
                    refusal = Some(format!("`{}`: {}", tool.name, blocked_error(&v).message()));
                    break;
                }
                ChainDecision::NeedsApproval(v) => {
                    refusal = Some(format!("`{}`: {}", tool.name, approval_error(&v).message()));
                    break;
                }
            }
        }
        slot.judged
            .lock()
            .await
            .insert(hash.to_owned(), refusal.clone());
        refusal
    }

    /// The tools `principal` may see, from every server serving its pinned catalog. A
    /// server that is down or quarantined leaves only its own tools out.
    pub async fn list_tools(&self, principal: Option<&Principal>) -> Listing {
        let mut listing = Listing::default();
        for (i, view) in self.views().await.into_iter().enumerate() {
            let config = self.inner.slots[i].upstream.config();
            let catalog = match view {
                View::Served(c) => c,
                View::Quarantined { reason, .. } => {
                    listing
                        .problems
                        .push(format!("`{}` is quarantined: {reason}", config.id));
                    continue;
                }
                View::Down(e) => {
                    listing
                        .problems
                        .push(format!("`{}` is unavailable: {e}", config.id));
                    continue;
                }
            };
            for tool in catalog.tools() {
                if !config.access.allows(principal, &tool.name) {
                    continue;
                }
                let exported = config.exported_name(&tool.name);
                if self.route(&exported).await != Some((i, tool.name.to_string())) {
                    listing.problems.push(format!(
                        "`{}` tool `{}` is not exported: another tool is named `{exported}`",
                        config.id, tool.name
                    ));
                    continue;
                }
                let mut t = tool.clone();
                t.name = exported.into();
                // Not pinned (servers put volatile data there) and so never re-exported: what
                // a caller sees of a tool is what was pinned and judged.
                t.meta = None;
                listing.tools.push(t);
            }
        }
        listing
    }

    /// Calls the tool exported as `name` for the caller in `ctx`: routed, checked against
    /// the pinned catalog and the caller's access, judged as a
    /// [`GuardSubject::ToolCall`], executed once, bounded, checked against the tool's
    /// output schema, and its result judged as a [`GuardSubject::ToolResult`] (origin
    /// `tool`, untrusted) before anyone reads it.
    pub async fn call_tool(
        &self,
        ctx: &RequestContext,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, Error> {
        let started = Instant::now();
        let Some((i, tool)) = self.route(name).await else {
            return Err(unknown_tool(name));
        };
        let (outcome, result) = self.call_routed(ctx, i, &tool, name, arguments).await;
        self.record(ctx, i, &tool, outcome, &result, started);
        result
    }

    async fn call_routed(
        &self,
        ctx: &RequestContext,
        i: usize,
        tool: &str,
        exported: &str,
        arguments: Option<JsonObject>,
    ) -> (&'static str, Result<CallToolResult, Error>) {
        let slot = &self.inner.slots[i];
        let config = slot.upstream.config();
        let catalog = match self.view(i).await {
            View::Served(c) => c,
            // Why (the diff, a refused description) is the admin's to read: it names tools
            // this caller may not see.
            View::Quarantined { .. } => {
                return ("refused", Err(quarantined(&config.id)));
            }
            // Why is the operator's to read (the log, `aegis mcp pins list`): it may name a
            // command line or an internal URL.
            View::Down(_) => return ("refused", Err(unavailable(&config.id))),
        };
        let Some(declared) = catalog.get(tool) else {
            return ("refused", Err(unknown_tool(exported)));
        };
        if !config.access.allows(ctx.principal.as_ref(), tool) {
            return (
                "refused",
                Err(Error::new(
                    ErrorKind::Forbidden,
                    format!("tool `{exported}` is not allowed for this caller"),
                )
                .with_code("tool_not_allowed")),
            );
        }
        let arguments = match self.judge_call(ctx, &config.id, exported, arguments).await {
            Ok(a) => a,
            Err(e) if e.kind() == ErrorKind::ApprovalRequired => {
                return ("awaiting_approval", Err(e));
            }
            Err(e) => return ("blocked", Err(e)),
        };
        let result = match slot.upstream.call_tool(tool, arguments).await {
            Ok(r) => r,
            Err(e) => {
                let e = self.failure_for_caller(ctx, &config.id, exported, e).await;
                return ("failed", Err(e));
            }
        };
        if let Err(e) = check_result(&result, declared, config.max_result_bytes, exported) {
            return ("failed", Err(e));
        }
        match self.judge_result(ctx, &config.id, exported, result).await {
            Ok(r) => ("executed", Ok(r)),
            Err(e) => ("result_blocked", Err(e)),
        }
    }

    /// What the caller is told of a failed upstream call. A JSON-RPC error's message is the
    /// server's own text, judged as untrusted tool output like a result; any other detail
    /// (a command line, an internal URL, a transport's own words) goes to the log only.
    async fn failure_for_caller(
        &self,
        ctx: &RequestContext,
        server: &str,
        exported: &str,
        e: Error,
    ) -> Error {
        match e.code() {
            UPSTREAM_ERROR => {
                let said = e
                    .details()
                    .and_then(|d| d.get(UPSTREAM_MESSAGE))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let judge = Judge {
                    hub: self,
                    ctx,
                    server,
                    exported,
                };
                let said = match judge.text(said).await {
                    Ok(said) => said,
                    Err(refused) => format!("[withheld: {}]", refused.message()),
                };
                let mut refused = Error::new(e.kind(), format!("{}: {said}", e.message()))
                    .with_code(UPSTREAM_ERROR);
                if let Some(code) = e.details().and_then(|d| d.get(UPSTREAM_CODE)) {
                    refused = refused.with_details(serde_json::json!({ UPSTREAM_CODE: code }));
                }
                refused
            }
            "mcp_timeout" => e,
            _ => {
                tracing::warn!(%server, error = %e, "MCP tool call failed");
                unavailable(server)
            }
        }
    }

    /// The call judged; the (possibly sanitized) arguments to send. A call guards want a
    /// human to decide on executes only with an approved, unconsumed, unexpired approval
    /// for exactly this call that covers every one of those guards; it is consumed here,
    /// before the call goes out — so it executes at most once.
    async fn judge_call(
        &self,
        ctx: &RequestContext,
        server: &str,
        exported: &str,
        arguments: Option<JsonObject>,
    ) -> Result<Option<JsonObject>, Error> {
        let text = match &arguments {
            Some(a) => serde_json::to_string(a).unwrap_or_default(),
            None => String::new(),
        };
        let subject = GuardSubject::ToolCall {
            call: ToolCall::new(ctx.run_id.clone().unwrap_or_default(), exported, text),
            server: Some(server.to_owned()),
        };
        // Every guard asking for approval is collected (one approval covers them all); the
        // chain is judged again with each let through, so the others still have their say.
        let mut asking: Vec<String> = Vec::new();
        let mut reasons: Vec<String> = Vec::new();
        let mut out = self.inner.chain.check(subject.clone(), ctx, &[]).await;
        while let ChainDecision::NeedsApproval(v) = &out.decision {
            if asking.contains(&v.guard) {
                break;
            }
            asking.push(v.guard.clone());
            reasons.push(approval_error(v).message().to_owned());
            let approved: Vec<&str> = asking.iter().map(String::as_str).collect();
            out = self
                .inner
                .chain
                .check(subject.clone(), ctx, &approved)
                .await;
        }
        // A call another guard blocks is refused as such: nobody is asked to approve it.
        if !asking.is_empty() && matches!(out.decision, ChainDecision::Allowed) {
            let args = Value::Object(arguments.clone().unwrap_or_default());
            let id = self
                .approved(ctx, server, exported, &args, asking, reasons.join("; "))
                .await?;
            if !self.inner.approvals.consume(&id).await? {
                return Err(executed(&id));
            }
        }
        let sanitized = out.sanitized();
        let GuardSubject::ToolCall { call, .. } = out.into_result()? else {
            return Err(Error::new(
                ErrorKind::Internal,
                "the chain changed the subject",
            ));
        };
        if !sanitized {
            return Ok(arguments);
        }
        match call.arguments_json()? {
            Value::Object(o) => Ok(Some(o)),
            _ => Err(Error::new(
                ErrorKind::PolicyBlocked,
                format!("the sanitized arguments of `{exported}` are not a JSON object"),
            )),
        }
    }

    /// The id of the approved approval this call claims (`aegis/approval`). Without a
    /// claim: this caller's approved approval of this very call if there is one; else its
    /// pending one, or a new one (at most [`MAX_PENDING_PER_CALLER`] per caller), and the
    /// error naming it.
    async fn approved(
        &self,
        ctx: &RequestContext,
        server: &str,
        exported: &str,
        args: &Value,
        guards: Vec<String>,
        reason: String,
    ) -> Result<String, Error> {
        let requester = ctx.principal.as_ref().map(|p| p.id.clone());
        let hash = arguments_hash(args);
        let now = crate::pins::now_ms();
        let same_call = |a: &ToolApproval| {
            a.requester == requester
                && a.server == server
                && a.tool == exported
                && a.arguments_hash == hash
        };
        let Some(id) = ctx.labels.get(APPROVAL_META) else {
            let _asking = self.inner.asking.lock().await;
            let open: Vec<ToolApproval> = self
                .inner
                .approvals
                .open(now)
                .await?
                .into_iter()
                .filter(|a| a.requester == requester)
                .collect();
            let this =
                |a: &&ToolApproval| same_call(a) && guards.iter().all(|g| a.guards.contains(g));
            // The caller asks again for a call a reviewer approved (a chat sent again makes
            // the same call): it executes, once.
            if let Some(a) = open
                .iter()
                .filter(this)
                .find(|a| a.state == ApprovalState::Approved)
            {
                return Ok(a.id.clone());
            }
            if let Some(a) = open.iter().filter(this).find(|a| a.is_pending(now)) {
                return Err(awaiting(&a.id, &a.reason));
            }
            let pending = open.iter().filter(|a| a.is_pending(now)).count();
            if pending >= MAX_PENDING_PER_CALLER {
                return Err(Error::new(
                    ErrorKind::RateLimited,
                    format!(
                        "this caller already has {pending} tool calls waiting for a reviewer; wait for decisions before asking for more"
                    ),
                )
                .with_code("too_many_pending_approvals"));
            }
            let ttl = self.approval_ttl(server);
            let approval = ToolApproval {
                id: format!("mcpa_{}", uuid::Uuid::now_v7().simple()),
                requester,
                server: server.to_owned(),
                tool: exported.to_owned(),
                arguments: args.clone(),
                arguments_hash: hash,
                reason,
                guards,
                state: ApprovalState::Pending,
                decided_by: None,
                asked_at_ms: now,
                expires_at_ms: Some(now.saturating_add(ttl.as_millis() as u64)),
            };
            self.inner.approvals.create(&approval).await?;
            return Err(awaiting(&approval.id, &approval.reason));
        };
        let Some(a) = self.inner.approvals.get(id).await? else {
            return Err(unknown(id));
        };
        if !same_call(&a) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("approval `{id}` is for another call (caller, tool or arguments differ)"),
            )
            .with_code("approval_mismatch"));
        }
        if let Some(g) = guards.iter().find(|g| !a.guards.contains(g)) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("approval `{id}` does not cover guard `{g}`, which also asks for one: send the call without it to ask again"),
            )
            .with_code("approval_mismatch"));
        }
        match a.state {
            ApprovalState::Approved | ApprovalState::Pending if a.expired(now) => {
                Err(crate::approvals::expired(id))
            }
            ApprovalState::Approved => Ok(a.id),
            ApprovalState::Pending => Err(Error::new(
                ErrorKind::ApprovalRequired,
                format!("approval `{id}` is still pending"),
            )
            .with_code("approval_required")
            .with_details(serde_json::json!({ "approval_id": id }))),
            ApprovalState::Rejected => Err(Error::new(
                ErrorKind::PolicyBlocked,
                format!("approval `{id}` was rejected: the call never executes"),
            )
            .with_code("approval_rejected")),
            ApprovalState::Executed => Err(executed(id)),
        }
    }

    fn approval_ttl(&self, server: &str) -> Duration {
        self.inner
            .slots
            .iter()
            .find(|s| s.upstream.config().id == server)
            .map_or(crate::config::DEFAULT_APPROVAL_TTL, |s| {
                Duration::from_secs(s.upstream.config().approval_ttl_secs)
            })
    }

    /// Tool calls waiting for a human decision, oldest first.
    pub async fn pending_approvals(&self) -> Result<Vec<ToolApproval>, Error> {
        self.inner.approvals.pending(crate::pins::now_ms()).await
    }

    /// Keeps the state of a chat held on the approval `id` (see [`crate::ToolLoop`]).
    pub async fn hold_chat(&self, id: &str, state: Value) -> Result<(), Error> {
        self.inner.approvals.hold(id, &state).await
    }

    /// The state of the chat held on the approval `id`, taken (a chat resumes once) — by
    /// the caller who asked for the call, only.
    pub async fn take_held_chat(
        &self,
        id: &str,
        caller: Option<&Principal>,
    ) -> Result<Option<Value>, Error> {
        let Some(approval) = self.inner.approvals.get(id).await? else {
            return Ok(None);
        };
        if approval.requester.as_deref() != caller.map(|p| p.id.as_str()) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("the chat held on `{id}` is another caller's"),
            )
            .with_code("approval_mismatch"));
        }
        self.inner.approvals.take_held(id).await
    }

    /// Approves or rejects a pending tool call, as `by` (never its own caller).
    pub async fn decide(&self, id: &str, approve: bool, by: &str) -> Result<ToolApproval, Error> {
        self.inner.approvals.decide(id, approve, by).await
    }

    /// Everything the result carries judged as untrusted tool output, sanitized in place:
    /// each block's text, and its other free text (a resource link's name, title,
    /// description and URI, any `_meta` and annotations) as one JSON document; the
    /// structured content and the result's `_meta` likewise. Binary payloads (image and
    /// audio data, blob resources) are not text and pass as they are.
    async fn judge_result(
        &self,
        ctx: &RequestContext,
        server: &str,
        exported: &str,
        mut result: CallToolResult,
    ) -> Result<CallToolResult, Error> {
        let judge = Judge {
            hub: self,
            ctx,
            server,
            exported,
        };
        for block in &mut result.content {
            *block = judge.typed(block).await?;
        }
        if let Some(structured) = result.structured_content.take() {
            result.structured_content = Some(judge.json(structured).await?);
        }
        result.meta = judge.meta(result.meta.take()).await?;
        Ok(result)
    }

    /// Every server's state and pin, each listed again when stale.
    pub async fn status(&self) -> Vec<ServerStatus> {
        let mut out = Vec::new();
        for (i, view) in self.views().await.into_iter().enumerate() {
            let id = self.inner.slots[i].upstream.config().id.clone();
            let pin = self.inner.pins.get(&id).await.ok().flatten();
            out.push(match view {
                View::Served(c) => ServerStatus {
                    server: id,
                    state: "served",
                    reason: None,
                    tools: c.len(),
                    pin,
                    diff: None,
                },
                View::Quarantined { reason, record } => {
                    let seen = Catalog::from_json(&record.seen_catalog).unwrap_or_default();
                    let old = record
                        .pinned_catalog
                        .as_deref()
                        .and_then(|p| Catalog::from_json(p).ok())
                        .unwrap_or_default();
                    ServerStatus {
                        server: id,
                        state: "quarantined",
                        reason: Some(reason),
                        tools: 0,
                        diff: Some(seen.diff(&old)),
                        pin: Some(record),
                    }
                }
                View::Down(e) => ServerStatus {
                    server: id,
                    state: "down",
                    reason: Some(e),
                    tools: 0,
                    pin,
                    diff: None,
                },
            });
        }
        out
    }

    /// Approves the catalog `server` serves, if its hash is `hash` (what the admin saw);
    /// the server is served again at once on this replica, within [`CATALOG_TTL`] on the
    /// others.
    pub async fn approve(&self, server: &str, hash: &str, by: &str) -> Result<PinRecord, Error> {
        let Some(slot) = self
            .inner
            .slots
            .iter()
            .find(|s| s.upstream.config().id == server)
        else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no MCP server `{server}` is configured"),
            ));
        };
        let record = self.inner.pins.approve(server, hash, by).await?;
        *slot.view.lock().await = None;
        Ok(record)
    }

    /// Forgets every server's cached state: the next request lists each again (after an
    /// approval made elsewhere, or to see a change now rather than within [`CATALOG_TTL`]).
    pub async fn refresh(&self) {
        for slot in &self.inner.slots {
            *slot.view.lock().await = None;
        }
    }

    /// Closes every connection (child processes are stopped).
    pub async fn close(&self) {
        for slot in &self.inner.slots {
            slot.upstream.close().await;
        }
    }
}

/// The text a tool's definition shows a model or a person besides its name and input
/// schema, all of it judged: the description, and the title, annotations, output schema and
/// icons (what a client may display or a model may read).
fn definition_text(tool: &Tool) -> String {
    let mut text = tool.description.as_deref().unwrap_or_default().to_owned();
    let mut rest = serde_json::to_value(tool).unwrap_or(Value::Null);
    if let Some(o) = rest.as_object_mut() {
        for shown_apart in ["name", "description", "inputSchema", "_meta"] {
            o.remove(shown_apart);
        }
        if !o.is_empty() {
            text.push('\n');
            text.push_str(&rest.to_string());
        }
    }
    text
}

/// Judges what one tool call brought back, as [`GuardSubject::ToolResult`]s of the call.
struct Judge<'a> {
    hub: &'a McpHub,
    ctx: &'a RequestContext,
    server: &'a str,
    exported: &'a str,
}

/// Where a protocol object (a content block, resource contents, a prompt message) has its
/// main text and binary payload: the object itself, its embedded `resource`, a prompt
/// message's `content`, and that content's `resource`. Nowhere else — a `text` or `data`
/// key inside `_meta` is free text like the rest.
const PROTOCOL_AT: [&str; 4] = ["", "/resource", "/content", "/content/resource"];
/// What is held out there: the main text (judged on its own, as text) and binary payloads
/// (base64, not text) — only when they are strings — and the discriminators (`type`,
/// `role`: fixed words of the protocol, already checked when the object was read), which
/// are no free text and would only make a detector see `"role": "user"` where there is
/// none.
const HELD_KEYS: [&str; 5] = ["text", "data", "blob", "type", "role"];
/// Of those, what is judged as text.
const TEXT_KEY: &str = "text";
/// Of those, the binary payloads (base64).
const BINARY_KEYS: [&str; 2] = ["data", "blob"];

/// Whether `s` is standard base64 (what MCP's binary payloads are).
fn is_base64(s: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

/// Takes the [`HELD_KEYS`] out of `v` at the [`PROTOCOL_AT`] positions, with the JSON
/// pointer of the object each was in.
fn hold(v: &mut Value) -> Vec<(&'static str, &'static str, Value)> {
    let mut held = Vec::new();
    for at in PROTOCOL_AT {
        let Some(Value::Object(o)) = v.pointer_mut(at) else {
            continue;
        };
        for key in HELD_KEYS {
            if o.get(key).is_some_and(Value::is_string)
                && let Some(x) = o.remove(key)
            {
                held.push((at, key, x));
            }
        }
    }
    held
}

/// Whether nothing is left of a protocol object once its held keys are out (only the
/// emptied nested protocol objects): no free text to judge.
fn plain(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.values().all(plain),
        _ => false,
    }
}

impl Judge<'_> {
    async fn text(&self, content: String) -> Result<String, Error> {
        let subject = GuardSubject::ToolResult {
            call_id: self.ctx.run_id.clone().unwrap_or_default(),
            name: self.exported.to_owned(),
            content,
            server: Some(self.server.to_owned()),
        };
        match self
            .hub
            .inner
            .chain
            .check(subject, self.ctx, &[])
            .await
            .into_result()?
        {
            GuardSubject::ToolResult { content, .. } => Ok(content),
            _ => Err(Error::new(
                ErrorKind::Internal,
                "the chain changed the subject",
            )),
        }
    }

    /// `value` judged as one JSON document (so a detector sees keys beside values).
    async fn json(&self, value: Value) -> Result<Value, Error> {
        let judged = self.text(value.to_string()).await?;
        serde_json::from_str(&judged).map_err(|_| self.not_json("result"))
    }

    /// A `_meta` object judged as one JSON document.
    async fn meta(
        &self,
        meta: Option<rmcp::model::MetaObject>,
    ) -> Result<Option<rmcp::model::MetaObject>, Error> {
        let Some(meta) = meta else { return Ok(None) };
        match self.json(Value::Object(meta.0)).await? {
            Value::Object(m) => Ok(Some(rmcp::model::MetaObject(m))),
            _ => Err(self.not_json("`_meta`")),
        }
    }

    fn not_json(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::PolicyBlocked,
            format!(
                "the sanitized {what} of `{}` is no longer JSON",
                self.exported
            ),
        )
    }

    /// A protocol object (a content block, resource contents, a prompt message) judged:
    /// its main text as text; the rest of its free text (a resource link's name and
    /// description, a URI, a MIME type, `_meta`, annotations) as one JSON document; its
    /// binary payload (`data`, `blob`) held out, as it is not text.
    pub(crate) async fn typed<T>(&self, object: &T) -> Result<T, Error>
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let mut v = serde_json::to_value(object)
            .map_err(|e| Error::internal(format!("an MCP object: {e}")))?;
        let mut held = hold(&mut v);
        for (_, key, x) in &mut held {
            let Value::String(t) = x else { continue };
            if *key == TEXT_KEY {
                *t = self.text(std::mem::take(t)).await?;
            } else if BINARY_KEYS.contains(key) && !is_base64(t) {
                // What passes unjudged must be what it claims: bytes, not text in disguise.
                return Err(Error::new(
                    ErrorKind::Provider,
                    format!(
                        "the answer for `{}` carries a binary payload that is not base64",
                        self.exported
                    ),
                )
                .with_code("tool_result_invalid"));
            }
        }
        if !plain(&v) {
            v = self.json(v).await?;
        }
        for (pointer, key, x) in held {
            let Some(Value::Object(o)) = v.pointer_mut(pointer) else {
                return Err(self.not_json("content"));
            };
            o.insert(key.to_owned(), x);
        }
        serde_json::from_value(v).map_err(|_| self.not_json("content"))
    }
}

/// How many tool calls one caller may have waiting for a reviewer at once.
pub const MAX_PENDING_PER_CALLER: usize = 64;

/// The refusal of a call waiting for a reviewer, naming its approval.
fn awaiting(id: &str, reason: &str) -> Error {
    Error::new(
        ErrorKind::ApprovalRequired,
        format!(
            "{reason}; approval `{id}` is pending: once a reviewer approves it, send the same call with `_meta: {{\"{APPROVAL_META}\": \"{id}\"}}`"
        ),
    )
    .with_code("approval_required")
    .with_details(serde_json::json!({ "approval_id": id }))
}

fn executed(id: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("the call approved as `{id}` was already executed"),
    )
    .with_code("already_executed")
}

/// What a caller is told of a quarantined server (the reason is the admin's to read).
fn quarantined(server: &str) -> Error {
    Error::new(
        ErrorKind::Forbidden,
        format!("MCP server `{server}` is quarantined until an admin approves its catalog"),
    )
    .with_code("mcp_server_quarantined")
}

/// What a caller is told of a server that cannot be reached.
fn unavailable(server: &str) -> Error {
    Error::new(
        ErrorKind::Provider,
        format!("MCP server `{server}` is unavailable; the operator's log says why"),
    )
    .with_code("mcp_server_unavailable")
}

fn unknown_tool(name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("no tool `{name}` is available"),
    )
    .with_code("unknown_tool")
}

/// A result within its size bound and, for a tool declaring an output schema, carrying
/// structured content valid for it.
fn check_result(
    result: &CallToolResult,
    declared: &Tool,
    max_bytes: usize,
    exported: &str,
) -> Result<(), Error> {
    let size = serde_json::to_vec(result)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > max_bytes {
        return Err(Error::new(
            ErrorKind::Provider,
            format!("the result of `{exported}` is {size} bytes, over the limit of {max_bytes}"),
        )
        .with_code("tool_result_too_large"));
    }
    if result.is_error == Some(true) {
        return Ok(());
    }
    if let Some(schema) = &declared.output_schema {
        let problem = match &result.structured_content {
            None => Some("it has no structured content".to_owned()),
            Some(v) => schema::violation(&Value::Object((**schema).clone()), v, "$"),
        };
        if let Some(p) = problem {
            return Err(Error::new(
                ErrorKind::Provider,
                format!("the result of `{exported}` does not match its output schema: {p}"),
            )
            .with_code("tool_result_invalid"));
        }
    }
    Ok(())
}
