//! `/v1/admin/budgets`: what a budget line has spent and holds, and resetting it (admin).

use std::sync::Arc;

use aegis::{BudgetLedger, Error, ErrorKind};
use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Gateway, parse_json, require_admin};

/// One budget line: `account` (`key:ada`, `team:research`, `org:acme`) in `period`
/// (`day:2026-12-01`, `month:2026-12`, `total`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Line {
    account: String,
    period: String,
}

/// `GET /v1/admin/budgets?account=team:research&period=month:2026-12`.
pub(super) async fn show(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(line): Query<Line>,
) -> Result<Response, ApiError> {
    require_admin(&gw, &headers).await?;
    let b = gw
        .store_for("budgets")?
        .balance(&line.account, &line.period)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no budget line `{}` for `{}`", line.account, line.period),
            )
        })?;
    let (usd_left, tokens_left) = b.remaining();
    Ok(Json(json!({
        "object": "aegis.budget",
        "account": line.account,
        "period": line.period,
        "limit": {"usd": b.limit.usd_micros.map(|u| u as f64 / 1e6), "tokens": b.limit.tokens},
        "spent": {"usd": b.spent.usd_micros as f64 / 1e6, "tokens": b.spent.tokens},
        "reserved": {"usd": b.reserved.usd_micros as f64 / 1e6, "tokens": b.reserved.tokens},
        "remaining": {"usd": usd_left.map(|u| u as f64 / 1e6), "tokens": tokens_left},
    }))
    .into_response())
}

/// `POST /v1/admin/budgets/reset` with `{"account": ..., "period": ...}`: zero its spend.
pub(super) async fn reset(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    let line: Line = parse_json(&body)?;
    gw.store_for("budgets")?
        .reset_budget(&line.account, &line.period)
        .await?;
    tracing::info!(by = %admin.id, account = %line.account, period = %line.period, "budget reset");
    Ok(Json(json!({"object": "aegis.budget", "account": line.account, "period": line.period, "reset": true})).into_response())
}
