//! Schema migrations (sea-orm-migration). Every table is prefixed `aegis_` so the store can
//! share a database with the host's own tables; the migration ledger itself is
//! `aegis_migrations`.
//!
//! [`Store::connect`](crate::Store::connect) applies pending migrations. Hosts (or the CLI)
//! can roll back with [`Migrator::down`](sea_orm_migration::MigratorTrait::down).

use sea_orm_migration::prelude::*;

/// The migrations of `aegis-store`, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Initial),
            Box::new(M0002Budgets),
            Box::new(M0003UsageAndLimits),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("aegis_migrations").into_iden()
    }
}

/// Version 1: runs, checkpoints, interrupts, decisions, principals, API keys, audit log.
struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

fn t(name: &'static str) -> Alias {
    Alias::new(name)
}

fn col(name: &'static str) -> Alias {
    Alias::new(name)
}

fn str_col(name: &'static str) -> ColumnDef {
    ColumnDef::new(col(name)).string().not_null().take()
}

fn str_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(col(name)).string().null().take()
}

fn text_col(name: &'static str) -> ColumnDef {
    ColumnDef::new(col(name)).text().not_null().take()
}

fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(col(name)).text().null().take()
}

fn big_col(name: &'static str) -> ColumnDef {
    ColumnDef::new(col(name)).big_integer().not_null().take()
}

fn big_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(col(name)).big_integer().null().take()
}

