//! Detection quality, measured on text nobody tuned for.
//!
//! Three generated corpora — PII, secrets and prompt injection — each in two splits:
//!
//! - [`Split::Tune`] is what detector work may look at;
//! - [`Split::Test`] is held out: it is built from *other* surrounding-prose templates and
//!   other random seeds, and only the CI floors (`tests/detection_floors.rs`) and the
//!   published numbers read it.
//!
//! Every value is generated from format rules and check digits ([`values`]); the prose
//! around it comes in several registers (chat, email, forms, logs, JSON, code) and languages.
//! Each kind also has hard look-alikes: strings of the same shape that are *not* the entity
//! (a card number failing Luhn, an IBAN with bad check digits, a version string shaped like
//! an IP address). Nothing is copied from another project's test suite.
//!
//! Scoring ([`score`]) is span-level: a finding counts when its kind is right and its span
//! overlaps the expected one by at least half of their union.

#![forbid(unsafe_code)]

pub mod injection;
pub mod pii;
mod rng;
pub mod run;
pub mod score;
pub mod secrets;
pub mod values;

pub use rng::Rng;

/// Which half of a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// What detectors may be tuned on.
    Tune,
    /// Held out: never read while tuning.
    Test,
}

impl Split {
    /// The seed the split's values are drawn with.
    pub(crate) fn seed(self) -> u64 {
        match self {
            Self::Tune => 0x7475_6e65,
            Self::Test => 0x7465_7374_0001,
        }
    }

    /// Whether template number `i` of a list belongs to this split: even ones tune, odd ones
    /// test, so the held-out text never shares its prose with what was tuned on.
    pub(crate) fn owns(self, i: usize) -> bool {
        (i % 2 == 0) == (self == Self::Tune)
    }

    /// The templates of `all` that belong to this split.
    pub(crate) fn pick<'a>(self, all: &[&'a str]) -> Vec<&'a str> {
        all.iter()
            .enumerate()
            .filter(|(i, _)| self.owns(*i))
            .map(|(_, t)| *t)
            .collect()
    }
}

/// An expected entity in a case: its kind and byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The kind (`CREDIT_CARD`, `SECRET`).
    pub kind: &'static str,
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
}

/// What a case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Holds the [`Case::expected`] entities (possibly none: entity-free prose).
    Entities,
    /// A hard look-alike of this kind: nothing in it may be flagged.
    LookAlike(&'static str),
}

/// One text of a corpus.
#[derive(Debug, Clone)]
pub struct Case {
    /// The text.
    pub text: String,
    /// The entities it holds.
    pub expected: Vec<Expected>,
    /// What it is.
    pub label: Label,
}

/// Fills a template's `{}` placeholders in order, recording where each value lands.
pub(crate) fn fill(template: &str, values: &[(&'static str, String)], label: Label) -> Case {
    let mut text = String::with_capacity(template.len() + 32);
    let mut expected = Vec::new();
    let mut parts = template.split("{}");
    text.push_str(parts.next().unwrap_or_default());
    for (part, (kind, value)) in parts.zip(values) {
        let start = text.len();
        text.push_str(value);
        if !kind.is_empty() {
            expected.push(Expected {
                kind,
                start,
                end: text.len(),
            });
        }
        text.push_str(part);
    }
    Case {
        text,
        expected,
        label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_records_the_span_of_each_value() {
        let case = fill(
            "mail {} or call {}.",
            &[
                ("EMAIL_ADDRESS", "a@b.io".into()),
                ("PHONE_NUMBER", "+1 415 555 0100".into()),
            ],
            Label::Entities,
        );
        assert_eq!(case.text, "mail a@b.io or call +1 415 555 0100.");
        assert_eq!(
            &case.text[case.expected[0].start..case.expected[0].end],
            "a@b.io"
        );
        assert_eq!(
            &case.text[case.expected[1].start..case.expected[1].end],
            "+1 415 555 0100"
        );
    }

    #[test]
    fn the_splits_share_no_template() {
        let all = ["a", "b", "c", "d", "e"];
        let tune = Split::Tune.pick(&all);
        let test = Split::Test.pick(&all);
        assert!(tune.iter().all(|t| !test.contains(t)));
        assert_eq!(tune.len() + test.len(), all.len());
    }
}
