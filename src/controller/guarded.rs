//! Watching bound objects that may not parse, in the manner of kube's `DeserializeGuard`.
//!
//! kube's `DeserializeGuard` keeps only the metadata of an object that fails to deserialize.
//! That is not enough here: the operator must know which Account a malformed object claims,
//! because that Account may not be reported Erased, nor its finalizer removed, while the object
//! exists (invariant 4). [`Guarded`] therefore also keeps the raw `spec.accountRef` and the path
//! of the field that failed (never its value, which may be personal data).
//!
//! Objects are also trimmed as they arrive: `managedFields` and kubectl's
//! `last-applied-configuration` annotation (a second copy of the whole object) are dropped, as
//! nothing the operator does reads them and they dominate a small object's size.

use std::borrow::Cow;

use kube::{Resource, api::ObjectMeta};
use serde::{Deserialize, Deserializer, de::DeserializeOwned, de::Error as _};

use crate::{api::Condition, kinds::BoundKind, retention::ResourceRef};

/// kubectl's copy of the last applied manifest.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A watched object: the object itself, or what could be read of it when it does not match
/// this operator's schema (e.g. written under a newer CRD version).
#[derive(Clone, Debug)]
pub struct Guarded<K>(pub Result<K, Malformed>);

/// An object that did not deserialize.
#[derive(Clone, Debug, PartialEq)]
pub struct Malformed {
    /// Its metadata (trimmed like every watched object's).
    pub metadata: ObjectMeta,
    /// `spec.accountRef`, when it is a string: the Account the object claims.
    pub account_ref: Option<String>,
    /// Where deserializing failed, as a path such as `spec.engine`.
    pub field: String,
    /// `status.conditions`, when they can be read: so the operator writes its report on the
    /// object only when it changes.
    pub conditions: Vec<Condition>,
}

impl<'de, K> Deserialize<'de> for Guarded<K>
where
    K: DeserializeOwned + Resource,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(deserializer)?;
        trim(&mut value);
        match serde_path_to_error::deserialize::<_, K>(&value) {
            Ok(object) => Ok(Self(Ok(object))),
            Err(error) => {
                let field = error.path().to_string();
                // Without readable metadata the object cannot even be named: that is a broken
                // API server, and the watch reports it as an error.
                let metadata = value
                    .get("metadata")
                    .map(ObjectMeta::deserialize)
                    .transpose()
                    .map_err(D::Error::custom)?
                    .unwrap_or_default();
                let account_ref = value
                    .pointer("/spec/accountRef")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                let conditions = value
                    .pointer("/status/conditions")
                    .and_then(|c| Vec::<Condition>::deserialize(c).ok())
                    .unwrap_or_default();
                Ok(Self(Err(Malformed {
                    metadata,
                    account_ref,
                    field,
                    conditions,
                })))
            }
        }
    }
}

/// Drops what the operator never reads and would only cost memory in every cache, before the
/// object is even parsed.
fn trim(value: &mut serde_json::Value) {
    if let Some(metadata) = value
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    {
        metadata.remove("managedFields");
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(serde_json::Value::as_object_mut)
        {
            annotations.remove(LAST_APPLIED);
        }
    }
}

impl<K: Resource> Resource for Guarded<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        match &self.0 {
            Ok(object) => object.meta(),
            Err(malformed) => &malformed.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.0 {
            Ok(object) => object.meta_mut(),
            Err(malformed) => &mut malformed.metadata,
        }
    }
}

impl<K: BoundKind> Guarded<K> {
    /// Which object this is.
    pub fn reference(&self) -> ResourceRef {
        let meta = self.meta();
        ResourceRef {
            kind: K::KIND,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Backup, Database, Website};
    use serde_json::json;

    /// The Account the object claims, as its compact cache keeps it.
    fn claimed<K: BoundKind>(guarded: &Guarded<K>) -> Option<String> {
        let compact = super::super::compact::Compact::of(guarded.clone());
        compact.body.claimed_account().map(str::to_owned)
    }

    #[test]
    fn a_valid_object_parses_and_is_trimmed() {
        let object = json!({
            "apiVersion": "hosting.ecuni.se/v1alpha1", "kind": "Website",
            "metadata": {"name": "www", "namespace": "ns",
                         "managedFields": [{"manager": "kubectl"}],
                         "annotations": {LAST_APPLIED: "{}", "keep": "me"}},
            "spec": {"accountRef": "acme", "hostnames": []},
        });
        let guarded: Guarded<Website> = serde_json::from_value(object).unwrap();
        let website = guarded.0.clone().unwrap();
        assert_eq!(website.spec.binding.account_ref, "acme");
        assert!(website.metadata.managed_fields.is_none());
        let annotations = website.metadata.annotations.unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["keep"]);
        assert_eq!(claimed(&guarded), Some("acme".to_owned()));
    }

    #[test]
    fn a_malformed_object_keeps_its_name_its_account_and_the_failing_field_but_no_value() {
        let object = json!({
            "apiVersion": "hosting.ecuni.se/v1alpha1", "kind": "Database",
            "metadata": {"name": "shop-db", "namespace": "ns", "uid": "u1"},
            "spec": {"accountRef": "acme", "engine": "secret-engine-name"},
        });
        let guarded: Guarded<Database> = serde_json::from_value(object).unwrap();
        let malformed = guarded.0.clone().unwrap_err();
        assert_eq!(malformed.metadata.name.as_deref(), Some("shop-db"));
        assert_eq!(malformed.account_ref.as_deref(), Some("acme"));
        assert_eq!(malformed.field, "spec.engine");
        assert!(!format!("{malformed:?}").contains("secret-engine-name"));
        assert_eq!(claimed(&guarded), Some("acme".to_owned()));
        assert_eq!(guarded.reference().to_string(), "Database ns/shop-db");
    }

    #[test]
    fn a_malformed_object_without_an_account_claims_none() {
        let object = json!({
            "metadata": {"name": "b", "namespace": "ns"},
            "spec": {"accountRef": 42},
        });
        let guarded: Guarded<Backup> = serde_json::from_value(object).unwrap();
        assert_eq!(claimed(&guarded), None);
        assert_eq!(guarded.0.unwrap_err().field, "spec.accountRef");
    }
}
