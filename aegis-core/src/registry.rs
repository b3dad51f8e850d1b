//! The plugin registry: type name → factory (a JSON Schema of its config and a build
//! function), and [`Registry::build`], which turns an [`AegisConfig`] into live components.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use aegis_contracts::*;
//! use aegis_core::{Registry, config::AegisConfig};
//! use std::sync::Arc;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct MaxLen { max: usize }
//! struct MaxLenGuard(usize);
//! #[async_trait]
//! impl Guardrail for MaxLenGuard {
//!     fn capabilities(&self) -> GuardCapabilities { GuardCapabilities::new([Stage::Input], Granularity::FullText) }
//!     async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
//!         let len: usize = s.segments().iter().map(|x| x.text.len()).sum();
//!         Ok(if len > self.0 { Verdict::block("too long", "max_len") } else { Verdict::allow() })
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register_guardrail::<MaxLen, _>("max_len", |cfg, _| Ok(Arc::new(MaxLenGuard(cfg.max))));
//! let cfg = AegisConfig::from_toml_str(
//!     "[[guardrails]]\nid = \"len\"\ntype = \"max_len\"\n[guardrails.config]\nmax = \"ten\"\n",
//!     std::iter::empty::<(&str, &str)>(),
//! ).unwrap();
//! let err = registry.build(&cfg).await.unwrap_err();
//! assert!(err.message().contains("guardrails[0].config.max: "));
//! assert!(err.message().contains("expected a number") || err.message().contains("expected usize"));
//! # });
//! ```

use std::{collections::BTreeMap, fmt, sync::Arc};

use aegis_contracts::{
    Authenticator, Error, GuardPolicy, Guardrail, Policy, PriceTable, Provider, Retriever, Secret,
    SecretBackend, SecretRef, TelemetrySink,
};
use schemars::{JsonSchema, schema_for};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{
    config::{AegisConfig, PluginConfig, humanize},
    guard::GuardEntry,
    secrets::{EnvSecrets, FileSecrets, SecretResolver, scrub},
};

/// What a factory gets besides its typed config.
#[non_exhaustive]
pub struct BuildContext<'a> {
    /// The instance id from config.
    pub id: &'a str,
    /// Shared resources the host provides (e.g. a `reqwest::Client`).
    pub extensions: &'a http::Extensions,
    /// Providers built before this plugin, in config order (a router composes them).
    pub providers: &'a [(String, Arc<dyn Provider>)],
    /// Guardrails built before this plugin (every `[[guardrails]]` entry, for policies:
    /// a classification pack uses them as detectors).
    pub guards: &'a [(String, Arc<dyn Guardrail>)],
    /// The pipeline's price table (`[pricing]` over the shipped one).
    pub prices: &'a PriceTable,
    /// Retrievers built before this plugin (every `[[retrievers]]` entry, for policies).
    pub retrievers: &'a [(String, Arc<dyn Retriever>)],
}

impl BuildContext<'_> {
    /// The provider with `id`, or an error naming the known ones.
    pub fn provider(&self, id: &str) -> Result<Arc<dyn Provider>, Error> {
        find(self.providers, id, "provider")
    }

    /// The retriever with `id`, or an error naming the known ones.
    pub fn retriever(&self, id: &str) -> Result<Arc<dyn Retriever>, Error> {
        find(self.retrievers, id, "retriever")
    }
}

fn find<T: ?Sized>(list: &[(String, Arc<T>)], id: &str, what: &str) -> Result<Arc<T>, Error> {
    list.iter()
        .find(|(i, _)| i == id)
        .map(|(_, t)| t.clone())
        .ok_or_else(|| {
            Error::config(format!(
                "no {what} `{id}` is configured (configured: {})",
                if list.is_empty() {
                    "none".to_owned()
                } else {
                    ids_of(list).join(", ")
                }
            ))
        })
}

impl fmt::Debug for BuildContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("id", &self.id)
            .field("providers", &ids_of(self.providers))
            .finish_non_exhaustive()
    }
}

