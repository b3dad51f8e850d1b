//! Which of many patterns match a text: one forward-only lazy DFA.
//!
//! A `regex::RegexSet` (or a `meta::Regex` over many patterns) answers the same question,
//! but also compiles a reverse automaton (to report where a match starts) and looks for
//! literal prefilters. Over a hundred detector patterns those two were more than half of a
//! guard's start-up; a set needs neither, so [`Which`] builds only the forward automaton.

use std::panic::{RefUnwindSafe, UnwindSafe};

use regex_automata::{
    Input, MatchKind, PatternSet,
    hybrid::dfa::{Cache, DFA},
    nfa::thompson::{self, NFA, pikevm::PikeVM},
    util::{pool::Pool, syntax},
};
use regex_syntax::hir::Hir;

use crate::{BuildError, SyntaxConfig};

type CacheFn = Box<dyn Fn() -> Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// Patterns compiled into one automaton that says which of them match, in one pass.
///
/// ```
/// use aegis_settle::{SyntaxConfig, Which};
/// use regex_automata::{Anchored, Input, PatternSet};
/// let which = Which::new(&["cat", r"\bdog\b", "c[a-z]t"], SyntaxConfig::new(), 1 << 20).unwrap();
/// let mut set = PatternSet::new(which.pattern_len());
/// which.which(&Input::new("hotdog, cut"), &mut set);
/// assert_eq!(set.iter().map(|p| p.as_usize()).collect::<Vec<_>>(), [2]);
/// // Anchored: only what matches starting exactly there.
/// let mut set = PatternSet::new(which.pattern_len());
/// which.which(&Input::new("a cat").range(2..).anchored(Anchored::Yes), &mut set);
/// assert_eq!(set.len(), 2);
/// assert!(which.is_match(&Input::new("a cut")) && !which.is_match(&Input::new("a dogma")));
/// ```
pub struct Which {
    dfa: DFA,
    caches: Pool<Cache, CacheFn>,
    nfa: NFA,
}

impl std::fmt::Debug for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Which")
            .field("patterns", &self.pattern_len())
            .finish_non_exhaustive()
    }
}

impl Which {
    /// Compiles `patterns` parsed with `syntax`; `limit` bounds the automaton's size and its
    /// lazy DFA's cache, in bytes.
    pub fn new<P: AsRef<str>>(
        patterns: &[P],
        syntax: SyntaxConfig,
        limit: usize,
    ) -> Result<Self, BuildError> {
        let hirs = patterns
            .iter()
            .map(|p| syntax::parse_with(p.as_ref(), &syntax).map_err(|e| BuildError(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&Hir> = hirs.iter().collect();
        Self::from_hirs(&refs, limit, syntax.get_utf8())
    }

    /// Compiles patterns already parsed; `utf8` as the syntax they were parsed with.
    pub fn from_hirs(hirs: &[&Hir], limit: usize, utf8: bool) -> Result<Self, BuildError> {
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(utf8)
                    .which_captures(thompson::WhichCaptures::None)
                    .nfa_size_limit(Some(limit)),
            )
            .build_many_from_hir(hirs)
            .map_err(|e| BuildError(e.to_string()))?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true)
                    .cache_capacity(limit),
            )
            .build_from_nfa(nfa.clone())
            .map_err(|e| BuildError(e.to_string()))?;
        let for_cache = dfa.clone();
        let caches: CacheFn = Box::new(move || for_cache.create_cache());
        Ok(Self {
            dfa,
            caches: Pool::new(caches),
            nfa,
        })
    }

    /// How many patterns there are.
    pub fn pattern_len(&self) -> usize {
        self.nfa.pattern_len()
    }

    /// Whether any pattern matches in `input`; stops at the first match.
    pub fn is_match(&self, input: &Input<'_>) -> bool {
        let mut matched = PatternSet::new(self.pattern_len());
        self.which(&input.clone().earliest(true), &mut matched);
        !matched.is_empty()
    }

    /// Adds to `matched` every pattern that matches in `input` (anchored at its start when
    /// the input is anchored).
    pub fn which(&self, input: &Input<'_>, matched: &mut PatternSet) {
        let mut cache = self.caches.get();
        if self
            .dfa
            .try_which_overlapping_matches(&mut cache, input, matched)
            .is_err()
        {
            // The lazy DFA gives up only on a Unicode word boundary next to non-ASCII text
            // (its cache is cleared as often as needed, never abandoned); the PikeVM gives
            // the same answer, more slowly.
            if let Ok(vm) = PikeVM::new_from_nfa(self.nfa.clone()) {
                vm.which_overlapping_matches(&mut vm.create_cache(), input, matched);
            }
        }
    }
}
