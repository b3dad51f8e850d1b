//! [`Anthropic`]: the Anthropic Messages API (`POST /v1/messages`), complete and streamed.
//!
//! Translation, both ways:
//!
//! - `system` / `developer` messages are hoisted into the top-level `system` blocks;
//!   consecutive messages of one role are merged (the API requires alternation); `tool`
//!   messages become `tool_result` blocks of a user turn.
//! - Assistant tool calls are `tool_use` blocks; images are `image` blocks (`base64` from data
//!   URLs, `url` otherwise); a PDF data URL in a `file` part is a `document` block.
//! - Thinking is preserved with its signature: a response's `thinking` /
//!   `redacted_thinking` blocks land verbatim in `Message::extra["thinking_blocks"]` (and
//!   their text in `extra["reasoning_content"]`); an assistant message sent back with
//!   `thinking_blocks` replays them first, as extended thinking with tools requires. Streams
//!   emit the same `thinking_blocks` in [`Delta::extra`], so a collected stream equals the
//!   complete answer.
//! - `cache_control` in a message's `extra` is put on its last block (prompt caching).
//! - `stop_reason`: `end_turn`/`stop_sequence` → `stop`, `max_tokens` → `length`,
//!   `tool_use` → `tool_calls`, `refusal` → `content_filter`; others pass through.
//! - [`Usage`]: Anthropic's `input_tokens` excludes cached tokens, so the normalized input is
//!   `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`, with the two
//!   cache counts reported separately.
//!
//! ```
//! use aegis_contracts::Secret;
//! use aegis_providers::Anthropic;
//! let claude = Anthropic::builder("claude")
//!     .api_key(Secret::new("sk-ant-..."))
//!     .max_tokens(2048)
//!     .build()?;
//! assert!(!format!("{claude:?}").contains("sk-ant"));
//! # Ok::<(), aegis_contracts::Error>(())
//! ```

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    sync::Arc,
    time::Instant,
};

use aegis_contracts::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Completion, Content, ContentPart,
    Delta, Error, Extra, FunctionCallDelta, Message, Provider, ProviderCapabilities, ResponseMeta,
    Role, Secret, ToolCall, ToolCallDelta, Usage, async_trait,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    http::{self as h, Common, HttpCore, common_builder_methods},
    sse::{SseEvent, SseParser},
    stream::{Decoder, Flow, FrameStream},
    translate as t,
};

/// The default API base.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";
/// The `anthropic-version` sent unless configured.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` when the request sets none (the API requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Request fields forwarded from [`ChatRequest::extra`] because the Messages API knows them.
const PASSTHROUGH: &[&str] = &[
    "thinking",
    "top_k",
    "metadata",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
];

