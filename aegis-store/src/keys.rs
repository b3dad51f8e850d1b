//! Virtual API keys and the [`KeyAuthenticator`].
//!
//! A key looks like `aegis_sk_<43 random base64url chars>` (256 bits). It is shown once, by
//! [`Store::create_key`]; the store keeps only its SHA-256 and its first
//! [`PREFIX_LEN`] random characters, the *prefix*, which identifies the key in listings and
//! audit records and is the lookup index. Resolving a key looks the row up by prefix and
//! compares the full hash in constant time (`subtle`); unknown prefixes are compared
//! against a dummy hash, so timing does not tell whether a prefix exists.
//!
//! [`KeyAuthenticator`] keeps a resolved key for `cache_ms` (default 1000 ms; 0 turns the
//! cache off), so a busy key costs no database round trip per request. The bound that buys:
//! a key revoked or rotated, or a principal changed, through this process's store takes
//! effect at once (the change empties the cache); through another replica, within
//! `cache_ms`. Expiry is checked on every call, cached or not.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use aegis_contracts::{Authenticator, Credentials, ErrorKind, Principal};
//! use aegis_store::{KeyAuthenticator, NewKey, Store};
//!
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! let created = store
//!     .create_key(NewKey::new(Principal::new("alice").with_team("payments").with_role("approver")).name("laptop"))
//!     .await
//!     .unwrap();
//! let auth = KeyAuthenticator::new(store.clone());
//! let who = auth.authenticate(&Credentials::bearer(created.key.expose())).await.unwrap();
//! assert_eq!((who.id.as_str(), who.team.as_deref()), ("alice", Some("payments")));
//!
//! store.revoke_key(&created.info.id, Some("admin")).await.unwrap();
//! let err = auth.authenticate(&Credentials::bearer(created.key.expose())).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Unauthenticated);
//! # });
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aegis_contracts::{
    Authenticator, Credentials, Error, ErrorKind, Principal, Secret, TelemetrySink, async_trait,
};
use aegis_core::Registry;
use base64::Engine;
use schemars::JsonSchema;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    AuditSink, Store,
    audit::{AuditEntry, append_in},
    conflict, db_err, entity, from_json, is_unique_violation, not_found, now_ms, to_json,
};

/// Every virtual key starts with this.
pub const KEY_PREFIX: &str = "aegis_sk_";
/// Random characters of a key kept (in clear) to identify it.
pub const PREFIX_LEN: usize = 12;
const BODY_LEN: usize = 43;

/// What to create with [`Store::create_key`].
#[derive(Debug, Clone)]
pub struct NewKey {
    principal: Principal,
    name: String,
    expires_at_ms: Option<u64>,
    by: Option<String>,
}

impl NewKey {
    /// A key for `principal` (its team, org, roles and labels are stored with it and
    /// returned by authentication), without expiry.
    pub fn new(principal: Principal) -> Self {
        Self {
            principal,
            name: String::new(),
            expires_at_ms: None,
            by: None,
        }
    }

    /// A human label (`laptop`, `ci`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Expires at this Unix ms.
    pub fn expires_at_ms(mut self, at: u64) -> Self {
        self.expires_at_ms = Some(at);
        self
    }

