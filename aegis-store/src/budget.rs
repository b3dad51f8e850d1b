//! The budget ledger on the database: [`Store`] implements [`BudgetLedger`], so replicas
//! sharing one PostgreSQL (or a gateway on SQLite) share budgets.
//!
//! Admission is one write transaction holding, for every line of the reservation, one
//! conditional `UPDATE … SET reserved = reserved + amount WHERE spent + reserved + amount
//! <= limit`: a line that cannot take it updates no row and the whole transaction rolls
//! back. PostgreSQL row locks (and SQLite's single writer) serialize concurrent
//! reservations of one line, so no interleaving overspends — never check-then-increment.
//!
//! On PostgreSQL the same statements run inside two functions the migrations install
//! (`aegis_budget_reserve`, `aegis_budget_settle`), so a reservation and a settlement are
//! one round trip each: the row every request shares (an organisation's) is locked for one
//! statement and its commit rather than across a client-driven transaction. On SQLite,
//! where a transaction costs no round trips, the statements are sent one by one.

use aegis_contracts::{
    Balance, BudgetLedger, BudgetLine, Error, ErrorKind, Limit, Reservation, Spend, async_trait,
    budget_exceeded, check_limit,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::{
    Backend, Store,
    audit::{AuditEntry, append_in},
    db_err,
};

fn stmt(backend: Backend, sql: &str, values: Vec<Value>) -> Statement {
    match backend {
        // `?` placeholders become `$1`, `$2`, ... for PostgreSQL.
        Backend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for ch in sql.chars() {
                if ch == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(ch);
                }
            }
            Statement::from_sql_and_values(DbBackend::Postgres, out, values)
        }
        Backend::Sqlite => Statement::from_sql_and_values(DbBackend::Sqlite, sql, values),
    }
}

fn int(v: u64) -> Value {
    Value::BigInt(Some(i64::try_from(v).unwrap_or(i64::MAX)))
}

fn opt(v: Option<u64>) -> Value {
    Value::BigInt(v.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The lines and the held amount of a reservation row.
fn held_of(row: &sea_orm::QueryResult) -> Result<(Vec<LineKey>, Spend), Error> {
    let lines: String = row
        .try_get("", "lines")
        .map_err(|e| db_err("cannot read the reservation", e))?;
    let usd: i64 = row
        .try_get("", "usd_micros")
        .map_err(|e| db_err("reservation", e))?;
    let tokens: i64 = row
        .try_get("", "tokens")
        .map_err(|e| db_err("reservation", e))?;
    let keys: Vec<LineKey> = serde_json::from_str(&lines)
        .map_err(|e| Error::storage(format!("a stored reservation does not decode: {e}")))?;
    Ok((keys, Spend::new(u(usd), u(tokens))))
}

/// A line's identity: its account and period.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct LineKey {
    pub(crate) account: String,
    pub(crate) period: String,
}

/// The `lines` column of `r`'s reservation row: its lines' keys, as JSON.
pub(crate) fn stored_keys(r: &Reservation) -> Result<String, Error> {
    let keys: Vec<LineKey> = r
        .lines
        .iter()
        .map(|l| LineKey {
            account: l.account.clone(),
            period: l.period.clone(),
        })
        .collect();
    serde_json::to_string(&keys)
        .map_err(|e| Error::internal(format!("budget lines do not serialize: {e}")))
}

/// SQLSTATE raised by `aegis_budget_reserve` when a line cannot take a reservation.
const PG_BUDGET_REFUSED: &str = "AB001";

/// Whether `e` is PostgreSQL refusing a reservation (`aegis_budget_reserve`'s SQLSTATE).
fn is_refusal(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx};
    let (sea_orm::DbErr::Exec(RuntimeErr::SqlxError(e))
    | sea_orm::DbErr::Query(RuntimeErr::SqlxError(e))) = e
    else {
        return false;
    };
    matches!(&**e, sqlx::Error::Database(db) if db.code().as_deref() == Some(PG_BUDGET_REFUSED))
}

