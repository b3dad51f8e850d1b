//! Property: any chunking of an anonymized text de-anonymizes to the one-shot result.
#![allow(clippy::unwrap_used)]

use aegis_pii::Vault;
use proptest::prelude::*;

fn vault() -> Vault {
    let mut v = Vault::new();
    for (e, o) in [
        ("PERSON", "Ann Lee"),
        ("EMAIL_ADDRESS", "a@b.io"),
        ("PERSON", "Bo"),
        ("PHONE_NUMBER", "555-0100"),
    ] {
        v.token_for(e, o);
    }
    for i in 0..12 {
        v.token_for("US_SSN", &format!("ssn-{i}"));
    }
    v
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<PERSON_1>".to_owned()),
        Just("<PERSON_2>".to_owned()),
        Just("<EMAIL_ADDRESS_1>".to_owned()),
        Just("<US_SSN_12>".to_owned()),
        Just("<US_SSN_1>".to_owned()),
        Just("<PERSON_9>".to_owned()),
        Just("<".to_owned()),
        Just("<<".to_owned()),
        Just(">".to_owned()),
        Just("<PERSON_".to_owned()),
        "[a-zé <>_1A-Z]{0,8}",
    ]
}

proptest! {
    #[test]
    fn streaming_equals_one_shot(pieces in prop::collection::vec(piece(), 0..20), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let v = vault();
        let text: String = pieces.concat();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).filter(|&p| text.is_char_boundary(p)).collect();
        points.sort_unstable();
        points.dedup();
        let mut s = v.streaming();
        let mut out = String::new();
        let mut last = 0;
        for p in points.into_iter().chain(std::iter::once(text.len())) {
            out += &s.push(&text[last..p]);
            prop_assert!(s.held_back() <= v.max_token_len());
            last = p;
        }
        out += &s.finish();
        prop_assert_eq!(out, v.deanonymize(&text));
    }
}
