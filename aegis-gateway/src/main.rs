//! The `aegis` command: serve the gateway, chat, scan text, manage runs, check config.

use std::{
    io::{IsTerminal, Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use aegis::{CheckpointStore, Error, ErrorKind, Pipeline, config::AegisConfig};
use aegis_gateway::{
    scan::{self, ScanStage},
    server::{self, EventFeed, Gateway, Limits},
};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

/// `println!` that ignores a closed stdout (`aegis scan | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "aegis",
    version,
    about = "A governed LLM pipeline: gateway, scanner and run control."
)]
struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible gateway.
    Serve {
        /// Config file (default: ./aegis.toml if present, else built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address (default: [server].listen or 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Send a prompt to a running gateway (interactive when no prompt is given).
    Chat {
        /// The prompt.
        prompt: Vec<String>,
        /// Model or alias (e.g. `openai/gpt-4o-mini`).
        #[arg(long, short, default_value = "echo")]
        model: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run guardrails over text from stdin or a file and print the verdict as JSON.
    /// Exit code: 0 allow/sanitize, 2 block, 3 approval required, 1 error.
    Scan {
        /// Config file whose guardrails form the chain.
        #[arg(long, short, conflicts_with = "pack")]
        config: Option<PathBuf>,
        /// Built-in packs, comma-separated: pii, secrets, injection, invisible, urls
        /// (default: pii,secrets,injection,invisible).
        #[arg(long, value_delimiter = ',')]
        pack: Option<Vec<String>>,
        /// The stage the text is judged as.
        #[arg(long, value_enum, default_value = "input")]
        stage: ScanStage,
        /// Read the text from this file instead of stdin.
        #[arg(long, short)]
        file: Option<PathBuf>,
    },
    /// Inspect and decide on runs of a running gateway.
    Runs {
        #[command(subcommand)]
        action: RunsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Manage virtual API keys of a running gateway (admin key required).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check or describe configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Show the request lifecycle graph.
    Graph {
        #[command(subcommand)]
        action: GraphAction,
    },
    /// List the models a running gateway serves.
    Models {
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(clap::Args)]
struct Remote {
    /// Gateway URL.
    #[arg(
        long,
        env = "AEGIS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API key.
    #[arg(long, env = "AEGIS_API_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key for a principal; the key is printed once.
    Create {
        /// Principal id.
        principal: String,
        /// Team.
        #[arg(long)]
        team: Option<String>,
        /// Roles (repeatable): admin, approver.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A label for the key (`laptop`, `ci`).
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key; effective immediately.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum RunsAction {
    /// List the runs you may see, newest first.
    List {
        /// Only runs in this status (running, paused, completed, failed, rejected).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a run.
    Show { id: String },
    /// Approve a paused run; it resumes (alias: `resume`).
    #[command(alias = "resume")]
    Approve { id: String },
    /// Reject a paused run; it ends.
    Reject {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resume a paused run with an edited value (JSON matching the interrupt's edit schema).
    Edit { id: String, value: String },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Check a config file; every problem is reported with its path.
    Validate { path: PathBuf },
    /// Print the JSON Schema of config files (for editor completion).
    Schema,
}

#[derive(Subcommand)]
enum GraphAction {
    /// Print the lifecycle graph of a config.
    Show {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Mermaid flowchart (default: a list of nodes and edges).
        #[arg(long)]
        mermaid: bool,
    },
}

/// The built-in configuration of `aegis serve` with no config file: the offline echo provider
/// and the PII, secrets and invisible-text guards.
const DEFAULT_CONFIG: &str = r#"
[[providers]]
id = "echo"
type = "echo"

[[authenticators]]
id = "keys"
type = "virtual_keys"

[[guardrails]]
id = "pii"
type = "pii"

[[guardrails]]
id = "secrets"
type = "secrets"
config = { action = "redact" }

[[guardrails]]
id = "invisible"
type = "invisible_text"
config = { action = "strip" }
"#;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.json;
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if json {
                say!("{}", server::body_of(&e));
            } else {
                eprintln!("{} {}", paint("error:", "31"), e.message());
                if let Some(hint) = hint(&e) {
                    eprintln!("{} {hint}", paint("hint:", "33"));
                }
            }
            ExitCode::from(1)
        }
    }
}

fn paint(text: &str, color: &str) -> String {
    if std::io::stderr().is_terminal() {
        format!("\x1b[{color}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn hint(e: &Error) -> Option<&'static str> {
    match e.kind() {
        ErrorKind::Unauthenticated => Some("pass --key or set AEGIS_API_KEY"),
        ErrorKind::Config => Some(
            "`aegis config validate <file>` lists every problem; `aegis config schema` prints the schema",
        ),
        ErrorKind::Provider if e.message().contains("connect") => {
            Some("is the gateway running? start it with `aegis serve`")
        }
        ErrorKind::NotFound => {
            Some("check the id; runs are visible only to their owner and reviewers")
        }
        _ => None,
    }
}

async fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Serve { config, listen } => serve(config, listen).await.map(|()| 0),
        Command::Scan {
            config,
            pack,
            stage,
            file,
        } => {
            let text = read_input(file.as_deref())?;
            let chain = match config {
                Some(path) => {
                    let cfg = AegisConfig::load(&path)?;
                    aegis::guard::GuardChain::new(
                        registry_for(None).await?.build(&cfg).await?.guards,
                    )
                }
                None => {
                    let default = ["pii", "secrets", "injection", "invisible"]
                        .map(String::from)
                        .to_vec();
                    scan::chain_of_packs(&pack.unwrap_or(default))?
                }
            };
            let report = scan::scan(&chain, stage, text).await;
            let out = serde_json::to_string_pretty(&report)
                .map_err(|e| Error::internal(e.to_string()))?;
            say!("{out}");
            Ok(report.exit_code() as u8)
        }
        Command::Config {
            action: ConfigAction::Schema,
        } => {
            say!(
                "{}",
                serde_json::to_string_pretty(&registry_for(None).await?.config_schema())
                    .unwrap_or_default()
            );
            Ok(0)
        }
        Command::Config {
            action: ConfigAction::Validate { path },
        } => {
            let cfg = AegisConfig::load(&path)?;
            let registry = registry_for(None).await?;
            let mut problems = registry.validate(&cfg).await;
            // What only assembling the pipelines finds: routing (alias targets, the default
            // provider), named pipelines, hold-back negotiation.
            if problems.is_empty()
                && let Err(e) =
                    aegis::PipelineSet::from_config_with(&registry, &cfg, None, Vec::new()).await
            {
                problems.extend(e.message().lines().map(str::to_owned));
            }
            if cli.json {
                say!(
                    "{}",
                    json!({"valid": problems.is_empty(), "problems": problems})
                );
            } else if problems.is_empty() {
                say!("{} {}", paint("ok:", "32"), path.display());
            } else {
                for p in &problems {
                    eprintln!("{} {p}", paint("error:", "31"));
                }
            }
            Ok(if problems.is_empty() { 0 } else { 1 })
        }
        Command::Graph {
            action: GraphAction::Show { config, mermaid },
        } => {
            let pipeline = build_pipeline(config.as_deref(), Vec::new()).await?.0;
            if mermaid || !cli.json {
                say!("{}", pipeline.graph().to_mermaid());
            } else {
                say!("{}", json!({"mermaid": pipeline.graph().to_mermaid()}));
            }
            Ok(0)
        }
        Command::Models { remote } => {
            let v = request(&remote, reqwest::Method::GET, "/v1/models", None).await?;
            if cli.json {
                say!("{v}");
            } else {
                for m in v["data"].as_array().into_iter().flatten() {
                    say!(
                        "{}  ({})",
                        m["id"].as_str().unwrap_or_default(),
                        m["owned_by"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        Command::Chat {
            prompt,
            model,
            remote,
        } => chat(&remote, &model, prompt, cli.json).await,
        Command::Keys { action, remote } => {
            let v = match &action {
                KeysAction::Create {
                    principal,
                    team,
                    roles,
                    name,
                } => {
                    let body = json!({"principal": {"id": principal, "team": team, "roles": roles}, "name": name});
                    request(&remote, reqwest::Method::POST, "/v1/admin/keys", Some(body)).await?
                }
                KeysAction::List => {
                    request(&remote, reqwest::Method::GET, "/v1/admin/keys", None).await?
                }
                KeysAction::Revoke { id } => {
                    request(
                        &remote,
                        reqwest::Method::POST,
                        &format!("/v1/admin/keys/{id}/revoke"),
                        None,
                    )
                    .await?
                }
            };
            if cli.json {
                say!("{v}");
            } else if let Some(key) = v["key"].as_str() {
                say!("{}", key);
                eprintln!(
                    "{} shown once: store it now (id {})",
                    paint("note:", "33"),
                    v["info"]["id"].as_str().unwrap_or("?")
                );
            } else if let Some(keys) = v["data"].as_array() {
                for k in keys {
                    let state = if k["revoked_at_ms"].is_null() {
                        "active"
                    } else {
                        "revoked"
                    };
                    say!(
                        "{}  {}…  {}  {}  {}",
                        k["id"].as_str().unwrap_or(""),
                        k["prefix"].as_str().unwrap_or(""),
                        k["principal_id"].as_str().unwrap_or(""),
                        k["name"].as_str().unwrap_or(""),
                        state
                    );
                }
            } else {
                say!("revoked {}", v["info"]["id"].as_str().unwrap_or("?"));
            }
            Ok(0)
        }
        Command::Runs {
            action: RunsAction::List { status, limit },
            remote,
        } => {
            let mut path = format!("/v1/runs?limit={limit}");
            if let Some(s) = status {
                path.push_str(&format!("&status={s}"));
            }
            let v = request(&remote, reqwest::Method::GET, &path, None).await?;
            if cli.json {
                say!("{v}");
            } else {
                for r in v["data"].as_array().into_iter().flatten() {
                    say!(
                        "{}  {:<10} {}  {}",
                        r["run_id"].as_str().unwrap_or(""),
                        r["status"].as_str().unwrap_or(""),
                        r["principal"].as_str().unwrap_or("-"),
                        r["graph"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(0)
        }
        Command::Runs { action, remote } => {
            let (method, path, body) = match &action {
                // Listing has its own arm above; this keeps the match total without a panic.
                RunsAction::List { .. } => (reqwest::Method::GET, "/v1/runs".to_owned(), None),
                RunsAction::Show { id } => (reqwest::Method::GET, format!("/v1/runs/{id}"), None),
                RunsAction::Approve { id } => (
                    reqwest::Method::POST,
                    format!("/v1/runs/{id}/approve"),
                    None,
                ),
                RunsAction::Reject { id, reason } => (
                    reqwest::Method::POST,
                    format!("/v1/runs/{id}/reject"),
                    Some(json!({"reason": reason})),
                ),
                RunsAction::Edit { id, value } => {
                    let value: Value = serde_json::from_str(value).map_err(|e| {
                        Error::invalid_request(format!("the edit value is not JSON: {e}"))
                    })?;
                    (
                        reqwest::Method::POST,
                        format!("/v1/runs/{id}/edit"),
                        Some(json!({"value": value})),
                    )
                }
            };
            let v = request(&remote, method, &path, body).await?;
            if cli.json {
                say!("{v}");
            } else {
                say!(
                    "run {}: {}",
                    v["id"].as_str().unwrap_or_default(),
                    paint(v["status"].as_str().unwrap_or("?"), "36")
                );
                if let Some(reason) = v["interrupt"]["reason"].as_str() {
                    say!("  waiting for: {reason}");
                }
                if let Some(text) = v["output"]["choices"][0]["message"]["content"].as_str() {
                    say!("  answer: {text}");
                }
            }
            Ok(0)
        }
    }
}

fn read_input(file: Option<&Path>) -> Result<String, Error> {
    let bytes = match file {
        Some(p) => std::fs::read(p)
            .map_err(|e| Error::invalid_request(format!("cannot read {}: {e}", p.display())))?,
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Error::invalid_request(format!("cannot read stdin: {e}")))?;
            buf
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        Error::invalid_request(format!(
            "the input is not valid UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The config to run: the given file, ./aegis.toml, or the built-in defaults.
fn load_config(path: Option<&Path>) -> Result<(AegisConfig, String), Error> {
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
/// only validating).
async fn registry_for(store: Option<&aegis_store::Store>) -> Result<aegis::Registry, Error> {
    let store = match store {
        Some(s) => s.clone(),
        None => aegis_store::Store::connect("sqlite::memory:").await?,
    };
    let mut r = aegis_gateway::static_keys::registry();
    aegis_store::keys::register(&mut r, store);
    Ok(r)
}

async fn build_pipeline(
    path: Option<&Path>,
    sinks: Vec<std::sync::Arc<dyn aegis::TelemetrySink>>,
) -> Result<(Pipeline, AegisConfig, String), Error> {
    let (cfg, source) = load_config(path)?;
    let pipeline =
        Pipeline::from_config_with(&registry_for(None).await?, &cfg, None, sinks).await?;
    Ok((pipeline, cfg, source))
}

async fn serve(config: Option<PathBuf>, listen: Option<SocketAddr>) -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AEGIS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let feed = EventFeed::default();
    let (cfg, source) = load_config(config.as_deref())?;
    // Runs, keys and the audit log: SQLite in the working directory unless configured.
    let db_url = cfg
        .server
        .get("database_url")
        .and_then(Value::as_str)
        .unwrap_or("sqlite://aegis.db")
        .to_owned();
    // SQLite has one writer: two connections (a writer and a reader) serve a gateway, and each
    // connection is an OS thread with its own allocator arena — fewer keep idle memory low.
    let mut options = aegis_store::StoreOptions::new(db_url.clone());
    if db_url.starts_with("sqlite:") {
        options = options.max_connections(2);
    }
    let db = aegis_store::Store::connect_with(options).await?;
    let (audit, _audit_task) = aegis_store::AuditWriter::spawn(db.clone());
    // Runs outlive reloads: every rebuilt pipeline shares this store.
    let store: Arc<dyn CheckpointStore> = Arc::new(db.clone());
    let sinks: Vec<Arc<dyn aegis::TelemetrySink>> = vec![Arc::new(feed.clone()), Arc::new(audit)];
    let pipelines = aegis::PipelineSet::from_config_with(
        &registry_for(Some(&db)).await?,
        &cfg,
        Some(store.clone()),
        sinks.clone(),
    )
    .await?;
    let pipeline = pipelines.main().clone();
    let limits: Limits = serde_json::from_value(
        cfg.server
            .get("limits")
            .cloned()
            .unwrap_or_else(|| json!({})),
    )
    .map_err(|e| Error::config(format!("server.limits: {e}")))?;
    let listen = match listen {
        Some(l) => l,
        None => cfg
            .server
            .get("listen")
            .and_then(Value::as_str)
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|e| Error::config(format!("server.listen: {e}")))?,
    };
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
    let gw = Gateway::with_store(pipelines, limits, feed, db.clone());
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
        let (weak, store, sinks, path2, db2) = (
            Arc::downgrade(&gw),
            store.clone(),
            sinks.clone(),
            path.clone(),
            db.clone(),
        );
        gw.set_reloader(Arc::new(move || {
            let (weak, store, sinks, path, db) = (
                weak.clone(),
                store.clone(),
                sinks.clone(),
                path2.clone(),
                db2.clone(),
            );
            Box::pin(async move {
                let cfg = AegisConfig::load(&path)?;
                let next = aegis::PipelineSet::from_config_with(
                    &registry_for(Some(&db)).await?,
                    &cfg,
                    Some(store),
                    sinks,
                )
                .await?;
                if let Some(gw) = weak.upgrade() {
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
    let _ = std::io::stdout().flush();
    server::serve(listener, gw, shutdown()).await
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
    eprintln!("aegis: shutting down; finishing in-flight requests");
}

async fn request(
    remote: &Remote,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Error> {
    let client = reqwest::Client::new();
    let mut req = client.request(
        method,
        format!("{}{path}", remote.url.trim_end_matches('/')),
    );
    if let Some(key) = &remote.key {
        req = req.bearer_auth(key);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    // Progress on a terminal while the gateway works (a governed call can take a while).
    let spinner = std::io::stderr().is_terminal().then(|| {
        tokio::spawn(async {
            let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            tokio::time::sleep(Duration::from_millis(300)).await;
            for f in frames.iter().cycle() {
                eprint!("\r{f} waiting for the gateway…");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let sent = req.send().await;
    if let Some(s) = spinner {
        s.abort();
        eprint!("\r\x1b[2K");
    }
    let resp =
        sent.map_err(|e| Error::provider(format!("cannot connect to {}: {e}", remote.url)))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(v);
    }
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or("request failed")
        .to_owned();
    let kind = match status.as_u16() {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        400 if v["error"]["code"] == "policy_blocked" => ErrorKind::PolicyBlocked,
        400 | 413 | 422 => ErrorKind::InvalidRequest,
        _ => ErrorKind::Provider,
    };
    Err(Error::new(kind, format!("{message} (HTTP {status})")))
}

async fn chat(
    remote: &Remote,
    model: &str,
    prompt: Vec<String>,
    json_out: bool,
) -> Result<u8, Error> {
    let one = |text: String| {
        let model = model.to_owned();
        async move {
            let body = json!({"model": model, "messages": [{"role": "user", "content": text}]});
            let v = request(
                remote,
                reqwest::Method::POST,
                "/v1/chat/completions",
                Some(body),
            )
            .await?;
            if json_out {
                say!("{v}");
            } else if v["object"] == "aegis.run" {
                say!(
                    "{}",
                    paint(v["message"].as_str().unwrap_or("paused for approval"), "33")
                );
            } else {
                say!(
                    "{}",
                    v["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap_or_default()
                );
            }
            Ok::<(), Error>(())
        }
    };
    if !prompt.is_empty() {
        one(prompt.join(" ")).await?;
        return Ok(0);
    }
    let stdin = std::io::stdin();
    loop {
        eprint!("{} ", paint(">", "36"));
        let mut line = String::new();
        if stdin
            .read_line(&mut line)
            .map_err(|e| Error::internal(e.to_string()))?
            == 0
        {
            return Ok(0);
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Err(e) = one(line.to_owned()).await {
            eprintln!("{} {}", paint("error:", "31"), e.message());
        }
    }
}
