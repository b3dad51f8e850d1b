//! Guarding streamed output with the smallest hold-back window the guards allow.
//!
//! Each output guard declares a [`Granularity`]. Text flows through one stage per guard, in
//! chain order; a stage holds back only what its guard may still need:
//!
//! * `Char`: nothing; every delta is judged alone.
//! * `Window(w)`: the last `w` bytes. A finding longer than `w` cannot exist, so text older
//!   than that is final. Each check sees the new text plus `w` bytes of already-released
//!   context, so a match split across chunks is still seen whole.
//! * `Sentence`: the unfinished sentence.
//! * `FullText`: everything, until the stream ends (only if buffering is allowed).
//!
//! A `Block` mid-stream ends the stream with an `Err` item: a client never sees a clean finish
//! of a blocked answer. Streams with tool calls hold the calls until the end and judge them
//! whole.

use std::collections::VecDeque;

use aegis_contracts::{
    ANSWER_METADATA_FIELDS, ChatChunk, ChatStream, ChunkChoice, CompletionBuilder, Decision, Delta,
    Edit, Error, ErrorKind, Granularity, GuardMode, GuardSubject, MESSAGE_TEXT_FIELDS, Message,
    RequestContext, Role, RunEventKind, Span, Stage, ToolCallDelta, Usage, Verdict,
};
use futures_util::StreamExt;

use super::chain::{ChainDecision, GuardChain, GuardEntry, Ruling, approval_error, blocked_error};

/// The hold-back a streaming pipeline needs, derived from its output guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holdback {
    /// At most this many bytes are held back (the sum of the guards' windows).
    Bytes(usize),
    /// Up to one sentence is held back.
    Sentence,
    /// The whole answer is buffered until it is complete.
    Full,
}

impl GuardChain {
    /// The hold-back this chain's output guards need to judge a stream, or a
    /// [`Config`](ErrorKind::Config) error when a guard needs the full text and
    /// `allow_buffering` is false.
    pub fn stream_holdback(&self, allow_buffering: bool) -> Result<Holdback, Error> {
        let mut bytes = 0usize;
        let mut sentence = false;
        for e in self
            .entries()
            .iter()
            .filter(|e| e.capabilities().applies_to(Stage::Output))
        {
            match e.capabilities().granularity {
                Granularity::Char => {}
                Granularity::Window(w) => bytes = bytes.saturating_add(w),
                Granularity::Sentence => sentence = true,
                Granularity::FullText if allow_buffering => return Ok(Holdback::Full),
                // `FullText` without buffering, or a granularity this build does not know.
                _ => {
                    return Err(Error::config(format!(
                        "output guard `{}` needs the full text (granularity full_text) but stream buffering is disabled; \
                         set `pipeline.stream_buffering = true` or restrict the guard to non-streaming requests",
                        e.id()
                    )));
                }
            }
        }
        Ok(if sentence {
            Holdback::Sentence
        } else {
            Holdback::Bytes(bytes)
        })
    }

    /// Wraps a stream so every output guard judges it. When no guard applies to outputs or
    /// tool calls, the stream is returned untouched. A `RequireApproval` verdict ends the
    /// stream with an [`ApprovalRequired`](ErrorKind::ApprovalRequired) error (a stream
    /// cannot wait); [`guard_stream_pausable`](Self::guard_stream_pausable) lets a host pause
    /// the run instead.
    pub fn guard_stream(&self, stream: ChatStream, ctx: RequestContext) -> ChatStream {
        self.guard_stream_with(stream, ctx, None)
    }

    /// [`guard_stream`](Self::guard_stream) for a host that can pause its run: on a
    /// `RequireApproval` verdict the rest of the upstream answer is read (nothing more is
    /// released), the whole answer and the verdict are put in `slot`, and the stream ends
    /// with an [`ApprovalRequired`](ErrorKind::ApprovalRequired) error.
    pub fn guard_stream_pausable(
        &self,
        stream: ChatStream,
        ctx: RequestContext,
        slot: ApprovalSlot,
    ) -> ChatStream {
        self.guard_stream_with(stream, ctx, Some(slot))
    }

