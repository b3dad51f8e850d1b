//! A keyed audit chain (HMAC-SHA256 under a key from `secret://`): someone who can write the
//! rows — and recompute plain SHA-256 hashes, or hashes under a guessed key — cannot forge a
//! chain that verifies; an unkeyed prefix from before the key is sealed by the first keyed
//! record; a keyed log checked without the key says so; the exported head is signed.
//! SQLite (a file, so several stores can share it) and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::Secret;
use aegis_store::{AuditEntry, AuditProblem, Store, StoreOptions};
use common::{TestDb, shared_backends};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use sha2::{Digest, Sha256};

async fn keyed(db: &TestDb, key: &str) -> Store {
    keyed_since(db, key, 1).await
}

/// A keyed store on a log whose records below `seq` predate the key.
async fn keyed_since(db: &TestDb, key: &str, seq: u64) -> Store {
    let mut o = StoreOptions::new(db.url.clone())
        .audit_key(Secret::new(key))
        .audit_unkeyed_before(seq);
    if let Some(s) = &db.schema {
        o = o.schema(s.clone());
    }
    Store::connect_with(o).await.unwrap()
}

async fn fill(store: &Store, from: usize, n: usize) {
    for i in from..from + n {
        store
            .append_audit(AuditEntry::new("test.entry", json!({"i": i})).run("r"))
            .await
            .unwrap();
    }
}

/// The attack: change record `seq`'s data and recompute every hash from there on with plain
/// SHA-256 in the documented canonical form, moving the head along — all without the key.
async fn forge_from(store: &Store, seq: i64) {
    let c = store.connection();
    let backend = c.get_database_backend();
    c.execute_unprepared(&format!(
        r#"UPDATE aegis_audit_log SET data = '{{"i":999}}' WHERE seq = {seq}"#
    ))
    .await
    .unwrap();
    let rows = c
        .query_all_raw(Statement::from_string(
            backend,
            format!("SELECT seq, at_ms, kind, run_id, actor, data, prev_hash FROM aegis_audit_log WHERE seq >= {} ORDER BY seq", seq),
        ))
        .await
        .unwrap();
    let mut prev: Option<String> = None;
    for r in rows {
        let s: i64 = r.try_get("", "seq").unwrap();
        let at: i64 = r.try_get("", "at_ms").unwrap();
        let kind: String = r.try_get("", "kind").unwrap();
        let run: Option<String> = r.try_get("", "run_id").unwrap();
        let actor: Option<String> = r.try_get("", "actor").unwrap();
        let data: String = r.try_get("", "data").unwrap();
        let prev_hash = prev
            .clone()
            .unwrap_or_else(|| r.try_get("", "prev_hash").unwrap());
        let q = |v: Option<&str>| {
            v.map_or("null".to_owned(), |v| {
                serde_json::Value::from(v).to_string()
            })
        };
        let text = format!(
            "{{\"actor\":{},\"at_ms\":{at},\"data\":{data},\"kind\":{},\"prev_hash\":{},\"run_id\":{},\"seq\":{s}}}",
            q(actor.as_deref()),
            q(Some(&kind)),
            q(Some(&prev_hash)),
            q(run.as_deref()),
        );
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        c.execute_unprepared(&format!(
            "UPDATE aegis_audit_log SET prev_hash = '{prev_hash}', hash = '{hash}' WHERE seq = {s}"
        ))
        .await
        .unwrap();
        c.execute_unprepared(&format!("UPDATE aegis_audit_head SET hash = '{hash}'"))
            .await
            .unwrap();
        prev = Some(hash);
    }
}

#[tokio::test]
async fn a_chain_forged_without_the_key_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    for db in shared_backends(dir.path()).await {
        let store = keyed(&db, "the-audit-key").await;
        fill(&store, 0, 6).await;
        let report = store.verify_audit().await.unwrap();
        assert!(report.is_valid(), "{}: {report:?}", db.name);
        assert_eq!((report.keyed, report.unkeyed), (6, 0), "{}", db.name);
        let records = store.audit_records(None, 0, 10).await.unwrap();
        assert!(records.iter().all(|r| r.hash.starts_with("hmac-sha256:")));

        forge_from(&store, 3).await;
        let report = store.verify_audit().await.unwrap();
        assert!(
            report.problems.contains(&AuditProblem::Unkeyed { seq: 3 }),
            "{}: {report:?}",
            db.name
        );
        // Rewriting the whole log as a plain chain does not pass as an old unkeyed log.
        forge_from(&store, 1).await;
        let report = store.verify_audit().await.unwrap();
        assert!(
            report.problems.contains(&AuditProblem::Unkeyed { seq: 1 }),
            "{}: {report:?}",
            db.name
        );
        // The same forgery would pass an unkeyed chain: that is what the key is for.
        let wrong = keyed(&db, "a-guessed-key").await;
        assert!(
            !wrong.verify_audit().await.unwrap().is_valid(),
            "{}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn an_unkeyed_prefix_is_sealed_by_the_first_keyed_record() {
    let dir = tempfile::tempdir().unwrap();
    for db in shared_backends(dir.path()).await {
        fill(&db.store, 0, 3).await;
        // The key is adopted at seq 4.
        let store = keyed_since(&db, "adopted-later", 4).await;
        fill(&store, 3, 3).await;
        let report = store.verify_audit().await.unwrap();
        assert!(report.is_valid(), "{}: {report:?}", db.name);
        assert_eq!((report.keyed, report.unkeyed), (3, 3), "{}", db.name);
        let strict = keyed(&db, "adopted-later").await;
        assert!(
            strict
                .verify_audit()
                .await
                .unwrap()
                .problems
                .contains(&AuditProblem::Unkeyed { seq: 1 }),
            "{}: a prefix nobody declared is not accepted",
            db.name
        );

        // Rewriting the unkeyed prefix breaks the first keyed record's link.
        let c = store.connection();
        c.execute_unprepared(r#"UPDATE aegis_audit_log SET data = '{"i":999}' WHERE seq = 2"#)
            .await
            .unwrap();
        let report = store.verify_audit().await.unwrap();
        assert!(!report.is_valid(), "{}: {report:?}", db.name);

        // Without the key, a keyed log cannot be vouched for.
        let report = db.store.verify_audit().await.unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| matches!(p, AuditProblem::KeyRequired { .. })),
            "{}: {report:?}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn the_exported_head_is_signed_and_a_tampered_copy_is_not_genuine() {
    let dir = tempfile::tempdir().unwrap();
    for db in shared_backends(dir.path()).await {
        let store = keyed(&db, "head-key").await;
        fill(&store, 0, 2).await;
        let head = store.audit_head().await.unwrap();
        assert_eq!(head.seq, 2);
        assert_eq!(head.hash, store.verify_audit().await.unwrap().head_hash);
        assert!(store.audit_head_is_genuine(&head), "{}", db.name);
        let mut moved = head.clone();
        moved.seq = 1;
        assert!(!store.audit_head_is_genuine(&moved));
        assert!(!keyed(&db, "other").await.audit_head_is_genuine(&head));
        assert_eq!(
            db.store.audit_head().await.unwrap().signature,
            None,
            "no key, no signature"
        );
        db.finish().await;
    }
}
