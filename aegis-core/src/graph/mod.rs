//! A typed, LangGraph-like graph engine whose nodes are tower services.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use aegis_contracts::{NodeInput, NodeOutput, RunStatus, State};
//! use aegis_core::graph::{END, Graph, START, node_fn};
//!
//! #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
//! struct Count(u32);
//! impl State for Count {
//!     type Update = u32;
//!     fn apply(&mut self, add: u32) { self.0 += add }
//! }
//!
//! let graph = Graph::<Count>::builder("counter")
//!     .node("add", node_fn(|_: NodeInput<Count>| async { Ok(NodeOutput::Update(2)) }))
//!     .node("big", node_fn(|_: NodeInput<Count>| async { Ok(NodeOutput::Update(100)) }))
//!     .edge(START, "add")
//!     .branch("add", |s: &Count| if s.0 > 1 { "big" } else { END }, ["big", END])
//!     .edge("big", END)
//!     .compile()
//!     .unwrap();
//! let out = graph.invoke(Count(0)).await.unwrap();
//! assert_eq!((out.status, out.state.0), (RunStatus::Completed, 102));
//! assert!(graph.to_mermaid().contains("add -.-> big"));
//! # });
//! ```
//!
//! Semantics (DESIGN.md §5): each node returns an update folded into the state by the
//! state's reducer, or an interrupt. An interrupt persists the run as `paused` with the
//! interrupt's payload and edit schema; [`Graph::resume`] re-runs the interrupted node from
//! its start with the decision in [`NodeContext::resume`]. Concurrent resumes of one run:
//! exactly one wins (optimistic version check in the [`CheckpointStore`]). State, cursor
//! and interrupt live in the store, so a rebuilt graph on the same store resumes runs begun
//! by another process.

mod memory;
mod node_fn;
mod schema;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aegis_contracts::{
    Approval, Checkpoint, CheckpointStore, Error, ErrorKind, Interrupt, Node, NodeContext,
    NodeInput, NodeOutput, RunEventKind, RunStatus, State, decode_state,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tower::{ServiceExt, util::BoxCloneSyncService};
use tower_service::Service;

pub use memory::MemoryCheckpointStore;
pub use node_fn::{NodeFn, node_fn};
pub use schema::check as check_schema;

use crate::Telemetry;

/// The virtual entry node.
pub const START: &str = "__start__";
/// The virtual exit node.
pub const END: &str = "__end__";

/// A type-erased node (what [`GraphBuilder::node`] stores; see [`boxed`]).
pub type BoxNode<S> = BoxCloneSyncService<NodeInput<S>, NodeOutput<<S as State>::Update>, Error>;

/// Erases a node's type, for hosts that assemble graphs from lists of nodes.
pub fn boxed<S: State>(node: impl Node<S>) -> BoxNode<S> {
    BoxCloneSyncService::new(node)
}
type Router<S> = Arc<dyn Fn(&S) -> String + Send + Sync>;
type Check = Box<dyn FnOnce(&[String]) -> Vec<String> + Send>;

/// When checkpoints are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// After every node, awaited: a crash loses at most the node that was running.
    Sync,
    /// Only when the run pauses or ends: the cheapest, right for short chat calls.
    #[default]
    Exit,
    /// After every node, written in the background while the next node runs.
    Async,
    /// Only once the run pauses (and from then on as [`Exit`](Self::Exit)): a run that
    /// completes or fails without ever pausing leaves no checkpoint — its trail is in the
    /// telemetry / audit log. The cheapest mode; right for high-volume chat behind a gateway,
    /// where a write per request would cap throughput at the database's commit rate.
    Pause,
}

enum Next<S> {
    Edge(String),
    Branch {
        route: Router<S>,
        targets: Vec<String>,
    },
}

impl<S> Clone for Next<S> {
    fn clone(&self) -> Self {
        match self {
            Self::Edge(t) => Self::Edge(t.clone()),
            Self::Branch { route, targets } => Self::Branch {
                route: route.clone(),
                targets: targets.clone(),
            },
        }
    }
}

impl<S> Next<S> {
    fn targets(&self) -> Vec<&str> {
        match self {
            Self::Edge(t) => vec![t.as_str()],
            Self::Branch { targets, .. } => targets.iter().map(String::as_str).collect(),
        }
    }
}

/// Builds a [`Graph`]; every mistake is reported together by [`compile`](Self::compile).
pub struct GraphBuilder<S: State> {
    name: String,
    nodes: Vec<(String, BoxNode<S>)>,
    next: Vec<(String, Next<S>)>,
    interrupt_before: Vec<String>,
    store: Option<Arc<dyn CheckpointStore>>,
    durability: Durability,
    telemetry: Telemetry,
    checks: Vec<Check>,
    open_end: bool,
    lease: Duration,
    terminal_view: Option<TerminalView<S>>,
}

