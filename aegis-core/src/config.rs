//! Typed configuration: TOML, overridable by `AEGIS_*` environment variables.
//!
//! ```
//! use aegis_core::config::AegisConfig;
//! let cfg = AegisConfig::from_toml_str(
//!     r#"
//!     [pipeline]
//!     durability = "exit"
//!
//!     [[providers]]
//!     id = "local"
//!     type = "echo"
//!     "#,
//!     [("AEGIS_PIPELINE__DURABILITY", "sync")],
//! )
//! .unwrap();
//! assert_eq!(cfg.providers[0].id, "local");
//! assert_eq!(cfg.pipeline.durability, aegis_core::graph::Durability::Sync);
//! ```
//!
//! Environment overrides: `AEGIS_` + the path in upper case with `__` between segments
//! (`AEGIS_PROVIDERS__0__CONFIG__BASE_URL`). Values are read as TOML literals when they
//! parse (`true`, `42`, `"x"`), as strings otherwise. Only variables naming a config section
//! (`PIPELINE`, `ROUTING`, `PROVIDERS`, `GUARDRAILS`, `AUTHENTICATORS`, `POLICIES`, `TELEMETRY`,
//! `PRICING`, `SERVER`) are
//! overrides; other `AEGIS_*` variables are left alone.

use std::collections::BTreeMap;

use aegis_contracts::{Error, FailMode, GuardMode, Stage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::Durability;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AegisConfig {
    /// How the request lifecycle runs.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Model aliases and defaults.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// LLM backends.
    #[serde(default)]
    pub providers: Vec<PluginConfig>,
    /// Guards, in chain order.
    #[serde(default)]
    pub guardrails: Vec<GuardrailConfig>,
    /// Authenticators (the first that recognizes a credential wins).
    #[serde(default)]
    pub authenticators: Vec<PluginConfig>,
    /// Document stores and retrievers (`{ id, type, config }`) for RAG: policies retrieve
    /// from them by id, and the gateway ingests into the writable ones.
    #[serde(default)]
    pub retrievers: Vec<PluginConfig>,
    /// Policy packs (`{ id, type, config }`), in order: their steps run at the lifecycle
    /// positions they declare, in this order; their run-end hooks run once per run.
    #[serde(default)]
    pub policies: Vec<PluginConfig>,
    /// Further pipelines served beside the main one, each with its own guards, policies and
    /// default model, over the same providers, routing and authenticators.
    #[serde(default)]
    pub pipelines: Vec<NamedPipelineConfig>,
    /// Telemetry sinks.
    #[serde(default)]
    pub telemetry: Vec<PluginConfig>,
    /// What model calls cost (`[pricing]`): every run record and audit record carries the
    /// cost of its usage, priced here over the shipped table.
    #[serde(default)]
    pub pricing: PricingConfig,
    /// Upstream MCP servers whose tools the host governs and re-exports (`[[mcp_servers]]`,
    /// read and validated by the MCP pack, `aegis-mcp`; the pipeline itself does not
    /// interpret them).
    #[serde(default)]
    pub mcp_servers: Vec<Value>,
    /// Settings of the process hosting the pipeline (the `aegis` gateway reads its listen
    /// address, limits and database here); the library itself ignores this table.
    #[serde(default)]
    pub server: serde_json::Map<String, Value>,
}

/// Prices per model, over the shipped table ([`aegis_contracts::PriceTable::shipped`]).
///
/// ```toml
/// [pricing]
/// prices = { "my-model" = { input_per_mtok = 1.0, output_per_mtok = 2.0 } }
/// unknown_model_price = { input_per_mtok = 10.0, output_per_mtok = 30.0 }
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PricingConfig {
    /// US dollars per million tokens, by model (a provider-prefixed name such as
    /// `openai/gpt-4o` is also found under its bare name).
    #[serde(default)]
    pub prices: BTreeMap<String, aegis_contracts::Price>,
    /// The price of a model in neither table. Without it such a run records no cost (and a
    /// budgets policy refuses it).
    #[serde(default)]
    pub unknown_model_price: Option<aegis_contracts::Price>,
}

impl PricingConfig {
    /// The price table this config describes.
    pub fn table(&self) -> Result<aegis_contracts::PriceTable, Error> {
        aegis_contracts::PriceTable::shipped().with(
            "pricing",
            &self.prices,
            self.unknown_model_price,
        )
    }
}

/// Lifecycle settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PipelineConfig {
    /// The graph's name (runs record it).
    pub name: String,
    /// When checkpoints are written.
    pub durability: Durability,
    /// Allow output guards that need the full text to buffer streams (otherwise such a
    /// configuration is refused when streaming).
    pub stream_buffering: bool,
    /// Refuse requests without credentials even when no authenticator is configured.
    pub require_auth: bool,
    /// How long a resume holds its claim on a run, in milliseconds (default 600000, ten
    /// minutes). A resume is cut off at the end of its lease; a run whose resume crashed is
    /// finished by another process once the lease has expired.
    pub resume_lease_ms: u64,
    /// The model of requests that name none (or name `default`).
    pub default_model: Option<String>,
    /// What happens to traffic the guards cannot judge (`[pipeline.admission]`).
    pub admission: AdmissionConfig,
    /// What a run's final checkpoint keeps of its content: `sanitized` (default: a
    /// completed run keeps the prompt and the answer as the guards let them through) or
    /// `none`. A run that did not complete — blocked, rejected, failed, cancelled — keeps
    /// no prompt and no answer either way.
    pub store_content: StoreContent,
}

