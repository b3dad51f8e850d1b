//! [`TelemetryLayer`]: run events around any chat service.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use aegis_contracts::ChatStream;
use aegis_contracts::{ChatBody, ChatRequest, ChatResponse, Error, RunEventKind, Usage};
use futures_util::StreamExt;
use tower_layer::Layer;
use tower_service::Service;

use self::future::ResponseFuture;
use crate::{Telemetry, graph::new_run_id};

/// Emits `run_started`, `provider_call` (usage and latency; for streams when the stream
/// ends), and `completed` or `failed` for every call. Assigns a run id when the request has
/// none, so inner layers report under the same id.
#[derive(Clone, Debug)]
pub struct TelemetryLayer {
    telemetry: Telemetry,
}

impl TelemetryLayer {
    /// A layer reporting to `telemetry`.
    pub fn new(telemetry: Telemetry) -> Self {
        Self { telemetry }
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetered<S>;

    fn layer(&self, inner: S) -> Telemetered<S> {
        Telemetered {
            inner,
            telemetry: self.telemetry.clone(),
        }
    }
}

/// The service produced by [`TelemetryLayer`].
#[derive(Clone, Debug)]
pub struct Telemetered<S> {
    inner: S,
    telemetry: Telemetry,
}

impl<S> Telemetered<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, telemetry: Telemetry) -> Self {
        Self { inner, telemetry }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<ChatRequest> for Telemetered<S>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ChatRequest) -> ResponseFuture {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let telemetry = self.telemetry.clone();
        ResponseFuture::new(async move {
            let run_id = req.ctx.run_id.get_or_insert_with(new_run_id).clone();
            let model = req.model.clone();
            telemetry.emit(&run_id, || RunEventKind::RunStarted {
                graph: "layers".into(),
            });
            let started = Instant::now();
            match inner.call(req).await {
                Err(err) => {
                    let latency = started.elapsed();
                    telemetry.emit(&run_id, || RunEventKind::ProviderCall {
                        provider: String::new(),
                        model,
                        usage: None,
                        latency_us: latency,
                        error: Some(err.kind()),
                    });
                    telemetry.emit(&run_id, || RunEventKind::Failed {
                        error: err.kind(),
                        message: err.message().to_owned(),
                    });
                    Err(err)
                }
                Ok(mut resp) => {
                    let latency = started.elapsed();
                    let provider = resp.meta.provider.clone();
                    let model = resp.meta.model.clone();
                    resp.meta.run_id.get_or_insert_with(|| run_id.clone());
                    match resp.body {
                        ChatBody::Complete(ref c) => {
                            let usage = c.usage;
                            telemetry.emit(&run_id, || RunEventKind::ProviderCall {
                                provider,
                                model,
                                usage,
                                latency_us: latency,
                                error: None,
                            });
                            telemetry.emit(&run_id, || RunEventKind::Completed);
                        }
                        ChatBody::Stream(stream) => {
                            let observer = StreamObserver {
                                telemetry,
                                run_id,
                                provider,
                                model,
                                latency,
                                usage: None,
                                report_outcome: true,
                                span: tracing::Span::none(),
                                started: std::time::Instant::now(),
                                first_chunk: false,
                            };
                            resp.body = ChatBody::Stream(observer.observe(stream));
                        }
                    }
                    Ok(resp)
                }
            }
        })
    }
}

/// Reports a stream's provider call and outcome when it ends, not when it starts.
pub(crate) struct StreamObserver {
    pub(crate) telemetry: Telemetry,
    pub(crate) run_id: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) latency: std::time::Duration,
    pub(crate) usage: Option<Usage>,
    /// Also report `completed` / `failed` (the layer does; the graph reports its own).
    pub(crate) report_outcome: bool,
    /// The provider call's span, held until the stream ends so it covers the whole answer;
    /// it gets the usage of the final chunk and the time to the first.
    pub(crate) span: tracing::Span,
    /// When the call was made.
    pub(crate) started: std::time::Instant,
    pub(crate) first_chunk: bool,
}

impl StreamObserver {
    pub(crate) fn observe(self, stream: ChatStream) -> ChatStream {
        Box::pin(futures_util::stream::unfold(
            Some((self, stream)),
            |state| async move {
                let (mut obs, mut stream) = state?;
                match stream.next().await {
                    Some(Ok(chunk)) => {
                        obs.saw(&chunk);
                        Some((Ok(chunk), Some((obs, stream))))
                    }
                    Some(Err(err)) => {
                        obs.report(Some(&err));
                        Some((Err(err), None))
                    }
                    None => {
                        obs.report(None);
                        None
                    }
                }
            },
        ))
    }

    fn saw(&mut self, chunk: &aegis_contracts::ChatChunk) {
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if !self.first_chunk {
            self.first_chunk = true;
            self.span.record(
                "aegis.time_to_first_chunk_ms",
                self.started.elapsed().as_secs_f64() * 1e3,
            );
            if !chunk.model.is_empty() {
                self.span
                    .record("gen_ai.response.model", chunk.model.as_str());
            }
        }
        if let Some(reason) = chunk
            .choices
            .iter()
            .find_map(|c| c.finish_reason.as_deref())
        {
            self.span.record("gen_ai.response.finish_reasons", reason);
        }
    }

    fn report(&self, err: Option<&Error>) {
        if let Some(u) = &self.usage {
            record_usage(&self.span, u);
        }
        if let Some(e) = err {
            self.span.record("error.type", e.kind().code());
        }

        self.telemetry
            .emit(&self.run_id, || RunEventKind::ProviderCall {
                provider: self.provider.clone(),
                model: self.model.clone(),
                usage: self.usage,
                latency_us: self.latency,
                error: err.map(Error::kind),
            });
        if !self.report_outcome {
            return;
        }
        self.telemetry.emit(&self.run_id, || match err {
            None => RunEventKind::Completed,
            Some(e) => RunEventKind::Failed {
                error: e.kind(),
                message: e.message().to_owned(),
            },
        });
    }
}

impl Drop for StreamObserver {
    /// A span's end is when it was last left: leave it now, at the stream's end (or when
    /// the caller dropped the stream).
    fn drop(&mut self) {
        self.span.in_scope(|| {});
    }
}

/// `usage` on `span` as the GenAI token counts (integers: OpenTelemetry has no unsigned
/// type, and a `u64` would be exported as a string).
pub(crate) fn record_usage(span: &tracing::Span, usage: &Usage) {
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    span.record("gen_ai.usage.input_tokens", int(usage.input_tokens));
    span.record("gen_ai.usage.output_tokens", int(usage.output_tokens));
}

crate::response_future!(Telemetered);
