//! Hot swap: reloading under concurrent load loses no request; in-flight requests finish on
//! the provider they started on.
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use aegis_contracts::{ChatBody, Provider};
use aegis_providers::{
    Echo, Reloadable,
    routing::{Deployment, Router},
};
use common::*;
use futures_util::StreamExt;

fn router(generation: usize) -> Arc<dyn Provider> {
    let p = Scripted::new(&format!("gen-{generation}"), |_, _| {
        Reply::After(Duration::from_millis(1), Box::new(Reply::Text("ok".into())))
    });
    Arc::new(
        Router::builder(format!("router-{generation}"))
            .deployment("m", Deployment::new("d", p, "m"))
            .build()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloading_under_concurrent_load_loses_no_request() {
    let llm = Arc::new(Reloadable::new("llm", router(0)));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let llm = llm.clone();
        tasks.push(tokio::spawn(async move {
            let mut served = Vec::new();
            for _ in 0..100 {
                let resp = llm.chat(hello("m")).await.unwrap();
                served.push(resp.meta.provider.clone());
                let c = resp.collect().await.unwrap();
                assert_eq!(c.message().unwrap().text(), "ok");
            }
            served
        }));
    }
    let reloader = {
        let llm = llm.clone();
        tokio::spawn(async move {
            for g in 1..=50 {
                llm.reload(router(g));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut total = 0;
    let mut generations = std::collections::BTreeSet::new();
    for t in tasks {
        let served = t.await.unwrap();
        total += served.len();
        generations.extend(served);
    }
    reloader.await.unwrap();
    assert_eq!(total, 800, "every request answered");
    assert!(
        generations.len() > 2,
        "requests spread over several generations: {generations:?}"
    );
}

#[tokio::test]
async fn a_stream_in_flight_finishes_on_the_old_provider_after_a_reload() {
    let old = Scripted::new("old", |_, _| {
        Reply::Stream(
            vec![Ok("a".into()), Ok("b".into()), Ok("c".into())],
            Duration::from_millis(20),
        )
    });
    let llm = Reloadable::new("llm", old.clone());
    let resp = llm.chat(hello("m").with_stream(true)).await.unwrap();
    let ChatBody::Stream(mut s) = resp.body else {
        panic!("expected a stream")
    };
    let first = s.next().await.unwrap().unwrap();
    let previous = llm.reload(Arc::new(Echo::new("new")));
    assert_eq!(previous.name(), "old");
    let mut text = first.choices[0].delta.content.clone().unwrap();
    while let Some(c) = s.next().await {
        text.push_str(c.unwrap().choices[0].delta.content.as_deref().unwrap());
    }
    assert_eq!(text, "abc");
    assert_eq!(llm.chat(hello("m")).await.unwrap().meta.provider, "new");
    assert_eq!(old.count(), 1);
}
