//! # aegis-residency
//!
//! Data residency as a policy pack: a request whose caller has a residency policy is
//! processed only in the regions that policy allows — fail closed, never "preferred region".
//!
//! The allowed regions of a request are the intersection of every rule that applies to it:
//! the caller's principal id, team and organisation, the caller's `residency` label (key
//! metadata), and the request's classification level (from a classification pack). Before
//! the provider call the policy checks that the route can be served in an allowed region
//! (else `403 residency_violation`, before anything is sent) and sets the
//! [`RESIDENCY_LABEL`] that every router checks before each attempt — retries and
//! fallbacks included — so no model name, alias, header or fallback reaches a deployment
//! elsewhere.
//!
//! ```
//! use aegis_contracts::*;
//! use aegis_residency::{Residency, ResidencyConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config: ResidencyConfig = serde_json::from_value(serde_json::json!({
//!     "regions": ["eu", "us"],
//!     "teams": {"research": ["eu"]},
//! })).unwrap();
//! let policy = Residency::new(config).unwrap();
//!
//! let request = ChatRequest::new("chat", vec![Message::user("hi")]);
//! let ada = Principal::new("ada").with_team("research");
//! let context = ContextView::new("run-1", Some(ada), Default::default());
//! let mut route = RouteView::new("router", "chat");
//! route.regions = vec!["us".into()];
//! let input = StepInput::new(Position::BeforeCall, &request, &context).with_route(Some(&route));
//! let refused = policy.step(&input).await.unwrap_err();
//! assert_eq!(refused.kind(), ErrorKind::ResidencyViolation);
//!
//! route.regions = vec!["us".into(), "eu".into()];
//! let input = StepInput::new(Position::BeforeCall, &request, &context).with_route(Some(&route));
//! let step = policy.step(&input).await.unwrap();
//! assert_eq!(step.labels[RESIDENCY_LABEL], "eu");
//! # });
//! ```
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use aegis_contracts::{
    CLASSIFICATION_LABEL, ContextView, Error, ErrorKind, Policy, Position, RESIDENCY_LABEL,
    RouteView, Step, StepInput, async_trait,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// The `residency` policy's config. Every region named must be one of `regions`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResidencyConfig {
    /// The region names in use (e.g. `["eu", "us"]`); a rule naming another is a config
    /// error. Default: the regions the configured providers declare.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Allowed regions by principal id.
    #[serde(default)]
    pub principals: BTreeMap<String, Vec<String>>,
    /// Allowed regions by team.
    #[serde(default)]
    pub teams: BTreeMap<String, Vec<String>>,
    /// Allowed regions by organisation.
    #[serde(default)]
    pub orgs: BTreeMap<String, Vec<String>>,
    /// Allowed regions by classification level (the run's `aegis.classification` label).
    /// A level's rule binds that level and every level above it on `ladder`.
    #[serde(default)]
    pub levels: BTreeMap<String, Vec<String>>,
    /// The classification levels, lowest first (default `public`, `internal`,
    /// `confidential`, `restricted`). A request labelled with a level not on it gets every
    /// level rule (fail closed).
    #[serde(default = "default_ladder")]
    pub ladder: Vec<String>,
    /// Allowed regions for every request (also anonymous ones); default: no rule.
    #[serde(default)]
    pub all: Option<Vec<String>>,
    /// Read a principal's `residency` label (comma-separated regions, from key metadata)
    /// as one more rule. Default true.
    #[serde(default = "yes")]
    pub principal_label: bool,
}

fn yes() -> bool {
    true
}

fn default_ladder() -> Vec<String> {
    ["public", "internal", "confidential", "restricted"]
        .map(String::from)
        .to_vec()
}

/// The residency policy (see the [crate docs](crate)).
#[derive(Debug, Clone)]
pub struct Residency {
    config: ResidencyConfig,
    known: BTreeSet<String>,
}

impl Residency {
    /// A policy over `config`, whose region names are checked against `config.regions`.
    pub fn new(config: ResidencyConfig) -> Result<Self, Error> {
        let known = config.regions.iter().cloned().collect();
        Self::with_known_regions(config, known)
    }

