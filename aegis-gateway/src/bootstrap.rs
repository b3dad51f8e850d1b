//! Gateway start-up: the typed `[server]` section, the config to run, the plugin registry,
//! and [`serve`] — store, pipelines, first admin key, reloads, recovery of stranded resumes,
//! graceful shutdown.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use aegis::{CheckpointStore, Error, config::AegisConfig};
use serde::Deserialize;
use serde_json::Value;

use crate::server::{self, EventFeed, Gateway, Limits};

/// `println!` that ignores a closed stdout (`aegis scan | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{}\n", format_args!($($arg)*)));
    }};
}

/// The `[server]` section of a config, typed: what `aegis serve` listens on, where it keeps
/// runs, keys and the audit log, and the limits that protect it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Listen address (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `Host` values `/mcp` accepts besides loopback (`aegis.example.com`,
    /// `aegis.example.com:8443`): MCP's DNS-rebinding protection refuses any other.
    #[serde(default)]
    pub mcp_allowed_hosts: Vec<String>,
    /// `sqlite://FILE` (default `sqlite://aegis.db`) or `postgres://...`.
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
    /// How often this replica releases budget reservations whose lease expired (a crashed
    /// replica's), in milliseconds (default 30000).
    #[serde(default = "default_reap_ms")]
    pub budget_reap_interval_ms: u64,
    /// A Redis for the budget ledger's hot counters: `redis://host:6379/0`, `rediss://…`
    /// for TLS, or a reference (`secret://env/AEGIS_BUDGET_REDIS_URL`) when the URL holds a
    /// password. Admission and settlement then cost a Redis script each instead of a
    /// database commit; the database stays the durable ledger, written in batches every
    /// `budget_flush_interval_ms`. Every replica must name the same Redis.
    #[serde(default)]
    pub budget_redis_url: Option<String>,
    /// The prefix of the ledger's Redis keys (default `aegis:{budget}:`): deployments that
    /// share one Redis need one each. Keep a `{…}` hash tag in it on a Redis Cluster.
    #[serde(default = "default_redis_prefix")]
    pub budget_redis_prefix: String,
    /// How often settled spend moves from Redis to the database, in milliseconds (default
    /// 100; with `budget_redis_url`).
    #[serde(default = "default_flush_ms")]
    pub budget_flush_interval_ms: u64,
    /// Delete runs (checkpoints, interrupts, decisions) this long after they ended: `30d`,
    /// `12h`, … (default: keep them). Checked every `run_retention_sweep_ms`.
    #[serde(default, deserialize_with = "age")]
    pub run_retention: Option<Duration>,
    /// How often the retention sweep runs, in milliseconds (default 3600000, an hour).
    #[serde(default = "default_sweep_ms")]
    pub run_retention_sweep_ms: u64,
    /// Separation of duties (default `true`): the principal who started a run may not
    /// approve, reject or edit it; another approver (or admin) of its team decides.
    #[serde(default = "yes")]
    pub four_eyes: bool,
    /// The audit chain's key, as a reference (`secret://env/AEGIS_AUDIT_KEY`): records are
    /// then linked with HMAC-SHA256, so rows rewritten without the key do not verify.
    #[serde(default)]
    pub audit_key: Option<String>,
    /// With `audit_key` on a log begun without one: the head seq + 1 when the key was
    /// adopted (records below it may be unkeyed). Default 1: every record must be keyed.
    #[serde(default = "one")]
    pub audit_unkeyed_before: u64,
    /// `best_effort` (default): the audit log never holds up a request; if its queue
    /// overflows or the database fails, the loss is itself recorded (`audit.dropped`).
    /// `required`: no event is dropped, and a run's answer is withheld until its audit
    /// records are stored — a request whose records cannot be written within
    /// `audit_required_wait_ms` fails with `audit_unavailable`.
    #[serde(default)]
    pub audit: AuditMode,
    /// How long a request waits for its audit records with `audit = "required"`, in
    /// milliseconds (default 5000).
    #[serde(default = "default_audit_wait_ms")]
    pub audit_required_wait_ms: u64,
}

