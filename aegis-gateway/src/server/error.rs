//! OpenAI-shaped error bodies with stable codes.

use aegis::{Error, ErrorKind};
use axum::{
    Json,
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
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
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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

/// The longest plain-text error body kept as the message of its JSON rewrite.
const PLAIN_ERROR_BYTES: usize = 4096;

/// Middleware: every error response is OpenAI-shaped JSON, including the ones the HTTP
/// plumbing answers in plain text or with no body at all — the body-size limit (413), an
/// unknown route (404), a wrong method (405), a body that does not parse as JSON or has the
/// wrong content type (400 / 415 / 422), a body read that timed out (408). Official SDKs read
/// `error.message` and `error.code`; a text body reaches their users as an opaque failure.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, PLAIN_ERROR_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let (kind, code) = plain_status_class(status);
    let body = json!({ "error": {
        "message": message, "type": kind, "code": code, "param": null,
    }});
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// OpenAI's `type` and a stable `code` for a status the gateway's plumbing answered.
fn plain_status_class(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::NOT_FOUND => ("invalid_request_error", "not_found"),
        StatusCode::METHOD_NOT_ALLOWED => ("invalid_request_error", "method_not_allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("invalid_request_error", "request_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("invalid_request_error", "unsupported_media_type"),
        StatusCode::REQUEST_TIMEOUT => ("invalid_request_error", "request_timeout"),
        StatusCode::UNAUTHORIZED => ("authentication_error", "unauthenticated"),
        StatusCode::FORBIDDEN => ("permission_error", "forbidden"),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limit_error", "rate_limited"),
        s if s.is_client_error() => ("invalid_request_error", "invalid_request"),
        StatusCode::GATEWAY_TIMEOUT => ("upstream_error", "timeout"),
        StatusCode::BAD_GATEWAY => ("upstream_error", "provider_error"),
        _ => ("server_error", "internal_error"),
    }
}
