//! Runs the shipped packs, with their default configs, over the corpora — what a user who
//! turns a pack on gets.

use aegis_contracts::{
    Decision, Document, GuardSubject, Guardrail, Message, RequestContext, Verdict,
};
use aegis_guards::{PromptInjection, PromptInjectionConfig, Secrets, SecretsConfig};
use aegis_pii::{PiiGuard, PiiGuardConfig};

use crate::{
    Case, Split, injection,
    injection::{InjectionCase, Source},
    pii,
    score::{self, Predicted, Report},
    secrets,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds")
}

fn verdict(rt: &tokio::runtime::Runtime, guard: &dyn Guardrail, subject: &GuardSubject) -> Verdict {
    rt.block_on(guard.check(subject, &RequestContext::default()))
        .expect("the packs judge every text without an error")
}

fn findings(v: &Verdict) -> Vec<Predicted> {
    v.findings
        .iter()
        .filter_map(|f| {
            let span = f.span?;
            Some(Predicted {
                kind: f.kind.clone(),
                start: span.start,
                end: span.end,
            })
        })
        .collect()
}

fn input(text: &str) -> GuardSubject {
    GuardSubject::Input {
        messages: vec![Message::user(text)],
    }
}

fn spans_of(guard: &dyn Guardrail, cases: &[Case]) -> Vec<Vec<Predicted>> {
    let rt = runtime();
    cases
        .iter()
        .map(|c| findings(&verdict(&rt, guard, &input(&c.text))))
        .collect()
}

/// The PII pack (`PiiGuard` with its default config) over the PII corpus of `split`.
pub fn pii(split: Split) -> (Vec<Case>, Report) {
    let guard = PiiGuard::new(PiiGuardConfig::default()).expect("the default PII config builds");
    let cases = pii::corpus(split);
    let predicted = spans_of(&guard, &cases);
    let report = score::score(&cases, &predicted, |a, b| a == b);
    (cases, report)
}

/// The secrets pack (`Secrets` with its default config) over the secrets corpus of `split`.
/// Any kind the pack reports counts as [`secrets::KIND`].
pub fn secrets(split: Split) -> (Vec<Case>, Report) {
    let guard = Secrets::new(SecretsConfig::default()).expect("the default secrets config builds");
    let cases = secrets::corpus(split);
    let predicted = spans_of(&guard, &cases);
    let report = score::score(&cases, &predicted, |_, _| true);
    (cases, report)
}

/// What the injection pack decided about each case.
#[derive(Debug, Clone)]
pub struct InjectionResults {
    /// The cases.
    pub cases: Vec<InjectionCase>,
    /// Whether each is an attack.
    pub labels: Vec<bool>,
    /// Whether the guard (default config) blocked it, judged at its origin.
    pub blocked: Vec<bool>,
    /// The detector's score for each text.
    pub scores: Vec<f32>,
}

impl InjectionResults {
    /// Precision and recall of the guard's decisions.
    pub fn decisions(&self) -> score::Counts {
        let as_scores: Vec<f32> = self
            .blocked
            .iter()
            .map(|b| f32::from(u8::from(*b)))
            .collect();
        score::classify(&self.labels, &as_scores, 1.0)
    }

    /// Recall of the guard's decisions per attack family.
    pub fn recall_by_family(&self) -> Vec<(&'static str, f64)> {
        let mut families: Vec<&'static str> = self.cases.iter().map(|c| c.family).collect();
        families.dedup();
        families
            .into_iter()
            .filter(|f| *f != "benign")
            .map(|f| {
                let (hit, all) = self
                    .cases
                    .iter()
                    .zip(&self.blocked)
                    .filter(|(c, _)| c.family == f)
                    .fold((0, 0), |(h, a), (_, b)| (h + usize::from(*b), a + 1));
                (f, hit as f64 / all as f64)
            })
            .collect()
    }
}

/// The injection pack (`PromptInjection` with its default config) over the injection corpus
/// of `split`: user text is judged as input, untrusted text as a tool result.
pub fn injection(split: Split) -> InjectionResults {
    let guard = PromptInjection::new(PromptInjectionConfig::default())
        .expect("the default injection config builds");
    let rt = runtime();
    let cases = injection::corpus(split);
    let mut out = InjectionResults {
        labels: Vec::new(),
        blocked: Vec::new(),
        scores: Vec::new(),
        cases: Vec::new(),
    };
    for c in cases {
        let subject = match c.source {
            Source::User => input(&c.case.text),
            Source::Untrusted => GuardSubject::ToolResult {
                call_id: "eval".into(),
                name: "fetch".into(),
                content: c.case.text.clone(),
                server: None,
            },
        };
        let v = verdict(&rt, &guard, &subject);
        out.labels.push(!c.case.expected.is_empty());
        out.blocked
            .push(matches!(v.decision, Decision::Block { .. }));
        out.scores.push(guard.score(&c.case.text));
        out.cases.push(c);
    }
    out
}

/// A retrieved-document subject, for callers judging documents.
pub fn retrieved(text: &str) -> GuardSubject {
    GuardSubject::Retrieved {
        document: Document::new("eval", text),
    }
}
