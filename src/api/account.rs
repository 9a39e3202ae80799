//! Account: a customer's account, the root every hosted resource is bound to.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    binding::LegalBasis,
    condition::Condition,
    erasure_receipt::ErasedObject,
    names::{DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX},
};

/// The name of the RetentionPolicy an Account uses when it names none.
pub const DEFAULT_POLICY: &str = "default";

/// A customer account. Named by the account system; carries a pseudonymous `customerRef` and
/// no personal data.
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "hosting.ecuni.se",
    version = "v1alpha1",
    kind = "Account",
    cel,
    doc = "A customer account; terminating it erases everything without a remaining legal basis",
    shortname = "acct",
    category = "hosting",
    status = "AccountStatus",
    derive = "PartialEq",
    printcolumn(name = "Customer", type_ = "string", json_path = ".spec.customerRef"),
    printcolumn(name = "State", type_ = "string", json_path = ".spec.state"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Whether erasure proceeds as planned (the Ready condition)",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Hold",
        type_ = "string",
        description = "Whether a legal hold stops erasure (the OnHold condition)",
        json_path = ".status.conditions[?(@.type==\"OnHold\")].status"
    ),
    printcolumn(
        name = "Next deletion",
        type_ = "string",
        json_path = ".status.nextDeletionAt"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// Every termination states its own time, so a grace period always counts from the termination
// it belongs to: a time recorded by the operator could belong to an earlier termination that
// was reverted while the operator was not looking, and reusing it would skip the grace period.
#[x_kube(validation = Rule::new(
    "(has(self.state) && self.state == 'Terminated') == has(self.terminatedAt)"
).message(
    "terminatedAt is required when state is Terminated and must be absent otherwise: each \
     termination states its own time"
).field_path(".terminatedAt").reason(kube::core::Reason::FieldValueRequired))]
pub struct AccountSpec {
    /// Pseudonymous customer id from the account system.
    #[schemars(length(min = 1))]
    pub customer_ref: String,
    /// Lifecycle state set by the account system.
    #[serde(default)]
    pub state: AccountState,
    /// When the customer terminated: required when `state` is Terminated, absent otherwise, so
    /// a reactivation clears it and every termination states its own time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<DateTime<Utc>>,
    /// Name of the RetentionPolicy that applies.
    #[serde(default = "default_policy")]
    #[schemars(
        pattern(DNS1123_SUBDOMAIN),
        length(max = DNS1123_SUBDOMAIN_MAX)
    )]
    pub retention_policy_ref: String,
    /// While present and not past `until`, nothing of the account is erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<LegalHold>,
    /// Consents by purpose; an absent purpose means consent was not given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consents: BTreeMap<String, bool>,
}

fn default_policy() -> String {
    DEFAULT_POLICY.to_owned()
}

/// The lifecycle state of an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AccountState {
    /// The customer uses the service.
    #[default]
    Active,
    /// Service is paused (e.g. unpaid); nothing is erased.
    Suspended,
    /// The customer terminated the account; erasure follows the retention policy.
    Terminated,
}

/// A legal hold: authorities require the data to be preserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegalHold {
    /// Why the data is held, e.g. a case number. Must not contain personal data.
    pub reason: String,
    /// When the hold ends; absent means until the hold is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// The operator's view of the account's retention.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// Where the account is in its retention lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AccountPhase>,
    /// The termination time every schedule counts from: `spec.terminatedAt`, or the Account's
    /// deletion time when it is deleted without having been terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<DateTime<Utc>>,
    /// The earliest pending deletion of anything bound to the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_deletion_at: Option<DateTime<Utc>>,
    /// Deletions due up to this time have been announced by a `DeletionUpcoming` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletions_announced_until: Option<DateTime<Utc>>,
    /// The `.metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations following Kubernetes conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Counts of bound resources per kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, ResourceCounts>,
    /// Erasure notification state per data processor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<ProcessorNotification>,
    /// Proof of what was erased and when, and what was kept and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<ErasureProof>,
}

/// Where an account is in its retention lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AccountPhase {
    /// The account is in use.
    Active,
    /// The account is suspended; nothing is erased.
    Suspended,
    /// Terminated; hosted resources wait for the end of their grace period.
    GracePeriod,
    /// Terminated; hosted resources are due and being erased.
    Erasing,
    /// Only backups and bookkeeping data remain, each on its own schedule.
    Retained,
    /// Nothing bound to the account remains.
    Erased,
    /// A legal hold stands; nothing is erased.
    OnHold,
}

