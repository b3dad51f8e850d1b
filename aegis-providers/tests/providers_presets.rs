//! OpenAI-compatible presets: defaults and quirks applied to the one generic provider.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{ErrorKind, Message, Provider, Secret};
use aegis_providers::{OpenAiCompatible, OpenAiConfig, Preset};
use common::*;
use serde_json::json;

fn completion() -> serde_json::Value {
    json!({ "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{ "index": 0, "finish_reason": "stop",
            "message": { "role": "assistant", "content": "ok" } }] })
}

fn preset_at(preset: Preset, base: &str) -> OpenAiCompatible {
    OpenAiCompatible::preset_builder("p", preset)
        .base_url(format!("{base}/v1"))
        .api_key(Secret::new("k"))
        .build()
        .unwrap()
}

#[test]
fn every_preset_with_a_default_url_builds_from_config_alone() {
    for p in Preset::ALL {
        let mut cfg = OpenAiConfig::preset(p);
        if p.requires_api_key() {
            cfg.api_key = Some(Secret::new("k"));
        }
        let built = OpenAiCompatible::from_config(p.as_str(), cfg, None);
        match p.base_url() {
            Some(url) => assert_eq!(built.unwrap().base_url().as_str(), url, "{p}"),
            None => assert_eq!(built.unwrap_err().kind(), ErrorKind::Config, "{p}"),
        }
    }
}

#[test]
fn hosted_presets_without_a_key_are_config_errors() {
    let err =
        OpenAiCompatible::from_config("g", OpenAiConfig::preset(Preset::Groq), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message().contains("preset `groq` needs an api_key"),
        "{err}"
    );
    assert!(OpenAiCompatible::from_config("o", OpenAiConfig::preset(Preset::Ollama), None).is_ok());
}

#[tokio::test]
async fn openai_preset_sends_max_completion_tokens() {
    let (base, seen) = serve(|_| async { json_response(200, &completion()) }).await;
    let mut req = hello("gpt-5");
    req.max_tokens = Some(100);
    preset_at(Preset::OpenAi, &base).chat(req).await.unwrap();
    let body = seen.last().json();
    assert_eq!(body["max_completion_tokens"], 100);
    assert!(body.get("max_tokens").is_none());
}

#[tokio::test]
async fn mistral_preset_renames_seed_and_omits_stream_options() {
    let (base, seen) = serve(|_| async {
        sse_text_response("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
    })
    .await;
    let mut req = hello("mistral-large-latest").with_stream(true);
    req.seed = Some(7);
    let c = preset_at(Preset::Mistral, &base)
        .chat(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.usage.unwrap().total_tokens(), 2);
    let body = seen.last().json();
    assert_eq!(body["random_seed"], 7);
    assert!(
        body.get("seed").is_none() && body.get("stream_options").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn deepseek_preset_drops_reasoning_content_from_the_conversation() {
    let (base, seen) = serve(|_| async { json_response(200, &completion()) }).await;
    let mut earlier = Message::assistant("42");
    earlier
        .extra
        .insert("reasoning_content".into(), json!("long thoughts"));
    let mut req = hello("deepseek-reasoner");
    req.messages.push(earlier);
    req.messages.push(Message::user("and?"));
    preset_at(Preset::DeepSeek, &base).chat(req).await.unwrap();
    let body = seen.last().json();
    assert_eq!(body["messages"][1]["content"], "42");
    assert!(body["messages"][1].get("reasoning_content").is_none());
}

#[tokio::test]
async fn groq_usage_under_x_groq_is_read() {
    let (base, _) = serve(|_| async {
        sse_text_response("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}],\"x_groq\":{\"id\":\"req_1\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}}\n\ndata: [DONE]\n\n")
    })
    .await;
    let c = preset_at(Preset::Groq, &base)
        .chat(hello("llama-3.3-70b-versatile").with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.usage.unwrap().total_tokens(), 8);
}

#[tokio::test]
async fn azure_v1_preset_sends_the_key_in_api_key() {
    let (base, seen) = serve(|_| async { json_response(200, &completion()) }).await;
    let cfg: OpenAiConfig = serde_json::from_value(json!({
        "preset": "azure_v1", "base_url": format!("{base}/openai/v1"), "api_key": "az"
    }))
    .unwrap();
    OpenAiCompatible::from_config("az", cfg, None)
        .unwrap()
        .chat(hello("gpt-4o"))
        .await
        .unwrap();
    let r = seen.last();
    assert_eq!(r.headers["api-key"], "az");
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(r.uri.path(), "/openai/v1/chat/completions");
}
