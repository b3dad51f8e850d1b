//! [`PiiGuard`]: the analyzer and the anonymizer as an Aegis [`Guardrail`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis_contracts::{
    Decision, Edit, Error, Finding, Granularity, GuardCapabilities, GuardSubject, Guardrail,
    RequestContext, Span, Stage, Verdict, async_trait,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{Analyzer, AnalyzerConfig, Operator, vault::Vault};

/// What the guard does when it finds PII.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    /// Refuse the subject (`Decision::Block`, code `pii`).
    Block,
    /// Rewrite the entities with their operators (`Decision::Sanitize`).
    #[default]
    Sanitize,
}

/// Configuration of a [`PiiGuard`].
///
/// ```
/// let cfg: aegis_pii::PiiGuardConfig = serde_json::from_value(serde_json::json!({
///     "entities": ["EMAIL_ADDRESS", "CREDIT_CARD"],
///     "score_threshold": 0.5,
///     "action": "sanitize",
///     "operators": { "CREDIT_CARD": { "type": "mask", "chars_to_mask": 12 } },
///     "default_operator": { "type": "pseudonymize" }
/// })).unwrap();
/// assert_eq!(cfg.score_threshold, 0.5);
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PiiGuardConfig {
    /// Entity types to detect; all predefined ones when absent.
    #[serde(default)]
    pub entities: Option<Vec<String>>,
    /// Findings scoring below this are ignored (0.5 by default).
    #[serde(default = "default_threshold")]
    pub score_threshold: f32,
    /// Block or sanitize (default).
    #[serde(default)]
    pub action: PiiAction,
    /// Operator per entity type, for `sanitize`.
    #[serde(default)]
    pub operators: BTreeMap<String, Operator>,
    /// Operator for entity types not in `operators` (`replace` with `<ENTITY_TYPE>` by default).
    #[serde(default)]
    pub default_operator: Operator,
    /// How long a run's pseudonymization vault is kept when the run never ends (it paused
    /// and was never decided, or its host lost track of it), in seconds; 3600 by default.
    /// A run that ends drops its vault at once. A run resumed after this loses its tokens'
    /// originals: its answer keeps the tokens (nothing leaks).
    #[serde(default = "default_vault_ttl")]
    pub vault_ttl_secs: u64,
}

fn default_threshold() -> f32 {
    0.5
}

fn default_vault_ttl() -> u64 {
    3600
}

impl Default for PiiGuardConfig {
    fn default() -> Self {
        Self {
            entities: None,
            score_threshold: default_threshold(),
            action: PiiAction::default(),
            operators: BTreeMap::new(),
            default_operator: Operator::default(),
            vault_ttl_secs: default_vault_ttl(),
        }
    }
}

/// The PII guard.
///
/// Findings: `kind` = entity type, `span` = segment + byte range, `score`, `detector` =
/// recognizer name. Capabilities: every stage, sanitizing, and
/// `Granularity::Window(analyzer.window())` — twice the longest pattern match plus the
/// context look-back plus one byte of look-around each side (see [`Analyzer::window`] for
/// the derivation).
///
/// Pseudonymization keeps one [`Vault`] per `RequestContext::run_id`, created on first use.
/// On the output stage the guard restores this run's tokens (span-precise edits, so a
/// streamed answer restores tokens split across chunks) *and* still analyzes the answer:
/// PII the model produced itself is sanitized (with the entity's operator, or
/// `<ENTITY_TYPE>` where that operator is `pseudonymize` — a new token would mean nothing
/// to the caller). The vault is dropped when the run ends ([`Guardrail::on_run_end`]), or
/// after `vault_ttl_secs` for a run that never ends. A subject to pseudonymize without a
/// run id is an error (the chain fails closed).
///
/// ```
/// use aegis_contracts::{GuardSubject, Guardrail, Message, RequestContext};
/// use aegis_pii::{PiiGuard, PiiGuardConfig};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let guard = PiiGuard::new(PiiGuardConfig::default()).unwrap();
/// let mut subject = GuardSubject::Input { messages: vec![Message::user("mail me: ann@example.org")] };
/// let verdict = guard.check(&subject, &RequestContext::default()).await.unwrap();
/// if let aegis_contracts::Decision::Sanitize { edits } = &verdict.decision {
///     subject.apply_edits(edits).unwrap();
/// }
/// assert_eq!(subject.segments()[0].text, "mail me: <EMAIL_ADDRESS>");
/// # });
/// ```
#[derive(Debug)]
pub struct PiiGuard {
    analyzer: Analyzer,
    config: PiiGuardConfig,
    vaults: Mutex<HashMap<String, Held>>,
}

