//! Translations between Aegis's provider-neutral types and the OpenAI wire format.
//!
//! [`Usage`] is normalized (cached and reasoning tokens as separate counts); OpenAI nests them
//! under `prompt_tokens_details` / `completion_tokens_details`. Hosts that answer in the OpenAI
//! format (the gateway) use [`completion_to_openai`] and [`chunk_to_openai`].
//!
//! ```
//! use aegis_contracts::Usage;
//! use aegis_providers::wire::{usage_from_openai, usage_to_openai};
//!
//! let openai = serde_json::json!({
//!     "prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
//!     "prompt_tokens_details": { "cached_tokens": 8 },
//!     "completion_tokens_details": { "reasoning_tokens": 20 }
//! });
//! let usage = usage_from_openai(&openai);
//! assert_eq!((usage.input_tokens, usage.cache_read_tokens, usage.reasoning_tokens), (12, 8, 20));
//! assert_eq!(usage_to_openai(&usage)["total_tokens"], 42);
//! ```

use aegis_contracts::{
    ChatChunk, Choice, ChunkChoice, Completion, Content, Delta, Extra, FunctionCallDelta, Message,
    Role, ToolCall, ToolCallDelta, Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// [`Usage`] as an OpenAI `usage` object (`prompt_tokens`, `completion_tokens`,
/// `total_tokens`, and the `*_details` objects). Cache writes, which OpenAI does not report,
/// appear as `cache_creation_input_tokens` (the name OpenAI-compatible proxies use) when
/// non-zero.
pub fn usage_to_openai(usage: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens(),
        "prompt_tokens_details": { "cached_tokens": usage.cache_read_tokens },
        "completion_tokens_details": { "reasoning_tokens": usage.reasoning_tokens },
    });
    if usage.cache_write_tokens > 0 {
        v["cache_creation_input_tokens"] = usage.cache_write_tokens.into();
    }
    v
}

/// [`Usage`] from an OpenAI `usage` object. Lenient: missing or non-numeric counts read as 0.
/// Also understands the variants OpenAI-compatible servers use: `input_tokens` /
/// `output_tokens` (and their `*_details`), DeepSeek's `prompt_cache_hit_tokens`, and
/// `cache_creation_input_tokens`.
pub fn usage_from_openai(value: &Value) -> Usage {
    let n = |v: &Value| v.as_u64();
    let first = |paths: &[&[&str]]| -> u64 {
        paths
            .iter()
            .find_map(|path| n(path.iter().fold(value, |v, k| &v[*k])))
            .unwrap_or(0)
    };
    Usage {
        input_tokens: first(&[&["prompt_tokens"], &["input_tokens"]]),
        output_tokens: first(&[&["completion_tokens"], &["output_tokens"]]),
        cache_read_tokens: first(&[
            &["prompt_tokens_details", "cached_tokens"],
            &["input_tokens_details", "cached_tokens"],
            &["prompt_cache_hit_tokens"],
        ]),
        cache_write_tokens: first(&[
            &["cache_creation_input_tokens"],
            &["prompt_tokens_details", "cache_creation_tokens"],
        ]),
        reasoning_tokens: first(&[
            &["completion_tokens_details", "reasoning_tokens"],
            &["output_tokens_details", "reasoning_tokens"],
        ]),
    }
}

/// A [`Completion`] as an OpenAI `chat.completion` object.
pub fn completion_to_openai(completion: &Completion) -> Value {
    // Serializing these types cannot fail: every map in them has string keys.
    let mut v = serde_json::to_value(completion).unwrap_or_default();
    if let Value::Object(map) = &mut v {
        map.insert("object".into(), "chat.completion".into());
        if let Some(usage) = &completion.usage {
            map.insert("usage".into(), usage_to_openai(usage));
        }
    }
    v
}

