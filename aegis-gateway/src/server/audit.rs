//! `/v1/admin/audit/verify` and `/v1/admin/audit/head`: the audit chain's integrity report
//! (the first broken link included) and its head for anchoring elsewhere (admin).

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{ApiError, Gateway, require_admin};

/// `GET /v1/admin/audit/verify`: walks the chain; `valid`, the first problem, and all of them.
pub(super) async fn verify(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&gw, &headers).await?;
    let report = gw.store_for("audit records")?.verify_audit().await?;
    Ok(Json(json!({
        "object": "aegis.audit_report",
        "valid": report.is_valid(),
        "first_problem": report.problems.first(),
        "report": report,
    }))
    .into_response())
}

/// `GET /v1/admin/audit/head`: the head, signed when the chain is keyed.
pub(super) async fn head(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&gw, &headers).await?;
    let head = gw.store_for("audit records")?.audit_head().await?;
    Ok(Json(json!({ "object": "aegis.audit_head", "head": head })).into_response())
}
