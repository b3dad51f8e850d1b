//! [`BanSubstrings`]: a literal deny list matched with one Aho-Corasick automaton.

use aegis_contracts::{
    Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, RequestContext, Stage,
    Verdict,
};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{
    literal_gate::LiteralGate,
    util::{self, Action},
};

const DETECTOR: &str = "ban_substrings";

/// Configuration of [`BanSubstrings`].
///
/// ```
/// use aegis_guards::BanSubstringsConfig;
/// let cfg: BanSubstringsConfig = serde_json::from_str(r#"{"substrings": ["project x"], "whole_word": true}"#).unwrap();
/// assert!(cfg.case_insensitive);
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BanSubstringsConfig {
    /// The banned literals (not patterns). Required, non-empty, no empty entries.
    pub substrings: Vec<String>,
    /// Match regardless of case (default `true`). ASCII letters fold fully; a pattern with
    /// non-ASCII letters also matches its all-lower-case and all-upper-case forms.
    #[serde(default = "yes")]
    pub case_insensitive: bool,
    /// Only match where the hit is not glued to a word character (alphanumeric or `_`) on
    /// either side (default `false`).
    #[serde(default)]
    pub whole_word: bool,
    /// `block` (default) or `redact` (sanitize: each hit becomes [`replacement`](Self::replacement)).
    #[serde(default)]
    pub action: Action,
    /// The mask used by `redact` (default `"[REDACTED]"`).
    #[serde(default = "util::default_redaction")]
    pub replacement: String,
    /// Stages the guard applies to (default: all).
    #[serde(default = "util::all_stages")]
    pub stages: Vec<Stage>,
}

fn yes() -> bool {
    true
}

impl BanSubstringsConfig {
    /// A config banning `substrings` with the defaults (case-insensitive, block, all stages).
    pub fn new<S: Into<String>>(substrings: impl IntoIterator<Item = S>) -> Self {
        Self {
            substrings: substrings.into_iter().map(Into::into).collect(),
            case_insensitive: true,
            whole_word: false,
            action: Action::Block,
            replacement: util::default_redaction(),
            stages: util::all_stages(),
        }
    }
}

/// Blocks (or redacts) banned literal substrings.
///
/// All patterns are compiled into one Aho-Corasick automaton; matches are reported
/// overlapping, so what is found at a position never depends on text farther away than the
/// longest pattern (plus one neighbour character on each side with `whole_word`). That is
/// the declared [`Granularity::Window`].
///
/// ```
/// # tokio_test_block_on(async {
/// use aegis_contracts::{GuardSubject, Guardrail, Message, RequestContext};
/// use aegis_guards::{BanSubstrings, BanSubstringsConfig};
///
/// let guard = BanSubstrings::new(BanSubstringsConfig::new(["Project Falcon"])).unwrap();
/// let subject = GuardSubject::Input { messages: vec![Message::user("status of project falcon?")] };
/// let verdict = guard.check(&subject, &RequestContext::default()).await.unwrap();
/// assert!(verdict.is_block());
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug)]
pub struct BanSubstrings {
    automaton: AhoCorasick,
    gate: LiteralGate,
    window: usize,
    config: BanSubstringsConfig,
}

impl BanSubstrings {
    /// Compiles the deny list; a [`Config`](aegis_contracts::ErrorKind::Config) error when it
    /// is empty or holds an empty string.
    pub fn new(config: BanSubstringsConfig) -> Result<Self, Error> {
        util::check_stages("ban_substrings", &config.stages)?;
        if config.substrings.is_empty() {
            return Err(Error::config(
                "ban_substrings: `substrings` must not be empty",
            ));
        }
        let mut patterns: Vec<String> = Vec::new();
        for (i, s) in config.substrings.iter().enumerate() {
            if s.is_empty() {
                return Err(Error::config(format!(
                    "ban_substrings: `substrings[{i}]` is empty"
                )));
            }
            let mut variants = vec![s.clone()];
            if config.case_insensitive && !s.is_ascii() {
                variants.push(s.to_lowercase());
                variants.push(s.to_uppercase());
            }
            for v in variants {
                if !patterns.contains(&v) {
                    patterns.push(v);
                }
            }
        }
        let longest = patterns.iter().map(String::len).max().unwrap_or(0);
        // Whole-word matching looks at one neighbour character (up to 4 bytes) on each side.
        let window = longest + if config.whole_word { 8 } else { 0 };
        let automaton = AhoCorasickBuilder::new()
            // A full DFA is fastest for ordinary deny lists; large lists let the crate choose.
            .kind((patterns.len() <= 500).then_some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(config.case_insensitive)
            .build(&patterns)
            .map_err(|e| {
                Error::config(format!("ban_substrings: cannot build the automaton: {e}"))
            })?;
        let gate = LiteralGate::new(&patterns, config.case_insensitive);
        Ok(Self {
            automaton,
            gate,
            window,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BanSubstringsConfig {
        &self.config
    }

    fn scan(&self, segment: usize, text: &str, out: &mut Vec<Finding>) {
        // The existence check settles the usual clean case fastest.
        if !self.gate.any(text, &self.automaton) {
            return;
        }
        let before = out.len();
        for m in self.automaton.find_overlapping_iter(text) {
            let (start, end) = (m.start(), m.end());
            if self.config.whole_word {
                let prev = text[..start].chars().next_back();
                let next = text[end..].chars().next();
                if prev.is_some_and(util::is_word_char) || next.is_some_and(util::is_word_char) {
                    continue;
                }
            }
            // Two case variants of one pattern can hit the same span; overlapping matches
            // arrive ordered by end, so duplicates sit among the latest findings.
            let duplicate = out[before..]
                .iter()
                .rev()
                .map_while(|f| f.span.filter(|s| s.end == end))
                .any(|s| s.start == start);
            if duplicate {
                continue;
            }
            out.push(Finding::new(
                "banned_substring",
                util::span(segment, start, end),
                1.0,
                DETECTOR,
            ));
        }
    }
}

#[async_trait]
impl Guardrail for BanSubstrings {
    fn capabilities(&self) -> GuardCapabilities {
        let caps =
            GuardCapabilities::new(self.config.stages.clone(), Granularity::Window(self.window));
        match self.config.action {
            Action::Block | Action::RequireApproval => caps,
            Action::Redact => caps.sanitizing(),
        }
    }

    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        let mut findings = Vec::new();
        for (i, seg) in subject.segments().iter().enumerate() {
            self.scan(i, seg.text, &mut findings);
        }
        Ok(util::decide(
            findings,
            self.config.action,
            "banned_substring",
            |f| format!("text contains {} banned substring occurrence(s)", f.len()),
            |_| self.config.replacement.clone(),
        ))
    }
}
