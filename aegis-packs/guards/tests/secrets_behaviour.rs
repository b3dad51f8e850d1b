//! Secrets: block and redact paths, only the secret part of a connection string is
//! redacted, private-key blocks, entropy tuning, disabled types, config errors.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{ErrorKind, Granularity, Guardrail};
use aegis_guards::{Action, Secrets, SecretsConfig};
use common::{check_text, sanitized};

fn redacting() -> Secrets {
    Secrets::new(SecretsConfig {
        action: Action::Redact,
        ..SecretsConfig::default()
    })
    .unwrap()
}

fn gh() -> String {
    ["ghp", "_", "aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA2cD4"].concat()
}

#[test]
fn blocks_a_token_and_names_its_type_without_echoing_it() {
    let guard = Secrets::new(SecretsConfig::default()).unwrap();
    let v = check_text(&guard, &format!("use {} for the CI", gh()));
    assert!(v.is_block());
    assert_eq!(v.findings[0].kind, "github_pat");
    let aegis_contracts::Decision::Block { reason, code } = &v.decision else {
        unreachable!()
    };
    assert_eq!(code, "secret");
    assert!(reason.contains("github_pat") && !reason.contains(&gh()));
}

#[test]
fn redacts_with_the_type_in_the_mask() {
    let text = format!("token={} and again {}.", gh(), gh());
    assert_eq!(
        sanitized(&redacting(), &text),
        "token=[REDACTED:github_pat] and again [REDACTED:github_pat]."
    );
}

#[test]
fn connection_strings_redact_only_the_password() {
    let text = ["postgres://app:", "Zt9kLmQ2vX@db.internal:5432/app"].concat();
    assert_eq!(
        sanitized(&redacting(), &text),
        "postgres://app:[REDACTED:postgres_connection_string]@db.internal:5432/app"
    );
}

#[test]
fn non_ascii_text_keeps_spans_on_characters_and_unicode_spaces_end_a_value() {
    // A password with non-ASCII letters is redacted whole, on character boundaries.
    let text = [
        "postgres://app:",
        "Zt9kLmQ2vX\u{e9}\u{df}@db.internal:5432/app",
    ]
    .concat();
    assert_eq!(
        sanitized(&redacting(), &text),
        "postgres://app:[REDACTED:postgres_connection_string]@db.internal:5432/app"
    );
    // A no-break space or an ideographic space ends a value, as an ASCII space does.
    for space in ["\u{a0}", "\u{3000}", " "] {
        let text = format!("password = \"Sunflower9910Q\"{space}and the rest é");
        assert_eq!(
            sanitized(&redacting(), &text),
            format!("password = \"[REDACTED:generic_secret_assignment]\"{space}and the rest é"),
            "{space:?}"
        );
        let text = format!("password=Sunflower9910Q{space}and the rest");
        assert_eq!(
            sanitized(&redacting(), &text),
            format!("password=[REDACTED:generic_secret_assignment]{space}and the rest"),
            "{space:?}"
        );
        // A Unicode space around the separator, and a short value before another secret.
        let text = format!("password:{space}Sunflower9910Q");
        assert_eq!(
            sanitized(&redacting(), &text),
            format!("password:{space}[REDACTED:generic_secret_assignment]")
        );
        let text = format!("password=ab{space}token=Sunflower9910Q");
        let out = sanitized(&redacting(), &text);
        assert!(!out.contains("Sunflower9910Q"), "{out}");
        let text = format!("DATABASE_URL=postgres://app:Sunflower9910Q@db{space}next");
        let out = sanitized(&redacting(), &text);
        assert!(out.ends_with(&format!("{space}next")), "{out}");
        assert!(!out.contains("Sunflower9910Q"), "{out}");
    }
}

