//! # aegis-core
//!
//! The Aegis kernel: plugin [`Registry`], typed [`config`], secret resolution, the
//! [`graph`] engine, the [`guard`] chain and the tower layers. It has no opinion about
//! what a pipeline does; providers, guards and the rest plug in through the contracts of
//! [`aegis_contracts`].
#![forbid(unsafe_code)]

pub mod graph;
pub mod guard;
pub mod layer;
mod telemetry;

pub use telemetry::Telemetry;
pub mod config;
mod registry;
mod secrets;

pub use registry::{BuildContext, Components, Registry};
pub use secrets::{EnvSecrets, FileSecrets};
mod lifecycle;

pub use lifecycle::{
    Exchange, ExchangeUpdate, Pipeline, PipelineBuilder, PipelineOutcome, PipelineSet, Route,
};
