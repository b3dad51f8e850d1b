//! Providers for Aegis — OpenAI-compatible, native Anthropic, Gemini, Bedrock and Azure, and
//! an offline echo — all over the host's own reqwest client, plus routing between them and
//! hot swapping.
//!
//! - [`OpenAiCompatible`]: any server speaking OpenAI's `chat/completions` and `embeddings`,
//!   sending through the host's [`reqwest::Client`] or any tower stack over it
//!   ([`transport`]). Well-known services (OpenAI, LiteLLM, vLLM, Ollama, Groq, Mistral,
//!   DeepSeek, OpenRouter, Together, Fireworks, Azure v1) are [`Preset`]s of it.
//! - Native providers, each behind a cargo feature (all on by default):
//!   [`Anthropic`] (`anthropic`), [`Gemini`] (`gemini`), [`Bedrock`] (`bedrock`: SigV4 and
//!   the event-stream framing, implemented here), [`AzureOpenAi`] (`azure`).
//! - [`routing::Router`]: a provider over deployments — aliases, weighted / least-latency /
//!   least-busy selection, fallbacks, retries with backoff, timeouts, circuit breakers and a
//!   residency filter; also a tower layer ([`routing::RouteLayer`]).
//! - [`Reloadable`]: swaps a provider or router atomically while requests are in flight.
//! - [`Echo`]: **the offline development provider**. It needs no network and no API key, so
//!   examples, quickstarts and tests run anywhere.
//!
//! Every provider shares one HTTP path: the same transport, the same error mapping (`429` →
//! rate limited with `retry_after`, `5xx` → retryable, upstream messages quoted with secrets
//! removed, provider named), and the same streaming engine (a stream that fails or ends
//! without its terminator ends with an `Err` item).
//!
//! # Offline, with [`Echo`]
//!
//! ```
//! use aegis_contracts::{ChatRequest, Message, Provider};
//! use aegis_providers::Echo;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), aegis_contracts::Error> {
//! let provider = Echo::new("echo");
//! let answer = provider
//!     .chat(ChatRequest::new("any-model", vec![Message::user("hello there")]))
//!     .await?
//!     .collect()
//!     .await?;
//! assert_eq!(answer.message().unwrap().text(), "echo: hello there");
//! # Ok(()) }
//! ```
//!
//! # Wrap your reqwest client
//!
//! ```no_run
//! use aegis_contracts::{ChatRequest, Message, Provider, Secret};
//! use aegis_providers::OpenAiCompatible;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), aegis_contracts::Error> {
//! let provider = OpenAiCompatible::builder("openai", "https://api.openai.com/v1")
//!     .api_key(Secret::new(std::env::var("OPENAI_API_KEY").unwrap_or_default()))
//!     .client(reqwest::Client::new())
//!     .build()?;
//! let answer = provider
//!     .chat(ChatRequest::new("gpt-4o-mini", vec![Message::user("Say hi")]))
//!     .await?
//!     .collect()
//!     .await?;
//! println!("{}", answer.message().map(|m| m.text()).unwrap_or_default());
//! # Ok(()) }
//! ```
//!
//! Timeouts and concurrency limits are tower layers over the same client:
//!
//! ```
//! use std::time::Duration;
//! use aegis_contracts::Secret;
//! use aegis_providers::{OpenAiCompatible, transport};
//! use tower::ServiceBuilder;
//!
//! let stack = ServiceBuilder::new()
//!     .timeout(Duration::from_secs(60))
//!     .concurrency_limit(32)
//!     .service(reqwest::Client::new());
//! let provider = OpenAiCompatible::builder("local", "http://127.0.0.1:8000/v1")
//!     .api_key(Secret::new("sk-local"))
//!     .transport(transport::from_service(stack))
//!     .build()?;
//! assert!(!format!("{provider:?}").contains("sk-local"));
//! # Ok::<(), aegis_contracts::Error>(())
//! ```
#![forbid(unsafe_code)]

#[cfg(feature = "anthropic")]
pub mod anthropic;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "bedrock")]
pub mod bedrock;
mod echo;
#[cfg(feature = "gemini")]
pub mod gemini;
mod http;
mod openai;
pub mod presets;
mod reload;
pub mod routing;
mod sse;
mod stream;
mod translate;
pub mod transport;
pub mod wire;

#[cfg(feature = "anthropic")]
pub use anthropic::{Anthropic, AnthropicBuilder, AnthropicConfig};
#[cfg(feature = "azure")]
pub use azure::{AzureConfig, AzureOpenAi, AzureOpenAiBuilder};
#[cfg(feature = "bedrock")]
pub use bedrock::{Bedrock, BedrockBuilder, BedrockConfig};
pub use echo::{Echo, EchoConfig};
#[cfg(feature = "gemini")]
pub use gemini::{Gemini, GeminiBuilder, GeminiConfig};
pub use openai::{OpenAiCompatible, OpenAiCompatibleBuilder, OpenAiConfig, TokenSource};
pub use presets::Preset;
pub use reload::Reloadable;
pub use transport::Transport;
