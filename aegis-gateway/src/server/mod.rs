//! The HTTP server: OpenAI-compatible endpoints, native `/v1/runs`, health and OpenAPI.
//!
//! The server is a thin host of [`aegis::Pipeline`]: it parses, authenticates the transport
//! (credentials go into the request context; the pipeline's authenticators decide), and
//! renders results. No governance logic lives here.

mod audit;
mod budgets;
mod error;
mod events;
mod keys;
pub mod mcp;
mod openai;
pub mod openapi;
mod rag;
pub mod retention;
mod runs;

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use aegis::{Credentials, Error, ErrorKind, Pipeline, PipelineSet, RequestContext, Secret};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tokio::sync::Semaphore;

pub use error::{ApiError, body_of, status_of};
pub use events::EventFeed;

/// Limits that protect the gateway.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted request body in bytes (default 4 MiB).
    pub max_body_bytes: usize,
    /// Deadline until the response starts (headers / first byte), in milliseconds (default 120 s).
    pub request_timeout_ms: u64,
    /// Streams served at once; more get 429 (default 1000).
    pub max_concurrent_streams: usize,
    /// A client must send its request headers within this many milliseconds, or the
    /// connection is closed (slow-loris protection; default 10 s).
    pub header_read_timeout_ms: u64,
    /// A client must send its whole request body within this many milliseconds, or gets 408
    /// (default 30 s).
    pub body_read_timeout_ms: u64,
    /// After a shutdown signal, how long the gateway goes on serving — `/readyz` answering
    /// 503 — before it stops accepting connections, so a load balancer can take it out of
    /// rotation first (default 0; a few seconds behind Kubernetes or a cloud balancer; at
    /// most five minutes).
    pub shutdown_delay_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout_ms: 120_000,
            max_concurrent_streams: 1000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            shutdown_delay_ms: 0,
        }
    }
}

/// Rebuilds the pipeline (from the config file) and swaps it in.
pub type Reloader = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>>
        + Send
        + Sync,
>;

/// What the handlers share.
pub struct Gateway {
    reloader: std::sync::OnceLock<Reloader>,
    /// Swapped atomically on reload; each request works on the pipeline it started with.
    pipeline: RwLock<PipelineSet>,
    /// Runs, keys and audit, when the gateway has a database.
    store: Option<aegis_store::Store>,
    /// Where budgets live when not (only) in the store: Redis in front of it.
    budgets: std::sync::OnceLock<Arc<dyn aegis_store::BudgetAdmin>>,
    limits: Limits,
    streams: Arc<Semaphore>,
    events: EventFeed,
    /// Set when the gateway begins shutting down: open event feeds end.
    closing: tokio::sync::watch::Sender<bool>,
    /// `/mcp` and the `[[mcp_servers]]` hub behind it.
    mcp: std::sync::OnceLock<mcp::McpEndpoint>,
}

impl Gateway {
    /// A gateway serving `pipeline`; `events` must be one of the pipeline's telemetry sinks for
    /// `/v1/runs/{id}/events` to see anything.
    pub fn new(pipeline: impl Into<PipelineSet>, limits: Limits, events: EventFeed) -> Arc<Self> {
        Self::build(pipeline.into(), limits, events, None)
    }

    /// A gateway whose runs, keys and audit live in `store` (which must also be the
    /// pipeline's checkpointer).
    pub fn with_store(
        pipeline: impl Into<PipelineSet>,
        limits: Limits,
        events: EventFeed,
        store: aegis_store::Store,
    ) -> Arc<Self> {
        Self::build(pipeline.into(), limits, events, Some(store))
    }

    /// Serving `/mcp` from `endpoint`.
    pub fn with_mcp(self: Arc<Self>, endpoint: mcp::McpEndpoint) -> Arc<Self> {
        let _ = self.mcp.set(endpoint);
        self
    }

    /// What `/mcp` serves, when it is served.
    pub fn mcp(&self) -> Option<&mcp::McpEndpoint> {
        self.mcp.get()
    }

    /// With budgets kept in `ledger` (Redis in front of the store) instead of the store:
    /// what `/v1/admin/budgets` reads and changes.
    pub fn with_budgets(self: Arc<Self>, ledger: Arc<dyn aegis_store::BudgetAdmin>) -> Arc<Self> {
        let _ = self.budgets.set(ledger);
        self
    }

