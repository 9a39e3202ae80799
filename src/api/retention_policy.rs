//! RetentionPolicy: how long each kind of data is kept after termination.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{condition::Condition, duration::RetentionDuration};
use crate::kinds::ResourceKind;

/// The retention periods an Account refers to through `retentionPolicyRef`.
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hosting.ecuni.se",
    version = "v1alpha1",
    kind = "RetentionPolicy",
    doc = "How long each kind of data is kept after an account is terminated",
    shortname = "rpol",
    category = "hosting",
    status = "RetentionPolicyStatus",
    derive = "PartialEq",
    printcolumn(name = "Grace", type_ = "string", json_path = ".spec.gracePeriod"),
    printcolumn(
        name = "Daily",
        type_ = "integer",
        json_path = ".spec.backups.keepDaily"
    ),
    printcolumn(
        name = "Weekly",
        type_ = "integer",
        json_path = ".spec.backups.keepWeekly"
    ),
    printcolumn(
        name = "Monthly",
        type_ = "integer",
        json_path = ".spec.backups.keepMonthly"
    ),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicySpec {
    /// Time after termination before hosted resources and data records are erased.
    pub grace_period: RetentionDuration,
    /// Per-kind overrides of `gracePeriod`.
    #[serde(default, skip_serializing_if = "GracePeriods::is_empty")]
    pub grace_periods: GracePeriods,
    /// The backup schedule.
    pub backups: BackupSchedule,
    /// Retention of data the Bookkeeping Act requires.
    #[serde(default)]
    pub bookkeeping: BookkeepingRetention,
    /// While true, nothing of the accounts under this policy is deleted and no erasure request
    /// is sent; schedules are still computed, stamped and shown (as a CronJob's `suspend`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub suspend: bool,
}

impl RetentionPolicySpec {
    /// The grace period that applies to `kind`.
    pub fn grace_for(&self, kind: ResourceKind) -> RetentionDuration {
        self.grace_periods.get(kind).unwrap_or(self.grace_period)
    }
}

/// Per-kind grace periods; an absent kind uses the policy's `gracePeriod`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GracePeriods {
    /// Grace period for Websites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<RetentionDuration>,
    /// Grace period for Databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<RetentionDuration>,
    /// Grace period for Mailboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<RetentionDuration>,
    /// Grace period for Domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<RetentionDuration>,
    /// Grace period for DataRecords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_record: Option<RetentionDuration>,
}

impl GracePeriods {
    /// The override for `kind`, if any (a Backup follows the backup schedule instead).
    pub fn get(&self, kind: ResourceKind) -> Option<RetentionDuration> {
        match kind {
            ResourceKind::Website => self.website,
            ResourceKind::Database => self.database,
            ResourceKind::Mailbox => self.mailbox,
            ResourceKind::Domain => self.domain,
            ResourceKind::DataRecord => self.data_record,
            ResourceKind::Backup => None,
        }
    }

    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The largest count of a backup schedule: six digits, as a duration's number (999999 days is
/// about 2,700 years), so a typo such as 1099511627776 is refused rather than read as "for
/// ever".
pub const MAX_BACKUP_COUNT: u32 = 999_999;

/// How long backups are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSchedule {
    /// Days every backup is kept after it was taken.
    #[schemars(range(min = 0, max = MAX_BACKUP_COUNT))]
    pub keep_daily: u32,
    /// Weeks the newest backup of each ISO week is kept after it was taken.
    #[schemars(range(min = 0, max = MAX_BACKUP_COUNT))]
    pub keep_weekly: u32,
    /// Calendar months the newest backup of each month is kept after it was taken.
    #[schemars(range(min = 0, max = MAX_BACKUP_COUNT))]
    pub keep_monthly: u32,
    /// No backup of a terminated account outlives its termination by more than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_termination: Option<RetentionDuration>,
}

/// Retention of bookkeeping data (bokföringslagen 1999:1078, 7 kap. 2 §).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookkeepingRetention {
    /// Years after the end of the calendar year in which the fiscal year ended.
    #[schemars(range(min = 1, max = 100))]
    pub years: u32,
}

impl Default for BookkeepingRetention {
    /// The Swedish statutory period: seven years.
    fn default() -> Self {
        Self { years: 7 }
    }
}

/// What the operator observed about the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyStatus {
    /// Observations of the policy, such as accounts that refer to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