    /// Who creates it (for the audit log).
    pub fn by(mut self, actor: impl Into<String>) -> Self {
        self.by = Some(actor.into());
        self
    }
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ApiKeyInfo {
    /// Its id.
    pub id: String,
    /// `aegis_sk_` and the first random characters: how humans recognise it.
    pub prefix: String,
    /// The principal it authenticates as.
    pub principal_id: String,
    /// Its label.
    pub name: String,
    /// Unix ms.
    pub created_at_ms: u64,
    /// Unix ms after which it is refused.
    pub expires_at_ms: Option<u64>,
    /// Unix ms it was revoked.
    pub revoked_at_ms: Option<u64>,
    /// The key that replaced it on rotation.
    pub replaced_by: Option<String>,
}

impl ApiKeyInfo {
    /// Whether it authenticates at `now_ms`.
    pub fn is_active_at(&self, now_ms: u64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

/// A freshly created key: the only time its secret is available.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreatedKey {
    /// The stored part.
    pub info: ApiKeyInfo,
    /// The key itself; hand it to the user now, it cannot be recovered.
    pub key: Secret,
}

fn to_info(m: entity::api_key::Model) -> ApiKeyInfo {
    ApiKeyInfo {
        id: m.id,
        prefix: format!("{KEY_PREFIX}{}", m.prefix),
        principal_id: m.principal_id,
        name: m.name,
        created_at_ms: m.created_at_ms.max(0) as u64,
        expires_at_ms: m.expires_at_ms.map(|t| t.max(0) as u64),
        revoked_at_ms: m.revoked_at_ms.map(|t| t.max(0) as u64),
        replaced_by: m.replaced_by,
    }
}

fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn new_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::internal(format!("no randomness for a key: {e}")))?;
    Ok(format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn unauthenticated(msg: &str) -> Error {
    Error::new(ErrorKind::Unauthenticated, msg)
}

fn to_principal(m: entity::principal::Model) -> Result<Principal, Error> {
    let mut p = Principal::new(m.id);
    p.team = m.team;
    p.org = m.org;
    p.roles = from_json("principal roles", &m.roles)?;
    p.labels = from_json::<BTreeMap<String, String>>("principal labels", &m.labels)?;
    Ok(p)
}

fn check_principal(p: &Principal) -> Result<(), Error> {
    if p.id.trim().is_empty() || p.id.len() > 256 {
        return Err(Error::invalid_request(
            "principal id must be 1 to 256 characters",
        ));
    }
    Ok(())
}

async fn upsert_principal_in(txn: &DatabaseTransaction, p: &Principal) -> Result<(), Error> {
    use entity::principal as pr;
    let now = now_ms();
    let roles = to_json(&p.roles)?;
    let labels = to_json(&p.labels)?;
    let updated = pr::Entity::update_many()
        .col_expr(pr::Column::Team, Expr::value(p.team.clone()))
        .col_expr(pr::Column::Org, Expr::value(p.org.clone()))
        .col_expr(pr::Column::Roles, Expr::value(roles.clone()))
        .col_expr(pr::Column::Labels, Expr::value(labels.clone()))
        .col_expr(pr::Column::UpdatedAtMs, Expr::value(now))
        .filter(pr::Column::Id.eq(p.id.clone()))
        .exec(txn)
        .await
        .map_err(|e| db_err("cannot update the principal", e))?;
    if updated.rows_affected == 0 {
        pr::Entity::insert(pr::ActiveModel {
            id: Set(p.id.clone()),
            team: Set(p.team.clone()),
            org: Set(p.org.clone()),
            roles: Set(roles),
            labels: Set(labels),
            created_at_ms: Set(now),
            updated_at_ms: Set(now),
        })
        .exec_without_returning(txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                conflict(format!(
                    "principal `{}` was created concurrently; retry",
                    p.id
                ))
            } else {
                db_err("cannot insert the principal", e)
            }
        })?;
    }
    Ok(())
}

/// The principal a new key belongs to: created as given when it does not exist; when it
/// does, the request may leave a field empty (keep it) or repeat its value, and anything
/// else — another team, other roles, other labels — is refused. Creating a key never
/// rewrites who someone is; [`Store::upsert_principal`] does that, on purpose.
async fn ensure_principal_in(txn: &DatabaseTransaction, p: &Principal) -> Result<(), Error> {
    use entity::principal as pr;
    let Some(existing) = pr::Entity::find_by_id(p.id.clone())
        .one(txn)
        .await
        .map_err(|e| db_err("cannot read the principal", e))?
    else {
        return upsert_principal_in(txn, p).await;
    };
    let roles: Vec<String> = from_json("principal roles", &existing.roles)?;
    let labels: BTreeMap<String, String> = from_json("principal labels", &existing.labels)?;
    let mut differs = Vec::new();
    if p.team.is_some() && p.team != existing.team {
        differs.push(format!("team {:?} (it is {:?})", p.team, existing.team));
    }
    if p.org.is_some() && p.org != existing.org {
        differs.push(format!("org {:?} (it is {:?})", p.org, existing.org));
    }
    let (mut asked, mut held) = (p.roles.clone(), roles.clone());
    asked.sort();
    held.sort();
    if !p.roles.is_empty() && asked != held {
        differs.push(format!("roles {asked:?} (they are {held:?})"));
    }
    if !p.labels.is_empty() && p.labels != labels {
        differs.push("labels".to_owned());
    }
    if differs.is_empty() {
        return Ok(());
    }
    Err(conflict(format!(
        "principal `{}` already exists; a new key does not change it, and this one asks for {}. \
         Create the key without them, or change the principal first",
        p.id,
        differs.join(", ")
    )))
}

