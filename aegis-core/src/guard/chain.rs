//! The guard chain: config order, `Block` short-circuits, `Sanitize` feeds the next guard,
//! `RequireApproval` pauses, failures follow the fail mode, shadow guards only record.

use std::{fmt, sync::Arc};

use aegis_contracts::{
    Cost, Decision, Error, ErrorKind, FailMode, GuardCapabilities, GuardMode, GuardPolicy,
    GuardSubject, Guardrail, RequestContext, RunEventKind, Stage, Verdict,
};

use super::normalize::View;
use crate::Telemetry;

/// One guard in a chain: its instance id, the guard, and the policy it runs under.
#[derive(Clone)]
pub struct GuardEntry {
    id: Arc<str>,
    guard: Arc<dyn Guardrail>,
    policy: GuardPolicy,
    capabilities: GuardCapabilities,
}

impl GuardEntry {
    /// An entry named `id` (the config id; it is the `guard` of every verdict it returns).
    pub fn new(id: impl Into<String>, guard: Arc<dyn Guardrail>, policy: GuardPolicy) -> Self {
        let capabilities = guard.capabilities();
        Self {
            id: id.into().into(),
            guard,
            policy,
            capabilities,
        }
    }

    /// Restricts the guard to `stages` (intersected with what it supports).
    pub fn with_stages(mut self, stages: &[Stage]) -> Self {
        self.capabilities.stages.retain(|s| stages.contains(s));
        self
    }

    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The policy.
    pub fn policy(&self) -> &GuardPolicy {
        &self.policy
    }

    /// The guard's capabilities (after stage restriction).
    pub fn capabilities(&self) -> &GuardCapabilities {
        &self.capabilities
    }

    /// The guard itself.
    pub fn guard(&self) -> &Arc<dyn Guardrail> {
        &self.guard
    }

    /// Runs one check under the entry's timeout, turning panics-free failures into `Err`.
    pub(crate) async fn run(
        &self,
        subject: &GuardSubject,
        ctx: &RequestContext,
    ) -> Result<Verdict, Error> {
        let timed_out = || {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "guard `{}` timed out after {:?}",
                    self.id, self.policy.timeout
                ),
            )
        };
        let verdict = if self.offloaded(subject) {
            // CPU-heavy work runs on the blocking pool: it cannot stall the async workers,
            // and the deadline holds even if the guard never yields (it may finish its
            // computation in the background; its answer is then ignored).
            let (guard, subject, ctx) = (self.guard.clone(), subject.clone(), ctx.clone());
            let handle = tokio::runtime::Handle::current();
            let task = tokio::task::spawn_blocking(move || {
                handle.block_on(async move { guard.check(&subject, &ctx).await })
            });
            match tokio::time::timeout(self.policy.timeout, task).await {
                Ok(Ok(result)) => result?,
                Ok(Err(e)) => {
                    return Err(Error::internal(format!("guard `{}` failed: {e}", self.id)));
                }
                Err(_) => return Err(timed_out()),
            }
        } else {
            match tokio::time::timeout(self.policy.timeout, self.guard.check(subject, ctx)).await {
                Ok(result) => result?,
                Err(_) => return Err(timed_out()),
            }
        };
        if matches!(verdict.decision, Decision::Sanitize { .. }) && !self.capabilities.sanitizes {
            return Err(Error::internal(format!(
                "guard `{}` returned Sanitize but does not declare that it sanitizes",
                self.id
            )));
        }
        Ok(verdict)
    }
}

/// Subjects with more text than this are judged off the async workers whatever the guard.
const OFFLOAD_BYTES: usize = 64 * 1024;

impl GuardEntry {
    /// Whether judging `subject` runs on the blocking pool: a guard that declares
    /// [`Cost::Moderate`] (local computation in milliseconds: a model, a heavy scan), or a
    /// subject larger than [`OFFLOAD_BYTES`]. Network-bound guards (`Expensive`) await I/O
    /// and stay on the workers, however large the subject: a blocking thread held by a
    /// service that never answers would outlive the deadline.
    fn offloaded(&self, subject: &GuardSubject) -> bool {
        match self.capabilities.cost {
            Cost::Expensive => false,
            Cost::Moderate => true,
            _ => subject.text_len() > OFFLOAD_BYTES,
        }
    }

