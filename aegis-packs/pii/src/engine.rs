//! The analyzer: every pattern of every enabled recognizer in one multi-pattern automaton.
//!
//! # How a text is scanned
//!
//! 1. **Threshold pruning.** A pattern whose best possible score (1.0 if its recognizer's
//!    validator can prove a match, else its score plus the context boost) is below the
//!    threshold is not compiled at all.
//! 2. **One pass** of a leftmost-first [`meta::Regex`] built with `build_many` over all
//!    remaining patterns that can reach the threshold on their own finds the next *region*:
//!    the leftmost place any pattern matches.
//! 3. **A targeted second pass** over that region only: at every start inside it, an
//!    *anchored* [`MatchKind::All`] probe says which patterns match there (inside a word only
//!    the few patterns that can start mid-word are probed), and those patterns' own automata
//!    give the spans. Overlapping candidates of different recognizers — a card number that is
//!    also bank-account-shaped — are all seen, as Presidio sees them. Probes die within a few
//!    bytes on ordinary text.
//! 4. **Context gating.** Patterns that reach the threshold *only* with a context word are
//!    scanned (steps 2–3 with their own automata) only in the [`CONTEXT_BYTES`] after an
//!    occurrence of one of their context words (one Aho-Corasick pass). Pruning and gating
//!    change no result (tested).
//! 5. Look-around checks, validators (checksums), context enhancement, threshold, and
//!    per-entity duplicate removal.
//!
//! No engine involved backtracks: time is linear in the input, memory bounded by the lazy
//! DFA caches.

use std::sync::{Arc, OnceLock};

use aegis_settle::Which;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind as AcMatchKind};
use regex_automata::{
    Anchored, Input, MatchKind, PatternSet,
    meta::{self, Regex},
    util::syntax,
};
use regex_syntax::hir::Hir;

use crate::recognizers::{self, LOOKAHEAD, Recognizer};
use crate::validators::Check;

/// How many words before a match are searched for context words (Presidio's default).
pub const CONTEXT_WORDS: usize = 5;
/// At most this many bytes before a match are searched for context words; it bounds how far
/// a finding depends on text before it.
pub const CONTEXT_BYTES: usize = 96;
/// Added to a score when a context word supports it (Presidio's `context_similarity_factor`).
pub const CONTEXT_BOOST: f32 = 0.35;
/// A supported score is at least this (Presidio's `min_score_with_context_similarity`).
pub const CONTEXT_MIN_SCORE: f32 = 0.4;

/// A pattern scoring at least this is specific enough that a passing checksum proves a match
/// on its own (score 1.0). Below it — a bare run of digits, say — a checksum that one random
/// number in ten or eleven passes is not proof: a proven match scores [`WEAK_PROOF_SCORE`]
/// and needs a context word to reach the default threshold.
pub const STRONG_PATTERN_SCORE: f32 = 0.3;
/// What a passing checksum gives a weak pattern's match (see [`STRONG_PATTERN_SCORE`]).
pub const WEAK_PROOF_SCORE: f32 = 0.45;

/// The score a validated match of a pattern with base score `base` gets.
fn proven_score(base: f32) -> f32 {
    if base >= STRONG_PATTERN_SCORE {
        1.0
    } else {
        WEAK_PROOF_SCORE
    }
}

/// One detected entity.
#[derive(Debug, Clone, PartialEq)]
pub struct RecognizerResult {
    /// Entity type (`"CREDIT_CARD"`).
    pub entity: &'static str,
    /// Start byte (inclusive).
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// Final confidence in `[0, 1]`.
    pub score: f32,
    /// The recognizer that found it.
    pub recognizer: &'static str,
    /// The pattern that matched.
    pub pattern: &'static str,
    /// Whether a validator proved it (checksum).
    pub validated: bool,
    /// The context word that raised the score, if any.
    pub context_word: Option<&'static str>,
}

