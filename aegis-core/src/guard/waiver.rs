//! [`Waiver`]: what a human approved, bound to guards and to the content they judged.
//!
//! A run paused by guard A's `RequireApproval` and then approved waives A's verdict on the
//! content A judged — nothing else. Another guard that also asks for approval asks again
//! (the run pauses once more, carrying A's grant forward), and so does A if the content
//! changed (the digest differs).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One granted request for approval: a guard, on content of one digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The guard whose `RequireApproval` was granted.
    pub guard: String,
    /// The [`digest`] of the content it judged.
    pub digest: String,
}

/// The grants a resumed step may rely on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waiver {
    grants: Vec<Grant>,
}

impl Waiver {
    /// A waiver of guard `guard`'s request for approval on content of digest `digest`.
    pub fn new(guard: impl Into<String>, digest: impl Into<String>) -> Self {
        Self::default().and(guard, digest)
    }

    /// This waiver and one more grant.
    pub fn and(mut self, guard: impl Into<String>, digest: impl Into<String>) -> Self {
        self.grants.push(Grant {
            guard: guard.into(),
            digest: digest.into(),
        });
        self
    }

    /// The grants, in the order they were given.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The guards waived on content of `digest` (grants on other content do not count).
    pub fn waived_guards(&self, digest: &str) -> Vec<&str> {
        self.grants
            .iter()
            .filter(|g| g.digest == digest)
            .map(|g| g.guard.as_str())
            .collect()
    }
}

/// The digest of judged content: SHA-256 of its JSON form, in hex.
pub fn digest<T: Serialize + ?Sized>(content: &T) -> String {
    let bytes = serde_json::to_vec(content).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
