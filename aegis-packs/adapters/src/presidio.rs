//! [`Presidio`]: Presidio's analyzer and anonymizer services as a guardrail.

use std::time::Duration;

use aegis_contracts::{
    Cost, Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, RequestContext,
    Span, Stage, Verdict, async_trait,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{Service, char_to_byte};
use crate::joined::Joined;

/// What [`Presidio`] does with detected entities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresidioAction {
    /// Refuse the text.
    Block,
    /// Rewrite it through the anonymizer (the default).
    #[default]
    Anonymize,
}

/// Config of [`Presidio`].
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresidioConfig {
    /// Base URL of presidio-analyzer (e.g. `http://presidio-analyzer:3000`).
    pub analyzer_url: String,
    /// Base URL of presidio-anonymizer; required for `action = "anonymize"`.
    #[serde(default)]
    pub anonymizer_url: Option<String>,
    /// Language of the texts (default `en`).
    #[serde(default = "default_language")]
    pub language: String,
    /// Entities to look for (default: all the analyzer knows).
    #[serde(default)]
    pub entities: Vec<String>,
    /// Minimum score of a finding (default 0.5).
    #[serde(default = "default_threshold")]
    pub score_threshold: f32,
    /// `anonymize` (default) or `block`.
    #[serde(default)]
    pub action: PresidioAction,
    /// Anonymizer operators as Presidio's `anonymizers` object (default: replace every entity
    /// with `<ENTITY_TYPE>`).
    #[serde(default)]
    pub anonymizers: Option<Value>,
    /// Deadline of one call in milliseconds (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Stages judged (default: every stage).
    #[serde(default = "default_stages")]
    pub stages: Vec<Stage>,
}

