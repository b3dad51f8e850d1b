//! [`OpenAiCompatible`]: any server that speaks OpenAI's `chat/completions` and `embeddings`
//! (OpenAI, Azure OpenAI's v1 API, vLLM, Ollama, LM Studio, llama.cpp, Together, Groq, ...).

use std::{
    collections::BTreeMap,
    fmt,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use aegis_contracts::{
    ChatChunk, ChatRequest, ChatResponse, ChatStream, Completion, EmbeddingRequest,
    EmbeddingResponse, Error, ErrorKind, Provider, ProviderCapabilities, ResponseMeta, Secret,
    SecretRef, async_trait,
};
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use reqwest::{Method, Url};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    sse::{SseEvent, SseParser},
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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenAiConfig {
    /// Base URL of the API, up to and including the version segment
    /// (`https://api.openai.com/v1`); `/chat/completions` and `/embeddings` are appended.
    pub base_url: String,
    /// API key, sent as `Authorization: Bearer`. Usually a `secret://` reference, resolved
    /// before the provider is built. Omit for local servers that need none.
    #[serde(default)]
    pub api_key: Option<Secret>,
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
            base_url: base_url.into(),
            api_key: None,
            region: None,
            models: Vec::new(),
            timeout_ms: None,
            headers: BTreeMap::new(),
        }
    }
}

/// A provider for any OpenAI-compatible server, sending through the host's
/// [`reqwest::Client`] or any [`Transport`].
///
/// Cheap to clone. Its `Debug` never shows the API key or header values.
///
/// Errors: `429` is [`ErrorKind::RateLimited`] with `retry_after` from `retry-after`
/// (seconds or HTTP date) or `retry-after-ms`; `5xx` is a retryable [`ErrorKind::Provider`];
/// `408` is [`ErrorKind::Timeout`]; other `4xx` are non-retryable [`ErrorKind::Provider`]
/// errors carrying the status and the upstream's message (`401`/`403` say that the key was
/// rejected). A `2xx` body that is not what was asked for is an error, never a silent success;
/// a stream that ends without `[DONE]` ends with an `Err` item.
#[derive(Clone)]
pub struct OpenAiCompatible {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    base_url: Url,
    chat_url: Url,
    embeddings_url: Url,
    headers: HeaderMap,
    api_key: Option<Secret>,
    region: Option<String>,
    models: Vec<String>,
    timeout: Option<Duration>,
    transport: Transport,
}

/// Builds an [`OpenAiCompatible`]; see [`OpenAiCompatible::builder`].
#[must_use]
pub struct OpenAiCompatibleBuilder {
    name: String,
    base_url: String,
    api_key: Option<Secret>,
    transport: Option<Transport>,
    region: Option<String>,
    models: Vec<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
}

impl OpenAiCompatibleBuilder {
    /// The API key, sent as `Authorization: Bearer`.
    pub fn api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
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

    /// Builds the provider. A base URL that is not an absolute `http(s)` URL, an invalid
    /// header, or an API key that is still an unresolved `secret://` reference is a
    /// [`ErrorKind::Config`] error.
    pub fn build(self) -> Result<OpenAiCompatible, Error> {
        let name = self.name;
        let base_url = Url::parse(self.base_url.trim()).map_err(|e| {
            Error::config(format!(
                "provider `{name}`: base_url `{}` is not a URL: {e}",
                self.base_url
            ))
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(Error::config(format!(
                "provider `{name}`: base_url `{}` must be an http:// or https:// URL",
                self.base_url
            )));
        }
        let endpoint = |segments: &[&str]| -> Url {
            let mut url = base_url.clone();
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().extend(segments);
            }
            url
        };
        let chat_url = endpoint(&["chat", "completions"]);
        let embeddings_url = endpoint(&["embeddings"]);

        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            let hname = HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| {
                Error::config(format!(
                    "provider `{name}`: `{k}` is not a valid header name"
                ))
            })?;
            let mut value = HeaderValue::from_str(v.trim()).map_err(|_| {
                Error::config(format!(
                    "provider `{name}`: the value of header `{k}` is not valid"
                ))
            })?;
            value.set_sensitive(true);
            headers.append(hname, value);
        }
        if let Some(key) = &self.api_key {
            if key.expose().starts_with(SecretRef::PREFIX) {
                return Err(Error::config(format!(
                    "provider `{name}`: api_key is an unresolved secret reference; resolve it before building"
                )));
            }
            if headers.contains_key(header::AUTHORIZATION) {
                return Err(Error::config(format!(
                    "provider `{name}`: set either api_key or an `authorization` header, not both"
                )));
            }
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    Error::config(format!(
                        "provider `{name}`: api_key contains characters not allowed in a header"
                    ))
                })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );

        let transport = match self.transport {
            Some(t) => t,
            None => transport::from_client(reqwest::Client::builder().build().map_err(|e| {
                Error::config(format!(
                    "provider `{name}`: cannot build an HTTP client: {e}"
                ))
            })?),
        };
        Ok(OpenAiCompatible {
            shared: Arc::new(Shared {
                name,
                base_url,
                chat_url,
                embeddings_url,
                headers,
                api_key: self.api_key.filter(|k| !k.expose().is_empty()),
                region: self.region,
                models: self.models,
                timeout: self.timeout,
                transport,
            }),
        })
    }
}

