//! The Account's status (docs/design.md §2) as a pure function of the engine's plan, what this
//! reconcile pass did, and the status already stored: its conditions (`conditions`, with the
//! one precedence table of `Ready`), the erasure proof (`proof`) and the advance notice of
//! deletions ([`announcements`]).
//!
//! No I/O and no clock reads: the caller passes `now`. The function is idempotent: fed its own
//! output as `previous`, with nothing new deleted or failed, it returns that output unchanged
//! whatever `now` is. The controller writes the status only when the result differs from what
//! is stored, so a steady state makes no writes.
//!
//! Decisions the rules leave open, made here:
//! - The erasure proof documents the erasure of a *terminated* account. Deletions on a live
//!   account (withdrawn consent, routine backup expiry) are reported by events and metrics but
//!   neither create nor change a proof: routine backup expiry would otherwise grow the counts
//!   forever with no audit value. A proof from an earlier termination is kept as it is.
//! - The phase is the plan's phase. The controller passes the plan as it stands after this
//!   pass's deletions ([`AccountPlan::without`](crate::retention::AccountPlan::without)), so one write shows the account as it is
//!   (e.g. Retained once the last hosted object went) and the next pass has nothing to write.
//!   Counts and `nextDeletionAt` leave out what this pass found gone either way.
//! - A legal hold without end date turns every schedule into "keep"; objects the stored proof
//!   already lists as retained stay listed (without `deleteAt`), so the proof does not flap.
//! - While the RetentionPolicy is missing, `nextDeletionAt` is cleared: nothing will be deleted
//!   then, and the printer column must not promise otherwise.
//! - A suspended RetentionPolicy shows only as the condition `ErasureSuspended`: the phase,
//!   `Ready`, the schedules and the counts are what they would be without it, so the status
//!   still tells what will happen once the suspend is lifted.
//! - Objects that claim the account but cannot be read (malformed) keep an otherwise empty
//!   account in Erasing, with Ready False: they are data, so the account is not Erased.

mod announcements;
mod conditions;
mod input;
mod proof;

use std::collections::BTreeSet;

pub use announcements::{Announcements, announcements};
pub use conditions::{
    DELETION_FAILED, ERASURE_REQUESTS_FAILED, ERASURE_SUSPENDED, MALFORMED_RESOURCES,
    MANUAL_ACTION_REQUIRED, ON_HOLD, POLICY_MISSING, READY, TERMINATION_TIME_MISSING,
    TERMINATION_TIME_MISSING_MESSAGE, UNBOUND_RESOURCES, malformed_account_conditions,
    policy_malformed_status, policy_missing_status, set_condition, termination_time_missing_status,
};
pub use input::{DeletionFailure, DeletionLedger, MalformedResource, ReceiptWritten, StatusInput};

/// Every condition type the operator sets on an Account. Its status writes apply these and no
/// others: `conditions` is a map list keyed by `type`, so a condition another controller
/// applies stays that controller's, untouched by the operator's writes.
pub const ACCOUNT_CONDITION_TYPES: [&str; 10] = [
    READY,
    ON_HOLD,
    POLICY_MISSING,
    UNBOUND_RESOURCES,
    DELETION_FAILED,
    MALFORMED_RESOURCES,
    MANUAL_ACTION_REQUIRED,
    ERASURE_REQUESTS_FAILED,
    ERASURE_SUSPENDED,
    crate::retention::transfers::THIRD_COUNTRY_TRANSFER,
];

use crate::api::{AccountPhase, AccountStatus, ProcessorNotification};
use crate::notifier::ledger;
use crate::retention::{ResourcePlan, ResourceRef};

/// Computes the Account's status from the plan and this pass's outcome (see the module docs).
pub fn account_status(input: &StatusInput<'_>) -> AccountStatus {
    let plan = input.plan;
    let previous = input.previous;
    let deleted: BTreeSet<&ResourceRef> = input.deleted.iter().collect();
    // What is still bound after this pass: the basis of every count and schedule shown.
    let remaining: Vec<&ResourcePlan> = plan
        .resources
        .iter()
        .filter(|r| !deleted.contains(&r.resource))
        .collect();
    let mut malformed: Vec<&MalformedResource> = input.malformed.iter().collect();
    malformed.sort();
    malformed.dedup();
    let processors: Vec<ProcessorNotification> = match input.processors {
        Some(processors) => processors.to_vec(),
        None => previous.map(|p| p.processors.clone()).unwrap_or_default(),
    };
    // Data that cannot be read is still data, and a processor not yet told (or not yet
    // confirming) still holds it: the account is not Erased before both are done.
    let phase = if plan.phase == AccountPhase::Erased
        && (!malformed.is_empty() || !ledger::all_settled(&processors))
    {
        AccountPhase::Erasing
    } else {
        plan.phase
    };
    let previous_proof = previous.and_then(|p| p.erasure.as_ref());
    let retained = proof::retained_resources(plan, previous_proof, &remaining);
    let erasure = proof::erasure_proof(
        plan,
        phase,
        previous_proof,
        &remaining,
        &retained,
        &input.deletions,
        input.now,
    );
    let next_deletion_at = remaining.iter().filter_map(|r| r.schedule.delete_at).min();
    let failures = conditions::sorted_failures(input.failures);
    let facts = conditions::Facts {
        phase,
        plan,
        next_deletion_at,
        scheduled: remaining
            .iter()
            .filter(|r| r.schedule.delete_at.is_some())
            .count(),
        failures: &failures,
        malformed: &malformed,
        processors: &processors,
        unknown_processors: input.unknown_processors,
        suspended_by: input.suspended_by,
    };
    // Start from the stored conditions so that types owned by other parts of the operator
    // survive and lastTransitionTime carries over.
    let stored = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    AccountStatus {
        phase: Some(phase),
        terminated_at: plan.terminated_at,
        next_deletion_at,
        deletions_announced_until: input.announced_until,
        observed_generation: input.generation,
        conditions: conditions::planned(stored, &facts, input.generation, input.now),
        resources: proof::resource_counts(&remaining, &retained, erasure.as_ref()),
        // Filled by the processor notifier; this function only carries them over.
        processors,
        erasure,
    }
}
