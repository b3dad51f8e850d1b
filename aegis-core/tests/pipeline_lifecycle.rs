//! The default lifecycle graph end to end: authenticate → input guards → route → provider
//! call → output guards → audit, with pauses, resumes and streams.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex, atomic::Ordering};

use aegis_contracts::*;
use aegis_core::{Pipeline, PipelineOutcome, config::RoutingConfig, guard::GuardEntry};
use common::*;

fn paused(outcome: PipelineOutcome) -> (String, Interrupt) {
    match outcome {
        PipelineOutcome::Paused { run_id, interrupt } => (run_id, interrupt),
        PipelineOutcome::Response(r) => panic!("expected a pause, got {r:?}"),
    }
}

async fn text_of(outcome: PipelineOutcome) -> String {
    match outcome {
        PipelineOutcome::Response(r) => r
            .collect()
            .await
            .unwrap()
            .message()
            .unwrap()
            .text()
            .into_owned(),
        PipelineOutcome::Paused { .. } => panic!("expected an answer"),
    }
}

#[tokio::test]
async fn a_clean_request_flows_through_every_node_and_is_audited() {
    let rec = Arc::new(Recorder::default());
    let provider = Scripted::new(&["hello ", "there"]);
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(provider))
        .guard(entry("ban", Ban::new("forbidden")))
        .telemetry(rec.clone())
        .build()
        .unwrap();
    let resp = pipeline.chat(user("hi")).await.unwrap();
    assert_eq!(resp.meta.provider, "main");
    assert_eq!(resp.meta.guards, ["ban"]);
    let run_id = resp.meta.run_id.clone().unwrap();
    assert_eq!(
        resp.collect().await.unwrap().message().unwrap().text(),
        "hello there"
    );
    let kinds = rec.kinds();
    let nodes: Vec<String> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::NodeEntered { node } => Some(node.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        nodes,
        [
            "authenticate",
            "input_guards",
            "route",
            "provider_call",
            "output_guards",
        ]
    );
    for k in [
        "run_started",
        "verdict",
        "provider_call",
        "audit",
        "completed",
    ] {
        assert!(kinds.contains(&k.to_owned()), "missing {k} in {kinds:?}");
    }
    assert!(rec.0.lock().unwrap().iter().all(|e| e.run_id == run_id));
    let snapshot = pipeline.graph().snapshot(&run_id).await.unwrap().unwrap();
    assert_eq!(snapshot.1.status, RunStatus::Completed);
}

#[tokio::test]
async fn a_blocked_prompt_never_reaches_the_provider() {
    let provider = Scripted::new(&["x"]);
    let calls = provider.calls.clone();
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(provider))
        .guard(entry("ban", Ban::new("forbidden")))
        .build()
        .unwrap();
    let err = pipeline
        .chat(user("something forbidden"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::PolicyBlocked, "banned_word")
    );
    assert!(err.run_id().is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let cp = pipeline
        .graph()
        .store()
        .latest(err.run_id().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        cp.status,
        RunStatus::Blocked,
        "a blocked run is recorded as blocked"
    );
}

#[tokio::test]
async fn sanitized_prompts_are_what_the_provider_sees() {
    let provider = Scripted::new(&["ok"]);
    let seen = provider.last_request.clone();
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(provider))
        .guard(entry("redact", Redact::new("hunter2", "[password]")))
        .build()
        .unwrap();
    pipeline.chat(user("my password is hunter2")).await.unwrap();
    let req = seen.lock().unwrap().clone().unwrap();
    assert_eq!(req.messages[0].text(), "my password is [password]");
}

