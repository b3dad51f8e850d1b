//! Presets of the OpenAI-compatible provider: the base URL, auth header and wire quirks of
//! well-known OpenAI-compatible services. A preset only fills defaults of
//! [`OpenAiConfig`](crate::OpenAiConfig) / [`OpenAiCompatibleBuilder`](crate::OpenAiCompatibleBuilder);
//! every request still goes through the one OpenAI-compatible code path.
//!
//! ```
//! use aegis_providers::{OpenAiConfig, Preset};
//! let cfg: OpenAiConfig = serde_json::from_value(serde_json::json!({
//!     "preset": "groq",
//!     "api_key": "gsk-test"
//! })).unwrap();
//! assert_eq!(cfg.preset, Some(Preset::Groq));
//! assert_eq!(Preset::Groq.base_url(), Some("https://api.groq.com/openai/v1"));
//! assert_eq!(Preset::Mistral.quirks().seed_field, "random_seed");
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A well-known OpenAI-compatible service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Preset {
    /// OpenAI (`https://api.openai.com/v1`); sends `max_completion_tokens`, which every
    /// current OpenAI model accepts and reasoning models require.
    #[serde(rename = "openai")]
    OpenAi,
    /// A LiteLLM proxy (`http://localhost:4000/v1` by default); the key is the proxy's
    /// virtual or master key, optional.
    #[serde(rename = "litellm")]
    LiteLlm,
    /// A vLLM server (`http://localhost:8000/v1`); a key only if started with `--api-key`.
    #[serde(rename = "vllm")]
    Vllm,
    /// Ollama's OpenAI-compatible API (`http://localhost:11434/v1`); no key.
    Ollama,
    /// Groq (`https://api.groq.com/openai/v1`); streamed usage may arrive under `x_groq`.
    Groq,
    /// Mistral La Plateforme (`https://api.mistral.ai/v1`): `random_seed` instead of `seed`,
    /// and no `stream_options` (usage comes on the last chunk anyway).
    Mistral,
    /// DeepSeek (`https://api.deepseek.com/v1`): `reasoning_content` must not be sent back
    /// in the conversation, so it is dropped from request messages.
    #[serde(rename = "deepseek")]
    DeepSeek,
    /// OpenRouter (`https://openrouter.ai/api/v1`); its `: OPENROUTER PROCESSING` keep-alive
    /// comments are ignored by the SSE parser.
    #[serde(rename = "openrouter")]
    OpenRouter,
    /// Together AI (`https://api.together.xyz/v1`).
    Together,
    /// Fireworks AI (`https://api.fireworks.ai/inference/v1`).
    Fireworks,
    /// Azure OpenAI's v1 API (`https://RESOURCE.openai.azure.com/openai/v1`, no default:
    /// set `base_url`), authenticated with the `api-key` header. For deployment URLs and
    /// `api-version`, use [`AzureOpenAi`](crate::AzureOpenAi).
    AzureV1,
}

/// How the API key is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStyle {
    /// `Authorization: Bearer KEY`.
    Bearer,
    /// `NAME: KEY` (e.g. Azure's `api-key`).
    Header(&'static str),
}

/// Differences from the OpenAI wire format that the generic provider smooths over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quirks {
    /// Whether the server accepts `stream_options: {"include_usage": true}` (sent on
    /// streamed requests so the last chunk carries usage).
    pub stream_usage_option: bool,
    /// The body field that carries [`ChatRequest::max_tokens`](aegis_contracts::ChatRequest::max_tokens).
    pub max_tokens_field: &'static str,
    /// The body field that carries [`ChatRequest::seed`](aegis_contracts::ChatRequest::seed).
    pub seed_field: &'static str,
    /// Message fields (from [`Message::extra`](aegis_contracts::Message::extra)) the server
    /// refuses in requests; dropped before sending.
    pub strip_message_fields: &'static [&'static str],
}

