//! What model calls cost: a per-model price table and the cost of a call's usage.
//!
//! Prices are in US dollars per million tokens; costs are in millionths of a dollar
//! (micro-dollars), rounded up, so sums of many calls stay exact integers.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Usage};

/// A model's price, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Price {
    /// Per million input tokens.
    pub input_per_mtok: f64,
    /// Per million output tokens.
    pub output_per_mtok: f64,
    /// Per million input tokens read from the provider's prompt cache (default: the input
    /// price — never cheaper than it may be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok: Option<f64>,
    /// Per million input tokens written to the provider's prompt cache (default: the
    /// input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
}

impl Price {
    /// `input` and `output` dollars per million tokens.
    pub fn new(input_per_mtok: f64, output_per_mtok: f64) -> Self {
        Self {
            input_per_mtok,
            output_per_mtok,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        }
    }

    /// With a price for input tokens read from the prompt cache.
    pub fn with_cached_input(mut self, per_mtok: f64) -> Self {
        self.cached_input_per_mtok = Some(per_mtok);
        self
    }

    /// Micro-dollars of `input` and `output` plain tokens, rounded up.
    pub fn cost_micros(&self, input: u64, output: u64) -> u64 {
        micros(self.input_per_mtok * input as f64 + self.output_per_mtok * output as f64)
    }

    /// Micro-dollars of a call's `usage`: cache reads and writes at their own prices, the
    /// rest of the input and all of the output (reasoning included) at the plain ones.
    pub fn usage_cost_micros(&self, usage: &Usage) -> u64 {
        let read = usage.cache_read_tokens.min(usage.input_tokens);
        let write = usage
            .cache_write_tokens
            .min(usage.input_tokens.saturating_sub(read));
        let plain = usage.input_tokens - read - write;
        micros(
            self.input_per_mtok * plain as f64
                + self.cached_input_per_mtok.unwrap_or(self.input_per_mtok) * read as f64
                + self.cache_write_per_mtok.unwrap_or(self.input_per_mtok) * write as f64
                + self.output_per_mtok * usage.output_tokens as f64,
        )
    }

    /// The problems of this price, each prefixed with `path` (a negative, non-finite or
    /// absurd number).
    pub fn problems(&self, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (unit, v) in [
            ("input_per_mtok", Some(self.input_per_mtok)),
            ("output_per_mtok", Some(self.output_per_mtok)),
            ("cached_input_per_mtok", self.cached_input_per_mtok),
            ("cache_write_per_mtok", self.cache_write_per_mtok),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && (0.0..=MAX_PRICE).contains(&v))
            {
                out.push(format!(
                    "{path}.{unit}: {v} is not a price (0 to {MAX_PRICE} dollars per million tokens)"
                ));
            }
        }
        out
    }
}

/// The most a price may be, in dollars per million tokens.
pub const MAX_PRICE: f64 = 1e6;

/// Dollars per million tokens × tokens = micro-dollars; rounded up, saturating.
fn micros(usd_per_mtok_times_tokens: f64) -> u64 {
    usd_per_mtok_times_tokens.ceil().clamp(0.0, u64::MAX as f64) as u64
}

/// The date the shipped price table was last reviewed.
pub const DEFAULT_PRICES_REVIEWED: &str = "2025-07-01";

/// A price per model, with the shipped table underneath ([`PriceTable::shipped`]) and an
/// optional price for models in neither.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, Price>,
    unknown: Option<Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::shipped()
    }
}

impl PriceTable {
    /// The shipped table: vendors' list prices, US dollars per million tokens, as reviewed
    /// on [`DEFAULT_PRICES_REVIEWED`]. Prices change: configure the models you use.
    pub fn shipped() -> Self {
        let prices = [
            ("gpt-4o", 2.5, 10.0, Some(1.25)),
            ("gpt-4o-mini", 0.15, 0.6, Some(0.075)),
            ("gpt-4.1", 2.0, 8.0, Some(0.5)),
            ("gpt-4.1-mini", 0.4, 1.6, Some(0.1)),
            ("gpt-4.1-nano", 0.1, 0.4, Some(0.025)),
            ("o3", 2.0, 8.0, Some(0.5)),
            ("o3-mini", 1.1, 4.4, Some(0.55)),
            ("o4-mini", 1.1, 4.4, Some(0.275)),
            ("claude-3-5-sonnet-latest", 3.0, 15.0, Some(0.3)),
            ("claude-3-5-haiku-latest", 0.8, 4.0, Some(0.08)),
            ("claude-sonnet-4-0", 3.0, 15.0, Some(0.3)),
            ("claude-opus-4-0", 15.0, 75.0, Some(1.5)),
            ("gemini-1.5-pro", 1.25, 5.0, None),
            ("gemini-1.5-flash", 0.075, 0.3, None),
            ("gemini-2.5-pro", 1.25, 10.0, Some(0.31)),
            ("gemini-2.5-flash", 0.3, 2.5, Some(0.075)),
            ("text-embedding-3-small", 0.02, 0.0, None),
            ("text-embedding-3-large", 0.13, 0.0, None),
        ]
        .into_iter()
        .map(|(m, i, o, cached)| {
            let mut p = Price::new(i, o);
            p.cached_input_per_mtok = cached;
            // Anthropic bills prompt-cache writes at 1.25 times the input price.
            if m.starts_with("claude-") {
                p.cache_write_per_mtok = Some(i * 1.25);
            }
            (m.to_owned(), p)
        })
        .collect();
        Self {
            prices,
            unknown: None,
        }
    }

