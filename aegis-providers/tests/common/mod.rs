//! A local HTTP server that speaks whatever the test's reply function says, recording every
//! request, plus fixture helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    convert::Infallible,
    future::Future,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Method, Uri},
    response::Response,
};
use futures_util::StreamExt;
use serde_json::Value;

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Every request the server received, in order.
#[derive(Clone, Default)]
pub struct Seen(pub Arc<Mutex<Vec<Received>>>);

impl Seen {
    pub fn last(&self) -> Received {
        self.0.lock().unwrap().last().cloned().unwrap()
    }
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn all(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }
}

/// Serves every request with `reply(received)` on 127.0.0.1:0; returns the base URL.
pub async fn serve<F, Fut>(reply: F) -> (String, Seen)
where
    F: Fn(Received) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let seen = Seen::default();
    let log = seen.clone();
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let reply = reply.clone();
            let log = log.clone();
            async move {
                let r = Received {
                    method,
                    uri,
                    headers,
                    body,
                };
                log.0.lock().unwrap().push(r.clone());
                reply(r).await
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

pub fn json_response(status: u16, body: &Value) -> Response {
    raw_response(
        status,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}

pub fn raw_response(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

/// A streamed response whose body is written as the given pieces, one write each.
pub fn pieces_response(content_type: &str, pieces: Vec<Vec<u8>>, pause: Duration) -> Response {
    let stream = futures_util::stream::iter(pieces).then(move |p| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Ok::<_, Infallible>(Bytes::from(p))
    });
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(Body::from_stream(stream))
        .unwrap()
}

/// An SSE response: the text split into one write per event (blank-line separated).
pub fn sse_text_response(text: &str) -> Response {
    let pieces = text
        .split_inclusive("\n\n")
        .map(|p| p.as_bytes().to_vec())
        .collect();
    pieces_response("text/event-stream", pieces, Duration::ZERO)
}

pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn fixture(rel: &str) -> String {
    std::fs::read_to_string(fixture_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn fixture_json(rel: &str) -> Value {
    serde_json::from_str(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---- an in-process provider that answers from a script, counting calls ----

use aegis_contracts::{
    ChatChunk, ChatRequest, ChatResponse, Completion, Error, Provider, ProviderCapabilities,
    ResponseMeta, async_trait,
};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a scripted provider answers.
pub enum Reply {
    Text(String),
    Fail(Error),
    /// Waits (tokio time), then answers.
    After(Duration, Box<Reply>),
    /// Streams these items (text chunks or errors), pausing `gap` before each.
    Stream(Vec<Result<String, Error>>, Duration),
}

type Script = Box<dyn Fn(usize, &ChatRequest) -> Reply + Send + Sync>;

pub struct Scripted {
    name: String,
    region: Option<String>,
    pub calls: AtomicUsize,
    script: Script,
}

impl Scripted {
    pub fn new(
        name: &str,
        script: impl Fn(usize, &ChatRequest) -> Reply + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            region: None,
            calls: AtomicUsize::new(0),
            script: Box::new(script),
        })
    }

    pub fn in_region(
        name: &str,
        region: &str,
        script: impl Fn(usize, &ChatRequest) -> Reply + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            region: Some(region.into()),
            calls: AtomicUsize::new(0),
            script: Box::new(script),
        })
    }

    /// Always answers `text`.
    pub fn ok(name: &str) -> Arc<Self> {
        let n = name.to_owned();
        Self::new(name, move |_, _| Reply::Text(format!("from {n}")))
    }

    pub fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

pub fn server_error(provider: &str) -> Error {
    Error::provider(format!("provider `{provider}` failed (500): boom"))
        .with_retryable(true)
        .with_status(500)
}

fn answer(
    name: String,
    model: String,
    reply: Reply,
) -> std::pin::Pin<Box<dyn Future<Output = Result<ChatResponse, Error>> + Send>> {
    Box::pin(async move {
        match reply {
            Reply::Text(t) => Ok(ChatResponse::complete(
                ResponseMeta::new(name, model.clone()),
                Completion::text("id", model, t),
            )),
            Reply::Fail(e) => Err(e),
            Reply::After(d, r) => {
                tokio::time::sleep(d).await;
                answer(name, model, *r).await
            }
            Reply::Stream(items, gap) => {
                let m = model.clone();
                let s = futures_util::stream::iter(items).then(move |item| {
                    let m = m.clone();
                    async move {
                        if !gap.is_zero() {
                            tokio::time::sleep(gap).await;
                        }
                        item.map(|t| ChatChunk::text("id", m, t))
                    }
                });
                Ok(ChatResponse::stream(
                    ResponseMeta::new(name, model),
                    Box::pin(s),
                ))
            }
        }
    })
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::all()
    }
    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }
    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let reply = (self.script)(n, &req);
        answer(self.name.clone(), req.model.clone(), reply).await
    }
}

pub fn hello(model: &str) -> ChatRequest {
    ChatRequest::new(model, vec![aegis_contracts::Message::user("hello")])
}
