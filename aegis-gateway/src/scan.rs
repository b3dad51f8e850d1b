//! `aegis scan`: run a guard chain over a text and report the verdict as JSON — how users
//! and auditors try rules without writing code.

use std::sync::Arc;

use aegis::{
    Decision, Document, Edit, Error, GuardPolicy, GuardSubject, Message, RequestContext, Stage,
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

/// One finding in the report. Offsets are bytes in the scanned text as given, even when a
/// guard before the reporting one changed it (a stripped invisible character, a redacted
/// secret); a finding inside text an earlier guard inserted covers what that text replaced.
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
    let mut findings = Vec::new();
    // The edits of the enforced sanitizations so far, in order: a later guard's offsets are
    // in the text after them and are mapped back through them, newest first.
    let mut applied: Vec<&[Edit]> = Vec::new();
    for (v, enforced) in &out.verdicts {
        for f in &v.findings {
            let back = |pos: usize, end: bool| {
                applied
                    .iter()
                    .rev()
                    .fold(pos, |p, edits| before_edits(p, end, edits))
            };
            findings.push(ReportedFinding {
                kind: f.kind.clone(),
                start: f.span.map(|s| back(s.start, false)),
                end: f.span.map(|s| back(s.end, true)),
                score: f.score,
                detector: format!("{}/{}", v.guard, f.detector),
            });
        }
        if let (true, Decision::Sanitize { edits }) = (*enforced, &v.decision) {
            applied.push(edits);
        }
    }
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

/// Where `pos`, an offset in the text after `edits` (disjoint), was before them. An offset
/// inside a replacement maps to the start of what it replaced, or to its end for the end of
/// a span; at a deletion, a span's start maps after the deleted text and its end before it.
fn before_edits(pos: usize, end: bool, edits: &[Edit]) -> usize {
    let mut delta: isize = 0;
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.start);
    for e in sorted {
        let start_after = (e.start as isize + delta) as usize;
        let end_after = start_after + e.replacement.len();
        if e.replacement.is_empty() && pos == start_after {
            return if end { e.start } else { e.end };
        }
        if pos <= start_after {
            break;
        }
        if pos < end_after {
            return if end { e.end } else { e.start };
        }
        delta += e.replacement.len() as isize - (e.end - e.start) as isize;
    }
    (pos as isize - delta) as usize
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
/// packs redact rather than block, so `scan` shows what they would remove. The packs are
/// built on parallel threads: their automata dominate a scan's start-up.
pub fn chain_of_packs(names: &[String]) -> Result<GuardChain, Error> {
    let guards: Vec<Result<Arc<dyn aegis::Guardrail>, Error>> = std::thread::scope(|scope| {
        let builds: Vec<_> = names
            .iter()
            .map(|name| scope.spawn(move || build_pack(name)))
            .collect();
        builds
            .into_iter()
            .map(|b| {
                b.join()
                    .unwrap_or_else(|_| Err(Error::internal("a pack's build panicked")))
            })
            .collect()
    });
    let mut entries = Vec::new();
    for (name, guard) in names.iter().zip(guards) {
        entries.push(GuardEntry::new(
            name.clone(),
            guard?,
            GuardPolicy::default(),
        ));
    }
    Ok(GuardChain::new(entries))
}

fn build_pack(name: &str) -> Result<Arc<dyn aegis::Guardrail>, Error> {
    use aegis::guards as g;
    Ok(match name {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(start: usize, end: usize, replacement: &str) -> Edit {
        Edit {
            segment: 0,
            start,
            end,
            replacement: replacement.into(),
        }
    }

    #[test]
    fn offsets_map_back_through_replacements_and_deletions() {
        // "ab<X>cd" came from "abSECRETcd" (2..8 → "<X>").
        let edits = [edit(2, 8, "<X>")];
        assert_eq!(before_edits(1, false, &edits), 1);
        assert_eq!(before_edits(2, false, &edits), 2);
        assert_eq!(before_edits(5, true, &edits), 8);
        assert_eq!(before_edits(6, false, &edits), 9);
        // A deletion of 3 bytes at 2: text after it shifts back.
        let edits = [edit(2, 5, "")];
        assert_eq!(before_edits(2, false, &edits), 5);
        assert_eq!(before_edits(4, true, &edits), 7);
    }
}
