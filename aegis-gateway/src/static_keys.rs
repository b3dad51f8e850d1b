//! `static_keys`: API keys listed in config (as `secret://` references), for small
//! deployments and tests. Production deployments use the store's virtual keys.

use std::collections::BTreeMap;

use aegis::{Authenticator, Credentials, Error, ErrorKind, Principal, Secret, async_trait};
use serde::Deserialize;

/// One key and the principal it stands for.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticKey {
    /// The key (use `secret://env/NAME`).
    pub key: Secret,
    /// Principal id.
    pub principal: String,
    /// Team.
    #[serde(default)]
    pub team: Option<String>,
    /// Organisation (run visibility and budgets respect it).
    #[serde(default)]
    pub org: Option<String>,
    /// Roles (`admin`, `approver`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Config of the `static_keys` authenticator.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticKeysConfig {
    /// The accepted keys.
    pub keys: Vec<StaticKey>,
}

/// Resolves a presented key against the configured ones, comparing in constant time.
#[derive(Debug)]
pub struct StaticKeys {
    keys: Vec<StaticKey>,
}

impl StaticKeys {
    /// An authenticator over `config`; an empty key is a config error.
    pub fn new(config: StaticKeysConfig) -> Result<Self, Error> {
        if let Some(i) = config.keys.iter().position(|k| k.key.expose().is_empty()) {
            return Err(Error::config(format!("keys[{i}].key must not be empty")));
        }
        Ok(Self { keys: config.keys })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[async_trait]
impl Authenticator for StaticKeys {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal, Error> {
        let presented = credentials
            .token()
            .ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "no API key presented"))?;
        // Compare against every key so timing does not reveal which one matched.
        let mut found = None;
        for k in &self.keys {
            if constant_time_eq(k.key.expose().as_bytes(), presented.expose().as_bytes()) {
                found = Some(k);
            }
        }
        let k = found.ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "invalid API key"))?;
        let mut p = Principal::new(k.principal.clone());
        p.team.clone_from(&k.team);
        p.org.clone_from(&k.org);
        p.roles.clone_from(&k.roles);
        p.labels.clone_from(&k.labels);
        Ok(p)
    }
}

/// The facade registry plus the gateway's own plugin types.
pub fn registry() -> aegis::Registry {
    let mut r = aegis::registry();
    r.register_authenticator::<StaticKeysConfig, _>("static_keys", |c, _| {
        Ok(std::sync::Arc::new(StaticKeys::new(c)?) as std::sync::Arc<dyn Authenticator>)
    });
    crate::metrics::register(&mut r);
    crate::traces::register(&mut r);
    r
}
