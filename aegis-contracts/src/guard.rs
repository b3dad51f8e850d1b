//! The [`Guardrail`] contract: judge a [`GuardSubject`] and return a [`Verdict`].

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Document, Error, Message, RequestContext, Role, ToolCall, ToolSpec};

/// Where in the lifecycle a subject comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stage {
    /// Prompts on their way to the model.
    Input,
    /// The model's answer (complete or streamed).
    Output,
    /// Arguments of a tool call the model wants to make.
    ToolCall,
    /// What a tool returned.
    ToolResult,
    /// A tool's declaration offered to the model.
    ToolDefinition,
    /// A document fetched by retrieval.
    Retrieved,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 6] = [
        Stage::Input,
        Stage::Output,
        Stage::ToolCall,
        Stage::ToolResult,
        Stage::ToolDefinition,
        Stage::Retrieved,
    ];
}

/// Who produced a text; untrusted origins (tool, retrieval) may get stricter policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Origin {
    /// The operator (system / developer prompts).
    Operator,
    /// The end user.
    User,
    /// The model.
    Model,
    /// A tool.
    Tool,
    /// A retrieval store.
    Retrieval,
}

impl From<Role> for Origin {
    fn from(role: Role) -> Self {
        match role {
            Role::System | Role::Developer => Origin::Operator,
            Role::User => Origin::User,
            Role::Assistant => Origin::Model,
            Role::Tool => Origin::Tool,
        }
    }
}

/// What a guard judges. Every variant exposes its texts as [`segments`](Self::segments) so
/// a text guard handles all stages alike, and [`Sanitize`](Decision::Sanitize) edits address
/// a segment by index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum GuardSubject {
    /// The prompt messages.
    Input {
        /// The messages, in order.
        messages: Vec<Message>,
    },
    /// A complete model answer.
    Output {
        /// The answer.
        message: Message,
    },
    /// A window of a streamed answer: `text` starts at byte `offset` of the full answer.
    OutputChunk {
        /// The text to judge.
        text: String,
        /// Byte offset of `text` in the whole answer.
        offset: usize,
    },
    /// A tool call the model (or an MCP client) wants to make.
    ToolCall {
        /// The call.
        call: ToolCall,
        /// The MCP server that would execute it (its configured id), when the tool is an
        /// MCP server's: a guard can then judge the same call differently per server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
    },
    /// A tool's result.
    ToolResult {
        /// Which call it answers.
        call_id: String,
        /// The tool's name.
        name: String,
        /// What it returned.
        content: String,
        /// The MCP server that produced it, when the tool is an MCP server's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
    },
    /// A tool declaration.
    ToolDefinition {
        /// The declaration.
        tool: ToolSpec,
    },
    /// A retrieved document.
    Retrieved {
        /// The document.
        document: Document,
    },
}

/// One text of a subject, with its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Who produced it.
    pub origin: Origin,
    /// The text.
    pub text: &'a str,
}

impl GuardSubject {
    /// The stage this subject belongs to.
    pub fn stage(&self) -> Stage {
        match self {
            Self::Input { .. } => Stage::Input,
            Self::Output { .. } | Self::OutputChunk { .. } => Stage::Output,
            Self::ToolCall { .. } => Stage::ToolCall,
            Self::ToolResult { .. } => Stage::ToolResult,
            Self::ToolDefinition { .. } => Stage::ToolDefinition,
            Self::Retrieved { .. } => Stage::Retrieved,
        }
    }

