//! Native `/v1/runs`: start a governed run, inspect it, decide on its interrupt, follow its
//! events.

use std::{convert::Infallible, sync::Arc};

use aegis::{
    Approval, ChatRequest, Checkpoint, Error, ErrorKind, Interrupt, PipelineOutcome, Principal,
    providers::wire::completion_to_openai,
};
use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response, Sse, sse::Event},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{ApiError, Gateway, context_from, parse_json};

fn links(run_id: &str) -> Value {
    json!({
        "self": format!("/v1/runs/{run_id}"),
        "approve": format!("/v1/runs/{run_id}/approve"),
        "reject": format!("/v1/runs/{run_id}/reject"),
        "edit": format!("/v1/runs/{run_id}/edit"),
        "events": format!("/v1/runs/{run_id}/events"),
    })
}

fn with_run_header(mut resp: Response, run_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(run_id) {
        resp.headers_mut().insert("x-aegis-run-id", v);
    }
    resp
}

/// 202: the run paused; the body says how to decide.
/// An interrupt as anyone who may see its run sees it: without the held subject, which
/// only its reviewers see (`GET /v1/runs/{id}`, `pending`).
pub(super) fn public_interrupt(interrupt: Option<&Interrupt>) -> Value {
    interrupt.map_or(Value::Null, Interrupt::public_json)
}

pub(super) fn paused_response(run_id: &str, interrupt: &Interrupt) -> Response {
    let body = json!({
        "id": run_id,
        "object": "aegis.run",
        "status": "paused",
        "interrupt": public_interrupt(Some(interrupt)),
        "message": format!(
            "{}. Approve with POST /v1/runs/{run_id}/approve (or `aegis runs approve {run_id}`), or reject with POST /v1/runs/{run_id}/reject.",
            interrupt.request.reason
        ),
        "links": links(run_id),
    });
    with_run_header((StatusCode::ACCEPTED, Json(body)).into_response(), run_id)
}

/// What a run produced, as the runs API shows it. A streamed answer (a resumed
/// `stream: true` request) is read to its end, which ends and stores the run.
enum Finished {
    Paused(String, Interrupt),
    Completed {
        run_id: String,
        guards: Vec<String>,
        completion: aegis::Completion,
    },
}

async fn finish(outcome: PipelineOutcome) -> Result<Finished, Error> {
    Ok(match outcome {
        PipelineOutcome::Paused { run_id, interrupt } => Finished::Paused(run_id, interrupt),
        PipelineOutcome::Response(resp) => {
            let run_id = resp.meta.run_id.clone().unwrap_or_default();
            let guards = resp.meta.guards.clone();
            let completion = resp
                .collect()
                .await
                .map_err(|e| e.with_run_id(run_id.clone()))?;
            Finished::Completed {
                run_id,
                guards,
                completion,
            }
        }
    })
}

fn finished_response(finished: Finished) -> Response {
    match finished {
        Finished::Paused(run_id, interrupt) => paused_response(&run_id, &interrupt),
        Finished::Completed {
            run_id,
            guards,
            completion,
        } => {
            let body = json!({
                "id": run_id,
                "object": "aegis.run",
                "status": "completed",
                "guards": guards,
                "output": completion_to_openai(&completion),
                "links": links(&run_id),
            });
            with_run_header(Json(body).into_response(), &run_id)
        }
    }
}

async fn outcome_response(outcome: PipelineOutcome) -> Result<Response, ApiError> {
    Ok(finished_response(finish(outcome).await?))
}

/// The body of `POST /v1/runs`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRun {
    /// The graph to run (default: the pipeline's own).
    #[serde(default)]
    graph: Option<String>,
    /// The chat request the run governs.
    input: ChatRequest,
}

