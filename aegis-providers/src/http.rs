//! HTTP plumbing shared by every provider: sending through the [`Transport`], deadlines,
//! and turning upstream failures (statuses, error bodies, bodies of the wrong shape) into
//! typed [`Error`]s that name the provider and never carry a secret.

// With some native providers compiled out, helpers only they use are unused.
#![cfg_attr(
    not(all(
        feature = "anthropic",
        feature = "gemini",
        feature = "bedrock",
        feature = "azure"
    )),
    allow(dead_code, unused_macros, unused_imports)
)]

use std::{
    future::Future,
    time::{Duration, SystemTime},
};

use aegis_contracts::{Error, ErrorKind, Secret};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;

use crate::{
    transport::{self, Transport},
    wire,
};

/// Error bodies are read up to this size; the rest is not worth holding.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What every provider instance shares: its name, its transport, its deadline and the
/// secrets that must never leave it.
pub(crate) struct HttpCore {
    pub(crate) name: String,
    pub(crate) transport: Transport,
    pub(crate) timeout: Option<Duration>,
    /// Credentials stripped from any upstream text we quote (some servers echo them).
    secrets: Vec<Secret>,
    /// Whether a credential is configured (a 401 then means "rejected", else "missing").
    has_credentials: bool,
}

impl HttpCore {
    pub(crate) fn new(
        name: String,
        transport: Transport,
        timeout: Option<Duration>,
        secrets: Vec<Secret>,
        has_credentials: bool,
    ) -> Self {
        Self {
            name,
            transport,
            timeout,
            // Redacting a very short "secret" (test keys like `k`) would mangle every message
            // that happens to contain those letters; real credentials are long.
            secrets: secrets
                .into_iter()
                .filter(|s| s.expose().len() >= 8)
                .collect(),
            has_credentials,
        }
    }

    /// The default transport: a fresh `reqwest::Client`.
    pub(crate) fn default_transport(name: &str) -> Result<Transport, Error> {
        Ok(transport::from_client(
            reqwest::Client::builder().build().map_err(|e| {
                Error::config(format!(
                    "provider `{name}`: cannot build an HTTP client: {e}"
                ))
            })?,
        ))
    }