    /// The texts of the subject, in a stable order. For messages: the string content, or each
    /// text part, then the model texts of [`MESSAGE_TEXT_FIELDS`] and thinking blocks, then
    /// the author's `name`, then each tool call's arguments and function name; a tool call
    /// its arguments and function name; a tool definition its name, its description and
    /// every model-read text of its parameter schema ([`SCHEMA_TEXT_KEYS`] at any depth, and
    /// property names).
    pub fn segments(&self) -> Vec<Segment<'_>> {
        let mut out = Vec::new();
        self.visit_segments(&mut |s| out.push(s));
        out
    }

    /// The total length in bytes of the [`segments`](Self::segments), without collecting them.
    pub fn text_len(&self) -> usize {
        let mut n = 0;
        self.visit_segments(&mut |s| n += s.text.len());
        n
    }

    /// Calls `f` with each segment, in [`segments`](Self::segments) order.
    fn visit_segments<'a>(&'a self, f: &mut dyn FnMut(Segment<'a>)) {
        match self {
            Self::Input { messages } => {
                for m in messages {
                    push_message(f, m);
                }
            }
            Self::Output { message } => push_message(f, message),
            Self::OutputChunk { text, .. } => f(Segment {
                origin: Origin::Model,
                text,
            }),
            Self::ToolCall { call, .. } => {
                f(Segment {
                    origin: Origin::Model,
                    text: &call.function.arguments,
                });
                f(Segment {
                    origin: Origin::Model,
                    text: &call.function.name,
                });
            }
            Self::ToolResult { content, .. } => f(Segment {
                origin: Origin::Tool,
                text: content,
            }),
            Self::ToolDefinition { tool } => {
                let func = &tool.function;
                let texts = std::iter::once(func.name.as_str())
                    .chain(func.description.as_deref())
                    .chain(func.parameters.iter().flat_map(schema_texts));
                for text in texts {
                    f(Segment {
                        origin: Origin::Tool,
                        text,
                    });
                }
            }
            Self::Retrieved { document } => f(Segment {
                origin: Origin::Retrieval,
                text: &document.content,
            }),
        }
    }

    /// Runs of [`segments`](Self::segments) that are adjacent text parts of one message (two
    /// or more, with no other part between them), as ranges of segment indices. A provider
    /// reads such parts as one text, so the engine judges them as one: a value split across
    /// parts is still seen whole.
    pub fn text_runs(&self) -> Vec<std::ops::Range<usize>> {
        let messages: &[Message] = match self {
            Self::Input { messages } => messages,
            Self::Output { message } => std::slice::from_ref(message),
            _ => return Vec::new(),
        };
        let mut runs = Vec::new();
        let mut at = 0;
        for m in messages {
            match &m.content {
                None => {}
                Some(crate::Content::Text(_)) => at += 1,
                Some(crate::Content::Parts(parts)) => {
                    let mut start = at;
                    for p in parts {
                        if p.as_text().is_some() {
                            at += 1;
                        } else {
                            if at - start > 1 {
                                runs.push(start..at);
                            }
                            start = at;
                        }
                    }
                    if at - start > 1 {
                        runs.push(start..at);
                    }
                }
            }
            at += extra_texts(&m.extra).count()
                + usize::from(m.name.is_some())
                + 2 * m.tool_calls.len();
        }
        runs
    }

    /// A copy with the text of segment `i` replaced by `f(i, text)`, every segment in
    /// [`segments`](Self::segments) order (the engine's normalized view of a subject).
    pub fn map_segments(&self, mut f: impl FnMut(usize, &str) -> String) -> GuardSubject {
        let mut out = self.clone();
        let mut i = 0;
        out.for_each_segment_mut(&mut |t: &mut String| {
            *t = f(i, t);
            i += 1;
        });
        out
    }

    /// Applies span edits, returning an error (and changing nothing) when an edit names a
    /// segment that does not exist, a span out of range or not on a character boundary, or
    /// overlaps another edit.
    pub fn apply_edits(&mut self, edits: &[Edit]) -> Result<(), Error> {
        let count = self.segments().len();
        let mut sorted: Vec<&Edit> = edits.iter().collect();
        sorted.sort_by_key(|e| (e.segment, e.start));
        for pair in sorted.windows(2) {
            if pair[0].segment == pair[1].segment && pair[0].end > pair[1].start {
                return Err(Error::internal("guard returned overlapping sanitize edits"));
            }
        }
        // Check everything before mutating anything.
        {
            let segs = self.segments();
            for e in &sorted {
                let Some(seg) = segs.get(e.segment) else {
                    return Err(Error::internal(format!(
                        "sanitize edit names segment {} of {count}",
                        e.segment
                    )));
                };
                if e.start > e.end
                    || e.end > seg.text.len()
                    || !seg.text.is_char_boundary(e.start)
                    || !seg.text.is_char_boundary(e.end)
                {
                    return Err(Error::internal(format!(
                        "sanitize edit {}..{} is not a valid span of segment {}",
                        e.start, e.end, e.segment
                    )));
                }
            }
        }
        let mut index = 0usize;
        self.for_each_segment_mut(&mut |text: &mut String| {
            let mine: Vec<&&Edit> = sorted.iter().filter(|e| e.segment == index).collect();
            for e in mine.iter().rev() {
                text.replace_range(e.start..e.end, &e.replacement);
            }
            index += 1;
        });
        Ok(())
    }

    fn for_each_segment_mut(&mut self, f: &mut dyn FnMut(&mut String)) {
        fn message(m: &mut Message, f: &mut dyn FnMut(&mut String)) {
            match &mut m.content {
                None => {}
                Some(crate::Content::Text(t)) => f(t),
                Some(crate::Content::Parts(parts)) => {
                    for p in parts {
                        if let crate::ContentPart::Text { text } = p {
                            f(text);
                        }
                    }
                }
            }
            extra_texts_mut(&mut m.extra, f);
            if let Some(name) = &mut m.name {
                f(name);
            }
            for call in &mut m.tool_calls {
                f(&mut call.function.arguments);
                f(&mut call.function.name);
            }
        }
        match self {
            Self::Input { messages } => messages.iter_mut().for_each(|m| message(m, f)),
            Self::Output { message: m } => message(m, f),
            Self::OutputChunk { text, .. } => f(text),
            Self::ToolCall { call, .. } => {
                f(&mut call.function.arguments);
                f(&mut call.function.name);
            }
            Self::ToolResult { content, .. } => f(content),
            Self::ToolDefinition { tool } => {
                let func = &mut tool.function;
                f(&mut func.name);
                if let Some(d) = &mut func.description {
                    f(d);
                }
                if let Some(p) = &mut func.parameters {
                    schema_texts_mut(p, f);
                }
            }
            Self::Retrieved { document } => f(&mut document.content),
        }
    }
}

