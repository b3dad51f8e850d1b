//! Checksum and structure validators run after a pattern matched.
//!
//! Every function here is pure, allocation-light and linear in its input. They take the
//! matched text (with separators) and return a [`Check`].

use sha2::{Digest, Sha256};

/// What a validator concluded about a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The checksum or structure proves it: score becomes 1.0.
    Valid,
    /// No opinion: the pattern's score stands.
    Neutral,
    /// Plausible beyond its shape but not proven (a phone number valid in some country's
    /// numbering plan): the score is at least [`LIKELY_SCORE`], and context still adds.
    Likely,
    /// Not this entity: the match is dropped.
    Invalid,
    /// Only the first `len` bytes are the entity; `valid` says whether it is proven (1.0) or
    /// merely plausible (pattern score).
    Trim {
        /// Accepted prefix length in bytes.
        len: usize,
        /// Whether it is proven valid.
        valid: bool,
    },
}

/// The score a [`Check::Likely`] match gets at least.
pub const LIKELY_SCORE: f32 = 0.6;

impl Check {
    /// `Valid` when `ok`, else `Invalid`.
    pub fn from_bool(ok: bool) -> Self {
        if ok { Check::Valid } else { Check::Invalid }
    }
}

/// The ASCII digits of `s` as numbers, ignoring every other byte.
fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
}

fn digit_vec(s: &str) -> Vec<u32> {
    digits(s).collect()
}

/// Luhn (mod 10) over the digits of `s`.
pub fn luhn(s: &str) -> bool {
    let d = digit_vec(s);
    if d.is_empty() {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                if x * 2 > 9 { x * 2 - 9 } else { x * 2 }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

/// Credit card: Luhn, and not a bare 13-digit number starting with 1.
pub fn credit_card(s: &str) -> Check {
    let bare = s.bytes().all(|b| b.is_ascii_digit());
    if bare && s.len() == 13 && s.starts_with('1') {
        return Check::Invalid;
    }
    Check::from_bool(luhn(s))
}

/// US Social Security Number sanity rules (Presidio's invalidation list).
pub fn us_ssn(s: &str) -> Check {
    let delims: Vec<u8> = s
        .bytes()
        .filter(|b| matches!(b, b'.' | b'-' | b' '))
        .collect();
    if delims.windows(2).any(|w| w[0] != w[1]) {
        return Check::Invalid;
    }
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    if d.len() != 9 {
        return Check::Invalid;
    }
    let first = d.as_bytes()[0];
    if d.bytes().all(|b| b == first) || &d[3..5] == "00" || &d[5..] == "0000" {
        return Check::Invalid;
    }
    // Areas 900–999 are never issued (ITINs and advertising use them).
    if first >= b'9' {
        return Check::Invalid;
    }
    for bad in ["000", "666", "123456789", "98765432", "078051120"] {
        if d.starts_with(bad) {
            return Check::Invalid;
        }
    }
    Check::Neutral
}

/// UK NHS number: mod-11 check digit over 10 digits.
pub fn uk_nhs(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 10 {
        return Check::Invalid;
    }
    let total: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &x)| x * (10 - i as u32))
        .sum();
    let check = (11 - total % 11) % 11;
    Check::from_bool(check != 10 && check == d[9])
}

/// Spanish NIF: the control letter is `TRWAGMYFPDXBNJZSQVHLCKE[number % 23]`.
pub fn es_nif(s: &str) -> Check {
    const LETTERS: &[u8] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let Some(last) = s.bytes().last() else {
        return Check::Invalid;
    };
    let n: u64 = digits(s).fold(0u64, |a, x| a * 10 + u64::from(x));
    Check::from_bool(LETTERS[(n % 23) as usize] == last.to_ascii_uppercase())
}

/// Spanish NIE: X/Y/Z prefix mapped to 0/1/2, then the NIF letter rule.
pub fn es_nie(s: &str) -> Check {
    const LETTERS: &[u8] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let t: Vec<u8> = s
        .bytes()
        .filter(|&b| b != b'-')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if t.len() < 8 || t.len() > 9 {
        return Check::Invalid;
    }
    let prefix = match t[0] {
        b'X' => 0u64,
        b'Y' => 1,
        b'Z' => 2,
        _ => return Check::Invalid,
    };
    let body = &t[1..t.len() - 1];
    if !body.iter().all(u8::is_ascii_digit) {
        return Check::Invalid;
    }
    let n = body
        .iter()
        .fold(prefix, |a, &b| a * 10 + u64::from(b - b'0'));
    Check::from_bool(LETTERS[(n % 23) as usize] == t[t.len() - 1])
}

