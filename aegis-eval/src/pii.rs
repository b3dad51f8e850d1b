//! The PII corpus: 20 entity kinds in surrounding prose of several registers and languages,
//! hard look-alikes for each, and entity-free text.

use crate::{Case, Label, Rng, Split, fill, values as v};

/// The entity kinds the corpus holds, as the PII pack names them.
pub const KINDS: [&str; 20] = [
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "URL",
    "DATE_OF_BIRTH",
    "DATE_TIME",
    "US_PASSPORT",
    "IN_AADHAAR",
    "IN_PAN",
    "UK_NHS",
    "UK_NINO",
    "MAC_ADDRESS",
    "ABA_ROUTING_NUMBER",
    "US_ITIN",
    "ES_NIF",
    "CA_SIN",
    "CRYPTO",
];

/// How many cases each kind contributes to a split.
const PER_KIND: usize = 30;

fn templates(kind: &str) -> &'static [&'static str] {
    match kind {
        "EMAIL_ADDRESS" => &[
            "You can reach me at {} whenever.",
            "Bitte antworten Sie an {} bis Freitag.",
            "From: {}\nSubject: quarterly numbers",
            "{\"user\": {\"contact\": \"{}\", \"active\": true}}",
            "cc {} on the thread pls",
            "Escríbeme a {} y te mando el contrato.",
            "login failed for user={} reason=bad_password",
            "Mon adresse est {}, merci de mettre à jour le dossier.",
            "Send the invoice to {} and the receipt to accounting.",
            "Contact: {}",
        ],
        "PHONE_NUMBER" => &[
            "Call me on {} after six.",
            "Telefon: {}",
            "my number changed, it's {} now",
            "{\"name\": \"Front desk\", \"phone\": \"{}\"}",
            "Pour toute question, appelez le {}.",
            "Llámame al {} cuando puedas.",
            "Mobile {} (WhatsApp too)",
            "The hotel's reception line is {} if the app fails.",
            "ring {} and ask for the night nurse",
            "Tel. {} — Mo bis Fr erreichbar",
        ],
        "CREDIT_CARD" => &[
            "My card number is {} and it expires soon.",
            "Please charge {} for the renewal.",
            "Kartennummer: {}",
            "{\"payment\": {\"pan\": \"{}\", \"brand\": \"unknown\"}}",
            "paid with {} yesterday but got charged twice",
            "Número de tarjeta {} a nombre de la empresa.",
            "card={} status=declined",
            "Use the corporate card {} for the flights.",
            "Ma carte bancaire {} a été refusée.",
            "cc on file: {}",
        ],
        "IBAN_CODE" => &[
            "Please transfer the deposit to {} by Monday.",
            "IBAN: {}",
            "Überweisung bitte auf {} mit Verwendungszweck Miete.",
            "{\"beneficiary\": \"ACME GmbH\", \"iban\": \"{}\"}",
            "my account is {} can you wire the refund",
            "Cuenta para el pago: {}",
            "Veuillez virer le montant sur le compte {}.",
            "payout destination {} verified",
            "Bank details — {} (business account)",
            "Refund goes to {} once approved.",
        ],
        "US_SSN" => &[
            "My social security number is {}.",
            "SSN: {}",
            "the applicant's ssn {} was entered twice",
            "{\"employee\": {\"ssn\": \"{}\"}}",
            "Please verify SSN {} against the W-2.",
            "social sec # {} on the form is smudged",
            "Tax form lists social security no. {} for the dependent.",
            "ssn={} lookup=ok",
            "Her Social Security number, {}, appears on the letter.",
            "SS number {} — confirm before filing",
        ],
        "IP_ADDRESS" => &[
            "The login came from {} at midnight.",
            "client_ip={} method=GET path=/admin",
            "Block {} on the firewall please.",
            "{\"remote_addr\": \"{}\", \"status\": 403}",
            "Der Server unter {} antwortet nicht.",
            "ssh into {} and restart nginx",
            "Failed password for root from {} port 22",
            "La connexion suspecte venait de {}.",
            "Whitelist {} for the partner VPN.",
            "peer {} disconnected",
        ],
        "URL" => &[
            "The report is at {} if you need it.",
            "Open {} and click reset.",
            "link: {}",
            "{\"callback_url\": \"{}\"}",
            "Mehr Infos unter {} im Intranet.",
            "see {} for the steps",
            "Redirecting to {} after login",
            "Puedes descargarlo en {} hoy.",
            "I bookmarked {} for the patient portal.",
            "GET {} 200",
        ],
        "DATE_OF_BIRTH" => &[
            "I was born on {} in Lisbon.",
            "DOB: {}",
            "Date of birth: {}",
            "{\"patient\": {\"dob\": \"{}\"}}",
            "Geburtsdatum: {}",
            "Fecha de nacimiento: {}",
            "my birthday is {} so I'm eligible",
            "Né le {} à Lyon.",
            "The patient, born {}, presented with a fever.",
            "birth date {} (verified with ID)",
            "Nata il {} a Torino.",
            "D.O.B. {}",
        ],
        "DATE_TIME" => &[
            "The meeting moved to {}.",
            "Invoice dated {} is still unpaid.",
            "Deadline: {}",
            "{\"created\": \"{}\", \"status\": \"open\"}",
            "Die Lieferung kommt am {}.",
            "We shipped the order on {}.",
            "La reunión es el {} a las diez.",
            "Release planned for {} pending QA.",
            "Le contrat prend effet le {}.",
            "last login {}",
        ],
        "US_PASSPORT" => &[
            "My passport number is {}.",
            "US passport no. {} expires next year.",
            "passport # {} was reported lost",
            "{\"travel_document\": {\"type\": \"passport\", \"number\": \"{}\"}}",
            "Passport: {} (United States)",
            "the traveler's passport number {} didn't scan at the gate",
            "Please enter passport {} in the booking.",
            "US passport {} issued in Chicago",
            "Reisepass-Nr. (USA): {}",
            "passport number: {}",
        ],
        "IN_AADHAAR" => &[
            "My Aadhaar number is {}.",
            "Aadhaar: {}",
            "aadhaar no {} linked to the bank account",
            "{\"kyc\": {\"aadhaar\": \"{}\"}}",
            "Please verify the Aadhaar card {} before onboarding.",
            "UIDAI number {} on the e-KYC form",
            "Aadhaar {} (masked copy attached)",
            "her aadhaar card number is {}",
            "Aadhaar No.: {}",
            "submitted aadhaar {} for the SIM",
        ],
        "IN_PAN" => &[
            "My PAN is {} for the TDS form.",
            "PAN: {}",
            "pan card {} attached",
            "{\"tax\": {\"pan\": \"{}\"}}",
            "Please quote PAN {} on the invoice.",
            "permanent account number {} verified",
            "PAN no. {} mismatched with name",
            "the vendor's PAN {} is on file",
            "PAN {}",
            "link PAN {} with Aadhaar by March",
        ],
        "UK_NHS" => &[
            "My NHS number is {}.",
            "NHS No: {}",
            "nhs number {} on the referral letter",
            "{\"patient\": {\"nhs_number\": \"{}\"}}",
            "Please confirm NHS number {} with the GP.",
            "NHS {} — allergy to penicillin",
            "the NHS no. {} didn't match the records",
            "NHS number: {}",
            "Referral for NHS patient {} received",
            "nhs# {}",
        ],
        "UK_NINO" => &[
            "My national insurance number is {}.",
            "NI number: {}",
            "NINO {} on the payslip",
            "{\"hr\": {\"nino\": \"{}\"}}",
            "Please add national insurance no. {} to the P45.",
            "ni no {} for the new starter",
            "National Insurance: {}",
            "her NI number {} is wrong on the form",
            "NINO: {}",
            "national insurance number {} confirmed",
        ],
        "MAC_ADDRESS" => &[
            "The laptop's MAC address is {}.",
            "DHCPACK on 10.0.0.0 to {} via eth0",
            "mac={} vendor=unknown",
            "{\"device\": {\"mac\": \"{}\"}}",
            "Please whitelist MAC {} on the guest network.",
            "Die MAC-Adresse {} ist gesperrt.",
            "hardware address {} seen twice",
            "wlan0 ether {} txqueuelen 1000",
            "MAC: {}",
            "device {} joined the network",
        ],
        "ABA_ROUTING_NUMBER" => &[
            "The routing number is {}.",
            "ABA routing: {}",
            "routing # {} for the direct deposit",
            "{\"ach\": {\"routing_number\": \"{}\"}}",
            "Use ABA {} and the checking account below.",
            "bank routing number {} looks wrong",
            "Routing no. {} (wire transfers)",
            "ABA number {} on the voided check",
            "routing number: {}",
            "ACH routing {} confirmed",
        ],
        "US_ITIN" => &[
            "My ITIN is {}.",
            "ITIN: {}",
            "individual taxpayer identification number {} on the 1040",
            "{\"taxpayer\": {\"itin\": \"{}\"}}",
            "Please file with ITIN {} this year.",
            "itin {} renewed",
            "Taxpayer ID (ITIN) {} is missing a digit",
            "the ITIN {} belongs to the spouse",
            "ITIN number: {}",
            "W-7 approved, itin {}",
        ],
        "ES_NIF" => &[
            "Mi DNI es {}.",
            "NIF: {}",
            "dni {} del titular",
            "{\"cliente\": {\"nif\": \"{}\"}}",
            "Por favor, indique el NIF {} en la factura.",
            "Documento nacional de identidad {} caducado",
            "my Spanish DNI is {}",
            "DNI/NIF {} verificado",
            "NIF del proveedor: {}",
            "el dni {} no coincide",
        ],
        "CA_SIN" => &[
            "My SIN is {}.",
            "Social insurance number: {}",
            "SIN {} on the T4",
            "{\"employee\": {\"sin\": \"{}\"}}",
            "Numéro d'assurance sociale : {}",
            "please update the SIN {} in payroll",
            "social insurance no. {} for the new hire",
            "NAS {} du client",
            "SIN: {}",
            "the employee's sin {} was rejected",
        ],
        "CRYPTO" => &[
            "Send the BTC to {} please.",
            "wallet: {}",
            "bitcoin address {} received 0.5",
            "{\"payout\": {\"btc_address\": \"{}\"}}",
            "Meine Bitcoin-Adresse ist {}.",
            "donations: {}",
            "withdraw to {} (my cold wallet)",
            "Envía los bitcoins a {} hoy.",
            "BTC {}",
            "pay to {} and send the txid",
        ],
        _ => &[],
    }
}

