//! [`JsonOutput`]: the model's answer must be valid JSON, optionally with required keys.

use aegis_contracts::{
    Content, Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail,
    RequestContext, Stage, Verdict,
};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

const DETECTOR: &str = "json_output";

/// Configuration of [`JsonOutput`].
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonOutputConfig {
    /// Keys the answer must contain (default none). A plain name is a top-level key of an
    /// object; an entry starting with `/` is a JSON Pointer (`/user/id`, `/items/0`).
    #[serde(default)]
    pub required_keys: Vec<String>,
    /// Accept an answer wrapped in one Markdown code fence (```` ```json … ``` ````), as many
    /// models produce (default `false`: the whole answer must be JSON).
    #[serde(default)]
    pub allow_code_fence: bool,
    /// Require the top-level value to be an object (default `false`).
    #[serde(default)]
    pub require_object: bool,
}

/// Blocks a model answer that is not valid JSON or lacks required keys. Output stage only;
/// it needs the whole answer ([`Granularity::FullText`]).
///
/// It judges the answer's text content (text parts are joined as by
/// [`Message::text`](aegis_contracts::Message::text)); an answer that only calls tools has no text
/// to judge and is allowed (tool-call arguments are judged at the tool-call stage).
/// A streamed [`OutputChunk`](GuardSubject::OutputChunk) is judged as given: the engine hands a
/// full-text guard the buffered answer.
#[derive(Debug)]
pub struct JsonOutput {
    config: JsonOutputConfig,
}

impl JsonOutput {
    /// Builds the guard; a [`Config`](aegis_contracts::ErrorKind::Config) error for an empty
    /// required key.
    pub fn new(config: JsonOutputConfig) -> Result<Self, Error> {
        for (i, k) in config.required_keys.iter().enumerate() {
            if k.is_empty() {
                return Err(Error::config(format!(
                    "json_output: `required_keys[{i}]` is empty"
                )));
            }
        }
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &JsonOutputConfig {
        &self.config
    }

    fn judge(&self, text: &str) -> Verdict {
        let mut body = text.trim();
        if self.config.allow_code_fence {
            if let Some(inner) = strip_fence(body) {
                body = inner;
            }
        }
        let value: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                return Verdict::block(
                    format!("the answer is not valid JSON: {e}"),
                    "invalid_json",
                )
                .with_finding(Finding::new("invalid_json", None, 1.0, DETECTOR));
            }
        };
        if self.config.require_object && !value.is_object() {
            return Verdict::block("the answer is JSON but not an object", "invalid_json")
                .with_finding(Finding::new("json_not_object", None, 1.0, DETECTOR));
        }
        let missing: Vec<&str> = self
            .config
            .required_keys
            .iter()
            .filter(|k| {
                if k.starts_with('/') {
                    value.pointer(k).is_none()
                } else {
                    value.get(k.as_str()).is_none()
                }
            })
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Verdict::allow();
        }
        Verdict::block(
            format!(
                "the JSON answer lacks required keys: {}",
                missing.join(", ")
            ),
            "invalid_json",
        )
        .with_findings(
            missing
                .iter()
                .map(|_| Finding::new("json_missing_key", None, 1.0, DETECTOR)),
        )
    }
}

/// The content of a single surrounding Markdown code fence.
fn strip_fence(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("```")?;
    let newline = rest.find('\n')?;
    let info = rest[..newline].trim();
    if !(info.is_empty() || info.eq_ignore_ascii_case("json")) {
        return None;
    }
    let inner = rest[newline + 1..].trim_end().strip_suffix("```")?;
    Some(inner.trim())
}

#[async_trait]
impl Guardrail for JsonOutput {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new([Stage::Output], Granularity::FullText).raw_text()
    }

    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        Ok(match subject {
            GuardSubject::Output { message } => match &message.content {
                None if !message.tool_calls.is_empty() => Verdict::allow(),
                Some(Content::Parts(parts))
                    if parts.iter().all(|p| p.as_text().is_none())
                        && !message.tool_calls.is_empty() =>
                {
                    Verdict::allow()
                }
                _ => self.judge(&message.text()),
            },
            GuardSubject::OutputChunk { text, .. } => self.judge(text),
            // Not an output: nothing this guard judges.
            _ => Verdict::allow(),
        })
    }
}
