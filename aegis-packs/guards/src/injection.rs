//! [`PromptInjection`]: weighted heuristic signals for prompt-injection and jailbreak text.

use aegis_contracts::{
    Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, Origin,
    RequestContext, Stage, Verdict,
};
use aegis_settle::{SyntaxConfig, Which};
use async_trait::async_trait;
use base64::Engine as _;
use regex::bytes::{Regex, RegexBuilder};
use regex_automata::{Input, PatternSet};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::injection_model::Model;
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
        r"(?i)\b(?:ignore|disregard|forget|skip|override|bypass|neglect|abandon|drop|discard|set\s+aside|throw\s+out|stop\s+following|stop\s+obeying|cancel|erase|delete|wipe|pay\s+no\s+attention\s+to|don'?t\s+pay\s+attention\s+to|no\s+longer\s+follow)\b[a-z0-9_ \t,'-]{0,40}?\b(?:previous|prior|above|earlier|preceding|former|original|initial|system|all|your|any|these|those|old|existing|current)\b[a-z0-9_ \t,'-]{0,30}?\b(?:instructions?|prompts?|directions?|directives?|guidelines?|guardrails?|programming|system\s+messages?|constraints|restrictions|safety\s+rules|content\s+polic(?:y|ies)|polic(?:y|ies)|rules|orders|commands|training)\b",
    ),
    s(
        "disregard_above",
        0.8,
        r"(?i)\b(?:ignore|disregard|forget|override|skip|drop|discard|bypass|set\s+aside|throw\s+out)\s+(?:about\s+)?(?:everything|all|anything|whatever)\s+(?:above|before|previously|prior|said\s+before|(?:that\s+)?you\s+(?:were|have\s+been|'ve\s+been)\s+(?:told|given|instructed))",
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
        r"(?i)\b(?:reveal|print|show|display|output|repeat|leak|recite|dump|write\s+out|spell\s+out|tell\s+me|give\s+me|share|summari[sz]e|quote|list)\b[a-z0-9_ \t,'-]{0,25}?\byour\s+(?:(?:full|entire|complete|original|initial|hidden|secret|exact|real|confidential)\s+)*(?:system\s+prompt|system\s+message|initial\s+prompt|prompt|instructions|rules|guidelines|configuration|pre-?prompt)\b",
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
        r"(?i)\b(?:pretend|imagine|act|behave|roleplay|role-play|suppose|hypothetically|you\s+(?:are|have|can|were|will))\b[^.\n]{0,40}\b(?:no|without|free\s+(?:of|from)|zero|free\s+of\s+all)\s+(?:any\s+)?(?:content\s+|safety\s+|moral\s+|ethical\s+)?(?:restrictions|limitations|limits|rules|filters|filtering|guidelines|censorship|ethics|ethical\s+(?:guidelines|constraints|boundaries)|morals|boundaries|safety\s+(?:guidelines|measures|filters))\b",
    ),
    s(
        "without_safety",
        0.5,
        r"(?i)\b(?:without|ignoring|bypassing|ignore|bypass|disable|disabling|turn\s+off|disregard|disregarding|forget|skip|suspend|drop)\s+(?:any\s+|all\s+|your\s+|the\s+)?(?:ethical|moral|safety|content)\s+(?:guidelines|rules|restrictions|filters|polic(?:y|ies)|constraints|considerations|checks|limitations|training|programming|guardrails)",
    ),
    s(
        "unrestricted_ai",
        0.6,
        r"(?i)\b(?:ai|assistant|model|chatbot|bot)\s+(?:with\s+no|has\s+no|without\s+(?:any\s+)?|free\s+(?:of|from)\s+(?:all\s+|any\s+)?)(?:restrictions|limitations|rules|filters|guidelines|censorship|ethics)\b",
    ),
    s(
        "special_mode",
        0.7,
        r"(?i)\b(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|dan|evil|chaos|opposite)\s+mode\b",
    ),
    s("developer_mode", 0.3, r"(?i)\bdeveloper\s+mode\b"),
    s("game_framing", 0.25, r"(?i)\blet'?s\s+play\s+a\s+game\b"),
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
    // ---- other languages: override and role switches
    s(
        "override_instructions_de",
        0.8,
        r"(?i)\b(?:ignorier(?:e|en|t)?|vergiss|vergessen\s+sie|missachte(?:n)?|übergehe)\b[^.\n]{0,40}\b(?:anweisungen|instruktionen|regeln|vorgaben|befehle|richtlinien)\b",
    ),
    s(
        "override_instructions_fr",
        0.8,
        r"(?i)\b(?:ignore[rz]?|oublie[rz]?|ne\s+tiens\s+pas\s+compte)\b[^.\n]{0,40}\b(?:instructions|consignes|règles|regles|directives)\b",
    ),
    s(
        "override_instructions_es_pt_it",
        0.8,
        r"(?i)\b(?:ignora|ignore|ignorar|olvida|olvide|olvidar|esqueça|esqueca|esquece|dimentica|dimentichi)\b[^.\n]{0,40}\b(?:instrucciones|instruções|instrucoes|istruzioni|reglas|regras|regole|indicaciones|directrices|indicazioni|diretrizes)\b",
    ),
    s(
        "override_instructions_nl_pl",
        0.8,
        r"(?i)\b(?:negeer|vergeet|zignoruj|ignoruj|zapomnij)\b[^.\n]{0,40}\b(?:instructies|regels|opdrachten|instrukcje|polecenia|zasady|instrukcji)\b",
    ),
    s(
        "reveal_prompt_other_languages",
        0.6,
        r"(?i)\b(?:révèle|revele|révéler|zeige|verrate|muestra|revela|mostra|rivela|pokaż|toon)\b[^.\n]{0,30}\b(?:prompt|systemprompt|anweisungen|instrucciones|istruzioni|instructions|instruções|consignes)\b",
    ),
    s(
        "no_restrictions_other_languages",
        0.5,
        r"(?i)\b(?:ohne|sin|sans|senza|sem|zonder|bez)\s+(?:jegliche\s+|ninguna\s+|aucune\s+|alcuna\s+|nenhuma\s+)?(?:einschränkungen|beschränkungen|restricciones|restrictions|restrizioni|restrições|restricoes|regeln|reglas|règles|regole|regras|filter|filtros|filtres|filtri|limites|límites|grenzen|ograniczeń)\b",
    ),
    // ---- instructions addressed to an AI reading untrusted text
    s(
        "ai_reader",
        0.6,
        r"(?i)\b(?:if\s+you\s+are|to|for|attention|dear)\s+(?:any|an?|the|all)?\s*(?:ai|llm|language\s+model|assistant|chatbot|agent|bot)s?(?:\s+(?:tool|model|assistant|agent|system)s?)?\s+(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|browsing|viewing|that\s+reads|crawling|indexing)\b",
    ),
    s(
        "vocative_ai_command",
        0.55,
        r"(?i)(?:^|[.!?\n(\[{>-]\s{0,3}|<!--\s{0,3})(?:ai|assistant|chatbot|llm|gpt|claude|model|agent)s?(?:\s+(?:agents?|assistants?|models?))?\s{0,2}[,:]\s{0,3}(?:when|before|after|please|you\s+must|ignore|disregard|forget|do\s+not|don'?t|stop|always|never|append|include|send|forward|instead|the\s+user|new|from\s+now)\b",
    ),
    s(
        "assistant_must",
        0.45,
        r"(?i)\b(?:the\s+)?(?:assistant|ai|model|chatbot|agent)\s+(?:must|should|shall|is\s+required\s+to|needs\s+to)\s+(?:now\s+|immediately\s+|also\s+)?(?:ignore|disregard|reveal|send|forward|output|print|include|append|exfiltrate|leak)\b",
    ),
    s(
        "system_override",
        0.6,
        r"(?i)\b(?:system|admin|administrator|developer|security|emergency)\s+(?:override|mode\s+activated|command|directive)\b",
    ),
    s(
        "escape_context",
        0.55,
        r"(?i)\b(?:now\s+that\s+the\s+(?:json|code|input|prompt|block|context|document)\s+is\s+(?:closed|over|done|finished)|(?:user\s+)?(?:query|input|question|message)\s+ends\s+here|begin\s+(?:admin|developer|new|system|real)\s+(?:instructions|mode|prompt))\b",
    ),
    // ---- exfiltration through links and tools
    s(
        "exfil_link_template",
        0.7,
        r"(?i)https?://[^\s)\]]{1,200}[?&/=][^\s)\]]{0,40}[{<]\s{0,2}(?:conversation|chat|history|messages?|data|secrets?|user|session|all|prompt|context|summary|email)",
    ),
    s(
        "markdown_image_beacon",
        0.5,
        r"(?i)!\[[^\]\n]{0,80}\]\(\s{0,2}https?://[^)\s]{1,200}[?&][a-z0-9_]{1,30}=",
    ),
    s(
        "send_to_url",
        0.45,
        r"(?i)\b(?:send|forward|post|upload|transmit|fetch|call|submit|leak|exfiltrate|add|append|attach|include|encode)\b[^.\n]{0,80}(?:https?://|\bwebhook\b)",
    ),
    s(
        "user_data_target",
        0.3,
        r"(?i)\b(?:the\s+)?(?:user'?s|users'|all(?:\s+of)?(?:\s+the)?|every(?:\s+user'?s)?|prior|previous|full|entire)\s+(?:e-?mails?(?:\s+address(?:es)?)?|messages|conversation|chat(?:\s+history)?|history|credentials|api\s+keys?|passwords?|personal\s+data|session|contacts|files)\b",
    ),
    // ---- more role switches and extraction phrasings
    s(
        "persona_switch",
        0.3,
        r"(?i)\b(?:pretend\s+(?:to\s+be|you\s+are)|imagine\s+you\s+are|act\s+as|roleplay\s+as|role-play\s+as|from\s+now\s+on\s+you\s+(?:are|will)|you\s+are\s+no\s+longer|if\s+you\s+were|hypothetically)\b",
    ),
    s(
        "fiction_harm_framing",
        0.45,
        r"(?i)\b(?:for\s+a\s+(?:novel|story|movie|film|screenplay|game|book)|in\s+a\s+(?:story|novel|fictional\s+world)|write\s+the\s+scene)\b[^\n]{0,160}\b(?:step\s+by\s+step|in\s+(?:full\s+)?detail|exact\s+(?:steps|instructions)|no\s+warnings?|without\s+(?:any\s+)?(?:warnings?|disclaimers?))\b",
    ),
    s(
        "grandma_exploit",
        0.45,
        r"(?i)\b(?:late|dead|deceased|passed)\s+(?:grand(?:ma|mother|father|pa)|mother|father)\b[^.\n]{0,80}\b(?:used\s+to|would)\b",
    ),
    s(
        "what_is_your_prompt",
        0.55,
        r"(?i)\bwhat\s+(?:is|are|was|were)\s+(?:your\s+(?:system\s+prompt|system\s+message|initial\s+instructions|original\s+instructions|hidden\s+instructions|instructions|rules|guidelines)|the\s+(?:system\s+prompt|system\s+message|initial\s+instructions|hidden\s+instructions)\s+(?:you|of\s+this)\b)",
    ),
    s(
        "given_before",
        0.5,
        r"(?i)\b(?:instructions|prompt|rules|guidelines|directions|directives|text|message|words)\s+(?:you\s+were|you'?ve\s+been|you\s+have\s+been|the\s+developers?)\s+(?:given|told|provided|gave\s+you)\b|\bwhat\s+were\s+you\s+told\b",
    ),
    s(
        "context_window_dump",
        0.55,
        r"(?i)\b(?:print|output|dump|show|repeat|reveal|list)\b[^.\n]{0,30}\b(?:context\s+window|everything\s+(?:in\s+your|above|so\s+far)|(?:the\s+)?(?:confidential|hidden|secret)\s+(?:prompt|instructions|notes|configuration))\b",
    ),
    s(
        "verbatim",
        0.3,
        r"(?i)\b(?:verbatim|word\s+for\s+word|exact\s+words|unredacted|quote\s+(?:it|them)\s+in\s+full)\b",
    ),
    s(
        "forced_affirmative",
        0.6,
        r"(?i)\b(?:begin|start|open)\s+(?:your\s+)?(?:reply|response|answer|output)\s+with\s+(?:\x22|'|“)?(?:sure|certainly|of\s+course|absolutely|yes)\b",
    ),
    s(
        "told_never_to_reveal",
        0.6,
        r"(?i)\b(?:what|which|anything)\b[^.\n]{0,30}\b(?:told|tell|tells|instructed|asked|programmed)\s+(?:you\s+)?(?:to\s+)?(?:never|not\s+to|not)\s+(?:reveal|say|share|disclose|tell|mention)\b",
    ),
    s(
        "summary_hijack",
        0.4,
        r"(?i)\bwhen\s+(?:you\s+(?:are\s+)?)?(?:summari[sz]e|summari[sz]ing|read|reading|process|processing|answer|answering|translat(?:e|ing))\s+(?:this|the)\s+(?:page|document|email|e-mail|article|text|message|file|website|review)\b",
    ),
    s(
        "credential_phish",
        0.35,
        r"(?i)\b(?:enter|type|provide|share|confirm|send|re-?enter|verify)\s+(?:your|their|the\s+user'?s)\s+(?:password|credentials|login|pin|card\s+number|ssn|one-time\s+code|2fa\s+code)\b",
    ),
    s(
        "override_everything_other_languages",
        0.7,
        r"(?i)\b(?:olvida|ignora|olvide|ignore|vergiss|ignoriere|oublie|dimentica)\s+(?:todo\s+lo\s+anterior|lo\s+anterior|alles\s+(?:vorherige|bisherige|obige|davor)|tout\s+ce\s+qui\s+pr(?:é|e)c(?:è|e)de|tout\s+ce\s+qu'on\s+t'a\s+dit|tutto\s+(?:quello\s+)?(?:che\s+)?(?:precede|sopra|ti\s+(?:è|e)\s+stato\s+detto))",
    ),
    s(
        "system_prompt_mention_other_languages",
        0.35,
        r"(?i)\b(?:prompt\s+de\s+sistema|prompt\s+del\s+sistema|prompt\s+syst(?:è|e)me|systemprompt|system-prompt|prompt\s+di\s+sistema|instrucciones\s+del\s+sistema)\b",
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
    /// The threshold for text from untrusted origins — tool results and retrieved documents,
    /// where an instruction has no business at all (default 0.45).
    #[serde(default = "default_untrusted_threshold")]
    pub untrusted_threshold: f32,
    /// Add the n-gram classifier's judgement to the phrase signals (default `true`).
    #[serde(default = "yes")]
    pub classifier: bool,
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
fn default_untrusted_threshold() -> f32 {
    0.45
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
            untrusted_threshold: default_untrusted_threshold(),
            classifier: true,
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
    /// Every signal in one automaton: which of them match a text, in one pass.
    set: Which,
    /// Each signal's own regex, for its finding's span: built the first time it fires.
    regexes: Vec<std::sync::OnceLock<Option<Regex>>>,
    patterns: Vec<String>,
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
        for (name, t) in [
            ("threshold", config.threshold),
            ("untrusted_threshold", config.untrusted_threshold),
        ] {
            if !(t > 0.0 && t <= 1.0) {
                return Err(Error::config(format!(
                    "prompt_injection: `{name}` must be in (0, 1]"
                )));
            }
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
        // Bytes, without Unicode classes: `\s`, `\w`, `[^.\n]` and case folding are ASCII,
        // which keeps the automaton small enough to build in a couple of milliseconds
        // (Unicode classes under counted repetitions cost tens). Non-ASCII letters in the
        // signals match as written, in lower case (the deobfuscated copy is lowercased).
        let set = Which::new(
            &patterns,
            SyntaxConfig::new().unicode(false).utf8(false),
            limit,
        )
        .map_err(|e| Error::internal(format!("prompt_injection: {e}")))?;
        let regexes = patterns
            .iter()
            .map(|_| std::sync::OnceLock::new())
            .collect();
        Ok(Self {
            set,
            regexes,
            patterns,
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
        let mut fired = vec![false; self.signals.len()];
        self.apply_signals(segment, text, true, &mut fired, &mut keep, findings);
        // The same signals over the text with its obfuscation undone (leetspeak, spaced or
        // hyphen-split letters) and, when the text says it is rot13, decoded. Each signal
        // counts once, whichever copy fired it.
        let plain = crate::injection_model::deobfuscate(text);
        if let Some(plain) = &plain {
            self.apply_signals(segment, plain, false, &mut fired, &mut keep, findings);
        }
        if self.config.classifier {
            let lower;
            let input = match &plain {
                Some(p) => p.as_str(),
                None => {
                    lower = text.to_lowercase();
                    lower.as_str()
                }
            };
            let p = Model::shipped().probability_of(input);
            let weight = classifier_weight(p);
            if weight > 0.0 {
                keep *= 1.0 - weight;
                findings.push(Finding::new(
                    "prompt_injection",
                    util::span(segment, 0, text.len()),
                    weight,
                    format!("{DETECTOR}.{CLASSIFIER}"),
                ));
            }
        }
        if let Some(plain) = rot13_payload(text) {
            self.apply_signals(segment, &plain, false, &mut fired, &mut keep, findings);
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

    /// Applies the signals not yet `fired` to `text`. Spans are reported only for the
    /// segment's own text (`spans`), not for a derived copy.
    fn apply_signals(
        &self,
        segment: usize,
        text: &str,
        spans: bool,
        fired: &mut [bool],
        keep: &mut f32,
        findings: &mut Vec<Finding>,
    ) {
        // One pass says which signals fire.
        let mut matched = PatternSet::new(self.set.pattern_len());
        self.set.which(&Input::new(text), &mut matched);
        for i in matched.iter().map(|p| p.as_usize()) {
            if std::mem::replace(&mut fired[i], true) {
                continue;
            }
            let sig = self.signals[i];
            *keep *= 1.0 - sig.weight;
            let span = if spans {
                self.regexes[i]
                    .get_or_init(|| {
                        RegexBuilder::new(&self.patterns[i])
                            .unicode(false)
                            .size_limit(64 * 1024 * 1024)
                            .build()
                            .ok()
                    })
                    .as_ref()
                    .and_then(|r| r.find(text.as_bytes()))
                    .and_then(|m| util::span(segment, m.start(), m.end()))
            } else {
                None
            };
            findings.push(Finding::new(
                "prompt_injection",
                span,
                sig.weight,
                format!("{DETECTOR}.{}", sig.name),
            ));
        }
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
            let hit = if self.set.is_match(&Input::new(&plain)) {
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

/// The rot13 decoding of `text` when it says it holds rot13.
fn rot13_payload(text: &str) -> Option<String> {
    let says_rot13 = text.as_bytes().windows(5).any(|w| {
        w[..3].eq_ignore_ascii_case(b"rot")
            && (w[3..].eq_ignore_ascii_case(b"13") || (matches!(w[3], b'-' | b' ') && w[4] == b'1'))
    });
    if !says_rot13 {
        return None;
    }
    Some(
        text.chars()
            .map(|c| match c {
                'a'..='z' => char::from((c as u8 - b'a' + 13) % 26 + b'a'),
                'A'..='Z' => char::from((c as u8 - b'A' + 13) % 26 + b'A'),
                _ => c,
            })
            .collect(),
    )
}

/// The name of the classifier's signal.
const CLASSIFIER: &str = "classifier";

/// What the classifier's probability adds to the combination: nothing at or under 0.5, then
/// rising to 0.8 at certainty, so the model alone blocks (at the default threshold) only
/// when it is at least 82% sure, and otherwise tips weaker phrase signals over.
fn classifier_weight(p: f32) -> f32 {
    ((p - 0.5) * 1.6).clamp(0.0, 0.8)
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
        // How far over its origin's threshold the worst segment is, and that threshold.
        let mut over: Option<(f32, f32)> = None;
        for (i, seg) in subject.segments().iter().enumerate() {
            if !self.config.origins.contains(&seg.origin) {
                continue;
            }
            let score = self.judge(i, seg.text, &mut findings);
            worst = worst.max(score);
            let threshold = match seg.origin {
                Origin::Tool | Origin::Retrieval => self.config.untrusted_threshold,
                _ => self.config.threshold,
            };
            if score >= threshold && over.is_none_or(|(margin, _)| score - threshold > margin) {
                over = Some((score - threshold, threshold));
            }
        }
        if let Some((_, threshold)) = over {
            let mut v = Verdict::block(
                format!("likely prompt injection (score {worst:.2}, threshold {threshold:.2})"),
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