/// `POST /v1/runs`: `{"graph": "default", "input": <chat request>}`.
pub(super) async fn create(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let CreateRun { graph, mut input } = parse_json(&body)?;
    input.stream = false;
    input.ctx = context_from(&headers);
    // `graph` names the pipeline the run runs (its graph has the pipeline's name).
    let pipeline = gw.select(graph.as_deref(), &mut input.ctx).await?;
    let outcome = tokio::time::timeout(gw.timeout(), pipeline.run(input))
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "the run did not finish in time"))??;
    outcome_response(outcome).await
}

/// Who may see a run. With a database: the store's rules (the run's owner, approvers and
/// admins of its team). Without: its principal, or any `admin` / `approver`. Without
/// authenticators configured, everyone (development mode). Other principals get 404, so run
/// ids do not leak. Returns the run, the caller, and whether the caller reviews it (may see
/// what it holds for review: the approver or admin role for its team; anyone when
/// authentication is off).
async fn visible(
    gw: &Gateway,
    headers: &HeaderMap,
    run_id: &str,
) -> Result<(Checkpoint, Option<Principal>, bool), ApiError> {
    let ctx = context_from(headers);
    let principal = gw.pipeline().authenticate(&ctx).await?;
    let not_found = || {
        ApiError(Error::new(
            ErrorKind::NotFound,
            format!("no run `{run_id}`"),
        ))
    };
    let mut reviewer = principal.is_none();
    if let (Some(store), Some(p)) = (gw.store(), &principal) {
        let record = store.authorize_run(p, run_id).await?;
        // With four eyes, a run's starter does not review it, approver or not.
        let own = record.principal.as_deref() == Some(p.id.as_str());
        reviewer = aegis_store::runs::reviews(p, &record) && !(own && store.four_eyes());
    }
    let (_, cp) = gw
        .pipeline()
        .graph()
        .snapshot(run_id)
        .await?
        .ok_or_else(not_found)?;
    // A key pinned to a pipeline sees and decides that pipeline's runs only.
    if let Some(pin) = principal.as_ref().and_then(|p| p.labels.get("pipeline"))
        && *pin != cp.graph
    {
        return Err(not_found());
    }
    if gw.store().is_none()
        && let Some(p) = &principal
    {
        let own = cp.principal.as_deref() == Some(p.id.as_str());
        let privileged = p.has_role("admin") || p.has_role("approver");
        if !own && !privileged {
            return Err(not_found());
        }
        // Without a database, deciding always takes four eyes (see `decide`).
        reviewer = privileged && !own;
    }
    Ok((cp, principal, reviewer))
}

/// The query of `GET /v1/runs`.
#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct ListQuery {
    /// Only runs with this status.
    status: Option<aegis::RunStatus>,
    /// Only runs of this principal.
    principal: Option<String>,
    /// At most this many (default 50, at most 500).
    #[schemars(range(max = u32::MAX))]
    limit: Option<u32>,
    /// Where the previous page ended (its `next_cursor`).
    #[schemars(regex(pattern = aegis_store::runs::CURSOR_PATTERN))]
    cursor: Option<String>,
}

/// `GET /v1/runs?status=paused&principal=...&limit=50&cursor=...`: the runs the caller may
/// see, newest first (needs a database).
pub(super) async fn list(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Result<Response, ApiError> {
    let store = gw.store().ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            "listing runs needs a database: set [server].database_url",
        )
    })?;
    let principal = gw.pipeline().authenticate(&context_from(&headers)).await?;
    let mut query = aegis_store::RunQuery::new();
    if let Some(s) = q.status {
        query = query.status(s);
    }
    if let Some(p) = q.principal {
        query = query.principal(p);
    }
    query = query.limit(q.limit.unwrap_or(50).clamp(1, 500));
    if let Some(c) = q.cursor.filter(|c| !c.is_empty()) {
        query = query.cursor(c);
    }
    let page = match &principal {
        Some(p) => store.list_runs(p, &query).await?,
        None => store.list_all_runs(&query).await?,
    };
    Ok(
        Json(json!({"object": "list", "data": page.runs, "next_cursor": page.next_cursor}))
            .into_response(),
    )
}

