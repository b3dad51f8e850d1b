//! [`Bedrock`]: AWS Bedrock's Converse and ConverseStream APIs
//! (`POST /model/{modelId}/converse`, `/converse-stream`), signed with SigV4 (implemented
//! here, checked against AWS's test vectors) with static credentials or an
//! [`AwsCredentialsSource`] for rotating ones, or authenticated with a Bedrock API key, and
//! the binary event-stream framing of ConverseStream decoded with CRC32 checks.
//!
//! Translation, both ways:
//!
//! - `system` / `developer` messages become `system` blocks; consecutive turns of one role
//!   are merged; tool results are `toolResult` blocks of a user turn (a JSON object result
//!   as a `json` block, anything else as `text`).
//! - Tool calls are `toolUse` blocks; tools are `toolSpec`s with `inputSchema.json`;
//!   `tool_choice` maps to `auto` / `any` / `tool`.
//! - Images are `image` blocks from data URLs (`bytes`) or `s3://` URLs (`s3Location`); a
//!   PDF data URL in a `file` part is a `document` block. HTTP image URLs are refused
//!   (Bedrock does not fetch them).
//! - Reasoning: `reasoningContent` blocks are exposed in the same neutral form as
//!   Anthropic's — `Message::extra["thinking_blocks"]` (`{"type":"thinking","thinking",
//!   "signature"}` / `{"type":"redacted_thinking","data"}`) and `reasoning_content` — and
//!   replayed as `reasoningContent` when sent back, so signatures survive (also across a
//!   fallback between Anthropic and Bedrock).
//! - `cache_control` in a message's `extra` appends a `cachePoint` block.
//! - `stopReason`: `end_turn`/`stop_sequence` → `stop`, `max_tokens` → `length`, `tool_use` →
//!   `tool_calls`, `guardrail_intervened`/`content_filtered` → `content_filter`.
//! - [`Usage`]: `inputTokens` excludes cache reads and writes, so the normalized input adds
//!   `cacheReadInputTokens` and `cacheWriteInputTokens`, reported separately too.
//!
//! Embeddings go through `InvokeModel` for the Titan (`amazon.titan-embed-*`) and Cohere
//! (`cohere.embed-*`) body formats.
//!
//! ```
//! use aegis_contracts::Secret;
//! use aegis_providers::{Bedrock, bedrock::AwsCredentials};
//! let bedrock = Bedrock::builder("bedrock", "eu-central-1")
//!     .credentials(AwsCredentials::new("AKIA...", Secret::new("secret")))
//!     .build()?;
//! assert_eq!(
//!     bedrock.converse_url("anthropic.claude-3-5-sonnet-20240620-v1:0", false).as_str(),
//!     "https://bedrock-runtime.eu-central-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
//! );
//! # Ok::<(), aegis_contracts::Error>(())
//! ```

pub mod eventstream;
mod sigv4;

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    sync::Arc,
    time::{Instant, SystemTime},
};

use aegis_contracts::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Completion, Content, ContentPart,
    Delta, EmbeddingRequest, EmbeddingResponse, Error, Extra, FunctionCallDelta, Message, Provider,
    ProviderCapabilities, ResponseMeta, Role, Secret, ToolCall, ToolCallDelta, Usage, async_trait,
};
use http::HeaderMap;
use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
pub use sigv4::AwsCredentials;

/// Supplies AWS credentials per request, for credentials that rotate (instance roles, IRSA,
/// ECS task roles, STS). Implementations cache and refresh; the provider calls it for every
/// request it signs.
#[async_trait]
pub trait AwsCredentialsSource: Send + Sync + 'static {
    /// Currently valid credentials.
    async fn credentials(&self) -> Result<AwsCredentials, Error>;
}

use crate::{
    http::{self as h, Common, HttpCore, common_builder_methods},
    stream::{Decoder, Flow, FrameStream},
    translate as t,
};
use eventstream::{EventMessage, EventStreamParser};