/// What a run's final checkpoint keeps of its content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreContent {
    /// A completed run keeps what the guards let through; other runs keep nothing.
    #[default]
    Sanitized,
    /// No run keeps its prompt or answer (metadata, route, guards and usage stay).
    None,
}

/// What a pipeline does with parts of a request that its guards cannot judge. The
/// defaults are fail-closed: nothing unjudged reaches a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AdmissionConfig {
    /// Image, audio and file parts when no input guard declares that it judges them:
    /// `refuse` (default) or `allow`.
    pub media: Admit,
    /// References a provider would resolve with the gateway's own credentials — file ids,
    /// `s3://` / `gs://` sources, Gemini `fileData` / `cachedContent`, Anthropic
    /// `mcp_servers` / `container`, assistant `file_ids` / `tool_resources`: `refuse`
    /// (default) or `allow`.
    pub provider_references: Admit,
    /// Request and message fields Aegis does not know: `drop` (default) or `forward`.
    /// Known fields that carry no content (sampling knobs, `metadata`, `user`, vendor
    /// switches such as `thinking` or `top_k`) are always forwarded; fields that carry
    /// content Aegis cannot judge (`prediction`, `documents`, legacy `functions`, a
    /// top-level `system`, …) are refused.
    pub unknown_fields: UnknownFields,
    /// Unknown fields forwarded anyway, per provider id (`"*"`: every provider):
    /// `forward_fields = { openai = ["vendor_knob"] }`.
    pub forward_fields: BTreeMap<String, Vec<String>>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            media: Admit::Refuse,
            provider_references: Admit::Refuse,
            unknown_fields: UnknownFields::Drop,
            forward_fields: BTreeMap::new(),
        }
    }
}

/// Refuse or allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Admit {
    /// Refused with a clear `400` naming the part.
    Refuse,
    /// Sent on.
    Allow,
}

/// What happens to unknown request fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// Removed before the provider call.
    Drop,
    /// Sent on as they came.
    Forward,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            durability: Durability::Exit,
            stream_buffering: true,
            require_auth: false,
            resume_lease_ms: 600_000,
            default_model: None,
            admission: AdmissionConfig::default(),
            store_content: StoreContent::default(),
        }
    }
}

/// Routing settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RoutingConfig {
    /// Provider id used when the model names no provider (default: the first provider).
    pub default_provider: Option<String>,
    /// Model aliases: `fast = "openai/gpt-4o-mini"`.
    pub aliases: BTreeMap<String, String>,
}

/// A named pipeline (`[[pipelines]]`): selected per route (`/v1/pipelines/{name}/...`), by
/// a key's `pipeline` label, or by `POST /v1/runs {"graph": name}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NamedPipelineConfig {
    /// The pipeline's name (also its graph's name, which its runs record).
    pub name: String,
    /// Ids of the `[[guardrails]]` it runs, in this order; default none.
    #[serde(default)]
    pub guardrails: Vec<String>,
    /// Ids of the `[[policies]]` it runs, in this order; default **all of them** (a named
    /// pipeline does not shed budgets or residency unless its config says so).
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    /// The model of requests that name none (or name `default`).
    #[serde(default)]
    pub default_model: Option<String>,
}

/// One plugin instance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PluginConfig {
    /// Instance id (unique per kind), used in routing, telemetry and errors.
    pub id: String,
    /// Registered plugin type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The plugin's own config, validated against its schema.
    #[serde(default)]
    pub config: Value,
}

/// One guard instance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GuardrailConfig {
    /// Instance id: the `guard` of its verdicts.
    pub id: String,
    /// Registered guard type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Restrict to these stages (default: every stage the guard supports).
    #[serde(default)]
    pub stages: Option<Vec<Stage>>,
    /// Error or timeout: `closed` (block, default) or `open` (allow, recorded).
    #[serde(default)]
    pub fail_mode: FailMode,
    /// `enforce` (default) or `shadow` (record only).
    #[serde(default)]
    pub mode: GuardMode,
    /// Deadline of one check in milliseconds (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The guard's own config.
    #[serde(default)]
    pub config: Value,
}

fn default_timeout_ms() -> u64 {
    5000
}