    /// How much of the streamed `text` is settled for this guard (see
    /// [`Guardrail::stream_settled`]), asked on the view the guard judges and mapped back.
    pub(crate) fn stream_settled(
        &self,
        text: &str,
        from: usize,
        ctx: &RequestContext,
    ) -> Option<usize> {
        let view = (!self.capabilities.raw_text)
            .then(|| super::normalize::normalize(text))
            .flatten();
        match view {
            None => self.guard.stream_settled(text, from, ctx),
            Some(n) => {
                let at = self
                    .guard
                    .stream_settled(&n.text, n.norm_offset(from), ctx)?;
                Some(n.start(at))
            }
        }
    }
}

impl fmt::Debug for GuardEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardEntry")
            .field("id", &self.id)
            .field("policy", &self.policy)
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

/// How one guard's run came out under its policy (see [`GuardChain::rule`]).
pub(crate) enum Ruling {
    /// The guard failed and fails open (or runs in shadow mode): traffic goes on.
    Passed,
    /// The guard failed and fails closed: this block stands.
    FailedClosed(Verdict),
    /// The guard judged; `enforced` is false in shadow mode and for an approved step.
    Judged {
        /// The verdict, with the guard's id.
        verdict: Verdict,
        /// Whether the verdict changes traffic.
        enforced: bool,
    },
}

/// How a chain ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainDecision {
    /// Everything passed (possibly after sanitizing).
    Allowed,
    /// A guard blocked; this is its verdict.
    Blocked(Verdict),
    /// A guard requires a human decision; this is its verdict.
    NeedsApproval(Verdict),
}

/// The result of running a chain over a subject.
#[derive(Debug, Clone)]
pub struct ChainOutcome {
    /// The subject after every applied sanitization.
    pub subject: GuardSubject,
    /// How the chain ended.
    pub decision: ChainDecision,
    /// Every verdict in order, with whether it was enforced.
    pub verdicts: Vec<(Verdict, bool)>,
}

impl ChainOutcome {
    /// Converts a blocking or pausing outcome into the boundary error.
    pub fn into_result(self) -> Result<GuardSubject, Error> {
        match self.decision {
            ChainDecision::Allowed => Ok(self.subject),
            ChainDecision::Blocked(v) => Err(blocked_error(&v)),
            ChainDecision::NeedsApproval(v) => Err(approval_error(&v)),
        }
    }

    /// Whether any enforced verdict changed the subject.
    pub fn sanitized(&self) -> bool {
        self.verdicts
            .iter()
            .any(|(v, enforced)| *enforced && matches!(v.decision, Decision::Sanitize { .. }))
    }
}

/// The boundary error for a blocking verdict.
pub fn blocked_error(v: &Verdict) -> Error {
    match &v.decision {
        Decision::Block { reason, code } => Error::new(
            ErrorKind::PolicyBlocked,
            format!("blocked by guard `{}`: {reason}", v.guard),
        )
        .with_code(code.clone()),
        _ => Error::new(
            ErrorKind::PolicyBlocked,
            format!("blocked by guard `{}`", v.guard),
        ),
    }
}

/// The boundary error for a verdict that needs approval when nothing can pause.
pub fn approval_error(v: &Verdict) -> Error {
    let reason = match &v.decision {
        Decision::RequireApproval { reason, .. } => reason.as_str(),
        _ => "approval required",
    };
    Error::new(
        ErrorKind::ApprovalRequired,
        format!("guard `{}` requires human approval: {reason}", v.guard),
    )
}

/// An ordered chain of guards.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use aegis_contracts::*;
/// use aegis_core::guard::{ChainDecision, GuardChain, GuardEntry};
/// use std::sync::Arc;
///
/// struct NoFoo;
/// #[async_trait]
/// impl Guardrail for NoFoo {
///     fn capabilities(&self) -> GuardCapabilities { GuardCapabilities::new(Stage::ALL, Granularity::Window(3)) }
///     async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
///         Ok(if s.segments().iter().any(|x| x.text.contains("foo")) { Verdict::block("foo", "no_foo") } else { Verdict::allow() })
///     }
/// }
///
/// let chain = GuardChain::new(vec![GuardEntry::new("no-foo", Arc::new(NoFoo), GuardPolicy::default())]);
/// let subject = GuardSubject::Input { messages: vec![Message::user("foo bar")] };
/// let out = chain.check(subject, &RequestContext::default(), &[]).await;
/// assert!(matches!(out.decision, ChainDecision::Blocked(_)));
/// # });
/// ```
#[derive(Clone, Default)]
pub struct GuardChain {
    entries: Arc<[GuardEntry]>,
    telemetry: Telemetry,
}

impl GuardChain {
    /// A chain of `entries`, in order.
    pub fn new(entries: Vec<GuardEntry>) -> Self {
        Self {
            entries: entries.into(),
            telemetry: Telemetry::default(),
        }
    }

