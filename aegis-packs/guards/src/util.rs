//! Helpers shared by the scanners: config defaults, verdict assembly, edit merging.

use aegis_contracts::{Edit, Error, Finding, Span, Stage, Verdict};
use schemars::JsonSchema;
use serde::Deserialize;

/// What a scanner does with what it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse the subject ([`Decision::Block`](aegis_contracts::Decision::Block)).
    #[default]
    Block,
    /// Replace each finding with a mask ([`Decision::Sanitize`](aegis_contracts::Decision::Sanitize)).
    Redact,
    /// Pause the run until a human approves
    /// ([`Decision::RequireApproval`](aegis_contracts::Decision::RequireApproval)); the
    /// approver sees the finding kinds and the reason, not the matched text.
    RequireApproval,
}

pub(crate) fn all_stages() -> Vec<Stage> {
    Stage::ALL.to_vec()
}

pub(crate) fn check_stages(guard: &str, stages: &[Stage]) -> Result<(), Error> {
    if stages.is_empty() {
        return Err(Error::config(format!(
            "{guard}: `stages` must name at least one stage"
        )));
    }
    Ok(())
}

pub(crate) fn default_redaction() -> String {
    "[REDACTED]".to_owned()
}

pub(crate) fn span(segment: usize, start: usize, end: usize) -> Option<Span> {
    Some(Span {
        segment,
        start,
        end,
    })
}

/// Whether `c` is a word character for whole-word matching: alphanumeric or `_`.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Turns redaction findings into non-overlapping edits: overlapping (or touching-inside)
/// spans of one segment merge, taking the replacement of the first span of the group.
pub(crate) fn merge_edits(mut raw: Vec<Edit>) -> Vec<Edit> {
    raw.sort_by(|a, b| {
        (a.segment, a.start, std::cmp::Reverse(a.end)).cmp(&(
            b.segment,
            b.start,
            std::cmp::Reverse(b.end),
        ))
    });
    let mut out: Vec<Edit> = Vec::with_capacity(raw.len());
    for e in raw {
        if let Some(last) = out.last_mut() {
            if last.segment == e.segment && e.start < last.end {
                last.end = last.end.max(e.end);
                continue;
            }
        }
        out.push(e);
    }
    out
}

/// Builds the verdict for `findings`: allow when empty, else block or sanitize.
/// `replacement` gives each finding's mask when redacting.
pub(crate) fn decide(
    findings: Vec<Finding>,
    action: Action,
    code: &str,
    reason: impl FnOnce(&[Finding]) -> String,
    replacement: impl Fn(&Finding) -> String,
) -> Verdict {
    decide_with(findings, &[], action, code, reason, replacement)
}

/// [`decide`], where a redaction of `findings[i]` replaces `redact[i]` when that is given
/// (a part of the finding's span) instead of the whole span.
pub(crate) fn decide_with(
    findings: Vec<Finding>,
    redact: &[Option<Span>],
    action: Action,
    code: &str,
    reason: impl FnOnce(&[Finding]) -> String,
    replacement: impl Fn(&Finding) -> String,
) -> Verdict {
    if findings.is_empty() {
        return Verdict::allow();
    }
    match action {
        Action::Block => Verdict::block(reason(&findings), code).with_findings(findings),
        Action::RequireApproval => {
            let kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
            let payload = serde_json::json!({ "code": code, "kinds": kinds });
            Verdict::require_approval(reason(&findings), payload).with_findings(findings)
        }
        Action::Redact => {
            let edits = merge_edits(
                findings
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| {
                        redact.get(i).copied().flatten().or(f.span).map(|s| Edit {
                            segment: s.segment,
                            start: s.start,
                            end: s.end,
                            replacement: replacement(f),
                        })
                    })
                    .collect(),
            );
            Verdict::sanitize(edits).with_findings(findings)
        }
    }
}

/// The distinct finding kinds, in first-seen order, joined for a human reason.
pub(crate) fn kinds_list(findings: &[Finding]) -> String {
    let mut kinds: Vec<&str> = Vec::new();
    for f in findings {
        if !kinds.contains(&f.kind.as_str()) {
            kinds.push(&f.kind);
        }
    }
    kinds.join(", ")
}

/// Rounds `i` down to a char boundary of `s`.
pub(crate) fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(segment: usize, start: usize, end: usize, r: &str) -> Edit {
        Edit {
            segment,
            start,
            end,
            replacement: r.into(),
        }
    }

    #[test]
    fn merge_edits_joins_overlaps_per_segment() {
        let merged = merge_edits(vec![
            e(0, 5, 9, "b"),
            e(0, 0, 6, "a"),
            e(1, 0, 2, "c"),
            e(0, 9, 10, "d"),
        ]);
        assert_eq!(
            merged,
            vec![e(0, 0, 9, "a"), e(0, 9, 10, "d"), e(1, 0, 2, "c")]
        );
    }
}