fn value(kind: &str, r: &mut Rng) -> String {
    match kind {
        "EMAIL_ADDRESS" => v::email(r),
        "PHONE_NUMBER" => v::phone(r),
        "CREDIT_CARD" => v::card(r, true),
        "IBAN_CODE" => v::iban(r, true),
        "US_SSN" => v::ssn(r, true),
        "IP_ADDRESS" => v::ip(r),
        "URL" => v::url(r),
        "DATE_OF_BIRTH" => v::date(r, true),
        "DATE_TIME" => v::date(r, false),
        "US_PASSPORT" => v::us_passport(r),
        "IN_AADHAAR" => v::aadhaar(r, true),
        "IN_PAN" => v::pan(r),
        "UK_NHS" => v::nhs(r, true),
        "UK_NINO" => v::nino(r, true),
        "MAC_ADDRESS" => v::mac(r),
        "ABA_ROUTING_NUMBER" => v::aba(r, true),
        "US_ITIN" => v::itin(r),
        "ES_NIF" => v::nif(r, true),
        "CA_SIN" => v::sin(r, true),
        "CRYPTO" => v::bitcoin(r, true),
        _ => String::new(),
    }
}

/// Look-alikes: a template with its context and a value that breaks one rule of the kind.
fn lookalikes(r: &mut Rng) -> Vec<(&'static str, &'static [&'static str], String)> {
    vec![
        (
            "CREDIT_CARD",
            &[
                "My card number is {} but it keeps failing.",
                "Kartennummer {} wurde abgelehnt.",
                "card={} status=invalid",
                "charge card {} for the order",
            ],
            v::card(r, false),
        ),
        (
            "IBAN_CODE",
            &[
                "IBAN: {}",
                "Überweisung auf {} bitte.",
                "payout account {} rejected",
                "Cuenta {} para el pago",
            ],
            v::iban(r, false),
        ),
        (
            "US_SSN",
            &[
                "SSN: {}",
                "my social security number is {}",
                "ssn={} lookup=failed",
                "Social security no. {} on the form",
            ],
            v::ssn(r, false),
        ),
        (
            "IN_AADHAAR",
            &[
                "Aadhaar: {}",
                "my aadhaar number is {}",
                "aadhaar no {} on the form",
                "Aadhaar card {} submitted",
            ],
            v::aadhaar(r, false),
        ),
        (
            "UK_NHS",
            &[
                "NHS number: {}",
                "nhs no {} on the letter",
                "NHS {} referral",
                "patient NHS number {}",
            ],
            v::nhs(r, false),
        ),
        (
            "UK_NINO",
            &[
                "NI number: {}",
                "national insurance number {}",
                "NINO {} on the payslip",
                "ni no {}",
            ],
            v::nino(r, false),
        ),
        (
            "ABA_ROUTING_NUMBER",
            &[
                "routing number {}",
                "ABA: {}",
                "routing # {} for deposit",
                "ABA routing {} on the check",
            ],
            v::aba(r, false),
        ),
        (
            "ES_NIF",
            &[
                "DNI: {}",
                "mi NIF es {}",
                "NIF {} del cliente",
                "dni {} caducado",
            ],
            v::nif(r, false),
        ),
        (
            "CA_SIN",
            &[
                "SIN: {}",
                "social insurance number {}",
                "my SIN is {}",
                "SIN {} on the T4",
            ],
            v::sin(r, false),
        ),
        (
            "CRYPTO",
            &[
                "wallet: {}",
                "send BTC to {}",
                "bitcoin address {}",
                "pay to {} today",
            ],
            v::bitcoin(r, false),
        ),
        (
            "PHONE_NUMBER",
            &[
                "ISBN {} (paperback)",
                "call {} now",
                "extension {} at the front desk",
                "tel: {}",
            ],
            v::phone_lookalike(r),
        ),
        (
            "IP_ADDRESS",
            &[
                "Upgraded the driver to {} last night.",
                "release {} fixes the crash",
                "requires python>={} or later",
                "firmware version {} installed",
            ],
            v::version(r),
        ),
        (
            "DATE_TIME",
            &[
                "build {} passed",
                "Bumped the package to {}.",
                "version {} changelog",
                "tag {} pushed",
            ],
            v::version(r),
        ),
        (
            "US_PASSPORT",
            &[
                "commit {} fixed the passport form",
                "passport photo checksum {}",
                "sha1 {} of the passport scan",
                "request id {} (passport renewal)",
            ],
            v::digest(r),
        ),
        (
            "US_SSN",
            &[
                "object id {}",
                "etag {} for the SSN lookup page",
                "trace {} completed",
                "digest: {}",
            ],
            v::digest(r),
        ),
        (
            "EMAIL_ADDRESS",
            &[
                "pin the dependency to {}",
                "install {} with npm",
                "yarn add {}",
                "we depend on {}",
            ],
            format!(
                "{}@{}.{}.{}",
                r.pick(&["lodash", "react", "express", "@babel/core"]),
                r.range(0, 20),
                r.range(0, 40),
                r.range(0, 99)
            ),
        ),
        (
            "URL",
            &[
                "edit {} and rerun the tests",
                "the config lives in {}",
                "see {} for details",
                "renamed {} yesterday",
            ],
            r.pick(&[
                "README.md",
                "main.rs",
                "setup.py",
                "index.ts",
                "notes.txt",
                "config.yml",
                "app.js",
                "go.mod",
            ])
            .to_string(),
        ),
        (
            "MAC_ADDRESS",
            &[
                "the run took {} on the CI box",
                "elapsed {}",
                "timer shows {}",
                "duration={}",
            ],
            format!(
                "{:02}:{:02}:{:02}",
                r.range(0, 23),
                r.range(0, 59),
                r.range(0, 59)
            ),
        ),
        (
            "US_ITIN",
            &[
                "order number {} shipped",
                "ticket {} closed",
                "invoice {} paid",
                "tracking {} delivered",
            ],
            format!(
                "9{:02}-{:02}-{:04}",
                r.range(0, 99),
                r.range(10, 49),
                r.range(0, 9999)
            ),
        ),
    ]
}

const CLEAN: &[&str] = &[
    "Can you summarise the attached meeting notes in three bullet points?",
    "The build failed because the linker ran out of memory; retrying with fewer jobs.",
    "Wie spät ist es in Tokio, wenn es hier Mittag ist?",
    "fn main() { let total: u64 = (1..=100).sum(); println!(\"{total}\"); }",
    "Please rewrite this paragraph so it sounds less formal.",
    "¿Cuál es la diferencia entre un préstamo y una hipoteca?",
    "INFO worker started pool=8 queue=default",
    "We need three more chairs for the workshop on Thursday.",
    "Le rapport trimestriel montre une hausse de douze pour cent.",
    "SELECT name, count(*) FROM orders GROUP BY name ORDER BY 2 DESC;",
    "The quick brown fox jumps over the lazy dog.",
    "Room 4 has the projector; room 7 only has a whiteboard.",
    "Our team won 3 to 1 after extra time.",
    "Set the timeout to 30 seconds and the retries to 5.",
    "Pour the batter into a 24 cm tin and bake for 40 minutes.",
    "The patient reports mild headaches, no fever, sleeping well.",
    "Version control makes it easy to undo a bad change.",
    "Divide 144 by 12 and add 7 to the result.",
    "Der Zug hat heute 15 Minuten Verspätung.",
    "Our Q3 revenue grew while costs stayed flat.",
    "kubectl rollout restart deployment/api -n prod",
    "He ran 42 km in just under four hours.",
    "Translate 'good morning' into Italian and Portuguese.",
    "ERROR connection reset by peer (retry 2 of 3)",
    "The recipe needs 2 eggs, 250 g flour and a pinch of salt.",
    "Page 12 of the manual explains the reset button.",
    "Please book a table for 6 people at 8 pm.",
    "La clase de yoga empieza a las siete y media.",
    "The invoice total is 1,250.00 EUR including VAT.",
    "Our office is closed on public holidays.",
    "warning: unused variable `count` at line 88",
    "Chapter 3 covers hash maps and chapter 4 covers trees.",
    "Rate limit: 600 requests per minute per key.",
    "Il treno per Milano parte dal binario 9.",
    "The museum is free on the first Sunday of the month.",
    "Please review PR 4812 before the release.",
];

/// The PII corpus of `split`.
pub fn corpus(split: Split) -> Vec<Case> {
    let mut r = Rng::new(split.seed());
    let mut cases = Vec::new();
    for kind in KINDS {
        let ts = split.pick(templates(kind));
        for _ in 0..PER_KIND {
            let t = *r.pick(&ts);
            let value = value(kind, &mut r);
            cases.push(fill(t, &[(kind, value)], Label::Entities));
        }
    }
    // Several entities in one text.
    let forms = split.pick(&[
        "Name: {}\nEmail: {}\nPhone: {}",
        "Hi, I'm moving. New email {} and my phone is {}; card {} stays the same.",
        "Kunde {} / Tel. {} / IBAN {}",
        "{\"email\": \"{}\", \"ip\": \"{}\", \"dob\": \"{}\"}",
        "Contacto: {}, móvil {}, cuenta {}",
        "ssn {} dob {} email {}",
    ]);
    for i in 0..40 {
        let t = forms[i % forms.len()];
        let kinds: &[&str] = match t {
            t if t.starts_with("Name") => &["", "EMAIL_ADDRESS", "PHONE_NUMBER"],
            t if t.starts_with("Hi") => &["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"],
            t if t.starts_with("Kunde") => &["", "PHONE_NUMBER", "IBAN_CODE"],
            t if t.starts_with('{') => &["EMAIL_ADDRESS", "IP_ADDRESS", "DATE_OF_BIRTH"],
            t if t.starts_with("Contacto") => &["EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE"],
            _ => &["US_SSN", "DATE_OF_BIRTH", "EMAIL_ADDRESS"],
        };
        let vals: Vec<(&'static str, String)> = kinds
            .iter()
            .map(|k| {
                if k.is_empty() {
                    (
                        "",
                        format!(
                            "{} {}",
                            r.pick(&["Ana", "Tom", "Wei"]),
                            r.pick(&["Ruiz", "Berg", "Park"])
                        ),
                    )
                } else {
                    (*k, value(k, &mut r))
                }
            })
            .collect();
        cases.push(fill(t, &vals, Label::Entities));
    }
    for _ in 0..8 {
        for (kind, ts, value) in lookalikes(&mut r) {
            let ts = split.pick(ts);
            let t = *r.pick(&ts);
            cases.push(fill(t, &[("", value)], Label::LookAlike(kind)));
        }
    }
    for t in split.pick(CLEAN) {
        cases.push(fill(t, &[], Label::Entities));
    }
    cases
}
