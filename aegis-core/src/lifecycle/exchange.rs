//! The state of one governed exchange: what the lifecycle graph's nodes read and update.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use aegis_contracts::{
    ChatRequest, ChatStream, Completion, ContextView, Credentials, Principal, Provenance,
    RequestContext, ResponseMeta, RouteView, State,
};
use serde::{Deserialize, Serialize};

use crate::guard::{ApprovalSlot, PendingApproval};

/// Where a request is sent (the route it resolved to, and after the call the deployment and
/// region that answered).
pub type Route = RouteView;

/// The state of one governed exchange: what the lifecycle graph's nodes read and update.
#[derive(Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Exchange {
    /// The request (sanitized in place by input guards).
    pub request: ChatRequest,
    /// The caller, once authenticated.
    pub principal: Option<Principal>,
    /// Labels of the run: the host's, then those policies add. Checkpointed, so they
    /// survive a resume.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where the request goes.
    pub route: Option<Route>,
    /// The complete answer (sanitized in place by output guards).
    pub completion: Option<Completion>,
    /// Metadata of the provider's answer.
    pub meta: Option<ResponseMeta>,
    /// Guards that judged the exchange, in order.
    pub guards: Vec<String>,
    /// What became of every document retrieval offered (policies' [`Step::documents`]):
    /// ids, sources, scores and verdicts, never content.
    ///
    /// [`Step::documents`]: aegis_contracts::Step::documents
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retrieval: Vec<Provenance>,
    /// Whether the provider was called.
    #[serde(default)]
    pub provider_called: bool,
    /// The run's final usage, once it has ended: reported by the provider, or recovered
    /// from a partial stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<aegis_contracts::Usage>,
    /// What the run cost, in millionths of a US dollar: its usage at the price of the
    /// model that answered (`[pricing]`); `None` when the usage or the price is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd_micros: Option<u64>,
    /// The run's response in flight, never checkpointed (a stream cannot outlive its
    /// process). Taken by the run-end path when the graph reaches its end.
    #[serde(skip)]
    pub(crate) response: ResponseSlot,
    /// The presented credentials; never checkpointed.
    #[serde(skip)]
    pub(crate) credentials: Option<Credentials>,
    /// The tool calls the host judges itself ([`aegis_contracts::HostJudgedTools`]); never
    /// checkpointed, so a resumed run judges every call.
    #[serde(skip)]
    pub(crate) host_judged: Option<aegis_contracts::HostJudgedTools>,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("model", &self.request.model)
            .field("principal", &self.principal)
            .field("labels", &self.labels)
            .field("route", &self.route)
            .field("guards", &self.guards)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// What a run's final checkpoint stores of this exchange when it ends with `status`:
    /// `None` to store it as it is (a completed run keeping sanitized content), else the
    /// exchange without its prompt, tools and answer. A blocked, rejected or failed run's
    /// state can hold text the guards refused — the prompt an input guard blocked, the
    /// answer an output guard blocked — so none of it is kept.
    pub(crate) fn stored_view(
        &self,
        status: aegis_contracts::RunStatus,
        content: crate::config::StoreContent,
    ) -> Option<Exchange> {
        if status == aegis_contracts::RunStatus::Completed
            && content == crate::config::StoreContent::Sanitized
        {
            return None;
        }
        let mut request = ChatRequest::new(self.request.model.clone(), Vec::new());
        request.stream = self.request.stream;
        let usage = self.completion.as_ref().and_then(|c| c.usage);
        Some(Exchange {
            request,
            principal: self.principal.clone(),
            labels: self.labels.clone(),
            route: self.route.clone(),
            completion: usage.map(|u| {
                let mut c = Completion::default();
                c.usage = Some(u);
                c
            }),
            meta: self.meta.clone(),
            guards: self.guards.clone(),
            retrieval: self.retrieval.clone(),
            provider_called: self.provider_called,
            usage: self.usage,
            cost_usd_micros: self.cost_usd_micros,
            ..Exchange::default()
        })
    }

    /// The guard-facing context of this exchange in run `run_id`.
    pub(crate) fn request_context(&self, run_id: &str) -> RequestContext {
        let mut ctx = RequestContext::default();
        ctx.run_id = Some(run_id.to_owned());
        ctx.principal.clone_from(&self.principal);
        ctx.labels.clone_from(&self.labels);
        if let Some(h) = &self.host_judged {
            ctx.extensions.insert(h.clone());
        }
        ctx
    }

    /// The plugin-facing view of this exchange in run `run_id`.
    pub(crate) fn context_view(&self, run_id: &str) -> ContextView {
        ContextView::new(run_id, self.principal.clone(), self.labels.clone())
    }
}