/// What a run's final checkpoint stores instead of its state: `Some(view)` to store the
/// view, `None` to store the state as is. See [`GraphBuilder::terminal_view`].
pub type TerminalView<S> = Arc<dyn Fn(&S, RunStatus) -> Option<S> + Send + Sync>;

/// The code of the error a resume returns when it outlived its lease: the run is left to
/// [`Graph::recover`], not ended.
pub const LEASE_EXPIRED: &str = "lease_expired";

/// The default [`GraphBuilder::resume_lease`].
pub const DEFAULT_RESUME_LEASE: Duration = Duration::from_secs(600);

impl<S: State> GraphBuilder<S> {
    /// How long a resume holds its claim on a run (default ten minutes). A resume is cut
    /// off when its lease runs out, and a run whose claim has expired — its process crashed
    /// or timed out — is taken over by [`Graph::recover`], with the same decision.
    pub fn resume_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Adds a node: any tower service of the [`Node`] shape (see [`node_fn`]).
    pub fn node(mut self, name: impl Into<String>, node: impl Node<S>) -> Self {
        self.nodes
            .push((name.into(), BoxCloneSyncService::new(node)));
        self
    }

    /// Adds an unconditional edge. `from` may be [`START`], `to` may be [`END`].
    pub fn edge(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.next.push((from.into(), Next::Edge(to.into())));
        self
    }

    /// Adds a conditional edge: after `from`, `route` picks the next node from the state.
    /// `route` must be pure and may only return one of `targets` (checked at run time).
    pub fn branch<R, T, I>(mut self, from: impl Into<String>, route: R, targets: I) -> Self
    where
        R: Fn(&S) -> T + Send + Sync + 'static,
        T: Into<String>,
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let route: Router<S> = Arc::new(move |s: &S| route(s).into());
        self.next.push((
            from.into(),
            Next::Branch {
                route,
                targets: targets.into_iter().map(Into::into).collect(),
            },
        ));
        self
    }

    /// Pauses before these nodes run, until a human approves.
    pub fn interrupt_before<I>(mut self, nodes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.interrupt_before
            .extend(nodes.into_iter().map(Into::into));
        self
    }

    /// Where checkpoints go (default: a fresh [`MemoryCheckpointStore`]).
    pub fn checkpointer(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// When checkpoints are written (default [`Durability::Exit`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Where run events go.
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Adds a compile-time check: `check` gets the node names (in insertion order) and
    /// returns problems, which [`compile`](Self::compile) reports with its own. How a host
    /// states what the engine cannot know (e.g. that a streaming pipeline's output guards
    /// can judge a stream).
    pub fn check(mut self, check: impl FnOnce(&[String]) -> Vec<String> + Send + 'static) -> Self {
        self.checks.push(Box::new(check));
        self
    }

    /// Runs of this graph end when their *response* ends, not at [`END`]. Reaching `END`, a
    /// node error or a rejection then leaves the run `running` and returns an [`OpenRun`] in
    /// [`RunOutcome::open`]; the host ends it exactly once with [`Graph::end`] (for a
    /// streamed answer, when the stream is finished, fails or is dropped). Pauses are
    /// unchanged. Default: off (the engine ends runs itself).
    pub fn open_end(mut self, yes: bool) -> Self {
        self.open_end = yes;
        self
    }

    /// What a run's final (terminal) checkpoint stores: `view` may replace the state with
    /// less (a run that did not complete keeps no content, say). It applies to every
    /// terminal write, including [`Graph::record_end_stored`]; and a store drops the state
    /// of a run's earlier checkpoints once its terminal one is written, so nothing the view
    /// removed survives in the run's history.
    pub fn terminal_view(mut self, view: TerminalView<S>) -> Self {
        self.terminal_view = Some(view);
        self
    }

    /// Validates and freezes the graph: unknown or duplicate names, nodes unreachable from
    /// [`START`], nodes with no path to [`END`], nodes with two unconditional successors, and
    /// whatever the [`check`](Self::check)s refuse are all reported together.
    pub fn compile(self) -> Result<Graph<S>, Error> {
        let mut problems = Vec::new();
        let mut nodes = HashMap::new();
        let mut order = Vec::new();
        for (name, node) in self.nodes {
            if name.is_empty() || name == START || name == END {
                problems.push(format!("`{name}` is not a valid node name"));
            } else if nodes.insert(name.clone(), node).is_some() {
                problems.push(format!("node `{name}` is defined twice"));
            } else {
                order.push(name);
            }
        }
        let known = |n: &str| nodes.contains_key(n);
        let mut next: HashMap<String, Next<S>> = HashMap::new();
        for (from, n) in self.next {
            if from != START && !known(&from) {
                problems.push(format!("edge from unknown node `{from}`"));
            }
            for t in n.targets() {
                if t != END && !known(t) {
                    problems.push(format!("edge from `{from}` to unknown node `{t}`"));
                }
                if t == START {
                    problems.push(format!("edge from `{from}` into {START}"));
                }
            }
            match next.entry(from) {
                std::collections::hash_map::Entry::Occupied(e) => problems.push(format!(
                    "node `{}` has more than one outgoing edge; use one `branch` to choose between targets",
                    e.key()
                )),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(n);
                }
            }
        }
        if !next.contains_key(START) {
            problems.push(format!("no edge from {START}"));
        }
        for n in &self.interrupt_before {
            if !known(n) {
                problems.push(format!("interrupt_before names unknown node `{n}`"));
            }
        }
        // Reachability from START.
        let mut reached: HashSet<&str> = HashSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([START]);
        while let Some(n) = queue.pop_front() {
            if !reached.insert(n) {
                continue;
            }
            if let Some(nx) = next.get(n) {
                queue.extend(nx.targets());
            }
        }
        for n in &order {
            if !reached.contains(n.as_str()) {
                problems.push(format!("node `{n}` is unreachable from {START}"));
            }
        }
        // Every node must be able to reach END.
        let mut reaches_end: HashSet<&str> = HashSet::from([END]);
        loop {
            let before = reaches_end.len();
            for (from, nx) in &next {
                if nx.targets().iter().any(|t| reaches_end.contains(t)) {
                    reaches_end.insert(from.as_str());
                }
            }
            if reaches_end.len() == before {
                break;
            }
        }
        for n in &order {
            if !reaches_end.contains(n.as_str()) {
                problems.push(format!("node `{n}` has no path to {END}"));
            }
        }
        for check in self.checks {
            problems.extend(check(&order));
        }
        if !problems.is_empty() {
            return Err(Error::config(format!(
                "graph `{}` does not compile:\n  - {}",
                self.name,
                problems.join("\n  - ")
            )));
        }
        Ok(Graph {
            inner: Arc::new(Inner {
                name: self.name,
                nodes,
                next,
                order,
                interrupt_before: self.interrupt_before.into_iter().collect(),
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryCheckpointStore::new())),
                durability: self.durability,
                telemetry: self.telemetry,
                open_end: self.open_end,
                lease: self.lease,
                terminal_view: self.terminal_view,
            }),
        })
    }
}