/// Keys of a JSON schema whose string values (or strings in their arrays) are read by the
/// model: a tool definition or a `response_format` schema is judged by all of them, not only
/// by its top-level description.
pub const SCHEMA_TEXT_KEYS: &[&str] = &[
    "description",
    "title",
    "default",
    "examples",
    "enum",
    "const",
    "required",
    "pattern",
    "$comment",
];

/// Keys of a JSON schema whose object values are keyed by names the model reads (property
/// names): each name is judged like a description.
const SCHEMA_NAME_MAPS: &[&str] = &["properties", "patternProperties", "$defs", "definitions"];

/// What a schema key says about the value under it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Under {
    /// Structure: only the text keys below it hold model-read text.
    Schema,
    /// A text key (`description`, `default`, ...): every string at any depth is text.
    Text,
    /// A map of names (`properties`): its keys are text, its values schemas.
    Names,
}

fn under(key: &str, parent: Under) -> Under {
    // Vendor extensions (`x-...`) are free text too.
    if parent == Under::Text || SCHEMA_TEXT_KEYS.contains(&key) || key.starts_with("x-") {
        Under::Text
    } else if SCHEMA_NAME_MAPS.contains(&key) {
        Under::Names
    } else {
        Under::Schema
    }
}

/// The model-read texts of a JSON schema, depth first, in key order: strings under the
/// [`SCHEMA_TEXT_KEYS`] at any depth, and property names.
fn schema_texts(schema: &serde_json::Value) -> Vec<&str> {
    fn walk<'a>(v: &'a serde_json::Value, at: Under, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::String(s) if at == Under::Text => out.push(s),
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, at, out)),
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match at {
                        Under::Names => {
                            out.push(k);
                            walk(v, Under::Schema, out);
                        }
                        Under::Text => {
                            out.push(k);
                            walk(v, Under::Text, out);
                        }
                        Under::Schema => walk(v, under(k, at), out),
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, Under::Schema, &mut out);
    out
}

