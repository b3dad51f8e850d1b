//! [`Gemini`]: the Google Gemini API — `models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse`, `:embedContent` and `:batchEmbedContents`.
//!
//! Translation, both ways:
//!
//! - `system` / `developer` messages become `systemInstruction`; assistant turns are role
//!   `model`; consecutive turns of one role are merged (parallel function responses must
//!   share one turn).
//! - Tools are `functionDeclarations` with the JSON Schema in `parametersJsonSchema`;
//!   `tool_choice` maps to `toolConfig.functionCallingConfig` (`AUTO`, `ANY`, `NONE`,
//!   `allowedFunctionNames`). Tool results become `functionResponse` parts, named after the
//!   call they answer; a result that is a JSON object is sent as is, anything else as
//!   `{"result": text}`.
//! - Images and audio are `inlineData` (data URLs) or `fileData` (URLs).
//! - Thinking: parts marked `thought` are `reasoning_content`; when any part carries a
//!   `thoughtSignature`, the answer's parts are kept verbatim in
//!   `Message::extra["gemini_parts"]` and replayed as is when the message is sent back, so
//!   signatures survive multi-turn function calling.
//! - `finishReason`: `STOP` → `stop` (`tool_calls` when the answer calls functions),
//!   `MAX_TOKENS` → `length`, safety reasons → `content_filter`.
//! - [`Usage`]: `promptTokenCount` (it includes `cachedContentTokenCount`, reported as cache
//!   reads), output = `candidatesTokenCount + thoughtsTokenCount`, reasoning =
//!   `thoughtsTokenCount`.
//!
//! Gemini streams have no terminator: a stream is complete when a finish reason arrived;
//! one that ends before is an `Err` item.
//!
//! ```
//! use aegis_contracts::Secret;
//! use aegis_providers::Gemini;
//! let gemini = Gemini::builder("gemini").api_key(Secret::new("AIza...")).build()?;
//! assert!(!format!("{gemini:?}").contains("AIza"));
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
    Delta, EmbeddingRequest, EmbeddingResponse, Error, FunctionCallDelta, Message, Provider,
    ProviderCapabilities, ResponseMeta, Role, Secret, ToolCall, ToolCallDelta, Usage, async_trait,
};
use http::{HeaderMap, HeaderName};
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
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// Configuration of a [`Gemini`] provider, as it appears in the plugin registry.
///
/// ```
/// use aegis_providers::GeminiConfig;
/// let cfg: GeminiConfig = serde_json::from_value(serde_json::json!({
///     "api_key": "secret://env/GEMINI_API_KEY", "region": "eu"
/// })).unwrap();
/// assert!(cfg.base_url.is_none());
/// ```
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GeminiConfig {
    /// API base up to the version segment; default
    /// `https://generativelanguage.googleapis.com/v1beta`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// API key, sent as `x-goog-api-key`.
    #[serde(default)]
    pub api_key: Option<Secret>,
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

/// The Gemini API. Cheap to clone; `Debug` never shows the key.
#[derive(Clone)]
pub struct Gemini {
    shared: Arc<Shared>,
}

struct Shared {
    core: Arc<HttpCore>,
    base: Url,
    headers: HeaderMap,
    region: Option<String>,
    models: Vec<String>,
}

impl fmt::Debug for Gemini {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("Gemini")
            .field("name", &s.core.name)
            .field("base_url", &s.base.as_str())
            .field(
                "headers",
                &s.headers.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            )
            .field("region", &s.region)
            .finish()
    }
}

/// Builds a [`Gemini`]; see [`Gemini::builder`].
#[must_use]
pub struct GeminiBuilder {
    name: String,
    base_url: String,
    api_key: Option<Secret>,
    common: Common,
}

impl GeminiBuilder {
    /// The API key, sent as `x-goog-api-key`.
    pub fn api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The API base up to the version segment.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    common_builder_methods!();

