//! [`Echo`]: the offline development provider.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aegis_contracts::{
    ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Completion, Content, Delta,
    EmbeddingRequest, EmbeddingResponse, Error, FunctionCallDelta, Message, Provider,
    ProviderCapabilities, ResponseMeta, Role, ToolCall, ToolCallDelta, Usage, async_trait,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of an [`Echo`] provider, as it appears in the plugin registry.
///
/// ```
/// use aegis_providers::EchoConfig;
/// let cfg: EchoConfig = serde_json::from_str(r#"{"region": "eu"}"#).unwrap();
/// assert_eq!(cfg.region.as_deref(), Some("eu"));
/// assert!(serde_json::from_str::<EchoConfig>(r#"{"regoin": "eu"}"#).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EchoConfig {
    /// Region to claim, so residency policy can be tried offline.
    #[serde(default)]
    pub region: Option<String>,
    /// Models to claim; empty means whatever is asked.
    #[serde(default)]
    pub models: Vec<String>,
}

/// **The offline development provider**: no network, no API key, deterministic answers.
/// Examples and quickstarts run on it; so can tests of anything above a provider.
///
/// - **Text**: answers the text of the last user (or tool) message, prefixed with `"echo: "`.
/// - **Tool calls**: when the request has tools and the last message is a user message
///   `/call NAME {json-args}`, answers with a call to `NAME` with those arguments
///   (`finish_reason: "tool_calls"`), so tool-call flows can be tried offline. When the
///   conversation then ends with the tool's result, that result is echoed back as text, so an
///   agent loop terminates.
/// - **Streaming** splits the answer into word-sized chunks (whitespace kept, so the chunks
///   concatenate to the complete answer); the role is on the first chunk, `finish_reason` and
///   usage on the last.
/// - **Usage** counts whitespace-separated words: input = the words of all messages, output =
///   the words of the answer (for a tool call: the name plus the argument words).
/// - **Embeddings** are deterministic hashed bag-of-words vectors, 16 dimensions (or the
///   requested `dimensions`), L2-normalized; equal texts give equal vectors.
///
/// It allocates nothing beyond the answer itself, so it can serve as the baseline of latency
/// benchmarks.
///
/// ```
/// use aegis_contracts::{ChatRequest, Message, Provider, ToolSpec};
/// use aegis_providers::Echo;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), aegis_contracts::Error> {
/// let weather = ToolSpec::function("get_weather", "Weather in a city", serde_json::json!({"type": "object"}));
/// let req = ChatRequest::new("m", vec![Message::user(r#"/call get_weather {"city": "Paris"}"#)])
///     .with_tool(weather);
/// let answer = Echo::default().chat(req).await?.collect().await?;
/// let call = &answer.message().unwrap().tool_calls[0];
/// assert_eq!(call.function.name, "get_weather");
/// assert_eq!(call.arguments_json()?["city"], "Paris");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Echo {
    name: String,
    region: Option<String>,
    models: Vec<String>,
}

impl Default for Echo {
    /// An echo provider named `echo`.
    fn default() -> Self {
        Self::new("echo")
    }
}

/// Dimensions of an embedding when the request does not ask for a number.
const DEFAULT_DIMENSIONS: usize = 16;
/// Largest `dimensions` an embedding request may ask for.
const MAX_DIMENSIONS: u32 = 4096;
const ID: &str = "chatcmpl-echo";

impl Echo {
    /// An echo provider named `name`, in no region, serving every model.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            region: None,
            models: Vec::new(),
        }
    }

    /// Builds the provider instance `name` from its registry configuration.
    pub fn from_config(name: impl Into<String>, cfg: EchoConfig) -> Self {
        Self {
            name: name.into(),
            region: cfg.region,
            models: cfg.models,
        }
    }

    /// Claims a region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Claims a list of models.
    pub fn with_models<I, S>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }
}

