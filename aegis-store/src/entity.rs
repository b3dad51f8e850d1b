//! sea-orm entities for the `aegis_` tables. JSON is stored as text: it round-trips byte
//! for byte on both backends, which the audit hash chain relies on.

pub(crate) mod run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "aegis_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub run_id: String,
        pub graph: String,
        pub status: String,
        pub principal: Option<String>,
        pub team: Option<String>,
        pub org: Option<String>,
        pub version: i64,
        pub next: Option<String>,
        pub interrupt_id: Option<String>,
        pub created_at_ms: i64,
        pub updated_at_ms: i64,
        pub input_tokens: Option<i64>,
        pub output_tokens: Option<i64>,
        pub cost_usd_micros: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod checkpoint {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "aegis_checkpoints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub run_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        pub graph: String,
        pub schema_version: i64,
        #[sea_orm(column_type = "Text")]
        pub state: String,
        pub next: Option<String>,
        pub status: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub interrupt: Option<String>,
        pub principal: Option<String>,
        pub at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod interrupt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "aegis_interrupts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub run_id: String,
        pub version: i64,
        pub node: String,
        #[sea_orm(column_type = "Text")]
        pub reason: String,
        #[sea_orm(column_type = "Text")]
        pub payload: String,
        #[sea_orm(column_type = "Text")]
        pub edit_schema: String,
        pub created_at_ms: i64,
        pub decided_at_ms: Option<i64>,
        pub resolved_version: Option<i64>,
        pub resolved_at_ms: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod decision {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "aegis_decisions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub interrupt_id: String,
        pub run_id: String,
        pub decision: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub reason: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub value: Option<String>,
        pub decided_by: String,
        pub at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod principal {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "aegis_principals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub team: Option<String>,
        pub org: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub roles: String,
        #[sea_orm(column_type = "Text")]
        pub labels: String,
        pub created_at_ms: i64,
        pub updated_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "aegis_api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub prefix: String,
        pub hash: String,
        pub principal_id: String,
        pub name: String,
        pub created_at_ms: i64,
        pub expires_at_ms: Option<i64>,
        pub revoked_at_ms: Option<i64>,
        pub replaced_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod audit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "aegis_audit_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub at_ms: i64,
        pub kind: String,
        pub run_id: Option<String>,
        pub actor: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub data: String,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod audit_head {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "aegis_audit_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub seq: i64,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
