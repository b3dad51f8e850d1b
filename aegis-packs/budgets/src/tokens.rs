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

/// The input tokens one image is counted as, by default: the most a high-detail image
/// costs on current vision models (GPT-4o and GPT-4.1 tiles or patches, o4-mini, Claude,
/// Gemini stay under it) — the data URL's bytes say nothing about it.
pub const IMAGE_TOKENS: u64 = 4_000;

/// GPT-4o mini bills images at about 33 times GPT-4o's tokens (2,833 + 5,667 per tile):
/// the most an image costs there.
pub const IMAGE_TOKENS_GPT_4O_MINI: u64 = 48_200;

/// What counting a request found: tokens of its text (before any margin) and its images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Count {
    text: u64,
    images: u64,
}

/// Tokens added per message for the chat template (role markers, separators).
const MESSAGE_OVERHEAD: u64 = 4;

/// Counts requests' input tokens for one budgets policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counter {
    choice: TokenizerChoice,
    /// Multiplies estimates for models whose tokenizer is not public (`Auto` only).
    margin: f64,
    /// The tokens of one image, when configured (else by model).
    image_tokens: Option<u64>,
}

enum Encoding {
    Exact(&'static bpe_openai::Tokenizer),
    /// `o200k_base`, then a margin (applied to the total, by [`Counter::tokens`]).
    Estimate(&'static bpe_openai::Tokenizer),
    Bytes,
}

impl Counter {
    pub(crate) fn new(choice: TokenizerChoice, margin: f64, image_tokens: Option<u64>) -> Self {
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
        Self {
            choice,
            margin,
            image_tokens,
        }
    }

    /// One token per byte (never an under-count).
    pub(crate) fn bytes() -> Self {
        Self::new(TokenizerChoice::Bytes, 1.0, None)
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
                    Encoding::Estimate(bpe_openai::o200k_base())
                }
            }
        }
    }

    /// Which count `model` gets: two models with the same key get the same count.
    pub(crate) fn key(&self, model: &str) -> &'static str {
        match self.encoding(model) {
            Encoding::Exact(t) if std::ptr::eq(t, bpe_openai::cl100k_base()) => "cl100k_base",
            Encoding::Exact(_) | Encoding::Estimate(_) => "o200k_base",
            Encoding::Bytes => "bytes",
        }
    }

    /// Counts `request` as `model`'s tokenizer sees it: every message's text and tool
    /// calls, every tool definition, other media by their size; images apart. Two models
    /// with the same [`key`](Self::key) get the same count.
    pub(crate) fn count(&self, request: &ChatRequest, model: &str) -> Count {
        let enc = self.encoding(model);
        let mut c = Count::default();
        for m in &request.messages {
            let (text, images) = message(&enc, m);
            c.text = c.text.saturating_add(text);
            c.images = c.images.saturating_add(images);
        }
        for tool in &request.tools {
            c.text = c.text.saturating_add(json(&enc, tool));
        }
        c
    }

    /// The input tokens `count` is for `model`: its text (times the margin for a model
    /// whose tokenizer is not public) and its images at [`IMAGE_TOKENS`] each
    /// ([`IMAGE_TOKENS_GPT_4O_MINI`] for GPT-4o mini, or the configured `image_tokens`).
    pub(crate) fn tokens(&self, count: Count, model: &str) -> u64 {
        let text = match self.encoding(model) {
            Encoding::Estimate(_) => (count.text as f64 * self.margin).ceil() as u64,
            _ => count.text,
        };
        let bare = model.rsplit('/').next().unwrap_or(model);
        let per_image = self
            .image_tokens
            .unwrap_or(if bare.starts_with("gpt-4o-mini") {
                IMAGE_TOKENS_GPT_4O_MINI
            } else {
                IMAGE_TOKENS
            });
        text.saturating_add(count.images.saturating_mul(per_image))
    }

    /// The input tokens of `request` sent to `model`.
    #[cfg(test)]
    pub(crate) fn request(&self, request: &ChatRequest, model: &str) -> u64 {
        self.tokens(self.count(request, model), model)
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

/// The text tokens and the images of one message.
fn message(enc: &Encoding, m: &Message) -> (u64, u64) {
    let mut n = MESSAGE_OVERHEAD;
    let mut images = 0u64;
    match &m.content {
        Some(Content::Text(t)) => n = n.saturating_add(text(enc, t)),
        Some(Content::Parts(parts)) => {
            for p in parts {
                let part = match p {
                    ContentPart::Text { text: t } => text(enc, t),
                    ContentPart::ImageUrl { .. } => {
                        images += 1;
                        0
                    }
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
    (n, images)
}

fn json<T: serde::Serialize>(enc: &Encoding, v: &T) -> u64 {
    text(enc, &serde_json::to_string(v).unwrap_or_default())
}

fn text(enc: &Encoding, t: &str) -> u64 {
    match enc {
        Encoding::Exact(tk) | Encoding::Estimate(tk) => tk.count(t) as u64,
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
        let c = Counter::new(TokenizerChoice::Auto, 1.25, None);
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
        let c = Counter::new(TokenizerChoice::Auto, 1.5, None);
        // (2 tokens + the message's 4) × 1.5 = 9.
        assert_eq!(
            c.request(&user("hello world"), "claude-3-5-haiku-latest"),
            9
        );
    }

    #[test]
    fn symbol_heavy_text_is_not_under_counted() {
        // One token per byte or close: a three-bytes-per-token guess would hold a third.
        let soup: String = (0..600)
            .map(|i| char::from(b"q7Zx!@#kL9$%"[(i * 7) % 12]))
            .collect();
        let c = Counter::new(TokenizerChoice::Auto, 1.25, None);
        let n = c.request(&user(&soup), "gpt-4o");
        assert!(n > 400, "{n} tokens for 600 bytes of symbols");
        let bytes = Counter::new(TokenizerChoice::Bytes, 1.0, None);
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
        let c = Counter::new(TokenizerChoice::Auto, 1.25, None);
        assert_eq!(
            c.request(&req, "gpt-4o"),
            MESSAGE_OVERHEAD + 3 + IMAGE_TOKENS
        );
        // GPT-4o mini bills an image at many more tokens (at a lower price).
        assert_eq!(
            c.request(&req, "gpt-4o-mini"),
            MESSAGE_OVERHEAD + 3 + IMAGE_TOKENS_GPT_4O_MINI
        );
        let configured = Counter::new(TokenizerChoice::Auto, 1.25, Some(10));
        assert_eq!(
            configured.request(&req, "gpt-4o"),
            MESSAGE_OVERHEAD + 3 + 10
        );
    }
}