/// Whether the audit log may hold up requests (see [`ServerConfig::audit`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditMode {
    /// Never holds up a request; losses are recorded.
    #[default]
    BestEffort,
    /// Fails a request closed when its audit records cannot be stored.
    Required,
}

fn default_audit_wait_ms() -> u64 {
    5_000
}

fn one() -> u64 {
    1
}

fn yes() -> bool {
    true
}

fn age<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| {
        crate::server::retention::parse_age(&t).map_err(|e| serde::de::Error::custom(e.message()))
    })
    .transpose()
}

fn default_sweep_ms() -> u64 {
    3_600_000
}

fn default_reap_ms() -> u64 {
    30_000
}

fn default_flush_ms() -> u64 {
    100
}

fn default_redis_prefix() -> String {
    aegis_store::redis_ledger::DEFAULT_PREFIX.to_owned()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_database_url() -> String {
    "sqlite://aegis.db".into()
}

impl ServerConfig {
    /// The `[server]` section of `config`; a problem names its path (`server.limits.max_body_bytes: ...`).
    pub fn from_config(config: &AegisConfig) -> Result<Self, Error> {
        serde_path_to_error::deserialize(Value::Object(config.server.clone())).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                "server".to_owned()
            } else {
                format!("server.{path}")
            };
            Error::config(format!("{at}: {}", e.into_inner()))
        })
    }
}

/// The configuration `aegis serve` runs with no file: the offline echo provider, virtual
/// keys, PII, secrets and invisible-text guards.
pub const DEFAULT_CONFIG: &str = r#"
[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "virtual_keys"

# Normalizers first: the detectors after it pass on text without hidden characters.
[[guardrails]]
id = "invisible"
type = "invisible_text"
config = { action = "strip" }

# Secrets before PII: a credential is reported (and redacted) as what it is, not masked
# as an e-mail address or URL first.
[[guardrails]]
id = "secrets"
type = "secrets"
config = { action = "redact" }

[[guardrails]]
id = "pii"
type = "pii"
"#;

/// The config to run: the given file, ./aegis.toml, or the built-in defaults.
pub fn load_config(path: Option<&Path>) -> Result<(AegisConfig, String), Error> {
    match path {
        Some(p) => Ok((AegisConfig::load(p)?, p.display().to_string())),
        None if Path::new("aegis.toml").exists() => {
            Ok((AegisConfig::load("aegis.toml")?, "aegis.toml".into()))
        }
        None => Ok((
            AegisConfig::from_toml_str(DEFAULT_CONFIG, std::env::vars())?,
            "built-in defaults".into(),
        )),
    }
}

/// Every plugin type, with `virtual_keys` backed by `store` (an in-memory database when
/// only validating) and budgets spending through it.
pub async fn registry_for(store: Option<&aegis_store::Store>) -> Result<aegis::Registry, Error> {
    registry_with(store, None).await
}

/// [`registry_for`] with budgets spending through `ledger` (the store when `None`).
pub async fn registry_with(
    store: Option<&aegis_store::Store>,
    ledger: Option<Arc<dyn aegis::BudgetLedger>>,
) -> Result<aegis::Registry, Error> {
    let store = match store {
        Some(s) => s.clone(),
        None => aegis_store::Store::connect("sqlite::memory:").await?,
    };
    let mut r = crate::static_keys::registry();
    // Budgets spend through one ledger shared by every replica: the database, or Redis
    // in front of it.
    r.insert_extension(ledger.unwrap_or_else(|| Arc::new(store.clone())));
    // Approvals pending are counted in the database, across replicas and restarts.
    r.insert_extension(crate::metrics::PausedRuns(store.clone()));
    aegis_store::keys::register(&mut r, store);
    Ok(r)
}

/// Logs to stderr, filtered by `AEGIS_LOG` (default `info`); one JSON object per line
/// with `AEGIS_LOG_FORMAT=json` (for a log pipeline), plain text otherwise. No log line
/// carries a prompt, an answer, a credential or a secret (tested).
///
/// Logs are events only: spans (a run, its guards and provider calls) go to the trace
/// exporter when one is configured (`[[telemetry]] type = "otlp"`), and cost nothing when
/// none is. Guard verdicts, which are span events, are not log lines.
fn init_logging(otlp: Option<&crate::traces::OtlpConfig>) -> Result<(), Error> {
    use tracing_subscriber::{Layer as _, filter::FilterExt as _, layer::SubscriberExt as _};
    let filter = || {
        let f = tracing_subscriber::EnvFilter::try_from_env("AEGIS_LOG")
            .unwrap_or_else(|_| "info".into());
        match "aegis::verdict=off".parse() {
            Ok(d) => f.add_directive(d),
            Err(_) => f,
        }
    };
    let events = || tracing_subscriber::filter::filter_fn(|m| m.is_event());
    let json = std::env::var("AEGIS_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let plain = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter().and(events()))
    });
    let as_json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter().and(events()))
    });
    let traces = otlp.map(crate::traces::layer).transpose()?;
    let subscriber = tracing_subscriber::Registry::default()
        .with(traces)
        .with(plain)
        .with(as_json);
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

