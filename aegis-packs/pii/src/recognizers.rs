//! The predefined recognizers: Presidio's pattern set rewritten for a linear-time,
//! look-around-free engine.
//!
//! Look-arounds become byte checks around the match ([`Pattern::not_preceded_by`] /
//! [`Pattern::not_followed_by`]); unbounded repetitions carry an explicit
//! [`Pattern::max_len`] so every match is bounded (which is what makes
//! [`Granularity::Window`](aegis_contracts::Granularity::Window) computable). All patterns are
//! matched case-insensitively (Presidio's global `IGNORECASE`) unless they opt out with `(?-i)`.

use crate::validators::{self as v, Check};

/// One regular expression of a recognizer.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Human-readable name (`"Credit card (weak)"`).
    pub name: &'static str,
    /// The expression (regex-automata syntax, bytes mode, ASCII classes).
    pub regex: String,
    /// Base score in `[0, 1]` before validation and context.
    pub score: f32,
    /// Matches longer than this many bytes are discarded. Required when the expression is
    /// unbounded; otherwise the expression's own maximum applies.
    pub max_len: Option<usize>,
    /// The byte before a match must not satisfy this (a negative look-behind).
    pub not_preceded_by: Option<fn(u8) -> bool>,
    /// The byte after a match must not satisfy this (a negative look-ahead).
    pub not_followed_by: Option<fn(u8) -> bool>,
    /// The (up to [`LOOKAHEAD`]) bytes after a match must not satisfy this.
    pub not_followed_by_seq: Option<fn(&[u8]) -> bool>,
}

/// A recognizer: patterns for one entity type, context words and a validator.
#[derive(Debug, Clone)]
pub struct Recognizer {
    /// Name, reported as the finding's detector (`"CreditCardRecognizer"`).
    pub name: &'static str,
    /// The entity type it detects (`"CREDIT_CARD"`).
    pub entity: &'static str,
    /// Its patterns.
    pub patterns: Vec<Pattern>,
    /// Words that raise confidence when they appear shortly before a match (lowercase).
    pub context: &'static [&'static str],
    /// Runs on every match: prove, keep, drop or trim it.
    pub validate: fn(&str) -> Check,
    /// Added to a match's score when a context word precedes it
    /// ([`CONTEXT_BOOST`](crate::CONTEXT_BOOST) unless the recognizer needs its context more).
    pub context_boost: f32,
    /// Text right before a match that rules it out (`version 1.2.3.4` is no IP address).
    pub negative_context: &'static [&'static [NotAfter]],
    /// Whether the validator can prove a match ([`Check::Valid`], score 1.0). When it cannot,
    /// a pattern whose score plus the context boost stays under the threshold never yields a
    /// result, and the analyzer leaves it out of the automaton.
    pub proves: bool,
}

