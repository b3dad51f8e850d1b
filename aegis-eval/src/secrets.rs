//! The secrets corpus: vendor credentials, secrets assigned in code, config, env files,
//! JSON/YAML and shell, whole connection strings; look-alikes (placeholders, hashes, UUIDs,
//! version strings, code reading a secret from elsewhere) and entity-free text.
//!
//! Every expected span has the kind `SECRET`: scoring asks whether the secret was found and
//! covered, not which of the pack's names it got.

use crate::{Case, Label, Rng, Split, fill, values as v};

/// The one kind of the secrets corpus.
pub const KIND: &str = "SECRET";

const LOWER_DIGITS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A vendor-format credential.
fn vendor(r: &mut Rng) -> String {
    match r.below(12) {
        0 => format!("AKIA{}", v::token(r, UPPER_DIGITS, 16)),
        1 => format!("ghp_{}", v::token(r, v::ALNUM, 36)),
        2 => format!(
            "xoxb-{}-{}-{}",
            r.range(100_000_000, 999_999_999),
            r.range(100_000_000, 999_999_999),
            v::token(r, v::ALNUM, 24)
        ),
        3 => format!("sk_live_{}", v::token(r, v::ALNUM, 24)),
        4 => format!("sk-proj-{}", v::token(r, B64URL, 48)),
        5 => format!("sk-ant-api03-{}", v::token(r, B64URL, 93)),
        6 => format!("AIza{}", v::token(r, B64URL, 35)),
        7 => format!("glpat-{}", v::token(r, B64URL, 20)),
        8 => format!("SG.{}.{}", v::token(r, B64URL, 22), v::token(r, B64URL, 43)),
        9 => format!("npm_{}", v::token(r, v::ALNUM, 36)),
        10 => {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.{}",
                b.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
                b.encode(format!(
                    r#"{{"sub":"{}","exp":{}}}"#,
                    r.range(1000, 99999),
                    r.range(1_700_000_000, 1_900_000_000)
                )),
                v::token(r, B64URL, 43)
            )
        }
        _ => format!("hf_{}", v::token(r, v::ALNUM, 34)),
    }
}

/// A secret a person or a generator chose: random mixed tokens or human-style passwords.
fn secret_value(r: &mut Rng) -> String {
    match r.below(4) {
        0 => {
            let n = r.range(16, 40) as usize;
            v::token(r, v::ALNUM, n)
        }
        1 => format!(
            "{}{}{}{}",
            r.pick(&[
                "Sunflower",
                "Tr0ub4dor",
                "Kangaroo",
                "Bluebird",
                "Marmalade",
                "Quokka"
            ]),
            r.pick(&["!", "#", "&", "_", "$"]),
            r.range(10, 9999),
            r.pick(&["x", "Q", "zz", "!"])
        ),
        2 => {
            let n = r.range(20, 32) as usize;
            v::token(r, LOWER_DIGITS, n)
        }
        _ => format!(
            "{}-{}",
            v::token(r, v::ALNUM, 12),
            v::token(r, v::ALNUM, 12)
        ),
    }
}

const VENDOR_TEMPLATES: &[&str] = &[
    "here's my key {} can you check why it fails",
    "export GITHUB_TOKEN={}",
    "Authorization: Bearer {}",
    "{\"credentials\": {\"token\": \"{}\"}}",
    "I accidentally committed {} to the repo, what now?",
    "client = Client(api_key=\"{}\")",
    "token: {}",
    "curl -H 'Authorization: token {}' https://api.example.com/v1/me",
    "Mein Schlüssel lautet {} und funktioniert nicht.",
    "# TODO rotate {}",
];

const ASSIGNMENT_TEMPLATES: &[&str] = &[
    "DB_PASSWORD={}",
    "password = \"{}\"",
    "{\"username\": \"svc\", \"password\": \"{}\"}",
    "api_key: {}",
    "export SECRET_KEY='{}'",
    "client_secret = '{}'",
    "mysql -u admin --password={} prod",
    "  auth_token: \"{}\"",
    "spring.datasource.password={}",
    "deploy --token {} --env prod",
    "STRIPE_API_KEY=\"{}\"",
    "const apiKey = \"{}\";",
    "<add key=\"ApiSecret\" value=\"{}\" />",
    "pwd: {}",
    "app.config['SECRET_KEY'] = '{}'",
    "access_token={}&user=42",
];

fn connection_string(r: &mut Rng) -> String {
    let user = r.pick(&["admin", "app", "svc_orders", "root", "reporting"]);
    let pass = secret_value(r).replace(['@', '/', ':', '#', '&', '$', '!'], "x");
    match r.below(5) {
        0 => format!("postgres://{user}:{pass}@db.internal:5432/orders"),
        1 => format!("mongodb+srv://{user}:{pass}@cluster0.ab12c.mongodb.net/app?retryWrites=true"),
        2 => format!("mysql://{user}:{pass}@10.0.3.7:3306/shop"),
        3 => format!("redis://:{pass}@cache.internal:6379/0"),
        _ => format!("amqp://{user}:{pass}@mq.internal:5672/vhost"),
    }
}

