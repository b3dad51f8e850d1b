//! [`OpenAiCompatible`]: any server that speaks OpenAI's `chat/completions` and `embeddings`
//! (OpenAI, Azure OpenAI, LiteLLM, vLLM, Ollama, LM Studio, llama.cpp, Together, Groq, ...).
//! Well-known services are [`Preset`]s of it.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use aegis_contracts::{
    ChatChunk, ChatRequest, ChatResponse, Completion, EmbeddingRequest, EmbeddingResponse, Error,
    Provider, ProviderCapabilities, ResponseMeta, Secret, async_trait,
};
use http::{HeaderMap, HeaderName, header};
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    http::{self as h, HttpCore},
    presets::{AuthStyle, Preset, Quirks},
    sse::{SseEvent, SseParser},
    stream::{Decoder, Flow, FrameStream},
    transport::{self, Transport},
    wire::{self, WireChunk, WireCompletion},
};

/// Configuration of an [`OpenAiCompatible`] provider, as it appears in the plugin registry.
///
/// ```
/// use aegis_providers::OpenAiConfig;
/// let cfg: OpenAiConfig = serde_json::from_value(serde_json::json!({
///     "base_url": "https://api.openai.com/v1",
///     "api_key": "secret://env/OPENAI_API_KEY",
///     "region": "us",
///     "models": ["gpt-4o-mini"],
///     "timeout_ms": 30000
/// })).unwrap();
/// assert_eq!(cfg.models, ["gpt-4o-mini"]);
/// ```
///
/// With a [`Preset`], `base_url` may be omitted:
///
/// ```
/// use aegis_providers::{OpenAiCompatible, OpenAiConfig};
/// let cfg: OpenAiConfig = serde_json::from_value(serde_json::json!({
///     "preset": "ollama"
/// })).unwrap();
/// let p = OpenAiCompatible::from_config("local", cfg, None).unwrap();
/// assert_eq!(p.base_url().as_str(), "http://localhost:11434/v1");
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenAiConfig {
    /// A well-known service whose base URL, auth header and quirks fill the defaults.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// Base URL of the API, up to and including the version segment
    /// (`https://api.openai.com/v1`); `/chat/completions` and `/embeddings` are appended.
    /// Required unless the preset has a default.
    #[serde(default)]
    pub base_url: Option<String>,
    /// API key, sent as `Authorization: Bearer` (or in `api_key_header`). Usually a
    /// `secret://` reference, resolved before the provider is built. Omit for local servers
    /// that need none.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Send the key raw in this header instead of `Authorization: Bearer` (e.g. `api-key`).
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// Region the backend processes data in (`eu`, `us-east-1`), for residency policy.
    #[serde(default)]
    pub region: Option<String>,
    /// Models this backend serves; empty means whatever is asked.
    #[serde(default)]
    pub models: Vec<String>,
    /// Deadline in milliseconds for a complete answer; for streams, the deadline for the
    /// response headers and the longest silence allowed between two chunks.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Extra HTTP headers sent with every request (`OpenAI-Organization`, `api-key`, ...).
    /// Values are treated as sensitive and never printed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl OpenAiConfig {
    /// A configuration with just a base URL.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: Some(base_url.into()),
            ..Self::preset(None)
        }
    }

    /// A configuration filled from `preset` (no base URL when `None`).
    pub fn preset(preset: impl Into<Option<Preset>>) -> Self {
        Self {
            preset: preset.into(),
            base_url: None,
            api_key: None,
            api_key_header: None,
            region: None,
            models: Vec::new(),
            timeout_ms: None,
            headers: BTreeMap::new(),
        }
    }
}

/// Supplies a bearer token per request, for credentials that expire (Azure Entra ID,
/// OAuth). Implementations cache and refresh; the provider calls it on every request.
#[async_trait]
pub trait TokenSource: Send + Sync + 'static {
    /// A currently valid token.
    async fn token(&self) -> Result<Secret, Error>;
}

