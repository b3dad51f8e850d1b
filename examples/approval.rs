//! A custom graph with a conditional edge and a human-approval interrupt.
//!
//! Refund requests under $100 are paid automatically; larger ones pause for a human, who
//! approves (or edits the amount) and the run resumes where it stopped, from the checkpoint,
//! even in another process sharing the store.
//!
//! Run: `cargo run --example approval`

use std::sync::Arc;

use aegis::graph::{END, Graph, MemoryCheckpointStore, START, node_fn};
use aegis::{
    Approval, CheckpointStore, Error, InterruptRequest, NodeInput, NodeOutput, RunStatus, State,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The run's state: a refund request and what happened to it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Refund {
    customer: String,
    amount: u32,
    paid: Option<u32>,
}

/// What nodes return.
enum RefundUpdate {
    Assessed(u32),
    Paid(u32),
}

impl State for Refund {
    type Update = RefundUpdate;

    fn apply(&mut self, update: RefundUpdate) {
        match update {
            RefundUpdate::Assessed(amount) => self.amount = amount,
            RefundUpdate::Paid(amount) => self.paid = Some(amount),
        }
    }
}

fn refund_graph(store: Arc<dyn CheckpointStore>) -> Result<Graph<Refund>, Error> {
    Graph::<Refund>::builder("refunds")
        .node(
            "assess",
            node_fn(|input: NodeInput<Refund>| async move { Ok(NodeOutput::Update(RefundUpdate::Assessed(input.state.amount))) }),
        )
        .node(
            "approve_large",
            node_fn(|input: NodeInput<Refund>| async move {
                match input.ctx.resume {
                    // First visit: ask a human. The edit schema says what an edit must look like.
                    None => Ok(NodeOutput::Interrupt(
                        InterruptRequest::new(
                            format!("refund of ${} to {} needs approval", input.state.amount, input.state.customer),
                            json!({ "customer": input.state.customer, "amount": input.state.amount }),
                        )
                        .with_edit_schema(json!({
                            "type": "object",
                            "required": ["amount"],
                            "properties": { "amount": { "type": "integer" } }
                        })),
                    )),
                    Some(Approval::Edit { value }) => {
                        let amount = value["amount"].as_u64().unwrap_or_default() as u32;
                        Ok(NodeOutput::Update(RefundUpdate::Assessed(amount)))
                    }
                    Some(_) => Ok(NodeOutput::Update(RefundUpdate::Assessed(input.state.amount))),
                }
            }),
        )
        .node(
            "pay",
            node_fn(|input: NodeInput<Refund>| async move { Ok(NodeOutput::Update(RefundUpdate::Paid(input.state.amount))) }),
        )
        .edge(START, "assess")
        // The compliance rule is an auditable edge, not an `if` buried in a handler.
        .branch("assess", |s: &Refund| if s.amount >= 100 { "approve_large" } else { "pay" }, ["approve_large", "pay"])
        .edge("approve_large", "pay")
        .edge("pay", END)
        .checkpointer(store)
        .compile()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let graph = refund_graph(store.clone())?;
    println!("{}", graph.to_mermaid());

    let small = graph
        .invoke(Refund {
            customer: "ada".into(),
            amount: 40,
            paid: None,
        })
        .await?;
    println!("ada: {:?}, paid {:?}", small.status, small.state.paid);

    let large = graph
        .invoke(Refund {
            customer: "grace".into(),
            amount: 900,
            paid: None,
        })
        .await?;
    let interrupt = large.interrupt.clone().expect("a large refund pauses");
    println!("grace: {:?} — {}", large.status, interrupt.request.reason);

    // A reviewer, perhaps in another process with a graph built from scratch on the same
    // store, lowers the amount. The paused node re-runs with the decision.
    let reviewer_graph = refund_graph(store)?;
    let done = reviewer_graph
        .resume(
            &large.run_id,
            Approval::Edit {
                value: json!({ "amount": 450 }),
            },
        )
        .await?;
    assert_eq!(done.status, RunStatus::Completed);
    println!("grace: {:?}, paid {:?}", done.status, done.state.paid);
    Ok(())
}