/// `aegis mcp serve`: Aegis as an MCP server over stdin/stdout, for MCP clients that launch
/// their servers. The caller is the holder of `key` (authenticated like any request, so
/// access rules and budgets apply to it); runs, pins and the audit log live in the
/// config's database, as with `aegis serve`. Nothing but the protocol is written to stdout.
pub async fn mcp_stdio(config: Option<PathBuf>, key: Option<String>) -> Result<(), Error> {
    let (cfg, _) = load_config(config.as_deref())?;
    let server_config = ServerConfig::from_config(&cfg)?;
    let db = aegis_store::Store::connect(&server_config.database_url).await?;
    let store: Arc<dyn CheckpointStore> = Arc::new(db.clone());
    let (audit, _audit_task) = aegis_store::AuditWriter::spawn(db.clone());
    let registry = registry_with(Some(&db), None).await?;
    let pipelines =
        aegis::PipelineSet::from_config_with(&registry, &cfg, Some(store), vec![Arc::new(audit)])
            .await?;
    let pipeline = pipelines.main().clone();
    let mut ctx = aegis::RequestContext::default();
    if let Some(k) = key {
        let mut credentials = aegis::Credentials::default();
        credentials.bearer = Some(aegis::Secret::new(k));
        ctx.credentials = Some(credentials);
    }
    ctx.principal = pipeline.authenticate(&ctx).await?;
    ctx.credentials = None;
    let hub = crate::server::mcp::hub_from_config(
        &cfg,
        &aegis::registry(),
        pipeline.chain().clone(),
        Arc::new(crate::server::mcp::StorePins(db.clone())),
        Some(Arc::new(crate::server::mcp::AuditCalls(db.clone()))),
        Arc::new(crate::server::mcp::StoreApprovals(db.clone())),
    )
    .await?;
    let served = aegis_mcp::AegisMcpServer::new(hub.clone(), Some(pipeline)).with_caller(ctx);
    let result = served.serve_stdio().await;
    hub.close().await;
    result
}