/// The SigV4 service name of the Bedrock runtime.
const SERVICE: &str = "bedrock";

/// Configuration of a [`Bedrock`] provider, as it appears in the plugin registry.
///
/// ```
/// use aegis_providers::BedrockConfig;
/// let cfg: BedrockConfig = serde_json::from_value(serde_json::json!({
///     "region": "eu-central-1",
///     "access_key_id": "secret://env/AWS_ACCESS_KEY_ID",
///     "secret_access_key": "secret://env/AWS_SECRET_ACCESS_KEY"
/// })).unwrap();
/// assert_eq!(cfg.region, "eu-central-1");
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BedrockConfig {
    /// AWS region (`eu-central-1`); also the region reported for residency policy.
    pub region: String,
    /// Access key id (SigV4 auth).
    #[serde(default)]
    pub access_key_id: Option<Secret>,
    /// Secret access key (SigV4 auth).
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// A Bedrock API key, sent as `Authorization: Bearer` instead of SigV4.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Endpoint override (VPC endpoints, FIPS, tests); default
    /// `https://bedrock-runtime.{region}.amazonaws.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
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

enum Auth {
    SigV4(AwsCredentials),
    /// Credentials fetched per request (instance roles, IRSA, STS), then SigV4.
    Source(Arc<dyn AwsCredentialsSource>),
    /// Headers already carry a bearer key, or nothing (a proxy signs for us).
    Header,
}

/// AWS Bedrock (Converse). Cheap to clone; `Debug` never shows credentials.
#[derive(Clone)]
pub struct Bedrock {
    shared: Arc<Shared>,
}

struct Shared {
    core: Arc<HttpCore>,
    endpoint: Url,
    aws_region: String,
    headers: HeaderMap,
    auth: Auth,
    models: Vec<String>,
}

impl fmt::Debug for Bedrock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("Bedrock")
            .field("name", &s.core.name)
            .field("endpoint", &s.endpoint.as_str())
            .field("region", &s.aws_region)
            .field(
                "auth",
                &match &s.auth {
                    Auth::SigV4(c) => format!("sigv4 ({})", c.access_key_id),
                    Auth::Source(_) => "sigv4 (credentials source)".to_owned(),
                    Auth::Header => "header".to_owned(),
                },
            )
            .finish()
    }
}

/// Builds a [`Bedrock`]; see [`Bedrock::builder`].
#[must_use]
pub struct BedrockBuilder {
    name: String,
    aws_region: String,
    endpoint: Option<String>,
    credentials: Option<AwsCredentials>,
    source: Option<Arc<dyn AwsCredentialsSource>>,
    api_key: Option<Secret>,
    common: Common,
}

impl BedrockBuilder {
    /// SigV4 credentials.
    pub fn credentials(mut self, creds: AwsCredentials) -> Self {
        self.credentials = Some(creds);
        self
    }

