//! `/v1/rag/{store}/documents`: ingesting texts into a `[[retrievers]]` store (chunked,
//! each chunk judged by the guard chain before it is indexed) and deleting them by id or by
//! source. Admin role: what enters a store reaches other callers' prompts.

use std::sync::Arc;

use aegis::{
    Error, ErrorKind, RequestContext, VectorStore,
    rag::{Chunking, IngestText},
};
use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Gateway, parse_json, require_admin};

/// `POST /v1/rag/{store}/documents`: texts to ingest.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestBody {
    /// The texts, each with its source (ingesting a source again replaces all of its
    /// chunks) and who may read it.
    documents: Vec<IngestText>,
    /// How texts are cut (default: 1000 characters, 100 of overlap).
    #[serde(default)]
    chunking: Chunking,
}

/// `POST /v1/rag/{store}/documents/delete`: exactly one of `ids` and `source`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteBody {
    /// Chunk ids (`{source}#{n}`).
    #[serde(default)]
    ids: Option<Vec<String>>,
    /// Every chunk of this source.
    #[serde(default)]
    source: Option<String>,
}

/// The writable store `id` of the serving config, or a clear error.
fn store_of(gw: &Gateway, id: &str) -> Result<Arc<dyn aegis::Retriever>, ApiError> {
    let set = gw.pipelines();
    let Some((_, retriever)) = set.retrievers().iter().find(|(r, _)| r == id) else {
        let known: Vec<&str> = set.retrievers().iter().map(|(r, _)| r.as_str()).collect();
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no store `{id}` is configured (configured: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        )
        .with_code("store_not_found")
        .into());
    };
    if retriever.as_store().is_none() {
        return Err(Error::invalid_request(format!(
            "retriever `{id}` is read-only: it cannot be ingested into"
        ))
        .into());
    }
    Ok(retriever.clone())
}

fn writable(retriever: &dyn aegis::Retriever) -> Result<&dyn VectorStore, ApiError> {
    retriever
        .as_store()
        .ok_or_else(|| Error::internal("the store stopped being writable").into())
}

/// `POST /v1/rag/{store}/documents`.
pub(super) async fn ingest(
    State(gw): State<Arc<Gateway>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    let body: IngestBody = parse_json(&body)?;
    let retriever = store_of(&gw, &store)?;
    let pipeline = gw.pipeline();
    let ctx = RequestContext::default().with_principal(admin.clone());
    let report = aegis::rag::ingest(
        writable(retriever.as_ref())?,
        pipeline.chain(),
        &ctx,
        body.documents,
        body.chunking,
    )
    .await?;
    let sources: Vec<&str> = report.iter().map(|r| r.source.as_str()).collect();
    tracing::info!(by = %admin.id, store = %store, sources = ?sources, "ingested into a RAG store");
    Ok(Json(json!({
        "object": "aegis.rag.ingest",
        "store": store,
        "ingested": report,
    })))
}

/// `POST /v1/rag/{store}/documents/delete`.
pub(super) async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    let body: DeleteBody = parse_json(&body)?;
    let retriever = store_of(&gw, &store)?;
    let target = writable(retriever.as_ref())?;
    let deleted = match (&body.ids, &body.source) {
        (Some(ids), None) if !ids.is_empty() => target.delete(ids).await?,
        (None, Some(source)) if !source.trim().is_empty() => target.delete_source(source).await?,
        _ => {
            return Err(Error::invalid_request(
                "give exactly one of `ids` (non-empty) and `source`",
            )
            .into());
        }
    };
    tracing::info!(by = %admin.id, store = %store, deleted, "deleted from a RAG store");
    Ok(Json(json!({
        "object": "aegis.rag.delete",
        "store": store,
        "deleted": deleted,
    })))
}
