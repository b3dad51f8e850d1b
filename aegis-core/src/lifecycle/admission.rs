//! Admission: what may reach a provider at all. Guards judge text; a request can carry
//! more — media, references a provider resolves with the gateway's own credentials, fields
//! with content no guard reads, fields nobody knows. Each is refused or dropped here, before
//! the guards and before the call, so that "every prompt was checked" stays true.

use aegis_contracts::{
    ANSWER_METADATA_FIELDS, ChatRequest, Content, ContentPart, Error, ErrorKind, Extra,
    MESSAGE_TEXT_FIELDS, Modality, Stage, THINKING_BLOCKS_FIELD,
};
use serde_json::Value;

use crate::{
    config::{AdmissionConfig, Admit, UnknownFields},
    guard::GuardChain,
};

/// Request fields that carry no content, forwarded to every provider: OpenAI's sampling
/// and control knobs, and the vendor switches the Anthropic, Bedrock and Gemini adapters
/// read.
const KNOWN_REQUEST_FIELDS: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_completion_tokens",
    "n",
    "stream_options",
    "parallel_tool_calls",
    "user",
    "service_tier",
    "store",
    "metadata",
    "modalities",
    "audio",
    "reasoning_effort",
    "verbosity",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "thinking",
    "top_k",
    "context_management",
    "reasoning_config",
    "additional_model_request_fields",
    "guardrail_config",
    "performance_config",
    "request_metadata",
    "thinkingConfig",
    "thinking_config",
    "safety_settings",
    "safetySettings",
];

/// Request fields that carry content no guard reads: refused.
const CONTENT_FIELDS: &[&str] = &[
    "prediction",
    "documents",
    "functions",
    "system",
    "systemInstruction",
    "system_instruction",
    "contents",
    "input",
    "prompt",
    "instructions",
];

/// Request fields a provider resolves with the gateway's credentials.
const REFERENCE_FIELDS: &[&str] = &[
    "mcp_servers",
    "container",
    "cached_content",
    "cachedContent",
    "file_ids",
    "attachments",
    "tool_resources",
    "vector_store_ids",
];

/// Message fields the adapters read besides the judged texts.
const KNOWN_MESSAGE_FIELDS: &[&str] = &["cache_control", "is_error", "gemini_parts", "annotations"];

