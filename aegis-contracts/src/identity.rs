//! Who is calling: [`Principal`], [`Credentials`], the [`Authenticator`] contract and the
//! per-request [`RequestContext`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Secret};

/// An authenticated caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Principal {
    /// Stable id.
    #[schemars(pattern(crate::NOT_BLANK_PATTERN))]
    pub id: String,
    /// Team, for team-scoped visibility and budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Roles (`admin`, `approver`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Free-form labels policy can match on (`data_class=internal`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Principal {
    /// A principal with just an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// Sets the team.
    pub fn with_team(mut self, team: impl Into<String>) -> Self {
        self.team = Some(team.into());
        self
    }

    /// Adds a role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// What a caller presented. Secret material is a [`Secret`] and never prints.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Credentials {
    /// An `Authorization: Bearer` token.
    pub bearer: Option<Secret>,
    /// An `x-api-key` header value.
    pub api_key: Option<Secret>,
}

impl Credentials {
    /// Bearer-token credentials.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self {
            bearer: Some(Secret::new(token)),
            api_key: None,
        }
    }

    /// The presented token, bearer first.
    pub fn token(&self) -> Option<&Secret> {
        self.bearer.as_ref().or(self.api_key.as_ref())
    }
}

/// Contract: turns presented credentials into a [`Principal`].
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Resolves the caller. Unknown, expired or revoked credentials are
    /// [`Unauthenticated`](crate::ErrorKind::Unauthenticated).
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal, Error>;
}

/// Put into a [`RequestContext`]'s extensions by a host that executes some of the model's
/// tool calls itself and judges each one there, with more to go on (an MCP hub judges a
/// call with its server's identity, and holds it for a reviewer): the pipeline does not
/// also judge the model's calls to these names as output, so no guard asks twice. Calls to
/// any other name are judged as usual. Only code can set it — no header or label does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostJudgedTools(pub Vec<String>);

impl HostJudgedTools {
    /// Whether the host judges calls to `name`.
    pub fn judges(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }
}

/// Per-request context that travels with a request through layers and nodes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RequestContext {
    /// The run this request belongs to.
    pub run_id: Option<String>,
    /// The caller, once authenticated.
    pub principal: Option<Principal>,
    /// The credentials presented, consumed by authentication.
    pub credentials: Option<Credentials>,
    /// Labels for policy and routing (`route=support`, `region=eu`).
    pub labels: BTreeMap<String, String>,
    /// Typed extensions layers may attach.
    pub extensions: http::Extensions,
}

impl RequestContext {
    /// Sets the run id.
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets the principal.
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }
}