/// A run's vault and when it was created.
#[derive(Debug)]
struct Held {
    vault: Arc<Mutex<Vault>>,
    since: Instant,
}

impl PiiGuard {
    /// Builds the guard (compiles the analyzer).
    pub fn new(config: PiiGuardConfig) -> Result<Self, Error> {
        let analyzer = Analyzer::new(AnalyzerConfig {
            entities: config.entities.clone(),
            score_threshold: config.score_threshold,
        })
        .map_err(|e| Error::config(format!("pii guard: {e}")))?;
        for k in config.operators.keys() {
            if !analyzer.entities().contains(&k.as_str()) {
                return Err(Error::config(format!(
                    "pii guard: operator for unknown or disabled entity `{k}`"
                )));
            }
        }
        Ok(Self {
            analyzer,
            config,
            vaults: Mutex::new(HashMap::new()),
        })
    }

    /// The analyzer.
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// The vault of run `run_id`, if it pseudonymized anything.
    pub fn vault(&self, run_id: &str) -> Option<Arc<Mutex<Vault>>> {
        self.vaults
            .lock()
            .ok()?
            .get(run_id)
            .map(|h| h.vault.clone())
    }

    /// Removes and returns the vault of run `run_id` (call it when the run ends).
    pub fn take_vault(&self, run_id: &str) -> Option<Vault> {
        let arc = self.vaults.lock().ok()?.remove(run_id)?.vault;
        Some(match Arc::try_unwrap(arc) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(shared) => shared
                .lock()
                .map(|v| v.clone())
                .unwrap_or_else(|p| p.into_inner().clone()),
        })
    }

    /// How many runs currently hold a vault.
    pub fn vault_count(&self) -> usize {
        self.vaults.lock().map(|m| m.len()).unwrap_or(0)
    }

    fn operator_for(&self, entity: &str) -> &Operator {
        self.config
            .operators
            .get(entity)
            .unwrap_or(&self.config.default_operator)
    }

    /// The vault of run `run`, created on first use; vaults older than the TTL go first.
    fn vault_for(&self, run: &str) -> Result<Arc<Mutex<Vault>>, Error> {
        let mut map = self
            .vaults
            .lock()
            .map_err(|_| Error::internal("pii vault map poisoned"))?;
        let ttl = Duration::from_secs(self.config.vault_ttl_secs);
        map.retain(|_, h| h.since.elapsed() < ttl);
        let held = map.entry(run.to_owned()).or_insert_with(|| Held {
            vault: Arc::default(),
            since: Instant::now(),
        });
        Ok(held.vault.clone())
    }

    /// The edits that restore this run's `<ENTITY_N>` tokens in an answer, and the spans
    /// they cover.
    fn restore(&self, subject: &GuardSubject, ctx: &RequestContext) -> Result<Vec<Edit>, Error> {
        let Some(vault) = ctx.run_id.as_deref().and_then(|run| self.vault(run)) else {
            return Ok(Vec::new());
        };
        let vault = vault
            .lock()
            .map_err(|_| Error::internal("pii vault poisoned"))?;
        let mut edits = Vec::new();
        for (i, seg) in subject.segments().iter().enumerate() {
            for (start, end, original) in vault.token_spans(seg.text) {
                edits.push(Edit {
                    segment: i,
                    start,
                    end,
                    replacement: original.to_owned(),
                });
            }
        }
        Ok(edits)
    }

    fn uses_vault(&self) -> bool {
        matches!(self.config.default_operator, Operator::Pseudonymize)
            || self
                .config
                .operators
                .values()
                .any(|o| matches!(o, Operator::Pseudonymize))
    }
}

