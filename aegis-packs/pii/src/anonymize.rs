//! Anonymizer operators: what replaces a detected entity.
//!
//! ```
//! use aegis_pii::{Operator, Analyzer, AnalyzerConfig, anonymize};
//! let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
//! let text = "card 4111-1111-1111-1111";
//! let found = analyzer.analyze_resolved(text);
//! let mask = Operator::Mask { masking_char: '*', chars_to_mask: 12, from_end: false };
//! let out = anonymize(text, &found, |_| Some(&mask), None).unwrap();
//! assert_eq!(out, "card ************11-1111");
//! ```

use aegis_contracts::{Error, Secret};
use aes_gcm::{
    Aes128Gcm, Aes256Gcm, Nonce,
    aead::{Aead, KeyInit},
};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{RecognizerResult, vault::Vault};

/// How one entity is anonymized. Config form: `{ "type": "mask", "chars_to_mask": 4 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operator {
    /// Replace with `new_value`, or `<ENTITY_TYPE>` when absent (Presidio's default).
    Replace {
        /// The replacement text.
        #[serde(default)]
        new_value: Option<String>,
    },
    /// Remove the entity.
    Redact,
    /// Overwrite `chars_to_mask` characters with `masking_char`, from the start or the end.
    Mask {
        /// The mask character.
        #[serde(default = "default_mask_char")]
        masking_char: char,
        /// How many characters to mask (capped at the entity's length).
        chars_to_mask: usize,
        /// Mask from the end instead of the start.
        #[serde(default)]
        from_end: bool,
    },
    /// Hex SHA-256 of the entity followed by the salt. The salt comes from config
    /// (`secret://...`); hashes are linkable exactly within one salt.
    Hash {
        /// The salt (at least 16 bytes recommended).
        salt: Secret,
    },
    /// AES-GCM encryption, reversible with [`decrypt`]. Output is base64(nonce ‖ ciphertext).
    Encrypt {
        /// 16- or 32-byte key, given as raw text or as `base64:<...>`.
        key: Secret,
    },
    /// A reversible `<ENTITY_N>` token from the run's [`Vault`].
    Pseudonymize,
}

impl Default for Operator {
    fn default() -> Self {
        Operator::Replace { new_value: None }
    }
}

fn default_mask_char() -> char {
    '*'
}

fn key_bytes(key: &Secret) -> Result<Vec<u8>, Error> {
    let raw = key.expose();
    let bytes = match raw.strip_prefix("base64:") {
        Some(b) => B64
            .decode(b)
            .map_err(|_| Error::config("encryption key: invalid base64"))?,
        None => raw.as_bytes().to_vec(),
    };
    match bytes.len() {
        16 | 32 => Ok(bytes),
        n => Err(Error::config(format!(
            "encryption key must be 16 or 32 bytes, got {n}"
        ))),
    }
}

/// Encrypts `plaintext` with AES-GCM under `key` (128 or 256 bit) and a random nonce.
pub fn encrypt(key: &Secret, plaintext: &str) -> Result<String, Error> {
    let k = key_bytes(key)?;
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let n = Nonce::from_slice(&nonce);
    let ct = if k.len() == 16 {
        Aes128Gcm::new_from_slice(&k)
            .map_err(|_| Error::config("bad key"))?
            .encrypt(n, plaintext.as_bytes())
    } else {
        Aes256Gcm::new_from_slice(&k)
            .map_err(|_| Error::config("bad key"))?
            .encrypt(n, plaintext.as_bytes())
    }
    .map_err(|_| Error::internal("encryption failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(B64.encode(out))
}

/// Reverses [`encrypt`]; fails on a wrong key or tampered text.
pub fn decrypt(key: &Secret, token: &str) -> Result<String, Error> {
    let k = key_bytes(key)?;
    let raw = B64
        .decode(token)
        .map_err(|_| Error::invalid_request("not an encrypted token"))?;
    if raw.len() < 12 + 16 {
        return Err(Error::invalid_request("encrypted token too short"));
    }
    let (nonce, ct) = raw.split_at(12);
    let n = Nonce::from_slice(nonce);
    let pt = if k.len() == 16 {
        Aes128Gcm::new_from_slice(&k)
            .map_err(|_| Error::config("bad key"))?
            .decrypt(n, ct)
    } else {
        Aes256Gcm::new_from_slice(&k)
            .map_err(|_| Error::config("bad key"))?
            .decrypt(n, ct)
    }
    .map_err(|_| Error::invalid_request("decryption failed: wrong key or tampered token"))?;
    String::from_utf8(pt).map_err(|_| Error::invalid_request("decrypted text is not UTF-8"))
}

/// Hex SHA-256 of `text` followed by `salt`.
pub fn hash(text: &str, salt: &Secret) -> String {
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update(salt.expose().as_bytes());
    let d = h.finalize();
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

impl Operator {
    /// The replacement for `original`, an entity of type `entity`. `vault` is required by
    /// [`Operator::Pseudonymize`].
    pub fn apply(
        &self,
        entity: &str,
        original: &str,
        vault: Option<&mut Vault>,
    ) -> Result<String, Error> {
        Ok(match self {
            Operator::Replace { new_value } => {
                new_value.clone().unwrap_or_else(|| format!("<{entity}>"))
            }
            Operator::Redact => String::new(),
            Operator::Mask {
                masking_char,
                chars_to_mask,
                from_end,
            } => {
                let n = original.chars().count();
                let k = (*chars_to_mask).min(n);
                original
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        let masked = if *from_end { i >= n - k } else { i < k };
                        if masked { *masking_char } else { c }
                    })
                    .collect()
            }
            Operator::Hash { salt } => hash(original, salt),
            Operator::Encrypt { key } => encrypt(key, original)?,
            Operator::Pseudonymize => match vault {
                Some(v) => v.token_for(entity, original),
                None => return Err(Error::config("pseudonymize needs a vault (a run id)")),
            },
        })
    }
}

/// Applies operators to non-overlapping `results` of `text` (as from
/// [`Analyzer::analyze_resolved`](crate::Analyzer::analyze_resolved)). `operator_for` picks
/// the operator per entity type; `None` leaves the entity as it is.
pub fn anonymize<'a>(
    text: &str,
    results: &[RecognizerResult],
    operator_for: impl Fn(&str) -> Option<&'a Operator>,
    mut vault: Option<&mut Vault>,
) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in results {
        if r.start < last {
            return Err(Error::internal("anonymize needs non-overlapping results"));
        }
        let Some(op) = operator_for(r.entity) else {
            continue;
        };
        out.push_str(&text[last..r.start]);
        out.push_str(&op.apply(r.entity, &text[r.start..r.end], vault.as_deref_mut())?);
        last = r.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}