/// [`schema_texts`], mutably, in the same order. An edited name renames its key (made
/// unique if it now collides with another).
fn schema_texts_mut(schema: &mut serde_json::Value, f: &mut dyn FnMut(&mut String)) {
    fn walk(v: &mut serde_json::Value, at: Under, f: &mut dyn FnMut(&mut String)) {
        match v {
            serde_json::Value::String(s) if at == Under::Text => f(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| walk(i, at, f)),
            serde_json::Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    let mut name = key.clone();
                    let below = match at {
                        Under::Names => {
                            f(&mut name);
                            Under::Schema
                        }
                        Under::Text => {
                            f(&mut name);
                            Under::Text
                        }
                        Under::Schema => under(&key, at),
                    };
                    if name != key {
                        while map.contains_key(&name) {
                            name.push('_');
                        }
                        if let Some(value) = map.remove(&key) {
                            map.insert(name.clone(), value);
                        }
                    }
                    if let Some(value) = map.get_mut(&name) {
                        walk(value, below, f);
                    }
                }
            }
            _ => {}
        }
    }
    walk(schema, Under::Schema, f)
}

/// Fields of a message's `extra` that carry model text — reasoning and refusals — judged
/// (and sanitized) like its content, in this order, after the content: a secret an output
/// guard redacts from `content` must not come back verbatim in `reasoning_content`.
pub const MESSAGE_TEXT_FIELDS: &[&str] = &["reasoning_content", "reasoning", "refusal"];

/// Top-level fields of an answer (or a streamed chunk) that carry no model text and reach
/// the client as they came. Any other top-level field an upstream adds is dropped: no guard
/// judged it.
pub const ANSWER_METADATA_FIELDS: &[&str] = &["system_fingerprint", "service_tier"];

/// The `extra` field holding Anthropic thinking blocks; the `thinking` text of each is
/// judged after [`MESSAGE_TEXT_FIELDS`].
pub const THINKING_BLOCKS_FIELD: &str = "thinking_blocks";

/// The `extra` field holding Gemini's raw parts (replayed to keep thought signatures); the
/// `text` of each is judged after the thinking blocks.
pub const GEMINI_PARTS_FIELD: &str = "gemini_parts";

/// The model texts a message carries outside its content, in segment order.
fn extra_texts(extra: &crate::Extra) -> impl Iterator<Item = &str> {
    let fields = MESSAGE_TEXT_FIELDS
        .iter()
        .filter_map(|k| extra.get(*k).and_then(serde_json::Value::as_str));
    let thinking = extra
        .get(THINKING_BLOCKS_FIELD)
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("thinking").and_then(serde_json::Value::as_str));
    let gemini = extra
        .get(GEMINI_PARTS_FIELD)
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(serde_json::Value::as_str));
    fields.chain(thinking).chain(gemini)
}

/// [`extra_texts`], mutably, in the same order.
fn extra_texts_mut(extra: &mut crate::Extra, f: &mut dyn FnMut(&mut String)) {
    for k in MESSAGE_TEXT_FIELDS {
        if let Some(serde_json::Value::String(t)) = extra.get_mut(*k) {
            f(t);
        }
    }
    for (field, key) in [
        (THINKING_BLOCKS_FIELD, "thinking"),
        (GEMINI_PARTS_FIELD, "text"),
    ] {
        if let Some(serde_json::Value::Array(items)) = extra.get_mut(field) {
            for item in items {
                if let Some(serde_json::Value::String(t)) = item.get_mut(key) {
                    f(t);
                }
            }
        }
    }
}

