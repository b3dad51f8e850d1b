#![doc = include_str!("../README.md")]
//!
//! ## Wrap your own `reqwest` client as a governed tower service
//!
//! ```no_run
//! # async fn run() -> Result<(), aegis::Error> {
//! use std::sync::Arc;
//! use aegis::{ChatRequest, Message, Secret, guard::{GuardChain, GuardLayer}, layer::Upstream};
//! use aegis::providers::OpenAiCompatible;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let client = reqwest::Client::new(); // yours: proxies, TLS roots, timeouts as you like
//! let openai = OpenAiCompatible::builder("openai", "https://api.openai.com/v1")
//!     .api_key(Secret::new(std::env::var("OPENAI_API_KEY").unwrap_or_default()))
//!     .client(client)
//!     .build()?;
//! let governed = ServiceBuilder::new()
//!     .layer(GuardLayer::new(GuardChain::default())) // add your guards
//!     .service(Upstream::new(Arc::new(openai)));
//! let answer = governed
//!     .oneshot(ChatRequest::new("gpt-4o-mini", vec![Message::user("hello")]))
//!     .await?
//!     .collect()
//!     .await?;
//! # let _ = answer; Ok(()) }
//! ```
//!
//! The same provider can sit behind the full lifecycle graph (authentication, guards,
//! routing, approvals, audit) with [`Pipeline::builder`].
#![forbid(unsafe_code)]

use std::sync::Arc;

pub use aegis_contracts::*;
pub use aegis_core::metrics;
pub use aegis_core::{
    BuildContext, Components, EnvSecrets, Exchange, ExchangeUpdate, FileSecrets, Pipeline,
    PipelineBuilder, PipelineOutcome, PipelineSet, Registry, Route, Telemetry, config, graph,
    guard, layer,
};

/// Providers: the OpenAI-compatible provider, the offline [`Echo`](providers::Echo)
/// provider, transports and wire helpers.
pub mod providers {
    pub use aegis_providers::*;
}

/// A registry with every plugin type this build includes: the `echo` provider, the `openai`
/// provider (feature `openai`), and the enabled policy packs.
///
/// Factories receive the host's `reqwest::Client` when one was shared with
/// [`Registry::insert_extension`]; otherwise each provider builds its own.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register_provider::<providers::EchoConfig, _>("echo", |cfg, ctx| {
        Ok(Arc::new(providers::Echo::from_config(ctx.id, cfg)) as Arc<dyn Provider>)
    });
    #[cfg(feature = "openai")]
    r.register_provider::<providers::OpenAiConfig, _>("openai", |cfg, ctx| {
        let client = ctx.extensions.get::<reqwest::Client>().cloned();
        Ok(Arc::new(providers::OpenAiCompatible::from_config(
            ctx.id, cfg, client,
        )?) as Arc<dyn Provider>)
    });
    register_native_providers(&mut r);
    register_packs(&mut r);
    r
}

/// Anthropic, Gemini, Bedrock, Azure OpenAI and the router.
fn register_native_providers(r: &mut Registry) {
    use aegis_providers as p;
    fn client(ctx: &BuildContext<'_>) -> Option<reqwest::Client> {
        ctx.extensions.get::<reqwest::Client>().cloned()
    }
    r.register_provider::<p::AnthropicConfig, _>("anthropic", |c, ctx| {
        Ok(Arc::new(p::Anthropic::from_config(ctx.id, c, client(ctx))?) as Arc<dyn Provider>)
    });
    r.register_provider::<p::GeminiConfig, _>("gemini", |c, ctx| {
        Ok(Arc::new(p::Gemini::from_config(ctx.id, c, client(ctx))?) as Arc<dyn Provider>)
    });
    r.register_provider::<p::BedrockConfig, _>("bedrock", |c, ctx| {
        Ok(Arc::new(p::Bedrock::from_config(ctx.id, c, client(ctx))?) as Arc<dyn Provider>)
    });
    r.register_provider::<p::AzureConfig, _>("azure_openai", |c, ctx| {
        Ok(Arc::new(p::AzureOpenAi::from_config(ctx.id, c, client(ctx))?) as Arc<dyn Provider>)
    });
    // A router composes providers defined before it in the config.
    r.register_provider::<p::routing::RouterConfig, _>("router", |c, ctx| {
        let lookup = |id: &str| {
            ctx.providers
                .iter()
                .find(|(pid, _)| pid == id)
                .map(|(_, p)| p.clone())
        };
        Ok(Arc::new(p::routing::Router::from_config(ctx.id, c, lookup)?) as Arc<dyn Provider>)
    });
}

/// Builds the default pipeline from TOML text (with `AEGIS_*` overrides from the process
/// environment) using [`registry`].
pub async fn pipeline_from_toml(toml: &str) -> Result<Pipeline, Error> {
    let config = config::AegisConfig::from_toml_str(toml, std::env::vars())?;
    Pipeline::from_config(&registry(), &config).await
}

/// The rule-based guard pack (feature `guards`).
#[cfg(feature = "guards")]
pub mod guards {
    pub use aegis_guards::*;
}

/// The PII pack (feature `pii`).
#[cfg(feature = "pii")]
pub mod pii {
    pub use aegis_pii::*;
}

