//! # aegis-adapters
//!
//! Guardrails that delegate to services teams already run:
//!
//! * [`LlmGuard`] speaks the `llm_guard_api` HTTP API (`/analyze/prompt`,
//!   `/analyze/output`) and maps its answers onto the four verdicts: a scanner that rewrote
//!   the text and reports `is_valid = false` means **Sanitize**, not Block.
//! * [`Presidio`] speaks Presidio's analyzer (`/analyze`) and anonymizer (`/anonymize`) REST
//!   APIs: findings with byte spans, then blocking or anonymizing.
//! * [`HttpGuard`] (config type `http`) speaks Aegis's own guard protocol
//!   ([`GUARD_PROTOCOL`]) to a service written in any language: a guard plugin for the
//!   shipped binary, no rebuild needed.
//!
//! All are [`Cost::Expensive`](aegis_contracts::Cost), need the full text
//! ([`Granularity::FullText`](aegis_contracts::Granularity)), and turn a service that is down,
//! slow or answering nonsense into an `Err` — which the guard chain blocks on unless the
//! guard's policy says `fail_mode = "open"`.
//!
//! ```
//! use aegis_adapters::{LlmGuard, LlmGuardConfig};
//! use aegis_contracts::{Guardrail, Stage};
//! let guard = LlmGuard::new(LlmGuardConfig::new("http://llm-guard:8000")).unwrap();
//! assert!(guard.capabilities().applies_to(Stage::Input));
//! assert!(guard.capabilities().sanitizes);
//! ```
#![forbid(unsafe_code)]

mod foreign;
mod http;
mod http_provider;
mod joined;
mod llm_guard;
mod presidio;
mod remote;

pub use foreign::{
    DEFAULT_GUARD_STAGES, HostGuard, HostProvider, PROVIDER_DEADLINE, PluginHost, within,
};
pub use http_provider::{
    HttpHost, HttpProvider, HttpProviderConfig, PROVIDER_PROTOCOL, http_provider,
};
pub use llm_guard::{LlmGuard, LlmGuardConfig};
pub use presidio::{Presidio, PresidioAction, PresidioConfig};
pub use remote::{
    CallContext, CallSegment, GUARD_PROTOCOL, GuardCall, HttpGuard, HttpGuardConfig, verdict_from,
};
