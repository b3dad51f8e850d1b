//! The normalized view of text that guards judge: NFKC, with invisible and format
//! characters removed, and a map back to the original so spans and sanitize edits land
//! exactly on the characters they were found in.
//!
//! Without it, `g\u{200B}hp_…` or a full-width `ｇｈｐ_…` walks past every pattern a
//! detector knows. The view is built per unit — a starter character and the combining
//! marks after it — and a unit maps as a whole: an edit that starts or ends inside a
//! unit's normalized text widens to the whole unit, so an edit never splits a character
//! and never leaves part of a finding behind. Text that normalization leaves unchanged
//! (the usual case: plain ASCII) costs one scan and no allocation.

use aegis_contracts::{Decision, Edit, GuardSubject, Span, Verdict, text::invisible_kind};
use unicode_normalization::{UnicodeNormalization, char::canonical_combining_class};

/// One unit: its bytes in the normalized text and in the original.
#[derive(Debug, Clone, Copy)]
struct Unit {
    norm: (usize, usize),
    orig: (usize, usize),
}

/// A normalized text and its map back.
#[derive(Debug, Clone)]
pub(crate) struct Normalized {
    pub(crate) text: String,
    units: Vec<Unit>,
    orig_len: usize,
}

/// Whether `text` may change under normalization: anything outside printable ASCII (tab,
/// newline and carriage return included). Eight bytes at a time: this runs for every
/// subject every guard chain judges, and almost always answers no.
fn may_change(text: &str) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let outside = |b: u8| !((0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'));
    let bytes = text.as_bytes();
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte >= 0x80, a byte < 0x20, or a byte == 0x7f (DEL) sets its high bit here.
        let suspicious =
            (x | x.wrapping_sub(LOW * 0x20) | (x ^ (LOW * 0x7f)).wrapping_sub(LOW)) & HIGH;
        if suspicious != 0 && chunk.iter().any(|&b| outside(b)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| outside(b))
}

/// The normalized view of `text`, or `None` when it is its own view.
pub(crate) fn normalize(text: &str) -> Option<Normalized> {
    if !may_change(text) {
        return None;
    }
    let mut out = Normalized {
        text: String::with_capacity(text.len()),
        units: Vec::new(),
        orig_len: text.len(),
    };
    // A text with combining marks needs its units even when it normalizes to itself: an
    // edit ending before a mark widens over it, as in any other text.
    let mut marks = false;
    let mut chars = text.char_indices().peekable();
    while let Some((start, first)) = chars.next() {
        let mut end = start + first.len_utf8();
        while let Some(&(i, c)) = chars.peek() {
            if canonical_combining_class(c) == 0 {
                break;
            }
            end = i + c.len_utf8();
            marks = true;
            chars.next();
        }
        let unit = &text[start..end];
        let visible = unit.chars().filter(|c| invisible_kind(*c).is_none());
        let from = out.text.len();
        out.text
            .extend(visible.nfkc().filter(|c| invisible_kind(*c).is_none()));
        if out.text.len() > from {
            out.units.push(Unit {
                norm: (from, out.text.len()),
                orig: (start, end),
            });
        }
    }
    (marks || out.text != text).then_some(out)
}

impl Normalized {
    /// The normalized offset of the unit holding original offset `o` (the view's end when
    /// `o` is past every unit).
    pub(crate) fn norm_offset(&self, o: usize) -> usize {
        self.units
            .iter()
            .find(|u| u.orig.1 > o)
            .map_or(self.text.len(), |u| u.norm.0)
    }

    /// The original offset where an edit starting at normalized offset `n` starts.
    pub(crate) fn start(&self, n: usize) -> usize {
        match self.units.iter().find(|u| n < u.norm.1) {
            Some(u) => u.orig.0,
            None => self.orig_len,
        }
    }

    /// The original offset where an edit ending at normalized offset `n` ends.
    fn end(&self, n: usize) -> usize {
        if n == 0 {
            return self.units.first().map_or(0, |u| u.orig.0);
        }
        match self.units.iter().find(|u| n <= u.norm.1) {
            Some(u) => u.orig.1,
            None => self.orig_len,
        }
    }

    fn span(&self, start: usize, end: usize) -> (usize, usize) {
        let s = self.start(start);
        (s, self.end(end).max(s))
    }
}

/// A subject's normalized view: the subject guards judge and the map back. Adjacent text
/// parts of one message are joined into the first part's segment (the others are empty in
/// the view), then every segment is normalized (`None` for one that is its own view).
pub(crate) struct View {
    pub(crate) subject: GuardSubject,
    maps: Vec<Option<Normalized>>,
    joins: Vec<Join>,
}

/// Adjacent text parts joined into segment `head`: the byte length of each part.
struct Join {
    head: usize,
    lens: Vec<usize>,
}

impl Join {
    /// The part holding joined offset `at` (the part it starts, for a boundary) and the
    /// offset in it. Empty parts hold nothing.
    fn locate(&self, at: usize) -> (usize, usize) {
        let mut from = 0;
        for (j, &len) in self.lens.iter().enumerate() {
            if at < from + len {
                return (self.head + j, at - from);
            }
            from += len;
        }
        let last = self.lens.len().saturating_sub(1);
        (self.head + last, self.lens.last().copied().unwrap_or(0))
    }

    /// Each part's share of the joined range `start..end`: `(segment, start, end)`.
    fn pieces(&self, start: usize, end: usize) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let mut from = 0;
        for (j, &len) in self.lens.iter().enumerate() {
            let (lo, hi) = (start.max(from), end.min(from + len));
            if lo < hi {
                out.push((self.head + j, lo - from, hi - from));
            }
            from += len;
        }
        out
    }
}

