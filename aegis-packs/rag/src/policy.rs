//! [`Retrieval`]: the lifecycle step that retrieves documents for a request and hands them
//! to the lifecycle, which judges each before it enters the prompt.

use std::sync::Arc;

use aegis_contracts::{
    ContextView, EDITED_LABEL, Error, ErrorKind, Filter, OPTIONS_FIELD, OnBlocked, Policy,
    Position, RequestContext, Retriever, Role, RouteView, Step, StepInput, async_trait,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// The key of the chat body's `aegis` options this policy reads.
pub const RETRIEVAL_OPTION: &str = "retrieval";

/// The most documents one request may ask for.
pub const MAX_K: usize = 50;

/// The longest query sent to a retriever, in characters (the end of the last user
/// message: the question is usually at the end).
const MAX_QUERY_CHARS: usize = 4_000;

/// Config of the `retrieval` policy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetrievalConfig {
    /// The `[[retrievers]]` entry to search.
    pub retriever: String,
    /// How many documents to retrieve (default 4); a request may ask for up to `max_k`.
    #[serde(default = "default_k")]
    pub k: usize,
    /// The most a request may ask for (default 20, at most 50).
    #[serde(default = "default_max_k")]
    pub max_k: usize,
    /// What a document the guards block does: `drop` (default: left out, recorded in the
    /// provenance) or `refuse` (the whole request is refused).
    #[serde(default)]
    pub on_blocked: OnBlocked,
    /// The requested models (routes) it retrieves for by default; empty: every request. A
    /// request turns it on or off with `"aegis": {"retrieval": true | false}`.
    #[serde(default)]
    pub models: Vec<String>,
    /// Retrieve only when a request asks for it.
    #[serde(default)]
    pub on_request_only: bool,
    /// A metadata filter every search of this policy applies (a request may add keys, never
    /// change these).
    #[serde(default)]
    pub filter: Filter,
}

fn default_k() -> usize {
    4
}

fn default_max_k() -> usize {
    20
}

/// What a request asked of retrieval in `aegis.retrieval`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Asked {
    k: Option<usize>,
    #[serde(default)]
    filter: Filter,
}

/// Retrieves documents for each request it applies to, from the retriever it names, with
/// the caller's identity (a request without one is refused by the store, never answered
/// unfiltered), at `before_route` — after the input guards, so the query is the judged
/// one, and before routing and budgets, which then count the documents. The documents go to
/// the lifecycle, which judges each as `Retrieved` before it enters the prompt.
pub struct Retrieval {
    retriever_id: String,
    retriever: Arc<dyn Retriever>,
    config: RetrievalConfig,
}

impl std::fmt::Debug for Retrieval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrieval")
            .field("retriever", &self.retriever_id)
            .field("config", &self.config)
            .finish()
    }
}

impl Retrieval {
    /// The policy of `config`, searching `retriever`.
    pub fn new(config: RetrievalConfig, retriever: Arc<dyn Retriever>) -> Result<Self, Error> {
        if config.max_k == 0 || config.max_k > MAX_K {
            return Err(Error::config(format!(
                "max_k must be between 1 and {MAX_K}"
            )));
        }
        if config.k == 0 || config.k > config.max_k {
            return Err(Error::config(format!(
                "k must be between 1 and max_k ({})",
                config.max_k
            )));
        }
        Ok(Self {
            retriever_id: config.retriever.clone(),
            retriever,
            config,
        })
    }