fn push_message<'a>(out: &mut dyn FnMut(Segment<'a>), m: &'a Message) {
    let origin = Origin::from(m.role);
    match &m.content {
        None => {}
        Some(crate::Content::Text(t)) => out(Segment { origin, text: t }),
        Some(crate::Content::Parts(parts)) => {
            for text in parts.iter().filter_map(|p| p.as_text()) {
                out(Segment { origin, text });
            }
        }
    }
    for text in extra_texts(&m.extra) {
        out(Segment { origin, text });
    }
    // The author's name is part of the prompt a provider builds.
    if let Some(name) = &m.name {
        out(Segment { origin, text: name });
    }
    for call in &m.tool_calls {
        out(Segment {
            origin: Origin::Model,
            text: &call.function.arguments,
        });
        out(Segment {
            origin: Origin::Model,
            text: &call.function.name,
        });
    }
}

/// A byte range `[start, end)` in one segment of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Span {
    /// Index into [`GuardSubject::segments`].
    pub segment: usize,
    /// Start byte (inclusive).
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
}

/// Something a detector found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// What was found (`EMAIL_ADDRESS`, `aws_access_key`, `prompt_injection`).
    pub kind: String,
    /// Where, when it has a location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Which detector found it.
    pub detector: String,
}

impl Finding {
    /// A finding at `span`.
    pub fn new(
        kind: impl Into<String>,
        span: Option<Span>,
        score: f32,
        detector: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            span,
            score,
            detector: detector.into(),
        }
    }
}

/// Replace bytes `start..end` of segment `segment` with `replacement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Edit {
    /// Index into [`GuardSubject::segments`].
    pub segment: usize,
    /// Start byte (inclusive).
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// What to put there (a mask, a `<PERSON_1>` token, ...).
    pub replacement: String,
}

/// What a guard decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Decision {
    /// Let it through.
    Allow,
    /// Refuse it.
    Block {
        /// Why, for humans.
        reason: String,
        /// A stable machine code.
        code: String,
    },
    /// Let it through after these edits.
    Sanitize {
        /// Span edits on the subject's segments.
        edits: Vec<Edit>,
    },
    /// Pause the run until a human decides.
    RequireApproval {
        /// Why, for the approver.
        reason: String,
        /// Context for the approver.
        payload: Value,
    },
}

/// A guard's judgement: the decision plus its evidence.
///
/// ```
/// use aegis_contracts::{Decision, Finding, Verdict};
/// let v = Verdict::block("credit card number", "pii")
///     .with_finding(Finding::new("CREDIT_CARD", None, 0.9, "luhn"));
/// assert!(v.is_block());
/// assert_eq!(v.score, 0.9);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    /// The guard instance that decided (filled in by the chain from the config id).
    #[serde(default)]
    pub guard: String,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
    /// The evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// Overall risk score in `[0, 1]` (the highest finding score unless set).
    pub score: f32,
}

impl Verdict {
    /// A verdict with `decision` and no findings.
    pub fn new(decision: Decision) -> Self {
        Self {
            guard: String::new(),
            decision,
            findings: Vec::new(),
            score: 0.0,
        }
    }

    /// Allow.
    pub fn allow() -> Self {
        Self::new(Decision::Allow)
    }

    /// Block with a reason and a stable code.
    pub fn block(reason: impl Into<String>, code: impl Into<String>) -> Self {
        Self::new(Decision::Block {
            reason: reason.into(),
            code: code.into(),
        })
    }

    /// Sanitize with edits.
    pub fn sanitize(edits: Vec<Edit>) -> Self {
        Self::new(Decision::Sanitize { edits })
    }

    /// Require a human decision.
    pub fn require_approval(reason: impl Into<String>, payload: Value) -> Self {
        Self::new(Decision::RequireApproval {
            reason: reason.into(),
            payload,
        })
    }

    /// Adds a finding; raises the score to the finding's if higher.
    pub fn with_finding(mut self, finding: Finding) -> Self {
        self.score = self.score.max(finding.score);
        self.findings.push(finding);
        self
    }

