//! The [`BudgetLedger`] contract: where budget packs keep spend and reservations, with
//! admission as one atomic conditional update — never check-then-increment.
//!
//! A request spends against several budget lines at once (its key's, its team's, its
//! organisation's, each per period). [`BudgetLedger::reserve`] takes the worst case against
//! every line or against none; [`settle`](BudgetLedger::settle) turns a reservation into the
//! actual spend; [`release`](BudgetLedger::release) gives it back; a reservation whose lease
//! expired (its replica crashed) is given back by [`reap`](BudgetLedger::reap).
//!
//! ```
//! use aegis_contracts::{BudgetLine, Spend};
//! let line = BudgetLine::new("team:research", "month:2026-12").with_limit(Spend::usd_micros(5_000_000));
//! assert!(line.admits(&Spend::default(), &Spend::usd_micros(4_000_000), &Spend::usd_micros(1_000_000)));
//! assert!(!line.admits(&Spend::usd_micros(1), &Spend::usd_micros(4_000_000), &Spend::usd_micros(1_000_000)));
//! ```

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Error;

/// An amount of spend: US dollars in millionths, and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Spend {
    /// Cost in millionths of a US dollar.
    pub usd_micros: u64,
    /// Tokens (input + output).
    pub tokens: u64,
}

impl Spend {
    /// Spend of `usd_micros` millionths of a dollar and `tokens` tokens.
    pub fn new(usd_micros: u64, tokens: u64) -> Self {
        Self { usd_micros, tokens }
    }

    /// Spend in dollars only.
    pub fn usd_micros(usd_micros: u64) -> Self {
        Self::new(usd_micros, 0)
    }

    /// Spend in tokens only.
    pub fn tokens(tokens: u64) -> Self {
        Self::new(0, tokens)
    }

    /// The sum, saturating.
    pub fn plus(self, other: Spend) -> Spend {
        Spend::new(
            self.usd_micros.saturating_add(other.usd_micros),
            self.tokens.saturating_add(other.tokens),
        )
    }

    /// The difference, saturating at zero.
    pub fn minus(self, other: Spend) -> Spend {
        Spend::new(
            self.usd_micros.saturating_sub(other.usd_micros),
            self.tokens.saturating_sub(other.tokens),
        )
    }
}

/// A limit on spend; a unit without a limit is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Limit {
    /// Dollars, in millionths.
    pub usd_micros: Option<u64>,
    /// Tokens.
    pub tokens: Option<u64>,
}

impl Limit {
    /// A limit of `usd_micros` and/or `tokens`.
    pub fn new(usd_micros: Option<u64>, tokens: Option<u64>) -> Self {
        Self { usd_micros, tokens }
    }

    /// Per unit, this limit where it gives one, else `under`'s: an admin's partial limit
    /// over the configured one (or over an earlier admin limit).
    pub fn over(self, under: Limit) -> Limit {
        Limit::new(
            self.usd_micros.or(under.usd_micros),
            self.tokens.or(under.tokens),
        )
    }
}

/// One budget a request spends against: an account (`key:…`, `team:…`, `org:…`) in one
/// period (`day:2026-12-01`, `month:2026-12`, `total`), with its limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct BudgetLine {
    /// The account.
    pub account: String,
    /// The period.
    pub period: String,
    /// The limit (the ledger stores the latest one it was given).
    pub limit: Limit,
}

impl BudgetLine {
    /// A line with no limit yet.
    pub fn new(account: impl Into<String>, period: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            period: period.into(),
            limit: Limit::default(),
        }
    }

    /// With a limit in dollars and/or tokens (the units `limit` has).
    pub fn with_limit(mut self, limit: Spend) -> Self {
        self.limit = Limit::new(
            (limit.usd_micros > 0).then_some(limit.usd_micros),
            (limit.tokens > 0).then_some(limit.tokens),
        );
        self
    }

    /// Whether `amount` fits beside `spent` and `reserved` under this line's limit.
    pub fn admits(&self, spent: &Spend, reserved: &Spend, amount: &Spend) -> bool {
        let after = spent.plus(*reserved).plus(*amount);
        self.limit.usd_micros.is_none_or(|l| after.usd_micros <= l)
            && self.limit.tokens.is_none_or(|l| after.tokens <= l)
    }
}

/// A reservation of `amount` against every one of `lines`, held by run `id` until
/// `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Reservation {
    /// The reservation's id (the run id).
    pub id: String,
    /// The lines it spends against.
    pub lines: Vec<BudgetLine>,
    /// The worst case it holds.
    pub amount: Spend,
    /// Unix ms after which [`BudgetLedger::reap`] gives it back.
    pub expires_at_ms: u64,
}

impl Reservation {
    /// A reservation of `amount` on `lines` for run `id`.
    pub fn new(
        id: impl Into<String>,
        lines: Vec<BudgetLine>,
        amount: Spend,
        expires_at_ms: u64,
    ) -> Self {
        Self {
            id: id.into(),
            lines,
            amount,
            expires_at_ms,
        }
    }
}