    /// Reports verdicts and failures to `telemetry`.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[GuardEntry] {
        &self.entries
    }

    /// The telemetry this chain reports to.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Tells every guard that run `run_id` has ended.
    pub fn end_run(&self, run_id: &str) {
        for e in self.entries.iter() {
            e.guard.on_run_end(run_id);
        }
    }

    /// Problems with the order of the guards that are not errors: a normalizing guard (one
    /// that rewrites the raw text, such as `invisible_text` with `strip`) listed after a
    /// detector on the same stage. Detectors judge the engine's normalized view either way,
    /// but the text they pass on — and any edit they make — still holds what the normalizer
    /// removes later; list normalizers first.
    pub fn order_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, late) in self.entries.iter().enumerate() {
            let caps = &late.capabilities;
            if !(caps.raw_text && caps.sanitizes) {
                continue;
            }
            let before = self.entries[..i].iter().find(|d| {
                !d.capabilities.raw_text
                    && d.capabilities.stages.iter().any(|s| caps.applies_to(*s))
            });
            if let Some(d) = before {
                out.push(format!(
                    "guardrails: `{}` rewrites the raw text but runs after the detector `{}`; \
                     list normalizing guards before detectors",
                    late.id, d.id
                ));
            }
        }
        out
    }

    /// Whether no entry applies to `stage`.
    pub fn is_empty_for(&self, stage: Stage) -> bool {
        !self
            .entries
            .iter()
            .any(|e| e.capabilities.applies_to(stage))
    }

    /// Ids of the entries that apply to `stage`.
    pub fn ids_for(&self, stage: Stage) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(move |e| e.capabilities.applies_to(stage))
            .map(|e| e.id())
    }

    /// Runs one guard under its policy — the one place fail modes, shadow mode and approved
    /// steps (`approved`: the guard whose request for approval a human granted) are ruled on, for whole texts and streams alike. A failure is reported here; a
    /// verdict is reported by the caller with [`report`](Self::report) (a stream reports
    /// only what it acts on).
    ///
    /// `view` is the normalized view of `subject` ([`View::of`]; `None` when the subject is
    /// its own view): what the guard judges unless it declares `raw_text`, its spans and
    /// edits mapped back to `subject`.
    pub(crate) async fn rule(
        &self,
        entry: &GuardEntry,
        subject: &GuardSubject,
        view: Option<&View>,
        ctx: &RequestContext,
        approved: &[&str],
    ) -> Ruling {
        let enforce = entry.policy.mode == GuardMode::Enforce;
        let view = view.filter(|_| !entry.capabilities.raw_text);
        let judged = view.map_or(subject, |v| &v.subject);
        match entry.run(judged, ctx).await {
            Ok(mut verdict) => {
                if let Some(v) = view {
                    v.map_back(&mut verdict);
                }
                verdict.guard = entry.id.to_string();
                let enforced = enforce
                    && !(approved.contains(&entry.id.as_ref())
                        && matches!(verdict.decision, Decision::RequireApproval { .. }));
                Ruling::Judged { verdict, enforced }
            }
            Err(err) => {
                let fail_open = entry.policy.fail_mode == FailMode::Open || !enforce;
                let run_id = ctx.run_id.as_deref().unwrap_or_default();
                self.telemetry.emit(run_id, || RunEventKind::GuardFailed {
                    guard: entry.id.to_string(),
                    error: err.kind(),
                    message: err.message().to_owned(),
                    failed_open: fail_open,
                });
                tracing::warn!(guard = %entry.id, error = %err, fail_open, "guard failed");
                if fail_open {
                    return Ruling::Passed;
                }
                let mut v = Verdict::block(
                    format!("guard failed and fails closed: {}", err.message()),
                    "guard_unavailable",
                );
                v.guard = entry.id.to_string();
                Ruling::FailedClosed(v)
            }
        }
    }

    /// Records a verdict (every verdict produces an audit event; `enforced` is false for
    /// shadow mode and for steps a human already approved).
    pub(crate) fn report(&self, run_id: &str, stage: Stage, verdict: &Verdict, enforced: bool) {
        self.telemetry.emit(run_id, || RunEventKind::Verdict {
            stage,
            verdict: verdict.clone(),
            enforced,
        });
    }

    /// Runs every applicable guard over `subject` in config order. `approved` names the guards
    /// whose `RequireApproval` a human already granted on this subject: their verdicts are
    /// then recorded and let through; any other guard asking for approval still pauses.
    pub async fn check(
        &self,
        mut subject: GuardSubject,
        ctx: &RequestContext,
        approved: &[&str],
    ) -> ChainOutcome {
        let stage = subject.stage();
        let run_id = ctx.run_id.as_deref().unwrap_or_default();
        let mut verdicts = Vec::new();
        // The normalized view, rebuilt when a guard sanitizes the subject.
        let mut view = View::of(&subject);
        for entry in self
            .entries
            .iter()
            .filter(|e| e.capabilities.applies_to(stage))
        {
            // One span per guard judgement; its verdict is an event in it.
            let span = tracing::info_span!(
                "aegis.guard",
                otel.name = %format_args!("guard {}", entry.id),
                aegis.guard.id = %entry.id,
                aegis.guard.stage = ?stage,
                aegis.guard.decision = tracing::field::Empty,
            );
            let ruling = tracing::Instrument::instrument(
                self.rule(entry, &subject, view.as_ref(), ctx, approved),
                span.clone(),
            )
            .await;
            match &ruling {
                Ruling::Passed => {
                    span.record("aegis.guard.decision", "passed");
                }
                Ruling::FailedClosed(v) => verdict_event(&span, v, true),
                Ruling::Judged { verdict, enforced } => verdict_event(&span, verdict, *enforced),
            }
            let (verdict, applied) = match ruling {
                Ruling::Passed => continue,
                Ruling::FailedClosed(v) => {
                    verdicts.push((v.clone(), true));
                    return ChainOutcome {
                        subject,
                        decision: ChainDecision::Blocked(v),
                        verdicts,
                    };
                }
                Ruling::Judged { verdict, enforced } => (verdict, enforced),
            };
            self.report(run_id, stage, &verdict, applied);
            if !applied {
                verdicts.push((verdict, false));
                continue;
            }
            match &verdict.decision {
                Decision::Allow => verdicts.push((verdict, true)),
                Decision::Block { .. } => {
                    verdicts.push((verdict.clone(), true));
                    return ChainOutcome {
                        subject,
                        decision: ChainDecision::Blocked(verdict),
                        verdicts,
                    };
                }
                Decision::RequireApproval { .. } => {
                    verdicts.push((verdict.clone(), true));
                    return ChainOutcome {
                        subject,
                        decision: ChainDecision::NeedsApproval(verdict),
                        verdicts,
                    };
                }
                Decision::Sanitize { edits } => {
                    if let Err(err) = subject.apply_edits(edits) {
                        // A malformed edit is the guard's failure: fail closed unless told otherwise.
                        if entry.policy.fail_mode == FailMode::Open {
                            verdicts.push((verdict, false));
                            continue;
                        }
                        let mut v = Verdict::block(err.message().to_owned(), "guard_unavailable");
                        v.guard = entry.id.to_string();
                        verdicts.push((v.clone(), true));
                        return ChainOutcome {
                            subject,
                            decision: ChainDecision::Blocked(v),
                            verdicts,
                        };
                    }
                    view = View::of(&subject);
                    verdicts.push((verdict, true));
                }
                // A decision this build does not know is not an allow: fail closed.
                _ => {
                    let mut v = Verdict::block(
                        "the guard returned a decision this version of Aegis does not know",
                        "unknown_decision",
                    );
                    v.guard = entry.id.to_string();
                    verdicts.push((v.clone(), true));
                    return ChainOutcome {
                        subject,
                        decision: ChainDecision::Blocked(v),
                        verdicts,
                    };
                }
            }
        }
        ChainOutcome {
            subject,
            decision: ChainDecision::Allowed,
            verdicts,
        }
    }
}

/// `verdict` as an event of `span` (and its decision as the span's): guard, decision,
/// code, finding kinds and count — never the text or a finding's value.
fn verdict_event(span: &tracing::Span, verdict: &Verdict, enforced: bool) {
    // Without a trace exporter the span is disabled: build nothing for it.
    if span.is_disabled() {
        return;
    }
    let decision = match &verdict.decision {
        Decision::Allow => "allow",
        Decision::Block { .. } => "block",
        Decision::Sanitize { .. } => "sanitize",
        Decision::RequireApproval { .. } => "require_approval",
        _ => "unknown",
    };
    span.record("aegis.guard.decision", decision);
    let kinds: Vec<&str> = verdict.findings.iter().map(|f| f.kind.as_str()).collect();
    span.in_scope(|| {
        tracing::info!(
            target: "aegis::verdict",
            guard = %verdict.guard,
            decision,
            enforced,
            findings = kinds.len(),
            finding_kinds = %kinds.join(","),
            "aegis.verdict"
        );
    });
}

impl fmt::Debug for GuardChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardChain")
            .field("entries", &self.entries)
            .finish()
    }
}
