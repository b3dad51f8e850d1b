//! A Presidio-grade PII engine for Aegis: pattern recognizers with validation, context
//! scoring, anonymizers and reversible pseudonymization.
//!
//! ```
//! use aegis_pii::{Analyzer, AnalyzerConfig};
//!
//! let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
//! let text = "Reach me at jane.doe@example.com or on 4111-1111-1111-1111.";
//! let found = analyzer.analyze_resolved(text);
//! assert_eq!(found[0].entity, "EMAIL_ADDRESS");
//! assert_eq!(&text[found[1].start..found[1].end], "4111-1111-1111-1111");
//! assert_eq!(found[1].score, 1.0); // Luhn-validated
//! ```
#![forbid(unsafe_code)]

pub mod anonymize;
mod engine;
mod guard;
pub mod phone;
pub mod recognizers;
pub mod validators;
pub mod vault;

pub use anonymize::{Operator, anonymize, decrypt, encrypt, hash};
pub use engine::{
    Analyzer, AnalyzerConfig, BuildError, CONTEXT_BOOST, CONTEXT_BYTES, CONTEXT_MIN_SCORE,
    CONTEXT_WORDS, RecognizerResult, resolve_overlaps,
};
pub use guard::{PiiAction, PiiGuard, PiiGuardConfig};
pub use recognizers::{LOOKAHEAD, Pattern, Recognizer};
pub use validators::Check;
pub use vault::Vault;