impl Quirks {
    /// Plain OpenAI-compatible behaviour: nothing renamed, nothing dropped.
    pub const NONE: Quirks = Quirks {
        stream_usage_option: true,
        max_tokens_field: "max_tokens",
        seed_field: "seed",
        strip_message_fields: &[],
    };

    /// Whether any body rewriting is needed at all (the fast path skips it).
    pub(crate) fn rewrites(&self) -> bool {
        self.max_tokens_field != "max_tokens"
            || self.seed_field != "seed"
            || !self.strip_message_fields.is_empty()
    }
}

impl Default for Quirks {
    fn default() -> Self {
        Self::NONE
    }
}

impl Preset {
    /// Every preset, for documentation and tests.
    pub const ALL: [Preset; 11] = [
        Preset::OpenAi,
        Preset::LiteLlm,
        Preset::Vllm,
        Preset::Ollama,
        Preset::Groq,
        Preset::Mistral,
        Preset::DeepSeek,
        Preset::OpenRouter,
        Preset::Together,
        Preset::Fireworks,
        Preset::AzureV1,
    ];

    /// The config name (`"groq"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::LiteLlm => "litellm",
            Self::Vllm => "vllm",
            Self::Ollama => "ollama",
            Self::Groq => "groq",
            Self::Mistral => "mistral",
            Self::DeepSeek => "deepseek",
            Self::OpenRouter => "openrouter",
            Self::Together => "together",
            Self::Fireworks => "fireworks",
            Self::AzureV1 => "azure_v1",
        }
    }

    /// The default base URL, when the service has one.
    pub fn base_url(self) -> Option<&'static str> {
        Some(match self {
            Self::OpenAi => "https://api.openai.com/v1",
            Self::LiteLlm => "http://localhost:4000/v1",
            Self::Vllm => "http://localhost:8000/v1",
            Self::Ollama => "http://localhost:11434/v1",
            Self::Groq => "https://api.groq.com/openai/v1",
            Self::Mistral => "https://api.mistral.ai/v1",
            Self::DeepSeek => "https://api.deepseek.com/v1",
            Self::OpenRouter => "https://openrouter.ai/api/v1",
            Self::Together => "https://api.together.xyz/v1",
            Self::Fireworks => "https://api.fireworks.ai/inference/v1",
            Self::AzureV1 => return None,
        })
    }

    /// How the API key is sent.
    pub fn auth(self) -> AuthStyle {
        match self {
            Self::AzureV1 => AuthStyle::Header("api-key"),
            _ => AuthStyle::Bearer,
        }
    }

    /// Whether the hosted service always needs a key (building without one is a config
    /// error, caught before the first request).
    pub fn requires_api_key(self) -> bool {
        !matches!(self, Self::LiteLlm | Self::Vllm | Self::Ollama)
    }

    /// The wire quirks of the service.
    pub fn quirks(self) -> Quirks {
        match self {
            Self::OpenAi => Quirks {
                max_tokens_field: "max_completion_tokens",
                ..Quirks::NONE
            },
            Self::Mistral => Quirks {
                stream_usage_option: false,
                seed_field: "random_seed",
                ..Quirks::NONE
            },
            Self::DeepSeek => Quirks {
                strip_message_fields: &["reasoning_content"],
                ..Quirks::NONE
            },
            _ => Quirks::NONE,
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_round_trips_through_its_config_name() {
        for p in Preset::ALL {
            let v = serde_json::to_value(p).unwrap_or_default();
            assert_eq!(v, p.as_str(), "{p:?}");
            let back: Preset = serde_json::from_value(v).unwrap_or(Preset::AzureV1);
            assert_eq!(back, p);
        }
    }

    #[test]
    fn hosted_presets_have_https_urls_and_local_ones_need_no_key() {
        for p in Preset::ALL {
            if let Some(url) = p.base_url() {
                assert!(url.starts_with("http"), "{p}");
                if p.requires_api_key() {
                    assert!(url.starts_with("https://"), "{p}");
                }
            }
        }
        assert!(!Preset::Ollama.requires_api_key());
        assert!(Preset::Groq.requires_api_key());
    }
}
