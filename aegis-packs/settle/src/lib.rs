//! Where a streamed text stops being final for a set of patterns.
//!
//! A streaming guard must hold back text that a finding could still be growing over, and
//! nothing else. Holding its whole declared window (the longest match it can produce) makes
//! a chat UI show nothing for the first kilobytes of every answer. The automata know
//! better: a match that could still be in progress starts at a position from which the
//! pattern's DFA, run to the end of the text so far, has not died.
//!
//! [`Probes`] runs an anchored lazy DFA over every pattern from each start position and
//! reports, for the text so far:
//!
//! * the earliest start whose DFA is still alive at the end (a candidate in progress), or
//!   whose match ends so close to the end that its look-ahead is not complete, and
//! * the spans of every match that is complete.
//!
//! [`settled`] turns that into the guard's answer: the offset before which nothing can
//! change any more — before the earliest live candidate, and before any complete match
//! that overlaps it (a guard that resolves overlaps might still prefer the live one).
//!
//! ```
//! use aegis_settle::{Probes, SyntaxConfig};
//! let probes = Probes::new(&[r"\b\d{4}-\d{4}\b"], SyntaxConfig::new(), 9, 1).unwrap();
//! // "1234-56" may still become a match: hold from its start.
//! assert_eq!(probes.settled("call 1234-56", 0), 5);
//! // A complete match followed by a space is settled; so is plain text.
//! assert_eq!(probes.settled("call 1234-5678 now", 0), 18);
//! ```

use std::sync::Mutex;

mod which;
pub use which::Which;

use regex_automata::{
    Anchored, Input, MatchKind,
    hybrid::dfa::{Cache, DFA},
    nfa::thompson,
};

pub use regex_automata::util::syntax::Config as SyntaxConfig;

/// Errors building [`Probes`].
#[derive(Debug)]
pub struct BuildError(pub(crate) String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot build the pattern automaton: {}", self.0)
    }
}

impl std::error::Error for BuildError {}

/// What probing a text found: the earliest live start and the complete matches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The earliest start of a candidate still in progress (or whose look-ahead is not
    /// complete), if any.
    pub live: Option<usize>,
    /// `(start, end)` of the longest complete match from each start that has one.
    pub complete: Vec<(usize, usize)>,
}

impl Scan {
    /// Records a candidate in progress at `start`.
    pub fn live_at(&mut self, start: usize) {
        self.live = Some(self.live.map_or(start, |l| l.min(start)));
    }

    /// The offset before which nothing can change: see [`settled`].
    pub fn settled(&self, len: usize) -> usize {
        settled(len, self.live, &self.complete)
    }
}

/// The offset before which a text of `len` bytes is final, given the earliest live
/// candidate start and the complete matches: the live start, moved back over every
/// complete match that overlaps what is held (repeatedly, so a chain of overlaps is held
/// whole). `len` when nothing is live.
pub fn settled(len: usize, live: Option<usize>, complete: &[(usize, usize)]) -> usize {
    let Some(mut at) = live else { return len };
    loop {
        let back = complete
            .iter()
            .filter(|&&(s, e)| s < at && e > at)
            .map(|&(s, _)| s)
            .min();
        match back {
            Some(s) => at = s,
            None => return at.min(len),
        }
    }
}

/// Anchored lazy-DFA probes over a set of patterns.
///
/// Built once (the DFA states are computed lazily, per cache); thread-safe, with a small
/// pool of caches.
pub struct Probes {
    dfa: DFA,
    caches: Mutex<Vec<Cache>>,
    max_len: usize,
    lookahead: usize,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("patterns", &self.dfa.pattern_len())
            .field("max_len", &self.max_len)
            .field("lookahead", &self.lookahead)
            .finish_non_exhaustive()
    }
}

