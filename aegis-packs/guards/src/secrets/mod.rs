//! [`Secrets`]: credentials, private keys, connection strings and high-entropy tokens.

mod rules;

use std::collections::BTreeMap;

use aegis_contracts::{
    Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, RequestContext, Stage,
    Verdict,
};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use async_trait::async_trait;
use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::util::{self, Action};
use rules::{RULES, Rule, TIER_GENERIC, TIER_VENDOR};

const DETECTOR: &str = "secrets";
const TIER_ENTROPY: u8 = 0;
/// Capacity of the per-check rule bitset (rules plus the PEM pseudo-rule).
const MAX_RULES: usize = 256;
/// Tokens longer than this are not judged by entropy (base64 images, minified data).
pub const ENTROPY_MAX_TOKEN_BYTES: usize = 256;
/// The default [`SecretsConfig::entropy_threshold`], in bits per character.
pub const DEFAULT_ENTROPY_THRESHOLD: f64 = 3.5;
/// The private-key block kinds, reported as finding kinds.
pub const PRIVATE_KEY_TYPES: [&str; 7] = [
    "rsa_private_key",
    "ec_private_key",
    "dsa_private_key",
    "openssh_private_key",
    "encrypted_private_key",
    "pgp_private_key",
    "pkcs8_private_key",
];
/// Types renamed for one vocabulary (`<scheme>_connection_string` and the generic
/// `connection_string`), old name first; `disabled_types` accepts both.
const RENAMED: &[(&str, &str)] = &[("password_in_url", "connection_string")];

/// The kind of high-entropy findings.
pub const HIGH_ENTROPY_TYPE: &str = "high_entropy_string";

/// Configuration of [`Secrets`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// `block` (default) or `redact` (each secret becomes `[REDACTED:<type>]`).
    #[serde(default)]
    pub action: Action,
    /// Also flag high-entropy tokens that no specific rule recognised (default `true`).
    #[serde(default = "yes")]
    pub entropy: bool,
    /// Shannon entropy (bits per character) at or above which a candidate token is flagged
    /// (default 3.5).
    ///
    /// Candidates are tokens of `entropy_min_len..=256` bytes from the base64 / URL-safe
    /// alphabet that mix upper case, lower case and digits, and that are not word-like: fewer
    /// than 40% of their characters sit in runs of 3+ lower-case letters. Hex digests, UUIDs
    /// and plain words are never candidates (no case mix); camelCase identifiers such as
    /// `getUserAccountDetailsById2` fail the word-like test. Random base64 scores 3.7–4.3 bits
    /// at 20 characters and 4.5–5.2 at 40, so 3.5 keeps about 95% of 20-character and 98% of
    /// 40-character random tokens; raise it to trade recall for fewer false positives.
    #[serde(default = "default_threshold")]
    pub entropy_threshold: f64,
    /// Shortest token judged by entropy, in bytes (default 20, at least 16).
    #[serde(default = "default_min_len")]
    pub entropy_min_len: usize,
    /// Credential types to switch off, by id (see [`Secrets::types`]). Unknown ids are a
    /// config error; the former name `password_in_url` still means `connection_string`.
    #[serde(default)]
    pub disabled_types: Vec<String>,
    /// Longest PEM/PGP private-key block the guard redacts whole, in bytes (default 8192,
    /// enough for a 4096-bit RSA key). It dominates the streaming window the guard declares;
    /// the longest other rule (a JWT) needs 4412 bytes, so lowering this below that does not
    /// shrink the window further.
    #[serde(default = "default_pem_max")]
    pub pem_max_bytes: usize,
    /// Stages the guard applies to (default: all).
    #[serde(default = "util::all_stages")]
    pub stages: Vec<Stage>,
}

fn yes() -> bool {
    true
}
fn default_threshold() -> f64 {
    DEFAULT_ENTROPY_THRESHOLD
}
fn default_min_len() -> usize {
    20
}
fn default_pem_max() -> usize {
    8192
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            action: Action::Block,
            entropy: true,
            entropy_threshold: DEFAULT_ENTROPY_THRESHOLD,
            entropy_min_len: default_min_len(),
            disabled_types: Vec::new(),
            pem_max_bytes: default_pem_max(),
            stages: util::all_stages(),
        }
    }
}