    /// Credentials fetched for every request (rotating: instance roles, IRSA, STS); the
    /// source caches and refreshes them. Replaces [`credentials`](Self::credentials).
    pub fn credentials_source(mut self, source: Arc<dyn AwsCredentialsSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// A Bedrock API key (`Authorization: Bearer`), instead of SigV4.
    pub fn api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Endpoint override (VPC endpoint, FIPS, a local mock).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    common_builder_methods!();

    /// Builds the provider. Both credentials and an API key, unresolved secrets, or a bad
    /// endpoint are config errors.
    pub fn build(mut self) -> Result<Bedrock, Error> {
        let name = self.name.clone();
        let endpoint = self.endpoint.clone().unwrap_or_else(|| {
            format!("https://bedrock-runtime.{}.amazonaws.com", self.aws_region)
        });
        let endpoint = h::parse_base_url(&name, &endpoint)?;
        let mut headers = self.common.header_map(&name)?;
        let mut secrets = Vec::new();
        let api_key = self.api_key.filter(|k| !k.expose().is_empty());
        if self.source.is_some() && (self.credentials.is_some() || api_key.is_some()) {
            return Err(Error::config(format!(
                "provider `{name}`: set one of credentials, a credentials source or an api_key"
            )));
        }
        let auth = match (self.source, self.credentials, api_key) {
            (Some(source), _, _) => Auth::Source(source),
            (None, Some(_), Some(_)) => {
                return Err(Error::config(format!(
                    "provider `{name}`: set AWS credentials or an api_key, not both"
                )));
            }
            (None, Some(creds), None) => {
                h::check_resolved(&name, "secret_access_key", &creds.secret_access_key)?;
                if creds
                    .access_key_id
                    .starts_with(aegis_contracts::SecretRef::PREFIX)
                {
                    return Err(Error::config(format!(
                        "provider `{name}`: access_key_id is an unresolved secret reference"
                    )));
                }
                secrets.push(creds.secret_access_key.clone());
                secrets.extend(creds.session_token.clone());
                Auth::SigV4(creds)
            }
            (None, None, Some(key)) => {
                h::check_resolved(&name, "api_key", &key)?;
                headers.insert(
                    http::header::AUTHORIZATION,
                    h::sensitive_header(&name, "api_key", &format!("Bearer {}", key.expose()))?,
                );
                secrets.push(key);
                Auth::Header
            }
            (None, None, None) => Auth::Header,
        };
        let has_credentials =
            !matches!(auth, Auth::Header) || headers.contains_key("authorization");
        let transport = self.common.take_transport(&name)?;
        Ok(Bedrock {
            shared: Arc::new(Shared {
                core: Arc::new(HttpCore::new(
                    name,
                    transport,
                    self.common.timeout,
                    secrets,
                    has_credentials,
                )),
                endpoint,
                aws_region: self.aws_region,
                headers,
                auth,
                models: self.common.models,
            }),
        })
    }
}

impl Bedrock {
    /// Starts a builder for the instance `name` in AWS region `region`.
    pub fn builder(name: impl Into<String>, region: impl Into<String>) -> BedrockBuilder {
        BedrockBuilder {
            name: name.into(),
            aws_region: region.into(),
            endpoint: None,
            credentials: None,
            source: None,
            api_key: None,
            common: Common::default(),
        }
    }

    /// Builds the instance `name` from its registry configuration.
    pub fn from_config(
        name: impl Into<String>,
        cfg: BedrockConfig,
        client: Option<reqwest::Client>,
    ) -> Result<Self, Error> {
        let name = name.into();
        let mut b = Self::builder(name.clone(), cfg.region);
        b.common = Common::from_config(None, cfg.models, cfg.timeout_ms, cfg.headers, client);
        if let Some(e) = cfg.endpoint {
            b = b.endpoint(e);
        }
        match (cfg.access_key_id, cfg.secret_access_key) {
            (Some(id), Some(secret)) => {
                h::check_resolved(&name, "access_key_id", &id)?;
                let mut creds = AwsCredentials::new(id.expose(), secret);
                if let Some(token) = cfg.session_token {
                    creds = creds.with_session_token(token);
                }
                b = b.credentials(creds);
            }
            (None, None) => {}
            _ => {
                return Err(Error::config(format!(
                    "provider `{name}`: access_key_id and secret_access_key go together"
                )));
            }
        }
        if let Some(k) = cfg.api_key {
            b = b.api_key(k);
        }
        b.build()
    }

    /// `{endpoint}/model/{modelId}/{op}` with the model id percent-encoded (its `:` too).
    fn model_url(&self, model: &str, op: &str) -> Url {
        let mut encoded = String::with_capacity(model.len() + 8);
        sigv4::uri_encode(model, &mut encoded);
        let mut url = self.shared.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/model/{encoded}/{op}"));
        url
    }

    /// The Converse (or ConverseStream) URL for `model`.
    pub fn converse_url(&self, model: &str, stream: bool) -> Url {
        self.model_url(
            model,
            if stream {
                "converse-stream"
            } else {
                "converse"
            },
        )
    }

