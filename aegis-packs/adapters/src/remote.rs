//! [`HttpGuard`]: a guardrail written as a service in any language, spoken to over a
//! small, versioned JSON protocol (`aegis.guard.v1`) — the way to extend the shipped
//! gateway binary without rebuilding it.
//!
//! **The protocol.** For each subject the chain judges, one `POST` to the configured URL with
//! a [`GuardCall`] body — every text of the subject in one call (`segments`, in the order
//! edits name them), the structured subject, and the run's context (never credentials) —
//! and a [`Verdict`] as the answer: `{"decision": "allow"}`, `{"decision": "block",
//! "reason": …, "code": …}`, `{"decision": "sanitize", "edits": [{"segment", "start",
//! "end", "replacement"}]}` (byte offsets into the segment's UTF-8 text) or `{"decision":
//! "require_approval", "reason": …, "payload": …}`, with optional `findings` and `score`.
//! The request carries `aegis-protocol: aegis.guard.v1`; a service that cannot speak it
//! answers `400`. The gateway's OpenAPI document describes both bodies (`GuardCall`,
//! `Verdict`, under `x-aegis-plugin-protocols`).
//!
//! **When the service misbehaves** — unreachable, slower than `timeout_ms`, a non-2xx
//! status, a body that is not a verdict, a score outside `[0, 1]`, edits out of range —
//! the check is an `Err`, which the chain turns into a block (or, with `fail_mode =
//! "open"`, lets through), recorded with the guard's id like any verdict. Never a crash.

use std::time::Duration;

use aegis_contracts::{
    Cost, Decision, Error, Granularity, GuardCapabilities, GuardSubject, Guardrail, Origin,
    Principal, RequestContext, Secret, Stage, Verdict, async_trait,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::http::Service;

/// The protocol's name and version, sent in every call's `protocol` field and
/// `aegis-protocol` header.
pub const GUARD_PROTOCOL: &str = "aegis.guard.v1";

/// The longest reason or code a service may answer, in bytes.
const MAX_TEXT_BYTES: usize = 1024;

/// The most findings one verdict may carry.
const MAX_FINDINGS: usize = 1_000;

/// The largest approval payload a service may answer, in bytes of JSON.
const MAX_PAYLOAD_BYTES: usize = 64 << 10;

/// Block codes only the engine gives (a guard that failed, a decision it does not know).
const RESERVED_CODES: [&str; 2] = ["guard_unavailable", "unknown_decision"];

/// Config of [`HttpGuard`].
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpGuardConfig {
    /// Where calls go (`http://guards.internal:9000/check`); each is a `POST` of a
    /// [`GuardCall`].
    pub url: String,
    /// Bearer token the service expects (`secret://env/GUARD_TOKEN`).
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Deadline of one call in milliseconds (default 2000). A slower service is an error,
    /// which the chain blocks on unless `fail_mode = "open"`.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Stages sent to the service (default: input, output, tool results, retrieved
    /// documents).
    #[serde(default = "default_stages")]
    pub stages: Vec<Stage>,
    /// Whether the service judges the text exactly as it came (default `false`: it sees the
    /// engine's normalized view, and its edits are mapped back).
    #[serde(default)]
    pub raw_text: bool,
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_stages() -> Vec<Stage> {
    crate::DEFAULT_GUARD_STAGES.to_vec()
}

/// One call of the protocol: what the service is asked to judge.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GuardCall<'a> {
    /// Always [`GUARD_PROTOCOL`].
    pub protocol: &'static str,
    /// The guard's id in the config (one service may serve several).
    pub guard: &'a str,
    /// Where the subject comes from.
    pub stage: Stage,
    /// Every text of the subject, in order: a `sanitize` verdict's edits name them by index.
    pub segments: Vec<CallSegment<'a>>,
    /// The subject itself (messages, a tool call, a document, ...), for services that need
    /// its structure.
    pub subject: &'a GuardSubject,
    /// The run and its caller.
    pub context: CallContext<'a>,
}

/// One text of a [`GuardCall`].
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallSegment<'a> {
    /// Who produced it (`user`, `operator`, `model`, `tool`, `retrieval`): tool and
    /// retrieval texts are untrusted.
    pub origin: Origin,
    /// The text.
    pub text: &'a str,
}

/// The run a [`GuardCall`] belongs to. Credentials are never sent.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallContext<'a> {
    /// The run, when there is one.
    pub run_id: Option<&'a str>,
    /// The authenticated caller.
    pub principal: Option<&'a Principal>,
    /// The run's labels (classification, residency, ...).
    pub labels: &'a std::collections::BTreeMap<String, String>,
}

/// A guardrail delegating to a service that speaks [`GUARD_PROTOCOL`].
pub struct HttpGuard {
    id: String,
    service: Service,
    config: HttpGuardConfig,
}

impl std::fmt::Debug for HttpGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGuard")
            .field("id", &self.id)
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

