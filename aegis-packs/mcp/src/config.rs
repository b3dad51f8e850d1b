//! `[[mcp_servers]]`: the upstream MCP servers whose tools Aegis governs.
//!
//! ```toml
//! [[mcp_servers]]
//! id = "files"
//! http = { url = "https://files.internal/mcp", headers = { authorization = "secret://env/FILES_TOKEN" } }
//! access = { default = "deny", teams = { research = ["read_file", "search"] } }
//!
//! [[mcp_servers]]
//! id = "everything"
//! stdio = { command = "mcp-server-everything", args = ["stdio"] }
//! pinning = "approve_first"
//! ```

use std::collections::BTreeMap;

use aegis_contracts::{Error, Principal, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Between a prefix and an upstream tool's name in the merged catalog (`files__read_file`):
/// `__` is valid in MCP tool names and in every model provider's function names.
pub const PREFIX_SEPARATOR: &str = "__";

/// The longest wait for one upstream request, unless configured.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The largest tool result passed on, unless configured (serialized JSON bytes).
pub const DEFAULT_MAX_RESULT_BYTES: usize = 1 << 20;
/// How long a tool call waits for a reviewer (and an approved one for its caller), unless
/// configured.
pub const DEFAULT_APPROVAL_TTL: std::time::Duration = std::time::Duration::from_secs(86_400);
const MAX_APPROVAL_TTL_SECS: u64 = 30 * 86_400;
const MAX_TIMEOUT_MS: u64 = 600_000;
const MAX_RESULT_BYTES: usize = 64 << 20;

/// One upstream MCP server: how to reach it, what its tools are called in the merged
/// catalog, who may call them and how its catalog is pinned.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The server's id: in pins, audit records, errors and (by default) tool prefixes.
    pub id: String,
    /// What its tools are prefixed with in the merged catalog (`{prefix}__{tool}`); default
    /// the id. `""` re-exports them unprefixed — a name another server already exports is
    /// then skipped (and reported), never allowed to shadow it.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A child process speaking MCP over stdin/stdout. Exactly one of `stdio` and `http`.
    #[serde(default)]
    pub stdio: Option<StdioConfig>,
    /// A streamable-HTTP MCP endpoint. Exactly one of `stdio` and `http`.
    #[serde(default)]
    pub http: Option<HttpConfig>,
    /// The longest wait for one request to the server, in ms (default 30000). A call that
    /// times out fails; it is not retried.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The largest tool result passed on, in bytes of JSON (default 1 MiB); a larger one is
    /// refused, never truncated silently.
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: usize,
    /// How the server's catalog is pinned.
    #[serde(default)]
    pub pinning: Pinning,
    /// How long a call a guard holds for a human waits for a decision, and an approved
    /// one for its caller to send it again, in seconds (default 86400: a day); after that
    /// it lapses and must be asked for again.
    #[serde(default = "default_approval_ttl_secs")]
    pub approval_ttl_secs: u64,
    /// Who may see and call which of its tools.
    #[serde(default)]
    pub access: Access,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_max_result_bytes() -> usize {
    DEFAULT_MAX_RESULT_BYTES
}

fn default_approval_ttl_secs() -> u64 {
    DEFAULT_APPROVAL_TTL.as_secs()
}

/// A child process speaking MCP over stdio.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdioConfig {
    /// The program.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its whole environment, besides `PATH` and `HOME`: the gateway's own variables are
    /// never passed on. Values may be `secret://` references; a variable whose name looks
    /// like a credential must be one.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A streamable-HTTP MCP endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The endpoint (`http://127.0.0.1:3001/mcp`).
    pub url: String,
    /// Headers sent with every request (values may be `secret://` references; a header
    /// whose name looks like a credential must be one).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// How a server's catalog — every tool's name, description and schemas, hashed whole — is
/// pinned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pinning {
    /// The first catalog seen is pinned once its descriptions pass the guard chain; any
    /// later change quarantines the server until an admin approves it.
    #[default]
    TrustFirst,
    /// No catalog is served until an admin approves it, the first one included.
    ApproveFirst,
}

