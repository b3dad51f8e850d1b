//! A budget ledger on Redis for hot counters, reconciled with the store (feature `redis`).
//!
//! On the database ledger every request writes its lines twice (reserve, settle), each a
//! durable commit; a line every request shares (an organisation's) then admits a few
//! thousand requests a second, and each admission costs a commit's latency. [`RedisLedger`]
//! moves admission to Redis and keeps the store as the durable record:
//!
//! - **Admission is one Lua script** — atomic in Redis like the database's conditional
//!   update: every line of a reservation is checked and held, or none is. Never
//!   check-then-increment, across any number of gateway replicas sharing the Redis.
//! - **A settlement is one script** that moves the hold to the spend *and* appends the spend
//!   to a journal list in the same step. A flusher (any replica; one at a time, by a lock)
//!   applies the journal to the store's lines in batches — one transaction for many
//!   settlements — and trims what it applied. Entries carry ids the store remembers, so a
//!   flusher that crashes between commit and trim never counts one twice.
//! - **Reconciled**: Redis and the store receive the same deltas in the same order (an
//!   admin's reset goes through the journal too), so once the journal is drained the
//!   store's spend equals Redis's. A line Redis does not have (first use, or a Redis that
//!   lost its data) is seeded from the store before it admits anything.
//! - **Leases**: reservations carry their expiry in a sorted set; [`BudgetLedger::reap`]
//!   returns the holds of a crashed replica's runs (and keeps them a day for a late
//!   settlement, like the database ledger).
//!
//! What it costs in durability: the journal lives in Redis until flushed (every
//! `flush_interval`, 100 ms by default). Run Redis with `appendonly yes` (and
//! `maxmemory-policy noeviction`); a Redis that loses its data loses the settlements not yet
//! flushed, and its lines are re-seeded from the store — behind by at most that window.
//! Every key has the `{…}` hash tag of the prefix, so on a Redis Cluster the ledger lives
//! on one shard and its scripts stay atomic.

use std::{sync::Arc, time::Duration};

use aegis_contracts::{
    Balance, BudgetLedger, Error, ErrorKind, Limit, Reservation, Spend, async_trait,
    budget_exceeded, check_limit,
};
use redis::{Script, aio::ConnectionManager};

use crate::{
    Store,
    audit::AuditEntry,
    budget::{JournalEntry, LineChange, LineKey, check_line, no_line, stored_keys},
};

/// The key prefix by default: the `{…}` hash tag keeps every key on one Redis Cluster slot.
pub const DEFAULT_PREFIX: &str = "aegis:{budget}:";

/// Journal entries applied per store transaction.
const FLUSH_BATCH: usize = 500;

/// How long a reaped reservation waits for a late settlement, in seconds (a day).
const REAPED_KEPT_S: u64 = 86_400;

/// No reservation or settlement above this (a billion dollars; 2^40 tokens): sums of a few
/// of them stay below 2^53, where Lua's numbers are exact.
const MAX_USD_MICROS: u64 = 1_000_000_000 * 1_000_000;
const MAX_TOKENS: u64 = 1 << 40;

/// The longest account the ledger takes: the store's index holds it on PostgreSQL.
const MAX_ACCOUNT_BYTES: usize = 1024;

/// Refuses an account the store could not keep (so the journal never holds an entry the
/// store rejects): too long for its index, or with a NUL byte PostgreSQL text refuses.
fn check_storable(account: &str) -> Result<(), Error> {
    if account.len() > MAX_ACCOUNT_BYTES || account.contains('\0') {
        return Err(Error::invalid_request(format!(
            "budget account `{}…` cannot be stored: at most {MAX_ACCOUNT_BYTES} bytes, no NUL",
            account.chars().take(40).collect::<String>().escape_debug()
        )));
    }
    Ok(())
}

