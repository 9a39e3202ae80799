//! Backup: one backup of a hosted resource, expired on the policy's backup schedule.

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    condition::Condition,
    names::{DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX},
};
use crate::kinds::ResourceKind;

/// A backup of one hosted resource of an account.
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "hosting.ecuni.se",
    version = "v1alpha1",
    kind = "Backup",
    doc = "A backup of a hosted resource",
    namespaced,
    shortname = "bkp",
    category = "hosting",
    status = "BackupStatus",
    derive = "PartialEq",
    cel,
    printcolumn(name = "Account", type_ = "string", json_path = ".spec.accountRef"),
    printcolumn(name = "Source", type_ = "string", json_path = ".spec.sourceRef.name"),
    printcolumn(name = "Taken", type_ = "string", json_path = ".spec.takenAt"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Bound",
        type_ = "string",
        description = "False while the Account it names does not exist",
        json_path = ".status.conditions[?(@.type==\"Bound\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Name of the Account whose data this backup holds (a DNS-1123 subdomain). Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("accountRef is immutable"))]
    #[schemars(pattern(DNS1123_SUBDOMAIN), length(max = DNS1123_SUBDOMAIN_MAX))]
    pub account_ref: String,
    /// The hosted resource (in the same namespace) this is a backup of.
    pub source_ref: BackupSource,
    /// When the backup was taken.
    pub taken_at: DateTime<Utc>,
}

/// Names the hosted resource a backup was taken of.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct BackupSource {
    /// Kind of the hosted resource.
    #[schemars(schema_with = "hosted_kind_schema")]
    #[serde(deserialize_with = "hosted_kind")]
    pub kind: ResourceKind,
    /// Name of the hosted resource.
    #[schemars(pattern(DNS1123_SUBDOMAIN), length(max = DNS1123_SUBDOMAIN_MAX))]
    pub name: String,
}

/// The schema of a backup's source kind: a hosted kind (a backup is never of a backup).
fn hosted_kind_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = ResourceKind::hosted().map(ResourceKind::as_str).collect();
    schemars::json_schema!({"type": "string", "enum": names})
}

/// Reads a backup's source kind: a hosted kind, as its schema says.
fn hosted_kind<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<ResourceKind, D::Error> {
    let kind = ResourceKind::deserialize(deserializer)?;
    if kind.is_hosted() {
        Ok(kind)
    } else {
        Err(serde::de::Error::custom(format!(
            "a backup's source is a hosted kind, not {kind}"
        )))
    }
}

/// The backup's schedule as the operator computed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// When the backup is erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Which rule of the backup schedule set `expiresAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_reason: Option<String>,
    /// Observations of the backup's retention state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