/// A rule and its regex, compiled the first time one of its keywords occurs: a guard that
/// never sees a Slack token never pays for the Slack rule (start-up stays in microseconds).
struct CompiledRule {
    rule: &'static Rule,
    pattern: String,
    regex: std::sync::OnceLock<Result<Regex, String>>,
}

impl CompiledRule {
    fn regex(&self) -> Result<&Regex, Error> {
        self.regex
            .get_or_init(|| {
                RegexBuilder::new(&self.pattern)
                    .size_limit(64 * 1024 * 1024)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| {
                Error::internal(format!(
                    "secrets: rule `{}` does not compile: {e}",
                    self.rule.id
                ))
            })
    }
}

/// Detects credentials: 84 rules (76 vendor-specific, 8 context-based; see [`Secrets::types`]),
/// PEM/PGP private-key blocks, and high-entropy tokens.
///
/// Cost on clean text is one Aho-Corasick pass over the rules' literal keywords plus one
/// byte pass for entropy candidates; a rule's regex runs only when one of its keywords
/// occurs. Overlapping detections resolve to the most specific one (vendor rule, then
/// generic rule, then entropy; then the longest).
///
/// Every rule has a bounded match length, so the guard declares
/// [`Granularity::Window`] of the longest possible match plus boundary context;
/// `pem_max_bytes` (8192 by default) dominates it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use aegis_contracts::{Decision, GuardSubject, Guardrail, RequestContext};
/// use aegis_guards::{Action, Secrets, SecretsConfig};
///
/// let guard = Secrets::new(SecretsConfig { action: Action::Redact, ..SecretsConfig::default() }).unwrap();
/// let key = ["AKIA", "ZQ3DRSTUVWXY2345"].concat();
/// let mut subject = GuardSubject::ToolResult { call_id: "1".into(), name: "env".into(), content: format!("key={key}"), server: None };
/// let verdict = guard.check(&subject, &RequestContext::default()).await.unwrap();
/// let Decision::Sanitize { edits } = &verdict.decision else { panic!() };
/// subject.apply_edits(edits).unwrap();
/// assert_eq!(subject.segments()[0].text, "key=[REDACTED:aws_access_key_id]");
/// # });
/// ```
pub struct Secrets {
    rules: Vec<CompiledRule>,
    prefilter: AhoCorasick,
    /// Prefilter pattern id -> (rule index or `rules.len()` for PEM, exact keyword if case-sensitive).
    keyword_rule: Vec<(usize, Option<&'static str>)>,
    pem_header: Regex,
    window: usize,
    config: SecretsConfig,
    /// Anchored probes over every rule and the PEM header, built on first streamed use.
    probes: std::sync::OnceLock<Option<aegis_settle::Probes>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("rules", &self.rules.len())
            .field("window", &self.window)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

struct Candidate {
    start: usize,
    end: usize,
    /// What a redaction replaces: the secret inside the reported span.
    redact: (usize, usize),
    tier: u8,
    order: usize,
    kind: &'static str,
}

fn translate(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)")
}

/// The longest match any rule can produce, in bytes: a test checks it against every rule,
/// so building the guard need not parse each rule's pattern to learn it.
const RULES_MAX_LEN: usize = 4412;

/// The longest match a pattern can produce, in bytes (`None` when unbounded).
#[cfg(test)]
fn max_len(pattern: &str) -> Option<usize> {
    regex_syntax::Parser::new()
        .parse(pattern)
        .ok()
        .and_then(|hir| hir.properties().maximum_len())
}

impl Secrets {
    /// Compiles the rules; a [`Config`](aegis_contracts::ErrorKind::Config) error for an
    /// unknown disabled type or an out-of-range threshold.
    pub fn new(mut config: SecretsConfig) -> Result<Self, Error> {
        util::check_stages("secrets", &config.stages)?;
        for t in &mut config.disabled_types {
            if let Some((_, now)) = RENAMED.iter().find(|(old, _)| old == t) {
                *t = (*now).to_owned();
            }
        }
        if !(config.entropy_threshold.is_finite()
            && (1.0..=8.0).contains(&config.entropy_threshold))
        {
            return Err(Error::config(
                "secrets: `entropy_threshold` must be between 1.0 and 8.0 bits",
            ));
        }
        if config.entropy_min_len < 16 || config.entropy_min_len > ENTROPY_MAX_TOKEN_BYTES {
            return Err(Error::config(format!(
                "secrets: `entropy_min_len` must be between 16 and {ENTROPY_MAX_TOKEN_BYTES}"
            )));
        }
        if config.pem_max_bytes < 256 {
            return Err(Error::config(
                "secrets: `pem_max_bytes` must be at least 256",
            ));
        }
        for t in &config.disabled_types {
            if !Self::types().any(|k| k == t) {
                return Err(Error::config(format!(
                    "secrets: unknown credential type `{t}` in `disabled_types`"
                )));
            }
        }
        let disabled = |id: &str| config.disabled_types.iter().any(|d| d == id);
        let mut rules = Vec::new();
        let mut keywords: Vec<&'static str> = Vec::new();
        let mut keyword_rule = Vec::new();
        // Every rule is bounded (tested): disabled rules can only make the window larger
        // than needed, which is safe.
        let mut longest = RULES_MAX_LEN;
        if RULES.len() >= MAX_RULES {
            return Err(Error::internal(
                "secrets: too many rules for the prefilter bitset",
            ));
        }
        for rule in RULES.iter().filter(|r| !disabled(r.id)) {
            let pattern = translate(rule.pattern);
            for kw in rule.keywords {
                let (text, exact) = match kw.strip_prefix('~') {
                    Some(ci) => (ci, None),
                    None => (*kw, Some(*kw)),
                };
                keywords.push(text);
                keyword_rule.push((rules.len(), exact));
            }
            rules.push(CompiledRule {
                rule,
                pattern,
                regex: std::sync::OnceLock::new(),
            });
        }
        let pem_enabled = PRIVATE_KEY_TYPES.iter().any(|t| !disabled(t));
        if pem_enabled {
            keywords.push("-----BEGIN ");
            keyword_rule.push((rules.len(), Some("-----BEGIN ")));
            longest = longest.max(config.pem_max_bytes);
        }
        if config.entropy && !disabled(HIGH_ENTROPY_TYPE) {
            longest = longest.max(ENTROPY_MAX_TOKEN_BYTES);
        }
        // A full DFA: the keyword set is fixed and small, and overlapping search over it
        // is the whole cost of clean text.
        let prefilter = AhoCorasickBuilder::new()
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(true)
            .build(&keywords)
            .map_err(|e| Error::internal(format!("secrets: cannot build the prefilter: {e}")))?;
        let pem_header = Regex::new(
            r"-----BEGIN ((?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY( BLOCK)?-----",
        )
        .map_err(|e| Error::internal(format!("secrets: {e}")))?;
        // Boundary assertions look at one neighbouring character on each side.
        let window = longest + 8;
        Ok(Self {
            rules,
            prefilter,
            keyword_rule,
            pem_header,
            window,
            config,
            probes: std::sync::OnceLock::new(),
        })
    }