impl HttpGuard {
    /// The guard `id` (its config id, sent with every call) for the service in `config`.
    pub fn new(id: impl Into<String>, config: HttpGuardConfig) -> Result<Self, Error> {
        if config.stages.is_empty() {
            return Err(Error::config("http: `stages` must name at least one stage"));
        }
        let service = Service::new(
            "the http guard service",
            &config.url,
            Duration::from_millis(config.timeout_ms.max(1)),
            config.api_token.clone(),
        )?
        .exact_url()
        .with_header("aegis-protocol", GUARD_PROTOCOL);
        Ok(Self {
            id: id.into(),
            service,
            config,
        })
    }
}

impl<'a> GuardCall<'a> {
    /// The call judging `subject` for guard `guard` in the run `ctx` describes.
    pub fn new(guard: &'a str, subject: &'a GuardSubject, ctx: &'a RequestContext) -> Self {
        Self {
            protocol: GUARD_PROTOCOL,
            guard,
            stage: subject.stage(),
            segments: subject
                .segments()
                .into_iter()
                .map(|s| CallSegment {
                    origin: s.origin,
                    text: s.text,
                })
                .collect(),
            subject,
            context: CallContext {
                run_id: ctx.run_id.as_deref(),
                principal: ctx.principal.as_ref(),
                labels: &ctx.labels,
            },
        }
    }
}

/// The verdict in `answer` — a guard plugin's answer to a [`GuardCall`] on `subject` —
/// refused when it is not one this subject can take: not a verdict, a score outside
/// `[0, 1]`, spans or edits outside their segment, overlapping edits, over-long words, or
/// one of the engine's own block codes. `plugin` names the answerer in the error. Every
/// plugin surface (the `http` guard, the Python and Node bindings) validates with this.
pub fn verdict_from(
    answer: serde_json::Value,
    subject: &GuardSubject,
    plugin: &str,
) -> Result<Verdict, Error> {
    let bad = |why: String| Error::provider(format!("{plugin} answered {why}"));
    let mut answer = answer;
    // `score` may be left out: the highest finding's, or 0.
    let scored = match answer.as_object_mut() {
        Some(o) => o.contains_key("score") || o.insert("score".into(), 0.0.into()).is_some(),
        None => true,
    };
    let mut verdict: Verdict = serde_json::from_value(answer).map_err(|e| {
        bad(format!(
            "something that is not an {GUARD_PROTOCOL} verdict: {e}"
        ))
    })?;
    if !(0.0..=1.0).contains(&verdict.score) {
        return Err(bad(format!("a score outside [0, 1]: {}", verdict.score)));
    }
    if let Some(f) = verdict
        .findings
        .iter()
        .find(|f| !(0.0..=1.0).contains(&f.score))
    {
        return Err(bad(format!("a finding scored outside [0, 1]: {}", f.score)));
    }
    let segments = subject.segments();
    let in_segment = |segment: usize, start: usize, end: usize| {
        segments.get(segment).is_some_and(|s| {
            start <= end
                && end <= s.text.len()
                && s.text.is_char_boundary(start)
                && s.text.is_char_boundary(end)
        })
    };
    if let Some(f) = verdict.findings.iter().find(|f| {
        f.span
            .is_some_and(|s| !in_segment(s.segment, s.start, s.end))
    }) {
        return Err(bad(format!("a finding (`{}`) outside its segment", f.kind)));
    }
    if let Decision::Sanitize { edits } = &verdict.decision {
        let mut spans: Vec<(usize, usize, usize)> =
            edits.iter().map(|e| (e.segment, e.start, e.end)).collect();
        spans.sort_unstable();
        if spans
            .windows(2)
            .any(|w| w[0].0 == w[1].0 && w[1].1 < w[0].2)
        {
            return Err(bad("overlapping edits".to_owned()));
        }
        for e in edits {
            if !in_segment(e.segment, e.start, e.end) {
                return Err(bad(format!(
                    "an edit outside its segment (segment {}, bytes {}..{})",
                    e.segment, e.start, e.end
                )));
            }
        }
    }
    if !scored {
        verdict.score = verdict.findings.iter().map(|f| f.score).fold(0.0, f32::max);
    }
    // Words for humans stay short, and a service cannot pass its block off as one of the
    // engine's own codes (a caller or an alert reading `guard_unavailable` must be able to
    // trust it).
    let long = |s: &str| s.len() > MAX_TEXT_BYTES;
    // What a plugin answers is stored with the run: its size is bounded by the subject's,
    // not by the plugin.
    if verdict.findings.len() > MAX_FINDINGS {
        return Err(bad(format!("more than {MAX_FINDINGS} findings")));
    }
    if let Some(f) = verdict
        .findings
        .iter()
        .find(|f| long(&f.kind) || long(&f.detector))
    {
        return Err(bad(format!(
            "a finding whose kind or detector is over {MAX_TEXT_BYTES} bytes (`{}`…)",
            f.kind.chars().take(40).collect::<String>()
        )));
    }
    match &verdict.decision {
        Decision::Sanitize { edits } => {
            let subject_bytes = subject.text_len();
            let added: usize = edits.iter().map(|e| e.replacement.len()).sum();
            if added > subject_bytes.max(MAX_TEXT_BYTES) * 4 {
                return Err(bad(format!(
                    "edits adding {added} bytes to a {subject_bytes}-byte subject"
                )));
            }
        }
        Decision::RequireApproval { payload, .. }
            if payload.to_string().len() > MAX_PAYLOAD_BYTES =>
        {
            return Err(bad(format!(
                "an approval payload over {MAX_PAYLOAD_BYTES} bytes"
            )));
        }
        _ => {}
    }
    match &verdict.decision {
        Decision::Block { reason, code } => {
            if long(reason) || long(code) {
                return Err(bad(format!("a reason or code over {MAX_TEXT_BYTES} bytes")));
            }
            if RESERVED_CODES.contains(&code.as_str()) {
                return Err(bad(format!("the engine's own code `{code}`")));
            }
        }
        Decision::RequireApproval { reason, .. } if long(reason) => {
            return Err(bad(format!("a reason over {MAX_TEXT_BYTES} bytes")));
        }
        _ => {}
    }
    // The chain names the guard; whatever the service put there is not evidence.
    verdict.guard.clear();
    Ok(verdict)
}