impl Store {
    /// PostgreSQL admission: the same holds as [`hold`](Self::hold), by the migration's
    /// `aegis_budget_reserve` function in one statement (one round trip, its own
    /// transaction), so a line every request shares is locked only for that statement and
    /// its commit.
    async fn reserve_in_one_statement(&self, r: &Reservation) -> Result<(), Error> {
        let lines: Vec<serde_json::Value> = r
            .lines
            .iter()
            .map(|l| {
                serde_json::json!({
                    "account": l.account,
                    "period": l.period,
                    "limit_usd": l.limit.usd_micros.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
                    "limit_tokens": l.limit.tokens.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
                    "fits_new": l.admits(&Spend::default(), &Spend::default(), &r.amount),
                })
            })
            .collect();
        let res = self
            .db()
            .execute_raw(stmt(
                Backend::Postgres,
                "SELECT aegis_budget_reserve(?, ?, CAST(? AS jsonb), ?, ?, ?)",
                vec![
                    r.id.clone().into(),
                    stored_keys(r)?.into(),
                    serde_json::Value::Array(lines).to_string().into(),
                    int(r.amount.usd_micros),
                    int(r.amount.tokens),
                    int(r.expires_at_ms),
                ],
            ))
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_refusal(&e) => Err(self.refusal(r).await),
            Err(e) => Err(db_err("cannot reserve", e)),
        }
    }

    /// Holds `r` inside the caller's transaction: `Ok(false)` when a line cannot take it
    /// (the caller rolls back). One statement per line: an upsert whose update only happens
    /// when the amount fits (`ON CONFLICT … DO UPDATE … WHERE`), so the check and the
    /// increment are one atomic step under the row's lock.
    async fn hold(&self, txn: &impl ConnectionTrait, r: &Reservation) -> Result<bool, Error> {
        let b = self.backend();
        let lines = stored_keys(r)?;
        // The reservation row first: a second reserve of the same run holds nothing twice.
        let inserted = txn
            .execute_raw(stmt(
                b,
                "INSERT INTO aegis_budget_reservations (id, lines, usd_micros, tokens, expires_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                vec![
                    r.id.clone().into(),
                    lines.into(),
                    int(r.amount.usd_micros),
                    int(r.amount.tokens),
                    int(r.expires_at_ms),
                ],
            ))
            .await
            .map_err(|e| db_err("cannot record the reservation", e))?;
        if inserted.rows_affected() == 0 {
            return Ok(true);
        }
        for line in &r.lines {
            // A new line starts with this reservation only if it fits the configured limit
            // at all (an insert has no `WHERE`); past that, only a line whose limit an admin
            // set higher can take it.
            if !line.admits(&Spend::default(), &Spend::default(), &r.amount) {
                let res = txn
                    .execute_raw(stmt(
                        b,
                        "UPDATE aegis_budget_lines SET \
                           reserved_usd_micros = reserved_usd_micros + ?, reserved_tokens = reserved_tokens + ? \
                         WHERE account = ? AND period = ? AND limit_set_at_ms IS NOT NULL \
                           AND (COALESCE(admin_usd_micros, ?) IS NULL OR spent_usd_micros + reserved_usd_micros + ? <= COALESCE(admin_usd_micros, ?)) \
                           AND (COALESCE(admin_tokens, ?) IS NULL OR spent_tokens + reserved_tokens + ? <= COALESCE(admin_tokens, ?))",
                        vec![
                            int(r.amount.usd_micros),
                            int(r.amount.tokens),
                            line.account.clone().into(),
                            line.period.clone().into(),
                            opt(line.limit.usd_micros),
                            int(r.amount.usd_micros),
                            opt(line.limit.usd_micros),
                            opt(line.limit.tokens),
                            int(r.amount.tokens),
                            opt(line.limit.tokens),
                        ],
                    ))
                    .await
                    .map_err(|e| db_err("cannot reserve", e))?;
                if res.rows_affected() != 1 {
                    return Ok(false);
                }
                continue;
            }
            let res = txn
                .execute_raw(stmt(
                    b,
                    "INSERT INTO aegis_budget_lines AS l (account, period, limit_usd_micros, limit_tokens, spent_usd_micros, spent_tokens, reserved_usd_micros, reserved_tokens) \
                     VALUES (?, ?, ?, ?, 0, 0, ?, ?) \
                     ON CONFLICT (account, period) DO UPDATE SET \
                       limit_usd_micros = excluded.limit_usd_micros, limit_tokens = excluded.limit_tokens, \
                       reserved_usd_micros = l.reserved_usd_micros + excluded.reserved_usd_micros, \
                       reserved_tokens = l.reserved_tokens + excluded.reserved_tokens \
                     WHERE (COALESCE(l.admin_usd_micros, excluded.limit_usd_micros) IS NULL \
                            OR l.spent_usd_micros + l.reserved_usd_micros + excluded.reserved_usd_micros <= COALESCE(l.admin_usd_micros, excluded.limit_usd_micros)) \
                       AND (COALESCE(l.admin_tokens, excluded.limit_tokens) IS NULL \
                            OR l.spent_tokens + l.reserved_tokens + excluded.reserved_tokens <= COALESCE(l.admin_tokens, excluded.limit_tokens))",
                    vec![
                        line.account.clone().into(),
                        line.period.clone().into(),
                        opt(line.limit.usd_micros),
                        opt(line.limit.tokens),
                        int(r.amount.usd_micros),
                        int(r.amount.tokens),
                    ],
                ))
                .await
                .map_err(|e| db_err("cannot reserve", e))?;
            if res.rows_affected() != 1 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The error for a reservation some line of `r` cannot take, naming the first such line
    /// and what is left of it (read after the rollback, so it reflects committed state).
    async fn refusal(&self, r: &Reservation) -> Error {
        for line in &r.lines {
            if let Ok(Some(row)) = self.line_row(&line.account, &line.period).await {
                if row.configured != line.limit {
                    // The stored configured limit is older than the config (it changed):
                    // the line shows, from now on, the limit that refused it.
                    self.refresh_limit(line).await;
                }
                let mut b = row.balance;
                b.limit = row.admin.over(line.limit);
                let mut effective = line.clone();
                effective.limit = b.limit;
                if !effective.admits(&b.spent, &b.reserved, &r.amount) {
                    return budget_exceeded(&line.account, &line.period, Some(&b));
                }
            }
        }
        refused(r)
    }

    /// Stores `line`'s configured limit on its row.
    async fn refresh_limit(&self, line: &BudgetLine) {
        let res = self
            .db()
            .execute_raw(stmt(
                self.backend(),
                "UPDATE aegis_budget_lines SET limit_usd_micros = ?, limit_tokens = ? WHERE account = ? AND period = ?",
                vec![
                    opt(line.limit.usd_micros),
                    opt(line.limit.tokens),
                    line.account.clone().into(),
                    line.period.clone().into(),
                ],
            ))
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "cannot store a budget line's configured limit");
        }
    }
}

