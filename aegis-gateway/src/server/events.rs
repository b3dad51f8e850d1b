//! A live feed of run events for `GET /v1/runs/{id}/events`.

use aegis::{RunEvent, TelemetrySink};
use tokio::sync::broadcast;

/// A telemetry sink that fans run events out to SSE subscribers. Never blocks: slow
/// subscribers lose events (and are told so) rather than slowing requests down.
#[derive(Clone)]
pub struct EventFeed {
    tx: broadcast::Sender<RunEvent>,
}

impl Default for EventFeed {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventFeed {
    /// A feed buffering up to `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(16)).0,
        }
    }

    /// A new subscription to every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.tx.subscribe()
    }
}

impl TelemetrySink for EventFeed {
    fn on_event(&self, event: &RunEvent) {
        // No subscriber is not an error.
        let _ = self.tx.send(event.clone());
    }
}
