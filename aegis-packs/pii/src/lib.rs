//! A Presidio-grade PII engine for Aegis: pattern recognizers with validation, context scoring, anonymizers and reversible pseudonymization.
#![forbid(unsafe_code)]