    /// Builds the provider; bad URLs, headers or unresolved secrets are config errors.
    pub fn build(mut self) -> Result<Gemini, Error> {
        let name = self.name.clone();
        let base = h::parse_base_url(&name, &self.base_url)?;
        let mut headers = self.common.header_map(&name)?;
        let api_key = self.api_key.filter(|k| !k.expose().is_empty());
        if let Some(key) = &api_key {
            h::check_resolved(&name, "api_key", key)?;
            headers.insert(
                HeaderName::from_static("x-goog-api-key"),
                h::sensitive_header(&name, "api_key", key.expose())?,
            );
        }
        let has_key = api_key.is_some() || headers.contains_key("authorization");
        let transport = self.common.take_transport(&name)?;
        Ok(Gemini {
            shared: Arc::new(Shared {
                core: Arc::new(HttpCore::new(
                    name,
                    transport,
                    self.common.timeout,
                    api_key.into_iter().collect(),
                    has_key,
                )),
                base,
                headers,
                region: self.common.region,
                models: self.common.models,
            }),
        })
    }
}

impl Gemini {
    /// Starts a builder for the provider instance `name`.
    pub fn builder(name: impl Into<String>) -> GeminiBuilder {
        GeminiBuilder {
            name: name.into(),
            base_url: GEMINI_BASE_URL.to_owned(),
            api_key: None,
            common: Common::default(),
        }
    }

    /// Builds the provider instance `name` from its registry configuration.
    pub fn from_config(
        name: impl Into<String>,
        cfg: GeminiConfig,
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
        b.build()
    }

    /// `{base}/models/{model}:{method}` (a `tunedModels/...` name is kept as its own path).
    fn url(&self, model: &str, method: &str) -> Url {
        let (collection, id) = match model.split_once('/') {
            Some((c @ ("models" | "tunedModels"), id)) => (c, id),
            _ => ("models", model),
        };
        h::join_path(&self.shared.base, &[collection, &format!("{id}:{method}")])
    }

    /// The `generateContent` body for `req` (what is sent, byte for byte).
    pub fn request_body(&self, req: &ChatRequest) -> Result<Value, Error> {
        to_wire(&self.shared.core.name, req)
    }

    /// Parses a `generateContent` response body into a [`Completion`].
    pub fn parse_response(&self, body: &[u8]) -> Result<Completion, Error> {
        let core = &self.shared.core;
        let wire: WireResponse = serde_json::from_slice(body)
            .map_err(|e| core.malformed("a Gemini response", body, &e))?;
        if wire.candidates.is_none() && wire.prompt_feedback.is_none() {
            return Err(core.malformed("a Gemini response", body, &"no `candidates`"));
        }
        Ok(from_wire(wire))
    }
}

#[async_trait]
impl Provider for Gemini {
    fn name(&self) -> &str {
        &self.shared.core.name
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::all()
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
        let started = Instant::now();
        if !req.stream {
            let http_req = h::post_json(
                self.url(&req.model, "generateContent"),
                &s.headers,
                body,
                false,
            );
            let bytes = core.send_for_body(http_req).await?;
            let mut completion = self.parse_response(&bytes)?;
            if completion.model.is_empty() {
                completion.model.clone_from(&req.model);
            }
            let mut meta = ResponseMeta::new(core.name.clone(), completion.model.clone());
            meta.provider_latency = Some(started.elapsed());
            return Ok(ChatResponse::complete(meta, completion));
        }
        let mut url = self.url(&req.model, "streamGenerateContent");
        url.query_pairs_mut().append_pair("alt", "sse");
        let http_req = h::post_json(url, &s.headers, body, true);
        let resp = core.with_deadline(core.send_checked(http_req)).await?;
        let mut meta = ResponseMeta::new(core.name.clone(), req.model.clone());
        meta.provider_latency = Some(started.elapsed());
        let decoder = GeminiDecoder {
            model: req.model,
            ..GeminiDecoder::default()
        };
        let stream = FrameStream::new(Arc::clone(core), resp, SseParser::new(), decoder);
        Ok(ChatResponse::stream(meta, stream.into_stream()))
    }

