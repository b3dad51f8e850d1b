//! `/readyz` means something: ready only while the gateway's database answers and carries
//! every migration this build knows, and not ready from the moment a shutdown begins — while
//! the listener, for `shutdown_delay_ms`, still accepts connections, so a load balancer
//! polling it stops sending before the gateway stops serving.
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use aegis_gateway::server::{self, Gateway, Limits};
use serde_json::Value;

const CONFIG: &str = "[[providers]]\nid = \"echo\"\ntype = \"echo\"\n";

async fn gateway_on(store: &aegis_store::Store, limits: Limits) -> Arc<Gateway> {
    common::gateway_on(store, CONFIG, limits, Vec::new()).await
}

async fn readyz(addr: std::net::SocketAddr) -> (u16, Value) {
    let resp = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn ready_only_while_the_store_is_migrated() {
    let store = aegis_store::Store::connect("sqlite::memory:")
        .await
        .unwrap();
    let addr = common::serve(gateway_on(&store, Limits::default()).await).await;
    let (status, body) = readyz(addr).await;
    assert_eq!(
        (status, body["store"].as_str()),
        (200, Some("ok")),
        "{body}"
    );

    store.migrate_down().await.unwrap();
    let (status, body) = readyz(addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "store_not_migrated", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("m0001_initial"),
        "names what is pending: {body}"
    );
}

/// A TCP relay to `upstream` that can be cut: every connection through it dies and new
/// ones are refused, as when a database server goes away.
struct Relay {
    addr: std::net::SocketAddr,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let list = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                list.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { addr, tasks }
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn a_database_that_went_away_is_not_ready_within_its_deadline() {
    let Ok(url) = std::env::var("AEGIS_TEST_DATABASE_URL") else {
        eprintln!("skipped: AEGIS_TEST_DATABASE_URL is not set");
        return;
    };
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        panic!("AEGIS_TEST_DATABASE_URL is not a PostgreSQL URL: {url}");
    };
    let (auth, tail) = rest.split_once('@').unwrap_or(("", rest));
    let (host, db) = tail.split_once('/').unwrap_or((tail, ""));
    let relay = Relay::start(host.to_owned()).await;
    let via = format!("postgres://{auth}@{}/{db}", relay.addr);
    let store = aegis_store::Store::connect(&via).await.unwrap();
    let addr = common::serve(gateway_on(&store, Limits::default()).await).await;
    assert_eq!(readyz(addr).await.0, 200);

    relay.cut();
    let started = std::time::Instant::now();
    let (status, body) = readyz(addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "store_unreachable", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answers within its deadline"
    );
}

#[tokio::test]
async fn not_ready_from_the_start_of_a_shutdown_while_still_serving_for_the_delay() {
    let store = aegis_store::Store::connect("sqlite::memory:")
        .await
        .unwrap();
    let limits = Limits {
        shutdown_delay_ms: 1500,
        ..Limits::default()
    };
    let gw = gateway_on(&store, limits).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, gw, async {
        stopped.await.ok();
    }));
    assert_eq!(readyz(addr).await.0, 200);

    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are still accepted, and say they are not ready.
    let (status, body) = readyz(addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "shutting_down", "{body}");
    // Traffic that still arrives is served.
    let chat = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(
            &serde_json::json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // After the delay the gateway stops.
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the gateway stops after its delay")
        .unwrap()
        .unwrap();
    assert!(reqwest::get(format!("http://{addr}/readyz")).await.is_err());
}
