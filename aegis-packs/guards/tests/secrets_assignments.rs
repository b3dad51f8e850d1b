//! Secrets assigned in code, config, env files, JSON/YAML, XML and shell; connection
//! strings reported whole with only the password redacted; and the look-alikes in the same
//! places that must stay unflagged.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_guards::{Action, Secrets, SecretsConfig};
use common::{check_text, sanitized, spans};

fn guard() -> Secrets {
    Secrets::new(SecretsConfig::default()).unwrap()
}

fn redacting() -> Secrets {
    Secrets::new(SecretsConfig {
        action: Action::Redact,
        ..SecretsConfig::default()
    })
    .unwrap()
}

/// The text of every finding.
fn flagged(text: &str) -> Vec<String> {
    spans(&check_text(&guard(), text))
        .into_iter()
        .map(|(s, e, _)| text[s..e].to_owned())
        .collect()
}

#[test]
fn secrets_assigned_in_every_common_syntax_are_found() {
    let value = "Kangaroo#1549zz";
    for text in [
        format!("DB_PASSWORD={value}"),
        format!("export SECRET_KEY='{value}'"),
        format!("password = \"{value}\""),
        format!("{{\"username\": \"svc\", \"password\": \"{value}\"}}"),
        format!("  auth_token: \"{value}\""),
        format!("spring.datasource.password={value}"),
        format!("app.config['SECRET_KEY'] = '{value}'"),
        format!("const apiKey = \"{value}\";"),
        format!("<add key=\"ApiSecret\" value=\"{value}\" />"),
        format!("deploy --token {value} --env prod"),
        format!("mysql -u admin --password={value} prod"),
        "STRIPE_API_KEY=\"Sunflower$3136Q\"".to_string(),
    ] {
        let found = flagged(&text);
        assert!(
            found.iter().any(|f| f == value || f == "Sunflower$3136Q"),
            "{text}: {found:?}"
        );
    }
}

#[test]
fn placeholders_references_and_metadata_are_not_secrets() {
    for text in [
        "password = \"changeme\"",
        "api_key: <your-api-key>",
        "export TOKEN=${DB_PASSWORD}",
        "{\"secret\": \"REPLACE_ME\"}",
        "client_secret = 'YOUR_TOKEN_HERE'",
        "DB_PASSWORD=********",
        "password: {{ secret }}",
        "api_key = os.environ[\"API_KEY\"]",
        "token = process.env.TOKEN",
        "password = settings.password",
        "password_changed_at: 2024-01-05T10:00:00",
        "token_ttl = 3600seconds",
        "api_key_header = X-Api-Key-Name",
        "version = \"1.2.3-beta.4\"",
        "commit 3f9a2c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 fixed the auth bug",
        "<script src=\"app.js\" integrity=\"sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC\"></script>",
        "DATABASE_URL=postgres://localhost:5432/app",
        "DATABASE_URL=postgres://app:${DB_PASS}@db:5432/app",
        "The token bucket refills at 10 tokens per second.",
        "See https://docs.google.com/document/d/1A2b3C4d5E6f7G8h9I0jKlMnOpQrStUvWxYz/edit",
        "The object is at s3://my-bucket/uploads/2024/01/IMG_20240105_101500.jpg",
        "<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\">",
    ] {
        assert_eq!(flagged(text), Vec::<String>::new(), "{text}");
    }
}

#[test]
fn a_connection_string_is_reported_whole_and_only_its_password_is_redacted() {
    let url = "postgres://svc_orders:hx7ADwPs6A03CoYwQP@db.internal:5432/orders?sslmode=require";
    let text = format!("DATABASE_URL={url}");
    let found = spans(&check_text(&guard(), &text));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(&text[found[0].0..found[0].1], url);
    assert_eq!(found[0].2, "postgres_connection_string");
    assert_eq!(
        sanitized(&redacting(), &text),
        "DATABASE_URL=postgres://svc_orders:[REDACTED:postgres_connection_string]@db.internal:5432/orders?sslmode=require"
    );
    for url in [
        "mongodb+srv://admin:c7M2UW6g333FLvNbmwWj@cluster0.ab12c.mongodb.net/app?retryWrites=true",
        "redis://:Sunflowerx9910Q@cache.internal:6379/0",
        "amqp://app:8b9toaku54jbwss3pxj2ty2fzw0c3bi@mq.internal:5672/vhost",
    ] {
        assert_eq!(flagged(&format!("url: {url}")), [url], "{url}");
    }
}

#[test]
fn the_former_name_of_the_generic_connection_string_type_still_disables_it() {
    let text = "fetch https://admin:Pw5bcDHMERXceP7@internal.example.org/x";
    assert_eq!(spans(&check_text(&guard(), text))[0].2, "connection_string");
    let off = Secrets::new(SecretsConfig {
        disabled_types: vec!["password_in_url".into()],
        ..SecretsConfig::default()
    })
    .unwrap();
    assert!(spans(&check_text(&off, text)).is_empty());
}
