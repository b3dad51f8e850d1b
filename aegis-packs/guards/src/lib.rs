//! Native rule-based guardrails for Aegis: banned substrings, regex, secrets, invisible Unicode, token limits, JSON, URLs, prompt-injection heuristics.
#![forbid(unsafe_code)]