    async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        let s = &self.shared;
        let core = &s.core;
        let model_path = match req.model.split_once('/') {
            Some(("models", _)) => req.model.clone(),
            _ => format!("models/{}", req.model),
        };
        let one = |text: &str| {
            let mut v = json!({ "model": model_path, "content": { "parts": [{ "text": text }] } });
            if let Some(d) = req.dimensions {
                v["outputDimensionality"] = d.into();
            }
            v
        };
        let (method, body) = if req.input.len() == 1 {
            ("embedContent", one(&req.input[0]))
        } else {
            (
                "batchEmbedContents",
                json!({ "requests": req.input.iter().map(|t| one(t)).collect::<Vec<_>>() }),
            )
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| Error::internal(format!("cannot serialize the request: {e}")))?;
        let http_req = h::post_json(self.url(&req.model, method), &s.headers, body, false);
        let bytes = core.send_for_body(http_req).await?;
        let wire: WireEmbeddings = serde_json::from_slice(&bytes)
            .map_err(|e| core.malformed("a Gemini embeddings response", &bytes, &e))?;
        let data: Vec<Vec<f32>> = match (wire.embedding, wire.embeddings) {
            (Some(e), _) => vec![e.values],
            (None, Some(list)) => list.into_iter().map(|e| e.values).collect(),
            (None, None) => Vec::new(),
        };
        if data.len() != req.input.len() {
            return Err(Error::provider(format!(
                "provider `{}` returned {} embeddings for {} inputs",
                core.name,
                data.len(),
                req.input.len()
            )));
        }
        Ok(EmbeddingResponse::new(req.model, data, Usage::default()))
    }
}

#[derive(Deserialize)]
struct WireEmbeddings {
    #[serde(default)]
    embedding: Option<WireVector>,
    #[serde(default)]
    embeddings: Option<Vec<WireVector>>,
}

#[derive(Deserialize)]
struct WireVector {
    values: Vec<f32>,
}

// ---- request ----

