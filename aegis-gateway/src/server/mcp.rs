//! MCP at the gateway: `/mcp` (Aegis as a streamable-HTTP MCP server, authenticated by
//! virtual key), the `[[mcp_servers]]` hub behind it, catalog pins kept in the database
//! (shared by every replica), and the admin endpoints `aegis mcp pins` talks to.

use std::{collections::HashMap, sync::Arc, time::Instant};

use aegis::{Error, ErrorKind};
use aegis_mcp::{
    AegisMcpServer, Caller, McpHub, PinRecord, PinStore, ResolvedServer, ToolCallRecord,
    ToolObserver,
    rmcp::transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::local::LocalSessionManager,
    },
};
use axum::{
    Json,
    extract::{Path, Request, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::{ApiError, Gateway, context_from, parse_json, require_admin};

/// What `/mcp` serves.
pub struct McpEndpoint {
    server: AegisMcpServer,
    service: StreamableHttpService<AegisMcpServer, LocalSessionManager>,
    sessions: Sessions,
}

/// The MCP header naming a streamable-HTTP session.
const SESSION_HEADER: &str = "mcp-session-id";
/// How long an unused session stays bound: rmcp's own idle timeout (5 min), after which
/// the session is gone there too, and a little more.
const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(330);
/// The most live sessions at once.
const MAX_SESSIONS: usize = 100_000;
/// The most live sessions one caller may have open at once: past it, `initialize` is
/// refused (429) until one is closed or idles out — so nobody fills the table, or rmcp's
/// sessions, for others.
const SESSIONS_PER_CALLER: usize = 64;

/// Which caller (principal) opened each MCP session: a session is used only by the caller
/// that opened it, so another caller holding its id can neither read its stream nor act in
/// it.
#[derive(Default)]
struct Sessions(std::sync::Mutex<Bindings>);

/// Session id → the caller that opened it, and when it was last used.
type Bindings = HashMap<String, (Option<String>, Instant)>;

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Bindings> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `caller` may use session `id` (one it opened, still bound).
    fn admits(&self, id: &str, caller: Option<&str>) -> bool {
        let mut all = self.lock();
        match all.get_mut(id) {
            Some((owner, seen)) if owner.as_deref() == caller => {
                *seen = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Whether `caller` may open one more session: fewer than [`SESSIONS_PER_CALLER`] of
    /// its sessions are live, and the table is not full of live sessions. A session past
    /// rmcp's idle timeout is gone there too, and is forgotten here.
    fn has_room(&self, caller: Option<&str>) -> bool {
        let mut all = self.lock();
        all.retain(|_, (_, seen)| seen.elapsed() < SESSION_IDLE);
        all.len() < MAX_SESSIONS
            && all
                .values()
                .filter(|(owner, _)| owner.as_deref() == caller)
                .count()
                < SESSIONS_PER_CALLER
    }

    fn bind(&self, id: String, caller: Option<String>) {
        self.lock().insert(id, (caller, Instant::now()));
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}

impl McpEndpoint {
    /// The endpoint of `hub`, with `pipeline`'s governed chat as the `chat` tool; `hosts`
    /// are the `Host` values accepted besides loopback (DNS-rebinding protection).
    pub fn new(hub: McpHub, pipeline: aegis::Pipeline, hosts: &[String]) -> Self {
        let server = AegisMcpServer::new(hub, Some(pipeline));
        let mut allowed: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        allowed.extend(hosts.iter().cloned());
        let config = StreamableHttpServerConfig::default().with_allowed_hosts(allowed);
        let served = server.clone();
        let service =
            StreamableHttpService::new(move || Ok(served.clone()), Default::default(), config);
        Self {
            server,
            service,
            sessions: Sessions::default(),
        }
    }

    /// The hub served now.
    pub fn hub(&self) -> McpHub {
        self.server.hub()
    }

    /// Serves `hub` and `pipeline`'s chat from now on (a config reload), in every session
    /// open or to come; the hub served until now is closed (its child processes stopped)
    /// once `grace` has let its requests in flight finish.
    pub fn replace(&self, hub: McpHub, pipeline: aegis::Pipeline, grace: std::time::Duration) {
        let old = self.server.replace(hub, Some(pipeline));
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            old.close().await;
        });
    }
}

/// Builds the hub of the config's `[[mcp_servers]]`: validated (every problem with its
/// config path), credentials resolved, pins in `store`, every call audited through
/// `audit`, approvals of tool calls in `approvals`.
pub async fn hub_from_config(
    cfg: &aegis::config::AegisConfig,
    registry: &aegis::Registry,
    chain: aegis::guard::GuardChain,
    pins: Arc<dyn PinStore>,
    observer: Option<Arc<dyn ToolObserver>>,
    approvals: Arc<dyn aegis_mcp::ApprovalStore>,
) -> Result<McpHub, Error> {
    let configs = aegis_mcp::parse_servers(&cfg.mcp_servers)?;
    let mut servers = Vec::with_capacity(configs.len());
    for (i, c) in configs.into_iter().enumerate() {
        let path = format!("mcp_servers[{i}]");
        servers.push(
            ResolvedServer::resolve(c, &path, |at, reference| async move {
                registry.resolve_secret(&at, &reference).await
            })
            .await?,
        );
    }
    Ok(McpHub::with(
        servers,
        chain,
        pins,
        observer,
        vec![aegis_mcp::CHAT_TOOL.to_owned()],
        approvals,
    ))
}

/// `/mcp`: the caller authenticated with the pipeline's authenticators (a virtual key),
/// then the MCP service.
pub(crate) async fn serve(State(gw): State<Arc<Gateway>>, mut req: Request) -> Response {
    let Some(endpoint) = gw.mcp() else {
        return ApiError(Error::new(ErrorKind::NotFound, "MCP is not served")).into_response();
    };
    let mut ctx = context_from(req.headers());
    match gw.pipeline().authenticate(&ctx).await {
        Ok(p) => ctx.principal = p,
        Err(e) => return ApiError(e).into_response(),
    }
    ctx.credentials = None;
    let caller = ctx.principal.as_ref().map(|p| p.id.clone());
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Someone else's session is answered as no session at all: its id reveals nothing.
    if let Some(id) = &session
        && !endpoint.sessions.admits(id, caller.as_deref())
    {
        return (
            axum::http::StatusCode::NOT_FOUND,
            "Not Found: Session not found",
        )
            .into_response();
    }
    if session.is_none()
        && req.method() == axum::http::Method::POST
        && !endpoint.sessions.has_room(caller.as_deref())
    {
        return ApiError(
            Error::new(
                ErrorKind::RateLimited,
                format!(
                    "this caller has {SESSIONS_PER_CALLER} MCP sessions open: close one (DELETE /mcp with its Mcp-Session-Id) or let one idle out"
                ),
            )
            .with_code("too_many_sessions")
            .with_retry_after(std::time::Duration::from_secs(30)),
        )
        .into_response();
    }
    let closing = req.method() == axum::http::Method::DELETE;
    req.extensions_mut().insert(Caller(ctx));
    let response = match endpoint.service.clone().oneshot(req).await {
        Ok(r) => r.map(axum::body::Body::new),
        Err(never) => match never {},
    };
    match session {
        Some(id) if closing && response.status().is_success() => endpoint.sessions.forget(&id),
        Some(_) => {}
        None => {
            if let Some(id) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                endpoint.sessions.bind(id.to_owned(), caller);
            }
        }
    }
    response
}

/// `GET /v1/admin/mcp/servers`: every server's state, pin and diff (admin).
pub(crate) async fn servers(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&gw, &headers).await?;
    let hub = hub_of(&gw)?;
    hub.refresh().await;
    Ok(Json(json!({ "servers": hub.status().await })))
}

/// `POST /v1/admin/mcp/servers/{id}/approve`: `{"hash": "sha256:…"}`, the catalog shown.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    /// The hash of the catalog being approved, as listed: an approval of a catalog that
    /// changed since is refused.
    hash: String,
}