/// `GET /v1/runs/{id}`.
pub(super) async fn get(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (cp, _, reviewer) = visible(&gw, &headers, &id).await?;
    let state = cp.state_value();
    // Only a completed run's answer is shown: an answer held for approval (or of a run
    // that was blocked or failed) is not the caller's until a reviewer lets it through.
    // In the OpenAI shape, as `POST /v1/runs` and the chat endpoint answer it.
    let output = (cp.status == aegis::RunStatus::Completed)
        .then(|| state.get("completion").filter(|c| !c.is_null()).cloned())
        .flatten()
        .map(
            |c| match serde_json::from_value::<aegis::Completion>(c.clone()) {
                Ok(completion) => completion_to_openai(&completion),
                Err(_) => c,
            },
        );
    let body = json!({
        "id": cp.run_id,
        "object": "aegis.run",
        "graph": cp.graph,
        "status": cp.status,
        "version": cp.version,
        "next": cp.next,
        "interrupt": if reviewer {
            serde_json::to_value(&cp.interrupt).unwrap_or(Value::Null)
        } else {
            public_interrupt(cp.interrupt.as_ref())
        },
        "principal": cp.principal,
        "updated_at_ms": cp.at_ms,
        "guards": state.get("guards"),
        // What became of every retrieved document (ids, sources, scores, verdicts).
        "retrieval": state.get("retrieval").cloned().unwrap_or_else(|| json!([])),
        "output": output,
        "pending": pending_review(&cp, &state, reviewer),
        "links": links(&cp.run_id),
    });
    Ok(Json(body).into_response())
}

/// What a paused run holds for review, shown to its reviewers only: the stage that asked,
/// the findings, and the subject as the guards left it — the prompt for an input
/// interrupt, the held answer (content and tool calls) for an output one. `null` for
/// anyone else and for a run that is not paused.
fn pending_review(cp: &Checkpoint, state: &Value, reviewer: bool) -> Value {
    let Some(interrupt) = cp.interrupt.as_ref().filter(|_| reviewer) else {
        return Value::Null;
    };
    if cp.status != aegis::RunStatus::Paused {
        return Value::Null;
    }
    let payload = &interrupt.request.payload;
    let stage = payload.get("stage").cloned().unwrap_or(Value::Null);
    // The subject as the guards left it when one asked (an earlier guard's redactions
    // applied, a reviewer's edit included); the stored state for interrupts from before.
    let subject = match stage.as_str() {
        _ if payload.get(aegis::INTERRUPT_SUBJECT_KEY).is_some() => {
            payload[aegis::INTERRUPT_SUBJECT_KEY].clone()
        }
        Some("input") => json!({"messages": state.pointer("/request/messages")}),
        _ => {
            let message = state.pointer("/completion/choices/0/message");
            json!({
                "content": message.and_then(|m| m.get("content")),
                "tool_calls": message.and_then(|m| m.get("tool_calls")),
            })
        }
    };
    json!({
        "stage": stage,
        "reason": interrupt.request.reason,
        "findings": payload.get("findings"),
        "subject": subject,
        "edit_schema": interrupt.request.edit_schema,
    })
}

