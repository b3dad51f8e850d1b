//! Anonymizer operators: replace, redact, mask, hash, encrypt/decrypt.
#![allow(clippy::unwrap_used)]

use aegis_contracts::Secret;
use aegis_pii::{Analyzer, AnalyzerConfig, Operator, anonymize, decrypt, encrypt, hash};

fn apply(op: &Operator, original: &str) -> String {
    op.apply("PHONE_NUMBER", original, None).unwrap()
}

#[test]
fn replace_defaults_to_entity_tag_or_custom_value() {
    assert_eq!(
        apply(&Operator::Replace { new_value: None }, "555"),
        "<PHONE_NUMBER>"
    );
    assert_eq!(
        apply(
            &Operator::Replace {
                new_value: Some("[x]".into())
            },
            "555"
        ),
        "[x]"
    );
}

#[test]
fn redact_removes() {
    assert_eq!(apply(&Operator::Redact, "555"), "");
}

#[test]
fn mask_from_start_end_and_capped() {
    let m = |n, from_end| Operator::Mask {
        masking_char: '#',
        chars_to_mask: n,
        from_end,
    };
    assert_eq!(apply(&m(3, false), "0344-5555"), "###4-5555");
    assert_eq!(apply(&m(4, true), "0344-5555"), "0344-####");
    assert_eq!(apply(&m(100, false), "ab"), "##");
    assert_eq!(apply(&m(2, false), "éàü"), "##ü");
}

#[test]
fn hash_is_salted_sha256() {
    let s1 = Secret::new("pepper-0123456789");
    let s2 = Secret::new("other-salt-0123456");
    assert_eq!(hash("x", &s1), hash("x", &s1));
    assert_ne!(hash("x", &s1), hash("x", &s2));
    assert_eq!(hash("x", &s1).len(), 64);
    // sha256("abc") with an empty salt is the well-known vector.
    assert_eq!(
        hash("abc", &Secret::new("")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn encrypt_round_trips_and_rejects_wrong_key() {
    let key = Secret::new("0123456789abcdef0123456789abcdef");
    let token = encrypt(&key, "4111 1111 1111 1111").unwrap();
    assert_ne!(
        token,
        encrypt(&key, "4111 1111 1111 1111").unwrap(),
        "random nonce"
    );
    assert_eq!(decrypt(&key, &token).unwrap(), "4111 1111 1111 1111");
    assert!(decrypt(&Secret::new("fedcba9876543210fedcba9876543210"), &token).is_err());
    assert!(encrypt(&Secret::new("short"), "x").is_err());
    let k128 = Secret::new("base64:AAECAwQFBgcICQoLDA0ODw==");
    assert_eq!(
        decrypt(&k128, &encrypt(&k128, "hi").unwrap()).unwrap(),
        "hi"
    );
}

#[test]
fn anonymize_applies_per_entity_operators() {
    let a = Analyzer::new(AnalyzerConfig {
        score_threshold: 0.5,
        ..Default::default()
    })
    .unwrap();
    let text = "mail a@b.io, card 4111111111111111.";
    let found = a.analyze_resolved(text);
    let mask = Operator::Mask {
        masking_char: '*',
        chars_to_mask: 12,
        from_end: false,
    };
    let replace = Operator::default();
    let out = anonymize(
        text,
        &found,
        |e| Some(if e == "CREDIT_CARD" { &mask } else { &replace }),
        None,
    )
    .unwrap();
    assert_eq!(out, "mail <EMAIL_ADDRESS>, card ************1111.");
}

#[test]
fn operator_config_rejects_unknown_fields() {
    let bad = serde_json::from_value::<Operator>(
        serde_json::json!({"type": "mask", "chars_to_mask": 2, "oops": 1}),
    );
    assert!(bad.is_err());
    let ok: Operator =
        serde_json::from_value(serde_json::json!({"type": "mask", "chars_to_mask": 2})).unwrap();
    assert_eq!(
        ok,
        Operator::Mask {
            masking_char: '*',
            chars_to_mask: 2,
            from_end: false
        }
    );
}
