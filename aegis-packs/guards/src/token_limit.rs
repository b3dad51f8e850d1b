//! [`TokenLimit`] (feature `tiktoken`): refuse subjects longer than a token budget.

use aegis_contracts::{
    Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail, RequestContext, Stage,
    Verdict,
};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tiktoken_rs::CoreBPE;

use crate::util;

const DETECTOR: &str = "token_limit";

/// A tiktoken BPE encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, GPT-5, o-series (default).
    #[default]
    O200kBase,
    /// gpt-oss models.
    O200kHarmony,
    /// GPT-4, GPT-3.5, text-embedding-ada-002.
    Cl100kBase,
    /// Codex, text-davinci-002/003.
    P50kBase,
    /// GPT-3 (`gpt2`).
    R50kBase,
}

impl Encoding {
    fn bpe(self) -> &'static CoreBPE {
        // The singletons load their (embedded) vocabulary on first use, once per process.
        match self {
            Self::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Self::O200kHarmony => tiktoken_rs::o200k_harmony_singleton(),
            Self::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
            Self::P50kBase => tiktoken_rs::p50k_base_singleton(),
            Self::R50kBase => tiktoken_rs::r50k_base_singleton(),
        }
    }
}

/// Configuration of [`TokenLimit`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenLimitConfig {
    /// Most tokens allowed (required, at least 1).
    pub limit: usize,
    /// The encoding (default `o200k_base`).
    #[serde(default)]
    pub encoding: Encoding,
    /// Apply the limit to each segment separately instead of to their sum (default `false`).
    #[serde(default)]
    pub per_segment: bool,
    /// Stages the guard applies to (default: all).
    #[serde(default = "util::all_stages")]
    pub stages: Vec<Stage>,
}

impl TokenLimitConfig {
    /// A limit of `limit` tokens with the defaults.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            encoding: Encoding::default(),
            per_segment: false,
            stages: util::all_stages(),
        }
    }
}

/// Blocks a subject whose text is longer than `limit` tokens (special-token markers count
/// as ordinary text). A text of at most `limit` bytes is allowed without tokenizing (a
/// token is at least one byte), and the vocabulary loads lazily on the first longer text.
/// Needs the whole text: [`Granularity::FullText`].
pub struct TokenLimit {
    config: TokenLimitConfig,
}

impl std::fmt::Debug for TokenLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLimit")
            .field("config", &self.config)
            .finish()
    }
}

impl TokenLimit {
    /// Builds the guard; a [`Config`](aegis_contracts::ErrorKind::Config) error for a zero limit.
    pub fn new(config: TokenLimitConfig) -> Result<Self, Error> {
        util::check_stages("token_limit", &config.stages)?;
        if config.limit == 0 {
            return Err(Error::config("token_limit: `limit` must be at least 1"));
        }
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &TokenLimitConfig {
        &self.config
    }

    /// The number of tokens of `text` in the configured encoding.
    pub fn count(&self, text: &str) -> usize {
        self.config.encoding.bpe().count_ordinary(text)
    }

    fn over(&self, count: usize) -> Verdict {
        Verdict::block(
            format!("text is {count} tokens; the limit is {}", self.config.limit),
            "token_limit",
        )
        .with_finding(Finding::new("token_limit_exceeded", None, 1.0, DETECTOR))
    }
}

#[async_trait]
impl Guardrail for TokenLimit {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(self.config.stages.clone(), Granularity::FullText).raw_text()
    }

    async fn check(&self, subject: &GuardSubject, _ctx: &RequestContext) -> Result<Verdict, Error> {
        let segments = subject.segments();
        let limit = self.config.limit;
        if self.config.per_segment {
            for seg in &segments {
                if seg.text.len() > limit {
                    let n = self.count(seg.text);
                    if n > limit {
                        return Ok(self.over(n));
                    }
                }
            }
            return Ok(Verdict::allow());
        }
        if segments.iter().map(|s| s.text.len()).sum::<usize>() <= limit {
            return Ok(Verdict::allow());
        }
        let n: usize = segments.iter().map(|s| self.count(s.text)).sum();
        Ok(if n > limit {
            self.over(n)
        } else {
            Verdict::allow()
        })
    }
}
