//! [`RegexGuard`]: deny and allow patterns on the linear-time `regex` engine.

use aegis_contracts::{
    Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, RequestContext, Stage,
    Verdict,
};
use async_trait::async_trait;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::util::{self, Action};

const DETECTOR: &str = "regex";
const SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// Configuration of [`RegexGuard`].
///
/// Semantics:
/// - **`deny`**: every match of a deny pattern in any segment is a finding (`regex_deny`);
///   `action` decides whether the subject is blocked or the matches are redacted.
/// - **`allow`**: when non-empty, *every non-empty segment* must contain a match of at least
///   one allow pattern (anchor with `^…$` to require a full match); otherwise the subject is
///   blocked with code `regex_not_allowed`, whatever `action` says (there is nothing to redact).
///   Allow patterns need the whole text, so an allow list makes the guard
///   [`Granularity::FullText`].
///
/// Patterns use the [`regex`] crate syntax (no look-around, no back-references; matching is
/// linear in the input).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegexGuardConfig {
    /// Patterns that must not match (default none).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Patterns of which at least one must match each segment (default none: no requirement).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Compile all patterns case-insensitively (default `false`).
    #[serde(default)]
    pub case_insensitive: bool,
    /// What to do with deny matches: `block` (default) or `redact`.
    #[serde(default)]
    pub action: Action,
    /// The mask used by `redact` (default `"[REDACTED]"`).
    #[serde(default = "util::default_redaction")]
    pub replacement: String,
    /// Your promise about the deny patterns: no match is longer than this many bytes, and none
    /// depends on text farther away (default 256). It is the streaming window the guard
    /// declares; a longer match is still reported but streaming may miss it.
    #[serde(default = "default_max_match_bytes")]
    pub max_match_bytes: usize,
    /// Declare the deny patterns unbounded (default `false`): the guard then needs the full
    /// text when streaming.
    #[serde(default)]
    pub unbounded: bool,
    /// Stages the guard applies to (default: all).
    #[serde(default = "util::all_stages")]
    pub stages: Vec<Stage>,
}

fn default_max_match_bytes() -> usize {
    256
}

impl RegexGuardConfig {
    /// A config with these deny patterns and the defaults.
    pub fn deny<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Self {
        Self {
            deny: patterns.into_iter().map(Into::into).collect(),
            allow: Vec::new(),
            case_insensitive: false,
            action: Action::Block,
            replacement: util::default_redaction(),
            max_match_bytes: default_max_match_bytes(),
            unbounded: false,
            stages: util::all_stages(),
        }
    }
}

/// Blocks (or redacts) deny-pattern matches and requires allow-pattern matches; see
/// [`RegexGuardConfig`] for the exact semantics.
///
/// Deny patterns are compiled into one [`RegexSet`] (one pass over clean text); only the
/// patterns that matched are re-run to locate spans.
#[derive(Debug)]
pub struct RegexGuard {
    deny_set: RegexSet,
    deny: Vec<Regex>,
    allow_set: Option<RegexSet>,
    config: RegexGuardConfig,
}

impl RegexGuard {
    /// Compiles the patterns; a [`Config`](aegis_contracts::ErrorKind::Config) error names
    /// the first bad pattern.
    pub fn new(config: RegexGuardConfig) -> Result<Self, Error> {
        util::check_stages("regex", &config.stages)?;
        if config.deny.is_empty() && config.allow.is_empty() {
            return Err(Error::config(
                "regex: give at least one `deny` or `allow` pattern",
            ));
        }
        if config.max_match_bytes == 0 {
            return Err(Error::config("regex: `max_match_bytes` must be at least 1"));
        }
        let mut deny = Vec::with_capacity(config.deny.len());
        for (i, p) in config.deny.iter().enumerate() {
            let re = RegexBuilder::new(p)
                .case_insensitive(config.case_insensitive)
                .size_limit(SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    Error::config(format!("regex: `deny[{i}]` is not a valid pattern: {e}"))
                })?;
            if re.is_match("") {
                return Err(Error::config(format!(
                    "regex: `deny[{i}]` matches the empty string"
                )));
            }
            deny.push(re);
        }
        for (i, p) in config.allow.iter().enumerate() {
            Regex::new(p).map_err(|e| {
                Error::config(format!("regex: `allow[{i}]` is not a valid pattern: {e}"))
            })?;
        }
        let set = |patterns: &[String]| {
            RegexSetBuilder::new(patterns)
                .case_insensitive(config.case_insensitive)
                .size_limit(SIZE_LIMIT)
                .build()
                .map_err(|e| Error::config(format!("regex: cannot compile the pattern set: {e}")))
        };
        let deny_set = set(&config.deny)?;
        let allow_set = if config.allow.is_empty() {
            None
        } else {
            Some(set(&config.allow)?)
        };
        Ok(Self {
            deny_set,
            deny,
            allow_set,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RegexGuardConfig {
        &self.config
    }
}

#[async_trait]
impl Guardrail for RegexGuard {
    fn capabilities(&self) -> GuardCapabilities {
        let granularity = if self.config.unbounded || self.allow_set.is_some() {
            Granularity::FullText
        } else {
            Granularity::Window(self.config.max_match_bytes)
        };
        let caps = GuardCapabilities::new(self.config.stages.clone(), granularity);
        match self.config.action {
            Action::Redact if !self.deny.is_empty() => caps.sanitizing(),
            _ => caps,
        }
    }

    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        let segments = subject.segments();
        if let Some(allow) = &self.allow_set {
            for (i, seg) in segments.iter().enumerate() {
                if !seg.text.is_empty() && !allow.is_match(seg.text) {
                    return Ok(Verdict::block(
                        format!("segment {i} matches none of the allowed patterns"),
                        "regex_not_allowed",
                    )
                    .with_finding(Finding::new(
                        "regex_not_allowed",
                        util::span(i, 0, seg.text.len()),
                        1.0,
                        DETECTOR,
                    )));
                }
            }
        }
        let mut findings = Vec::new();
        if !self.deny.is_empty() {
            for (i, seg) in segments.iter().enumerate() {
                // One pass decides the (usual) clean case without allocating.
                if !self.deny_set.is_match(seg.text) {
                    continue;
                }
                let hits = self.deny_set.matches(seg.text);
                for p in hits.iter() {
                    for m in self.deny[p].find_iter(seg.text) {
                        if m.is_empty() {
                            continue;
                        }
                        findings.push(Finding::new(
                            "regex_deny",
                            util::span(i, m.start(), m.end()),
                            1.0,
                            format!("{DETECTOR}.deny[{p}]"),
                        ));
                    }
                }
            }
        }
        Ok(util::decide(
            findings,
            self.config.action,
            "regex_deny",
            |f| format!("text matches {} denied pattern occurrence(s)", f.len()),
            |_| self.config.replacement.clone(),
        ))
    }
}