    /// What the request asked: `None` to skip retrieval, else the k and filter to search
    /// with.
    fn asked(&self, input: &StepInput<'_>) -> Result<Option<(usize, Filter)>, Error> {
        let option = input
            .request
            .extra
            .get(OPTIONS_FIELD)
            .and_then(|o| o.get(RETRIEVAL_OPTION));
        let asked = match option {
            None => {
                let by_default = !self.config.on_request_only
                    && (self.config.models.is_empty()
                        || self.config.models.contains(&input.request.model));
                if !by_default {
                    return Ok(None);
                }
                Asked::default()
            }
            Some(Value::Bool(false)) => return Ok(None),
            Some(Value::Bool(true)) => Asked::default(),
            Some(v @ Value::Object(_)) => Asked::deserialize(v).map_err(|e| {
                Error::invalid_request(format!("`aegis.retrieval`: {e}"))
                    .with_code("invalid_option")
            })?,
            Some(_) => {
                return Err(Error::invalid_request(
                    "`aegis.retrieval` must be true, false or an object `{\"k\": .., \"filter\": {..}}`",
                )
                .with_code("invalid_option"));
            }
        };
        let k = asked.k.unwrap_or(self.config.k);
        if k == 0 || k > self.config.max_k {
            return Err(Error::invalid_request(format!(
                "`aegis.retrieval.k` must be between 1 and {}",
                self.config.max_k
            ))
            .with_code("invalid_option"));
        }
        let mut filter = self.config.filter.clone();
        for (key, value) in asked.filter {
            match filter.get(&key) {
                Some(fixed) if *fixed != value => {
                    return Err(Error::invalid_request(format!(
                        "`aegis.retrieval.filter.{key}` is fixed by the policy"
                    ))
                    .with_code("invalid_option"));
                }
                _ => {
                    filter.insert(key, value);
                }
            }
        }
        Ok(Some((k, filter)))
    }
}

/// The end of the request's last user message: what retrieval searches for.
fn query_of(input: &StepInput<'_>) -> Option<String> {
    let text = input
        .request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)?
        .text();
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let skip = text.chars().count().saturating_sub(MAX_QUERY_CHARS);
    Some(text.chars().skip(skip).collect())
}

fn context_of(view: &ContextView) -> RequestContext {
    let mut ctx = RequestContext::default();
    ctx.run_id = Some(view.run_id.clone());
    ctx.principal.clone_from(&view.principal);
    ctx.labels.clone_from(&view.labels);
    ctx
}

#[async_trait]
impl Policy for Retrieval {
    fn positions(&self) -> &[Position] {
        &[Position::BeforeRoute]
    }

    fn request_options(&self) -> &[&'static str] {
        &[RETRIEVAL_OPTION]
    }

    async fn step(&self, input: &StepInput<'_>) -> Result<Step, Error> {
        let explicit = input
            .request
            .extra
            .get(OPTIONS_FIELD)
            .and_then(|o| o.get(RETRIEVAL_OPTION))
            .is_some_and(|v| *v != Value::Bool(false));
        let Some((k, filter)) = self.asked(input)? else {
            return Ok(Step::proceed());
        };
        if input.context.labels.contains_key(EDITED_LABEL) {
            // The prompt is a reviewer's now: searching with the caller's permissions would
            // let the reviewer read what only the caller may.
            return Err(Error::new(
                ErrorKind::Forbidden,
                "retrieval does not run on a request a reviewer edited: approve or reject it instead",
            )
            .with_code("retrieval_after_edit"));
        }
        let Some(query) = query_of(input) else {
            if explicit {
                return Err(Error::invalid_request(
                    "`aegis.retrieval` asks for retrieval, but the last user message has no text to search for",
                )
                .with_code("invalid_option"));
            }
            return Ok(Step::proceed());
        };
        let filter = (!filter.is_empty()).then_some(filter);
        let documents = self
            .retriever
            .retrieve(&query, k, filter.as_ref(), &context_of(input.context))
            .await?;
        Ok(Step::proceed().with_documents(documents, self.config.on_blocked))
    }

    fn explain(&self, _context: &ContextView, _route: Option<&RouteView>) -> Value {
        json!({
            "retriever": self.retriever_id,
            "k": self.config.k,
            "max_k": self.config.max_k,
            "on_blocked": self.config.on_blocked,
            "models": self.config.models,
            "on_request_only": self.config.on_request_only,
            "filter": self.config.filter,
        })
    }
}
