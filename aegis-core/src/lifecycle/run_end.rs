//! The one path by which a run ends.
//!
//! A run ends when its response ends: a complete answer when it is judged, a stream when its
//! last chunk has been judged and handed over — or when it is blocked, fails, or is dropped
//! by the caller. Whatever the way, [`RunEnd::finish`] runs exactly once and, in this order,
//! emits the audit record (with the final usage), calls every policy's run-end hook, writes
//! the terminal checkpoint and emits the terminal run event, and lets the guards drop the
//! run's state (PII vaults). A `RunEnd` dropped unfinished ends the run `cancelled` on a
//! background task.

use aegis_contracts::{
    ChatChunk, ChatStream, CompletionBuilder, Error, ErrorKind, RunEventKind, RunStatus,
    RunSummary, Stage, Usage,
};
use futures_util::StreamExt;

use super::{
    Exchange, Pipeline,
    approval::{approval_interrupt, content_edit_schema},
};
use crate::graph::{OpenRun, terminal_event};
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
}

impl RunEnd {
    /// The end of run `run_id`, whose state is `seed` so far (unknown for a resume until
    /// the stored state is read).
    pub(super) fn new(pipeline: Pipeline, run_id: String, seed: Option<Exchange>) -> Self {
        Self {
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
    /// approved). Returns the error that tells the caller which run to decide on.
    pub(super) async fn suspend(mut self, pending: PendingApproval) -> Error {
        self.armed = false;
        let (Some(open), Some(mut state)) = (self.open.take(), self.state.take()) else {
            return Error::internal("a stream asked for approval outside a run");
        };
        state.completion = Some(pending.completion);
        let request = approval_interrupt(&pending.verdict, Stage::Output, content_edit_schema());
        let reason = request.reason.clone();
        match self
            .pipeline
            .graph
            .pause_open(open, state, "output_guards", request)
            .await
        {
            Ok(_) => Error::new(
                ErrorKind::ApprovalRequired,
                format!(
                    "{reason}; the answer is held: approve or reject run {id} (e.g. `aegis runs approve {id}`)",
                    id = self.run_id
                ),
            )
            .with_code("approval_required")
            .with_run_id(self.run_id.clone()),
            Err(e) => e.with_run_id(self.run_id.clone()),
        }
    }

    /// Ends the run with `status`. `error` is the cause of a `failed`, `blocked` or
    /// `rejected` end; `usage` the final usage when it is not in the state (streams).
    pub(super) async fn finish(
        mut self,
        status: RunStatus,
        error: Option<&Error>,
        usage: Option<Usage>,
    ) -> Result<(), Error> {
        self.armed = false;
        let (open, state) = (self.open.take(), self.state.take());
        let run = RunRef {
            pipeline: &self.pipeline,
            run_id: &self.run_id,
            stored: self.stored,
        };
        finish(run, open, state, status, error, usage).await
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
        let (pipeline, run_id) = (self.pipeline.clone(), std::mem::take(&mut self.run_id));
        let (open, state, stored) = (self.open.take(), self.state.take(), self.stored);
        let end = async move {
            let run = RunRef {
                pipeline: &pipeline,
                run_id: &run_id,
                stored,
            };
            let result = finish(run, open, state, RunStatus::Cancelled, None, None).await;
            if let Err(e) = result {
                tracing::warn!(run_id = %run_id, error = %e, "ending a cancelled run failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(end);
            }
            // No runtime (the host is shutting down): nothing can be awaited; say so.
            Err(_) => tracing::warn!(
                "a run was dropped outside a tokio runtime; its cancellation is not recorded"
            ),
        }
    }
}

/// Which run is ending, and where.
struct RunRef<'a> {
    pipeline: &'a Pipeline,
    run_id: &'a str,
    stored: bool,
}

async fn finish(
    run: RunRef<'_>,
    open: Option<OpenRun>,
    state: Option<Exchange>,
    status: RunStatus,
    error: Option<&Error>,
    usage: Option<Usage>,
) -> Result<(), Error> {
    let RunRef {
        pipeline,
        run_id,
        stored,
    } = run;
    let shared = &pipeline.shared;
    if open.is_none() && stored {
        // The graph let go of the run without ending it (a dropped future, an engine error):
        // only a run still marked running has ended here. A paused run (a resume dropped
        // before it claimed the run) waits for its decision; an ended one stays ended.
        let latest = pipeline.graph.store().latest(run_id).await?;
        if latest.is_some_and(|cp| cp.status != RunStatus::Running) {
            return Ok(());
        }
    }
    let usage = usage.or_else(|| {
        state
            .as_ref()
            .and_then(|s| s.completion.as_ref())
            .and_then(|c| c.usage)
    });
    let summary = summarize(run_id, state.as_ref(), status, error, usage);
    shared.telemetry.emit(run_id, || RunEventKind::Audit {
        principal: summary.context.principal.as_ref().map(|p| p.id.clone()),
        status: Some(status),
        provider: summary.route.as_ref().map(|r| r.provider.clone()),
        deployment: summary.route.as_ref().and_then(|r| r.deployment.clone()),
        region: summary.route.as_ref().and_then(|r| r.region.clone()),
        model: state
            .as_ref()
            .and_then(|s| s.meta.as_ref().map(|m| m.model.clone()))
            .or_else(|| summary.route.as_ref().map(|r| r.model.clone())),
        guards: state.as_ref().map(|s| s.guards.clone()).unwrap_or_default(),
        usage,
    });
    for (id, policy) in &shared.policies {
        let hook = std::panic::AssertUnwindSafe(policy.on_run_end(&summary));
        if futures_util::FutureExt::catch_unwind(hook).await.is_err() {
            tracing::error!(policy = %id, run_id = %run_id, "a policy's run-end hook panicked");
        }
    }
    let recorded = match (open, &state) {
        (Some(open), Some(state)) => pipeline.graph.end(open, state, status, error).await,
        _ if stored => pipeline.graph.end_stored(run_id, status, error).await,
        _ => {
            shared
                .telemetry
                .emit(run_id, || terminal_event(status, error));
            Ok(())
        }
    };
    shared.chain.end_run(run_id);
    recorded
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
    }
    let tail = Tail {
        inner: stream,
        end: Some(end),
        answer: CompletionBuilder::default(),
        usage: None,
    };
    Box::pin(futures_util::stream::unfold(tail, |mut t| async move {
        t.end.as_ref()?;
        let item: Option<Result<ChatChunk, Error>> = t.inner.next().await;
        match item {
            Some(Ok(chunk)) => {
                if chunk.usage.is_some() {
                    t.usage = chunk.usage;
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
                    Ok(()) => None,
                    // The answer was delivered but not recorded: the caller must not take a
                    // clean end for a stored run.
                    Err(e) => Some((Err(e), t)),
                }
            }
        }
    }))
}