    fn guard_stream_with(
        &self,
        stream: ChatStream,
        ctx: RequestContext,
        approval: Option<ApprovalSlot>,
    ) -> ChatStream {
        if self.is_empty_for(Stage::Output) && self.is_empty_for(Stage::ToolCall) {
            return stream;
        }
        let output: Vec<GuardEntry> = self
            .entries()
            .iter()
            .filter(|e| e.capabilities().applies_to(Stage::Output))
            .cloned()
            .collect();
        let stages = output.iter().cloned().map(StageState::new).collect();
        let state = StreamState {
            inner: stream,
            chain: self.clone(),
            ctx,
            stages,
            output,
            side: Vec::new(),
            out: VecDeque::new(),
            template: None,
            role_sent: false,
            tools: CompletionBuilder::default(),
            has_tools: false,
            finish_reason: None,
            usage: None,
            done: false,
            upstream_done: false,
            raw: approval.as_ref().map(|_| CompletionBuilder::default()),
            approval,
            asked: None,
            asked_tool: None,
        };
        Box::pin(futures_util::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.out.pop_front() {
                    return Some((item, st));
                }
                if st.done {
                    return None;
                }
                if let Some(verdict) = st.asked.take() {
                    st.suspend(verdict).await;
                    continue;
                }
                match st.inner.next().await {
                    Some(Ok(chunk)) => {
                        if let Some(raw) = &mut st.raw {
                            raw.push(&chunk);
                        }
                        st.on_chunk(chunk).await
                    }
                    Some(Err(e)) => {
                        st.out.push_back(Err(e));
                        st.done = true;
                    }
                    None => {
                        st.upstream_done = true;
                        st.finish().await;
                        if st.asked.is_none() {
                            st.done = true;
                        }
                    }
                }
            }
        }))
    }
}

/// A streamed answer that a guard wants a human to approve: the whole answer as the
/// upstream sent it (not released past the point of the verdict) and the verdict.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PendingApproval {
    /// The `RequireApproval` verdict.
    pub verdict: Verdict,
    /// The whole upstream answer.
    pub completion: aegis_contracts::Completion,
}

/// Where [`GuardChain::guard_stream_pausable`] leaves a [`PendingApproval`].
pub type ApprovalSlot = std::sync::Arc<std::sync::Mutex<Option<PendingApproval>>>;

struct StreamState {
    inner: ChatStream,
    chain: GuardChain,
    ctx: RequestContext,
    /// The output guards' stages for `content`.
    stages: Vec<StageState>,
    /// The output guards, for the stages of side channels opened later.
    output: Vec<GuardEntry>,
    /// Model text streamed outside `content` (reasoning, refusals).
    side: Vec<SideChannel>,
    out: VecDeque<Result<ChatChunk, Error>>,
    template: Option<ChatChunk>,
    role_sent: bool,
    tools: CompletionBuilder,
    has_tools: bool,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    done: bool,
    /// The upstream stream has ended (it must not be polled again).
    upstream_done: bool,
    /// Every upstream chunk, kept when the host can pause for approval.
    raw: Option<CompletionBuilder>,
    approval: Option<ApprovalSlot>,
    /// A verdict asking for approval, waiting for the rest of the answer to be read.
    asked: Option<Verdict>,
    /// A tool-call verdict asking for approval.
    asked_tool: Option<Verdict>,
}

impl StreamState {
    /// Reads the rest of the upstream answer, leaves it with `verdict` for the host, and
    /// ends the stream with the approval error.
    async fn suspend(&mut self, verdict: Verdict) {
        while !self.upstream_done {
            match self.inner.next().await {
                Some(Ok(chunk)) => {
                    if let Some(raw) = &mut self.raw {
                        raw.push(&chunk);
                    }
                }
                Some(Err(e)) => {
                    // Half an answer is nothing to approve: the stream fails.
                    self.out.push_back(Err(e));
                    self.done = true;
                    return;
                }
                None => self.upstream_done = true,
            }
        }
        let completion = self.raw.take().unwrap_or_default().finish();
        let err = approval_error(&verdict);
        if let Some(slot) = &self.approval
            && let Ok(mut slot) = slot.lock()
        {
            *slot = Some(PendingApproval {
                verdict,
                completion,
            });
        }
        self.out.push_back(Err(err));
        self.done = true;
    }