/// What Echo answers.
enum Answer {
    Text(String),
    Call { call: ToolCall, words: u64 },
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn content_words(content: Option<&Content>) -> u64 {
    match content {
        None => 0,
        Some(Content::Text(t)) => words(t),
        Some(Content::Parts(parts)) => parts.iter().filter_map(|p| p.as_text()).map(words).sum(),
    }
}

/// Appends a message's text (parts joined by newlines) without an intermediate string.
fn push_text(out: &mut String, content: Option<&Content>) {
    match content {
        None => {}
        Some(Content::Text(t)) => out.push_str(t),
        Some(Content::Parts(parts)) => {
            for (i, t) in parts.iter().filter_map(|p| p.as_text()).enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(t);
            }
        }
    }
}

fn answer(req: &ChatRequest) -> Result<Answer, Error> {
    let last = req
        .messages
        .iter()
        .rev()
        .find(|m| matches!(m.role, Role::User | Role::Tool));
    let content = last.and_then(|m| m.content.as_ref());
    if let (Some(m), Some(Content::Text(text)), false) = (last, content, req.tools.is_empty()) {
        let is_last_message = req.messages.last().is_some_and(|l| std::ptr::eq(l, m));
        if let (Role::User, true, Some(rest)) = (
            m.role,
            is_last_message,
            text.trim_start().strip_prefix("/call "),
        ) {
            return tool_call(req, rest.trim());
        }
    }
    let len = match content {
        Some(Content::Text(t)) => t.len(),
        _ => 64,
    };
    let mut text = String::with_capacity("echo: ".len() + len);
    text.push_str("echo: ");
    push_text(&mut text, content);
    Ok(Answer::Text(text))
}

