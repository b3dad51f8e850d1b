//! Catalog pins: for each server, the catalog an admin (or trust-on-first-use) approved and
//! the one it serves now. A server whose served catalog is not the pinned one is
//! quarantined — none of its tools is listed or callable — until the new one is approved.

use std::{collections::BTreeMap, sync::Mutex};

use aegis_contracts::{Error, ErrorKind};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What is known about one server's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRecord {
    /// The server id.
    pub server: String,
    /// The approved catalog's hash, when one is approved.
    pub pinned_hash: Option<String>,
    /// The approved catalog (canonical JSON).
    pub pinned_catalog: Option<String>,
    /// Who approved it (`trust_first` for a first catalog pinned on sight).
    pub approved_by: Option<String>,
    /// When, Unix ms.
    pub approved_at_ms: Option<u64>,
    /// The hash of the catalog the server served when last listed.
    pub seen_hash: String,
    /// That catalog (canonical JSON).
    pub seen_catalog: String,
    /// When it was listed, Unix ms.
    pub seen_at_ms: u64,
}

impl PinRecord {
    /// Whether the catalog the server serves is the approved one.
    pub fn pinned(&self) -> bool {
        self.pinned_hash.as_deref() == Some(self.seen_hash.as_str())
    }
}

/// Where pins live. The gateway keeps them in its database, shared by every replica;
/// [`MemoryPins`] keeps them in the process.
#[async_trait]
pub trait PinStore: Send + Sync + 'static {
    /// Records that `server` serves the catalog `hash` (`catalog` its canonical JSON). With
    /// `pin_if_unpinned`, pins it when the server has no pin yet — atomically, so two
    /// replicas that see different first catalogs pin only one. Returns the record after.
    async fn observe(
        &self,
        server: &str,
        hash: &str,
        catalog: &str,
        pin_if_unpinned: bool,
    ) -> Result<PinRecord, Error>;

    /// Pins the catalog `server` was last seen serving, if its hash is `hash` (what the
    /// admin was shown); a [`Conflict`](ErrorKind::Conflict) when it changed since, a
    /// [`NotFound`](ErrorKind::NotFound) for a server never seen.
    async fn approve(&self, server: &str, hash: &str, by: &str) -> Result<PinRecord, Error>;

    /// The record of `server`, once its catalog was seen.
    async fn get(&self, server: &str) -> Result<Option<PinRecord>, Error>;
}

/// Pins in memory: lost when the process ends (embedding hosts, tests).
#[derive(Debug, Default)]
pub struct MemoryPins {
    records: Mutex<BTreeMap<String, PinRecord>>,
}

impl MemoryPins {
    /// No pins.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Unix ms now.
/// Who a first catalog pinned on sight is recorded as approved by.
pub const TRUST_FIRST: &str = "trust_first";

/// Now, in Unix ms (what pins and approvals record).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[async_trait]
impl PinStore for MemoryPins {
    async fn observe(
        &self,
        server: &str,
        hash: &str,
        catalog: &str,
        pin_if_unpinned: bool,
    ) -> Result<PinRecord, Error> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        let r = records
            .entry(server.to_owned())
            .or_insert_with(|| PinRecord {
                server: server.to_owned(),
                pinned_hash: None,
                pinned_catalog: None,
                approved_by: None,
                approved_at_ms: None,
                seen_hash: String::new(),
                seen_catalog: String::new(),
                seen_at_ms: now,
            });
        r.seen_hash = hash.to_owned();
        r.seen_catalog = catalog.to_owned();
        r.seen_at_ms = now;
        if pin_if_unpinned && r.pinned_hash.is_none() {
            r.pinned_hash = Some(hash.to_owned());
            r.pinned_catalog = Some(catalog.to_owned());
            r.approved_by = Some(TRUST_FIRST.to_owned());
            r.approved_at_ms = Some(now);
        }
        Ok(r.clone())
    }

    async fn approve(&self, server: &str, hash: &str, by: &str) -> Result<PinRecord, Error> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let Some(r) = records.get_mut(server) else {
            return Err(not_seen(server));
        };
        if r.seen_hash != hash {
            return Err(changed(server, hash, &r.seen_hash));
        }
        r.pinned_hash = Some(r.seen_hash.clone());
        r.pinned_catalog = Some(r.seen_catalog.clone());
        r.approved_by = Some(by.to_owned());
        r.approved_at_ms = Some(now_ms());
        Ok(r.clone())
    }

    async fn get(&self, server: &str) -> Result<Option<PinRecord>, Error> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(server)
            .cloned())
    }
}

/// The error for approving a server whose catalog was never seen.
pub fn not_seen(server: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("no catalog of MCP server `{server}` has been seen"),
    )
}

/// The error for approving a catalog the server no longer serves.
pub fn changed(server: &str, asked: &str, seen: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "MCP server `{server}` now serves catalog {seen}, not {asked}: review the new diff before approving"
        ),
    )
    .with_code("catalog_changed")
}