/// Italian fiscal code check character (odd/even position tables).
pub fn it_fiscal_code(s: &str) -> Check {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let t: Vec<u8> = s.bytes().map(|b| b.to_ascii_uppercase()).collect();
    if t.len() != 16 {
        return Check::Neutral;
    }
    let mut sum = 0u32;
    for (i, &c) in t[..15].iter().enumerate() {
        let (num, alpha) = if c.is_ascii_digit() {
            (u32::from(c - b'0'), u32::from(c - b'0'))
        } else {
            (u32::from(c - b'A'), u32::from(c - b'A'))
        };
        // 1-based odd positions use the ODD table (digits map like the letter of equal index).
        sum += if i % 2 == 0 {
            ODD[if c.is_ascii_digit() { num } else { alpha } as usize]
        } else {
            alpha
        };
    }
    // The presidio/agency rule: a valid control char proves it; a wrong one leaves the
    // pattern score (the structure alone is already very specific).
    if u32::from(t[15] - b'A') == sum % 26 {
        Check::Valid
    } else {
        Check::Neutral
    }
}

/// Singapore NRIC/FIN check letter (S/T/F/G/M series).
pub fn sg_nric(s: &str) -> Check {
    const W: [u32; 7] = [2, 7, 6, 5, 4, 3, 2];
    let t: Vec<u8> = s.bytes().map(|b| b.to_ascii_uppercase()).collect();
    if t.len() != 9 {
        return Check::Neutral;
    }
    let mut sum: u32 = t[1..8]
        .iter()
        .zip(W)
        .map(|(&c, w)| u32::from(c - b'0') * w)
        .sum();
    let table: &[u8] = match t[0] {
        b'S' => b"JZIHGFEDCBA",
        b'T' => {
            sum += 4;
            b"JZIHGFEDCBA"
        }
        b'F' => b"XWUTRQPNMLK",
        b'G' => {
            sum += 4;
            b"XWUTRQPNMLK"
        }
        b'M' => {
            sum += 3;
            b"KLJNPQRTUWX"
        }
        _ => return Check::Neutral,
    };
    if table[(sum % 11) as usize] == t[8] {
        Check::Valid
    } else {
        Check::Neutral
    }
}

fn weighted(d: &[u32], w: &[u32]) -> u32 {
    d.iter().zip(w).map(|(a, b)| a * b).sum()
}

/// Australian Business Number: weights, first digit minus one, mod 89.
pub fn au_abn(s: &str) -> Check {
    let mut d = digit_vec(s);
    if d.len() != 11 || d[0] == 0 {
        return Check::Invalid;
    }
    d[0] -= 1;
    Check::from_bool(weighted(&d, &[10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]) % 89 == 0)
}

/// Australian Company Number: weights 8..1, complement of mod 10.
pub fn au_acn(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 9 {
        return Check::Invalid;
    }
    let r = weighted(&d, &[8, 7, 6, 5, 4, 3, 2, 1]) % 10;
    Check::from_bool((10 - r) % 10 == d[8])
}

/// Australian Tax File Number: weighted mod 11.
pub fn au_tfn(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 9 {
        return Check::Invalid;
    }
    Check::from_bool(weighted(&d, &[1, 4, 3, 7, 5, 8, 6, 9, 10]) % 11 == 0)
}

/// Australian Medicare number: weighted mod 10 equals the ninth digit.
pub fn au_medicare(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 10 {
        return Check::Invalid;
    }
    Check::from_bool(weighted(&d, &[1, 3, 7, 9, 1, 3, 7, 9]) % 10 == d[8])
}

