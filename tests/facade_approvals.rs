//! An approval is bound to the interrupt it answers: approving one guard's request waives
//! no other guard's. Two input guards both ask for approval on one prompt; the first
//! approval lets the first through and the run pauses again for the second.
#![allow(clippy::unwrap_used)]

use aegis::{Approval, ChatRequest, Message, Pipeline, PipelineOutcome, config::AegisConfig};

async fn pipeline() -> Pipeline {
    let cfg = AegisConfig::from_toml_str(
        r#"
[[providers]]
id = "echo"
type = "echo"

[[guardrails]]
id = "wires"
type = "ban_substrings"
stages = ["input"]
config = { substrings = ["wire"], action = "require_approval" }

[[guardrails]]
id = "money"
type = "ban_substrings"
stages = ["input"]
config = { substrings = ["money"], action = "require_approval" }
"#,
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    Pipeline::from_config(&aegis::registry(), &cfg)
        .await
        .unwrap()
}

fn paused_by(outcome: &PipelineOutcome) -> (String, String) {
    match outcome {
        PipelineOutcome::Paused { run_id, interrupt } => (
            run_id.clone(),
            interrupt.request.payload["guard"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
        PipelineOutcome::Response(_) => panic!("the run was not paused"),
    }
}

#[tokio::test]
async fn approving_one_guards_request_waives_no_other_guards() {
    let p = pipeline().await;
    let req = ChatRequest::new("echo", vec![Message::user("wire the money today")]);
    let first = p.run(req).await.unwrap();
    let (run_id, guard) = paused_by(&first);
    assert_eq!(guard, "wires");

    let second = p.resume(&run_id, Approval::Approve).await.unwrap();
    let (again, guard) = paused_by(&second);
    assert_eq!(again, run_id, "the same run pauses again");
    assert_eq!(guard, "money", "the second guard asks for itself");

    let done = p.resume(&run_id, Approval::Approve).await.unwrap();
    let PipelineOutcome::Response(resp) = done else {
        panic!("two approvals, two guards: the run completes");
    };
    let c = resp.collect().await.unwrap();
    assert_eq!(c.message().unwrap().text(), "echo: wire the money today");
}
