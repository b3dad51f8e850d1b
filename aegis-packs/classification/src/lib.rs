//! # aegis-classification
//!
//! Data classification as a policy pack: every request gets a level — by default
//! `public < internal < confidential < restricted`, names configurable — from keyword and
//! regex rules, from detectors (any configured guardrail, e.g. the PII or secrets guard,
//! whose finding kinds map to levels), and from the caller, who may *raise* the level with
//! `x-aegis-classification` but never lower it. The level is the run's
//! [`CLASSIFICATION_LABEL`], which the other packs act on (residency by level), and the
//! pack itself can require a human's approval at or above a level.
//!
//! The scan has a time limit with an explicit fail mode: closed (the default) refuses the
//! request when the scan does not finish; open labels it with the highest level the caller
//! or the config's `on_timeout` says.
//!
//! ```
//! use aegis_contracts::*;
//! use aegis_classification::{Classification, ClassificationConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let config: ClassificationConfig = serde_json::from_value(serde_json::json!({
//!     "rules": [{"keywords": ["salary"], "level": "confidential"}],
//! })).unwrap();
//! let policy = Classification::new(config, &[]).unwrap();
//! let request = ChatRequest::new("m", vec![Message::user("what is Ada's salary?")]);
//! let context = ContextView::new("run-1", None, Default::default());
//! let step = policy.step(&StepInput::new(Position::AfterAuth, &request, &context)).await.unwrap();
//! assert_eq!(step.labels[CLASSIFICATION_LABEL], "confidential");
//! # });
//! ```
#![forbid(unsafe_code)]

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use aegis_contracts::{
    CLASSIFICATION_LABEL, Error, ErrorKind, FailMode, GuardSubject, Guardrail, Policy, Position,
    REQUESTED_CLASSIFICATION_LABEL, RequestContext, Step, StepInput, async_trait,
};
use regex::RegexSet;
use schemars::JsonSchema;
use serde::Deserialize;

/// One rule: any of its keywords (case-insensitive) or patterns found in the prompt sets at
/// least `level`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Rule {
    /// Words or phrases, matched case-insensitively.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Regular expressions (Rust `regex` syntax; linear time).
    #[serde(default)]
    pub patterns: Vec<String>,
    /// The level a match sets.
    pub level: String,
}

/// A detector: a configured guardrail whose finding kinds set levels.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Detector {
    /// The id of a `[[guardrails]]` entry (e.g. `pii`, `secrets`).
    pub guard: String,
    /// Finding kind → level (`CREDIT_CARD = "restricted"`).
    #[serde(default)]
    pub kinds: BTreeMap<String, String>,
    /// The level of a finding whose kind is not in `kinds`; default: none.
    #[serde(default)]
    pub level: Option<String>,
}

/// The `classification` policy's config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClassificationConfig {
    /// The levels, lowest first.
    #[serde(default = "default_levels")]
    pub levels: Vec<String>,
    /// The level of a request nothing matches; default the lowest.
    #[serde(default)]
    pub default: Option<String>,
    /// Keyword and regex rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Guardrails used as detectors.
    #[serde(default)]
    pub detectors: Vec<Detector>,
    /// Honour the caller's requested level (`x-aegis-classification`), which can only raise
    /// the level. Default true.
    #[serde(default = "yes")]
    pub caller_may_raise: bool,
    /// Pause for a human's approval at or above this level.
    #[serde(default)]
    pub require_approval_at: Option<String>,
    /// Time limit of the scan, in milliseconds (default 200).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// What a scan that errors or times out does: `closed` (refuse; the default) or `open`.
    #[serde(default)]
    pub fail_mode: FailMode,
    /// The level a fail-open scan labels the request with; default the highest.
    #[serde(default)]
    pub on_timeout: Option<String>,
    /// The level of a request carrying parts no rule can read (images, audio, files);
    /// default the highest — what cannot be read cannot be shown to be public.
    #[serde(default)]
    pub non_text_level: Option<String>,
}

impl Default for ClassificationConfig {
    fn default() -> Self {
        Self {
            levels: default_levels(),
            default: None,
            rules: Vec::new(),
            detectors: Vec::new(),
            caller_may_raise: true,
            require_approval_at: None,
            timeout_ms: default_timeout(),
            fail_mode: FailMode::Closed,
            on_timeout: None,
            non_text_level: None,
        }
    }
}

fn default_levels() -> Vec<String> {
    ["public", "internal", "confidential", "restricted"]
        .map(String::from)
        .to_vec()
}

fn yes() -> bool {
    true
}

fn default_timeout() -> u64 {
    200
}

struct CompiledRule {
    keywords: Vec<String>,
    patterns: Option<RegexSet>,
    level: usize,
}