    /// The ids of every credential type the guard knows, the finding kinds it reports.
    pub fn types() -> impl Iterator<Item = &'static str> {
        RULES
            .iter()
            .map(|r| r.id)
            .chain(PRIVATE_KEY_TYPES)
            .chain(std::iter::once(HIGH_ENTROPY_TYPE))
    }

    /// The configuration.
    pub fn config(&self) -> &SecretsConfig {
        &self.config
    }

    /// How much of a streamed `text` is settled (see
    /// [`Guardrail::stream_settled`](aegis_contracts::Guardrail::stream_settled)): before
    /// the earliest rule match still in progress (every enabled rule and the PEM header,
    /// probed anchored from each start at or after `from`), a private-key block whose body
    /// runs to the end, or the token run at the end (an entropy candidate may still grow),
    /// and before any complete candidate overlapping those. `None` when the probes cannot
    /// be built.
    pub fn settled(&self, text: &str, from: usize) -> Option<usize> {
        let window = self.window;
        let probes = self
            .probes
            .get_or_init(|| {
                let mut patterns: Vec<String> =
                    self.rules.iter().map(|r| r.pattern.clone()).collect();
                patterns.push(self.pem_header.as_str().to_owned());
                let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
                // Boundary assertions look at one character after a match.
                aegis_settle::Probes::new(&patterns, aegis_settle::SyntaxConfig::new(), window, 4)
                    .ok()
            })
            .as_ref()?;
        let from = util::floor_boundary(text, from);
        let mut scan = aegis_settle::Scan::default();
        probes.scan_into(text, from, &mut scan);
        let max = self.config.pem_max_bytes;
        for header in self.pem_header.find_iter(&text[from..]) {
            let start = from + header.start();
            let limit = util::floor_boundary(text, start.saturating_add(max));
            let end = armour_end(text, from + header.end(), limit);
            // A body that runs to the end of the text so far may go on, and so may one
            // that stops at what may still become its `-----END …-----` line.
            let rest = &text.as_bytes()[end..];
            let end_line = b"-----END ";
            let open_end_line = if rest.len() < end_line.len() {
                end_line.starts_with(rest)
            } else {
                rest.starts_with(end_line)
                    && rest[end_line.len()..]
                        .iter()
                        .all(|b| b.is_ascii_uppercase() || *b == b' ' || *b == b'-')
            };
            if end >= text.len() || open_end_line {
                scan.live_at(start);
            } else {
                scan.complete.push((start, end));
            }
        }
        if self.config.entropy {
            for (start, end) in token_runs(text.as_bytes(), from) {
                if end == text.len() {
                    scan.live_at(start);
                } else if end - start >= self.config.entropy_min_len {
                    scan.complete.push((start, end));
                }
            }
        }
        Some(scan.settled(text.len()))
    }

