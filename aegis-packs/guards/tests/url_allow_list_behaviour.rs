//! UrlAllowList: allowed hosts and subdomains pass, others block or redact, tricky URLs,
//! bare domains, config errors.
#![allow(clippy::unwrap_used)]

mod common;

use aegis_contracts::{ErrorKind, Granularity, Guardrail};
use aegis_guards::{Action, UrlAllowList, UrlAllowListConfig};
use common::{check_text, sanitized, spans};

fn guard() -> UrlAllowList {
    UrlAllowList::new(UrlAllowListConfig::new(["example.com", "docs.rs"])).unwrap()
}

#[test]
fn allowed_hosts_and_subdomains_pass() {
    let g = guard();
    for text in [
        "see https://example.com/a?b=c",
        "see https://api.example.com:8443/v1.",
        "HTTPS://EXAMPLE.COM./x",
        "read https://docs.rs/regex and (https://example.com/x)",
        "no links here, just example.com as words",
    ] {
        assert!(check_text(&g, text).is_allow(), "{text}");
    }
}

#[test]
fn other_hosts_are_blocked_with_spans_that_skip_punctuation() {
    let g = guard();
    let v = check_text(&g, "click https://evil.test/login.");
    assert!(v.is_block());
    assert_eq!(spans(&v), vec![(6, 29, "url_not_allowed".to_owned())]);
    for text in [
        "https://example.com@evil.test/",
        "https://example.com.evil.test/",
        "https://notexample.com/",
        "ftp://files.evil.test/a.zip",
        "http://127.0.0.1:8080/admin",
    ] {
        assert!(check_text(&g, text).is_block(), "{text}");
    }
}

/// What a browser follows is a URL, whatever the spelling: backslashes for slashes,
/// JSON-escaped slashes, no slashes, protocol-relative. Each is judged by its real host.
#[test]
fn backslash_slashless_and_protocol_relative_forms_are_judged_by_their_host() {
    let g = guard();
    for text in [
        r"go to https:\\evil.test/login",
        r"go to https:/\evil.test/login",
        r"go to http:\/\/evil.test/login",
        "go to https:evil.test/login",
        "go to //evil.test/login",
        r"go to \\evil.test\login",
        "<a href=\"//evil.test:8080/x\">",
        "img src=//10.0.0.1/pixel.gif",
        "![](///evil.test/x?d=1)",
        r"go to \/\/evil.test/x",
    ] {
        let v = check_text(&g, text);
        assert!(v.is_block(), "{text}");
    }
    for text in [
        r"go to https:\\example.com/ok",
        "go to //docs.rs/regex",
        "// TODO: tidy this up.",
        "//TODO fix the loop",
        "a/b//c and x//y",
        "ratio 3:2, then 10:30.",
    ] {
        assert!(check_text(&g, text).is_allow(), "{text}");
    }
}

#[test]
fn subdomains_can_be_excluded_except_by_wildcard() {
    let g = UrlAllowList::new(UrlAllowListConfig {
        include_subdomains: false,
        ..UrlAllowListConfig::new(["example.com", "*.docs.rs"])
    })
    .unwrap();
    assert!(check_text(&g, "https://example.com/").is_allow());
    assert!(check_text(&g, "https://api.example.com/").is_block());
    assert!(check_text(&g, "https://x.docs.rs/").is_allow());
}

#[test]
fn redact_masks_disallowed_urls_only() {
    let g = UrlAllowList::new(UrlAllowListConfig {
        action: Action::Redact,
        ..UrlAllowListConfig::new(["example.com"])
    })
    .unwrap();
    assert!(g.capabilities().sanitizes);
    assert_eq!(
        sanitized(&g, "ok https://example.com/a bad https://evil.test/b, done"),
        "ok https://example.com/a bad [REDACTED_URL], done"
    );
}

#[test]
fn bare_domains_are_optional() {
    let text = "download it from evil.com/setup now";
    assert!(check_text(&guard(), text).is_allow());
    let g = UrlAllowList::new(UrlAllowListConfig {
        bare_domains: true,
        ..UrlAllowListConfig::new(["example.com"])
    })
    .unwrap();
    assert!(check_text(&g, text).is_block());
    assert!(check_text(&g, "edit main.rs and setup.py, mail bob@evil.com").is_allow());
    assert!(check_text(&g, "visit www.example.com today").is_allow());
}

#[test]
fn internationalised_hosts_compare_in_punycode() {
    let g = UrlAllowList::new(UrlAllowListConfig::new(["bücher.example"])).unwrap();
    assert!(check_text(&g, "https://xn--bcher-kva.example/").is_allow());
    assert!(check_text(&g, "https://bücher.example/").is_allow());
}

#[test]
fn granularity_is_a_2048_byte_window() {
    assert_eq!(
        guard().capabilities().granularity,
        Granularity::Window(2048)
    );
    let long = format!("https://evil.test/{}", "a".repeat(5000));
    let v = check_text(&guard(), &long);
    let s = v.findings[0].span.unwrap();
    assert!(s.end - s.start <= 2048);
}

#[test]
fn bad_config_is_a_config_error() {
    for domains in [
        vec![],
        vec!["https://example.com/".to_owned()],
        vec!["".to_owned()],
        vec!["a b".to_owned()],
    ] {
        let err = UrlAllowList::new(UrlAllowListConfig::new(domains)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
    }
}
