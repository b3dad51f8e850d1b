//! One router, one resolution path: every model name resolves through the compiled routing
//! table; a router's deployments cannot be addressed around it; unknown names are
//! `model_not_found`, never a silent default; the answer names the route, the deployment
//! and the region.
#![allow(clippy::unwrap_used)]

use aegis::{ChatRequest, ErrorKind, Message, RequestContext};

const CONFIG: &str = r#"
    [[providers]]
    id = "eu"
    type = "echo"
    config = { region = "eu" }

    [[providers]]
    id = "us"
    type = "echo"
    config = { region = "us" }

    [[providers]]
    id = "lab"
    type = "echo"
    config = { models = ["lab-1"] }

    [[providers]]
    id = "smart"
    type = "router"
    [providers.config]
    strategy = "ordered"
    region_label = "region"
    [[providers.config.models]]
    name = "chat"
    deployments = [
        { id = "chat-us", provider = "us", model = "echo-us" },
        { id = "chat-eu", provider = "eu", model = "echo-eu" },
    ]

    [routing]
    default_provider = "smart"
    aliases = { fast = "chat", lab = "lab/lab-1" }
"#;

fn ask(model: &str, region: Option<&str>) -> ChatRequest {
    let mut req = ChatRequest::new(model, vec![Message::user("hi")]);
    if let Some(r) = region {
        req.ctx = RequestContext::default().with_label("region", r);
    }
    req
}

#[tokio::test]
async fn a_routers_deployment_cannot_be_addressed_around_the_router() {
    let p = aegis::pipeline_from_toml(CONFIG).await.unwrap();
    for model in ["us/echo-us", "eu/anything", "us"] {
        let err = p.chat(ask(model, Some("eu"))).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::NotFound, "model_not_found"),
            "{model}: {err}"
        );
    }
    let listed: Vec<String> = p.models().into_iter().map(|(m, _)| m).collect();
    assert!(!listed.iter().any(|m| m.starts_with("us")), "{listed:?}");
    assert!(listed.contains(&"smart/chat".to_owned()), "{listed:?}");
    assert!(listed.contains(&"fast".to_owned()), "{listed:?}");
}

#[tokio::test]
async fn unknown_models_and_prefixes_are_not_found_not_sent_to_the_default() {
    let p = aegis::pipeline_from_toml(CONFIG).await.unwrap();
    for model in ["nope/gpt-4o", "gpt-4o", "lab/", "lab/other-model-of-lab"] {
        let err = p.chat(ask(model, None)).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::NotFound, "model_not_found"),
            "{model}: {err}"
        );
    }
    assert_eq!(
        p.resolve("gpt-4o").unwrap_err().code(),
        "model_not_found",
        "the default (a router listing its groups) does not take unknown models"
    );
}

#[tokio::test]
async fn the_answer_names_the_route_the_deployment_and_its_region() {
    let p = aegis::pipeline_from_toml(CONFIG).await.unwrap();
    let resp = p.chat(ask("fast", Some("eu"))).await.unwrap();
    assert_eq!(
        resp.meta.provider, "smart",
        "the route of record is the router"
    );
    assert_eq!(resp.meta.deployment.as_deref(), Some("chat-eu"));
    assert_eq!(resp.meta.region.as_deref(), Some("eu"));

    let resp = p.chat(ask("lab", None)).await.unwrap();
    assert_eq!(
        (resp.meta.provider.as_str(), resp.meta.deployment.as_deref()),
        ("lab", None)
    );
}

#[tokio::test]
async fn alias_targets_are_validated_when_the_config_loads() {
    let bad = CONFIG.replace(
        r#"lab = "lab/lab-1""#,
        r#"lab = "nowhere/x", eu1 = "eu/echo-eu""#,
    );
    let err = aegis::pipeline_from_toml(&bad).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("routing.aliases.lab: "), "{err}");
    assert!(
        err.message().contains("routing.aliases.eu1: ")
            && err.message().contains("deployment of a router"),
        "{err}"
    );
}

#[tokio::test]
async fn a_deployment_marked_addressable_may_be_named_directly() {
    let open = CONFIG.replace(
        r#"{ id = "chat-eu", provider = "eu", model = "echo-eu" }"#,
        r#"{ id = "chat-eu", provider = "eu", model = "echo-eu", addressable = true }"#,
    );
    let p = aegis::pipeline_from_toml(&open).await.unwrap();
    let resp = p.chat(ask("eu/echo-eu", None)).await.unwrap();
    assert_eq!(resp.meta.provider, "eu");
    assert_eq!(resp.meta.region.as_deref(), Some("eu"));
    assert!(p.chat(ask("us/echo-us", None)).await.is_err());
}