    /// Removes configured secrets from text that came from upstream.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.expose()) {
                out = out.replace(s.expose(), "***");
            }
        }
        out
    }

    pub(crate) fn timeout_error(&self, d: Duration) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "provider `{}` did not answer within {} ms",
                self.name,
                d.as_millis()
            ),
        )
    }

    /// Runs `fut` under the configured deadline.
    pub(crate) async fn with_deadline<T>(
        &self,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match self.timeout {
            None => fut.await,
            Some(d) => tokio::time::timeout(d, fut)
                .await
                .unwrap_or_else(|_| Err(self.timeout_error(d))),
        }
    }

    /// Sends, then reads the body when the status is not a success (turned into an [`Error`]).
    pub(crate) async fn send_checked(
        &self,
        req: reqwest::Request,
    ) -> Result<reqwest::Response, Error> {
        let resp = transport::send(&self.name, &self.transport, req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.status_error(resp).await)
    }

    pub(crate) async fn read_body(&self, resp: reqwest::Response) -> Result<Bytes, Error> {
        resp.bytes()
            .await
            .map_err(|e| transport::map_transport_error(&self.name, e.into()))
    }

    /// Sends `req` and reads the whole successful body, all under the deadline.
    pub(crate) async fn send_for_body(&self, req: reqwest::Request) -> Result<Bytes, Error> {
        self.with_deadline(async {
            let resp = self.send_checked(req).await?;
            self.read_body(resp).await
        })
        .await
    }

    /// A `2xx` body of the wrong shape: an upstream `error` object if there is one, else a
    /// clear "not a ..." error with the parse failure.
    pub(crate) fn malformed(&self, what: &str, body: &[u8], err: &dyn std::fmt::Display) -> Error {
        if let Some(msg) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| upstream_message(&v))
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

    /// An error reported inside a stream, typed by the upstream's error type where it says
    /// (`overloaded_error`, `rate_limit_error`, `throttlingException`, ...).
    pub(crate) fn stream_error(&self, kind_hint: Option<&str>, message: &str) -> Error {
        let name = &self.name;
        let hint = kind_hint.unwrap_or("").to_ascii_lowercase();
        let text = self.redact(message);
        if hint.contains("rate_limit") || hint.contains("throttl") {
            Error::new(
                ErrorKind::RateLimited,
                format!("provider `{name}` is rate limiting (mid-stream): {text}"),
            )
        } else if hint.contains("overloaded")
            || hint.contains("internal")
            || hint.contains("unavailable")
            || hint.contains("api_error")
        {
            Error::provider(format!(
                "provider `{name}` reported an error mid-stream: {text}"
            ))
            .with_retryable(true)
        } else if hint.contains("timeout") {
            Error::new(
                ErrorKind::Timeout,
                format!("provider `{name}` timed out mid-stream: {text}"),
            )
        } else {
            Error::provider(format!(
                "provider `{name}` reported an error mid-stream: {text}"
            ))
        }
    }

    /// Turns a non-success response into an [`Error`].
    ///
    /// `429` is [`ErrorKind::RateLimited`] (not retryable when the quota is exhausted);
    /// `5xx` (Anthropic's `529` included) is a retryable [`ErrorKind::Provider`]; `408` is
    /// [`ErrorKind::Timeout`]; other `4xx` are the request's fault: non-retryable
    /// [`ErrorKind::InvalidRequest`] keeping the upstream status and code. The upstream's message is read
    /// from any of the error-body shapes providers use.
    pub(crate) async fn status_error(&self, resp: reqwest::Response) -> Error {
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        // AWS names the error in a header (`ThrottlingException:http://...`).
        let aws_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_owned());
        let body = read_capped(resp, MAX_ERROR_BODY).await;
        let parsed = serde_json::from_slice::<Value>(&body).ok();
        let upstream = parsed.as_ref().and_then(upstream_message);
        let upstream_code = parsed.as_ref().and_then(upstream_code);
        let quota = upstream.as_deref().is_some_and(|m| {
            m.contains("insufficient_quota")
                || m.contains("RESOURCE_EXHAUSTED") && m.contains("quota")
        });
        let mut detail = match upstream {
            Some(m) => self.redact(&m),
            None if body.is_empty() => status.canonical_reason().unwrap_or("no body").to_owned(),
            None => self.redact(&snippet(&body)),
        };
        if let Some(t) = aws_type.filter(|t| !t.is_empty() && !detail.contains(t.as_str())) {
            detail = format!("{detail} ({t})");
        }
        let name = &self.name;
        let code = status.as_u16();
        let err = match status {
            StatusCode::TOO_MANY_REQUESTS => {
                // An exhausted quota does not come back by waiting.
                Error::new(
                    ErrorKind::RateLimited,
                    format!("provider `{name}` is rate limiting (429): {detail}"),
                )
                .with_retryable(!quota)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if self.has_credentials => {
                Error::provider(format!(
                    "provider `{name}` rejected the API key or credentials ({code}): {detail}"
                ))
                .with_retryable(false)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::provider(format!(
                "provider `{name}` refused the request ({code}) and no API key is configured: {detail}"
            ))
            .with_retryable(false),
            // Proxy authentication is the gateway's own configuration, not the caller's fault.
            StatusCode::PROXY_AUTHENTICATION_REQUIRED => Error::provider(format!(
                "provider `{name}`: a proxy between Aegis and the provider refused its credentials (407): {detail}"
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
            // Any other 4xx is the request's fault (context too long, a content filter, an
            // invalid parameter): the client gets it with its status and the upstream's code,
            // so an SDK does not re-send (and re-bill) a request that cannot succeed.
            _ => {
                let err = Error::new(
                    ErrorKind::InvalidRequest,
                    format!("provider `{name}` refused the request ({code}): {detail}"),
                )
                .with_retryable(false);
                match upstream_code {
                    Some(c) => err.with_code(c),
                    None => err,
                }
            }
        };
        let err = err.with_status(code);
        match retry_after {
            Some(d) => err.with_retry_after(d),
            None => err,
        }
    }
}

/// The upstream's machine code (`context_length_exceeded`, `content_filter`, ...), when its
/// error body names one as a string: `error.code`, else `error.type` / `error.status`.
fn upstream_code(v: &Value) -> Option<String> {
    if let Value::Array(items) = v {
        return items.first().and_then(upstream_code);
    }
    let error = v.get("error")?;
    ["code", "type", "status"].iter().find_map(|k| {
        error
            .get(*k)
            .and_then(Value::as_str)
            .filter(|c| {
                !c.is_empty()
                    && c.len() <= 64
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
            })
            .map(str::to_owned)
    })
}

/// The upstream's own words from any error body shape we know: OpenAI/Anthropic/Gemini
/// `{"error": {...}}`, AWS `{"message": ...}` / `{"Message": ...}`, FastAPI `{"detail": ...}`,
/// and Gemini's streaming `[{"error": {...}}]`.
pub(crate) fn upstream_message(v: &Value) -> Option<String> {
    if let Value::Array(items) = v {
        return items.first().and_then(upstream_message);
    }
    v.get("error")
        .and_then(wire::error_message)
        .or_else(|| v.get("message").and_then(wire::error_message))
        .or_else(|| v.get("Message").and_then(wire::error_message))
        .or_else(|| v.get("detail").and_then(wire::error_message))
}

/// The first 200 characters of a body, lossily decoded.
pub(crate) fn snippet(body: &[u8]) -> String {
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
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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

/// A sensitive header value, or a [`ErrorKind::Config`] error naming the provider.
pub(crate) fn sensitive_header(
    provider: &str,
    what: &str,
    value: &str,
) -> Result<HeaderValue, Error> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        Error::config(format!(
            "provider `{provider}`: {what} contains characters not allowed in a header"
        ))
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Refuses a credential that is still a `secret://` reference.
pub(crate) fn check_resolved(provider: &str, what: &str, secret: &Secret) -> Result<(), Error> {
    if secret
        .expose()
        .starts_with(aegis_contracts::SecretRef::PREFIX)
    {
        return Err(Error::config(format!(
            "provider `{provider}`: {what} is an unresolved secret reference; resolve it before building"
        )));
    }
    Ok(())
}

/// A JSON POST to `url` with `headers`, accepting JSON or an event stream.
pub(crate) fn post_json(
    url: reqwest::Url,
    headers: &HeaderMap,
    body: Vec<u8>,
    stream: bool,
) -> reqwest::Request {
    let mut req = reqwest::Request::new(reqwest::Method::POST, url);
    let h = req.headers_mut();
    h.clone_from(headers);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
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

/// Parses an absolute `http(s)` base URL or returns a [`ErrorKind::Config`] error.
pub(crate) fn parse_base_url(provider: &str, base_url: &str) -> Result<reqwest::Url, Error> {
    let url = reqwest::Url::parse(base_url.trim()).map_err(|e| {
        Error::config(format!(
            "provider `{provider}`: base_url `{base_url}` is not a URL: {e}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::config(format!(
            "provider `{provider}`: base_url `{base_url}` must be an http:// or https:// URL"
        )));
    }
    Ok(url)
}

/// `base` with `segments` appended to its path (each segment percent-encoded as needed);
/// the query is kept.
pub(crate) fn join_path(base: &reqwest::Url, segments: &[&str]) -> reqwest::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Whether a response is plain JSON (a server that ignored `stream: true`).
pub(crate) fn is_json(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_message_reads_every_known_error_shape() {
        let cases = [
            (
                json!({"error": {"message": "m1", "type": "t"}}),
                "m1 (code: t)",
            ),
            (
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                "Overloaded (code: overloaded_error)",
            ),
            (
                json!({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}),
                "bad (code: INVALID_ARGUMENT)",
            ),
            (json!({"message": "aws says no"}), "aws says no"),
            (json!({"Message": "AWS SAYS NO"}), "AWS SAYS NO"),
            (json!({"detail": "fastapi"}), "fastapi"),
            (json!([{"error": {"message": "in array"}}]), "in array"),
        ];
        for (v, want) in cases {
            assert_eq!(upstream_message(&v).as_deref(), Some(want), "{v}");
        }
        assert_eq!(upstream_message(&json!({"unexpected": true})), None);
    }

    #[test]
    fn stream_errors_are_typed_by_their_hint() {
        let core = HttpCore::new(
            "p".into(),
            crate::transport::from_client(reqwest::Client::new()),
            None,
            vec![Secret::new("sk-1-long-enough")],
            true,
        );
        assert_eq!(
            core.stream_error(Some("rate_limit_error"), "x").kind(),
            ErrorKind::RateLimited
        );
        let e = core.stream_error(Some("overloaded_error"), "has sk-1-long-enough inside");
        assert!(e.is_retryable());
        assert!(!e.message().contains("sk-1-long"), "{e}");
        assert!(
            !core
                .stream_error(Some("invalid_request_error"), "x")
                .is_retryable()
        );
    }
}

/// Options every native provider builder shares.
#[derive(Default)]
pub(crate) struct Common {
    pub(crate) transport: Option<Transport>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) region: Option<String>,
    pub(crate) models: Vec<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Common {
    /// Applies the registry fields every native config has.
    pub(crate) fn from_config(
        region: Option<String>,
        models: Vec<String>,
        timeout_ms: Option<u64>,
        headers: std::collections::BTreeMap<String, String>,
        client: Option<reqwest::Client>,
    ) -> Self {
        Self {
            transport: client.map(transport::from_client),
            timeout: timeout_ms.map(Duration::from_millis),
            region,
            models,
            headers: headers.into_iter().collect(),
        }
    }

    /// The configured extra headers, as sensitive values.
    pub(crate) fn header_map(&self, provider: &str) -> Result<HeaderMap, Error> {
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            let hname = http::HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| {
                Error::config(format!(
                    "provider `{provider}`: `{k}` is not a valid header name"
                ))
            })?;
            headers.append(
                hname,
                sensitive_header(provider, &format!("the value of header `{k}`"), v.trim())?,
            );
        }
        Ok(headers)
    }

    pub(crate) fn take_transport(&mut self, provider: &str) -> Result<Transport, Error> {
        match self.transport.take() {
            Some(t) => Ok(t),
            None => HttpCore::default_transport(provider),
        }
    }
}

/// The builder methods every native provider shares (`client`, `transport`, `region`,
/// `models`, `header`, `timeout`), forwarding to a `common: Common` field.
macro_rules! common_builder_methods {
    () => {
        /// Sends through the host's own client (pool, proxies, TLS settings). The default is
        /// a fresh `reqwest::Client`.
        pub fn client(mut self, client: reqwest::Client) -> Self {
            self.common.transport = Some($crate::transport::from_client(client));
            self
        }

        /// Sends through any transport, e.g. a tower stack over a client
        /// ([`transport::from_service`](crate::transport::from_service)).
        pub fn transport(mut self, transport: $crate::Transport) -> Self {
            self.common.transport = Some(transport);
            self
        }

        /// The region the backend processes data in, for residency policy.
        pub fn region(mut self, region: impl Into<String>) -> Self {
            self.common.region = Some(region.into());
            self
        }

        /// The models the backend serves; empty (the default) means whatever is asked.
        pub fn models<I, S>(mut self, models: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            self.common.models = models.into_iter().map(Into::into).collect();
            self
        }

        /// An extra header sent with every request. Its value is treated as sensitive.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.common.headers.push((name.into(), value.into()));
            self
        }

        /// Deadline for a complete answer; for streams, the deadline for the response
        /// headers and the longest silence allowed between two chunks.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.timeout = Some(timeout);
            self
        }
    };
}
pub(crate) use common_builder_methods;