    fn disabled(&self, kind: &str) -> bool {
        self.config.disabled_types.iter().any(|d| d == kind)
    }

    /// Adds the segment's findings, each with the span a redaction replaces.
    fn scan(
        &self,
        segment: usize,
        text: &str,
        findings: &mut Vec<(Finding, Option<aegis_contracts::Span>)>,
    ) -> Result<(), Error> {
        // A fixed bitset: no allocation on the clean path.
        let mut triggered = [0u64; MAX_RULES / 64];
        let is_set = |t: &[u64; MAX_RULES / 64], i: usize| t[i / 64] & (1 << (i % 64)) != 0;
        let mut any = false;
        for m in self.prefilter.find_overlapping_iter(text) {
            let (rule, exact) = self.keyword_rule[m.pattern().as_usize()];
            if is_set(&triggered, rule) {
                continue;
            }
            if let Some(kw) = exact {
                if &text.as_bytes()[m.start()..m.end()] != kw.as_bytes() {
                    continue;
                }
            }
            triggered[rule / 64] |= 1 << (rule % 64);
            any = true;
        }
        let mut candidates = Vec::new();
        if any {
            for (i, compiled) in self.rules.iter().enumerate() {
                if is_set(&triggered, i) {
                    self.run_rule(i, compiled, text, &mut candidates)?;
                }
            }
            if is_set(&triggered, self.rules.len()) {
                self.private_keys(text, &mut candidates);
            }
        }
        if self.config.entropy && !self.disabled(HIGH_ENTROPY_TYPE) {
            self.entropy_tokens(text, &mut candidates);
        }
        for c in resolve(candidates) {
            let score = match c.tier {
                TIER_VENDOR => 0.99,
                TIER_GENERIC => 0.8,
                _ => 0.6,
            };
            findings.push((
                Finding::new(c.kind, util::span(segment, c.start, c.end), score, DETECTOR),
                util::span(segment, c.redact.0, c.redact.1),
            ));
        }
        Ok(())
    }

    fn run_rule(
        &self,
        order: usize,
        compiled: &CompiledRule,
        text: &str,
        out: &mut Vec<Candidate>,
    ) -> Result<(), Error> {
        for caps in compiled.regex()?.captures_iter(text) {
            let Some(whole) = caps.get(0) else { continue };
            let m = caps.iter().skip(1).flatten().next().unwrap_or(whole);
            if m.is_empty() {
                continue;
            }
            if let Some(validate) = compiled.rule.validate {
                if !validate(m.as_str(), whole.as_str()) {
                    continue;
                }
            }
            let reported = if compiled.rule.report_whole { whole } else { m };
            out.push(Candidate {
                start: reported.start(),
                end: reported.end(),
                redact: (m.start(), m.end()),
                tier: compiled.rule.tier,
                order,
                kind: compiled.rule.id,
            });
        }
        Ok(())
    }

