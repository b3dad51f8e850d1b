//! The Aegis gateway: an OpenAI-compatible HTTP server hosting the governed pipeline, and
//! the `aegis` command-line tool (`serve`, `chat`, `scan`, `runs`, `config`, `graph`, `models`).
#![forbid(unsafe_code)]

pub mod bootstrap;
pub mod metrics;
pub mod scan;
pub mod server;
pub mod static_keys;
pub mod traces;
