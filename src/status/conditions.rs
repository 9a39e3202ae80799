//! The Account's conditions, and the one place that decides `Ready`.
//!
//! `Ready` is False for the first reason in this table that holds, True (with the phase as its
//! reason) when none does:
//!
//! | precedence | holds when | `Ready` reason | set by |
//! | --- | --- | --- | --- |
//! | 1 | the Account cannot be read | `MalformedAccount` | [`malformed_account_conditions`] |
//! | 2 | its RetentionPolicy is missing or cannot be read | `PolicyMissing`, `PolicyMalformed` | [`policy_missing_status`], [`policy_malformed_status`] |
//! | 3 | it is Terminated without `spec.terminatedAt` | `TerminationTimeMissing` | [`termination_time_missing_status`] |
//! | 4 | a deletion failed in this pass | `DeletionFailed` | [`READY_PRECEDENCE`] |
//! | 5 | objects claiming it cannot be read | `MalformedResources` | [`READY_PRECEDENCE`] |
//! | 6 | an erasure request failed | `ErasureRequestFailed` | [`READY_PRECEDENCE`] |
//!
//! Rows 1–3 stop planning altogether (the controller checks them in that order, and nothing
//! else is computed); rows 4–6 are read from the conditions of a planned account.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::clock::rfc3339;

use super::input::{DeletionFailure, MalformedResource};
use crate::api::{
    AccountPhase, AccountStatus, Condition, ConditionStatus, NotificationState,
    ProcessorNotification,
};
use crate::notifier::ledger;
use crate::retention::{AccountPlan, Hold};

/// Condition type: the account's retention is proceeding as planned.
pub const READY: &str = "Ready";
/// Condition type: a legal hold stands and nothing is erased.
pub const ON_HOLD: &str = "OnHold";
/// Condition type: the account's RetentionPolicy does not exist, so nothing is erased.
pub const POLICY_MISSING: &str = "PolicyMissing";
/// Condition type: some bound data names a DataProcessor that does not exist.
pub const UNBOUND_RESOURCES: &str = "UnboundResources";
/// Condition type: a deletion failed in the last pass.
pub const DELETION_FAILED: &str = "DeletionFailed";
/// Condition type: objects claiming the account do not match this operator's schema.
pub const MALFORMED_RESOURCES: &str = "MalformedResources";
/// Condition type: a processor without a webhook must be sent an erasure request by staff.
pub const MANUAL_ACTION_REQUIRED: &str = "ManualActionRequired";
/// Condition type: a processor refused an erasure request, or its endpoint is misconfigured.
pub const ERASURE_REQUESTS_FAILED: &str = "ErasureRequestsFailed";

/// Condition type: the account's RetentionPolicy is suspended, so nothing is erased.
pub const ERASURE_SUSPENDED: &str = "ErasureSuspended";

/// Reason of `Ready=False` on an Account terminated without `spec.terminatedAt`.
pub const TERMINATION_TIME_MISSING: &str = "TerminationTimeMissing";

/// At most this many failed resources are named in a condition message, so that a mass
/// failure cannot push the status towards the API server's object size limit.
const MAX_NAMED_FAILURES: usize = 10;

/// Rows 4–6 of the table in the module docs: the conditions that make a planned account's
/// `Ready` False when they hold, highest precedence first, with the reason `Ready` then gives.
pub const READY_PRECEDENCE: [(&str, &str); 3] = [
    (DELETION_FAILED, "DeletionFailed"),
    (MALFORMED_RESOURCES, "MalformedResources"),
    (ERASURE_REQUESTS_FAILED, "ErasureRequestFailed"),
];