async fn commit_or_rollback<T>(
    txn: crate::WriteTxn,
    result: Result<T, Error>,
    what: &str,
) -> Result<T, Error> {
    match result {
        Ok(v) => {
            txn.commit().await.map_err(|e| db_err(what, e))?;
            Ok(v)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

impl Store {
    /// Stores (or updates) a principal's team, org, roles and labels. Runs started by it
    /// afterwards record its team, which governs who else may see them.
    pub async fn upsert_principal(&self, principal: &Principal) -> Result<(), Error> {
        check_principal(principal)?;
        let txn = self.begin_write().await?;
        let r = upsert_principal_in(&txn, principal).await;
        let r = commit_or_rollback(txn, r, "cannot commit the principal").await;
        self.inner.key_cache.clear();
        r
    }

    /// A stored principal.
    pub async fn principal(&self, id: &str) -> Result<Option<Principal>, Error> {
        entity::principal::Entity::find_by_id(id.to_owned())
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot read the principal", e))?
            .map(to_principal)
            .transpose()
    }

    async fn insert_key_in(
        &self,
        txn: &DatabaseTransaction,
        principal_id: &str,
        name: &str,
        expires_at_ms: Option<u64>,
    ) -> Result<CreatedKey, Error> {
        let now = now_ms();
        let secret = new_secret()?;
        let body = &secret[KEY_PREFIX.len()..];
        let model = entity::api_key::Model {
            id: uuid::Uuid::now_v7().to_string(),
            prefix: body[..PREFIX_LEN].to_owned(),
            hash: hex::encode(hash_key(&secret)),
            principal_id: principal_id.to_owned(),
            name: name.to_owned(),
            created_at_ms: now,
            expires_at_ms: expires_at_ms.map(|t| t.min(i64::MAX as u64) as i64),
            revoked_at_ms: None,
            replaced_by: None,
        };
        entity::api_key::Entity::insert(entity::api_key::ActiveModel {
            id: Set(model.id.clone()),
            prefix: Set(model.prefix.clone()),
            hash: Set(model.hash.clone()),
            principal_id: Set(model.principal_id.clone()),
            name: Set(model.name.clone()),
            created_at_ms: Set(now),
            expires_at_ms: Set(model.expires_at_ms),
            revoked_at_ms: Set(None),
            replaced_by: Set(None),
        })
        .exec_without_returning(txn)
        .await
        .map_err(|e| db_err("cannot store the key", e))?;
        Ok(CreatedKey {
            info: to_info(model),
            key: Secret::new(secret),
        })
    }

    /// Creates a key for a principal (created alongside when new; an existing one is never
    /// changed). The secret is returned once and stored only as a hash. Errors: an empty
    /// principal id, a name over 200 characters or an expiry in the past (`InvalidRequest`);
    /// a principal that exists with another team, org, roles or labels than asked for
    /// (`Conflict`). Nothing is stored on an error.
    pub async fn create_key(&self, new: NewKey) -> Result<CreatedKey, Error> {
        check_principal(&new.principal)?;
        if new.name.chars().count() > 200 {
            return Err(Error::invalid_request(
                "key name must be at most 200 characters",
            ));
        }
        if let Some(t) = new.expires_at_ms
            && t <= now_ms() as u64
        {
            return Err(Error::invalid_request("key expiry must be in the future"));
        }
        let txn = self.begin_write().await?;
        let result = async {
            ensure_principal_in(&txn, &new.principal).await?;
            let created = self
                .insert_key_in(&txn, &new.principal.id, &new.name, new.expires_at_ms)
                .await?;
            let mut entry = AuditEntry::new(
                "key.created",
                json!({
                    "key_id": created.info.id,
                    "prefix": created.info.prefix,
                    "principal": created.info.principal_id,
                    "name": created.info.name,
                    "expires_at_ms": created.info.expires_at_ms,
                }),
            );
            entry.actor = new.by.clone();
            append_in(&txn, &entry);
            Ok(created)
        }
        .await;
        commit_or_rollback(txn, result, "cannot commit the key").await
    }

    /// A key by id.
    pub async fn key(&self, key_id: &str) -> Result<Option<ApiKeyInfo>, Error> {
        Ok(entity::api_key::Entity::find_by_id(key_id.to_owned())
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot read the key", e))?
            .map(to_info))
    }

    /// Keys, oldest first; only `principal_id`'s when given. Secrets are never returned.
    pub async fn list_keys(&self, principal_id: Option<&str>) -> Result<Vec<ApiKeyInfo>, Error> {
        let mut q =
            entity::api_key::Entity::find().order_by_asc(entity::api_key::Column::CreatedAtMs);
        if let Some(p) = principal_id {
            q = q.filter(entity::api_key::Column::PrincipalId.eq(p));
        }
        Ok(q.all(self.db())
            .await
            .map_err(|e| db_err("cannot list keys", e))?
            .into_iter()
            .map(to_info)
            .collect())
    }

    async fn revoke_in(
        &self,
        txn: &DatabaseTransaction,
        key_id: &str,
        now: i64,
    ) -> Result<entity::api_key::Model, Error> {
        use entity::api_key as k;
        let res = k::Entity::update_many()
            .col_expr(k::Column::RevokedAtMs, Expr::value(now))
            .filter(k::Column::Id.eq(key_id))
            .filter(k::Column::RevokedAtMs.is_null())
            .exec(txn)
            .await
            .map_err(|e| db_err("cannot revoke the key", e))?;
        let row = k::Entity::find_by_id(key_id.to_owned())
            .one(txn)
            .await
            .map_err(|e| db_err("cannot read the key", e))?
            .ok_or_else(|| not_found(format!("no key `{key_id}`")))?;
        if res.rows_affected != 1 {
            return Err(conflict(format!("key `{key_id}` is already revoked")));
        }
        Ok(row)
    }

    /// Revokes a key, effective immediately. Errors: unknown id (`NotFound`), already
    /// revoked (`Conflict`); nothing changes then.
    pub async fn revoke_key(&self, key_id: &str, by: Option<&str>) -> Result<ApiKeyInfo, Error> {
        let now = now_ms();
        let txn = self.begin_write().await?;
        let result = async {
            let row = self.revoke_in(&txn, key_id, now).await?;
            let mut entry = AuditEntry::new(
                "key.revoked",
                json!({"key_id": row.id, "prefix": format!("{KEY_PREFIX}{}", row.prefix), "principal": row.principal_id}),
            );
            entry.actor = by.map(str::to_owned);
            append_in(&txn, &entry);
            Ok(to_info(row))
        }
        .await;
        let result = commit_or_rollback(txn, result, "cannot commit the revocation").await;
        self.inner.key_cache.clear();
        result
    }

    /// Rotates a key: a new key for the same principal and name (expiring at
    /// `expires_at_ms`, or never), the old one revoked, atomically. Errors as for
    /// [`revoke_key`](Self::revoke_key).
    pub async fn rotate_key(
        &self,
        key_id: &str,
        expires_at_ms: Option<u64>,
        by: Option<&str>,
    ) -> Result<CreatedKey, Error> {
        if let Some(t) = expires_at_ms
            && t <= now_ms() as u64
        {
            return Err(Error::invalid_request("key expiry must be in the future"));
        }
        let now = now_ms();
        let txn = self.begin_write().await?;
        let result = async {
            let old = self.revoke_in(&txn, key_id, now).await?;
            let created = self
                .insert_key_in(&txn, &old.principal_id, &old.name, expires_at_ms)
                .await?;
            entity::api_key::Entity::update_many()
                .col_expr(
                    entity::api_key::Column::ReplacedBy,
                    Expr::value(created.info.id.clone()),
                )
                .filter(entity::api_key::Column::Id.eq(old.id.clone()))
                .exec(&*txn)
                .await
                .map_err(|e| db_err("cannot link the rotated key", e))?;
            let mut entry = AuditEntry::new(
                "key.rotated",
                json!({
                    "old_key_id": old.id,
                    "new_key_id": created.info.id,
                    "prefix": created.info.prefix,
                    "principal": old.principal_id,
                }),
            );
            entry.actor = by.map(str::to_owned);
            append_in(&txn, &entry);
            Ok(created)
        }
        .await;
        let result = commit_or_rollback(txn, result, "cannot commit the rotation").await;
        self.inner.key_cache.clear();
        result
    }

    /// Resolves a presented key to its principal. Unknown, malformed, revoked and expired
    /// keys are [`Unauthenticated`](ErrorKind::Unauthenticated).
    pub async fn resolve_key(&self, presented: &str) -> Result<Principal, Error> {
        self.resolve_key_row(presented).await.map(|(p, _)| p)
    }

    /// [`resolve_key`](Self::resolve_key), answered from memory when this key was resolved
    /// less than `max_age` ago and nothing about keys or principals changed through this
    /// store since. Only keys that resolved are kept (at most 10,000); expiry is checked on
    /// every call.
    pub async fn resolve_key_cached(
        &self,
        presented: &str,
        max_age: Duration,
    ) -> Result<Principal, Error> {
        if max_age.is_zero() {
            return self.resolve_key(presented).await;
        }
        let hash = hash_key(presented.trim());
        let cache = &self.inner.key_cache;
        if let Some(principal) = cache.get(&hash, max_age, now_ms()) {
            return Ok(principal);
        }
        // Both taken before the lookup: the entry's age counts from what the database said.
        let (generation, asked) = (cache.generation(), Instant::now());
        let (principal, expires_at_ms) = self.resolve_key_row(presented).await?;
        cache.put(hash, generation, asked, &principal, expires_at_ms);
        Ok(principal)
    }

    async fn resolve_key_row(&self, presented: &str) -> Result<(Principal, Option<i64>), Error> {
        let invalid = || unauthenticated("invalid API key");
        let presented = presented.trim();
        let Some(body) = presented.strip_prefix(KEY_PREFIX) else {
            return Err(invalid());
        };
        if body.len() != BODY_LEN || !body.is_char_boundary(PREFIX_LEN) {
            return Err(invalid());
        }
        let row = entity::api_key::Entity::find()
            .filter(entity::api_key::Column::Prefix.eq(&body[..PREFIX_LEN]))
            .one(self.db())
            .await
            .map_err(|e| db_err("cannot look the key up", e))?;
        let presented_hash = hash_key(presented);
        let mut stored = [0u8; 32];
        let found = match &row {
            Some(r) => hex::decode_to_slice(&r.hash, &mut stored).is_ok(),
            None => false,
        };
        // Compare even when nothing was found, so timing does not reveal known prefixes.
        let equal: bool = presented_hash.ct_eq(&stored).into();
        let Some(row) = row.filter(|_| found && equal) else {
            return Err(invalid());
        };
        let now = now_ms();
        if row.revoked_at_ms.is_some() {
            return Err(unauthenticated("API key revoked"));
        }
        if row.expires_at_ms.is_some_and(|t| now >= t) {
            return Err(unauthenticated("API key expired"));
        }
        let principal = self
            .principal(&row.principal_id)
            .await?
            .unwrap_or_else(|| Principal::new(row.principal_id));
        Ok((principal, row.expires_at_ms))
    }
}

/// Keys resolved lately, by the SHA-256 of the presented key.
#[derive(Default)]
pub(crate) struct KeyCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<[u8; 32], CachedKey>,
    /// Bumped by every change: a lookup that started before a change stores nothing.
    generation: u64,
}

struct CachedKey {
    principal: Principal,
    expires_at_ms: Option<i64>,
    at: Instant,
}

/// The longest `cache_ms` a config may ask for: a minute.
pub const MAX_CACHE_MS: u64 = 60_000;

/// Resolved keys kept at most; past it the cache starts empty again.
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    fn get(&self, hash: &[u8; 32], max_age: Duration, now_ms: i64) -> Option<Principal> {
        let inner = self.inner.lock().ok()?;
        let hit = inner.entries.get(hash)?;
        (hit.at.elapsed() < max_age && hit.expires_at_ms.is_none_or(|t| now_ms < t))
            .then(|| hit.principal.clone())
    }

    fn generation(&self) -> u64 {
        self.inner.lock().map(|i| i.generation).unwrap_or(u64::MAX)
    }

    fn put(
        &self,
        hash: [u8; 32],
        generation: u64,
        asked: Instant,
        principal: &Principal,
        expires_at_ms: Option<i64>,
    ) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= KEY_CACHE_MAX {
            inner.entries.clear();
        }
        inner.entries.insert(
            hash,
            CachedKey {
                principal: principal.clone(),
                expires_at_ms,
                at: asked,
            },
        );
    }

    /// Forgets every key (a key or a principal changed).
    pub(crate) fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.entries.clear();
            inner.generation = inner.generation.wrapping_add(1);
        }
    }
}

