//! The [`Policy`] contract: a policy pack's steps in the run lifecycle, and the run-end hook.
//!
//! A policy is the dyn-compatible form of the [`Node`](crate::Node) contract for the default
//! lifecycle: it names the [`Position`]s it runs at, is called there with a serializable view
//! of the exchange ([`StepInput`]), and returns what it adds ([`Step`]) or a typed error that
//! ends the run (a budget refusal, a residency violation, ...). [`Policy::on_run_end`] is
//! called exactly once per run, however the run ends — completed, failed, blocked, rejected or
//! cancelled — with the final usage. Everything a policy sees is plain data, so an
//! implementation in Python or JavaScript can satisfy it through a binding.
//!
//! ```
//! use aegis_contracts::*;
//!
//! /// Refuses requests without a team; counts finished runs.
//! struct TeamsOnly(std::sync::atomic::AtomicUsize);
//!
//! #[async_trait]
//! impl Policy for TeamsOnly {
//!     fn positions(&self) -> &[Position] {
//!         &[Position::BeforeCall]
//!     }
//!     async fn step(&self, input: &StepInput<'_>) -> Result<Step, Error> {
//!         match input.context.principal.as_ref().and_then(|p| p.team.as_ref()) {
//!             Some(_) => Ok(Step::proceed()),
//!             None => Err(Error::new(ErrorKind::Forbidden, "a team is required").with_code("no_team")),
//!         }
//!     }
//!     async fn on_run_end(&self, _run: &RunSummary) {
//!         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     }
//! }
//! ```

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ChatRequest, Document, Error, ErrorKind, OnBlocked, Principal, RunStatus, Usage};

/// The run label that restricts where a request may be processed: a comma-separated list of
/// regions (`eu,eu-west-1`). Set by residency policies; every provider that routes (a
/// router) checks it before every attempt — retries and fallbacks included — and refuses
/// with [`ResidencyViolation`](ErrorKind::ResidencyViolation) rather than send the request
/// elsewhere. A deployment without a region never passes a labelled request.
pub const RESIDENCY_LABEL: &str = "aegis.residency";

/// The run label holding the request's data classification level (`public`, `internal`,
/// `confidential`, `restricted`, or a configured ladder). Set by classification policies;
/// read by the packs that act on it.
pub const CLASSIFICATION_LABEL: &str = "aegis.classification";

/// The run label a caller may set (the gateway copies the `x-aegis-classification` header
/// into it) to *raise* the classification of a request; a classification policy never lets
/// it lower the level.
pub const REQUESTED_CLASSIFICATION_LABEL: &str = "aegis.classification.requested";

/// The chat body field holding per-request options for policies
/// (`{"aegis": {"retrieval": {"k": 3}}}`): each key is read by the policies that declare it
/// in [`Policy::request_options`]; it is never forwarded to a provider.
pub const OPTIONS_FIELD: &str = "aegis";

/// The run label set when a reviewer replaced the request's messages (an `edit` decision on
/// the input): the prompt is then the reviewer's, not the caller's, and a policy that acts
/// with the caller's permissions (retrieval) must not run it.
pub const EDITED_LABEL: &str = "aegis.edited";

/// Whether `region` may process a request whose labels are `labels` (see
/// [`RESIDENCY_LABEL`]): no label allows every region; a label allows only the regions it
/// lists, and never an unknown (`None`) region.
pub fn residency_allows(labels: &BTreeMap<String, String>, region: Option<&str>) -> bool {
    match labels.get(RESIDENCY_LABEL) {
        None => true,
        Some(allowed) => region.is_some_and(|r| allowed.split(',').any(|a| a.trim() == r)),
    }
}

/// A named position in the default lifecycle where policies run, in lifecycle order:
/// `authenticate → after_auth → input guards → before_route → route → before_call →
/// provider call → after_call → output guards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Position {
    /// The caller is known; nothing has been judged yet (classification, per-key rules).
    AfterAuth,
    /// The input guards have passed (and sanitized) the request; no route is chosen yet.
    BeforeRoute,
    /// The route (provider, deployment, region) is chosen; the provider is not called yet
    /// (budget reservations, residency checks).
    BeforeCall,
    /// The provider has answered (for a stream: its headers); output guards have not run.
    AfterCall,
}