fn mime_from_url(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        Some("pdf") => "application/pdf",
        Some("mp3") => "audio/mp3",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

fn parts_of(provider: &str, content: Option<&Content>) -> Result<Vec<Value>, Error> {
    let Some(content) = content else {
        return Ok(Vec::new());
    };
    let parts = match content {
        Content::Text(s) if s.is_empty() => return Ok(Vec::new()),
        Content::Text(s) => return Ok(vec![json!({ "text": s })]),
        Content::Parts(parts) => parts,
    };
    parts
        .iter()
        .map(|p| {
            Ok(match p {
                ContentPart::Text { text } => json!({ "text": text }),
                ContentPart::ImageUrl { image_url } => {
                    let url = t::image_url(image_url)
                        .ok_or_else(|| t::unsupported(provider, "an image part without a url"))?;
                    match t::data_url(url) {
                        Some((mime, data)) => {
                            json!({ "inlineData": { "mimeType": mime, "data": data } })
                        }
                        None => json!({ "fileData": { "mimeType": mime_from_url(url), "fileUri": url } }),
                    }
                }
                ContentPart::InputAudio { input_audio } => {
                    let data = input_audio.get("data").and_then(Value::as_str).unwrap_or_default();
                    let format = input_audio.get("format").and_then(Value::as_str).unwrap_or("wav");
                    json!({ "inlineData": { "mimeType": format!("audio/{format}"), "data": data } })
                }
                ContentPart::File { file } => {
                    match file.get("file_data").and_then(Value::as_str).and_then(t::data_url) {
                        Some((mime, data)) => {
                            json!({ "inlineData": { "mimeType": mime, "data": data } })
                        }
                        None => return Err(t::unsupported(provider, "a file part without inline file_data")),
                    }
                }
            })
        })
        .collect()
}

fn push_turn(contents: &mut Vec<Value>, role: &str, mut parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(Value::Object(prev)) = contents.last_mut()
        && prev.get("role").and_then(Value::as_str) == Some(role)
        && let Some(Value::Array(p)) = prev.get_mut("parts")
    {
        p.append(&mut parts);
        return;
    }
    contents.push(json!({ "role": role, "parts": parts }));
}

fn to_wire(provider: &str, req: &ChatRequest) -> Result<Value, Error> {
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::with_capacity(req.messages.len());
    for (pos, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                system.extend(parts_of(provider, m.content.as_ref())?)
            }
            Role::User => push_turn(
                &mut contents,
                "user",
                parts_of(provider, m.content.as_ref())?,
            ),
            Role::Assistant => {
                let parts = match m.extra.get("gemini_parts") {
                    // Replayed verbatim: thought signatures must come back unchanged.
                    Some(Value::Array(raw)) => raw.clone(),
                    _ => {
                        let mut parts = parts_of(provider, m.content.as_ref())?;
                        for call in &m.tool_calls {
                            parts.push(json!({ "functionCall": {
                                "name": call.function.name, "args": t::tool_args(provider, call)? } }));
                        }
                        parts
                    }
                };
                push_turn(&mut contents, "model", parts);
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let name = req.messages[..pos]
                    .iter()
                    .rev()
                    .flat_map(|m| m.tool_calls.iter())
                    .find(|c| c.id == id)
                    .map(|c| c.function.name.clone())
                    .ok_or_else(|| {
                        Error::invalid_request(format!(
                            "provider `{provider}`: the tool result `{id}` answers no earlier tool call (Gemini needs the function name)"
                        ))
                    })?;
                let text = m.text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({ "result": text }),
                };
                push_turn(
                    &mut contents,
                    "user",
                    vec![json!({ "functionResponse": { "name": name, "response": response } })],
                );
            }
        }
    }
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|tool| {
                let f = &tool.function;
                let mut d = json!({ "name": f.name });
                if let Some(desc) = &f.description {
                    d["description"] = desc.clone().into();
                }
                if let Some(p) = &f.parameters {
                    d["parametersJsonSchema"] = p.clone();
                }
                d
            })
            .collect();
        body.insert("tools".into(), json!([{ "functionDeclarations": decls }]));
    }
    let mode = match &req.tool_choice {
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({ "mode": "AUTO" })),
            "required" => Some(json!({ "mode": "ANY" })),
            "none" => Some(json!({ "mode": "NONE" })),
            _ => None,
        },
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|n| json!({ "mode": "ANY", "allowedFunctionNames": [n] })),
        _ => None,
    };
    if let Some(m) = mode {
        body.insert("toolConfig".into(), json!({ "functionCallingConfig": m }));
    }
    let mut config = Map::new();
    if let Some(x) = req.temperature {
        config.insert("temperature".into(), json!(x));
    }
    if let Some(x) = req.top_p {
        config.insert("topP".into(), json!(x));
    }
    if let Some(x) = req.max_tokens {
        config.insert("maxOutputTokens".into(), x.into());
    }
    let stops = t::stop_sequences(req.stop.as_ref());
    if !stops.is_empty() {
        config.insert("stopSequences".into(), json!(stops));
    }
    if let Some(x) = req.seed {
        config.insert("seed".into(), x.into());
    }
    if let Some(n) = req.extra.get("n") {
        config.insert("candidateCount".into(), n.clone());
    }
    if let Some(tc) = req
        .extra
        .get("thinking_config")
        .or_else(|| req.extra.get("thinkingConfig"))
    {
        config.insert("thinkingConfig".into(), tc.clone());
    }
    match req
        .response_format
        .as_ref()
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), "application/json".into());
            if let Some(schema) = req
                .response_format
                .as_ref()
                .and_then(|f| f.get("json_schema"))
                .and_then(|s| s.get("schema"))
            {
                config.insert("responseJsonSchema".into(), schema.clone());
            }
        }
        _ => {}
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    for (from, to) in [
        ("safety_settings", "safetySettings"),
        ("safetySettings", "safetySettings"),
        ("cached_content", "cachedContent"),
        ("cachedContent", "cachedContent"),
    ] {
        if let Some(v) = req.extra.get(from) {
            body.insert(to.into(), v.clone());
        }
    }
    Ok(Value::Object(body))
}