/// The ids of the config's `[[mcp_servers]]`.
fn mcp_servers_of(cfg: &aegis::config::AegisConfig) -> Vec<String> {
    cfg.mcp_servers
        .iter()
        .filter_map(|s| s.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .collect()
}

/// `aegis serve`: runs the gateway until SIGINT / SIGTERM.
pub async fn serve(config: Option<PathBuf>, listen: Option<SocketAddr>) -> Result<(), Error> {
    let (cfg, source) = load_config(config.as_deref())?;
    init_logging(crate::traces::config_of(&cfg)?.as_ref())?;
    let feed = EventFeed::default();
    let server_config = ServerConfig::from_config(&cfg)?;
    // Runs, keys and the audit log: SQLite in the working directory unless configured.
    let db_url = server_config.database_url.clone();
    // SQLite has one writer: two connections (a writer and a reader) serve a gateway, and each
    // connection is an OS thread with its own allocator arena — fewer keep idle memory low.
    let mut options =
        aegis_store::StoreOptions::new(db_url.clone()).four_eyes(server_config.four_eyes);
    if let Some(reference) = &server_config.audit_key {
        let key = aegis::registry()
            .resolve_secret("server.audit_key", reference)
            .await?;
        options = options
            .audit_key(key)
            .audit_unkeyed_before(server_config.audit_unkeyed_before);
    }
    if db_url.starts_with("sqlite:") {
        options = options.max_connections(2);
    }
    let db = aegis_store::Store::connect_with(options).await?;
    let mut audit_config = aegis_store::AuditWriterConfig::default();
    audit_config.required = server_config.audit == AuditMode::Required;
    audit_config.required_wait_ms = server_config.audit_required_wait_ms;
    let (audit, _audit_task) = aegis_store::AuditWriter::spawn_with(db.clone(), audit_config);
    let redis_ledger = match &server_config.budget_redis_url {
        None => {
            refuse_a_mixed_fleet(&cfg, &db).await?;
            None
        }
        Some(url) => Some(budget_redis(url, &server_config.budget_redis_prefix, &db).await?),
    };
    let ledger: Arc<dyn aegis_store::BudgetAdmin> = match &redis_ledger {
        Some(r) => Arc::new(r.clone()),
        None => Arc::new(db.clone()),
    };
    let pipeline_ledger: Arc<dyn aegis::BudgetLedger> = match &redis_ledger {
        Some(r) => Arc::new(r.clone()),
        None => Arc::new(db.clone()),
    };
    // Runs outlive reloads: every rebuilt pipeline shares this store.
    let store: Arc<dyn CheckpointStore> = Arc::new(db.clone());
    let audit_on_exit = audit.clone();
    let sinks: Vec<Arc<dyn aegis::TelemetrySink>> = vec![Arc::new(feed.clone()), Arc::new(audit)];
    let pipelines = aegis::PipelineSet::from_config_with(
        &registry_with(Some(&db), Some(pipeline_ledger.clone())).await?,
        &cfg,
        Some(store.clone()),
        sinks.clone(),
    )
    .await?;
    check_retrievers(&pipelines).await?;
    let pipeline = pipelines.main().clone();
    let limits = server_config.limits.clone();
    let listen = listen.unwrap_or(server_config.listen);
    if source == "built-in defaults" {
        say!(
            "aegis: config from {source}; no provider configured, answering with the offline `echo` provider"
        );
    } else {
        say!(
            "aegis: config from {source}; providers: {}",
            pipeline.provider_ids().join(", ")
        );
    }
    let guards: Vec<&str> = pipeline.chain().entries().iter().map(|e| e.id()).collect();
    say!(
        "aegis: guards: {}",
        if guards.is_empty() {
            "none".to_owned()
        } else {
            guards.join(", ")
        }
    );
    if cfg.authenticators.is_empty() {
        say!(
            "aegis: WARNING no authenticator configured: anyone who can reach this port can use it"
        );
    } else if db.list_keys(None).await?.is_empty() {
        let admin = aegis::Principal::new("admin").with_role("admin");
        let created = db
            .create_key(
                aegis_store::NewKey::new(admin)
                    .name("first admin key")
                    .by("aegis serve"),
            )
            .await?;
        say!(
            "aegis: first admin key (shown once, store it now): {}",
            created.key.expose()
        );
    }
    say!("aegis: runs, keys and audit in {}", redact_url(&db_url));
    if pipelines.has_named() {
        say!("aegis: named pipelines: {}", pipelines.names().join(", "));
    }
    if !pipelines.retrievers().is_empty() {
        let ids: Vec<&str> = pipelines
            .retrievers()
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        say!("aegis: retrievers: {}", ids.join(", "));
    }
    let mcp_hub = crate::server::mcp::hub_from_config(
        &cfg,
        &aegis::registry(),
        pipeline.chain().clone(),
        Arc::new(crate::server::mcp::StorePins(db.clone())),
        Some(Arc::new(crate::server::mcp::AuditCalls(db.clone()))),
        Arc::new(crate::server::mcp::StoreApprovals(db.clone())),
    )
    .await?;
    if !mcp_hub.is_empty() {
        say!("aegis: MCP servers: {}", mcp_servers_of(&cfg).join(", "));
    }
    let gw = Gateway::with_store(pipelines, limits, feed, db.clone())
        .with_budgets(ledger.clone())
        .with_mcp(crate::server::mcp::McpEndpoint::new(
            mcp_hub,
            pipeline.clone(),
            &server_config.mcp_allowed_hosts,
        ));
    let flusher = redis_ledger.as_ref().map(|r| {
        r.spawn_flusher(Duration::from_millis(
            server_config.budget_flush_interval_ms.clamp(10, 60_000),
        ))
    });
    // Budget reservations of a crashed replica are released once their lease expires.
    {
        let ledger = ledger.clone();
        let reap_every = Duration::from_millis(server_config.budget_reap_interval_ms.max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(reap_every).await;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or_default();
                match ledger.reap(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(released = n, "reaped expired budget reservations"),
                    Err(e) => tracing::warn!(error = %e, "reaping budget reservations failed"),
                }
            }
        });
    }
    // Runs past their retention are deleted, now and then.
    if let Some(age) = server_config.run_retention {
        let db = db.clone();
        let every = Duration::from_millis(server_config.run_retention_sweep_ms.max(100));
        tokio::spawn(async move {
            loop {
                let cutoff = crate::server::retention::cutoff_ms(age);
                match db.purge_runs(cutoff, "aegis:retention").await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "purged runs past their retention"),
                    Err(e) => tracing::warn!(error = %e, "the retention sweep failed"),
                }
                tokio::time::sleep(every).await;
            }
        });
    }
    // Resumes stranded by a crashed replica are finished once their lease expires.
    let lease = std::time::Duration::from_millis(cfg.pipeline.resume_lease_ms);
    gw.spawn_recovery((lease / 2).clamp(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(60),
    ));

    let config_path = match (&config, source.as_str()) {
        (Some(p), _) => Some(p.clone()),
        (None, "aegis.toml") => Some(PathBuf::from("aegis.toml")),
        _ => None,
    };
    if let Some(path) = config_path {
        let (weak, store, sinks, path2, db2, ledger2) = (
            Arc::downgrade(&gw),
            store.clone(),
            sinks.clone(),
            path.clone(),
            db.clone(),
            pipeline_ledger.clone(),
        );
        gw.set_reloader(Arc::new(move || {
            let (weak, store, sinks, path, db, ledger) = (
                weak.clone(),
                store.clone(),
                sinks.clone(),
                path2.clone(),
                db2.clone(),
                ledger2.clone(),
            );
            Box::pin(async move {
                let cfg = AegisConfig::load(&path)?;
                let next = aegis::PipelineSet::from_config_with(
                    &registry_with(Some(&db), Some(ledger)).await?,
                    &cfg,
                    Some(store),
                    sinks,
                )
                .await?;
                check_retrievers(&next).await?;
                // The hub is rebuilt with the new guards and servers, or nothing changes.
                let hub = crate::server::mcp::hub_from_config(
                    &cfg,
                    &aegis::registry(),
                    next.main().chain().clone(),
                    Arc::new(crate::server::mcp::StorePins(db.clone())),
                    Some(Arc::new(crate::server::mcp::AuditCalls(db.clone()))),
                    Arc::new(crate::server::mcp::StoreApprovals(db.clone())),
                )
                .await?;
                if let Some(gw) = weak.upgrade() {
                    if let Some(endpoint) = gw.mcp() {
                        endpoint.replace(hub, next.main().clone(), gw.request_timeout());
                    }
                    gw.replace_pipeline(next);
                }
                Ok(())
            })
        }));
        tokio::spawn(watch_and_reload(gw.clone(), path));
    }

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::config(format!("cannot listen on {listen}: {e}")))?;
    say!(
        "aegis: listening on http://{}",
        listener
            .local_addr()
            .map_err(|e| Error::internal(e.to_string()))?
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let served = server::serve(listener, gw, shutdown()).await;
    // Graceful shutdown: in-flight requests have finished; their audit records are written
    // before the process exits.
    if !audit_on_exit.flush().await {
        tracing::error!("the audit writer had stopped; events queued at shutdown are lost");
    }
    // The settled spend still in Redis goes to the database.
    if let (Some(r), Some(flusher)) = (&redis_ledger, flusher) {
        flusher.stop().await;
        if let Err(e) = r.drain(Duration::from_secs(10)).await {
            tracing::warn!(error = %e, "the budget journal was not drained at shutdown; the next flusher applies it");
        }
    }
    // And the spans of those requests are sent.
    let _ = tokio::task::spawn_blocking(crate::traces::shutdown).await;
    served
}

