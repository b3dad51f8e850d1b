//! Fan-out of [`RunEvent`]s to the configured [`TelemetrySink`]s.

use std::{fmt, sync::Arc};

use aegis_contracts::{RunEvent, RunEventKind, TelemetrySink};

/// A cheap-to-clone set of telemetry sinks. With no sinks, emitting costs nothing: events
/// are built lazily.
///
/// ```
/// use aegis_core::Telemetry;
/// use aegis_contracts::{RunEvent, RunEventKind, TelemetrySink};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Default)]
/// struct Recorder(Mutex<Vec<RunEvent>>);
/// impl TelemetrySink for Recorder {
///     fn on_event(&self, e: &RunEvent) { self.0.lock().unwrap().push(e.clone()) }
/// }
///
/// let rec = Arc::new(Recorder::default());
/// let telemetry = Telemetry::new([rec.clone() as Arc<dyn TelemetrySink>]);
/// telemetry.emit("run-1", || RunEventKind::Completed);
/// assert_eq!(rec.0.lock().unwrap().len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Telemetry {
    sinks: Arc<[Arc<dyn TelemetrySink>]>,
}

impl Telemetry {
    /// Telemetry delivering to `sinks`.
    pub fn new(sinks: impl IntoIterator<Item = Arc<dyn TelemetrySink>>) -> Self {
        Self {
            sinks: sinks.into_iter().collect(),
        }
    }

    /// Whether there is no sink (events are then never built).
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Builds the event only when someone listens, then delivers it to every sink.
    pub fn emit(&self, run_id: &str, kind: impl FnOnce() -> RunEventKind) {
        if self.sinks.is_empty() {
            return;
        }
        let event = RunEvent::now(run_id, kind());
        for sink in self.sinks.iter() {
            sink.on_event(&event);
        }
    }

    /// Waits until every sink that must be durable ([`TelemetrySink::durable`]) has stored
    /// what it observed; the first error otherwise. Immediate when no sink asks.
    pub async fn durable(&self) -> Result<(), aegis_contracts::Error> {
        for wait in self.sinks.iter().filter_map(|s| s.durable()) {
            wait.await?;
        }
        Ok(())
    }

    /// A telemetry set delivering to both `self`'s sinks and `other`'s.
    pub fn merged(&self, other: &Telemetry) -> Telemetry {
        Self::new(self.sinks.iter().chain(other.sinks.iter()).cloned())
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}