impl View {
    pub(crate) fn of(subject: &GuardSubject) -> Option<View> {
        let segments = subject.segments();
        let mut texts: Vec<std::borrow::Cow<'_, str>> =
            segments.iter().map(|s| s.text.into()).collect();
        let mut joins = Vec::new();
        for run in subject.text_runs() {
            let lens = run.clone().map(|i| segments[i].text.len()).collect();
            texts[run.start] = run
                .clone()
                .map(|i| segments[i].text)
                .collect::<String>()
                .into();
            for text in &mut texts[run.start + 1..run.end] {
                *text = "".into();
            }
            joins.push(Join {
                head: run.start,
                lens,
            });
        }
        let maps: Vec<Option<Normalized>> = texts.iter().map(|t| normalize(t)).collect();
        if joins.is_empty() && maps.iter().all(Option::is_none) {
            return None;
        }
        let subject = subject.map_segments(|i, _| match &maps[i] {
            Some(n) => n.text.clone(),
            None => texts[i].to_string(),
        });
        Some(View {
            subject,
            maps,
            joins,
        })
    }

    /// Maps a verdict on the view back to the original subject: finding spans and sanitize
    /// edits move to original offsets (and from a joined text to its parts: an edit across
    /// parts is split, its replacement going to the first); edits that now touch are merged.
    pub(crate) fn map_back(&self, verdict: &mut Verdict) {
        let map = |span: &mut Span| {
            if let Some(Some(n)) = self.maps.get(span.segment) {
                (span.start, span.end) = n.span(span.start, span.end);
            }
        };
        let join = |segment: usize| self.joins.iter().find(|j| j.head == segment);
        for f in &mut verdict.findings {
            if let Some(span) = &mut f.span {
                map(span);
                if let Some(j) = join(span.segment) {
                    let (segment, start) = j.locate(span.start);
                    let (end_segment, end) = j.locate(span.end.max(1) - 1);
                    let end = if end_segment == segment && span.end > span.start {
                        end + 1
                    } else {
                        j.lens[segment - j.head].max(start)
                    };
                    *span = Span {
                        segment,
                        start,
                        end,
                    };
                }
            }
        }
        if let Decision::Sanitize { edits } = &mut verdict.decision {
            for e in edits.iter_mut() {
                if let Some(Some(n)) = self.maps.get(e.segment) {
                    (e.start, e.end) = if e.start == e.end {
                        // An insertion stays one: at the start of the unit it falls in, so
                        // it never replaces a character.
                        let at = n.start(e.start);
                        (at, at)
                    } else {
                        n.span(e.start, e.end)
                    };
                }
            }
            if !self.joins.is_empty() {
                *edits = std::mem::take(edits)
                    .into_iter()
                    .flat_map(|e| self.split(e))
                    .collect();
            }
            *edits = merge(std::mem::take(edits));
        }
    }