/// Verhoeff checksum over the digits of `s`.
pub fn verhoeff(s: &str) -> bool {
    const D: [[u8; 10]; 10] = [
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
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let d = digit_vec(s);
    let mut c = 0u8;
    for (i, &x) in d.iter().rev().enumerate() {
        c = D[c as usize][P[i % 8][x as usize] as usize];
    }
    c == 0
}

/// Indian Aadhaar: 12 digits, first ≥ 2, Verhoeff, not a palindrome.
pub fn in_aadhaar(s: &str) -> Check {
    let d = digit_vec(s);
    let pal = d.iter().eq(d.iter().rev());
    Check::from_bool(d.len() == 12 && d[0] >= 2 && verhoeff(s) && !pal)
}

/// US DEA registration number check digit (medical license).
pub fn dea(s: &str) -> Check {
    let d: Vec<u32> = s
        .bytes()
        .skip(2)
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect();
    if d.len() != 7 {
        return Check::Invalid;
    }
    let sum = d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5]);
    Check::from_bool(sum % 10 == d[6])
}

/// ABA routing number: weights 3,7,1 mod 10.
pub fn aba(s: &str) -> Check {
    let d = digit_vec(s);
    Check::from_bool(d.len() == 9 && weighted(&d, &[3, 7, 1, 3, 7, 1, 3, 7, 1]) % 10 == 0)
}

/// US NPI: Luhn with the `80840` prefix; a body of one repeated digit is rejected.
pub fn us_npi(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 10 || d[..9].iter().all(|&x| x == d[0]) {
        return Check::Invalid;
    }
    let mut p = String::from("80840");
    p.extend(d.iter().map(|x| char::from(b'0' + *x as u8)));
    Check::from_bool(luhn(&p))
}

/// Polish PESEL: weights 1,3,7,9 mod 10.
pub fn pl_pesel(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 11 || s.len() != 11 {
        return Check::Invalid;
    }
    Check::from_bool((10 - weighted(&d, &[1, 3, 7, 9, 1, 3, 7, 9, 1, 3]) % 10) % 10 == d[10])
}

fn valid_date(day: u32, month: u32, year: u32) -> bool {
    let dim = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return false,
    };
    (1..=dim).contains(&day)
}

/// Finnish personal identity code: date + mod-31 control character.
pub fn fi_pic(s: &str) -> Check {
    const CTRL: &[u8] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";
    let t: Vec<u8> = s.bytes().map(|b| b.to_ascii_uppercase()).collect();
    if t.len() != 11
        || !t[..6].iter().all(u8::is_ascii_digit)
        || !t[7..10].iter().all(u8::is_ascii_digit)
    {
        return Check::Invalid;
    }
    let n = |a: usize, b: usize| {
        t[a..b]
            .iter()
            .fold(0u32, |x, &c| x * 10 + u32::from(c - b'0'))
    };
    // `%y` in the reference accepts any 2-digit year; use a leap-friendly century.
    let yy = n(4, 6);
    if !valid_date(
        n(0, 2),
        n(2, 4),
        if yy <= 68 { 2000 + yy } else { 1900 + yy },
    ) {
        return Check::Invalid;
    }
    let num = u64::from(n(0, 6)) * 1000 + u64::from(n(7, 10));
    Check::from_bool(CTRL[(num % 31) as usize] == t[10])
}

/// Korean resident registration number: region code and weighted mod-11 check digit.
pub fn kr_rrn(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 13 {
        return Check::Invalid;
    }
    let region = d[7] * 10 + d[8];
    let sum = weighted(&d, &[2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]);
    if region <= 95 && (11 - sum % 11) % 10 == d[12] {
        Check::Valid
    } else {
        Check::Neutral
    }
}

/// Canadian SIN: Luhn.
pub fn ca_sin(s: &str) -> Check {
    let seps: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return Check::Invalid;
    }
    Check::from_bool(luhn(s))
}

/// MAC address: all-zero and broadcast addresses are not personal.
pub fn mac(s: &str) -> Check {
    let hex: String = s
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.bytes().all(|b| b == b'0') || hex.bytes().all(|b| b == b'f') {
        Check::Invalid
    } else {
        Check::Neutral
    }
}

