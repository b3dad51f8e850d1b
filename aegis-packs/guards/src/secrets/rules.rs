//! The credential rules of the [`Secrets`](super::Secrets) guard.
//!
//! Each rule is a vendor-specific, prefix-anchored pattern where the vendor has a prefix, else
//! a pattern that requires a naming context (`cohere ... = <40 chars>`). `keywords` are literals
//! of which at least one must occur for the rule to run (a leading `~` makes the keyword
//! ASCII-case-insensitive); they feed one Aho-Corasick prefilter. When the pattern has
//! capture groups, the first group that participates is the secret (what gets redacted);
//! otherwise the whole match. `\b` means an ASCII word boundary. Every pattern is bounded:
//! a unit test checks that each has a finite maximum match length.

/// Specific vendor format: wins over generic rules and the entropy detector.
pub(crate) const TIER_VENDOR: u8 = 2;
/// Generic, context-based rule.
pub(crate) const TIER_GENERIC: u8 = 1;

/// One credential type.
pub(crate) struct Rule {
    pub(crate) id: &'static str,
    pub(crate) keywords: &'static [&'static str],
    pub(crate) pattern: &'static str,
    pub(crate) tier: u8,
    /// Judges a match: the secret (the capture group) and the whole match.
    pub(crate) validate: Option<fn(&str, &str) -> bool>,
    /// Report the whole match (a connection string) while redacting only the secret.
    pub(crate) report_whole: bool,
}

const fn vendor(
    id: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
) -> Rule {
    Rule {
        id,
        keywords,
        pattern,
        tier: TIER_VENDOR,
        validate: None,
        report_whole: false,
    }
}

const fn generic(
    id: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
) -> Rule {
    Rule {
        id,
        keywords,
        pattern,
        tier: TIER_GENERIC,
        validate: None,
        report_whole: false,
    }
}

/// Values that stand in for a secret rather than being one (lowercase, matched anywhere).
const PLACEHOLDERS: &[&str] = &[
    "password",
    "passwd",
    "changeme",
    "change_me",
    "change-me",
    "replace",
    "example",
    "placeholder",
    "redacted",
    "your_",
    "your-",
    "yourpass",
    "yoursecret",
    "yourtoken",
    "xxxx",
    "****",
    "....",
    "dummy",
    "sample",
    "_here",
    "-here",
    "todo",
    "tbd",
    "fixme",
    "insert_",
    "enter_",
    "secret_value",
    "mysecret",
    "notasecret",
    "not-a-secret",
];

/// Values that are code reading the secret from elsewhere, not a secret: `os.environ["X"]`,
/// `getenv("X")`, `config.db.password`, `self.token`.
const CODE_REFERENCES: &[&str] = &[
    "os.",
    "process.",
    "env.",
    "config.",
    "settings.",
    "self.",
    "this.",
    "getenv",
    "secrets.",
    "vault.",
    "context.",
    "ctx.",
    "request.",
    "args.",
    "params.",
];

/// Words after a secret-naming key that make it name something else: `password_hash`,
/// `token_ttl`, `api_key_header`, `secret_name`.
const NOT_A_SECRET_KEY: &[&str] = &[
    "hash",
    "hashed",
    "digest",
    "length",
    "len",
    "min",
    "max",
    "policy",
    "file",
    "path",
    "name",
    "id",
    "type",
    "header",
    "field",
    "label",
    "prompt",
    "hint",
    "changed",
    "updated",
    "expires",
    "expiry",
    "expiration",
    "at",
    "ttl",
    "count",
    "reset",
    "required",
    "enabled",
    "format",
    "regex",
    "pattern",
    "env",
    "var",
    "ref",
    "version",
    "url",
    "endpoint",
    "uri",
    "strength",
    "rotation",
    "lifetime",
    "timeout",
    "mode",
    "store",
    "manager",
    "provider",
    "size",
    "bucket",
];