    /// Adds findings.
    pub fn with_findings(self, findings: impl IntoIterator<Item = Finding>) -> Self {
        findings.into_iter().fold(self, Self::with_finding)
    }

    /// Whether the decision is [`Decision::Allow`].
    pub fn is_allow(&self) -> bool {
        matches!(self.decision, Decision::Allow)
    }

    /// Whether the decision is [`Decision::Block`].
    pub fn is_block(&self) -> bool {
        matches!(self.decision, Decision::Block { .. })
    }

    /// The decision's name: `allow`, `block`, `sanitize` or `require_approval`.
    pub fn decision_name(&self) -> &'static str {
        match self.decision {
            Decision::Allow => "allow",
            Decision::Block { .. } => "block",
            Decision::Sanitize { .. } => "sanitize",
            Decision::RequireApproval { .. } => "require_approval",
        }
    }
}

/// How much text a guard needs to see at once when judging a stream. The engine derives the
/// hold-back window of a streaming pipeline from the guards' granularities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "bytes", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Granularity {
    /// Every finding lies within one character: each chunk can be judged alone.
    Char,
    /// Every finding spans at most this many bytes (and depends on nothing farther away).
    Window(usize),
    /// Findings never cross a sentence end (`.`, `!`, `?` followed by whitespace, or a newline).
    Sentence,
    /// The guard needs the whole text.
    FullText,
}

/// What a guard can do; the engine plans streaming and parallelism from this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct GuardCapabilities {
    /// Stages the guard applies to; the chain skips it elsewhere.
    pub stages: Vec<Stage>,
    /// Streaming granularity.
    pub granularity: Granularity,
    /// Whether it may return [`Decision::Sanitize`].
    pub sanitizes: bool,
    /// A rough cost class, for planning.
    pub cost: Cost,
    /// What the guard judges besides text. A request with an image, audio or file part is
    /// refused unless one of its input guards declares that modality (fail closed; a
    /// pipeline can opt out).
    #[serde(default)]
    pub modalities: Vec<Modality>,
    /// Whether the guard judges text exactly as it came. By default a guard sees the
    /// engine's normalized view (NFKC, invisible and format characters removed) and its
    /// spans and edits are mapped back; a guard about the raw characters themselves
    /// (invisible text, JSON validity, token counts) declares `raw_text`.
    #[serde(default)]
    pub raw_text: bool,
}

impl GuardCapabilities {
    /// A guard for `stages` with `granularity`, not sanitizing, cheap, judging text only.
    pub fn new(stages: impl Into<Vec<Stage>>, granularity: Granularity) -> Self {
        Self {
            stages: stages.into(),
            granularity,
            sanitizes: false,
            cost: Cost::Cheap,
            modalities: Vec::new(),
            raw_text: false,
        }
    }

    /// Declares that the guard judges the raw text, not the normalized view.
    pub fn raw_text(mut self) -> Self {
        self.raw_text = true;
        self
    }

    /// Declares that the guard judges `modality` parts too (it reads them from
    /// [`GuardSubject::Input`]'s messages).
    pub fn judging(mut self, modality: Modality) -> Self {
        if !self.modalities.contains(&modality) {
            self.modalities.push(modality);
        }
        self
    }

    /// Whether the guard judges `modality` (text always).
    pub fn judges(&self, modality: Modality) -> bool {
        modality == Modality::Text || self.modalities.contains(&modality)
    }

    /// Declares that the guard may sanitize.
    pub fn sanitizing(mut self) -> Self {
        self.sanitizes = true;
        self
    }

    /// Sets the cost class.
    pub fn with_cost(mut self, cost: Cost) -> Self {
        self.cost = cost;
        self
    }

    /// Whether the guard applies to `stage`.
    pub fn applies_to(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }
}

/// A kind of content a message part carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Modality {
    /// Text.
    Text,
    /// Images (`image_url` parts).
    Image,
    /// Audio (`input_audio` parts).
    Audio,
    /// Files (`file` parts).
    File,
}