/// Reserve. KEYS: reservation, leases, lines…; ARGV: id, usd, tokens, expiry, line
/// identities (JSON), line keys (JSON), a nonce (unique per reservation: its settlement's
/// journal id, so a run id reserved again is charged again), then the configured usd and
/// token limit of each line ('' = none). Returns {0} held, {1} already held, {2, i} line i must be seeded, {3, i}
/// line i refuses. One read per line, then the writes: nothing is written unless every line
/// admits the amount (a changed configured limit is stored either way).
const RESERVE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
local n = #KEYS - 2
local rows = {}
for i = 1, n do
  local h = redis.call('HMGET', KEYS[i + 2], 'su', 'st', 'ru', 'rt', 'au', 'at', 'cu', 'ct', 'g')
  if h[1] == false then return {2, i} end
  rows[i] = h
end
local function fits(limit, spent, held, amount)
  if limit == false or limit == '' then return true end
  return tonumber(spent) + tonumber(held) + tonumber(amount) <= tonumber(limit)
end
for i = 1, n do
  local h, j = rows[i], 6 + i * 2
  if h[7] ~= ARGV[j] or h[8] ~= ARGV[j + 1] then
    redis.call('HSET', KEYS[i + 2], 'cu', ARGV[j], 'ct', ARGV[j + 1])
  end
  local lu, lt = h[5], h[6]
  if lu == false or lu == '' then lu = ARGV[j] end
  if lt == false or lt == '' then lt = ARGV[j + 1] end
  if not (fits(lu, h[1], h[3], ARGV[2]) and fits(lt, h[2], h[4], ARGV[3])) then
    return {3, i}
  end
end
local gens = {}
for i = 1, n do
  redis.call('HINCRBY', KEYS[i + 2], 'ru', ARGV[2])
  redis.call('HINCRBY', KEYS[i + 2], 'rt', ARGV[3])
  gens[i] = rows[i][9]
end
redis.call('HSET', KEYS[1], 'k', ARGV[6], 'a', ARGV[5], 'u', ARGV[2], 't', ARGV[3], 'n', ARGV[7],
  'g', cjson.encode(gens))
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return {0}
";

/// Returns a reservation's hold (`u` dollars, `t` tokens) to line `k`, never below zero —
/// only if the line is the one it was taken from (generation `g`): a line re-seeded since
/// (evicted, or Redis lost it) started without this hold, and must not lose another's.
const UNHOLD: &str = r"
local function unhold(k, g, u, t)
  if redis.call('HGET', k, 'g') ~= g then return end
  for f, amount in pairs({ru = u, rt = t}) do
    if amount ~= '0' and tonumber(redis.call('HINCRBY', k, f, '-' .. amount)) < 0 then
      redis.call('HSET', k, f, '0')
    end
  end
end
";

/// Settle. KEYS: reservation, leases, journal; ARGV: id, mode ('a' actual, 'h' held),
/// usd, tokens. Returns 1 when it ended the reservation, 0 when there was none.
fn settle_script() -> String {
    format!(
        r#"{UNHOLD}
local r = redis.call('HMGET', KEYS[1], 'k', 'a', 'u', 't', 'x', 'n', 'g')
if r[1] == false then return 0 end
local su, st = ARGV[3], ARGV[4]
if ARGV[2] == 'h' then su, st = r[3], r[4] end
local gens = cjson.decode(r[7] or '[]')
for i, k in ipairs(cjson.decode(r[1])) do
  if redis.call('EXISTS', k) == 1 then
    if r[5] == false then
      unhold(k, gens[i], r[3], r[4])
    end
    redis.call('HINCRBY', k, 'su', su)
    redis.call('HINCRBY', k, 'st', st)
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if su ~= '0' or st ~= '0' then
  redis.call('RPUSH', KEYS[3], '{{"id":' .. cjson.encode(ARGV[1] .. ':' .. (r[6] or '')) .. ',"u":' .. su .. ',"t":' .. st .. ',"lines":' .. r[2] .. '}}')
end
return 1
"#
    )
}

