//! [`Acl`]: who may read a document.

use std::collections::BTreeMap;

use aegis_contracts::{Document, Error, Principal};
use serde::{Deserialize, Serialize};

/// The metadata key a document's [`Acl`] is kept under.
pub const ACL_KEY: &str = "acl";

/// Who may read a document: a reader is allowed when it is named (`principals`), in a
/// named team (`teams`), or the document is `public` — **and** it belongs to the document's
/// `org` when one is set (team names and "public" are per organisation: set `org` wherever
/// several share a store), **and** it holds every one of `labels` (`clearance = "secret"`).
/// A document with no ACL, or one naming nobody, is read by nobody: access is granted,
/// never assumed.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Acl {
    /// Readable by every authenticated principal (that holds the labels).
    #[serde(default)]
    pub public: bool,
    /// The organisation the document belongs to: readers of other organisations (or of
    /// none) are refused whatever else grants access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Principal ids that may read it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Teams whose members may read it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    /// Labels the reader must hold, every one (its principal's `labels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Acl {
    /// Readable by every authenticated principal.
    pub fn public() -> Self {
        Self {
            public: true,
            ..Self::default()
        }
    }

    /// Readable by these principals.
    pub fn principals<S: Into<String>>(ids: impl IntoIterator<Item = S>) -> Self {
        Self {
            principals: ids.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Readable by the members of these teams.
    pub fn teams<S: Into<String>>(teams: impl IntoIterator<Item = S>) -> Self {
        Self {
            teams: teams.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// And only by readers of organisation `org`.
    pub fn in_org(mut self, org: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self
    }

    /// And only by readers holding label `key` = `value`.
    pub fn requiring(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// `doc` with this ACL in its metadata.
    pub fn attach(&self, mut doc: Document) -> Document {
        doc.metadata.insert(
            ACL_KEY.to_owned(),
            serde_json::to_value(self).unwrap_or_default(),
        );
        doc
    }

    /// The ACL of `doc`: none is "nobody"; one that does not parse is an error naming the
    /// document (a typo must not open it up or lock it silently).
    pub fn of(doc: &Document) -> Result<Acl, Error> {
        match doc.metadata.get(ACL_KEY) {
            None => Ok(Acl::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::invalid_request(format!(
                    "document `{}`: `metadata.{ACL_KEY}` is not an ACL: {e}",
                    doc.id
                ))
            }),
        }
    }

    /// Whether `reader` may read a document with this ACL.
    pub fn allows(&self, reader: &Principal) -> bool {
        let granted = self.public
            || self.principals.contains(&reader.id)
            || reader
                .team
                .as_ref()
                .is_some_and(|t| self.teams.iter().any(|x| x == t));
        granted
            && self
                .org
                .as_ref()
                .is_none_or(|o| reader.org.as_ref() == Some(o))
            && self
                .labels
                .iter()
                .all(|(k, v)| reader.labels.get(k) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_is_granted_never_assumed() {
        let ada = Principal::new("ada").with_team("research");
        assert!(!Acl::default().allows(&ada), "no ACL: nobody");
        assert!(Acl::public().allows(&ada));
        assert!(Acl::principals(["ada"]).allows(&ada));
        assert!(!Acl::principals(["bob"]).allows(&ada));
        assert!(Acl::teams(["research"]).allows(&ada));
        assert!(!Acl::teams(["hr"]).allows(&ada));
        let of = |org: &str| {
            let mut p = ada.clone();
            p.org = Some(org.into());
            p
        };
        let acme = Acl::teams(["research"]).in_org("acme");
        assert!(!acme.allows(&ada), "a reader of no organisation");
        assert!(!acme.allows(&of("globex")), "another organisation's team");
        assert!(acme.allows(&of("acme")));
        assert!(!Acl::public().in_org("acme").allows(&of("globex")));
        let secret = Acl::public().requiring("clearance", "secret");
        assert!(!secret.allows(&ada), "a label it lacks");
        let mut cleared = ada.clone();
        cleared.labels.insert("clearance".into(), "secret".into());
        assert!(secret.allows(&cleared));
        let mut doc = Document::new("d", "text");
        doc.metadata
            .insert(ACL_KEY.into(), serde_json::json!({"teams": "hr"}));
        assert!(Acl::of(&doc).is_err(), "a malformed ACL is an error");
    }
}
