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
            Box::new(M0004BudgetFunctions),
            Box::new(M0005BudgetJournal),
            Box::new(M0006Settings),
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

/// Version 4 (PostgreSQL only; nothing on SQLite): budget admission and settlement as two
/// functions, so each is one round trip and one statement in its own transaction. The row
/// of a line every request shares (an organisation's) is then locked only for the rest of
/// that statement and its commit, instead of across five round trips.
struct M0004BudgetFunctions;

impl MigrationName for M0004BudgetFunctions {
    fn name(&self) -> &str {
        "m0004_budget_functions"
    }
}

/// `aegis_budget_reserve(id, keys, lines, usd, tokens, expires)`: records the reservation
/// (`keys`, the stored `[{account, period}]` text) and holds its amount on every line of
/// `lines` (`[{account, period, limit_usd, limit_tokens, fits_new}]`) by one conditional
/// upsert or update per line, exactly as the SQLite path does. A line that cannot take it
/// raises SQLSTATE `AB001`, which rolls the whole statement back. A second reserve of the
/// same id holds nothing.
///
/// `aegis_budget_settle(id, usd, tokens, max_usd, max_tokens)`: deletes the reservation
/// and moves its hold to spend on its lines — `usd`/`tokens`, or the held amount when they
/// are NULL, clamped to the maxima. A reaped reservation's hold was already returned, so
/// only the spend moves. An unknown id (settled twice, or never held) changes nothing.
const M0004_FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION aegis_budget_reserve(
    p_id text, p_keys text, p_lines jsonb, p_usd bigint, p_tokens bigint, p_expires bigint
) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    l jsonb;
    n bigint;
    lim_usd bigint;
    lim_tok bigint;
BEGIN
    INSERT INTO aegis_budget_reservations (id, lines, usd_micros, tokens, expires_at_ms)
        VALUES (p_id, p_keys, p_usd, p_tokens, p_expires)
        ON CONFLICT (id) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN;
    END IF;
    FOR l IN SELECT value FROM jsonb_array_elements(p_lines) LOOP
        lim_usd := (l->>'limit_usd')::bigint;
        lim_tok := (l->>'limit_tokens')::bigint;
        IF (l->>'fits_new')::boolean THEN
            INSERT INTO aegis_budget_lines AS b (account, period, limit_usd_micros, limit_tokens,
                    spent_usd_micros, spent_tokens, reserved_usd_micros, reserved_tokens)
                VALUES (l->>'account', l->>'period', lim_usd, lim_tok, 0, 0, p_usd, p_tokens)
                ON CONFLICT (account, period) DO UPDATE SET
                    limit_usd_micros = excluded.limit_usd_micros,
                    limit_tokens = excluded.limit_tokens,
                    reserved_usd_micros = b.reserved_usd_micros + excluded.reserved_usd_micros,
                    reserved_tokens = b.reserved_tokens + excluded.reserved_tokens
                WHERE (COALESCE(b.admin_usd_micros, excluded.limit_usd_micros) IS NULL
                        OR b.spent_usd_micros + b.reserved_usd_micros + excluded.reserved_usd_micros
                            <= COALESCE(b.admin_usd_micros, excluded.limit_usd_micros))
                  AND (COALESCE(b.admin_tokens, excluded.limit_tokens) IS NULL
                        OR b.spent_tokens + b.reserved_tokens + excluded.reserved_tokens
                            <= COALESCE(b.admin_tokens, excluded.limit_tokens));
        ELSE
            -- Too big for the configured limit: only a line an admin raised can take it.
            UPDATE aegis_budget_lines SET
                    reserved_usd_micros = reserved_usd_micros + p_usd,
                    reserved_tokens = reserved_tokens + p_tokens
                WHERE account = l->>'account' AND period = l->>'period'
                  AND limit_set_at_ms IS NOT NULL
                  AND (COALESCE(admin_usd_micros, lim_usd) IS NULL
                        OR spent_usd_micros + reserved_usd_micros + p_usd <= COALESCE(admin_usd_micros, lim_usd))
                  AND (COALESCE(admin_tokens, lim_tok) IS NULL
                        OR spent_tokens + reserved_tokens + p_tokens <= COALESCE(admin_tokens, lim_tok));
        END IF;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> 1 THEN
            RAISE EXCEPTION 'aegis: budget line % for % cannot take the reservation',
                l->>'account', l->>'period' USING ERRCODE = 'AB001';
        END IF;
    END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION aegis_budget_settle(
    p_id text, p_usd bigint, p_tokens bigint, p_max_usd bigint, p_max_tokens bigint
) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    k jsonb;
    rel_usd bigint := 0;
    rel_tok bigint := 0;
    sp_usd bigint;
    sp_tok bigint;
BEGIN
    DELETE FROM aegis_budget_reservations WHERE id = p_id
        RETURNING lines, usd_micros, tokens, reaped_at_ms INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    sp_usd := LEAST(COALESCE(p_usd, r.usd_micros), p_max_usd);
    sp_tok := LEAST(COALESCE(p_tokens, r.tokens), p_max_tokens);
    IF r.reaped_at_ms IS NULL THEN
        rel_usd := r.usd_micros;
        rel_tok := r.tokens;
    END IF;
    FOR k IN SELECT value FROM jsonb_array_elements(r.lines::jsonb) LOOP
        UPDATE aegis_budget_lines SET
                reserved_usd_micros = GREATEST(reserved_usd_micros - rel_usd, 0),
                reserved_tokens = GREATEST(reserved_tokens - rel_tok, 0),
                spent_usd_micros = spent_usd_micros + sp_usd,
                spent_tokens = spent_tokens + sp_tok
            WHERE account = k->>'account' AND period = k->>'period';
    END LOOP;
END
$fn$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for M0004BudgetFunctions {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        m.get_connection()
            .execute_unprepared(M0004_FUNCTIONS)
            .await
            .map(|_| ())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        m.get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS aegis_budget_reserve(text, text, jsonb, bigint, bigint, bigint); \
                 DROP FUNCTION IF EXISTS aegis_budget_settle(text, bigint, bigint, bigint, bigint);",
            )
            .await
            .map(|_| ())
    }
}

/// Version 5: the settlements a Redis ledger's journal has applied to the lines, by entry
/// id, so a journal entry re-read after a flusher crashed is not counted twice.
struct M0005BudgetJournal;

impl MigrationName for M0005BudgetJournal {
    fn name(&self) -> &str {
        "m0005_budget_journal"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0005BudgetJournal {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("aegis_budget_applied"))
                .col(str_col("id").primary_key())
                .col(big_col("applied_at_ms"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("aegis_budget_applied_at_idx")
                .table(t("aegis_budget_applied"))
                .col(col("applied_at_ms"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(t("aegis_budget_applied"))
                .if_exists()
                .take(),
        )
        .await
    }
}

/// Version 6: settings every replica on the database must agree on (which budget ledger
/// holds the counts), by key.
struct M0006Settings;

impl MigrationName for M0006Settings {
    fn name(&self) -> &str {
        "m0006_settings"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0006Settings {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("aegis_settings"))
                .col(str_col("key").primary_key())
                .col(text_col("value"))
                .col(big_col("set_at_ms"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(t("aegis_settings")).if_exists().take())
            .await
    }
}