/// Reap. KEYS: leases; ARGV: now, reservation key prefix, seconds a reaped one is kept,
/// how many at most. Returns how many holds it returned and how many expired leases it read.
fn reap_script() -> String {
    format!(
        r"{UNHOLD}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
for _, id in ipairs(ids) do
  local rk = ARGV[2] .. id
  local r = redis.call('HMGET', rk, 'k', 'u', 't', 'x', 'g')
  if r[1] ~= false and r[4] == false then
    local gens = cjson.decode(r[5] or '[]')
    for i, k in ipairs(cjson.decode(r[1])) do
      if redis.call('EXISTS', k) == 1 then
        unhold(k, gens[i], r[2], r[3])
      end
    end
    redis.call('HSET', rk, 'x', ARGV[1])
    redis.call('EXPIRE', rk, ARGV[3])
    n = n + 1
  end
  redis.call('ZREM', KEYS[1], id)
end
return {{n, #ids}}
"
    )
}

/// Seed a line that Redis does not have (or has only part of). KEYS: line; ARGV: spent usd, spent tokens, admin
/// usd, admin tokens ('' = none), admin set at ('' = none), when it may go (Unix seconds,
/// 0 = never), its generation (unique per seeding).
const SEED: &str = r"
if redis.call('HEXISTS', KEYS[1], 'su') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'su', ARGV[1], 'st', ARGV[2], 'ru', '0', 'rt', '0', 'cu', '', 'ct', '',
  'au', ARGV[3], 'at', ARGV[4], 'as', ARGV[5], 'g', ARGV[7])
if tonumber(ARGV[6]) > 0 then redis.call('EXPIREAT', KEYS[1], ARGV[6]) end
return 1
";

/// An admin's limit. KEYS: line; ARGV: usd, tokens ('-' keeps that unit), set at ('' with
/// both units '' clears it). Returns 0 when the line does not exist.
const SET_LIMIT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '-' then redis.call('HSET', KEYS[1], 'au', ARGV[1]) end
if ARGV[2] ~= '-' then redis.call('HSET', KEYS[1], 'at', ARGV[2]) end
redis.call('HSET', KEYS[1], 'as', ARGV[3])
return 1
";

/// An admin's reset, ordered in the journal with the settlements. KEYS: line, journal;
/// ARGV: the journal entry. Returns 0 when the line does not exist.
const RESET: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'su', '0', 'st', '0')
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
";

/// Trim what a flush applied, if this flusher still holds the lock. KEYS: journal, lock;
/// ARGV: how many, the lock's token, its lease in ms.
const TRIM: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
";

/// Release the flush lock if it is still this flusher's. KEYS: lock; ARGV: token.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The flush lock's lease, renewed with every batch applied: a flusher that dies holding
/// it is replaced after this. (One that outlives it without dying trims nothing; the next
/// holder re-reads its batch, which the store then applies no second time.)
const LOCK_MS: u64 = 3_000;