/// Length of the IBAN of country `cc` and its BBAN layout (`n` digits, `a` upper letters,
/// `c` alphanumerics, `z` a literal zero), per the ISO 13616 registry as Presidio encodes it.
fn iban_layout(cc: &[u8]) -> Option<&'static str> {
    const T: &[(&str, &str)] = &[
        ("AL", "8n16c"),
        ("AD", "8n12c"),
        ("AT", "16n"),
        ("AZ", "4c20n"),
        ("BH", "4a14c"),
        ("BY", "4c4n16c"),
        ("BE", "12n"),
        ("BA", "16n"),
        ("BR", "23n1a1c"),
        ("BG", "4a6n8c"),
        ("CR", "1z17n"),
        ("HR", "17n"),
        ("CY", "8n16c"),
        ("CZ", "20n"),
        ("DK", "14n"),
        ("DO", "4a20n"),
        ("TL", "19n"),
        ("EE", "16n"),
        ("FO", "14n"),
        ("FI", "14n"),
        ("FR", "10n11c2n"),
        ("GE", "2c16n"),
        ("DE", "18n"),
        ("GI", "4a15c"),
        ("GR", "7n16c"),
        ("GL", "14n"),
        ("GT", "24c"),
        ("HU", "24n"),
        ("IS", "22n"),
        ("IE", "4c14n"),
        ("IL", "19n"),
        ("IT", "1a10n12c"),
        ("JO", "4a22n"),
        ("KZ", "3n13c"),
        ("XK", "16n"),
        ("KW", "4a22c"),
        ("LV", "4a13c"),
        ("LB", "4n20c"),
        ("LI", "5n12c"),
        ("LT", "16n"),
        ("LU", "3n13c"),
        ("MT", "4a5n18c"),
        ("MR", "23n"),
        ("MU", "4a19n1a"),
        ("MD", "20c"),
        ("MC", "10n11c2n"),
        ("ME", "18n"),
        ("NL", "4a10n"),
        ("MK", "3n10c2n"),
        ("NO", "11n"),
        ("PK", "4c16n"),
        ("PS", "4c17n"),
        ("PL", "24n"),
        ("PT", "17n"),
        ("QA", "4a17c"),
        ("RO", "4a16c"),
        ("SM", "1a10n12c"),
        ("SA", "2n18c"),
        ("RS", "18n"),
        ("SK", "20n"),
        ("SI", "15n"),
        ("ES", "20n"),
        ("SE", "20n"),
        ("CH", "5n12c"),
        ("TN", "20n"),
        ("TR", "5n17c"),
        ("AE", "19n"),
        ("GB", "4a14n"),
        ("VA", "18n"),
        ("VG", "4c16n"),
        ("EG", "25n"),
        ("IQ", "4a15n"),
        ("LY", "21n"),
        ("LC", "4a24c"),
        ("SC", "4a20n3a"),
        ("UA", "6n19c"),
    ];
    T.iter().find(|(c, _)| c.as_bytes() == cc).map(|(_, l)| *l)
}

fn iban_format_ok(iban: &[u8]) -> bool {
    let Some(layout) = iban_layout(&iban[..2]) else {
        return false;
    };
    if !iban[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut rest = &iban[4..];
    let mut count = 0usize;
    for b in layout.bytes() {
        if b.is_ascii_digit() {
            count = count * 10 + usize::from(b - b'0');
            continue;
        }
        if rest.len() < count {
            return false;
        }
        let ok = rest[..count].iter().all(|&c| match b {
            b'n' => c.is_ascii_digit(),
            b'a' => c.is_ascii_uppercase(),
            b'z' => c == b'0',
            _ => c.is_ascii_alphanumeric(),
        });
        if !ok {
            return false;
        }
        rest = &rest[count..];
        count = 0;
    }
    rest.is_empty()
}

fn iban_mod97(iban: &[u8]) -> bool {
    let mut r = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        r = if v >= 10 {
            (r * 100 + v) % 97
        } else {
            (r * 10 + v) % 97
        };
    }
    r == 1
}

/// IBAN: mod-97 check digits and the country's BBAN layout, trying the longest prefix of the
/// match (at 4-character group boundaries) that validates.
pub fn iban(s: &str) -> Check {
    // Candidate ends: after every alphanumeric, longest first.
    let bytes = s.as_bytes();
    let mut compact: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut ends: Vec<(usize, usize)> = Vec::with_capacity(bytes.len()); // (compact len, byte end)
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_alphanumeric() {
            compact.push(b);
            ends.push((compact.len(), i + 1));
        }
    }
    for &(clen, bend) in ends.iter().rev() {
        if clen < 15 {
            break;
        }
        // Only cut where the text itself has a group boundary.
        if bend != bytes.len() && bytes.get(bend).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        let cand = &compact[..clen];
        if iban_mod97(cand) && iban_format_ok(cand) {
            return if bend == bytes.len() {
                Check::Valid
            } else {
                Check::Trim {
                    len: bend,
                    valid: true,
                }
            };
        }
    }
    Check::Invalid
}

