//! Public futures and services are `Send + 'static`, so hosts can spawn them.
#![allow(clippy::unwrap_used, dead_code)]

use aegis_contracts::*;
use aegis_core::{Pipeline, guard::Guard, layer::Upstream};

fn is_send_static<T: Send + 'static>(_: &T) {}
fn is_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn public_types_are_send_and_sync() {
    is_send_sync::<Pipeline>();
    is_send_sync::<aegis_core::Registry>();
    is_send_sync::<aegis_core::guard::GuardChain>();
    is_send_sync::<Guard<Upstream>>();
    is_send_sync::<Error>();
    is_send_sync::<Secret>();
}

#[test]
fn pipeline_futures_are_send() {
    let p = Pipeline::builder().build().unwrap();
    let fut = {
        let p = p.clone();
        async move { p.chat(ChatRequest::default()).await }
    };
    is_send_static(&fut);
    let fut = {
        let p = p.clone();
        async move { p.resume("r", Approval::Approve).await }
    };
    is_send_static(&fut);
    let svc = tower::ServiceExt::<ChatRequest>::oneshot(p, ChatRequest::default());
    is_send_static(&svc);
}
