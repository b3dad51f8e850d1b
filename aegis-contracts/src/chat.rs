//! Chat requests: an OpenAI-shaped, provider-neutral superset.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, RequestContext};

/// Unknown JSON fields, kept and forwarded verbatim.
pub type Extra = Map<String, Value>;

/// A chat request. Deserializes from an OpenAI `chat/completions` body; fields Aegis does not
/// know land in [`extra`](Self::extra) and are forwarded to providers that understand them.
///
/// ```
/// use aegis_contracts::ChatRequest;
/// let req: ChatRequest = serde_json::from_str(
///     r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"logit_bias":{"50256":-100}}"#,
/// ).unwrap();
/// assert_eq!(req.messages[0].text(), "hi");
/// assert!(req.extra.contains_key("logit_bias"));
/// req.validate().unwrap();
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ChatRequest {
    /// The model or alias to call.
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub model: String,
    /// The conversation so far.
    #[schemars(length(min = 1))]
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// `"auto"`, `"none"`, `"required"` or a specific function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2))]
    pub temperature: Option<f32>,
    /// Nucleus sampling, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub top_p: Option<f32>,
    /// Upper bound on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = u32::MAX))]
    pub max_tokens: Option<u32>,
    /// Stop sequences (a string or a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Value>,
    /// Deterministic sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = i64::MIN, max = i64::MAX))]
    pub seed: Option<i64>,
    /// Structured-output request (`json_object`, `json_schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Stream the answer as chunks.
    #[serde(default)]
    pub stream: bool,
    /// Every field Aegis does not model, forwarded as is.
    #[serde(flatten)]
    pub extra: Extra,
    /// Per-request context (principal, run id, labels); never serialized.
    #[serde(skip)]
    pub ctx: RequestContext,
}

/// A JSON Schema `pattern` a string matches when it holds a character that is not Unicode
/// `White_Space` — exactly when Rust's `str::trim` leaves something, which is how the
/// entry points decide that a name is not blank. Spelled out as a class, because `\S`
/// means different sets in different regex engines.
pub const NOT_BLANK_PATTERN: &str = concat!("[^", crate::white_space_chars!(), "]");

/// The characters of Unicode `White_Space` (what `str::trim` removes), as the inside of a
/// regular-expression character class, for patterns that must agree with the server's
/// trimming in every engine ([`NOT_BLANK_PATTERN`], the gateway's age pattern).
#[doc(hidden)]
#[macro_export]
macro_rules! white_space_chars {
    () => {
        "\t-\r \u{85}\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}"
    };
}

/// Hard upper bound on a request's total text, checked by [`ChatRequest::validate`].
pub const MAX_REQUEST_TEXT_BYTES: usize = 32 * 1024 * 1024;

impl ChatRequest {
    /// A request for `model` with the given messages.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            messages,
            ..Self::default()
        }
    }

    /// Sets `stream`.
    pub fn with_stream(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Adds a tool.
    pub fn with_tool(mut self, tool: ToolSpec) -> Self {
        self.tools.push(tool);
        self
    }

    /// Checks what every entry point must refuse: no model, no messages, a temperature
    /// outside 0–2 or a `top_p` outside 0–1, empty tool names, tool calls whose arguments
    /// are not JSON, and oversized text.
    pub fn validate(&self) -> Result<(), Error> {
        if self.model.trim().is_empty() {
            return Err(Error::invalid_request("`model` must not be empty"));
        }
        for (name, value, max) in [
            ("temperature", self.temperature, 2.0),
            ("top_p", self.top_p, 1.0),
        ] {
            if let Some(v) = value
                && !(0.0..=max).contains(&v)
            {
                return Err(Error::invalid_request(format!(
                    "`{name}` must be between 0 and {max}, not {v}"
                )));
            }
        }
        if self.messages.is_empty() {
            return Err(Error::invalid_request(
                "`messages` must contain at least one message",
            ));
        }
        let mut total = 0usize;
        for (i, m) in self.messages.iter().enumerate() {
            total += m.text().len();
            for (j, call) in m.tool_calls.iter().enumerate() {
                call.arguments_json().map_err(|e| {
                    Error::invalid_request(format!(
                        "messages[{i}].tool_calls[{j}]: {}",
                        e.message()
                    ))
                })?;
            }
            if m.role == Role::Tool && m.tool_call_id.is_none() {
                return Err(Error::invalid_request(format!(
                    "messages[{i}]: a `tool` message needs `tool_call_id`"
                )));
            }
        }
        for (i, t) in self.tools.iter().enumerate() {
            if t.function.name.trim().is_empty() {
                return Err(Error::invalid_request(format!(
                    "tools[{i}].function.name must not be empty"
                )));
            }
        }
        if total > MAX_REQUEST_TEXT_BYTES {
            return Err(Error::invalid_request(format!(
                "request text is {total} bytes; the limit is {MAX_REQUEST_TEXT_BYTES}"
            )));
        }
        Ok(())
    }
}

