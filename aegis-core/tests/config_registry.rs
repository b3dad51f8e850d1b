//! Config errors name their path; secrets resolve at build time and never leak.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use aegis_contracts::*;
use aegis_core::{Pipeline, Registry, config::AegisConfig};
use common::*;
use serde::Deserialize;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyedConfig {
    api_key: Secret,
    #[serde(default)]
    #[allow(dead_code)]
    retries: u32,
}

/// A provider that fails with an error mentioning its key's *length*, never the key.
struct Keyed(Secret);

#[async_trait]
impl Provider for Keyed {
    fn name(&self) -> &str {
        "keyed"
    }
    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::default()
    }
    async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, Error> {
        tracing::info!(key = ?self.0, "calling upstream");
        Err(Error::provider(format!(
            "upstream refused a {}-byte key",
            self.0.expose().len()
        ))
        .with_status(401))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct BanConfig {
    word: String,
    #[serde(default)]
    #[allow(dead_code)]
    threshold: Option<f32>,
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register_provider::<KeyedConfig, _>("keyed", |c, _| Ok(Arc::new(Keyed(c.api_key))));
    r.register_guardrail::<BanConfig, _>("ban", |c, _| {
        if c.word.is_empty() {
            return Err(Error::config("`word` must not be empty"));
        }
        Ok(Arc::new(Ban::new(&c.word)))
    });
    r
}

fn parse(toml: &str) -> AegisConfig {
    AegisConfig::from_toml_str(toml, std::iter::empty::<(&str, &str)>()).unwrap()
}

#[tokio::test]
async fn every_problem_is_reported_with_its_path() {
    let cfg = parse(
        r#"
        [[guardrails]]
        id = "a"
        type = "ban"
        config = { word = "x" }

        [[guardrails]]
        id = "b"
        type = "no-such-guard"

        [[guardrails]]
        id = "c"
        type = "ban"
        config = { word = "x", threshold = "high" }

        [[guardrails]]
        id = "a"
        type = "ban"
        config = { word = "" }
        "#,
    );
    let problems = registry().validate(&cfg).await;
    assert_eq!(
        problems,
        vec![
            "guardrails[1].type: unknown type `no-such-guard` (registered: ban)".to_owned(),
            "guardrails[2].config.threshold: invalid type: string \"high\", expected a number"
                .to_owned(),
            "guardrails[3].id: `a` is used twice in guardrails".to_owned(),
            "guardrails[3].config: `word` must not be empty".to_owned(),
        ]
    );
    let err = registry().build(&cfg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().starts_with("4 problems in config:"));
}

#[tokio::test]
async fn unknown_fields_and_bad_policies_are_config_errors() {
    let err = AegisConfig::from_toml_str(
        "[pipeline]\ndurabilty = \"sync\"\n",
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap_err();
    assert!(
        err.message()
            .starts_with("pipeline.durabilty: unknown field `durabilty`"),
        "{err}"
    );
    let err = AegisConfig::from_toml_str(
        "[[guardrails]]\nid = \"a\"\ntype = \"ban\"\nfail_mode = \"sometimes\"\n",
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap_err();
    assert!(
        err.message()
            .starts_with("guardrails[0].fail_mode: unknown variant `sometimes`"),
        "{err}"
    );
    let err =
        AegisConfig::from_toml_str("not = [valid", std::iter::empty::<(&str, &str)>()).unwrap_err();
    assert!(
        err.message().starts_with("config is not valid TOML"),
        "{err}"
    );
}

#[tokio::test]
async fn secrets_resolve_from_env_and_file() {
    // AEGIS_TEST_SECRET_ENV comes from .cargo/config.toml.
    let file = secret_file("resolve", "sk-file-value");
    let cfg = parse(&format!(
        r#"
        [[providers]]
        id = "a"
        type = "keyed"
        config = {{ api_key = "secret://env/AEGIS_TEST_SECRET_ENV" }}
        [[providers]]
        id = "b"
        type = "keyed"
        config = {{ api_key = "secret://file/{}" }}
        "#,
        file.display()
    ));
    let built = registry().build(&cfg).await.unwrap();
    assert_eq!(built.providers.len(), 2);
    // The keyed provider reports its key's length: the env value, and the file without its newline.
    for (provider, len) in [
        (&built.providers[0].1, "sk-env-value-for-tests".len()),
        (&built.providers[1].1, 13),
    ] {
        let err = provider.chat(user("x")).await.unwrap_err();
        assert!(
            err.message().contains(&format!("a {len}-byte key")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn missing_secrets_and_unknown_schemes_are_reported_with_paths() {
    let cfg = parse(
        r#"
        [[providers]]
        id = "a"
        type = "keyed"
        config = { api_key = "secret://env/AEGIS_DEFINITELY_UNSET_VAR" }
        [[providers]]
        id = "b"
        type = "keyed"
        config = { api_key = "secret://vault/kv/openai" }
        [[providers]]
        id = "c"
        type = "keyed"
        config = { api_key = "secret://env" }
        "#,
    );
    let problems = registry().validate(&cfg).await;
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with(
        "providers[0].config.api_key: secret://env/AEGIS_DEFINITELY_UNSET_VAR: environment variable"
    ));
    assert!(
        problems[1]
            .starts_with("providers[1].config.api_key: no secret backend for scheme `vault`")
    );
    assert!(problems[2].starts_with("providers[2].config.api_key: malformed secret reference"));
}

/// A `tracing` writer that keeps everything written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything this test binary logs, from every thread.
///
/// The capture is the *global* subscriber, installed once. A thread-local one
/// (`set_default`) loses events at random under parallel tests: `tracing`
/// caches each callsite's interest process-wide, computed on whichever thread
/// reaches it first, and a thread without the subscriber caches "never".
fn process_logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test in this binary installs a subscriber");
        logs
    })
    .clone()
}

#[tokio::test]
async fn a_planted_secret_appears_in_no_log_error_debug_output_or_audit_event() {
    const CANARY: &str = "sk-canary-7f3a9c1e5b";
    let canary_file = secret_file("canary", CANARY);
    let logs = process_logs();

    let rec = Arc::new(Recorder::default());
    let mut r = registry();
    let sink = rec.clone();
    r.register_telemetry::<serde_json::Value, _>("recorder", move |_, _| {
        Ok(sink.clone() as Arc<dyn TelemetrySink>)
    });
    let cfg = parse(
        r#"
        [[providers]]
        id = "main"
        type = "keyed"
        config = { api_key = "secret://file/CANARY" }

        [[telemetry]]
        id = "rec"
        type = "recorder"
        "#
        .replace("CANARY", &canary_file.display().to_string())
        .as_str(),
    );
    let pipeline = Pipeline::from_config(&r, &cfg).await.unwrap();
    let err = pipeline.chat(user("hello")).await.unwrap_err();

    // A secret put where a number belongs must not echo in the config error either.
    let bad = parse(
        r#"
        [[providers]]
        id = "x"
        type = "keyed"
        config = { api_key = "secret://file/CANARY", retries = "secret://file/CANARY" }
        "#
        .replace("CANARY", &canary_file.display().to_string())
        .as_str(),
    );
    let config_err = r.build(&bad).await.unwrap_err();
    assert!(
        config_err.message().contains("providers[0].config.retries"),
        "{config_err}"
    );

    let built = r.build(&cfg).await.unwrap();
    let everything = [
        format!("{err:?} {err}"),
        format!("{config_err:?} {config_err}"),
        format!("{pipeline:?} {cfg:?} {built:?}"),
        String::from_utf8(logs.0.lock().unwrap().clone()).unwrap(),
        rec.json(),
    ];
    assert!(
        everything[3].contains("calling upstream"),
        "the log line was captured"
    );
    assert!(
        everything[4].contains("provider_call"),
        "telemetry was captured"
    );
    for (i, text) in everything.iter().enumerate() {
        assert!(
            !text.contains(CANARY),
            "secret leaked in output #{i}: {text}"
        );
    }
}

/// A secret file unique to this process and test.
fn secret_file(tag: &str, content: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("aegis-secret-{tag}-{}", std::process::id()));
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "{content}").unwrap();
    path
}