/// Configuration of an [`Anthropic`] provider, as it appears in the plugin registry.
///
/// ```
/// use aegis_providers::AnthropicConfig;
/// let cfg: AnthropicConfig = serde_json::from_value(serde_json::json!({
///     "api_key": "secret://env/ANTHROPIC_API_KEY",
///     "beta": ["prompt-caching-2024-07-31"],
///     "max_tokens": 8192,
///     "region": "us"
/// })).unwrap();
/// assert_eq!(cfg.max_tokens, Some(8192));
/// ```
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AnthropicConfig {
    /// API base up to the version segment; default `https://api.anthropic.com/v1`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// API key, sent as `x-api-key`. Usually a `secret://` reference.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// `anthropic-version`; default `2023-06-01`.
    #[serde(default)]
    pub version: Option<String>,
    /// `anthropic-beta` flags.
    #[serde(default)]
    pub beta: Vec<String>,
    /// `max_tokens` for requests that set none; default 4096.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Region the backend processes data in, for residency policy.
    #[serde(default)]
    pub region: Option<String>,
    /// Models this backend serves; empty means whatever is asked.
    #[serde(default)]
    pub models: Vec<String>,
    /// Deadline in milliseconds (complete answer; stream headers and silences).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Extra headers sent with every request; values are sensitive.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The Anthropic Messages API. Cheap to clone; `Debug` never shows the key.
#[derive(Clone)]
pub struct Anthropic {
    shared: Arc<Shared>,
}

struct Shared {
    core: Arc<HttpCore>,
    url: Url,
    headers: HeaderMap,
    max_tokens: u32,
    region: Option<String>,
    models: Vec<String>,
}

/// Builds an [`Anthropic`]; see [`Anthropic::builder`].
#[must_use]
pub struct AnthropicBuilder {
    name: String,
    base_url: String,
    api_key: Option<Secret>,
    version: String,
    beta: Vec<String>,
    max_tokens: u32,
    common: Common,
}

impl AnthropicBuilder {
    /// The API key, sent as `x-api-key`.
    pub fn api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The API base up to the version segment.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The `anthropic-version` header.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Adds an `anthropic-beta` flag.
    pub fn beta(mut self, flag: impl Into<String>) -> Self {
        self.beta.push(flag.into());
        self
    }

    /// `max_tokens` for requests that set none.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = n;
        self
    }

    common_builder_methods!();

    /// Builds the provider; bad URLs, headers or unresolved secrets are config errors.
    pub fn build(mut self) -> Result<Anthropic, Error> {
        let name = self.name.clone();
        let base = h::parse_base_url(&name, &self.base_url)?;
        let mut headers = self.common.header_map(&name)?;
        let api_key = self.api_key.filter(|k| !k.expose().is_empty());
        if let Some(key) = &api_key {
            h::check_resolved(&name, "api_key", key)?;
            headers.insert(
                HeaderName::from_static("x-api-key"),
                h::sensitive_header(&name, "api_key", key.expose())?,
            );
        }
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_str(&self.version).map_err(|_| {
                Error::config(format!("provider `{name}`: invalid anthropic-version"))
            })?,
        );
        if !self.beta.is_empty() {
            headers.insert(
                HeaderName::from_static("anthropic-beta"),
                HeaderValue::from_str(&self.beta.join(",")).map_err(|_| {
                    Error::config(format!("provider `{name}`: invalid anthropic-beta flags"))
                })?,
            );
        }
        let transport = self.common.take_transport(&name)?;
        let has_key = api_key.is_some() || headers.contains_key("authorization");
        Ok(Anthropic {
            shared: Arc::new(Shared {
                core: Arc::new(HttpCore::new(
                    name,
                    transport,
                    self.common.timeout,
                    api_key.into_iter().collect(),
                    has_key,
                )),
                url: h::join_path(&base, &["messages"]),
                headers,
                max_tokens: self.max_tokens,
                region: self.common.region,
                models: self.common.models,
            }),
        })
    }
}

impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("Anthropic")
            .field("name", &s.core.name)
            .field("url", &s.url.as_str())
            .field(
                "headers",
                &s.headers.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            )
            .field("region", &s.region)
            .field("models", &s.models)
            .finish()
    }
}

impl Anthropic {
    /// Starts a builder for the provider instance `name`.
    pub fn builder(name: impl Into<String>) -> AnthropicBuilder {
        AnthropicBuilder {
            name: name.into(),
            base_url: ANTHROPIC_BASE_URL.to_owned(),
            api_key: None,
            version: ANTHROPIC_VERSION.to_owned(),
            beta: Vec::new(),
            max_tokens: DEFAULT_MAX_TOKENS,
            common: Common::default(),
        }
    }

    /// Builds the provider instance `name` from its registry configuration, sending through
    /// `client` (the host's) or a fresh client.
    pub fn from_config(
        name: impl Into<String>,
        cfg: AnthropicConfig,
        client: Option<reqwest::Client>,
    ) -> Result<Self, Error> {
        let mut b = Self::builder(name);
        b.common = Common::from_config(cfg.region, cfg.models, cfg.timeout_ms, cfg.headers, client);
        if let Some(url) = cfg.base_url {
            b = b.base_url(url);
        }
        if let Some(key) = cfg.api_key {
            b = b.api_key(key);
        }
        if let Some(v) = cfg.version {
            b = b.version(v);
        }
        if let Some(n) = cfg.max_tokens {
            b = b.max_tokens(n);
        }
        b.beta = cfg.beta;
        b.build()
    }