/// Data residency (feature `residency`).
#[cfg(feature = "residency")]
pub mod residency {
    pub use aegis_residency::*;
}

/// Data classification (feature `classification`).
#[cfg(feature = "classification")]
pub mod classification {
    pub use aegis_classification::*;
}

/// Budgets (feature `budgets`).
#[cfg(feature = "budgets")]
pub mod budgets {
    pub use aegis_budgets::*;
}

/// Governed RAG (feature `rag`): permission-aware document stores and the `retrieval`
/// policy.
#[cfg(feature = "rag")]
pub mod rag {
    pub use aegis_rag::*;
}

/// Guards backed by remote services (feature `adapters`).
#[cfg(feature = "adapters")]
pub mod adapters {
    pub use aegis_adapters::*;
}

/// Registers the guard and policy types of the enabled packs under their config names.
fn register_packs(r: &mut Registry) {
    #[cfg(feature = "rag")]
    aegis_rag::register(r);
    // Budgets spend through the host's ledger (an `Arc<dyn BudgetLedger>` extension, e.g.
    // the database's); without one, through a ledger in this process.
    #[cfg(feature = "budgets")]
    r.register_policy::<aegis_budgets::BudgetsConfig, _>("budgets", |c, ctx| {
        let ledger = ctx
            .extensions
            .get::<Arc<dyn BudgetLedger>>()
            .cloned()
            .unwrap_or_else(|| Arc::new(aegis_budgets::MemoryLedger::new()));
        let budgets = aegis_budgets::Budgets::with_prices(c, ledger, ctx.prices.clone())?;
        Ok(Arc::new(budgets.with_id(ctx.id)) as Arc<dyn Policy>)
    });
    #[cfg(feature = "classification")]
    r.register_policy::<aegis_classification::ClassificationConfig, _>(
        "classification",
        |c, ctx| {
            Ok(
                Arc::new(aegis_classification::Classification::new(c, ctx.guards)?)
                    as Arc<dyn Policy>,
            )
        },
    );
    #[cfg(feature = "residency")]
    r.register_policy::<aegis_residency::ResidencyConfig, _>("residency", |c, ctx| {
        // Region names are checked against those the configured providers declare (a
        // router's deployments included) unless the config lists them.
        let mut known = std::collections::BTreeSet::new();
        for (_, p) in ctx.providers {
            known.extend(p.region().map(str::to_owned));
            for m in p.models() {
                known.extend(p.regions(&m));
            }
        }
        Ok(Arc::new(aegis_residency::Residency::with_known_regions(c, known)?) as Arc<dyn Policy>)
    });
    #[cfg(feature = "guards")]
    {
        use aegis_guards as g;
        fn boxed<G: Guardrail>(g: Result<G, Error>) -> Result<Arc<dyn Guardrail>, Error> {
            Ok(Arc::new(g?))
        }
        r.register_guardrail::<g::BanSubstringsConfig, _>("ban_substrings", |c, _| {
            boxed(g::BanSubstrings::new(c))
        });
        r.register_guardrail::<g::RegexGuardConfig, _>("regex", |c, _| {
            boxed(g::RegexGuard::new(c))
        });
        r.register_guardrail::<g::SecretsConfig, _>("secrets", |c, _| boxed(g::Secrets::new(c)));
        r.register_guardrail::<g::InvisibleTextConfig, _>("invisible_text", |c, _| {
            boxed(g::InvisibleText::new(c))
        });
        r.register_guardrail::<g::JsonOutputConfig, _>("json_output", |c, _| {
            boxed(g::JsonOutput::new(c))
        });
        r.register_guardrail::<g::UrlAllowListConfig, _>("url_allow_list", |c, _| {
            boxed(g::UrlAllowList::new(c))
        });
        r.register_guardrail::<g::PromptInjectionConfig, _>("prompt_injection", |c, _| {
            boxed(g::PromptInjection::new(c))
        });
        #[cfg(feature = "tiktoken")]
        r.register_guardrail::<g::TokenLimitConfig, _>("token_limit", |c, _| {
            boxed(g::TokenLimit::new(c))
        });
    }
    #[cfg(feature = "pii")]
    r.register_guardrail::<aegis_pii::PiiGuardConfig, _>("pii", |c, _| {
        Ok(Arc::new(aegis_pii::PiiGuard::new(c)?) as Arc<dyn Guardrail>)
    });
    #[cfg(feature = "adapters")]
    {
        use aegis_adapters as a;
        r.register_guardrail::<a::LlmGuardConfig, _>("llm_guard", |c, _| {
            Ok(Arc::new(a::LlmGuard::new(c)?) as Arc<dyn Guardrail>)
        });
        r.register_guardrail::<a::PresidioConfig, _>("presidio", |c, _| {
            Ok(Arc::new(a::Presidio::new(c)?) as Arc<dyn Guardrail>)
        });
        r.register_guardrail::<a::HttpGuardConfig, _>("http", |c, ctx| {
            Ok(Arc::new(a::HttpGuard::new(ctx.id, c)?) as Arc<dyn Guardrail>)
        });
        r.register_provider::<a::HttpProviderConfig, _>("http", |c, ctx| {
            Ok(Arc::new(a::http_provider(ctx.id, c)?) as Arc<dyn Provider>)
        });
    }
    let _ = r;
}
