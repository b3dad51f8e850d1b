//! `POST /v1/admin/runs/purge`: delete runs that ended before a given age (admin), and the
//! age format shared with `[server].run_retention` and `aegis runs purge --older-than`.

use std::{sync::Arc, time::Duration};

use aegis::{Error, ErrorKind};
use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Gateway, parse_json, require_admin};

/// The body of `POST /v1/admin/runs/purge`: `{"older_than": "30d"}`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Purge {
    /// An age: a whole number (up to 12 digits) and one unit, `30d`, `12h`, `90m` or `45s`.
    #[schemars(regex(pattern = AGE_PATTERN))]
    older_than: String,
}

/// The ages [`parse_age`] accepts, as a regular expression (for the API schema): Unicode
/// `White_Space` around, as `str::trim` removes.
const AGE_PATTERN: &str = concat!(
    "^[",
    aegis::white_space_chars!(),
    "]*[0-9]{1,12}[dhms][",
    aegis::white_space_chars!(),
    "]*(?![\\s\\S])"
);

/// An age like `30d`, `12h`, `90m`, `45s` (a whole number of up to 12 digits and one unit).
pub fn parse_age(text: &str) -> Result<Duration, Error> {
    let t = text.trim();
    let bad = || {
        Error::invalid_request(format!(
            "`{text}` is not an age: a whole number and a unit, like 30d, 12h, 90m or 45s"
        ))
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    if n.is_empty() || n.len() > 12 {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

/// Unix milliseconds `age` ago.
pub fn cutoff_ms(age: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    now.saturating_sub(age.as_millis() as u64)
}

pub(super) async fn purge(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let admin = require_admin(&gw, &headers).await?;
    // Purging deletes every team's and organisation's ended runs: a deployment-wide admin
    // only (no team, no org).
    if admin.team.is_some() || admin.org.is_some() {
        return Err(Error::new(
            ErrorKind::Forbidden,
            format!(
                "`{}` is an admin of a team or organisation; purging runs takes a deployment-wide admin",
                admin.id
            ),
        )
        .into());
    }
    let req: Purge = parse_json(&body)?;
    let age = parse_age(&req.older_than)?;
    let purged = gw
        .store_for("runs")?
        .purge_runs(cutoff_ms(age), &admin.id)
        .await?;
    tracing::info!(by = %admin.id, purged, older_than = %req.older_than, "runs purged");
    Ok(
        Json(json!({ "object": "aegis.purge", "purged": purged, "older_than": req.older_than }))
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_parse_with_their_unit_and_nonsense_is_refused() {
        assert_eq!(parse_age("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_age("12h").unwrap().as_secs(), 12 * 3_600);
        assert_eq!(parse_age(" 90m ").unwrap().as_secs(), 5_400);
        assert_eq!(parse_age("0s").unwrap().as_secs(), 0);
        for bad in ["", "d", "30", "30w", "-1d", "1.5h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
