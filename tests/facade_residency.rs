//! Residency is fail-closed routing, proven by fault injection: an "eu" upstream on
//! 127.0.0.2 and a "us" upstream on 127.0.0.3, both failing at random (5xx, timeouts,
//! mid-stream cuts), behind a router whose preferred deployment and fallback are in the us.
//! Not one request of an eu-bound principal reaches the us address — primary, retry and
//! fallback alike — counted at the upstreams.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use aegis::{ChatRequest, ErrorKind, Message, Principal, RequestContext};
use axum::{
    body::{Body, Bytes},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};

/// An OpenAI-compatible upstream that fails at random (a fixed-seed generator, so runs
/// repeat): 20 % 500, 10 % a hang past the attempt timeout, 20 % of streams cut after their
/// first chunk; otherwise a good answer.
async fn flaky(ip: [u8; 4], seed: u64) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let state = Arc::new(AtomicU64::new(seed));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |body: Bytes| {
            let (h, state) = (h.clone(), state.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                // xorshift: a deterministic draw per request.
                let mut x = state.load(Ordering::SeqCst);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                state.store(x, Ordering::SeqCst);
                let draw = x % 100;
                let stream = std::str::from_utf8(&body).unwrap_or("").contains("\"stream\":true");
                if draw < 20 {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":{\"message\":\"boom\"}}")
                        .into_response();
                }
                if draw < 30 {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                if stream {
                    let first = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hi\"}}]}\n\n";
                    let cut = draw < 50;
                    let chunks: Vec<Result<Bytes, std::io::Error>> = if cut {
                        vec![Ok(Bytes::from(first)), Err(std::io::Error::other("cut"))]
                    } else {
                        vec![
                            Ok(Bytes::from(first)),
                            Ok(Bytes::from("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")),
                        ]
                    };
                    return Response::builder()
                        .header(header::CONTENT_TYPE, "text/event-stream")
                        .body(Body::from_stream(futures_util::stream::iter(chunks)))
                        .unwrap();
                }
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"id\":\"c\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"finish_reason\":\"stop\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}}]}",
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

fn config(eu: SocketAddr, us: SocketAddr) -> String {
    format!(
        r#"
        [[providers]]
        id = "eu"
        type = "openai"
        config = {{ base_url = "http://{eu}/v1", region = "eu" }}

        [[providers]]
        id = "us"
        type = "openai"
        config = {{ base_url = "http://{us}/v1", region = "us" }}

        [[providers]]
        id = "llm"
        type = "router"
        [providers.config]
        strategy = "ordered"
        retry = {{ max_retries = 3, initial_backoff_ms = 1, max_backoff_ms = 5 }}
        timeouts = {{ attempt_ms = 300 }}
        circuit_breaker = {{ failure_threshold = 1000, cooldown_ms = 10 }}
        [[providers.config.models]]
        name = "chat"
        fallbacks = ["backup"]
        deployments = [
            {{ id = "chat-us", provider = "us", model = "m" }},
            {{ id = "chat-eu", provider = "eu", model = "m" }},
        ]
        [[providers.config.models]]
        name = "backup"
        deployments = [{{ id = "backup-us", provider = "us", model = "m" }}]

        [routing]
        default_provider = "llm"
        aliases = {{ fast = "chat", cheap = "backup" }}

        [[policies]]
        id = "residency"
        type = "residency"
        config = {{ teams = {{ research = ["eu"] }} }}
        "#
    )
}

fn eu_bound(model: &str, stream: bool) -> ChatRequest {
    let mut req = ChatRequest::new(model, vec![Message::user("hello")]);
    req.stream = stream;
    req.ctx = RequestContext::default()
        .with_principal(Principal::new("ada").with_team("research"))
        // A caller-set label cannot widen the rule: the policy overwrites it.
        .with_label(aegis::RESIDENCY_LABEL, "us,eu");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eu_bound_principal_never_reaches_the_us_under_faults() {
    let (eu, eu_hits) = flaky([127, 0, 0, 2], 0x9E37_79B9_7F4A_7C15).await;
    let (us, us_hits) = flaky([127, 0, 0, 3], 0xD1B5_4A32_D192_ED03).await;
    let pipeline = aegis::pipeline_from_toml(&config(eu, us)).await.unwrap();
    let (mut ok, mut failed) = (0, 0);
    for i in 0..120 {
        let model = ["chat", "fast", "llm/chat"][i % 3];
        let result = match pipeline.chat(eu_bound(model, i % 2 == 0)).await {
            Ok(resp) => {
                let region = resp.meta.region.clone();
                resp.collect().await.map(|_| region)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(region) => {
                assert_eq!(region.as_deref(), Some("eu"), "answered from the eu");
                ok += 1;
            }
            Err(e) => {
                assert_ne!(e.kind(), ErrorKind::Internal, "{e}");
                failed += 1;
            }
        }
    }
    assert_eq!(
        us_hits.load(Ordering::SeqCst),
        0,
        "no attempt of an eu-bound request reached the us upstream"
    );
    assert!(eu_hits.load(Ordering::SeqCst) > 0);
    assert!(
        ok > 30,
        "most requests succeed in the eu ({ok} ok, {failed} failed)"
    );
    assert!(
        failed > 0,
        "the faults were real ({ok} ok, {failed} failed)"
    );
}

#[tokio::test]
async fn a_route_with_no_compliant_deployment_is_refused_before_anything_is_sent() {
    let (eu, eu_hits) = flaky([127, 0, 0, 2], 7).await;
    let (us, us_hits) = flaky([127, 0, 0, 3], 11).await;
    let pipeline = aegis::pipeline_from_toml(&config(eu, us)).await.unwrap();
    // `backup` is served only in the us; `us/m` is a router member, not addressable.
    for model in ["backup", "cheap"] {
        let err = pipeline.chat(eu_bound(model, false)).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::ResidencyViolation, "residency_violation"),
            "{model}: {err}"
        );
    }
    let err = pipeline.chat(eu_bound("us/m", false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(us_hits.load(Ordering::SeqCst), 0);
    assert_eq!(eu_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unknown_region_in_the_policy_is_a_config_error_with_its_path() {
    let bad = config(
        "127.0.0.2:1".parse().unwrap(),
        "127.0.0.3:1".parse().unwrap(),
    )
    .replace(r#"research = ["eu"]"#, r#"research = ["eu", "mars"]"#);
    let err = aegis::pipeline_from_toml(&bad).await.unwrap_err();
    assert!(
        err.message()
            .contains("policies[0].config: teams.research[1]: unknown region `mars`"),
        "{err}"
    );
}