/// A provider for any OpenAI-compatible server, sending through the host's
/// [`reqwest::Client`] or any [`Transport`].
///
/// Cheap to clone. Its `Debug` never shows the API key or header values.
///
/// Errors: `429` is [`ErrorKind::RateLimited`](aegis_contracts::ErrorKind::RateLimited) with
/// `retry_after` from `retry-after` (seconds or HTTP date) or `retry-after-ms`; `5xx` is a
/// retryable [`ErrorKind::Provider`](aegis_contracts::ErrorKind::Provider); `408` is
/// [`ErrorKind::Timeout`](aegis_contracts::ErrorKind::Timeout); other `4xx` are non-retryable
/// provider errors carrying the status and the upstream's message (`401`/`403` say that the
/// key was rejected). A `2xx` body that is not what was asked for is an error, never a silent
/// success; a stream that ends without `[DONE]` ends with an `Err` item.
#[derive(Clone)]
pub struct OpenAiCompatible {
    shared: Arc<Shared>,
}

struct Shared {
    core: Arc<HttpCore>,
    base_url: Url,
    endpoints: Endpoints,
    headers: HeaderMap,
    token_source: Option<Arc<dyn TokenSource>>,
    region: Option<String>,
    models: Vec<String>,
    quirks: Quirks,
    preset: Option<Preset>,
}

/// Where requests go.
pub(crate) enum Endpoints {
    /// `{base}/chat/completions`, `{base}/embeddings`.
    Fixed { chat: Url, embeddings: Url },
    /// Azure: `{base}/{deployment}/chat/completions?api-version=...`, the deployment chosen
    /// by model.
    Deployments {
        base: Url,
        deployments: BTreeMap<String, String>,
    },
}

impl Endpoints {
    fn url(&self, model: &str, op: &str) -> Url {
        match self {
            Self::Fixed { chat, embeddings } => {
                if op == "embeddings" {
                    embeddings.clone()
                } else {
                    chat.clone()
                }
            }
            Self::Deployments { base, deployments } => {
                let deployment = deployments.get(model).map_or(model, String::as_str);
                let segments: &[&str] = if op == "embeddings" {
                    &[deployment, "embeddings"]
                } else {
                    &[deployment, "chat", "completions"]
                };
                h::join_path(base, segments)
            }
        }
    }
}

/// Builds an [`OpenAiCompatible`]; see [`OpenAiCompatible::builder`].
#[must_use]
pub struct OpenAiCompatibleBuilder {
    name: String,
    base_url: Option<String>,
    preset: Option<Preset>,
    api_key: Option<Secret>,
    api_key_header: Option<String>,
    token_source: Option<Arc<dyn TokenSource>>,
    transport: Option<Transport>,
    region: Option<String>,
    models: Vec<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    deployments: Option<BTreeMap<String, String>>,
}

impl OpenAiCompatibleBuilder {
    /// The API key, sent as `Authorization: Bearer` (or in the preset's / configured header).
    pub fn api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Sends the API key raw in header `name` instead of `Authorization: Bearer`.
    pub fn api_key_header(mut self, name: impl Into<String>) -> Self {
        self.api_key_header = Some(name.into());
        self
    }