impl RecognizerResult {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the span is empty (never for engine results).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Which recognizers run and how results are cut off.
#[derive(Debug, Clone, Default)]
pub struct AnalyzerConfig {
    /// Entity types to detect; `None` means all predefined ones.
    pub entities: Option<Vec<String>>,
    /// Results scoring below this are dropped (after validation and context).
    pub score_threshold: f32,
}

#[derive(Debug)]
struct PatternInfo {
    recognizer: usize,
    name: &'static str,
    score: f32,
    max_len: usize,
    not_preceded_by: Option<fn(u8) -> bool>,
    not_followed_by: Option<fn(u8) -> bool>,
    not_followed_by_seq: Option<fn(&[u8]) -> bool>,
    /// Reaches the threshold only with a context word.
    gated: bool,
}

#[derive(Debug)]
struct Inner {
    recognizers: Vec<Recognizer>,
    patterns: Vec<PatternInfo>,
    /// Patterns that can reach the threshold on their own.
    main: Option<Tier>,
    /// Patterns that reach the threshold only with a context word: scanned only shortly
    /// after an occurrence of one of `gate_words`.
    gated: Option<Tier>,
    gate_words: Option<AhoCorasick>,
    /// Every compiled pattern, parsed once: the automata below are built from these.
    hirs: Vec<Hir>,
    /// One automaton per pattern, for the spans of the second pass; each is built the first
    /// time its pattern is a candidate (most never are), so building an analyzer stays cheap.
    singles: Vec<OnceLock<Option<Regex>>>,
    /// Each recognizer's context words in one automaton, built the first time one of its
    /// candidates needs a context word.
    context: Vec<OnceLock<Option<AhoCorasick>>>,
    max_match_len: usize,
    threshold: f32,
    /// Every compiled pattern's source, for the streaming probes.
    sources: Vec<String>,
    /// Anchored probes over every pattern, built on first streamed use.
    probes: OnceLock<Option<aegis_settle::Probes>>,
}

/// Per-call buffers of a scan, allocated once per [`Analyzer::analyze`] and tier.
struct Scratch {
    set: PatternSet,
    mid_set: PatternSet,
    pids: Vec<usize>,
}

impl Scratch {
    fn new(tier: &Tier) -> Self {
        Self {
            set: PatternSet::new(tier.ids.len()),
            mid_set: PatternSet::new(tier.mid_ids.len()),
            pids: Vec::with_capacity(16),
        }
    }
}

/// A set of patterns compiled for one scan: the leftmost-first finder and the anchored
/// probes (all patterns, and the few that can start inside a word).
///
/// The probes are built the first time the finder finds a region: a text without any
/// candidate — most of them — never needs them, and an `aegis scan` or a pipeline build does
/// not pay for them up front.
#[derive(Debug)]
struct Tier {
    main: Regex,
    ids: Vec<usize>,
    which: OnceLock<Option<Which>>,
    mid_ids: Vec<usize>,
    which_mid: OnceLock<Option<Which>>,
}

impl Tier {
    /// Appends to `pids` the patterns of this tier that match `probe` (anchored at its start);
    /// only those that may start inside a word when `mid_word`.
    fn probe(&self, hirs: &[Hir], probe: &Input<'_>, mid_word: bool, scratch: &mut Scratch) {
        let (ids, which, set) = if mid_word {
            (&self.mid_ids, &self.which_mid, &mut scratch.mid_set)
        } else {
            (&self.ids, &self.which, &mut scratch.set)
        };
        if ids.is_empty() {
            return;
        }
        let which = which.get_or_init(|| {
            let subset: Vec<&Hir> = ids.iter().map(|&i| &hirs[i]).collect();
            Which::from_hirs(&subset, PROBE_LIMIT, false).ok()
        });
        match which {
            Some(which) => {
                set.clear();
                which.which(probe, set);
                scratch.pids.extend(set.iter().map(|p| ids[p.as_usize()]));
            }
            // The same patterns built into the finder, so this does not happen; if it did,
            // every pattern is a candidate and its own automaton decides (slower, same result).
            None => scratch.pids.extend(ids.iter().copied()),
        }
    }
}

/// The PII analyzer. Cheap to clone (shared, immutable); build it once and reuse it.
///
/// ```
/// use aegis_pii::{Analyzer, AnalyzerConfig};
/// let analyzer = Analyzer::new(AnalyzerConfig { score_threshold: 0.5, ..Default::default() }).unwrap();
/// let found = analyzer.analyze_resolved("card 4111 1111 1111 1111, mail bob@example.com");
/// let kinds: Vec<_> = found.iter().map(|r| r.entity).collect();
/// assert_eq!(kinds, ["CREDIT_CARD", "EMAIL_ADDRESS"]);
/// ```
#[derive(Debug, Clone)]
pub struct Analyzer {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone, Copy)]
struct Raw {
    pattern: usize,
    start: usize,
    end: usize,
}