    /// The Messages API body for `req` (what is sent, byte for byte).
    pub fn request_body(&self, req: &ChatRequest) -> Result<Value, Error> {
        to_wire(&self.shared.core.name, req, self.shared.max_tokens)
    }

    /// Parses a Messages API response body into a [`Completion`].
    pub fn parse_response(&self, body: &[u8]) -> Result<Completion, Error> {
        let core = &self.shared.core;
        let wire: WireMessage = serde_json::from_slice(body)
            .map_err(|e| core.malformed("an Anthropic message", body, &e))?;
        Ok(from_wire(wire))
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.shared.core.name
    }

    fn capabilities(&self) -> ProviderCapabilities {
        let mut c = ProviderCapabilities::all();
        c.embeddings = false;
        c.json_mode = false;
        c
    }

    fn region(&self) -> Option<&str> {
        self.shared.region.as_deref()
    }

    fn models(&self) -> Vec<String> {
        self.shared.models.clone()
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        let s = &self.shared;
        let core = &s.core;
        let body = serde_json::to_vec(&self.request_body(&req)?)
            .map_err(|e| Error::internal(format!("cannot serialize the request: {e}")))?;
        let http_req = h::post_json(s.url.clone(), &s.headers, body, req.stream);
        let started = Instant::now();
        if !req.stream {
            let bytes = core.send_for_body(http_req).await?;
            let completion = self.parse_response(&bytes)?;
            let mut meta = ResponseMeta::new(core.name.clone(), completion.model.clone());
            meta.provider_latency = Some(started.elapsed());
            return Ok(ChatResponse::complete(meta, completion));
        }
        let resp = core.with_deadline(core.send_checked(http_req)).await?;
        let mut meta = ResponseMeta::new(core.name.clone(), req.model);
        meta.provider_latency = Some(started.elapsed());
        let stream = FrameStream::new(
            Arc::clone(core),
            resp,
            SseParser::new(),
            AnthropicDecoder::default(),
        );
        Ok(ChatResponse::stream(meta, stream.into_stream()))
    }
}

// ---- request ----

fn text_block(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

fn content_blocks(provider: &str, content: Option<&Content>) -> Result<Vec<Value>, Error> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Content::Text(s)) => Ok(vec![text_block(s)]),
        Some(Content::Parts(parts)) => parts.iter().map(|p| part_block(provider, p)).collect(),
    }
}

fn part_block(provider: &str, part: &ContentPart) -> Result<Value, Error> {
    Ok(match part {
        ContentPart::Text { text } => text_block(text),
        ContentPart::ImageUrl { image_url } => {
            let url = t::image_url(image_url)
                .ok_or_else(|| t::unsupported(provider, "an image part without a url"))?;
            match t::data_url(url) {
                Some((mime, data)) => json!({ "type": "image",
                    "source": { "type": "base64", "media_type": mime, "data": data } }),
                None => json!({ "type": "image", "source": { "type": "url", "url": url } }),
            }
        }
        ContentPart::File { file } => {
            let data = file
                .get("file_data")
                .and_then(Value::as_str)
                .and_then(t::data_url);
            match data {
                Some((mime, data)) => json!({ "type": "document",
                    "source": { "type": "base64", "media_type": mime, "data": data } }),
                None => {
                    return Err(t::unsupported(
                        provider,
                        "a file part without inline file_data",
                    ));
                }
            }
        }
        ContentPart::InputAudio { .. } => return Err(t::unsupported(provider, "audio input")),
    })
}

fn push_turn(messages: &mut Vec<Value>, role: &str, mut blocks: Vec<Value>, extra: &Extra) {
    if blocks.is_empty() {
        return;
    }
    if let (Some(cc), Some(Value::Object(last))) = (extra.get("cache_control"), blocks.last_mut()) {
        last.insert("cache_control".into(), cc.clone());
    }
    if let Some(Value::Object(prev)) = messages.last_mut()
        && prev.get("role").and_then(Value::as_str) == Some(role)
        && let Some(Value::Array(content)) = prev.get_mut("content")
    {
        content.append(&mut blocks);
        return;
    }
    messages.push(json!({ "role": role, "content": blocks }));
}

