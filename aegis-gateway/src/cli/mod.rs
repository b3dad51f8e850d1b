//! The `aegis` command: serve the gateway, chat, scan text, manage runs, check config.

use std::{
    io::{IsTerminal, Write},
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
};

use aegis::{Error, ErrorKind, config::AegisConfig};
use aegis_gateway::{
    bootstrap::{load_config, registry_for, serve},
    scan::{self, ScanStage},
    server,
};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

/// `println!` that ignores a closed stdout (`aegis scan | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod input;
mod remote;

use input::{build_pipeline, read_input};
use remote::{chat, request};

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
    /// Apply the store's pending migrations to the database of `[server] database_url`, then
    /// exit (a deployment's one-shot migration step; `serve` also migrates on start).
    Migrate {
        /// Config file (default: ./aegis.toml if present, else built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the gateway at `--url` is ready (`/readyz` answers 200), 1 otherwise:
    /// a container health check that needs no other tool in the image.
    Health {
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
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
    /// MCP: serve Aegis over stdio, or review and approve the tool catalogs of a running
    /// gateway's `[[mcp_servers]]`.
    Mcp {
        #[command(subcommand)]
        action: McpAction,
    },
    /// Run guardrails over text from stdin or a file and print the verdict as JSON.
    /// Exit code: 0 allow/sanitize, 2 block, 3 approval required, 1 error.
    Scan {
        /// Config file whose guardrails form the chain.
        #[arg(long, short, conflicts_with = "pack")]
        config: Option<PathBuf>,
        /// Built-in packs, comma-separated: pii, secrets, injection, invisible, urls
        /// (default: invisible,secrets,pii,injection).
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
    /// Explain the effective policy of a caller: route, regions, budget lines, level rules.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Show or reset budget lines of a running gateway (admin key required).
    Budgets {
        #[command(subcommand)]
        action: BudgetsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Ingest files into a running gateway's RAG store, or delete from it (admin key
    /// required). Each file is a source: ingesting it again replaces all of its chunks.
    Rag {
        #[command(subcommand)]
        action: RagAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Verify the audit chain of a running gateway, or export its head (admin key required).
    /// `verify` exits 2 when the chain is broken.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
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
    /// Delete the runs that ended longer ago than an age (admin): `--older-than 30d`.
    Purge {
        /// `30d`, `12h`, `90m`, `45s`.
        #[arg(long)]
        older_than: String,
    },
}

#[derive(Subcommand)]
enum PolicyAction {
    /// What the config would apply to a request of this caller for this model.
    Explain {
        /// The config file (default: ./aegis.toml, else the built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The caller's principal id (a key's owner).
        #[arg(long)]
        principal: Option<String>,
        /// The caller's team.
        #[arg(long)]
        team: Option<String>,
        /// The caller's organisation.
        #[arg(long)]
        org: Option<String>,
        /// A label of the caller (`residency=eu`), repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The model asked for.
        #[arg(long)]
        model: String,
        /// A named pipeline (`[[pipelines]]`) instead of the main one.
        #[arg(long)]
        pipeline: Option<String>,
    },
}

#[derive(Subcommand)]
enum RagAction {
    /// Chunk and ingest files; every chunk passes the gateway's guards before it is indexed
    /// (all files or none). Who may read them: at least one of --public, --team, --principal.
    Ingest {
        /// The `[[retrievers]]` store.
        #[arg(long)]
        store: String,
        /// The files (each file's path, as given, is its source).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Readable by every authenticated caller.
        #[arg(long)]
        public: bool,
        /// Readable by the members of this team (repeatable).
        #[arg(long = "team")]
        teams: Vec<String>,
        /// Readable by this principal (repeatable).
        #[arg(long = "principal")]
        principals: Vec<String>,
        /// Only for readers of this organisation.
        #[arg(long)]
        org: Option<String>,
        /// A label readers must hold, `key=value` (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The longest chunk, in characters.
        #[arg(long, default_value_t = 1000)]
        max_chars: usize,
        /// Characters a chunk repeats of the previous one.
        #[arg(long, default_value_t = 100)]
        overlap: usize,
    },
    /// Delete every chunk of a source, or chunks by id.
    Delete {
        /// The `[[retrievers]]` store.
        #[arg(long)]
        store: String,
        /// The source (the path a file was ingested as).
        #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
        source: Option<String>,
        /// Chunk ids (`{source}#{n}`), repeatable.
        #[arg(long = "id")]
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BudgetsAction {
    /// What a line has spent, holds and has left.
    Show {
        /// `key:<principal>`, `team:<team>` or `org:<org>`.
        account: String,
        /// `day:YYYY-MM-DD`, `month:YYYY-MM` or `total`.
        period: String,
    },
    /// Zero a line's spend (reservations in flight stay held).
    Reset {
        /// `key:<principal>`, `team:<team>` or `org:<org>`.
        account: String,
        /// `day:YYYY-MM-DD`, `month:YYYY-MM` or `total`.
        period: String,
    },
    /// Set a line's limit over the configured one (`--usd 0` freezes it), or with
    /// `--clear` return it to the configured limit.
    Set {
        /// `key:<principal>`, `team:<team>` or `org:<org>`.
        account: String,
        /// `day:YYYY-MM-DD`, `month:YYYY-MM` or `total`.
        period: String,
        /// US dollars.
        #[arg(long)]
        usd: Option<f64>,
        /// Tokens.
        #[arg(long)]
        tokens: Option<u64>,
        /// Return the line to its configured limit.
        #[arg(long, conflicts_with_all = ["usd", "tokens"])]
        clear: bool,
    },
}

#[derive(Subcommand)]
enum McpAction {
    /// Serve Aegis as an MCP server over stdin/stdout: the governed chat as the `chat`
    /// tool and the config's `[[mcp_servers]]` tools, governed.
    Serve {
        /// Config file (default: ./aegis.toml if present, else built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The caller's virtual key, authenticated like any request (access rules,
        /// budgets and the audit log see its principal).
        #[arg(long, env = "AEGIS_API_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Tool-catalog pins of a running gateway's MCP servers (admin key required).
    Pins {
        #[command(subcommand)]
        action: PinsAction,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum PinsAction {
    /// Every server: served, quarantined (with the diff from its pinned catalog) or down.
    List,
    /// Approve the catalog a server serves now; `--hash` is the one `list` showed, so a
    /// catalog that changed again since is refused.
    Approve {
        /// The server's id.
        server: String,
        /// The catalog's hash (`sha256:…`), from `aegis mcp pins list`.
        #[arg(long)]
        hash: String,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Walk the chain; print the report and the first broken link.
    Verify,
    /// Print the chain's head (signed when the chain is keyed), to anchor elsewhere.
    Head,
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

/// Percent-encodes a query value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A scan is one short computation whose detectors build on their own threads: worker
    // threads would only compete with them for the cores.
    let mut builder = if matches!(cli.command, Command::Scan { .. }) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = match builder.enable_all().build() {
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

pub(super) fn paint(text: &str, color: &str) -> String {
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
        Command::Migrate { config } => {
            let (cfg, _) = load_config(config.as_deref())?;
            let server = aegis_gateway::bootstrap::ServerConfig::from_config(&cfg)?;
            let store = aegis_store::Store::connect(&server.database_url).await?;
            store.ready().await?;
            say!("aegis: the database is migrated");
            Ok(0)
        }
        Command::Health { url } => {
            let ready = reqwest::Client::new()
                .get(format!("{}/readyz", url.trim_end_matches('/')))
                .timeout(std::time::Duration::from_secs(3))
                .send()
                .await;
            match ready {
                Ok(r) if r.status().is_success() => Ok(0),
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    eprintln!("aegis: not ready ({status}): {body}");
                    Ok(1)
                }
                Err(e) => {
                    eprintln!("aegis: no answer from {url}: {e}");
                    Ok(1)
                }
            }
        }
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
                    let default = ["invisible", "secrets", "pii", "injection"]
                        .map(String::from)
                        .to_vec();
                    scan::chain_of_packs(&pack.unwrap_or(default))?
                }
            };
            let report = scan::scan(&chain, stage, text).await?;
            // The process ends here: tearing down the detectors' automata would cost a few
            // milliseconds of a call that is otherwise done.
            std::mem::forget(chain);
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
            let mut warnings = Vec::new();
            // What only assembling the pipelines finds: routing (alias targets, the default
            // provider), named pipelines, hold-back negotiation, guard order.
            if problems.is_empty() {
                match aegis::PipelineSet::from_config_with(&registry, &cfg, None, Vec::new()).await
                {
                    Ok(set) => warnings = set.warnings(),
                    Err(e) => problems.extend(e.message().lines().map(str::to_owned)),
                }
            }
            if cli.json {
                say!(
                    "{}",
                    json!({"valid": problems.is_empty(), "problems": problems, "warnings": warnings})
                );
            } else if problems.is_empty() {
                for w in &warnings {
                    eprintln!("{} {w}", paint("warning:", "33"));
                }
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
        Command::Policy {
            action:
                PolicyAction::Explain {
                    config,
                    principal,
                    team,
                    org,
                    labels,
                    model,
                    pipeline,
                },
        } => {
            let (cfg, _) = load_config(config.as_deref())?;
            let set = aegis::PipelineSet::from_config_with(
                &registry_for(None).await?,
                &cfg,
                None,
                Vec::new(),
            )
            .await?;
            let chosen = match &pipeline {
                Some(name) => set.get(name).ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, format!("no pipeline `{name}`"))
                })?,
                None => set.main(),
            };
            let mut who = principal.map(aegis::Principal::new);
            if let Some(p) = who.as_mut() {
                p.team = team;
                p.org = org;
                for l in &labels {
                    let (k, v) = l.split_once('=').ok_or_else(|| {
                        Error::invalid_request(format!("--label `{l}`: write it as key=value"))
                    })?;
                    p.labels.insert(k.to_owned(), v.to_owned());
                }
            }
            let v = chosen.explain(who, Default::default(), &model);
            say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(0)
        }
        Command::Budgets { action, remote } => {
            let v = match &action {
                BudgetsAction::Show { account, period } => {
                    let query = format!(
                        "/v1/admin/budgets?account={}&period={}",
                        url_encode(account),
                        url_encode(period)
                    );
                    request(&remote, reqwest::Method::GET, &query, None).await?
                }
                BudgetsAction::Reset { account, period } => {
                    let body = json!({"account": account, "period": period});
                    request(
                        &remote,
                        reqwest::Method::POST,
                        "/v1/admin/budgets/reset",
                        Some(body),
                    )
                    .await?
                }
                BudgetsAction::Set {
                    account,
                    period,
                    usd,
                    tokens,
                    clear,
                } => {
                    let mut body = json!({"account": account, "period": period});
                    if *clear {
                        body["clear"] = json!(true);
                    }
                    if let Some(u) = usd {
                        body["usd"] = json!(u);
                    }
                    if let Some(t) = tokens {
                        body["tokens"] = json!(t);
                    }
                    request(
                        &remote,
                        reqwest::Method::POST,
                        "/v1/admin/budgets/limit",
                        Some(body),
                    )
                    .await?
                }
            };
            say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(0)
        }
        Command::Rag { action, remote } => {
            let (store, body, op) = match action {
                RagAction::Ingest {
                    store,
                    files,
                    public,
                    teams,
                    principals,
                    org,
                    labels,
                    max_chars,
                    overlap,
                } => {
                    if !public && teams.is_empty() && principals.is_empty() {
                        return Err(Error::invalid_request(
                            "say who may read the files: --public, --team or --principal (a document granted to nobody is read by nobody)",
                        ));
                    }
                    let mut label_map = serde_json::Map::new();
                    for l in &labels {
                        let (k, v) = l.split_once('=').ok_or_else(|| {
                            Error::invalid_request(format!("--label `{l}`: expected key=value"))
                        })?;
                        label_map.insert(k.to_owned(), json!(v));
                    }
                    let mut acl = json!({"public": public, "teams": teams, "principals": principals, "labels": label_map});
                    if let Some(org) = org {
                        acl["org"] = json!(org);
                    }
                    let mut documents = Vec::new();
                    for f in &files {
                        let text = std::fs::read_to_string(f).map_err(|e| {
                            Error::invalid_request(format!("cannot read {}: {e}", f.display()))
                        })?;
                        documents.push(
                            json!({"source": f.display().to_string(), "text": text, "acl": acl}),
                        );
                    }
                    let body = json!({"documents": documents, "chunking": {"max_chars": max_chars, "overlap": overlap}});
                    (store, body, "documents")
                }
                RagAction::Delete { store, source, ids } => {
                    let body = match source {
                        Some(s) => json!({"source": s}),
                        None => json!({"ids": ids}),
                    };
                    (store, body, "documents/delete")
                }
            };
            let path = format!("/v1/rag/{}/{op}", url_encode(&store));
            let v = request(&remote, reqwest::Method::POST, &path, Some(body)).await?;
            say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(0)
        }
        Command::Mcp {
            action: McpAction::Serve { config, key },
        } => aegis_gateway::bootstrap::mcp_stdio(config, key)
            .await
            .map(|()| 0),
        Command::Mcp {
            action: McpAction::Pins { action, remote },
        } => {
            let v = match &action {
                PinsAction::List => {
                    request(&remote, reqwest::Method::GET, "/v1/admin/mcp/servers", None).await?
                }
                PinsAction::Approve { server, hash } => {
                    request(
                        &remote,
                        reqwest::Method::POST,
                        &format!("/v1/admin/mcp/servers/{}/approve", url_encode(server)),
                        Some(json!({ "hash": hash })),
                    )
                    .await?
                }
            };
            if cli.json || matches!(action, PinsAction::Approve { .. }) {
                say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for s in v["servers"].as_array().into_iter().flatten() {
                    say!(
                        "{}  {}  {} tools  seen {}  pinned {}",
                        s["server"].as_str().unwrap_or(""),
                        s["state"].as_str().unwrap_or(""),
                        s["tools"],
                        s["pin"]["seen_hash"].as_str().unwrap_or("-"),
                        s["pin"]["pinned_hash"].as_str().unwrap_or("-"),
                    );
                    if let Some(r) = s["reason"].as_str() {
                        say!("    {r}");
                    }
                }
            }
            Ok(0)
        }
        Command::Audit { action, remote } => {
            let path = match action {
                AuditAction::Verify => "/v1/admin/audit/verify",
                AuditAction::Head => "/v1/admin/audit/head",
            };
            let v = request(&remote, reqwest::Method::GET, path, None).await?;
            say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(if v["valid"] == false { 2 } else { 0 })
        }
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
                RunsAction::Purge { older_than } => (
                    reqwest::Method::POST,
                    "/v1/admin/runs/purge".to_owned(),
                    Some(json!({ "older_than": older_than })),
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
