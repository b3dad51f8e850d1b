//! Each validator accepts known-valid identifiers and rejects corrupted ones.
#![allow(clippy::unwrap_used)]

use aegis_pii::validators::{self as v, Check};

fn valid(c: Check) -> bool {
    matches!(c, Check::Valid | Check::Trim { valid: true, .. })
}

#[test]
fn luhn_credit_cards() {
    for ok in [
        "4111111111111111",
        "4012-8888-8888-1881",
        "5555 5555 5555 4444",
        "378282246310005",
    ] {
        assert!(valid(v::credit_card(ok)), "{ok}");
    }
    for bad in ["4111111111111112", "1234567890123"] {
        assert_eq!(v::credit_card(bad), Check::Invalid, "{bad}");
    }
}

#[test]
fn iban_mod97_and_country_layout() {
    assert!(valid(v::iban("DE89370400440532013000")));
    assert!(valid(v::iban("GB82 WEST 1234 5698 7654 32")));
    assert_eq!(v::iban("DE89370400440532013001"), Check::Invalid);
    // Right checksum, wrong layout for the country (letter where GB needs digits).
    assert_eq!(v::iban("XX00123412341234"), Check::Invalid);
    // Trailing noise is trimmed off.
    assert!(matches!(
        v::iban("DE89 3704 0044 0532 0130 00 12"),
        Check::Trim { valid: true, .. }
    ));
}

#[test]
fn us_ssn_invalid_ranges() {
    assert_eq!(v::us_ssn("078-05-1123"), Check::Neutral);
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "123-00-4567",
        "123-45-0000",
        "111-11-1111",
        "123-45.6789",
        "078051120",
    ] {
        assert_eq!(v::us_ssn(bad), Check::Invalid, "{bad}");
    }
}

#[test]
fn uk_nhs_mod11() {
    assert_eq!(v::uk_nhs("401 023 2137"), Check::Valid);
    assert_eq!(v::uk_nhs("401 023 2138"), Check::Invalid);
}

#[test]
fn spanish_nif_and_nie_letters() {
    assert_eq!(v::es_nif("12345678Z"), Check::Valid);
    assert_eq!(v::es_nif("12345678A"), Check::Invalid);
    assert_eq!(v::es_nie("X1234567L"), Check::Valid);
    assert_eq!(v::es_nie("X1234567A"), Check::Invalid);
}

#[test]
fn italian_fiscal_code_check_char() {
    assert_eq!(v::it_fiscal_code("RSSMRA85T10A562S"), Check::Valid);
    assert_eq!(v::it_fiscal_code("RSSMRA85T10A562T"), Check::Neutral);
}

#[test]
fn singapore_nric_checksum() {
    assert_eq!(v::sg_nric("S1234567D"), Check::Valid);
    assert_eq!(v::sg_nric("S1234567A"), Check::Neutral);
}

#[test]
fn australian_numbers() {
    assert_eq!(v::au_abn("51 824 753 556"), Check::Valid);
    assert_eq!(v::au_abn("51 824 753 557"), Check::Invalid);
    assert_eq!(v::au_acn("004 085 616"), Check::Valid);
    assert_eq!(v::au_acn("004 085 617"), Check::Invalid);
    assert_eq!(v::au_tfn("123 456 782"), Check::Valid);
    assert_eq!(v::au_tfn("123 456 783"), Check::Invalid);
    assert_eq!(v::au_medicare("2123 45670 1"), Check::Valid);
    assert_eq!(v::au_medicare("2123 45671 1"), Check::Invalid);
}

#[test]
fn aadhaar_verhoeff() {
    assert_eq!(
        v::in_aadhaar("3122 8856 9108"),
        Check::from_bool(v::verhoeff("312288569108"))
    );
    assert!(v::verhoeff("2363"));
    assert!(!v::verhoeff("2364"));
    assert_eq!(v::in_aadhaar("1234 5678 9012"), Check::Invalid);
}

#[test]
fn bitcoin_base58check_and_bech32() {
    assert_eq!(v::btc("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"), Check::Valid);
    assert_eq!(v::btc("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"), Check::Invalid);
    assert_eq!(
        v::btc("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
        Check::Valid
    );
    assert_eq!(
        v::btc("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
        Check::Invalid
    );
}

#[test]
fn ip_addresses() {
    assert_eq!(v::ipv4("192.168.0.1"), Check::Neutral);
    assert_eq!(v::ipv4("10.0.0.0/8"), Check::Neutral);
    assert_eq!(v::ipv4("192.168.01.1"), Check::Invalid);
    assert_eq!(v::ipv6("2001:db8::1"), Check::Neutral);
    assert_eq!(v::ipv6("zz::"), Check::Invalid);
    assert_eq!(v::ipv6("fe80::1%eth0"), Check::Neutral);
}

#[test]
fn other_national_ids() {
    assert_eq!(v::pl_pesel("44051401359"), Check::Valid);
    assert_eq!(v::pl_pesel("44051401358"), Check::Invalid);
    assert_eq!(v::fi_pic("131052-308T"), Check::Valid);
    assert_eq!(v::fi_pic("131052-308U"), Check::Invalid);
    assert_eq!(v::aba("011000015"), Check::Valid);
    assert_eq!(v::aba("011000016"), Check::Invalid);
    assert_eq!(v::us_npi("1245319599"), Check::Valid);
    assert_eq!(v::us_npi("1245319598"), Check::Invalid);
}

#[test]
fn phone_numbers_are_validated_against_each_countrys_numbering_plan() {
    // With a country code: valid for that country proves it, anything else is dropped.
    assert_eq!(v::phone("+44 20 7946 0958"), Check::Valid);
    assert_eq!(v::phone("+49 30 12345678"), Check::Valid);
    assert_eq!(v::phone("+33 6 12 34 56 78"), Check::Valid);
    assert_eq!(v::phone("+91 98765 43210"), Check::Valid);
    assert_eq!(v::phone("0044 20 7946 0958"), Check::Valid);
    assert_eq!(v::phone("+999 1234 5678"), Check::Invalid); // no such country code
    assert_eq!(v::phone("+44 20 7946 095"), Check::Invalid); // a digit short for London
    assert_eq!(v::phone("+1 123 555 0100"), Check::Invalid); // NANP area codes never start 1
    // Without one: likely when a common plan accepts it, else the pattern's score stands.
    assert_eq!(v::phone("(415) 555-0132"), Check::Likely);
    assert_eq!(v::phone("020 7946 0958"), Check::Likely);
    assert_eq!(v::phone("0151 23456789"), Check::Likely);
    assert_eq!(v::phone("123-456-7890"), Check::Neutral);
    assert_eq!(v::phone("12-34"), Check::Invalid); // too few digits for any plan
}
