//! [`HttpProvider`]: a provider written as a service in any language, spoken to over
//! `aegis.provider.v1` — the provider half of extending the shipped binary without a rebuild.
//!
//! **The protocol.** One `POST` to the configured URL per model call, with the request as
//! an OpenAI chat-completions body (`model`, `messages`, `tools`, ... — the run's context,
//! credentials and Aegis's own options never included) and header `aegis-protocol:
//! aegis.provider.v1`; the answer is an OpenAI `chat.completion` object (usage in any of the
//! common shapes). A streamed request is sent with `"stream": false` and answered to the
//! caller as one chunk. A timeout, a non-2xx status or an answer that is not a completion
//! with choices is a provider error — the router's fallbacks and retries treat it like any
//! provider's. The gateway's OpenAPI document describes it under
//! `x-aegis-plugin-protocols`.

use std::time::Duration;

use aegis_contracts::{Error, Secret, async_trait};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::{HostProvider, PluginHost, http::Service};

/// The protocol's name and version, sent in every call's `aegis-protocol` header.
pub const PROVIDER_PROTOCOL: &str = "aegis.provider.v1";

/// Config of [`HttpProvider`].
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpProviderConfig {
    /// Where calls go (`http://models.internal:9000/chat`).
    pub url: String,
    /// Bearer token the service expects (`secret://env/MODEL_TOKEN`); only sent over https
    /// or to a loopback address.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Deadline of one call in milliseconds (default 120000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    120_000
}

/// The service behind an [`HttpProvider`].
pub struct HttpHost {
    service: Service,
}

#[async_trait]
impl PluginHost for HttpHost {
    async fn call(&self, _method: &'static str, mut args: Vec<Value>) -> Result<Value, Error> {
        let mut body = args.pop().unwrap_or(Value::Null);
        // One answer per call: the adapter streams it to the caller as one chunk.
        if let Some(o) = body.as_object_mut() {
            o.insert("stream".into(), false.into());
            o.remove("stream_options");
        }
        self.service.post("", &body).await
    }
}

/// A provider delegating to a service that speaks [`PROVIDER_PROTOCOL`].
pub type HttpProvider = HostProvider<HttpHost>;

/// The provider `id` for the service in `config`.
pub fn http_provider(id: &str, config: HttpProviderConfig) -> Result<HttpProvider, Error> {
    let deadline = Duration::from_millis(config.timeout_ms.max(1));
    let service = Service::new(
        "the http provider service",
        &config.url,
        deadline,
        config.api_token,
    )?
    .exact_url()
    .with_header("aegis-protocol", PROVIDER_PROTOCOL);
    let who = format!("http provider `{id}`");
    // The client's own timeout bounds the call; the adapter's deadline is a second fence.
    Ok(HostProvider::new(id, who, HttpHost { service })
        .with_deadline(deadline + Duration::from_secs(1)))
}