/// Who may see and call a server's tools. The most specific rule wins: the principal's,
/// then its team's, then `default`. Tool names are the server's own (unprefixed); `"*"` is
/// every tool. A caller nobody authenticated (a gateway without authenticators, `aegis mcp
/// serve` without `--key`) gets no tool unless `anonymous = "allow"` says so.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// For an authenticated caller no rule names: every tool (`allow`, the default) or
    /// none (`deny`).
    #[serde(default)]
    pub default: AccessDefault,
    /// For a caller nobody authenticated: no tool (`deny`, the default) or every tool
    /// (`allow`) — tools act on the world, so an open gateway does not open them too.
    #[serde(default = "AccessDefault::deny")]
    pub anonymous: AccessDefault,
    /// Tools by principal id.
    #[serde(default)]
    pub principals: BTreeMap<String, Vec<String>>,
    /// Tools by team.
    #[serde(default)]
    pub teams: BTreeMap<String, Vec<String>>,
}

/// What [`Access`] grants a caller no rule names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessDefault {
    /// Every tool.
    #[default]
    Allow,
    /// No tool.
    Deny,
}

impl AccessDefault {
    fn deny() -> Self {
        Self::Deny
    }
}

impl Default for Access {
    /// Every tool for every authenticated caller; none for anonymous ones.
    fn default() -> Self {
        Self {
            default: AccessDefault::Allow,
            anonymous: AccessDefault::Deny,
            principals: BTreeMap::new(),
            teams: BTreeMap::new(),
        }
    }
}

impl Access {
    /// Whether `principal` may see and call the server's tool `tool`.
    pub fn allows(&self, principal: Option<&Principal>, tool: &str) -> bool {
        let listed = |tools: &Vec<String>| tools.iter().any(|t| t == "*" || t == tool);
        let Some(p) = principal else {
            return self.anonymous == AccessDefault::Allow;
        };
        if let Some(tools) = self.principals.get(&p.id) {
            return listed(tools);
        }
        if let Some(tools) = p.team.as_ref().and_then(|t| self.teams.get(t)) {
            return listed(tools);
        }
        self.default == AccessDefault::Allow
    }
}

impl McpServerConfig {
    /// The prefix of its tools in the merged catalog (`""` for none).
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(&self.id)
    }

    /// The name of its tool `tool` in the merged catalog.
    pub fn exported_name(&self, tool: &str) -> String {
        match self.prefix() {
            "" => tool.to_owned(),
            p => format!("{p}{PREFIX_SEPARATOR}{tool}"),
        }
    }

    /// Problems with this entry, each naming its config path (`mcp_servers[0].prefix`).
    pub fn problems(&self, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        if !valid_name(&self.id) {
            out.push(format!(
                "{path}.id: `{}` must be 1-64 characters of a-z, 0-9, `-` and `_`, not starting or ending with `_`",
                self.id
            ));
        }
        if let Some(p) = &self.prefix
            && !p.is_empty()
            && (!valid_name(p) || p.contains(PREFIX_SEPARATOR))
        {
            out.push(format!(
                "{path}.prefix: `{p}` must be empty or 1-64 characters of a-z, 0-9, `-` and `_` without `__`"
            ));
        }
        match (&self.stdio, &self.http) {
            (Some(_), Some(_)) | (None, None) => out.push(format!(
                "{path}: exactly one of `stdio` and `http` must be set"
            )),
            (Some(s), None) => {
                if s.command.trim().is_empty() {
                    out.push(format!("{path}.stdio.command: must not be empty"));
                }
                credential_literals(&s.env, &format!("{path}.stdio.env"), &mut out);
            }
            (None, Some(h)) => {
                if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                    out.push(format!(
                        "{path}.http.url: `{}` must be an http:// or https:// URL",
                        h.url
                    ));
                }
                for name in h.headers.keys() {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        out.push(format!(
                            "{path}.http.headers: `{name}` is not a valid header name"
                        ));
                    }
                }
                credential_literals(&h.headers, &format!("{path}.http.headers"), &mut out);
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            out.push(format!(
                "{path}.timeout_ms: {} must be between 1 and {MAX_TIMEOUT_MS}",
                self.timeout_ms
            ));
        }
        if self.approval_ttl_secs == 0 || self.approval_ttl_secs > MAX_APPROVAL_TTL_SECS {
            out.push(format!(
                "{path}.approval_ttl_secs: {} must be between 1 and {MAX_APPROVAL_TTL_SECS}",
                self.approval_ttl_secs
            ));
        }
        if self.max_result_bytes == 0 || self.max_result_bytes > MAX_RESULT_BYTES {
            out.push(format!(
                "{path}.max_result_bytes: {} must be between 1 and {MAX_RESULT_BYTES}",
                self.max_result_bytes
            ));
        }
        out
    }
}

