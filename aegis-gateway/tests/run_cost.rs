//! Every ended run carries its usage and what it cost at the pipeline's `[pricing]`: on its
//! run row (listable, summable), in its final state, and in its audit record — streamed
//! runs included, whose usage arrives with the last chunk.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use aegis::{PipelineSet, config::AegisConfig};
use aegis_gateway::server::Limits;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[pricing]
prices = { "echo-priced" = { input_per_mtok = 1000.0, output_per_mtok = 3000.0 } }

[[providers]]
id = "echo"
type = "echo"
"#;

async fn gateway(extra: &str) -> (std::net::SocketAddr, aegis_store::Store) {
    let store = aegis_store::Store::connect("sqlite::memory:")
        .await
        .unwrap();
    let (audit, _writer) = aegis_store::AuditWriter::spawn(store.clone());
    let gateway = common::gateway_on(
        &store,
        &format!("{CONFIG}\n{extra}"),
        Limits::default(),
        vec![Arc::new(audit)],
    )
    .await;
    let addr = common::serve(gateway).await;
    (addr, store)
}

async fn chat(addr: std::net::SocketAddr, body: Value) -> (String, String) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let run_id = resp.headers()["x-aegis-run-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (run_id, resp.text().await.unwrap())
}

/// The run's row once its end is recorded, and its `event.audit` record's data.
async fn ended(store: &aegis_store::Store, run_id: &str) -> (aegis_store::RunRecord, Value) {
    for _ in 0..200 {
        let row = store.run(run_id).await.unwrap();
        let audit = store
            .audit_records(Some(run_id), 0, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.kind == "event.audit");
        if let (Some(row), Some(audit)) = (row, audit)
            && row.status.is_terminal()
        {
            return (row, audit.data);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {run_id} did not end with an audit record");
}

#[tokio::test]
async fn a_completed_run_records_its_usage_and_cost_on_its_row_and_audit_record() {
    let (addr, store) = gateway("").await;
    // Echo counts words: three in, three out (it echoes the prompt).
    let (run_id, _) = chat(
        addr,
        json!({"model": "echo/echo-priced", "messages": [{"role": "user", "content": "one two three"}]}),
    )
    .await;
    let (row, audit) = ended(&store, &run_id).await;
    assert_eq!(row.input_tokens, Some(3));
    let output = row.output_tokens.unwrap();
    // $1000 per million input tokens = 1000 micro-dollars per token; $3000 for output.
    let expected = 3 * 1000 + output * 3000;
    assert_eq!(row.cost_usd_micros, Some(expected), "{row:?}");
    assert_eq!(audit["cost_usd_micros"], json!(expected), "{audit}");
    assert_eq!(audit["usage"]["input_tokens"], json!(3), "{audit}");
}

#[tokio::test]
async fn a_streamed_run_is_priced_with_the_usage_of_its_last_chunk() {
    let (addr, store) = gateway("").await;
    let (run_id, body) = chat(
        addr,
        json!({"model": "echo/echo-priced", "stream": true,
               "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "alpha beta"}]}),
    )
    .await;
    assert!(body.contains("[DONE]"), "{body}");
    let (row, audit) = ended(&store, &run_id).await;
    let (input, output) = (row.input_tokens.unwrap(), row.output_tokens.unwrap());
    assert_eq!(input, 2, "{row:?}");
    assert_eq!(row.cost_usd_micros, Some(input * 1000 + output * 3000));
    assert_eq!(
        audit["cost_usd_micros"],
        json!(input * 1000 + output * 3000)
    );
}

#[tokio::test]
async fn a_model_without_a_price_records_usage_but_no_cost_never_zero() {
    let (addr, store) = gateway("").await;
    let (run_id, _) = chat(
        addr,
        json!({"model": "echo/unpriced-model", "messages": [{"role": "user", "content": "a b"}]}),
    )
    .await;
    let (row, audit) = ended(&store, &run_id).await;
    assert_eq!(row.input_tokens, Some(2));
    assert_eq!(row.cost_usd_micros, None, "unknown, not free: {row:?}");
    assert!(audit.get("cost_usd_micros").is_none(), "{audit}");
}

#[tokio::test]
async fn an_invalid_price_is_a_config_error_naming_its_path() {
    let cfg = AegisConfig::from_toml_str(
        "[pricing]\nprices = { m = { input_per_mtok = -1.0, output_per_mtok = 1.0 } }\n[[providers]]\nid = \"echo\"\ntype = \"echo\"",
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let registry = aegis_gateway::bootstrap::registry_for(None).await.unwrap();
    let err = PipelineSet::from_config_with(&registry, &cfg, None, Vec::new())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.message().contains("pricing.prices.m.input_per_mtok"),
        "{err}"
    );
}
