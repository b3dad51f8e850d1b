//! OpenAI-compatible and offline (echo) providers for Aegis, over the host's own reqwest client.
#![forbid(unsafe_code)]