impl AccountPhase {
    /// The name used in the API and in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Suspended => "Suspended",
            Self::GracePeriod => "GracePeriod",
            Self::Erasing => "Erasing",
            Self::Retained => "Retained",
            Self::Erased => "Erased",
            Self::OnHold => "OnHold",
        }
    }
}

/// Counts of one kind of bound resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceCounts {
    /// Resources currently bound to the account.
    pub bound: u32,
    /// Bound resources with a deletion scheduled.
    pub scheduled: u32,
    /// Resources erased so far.
    pub deleted: u32,
    /// Bound resources kept beyond the grace period under a legal basis.
    pub retained: u32,
}

/// Erasure notification state of one data processor: one erasure request, for the data it
/// holds that was erased at `erasureAt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorNotification {
    /// Name of the DataProcessor.
    pub name: String,
    /// Delivery state of the erasure request.
    pub state: NotificationState,
    /// When the data the request names was erased (its schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_at: Option<DateTime<Utc>>,
    /// The request's idempotency key: the same on every attempt, also after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When the request was first owed (its `requestedAt`, the same on every attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<DateTime<Utc>>,
    /// The erased resources the request names (kept for redelivery after a restart).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<NotifiedResource>,
    /// Delivery attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (Pending only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt did not succeed, or what staff must do (Manual); never personal
    /// data or secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the processor acknowledged the request (or staff confirmed a manual one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
}

/// A resource named in an erasure request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedResource {
    /// Kind of the resource.
    pub kind: String,
    /// Namespace of the resource.
    pub namespace: String,
    /// Name of the resource.
    pub name: String,
}

/// Delivery state of an erasure request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NotificationState {
    /// Owed and not yet acknowledged: the next attempt is at `nextAttemptAt`.
    Pending,
    /// Sent, awaiting an acknowledgement that comes separately (reserved; webhooks acknowledge
    /// with their 2xx answer).
    Notified,
    /// The processor acknowledged the request (2xx), or staff confirmed a manual one.
    Acknowledged,
    /// The processor refused the request (a 4xx other than 408 and 429) or its endpoint is
    /// misconfigured: staff must act; it is not retried blindly.
    Failed,
    /// The processor has no webhook: staff must send the request and confirm it.
    Manual,
}

/// Proof of erasure, kept on the Account after everything is gone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureProof {
    /// When the first resource was erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the last bound resource was erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Resources erased, per kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deleted: BTreeMap<String, u32>,
    /// Resources kept past the grace period, with when they go and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<RetainedItem>,
    /// Deletions decided and under way: each is recorded here before its DELETE is sent and
    /// counted in `deleted` once the object is confirmed gone, so no crash can lose or double
    /// a count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleting: Vec<DeletingItem>,
    /// Objects confirmed gone whose ErasureReceipt is not written yet: each leaves this list
    /// in the status write that follows the receipt's creation, so no crash loses one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<ErasedObject>,
    /// The ErasureReceipts written for this account, one per erasure time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<WrittenReceipt>,
}

/// An ErasureReceipt the operator wrote.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WrittenReceipt {
    /// Its erasure time.
    pub erasure_at: DateTime<Utc>,
    /// Its name.
    pub name: String,
    /// How many objects it lists.
    pub erased: u32,
}

/// A resource whose deletion was decided and is under way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletingItem {
    /// Kind of the resource.
    pub kind: String,
    /// Namespace of the resource.
    pub namespace: String,
    /// Name of the resource.
    pub name: String,
    /// The uid of the object being deleted: a later object of the same name is another one.
    pub uid: String,
    /// When it became due (its erasure time, which groups it into a receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_at: Option<DateTime<Utc>>,
    /// The legal basis it was processed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<LegalBasis>,
    /// The rule that scheduled its deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A resource kept past the grace period under a legal basis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetainedItem {
    /// Kind of the resource.
    pub kind: String,
    /// Namespace of the resource.
    pub namespace: String,
    /// Name of the resource.
    pub name: String,
    /// When it will be erased; absent while a legal hold without end stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_at: Option<DateTime<Utc>>,
    /// The legal basis for keeping it.
    pub legal_basis: LegalBasis,
}
