//! Generates the phone numbering-plan table (`$OUT_DIR/numbering_plans.rs`) from
//! libphonenumber's metadata, as the `phonenumber` crate ships it.
//!
//! Loading that metadata at run time costs about 60 ms (it validates thousands of
//! patterns); the PII engine instead compiles one region's patterns the first time a number
//! needs them, from this table.

// A build script reports failure by panicking.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;

use phonenumber::{Type, metadata::DATABASE};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let kinds = [
        Type::FixedLine,
        Type::Mobile,
        Type::TollFree,
        Type::PremiumRate,
        Type::SharedCost,
        Type::PersonalNumber,
        Type::Voip,
        Type::Pager,
        Type::Uan,
        Type::Voicemail,
    ];
    let mut plans: Vec<String> = Vec::new();
    let mut metas: Vec<_> = DATABASE.iter().collect();
    metas.sort_by(|a, b| (a.country_code(), a.id()).cmp(&(b.country_code(), b.id())));
    for meta in metas {
        let d = meta.descriptors();
        let mut lengths: Vec<u16> = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        for kind in kinds {
            let Some(desc) = d.get(kind) else { continue };
            lengths.extend_from_slice(desc.possible_length());
            patterns.push(format!("(?:{})", desc.national_number().as_str()));
        }
        if patterns.is_empty() {
            continue;
        }
        lengths.sort_unstable();
        lengths.dedup();
        let general = d.general();
        if lengths.is_empty() {
            lengths.extend_from_slice(general.possible_length());
        }
        let valid = format!("^(?:{})$", patterns.join("|"));
        let general_pattern = format!("^(?:{})$", general.national_number().as_str());
        let prefix = meta
            .national_prefix_for_parsing()
            .map(|r| r.as_str().to_owned())
            .or_else(|| meta.national_prefix().map(regex_escape));
        let mut s = String::new();
        write!(
            s,
            "Plan {{ code: {}, region: {:?}, national_prefix: {:?}, lengths: &{:?}, general: {:?}, valid: {:?} }}",
            meta.country_code(),
            meta.id(),
            prefix,
            lengths,
            general_pattern,
            valid
        )
        .unwrap();
        plans.push(s);
    }
    let out = format!(
        "/// Every region of libphonenumber's metadata, by country code.\npub(crate) static PLANS: &[Plan] = &[\n    {}\n];\n",
        plans.join(",\n    ")
    );
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("numbering_plans.rs");
    std::fs::write(path, out).unwrap();
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}