    fn private_keys(&self, text: &str, out: &mut Vec<Candidate>) {
        let max = self.config.pem_max_bytes;
        for caps in self.pem_header.captures_iter(text) {
            let Some(header) = caps.get(0) else { continue };
            let kind = match caps.get(1).map(|m| m.as_str()) {
                Some("RSA ") => PRIVATE_KEY_TYPES[0],
                Some("EC ") => PRIVATE_KEY_TYPES[1],
                Some("DSA ") => PRIVATE_KEY_TYPES[2],
                Some("OPENSSH ") => PRIVATE_KEY_TYPES[3],
                Some("ENCRYPTED ") => PRIVATE_KEY_TYPES[4],
                Some("PGP ") => PRIVATE_KEY_TYPES[5],
                _ => PRIVATE_KEY_TYPES[6],
            };
            if self.disabled(kind) {
                continue;
            }
            let start = header.start();
            let limit = util::floor_boundary(text, start.saturating_add(max));
            let end = armour_end(text, header.end(), limit);
            out.push(Candidate {
                start,
                end,
                redact: (start, end),
                tier: TIER_VENDOR,
                order: self.rules.len(),
                kind,
            });
        }
    }

    fn entropy_tokens(&self, text: &str, out: &mut Vec<Candidate>) {
        let bytes = text.as_bytes();
        for (start, end) in token_runs(bytes, 0) {
            let token = &bytes[start..end];
            if token.len() < self.config.entropy_min_len || token.len() > ENTROPY_MAX_TOKEN_BYTES {
                continue;
            }
            if !(token.iter().any(u8::is_ascii_uppercase)
                && token.iter().any(u8::is_ascii_lowercase)
                && token.iter().any(u8::is_ascii_digit))
            {
                continue;
            }
            if word_like(token) || integrity_digest(token) || in_url_or_data_uri(bytes, start) {
                continue;
            }
            if shannon_entropy(token) >= self.config.entropy_threshold {
                out.push(Candidate {
                    start,
                    end,
                    redact: (start, end),
                    tier: TIER_ENTROPY,
                    order: usize::MAX,
                    kind: HIGH_ENTROPY_TYPE,
                });
            }
        }
    }
}

/// The maximal runs of entropy-token bytes in `bytes[from..]`, as `(start, end)`.
fn token_runs(bytes: &[u8], from: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = from;
    std::iter::from_fn(move || {
        while i < bytes.len() && !is_token_byte(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i;
        while i < bytes.len() && is_token_byte(bytes[i]) {
            i += 1;
        }
        Some((start, i))
    })
}

/// Whether `b` can be part of an entropy token.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
}

/// Where a private-key block that starts its body at `from` ends: after the armoured body
/// (base64, armour headers, whitespace) and, when the body runs straight into it, the
/// `-----END …-----` line; never past `limit`. The result depends only on the text up to
/// the end it returns (plus one byte), which keeps the guard's window honest.
fn armour_end(text: &str, from: usize, limit: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = from;
    while i < limit {
        if bytes[i..limit].starts_with(b"-----") {
            if bytes[i..limit].starts_with(b"-----END ") {
                let after = i + "-----END ".len();
                if let Some(j) = text[after..limit].find("-----") {
                    let line = &text[after..after + j];
                    if line.bytes().all(|b| b.is_ascii_uppercase() || b == b' ') {
                        return after + j + 5;
                    }
                }
            }
            return i;
        }
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b"+/=:,.- \t\r\n".contains(&b)) {
            return i;
        }
        i += 1;
    }
    limit
}