/// What the conditions of a planned account are computed from.
pub(super) struct Facts<'a> {
    /// The phase shown.
    pub phase: AccountPhase,
    /// The plan (its phase and legal hold).
    pub plan: &'a AccountPlan,
    /// The earliest deletion of what is still bound.
    pub next_deletion_at: Option<DateTime<Utc>>,
    /// How many of the objects still bound have a deletion scheduled.
    pub scheduled: usize,
    /// This pass's failed deletions, in a stable order.
    pub failures: &'a [&'a DeletionFailure],
    /// The objects claiming the account that cannot be read.
    pub malformed: &'a [&'a MalformedResource],
    /// The erasure requests owed to processors.
    pub processors: &'a [ProcessorNotification],
    /// Processor names the bound data uses that name no DataProcessor.
    pub unknown_processors: &'a [String],
    /// The suspended RetentionPolicy that holds erasure back, if any.
    pub suspended_by: Option<&'a str>,
}

/// The conditions of a planned account: `stored` brought up to date, `Ready` last, from the
/// others (see the module docs).
pub(super) fn planned(
    stored: Vec<Condition>,
    facts: &Facts<'_>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let mut conditions = stored;
    let mut set = |type_: &str, status, reason: &str, message: &str| {
        set_condition(
            &mut conditions,
            type_,
            status,
            reason,
            message,
            generation,
            now,
        );
    };
    deletion_failed(&mut set, facts.failures);
    malformed_resources(&mut set, facts.malformed);
    processor_conditions(facts.processors, &mut set);
    on_hold(&mut set, facts.plan);
    erasure_suspended(&mut set, facts.suspended_by);
    set(
        POLICY_MISSING,
        ConditionStatus::False,
        "PolicyFound",
        "the RetentionPolicy exists",
    );
    unknown_processors(&mut set, facts.unknown_processors);
    third_country_transfer(&mut conditions, facts.plan, generation, now);
    let (status, reason, message) = ready(&conditions, facts);
    set_condition(
        &mut conditions,
        READY,
        status,
        reason,
        &message,
        generation,
        now,
    );
    conditions
}

/// `Ready` of a planned account, from its other conditions (see [`READY_PRECEDENCE`]).
fn ready<'a>(conditions: &[Condition], facts: &'a Facts<'_>) -> (ConditionStatus, &'a str, String) {
    let holds = |type_: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == ConditionStatus::True)
    };
    match READY_PRECEDENCE.into_iter().find(|(type_, _)| holds(type_)) {
        Some((DELETION_FAILED, reason)) => {
            let count = facts.failures.len();
            let noun = if count == 1 { "deletion" } else { "deletions" };
            let message = format!("{count} {noun} failed, see condition {DELETION_FAILED}");
            (ConditionStatus::False, reason, message)
        }
        Some((type_, reason)) => (
            ConditionStatus::False,
            reason,
            format!("see condition {type_}"),
        ),
        None => {
            let message = match facts.next_deletion_at {
                Some(at) => format!(
                    "{} scheduled, next deletion {}",
                    facts.scheduled,
                    rfc3339(at)
                ),
                None => "nothing scheduled".to_owned(),
            };
            (ConditionStatus::True, facts.phase.as_str(), message)
        }
    }
}

/// A condition that reports a problem: True with the problem's reason and message while there
/// is one, else False with the reason and message that say all is well.
fn set_problem(
    set: &mut impl FnMut(&str, ConditionStatus, &str, &str),
    type_: &str,
    problem: Option<(&str, String)>,
    (fine_reason, fine_message): (&str, &str),
) {
    match problem {
        Some((reason, message)) => set(type_, ConditionStatus::True, reason, &message),
        None => set(type_, ConditionStatus::False, fine_reason, fine_message),
    }
}

/// `DeletionFailed`: which deletions of this pass failed.
fn deletion_failed(
    set: &mut impl FnMut(&str, ConditionStatus, &str, &str),
    failures: &[&DeletionFailure],
) {
    let problem = failures
        .first()
        .map(|first| (failure_reason(&first.reason), failures_message(failures)));
    set_problem(
        set,
        DELETION_FAILED,
        problem,
        ("NoFailures", "no deletion failed"),
    );
}

/// `MalformedResources`: the objects claiming the account that cannot be read.
fn malformed_resources(
    set: &mut impl FnMut(&str, ConditionStatus, &str, &str),
    malformed: &[&MalformedResource],
) {
    let problem =
        (!malformed.is_empty()).then(|| ("MalformedObject", malformed_message(malformed)));
    set_problem(
        set,
        MALFORMED_RESOURCES,
        problem,
        (
            "AllReadable",
            "every object claiming the account can be read",
        ),
    );
}