struct CompiledDetector {
    guard: Arc<dyn Guardrail>,
    kinds: BTreeMap<String, usize>,
    level: Option<usize>,
}

/// The classification policy (see the [crate docs](crate)).
pub struct Classification {
    levels: Vec<String>,
    default: usize,
    rules: Vec<CompiledRule>,
    detectors: Vec<CompiledDetector>,
    caller_may_raise: bool,
    approval_at: Option<usize>,
    timeout: Duration,
    fail_mode: FailMode,
    on_timeout: usize,
    non_text: usize,
}

impl std::fmt::Debug for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classification")
            .field("levels", &self.levels)
            .field("rules", &self.rules.len())
            .field("detectors", &self.detectors.len())
            .finish_non_exhaustive()
    }
}

impl Classification {
    /// Compiles `config`; `guards` are the configured guardrails detectors may name. Every
    /// problem (an unknown level or guard, a bad pattern) is reported with its path.
    pub fn new(
        config: ClassificationConfig,
        guards: &[(String, Arc<dyn Guardrail>)],
    ) -> Result<Self, Error> {
        let mut problems = Vec::new();
        if config.levels.is_empty() {
            problems.push("levels: must name at least one level".to_owned());
        }
        for (i, l) in config.levels.iter().enumerate() {
            if config.levels[..i].contains(l) {
                problems.push(format!("levels[{i}]: `{l}` is listed twice"));
            }
        }
        let level_of = |path: &str, name: &str, problems: &mut Vec<String>| -> usize {
            match config.levels.iter().position(|l| l == name) {
                Some(i) => i,
                None => {
                    problems.push(format!(
                        "{path}: unknown level `{name}` (levels: {})",
                        config.levels.join(", ")
                    ));
                    0
                }
            }
        };
        let default = match &config.default {
            Some(d) => level_of("default", d, &mut problems),
            None => 0,
        };
        let mut rules = Vec::new();
        for (i, r) in config.rules.iter().enumerate() {
            let level = level_of(&format!("rules[{i}].level"), &r.level, &mut problems);
            if r.keywords.is_empty() && r.patterns.is_empty() {
                problems.push(format!("rules[{i}]: give `keywords` or `patterns`"));
            }
            let patterns = if r.patterns.is_empty() {
                None
            } else {
                match RegexSet::new(&r.patterns) {
                    Ok(set) => Some(set),
                    Err(e) => {
                        problems.push(format!("rules[{i}].patterns: {e}"));
                        None
                    }
                }
            };
            rules.push(CompiledRule {
                keywords: r.keywords.iter().map(|k| k.to_lowercase()).collect(),
                patterns,
                level,
            });
        }
        let mut detectors = Vec::new();
        for (i, d) in config.detectors.iter().enumerate() {
            let Some((_, guard)) = guards.iter().find(|(id, _)| *id == d.guard) else {
                problems.push(format!(
                    "detectors[{i}].guard: no guardrail has id `{}`",
                    d.guard
                ));
                continue;
            };
            let kinds = d
                .kinds
                .iter()
                .map(|(k, l)| {
                    (
                        k.clone(),
                        level_of(&format!("detectors[{i}].kinds.{k}"), l, &mut problems),
                    )
                })
                .collect();
            let level = d
                .level
                .as_deref()
                .map(|l| level_of(&format!("detectors[{i}].level"), l, &mut problems));
            detectors.push(CompiledDetector {
                guard: guard.clone(),
                kinds,
                level,
            });
        }
        let approval_at = config
            .require_approval_at
            .as_deref()
            .map(|l| level_of("require_approval_at", l, &mut problems));
        let top = config.levels.len().saturating_sub(1);
        let on_timeout = match &config.on_timeout {
            Some(l) => level_of("on_timeout", l, &mut problems),
            None => top,
        };
        let non_text = match &config.non_text_level {
            Some(l) => level_of("non_text_level", l, &mut problems),
            None => top,
        };
        if config.timeout_ms == 0 {
            problems.push("timeout_ms: must be at least 1".into());
        }
        if !problems.is_empty() {
            return Err(Error::config(problems.join("\n")));
        }
        Ok(Self {
            levels: config.levels,
            default,
            rules,
            detectors,
            caller_may_raise: config.caller_may_raise,
            approval_at,
            timeout: Duration::from_millis(config.timeout_ms),
            fail_mode: config.fail_mode,
            on_timeout,
            non_text,
        })
    }