/// A compiled graph. Cheap to clone; a tower `Service<S>` that starts a new run per call.
pub struct Graph<S: State> {
    inner: Arc<Inner<S>>,
}

impl<S: State> Clone for Graph<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S: State> {
    name: String,
    nodes: HashMap<String, BoxNode<S>>,
    next: HashMap<String, Next<S>>,
    order: Vec<String>,
    interrupt_before: HashSet<String>,
    store: Arc<dyn CheckpointStore>,
    durability: Durability,
    telemetry: Telemetry,
    open_end: bool,
    lease: Duration,
    terminal_view: Option<TerminalView<S>>,
}

/// How a run ended (for now).
#[derive(Debug)]
#[non_exhaustive]
pub struct RunOutcome<S> {
    /// The run.
    pub run_id: String,
    /// `Completed`, `Paused` or `Rejected`; in an [`open_end`](GraphBuilder::open_end)
    /// graph also the status the run *will* end with (`Completed` at `END`, `Failed` or
    /// `Blocked` for a node error, `Rejected`), and [`open`](Self::open) is set.
    pub status: RunStatus,
    /// The state when it stopped.
    pub state: S,
    /// The pending interrupt when paused.
    pub interrupt: Option<Interrupt>,
    /// The node error that stopped the run (open-end graphs only; other graphs return it).
    pub error: Option<Error>,
    /// The run is still open: end it with [`Graph::end`] (open-end graphs only).
    pub open: Option<OpenRun>,
}

impl<S> RunOutcome<S> {
    fn new(run_id: String, status: RunStatus, state: S) -> Self {
        Self {
            run_id,
            status,
            state,
            interrupt: None,
            error: None,
            open: None,
        }
    }
}

