//! Pseudonymize then de-anonymize gives the original; vaults never leak across runs.
#![allow(clippy::unwrap_used)]

use aegis_contracts::{Decision, GuardSubject, Guardrail, Message, RequestContext};
use aegis_pii::{Operator, PiiGuard, PiiGuardConfig, Vault};

fn ctx(run: &str) -> RequestContext {
    let mut c = RequestContext::default();
    c.run_id = Some(run.into());
    c
}

fn guard() -> PiiGuard {
    PiiGuard::new(PiiGuardConfig {
        default_operator: Operator::Pseudonymize,
        ..Default::default()
    })
    .unwrap()
}

async fn sanitize(g: &PiiGuard, text: &str, run: &str) -> String {
    let mut s = GuardSubject::Input {
        messages: vec![Message::user(text)],
    };
    let v = g.check(&s, &ctx(run)).await.unwrap();
    if let Decision::Sanitize { edits } = &v.decision {
        s.apply_edits(edits).unwrap();
    }
    s.segments()[0].text.to_owned()
}

#[tokio::test]
async fn anonymize_then_deanonymize_restores_original() {
    let g = guard();
    let text = "Email bob@example.com or alice@example.org; again bob@example.com, card 4111 1111 1111 1111.";
    let anon = sanitize(&g, text, "run-1").await;
    assert_eq!(
        anon,
        "Email <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>; again <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>."
    );
    let vault = g.vault("run-1").unwrap();
    assert_eq!(vault.lock().unwrap().deanonymize(&anon), text);
}

#[tokio::test]
async fn vaults_are_isolated_between_runs_and_removed() {
    let g = guard();
    let a = sanitize(&g, "mail x@example.com", "run-a").await;
    let b = sanitize(&g, "mail y@example.com", "run-b").await;
    assert_eq!(a, "mail <EMAIL_ADDRESS_1>");
    assert_eq!(b, "mail <EMAIL_ADDRESS_1>");
    let va = g.take_vault("run-a").unwrap();
    let vb = g.vault("run-b").unwrap();
    assert_eq!(va.deanonymize(&a), "mail x@example.com");
    assert_eq!(vb.lock().unwrap().deanonymize(&a), "mail y@example.com");
    assert!(
        g.vault("run-a").is_none(),
        "take_vault removes the run's vault"
    );
    assert_eq!(g.vault_count(), 1);
}

#[tokio::test]
async fn pseudonymize_without_run_id_fails_closed() {
    let g = guard();
    let s = GuardSubject::Input {
        messages: vec![Message::user("mail x@example.com")],
    };
    assert!(g.check(&s, &RequestContext::default()).await.is_err());
}

#[test]
fn unknown_tokens_are_left_alone() {
    let mut v = Vault::new();
    v.token_for("PERSON", "Ann");
    assert_eq!(
        v.deanonymize("<PERSON_2> <PERSON_1> <b>"),
        "<PERSON_2> Ann <b>"
    );
}

#[tokio::test]
async fn a_run_that_never_ends_loses_its_vault_after_the_ttl() {
    let g = PiiGuard::new(PiiGuardConfig {
        default_operator: Operator::Pseudonymize,
        vault_ttl_secs: 0,
        ..Default::default()
    })
    .unwrap();
    sanitize(&g, "mail a@example.com", "paused-forever").await;
    assert!(g.vault("paused-forever").is_some());
    // The next run to pseudonymize sweeps vaults older than the TTL.
    sanitize(&g, "mail b@example.com", "next").await;
    assert!(g.vault("paused-forever").is_none());
    assert_eq!(g.vault_count(), 1);
}

#[tokio::test]
async fn a_run_that_ends_drops_its_vault_at_once() {
    let g = guard();
    sanitize(&g, "mail a@example.com", "r").await;
    assert_eq!(g.vault_count(), 1);
    g.on_run_end("r");
    assert_eq!(g.vault_count(), 0);
}