fn to_wire(provider: &str, req: &ChatRequest, default_max_tokens: u32) -> Result<Value, Error> {
    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        match m.role {
            Role::System | Role::Developer => {
                let mut blocks = content_blocks(provider, m.content.as_ref())?;
                if let (Some(cc), Some(Value::Object(last))) =
                    (m.extra.get("cache_control"), blocks.last_mut())
                {
                    last.insert("cache_control".into(), cc.clone());
                }
                system.append(&mut blocks);
            }
            Role::User => {
                let blocks = content_blocks(provider, m.content.as_ref())?;
                push_turn(&mut messages, "user", blocks, &m.extra);
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                if let Some(Value::Array(thinking)) = m.extra.get("thinking_blocks") {
                    blocks.extend(thinking.iter().cloned());
                }
                blocks.extend(content_blocks(provider, m.content.as_ref())?);
                for call in &m.tool_calls {
                    blocks.push(json!({ "type": "tool_use", "id": call.id,
                        "name": call.function.name, "input": t::tool_args(provider, call)? }));
                }
                push_turn(&mut messages, "assistant", blocks, &m.extra);
            }
            Role::Tool => {
                let content = match &m.content {
                    Some(Content::Parts(_)) => {
                        Value::Array(content_blocks(provider, m.content.as_ref())?)
                    }
                    _ => Value::String(m.text().into_owned()),
                };
                let mut block = json!({ "type": "tool_result",
                    "tool_use_id": m.tool_call_id.as_deref().unwrap_or_default(), "content": content });
                if m.extra.get("is_error") == Some(&Value::Bool(true)) {
                    block["is_error"] = Value::Bool(true);
                }
                push_turn(&mut messages, "user", vec![block], &m.extra);
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), req.model.clone().into());
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert(
        "max_tokens".into(),
        req.max_tokens.unwrap_or(default_max_tokens).into(),
    );
    if let Some(x) = req.temperature {
        body.insert("temperature".into(), json!(x));
    }
    if let Some(x) = req.top_p {
        body.insert("top_p".into(), json!(x));
    }
    let stops = t::stop_sequences(req.stop.as_ref());
    if !stops.is_empty() {
        body.insert("stop_sequences".into(), json!(stops));
    }
    if req.stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|tool| {
                let f = &tool.function;
                let mut v = json!({ "name": f.name,
                    "input_schema": f.parameters.clone().unwrap_or_else(|| json!({"type": "object"})) });
                if let Some(d) = &f.description {
                    v["description"] = d.clone().into();
                }
                v
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let parallel_off = req.extra.get("parallel_tool_calls") == Some(&Value::Bool(false));
    let choice = match &req.tool_choice {
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            _ => None,
        },
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|n| json!({"type": "tool", "name": n})),
        _ => None,
    };
    let choice = match (choice, parallel_off && !req.tools.is_empty()) {
        (Some(mut c), true) => {
            c["disable_parallel_tool_use"] = Value::Bool(true);
            Some(c)
        }
        (None, true) => Some(json!({"type": "auto", "disable_parallel_tool_use": true})),
        (c, false) => c,
    };
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
    for key in PASSTHROUGH {
        if let Some(v) = req.extra.get(*key) {
            body.insert((*key).to_owned(), v.clone());
        }
    }
    if !body.contains_key("metadata")
        && let Some(user) = req.extra.get("user").and_then(Value::as_str)
    {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    Ok(Value::Object(body))
}

// ---- response ----

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(rename = "type")]
    kind: MessageType,
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: Option<Value>,
}

