//! Upstream resources and prompts, governed like tools: merged under the same prefixes
//! (`files__file:///srv/a.txt`, `files__review`), served only by a server serving its
//! pinned tool catalog, filtered and enforced by the same access rule (a resource by its
//! URI or URI template, a prompt by its name), each request judged as a
//! [`GuardSubject::ToolCall`](aegis_contracts::GuardSubject) (so approval works the same),
//! and everything read back judged as untrusted tool output.

use std::{future::Future, time::Instant};

use aegis_contracts::{Error, ErrorKind, GuardSubject, Principal, RequestContext, ToolCall};
use aegis_core::guard::ChainDecision;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, CompletionInfo, GetPromptResult, JsonObject, Prompt,
    ReadResourceResult, Reference, Resource, ResourceContents, ResourceTemplate,
    ServerCapabilities,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::{Judge, McpHub, ToolCallRecord, View, quarantined, unavailable};

/// What a server may offer besides tools.
#[derive(Clone, Copy)]
enum Offer {
    Resources,
    Prompts,
}

impl Offer {
    fn offered(self, caps: &ServerCapabilities) -> bool {
        match self {
            Self::Resources => caps.resources.is_some(),
            Self::Prompts => caps.prompts.is_some(),
        }
    }
}

impl McpHub {
    /// The resources `principal` may read, from every served server offering them, under
    /// their exported URIs. A server that fails leaves only its own out.
    pub async fn list_resources(&self, principal: Option<&Principal>) -> Vec<Resource> {
        self.gather(
            Offer::Resources,
            "resources/list",
            |i| async move { self.inner.slots[i].upstream.list_resources().await },
            |i, mut r: Resource| {
                let config = self.inner.slots[i].upstream.config();
                config.access.allows(principal, &r.uri).then(|| {
                    r.uri = config.exported_name(&r.uri);
                    r
                })
            },
        )
        .await
    }

    /// The resource templates `principal` may read, as [`list_resources`](Self::list_resources).
    pub async fn list_resource_templates(
        &self,
        principal: Option<&Principal>,
    ) -> Vec<ResourceTemplate> {
        self.gather(
            Offer::Resources,
            "resources/templates/list",
            |i| async move { self.inner.slots[i].upstream.list_resource_templates().await },
            |i, mut t: ResourceTemplate| {
                let config = self.inner.slots[i].upstream.config();
                config.access.allows(principal, &t.uri_template).then(|| {
                    t.uri_template = config.exported_name(&t.uri_template);
                    t
                })
            },
        )
        .await
    }

    /// The prompts `principal` may get, as [`list_resources`](Self::list_resources).
    pub async fn list_prompts(&self, principal: Option<&Principal>) -> Vec<Prompt> {
        self.gather(
            Offer::Prompts,
            "prompts/list",
            |i| async move { self.inner.slots[i].upstream.list_prompts().await },
            |i, mut p: Prompt| {
                let config = self.inner.slots[i].upstream.config();
                config.access.allows(principal, &p.name).then(|| {
                    p.name = config.exported_name(&p.name);
                    p
                })
            },
        )
        .await
    }

    /// Reads the resource exported as `uri` for the caller in `ctx`: routed, allowed,
    /// the request judged, read within the server's bounds, and every content judged.
    pub async fn read_resource(
        &self,
        ctx: &RequestContext,
        uri: &str,
    ) -> Result<ReadResourceResult, Error> {
        let started = Instant::now();
        let (i, upstream_uri) = self.route_offer(Offer::Resources, uri).await?;
        let mut args = JsonObject::new();
        args.insert("uri".into(), Value::String(upstream_uri.clone()));
        let (outcome, result) = match self.admit(ctx, i, &upstream_uri, uri, args).await {
            Err((outcome, e)) => (outcome, Err(e)),
            Ok(args) => {
                let judged_uri = args
                    .get("uri")
                    .and_then(Value::as_str)
                    .unwrap_or(&upstream_uri)
                    .to_owned();
                let upstream = &self.inner.slots[i].upstream;
                match upstream.read_resource(&judged_uri).await {
                    Err(e) => (
                        "failed",
                        Err(self
                            .failure_for_caller(ctx, &upstream.config().id, uri, e)
                            .await),
                    ),
                    Ok(read) => match self.judge_read(ctx, i, uri, read).await {
                        Ok(r) => ("executed", Ok(r)),
                        Err(e) => ("result_blocked", Err(e)),
                    },
                }
            }
        };
        self.record(ctx, i, &upstream_uri, outcome, &result, started);
        result
    }