/// Approves the catalog a server serves (admin).
pub(crate) async fn approve(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    let body: ApproveBody = parse_json(&body)?;
    let record = hub_of(&gw)?.approve(&id, &body.hash, &admin.id).await?;
    if let Some(store) = gw.store() {
        let mut entry = aegis_store::AuditEntry::new(
            "mcp.catalog.approved",
            json!({"server": id, "hash": body.hash}),
        );
        entry.actor = Some(admin.id.clone());
        store.append_audit(entry).await?;
    }
    Ok(Json(json!({ "pin": record })))
}

fn hub_of(gw: &Gateway) -> Result<McpHub, ApiError> {
    gw.mcp()
        .map(McpEndpoint::hub)
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "no MCP server is configured").into())
}

/// Pins in the database's settings: `mcp.pin.{id}` (the approved catalog, first set with
/// insert-if-absent so racing replicas pin one) and `mcp.seen.{id}` (the served one).
pub struct StorePins(pub aegis_store::Store);

#[derive(serde::Serialize, Deserialize)]
struct Pinned {
    hash: String,
    catalog: String,
    by: String,
    at_ms: u64,
}

#[derive(serde::Serialize, Deserialize)]
struct Seen {
    hash: String,
    catalog: String,
    at_ms: u64,
}

impl StorePins {
    async fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.0.setting(key).await? {
            None => Ok(None),
            Some(v) => serde_json::from_str(&v)
                .map(Some)
                .map_err(|e| Error::new(ErrorKind::Storage, format!("setting `{key}`: {e}"))),
        }
    }

    async fn record(&self, server: &str) -> Result<Option<PinRecord>, Error> {
        let Some(seen) = self.read::<Seen>(&format!("mcp.seen.{server}")).await? else {
            return Ok(None);
        };
        let pinned = self.read::<Pinned>(&format!("mcp.pin.{server}")).await?;
        Ok(Some(PinRecord {
            server: server.to_owned(),
            pinned_hash: pinned.as_ref().map(|p| p.hash.clone()),
            pinned_catalog: pinned.as_ref().map(|p| p.catalog.clone()),
            approved_by: pinned.as_ref().map(|p| p.by.clone()),
            approved_at_ms: pinned.as_ref().map(|p| p.at_ms),
            seen_hash: seen.hash,
            seen_catalog: seen.catalog,
            seen_at_ms: seen.at_ms,
        }))
    }
}

