//! [`PromptInjection`]: weighted heuristic signals for prompt-injection and jailbreak text.

use aegis_contracts::{
    Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, Origin,
    RequestContext, Stage, Verdict,
};
use async_trait::async_trait;
use base64::Engine as _;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::util;

const DETECTOR: &str = "prompt_injection";

/// One heuristic: a name, a weight in `(0, 1]`, a pattern.
struct Signal {
    name: &'static str,
    weight: f32,
    pattern: &'static str,
}

const fn s(name: &'static str, weight: f32, pattern: &'static str) -> Signal {
    Signal {
        name,
        weight,
        pattern,
    }
}

// `W` in comments: the words between two anchors, kept short so signals stay phrase-local.
static SIGNALS: &[Signal] = &[
    // ---- instruction override
    s(
        "override_instructions",
        0.9,
        r"(?i)\b(?:ignore|disregard|forget|skip|override|bypass|neglect|abandon|drop|discard)\b[a-z0-9_ \t,'-]{0,40}?\b(?:previous|prior|above|earlier|preceding|former|original|initial|system|all|your|any|these|those)\b[a-z0-9_ \t,'-]{0,30}?\b(?:instructions?|prompts?|directions?|directives?|guidelines?|guardrails?|programming|system\s+messages?|constraints|restrictions|safety\s+rules|content\s+polic(?:y|ies)|rules\s+(?:you|above|given))\b",
    ),
    s(
        "disregard_above",
        0.8,
        r"(?i)\b(?:ignore|disregard|forget)\s+(?:about\s+)?(?:everything|all|anything|whatever)\s+(?:above|before|previously|prior|said\s+before|(?:that\s+)?you\s+(?:were|have\s+been|'ve\s+been)\s+(?:told|given|instructed))",
    ),
    s(
        "new_instructions",
        0.6,
        r"(?i)\b(?:new|updated|real|actual|true|revised|secret|hidden|additional)\s+(?:system\s+)?(?:instructions?|directives?|orders|task|prompt)\s*(?::|-{1,2}|are|is)\s",
    ),
    s(
        "overrides_precedence",
        0.7,
        r"(?i)\b(?:overrides?|supersedes?|takes?\s+precedence\s+over|replaces?)\s+(?:all\s+|any\s+)?(?:previous|prior|earlier|other|your|the\s+(?:system|original))\s+(?:instructions|prompts?|rules|directives)",
    ),
    s(
        "your_real_task",
        0.6,
        r"(?i)\byour\s+(?:real|true|new|actual|only)\s+(?:task|goal|purpose|objective|job|mission)\s+(?:is|now\s+is|will\s+be)\b",
    ),
    s(
        "from_now_on",
        0.4,
        r"(?i)\bfrom\s+now\s+on\b[^.\n]{0,40}\b(?:you|your|act|respond|answer|reply|only|always|never)\b",
    ),
    s(
        "you_are_now",
        0.45,
        r"(?i)\byou\s+are\s+now\s+(?:a\s+|an\s+|in\s+|my\s+)?(?:no\s+longer|free|unrestricted|unfiltered|uncensored|jailbroken|evil|dan|an?\s+ai\s+(?:without|with\s+no)|going\s+to\s+(?:act|pretend|play)|acting|playing|called|named)\b",
    ),
    s(
        "no_longer_bound",
        0.7,
        r"(?i)\byou\s+(?:are|'re)\s+no\s+longer\s+(?:an?\s+)?(?:ai|assistant|chatgpt|claude|bound|restricted|limited|required|constrained|subject)\b",
    ),
    s(
        "must_obey",
        0.45,
        r"(?i)\byou\s+(?:must|will|have\s+to|shall)\s+(?:now\s+)?(?:obey|comply\s+with|follow)\s+(?:me|my|these|this|the\s+following|every)\b",
    ),
    s(
        "do_not_tell_user",
        0.7,
        r"(?i)\b(?:do\s+not|don'?t|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?\s+(?:this|it)\s+to|alert(?:ing)?|notify(?:ing)?|let(?:ting)?)\s+(?:the\s+)?user\b",
    ),
    s(
        "addressed_to_ai",
        0.5,
        r"(?i)\b(?:important|urgent|attention|note|message|instructions?)\s*(?:!|:)?\s*(?:new\s+)?(?:instructions?\s+|message\s+)?(?:for|to)\s+(?:the\s+|you,?\s+)?(?:ai|assistant|ai\s+assistant|ai\s+model|language\s+model|llm|chatbot|agent|gpt|claude)\b",
    ),
    s(
        "before_you_answer",
        0.35,
        r"(?i)\bbefore\s+(?:you\s+)?(?:answer|respond|reply|do\s+anything\s+else|completing|solving)\b[^.\n]{0,40}\b(?:you\s+must|make\s+sure\s+to|first)\b",
    ),
    s(
        "exfiltrate",
        0.35,
        r"(?i)\b(?:send|forward|email|upload|post|transfer|exfiltrate|leak)\b[^.\n]{0,40}\b(?:password|credentials?|api\s+keys?|secrets?|tokens?|private\s+keys?|conversation|chat\s+history|all\s+(?:the\s+)?(?:files|emails|data))\b[^.\n]{0,30}\b(?:to|at)\s+(?:https?://|[a-z0-9._%+-]+@|the\s+(?:following|address|url))",
    ),
    // ---- prompt leaking
    s(
        "reveal_system_prompt",
        0.6,
        r"(?i)\b(?:reveal|print|show|display|output|repeat|leak|recite|dump|write\s+out|spell\s+out|tell\s+me|give\s+me|share)\b[a-z0-9_ \t,'-]{0,25}?\byour\s+(?:(?:full|entire|complete|original|initial|hidden|secret|exact|real|confidential)\s+)*(?:system\s+prompt|system\s+message|initial\s+prompt|prompt|instructions|rules|guidelines|configuration|pre-?prompt)\b",
    ),
    s(
        "repeat_above",
        0.7,
        r"(?i)\b(?:repeat|print|output|copy)\s+(?:all\s+|back\s+)?(?:the\s+)?(?:words|text|everything|content|lines|messages?)\s+(?:above|before\s+this|so\s+far|verbatim)",
    ),
    s(
        "system_prompt_mention",
        0.25,
        r"(?i)\b(?:system\s+prompt|initial\s+instructions|hidden\s+instructions|pre-?prompt)\b",
    ),
    // ---- role-play jailbreaks
    s("do_anything_now", 0.85, r"(?i)\bdo\s+anything\s+now\b"),
    s(
        "jailbreak_persona",
        0.3,
        r"\b(?:DAN|STAN|DUDE|AIM|UCAR|BetterDAN|AntiGPT)\b",
    ),
    s(
        "act_as_unrestricted",
        0.8,
        r"(?i)\b(?:act|acting|behave|respond|answer|roleplay|role-play|pretend\s+to\s+be|pretend\s+you\s+are|simulate)\s+(?:as\s+|like\s+)?(?:a\s+|an\s+)?(?:dan|jailbroken|unrestricted|unfiltered|uncensored|evil|amoral|unethical|rogue)\b",
    ),
    s(
        "no_restrictions",
        0.75,
        r"(?i)\b(?:pretend|imagine|act|behave|roleplay|role-play|suppose|you\s+(?:are|have|can))\b[^.\n]{0,40}\b(?:no|without|free\s+(?:of|from)|zero)\s+(?:any\s+)?(?:restrictions|limitations|limits|rules|filters|filtering|guidelines|censorship|ethics|ethical\s+(?:guidelines|constraints|boundaries)|morals|boundaries|safety\s+(?:guidelines|measures|filters))\b",
    ),
    s(
        "without_safety",
        0.5,
        r"(?i)\b(?:without|ignoring|bypassing|ignore|bypass|disable|disabling|turn\s+off)\s+(?:any\s+|all\s+|your\s+)?(?:ethical|moral|safety|content)\s+(?:guidelines|rules|restrictions|filters|polic(?:y|ies)|constraints|considerations|checks|limitations)",
    ),
    s(
        "unrestricted_ai",
        0.6,
        r"(?i)\b(?:ai|assistant|model|chatbot|bot)\s+(?:with\s+no|without\s+(?:any\s+)?|free\s+(?:of|from)\s+(?:all\s+|any\s+)?)(?:restrictions|limitations|rules|filters|guidelines|censorship)\b",
    ),
    s(
        "special_mode",
        0.7,
        r"(?i)\b(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|dan|evil|chaos|opposite)\s+mode\b",
    ),
    s("developer_mode", 0.3, r"(?i)\bdeveloper\s+mode\b"),
    s(
        "unrestricted_words",
        0.3,
        r"(?i)\b(?:unfiltered|uncensored|unrestricted|jailbroken|jailbreak|amoral)\b",
    ),
    s(
        "stay_in_character",
        0.35,
        r"(?i)\b(?:stay\s+in\s+character|never\s+break\s+character|don'?t\s+break\s+character|remain\s+in\s+character)\b",
    ),
    s(
        "never_refuse",
        0.35,
        r"(?i)\b(?:never|not\s+allowed\s+to|cannot|can'?t|must\s+not|will\s+not)\s+(?:refuse|decline|say\s+(?:no|that\s+you\s+can'?t))\b",
    ),
    s(
        "openai_policy",
        0.4,
        r"(?i)\b(?:openai|anthropic)(?:'s)?\s+(?:content\s+)?polic(?:y|ies)\b",
    ),
    // ---- delimiter tricks
    s(
        "chat_template_token",
        0.9,
        r"<\|(?:im_start|im_end|system|user|assistant|start_header_id|end_header_id|eot_id)\|>",
    ),
    s(
        "special_token_mention",
        0.3,
        r"<\|(?:endoftext|begin_of_text|end_of_text)\|>",
    ),
    s("llama_inst_tag", 0.8, r"\[/?INST\]|<</?SYS>>"),
    s(
        "fake_role_tag",
        0.5,
        r"(?i)</?(?:system|user|assistant|instructions?|im_start)>",
    ),
    s(
        "fake_system_header",
        0.6,
        r"(?im)^[ \t]*(?:#{2,4}|\[|\*\*)?[ \t]*(?:system|admin|developer)[ \t]*(?:message|prompt|override|instructions?|note|update)?[ \t]*(?:\]|\*\*)?[ \t]*:[ \t]*(?:you|ignore|new|from|the\s+(?:user|assistant|ai))\b",
    ),
    s(
        "hash_header",
        0.45,
        r"(?im)^[ \t]*#{2,4}[ \t]*(?:system|new\s+instructions?|instructions?|admin)[ \t]*:?[ \t]*$",
    ),
    s(
        "end_of_prompt",
        0.5,
        r"(?i)(?:\bend\s+of\s+(?:the\s+)?(?:system\s+)?(?:prompt|instructions|context|user\s+input)\b|-{3,}\s*end\s+of\b|\bbegin\s+(?:new\s+)?(?:system\s+)?instructions\b)",
    ),
    // ---- encoding tricks
    s(
        "decode_and_follow",
        0.65,
        r"(?i)\b(?:decode|decipher|deobfuscate|unscramble|translate|convert|reverse)\b[^.\n]{0,50}\b(?:and|then)\s+(?:follow|execute|run|obey|do|carry\s+out|perform|act\s+on|comply)\b",
    ),
    s(
        "encoding_hint",
        0.3,
        r"(?i)\b(?:rot-?13|base-?64|hex(?:adecimal)?|morse|caesar\s+cipher|leetspeak|binary)\b[^.\n]{0,30}\b(?:encoded|decode|message|instructions?|string|text)\b",
    ),
];

