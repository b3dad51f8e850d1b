//! The one path by which a run ends.
//!
//! A run ends when its response ends: a complete answer when it is judged, a stream when its
//! last chunk has been judged and handed over — or when it is blocked, fails, or is dropped
//! by the caller. Whatever the way, [`RunEnd::finish`] runs exactly once and, in this order,
//! writes the terminal checkpoint (version-checked: of two processes ending one run, one
//! wins and the other reports nothing), emits the audit record with the final usage, calls
//! every policy's run-end hook (each within a time limit), emits the terminal run event, and
//! lets the guards drop the run's state (PII vaults). A `RunEnd` dropped unfinished ends the
//! run `cancelled` on a background task; an end that must wait finishes on its own task, so
//! a caller that goes away cannot leave a run half-ended.

use aegis_contracts::{
    ChatChunk, ChatStream, CompletionBuilder, Error, ErrorKind, RunEventKind, RunStatus,
    RunSummary, Stage, Usage,
};
use futures_util::StreamExt;

use super::{
    Exchange, Pipeline,
    approval::{answer_subject, approval_interrupt, content_edit_schema},
};
use crate::graph::OpenRun;
use crate::guard::PendingApproval;

/// The pending end of one run. Created when the run starts; consumed by
/// [`finish`](Self::finish) or, for a pause, [`disarm`](Self::disarm).
pub(super) struct RunEnd {
    pipeline: Pipeline,
    run_id: String,
    /// The graph's handle on the run, once the graph has let go of it.
    open: Option<OpenRun>,
    /// The latest state: the seed before the graph ran, the final state after.
    state: Option<Exchange>,
    /// Whether the run may have checkpoints (embeddings never do).
    stored: bool,
    /// A resume whose claim carries a lease: if it is dropped before the graph hands the
    /// run back, the run is left to recovery, not cancelled.
    leased: bool,
    armed: bool,
    /// The run's span: every node, guard and provider call of the run is inside it, and it
    /// ends when the run does (for a stream, after the last chunk).
    span: tracing::Span,
}

