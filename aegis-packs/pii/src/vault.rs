//! Reversible pseudonymization scoped to one run.
//!
//! A [`Vault`] maps `<ENTITY_N>` tokens to the originals they replaced. It is a plain value
//! the caller owns — never process-wide state — so one run can never de-anonymize another
//! run's tokens. [`PiiGuard`](crate::PiiGuard) keeps one vault per `RequestContext::run_id`
//! and hands it out (and removes it) with [`PiiGuard::vault`](crate::PiiGuard::vault) /
//! [`PiiGuard::take_vault`](crate::PiiGuard::take_vault).
//!
//! ```
//! use aegis_pii::Vault;
//! let mut vault = Vault::new();
//! let t = vault.token_for("EMAIL_ADDRESS", "bob@example.com");
//! assert_eq!(t, "<EMAIL_ADDRESS_1>");
//! assert_eq!(vault.token_for("EMAIL_ADDRESS", "bob@example.com"), t); // stable within the run
//! let answer = format!("I wrote to {t}.");
//! assert_eq!(vault.deanonymize(&answer), "I wrote to bob@example.com.");
//!
//! // Streaming: a token may still be arriving at the end of a chunk; it is held back.
//! assert_eq!(vault.token_prefix_at_end("I wrote to <EMAIL_AD"), Some(11));
//! ```

use std::collections::HashMap;

/// Token ↔ original mappings of one run.
#[derive(Debug, Default, Clone)]
pub struct Vault {
    by_token: HashMap<String, String>,
    by_original: HashMap<(String, String), String>,
    counters: HashMap<String, usize>,
    max_token_len: usize,
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
}

impl Vault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token for `original` (an `entity`), minting `<ENTITY_N>` on first sight. The same
    /// original always gets the same token within this vault.
    pub fn token_for(&mut self, entity: &str, original: &str) -> String {
        let key = (entity.to_owned(), original.to_owned());
        if let Some(t) = self.by_original.get(&key) {
            return t.clone();
        }
        let entity_tag: String = entity
            .bytes()
            .map(|b| {
                if is_token_byte(b.to_ascii_uppercase()) {
                    char::from(b.to_ascii_uppercase())
                } else {
                    '_'
                }
            })
            .collect();
        let n = self.counters.entry(entity_tag.clone()).or_insert(0);
        *n += 1;
        let token = format!("<{entity_tag}_{n}>");
        self.max_token_len = self.max_token_len.max(token.len());
        self.by_token.insert(token.clone(), original.to_owned());
        self.by_original.insert(key, token.clone());
        token
    }

    /// The original behind `token`.
    pub fn original(&self, token: &str) -> Option<&str> {
        self.by_token.get(token).map(String::as_str)
    }

    /// How many tokens the vault holds.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether the vault is empty.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The longest token minted, in bytes: the most a streaming de-anonymizer holds back.
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    /// Where this vault's tokens occur in `text`: `(start, end, original)` byte ranges, in
    /// order, for span-precise restoration (a guard returns them as sanitize edits). This
    /// is the one token reader: [`deanonymize`](Self::deanonymize) and the streaming
    /// hold-back ([`token_prefix_at_end`](Self::token_prefix_at_end)) are built on it.
    pub fn token_spans<'a>(&'a self, text: &str) -> Vec<(usize, usize, &'a str)> {
        let mut out = Vec::new();
        self.scan_tokens(text, |start, end, original| {
            out.push((start, end, original))
        });
        out
    }

    /// Where a token of this vault may be starting at the end of `text` (a `<` followed by
    /// token characters, shorter than the longest token): a streamed answer holds it back
    /// until the token is complete.
    pub fn token_prefix_at_end(&self, text: &str) -> Option<usize> {
        self.scan_tokens(text, |_, _, _| {})
    }

    /// Calls `found` for every known token in `text`; returns the start of a possible token
    /// prefix at the end.
    fn scan_tokens<'a>(
        &'a self,
        text: &str,
        mut found: impl FnMut(usize, usize, &'a str),
    ) -> Option<usize> {
        let b = text.as_bytes();
        let mut i = 0;
        while let Some(off) = b[i..].iter().position(|&c| c == b'<') {
            let lt = i + off;
            let mut j = lt + 1;
            while j < b.len() && is_token_byte(b[j]) && j - lt < self.max_token_len {
                j += 1;
            }
            if j == b.len() {
                return (j - lt < self.max_token_len).then_some(lt);
            }
            if b[j] == b'>' {
                if let Some(original) = self.by_token.get(&text[lt..=j]) {
                    found(lt, j + 1, original.as_str());
                    i = j + 1;
                    continue;
                }
            }
            i = lt + 1;
        }
        None
    }

    /// Replaces every known token in `text` by its original. Unknown `<...>` text is kept.
    pub fn deanonymize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut emitted = 0;
        for (start, end, original) in self.token_spans(text) {
            out.push_str(&text[emitted..start]);
            out.push_str(original);
            emitted = end;
        }
        out.push_str(&text[emitted..]);
        out
    }
}
