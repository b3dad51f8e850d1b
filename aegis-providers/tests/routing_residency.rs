//! Residency: the filter is checked before every attempt; with no compliant deployment the
//! request is refused with a typed error, never sent elsewhere.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aegis_contracts::{ChatRequest, ErrorKind, Provider, RequestContext};
use aegis_providers::routing::{
    Deployment, RegionFilter, RetryPolicy, Router, RouterConfig, region_label_filter,
};
use common::*;

fn in_eu(mut req: ChatRequest) -> ChatRequest {
    req.ctx = RequestContext::default().with_label("region", "eu");
    req
}

#[tokio::test]
async fn no_compliant_deployment_is_a_residency_violation_and_nothing_is_called() {
    let us = Scripted::in_region("us-prov", "us", |_, _| Reply::Text("us".into()));
    let router = Router::builder("llm")
        .region_filter(region_label_filter("region"))
        .deployment("m", Deployment::new("us", us.clone(), "m"))
        .build()
        .unwrap();
    let err = router.chat(in_eu(hello("m"))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResidencyViolation);
    assert!(
        err.message().contains("router `llm`") && err.message().contains("residency"),
        "{err}"
    );
    assert_eq!(us.count(), 0);
    assert_eq!(
        router.route(&in_eu(hello("m"))).unwrap_err().kind(),
        ErrorKind::ResidencyViolation
    );
    // Without the label, the same request is served.
    assert!(router.chat(hello("m")).await.is_ok());
}

#[tokio::test]
async fn fallback_never_leaves_the_allowed_regions() {
    let eu = Scripted::in_region("eu-prov", "eu", |_, _| Reply::Fail(server_error("eu-prov")));
    let us = Scripted::in_region("us-prov", "us", |_, _| Reply::Text("us".into()));
    let router = Router::builder("llm")
        .retry(RetryPolicy::none())
        .region_filter(region_label_filter("region"))
        .deployment("primary", Deployment::new("eu", eu.clone(), "m"))
        .deployment("backup", Deployment::new("us", us.clone(), "m"))
        .fallbacks("primary", ["backup"])
        .build()
        .unwrap();
    let err = router.chat(in_eu(hello("primary"))).await.unwrap_err();
    assert_eq!(err.status(), Some(500), "the eu failure is reported: {err}");
    assert_eq!(
        (eu.count(), us.count()),
        (1, 0),
        "never a silent fallback to us"
    );
    // Unlabelled traffic may use the backup.
    assert_eq!(
        router.chat(hello("primary")).await.unwrap().meta.provider,
        "us-prov"
    );
}

#[tokio::test(start_paused = true)]
async fn the_filter_is_re_checked_before_every_retry() {
    // A policy that changes while the request is retrying (e.g. a residency rule reloaded):
    // it allows the first attempt only.
    let checks = Arc::new(AtomicUsize::new(0));
    let c = checks.clone();
    let filter: RegionFilter = Arc::new(move |_, _| c.fetch_add(1, Ordering::SeqCst) == 0);
    let flaky = Scripted::in_region("p", "eu", |_, _| Reply::Fail(server_error("p")));
    let router = Router::builder("llm")
        .retry(
            RetryPolicy::retries(3).backoff(Duration::from_millis(10), Duration::from_millis(10)),
        )
        .region_filter(filter)
        .deployment("m", Deployment::new("d", flaky.clone(), "m"))
        .build()
        .unwrap();
    let err = router.chat(hello("m")).await.unwrap_err();
    assert_eq!(
        flaky.count(),
        1,
        "the retry was refused by the re-checked filter"
    );
    assert!(checks.load(Ordering::SeqCst) >= 2);
    assert_eq!(err.status(), Some(500), "{err}");
}

#[tokio::test]
async fn region_label_from_config_accepts_a_list_and_uses_deployment_region_tags() {
    let eu = Scripted::ok("eu-prov");
    let us = Scripted::ok("us-prov");
    let cfg: RouterConfig = serde_json::from_value(serde_json::json!({
        "strategy": "ordered",
        "region_label": "region",
        "models": [{ "name": "m", "deployments": [
            { "provider": "us", "region": "us-east-1" },
            { "provider": "eu", "region": "eu-west-1" } ] }]
    }))
    .unwrap();
    let (eu2, us2) = (eu.clone(), us.clone());
    let router = Router::from_config("llm", cfg, move |id| match id {
        "eu" => Some(eu2.clone() as Arc<dyn Provider>),
        "us" => Some(us2.clone() as Arc<dyn Provider>),
        _ => None,
    })
    .unwrap();
    let mut req = hello("m");
    req.ctx = RequestContext::default().with_label("region", "eu-central-1, eu-west-1");
    assert_eq!(router.chat(req).await.unwrap().meta.provider, "eu-prov");
    assert_eq!(us.count(), 0);
}
