//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use aegis_contracts::{Decision, GuardSubject, Guardrail, Message, RequestContext, Verdict};

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// A user-input subject with one message.
pub fn user(text: &str) -> GuardSubject {
    GuardSubject::Input {
        messages: vec![Message::user(text)],
    }
}

/// Checks `subject` with `guard`.
pub fn check(guard: &dyn Guardrail, subject: &GuardSubject) -> Verdict {
    block_on(guard.check(subject, &RequestContext::default())).unwrap()
}

/// Checks a one-message user input.
pub fn check_text(guard: &dyn Guardrail, text: &str) -> Verdict {
    check(guard, &user(text))
}

/// Applies a sanitize verdict to `subject` and returns the first segment's text.
pub fn sanitized(guard: &dyn Guardrail, text: &str) -> String {
    let mut subject = user(text);
    let verdict = check(guard, &subject);
    match &verdict.decision {
        Decision::Sanitize { edits } => subject.apply_edits(edits).unwrap(),
        other => panic!("expected sanitize, got {other:?}"),
    }
    subject.segments()[0].text.to_owned()
}

/// `(start, end, kind)` of every finding with a span, sorted.
pub fn spans(verdict: &Verdict) -> Vec<(usize, usize, String)> {
    let mut v: Vec<_> = verdict
        .findings
        .iter()
        .filter_map(|f| f.span.map(|s| (s.start, s.end, f.kind.clone())))
        .collect();
    v.sort();
    v
}

/// Judges `text` the way a streaming engine with a hold-back window of `window` bytes
/// can: it scans overlapping windows of `4 * window + 8` bytes every `window` bytes
/// (char-boundary adjusted) and keeps a window's finding only when at least `window` bytes
/// of context lie on each side of it inside the window (or the window reaches the text's
/// edge there). Returns the union of findings in absolute offsets.
pub fn windowed_spans(
    guard: &dyn Guardrail,
    text: &str,
    window: usize,
) -> Vec<(usize, usize, String)> {
    let floor = |mut i: usize| {
        if i >= text.len() {
            return text.len();
        }
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut a = 0usize;
    loop {
        let start = floor(a);
        let end = floor(a.saturating_add(4 * window + 8));
        let verdict = check(
            guard,
            &GuardSubject::OutputChunk {
                text: text[start..end].to_owned(),
                offset: start,
            },
        );
        for (s, e, k) in spans(&verdict) {
            let (s, e) = (s + start, e + start);
            let context_before = start == 0 || s >= start + window;
            let context_after = end == text.len() || e + window <= end;
            if context_before && context_after {
                out.push((s, e, k));
            }
        }
        if end >= text.len() {
            break;
        }
        a += window;
    }
    out.sort();
    out.dedup();
    out
}

/// The declared window of a guard (panics for other granularities); `Char` counts as 4 bytes.
pub fn declared_window(guard: &dyn Guardrail) -> usize {
    match guard.capabilities().granularity {
        aegis_contracts::Granularity::Window(n) => n,
        aegis_contracts::Granularity::Char => 4,
        other => panic!("not a windowed guard: {other:?}"),
    }
}
