//! # aegis-mcp
//!
//! MCP, both directions, governed: the tool traffic most gateways let through unjudged.
//!
//! - [`McpHub`] merges the tools of every `[[mcp_servers]]` entry (stdio child processes
//!   and streamable-HTTP endpoints) under prefixes (`files__read_file`). Every call is
//!   routed by one rule, checked against the server's pinned catalog and the caller's
//!   [`Access`] rule (on `tools/call`, not only when filtering `tools/list`), judged by the
//!   guard chain as `GuardSubject::ToolCall` carrying the server's id, executed once within
//!   a timeout, bounded in size, checked against the tool's output schema, and its result
//!   judged as `GuardSubject::ToolResult` (origin `tool`, untrusted) before anyone reads it.
//! - [`Catalog`]: a server's tools hashed whole. The first catalog is pinned on sight once
//!   its descriptions pass the guard chain ([`Pinning::TrustFirst`], or only by an admin
//!   with [`Pinning::ApproveFirst`]); any change — a tool added, renamed, removed, a
//!   description or schema drifting — quarantines the server until an admin approves the
//!   new catalog, shown as a [`CatalogDiff`]. Pins live in a [`PinStore`].
//! - [`ToolLoop`]: a governed chat whose model calls the caller's MCP tools: offered,
//!   executed through the hub, results back to the model, until it answers or a step limit.
//! - [`AegisMcpServer`]: Aegis as an MCP server (an rmcp `ServerHandler`): the governed
//!   chat as the `chat` tool, plus the hub's tools.
//! - Robustness: an expired streamable-HTTP session (404) is re-initialized by the
//!   transport and the request retried once; a connection that died is reopened; a server
//!   that is down leaves only its own tools out of the merged list; servers are listed
//!   concurrently, so one that hangs costs one timeout.
//! - What a caller reads of a failure is judged or generic: an upstream JSON-RPC error's
//!   message passes the guard chain like a result; a command line, an internal URL or a
//!   transport's own words go to the operator's log and `aegis mcp pins list`, not to the
//!   caller.
//!
//! ```no_run
//! # async fn demo() -> Result<(), aegis_contracts::Error> {
//! use std::sync::Arc;
//! use aegis_mcp::{McpHub, MemoryPins, ResolvedServer, parse_servers};
//!
//! let servers = parse_servers(&[serde_json::json!({
//!     "id": "everything",
//!     "stdio": {"command": "mcp-server-everything", "args": ["stdio"]},
//! })])?;
//! let hub = McpHub::new(
//!     servers.into_iter().map(ResolvedServer::plain).collect(),
//!     aegis_core::guard::GuardChain::default(),
//!     Arc::new(MemoryPins::new()),
//! );
//! // Who is asking decides what is listed (a caller nobody authenticated gets no tool
//! // unless a server's `access.anonymous` allows it).
//! let listing = hub.list_tools(Some(&aegis_contracts::Principal::new("ada"))).await;
//! println!("{} tools, problems: {:?}", listing.tools.len(), listing.problems);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod approvals;
mod catalog;
mod config;
mod hub;
mod pins;
mod schema;
mod server;
mod tool_loop;
mod upstream;

pub use approvals::{
    APPROVAL_META, ApprovalState, ApprovalStore, MemoryApprovals, ToolApproval, arguments_hash,
    decide, expired as approval_expired, held_already, unknown as approvals_unknown,
};
pub use catalog::{Catalog, CatalogDiff, ToolChange};
pub use config::{
    Access, AccessDefault, DEFAULT_APPROVAL_TTL, DEFAULT_MAX_RESULT_BYTES, DEFAULT_TIMEOUT_MS,
    HttpConfig, McpServerConfig, PREFIX_SEPARATOR, Pinning, ResolvedServer, StdioConfig,
    parse_servers,
};
pub use hub::{
    CATALOG_TTL, Listing, MAX_PENDING_PER_CALLER, McpHub, ServerStatus, ToolCallRecord,
    ToolObserver,
};
pub use pins::{MemoryPins, PinRecord, PinStore, TRUST_FIRST, changed, not_seen, now_ms};
pub use server::{AegisMcpServer, CHAT_TOOL, Caller};
pub use tool_loop::{DEFAULT_MAX_STEPS, ToolLoop};
pub use upstream::Upstream;

/// rmcp, re-exported so hosts serve [`AegisMcpServer`] with the same version.
pub use rmcp;