const TABLES: [&str; 8] = [
    "aegis_audit_head",
    "aegis_audit_log",
    "aegis_api_keys",
    "aegis_principals",
    "aegis_decisions",
    "aegis_interrupts",
    "aegis_checkpoints",
    "aegis_runs",
];

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("aegis_runs"))
                .col(str_col("run_id").primary_key())
                .col(str_col("graph"))
                .col(str_col("status"))
                .col(str_null("principal"))
                .col(str_null("team"))
                .col(str_null("org"))
                .col(big_col("version"))
                .col(str_null("next"))
                .col(str_null("interrupt_id"))
                .col(big_col("created_at_ms"))
                .col(big_col("updated_at_ms"))
                .take(),
        )
        .await?;
        for (name, c) in [
            ("aegis_runs_status_idx", "status"),
            ("aegis_runs_principal_idx", "principal"),
            ("aegis_runs_team_idx", "team"),
            ("aegis_runs_created_idx", "created_at_ms"),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(t("aegis_runs"))
                    .col(col(c))
                    .take(),
            )
            .await?;
        }

        // The primary key (run_id, version) is what makes optimistic concurrency atomic
        // across processes: of two writers of version v+1, the database lets one in.
        m.create_table(
            Table::create()
                .table(t("aegis_checkpoints"))
                .col(str_col("run_id"))
                .col(big_col("version"))
                .col(str_col("graph"))
                .col(big_col("schema_version"))
                .col(text_col("state"))
                .col(str_null("next"))
                .col(str_col("status"))
                .col(text_null("interrupt"))
                .col(str_null("principal"))
                .col(big_col("at_ms"))
                .primary_key(Index::create().col(col("run_id")).col(col("version")))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(t("aegis_interrupts"))
                .col(str_col("id").primary_key())
                .col(str_col("run_id"))
                .col(big_col("version"))
                .col(str_col("node"))
                .col(text_col("reason"))
                .col(text_col("payload"))
                .col(text_col("edit_schema"))
                .col(big_col("created_at_ms"))
                .col(big_null("decided_at_ms"))
                .col(big_null("resolved_version"))
                .col(big_null("resolved_at_ms"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("aegis_interrupts_run_idx")
                .table(t("aegis_interrupts"))
                .col(col("run_id"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(t("aegis_decisions"))
                .col(str_col("id").primary_key())
                .col(str_col("interrupt_id").unique_key())
                .col(str_col("run_id"))
                .col(str_col("decision"))
                .col(text_null("reason"))
                .col(text_null("value"))
                .col(str_col("decided_by"))
                .col(big_col("at_ms"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("aegis_decisions_run_idx")
                .table(t("aegis_decisions"))
                .col(col("run_id"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(t("aegis_principals"))
                .col(str_col("id").primary_key())
                .col(str_null("team"))
                .col(str_null("org"))
                .col(text_col("roles"))
                .col(text_col("labels"))
                .col(big_col("created_at_ms"))
                .col(big_col("updated_at_ms"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(t("aegis_api_keys"))
                .col(str_col("id").primary_key())
                .col(str_col("prefix").unique_key())
                .col(str_col("hash"))
                .col(str_col("principal_id"))
                .col(str_col("name"))
                .col(big_col("created_at_ms"))
                .col(big_null("expires_at_ms"))
                .col(big_null("revoked_at_ms"))
                .col(str_null("replaced_by"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("aegis_api_keys_principal_idx")
                .table(t("aegis_api_keys"))
                .col(col("principal_id"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(t("aegis_audit_log"))
                .col(big_col("seq").primary_key())
                .col(big_col("at_ms"))
                .col(str_col("kind"))
                .col(str_null("run_id"))
                .col(str_null("actor"))
                .col(text_col("data"))
                .col(str_col("prev_hash"))
                .col(str_col("hash"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("aegis_audit_log_run_idx")
                .table(t("aegis_audit_log"))
                .col(col("run_id"))
                .take(),
        )
        .await?;

        // One row: the chain's head. Appends lock it first, which serializes them across
        // connections and processes on both backends.
        m.create_table(
            Table::create()
                .table(t("aegis_audit_head"))
                .col(ColumnDef::new(col("id")).integer().not_null().primary_key())
                .col(big_col("seq"))
                .col(str_col("hash"))
                .take(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table(t("aegis_audit_head"))
                .columns([col("id"), col("seq"), col("hash")])
                .values_panic([1.into(), 0i64.into(), crate::audit::GENESIS.into()])
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in TABLES {
            m.drop_table(Table::drop().table(t(name)).if_exists().take())
                .await?;
        }
        Ok(())
    }
}

/// Version 2: the budget ledger — lines (account × period, limit, spend, holds) and the
/// reservations that hold them.
struct M0002Budgets;

impl MigrationName for M0002Budgets {
    fn name(&self) -> &str {
        "m0002_budgets"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Budgets {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("aegis_budget_lines"))
                .col(str_col("account"))
                .col(str_col("period"))
                .col(big_null("limit_usd_micros"))
                .col(big_null("limit_tokens"))
                .col(big_col("spent_usd_micros"))
                .col(big_col("spent_tokens"))
                .col(big_col("reserved_usd_micros"))
                .col(big_col("reserved_tokens"))
                .primary_key(Index::create().col(col("account")).col(col("period")))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("aegis_budget_reservations"))
                .col(str_col("id").primary_key())
                .col(text_col("lines"))
                .col(big_col("usd_micros"))
                .col(big_col("tokens"))
                .col(big_col("expires_at_ms"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("aegis_budget_reservations_expiry_idx")
                .table(t("aegis_budget_reservations"))
                .col(col("expires_at_ms"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in ["aegis_budget_reservations", "aegis_budget_lines"] {
            m.drop_table(Table::drop().table(t(name)).if_exists().take())
                .await?;
        }
        Ok(())
    }
}

/// Version 3: a run's usage and cost on its run row; budget limits set by an admin.
struct M0003UsageAndLimits;

impl MigrationName for M0003UsageAndLimits {
    fn name(&self) -> &str {
        "m0003_usage_and_limits"
    }
}

/// The columns version 3 adds, by table (SQLite alters one column per statement).
/// `admin_*`: a limit an admin set, per unit (NULL: the configured one applies).
/// `reaped_at_ms`: when the reaper returned a reservation's hold (a late settle still
/// charges it).
const M0003_COLUMNS: [(&str, &str); 7] = [
    ("aegis_runs", "input_tokens"),
    ("aegis_runs", "output_tokens"),
    ("aegis_runs", "cost_usd_micros"),
    ("aegis_budget_lines", "admin_usd_micros"),
    ("aegis_budget_lines", "admin_tokens"),
    ("aegis_budget_lines", "limit_set_at_ms"),
    ("aegis_budget_reservations", "reaped_at_ms"),
];

#[async_trait::async_trait]
impl MigrationTrait for M0003UsageAndLimits {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in M0003_COLUMNS {
            m.alter_table(
                Table::alter()
                    .table(t(table))
                    .add_column(big_null(column))
                    .take(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in M0003_COLUMNS.iter().rev() {
            m.alter_table(
                Table::alter()
                    .table(t(table))
                    .drop_column(col(column))
                    .take(),
            )
            .await?;
        }
        Ok(())
    }
}