/// What the provider-call node hands the run-end path outside the checkpointed state: a
/// streamed answer, and whether a call was made at all (also when it failed, which leaves
/// no update in the state).
#[derive(Clone, Default)]
pub(crate) struct ResponseSlot(Arc<SlotInner>);

#[derive(Default)]
struct SlotInner {
    stream: Mutex<Option<ChatStream>>,
    called: AtomicBool,
    approval: ApprovalSlot,
}

impl ResponseSlot {
    pub(crate) fn put(&self, stream: ChatStream) {
        if let Ok(mut slot) = self.0.stream.lock() {
            *slot = Some(stream);
        }
    }

    pub(crate) fn take(&self) -> Option<ChatStream> {
        self.0.stream.lock().ok().and_then(|mut s| s.take())
    }

    pub(crate) fn mark_called(&self) {
        self.0.called.store(true, Ordering::Relaxed);
    }

    pub(crate) fn called(&self) -> bool {
        self.0.called.load(Ordering::Relaxed)
    }

    /// Where the stream's output guards leave an answer that awaits approval.
    pub(crate) fn approval_slot(&self) -> ApprovalSlot {
        self.0.approval.clone()
    }

    pub(crate) fn take_approval(&self) -> Option<PendingApproval> {
        self.0.approval.lock().ok().and_then(|mut a| a.take())
    }
}

/// Updates the lifecycle nodes return.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExchangeUpdate {
    /// Authentication result.
    Principal(Option<Principal>),
    /// The judged (possibly sanitized) request and the guards that judged it.
    Request(Box<ChatRequest>, Vec<String>),
    /// The request as a reviewer edited it, judged: labelled
    /// [`EDITED_LABEL`](aegis_contracts::EDITED_LABEL).
    EditedRequest(Box<ChatRequest>, Vec<String>),
    /// Labels a policy step added.
    Labels(BTreeMap<String, String>),
    /// A policy step's documents, judged: the request with those that passed in its
    /// prompt, the record of every one, and the step's labels.
    Retrieved {
        /// The request with the passing documents added.
        request: Box<ChatRequest>,
        /// What became of each document.
        provenance: Vec<Provenance>,
        /// The step's labels.
        labels: BTreeMap<String, String>,
    },
    /// The chosen route.
    Route(Route),
    /// The provider's complete answer.
    Completion(Box<Completion>, ResponseMeta),
    /// The provider streams (the stream sits in the state's slot).
    Streaming(ResponseMeta),
    /// The judged answer and the guards that judged it.
    Judged(Option<Box<Completion>>, Vec<String>),
    /// Nothing changes.
    Nothing,
}

impl Exchange {
    fn answered(&mut self, meta: ResponseMeta) {
        self.provider_called = true;
        if let Some(route) = &mut self.route {
            route.deployment.clone_from(&meta.deployment);
            route.region.clone_from(&meta.region);
        }
        self.meta = Some(meta);
    }
}

impl State for Exchange {
    type Update = ExchangeUpdate;
    const SCHEMA_VERSION: u32 = 2;

    fn apply(&mut self, update: ExchangeUpdate) {
        match update {
            ExchangeUpdate::Principal(p) => {
                self.principal = p;
                self.credentials = None;
            }
            ExchangeUpdate::Request(req, guards) => {
                self.request = *req;
                self.guards.extend(guards);
            }
            ExchangeUpdate::EditedRequest(req, guards) => {
                self.request = *req;
                self.guards.extend(guards);
                self.labels
                    .insert(aegis_contracts::EDITED_LABEL.to_owned(), "input".to_owned());
            }
            ExchangeUpdate::Labels(labels) => self.labels.extend(labels),
            ExchangeUpdate::Retrieved {
                request,
                provenance,
                labels,
            } => {
                self.request = *request;
                self.retrieval.extend(provenance);
                self.labels.extend(labels);
            }
            ExchangeUpdate::Route(r) => self.route = Some(r),
            ExchangeUpdate::Completion(c, meta) => {
                self.completion = Some(*c);
                self.answered(meta);
            }
            ExchangeUpdate::Streaming(meta) => self.answered(meta),
            ExchangeUpdate::Judged(c, guards) => {
                if let Some(c) = c {
                    self.completion = Some(*c);
                }
                for g in guards {
                    if !self.guards.contains(&g) {
                        self.guards.push(g);
                    }
                }
            }
            ExchangeUpdate::Nothing => {}
        }
    }
}