    /// Fetches a bearer token per request (Entra ID, OAuth); replaces `api_key`.
    pub fn token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.token_source = Some(source);
        self
    }

    /// Sets (overrides) the base URL, up to and including the version segment.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Applies a preset: its base URL (unless one was given), auth header and quirks.
    pub fn preset(mut self, preset: Preset) -> Self {
        self.preset = Some(preset);
        self
    }

    /// Sends through the host's own client (pool, proxies, TLS settings). The default is a
    /// fresh `reqwest::Client`.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.transport = Some(transport::from_client(client));
        self
    }

    /// Sends through any transport, e.g. a tower stack over a client
    /// ([`transport::from_service`]). Replaces [`client`](Self::client).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The region the backend processes data in.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The models the backend serves; empty (the default) means whatever is asked.
    pub fn models<I, S>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }

    /// An extra header sent with every request. Its value is treated as sensitive.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Deadline for a complete answer; for streams, the deadline for the response headers and
    /// the longest silence allowed between two chunks. Independent of any timeout in the
    /// transport.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Azure-style deployment URLs: `{base_url}/{deployment}/chat/completions`, the
    /// deployment looked up by model (the model name itself when absent).
    #[cfg_attr(not(feature = "azure"), allow(dead_code))]
    pub(crate) fn deployments(mut self, deployments: BTreeMap<String, String>) -> Self {
        self.deployments = Some(deployments);
        self
    }

    /// Builds the provider. A base URL that is not an absolute `http(s)` URL (or missing with
    /// no preset default), an invalid header, a missing key for a hosted preset, or an API key
    /// that is still an unresolved `secret://` reference is a
    /// [`ErrorKind::Config`](aegis_contracts::ErrorKind::Config) error.
    pub fn build(self) -> Result<OpenAiCompatible, Error> {
        let name = self.name;
        let base = match (&self.base_url, self.preset.and_then(Preset::base_url)) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url.to_owned(),
            (None, None) => {
                return Err(Error::config(match self.preset {
                    Some(p) => format!("provider `{name}`: preset `{p}` needs a base_url"),
                    None => format!("provider `{name}`: base_url is required without a preset"),
                }));
            }
        };
        let base_url = h::parse_base_url(&name, &base)?;
        let endpoints = match self.deployments {
            Some(deployments) => Endpoints::Deployments {
                base: base_url.clone(),
                deployments,
            },
            None => Endpoints::Fixed {
                chat: h::join_path(&base_url, &["chat", "completions"]),
                embeddings: h::join_path(&base_url, &["embeddings"]),
            },
        };

        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            let hname = HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| {
                Error::config(format!(
                    "provider `{name}`: `{k}` is not a valid header name"
                ))
            })?;
            let value = h::sensitive_header(&name, &format!("the value of header `{k}`"), v.trim())
                .map_err(|_| {
                    Error::config(format!(
                        "provider `{name}`: the value of header `{k}` is not valid"
                    ))
                })?;
            headers.append(hname, value);
        }
        let api_key = self.api_key.filter(|k| !k.expose().is_empty());
        // `None`: `Authorization: Bearer`; `Some(name)`: the key raw in that header.
        let key_header = match (&self.api_key_header, self.preset.map(Preset::auth)) {
            (Some(hname), _) => Some(HeaderName::from_bytes(hname.trim().as_bytes()).map_err(
                |_| {
                    Error::config(format!(
                        "provider `{name}`: `{hname}` is not a valid header name"
                    ))
                },
            )?),
            (None, Some(AuthStyle::Header(hname))) => Some(HeaderName::from_static(hname)),
            _ => None,
        };
        if let Some(key) = &api_key {
            h::check_resolved(&name, "api_key", key)?;
            let (hname, value) = match key_header {
                Some(hname) => (hname, h::sensitive_header(&name, "api_key", key.expose())?),
                None => (
                    header::AUTHORIZATION,
                    h::sensitive_header(&name, "api_key", &format!("Bearer {}", key.expose()))?,
                ),
            };
            if headers.contains_key(&hname) {
                return Err(Error::config(format!(
                    "provider `{name}`: set either api_key or a `{hname}` header, not both"
                )));
            }
            headers.insert(hname, value);
        } else if let Some(p) = self.preset
            && p.requires_api_key()
            && self.token_source.is_none()
            && !headers.contains_key(header::AUTHORIZATION)
        {
            return Err(Error::config(format!(
                "provider `{name}`: preset `{p}` needs an api_key"
            )));
        }

        let transport = match self.transport {
            Some(t) => t,
            None => HttpCore::default_transport(&name)?,
        };
        let has_credentials = api_key.is_some()
            || self.token_source.is_some()
            || headers.contains_key(header::AUTHORIZATION);
        let core = HttpCore::new(
            name,
            transport,
            self.timeout,
            api_key.into_iter().collect(),
            has_credentials,
        );
        Ok(OpenAiCompatible {
            shared: Arc::new(Shared {
                core: Arc::new(core),
                base_url,
                endpoints,
                headers,
                token_source: self.token_source,
                region: self.region,
                models: self.models,
                quirks: self.preset.map(Preset::quirks).unwrap_or_default(),
                preset: self.preset,
            }),
        })
    }
}

