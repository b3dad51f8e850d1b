//! Entity values from format rules and check digits, and look-alikes that break exactly one
//! rule. Implemented here from the published specifications, independently of the
//! detectors' own validators.

use crate::rng::{Rng, text};

/// Luhn check digit for `body`.
pub fn luhn_digit(body: &[u32]) -> u32 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// `check` when `valid`, else one of the nine wrong digits.
fn digit_or_wrong(r: &mut Rng, check: u32, valid: bool) -> u32 {
    if valid {
        check
    } else {
        (check + r.range(1, 9)) % 10
    }
}

fn group(s: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    for &n in sizes {
        out.push(&s[i..i + n]);
        i += n;
    }
    out.join(sep)
}

/// A card number: Visa, Mastercard, Amex or Discover, Luhn-valid (`valid`) or off by one in
/// the check digit.
pub fn card(r: &mut Rng, valid: bool) -> String {
    let (prefix, len): (Vec<u32>, usize) = match r.below(5) {
        0 | 1 => (vec![4], 16),
        2 => (vec![5, r.range(1, 5)], 16),
        3 => (vec![3, *r.pick(&[4, 7])], 15),
        _ => (vec![6, 0, 1, 1], 16),
    };
    let mut d = prefix;
    d.extend(r.digits(len - 1 - d.len()));
    let check = luhn_digit(&d);
    d.push(digit_or_wrong(r, check, valid));
    let s = text(&d);
    let sizes: &[usize] = if len == 15 { &[4, 6, 5] } else { &[4, 4, 4, 4] };
    match r.below(3) {
        0 => s,
        1 => group(&s, sizes, " "),
        _ => group(&s, sizes, "-"),
    }
}