#[test]
fn private_key_blocks_are_redacted_whole() {
    let body = "MIIEowIBAAKCAQEAq8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaEq8Xr2LmZ7vTk4NcB\nq8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE==";
    let text = format!(
        "key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\nthanks"
    );
    assert_eq!(
        sanitized(&redacting(), &text),
        "key:\n[REDACTED:rsa_private_key]\nthanks"
    );
    // Cut off (no END line): the header and the armoured body that follows.
    let cut = format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{body}");
    assert_eq!(
        sanitized(&redacting(), &cut),
        "[REDACTED:openssh_private_key]"
    );
}

#[test]
fn specific_rules_win_over_entropy() {
    let guard = Secrets::new(SecretsConfig::default()).unwrap();
    let key = ["sk_live_", "4eC39HqLyjWDarjtT1zdp7dc"].concat();
    let v = check_text(&guard, &key);
    assert_eq!(v.findings.len(), 1);
    assert_eq!(v.findings[0].kind, "stripe_secret_key");
}

#[test]
fn entropy_flags_random_tokens_but_not_code_or_prose() {
    let guard = Secrets::new(SecretsConfig::default()).unwrap();
    let v = check_text(&guard, "session = q8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE");
    assert_eq!(v.findings[0].kind, "high_entropy_string");
    for benign in [
        "The quick brown fox jumps over the lazy dog, again and again and again.",
        "commit 3f9a2c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 fixed it",
        "request id 550e8400-e29b-41d4-a716-446655440000",
        "call getUserAccountDetailsById2(handleOAuth2CallbackRequest) now",
        "sha256: E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "see https://docs.rs/tokio/latest/tokio/runtime/struct.Builder.html for details",
        "api_key = os.environ['OPENAI_API_KEY']",
        "password = getenv(\"DB_PASSWORD\")",
        "secret: ${{ secrets.DEPLOY_KEY }}",
        "client_secret = settings.oauth.client_secret",
        "the password is hunter2",
    ] {
        assert!(check_text(&guard, benign).is_allow(), "{benign}");
    }
}

#[test]
fn entropy_threshold_and_switch_are_honoured() {
    let token = "session = q8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE";
    let strict = Secrets::new(SecretsConfig {
        entropy_threshold: 6.0,
        ..SecretsConfig::default()
    })
    .unwrap();
    assert!(check_text(&strict, token).is_allow());
    let off = Secrets::new(SecretsConfig {
        entropy: false,
        ..SecretsConfig::default()
    })
    .unwrap();
    assert!(check_text(&off, token).is_allow());
}

#[test]
fn disabled_types_are_skipped() {
    let guard = Secrets::new(SecretsConfig {
        disabled_types: vec!["github_pat".into(), "high_entropy_string".into()],
        ..SecretsConfig::default()
    })
    .unwrap();
    assert!(check_text(&guard, &gh()).is_allow());
}

#[test]
fn declares_a_bounded_window_dominated_by_the_pem_limit() {
    let guard = Secrets::new(SecretsConfig::default()).unwrap();
    let Granularity::Window(n) = guard.capabilities().granularity else {
        panic!()
    };
    assert!((8192..=8192 + 64).contains(&n), "{n}");
    assert!(!guard.capabilities().sanitizes);
    assert!(redacting().capabilities().sanitizes);
}

#[test]
fn bad_config_is_a_config_error() {
    for cfg in [
        SecretsConfig {
            disabled_types: vec!["no_such_type".into()],
            ..SecretsConfig::default()
        },
        SecretsConfig {
            entropy_threshold: 0.0,
            ..SecretsConfig::default()
        },
        SecretsConfig {
            entropy_threshold: f64::NAN,
            ..SecretsConfig::default()
        },
        SecretsConfig {
            entropy_min_len: 4,
            ..SecretsConfig::default()
        },
        SecretsConfig {
            pem_max_bytes: 10,
            ..SecretsConfig::default()
        },
    ] {
        assert_eq!(Secrets::new(cfg).unwrap_err().kind(), ErrorKind::Config);
    }
    let err = serde_json::from_str::<SecretsConfig>(r#"{"mode": "redact"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"));
}