/// Who wrote a message. Unknown roles are rejected when deserializing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Operator instructions.
    System,
    /// Operator instructions (newer OpenAI models).
    Developer,
    /// The end user.
    #[default]
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// One message of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
// A `tool` message must say which call it answers ([`ChatRequest::validate`]).
#[schemars(extend("anyOf" = [
    {"properties": {"role": {"not": {"enum": ["tool"]}}}},
    {"required": ["tool_call_id"]}
]))]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Text or multi-part content; absent on assistant messages that only call tools.
    #[serde(default)]
    pub content: Option<Content>,
    /// Optional author name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Unknown fields (e.g. `refusal`, provider-specific reasoning), forwarded as is.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Message {
    /// A message with plain text content.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(Content::Text(text.into())),
            ..Self::default()
        }
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, text)
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(Role::System, text)
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(Role::Assistant, text)
    }

    /// A tool result answering `call_id`.
    pub fn tool(call_id: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::new(Role::Tool, text)
        }
    }

    /// The text of the message: the string, or its text parts joined by newlines.
    pub fn text(&self) -> Cow<'_, str> {
        match &self.content {
            None => Cow::Borrowed(""),
            Some(Content::Text(t)) => Cow::Borrowed(t),
            Some(Content::Parts(parts)) => {
                let texts: Vec<&str> = parts.iter().filter_map(ContentPart::as_text).collect();
                match texts.as_slice() {
                    [] => Cow::Borrowed(""),
                    [one] => Cow::Borrowed(one),
                    many => Cow::Owned(many.join("\n")),
                }
            }
        }
    }
}

/// Message content: a string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Multi-part content (text, images, audio).
    Parts(Vec<ContentPart>),
}

/// One part of multi-part content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image by URL or data URL.
    ImageUrl {
        /// `{ "url": ..., "detail": ... }`.
        image_url: Value,
    },
    /// Base64 audio.
    InputAudio {
        /// `{ "data": ..., "format": ... }`.
        input_audio: Value,
    },
    /// A file reference.
    File {
        /// `{ "file_id": ... }` or inline data.
        file: Value,
    },
}

impl ContentPart {
    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text { text } => Some(text),
            _ => None,
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolSpec {
    /// Always `"function"` today.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function.
    pub function: FunctionSpec,
}

fn function_type() -> String {
    "function".to_owned()
}

impl ToolSpec {
    /// A function tool.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self {
            kind: function_type(),
            function: FunctionSpec {
                name: name.into(),
                description: Some(description.into()),
                parameters: Some(parameters),
                strict: None,
            },
        }
    }
}

/// A function's declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FunctionSpec {
    /// Name the model calls it by.
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub name: String,
    /// What it does (the model reads this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Strict schema adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCall {
    /// Call id, echoed by the tool result.
    pub id: String,
    /// Always `"function"` today.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Which function, with which arguments.
    pub function: FunctionCall,
}

impl ToolCall {
    /// A function call.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: function_type(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }

    /// The arguments parsed as JSON; an [`InvalidRequest`](crate::ErrorKind::InvalidRequest)
    /// error when the model produced something else.
    pub fn arguments_json(&self) -> Result<Value, Error> {
        if self.function.arguments.trim().is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_str(&self.function.arguments).map_err(|e| {
            Error::invalid_request(format!(
                "tool call `{}` has arguments that are not valid JSON: {e}",
                self.function.name
            ))
        })
    }
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string (as the model produced them).
    #[serde(default)]
    pub arguments: String,
}