type BuildFn<T> =
    Arc<dyn Fn(Value, &BuildContext<'_>) -> Result<Arc<T>, ConfigFailure> + Send + Sync>;

/// A factory's failure: either the config did not deserialize (path + message) or the
/// build function refused it.
enum ConfigFailure {
    Shape { path: String, message: String },
    Build(Error),
}

struct Factory<T: ?Sized> {
    schema: Value,
    build: BuildFn<T>,
}

impl<T: ?Sized> Clone for Factory<T> {
    fn clone(&self) -> Self {
        Self {
            schema: self.schema.clone(),
            build: self.build.clone(),
        }
    }
}

fn factory<T, C, F>(build: F) -> Factory<T>
where
    T: ?Sized + 'static,
    C: DeserializeOwned + JsonSchema,
    F: Fn(C, &BuildContext<'_>) -> Result<Arc<T>, Error> + Send + Sync + 'static,
{
    Factory {
        schema: schema_for!(C).to_value(),
        build: Arc::new(move |value, ctx| {
            let config: C =
                serde_path_to_error::deserialize(value).map_err(|e| ConfigFailure::Shape {
                    path: e.path().to_string(),
                    message: humanize(&e.into_inner().to_string()),
                })?;
            build(config, ctx).map_err(ConfigFailure::Build)
        }),
    }
}

/// Maps plugin type names to factories. Packs and providers register explicitly (the `aegis`
/// facade does it for enabled features); there is no link-time discovery, which breaks in
/// cdylibs.
#[derive(Clone)]
pub struct Registry {
    providers: BTreeMap<String, Factory<dyn Provider>>,
    guardrails: BTreeMap<String, Factory<dyn Guardrail>>,
    authenticators: BTreeMap<String, Factory<dyn Authenticator>>,
    policies: BTreeMap<String, Factory<dyn Policy>>,
    retrievers: BTreeMap<String, Factory<dyn Retriever>>,
    telemetry: BTreeMap<String, Factory<dyn TelemetrySink>>,
    secrets: SecretResolver,
    extensions: http::Extensions,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("guardrails", &self.guardrails.keys().collect::<Vec<_>>())
            .field(
                "authenticators",
                &self.authenticators.keys().collect::<Vec<_>>(),
            )
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .field("retrievers", &self.retrievers.keys().collect::<Vec<_>>())
            .field("telemetry", &self.telemetry.keys().collect::<Vec<_>>())
            .field("secret_schemes", &self.secrets.schemes())
            .finish()
    }
}

/// The live components a config describes.
#[derive(Clone)]
#[non_exhaustive]
pub struct Components {
    /// Providers by id, in config order.
    pub providers: Vec<(String, Arc<dyn Provider>)>,
    /// The guard chain entries, in config order.
    pub guards: Vec<GuardEntry>,
    /// Authenticators, in config order.
    pub authenticators: Vec<(String, Arc<dyn Authenticator>)>,
    /// Policies, in config order.
    pub policies: Vec<(String, Arc<dyn Policy>)>,
    /// Retrievers and document stores, in config order.
    pub retrievers: Vec<(String, Arc<dyn Retriever>)>,
    /// Telemetry sinks.
    pub telemetry: Vec<(String, Arc<dyn TelemetrySink>)>,
    /// The price table (`[pricing]` over the shipped one).
    pub prices: PriceTable,
}

impl fmt::Debug for Components {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Components")
            .field("providers", &ids_of(&self.providers))
            .field(
                "guards",
                &self.guards.iter().map(GuardEntry::id).collect::<Vec<_>>(),
            )
            .field("authenticators", &ids_of(&self.authenticators))
            .field("policies", &ids_of(&self.policies))
            .field("retrievers", &ids_of(&self.retrievers))
            .field("telemetry", &ids_of(&self.telemetry))
            .finish()
    }
}

fn ids_of<T>(v: &[(String, T)]) -> Vec<&str> {
    v.iter().map(|(id, _)| id.as_str()).collect()
}

impl Registry {
    /// A registry with the `env` and `file` secret backends and no plugins.
    pub fn new() -> Self {
        let mut secrets = SecretResolver::default();
        secrets.insert(Arc::new(EnvSecrets));
        secrets.insert(Arc::new(FileSecrets));
        Self {
            providers: BTreeMap::new(),
            guardrails: BTreeMap::new(),
            authenticators: BTreeMap::new(),
            policies: BTreeMap::new(),
            retrievers: BTreeMap::new(),
            telemetry: BTreeMap::new(),
            secrets,
            extensions: http::Extensions::new(),
        }
    }

