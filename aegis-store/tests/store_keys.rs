//! Virtual API keys: created once, stored as a hash, listed, revoked, expired, rotated, and
//! resolved by the `virtual_keys` authenticator.
#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, time::Duration};

use aegis_contracts::*;
use aegis_core::{Registry, config::AegisConfig};
use aegis_store::{KeyAuthenticator, NewKey, Store, VirtualKeysConfig, keys};
use common::backends;
use sea_orm::{ConnectionTrait, Statement};

fn alice() -> Principal {
    let mut p = Principal::new("alice")
        .with_team("payments")
        .with_role("approver");
    p.org = Some("acme".into());
    p.labels = BTreeMap::from([("data_class".to_owned(), "internal".to_owned())]);
    p
}

async fn auth(store: &Store, key: &str) -> Result<Principal, Error> {
    KeyAuthenticator::new(store.clone())
        .authenticate(&Credentials::bearer(key))
        .await
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn a_created_key_resolves_to_its_principal_with_every_field() {
    for db in backends().await {
        let created = db
            .store
            .create_key(NewKey::new(alice()).name("laptop").by("root"))
            .await
            .unwrap();
        let key = created.key.expose().to_owned();
        assert!(key.starts_with("aegis_sk_") && key.len() == 9 + 43, "{key}");
        assert!(key.starts_with(&created.info.prefix));
        assert_eq!(created.info.prefix.len(), 9 + keys::PREFIX_LEN);
        assert!(
            !format!("{created:?}").contains(&key[9..]),
            "the secret never prints"
        );
        assert_eq!(auth(&db.store, &key).await.unwrap(), alice(), "{}", db.name);
        // x-api-key works too.
        let mut creds = Credentials::default();
        creds.api_key = Some(Secret::new(key.clone()));
        assert_eq!(
            KeyAuthenticator::new(db.store.clone())
                .authenticate(&creds)
                .await
                .unwrap()
                .id,
            "alice"
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn only_a_hash_and_a_prefix_are_stored() {
    for db in backends().await {
        let created = db.store.create_key(NewKey::new(alice())).await.unwrap();
        let key = created.key.expose();
        let rows = db
            .store
            .connection()
            .query_all_raw(Statement::from_string(
                db.store.connection().get_database_backend(),
                "SELECT id, prefix, hash, principal_id, name FROM aegis_api_keys",
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let hash: String = rows[0].try_get_by_index(2).unwrap();
        let prefix: String = rows[0].try_get_by_index(1).unwrap();
        assert_eq!(hash.len(), 64);
        assert_eq!(prefix.len(), keys::PREFIX_LEN);
        for i in 0..5 {
            let cell: String = rows[0].try_get_by_index(i).unwrap();
            assert!(
                !cell.contains(&key[9..]),
                "{}: column {i} holds the secret",
                db.name
            );
        }
        let audit = db.store.audit_records(None, 0, 100).await.unwrap();
        assert_eq!(audit[0].kind, "key.created");
        assert!(!audit[0].data.to_string().contains(&key[9..]));
        db.finish().await;
    }
}

#[tokio::test]
async fn wrong_malformed_and_unknown_keys_are_unauthenticated() {
    for db in backends().await {
        let created = db.store.create_key(NewKey::new(alice())).await.unwrap();
        let key = created.key.expose().to_owned();
        let mut flipped = key.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let unknown_prefix = format!("aegis_sk_{}", "Z".repeat(43));
        for bad in [
            flipped.as_str(),
            unknown_prefix.as_str(),
            "aegis_sk_short",
            "sk-openai-style",
            "",
            "aegis_sk_éééééééééééééééééééééé",
        ] {
            let err = auth(&db.store, bad).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{}: {bad}", db.name);
        }
        let err = KeyAuthenticator::new(db.store.clone())
            .authenticate(&Credentials::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        db.finish().await;
    }
}

#[tokio::test]
async fn revocation_takes_effect_immediately_and_twice_is_a_conflict() {
    for db in backends().await {
        let created = db.store.create_key(NewKey::new(alice())).await.unwrap();
        let key = created.key.expose().to_owned();
        auth(&db.store, &key).await.unwrap();
        let info = db
            .store
            .revoke_key(&created.info.id, Some("root"))
            .await
            .unwrap();
        assert!(info.revoked_at_ms.is_some());
        let err = auth(&db.store, &key).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(err.message().contains("revoked"));
        let head = db.store.verify_audit().await.unwrap().head_seq;
        let err = db
            .store
            .revoke_key(&created.info.id, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let err = db.store.revoke_key("no-such-key", None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            db.store.verify_audit().await.unwrap().head_seq,
            head,
            "nothing audited"
        );
        let audit = db.store.audit_records(None, 0, 100).await.unwrap();
        assert_eq!(audit.last().unwrap().kind, "key.revoked");
        assert_eq!(audit.last().unwrap().actor.as_deref(), Some("root"));
        db.finish().await;
    }
}

/// An authenticator whose resolved keys are kept for `cache_ms`.
fn cached_auth(store: &Store, cache_ms: u64) -> KeyAuthenticator {
    let mut config = VirtualKeysConfig::default();
    config.cache_ms = cache_ms;
    KeyAuthenticator::with_config(store.clone(), config)
}

#[tokio::test]
async fn a_key_revoked_through_another_replica_is_refused_within_the_cache_bound() {
    let dir = std::env::temp_dir().join(format!("aegis-keycache-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    for db in common::shared_backends(&dir).await {
        let other = db.reopen().await;
        let created = db.store.create_key(NewKey::new(alice())).await.unwrap();
        let creds = Credentials::bearer(created.key.expose());
        let cached = cached_auth(&db.store, 400);
        let uncached = cached_auth(&db.store, 0);
        cached.authenticate(&creds).await.unwrap();
        uncached.authenticate(&creds).await.unwrap();

        // Revoked through the other replica: this one's cache does not know yet…
        other.revoke_key(&created.info.id, None).await.unwrap();
        let started = std::time::Instant::now();
        let err = uncached.authenticate(&creds).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{}", db.name);
        let still = cached.authenticate(&creds).await;
        if started.elapsed() < Duration::from_millis(300) {
            assert!(
                still.is_ok(),
                "{}: the cached key was looked up again",
                db.name
            );
        }
        // …and refuses the key once the bound has passed.
        tokio::time::sleep(Duration::from_millis(450)).await;
        let err = cached.authenticate(&creds).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{}", db.name);
        db.finish().await;
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_cached_principal_changed_through_this_store_is_seen_at_once() {
    for db in backends().await {
        let created = db.store.create_key(NewKey::new(alice())).await.unwrap();
        let creds = Credentials::bearer(created.key.expose());
        let auth = cached_auth(&db.store, 60_000);
        assert!(
            auth.authenticate(&creds)
                .await
                .unwrap()
                .has_role("approver")
        );
        let mut demoted = alice();
        demoted.roles.clear();
        db.store.upsert_principal(&demoted).await.unwrap();
        assert!(
            !auth
                .authenticate(&creds)
                .await
                .unwrap()
                .has_role("approver"),
            "{}: a role taken away through this store still applied",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    for db in backends().await {
        let created = db
            .store
            .create_key(NewKey::new(alice()).expires_at_ms(now_ms() + 300))
            .await
            .unwrap();
        let key = created.key.expose().to_owned();
        auth(&db.store, &key).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let err = auth(&db.store, &key).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{}", db.name);
        assert!(err.message().contains("expired"));
        let err = db
            .store
            .create_key(NewKey::new(alice()).expires_at_ms(now_ms() - 1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        db.finish().await;
    }
}

#[tokio::test]
async fn rotation_replaces_the_key_for_the_same_principal() {
    for db in backends().await {
        let old = db
            .store
            .create_key(NewKey::new(alice()).name("ci"))
            .await
            .unwrap();
        let new = db
            .store
            .rotate_key(&old.info.id, None, Some("alice"))
            .await
            .unwrap();
        assert_ne!(new.key.expose(), old.key.expose());
        assert_eq!(
            (new.info.principal_id.as_str(), new.info.name.as_str()),
            ("alice", "ci")
        );
        assert_eq!(auth(&db.store, new.key.expose()).await.unwrap().id, "alice");
        assert_eq!(
            auth(&db.store, old.key.expose()).await.unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );
        let listed = db.store.list_keys(Some("alice")).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].replaced_by.as_deref(), Some(new.info.id.as_str()));
        assert!(!listed[0].is_active_at(now_ms()) && listed[1].is_active_at(now_ms()));
        let err = db
            .store
            .rotate_key(&old.info.id, None, None)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Conflict,
            "a revoked key cannot rotate"
        );
        assert_eq!(
            db.store.list_keys(None).await.unwrap().len(),
            2,
            "nothing added"
        );
        assert!(db.store.list_keys(Some("bob")).await.unwrap().is_empty());
        db.finish().await;
    }
}

#[tokio::test]
async fn bad_key_requests_store_nothing() {
    for db in backends().await {
        for new in [
            NewKey::new(Principal::new("")),
            NewKey::new(alice()).name("x".repeat(201)),
        ] {
            let err = db.store.create_key(new).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        }
        assert!(db.store.list_keys(None).await.unwrap().is_empty());
        assert_eq!(db.store.principal("alice").await.unwrap(), None);
        assert_eq!(db.store.verify_audit().await.unwrap().head_seq, 0);
        db.finish().await;
    }
}

#[tokio::test]
async fn the_registry_builds_virtual_keys_from_config_with_restrictions() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let key = store.create_key(NewKey::new(alice())).await.unwrap().key;
    let mut bob = Principal::new("bob");
    bob.org = Some("other".into());
    let bob_key = store.create_key(NewKey::new(bob)).await.unwrap().key;

    let mut registry = Registry::new();
    keys::register(&mut registry, store.clone());
    assert!(registry.type_names()["authenticators"].contains(&"virtual_keys".to_owned()));
    let cfg = AegisConfig::from_toml_str(
        "[[authenticators]]\nid = \"keys\"\ntype = \"virtual_keys\"\n[authenticators.config]\norg = \"acme\"\n",
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let built = registry.build(&cfg).await.unwrap();
    let a = &built.authenticators[0].1;
    assert_eq!(
        a.authenticate(&Credentials::bearer(key.expose()))
            .await
            .unwrap()
            .id,
        "alice"
    );
    let err = a
        .authenticate(&Credentials::bearer(bob_key.expose()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "another org's key");

    let bad = AegisConfig::from_toml_str(
        "[[authenticators]]\nid = \"keys\"\ntype = \"virtual_keys\"\n[authenticators.config]\nbogus = 1\n",
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let err = registry.build(&bad).await.unwrap_err();
    assert!(err.message().contains("authenticators[0].config"), "{err}");

    let (sink, _writer) = aegis_store::AuditWriter::spawn(store.clone());
    keys::register_audit_sink(&mut registry, sink.clone());
    let cfg = AegisConfig::from_toml_str(
        "[[telemetry]]\nid = \"audit\"\ntype = \"audit_log\"\n",
        std::iter::empty::<(&str, &str)>(),
    )
    .unwrap();
    let built = registry.build(&cfg).await.unwrap();
    built.telemetry[0]
        .1
        .on_event(&RunEvent::now("r-reg", RunEventKind::Completed));
    sink.flush().await;
    assert_eq!(
        store.audit_records(Some("r-reg"), 0, 10).await.unwrap()[0].kind,
        "event.completed"
    );

    let role_gate = KeyAuthenticator::with_config(store.clone(), {
        let mut c = VirtualKeysConfig::default();
        c.required_role = Some("admin".into());
        c
    });
    let err = role_gate
        .authenticate(&Credentials::bearer(key.expose()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
}

#[tokio::test]
async fn the_starters_team_governs_run_visibility_via_keys() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let key = store.create_key(NewKey::new(alice())).await.unwrap().key;
    let who = auth(&store, key.expose()).await.unwrap();
    let g = common::approval_graph(std::sync::Arc::new(store.clone()), Default::default());
    let run = g
        .invoke_with(
            common::Doc::default(),
            aegis_core::graph::RunOptions::default().principal(who.id.clone()),
        )
        .await
        .unwrap();
    let rec = store.run(&run.run_id).await.unwrap().unwrap();
    assert_eq!(
        (rec.team.as_deref(), rec.org.as_deref()),
        (Some("payments"), Some("acme"))
    );
}

/// A new key for an existing principal never rewrites who they are: leaving fields out
/// keeps them, repeating them is fine, asking for other roles or another team is a
/// `Conflict` that stores nothing — so `keys create admin` cannot strip the admin.
#[tokio::test]
async fn creating_a_key_never_rewrites_an_existing_principal() {
    for db in backends().await {
        let s = &db.store;
        let mut admin = Principal::new("admin").with_team("ops");
        admin.roles = vec!["admin".into()];
        let first = s.create_key(NewKey::new(admin.clone())).await.unwrap();

        // The bare id (what `aegis keys create admin` sends) keeps the roles and the team.
        let bare = s
            .create_key(NewKey::new(Principal::new("admin")))
            .await
            .unwrap();
        let who = auth(s, bare.key.expose()).await.unwrap();
        assert_eq!(
            (who.roles.clone(), who.team.clone()),
            (vec!["admin".to_owned()], Some("ops".to_owned())),
            "{}",
            db.name
        );
        s.create_key(NewKey::new(admin.clone())).await.unwrap();

        let keys_before = s.list_keys(Some("admin")).await.unwrap().len();
        let mut demoted = Principal::new("admin");
        demoted.roles = vec!["approver".into()];
        let e = s.create_key(NewKey::new(demoted)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{}: {e}", db.name);
        assert!(e.message().contains("roles"), "{e}");
        let moved = Principal::new("admin").with_team("elsewhere");
        let e = s.create_key(NewKey::new(moved)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{}: {e}", db.name);
        assert_eq!(
            s.list_keys(Some("admin")).await.unwrap().len(),
            keys_before,
            "nothing stored"
        );
        let still = auth(s, first.key.expose()).await.unwrap();
        assert_eq!(still, admin, "{}", db.name);
        db.finish().await;
    }
}