impl fmt::Debug for OpenAiCompatibleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatibleBuilder")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("preset", &self.preset)
            .field("api_key", &self.api_key)
            .field("transport", &self.transport.as_ref().map(|_| ".."))
            .field("region", &self.region)
            .field("models", &self.models)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        let mut url = s.base_url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        f.debug_struct("OpenAiCompatible")
            .field("name", &s.core.name)
            .field("base_url", &url.as_str())
            .field("preset", &s.preset)
            .field(
                "headers",
                &s.headers.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            )
            .field("region", &s.region)
            .field("models", &s.models)
            .field("timeout", &s.core.timeout)
            .finish()
    }
}

impl OpenAiCompatible {
    /// Starts a builder for the provider instance `name` at `base_url` (up to and including
    /// the version segment, e.g. `https://api.openai.com/v1`).
    pub fn builder(
        name: impl Into<String>,
        base_url: impl Into<String>,
    ) -> OpenAiCompatibleBuilder {
        let mut b = Self::preset_builder(name, None);
        b.base_url = Some(base_url.into());
        b
    }

    /// Starts a builder from a preset (its default base URL, auth header and quirks).
    ///
    /// ```
    /// use aegis_contracts::Secret;
    /// use aegis_providers::{OpenAiCompatible, Preset};
    /// let groq = OpenAiCompatible::preset_builder("groq", Preset::Groq)
    ///     .api_key(Secret::new("gsk-..."))
    ///     .build()?;
    /// assert_eq!(groq.base_url().as_str(), "https://api.groq.com/openai/v1");
    /// # Ok::<(), aegis_contracts::Error>(())
    /// ```
    pub fn preset_builder(
        name: impl Into<String>,
        preset: impl Into<Option<Preset>>,
    ) -> OpenAiCompatibleBuilder {
        OpenAiCompatibleBuilder {
            name: name.into(),
            base_url: None,
            preset: preset.into(),
            api_key: None,
            api_key_header: None,
            token_source: None,
            transport: None,
            region: None,
            models: Vec::new(),
            headers: Vec::new(),
            timeout: None,
            deployments: None,
        }
    }