    /// The Converse body for `req` (what is sent, byte for byte).
    pub fn request_body(&self, req: &ChatRequest) -> Result<Value, Error> {
        to_wire(&self.shared.core.name, req)
    }

    /// Parses a Converse response body into a [`Completion`].
    pub fn parse_response(&self, body: &[u8]) -> Result<Completion, Error> {
        let core = &self.shared.core;
        let wire: WireResponse = serde_json::from_slice(body)
            .map_err(|e| core.malformed("a Converse response", body, &e))?;
        Ok(from_wire(wire))
    }

    async fn post(&self, url: Url, body: Vec<u8>, stream: bool) -> Result<reqwest::Request, Error> {
        let s = &self.shared;
        let mut req = h::post_json(url, &s.headers, body, stream);
        if stream {
            req.headers_mut().insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
        }
        match &s.auth {
            Auth::SigV4(creds) => {
                sigv4::sign(&mut req, creds, &s.aws_region, SERVICE, SystemTime::now())?;
            }
            Auth::Source(source) => {
                let creds = source.credentials().await?;
                sigv4::sign(&mut req, &creds, &s.aws_region, SERVICE, SystemTime::now())?;
            }
            Auth::Header => {}
        }
        Ok(req)
    }
}

#[async_trait]
impl Provider for Bedrock {
    fn name(&self) -> &str {
        &self.shared.core.name
    }

    fn capabilities(&self) -> ProviderCapabilities {
        let mut c = ProviderCapabilities::all();
        c.json_mode = false;
        c
    }

    fn region(&self) -> Option<&str> {
        Some(&self.shared.aws_region)
    }

    fn models(&self) -> Vec<String> {
        self.shared.models.clone()
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        let core = &self.shared.core;
        let body = serde_json::to_vec(&self.request_body(&req)?)
            .map_err(|e| Error::internal(format!("cannot serialize the request: {e}")))?;
        let http_req = self
            .post(self.converse_url(&req.model, req.stream), body, req.stream)
            .await?;
        let started = Instant::now();
        if !req.stream {
            let resp = core.with_deadline(core.send_checked(http_req)).await?;
            let request_id = request_id(&resp);
            let bytes = core.with_deadline(core.read_body(resp)).await?;
            let mut completion = self.parse_response(&bytes)?;
            completion.id = request_id;
            completion.model.clone_from(&req.model);
            let mut meta = ResponseMeta::new(core.name.clone(), req.model);
            meta.provider_latency = Some(started.elapsed());
            return Ok(ChatResponse::complete(meta, completion));
        }
        let resp = core.with_deadline(core.send_checked(http_req)).await?;
        let decoder = BedrockDecoder {
            id: request_id(&resp),
            model: req.model.clone(),
            created: t::now_unix(),
            ..BedrockDecoder::default()
        };
        let mut meta = ResponseMeta::new(core.name.clone(), req.model);
        meta.provider_latency = Some(started.elapsed());
        let stream = FrameStream::new(
            Arc::clone(core),
            resp,
            EventStreamParser::default(),
            decoder,
        );
        Ok(ChatResponse::stream(meta, stream.into_stream()))
    }