// ---- response ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Option<Vec<WireCandidate>>,
    #[serde(default)]
    usage_metadata: Option<Value>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    prompt_feedback: Option<Value>,
    /// An error inside a stream.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<Value>,
}

/// Gemini usage metadata → normalized [`Usage`].
pub(crate) fn usage(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    Usage {
        input_tokens: n("promptTokenCount") + n("toolUsePromptTokenCount"),
        output_tokens: n("candidatesTokenCount") + thoughts,
        cache_read_tokens: n("cachedContentTokenCount"),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

fn finish_reason(reason: &str, called_tools: bool) -> String {
    match reason {
        "STOP" if called_tools => "tool_calls",
        "STOP" => "stop",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        other => return other.to_ascii_lowercase(),
    }
    .to_owned()
}

/// What one candidate's parts say.
#[derive(Default)]
struct Parts {
    text: Option<String>,
    thought: Option<String>,
    calls: Vec<ToolCall>,
    signed: bool,
}

fn read_parts(parts: &[Value], call_id: &mut dyn FnMut(&Value) -> String) -> Parts {
    let mut out = Parts::default();
    for p in parts {
        out.signed |= p.get("thoughtSignature").is_some();
        if let Some(fc) = p.get("functionCall") {
            let name = fc.get("name").and_then(Value::as_str).unwrap_or_default();
            let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
            out.calls
                .push(ToolCall::new(call_id(fc), name, args.to_string()));
        } else if let Some(text) = p.get("text").and_then(Value::as_str) {
            let slot = if p.get("thought") == Some(&Value::Bool(true)) {
                &mut out.thought
            } else {
                &mut out.text
            };
            slot.get_or_insert_with(String::new).push_str(text);
        }
    }
    out
}

/// A tool call id: Gemini's own when it sends one, else derived from the response id.
fn id_maker(response_id: Option<&str>, start: u32) -> impl FnMut(&Value) -> String {
    let prefix = match response_id {
        Some(r) if !r.is_empty() => format!("call_{r}_"),
        _ => format!("call_{:08x}_", fastrand::u32(..)),
    };
    let mut n = start;
    move |fc: &Value| match fc.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let id = format!("{prefix}{n}");
            n += 1;
            id
        }
    }
}

fn from_wire(w: WireResponse) -> Completion {
    let mut c = Completion::default();
    c.id = w.response_id.clone().unwrap_or_default();
    c.model = w.model_version.clone().unwrap_or_default();
    c.created = t::now_unix();
    c.usage = w.usage_metadata.as_ref().map(usage);
    let mut make_id = id_maker(w.response_id.as_deref(), 0);
    for (pos, cand) in w.candidates.unwrap_or_default().into_iter().enumerate() {
        let raw = cand.content.map(|c| c.parts).unwrap_or_default();
        let parts = read_parts(&raw, &mut make_id);
        let mut message = Message::default();
        message.role = Role::Assistant;
        message.content = parts.text.map(Content::Text);
        if let Some(th) = parts.thought {
            message.extra.insert("reasoning_content".into(), th.into());
        }
        if parts.signed {
            message
                .extra
                .insert("gemini_parts".into(), Value::Array(raw));
        }
        let called = !parts.calls.is_empty();
        message.tool_calls = parts.calls;
        c.choices.push(Choice {
            index: cand.index.unwrap_or(pos as u32),
            message,
            finish_reason: cand
                .finish_reason
                .as_deref()
                .map(|r| finish_reason(r, called)),
        });
    }
    if let Some(fb) = w.prompt_feedback {
        if c.choices.is_empty() && fb.get("blockReason").is_some() {
            // The prompt itself was blocked: an empty, filtered answer, not a success.
            let mut message = Message::default();
            message.role = Role::Assistant;
            c.choices.push(Choice {
                index: 0,
                message,
                finish_reason: Some("content_filter".into()),
            });
        }
        c.extra.insert("prompt_feedback".into(), fb);
    }
    c
}