/// One stored line: its balance under the effective limit, and that limit's parts.
pub(crate) struct LineRow {
    pub(crate) balance: Balance,
    pub(crate) configured: Limit,
    /// What an admin set, per unit (`None`: the configured limit applies).
    pub(crate) admin: Limit,
}

/// An admin's change to one budget line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineChange {
    /// Zero its settled spend (a new start, e.g. after a refund); reservations in flight
    /// stay held.
    Reset,
    /// Set its limit over the configured one (creating the line if need be).
    SetLimit(Limit),
    /// Return it to its configured limit (applied at its next reservation).
    ClearLimit,
}

impl Store {
    /// Zeroes the settled spend of one budget line; `NotFound` when it does not exist.
    pub async fn reset_budget(&self, account: &str, period: &str) -> Result<(), Error> {
        self.change_budget(account, period, LineChange::Reset, None)
            .await
    }

    /// Changes one budget line and records who did it and what in the audit log, in one
    /// transaction. `NotFound` when a reset or clear names a line that does not exist; a
    /// limit without dollars or tokens, or an absurd one, is `InvalidRequest`.
    pub async fn change_budget(
        &self,
        account: &str,
        period: &str,
        change: LineChange,
        by: Option<&str>,
    ) -> Result<(), Error> {
        check_line(account, period)?;
        if let LineChange::SetLimit(limit) = &change {
            check_limit(limit)?;
        }
        let b = self.backend();
        let line = || {
            vec![
                Value::from(account.to_owned()),
                Value::from(period.to_owned()),
            ]
        };
        let (sql, mut values, kind, data) = match change {
            LineChange::Reset => (
                "UPDATE aegis_budget_lines SET spent_usd_micros = 0, spent_tokens = 0 WHERE account = ? AND period = ?",
                line(),
                "budget.reset",
                serde_json::json!({"account": account, "period": period}),
            ),
            LineChange::ClearLimit => (
                "UPDATE aegis_budget_lines SET admin_usd_micros = NULL, admin_tokens = NULL, limit_set_at_ms = NULL WHERE account = ? AND period = ?",
                line(),
                "budget.limit_cleared",
                serde_json::json!({"account": account, "period": period}),
            ),
            LineChange::SetLimit(limit) => (
                "INSERT INTO aegis_budget_lines AS l (account, period, spent_usd_micros, spent_tokens, reserved_usd_micros, reserved_tokens, admin_usd_micros, admin_tokens, limit_set_at_ms) \
                 VALUES (?, ?, 0, 0, 0, 0, ?, ?, ?) \
                 ON CONFLICT (account, period) DO UPDATE SET \
                   admin_usd_micros = COALESCE(excluded.admin_usd_micros, l.admin_usd_micros), \
                   admin_tokens = COALESCE(excluded.admin_tokens, l.admin_tokens), \
                   limit_set_at_ms = excluded.limit_set_at_ms",
                line(),
                "budget.limit_set",
                serde_json::json!({
                    "account": account,
                    "period": period,
                    "limit": {"usd": limit.usd_micros.map(|u| u as f64 / 1e6), "tokens": limit.tokens},
                }),
            ),
        };
        if let LineChange::SetLimit(limit) = change {
            values.extend([
                opt(limit.usd_micros),
                opt(limit.tokens),
                Value::BigInt(Some(crate::now_ms())),
            ]);
        }
        let txn = self.begin_write().await?;
        let result = async {
            let res = txn
                .execute_raw(stmt(b, sql, values))
                .await
                .map_err(|e| db_err("cannot change the budget line", e))?;
            if res.rows_affected() == 0 {
                return Err(no_line(account, period));
            }
            let mut entry = AuditEntry::new(kind, data);
            entry.actor = by.map(str::to_owned);
            append_in(&txn, &entry);
            Ok(())
        }
        .await;
        txn.finish(result, "the budget change").await
    }
}