    /// No prices at all.
    pub fn empty() -> Self {
        Self {
            prices: BTreeMap::new(),
            unknown: None,
        }
    }

    /// This table with `prices` over it and `unknown` for models in neither. An invalid
    /// price is a config error naming the model under `path` (the config table holding
    /// `prices`; empty at the top of a plugin's config).
    pub fn with(
        mut self,
        path: &str,
        prices: &BTreeMap<String, Price>,
        unknown: Option<Price>,
    ) -> Result<Self, Error> {
        let at = |key: String| {
            if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            }
        };
        let mut problems = Vec::new();
        for (m, p) in prices {
            problems.extend(p.problems(&at(format!("prices.{m}"))));
            self.prices.insert(m.clone(), *p);
        }
        if let Some(p) = &unknown {
            problems.extend(p.problems(&at("unknown_model_price".into())));
            self.unknown = Some(*p);
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Error::config(problems.join("\n")))
        }
    }

    /// The price of `model`: its own entry, else that of its bare name (`openai/gpt-4o` is
    /// priced as `gpt-4o`), else the price for unknown models, else none.
    pub fn price(&self, model: &str) -> Option<Price> {
        let bare = model.rsplit('/').next().unwrap_or(model);
        self.prices
            .get(model)
            .or_else(|| self.prices.get(bare))
            .copied()
            .or(self.unknown)
    }

    /// Micro-dollars of `usage` on `model`, or `None` when the model has no price.
    pub fn cost_micros(&self, model: &str, usage: &Usage) -> Option<u64> {
        self.price(model).map(|p| p.usage_cost_micros(usage))
    }

    /// The price of a call that went to `routed` (a model, or a router's model name whose
    /// deployments serve `candidates`) and that the provider says `answered` ran: a routed
    /// model's own configured price when it is not a router's (an Azure deployment priced
    /// at its contract rate reports `gpt-4o`); else the answering model's own price; else
    /// that of the candidate (or routed model) it is a version of (`gpt-4o-2024-08-06` is
    /// priced as `gpt-4o`), the longest such; else the routed model's (with the price for
    /// unknown models).
    pub fn price_answered(
        &self,
        answered: Option<&str>,
        routed: &str,
        candidates: &[String],
    ) -> Option<Price> {
        let known = |m: &str| {
            let bare = m.rsplit('/').next().unwrap_or(m);
            self.prices
                .get(m)
                .or_else(|| self.prices.get(bare))
                .copied()
        };
        if candidates.is_empty()
            && let Some(p) = known(routed)
        {
            return Some(p);
        }
        if let Some(a) = answered {
            let bare = a.rsplit('/').next().unwrap_or(a);
            if let Some(p) = known(a) {
                return Some(p);
            }
            let version_of = candidates
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(routed))
                .map(|c| c.rsplit('/').next().unwrap_or(c))
                .filter(|c| bare.starts_with(c) && self.prices.contains_key(*c))
                .max_by_key(|c| c.len());
            if let Some(c) = version_of {
                return self.prices.get(c).copied();
            }
        }
        self.price(routed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_rounded_up_to_a_micro_dollar() {
        // 1 token at $1 per million is exactly one micro-dollar; a third of one rounds up.
        assert_eq!(Price::new(1.0, 0.0).cost_micros(1, 0), 1);
        assert_eq!(Price::new(0.3, 0.0).cost_micros(1, 0), 1);
        assert_eq!(Price::new(2.5, 10.0).cost_micros(1000, 100), 3500);
    }

    #[test]
    fn cache_reads_are_priced_apart_and_never_more_than_the_input() {
        let p = Price::new(2.0, 8.0).with_cached_input(0.5);
        let mut u = Usage {
            input_tokens: 1000,
            output_tokens: 10,
            ..Usage::default()
        };
        u.cache_read_tokens = 800;
        // 200 × 2 + 800 × 0.5 + 10 × 8.
        assert_eq!(p.usage_cost_micros(&u), 880);
        // An upstream reporting more cached than input tokens is clamped.
        u.cache_read_tokens = 5000;
        assert_eq!(p.usage_cost_micros(&u), 580);
    }

    #[test]
    fn a_model_is_priced_by_its_bare_name_and_unknown_models_are_unpriced() {
        let t = PriceTable::shipped();
        assert_eq!(t.price("openai/gpt-4o"), t.price("gpt-4o"));
        assert!(t.price("no-such-model").is_none());
        let t = t
            .with("pricing", &BTreeMap::new(), Some(Price::new(1.0, 1.0)))
            .expect("valid");
        assert_eq!(t.price("no-such-model"), Some(Price::new(1.0, 1.0)));
    }

    #[test]
    fn invalid_prices_are_config_errors_with_their_path() {
        let bad = BTreeMap::from([("m".to_owned(), Price::new(-1.0, f64::NAN))]);
        let err = PriceTable::shipped()
            .with("pricing", &bad, None)
            .expect_err("invalid");
        assert!(
            err.message().contains("pricing.prices.m.input_per_mtok"),
            "{err}"
        );
        assert!(
            err.message().contains("pricing.prices.m.output_per_mtok"),
            "{err}"
        );
    }
}
