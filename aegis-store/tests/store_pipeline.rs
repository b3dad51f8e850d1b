//! The lifecycle pipeline on a durable store: a virtual key authenticates, a guard pauses
//! the run, a teammate with the approver role resumes it, and the audit log has it all.
#![allow(clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aegis_contracts::*;
use aegis_core::{Pipeline, PipelineOutcome, guard::GuardEntry};
use aegis_store::{AuditWriter, KeyAuthenticator, NewKey, RunQuery, Store};

struct Echo(Arc<AtomicUsize>);

#[async_trait]
impl Provider for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::all()
    }
    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(ChatResponse::complete(
            ResponseMeta::new("echo", &req.model),
            Completion::text("c1", &req.model, "done"),
        ))
    }
}

/// Asks for approval when the prompt mentions a transfer.
struct AskTransfer;

#[async_trait]
impl Guardrail for AskTransfer {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new([Stage::Input], Granularity::FullText)
    }
    async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        let hit = s.segments().iter().any(|seg| seg.text.contains("transfer"));
        Ok(if hit {
            Verdict::require_approval(
                "mentions a transfer",
                serde_json::json!({"word": "transfer"}),
            )
        } else {
            Verdict::allow()
        })
    }
}

fn principal(id: &str, roles: &[&str]) -> Principal {
    let mut p = Principal::new(id).with_team("pay");
    p.roles = roles.iter().map(|r| r.to_string()).collect();
    p
}

#[tokio::test]
async fn a_paused_pipeline_run_is_resumed_by_a_team_approver() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let (sink, _writer) = AuditWriter::spawn(store.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(Echo(calls.clone())))
        .guard(GuardEntry::new(
            "ask",
            Arc::new(AskTransfer),
            GuardPolicy::default(),
        ))
        .authenticator("keys", Arc::new(KeyAuthenticator::new(store.clone())))
        .telemetry(Arc::new(sink.clone()))
        .checkpointer(Arc::new(store.clone()))
        .build()
        .unwrap();
    let key = store
        .create_key(NewKey::new(principal("alice", &[])))
        .await
        .unwrap()
        .key;
    let carol = principal("carol", &["approver"]);
    store.upsert_principal(&carol).await.unwrap();

    let mut req = ChatRequest::new("test-model", vec![Message::user("transfer $5000")]);
    req.ctx = RequestContext::default().with_credentials(Credentials::bearer(key.expose()));
    let run_id = match pipeline.run(req).await.unwrap() {
        PipelineOutcome::Paused { run_id, .. } => run_id,
        PipelineOutcome::Response(_) => panic!("expected a pause"),
    };
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let run = store.run(&run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.principal.as_deref(), run.team.as_deref()),
        (Some("alice"), Some("pay"))
    );
    let pending = store
        .list_runs(&carol, &RunQuery::new().status(RunStatus::Paused))
        .await
        .unwrap();
    assert_eq!(pending.runs.len(), 1);

    // A principal outside the team cannot, and nothing is recorded.
    let outsider = Principal::new("eve").with_role("approver").with_team("ops");
    let err = store
        .resume_pipeline(&pipeline, &outsider, &run_id, Approval::Approve)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        store
            .run_detail(&carol, &run_id)
            .await
            .unwrap()
            .decisions
            .is_empty()
    );

    let outcome = store
        .resume_pipeline(&pipeline, &carol, &run_id, Approval::Approve)
        .await
        .unwrap();
    let PipelineOutcome::Response(resp) = outcome else {
        panic!("expected an answer")
    };
    let text = resp
        .collect()
        .await
        .unwrap()
        .message()
        .unwrap()
        .text()
        .into_owned();
    assert_eq!(text, "done");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    sink.flush().await;
    let detail = store.run_detail(&carol, &run_id).await.unwrap();
    assert_eq!(detail.run.status, RunStatus::Completed);
    assert_eq!(detail.decisions[0].decided_by, "carol");
    let kinds: Vec<&str> = detail.audit.iter().map(|a| a.kind.as_str()).collect();
    for k in [
        "event.verdict",
        "event.paused",
        "run.decision",
        "event.resumed",
        "event.completed",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert!(
        !serde_json::to_string(&detail.audit)
            .unwrap()
            .contains("$5000"),
        "prompt text is not audited"
    );
    assert!(store.verify_audit().await.unwrap().is_valid());
}

#[test]
fn public_types_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Store>();
    send_sync::<KeyAuthenticator>();
    send_sync::<aegis_store::AuditSink>();
    send_sync::<aegis_store::RunDetail>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let p = Principal::new("a");
        send(&store.list_runs(&p, &RunQuery::new()));
        send(&store.decide(&p, "r", &Approval::Approve));
        send(&store.verify_audit());
        send(&store.create_key(NewKey::new(p.clone())));
        send(&store.resolve_key("k"));
        send(&Store::connect("sqlite::memory:"));
    });
}