/// Whether `v` (quotes trimmed) is a placeholder, a reference or other non-secret filler.
fn filler(v: &str) -> bool {
    let lv = v.to_ascii_lowercase();
    v.is_empty()
        || v.starts_with(['$', '<', '{', '%', '*', '/', '~'])
        || v.starts_with("./")
        || v.ends_with(['>', '}'])
        || ["${", "$(", "{{", "%(", "<", ">"].iter().any(|p| v.contains(p))
        || PLACEHOLDERS.iter().any(|p| lv.contains(p))
        || CODE_REFERENCES.iter().any(|p| lv.starts_with(p))
        || v.contains(['(', '['])
        || ["true", "false", "null", "nil", "none", "undefined"].contains(&lv.as_str())
        // One character repeated, or SCREAMING_SNAKE words (`REPLACE_ME`, `API_TOKEN`).
        || v.bytes().all(|b| b == v.as_bytes()[0])
        || v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        // A dotted identifier path (`settings.db.password`).
        || (v.contains('.') && v.bytes().all(|b| b.is_ascii_alphabetic() || b == b'.' || b == b'_'))
}

/// The key of an assignment (`DB_PASSWORD`, `app.config['SECRET_KEY']`) names a secret and
/// not something about one (`password_hash`, `token_ttl`).
fn secret_key(whole: &str) -> bool {
    let key: String = whole
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .collect();
    let lower = key.to_ascii_lowercase();
    let kw = [
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "apikey",
        "api_key",
        "api-key",
        "access_token",
        "access-token",
        "auth_token",
        "auth-token",
        "token",
        "credentials",
        "credential",
        "private_key",
        "private-key",
    ]
    .iter()
    .filter_map(|k| lower.find(k).map(|i| i + k.len()))
    .min();
    let Some(after) = kw else { return true };
    // Split what follows the keyword into words: on separators and camelCase humps.
    let rest = &key[after.min(key.len())..];
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in rest.chars() {
        let hump = c.is_ascii_uppercase() && word.ends_with(|l: char| l.is_ascii_lowercase());
        if (!c.is_ascii_alphanumeric() || hump) && !word.is_empty() {
            words.push(std::mem::take(&mut word).to_ascii_lowercase());
        }
        if c.is_ascii_alphanumeric() {
            word.push(c);
        }
    }
    if !word.is_empty() {
        words.push(word.to_ascii_lowercase());
    }
    !words.iter().any(|w| NOT_A_SECRET_KEY.contains(&w.as_str()))
}

/// A password-like value under a secret-naming key: not filler, at least two character
/// classes.
fn plausible_password(v: &str, whole: &str) -> bool {
    let v = v.trim_matches(|c| c == '"' || c == '\'');
    if v.len() < 8 || filler(v) || !secret_key(whole.trim_start_matches('-')) {
        return false;
    }
    let classes = [
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
        v.bytes().any(|b| !b.is_ascii_alphanumeric()),
    ];
    classes.iter().filter(|c| **c).count() >= 2
}

/// Connection-string passwords: anything but placeholders and references.
fn plausible_url_password(v: &str, _whole: &str) -> bool {
    !(filler(v) || v.eq_ignore_ascii_case("pass") || v.eq_ignore_ascii_case("pw"))
}

// Trailing boundary for token bodies whose alphabet includes `-`/`_` (so `\b` would be wrong).
// It consumes one character; the secret is the capture group.
macro_rules! tok_end {
    () => {
        r"(?:[^A-Za-z0-9_-]|$)"
    };
}

