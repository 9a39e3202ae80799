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
        name = "Brake",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"BrakeEngaged\")].status"
    ),
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
    /// The mass-deletion brake: at most `maxDeletions` deletions under this policy within any
    /// `per`; past that the operator stops deleting until a person releases it. Without it the
    /// default applies ([`BrakeSpec::DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brake: Option<BrakeSpec>,
    /// How long the ErasureReceipts of the accounts under this policy are kept. Without it
    /// the default applies ([`ReceiptRetention::DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipts: Option<ReceiptRetention>,
}

impl RetentionPolicySpec {
    /// How long an ErasureReceipt is kept after its erasure completed: the policy's own, else
    /// the default.
    pub fn receipts_keep_for(&self) -> RetentionDuration {
        self.receipts
            .map_or(ReceiptRetention::DEFAULT.keep_for, |r| r.keep_for)
    }

    /// The brake in force: the policy's own, else the default.
    pub fn brake_or_default(&self) -> BrakeSpec {
        self.brake.unwrap_or(BrakeSpec::DEFAULT)
    }

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

/// The annotation by which a person releases an engaged brake: an RFC 3339 time after the
/// engagement. Everything due at or before that time may then go, however many.
pub const BRAKE_RELEASED_AT: &str = "hosting.ecuni.se/brake-released-at";

/// The largest `maxDeletions`: nine digits.
pub const MAX_BRAKE_DELETIONS: u32 = 999_999_999;

/// The mass-deletion brake of a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrakeSpec {
    /// The most deletions under the policy within any window of `per`.
    #[schemars(range(min = 1, max = MAX_BRAKE_DELETIONS))]
    pub max_deletions: u32,
    /// The length of the sliding window.
    pub per: RetentionDuration,
}

impl BrakeSpec {
    /// The brake of a policy that sets none: 100,000 deletions per 24 h. A host deletes about
    /// as many backups a day as it takes (each is deleted once): 20,000 accounts with two
    /// daily-backed-up sources take and rotate 40,000 a day, terminations add about 200
    /// (1 % of accounts a month, ~30 objects each), so the default leaves 2.5 times that
    /// host's normal day (docs/design.md §7 gives the arithmetic for sizing it).
    pub const DEFAULT: Self = Self {
        max_deletions: 100_000,
        per: RetentionDuration::new(24, super::duration::DurationUnit::Hours),
    };
}

/// How long ErasureReceipts are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptRetention {
    /// Time after a receipt's erasure completed before the receipt itself is deleted.
    pub keep_for: RetentionDuration,
}

impl ReceiptRetention {
    /// Ten years (3653 days, leap days included): the general Swedish limitation period
    /// (preskriptionslagen 2 §), within which a former customer may bring a claim the host
    /// answers with its proof of erasure.
    pub const DEFAULT: Self = Self {
        keep_for: RetentionDuration::new(3653, super::duration::DurationUnit::Days),
    };
}

/// What the operator observed about the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyStatus {
    /// Observations of the policy, such as accounts that refer to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The brake's count of deletions, kept here so that it survives restarts and leader
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brake: Option<BrakeStatus>,
}

/// The brake's durable count. Written by the operator at most once per 10 s of deleting (or
/// per 2,000 deletions of a burst).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrakeStatus {
    /// Deletions made, by the time they were counted (oldest first); each counts until its
    /// time plus the window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counted: Vec<CountedDeletions>,
    /// Deletions admitted and not yet counted as made: each counts as made until it is
    /// settled, so a crash between the admission and the DELETE never lets the count fall
    /// short.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admitted: Vec<AdmittedDeletions>,
    /// Set while the brake is engaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engaged: Option<BrakeEngagement>,
}

/// Deletions counted at one time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountedDeletions {
    /// When they were counted (at or after they were made).
    pub at: chrono::DateTime<chrono::Utc>,
    /// How many.
    pub count: u32,
}

/// Deletions one replica admitted at one time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdmittedDeletions {
    /// When they were admitted.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The operator process that admitted them.
    pub holder: String,
    /// The objects admitted, by account.
    pub accounts: Vec<AdmittedAccount>,
}

/// The objects of one account admitted for deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdmittedAccount {
    /// The Account's name.
    pub account: String,
    /// The uids of its objects admitted.
    pub uids: Vec<String>,
}

/// When and why the brake engaged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrakeEngagement {
    /// When it engaged: a release must name a later time.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The deletions counted in the window then.
    pub count: u32,
    /// The limit then; raising `spec.brake.maxDeletions` above it releases the brake too.
    pub max_deletions: u32,
    /// The window then.
    pub per: RetentionDuration,
    /// The due deletions that were waiting.
    pub waiting: u32,
}
