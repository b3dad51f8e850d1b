//! The one public error type.

use std::{error::Error as StdError, fmt, time::Duration};

/// A boxed error, the currency of transports and sources.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The category of an [`Error`]; what a caller branches on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A guard blocked the request or the response.
    PolicyBlocked,
    /// The run paused for a human decision; [`Error::run_id`] names it.
    ApprovalRequired,
    /// A budget would be exceeded.
    BudgetExceeded,
    /// No provider satisfies the data-residency policy.
    ResidencyViolation,
    /// The caller could not be identified.
    Unauthenticated,
    /// The caller is identified but not allowed.
    Forbidden,
    /// The thing asked for (a run, a key, a model) does not exist.
    NotFound,
    /// The thing changed under the caller: a run already resumed, an interrupt already decided.
    Conflict,
    /// The request is malformed, empty, too large, or refers to something unknown.
    InvalidRequest,
    /// The upstream provider failed or answered something we could not read.
    Provider,
    /// The upstream provider is rate limiting; see [`Error::retry_after`].
    RateLimited,
    /// Something took longer than its deadline.
    Timeout,
    /// The configuration is invalid.
    Config,
    /// Persistence failed.
    Storage,
    /// A bug or an invariant violation inside Aegis.
    Internal,
}

impl ErrorKind {
    /// A stable snake_case code, suitable for API error bodies.
    pub fn code(self) -> &'static str {
        match self {
            Self::PolicyBlocked => "policy_blocked",
            Self::ApprovalRequired => "approval_required",
            Self::BudgetExceeded => "budget_exceeded",
            Self::ResidencyViolation => "residency_violation",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::InvalidRequest => "invalid_request",
            Self::Provider => "provider_error",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::Config => "config_error",
            Self::Storage => "storage_error",
            Self::Internal => "internal_error",
        }
    }

    /// The HTTP status an OpenAI-compatible server answers for this kind (the gateway's,
    /// and what the language bindings report as `status`).
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest | Self::PolicyBlocked => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden | Self::ResidencyViolation => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::BudgetExceeded | Self::RateLimited => 429,
            Self::ApprovalRequired => 202,
            Self::Timeout => 504,
            Self::Provider => 502,
            Self::Storage => 503,
            Self::Config | Self::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The error of every public Aegis operation.
///
/// Opaque on purpose: branch on [`kind`](Self::kind) and the predicates, read the message
/// for humans. It never contains a secret's value.
///
/// ```
/// use aegis_contracts::{Error, ErrorKind};
/// use std::time::Duration;
///
/// let err = Error::new(ErrorKind::RateLimited, "slow down").with_retry_after(Duration::from_secs(2));
/// assert!(err.is_retryable());
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    code: Option<String>,
    retryable: Option<bool>,
    retry_after: Option<Duration>,
    status: Option<u16>,
    run_id: Option<String>,
    details: Option<serde_json::Value>,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                code: None,
                retryable: None,
                retry_after: None,
                status: None,
                run_id: None,
                details: None,
                source: None,
            }),
        }
    }

    /// Shorthand for [`ErrorKind::InvalidRequest`].
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// Shorthand for [`ErrorKind::Config`].
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Shorthand for [`ErrorKind::Storage`].
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Storage, message)
    }

    /// Shorthand for [`ErrorKind::Provider`].
    pub fn provider(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Provider, message)
    }

    /// Attaches a stable machine code (e.g. the blocking guard's code).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.inner.code = Some(code.into());
        self
    }

    /// Overrides whether retrying may succeed.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.inner.retryable = Some(retryable);
        self
    }

    /// Records how long the upstream asked us to wait.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.inner.retry_after = Some(after);
        self
    }

    /// Records the upstream HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Names the run this error belongs to (always set for [`ErrorKind::ApprovalRequired`]).
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.inner.run_id = Some(run_id.into());
        self
    }

    /// Attaches machine-readable details for the caller (e.g. what is left of a budget);
    /// never a secret, never prompt text. The gateway includes them in its error body.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.inner.details = Some(details);
        self
    }

    /// The details attached with [`with_details`](Self::with_details).
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.inner.details.as_ref()
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The human-readable message, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// A stable machine code: the explicit one if set, else the kind's.
    pub fn code(&self) -> &str {
        self.inner.code.as_deref().unwrap_or(self.inner.kind.code())
    }

    /// The upstream HTTP status, when the error came from one.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// The run this error belongs to.
    pub fn run_id(&self) -> Option<&str> {
        self.inner.run_id.as_deref()
    }

    /// How long the upstream asked us to wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Whether trying again (here or on another deployment) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.inner.retryable.unwrap_or(matches!(
            self.inner.kind,
            ErrorKind::RateLimited | ErrorKind::Timeout
        ))
    }

    /// True for [`ErrorKind::PolicyBlocked`].
    pub fn is_blocked(&self) -> bool {
        self.inner.kind == ErrorKind::PolicyBlocked
    }

    /// True for [`ErrorKind::ApprovalRequired`].
    pub fn is_approval_required(&self) -> bool {
        self.inner.kind == ErrorKind::ApprovalRequired
    }

    /// True for [`ErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("aegis::Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(code) = &self.inner.code {
            d.field("code", code);
        }
        if let Some(status) = self.inner.status {
            d.field("status", &status);
        }
        if let Some(run_id) = &self.inner.run_id {
            d.field("run_id", run_id);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.kind, self.inner.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Shorthand for `Result<T, aegis_contracts::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
