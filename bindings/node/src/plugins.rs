//! Plugins written in JavaScript: guards, providers and retrievers registered under a type
//! name and used from TOML like built-in types. The Rust side is `aegis-bindings`'
//! contract adapters over a [`JsHost`]; the JavaScript side (`index.js`) keeps the plugin
//! classes, makes an instance per config entry on first use, and answers each call.
//!
//! **One way in, one way out.** Every call goes to JavaScript through one threadsafe
//! function (`setPluginHost`, installed by `index.js` at load) as a JSON message with a
//! ticket; JavaScript answers with `settle(ticket, ok, json)`, whatever the plugin did —
//! returned, threw, rejected. The threadsafe function is *weak*: it never keeps Node alive.
//! A plugin that never answers is cut off by the guard's deadline (`timeout_ms`); its ticket
//! is forgotten when the call is dropped.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use aegis::{Error, Guardrail, Provider, Registry, Retriever, Stage, async_trait};
use aegis_bindings::{DEFAULT_GUARD_STAGES, HostGuard, HostProvider, HostRetriever, PluginHost};
use napi::{
    Status,
    bindgen_prelude::Function,
    threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode},
};
use napi_derive::napi;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::js_error;

/// The function `index.js` answers plugin calls with.
type Host = ThreadsafeFunction<String, (), String, Status, false, true>;

static HOST: Mutex<Option<Arc<Host>>> = Mutex::new(None);

/// Where JavaScript's answer to one call goes: the answer, or what went wrong.
type Answer = oneshot::Sender<Result<Value, String>>;

/// Calls waiting for JavaScript's answer, by ticket. Tickets are random (UUID v4): other
/// code in the process cannot answer a call it was not sent by guessing the next one.
static PENDING: Mutex<Option<HashMap<String, Answer>>> = Mutex::new(None);

/// A registered plugin type: its kind (`guardrails`, `providers`, `retrievers`), name, and
/// for a guard the stages it judges.
struct PluginType {
    kind: String,
    name: String,
    stages: Option<Vec<Stage>>,
    deadline: Option<Duration>,
}

static TYPES: Mutex<Vec<PluginType>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs the function every plugin call goes through (done once by `index.js`).
#[napi]
pub fn set_plugin_host(callback: Function<'_, String, ()>) -> napi::Result<()> {
    let host = callback
        .build_threadsafe_function::<String>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    *lock(&HOST) = Some(Arc::new(host));
    Ok(())
}

