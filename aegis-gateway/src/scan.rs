//! `aegis scan`: run a guard chain over a text and report the verdict as JSON — how users
//! and auditors try rules without writing code.

use std::sync::Arc;

pub use aegis::guard::{ReportedFinding, ScanReport};
use aegis::{
    Error, GuardPolicy, Stage,
    guard::{GuardChain, GuardEntry},
};

/// The stage a scanned text is judged as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScanStage {
    /// A prompt from a user.
    Input,
    /// A model's answer.
    Output,
    /// What a tool returned.
    ToolResult,
    /// A retrieved document.
    Retrieved,
}

impl ScanStage {
    /// The contract stage.
    pub fn stage(self) -> Stage {
        match self {
            Self::Input => Stage::Input,
            Self::Output => Stage::Output,
            Self::ToolResult => Stage::ToolResult,
            Self::Retrieved => Stage::Retrieved,
        }
    }
}

/// Runs `chain` over `text` at `stage`.
pub async fn scan(chain: &GuardChain, stage: ScanStage, text: String) -> Result<ScanReport, Error> {
    aegis::guard::scan(chain, stage.stage(), text).await
}

/// The built-in packs `--pack` accepts, with their default configs.
pub const PACKS: [&str; 5] = ["invisible", "pii", "secrets", "injection", "urls"];

/// A chain of the named built-in packs, in the order given, with default configs. Sanitizing
/// packs redact rather than block, so `scan` shows what they would remove. The packs are
/// built on parallel threads: their automata dominate a scan's start-up.
pub fn chain_of_packs(names: &[String]) -> Result<GuardChain, Error> {
    let guards: Vec<Result<Arc<dyn aegis::Guardrail>, Error>> = std::thread::scope(|scope| {
        let builds: Vec<_> = names
            .iter()
            .map(|name| scope.spawn(move || build_pack(name)))
            .collect();
        builds
            .into_iter()
            .map(|b| {
                b.join()
                    .unwrap_or_else(|_| Err(Error::internal("a pack's build panicked")))
            })
            .collect()
    });
    let mut entries = Vec::new();
    for (name, guard) in names.iter().zip(guards) {
        entries.push(GuardEntry::new(
            name.clone(),
            guard?,
            GuardPolicy::default(),
        ));
    }
    Ok(GuardChain::new(entries))
}

fn build_pack(name: &str) -> Result<Arc<dyn aegis::Guardrail>, Error> {
    use aegis::guards as g;
    Ok(match name {
        "pii" => Arc::new(aegis::pii::PiiGuard::new(
            aegis::pii::PiiGuardConfig::default(),
        )?),
        "secrets" => Arc::new(g::Secrets::new(g::SecretsConfig {
            action: g::Action::Redact,
            ..g::SecretsConfig::default()
        })?),
        "injection" => Arc::new(g::PromptInjection::new(g::PromptInjectionConfig::default())?),
        "invisible" => Arc::new(g::InvisibleText::new(g::InvisibleTextConfig {
            action: g::InvisibleAction::Strip,
            ..g::InvisibleTextConfig::default()
        })?),
        "urls" => Arc::new(g::UrlAllowList::new(g::UrlAllowListConfig::new(Vec::<
            String,
        >::new(
        )))?),
        other => {
            return Err(Error::config(format!(
                "unknown pack `{other}`; available: {}",
                PACKS.join(", ")
            )));
        }
    })
}
