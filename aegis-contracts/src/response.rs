//! Chat responses: complete or streamed, with [`ChatResponse::collect`] to fold a stream.

use std::{collections::BTreeMap, fmt, pin::Pin, time::Duration};

use futures_core::Stream;
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Extra, FunctionCall, Message, Role, ToolCall};

/// A stream of chunks. A stream that ends without `Err` is complete; a failure mid-way is
/// always an `Err` item, never a silent end.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, Error>> + Send + 'static>>;

/// The answer to a [`ChatRequest`](crate::ChatRequest).
pub struct ChatResponse {
    /// Who answered, and how the pipeline treated it.
    pub meta: ResponseMeta,
    /// The body.
    pub body: ChatBody,
}

/// A complete answer or a stream of chunks.
pub enum ChatBody {
    /// The whole answer at once.
    Complete(Completion),
    /// Chunks as the model produces them.
    Stream(ChatStream),
}

impl fmt::Debug for ChatBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Complete(c) => f.debug_tuple("Complete").field(c).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

impl fmt::Debug for ChatResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatResponse")
            .field("meta", &self.meta)
            .field("body", &self.body)
            .finish()
    }
}

/// Metadata about how a response was produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ResponseMeta {
    /// The provider instance that answered.
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// The run this response belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Names of the guards that judged this exchange, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<String>,
    /// The deployment that answered, when the provider is a router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The region the answering backend processed the data in, when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Time spent in the provider call (time to headers for streams).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_millis")]
    #[schemars(with = "Option<u64>")]
    pub provider_latency: Option<Duration>,
    /// Every document retrieval offered this exchange and what the guards made of it (only
    /// the `allowed` and `sanitized` ones entered the prompt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retrieval: Vec<crate::Provenance>,
    /// The run's labels at its end (the host's, the caller's, those policies added, such as
    /// a classification): in process only — never serialized, so never sent to a client.
    #[serde(skip)]
    #[schemars(skip)]
    pub labels: std::collections::BTreeMap<String, String>,
}

mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

impl ResponseMeta {
    /// Metadata naming the provider and model.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            ..Self::default()
        }
    }
}

impl ChatResponse {
    /// A complete response.
    pub fn complete(meta: ResponseMeta, completion: Completion) -> Self {
        Self {
            meta,
            body: ChatBody::Complete(completion),
        }
    }

    /// A streamed response.
    pub fn stream(meta: ResponseMeta, stream: ChatStream) -> Self {
        Self {
            meta,
            body: ChatBody::Stream(stream),
        }
    }

    /// The complete answer: returned as is, or folded from the stream. A stream error is
    /// returned as the error; nothing partial is passed off as complete.
    pub async fn collect(self) -> Result<Completion, Error> {
        match self.body {
            ChatBody::Complete(c) => Ok(c),
            ChatBody::Stream(mut stream) => {
                let mut acc = CompletionBuilder::default();
                while let Some(chunk) = stream.next().await {
                    acc.push(&chunk?);
                }
                Ok(acc.finish())
            }
        }
    }
}

/// Folds [`ChatChunk`]s into a [`Completion`].
#[derive(Debug, Default)]
///
/// Choice and tool-call indexes come from the upstream and are not trusted: they key sparse
/// maps (memory grows with the chunks received, never with an index's value), and the
/// folded completion numbers choices and tool calls densely in index order.
pub struct CompletionBuilder {
    id: String,
    model: String,
    created: u64,
    choices: BTreeMap<u32, ChoiceBuilder>,
    usage: Option<Usage>,
}

#[derive(Debug, Default)]
struct ChoiceBuilder {
    role: Option<Role>,
    text: Option<String>,
    extra: Extra,
    tool_calls: BTreeMap<u32, ToolCall>,
    finish_reason: Option<String>,
}

