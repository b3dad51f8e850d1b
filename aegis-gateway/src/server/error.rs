//! OpenAI-shaped error bodies with stable codes.

use aegis::{Error, ErrorKind};
use axum::{
    Json,
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An error answered to an HTTP client: `{"error": {"message", "type", "code"}}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

/// The HTTP status for an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorKind::PolicyBlocked => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden | ErrorKind::ResidencyViolation => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::BudgetExceeded | ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::ApprovalRequired => StatusCode::ACCEPTED,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Provider => StatusCode::BAD_GATEWAY,
        ErrorKind::Storage => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// OpenAI's `type` for an error kind.
fn type_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::Conflict => {
            "invalid_request_error"
        }
        ErrorKind::PolicyBlocked | ErrorKind::ResidencyViolation | ErrorKind::ApprovalRequired => {
            "policy_error"
        }
        ErrorKind::Unauthenticated => "authentication_error",
        ErrorKind::Forbidden => "permission_error",
        ErrorKind::BudgetExceeded | ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Provider | ErrorKind::Timeout => "upstream_error",
        _ => "server_error",
    }
}

/// The JSON body of an error (also the `data` of an SSE error event).
pub fn body_of(e: &Error) -> serde_json::Value {
    let mut err = json!({
        "message": e.message(),
        "type": type_of(e.kind()),
        "code": e.code(),
        "param": null,
    });
    if let Some(run) = e.run_id() {
        err["run_id"] = run.into();
    }
    if let Some(details) = e.details() {
        err["details"] = details.clone();
    }
    json!({ "error": err })
}

/// The HTTP status to answer `e` with: an upstream's own 4xx for a request the upstream
/// refused (the client's fault, not retryable), else the status of its kind — so only
/// upstream 5xx and timeouts become 502 / 504.
pub fn status_for(e: &Error) -> StatusCode {
    match e.status() {
        Some(s @ 400..=499)
            if e.kind() == ErrorKind::InvalidRequest
                && !matches!(s, 401 | 403 | 407 | 408 | 429) =>
        {
            StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST)
        }
        _ => status_of(e.kind()),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_for(&self.0);
        let mut resp = (status, Json(body_of(&self.0))).into_response();
        if let Some(after) = self.0.retry_after()
            && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        if let Some(run) = self.0.run_id().and_then(|r| HeaderValue::from_str(r).ok()) {
            resp.headers_mut().insert("x-aegis-run-id", run);
        }
        // What is left of the budget that refused the request.
        if self.0.kind() == ErrorKind::BudgetExceeded
            && let Some(d) = self.0.details()
        {
            for (field, header) in [
                ("account", "x-aegis-budget-account"),
                ("period", "x-aegis-budget-period"),
                ("remaining_tokens", "x-aegis-budget-remaining-tokens"),
                ("remaining_usd", "x-aegis-budget-remaining-usd"),
            ] {
                let value = match &d[field] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                if let Ok(v) = HeaderValue::from_str(&value) {
                    resp.headers_mut().insert(header, v);
                }
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
