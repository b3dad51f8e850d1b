//! Small translation helpers shared by the native providers.

// With some native providers compiled out, helpers only they use are unused.
#![cfg_attr(
    not(all(
        feature = "anthropic",
        feature = "gemini",
        feature = "bedrock",
        feature = "azure"
    )),
    allow(dead_code, unused_macros, unused_imports)
)]

use std::time::{SystemTime, UNIX_EPOCH};

use aegis_contracts::{Error, ToolCall};
use serde_json::Value;

/// A `data:` URL split into media type and base64 payload.
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((
        if mime.is_empty() {
            "application/octet-stream"
        } else {
            mime
        },
        data,
    ))
}

/// The URL of an OpenAI `image_url` value (`{"url": ...}` or a bare string).
pub(crate) fn image_url(v: &Value) -> Option<&str> {
    v.get("url").and_then(Value::as_str).or_else(|| v.as_str())
}

/// `stop` (a string or a list) as a list.
pub(crate) fn stop_sequences(stop: Option<&Value>) -> Vec<String> {
    match stop {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// A tool call's arguments as a JSON value (an object for empty arguments).
pub(crate) fn tool_args(provider: &str, call: &ToolCall) -> Result<Value, Error> {
    call.arguments_json()
        .map_err(|e| Error::invalid_request(format!("provider `{provider}`: {}", e.message())))
}

/// Now, in Unix seconds.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An error for content a provider cannot carry, naming the provider.
pub(crate) fn unsupported(provider: &str, what: &str) -> Error {
    Error::invalid_request(format!("provider `{provider}` cannot accept {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_split_into_type_and_payload() {
        assert_eq!(
            data_url("data:image/png;base64,iVBOR"),
            Some(("image/png", "iVBOR"))
        );
        assert_eq!(data_url("https://x/y.png"), None);
        assert_eq!(data_url("data:text/plain,hello"), None);
    }

    #[test]
    fn stop_accepts_a_string_or_a_list() {
        assert_eq!(stop_sequences(Some(&Value::from("x"))), ["x"]);
        assert_eq!(
            stop_sequences(Some(&serde_json::json!(["a", "b"]))),
            ["a", "b"]
        );
        assert!(stop_sequences(None).is_empty());
    }
}