/// Only `"message"` is a message; an `"error"` body with a `200` is refused.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum MessageType {
    Message,
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub(crate) fn finish_reason(stop: &str) -> String {
    match stop {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_owned()
}

/// Anthropic usage → normalized [`Usage`] (cached tokens added into the input count).
pub(crate) fn usage(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let read = n("cache_read_input_tokens");
    let write = n("cache_creation_input_tokens");
    Usage {
        input_tokens: n("input_tokens").saturating_add(read).saturating_add(write),
        output_tokens: n("output_tokens"),
        cache_read_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: 0,
    }
}

fn from_wire(w: WireMessage) -> Completion {
    let _ = w.kind;
    let mut message = Message::default();
    message.role = Role::Assistant;
    let mut text = String::new();
    let mut has_text = false;
    let mut thinking_text = String::new();
    let mut thinking: Vec<Value> = Vec::new();
    let mut other: Vec<Value> = Vec::new();
    for block in w.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                has_text = true;
                text.push_str(
                    block
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
            }
            Some("tool_use") => {
                let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                message
                    .tool_calls
                    .push(ToolCall::new(id, name, input.to_string()));
            }
            Some("thinking") => {
                thinking_text.push_str(
                    block
                        .get("thinking")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
                thinking.push(block);
            }
            Some("redacted_thinking") => thinking.push(block),
            _ => other.push(block),
        }
    }
    if has_text {
        message.content = Some(Content::Text(text));
    }
    if !thinking.is_empty() {
        message
            .extra
            .insert("thinking_blocks".into(), Value::Array(thinking));
    }
    if !thinking_text.is_empty() {
        message
            .extra
            .insert("reasoning_content".into(), thinking_text.into());
    }
    if !other.is_empty() {
        // Server tool blocks (web search results, ...) are kept, not dropped.
        message
            .extra
            .insert("provider_blocks".into(), Value::Array(other));
    }
    let mut c = Completion::default();
    c.id = w.id;
    c.model = w.model;
    c.created = t::now_unix();
    c.usage = w.usage.as_ref().map(usage);
    if let Some(s) = w.stop_sequence {
        c.extra.insert("stop_sequence".into(), s.into());
    }
    c.choices = vec![Choice {
        index: 0,
        message,
        finish_reason: w.stop_reason.as_deref().map(finish_reason),
    }];
    c
}

// ---- stream ----

enum Block {
    Text,
    Tool,
    Thinking { text: String, signature: String },
    Redacted(Value),
    Other,
}

/// Anthropic's SSE events → chunks. Ends at `message_stop`.
#[derive(Default)]
pub(crate) struct AnthropicDecoder {
    id: String,
    model: String,
    created: u64,
    blocks: BTreeMap<u64, (Block, u32)>,
    tools: u32,
    thinking: Vec<Value>,
    usage: Usage,
}

impl AnthropicDecoder {
    fn chunk(&self, delta: Delta, finish: Option<String>) -> ChatChunk {
        let mut c = ChatChunk::default();
        c.id.clone_from(&self.id);
        c.model.clone_from(&self.model);
        c.created = self.created;
        c.choices = vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
        }];
        c
    }

    fn tool_delta(
        &self,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        args: String,
    ) -> Delta {
        Delta {
            tool_calls: vec![ToolCallDelta {
                index,
                kind: id.as_ref().map(|_| "function".to_owned()),
                id,
                function: Some(FunctionCallDelta {
                    name,
                    arguments: Some(args),
                }),
            }],
            ..Delta::default()
        }
    }
}

fn extra_delta(key: &str, value: Value) -> Delta {
    let mut d = Delta::default();
    d.extra.insert(key.to_owned(), value);
    d
}

