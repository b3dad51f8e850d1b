//! Span-level scoring: per-kind precision, recall and F1, micro and macro averages, and how
//! many look-alikes and entity-free texts were flagged.

use std::collections::BTreeMap;

use crate::{Case, Label};

/// A detector's finding, as scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicted {
    /// The kind it reported.
    pub kind: String,
    /// Start byte.
    pub start: usize,
    /// End byte.
    pub end: usize,
}

/// Counts for one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Findings matching an expected entity.
    pub tp: usize,
    /// Findings matching nothing.
    pub fp: usize,
    /// Expected entities nothing matched.
    pub fn_: usize,
}

impl Counts {
    /// Precision (1.0 when nothing was predicted).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// Recall (1.0 when nothing was expected).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// The result of scoring a corpus.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Counts per kind (kinds the corpus does not hold appear with only false positives).
    pub per_kind: BTreeMap<String, Counts>,
    /// Look-alike texts with at least one finding, by the kind they imitate.
    pub lookalikes_flagged: BTreeMap<&'static str, usize>,
    /// Look-alike texts in all.
    pub lookalikes: usize,
    /// Entity-free texts with at least one finding.
    pub clean_flagged: usize,
    /// Entity-free texts in all.
    pub clean: usize,
    /// A sample of mistakes, for whoever tunes: `(text, what went wrong)`.
    pub mistakes: Vec<(String, String)>,
}

impl Report {
    /// Counts summed over every kind.
    pub fn micro(&self) -> Counts {
        self.per_kind
            .values()
            .fold(Counts::default(), |a, c| Counts {
                tp: a.tp + c.tp,
                fp: a.fp + c.fp,
                fn_: a.fn_ + c.fn_,
            })
    }

    /// The mean F1 over the kinds in `kinds`.
    pub fn macro_f1(&self, kinds: &[&str]) -> f64 {
        let sum: f64 = kinds
            .iter()
            .map(|k| self.per_kind.get(*k).copied().unwrap_or_default().f1())
            .sum();
        sum / kinds.len() as f64
    }

    /// Look-alike texts flagged, all kinds together.
    pub fn lookalikes_hit(&self) -> usize {
        self.lookalikes_flagged.values().sum()
    }