fn json_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[async_trait::async_trait]
impl PinStore for StorePins {
    async fn observe(
        &self,
        server: &str,
        hash: &str,
        catalog: &str,
        pin_if_unpinned: bool,
    ) -> Result<PinRecord, Error> {
        let now = aegis_mcp::now_ms();
        let seen = Seen {
            hash: hash.to_owned(),
            catalog: catalog.to_owned(),
            at_ms: now,
        };
        self.0
            .set_setting(&format!("mcp.seen.{server}"), Some(&json_of(&seen)))
            .await?;
        if pin_if_unpinned {
            let pin = Pinned {
                hash: hash.to_owned(),
                catalog: catalog.to_owned(),
                by: aegis_mcp::TRUST_FIRST.to_owned(),
                at_ms: now,
            };
            self.0
                .set_setting_if_absent(&format!("mcp.pin.{server}"), &json_of(&pin))
                .await?;
        }
        self.record(server)
            .await?
            .ok_or_else(|| aegis_mcp::not_seen(server))
    }

    async fn approve(&self, server: &str, hash: &str, by: &str) -> Result<PinRecord, Error> {
        let Some(seen) = self.read::<Seen>(&format!("mcp.seen.{server}")).await? else {
            return Err(aegis_mcp::not_seen(server));
        };
        if seen.hash != hash {
            return Err(aegis_mcp::changed(server, hash, &seen.hash));
        }
        let pin = Pinned {
            hash: seen.hash,
            catalog: seen.catalog,
            by: by.to_owned(),
            at_ms: aegis_mcp::now_ms(),
        };
        self.0
            .set_setting(&format!("mcp.pin.{server}"), Some(&json_of(&pin)))
            .await?;
        self.record(server)
            .await?
            .ok_or_else(|| aegis_mcp::not_seen(server))
    }

    async fn get(&self, server: &str) -> Result<Option<PinRecord>, Error> {
        self.record(server).await
    }
}

/// Every tool call through the hub, in the audit log (`mcp.tool_call`: server, tool,
/// caller, outcome, code, duration — never arguments or results), under the run it was made
/// for when there is one.
pub struct AuditCalls(pub aegis_store::Store);