impl AegisConfig {
    /// Parses TOML and applies the `AEGIS_*` overrides in `env`.
    pub fn from_toml_str<K, V>(
        toml_text: &str,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, Error>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut doc: toml::Table = toml::from_str(toml_text)
            .map_err(|e| Error::config(format!("config is not valid TOML: {e}")))?;
        for (k, v) in env {
            apply_env_override(&mut doc, k.as_ref(), v.as_ref())?;
        }
        let json = serde_json::to_value(&doc).map_err(|e| Error::config(format!("config: {e}")))?;
        Self::from_json(json)
    }

    /// Reads a TOML file, with overrides from the process environment.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read config `{}`: {e}", path.display())))?;
        Self::from_toml_str(&text, std::env::vars())
    }

    /// Deserializes from JSON, naming the path of the first error.
    pub fn from_json(json: Value) -> Result<Self, Error> {
        serde_path_to_error::deserialize(json).map_err(|e| {
            let path = e.path().to_string();
            Error::config(format!("{path}: {}", humanize(&e.into_inner().to_string())))
        })
    }
}

/// Serde's "expected f32" becomes "expected a number": people read these messages.
pub(crate) fn humanize(msg: &str) -> String {
    let mut out = msg.to_owned();
    for t in [
        "f32", "f64", "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
    ] {
        out = out.replace(&format!("expected {t}"), "expected a number");
    }
    out.replace("expected a boolean", "expected true or false")
}

/// The top-level config sections `AEGIS_*` variables may override.
const SECTIONS: [&str; 10] = [
    "pipeline",
    "pricing",
    "pipelines",
    "routing",
    "providers",
    "guardrails",
    "authenticators",
    "policies",
    "telemetry",
    "server",
];

fn apply_env_override(doc: &mut toml::Table, key: &str, raw: &str) -> Result<(), Error> {
    let Some(rest) = key.strip_prefix("AEGIS_") else {
        return Ok(());
    };
    let segments: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
    // Other AEGIS_* variables (AEGIS_TEST_DATABASE_URL, a host's own) are not config.
    if !SECTIONS.contains(&segments[0].as_str()) {
        return Ok(());
    }
    if segments.iter().any(String::is_empty) {
        return Err(Error::config(format!(
            "environment override `{key}` has an empty path segment"
        )));
    }
    let value = parse_env_value(raw);
    let mut slot: &mut toml::Value = doc_entry(doc, &segments[0]);
    for seg in &segments[1..] {
        slot = match slot {
            toml::Value::Array(items) => {
                let idx: usize = seg.parse().map_err(|_| {
                    Error::config(format!(
                        "environment override `{key}`: `{seg}` is not an array index"
                    ))
                })?;
                if idx > items.len() {
                    return Err(Error::config(format!(
                        "environment override `{key}`: index {idx} is past the end of a list of {}",
                        items.len()
                    )));
                }
                if idx == items.len() {
                    items.push(toml::Value::Table(toml::Table::new()));
                }
                &mut items[idx]
            }
            toml::Value::Table(t) => doc_entry(t, seg),
            other => {
                *other = toml::Value::Table(toml::Table::new());
                match other {
                    toml::Value::Table(t) => doc_entry(t, seg),
                    _ => unreachable!("just replaced by a table"),
                }
            }
        };
    }
    *slot = value;
    Ok(())
}

fn doc_entry<'a>(t: &'a mut toml::Table, key: &str) -> &'a mut toml::Value {
    t.entry(key.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
}

fn parse_env_value(raw: &str) -> toml::Value {
    #[derive(Deserialize)]
    struct Probe {
        v: toml::Value,
    }
    match toml::from_str::<Probe>(&format!("v = {raw}")) {
        Ok(p) => p.v,
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_override_reaches_into_lists_and_keeps_strings() {
        let cfg = AegisConfig::from_toml_str(
            "[[providers]]\nid = \"a\"\ntype = \"openai\"\n[providers.config]\nbase_url = \"http://x\"\n",
            [
                ("AEGIS_PROVIDERS__0__CONFIG__BASE_URL", "http://y:1/v1"),
                ("AEGIS_PIPELINE__STREAM_BUFFERING", "false"),
                ("PATH", "/usr/bin"),
                ("AEGIS_TEST_DATABASE_URL", "postgres://not-config"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.providers[0].config["base_url"], "http://y:1/v1");
        assert!(!cfg.pipeline.stream_buffering);
    }

    #[test]
    fn wrong_type_names_the_path_in_plain_words() {
        let err = AegisConfig::from_toml_str(
            "[[guardrails]]\nid = \"x\"\ntype = \"t\"\ntimeout_ms = \"soon\"\n",
            [("", "")],
        )
        .unwrap_err();
        assert_eq!(err.kind(), aegis_contracts::ErrorKind::Config);
        assert!(
            err.message().starts_with("guardrails[0].timeout_ms: "),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains("expected a number"),
            "{}",
            err.message()
        );
    }
}