const B58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn base58check(s: &str) -> bool {
    // Big-number base conversion into bytes; inputs are ≤ 62 chars (pattern-bounded).
    let mut out: Vec<u8> = Vec::with_capacity(40);
    for c in s.bytes() {
        let Some(v) = B58.iter().position(|&x| x == c) else {
            return false;
        };
        let mut carry = v as u32;
        for b in out.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&b| b == b'1').count();
    let mut full = vec![0u8; zeros];
    full.extend_from_slice(&out);
    if full.len() < 5 {
        return false;
    }
    let (body, sum) = full.split_at(full.len() - 4);
    let h = Sha256::digest(Sha256::digest(body));
    &h[..4] == sum
}

fn bech32_polymod(values: impl Iterator<Item = u32>) -> u32 {
    const G: [u32; 5] = [
        0x3B6A_57B2,
        0x2650_8E6D,
        0x1EA1_19FA,
        0x3D42_33DD,
        0x2A14_62B3,
    ];
    let mut chk = 1u32;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x1FF_FFFF) << 5) ^ v;
        for (i, g) in G.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn bech32(s: &str) -> bool {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    if s.len() > 90 || (s.to_ascii_lowercase() != s && s.to_ascii_uppercase() != s) {
        return false;
    }
    let l = s.to_ascii_lowercase();
    let Some(pos) = l.rfind('1') else {
        return false;
    };
    if pos < 1 || pos + 7 > l.len() {
        return false;
    }
    let hrp = &l.as_bytes()[..pos];
    let mut data = Vec::with_capacity(l.len() - pos);
    for c in l[pos + 1..].bytes() {
        let Some(v) = CHARSET.iter().position(|&x| x == c) else {
            return false;
        };
        data.push(v as u32);
    }
    let expanded = hrp
        .iter()
        .map(|&c| u32::from(c) >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.iter().map(|&c| u32::from(c) & 31))
        .chain(data.iter().copied());
    let c = bech32_polymod(expanded);
    c == 1 || c == 0x2BC8_30A3
}

/// Bitcoin address: Base58Check for `1…`/`3…`, Bech32/Bech32m for `bc1…`.
pub fn btc(s: &str) -> Check {
    let lower = s.to_ascii_lowercase();
    Check::from_bool(if lower.starts_with("bc1") {
        bech32(s)
    } else {
        base58check(s)
    })
}

/// Ethereum address: `0x` + 40 hex; mixed case must not be all-lowercase-or-uppercase noise.
pub fn eth(s: &str) -> Check {
    let hex = &s[2..];
    if hex.len() != 40
        || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        || hex.bytes().all(|b| b == b'0')
    {
        return Check::Invalid;
    }
    Check::Neutral
}

/// Email: the domain must end in an alphabetic top-level label of 2+ characters.
pub fn email(s: &str) -> Check {
    let Some((_, domain)) = s.rsplit_once('@') else {
        return Check::Invalid;
    };
    if domain
        .split('.')
        .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
    {
        return Check::Invalid;
    }
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return Check::Invalid;
    };
    Check::from_bool(tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// IPv4 (optionally CIDR) through the standard parser (rejects leading zeros, > 255).
/// Like Presidio's, it only invalidates: a well-formed address keeps the pattern score.
pub fn ipv4(s: &str) -> Check {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ok = addr.parse::<std::net::Ipv4Addr>().is_ok()
        && prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= 32));
    if ok { Check::Neutral } else { Check::Invalid }
}

/// IPv6 (optionally CIDR, optionally with a zone id) through the standard parser; a trailing
/// `:` is trimmed off.
pub fn ipv6(s: &str) -> Check {
    let ok = |t: &str| {
        // A zone id (`%eth0`) names an interface, not part of the address.
        let t = match t.split_once('%') {
            Some((a, z)) if !z.contains('%') => {
                if z.is_empty() {
                    return false;
                }
                a.to_owned() + z.find('/').map_or("", |i| &z[i..])
            }
            _ => t.to_owned(),
        };
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t.as_str(), None),
        };
        addr.parse::<std::net::Ipv6Addr>().is_ok()
            && prefix.is_none_or(|p| {
                !p.is_empty()
                    && p.len() <= 3
                    && p.parse::<u8>().is_ok_and(|n| n <= 128)
                    && !(p.len() > 1 && p.starts_with('0'))
            })
    };
    if ok(s) {
        return Check::Neutral;
    }
    // Only a trailing `:` (sentence punctuation) may be cut off.
    let trimmed = s.trim_end_matches(':');
    if trimmed.len() < s.len() && trimmed.len() >= 2 && ok(trimmed) {
        return Check::Trim {
            len: trimmed.len(),
            valid: false,
        };
    }
    Check::Invalid
}