impl ToolObserver for AuditCalls {
    fn on_call(&self, record: ToolCallRecord) {
        let store = self.0.clone();
        tokio::spawn(async move {
            let mut entry = aegis_store::AuditEntry::new(
                "mcp.tool_call",
                serde_json::to_value(&record).unwrap_or_default(),
            );
            entry.actor = record.principal.clone();
            entry.run_id = record.run_id.clone();
            if let Err(e) = store.append_audit(entry).await {
                tracing::warn!(error = %e, "cannot audit an MCP tool call");
            }
        });
    }
}

/// Tool-call approvals in the database's settings, shared by every replica:
/// `mcp.approval.{id}` (the request), `mcp.approval.{id}.decision` and
/// `mcp.approval.{id}.executed`, each first-set with insert-if-absent — so one decision
/// stands and one execution happens, whichever replica gets there first.
pub struct StoreApprovals(pub aegis_store::Store);

const APPROVAL_KEY: &str = "mcp.approval.";
/// Where the chat held on an approval is kept.
const HELD_KEY: &str = "mcp.held.";

#[derive(serde::Serialize, Deserialize)]
struct Decision {
    approve: bool,
    by: String,
}

impl StoreApprovals {
    async fn load(&self, id: &str) -> Result<Option<aegis_mcp::ToolApproval>, Error> {
        let key = format!("{APPROVAL_KEY}{id}");
        let Some(raw) = self.0.setting(&key).await? else {
            return Ok(None);
        };
        let decision = self.0.setting(&format!("{key}.decision")).await?;
        let executed = self.0.setting(&format!("{key}.executed")).await?.is_some();
        assemble(id, &raw, decision.as_deref(), executed).map(Some)
    }
}

/// An approval from its three settings: the request, the decision if any, and whether it
/// was executed.
fn assemble(
    id: &str,
    raw: &str,
    decision: Option<&str>,
    executed: bool,
) -> Result<aegis_mcp::ToolApproval, Error> {
    let mut a: aegis_mcp::ToolApproval = serde_json::from_str(raw)
        .map_err(|e| Error::new(ErrorKind::Storage, format!("approval `{id}`: {e}")))?;
    if let Some(d) = decision {
        let d: Decision = serde_json::from_str(d)
            .map_err(|e| Error::new(ErrorKind::Storage, format!("decision of `{id}`: {e}")))?;
        a.state = match d.approve {
            true => aegis_mcp::ApprovalState::Approved,
            false => aegis_mcp::ApprovalState::Rejected,
        };
        a.decided_by = Some(d.by);
    }
    if executed {
        a.state = aegis_mcp::ApprovalState::Executed;
    }
    Ok(a)
}

#[async_trait::async_trait]
impl aegis_mcp::ApprovalStore for StoreApprovals {
    async fn create(&self, approval: &aegis_mcp::ToolApproval) -> Result<(), Error> {
        self.0
            .set_setting(
                &format!("{APPROVAL_KEY}{}", approval.id),
                Some(&json_of(approval)),
            )
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<aegis_mcp::ToolApproval>, Error> {
        self.load(id).await
    }

    /// One query: every approval setting, grouped by approval.
    async fn open(&self, now_ms: u64) -> Result<Vec<aegis_mcp::ToolApproval>, Error> {
        let all: std::collections::HashMap<String, String> = self
            .0
            .settings_with_prefix(APPROVAL_KEY)
            .await?
            .into_iter()
            .collect();
        let mut out = Vec::new();
        for (key, raw) in &all {
            let id = &key[APPROVAL_KEY.len()..];
            if id.contains('.') {
                continue;
            }
            let decision = all.get(&format!("{key}.decision")).map(String::as_str);
            let executed = all.contains_key(&format!("{key}.executed"));
            let a = assemble(id, raw, decision, executed)?;
            if a.is_open(now_ms) {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
    ) -> Result<aegis_mcp::ToolApproval, Error> {
        let Some(mut a) = self.load(id).await? else {
            return Err(aegis_mcp::approvals_unknown(id));
        };
        aegis_mcp::decide(&mut a, approve, by)?;
        let decision = Decision {
            approve,
            by: by.to_owned(),
        };
        if !self
            .0
            .set_setting_if_absent(&format!("{APPROVAL_KEY}{id}.decision"), &json_of(&decision))
            .await?
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("approval `{id}` was decided meanwhile"),
            )
            .with_code("already_decided"));
        }
        Ok(a)
    }