#[tokio::test]
async fn an_input_approval_pauses_then_resumes_into_one_provider_call() {
    let provider = Scripted::new(&["done"]);
    let calls = provider.calls.clone();
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(provider))
        .guard(entry("ask", AskFor("transfer".into())))
        .build()
        .unwrap();
    let err = pipeline.chat(user("transfer $5000")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ApprovalRequired);
    let run_id = err.run_id().unwrap().to_owned();
    assert!(err.message().contains(&run_id));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let (_, interrupt) = paused(pipeline.run(user("transfer $1")).await.unwrap());
    assert_eq!(interrupt.node, "input_guards");
    assert_eq!(interrupt.request.payload["guard"], "ask");

    let answer = text_of(pipeline.resume(&run_id, Approval::Approve).await.unwrap()).await;
    assert_eq!(answer, "done");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_edited_prompt_passes_the_guard_chain_again() {
    let provider = Scripted::new(&["ok"]);
    let seen = provider.last_request.clone();
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(provider))
        .guard(entry("ask", AskFor("transfer".into())))
        .guard(entry("ban", Ban::new("forbidden")))
        .build()
        .unwrap();
    let (run_id, _) = paused(pipeline.run(user("transfer money")).await.unwrap());
    let edit = serde_json::json!({"messages": [{"role": "user", "content": "a forbidden edit"}]});
    let err = pipeline
        .resume(&run_id, Approval::Edit { value: edit })
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::PolicyBlocked,
        "the edit was judged again"
    );

    let (run_id, _) = paused(pipeline.run(user("transfer money")).await.unwrap());
    let edit = serde_json::json!({"messages": [{"role": "user", "content": "what is my balance"}]});
    assert_eq!(
        text_of(
            pipeline
                .resume(&run_id, Approval::Edit { value: edit })
                .await
                .unwrap()
        )
        .await,
        "ok"
    );
    assert_eq!(
        seen.lock().unwrap().as_ref().unwrap().messages[0].text(),
        "what is my balance"
    );

    let (run_id, _) = paused(pipeline.run(user("transfer money")).await.unwrap());
    let err = pipeline
        .resume(
            &run_id,
            Approval::Edit {
                value: serde_json::json!({"prompt": "x"}),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidRequest,
        "malformed decision payloads are refused"
    );
    assert_eq!(
        pipeline
            .graph()
            .store()
            .latest(&run_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Paused
    );
}

#[tokio::test]
async fn an_output_approval_resumes_without_calling_the_provider_again() {
    let provider = Scripted::new(&["please transfer it"]);
    let calls = provider.calls.clone();
    let mut ask = AskFor("transfer".into());
    ask.0 = "transfer it".into();
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(provider))
        .guard(entry("ask", ask))
        .build()
        .unwrap();
    let (run_id, interrupt) = paused(pipeline.run(user("hello")).await.unwrap());
    assert_eq!(interrupt.node, "output_guards");
    let answer = text_of(pipeline.resume(&run_id, Approval::Approve).await.unwrap()).await;
    assert_eq!(answer, "please transfer it");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let err = pipeline
        .resume(
            &run_id,
            Approval::Reject {
                reason: "no".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "a completed run cannot be decided again"
    );
}

#[tokio::test]
async fn a_rejected_run_is_a_policy_error() {
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(Scripted::new(&["x"])))
        .guard(entry("ask", AskFor("delete".into())))
        .build()
        .unwrap();
    let (run_id, _) = paused(pipeline.run(user("delete everything")).await.unwrap());
    let err = pipeline
        .resume(
            &run_id,
            Approval::Reject {
                reason: "no".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::PolicyBlocked, "rejected")
    );
}

#[tokio::test]
async fn streams_are_guarded_and_sanitized_on_the_way_out() {
    let provider = Scripted::new(&["the pass", "word is pass", "word"]);
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(provider))
        .guard(entry("redact", Redact::new("password", "********")))
        .build()
        .unwrap();
    let resp = pipeline
        .chat(user("tell me").with_stream(true))
        .await
        .unwrap();
    assert!(matches!(resp.body, ChatBody::Stream(_)));
    let c = resp.collect().await.unwrap();
    assert_eq!(c.message().unwrap().text(), "the ******** is ********");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn a_blocked_stream_ends_in_error() {
    let pipeline = Pipeline::builder()
        .provider(
            "main",
            Arc::new(Scripted::new(&["all good, ", "then forb", "idden"])),
        )
        .guard(entry("ban", Ban::new("forbidden")))
        .build()
        .unwrap();
    let resp = pipeline.chat(user("go").with_stream(true)).await.unwrap();
    assert_eq!(
        resp.collect().await.unwrap_err().kind(),
        ErrorKind::PolicyBlocked
    );
}

#[tokio::test]
async fn full_text_output_guards_refuse_to_build_when_streams_may_not_buffer() {
    let err = Pipeline::builder()
        .provider("main", Arc::new(Scripted::new(&["x"])))
        .guard(entry("json", JsonOnly))
        .stream_buffering(false)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("`json` needs the full text"));
}

struct Keys;

#[async_trait]
impl Authenticator for Keys {
    async fn authenticate(&self, c: &Credentials) -> Result<Principal, Error> {
        match c.token().map(Secret::expose) {
            Some("good-key") => Ok(Principal::new("alice").with_team("payments")),
            _ => Err(Error::new(ErrorKind::Unauthenticated, "unknown key")),
        }
    }
}

