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
//! // Streaming: a token split across chunks is restored.
//! let mut stream = vault.streaming();
//! let mut out = stream.push("I wrote to <EMAIL_AD");
//! out += &stream.push("DRESS_1>.");
//! out += &stream.finish();
//! assert_eq!(out, "I wrote to bob@example.com.");
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
    /// order, for span-precise restoration (a guard returns them as sanitize edits).
    pub fn token_spans<'a>(&'a self, text: &str) -> Vec<(usize, usize, &'a str)> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'<' {
                let mut j = i + 1;
                while j < b.len() && is_token_byte(b[j]) && j - i < self.max_token_len {
                    j += 1;
                }
                if j < b.len() && b[j] == b'>' {
                    if let Some(original) = self.by_token.get(&text[i..=j]) {
                        out.push((i, j + 1, original.as_str()));
                        i = j + 1;
                        continue;
                    }
                }
            }
            i += 1;
        }
        out
    }

    /// Replaces every known token in `text` by its original. Unknown `<...>` text is kept.
    pub fn deanonymize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let consumed = self.deanonymize_into(text, &mut out, true);
        debug_assert_eq!(consumed, text.len());
        out
    }

    /// Processes `text` into `out`; unless `last`, stops before a `<` that may begin a token
    /// still arriving. Returns how many bytes were consumed.
    fn deanonymize_into(&self, text: &str, out: &mut String, last: bool) -> usize {
        let b = text.as_bytes();
        let mut emitted = 0;
        let mut i = 0;
        while let Some(off) = memchr_lt(&b[i..]) {
            let lt = i + off;
            // Read the token body after '<'.
            let mut j = lt + 1;
            while j < b.len() && is_token_byte(b[j]) && j - lt < self.max_token_len {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' {
                if let Some(orig) = self.by_token.get(&text[lt..=j]) {
                    out.push_str(&text[emitted..lt]);
                    out.push_str(orig);
                    emitted = j + 1;
                    i = j + 1;
                    continue;
                }
            } else if j == b.len() && !last && j - lt < self.max_token_len {
                // Could be the prefix of a token: hold it back.
                out.push_str(&text[emitted..lt]);
                return lt;
            }
            i = lt + 1;
        }
        out.push_str(&text[emitted..]);
        text.len()
    }

    /// A streaming de-anonymizer over this vault.
    pub fn streaming(&self) -> StreamingDeanonymizer<'_> {
        StreamingDeanonymizer {
            vault: self,
            pending: String::new(),
        }
    }
}

fn memchr_lt(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'<')
}

/// Restores tokens in a streamed answer chunk by chunk. It holds back only a possible token
/// prefix — at most [`Vault::max_token_len`] bytes — and emits everything else at once.
#[derive(Debug)]
pub struct StreamingDeanonymizer<'v> {
    vault: &'v Vault,
    pending: String,
}

impl StreamingDeanonymizer<'_> {
    /// Feeds a chunk; returns the text that can be emitted now.
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let mut out = String::with_capacity(self.pending.len());
        let consumed = self.vault.deanonymize_into(&self.pending, &mut out, false);
        self.pending.drain(..consumed);
        out
    }

    /// Bytes currently held back.
    pub fn held_back(&self) -> usize {
        self.pending.len()
    }

    /// Ends the stream, emitting whatever was held back.
    pub fn finish(self) -> String {
        self.vault.deanonymize(&self.pending)
    }
}