impl Decoder<SseEvent> for AnthropicDecoder {
    fn decode(
        &mut self,
        core: &HttpCore,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<Flow, Error> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            Error::provider(format!(
                "provider `{}` sent a stream event that is not JSON: {e}",
                core.name
            ))
        })?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or_default();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let str_at = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        match kind {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                self.id = str_at(m, "id").unwrap_or_default();
                self.model = str_at(m, "model").unwrap_or_default();
                self.created = t::now_unix();
                if let Some(u) = m.get("usage") {
                    self.usage = usage(u);
                }
                out.push_back(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            "content_block_start" => {
                let b = v.get("content_block").unwrap_or(&Value::Null);
                let block = match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = str_at(b, "text").filter(|s| !s.is_empty()) {
                            out.push_back(self.chunk(
                                Delta {
                                    content: Some(text),
                                    ..Delta::default()
                                },
                                None,
                            ));
                        }
                        (Block::Text, 0)
                    }
                    Some("tool_use") => {
                        let i = self.tools;
                        self.tools += 1;
                        out.push_back(self.chunk(
                            self.tool_delta(i, str_at(b, "id"), str_at(b, "name"), String::new()),
                            None,
                        ));
                        (Block::Tool, i)
                    }
                    Some("thinking") => (
                        Block::Thinking {
                            text: str_at(b, "thinking").unwrap_or_default(),
                            signature: str_at(b, "signature").unwrap_or_default(),
                        },
                        0,
                    ),
                    Some("redacted_thinking") => (Block::Redacted(b.clone()), 0),
                    _ => (Block::Other, 0),
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let d = v.get("delta").unwrap_or(&Value::Null);
                let Some((block, tool_index)) = self.blocks.get_mut(&index) else {
                    return Err(Error::provider(format!(
                        "provider `{}` sent a delta for content block {index} that never started",
                        core.name
                    )));
                };
                match (d.get("type").and_then(Value::as_str), block) {
                    (Some("text_delta"), _) => {
                        let text = str_at(d, "text").unwrap_or_default();
                        out.push_back(self.chunk(
                            Delta {
                                content: Some(text),
                                ..Delta::default()
                            },
                            None,
                        ));
                    }
                    (Some("input_json_delta"), Block::Tool) => {
                        let i = *tool_index;
                        let args = str_at(d, "partial_json").unwrap_or_default();
                        out.push_back(self.chunk(self.tool_delta(i, None, None, args), None));
                    }
                    (Some("thinking_delta"), Block::Thinking { text, .. }) => {
                        let piece = str_at(d, "thinking").unwrap_or_default();
                        text.push_str(&piece);
                        out.push_back(
                            self.chunk(extra_delta("reasoning_content", piece.into()), None),
                        );
                    }
                    (Some("signature_delta"), Block::Thinking { signature, .. }) => {
                        signature.push_str(&str_at(d, "signature").unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let block = match self.blocks.remove(&index) {
                    Some((Block::Thinking { text, signature }, _)) => Some(
                        json!({ "type": "thinking", "thinking": text, "signature": signature }),
                    ),
                    Some((Block::Redacted(b), _)) => Some(b),
                    _ => None,
                };
                if let Some(b) = block {
                    // The whole list so far: the completion builder keeps the last value.
                    self.thinking.push(b);
                    out.push_back(self.chunk(
                        extra_delta("thinking_blocks", Value::Array(self.thinking.clone())),
                        None,
                    ));
                }
            }
            "message_delta" => {
                let stop = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                    .map(finish_reason);
                if let Some(u) = v.get("usage") {
                    let later = usage(u);
                    self.usage.output_tokens = later.output_tokens;
                    // Newer API versions repeat (cumulative) input counts here.
                    if u.get("input_tokens").is_some() {
                        self.usage.input_tokens = later.input_tokens;
                        self.usage.cache_read_tokens = later.cache_read_tokens;
                        self.usage.cache_write_tokens = later.cache_write_tokens;
                    }
                }
                let mut c = self.chunk(Delta::default(), stop);
                c.usage = Some(self.usage);
                out.push_back(c);
            }
            "message_stop" => return Ok(Flow::Done),
            "error" => {
                let e = v.get("error").unwrap_or(&v);
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| data.to_owned());
                return Err(core.stream_error(e.get("type").and_then(Value::as_str), &message));
            }
            // `ping` and event types newer than this code.
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, core: &HttpCore, _out: &mut VecDeque<ChatChunk>) -> Result<(), Error> {
        Err(Error::provider(format!(
            "provider `{}`: stream ended before message_stop",
            core.name
        ))
        .with_retryable(true))
    }
}
