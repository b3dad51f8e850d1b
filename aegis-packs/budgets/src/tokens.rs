//! Counting a request's input tokens before the call, with the model's real tokenizer.
//!
//! A reservation must not be smaller than what the call can cost (or concurrent requests
//! overspend) and should not be much larger (or a caller near the limit gets a false 429).
//! A bytes-per-token guess fails both ways: three bytes per token over-reserves English by
//! a third and under-reserves symbol-heavy text, which byte-level BPE encodes at one token
//! per byte, threefold. So text is counted with the tokenizer the model uses where it is
//! public (OpenAI's `o200k_base` and `cl100k_base`), and with `o200k_base` times a margin
//! for models whose tokenizer is not (Anthropic, Google, most others).

use aegis_contracts::{ChatRequest, Content, ContentPart, Message};
use schemars::JsonSchema;
use serde::Deserialize;

/// Which tokenizer counts a request's input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerChoice {
    /// By model name: `o200k_base` for OpenAI's GPT-4o, GPT-4.1, GPT-5 and o-series
    /// models, `cl100k_base` for GPT-4, GPT-3.5 and the text-embedding-3 models, and
    /// `o200k_base` times `estimate_margin` for every other model.
    #[default]
    Auto,
    /// OpenAI's `o200k_base`, exact for every model (no margin).
    O200kBase,
    /// OpenAI's `cl100k_base`, exact for every model (no margin).
    Cl100kBase,
    /// One token per byte: the most a byte-level BPE tokenizer can produce, so never an
    /// under-count, whatever the model.
    Bytes,
}

/// The input tokens one image is counted as (the largest images of current vision models
/// cost up to about 1,600 tokens; the data URL's bytes say nothing about it).
pub const IMAGE_TOKENS: u64 = 2_000;

/// Tokens added per message for the chat template (role markers, separators).
const MESSAGE_OVERHEAD: u64 = 4;

/// Counts requests' input tokens for one budgets policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counter {
    choice: TokenizerChoice,
    /// Multiplies estimates for models whose tokenizer is not public (`Auto` only).
    margin: f64,
}

