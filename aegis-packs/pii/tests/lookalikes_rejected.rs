//! Each recognizer against strings of its shape that are not its entity — and the real
//! thing in the same sentence, so a test cannot pass by finding nothing. The threshold is
//! the PII guard's default, 0.5.
#![allow(clippy::unwrap_used)]

use aegis_pii::{Analyzer, AnalyzerConfig};

fn found(text: &str) -> Vec<(&'static str, String)> {
    static ANALYZER: std::sync::OnceLock<Analyzer> = std::sync::OnceLock::new();
    ANALYZER
        .get_or_init(|| {
            Analyzer::new(AnalyzerConfig {
                score_threshold: 0.5,
                ..Default::default()
            })
            .unwrap()
        })
        .analyze_resolved(text)
        .into_iter()
        .map(|r| (r.entity, text[r.start..r.end].to_owned()))
        .collect()
}

fn kinds(text: &str) -> Vec<&'static str> {
    found(text).into_iter().map(|(k, _)| k).collect()
}

#[track_caller]
fn nothing_in(text: &str) {
    assert_eq!(found(text), Vec::<(&str, String)>::new(), "{text}");
}

#[track_caller]
fn only(text: &str, kind: &str, value: &str) {
    let found: Vec<(&str, String)> = found(text);
    assert_eq!(found, [(kind, value.to_owned())], "{text}");
}

#[test]
fn card_numbers_failing_luhn_are_not_cards() {
    only(
        "card 4111 1111 1111 1111 ok",
        "CREDIT_CARD",
        "4111 1111 1111 1111",
    );
    nothing_in("card 4111 1111 1111 1112 declined");
    nothing_in("card=4728 0892 9325 7874 status=invalid");
}

#[test]
fn ibans_with_bad_check_digits_are_not_ibans() {
    only(
        "IBAN DE89 3704 0044 0532 0130 00",
        "IBAN_CODE",
        "DE89 3704 0044 0532 0130 00",
    );
    nothing_in("IBAN DE88 3704 0044 0532 0130 00");
}

#[test]
fn ssns_from_never_issued_ranges_are_not_ssns() {
    only("my ssn is 536-22-8726", "US_SSN", "536-22-8726");
    for bad in [
        "958-31-2662",
        "000-12-3456",
        "666-12-3456",
        "536-00-8726",
        "536-22-0000",
    ] {
        nothing_in(&format!("ssn={bad} lookup=failed"));
    }
    nothing_in("invoice 536-22-8726 paid");
}

#[test]
fn version_strings_are_not_ip_addresses_or_dates() {
    only(
        "login from 81.2.69.160 at noon",
        "IP_ADDRESS",
        "81.2.69.160",
    );
    for text in [
        "firmware version 2.4.1.8 installed",
        "build 7.3.97.131 passed",
        "requires python>=3.11.0.243 or later",
        "Upgraded the driver to 6.9.24 last night.",
        "yarn add react@3.3.53",
    ] {
        nothing_in(text);
    }
}

#[test]
fn file_names_are_not_urls() {
    only(
        "see https://docs.example.com/setup for details",
        "URL",
        "https://docs.example.com/setup",
    );
    for name in ["README.md", "setup.py", "main.rs", "deploy.sh"] {
        nothing_in(&format!("edit {name} and rerun the tests"));
    }
}

#[test]
fn a_weak_checksum_alone_does_not_prove_a_bare_number() {
    // 011000015 passes the ABA routing checksum, as one 9-digit number in ten does.
    nothing_in("the code is 011000015 today");
    only(
        "routing number 011000015",
        "ABA_ROUTING_NUMBER",
        "011000015",
    );
    // Aadhaar: Verhoeff passes one number in ten; context makes it one.
    nothing_in("reference 2345 6789 0124 attached");
    only("Aadhaar: 2345 6789 0124", "IN_AADHAAR", "2345 6789 0124");
    nothing_in("Aadhaar: 2345 6789 0125"); // fails Verhoeff
}

#[test]
fn numbers_labelled_as_other_identifiers_are_not_phone_numbers() {
    only(
        "call me on (415) 555-0132",
        "PHONE_NUMBER",
        "(415) 555-0132",
    );
    nothing_in("NHS number: 498-887-4986");
    nothing_in("ISBN 978-3-16-148410-0 (paperback)");
    // An NHS number its checksum proves wins over the phone number of the same shape.
    only("NHS number 943 476 5919", "UK_NHS", "943 476 5919");
}

#[test]
fn a_date_with_birth_context_is_a_date_of_birth() {
    only(
        "The meeting moved to 2024-03-05.",
        "DATE_TIME",
        "2024-03-05",
    );
    only("DOB: 1984-03-05", "DATE_OF_BIRTH", "1984-03-05");
    only(
        "Date of birth: 5 March 1984",
        "DATE_OF_BIRTH",
        "5 March 1984",
    );
    only(
        "The patient, born July 28, 1963, presented",
        "DATE_OF_BIRTH",
        "July 28, 1963",
    );
    only("Geburtsdatum: 05.03.1984", "DATE_OF_BIRTH", "05.03.1984");
    only(
        "Fecha de nacimiento: 5 de marzo de 1984",
        "DATE_OF_BIRTH",
        "5 de marzo de 1984",
    );
    assert_eq!(kinds("Release planned for 12 June 2025."), ["DATE_TIME"]);
}

#[test]
fn passport_numbers_need_passport_context() {
    nothing_in("the code is 340020013 today");
    only(
        "My passport number is 340020013.",
        "US_PASSPORT",
        "340020013",
    );
    only("passport: E92429808", "US_PASSPORT", "E92429808");
}

#[test]
fn digits_inside_longer_numbers_are_not_entities() {
    // A PESEL-shaped run inside a card number, a DEA-shaped run inside an IBAN.
    nothing_in("card=372037130953923 status=invalid");
    nothing_in("IBAN: NL75GYMS2171255570");
    nothing_in("trace 083011110957079576804bbd94e2362acd787df0d07d37dce666e496f18beb6b done");
}

#[test]
fn phone_numbers_in_the_usual_national_and_international_writings_are_found() {
    for number in [
        "+44 (0)20 7946 0958",
        "+49 (0)30 12345678",
        "01 42 68 53 00",
        "01.42.68.53.00",
        "030/12345678",
        "+1 (415) 555-0132",
        "+14155550132",
    ] {
        only(
            &format!("call me on {number} today"),
            "PHONE_NUMBER",
            number,
        );
    }
    // Dates stay dates.
    only("call me on 05.03.2024", "DATE_TIME", "05.03.2024");
}

#[test]
fn urls_keep_their_port_and_bare_ssns_need_context() {
    only(
        "see https://example.com:8443/status for details",
        "URL",
        "https://example.com:8443/status",
    );
    only("my ssn is 536228726", "US_SSN", "536228726");
    nothing_in("the code is 536228726 today");
}