impl Position {
    /// Every position, in lifecycle order.
    pub const ALL: [Position; 4] = [
        Self::AfterAuth,
        Self::BeforeRoute,
        Self::BeforeCall,
        Self::AfterCall,
    ];

    /// `after_auth`, `before_route`, `before_call` or `after_call`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AfterAuth => "after_auth",
            Self::BeforeRoute => "before_route",
            Self::BeforeCall => "before_call",
            Self::AfterCall => "after_call",
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin may know about the run it serves, as plain data (serializable for plugins
/// written in other languages). Carries no credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ContextView {
    /// The run.
    pub run_id: String,
    /// The authenticated caller, when there is one.
    pub principal: Option<Principal>,
    /// Labels set by the host, the principal and earlier policies (e.g. a classification).
    pub labels: BTreeMap<String, String>,
}

impl ContextView {
    /// A view of run `run_id`.
    pub fn new(
        run_id: impl Into<String>,
        principal: Option<Principal>,
        labels: BTreeMap<String, String>,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            principal,
            labels,
        }
    }
}

/// Where a request is sent: the route a caller named and the deployment that serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct RouteView {
    /// The provider (or router) id the request resolved to.
    pub provider: String,
    /// The model as that provider knows it.
    pub model: String,
    /// The deployment that answered, when the provider is a router (`None` before the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The region the data was processed in, when the provider declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Before the call: every region the route may be served in (a router's deployments of
    /// the model and its fallbacks), from [`Provider::regions`](crate::Provider::regions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Before the call: every upstream model the route may be served by (a router's
    /// deployments and fallbacks), from
    /// [`Provider::upstream_models`](crate::Provider::upstream_models); empty when it is
    /// `model` itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

impl RouteView {
    /// A route to `model` on `provider`.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            deployment: None,
            region: None,
            regions: Vec::new(),
            models: Vec::new(),
        }
    }
}

/// What a policy step sees.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StepInput<'a> {
    /// Where in the lifecycle the step runs.
    pub position: Position,
    /// The request as judged so far (sanitized by the input guards from `before_route` on).
    pub request: &'a ChatRequest,
    /// The run and its caller.
    pub context: &'a ContextView,
    /// The route, from `before_call` on.
    pub route: Option<&'a RouteView>,
    /// The provider's usage, at `after_call` for a complete (non-streamed) answer.
    pub usage: Option<Usage>,
    /// A human approved this step (it asked with [`Step::require_approval`] and the run
    /// was resumed with an approval).
    pub approved: bool,
}

impl<'a> StepInput<'a> {
    /// The input of a step at `position`.
    pub fn new(position: Position, request: &'a ChatRequest, context: &'a ContextView) -> Self {
        Self {
            position,
            request,
            context,
            route: None,
            usage: None,
            approved: false,
        }
    }

    /// Marks the step as approved by a human.
    pub fn approved(mut self, yes: bool) -> Self {
        self.approved = yes;
        self
    }

    /// With the chosen route.
    pub fn with_route(mut self, route: Option<&'a RouteView>) -> Self {
        self.route = route;
        self
    }

    /// With the provider's usage.
    pub fn with_usage(mut self, usage: Option<Usage>) -> Self {
        self.usage = usage;
        self
    }
}

/// What a policy step adds to the run. Refusing is an `Err` with a typed [`Error`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Step {
    /// Labels to add to the run's context (checkpointed; later steps, guards and the run-end
    /// hook see them). A label already set is overwritten.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Pause the run for a human decision, with this reason (ignored once
    /// [`StepInput::approved`]). The labels are not applied to a paused run; the step runs
    /// again on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// Documents to put into the prompt as context (retrieval). They are untrusted: the
    /// lifecycle judges each one with the guard chain as
    /// [`GuardSubject::Retrieved`](crate::GuardSubject::Retrieved) (origin `retrieval`)
    /// before it enters, records a [`Provenance`](crate::Provenance) for each in the run
    /// record and the response metadata, and adds those that pass as one user-role message
    /// (untrusted content, never operator instructions) before the last user message. Only at `after_auth` and `before_route` (a later
    /// step's documents would skip what runs before the call, such as budget
    /// reservations): elsewhere they fail the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<Document>,
    /// What a blocked document does: dropped (default) or refusing the request.
    #[serde(default)]
    pub on_blocked: OnBlocked,
}