impl fmt::Debug for OpenAiCompatibleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatibleBuilder")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
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
            .field("name", &s.name)
            .field("base_url", &url.as_str())
            .field("api_key", &s.api_key)
            .field("region", &s.region)
            .field("models", &s.models)
            .field(
                "headers",
                &s.headers
                    .keys()
                    .filter(|k| *k != header::CONTENT_TYPE)
                    .map(HeaderName::as_str)
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &s.timeout)
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
        OpenAiCompatibleBuilder {
            name: name.into(),
            base_url: base_url.into(),
            api_key: None,
            transport: None,
            region: None,
            models: Vec::new(),
            headers: Vec::new(),
            timeout: None,
        }
    }

    /// Builds the provider instance `name` from its registry configuration, sending through
    /// `client` (the host's) or, when `None`, a fresh client.
    pub fn from_config(
        name: impl Into<String>,
        cfg: OpenAiConfig,
        client: Option<reqwest::Client>,
    ) -> Result<Self, Error> {
        let mut b = Self::builder(name, cfg.base_url).models(cfg.models);
        if let Some(key) = cfg.api_key {
            b = b.api_key(key);
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

    fn request(&self, url: &Url, body: Vec<u8>, stream: bool) -> reqwest::Request {
        let mut req = reqwest::Request::new(Method::POST, url.clone());
        let headers = req.headers_mut();
        headers.clone_from(&self.shared.headers);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        *req.body_mut() = Some(body.into());
        req
    }

    /// Sends, then reads the body when the status is not a success (turned into an [`Error`]).
    async fn send_checked(&self, req: reqwest::Request) -> Result<reqwest::Response, Error> {
        let s = &self.shared;
        let resp = transport::send(&s.name, &s.transport, req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(s.status_error(resp).await)
    }

    async fn read_body(&self, resp: reqwest::Response) -> Result<Bytes, Error> {
        resp.bytes()
            .await
            .map_err(|e| transport::map_transport_error(&self.shared.name, e.into()))
    }

    async fn with_deadline<T>(
        &self,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match self.shared.timeout {
            None => fut.await,
            Some(d) => tokio::time::timeout(d, fut)
                .await
                .unwrap_or_else(|_| Err(self.shared.timeout_error(d))),
        }
    }

    async fn complete(&self, req: ChatRequest, body: Vec<u8>) -> Result<ChatResponse, Error> {
        let started = Instant::now();
        let http_req = self.request(&self.shared.chat_url, body, false);
        let bytes = self
            .with_deadline(async {
                let resp = self.send_checked(http_req).await?;
                self.read_body(resp).await
            })
            .await?;
        let latency = started.elapsed();
        let completion: Completion = match serde_json::from_slice::<WireCompletion>(&bytes) {
            Ok(w) => w.into(),
            Err(e) => return Err(self.shared.malformed("a chat completion", &bytes, &e)),
        };
        let model = if completion.model.is_empty() {
            req.model
        } else {
            completion.model.clone()
        };
        let mut meta = ResponseMeta::new(self.shared.name.clone(), model);
        meta.provider_latency = Some(latency);
        Ok(ChatResponse::complete(meta, completion))
    }

    async fn stream(&self, req: ChatRequest, body: Vec<u8>) -> Result<ChatResponse, Error> {
        let started = Instant::now();
        let http_req = self.request(&self.shared.chat_url, body, true);
        let resp = self.with_deadline(self.send_checked(http_req)).await?;
        let mut meta = ResponseMeta::new(self.shared.name.clone(), req.model);
        meta.provider_latency = Some(started.elapsed());
        let is_json = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
        if is_json {
            // The server ignored `stream: true` and answered at once: pass the answer on as a
            // one-chunk stream rather than failing a request that succeeded.
            let bytes = self.with_deadline(self.read_body(resp)).await?;
            let completion: Completion = serde_json::from_slice::<WireCompletion>(&bytes)
                .map_err(|e| self.shared.malformed("a chat completion", &bytes, &e))?
                .into();
            let chunk = wire::completion_to_chunk(completion);
            return Ok(ChatResponse::stream(
                meta,
                Box::pin(futures_util::stream::iter([Ok(chunk)])),
            ));
        }
        let stream = SseChunks {
            shared: Arc::clone(&self.shared),
            body: Box::pin(resp.bytes_stream()),
            parser: SseParser::new(),
            eof: false,
            finished: false,
        };
        Ok(ChatResponse::stream(meta, stream.into_stream()))
    }
}

/// The request body: the [`ChatRequest`] as OpenAI JSON, plus `stream_options` for streams
/// (so the last chunk carries usage) unless the caller chose their own.
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
        &self.shared.name
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
        let stream_options = (req.stream && !req.extra.contains_key("stream_options"))
            .then(|| serde_json::json!({ "include_usage": true }));
        let body = serde_json::to_vec(&WireChatRequest {
            req: &req,
            stream_options,
        })
        .map_err(|e| Error::internal(format!("cannot serialize the chat request: {e}")))?;
        if req.stream {
            self.stream(req, body).await
        } else {
            self.complete(req, body).await
        }
    }

    async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        let body = serde_json::to_vec(&req)
            .map_err(|e| Error::internal(format!("cannot serialize the embedding request: {e}")))?;
        let http_req = self.request(&self.shared.embeddings_url, body, false);
        let bytes = self
            .with_deadline(async {
                let resp = self.send_checked(http_req).await?;
                self.read_body(resp).await
            })
            .await?;
        let wire: WireEmbeddings = serde_json::from_slice(&bytes)
            .map_err(|e| self.shared.malformed("an embeddings response", &bytes, &e))?;
        let n = wire.data.len();
        if n != req.input.len() {
            return Err(Error::provider(format!(
                "provider `{}` returned {n} embeddings for {} inputs",
                self.shared.name,
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
                        self.shared.name
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

/// Error bodies are read up to this size; the rest is not worth holding.
const MAX_ERROR_BODY: usize = 64 * 1024;

impl Shared {
    /// Removes the API key from text that came from upstream (some servers echo it).
    fn redact(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) => text.replace(key.expose(), "***"),
            None => text.to_owned(),
        }
    }

    fn timeout_error(&self, d: Duration) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "provider `{}` did not answer within {} ms",
                self.name,
                d.as_millis()
            ),
        )
    }

    /// A `2xx` body of the wrong shape: an upstream `error` object if there is one, else a
    /// clear "not a ..." error with the parse failure.
    fn malformed(&self, what: &str, body: &[u8], err: &serde_json::Error) -> Error {
        if let Some(msg) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(wire::error_message))
        {
            return Error::provider(format!(
                "provider `{}` returned an error: {}",
                self.name,
                self.redact(&msg)
            ));
        }
        let mut msg = format!(
            "provider `{}` returned a body that is not {what}: {err}",
            self.name
        );
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
            // Not JSON at all (an HTML error page from a proxy?): show its start.
            msg.push_str("; body starts with: ");
            msg.push_str(&self.redact(&snippet(body)));
        }
        Error::provider(msg)
    }

    /// Turns a non-success response into an [`Error`].
    async fn status_error(&self, resp: reqwest::Response) -> Error {
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = read_capped(resp, MAX_ERROR_BODY).await;
        let upstream = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            v.get("error")
                .and_then(wire::error_message)
                .or_else(|| v.get("message").and_then(wire::error_message))
                .or_else(|| v.get("detail").and_then(wire::error_message))
        });
        let quota = upstream
            .as_deref()
            .is_some_and(|m| m.contains("insufficient_quota"));
        let detail = match upstream {
            Some(m) => self.redact(&m),
            None if body.is_empty() => status.canonical_reason().unwrap_or("no body").to_owned(),
            None => self.redact(&snippet(&body)),
        };
        let name = &self.name;
        let code = status.as_u16();
        let err = match status {
            StatusCode::TOO_MANY_REQUESTS => {
                // An exhausted quota (OpenAI's `insufficient_quota`) does not come back by waiting.
                Error::new(
                    ErrorKind::RateLimited,
                    format!("provider `{name}` is rate limiting (429): {detail}"),
                )
                .with_retryable(!quota)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if self.api_key.is_some() => {
                Error::provider(format!(
                    "provider `{name}` rejected the API key ({code}): {detail}"
                ))
                .with_retryable(false)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::provider(format!(
                "provider `{name}` refused the request ({code}) and no API key is configured: {detail}"
            ))
            .with_retryable(false),
            StatusCode::REQUEST_TIMEOUT => Error::new(
                ErrorKind::Timeout,
                format!("provider `{name}` timed out (408): {detail}"),
            ),
            s if s.is_server_error() => {
                Error::provider(format!("provider `{name}` failed ({code}): {detail}"))
                    .with_retryable(true)
            }
            _ => Error::provider(format!(
                "provider `{name}` refused the request ({code}): {detail}"
            ))
            .with_retryable(false),
        };
        let err = err.with_status(code);
        match retry_after {
            Some(d) => err.with_retry_after(d),
            None => err,
        }
    }
}

