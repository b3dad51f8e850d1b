//! Detectors see a normalized view (NFKC, invisible and format characters removed) with a
//! map back to the original. Property: inserting any number of invisible characters inside a
//! planted secret or e-mail address never hides it from the default detectors (secrets and
//! PII, redacting), and the sanitize edit lands exactly on it — the text around it comes back
//! byte for byte. Full-width forms are caught the same way.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, LazyLock};

use aegis::guard::{GuardChain, GuardEntry};
use aegis::guards::{Action, Secrets, SecretsConfig};
use aegis::pii::{PiiGuard, PiiGuardConfig};
use aegis::{GuardPolicy, GuardSubject, Message, RequestContext};
use proptest::prelude::*;

const SECRET: &str = "ghp_Zq8Xr2LmZ7vTk4NcB9wHs3PfJ6yGd1RaE0uW";
const EMAIL: &str = "jane.doe@example.com";
const INVISIBLE: &[char] = &[
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{2060}',
    '\u{FEFF}',
    '\u{00AD}',
    '\u{180E}',
    '\u{E0041}',
];

/// Built once: compiling the detectors is what takes time.
static CHAIN: LazyLock<GuardChain> = LazyLock::new(chain);

fn chain() -> GuardChain {
    let secrets = SecretsConfig {
        action: Action::Redact,
        ..SecretsConfig::default()
    };
    GuardChain::new(vec![
        GuardEntry::new(
            "pii",
            Arc::new(PiiGuard::new(PiiGuardConfig::default()).unwrap()),
            GuardPolicy::default(),
        ),
        GuardEntry::new(
            "secrets",
            Arc::new(Secrets::new(secrets).unwrap()),
            GuardPolicy::default(),
        ),
    ])
}

/// `value` with invisible characters inserted between its characters at `cuts`.
fn hide(value: &str, cuts: &[(usize, usize)]) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        out.push(*c);
        if i + 1 < chars.len() {
            for &(at, which) in cuts {
                if at % (chars.len() - 1) == i {
                    out.push(INVISIBLE[which % INVISIBLE.len()]);
                }
            }
        }
    }
    out
}

fn judge(text: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let subject = GuardSubject::Input {
        messages: vec![Message::user(text)],
    };
    let out = rt.block_on(CHAIN.check(subject, &RequestContext::default(), &[]));
    match out.subject {
        GuardSubject::Input { messages } => messages[0].text().into_owned(),
        _ => unreachable!(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn invisible_characters_never_hide_a_secret_or_corrupt_its_edit(
        secret_cuts in prop::collection::vec((0usize..64, 0usize..8), 0..12),
        email_cuts in prop::collection::vec((0usize..64, 0usize..8), 0..6),
    ) {
        let (before, middle, after) = ("my token is ", " and write to ", " today.");
        let text = format!("{before}{}{middle}{}{after}", hide(SECRET, &secret_cuts), hide(EMAIL, &email_cuts));
        let judged = judge(&text);
        let visible: String = judged.chars().filter(|c| !INVISIBLE.contains(c)).collect();
        prop_assert!(!visible.contains(SECRET) && !visible.contains("Zq8Xr2"), "{judged:?}");
        prop_assert!(!visible.contains(EMAIL) && !visible.contains("jane.doe"), "{judged:?}");
        // The edits are exact: the text around each finding is untouched.
        prop_assert!(judged.starts_with(before), "{judged:?}");
        prop_assert!(judged.ends_with(after), "{judged:?}");
        prop_assert!(judged.contains(middle), "{judged:?}");
    }
}

#[test]
fn full_width_forms_are_caught_and_the_rest_is_left_as_written() {
    let wide: String = SECRET
        .chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap(),
            c => c,
        })
        .collect();
    let text = format!("ｍｙ key: {wide} — thanks");
    let judged = judge(&text);
    assert!(!judged.contains(&wide), "{judged}");
    assert!(judged.contains("[REDACTED"), "{judged}");
    assert!(
        judged.starts_with("ｍｙ key: ") && judged.ends_with(" — thanks"),
        "{judged}"
    );
}

fn judge_parts(parts: Vec<aegis::ContentPart>) -> Vec<aegis::ContentPart> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut message = Message::user("");
    message.content = Some(aegis::Content::Parts(parts));
    let subject = GuardSubject::Input {
        messages: vec![message],
    };
    let out = rt.block_on(CHAIN.check(subject, &RequestContext::default(), &[]));
    match out.subject {
        GuardSubject::Input { mut messages } => match messages.remove(0).content {
            Some(aegis::Content::Parts(parts)) => parts,
            other => panic!("{other:?}"),
        },
        _ => unreachable!(),
    }
}

fn text(t: &str) -> aegis::ContentPart {
    aegis::ContentPart::Text { text: t.into() }
}

#[test]
fn a_secret_split_across_adjacent_text_parts_is_judged_as_one_text() {
    let (a, b) = SECRET.split_at(15);
    let (c, d) = EMAIL.split_at(6);
    let parts = judge_parts(vec![
        text(&format!("my token is {a}")),
        text(&format!("{b}, mail {c}")),
        text(&format!("{d} today")),
    ]);
    let texts: Vec<&str> = parts.iter().filter_map(|p| p.as_text()).collect();
    // The replacement lands in the part where the value starts; the rest of the value is
    // cut from the parts it spilled into, and the text around it is untouched.
    assert_eq!(
        texts,
        [
            "my token is [REDACTED:github_pat]",
            ", mail <EMAIL_ADDRESS>",
            " today"
        ]
    );
}

#[test]
fn text_parts_with_an_image_between_them_are_not_joined() {
    let image = aegis::ContentPart::ImageUrl {
        image_url: serde_json::json!({"url": "https://example.com/a.png"}),
    };
    let parts = judge_parts(vec![text("call 4111 1111"), image, text("1111 1111 now")]);
    let texts: Vec<&str> = parts.iter().filter_map(|p| p.as_text()).collect();
    assert_eq!(texts, ["call 4111 1111", "1111 1111 now"]);
}
