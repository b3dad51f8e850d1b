//! `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`.

use std::{convert::Infallible, sync::Arc};

use aegis::{
    ChatBody, ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, Error, ErrorKind,
    PipelineOutcome,
    providers::wire::{chunk_to_openai, completion_to_openai, usage_to_openai},
};
use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response, Sse, sse::Event},
};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;

use super::{ApiError, Gateway, body_of, context_from, parse_json};

/// `POST /v1/chat/completions`: JSON, or SSE in OpenAI's chunk format when `stream: true`.
pub(super) async fn chat_completions(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    chat(gw, None, headers, body).await
}

/// `POST /v1/pipelines/{pipeline}/chat/completions`: the same, on a named pipeline.
pub(super) async fn pipeline_chat_completions(
    State(gw): State<Arc<Gateway>>,
    Path(pipeline): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    chat(gw, Some(pipeline), headers, body).await
}

async fn chat(
    gw: Arc<Gateway>,
    pipeline: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut req: ChatRequest = parse_json(&body)?;
    if let Some(model) = headers.get("x-aegis-model").and_then(|v| v.to_str().ok()) {
        req.model = model.to_owned();
    }
    let include_usage = req
        .extra
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    req.ctx = context_from(&headers);
    let pipeline = gw.select(pipeline.as_deref(), &mut req.ctx).await?;
    let permit = if req.stream {
        Some(gw.stream_permit()?)
    } else {
        None
    };
    if let Some(steps) = take_mcp_tools(&mut req)? {
        return mcp_tool_chat(&gw, pipeline, req, steps).await;
    }
    let outcome = tokio::time::timeout(gw.timeout(), pipeline.run(req))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                "the request did not start answering in time",
            )
        })??;
    match outcome {
        PipelineOutcome::Paused { run_id, interrupt } => {
            Ok(super::runs::paused_response(&run_id, &interrupt))
        }
        PipelineOutcome::Response(resp) => Ok(respond(resp, include_usage, permit)),
    }
}

/// The `aegis.mcp_tools` option (`true`, or `{"max_steps": N}`), taken out of the request
/// (the pipeline does not read it): the model may then call the caller's MCP tools.
fn take_mcp_tools(req: &mut ChatRequest) -> Result<Option<usize>, Error> {
    let Some(Value::Object(options)) = req.extra.get_mut(aegis::OPTIONS_FIELD) else {
        return Ok(None);
    };
    let Some(value) = options.remove("mcp_tools") else {
        return Ok(None);
    };
    if options.is_empty() {
        req.extra.remove(aegis::OPTIONS_FIELD);
    }
    let steps = match &value {
        Value::Bool(false) => return Ok(None),
        Value::Bool(true) => aegis_mcp::DEFAULT_MAX_STEPS,
        Value::Object(o) => match o.get("max_steps").map(Value::as_u64) {
            None => aegis_mcp::DEFAULT_MAX_STEPS,
            Some(Some(n @ 1..=32)) => n as usize,
            Some(_) => {
                return Err(Error::invalid_request(
                    "`aegis.mcp_tools.max_steps` must be an integer from 1 to 32",
                ));
            }
        },
        _ => {
            return Err(Error::invalid_request(
                "`aegis.mcp_tools` must be `true` or `{\"max_steps\": N}`",
            ));
        }
    };
    if req.stream {
        return Err(Error::invalid_request(
            "`aegis.mcp_tools` answers complete (tool rounds run before the answer): set `stream` to false",
        ));
    }
    Ok(Some(steps))
}

/// A chat whose model may call the caller's MCP tools, through the hub.
async fn mcp_tool_chat(
    gw: &Gateway,
    pipeline: aegis::Pipeline,
    req: ChatRequest,
    steps: usize,
) -> Result<Response, ApiError> {
    let Some(endpoint) = gw.mcp().filter(|m| !m.hub().is_empty()) else {
        return Err(Error::invalid_request(
            "`aegis.mcp_tools`: no `[[mcp_servers]]` is configured",
        )
        .into());
    };
    let tools = aegis_mcp::ToolLoop::new(endpoint.hub().clone(), pipeline).max_steps(steps);
    let resp = tokio::time::timeout(gw.timeout(), tools.chat(req))
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "the tool rounds did not end in time"))??;
    Ok(respond(resp, false, None))
}

/// `POST /v1/mcp/approvals/{id}/resume`: the chat held on a tool call goes on once a
/// reviewer decided (the caller's own key; the default pipeline).
pub(super) async fn resume_mcp_chat(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut ctx = context_from(&headers);
    let pipeline = gw.select(None, &mut ctx).await?;
    let Some(endpoint) = gw.mcp().filter(|m| !m.hub().is_empty()) else {
        return Err(Error::new(ErrorKind::NotFound, "no `[[mcp_servers]]` is configured").into());
    };
    let tools = aegis_mcp::ToolLoop::new(endpoint.hub().clone(), pipeline);
    let resp = tokio::time::timeout(gw.timeout(), tools.resume(ctx, &id))
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "the tool rounds did not end in time"))??;
    Ok(respond(resp, false, None))
}

fn meta_headers(resp: &ChatResponse, out: &mut Response) {
    let h = out.headers_mut();
    if let Some(run) = resp
        .meta
        .run_id
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        h.insert("x-aegis-run-id", run);
    }
    if let Ok(v) = HeaderValue::from_str(&resp.meta.guards.join(",")) {
        h.insert("x-aegis-guards", v);
    }
    if let Ok(v) = HeaderValue::from_str(&resp.meta.provider) {
        h.insert("x-aegis-provider", v);
    }
    if !resp.meta.retrieval.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&ascii_json(&json!(resp.meta.retrieval))) {
            h.insert("x-aegis-retrieval", v);
        }
    }
}

