//! [`MetricsSink`]: run events as metrics, through the [`metrics`] facade only — the host
//! installs the recorder (the `aegis` gateway serves them as Prometheus text).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `aegis_requests_total` | counter | `status`, `model` |
//! | `aegis_request_duration_seconds` | histogram | `status` |
//! | `aegis_overhead_seconds` | histogram | — (run time minus provider time) |
//! | `aegis_time_to_first_token_seconds` | histogram | — (streams: request to first chunk) |
//! | `aegis_tokens_total` | counter | `model`, `team`, `kind` (`input` / `output`) |
//! | `aegis_cost_microdollars_total` | counter | `model`, `team` (millionths of a US dollar, at `[pricing]`) |
//! | `aegis_circuit_open` | gauge | `router`, `deployment` (set by the router when a breaker opens or closes) |
//! | `aegis_circuit_opened_total` | counter | `router`, `deployment` |
//! | `aegis_provider_calls_total` | counter | `provider`, `outcome` (`ok` or the error kind) |
//! | `aegis_provider_latency_seconds` | histogram | `provider` |
//! | `aegis_guard_verdicts_total` | counter | `guard`, `stage`, `decision`, `enforced` |
//! | `aegis_guard_failures_total` | counter | `guard`, `failed_open` |
//! | `aegis_approvals_pending` | gauge | — (runs paused in this process since it started, or, [set by the host](MetricsSink::approvals_counted_elsewhere), in its store) |
//! | `aegis_budget_remaining`, `aegis_budget_limit` | gauge | `account`, `period`, `unit` (sampled by the budgets pack for the teams and organisations it limits) |
//! | `aegis_trace_spans_dropped_total` | counter | `reason` (set by the gateway's OTLP exporter) |
//!
//! Labels come only from configuration (guard and provider ids) or small closed sets; a
//! model name is a label only for the first [`MAX_MODELS`] distinct ones, and a team for
//! the first [`MAX_TEAMS`] (later ones count as `other`; a caller without a team is
//! `none`). Principal ids, run ids and content are never labels.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant},
};

use aegis_contracts::{RunEvent, RunEventKind, Stage, TelemetrySink};

/// Distinct model names kept as label values.
pub const MAX_MODELS: usize = 64;
/// Distinct team names kept as label values.
pub const MAX_TEAMS: usize = 256;
/// Runs timed at once; beyond it the oldest timings are dropped (their duration is not
/// recorded).
const MAX_TIMED_RUNS: usize = 100_000;

/// A run in flight: when it started and how long its provider calls took.
struct Timing {
    started: Instant,
    provider: Duration,
    first_token: bool,
}

/// Metric handles by label values: after the first update of a label set, an update is a
/// map lookup by borrowed strings — no label strings built, no recorder lookup.
struct Handles<T> {
    map: Mutex<HashMap<String, Vec<(Labels, T)>>>,
}

/// The metric name and up to three more label values (a closed or bounded set each).
type Labels = (&'static str, &'static str, &'static str, &'static str);

/// Label sets kept per handle cache; past it, updates go straight to the recorder.
const MAX_HANDLES: usize = 4096;

impl<T> Default for Handles<T> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Handles<T> {
    /// Calls `apply` with the handle of (`key`, `labels`), made by `make` the first time.
    fn with(&self, key: &str, labels: Labels, make: impl FnOnce() -> T, apply: impl FnOnce(&T)) {
        let Ok(mut map) = self.map.lock() else {
            return apply(&make());
        };
        if let Some(list) = map.get_mut(key) {
            if let Some((_, h)) = list.iter().find(|(l, _)| *l == labels) {
                return apply(h);
            }
            list.push((labels, make()));
            if let Some((_, h)) = list.last() {
                apply(h);
            }
            return;
        }
        if map.len() >= MAX_HANDLES {
            return apply(&make());
        }
        let h = make();
        apply(&h);
        map.insert(key.to_owned(), vec![(labels, h)]);
    }
}

/// Label values from an open set (models, teams), interned while fewer than a bound are
/// known: each distinct value is leaked once, so at most `max` strings of at most 64 bytes
/// live for the process — the sets are process-wide, shared by every sink a reload builds —
/// and a known value costs a set lookup and no allocation.
struct BoundedLabels(std::sync::LazyLock<Mutex<HashSet<&'static str>>>);

/// The model names kept as labels.
static MODELS: BoundedLabels = BoundedLabels(std::sync::LazyLock::new(Mutex::default));
/// The team names kept as labels.
static TEAMS: BoundedLabels = BoundedLabels(std::sync::LazyLock::new(Mutex::default));

impl BoundedLabels {
    /// `value` as a label: `missing` when absent or empty, itself while fewer than `max`
    /// values are known (and it is at most 64 bytes), `other` past that.
    fn label(&self, value: Option<&str>, missing: &'static str, max: usize) -> &'static str {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return missing;
        };
        if value.len() > 64 {
            return "other";
        }
        let Ok(mut known) = self.0.lock() else {
            return "other";
        };
        if let Some(v) = known.get(value) {
            v
        } else if known.len() < max {
            let v: &'static str = Box::leak(value.to_owned().into_boxed_str());
            known.insert(v);
            v
        } else {
            "other"
        }
    }
}

/// Records run events as metrics (see the [module docs](self)).
#[derive(Default)]
pub struct MetricsSink {
    runs: Mutex<HashMap<String, Timing>>,
    counters: Handles<metrics::Counter>,
    histograms: Handles<metrics::Histogram>,
    /// Someone else sets `aegis_approvals_pending` (the gateway, from its store).
    approvals_elsewhere: bool,
}

impl std::fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSink").finish_non_exhaustive()
    }
}