/// A budget ledger an admin can change, each change in the audit log with who made it:
/// the database ([`Store`]) or Redis in front of it (`RedisLedger`, feature `redis`).
#[async_trait]
pub trait BudgetAdmin: BudgetLedger {
    /// Applies `change` to line `account` / `period` (see [`Store::change_budget`]).
    async fn change_budget(
        &self,
        account: &str,
        period: &str,
        change: LineChange,
        by: Option<&str>,
    ) -> Result<(), Error>;

    /// Whether the ledger can serve (a readiness probe).
    async fn ready(&self) -> Result<(), Error>;
}

#[async_trait]
impl BudgetAdmin for Store {
    async fn change_budget(
        &self,
        account: &str,
        period: &str,
        change: LineChange,
        by: Option<&str>,
    ) -> Result<(), Error> {
        Store::change_budget(self, account, period, change, by).await
    }

    async fn ready(&self) -> Result<(), Error> {
        Store::ready(self).await
    }
}

/// The `NotFound` of an admin's change to a line that does not exist.
pub(crate) fn no_line(account: &str, period: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("no budget line `{account}` for `{period}`"),
    )
}

/// Refuses a line an admin names that no budgets policy could have made: the account must
/// be `key:…`, `team:…` or `org:…`, and the period `total`, `day:YYYY-MM-DD` or
/// `month:YYYY-MM` ([`LINE_ACCOUNT_PATTERN`], [`LINE_PERIOD_PATTERN`]).
pub fn check_line(account: &str, period: &str) -> Result<(), Error> {
    let account_ok = ["key:", "team:", "org:"].iter().any(|p| {
        account.strip_prefix(p).is_some_and(|rest| {
            !rest.is_empty()
                && rest.chars().count() <= 256
                && !rest.chars().any(|c| c.is_ascii_control())
        })
    });
    if !account_ok {
        return Err(Error::invalid_request(format!(
            "`account` must be key:<principal>, team:<team> or org:<org>, not `{}`",
            account.escape_debug()
        )));
    }
    let number = |s: &str, n: usize, range: std::ops::RangeInclusive<u32>| {
        s.len() == n
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|v| range.contains(&v))
    };
    // `YYYY-MM` or `YYYY-MM-DD`: a month 01–12, a day 01–31.
    let date = |s: &str, with_day: bool| {
        let p: Vec<&str> = s.split('-').collect();
        p.len() == 2 + usize::from(with_day)
            && number(p[0], 4, 0..=9999)
            && number(p[1], 2, 1..=12)
            && (!with_day || number(p[2], 2, 1..=31))
    };
    let period_ok = period == "total"
        || period.strip_prefix("day:").is_some_and(|d| date(d, true))
        || period
            .strip_prefix("month:")
            .is_some_and(|m| date(m, false));
    if !period_ok {
        return Err(Error::invalid_request(format!(
            "`period` must be total, day:YYYY-MM-DD or month:YYYY-MM, not `{}`",
            period.escape_debug()
        )));
    }
    Ok(())
}

