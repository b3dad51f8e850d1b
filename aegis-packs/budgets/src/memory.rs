//! [`MemoryLedger`]: the in-process [`BudgetLedger`] (one process; tests, embedding hosts).

use std::{collections::HashMap, sync::Mutex};

use aegis_contracts::{
    Balance, BudgetLedger, Error, ErrorKind, Limit, Reservation, Spend, async_trait,
    budget_exceeded, check_limit,
};

#[derive(Default)]
struct Inner {
    lines: HashMap<(String, String), (Limit, Spend, Spend)>,
    held: HashMap<String, Reservation>,
    /// Reservations the reaper returned the hold of, kept for a late settlement.
    reaped: HashMap<String, Reservation>,
    /// Limits an admin set, by line, and when.
    set: HashMap<(String, String), (Limit, u64)>,
}

/// An in-memory ledger: one lock makes every reservation atomic across its lines.
#[derive(Default)]
pub struct MemoryLedger {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryLedger")
    }
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The limit that applies to a line: an admin's per unit, else the configured one's.
fn effective(set: Option<&(Limit, u64)>, configured: Limit) -> Limit {
    set.map_or(configured, |(admin, _)| admin.over(configured))
}

#[async_trait]
impl BudgetLedger for MemoryLedger {
    async fn reserve(&self, r: &Reservation) -> Result<(), Error> {
        let mut inner = self.lock();
        if inner.held.contains_key(&r.id) {
            return Ok(());
        }
        for line in &r.lines {
            let key = (line.account.clone(), line.period.clone());
            let limit = effective(inner.set.get(&key), line.limit);
            let entry =
                inner
                    .lines
                    .entry(key)
                    .or_insert((line.limit, Spend::default(), Spend::default()));
            // The line keeps its configured limit; an admin's applies over it.
            entry.0 = line.limit;
            let mut line = line.clone();
            line.limit = limit;
            if !line.admits(&entry.1, &entry.2, &r.amount) {
                let b = Balance::new(limit, entry.1, entry.2);
                return Err(budget_exceeded(&line.account, &line.period, Some(&b)));
            }
        }
        for line in &r.lines {
            if let Some(e) = inner
                .lines
                .get_mut(&(line.account.clone(), line.period.clone()))
            {
                e.2 = e.2.plus(r.amount);
            }
        }
        inner.held.insert(r.id.clone(), r.clone());
        Ok(())
    }

    async fn settle(&self, id: &str, actual: Spend) -> Result<(), Error> {
        let mut inner = self.lock();
        // A reaped reservation's hold was already returned: only the spend moves.
        let (r, release) = match inner.held.remove(id) {
            Some(r) => {
                let amount = r.amount;
                (r, amount)
            }
            None => match inner.reaped.remove(id) {
                Some(r) => (r, Spend::default()),
                None => return Ok(()),
            },
        };
        for line in &r.lines {
            if let Some(e) = inner
                .lines
                .get_mut(&(line.account.clone(), line.period.clone()))
            {
                e.2 = e.2.minus(release);
                e.1 = e.1.plus(actual);
            }
        }
        Ok(())
    }

    async fn settle_held(&self, id: &str) -> Result<(), Error> {
        let held = {
            let inner = self.lock();
            inner
                .held
                .get(id)
                .or_else(|| inner.reaped.get(id))
                .map(|r| r.amount)
        };
        match held {
            Some(amount) => self.settle(id, amount).await,
            None => Ok(()),
        }
    }

    async fn reap(&self, now_ms: u64) -> Result<u64, Error> {
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .held
            .values()
            .filter(|r| r.expires_at_ms < now_ms)
            .map(|r| r.id.clone())
            .collect();
        for id in &expired {
            // The hold goes back; the reservation stays for a late settlement.
            if let Some(r) = inner.held.remove(id) {
                for line in &r.lines {
                    if let Some(e) = inner
                        .lines
                        .get_mut(&(line.account.clone(), line.period.clone()))
                    {
                        e.2 = e.2.minus(r.amount);
                    }
                }
                inner.reaped.insert(id.clone(), r);
            }
        }
        Ok(expired.len() as u64)
    }

    async fn balance(&self, account: &str, period: &str) -> Result<Option<Balance>, Error> {
        let inner = self.lock();
        let key = (account.to_owned(), period.to_owned());
        let set = inner.set.get(&key);
        Ok(inner.lines.get(&key).map(|(l, s, r)| {
            Balance::new(effective(set, *l), *s, *r).limit_set_at(set.map(|(_, at)| *at))
        }))
    }

    async fn set_limit(&self, account: &str, period: &str, limit: Limit) -> Result<(), Error> {
        check_limit(&limit)?;
        let mut inner = self.lock();
        let key = (account.to_owned(), period.to_owned());
        // The units given replace the admin's earlier ones; the others stay as they were.
        let before = inner.set.get(&key).map(|(l, _)| *l).unwrap_or_default();
        let merged = limit.over(before);
        inner.set.insert(key.clone(), (merged, crate::now_ms()));
        inner
            .lines
            .entry(key)
            .or_insert((Limit::default(), Spend::default(), Spend::default()));
        Ok(())
    }

    async fn clear_limit(&self, account: &str, period: &str) -> Result<(), Error> {
        let mut inner = self.lock();
        let key = (account.to_owned(), period.to_owned());
        if !inner.lines.contains_key(&key) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no budget line `{account}` for `{period}`"),
            ));
        }
        inner.set.remove(&key);
        Ok(())
    }
}
