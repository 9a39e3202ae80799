//! What the status is computed from.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::api::{AccountStatus, DeletingItem, ProcessorNotification, WrittenReceipt};
use crate::retention::{AccountPlan, ResourceRef};

/// What the status is computed from: the plan, what this pass did, and what is stored.
#[derive(Clone, Copy, Debug)]
pub struct StatusInput<'a> {
    /// The engine's plan for the account at `now`, computed before this pass's deletions.
    pub plan: &'a AccountPlan,
    /// The status currently stored on the Account.
    pub previous: Option<&'a AccountStatus>,
    /// The Account's `metadata.generation`.
    pub generation: Option<i64>,
    /// Bound objects this pass found gone (it deleted them, or they were gone already): left
    /// out of every count and schedule shown. The proof counts deletions through
    /// `deletions`, not through this list.
    pub deleted: &'a [ResourceRef],
    /// The durable record of deletions under way (`status.erasure.deleting`) and what became
    /// of them.
    pub deletions: DeletionLedger<'a>,
    /// Deletions that failed this pass.
    pub failures: &'a [DeletionFailure],
    /// `processorRef`/`registrar` names that match no DataProcessor.
    pub unknown_processors: &'a [String],
    /// Objects that claim the account but cannot be read: never deleted, and the account is
    /// not Erased while they exist.
    pub malformed: &'a [MalformedResource],
    /// Deletions announced so far (see `announcements`).
    pub announced_until: Option<DateTime<Utc>>,
    /// The erasure requests owed to processors, after this pass's deliveries; `None` keeps the
    /// stored ones.
    pub processors: Option<&'a [ProcessorNotification]>,
    /// The name of the account's RetentionPolicy when that policy is suspended: nothing is
    /// deleted and no erasure request is sent, though schedules are shown as usual.
    pub suspended_by: Option<&'a str>,
    /// The instant of this pass.
    pub now: DateTime<Utc>,
}

/// How this pass changes the record of deletions under way, so that the proof counts each
/// erased object exactly once whatever crash, conflict or concurrent writer comes: a deletion is
/// recorded (with the object's uid) in a status write *before* its DELETE is sent, and counted
/// only when a later status write finds it recorded in the stored status and its uid known to
/// be gone; that write removes it from the record in the same step. A status write retried on a
/// fresher stored status recomputes from that status, so nothing is counted twice.
#[derive(Clone, Copy, Debug)]
pub struct DeletionLedger<'a> {
    /// Deletions this pass is about to send: recorded (if not already).
    pub starting: &'a [DeletingItem],
    /// uids known to be gone: a DELETE answered 200 or 404, or the object is no longer in the
    /// watch cache. Recorded ones are counted and leave the record.
    pub gone: &'a BTreeSet<String>,
    /// uids whose deletion is off (the object is still there and no longer due): they leave
    /// the record uncounted.
    pub called_off: &'a BTreeSet<String>,
    /// When the objects this pass found gone were confirmed gone (`deletedAt` in their
    /// receipt); `None`: the pass's `now`.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// ErasureReceipts that exist now (this pass wrote them, or found them written): each is
    /// recorded, and the objects it lists leave the list of those awaiting one.
    pub receipted: &'a [ReceiptWritten],
}

/// An ErasureReceipt that exists, with the uids it lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptWritten {
    /// The record kept in the Account's status.
    pub record: WrittenReceipt,
    /// The uids it lists.
    pub uids: BTreeSet<String>,
}

/// No uids: for passes that delete nothing.
static NO_UIDS: BTreeSet<String> = BTreeSet::new();

impl Default for DeletionLedger<'_> {
    fn default() -> Self {
        Self {
            starting: &[],
            gone: &NO_UIDS,
            called_off: &NO_UIDS,
            confirmed_at: None,
            receipted: &[],
        }
    }
}

/// A deletion that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionFailure {
    /// The object that could not be deleted.
    pub resource: ResourceRef,
    /// CamelCase reason, e.g. `Forbidden`; used as the condition's reason.
    pub reason: String,
    /// Human-readable detail; must not contain personal data.
    pub message: String,
}

/// An object that claims the account but does not match this operator's schema.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MalformedResource {
    /// The object.
    pub resource: ResourceRef,
    /// The field that could not be read, e.g. `spec.engine` (never its value).
    pub field: String,
}
