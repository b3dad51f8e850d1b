//! The tower layers compose governance without a graph.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, atomic::Ordering};

use aegis_contracts::*;
use aegis_core::{
    Telemetry,
    guard::{GuardChain, GuardLayer},
    layer::{AuthLayer, TelemetryLayer, Upstream},
};
use common::*;
use tower::{ServiceBuilder, ServiceExt};

struct Keys;

#[async_trait]
impl Authenticator for Keys {
    async fn authenticate(&self, c: &Credentials) -> Result<Principal, Error> {
        match c.token().map(Secret::expose) {
            Some("k") => Ok(Principal::new("bob")),
            _ => Err(Error::new(ErrorKind::Unauthenticated, "unknown key")),
        }
    }
}

/// Records the principal the inner service saw.
#[derive(Clone)]
struct Peek(Arc<std::sync::Mutex<Option<Principal>>>, Upstream);

impl tower::Service<ChatRequest> for Peek {
    type Response = ChatResponse;
    type Error = Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<ChatResponse, Error>> + Send>>;
    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: ChatRequest) -> Self::Future {
        *self.0.lock().unwrap() = req.ctx.principal.clone();
        let mut up = self.1.clone();
        Box::pin(async move { tower::Service::call(&mut up, req).await })
    }
}

#[tokio::test]
async fn auth_guard_and_telemetry_layers_stack_like_any_tower_middleware() {
    let rec = Arc::new(Recorder::default());
    let provider = Scripted::new(&["the secret ", "answer"]);
    let calls = provider.calls.clone();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let svc = ServiceBuilder::new()
        .layer(TelemetryLayer::new(Telemetry::new([
            rec.clone() as Arc<dyn TelemetrySink>
        ])))
        .layer(AuthLayer::new(Arc::new(Keys)))
        .layer(GuardLayer::new(GuardChain::new(vec![
            entry("ban", Ban::new("forbidden")),
            entry("redact", Redact::new("secret", "******")),
        ])))
        .service(Peek(seen.clone(), Upstream::new(Arc::new(provider))));

    let err = svc.clone().oneshot(user("hi")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);

    let mut req = user("hi");
    req.ctx = RequestContext::default().with_credentials(Credentials::bearer("k"));
    let resp = svc.clone().oneshot(req.clone()).await.unwrap();
    assert_eq!(seen.lock().unwrap().as_ref().unwrap().id, "bob");
    assert_eq!(resp.meta.guards, ["ban", "redact"]);
    assert!(resp.meta.run_id.is_some());
    assert_eq!(
        resp.collect().await.unwrap().message().unwrap().text(),
        "the ****** answer"
    );

    let streamed = svc
        .clone()
        .oneshot(req.clone().with_stream(true))
        .await
        .unwrap();
    assert_eq!(
        streamed.collect().await.unwrap().message().unwrap().text(),
        "the ****** answer"
    );

    let mut blocked = user("forbidden");
    blocked.ctx = RequestContext::default().with_credentials(Credentials::bearer("k"));
    assert_eq!(
        svc.clone().oneshot(blocked).await.unwrap_err().kind(),
        ErrorKind::PolicyBlocked
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let kinds = rec.kinds();
    assert_eq!(kinds.iter().filter(|k| *k == "run_started").count(), 4);
    assert_eq!(
        kinds.iter().filter(|k| *k == "completed").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "failed").count(), 2);
    let usage = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::ProviderCall { usage: Some(u), .. } => Some(u.output_tokens),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(
        usage,
        [5, 5],
        "usage is reported for complete and streamed calls"
    );
}

#[tokio::test]
async fn guard_layer_turns_require_approval_into_a_typed_error() {
    let svc = ServiceBuilder::new()
        .layer(GuardLayer::new(GuardChain::new(vec![entry(
            "ask",
            AskFor("wire".into()),
        )])))
        .service(Upstream::new(Arc::new(Scripted::new(&["x"]))));
    let err = svc.oneshot(user("wire it")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ApprovalRequired);
}
