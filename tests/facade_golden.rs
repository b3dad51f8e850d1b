//! The golden suite (`tests/golden/suite.json`) on the Rust surface. The Python and Node
//! bindings run the same file, so the three surfaces cannot drift: each case is a config, a
//! chat request and/or a text to scan, and the fields that must come out.

use aegis::{ChatRequest, PipelineOutcome, Stage};
use serde_json::{Value, json};

fn suite() -> Vec<Value> {
    let text = include_str!("golden/suite.json");
    let suite: Value = serde_json::from_str(text).expect("the golden suite is JSON");
    assert_eq!(suite["version"], 1);
    suite["cases"].as_array().expect("cases").clone()
}

/// What a chat produced, in the suite's terms.
async fn chat(pipeline: &aegis::Pipeline, request: &Value) -> Value {
    let req: ChatRequest = match serde_json::from_value(request.clone()) {
        Ok(r) => r,
        Err(_) => return json!({ "error": "invalid_request" }),
    };
    match pipeline.run(req).await {
        Err(e) => json!({ "error": e.kind() }),
        Ok(PipelineOutcome::Paused { .. }) => json!({ "status": "paused" }),
        Ok(PipelineOutcome::Response(resp)) => match resp.collect().await {
            Err(e) => json!({ "error": e.kind() }),
            Ok(c) => json!({ "content": c.message().map(|m| m.text()).unwrap_or_default() }),
        },
    }
}

#[tokio::test]
async fn every_golden_case_holds_on_the_rust_surface() {
    let cases = suite();
    assert!(
        cases.len() >= 10,
        "the suite covers the surfaces' shared behaviour"
    );
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let config = case["config"].as_str().expect("config");
        let pipeline = aegis::pipeline_from_toml(config)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(request) = case.get("chat") {
            assert_eq!(
                chat(&pipeline, request).await,
                case["expect_chat"],
                "{name}"
            );
        }
        if let Some(scan) = case.get("scan") {
            let stage: Stage = serde_json::from_value(scan["stage"].clone()).expect("stage");
            let text = scan["text"].as_str().expect("text").to_owned();
            let report = aegis::guard::scan(pipeline.chain(), stage, text)
                .await
                .expect("scan");
            let got = json!({
                "verdict": report.verdict,
                "sanitized": report.sanitized,
                "kinds": report.findings.iter().map(|f| f.kind.clone()).collect::<Vec<_>>(),
            });
            assert_eq!(got, case["expect_scan"], "{name}");
        }
    }
}