/// Config of the `virtual_keys` authenticator type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct VirtualKeysConfig {
    /// Accept only keys of principals in this organisation.
    pub org: Option<String>,
    /// Accept only keys of principals holding this role (others are `Forbidden`).
    pub required_role: Option<String>,
    /// How long a resolved key is kept in memory, in milliseconds (default 1000, at most
    /// 60,000; 0: look every request up). A revocation through another replica takes effect
    /// within it.
    pub cache_ms: u64,
}

impl Default for VirtualKeysConfig {
    fn default() -> Self {
        Self {
            org: None,
            required_role: None,
            cache_ms: 1000,
        }
    }
}

/// An [`Authenticator`] resolving virtual API keys (bearer token or `x-api-key`) stored in
/// a [`Store`].
#[derive(Debug, Clone)]
pub struct KeyAuthenticator {
    store: Store,
    config: VirtualKeysConfig,
}

impl KeyAuthenticator {
    /// Over `store`, accepting every active key.
    pub fn new(store: Store) -> Self {
        Self::with_config(store, VirtualKeysConfig::default())
    }

    /// Over `store`, with restrictions.
    pub fn with_config(store: Store, config: VirtualKeysConfig) -> Self {
        Self { store, config }
    }
}

#[async_trait]
impl Authenticator for KeyAuthenticator {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal, Error> {
        let token = credentials
            .token()
            .ok_or_else(|| unauthenticated("no API key presented"))?;
        let principal = self
            .store
            .resolve_key_cached(token.expose(), Duration::from_millis(self.config.cache_ms))
            .await?;
        if let Some(org) = &self.config.org
            && principal.org.as_ref() != Some(org)
        {
            return Err(unauthenticated("invalid API key"));
        }
        if let Some(role) = &self.config.required_role
            && !principal.has_role(role)
        {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("this deployment requires the role `{role}`"),
            ));
        }
        Ok(principal)
    }
}