/// A [`ChatChunk`] as an OpenAI `chat.completion.chunk` object (the `data:` of one SSE event).
pub fn chunk_to_openai(chunk: &ChatChunk) -> Value {
    let mut v = serde_json::to_value(chunk).unwrap_or_default();
    if let Value::Object(map) = &mut v {
        map.insert("object".into(), "chat.completion.chunk".into());
        if let Some(usage) = &chunk.usage {
            map.insert("usage".into(), usage_to_openai(usage));
        }
    }
    v
}

/// A [`Completion`] from an OpenAI `chat.completion` object, read as leniently as the
/// `openai` provider reads a server's answer (usage in any of the common shapes, missing
/// indexes). An object without `choices` is refused: it is not a completion.
pub fn completion_from_openai(value: Value) -> Result<Completion, serde_json::Error> {
    serde_json::from_value::<WireCompletion>(value).map(Completion::from)
}

// ---- Internal: what OpenAI-compatible servers send. Lenient where real servers differ
// (missing `index`, `null` lists), strict where a missing field means "not a completion".

#[derive(Deserialize)]
pub(crate) struct WireCompletion {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    created: u64,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    index: u32,
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default = "assistant")]
    role: Role,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(flatten)]
    extra: Extra,
}

fn assistant() -> Role {
    Role::Assistant
}

impl From<WireCompletion> for Completion {
    fn from(w: WireCompletion) -> Self {
        let mut c = Completion::default();
        c.id = w.id;
        c.model = w.model;
        c.created = w.created;
        c.usage = w
            .usage
            .as_ref()
            .filter(|u| u.is_object())
            .map(usage_from_openai);
        c.extra = w.extra;
        c.choices = w
            .choices
            .into_iter()
            .map(|ch| {
                let mut message = Message::default();
                message.role = ch.message.role;
                message.content = ch.message.content;
                message.name = ch.message.name;
                message.tool_calls = ch.message.tool_calls.unwrap_or_default();
                message.extra = ch.message.extra;
                Choice {
                    index: ch.index,
                    message,
                    finish_reason: ch.finish_reason,
                }
            })
            .collect();
        c
    }
}

#[derive(Deserialize)]
pub(crate) struct WireChunk {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    choices: Option<Vec<WireChunkChoice>>,
    #[serde(default)]
    usage: Option<Value>,
    /// Groq reports streamed usage under `x_groq.usage`.
    #[serde(default)]
    x_groq: Option<Value>,
    /// An upstream error reported inside the stream.
    #[serde(default)]
    pub(crate) error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCallDelta>>,
    /// `reasoning_content`, `refusal` and other provider fields, kept.
    #[serde(flatten)]
    extra: aegis_contracts::Extra,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    function: Option<FunctionCallDelta>,
}

impl From<WireChunk> for ChatChunk {
    fn from(w: WireChunk) -> Self {
        let mut c = ChatChunk::default();
        c.id = w.id;
        c.model = w.model;
        c.created = w.created;
        c.usage = w
            .usage
            .as_ref()
            .or_else(|| w.x_groq.as_ref().and_then(|x| x.get("usage")))
            .filter(|u| u.is_object())
            .map(usage_from_openai);
        c.choices = w
            .choices
            .unwrap_or_default()
            .into_iter()
            .map(|ch| {
                let d = ch.delta;
                let (role, content, tool_calls, extra) = match d {
                    Some(d) => (d.role, d.content, d.tool_calls.unwrap_or_default(), d.extra),
                    None => (None, None, Vec::new(), aegis_contracts::Extra::new()),
                };
                ChunkChoice {
                    index: ch.index,
                    delta: Delta {
                        role,
                        content,
                        tool_calls: tool_calls
                            .into_iter()
                            .map(|t| ToolCallDelta {
                                index: t.index,
                                id: t.id,
                                kind: t.kind,
                                function: t.function,
                            })
                            .collect(),
                        extra,
                    },
                    finish_reason: ch.finish_reason,
                }
            })
            .collect();
        c
    }
}