    async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        let core = &self.shared.core;
        let url = self.model_url(&req.model, "invoke");
        let parse = |bytes: &[u8]| -> Result<Value, Error> {
            serde_json::from_slice(bytes)
                .map_err(|e| core.malformed("an embeddings response", bytes, &e))
        };
        let vector = |v: &Value| -> Option<Vec<f32>> {
            v.as_array()?
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect()
        };
        let bad = || {
            Error::provider(format!(
                "provider `{}` returned an embeddings body without vectors",
                core.name
            ))
        };
        let mut data = Vec::with_capacity(req.input.len());
        let mut usage = Usage::default();
        if req.model.contains("titan-embed") {
            for text in &req.input {
                let mut body = json!({ "inputText": text });
                if let Some(d) = req.dimensions {
                    body["dimensions"] = d.into();
                }
                let body = serde_json::to_vec(&body)
                    .map_err(|e| Error::internal(format!("cannot serialize: {e}")))?;
                let v = parse(
                    &core
                        .send_for_body(self.post(url.clone(), body, false).await?)
                        .await?,
                )?;
                data.push(v.get("embedding").and_then(vector).ok_or_else(bad)?);
                usage.input_tokens = usage.input_tokens.saturating_add(
                    v.get("inputTextTokenCount")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                );
            }
        } else if req.model.contains("cohere.embed") {
            let input_type = req
                .extra
                .get("input_type")
                .cloned()
                .unwrap_or_else(|| "search_document".into());
            let body = serde_json::to_vec(&json!({ "texts": req.input, "input_type": input_type }))
                .map_err(|e| Error::internal(format!("cannot serialize: {e}")))?;
            let v = parse(
                &core
                    .send_for_body(self.post(url, body, false).await?)
                    .await?,
            )?;
            let list = match v.get("embeddings") {
                Some(Value::Object(by_type)) => by_type.get("float"),
                other => other,
            };
            for item in list.and_then(Value::as_array).ok_or_else(bad)? {
                data.push(vector(item).ok_or_else(bad)?);
            }
        } else {
            return Err(Error::invalid_request(format!(
                "provider `{}`: no embeddings body format is known for model `{}` (Titan and Cohere embedding models are)",
                core.name, req.model
            )));
        }
        if data.len() != req.input.len() {
            return Err(Error::provider(format!(
                "provider `{}` returned {} embeddings for {} inputs",
                core.name,
                data.len(),
                req.input.len()
            )));
        }
        Ok(EmbeddingResponse::new(req.model, data, usage))
    }
}

fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

// ---- request ----

fn image_format(mime: &str) -> &str {
    mime.strip_prefix("image/")
        .map_or(mime, |f| if f == "jpg" { "jpeg" } else { f })
}

fn blocks_of(provider: &str, content: Option<&Content>) -> Result<Vec<Value>, Error> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(s)) if s.is_empty() => return Ok(Vec::new()),
        Some(Content::Text(s)) => return Ok(vec![json!({ "text": s })]),
        Some(Content::Parts(parts)) => parts,
    };
    parts
        .iter()
        .map(|p| {
            Ok(match p {
                ContentPart::Text { text } => json!({ "text": text }),
                ContentPart::ImageUrl { image_url } => {
                    let url = t::image_url(image_url)
                        .ok_or_else(|| t::unsupported(provider, "an image part without a url"))?;
                    if let Some((mime, data)) = t::data_url(url) {
                        json!({ "image": { "format": image_format(mime), "source": { "bytes": data } } })
                    } else if url.starts_with("s3://") {
                        let ext = url.rsplit('.').next().unwrap_or("png").to_ascii_lowercase();
                        json!({ "image": { "format": image_format(&ext),
                            "source": { "s3Location": { "uri": url } } } })
                    } else {
                        return Err(t::unsupported(
                            provider,
                            "image URLs over HTTP (Bedrock takes inline bytes or s3:// locations)",
                        ));
                    }
                }
                ContentPart::File { file } => {
                    match file.get("file_data").and_then(Value::as_str).and_then(t::data_url) {
                        Some((mime, data)) => {
                            let format = mime.rsplit('/').next().unwrap_or("pdf");
                            let name = file
                                .get("filename")
                                .and_then(Value::as_str)
                                .map(|n| n.split('.').next().unwrap_or(n))
                                .unwrap_or("document");
                            json!({ "document": { "format": format, "name": name,
                                "source": { "bytes": data } } })
                        }
                        None => return Err(t::unsupported(provider, "a file part without inline file_data")),
                    }
                }
                ContentPart::InputAudio { .. } => return Err(t::unsupported(provider, "audio input")),
            })
        })
        .collect()
}