    async fn on_chunk(&mut self, chunk: ChatChunk) {
        if self.template.is_none() {
            let mut template = ChatChunk::default();
            template.id.clone_from(&chunk.id);
            template.model.clone_from(&chunk.model);
            template.created = chunk.created;
            self.template = Some(template);
        }
        // Top-level metadata (`system_fingerprint`, ...) reaches the client on every chunk
        // the guards release; any other top-level field no guard judged does not.
        if let Some(template) = &mut self.template {
            for (k, v) in &chunk.extra {
                if ANSWER_METADATA_FIELDS.contains(&k.as_str()) {
                    template.extra.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let mut text = String::new();
        let mut side: Vec<(&str, String)> = Vec::new();
        for choice in &chunk.choices {
            if choice.index != 0 {
                self.fail(Error::invalid_request(
                    "output guards judge one choice; streaming with n > 1 is not supported",
                ));
                return;
            }
            if let Some(t) = &choice.delta.content {
                text.push_str(t);
            }
            // Reasoning and refusal text is judged in its own channel; every other field
            // the guards cannot judge (thinking blocks with signatures, unknown vendor
            // fields) is not released.
            for field in MESSAGE_TEXT_FIELDS {
                if let Some(t) = choice.delta.extra.get(*field).and_then(|v| v.as_str()) {
                    match side.iter_mut().find(|(f, _)| f == field) {
                        Some((_, acc)) => acc.push_str(t),
                        None => side.push((field, t.to_owned())),
                    }
                }
            }
            if !choice.delta.tool_calls.is_empty() {
                self.has_tools = true;
                let mut only_tools = ChatChunk::default();
                only_tools.choices = vec![ChunkChoice {
                    index: 0,
                    delta: Delta {
                        tool_calls: choice.delta.tool_calls.clone(),
                        ..Delta::default()
                    },
                    finish_reason: None,
                }];
                self.tools.push(&only_tools);
            }
            if choice.finish_reason.is_some() {
                self.finish_reason.clone_from(&choice.finish_reason);
            }
        }
        for (field, t) in side {
            if let Err(e) = self.pass_side(field, t, false).await {
                return self.fail(e);
            }
        }
        if text.is_empty() {
            return;
        }
        match pass(&mut self.stages, text, false, &self.chain, &self.ctx).await {
            Ok(released) => self.emit_text(released),
            Err(e) => self.fail(e),
        }
    }

    /// Feeds `text` of side field `field` through its own stages (opened on first use) and
    /// emits what they release in that field.
    async fn pass_side(&mut self, field: &str, text: String, last: bool) -> Result<(), Error> {
        let i = match self.side.iter().position(|c| c.field == field) {
            Some(i) => i,
            None => {
                self.side.push(SideChannel {
                    field: field.to_owned(),
                    stages: self.output.iter().cloned().map(StageState::new).collect(),
                });
                self.side.len() - 1
            }
        };
        let released = pass(&mut self.side[i].stages, text, last, &self.chain, &self.ctx).await?;
        if !released.is_empty() {
            let mut delta = Delta::default();
            delta.extra.insert(field.to_owned(), released.into());
            self.emit_delta(delta);
        }
        Ok(())
    }

    async fn finish(&mut self) {
        let fields: Vec<String> = self.side.iter().map(|c| c.field.clone()).collect();
        for field in fields {
            if let Err(e) = self.pass_side(&field, String::new(), true).await {
                return self.fail(e);
            }
        }
        let released = match pass(
            &mut self.stages,
            String::new(),
            true,
            &self.chain,
            &self.ctx,
        )
        .await
        {
            Ok(t) => t,
            Err(e) => return self.fail(e),
        };
        for stage in &self.stages {
            stage.report_clean(&self.chain, &self.ctx);
        }
        self.emit_text(released);
        if self.has_tools {
            let completion = std::mem::take(&mut self.tools).finish();
            let calls = completion
                .choices
                .into_iter()
                .next()
                .map(|c| c.message.tool_calls)
                .unwrap_or_default();
            let mut judged = Vec::with_capacity(calls.len());
            let mut message = Message::default();
            message.role = Role::Assistant;
            message.tool_calls = calls;
            let outcome = self
                .chain
                .check(GuardSubject::Output { message }, &self.ctx, &[])
                .await;
            self.note_approval(&outcome.decision);
            let calls = match outcome.into_result() {
                Ok(GuardSubject::Output { message }) => message.tool_calls,
                Ok(_) => Vec::new(),
                Err(e) => return self.fail(e),
            };
            let host = self
                .ctx
                .extensions
                .get::<aegis_contracts::HostJudgedTools>()
                .cloned();
            for call in calls {
                if host.as_ref().is_some_and(|h| h.judges(&call.function.name)) {
                    judged.push(call);
                    continue;
                }
                let outcome = self
                    .chain
                    .check(
                        GuardSubject::ToolCall { call, server: None },
                        &self.ctx,
                        &[],
                    )
                    .await;
                self.note_approval(&outcome.decision);
                match outcome.into_result() {
                    Ok(GuardSubject::ToolCall { call, .. }) => judged.push(call),
                    Ok(_) => {}
                    Err(e) => return self.fail(e),
                }
            }
            let deltas = judged
                .iter()
                .enumerate()
                .map(|(i, c)| ToolCallDelta {
                    index: i as u32,
                    ..ToolCallDelta::from(c)
                })
                .collect();
            self.emit_delta(Delta {
                tool_calls: deltas,
                ..Delta::default()
            });
        }
        let mut last = self.template.clone().unwrap_or_default();
        last.choices = vec![ChunkChoice {
            index: 0,
            delta: Delta::default(),
            finish_reason: self.finish_reason.take().or_else(|| Some("stop".into())),
        }];
        self.out.push_back(Ok(last));
        if let Some(usage) = self.usage {
            let mut u = self.template.clone().unwrap_or_default();
            u.usage = Some(usage);
            self.out.push_back(Ok(u));
        }
    }

    fn emit_text(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        self.emit_delta(Delta {
            content: Some(text),
            ..Delta::default()
        });
    }

    fn emit_delta(&mut self, mut delta: Delta) {
        if !self.role_sent {
            delta.role = Some(Role::Assistant);
            self.role_sent = true;
        }
        let mut chunk = self.template.clone().unwrap_or_default();
        chunk.choices = vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: None,
        }];
        self.out.push_back(Ok(chunk));
    }

    fn note_approval(&mut self, decision: &ChainDecision) {
        if let ChainDecision::NeedsApproval(v) = decision {
            self.asked_tool = Some(v.clone());
        }
    }

    /// Ends the stream with `e` — unless it asks for approval and the host can pause: then
    /// the rest of the answer is read first (see [`suspend`](Self::suspend)).
    fn fail(&mut self, e: Error) {
        if e.kind() == ErrorKind::ApprovalRequired && self.approval.is_some() {
            let asked = self
                .stages
                .iter_mut()
                .chain(self.side.iter_mut().flat_map(|c| c.stages.iter_mut()))
                .find_map(|s| s.asked.take())
                .or_else(|| self.asked_tool.take());
            if let Some(v) = asked {
                self.asked = Some(v);
                return;
            }
        }
        self.out.push_back(Err(e));
        self.done = true;
    }
}

/// Feeds text through every stage of one channel; returns what the last stage releases.
async fn pass(
    stages: &mut [StageState],
    text: String,
    last: bool,
    chain: &GuardChain,
    ctx: &RequestContext,
) -> Result<String, Error> {
    let mut carried = text;
    for stage in stages {
        carried = stage.push(&carried, last, chain, ctx).await?;
    }
    Ok(carried)
}

/// A streamed field of model text other than `content` (`reasoning_content`, `refusal`):
/// judged by the same output guards as the content, each with its own window state.
struct SideChannel {
    field: String,
    stages: Vec<StageState>,
}

/// One guard's stage of the streaming pipeline.
struct StageState {
    entry: GuardEntry,
    /// Released context (the first `ctx_len` bytes) followed by pending text.
    buf: String,
    ctx_len: usize,
    /// Offset of `buf[0]` in the whole text this stage has seen.
    base: usize,
    acted: bool,
    /// The verdict of a `RequireApproval` this stage stopped at.
    asked: Option<Verdict>,
}

impl StageState {
    fn new(entry: GuardEntry) -> Self {
        Self {
            entry,
            buf: String::new(),
            ctx_len: 0,
            base: 0,
            acted: false,
            asked: None,
        }
    }