/// A complete answer as the single chunk that carries all of it (for a streamed request
/// answered whole: the `openai` provider's, a plugin provider's).
pub fn completion_to_chunk(c: Completion) -> ChatChunk {
    let mut chunk = ChatChunk::default();
    chunk.id = c.id;
    chunk.model = c.model;
    chunk.created = c.created;
    chunk.usage = c.usage;
    chunk.choices = c
        .choices
        .into_iter()
        .map(|choice| {
            let m = choice.message;
            let content = m.content.as_ref().map(|_| m.text().into_owned());
            ChunkChoice {
                index: choice.index,
                delta: Delta {
                    role: Some(m.role),
                    content,
                    tool_calls: m
                        .tool_calls
                        .iter()
                        .enumerate()
                        .map(|(i, call)| ToolCallDelta {
                            index: i as u32,
                            ..ToolCallDelta::from(call)
                        })
                        .collect(),
                    extra: m.extra.clone(),
                },
                finish_reason: choice.finish_reason,
            }
        })
        .collect();
    chunk
}

/// The upstream's own words from an OpenAI-style error value: `{"message": ..}` or a string.
pub(crate) fn error_message(error: &Value) -> Option<String> {
    match error {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(map) => {
            let msg = map
                .get("message")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty());
            // A string code, type or status (Gemini) names the error best; a bare number
            // (Gemini's repeated HTTP status) only when nothing else does.
            let code = ["code", "type", "status"]
                .iter()
                .find_map(|k| {
                    map.get(*k)
                        .filter(|c| c.as_str().is_some_and(|s| !s.is_empty()))
                })
                .or_else(|| map.get("code").filter(|c| c.is_number()));
            match (msg, code) {
                (Some(m), Some(Value::String(c))) => Some(format!("{m} (code: {c})")),
                (Some(m), Some(c @ Value::Number(_))) => Some(format!("{m} (code: {c})")),
                (Some(m), _) => Some(m.to_owned()),
                (None, _) => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_round_trips_through_openai_shape() {
        let usage = Usage {
            input_tokens: 100,
            output_tokens: 50,
            cache_read_tokens: 40,
            cache_write_tokens: 7,
            reasoning_tokens: 30,
        };
        assert_eq!(usage_from_openai(&usage_to_openai(&usage)), usage);
        assert_eq!(usage_to_openai(&usage)["total_tokens"], 150);
    }

    #[test]
    fn usage_without_cache_writes_omits_the_field() {
        let v = usage_to_openai(&Usage::default());
        assert!(v.get("cache_creation_input_tokens").is_none());
    }

    #[test]
    fn deepseek_cache_hits_count_as_cache_reads() {
        let u = usage_from_openai(
            &json!({"prompt_tokens": 9, "completion_tokens": 1, "prompt_cache_hit_tokens": 4}),
        );
        assert_eq!(u.cache_read_tokens, 4);
    }

    #[test]
    fn chunk_to_openai_uses_openai_usage_names() {
        let mut chunk = ChatChunk::text("c1", "m", "hi");
        chunk.usage = Some(Usage {
            input_tokens: 3,
            output_tokens: 1,
            ..Usage::default()
        });
        let v = chunk_to_openai(&chunk);
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        assert_eq!(v["choices"][0]["delta"]["content"], "hi");
    }

    #[test]
    fn completion_to_openai_is_readable_back() {
        let mut c = Completion::text("id1", "m", "hello");
        c.usage = Some(Usage {
            input_tokens: 2,
            output_tokens: 1,
            ..Usage::default()
        });
        let v = completion_to_openai(&c);
        assert_eq!(v["object"], "chat.completion");
        let back: Completion = serde_json::from_value::<WireCompletion>(v)
            .map(Into::into)
            .unwrap_or_default();
        assert_eq!(back.usage, c.usage);
        assert_eq!(back.choices, c.choices);
    }

    #[test]
    fn error_message_reads_message_and_code() {
        let e = json!({"message": "bad model", "type": "invalid_request_error", "code": "model_not_found"});
        assert_eq!(
            error_message(&e).as_deref(),
            Some("bad model (code: model_not_found)")
        );
        assert_eq!(error_message(&json!("plain")).as_deref(), Some("plain"));
        assert_eq!(error_message(&json!({"code": 1})), None);
    }
}