    fn build(
        pipeline: PipelineSet,
        limits: Limits,
        events: EventFeed,
        store: Option<aegis_store::Store>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            budgets: std::sync::OnceLock::new(),
            reloader: std::sync::OnceLock::new(),
            mcp: std::sync::OnceLock::new(),
            streams: Arc::new(Semaphore::new(limits.max_concurrent_streams)),
            pipeline: RwLock::new(pipeline),
            limits,
            events,
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Ends the gateway's long-lived responses that would otherwise outlast a graceful
    /// shutdown: run event feeds (a paused run may wait for days).
    pub fn begin_shutdown(&self) {
        self.closing.send_replace(true);
    }

    /// The budget ledger the admin endpoints read and change: the one set by
    /// [`with_budgets`](Self::with_budgets), else the store.
    pub(crate) fn budgets(&self) -> Result<&dyn aegis_store::BudgetAdmin, ApiError> {
        match self.budgets.get() {
            Some(l) => Ok(&**l),
            None => Ok(self.store_for("budgets")?),
        }
    }

    /// The store, for an endpoint whose `what` (`"budgets"`, `"keys"`) lives in the
    /// database; `404` naming the setting when the gateway runs without one.
    pub(crate) fn store_for(&self, what: &str) -> Result<&aegis_store::Store, ApiError> {
        self.store().ok_or_else(|| {
            ApiError(Error::new(
                ErrorKind::NotFound,
                format!("{what} live in the database: set [server].database_url"),
            ))
        })
    }

    /// A permit of the stream limit (`max_concurrent_streams`): SSE answers and run event
    /// feeds count alike. `429 rate_limited` when none is left.
    pub(crate) fn stream_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            Error::new(
                ErrorKind::RateLimited,
                "too many concurrent streams; retry shortly",
            )
            .with_retry_after(std::time::Duration::from_secs(1))
        })
    }

    /// The main pipeline serving new requests (a cheap clone).
    pub fn pipeline(&self) -> Pipeline {
        self.pipelines().main().clone()
    }

    /// Every pipeline serving new requests: the main one and the named ones.
    pub fn pipelines(&self) -> PipelineSet {
        match self.pipeline.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The pipeline that runs `graph`'s runs (resumes go back to the pipeline that began
    /// the run); the main one when no named pipeline has that name.
    pub fn pipeline_of_graph(&self, graph: &str) -> Pipeline {
        let set = self.pipelines();
        set.get(graph).unwrap_or(set.main()).clone()
    }

    /// Picks the pipeline of a request: the one the route names, else the one the caller's
    /// key is pinned to (its `pipeline` label), else the main one. A key pinned to a
    /// pipeline cannot use another (`403`). The caller is authenticated here once; the
    /// pipeline does not do it again.
    pub async fn select(
        &self,
        name: Option<&str>,
        ctx: &mut RequestContext,
    ) -> Result<Pipeline, Error> {
        let set = self.pipelines();
        if !set.has_named() && name.is_none() {
            return Ok(set.main().clone());
        }
        if ctx.principal.is_none() {
            ctx.principal = set.main().authenticate(ctx).await?;
        }
        let pinned = ctx
            .principal
            .as_ref()
            .and_then(|p| p.labels.get("pipeline"))
            .cloned();
        let chosen = match (name, pinned.as_deref()) {
            (Some(n), Some(pin)) if n != pin => {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    format!("this key may use pipeline `{pin}` only, not `{n}`"),
                ));
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => return Ok(set.main().clone()),
        };
        set.get(chosen).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no pipeline `{chosen}` (this gateway serves: {})",
                    std::iter::once(set.main().graph().name())
                        .chain(set.names())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_code("pipeline_not_found")
        })
    }

    /// Serves new requests with `pipeline`; requests in flight finish on the old one.
    pub fn replace_pipeline(&self, pipeline: impl Into<PipelineSet>) {
        let pipeline = pipeline.into();
        match self.pipeline.write() {
            Ok(mut p) => *p = pipeline,
            Err(poisoned) => *poisoned.into_inner() = pipeline,
        }
    }

    /// The database, when configured.
    pub fn store(&self) -> Option<&aegis_store::Store> {
        self.store.as_ref()
    }

    /// Finishes the resumed runs whose claim expired — the process carrying them out was
    /// killed or timed out — with the decisions they recorded; streamed answers are read to
    /// the end so they are stored. Returns how many runs this call finished. Needs a
    /// database (a memory store dies with its process).
    pub async fn recover_stranded(&self) -> Result<usize, Error> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let mut finished = 0;
        let mut cursor: Option<String> = None;
        // Every running run, page by page (runs still in flight are skipped by `recover`:
        // it takes over only a claim whose lease has expired).
        loop {
            let mut query = aegis_store::RunQuery::new()
                .status(aegis::RunStatus::Running)
                .limit(500);
            if let Some(c) = cursor.take() {
                query = query.cursor(c);
            }
            let page = store.list_all_runs(&query).await?;
            for run in page.runs {
                let pipeline = self.pipeline_of_graph(&run.graph);
                match pipeline.recover(&run.run_id).await {
                    Ok(None) => {}
                    Ok(Some(outcome)) => {
                        finished += 1;
                        if let aegis::PipelineOutcome::Response(resp) = outcome {
                            // Reading the answer is what ends (and stores) the run.
                            let _ = resp.collect().await;
                        }
                        tracing::info!(run_id = %run.run_id, "recovered a stranded resume");
                    }
                    // The run itself failed (recorded as such) or the store refused: report
                    // and go on with the others.
                    Err(e) => {
                        tracing::warn!(run_id = %run.run_id, error = %e, "recovering a run failed")
                    }
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(finished)
    }

    /// Runs [`recover_stranded`](Self::recover_stranded) now and then every `every`, for the
    /// gateway's lifetime.
    pub fn spawn_recovery(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(gw) = weak.upgrade() else { return };
                if let Err(e) = gw.recover_stranded().await {
                    tracing::warn!(error = %e, "the recovery sweep failed");
                }
                drop(gw);
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Installs how `POST /admin/reload` rebuilds the pipeline (once).
    pub fn set_reloader(&self, reloader: Reloader) {
        let _ = self.reloader.set(reloader);
    }

    /// Rebuilds and swaps the pipeline with the installed reloader.
    pub async fn reload(&self) -> Result<(), Error> {
        let reloader = self.reloader.get().cloned().ok_or_else(|| {
            Error::config("this gateway was not started from a config file; nothing to reload")
        })?;
        reloader().await
    }

    fn timeout(&self) -> Duration {
        self.request_timeout()
    }

    /// The longest a request may take (`[server] request_timeout_ms`).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.request_timeout_ms)
    }
}

/// The router of every endpoint.
pub fn router(gw: Arc<Gateway>) -> Router {
    let limit = gw.limits.max_body_bytes;
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route(
            "/v1/pipelines/{pipeline}/chat/completions",
            post(openai::pipeline_chat_completions),
        )
        .route(
            "/v1/pipelines/{pipeline}/embeddings",
            post(openai::pipeline_embeddings),
        )
        .route("/v1/models", get(openai::models))
        .route("/v1/runs", post(runs::create).get(runs::list))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/approve", post(runs::approve))
        .route("/v1/runs/{id}/reject", post(runs::reject))
        .route("/v1/runs/{id}/edit", post(runs::edit))
        .route("/v1/runs/{id}/resume", post(runs::resume))
        .route("/v1/runs/{id}/events", get(runs::events))
        .route("/admin/reload", post(admin_reload))
        .route("/v1/admin/budgets", get(budgets::show))
        .route("/v1/admin/budgets/reset", post(budgets::reset))
        .route("/v1/admin/budgets/limit", post(budgets::set_limit))
        .route("/v1/admin/runs/purge", post(retention::purge))
        .route("/v1/rag/{store}/documents", post(rag::ingest))
        .route("/v1/rag/{store}/documents/delete", post(rag::delete))
        .route("/v1/admin/audit/verify", get(audit::verify))
        .route("/v1/admin/audit/head", get(audit::head))
        .route("/v1/admin/keys", post(keys::create).get(keys::list))
        .route("/v1/admin/keys/{id}/revoke", post(keys::revoke))
        .route("/v1/admin/keys/{id}/rotate", post(keys::rotate))
        .route("/mcp", axum::routing::any(mcp::serve))
        .route("/v1/admin/mcp/servers", get(mcp::servers))
        .route("/v1/admin/mcp/servers/{id}/approve", post(mcp::approve))
        .route("/v1/admin/mcp/approvals", get(mcp::approvals))
        .route(
            "/v1/admin/mcp/approvals/{id}/approve",
            post(mcp::approve_call),
        )
        .route(
            "/v1/admin/mcp/approvals/{id}/reject",
            post(mcp::reject_call),
        )
        .route(
            "/v1/mcp/approvals/{id}/resume",
            post(openai::resume_mcp_chat),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            Duration::from_millis(gw.limits.body_read_timeout_ms.max(1)),
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(gw)
}

/// The credentials a request presents: `Authorization: Bearer` or `x-api-key`.
pub(crate) fn context_from(headers: &HeaderMap) -> RequestContext {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let bearer = header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| Secret::new(t.trim()))
        .filter(|s| !s.expose().is_empty());
    let api_key = header("x-api-key")
        .filter(|v| !v.is_empty())
        .map(Secret::new);
    let mut credentials = Credentials::default();
    credentials.bearer = bearer;
    credentials.api_key = api_key;
    let mut ctx = RequestContext::default();
    if credentials.token().is_some() {
        ctx.credentials = Some(credentials);
    }
    // A caller may raise (never lower) its request's classification.
    if let Some(level) = header("x-aegis-classification").filter(|v| !v.is_empty()) {
        ctx.labels.insert(
            aegis::REQUESTED_CLASSIFICATION_LABEL.to_owned(),
            level.to_owned(),
        );
    }
    ctx
}

/// Parses a JSON body, naming the path of the first problem.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(Error::invalid_request("the request body is not valid UTF-8").into());
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." || path.is_empty() {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid request body at `{path}`: {inner}")
        };
        ApiError(Error::new(ErrorKind::InvalidRequest, msg))
    })
}

