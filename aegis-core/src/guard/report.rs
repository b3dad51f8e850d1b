//! A guard chain's judgement of one text as a report: the verdict, every finding with its
//! offsets in the text as given, and the sanitized text — what `aegis scan` prints and what
//! the language bindings' `scan` returns.

use aegis_contracts::{
    Decision, Document, Edit, Error, GuardSubject, Message, RequestContext, Stage,
};
use serde::Serialize;

use super::{ChainDecision, GuardChain};

/// The subject a plain `text` is judged as at `stage`: a user prompt, a model answer, a
/// tool's result or a retrieved document. Other stages take structured subjects.
pub fn text_subject(stage: Stage, text: String) -> Result<GuardSubject, Error> {
    Ok(match stage {
        Stage::Input => GuardSubject::Input {
            messages: vec![Message::user(text)],
        },
        Stage::Output => GuardSubject::Output {
            message: Message::assistant(text),
        },
        Stage::ToolResult => GuardSubject::ToolResult {
            call_id: "scan".into(),
            name: "scan".into(),
            content: text,
            server: None,
        },
        Stage::Retrieved => GuardSubject::Retrieved {
            document: Document::new("scan", text),
        },
        other => {
            return Err(Error::invalid_request(format!(
                "stage `{}` judges a structured subject, not a text; scan a text as input, output, tool_result or retrieved",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )));
        }
    })
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

/// Runs `chain` over `text` judged at `stage` (see [`text_subject`]).
pub async fn scan(chain: &GuardChain, stage: Stage, text: String) -> Result<ScanReport, Error> {
    let out = chain
        .check(text_subject(stage, text)?, &RequestContext::default(), &[])
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
    Ok(ScanReport {
        verdict,
        guard,
        reason,
        findings,
        sanitized,
    })
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