/// Shannon entropy of `bytes` in bits per byte.
pub fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether the token starting at `start` is part of a URL (`https://docs.example.com/d/<id>`,
/// `s3://bucket/…`) or the payload of a `data:` URI: identifiers and encoded files, not
/// secrets. A credential in a URL's query (`?token=…`) is the assignment rule's, and one in
/// its user-info part the connection-string rules'.
fn in_url_or_data_uri(bytes: &[u8], start: usize) -> bool {
    let word_start = bytes[..start]
        .iter()
        .rposition(|b| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'(' | b'<' | b'`'))
        .map_or(0, |i| i + 1);
    let before = &bytes[word_start..start];
    before.windows(3).any(|w| w == b"://")
        || (before.ends_with(b":") && bytes[start..].starts_with(b"//"))
        || before.ends_with(b"base64,")
}

/// A subresource-integrity digest (`sha384-…`): a published hash of a public file.
fn integrity_digest(token: &[u8]) -> bool {
    [b"sha256-", b"sha384-", b"sha512-"]
        .iter()
        .any(|p| token.len() > p.len() && token[..p.len()].eq_ignore_ascii_case(*p))
}

/// Whether 40% or more of `token` sits in runs of three or more lower-case letters.
fn word_like(token: &[u8]) -> bool {
    let mut in_words = 0usize;
    let mut run = 0usize;
    for &b in token.iter().chain(std::iter::once(&b' ')) {
        if b.is_ascii_lowercase() {
            run += 1;
        } else {
            if run >= 3 {
                in_words += run;
            }
            run = 0;
        }
    }
    in_words * 10 >= token.len() * 4
}

/// Keeps a non-overlapping subset: most specific tier first, then longest, then rule order.
fn resolve(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by(|a, b| {
        b.tier
            .cmp(&a.tier)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.order.cmp(&b.order))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: BTreeMap<usize, Candidate> = BTreeMap::new();
    for c in candidates {
        let overlaps_before = kept
            .range(..c.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > c.start);
        if !overlaps_before {
            kept.insert(c.start, c);
        }
    }
    kept.into_values().collect()
}

#[async_trait]
impl Guardrail for Secrets {
    fn capabilities(&self) -> GuardCapabilities {
        let caps =
            GuardCapabilities::new(self.config.stages.clone(), Granularity::Window(self.window));
        match self.config.action {
            Action::Block | Action::RequireApproval => caps,
            Action::Redact => caps.sanitizing(),
        }
    }

    fn stream_settled(&self, text: &str, from: usize, _ctx: &RequestContext) -> Option<usize> {
        self.settled(text, from)
    }

    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        let mut found = Vec::new();
        for (i, seg) in subject.segments().iter().enumerate() {
            self.scan(i, seg.text, &mut found)?;
        }
        // A connection string is reported whole, but only its password is redacted.
        let redact: Vec<Option<aegis_contracts::Span>> = found.iter().map(|(_, r)| *r).collect();
        let findings: Vec<Finding> = found.into_iter().map(|(f, _)| f).collect();
        Ok(util::decide_with(
            findings,
            &redact,
            self.config.action,
            "secret",
            |f| {
                format!(
                    "text contains {} secret(s): {}",
                    f.len(),
                    util::kinds_list(f)
                )
            },
            |f| format!("[REDACTED:{}]", f.kind),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles_and_is_bounded_by_the_declared_longest_match() {
        let mut longest = 0;
        for r in RULES {
            let p = translate(r.pattern);
            assert!(Regex::new(&p).is_ok(), "{}", r.id);
            let n = max_len(&p);
            assert!(n.is_some(), "{} is unbounded", r.id);
            longest = longest.max(n.unwrap_or(usize::MAX));
            assert!(!r.keywords.is_empty(), "{} has no keyword", r.id);
        }
        assert_eq!(longest, RULES_MAX_LEN, "update RULES_MAX_LEN");
    }

    #[test]
    fn type_ids_are_unique() {
        let all: Vec<_> = Secrets::types().collect();
        let mut dedup = all.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(all.len(), dedup.len());
        assert!(all.len() >= 60, "{}", all.len());
    }

    #[test]
    fn identifiers_are_word_like_random_tokens_are_not() {
        assert!(word_like(b"getUserAccountDetailsById2"));
        assert!(word_like(b"Q3QuarterlyReport2024Final"));
        assert!(!word_like(b"q8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE"));
    }

    #[test]
    fn entropy_of_uniform_and_constant() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
