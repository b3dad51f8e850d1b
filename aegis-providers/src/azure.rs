//! [`AzureOpenAi`]: Azure OpenAI deployments — `{endpoint}/openai/deployments/{deployment}/…`
//! with an `api-version` query, authenticated with the `api-key` header or an Entra ID
//! bearer token — over the OpenAI-compatible code path (same translation, errors, streaming).
//!
//! ```
//! use aegis_contracts::Secret;
//! use aegis_providers::AzureOpenAi;
//! let azure = AzureOpenAi::builder("azure", "https://my-resource.openai.azure.com")
//!     .api_key(Secret::new("azure-key"))
//!     .deployment("gpt-4o", "prod-gpt4o")
//!     .build()?;
//! assert_eq!(
//!     azure.chat_url("gpt-4o").as_str(),
//!     "https://my-resource.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21"
//! );
//! # Ok::<(), aegis_contracts::Error>(())
//! ```

use std::{collections::BTreeMap, fmt, sync::Arc};

use aegis_contracts::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Error, Provider,
    ProviderCapabilities, Secret, async_trait,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{
    OpenAiCompatible, TokenSource,
    http::{self as h, Common, common_builder_methods},
};

/// The `api-version` used unless configured (the current GA version).
pub const AZURE_API_VERSION: &str = "2024-10-21";

/// Configuration of an [`AzureOpenAi`] provider, as it appears in the plugin registry.
///
/// ```
/// use aegis_providers::AzureConfig;
/// let cfg: AzureConfig = serde_json::from_value(serde_json::json!({
///     "endpoint": "https://my-resource.openai.azure.com",
///     "api_key": "secret://env/AZURE_OPENAI_API_KEY",
///     "deployments": { "gpt-4o": "prod-gpt4o" },
///     "region": "swedencentral"
/// })).unwrap();
/// assert_eq!(cfg.deployments["gpt-4o"], "prod-gpt4o");
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AzureConfig {
    /// The resource endpoint, `https://RESOURCE.openai.azure.com`.
    pub endpoint: String,
    /// `api-version` query parameter; default `2024-10-21`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Key auth: sent in the `api-key` header.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Entra ID auth with a token obtained elsewhere, sent as `Authorization: Bearer`.
    /// (Hosts that refresh tokens use [`AzureOpenAiBuilder::token_source`].)
    #[serde(default)]
    pub entra_token: Option<Secret>,
    /// Model name → deployment name; a model not listed is used as the deployment name.
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
    /// Region of the resource (`swedencentral`), for residency policy.
    #[serde(default)]
    pub region: Option<String>,
    /// Models this resource serves; empty means whatever is asked.
    #[serde(default)]
    pub models: Vec<String>,
    /// Deadline in milliseconds (complete answer; stream headers and silences).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Extra headers sent with every request; values are sensitive.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Azure OpenAI. Cheap to clone; `Debug` never shows keys or tokens.
#[derive(Clone)]
pub struct AzureOpenAi {
    inner: OpenAiCompatible,
}

impl fmt::Debug for AzureOpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AzureOpenAi").field(&self.inner).finish()
    }
}

/// Builds an [`AzureOpenAi`]; see [`AzureOpenAi::builder`].
#[must_use]
pub struct AzureOpenAiBuilder {
    name: String,
    endpoint: String,
    api_version: String,
    api_key: Option<Secret>,
    entra_token: Option<Secret>,
    token_source: Option<Arc<dyn TokenSource>>,
    deployments: BTreeMap<String, String>,
    common: Common,
}

impl AzureOpenAiBuilder {
    /// Key auth (`api-key` header).
    pub fn api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Entra ID auth with a fixed token (`Authorization: Bearer`).
    pub fn entra_token(mut self, token: Secret) -> Self {
        self.entra_token = Some(token);
        self
    }

    /// Entra ID auth with a token fetched per request (cached and refreshed by the source).
    pub fn token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.token_source = Some(source);
        self
    }

    /// The `api-version` query parameter.
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// Requests for `model` go to deployment `deployment`.
    pub fn deployment(mut self, model: impl Into<String>, deployment: impl Into<String>) -> Self {
        self.deployments.insert(model.into(), deployment.into());
        self
    }

    common_builder_methods!();

    /// Builds the provider. Exactly one auth method may be set (none is allowed for
    /// gateways in front of Azure that add their own).
    pub fn build(mut self) -> Result<AzureOpenAi, Error> {
        let name = self.name.clone();
        let auths = usize::from(self.api_key.is_some())
            + usize::from(self.entra_token.is_some())
            + usize::from(self.token_source.is_some());
        if auths > 1 {
            return Err(Error::config(format!(
                "provider `{name}`: set one of api_key, entra_token or a token source, not several"
            )));
        }
        let endpoint = h::parse_base_url(&name, &self.endpoint)?;
        let mut base = h::join_path(&endpoint, &["openai", "deployments"]);
        base.query_pairs_mut()
            .clear()
            .append_pair("api-version", &self.api_version);
        let mut b = OpenAiCompatible::builder(name.clone(), base.as_str())
            .deployments(self.deployments)
            .transport(self.common.take_transport(&name)?)
            .models(std::mem::take(&mut self.common.models));
        if let Some(key) = self.api_key {
            b = b.api_key(key).api_key_header("api-key");
        }
        if let Some(token) = self.entra_token {
            b = b.api_key(token);
        }
        if let Some(source) = self.token_source {
            b = b.token_source(source);
        }
        if let Some(r) = self.common.region {
            b = b.region(r);
        }
        if let Some(t) = self.common.timeout {
            b = b.timeout(t);
        }
        for (k, v) in self.common.headers {
            b = b.header(k, v);
        }
        Ok(AzureOpenAi { inner: b.build()? })
    }
}

impl AzureOpenAi {
    /// Starts a builder for the instance `name` at resource `endpoint`
    /// (`https://RESOURCE.openai.azure.com`).
    pub fn builder(name: impl Into<String>, endpoint: impl Into<String>) -> AzureOpenAiBuilder {
        AzureOpenAiBuilder {
            name: name.into(),
            endpoint: endpoint.into(),
            api_version: AZURE_API_VERSION.to_owned(),
            api_key: None,
            entra_token: None,
            token_source: None,
            deployments: BTreeMap::new(),
            common: Common::default(),
        }
    }

    /// Builds the instance `name` from its registry configuration.
    pub fn from_config(
        name: impl Into<String>,
        cfg: AzureConfig,
        client: Option<reqwest::Client>,
    ) -> Result<Self, Error> {
        let mut b = Self::builder(name, cfg.endpoint);
        b.common = Common::from_config(cfg.region, cfg.models, cfg.timeout_ms, cfg.headers, client);
        b.deployments = cfg.deployments;
        if let Some(v) = cfg.api_version {
            b = b.api_version(v);
        }
        if let Some(k) = cfg.api_key {
            b = b.api_key(k);
        }
        if let Some(t) = cfg.entra_token {
            b = b.entra_token(t);
        }
        b.build()
    }

    /// The chat URL a request for `model` goes to.
    pub fn chat_url(&self, model: &str) -> reqwest::Url {
        self.inner.endpoint_url(model, "chat")
    }
}

#[async_trait]
impl Provider for AzureOpenAi {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> ProviderCapabilities {
        self.inner.capabilities()
    }

    fn region(&self) -> Option<&str> {
        self.inner.region()
    }

    fn models(&self) -> Vec<String> {
        self.inner.models()
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        self.inner.chat(req).await
    }

    async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        self.inner.embed(req).await
    }
}