/// The span of run `run_id` (no content: ids, status, usage and cost only).
fn run_span(run_id: &str) -> tracing::Span {
    tracing::info_span!(
        "aegis.run",
        otel.name = "aegis.run",
        aegis.run_id = %run_id,
        aegis.run.status = tracing::field::Empty,
        aegis.cost_usd = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

impl RunEnd {
    /// The end of run `run_id`, whose state is `seed` so far (unknown for a resume until
    /// the stored state is read).
    pub(super) fn new(pipeline: Pipeline, run_id: String, seed: Option<Exchange>) -> Self {
        Self {
            span: run_span(&run_id),
            pipeline,
            run_id,
            open: None,
            state: seed,
            stored: true,
            leased: false,
            armed: true,
        }
    }

    /// The end of a resumed run (see [`leased`](Self::leased)).
    pub(super) fn leased(mut self) -> Self {
        self.leased = true;
        self
    }

    /// The run's span, to run the graph in.
    pub(super) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// A run that is never checkpointed: its end writes nothing to the store.
    pub(super) fn unstored(mut self) -> Self {
        self.stored = false;
        self
    }

    /// The run paused: it has not ended, and nothing is reported.
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }

    /// The graph finished with the run: hold its handle and final state.
    pub(super) fn hold(&mut self, open: Option<OpenRun>, state: Exchange) {
        self.open = open;
        self.state = Some(state);
    }

    /// The stream's output guards asked for approval: the run pauses at the output guards
    /// with the whole upstream answer in its state (nothing ends; a resume judges it again,
    /// approved). Returns the error that tells the caller which run to decide on. If the
    /// pause cannot be stored, the run ends `failed` instead.
    pub(super) async fn suspend(mut self, pending: PendingApproval) -> Error {
        let (Some(open), Some(mut state)) = (self.open.take(), self.state.take()) else {
            let err = Error::internal("a stream asked for approval outside a run");
            self.finish(RunStatus::Failed, Some(&err), None).await.ok();
            return err;
        };
        self.armed = false;
        let digest = crate::guard::completion_digest(&pending.completion);
        let subject = answer_subject(&pending.completion);
        state.completion = Some(pending.completion);
        let request = approval_interrupt(
            &pending.verdict,
            Stage::Output,
            digest,
            None,
            content_edit_schema(),
            subject,
        );
        let reason = request.reason.clone();
        let paused = self
            .pipeline
            .graph
            .pause_open(open, state, "output_guards", request)
            .await;
        match paused {
            Ok(_) => Error::new(
                ErrorKind::ApprovalRequired,
                format!(
                    "{reason}; the answer is held: approve or reject run {id} (e.g. `aegis runs approve {id}`)",
                    id = self.run_id
                ),
            )
            .with_code("approval_required")
            .with_run_id(self.run_id.clone()),
            Err(e) => {
                let e = e.with_run_id(self.run_id.clone());
                self.armed = true;
                self.finish(RunStatus::Failed, Some(&e), None).await.ok();
                e
            }
        }
    }

    /// Ends the run with `status`. `error` is the cause of a `failed`, `blocked` or
    /// `rejected` end; `usage` the final usage when it is not in the state (streams).
    /// Returns the final state (the host takes the answer out of it without a copy).
    ///
    /// The end runs to completion even if the caller goes away meanwhile: when it has to
    /// wait (a database write, a hook doing I/O) it continues on its own task.
    pub(super) async fn finish(
        mut self,
        status: RunStatus,
        error: Option<&Error>,
        usage: Option<Usage>,
    ) -> Result<Option<Exchange>, Error> {
        self.armed = false;
        let job = Ending {
            pipeline: self.pipeline.clone(),
            run_id: std::mem::take(&mut self.run_id),
            open: self.open.take(),
            state: self.state.take(),
            stored: self.stored,
            status,
            // The cause as events and hooks see it (kind, code, message).
            error: error.map(|e| Error::new(e.kind(), e.message()).with_code(e.code())),
            usage,
            span: self.span.clone(),
        };
        let mut fut = Box::pin(job.run());
        // Most ends finish in one poll (a memory store, no hook I/O); one that must wait
        // moves to its own task.
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(fut.as_mut(), cx))
        })
        .await;
        match first {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => tokio::spawn(fut)
                .await
                .unwrap_or_else(|e| Err(Error::internal(format!("ending the run failed: {e}")))),
        }
    }
}

impl Drop for RunEnd {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.leased && self.open.is_none() {
            // The claim's lease expires and another process (or a later call of
            // `Pipeline::recover`) finishes the run with the recorded decision.
            tracing::info!(run_id = %self.run_id, "a resume was dropped; its run is left to recovery");
            return;
        }
        let job = Ending {
            pipeline: self.pipeline.clone(),
            run_id: std::mem::take(&mut self.run_id),
            open: self.open.take(),
            state: self.state.take(),
            stored: self.stored,
            status: RunStatus::Cancelled,
            error: None,
            usage: None,
            span: self.span.clone(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let run_id = job.run_id.clone();
                    if let Err(e) = job.run().await {
                        tracing::warn!(run_id = %run_id, error = %e, "ending a cancelled run failed");
                    }
                });
            }
            // No runtime (the host is shutting down): nothing can be awaited; say so.
            Err(_) => tracing::warn!(
                "a run was dropped outside a tokio runtime; its cancellation is not recorded"
            ),
        }
    }
}

/// How long one policy's run-end hook may take before the end goes on without it.
const HOOK_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything an end needs, owned, so it can finish on its own task.
struct Ending {
    pipeline: Pipeline,
    run_id: String,
    open: Option<OpenRun>,
    state: Option<Exchange>,
    stored: bool,
    status: RunStatus,
    error: Option<Error>,
    usage: Option<Usage>,
    span: tracing::Span,
}