/// A run that reached its end in the graph but whose response is still being delivered
/// (see [`GraphBuilder::open_end`]). Ended with [`Graph::end`].
#[derive(Debug)]
#[must_use = "an open run must be ended with Graph::end"]
pub struct OpenRun {
    run_id: String,
    version: Option<u64>,
    principal: Option<String>,
    /// A checkpoint still being written in the background (`async` durability).
    pending: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl OpenRun {
    /// The run.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// Options for starting a run.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunOptions {
    /// Use this run id instead of a fresh UUIDv7.
    pub run_id: Option<String>,
    /// Record who started the run.
    pub principal: Option<String>,
}

impl RunOptions {
    /// With a run id.
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// With a principal.
    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }
}

/// A node name as a Mermaid node: as is when Mermaid takes it, else a safe id with the name
/// as its label (`budget.before_call` → `budget_before_call["budget.before_call"]`).
fn mermaid_id(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return name.to_owned();
    }
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{safe}[\"{}\"]", name.replace('"', "#quot;"))
}

/// The one terminal event of a run that ended with `status`.
pub(crate) fn terminal_event(status: RunStatus, error: Option<&Error>) -> RunEventKind {
    let (kind, message) = error.map_or((ErrorKind::Internal, String::new()), |e| {
        (e.kind(), e.message().to_owned())
    });
    match status {
        RunStatus::Completed => RunEventKind::Completed,
        RunStatus::Rejected => RunEventKind::Rejected,
        RunStatus::Cancelled => RunEventKind::Cancelled,
        RunStatus::Blocked => RunEventKind::Blocked {
            error: kind,
            code: error.map(|e| e.code().to_owned()),
            message,
        },
        _ => RunEventKind::Failed {
            error: kind,
            message,
        },
    }
}

/// A fresh, time-ordered run id.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Checkpoint bookkeeping of one run in flight.
struct Cursor {
    run_id: String,
    version: Option<u64>,
    principal: Option<String>,
    pending: Option<tokio::task::JoinHandle<Result<(), Error>>>,
    /// A resumed run's claim (the interrupt with its lease), kept on every `running`
    /// checkpoint so a crash at any point leaves the run recoverable.
    claim: Option<Interrupt>,
}

impl<S: State> Graph<S> {
    /// Starts building a graph called `name`.
    pub fn builder(name: impl Into<String>) -> GraphBuilder<S> {
        GraphBuilder {
            name: name.into(),
            nodes: Vec::new(),
            next: Vec::new(),
            interrupt_before: Vec::new(),
            store: None,
            durability: Durability::default(),
            telemetry: Telemetry::default(),
            checks: Vec::new(),
            open_end: false,
            lease: DEFAULT_RESUME_LEASE,
            terminal_view: None,
        }
    }

    /// The graph's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The checkpoint store runs are kept in.
    pub fn store(&self) -> &Arc<dyn CheckpointStore> {
        &self.inner.store
    }

    /// Starts a new run on `state`.
    pub async fn invoke(&self, state: S) -> Result<RunOutcome<S>, Error> {
        self.invoke_with(state, RunOptions::default()).await
    }

    /// Starts a new run with options.
    pub async fn invoke_with(&self, state: S, options: RunOptions) -> Result<RunOutcome<S>, Error> {
        let run_id = options.run_id.unwrap_or_else(new_run_id);
        let first = self.route_from(START, &state)?;
        let mut cursor = Cursor {
            run_id,
            version: None,
            principal: options.principal,
            pending: None,
            claim: None,
        };
        let graph = self.inner.name.clone();
        self.inner
            .telemetry
            .emit(&cursor.run_id, || RunEventKind::RunStarted { graph });
        if matches!(self.inner.durability, Durability::Sync | Durability::Async) {
            self.save(&mut cursor, &state, Some(&first), RunStatus::Running, None)
                .await?;
        }
        self.drive(cursor, state, first, None).await
    }

    /// Resumes a paused run with a human decision. Errors: unknown run
    /// ([`NotFound`](ErrorKind::NotFound)); a run that is not paused, or that another caller
    /// resumed first ([`Conflict`](ErrorKind::Conflict)); an edit on an interrupt that accepts
    /// none or that fails its schema ([`InvalidRequest`](ErrorKind::InvalidRequest)). A refused
    /// resume changes nothing stored.
    pub async fn resume(&self, run_id: &str, decision: Approval) -> Result<RunOutcome<S>, Error> {
        self.resume_by(run_id, decision, None).await
    }