impl Modality {
    /// The modality of a message part.
    pub fn of(part: &crate::ContentPart) -> Self {
        match part {
            crate::ContentPart::Text { .. } => Self::Text,
            crate::ContentPart::ImageUrl { .. } => Self::Image,
            crate::ContentPart::InputAudio { .. } => Self::Audio,
            crate::ContentPart::File { .. } => Self::File,
        }
    }
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Audio => "audio",
            Self::File => "file",
        })
    }
}

/// A guard's rough cost.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Cost {
    /// Microseconds: pattern matching.
    Cheap,
    /// Milliseconds: a local model.
    Moderate,
    /// A network call.
    Expensive,
}

/// What happens when a guard errors or times out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Block (the default: fail closed).
    #[default]
    Closed,
    /// Allow, and record that the guard failed.
    Open,
}

/// Whether a guard's verdicts change traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardMode {
    /// Verdicts are applied.
    #[default]
    Enforce,
    /// Verdicts are recorded only: how a new rule is rolled out.
    Shadow,
}

/// Contract: a guardrail.
///
/// ```
/// use aegis_contracts::*;
/// use async_trait::async_trait;
///
/// struct NoSecrets;
///
/// #[async_trait]
/// impl Guardrail for NoSecrets {
///     fn capabilities(&self) -> GuardCapabilities {
///         GuardCapabilities::new(Stage::ALL, Granularity::Window(64))
///     }
///     async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
///         let hit = subject.segments().iter().any(|s| s.text.contains("sk-"));
///         Ok(if hit { Verdict::block("looks like an API key", "secret") } else { Verdict::allow() })
///     }
/// }
/// ```
#[async_trait]
pub trait Guardrail: Send + Sync + 'static {
    /// Stages, streaming granularity, sanitize support, cost.
    fn capabilities(&self) -> GuardCapabilities;

    /// Judges a subject. An `Err` is handled by the chain according to the fail mode.
    async fn check(&self, subject: &GuardSubject, ctx: &RequestContext) -> Result<Verdict, Error>;

    /// For a streamed answer judged with [`Granularity::Window`]: how much of `text` (the
    /// window the engine holds, as the guard would judge it) is *settled* — the offset
    /// before which no finding can change with more text: no match still in progress, no
    /// look-ahead outstanding, no complete match overlapping one in progress. The engine
    /// releases settled text at once and acts only on findings that start in it; it never
    /// holds more than the declared window. Text before `from` was settled by an earlier
    /// call, so a guard need only look for candidates starting at or after it.
    ///
    /// The default, `None`, holds the whole declared window. A guard built on regular
    /// patterns can answer with `aegis-settle`'s probes; answering too early breaks the
    /// guarantee that a streamed answer is judged exactly as the whole one.
    fn stream_settled(&self, text: &str, from: usize, ctx: &RequestContext) -> Option<usize> {
        let _ = (text, from, ctx);
        None
    }

    /// Called once when run `run_id` ends (completed, failed or rejected; for a streamed
    /// answer, when the stream ends), so a guard can drop per-run state such as a
    /// pseudonymization vault. Must not block. The default does nothing.
    fn on_run_end(&self, run_id: &str) {
        let _ = run_id;
    }
}

/// Per-instance policy for a guard in a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct GuardPolicy {
    /// Error or timeout: block (closed, default) or allow (open, recorded).
    pub fail_mode: FailMode,
    /// Enforce (default) or shadow.
    pub mode: GuardMode,
    /// Deadline for one check, in milliseconds.
    #[serde(rename = "timeout_ms", with = "millis")]
    #[schemars(with = "u64")]
    pub timeout: Duration,
}

impl Default for GuardPolicy {
    fn default() -> Self {
        Self {
            fail_mode: FailMode::Closed,
            mode: GuardMode::Enforce,
            timeout: Duration::from_secs(5),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
