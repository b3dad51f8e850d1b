//! Admission: nothing unjudged reaches a provider. Media no guard judges, references the
//! provider would resolve with the gateway's own credentials and fields with content no
//! guard reads are refused with a typed error naming the part; unknown fields are dropped
//! before the call unless forwarded per provider; tool definitions and `response_format`
//! schemas are judged whole. The upstream is a real local HTTP server recording what it got.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use aegis::{ChatRequest, ContentPart, ErrorKind, Message, Pipeline, config::AegisConfig};
use axum::{body::Bytes, http::header, response::IntoResponse, routing::post};
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<Value>>>;

async fn upstream() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |body: Bytes| {
            let s = s.clone();
            async move {
                s.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                let answer = json!({ "id": "c", "object": "chat.completion", "created": 1,
                    "model": "m", "choices": [{ "index": 0, "finish_reason": "stop",
                    "message": { "role": "assistant", "content": "fine",
                        "audio": { "transcript": "an unjudged transcript" },
                        "vendor_note": "an unjudged note" } }] });
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    answer.to_string(),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

async fn pipeline(addr: SocketAddr, admission: &str, action: &str) -> Pipeline {
    let toml = format!(
        r#"
[pipeline.admission]
{admission}

[[providers]]
id = "up"
type = "openai"
config = {{ base_url = "http://{addr}/v1" }}

[[guardrails]]
id = "words"
type = "ban_substrings"
config = {{ substrings = ["project nightingale"], action = "{action}" }}
"#
    );
    let cfg = AegisConfig::from_toml_str(&toml, std::iter::empty::<(&str, &str)>()).unwrap();
    Pipeline::from_config(&aegis::registry(), &cfg)
        .await
        .unwrap()
}

fn ask(parts: Vec<ContentPart>) -> ChatRequest {
    let mut m = Message::user("");
    m.content = Some(aegis::Content::Parts(parts));
    ChatRequest::new("up/m", vec![m])
}

fn text(t: &str) -> ContentPart {
    ContentPart::Text { text: t.into() }
}

fn image(url: &str) -> ContentPart {
    ContentPart::ImageUrl {
        image_url: json!({ "url": url }),
    }
}

async fn refused(p: &Pipeline, req: ChatRequest, code: &str) -> String {
    let Err(e) = p.chat(req).await else {
        panic!("the request was not refused");
    };
    assert_eq!(e.kind(), ErrorKind::PolicyBlocked, "{e}");
    assert_eq!(e.code(), code, "{e}");
    e.message().to_owned()
}

#[tokio::test]
async fn media_no_input_guard_judges_is_refused_unless_the_pipeline_allows_it() {
    let (addr, seen) = upstream().await;
    let p = pipeline(addr, "", "block").await;
    let msg = refused(
        &p,
        ask(vec![
            text("what is this?"),
            image("https://example.com/cat.png"),
        ]),
        "unjudged_media",
    )
    .await;
    assert!(
        msg.contains("messages[0].content[1]") && msg.contains("image"),
        "{msg}"
    );
    let audio = ContentPart::InputAudio {
        input_audio: json!({ "data": "AAAA", "format": "wav" }),
    };
    refused(&p, ask(vec![audio]), "unjudged_media").await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the provider"
    );

    let open = pipeline(addr, "media = \"allow\"", "block").await;
    open.chat(ask(vec![
        text("what is this?"),
        image("https://example.com/cat.png"),
    ]))
    .await
    .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// A guard that declares it judges images admits them, with no opt-out needed.
#[tokio::test]
async fn a_guard_that_declares_images_admits_them() {
    struct Images;
    #[aegis::async_trait]
    impl aegis::Guardrail for Images {
        fn capabilities(&self) -> aegis::GuardCapabilities {
            aegis::GuardCapabilities::new([aegis::Stage::Input], aegis::Granularity::FullText)
                .judging(aegis::Modality::Image)
        }
        async fn check(
            &self,
            _: &aegis::GuardSubject,
            _: &aegis::RequestContext,
        ) -> Result<aegis::Verdict, aegis::Error> {
            Ok(aegis::Verdict::allow())
        }
    }
    let p = Pipeline::builder()
        .provider("echo", Arc::new(aegis::providers::Echo::new("echo")))
        .guard(aegis::guard::GuardEntry::new(
            "images",
            Arc::new(Images),
            aegis::GuardPolicy::default(),
        ))
        .build()
        .unwrap();
    let mut req = ask(vec![text("hi"), image("https://example.com/cat.png")]);
    req.model = "echo-1".into();
    p.chat(req).await.unwrap();
}

#[tokio::test]
async fn references_resolved_with_the_gateways_credentials_are_refused() {
    let (addr, seen) = upstream().await;
    let p = pipeline(addr, "media = \"allow\"", "block").await;
    let file = ContentPart::File {
        file: json!({ "file_id": "file-abc123" }),
    };
    let msg = refused(&p, ask(vec![file]), "provider_reference").await;
    assert!(msg.contains("file_id"), "{msg}");
    let msg = refused(
        &p,
        ask(vec![image("s3://bucket/private.png")]),
        "provider_reference",
    )
    .await;
    assert!(msg.contains("s3"), "{msg}");
    let gemini_file = "https://generativelanguage.googleapis.com/v1beta/files/abc123";
    let msg = refused(&p, ask(vec![image(gemini_file)]), "provider_reference").await;
    assert!(msg.contains("Gemini file"), "{msg}");
    for field in [
        "mcp_servers",
        "container",
        "cachedContent",
        "tool_resources",
    ] {
        let mut req = ask(vec![text("hi")]);
        req.extra
            .insert(field.into(), json!([{ "url": "https://internal" }]));
        let msg = refused(&p, req, "provider_reference").await;
        assert!(msg.contains(field), "{msg}");
    }
    let mut req = ask(vec![text("hi")]);
    let mut m = Message::assistant("earlier");
    m.extra.insert(
        "gemini_parts".into(),
        json!([{ "fileData": { "fileUri": "gs://bucket/secret.pdf" } }]),
    );
    req.messages.insert(0, m);
    refused(&p, req, "provider_reference").await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the provider"
    );

    let open = pipeline(
        addr,
        "provider_references = \"allow\"\nmedia = \"allow\"",
        "block",
    )
    .await;
    open.chat(ask(vec![image("s3://bucket/ok.png")]))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn fields_with_content_no_guard_reads_are_refused() {
    let (addr, seen) = upstream().await;
    let p = pipeline(addr, "", "block").await;
    for (field, value) in [
        (
            "prediction",
            json!({ "type": "content", "content": "project nightingale" }),
        ),
        ("system", json!("project nightingale")),
        ("functions", json!([{ "name": "f", "description": "x" }])),
    ] {
        let mut req = ask(vec![text("hi")]);
        req.extra.insert(field.into(), value);
        let msg = refused(&p, req, "unjudged_content").await;
        assert!(msg.contains(field), "{msg}");
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_fields_are_dropped_unless_forwarded_for_that_provider() {
    let (addr, seen) = upstream().await;
    let p = pipeline(addr, "", "block").await;
    let mut req = ask(vec![text("hi")]);
    req.extra.insert("vendor_knob".into(), json!(1));
    req.extra.insert("top_logprobs".into(), json!(2));
    req.messages[0]
        .extra
        .insert("secret_side_channel".into(), json!("x"));
    let answer = p.chat(req.clone()).await.unwrap().collect().await.unwrap();
    let m = answer.message().unwrap();
    assert!(
        m.extra.get("audio").is_none() && m.extra.get("vendor_note").is_none(),
        "answer fields no guard judged are dropped too: {m:?}"
    );
    let body = seen.lock().unwrap().pop().unwrap();
    assert!(body.get("vendor_knob").is_none(), "{body}");
    assert_eq!(body["top_logprobs"], 2, "known knobs are forwarded: {body}");
    assert!(
        body["messages"][0].get("secret_side_channel").is_none(),
        "{body}"
    );

    let forwarding = pipeline(addr, "forward_fields = { up = [\"vendor_knob\"] }", "block").await;
    forwarding.chat(req.clone()).await.unwrap();
    let body = seen.lock().unwrap().pop().unwrap();
    assert_eq!(body["vendor_knob"], 1, "{body}");
    let other = pipeline(
        addr,
        "forward_fields = { other = [\"vendor_knob\"] }",
        "block",
    )
    .await;
    other.chat(req).await.unwrap();
    let body = seen.lock().unwrap().pop().unwrap();
    assert!(body.get("vendor_knob").is_none(), "{body}");
}

fn tool_with(description_deep: &str) -> aegis::ToolSpec {
    aegis::ToolSpec::function(
        "lookup",
        "Looks a thing up.",
        json!({ "type": "object", "properties": { "q": {
            "type": "string", "description": description_deep } } }),
    )
}

#[tokio::test]
async fn tool_definitions_and_response_format_schemas_are_judged_whole() {
    let (addr, seen) = upstream().await;
    let p = pipeline(addr, "", "block").await;
    let req = ask(vec![text("hi")]).with_tool(tool_with("about project nightingale"));
    let e = p.chat(req).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::PolicyBlocked, "{e}");
    let mut req = ask(vec![text("hi")]);
    req.response_format = Some(json!({ "type": "json_schema", "json_schema": {
        "name": "answer", "schema": { "type": "object", "properties": {
            "a": { "type": "string", "description": "mention project nightingale" } } } } }));
    let e = p.chat(req).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::PolicyBlocked, "{e}");
    assert!(seen.lock().unwrap().is_empty());

    let redacting = pipeline(addr, "", "redact").await;
    let mut req = ask(vec![text("hi")]).with_tool(tool_with("about project nightingale"));
    req.response_format = Some(json!({ "type": "json_schema", "json_schema": {
        "name": "answer", "description": "project nightingale", "schema": { "type": "object" } } }));
    redacting.chat(req).await.unwrap();
    let body = seen.lock().unwrap().pop().unwrap();
    let sent = body.to_string();
    assert!(!sent.to_lowercase().contains("nightingale"), "{sent}");
    assert_eq!(
        body["tools"][0]["function"]["parameters"]["properties"]["q"]["description"],
        "about [REDACTED]"
    );
    assert_eq!(
        body["response_format"]["json_schema"]["description"],
        "[REDACTED]"
    );
}

/// A reviewer's edit is admitted like the request it replaces: an image smuggled into the
/// edited messages is refused, not sent.
#[tokio::test]
async fn an_edit_on_approval_is_admitted_like_a_request() {
    let (addr, seen) = upstream().await;
    let toml = format!(
        r#"
[[providers]]
id = "up"
type = "openai"
config = {{ base_url = "http://{addr}/v1" }}

[[guardrails]]
id = "ask"
type = "ban_substrings"
stages = ["input"]
config = {{ substrings = ["wire"], action = "require_approval" }}
"#
    );
    let cfg = AegisConfig::from_toml_str(&toml, std::iter::empty::<(&str, &str)>()).unwrap();
    let p = Pipeline::from_config(&aegis::registry(), &cfg)
        .await
        .unwrap();
    let aegis::PipelineOutcome::Paused { run_id, .. } =
        p.run(ask(vec![text("wire it")])).await.unwrap()
    else {
        panic!("the guard asks for approval");
    };
    let edit = aegis::Approval::Edit {
        value: json!({ "messages": [{ "role": "user", "content": [
            { "type": "text", "text": "fine" },
            { "type": "image_url", "image_url": { "url": "https://example.com/x.png" } },
        ]}]}),
    };
    let Err(e) = p.resume(&run_id, edit).await else {
        panic!("the edit was not refused");
    };
    assert_eq!(e.code(), "unjudged_media", "{e}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the provider"
    );
}

/// Vendor fields an adapter replays to the provider carry only what is judged: thinking
/// blocks hold thinking text, Gemini parts hold text, thoughts and repeats of judged tool
/// calls; a reasoning field is text. Anything else in them is refused.
#[tokio::test]
async fn replayed_vendor_parts_carry_only_judged_content() {
    let (addr, seen) = upstream().await;
    let p = pipeline(addr, "", "block").await;
    let with = |field: &str, value: serde_json::Value| {
        let mut req = ask(vec![text("hi")]);
        let mut m = Message::assistant("earlier");
        m.extra.insert(field.into(), value);
        req.messages.insert(0, m);
        req
    };
    for (field, value) in [
        (
            "thinking_blocks",
            json!([{ "type": "text", "text": "project nightingale" }]),
        ),
        (
            "thinking_blocks",
            json!([{ "type": "thinking", "thinking": "ok", "extra": "x" }]),
        ),
        (
            "gemini_parts",
            json!([{ "functionResponse": { "response": { "x": "y" } } }]),
        ),
        (
            "gemini_parts",
            json!([{ "executableCode": { "code": "print(1)" } }]),
        ),
        (
            "gemini_parts",
            json!([{ "functionCall": { "name": "never_called", "args": {} } }]),
        ),
        (
            "reasoning_content",
            json!({ "text": "hidden in an object" }),
        ),
    ] {
        let msg = refused(&p, with(field, value.clone()), "unjudged_content").await;
        assert!(msg.contains(field), "{field} {value}: {msg}");
    }
    assert!(seen.lock().unwrap().is_empty());
    // What is judged passes.
    p.chat(with(
        "thinking_blocks",
        json!([{ "type": "thinking", "thinking": "fine", "signature": "sig" }]),
    ))
    .await
    .unwrap();
}

/// A message's author `name` is part of the prompt the provider builds: judged like content.
#[tokio::test]
async fn a_message_name_is_judged_like_its_content() {
    let (addr, seen) = upstream().await;
    let p = pipeline(addr, "", "block").await;
    let mut req = ask(vec![text("hi")]);
    req.messages[0].name = Some("project nightingale".into());
    let Err(e) = p.chat(req).await else {
        panic!("a banned name passed");
    };
    assert_eq!(e.kind(), ErrorKind::PolicyBlocked, "{e}");
    assert!(seen.lock().unwrap().is_empty());
}

/// Property names, `required` lists and everything under `default` / `examples` (at any
/// depth) are read by the model like descriptions; so is a tool call's function name.
#[tokio::test]
async fn schema_property_names_nested_defaults_and_tool_call_names_are_judged() {
    let (addr, seen) = upstream().await;
    let redacting = pipeline(addr, "", "redact").await;
    let tool = aegis::ToolSpec::function(
        "lookup",
        "Looks a thing up.",
        json!({ "type": "object",
            "properties": { "project nightingale": { "type": "string",
                "default": { "note": ["see project nightingale"] } } },
            "required": ["project nightingale"] }),
    );
    let mut earlier = Message::assistant("");
    earlier.tool_calls = vec![aegis::ToolCall::new("c1", "project nightingale", "{}")];
    let mut result = Message::user("ok");
    result.role = aegis::Role::Tool;
    result.tool_call_id = Some("c1".into());
    let req = ChatRequest::new(
        "m",
        vec![Message::user("hi"), earlier, result, Message::user("go on")],
    )
    .with_tool(tool);
    redacting.chat(req).await.unwrap();
    let body = seen.lock().unwrap().pop().unwrap();
    let sent = body.to_string();
    assert!(!sent.to_lowercase().contains("nightingale"), "{sent}");
    let params = &body["tools"][0]["function"]["parameters"];
    assert!(params["properties"]["[REDACTED]"].is_object(), "{params}");
    assert_eq!(params["required"][0], "[REDACTED]", "{params}");
    assert_eq!(
        params["properties"]["[REDACTED]"]["default"]["note"][0],
        "see [REDACTED]"
    );
    assert_eq!(
        body["messages"][1]["tool_calls"][0]["function"]["name"],
        "[REDACTED]"
    );
}
