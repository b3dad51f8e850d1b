//! Several segments of a subject as one text, for a remote service that judges one text per
//! call: a request is one call, however many messages, parts and fields it has.

use aegis_contracts::{Edit, GuardSubject};

/// The `n`th separator candidate: a blank line, then lines of more and more `␞`. The first
/// that no segment contains joins them, so a rewritten text splits back unambiguously.
fn separator(n: usize) -> String {
    if n == 0 {
        "\n\n".to_owned()
    } else {
        format!("\n{}\n", "\u{241E}".repeat(n))
    }
}

/// The non-empty segments of a subject joined by a separator none of them contains.
#[derive(Debug)]
pub(crate) struct Joined {
    /// The joined text.
    pub(crate) text: String,
    separator: String,
    /// Per joined segment: its index in the subject, where it starts in `text`, its text.
    parts: Vec<(usize, usize, String)>,
}

impl Joined {
    /// `None` when every segment is empty (nothing to ask about).
    pub(crate) fn of(subject: &GuardSubject) -> Option<Joined> {
        Self::groups(subject, usize::MAX).pop()
    }

    /// The non-empty segments joined into groups of at most `max` bytes each (a longer
    /// segment is a group of its own), in order: for a service that reads only the start of
    /// a long text, so nothing is joined past what it judges.
    pub(crate) fn groups(subject: &GuardSubject, max: usize) -> Vec<Joined> {
        let segments = subject.segments();
        let texts: Vec<(usize, &str)> = segments
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.text.is_empty())
            .map(|(i, s)| (i, s.text))
            .collect();
        if texts.is_empty() {
            return Vec::new();
        }
        let separator = (0..)
            .map(separator)
            .find(|sep| texts.iter().all(|(_, t)| !t.contains(sep.as_str())))
            .unwrap_or_default();
        let mut out: Vec<Joined> = Vec::new();
        for (i, t) in texts {
            let fits = out
                .last()
                .is_some_and(|j| j.text.len().saturating_add(separator.len() + t.len()) <= max);
            if !fits {
                out.push(Joined {
                    text: String::new(),
                    separator: separator.clone(),
                    parts: Vec::new(),
                });
            }
            let Some(j) = out.last_mut() else { continue };
            if !j.parts.is_empty() {
                j.text.push_str(&separator);
            }
            j.parts.push((i, j.text.len(), t.to_owned()));
            j.text.push_str(t);
        }
        out
    }

    /// The segment holding the joined byte range `start..end`, the range in it (a range
    /// that runs past its segment's end is cut there), and where the cut range ends in the
    /// joined text. `None` for a range inside a separator.
    pub(crate) fn locate(&self, start: usize, end: usize) -> Option<(usize, usize, usize, usize)> {
        let (i, from, t) = self
            .parts
            .iter()
            .rev()
            .find(|(_, from, _)| *from <= start)?;
        let s = start - from;
        if s >= t.len() {
            return None;
        }
        let e = (end - from).min(t.len());
        Some((*i, s, e, from + e))
    }

    /// The edits that turn each segment into its piece of `rewritten` (the joined text as a
    /// service rewrote it): one whole-text edit per segment that changed. `None` when the
    /// rewritten text no longer splits into one piece per segment.
    pub(crate) fn edits_to(&self, rewritten: &str) -> Option<Vec<Edit>> {
        let pieces: Vec<&str> = rewritten.split(self.separator.as_str()).collect();
        if pieces.len() != self.parts.len() {
            return None;
        }
        Some(
            self.parts
                .iter()
                .zip(pieces)
                .filter(|((_, _, old), new)| old != new)
                .map(|((i, _, old), new)| Edit {
                    segment: *i,
                    start: 0,
                    end: old.len(),
                    replacement: new.to_owned(),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use aegis_contracts::Message;

    use super::*;

    fn subject(texts: &[&str]) -> GuardSubject {
        GuardSubject::Input {
            messages: texts.iter().map(|t| Message::user(*t)).collect(),
        }
    }

    #[test]
    fn segments_join_and_split_back_exactly() {
        let s = subject(&["one", "", "two words", "three"]);
        let j = Joined::of(&s).unwrap();
        assert_eq!(j.text, "one\n\ntwo words\n\nthree");
        assert_eq!(j.locate(5, 8), Some((2, 0, 3, 8)));
        assert_eq!(
            j.locate(13, 17),
            Some((2, 8, 9, 14)),
            "cut at the segment's end"
        );
        assert_eq!(j.locate(3, 4), None, "inside a separator");
        let edits = j.edits_to("one\n\ntwo <X>\n\nthree").unwrap();
        assert_eq!(edits.len(), 1);
        assert_eq!(
            (edits[0].segment, edits[0].replacement.as_str()),
            (2, "two <X>")
        );
        assert!(j.edits_to("one two three").is_none());
    }

    #[test]
    fn groups_stay_under_their_size_and_keep_order() {
        let s = subject(&["aaaa", "bbbb", "cccccccccc", "dd"]);
        let groups = Joined::groups(&s, 10);
        let texts: Vec<&str> = groups.iter().map(|g| g.text.as_str()).collect();
        assert_eq!(texts, ["aaaa\n\nbbbb", "cccccccccc", "dd"]);
        assert_eq!(groups[2].edits_to("DD").unwrap()[0].segment, 3);
    }

    #[test]
    fn a_separator_inside_a_segment_picks_another() {
        let s = subject(&["a\n\nb", "c"]);
        let j = Joined::of(&s).unwrap();
        assert_eq!(j.text, "a\n\nb\n\u{241E}\nc");
        assert_eq!(j.edits_to("a\n\nb\n\u{241E}\nC").unwrap()[0].segment, 1);
    }
}