fn push_turn(messages: &mut Vec<Value>, role: &str, mut blocks: Vec<Value>, extra: &Extra) {
    if blocks.is_empty() {
        return;
    }
    if extra.contains_key("cache_control") {
        blocks.push(json!({ "cachePoint": { "type": "default" } }));
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

/// A neutral (Anthropic-shaped) thinking block as a Bedrock `reasoningContent` block.
fn reasoning_block(b: &Value) -> Option<Value> {
    match b.get("type").and_then(Value::as_str) {
        Some("thinking") => Some(json!({ "reasoningContent": { "reasoningText": {
            "text": b.get("thinking").cloned().unwrap_or_default(),
            "signature": b.get("signature").cloned().unwrap_or_default() } } })),
        Some("redacted_thinking") => Some(json!({ "reasoningContent": {
            "redactedContent": b.get("data").cloned().unwrap_or_default() } })),
        _ => None,
    }
}

/// Request fields forwarded as `additionalModelRequestFields` (model-specific parameters).
const MODEL_FIELDS: &[&str] = &["thinking", "top_k", "reasoning_config"];

fn to_wire(provider: &str, req: &ChatRequest) -> Result<Value, Error> {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        match m.role {
            Role::System | Role::Developer => {
                system.extend(blocks_of(provider, m.content.as_ref())?);
                if m.extra.contains_key("cache_control") {
                    system.push(json!({ "cachePoint": { "type": "default" } }));
                }
            }
            Role::User => push_turn(
                &mut messages,
                "user",
                blocks_of(provider, m.content.as_ref())?,
                &m.extra,
            ),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if let Some(Value::Array(thinking)) = m.extra.get("thinking_blocks") {
                    blocks.extend(thinking.iter().filter_map(reasoning_block));
                }
                blocks.extend(blocks_of(provider, m.content.as_ref())?);
                for call in &m.tool_calls {
                    blocks.push(json!({ "toolUse": { "toolUseId": call.id,
                        "name": call.function.name, "input": t::tool_args(provider, call)? } }));
                }
                push_turn(&mut messages, "assistant", blocks, &m.extra);
            }
            Role::Tool => {
                let text = m.text();
                let content = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => json!([{ "json": v }]),
                    _ => json!([{ "text": text }]),
                };
                let mut result = json!({ "toolUseId": m.tool_call_id.as_deref().unwrap_or_default(),
                    "content": content });
                if m.extra.get("is_error") == Some(&Value::Bool(true)) {
                    result["status"] = "error".into();
                }
                push_turn(
                    &mut messages,
                    "user",
                    vec![json!({ "toolResult": result })],
                    &m.extra,
                );
            }
        }
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(x) = req.max_tokens {
        inference.insert("maxTokens".into(), x.into());
    }
    if let Some(x) = req.temperature {
        inference.insert("temperature".into(), json!(x));
    }
    if let Some(x) = req.top_p {
        inference.insert("topP".into(), json!(x));
    }
    let stops = t::stop_sequences(req.stop.as_ref());
    if !stops.is_empty() {
        inference.insert("stopSequences".into(), json!(stops));
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|tool| {
                let f = &tool.function;
                let mut spec = json!({ "name": f.name, "inputSchema": {
                    "json": f.parameters.clone().unwrap_or_else(|| json!({"type": "object"})) } });
                if let Some(d) = &f.description {
                    spec["description"] = d.clone().into();
                }
                json!({ "toolSpec": spec })
            })
            .collect();
        let mut config = json!({ "tools": tools });
        let choice = match &req.tool_choice {
            Some(Value::String(s)) if s == "auto" => Some(json!({ "auto": {} })),
            Some(Value::String(s)) if s == "required" => Some(json!({ "any": {} })),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({ "tool": { "name": n } })),
            // Converse has no "none": the tools stay declared (history may use them).
            _ => None,
        };
        if let Some(c) = choice {
            config["toolChoice"] = c;
        }
        body.insert("toolConfig".into(), config);
    }
    let mut model_fields = match req.extra.get("additional_model_request_fields") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for key in MODEL_FIELDS {
        if let Some(v) = req.extra.get(*key) {
            model_fields.insert((*key).to_owned(), v.clone());
        }
    }
    if !model_fields.is_empty() {
        body.insert(
            "additionalModelRequestFields".into(),
            Value::Object(model_fields),
        );
    }
    for (from, to) in [
        ("guardrail_config", "guardrailConfig"),
        ("performance_config", "performanceConfig"),
        ("request_metadata", "requestMetadata"),
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
    output: WireOutput,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    metrics: Option<Value>,
}

