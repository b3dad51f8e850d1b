//! Selection strategies and router configuration.
#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use aegis_contracts::{ChatBody, ErrorKind, Provider};
use aegis_providers::routing::{Deployment, Router, RouterConfig, Strategy};
use common::*;

#[tokio::test]
async fn weighted_selection_follows_the_weights() {
    let router = Router::builder("llm")
        .strategy(Strategy::Weighted)
        .deployment(
            "m",
            Deployment::new("heavy", Scripted::ok("heavy"), "m").with_weight(3),
        )
        .deployment(
            "m",
            Deployment::new("light", Scripted::ok("light"), "m").with_weight(1),
        )
        .deployment(
            "m",
            Deployment::new("standby", Scripted::ok("standby"), "m").with_weight(0),
        )
        .build()
        .unwrap();
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..4000 {
        *counts
            .entry(router.route(&hello("m")).unwrap().id().to_owned())
            .or_default() += 1;
    }
    let heavy = f64::from(counts["heavy"]) / 4000.0;
    assert!(
        (0.70..0.80).contains(&heavy),
        "heavy share {heavy}: {counts:?}"
    );
    assert!(
        !counts.contains_key("standby"),
        "weight 0 only when nothing else is left"
    );
}

#[tokio::test]
async fn least_busy_prefers_the_deployment_with_fewer_requests_in_flight() {
    let a = Scripted::new("a", |_, _| {
        Reply::Stream(
            vec![Ok("x".into()), Ok("y".into())],
            Duration::from_millis(5),
        )
    });
    let b = Scripted::ok("b");
    let router = Router::builder("llm")
        .strategy(Strategy::LeastBusy)
        .deployment("m", Deployment::new("a", a.clone(), "m"))
        .deployment("m", Deployment::new("b", b.clone(), "m"))
        .build()
        .unwrap();
    // `a` (first, idle) takes the stream and holds it open.
    let held = router.chat(hello("m").with_stream(true)).await.unwrap();
    assert_eq!(router.deployments("m").unwrap()[0].in_flight(), 1);
    assert_eq!(router.route(&hello("m")).unwrap().id(), "b");
    drop(held);
    assert_eq!(
        router.deployments("m").unwrap()[0].in_flight(),
        0,
        "dropping a stream frees it"
    );
    assert_eq!(router.route(&hello("m")).unwrap().id(), "a");
}

#[tokio::test(start_paused = true)]
async fn least_latency_prefers_the_faster_deployment_once_measured() {
    let slow = Scripted::new("slow", |_, _| {
        Reply::After(
            Duration::from_millis(300),
            Box::new(Reply::Text("s".into())),
        )
    });
    let fast = Scripted::new("fast", |_, _| {
        Reply::After(Duration::from_millis(20), Box::new(Reply::Text("f".into())))
    });
    let router = Router::builder("llm")
        .strategy(Strategy::LeastLatency)
        .deployment("m", Deployment::new("slow", slow.clone(), "m"))
        .deployment("m", Deployment::new("fast", fast.clone(), "m"))
        .build()
        .unwrap();
    // Unmeasured deployments are explored first, then the faster one wins.
    for _ in 0..10 {
        router.chat(hello("m")).await.unwrap();
    }
    assert_eq!(slow.count(), 1);
    assert_eq!(fast.count(), 9);
    let d = &router.deployments("m").unwrap()[1];
    assert!(d.latency().unwrap() < Duration::from_millis(50));
}

#[tokio::test]
async fn from_config_rejects_unknown_providers_dangling_names_and_empty_groups() {
    let lookup = |id: &str| (id == "p").then(|| Scripted::ok("p") as Arc<dyn Provider>);
    let cases = [
        (
            serde_json::json!({"models": [{"name": "m", "deployments": [{"provider": "nope"}]}]}),
            "models[0].deployments[0]: no provider with id `nope`",
        ),
        (
            serde_json::json!({"models": [{"name": "m", "deployments": []}]}),
            "has no deployments",
        ),
        (
            serde_json::json!({"models": [{"name": "m", "deployments": [{"provider": "p"}], "fallbacks": ["x"]}]}),
            "falls back to unknown model `x`",
        ),
        (
            serde_json::json!({"models": [{"name": "m", "deployments": [{"provider": "p"}]}], "aliases": {"a": "x"}}),
            "alias `a` names unknown model `x`",
        ),
        (serde_json::json!({"models": []}), "`models` is empty"),
    ];
    for (json, want) in cases {
        let cfg: RouterConfig = serde_json::from_value(json).unwrap();
        let err = Router::from_config("llm", cfg, lookup).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.message().contains(want) && err.message().contains("`llm`"),
            "{err}"
        );
    }
    let bad =
        serde_json::from_value::<RouterConfig>(serde_json::json!({"models": [], "stratgy": "x"}));
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("unknown field `stratgy`")
    );
    let schema = serde_json::to_value(schemars::schema_for!(RouterConfig)).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["models"]));
}

#[tokio::test]
async fn the_router_is_a_provider_listing_its_models_and_aliases() {
    let router = Router::builder("llm")
        .deployment("gpt", Deployment::new("d", Scripted::ok("p"), "gpt-4o"))
        .alias("fast", "gpt")
        .build()
        .unwrap();
    let p: Arc<dyn Provider> = Arc::new(router);
    let mut models = p.models();
    models.sort();
    assert_eq!(models, ["fast", "gpt"]);
    assert!(p.capabilities().streaming);
    let resp = p.chat(hello("fast")).await.unwrap();
    assert_eq!(
        resp.meta.model, "gpt-4o",
        "the alias resolves to the deployment's model"
    );
    assert!(matches!(resp.body, ChatBody::Complete(_)));
}

#[test]
fn router_futures_are_send_and_static() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let router = Router::builder("llm")
        .deployment("m", Deployment::new("d", Scripted::ok("p"), "m"))
        .build()
        .unwrap();
    let fut = async move { router.chat(hello("m")).await };
    assert_send(&fut);
}

#[tokio::test]
async fn weighted_selection_over_more_than_128_deployments_reaches_all_of_them() {
    let mut b = Router::builder("llm");
    for i in 0..200 {
        b = b.deployment(
            "m",
            Deployment::new(format!("d{i}"), Scripted::ok("p"), "m"),
        );
    }
    let router = b.build().unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20_000 {
        seen.insert(router.route(&hello("m")).unwrap().id().to_owned());
    }
    assert_eq!(seen.len(), 200, "every deployment is eventually chosen");
}