enum Encoding {
    Exact(&'static bpe_openai::Tokenizer),
    Estimate(&'static bpe_openai::Tokenizer, f64),
    Bytes,
}

impl Counter {
    pub(crate) fn new(choice: TokenizerChoice, margin: f64) -> Self {
        // The tables load once per process (about 0.1 s each): at start-up, not on the
        // first budgeted request.
        match choice {
            TokenizerChoice::Auto => {
                bpe_openai::o200k_base();
                bpe_openai::cl100k_base();
            }
            TokenizerChoice::O200kBase => {
                bpe_openai::o200k_base();
            }
            TokenizerChoice::Cl100kBase => {
                bpe_openai::cl100k_base();
            }
            TokenizerChoice::Bytes => {}
        }
        Self { choice, margin }
    }

    /// One token per byte (never an under-count).
    pub(crate) fn bytes() -> Self {
        Self::new(TokenizerChoice::Bytes, 1.0)
    }

    fn encoding(&self, model: &str) -> Encoding {
        match self.choice {
            TokenizerChoice::O200kBase => Encoding::Exact(bpe_openai::o200k_base()),
            TokenizerChoice::Cl100kBase => Encoding::Exact(bpe_openai::cl100k_base()),
            TokenizerChoice::Bytes => Encoding::Bytes,
            TokenizerChoice::Auto => {
                // `openai/gpt-4o` and `gpt-4o` are the same model.
                let bare = model.rsplit('/').next().unwrap_or(model);
                if [
                    "gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-",
                ]
                .iter()
                .any(|p| bare.starts_with(p))
                {
                    Encoding::Exact(bpe_openai::o200k_base())
                } else if ["gpt-4", "gpt-3.5", "text-embedding-"]
                    .iter()
                    .any(|p| bare.starts_with(p))
                {
                    Encoding::Exact(bpe_openai::cl100k_base())
                } else {
                    Encoding::Estimate(bpe_openai::o200k_base(), self.margin)
                }
            }
        }
    }

    /// Which count `model` gets: two models with the same key get the same count.
    pub(crate) fn key(&self, model: &str) -> &'static str {
        match self.encoding(model) {
            Encoding::Exact(t) if std::ptr::eq(t, bpe_openai::cl100k_base()) => "cl100k_base",
            Encoding::Exact(_) => "o200k_base",
            Encoding::Estimate(..) => "o200k_base estimate",
            Encoding::Bytes => "bytes",
        }
    }

    /// The input tokens of `request` sent to `model`: every message's text and tool calls,
    /// every tool definition, images at [`IMAGE_TOKENS`] each, other media by their size.
    pub(crate) fn request(&self, request: &ChatRequest, model: &str) -> u64 {
        let enc = self.encoding(model);
        let mut total = 0u64;
        for m in &request.messages {
            total = total.saturating_add(message(&enc, m));
        }
        for tool in &request.tools {
            total = total.saturating_add(json(&enc, tool));
        }
        total
    }
}

/// The bytes of text in `request`'s messages (what counting spends its time on).
pub(crate) fn text_bytes(request: &ChatRequest) -> usize {
    let mut n = 0usize;
    for m in &request.messages {
        n += match &m.content {
            Some(Content::Text(t)) => t.len(),
            Some(Content::Parts(parts)) => {
                parts.iter().map(|p| p.as_text().map_or(0, str::len)).sum()
            }
            None => 0,
        };
        n += m
            .tool_calls
            .iter()
            .map(|c| c.function.arguments.len())
            .sum::<usize>();
    }
    n
}

fn message(enc: &Encoding, m: &Message) -> u64 {
    let mut n = MESSAGE_OVERHEAD;
    match &m.content {
        Some(Content::Text(t)) => n = n.saturating_add(text(enc, t)),
        Some(Content::Parts(parts)) => {
            for p in parts {
                let part = match p {
                    ContentPart::Text { text: t } => text(enc, t),
                    ContentPart::ImageUrl { .. } => IMAGE_TOKENS,
                    // Audio and files: what their encoded size could be, at most.
                    other => json(&Encoding::Bytes, other),
                };
                n = n.saturating_add(part);
            }
        }
        None => {}
    }
    for call in &m.tool_calls {
        n = n.saturating_add(json(enc, call));
    }
    if let Some(name) = &m.name {
        n = n.saturating_add(text(enc, name));
    }
    if !m.extra.is_empty() {
        // Fields a provider may forward (a refusal, an assistant's audio reference).
        n = n.saturating_add(json(enc, &m.extra));
    }
    n
}

fn json<T: serde::Serialize>(enc: &Encoding, v: &T) -> u64 {
    text(enc, &serde_json::to_string(v).unwrap_or_default())
}

fn text(enc: &Encoding, t: &str) -> u64 {
    match enc {
        Encoding::Exact(tk) => tk.count(t) as u64,
        Encoding::Estimate(tk, margin) => (tk.count(t) as f64 * margin).ceil() as u64,
        Encoding::Bytes => t.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(t: &str) -> ChatRequest {
        serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": t}]
        }))
        .expect("request")
    }

    #[test]
    fn openai_models_are_counted_exactly_with_their_tokenizer() {
        let c = Counter::new(TokenizerChoice::Auto, 1.25);
        // "hello world" is two tokens in both encodings.
        assert_eq!(
            c.request(&user("hello world"), "gpt-4o"),
            2 + MESSAGE_OVERHEAD
        );
        assert_eq!(
            c.request(&user("hello world"), "gpt-4"),
            2 + MESSAGE_OVERHEAD
        );
        assert_eq!(
            c.request(&user("hello world"), "openai/gpt-4o-mini"),
            2 + MESSAGE_OVERHEAD
        );
    }

    #[test]
    fn other_models_are_estimated_with_a_margin() {
        let c = Counter::new(TokenizerChoice::Auto, 1.5);
        // 2 tokens × 1.5 = 3.
        assert_eq!(
            c.request(&user("hello world"), "claude-3-5-haiku-latest"),
            3 + MESSAGE_OVERHEAD
        );
    }

    #[test]
    fn symbol_heavy_text_is_not_under_counted() {
        // One token per byte or close: a three-bytes-per-token guess would hold a third.
        let soup: String = (0..600)
            .map(|i| char::from(b"q7Zx!@#kL9$%"[(i * 7) % 12]))
            .collect();
        let c = Counter::new(TokenizerChoice::Auto, 1.25);
        let n = c.request(&user(&soup), "gpt-4o");
        assert!(n > 400, "{n} tokens for 600 bytes of symbols");
        let bytes = Counter::new(TokenizerChoice::Bytes, 1.0);
        assert_eq!(bytes.request(&user(&soup), "any"), 600 + MESSAGE_OVERHEAD);
    }

    #[test]
    fn an_image_counts_as_a_fixed_number_of_tokens_not_its_bytes() {
        let big = format!("data:image/png;base64,{}", "A".repeat(200_000));
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": big}}
            ]}]
        }))
        .expect("request");
        let n = Counter::new(TokenizerChoice::Auto, 1.25).request(&req, "gpt-4o");
        assert_eq!(n, MESSAGE_OVERHEAD + 3 + IMAGE_TOKENS);
    }
}