    async fn push(
        &mut self,
        text: &str,
        last: bool,
        chain: &GuardChain,
        ctx: &RequestContext,
    ) -> Result<String, Error> {
        self.buf.push_str(text);
        let granularity = self.entry.capabilities().granularity;
        // What is final: findings that start before it are judged and acted on now, the
        // rest waits for more text.
        let settled = match granularity {
            _ if last => self.buf.len(),
            Granularity::FullText => return Ok(String::new()),
            Granularity::Sentence => last_sentence_end(&self.buf, self.ctx_len),
            Granularity::Window(w) => self.settled(w, ctx),
            // Character by character — but the last one may still gain a combining mark.
            _ => last_unit_start(&self.buf).max(self.ctx_len),
        };
        // A window guard judges everything held (its probes said what is final); others
        // judge only the final text (whole sentences).
        let judged = match granularity {
            Granularity::Window(_) => self.buf.len(),
            _ => settled,
        };
        let (release_to, edits) = if settled > self.ctx_len {
            self.check(judged, settled, last, chain, ctx).await?
        } else {
            (self.ctx_len, Vec::new())
        };
        // The guard's edits apply to what goes out; the held context stays as the guard
        // judged it, so a later finding sees the same neighbours as in the whole text.
        let released = edited(&self.buf[..release_to], self.ctx_len, &edits);
        let keep_from = match granularity {
            Granularity::Window(w) => window_start(&self.buf, release_to, w),
            _ => release_to,
        };
        self.buf.drain(..keep_from);
        self.base += keep_from;
        self.ctx_len = release_to - keep_from;
        Ok(released)
    }