impl Ending {
    /// Records the end first (version-checked, so of two processes ending one run only one
    /// wins), then emits the audit record, runs the hooks and emits the terminal event.
    async fn run(self) -> Result<Option<Exchange>, Error> {
        let Ending {
            pipeline,
            run_id,
            open,
            mut state,
            stored,
            status,
            error,
            usage,
            span,
        } = self;
        let run_id = run_id.as_str();
        let error = error.as_ref();
        let graph = &pipeline.graph;
        let shared = &pipeline.shared;
        let usage = usage.or_else(|| {
            state
                .as_ref()
                .and_then(|s| s.completion.as_ref())
                .and_then(|c| c.usage)
        });
        let cost = state
            .as_ref()
            .zip(usage)
            .and_then(|(s, u)| run_cost(&shared.prices, s, &u));
        if let Some(s) = state.as_mut() {
            s.usage = usage;
            s.cost_usd_micros = cost;
        }
        span.record("aegis.run.status", status.as_str());
        if let Some(u) = &usage {
            crate::layer::telemetry::record_usage(&span, u);
        }
        if let Some(c) = cost {
            span.record("aegis.cost_usd", c as f64 / 1e6);
        }
        if let Some(e) = error {
            span.record("error.type", e.code());
        }
        let recorded = match (open, &state) {
            (Some(open), Some(state)) => graph.record_end(open, state, status).await,
            (_, _) if stored => match graph.record_end_stored(run_id, status).await {
                // A paused run (a resume dropped before its claim) waits for its decision;
                // an ended one stays ended: nothing ends here.
                Ok(false) => return Ok(state),
                Ok(true) => Ok(()),
                Err(e) => Err(e),
            },
            _ => Ok(()),
        };
        match &recorded {
            // Someone else ended (or recovered) this run: it is theirs to report.
            Err(e) if e.kind() == ErrorKind::Conflict => {
                return Err(Error::new(ErrorKind::Conflict, e.message()).with_code(e.code()));
            }
            // Any other failure to store: the run still ends — audit, hooks and the terminal
            // event go out — and the caller hears of the failure.
            Err(e) => {
                tracing::warn!(run_id = %run_id, error = %e, "recording the end of a run failed")
            }
            Ok(()) => {}
        }
        let route = state.as_ref().and_then(|s| s.route.as_ref());
        let principal = state.as_ref().and_then(|s| s.principal.as_ref());
        shared.telemetry.emit(run_id, || RunEventKind::Audit {
            principal: principal.map(|p| p.id.clone()),
            team: principal.and_then(|p| p.team.clone()),
            status: Some(status),
            provider: route.map(|r| r.provider.clone()),
            deployment: route.and_then(|r| r.deployment.clone()),
            region: route.and_then(|r| r.region.clone()),
            model: state
                .as_ref()
                .and_then(|s| s.meta.as_ref().map(|m| m.model.clone()))
                .or_else(|| route.map(|r| r.model.clone())),
            guards: state.as_ref().map(|s| s.guards.clone()).unwrap_or_default(),
            usage,
            cost_usd_micros: cost,
            retrieval: state
                .as_ref()
                .map(|s| s.retrieval.clone())
                .unwrap_or_default(),
        });
        if !shared.policies.is_empty() {
            let summary = summarize(run_id, state.as_ref(), status, error, usage);
            for (id, policy) in &shared.policies {
                let hook = std::panic::AssertUnwindSafe(policy.on_run_end(&summary));
                match tokio::time::timeout(
                    HOOK_TIME_LIMIT,
                    futures_util::FutureExt::catch_unwind(hook),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        tracing::error!(policy = %id, run_id = %run_id, "a policy's run-end hook panicked")
                    }
                    Err(_) => {
                        tracing::error!(policy = %id, run_id = %run_id, "a policy's run-end hook timed out")
                    }
                }
            }
        }
        graph.emit_end(run_id, status, error);
        shared.chain.end_run(run_id);
        // A span's end is when it was last left: for a stream, that is now.
        span.in_scope(|| {});
        // A sink that must be durable (the audit log in `required` mode) holds the answer
        // until this run's records are stored; if they cannot be, the caller gets the error.
        shared
            .telemetry
            .durable()
            .await
            .map_err(|e| e.with_run_id(run_id.to_owned()))?;
        recorded.map(|()| state)
    }
}