/// The caller, who must hold the `admin` role. Without authenticators there is no admin.
pub(crate) async fn require_admin(
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<aegis::Principal, ApiError> {
    let principal = gw.pipeline().authenticate(&context_from(headers)).await?;
    match principal {
        Some(p) if p.has_role("admin") => Ok(p),
        Some(p) => {
            Err(Error::new(ErrorKind::Forbidden, format!("`{}` is not an admin", p.id)).into())
        }
        None => Err(Error::new(
            ErrorKind::Forbidden,
            "admin endpoints need an authenticator and a key with the `admin` role",
        )
        .into()),
    }
}

/// `POST /admin/reload`: rebuild the pipeline from the config file and swap it in; requests
/// in flight finish on the old one. A config error leaves the running pipeline in place.
async fn admin_reload(
    axum::extract::State(gw): axum::extract::State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    gw.reload().await?;
    tracing::info!(by = %admin.id, "pipeline reloaded");
    Ok(axum::Json(
        serde_json::json!({"reloaded": true, "providers": gw.pipeline().provider_ids()}),
    ))
}

/// `GET /metrics`: Prometheus text, when a `prometheus` telemetry entry is configured; an
/// admin key is required when authenticators are.
async fn metrics(
    axum::extract::State(gw): axum::extract::State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let Some(handle) = crate::metrics::handle() else {
        return Err(Error::new(
            ErrorKind::NotFound,
            "metrics are off: add a [[telemetry]] entry of type \"prometheus\"",
        )
        .into());
    };
    // Without authenticators (development) anyone may read them; with, only an admin.
    if let Some(p) = gw.pipeline().authenticate(&context_from(&headers)).await?
        && !p.has_role("admin")
    {
        return Err(Error::new(ErrorKind::Forbidden, format!("`{}` is not an admin", p.id)).into());
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

/// Serves `router(gw)` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests and streams finish. Client sockets get `TCP_NODELAY` (small SSE writes
/// leave at once) and a header-read deadline (slow clients cannot hold connections open).
pub async fn serve(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    use hyper_util::{
        rt::{TokioExecutor, TokioTimer},
        server::{conn::auto::Builder, graceful::GracefulShutdown},
    };
    let header_timeout = Duration::from_millis(gw.limits.header_read_timeout_ms.max(1));
    let app = router(gw.clone());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        if let Some(tcp) = tcp {
            serve_connection(&builder, &app, &graceful, tcp);
        }
    }
    // Not ready from here on; connections are still accepted for the delay, so a balancer
    // that polls `/readyz` stops sending before the listener closes.
    gw.begin_shutdown();
    let delay = tokio::time::sleep(Duration::from_millis(
        gw.limits.shutdown_delay_ms.min(MAX_SHUTDOWN_DELAY_MS),
    ));
    let mut delay = std::pin::pin!(delay);
    loop {
        let tcp = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut delay => break,
        };
        if let Some(tcp) = tcp {
            serve_connection(&builder, &app, &graceful, tcp);
        }
    }
    // Closed before draining: a connection arriving now is refused, not left hanging in
    // the backlog.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The longest `shutdown_delay_ms` honoured (five minutes).
const MAX_SHUTDOWN_DELAY_MS: u64 = 300_000;

/// The next connection; `None` after an accept error (out of file descriptors and the
/// like), having backed off instead of spinning.
async fn accept(listener: &tokio::net::TcpListener) -> Option<tokio::net::TcpStream> {
    match listener.accept().await {
        Ok((tcp, _)) => Some(tcp),
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Serves one accepted connection under `graceful`.
fn serve_connection(
    builder: &hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    app: &axum::Router,
    graceful: &hyper_util::server::graceful::GracefulShutdown,
    tcp: tokio::net::TcpStream,
) {
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};
    let _ = tcp.set_nodelay(true);
    let service = TowerToHyperService::new(app.clone());
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
        .into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

/// `GET /readyz`: `200` when the gateway can serve — not shutting down, and its database
/// (when it has one) answers within two seconds and is migrated; `503` saying why not.
async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    let not_ready = |reason: &str, detail: String| {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "reason": reason, "detail": detail})),
        )
            .into_response()
    };
    if *gw.closing.borrow() {
        return not_ready("shutting_down", "the gateway is shutting down".into());
    }
    if let Some(store) = &gw.store {
        match tokio::time::timeout(Duration::from_secs(2), store.ready()).await {
            Err(_) => {
                return not_ready(
                    "store_unreachable",
                    "the database did not answer within 2 s".into(),
                );
            }
            Ok(Err(e)) if e.code() == "store_not_migrated" => {
                return not_ready("store_not_migrated", e.message().to_owned());
            }
            Ok(Err(e)) => {
                // The database's own words (hosts, users) go to the log, not to an
                // unauthenticated probe.
                tracing::warn!(error = %e, "readiness: the database does not answer");
                return not_ready("store_unreachable", "the database does not answer".into());
            }
            Ok(Ok(())) => {}
        }
    }
    // Budgeted requests are refused while a Redis ledger does not answer.
    if let Some(ledger) = gw.budgets.get() {
        match tokio::time::timeout(Duration::from_secs(2), ledger.ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the budget ledger does not answer");
                return not_ready(
                    "budget_ledger_unreachable",
                    "the budget ledger does not answer".into(),
                );
            }
            Err(_) => {
                return not_ready(
                    "budget_ledger_unreachable",
                    "the budget ledger did not answer within 2 s".into(),
                );
            }
        }
    }
    // Retrieval-enabled requests fail while their store cannot serve.
    for (id, retriever) in gw.pipelines().retrievers() {
        match tokio::time::timeout(Duration::from_secs(2), retriever.ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, retriever = %id, "readiness: a retriever cannot serve");
                return not_ready(
                    "retriever_unavailable",
                    format!("retriever `{id}` cannot serve"),
                );
            }
            Err(_) => {
                return not_ready(
                    "retriever_unavailable",
                    format!("retriever `{id}` did not answer within 2 s"),
                );
            }
        }
    }
    Json(serde_json::json!({
        "status": "ready",
        "store": if gw.store.is_some() { "ok" } else { "none" },
    }))
    .into_response()
}