impl Probes {
    /// Probes for `patterns` parsed with `syntax`. No match is longer than `max_len` bytes
    /// (a probe that runs longer is dead); a match's verdict may depend on the `lookahead`
    /// bytes after it.
    pub fn new(
        patterns: &[&str],
        syntax: SyntaxConfig,
        max_len: usize,
        lookahead: usize,
    ) -> Result<Self, BuildError> {
        let dfa = DFA::builder()
            .syntax(syntax)
            .thompson(thompson::Config::new().nfa_size_limit(Some(256 << 20)))
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true)
                    .cache_capacity(4 << 20),
            )
            .build_many(patterns)
            .map_err(|e| BuildError(e.to_string()))?;
        Ok(Self {
            dfa,
            caches: Mutex::new(Vec::new()),
            max_len,
            lookahead,
        })
    }

    /// Probes every start in `from..text.len()` into `scan`.
    pub fn scan_into(&self, text: &str, from: usize, scan: &mut Scan) {
        let mut cache = self
            .caches
            .lock()
            .ok()
            .and_then(|mut c| c.pop())
            .unwrap_or_else(|| self.dfa.create_cache());
        let hay = text.as_bytes();
        for start in from.min(hay.len())..hay.len() {
            match self.probe(&mut cache, hay, start) {
                Probe::Live => {
                    scan.live_at(start);
                    // Every later start is held anyway; only overlaps before it matter,
                    // and those were recorded already.
                    break;
                }
                Probe::Complete(end) => scan.complete.push((start, end)),
                Probe::Dead => {}
            }
        }
        if let Ok(mut c) = self.caches.lock() {
            c.push(cache);
        }
    }

    /// [`scan_into`](Self::scan_into) and [`settled`] in one call.
    pub fn settled(&self, text: &str, from: usize) -> usize {
        let mut scan = Scan::default();
        self.scan_into(text, from, &mut scan);
        scan.settled(text.len())
    }

    fn probe(&self, cache: &mut Cache, hay: &[u8], start: usize) -> Probe {
        let input = Input::new(hay)
            .span(start..hay.len())
            .anchored(Anchored::Yes);
        let Ok(mut sid) = self.dfa.start_state_forward(cache, &input) else {
            // The DFA cannot decide here (a quit byte): hold, to be safe.
            return Probe::Live;
        };
        let mut last_end = None;
        let limit = hay
            .len()
            .min(start.saturating_add(self.max_len).saturating_add(1));
        let mut at = start;
        while at < limit {
            sid = match self.dfa.next_state(cache, sid, hay[at]) {
                Ok(s) => s,
                Err(_) => return Probe::Live,
            };
            if sid.is_tagged() {
                if sid.is_dead() {
                    break;
                }
                if sid.is_quit() {
                    return Probe::Live;
                }
                if sid.is_match() {
                    // Matches are reported one byte late: this one ended before `at`.
                    last_end = Some(at);
                }
            }
            at += 1;
        }
        // A state that has not died may still grow a match — unless it is a match state
        // with nowhere to go (the DFA learns it is dead only one byte later).
        let alive =
            at == hay.len() && !sid.is_dead() && (!sid.is_match() || self.can_continue(cache, sid));
        if alive && at - start <= self.max_len {
            return Probe::Live;
        }
        if at == hay.len()
            && !sid.is_dead()
            && self
                .dfa
                .next_eoi_state(cache, sid)
                .is_ok_and(|s| s.is_match())
        {
            last_end = Some(at);
        }
        match last_end {
            Some(end) if end + self.lookahead > hay.len() => Probe::Live,
            Some(end) => Probe::Complete(end),
            None => Probe::Dead,
        }
    }
}

impl Probes {
    /// Whether some byte leads `sid` somewhere other than the dead state (a quit byte —
    /// one the DFA cannot judge — is not a way on).
    fn can_continue(&self, cache: &mut Cache, sid: regex_automata::hybrid::LazyStateID) -> bool {
        (0..=255u8).any(|b| {
            self.dfa
                .next_state(cache, sid, b)
                .map_or(true, |s| !s.is_dead() && !s.is_quit())
        })
    }
}

enum Probe {
    Live,
    Complete(usize),
    Dead,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(pats: &[&str]) -> Probes {
        Probes::new(pats, SyntaxConfig::new(), 64, 1).unwrap()
    }

    #[test]
    fn text_no_pattern_can_match_is_settled_whole() {
        let p = probes(&[r"ghp_[a-z0-9]{8}"]);
        assert_eq!(p.settled("hello there, nothing here", 0), 25);
    }

    #[test]
    fn a_prefix_of_a_match_is_held_from_its_start() {
        let p = probes(&[r"ghp_[a-z0-9]{8}"]);
        assert_eq!(p.settled("token: gh", 0), 7);
        assert_eq!(p.settled("token: ghp_abc", 0), 7);
    }

    #[test]
    fn a_match_at_the_very_end_waits_for_its_look_ahead() {
        let p = probes(&[r"\b\d{3}\b"]);
        assert_eq!(p.settled("call 123", 0), 5);
        assert_eq!(p.settled("call 123 ", 0), 9);
    }

    #[test]
    fn a_complete_match_overlapping_a_live_one_is_held_too() {
        // "ab12" is complete; "12cd..." may still grow over it.
        let p = probes(&[r"ab\d\d", r"\d\dcd\d{5}"]);
        assert_eq!(p.settled("x ab12cd1", 0), 2);
    }

    #[test]
    fn probes_never_start_before_from() {
        let p = probes(&[r"ghp_[a-z0-9]{8}"]);
        assert_eq!(p.settled("ghp_abc and more", 4), 16);
    }

    #[test]
    fn a_probe_longer_than_any_match_is_dead() {
        let p = Probes::new(&[r"a[a-y]*z"], SyntaxConfig::new(), 4, 0).unwrap();
        assert_eq!(p.settled("xabbbbbbbbb", 0), 11);
        assert_eq!(p.settled("xabb", 0), 1);
    }

    #[test]
    fn the_closure_follows_chains_of_overlaps() {
        assert_eq!(settled(20, Some(15), &[(10, 16), (5, 11), (0, 3)]), 5);
        assert_eq!(settled(20, None, &[(10, 16)]), 20);
    }
}