/// The background flusher of [`RedisLedger::spawn_flusher`].
#[derive(Debug)]
pub struct Flusher {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Flusher {
    /// Stops after the flush in progress, if any, has finished (never mid-flush: an
    /// aborted flush would leave its lock held until the lease runs out).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A [`BudgetLedger`] on Redis, reconciled with a [`Store`] (see the [module
/// docs](self)). Cheap to clone.
#[derive(Clone)]
pub struct RedisLedger {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    store: Store,
    prefix: String,
    reserve: Script,
    settle: Script,
    reap: Script,
    seed: Script,
    set_limit: Script,
    reset: Script,
    trim: Script,
    unlock: Script,
}

impl std::fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLedger")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn redis_err(what: &str, e: redis::RedisError) -> Error {
    // A Redis error names the command or the connection's failure, never the URL.
    Error::new(
        ErrorKind::Storage,
        format!("budget ledger (redis): {what}: {e}"),
    )
}

/// Warns when Redis may evict the ledger's keys: a line evicted mid-period is re-seeded from
/// the store without the holds in flight. (Managed Redis often refuses `CONFIG`: then this
/// can only be documented.)
async fn warn_unless_noeviction(conn: &mut ConnectionManager) {
    let policy: Result<Vec<String>, _> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(conn)
        .await;
    match policy {
        Ok(kv) if kv.get(1).is_some_and(|p| p != "noeviction") => tracing::warn!(
            policy = %kv[1],
            "the budget ledger's Redis may evict keys (maxmemory-policy is not noeviction): set it to noeviction"
        ),
        Ok(_) => {}
        Err(_) => tracing::info!(
            "cannot read Redis's maxmemory-policy; the budget ledger needs noeviction"
        ),
    }
}

/// A limit's unit as a script argument: '' for none.
fn unit(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl RedisLedger {
    /// Connects to Redis at `url` (`redis://[:password@]host:port/db`, `rediss://` for TLS)
    /// with the [default prefix](DEFAULT_PREFIX), settling into `store`. The connection
    /// reconnects by itself; while Redis is unreachable reservations fail (closed).
    pub async fn connect(url: &str, store: Store) -> Result<Self, Error> {
        Self::connect_with_prefix(url, store, DEFAULT_PREFIX).await
    }

    /// [`connect`](Self::connect) with its own key prefix (one Redis, several ledgers).
    pub async fn connect_with_prefix(url: &str, store: Store, prefix: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|e| redis_err("bad URL", e))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Storage,
                "budget ledger (redis): connect timed out",
            )
        })?
        .map_err(|e| redis_err("cannot connect", e))?;
        warn_unless_noeviction(&mut conn.clone()).await;
        // Every replica on this database must now count budgets here (a replica on the
        // database ledger refuses to start beside it).
        store
            .set_setting(
                crate::BUDGET_LEDGER_SETTING,
                Some(&format!("redis:{prefix}")),
            )
            .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                store,
                prefix: prefix.to_owned(),
                reserve: Script::new(RESERVE),
                settle: Script::new(&settle_script()),
                reap: Script::new(&reap_script()),
                seed: Script::new(SEED),
                set_limit: Script::new(SET_LIMIT),
                reset: Script::new(RESET),
                trim: Script::new(TRIM),
                unlock: Script::new(UNLOCK),
            }),
        })
    }

    /// The store the journal is applied to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn key(&self, what: &str) -> String {
        format!("{}{what}", self.inner.prefix)
    }

    /// A line's key: account and period length-prefixed, so no account spelling can
    /// collide with another line.
    fn line_key(&self, account: &str, period: &str) -> String {
        format!(
            "{}l:{}:{account}:{period}",
            self.inner.prefix,
            account.len()
        )
    }

    fn reservation_key(&self, id: &str) -> String {
        format!("{}r:{id}", self.inner.prefix)
    }

    /// Seeds line `account`/`period` from the store if Redis does not have it; `false` when
    /// neither has it and `create` is not set.
    async fn ensure_line(&self, account: &str, period: &str, create: bool) -> Result<bool, Error> {
        let key = self.line_key(account, period);
        let exists: bool = redis::cmd("HEXISTS")
            .arg(&key)
            .arg("su")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| redis_err("HEXISTS", e))?;
        if exists {
            return Ok(true);
        }
        let row = self.inner.store.line_row(account, period).await?;
        if row.is_none() && !create {
            return Ok(false);
        }
        let (spent, admin, set_at) = match &row {
            Some(r) => (r.balance.spent, r.admin, r.balance.limit_set_at_ms),
            None => (Spend::default(), Limit::default(), None),
        };
        let _: i64 = self
            .inner
            .seed
            .key(&key)
            .arg(spent.usd_micros)
            .arg(spent.tokens)
            .arg(unit(admin.usd_micros))
            .arg(unit(admin.tokens))
            .arg(unit(set_at))
            .arg(expires_at(period))
            .arg(uuid::Uuid::now_v7().simple().to_string())
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| redis_err("seeding a line", e))?;
        Ok(true)
    }

    /// Applies the journal to the store until it is empty (or another flusher holds the
    /// lock: then it returns 0 at once); returns how many entries this call applied. The
    /// gateway runs it every `flush_interval` ([`spawn_flusher`](Self::spawn_flusher)).
    pub async fn flush(&self) -> Result<usize, Error> {
        Ok(self.try_flush().await?.unwrap_or(0))
    }

    /// [`flush`](Self::flush), `None` when another flusher holds the lock.
    async fn try_flush(&self) -> Result<Option<usize>, Error> {
        let journal = self.key("journal");
        let lock = self.key("flush-lock");
        let token = uuid::Uuid::now_v7().to_string();
        let got: Option<String> = redis::cmd("SET")
            .arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_MS)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| redis_err("SET flush lock", e))?;
        if got.is_none() {
            return Ok(None);
        }
        let result = self.flush_locked(&journal, &lock, &token).await;
        let _: Result<i64, _> = self
            .inner
            .unlock
            .key(&lock)
            .arg(&token)
            .invoke_async(&mut self.conn())
            .await;
        result.map(Some)
    }

    async fn flush_locked(&self, journal: &str, lock: &str, token: &str) -> Result<usize, Error> {
        let mut applied = 0;
        loop {
            let raw: Vec<String> = redis::cmd("LRANGE")
                .arg(journal)
                .arg(0)
                .arg(FLUSH_BATCH - 1)
                .query_async(&mut self.conn())
                .await
                .map_err(|e| redis_err("LRANGE journal", e))?;
            if raw.is_empty() {
                return Ok(applied);
            }
            let mut entries = Vec::with_capacity(raw.len());
            let mut dead = Vec::new();
            for r in &raw {
                match serde_json::from_str::<JournalEntry>(r) {
                    Ok(e) => entries.push((r, e)),
                    Err(_) => dead.push(r),
                }
            }
            let batch: Vec<JournalEntry> = entries.iter().map(|(_, e)| e.clone()).collect();
            if let Err(batch_err) = self.inner.store.apply_budget_journal(&batch).await {
                // One entry the store refuses must not hold up every settlement behind it:
                // apply them one by one — unless the store itself is down.
                self.inner.store.ready().await.map_err(|_| batch_err)?;
                for (r, e) in &entries {
                    if let Err(err) = self
                        .inner
                        .store
                        .apply_budget_journal(std::slice::from_ref(e))
                        .await
                    {
                        tracing::error!(error = %err, id = %e.id, "the store refuses a budget journal entry; moved to the dead-letter list");
                        dead.push(r);
                    }
                }
            }
            if !dead.is_empty() {
                tracing::error!(
                    count = dead.len(),
                    list = %self.key("journal:dead"),
                    "budget journal entries the store cannot apply were set aside"
                );
                let _: i64 = redis::cmd("RPUSH")
                    .arg(self.key("journal:dead"))
                    .arg(&dead)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(|e| redis_err("RPUSH dead letters", e))?;
            }
            let still_ours: i64 = self
                .inner
                .trim
                .key(journal)
                .key(lock)
                .arg(raw.len())
                .arg(token)
                .arg(LOCK_MS)
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| redis_err("trimming the journal", e))?;
            applied += raw.len();
            if still_ours == 0 || raw.len() < FLUSH_BATCH {
                return Ok(applied);
            }
        }
    }

    /// Waits until this process holds the flush lock once (another flusher's, or that of
    /// one that died holding it, runs out within its lease) and applies everything the
    /// journal holds then; a `Storage` error if that takes longer than `within`. What a
    /// replica runs at shutdown, so its own settlements are in the store when it exits.
    pub async fn drain(&self, within: Duration) -> Result<usize, Error> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(applied) = self.try_flush().await? {
                return Ok(applied);
            }
            if tokio::time::Instant::now() >= deadline {
                let left = self.journal_len().await?;
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!(
                        "budget ledger (redis): the journal ({left} entries) was not flushed within {within:?}: another flusher holds its lock"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether Redis answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), Error> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| redis_err("PING", e))?;
        Ok(())
    }

    /// Flushes the journal every `every` until [`Flusher::stop`] (a failed flush is logged
    /// and retried at the next tick: the journal keeps its entries).
    pub fn spawn_flusher(&self, every: Duration) -> Flusher {
        let ledger = self.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
                // Not raced against `stop`: a flush runs to its end and releases the lock.
                if let Err(e) = ledger.flush().await {
                    tracing::warn!(error = %e, "flushing the budget journal failed; retrying");
                }
            }
        });
        Flusher { stop, task }
    }

    /// Entries waiting in the journal (not yet in the store).
    pub async fn journal_len(&self) -> Result<u64, Error> {
        redis::cmd("LLEN")
            .arg(self.key("journal"))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| redis_err("LLEN journal", e))
    }

    /// The balance of a line as Redis holds it, `None` when Redis does not have it.
    async fn redis_balance(&self, account: &str, period: &str) -> Result<Option<Balance>, Error> {
        let h: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.line_key(account, period))
            .arg(&["cu", "ct", "au", "at", "su", "st", "ru", "rt", "as"])
            .query_async(&mut self.conn())
            .await
            .map_err(|e| redis_err("HMGET line", e))?;
        let n = |i: usize| -> Option<u64> { h.get(i)?.as_deref()?.parse().ok() };
        if h.get(4).is_none_or(|v| v.is_none()) {
            return Ok(None);
        }
        let configured = Limit::new(n(0), n(1));
        let admin = Limit::new(n(2), n(3));
        Ok(Some(
            Balance::new(
                admin.over(configured),
                Spend::new(n(4).unwrap_or(0), n(5).unwrap_or(0)),
                Spend::new(n(6).unwrap_or(0), n(7).unwrap_or(0)),
            )
            .limit_set_at(n(8)),
        ))
    }

    /// Changes one budget line as [`Store::change_budget`] does — recorded in the audit log
    /// with who made it — on Redis and in the store. A reset goes through the journal, so
    /// the store zeroes the line exactly where Redis did among the settlements.
    pub async fn change_budget(
        &self,
        account: &str,
        period: &str,
        change: LineChange,
        by: Option<&str>,
    ) -> Result<(), Error> {
        check_line(account, period)?;
        let not_found = || no_line(account, period);
        match change {
            LineChange::SetLimit(limit) => {
                check_limit(&limit)?;
                // The store keeps the admin limit durably (and audits it); Redis applies it.
                self.inner
                    .store
                    .change_budget(account, period, change, by)
                    .await?;
                self.ensure_line(account, period, true).await?;
                let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
                self.set_limit_in_redis(
                    account,
                    period,
                    opt(limit.usd_micros),
                    opt(limit.tokens),
                    crate::now_ms().to_string(),
                )
                .await?;
            }
            LineChange::ClearLimit => {
                if !self.ensure_line(account, period, false).await? {
                    return Err(not_found());
                }
                match self
                    .inner
                    .store
                    .change_budget(account, period, change, by)
                    .await
                {
                    // The line has lived in Redis only (nothing settled yet): audit here.
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        self.audit("budget.limit_cleared", account, period, by)
                            .await?;
                    }
                    other => other?,
                }
                self.set_limit_in_redis(
                    account,
                    period,
                    String::new(),
                    String::new(),
                    String::new(),
                )
                .await?;
            }
            LineChange::Reset => {
                if !self.ensure_line(account, period, false).await? {
                    return Err(not_found());
                }
                let entry = serde_json::json!({
                    "id": format!("reset:{}", uuid::Uuid::now_v7()),
                    "reset": LineKey { account: account.to_owned(), period: period.to_owned() },
                })
                .to_string();
                let done: i64 = self
                    .inner
                    .reset
                    .key(self.line_key(account, period))
                    .key(self.key("journal"))
                    .arg(entry)
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(|e| redis_err("reset", e))?;
                if done == 0 {
                    return Err(not_found());
                }
                self.audit("budget.reset", account, period, by).await?;
            }
        }
        Ok(())
    }

    /// Applies an admin limit to Redis's copy of a line (seeding it first if it vanished
    /// since: the seed carries the store's admin limit, and the script applies it again).
    async fn set_limit_in_redis(
        &self,
        account: &str,
        period: &str,
        usd: String,
        tokens: String,
        set_at: String,
    ) -> Result<(), Error> {
        let key = self.line_key(account, period);
        for _ in 0..2 {
            let applied: i64 = self
                .inner
                .set_limit
                .key(&key)
                .arg(&usd)
                .arg(&tokens)
                .arg(&set_at)
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| redis_err("setting a limit", e))?;
            if applied == 1 {
                return Ok(());
            }
            self.ensure_line(account, period, true).await?;
        }
        Err(Error::new(
            ErrorKind::Storage,
            "budget ledger (redis): the line vanished while its limit was set; it is stored and applies when the line is next seeded",
        ))
    }

    async fn audit(
        &self,
        kind: &str,
        account: &str,
        period: &str,
        by: Option<&str>,
    ) -> Result<(), Error> {
        let mut entry = AuditEntry::new(
            kind,
            serde_json::json!({"account": account, "period": period}),
        );
        entry.actor = by.map(str::to_owned);
        self.inner.store.append_audit(entry).await.map(|_| ())
    }

    async fn end(&self, id: &str, actual: Option<Spend>) -> Result<(), Error> {
        let (mode, spend) = match actual {
            Some(s) => ("a", s),
            None => ("h", Spend::default()),
        };
        let _: i64 = self
            .inner
            .settle
            .key(self.reservation_key(id))
            .key(self.key("leases"))
            .key(self.key("journal"))
            .arg(id)
            .arg(mode)
            .arg(spend.usd_micros.min(MAX_USD_MICROS))
            .arg(spend.tokens.min(MAX_TOKENS))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| redis_err("settle", e))?;
        Ok(())
    }
}

