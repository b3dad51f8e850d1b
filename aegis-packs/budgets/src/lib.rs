//! # aegis-budgets
//!
//! Budgets as a policy pack: limits per key, team and organisation, in US dollars and/or
//! tokens, per day, month or in total. A request spends against every level that applies.
//!
//! - **Before the call** the policy reserves the worst case — the prompt's tokens plus
//!   `max_tokens` (or the configured cap), at the model's price — against every line at once
//!   through a [`BudgetLedger`], whose `reserve` is one atomic conditional update: never
//!   check-then-increment, so concurrent requests cannot overspend. A line that cannot take
//!   it refuses the request with `429 budget_exceeded`.
//! - **When the run ends** — completed, failed, blocked, rejected or cancelled, the run-end
//!   hook runs exactly once — the reservation is settled to the real usage (also the usage
//!   recovered from a partial stream), or released when the provider was never called.
//!   Reservations carry a lease; [`BudgetLedger::reap`] gives back those of a crashed
//!   replica.
//! - **Prices** come from a per-model table in config over a shipped default table
//!   ([`PriceTable::shipped`]); a model with no price is refused (or priced by a configured
//!   default) — never free.
//!
//! ```
//! use std::sync::Arc;
//! use aegis_contracts::*;
//! use aegis_budgets::{Budgets, BudgetsConfig, MemoryLedger};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config: BudgetsConfig = serde_json::from_value(serde_json::json!({
//!     "teams": {"research": {"tokens": 1000, "period": "total"}},
//!     "prices": {"m": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
//!     "max_output_tokens": 100,
//! })).unwrap();
//! let ledger = Arc::new(MemoryLedger::new());
//! let budgets = Budgets::new(config, ledger.clone()).unwrap();
//!
//! let request = ChatRequest::new("m", vec![Message::user("hello")]);
//! let ada = Principal::new("ada").with_team("research");
//! let context = ContextView::new("run-1", Some(ada), Default::default());
//! let route = RouteView::new("p", "m");
//! let step = budgets
//!     .step(&StepInput::new(Position::BeforeCall, &request, &context).with_route(Some(&route)))
//!     .await
//!     .unwrap();
//! let held = ledger.balance("team:research", "total").await.unwrap().unwrap();
//! assert!(held.reserved.tokens > 100, "prompt + max output are held");
//! # let _ = step;
//! # });
//! ```
#![forbid(unsafe_code)]

mod memory;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub use aegis_contracts::Price;
use aegis_contracts::{
    Balance, BudgetLedger, BudgetLine, ContextView, Error, Policy, Position, PriceTable,
    Reservation, RouteView, RunSummary, Spend, Step, StepInput, Usage, async_trait,
};
use schemars::JsonSchema;
use serde::Deserialize;

pub use memory::MemoryLedger;
pub use tokens::{IMAGE_TOKENS, IMAGE_TOKENS_GPT_4O_MINI, TokenizerChoice};

mod tokens;

/// The prefix of the label a run carries once a budgets policy's reservation is held
/// (`aegis.budget.{policy id}` = the priced model), read by its run-end hook.
pub const RESERVED_LABEL: &str = "aegis.budget";

/// How long a budget runs before it starts again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    #[default]
    Month,
    /// Forever.
    Total,
}

/// One limit: dollars and/or tokens per period.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitConfig {
    /// US dollars.
    #[serde(default)]
    pub usd: Option<f64>,
    /// Tokens (input + output).
    #[serde(default)]
    pub tokens: Option<u64>,
    /// The period (default `month`).
    #[serde(default)]
    pub period: Period,
}