/// The accounts [`check_line`] accepts, as a regular expression (for API schemas; it ends
/// with `(?![\s\S])`, not `$`, which some engines let match before a final newline).
pub const LINE_ACCOUNT_PATTERN: &str = r"^(key|team|org):[^\x00-\x1f\x7f]{1,256}(?![\s\S])";
/// The periods [`check_line`] accepts, as a regular expression: months 01–12, days 01–31.
pub const LINE_PERIOD_PATTERN: &str = r"^(total|day:[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])|month:[0-9]{4}-(0[1-9]|1[0-2]))(?![\s\S])";

fn refused(r: &Reservation) -> Error {
    let names: Vec<String> = r
        .lines
        .iter()
        .map(|l: &BudgetLine| format!("`{}` for `{}`", l.account, l.period))
        .collect();
    Error::new(
        ErrorKind::BudgetExceeded,
        format!("the budget is used up (one of {})", names.join(", ")),
    )
    .with_code("budget_exceeded")
}

#[async_trait]
impl BudgetLedger for Store {
    async fn reserve(&self, r: &Reservation) -> Result<(), Error> {
        if self.backend() == Backend::Postgres {
            return self.reserve_in_one_statement(r).await;
        }
        let txn = self.begin_write().await?;
        match self.hold(&*txn, r).await {
            Ok(true) => txn
                .commit()
                .await
                .map_err(|e| db_err("cannot commit the reservation", e)),
            Ok(false) => {
                txn.rollback().await.ok();
                Err(self.refusal(r).await)
            }
            Err(e) => {
                txn.rollback().await.ok();
                Err(e)
            }
        }
    }

    async fn settle(&self, id: &str, actual: Spend) -> Result<(), Error> {
        self.end_reservation(id, Some(actual)).await
    }

    async fn settle_held(&self, id: &str) -> Result<(), Error> {
        self.end_reservation(id, None).await
    }

