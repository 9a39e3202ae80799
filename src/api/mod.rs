//! The custom resource kinds of API group `hosting.ecuni.se`, version `v1alpha1`.
//!
//! Field names are the contract with the account system and platform engineers
//! (docs/design.md §2); the CRD YAML in `crds/` is generated from these types.

// kube's `printcolumn(...)` arguments repeat `type_ = "string"`, which clippy mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod account;
mod backup;
mod binding;
mod condition;
mod countries;
mod data_processor;
mod data_record;
mod database;
mod domain;
mod duration;
mod erasure_receipt;
mod hosted;
mod mailbox;
mod names;
mod retention_policy;
mod website;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use account::{
    Account, AccountPhase, AccountSpec, AccountState, AccountStatus, DEFAULT_POLICY, DeletingItem,
    ErasureProof, LegalHold, NotificationState, NotifiedResource, ProcessorNotification,
    ResourceCounts, RetainedItem, WrittenReceipt,
};
pub use backup::{Backup, BackupSource, BackupSpec, BackupStatus};
pub use binding::{AccountBinding, LegalBasis};
pub use condition::{BoundResourceStatus, Condition, ConditionStatus};
pub use countries::{EEA, ISO_3166_ALPHA2, is_country, is_eea};
pub use data_processor::{
    DataProcessor, DataProcessorSpec, DataProcessorStatus, ErasureChannel, ErasureDelivery,
    ErasureWebhook, SecretKeyRef, TransferMechanism, WEBHOOK_URL_PATTERN, third_country_transfer,
};
pub use data_record::{Bookkeeping, DataCategory, DataRecord, DataRecordSpec};
pub use database::{Database, DatabaseEngine, DatabaseSpec};
pub use domain::{Domain, DomainSpec};
pub use duration::{
    DURATION_PATTERN, DurationUnit, InvalidDuration, MAX_DURATION_DIGITS, RetentionDuration,
};
pub use erasure_receipt::{
    ErasedObject, ErasureReceipt, ErasureReceiptSpec, ErasureReceiptStatus, KeptObject,
    OwedRequest, RECEIPT_ACCOUNT_LABEL, ReceiptAccount, ReceiptPolicy, RequestOutcome,
};
pub use mailbox::{Mailbox, MailboxSpec};
pub use names::{
    DNS1123_LABEL, DNS1123_LABEL_MAX, DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX, SECRET_KEY,
    SECRET_KEY_MAX,
};
pub use retention_policy::{
    AdmittedAccount, AdmittedDeletions, BRAKE_RELEASED_AT, BackupSchedule, BookkeepingRetention,
    BrakeEngagement, BrakeSpec, BrakeStatus, CountedDeletions, GracePeriods, MAX_BACKUP_COUNT,
    MAX_BRAKE_DELETIONS, ReceiptRetention, RetentionPolicy, RetentionPolicySpec,
    RetentionPolicyStatus,
};
pub use website::{Website, WebsiteSpec};

/// The bound kinds are part of the API (a Backup names its source's kind).
pub use crate::kinds::ResourceKind;

/// The API group of every kind.
pub const GROUP: &str = "hosting.ecuni.se";
/// The API version of every kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "hosting.ecuni.se/v1alpha1";
/// The annotation that durably records a scheduled deletion on a hosted resource (RFC 3339).
pub const DELETE_AT_ANNOTATION: &str = "hosting.ecuni.se/delete-at";

/// Every CRD of the API, in a stable order (the order of docs/design.md §2).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![Account::crd()];
    crds.extend(crate::kinds::crds());
    crds.extend([
        RetentionPolicy::crd(),
        DataProcessor::crd(),
        ErasureReceipt::crd(),
    ]);
    crds
}
