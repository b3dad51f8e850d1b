//! `aegis serve` with no arguments on a fresh directory: SQLite in the working directory, the
//! echo provider, PII and secrets guards, a first admin key printed once — then keys and runs
//! managed through the CLI.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(args)
        .env_remove("AEGIS_API_KEY")
        .env_remove("AEGIS_URL")
        .output()
        .unwrap()
}

#[test]
fn serve_with_no_arguments_works_on_a_fresh_directory() {
    let dir = std::env::temp_dir().join(format!(
        "aegis-serve-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["serve", "--listen", &listen])
        .current_dir(&dir)
        .env("AEGIS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    let mut admin_key = None;
    let mut banner = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if let Some(k) = line.strip_prefix("aegis: first admin key (shown once, store it now): ") {
            admin_key = Some(k.to_owned());
        }
        if line.starts_with("aegis: listening on") {
            break;
        }
    }
    assert!(banner.contains("offline `echo` provider"), "{banner}");
    assert!(
        banner.contains("guards: invisible, secrets, pii"),
        "{banner}"
    );
    let admin = admin_key.unwrap_or_else(|| panic!("no admin key printed:\n{banner}"));
    assert!(
        dir.join("aegis.db").exists(),
        "the SQLite file is created in the working directory"
    );
    let url = format!("http://{listen}");

    // The admin creates a key for a user.
    let out = cli(&[
        "keys", "create", "ada", "--team", "research", "--url", &url, "--key", &admin, "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ada = created["key"].as_str().unwrap().to_owned();
    let key_id = created["info"]["id"].as_str().unwrap().to_owned();

    // The user chats; PII is masked before the (echo) provider sees it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let chat = |key: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "mail ada@example.org"}]}))
                .send()
                .await
                .unwrap()
        }
    };
    let resp = rt.block_on(chat(ada.clone()));
    assert_eq!(resp.status(), 200);
    let v: Value = rt.block_on(resp.json()).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "echo: mail <EMAIL_ADDRESS>"
    );

    // Runs are recorded with their owner; the user sees their own.
    std::thread::sleep(Duration::from_millis(200));
    let out = cli(&["runs", "list", "--url", &url, "--key", &ada, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs["data"][0]["principal"], "ada", "{runs}");
    assert_eq!(runs["data"][0]["status"], "completed");

    // A non-admin cannot manage keys; revocation takes effect at once.
    let out = cli(&["keys", "list", "--url", &url, "--key", &ada]);
    assert_eq!(out.status.code(), Some(1));
    let out = cli(&["keys", "revoke", &key_id, "--url", &url, "--key", &admin]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rt.block_on(chat(ada)).status(), 401);
    assert_eq!(rt.block_on(chat("aegis_sk_made_up".into())).status(), 401);
}
