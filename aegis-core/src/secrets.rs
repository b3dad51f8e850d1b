//! Built-in secret backends (`secret://env/NAME`, `secret://file/PATH`) and resolution of
//! references inside plugin configs.

use std::{collections::HashMap, sync::Arc};

use aegis_contracts::{Error, Secret, SecretBackend, SecretRef, async_trait};
use serde_json::Value;

/// `secret://env/NAME`: an environment variable.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvSecrets;

#[async_trait]
impl SecretBackend for EnvSecrets {
    fn scheme(&self) -> &str {
        "env"
    }

    async fn resolve(&self, path: &str) -> Result<Secret, Error> {
        match std::env::var(path) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            Ok(_) => Err(Error::config(format!(
                "environment variable `{path}` is empty"
            ))),
            Err(_) => Err(Error::config(format!(
                "environment variable `{path}` is not set"
            ))),
        }
    }
}

/// `secret://file/PATH`: a file's content, without its trailing newline.
/// `secret://file//run/secrets/key` reads the absolute path `/run/secrets/key`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileSecrets;

#[async_trait]
impl SecretBackend for FileSecrets {
    fn scheme(&self) -> &str {
        "file"
    }

    async fn resolve(&self, path: &str) -> Result<Secret, Error> {
        let content = tokio::task::spawn_blocking({
            let path = path.to_owned();
            move || std::fs::read_to_string(path)
        })
        .await
        .map_err(|e| Error::internal(format!("secret file task failed: {e}")))?
        .map_err(|e| Error::config(format!("cannot read secret file `{path}`: {e}")))?;
        Ok(Secret::new(content.trim_end_matches(['\n', '\r'])))
    }
}

/// Resolves references through the registered backends.
#[derive(Clone, Default)]
pub(crate) struct SecretResolver {
    backends: HashMap<String, Arc<dyn SecretBackend>>,
}

impl SecretResolver {
    pub(crate) fn insert(&mut self, backend: Arc<dyn SecretBackend>) {
        self.backends.insert(backend.scheme().to_owned(), backend);
    }

    pub(crate) fn schemes(&self) -> Vec<String> {
        let mut s: Vec<String> = self.backends.keys().cloned().collect();
        s.sort();
        s
    }

    /// Replaces every `secret://` string in `value` by its resolved value, remembering the
    /// values in `revealed` so error messages can be scrubbed. Problems are pushed with their
    /// config path.
    pub(crate) async fn resolve_tree(
        &self,
        value: &mut Value,
        path: &str,
        revealed: &mut Vec<Secret>,
        problems: &mut Vec<String>,
    ) {
        let mut stack: Vec<(String, &mut Value)> = vec![(path.to_owned(), value)];
        while let Some((p, v)) = stack.pop() {
            match v {
                Value::String(s) => {
                    let Some(parsed) = SecretRef::parse(s) else {
                        continue;
                    };
                    let r = match parsed {
                        Ok(r) => r,
                        Err(e) => {
                            problems.push(format!("{p}: {}", e.message()));
                            continue;
                        }
                    };
                    let Some(backend) = self.backends.get(&r.scheme) else {
                        problems.push(format!(
                            "{p}: no secret backend for scheme `{}` (known: {})",
                            r.scheme,
                            self.schemes().join(", ")
                        ));
                        continue;
                    };
                    match backend.resolve(&r.path).await {
                        Ok(secret) => {
                            *s = secret.expose().to_owned();
                            revealed.push(secret);
                        }
                        Err(e) => problems.push(format!(
                            "{p}: secret://{}/{}: {}",
                            r.scheme,
                            r.path,
                            e.message()
                        )),
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        stack.push((format!("{p}[{i}]"), item));
                    }
                }
                Value::Object(map) => {
                    for (k, item) in map.iter_mut() {
                        stack.push((format!("{p}.{k}"), item));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Replaces every revealed secret value in `msg` by `***`.
pub(crate) fn scrub(msg: &str, revealed: &[Secret]) -> String {
    let mut out = msg.to_owned();
    for s in revealed {
        if !s.expose().is_empty() {
            out = out.replace(s.expose(), "***");
        }
    }
    out
}
