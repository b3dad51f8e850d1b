//! Phone-number validation against libphonenumber's numbering plans: the lengths and
//! allocated ranges of every region's fixed-line, mobile, toll-free, premium, shared-cost,
//! personal, VoIP, pager, UAN and voicemail numbers.
//!
//! The table is generated at build time (`build.rs`); a region's patterns are compiled the
//! first time a number needs them, so start-up costs nothing and a scan compiles only the
//! handful of regions its numbers belong to.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};

/// One region's numbering plan.
pub(crate) struct Plan {
    /// Country calling code.
    code: u16,
    /// CLDR region (`GB`), or `001` for non-geographic codes.
    region: &'static str,
    /// What a national number starts with that is not part of it (the trunk prefix).
    national_prefix: Option<&'static str>,
    /// National significant number lengths any valid type allows.
    lengths: &'static [u16],
    /// The region's general pattern (every possible number).
    general: &'static str,
    /// The union of the valid-type patterns, anchored.
    valid: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/numbering_plans.rs"));

struct Compiled {
    general: Regex,
    valid: Regex,
    prefix: Option<Regex>,
}

fn compiled(i: usize) -> Option<&'static Compiled> {
    static COMPILED: OnceLock<Vec<OnceLock<Option<Compiled>>>> = OnceLock::new();
    let slots = COMPILED.get_or_init(|| PLANS.iter().map(|_| OnceLock::new()).collect());
    slots[i]
        .get_or_init(|| {
            let plan = &PLANS[i];
            // ASCII classes: the numbers are ASCII digits, and a Unicode `\d` under the
            // plans' many repetitions made a region take milliseconds to compile.
            let build = |p: &str| {
                RegexBuilder::new(p)
                    .ignore_whitespace(true)
                    .unicode(false)
                    .size_limit(16 << 20)
                    .build()
                    .ok()
            };
            Some(Compiled {
                general: build(plan.general)?,
                valid: build(plan.valid)?,
                prefix: match plan.national_prefix {
                    Some(p) => Some(build(&format!("^(?:{p})"))?),
                    None => None,
                },
            })
        })
        .as_ref()
}

/// Whether `nsn` (the national significant number, ASCII digits) is a valid number of the
/// region at `PLANS[i]`.
fn valid_in(i: usize, nsn: &str) -> bool {
    let plan = &PLANS[i];
    plan.lengths.contains(&(nsn.len() as u16))
        && compiled(i).is_some_and(|c| c.general.is_match(nsn) && c.valid.is_match(nsn))
}

/// Whether `digits` (ASCII, the country code first) is a valid international number.
/// Country codes are prefix-free, so the first length with a plan decides.
pub fn valid_international(digits: &str) -> bool {
    for len in 1..=3.min(digits.len()) {
        let Ok(code) = digits[..len].parse::<u16>() else {
            return false;
        };
        let regions: Vec<usize> = (0..PLANS.len())
            .filter(|&i| PLANS[i].code == code)
            .collect();
        if !regions.is_empty() {
            let nsn = &digits[len..];
            return regions.into_iter().any(|i| valid_in(i, nsn));
        }
    }
    false
}

/// Whether `digits` (ASCII, as written nationally, trunk prefix included) is a valid number
/// of `region` (`"GB"`).
pub fn valid_national(region: &str, digits: &str) -> bool {
    let Some(i) = PLANS.iter().position(|p| p.region == region) else {
        return false;
    };
    if valid_in(i, digits) {
        return true;
    }
    let Some(prefix) = compiled(i).and_then(|c| c.prefix.as_ref()) else {
        return false;
    };
    match prefix.find(digits) {
        Some(m) if m.start() == 0 && m.end() > 0 => valid_in(i, &digits[m.end()..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_valid_only_in_their_plan() {
        assert!(valid_international("442079460958"));
        assert!(valid_international("4915123456789"));
        assert!(!valid_international("44207946095")); // one digit short
        assert!(!valid_international("99912345678"));
        assert!(valid_national("GB", "02079460958"));
        assert!(valid_national("US", "4155550132"));
        assert!(!valid_national("US", "1234567890"));
        assert!(!valid_national("XX", "02079460958"));
    }

    #[test]
    fn every_numbering_plan_compiles() {
        let failed: Vec<&str> = (0..PLANS.len())
            .filter(|&i| compiled(i).is_none())
            .map(|i| PLANS[i].region)
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
    }
}
