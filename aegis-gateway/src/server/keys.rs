//! `/v1/admin/keys`: virtual API keys (admin role only). A key's secret is shown once, at
//! creation or rotation; the store keeps only its hash.

use std::sync::Arc;

use aegis::{Error, Principal};
use aegis_store::NewKey;
use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Gateway, parse_json, require_admin};

/// The body of `POST /v1/admin/keys`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    /// Whom the key authenticates as (its id must not be empty).
    principal: Principal,
    /// A name to tell keys apart in listings.
    #[serde(default)]
    name: String,
    /// When the key stops working (milliseconds since the epoch), or never.
    #[serde(default)]
    #[schemars(range(max = u64::MAX))]
    expires_at_ms: Option<u64>,
}

/// `POST /v1/admin/keys`: `{"principal": {"id", "team", "roles"}, "name", "expires_at_ms"}`.
pub(super) async fn create(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    let req: CreateKey = parse_json(&body)?;
    if req.principal.id.trim().is_empty() {
        return Err(Error::invalid_request("principal.id must not be empty").into());
    }
    let mut new = NewKey::new(req.principal).name(req.name).by(admin.id);
    if let Some(at) = req.expires_at_ms {
        new = new.expires_at_ms(at);
    }
    let created = gw.store_for("keys")?.create_key(new).await?;
    let body = json!({"key": created.key.expose(), "info": created.info,
                      "message": "store this key now: it is shown only once"});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/admin/keys`.
pub(super) async fn list(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&gw, &headers).await?;
    let keys = gw.store_for("keys")?.list_keys(None).await?;
    Ok(Json(json!({"object": "list", "data": keys})).into_response())
}

/// `POST /v1/admin/keys/{id}/revoke`: effective immediately.
pub(super) async fn revoke(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    let info = gw
        .store_for("keys")?
        .revoke_key(&id, Some(&admin.id))
        .await?;
    Ok(Json(json!({"info": info})).into_response())
}

/// `POST /v1/admin/keys/{id}/rotate`: a new key for the same principal; the old one is revoked.
pub(super) async fn rotate(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    let created = gw
        .store_for("keys")?
        .rotate_key(&id, None, Some(&admin.id))
        .await?;
    let body = json!({"key": created.key.expose(), "info": created.info,
                      "message": "store this key now: it is shown only once"});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