/// What `usage` cost in the run `state` describes: at the price of the model the provider
/// says answered, or of the routed model it is a version of
/// ([`PriceTable::price_answered`](aegis_contracts::PriceTable::price_answered)).
fn run_cost(prices: &aegis_contracts::PriceTable, state: &Exchange, usage: &Usage) -> Option<u64> {
    let route = state.route.as_ref()?;
    let answered = state.meta.as_ref().map(|m| m.model.as_str());
    prices
        .price_answered(answered, &route.model, &route.models)
        .map(|p| p.usage_cost_micros(usage))
}

fn summarize(
    run_id: &str,
    state: Option<&Exchange>,
    status: RunStatus,
    error: Option<&Error>,
    usage: Option<Usage>,
) -> RunSummary {
    let context = state.map_or_else(
        || aegis_contracts::ContextView::new(run_id, None, Default::default()),
        |s| s.context_view(run_id),
    );
    let mut summary = RunSummary::new(context, status);
    summary.requested_model = state.map(|s| s.request.model.clone()).unwrap_or_default();
    summary.route = state.and_then(|s| s.route.clone());
    summary.usage = usage;
    summary.cost_usd_micros = state.and_then(|s| s.cost_usd_micros);
    summary.answered_model = state.and_then(|s| s.meta.as_ref().map(|m| m.model.clone()));
    summary.provider_called = state.is_some_and(|s| s.provider_called || s.response.called());
    summary.error = error.map(Error::kind);
    summary.code = error.map(|e| e.code().to_owned());
    summary
}

/// Wraps a run's judged stream so the run ends with it: `completed` after the last chunk
/// (the collected answer is the run's stored output), `failed` / `blocked` on an error item,
/// `cancelled` when the caller drops it. The end is awaited before the stream reports its
/// end, so a finished stream is a recorded run.
pub(super) fn end_with_stream(stream: ChatStream, end: RunEnd) -> ChatStream {
    struct Tail {
        inner: ChatStream,
        end: Option<RunEnd>,
        answer: CompletionBuilder,
        usage: Option<Usage>,
        first: bool,
    }
    let tail = Tail {
        inner: stream,
        end: Some(end),
        answer: CompletionBuilder::default(),
        usage: None,
        first: true,
    };
    Box::pin(futures_util::stream::unfold(tail, |mut t| async move {
        t.end.as_ref()?;
        let item: Option<Result<ChatChunk, Error>> = t.inner.next().await;
        match item {
            Some(Ok(chunk)) => {
                if chunk.usage.is_some() {
                    t.usage = chunk.usage;
                }
                if t.first && chunk.choices.iter().any(|c| c.delta.content.is_some()) {
                    t.first = false;
                    if let Some(end) = &t.end {
                        end.pipeline
                            .shared
                            .telemetry
                            .emit(&end.run_id, || RunEventKind::FirstToken);
                    }
                }
                t.answer.push(&chunk);
                Some((Ok(chunk), t))
            }
            Some(Err(e)) => {
                let end = t.end.take()?;
                if e.kind() == ErrorKind::ApprovalRequired
                    && let Some(pending) =
                        end.state.as_ref().and_then(|s| s.response.take_approval())
                {
                    return Some((Err(end.suspend(pending).await), t));
                }
                let status = RunStatus::of_error(&e);
                if let Err(stored) = end.finish(status, Some(&e), t.usage).await {
                    tracing::warn!(error = %stored, "recording the end of a failed stream failed");
                }
                Some((Err(e), t))
            }
            None => {
                let mut end = t.end.take()?;
                if let Some(state) = end.state.as_mut() {
                    let answer = std::mem::take(&mut t.answer).finish();
                    state.completion = Some(answer);
                }
                match end.finish(RunStatus::Completed, None, t.usage).await {
                    Ok(_) => None,
                    // The answer was delivered but not recorded: the caller must not take a
                    // clean end for a stored run.
                    Err(e) => Some((Err(e), t)),
                }
            }
        }
    }))
}
