//! `aegis scan`: run a guard chain over a text and report the verdict as JSON — how users
//! and auditors try rules without writing code.

use std::sync::Arc;

use aegis::{
    Decision, Document, Error, GuardPolicy, GuardSubject, Message, RequestContext, Stage,
    guard::{ChainDecision, GuardChain, GuardEntry},
};
use serde::Serialize;

/// The stage a scanned text is judged as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScanStage {
    /// A prompt from a user.
    Input,
    /// A model's answer.
    Output,
    /// What a tool returned.
    ToolResult,
    /// A retrieved document.
    Retrieved,
}

impl ScanStage {
    fn subject(self, text: String) -> GuardSubject {
        match self {
            Self::Input => GuardSubject::Input {
                messages: vec![Message::user(text)],
            },
            Self::Output => GuardSubject::Output {
                message: Message::assistant(text),
            },
            Self::ToolResult => GuardSubject::ToolResult {
                call_id: "scan".into(),
                name: "scan".into(),
                content: text,
            },
            Self::Retrieved => GuardSubject::Retrieved {
                document: Document::new("scan", text),
            },
        }
    }

    /// The contract stage.
    pub fn stage(self) -> Stage {
        match self {
            Self::Input => Stage::Input,
            Self::Output => Stage::Output,
            Self::ToolResult => Stage::ToolResult,
            Self::Retrieved => Stage::Retrieved,
        }
    }
}

/// One finding in the report. Offsets are bytes in the text as the reporting guard saw it
/// (after the sanitizations of the guards before it).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportedFinding {
    /// What was found.
    pub kind: String,
    /// Start byte.
    pub start: Option<usize>,
    /// End byte.
    pub end: Option<usize>,
    /// Confidence.
    pub score: f32,
    /// `guard-id/detector`.
    pub detector: String,
}

/// What `aegis scan` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScanReport {
    /// `allow`, `sanitize`, `block` or `require_approval`.
    pub verdict: &'static str,
    /// The guard that decided a block or an approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// Why, for a block or an approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every finding of every guard that ran, in order.
    pub findings: Vec<ReportedFinding>,
    /// The sanitized text when a guard changed it, else `null`.
    pub sanitized: Option<String>,
}

impl ScanReport {
    /// The process exit code: 0 allow or sanitize, 2 block, 3 approval required.
    pub fn exit_code(&self) -> i32 {
        match self.verdict {
            "block" => 2,
            "require_approval" => 3,
            _ => 0,
        }
    }
}

/// Runs `chain` over `text` at `stage`.
pub async fn scan(chain: &GuardChain, stage: ScanStage, text: String) -> ScanReport {
    let out = chain
        .check(stage.subject(text), &RequestContext::default(), &[])
        .await;
    let findings = out
        .verdicts
        .iter()
        .flat_map(|(v, _)| {
            v.findings.iter().map(move |f| ReportedFinding {
                kind: f.kind.clone(),
                start: f.span.map(|s| s.start),
                end: f.span.map(|s| s.end),
                score: f.score,
                detector: format!("{}/{}", v.guard, f.detector),
            })
        })
        .collect();
    let sanitized = out.sanitized().then(|| {
        out.subject
            .segments()
            .iter()
            .map(|s| s.text)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let (verdict, guard, reason) = match &out.decision {
        ChainDecision::Allowed if sanitized.is_some() => ("sanitize", None, None),
        ChainDecision::Allowed => ("allow", None, None),
        ChainDecision::Blocked(v) => ("block", Some(v.guard.clone()), reason_of(&v.decision)),
        ChainDecision::NeedsApproval(v) => (
            "require_approval",
            Some(v.guard.clone()),
            reason_of(&v.decision),
        ),
    };
    ScanReport {
        verdict,
        guard,
        reason,
        findings,
        sanitized,
    }
}

fn reason_of(d: &Decision) -> Option<String> {
    match d {
        Decision::Block { reason, .. } | Decision::RequireApproval { reason, .. } => {
            Some(reason.clone())
        }
        _ => None,
    }
}

/// The built-in packs `--pack` accepts, with their default configs.
pub const PACKS: [&str; 5] = ["invisible", "pii", "secrets", "injection", "urls"];

/// A chain of the named built-in packs, in the order given, with default configs. Sanitizing
/// packs redact rather than block, so `scan` shows what they would remove.
pub fn chain_of_packs(names: &[String]) -> Result<GuardChain, Error> {
    use aegis::guards as g;
    let mut entries = Vec::new();
    for name in names {
        let guard: Arc<dyn aegis::Guardrail> = match name.as_str() {
            "pii" => Arc::new(aegis::pii::PiiGuard::new(
                aegis::pii::PiiGuardConfig::default(),
            )?),
            "secrets" => Arc::new(g::Secrets::new(g::SecretsConfig {
                action: g::Action::Redact,
                ..g::SecretsConfig::default()
            })?),
            "injection" => Arc::new(g::PromptInjection::new(g::PromptInjectionConfig::default())?),
            "invisible" => Arc::new(g::InvisibleText::new(g::InvisibleTextConfig {
                action: g::InvisibleAction::Strip,
                ..g::InvisibleTextConfig::default()
            })?),
            "urls" => Arc::new(g::UrlAllowList::new(g::UrlAllowListConfig::new(Vec::<
                String,
            >::new(
            )))?),
            other => {
                return Err(Error::config(format!(
                    "unknown pack `{other}`; available: {}",
                    PACKS.join(", ")
                )));
            }
        };
        entries.push(GuardEntry::new(name.clone(), guard, GuardPolicy::default()));
    }
    Ok(GuardChain::new(entries))
}