/// The first 200 characters of a body, lossily decoded.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(800)]);
    let mut out: String = text.trim().chars().take(200).collect();
    if text.trim().chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

async fn read_capped(resp: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        let room = cap - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    out
}

/// `retry-after-ms` (OpenAI), else `retry-after` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Duration::try_from_secs_f64(ms / 1000.0).ok();
        }
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Turns an SSE body into [`ChatChunk`]s.
struct SseChunks {
    shared: Arc<Shared>,
    body: ByteStream,
    parser: SseParser,
    eof: bool,
    finished: bool,
}

enum Step {
    Skip,
    Done,
    Item(Result<ChatChunk, Error>),
}

impl SseChunks {
    fn into_stream(self) -> ChatStream {
        Box::pin(futures_util::stream::unfold(self, |mut st| async move {
            let item = st.next_item().await?;
            Some((item, st))
        }))
    }

    async fn next_item(&mut self) -> Option<Result<ChatChunk, Error>> {
        if self.finished {
            return None;
        }
        loop {
            if let Some(event) = self.parser.next_event() {
                let step = match event {
                    Ok(event) => self.on_event(event),
                    Err(e) => Step::Item(Err(Error::provider(format!(
                        "provider `{}` sent a broken event stream: {e}",
                        self.shared.name
                    )))),
                };
                match step {
                    Step::Skip => continue,
                    Step::Done => {
                        self.finished = true;
                        return None;
                    }
                    Step::Item(item) => {
                        self.finished = item.is_err();
                        return Some(item);
                    }
                }
            }
            if self.eof {
                self.finished = true;
                return Some(Err(Error::provider(format!(
                    "provider `{}`: stream ended before [DONE]",
                    self.shared.name
                ))
                .with_retryable(true)));
            }
            let next = match self.shared.timeout {
                None => self.body.next().await,
                Some(d) => match tokio::time::timeout(d, self.body.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.finished = true;
                        return Some(Err(self.shared.timeout_error(d)));
                    }
                },
            };
            match next {
                Some(Ok(bytes)) => self.parser.feed(&bytes),
                Some(Err(e)) => {
                    self.finished = true;
                    return Some(Err(transport::map_transport_error(
                        &self.shared.name,
                        e.into(),
                    )));
                }
                None => {
                    self.eof = true;
                    self.parser.finish();
                }
            }
        }
    }

    fn on_event(&self, event: SseEvent) -> Step {
        let name = &self.shared.name;
        let data = event.data.trim();
        if data == "[DONE]" {
            return Step::Done;
        }
        if data.is_empty() {
            return Step::Skip;
        }
        let is_error_event = event.event.as_deref() == Some("error");
        let upstream_error = match serde_json::from_str::<WireChunk>(data) {
            Ok(chunk) if chunk.error.is_none() && !is_error_event => {
                return Step::Item(Ok(chunk.into()));
            }
            Ok(chunk) => chunk
                .error
                .as_ref()
                .and_then(wire::error_message)
                .unwrap_or_else(|| data.to_owned()),
            Err(_) if is_error_event => data.to_owned(),
            Err(e) => {
                return Step::Item(Err(Error::provider(format!(
                    "provider `{name}` sent a stream event that is not a chat completion chunk: {e}"
                ))));
            }
        };
        Step::Item(Err(Error::provider(format!(
            "provider `{name}` reported an error mid-stream: {}",
            self.shared.redact(&upstream_error)
        ))))
    }
}