fn tool_call(req: &ChatRequest, rest: &str) -> Result<Answer, Error> {
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((name, args)) => (name, args.trim()),
        None => (rest, ""),
    };
    if !req.tools.iter().any(|t| t.function.name == name) {
        return Err(Error::invalid_request(format!(
            "echo: `/call {name}` names no tool of the request"
        )));
    }
    let args = if args.is_empty() { "{}" } else { args };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(args) {
        return Err(Error::invalid_request(format!(
            "echo: the arguments of `/call {name}` are not JSON: {e}"
        )));
    }
    let id = format!("call_echo_{}", req.messages.len());
    Ok(Answer::Call {
        words: 1 + words(args),
        call: ToolCall::new(id, name, args),
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[async_trait]
impl Provider for Echo {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> ProviderCapabilities {
        let mut caps = ProviderCapabilities::all();
        caps.vision = false;
        caps.json_mode = false;
        caps
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn models(&self) -> Vec<String> {
        self.models.clone()
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        let started = Instant::now();
        let answer = answer(&req)?;
        let input_tokens = req
            .messages
            .iter()
            .map(|m| content_words(m.content.as_ref()))
            .sum();
        let created = unix_now();
        let ChatRequest { model, stream, .. } = req;
        let mut meta = ResponseMeta::new(self.name.clone(), model.clone());
        if stream {
            let usage = Usage {
                input_tokens,
                ..Usage::default()
            };
            let chunks = EchoChunks {
                model,
                created,
                answer,
                pos: 0,
                started: false,
                done: false,
                usage,
            };
            meta.provider_latency = Some(started.elapsed());
            return Ok(ChatResponse::stream(
                meta,
                Box::pin(futures_util::stream::iter(chunks)),
            ));
        }
        let mut completion = match answer {
            Answer::Text(text) => {
                let output_tokens = words(&text);
                let mut c = Completion::text(ID, model, text);
                c.usage = Some(Usage {
                    input_tokens,
                    output_tokens,
                    ..Usage::default()
                });
                c
            }
            Answer::Call { call, words } => {
                let mut c = Completion::text(ID, model, "");
                if let Some(choice) = c.choices.first_mut() {
                    let mut message = Message::default();
                    message.role = Role::Assistant;
                    message.tool_calls = vec![call];
                    choice.message = message;
                    choice.finish_reason = Some("tool_calls".into());
                }
                c.usage = Some(Usage {
                    input_tokens,
                    output_tokens: words,
                    ..Usage::default()
                });
                c
            }
        };
        completion.created = created;
        meta.provider_latency = Some(started.elapsed());
        Ok(ChatResponse::complete(meta, completion))
    }

    async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        let dims = match req.dimensions {
            None => DEFAULT_DIMENSIONS,
            Some(d @ 1..=MAX_DIMENSIONS) => d as usize,
            Some(d) => {
                return Err(Error::invalid_request(format!(
                    "echo: `dimensions` must be between 1 and {MAX_DIMENSIONS}, not {d}"
                )));
            }
        };
        let data = req
            .input
            .iter()
            .map(|text| hashed_embedding(text, dims))
            .collect();
        let input_tokens = req.input.iter().map(|t| words(t)).sum();
        let usage = Usage {
            input_tokens,
            ..Usage::default()
        };
        Ok(EmbeddingResponse::new(req.model, data, usage))
    }
}

/// Signed feature hashing of lowercased words (FNV-1a), L2-normalized. An empty text is the
/// zero vector.
fn hashed_embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims];
    for word in text.split_whitespace() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.bytes() {
            h ^= u64::from(b.to_ascii_lowercase());
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let slot = (h % dims as u64) as usize;
        v[slot] += if (h >> 63) == 0 { 1.0 } else { -1.0 };
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// The streamed answer, produced lazily one word-sized chunk at a time.
struct EchoChunks {
    model: String,
    created: u64,
    answer: Answer,
    /// Byte position in the streamed text (the answer, or the call's arguments).
    pos: usize,
    started: bool,
    done: bool,
    usage: Usage,
}

/// End of the word-sized piece starting at `pos`: leading whitespace, then one word.
fn piece_end(s: &str, pos: usize) -> usize {
    let rest = &s[pos..];
    let word_start = rest
        .find(|c: char| !c.is_whitespace())
        .unwrap_or(rest.len());
    let word_len = rest[word_start..]
        .find(char::is_whitespace)
        .unwrap_or(rest.len() - word_start);
    pos + word_start + word_len
}

impl Iterator for EchoChunks {
    type Item = Result<ChatChunk, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let first = !std::mem::replace(&mut self.started, true);
        let mut delta = Delta {
            role: first.then_some(Role::Assistant),
            ..Delta::default()
        };
        let (text, finish) = match &self.answer {
            Answer::Text(t) => (t.as_str(), "stop"),
            Answer::Call { call, .. } => (call.function.arguments.as_str(), "tool_calls"),
        };
        let end = piece_end(text, self.pos);
        let piece = &text[self.pos..end];
        self.pos = end;
        let last = end >= text.len();
        match &self.answer {
            Answer::Text(_) => delta.content = Some(piece.to_owned()),
            Answer::Call { call, .. } => delta.tool_calls.push(ToolCallDelta {
                index: 0,
                id: first.then(|| call.id.clone()),
                kind: first.then(|| "function".to_owned()),
                function: Some(FunctionCallDelta {
                    name: first.then(|| call.function.name.clone()),
                    arguments: Some(piece.to_owned()),
                }),
            }),
        }
        let mut chunk = ChatChunk::default();
        chunk.id = ID.to_owned();
        chunk.model.clone_from(&self.model);
        chunk.created = self.created;
        chunk.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason: last.then(|| finish.to_owned()),
        });
        if last {
            self.done = true;
            let output_tokens = match &self.answer {
                Answer::Text(t) => words(t),
                Answer::Call { words, .. } => *words,
            };
            chunk.usage = Some(Usage {
                output_tokens,
                ..self.usage
            });
        }
        Some(Ok(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_text() {
        for text in ["echo: a  b\tc ", "echo: ", "x", "  lead", "é ü  ñ"] {
            let mut pos = 0;
            let mut out = String::new();
            while pos < text.len() {
                let end = piece_end(text, pos);
                assert!(end > pos);
                out.push_str(&text[pos..end]);
                pos = end;
            }
            assert_eq!(out, text);
        }
    }

    #[test]
    fn embeddings_are_unit_length_and_case_insensitive() {
        let a = hashed_embedding("Hello World", 16);
        let b = hashed_embedding("hello world", 16);
        assert_eq!(a, b);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(hashed_embedding("", 16).iter().all(|x| *x == 0.0));
    }
}