/// Text before a match that says the match is something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAfter {
    /// One of the [`NOT_AFTER_WORDS`] words before the match (case-insensitive, ignoring
    /// punctuation around it).
    Word(&'static str),
    /// These bytes immediately before the match (`>=` before a version).
    Adjacent(&'static str),
    /// A digit and one separator (space, `-`, `.`) right before the match: it is the tail
    /// of a longer group of digits (`4728 0892 9325 7874` holds no phone number).
    DigitGroup,
}

/// How many words before a match [`NotAfter::Word`] looks at.
pub const NOT_AFTER_WORDS: usize = 3;

impl NotAfter {
    /// Whether any of `negative` rules out a match starting at `start` of `hay`. The words
    /// before the match are found once, whatever the number of rules.
    pub fn any_follows(negative: &[&[NotAfter]], hay: &[u8], start: usize) -> bool {
        if negative.iter().all(|n| n.is_empty()) {
            return false;
        }
        let lo = start.saturating_sub(48);
        let mut words: [&[u8]; NOT_AFTER_WORDS] = [&[]; NOT_AFTER_WORDS];
        let mut end = start;
        for slot in &mut words {
            while end > lo && !hay[end - 1].is_ascii_alphanumeric() {
                end -= 1;
            }
            let mut begin = end;
            while begin > lo && hay[begin - 1].is_ascii_alphanumeric() {
                begin -= 1;
            }
            if begin == end {
                break;
            }
            *slot = &hay[begin..end];
            end = begin;
        }
        let digit_group = start >= 2
            && matches!(hay[start - 1], b' ' | b'-' | b'.')
            && hay[start - 2].is_ascii_digit();
        negative.iter().flat_map(|n| n.iter()).any(|n| match n {
            Self::Adjacent(p) => hay[..start].ends_with(p.as_bytes()),
            Self::DigitGroup => digit_group,
            Self::Word(w) => words
                .iter()
                .any(|word| word.len() == w.len() && word.eq_ignore_ascii_case(w.as_bytes())),
        })
    }

    /// Whether this rules out a match starting at `start` of `hay`.
    pub fn follows(&self, hay: &[u8], start: usize) -> bool {
        Self::any_follows(&[std::slice::from_ref(self)], hay, start)
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn is_word_or_colon(b: u8) -> bool {
    is_word(b) || b == b':'
}
fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}
fn is_digit_or_dash(b: u8) -> bool {
    b.is_ascii_digit() || b == b'-'
}
fn is_phone_tail(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// How many bytes after a match a look-ahead may inspect.
pub const LOOKAHEAD: usize = 2;

/// `.` followed by a digit: an IPv6 candidate running into a malformed embedded IPv4.
fn dot_digit(rest: &[u8]) -> bool {
    rest.len() >= 2 && rest[0] == b'.' && rest[1].is_ascii_digit()
}

fn neutral(_: &str) -> Check {
    Check::Neutral
}

fn p(name: &'static str, regex: &str, score: f32) -> Pattern {
    Pattern {
        name,
        regex: regex.to_owned(),
        score,
        max_len: None,
        not_preceded_by: None,
        not_followed_by: None,
        not_followed_by_seq: None,
    }
}

impl Pattern {
    #[allow(dead_code)]
    fn max(mut self, n: usize) -> Self {
        self.max_len = Some(n);
        self
    }
    fn around(mut self, before: fn(u8) -> bool, after: fn(u8) -> bool) -> Self {
        self.not_preceded_by = Some(before);
        self.not_followed_by = Some(after);
        self
    }
    fn after_seq(mut self, f: fn(&[u8]) -> bool) -> Self {
        self.not_followed_by_seq = Some(f);
        self
    }
    fn before(mut self, before: fn(u8) -> bool) -> Self {
        self.not_preceded_by = Some(before);
        self
    }
}

fn r(
    name: &'static str,
    entity: &'static str,
    patterns: Vec<Pattern>,
    context: &'static [&'static str],
    validate: fn(&str) -> Check,
) -> Recognizer {
    Recognizer {
        name,
        entity,
        patterns,
        context,
        validate,
        context_boost: crate::CONTEXT_BOOST,
        negative_context: &[],
        proves: !NEVER_PROVES.contains(&entity),
    }
}

impl Recognizer {
    fn not_after(mut self, negative: &'static [&'static [NotAfter]]) -> Self {
        self.negative_context = negative;
        self
    }
}

/// A number continuing a longer group of digits (`4728 0892 9325 7874` holds no phone number).
const DIGIT_GROUP: &[NotAfter] = &[NotAfter::DigitGroup];

/// Words naming a number as another identifier: `NHS number: 485 777 3456` is no phone
/// number.
const OTHER_IDENTIFIERS: &[NotAfter] = &[
    NotAfter::Word("nhs"),
    NotAfter::Word("ssn"),
    NotAfter::Word("sin"),
    NotAfter::Word("aadhaar"),
    NotAfter::Word("passport"),
    NotAfter::Word("iban"),
    NotAfter::Word("routing"),
    NotAfter::Word("aba"),
    NotAfter::Word("account"),
    NotAfter::Word("acct"),
    NotAfter::Word("itin"),
    NotAfter::Word("nino"),
    NotAfter::Word("medicare"),
    NotAfter::Word("tfn"),
    NotAfter::Word("abn"),
];

/// Words before numbers of documents and goods, not of people: `invoice 925-11-3763` is no
/// SSN.
const DOCUMENT_NUMBERS: &[NotAfter] = &[
    NotAfter::Word("invoice"),
    NotAfter::Word("order"),
    NotAfter::Word("isbn"),
    NotAfter::Word("ticket"),
    NotAfter::Word("tracking"),
    NotAfter::Word("ref"),
    NotAfter::Word("reference"),
    NotAfter::Word("case"),
    NotAfter::Word("serial"),
    NotAfter::Word("sku"),
    NotAfter::Word("part"),
];

/// Words before version numbers and build ids, never before a calendar date or a person's
/// number.
const VERSION_WORDS: &[NotAfter] = &[
    NotAfter::Word("version"),
    NotAfter::Word("versions"),
    NotAfter::Word("ver"),
    NotAfter::Word("build"),
    NotAfter::Word("firmware"),
    NotAfter::Word("driver"),
    NotAfter::Word("upgraded"),
    NotAfter::Word("bumped"),
    NotAfter::Word("sdk"),
    NotAfter::Word("kernel"),
];

/// Words before a version that can also introduce a date (`release 2.4.1.8`, but also
/// `release planned for 12 June`): they rule out IP addresses only.
const RELEASE_WORDS: &[NotAfter] = &[
    NotAfter::Word("release"),
    NotAfter::Word("released"),
    NotAfter::Word("upgrade"),
    NotAfter::Word("bump"),
    NotAfter::Word("tag"),
    NotAfter::Word("patch"),
];

/// Operators of dependency pins and versions (`>=3.11.0.243`, `react@3.3.53`, `v1.2.3.4`).
const VERSION_OPERATORS: &[NotAfter] = &[
    NotAfter::Adjacent(">="),
    NotAfter::Adjacent("<="),
    NotAfter::Adjacent("=="),
    NotAfter::Adjacent("~="),
    NotAfter::Adjacent("^"),
    NotAfter::Adjacent("~"),
    NotAfter::Adjacent("v"),
    NotAfter::Adjacent("@"),
];

/// Entity types whose validator never returns [`Check::Valid`].
const NEVER_PROVES: &[&str] = &[
    "DATE_TIME",
    "ES_PASSPORT",
    "IN_PAN",
    "IN_PASSPORT",
    "IN_VOTER",
    "MAC_ADDRESS",
    "UK_PASSPORT",
    "UK_POSTCODE",
    "URL",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_ITIN",
    "US_PASSPORT",
    "US_SSN",
];

const OCTET: &str = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)";