#[async_trait]
impl Guardrail for HttpGuard {
    fn capabilities(&self) -> GuardCapabilities {
        let caps = GuardCapabilities::new(self.config.stages.clone(), Granularity::FullText)
            .sanitizing()
            .with_cost(Cost::Expensive);
        if self.config.raw_text {
            caps.raw_text()
        } else {
            caps
        }
    }

    /// One call per subject, every segment in it.
    async fn check(&self, subject: &GuardSubject, ctx: &RequestContext) -> Result<Verdict, Error> {
        let call = GuardCall::new(&self.id, subject, ctx);
        let body = serde_json::to_value(&call)
            .map_err(|e| Error::internal(format!("a guard call does not serialize: {e}")))?;
        let answer = self.service.post("", &body).await?;
        verdict_from(answer, subject, "the http guard service")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aegis_contracts::Message;
    use serde_json::json;

    fn subject() -> GuardSubject {
        GuardSubject::Input {
            messages: vec![Message::user("héllo world")],
        }
    }

    #[test]
    fn answers_that_are_not_verdicts_this_subject_can_take_are_refused() {
        for bad in [
            json!("allow"),
            json!({"decision": "maybe"}),
            json!({"decision": "allow", "score": 1.5}),
            json!({"decision": "sanitize", "edits": [{"segment": 1, "start": 0, "end": 1, "replacement": "x"}]}),
            json!({"decision": "sanitize", "edits": [{"segment": 0, "start": 2, "end": 3, "replacement": "x"}]}),
            json!({"decision": "sanitize", "edits": [{"segment": 0, "start": 5, "end": 99, "replacement": "x"}]}),
            json!({"decision": "block", "reason": "r", "code": "c", "findings": [{"kind": "X", "score": -1, "detector": "s"}]}),
            json!({"decision": "block", "reason": "r", "code": "c", "findings": [{"kind": "X", "span": {"segment": 0, "start": 0, "end": 99}, "score": 1, "detector": "s"}]}),
            json!({"decision": "sanitize", "edits": [
                {"segment": 0, "start": 0, "end": 5, "replacement": "x"},
                {"segment": 0, "start": 3, "end": 7, "replacement": "y"}]}),
            json!({"decision": "block", "reason": "r", "code": "guard_unavailable"}),
            json!({"decision": "block", "reason": "r".repeat(2000), "code": "c"}),
            json!({"decision": "allow", "findings": vec![json!({"kind": "X", "score": 0.5, "detector": "d"}); 1001]}),
            json!({"decision": "allow", "findings": [{"kind": "X".repeat(2000), "score": 0.5, "detector": "d"}]}),
            json!({"decision": "sanitize", "edits": [{"segment": 0, "start": 0, "end": 1, "replacement": "x".repeat(1 << 20)}]}),
            json!({"decision": "require_approval", "reason": "r", "payload": {"blob": "x".repeat(70_000)}}),
        ] {
            assert!(verdict_from(bad.clone(), &subject(), "t").is_err(), "{bad}");
        }
        let ok = verdict_from(
            json!({"decision": "sanitize", "guard": "spoofed", "edits": [{"segment": 0, "start": 7, "end": 12, "replacement": "W"}]}),
            &subject(),
            "t",
        )
        .unwrap();
        assert!(ok.guard.is_empty());
        assert!(matches!(ok.decision, Decision::Sanitize { .. }));
        let scored = verdict_from(
            json!({"decision": "block", "reason": "r", "code": "c", "findings": [{"kind": "X", "score": 0.7, "detector": "s"}]}),
            &subject(),
            "t",
        )
        .unwrap();
        assert_eq!(
            scored.score, 0.7,
            "a left-out score is the highest finding's"
        );
    }
}
