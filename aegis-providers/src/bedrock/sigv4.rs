//! AWS Signature Version 4 for requests with an in-memory body, implemented from the
//! published specification with HMAC-SHA256 and checked against AWS's test-suite vectors.

use std::time::{SystemTime, UNIX_EPOCH};

use aegis_contracts::{Error, Secret};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Static AWS credentials. The secret parts never print.
#[derive(Clone)]
pub struct AwsCredentials {
    /// `AKIA...` / `ASIA...`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials (STS), sent as `x-amz-security-token`.
    pub session_token: Option<Secret>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

impl AwsCredentials {
    /// Long-term credentials.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: Secret) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
        }
    }

    /// Adds the session token of temporary credentials.
    pub fn with_session_token(mut self, token: Secret) -> Self {
        self.session_token = Some(token);
        self
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The signing key for a date (`YYYYMMDD`), region and service.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// RFC 3986 percent-encoding of everything but unreserved characters (`A-Za-z0-9-_.~`).
pub(crate) fn uri_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

/// The canonical URI: each segment of the path as sent, encoded once more (every service but
/// S3 double-encodes; a model id `…v1%3A0` on the wire signs as `…v1%253A0`).
pub(crate) fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(path.len() + 16);
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode(seg, &mut out);
    }
    out
}

fn canonical_query(url: &reqwest::Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(&k, &mut ek);
            uri_encode(&v, &mut ev);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDD'T'HHMMSS'Z'` for `at` (UTC).
pub(crate) fn amz_date(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Signs `req` in place: sets `x-amz-date` (and `x-amz-security-token`), then
/// `authorization`. Signed headers: `host`, `content-type` when present, and every
/// `x-amz-*` header. The body must be in memory (it is hashed).
pub(crate) fn sign(
    req: &mut reqwest::Request,
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    at: SystemTime,
) -> Result<(), Error> {
    let date_time = amz_date(at);
    let date = &date_time[..8];
    let headers = req.headers_mut();
    headers.insert(
        HeaderName::from_static("x-amz-date"),
        HeaderValue::from_str(&date_time).map_err(|_| Error::internal("bad x-amz-date"))?,
    );
    if let Some(token) = &creds.session_token {
        let mut v = HeaderValue::from_str(token.expose())
            .map_err(|_| Error::config("the AWS session token is not a valid header value"))?;
        v.set_sensitive(true);
        headers.insert(HeaderName::from_static("x-amz-security-token"), v);
    }
    let url = req.url();
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(Error::internal("a request to sign has no host")),
    };
    let mut signed: Vec<(String, String)> = vec![("host".to_owned(), host)];
    for (name, value) in req.headers() {
        let n = name.as_str();
        if n == "content-type" || n.starts_with("x-amz-") {
            let v = value
                .to_str()
                .map_err(|_| Error::internal(format!("header `{n}` is not text")))?;
            signed.push((n.to_owned(), v.trim().to_owned()));
        }
    }
    signed.sort();
    let mut canonical_headers = String::new();
    for (n, v) in &signed {
        canonical_headers.push_str(n);
        canonical_headers.push(':');
        canonical_headers.push_str(v);
        canonical_headers.push('\n');
    }
    let signed_names = signed
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let body = req
        .body()
        .and_then(reqwest::Body::as_bytes)
        .unwrap_or_default();
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method().as_str(),
        canonical_path(req.url().path()),
        canonical_query(req.url()),
        canonical_headers,
        signed_names,
        sha256_hex(body)
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let key = signing_key(creds.secret_access_key.expose(), date, region, service);
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
        creds.access_key_id
    );
    let mut v = HeaderValue::from_str(&auth)
        .map_err(|_| Error::config("the AWS access key id is not a valid header value"))?;
    v.set_sensitive(true);
    req.headers_mut().insert(http::header::AUTHORIZATION, v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn example() -> AwsCredentials {
        AwsCredentials::new(
            "AKIDEXAMPLE",
            Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        )
    }

    /// 2015-08-30T12:36:00Z, the instant of AWS's SigV4 test suite.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn signed(method: &str, url: &str) -> String {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_default();
        let mut req = reqwest::Request::new(
            method,
            reqwest::Url::parse(url).unwrap_or_else(|_| unreachable!()),
        );
        sign(&mut req, &example(), "us-east-1", "service", suite_time()).unwrap_or_default();
        req.headers()["authorization"]
            .to_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn aws_test_suite_vectors_match() {
        let prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=";
        for (name, method, url, sig) in [
            (
                "get-vanilla",
                "GET",
                "https://example.amazonaws.com/",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "get-vanilla-query-order-key-case",
                "GET",
                "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "post-vanilla",
                "POST",
                "https://example.amazonaws.com/",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
        ] {
            assert_eq!(signed(method, url), format!("{prefix}{sig}"), "{name}");
        }
    }

    #[test]
    fn signing_key_matches_the_documented_iam_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn bedrock_model_ids_are_double_encoded_in_the_canonical_path() {
        assert_eq!(
            canonical_path("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse"
        );
        assert_eq!(canonical_path("/"), "/");
    }

    #[test]
    fn amz_date_formats_utc_including_leap_days() {
        assert_eq!(amz_date(suite_time()), "20150830T123600Z");
        // 2024-02-29T23:59:59Z
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "20240229T235959Z"
        );
    }

    #[test]
    fn session_token_is_signed_and_sent() {
        let creds = example().with_session_token(Secret::new("TOKEN"));
        let mut req = reqwest::Request::new(
            reqwest::Method::POST,
            reqwest::Url::parse("https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse")
                .unwrap_or_else(|_| unreachable!()),
        );
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        sign(&mut req, &creds, "us-east-1", "bedrock", suite_time()).unwrap_or_default();
        assert_eq!(req.headers()["x-amz-security-token"], "TOKEN");
        let auth = req.headers()["authorization"].to_str().unwrap_or_default();
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert!(!format!("{creds:?}").contains("wJalr"));
    }
}
