//! [`InvisibleText`]: zero-width, bidi-control, tag and other hidden characters.

use aegis_contracts::{
    Edit, Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, RequestContext,
    Stage, Verdict,
};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::util;

const DETECTOR: &str = "invisible_text";
/// At most this many findings are recorded per check (the edits still cover every character).
pub const MAX_INVISIBLE_FINDINGS: usize = 1000;

/// What [`InvisibleText`] does with hidden characters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvisibleAction {
    /// Refuse the subject (default).
    #[default]
    Block,
    /// Remove the characters (sanitize).
    Strip,
}

/// Configuration of [`InvisibleText`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvisibleTextConfig {
    /// `block` (default) or `strip`.
    #[serde(default)]
    pub action: InvisibleAction,
    /// Also flag private-use characters (U+E000–F8FF and planes 15–16), which render as
    /// nothing or as font-specific icons (default `true`).
    #[serde(default = "yes")]
    pub private_use: bool,
    /// Characters to let through although they are in a flagged class, e.g. `"\u200d"` (ZWJ,
    /// used inside emoji sequences) or `"\u200c"` (ZWNJ, needed by Persian and Indic text).
    /// Each entry must be exactly one character. Default: none.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Stages the guard applies to (default: all).
    #[serde(default = "util::all_stages")]
    pub stages: Vec<Stage>,
}

fn yes() -> bool {
    true
}

impl Default for InvisibleTextConfig {
    fn default() -> Self {
        Self {
            action: InvisibleAction::Block,
            private_use: true,
            allow: Vec::new(),
            stages: util::all_stages(),
        }
    }
}

/// Finds characters that hide or reorder text: zero-width characters (U+200B–200D, U+2060,
/// U+FEFF, ...), bidi controls (U+202A–202E, U+2066–2069, U+200E/F, U+061C), Unicode tag
/// characters (U+E0000–E007F, the "ASCII smuggling" channel), supplementary variation
/// selectors (U+E0100–E01EF), other invisible format characters (soft hyphen, invisible
/// operators, Hangul fillers, Braille blank, ...), C0/C1 control characters other than tab,
/// line feed and carriage return, and optionally private-use characters.
///
/// Each finding is one character, so the guard declares [`Granularity::Char`]. Plain
/// variation selectors U+FE00–FE0F are *not* flagged: emoji use them everywhere.
/// Unassigned code points are not flagged (that needs the Unicode tables of a specific version).
#[derive(Debug)]
pub struct InvisibleText {
    allow: Vec<char>,
    config: InvisibleTextConfig,
}

/// The class of a hidden character, used as the finding kind.
fn classify(c: char, private_use: bool) -> Option<&'static str> {
    match aegis_contracts::text::invisible_kind(c) {
        Some(kind) => Some(kind),
        None if private_use
            && matches!(c as u32, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD) =>
        {
            Some("private_use")
        }
        None => None,
    }
}

impl InvisibleText {
    /// Builds the guard; a [`Config`](aegis_contracts::ErrorKind::Config) error when an
    /// `allow` entry is not exactly one character.
    pub fn new(config: InvisibleTextConfig) -> Result<Self, Error> {
        util::check_stages("invisible_text", &config.stages)?;
        let mut allow = Vec::with_capacity(config.allow.len());
        for (i, s) in config.allow.iter().enumerate() {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => allow.push(c),
                _ => {
                    return Err(Error::config(format!(
                        "invisible_text: `allow[{i}]` must be exactly one character"
                    )));
                }
            }
        }
        Ok(Self { allow, config })
    }

    /// The configuration.
    pub fn config(&self) -> &InvisibleTextConfig {
        &self.config
    }

    /// The finding kind for `c`, if the guard flags it.
    pub fn flags(&self, c: char) -> Option<&'static str> {
        classify(c, self.config.private_use).filter(|_| !self.allow.contains(&c))
    }

    fn scan(&self, segment: usize, text: &str, findings: &mut Vec<Finding>, edits: &mut Vec<Edit>) {
        // Fast path: printable ASCII (plus tab/newlines) has nothing to flag.
        if text
            .bytes()
            .all(|b| (0x20..0x7F).contains(&b) || b == b'\n' || b == b'\r' || b == b'\t')
        {
            return;
        }
        for (i, c) in text.char_indices() {
            let Some(kind) = self.flags(c) else { continue };
            let end = i + c.len_utf8();
            if findings.len() < MAX_INVISIBLE_FINDINGS {
                findings.push(Finding::new(
                    kind,
                    util::span(segment, i, end),
                    1.0,
                    DETECTOR,
                ));
            }
            match edits.last_mut() {
                Some(last) if last.segment == segment && last.end == i => last.end = end,
                _ => edits.push(Edit {
                    segment,
                    start: i,
                    end,
                    replacement: String::new(),
                }),
            }
        }
    }
}

#[async_trait]
impl Guardrail for InvisibleText {
    fn capabilities(&self) -> GuardCapabilities {
        let caps = GuardCapabilities::new(self.config.stages.clone(), Granularity::Char).raw_text();
        match self.config.action {
            InvisibleAction::Block => caps,
            InvisibleAction::Strip => caps.sanitizing(),
        }
    }

    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        let mut findings = Vec::new();
        let mut edits = Vec::new();
        for (i, seg) in subject.segments().iter().enumerate() {
            self.scan(i, seg.text, &mut findings, &mut edits);
        }
        if edits.is_empty() {
            return Ok(Verdict::allow());
        }
        Ok(match self.config.action {
            InvisibleAction::Block => Verdict::block(
                format!(
                    "text contains hidden characters ({})",
                    util::kinds_list(&findings)
                ),
                "invisible_text",
            )
            .with_findings(findings),
            InvisibleAction::Strip => Verdict::sanitize(edits).with_findings(findings),
        })
    }
}