impl CompletionBuilder {
    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if self.created == 0 {
            self.created = chunk.created;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for c in &chunk.choices {
            let b = self.choices.entry(c.index).or_default();
            if c.delta.role.is_some() {
                b.role = c.delta.role;
            }
            if let Some(t) = &c.delta.content {
                b.text.get_or_insert_with(String::new).push_str(t);
            }
            for (k, v) in &c.delta.extra {
                match (b.extra.get_mut(k), v) {
                    (Some(serde_json::Value::String(acc)), serde_json::Value::String(more)) => {
                        acc.push_str(more)
                    }
                    (_, v) if !v.is_null() => {
                        b.extra.insert(k.clone(), v.clone());
                    }
                    _ => {}
                }
            }
            for d in &c.delta.tool_calls {
                let call = b
                    .tool_calls
                    .entry(d.index)
                    .or_insert_with(|| ToolCall::new("", "", ""));
                if let Some(id) = &d.id {
                    call.id.clone_from(id);
                }
                if let Some(f) = &d.function {
                    if let Some(n) = &f.name {
                        call.function.name.push_str(n);
                    }
                    if let Some(a) = &f.arguments {
                        call.function.arguments.push_str(a);
                    }
                }
            }
            if c.finish_reason.is_some() {
                b.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    /// The folded completion.
    pub fn finish(self) -> Completion {
        Completion {
            id: self.id,
            model: self.model,
            created: self.created,
            choices: self
                .choices
                .into_values()
                .zip(0..)
                .map(|(b, index)| Choice {
                    index,
                    message: Message {
                        role: b.role.unwrap_or(Role::Assistant),
                        content: b.text.map(crate::Content::Text),
                        tool_calls: b.tool_calls.into_values().collect(),
                        extra: b.extra,
                        ..Message::default()
                    },
                    finish_reason: b.finish_reason,
                })
                .collect(),
            usage: self.usage,
            extra: Extra::new(),
        }
    }
}

/// A complete answer, OpenAI-shaped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Completion {
    /// Upstream id.
    pub id: String,
    /// Model that answered.
    pub model: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The choices (usually one).
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Unknown upstream fields (e.g. `system_fingerprint`).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Completion {
    /// A one-choice completion of plain assistant text.
    pub fn text(id: impl Into<String>, model: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            created: 0,
            choices: vec![Choice {
                index: 0,
                message: Message::assistant(text),
                finish_reason: Some("stop".into()),
            }],
            usage: None,
            extra: Extra::new(),
        }
    }

    /// The first choice's message, if any.
    pub fn message(&self) -> Option<&Message> {
        self.choices.first().map(|c| &c.message)
    }
}

/// One alternative answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Choice {
    /// Position.
    pub index: u32,
    /// The answer.
    pub message: Message,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, `content_filter`).
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// One streamed chunk, OpenAI-shaped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ChatChunk {
    /// Upstream id, the same on every chunk of a stream.
    pub id: String,
    /// Model.
    #[serde(default)]
    pub model: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// Deltas.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Usage (usually only on the last chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Unknown top-level fields (`system_fingerprint`, `service_tier`, ...), kept so they
    /// reach the client, with or without output guards.
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

impl ChatChunk {
    /// A chunk carrying `text` for choice 0.
    pub fn text(id: impl Into<String>, model: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            created: 0,
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta {
                    content: Some(text.into()),
                    ..Delta::default()
                },
                finish_reason: None,
            }],
            usage: None,
            extra: Extra::new(),
        }
    }
}

/// A delta for one choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChunkChoice {
    /// Choice position.
    pub index: u32,
    /// What is new.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// What a chunk adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Delta {
    /// Role, on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// More text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Pieces of tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
    /// Provider fields Aegis does not model (`reasoning_content`, `refusal`), forwarded as is;
    /// [`CompletionBuilder`] concatenates string fragments into the message's `extra`.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A piece of a streamed tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCallDelta {
    /// Which call of the message.
    pub index: u32,
    /// Call id (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"function"` (first piece).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and argument fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

/// Fragments of a [`FunctionCall`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FunctionCallDelta {
    /// Name (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A fragment of the JSON arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl From<&ToolCall> for ToolCallDelta {
    fn from(call: &ToolCall) -> Self {
        Self {
            index: 0,
            id: Some(call.id.clone()),
            kind: Some(call.kind.clone()),
            function: Some(FunctionCallDelta {
                name: Some(call.function.name.clone()),
                arguments: Some(call.function.arguments.clone()),
            }),
        }
    }
}

impl From<FunctionCall> for FunctionCallDelta {
    fn from(f: FunctionCall) -> Self {
        Self {
            name: Some(f.name),
            arguments: Some(f.arguments),
        }
    }
}

/// Token usage, normalized across providers so pricing is right: cached and reasoning tokens
/// are reported separately from the plain counts that contain them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    /// Prompt tokens, including cached ones.
    pub input_tokens: u64,
    /// Completion tokens, including reasoning ones.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Completion tokens spent on hidden reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Input plus output (saturating: the counts come from an upstream).
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// An embeddings request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct EmbeddingRequest {
    /// Model.
    pub model: String,
    /// Texts to embed.
    pub input: Vec<String>,
    /// Requested dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Unknown fields, forwarded.
    #[serde(flatten)]
    pub extra: Extra,
    /// Per-request context; never serialized.
    #[serde(skip)]
    pub ctx: crate::RequestContext,
}

impl EmbeddingRequest {
    /// Embeds `input` with `model`.
    pub fn new(model: impl Into<String>, input: Vec<String>) -> Self {
        Self {
            model: model.into(),
            input,
            ..Self::default()
        }
    }
}

/// Embedding vectors, one per input, in input order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct EmbeddingResponse {
    /// Model that answered.
    pub model: String,
    /// One vector per input.
    pub data: Vec<Vec<f32>>,
    /// Token usage.
    #[serde(default)]
    pub usage: Usage,
}

impl EmbeddingResponse {
    /// Vectors from `model`.
    pub fn new(model: impl Into<String>, data: Vec<Vec<f32>>, usage: Usage) -> Self {
        Self {
            model: model.into(),
            data,
            usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collecting_chunks_keeps_unknown_delta_fields_concatenated() {
        let mut b = CompletionBuilder::default();
        for piece in ["think", "ing"] {
            let mut c = ChatChunk::text("id", "m", "");
            c.choices[0].delta.content = None;
            c.choices[0]
                .delta
                .extra
                .insert("reasoning_content".into(), piece.into());
            b.push(&c);
        }
        b.push(&ChatChunk::text("id", "m", "answer"));
        let done = b.finish();
        let m = done.message().unwrap();
        assert_eq!(m.text(), "answer");
        assert_eq!(m.extra["reasoning_content"], "thinking");
    }
}