/// The admission rules of one pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    config: AdmissionConfig,
    /// Whether the pipeline judges input at all (no input guard: nothing to refuse media for).
    judges_input: bool,
    /// Modalities some input guard declares.
    judged: Vec<Modality>,
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig, chain: &GuardChain) -> Self {
        let input: Vec<_> = chain
            .entries()
            .iter()
            .map(|e| e.capabilities())
            .filter(|c| c.applies_to(Stage::Input))
            .collect();
        let judged = [Modality::Image, Modality::Audio, Modality::File]
            .into_iter()
            .filter(|m| input.iter().any(|c| c.judges(*m)))
            .collect();
        Self {
            config,
            judges_input: !input.is_empty(),
            judged,
        }
    }

    /// Refuses content no guard can judge and references to the gateway's own resources,
    /// naming the field.
    pub(crate) fn check(&self, req: &ChatRequest) -> Result<(), Error> {
        for k in req.extra.keys() {
            if CONTENT_FIELDS.contains(&k.as_str()) {
                return Err(unjudged(format!(
                    "`{k}` carries content the guards do not judge; send it as messages"
                )));
            }
            if REFERENCE_FIELDS.contains(&k.as_str()) {
                self.reference(&format!("`{k}`"))?;
            }
        }
        for (i, m) in req.messages.iter().enumerate() {
            if let Some(Content::Parts(parts)) = &m.content {
                for (j, part) in parts.iter().enumerate() {
                    self.part(part, &format!("messages[{i}].content[{j}]"))?;
                }
            }
            if m.extra.get("audio").is_some_and(|a| a.get("id").is_some()) {
                self.reference(&format!("messages[{i}].audio.id"))?;
            }
            for field in MESSAGE_TEXT_FIELDS {
                if m.extra
                    .get(*field)
                    .is_some_and(|v| !v.is_string() && !v.is_null())
                {
                    return Err(unjudged(format!("messages[{i}].{field} must be text")));
                }
            }
            if let Some(blocks) = m.extra.get(THINKING_BLOCKS_FIELD) {
                thinking_blocks(blocks, i)?;
            }
            if let Some(parts) = m.extra.get("gemini_parts") {
                self.gemini_parts(parts, m, i)?;
            }
        }
        // Audio answers (`modalities: ["audio"]`) come back as audio no guard reads.
        let audio_out = req.extra.get("audio").is_some()
            || req
                .extra
                .get("modalities")
                .and_then(Value::as_array)
                .is_some_and(|m| m.iter().any(|x| x == "audio"));
        if audio_out {
            self.media(Modality::Audio, "`modalities` / `audio` (an audio answer)")?;
        }
        Ok(())
    }

    /// Gemini's replayed parts: text (judged), thoughts and their signatures, and function
    /// calls that repeat one of the message's (judged) tool calls; media and file references
    /// as for content parts; anything else — function responses, code — carries content no
    /// guard reads.
    fn gemini_parts(
        &self,
        parts: &Value,
        m: &aegis_contracts::Message,
        i: usize,
    ) -> Result<(), Error> {
        let Value::Array(parts) = parts else {
            return Err(unjudged(format!(
                "messages[{i}].gemini_parts must be a list"
            )));
        };
        for (j, p) in parts.iter().enumerate() {
            let path = format!("messages[{i}].gemini_parts[{j}]");
            let Value::Object(part) = p else {
                return Err(unjudged(format!("{path} must be an object")));
            };
            for (k, v) in part {
                match k.as_str() {
                    "text" if v.is_string() => {}
                    "thought" | "thoughtSignature" | "thought_signature" => {}
                    "fileData" | "file_data" => self.reference(&format!("{path}.fileData"))?,
                    "inlineData" | "inline_data" => self.media(Modality::File, &path)?,
                    "functionCall" | "function_call" => {
                        let repeats = m.tool_calls.iter().any(|c| {
                            v.get("name").and_then(Value::as_str) == Some(c.function.name.as_str())
                                && c.arguments_json().ok().as_ref()
                                    == Some(v.get("args").unwrap_or(&Value::Null))
                        });
                        if !repeats {
                            return Err(unjudged(format!(
                                "{path}.functionCall does not repeat one of the message's tool calls"
                            )));
                        }
                    }
                    other => {
                        return Err(unjudged(format!(
                            "{path}.{other} carries content the guards do not judge"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn part(&self, part: &ContentPart, path: &str) -> Result<(), Error> {
        match part {
            ContentPart::Text { .. } => Ok(()),
            ContentPart::ImageUrl { image_url } => {
                let url = image_url
                    .get("url")
                    .and_then(Value::as_str)
                    .or_else(|| image_url.as_str())
                    .unwrap_or_default();
                let lower = url.trim_start().to_ascii_lowercase();
                if !["http://", "https://", "data:"]
                    .iter()
                    .any(|s| lower.starts_with(s))
                {
                    self.reference(&format!("{path}.image_url (`{}`)", scheme_of(&lower)))?;
                }
                // A Gemini Files API link is fetched with the gateway's key and project.
                if lower.contains("generativelanguage.googleapis.com") && lower.contains("/files/")
                {
                    self.reference(&format!("{path}.image_url (a Gemini file)"))?;
                }
                self.media(Modality::Image, path)
            }
            ContentPart::InputAudio { .. } => self.media(Modality::Audio, path),
            ContentPart::File { file } => {
                if file.get("file_id").is_some() {
                    self.reference(&format!("{path}.file.file_id"))?;
                }
                self.media(Modality::File, path)
            }
        }
    }

    fn media(&self, modality: Modality, path: &str) -> Result<(), Error> {
        if self.config.media == Admit::Allow
            || !self.judges_input
            || self.judged.contains(&modality)
        {
            return Ok(());
        }
        Err(refusal(
            "unjudged_media",
            format!(
                "{path} is {modality} content and no input guard of this pipeline judges {modality}; \
                 send text, or configure a guard that judges it"
            ),
        ))
    }

    fn reference(&self, what: &str) -> Result<(), Error> {
        if self.config.provider_references == Admit::Allow {
            return Ok(());
        }
        Err(refusal(
            "provider_reference",
            format!(
                "{what} refers to something the provider would fetch with the gateway's own \
                 credentials; refused (`[pipeline.admission] provider_references`)"
            ),
        ))
    }

    /// Drops the fields of `req` (and of its messages) that are not known to carry no
    /// content, unless the pipeline forwards them to `provider`.
    pub(crate) fn strip(&self, req: &mut ChatRequest, provider: &str) {
        // Per-request options are Aegis's own, whatever is forwarded.
        req.extra.remove(aegis_contracts::OPTIONS_FIELD);
        if self.config.unknown_fields == UnknownFields::Forward {
            return;
        }
        let forwarded = |k: &str| {
            ["*", provider].iter().any(|p| {
                self.config
                    .forward_fields
                    .get(*p)
                    .is_some_and(|l| l.iter().any(|f| f == k))
            })
        };
        let keep_request = |k: &str| {
            KNOWN_REQUEST_FIELDS.contains(&k) || REFERENCE_FIELDS.contains(&k) || forwarded(k)
        };
        retain(&mut req.extra, keep_request);
        for m in &mut req.messages {
            retain(&mut m.extra, |k| {
                MESSAGE_TEXT_FIELDS.contains(&k)
                    || k == THINKING_BLOCKS_FIELD
                    || KNOWN_MESSAGE_FIELDS.contains(&k)
                    || k == "audio"
                    || forwarded(k)
            });
        }
    }
}

/// Anthropic thinking blocks: `thinking` (its text judged, its signature kept) and
/// `redacted_thinking` (encrypted by the provider); any other block or key is refused.
fn thinking_blocks(blocks: &Value, i: usize) -> Result<(), Error> {
    let Value::Array(blocks) = blocks else {
        return Err(unjudged(format!(
            "messages[{i}].thinking_blocks must be a list"
        )));
    };
    for (j, b) in blocks.iter().enumerate() {
        let allowed: &[&str] = match b.get("type").and_then(Value::as_str) {
            Some("thinking") if b.get("thinking").is_some_and(Value::is_string) => {
                &["type", "thinking", "signature"]
            }
            Some("redacted_thinking") => &["type", "data"],
            _ => {
                return Err(unjudged(format!(
                    "messages[{i}].thinking_blocks[{j}] is not a thinking block"
                )));
            }
        };
        if let Some(Value::Object(o)) = Some(b)
            && let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str()))
        {
            return Err(unjudged(format!(
                "messages[{i}].thinking_blocks[{j}].{k} carries content the guards do not judge"
            )));
        }
    }
    Ok(())
}

fn unjudged(message: String) -> Error {
    refusal("unjudged_content", message)
}

impl Admission {
    /// Drops the fields of an answer's messages that no guard judged — an audio transcript,
    /// annotations, vendor fields — unless the pipeline forwards unknown fields (or, for
    /// `audio`, allows media). Gemini's replay parts are kept only beside no tool call: their
    /// function-call arguments would repeat the calls unjudged.
    pub(crate) fn strip_answer(&self, completion: &mut aegis_contracts::Completion) {
        if self.config.unknown_fields == UnknownFields::Forward {
            return;
        }
        let media = self.config.media == Admit::Allow;
        retain(&mut completion.extra, |k| {
            ANSWER_METADATA_FIELDS.contains(&k)
        });
        for choice in &mut completion.choices {
            let calls = !choice.message.tool_calls.is_empty();
            retain(&mut choice.message.extra, |k| {
                MESSAGE_TEXT_FIELDS.contains(&k)
                    || k == THINKING_BLOCKS_FIELD
                    || (k == "gemini_parts" && !calls)
                    || (k == "audio" && media)
            });
        }
    }
}

fn retain(extra: &mut Extra, keep: impl Fn(&str) -> bool) {
    extra.retain(|k, _| keep(k));
}

fn scheme_of(url: &str) -> &str {
    url.split_once(':').map_or(url, |(s, _)| s)
}

fn refusal(code: &'static str, message: String) -> Error {
    Error::new(ErrorKind::PolicyBlocked, message).with_code(code)
}