/// Every rule, in priority order for ties.
pub(crate) static RULES: &[Rule] = &[
    // ---- cloud providers
    vendor(
        "aws_access_key_id",
        &["AKIA", "ASIA", "ABIA", "ACCA", "A3T"],
        r"\b((?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16})\b",
    ),
    generic(
        "aws_secret_access_key",
        &["~aws"],
        r#"(?i:aws)[A-Za-z0-9_ .-]{0,20}?(?i:secret|private)[A-Za-z0-9_ .-]{0,20}?["']?\s{0,4}[:=]{1,2}\s{0,4}["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
    ),
    vendor(
        "gcp_api_key",
        &["AIza"],
        concat!(r"\b(AIza[0-9A-Za-z_-]{35})", tok_end!()),
    ),
    vendor(
        "gcp_service_account_key",
        &["private_key_id"],
        r#""private_key_id"\s{0,4}:\s{0,4}"([a-f0-9]{40})""#,
    ),
    vendor(
        "google_oauth_client_secret",
        &["GOCSPX-"],
        concat!(r"\b(GOCSPX-[A-Za-z0-9_-]{28})", tok_end!()),
    ),
    vendor(
        "google_oauth_access_token",
        &["ya29."],
        concat!(r"\b(ya29\.[0-9A-Za-z_-]{30,400})", tok_end!()),
    ),
    vendor(
        "azure_storage_account_key",
        &["~AccountKey="],
        r"(?i:AccountKey)=([A-Za-z0-9+/]{86}==)",
    ),
    vendor(
        "azure_sas_token",
        &["sig="],
        r"\bsv=\d{4}-\d{2}-\d{2}&[A-Za-z0-9=&%:._-]{0,200}?\bsig=([A-Za-z0-9%/+]{40,100})",
    ),
    vendor(
        "azure_ad_client_secret",
        &["Q~"],
        r"(?:^|[^A-Za-z0-9_~.-])([a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34})(?:[^A-Za-z0-9_~.-]|$)",
    ),
    vendor(
        "alibaba_access_key_id",
        &["LTAI"],
        r"\b(LTAI[A-Za-z0-9]{20})\b",
    ),
    vendor(
        "digitalocean_token",
        &["dop_v1_", "doo_v1_", "dor_v1_"],
        r"\b(do[opr]_v1_[a-f0-9]{64})\b",
    ),
    vendor(
        "flyio_token",
        &["fo1_", "FlyV1 fm2_"],
        concat!(
            r"\b(fo1_[A-Za-z0-9_-]{43}|FlyV1 fm2_[A-Za-z0-9+/=_-]{100,600})",
            tok_end!()
        ),
    ),
    vendor(
        "heroku_api_key",
        &["HRKU-"],
        concat!(r"\b(HRKU-[A-Za-z0-9_-]{60})", tok_end!()),
    ),
    generic(
        "heroku_api_key_legacy",
        &["~heroku"],
        r"(?i:heroku)[A-Za-z0-9_ .-]{0,20}?(?i:key|token|secret)[A-Za-z0-9_ .-]{0,12}?[\x22']?\s{0,4}[:=]{1,2}\s{0,4}[\x22']?\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b",
    ),
    // ---- source hosting / CI
    vendor("github_pat", &["ghp_"], r"\b(ghp_[A-Za-z0-9]{36})\b"),
    vendor(
        "github_fine_grained_pat",
        &["github_pat_"],
        r"\b(github_pat_[A-Za-z0-9_]{82})\b",
    ),
    vendor(
        "github_oauth_token",
        &["gho_"],
        r"\b(gho_[A-Za-z0-9]{36})\b",
    ),
    vendor(
        "github_app_token",
        &["ghu_", "ghs_"],
        r"\b((?:ghu|ghs)_[A-Za-z0-9]{36})\b",
    ),
    vendor(
        "github_refresh_token",
        &["ghr_"],
        r"\b(ghr_[A-Za-z0-9]{36,76})\b",
    ),
    vendor(
        "gitlab_pat",
        &["glpat-"],
        concat!(r"\b(glpat-[A-Za-z0-9_.-]{20,300})", tok_end!()),
    ),
    vendor(
        "gitlab_runner_token",
        &["glrt-", "GR1348941"],
        concat!(r"\b((?:glrt-|GR1348941)[A-Za-z0-9_.-]{20,300})", tok_end!()),
    ),
    vendor(
        "gitlab_deploy_token",
        &["gldt-"],
        concat!(r"\b(gldt-[A-Za-z0-9_-]{20,64})", tok_end!()),
    ),
    vendor(
        "gitlab_pipeline_trigger_token",
        &["glptt-"],
        r"\b(glptt-[a-f0-9]{40})\b",
    ),
    vendor(
        "bitbucket_app_password",
        &["ATBB"],
        r"\b(ATBB[A-Za-z0-9_=.-]{32})\b",
    ),
    vendor(
        "atlassian_api_token",
        &["ATATT3"],
        concat!(r"\b(ATATT3[A-Za-z0-9_=-]{150,250})", tok_end!()),
    ),
    vendor("npm_token", &["npm_"], r"\b(npm_[A-Za-z0-9]{36})\b"),
    vendor(
        "pypi_token",
        &["pypi-AgEIcHlwaS5vcmc"],
        concat!(r"\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,300})", tok_end!()),
    ),
    vendor(
        "dockerhub_pat",
        &["dckr_pat_"],
        concat!(r"\b(dckr_pat_[A-Za-z0-9_-]{27})", tok_end!()),
    ),
    vendor(
        "terraform_cloud_token",
        &[".atlasv1."],
        concat!(
            r"\b([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})",
            tok_end!()
        ),
    ),
    vendor(
        "vault_token",
        &["hvs.", "hvb."],
        concat!(r"\b((?:hvs|hvb)\.[A-Za-z0-9_-]{24,300})", tok_end!()),
    ),
    vendor(
        "databricks_token",
        &["dapi"],
        r"\b(dapi[a-f0-9]{32}(?:-\d)?)\b",
    ),
    vendor(
        "doppler_token",
        &["dp."],
        r"\b(dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44})\b",
    ),
    vendor("pulumi_access_token", &["pul-"], r"\b(pul-[a-f0-9]{40})\b"),
    vendor(
        "grafana_service_account_token",
        &["glsa_"],
        r"\b(glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})\b",
    ),
    vendor(
        "grafana_cloud_token",
        &["glc_"],
        r"\b(glc_[A-Za-z0-9+/]{32,400}={0,2})",
    ),
    vendor(
        "postman_api_key",
        &["PMAK-"],
        r"\b(PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b",
    ),
    vendor(
        "supabase_access_token",
        &["sbp_"],
        r"\b(sbp_[a-f0-9]{40})\b",
    ),
    vendor(
        "planetscale_token",
        &["pscale_tkn_", "pscale_pw_", "pscale_oauth_"],
        concat!(
            r"\b(pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,64})",
            tok_end!()
        ),
    ),
    vendor(
        "age_secret_key",
        &["AGE-SECRET-KEY-1"],
        r"\b(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})\b",
    ),
    // ---- messaging
    vendor(
        "slack_bot_token",
        &["xoxb-"],
        r"\b(xoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24})\b",
    ),
    vendor(
        "slack_user_token",
        &["xoxp-", "xoxe-"],
        r"\b(xox[pe](?:-[0-9]{10,13}){3}-[a-f0-9]{32})\b",
    ),
    vendor(
        "slack_app_token",
        &["xapp-"],
        r"\b(xapp-\d-[A-Z0-9]{9,11}-\d{10,13}-[a-f0-9]{64})\b",
    ),
    vendor(
        "slack_webhook_url",
        &["hooks.slack.com"],
        r"(https://hooks\.slack\.com/(?:services|workflows)/T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24})\b",
    ),
    vendor(
        "discord_bot_token",
        &["~discord", "~bot"],
        concat!(
            r"\b([MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38})",
            tok_end!()
        ),
    ),
    vendor(
        "discord_webhook_url",
        &["~discord"],
        concat!(
            r"(https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{17,20}/[A-Za-z0-9_-]{60,80})",
            tok_end!()
        ),
    ),
    vendor(
        "telegram_bot_token",
        &[":AA"],
        concat!(r"(?:bot|\b)(\d{8,10}:AA[A-Za-z0-9_-]{33})", tok_end!()),
    ),
    vendor("twilio_api_key", &["SK"], r"\b(SK[0-9a-fA-F]{32})\b"),
    vendor(
        "sendgrid_api_key",
        &["SG."],
        concat!(r"\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})", tok_end!()),
    ),
    vendor("mailgun_api_key", &["key-"], r"\b(key-[0-9a-f]{32})\b"),
    vendor(
        "mailchimp_api_key",
        &["-us"],
        r"\b([0-9a-f]{32}-us[0-9]{1,2})\b",
    ),
    // ---- payments / commerce
    vendor(
        "stripe_secret_key",
        &["sk_live_", "sk_test_"],
        r"\b(sk_(?:live|test)_[A-Za-z0-9]{24,247})\b",
    ),
    vendor(
        "stripe_restricted_key",
        &["rk_live_", "rk_test_"],
        r"\b(rk_(?:live|test)_[A-Za-z0-9]{24,247})\b",
    ),
    vendor(
        "stripe_webhook_secret",
        &["whsec_"],
        r"\b(whsec_[A-Za-z0-9]{32,64})\b",
    ),
    vendor(
        "square_access_token",
        &["EAAA", "sq0atp-"],
        concat!(r"\b((?:EAAA|sq0atp-)[A-Za-z0-9_-]{22,60})", tok_end!()),
    ),
    vendor(
        "square_oauth_secret",
        &["sq0csp-"],
        concat!(r"\b(sq0csp-[A-Za-z0-9_-]{43})", tok_end!()),
    ),
    vendor(
        "braintree_access_token",
        &["access_token$production$", "access_token$sandbox$"],
        r"\b(access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32})\b",
    ),
    vendor(
        "shopify_access_token",
        &["shpat_"],
        r"\b(shpat_[a-fA-F0-9]{32})\b",
    ),
    vendor(
        "shopify_custom_app_token",
        &["shpca_"],
        r"\b(shpca_[a-fA-F0-9]{32})\b",
    ),
    vendor(
        "shopify_private_app_token",
        &["shppa_"],
        r"\b(shppa_[a-fA-F0-9]{32})\b",
    ),
    vendor(
        "shopify_shared_secret",
        &["shpss_"],
        r"\b(shpss_[a-fA-F0-9]{32})\b",
    ),
    // ---- AI providers
    vendor(
        "openai_project_key",
        &["sk-proj-", "sk-svcacct-", "sk-admin-"],
        concat!(
            r"\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250})",
            tok_end!()
        ),
    ),
    vendor(
        "openai_api_key",
        &["sk-"],
        r"\b(sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|sk-[A-Za-z0-9]{48})\b",
    ),
    vendor(
        "anthropic_api_key",
        &["sk-ant-"],
        concat!(
            r"\b(sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,120})",
            tok_end!()
        ),
    ),
    generic(
        "cohere_api_key",
        &["~cohere"],
        r#"(?i:cohere)[A-Za-z0-9_ .-]{0,20}?["']?\s{0,4}[:=]{1,2}\s{0,4}["']?\b([A-Za-z0-9]{40})\b"#,
    ),
    generic(
        "mistral_api_key",
        &["~mistral"],
        r#"(?i:mistral)[A-Za-z0-9_ .-]{0,20}?["']?\s{0,4}[:=]{1,2}\s{0,4}["']?\b([A-Za-z0-9]{32})\b"#,
    ),
    vendor(
        "huggingface_token",
        &["hf_", "api_org_"],
        r"\b((?:hf|api_org)_[A-Za-z]{34})\b",
    ),
    vendor("replicate_api_token", &["r8_"], r"\b(r8_[A-Za-z0-9]{37})\b"),
    vendor("groq_api_key", &["gsk_"], r"\b(gsk_[A-Za-z0-9]{52})\b"),
    vendor(
        "perplexity_api_key",
        &["pplx-"],
        r"\b(pplx-[A-Za-z0-9]{48})\b",
    ),
    // ---- SaaS / observability
    vendor(
        "linear_api_key",
        &["lin_api_"],
        r"\b(lin_api_[A-Za-z0-9]{40})\b",
    ),
    vendor(
        "notion_token",
        &["secret_", "ntn_"],
        r"\b(secret_[A-Za-z0-9]{43}|ntn_[0-9]{11}[A-Za-z0-9]{35})\b",
    ),
    generic(
        "datadog_api_key",
        &["~datadog", "~dd_api", "~dd-api", "~dd_app", "~dd-app"],
        r#"(?i:datadog|dd[_-]api|dd[_-]app)[A-Za-z0-9_ .-]{0,20}?["']?\s{0,4}[:=]{1,2}\s{0,4}["']?\b([a-f0-9]{32}|[a-f0-9]{40})\b"#,
    ),
    vendor(
        "newrelic_user_api_key",
        &["NRAK-"],
        r"\b(NRAK-[A-Z0-9]{27})\b",
    ),
    vendor(
        "newrelic_insert_key",
        &["NRII-"],
        concat!(r"\b(NRII-[A-Za-z0-9_-]{32})", tok_end!()),
    ),
    vendor(
        "sentry_dsn",
        &["sentry.io"],
        r"\bhttps?://([a-f0-9]{32})@[a-z0-9.-]{1,100}\.sentry\.io/\d{1,12}\b",
    ),
    vendor(
        "sentry_auth_token",
        &["sntrys_", "sntryu_"],
        r"\b(sntrys_[A-Za-z0-9+/=_]{60,300}|sntryu_[a-f0-9]{64})",
    ),
    // ---- keys, tokens, connection strings
    vendor(
        "jwt",
        &["eyJ"],
        concat!(
            r"\b(eyJ[A-Za-z0-9_-]{10,600}\.eyJ[A-Za-z0-9_-]{10,3000}\.[A-Za-z0-9_-]{10,800})",
            tok_end!()
        ),
    ),
    Rule {
        validate: Some(plausible_url_password),
        report_whole: true,
        ..vendor(
            "postgres_connection_string",
            &["postgres"],
            r#"\bpostgres(?:ql)?://[^\s:@/"']{1,64}:([^\s@/"']{1,128})@[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?(?:/[^\s"\x27<>`]{0,256})?"#,
        )
    },
    Rule {
        validate: Some(plausible_url_password),
        report_whole: true,
        ..vendor(
            "mysql_connection_string",
            &["mysql"],
            r#"\bmysqlx?://[^\s:@/"']{1,64}:([^\s@/"']{1,128})@[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?(?:/[^\s"\x27<>`]{0,256})?"#,
        )
    },
    Rule {
        validate: Some(plausible_url_password),
        report_whole: true,
        ..vendor(
            "mongodb_connection_string",
            &["mongodb"],
            r#"\bmongodb(?:\+srv)?://[^\s:@/"']{1,64}:([^\s@/"']{1,128})@[A-Za-z0-9.,:-]{1,253}(?:/[^\s"\x27<>`]{0,256})?"#,
        )
    },
    Rule {
        validate: Some(plausible_url_password),
        report_whole: true,
        ..vendor(
            "redis_connection_string",
            &["redis"],
            r#"\brediss?://[^\s:@/"']{0,64}:([^\s@/"']{1,128})@[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?(?:/[^\s"\x27<>`]{0,256})?"#,
        )
    },
    Rule {
        validate: Some(plausible_url_password),
        report_whole: true,
        ..generic(
            "connection_string",
            &["://"],
            r#"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:@/"']{1,64}:([^\s@/"']{1,128})@[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?(?:/[^\s"\x27<>`]{0,256})?"#,
        )
    },
    generic(
        "authorization_header",
        &["~authorization"],
        r#"(?i:authorization)["']?\s{0,4}[:=]\s{0,4}["']?(?i:basic|bearer|token)\s{1,4}([A-Za-z0-9._~+/=-]{16,1024})"#,
    ),
    Rule {
        validate: Some(plausible_password),
        ..generic(
            "generic_secret_assignment",
            &[
                "~password",
                "~passwd",
                "~passphrase",
                "~pwd",
                "~secret",
                "~api_key",
                "~apikey",
                "~api-key",
                "~token",
                "~credential",
                "~private_key",
            ],
            // Three shapes, the secret in the first group that takes part:
            // `--token VALUE` / `--password=VALUE` (shell flags); `KEY = VALUE` where the key
            // names a secret (`DB_PASSWORD=`, `"api_key": "…"`, `app.config['SECRET_KEY'] =`,
            // `password: …`); and `key="ApiSecret" value="…"` (XML settings).
            concat!(
                r#"--(?i:password|passwd|token|api-key|apikey|secret|auth-token|access-token|client-secret)(?:=|\s{1,4})["']?([^"'\s]{8,128})"#,
                r#"|(?i:password|passwd|passphrase|pwd|secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|client[_-]?secret|private[_-]?key|token|credentials?)[A-Za-z0-9_.-]{0,24}["'\]]{0,2}\s{0,4}(?:=>|:=|[:=]{1,2})\s{0,4}(?:"([^"\s]{8,128})"|'([^'\s]{8,128})'|([^"'\s,;&<>]{8,128}))"#,
                r#"|(?i:key|name)\s{0,2}=\s{0,2}"[A-Za-z0-9_.-]{0,30}(?i:secret|password|token|apikey|api_key)[A-Za-z0-9_.-]{0,30}"\s{1,4}(?i:value)\s{0,2}=\s{0,2}"([^"\s]{8,128})""#,
            ),
        )
    },
];
