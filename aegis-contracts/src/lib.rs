//! # aegis-contracts
//!
//! The seven public contracts of Aegis and the data they exchange. Everything with an opinion
//! — providers, guardrails, RAG stores, secret backends, telemetry sinks, pipeline nodes,
//! authenticators — implements one of these traits, Aegis's own policy packs included.
//!
//! | contract | job |
//! |---|---|
//! | [`Provider`] | an LLM backend |
//! | [`Guardrail`] | judge a [`GuardSubject`], return a [`Verdict`] |
//! | [`Retriever`] / [`VectorStore`] | fetch (and store) [`Document`]s |
//! | [`SecretBackend`] | resolve `secret://scheme/path` |
//! | [`TelemetrySink`] | observe [`RunEvent`]s |
//! | [`Node`] / [`Policy`] | a pipeline step: any tower service over a graph's state, or its dyn-compatible plain-data form for the lifecycle's named [`Position`]s, with a run-end hook |
//! | [`Authenticator`] | turn [`Credentials`] into a [`Principal`] |
//! | [`CheckpointStore`] | keep run [`Checkpoint`]s durably, with optimistic concurrency |
//!
//! All traits but `Node` (a generic tower service) are dyn-compatible (`Arc<dyn Guardrail>`
//! works), and what they exchange is plain serializable data ([`ContextView`],
//! [`StepInput`], [`RunSummary`], [`Verdict`]), so implementations written in Python or
//! JavaScript can be plugged in at run time.
//!
//! ```
//! use aegis_contracts::{ChatRequest, Message, GuardSubject, Stage};
//! let req = ChatRequest::new("gpt-4o-mini", vec![Message::user("hello")]);
//! let subject = GuardSubject::Input { messages: req.messages.clone() };
//! assert_eq!(subject.stage(), Stage::Input);
//! assert_eq!(subject.segments()[0].text, "hello");
//! ```
#![forbid(unsafe_code)]

mod budget;
mod chat;
mod checkpoint;
mod error;
mod guard;
mod identity;
mod node;
mod policy;
mod price;
mod provider;
mod response;
mod retriever;
mod run;
mod secret;
mod telemetry;
pub mod text;

pub use budget::*;
pub use chat::*;
pub use checkpoint::*;
pub use error::*;
pub use guard::*;
pub use identity::*;
pub use node::*;
pub use policy::*;
pub use price::*;
pub use provider::*;
pub use response::*;
pub use retriever::*;
pub use run::*;
pub use secret::*;
pub use telemetry::*;

pub use async_trait::async_trait;