/// Records plugin type `name` of `kind` (`guardrails`, `providers`, `retrievers`); for a
/// guard, `stages` lists where it runs; for a provider or retriever, `timeout_ms` how long
/// one answer may take. A built-in type's name is refused; registering a name again
/// replaces it.
#[napi]
pub fn register_plugin(
    kind: String,
    name: String,
    stages: Option<Vec<String>>,
    timeout_ms: Option<u32>,
) -> napi::Result<()> {
    if !["guardrails", "providers", "retrievers"].contains(&kind.as_str()) {
        return Err(js_error(Error::invalid_request(format!(
            "plugin kind `{kind}`: use guardrails, providers or retrievers"
        ))));
    }
    aegis_bindings::check_plugin_name(&kind, &name).map_err(js_error)?;
    let stages = stages
        .map(|names| {
            names
                .iter()
                .map(|n| aegis_bindings::stage(n))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(js_error)?;
    let mut types = lock(&TYPES);
    types.retain(|t| !(t.kind == kind && t.name == name));
    types.push(PluginType {
        kind,
        name,
        stages,
        deadline: timeout_ms.map(|ms| Duration::from_millis(ms.into())),
    });
    Ok(())
}

/// JavaScript's answer to the call with `ticket`: `ok` with the answer as JSON, or not with
/// what went wrong. An answer nobody waits for any more (timed out) is dropped.
#[napi]
pub fn settle(ticket: String, ok: bool, payload: String) {
    let waiting = lock(&PENDING).as_mut().and_then(|p| p.remove(&ticket));
    if let Some(tx) = waiting {
        let answer = if ok {
            serde_json::from_str(&payload)
                .map_err(|e| format!("answered something that is not JSON: {e}"))
        } else {
            Err(payload)
        };
        let _ = tx.send(answer);
    }
}

/// Whether `principal` may read a document whose ACL is `acl` — the rule every Aegis store
/// applies.
#[napi]
pub fn acl_allows(acl: Value, principal: Value) -> napi::Result<bool> {
    aegis_bindings::acl_allows(acl, principal).map_err(js_error)
}

/// The facade's registry plus every plugin type registered from JavaScript.
pub fn registry() -> Registry {
    let mut r = aegis::registry();
    for t in lock(&TYPES).iter() {
        let (name, deadline) = (t.name.clone(), t.deadline);
        match t.kind.as_str() {
            "guardrails" => {
                let stages = t
                    .stages
                    .clone()
                    .unwrap_or_else(|| DEFAULT_GUARD_STAGES.to_vec());
                r.register_guardrail::<Value, _>(&t.name, move |config, ctx| {
                    let who = format!("javascript guard `{}` ({name})", ctx.id);
                    let host = JsHost::new(&name, ctx.id, config, who.clone());
                    Ok(Arc::new(HostGuard::new(ctx.id, who, stages.clone(), host)?)
                        as Arc<dyn Guardrail>)
                });
            }
            "providers" => {
                r.register_provider::<Value, _>(&t.name, move |config, ctx| {
                    let who = format!("javascript provider `{}` ({name})", ctx.id);
                    let host = JsHost::new(&name, ctx.id, config, who.clone());
                    let provider = HostProvider::new(ctx.id, who, host)
                        .with_deadline(deadline.unwrap_or(aegis_bindings::PROVIDER_DEADLINE));
                    Ok(Arc::new(provider) as Arc<dyn Provider>)
                });
            }
            _ => {
                r.register_retriever::<Value, _>(&t.name, move |config, ctx| {
                    let who = format!("javascript retriever `{}` ({name})", ctx.id);
                    let host = JsHost::new(&name, ctx.id, config, who.clone());
                    let retriever = HostRetriever::new(who, host)
                        .with_deadline(deadline.unwrap_or(aegis_bindings::RETRIEVER_DEADLINE));
                    Ok(Arc::new(retriever) as Arc<dyn Retriever>)
                });
            }
        }
    }
    r
}

/// One config entry's plugin object, on the JavaScript side.
struct JsHost {
    /// What `index.js` needs to find (or make) the instance: an id of its own (per built
    /// pipeline: instances are never shared between pipelines), the type and the config.
    target: Value,
    instance: String,
    who: String,
}

impl JsHost {
    fn new(type_name: &str, id: &str, config: Value, who: String) -> Self {
        let config = aegis_bindings::plugin_config(config);
        let instance = uuid::Uuid::new_v4().to_string();
        Self {
            target: json!({ "type": type_name, "id": id, "config": config, "instance": instance }),
            instance,
            who,
        }
    }
}

impl Drop for JsHost {
    /// The pipeline is gone: JavaScript forgets the instance.
    fn drop(&mut self) {
        if let Some(host) = lock(&HOST).clone() {
            let message = json!({ "method": "release", "instance": self.instance });
            let _ = host.call(message.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// Forgets a ticket when its call ends, answered or not.
struct Ticket(String);

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(p) = lock(&PENDING).as_mut() {
            p.remove(&self.0);
        }
    }
}

#[async_trait]
impl PluginHost for JsHost {
    async fn call(&self, method: &'static str, args: Vec<Value>) -> Result<Value, Error> {
        let Some(host) = lock(&HOST).clone() else {
            return Err(Error::internal(format!(
                "{}: no plugin host (load the package through its index.js)",
                self.who
            )));
        };
        let ticket = Ticket(uuid::Uuid::new_v4().to_string());
        let (tx, rx) = oneshot::channel();
        lock(&PENDING)
            .get_or_insert_with(HashMap::new)
            .insert(ticket.0.clone(), tx);
        let mut message = self.target.clone();
        message["ticket"] = ticket.0.clone().into();
        message["method"] = method.into();
        message["args"] = Value::Array(args);
        let status = host.call(message.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
        if status != Status::Ok {
            return Err(Error::internal(format!(
                "{}: the call could not be queued ({status})",
                self.who
            )));
        }
        match rx.await {
            Ok(Ok(answer)) => Ok(answer),
            // The plugin's own text: secrets in it redacted, then shortened.
            Ok(Err(why)) => Err(aegis_bindings::plugin_failure(&self.who, "failed", &why)),
            Err(_) => Err(Error::internal(format!("{} never answered", self.who))),
        }
    }
}