    /// [`resume`](Self::resume), recording who decided.
    pub async fn resume_by(
        &self,
        run_id: &str,
        decision: Approval,
        by: Option<&str>,
    ) -> Result<RunOutcome<S>, Error> {
        let store = &self.inner.store;
        let cp = store
            .latest(run_id)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no run `{run_id}`")))?;
        if cp.graph != self.inner.name {
            return Err(Error::invalid_request(format!(
                "run `{run_id}` belongs to graph `{}`, not `{}`",
                cp.graph, self.inner.name
            )));
        }
        if cp.status != RunStatus::Paused {
            let held = cp.interrupt.as_ref().and_then(|i| i.claim.as_ref());
            let message = match held {
                Some(c) if cp.status == RunStatus::Running => format!(
                    "run `{run_id}` is already being resumed (decision `{}`); only a paused run can be resumed",
                    c.decision.name()
                ),
                _ => format!(
                    "run `{run_id}` is {}, not paused; only a paused run can be resumed",
                    cp.status.as_str()
                ),
            };
            return Err(Error::new(ErrorKind::Conflict, message).with_run_id(run_id));
        }
        let interrupt = cp.interrupt.clone().ok_or_else(|| {
            Error::storage(format!("run `{run_id}` is paused without an interrupt"))
        })?;
        if let Approval::Edit { value } = &decision {
            if interrupt.request.edit_schema.is_null() {
                return Err(Error::invalid_request(format!(
                    "the interrupt of run `{run_id}` accepts approve or reject, not edit"
                )));
            }
            check_schema(&interrupt.request.edit_schema, value).map_err(|e| {
                Error::invalid_request(format!("edit does not match the interrupt's schema: {e}"))
            })?;
        }
        self.claim_and_drive(cp, interrupt, decision, by.map(str::to_owned))
            .await
    }

    /// Takes over a resumed run whose claim has expired — its process crashed, or the resume
    /// outlived its lease — and carries out the decision it recorded, from the interrupted
    /// node. `Ok(None)` when there is nothing to recover: the run is not `running`, holds no
    /// claim, or its lease is still live. Exactly one recoverer gets past the claim.
    pub async fn recover(&self, run_id: &str) -> Result<Option<RunOutcome<S>>, Error> {
        let Some(cp) = self.inner.store.latest(run_id).await? else {
            return Ok(None);
        };
        if cp.status != RunStatus::Running || cp.graph != self.inner.name {
            return Ok(None);
        }
        let Some(interrupt) = cp.interrupt.clone() else {
            return Ok(None);
        };
        let Some(claim) = interrupt.claim.clone().filter(|c| c.expired(now_ms())) else {
            return Ok(None);
        };
        self.claim_and_drive(cp, interrupt, claim.decision, claim.by)
            .await
            .map(Some)
    }

