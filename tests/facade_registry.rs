//! The facade's registry knows every plugin of the enabled features, and a pipeline built
//! from TOML alone governs a call end to end.

use aegis::{ChatRequest, ErrorKind, Message, config::AegisConfig};

#[tokio::test]
async fn the_default_registry_registers_providers_and_guard_packs() {
    let names = aegis::registry().type_names();
    assert_eq!(
        names["providers"],
        [
            "anthropic",
            "azure_openai",
            "bedrock",
            "echo",
            "gemini",
            "http",
            "openai",
            "router"
        ]
    );
    for g in [
        "ban_substrings",
        "regex",
        "secrets",
        "invisible_text",
        "json_output",
        "url_allow_list",
        "prompt_injection",
    ] {
        assert!(
            names["guardrails"].iter().any(|n| n == g),
            "missing guard type {g}"
        );
    }
    assert_eq!(names["retrievers"], ["memory", "pgvector", "sqlite"]);
    assert!(names["policies"].iter().any(|n| n == "retrieval"));
    let schema = aegis::registry().config_schema();
    let guard_types = schema
        .pointer("/properties/guardrails/items/oneOf")
        .unwrap()
        .as_array()
        .unwrap();
    assert!(
        guard_types
            .iter()
            .any(|t| t.pointer("/properties/type/const") == Some(&"secrets".into()))
    );
}