    async fn reap(&self, now_ms: u64) -> Result<u64, Error> {
        let b = self.backend();
        // Reservations reaped a day ago whose run never settled (its replica crashed): gone.
        self.db()
            .execute_raw(stmt(
                b,
                "DELETE FROM aegis_budget_reservations WHERE reaped_at_ms < ?",
                vec![int(now_ms.saturating_sub(REAPED_KEPT_MS))],
            ))
            .await
            .map_err(|e| db_err("cannot drop old reaped reservations", e))?;
        let rows = self
            .db()
            .query_all_raw(stmt(
                b,
                "SELECT id FROM aegis_budget_reservations WHERE expires_at_ms < ? AND reaped_at_ms IS NULL",
                vec![int(now_ms)],
            ))
            .await
            .map_err(|e| db_err("cannot list expired reservations", e))?;
        let mut n = 0;
        for row in rows {
            let id: String = row
                .try_get("", "id")
                .map_err(|e| db_err("reservation", e))?;
            if self.reap_one(&id, now_ms).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn balance(&self, account: &str, period: &str) -> Result<Option<Balance>, Error> {
        self.budget_balance(account, period).await
    }

    async fn set_limit(&self, account: &str, period: &str, limit: Limit) -> Result<(), Error> {
        self.change_budget(account, period, LineChange::SetLimit(limit), None)
            .await
    }

    async fn clear_limit(&self, account: &str, period: &str) -> Result<(), Error> {
        self.change_budget(account, period, LineChange::ClearLimit, None)
            .await
    }
}

/// How long a reaped reservation is kept for a late settlement (a stream that outlived its
/// lease is still charged when it ends): a day.
const REAPED_KEPT_MS: u64 = 86_400_000;

/// No provider reports more than this many tokens for one request; a larger number is
/// clamped so the ledger's 64-bit columns never overflow.
const MAX_SPEND_TOKENS: u64 = 1 << 40;

impl Store {
    /// Ends reservation `id`: its hold is removed and `actual` (or, for `None`, the held
    /// amount) is spent on its lines.
    async fn end_reservation(&self, id: &str, actual: Option<Spend>) -> Result<(), Error> {
        let b = self.backend();
        if b == Backend::Postgres {
            return self
                .db()
                .execute_raw(stmt(
                    b,
                    "SELECT aegis_budget_settle(?, ?, ?, ?, ?)",
                    vec![
                        id.to_owned().into(),
                        opt(actual.map(|a| a.usd_micros)),
                        opt(actual.map(|a| a.tokens)),
                        int(MAX_SPEND_TOKENS * 1_000_000),
                        int(MAX_SPEND_TOKENS),
                    ],
                ))
                .await
                .map(|_| ())
                .map_err(|e| db_err("cannot settle", e));
        }
        let txn = self.begin_write().await?;
        // Deleting the reservation first makes a second settle (or the reaper racing a
        // settle) a no-op: only the one that deleted the row moves the money.
        let row = txn
            .query_one_raw(stmt(
                b,
                "DELETE FROM aegis_budget_reservations WHERE id = ? RETURNING lines, usd_micros, tokens, reaped_at_ms",
                vec![id.to_owned().into()],
            ))
            .await
            .map_err(|e| db_err("cannot end the reservation", e))?;
        let Some(row) = row else {
            txn.rollback().await.ok();
            return Ok(());
        };
        let (keys, held) = held_of(&row)?;
        let reaped: Option<i64> = row
            .try_get("", "reaped_at_ms")
            .map_err(|e| db_err("reservation", e))?;
        let spend = actual.unwrap_or(held);
        let spend = Spend::new(
            spend.usd_micros.min(MAX_SPEND_TOKENS * 1_000_000),
            spend.tokens.min(MAX_SPEND_TOKENS),
        );
        // A reaped reservation's hold was already returned: only the spend moves.
        let release = if reaped.is_some() {
            Spend::default()
        } else {
            held
        };
        self.move_holds(&*txn, &keys, release, spend).await?;
        txn.commit()
            .await
            .map_err(|e| db_err("cannot commit the settlement", e))
    }

    /// Returns the hold of expired reservation `id` to its lines and marks it reaped (kept
    /// for a late settlement). `false` when another process reaped or settled it first.
    async fn reap_one(&self, id: &str, now_ms: u64) -> Result<bool, Error> {
        let txn = self.begin_write().await?;
        let row = txn
            .query_one_raw(stmt(
                self.backend(),
                "UPDATE aegis_budget_reservations SET reaped_at_ms = ? WHERE id = ? AND reaped_at_ms IS NULL RETURNING lines, usd_micros, tokens",
                vec![int(now_ms), id.to_owned().into()],
            ))
            .await
            .map_err(|e| db_err("cannot reap the reservation", e))?;
        let Some(row) = row else {
            txn.rollback().await.ok();
            return Ok(false);
        };
        let (keys, held) = held_of(&row)?;
        self.move_holds(&*txn, &keys, held, Spend::default())
            .await?;
        txn.commit()
            .await
            .map_err(|e| db_err("cannot commit the reaping", e))?;
        Ok(true)
    }

    /// On each line of `keys`: `release` comes off the holds, `spend` onto the spend.
    async fn move_holds(
        &self,
        txn: &impl ConnectionTrait,
        keys: &[LineKey],
        release: Spend,
        spend: Spend,
    ) -> Result<(), Error> {
        for k in keys {
            txn.execute_raw(stmt(
                self.backend(),
                "UPDATE aegis_budget_lines SET \
                 reserved_usd_micros = CASE WHEN reserved_usd_micros > ? THEN reserved_usd_micros - ? ELSE 0 END, \
                 reserved_tokens = CASE WHEN reserved_tokens > ? THEN reserved_tokens - ? ELSE 0 END, \
                 spent_usd_micros = spent_usd_micros + ?, spent_tokens = spent_tokens + ? \
                 WHERE account = ? AND period = ?",
                vec![
                    int(release.usd_micros),
                    int(release.usd_micros),
                    int(release.tokens),
                    int(release.tokens),
                    int(spend.usd_micros),
                    int(spend.tokens),
                    k.account.clone().into(),
                    k.period.clone().into(),
                ],
            ))
            .await
            .map_err(|e| db_err("cannot settle", e))?;
        }
        Ok(())
    }

    async fn budget_balance(&self, account: &str, period: &str) -> Result<Option<Balance>, Error> {
        Ok(self.line_row(account, period).await?.map(|r| r.balance))
    }

    pub(crate) async fn line_row(
        &self,
        account: &str,
        period: &str,
    ) -> Result<Option<LineRow>, Error> {
        let row = self
            .db()
            .query_one_raw(stmt(
                self.backend(),
                "SELECT limit_usd_micros, limit_tokens, admin_usd_micros, admin_tokens, spent_usd_micros, spent_tokens, reserved_usd_micros, reserved_tokens, limit_set_at_ms \
                 FROM aegis_budget_lines WHERE account = ? AND period = ?",
                vec![account.to_owned().into(), period.to_owned().into()],
            ))
            .await
            .map_err(|e| db_err("cannot read the budget line", e))?;
        let Some(row) = row else { return Ok(None) };
        let get = |c: &str| -> Result<i64, Error> {
            row.try_get("", c).map_err(|e| db_err("budget line", e))
        };
        let getn = |c: &str| -> Result<Option<u64>, Error> {
            row.try_get::<Option<i64>>("", c)
                .map(|v| v.map(u))
                .map_err(|e| db_err("budget line", e))
        };
        let configured = Limit::new(getn("limit_usd_micros")?, getn("limit_tokens")?);
        let admin = Limit::new(getn("admin_usd_micros")?, getn("admin_tokens")?);
        let balance = Balance::new(
            admin.over(configured),
            Spend::new(u(get("spent_usd_micros")?), u(get("spent_tokens")?)),
            Spend::new(u(get("reserved_usd_micros")?), u(get("reserved_tokens")?)),
        )
        .limit_set_at(getn("limit_set_at_ms")?);
        Ok(Some(LineRow {
            balance,
            configured,
            admin,
        }))
    }
}

/// One entry of a Redis ledger's journal ([`crate::redis_ledger`]): a settlement's spend on
/// its lines, or an admin's reset of one line, in the order Redis applied them.
// Used by the Redis ledger (feature `redis`) and its tests.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct JournalEntry {
    /// Unique per entry: the reservation's id, or `reset:<uuid>`.
    pub(crate) id: String,
    /// Dollars spent, in millionths.
    #[serde(default)]
    pub(crate) u: u64,
    /// Tokens spent.
    #[serde(default)]
    pub(crate) t: u64,
    /// The lines the spend lands on.
    #[serde(default)]
    pub(crate) lines: Vec<LineKey>,
    /// For a reset: the line whose spend goes back to zero.
    #[serde(default)]
    pub(crate) reset: Option<LineKey>,
}

/// What a batch of journal entries does to one line: zero it first (a reset among them),
/// then add.
// Used by the Redis ledger (feature `redis`) and its tests.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Default)]
struct LineDelta {
    reset: bool,
    add: Spend,
}

impl Store {
    /// Applies journal entries to the lines' settled spend, in order, in one transaction;
    /// an entry whose id was applied before (its flusher crashed before trimming the
    /// journal) changes nothing. A reset zeroes the spend the entries before it added.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) async fn apply_budget_journal(&self, entries: &[JournalEntry]) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let b = self.backend();
        let now = crate::now_ms();
        let txn = self.begin_write().await?;
        let result = async {
            let mut fresh = std::collections::HashSet::new();
            for chunk in entries.chunks(200) {
                let rows = vec!["(?, ?)"; chunk.len()].join(", ");
                let values = chunk
                    .iter()
                    .flat_map(|e| [Value::from(e.id.clone()), Value::BigInt(Some(now))])
                    .collect();
                let inserted = txn
                    .query_all_raw(stmt(
                        b,
                        &format!(
                            "INSERT INTO aegis_budget_applied (id, applied_at_ms) VALUES {rows} \
                             ON CONFLICT (id) DO NOTHING RETURNING id"
                        ),
                        values,
                    ))
                    .await
                    .map_err(|e| db_err("cannot record applied settlements", e))?;
                for row in inserted {
                    let id: String = row
                        .try_get("", "id")
                        .map_err(|e| db_err("applied settlement", e))?;
                    fresh.insert(id);
                }
            }
            // Each line's net change, in journal order; an id counts once even when the
            // batch holds it twice.
            let mut deltas: Vec<(&LineKey, LineDelta)> = Vec::new();
            for e in entries.iter().filter(|e| fresh.remove(&e.id)) {
                let spend = Spend::new(
                    e.u.min(MAX_SPEND_TOKENS * 1_000_000),
                    e.t.min(MAX_SPEND_TOKENS),
                );
                let touched = match &e.reset {
                    Some(k) => std::slice::from_ref(k),
                    None => &e.lines[..],
                };
                for k in touched {
                    let i = match deltas.iter().position(|(d, _)| *d == k) {
                        Some(i) => i,
                        None => {
                            deltas.push((k, LineDelta::default()));
                            deltas.len() - 1
                        }
                    };
                    let d = &mut deltas[i].1;
                    if e.reset.is_some() {
                        *d = LineDelta { reset: true, add: Spend::default() };
                    } else {
                        d.add = d.add.plus(spend);
                    }
                }
            }
            for (k, d) in deltas {
                let set = if d.reset {
                    "spent_usd_micros = excluded.spent_usd_micros, spent_tokens = excluded.spent_tokens"
                } else {
                    "spent_usd_micros = l.spent_usd_micros + excluded.spent_usd_micros, \
                     spent_tokens = l.spent_tokens + excluded.spent_tokens"
                };
                txn.execute_raw(stmt(
                    b,
                    &format!(
                        "INSERT INTO aegis_budget_lines AS l (account, period, spent_usd_micros, spent_tokens, reserved_usd_micros, reserved_tokens) \
                         VALUES (?, ?, ?, ?, 0, 0) ON CONFLICT (account, period) DO UPDATE SET {set}"
                    ),
                    vec![
                        k.account.clone().into(),
                        k.period.clone().into(),
                        int(d.add.usd_micros),
                        int(d.add.tokens),
                    ],
                ))
                .await
                .map_err(|e| db_err("cannot apply settlements", e))?;
            }
            Ok(())
        }
        .await;
        txn.finish(result, "settlements").await
    }