    /// Claims `cp` for `decision` (exactly one concurrent claimer gets past the versioned
    /// write), then carries the decision out within the lease.
    async fn claim_and_drive(
        &self,
        cp: Checkpoint,
        interrupt: Interrupt,
        decision: Approval,
        by: Option<String>,
    ) -> Result<RunOutcome<S>, Error> {
        let run_id = cp.run_id.clone();
        let state: S = decode_state(&cp)?;
        let node = cp
            .next
            .clone()
            .ok_or_else(|| Error::storage(format!("run `{run_id}` is paused without a cursor")))?;
        let lease = self.inner.lease;
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let mut claim = interrupt;
        claim.claim = Some(aegis_contracts::Claim::new(
            decision.clone(),
            by.clone(),
            now_ms().saturating_add(lease_ms),
        ));
        let mut cursor = Cursor {
            run_id: run_id.clone(),
            version: Some(cp.version),
            principal: cp.principal.clone(),
            pending: None,
            claim: Some(claim),
        };
        self.save(&mut cursor, &state, Some(&node), RunStatus::Running, None)
            .await?;
        let name = decision.name().to_owned();
        self.inner
            .telemetry
            .emit(&run_id, || RunEventKind::Resumed { decision: name, by });
        if let Approval::Reject { .. } = decision {
            if self.inner.open_end {
                return Ok(self.open(cursor, RunStatus::Rejected, state, None));
            }
            self.save(&mut cursor, &state, None, RunStatus::Rejected, None)
                .await?;
            self.inner
                .telemetry
                .emit(&run_id, || RunEventKind::Rejected);
            return Ok(RunOutcome::new(cursor.run_id, RunStatus::Rejected, state));
        }
        // The resume must finish within its lease: past it, another process may take over.
        match tokio::time::timeout(lease, self.drive(cursor, state, node, Some(decision))).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the resume of run `{run_id}` outlived its lease of {} s; the run is left to recovery",
                    lease.as_secs()
                ),
            )
            .with_code(LEASE_EXPIRED)
            .with_run_id(run_id)),
        }
    }

    /// The latest checkpointed state and status of a run.
    pub async fn snapshot(&self, run_id: &str) -> Result<Option<(S, Checkpoint)>, Error> {
        match self.inner.store.latest(run_id).await? {
            None => Ok(None),
            Some(cp) => Ok(Some((decode_state(&cp)?, cp))),
        }
    }

    fn route_from(&self, from: &str, state: &S) -> Result<String, Error> {
        match self.inner.next.get(from) {
            None => Err(Error::internal(format!("node `{from}` has no successor"))),
            Some(Next::Edge(t)) => Ok(t.clone()),
            Some(Next::Branch { route, targets }) => {
                let t = route(state);
                if targets.contains(&t) {
                    Ok(t)
                } else {
                    Err(Error::internal(format!(
                        "branch after `{from}` chose `{t}`, which is not one of its declared targets {targets:?}"
                    )))
                }
            }
        }
    }

    async fn save(
        &self,
        cursor: &mut Cursor,
        state: &S,
        next: Option<&str>,
        status: RunStatus,
        interrupt: Option<Interrupt>,
    ) -> Result<(), Error> {
        if let Some(prev) = cursor.pending.take() {
            prev.await
                .map_err(|e| Error::storage(format!("background checkpoint task failed: {e}")))??;
        }
        let interrupt = match (interrupt, status) {
            (None, RunStatus::Running) => cursor.claim.clone(),
            (i, _) => i,
        };
        let viewed = self.stored_view(state, status);
        let value = serde_json::value::to_raw_value(viewed.as_ref().unwrap_or(state))
            .map_err(|e| Error::internal(format!("state does not serialize: {e}")))?;
        let version = cursor.version.map_or(1, |v| v + 1);
        let mut cp = Checkpoint::new(
            cursor.run_id.clone(),
            version,
            self.inner.name.clone(),
            S::SCHEMA_VERSION,
            value,
            next.map(str::to_owned),
            status,
            interrupt,
        );
        cp.principal.clone_from(&cursor.principal);
        cp.at_ms = now_ms();
        let expected = cursor.version;
        cursor.version = Some(version);
        if self.inner.durability == Durability::Async && status == RunStatus::Running {
            let store = self.inner.store.clone();
            cursor.pending = Some(tokio::spawn(async move { store.put(&cp, expected).await }));
            Ok(())
        } else {
            self.inner.store.put(&cp, expected).await
        }
    }

    async fn drive(
        &self,
        mut cursor: Cursor,
        mut state: S,
        mut current: String,
        mut resume: Option<Approval>,
    ) -> Result<RunOutcome<S>, Error> {
        let telemetry = &self.inner.telemetry;
        loop {
            if current == END {
                if self.inner.open_end {
                    return Ok(self.open(cursor, RunStatus::Completed, state, None));
                }
                if !self.skips_final_write(&cursor) {
                    self.save(&mut cursor, &state, None, RunStatus::Completed, None)
                        .await?;
                }
                telemetry.emit(&cursor.run_id, || RunEventKind::Completed);
                return Ok(RunOutcome::new(cursor.run_id, RunStatus::Completed, state));
            }
            if resume.is_none() && self.inner.interrupt_before.contains(&current) {
                let request = aegis_contracts::InterruptRequest::new(
                    format!("approval required before `{current}`"),
                    serde_json::json!({ "node": current }),
                );
                return self.pause(cursor, state, current, request).await;
            }
            let node = self
                .inner
                .nodes
                .get(&current)
                .ok_or_else(|| Error::internal(format!("unknown node `{current}`")))?
                .clone();
            telemetry.emit(&cursor.run_id, || RunEventKind::NodeEntered {
                node: current.clone(),
            });
            let started = Instant::now();
            let mut ctx = NodeContext::new(cursor.run_id.clone(), current.clone());
            ctx.resume = resume.take();
            if ctx.resume.is_some() {
                ctx.interrupt = cursor.claim.as_ref().map(|i| i.request.clone());
            }
            let shared = Arc::new(state);
            let result = node.oneshot(NodeInput::new(shared.clone(), ctx)).await;
            state = Arc::try_unwrap(shared).unwrap_or_else(|still_shared| (*still_shared).clone());
            match result {
                Err(err) => {
                    let err = err.with_run_id(cursor.run_id.clone());
                    if self.inner.open_end {
                        let status = RunStatus::of_error(&err);
                        return Ok(self.open(cursor, status, state, Some(err)));
                    }
                    let save = if self.skips_final_write(&cursor) {
                        Ok(())
                    } else {
                        self.save(&mut cursor, &state, Some(&current), RunStatus::Failed, None)
                            .await
                    };
                    telemetry.emit(&cursor.run_id, || RunEventKind::Failed {
                        error: err.kind(),
                        message: err.message().to_owned(),
                    });
                    save?;
                    return Err(err);
                }
                Ok(NodeOutput::Interrupt(request)) => {
                    return self.pause(cursor, state, current, request).await;
                }
                Ok(NodeOutput::Update(update)) => {
                    state.apply(update);
                    let elapsed = started.elapsed();
                    telemetry.emit(&cursor.run_id, || RunEventKind::NodeLeft {
                        node: current.clone(),
                        elapsed_us: elapsed,
                    });
                    let next = self.route_from(&current, &state)?;
                    if matches!(self.inner.durability, Durability::Sync | Durability::Async)
                        && next != END
                    {
                        self.save(&mut cursor, &state, Some(&next), RunStatus::Running, None)
                            .await?;
                    }
                    current = next;
                }
            }
        }
    }

    /// The [`terminal_view`](GraphBuilder::terminal_view) of `state` for a final write.
    fn stored_view(&self, state: &S, status: RunStatus) -> Option<S> {
        let view = self.inner.terminal_view.as_ref()?;
        status.is_terminal().then(|| view(state, status)).flatten()
    }

    /// `Pause` durability and nothing stored yet: the run ends without a trace in the store.
    fn skips_final_write(&self, cursor: &Cursor) -> bool {
        self.inner.durability == Durability::Pause && cursor.version.is_none()
    }

    async fn pause(
        &self,
        mut cursor: Cursor,
        state: S,
        node: String,
        request: aegis_contracts::InterruptRequest,
    ) -> Result<RunOutcome<S>, Error> {
        let interrupt = Interrupt {
            id: uuid::Uuid::now_v7().to_string(),
            node: node.clone(),
            request,
            claim: None,
        };
        self.save(
            &mut cursor,
            &state,
            Some(&node),
            RunStatus::Paused,
            Some(interrupt.clone()),
        )
        .await?;
        let (id, reason) = (interrupt.id.clone(), interrupt.request.reason.clone());
        self.inner
            .telemetry
            .emit(&cursor.run_id, || RunEventKind::Paused {
                node,
                interrupt_id: id,
                reason,
            });
        let mut outcome = RunOutcome::new(cursor.run_id, RunStatus::Paused, state);
        outcome.interrupt = Some(interrupt);
        Ok(outcome)
    }

    fn open(
        &self,
        cursor: Cursor,
        status: RunStatus,
        state: S,
        error: Option<Error>,
    ) -> RunOutcome<S> {
        let open = OpenRun {
            run_id: cursor.run_id.clone(),
            version: cursor.version,
            principal: cursor.principal,
            pending: cursor.pending,
        };
        let mut outcome = RunOutcome::new(cursor.run_id, status, state);
        outcome.error = error;
        outcome.open = Some(open);
        outcome
    }

    /// Pauses an open run at `node` (which re-runs on resume) with `state` — for a host that
    /// learns only while delivering the response that a human must decide (a streamed
    /// answer whose output guards ask for approval).
    pub async fn pause_open(
        &self,
        open: OpenRun,
        state: S,
        node: &str,
        request: aegis_contracts::InterruptRequest,
    ) -> Result<RunOutcome<S>, Error> {
        if !self.inner.nodes.contains_key(node) {
            return Err(Error::internal(format!(
                "cannot pause run `{}` at unknown node `{node}`",
                open.run_id
            )));
        }
        let cursor = Cursor {
            run_id: open.run_id,
            version: open.version,
            principal: open.principal,
            pending: open.pending,
            claim: None,
        };
        self.pause(cursor, state, node.to_owned(), request).await
    }

    /// Ends an open run (see [`GraphBuilder::open_end`]): [`record_end`](Self::record_end)
    /// then [`emit_end`](Self::emit_end). `error` is the cause of a `failed` or `blocked`
    /// end.
    pub async fn end(
        &self,
        open: OpenRun,
        state: &S,
        status: RunStatus,
        error: Option<&Error>,
    ) -> Result<(), Error> {
        let run_id = open.run_id.clone();
        let saved = self.record_end(open, state, status).await;
        if !matches!(&saved, Err(e) if e.kind() == ErrorKind::Conflict) {
            self.emit_end(&run_id, status, error);
        }
        saved
    }

    /// Writes an open run's terminal checkpoint with `state` and `status` (unless
    /// [`Durability::Pause`] never stored the run), after any background write. The write is
    /// version-checked: if another process ended or took over the run meanwhile, nothing is
    /// written and the error is [`Conflict`](ErrorKind::Conflict).
    pub async fn record_end(
        &self,
        open: OpenRun,
        state: &S,
        status: RunStatus,
    ) -> Result<(), Error> {
        let mut cursor = Cursor {
            run_id: open.run_id,
            version: open.version,
            principal: open.principal,
            pending: open.pending,
            claim: None,
        };
        if self.skips_final_write(&cursor) {
            return Ok(());
        }
        self.save(&mut cursor, state, None, status, None).await
    }

    /// Emits a run's one terminal event for `status`.
    pub fn emit_end(&self, run_id: &str, status: RunStatus, error: Option<&Error>) {
        self.inner
            .telemetry
            .emit(run_id, || terminal_event(status, error));
    }

    /// Ends run `run_id` with `status` from whatever was last stored — for a run whose
    /// [`OpenRun`] was lost (its future was dropped mid-node, or the engine itself failed):
    /// [`record_end_stored`](Self::record_end_stored), then the terminal event when the run
    /// ended here.
    pub async fn end_stored(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<&Error>,
    ) -> Result<(), Error> {
        if self.record_end_stored(run_id, status).await? {
            self.emit_end(run_id, status, error);
        }
        Ok(())
    }

    /// Writes the terminal checkpoint of a run known only by id. `Ok(true)` when the run
    /// ended here: it was stored as `running` (and is now `status`), or never stored at all.
    /// `Ok(false)` when it is paused (it waits for its decision) or already ended.
    pub async fn record_end_stored(&self, run_id: &str, status: RunStatus) -> Result<bool, Error> {
        let Some(cp) = self.inner.store.latest(run_id).await? else {
            return Ok(true);
        };
        if cp.status != RunStatus::Running {
            return Ok(false);
        }
        let viewed = match &self.inner.terminal_view {
            None => None,
            Some(_) => self.stored_view(&decode_state::<S>(&cp)?, status),
        };
        let (schema_version, state) = match viewed {
            Some(v) => (
                S::SCHEMA_VERSION,
                serde_json::value::to_raw_value(&v)
                    .map_err(|e| Error::internal(format!("state does not serialize: {e}")))?,
            ),
            None => (cp.schema_version, cp.state.clone()),
        };
        let mut next = Checkpoint::new(
            cp.run_id.clone(),
            cp.version + 1,
            cp.graph.clone(),
            schema_version,
            state,
            None,
            status,
            None,
        );
        next.principal.clone_from(&cp.principal);
        next.at_ms = now_ms();
        self.inner.store.put(&next, Some(cp.version)).await?;
        Ok(true)
    }

    /// Renders the graph as a Mermaid flowchart: compliance rules as auditable edges.
    /// Conditional edges are dotted; nodes that pause for approval are marked.
    pub fn to_mermaid(&self) -> String {
        let id = |n: &str| match n {
            START => "__start__([START])".to_owned(),
            END => "__end__([END])".to_owned(),
            n => mermaid_id(n),
        };
        let mut out = String::from("flowchart TD\n");
        let mut froms: Vec<&str> = vec![START];
        froms.extend(self.inner.order.iter().map(String::as_str));
        for from in froms {
            match self.inner.next.get(from) {
                Some(Next::Edge(t)) => out.push_str(&format!("    {} --> {}\n", id(from), id(t))),
                Some(Next::Branch { targets, .. }) => {
                    for t in targets {
                        out.push_str(&format!("    {} -.-> {}\n", id(from), id(t)));
                    }
                }
                None => {}
            }
        }
        let mut paused: Vec<&String> = self.inner.interrupt_before.iter().collect();
        paused.sort();
        for n in paused {
            out.push_str(&format!("    {}:::approval\n", mermaid_id(n)));
        }
        if !self.inner.interrupt_before.is_empty() {
            out.push_str("    classDef approval stroke:#d97706,stroke-width:3px\n");
        }
        out
    }
}

impl<S: State> fmt::Debug for Graph<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graph")
            .field("name", &self.inner.name)
            .field("nodes", &self.inner.order)
            .field("durability", &self.inner.durability)
            .finish()
    }
}

impl<S: State> Service<S> for Graph<S> {
    type Response = RunOutcome<S>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<RunOutcome<S>, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, state: S) -> Self::Future {
        let graph = self.clone();
        Box::pin(async move { graph.invoke(state).await })
    }
}