/// `OnHold`: whether a legal hold stands, and until when.
fn on_hold(set: &mut impl FnMut(&str, ConditionStatus, &str, &str), plan: &AccountPlan) {
    if plan.phase == AccountPhase::OnHold {
        let message = match plan.legal_hold {
            Some(Hold { until: Some(until) }) => {
                format!("legal hold until {}: nothing is erased", rfc3339(until))
            }
            _ => "legal hold without end date: nothing is erased".to_owned(),
        };
        set(ON_HOLD, ConditionStatus::True, "LegalHold", &message);
    } else {
        let message = match plan.legal_hold {
            Some(Hold { until: Some(until) }) => format!("legal hold ended {}", rfc3339(until)),
            _ => "no legal hold".to_owned(),
        };
        set(ON_HOLD, ConditionStatus::False, "NoHold", &message);
    }
}

/// `ErasureSuspended`: whether the account's RetentionPolicy holds erasure back. It is not a
/// problem of the account, so `Ready` does not depend on it.
fn erasure_suspended(
    set: &mut impl FnMut(&str, ConditionStatus, &str, &str),
    suspended_by: Option<&str>,
) {
    match suspended_by {
        Some(policy) => set(
            ERASURE_SUSPENDED,
            ConditionStatus::True,
            "PolicySuspended",
            &format!(
                "RetentionPolicy {policy} is suspended: nothing is deleted and no erasure \
                 request is sent until it is lifted"
            ),
        ),
        None => set(
            ERASURE_SUSPENDED,
            ConditionStatus::False,
            "NotSuspended",
            "erasure proceeds on schedule",
        ),
    }
}

/// `UnboundResources`: processor names that name no DataProcessor.
fn unknown_processors(
    set: &mut impl FnMut(&str, ConditionStatus, &str, &str),
    unknown_processors: &[String],
) {
    let unknown: BTreeSet<&str> = unknown_processors.iter().map(String::as_str).collect();
    let problem = (!unknown.is_empty()).then(|| {
        let names = unknown.into_iter().collect::<Vec<_>>().join(", ");
        (
            "UnknownProcessor",
            format!("no DataProcessor named {names}: erasure requests cannot be sent"),
        )
    });
    set_problem(
        set,
        UNBOUND_RESOURCES,
        problem,
        (
            "AllBound",
            "every processor reference names a DataProcessor",
        ),
    );
}

/// `ThirdCountryTransfer`: True naming the processors that hold the account's data outside the
/// EU/EEA without a transfer mechanism; False once none does after one did, absent on accounts
/// that never had one. Not a problem of the erasure, so `Ready` does not depend on it.
fn third_country_transfer(
    conditions: &mut Vec<Condition>,
    plan: &AccountPlan,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    use crate::retention::{ThirdCountryTransfer, transfers::THIRD_COUNTRY_TRANSFER};
    let transfers = &plan.third_country_transfers;
    let (status, reason, message) = if transfers.is_empty() {
        if !conditions.iter().any(|c| c.type_ == THIRD_COUNTRY_TRANSFER) {
            return;
        }
        (
            ConditionStatus::False,
            "NoUnsafeguardedTransfer",
            "no processor holds the account's data outside the EU/EEA without a transfer \
             mechanism"
                .to_owned(),
        )
    } else {
        let mut named: Vec<String> = transfers
            .iter()
            .take(MAX_NAMED_FAILURES)
            .map(ThirdCountryTransfer::label)
            .collect();
        if transfers.len() > MAX_NAMED_FAILURES {
            named.push(format!("and {} more", transfers.len() - MAX_NAMED_FAILURES));
        }
        (
            ConditionStatus::True,
            "NoTransferMechanism",
            format!(
                "data of this account is held outside the EU/EEA without a transfer mechanism \
                 by {}: declare the DataProcessor's transferMechanism or end the transfer",
                named.join(", ")
            ),
        )
    };
    set_condition(
        conditions,
        THIRD_COUNTRY_TRANSFER,
        status,
        reason,
        &message,
        generation,
        now,
    );
}