/// The `budgets` policy's config.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BudgetsConfig {
    /// Limits by principal (key owner) id.
    #[serde(default)]
    pub keys: BTreeMap<String, LimitConfig>,
    /// The limit of every principal without an entry in `keys`.
    #[serde(default)]
    pub default_key: Option<LimitConfig>,
    /// Limits by team.
    #[serde(default)]
    pub teams: BTreeMap<String, LimitConfig>,
    /// Limits by organisation.
    #[serde(default)]
    pub orgs: BTreeMap<String, LimitConfig>,
    /// Prices per model for this budget's charges, over the pipeline's `[pricing]` table
    /// (which prices every run record): set them here only for rates that differ from
    /// what the run costs, such as an internal chargeback rate.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// The price of a model in neither table; without it such a request is refused.
    #[serde(default)]
    pub unknown_model_price: Option<Price>,
    /// The output tokens reserved when a request sets no `max_tokens` (default 4096).
    #[serde(default = "default_max_output")]
    pub max_output_tokens: u32,
    /// The lease of a reservation, in milliseconds (default ten minutes).
    #[serde(default = "default_lease")]
    pub lease_ms: u64,
    /// How the input tokens of a request are counted before the call (default `auto`:
    /// the model's own tokenizer where it is public).
    #[serde(default)]
    pub tokenizer: TokenizerChoice,
    /// With `tokenizer = "auto"`, what an `o200k_base` count is multiplied by for a model
    /// whose tokenizer is not public (default 1.25; 1 to 4). An estimate, not a bound:
    /// `tokenizer = "bytes"` is the bound.
    #[serde(default = "default_margin")]
    pub estimate_margin: f64,
    /// The input tokens one image is held at (default: 4,000; 48,200 for GPT-4o mini,
    /// which bills images at about 33 times GPT-4o's tokens).
    #[serde(default)]
    pub image_tokens: Option<u64>,
}

fn default_margin() -> f64 {
    1.25
}

fn default_max_output() -> u32 {
    4096
}

fn default_lease() -> u64 {
    600_000
}

#[derive(Clone)]
struct Rule {
    limit: Spend,
    period: Period,
}

/// The budgets policy (see the [crate docs](crate)).
pub struct Budgets {
    keys: BTreeMap<String, Rule>,
    default_key: Option<Rule>,
    teams: BTreeMap<String, Rule>,
    orgs: BTreeMap<String, Rule>,
    prices: PriceTable,
    max_output: u32,
    lease_ms: u64,
    counter: tokens::Counter,
    ledger: Arc<dyn BudgetLedger>,
    /// The policy's id: reservations are `{id}:{run id}`, so two budgets policies on one
    /// run (say, team and org limits kept apart) each hold their own.
    id: String,
    /// The team and organisation lines, sampled as gauges while this policy lives.
    gauges: Arc<Gauges>,
    /// Whether the sampler was started (on the first step: it needs the runtime).
    sampling: std::sync::OnceLock<()>,
}

/// How often the `aegis_budget_remaining` / `aegis_budget_limit` gauges are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The lines gauged: every team and organisation with a limit in the config (never keys:
/// their accounts are principal ids, which are never metric labels).
struct Gauges {
    lines: Vec<(String, Rule)>,
    ledger: Arc<dyn BudgetLedger>,
}

impl Gauges {
    /// Sets both gauges of every line, for its current period: what the ledger holds, or the
    /// whole limit for a line nothing was charged to yet (a new day or month starts full).
    /// Labels: `account`, `period` (`day`, `month` or `total`) and `unit` (`usd`, `tokens`).
    async fn sample(&self) {
        let now = now_ms();
        for (account, rule) in &self.lines {
            let line = BudgetLine::new(account.clone(), period_key(rule.period, now))
                .with_limit(rule.limit);
            let balance = match self.ledger.balance(account, &line.period).await {
                Ok(Some(b)) => b,
                Ok(None) => Balance::new(line.limit, Spend::default(), Spend::default()),
                Err(e) => {
                    tracing::warn!(account = %account, error = %e, "cannot read a budget line for its gauge");
                    continue;
                }
            };
            let period = match rule.period {
                Period::Day => "day",
                Period::Month => "month",
                Period::Total => "total",
            };
            let (usd_left, tokens_left) = balance.remaining();
            let units = [
                (
                    "usd",
                    usd_left.map(|u| u as f64 / 1e6),
                    balance.limit.usd_micros.map(|u| u as f64 / 1e6),
                ),
                (
                    "tokens",
                    tokens_left.map(|t| t as f64),
                    balance.limit.tokens.map(|t| t as f64),
                ),
            ];
            for (unit, left, limit) in units {
                let (Some(left), Some(limit)) = (left, limit) else {
                    continue;
                };
                let labels = [
                    ("account", account.clone()),
                    ("period", period.to_owned()),
                    ("unit", unit.to_owned()),
                ];
                metrics::gauge!("aegis_budget_remaining", &labels).set(left);
                metrics::gauge!("aegis_budget_limit", &labels).set(limit);
            }
        }
    }