/// What a line has spent and holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Balance {
    /// The limit.
    pub limit: Limit,
    /// Settled spend.
    pub spent: Spend,
    /// Held by open reservations.
    pub reserved: Spend,
    /// When an admin set the limit ([`BudgetLedger::set_limit`]), Unix ms; `None` while
    /// the limit is the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_set_at_ms: Option<u64>,
}

impl Balance {
    /// A balance.
    pub fn new(limit: Limit, spent: Spend, reserved: Spend) -> Self {
        Self {
            limit,
            spent,
            reserved,
            limit_set_at_ms: None,
        }
    }

    /// With the time an admin set the limit.
    pub fn limit_set_at(mut self, at_ms: Option<u64>) -> Self {
        self.limit_set_at_ms = at_ms;
        self
    }

    /// What is left under the limit, per unit (`None`: unlimited).
    pub fn remaining(&self) -> (Option<u64>, Option<u64>) {
        let used = self.spent.plus(self.reserved);
        (
            self.limit
                .usd_micros
                .map(|l| l.saturating_sub(used.usd_micros)),
            self.limit.tokens.map(|l| l.saturating_sub(used.tokens)),
        )
    }
}

/// The [`BudgetExceeded`](crate::ErrorKind::BudgetExceeded) error of a reservation that
/// line `account` / `period` cannot take, with what is left of it (`balance`, when known) as
/// details — what the gateway puts in its body and `x-aegis-budget-*` headers.
pub fn budget_exceeded(account: &str, period: &str, balance: Option<&Balance>) -> Error {
    let err = Error::new(
        crate::ErrorKind::BudgetExceeded,
        format!("the budget of `{account}` for `{period}` is used up"),
    )
    .with_code("budget_exceeded");
    let Some(b) = balance else { return err };
    let (usd, tokens) = b.remaining();
    err.with_details(serde_json::json!({
        "account": account,
        "period": period,
        "remaining_usd": usd.map(|u| u as f64 / 1e6),
        "remaining_tokens": tokens,
    }))
}

/// Contract: durable budget lines and reservations. Implementations make
/// [`reserve`](Self::reserve) atomic across all its lines and across processes sharing the
/// ledger; `settle` and `release` are idempotent (a second call is a no-op).
#[async_trait]
pub trait BudgetLedger: Send + Sync + 'static {
    /// Holds `r.amount` against every line of `r` — or, if any line cannot take it, against
    /// none, failing with [`BudgetExceeded`](crate::ErrorKind::BudgetExceeded) naming it.
    /// Lines are created on first use with the limit given.
    async fn reserve(&self, r: &Reservation) -> Result<(), Error>;

    /// Ends reservation `id`: its hold is removed and `actual` is spent on each of its lines.
    async fn settle(&self, id: &str, actual: Spend) -> Result<(), Error>;

    /// Ends reservation `id` spending exactly what it holds (the worst case): for a run
    /// whose real usage is unknown although the provider was called.
    async fn settle_held(&self, id: &str) -> Result<(), Error>;

    /// Ends reservation `id` without spend.
    async fn release(&self, id: &str) -> Result<(), Error> {
        self.settle(id, Spend::default()).await
    }

    /// Releases every reservation whose lease expired before `now_ms`; returns how many.
    async fn reap(&self, now_ms: u64) -> Result<u64, Error>;

    /// The balance of one line, if it exists.
    async fn balance(&self, account: &str, period: &str) -> Result<Option<Balance>, Error>;

    /// Sets the limit of one line (creating it if need be) over the one reservations bring
    /// from config, until [`clear_limit`](Self::clear_limit) — an admin's raise or freeze
    /// for that account in that period. Per unit: the units `limit` gives replace the
    /// configured (or earlier set) ones; a unit it leaves out keeps its limit. Admission
    /// checks it atomically like any limit.
    async fn set_limit(&self, account: &str, period: &str, limit: Limit) -> Result<(), Error>;

    /// Returns one line to the limit its config gives (at its next reservation).
    /// `NotFound` when the line does not exist.
    async fn clear_limit(&self, account: &str, period: &str) -> Result<(), Error>;
}

/// Checks a limit an admin asks for: at least one of dollars and tokens, none absurd (a
/// billion dollars, 2^40 tokens). Zero is a limit: it freezes the line.
pub fn check_limit(limit: &Limit) -> Result<(), Error> {
    match (limit.usd_micros, limit.tokens) {
        (None, None) => Err(Error::invalid_request(
            "a limit needs `usd` and/or `tokens`",
        )),
        (Some(u), _) if u > 1_000_000_000 * 1_000_000 => {
            Err(Error::invalid_request("`usd`: at most a billion dollars"))
        }
        (_, Some(t)) if t > 1 << 40 => Err(Error::invalid_request("`tokens`: at most 2^40")),
        _ => Ok(()),
    }
}