/// Status for an Account whose RetentionPolicy does not exist: erasure stops (fail safe).
///
/// Everything recorded (phase, terminatedAt, counts, proof, processors) is kept as stored, so
/// nothing is lost while the policy is away; only `nextDeletionAt` is cleared, because nothing
/// is deleted until the policy exists again. With nothing stored, the phase stays unset.
pub fn policy_missing_status(
    previous: Option<&AccountStatus>,
    policy: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> AccountStatus {
    let message =
        format!("RetentionPolicy {policy:?} not found: nothing is erased until it exists");
    erasure_stopped_status(previous, "PolicyNotFound", &message, generation, now)
}

/// Status for an Account whose RetentionPolicy cannot be read (it does not match this
/// operator's schema): erasure stops as when it is missing, with reason `PolicyMalformed`.
pub fn policy_malformed_status(
    previous: Option<&AccountStatus>,
    policy: &str,
    field: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> AccountStatus {
    let message = format!(
        "RetentionPolicy {policy:?} cannot be read at {field}: nothing is erased until it is \
         corrected"
    );
    erasure_stopped_status(previous, "PolicyMalformed", &message, generation, now)
}

/// The status of an account on which nothing is erased for now: everything recorded is kept,
/// `nextDeletionAt` is cleared, because nothing will be deleted then, and `Ready` is False with
/// `reason` and `message`.
fn halted(
    previous: Option<&AccountStatus>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> AccountStatus {
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.next_deletion_at = None;
    set_condition(
        &mut status.conditions,
        READY,
        ConditionStatus::False,
        reason,
        message,
        generation,
        now,
    );
    status
}

fn erasure_stopped_status(
    previous: Option<&AccountStatus>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> AccountStatus {
    let ready_reason = if reason == "PolicyNotFound" {
        "PolicyMissing"
    } else {
        reason
    };
    let mut status = halted(previous, ready_reason, message, generation, now);
    set_condition(
        &mut status.conditions,
        POLICY_MISSING,
        ConditionStatus::True,
        reason,
        message,
        generation,
        now,
    );
    status
}

/// Status for an Account whose spec says Terminated without `terminatedAt` (stored before the
/// schema required it): nothing is erased until the account system gives the time, because a
/// guessed one could skip a grace period. `Ready=False` with reason `TerminationTimeMissing`;
/// everything recorded is kept as stored, and `nextDeletionAt` is cleared.
pub fn termination_time_missing_status(
    previous: Option<&AccountStatus>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> AccountStatus {
    halted(
        previous,
        TERMINATION_TIME_MISSING,
        TERMINATION_TIME_MISSING_MESSAGE,
        generation,
        now,
    )
}

/// Why an Account terminated without a time is not erased, for its condition and event.
pub const TERMINATION_TIME_MISSING_MESSAGE: &str = "state is Terminated but spec.terminatedAt is missing: nothing is erased until the account \
     system sets the time of this termination";

/// The conditions of an Account that cannot be read: `Ready=False` with reason
/// `MalformedAccount`, the others kept as stored. Nothing bound to it is erased meanwhile.
pub fn malformed_account_conditions(
    stored: &[Condition],
    field: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let mut conditions = stored.to_vec();
    set_condition(
        &mut conditions,
        READY,
        ConditionStatus::False,
        "MalformedAccount",
        &format!(
            "the Account cannot be read at {field} (it does not match this operator's schema): \
             nothing bound to it is erased until it is corrected"
        ),
        generation,
        now,
    );
    conditions
}

/// Sets a condition Kubernetes-style: lastTransitionTime changes only when status changes.
///
/// Reason, message and observedGeneration are always updated. The conditions stay sorted by
/// type, so equal sets of conditions compare equal and a steady state writes nothing.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(condition) => {
            if condition.status != status {
                condition.status = status;
                condition.last_transition_time = now;
            }
            reason.clone_into(&mut condition.reason);
            message.clone_into(&mut condition.message);
            condition.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.to_owned(),
            last_transition_time: now,
            observed_generation: generation,
        }),
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Failures in a stable order, one per resource, so that the order in which concurrent
/// deletions failed cannot change the status (and cause a write).
pub(super) fn sorted_failures(failures: &[DeletionFailure]) -> Vec<&DeletionFailure> {
    let mut sorted: Vec<&DeletionFailure> = failures.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.resource, &a.reason, &a.message).cmp(&(&b.resource, &b.reason, &b.message))
    });
    sorted.dedup_by(|a, b| a.resource == b.resource);
    sorted
}