    /// Where the held text of a `Window(w)` guard stops being final: where the guard says
    /// (a candidate still in progress), but never more than `w` bytes back from the end.
    fn settled(&self, w: usize, ctx: &RequestContext) -> usize {
        let len = self.buf.len();
        let oldest = window_start(&self.buf, len, w).max(self.ctx_len);
        // The last character may still change (a combining mark may follow it), so the
        // guard is asked about the text before it: a candidate that touches it is at the
        // end, not complete.
        let firm = last_unit_start(&self.buf);
        let said = self
            .entry
            .stream_settled(&self.buf[..firm], self.ctx_len.min(firm), ctx)
            .map_or(oldest, |at| at.min(firm));
        let mut at = said.max(oldest).min(firm);
        while !self.buf.is_char_boundary(at) {
            at -= 1;
        }
        at.max(self.ctx_len)
    }

    /// Judges `buf[..judged]` and acts on what is final: findings that start before
    /// `settled` (later ones may still change). Returns how far the text is released —
    /// `settled`, or past the end of an edit that crosses it, so a replacement goes out
    /// whole — and the edits to make to it.
    async fn check(
        &mut self,
        judged: usize,
        settled: usize,
        last: bool,
        chain: &GuardChain,
        ctx: &RequestContext,
    ) -> Result<(usize, Vec<Edit>), Error> {
        let subject = GuardSubject::OutputChunk {
            text: self.buf[..judged].to_owned(),
            offset: self.base,
        };
        let run_id = ctx.run_id.as_deref().unwrap_or_default();
        let id = self.entry.id().to_owned();
        let view = super::normalize::View::of(&subject);
        let ruling = chain
            .rule(&self.entry, &subject, view.as_ref(), ctx, &[])
            .await;
        let (mut verdict, enforce) = match ruling {
            Ruling::Passed => return Ok((settled, Vec::new())),
            Ruling::FailedClosed(v) => return Err(blocked_error(&v)),
            Ruling::Judged { verdict, enforced } => (verdict, enforced),
        };
        // Findings wholly in the released context were judged by an earlier check, which
        // saw them with more text on their left (here the cut at the window's start may
        // fake a boundary); findings starting at or after `settled` are not final yet.
        let ctx_len = self.ctx_len;
        let had_findings = !verdict.findings.is_empty();
        verdict
            .findings
            .retain(|f| f.span.is_none_or(|s| s.end > ctx_len && s.start < settled));
        let edits_now = match &verdict.decision {
            Decision::Sanitize { edits } => edits
                .iter()
                .any(|e| e.end > ctx_len && (e.start < settled || e.start == judged && last)),
            _ => false,
        };
        if had_findings && verdict.findings.is_empty() && !edits_now {
            return Ok((settled, Vec::new()));
        }
        for f in &mut verdict.findings {
            if let Some(span) = &mut f.span {
                *span = Span {
                    segment: 0,
                    start: span.start + self.base,
                    end: span.end + self.base,
                };
            }
        }
        if verdict.is_allow() {
            return Ok((settled, Vec::new()));
        }
        self.acted = true;
        chain.report(run_id, Stage::Output, &verdict, enforce);
        if !enforce {
            return Ok((settled, Vec::new()));
        }
        match &verdict.decision {
            Decision::Allow => Ok((settled, Vec::new())),
            Decision::Block { .. } => Err(blocked_error(&verdict)),
            Decision::RequireApproval { .. } => {
                self.asked = Some(verdict.clone());
                Err(approval_error(&verdict))
            }
            Decision::Sanitize { edits } => self.final_edits(edits, judged, settled, last),
            // A decision this build does not know is not an allow: fail closed.
            _ => Err(Error::new(
                ErrorKind::PolicyBlocked,
                format!("guard `{id}` returned a decision this version of Aegis does not know"),
            )
            .with_code("unknown_decision")),
        }
    }

