//! [`UrlAllowList`]: URLs must point at allowed hosts.

use aegis_contracts::{
    Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, RequestContext, Stage,
    Verdict,
};
use async_trait::async_trait;
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::util::{self, Action};

const DETECTOR: &str = "url_allow_list";
/// The streaming window the guard declares, in bytes.
const URL_WINDOW: usize = 2048;
/// Longest URL span reported; longer URLs are cut here (their host is long past).
const URL_MAX: usize = URL_WINDOW - 8;

/// Top-level domains recognised for bare domains (without a scheme). Deliberately short:
/// file names such as `main.rs` or `setup.py` must not read as domains.
const BARE_TLDS: &str = "com|net|org|io|ai|co|dev|app|info|biz|me|xyz|gov|edu|mil|int|us|uk|de|fr|ru|cn|jp|in|br|eu|ca|au|nl|it|es|ch|se|no|be|at|dk|fi|ie|nz|za|kr|tv|cc|ws|gg|ly|to|tk|ml|ga|cf|gq|top|online|site|click|link|live|shop|store|tech|cloud|page|blog|news|zip|mov|su";

/// Configuration of [`UrlAllowList`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlAllowListConfig {
    /// Hosts URLs may point at (`example.com`, `docs.rs`, `10.0.0.1`). Required, non-empty. An
    /// entry `*.example.com` allows the subdomains of `example.com` even when
    /// `include_subdomains` is off. Internationalised names are compared in punycode.
    pub allowed_domains: Vec<String>,
    /// Whether `sub.example.com` is allowed when `example.com` is (default `true`).
    #[serde(default = "yes")]
    pub include_subdomains: bool,
    /// Also recognise bare domains without a scheme (`evil.com/x`) — only with common
    /// top-level domains, to keep file names out (default `false`).
    #[serde(default)]
    pub bare_domains: bool,
    /// `block` (default) or `redact` (each disallowed URL becomes [`replacement`](Self::replacement)).
    #[serde(default)]
    pub action: Action,
    /// The mask used by `redact` (default `"[REDACTED_URL]"`).
    #[serde(default = "default_mask")]
    pub replacement: String,
    /// Stages the guard applies to (default: all).
    #[serde(default = "util::all_stages")]
    pub stages: Vec<Stage>,
}

fn yes() -> bool {
    true
}
fn default_mask() -> String {
    "[REDACTED_URL]".to_owned()
}

impl UrlAllowListConfig {
    /// A config allowing `domains` (and their subdomains), blocking other URLs.
    pub fn new<S: Into<String>>(domains: impl IntoIterator<Item = S>) -> Self {
        Self {
            allowed_domains: domains.into_iter().map(Into::into).collect(),
            include_subdomains: true,
            bare_domains: false,
            action: Action::Block,
            replacement: default_mask(),
            stages: util::all_stages(),
        }
    }
}

/// Finds URLs (`scheme://…`, and optionally bare domains) and blocks or redacts those whose
/// host is not allowed. Hosts come from a WHATWG URL parse, so `https://ok.com@evil.com`
/// is judged by `evil.com` and `HTTPS://OK.COM.` equals `ok.com`. The forms a browser also
/// follows are URLs too: backslashes for slashes (`https:\\evil.com`, `http:\/\/evil.com`),
/// `https:evil.com` without slashes, and protocol-relative `//evil.com/x`. A URL whose host cannot
/// be parsed is treated as not allowed (fail closed). Trailing sentence punctuation and an
/// unbalanced closing bracket are not part of a URL.
///
/// Declares [`Granularity::Window`]`(2048)`: a URL longer than that is reported (and
/// redacted) up to 2040 bytes.
#[derive(Debug)]
pub struct UrlAllowList {
    url: Regex,
    relative: Regex,
    bare: Option<Regex>,
    /// (host, subdomains allowed)
    allowed: Vec<(String, bool)>,
    config: UrlAllowListConfig,
}

