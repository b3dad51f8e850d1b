//! Prometheus metrics: with a `prometheus` telemetry entry the gateway serves requests,
//! latency, time to first token, tokens, guard verdicts, provider calls and its own
//! overhead at `/metrics` (admins only when keys are configured, or openly on a listener of
//! its own); labels never carry principal or run ids; `promtool check metrics` (when
//! installed, as in CI) finds nothing wrong.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use serde_json::json;

const ADMIN: &str = "sk-test-metrics-admin";
const USER: &str = "sk-test-metrics-user";

async fn post(base: &str, key: &str, body: serde_json::Value) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn get(url: &str, key: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of the sample `name{labels}` (labels in any order), summed over matches.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_exports_what_it_did_as_prometheus_metrics() {
    let port = common::free_port();
    let config = format!(
        r#"
[routing]
default_provider = "echo"

[[providers]]
id = "echo"
type = "echo"

# A router whose first deployment answers nothing (nothing listens on port 1): its breaker
# opens after one failure and the backup answers.
[[providers]]
id = "echo-backup"
type = "echo"

[[providers]]
id = "dead"
type = "openai"
config = {{ base_url = "http://127.0.0.1:1/v1", models = ["m"] }}

[[providers]]
id = "llm"
type = "router"
[providers.config]
strategy = "ordered"
circuit_breaker = {{ failure_threshold = 1, cooldown_ms = 60000 }}
[[providers.config.models]]
name = "chat"
deployments = [
    {{ id = "broken", provider = "dead", model = "m" }},
    {{ id = "backup", provider = "echo-backup", model = "echo" }},
]

[[authenticators]]
id = "keys"
type = "static_keys"
config = {{ keys = [
    {{ key = "{ADMIN}", principal = "root-principal-7", roles = ["admin"] }},
    {{ key = "{USER}", principal = "user-principal-9", team = "t" }},
] }}

[[guardrails]]
id = "words"
type = "ban_substrings"
config = {{ substrings = ["forbidden"] }}

[pricing]
prices = {{ "echo" = {{ input_per_mtok = 2.0, output_per_mtok = 6.0 }}, "m" = {{ input_per_mtok = 1.0, output_per_mtok = 1.0 }} }}

[[policies]]
id = "budgets"
type = "budgets"
[policies.config]
teams = {{ t = {{ tokens = 1000000, period = "month" }} }}
default_key = {{ tokens = 5000000 }}
keys = {{ "user-principal-9" = {{ tokens = 6000000 }} }}
max_output_tokens = 64

[[telemetry]]
id = "prometheus"
type = "prometheus"
config = {{ listen = "127.0.0.1:{port}" }}
"#
    );
    let addr = common::gateway(&config).await;
    let base = format!("http://{addr}");
    let chat = |text: &str, stream: bool| json!({"model": "echo", "stream": stream, "messages": [{"role": "user", "content": text}]});
    for _ in 0..3 {
        let (status, _) = post(&base, USER, chat("hello there", false)).await;
        assert_eq!(status, 200);
    }
    let (status, body) = post(&base, USER, chat("hello streamed world", true)).await;
    assert!(status == 200 && body.contains("[DONE]"), "{body}");
    let (status, _) = post(&base, USER, chat("say forbidden", false)).await;
    assert_eq!(status, 400);
    let routed = json!({"model": "llm/chat", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post(&base, USER, routed).await;
    assert_eq!(status, 200, "the backup answers: {body}");

    // On the main listener: admins only.
    assert_eq!(get(&format!("{base}/metrics"), None).await.0, 401);
    assert_eq!(get(&format!("{base}/metrics"), Some(USER)).await.0, 403);
    let (status, text) = get(&format!("{base}/metrics"), Some(ADMIN)).await;
    assert_eq!(status, 200, "{text}");
    // On its own listener: open.
    let (status, own) = get(&format!("http://127.0.0.1:{port}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(own.contains("aegis_requests_total"), "{own}");
    // The broken deployment's breaker opened, and says so; the backup's never did.
    let broken = [("router", "llm"), ("deployment", "broken")];
    assert_eq!(sample(&text, "aegis_circuit_open", &broken), 1.0, "{text}");
    assert_eq!(sample(&text, "aegis_circuit_opened_total", &broken), 1.0);
    assert_eq!(
        sample(&text, "aegis_circuit_open", &[("deployment", "backup")]),
        0.0
    );

    assert_eq!(
        sample(
            &text,
            "aegis_requests_total",
            &[("status", "completed"), ("model", "echo")]
        ),
        5.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "aegis_requests_total", &[("status", "blocked")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "aegis_request_duration_seconds_count",
            &[("status", "completed")]
        ),
        5.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "aegis_overhead_seconds_count", &[]),
        6.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "aegis_time_to_first_token_seconds_count", &[]),
        1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "aegis_tokens_total",
            &[("model", "echo"), ("kind", "input")]
        ) >= 8.0,
        "{text}"
    );
    // Tokens and cost by team, and the team's budget as gauges.
    assert!(
        sample(
            &text,
            "aegis_tokens_total",
            &[("team", "t"), ("kind", "output")]
        ) >= 4.0,
        "{text}"
    );
    assert!(
        sample(&text, "aegis_cost_microdollars_total", &[("team", "t")]) > 0.0,
        "{text}"
    );
    // The team's line is sampled every 5 s: within two samples it shows the spend.
    let line = [
        ("account", "team:t"),
        ("period", "month"),
        ("unit", "tokens"),
    ];
    assert_eq!(sample(&text, "aegis_budget_limit", &line), 1_000_000.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(12);
    let left = loop {
        let (_, now) = get(&format!("{base}/metrics"), Some(ADMIN)).await;
        let left = sample(&now, "aegis_budget_remaining", &line);
        if left < 1_000_000.0 || std::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(left > 0.0 && left < 1_000_000.0, "{left}");
    // Keys have lines too (listed and default), but their accounts are principal ids.
    assert!(
        !text.contains("account=\"key:"),
        "a key's line (a principal id) is a label: {text}"
    );
    assert!(
        sample(
            &text,
            "aegis_provider_calls_total",
            &[("provider", "echo"), ("outcome", "ok")]
        ) >= 4.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "aegis_guard_verdicts_total",
            &[("guard", "words"), ("decision", "block")]
        ),
        1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "aegis_guard_verdicts_total",
            &[("guard", "words"), ("decision", "allow")]
        ) >= 8.0,
        "{text}"
    );
    for secret in [
        "root-principal-7",
        "user-principal-9",
        "hello there",
        "forbidden\"",
    ] {
        assert!(!text.contains(secret), "`{secret}` is in the metrics");
    }
    let runs = text.matches("run_id").count();
    assert_eq!(runs, 0, "run ids are never labels");

    if let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
    {
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            std::env::var_os("AEGIS_REQUIRE_PROMTOOL").is_none(),
            "promtool is required (scripts/test.sh installs it) but cannot run"
        );
        eprintln!("promtool is not installed here: the exposition format was not checked by it");
    }
}