fn bool_label(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

impl MetricsSink {
    /// A sink; the metrics go to whatever recorder the host installed (install it first:
    /// the metrics are described to it here).
    pub fn new() -> Self {
        describe();
        Self::default()
    }

    /// Leaves `aegis_approvals_pending` to the host. By default the sink counts the runs it
    /// saw pause and not yet resume — in this process, since it started; a host with a
    /// store sets the gauge from the paused runs stored instead, which also counts those
    /// paused before a restart or by another replica.
    pub fn approvals_counted_elsewhere(mut self) -> Self {
        self.approvals_elsewhere = true;
        self
    }

    fn started(&self, run_id: &str) {
        if let Ok(mut runs) = self.runs.lock() {
            if runs.len() >= MAX_TIMED_RUNS {
                runs.clear();
            }
            runs.insert(
                run_id.to_owned(),
                Timing {
                    started: Instant::now(),
                    provider: Duration::ZERO,
                    first_token: false,
                },
            );
        }
    }

    fn ended(&self, run_id: &str, status: &'static str) {
        let Some(t) = self.runs.lock().ok().and_then(|mut r| r.remove(run_id)) else {
            return;
        };
        let total = t.started.elapsed();
        self.histograms.with(
            "",
            ("aegis_request_duration_seconds", status, "", ""),
            || metrics::histogram!("aegis_request_duration_seconds", "status" => status),
            |h| h.record(total.as_secs_f64()),
        );
        self.histograms.with(
            "",
            ("aegis_overhead_seconds", "", "", ""),
            || metrics::histogram!("aegis_overhead_seconds"),
            |h| h.record(total.saturating_sub(t.provider).as_secs_f64()),
        );
    }
}

impl TelemetrySink for MetricsSink {
    fn on_event(&self, event: &RunEvent) {
        let run = event.run_id.as_str();
        match &event.kind {
            RunEventKind::RunStarted { .. } => self.started(run),
            RunEventKind::ProviderCall {
                provider,
                latency_us,
                error,
                ..
            } => {
                let outcome = error.map_or("ok", |e| e.code());
                self.counters.with(
                    provider,
                    ("aegis_provider_calls_total", outcome, "", ""),
                    || metrics::counter!("aegis_provider_calls_total", "provider" => provider.clone(), "outcome" => outcome),
                    |c| c.increment(1),
                );
                self.histograms.with(
                    provider,
                    ("aegis_provider_latency_seconds", "", "", ""),
                    || metrics::histogram!("aegis_provider_latency_seconds", "provider" => provider.clone()),
                    |h| h.record(latency_us.as_secs_f64()),
                );
                if let Ok(mut runs) = self.runs.lock()
                    && let Some(t) = runs.get_mut(run)
                {
                    t.provider += *latency_us;
                }
            }
            RunEventKind::FirstToken => {
                let elapsed = self.runs.lock().ok().and_then(|mut runs| {
                    let t = runs.get_mut(run).filter(|t| !t.first_token)?;
                    t.first_token = true;
                    Some(t.started.elapsed())
                });
                if let Some(e) = elapsed {
                    self.histograms.with(
                        "",
                        ("aegis_time_to_first_token_seconds", "", "", ""),
                        || metrics::histogram!("aegis_time_to_first_token_seconds"),
                        |h| h.record(e.as_secs_f64()),
                    );
                }
            }
            RunEventKind::Verdict {
                stage,
                verdict,
                enforced,
            } => {
                let (stage, decision, enforced) = (
                    stage_name(*stage),
                    verdict.decision_name(),
                    bool_label(*enforced),
                );
                self.counters.with(
                    &verdict.guard,
                    ("aegis_guard_verdicts_total", stage, decision, enforced),
                    || {
                        metrics::counter!(
                            "aegis_guard_verdicts_total",
                            "guard" => verdict.guard.clone(),
                            "stage" => stage,
                            "decision" => decision,
                            "enforced" => enforced,
                        )
                    },
                    |c| c.increment(1),
                );
            }
            RunEventKind::GuardFailed {
                guard, failed_open, ..
            } => {
                metrics::counter!(
                    "aegis_guard_failures_total",
                    "guard" => guard.clone(),
                    "failed_open" => bool_label(*failed_open),
                )
                .increment(1);
            }
            RunEventKind::Paused { .. } => {
                if !self.approvals_elsewhere {
                    metrics::gauge!("aegis_approvals_pending").increment(1.0);
                }
                // A paused run's time waiting for a human is not its latency.
                if let Ok(mut runs) = self.runs.lock() {
                    runs.remove(run);
                }
            }
            RunEventKind::Resumed { .. } => {
                if !self.approvals_elsewhere {
                    metrics::gauge!("aegis_approvals_pending").decrement(1.0);
                }
                self.started(run);
            }
            RunEventKind::Audit {
                status,
                model,
                team,
                usage,
                cost_usd_micros,
                ..
            } => {
                let model = MODELS.label(model.as_deref(), "unknown", MAX_MODELS);
                let team = TEAMS.label(team.as_deref(), "none", MAX_TEAMS);
                let status = status.map_or("unknown", |s| s.as_str());
                self.counters.with(
                    model,
                    ("aegis_requests_total", status, "", ""),
                    || metrics::counter!("aegis_requests_total", "status" => status, "model" => model),
                    |c| c.increment(1),
                );
                if let Some(u) = usage {
                    for (kind, n) in [("input", u.input_tokens), ("output", u.output_tokens)] {
                        self.counters.with(
                            model,
                            ("aegis_tokens_total", kind, team, ""),
                            || metrics::counter!("aegis_tokens_total", "model" => model, "team" => team, "kind" => kind),
                            |c| c.increment(n),
                        );
                    }
                }
                if let Some(micros) = cost_usd_micros {
                    self.counters.with(
                        model,
                        ("aegis_cost_microdollars_total", team, "", ""),
                        || metrics::counter!("aegis_cost_microdollars_total", "model" => model, "team" => team),
                        |c| c.increment(*micros),
                    );
                }
            }
            RunEventKind::Completed => self.ended(run, "completed"),
            RunEventKind::Rejected => self.ended(run, "rejected"),
            RunEventKind::Failed { .. } => self.ended(run, "failed"),
            RunEventKind::Blocked { .. } => self.ended(run, "blocked"),
            RunEventKind::Cancelled => self.ended(run, "cancelled"),
            _ => {}
        }
    }
}

/// Help texts and units, for the recorder.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("aegis_requests_total", "Runs ended, by status and model.");
    describe_histogram!(
        "aegis_request_duration_seconds",
        Unit::Seconds,
        "Run time from start to end (time paused for approval excluded), by status."
    );
    describe_histogram!(
        "aegis_overhead_seconds",
        Unit::Seconds,
        "Time Aegis itself added to a run: run time minus provider time."
    );
    describe_histogram!(
        "aegis_time_to_first_token_seconds",
        Unit::Seconds,
        "Streamed runs: time from start to the first content chunk handed to the caller."
    );
    describe_counter!(
        "aegis_tokens_total",
        "Tokens used, by model, team and kind (input, output)."
    );
    describe_gauge!(
        "aegis_circuit_open",
        "Whether a router deployment's circuit breaker is open (1) or closed (0), set when it changes."
    );
    describe_counter!(
        "aegis_circuit_opened_total",
        "Times a router deployment's circuit breaker opened."
    );
    describe_counter!(
        "aegis_cost_microdollars_total",
        "What runs cost at the pipeline's prices, in millionths of a US dollar, by model and team."
    );
    describe_counter!(
        "aegis_provider_calls_total",
        "Provider calls, by provider and outcome (ok or the error kind)."
    );
    describe_histogram!(
        "aegis_provider_latency_seconds",
        Unit::Seconds,
        "Provider call latency until the answer (or a stream's first byte), by provider."
    );
    describe_counter!(
        "aegis_guard_verdicts_total",
        "Guard verdicts, by guard, stage, decision and whether enforced."
    );
    describe_counter!(
        "aegis_guard_failures_total",
        "Guard errors and timeouts, by guard and whether the chain failed open."
    );
    describe_gauge!(
        "aegis_approvals_pending",
        "Runs waiting for a human decision (the gateway: paused runs in its store, sampled every 5 s)."
    );
    // Set by the budgets pack and the gateway's trace exporter; described here, where the
    // recorder is known to be installed.
    describe_gauge!(
        "aegis_budget_remaining",
        "What is left of a team's or organisation's budget in its current period, by account, period and unit (usd or tokens); sampled every 5 s."
    );
    describe_gauge!(
        "aegis_budget_limit",
        "The limit of a named budget line, by account, period and unit."
    );
    describe_counter!(
        "aegis_trace_spans_dropped_total",
        "Trace spans lost on the way to the collector, by reason (queue_full, export_failed)."
    );
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Input => "input",
        Stage::Output => "output",
        Stage::ToolCall => "tool_call",
        Stage::ToolResult => "tool_result",
        Stage::ToolDefinition => "tool_definition",
        Stage::Retrieved => "retrieved",
        _ => "other",
    }
}