/// Regions a phone number written without a country code but with a trunk `0` is tried in:
/// the numbering plans whose national formats are most common in text. Ten digits without
/// a trunk `0` are tried as North American numbers only.
pub const PHONE_TRUNK_REGIONS: [&str; 14] = [
    "GB", "DE", "FR", "IN", "AU", "JP", "NL", "IE", "IT", "BR", "CH", "AT", "BE", "NZ",
];

/// Phone numbers, validated against libphonenumber's metadata for the numbering plan
/// (number length and the ranges actually allocated per country and number type).
///
/// - With a country code (`+…` or `00…`): valid for that country proves it; anything else is
///   not a phone number.
/// - Without one: valid in the North American plan (ten digits) or in one of
///   [`PHONE_TRUNK_REGIONS`] (a trunk `0`) makes it [`Check::Likely`] — likely, not proven,
///   so an identifier of the same shape that its checksum proves (an NHS number) or that
///   its context names (an SSN) wins the overlap. A number no plan accepts keeps the
///   pattern's score; one with a digit count no plan uses is dropped.
pub fn phone(s: &str) -> Check {
    let intl = s.starts_with('+') || s.starts_with("00");
    // `+44 (0)20 7946 0958`: the trunk prefix in brackets is not dialled from abroad.
    let without_trunk = if intl {
        s.replacen("(0)", "", 1)
    } else {
        s.to_owned()
    };
    let d = digit_vec(&without_trunk);
    let d: &[u32] = if s.starts_with("00") { &d[2..] } else { &d };
    if !(7..=15).contains(&d.len()) {
        return Check::Invalid;
    }
    let digits: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
    if intl {
        return Check::from_bool(crate::phone::valid_international(&digits));
    }
    let likely = if d[0] == 0 {
        PHONE_TRUNK_REGIONS
            .iter()
            .any(|r| crate::phone::valid_national(r, &digits))
    } else {
        d.len() == 10 && crate::phone::valid_national("US", &digits)
    };
    if likely {
        Check::Likely
    } else {
        Check::Neutral
    }
}

/// Top-level domains that are more often file extensions in text (`README.md`,
/// `setup.py`, `main.rs`): a bare host ending in one is taken for a file name.
const FILE_LIKE_TLDS: &[&str] = &[
    "md", "py", "rs", "sh", "pl", "pm", "ps", "so", "zip", "mov", "cc", "cs", "am", "in", "ml",
    "mk", "sc", "st", "rb", "ts", "tf", "ai",
];

/// Whether `tld` (lowercase) is a top-level domain of the list the URL recognizer uses.
fn known_tld(tld: &str) -> bool {
    static TLDS: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    TLDS.get_or_init(|| include_str!("url_tlds.txt").split_whitespace().collect())
        .contains(tld)
}

/// URLs: the host must end in a known top-level domain; a bare host (no scheme, no `www.`,
/// no path) that is one name and a file-like top-level domain is a file name, not a URL.
pub fn url(s: &str) -> Check {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let host = rest
        .split(['/', ':'])
        .next()
        .unwrap_or(rest)
        .to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let tld = labels.last().copied().unwrap_or_default();
    if !known_tld(tld) {
        return Check::Invalid;
    }
    let bare = !s.contains("://") && !host.starts_with("www") && !s.contains('/');
    if bare && labels.len() == 2 && FILE_LIKE_TLDS.contains(&tld) {
        Check::Invalid
    } else {
        Check::Neutral
    }
}