/// When Redis may drop a line: two days after its period ends (Unix seconds; a line is
/// never looked up after its period); 0 for `total`, kept forever.
fn expires_at(period: &str) -> i64 {
    const DAY: i64 = 86_400;
    let num = |s: &str| s.parse::<i64>().ok();
    let date = |p: &str| -> Option<(i64, i64, i64)> {
        let mut it = p.split('-');
        Some((
            num(it.next()?)?,
            num(it.next()?)?,
            it.next().map_or(Some(1), num)?,
        ))
    };
    let end = if let Some((y, m, d)) = period.strip_prefix("day:").and_then(date) {
        days_from_civil(y, m, d) + 1
    } else if let Some((y, m, _)) = period.strip_prefix("month:").and_then(date) {
        let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        days_from_civil(y, m, 1)
    } else {
        return 0;
    };
    (end + 2) * DAY
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[async_trait]
impl crate::BudgetAdmin for RedisLedger {
    async fn change_budget(
        &self,
        account: &str,
        period: &str,
        change: LineChange,
        by: Option<&str>,
    ) -> Result<(), Error> {
        RedisLedger::change_budget(self, account, period, change, by).await
    }

    async fn ready(&self) -> Result<(), Error> {
        self.ping().await
    }
}

#[async_trait]
impl BudgetLedger for RedisLedger {
    async fn reserve(&self, r: &Reservation) -> Result<(), Error> {
        // The lines' identities as the journal names them: the database ledger's spelling.
        let identities = stored_keys(r)?;
        let keys: Vec<String> = r
            .lines
            .iter()
            .map(|l| self.line_key(&l.account, &l.period))
            .collect();
        let keys_json = serde_json::to_string(&keys)
            .map_err(|e| Error::internal(format!("budget lines do not serialize: {e}")))?;
        if r.amount.usd_micros > MAX_USD_MICROS || r.amount.tokens > MAX_TOKENS {
            return Err(Error::invalid_request(format!(
                "a reservation of {} micro-dollars and {} tokens is beyond any budget",
                r.amount.usd_micros, r.amount.tokens
            )));
        }
        for l in &r.lines {
            check_storable(&l.account)?;
        }
        let amount = r.amount;
        let nonce = uuid::Uuid::now_v7().simple().to_string();
        // Each round seeds at most the one line Redis lacks; a reservation has a few lines.
        for _ in 0..=r.lines.len() {
            let mut call = self.inner.reserve.prepare_invoke();
            call.key(self.reservation_key(&r.id))
                .key(self.key("leases"));
            for k in &keys {
                call.key(k);
            }
            call.arg(&r.id)
                .arg(amount.usd_micros)
                .arg(amount.tokens)
                .arg(r.expires_at_ms)
                .arg(&identities)
                .arg(&keys_json)
                .arg(&nonce);
            for l in &r.lines {
                call.arg(unit(l.limit.usd_micros)).arg(unit(l.limit.tokens));
            }
            let outcome: Vec<i64> = call
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| redis_err("reserve", e))?;
            let line = |i: i64| usize::try_from(i - 1).ok().and_then(|i| r.lines.get(i));
            match outcome.as_slice() {
                [0] | [1] => return Ok(()),
                [2, i] => {
                    let l = line(*i).ok_or_else(|| Error::internal("reserve: bad line index"))?;
                    self.ensure_line(&l.account, &l.period, true).await?;
                }
                [3, i] => {
                    let l = line(*i).ok_or_else(|| Error::internal("reserve: bad line index"))?;
                    let b = self.redis_balance(&l.account, &l.period).await?;
                    return Err(budget_exceeded(&l.account, &l.period, b.as_ref()));
                }
                other => {
                    return Err(Error::internal(format!(
                        "reserve: unexpected answer from the script: {other:?}"
                    )));
                }
            }
        }
        Err(Error::new(
            ErrorKind::Storage,
            "budget ledger (redis): lines vanished while being seeded",
        ))
    }

    async fn settle(&self, id: &str, actual: Spend) -> Result<(), Error> {
        self.end(id, Some(actual)).await
    }

    async fn settle_held(&self, id: &str) -> Result<(), Error> {
        self.end(id, None).await
    }

    async fn reap(&self, now_ms: u64) -> Result<u64, Error> {
        const BATCH: u64 = 200;
        let mut total = 0;
        loop {
            let (n, read): (u64, u64) = self
                .inner
                .reap
                .key(self.key("leases"))
                .arg(now_ms)
                .arg(self.reservation_key(""))
                .arg(REAPED_KEPT_S)
                .arg(BATCH)
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| redis_err("reap", e))?;
            total += n;
            if read < BATCH {
                break;
            }
        }
        // Ids of journal entries applied two days ago cannot come back: forget them.
        self.inner
            .store
            .prune_budget_applied(now_ms.saturating_sub(2 * REAPED_KEPT_S * 1000))
            .await?;
        Ok(total)
    }

    async fn balance(&self, account: &str, period: &str) -> Result<Option<Balance>, Error> {
        match self.redis_balance(account, period).await? {
            Some(b) => Ok(Some(b)),
            None => self.inner.store.balance(account, period).await,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_may_go_two_days_after_its_period_ends() {
        let day = |y, m, d| days_from_civil(y, m, d) * 86_400;
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(expires_at("day:2026-12-31"), day(2027, 1, 3));
        assert_eq!(expires_at("day:2028-02-28"), day(2028, 3, 2), "a leap year");
        assert_eq!(expires_at("month:2026-12"), day(2027, 1, 3));
        assert_eq!(expires_at("month:2027-01"), day(2027, 2, 3));
        assert_eq!(expires_at("total"), 0);
    }
}