    /// The edits that start before `settled` (and reach past the released context), checked
    /// and in order, and how far they take the release.
    fn final_edits(
        &self,
        edits: &[Edit],
        judged: usize,
        settled: usize,
        last: bool,
    ) -> Result<(usize, Vec<Edit>), Error> {
        let id = self.entry.id();
        let mut edits: Vec<Edit> = edits
            .iter()
            .filter(|e| e.end > self.ctx_len && (e.start < settled || e.start == judged && last))
            .cloned()
            .collect();
        edits.sort_by_key(|e| e.start);
        let mut prev_end = self.ctx_len;
        let mut release_to = settled;
        for e in &edits {
            let bad = e.segment != 0
                || e.start < prev_end
                || e.start > e.end
                || e.end > judged
                || !self.buf.is_char_boundary(e.start)
                || !self.buf.is_char_boundary(e.end);
            if bad {
                return Err(Error::new(
                    ErrorKind::PolicyBlocked,
                    format!(
                        "guard `{id}` returned an edit outside its declared window ({}..{}); failing closed",
                        e.start, e.end
                    ),
                )
                .with_code("guard_unavailable"));
            }
            prev_end = e.end;
            release_to = release_to.max(e.end);
        }
        Ok((release_to, edits))
    }

    /// At the end of a stream, an `Allow` verdict for a guard that never acted, so every
    /// guard leaves an audit record.
    fn report_clean(&self, chain: &GuardChain, ctx: &RequestContext) {
        if self.acted {
            return;
        }
        let run_id = ctx.run_id.as_deref().unwrap_or_default();
        chain.telemetry().emit(run_id, || {
            let mut v = Verdict::allow();
            v.guard = self.entry.id().to_owned();
            RunEventKind::Verdict {
                stage: Stage::Output,
                verdict: v,
                enforced: self.entry.policy().mode == GuardMode::Enforce,
            }
        });
    }
}

/// `text[from..]` with `edits` (sorted, non-overlapping, within it) made.
fn edited(text: &str, from: usize, edits: &[Edit]) -> String {
    let mut out = String::with_capacity(text.len() - from);
    let mut at = from;
    for e in edits {
        out.push_str(&text[at..e.start]);
        out.push_str(&e.replacement);
        at = e.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Where the window of `w` bytes ending at `end` starts, counted in what guards judge —
/// the normalized view: invisible characters are removed from it, so they do not count,
/// and a character counts as many bytes as its NFKC form (a full-width letter is one), so
/// a finding of `w` judged bytes always fits. A char boundary; 0 when `s[..end]` is shorter.
fn window_start(s: &str, end: usize, w: usize) -> usize {
    use unicode_normalization::char::canonical_combining_class;
    let mut need = w;
    let mut at = end;
    // Whole units (a character and the combining marks after it), as the view makes them.
    let mut unit_end = end;
    for (i, c) in s[..end].char_indices().rev() {
        if need == 0 {
            return at;
        }
        if canonical_combining_class(c) != 0 {
            continue;
        }
        need = need.saturating_sub(judged_len(&s[i..unit_end]));
        at = i;
        unit_end = i;
    }
    if need == 0 { at } else { 0 }
}

/// Where the last character of `s` starts, with the combining marks after it: the next
/// chunk may bring a mark that composes with it (`e` + U+0301 is `é`), which changes what
/// the guards see around it (a word boundary, a look-ahead), so it is never final.
fn last_unit_start(s: &str) -> usize {
    use unicode_normalization::char::canonical_combining_class;
    let mut at = s.len();
    for (i, c) in s.char_indices().rev() {
        at = i;
        if canonical_combining_class(c) == 0 {
            break;
        }
    }
    at
}

/// How many bytes a unit (a character and its combining marks) takes in the normalized
/// view: invisible characters are removed, the rest is NFKC.
fn judged_len(unit: &str) -> usize {
    if unit.len() == 1 {
        return usize::from(
            aegis_contracts::text::invisible_kind(unit.as_bytes()[0] as char).is_none(),
        );
    }
    use unicode_normalization::UnicodeNormalization;
    unit.chars()
        .filter(|c| aegis_contracts::text::invisible_kind(*c).is_none())
        .nfkc()
        .filter(|c| aegis_contracts::text::invisible_kind(*c).is_none())
        .map(char::len_utf8)
        .sum()
}

/// The end of the last complete sentence in `s[from..]` (after its terminator and the
/// following whitespace char), or `from` when there is none.
fn last_sentence_end(s: &str, from: usize) -> usize {
    let bytes = s.as_bytes();
    let mut end = from;
    for i in from..bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            end = i + 1;
        } else if matches!(b, b'.' | b'!' | b'?')
            && bytes.get(i + 1).is_some_and(|n| n.is_ascii_whitespace())
        {
            end = i + 2;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_never_splits_a_character_and_invisible_ones_do_not_count() {
        let s = "aé€";
        for w in 0..=s.len() + 2 {
            assert!(s.is_char_boundary(window_start(s, s.len(), w)));
        }
        assert_eq!(window_start("abcdef", 6, 3), 3);
        assert_eq!(window_start("ab", 2, 3), 0);
        // "pa\u{200b}ss": four visible bytes reach back over the zero-width space.
        let t = "xpa\u{200b}ss";
        assert_eq!(window_start(t, t.len(), 4), 1);
        // Full-width letters are one judged byte each (three raw ones).
        let wide = "xｇｈｐ";
        assert_eq!(window_start(wide, wide.len(), 3), 1);
        // A letter and its combining mark are one unit, "é" once judged: a window never
        // starts between them, and counts them as the two bytes of "é".
        let marks = "xe\u{301}e\u{301}e\u{301}";
        assert_eq!(window_start(marks, marks.len(), 6), 1);
        assert_eq!(window_start(marks, marks.len(), 5), 1);
        assert_eq!(window_start(marks, marks.len(), 4), 4);
    }

    #[test]
    fn sentence_end_needs_whitespace_after_the_terminator() {
        assert_eq!(last_sentence_end("Hi. there", 0), 4);
        assert_eq!(last_sentence_end("3.14 is pi", 0), 0);
        assert_eq!(last_sentence_end("a\nb", 0), 2);
    }
}
