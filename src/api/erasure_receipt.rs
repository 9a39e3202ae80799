//! ErasureReceipt: the proof, kept after the Account is gone, of what was erased at one erasure
//! time of a terminated account.

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{account::NotificationState, binding::LegalBasis};

/// The label on every ErasureReceipt naming its account, so that
/// `kubectl get ercpt -l hosting.ecuni.se/account=acme` lists an account's receipts.
pub const RECEIPT_ACCOUNT_LABEL: &str = "hosting.ecuni.se/account";

/// What the operator erased at one erasure time of a terminated account, what it kept and why,
/// and which processors it owed an erasure request. Written once, when every deletion of that
/// time is confirmed; its spec never changes after (the API server refuses it), and
/// `spec.digest` lets anyone check that it has not been altered. It holds no personal data:
/// names, uids and the pseudonymous `customerRef` only.
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "hosting.ecuni.se",
    version = "v1alpha1",
    kind = "ErasureReceipt",
    cel,
    doc = "Proof of what was erased at one erasure time of a terminated account; outlives the Account",
    shortname = "ercpt",
    category = "hosting",
    status = "ErasureReceiptStatus",
    derive = "PartialEq",
    printcolumn(name = "Account", type_ = "string", json_path = ".spec.account.name"),
    printcolumn(name = "Erasure time", type_ = "string", json_path = ".spec.erasureAt"),
    printcolumn(name = "Completed", type_ = "string", json_path = ".spec.completedAt"),
    printcolumn(name = "Erased", type_ = "integer", json_path = ".status.erasedCount"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("an ErasureReceipt's spec is immutable"))]
pub struct ErasureReceiptSpec {
    /// The account whose data was erased.
    pub account: ReceiptAccount,
    /// The RetentionPolicy whose rules decided, as it stood.
    pub policy: ReceiptPolicy,
    /// When the account was terminated; absent when it was reactivated before the last
    /// deletion of this erasure time was confirmed (the deletions listed were still made
    /// under the termination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<DateTime<Utc>>,
    /// The erasure time: when the objects listed became due.
    pub erasure_at: DateTime<Utc>,
    /// When the last deletion of this erasure time was confirmed.
    pub completed_at: DateTime<Utc>,
    /// Every object erased at this erasure time.
    pub erased: Vec<ErasedObject>,
    /// What was still kept when the receipt was written, and until when.
    #[serde(default)]
    pub kept: Vec<KeptObject>,
    /// The processors owed an erasure request for this erasure time.
    #[serde(default)]
    pub processors: Vec<OwedRequest>,
    /// When an erasure time needs more than one receipt (an object bound to the account after
    /// the first was written, due at the same time), the receipt this one follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<String>,
    /// `sha256:` and the hex SHA-256 of the canonical JSON of this spec without `digest`
    /// (object keys sorted, no insignificant whitespace): `retention-operator receipts`
    /// recomputes it.
    pub digest: String,
}

/// The account a receipt is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptAccount {
    /// Name of the Account.
    pub name: String,
    /// uid of the Account: an Account created later under the same name is another one.
    pub uid: String,
    /// The pseudonymous customer id.
    pub customer_ref: String,
}

/// The policy a receipt's erasure followed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptPolicy {
    /// Name of the RetentionPolicy.
    pub name: String,
    /// Its `metadata.generation` when the receipt was written.
    pub generation: i64,
}

/// One erased object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasedObject {
    /// Kind of the object.
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// uid of the object.
    pub uid: String,
    /// The legal basis it was processed under until then.
    pub legal_basis: LegalBasis,
    /// The rule that scheduled its deletion.
    pub rule: String,
    /// When it was due.
    pub delete_at: DateTime<Utc>,
    /// When the operator confirmed it gone (its DELETE answered, or the object found gone).
    pub deleted_at: DateTime<Utc>,
}

/// One object kept when the receipt was written.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptObject {
    /// Kind of the object.
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// The legal basis it is kept under.
    pub legal_basis: LegalBasis,
    /// Why, in the rule's words (bookkeeping, the backup schedule, a legal hold).
    pub rule: String,
    /// When it is erased; absent while a legal hold without end stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// An erasure request owed to a processor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwedRequest {
    /// Name of the DataProcessor.
    pub name: String,
    /// The request's idempotency key (the processor deduplicates with it).
    pub idempotency_key: String,
}

/// What happened after the receipt was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureReceiptStatus {
    /// How many objects the receipt lists (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_count: Option<u32>,
    /// Each processor's answer as it arrived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<RequestOutcome>,
    /// When the operator deletes this receipt (its completion plus the policy's
    /// `receipts.keepFor`); absent while that cannot be known (the policy is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where one owed erasure request stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestOutcome {
    /// Name of the DataProcessor.
    pub name: String,
    /// The request's state, as on the Account.
    pub state: NotificationState,
    /// When the processor acknowledged it, or staff confirmed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
}