    /// Samples every [`SAMPLE_EVERY`] until the policy holding `gauges` is dropped (a
    /// reload builds a new one, with its own sampler).
    fn start(gauges: &Arc<Self>) {
        if gauges.lines.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(gauges);
        runtime.spawn(async move {
            loop {
                let Some(gauges) = weak.upgrade() else { return };
                gauges.sample().await;
                drop(gauges);
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
    }
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("keys", &self.keys.len())
            .field("teams", &self.teams.len())
            .field("orgs", &self.orgs.len())
            .finish_non_exhaustive()
    }
}

const MAX_USD: f64 = 1e9;

impl Budgets {
    /// Compiles `config` over `ledger`, pricing over the shipped table. A negative,
    /// non-finite or absurd limit or price is a config error with its path.
    pub fn new(config: BudgetsConfig, ledger: Arc<dyn BudgetLedger>) -> Result<Self, Error> {
        Self::with_prices(config, ledger, PriceTable::shipped())
    }

    /// Compiles `config` over `ledger`, its `prices` over `base` (the pipeline's table).
    pub fn with_prices(
        config: BudgetsConfig,
        ledger: Arc<dyn BudgetLedger>,
        base: PriceTable,
    ) -> Result<Self, Error> {
        let mut problems = Vec::new();
        let mut rule = |path: String, l: &LimitConfig| -> Option<Rule> {
            let usd = match l.usd {
                None => 0,
                Some(u) if u.is_finite() && u > 0.0 && u <= MAX_USD => (u * 1e6).round() as u64,
                Some(u) => {
                    problems.push(format!(
                        "{path}.usd: {u} is not a limit (more than 0, at most {MAX_USD})"
                    ));
                    return None;
                }
            };
            let tokens = match l.tokens {
                Some(0) => {
                    problems.push(format!("{path}.tokens: must be at least 1"));
                    return None;
                }
                t => t.unwrap_or(0),
            };
            if usd == 0 && tokens == 0 {
                problems.push(format!("{path}: give `usd` and/or `tokens`"));
                return None;
            }
            Some(Rule {
                limit: Spend::new(usd, tokens),
                period: l.period,
            })
        };
        let mut rules = |name: &str, map: &BTreeMap<String, LimitConfig>| {
            map.iter()
                .filter_map(|(k, l)| rule(format!("{name}.{k}"), l).map(|r| (k.clone(), r)))
                .collect::<BTreeMap<_, _>>()
        };
        let keys = rules("keys", &config.keys);
        let teams = rules("teams", &config.teams);
        let orgs = rules("orgs", &config.orgs);
        let gauged: Vec<(String, Rule)> = teams
            .iter()
            .map(|(t, r)| (format!("team:{t}"), r.clone()))
            .chain(orgs.iter().map(|(o, r)| (format!("org:{o}"), r.clone())))
            .collect();
        let default_key = config
            .default_key
            .as_ref()
            .and_then(|l| rule("default_key".into(), l));
        let prices = base
            .with("", &config.prices, config.unknown_model_price)
            .map_err(|e| problems.push(e.message().to_owned()))
            .ok();
        if config.max_output_tokens == 0 {
            problems.push("max_output_tokens: must be at least 1".into());
        }
        if config.lease_ms < 1000 {
            problems.push("lease_ms: must be at least 1000".into());
        }
        if !(config.estimate_margin.is_finite() && (1.0..=4.0).contains(&config.estimate_margin)) {
            problems.push(format!(
                "estimate_margin: {} is not a margin (1 to 4)",
                config.estimate_margin
            ));
        }
        if !problems.is_empty() {
            return Err(Error::config(problems.join("\n")));
        }
        Ok(Self {
            keys,
            default_key,
            teams,
            orgs,
            prices: prices.unwrap_or_else(PriceTable::empty),
            max_output: config.max_output_tokens,
            lease_ms: config.lease_ms,
            counter: tokens::Counter::new(
                config.tokenizer,
                config.estimate_margin,
                config.image_tokens,
            ),
            gauges: Arc::new(Gauges {
                lines: gauged,
                ledger: ledger.clone(),
            }),
            sampling: std::sync::OnceLock::new(),
            ledger,
            id: "budgets".into(),
        })
    }

    /// The lines a request of `input`'s caller spends against, now.
    fn lines(&self, context: &ContextView) -> Vec<BudgetLine> {
        let now = now_ms();
        let mut out = Vec::new();
        let mut add = |account: String, r: &Rule| {
            out.push(BudgetLine::new(account, period_key(r.period, now)).with_limit(r.limit));
        };
        if let Some(p) = &context.principal {
            if let Some(r) = self.keys.get(&p.id).or(self.default_key.as_ref()) {
                add(format!("key:{}", p.id), r);
            }
            if let Some(r) = p
                .team
                .as_ref()
                .and_then(|t| self.teams.get(t).map(|r| (t, r)))
            {
                add(format!("team:{}", r.0), r.1);
            }
            if let Some(r) = p
                .org
                .as_ref()
                .and_then(|o| self.orgs.get(o).map(|r| (o, r)))
            {
                add(format!("org:{}", r.0), r.1);
            }
        }
        out
    }

    fn price(&self, model: &str) -> Option<Price> {
        self.prices.price(model)
    }

    /// The input tokens of `input`'s request sent to `model`, counted once per tokenizer
    /// (`counted` keeps the counts of this request). A large prompt is counted on the
    /// blocking pool.
    async fn prompt_tokens(
        &self,
        input: &StepInput<'_>,
        model: &str,
        counted: &mut Vec<(&'static str, tokens::Count)>,
    ) -> u64 {
        let key = self.counter.key(model);
        if let Some((_, c)) = counted.iter().find(|(k, _)| *k == key) {
            return self.counter.tokens(*c, model);
        }
        let req = input.request;
        let count = if tokens::text_bytes(req) > OFFLOAD_BYTES {
            let (counter, owned, model) = (self.counter, req.clone(), model.to_owned());
            tokio::task::spawn_blocking(move || counter.count(&owned, &model))
                .await
                // The count panicked (it cannot, short of a bug): hold the most it can be.
                .unwrap_or_else(|_| tokens::Counter::bytes().count(req, ""))
        } else {
            self.counter.count(req, model)
        };
        counted.push((key, count));
        self.counter.tokens(count, model)
    }

    /// The worst case of a request whose prompt is `prompt` tokens: the prompt and its
    /// output cap times the number of choices, at `price`.
    fn worst_case(&self, input: &StepInput<'_>, prompt: u64, price: Price) -> Spend {
        let req = input.request;
        let cap = req
            .max_tokens
            .map(u64::from)
            .or_else(|| {
                req.extra
                    .get("max_completion_tokens")
                    .and_then(|v| v.as_u64())
            })
            .unwrap_or(u64::from(self.max_output));
        let choices = req
            .extra
            .get("n")
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
            .clamp(1, 128);
        let output = cap.saturating_mul(choices);
        Spend::new(
            price.cost_micros(prompt, output),
            prompt.saturating_add(output),
        )
    }

    /// Names the policy (its `[[policies]]` id; default `budgets`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    fn reservation_id(&self, run_id: &str) -> String {
        format!("{}:{run_id}", self.id)
    }

    fn label(&self) -> String {
        format!("{RESERVED_LABEL}.{}", self.id)
    }

    /// The ledger this policy spends through.
    pub fn ledger(&self) -> &Arc<dyn BudgetLedger> {
        &self.ledger
    }
}

/// Prompts with more text than this are counted on the blocking pool (counting takes
/// about 45 µs per KB).
const OFFLOAD_BYTES: usize = 32 * 1024;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The period key of `period` at `now_ms` (UTC): `day:2026-12-01`, `month:2026-12`, `total`.
pub fn period_key(period: Period, now_ms: u64) -> String {
    let days = (now_ms / 86_400_000) as i64;
    let (y, m, d) = civil_from_days(days);
    match period {
        Period::Day => format!("day:{y:04}-{m:02}-{d:02}"),
        Period::Month => format!("month:{y:04}-{m:02}"),
        Period::Total => "total".into(),
    }
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[async_trait]
impl Policy for Budgets {
    fn positions(&self) -> &[Position] {
        &[Position::BeforeCall]
    }

    async fn step(&self, input: &StepInput<'_>) -> Result<Step, Error> {
        self.sampling.get_or_init(|| Gauges::start(&self.gauges));
        let lines = self.lines(input.context);
        if lines.is_empty() {
            return Ok(Step::proceed());
        }
        // A router may serve the request from any of its deployments: the worst case is
        // at the dearest of them, and none may be unpriced.
        let routed = input
            .route
            .map_or(input.request.model.as_str(), |r| r.model.as_str());
        let candidates: Vec<&str> = match input.route {
            Some(r) if !r.models.is_empty() => r.models.iter().map(String::as_str).collect(),
            _ => vec![routed],
        };
        let mut worst: Option<(&str, Spend)> = None;
        let mut counted = Vec::new();
        for model in candidates {
            let price = self.price(model).ok_or_else(|| {
                Error::invalid_request(format!(
                    "no price for model `{model}`: add it to `[pricing]` (or the budgets policy's `prices`, or set `unknown_model_price`); a budgeted request is never free"
                ))
                .with_code("price_unknown")
            })?;
            let prompt = self.prompt_tokens(input, model, &mut counted).await;
            let amount = self.worst_case(input, prompt, price);
            // Each unit at its most (tokenizers differ by model, prices by deployment).
            worst = Some(match worst {
                None => (model, amount),
                Some((m, w)) => (
                    if amount.usd_micros > w.usd_micros {
                        model
                    } else {
                        m
                    },
                    Spend::new(
                        amount.usd_micros.max(w.usd_micros),
                        amount.tokens.max(w.tokens),
                    ),
                ),
            });
        }
        let Some((model, amount)) = worst else {
            return Ok(Step::proceed());
        };
        let reservation = Reservation::new(
            self.reservation_id(&input.context.run_id),
            lines,
            amount,
            now_ms().saturating_add(self.lease_ms),
        );
        self.ledger.reserve(&reservation).await?;
        Ok(Step::proceed().label(self.label(), model))
    }

    fn explain(&self, context: &ContextView, route: Option<&RouteView>) -> serde_json::Value {
        let lines: Vec<serde_json::Value> = self
            .lines(context)
            .into_iter()
            .map(|l| {
                serde_json::json!({
                    "account": l.account,
                    "period": l.period,
                    "limit": {"usd": l.limit.usd_micros.map(|u| u as f64 / 1e6), "tokens": l.limit.tokens},
                })
            })
            .collect();
        // A router's request may be served by any of its deployments: each is priced.
        let models: Vec<&str> = match route {
            Some(r) if !r.models.is_empty() => r.models.iter().map(String::as_str).collect(),
            Some(r) => vec![r.model.as_str()],
            None => Vec::new(),
        };
        let prices: serde_json::Map<String, serde_json::Value> = models
            .iter()
            .map(|m| {
                let p = self
                    .price(m)
                    .map(|p| serde_json::to_value(p).unwrap_or_default());
                ((*m).to_owned(), p.unwrap_or(serde_json::Value::Null))
            })
            .collect();
        let unpriced = models.iter().any(|m| self.price(m).is_none());
        serde_json::json!({
            "lines": lines,
            "prices": prices,
            "unpriced_model_refused": unpriced,
            "max_output_tokens": self.max_output,
        })
    }

    async fn on_run_end(&self, run: &RunSummary) {
        // By run id, not only by label: a run dropped before its state came back still has
        // its reservation settled.
        let id = self.reservation_id(&run.context.run_id);
        // Priced as the model that answered (a router's deployment), else as reserved.
        let reserved = run
            .context
            .labels
            .get(&self.label())
            .cloned()
            .or_else(|| run.route.as_ref().map(|r| r.model.clone()))
            .unwrap_or_else(|| run.requested_model.clone());
        let candidates = run.route.as_ref().map_or(&[][..], |r| &r.models[..]);
        let price =
            self.prices
                .price_answered(run.answered_model.as_deref(), &reserved, candidates);
        let result = match (run.usage, run.provider_called) {
            // The real usage: reported, or recovered from a partial stream.
            (Some(u), _) => self.settle_usage(&id, price, u).await,
            // Never sent: nothing was spent.
            (None, false) => self.ledger.release(&id).await,
            // Sent, but no usage came back (a cut connection, a stream dropped before its
            // usage chunk, usage turned off): the worst case held is what is spent — never
            // a free call.
            (None, true) => self.ledger.settle_held(&id).await,
        };
        if let Err(e) = result {
            tracing::error!(run_id = %run.context.run_id, error = %e, "settling a budget reservation failed; the reaper will release it");
        }
    }
}

impl Budgets {
    async fn settle_usage(&self, id: &str, price: Option<Price>, u: Usage) -> Result<(), Error> {
        // The model was priced when it was reserved; should the table no longer hold it,
        // what was held is what is spent — never a free call.
        let Some(price) = price else {
            return self.ledger.settle_held(id).await;
        };
        self.ledger
            .settle(
                id,
                Spend::new(price.usage_cost_micros(&u), u.total_tokens()),
            )
            .await
    }
}