    /// The level a scan of `input` finds (rules and detectors, not the caller).
    async fn scan(&self, input: &StepInput<'_>) -> Result<usize, Error> {
        let req = input.request;
        // Everything the model will read: message text (tool messages too), tool-call
        // arguments, tool definitions — with invisible and format characters removed, so
        // `sal\u{200b}ary` is still "salary".
        let mut raw = String::new();
        let mut non_text = false;
        for m in &req.messages {
            raw.push_str(&m.text());
            raw.push('\n');
            if let Some(aegis_contracts::Content::Parts(parts)) = &m.content {
                non_text |= parts
                    .iter()
                    .any(|p| !matches!(p, aegis_contracts::ContentPart::Text { .. }));
            }
            for call in &m.tool_calls {
                raw.push_str(&call.function.name);
                raw.push(' ');
                raw.push_str(&call.function.arguments);
                raw.push('\n');
            }
        }
        for tool in &req.tools {
            raw.push_str(&tool.function.name);
            raw.push(' ');
            if let Some(d) = &tool.function.description {
                raw.push_str(d);
            }
            raw.push('\n');
        }
        let text = visible(&raw);
        let lower = text.to_lowercase();
        let mut level = if non_text {
            self.default.max(self.non_text)
        } else {
            self.default
        };
        for r in &self.rules {
            if r.level <= level {
                continue;
            }
            let hit = r.keywords.iter().any(|k| lower.contains(k.as_str()))
                || r.patterns.as_ref().is_some_and(|p| p.is_match(&text));
            if hit {
                level = r.level;
            }
        }
        if !self.detectors.is_empty() {
            let subject = GuardSubject::Input {
                messages: input.request.messages.clone(),
            };
            let mut ctx = RequestContext::default();
            ctx.run_id = Some(input.context.run_id.clone());
            ctx.principal.clone_from(&input.context.principal);
            ctx.labels.clone_from(&input.context.labels);
            for d in &self.detectors {
                let verdict = d.guard.check(&subject, &ctx).await?;
                for f in &verdict.findings {
                    if let Some(l) = d.kinds.get(&f.kind).copied().or(d.level) {
                        level = level.max(l);
                    }
                }
            }
        }
        Ok(level)
    }

    /// The level named `name`, if it is one.
    pub fn level_index(&self, name: &str) -> Option<usize> {
        self.levels.iter().position(|l| l == name)
    }
}

/// `text` without invisible and format characters (zero-width, bidi controls, soft hyphen,
/// word joiners, tag characters, variation selectors) that hide words from rules but not from
/// a model.
fn visible(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            !matches!(c,
                '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
                | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
                | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
        })
        .collect()
}

#[async_trait]
impl Policy for Classification {
    fn positions(&self) -> &[Position] {
        &[Position::AfterAuth]
    }

    fn explain(
        &self,
        context: &aegis_contracts::ContextView,
        _route: Option<&aegis_contracts::RouteView>,
    ) -> serde_json::Value {
        serde_json::json!({
            "levels": self.levels,
            "default": self.levels[self.default],
            "requested": context.labels.get(REQUESTED_CLASSIFICATION_LABEL),
            "rules": self.rules.len(),
            "detectors": self.detectors.len(),
            "require_approval_at": self.approval_at.map(|i| self.levels[i].clone()),
            "non_text_level": self.levels[self.non_text],
            "timeout_ms": self.timeout.as_millis() as u64,
            "fail_mode": self.fail_mode,
        })
    }

    async fn step(&self, input: &StepInput<'_>) -> Result<Step, Error> {
        let scanned = match tokio::time::timeout(self.timeout, self.scan(input)).await {
            Ok(Ok(level)) => level,
            Ok(Err(e)) if self.fail_mode == FailMode::Closed => {
                return Err(Error::new(
                    ErrorKind::PolicyBlocked,
                    format!("classification failed and fails closed: {}", e.message()),
                )
                .with_code("classification_unavailable"));
            }
            Err(_) if self.fail_mode == FailMode::Closed => {
                return Err(Error::new(
                    ErrorKind::PolicyBlocked,
                    format!(
                        "classification did not finish within {} ms and fails closed",
                        self.timeout.as_millis()
                    ),
                )
                .with_code("classification_timeout"));
            }
            // Fail open: the configured (by default the highest) level, never a lower one.
            Ok(Err(_)) | Err(_) => self.on_timeout,
        };
        let requested = input
            .context
            .labels
            .get(REQUESTED_CLASSIFICATION_LABEL)
            .filter(|_| self.caller_may_raise);
        let level = match requested {
            None => scanned,
            Some(name) => match self.level_index(name.trim()) {
                Some(r) => scanned.max(r),
                None => {
                    return Err(Error::invalid_request(format!(
                        "x-aegis-classification: unknown level `{name}` (levels: {})",
                        self.levels.join(", ")
                    )));
                }
            },
        };
        let mut step = Step::proceed().label(CLASSIFICATION_LABEL, self.levels[level].clone());
        if let Some(at) = self.approval_at
            && level >= at
        {
            step = step.require_approval(format!(
                "the request is classified `{}`, which needs a reviewer's approval",
                self.levels[level]
            ));
        }
        Ok(step)
    }
}