fn mod97(s: &str) -> u32 {
    let mut rem = 0u64;
    for c in s.chars() {
        let v = c.to_digit(36).unwrap_or(0) as u64;
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem as u32
}

/// An IBAN of a common country with correct (`valid`) or wrong check digits.
pub fn iban(r: &mut Rng, valid: bool) -> String {
    const DIGITS: &[u8] = b"0123456789";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let (cc, bban) = match r.below(6) {
        0 => ("DE", r.chars(DIGITS, 18)),
        1 => (
            "GB",
            format!("{}{}", r.chars(UPPER, 4), r.chars(DIGITS, 14)),
        ),
        2 => ("FR", r.chars(DIGITS, 23)),
        3 => ("ES", r.chars(DIGITS, 20)),
        4 => (
            "NL",
            format!("{}{}", r.chars(UPPER, 4), r.chars(DIGITS, 10)),
        ),
        _ => (
            "IT",
            format!("{}{}", r.chars(UPPER, 1), r.chars(DIGITS, 22)),
        ),
    };
    let check = 98 - mod97(&format!("{bban}{cc}00"));
    let check = if valid {
        check
    } else {
        (check + r.range(1, 50)) % 97 + 2
    };
    let compact = format!("{cc}{check:02}{bban}");
    if r.chance(0.5) {
        compact
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        compact
    }
}

/// A US SSN in an issued range (`valid`), or one in a range never issued (9xx, 000, 666,
/// group 00, serial 0000) whose middle group also rules out an ITIN.
pub fn ssn(r: &mut Rng, valid: bool) -> String {
    let (a, g, s) = if valid {
        let mut a = r.range(1, 899);
        if a == 666 {
            a = 667;
        }
        (a, r.range(1, 99), r.range(1, 9999))
    } else {
        match r.below(4) {
            0 => (r.range(900, 999), r.range(10, 49), r.range(1, 9999)),
            1 => (0, r.range(1, 99), r.range(1, 9999)),
            2 => (666, r.range(1, 99), r.range(1, 9999)),
            _ => (r.range(1, 665), 0, r.range(1, 9999)),
        }
    };
    let sep = if r.chance(0.85) { "-" } else { " " };
    format!("{a:03}{sep}{g:02}{sep}{s:04}")
}

/// A US ITIN: 9xx, middle group 50–65, 70–88, 90–92 or 94–99.
pub fn itin(r: &mut Rng) -> String {
    let mid = *r.pick(&[50, 57, 63, 65, 70, 78, 88, 90, 92, 94, 99]);
    format!("9{:02}-{mid}-{:04}", r.range(0, 99), r.range(0, 9999))
}

/// A public-looking IPv4 or IPv6 address.
pub fn ip(r: &mut Rng) -> String {
    if r.chance(0.7) {
        format!(
            "{}.{}.{}.{}",
            r.range(11, 223),
            r.range(0, 255),
            r.range(0, 255),
            r.range(1, 254)
        )
    } else {
        let groups: Vec<String> = (0..8)
            .map(|_| format!("{:x}", r.range(0, 0xffff)))
            .collect();
        if r.chance(0.5) {
            format!("2001:db8:{}::{}", groups[2], groups[7])
        } else {
            format!("2a02:{}", groups[1..].join(":"))
        }
    }
}

/// A MAC address, colon- or dash-separated.
pub fn mac(r: &mut Rng) -> String {
    let sep = if r.chance(0.6) { ":" } else { "-" };
    let mut octets: Vec<String> = (0..6).map(|_| format!("{:02x}", r.range(0, 255))).collect();
    octets[0] = format!("{:02x}", r.range(1, 254) & 0xfe);
    let s = octets.join(sep);
    if r.chance(0.4) { s.to_uppercase() } else { s }
}

const FIRST: &[&str] = &[
    "maria", "jon", "li", "fatima", "olu", "sven", "priya", "diego", "anna", "kenji", "noor",
    "pierre", "zoe", "rahul", "ines", "tomasz",
];
const LAST: &[&str] = &[
    "garcia",
    "smith",
    "chen",
    "okafor",
    "lindqvist",
    "sharma",
    "rossi",
    "novak",
    "mueller",
    "dubois",
    "tanaka",
    "haddad",
    "kowalski",
    "silva",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp-mail.io",
    "uni-berlin.de",
    "post.co.uk",
    "fastmail.fm",
    "outlook.fr",
    "empresa.es",
    "studio.design",
];

/// An e-mail address.
pub fn email(r: &mut Rng) -> String {
    let f = r.pick(FIRST);
    let l = r.pick(LAST);
    let local = match r.below(5) {
        0 => format!("{f}.{l}"),
        1 => format!("{f}{}", r.range(1, 99)),
        2 => format!("{}{l}", &f[..1]),
        3 => format!("{f}_{l}+billing"),
        _ => format!("{l}.{f}"),
    };
    format!("{local}@{}", r.pick(DOMAINS))
}

/// A URL with a scheme, or a bare `www.` host.
pub fn url(r: &mut Rng) -> String {
    let host = r.pick(&[
        "shop.example.com",
        "docs.acme-corp.io",
        "www.stadtwerke-muenster.de",
        "portal.hospital.org",
        "intranet.example.net",
        "files.company.co.uk",
    ]);
    let path = r.pick(&[
        "",
        "/account/settings",
        "/patients/48213/records",
        "/share/abc123?token=view",
        "/login?next=%2Fhome",
        "/reports/2024/q3.pdf",
    ]);
    if r.chance(0.8) {
        format!("{}://{host}{path}", r.pick(&["https", "http"]))
    } else {
        format!(
            "www.{}{path}",
            host.split_once('.').map_or(*host, |(_, d)| d)
        )
    }
}

const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A calendar date in one of the usual written formats. `past` draws a birth year.
pub fn date(r: &mut Rng, past: bool) -> String {
    let y = if past {
        r.range(1935, 2006)
    } else {
        r.range(2019, 2027)
    };
    let m = r.range(1, 12);
    let d = r.range(1, 28);
    match r.below(6) {
        0 => format!("{y}-{m:02}-{d:02}"),
        1 => format!("{m:02}/{d:02}/{y}"),
        2 => format!("{d:02}.{m:02}.{y}"),
        3 => format!("{d} {} {y}", MONTHS[m as usize - 1]),
        4 => format!("{} {d}, {y}", MONTHS[m as usize - 1]),
        _ => format!("{d:02}/{m:02}/{y}"),
    }
}

/// A US passport number: nine digits, or a letter and eight digits (next generation).
pub fn us_passport(r: &mut Rng) -> String {
    if r.chance(0.5) {
        format!("{}{}", r.range(1, 9), text(&r.digits(8)))
    } else {
        format!(
            "{}{}",
            r.chars(b"ABCDEFGHJKLMNPRSTUVWXZ", 1),
            text(&r.digits(8))
        )
    }
}

const VERHOEFF_D: [[u32; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u32; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];
const VERHOEFF_INV: [u32; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// Verhoeff check digit for `body`.
pub fn verhoeff_digit(body: &[u32]) -> u32 {
    let mut c = 0;
    for (i, &d) in body.iter().rev().enumerate() {
        c = VERHOEFF_D[c as usize][VERHOEFF_P[(i + 1) % 8][d as usize] as usize];
    }
    VERHOEFF_INV[c as usize]
}

/// An Aadhaar number: 12 digits, first 2–9, Verhoeff check digit (or a wrong one).
pub fn aadhaar(r: &mut Rng, valid: bool) -> String {
    let mut d = vec![r.range(2, 9)];
    d.extend(r.digits(10));
    let check = verhoeff_digit(&d);
    d.push(digit_or_wrong(r, check, valid));
    let s = text(&d);
    if r.chance(0.6) {
        group(&s, &[4, 4, 4], " ")
    } else {
        s
    }
}

/// An Indian PAN: five letters (the fourth a holder type), four digits, a letter.
pub fn pan(r: &mut Rng) -> String {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    format!(
        "{}{}{}{}{}",
        r.chars(UPPER, 3),
        r.chars(b"PCHFATBLJG", 1),
        r.chars(UPPER, 1),
        text(&r.digits(4)),
        r.chars(UPPER, 1)
    )
}

/// A UK NHS number: 10 digits, mod-11 check digit (or a wrong one), often grouped 3-3-4.
pub fn nhs(r: &mut Rng, valid: bool) -> String {
    loop {
        let d = {
            let mut d = vec![r.range(4, 9)];
            d.extend(r.digits(8));
            d
        };
        let total: u32 = d.iter().enumerate().map(|(i, x)| x * (10 - i as u32)).sum();
        let check = (11 - total % 11) % 11;
        if check == 10 {
            continue;
        }
        let mut d = d;
        d.push(digit_or_wrong(r, check, valid));
        let s = text(&d);
        return match r.below(3) {
            0 => s,
            1 => group(&s, &[3, 3, 4], " "),
            _ => group(&s, &[3, 3, 4], "-"),
        };
    }
}

/// A UK National Insurance number (valid prefix, or one never issued).
pub fn nino(r: &mut Rng, valid: bool) -> String {
    let prefix = if valid {
        r.pick(&["AB", "CE", "JK", "PR", "SW", "TY", "HM", "LE", "ZX", "WP"])
            .to_string()
    } else {
        r.pick(&["BG", "GB", "NK", "KN", "TN", "NT", "ZZ", "DA", "FY", "QQ"])
            .to_string()
    };
    let d = text(&r.digits(6));
    let suffix = r.chars(b"ABCD", 1);
    if r.chance(0.5) {
        format!("{prefix} {} {} {} {suffix}", &d[..2], &d[2..4], &d[4..])
    } else {
        format!("{prefix}{d}{suffix}")
    }
}

/// An ABA routing number: 3-7-1 checksum (or a broken one).
pub fn aba(r: &mut Rng, valid: bool) -> String {
    let mut d = vec![0, r.range(1, 9)];
    if r.chance(0.5) {
        d = vec![r.range(1, 3), r.range(0, 2)];
        if d[0] == 3 {
            d[1] = r.range(0, 2);
        }
    }
    d.extend(r.digits(6));
    let w = [3, 7, 1, 3, 7, 1, 3, 7];
    let sum: u32 = d.iter().zip(w).map(|(x, w)| x * w).sum();
    let check = (10 - sum % 10) % 10;
    d.push(digit_or_wrong(r, check, valid));
    text(&d)
}

/// A Spanish NIF: eight digits and the control letter (or a wrong letter).
pub fn nif(r: &mut Rng, valid: bool) -> String {
    const LETTERS: &[u8] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let n = r.range(10_000_000, 99_999_999);
    let i = n as usize % 23;
    let letter = if valid {
        LETTERS[i]
    } else {
        LETTERS[(i + r.range(1, 22) as usize) % 23]
    };
    format!("{n}{}", letter as char)
}

/// A Canadian SIN: nine digits, Luhn-valid (or not), grouped 3-3-3.
pub fn sin(r: &mut Rng, valid: bool) -> String {
    let mut d = vec![*r.pick(&[1, 2, 3, 4, 5, 6, 7, 9])];
    d.extend(r.digits(7));
    let check = luhn_digit(&d);
    d.push(digit_or_wrong(r, check, valid));
    let s = text(&d);
    let sep = *r.pick(&[" ", "-", ""]);
    group(&s, &[3, 3, 3], sep)
}

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn base58(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = Vec::new();
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(digits.iter().rev().map(|d| BASE58[*d as usize] as char))
        .collect()
}

/// A legacy (P2PKH) Bitcoin address with a correct (or corrupted) Base58Check checksum.
pub fn bitcoin(r: &mut Rng, valid: bool) -> String {
    use sha2::{Digest, Sha256};
    let mut payload = vec![0u8];
    payload.extend((0..20).map(|_| r.range(0, 255) as u8));
    let sum = Sha256::digest(Sha256::digest(&payload));
    payload.extend_from_slice(&sum[..4]);
    if !valid {
        let last = payload.len() - 1;
        payload[last] ^= 0x5a;
    }
    base58(&payload)
}

/// A phone number in the national or international format of one of twelve countries.
pub fn phone(r: &mut Rng) -> String {
    let d = |r: &mut Rng, n: usize| text(&r.digits(n));
    match r.below(12) {
        0 => {
            // NANP: NXX-NXX-XXXX.
            let area = *r.pick(&[201, 212, 305, 312, 415, 503, 617, 646, 702, 713, 818, 929]);
            let ex = r.range(200, 999);
            let line = d(r, 4);
            match r.below(4) {
                0 => format!("({area}) {ex}-{line}"),
                1 => format!("{area}-{ex}-{line}"),
                2 => format!("+1 {area} {ex} {line}"),
                _ => format!("{area}.{ex}.{line}"),
            }
        }
        1 => match r.below(3) {
            0 => format!("+44 20 7946 {}", d(r, 4)),
            1 => format!("+44 (0)20 7946 {}", d(r, 4)),
            _ => format!("07700 900{}", d(r, 3)),
        },
        2 => match r.below(3) {
            0 => format!("+49 30 {}{}", r.range(2, 9), d(r, 7)),
            1 => format!("030/{}{}", r.range(2, 9), d(r, 7)),
            _ => format!("0151 {}{}", r.range(1, 9), d(r, 7)),
        },
        3 => {
            let a = r.range(1, 7);
            let rest = format!("{} {} {} {}", d(r, 2), d(r, 2), d(r, 2), d(r, 2));
            match r.below(3) {
                0 => format!("+33 {a} {rest}"),
                1 => format!("0{a} {rest}"),
                _ => format!("0{a}.{}", rest.replace(' ', ".")),
            }
        }
        4 => format!("+91 9{} {}", d(r, 4), d(r, 5)),
        5 => format!("+34 6{} {} {}", d(r, 2), d(r, 3), d(r, 3)),
        6 => format!("+39 06 {}{} {}", r.range(1, 9), d(r, 3), d(r, 4)),
        7 => {
            if r.chance(0.5) {
                format!("+61 2 9{} {}", d(r, 3), d(r, 4))
            } else {
                format!("0412 {} {}", d(r, 3), d(r, 3))
            }
        }
        8 => format!("+81 3-{}{}-{}", r.range(2, 9), d(r, 3), d(r, 4)),
        9 => format!("+55 11 9{}{}-{}", r.range(6, 9), d(r, 3), d(r, 4)),
        10 => format!("+31 6 {}{}", r.range(1, 5), d(r, 7)),
        _ => format!("+353 87 {}{} {}", r.range(2, 9), d(r, 2), d(r, 4)),
    }
}

/// Phone-shaped strings that are not phone numbers: ISBNs, invalid North American numbers,
/// too-short or too-long digit groups, order numbers.
pub fn phone_lookalike(r: &mut Rng) -> String {
    match r.below(4) {
        0 => format!("+1 {}{} 555 0100", r.range(0, 1), r.range(10, 99)),
        1 => format!(
            "978-{}-{}-{}-{}",
            r.range(0, 9),
            r.range(10, 99),
            r.range(100_000, 999_999),
            r.range(0, 9)
        ),
        2 => format!("+{} {}", r.range(1, 9), r.range(10, 99)),
        _ => format!("{}-{}", r.range(10, 99), r.range(100, 999)),
    }
}

/// Hex digests, git commit ids and UUIDs.
pub fn digest(r: &mut Rng) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    match r.below(3) {
        0 => r.chars(HEX, 40),
        1 => r.chars(HEX, 64),
        _ => format!(
            "{}-{}-4{}-a{}-{}",
            r.chars(HEX, 8),
            r.chars(HEX, 4),
            r.chars(HEX, 3),
            r.chars(HEX, 3),
            r.chars(HEX, 12)
        ),
    }
}

/// Version strings, some shaped like dotted quads.
pub fn version(r: &mut Rng) -> String {
    match r.below(4) {
        0 => format!("{}.{}.{}", r.range(0, 20), r.range(0, 40), r.range(0, 99)),
        1 => format!(
            "v{}.{}.{}-rc.{}",
            r.range(0, 9),
            r.range(0, 30),
            r.range(0, 9),
            r.range(1, 5)
        ),
        2 => format!(
            "{}.{}.{}.{}",
            r.range(1, 12),
            r.range(0, 9),
            r.range(0, 99),
            r.range(100, 250)
        ),
        _ => format!(
            "{}.{}.{}",
            r.range(2019, 2026),
            r.range(1, 12),
            r.range(1, 9)
        ),
    }
}

/// A random credential body of `n` characters from `alphabet`.
pub fn token(r: &mut Rng, alphabet: &[u8], n: usize) -> String {
    r.chars(alphabet, n)
}

/// Upper and lower case letters and digits.
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_check_digits_follow_the_published_rules() {
        // Known-good numbers from the specifications.
        assert_eq!(luhn_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
        assert_eq!(verhoeff_digit(&[2, 3, 6]), 3);
        assert_eq!(mod97("370400440532013000DE89"), 1);
        let mut r = Rng::new(7);
        for _ in 0..50 {
            let i = iban(&mut r, true).replace(' ', "");
            let rearranged = format!("{}{}", &i[4..], &i[..4]);
            assert_eq!(mod97(&rearranged), 1, "{i}");
            let bad = iban(&mut r, false).replace(' ', "");
            let rearranged = format!("{}{}", &bad[4..], &bad[..4]);
            assert_ne!(mod97(&rearranged), 1, "{bad}");
        }
    }
}
