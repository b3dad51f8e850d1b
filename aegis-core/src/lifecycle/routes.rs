//! Model resolution: the one path from the model a caller names to a provider and model,
//! compiled once when the pipeline is built.
//!
//! In order: an alias is replaced by its target; `provider/model` addresses an addressable
//! provider (one of the models it lists, when it lists any); a model an addressable provider lists goes to the first that lists it; a bare
//! provider id goes to that provider; anything else goes to the default provider only if it
//! serves any model (lists none). Everything else — an unknown prefix, an unknown model, a
//! router's member addressed around the router — is `404 model_not_found`, never a silent
//! default.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use aegis_contracts::{Error, ErrorKind, Provider};

use super::Route;
use crate::config::RoutingConfig;

/// The compiled routing table.
pub(crate) struct ModelTable {
    providers: Vec<(String, Arc<dyn Provider>)>,
    /// Provider ids callers may name (router members are hidden).
    addressable: HashSet<String>,
    /// Listed model → first addressable provider that lists it.
    listed: HashMap<String, String>,
    /// The models each provider that lists its models serves.
    served: HashMap<String, HashSet<String>>,
    /// Providers that list no model (serve whatever is asked).
    open: HashSet<String>,
    aliases: BTreeMap<String, String>,
    default: Option<String>,
}

fn not_found(message: String) -> Error {
    Error::new(ErrorKind::NotFound, message).with_code("model_not_found")
}

impl ModelTable {
    /// Compiles `routing` over `providers`; every alias target must resolve. Problems carry
    /// their config path.
    pub(crate) fn new(
        providers: Vec<(String, Arc<dyn Provider>)>,
        routing: &RoutingConfig,
    ) -> Result<Self, Error> {
        let hidden: HashSet<String> = providers.iter().flat_map(|(_, p)| p.members()).collect();
        let addressable: HashSet<String> = providers
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|id| !hidden.contains(id))
            .collect();
        let mut listed = HashMap::new();
        let mut served: HashMap<String, HashSet<String>> = HashMap::new();
        let mut open = HashSet::new();
        for (id, p) in providers.iter().filter(|(id, _)| addressable.contains(id)) {
            let models = p.models();
            if models.is_empty() {
                open.insert(id.clone());
            }
            for m in models {
                served.entry(id.clone()).or_default().insert(m.clone());
                listed.entry(m).or_insert_with(|| id.clone());
            }
        }
        let mut problems = Vec::new();
        let default = match &routing.default_provider {
            Some(id) if !providers.iter().any(|(p, _)| p == id) => {
                problems.push(format!(
                    "routing.default_provider: no provider has id `{id}`"
                ));
                None
            }
            Some(id) if !addressable.contains(id) => {
                problems.push(format!(
                    "routing.default_provider: provider `{id}` is a deployment of a router and not addressable directly"
                ));
                None
            }
            Some(id) => Some(id.clone()),
            None => providers
                .iter()
                .map(|(id, _)| id)
                .find(|id| addressable.contains(*id))
                .cloned(),
        };
        let mut table = Self {
            providers,
            addressable,
            listed,
            served,
            open,
            aliases: BTreeMap::new(),
            default,
        };
        for (alias, target) in &routing.aliases {
            if routing.aliases.contains_key(target) {
                problems.push(format!(
                    "routing.aliases.{alias}: target `{target}` is itself an alias; aliases resolve once"
                ));
            } else if let Err(e) = table.resolve_direct(target) {
                problems.push(format!("routing.aliases.{alias}: {}", e.message()));
            }
        }
        if !problems.is_empty() {
            return Err(Error::config(problems.join("\n")));
        }
        table.aliases = routing.aliases.clone();
        Ok(table)
    }

    /// Where `model` goes.
    pub(crate) fn resolve(&self, model: &str) -> Result<Route, Error> {
        let target = self.aliases.get(model).map_or(model, String::as_str);
        self.resolve_direct(target)
    }

    /// [`resolve`](Self::resolve), with every region and upstream model the route may be
    /// served in and by ([`Provider::regions`], [`Provider::upstream_models`]), for the
    /// policies that check a route before the call (residency, budgets).
    pub(crate) fn resolve_with_regions(&self, model: &str) -> Result<Route, Error> {
        let mut route = self.resolve(model)?;
        if let Some(p) = self.provider(&route.provider) {
            route.regions = p.regions(&route.model);
            route.models = p.upstream_models(&route.model);
        }
        Ok(route)
    }

    fn resolve_direct(&self, model: &str) -> Result<Route, Error> {
        if let Some((p, m)) = model.split_once('/')
            && self.provider(p).is_some()
        {
            if !self.addressable.contains(p) {
                return Err(not_found(format!(
                    "provider `{p}` is a deployment of a router and cannot be addressed directly; name the router's model instead"
                )));
            }
            if !self.open.contains(p) && !self.served.get(p).is_some_and(|ms| ms.contains(m)) {
                return Err(not_found(format!(
                    "provider `{p}` does not serve the model `{m}` (GET /v1/models lists the models you can name)"
                )));
            }
            return self.route(p, m);
        }
        if let Some(p) = self.listed.get(model) {
            return self.route(p, model);
        }
        if self.addressable.contains(model) {
            return self.route(model, model);
        }
        match &self.default {
            Some(p) if self.open.contains(p) && !model.contains('/') => self.route(p, model),
            _ => Err(not_found(format!(
                "the model `{model}` does not exist: no provider serves it (GET /v1/models lists the models you can name)"
            ))),
        }
    }

    fn route(&self, provider: &str, model: &str) -> Result<Route, Error> {
        if model.is_empty() {
            return Err(not_found(format!(
                "`{provider}/` names no model; use `{provider}/<model>`"
            )));
        }
        Ok(Route::new(provider, model))
    }

    pub(crate) fn provider(&self, id: &str) -> Option<&Arc<dyn Provider>> {
        self.providers
            .iter()
            .find(|(pid, _)| pid == id)
            .map(|(_, p)| p)
    }

    pub(crate) fn providers(&self) -> &[(String, Arc<dyn Provider>)] {
        &self.providers
    }

    /// The models callers can name, with the provider serving each: each addressable
    /// provider's id, `provider/model` for every model it lists, and every alias.
    pub(crate) fn models(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (id, p) in &self.providers {
            if !self.addressable.contains(id) {
                continue;
            }
            out.push((id.clone(), id.clone()));
            for m in p.models() {
                out.push((format!("{id}/{m}"), id.clone()));
            }
        }
        for alias in self.aliases.keys() {
            if let Ok(route) = self.resolve(alias) {
                out.push((alias.clone(), route.provider));
            }
        }
        out
    }
}