/// Month names (English, German, French, Spanish, Italian, Portuguese, Dutch) and English
/// abbreviations, lowercase.
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "januar",
    "februar",
    "m\u{e4}rz",
    "maerz",
    "mai",
    "juni",
    "juli",
    "oktober",
    "dezember",
    "janvier",
    "f\u{e9}vrier",
    "fevrier",
    "mars",
    "avril",
    "juin",
    "juillet",
    "ao\u{fb}t",
    "aout",
    "septembre",
    "octobre",
    "novembre",
    "d\u{e9}cembre",
    "decembre",
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "setiembre",
    "octubre",
    "noviembre",
    "diciembre",
    "gennaio",
    "febbraio",
    "aprile",
    "maggio",
    "giugno",
    "luglio",
    "settembre",
    "ottobre",
    "dicembre",
    "janeiro",
    "fevereiro",
    "mar\u{e7}o",
    "maio",
    "junho",
    "julho",
    "setembro",
    "outubro",
    "dezembro",
    "januari",
    "februari",
    "maart",
    "mei",
    "augustus",
];

/// Dates: month/day ranges are enforced by the patterns; a date written with a month word
/// must name a month (`5 March 1984`, `5 de marzo de 1984`, not `5 apples 2024`).
pub fn date(s: &str) -> Check {
    if !s.bytes().any(|b| b.is_ascii_alphabetic()) || s.contains('T') && s.contains(':') {
        return Check::Neutral;
    }
    // Besides month names, a written date holds only ordinal suffixes and `of` / `de`.
    const JOINERS: [&str; 6] = ["st", "nd", "rd", "th", "of", "de"];
    let mut named = false;
    for word in s
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        if MONTHS.contains(&word.as_str()) {
            named = true;
        } else if !JOINERS.contains(&word.as_str()) {
            return Check::Invalid;
        }
    }
    if named {
        Check::Neutral
    } else {
        Check::Invalid
    }
}

/// UK National Insurance number: prefix pairs that are never issued.
pub fn uk_nino(s: &str) -> Check {
    let t: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if t.len() < 2 {
        return Check::Invalid;
    }
    let p = [t[0], t[1]];
    let bad: [&[u8; 2]; 7] = [b"BG", b"GB", b"NK", b"KN", b"NT", b"TN", b"ZZ"];
    Check::from_bool(!bad.iter().any(|b| **b == p))
}

/// Swedish personnummer: optional century, date, Luhn over the last 10 digits.
pub fn se_personnummer(s: &str) -> Check {
    let d = digit_vec(s);
    let d10: &[u32] = match d.len() {
        10 => &d,
        12 => &d[2..],
        _ => return Check::Invalid,
    };
    let (m, day) = (d10[2] * 10 + d10[3], d10[4] * 10 + d10[5]);
    // Samordningsnummer adds 60 to the day.
    let day = if day > 60 { day - 60 } else { day };
    if !valid_date(day, m, 2000) {
        return Check::Invalid;
    }
    let s10: String = d10.iter().map(|x| char::from(b'0' + *x as u8)).collect();
    Check::from_bool(luhn(&s10))
}

/// South African ID: date of birth and Luhn.
pub fn za_id(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 13 {
        return Check::Invalid;
    }
    if !valid_date(d[4] * 10 + d[5], d[2] * 10 + d[3], 2000) {
        return Check::Invalid;
    }
    Check::from_bool(luhn(s))
}

/// Turkish national id: two check digits.
pub fn tr_national_id(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 11 || d[0] == 0 {
        return Check::Invalid;
    }
    let odd = d[0] + d[2] + d[4] + d[6] + d[8];
    let even = d[1] + d[3] + d[5] + d[7];
    let c10 = ((odd * 7 + 100) - even) % 10;
    let c11 = d[..10].iter().sum::<u32>() % 10;
    Check::from_bool(c10 == d[9] && c11 == d[10])
}

/// Thai national id: weighted mod 11.
pub fn th_tnin(s: &str) -> Check {
    let d = digit_vec(s);
    if d.len() != 13 {
        return Check::Invalid;
    }
    let sum: u32 = d[..12]
        .iter()
        .enumerate()
        .map(|(i, &x)| x * (13 - i as u32))
        .sum();
    Check::from_bool((11 - sum % 11) % 10 == d[12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert!(luhn("4012888888881881"));
        assert!(!luhn("4012888888881882"));
    }

    #[test]
    fn iban_trims_trailing_noise() {
        assert_eq!(iban("DE89370400440532013000"), Check::Valid);
        assert!(matches!(
            iban("DE89 3704 0044 0532 0130 00 2"),
            Check::Trim { .. }
        ));
    }
}