const CONNECTION_TEMPLATES: &[&str] = &[
    "DATABASE_URL={}",
    "the service can't connect with {} any idea?",
    "url: {}",
    "{\"dsn\": \"{}\"}",
    "engine = create_engine(\"{}\")",
    "psql {} -c 'select 1'",
    "spring.data.mongodb.uri={}",
    "Verbindung: {}",
];

/// A look-alike: a value of the right shape in the right place that is not a secret, with
/// the templates it reads naturally in.
fn lookalike(r: &mut Rng) -> (&'static [&'static str], String) {
    const ASSIGNED: &[&str] = &[
        "password = \"{}\"",
        "api_key: {}",
        "export TOKEN={}",
        "{\"secret\": \"{}\"}",
        "client_secret = '{}'",
        "DB_PASSWORD={}",
    ];
    const IDS: &[&str] = &[
        "commit {} fixed the auth bug",
        "request_id={} status=200",
        "checksum: {}",
        "merged {} into main",
        "trace_id {} (token refresh)",
        "sha256 of the key file: {}",
    ];
    match r.below(8) {
        0 | 1 => (
            ASSIGNED,
            r.pick(&[
                "changeme",
                "<your-api-key>",
                "********",
                "${DB_PASSWORD}",
                "xxxxxxxxxxxx",
                "YOUR_TOKEN_HERE",
                "{{ secret }}",
                "REPLACE_ME",
                "<password>",
                "%(token)s",
            ])
            .to_string(),
        ),
        2 => (
            ASSIGNED,
            r.pick(&[
                "os.environ[\"API_KEY\"]",
                "process.env.TOKEN",
                "getenv(\"SECRET\")",
                "settings.password",
                "self.token",
                "vault.read(\"db\")",
            ])
            .to_string(),
        ),
        3 | 4 => (IDS, v::digest(r)),
        5 => (
            &[
                "version = \"{}\"",
                "\"version\": \"{}\"",
                "tag {} released",
                "TOKENIZER_VERSION={}",
            ],
            v::version(r),
        ),
        6 => (
            &[
                "<script src=\"app.js\" integrity=\"{}\"></script>",
                "integrity: {}",
                "\"integrity\": \"{}\"",
                "subresource hash {}",
            ],
            format!(
                "sha384-{}",
                v::token(
                    r,
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                    64
                )
            ),
        ),
        _ => (
            &[
                "DATABASE_URL={}",
                "url: {}",
                "psql {} -c 'select 1'",
                "\"dsn\": \"{}\"",
            ],
            r.pick(&[
                "postgres://localhost:5432/app",
                "postgres://app:${DB_PASS}@db:5432/app",
                "mysql://root:<password>@127.0.0.1/shop",
                "redis://cache.internal:6379/0",
                "https://docs.example.com/guide",
            ])
            .to_string(),
        ),
    }
}

const CLEAN: &[&str] = &[
    "How do I rotate an API key without downtime?",
    "Passwords should be at least twelve characters long.",
    "fn verify(password: &str, hash: &str) -> bool { argon2::verify(hash, password) }",
    "The token bucket refills at 10 tokens per second.",
    "Set the secret in the vault and reference it from the config.",
    "INFO auth ok user=42 method=oauth",
    "Use `--password-stdin` instead of passing the password on the command line.",
    "Das Passwort muss Sonderzeichen enthalten.",
    "The API key header is called X-Api-Key.",
    "client_id = \"billing-service\"",
    "Our secret sauce is really just good tests.",
    "Store credentials in environment variables, never in the repository.",
    "timeout = 30\nretries = 5\nendpoint = \"https://api.example.com\"",
    "The JWT expired, so the user has to log in again.",
    "La contraseña se cambia cada noventa días.",
    "key_id: primary\nalgorithm: ed25519",
    "Please reset my password, I forgot it.",
    "SELECT id, password_changed_at FROM users WHERE active;",
    "The access token lifetime is one hour; refresh tokens last a week.",
    "Enable two-factor authentication for all admin accounts.",
];

/// The secrets corpus of `split`.
pub fn corpus(split: Split) -> Vec<Case> {
    let mut r = Rng::new(split.seed() ^ 0x5ec7);
    let mut cases = Vec::new();
    let vt = split.pick(VENDOR_TEMPLATES);
    let at = split.pick(ASSIGNMENT_TEMPLATES);
    let ct = split.pick(CONNECTION_TEMPLATES);
    for _ in 0..60 {
        let value = vendor(&mut r);
        cases.push(fill(r.pick::<&str>(&vt), &[(KIND, value)], Label::Entities));
    }
    for _ in 0..60 {
        let value = secret_value(&mut r);
        cases.push(fill(r.pick::<&str>(&at), &[(KIND, value)], Label::Entities));
    }
    for _ in 0..30 {
        let value = connection_string(&mut r);
        cases.push(fill(r.pick::<&str>(&ct), &[(KIND, value)], Label::Entities));
    }
    for _ in 0..40 {
        let (templates, value) = lookalike(&mut r);
        let templates = split.pick(templates);
        cases.push(fill(
            r.pick::<&str>(&templates),
            &[("", value)],
            Label::LookAlike(KIND),
        ));
    }
    for t in split.pick(CLEAN) {
        cases.push(fill(t, &[], Label::Entities));
    }
    cases
}
