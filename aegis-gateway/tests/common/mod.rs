//! Helpers the gateway's end-to-end tests share: a gateway in-process on a free port, and the
//! `aegis` binary as a child process that is killed when dropped.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
};

use aegis::{PipelineSet, config::AegisConfig};
use aegis_gateway::server::{self, EventFeed, Gateway, Limits};

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh directory for one test (`aegis-{tag}-{pid}-{n}`), created.
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "aegis-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `aegis serve --config CONFIG` in `dir` on a free port, once it listens; its base URL.
pub fn start_binary(config: &Path, dir: &Path) -> (Server, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .current_dir(dir)
        .env("AEGIS_LOG", "error")
        .env_remove("AEGIS_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().starts_with("aegis: listening on") {
            return (server, format!("http://{listen}"));
        }
    }
    panic!("the gateway did not start");
}

/// Serves `gateway` on a free loopback port.
pub async fn serve(gateway: Arc<Gateway>) -> SocketAddr {
    let app = server::router(gateway);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The pipelines of `config` (TOML) with the gateway's plugin types and no database, served
/// in-process.
pub async fn gateway(config: &str) -> SocketAddr {
    let cfg = AegisConfig::from_toml_str(config, std::iter::empty::<(&str, &str)>()).unwrap();
    let feed = EventFeed::default();
    let set = PipelineSet::from_config_with(
        &aegis_gateway::static_keys::registry(),
        &cfg,
        None,
        vec![Arc::new(feed.clone())],
    )
    .await
    .unwrap();
    serve(Gateway::new(set, Limits::default(), feed)).await
}

/// A gateway whose runs, keys and budgets live in `store`: the pipelines of `config` (TOML)
/// with the gateway's plugin types, checkpointed in `store`, observed by an event feed and
/// `sinks`.
pub async fn gateway_on(
    store: &aegis_store::Store,
    config: &str,
    limits: Limits,
    sinks: Vec<Arc<dyn aegis::TelemetrySink>>,
) -> Arc<Gateway> {
    let registry = aegis_gateway::bootstrap::registry_for(Some(store))
        .await
        .unwrap();
    let cfg = AegisConfig::from_toml_str(config, std::iter::empty::<(&str, &str)>()).unwrap();
    let feed = EventFeed::default();
    let mut all: Vec<Arc<dyn aegis::TelemetrySink>> = vec![Arc::new(feed.clone())];
    all.extend(sinks);
    let set = PipelineSet::from_config_with(&registry, &cfg, Some(Arc::new(store.clone())), all)
        .await
        .unwrap();
    Gateway::with_store(set, limits, feed, store.clone())
}

/// A fresh database several gateway processes share: a new PostgreSQL database on the test
/// server when `AEGIS_TEST_DATABASE_URL` is set, else a SQLite file in `dir`.
pub struct SharedDb {
    /// What `[server] database_url` says.
    pub url: String,
    /// The server's admin URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl SharedDb {
    /// A new database named after `tag`.
    pub async fn new(dir: &Path, tag: &str) -> Self {
        use sea_orm::ConnectionTrait;
        let Some(admin) = std::env::var("AEGIS_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            return Self {
                url: format!("sqlite://{}?mode=rwc", dir.join("aegis.db").display()),
                postgres: None,
            };
        };
        let name = format!("aegis_{tag}_{}_{}", std::process::id(), free_port());
        let db = sea_orm::Database::connect(admin.as_str()).await.unwrap();
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            postgres: Some((admin.clone(), name)),
        }
    }

    /// Drops the PostgreSQL database (the processes using it must be gone).
    pub async fn finish(self) {
        use sea_orm::ConnectionTrait;
        if let Some((admin, name)) = self.postgres {
            let db = sea_orm::Database::connect(admin.as_str()).await.unwrap();
            let _ = db
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// One JSON request as the holder of `key`: its status and its JSON body (`null` when it has
/// none).
pub async fn call(
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(key)
        .timeout(std::time::Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}
