//! [`MemoryCheckpointStore`]: the in-process [`CheckpointStore`].

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use aegis_contracts::{Checkpoint, CheckpointStore, Error, ErrorKind, async_trait};

/// Keeps checkpoints in memory: for tests, examples and short-lived processes. Runs do not
/// survive a restart; use `aegis-store` for that.
///
/// Bounded: beyond `capacity` runs, the oldest finished runs are forgotten (paused and
/// running ones never are), so a long-lived host does not grow without limit.
#[derive(Debug)]
pub struct MemoryCheckpointStore {
    inner: Mutex<Runs>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Runs {
    by_id: HashMap<String, Vec<Checkpoint>>,
    order: VecDeque<String>,
}

impl Default for MemoryCheckpointStore {
    fn default() -> Self {
        Self::with_capacity(10_000)
    }
}

impl MemoryCheckpointStore {
    /// An empty store remembering up to 10,000 finished runs.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store remembering up to `capacity` finished runs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Runs::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Runs>, Error> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("checkpoint store lock poisoned"))
    }
}

impl Runs {
    fn evict(&mut self, capacity: usize) {
        let mut i = 0;
        while self.by_id.len() > capacity && i < self.order.len() {
            let finished = self.by_id[&self.order[i]]
                .last()
                .is_some_and(|c| c.status.is_terminal());
            if finished {
                if let Some(id) = self.order.remove(i) {
                    self.by_id.remove(&id);
                }
            } else {
                i += 1;
            }
        }
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn put(&self, cp: &Checkpoint, expected_version: Option<u64>) -> Result<(), Error> {
        let mut runs = self.lock()?;
        let current = runs
            .by_id
            .get(&cp.run_id)
            .and_then(|h| h.last())
            .map(|c| c.version);
        if current != expected_version {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "run {} is at version {}, not {}: another writer got there first",
                    cp.run_id,
                    current.unwrap_or(0),
                    expected_version.unwrap_or(0)
                ),
            ));
        }
        if cp.version != expected_version.unwrap_or(0) + 1 {
            return Err(Error::internal(format!(
                "checkpoint version {} does not follow {}",
                cp.version,
                expected_version.unwrap_or(0)
            )));
        }
        if current.is_none() {
            runs.order.push_back(cp.run_id.clone());
        }
        let history = runs.by_id.entry(cp.run_id.clone()).or_default();
        if cp.status.is_terminal() {
            // A terminal checkpoint supersedes the run's history (the contract of `put`).
            for old in history.iter_mut() {
                old.state = serde_json::value::RawValue::from_string("null".into())
                    .map_err(|e| Error::internal(format!("{e}")))?;
                old.interrupt = None;
            }
        }
        history.push(cp.clone());
        if cp.status.is_terminal() {
            runs.evict(self.capacity);
        }
        Ok(())
    }

    async fn latest(&self, run_id: &str) -> Result<Option<Checkpoint>, Error> {
        Ok(self
            .lock()?
            .by_id
            .get(run_id)
            .and_then(|h| h.last().cloned()))
    }

    async fn get(&self, run_id: &str, version: u64) -> Result<Option<Checkpoint>, Error> {
        Ok(self
            .lock()?
            .by_id
            .get(run_id)
            .and_then(|h| h.iter().find(|c| c.version == version).cloned()))
    }

    async fn list(&self, run_id: &str) -> Result<Vec<Checkpoint>, Error> {
        Ok(self.lock()?.by_id.get(run_id).cloned().unwrap_or_default())
    }
}