fn syntax_config() -> syntax::Config {
    // Bytes mode with ASCII classes: `\b`, `\d`, `\w` are ASCII-only, which keeps the lazy
    // DFA on its fast path for any input (Unicode word boundaries would force a fallback).
    syntax::Config::new()
        .case_insensitive(true)
        .unicode(false)
        .utf8(false)
}

/// The engine configuration of the analyzer's leftmost-first automata.
fn meta_config() -> meta::Config {
    // No full DFAs: determinizing counted digit patterns eagerly costs milliseconds per
    // pattern at start-up; the lazy DFA builds only the states a text visits.
    meta::Config::new()
        .match_kind(MatchKind::LeftmostFirst)
        .dfa(false)
        .utf8_empty(false)
        // Prefix literals of a hundred patterns, several opening with a class, make no
        // prefilter, and looking for one costs more than the rest of the build.
        .auto_prefilter(false)
        .hybrid_cache_capacity(8 << 20)
        .nfa_size_limit(Some(64 << 20))
        .dfa_size_limit(Some(8 << 20))
}

/// The size of a probe automaton and of its lazy DFA's cache, in bytes: the finder's NFA
/// limit, so a set of patterns the finder could build, the probes can too.
const PROBE_LIMIT: usize = 64 << 20;

/// One leftmost-first automaton over `hirs`, pattern `i` of it being `hirs[i]`.
fn leftmost_first(hirs: &[&Hir]) -> Result<Regex, String> {
    Regex::builder()
        .configure(meta_config())
        .build_many_from_hir(hirs)
        .map_err(|e| e.to_string())
}

/// One pattern's own automaton, or `None` if it does not build (it does: it built as part of
/// the combined automaton when the analyzer was built).
fn single_regex(hir: &Hir) -> Option<Regex> {
    leftmost_first(&[hir]).ok()
}

/// Errors building an analyzer.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An entity type named in the config has no recognizer.
    #[error("unknown entity type `{0}`")]
    UnknownEntity(String),
    /// A pattern failed to compile (a bug in a recognizer definition).
    #[error("pattern `{name}` of {recognizer}: {message}")]
    Pattern {
        /// The recognizer.
        recognizer: &'static str,
        /// The pattern.
        name: &'static str,
        /// Why.
        message: String,
    },
}

impl Analyzer {
    /// Builds an analyzer over the predefined recognizers selected by `config`.
    pub fn new(config: AnalyzerConfig) -> Result<Self, BuildError> {
        let all = recognizers::predefined();
        let recognizers: Vec<Recognizer> = match &config.entities {
            None => all,
            Some(wanted) => {
                for w in wanted {
                    if !all.iter().any(|r| r.entity == w) {
                        return Err(BuildError::UnknownEntity(w.clone()));
                    }
                }
                all.into_iter()
                    .filter(|r| wanted.iter().any(|w| w == r.entity))
                    .collect()
            }
        };
        Self::with_recognizers(recognizers, config.score_threshold)
    }

