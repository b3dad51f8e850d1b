//! Azure OpenAI: deployment URLs, api-version, key or Entra auth, Azure's extra fields.
#![cfg(feature = "azure")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aegis_contracts::{Error, ErrorKind, Provider, Secret, ToolSpec, async_trait};
use aegis_providers::{AzureConfig, AzureOpenAi, TokenSource};
use common::*;
use serde_json::json;

fn azure(base: &str) -> AzureOpenAi {
    AzureOpenAi::builder("azure", base)
        .api_key(Secret::new("az-SECRET-key"))
        .deployment("gpt-4o", "prod-gpt4o")
        .build()
        .unwrap()
}

#[tokio::test]
async fn requests_go_to_the_deployment_url_with_api_version_and_api_key_header() {
    let (base, seen) =
        serve(|_| async { json_response(200, &fixture_json("azure/response_tool_call.json")) })
            .await;
    let tool = ToolSpec::function("get_weather", "Weather", json!({"type": "object"}));
    let c = azure(&base)
        .chat(hello("gpt-4o").with_tool(tool))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let r = seen.last();
    assert_eq!(
        r.uri.path(),
        "/openai/deployments/prod-gpt4o/chat/completions"
    );
    assert_eq!(r.uri.query(), Some("api-version=2024-10-21"));
    assert_eq!(r.headers["api-key"], "az-SECRET-key");
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(r.json()["tools"][0]["function"]["name"], "get_weather");
    // Translation is the OpenAI one: tool calls, finish reason, cached tokens, Azure extras.
    let m = c.message().unwrap();
    assert_eq!(
        m.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Stockholm"})
    );
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(c.usage.unwrap().cache_read_tokens, 64);
    assert!(c.extra.contains_key("prompt_filter_results"));
}

#[tokio::test]
async fn a_model_without_a_mapping_is_its_own_deployment_and_streams_work() {
    let (base, seen) = serve(|_| async { sse_text_response(&fixture("azure/stream.sse")) }).await;
    let c = azure(&base)
        .chat(hello("gpt-4o-mini").with_stream(true))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(c.message().unwrap().text(), "Hej");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(c.usage.unwrap().total_tokens(), 10);
    assert_eq!(
        seen.last().uri.path(),
        "/openai/deployments/gpt-4o-mini/chat/completions"
    );
}

struct CountingToken(AtomicUsize);

#[async_trait]
impl TokenSource for CountingToken {
    async fn token(&self) -> Result<Secret, Error> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::new(format!("entra-{n}")))
    }
}

#[tokio::test]
async fn entra_token_source_is_asked_per_request_and_sent_as_bearer() {
    let (base, seen) =
        serve(|_| async { json_response(200, &fixture_json("azure/response_tool_call.json")) })
            .await;
    let source = Arc::new(CountingToken(AtomicUsize::new(0)));
    let p = AzureOpenAi::builder("azure", &base)
        .token_source(source.clone())
        .api_version("2025-01-01-preview")
        .build()
        .unwrap();
    p.chat(hello("gpt-4o")).await.unwrap();
    p.chat(hello("gpt-4o")).await.unwrap();
    let all = seen.all();
    assert_eq!(all[0].headers["authorization"], "Bearer entra-0");
    assert_eq!(all[1].headers["authorization"], "Bearer entra-1");
    assert_eq!(all[1].uri.query(), Some("api-version=2025-01-01-preview"));
    assert!(all[1].headers.get("api-key").is_none());
}

#[tokio::test]
async fn content_filter_400_is_a_non_retryable_error_with_azure_code() {
    let (base, _) =
        serve(|_| async { json_response(400, &fixture_json("azure/error_content_filter.json")) })
            .await;
    let err = azure(&base).chat(hello("gpt-4o")).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidRequest,
        "the request's fault, not the gateway's"
    );
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
    assert!(
        err.message().contains("content management policy")
            && err.message().contains("content_filter"),
        "{err}"
    );
    assert!(err.message().contains("`azure`"), "{err}");
}

#[test]
fn config_builds_with_entra_token_and_refuses_two_auth_methods() {
    let cfg: AzureConfig = serde_json::from_value(json!({
        "endpoint": "https://r.openai.azure.com", "entra_token": "eyJ...", "region": "swedencentral"
    }))
    .unwrap();
    let p = AzureOpenAi::from_config("azure", cfg, None).unwrap();
    assert_eq!(p.region(), Some("swedencentral"));
    assert!(!format!("{p:?}").contains("eyJ"));
    let cfg: AzureConfig = serde_json::from_value(json!({
        "endpoint": "https://r.openai.azure.com", "entra_token": "t", "api_key": "k"
    }))
    .unwrap();
    let err = AzureOpenAi::from_config("azure", cfg, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}
