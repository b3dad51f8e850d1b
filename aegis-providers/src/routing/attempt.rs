//! Attempts: the retry and fallback loop, one attempt at a deployment, and the stream a
//! successful attempt hands back.

use super::*;

/// What one attempt produced.
pub(super) enum Outcome<T> {
    Done(T),
    /// Retryable: try elsewhere or again.
    Retry(Error),
}

impl Router {
    pub(super) fn no_candidate(&self, model: &str, compliant: bool, last: Option<Error>) -> Error {
        let name = &self.inner.name;
        if let Some(e) = last {
            return e;
        }
        if compliant {
            Error::provider(format!(
                "router `{name}`: every deployment of model `{model}` and its fallbacks is ejected (circuit open)"
            ))
            .with_retryable(true)
        } else {
            Error::new(
                ErrorKind::ResidencyViolation,
                format!(
                    "router `{name}`: no deployment of model `{model}` or its fallbacks satisfies the residency filter; the request is refused, not sent elsewhere"
                ),
            )
        }
    }

    /// The attempt loop shared by chat and embeddings.
    pub(super) async fn run<T, F, Fut>(&self, req: &ChatRequest, mut call: F) -> Result<T, Error>
    where
        F: FnMut(usize, usize, Option<Duration>) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let inner = &*self.inner;
        let gi = inner.resolve(&req.model)?;
        let deadline = inner.total_timeout.map(|t| Instant::now() + t);
        let mut chain = vec![gi];
        chain.extend(inner.groups[gi].fallbacks.iter().copied());
        let mut tried: Vec<(usize, usize)> = Vec::new();
        let mut compliant = false;
        let mut last: Option<Error> = None;
        let mut attempts = 0u32;
        for g in chain {
            let group = &inner.groups[g];
            let mut repeats = 0u32;
            loop {
                let (mut i, repeat) = match inner.select(group, req, &tried, g) {
                    Pick::Chosen(i, repeat) => (i, repeat),
                    Pick::AllOpen => {
                        compliant = true;
                        break;
                    }
                    Pick::NoneCompliant => break,
                };
                compliant = true;
                if repeat {
                    if repeats >= inner.retry.max_retries {
                        break;
                    }
                    repeats += 1;
                    let mut wait = inner.retry.delay(repeats);
                    if let Some(ra) = last.as_ref().and_then(Error::retry_after) {
                        wait = wait.max(ra);
                    }
                    if let Some(left) = inner.remaining(deadline)
                        && wait >= left
                    {
                        // Waiting would outlast the whole budget: give up now.
                        return Err(self.exhausted(&req.model, attempts, last));
                    }
                    tokio::time::sleep(wait).await;
                    // The world may have changed while we slept: choose again, re-checking
                    // the residency filter.
                    match inner.select(group, req, &tried, g) {
                        Pick::Chosen(again, _) => i = again,
                        _ => break,
                    }
                }
                if let Some(left) = inner.remaining(deadline)
                    && left.is_zero()
                {
                    return Err(self.exhausted(&req.model, attempts, last));
                }
                attempts += 1;
                if !tried.contains(&(g, i)) {
                    tried.push((g, i));
                }
                match call(g, i, inner.attempt_deadline(deadline)).await {
                    Outcome::Done(t) => return Ok(t),
                    Outcome::Retry(e) => last = Some(e),
                }
            }
        }
        if attempts == 0 {
            return Err(self.no_candidate(&req.model, compliant, None));
        }
        Err(self.exhausted(&req.model, attempts, last))
    }

    pub(super) fn exhausted(&self, model: &str, attempts: u32, last: Option<Error>) -> Error {
        match last {
            Some(e) if attempts <= 1 => e,
            Some(e) => {
                let msg = format!(
                    "router `{}`: model `{model}` failed after {attempts} attempts; last: {e}",
                    self.inner.name
                );
                let mut out = Error::new(e.kind(), msg).with_retryable(e.is_retryable());
                if let Some(s) = e.status() {
                    out = out.with_status(s);
                }
                if let Some(ra) = e.retry_after() {
                    out = out.with_retry_after(ra);
                }
                out.with_source(e)
            }
            None => Error::new(
                ErrorKind::Timeout,
                format!(
                    "router `{}`: model `{model}` got no answer within the total timeout",
                    self.inner.name
                ),
            ),
        }
    }

    pub(super) fn deployment(&self, g: usize, i: usize) -> &Deployment {
        &self.inner.groups[g].deployments[i]
    }

    pub(super) fn attempt_timeout_error(&self, d: &Deployment, t: Duration) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "router `{}`: deployment `{}` did not answer within {} ms",
                self.inner.name,
                d.id,
                t.as_millis()
            ),
        )
    }

    /// Classifies an attempt's error, updating the deployment's health.
    pub(super) fn failed<T>(&self, d: &Deployment, e: Error) -> Result<Outcome<T>, Error> {
        if e.is_retryable() {
            d.failed(&self.inner.name, self.inner.now_ms(), &self.inner.breaker);
            Ok(Outcome::Retry(e))
        } else {
            // The deployment answered; the request itself is at fault.
            d.state.probing.store(false, Ordering::Release);
            Err(e)
        }
    }

    pub(super) async fn chat_attempt(
        &self,
        g: usize,
        i: usize,
        req: &ChatRequest,
        limit: Option<Duration>,
    ) -> Result<Outcome<ChatResponse>, Error> {
        let d = self.deployment(g, i).clone();
        if let Health::HalfOpen = d.state.health(self.inner.now_ms()) {
            d.state.probing.store(true, Ordering::Release);
        }
        let mut r = req.clone();
        r.model.clone_from(&d.model);
        let started = Instant::now();
        d.state.in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(Some(Arc::clone(&d.state)));
        let fut = async {
            let resp = d.provider.chat(r).await?;
            match resp.body {
                ChatBody::Complete(c) => Ok((resp.meta, Peeked::Complete(c))),
                ChatBody::Stream(mut s) => match s.next().await {
                    // Fallback stays possible until the first chunk: peek it.
                    Some(Err(e)) => Err(e),
                    first => Ok((resp.meta, Peeked::Stream(first, s))),
                },
            }
        };
        // One span per attempt (to the answer's first chunk), under the provider call's.
        let span = tracing::info_span!(
            "aegis.attempt",
            otel.name = %format_args!("attempt {}", d.id),
            aegis.router = %self.inner.name,
            aegis.deployment = %d.id,
            aegis.region = d.region.as_deref().unwrap_or_default(),
            gen_ai.request.model = %d.model,
            error.type = tracing::field::Empty,
        );
        let fut = tracing::Instrument::instrument(fut, span.clone());
        let result = match limit {
            None => fut.await,
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => Err(self.attempt_timeout_error(&d, t)),
            },
        };
        if let Err(e) = &result {
            span.record("error.type", e.kind().code());
        }
        match result {
            Ok((mut meta, peeked)) => {
                // The audit names the deployment that answered and where it runs.
                meta.deployment = Some(d.id.clone());
                meta.region.clone_from(&d.region);
                d.state.record_latency(started.elapsed());
                d.succeeded(&self.inner.name);
                Ok(Outcome::Done(match peeked {
                    Peeked::Complete(c) => ChatResponse::complete(meta, c),
                    Peeked::Stream(first, rest) => {
                        let head = futures_util::stream::iter(first);
                        let stream = RoutedStream {
                            inner: Box::pin(head.chain(rest)),
                            deployment: d.clone(),
                            router: Arc::clone(&self.inner),
                            _in_flight: in_flight,
                        };
                        ChatResponse::stream(meta, Box::pin(stream))
                    }
                }))
            }
            Err(e) => self.failed(&d, e),
        }
    }
}

/// A successful attempt, with a stream's first item already read.
pub(super) enum Peeked {
    Complete(aegis_contracts::Completion),
    Stream(Option<Result<ChatChunk, Error>>, ChatStream),
}

/// Decrements a deployment's in-flight count when dropped.
pub(super) struct InFlight(pub(super) Option<Arc<DeploymentState>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A routed stream: items pass through untouched; a mid-stream failure counts against the
/// deployment's health but never triggers another request.
pub(super) struct RoutedStream {
    pub(super) inner: ChatStream,
    pub(super) deployment: Deployment,
    pub(super) router: Arc<Inner>,
    pub(super) _in_flight: InFlight,
}

impl Stream for RoutedStream {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Err(e))) = &item
            && e.is_retryable()
        {
            let now = self.router.now_ms();
            self.deployment
                .failed(&self.router.name, now, &self.router.breaker);
        }
        item
    }
}