/// `ManualActionRequired` and `ErasureRequestsFailed` from the ledger; a failed request also
/// makes Ready False when nothing else already did (`ready_is_free`).
fn processor_conditions(
    processors: &[ProcessorNotification],
    set: &mut impl FnMut(&str, ConditionStatus, &str, &str),
) {
    let named = |state: NotificationState| -> Vec<String> {
        let mut names: Vec<String> = processors
            .iter()
            .filter(|p| p.state == state)
            .map(|p| match (&p.reason, state) {
                (Some(reason), NotificationState::Failed) => format!("{} ({reason})", p.name),
                _ => p.name.clone(),
            })
            .collect();
        names.dedup();
        let more = names.len().saturating_sub(MAX_NAMED_FAILURES);
        names.truncate(MAX_NAMED_FAILURES);
        if more > 0 {
            names.push(format!("and {more} more"));
        }
        names
    };
    let manual = named(NotificationState::Manual);
    let problem = (!manual.is_empty()).then(|| {
        let instruction = ledger::StaffInstruction::ManualCondition {
            processors: &manual,
        };
        ("ManualProcessor", ledger::staff_instruction(instruction))
    });
    set_problem(
        set,
        MANUAL_ACTION_REQUIRED,
        problem,
        ("NoManualRequests", "no erasure request waits for staff"),
    );
    let failed = named(NotificationState::Failed);
    let problem = (!failed.is_empty()).then(|| {
        let instruction = ledger::StaffInstruction::FailedCondition { requests: &failed };
        (
            "ErasureRequestFailed",
            ledger::staff_instruction(instruction),
        )
    });
    set_problem(
        set,
        ERASURE_REQUESTS_FAILED,
        problem,
        ("NoFailedRequests", "no erasure request failed"),
    );
}

fn malformed_message(malformed: &[&MalformedResource]) -> String {
    let mut parts: Vec<String> = malformed
        .iter()
        .take(MAX_NAMED_FAILURES)
        .map(|m| format!("{} (at {})", m.resource, m.field))
        .collect();
    if malformed.len() > MAX_NAMED_FAILURES {
        parts.push(format!("and {} more", malformed.len() - MAX_NAMED_FAILURES));
    }
    format!(
        "cannot read {}: such objects are never deleted, and erasure cannot complete until they \
         are corrected to this operator's schema or removed",
        parts.join("; ")
    )
}

fn failures_message(failures: &[&DeletionFailure]) -> String {
    let mut parts: Vec<String> = failures
        .iter()
        .take(MAX_NAMED_FAILURES)
        .map(|f| {
            if f.message.is_empty() {
                format!("{} ({})", f.resource, f.reason)
            } else {
                format!("{} ({}: {})", f.resource, f.reason, f.message)
            }
        })
        .collect();
    if failures.len() > MAX_NAMED_FAILURES {
        parts.push(format!("and {} more", failures.len() - MAX_NAMED_FAILURES));
    }
    format!("deletion failed for {}", parts.join("; "))
}

/// The reason as given when it is a valid condition reason (`metav1.Condition`'s pattern),
/// else `DeletionFailed`: a bad reason from a caller must not make the status write fail.
fn failure_reason(reason: &str) -> &str {
    let mut chars = reason.chars();
    let valid = reason.len() <= 1024
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && reason
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'))
        && !reason.ends_with([',', ':']);
    if valid { reason } else { "DeletionFailed" }
}