/// `value` as compact JSON in ASCII only (`\uXXXX` escapes), so it fits in a header.
fn ascii_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

fn respond(
    resp: ChatResponse,
    include_usage: bool,
    permit: Option<OwnedSemaphorePermit>,
) -> Response {
    let meta = ChatResponse {
        meta: resp.meta.clone(),
        body: ChatBody::Stream(Box::pin(futures_util::stream::empty())),
    };
    let mut out = match resp.body {
        ChatBody::Complete(c) => {
            let mut body = completion_to_openai(&c);
            // Aegis's own metadata, beside OpenAI's fields (SDKs keep unknown fields).
            if !meta.meta.retrieval.is_empty() {
                body["aegis"] = json!({ "retrieval": meta.meta.retrieval });
            }
            Json(body).into_response()
        }
        ChatBody::Stream(stream) => {
            Sse::new(sse_events(stream, include_usage, permit)).into_response()
        }
    };
    meta_headers(&meta, &mut out);
    out
}

/// OpenAI's SSE framing: one `data:` per chunk, `data: [DONE]` after a clean end; a failure is
/// an `error` data event and the stream ends without `[DONE]`, so no client mistakes a
/// truncated answer for a complete one.
fn sse_events(
    stream: ChatStream,
    include_usage: bool,
    permit: Option<OwnedSemaphorePermit>,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> + Send {
    futures_util::stream::unfold(Some((stream, permit)), move |state| async move {
        let (mut stream, permit) = state?;
        loop {
            match stream.next().await {
                Some(Ok(mut chunk)) => {
                    if !include_usage {
                        if chunk.choices.is_empty() {
                            continue;
                        }
                        chunk.usage = None;
                    }
                    let data = chunk_to_openai(&chunk).to_string();
                    return Some((Ok(Event::default().data(data)), Some((stream, permit))));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "stream failed after the first byte");
                    return Some((Ok(Event::default().data(body_of(&e).to_string())), None));
                }
                None => return Some((Ok(Event::default().data("[DONE]")), None)),
            }
        }
    })
}

/// The most dimensions an embeddings request may ask for (no model offers more).
const MAX_DIMENSIONS: u32 = 4096;

/// What to embed: one text or several.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts (at least one).
    Many(#[schemars(length(min = 1))] Vec<String>),
}

/// The output format of embeddings.
#[derive(Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EncodingFormat {
    /// Arrays of numbers.
    Float,
    /// Base64 of little-endian `f32`s (what the official SDKs ask for).
    Base64,
}

/// The body of `POST /v1/embeddings`.
#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct EmbeddingBody {
    /// The model or alias.
    #[schemars(pattern(aegis::NOT_BLANK_PATTERN))]
    model: String,
    /// The text or texts.
    input: EmbeddingInput,
    /// `float` (default) or `base64`.
    #[serde(default)]
    encoding_format: Option<EncodingFormat>,
    /// Dimensions of the output, for models that can shorten it (1 to 4096).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_DIMENSIONS))]
    dimensions: Option<u32>,
    /// The end user, forwarded to the provider.
    #[serde(default)]
    user: Option<String>,
}

/// `POST /v1/embeddings`: floats, or base64 little-endian f32 when asked (the official
/// SDKs ask for base64 by default).
pub(super) async fn embeddings(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    embed(gw, None, headers, body).await
}

/// `POST /v1/pipelines/{pipeline}/embeddings`: the same, on a named pipeline.
pub(super) async fn pipeline_embeddings(
    State(gw): State<Arc<Gateway>>,
    Path(pipeline): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    embed(gw, Some(pipeline), headers, body).await
}

async fn embed(
    gw: Arc<Gateway>,
    pipeline: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: EmbeddingBody = parse_json(&body)?;
    let input = match b.input {
        EmbeddingInput::One(s) => vec![s],
        EmbeddingInput::Many(v) => v,
    };
    if let Some(d) = b.dimensions
        && !(1..=MAX_DIMENSIONS).contains(&d)
    {
        return Err(Error::invalid_request(format!(
            "`dimensions` must be between 1 and {MAX_DIMENSIONS}, not {d}"
        ))
        .into());
    }
    let base64 = b.encoding_format == Some(EncodingFormat::Base64);
    let mut req = EmbeddingRequest::new(b.model.clone(), input);
    req.dimensions = b.dimensions;
    if let Some(user) = b.user {
        req.extra.insert("user".into(), user.into());
    }
    req.ctx = context_from(&headers);
    let pipeline = gw.select(pipeline.as_deref(), &mut req.ctx).await?;
    let out = tokio::time::timeout(gw.timeout(), pipeline.embed(req))
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "embeddings did not answer in time"))??;
    let data: Vec<Value> = out
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(encode_base64(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let mut usage = usage_to_openai(&out.usage);
    usage["total_tokens"] = out.usage.input_tokens.into();
    Ok(
        Json(json!({"object": "list", "data": data, "model": out.model, "usage": usage}))
            .into_response(),
    )
}

/// `GET /v1/models`.
/// `GET /v1/models`: what this gateway routes to — for callers it accepts (the list names
/// providers and deployments, which is for its users to see, not for anyone).
pub(super) async fn models(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    gw.pipeline().authenticate(&context_from(&headers)).await?;
    let data: Vec<Value> = gw
        .pipeline()
        .models()
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    Ok((
        StatusCode::OK,
        Json(json!({"object": "list", "data": data})),
    )
        .into_response())
}

/// Standard base64 with padding (RFC 4648), enough for embedding vectors.
fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::encode_base64(input.as_bytes()), expected);
        }
    }
}