impl Step {
    /// Go on, adding nothing.
    pub fn proceed() -> Self {
        Self::default()
    }

    /// Go on, adding a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Go on, adding `documents` to the prompt once the guard chain has judged them.
    pub fn with_documents(mut self, documents: Vec<Document>, on_blocked: OnBlocked) -> Self {
        self.documents = documents;
        self.on_blocked = on_blocked;
        self
    }

    /// Ask a human to approve the run before it goes on.
    pub fn require_approval(mut self, reason: impl Into<String>) -> Self {
        self.approval = Some(reason.into());
        self
    }
}

/// How a run ended, as its run-end hook sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct RunSummary {
    /// The run and its caller, with the final labels.
    pub context: ContextView,
    /// `completed`, `failed`, `blocked`, `rejected` or `cancelled`.
    pub status: RunStatus,
    /// The model the caller asked for.
    pub requested_model: String,
    /// Where the request went, when it got that far.
    pub route: Option<RouteView>,
    /// The final usage: reported by the provider, or recovered from a partial stream.
    pub usage: Option<Usage>,
    /// What the usage cost at the pipeline's prices, in millionths of a US dollar.
    pub cost_usd_micros: Option<u64>,
    /// The model the provider says answered (`gpt-4o-2024-08-06`; a router's deployment's
    /// model), when it answered.
    pub answered_model: Option<String>,
    /// Whether the provider was called (a reservation for a run that never reached the
    /// provider can be released without settling).
    pub provider_called: bool,
    /// The error kind, for a run that did not complete.
    pub error: Option<ErrorKind>,
    /// The error code (`budget_exceeded`, `policy_blocked`, ...), when there is one.
    pub code: Option<String>,
}

impl RunSummary {
    /// The summary of a run that ended with `status`; the other fields start empty.
    pub fn new(context: ContextView, status: RunStatus) -> Self {
        Self {
            context,
            status,
            requested_model: String::new(),
            route: None,
            usage: None,
            cost_usd_micros: None,
            answered_model: None,
            provider_called: false,
            error: None,
            code: None,
        }
    }
}

/// Contract: a policy pack's contribution to the run lifecycle (see the [module
/// docs](self)). Implementations are built from `[[policies]]` entries by the registry.
#[async_trait]
pub trait Policy: Send + Sync + 'static {
    /// The positions this policy runs at (each becomes a node of the lifecycle graph, named
    /// `{id}.{position}`); empty for a policy that only observes run ends.
    fn positions(&self) -> &[Position];

    /// One step at `input.position`. `Ok` lets the run go on (with labels to add); `Err`
    /// ends it with that error (fail closed). The default proceeds.
    async fn step(&self, input: &StepInput<'_>) -> Result<Step, Error> {
        let _ = input;
        Ok(Step::proceed())
    }

    /// Called exactly once when a run ends, on every way it can end, with the outcome and
    /// final usage. Runs off the caller's path when the caller went away; must not panic.
    async fn on_run_end(&self, run: &RunSummary) {
        let _ = run;
    }

    /// What this policy would apply to a request of `context`'s caller for `route` — for
    /// `aegis policy explain`; plain JSON, `null` when it has nothing to say.
    fn explain(&self, context: &ContextView, route: Option<&RouteView>) -> serde_json::Value {
        let _ = (context, route);
        serde_json::Value::Null
    }

    /// The keys of the chat body's `aegis` options object this policy reads (`retrieval`).
    /// A request naming a key no configured policy reads is refused, never silently
    /// ignored.
    fn request_options(&self) -> &[&'static str] {
        &[]
    }
}
