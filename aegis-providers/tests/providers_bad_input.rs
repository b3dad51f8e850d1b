//! Bad upstream input for every provider: error bodies of unexpected shapes, non-JSON
//! bodies and 2xx bodies of the wrong shape are typed errors that name the provider.
#![cfg(all(
    feature = "anthropic",
    feature = "gemini",
    feature = "bedrock",
    feature = "azure"
))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use aegis_contracts::{ErrorKind, Provider, Secret};
use aegis_providers::{
    Anthropic, AzureOpenAi, Bedrock, Gemini, OpenAiCompatible, bedrock::AwsCredentials,
};
use common::*;

fn all_providers(base: &str) -> Vec<Arc<dyn Provider>> {
    vec![
        Arc::new(
            OpenAiCompatible::builder("p-openai", format!("{base}/v1"))
                .build()
                .unwrap(),
        ),
        Arc::new(
            Anthropic::builder("p-anthropic")
                .base_url(base)
                .api_key(Secret::new("k"))
                .build()
                .unwrap(),
        ),
        Arc::new(
            Gemini::builder("p-gemini")
                .base_url(base)
                .api_key(Secret::new("k"))
                .build()
                .unwrap(),
        ),
        Arc::new(
            Bedrock::builder("p-bedrock", "us-east-1")
                .endpoint(base)
                .credentials(AwsCredentials::new("AKID", Secret::new("s")))
                .build()
                .unwrap(),
        ),
        Arc::new(
            AzureOpenAi::builder("p-azure", base)
                .api_key(Secret::new("k"))
                .build()
                .unwrap(),
        ),
    ]
}

#[tokio::test]
async fn error_bodies_of_unexpected_shapes_are_typed_errors_naming_each_provider() {
    for (status, body, retryable) in [
        (500, r#"{"unexpected": {"shape": [1, 2]}}"#, true),
        (
            503,
            "upstream connect error or disconnect/reset before headers",
            true,
        ),
        (400, "[]", false),
        (404, "", false),
    ] {
        let (base, _) = serve(move |_| async move { raw_response(status, &[], body) }).await;
        for p in all_providers(&base) {
            let err = p.chat(hello("m")).await.unwrap_err();
            // 5xx is the upstream's failure; 4xx the request's.
            let kind = if status >= 500 {
                ErrorKind::Provider
            } else {
                ErrorKind::InvalidRequest
            };
            assert_eq!(err.kind(), kind, "{}: {err}", p.name());
            assert_eq!(err.status(), Some(status), "{}", p.name());
            assert_eq!(err.is_retryable(), retryable, "{}: {err}", p.name());
            assert!(err.message().contains(&format!("`{}`", p.name())), "{err}");
            if body.starts_with("upstream") {
                assert!(err.message().contains("upstream connect error"), "{err}");
            }
        }
    }
}

#[tokio::test]
async fn a_success_status_with_a_body_of_the_wrong_shape_is_never_a_silent_success() {
    for body in [
        r#"{"ok": true}"#,
        "<html>proxy login</html>",
        r#"{"choices": "nope"}"#,
    ] {
        let (base, _) = serve(move |_| async move {
            raw_response(200, &[("content-type", "application/json")], body)
        })
        .await;
        for p in all_providers(&base) {
            let err = p.chat(hello("m")).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Provider, "{}: {err}", p.name());
            assert!(err.message().contains(&format!("`{}`", p.name())), "{err}");
            assert!(err.message().contains("not"), "{err}");
        }
    }
}

#[tokio::test]
async fn an_sse_stream_of_garbage_or_without_terminator_ends_in_an_err_for_every_sse_provider() {
    for body in [
        "data: {{{\n\n",
        ": only a comment\n\n",
        "data: {\"choices\": []}\n\n",
    ] {
        let (base, _) = serve(move |_| async move { sse_text_response(body) }).await;
        for p in all_providers(&base)
            .into_iter()
            .filter(|p| p.name() != "p-bedrock")
        {
            let err = p
                .chat(hello("m").with_stream(true))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap_err();
            assert!(
                err.message().contains(&format!("`{}`", p.name())),
                "{}: {err}",
                p.name()
            );
        }
    }
}

#[test]
fn every_providers_chat_and_embed_futures_are_send_and_static() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    for p in all_providers("http://127.0.0.1:9") {
        let q = Arc::clone(&p);
        let chat = async move { q.chat(hello("m")).await };
        assert_send(&chat);
        let embed = async move {
            p.embed(aegis_contracts::EmbeddingRequest::new("m", vec![]))
                .await
        };
        assert_send(&embed);
    }
}
