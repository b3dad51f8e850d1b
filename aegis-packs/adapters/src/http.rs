//! The HTTP plumbing both adapters share: one client, a deadline, errors that say which
//! service failed and how.

use std::time::Duration;

use aegis_contracts::{Error, ErrorKind, Secret};
use serde_json::Value;

/// A JSON-over-HTTP client for one service.
#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) base: reqwest::Url,
    pub(crate) client: reqwest::Client,
    pub(crate) token: Option<Secret>,
    /// Headers sent with every call.
    headers: Vec<(&'static str, &'static str)>,
}

impl Service {
    pub(crate) fn new(
        name: &'static str,
        base_url: &str,
        timeout: Duration,
        token: Option<Secret>,
    ) -> Result<Self, Error> {
        let mut base = reqwest::Url::parse(base_url)
            .map_err(|e| Error::config(format!("{name}: `{base_url}` is not a URL: {e}")))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if token.is_some() && base.scheme() == "http" && !is_loopback(&base) {
            return Err(Error::config(format!(
                "{name}: a token is never sent in clear text: use https:// for `{}`",
                base.host_str().unwrap_or_default()
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect would re-send the call (the conversation) wherever the service
            // points, or turn it into a GET of any URL: a 3xx is a failure.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::config(format!("{name}: cannot build an HTTP client: {e}")))?;
        Ok(Self {
            name,
            base,
            client,
            token,
            headers: Vec::new(),
        })
    }

    /// Calls go to the URL as given, not to paths below it.
    pub(crate) fn exact_url(mut self) -> Self {
        if self.base.path().len() > 1 && self.base.path().ends_with('/') {
            let path = self.base.path().trim_end_matches('/').to_owned();
            self.base.set_path(&path);
        }
        self
    }

    /// With a header on every call.
    pub(crate) fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// POSTs `body` to `path` and returns the JSON answer.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let url = self
            .base
            .join(path)
            .map_err(|e| Error::config(format!("{}: bad path `{path}`: {e}", self.name)))?;
        let mut req = self.client.post(url).json(body);
        for (name, value) in &self.headers {
            req = req.header(*name, *value);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req.send().await.map_err(|e| {
            transport_error(e, &format!("{} is unreachable or too slow", self.name))
                .with_retryable(true)
        })?;
        let status = resp.status();
        let text = read_bounded(resp, self.name).await?;
        if !status.is_success() {
            // The service's error body (a stack trace, say) goes to the log, not the caller.
            let snippet: String = text.chars().take(200).collect();
            tracing::debug!(service = self.name, %status, body = %snippet, "remote guard service error");
            return Err(
                Error::provider(format!("{} answered HTTP {status}", self.name))
                    .with_status(status.as_u16())
                    .with_retryable(status.is_server_error()),
            );
        }
        serde_json::from_str(&text).map_err(|e| {
            Error::provider(format!(
                "{} answered something that is not JSON: {e}",
                self.name
            ))
        })
    }
}

/// `what: {e}` as a `Timeout` or `Provider` error, without the URL (hosts, query strings
/// are configuration, not something a caller sees).
fn transport_error(e: reqwest::Error, what: &str) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Provider
    };
    Error::new(kind, format!("{what}: {}", e.without_url()))
}

/// The most of an answer read: a service answering more is broken (or hostile). Room for a
/// rewrite of the largest request the gateway takes (4 MiB), JSON-escaped.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// The body of `resp` as text, refused past [`MAX_ANSWER_BYTES`] without reading the rest.
async fn read_bounded(mut resp: reqwest::Response, name: &str) -> Result<String, Error> {
    let failed = |e| transport_error(e, &format!("{name} answer could not be read"));
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Error::provider(format!(
                "{name} answered more than {} MiB",
                MAX_ANSWER_BYTES >> 20
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Whether `url` names this machine (a token may go there over plain HTTP).
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback()),
        None => false,
    }
}

/// Byte offset of the `n`-th character of `s` (Presidio counts Python characters).
pub(crate) fn char_to_byte(s: &str, n: usize) -> Option<usize> {
    if n == s.chars().count() {
        return Some(s.len());
    }
    s.char_indices().nth(n).map(|(b, _)| b)
}