    /// Forgets the ids of journal entries applied before `before_ms`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) async fn prune_budget_applied(&self, before_ms: u64) -> Result<(), Error> {
        self.db()
            .execute_raw(stmt(
                self.backend(),
                "DELETE FROM aegis_budget_applied WHERE applied_at_ms < ?",
                vec![int(before_ms)],
            ))
            .await
            .map(|_| ())
            .map_err(|e| db_err("cannot prune applied settlements", e))
    }
}

/// The setting naming the ledger that holds this database's budget counts: absent (the
/// database itself) or `redis:<prefix>`.
pub const BUDGET_LEDGER_SETTING: &str = "budget_ledger";

impl Store {
    /// A setting every replica on this database must agree on, if set.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        let row = self
            .db()
            .query_one_raw(stmt(
                self.backend(),
                "SELECT value FROM aegis_settings WHERE key = ?",
                vec![key.to_owned().into()],
            ))
            .await
            .map_err(|e| db_err("cannot read a setting", e))?;
        row.map(|r| r.try_get("", "value").map_err(|e| db_err("setting", e)))
            .transpose()
    }

    /// Every setting whose key starts with `prefix`, by key.
    pub async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, Error> {
        let rows = self
            .db()
            .query_all_raw(stmt(
                self.backend(),
                "SELECT key, value FROM aegis_settings WHERE substr(key, 1, ?) = ? ORDER BY key",
                vec![
                    Value::Int(Some(prefix.len() as i32)),
                    prefix.to_owned().into(),
                ],
            ))
            .await
            .map_err(|e| db_err("cannot read settings", e))?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.try_get("", "key").map_err(|e| db_err("setting", e))?,
                    r.try_get("", "value").map_err(|e| db_err("setting", e))?,
                ))
            })
            .collect()
    }

    /// Sets a setting only if it is not set yet; whether this call set it. Two replicas
    /// racing to set the same key: exactly one wins.
    pub async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, Error> {
        self.db()
            .execute_raw(stmt(
                self.backend(),
                "INSERT INTO aegis_settings (key, value, set_at_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (key) DO NOTHING",
                vec![
                    key.to_owned().into(),
                    value.to_owned().into(),
                    Value::BigInt(Some(crate::now_ms())),
                ],
            ))
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(|e| db_err("cannot store a setting", e))
    }

    /// Sets (or with `None` clears) a setting every replica on this database must agree on.
    pub async fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), Error> {
        let (sql, values) = match value {
            Some(v) => (
                "INSERT INTO aegis_settings (key, value, set_at_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, set_at_ms = excluded.set_at_ms",
                vec![
                    key.to_owned().into(),
                    v.to_owned().into(),
                    Value::BigInt(Some(crate::now_ms())),
                ],
            ),
            None => (
                "DELETE FROM aegis_settings WHERE key = ?",
                vec![key.to_owned().into()],
            ),
        };
        self.db()
            .execute_raw(stmt(self.backend(), sql, values))
            .await
            .map(|_| ())
            .map_err(|e| db_err("cannot store a setting", e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spend_entry(id: &str, tokens: u64) -> JournalEntry {
        JournalEntry {
            id: id.into(),
            u: 0,
            t: tokens,
            lines: vec![LineKey {
                account: "team:t".into(),
                period: "total".into(),
            }],
            reset: None,
        }
    }

    #[tokio::test]
    async fn a_journal_entry_applied_twice_counts_once() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let batch = [
            spend_entry("a", 3),
            spend_entry("b", 4),
            spend_entry("a", 3),
        ];
        store.apply_budget_journal(&batch).await.unwrap();
        // The flusher crashed after its commit and before trimming: the next one re-reads.
        store.apply_budget_journal(&batch[..2]).await.unwrap();
        let b = store
            .budget_balance("team:t", "total")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.spent.tokens, 7);
    }
}
