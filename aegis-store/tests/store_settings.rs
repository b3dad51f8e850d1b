//! Shared settings (what MCP pins and tool-call approvals are kept in): one first writer wins
//! an insert-if-absent, and a prefix lists exactly its keys — on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

#[tokio::test]
async fn the_first_writer_of_a_setting_wins_and_a_prefix_lists_only_its_keys() {
    for db in common::backends().await {
        let s = &db.store;
        assert!(
            s.set_setting_if_absent("mcp.pin.fx", "first")
                .await
                .unwrap(),
            "{}",
            db.name
        );
        assert!(
            !s.set_setting_if_absent("mcp.pin.fx", "second")
                .await
                .unwrap(),
            "{}",
            db.name
        );
        assert_eq!(
            s.setting("mcp.pin.fx").await.unwrap().as_deref(),
            Some("first")
        );
        s.set_setting("mcp.pin.other", Some("x")).await.unwrap();
        s.set_setting("mcp.pinned", Some("not under the prefix"))
            .await
            .unwrap();
        s.set_setting("budget_ledger", Some("y")).await.unwrap();
        let listed = s.settings_with_prefix("mcp.pin.").await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["mcp.pin.fx", "mcp.pin.other"], "{}", db.name);
        // A prefix is literal: `%` and `_` are not patterns.
        s.set_setting("mcp_pin_x", Some("z")).await.unwrap();
        assert!(
            s.settings_with_prefix("mcp_pin_").await.unwrap().len() == 1,
            "{}",
            db.name
        );
        assert!(
            s.settings_with_prefix("mcp%").await.unwrap().is_empty(),
            "{}",
            db.name
        );
        db.finish().await;
    }
}