fn url_pattern(scheme: bool) -> String {
    // The top-level domain is checked against the list by the validator, not spelled out
    // here: 700 alternatives in the automaton cost more to build than all other patterns.
    let scheme = if scheme { r"https?://" } else { "" };
    format!(
        r"\b{scheme}(?:www[0-9]{{0,3}}\.)?[a-z0-9\-]{{1,63}}(?:\.[a-z0-9\-]{{1,63}}){{0,4}}\.[a-z]{{2,24}}\b(?::[0-9]{{1,5}})?(?:/[^\s()<>\x22']{{0,200}})?"
    )
}

/// Month names and abbreviations in seven languages, as a trie-shaped alternation (a
/// generic word here would make every word a candidate start and multiply the lazy DFA's
/// states); the date validator checks the word again.
const MONTH_NAMES: &str = r"(?:jan(?:uary|uar|vier|eiro|uari)?|feb(?:ruary|ruar|rero|braio|ruari)?|f\xc3\xa9vrier|fevrier|fevereiro|mar(?:ch|s|zo|\xc3\xa7o|co|t)?|m\xc3\xa4rz|maerz|maart|apr(?:il|ile)?|avril|abril|may|mayo|mai|maio|maggio|mei|jun(?:e|i|io|ho)?|juin|giugno|jul(?:y|i|io|ho)?|juillet|luglio|aug(?:ust|ustus)?|ao\xc3\xbbt|aout|agosto|sep(?:t|tember|tembre|tiembre)?|setiembre|settembre|setembro|oct(?:ober|obre|ubre)?|okt(?:ober)?|ottobre|outubro|nov(?:ember|embre|iembre)?|novembro|dec(?:ember|embre)?|d\xc3\xa9cembre|dez(?:ember|embro)?|dic(?:iembre|embre)?|enero|gennaio)";

/// Date patterns, each with its base score before `scale`.
fn date_patterns(m12: &str, d31: &str) -> Vec<Pattern> {
    let month = "(?:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)";
    let names = MONTH_NAMES;
    vec![
        p(
            "ISO 8601 datetime",
            r"\b[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?(?:[+\-][0-2][0-9]:[0-5][0-9]|Z)",
            0.8,
        ),
        p(
            "mm/dd/yyyy or mm/dd/yy",
            &format!(r"\b{m12}/{d31}/(?:[0-9]{{4}}|[0-9]{{2}})\b"),
            0.6,
        ),
        p(
            "dd/mm/yyyy or dd/mm/yy",
            &format!(r"\b{d31}/{m12}/(?:[0-9]{{4}}|[0-9]{{2}})\b"),
            0.6,
        ),
        p("yyyy/mm/dd", &format!(r"\b[0-9]{{4}}/{m12}/{d31}\b"), 0.6),
        p("mm-dd-yyyy", &format!(r"\b{m12}-{d31}-[0-9]{{4}}\b"), 0.6),
        p("dd-mm-yyyy", &format!(r"\b{d31}-{m12}-[0-9]{{4}}\b"), 0.6),
        p("yyyy-mm-dd", &format!(r"\b[0-9]{{4}}-{m12}-{d31}\b"), 0.6),
        p(
            "dd.mm.yyyy or dd.mm.yy",
            &format!(r"\b{d31}\.{m12}\.(?:[0-9]{{4}}|[0-9]{{2}})\b"),
            0.6,
        ),
        p(
            "dd-MMM-yyyy or dd-MMM-yy",
            &format!(r"\b{d31}-{month}-(?:[0-9]{{4}}|[0-9]{{2}})\b"),
            0.6,
        ),
        p(
            "d Month yyyy",
            &format!(r"\b{d31}(?:st|nd|rd|th)?\.?(?: of| de)? {names}\.?,?(?: de)? [0-9]{{4}}\b"),
            0.6,
        ),
        p(
            "Month d, yyyy",
            &format!(r"\b{names}\.? {d31}(?:st|nd|rd|th)?,? [0-9]{{4}}\b"),
            0.6,
        ),
        p(
            "MMM-yyyy or MMM-yy",
            &format!(r"\b{month}-(?:[0-9]{{4}}|[0-9]{{2}})\b"),
            0.6,
        ),
        p("dd-MMM", &format!(r"\b{d31}-{month}\b"), 0.6),
        p("mm/yyyy or m/yyyy", &format!(r"\b{m12}/[0-9]{{4}}\b"), 0.2),
        p("mm/yy or m/yy", &format!(r"\b{m12}/[0-9]{{2}}\b"), 0.1),
    ]
}