#[tokio::test]
async fn authentication_resolves_the_principal_or_refuses() {
    let rec = Arc::new(Recorder::default());
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(Scripted::new(&["x"])))
        .authenticator("keys", Arc::new(Keys))
        .telemetry(rec.clone())
        .build()
        .unwrap();
    let err = pipeline.chat(user("hi")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    let mut bad = user("hi");
    bad.ctx = RequestContext::default().with_credentials(Credentials::bearer("wrong"));
    assert_eq!(
        pipeline.chat(bad).await.unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );

    let mut good = user("hi");
    good.ctx = RequestContext::default().with_credentials(Credentials::bearer("good-key"));
    pipeline.chat(good).await.unwrap();
    let audit = rec.0.lock().unwrap().iter().find_map(|e| match &e.kind {
        RunEventKind::Audit { principal, .. } => principal.clone(),
        _ => None,
    });
    assert_eq!(audit.as_deref(), Some("alice"));
    assert!(!rec.json().contains("good-key"));
}

#[tokio::test]
async fn require_auth_without_authenticators_refuses_everyone() {
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(Scripted::new(&["x"])))
        .require_auth(true)
        .build()
        .unwrap();
    assert_eq!(
        pipeline.chat(user("hi")).await.unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );
}

#[tokio::test]
async fn routing_understands_prefixes_aliases_and_defaults() {
    let a = Scripted::new(&["from a"]);
    let b = Scripted::new(&["from b"]);
    let b_seen = b.last_request.clone();
    let mut routing = RoutingConfig::default();
    routing.aliases.insert("fast".into(), "b/tiny-1".into());
    let pipeline = Pipeline::builder()
        .provider("a", Arc::new(a))
        .provider("b", Arc::new(b))
        .routing(routing)
        .build()
        .unwrap();
    let ask = |model: &str| ChatRequest::new(model, vec![Message::user("q")]);
    let text = |r: ChatResponse| async {
        r.collect()
            .await
            .unwrap()
            .message()
            .unwrap()
            .text()
            .into_owned()
    };
    assert_eq!(
        text(pipeline.chat(ask("whatever")).await.unwrap()).await,
        "from a"
    );
    assert_eq!(
        text(pipeline.chat(ask("b/big-2")).await.unwrap()).await,
        "from b"
    );
    assert_eq!(b_seen.lock().unwrap().as_ref().unwrap().model, "big-2");
    assert_eq!(
        text(pipeline.chat(ask("fast")).await.unwrap()).await,
        "from b"
    );
    assert_eq!(b_seen.lock().unwrap().as_ref().unwrap().model, "tiny-1");

    let empty = Pipeline::builder().build().unwrap();
    assert_eq!(
        empty.chat(ask("m")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn bad_requests_get_typed_errors_and_store_nothing() {
    let provider = Scripted::new(&["x"]);
    let calls = provider.calls.clone();
    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(provider))
        .build()
        .unwrap();
    let no_messages = ChatRequest::new("m", vec![]);
    let no_model = ChatRequest::new(" ", vec![Message::user("x")]);
    let mut bad_tool = user("x");
    let mut assistant = Message::assistant("");
    assistant
        .tool_calls
        .push(ToolCall::new("c1", "f", "{not json"));
    bad_tool.messages.push(assistant);
    let huge = user(&"a".repeat(MAX_REQUEST_TEXT_BYTES + 1));
    let orphan_tool = ChatRequest::new("m", vec![Message::new(Role::Tool, "result")]);
    for (name, req) in [
        ("empty", no_messages),
        ("model", no_model),
        ("tool json", bad_tool),
        ("huge", huge),
        ("tool id", orphan_tool),
    ] {
        let err = pipeline.chat(req).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{name}: {err}");
        assert!(err.run_id().is_none(), "{name}: no run was started");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let unknown_role = serde_json::from_str::<ChatRequest>(
        r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
    );
    assert!(
        unknown_role
            .unwrap_err()
            .to_string()
            .contains("unknown variant `wizard`")
    );
    let wrong_type = serde_json::from_str::<ChatRequest>(r#"{"model":"m","messages":"hello"}"#);
    assert!(wrong_type.is_err());
}

#[tokio::test]
async fn embeddings_pass_identity_and_input_guards() {
    struct Embedder;
    #[async_trait]
    impl Provider for Embedder {
        fn name(&self) -> &str {
            "embedder"
        }
        fn capabilities(&self) -> ProviderCapabilities {
            ProviderCapabilities::all()
        }
        async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, Error> {
            Err(Error::provider("no chat"))
        }
        async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
            Ok(EmbeddingResponse::new(
                req.model,
                req.input.iter().map(|t| vec![t.len() as f32]).collect(),
                Usage::default(),
            ))
        }
    }
    let pipeline = Pipeline::builder()
        .provider("e", Arc::new(Embedder))
        .guard(entry("redact", Redact::new("secret", "x")))
        .guard(entry("ban", Ban::new("forbidden")))
        .build()
        .unwrap();
    let out = pipeline
        .embed(EmbeddingRequest::new("e/small", vec!["a secret".into()]))
        .await
        .unwrap();
    assert_eq!(out.data, vec![vec![3.0]], "the sanitized text was embedded");
    let err = pipeline
        .embed(EmbeddingRequest::new("m", vec!["forbidden".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyBlocked);
    let err = pipeline
        .embed(EmbeddingRequest::new("m", vec![]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

/// Records every text it is shown.
#[derive(Default)]
struct Sees(Mutex<Vec<String>>);

#[async_trait]
impl Guardrail for Sees {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::FullText)
    }
    async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        let mut seen = self.0.lock().unwrap();
        seen.extend(s.segments().iter().map(|x| x.text.to_owned()));
        Ok(Verdict::allow())
    }
}

#[tokio::test]
async fn the_layer_and_the_pipeline_judge_tool_results_alike_and_report_the_same_guards() {
    use aegis_core::guard::{GuardChain, GuardLayer};
    use tower::{Layer, ServiceExt};

    let sees = Arc::new(Sees::default());
    let chain_entry = || GuardEntry::new("sees", sees.clone(), GuardPolicy::default());
    let mut req = user("what did the tool say?");
    let mut tool = Message::tool("call-1", "the tool result text");
    tool.name = Some("lookup".into());
    req.messages.insert(0, tool);
    let tool_seen = || {
        sees.0
            .lock()
            .unwrap()
            .drain(..)
            .filter(|t| t.contains("the tool result text"))
            .count()
    };

    let pipeline = Pipeline::builder()
        .provider("main", Arc::new(Scripted::new(&["ok"])))
        .guard(chain_entry())
        .build()
        .unwrap();
    let via_pipeline = pipeline.chat(req.clone()).await.unwrap();
    let by_pipeline = tool_seen();
    assert!(by_pipeline >= 1, "a tool message is always judged");

    let layered = GuardLayer::new(GuardChain::new(vec![chain_entry()])).layer(
        aegis_core::layer::Upstream::new(Arc::new(Scripted::new(&["ok"]))),
    );
    let via_layer = layered.oneshot(req).await.unwrap();
    assert_eq!(tool_seen(), by_pipeline, "one judging routine");
    assert_eq!(via_layer.meta.guards, via_pipeline.meta.guards);
    assert_eq!(via_pipeline.meta.guards, ["sees"]);
}

/// Answers with one call to `name` whose arguments mention `wipe`.
struct CallsTool(&'static str);

#[async_trait]
impl Provider for CallsTool {
    fn name(&self) -> &str {
        "calls-tool"
    }
    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::default()
    }
    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        let mut c = Completion::text("1", &req.model, "");
        c.choices[0].message.tool_calls = vec![ToolCall::new("c1", self.0, r#"{"note":"wipe"}"#)];
        Ok(ChatResponse::complete(
            ResponseMeta::new("calls-tool", &req.model),
            c,
        ))
    }
}

#[tokio::test]
async fn only_the_tool_calls_a_host_says_it_judges_itself_skip_the_pipelines_tool_call_guards() {
    let pipeline = |tool: &'static str| {
        let ban = Ban {
            stages: vec![Stage::ToolCall],
            ..Ban::new("wipe")
        };
        Pipeline::builder()
            .provider("main", Arc::new(CallsTool(tool)))
            .guard(entry("ban", ban))
            .build()
            .unwrap()
    };
    let host_judged = |req: &mut ChatRequest| {
        req.ctx
            .extensions
            .insert(HostJudgedTools(vec!["hub__files".to_owned()]));
    };
    // Without the host's word, the call is judged (and blocked) as output.
    let err = pipeline("hub__files").chat(user("go")).await.unwrap_err();
    assert!(err.is_blocked(), "{err}");
    // The host judges calls to its own tools: passed on for it to judge.
    let mut req = user("go");
    host_judged(&mut req);
    let done = pipeline("hub__files")
        .chat(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        done.message().unwrap().tool_calls[0].function.name,
        "hub__files"
    );
    // Any other tool is still judged, whatever the host says.
    let mut req = user("go");
    host_judged(&mut req);
    let err = pipeline("other").chat(req).await.unwrap_err();
    assert!(err.is_blocked(), "{err}");
}
