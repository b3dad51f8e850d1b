//! Secrets: a value type that never prints itself, and the backend contract that resolves
//! `secret://scheme/path` references.

use std::{borrow::Cow, fmt};

use async_trait::async_trait;
use zeroize::Zeroize;

use crate::Error;

/// A secret value (an API key, a password). Its `Debug` prints `Secret(***)`; it has no
/// `Display` and no `Serialize`, so it cannot reach a log line, an error or an audit event by
/// accident. The memory is zeroed on drop.
///
/// ```
/// use aegis_contracts::Secret;
/// let key = Secret::new("sk-live-123");
/// assert_eq!(format!("{key:?}"), "Secret(***)");
/// assert_eq!(key.expose(), "sk-live-123");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext. Call it at the last moment (building a header), never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Deliberately no value in the error: a mistyped secret must not echo itself.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a secret:// reference")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
        }
        d.deserialize_string(V)
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A secret: a `secret://env/NAME` or `secret://file/PATH` reference (resolved when the pipeline is built) or a literal value."
        })
    }
}

/// A parsed `secret://scheme/path` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The backend scheme (`env`, `file`, ...).
    pub scheme: String,
    /// The backend-specific path (a variable name, a file path).
    pub path: String,
}

impl SecretRef {
    /// The prefix every reference starts with.
    pub const PREFIX: &'static str = "secret://";

    /// Parses `secret://scheme/path`; `None` when `s` is not a reference at all.
    ///
    /// ```
    /// use aegis_contracts::SecretRef;
    /// let r = SecretRef::parse("secret://file//run/keys/openai").unwrap().unwrap();
    /// assert_eq!((r.scheme.as_str(), r.path.as_str()), ("file", "/run/keys/openai"));
    /// assert!(SecretRef::parse("plain").is_none());
    /// assert!(SecretRef::parse("secret://env").unwrap().is_err());
    /// ```
    pub fn parse(s: &str) -> Option<Result<Self, Error>> {
        let rest = s.strip_prefix(Self::PREFIX)?;
        Some(match rest.split_once('/') {
            Some((scheme, path)) if !scheme.is_empty() && !path.is_empty() => Ok(Self {
                scheme: scheme.to_owned(),
                path: path.to_owned(),
            }),
            _ => Err(Error::config(format!(
                "malformed secret reference `{s}`: expected secret://SCHEME/PATH"
            ))),
        })
    }
}

/// Contract: resolves `secret://SCHEME/...` references for one scheme.
#[async_trait]
pub trait SecretBackend: Send + Sync + 'static {
    /// The scheme this backend serves (`env`, `file`, `vault`, ...).
    fn scheme(&self) -> &str;

    /// Resolves the path part of a reference. Errors name the reference, never a value.
    async fn resolve(&self, path: &str) -> Result<Secret, Error>;
}