/// Words that make a date someone's date of birth (lowercase; a context word counts when a
/// word before the date starts with it).
const BIRTH_CONTEXT: &[&str] = &[
    "born",
    "birth",
    "birthday",
    "birthdate",
    "dob",
    "d.o.b",
    "geboren",
    "geburtsdatum",
    "geburtstag",
    "geb.",
    "nacimiento",
    "naci\u{f3}",
    "nacido",
    "nacida",
    "n\u{e9} ",
    "n\u{e9}e",
    "naissance",
    "nata",
    "nato",
    "nascita",
    "nascimento",
    "nasceu",
    "nascido",
    "geboortedatum",
    "urodzony",
    "urodzona",
    "urodzenia",
];

/// Every predefined recognizer, in a stable order.
pub fn predefined() -> Vec<Recognizer> {
    let d31 = "(?:[1-9]|0[1-9]|[1-2][0-9]|3[0-1])";
    let m12 = "(?:[1-9]|0[1-9]|1[0-2])";
    vec![
        r(
            "CreditCardRecognizer",
            "CREDIT_CARD",
            vec![p("All credit cards (weak)", r"\b(?:4[0-9]{3}|5[0-5][0-9]{2}|6[0-9]{3}|1[0-9]{3}|3[0-9]{3})[\- ]?[0-9]{3,4}[\- ]?[0-9]{3,4}[\- ]?[0-9]{3,5}\b", 0.3)],
            &["credit", "card", "visa", "mastercard", "cc ", "amex", "discover", "jcb", "diners", "maestro", "instapayment"],
            v::credit_card,
        ),
        r(
            "CryptoRecognizer",
            "CRYPTO",
            vec![
                p("Bitcoin", r"(?-i:(?:bc1|[13])[a-zA-HJ-NP-Z0-9]{25,59})", 0.5).around(is_alnum, is_alnum),
                p("Ethereum", r"\b0x[0-9a-f]{40}\b", 0.5),
            ],
            &["wallet", "btc", "bitcoin", "crypto", "eth", "ethereum"],
            |s| if s.len() > 2 && s[..2].eq_ignore_ascii_case("0x") { v::eth(s) } else { v::btc(s) },
        ),
        r("DateRecognizer", "DATE_TIME", date_patterns(m12, d31), &["date"], v::date).not_after(&[VERSION_WORDS, VERSION_OPERATORS]),
        Recognizer {
            // A date with birth context. Its patterns alone stay under any useful threshold;
            // the context lifts them above DATE_TIME, which then loses the overlap.
            context_boost: 0.7,
            ..r(
                "DateOfBirthRecognizer",
                "DATE_OF_BIRTH",
                date_patterns(m12, d31)
                    .into_iter()
                    .filter(|p| p.score >= 0.6)
                    .map(|p| Pattern { score: 0.3, ..p })
                    .collect(),
                BIRTH_CONTEXT,
                v::date,
            )
            .not_after(&[VERSION_WORDS, VERSION_OPERATORS])
        },
        r(
            "EmailRecognizer",
            "EMAIL_ADDRESS",
            vec![p(
                "Email (medium)",
                r"\b[a-z0-9!#$%&'*+/=?^_`{|}~\-](?:[a-z0-9!#$%&'*+/=?^_`{|}~.\-]{0,62}[a-z0-9!#$%&'*+/=?^_`{|}~\-])?@[a-z0-9_\-]{1,63}(?:\.[a-z0-9_\-]{1,63}){1,4}\b",
                0.5,
            )],
            &["email"],
            v::email,
        ),
        r(
            "IbanRecognizer",
            "IBAN_CODE",
            vec![p("IBAN generic", r"(?-i:[A-Z]{2}[0-9]{2}(?:[ \-]?[A-Z0-9]{4}){2,7}(?:[ \-]?[A-Z0-9]{1,3})?)", 0.5).around(is_alnum, is_alnum)],
            &["iban", "bank", "transaction"],
            v::iban,
        ),
        r(
            "IpRecognizer",
            "IP_ADDRESS",
            vec![
                p("IPv4", &format!(r"\b{OCTET}\.{OCTET}\.{OCTET}\.{OCTET}(?:/[0-9]{{1,2}})?\b"), 0.6),
                p("IPv6", &format!(r"(?:[0-9a-f]{{1,4}}:|:)(?:[0-9a-f]{{0,4}}:){{1,7}}(?:{OCTET}\.{OCTET}\.{OCTET}\.{OCTET}|[0-9a-f]{{1,4}})?(?:%[0-9a-z]{{1,15}})?(?:/[0-9]{{1,3}})?"), 0.6)
                    .around(is_word_or_colon, is_word_or_colon)
                .after_seq(dot_digit),
            ],
            &["ip", "ipv4", "ipv6"],
            |s| if s.contains(':') { v::ipv6(s) } else { v::ipv4(s) },
        )
        .not_after(&[VERSION_WORDS, RELEASE_WORDS, VERSION_OPERATORS]),
        r(
            "MacAddressRecognizer",
            "MAC_ADDRESS",
            vec![
                p("MAC colon", r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b", 0.6),
                p("MAC dash", r"\b[0-9a-f]{2}(?:-[0-9a-f]{2}){5}\b", 0.6),
                p("MAC Cisco", r"\b[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}\b", 0.6),
            ],
            &["mac", "mac address", "hardware address", "physical address", "ethernet"],
            v::mac,
        ),
        r(
            "PhoneRecognizer",
            "PHONE_NUMBER",
            vec![
                p("Phone (international)", r"(?:\+|\b00)[1-9][0-9]{0,2}(?:[ .\-]?\(?[0-9]{1,4}\)?)(?:[ .\-]?[0-9]{1,5}){1,5}", 0.4)
                    .around(is_word, is_phone_tail),
                p("Phone (North America)", r"(?:\([0-9]{3}\)[ .\-]?|\b[0-9]{3}[ .\-])[0-9]{3}[ .\-][0-9]{4}\b", 0.4).before(is_word),
                p("Phone (national, trunk 0)", r"\b0[1-9][0-9]{1,4}(?:[ \-/][0-9]{2,8}){1,3}\b", 0.4).before(is_word),
                // `01 42 68 53 00`, `01.42.68.53.00`: five pairs (no date has five groups).
                p("Phone (national, trunk 0, pairs)", r"\b0[1-9](?:[ .\-][0-9]{2}){4}\b", 0.4).before(is_word).after_seq(dot_digit),
                p("Phone (national, trunk 0, parenthesised)", r"\(0[1-9][0-9]{1,4}\)[ \-]?[0-9]{3,8}(?:[ \-][0-9]{2,5}){0,2}\b", 0.4),
            ],
            &[
                "phone", "telephone", "cell", "cellphone", "mobile", "call", "tel", "ring", "fax",
                "whatsapp", "text me", "sms", "contact", "telefon", "handy", "t\u{e9}l\u{e9}phone",
                "t\u{e9}l", "portable", "appelez", "appeler", "tel\u{e9}fono", "telefono", "m\u{f3}vil",
                "movil", "ll\u{e1}mame", "llama", "cellulare", "chiamare", "telefone", "celular",
            ],
            v::phone,
        )
        .not_after(&[DIGIT_GROUP, OTHER_IDENTIFIERS, DOCUMENT_NUMBERS]),
        r(
            "UrlRecognizer",
            "URL",
            vec![p("Standard URL", &url_pattern(true), 0.6), p("Non-schema URL", &url_pattern(false), 0.5)],
            &["url", "website", "link"],
            v::url,
        ),
        r(
            "UsSsnRecognizer",
            "US_SSN",
            vec![
                p("SSN1 (very weak)", r"\b[0-9]{5}-[0-9]{4}\b", 0.05),
                p("SSN2 (very weak)", r"\b[0-9]{3}-[0-9]{6}\b", 0.05),
                p("SSN3 (very weak)", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", 0.05),
                p("SSN4 (weak)", r"\b[0-9]{9}\b", 0.2),
                p("SSN5 (medium)", r"\b[0-9]{3}[\- .][0-9]{2}[\- .][0-9]{4}\b", 0.5),
            ],
            // "social" alone also starts Canada's "social insurance number".
            &["social security", "social sec", "soc sec", "ssn", "ssns", "ssn#", "ss#", "ssid"],
            v::us_ssn,
        )
        .not_after(&[DOCUMENT_NUMBERS, VERSION_WORDS]),
        r(
            "UsItinRecognizer",
            "US_ITIN",
            vec![
                p("ITIN (very weak)", r"\b9[0-9]{2}[\- ](?:5[0-9]|6[0-5]|7[0-9]|8[0-8]|9[0-24-9])[0-9]{4}\b|\b9[0-9]{2}(?:5[0-9]|6[0-5]|7[0-9]|8[0-8]|9[0-24-9])[\- ][0-9]{4}\b", 0.05),
                p("ITIN (weak)", r"\b9[0-9]{2}(?:5[0-9]|6[0-5]|7[0-9]|8[0-8]|9[0-24-9])[0-9]{4}\b", 0.3),
                p("ITIN (medium)", r"\b9[0-9]{2}[\- ](?:5[0-9]|6[0-5]|7[0-9]|8[0-8]|9[0-24-9])[\- ][0-9]{4}\b", 0.5),
            ],
            &["individual", "taxpayer", "itin", "tax", "payer", "taxid", "tin"],
            neutral,
        ),
        r(
            "UsBankRecognizer",
            "US_BANK_NUMBER",
            vec![p("Bank account (weak)", r"\b[0-9]{8,17}\b", 0.05)],
            &["check", "account", "account#", "acct", "bank", "save", "debit"],
            neutral,
        ),
        r(
            "UsLicenseRecognizer",
            "US_DRIVER_LICENSE",
            vec![
                p(
                    "Driver license - alphanumeric (weak)",
                    r"\b(?:[A-Z][0-9]{3,6}|[A-Z][0-9]{5,9}|[A-Z][0-9]{6,8}|[A-Z][0-9]{4,8}|[A-Z][0-9]{9,11}|[A-Z]{1,2}[0-9]{5,6}|H[0-9]{8}|V[0-9]{6}|X[0-9]{8}|[A-Z]{2}[0-9]{2,5}|[A-Z]{2}[0-9]{3,7}|[0-9]{2}[A-Z]{3}[0-9]{5,6}|[A-Z][0-9]{13,14}|[A-Z][0-9]{18}|[A-Z][0-9]{6}R|[A-Z][0-9]{9}|[A-Z][0-9]{1,12}|[0-9]{9}[A-Z]|[A-Z]{2}[0-9]{6}[A-Z]|[0-9]{8}[A-Z]{2}|[0-9]{3}[A-Z]{2}[0-9]{4}|[A-Z][0-9][A-Z][0-9][A-Z]|[0-9]{7,8}[A-Z])\b",
                    0.3,
                ),
                p("Driver license - digits (very weak)", r"\b(?:[0-9]{6,14}|[0-9]{16})\b", 0.01),
            ],
            &["driver", "license", "permit", "lic", "identification", "dls", "cdls", "lic#", "driving"],
            neutral,
        ),
        r(
            "UsPassportRecognizer",
            "US_PASSPORT",
            vec![
                p("Passport (weak)", r"\b[0-9]{9}\b", 0.2),
                p("Passport next generation (weak)", r"\b[A-Z][0-9]{8}\b", 0.2),
            ],
            &["passport", "passport#", "passports", "travel document", "reisepass", "pasaporte", "passeport", "passaporto"],
            neutral,
        ),
        r(
            "AbaRoutingRecognizer",
            "ABA_ROUTING_NUMBER",
            vec![
                p("ABA routing number (weak)", r"\b[0123678][0-9]{8}\b", 0.05),
                p("ABA routing number", r"\b[0123678][0-9]{3}-[0-9]{4}-[0-9]\b", 0.3),
            ],
            &["aba", "routing", "abarouting", "association", "bankrouting"],
            v::aba,
        ),
        r(
            "MedicalLicenseRecognizer",
            "MEDICAL_LICENSE",
            vec![p("US DEA certificate number (weak)", r"[abcdefghjklmprstux][a-z][0-9]{7}|[abcdefghjklmprstux]9[0-9]{7}", 0.2).around(is_alnum, is_alnum)],
            &["medical", "certificate", "dea"],
            v::dea,
        ),
        r(
            "UsNpiRecognizer",
            "US_NPI",
            vec![p("NPI (weak)", r"\b[12][0-9]{9}\b", 0.1), p("NPI (weak, grouped)", r"\b[12][0-9]{3}[ \-][0-9]{3}[ \-][0-9]{3}\b", 0.25)],
            &["npi", "national provider", "provider", "npi number", "provider id", "provider identifier", "taxonomy"],
            v::us_npi,
        ),
        r(
            "NhsRecognizer",
            "UK_NHS",
            // Ten digits pass mod-11 one time in eleven (a tenth of all phone numbers do): weak.
            vec![p("NHS (weak)", r"\b[0-9]{3}[\- ]?[0-9]{3}[\- ]?[0-9]{4}\b", 0.25)],
            &["national health service", "nhs", "health services authority", "health authority"],
            v::uk_nhs,
        ),
        r(
            "UkNinoRecognizer",
            "UK_NINO",
            vec![p("NINO (medium)", r"\b[a-ceghj-pr-tw-z][a-ceghj-npr-tw-z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[a-d]\b", 0.5)],
            &["national insurance", "ni number", "nino"],
            v::uk_nino,
        ),
        r(
            "UkPassportRecognizer",
            "UK_PASSPORT",
            vec![p("UK passport (weak)", r"\b[A-Z]{2}[0-9]{7}\b", 0.2)],
            &["passport", "passport number", "travel document", "uk passport", "british passport", "her majesty", "his majesty", "hm passport", "hmpo"],
            neutral,
        ),
        r(
            "EsNifRecognizer",
            "ES_NIF",
            vec![p("NIF", r"\b[0-9]?[0-9]{7}-?[A-Z]\b", 0.5)],
            &["documento nacional de identidad", "dni", "nif", "identificación"],
            v::es_nif,
        ),
        r(
            "EsNieRecognizer",
            "ES_NIE",
            vec![p("NIE", r"\b[X-Z]?[0-9]?[0-9]{7}-?[A-Z]\b", 0.5)],
            &["número de identificación de extranjero", "nie"],
            v::es_nie,
        ),
        r(
            "EsPassportRecognizer",
            "ES_PASSPORT",
            vec![p("ES passport", r"\b[A-Z]{3}[0-9]{6}\b", 0.2)],
            &["pasaporte", "passport", "número de pasaporte", "passport number"],
            neutral,
        ),
        r(
            "ItFiscalCodeRecognizer",
            "IT_FISCAL_CODE",
            vec![p(
                "Fiscal code",
                r"(?:[A-Z][AEIOU][AEIOUX]|[AEIOU]X{2}|[B-DF-HJ-NP-TV-Z]{2}[A-Z]){2}(?:[0-9LMNP-V]{2}(?:[A-EHLMPR-T](?:[04LQ][1-9MNP-V]|[15MR][0-9LMNP-V]|[26NS][0-8LMNP-U])|[DHPS][37PT][0L]|[ACELMRT][37PT][01LM]|[AC-EHLMPR-T][26NS][9V])|(?:[02468LNQSU][048LQU]|[13579MPRTV][26NS])B[26NS][9V])(?:[A-MZ][1-9MNP-V][0-9LMNP-V]{2}|[A-M][0L](?:[1-9MNP-V][0-9LMNP-V]|[0L][1-9MNP-V]))[A-Z]",
                0.3,
            )],
            &["codice fiscale", "cf"],
            v::it_fiscal_code,
        ),
        r(
            "SgFinRecognizer",
            "SG_NRIC_FIN",
            vec![p("NRIC (weak)", r"\b[A-Z][0-9]{7}[A-Z]\b", 0.3), p("NRIC (medium)", r"\b[STFGM][0-9]{7}[A-Z]\b", 0.5)],
            &["fin", "fin#", "nric", "nric#"],
            v::sg_nric,
        ),
        r(
            "AuAbnRecognizer",
            "AU_ABN",
            vec![p("ABN (medium)", r"\b[0-9]{2} [0-9]{3} [0-9]{3} [0-9]{3}\b", 0.1), p("ABN (low)", r"\b[0-9]{11}\b", 0.01)],
            &["australian business number", "abn"],
            v::au_abn,
        ),
        r(
            "AuAcnRecognizer",
            "AU_ACN",
            vec![p("ACN (medium)", r"\b[0-9]{3} [0-9]{3} [0-9]{3}\b", 0.1), p("ACN (low)", r"\b[0-9]{9}\b", 0.01)],
            &["australian company number", "acn"],
            v::au_acn,
        ),
        r(
            "AuTfnRecognizer",
            "AU_TFN",
            vec![p("TFN (medium)", r"\b[0-9]{3} [0-9]{3} [0-9]{3}\b", 0.1), p("TFN (low)", r"\b[0-9]{9}\b", 0.01)],
            &["tax file number", "tfn"],
            v::au_tfn,
        ),
        r(
            "AuMedicareRecognizer",
            "AU_MEDICARE",
            vec![p("Medicare (medium)", r"\b[2-6][0-9]{3} [0-9]{5} [0-9]\b", 0.1), p("Medicare (low)", r"\b[2-6][0-9]{9}\b", 0.01)],
            &["medicare"],
            v::au_medicare,
        ),
        r(
            "InPanRecognizer",
            "IN_PAN",
            vec![
                p("PAN (high)", r"\b[A-Z]{3}[ABCFGHJLPT][A-Z][0-9]{4}[A-Z]\b", 0.5),
                p("PAN (medium)", r"\b[A-Z]{5}[0-9]{4}[A-Z]\b", 0.1),
            ],
            &["permanent account number", "pan"],
            neutral,
        ),
        r(
            "InAadhaarRecognizer",
            "IN_AADHAAR",
            vec![
                p("Aadhaar (very weak)", r"\b[0-9]{12}\b", 0.01),
                p("Aadhaar separated (very weak)", r"\b[0-9]{4}[\- :][0-9]{4}[\- :][0-9]{4}\b", 0.01).around(is_digit_or_dash, is_digit_or_dash),
            ],
            &["aadhaar", "aadhar", "uidai", "uid"],
            v::in_aadhaar,
        ),
        r(
            "InVoterRecognizer",
            "IN_VOTER",
            vec![p("Voter (medium)", r"\b[A-Z][ABCDGHJKMNPRSY][A-Z][0-9]{7}\b", 0.4), p("Voter (weak)", r"\b[A-Z]{3}[0-9]{7}\b", 0.3)],
            &["voter", "epic", "elector photo identity card"],
            neutral,
        ),
        r(
            "InPassportRecognizer",
            "IN_PASSPORT",
            vec![p("Passport", r"\b[A-Z][1-9][0-9] ?[0-9]{4}[1-9]\b", 0.2)],
            &["passport", "indian passport", "passport number"],
            neutral,
        ),
        r(
            "PlPeselRecognizer",
            "PL_PESEL",
            vec![p("PESEL", r"[0-9]{2}(?:[02468][1-9]|[13579][012])(?:0[1-9]|1[0-9]|2[0-9]|3[01])[0-9]{5}", 0.4).around(is_alnum, is_alnum)],
            &["pesel"],
            v::pl_pesel,
        ),
        r(
            "FiPersonalIdentityCodeRecognizer",
            "FI_PERSONAL_IDENTITY_CODE",
            vec![
                p("Finnish personal identity code (medium)", r"\b[0-9]{6}[\-+ABCDEFYXWVU][0-9]{3}[0-9ABCDEFHJKLMNPRSTUVWXY]\b", 0.5),
                p("Finnish personal identity code (very weak)", r"[0-9]{6}[\-+ABCDEFYXWVU][0-9]{3}[0-9ABCDEFHJKLMNPRSTUVWXY]", 0.1),
            ],
            &["hetu", "henkilötunnus", "personbeteckningen", "personal identity code"],
            v::fi_pic,
        ),
        r(
            "KrRrnRecognizer",
            "KR_RRN",
            vec![p("RRN (medium)", r"[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])-?[1-4][0-9]{6}", 0.5).around(is_digit, is_digit)],
            &["korean rrn", "korean resident registration number", "resident registration number", "rrn", "rrn#"],
            v::kr_rrn,
        ),
        r(
            "CaSinRecognizer",
            "CA_SIN",
            vec![p("SIN (weak)", r"\b[1-79][0-9]{8}\b", 0.05), p("SIN (weak, grouped)", r"\b[1-79][0-9]{2}[\- ][0-9]{3}[\- ][0-9]{3}\b", 0.25)],
            &["sin", "sin number", "social insurance", "social insurance number", "canada", "nas", "numéro nas", "numéro d'assurance sociale", "assurance sociale"],
            v::ca_sin,
        ),
        r(
            "SePersonnummerRecognizer",
            "SE_PERSONNUMMER",
            vec![
                p("Swedish personnummer (medium)", r"\b[0-9]{6}(?:[0-9]{2})?[\-+]?[0-9]{4}\b", 0.5),
            ],
            &["personnummer", "svenskt personnummer", "svensk id", "ssn", "personal identity number", "samordningsnummer"],
            v::se_personnummer,
        ),
        r(
            "ZaIdNumberRecognizer",
            "ZA_ID_NUMBER",
            vec![p("South African ID number", r"\b[0-9]{10}[0-2][89][0-9]\b", 0.2)],
            &["id", "identity", "identity number", "id number", "south african id", "rsa id", "smart id", "national id"],
            v::za_id,
        ),
        r(
            "TrNationalIdRecognizer",
            "TR_NATIONAL_ID",
            vec![p("TR national id", r"\b[1-9][0-9]{10}\b", 0.3)],
            &["tc kimlik", "kimlik no", "kimlik numarası", "tckn", "tc no", "nüfus cüzdanı", "national id", "turkish id", "türk kimlik"],
            v::tr_national_id,
        ),
        r(
            "ThTninRecognizer",
            "TH_TNIN",
            vec![p("TNIN (medium)", r"\b[1-9](?:[134][0-9]|2[0-7]|5[0-8]|[67][0-7]|[89][0-6])[0-9]{10}\b", 0.5)],
            &["thai national id", "thai id number", "tnin", "เลขประจำตัวประชาชน", "เลขบัตรประชาชน", "รหัสปชช"],
            v::th_tnin,
        ),
        r(
            "UkPostcodeRecognizer",
            "UK_POSTCODE",
            vec![p(
                "UK postcode",
                r"\b(?:GIR ?0AA|[A-PR-UWYZ][0-9][ABCDEFGHJKPSTUW]? ?[0-9][ABD-HJLNP-UW-Z]{2}|[A-PR-UWYZ][0-9]{2} ?[0-9][ABD-HJLNP-UW-Z]{2}|[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY]? ?[0-9][ABD-HJLNP-UW-Z]{2}|[A-PR-UWYZ][A-HK-Y][0-9]{2} ?[0-9][ABD-HJLNP-UW-Z]{2})\b",
                0.1,
            )],
            &["postcode", "post code", "postal code", "zip", "address", "delivery", "mailing", "shipping", "correspondence"],
            neutral,
        ),
    ]
}