#[async_trait]
impl Guardrail for PiiGuard {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::Window(self.analyzer.window())).sanitizing()
    }

    fn on_run_end(&self, run_id: &str) {
        if let Ok(mut vaults) = self.vaults.lock() {
            vaults.remove(run_id);
        }
    }

    /// Settled where the analyzer's probes say (see [`Analyzer::settled`]), and, when this
    /// run has a vault, before a token that may still be arriving.
    fn stream_settled(&self, text: &str, from: usize, ctx: &RequestContext) -> Option<usize> {
        let mut at = self.analyzer.settled(text, from)?;
        if let Some(vault) = ctx.run_id.as_deref().and_then(|run| self.vault(run)) {
            let vault = vault.lock().ok()?;
            if let Some(prefix) = vault.token_prefix_at_end(text) {
                at = at.min(prefix);
            }
        }
        Some(at)
    }

    async fn check(&self, subject: &GuardSubject, ctx: &RequestContext) -> Result<Verdict, Error> {
        // With pseudonymization, an answer goes back to the caller with this run's tokens
        // restored — and is still analyzed: PII the model wrote itself is caught.
        let restoring = subject.stage() == Stage::Output && self.uses_vault();
        let mut edits = if restoring {
            self.restore(subject, ctx)?
        } else {
            Vec::new()
        };
        let mut findings = Vec::new();
        let mut per_segment = Vec::new();
        for (i, seg) in subject.segments().iter().enumerate() {
            let mut results = self.analyzer.analyze_resolved(seg.text);
            results.retain(|r| {
                !edits
                    .iter()
                    .any(|e| e.segment == i && e.start < r.end && r.start < e.end)
            });
            for r in &results {
                findings.push(Finding::new(
                    r.entity,
                    Some(Span {
                        segment: i,
                        start: r.start,
                        end: r.end,
                    }),
                    r.score,
                    r.recognizer,
                ));
            }
            per_segment.push((i, seg.text, results));
        }
        if findings.is_empty() {
            return Ok(if edits.is_empty() {
                Verdict::allow()
            } else {
                Verdict::sanitize(edits)
            });
        }
        if self.config.action == PiiAction::Block {
            let mut kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            return Ok(
                Verdict::block(format!("PII detected: {}", kinds.join(", ")), "pii")
                    .with_findings(findings),
            );
        }
        // Inputs are pseudonymized into this run's vault; an answer's own PII is not (a
        // new token would mean nothing to the caller): it gets `<ENTITY_TYPE>` instead.
        let vault = match ctx.run_id.as_deref() {
            _ if restoring || !self.uses_vault() => None,
            Some(run) => Some(self.vault_for(run)?),
            None => return Err(Error::config("pii guard: pseudonymization needs a run id")),
        };
        let mut vault = match &vault {
            Some(v) => Some(
                v.lock()
                    .map_err(|_| Error::internal("pii vault poisoned"))?,
            ),
            None => None,
        };
        let plain = Operator::default();
        for (i, text, results) in per_segment {
            for r in results {
                let operator = match self.operator_for(r.entity) {
                    Operator::Pseudonymize if restoring => &plain,
                    op => op,
                };
                let replacement =
                    operator.apply(r.entity, &text[r.start..r.end], vault.as_deref_mut())?;
                edits.push(Edit {
                    segment: i,
                    start: r.start,
                    end: r.end,
                    replacement,
                });
            }
        }
        edits.sort_by_key(|e| (e.segment, e.start));
        Ok(Verdict::new(Decision::Sanitize { edits }).with_findings(findings))
    }
}