    /// A policy whose region names are checked against `known` when `config.regions` is
    /// empty (the registry passes the regions the configured providers declare).
    pub fn with_known_regions(
        config: ResidencyConfig,
        known: BTreeSet<String>,
    ) -> Result<Self, Error> {
        let known: BTreeSet<String> = if config.regions.is_empty() {
            known
        } else {
            config.regions.iter().cloned().collect()
        };
        let mut problems = Vec::new();
        let mut check = |path: String, regions: &[String]| {
            for (i, r) in regions.iter().enumerate() {
                if !known.contains(r) {
                    problems.push(format!(
                        "{path}[{i}]: unknown region `{r}` (known: {})",
                        if known.is_empty() {
                            "none; list them in `regions`".to_owned()
                        } else {
                            known.iter().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ));
                }
            }
        };
        for (name, map) in [
            ("principals", &config.principals),
            ("teams", &config.teams),
            ("orgs", &config.orgs),
            ("levels", &config.levels),
        ] {
            for (k, v) in map {
                check(format!("{name}.{k}"), v);
            }
        }
        if let Some(all) = &config.all {
            check("all".into(), all);
        }
        for level in config.levels.keys() {
            if !config.ladder.contains(level) {
                problems.push(format!(
                    "levels.{level}: not a level of `ladder` ({})",
                    config.ladder.join(", ")
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Error::config(problems.join("\n")));
        }
        Ok(Self { config, known })
    }

    /// The regions `input`'s request may be processed in; `None` when no rule applies.
    pub fn allowed(&self, ctx: &ContextView) -> Option<BTreeSet<String>> {
        let mut rules: Vec<BTreeSet<String>> = Vec::new();
        let mut add = |regions: &[String]| rules.push(regions.iter().cloned().collect());
        if let Some(all) = &self.config.all {
            add(all);
        }
        if let Some(p) = &ctx.principal {
            if let Some(r) = self.config.principals.get(&p.id) {
                add(r);
            }
            if let Some(r) = p.team.as_ref().and_then(|t| self.config.teams.get(t)) {
                add(r);
            }
            if let Some(r) = p.org.as_ref().and_then(|o| self.config.orgs.get(o)) {
                add(r);
            }
            if self.config.principal_label
                && let Some(label) = p.labels.get("residency")
            {
                let listed: Vec<String> = label
                    .split(',')
                    .map(|r| r.trim().to_owned())
                    .filter(|r| !r.is_empty())
                    .collect();
                add(&listed);
            }
        }
        if let Some(level) = ctx.labels.get(CLASSIFICATION_LABEL) {
            // Every rule of this level or a lower one binds (a raised level never loosens
            // residency); an unknown level is above every rung.
            let at = self
                .config
                .ladder
                .iter()
                .position(|l| l == level)
                .unwrap_or(usize::MAX);
            for (name, regions) in &self.config.levels {
                let rung = self.config.ladder.iter().position(|l| l == name);
                if rung.is_some_and(|r| r <= at) {
                    add(regions);
                }
            }
        }
        let mut rules = rules.into_iter();
        let first = rules.next()?;
        Some(rules.fold(first, |acc, r| acc.intersection(&r).cloned().collect()))
    }

    /// The region names this policy knows.
    pub fn known_regions(&self) -> &BTreeSet<String> {
        &self.known
    }
}

fn violation(message: String) -> Error {
    Error::new(ErrorKind::ResidencyViolation, message).with_code("residency_violation")
}

#[async_trait]
impl Policy for Residency {
    fn positions(&self) -> &[Position] {
        &[Position::BeforeCall]
    }

    fn explain(&self, context: &ContextView, route: Option<&RouteView>) -> serde_json::Value {
        let allowed = self.allowed(context);
        let compliant = match (&allowed, route) {
            (None, _) => serde_json::Value::Bool(true),
            (Some(a), Some(r)) => serde_json::Value::Bool(r.regions.iter().any(|x| a.contains(x))),
            (Some(_), None) => serde_json::Value::Null,
        };
        serde_json::json!({
            "allowed_regions": allowed,
            "route_regions": route.map(|r| r.regions.clone()),
            "route_compliant": compliant,
        })
    }

    async fn step(&self, input: &StepInput<'_>) -> Result<Step, Error> {
        let Some(allowed) = self.allowed(input.context) else {
            return Ok(Step::proceed());
        };
        if allowed.is_empty() {
            return Err(violation(
                "the caller's residency rules allow no region in common; the request is refused"
                    .into(),
            ));
        }
        let route = input
            .route
            .ok_or_else(|| Error::internal("residency runs before the call, after routing"))?;
        if !route.regions.iter().any(|r| allowed.contains(r)) {
            return Err(violation(format!(
                "`{}` on `{}` is served in {} but this caller's data may be processed only in {}; the request is refused, not sent elsewhere",
                route.model,
                route.provider,
                if route.regions.is_empty() {
                    "no declared region".to_owned()
                } else {
                    route.regions.join(", ")
                },
                allowed.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let label = allowed.into_iter().collect::<Vec<_>>().join(",");
        Ok(Step::proceed().label(RESIDENCY_LABEL, label))
    }
}