/// Config of the `audit_log` telemetry type (the writer's own settings are fixed when the
/// host spawns it; see [`crate::AuditWriter`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditLogConfig {}

/// Registers the authenticator type `virtual_keys` (config [`VirtualKeysConfig`]) over
/// `store`.
pub fn register(registry: &mut Registry, store: Store) -> &mut Registry {
    registry.register_authenticator::<VirtualKeysConfig, _>("virtual_keys", move |config, _| {
        if config.cache_ms > MAX_CACHE_MS {
            return Err(Error::config(format!(
                "cache_ms: at most {MAX_CACHE_MS} (a revocation through another replica takes effect within it)"
            )));
        }
        Ok(
            Arc::new(KeyAuthenticator::with_config(store.clone(), config))
                as Arc<dyn Authenticator>,
        )
    })
}

/// Registers the telemetry type `audit_log`, delivering to `sink` (from
/// [`AuditWriter::spawn`](crate::AuditWriter::spawn), which the host starts).
pub fn register_audit_sink(registry: &mut Registry, sink: AuditSink) -> &mut Registry {
    registry.register_telemetry::<AuditLogConfig, _>("audit_log", move |_, _| {
        Ok(Arc::new(sink.clone()) as Arc<dyn TelemetrySink>)
    })
}