/// Configuration of [`PromptInjection`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptInjectionConfig {
    /// Block when a segment's combined score reaches this (default 0.5). Signals combine as
    /// a noisy OR: `1 - Π(1 - weight)`.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Origins whose texts are judged (default: `user`, `tool`, `retrieval` — the untrusted
    /// ones). Add `operator` or `model` to judge those too.
    #[serde(default = "default_origins")]
    pub origins: Vec<Origin>,
    /// Decode base64 and hex blobs and judge the decoded text too (default `true`).
    #[serde(default = "yes")]
    pub decode_blobs: bool,
    /// Signal names to switch off (see [`PromptInjection::signals`]). Unknown names are a
    /// config error.
    #[serde(default)]
    pub disabled_signals: Vec<String>,
    /// Stages the guard applies to (default: input, tool result, tool definition, retrieved).
    #[serde(default = "default_stages")]
    pub stages: Vec<Stage>,
}

fn default_threshold() -> f32 {
    0.5
}
fn default_origins() -> Vec<Origin> {
    vec![Origin::User, Origin::Tool, Origin::Retrieval]
}
fn default_stages() -> Vec<Stage> {
    vec![
        Stage::Input,
        Stage::ToolResult,
        Stage::ToolDefinition,
        Stage::Retrieved,
    ]
}
fn yes() -> bool {
    true
}