    /// Under `mcp.held.{id}`, apart from the approvals, so listing approvals never reads
    /// a held conversation.
    async fn hold(&self, id: &str, state: &Value) -> Result<(), Error> {
        let key = format!("{HELD_KEY}{id}");
        if !self
            .0
            .set_setting_if_absent(&key, &state.to_string())
            .await?
        {
            return Err(aegis_mcp::held_already(id));
        }
        // Held again (resumed before the decision): it may be taken again.
        self.0.set_setting(&format!("{key}.taken"), None).await
    }

    /// Claimed with insert-if-absent first: of two resumes racing, one gets the state.
    async fn take_held(&self, id: &str) -> Result<Option<Value>, Error> {
        let key = format!("{HELD_KEY}{id}");
        if !self
            .0
            .set_setting_if_absent(&format!("{key}.taken"), "1")
            .await?
        {
            return Ok(None);
        }
        let Some(raw) = self.0.setting(&key).await? else {
            return Ok(None);
        };
        self.0.set_setting(&key, None).await?;
        serde_json::from_str(&raw)
            .map(Some)
            .map_err(|e| Error::new(ErrorKind::Storage, format!("setting `{key}`: {e}")))
    }

    async fn consume(&self, id: &str) -> Result<bool, Error> {
        match self.load(id).await? {
            Some(a) if a.state == aegis_mcp::ApprovalState::Approved => {
                self.0
                    .set_setting_if_absent(&format!("{APPROVAL_KEY}{id}.executed"), "1")
                    .await
            }
            _ => Ok(false),
        }
    }
}

/// `GET /v1/admin/mcp/approvals`: tool calls waiting for a decision (admin).
pub(crate) async fn approvals(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&gw, &headers).await?;
    Ok(Json(
        json!({ "approvals": hub_of(&gw)?.pending_approvals().await? }),
    ))
}

/// `POST /v1/admin/mcp/approvals/{id}/approve`.
pub(crate) async fn approve_call(
    state: State<Arc<Gateway>>,
    id: Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    decide_call(state, id, headers, true).await
}

/// `POST /v1/admin/mcp/approvals/{id}/reject`.
pub(crate) async fn reject_call(
    state: State<Arc<Gateway>>,
    id: Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    decide_call(state, id, headers, false).await
}

async fn decide_call(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    approve: bool,
) -> Result<Json<Value>, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    let decided = hub_of(&gw)?.decide(&id, approve, &admin.id).await?;
    if let Some(store) = gw.store() {
        let mut entry = aegis_store::AuditEntry::new(
            "mcp.call.decision",
            json!({"approval": id, "approve": approve, "server": decided.server, "tool": decided.tool, "requester": decided.requester}),
        );
        entry.actor = Some(admin.id.clone());
        store.append_audit(entry).await?;
    }
    Ok(Json(json!({ "approval": decided })))
}

#[cfg(test)]
mod tests {
    use super::{SESSIONS_PER_CALLER, Sessions};

    #[test]
    fn a_caller_past_its_session_cap_is_refused_a_new_one_and_nobody_else_is() {
        let sessions = Sessions::default();
        sessions.bind("bob-1".into(), Some("bob".into()));
        for i in 0..SESSIONS_PER_CALLER {
            assert!(sessions.has_room(Some("ada")));
            sessions.bind(format!("ada-{i}"), Some("ada".into()));
        }
        assert!(!sessions.has_room(Some("ada")), "at the cap");
        assert!(
            sessions.has_room(Some("bob")),
            "another caller is not held back"
        );
        assert!(
            sessions.admits("ada-0", Some("ada")),
            "her open sessions go on"
        );
        assert!(sessions.admits("bob-1", Some("bob")));
        assert!(
            !sessions.admits("bob-1", Some("ada")),
            "and stay their own caller's"
        );
        sessions.forget("ada-0");
        assert!(
            sessions.has_room(Some("ada")),
            "a closed session makes room"
        );
    }
}