/// Refuses to count budgets in the database when replicas on it count them in Redis: the
/// two would each admit up to the limit.
async fn refuse_a_mixed_fleet(cfg: &AegisConfig, db: &aegis_store::Store) -> Result<(), Error> {
    if !cfg.policies.iter().any(|p| p.kind == "budgets") {
        return Ok(());
    }
    match db.setting(aegis_store::BUDGET_LEDGER_SETTING).await? {
        Some(ledger) if ledger.starts_with("redis:") => Err(Error::config(format!(
            "server.budget_redis_url: this database's budgets are counted in Redis ({ledger}, set by a replica with budget_redis_url): set the same budget_redis_url here, or, to return to the database ledger, stop every replica, drain the journal and run `DELETE FROM aegis_settings WHERE key = '{}'`",
            aegis_store::BUDGET_LEDGER_SETTING
        ))),
        _ => Ok(()),
    }
}

/// The Redis budget ledger of `[server] budget_redis_url` (a URL or a secret reference),
/// settling into `db`.
async fn budget_redis(
    url: &str,
    prefix: &str,
    db: &aegis_store::Store,
) -> Result<aegis_store::RedisLedger, Error> {
    let resolved;
    let url = if url.starts_with("secret://") {
        resolved = aegis::registry()
            .resolve_secret("server.budget_redis_url", url)
            .await?;
        resolved.expose()
    } else {
        url
    };
    if prefix.is_empty() {
        return Err(Error::config(
            "server.budget_redis_prefix: must not be empty",
        ));
    }
    let ledger = aegis_store::RedisLedger::connect_with_prefix(url, db.clone(), prefix)
        .await
        .map_err(|e| Error::config(format!("server.budget_redis_url: {}", e.message())))?;
    // Scheme, host and port only: a password may sit in the user part or the query.
    let shown = reqwest::Url::parse(url).map_or_else(
        |_| "(unparsable URL)".to_owned(),
        |u| {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            )
        },
    );
    say!("aegis: budget counters in redis {shown}");
    Ok(ledger)
}