    /// Builds the provider instance `name` from its registry configuration, sending through
    /// `client` (the host's) or, when `None`, a fresh client.
    pub fn from_config(
        name: impl Into<String>,
        cfg: OpenAiConfig,
        client: Option<reqwest::Client>,
    ) -> Result<Self, Error> {
        let mut b = Self::preset_builder(name, cfg.preset).models(cfg.models);
        b.base_url = cfg.base_url;
        if let Some(key) = cfg.api_key {
            b = b.api_key(key);
        }
        if let Some(hname) = cfg.api_key_header {
            b = b.api_key_header(hname);
        }
        if let Some(region) = cfg.region {
            b = b.region(region);
        }
        if let Some(ms) = cfg.timeout_ms {
            b = b.timeout(Duration::from_millis(ms));
        }
        if let Some(client) = client {
            b = b.client(client);
        }
        for (k, v) in cfg.headers {
            b = b.header(k, v);
        }
        b.build()
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &Url {
        &self.shared.base_url
    }

    /// The URL a request for `model` goes to (`op`: `chat` or `embeddings`).
    #[cfg_attr(not(feature = "azure"), allow(dead_code))]
    pub(crate) fn endpoint_url(&self, model: &str, op: &str) -> Url {
        self.shared.endpoints.url(model, op)
    }

    /// The preset this provider was built from.
    pub fn preset(&self) -> Option<Preset> {
        self.shared.preset
    }

    async fn request(
        &self,
        model: &str,
        op: &str,
        body: Vec<u8>,
        stream: bool,
    ) -> Result<reqwest::Request, Error> {
        let s = &self.shared;
        let mut req = h::post_json(s.endpoints.url(model, op), &s.headers, body, stream);
        if let Some(source) = &s.token_source {
            let token = source.token().await?;
            let value = h::sensitive_header(
                &s.core.name,
                "the token",
                &format!("Bearer {}", token.expose()),
            )?;
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
        Ok(req)
    }

    /// The request body: the [`ChatRequest`] as OpenAI JSON, with `stream_options` for
    /// streams (so the last chunk carries usage) unless the caller chose their own, and the
    /// preset's quirks applied.
    pub(crate) fn body(&self, req: &ChatRequest) -> Result<Vec<u8>, Error> {
        let quirks = &self.shared.quirks;
        let stream_options =
            (req.stream && quirks.stream_usage_option && !req.extra.contains_key("stream_options"))
                .then(|| serde_json::json!({ "include_usage": true }));
        let wire = WireChatRequest {
            req,
            stream_options,
        };
        let ser = |e: serde_json::Error| {
            Error::internal(format!("cannot serialize the chat request: {e}"))
        };
        if !quirks.rewrites() {
            return serde_json::to_vec(&wire).map_err(ser);
        }
        let mut v = serde_json::to_value(&wire).map_err(ser)?;
        if let Value::Object(map) = &mut v {
            for (from, to) in [
                ("max_tokens", quirks.max_tokens_field),
                ("seed", quirks.seed_field),
            ] {
                if from != to
                    && !map.contains_key(to)
                    && let Some(x) = map.remove(from)
                {
                    map.insert(to.to_owned(), x);
                }
            }
            if let Some(Value::Array(messages)) = map.get_mut("messages") {
                for m in messages.iter_mut().filter_map(Value::as_object_mut) {
                    for field in quirks.strip_message_fields {
                        m.remove(*field);
                    }
                }
            }
        }
        serde_json::to_vec(&v).map_err(ser)
    }

    async fn complete(&self, req: ChatRequest, body: Vec<u8>) -> Result<ChatResponse, Error> {
        let core = &self.shared.core;
        let started = Instant::now();
        let http_req = self.request(&req.model, "chat", body, false).await?;
        let bytes = core.send_for_body(http_req).await?;
        let latency = started.elapsed();
        let completion = parse_completion(core, &bytes)?;
        let model = if completion.model.is_empty() {
            req.model
        } else {
            completion.model.clone()
        };
        let mut meta = ResponseMeta::new(core.name.clone(), model);
        meta.provider_latency = Some(latency);
        Ok(ChatResponse::complete(meta, completion))
    }

    async fn stream(&self, req: ChatRequest, body: Vec<u8>) -> Result<ChatResponse, Error> {
        let core = &self.shared.core;
        let started = Instant::now();
        let http_req = self.request(&req.model, "chat", body, true).await?;
        let resp = core.with_deadline(core.send_checked(http_req)).await?;
        let mut meta = ResponseMeta::new(core.name.clone(), req.model);
        meta.provider_latency = Some(started.elapsed());
        if h::is_json(&resp) {
            // The server ignored `stream: true` and answered at once: pass the answer on as a
            // one-chunk stream rather than failing a request that succeeded.
            let bytes = core.with_deadline(core.read_body(resp)).await?;
            let chunk = wire::completion_to_chunk(parse_completion(core, &bytes)?);
            return Ok(ChatResponse::stream(
                meta,
                Box::pin(futures_util::stream::iter([Ok(chunk)])),
            ));
        }
        let stream = FrameStream::new(Arc::clone(core), resp, SseParser::new(), OpenAiDecoder);
        Ok(ChatResponse::stream(meta, stream.into_stream()))
    }
}

/// Parses an OpenAI `chat.completion` body.
pub(crate) fn parse_completion(core: &HttpCore, bytes: &[u8]) -> Result<Completion, Error> {
    serde_json::from_slice::<WireCompletion>(bytes)
        .map(Into::into)
        .map_err(|e| core.malformed("a chat completion", bytes, &e))
}

#[derive(Serialize)]
struct WireChatRequest<'a> {
    #[serde(flatten)]
    req: &'a ChatRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
}

#[async_trait]
impl Provider for OpenAiCompatible {
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
        let body = self.body(&req)?;
        if req.stream {
            self.stream(req, body).await
        } else {
            self.complete(req, body).await
        }
    }