fn default_language() -> String {
    "en".into()
}
fn default_threshold() -> f32 {
    0.5
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_stages() -> Vec<Stage> {
    Stage::ALL.to_vec()
}

impl PresidioConfig {
    /// Defaults for an analyzer and an anonymizer.
    pub fn new(analyzer_url: impl Into<String>, anonymizer_url: impl Into<String>) -> Self {
        Self {
            analyzer_url: analyzer_url.into(),
            anonymizer_url: Some(anonymizer_url.into()),
            language: default_language(),
            entities: Vec::new(),
            score_threshold: default_threshold(),
            action: PresidioAction::Anonymize,
            anonymizers: None,
            timeout_ms: default_timeout_ms(),
            stages: default_stages(),
        }
    }
}

/// A guardrail delegating to Presidio.
pub struct Presidio {
    analyzer: Service,
    anonymizer: Option<Service>,
    config: PresidioConfig,
}

impl std::fmt::Debug for Presidio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presidio")
            .field("analyzer_url", &self.config.analyzer_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Recognized {
    entity_type: String,
    start: usize,
    end: usize,
    score: f32,
}

impl Presidio {
    /// A guard for the services in `config`.
    pub fn new(config: PresidioConfig) -> Result<Self, Error> {
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let analyzer = Service::new("Presidio analyzer", &config.analyzer_url, timeout, None)?;
        let anonymizer = match (&config.anonymizer_url, config.action) {
            (Some(url), _) => Some(Service::new("Presidio anonymizer", url, timeout, None)?),
            (None, PresidioAction::Anonymize) => {
                return Err(Error::config(
                    "presidio: `action = \"anonymize\"` needs `anonymizer_url`",
                ));
            }
            (None, PresidioAction::Block) => None,
        };
        if !(0.0..=1.0).contains(&config.score_threshold) {
            return Err(Error::config(
                "presidio: `score_threshold` must be within 0..=1",
            ));
        }
        Ok(Self {
            analyzer,
            anonymizer,
            config,
        })
    }

    async fn analyze(&self, text: &str) -> Result<Vec<Value>, Error> {
        let mut body = json!({"text": text, "language": self.config.language, "score_threshold": self.config.score_threshold});
        if !self.config.entities.is_empty() {
            body["entities"] = json!(self.config.entities);
        }
        match self.analyzer.post("analyze", &body).await? {
            Value::Array(items) => Ok(items),
            other => Err(Error::provider(format!(
                "Presidio analyzer answered {other} instead of a list"
            ))),
        }
    }

    /// A result at or above the threshold, with its byte span in `text`.
    fn recognized(
        &self,
        text: &str,
        item: &Value,
    ) -> Result<Option<(usize, usize, Recognized)>, Error> {
        let r: Recognized = serde_json::from_value(item.clone()).map_err(|e| {
            Error::provider(format!(
                "Presidio analyzer result has an unexpected shape: {e}"
            ))
        })?;
        if r.score < self.config.score_threshold {
            return Ok(None);
        }
        // Presidio counts characters; spans here are bytes.
        match (char_to_byte(text, r.start), char_to_byte(text, r.end)) {
            (Some(start), Some(end)) if start <= end => Ok(Some((start, end, r))),
            _ => Err(Error::provider(format!(
                "Presidio reported {}..{} outside a {}-character text",
                r.start,
                r.end,
                text.chars().count()
            ))),
        }
    }

    async fn anonymize(&self, text: &str, results: &[Value]) -> Result<String, Error> {
        let service = self
            .anonymizer
            .as_ref()
            .ok_or_else(|| Error::config("presidio: no anonymizer configured"))?;
        let anonymizers = self
            .config
            .anonymizers
            .clone()
            .unwrap_or_else(|| json!({"DEFAULT": {"type": "replace"}}));
        let v = service
            .post(
                "anonymize",
                &json!({"text": text, "analyzer_results": results, "anonymizers": anonymizers}),
            )
            .await?;
        v["text"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::provider("Presidio anonymizer answered without `text`"))
    }
}

#[async_trait]
impl Guardrail for Presidio {
    fn capabilities(&self) -> GuardCapabilities {
        let caps = GuardCapabilities::new(self.config.stages.clone(), Granularity::FullText)
            .with_cost(Cost::Expensive);
        match self.config.action {
            PresidioAction::Anonymize => caps.sanitizing(),
            PresidioAction::Block => caps,
        }
    }

    /// One analyzer call per subject (and one anonymizer call): the segments are joined.
    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        let Some(joined) = Joined::of(subject) else {
            return Ok(Verdict::allow());
        };
        let text = joined.text.as_str();
        let mut findings = Vec::new();
        let mut kept = Vec::new();
        for mut item in self.analyze(text).await? {
            let Some((start, end, r)) = self.recognized(text, &item)? else {
                continue;
            };
            let Some((segment, start, end, cut)) = joined.locate(start, end) else {
                continue;
            };
            // A result running over a separator is cut at its segment's end, for the
            // anonymizer too, so the rewritten text still splits back.
            if cut < r_end_bytes(text, &item) {
                item["end"] = text[..cut].chars().count().into();
            }
            findings.push(Finding::new(
                r.entity_type,
                Some(Span {
                    segment,
                    start,
                    end,
                }),
                r.score,
                "presidio",
            ));
            kept.push(item);
        }
        let mut edits = Vec::new();
        if !kept.is_empty() && self.config.action == PresidioAction::Anonymize {
            let new = self.anonymize(text, &kept).await?;
            edits = joined.edits_to(&new).ok_or_else(|| {
                Error::provider("Presidio anonymizer changed the text between segments")
            })?;
        }
        if findings.is_empty() {
            return Ok(Verdict::allow());
        }
        Ok(match self.config.action {
            PresidioAction::Block => {
                let mut kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
                kinds.dedup();
                Verdict::block(format!("personal data found: {}", kinds.join(", ")), "pii")
                    .with_findings(findings.clone())
            }
            PresidioAction::Anonymize => Verdict::sanitize(edits).with_findings(findings),
        })
    }
}

/// The byte offset of a Presidio result's `end` (characters) in `text`.
fn r_end_bytes(text: &str, item: &Value) -> usize {
    item.get("end")
        .and_then(Value::as_u64)
        .and_then(|n| char_to_byte(text, n as usize))
        .unwrap_or(text.len())
}