// ---- stream ----

/// Gemini SSE events (each a partial `GenerateContentResponse`) → chunks.
#[derive(Default)]
pub(crate) struct GeminiDecoder {
    model: String,
    started: bool,
    finished: bool,
    /// Per choice: tool calls so far, raw parts so far, whether a part was signed.
    choices: BTreeMap<u32, (u32, Vec<Value>, bool)>,
    ids: u32,
}

impl Decoder<SseEvent> for GeminiDecoder {
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
        let w: WireResponse = serde_json::from_str(data).map_err(|e| {
            Error::provider(format!(
                "provider `{}` sent a stream event that is not a Gemini response: {e}",
                core.name
            ))
        })?;
        if let Some(err) = &w.error {
            let status = err.get("status").and_then(Value::as_str);
            let msg = crate::wire::error_message(err).unwrap_or_else(|| data.to_owned());
            let hint = match status {
                Some("RESOURCE_EXHAUSTED") => Some("rate_limit"),
                Some("UNAVAILABLE" | "INTERNAL") => Some("unavailable"),
                Some("DEADLINE_EXCEEDED") => Some("timeout"),
                other => other,
            };
            return Err(core.stream_error(hint, &msg));
        }
        let mut chunk = ChatChunk::default();
        chunk.id = w.response_id.clone().unwrap_or_default();
        chunk.model = w
            .model_version
            .clone()
            .unwrap_or_else(|| self.model.clone());
        chunk.created = t::now_unix();
        chunk.usage = w.usage_metadata.as_ref().map(usage);
        let mut make_id = id_maker(w.response_id.as_deref(), self.ids);
        let mut issued = 0u32;
        for (pos, cand) in w.candidates.unwrap_or_default().into_iter().enumerate() {
            let index = cand.index.unwrap_or(pos as u32);
            let raw = cand.content.map(|c| c.parts).unwrap_or_default();
            let parts = read_parts(&raw, &mut |fc| {
                issued += 1;
                make_id(fc)
            });
            let (calls_so_far, all_parts, signed) = self.choices.entry(index).or_default();
            all_parts.extend(raw);
            *signed |= parts.signed;
            let mut delta = Delta::default();
            if !self.started {
                delta.role = Some(Role::Assistant);
            }
            delta.content = parts.text;
            if let Some(th) = parts.thought {
                delta.extra.insert("reasoning_content".into(), th.into());
            }
            let called = !parts.calls.is_empty() || *calls_so_far > 0;
            for call in parts.calls {
                delta.tool_calls.push(ToolCallDelta {
                    index: *calls_so_far,
                    id: Some(call.id),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta::from(call.function)),
                });
                *calls_so_far += 1;
            }
            let finish = cand
                .finish_reason
                .as_deref()
                .map(|r| finish_reason(r, called));
            if finish.is_some() {
                self.finished = true;
                if *signed {
                    delta
                        .extra
                        .insert("gemini_parts".into(), Value::Array(all_parts.clone()));
                }
            }
            chunk.choices.push(ChunkChoice {
                index,
                delta,
                finish_reason: finish,
            });
        }
        self.ids += issued;
        if chunk.choices.is_empty() && w.prompt_feedback.is_some() {
            self.finished = true;
            chunk.choices.push(ChunkChoice {
                index: 0,
                delta: Delta::default(),
                finish_reason: Some("content_filter".into()),
            });
        }
        self.started = true;
        out.push_back(chunk);
        Ok(Flow::Continue)
    }

    fn end(&mut self, core: &HttpCore, _out: &mut VecDeque<ChatChunk>) -> Result<(), Error> {
        if self.finished {
            Ok(())
        } else {
            Err(Error::provider(format!(
                "provider `{}`: stream ended before a finish reason",
                core.name
            ))
            .with_retryable(true))
        }
    }
}