async fn decide(
    gw: &Gateway,
    headers: &HeaderMap,
    id: &str,
    decision: Approval,
) -> Result<Response, ApiError> {
    let (cp, principal, _) = visible(gw, headers, id).await?;
    // Without a database the store cannot rule on who decides: the same rules, here — the
    // approver or admin role, and never the run's own starter (four eyes).
    if gw.store().is_none()
        && let Some(p) = &principal
    {
        if !(p.has_role("admin") || p.has_role("approver")) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!(
                    "`{}` may not decide run `{id}`: deciding needs the approver or admin role",
                    p.id
                ),
            )
            .with_code("not_an_approver")
            .into());
        }
        if cp.principal.as_deref() == Some(p.id.as_str()) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!(
                    "`{}` started run `{id}` and may not decide it (four eyes)",
                    p.id
                ),
            )
            .with_code("four_eyes")
            .into());
        }
    }
    let pipeline = gw.pipeline_of_graph(&cp.graph);
    let store = gw.store().cloned();
    let id_owned = id.to_owned();
    // The resume runs detached from this request: a client that goes away (or times out)
    // does not strand the run half-resumed. Its claim's lease covers a crash.
    let resume = tokio::spawn(async move {
        let id = id_owned.as_str();
        let outcome = match (store, &principal) {
            // The store records who decided what, in the audit log too.
            (Some(store), Some(p)) => store.resume_pipeline(&pipeline, p, id, decision).await,
            _ => {
                pipeline
                    .resume_by(id, decision, principal.as_ref().map(|p| p.id.as_str()))
                    .await
            }
        }?;
        finish(outcome).await
    });
    let finished = tokio::time::timeout(gw.timeout(), resume)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "the resumed run did not finish in time; it goes on: follow it at /v1/runs/{id}"
                ),
            )
        })?
        .map_err(|e| Error::internal(format!("the resume task failed: {e}")))??;
    Ok(finished_response(finished))
}

/// `POST /v1/runs/{id}/approve`.
pub(super) async fn approve(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    decide(&gw, &headers, &id, Approval::Approve).await
}

/// The optional body of `POST /v1/runs/{id}/reject`.
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectBody {
    /// Why, for the audit log.
    #[serde(default)]
    reason: String,
}

/// `POST /v1/runs/{id}/reject` with an optional `{"reason": ...}`.
pub(super) async fn reject(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: RejectBody = if body.is_empty() {
        RejectBody::default()
    } else {
        parse_json(&body)?
    };
    reject_with(&gw, &headers, &id, b.reason).await
}

async fn reject_with(
    gw: &Gateway,
    headers: &HeaderMap,
    id: &str,
    reason: String,
) -> Result<Response, ApiError> {
    match decide(gw, headers, id, Approval::Reject { reason }).await {
        Err(ApiError(e)) if e.code() == "rejected" => {
            let body =
                json!({"id": id, "object": "aegis.run", "status": "rejected", "links": links(id)});
            Ok(with_run_header(Json(body).into_response(), id))
        }
        other => other,
    }
}

/// `POST /v1/runs/{id}/resume` with a decision: `{"decision": "approve"}`,
/// `{"decision": "reject", "reason": ...}` or `{"decision": "edit", "value": ...}` (an empty
/// body approves).
pub(super) async fn resume(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let decision: Approval = if body.is_empty() {
        Approval::Approve
    } else {
        parse_json(&body)?
    };
    if let Approval::Reject { reason } = decision {
        return reject_with(&gw, &headers, &id, reason).await;
    }
    decide(&gw, &headers, &id, decision).await
}

/// The body of `POST /v1/runs/{id}/edit`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditBody {
    /// The edited value; it must match the interrupt's `edit_schema`.
    value: Value,
}

/// `POST /v1/runs/{id}/edit` with `{"value": ...}` matching the interrupt's edit schema.
pub(super) async fn edit(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: EditBody = parse_json(&body)?;
    decide(&gw, &headers, &id, Approval::Edit { value: b.value }).await
}