/// Reloads on SIGHUP and when the config file changes (polled every two seconds). A bad
/// config is reported and the running pipeline kept.
async fn watch_and_reload(gw: Arc<Gateway>, path: PathBuf) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last = modified(&path);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hup_fired = async {
            match hup.as_mut() {
                Some(s) => s.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup_fired = std::future::pending::<bool>();
        let reason = tokio::select! {
            _ = hup_fired => "SIGHUP",
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                let now = modified(&path);
                if now == last { continue; }
                last = now;
                "config file changed"
            }
        };
        match gw.reload().await {
            Ok(()) => tracing::info!(reason, "pipeline reloaded"),
            Err(e) => {
                tracing::error!(reason, error = %e, "reload failed; keeping the running pipeline")
            }
        }
    }
}

/// A database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down; finishing in-flight requests");
}

/// Opens every retriever of `pipelines` (a SQLite store's file, its schema and dimensions):
/// a store that cannot serve stops the gateway from starting, or a reload from taking
/// effect, with its id — not the first request that retrieves.
async fn check_retrievers(pipelines: &aegis::PipelineSet) -> Result<(), Error> {
    for (id, retriever) in pipelines.retrievers() {
        retriever
            .ready()
            .await
            .map_err(|e| Error::new(e.kind(), format!("retrievers `{id}`: {}", e.message())))?;
    }
    Ok(())
}
