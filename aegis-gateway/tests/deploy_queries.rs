//! The dashboard and the alert rules under `deploy/` are executed, not just shipped: a real
//! Prometheus server (Debian's `prometheus`) scrapes a gateway under a short scripted load,
//! and every PromQL expression of the Grafana dashboard and of the alert rules (the series
//! part of each alert, before its threshold) must return at least one series. A metric or
//! label renamed in the code breaks this test, not a dashboard in production. `promtool`
//! checks the rule file and runs its unit tests.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
const KEY: &str = "sk-test-deploy-queries";

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the Prometheus tools are here; required when the test command installed them.
fn tools_or_skip() -> bool {
    if have("prometheus") && have("promtool") {
        return true;
    }
    assert!(
        std::env::var_os("AEGIS_REQUIRE_PROMTOOL").is_none(),
        "prometheus and promtool are required (scripts/test.sh installs them)"
    );
    eprintln!("prometheus is not installed here: the deploy queries were not executed");
    false
}

/// Every PromQL expression of the dashboard.
fn dashboard_queries() -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(DEPLOY).join("grafana/aegis-dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    out
}

/// The series part of every alert rule: its `expr` before the threshold comparison.
fn alert_series() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(DEPLOY).join("prometheus/alerts.yml")).unwrap();
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(a) = line.strip_prefix("- alert: ") {
            name = a.to_owned();
        } else if let Some(expr) = line.strip_prefix("expr: ") {
            let at = expr
                .rfind(" > ")
                .or_else(|| expr.rfind(" < "))
                .unwrap_or(expr.len());
            out.push((name.clone(), expr[..at].to_owned()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_query_returns_series_from_a_scraped_gateway() {
    if !tools_or_skip() {
        return;
    }
    let rules = Path::new(DEPLOY).join("prometheus");
    let check = Command::new("promtool")
        .args(["check", "rules", "alerts.yml"])
        .current_dir(&rules)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let unit = Command::new("promtool")
        .args(["test", "rules", "alerts_test.yml"])
        .current_dir(&rules)
        .output()
        .unwrap();
    assert!(
        unit.status.success(),
        "{}{}",
        String::from_utf8_lossy(&unit.stdout),
        String::from_utf8_lossy(&unit.stderr)
    );

    // A gateway whose traffic touches every metric: answers, a stream, a block, a failing
    // provider, a guard that cannot reach its service (fails open), a run paused for
    // approval, a router whose first deployment is down (its breaker opens), a team with a
    // priced budget, and a trace exporter whose collector is down (its spans are dropped).
    let metrics_port = common::free_port();
    let dead = common::free_port();
    let dir = common::scratch_dir("prom");
    let config = format!(
        r#"
[server]
database_url = "sqlite://{db}?mode=rwc"

[[providers]]
id = "echo"
type = "echo"

[[providers]]
id = "down"
type = "openai"
config = {{ base_url = "http://127.0.0.1:{dead}/v1" }}

[[providers]]
id = "echo-backup"
type = "echo"

[[providers]]
id = "dead"
type = "openai"
config = {{ base_url = "http://127.0.0.1:{dead}/v1", models = ["m"] }}

[[providers]]
id = "llm"
type = "router"
[providers.config]
strategy = "ordered"
circuit_breaker = {{ failure_threshold = 1, cooldown_ms = 600000 }}
[[providers.config.models]]
name = "chat"
deployments = [
    {{ id = "broken", provider = "dead", model = "m" }},
    {{ id = "backup", provider = "echo-backup", model = "echo" }},
]

[routing]
default_provider = "echo"
[routing.aliases]
broken = "down/gpt-x"

[pricing]
prices = {{ "echo" = {{ input_per_mtok = 2.0, output_per_mtok = 6.0 }}, "m" = {{ input_per_mtok = 1.0, output_per_mtok = 1.0 }}, "gpt-x" = {{ input_per_mtok = 1.0, output_per_mtok = 1.0 }} }}

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [ {{ key = "{KEY}", principal = "ada", team = "research" }} ] }}

[[policies]]
id = "budgets"
type = "budgets"
[policies.config]
teams = {{ research = {{ usd = 1000.0, tokens = 100000000, period = "month" }} }}
max_output_tokens = 64

[[guardrails]]
id = "words"
type = "ban_substrings"
stages = ["input"]
config = {{ substrings = ["forbidden"] }}

[[guardrails]]
id = "ask"
type = "ban_substrings"
stages = ["input"]
config = {{ substrings = ["please hold"], action = "require_approval" }}

[[guardrails]]
id = "presidio"
type = "presidio"
stages = ["output"]
fail_mode = "open"
config = {{ analyzer_url = "http://127.0.0.1:{dead}", action = "block", timeout_ms = 200 }}

[[telemetry]]
id = "traces"
type = "otlp"
config = {{ endpoint = "http://127.0.0.1:{dead}/v1/traces", export_interval_ms = 200, export_timeout_ms = 500 }}

[[telemetry]]
id = "prometheus"
type = "prometheus"
config = {{ listen = "127.0.0.1:{metrics_port}" }}
"#,
        db = dir.join("aegis.db").display()
    );
    std::fs::write(dir.join("aegis.toml"), &config).unwrap();
    let (_gw, base) = common::start_binary(&dir.join("aegis.toml"), &dir);

    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: aegis\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let prom_port = common::free_port();
    let prom = common::Server(
        Command::new("prometheus")
            .args([
                &format!("--config.file={}", dir.join("prometheus.yml").display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{prom_port}"),
                "--log.level=error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let chat = |model: &str, text: &str, stream: bool| {
        client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}))
            .send()
    };
    let paused = client
        .post(format!("{base}/v1/runs"))
        .bearer_auth(KEY)
        .json(&json!({"input": {"model": "echo", "messages": [{"role": "user", "content": "please hold"}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status().as_u16(), 202);
    // Load for a few scrapes, so rates have two samples.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        chat("echo", "hello there", false).await.unwrap();
        chat("echo", "hello streamed", true)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        chat("echo", "say forbidden", false).await.unwrap();
        chat("broken", "hello", false).await.unwrap();
        chat("llm/chat", "hello router", false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut queries: Vec<(String, String)> = dashboard_queries()
        .into_iter()
        .map(|q| ("dashboard".to_owned(), q))
        .collect();
    queries.extend(alert_series());
    assert!(queries.len() >= 22, "{queries:?}");
    let mut empty = Vec::new();
    for (from, q) in &queries {
        let mut found = false;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !found && Instant::now() < deadline {
            let resp = client
                .post(format!("http://127.0.0.1:{prom_port}/api/v1/query"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("query={}", form_encode(q)))
                .send()
                .await;
            if let Ok(r) = resp
                && let Ok(v) = r.json::<Value>().await
            {
                assert_ne!(
                    v["status"], "error",
                    "{from}: `{q}` is not valid PromQL: {v}"
                );
                found = v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty());
            }
            if !found {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if !found {
            empty.push(format!("{from}: {q}"));
        }
    }
    drop(prom);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        empty.is_empty(),
        "queries with no series:\n{}",
        empty.join("\n")
    );
}

/// `application/x-www-form-urlencoded` encoding of `s`.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