/// `GET /v1/runs/{id}/events`: the run's current status, then its events as they happen,
/// until it completes, fails or is rejected. A subscriber too slow to keep up gets a
/// `lagged` event saying how many it missed.
pub(super) async fn events(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Subscribe before reading the status, so nothing falls between the two.
    let rx = gw.events.subscribe();
    let (cp, _, _) = visible(&gw, &headers, &id).await?;
    // A feed is a stream like any other: it counts against the limit while it is open.
    let permit = gw.stream_permit()?;
    let closing = gw.closing.subscribe();
    let first = Event::default().event("status").data(
        json!({"run_id": cp.run_id, "status": cp.status, "interrupt": public_interrupt(cp.interrupt.as_ref())}).to_string(),
    );
    let mut poll = tokio::time::interval(STORE_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = Feed {
        rx,
        id,
        first: Some(first),
        done: cp.status.is_terminal(),
        status: cp.status,
        stored_change: None,
        store: gw.store().cloned(),
        poll,
        closing,
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(feed, |mut f| async move {
        if let Some(e) = f.first.take() {
            return Some((Ok::<_, Infallible>(e), f));
        }
        if f.done {
            return None;
        }
        loop {
            let received = match tokio::select! {
                r = f.rx.recv() => Woken::Event(r),
                _ = f.closing.wait_for(|closing| *closing) => Woken::Closing,
                _ = f.poll.tick(), if f.store.is_some() => Woken::Poll,
            } {
                Woken::Event(r) => r,
                Woken::Closing => {
                    // The gateway is shutting down: say so and end, so shutdown is not held up.
                    f.done = true;
                    return Some((Ok(Event::default().event("shutdown").data("{}")), f));
                }
                Woken::Poll => {
                    // Another replica may be running (or have ended) this run: its events
                    // reach that replica's feed, its status reaches the store.
                    let stored = match &f.store {
                        Some(store) => store.run(&f.id).await.ok().flatten().map(|r| r.status),
                        None => None,
                    };
                    // Told only when two polls in a row see the same change: a run this
                    // process runs has its own events, which say more, out by then.
                    let changed = stored.filter(|s| *s != f.status);
                    let confirmed = changed.is_some() && changed == f.stored_change;
                    f.stored_change = changed;
                    match changed {
                        Some(status) if confirmed => {
                            f.status = status;
                            f.stored_change = None;
                            f.done = status.is_terminal();
                            let data = json!({"run_id": f.id, "status": status});
                            return Some((
                                Ok(Event::default().event("status").data(data.to_string())),
                                f,
                            ));
                        }
                        _ => continue,
                    }
                }
            };
            match received {
                Ok(ev) if ev.run_id == f.id => {
                    f.done = ev.kind.is_terminal();
                    if let Some(status) = status_after(&ev.kind) {
                        f.status = status;
                    }
                    let data = serde_json::to_value(&ev).unwrap_or_default();
                    let name = data["event"].as_str().unwrap_or("event").to_owned();
                    return Some((Ok(Event::default().event(name).data(data.to_string())), f));
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some((Ok(Event::default().event("lagged").data(n.to_string())), f));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).into_response())
}

/// What woke a run's event feed.
// A value of one `select!`, never stored: boxing the event would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Woken {
    /// An event of this process's feed (any run's).
    Event(Result<aegis::RunEvent, broadcast::error::RecvError>),
    /// The gateway began shutting down.
    Closing,
    /// Time to read the run's status from the store.
    Poll,
}

/// The status a run has after `kind`, for the events that change it.
fn status_after(kind: &aegis::RunEventKind) -> Option<aegis::RunStatus> {
    use aegis::{RunEventKind as K, RunStatus as S};
    Some(match kind {
        K::RunStarted { .. } | K::Resumed { .. } => S::Running,
        K::Paused { .. } => S::Paused,
        K::Completed => S::Completed,
        K::Rejected => S::Rejected,
        K::Failed { .. } => S::Failed,
        K::Blocked { .. } => S::Blocked,
        K::Cancelled => S::Cancelled,
        _ => return None,
    })
}

/// How often a run's event feed reads the run's status from the store, for runs another
/// replica is running.
const STORE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

struct Feed {
    rx: broadcast::Receiver<aegis::RunEvent>,
    id: String,
    first: Option<Event>,
    done: bool,
    /// The last status the feed told of.
    status: aegis::RunStatus,
    /// A status the store held at the last poll that the feed has not told of.
    stored_change: Option<aegis::RunStatus>,
    /// Where the status is read when this process hears nothing of the run.
    store: Option<aegis_store::Store>,
    poll: tokio::time::Interval,
    closing: tokio::sync::watch::Receiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}
