//! Guard chains, streamed-output guarding and [`GuardLayer`].
//!
//! The semantics (DESIGN.md §4): chain order is config order; `Block` short-circuits;
//! `Sanitize` feeds the sanitized subject to the next guard; `RequireApproval` pauses the run
//! (in a graph) or fails with [`ApprovalRequired`](aegis_contracts::ErrorKind::ApprovalRequired)
//! (in a plain layer stack); a guard that errors or times out blocks unless its policy says
//! `fail_open`; shadow guards record but never change traffic.

mod chain;
mod judge;
mod layer;
mod normalize;
mod report;
mod stream;
mod waiver;

pub use chain::{
    ChainDecision, ChainOutcome, GuardChain, GuardEntry, approval_error, blocked_error,
};
pub use judge::{Judgement, completion_digest, request_digest};
pub use layer::{Guard, GuardLayer, future};
pub use report::{ReportedFinding, ScanReport, scan, text_subject};
pub use stream::{ApprovalSlot, Holdback, PendingApproval};
pub use waiver::{Grant, Waiver, digest};