    /// Builds an analyzer over explicit recognizers.
    pub fn with_recognizers(
        recognizers: Vec<Recognizer>,
        score_threshold: f32,
    ) -> Result<Self, BuildError> {
        let mut patterns = Vec::new();
        let mut sources = Vec::new();
        let mut hirs = Vec::new();
        for (ri, rec) in recognizers.iter().enumerate() {
            for pat in &rec.patterns {
                // The best this pattern can score without a context word, and with one;
                // below the threshold it is dead weight.
                let alone = if rec.proves {
                    proven_score(pat.score)
                } else {
                    pat.score
                };
                let best = if rec.context.is_empty() || alone >= 1.0 {
                    alone
                } else {
                    (alone + rec.context_boost).clamp(CONTEXT_MIN_SCORE, 1.0)
                };
                if best < score_threshold {
                    continue;
                }
                let gated = alone < score_threshold;
                let err = |message: String| BuildError::Pattern {
                    recognizer: rec.name,
                    name: pat.name,
                    message,
                };
                let hir = syntax::parse_with(&pat.regex, &syntax_config())
                    .map_err(|e| err(e.to_string()))?;
                let max_len = match (hir.properties().maximum_len(), pat.max_len) {
                    (Some(h), Some(c)) => h.min(c),
                    (Some(h), None) => h,
                    (None, Some(c)) => c,
                    (None, None) => return Err(err("unbounded pattern without max_len".into())),
                };
                patterns.push(PatternInfo {
                    recognizer: ri,
                    name: pat.name,
                    score: pat.score,
                    max_len,
                    not_preceded_by: pat.not_preceded_by,
                    not_followed_by: pat.not_followed_by,
                    not_followed_by_seq: pat.not_followed_by_seq,
                    gated,
                });
                sources.push(pat.regex.as_str());
                hirs.push(hir);
            }
        }
        let tier = |ids: Vec<usize>| -> Result<Option<Tier>, BuildError> {
            if ids.is_empty() {
                return Ok(None);
            }
            let subset: Vec<&Hir> = ids.iter().map(|&i| &hirs[i]).collect();
            let main = leftmost_first(&subset).map_err(|message| BuildError::Pattern {
                recognizer: "analyzer",
                name: "combined",
                message,
            })?;
            // A pattern opening with `\b` and a word character, or barred from following
            // alphanumerics, never starts inside a word.
            let mid_ids: Vec<usize> = ids
                .iter()
                .copied()
                .filter(|&i| {
                    let src = sources[i];
                    let guarded = patterns[i]
                        .not_preceded_by
                        .is_some_and(|f| f(b'a') && f(b'0'));
                    let rest = src.strip_prefix(r"\b").unwrap_or("");
                    let word_start = src.starts_with(r"\b")
                        && rest.starts_with(|c: char| {
                            c == '[' || c == '(' || c.is_ascii_alphanumeric()
                        })
                        && !rest.starts_with(r"(?:\(")
                        && !rest.starts_with("[a-z0-9!");
                    !(guarded || word_start)
                })
                .collect();
            Ok(Some(Tier {
                main,
                ids,
                which: OnceLock::new(),
                mid_ids,
                which_mid: OnceLock::new(),
            }))
        };
        let (gated_ids, main_ids): (Vec<usize>, Vec<usize>) =
            (0..sources.len()).partition(|&i| patterns[i].gated);
        let mut gate_words: Vec<&'static str> = gated_ids
            .iter()
            .flat_map(|&i| recognizers[patterns[i].recognizer].context.iter().copied())
            .collect();
        gate_words.sort_unstable();
        gate_words.dedup();
        let gate_words = if gate_words.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .kind(Some(AhoCorasickKind::DFA))
                .match_kind(AcMatchKind::LeftmostFirst)
                .build(&gate_words)
                .ok()
        };
        let main = tier(main_ids)?;
        let gated = tier(gated_ids)?;
        let singles = sources.iter().map(|_| OnceLock::new()).collect();
        let context = recognizers.iter().map(|_| OnceLock::new()).collect();
        let max_match_len = patterns.iter().map(|p| p.max_len).max().unwrap_or(0);
        let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
        Ok(Self {
            inner: Arc::new(Inner {
                recognizers,
                patterns,
                main,
                gated,
                gate_words,
                hirs,
                singles,
                context,
                max_match_len,
                threshold: score_threshold,
                sources,
                probes: OnceLock::new(),
            }),
        })
    }

    /// The recognizers this analyzer runs.
    pub fn recognizers(&self) -> &[Recognizer] {
        &self.inner.recognizers
    }

    /// The entity types this analyzer detects.
    pub fn entities(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.inner.recognizers.iter().map(|r| r.entity).collect();
        v.dedup();
        v
    }

    /// The score threshold.
    pub fn score_threshold(&self) -> f32 {
        self.inner.threshold
    }

    /// The longest match any pattern can produce, in bytes.
    pub fn max_match_len(&self) -> usize {
        self.inner.max_match_len
    }

    /// How many bytes of text a finding depends on, at most — the guard's streaming window.
    ///
    /// A result starting at `s` depends on: one byte of look-behind and
    /// [`CONTEXT_BYTES`] of context before `s`; up to `max_match_len` bytes from `s` (a
    /// pattern may extend greedily, a validator may trim or veto, only within its bound) and
    /// [`LOOKAHEAD`] bytes of look-ahead; and on any same-entity result containing it (duplicate
    /// removal), which starts at most `max_match_len` before the result's end and has its own
    /// context look-back. Altogether: `2 × max_match_len + CONTEXT_BYTES + 1 + LOOKAHEAD`. Every result of
    /// [`analyze`](Self::analyze) on a text is also found, identically, when analyzing any
    /// slice that contains those bytes around it.
    pub fn window(&self) -> usize {
        2 * self.inner.max_match_len + CONTEXT_BYTES + 1 + LOOKAHEAD
    }

    /// How much of a streamed `text` is settled: the offset before which no result can
    /// change with more text (see [`Guardrail::stream_settled`](aegis_contracts::Guardrail::stream_settled)).
    /// Every pattern is probed, anchored, from each start at or after `from`: a start whose
    /// automaton is still alive at the end of `text`, or whose match's look-ahead is not
    /// complete, is held, and so is every complete match overlapping it. Context words lie
    /// before a result and validators read only the match, so nothing else can change.
    /// `None` when the probes cannot be built (the caller then holds its whole window).
    pub fn settled(&self, text: &str, from: usize) -> Option<usize> {
        let inner = &*self.inner;
        let probes = inner.probes.get_or_init(|| {
            let sources: Vec<&str> = inner.sources.iter().map(String::as_str).collect();
            aegis_settle::Probes::new(&sources, syntax_config(), inner.max_match_len, LOOKAHEAD)
                .ok()
        });
        Some(probes.as_ref()?.settled(text, from))
    }

    /// All results at or above the threshold, sorted by start. Overlaps between entity types
    /// are kept (as Presidio's analyzer does); same-type contained duplicates are removed.
    pub fn analyze(&self, text: &str) -> Vec<RecognizerResult> {
        let mut raws = Vec::new();
        self.candidates(text, &mut raws);
        let mut out: Vec<RecognizerResult> = Vec::with_capacity(raws.len());
        for raw in raws {
            if let Some(r) = self.finish(text, raw) {
                if r.score >= self.inner.threshold && r.score > 0.0 {
                    out.push(r);
                }
            }
        }
        remove_duplicates(&mut out);
        out.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        out
    }

    /// Like [`analyze`](Self::analyze), then resolves overlaps across entity types: the
    /// highest score wins, then the longest span, then the earliest. The result is
    /// non-overlapping and sorted by start — ready for anonymization.
    pub fn analyze_resolved(&self, text: &str) -> Vec<RecognizerResult> {
        resolve_overlaps(self.analyze(text))
    }

    fn candidates(&self, text: &str, out: &mut Vec<Raw>) {
        let inner = &*self.inner;
        let hay = text.as_bytes();
        if let Some(tier) = &inner.main {
            let mut scratch = Scratch::new(tier);
            self.scan(tier, &mut scratch, hay, 0, hay.len(), out);
        }
        let (Some(tier), Some(gate)) = (&inner.gated, &inner.gate_words) else {
            return;
        };
        // Windows of starts that a context word can support: (c, c + CONTEXT_BYTES] after a
        // context word beginning a word at c; merged, then scanned.
        let mut scratch = Scratch::new(tier);
        let mut window: Option<(usize, usize)> = None;
        let mut pos = 0;
        // Leftmost-first with a prefilter, restarting one byte after each hit: every
        // position where some context word begins is visited.
        while let Some(m) = gate.find(aho_corasick::Input::new(hay).span(pos..hay.len())) {
            let c = m.start();
            pos = c + 1;
            if c > 0 && hay[c - 1].is_ascii_alphanumeric() {
                continue;
            }
            let (lo, hi) = (c + 1, (c + 1 + CONTEXT_BYTES).min(hay.len()));
            window = match window {
                Some((ws, we)) if lo <= we => Some((ws.min(lo), we.max(hi))),
                Some((ws, we)) => {
                    self.scan(tier, &mut scratch, hay, ws, we, out);
                    Some((lo, hi))
                }
                None => Some((lo, hi)),
            };
        }
        if let Some((ws, we)) = window {
            self.scan(tier, &mut scratch, hay, ws, we, out);
        }
    }

    /// Candidates of `tier` that start in `from..to`.
    fn scan(
        &self,
        tier: &Tier,
        scratch: &mut Scratch,
        hay: &[u8],
        from: usize,
        to: usize,
        out: &mut Vec<Raw>,
    ) {
        let inner = &*self.inner;
        let mut pos = from;
        while pos < to {
            // A match starting before `to` ends before `to + max_match_len`: never scan on.
            let end = (to + inner.max_match_len).min(hay.len());
            let Some(m) = tier.main.search(&Input::new(hay).range(pos..end)) else {
                break;
            };
            if m.start() >= to {
                break;
            }
            let main_pid = tier.ids[m.pattern().as_usize()];
            let (rs, re) = (m.start(), m.end().max(m.start() + 1));
            let wend = (re + inner.max_match_len).min(hay.len());
            // Second, targeted pass: every start inside the region, anchored, so each
            // probe dies within a few bytes on ordinary text. Inside a word only the few
            // patterns that may start there are probed.
            for at in rs..re.min(to) {
                let probe = Input::new(hay).range(at..wend).anchored(Anchored::Yes);
                scratch.pids.clear();
                let mid_word = at > 0 && is_word_byte(hay[at - 1]);
                tier.probe(&inner.hirs, &probe, mid_word, scratch);
                for &pid in scratch.pids.iter() {
                    let info = &inner.patterns[pid];
                    let limit = (at + info.max_len).min(hay.len());
                    // The region's own match is that pattern's match at its start: reuse it.
                    let (s, e) = if at == rs && pid == main_pid {
                        (m.start(), m.end())
                    } else {
                        let input = Input::new(hay).range(at..limit).anchored(Anchored::Yes);
                        let single =
                            inner.singles[pid].get_or_init(|| single_regex(&inner.hirs[pid]));
                        let Some(sm) = single.as_ref().and_then(|r| r.search(&input)) else {
                            continue;
                        };
                        (sm.start(), sm.end())
                    };
                    let before_ok = info
                        .not_preceded_by
                        .is_none_or(|f| s == 0 || !f(hay[s - 1]));
                    let after_ok = info
                        .not_followed_by
                        .is_none_or(|f| e >= hay.len() || !f(hay[e]));
                    let seq_ok = info
                        .not_followed_by_seq
                        .is_none_or(|f| !f(&hay[e.min(hay.len())..(e + LOOKAHEAD).min(hay.len())]));
                    if before_ok && after_ok && seq_ok && e > s && e - s <= info.max_len {
                        out.push(Raw {
                            pattern: pid,
                            start: s,
                            end: e,
                        });
                    }
                }
            }
            pos = re;
        }
    }

    fn finish(&self, text: &str, raw: Raw) -> Option<RecognizerResult> {
        let inner = &*self.inner;
        let info = &inner.patterns[raw.pattern];
        let rec = &inner.recognizers[info.recognizer];
        let (start, mut end) = (raw.start, raw.end);
        if !text.is_char_boundary(start) {
            return None;
        }
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if crate::recognizers::NotAfter::any_follows(rec.negative_context, text.as_bytes(), start) {
            return None;
        }
        let (mut score, mut validated) = (info.score, false);
        match (rec.validate)(&text[start..end]) {
            Check::Valid => {
                score = proven_score(info.score);
                validated = true;
            }
            Check::Neutral => {}
            Check::Likely => score = score.max(crate::validators::LIKELY_SCORE),
            Check::Invalid => return None,
            Check::Trim { len, valid } => {
                end = start + len;
                if valid {
                    score = proven_score(info.score);
                    validated = true;
                }
            }
        }
        let mut context_word = None;
        if score < 1.0 {
            let context = inner.context[info.recognizer].get_or_init(|| {
                if rec.context.is_empty() {
                    return None;
                }
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .kind(Some(AhoCorasickKind::DFA))
                    .match_kind(AcMatchKind::Standard)
                    .build(rec.context)
                    .ok()
            });
            if let Some(ac) = context {
                if let Some(w) = find_context(text.as_bytes(), start, ac, rec.context) {
                    context_word = Some(w);
                    score = (score + rec.context_boost).clamp(CONTEXT_MIN_SCORE, 1.0);
                }
            }
        }
        Some(RecognizerResult {
            entity: rec.entity,
            start,
            end,
            score,
            recognizer: rec.name,
            pattern: info.name,
            validated,
            context_word,
        })
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The up-to-[`CONTEXT_WORDS`] words before `start`, within [`CONTEXT_BYTES`]; a context word
/// counts when it begins a word there (so `cards` supports `card`, `did` does not support
/// `id`).
fn find_context(
    hay: &[u8],
    start: usize,
    ac: &AhoCorasick,
    words: &[&'static str],
) -> Option<&'static str> {
    let lo = start.saturating_sub(CONTEXT_BYTES);
    let mut i = start;
    let mut seen = 0;
    // Walk back over at most CONTEXT_WORDS whitespace-separated words.
    while i > lo && seen < CONTEXT_WORDS {
        while i > lo && hay[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        if i == lo {
            break;
        }
        while i > lo && !hay[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        seen += 1;
    }
    let window = &hay[i..start];
    for m in ac.find_overlapping_iter(window) {
        let s = m.start();
        let at_word_start = if s == 0 {
            i == lo || i == 0 || !hay[i - 1].is_ascii_alphanumeric()
        } else {
            !window[s - 1].is_ascii_alphanumeric()
        };
        if at_word_start {
            return Some(words[m.pattern().as_usize()]);
        }
    }
    None
}

/// Presidio's `remove_duplicates`: a result contained in another of the same entity with an
/// equal or higher score is dropped; of exact duplicates the higher score stays. Runs in
/// O(n log n) (sorted sweep with a short list of still-open spans).
fn remove_duplicates(results: &mut Vec<RecognizerResult>) {
    results.sort_by(|a, b| {
        a.entity
            .cmp(b.entity)
            .then(a.start.cmp(&b.start))
            .then(b.end.cmp(&a.end))
            .then(b.score.total_cmp(&a.score))
    });
    let mut kept: Vec<RecognizerResult> = Vec::with_capacity(results.len());
    let mut open: Vec<(usize, f32)> = Vec::new(); // (end, score) of earlier same-entity results
    let mut entity = "";
    for r in results.drain(..) {
        if r.entity != entity {
            entity = r.entity;
            open.clear();
        }
        open.retain(|&(end, _)| end > r.start);
        let dup = open
            .iter()
            .any(|&(end, score)| r.end <= end && score >= r.score);
        open.push((r.end, r.score));
        if !dup {
            kept.push(r);
        }
    }
    *results = kept;
}

/// Keeps a non-overlapping subset: highest score first, then longest, then earliest.
/// O(n log n).
pub fn resolve_overlaps(mut results: Vec<RecognizerResult>) -> Vec<RecognizerResult> {
    results.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.len().cmp(&a.len()))
            .then(a.start.cmp(&b.start))
    });
    let mut taken: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
    let mut kept: Vec<RecognizerResult> = Vec::with_capacity(results.len());
    for r in results {
        // Kept spans are disjoint: only the one starting last before `r.end` can overlap.
        let clash = taken
            .range(..r.end)
            .next_back()
            .is_some_and(|(_, &end)| end > r.start);
        if !clash {
            taken.insert(r.start, r.end);
            kept.push(r);
        }
    }
    kept.sort_by_key(|r| r.start);
    kept
}