    /// Registers a provider type with config `C`.
    pub fn register_provider<C, F>(&mut self, type_name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema,
        F: Fn(C, &BuildContext<'_>) -> Result<Arc<dyn Provider>, Error> + Send + Sync + 'static,
    {
        self.providers.insert(type_name.to_owned(), factory(build));
        self
    }

    /// Registers a guardrail type with config `C`.
    pub fn register_guardrail<C, F>(&mut self, type_name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema,
        F: Fn(C, &BuildContext<'_>) -> Result<Arc<dyn Guardrail>, Error> + Send + Sync + 'static,
    {
        self.guardrails.insert(type_name.to_owned(), factory(build));
        self
    }

    /// Registers an authenticator type with config `C`.
    pub fn register_authenticator<C, F>(&mut self, type_name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema,
        F: Fn(C, &BuildContext<'_>) -> Result<Arc<dyn Authenticator>, Error>
            + Send
            + Sync
            + 'static,
    {
        self.authenticators
            .insert(type_name.to_owned(), factory(build));
        self
    }

    /// Registers a policy type with config `C` (a pack's lifecycle steps and run-end hook,
    /// configured in `[[policies]]`).
    pub fn register_policy<C, F>(&mut self, type_name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema,
        F: Fn(C, &BuildContext<'_>) -> Result<Arc<dyn Policy>, Error> + Send + Sync + 'static,
    {
        self.policies.insert(type_name.to_owned(), factory(build));
        self
    }

    /// Registers a retriever or document-store type with config `C` (configured in
    /// `[[retrievers]]`; a store answers [`Retriever::as_store`]).
    pub fn register_retriever<C, F>(&mut self, type_name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema,
        F: Fn(C, &BuildContext<'_>) -> Result<Arc<dyn Retriever>, Error> + Send + Sync + 'static,
    {
        self.retrievers.insert(type_name.to_owned(), factory(build));
        self
    }

    /// Registers a telemetry sink type with config `C`.
    pub fn register_telemetry<C, F>(&mut self, type_name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema,
        F: Fn(C, &BuildContext<'_>) -> Result<Arc<dyn TelemetrySink>, Error>
            + Send
            + Sync
            + 'static,
    {
        self.telemetry.insert(type_name.to_owned(), factory(build));
        self
    }

    /// Adds (or replaces) the backend for a `secret://` scheme.
    pub fn register_secret_backend(&mut self, backend: Arc<dyn SecretBackend>) -> &mut Self {
        self.secrets.insert(backend);
        self
    }

    /// Resolves one `secret://scheme/path` reference through the registered backends (for
    /// host settings outside plugin configs, such as the audit key). A string that is not a
    /// reference is refused: a secret belongs in a backend, not in a config file. Errors
    /// name `path`, never the value.
    pub async fn resolve_secret(&self, path: &str, reference: &str) -> Result<Secret, Error> {
        if SecretRef::parse(reference).is_none() {
            return Err(Error::config(format!(
                "{path}: must be a secret reference such as `secret://env/NAME`, not a literal"
            )));
        }
        let mut value = Value::String(reference.to_owned());
        let (mut revealed, mut problems) = (Vec::new(), Vec::new());
        self.secrets
            .resolve_tree(&mut value, path, &mut revealed, &mut problems)
            .await;
        match (problems.is_empty(), value) {
            (true, Value::String(s)) => Ok(Secret::new(s)),
            _ => Err(Error::config(problems.join("; "))),
        }
    }

    /// Shares a resource with every factory (e.g. the host's `reqwest::Client`).
    pub fn insert_extension<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> &mut Self {
        self.extensions.insert(value);
        self
    }

    /// Registered type names per kind: `providers`, `guardrails`, `authenticators`,
    /// `policies`, `telemetry`.
    pub fn type_names(&self) -> BTreeMap<&'static str, Vec<String>> {
        BTreeMap::from([
            ("providers", self.providers.keys().cloned().collect()),
            ("guardrails", self.guardrails.keys().cloned().collect()),
            (
                "authenticators",
                self.authenticators.keys().cloned().collect(),
            ),
            ("policies", self.policies.keys().cloned().collect()),
            ("retrievers", self.retrievers.keys().cloned().collect()),
            ("telemetry", self.telemetry.keys().cloned().collect()),
        ])
    }

    /// The JSON Schema of a whole config file, with each plugin list constrained to the
    /// registered types and their config schemas (for editor completion).
    pub fn config_schema(&self) -> Value {
        let mut root = schema_for!(AegisConfig).to_value();
        let guard_base = root
            .pointer("/$defs/GuardrailConfig/properties")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let item = |type_name: &str, schema: &Value, base: &Value| {
            let mut props = base.as_object().cloned().unwrap_or_default();
            props.insert("id".into(), json!({"type": "string"}));
            props.insert("type".into(), json!({"const": type_name}));
            props.insert("config".into(), schema.clone());
            json!({"type": "object", "required": ["id", "type"], "properties": props, "additionalProperties": false})
        };
        type TypeSchemas<'a> = Vec<(&'a String, &'a Value)>;
        let lists: [(&str, TypeSchemas<'_>, Value); 6] = [
            (
                "providers",
                self.providers.iter().map(|(k, f)| (k, &f.schema)).collect(),
                json!({}),
            ),
            (
                "guardrails",
                self.guardrails
                    .iter()
                    .map(|(k, f)| (k, &f.schema))
                    .collect(),
                guard_base,
            ),
            (
                "authenticators",
                self.authenticators
                    .iter()
                    .map(|(k, f)| (k, &f.schema))
                    .collect(),
                json!({}),
            ),
            (
                "policies",
                self.policies.iter().map(|(k, f)| (k, &f.schema)).collect(),
                json!({}),
            ),
            (
                "retrievers",
                self.retrievers
                    .iter()
                    .map(|(k, f)| (k, &f.schema))
                    .collect(),
                json!({}),
            ),
            (
                "telemetry",
                self.telemetry.iter().map(|(k, f)| (k, &f.schema)).collect(),
                json!({}),
            ),
        ];
        for (list, types, base) in lists {
            let one_of: Vec<Value> = types.iter().map(|(k, s)| item(k, s, &base)).collect();
            if let Some(p) = root.pointer_mut(&format!("/properties/{list}")) {
                *p = json!({"type": "array", "items": {"oneOf": one_of}, "default": []});
            }
        }
        root
    }

    /// Every problem in `config`, each with its path. Secrets are resolved (a missing
    /// variable is a problem) but never appear in the messages.
    pub async fn validate(&self, config: &AegisConfig) -> Vec<String> {
        match self.build_inner(config).await {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    /// Builds every component of `config`. The error lists every problem with its path
    /// (`guardrails[2].config.threshold: expected a number`).
    pub async fn build(&self, config: &AegisConfig) -> Result<Components, Error> {
        self.build_inner(config).await.map_err(|problems| {
            Error::config(if problems.len() == 1 {
                problems.join("")
            } else {
                format!(
                    "{} problems in config:\n{}",
                    problems.len(),
                    problems.join("\n")
                )
            })
        })
    }

    async fn build_inner(&self, config: &AegisConfig) -> Result<Components, Vec<String>> {
        let mut problems = Vec::new();
        let mut revealed: Vec<Secret> = Vec::new();
        let prices = config.pricing.table().unwrap_or_else(|e| {
            problems.extend(e.message().lines().map(str::to_owned));
            PriceTable::shipped()
        });
        let providers = self
            .build_list(
                "providers",
                &self.providers,
                &config.providers,
                Prior::providers(&[], &prices),
                |p| Some(p.clone()),
                &mut revealed,
                &mut problems,
            )
            .await;
        let authenticators = self
            .build_list(
                "authenticators",
                &self.authenticators,
                &config.authenticators,
                Prior::providers(&providers, &prices),
                |_| None,
                &mut revealed,
                &mut problems,
            )
            .await;
        let telemetry = self
            .build_list(
                "telemetry",
                &self.telemetry,
                &config.telemetry,
                Prior::providers(&providers, &prices),
                |_| None,
                &mut revealed,
                &mut problems,
            )
            .await;
        let guard_plugins: Vec<PluginConfig> = config
            .guardrails
            .iter()
            .map(|g| PluginConfig {
                id: g.id.clone(),
                kind: g.kind.clone(),
                config: g.config.clone(),
            })
            .collect();
        let built = self
            .build_list(
                "guardrails",
                &self.guardrails,
                &guard_plugins,
                Prior::providers(&providers, &prices),
                |_| None,
                &mut revealed,
                &mut problems,
            )
            .await;
        let retrievers = self
            .build_list(
                "retrievers",
                &self.retrievers,
                &config.retrievers,
                Prior::providers(&providers, &prices),
                |_| None,
                &mut revealed,
                &mut problems,
            )
            .await;
        // Policies see the guardrails (a classification pack uses them as detectors) and
        // the retrievers.
        let policies = self
            .build_list(
                "policies",
                &self.policies,
                &config.policies,
                Prior {
                    providers: &providers,
                    guards: &built,
                    prices: &prices,
                    retrievers: &retrievers,
                },
                |_| None,
                &mut revealed,
                &mut problems,
            )
            .await;
        let mut by_id: std::collections::HashMap<String, Arc<dyn Guardrail>> =
            built.into_iter().collect();
        let mut guards = Vec::new();
        for (i, g) in config.guardrails.iter().enumerate() {
            if g.timeout_ms == 0 {
                problems.push(format!("guardrails[{i}].timeout_ms: must be at least 1"));
            }
            let Some(guard) = by_id.remove(&g.id) else {
                continue;
            };
            let mut entry = GuardEntry::new(g.id.clone(), guard, policy_of(g));
            if let Some(stages) = &g.stages {
                entry = entry.with_stages(stages);
                if entry.capabilities().stages.is_empty() {
                    problems.push(format!(
                        "guardrails[{i}].stages: guard type `{}` supports none of {stages:?}",
                        g.kind
                    ));
                }
            }
            guards.push(entry);
        }
        if !problems.is_empty() {
            return Err(problems.iter().map(|p| scrub(p, &revealed)).collect());
        }
        Ok(Components {
            providers,
            guards,
            authenticators,
            policies,
            retrievers,
            telemetry,
            prices,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn build_list<T: ?Sized + 'static>(
        &self,
        list: &str,
        factories: &BTreeMap<String, Factory<T>>,
        items: &[PluginConfig],
        prior: Prior<'_>,
        as_provider: fn(&Arc<T>) -> Option<Arc<dyn Provider>>,
        revealed: &mut Vec<Secret>,
        problems: &mut Vec<String>,
    ) -> Vec<(String, Arc<T>)> {
        let mut out = Vec::new();
        let mut providers: Vec<(String, Arc<dyn Provider>)> = prior.providers.to_vec();
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("{list}[{i}]");
            if item.id.trim().is_empty() {
                problems.push(format!("{at}.id: must not be empty"));
            } else if !seen.insert(item.id.clone()) {
                problems.push(format!("{at}.id: `{}` is used twice in {list}", item.id));
            }
            let Some(factory) = factories.get(&item.kind) else {
                let known: Vec<&str> = factories.keys().map(String::as_str).collect();
                problems.push(format!(
                    "{at}.type: unknown type `{}` (registered: {})",
                    item.kind,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
                continue;
            };
            let mut value = if item.config.is_null() {
                Value::Object(Default::default())
            } else {
                item.config.clone()
            };
            let before = problems.len();
            self.secrets
                .resolve_tree(&mut value, &format!("{at}.config"), revealed, problems)
                .await;
            if problems.len() > before {
                continue;
            }
            let ctx = BuildContext {
                id: &item.id,
                extensions: &self.extensions,
                providers: &providers,
                guards: prior.guards,
                prices: prior.prices,
                retrievers: prior.retrievers,
            };
            match (factory.build)(value, &ctx) {
                Ok(built) => {
                    if let Some(p) = as_provider(&built) {
                        providers.push((item.id.clone(), p));
                    }
                    out.push((item.id.clone(), built));
                }
                Err(ConfigFailure::Shape { path, message }) => {
                    let path = if path == "." || path.is_empty() {
                        String::new()
                    } else {
                        format!(".{path}")
                    };
                    problems.push(format!("{at}.config{path}: {message}"));
                }
                Err(ConfigFailure::Build(e)) => {
                    problems.push(format!("{at}.config: {}", e.message()))
                }
            }
        }
        out
    }
}

/// What a plugin list is built after.
#[derive(Clone, Copy)]
struct Prior<'a> {
    providers: &'a [(String, Arc<dyn Provider>)],
    guards: &'a [(String, Arc<dyn Guardrail>)],
    prices: &'a PriceTable,
    retrievers: &'a [(String, Arc<dyn Retriever>)],
}

impl<'a> Prior<'a> {
    /// Built after `providers`, before any guardrail.
    fn providers(providers: &'a [(String, Arc<dyn Provider>)], prices: &'a PriceTable) -> Self {
        Self {
            providers,
            guards: &[],
            prices,
            retrievers: &[],
        }
    }
}

/// The policy a guard entry runs under, from its config.
pub(crate) fn policy_of(g: &crate::config::GuardrailConfig) -> GuardPolicy {
    GuardPolicy {
        fail_mode: g.fail_mode,
        mode: g.mode,
        timeout: std::time::Duration::from_millis(g.timeout_ms),
    }
}
