//! `/v1/admin/budgets`: what a budget line has spent and holds; resetting it and setting
//! its limit (admin; each change is in the audit log with who made it).

use std::sync::Arc;

use aegis::{Error, ErrorKind, Limit};
use aegis_store::LineChange;
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
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line {
    /// `key:<principal>`, `team:<team>` or `org:<org>`.
    #[schemars(regex(pattern = aegis_store::LINE_ACCOUNT_PATTERN))]
    account: String,
    /// `total`, `day:YYYY-MM-DD` or `month:YYYY-MM`.
    #[schemars(regex(pattern = aegis_store::LINE_PERIOD_PATTERN))]
    period: String,
}

/// `GET /v1/admin/budgets?account=team:research&period=month:2026-12`.
pub(super) async fn show(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(line): Query<Line>,
) -> Result<Response, ApiError> {
    require_admin(&gw, &headers).await?;
    show_line(&gw, &line.account, &line.period).await
}

/// One line as `aegis.budget` JSON: limit (and where it comes from), spent, reserved, left.
async fn show_line(gw: &Gateway, account: &str, period: &str) -> Result<Response, ApiError> {
    let b = gw
        .budgets()?
        .balance(account, period)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no budget line `{account}` for `{period}`"),
            )
        })?;
    let (usd_left, tokens_left) = b.remaining();
    Ok(Json(json!({
        "object": "aegis.budget",
        "account": account,
        "period": period,
        "limit": {"usd": b.limit.usd_micros.map(|u| u as f64 / 1e6), "tokens": b.limit.tokens},
        "limit_source": if b.limit_set_at_ms.is_some() { "admin" } else { "config" },
        "limit_set_at_ms": b.limit_set_at_ms,
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
    gw.budgets()?
        .change_budget(
            &line.account,
            &line.period,
            LineChange::Reset,
            Some(&admin.id),
        )
        .await?;
    tracing::info!(by = %admin.id, account = %line.account, period = %line.period, "budget reset");
    Ok(Json(json!({"object": "aegis.budget", "account": line.account, "period": line.period, "reset": true})).into_response())
}

/// The body of `POST /v1/admin/budgets/limit`: `usd` and/or `tokens`, or `clear`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetLimit {
    /// `key:<principal>`, `team:<team>` or `org:<org>`.
    #[schemars(regex(pattern = aegis_store::LINE_ACCOUNT_PATTERN))]
    account: String,
    /// `total`, `day:YYYY-MM-DD` or `month:YYYY-MM`.
    #[schemars(regex(pattern = aegis_store::LINE_PERIOD_PATTERN))]
    period: String,
    /// US dollars, 0 (frozen) to a billion.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "f64", range(min = 0, max = 1_000_000_000))]
    usd: Option<f64>,
    /// Tokens, 0 (frozen) to 2^40.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "u64", range(max = 1_099_511_627_776u64))]
    tokens: Option<u64>,
    /// Return the line to its configured limit instead (with neither `usd` nor `tokens`).
    #[serde(default)]
    clear: bool,
}

/// An optional field that, when present, is not `null` (absent is the only "none").
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `POST /v1/admin/budgets/limit` with `{"account", "period", "usd"?, "tokens"?}`: set the
/// line's limit over the configured one (`0` freezes it), or with `"clear": true` return it
/// to the configured limit.
pub(super) async fn set_limit(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    let req: SetLimit = parse_json(&body)?;
    let change = match (req.clear, req.usd, req.tokens) {
        (true, None, None) => LineChange::ClearLimit,
        (true, _, _) => {
            return Err(Error::invalid_request("`clear` takes no `usd` or `tokens`").into());
        }
        (false, usd, tokens) => {
            let usd_micros = match usd {
                None => None,
                Some(u) if u.is_finite() && (0.0..=1e9).contains(&u) => {
                    Some((u * 1e6).round() as u64)
                }
                Some(u) => {
                    return Err(Error::invalid_request(format!(
                        "`usd`: {u} is not a limit (0 to a billion dollars)"
                    ))
                    .into());
                }
            };
            LineChange::SetLimit(Limit::new(usd_micros, tokens))
        }
    };
    gw.budgets()?
        .change_budget(&req.account, &req.period, change, Some(&admin.id))
        .await?;
    tracing::info!(by = %admin.id, account = %req.account, period = %req.period, clear = req.clear, "budget limit changed");
    show_line(&gw, &req.account, &req.period).await
}