    /// Gets the prompt exported as `name` with `arguments`, as
    /// [`read_resource`](Self::read_resource) reads a resource.
    pub async fn get_prompt(
        &self,
        ctx: &RequestContext,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<GetPromptResult, Error> {
        let started = Instant::now();
        let (i, upstream_name) = self.route_offer(Offer::Prompts, name).await?;
        let args = arguments.clone().unwrap_or_default();
        let (outcome, result) = match self.admit(ctx, i, &upstream_name, name, args).await {
            Err((outcome, e)) => (outcome, Err(e)),
            Ok(args) => {
                let upstream = &self.inner.slots[i].upstream;
                let sent = (arguments.is_some() || !args.is_empty()).then_some(args);
                match upstream.get_prompt(&upstream_name, sent).await {
                    Err(e) => (
                        "failed",
                        Err(self
                            .failure_for_caller(ctx, &upstream.config().id, name, e)
                            .await),
                    ),
                    Ok(prompt) => match self.judge_prompt(ctx, i, name, prompt).await {
                        Ok(p) => ("executed", Ok(p)),
                        Err(e) => ("result_blocked", Err(e)),
                    },
                }
            }
        };
        self.record(ctx, i, &upstream_name, outcome, &result, started);
        result
    }

    /// Completions of an argument of the prompt or resource template `params` names, from
    /// its server: the typed value is judged before it goes out (a value a guard blocks is
    /// refused; one a guard would hold for a human gets no completions — nobody approves
    /// keystrokes), and the values coming back are judged as untrusted output.
    pub async fn complete(
        &self,
        ctx: &RequestContext,
        mut params: CompleteRequestParams,
    ) -> Result<CompleteResult, Error> {
        let nothing = || CompleteResult::new(CompletionInfo::default());
        let (offer, exported) = match &params.r#ref {
            Reference::Prompt(p) => (Offer::Prompts, p.name.clone()),
            Reference::Resource(r) => (Offer::Resources, r.uri.clone()),
            _ => return Ok(nothing()),
        };
        let (i, name) = self.route_offer(offer, &exported).await?;
        let upstream = &self.inner.slots[i].upstream;
        let config = upstream.config();
        if !matches!(self.view(i).await, View::Served(_)) {
            return Ok(nothing());
        }
        if !config.access.allows(ctx.principal.as_ref(), &name) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("`{exported}` is not allowed for this caller"),
            )
            .with_code("tool_not_allowed"));
        }
        if !upstream
            .capabilities()
            .await
            .is_ok_and(|c| c.completions.is_some())
        {
            return Ok(nothing());
        }
        let subject = GuardSubject::ToolCall {
            call: ToolCall::new(
                ctx.run_id.clone().unwrap_or_default(),
                exported.as_str(),
                serde_json::json!({ "argument": { params.argument.name.clone(): params.argument.value.clone() } })
                    .to_string(),
            ),
            server: Some(config.id.clone()),
        };
        let out = self.inner.chain.check(subject, ctx, &[]).await;
        if matches!(out.decision, ChainDecision::NeedsApproval(_)) {
            return Ok(nothing());
        }
        if let GuardSubject::ToolCall { call, .. } = out.into_result()? {
            params.argument.value = call
                .arguments_json()?
                .pointer(&format!(
                    "/argument/{}",
                    params.argument.name.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
        }
        params.r#ref = match offer {
            Offer::Prompts => Reference::for_prompt(name),
            Offer::Resources => Reference::for_resource(name),
        };
        let mut result = match upstream.complete(params).await {
            Ok(r) => r,
            Err(e) => return Err(self.failure_for_caller(ctx, &config.id, &exported, e).await),
        };
        let judge = self.judge(ctx, i, &exported);
        let values = Value::from(std::mem::take(&mut result.completion.values));
        result.completion.values = serde_json::from_value(judge.json(values).await?)
            .map_err(|_| judge.not_json("completion"))?;
        let mut done = CompleteResult::new(result.completion);
        done.meta = judge.meta(result.meta).await?;
        Ok(done)
    }

    /// The served servers offering `offer`, each asked concurrently with `list`; what they
    /// answer judged whole (descriptions are text a model or a person reads), then kept
    /// and renamed by `keep`.
    async fn gather<T, L, Fut>(
        &self,
        offer: Offer,
        method: &str,
        list: L,
        keep: impl Fn(usize, T) -> Option<T>,
    ) -> Vec<T>
    where
        T: Serialize + DeserializeOwned,
        L: Fn(usize) -> Fut,
        Fut: Future<Output = Result<Vec<T>, Error>>,
    {
        let offering = self.offering(offer).await;
        let lists = futures_util::future::join_all(offering.iter().map(|&i| list(i))).await;
        let mut out = Vec::new();
        for (i, listed) in offering.into_iter().zip(lists) {
            let id = &self.inner.slots[i].upstream.config().id;
            let judged = match listed {
                Ok(items) => self.judge_list(i, method, items).await,
                Err(e) => Err(e),
            };
            match judged {
                Ok(items) => out.extend(items.into_iter().filter_map(|x| keep(i, x))),
                Err(e) => {
                    tracing::warn!(server = %id, %method, error = %e, "MCP server left out of a listing");
                }
            }
        }
        out
    }

    async fn judge_list<T: Serialize + DeserializeOwned>(
        &self,
        i: usize,
        method: &str,
        items: Vec<T>,
    ) -> Result<Vec<T>, Error> {
        let ctx = RequestContext::default();
        let judge = self.judge(&ctx, i, method);
        let value = serde_json::to_value(&items)
            .map_err(|e| Error::internal(format!("a {method} answer: {e}")))?;
        serde_json::from_value(judge.json(value).await?).map_err(|_| judge.not_json("listing"))
    }

    /// The servers serving their pinned catalog and offering `offer`, in config order.
    async fn offering(&self, offer: Offer) -> Vec<usize> {
        let views = self.views().await;
        let served: Vec<usize> = (0..views.len())
            .filter(|&i| matches!(views[i], View::Served(_)))
            .collect();
        let caps = futures_util::future::join_all(
            served
                .iter()
                .map(|&i| self.inner.slots[i].upstream.capabilities()),
        )
        .await;
        served
            .into_iter()
            .zip(caps)
            .filter(|(_, c)| c.as_ref().is_ok_and(|c| offer.offered(c)))
            .map(|(i, _)| i)
            .collect()
    }

    /// The server and upstream name of the resource URI or prompt name `exported`: the
    /// server its prefix names, else the one unprefixed server offering `offer` (or, with
    /// several, the one listing it).
    async fn route_offer(&self, offer: Offer, exported: &str) -> Result<(usize, String), Error> {
        if let Some(routed) = self.route_prefixed(exported) {
            return Ok(routed);
        }
        let unprefixed: Vec<usize> = self
            .offering(offer)
            .await
            .into_iter()
            .filter(|&i| self.inner.slots[i].upstream.config().prefix().is_empty())
            .collect();
        let not_found = || {
            Error::new(
                ErrorKind::NotFound,
                format!("no resource or prompt `{exported}` is available"),
            )
            .with_code("unknown_resource")
        };
        match unprefixed.as_slice() {
            [] => Err(not_found()),
            [i] => Ok((*i, exported.to_owned())),
            several => {
                for &i in several {
                    let upstream = &self.inner.slots[i].upstream;
                    let listed = match offer {
                        Offer::Resources => upstream
                            .list_resources()
                            .await
                            .is_ok_and(|l| l.iter().any(|r| r.uri == exported)),
                        Offer::Prompts => upstream
                            .list_prompts()
                            .await
                            .is_ok_and(|l| l.iter().any(|p| p.name == exported)),
                    };
                    if listed {
                        return Ok((i, exported.to_owned()));
                    }
                }
                Err(not_found())
            }
        }
    }

    /// Whether the request may go to server `i`: it serves its pinned catalog, the caller
    /// may use `name`, and the guard chain lets the request (`args`) through — the
    /// (possibly sanitized) arguments, or the outcome to record and the error.
    async fn admit(
        &self,
        ctx: &RequestContext,
        i: usize,
        name: &str,
        exported: &str,
        args: JsonObject,
    ) -> Result<JsonObject, (&'static str, Error)> {
        let config = self.inner.slots[i].upstream.config();
        match self.view(i).await {
            View::Served(_) => {}
            View::Quarantined { .. } => return Err(("refused", quarantined(&config.id))),
            View::Down(_) => return Err(("refused", unavailable(&config.id))),
        }
        if !config.access.allows(ctx.principal.as_ref(), name) {
            return Err((
                "refused",
                Error::new(
                    ErrorKind::Forbidden,
                    format!("`{exported}` is not allowed for this caller"),
                )
                .with_code("tool_not_allowed"),
            ));
        }
        match self.judge_call(ctx, &config.id, exported, Some(args)).await {
            Ok(args) => Ok(args.unwrap_or_default()),
            Err(e) if e.kind() == ErrorKind::ApprovalRequired => Err(("awaiting_approval", e)),
            Err(e) => Err(("blocked", e)),
        }
    }

    fn judge<'a>(&'a self, ctx: &'a RequestContext, i: usize, exported: &'a str) -> Judge<'a> {
        Judge {
            hub: self,
            ctx,
            server: &self.inner.slots[i].upstream.config().id,
            exported,
        }
    }

    /// Rebuilt from its judged parts: only what is judged goes on (no caching hints an
    /// upstream chose — `ttlMs`, `cacheScope`, `resultType` — which would let a cache
    /// share one caller's answer with another).
    async fn judge_read(
        &self,
        ctx: &RequestContext,
        i: usize,
        uri: &str,
        read: ReadResourceResult,
    ) -> Result<ReadResourceResult, Error> {
        self.within_bound(i, uri, &read)?;
        let judge = self.judge(ctx, i, uri);
        let config = self.inner.slots[i].upstream.config();
        let meta = judge.meta(read.meta).await?;
        let mut read = ReadResourceResult::new(read.contents);
        read.meta = meta;
        for contents in &mut read.contents {
            *contents = judge.typed(contents).await?;
            let at = match contents {
                ResourceContents::TextResourceContents { uri, .. }
                | ResourceContents::BlobResourceContents { uri, .. } => uri,
                _ => continue,
            };
            *at = config.exported_name(at);
        }
        Ok(read)
    }

    async fn judge_prompt(
        &self,
        ctx: &RequestContext,
        i: usize,
        name: &str,
        got: GetPromptResult,
    ) -> Result<GetPromptResult, Error> {
        self.within_bound(i, name, &got)?;
        let judge = self.judge(ctx, i, name);
        let mut prompt = GetPromptResult::new(Vec::new());
        if let Some(d) = got.description {
            prompt.description = Some(judge.text(d).await?);
        }
        for message in &got.messages {
            prompt.messages.push(judge.typed(message).await?);
        }
        prompt.meta = judge.meta(got.meta).await?;
        Ok(prompt)
    }

    /// An answer within the server's `max_result_bytes`.
    fn within_bound<T: Serialize>(&self, i: usize, name: &str, answer: &T) -> Result<(), Error> {
        let max = self.inner.slots[i].upstream.config().max_result_bytes;
        let size = serde_json::to_vec(answer)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > max {
            return Err(Error::new(
                ErrorKind::Provider,
                format!("the answer for `{name}` is {size} bytes, over the limit of {max}"),
            )
            .with_code("tool_result_too_large"));
        }
        Ok(())
    }

    /// Reports one request to the observer (the audit log) and the log.
    pub(super) fn record<T>(
        &self,
        ctx: &RequestContext,
        i: usize,
        name: &str,
        outcome: &'static str,
        result: &Result<T, Error>,
        started: Instant,
    ) {
        let config = self.inner.slots[i].upstream.config();
        if let Some(observer) = &self.inner.observer {
            observer.on_call(ToolCallRecord {
                server: config.id.clone(),
                tool: name.to_owned(),
                principal: ctx.principal.as_ref().map(|p| p.id.clone()),
                run_id: ctx.run_id.clone(),
                outcome,
                code: result.as_ref().err().map(|e| e.code().to_owned()),
                duration_ms: started.elapsed().as_millis() as u64,
            });
        }
        tracing::info!(server = %config.id, %name, outcome, "MCP request");
    }
}
