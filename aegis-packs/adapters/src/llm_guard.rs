//! [`LlmGuard`]: the `llm_guard_api` service as a guardrail.

use std::time::Duration;

use aegis_contracts::{
    Cost, Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, RequestContext,
    Secret, Stage, Verdict, async_trait,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::Service;
use crate::joined::Joined;

/// Config of [`LlmGuard`].
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmGuardConfig {
    /// Base URL of the `llm_guard_api` service (e.g. `http://llm-guard:8000`).
    pub base_url: String,
    /// Bearer token, when the service requires one (`secret://env/LLM_GUARD_TOKEN`).
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Deadline of one call in milliseconds (default 5000). A slower service is an error,
    /// which the chain blocks on unless `fail_mode = "open"`.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Scanners whose failure is repaired by rewriting the text. When only these failed and
    /// the service returned rewritten text, the verdict is Sanitize, not Block.
    #[serde(default = "default_sanitizing")]
    pub sanitizing_scanners: Vec<String>,
    /// Scanners the service should skip (`scanners_suppress`).
    #[serde(default)]
    pub scanners_suppress: Vec<String>,
    /// Stages judged (default: input, output, tool results, retrieved documents).
    #[serde(default = "default_stages")]
    pub stages: Vec<Stage>,
}

fn default_timeout_ms() -> u64 {
    5000
}

fn default_sanitizing() -> Vec<String> {
    [
        "Anonymize",
        "Secrets",
        "Regex",
        "BanSubstrings",
        "InvisibleText",
        "Sensitive",
        "Deanonymize",
    ]
    .map(String::from)
    .to_vec()
}

fn default_stages() -> Vec<Stage> {
    vec![
        Stage::Input,
        Stage::Output,
        Stage::ToolResult,
        Stage::Retrieved,
    ]
}

impl LlmGuardConfig {
    /// Defaults for a service at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_token: None,
            timeout_ms: default_timeout_ms(),
            sanitizing_scanners: default_sanitizing(),
            scanners_suppress: Vec::new(),
            stages: default_stages(),
        }
    }
}

/// A guardrail delegating to LLM Guard's API.
pub struct LlmGuard {
    service: Service,
    config: LlmGuardConfig,
}

impl std::fmt::Debug for LlmGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmGuard")
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(alias = "sanitized_prompt", alias = "sanitized_output")]
    sanitized: Option<String>,
    is_valid: bool,
    #[serde(default)]
    scanners: std::collections::BTreeMap<String, f64>,
}

impl LlmGuard {
    /// A guard for the service in `config`.
    pub fn new(config: LlmGuardConfig) -> Result<Self, Error> {
        if config.stages.is_empty() {
            return Err(Error::config(
                "llm_guard: `stages` must name at least one stage",
            ));
        }
        let service = Service::new(
            "LLM Guard",
            &config.base_url,
            Duration::from_millis(config.timeout_ms.max(1)),
            config.api_token.clone(),
        )?;
        Ok(Self { service, config })
    }

    async fn scan(&self, output: bool, text: &str) -> Result<Answer, Error> {
        let (path, body) = if output {
            (
                "analyze/output",
                json!({"prompt": "", "output": text, "scanners_suppress": self.config.scanners_suppress}),
            )
        } else {
            (
                "analyze/prompt",
                json!({"prompt": text, "scanners_suppress": self.config.scanners_suppress}),
            )
        };
        let v: Value = self.service.post(path, &body).await?;
        serde_json::from_value(v)
            .map_err(|e| Error::provider(format!("LLM Guard answered an unexpected shape: {e}")))
    }
}

#[async_trait]
impl Guardrail for LlmGuard {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(self.config.stages.clone(), Granularity::FullText)
            .sanitizing()
            .with_cost(Cost::Expensive)
    }

    /// One scan per group of segments (joined up to [`GROUP_BYTES`]: a scanner reads only
    /// the start of a long text), with a rewrite split back.
    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        let output = subject.stage() == Stage::Output;
        let mut findings = Vec::new();
        let mut edits = Vec::new();
        let mut blocking: Vec<String> = Vec::new();
        for joined in Joined::groups(subject, GROUP_BYTES) {
            let answer = self.scan(output, &joined.text).await?;
            let failed: Vec<(&String, f64)> = answer
                .scanners
                .iter()
                .filter(|(_, s)| **s > 0.0)
                .map(|(n, s)| (n, *s))
                .collect();
            findings.extend(failed.iter().map(|(n, s)| {
                Finding::new(n.as_str(), None, (*s as f32).clamp(0.0, 1.0), "llm_guard")
            }));
            let rewritten = answer.sanitized.as_deref().filter(|s| *s != joined.text);
            let only_sanitizers = failed
                .iter()
                .all(|(n, _)| self.config.sanitizing_scanners.iter().any(|s| s == *n));
            match (answer.is_valid, rewritten) {
                (true, None) => {}
                (true, Some(new)) => edits.extend(rewrite(&joined, new)?),
                (false, Some(new)) if only_sanitizers => edits.extend(rewrite(&joined, new)?),
                (false, _) => {
                    blocking.extend(failed.iter().map(|(n, _)| (*n).clone()));
                    if failed.is_empty() {
                        blocking.push("unnamed scanner".to_owned());
                    }
                }
            }
        }
        if !blocking.is_empty() {
            blocking.sort();
            blocking.dedup();
            return Ok(Verdict::block(
                format!("LLM Guard scanners failed: {}", blocking.join(", ")),
                "llm_guard",
            )
            .with_findings(findings));
        }
        if !edits.is_empty() {
            return Ok(Verdict::sanitize(edits).with_findings(findings));
        }
        Ok(Verdict::allow().with_findings(findings))
    }
}

/// Texts joined for one LLM Guard scan, at most: its prompt-injection model reads about 512
/// tokens, so more would go unjudged.
const GROUP_BYTES: usize = 1500;

/// The edits that turn a group's segments into LLM Guard's rewrite of it.
fn rewrite(joined: &Joined, new: &str) -> Result<Vec<aegis_contracts::Edit>, Error> {
    joined
        .edits_to(new)
        .ok_or_else(|| Error::provider("LLM Guard's rewrite changed the text between segments"))
}