#[tokio::test]
async fn a_pipeline_from_toml_redacts_blocks_and_reports_config_paths() {
    let toml = r#"
        [[providers]]
        id = "local"
        type = "echo"

        [[guardrails]]
        id = "secrets"
        type = "secrets"
        config = { action = "redact" }

        [[guardrails]]
        id = "words"
        type = "ban_substrings"
        config = { substrings = ["project nightingale"] }
    "#;
    let pipeline = aegis::pipeline_from_toml(toml).await.unwrap();
    let answer = pipeline
        .chat(ChatRequest::new(
            "echo-1",
            vec![Message::user(
                "key ghp_0123456789abcdefghijklmnopqrstuvwxyz ok",
            )],
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = answer.message().unwrap().text().into_owned();
    assert!(!text.contains("ghp_"), "{text}");
    assert!(text.contains("[REDACTED:"), "{text}");

    let err = pipeline
        .chat(ChatRequest::new(
            "echo-1",
            vec![Message::user("status of Project Nightingale?")],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyBlocked);

    let bad = AegisConfig::from_toml_str(
        "[[guardrails]]\nid = \"s\"\ntype = \"secrets\"\nconfig = { entropy_threshold = \"high\" }\n",
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let err = aegis::Pipeline::from_config(&aegis::registry(), &bad)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message()
            .starts_with("guardrails[0].config.entropy_threshold: "),
        "{err}"
    );
    assert!(err.message().contains("expected a number"), "{err}");
}

#[tokio::test]
async fn pseudonymized_prompts_come_back_restored_and_the_vault_is_dropped() {
    use std::sync::Arc;

    use aegis::{GuardPolicy, Provider, guard::GuardEntry, pii};

    let cfg = pii::PiiGuardConfig {
        default_operator: pii::Operator::Pseudonymize,
        ..pii::PiiGuardConfig::default()
    };
    let guard = Arc::new(pii::PiiGuard::new(cfg).unwrap());
    let echo = Arc::new(aegis::providers::Echo::new("echo"));
    let pipeline = aegis::Pipeline::builder()
        .provider("echo", echo.clone() as Arc<dyn Provider>)
        .guard(GuardEntry::new(
            "pii",
            guard.clone(),
            GuardPolicy::default(),
        ))
        .build()
        .unwrap();
    let prompt = "write to ann@example.org and call +44 20 7946 0958";
    for stream in [false, true] {
        let req = ChatRequest::new("echo-1", vec![Message::user(prompt)]).with_stream(stream);
        let resp = pipeline.chat(req).await.unwrap();
        let text = resp
            .collect()
            .await
            .unwrap()
            .message()
            .unwrap()
            .text()
            .into_owned();
        assert_eq!(
            text,
            format!("echo: {prompt}"),
            "stream={stream}: the caller sees the originals"
        );
        assert_eq!(
            guard.vault_count(),
            0,
            "stream={stream}: the run's vault is gone once it ends"
        );
    }
    // What the provider saw: tokens, not the email address.
    let direct = aegis::guard::GuardChain::new(vec![GuardEntry::new(
        "pii",
        guard.clone(),
        GuardPolicy::default(),
    )]);
    let mut req = ChatRequest::new("m", vec![Message::user(prompt)]);
    let ctx = aegis::RequestContext::default().with_run_id("r-1");
    direct.judge_request(&mut req, &ctx, None).await;
    assert!(
        req.messages[0].text().contains("<EMAIL_ADDRESS_1>"),
        "{}",
        req.messages[0].text()
    );
    assert!(!req.messages[0].text().contains("ann@example.org"));
    direct.end_run("r-1");
    assert_eq!(guard.vault_count(), 0);
}

#[tokio::test]
async fn a_vault_is_dropped_however_the_run_ends() {
    use std::sync::Arc;

    use aegis::{GuardPolicy, Provider, Stage, guard::GuardEntry, guards, pii};
    use futures_util::StreamExt;

    let cfg = pii::PiiGuardConfig {
        default_operator: pii::Operator::Pseudonymize,
        ..pii::PiiGuardConfig::default()
    };
    let guard = Arc::new(pii::PiiGuard::new(cfg).unwrap());
    let ban: guards::BanSubstringsConfig = serde_json::from_value(serde_json::json!({
        "substrings": ["forbidden"],
        "stages": [Stage::Output],
    }))
    .unwrap();
    let ban = guards::BanSubstrings::new(ban).unwrap();
    let pipeline = aegis::Pipeline::builder()
        .provider(
            "echo",
            Arc::new(aegis::providers::Echo::new("echo")) as Arc<dyn Provider>,
        )
        .guard(GuardEntry::new(
            "pii",
            guard.clone(),
            GuardPolicy::default(),
        ))
        .guard(GuardEntry::new(
            "ban",
            Arc::new(ban),
            GuardPolicy::default(),
        ))
        .build()
        .unwrap();
    let gone = || async {
        for _ in 0..200 {
            if guard.vault_count() == 0 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    };

    // Embeddings.
    let req = aegis::EmbeddingRequest::new("echo-1", vec!["ann@example.org".into()]);
    pipeline.embed(req).await.unwrap();
    assert!(gone().await, "an embedding run keeps its vault");

    // An answer an output guard blocks, streamed and not.
    for stream in [false, true] {
        let prompt = "ann@example.org: say forbidden";
        let req = ChatRequest::new("echo-1", vec![Message::user(prompt)]).with_stream(stream);
        let outcome = match pipeline.chat(req).await {
            Ok(resp) => resp.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(outcome.is_err(), "stream={stream}: the answer is blocked");
        assert!(
            gone().await,
            "stream={stream}: a blocked run keeps its vault"
        );
    }

    // A caller that goes away in the middle of a stream.
    let long = format!("ann@example.org {}", "word ".repeat(2000));
    let req = ChatRequest::new("echo-1", vec![Message::user(long)]).with_stream(true);
    let resp = pipeline.chat(req).await.unwrap();
    let aegis::ChatBody::Stream(mut stream) = resp.body else {
        panic!("a streamed request gets a stream");
    };
    assert!(stream.next().await.is_some());
    drop(stream);
    assert!(gone().await, "a disconnected run keeps its vault");
}

#[tokio::test]
async fn a_router_from_config_composes_the_providers_defined_before_it() {
    let toml = r#"
        [[providers]]
        id = "eu"
        type = "echo"
        config = { region = "eu" }

        [[providers]]
        id = "us"
        type = "echo"
        config = { region = "us" }

        [[providers]]
        id = "smart"
        type = "router"
        [providers.config]
        strategy = "ordered"
        region_label = "region"
        [[providers.config.models]]
        name = "chat"
        deployments = [
            { provider = "us", model = "echo-us", region = "us" },
            { provider = "eu", model = "echo-eu", region = "eu" },
        ]

        [routing]
        default_provider = "smart"
    "#;
    let pipeline = aegis::pipeline_from_toml(toml).await.unwrap();
    let ask = |region: &str| {
        let mut req = ChatRequest::new("chat", vec![Message::user("hi")]);
        req.ctx = aegis::RequestContext::default().with_label("region", region);
        req
    };
    let answer = pipeline.chat(ask("eu")).await.unwrap();
    assert_eq!(
        answer.collect().await.unwrap().model,
        "echo-eu",
        "residency picks the EU deployment"
    );
    let err = pipeline.chat(ask("apac")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResidencyViolation);

    let bad = r#"
        [[providers]]
        id = "smart"
        type = "router"
        [[providers.config.models]]
        name = "chat"
        deployments = [{ provider = "later", model = "m" }]
    "#;
    let err = aegis::pipeline_from_toml(bad).await.unwrap_err();
    assert!(err.message().starts_with("providers[0].config: "), "{err}");
    assert!(err.message().contains("later"), "{err}");
}