/// 1-64 of a-z, 0-9, `-`, `_`, not starting or ending with `_` (which would blur the
/// `__` between a prefix and a tool name).
fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('_')
        && !s.ends_with('_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A name that carries a credential (`authorization`, `x-api-key`, `GITHUB_TOKEN`).
fn looks_like_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "authorization",
        "key",
        "token",
        "secret",
        "password",
        "cookie",
    ]
    .iter()
    .any(|w| n.contains(w))
}

fn credential_literals(values: &BTreeMap<String, String>, path: &str, out: &mut Vec<String>) {
    for (name, value) in values {
        if looks_like_credential(name) && !value.starts_with("secret://") {
            out.push(format!(
                "{path}.{name}: a credential must be a secret reference such as `secret://env/NAME`, not a literal"
            ));
        }
    }
}

/// Parses and validates `[[mcp_servers]]` entries: every problem, each with its config path,
/// in one error; ids and non-empty prefixes must be unique.
pub fn parse_servers(entries: &[serde_json::Value]) -> Result<Vec<McpServerConfig>, Error> {
    let mut servers = Vec::new();
    let mut problems = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("mcp_servers[{i}]");
        match serde_path_to_error::deserialize::<_, McpServerConfig>(entry) {
            Ok(s) => {
                problems.extend(s.problems(&path));
                servers.push(s);
            }
            Err(e) => problems.push(match e.path().to_string().as_str() {
                "." => format!("{path}: {}", e.inner()),
                at => format!("{path}.{at}: {}", e.inner()),
            }),
        }
    }
    for (i, s) in servers.iter().enumerate() {
        if servers[..i].iter().any(|o| o.id == s.id) {
            problems.push(format!("mcp_servers[{i}].id: `{}` is used twice", s.id));
        }
        if !s.prefix().is_empty() && servers[..i].iter().any(|o| o.prefix() == s.prefix()) {
            problems.push(format!(
                "mcp_servers[{i}].prefix: `{}` is used twice",
                s.prefix()
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(servers),
        false => Err(Error::config(problems.join("; "))),
    }
}

/// A server's settings with every `secret://` reference resolved; what [`crate::Upstream`]
/// connects with.
#[derive(Debug, Clone)]
pub struct ResolvedServer {
    /// The config it came from (references unresolved).
    pub config: McpServerConfig,
    /// Header or environment values, resolved, by name.
    pub(crate) values: BTreeMap<String, Secret>,
}

impl ResolvedServer {
    /// A server whose settings hold no secret reference.
    pub fn plain(config: McpServerConfig) -> Self {
        Self {
            config,
            values: BTreeMap::new(),
        }
    }

    /// `config` with each header or environment value resolved by `resolve(path, reference)`
    /// (the registry's `resolve_secret`); literal values are kept as they are.
    pub async fn resolve<F, Fut>(
        config: McpServerConfig,
        path: &str,
        resolve: F,
    ) -> Result<Self, Error>
    where
        F: Fn(String, String) -> Fut,
        Fut: std::future::Future<Output = Result<Secret, Error>>,
    {
        let (values, at) = match (&config.stdio, &config.http) {
            (Some(s), _) => (&s.env, format!("{path}.stdio.env")),
            (_, Some(h)) => (&h.headers, format!("{path}.http.headers")),
            _ => return Ok(Self::plain(config)),
        };
        let mut resolved = BTreeMap::new();
        for (name, value) in values {
            let v = match value.starts_with("secret://") {
                true => resolve(format!("{at}.{name}"), value.clone()).await?,
                false => Secret::new(value.clone()),
            };
            resolved.insert(name.clone(), v);
        }
        Ok(Self {
            config,
            values: resolved,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_servers;
    use serde_json::json;

    #[test]
    fn a_prefix_that_would_blur_the_separator_is_refused_with_its_path() {
        for (field, value) in [("prefix", "files_"), ("prefix", "_files"), ("id", "x_")] {
            let mut entry = json!({"id": "ok", "http": {"url": "http://127.0.0.1:1/mcp"}});
            entry[field] = json!(value);
            let e = parse_servers(&[entry]).unwrap_err();
            assert!(
                e.message().contains(&format!("mcp_servers[0].{field}")),
                "{}",
                e.message()
            );
        }
        let e = parse_servers(&[
            json!({"id": "a", "stdio": {"command": "x", "env": {"API_TOKEN": "literal"}}}),
        ])
        .unwrap_err();
        assert!(
            e.message().contains("mcp_servers[0].stdio.env.API_TOKEN"),
            "{}",
            e.message()
        );
    }
}
