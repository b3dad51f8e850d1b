//! OpenAI-compatible and offline (echo) providers for Aegis, over the host's own reqwest client.
//!
//! - [`OpenAiCompatible`]: any server speaking OpenAI's `chat/completions` and `embeddings`,
//!   sending through the host's [`reqwest::Client`] or any tower stack over it
//!   ([`transport`]).
//! - [`Echo`]: **the offline development provider**. It needs no network and no API key, so
//!   examples, quickstarts and tests run anywhere.
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
mod echo;
mod http;
mod openai;
pub mod presets;
mod sse;
mod stream;
mod translate;
pub mod transport;
pub mod wire;

#[cfg(feature = "anthropic")]
pub use anthropic::{Anthropic, AnthropicBuilder, AnthropicConfig};
pub use echo::{Echo, EchoConfig};
pub use openai::{OpenAiCompatible, OpenAiCompatibleBuilder, OpenAiConfig, TokenSource};
pub use presets::Preset;
pub use transport::Transport;