fn normalize_host(host: &str) -> Option<String> {
    let parsed = url::Url::parse(&format!("http://{host}/")).ok()?;
    let h = parsed
        .host_str()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    (!h.is_empty()).then_some(h)
}

/// Drops trailing punctuation that ends a sentence rather than the URL.
fn trim_url(s: &str) -> &str {
    let mut s = s;
    loop {
        let Some(last) = s.chars().next_back() else {
            return s;
        };
        let strip = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"' | '*' | '>' => true,
            ')' => s.matches(')').count() > s.matches('(').count(),
            ']' => s.matches(']').count() > s.matches('[').count(),
            '}' => s.matches('}').count() > s.matches('{').count(),
            _ => false,
        };
        if !strip {
            return s;
        }
        s = &s[..s.len() - last.len_utf8()];
    }
}

impl UrlAllowList {
    /// Builds the guard; a [`Config`](aegis_contracts::ErrorKind::Config) error for an empty
    /// list or an entry that is not a host name.
    pub fn new(config: UrlAllowListConfig) -> Result<Self, Error> {
        util::check_stages("url_allow_list", &config.stages)?;
        if config.allowed_domains.is_empty() {
            return Err(Error::config(
                "url_allow_list: `allowed_domains` must not be empty (use the regex guard to ban every URL)",
            ));
        }
        let mut allowed = Vec::new();
        for (i, d) in config.allowed_domains.iter().enumerate() {
            let (d, wildcard) = match d.trim().strip_prefix("*.") {
                Some(rest) => (rest, true),
                None => (d.trim(), false),
            };
            if d.is_empty() || d.contains(['/', '@', ' ', ':']) {
                return Err(Error::config(format!(
                    "url_allow_list: `allowed_domains[{i}]` must be a bare host name like `example.com`"
                )));
            }
            let host = normalize_host(d).ok_or_else(|| {
                Error::config(format!(
                    "url_allow_list: `allowed_domains[{i}]` is not a valid host"
                ))
            })?;
            allowed.push((host, wildcard || config.include_subdomains));
        }
        // Any `scheme://`; for the web schemes also what WHATWG parsing accepts in its
        // place: backslashes, escaped slashes, or no slashes at all.
        let url = Regex::new(
            r#"(?i)\b(?:[a-z][a-z0-9+.-]{0,31}://|(?:https?|ftp|wss?):[/\\]*)[^\s<>"'`\x00-\x1f\x7f]+"#,
        )
        .map_err(|e| Error::internal(format!("url_allow_list: {e}")))?;
        // Protocol-relative: two slashes (or backslashes) not preceded by a scheme, then
        // something host-like (a dotted name or an IPv4 address), so `//TODO` comments stay
        // text.
        let relative = Regex::new(
            r#"(?i)(?:^|[^a-z0-9:/\\.])([/\\]{2,}(?:[a-z0-9-]{1,63}\.)+[a-z0-9-]{1,63}(?::[0-9]{1,5})?(?:[/\\?#][^\s<>"'`\x00-\x1f\x7f]*)?)"#,
        )
        .map_err(|e| Error::internal(format!("url_allow_list: {e}")))?;
        let bare = if config.bare_domains {
            let pattern = format!(
                r#"(?i)(?:^|[^A-Za-z0-9@./_-])((?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.){{1,8}}(?:{BARE_TLDS})(?-u:\b)(?::[0-9]{{1,5}})?(?:/[^\s<>"'`\x00-\x1f\x7f]*)?)"#
            );
            Some(
                Regex::new(&pattern)
                    .map_err(|e| Error::internal(format!("url_allow_list: {e}")))?,
            )
        } else {
            None
        };
        Ok(Self {
            url,
            relative,
            bare,
            allowed,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UrlAllowListConfig {
        &self.config
    }

    /// Whether `host` (already normalised) is allowed.
    fn host_allowed(&self, host: &str) -> bool {
        self.allowed.iter().any(|(a, subs)| {
            host == a
                || (*subs
                    && host.len() > a.len()
                    && host.ends_with(a.as_str())
                    && host.as_bytes()[host.len() - a.len() - 1] == b'.')
        })
    }

    fn url_allowed(&self, url: &str) -> bool {
        match url::Url::parse(url)
            .ok()
            .as_ref()
            .and_then(url::Url::host_str)
        {
            Some(h) => self.host_allowed(&h.trim_end_matches('.').to_ascii_lowercase()),
            None => false,
        }
    }

    fn scan(&self, segment: usize, text: &str, out: &mut Vec<Finding>) {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for m in self.url.find_iter(text) {
            let url = trim_url(m.as_str());
            let end = m.start() + url.len();
            spans.push((m.start(), end));
            if !self.url_allowed(url) {
                let capped = util::floor_boundary(text, (m.start() + URL_MAX).min(end));
                out.push(Finding::new(
                    "url_not_allowed",
                    util::span(segment, m.start(), capped),
                    1.0,
                    DETECTOR,
                ));
            }
        }
        self.scan_captured(&self.relative, "http:", segment, text, &mut spans, out);
        if let Some(bare) = &self.bare {
            self.scan_captured(bare, "http://", segment, text, &mut spans, out);
        }
    }

    /// URLs without a scheme, found by `pattern`'s first group and parsed with `prefix`
    /// before them; those inside an already found URL are skipped.
    fn scan_captured(
        &self,
        pattern: &Regex,
        prefix: &str,
        segment: usize,
        text: &str,
        spans: &mut Vec<(usize, usize)>,
        out: &mut Vec<Finding>,
    ) {
        let mut found = Vec::new();
        for caps in pattern.captures_iter(text) {
            let Some(m) = caps.get(1) else { continue };
            // `spans` is sorted and non-overlapping: the first one ending after this match
            // starts is the only candidate for an overlap.
            let next = spans.partition_point(|&(_, e)| e <= m.start());
            if spans.get(next).is_some_and(|&(s, _)| s < m.end()) {
                continue;
            }
            let url = trim_url(m.as_str());
            found.push((m.start(), m.start() + url.len()));
            if !self.url_allowed(&format!("{prefix}{url}")) {
                let end =
                    util::floor_boundary(text, (m.start() + URL_MAX).min(m.start() + url.len()));
                out.push(Finding::new(
                    "url_not_allowed",
                    util::span(segment, m.start(), end),
                    1.0,
                    DETECTOR,
                ));
            }
        }
        spans.extend(found);
        spans.sort_unstable();
    }
}

#[async_trait]
impl Guardrail for UrlAllowList {
    fn capabilities(&self) -> GuardCapabilities {
        let caps =
            GuardCapabilities::new(self.config.stages.clone(), Granularity::Window(URL_WINDOW));
        match self.config.action {
            Action::Block | Action::RequireApproval => caps,
            Action::Redact => caps.sanitizing(),
        }
    }

    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        let mut findings = Vec::new();
        for (i, seg) in subject.segments().iter().enumerate() {
            // Every URL form the guard recognises contains a dot or a colon.
            if seg.text.contains(['.', ':']) {
                self.scan(i, seg.text, &mut findings);
            }
        }
        Ok(util::decide(
            findings,
            self.config.action,
            "url_not_allowed",
            |f| {
                format!(
                    "text links to {} URL(s) outside the allowed domains",
                    f.len()
                )
            },
            |_| self.config.replacement.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::trim_url;

    #[test]
    fn trims_sentence_punctuation_but_keeps_balanced_parens() {
        assert_eq!(trim_url("https://a.com/x."), "https://a.com/x");
        assert_eq!(trim_url("https://a.com/x)."), "https://a.com/x");
        assert_eq!(
            trim_url("https://en.wikipedia.org/wiki/Rust_(language)"),
            "https://en.wikipedia.org/wiki/Rust_(language)"
        );
    }
}