    async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        let core = &self.shared.core;
        let body = serde_json::to_vec(&req)
            .map_err(|e| Error::internal(format!("cannot serialize the embedding request: {e}")))?;
        let http_req = self.request(&req.model, "embeddings", body, false).await?;
        let bytes = core.send_for_body(http_req).await?;
        let wire: WireEmbeddings = serde_json::from_slice(&bytes)
            .map_err(|e| core.malformed("an embeddings response", &bytes, &e))?;
        let n = wire.data.len();
        if n != req.input.len() {
            return Err(Error::provider(format!(
                "provider `{}` returned {n} embeddings for {} inputs",
                core.name,
                req.input.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; n];
        for (pos, item) in wire.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(pos);
            match slots.get_mut(i) {
                Some(slot @ None) => *slot = Some(item.embedding),
                _ => {
                    return Err(Error::provider(format!(
                        "provider `{}` returned embeddings with a duplicate or out-of-range index {i}",
                        core.name
                    )));
                }
            }
        }
        let data = slots.into_iter().flatten().collect();
        let usage = wire
            .usage
            .as_ref()
            .map(wire::usage_from_openai)
            .unwrap_or_default();
        let model = if wire.model.is_empty() {
            req.model
        } else {
            wire.model
        };
        Ok(EmbeddingResponse::new(model, data, usage))
    }
}

#[derive(Deserialize)]
struct WireEmbeddings {
    data: Vec<WireEmbedding>,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

/// OpenAI `chat.completion.chunk` events, ended by `data: [DONE]`.
pub(crate) struct OpenAiDecoder;

impl Decoder<SseEvent> for OpenAiDecoder {
    fn decode(
        &mut self,
        core: &HttpCore,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<Flow, Error> {
        let name = &core.name;
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Flow::Done);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let is_error_event = event.event.as_deref() == Some("error");
        let upstream_error = match serde_json::from_str::<WireChunk>(data) {
            Ok(chunk) if chunk.error.is_none() && !is_error_event => {
                out.push_back(chunk.into());
                return Ok(Flow::Continue);
            }
            Ok(chunk) => chunk
                .error
                .as_ref()
                .and_then(wire::error_message)
                .unwrap_or_else(|| data.to_owned()),
            Err(_) if is_error_event => data.to_owned(),
            Err(e) => {
                return Err(Error::provider(format!(
                    "provider `{name}` sent a stream event that is not a chat completion chunk: {e}"
                )));
            }
        };
        Err(Error::provider(format!(
            "provider `{name}` reported an error mid-stream: {}",
            core.redact(&upstream_error)
        )))
    }

    fn end(&mut self, core: &HttpCore, _out: &mut VecDeque<ChatChunk>) -> Result<(), Error> {
        Err(Error::provider(format!(
            "provider `{}`: stream ended before [DONE]",
            core.name
        ))
        .with_retryable(true))
    }
}
