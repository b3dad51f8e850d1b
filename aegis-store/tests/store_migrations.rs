//! Opening a store: URLs, SQLite files created on first use in WAL mode, migrations up and
//! down, and refusal of a database migrated by a newer build.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{CheckpointStore, ErrorKind};
use aegis_store::{Store, StoreOptions};
use common::backends;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::{MigratorTrait, SchemaManager};

const TABLES: [&str; 8] = [
    "aegis_runs",
    "aegis_checkpoints",
    "aegis_interrupts",
    "aegis_decisions",
    "aegis_principals",
    "aegis_api_keys",
    "aegis_audit_log",
    "aegis_audit_head",
];

async fn tables_present(store: &Store) -> Vec<bool> {
    let m = SchemaManager::new(store.connection());
    let mut out = Vec::new();
    for t in TABLES {
        out.push(m.has_table(t).await.unwrap());
    }
    out
}

#[tokio::test]
async fn migrations_create_prefixed_tables_and_roll_back_cleanly() {
    for db in backends().await {
        assert_eq!(
            tables_present(&db.store).await,
            vec![true; 8],
            "{}",
            db.name
        );
        let m = SchemaManager::new(db.store.connection());
        assert!(
            m.has_table("aegis_migrations").await.unwrap(),
            "{}",
            db.name
        );
        assert!(
            !m.has_table("seaql_migrations").await.unwrap(),
            "ledger is prefixed too"
        );

        db.store.migrate_down().await.unwrap();
        assert_eq!(
            tables_present(&db.store).await,
            vec![false; 8],
            "{}",
            db.name
        );

        db.store.migrate().await.unwrap();
        assert_eq!(
            tables_present(&db.store).await,
            vec![true; 8],
            "{}",
            db.name
        );
        // Usable after a full down/up cycle, audit chain included.
        let g = common::approval_graph(std::sync::Arc::new(db.store.clone()), Default::default());
        let run = g.invoke(common::Doc::default()).await.unwrap();
        assert!(db.store.latest(&run.run_id).await.unwrap().is_some());
        assert!(db.store.verify_audit().await.unwrap().is_valid());
        db.finish().await;
    }
}

#[tokio::test]
async fn connecting_twice_is_idempotent() {
    for db in backends().await {
        db.store.migrate().await.unwrap();
        let applied = aegis_store::Migrator::get_applied_migrations(db.store.connection())
            .await
            .unwrap();
        assert_eq!(
            applied.len(),
            aegis_store::Migrator::migrations().len(),
            "{}: each migration once",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn a_sqlite_file_is_created_on_first_use_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested.db");
    assert!(!path.exists());
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    assert!(path.exists());
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    let mode: String = row.try_get_by_index(0).unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    // Reopening keeps the data.
    let g = common::approval_graph(
        std::sync::Arc::new(Store::connect(&url).await.unwrap()),
        Default::default(),
    );
    let run_id = g.invoke(common::Doc::default()).await.unwrap().run_id;
    let again = Store::connect(&url).await.unwrap();
    assert!(again.latest(&run_id).await.unwrap().is_some());
}

#[tokio::test]
async fn unsupported_urls_and_schemas_are_config_errors() {
    for url in ["mysql://x/y", "", "file.db"] {
        let err = Store::connect(url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url}");
    }
    let err =
        Store::connect_with(StoreOptions::new("postgres://u@127.0.0.1:1/x").schema("a; drop"))
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn an_unreachable_database_is_a_storage_error_without_the_password() {
    let err = Store::connect_with(
        StoreOptions::new("postgres://u:hunter2@127.0.0.1:1/x")
            .max_connections(1)
            .connect_timeout(std::time::Duration::from_secs(1)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_build_is_refused() {
    for db in backends().await {
        db.store
            .connection()
            .execute_unprepared(
                "INSERT INTO aegis_migrations (version, applied_at) VALUES ('m9999_from_the_future', 0)",
            )
            .await
            .unwrap();
        let err = db.store.migrate().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage, "{}", db.name);
        assert!(err.message().contains("newer aegis-store"), "{err}");
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_at_once_migrate_a_fresh_database_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut targets = vec![(
        format!("sqlite://{}", dir.path().join("fresh.db").display()),
        None,
    )];
    if let Some((url, schema)) = common::pg_schema().await {
        targets.push((url, Some(schema)));
    }
    for (url, schema) in targets {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let mut o = StoreOptions::new(url.clone());
                if let Some(s) = &schema {
                    o = o.schema(s.clone());
                }
                tokio::spawn(Store::connect_with(o))
            })
            .collect();
        let mut stores = Vec::new();
        for t in tasks {
            stores.push(t.await.unwrap().unwrap());
        }
        let applied = aegis_store::Migrator::get_applied_migrations(stores[0].connection())
            .await
            .unwrap();
        assert_eq!(
            applied.len(),
            aegis_store::Migrator::migrations().len(),
            "{url}: each migration once"
        );
        assert_eq!(
            stores[0].verify_audit().await.unwrap().head_seq,
            0,
            "one head row"
        );
        drop(stores);
        if let Some(schema) = schema {
            let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
            db.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
    }
}