#[derive(Deserialize)]
struct WireOutput {
    message: WireMessage,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Vec<Value>,
}

/// Converse `stopReason` → OpenAI `finish_reason`.
fn finish_reason(stop: &str) -> String {
    match stop {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        other => other,
    }
    .to_owned()
}

/// Converse usage → normalized [`Usage`].
fn usage(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let read = n("cacheReadInputTokens");
    let write = n("cacheWriteInputTokens");
    Usage {
        input_tokens: n("inputTokens") + read + write,
        output_tokens: n("outputTokens"),
        cache_read_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: 0,
    }
}

fn from_wire(w: WireResponse) -> Completion {
    let mut message = Message::default();
    message.role = Role::Assistant;
    let mut text: Option<String> = None;
    let mut thinking = Vec::new();
    let mut thinking_text = String::new();
    for block in w.output.message.content {
        if let Some(s) = block.get("text").and_then(Value::as_str) {
            text.get_or_insert_with(String::new).push_str(s);
        } else if let Some(tu) = block.get("toolUse") {
            let id = tu
                .get("toolUseId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = tu.get("name").and_then(Value::as_str).unwrap_or_default();
            let input = tu.get("input").cloned().unwrap_or_else(|| json!({}));
            message
                .tool_calls
                .push(ToolCall::new(id, name, input.to_string()));
        } else if let Some(rc) = block.get("reasoningContent") {
            if let Some(rt) = rc.get("reasoningText") {
                let s = rt.get("text").and_then(Value::as_str).unwrap_or_default();
                thinking_text.push_str(s);
                thinking.push(json!({ "type": "thinking", "thinking": s,
                    "signature": rt.get("signature").cloned().unwrap_or_default() }));
            } else if let Some(data) = rc.get("redactedContent") {
                thinking.push(json!({ "type": "redacted_thinking", "data": data }));
            }
        }
    }
    message.content = text.map(Content::Text);
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
    let mut c = Completion::default();
    c.created = t::now_unix();
    c.usage = w.usage.as_ref().map(usage);
    if let Some(m) = w.metrics {
        c.extra.insert("metrics".into(), m);
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
    Tool(u32),
    Reasoning {
        text: String,
        signature: String,
        redacted: Option<Value>,
    },
    Text,
}

/// ConverseStream event-stream messages → chunks.
#[derive(Default)]
pub(crate) struct BedrockDecoder {
    id: String,
    model: String,
    created: u64,
    blocks: BTreeMap<u64, Block>,
    tools: u32,
    thinking: Vec<Value>,
    stopped: bool,
}

impl BedrockDecoder {
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

    fn tool(&self, index: u32, id: Option<String>, name: Option<String>, args: String) -> Delta {
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

impl Decoder<EventMessage> for BedrockDecoder {
    fn decode(
        &mut self,
        core: &HttpCore,
        msg: EventMessage,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<Flow, Error> {
        let payload: Value = if msg.payload.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&msg.payload).map_err(|e| {
                Error::provider(format!(
                    "provider `{}` sent an event whose payload is not JSON: {e}",
                    core.name
                ))
            })?
        };
        match msg.header(":message-type") {
            Some("exception") => {
                let kind = msg.header(":exception-type");
                let text = payload
                    .get("message")
                    .or_else(|| payload.get("Message"))
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                let text = format!("{text} ({})", kind.unwrap_or("exception"));
                return Err(core.stream_error(kind, &text));
            }
            Some("error") => {
                let code = msg.header(":error-code");
                let text = msg.header(":error-message").unwrap_or("no message");
                return Err(
                    core.stream_error(code, &format!("{text} ({})", code.unwrap_or("error")))
                );
            }
            _ => {}
        }
        let index = payload
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        match msg.header(":event-type") {
            Some("messageStart") => out.push_back(self.chunk(
                Delta {
                    role: Some(Role::Assistant),
                    ..Delta::default()
                },
                None,
            )),
            Some("contentBlockStart") => {
                if let Some(tu) = payload.get("start").and_then(|st| st.get("toolUse")) {
                    let i = self.tools;
                    self.tools += 1;
                    self.blocks.insert(index, Block::Tool(i));
                    out.push_back(self.chunk(
                        self.tool(i, s(tu, "toolUseId"), s(tu, "name"), String::new()),
                        None,
                    ));
                }
            }
            Some("contentBlockDelta") => {
                let d = payload.get("delta").unwrap_or(&Value::Null);
                if let Some(text) = s(d, "text") {
                    self.blocks.entry(index).or_insert(Block::Text);
                    out.push_back(self.chunk(
                        Delta {
                            content: Some(text),
                            ..Delta::default()
                        },
                        None,
                    ));
                } else if let Some(tu) = d.get("toolUse") {
                    let Some(Block::Tool(i)) = self.blocks.get(&index) else {
                        return Err(Error::provider(format!(
                            "provider `{}` sent tool input for block {index} that never started",
                            core.name
                        )));
                    };
                    let i = *i;
                    out.push_back(self.chunk(
                        self.tool(i, None, None, s(tu, "input").unwrap_or_default()),
                        None,
                    ));
                } else if let Some(rc) = d.get("reasoningContent") {
                    let block = self.blocks.entry(index).or_insert(Block::Reasoning {
                        text: String::new(),
                        signature: String::new(),
                        redacted: None,
                    });
                    let mut piece_out = None;
                    if let Block::Reasoning {
                        text,
                        signature,
                        redacted,
                    } = block
                    {
                        if let Some(piece) = s(rc, "text") {
                            text.push_str(&piece);
                            piece_out = Some(piece);
                        }
                        if let Some(sig) = s(rc, "signature") {
                            signature.push_str(&sig);
                        }
                        if let Some(r) = rc.get("redactedContent") {
                            *redacted = Some(r.clone());
                        }
                    }
                    if let Some(piece) = piece_out {
                        let mut delta = Delta::default();
                        delta.extra.insert("reasoning_content".into(), piece.into());
                        out.push_back(self.chunk(delta, None));
                    }
                }
            }
            Some("contentBlockStop") => {
                if let Some(Block::Reasoning {
                    text,
                    signature,
                    redacted,
                }) = self.blocks.remove(&index)
                {
                    self.thinking.push(match redacted {
                        Some(data) => json!({ "type": "redacted_thinking", "data": data }),
                        None => {
                            json!({ "type": "thinking", "thinking": text, "signature": signature })
                        }
                    });
                    let mut delta = Delta::default();
                    delta.extra.insert(
                        "thinking_blocks".into(),
                        Value::Array(self.thinking.clone()),
                    );
                    out.push_back(self.chunk(delta, None));
                }
            }
            Some("messageStop") => {
                self.stopped = true;
                let reason = s(&payload, "stopReason").map(|r| finish_reason(&r));
                out.push_back(self.chunk(Delta::default(), reason));
            }
            Some("metadata") => {
                if let Some(u) = payload.get("usage") {
                    let mut c = self.chunk(Delta::default(), None);
                    c.choices.clear();
                    c.usage = Some(usage(u));
                    out.push_back(c);
                }
                if self.stopped {
                    return Ok(Flow::Done);
                }
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, core: &HttpCore, _out: &mut VecDeque<ChatChunk>) -> Result<(), Error> {
        if self.stopped {
            Ok(())
        } else {
            Err(Error::provider(format!(
                "provider `{}`: stream ended before messageStop",
                core.name
            ))
            .with_retryable(true))
        }
    }
}