    /// An edit on a joined text as edits on its parts.
    fn split(&self, e: Edit) -> Vec<Edit> {
        let Some(j) = self.joins.iter().find(|j| j.head == e.segment) else {
            return vec![e];
        };
        if e.start == e.end {
            let (segment, at) = j.locate(e.start);
            return vec![Edit {
                segment,
                start: at,
                end: at,
                replacement: e.replacement,
            }];
        }
        let mut replacement = Some(e.replacement);
        j.pieces(e.start, e.end)
            .into_iter()
            .map(|(segment, start, end)| Edit {
                segment,
                start,
                end,
                replacement: replacement.take().unwrap_or_default(),
            })
            .collect()
    }
}

/// Edits sorted and with overlaps joined (two edits widened into one unit become one).
fn merge(mut edits: Vec<Edit>) -> Vec<Edit> {
    edits.sort_by_key(|e| (e.segment, e.start, e.end));
    let mut out: Vec<Edit> = Vec::with_capacity(edits.len());
    for e in edits {
        match out.last_mut() {
            Some(last) if last.segment == e.segment && e.start < last.end => {
                last.end = last.end.max(e.end);
                last.replacement.push_str(&e.replacement);
            }
            _ => out.push(e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ascii_is_its_own_view() {
        assert!(normalize("ghp_0123456789 and text\n").is_none());
    }

    #[test]
    fn a_combining_mark_gets_units_even_when_nothing_changes() {
        // NFKC leaves "-\u{301}" as it is; an edit up to the '-' still widens over the mark,
        // whether or not something else in the text changes.
        let n = normalize("key-\u{301} x").unwrap();
        assert_eq!(n.text, "key-\u{301} x");
        assert_eq!(n.span(0, 4), (0, 6));
    }

    #[test]
    fn the_fast_scan_agrees_with_a_byte_by_byte_one() {
        let slow = |t: &str| {
            !t.bytes()
                .all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'))
        };
        let mut cases = vec![String::new(), "plain text, twenty-four!".into()];
        for b in [0u8, 0x08, 0x1f, 0x7f, b'\t', b'\n', b'\r', b' ', b'~'] {
            for at in 0..20 {
                let mut v = vec![b'a'; 20];
                v[at] = b;
                cases.push(String::from_utf8(v).unwrap());
            }
        }
        cases.push("caf\u{e9} au lait".into());
        for c in &cases {
            assert_eq!(may_change(c), slow(c), "{c:?}");
        }
    }

    #[test]
    fn invisible_characters_go_and_full_width_folds_with_exact_offsets() {
        let text = "key g\u{200B}hp_ab\u{FEFF}c end";
        let n = normalize(text).unwrap();
        assert_eq!(n.text, "key ghp_abc end");
        // "ghp_abc" in the view maps to the original bytes from 'g' to 'c'.
        let (s, e) = n.span(4, 11);
        assert_eq!(&text[s..e], "g\u{200B}hp_ab\u{FEFF}c");
        let wide = "ｇｈｐ_x";
        let n = normalize(wide).unwrap();
        assert_eq!(n.text, "ghp_x");
        let (s, e) = n.span(0, 3);
        assert_eq!(&wide[s..e], "ｇｈｐ");
    }

    #[test]
    fn an_insertion_inside_an_expanded_character_stays_an_insertion() {
        let text = "a\u{FB01}b";
        let view = View::of(&GuardSubject::OutputChunk {
            text: text.into(),
            offset: 0,
        })
        .unwrap();
        let mut v = Verdict::sanitize(vec![Edit {
            segment: 0,
            start: 2,
            end: 2,
            replacement: "^".into(),
        }]);
        view.map_back(&mut v);
        let Decision::Sanitize { edits } = &v.decision else {
            panic!()
        };
        assert_eq!((edits[0].start, edits[0].end), (1, 1));
    }

    #[test]
    fn an_edit_inside_an_expanded_character_widens_to_the_character() {
        // U+FB01 (ﬁ) becomes "fi": an edit of just the "i" covers the whole ligature.
        let text = "a\u{FB01}b";
        let n = normalize(text).unwrap();
        assert_eq!(n.text, "afib");
        let (s, e) = n.span(2, 3);
        assert_eq!(&text[s..e], "\u{FB01}");
    }
}