    /// A table of the numbers, one row per kind, for READMEs and logs.
    pub fn table(&self, kinds: &[&str]) -> String {
        let mut out =
            String::from("| kind | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
        let mut row = |name: &str, c: Counts| {
            out.push_str(&format!(
                "| {name} | {:.2} | {:.2} | {:.2} | {} |\n",
                c.precision(),
                c.recall(),
                c.f1(),
                c.tp + c.fn_
            ));
        };
        for k in kinds {
            row(k, self.per_kind.get(*k).copied().unwrap_or_default());
        }
        for (k, c) in &self.per_kind {
            if !kinds.contains(&k.as_str()) {
                row(&format!("{k} (not in the corpus)"), *c);
            }
        }
        row("**micro**", self.micro());
        out.push_str(&format!(
            "\nmacro-F1 {:.3}; look-alikes flagged {} of {}; entity-free texts flagged {} of {}\n",
            self.macro_f1(kinds),
            self.lookalikes_hit(),
            self.lookalikes,
            self.clean_flagged,
            self.clean
        ));
        out
    }
}

/// Whether `p` and an expected span of the same kind overlap by at least half their union.
fn matches(p: &Predicted, start: usize, end: usize) -> bool {
    let inter = p.end.min(end).saturating_sub(p.start.max(start));
    let union = p.end.max(end) - p.start.min(start);
    union > 0 && inter * 2 >= union
}

/// Scores `predicted[i]` against `cases[i]`. `same_kind` says whether a reported kind names
/// an expected one (the secrets corpus accepts any of the pack's kinds as `SECRET`).
pub fn score(
    cases: &[Case],
    predicted: &[Vec<Predicted>],
    same_kind: impl Fn(&str, &str) -> bool,
) -> Report {
    let mut report = Report::default();
    for (case, found) in cases.iter().zip(predicted) {
        match case.label {
            Label::LookAlike(kind) => {
                report.lookalikes += 1;
                if !found.is_empty() {
                    *report.lookalikes_flagged.entry(kind).or_default() += 1;
                    report.mistakes.push((
                        case.text.clone(),
                        format!("look-alike of {kind} flagged as {}", found[0].kind),
                    ));
                }
                continue;
            }
            Label::Entities if case.expected.is_empty() => {
                report.clean += 1;
                if !found.is_empty() {
                    report.clean_flagged += 1;
                }
            }
            Label::Entities => {}
        }
        let mut used = vec![false; found.len()];
        for e in &case.expected {
            let hit = found.iter().enumerate().find(|(i, p)| {
                !used[*i] && same_kind(&p.kind, e.kind) && matches(p, e.start, e.end)
            });
            let counts = report.per_kind.entry(e.kind.to_string()).or_default();
            match hit {
                Some((i, _)) => {
                    used[i] = true;
                    counts.tp += 1;
                }
                None => {
                    counts.fn_ += 1;
                    let near = found
                        .iter()
                        .map(|p| format!("{} {:?}", p.kind, case.text.get(p.start..p.end)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    report.mistakes.push((
                        case.text.clone(),
                        format!(
                            "missed {} {:?}; found [{near}]",
                            e.kind,
                            &case.text[e.start..e.end]
                        ),
                    ));
                }
            }
        }
        for (p, used) in found.iter().zip(used) {
            if !used {
                let kind = case
                    .expected
                    .iter()
                    .find(|e| same_kind(&p.kind, e.kind))
                    .map_or(p.kind.clone(), |e| e.kind.to_string());
                report.per_kind.entry(kind).or_default().fp += 1;
                report.mistakes.push((
                    case.text.clone(),
                    format!("false {} {:?}", p.kind, case.text.get(p.start..p.end)),
                ));
            }
        }
    }
    report
}

/// Binary classification counts at a score threshold: `(tp, fp, fn)` over texts.
pub fn classify(labels: &[bool], scores: &[f32], threshold: f32) -> Counts {
    let mut c = Counts::default();
    for (&y, &s) in labels.iter().zip(scores) {
        match (y, s >= threshold) {
            (true, true) => c.tp += 1,
            (false, true) => c.fp += 1,
            (true, false) => c.fn_ += 1,
            (false, false) => {}
        }
    }
    c
}

/// The best precision reachable at recall ≥ `recall`, and the threshold giving it.
pub fn precision_at_recall(labels: &[bool], scores: &[f32], recall: f64) -> (f64, f32) {
    let mut thresholds: Vec<f32> = scores.to_vec();
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    let mut best = (0.0, 1.0);
    for t in thresholds {
        let c = classify(labels, scores, t);
        if c.recall() >= recall && c.precision() > best.0 {
            best = (c.precision(), t);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Expected;

    fn case(text: &str, expected: Vec<Expected>) -> Case {
        Case {
            text: text.into(),
            expected,
            label: Label::Entities,
        }
    }

    #[test]
    fn a_finding_counts_only_with_the_right_kind_and_enough_overlap() {
        let cases = [case(
            "card 4111111111111111 ok",
            vec![Expected {
                kind: "CREDIT_CARD",
                start: 5,
                end: 21,
            }],
        )];
        let p = |kind: &str, start, end| Predicted {
            kind: kind.into(),
            start,
            end,
        };
        let eq = |a: &str, b: &str| a == b;
        let r = score(&cases, &[vec![p("CREDIT_CARD", 5, 21)]], eq);
        assert_eq!(
            r.micro(),
            Counts {
                tp: 1,
                fp: 0,
                fn_: 0
            }
        );
        let r = score(&cases, &[vec![p("CREDIT_CARD", 5, 9)]], eq);
        assert_eq!(
            r.micro(),
            Counts {
                tp: 0,
                fp: 1,
                fn_: 1
            }
        );
        let r = score(&cases, &[vec![p("US_BANK_NUMBER", 5, 21)]], eq);
        assert_eq!(r.per_kind["US_BANK_NUMBER"].fp, 1);
        assert_eq!(r.per_kind["CREDIT_CARD"].fn_, 1);
    }

    #[test]
    fn precision_at_recall_picks_the_best_threshold() {
        let labels = [true, true, false, true, false];
        let scores = [0.9, 0.8, 0.7, 0.6, 0.1];
        let (p, t) = precision_at_recall(&labels, &scores, 0.6);
        assert_eq!((p, t), (1.0, 0.8));
    }
}