impl Default for PromptInjectionConfig {
    fn default() -> Self {
        Self {
            threshold: default_threshold(),
            origins: default_origins(),
            decode_blobs: true,
            disabled_signals: Vec::new(),
            stages: default_stages(),
        }
    }
}

/// Prompt-injection and jailbreak **heuristics**: about 35 weighted phrase and structure
/// signals (instruction override, prompt leaking, role-play jailbreaks such as DAN or "no
/// restrictions", fake chat-template delimiters like `<|im_start|>system` or `[INST]`,
/// encoding tricks such as "decode this and follow it" and base64/hex blobs that decode to
/// instructions), combined per segment as a noisy OR and compared with `threshold`.
///
/// These are heuristics, not a classifier: they catch the common, literal attack phrasings
/// and miss paraphrases and other languages; precision and recall on the crate's labelled
/// set are recorded in the crate README. Only untrusted origins are judged by default.
/// Signals may combine across a whole segment, so the guard needs the full text
/// ([`Granularity::FullText`]).
pub struct PromptInjection {
    set: RegexSet,
    regexes: Vec<Regex>,
    signals: Vec<&'static Signal>,
    config: PromptInjectionConfig,
}

impl std::fmt::Debug for PromptInjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptInjection")
            .field("signals", &self.signals.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Which decoded-blob signal fired, if any.
const ENCODED_STRONG: (&str, f32) = ("encoded_instructions", 0.85);
const ENCODED_WEAK: (&str, f32) = ("encoded_suspicious_text", 0.45);
const SUSPICIOUS_WORDS: [&str; 10] = [
    "ignore",
    "instruction",
    "system prompt",
    "disregard",
    "password",
    "reveal",
    "jailbreak",
    "pretend",
    "forget",
    "secret",
];

impl PromptInjection {
    /// Compiles the signals; a [`Config`](aegis_contracts::ErrorKind::Config) error for a
    /// threshold outside `(0, 1]`, no origins, or an unknown signal name.
    pub fn new(config: PromptInjectionConfig) -> Result<Self, Error> {
        util::check_stages("prompt_injection", &config.stages)?;
        if !(config.threshold > 0.0 && config.threshold <= 1.0) {
            return Err(Error::config(
                "prompt_injection: `threshold` must be in (0, 1]",
            ));
        }
        if config.origins.is_empty() {
            return Err(Error::config(
                "prompt_injection: `origins` must name at least one origin",
            ));
        }
        for name in &config.disabled_signals {
            if !Self::signals().any(|s| s == name) {
                return Err(Error::config(format!(
                    "prompt_injection: unknown signal `{name}` in `disabled_signals`"
                )));
            }
        }
        let signals: Vec<&'static Signal> = SIGNALS
            .iter()
            .filter(|s| !config.disabled_signals.iter().any(|d| d == s.name))
            .collect();
        let limit = 64 * 1024 * 1024;
        // ASCII word boundaries keep the lazy DFA usable on non-ASCII text (a Unicode `\b`
        // forces the slower engines there).
        let patterns: Vec<String> = signals
            .iter()
            .map(|s| s.pattern.replace(r"\b", r"(?-u:\b)"))
            .collect();
        let set = RegexSetBuilder::new(&patterns)
            .size_limit(limit)
            .dfa_size_limit(limit)
            .build()
            .map_err(|e| Error::internal(format!("prompt_injection: {e}")))?;
        let regexes = patterns
            .iter()
            .map(|p| RegexBuilder::new(p).size_limit(limit).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::internal(format!("prompt_injection: {e}")))?;
        Ok(Self {
            set,
            regexes,
            signals,
            config,
        })
    }

    /// The names of every signal (finding detectors are `prompt_injection.<name>`).
    pub fn signals() -> impl Iterator<Item = &'static str> {
        SIGNALS
            .iter()
            .map(|s| s.name)
            .chain([ENCODED_STRONG.0, ENCODED_WEAK.0])
    }

    /// The configuration.
    pub fn config(&self) -> &PromptInjectionConfig {
        &self.config
    }

    /// The combined score of `text` in `[0, 1]`, regardless of origin.
    pub fn score(&self, text: &str) -> f32 {
        let mut findings = Vec::new();
        self.judge(0, text, &mut findings)
    }

    fn enabled(&self, name: &str) -> bool {
        !self.config.disabled_signals.iter().any(|d| d == name)
    }

    /// Adds this segment's findings and returns its combined score.
    fn judge(&self, segment: usize, text: &str, findings: &mut Vec<Finding>) -> f32 {
        let mut keep = 1.0f32;
        // One pass decides the (usual) clean case without allocating.
        let hits = if self.set.is_match(text) {
            self.set.matches(text).into_iter().collect()
        } else {
            Vec::new()
        };
        for i in hits {
            let sig = self.signals[i];
            keep *= 1.0 - sig.weight;
            let span = self.regexes[i]
                .find(text)
                .and_then(|m| util::span(segment, m.start(), m.end()));
            findings.push(Finding::new(
                "prompt_injection",
                span,
                sig.weight,
                format!("{DETECTOR}.{}", sig.name),
            ));
        }
        if self.config.decode_blobs {
            if let Some((name, weight, start, end)) = self.encoded(text) {
                if self.enabled(name) {
                    keep *= 1.0 - weight;
                    findings.push(Finding::new(
                        "prompt_injection",
                        util::span(segment, start, end),
                        weight,
                        format!("{DETECTOR}.{name}"),
                    ));
                }
            }
        }
        1.0 - keep
    }

    /// The strongest signal from a base64 or hex blob whose decoded text reads as instructions.
    fn encoded(&self, text: &str) -> Option<(&'static str, f32, usize, usize)> {
        let bytes = text.as_bytes();
        let mut best: Option<(&'static str, f32, usize, usize)> = None;
        let mut i = 0;
        while i < bytes.len() {
            let is_b64 =
                |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-');
            if !is_b64(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_b64(bytes[i]) {
                i += 1;
            }
            let blob = &text[start..i];
            if blob.len() < 24 || blob.len() > 64 * 1024 {
                continue;
            }
            let decoded = if blob.len() % 2 == 0 && blob.bytes().all(|b| b.is_ascii_hexdigit()) {
                decode_hex(blob)
            } else {
                decode_b64(blob)
            };
            let Some(decoded) = decoded else { continue };
            let Ok(plain) = std::str::from_utf8(&decoded) else {
                continue;
            };
            let printable = plain
                .chars()
                .filter(|c| !c.is_control() || c.is_whitespace())
                .count();
            if printable * 10 < plain.chars().count() * 9 || !plain.contains(' ') {
                continue;
            }
            let hit = if self.set.is_match(plain) {
                ENCODED_STRONG
            } else {
                let lower = plain.to_ascii_lowercase();
                if SUSPICIOUS_WORDS.iter().any(|w| lower.contains(w)) {
                    ENCODED_WEAK
                } else {
                    continue;
                }
            };
            if best.is_none_or(|b| b.1 < hit.1) {
                best = Some((hit.0, hit.1, start, i));
            }
        }
        best
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let trimmed = s.trim_end_matches('=');
    [
        STANDARD.decode(s),
        URL_SAFE.decode(s),
        STANDARD_NO_PAD.decode(trimmed),
        URL_SAFE_NO_PAD.decode(trimmed),
    ]
    .into_iter()
    .find_map(Result::ok)
}

#[async_trait]
impl Guardrail for PromptInjection {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(self.config.stages.clone(), Granularity::FullText)
    }

    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        let mut findings = Vec::new();
        let mut worst = 0.0f32;
        for (i, seg) in subject.segments().iter().enumerate() {
            if !self.config.origins.contains(&seg.origin) {
                continue;
            }
            worst = worst.max(self.judge(i, seg.text, &mut findings));
        }
        if worst >= self.config.threshold {
            let mut v = Verdict::block(
                format!(
                    "likely prompt injection (score {worst:.2}, threshold {:.2})",
                    self.config.threshold
                ),
                "prompt_injection",
            )
            .with_findings(findings);
            v.score = worst;
            return Ok(v);
        }
        // Below threshold: allow, but keep the evidence for the audit trail.
        let mut v = Verdict::allow().with_findings(findings);
        v.score = worst;
        Ok(v)
    }
}
