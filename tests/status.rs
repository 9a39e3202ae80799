//! The status computation (`retention_operator::status`), as the controller uses it, on the
//! objects of the shared builders.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use retention_operator::api::{
    Account, AccountPhase, AccountStatus, Condition, ConditionStatus, DeletingItem, LegalBasis,
    NotificationState, ProcessorNotification, ResourceCounts, ResourceKind, RetainedItem,
};
use retention_operator::retention::{
    AccountPlan, BoundResource, ResourcePlan, ResourceRef, TerminationSource,
};
use retention_operator::status::{
    Announcements, DELETION_FAILED, DeletionFailure, DeletionLedger, ERASURE_REQUESTS_FAILED,
    ERASURE_SUSPENDED, MALFORMED_RESOURCES, MANUAL_ACTION_REQUIRED, MalformedResource, ON_HOLD,
    POLICY_MISSING, READY, StatusInput, UNBOUND_RESOURCES, account_status, announcements,
    policy_missing_status, set_condition,
};
use support::*;

/// The termination time most tests use.
const T: &str = "2026-11-01T00:00:00Z";

/// Everything a full lifecycle needs: hosted data, a CRM record at a processor, invoices
/// under the Bookkeeping Act and a backup.
fn everything() -> Vec<BoundResource> {
    vec![
        bound(&website("www", "acme")),
        bound(&database("shop-db", "acme")),
        bound(&mailbox("info", "acme")),
        bound(&data_record("crm", "acme").processor("pipedrive")),
        bound(&bookkeeping_record("invoices-2026", "acme", "2026-12-31")),
        bound(&backup(
            "shop-db-1",
            "acme",
            "shop-db",
            "2026-10-25T02:00:00Z",
        )),
    ]
}

/// What the controller stores and reads back: the status after a JSON round trip, so
/// the comparisons below are the comparisons the controller makes.
fn stored(status: &AccountStatus) -> AccountStatus {
    let json = serde_json::to_value(status).expect("serialize status");
    serde_json::from_value(json).expect("deserialize status")
}

/// One pass that deletes `deleted`, as the controller runs it: the deletions are recorded
/// (with their uids) in a first status write before any DELETE, then counted in a second
/// once gone.
fn pass(input: StatusInput<'_>, deleted: &[ResourceRef]) -> AccountStatus {
    let starting: Vec<DeletingItem> = deleted.iter().map(deleting).collect();
    let none = BTreeSet::new();
    let recorded = stored(&account_status(&StatusInput {
        deleted: &[],
        deletions: DeletionLedger {
            starting: &starting,
            gone: &none,
            called_off: &none,
            ..DeletionLedger::default()
        },
        ..input
    }));
    let gone: BTreeSet<String> = starting.iter().map(|d| d.uid.clone()).collect();
    account_status(&StatusInput {
        previous: Some(&recorded),
        deleted,
        deletions: DeletionLedger {
            starting: &starting,
            gone: &gone,
            called_off: &none,
            ..DeletionLedger::default()
        },
        ..input
    })
}

/// The record of a deletion under way, with a uid made from the reference.
fn deleting(r: &ResourceRef) -> DeletingItem {
    DeletingItem {
        kind: r.kind.as_str().to_owned(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        uid: format!("uid-{}-{}-{}", r.kind, r.namespace, r.name),
        delete_at: None,
        legal_basis: None,
        rule: None,
    }
}

/// A pass over `plan` at `now` that deleted nothing and found nothing wrong; the Account is at
/// generation 3.
fn input<'a>(
    plan: &'a AccountPlan,
    previous: Option<&'a AccountStatus>,
    now: &str,
) -> StatusInput<'a> {
    StatusInput {
        plan,
        previous,
        generation: Some(3),
        deleted: &[],
        deletions: DeletionLedger::default(),
        failures: &[],
        unknown_processors: &[],
        malformed: &[],
        announced_until: None,
        processors: None,
        suspended_by: None,
        now: at(now),
    }
}

fn condition<'a>(status: &'a AccountStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#?}"))
}

/// `(status, reason)` of a condition, for compact assertions.
fn cond(status: &AccountStatus, type_: &str) -> (ConditionStatus, String) {
    let c = condition(status, type_);
    (c.status, c.reason.clone())
}

fn counts(bound: u32, scheduled: u32, deleted: u32, retained: u32) -> ResourceCounts {
    ResourceCounts {
        bound,
        scheduled,
        deleted,
        retained,
    }
}

fn failure(kind: ResourceKind, name: &str, reason: &str) -> DeletionFailure {
    DeletionFailure {
        resource: resource_ref(kind, name),
        reason: reason.to_owned(),
        message: "the API server refused the delete".to_owned(),
    }
}

#[test]
fn a_steady_state_computes_the_stored_status_again() {
    struct Case {
        name: &'static str,
        account: Account,
        bound: Vec<BoundResource>,
        now: &'static str,
        unknown: Vec<String>,
        phase: AccountPhase,
    }
    let policy = policy();
    let cases = [
        Case {
            name: "active account",
            account: account("acme"),
            bound: everything(),
            now: "2026-11-10T00:00:00Z",
            unknown: vec![],
            phase: AccountPhase::Active,
        },
        Case {
            name: "suspended account",
            account: account("acme").suspended(),
            bound: everything(),
            now: "2026-11-10T00:00:00Z",
            unknown: vec![],
            phase: AccountPhase::Suspended,
        },
        Case {
            name: "grace period",
            account: account("acme").terminated_at(T),
            bound: everything(),
            now: "2026-11-10T00:00:00Z",
            unknown: vec![],
            phase: AccountPhase::GracePeriod,
        },
        Case {
            name: "erasing",
            account: account("acme").terminated_at(T),
            bound: everything(),
            now: "2026-12-02T00:00:00Z",
            unknown: vec![],
            phase: AccountPhase::Erasing,
        },
        Case {
            name: "retained",
            account: account("acme").terminated_at(T),
            bound: vec![bound(&bookkeeping_record(
                "invoices-2026",
                "acme",
                "2026-12-31",
            ))],
            now: "2027-03-01T00:00:00Z",
            unknown: vec![],
            phase: AccountPhase::Retained,
        },
        Case {
            name: "erased",
            account: account("acme").terminated_at(T),
            bound: vec![],
            now: "2034-02-01T00:00:00Z",
            unknown: vec![],
            phase: AccountPhase::Erased,
        },
        Case {
            name: "on hold",
            account: account("acme").terminated_at(T).hold(None::<&str>),
            bound: everything(),
            now: "2026-12-10T00:00:00Z",
            unknown: vec![],
            phase: AccountPhase::OnHold,
        },
        Case {
            name: "termination first seen",
            account: account("acme").terminated(),
            bound: everything(),
            now: "2026-11-10T00:00:00Z",
            unknown: vec![],
            phase: AccountPhase::GracePeriod,
        },
        Case {
            name: "unknown processors",
            account: account("acme").terminated_at(T),
            bound: everything(),
            now: "2026-11-10T00:00:00Z",
            unknown: vec!["pipedrive".to_owned()],
            phase: AccountPhase::GracePeriod,
        },
    ];
    for case in cases {
        let account = case.account;
        let plan = plan_one(&account, &case.bound, &policy, at(case.now));
        assert_eq!(plan.phase, case.phase, "case {}: phase", case.name);
        let first = account_status(&StatusInput {
            unknown_processors: &case.unknown,
            ..input(&plan, None, case.now)
        });
        let mut previous = stored(&first);
        assert_eq!(previous, first, "case {}: JSON round trip", case.name);
        // Without a ledger of this pass (`processors: None`), the stored requests must
        // survive untouched (an acknowledged one, so the phase does not wait for it).
        previous.processors = vec![ProcessorNotification {
            name: "pipedrive".to_owned(),
            state: NotificationState::Acknowledged,
            erasure_at: Some(at("2026-12-01T00:00:00Z")),
            idempotency_key: Some("key".to_owned()),
            requested_at: Some(at("2026-12-01T00:00:00Z")),
            resources: vec![],
            attempts: 0,
            last_attempt_at: None,
            next_attempt_at: None,
            reason: None,
            acknowledged_at: Some(at("2026-12-02T00:00:00Z")),
        }];
        // The next pass plans from the Account as stored, at a later time.
        let account = account.with_status(&previous);
        for later in ["2026-12-01T00:00:00Z", "2040-01-01T00:00:00Z"] {
            let later = if at(later) > at(case.now) {
                later
            } else {
                case.now
            };
            // Same plan, later `now`: exactly the stored status.
            let again = account_status(&StatusInput {
                unknown_processors: &case.unknown,
                ..input(&plan, Some(&previous), later)
            });
            assert_eq!(again, previous, "case {}: same plan at {later}", case.name);
        }
        // Re-planned from the stored Account (a recorded termination now comes back
        // from the status) a moment later: still nothing to write.
        let replanned = plan_one(
            &account,
            &case.bound,
            &policy,
            at(case.now) + TimeDelta::seconds(1),
        );
        let again = account_status(&StatusInput {
            unknown_processors: &case.unknown,
            ..input(&replanned, Some(&previous), case.now)
        });
        assert_eq!(again, previous, "case {}: re-planned", case.name);
    }
}

#[test]
fn a_full_lifecycle_keeps_a_cumulative_proof() {
    // The Mailbox goes with the rest at the end of the grace period.
    let policy = policy_with_one_grace_period();
    let acct = account("acme").terminated_at(T);
    let www = resource_ref(ResourceKind::Website, "www");
    let db = resource_ref(ResourceKind::Database, "shop-db");
    let mbx = resource_ref(ResourceKind::Mailbox, "info");
    let crm_ref = resource_ref(ResourceKind::DataRecord, "crm");
    let inv = resource_ref(ResourceKind::DataRecord, "invoices-2026");
    let bkp = resource_ref(ResourceKind::Backup, "shop-db-1");
    let invoice_item = RetainedItem {
        kind: "DataRecord".to_owned(),
        namespace: NAMESPACE.to_owned(),
        name: "invoices-2026".to_owned(),
        delete_at: Some(at("2034-01-01T00:00:00Z")),
        legal_basis: LegalBasis::LegalObligation,
    };
    // The only backup is the newest of its month (6 months), capped at T + 90d.
    let backup_item = RetainedItem {
        kind: "Backup".to_owned(),
        namespace: NAMESPACE.to_owned(),
        name: "shop-db-1".to_owned(),
        delete_at: Some(at("2027-01-30T00:00:00Z")),
        legal_basis: LegalBasis::LegitimateInterest,
    };

    struct Step {
        name: &'static str,
        now: &'static str,
        bound: Vec<BoundResource>,
        deleted: Vec<ResourceRef>,
        phase: AccountPhase,
        next: Option<&'static str>,
        proof_deleted: Vec<(&'static str, u32)>,
        started_at: Option<&'static str>,
        completed_at: Option<&'static str>,
        retained: Vec<RetainedItem>,
        resources: Vec<(&'static str, ResourceCounts)>,
        ready: &'static str,
    }
    let hosted_gone = vec![
        bound(&bookkeeping_record("invoices-2026", "acme", "2026-12-31")),
        bound(&backup(
            "shop-db-1",
            "acme",
            "shop-db",
            "2026-10-25T02:00:00Z",
        )),
    ];
    let steps = [
        Step {
            name: "grace period: nothing deleted, retained items already known",
            now: "2026-11-10T00:00:00Z",
            bound: everything(),
            deleted: vec![],
            phase: AccountPhase::GracePeriod,
            next: Some("2026-12-01T00:00:00Z"),
            proof_deleted: vec![],
            started_at: None,
            completed_at: None,
            retained: vec![backup_item.clone(), invoice_item.clone()],
            resources: vec![
                ("Backup", counts(1, 1, 0, 1)),
                ("DataRecord", counts(2, 2, 0, 1)),
                ("Database", counts(1, 1, 0, 0)),
                ("Mailbox", counts(1, 1, 0, 0)),
                ("Website", counts(1, 1, 0, 0)),
            ],
            ready: "6 scheduled, next deletion 2026-12-01T00:00:00Z",
        },
        Step {
            name: "end of grace: hosted data deleted, proof started",
            now: "2026-12-01T00:00:01Z",
            bound: everything(),
            deleted: vec![www.clone(), db.clone(), mbx.clone(), crm_ref.clone()],
            phase: AccountPhase::Erasing,
            next: Some("2027-01-30T00:00:00Z"),
            proof_deleted: vec![
                ("DataRecord", 1),
                ("Database", 1),
                ("Mailbox", 1),
                ("Website", 1),
            ],
            started_at: Some("2026-12-01T00:00:01Z"),
            completed_at: None,
            retained: vec![backup_item.clone(), invoice_item.clone()],
            resources: vec![
                ("Backup", counts(1, 1, 0, 1)),
                ("DataRecord", counts(1, 1, 1, 1)),
                ("Database", counts(0, 0, 1, 0)),
                ("Mailbox", counts(0, 0, 1, 0)),
                ("Website", counts(0, 0, 1, 0)),
            ],
            ready: "2 scheduled, next deletion 2027-01-30T00:00:00Z",
        },
        Step {
            name: "re-planned after the deletions: retained",
            now: "2026-12-01T00:00:02Z",
            bound: hosted_gone.clone(),
            deleted: vec![],
            phase: AccountPhase::Retained,
            next: Some("2027-01-30T00:00:00Z"),
            proof_deleted: vec![
                ("DataRecord", 1),
                ("Database", 1),
                ("Mailbox", 1),
                ("Website", 1),
            ],
            started_at: Some("2026-12-01T00:00:01Z"),
            completed_at: None,
            retained: vec![backup_item.clone(), invoice_item.clone()],
            resources: vec![
                ("Backup", counts(1, 1, 0, 1)),
                ("DataRecord", counts(1, 1, 1, 1)),
                ("Database", counts(0, 0, 1, 0)),
                ("Mailbox", counts(0, 0, 1, 0)),
                ("Website", counts(0, 0, 1, 0)),
            ],
            ready: "2 scheduled, next deletion 2027-01-30T00:00:00Z",
        },
        Step {
            name: "backup expires; startedAt stays",
            now: "2027-01-30T00:00:01Z",
            bound: hosted_gone.clone(),
            deleted: vec![bkp.clone()],
            phase: AccountPhase::Retained,
            next: Some("2034-01-01T00:00:00Z"),
            proof_deleted: vec![
                ("Backup", 1),
                ("DataRecord", 1),
                ("Database", 1),
                ("Mailbox", 1),
                ("Website", 1),
            ],
            started_at: Some("2026-12-01T00:00:01Z"),
            completed_at: None,
            retained: vec![invoice_item.clone()],
            resources: vec![
                ("Backup", counts(0, 0, 1, 0)),
                ("DataRecord", counts(1, 1, 1, 1)),
                ("Database", counts(0, 0, 1, 0)),
                ("Mailbox", counts(0, 0, 1, 0)),
                ("Website", counts(0, 0, 1, 0)),
            ],
            ready: "1 scheduled, next deletion 2034-01-01T00:00:00Z",
        },
        Step {
            name: "bookkeeping date: invoices deleted",
            now: "2034-01-01T00:00:01Z",
            bound: vec![bound(&bookkeeping_record(
                "invoices-2026",
                "acme",
                "2026-12-31",
            ))],
            deleted: vec![inv.clone()],
            phase: AccountPhase::Retained,
            next: None,
            proof_deleted: vec![
                ("Backup", 1),
                ("DataRecord", 2),
                ("Database", 1),
                ("Mailbox", 1),
                ("Website", 1),
            ],
            started_at: Some("2026-12-01T00:00:01Z"),
            completed_at: None,
            retained: vec![],
            resources: vec![
                ("Backup", counts(0, 0, 1, 0)),
                ("DataRecord", counts(0, 0, 2, 0)),
                ("Database", counts(0, 0, 1, 0)),
                ("Mailbox", counts(0, 0, 1, 0)),
                ("Website", counts(0, 0, 1, 0)),
            ],
            ready: "nothing scheduled",
        },
        Step {
            name: "nothing bound: erased, proof completed",
            now: "2034-01-01T00:00:02Z",
            bound: vec![],
            deleted: vec![],
            phase: AccountPhase::Erased,
            next: None,
            proof_deleted: vec![
                ("Backup", 1),
                ("DataRecord", 2),
                ("Database", 1),
                ("Mailbox", 1),
                ("Website", 1),
            ],
            started_at: Some("2026-12-01T00:00:01Z"),
            completed_at: Some("2034-01-01T00:00:02Z"),
            retained: vec![],
            resources: vec![
                ("Backup", counts(0, 0, 1, 0)),
                ("DataRecord", counts(0, 0, 2, 0)),
                ("Database", counts(0, 0, 1, 0)),
                ("Mailbox", counts(0, 0, 1, 0)),
                ("Website", counts(0, 0, 1, 0)),
            ],
            ready: "nothing scheduled",
        },
        Step {
            name: "years later: the proof is kept as it was",
            now: "2040-06-01T00:00:00Z",
            bound: vec![],
            deleted: vec![],
            phase: AccountPhase::Erased,
            next: None,
            proof_deleted: vec![
                ("Backup", 1),
                ("DataRecord", 2),
                ("Database", 1),
                ("Mailbox", 1),
                ("Website", 1),
            ],
            started_at: Some("2026-12-01T00:00:01Z"),
            completed_at: Some("2034-01-01T00:00:02Z"),
            retained: vec![],
            resources: vec![
                ("Backup", counts(0, 0, 1, 0)),
                ("DataRecord", counts(0, 0, 2, 0)),
                ("Database", counts(0, 0, 1, 0)),
                ("Mailbox", counts(0, 0, 1, 0)),
                ("Website", counts(0, 0, 1, 0)),
            ],
            ready: "nothing scheduled",
        },
    ];
    let mut previous: Option<AccountStatus> = None;
    let mut ready_since = None;
    for step in steps {
        let plan = plan_one(&acct, &step.bound, &policy, at(step.now));
        assert_eq!(plan.phase, step.phase, "step {:?}: plan phase", step.name);
        let status = pass(
            StatusInput {
                ..input(&plan, previous.as_ref(), step.now)
            },
            &step.deleted,
        );
        let name = step.name;
        assert_eq!(status.phase, Some(step.phase), "step {name:?}: phase");
        assert_eq!(
            status.terminated_at, plan.terminated_at,
            "step {name:?}: the spec's time"
        );
        assert_eq!(
            status.next_deletion_at,
            step.next.map(at),
            "step {name:?}: next"
        );
        assert_eq!(status.observed_generation, Some(3), "step {name:?}");
        let proof = status.erasure.clone().unwrap_or_default();
        let expected: BTreeMap<String, u32> = step
            .proof_deleted
            .iter()
            .map(|&(k, n)| (k.to_owned(), n))
            .collect();
        assert_eq!(proof.deleted, expected, "step {name:?}: proof deleted");
        assert_eq!(
            proof.started_at,
            step.started_at.map(at),
            "step {name:?}: startedAt"
        );
        assert_eq!(
            proof.completed_at,
            step.completed_at.map(at),
            "step {name:?}"
        );
        assert_eq!(
            proof.retained, step.retained,
            "step {name:?}: retained items"
        );
        let expected: BTreeMap<String, ResourceCounts> = step
            .resources
            .iter()
            .map(|&(k, c)| (k.to_owned(), c))
            .collect();
        assert_eq!(status.resources, expected, "step {name:?}: resources");
        let ready = condition(&status, READY);
        assert_eq!(ready.status, ConditionStatus::True, "step {name:?}: Ready");
        assert_eq!(
            ready.reason,
            step.phase.as_str(),
            "step {name:?}: Ready reason"
        );
        assert_eq!(ready.message, step.ready, "step {name:?}: Ready message");
        // Ready stays True throughout, so it never transitions after the first pass.
        let since = *ready_since.get_or_insert(ready.last_transition_time);
        assert_eq!(
            ready.last_transition_time, since,
            "step {name:?}: Ready time"
        );
        previous = Some(stored(&status));
    }
}

#[test]
fn terminated_at_shows_the_time_of_the_termination_in_force() {
    // Every hosted object is due a grace period after the termination, the Mailbox too.
    let policy = policy_with_one_grace_period();
    let first = "2026-11-05T10:00:00Z";
    let acct = account("acme").terminated_at(first);
    let plan1 = plan_one(&acct, &everything(), &policy, at("2026-11-06T00:00:00Z"));
    let s1 = account_status(&input(&plan1, None, "2026-11-06T00:00:00Z"));
    assert_eq!(s1.terminated_at, Some(at(first)));
    assert_eq!(s1.next_deletion_at, Some(at("2026-12-05T10:00:00Z")));

    // Reactivated inside the grace period: no time, no hosted schedules.
    let acct = account("acme").with_status(&s1);
    let plan2 = plan_one(&acct, &everything(), &policy, at("2026-11-20T00:00:00Z"));
    let s2 = account_status(&input(&plan2, Some(&s1), "2026-11-20T00:00:00Z"));
    assert_eq!(s2.phase, Some(AccountPhase::Active));
    assert_eq!(s2.terminated_at, None, "reactivation clears the time");
    // Only the backup schedule runs: newest of October 2026, kept 6 months, no cap.
    assert_eq!(
        s2.next_deletion_at,
        Some(at("2027-04-25T02:00:00Z")),
        "backup expiry only"
    );
    assert_eq!(
        s2.erasure, s1.erasure,
        "the proof is not touched by a live account"
    );
    assert_eq!(
        s2.resources.get("Website"),
        Some(&counts(1, 0, 0, 0)),
        "nothing hosted is scheduled any more"
    );

    // Terminated again, and the operator never saw the reactivation: the stored status
    // still shows the first time, but the grace period counts from the new one.
    let second = "2026-12-20T00:00:00Z";
    let acct = account("acme").terminated_at(second).with_status(&s1);
    let plan3 = plan_one(&acct, &everything(), &policy, at("2026-12-21T00:00:00Z"));
    let s3 = account_status(&input(&plan3, Some(&s1), "2026-12-21T00:00:00Z"));
    assert_eq!(s3.terminated_at, Some(at(second)));
    assert_eq!(s3.phase, Some(AccountPhase::GracePeriod));
    assert_eq!(s3.next_deletion_at, Some(at("2027-01-19T00:00:00Z")));

    // An Active account being deleted is terminated at its deletionTimestamp; a stored
    // time from an earlier, reverted termination is stale and is replaced.
    let acct = account("acme")
        .deleted_at("2026-11-21T00:00:00Z")
        .with_status(&s1);
    let plan4 = plan_one(&acct, &everything(), &policy, at("2026-11-21T00:00:01Z"));
    assert_eq!(
        plan4.termination.map(|t| t.source),
        Some(TerminationSource::Deletion)
    );
    let s4 = account_status(&input(&plan4, Some(&s1), "2026-11-21T00:00:01Z"));
    assert_eq!(s4.terminated_at, Some(at("2026-11-21T00:00:00Z")));
    assert_eq!(s4.phase, Some(AccountPhase::GracePeriod));
}

#[test]
fn failures_turn_ready_false_and_recover() {
    // The failed Mailbox was due with the rest, at the end of the grace period.
    let policy = policy_with_one_grace_period();
    let acct = account("acme").terminated_at(T);
    let bound = everything();
    let grace = plan_one(&acct, &bound, &policy, at("2026-11-10T00:00:00Z"));
    let s0 = stored(&account_status(&input(
        &grace,
        None,
        "2026-11-10T00:00:00Z",
    )));

    let due = plan_one(&acct, &bound, &policy, at("2026-12-01T00:00:01Z"));
    let www = resource_ref(ResourceKind::Website, "www");
    let failures = [
        failure(ResourceKind::Mailbox, "info", "Forbidden"),
        failure(ResourceKind::Database, "shop-db", "Conflict"),
    ];
    let deleted = [www.clone()];
    let s1 = stored(&pass(
        StatusInput {
            failures: &failures,
            ..input(&due, Some(&s0), "2026-12-01T00:00:01Z")
        },
        &deleted,
    ));
    let ready = condition(&s1, READY);
    assert_eq!(
        (ready.status, ready.reason.as_str(), ready.message.as_str()),
        (
            ConditionStatus::False,
            "DeletionFailed",
            "2 deletions failed, see condition DeletionFailed"
        )
    );
    assert_eq!(ready.last_transition_time, at("2026-12-01T00:00:01Z"));
    let failed = condition(&s1, DELETION_FAILED);
    assert_eq!(failed.status, ConditionStatus::True);
    // Sorted by resource (Database before Mailbox), whatever order they failed in.
    assert_eq!(failed.reason, "Conflict");
    assert_eq!(
        failed.message,
        "deletion failed for Database cust-acme/shop-db (Conflict: the API server refused the \
         delete); Mailbox cust-acme/info (Forbidden: the API server refused the delete)"
    );
    assert_eq!(s1.phase, Some(AccountPhase::Erasing));
    // The failed objects are still bound and scheduled; the deleted one is counted.
    assert_eq!(s1.resources.get("Mailbox"), Some(&counts(1, 1, 0, 0)));
    assert_eq!(s1.resources.get("Website"), Some(&counts(0, 0, 1, 0)));
    assert_eq!(s1.next_deletion_at, Some(at("2026-12-01T00:00:00Z")));
    // Conditions that did not change keep their original transition time.
    assert_eq!(
        condition(&s1, ON_HOLD).last_transition_time,
        at("2026-11-10T00:00:00Z")
    );

    // The same failures in another order: the same status, so no write.
    let reversed = [failures[1].clone(), failures[0].clone()];
    let again = pass(
        StatusInput {
            failures: &reversed,
            ..input(&due, Some(&s0), "2026-12-01T00:00:01Z")
        },
        &deleted,
    );
    assert_eq!(again, s1);

    // The retry succeeds: Ready True again, DeletionFailed False, both transitioned now.
    let bound2: Vec<BoundResource> = bound
        .iter()
        .filter(|b| b.reference != www)
        .cloned()
        .collect();
    let retry = plan_one(&acct, &bound2, &policy, at("2026-12-01T00:01:00Z"));
    let deleted2 = [
        resource_ref(ResourceKind::Mailbox, "info"),
        resource_ref(ResourceKind::Database, "shop-db"),
        resource_ref(ResourceKind::DataRecord, "crm"),
    ];
    let s2 = pass(
        StatusInput {
            ..input(&retry, Some(&s1), "2026-12-01T00:01:00Z")
        },
        &deleted2,
    );
    assert_eq!(
        cond(&s2, READY),
        (ConditionStatus::True, "Erasing".to_owned())
    );
    assert_eq!(
        cond(&s2, DELETION_FAILED),
        (ConditionStatus::False, "NoFailures".to_owned())
    );
    for type_ in [READY, DELETION_FAILED] {
        assert_eq!(
            condition(&s2, type_).last_transition_time,
            at("2026-12-01T00:01:00Z"),
            "{type_} transitioned"
        );
    }
    let proof = s2.erasure.clone().unwrap_or_default();
    assert_eq!(
        proof.started_at,
        Some(at("2026-12-01T00:00:01Z")),
        "set once"
    );
    assert_eq!(proof.deleted.values().sum::<u32>(), 4);
    assert_eq!(s2.next_deletion_at, Some(at("2027-01-30T00:00:00Z")));
}

#[test]
fn deletion_failure_reasons_and_messages_stay_valid() {
    struct Case {
        name: &'static str,
        failures: Vec<DeletionFailure>,
        reason: &'static str,
        message_ends: &'static str,
    }
    let policy = policy();
    let many: Vec<DeletionFailure> = (0..12)
        .map(|i| failure(ResourceKind::Backup, &format!("b{i:02}"), "Forbidden"))
        .collect();
    let cases = [
        Case {
            name: "CamelCase reason is kept",
            failures: vec![failure(ResourceKind::Website, "www", "TooManyRequests")],
            reason: "TooManyRequests",
            message_ends: "(TooManyRequests: the API server refused the delete)",
        },
        Case {
            name: "reason with spaces falls back",
            failures: vec![failure(ResourceKind::Website, "www", "too many requests")],
            reason: "DeletionFailed",
            message_ends: "(too many requests: the API server refused the delete)",
        },
        Case {
            name: "empty reason falls back",
            failures: vec![failure(ResourceKind::Website, "www", "")],
            reason: "DeletionFailed",
            message_ends: "refused the delete)",
        },
        Case {
            name: "an empty message is left out",
            failures: vec![DeletionFailure {
                message: String::new(),
                ..failure(ResourceKind::Website, "www", "Timeout")
            }],
            reason: "Timeout",
            message_ends: "Website cust-acme/www (Timeout)",
        },
        Case {
            name: "a resource reported twice is named once",
            failures: vec![
                failure(ResourceKind::Website, "www", "Timeout"),
                failure(ResourceKind::Website, "www", "Timeout"),
            ],
            reason: "Timeout",
            message_ends: "for Website cust-acme/www (Timeout: the API server refused the delete)",
        },
        Case {
            name: "a mass failure names ten and counts the rest",
            failures: many,
            reason: "Forbidden",
            message_ends: "Backup cust-acme/b09 (Forbidden: the API server refused the delete); \
                           and 2 more",
        },
    ];
    let acct = account("acme").terminated_at(T);
    let due = plan_one(&acct, &everything(), &policy, at("2026-12-02T00:00:00Z"));
    for case in cases {
        let status = account_status(&StatusInput {
            failures: &case.failures,
            ..input(&due, None, "2026-12-02T00:00:00Z")
        });
        let c = condition(&status, DELETION_FAILED);
        assert_eq!(c.reason, case.reason, "case {}", case.name);
        assert!(
            c.message.ends_with(case.message_ends),
            "case {}: message {:?}",
            case.name,
            c.message
        );
    }
}

#[test]
fn legal_hold_and_processor_conditions() {
    struct Case {
        name: &'static str,
        account: Account,
        unknown: Vec<String>,
        now: &'static str,
        phase: AccountPhase,
        on_hold: (ConditionStatus, &'static str, &'static str),
        unbound: (ConditionStatus, &'static str, &'static str),
        next: Option<&'static str>,
    }
    // Once the hold is over, the Mailbox is due with the rest.
    let policy = policy_with_one_grace_period();
    let all_bound = (
        ConditionStatus::False,
        "AllBound",
        "every processor reference names a DataProcessor",
    );
    let cases = [
        Case {
            name: "hold without end: nothing scheduled",
            account: account("acme").terminated_at(T).hold(None::<&str>),
            unknown: vec![],
            now: "2026-12-10T00:00:00Z",
            phase: AccountPhase::OnHold,
            on_hold: (
                ConditionStatus::True,
                "LegalHold",
                "legal hold without end date: nothing is erased",
            ),
            unbound: all_bound,
            next: None,
        },
        Case {
            name: "hold with end: schedules wait for it",
            account: account("acme")
                .terminated_at(T)
                .hold(Some("2027-06-01T00:00:00Z")),
            unknown: vec![],
            now: "2026-12-10T00:00:00Z",
            phase: AccountPhase::OnHold,
            on_hold: (
                ConditionStatus::True,
                "LegalHold",
                "legal hold until 2027-06-01T00:00:00Z: nothing is erased",
            ),
            unbound: all_bound,
            next: Some("2027-06-01T00:00:00Z"),
        },
        Case {
            name: "hold ended: erasure resumes",
            account: account("acme")
                .terminated_at(T)
                .hold(Some("2026-11-05T00:00:00Z")),
            unknown: vec![],
            now: "2026-11-10T00:00:00Z",
            phase: AccountPhase::GracePeriod,
            on_hold: (
                ConditionStatus::False,
                "NoHold",
                "legal hold ended 2026-11-05T00:00:00Z",
            ),
            unbound: all_bound,
            next: Some("2026-12-01T00:00:00Z"),
        },
        Case {
            name: "unknown processors, sorted and deduplicated",
            account: account("acme").terminated_at(T),
            unknown: vec![
                "pipedrive".to_owned(),
                "key-systems".to_owned(),
                "pipedrive".to_owned(),
            ],
            now: "2026-11-10T00:00:00Z",
            phase: AccountPhase::GracePeriod,
            on_hold: (ConditionStatus::False, "NoHold", "no legal hold"),
            unbound: (
                ConditionStatus::True,
                "UnknownProcessor",
                "no DataProcessor named key-systems, pipedrive: erasure requests cannot \
                 be sent",
            ),
            next: Some("2026-12-01T00:00:00Z"),
        },
    ];
    for case in cases {
        let plan = plan_one(&case.account, &everything(), &policy, at(case.now));
        let status = account_status(&StatusInput {
            unknown_processors: &case.unknown,
            ..input(&plan, None, case.now)
        });
        let name = case.name;
        assert_eq!(status.phase, Some(case.phase), "case {name}: phase");
        assert_eq!(
            status.next_deletion_at,
            case.next.map(at),
            "case {name}: next"
        );
        for (type_, (s, reason, message)) in
            [(ON_HOLD, case.on_hold), (UNBOUND_RESOURCES, case.unbound)]
        {
            let c = condition(&status, type_);
            assert_eq!(
                (c.status, c.reason.as_str(), c.message.as_str()),
                (s, reason, message),
                "case {name}: {type_}"
            );
        }
        assert_eq!(
            cond(&status, READY),
            (ConditionStatus::True, case.phase.as_str().to_owned()),
            "case {name}: Ready"
        );
        assert_eq!(
            cond(&status, POLICY_MISSING),
            (ConditionStatus::False, "PolicyFound".to_owned()),
            "case {name}"
        );
    }

    // The unknown processor is created: the condition turns False, with a transition.
    let acct = account("acme").terminated_at(T);
    let plan = plan_one(&acct, &everything(), &policy, at("2026-11-10T00:00:00Z"));
    let unknown = ["pipedrive".to_owned()];
    let s1 = account_status(&StatusInput {
        unknown_processors: &unknown,
        ..input(&plan, None, "2026-11-10T00:00:00Z")
    });
    let s2 = account_status(&input(&plan, Some(&s1), "2026-11-11T00:00:00Z"));
    let c = condition(&s2, UNBOUND_RESOURCES);
    assert_eq!(
        (c.status, c.reason.as_str()),
        (ConditionStatus::False, "AllBound")
    );
    assert_eq!(c.last_transition_time, at("2026-11-11T00:00:00Z"));
    assert_eq!(
        condition(&s2, READY).last_transition_time,
        at("2026-11-10T00:00:00Z")
    );
}

#[test]
fn a_missing_policy_stops_erasure_and_keeps_the_record() {
    let policy = policy();
    let first_seen = "2026-11-05T00:00:00Z";
    let acct = account("acme").terminated_at(first_seen);
    let bound = everything();
    let plan1 = plan_one(&acct, &bound, &policy, at(first_seen));
    let info = [resource_ref(ResourceKind::Mailbox, "info")];
    let before = stored(&pass(
        StatusInput {
            ..input(&plan1, None, first_seen)
        },
        &info,
    ));

    let missing = policy_missing_status(Some(&before), "gold", Some(4), at("2026-11-06T00:00:00Z"));
    assert_eq!(missing.phase, before.phase, "phase as stored");
    assert_eq!(
        missing.terminated_at,
        Some(at(first_seen)),
        "the time shown is kept"
    );
    assert_eq!(missing.resources, before.resources, "counts kept");
    assert_eq!(missing.erasure, before.erasure, "proof kept");
    assert_eq!(missing.processors, before.processors);
    assert_eq!(
        missing.next_deletion_at, None,
        "nothing is deleted meanwhile"
    );
    assert_eq!(missing.observed_generation, Some(4));
    let c = condition(&missing, POLICY_MISSING);
    assert_eq!(
        (c.status, c.reason.as_str(), c.message.as_str()),
        (
            ConditionStatus::True,
            "PolicyNotFound",
            "RetentionPolicy \"gold\" not found: nothing is erased until it exists"
        )
    );
    assert_eq!(c.last_transition_time, at("2026-11-06T00:00:00Z"));
    assert_eq!(
        cond(&missing, READY),
        (ConditionStatus::False, "PolicyMissing".to_owned())
    );
    // Untouched conditions keep their time.
    assert_eq!(
        condition(&missing, ON_HOLD).last_transition_time,
        at(first_seen)
    );
    // Still missing later: nothing to write.
    let missing = stored(&missing);
    let again = policy_missing_status(Some(&missing), "gold", Some(4), at("2027-01-01T00:00:00Z"));
    assert_eq!(again, missing);

    // Never reconciled before: no phase, only the two conditions.
    let fresh = policy_missing_status(None, "gold", Some(1), at("2026-11-06T00:00:00Z"));
    assert_eq!(fresh.phase, None);
    let types: Vec<&str> = fresh.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, [POLICY_MISSING, READY]);

    // The policy is back: PolicyMissing turns False with a transition.
    let acct = account("acme")
        .terminated_at(first_seen)
        .with_status(&missing);
    let plan2 = plan_one(&acct, &bound, &policy, at("2027-01-02T00:00:00Z"));
    let back = account_status(&input(&plan2, Some(&missing), "2027-01-02T00:00:00Z"));
    let c = condition(&back, POLICY_MISSING);
    assert_eq!(
        (c.status, c.reason.as_str()),
        (ConditionStatus::False, "PolicyFound")
    );
    assert_eq!(c.last_transition_time, at("2027-01-02T00:00:00Z"));
    assert_eq!(back.terminated_at, Some(at(first_seen)));
    assert_eq!(
        cond(&back, READY),
        (ConditionStatus::True, "Erasing".to_owned())
    );
}

#[test]
fn next_deletion_and_counts_leave_out_what_this_pass_deleted() {
    struct Case {
        name: &'static str,
        deleted: Vec<ResourceRef>,
        next: Option<&'static str>,
        website: Option<ResourceCounts>,
    }
    // Every hosted object is due at the end of the grace period, the Mailbox too.
    let policy = policy_with_one_grace_period();
    let www = resource_ref(ResourceKind::Website, "www");
    let hosted = [
        www.clone(),
        resource_ref(ResourceKind::Database, "shop-db"),
        resource_ref(ResourceKind::Mailbox, "info"),
        resource_ref(ResourceKind::DataRecord, "crm"),
    ];
    let cases = [
        Case {
            name: "nothing deleted",
            deleted: vec![],
            next: Some("2026-12-01T00:00:00Z"),
            website: Some(counts(1, 1, 0, 0)),
        },
        Case {
            name: "one of four due deleted",
            deleted: vec![www.clone()],
            next: Some("2026-12-01T00:00:00Z"),
            website: Some(counts(0, 0, 1, 0)),
        },
        Case {
            name: "all due deleted: the backup is next",
            deleted: hosted.to_vec(),
            next: Some("2027-01-30T00:00:00Z"),
            website: Some(counts(0, 0, 1, 0)),
        },
        Case {
            name: "a deletion reported twice counts once",
            deleted: vec![www.clone(), www.clone()],
            next: Some("2026-12-01T00:00:00Z"),
            website: Some(counts(0, 0, 1, 0)),
        },
        Case {
            name: "an object already gone (404) not in the plan is counted",
            deleted: vec![resource_ref(ResourceKind::Website, "old")],
            next: Some("2026-12-01T00:00:00Z"),
            website: Some(counts(1, 1, 1, 0)),
        },
    ];
    let acct = account("acme").terminated_at(T);
    let due = plan_one(&acct, &everything(), &policy, at("2026-12-01T00:00:01Z"));
    assert_eq!(due.next_deletion_at, Some(at("2026-12-01T00:00:00Z")));
    for case in cases {
        let status = pass(
            StatusInput {
                ..input(&due, None, "2026-12-01T00:00:01Z")
            },
            &case.deleted,
        );
        assert_eq!(
            status.next_deletion_at,
            case.next.map(at),
            "case {}",
            case.name
        );
        assert_eq!(
            status.resources.get("Website").copied(),
            case.website,
            "case {}",
            case.name
        );
    }
}

/// The proof is built from durable facts: a deletion is recorded before its DELETE and
/// counted once it is known gone, in the write that takes it off the record. Whatever
/// crashes between the writes, and however often a write is recomputed on a fresher stored
/// status (409), each uid is counted once.
#[test]
fn the_proof_counts_each_recorded_deletion_once_whatever_the_crashes() {
    let policy = policy();
    let acct = account("acme").terminated_at(T);
    let now = "2026-12-01T00:00:01Z";
    let due = plan_one(&acct, &everything(), &policy, at(now));
    let www = resource_ref(ResourceKind::Website, "www");
    let db = resource_ref(ResourceKind::Database, "shop-db");
    // Sorted as the record keeps them.
    let items = [deleting(&db), deleting(&www)];
    let none = BTreeSet::new();
    let ledger = |starting, gone, called_off| DeletionLedger {
        starting,
        gone,
        called_off,
        ..DeletionLedger::default()
    };
    // Recorded before any DELETE; nothing counted yet.
    let recorded = stored(&account_status(&StatusInput {
        deletions: ledger(&items, &none, &none),
        ..input(&due, None, now)
    }));
    let proof = recorded.erasure.clone().expect("a proof");
    assert_eq!(proof.deleting, items.to_vec());
    assert!(proof.deleted.is_empty());
    assert_eq!(proof.started_at, None);

    // The operator is killed after both DELETEs, before its second write. The next pass
    // (a new process) finds both uids gone from the cache: counted once each.
    let gone: BTreeSet<String> = items.iter().map(|d| d.uid.clone()).collect();
    let bound: Vec<BoundResource> = everything()
        .into_iter()
        .filter(|b| b.reference != www && b.reference != db)
        .collect();
    let later = plan_one(&acct, &bound, &policy, at("2026-12-01T00:00:05Z"));
    let settled = stored(&account_status(&StatusInput {
        deletions: ledger(&[], &gone, &none),
        ..input(&later, Some(&recorded), "2026-12-01T00:00:05Z")
    }));
    let proof = settled.erasure.clone().expect("a proof");
    assert!(proof.deleting.is_empty());
    let counted: Vec<(&str, u32)> = proof
        .deleted
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(counted, [("Database", 1), ("Website", 1)]);
    assert_eq!(proof.started_at, Some(at("2026-12-01T00:00:05Z")));

    // The same write recomputed on the status it produced (another writer got there
    // first; a retry after 409): nothing counted twice.
    let again = account_status(&StatusInput {
        deletions: ledger(&[], &gone, &none),
        ..input(&later, Some(&settled), "2026-12-01T00:00:06Z")
    });
    assert_eq!(again.erasure, settled.erasure);

    // A uid not on the record (a deletion the proof never recorded, e.g. on a live
    // account, or someone else's) is never counted.
    let stranger: BTreeSet<String> = ["uid-someone-else".to_owned()].into();
    let unrelated = account_status(&StatusInput {
        deletions: ledger(&[], &stranger, &none),
        ..input(&later, Some(&settled), "2026-12-01T00:00:07Z")
    });
    assert_eq!(unrelated.erasure, settled.erasure);

    // A deletion called off (the account reactivated before it was sent) leaves the
    // record uncounted.
    let off: BTreeSet<String> = [items[1].uid.clone()].into();
    let called_off = account_status(&StatusInput {
        deletions: ledger(&[], &none, &off),
        ..input(&due, Some(&recorded), now)
    });
    let proof = called_off.erasure.expect("a proof");
    assert_eq!(proof.deleting, vec![items[0].clone()]);
    assert!(proof.deleted.is_empty());
}

#[test]
fn the_proof_is_not_complete_while_a_deletion_is_under_way() {
    let policy = policy();
    let acct = account("acme").terminated_at(T);
    let now = "2034-01-01T00:00:01Z";
    // Everything bound is gone (the plan is empty), but one deletion is still on the
    // record: its uid is not known gone yet.
    let empty = plan_one(&acct, &[], &policy, at(now));
    assert_eq!(empty.phase, AccountPhase::Erased);
    let item = deleting(&resource_ref(ResourceKind::Website, "www"));
    let none = BTreeSet::new();
    let open = stored(&account_status(&StatusInput {
        deletions: DeletionLedger {
            starting: std::slice::from_ref(&item),
            gone: &none,
            called_off: &none,
            ..DeletionLedger::default()
        },
        ..input(&empty, None, now)
    }));
    let proof = open.erasure.clone().expect("a proof");
    assert_eq!(
        proof.completed_at, None,
        "not complete while one is under way"
    );
    let gone: BTreeSet<String> = [item.uid.clone()].into();
    let done = account_status(&StatusInput {
        deletions: DeletionLedger {
            starting: &[],
            gone: &gone,
            called_off: &none,
            ..DeletionLedger::default()
        },
        ..input(&empty, Some(&open), now)
    });
    let proof = done.erasure.expect("a proof");
    assert_eq!(proof.completed_at, Some(at(now)));
    assert_eq!(proof.deleted.get("Website"), Some(&1));
}

#[test]
fn live_accounts_get_no_proof() {
    // Withdrawn marketing consent on an active account: the record goes, but the proof
    // (of a terminated account's erasure) is neither created nor changed.
    let policy = policy();
    let acct = account("acme").consent("marketing", false);
    let bound = vec![
        bound(&website("www", "acme")),
        bound(&consent_record("newsletter", "acme", "marketing")),
    ];
    let plan = plan_one(&acct, &bound, &policy, at("2026-11-10T00:00:00Z"));
    assert_eq!(plan.phase, AccountPhase::Active);
    let deleted = [resource_ref(ResourceKind::DataRecord, "newsletter")];
    let status = pass(
        StatusInput {
            ..input(&plan, None, "2026-11-10T00:00:00Z")
        },
        &deleted,
    );
    assert_eq!(status.erasure, None);
    assert_eq!(status.next_deletion_at, None);
    assert_eq!(status.terminated_at, None);
    let expected: BTreeMap<String, ResourceCounts> =
        [("Website".to_owned(), counts(1, 0, 0, 0))].into();
    assert_eq!(
        status.resources, expected,
        "the deleted record is gone, kinds at zero left out"
    );
    assert_eq!(
        cond(&status, READY),
        (ConditionStatus::True, "Active".to_owned())
    );
    assert_eq!(condition(&status, READY).message, "nothing scheduled");
}

#[test]
fn retained_items_are_sorted_by_kind_namespace_and_name() {
    let policy = policy();
    let acct = account("acme").terminated_at(T);
    let bound = vec![
        bound(&bookkeeping_record("z-invoices", "acme", "2025-12-31")),
        bound(&bookkeeping_record("a-invoices", "acme", "2026-12-31")),
        bound(&backup("z-db-1", "acme", "z-db", "2026-10-30T02:00:00Z")),
        bound(&backup("a-db-1", "acme", "a-db", "2026-10-30T02:00:00Z")),
        bound(&website("www", "acme")),
    ];
    let plan = plan_one(&acct, &bound, &policy, at("2026-11-10T00:00:00Z"));
    let status = account_status(&input(&plan, None, "2026-11-10T00:00:00Z"));
    let retained: Vec<(String, String, Option<DateTime<Utc>>, LegalBasis)> = status
        .erasure
        .unwrap_or_default()
        .retained
        .into_iter()
        .map(|r| (r.kind, r.name, r.delete_at, r.legal_basis))
        .collect();
    let row = |kind: &str, name: &str, delete_at: &str, basis| {
        (kind.to_owned(), name.to_owned(), Some(at(delete_at)), basis)
    };
    assert_eq!(
        retained,
        [
            row(
                "Backup",
                "a-db-1",
                "2027-01-30T00:00:00Z",
                LegalBasis::LegitimateInterest
            ),
            row(
                "Backup",
                "z-db-1",
                "2027-01-30T00:00:00Z",
                LegalBasis::LegitimateInterest
            ),
            row(
                "DataRecord",
                "a-invoices",
                "2034-01-01T00:00:00Z",
                LegalBasis::LegalObligation
            ),
            row(
                "DataRecord",
                "z-invoices",
                "2033-01-01T00:00:00Z",
                LegalBasis::LegalObligation
            ),
        ]
    );
}

#[test]
fn retained_items_stay_in_the_proof_through_a_hold_without_end() {
    let policy = policy();
    let hold = account("acme").terminated_at(T).hold(None::<&str>);
    struct Step {
        name: &'static str,
        account: Account,
        now: &'static str,
        phase: AccountPhase,
        /// `(name, deleteAt)` of the retained items, in order.
        retained: Vec<(&'static str, Option<&'static str>)>,
        /// `(bound, scheduled, deleted, retained)` of Backup and DataRecord.
        backup: ResourceCounts,
        data_record: ResourceCounts,
    }
    let scheduled = vec![
        ("shop-db-1", Some("2027-01-30T00:00:00Z")),
        ("invoices-2026", Some("2034-01-01T00:00:00Z")),
    ];
    let steps = [
        Step {
            name: "grace period",
            account: account("acme").terminated_at(T),
            now: "2026-11-10T00:00:00Z",
            phase: AccountPhase::GracePeriod,
            retained: scheduled.clone(),
            backup: counts(1, 1, 0, 1),
            data_record: counts(2, 2, 0, 1),
        },
        Step {
            name: "hold without end: still retained, no deleteAt",
            account: hold.clone(),
            now: "2026-11-20T00:00:00Z",
            phase: AccountPhase::OnHold,
            retained: vec![("shop-db-1", None), ("invoices-2026", None)],
            backup: counts(1, 0, 0, 1),
            data_record: counts(2, 0, 0, 1),
        },
        Step {
            name: "hold stands a year later: unchanged",
            account: hold.clone(),
            now: "2027-11-20T00:00:00Z",
            phase: AccountPhase::OnHold,
            retained: vec![("shop-db-1", None), ("invoices-2026", None)],
            backup: counts(1, 0, 0, 1),
            data_record: counts(2, 0, 0, 1),
        },
        Step {
            name: "hold lifted: schedules are back",
            account: account("acme").terminated_at(T),
            now: "2027-11-21T00:00:00Z",
            phase: AccountPhase::Erasing,
            retained: scheduled.clone(),
            backup: counts(1, 1, 0, 1),
            data_record: counts(2, 2, 0, 1),
        },
    ];
    let mut previous: Option<AccountStatus> = None;
    for step in steps {
        let plan = plan_one(&step.account, &everything(), &policy, at(step.now));
        assert_eq!(plan.phase, step.phase, "step {}: phase", step.name);
        let status = account_status(&input(&plan, previous.as_ref(), step.now));
        let retained: Vec<(String, Option<DateTime<Utc>>)> = status
            .erasure
            .clone()
            .unwrap_or_default()
            .retained
            .into_iter()
            .map(|r| (r.name, r.delete_at))
            .collect();
        let expected: Vec<(String, Option<DateTime<Utc>>)> = step
            .retained
            .iter()
            .map(|&(name, delete_at)| (name.to_owned(), delete_at.map(at)))
            .collect();
        assert_eq!(retained, expected, "step {}: retained", step.name);
        assert_eq!(
            status.resources.get("Backup"),
            Some(&step.backup),
            "step {}",
            step.name
        );
        assert_eq!(
            status.resources.get("DataRecord"),
            Some(&step.data_record),
            "step {}",
            step.name
        );
        if let Some(previous) = &previous
            && step.phase == AccountPhase::OnHold
            && previous.phase == Some(AccountPhase::OnHold)
        {
            assert_eq!(&status, previous, "step {}: nothing to write", step.name);
        }
        previous = Some(stored(&status));
    }

    // A hold that stands before anything was recorded lists nothing as retained: the plan
    // alone no longer says which objects are kept under a remaining basis.
    let plan = plan_one(&hold, &everything(), &policy, at("2026-11-20T00:00:00Z"));
    let status = account_status(&input(&plan, None, "2026-11-20T00:00:00Z"));
    assert_eq!(status.erasure, None);
}

#[test]
fn set_condition_moves_the_transition_time_only_on_a_status_change() {
    struct Case {
        name: &'static str,
        status: ConditionStatus,
        reason: &'static str,
        generation: Option<i64>,
        transition: &'static str,
    }
    let t0 = "2026-01-01T00:00:00Z";
    let t1 = "2026-02-01T00:00:00Z";
    let cases = [
        Case {
            name: "same status and reason",
            status: ConditionStatus::True,
            reason: "GracePeriod",
            generation: Some(1),
            transition: t0,
        },
        Case {
            name: "same status, new reason and generation",
            status: ConditionStatus::True,
            reason: "Erasing",
            generation: Some(2),
            transition: t0,
        },
        Case {
            name: "status changes",
            status: ConditionStatus::False,
            reason: "DeletionFailed",
            generation: Some(1),
            transition: t1,
        },
        Case {
            name: "to unknown",
            status: ConditionStatus::Unknown,
            reason: "Unknown",
            generation: None,
            transition: t1,
        },
    ];
    for case in cases {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            READY,
            ConditionStatus::True,
            "GracePeriod",
            "old",
            Some(1),
            at(t0),
        );
        set_condition(
            &mut conditions,
            READY,
            case.status,
            case.reason,
            "new",
            case.generation,
            at(t1),
        );
        assert_eq!(
            conditions,
            [Condition {
                type_: READY.to_owned(),
                status: case.status,
                reason: case.reason.to_owned(),
                message: "new".to_owned(),
                last_transition_time: at(case.transition),
                observed_generation: case.generation,
            }],
            "case {}",
            case.name
        );
    }

    // New types are added in type order, and foreign types are left alone.
    let mut conditions = Vec::new();
    for type_ in ["Zeta", READY, "Alpha", ON_HOLD] {
        set_condition(
            &mut conditions,
            type_,
            ConditionStatus::True,
            "Reason",
            "",
            None,
            at(t0),
        );
    }
    let types: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["Alpha", ON_HOLD, READY, "Zeta"]);
}

#[test]
fn conditions_are_sorted_and_complete_and_free_of_the_customer_ref() {
    let policy = policy();
    let acct = account("acme").terminated_at(T);
    let plan = plan_one(&acct, &everything(), &policy, at("2026-12-02T00:00:00Z"));
    let failures = [failure(ResourceKind::Website, "www", "Forbidden")];
    let unknown = ["pipedrive".to_owned()];
    let status = account_status(&StatusInput {
        failures: &failures,
        unknown_processors: &unknown,
        ..input(&plan, None, "2026-12-02T00:00:00Z")
    });
    let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            DELETION_FAILED,
            ERASURE_REQUESTS_FAILED,
            ERASURE_SUSPENDED,
            MALFORMED_RESOURCES,
            MANUAL_ACTION_REQUIRED,
            ON_HOLD,
            POLICY_MISSING,
            READY,
            UNBOUND_RESOURCES
        ]
    );
    for c in &status.conditions {
        assert_eq!(c.observed_generation, Some(3), "{}", c.type_);
        assert!(
            c.reason.chars().all(|ch| ch.is_ascii_alphanumeric()),
            "{}: reason {:?} is CamelCase",
            c.type_,
            c.reason
        );
    }
    let missing = policy_missing_status(Some(&status), "default", Some(3), at(T));
    for s in [&status, &missing] {
        let json = serde_json::to_string(s).expect("serialize");
        assert!(
            !json.contains(&acct.spec.customer_ref),
            "customerRef leaked into {json}"
        );
        assert!(!json.contains("Police"), "hold reason leaked into {json}");
    }
}

#[test]
fn a_suspended_policy_shows_on_the_account_and_changes_nothing_else() {
    let policy = policy();
    let acct = account("acme").terminated_at(T);
    let now = "2026-12-02T00:00:00Z";
    let plan = plan_one(&acct, &everything(), &policy, at(now));
    let running = account_status(&input(&plan, None, now));
    let suspended = account_status(&StatusInput {
        suspended_by: Some("default"),
        ..input(&plan, Some(&running), now)
    });
    assert_eq!(
        cond(&running, ERASURE_SUSPENDED),
        (ConditionStatus::False, "NotSuspended".to_owned())
    );
    assert_eq!(
        cond(&suspended, ERASURE_SUSPENDED),
        (ConditionStatus::True, "PolicySuspended".to_owned())
    );
    let message = &condition(&suspended, ERASURE_SUSPENDED).message;
    assert!(
        message.contains("RetentionPolicy default is suspended"),
        "{message}"
    );
    // A suspend is a decision, not a fault: Ready, the phase, the schedules shown and the
    // counts stay as they were.
    assert_eq!(condition(&suspended, READY), condition(&running, READY));
    assert_eq!(suspended.phase, running.phase);
    assert_eq!(suspended.next_deletion_at, running.next_deletion_at);
    assert_eq!(suspended.resources, running.resources);
    // Steady while it stands, whatever the time.
    let stored_suspended = stored(&suspended);
    let again = account_status(&StatusInput {
        suspended_by: Some("default"),
        ..input(&plan, Some(&stored_suspended), "2026-12-05T00:00:00Z")
    });
    assert_eq!(again, stored_suspended);
    // Lifted: False again, with the time of the change.
    let lifted = account_status(&input(
        &plan,
        Some(&stored_suspended),
        "2026-12-06T00:00:00Z",
    ));
    let condition = condition(&lifted, ERASURE_SUSPENDED);
    assert_eq!(condition.status, ConditionStatus::False);
    assert_eq!(condition.last_transition_time, at("2026-12-06T00:00:00Z"));
}

#[test]
fn a_malformed_object_keeps_an_otherwise_erased_account_erasing_and_not_ready() {
    let policy = policy();
    let acct = account("acme").terminated_at(T);
    // Nothing readable is bound any more: the plan says Erased.
    let plan = plan_one(&acct, &[], &policy, at("2027-06-01T00:00:00Z"));
    assert_eq!(plan.phase, AccountPhase::Erased);
    let malformed = [MalformedResource {
        resource: resource_ref(ResourceKind::Database, "shop-db"),
        field: "spec.engine".to_owned(),
    }];
    let status = account_status(&StatusInput {
        malformed: &malformed,
        ..input(&plan, None, "2027-06-01T00:00:00Z")
    });
    assert_eq!(status.phase, Some(AccountPhase::Erasing));
    assert_eq!(status.erasure.as_ref().and_then(|e| e.completed_at), None);
    let flagged = condition(&status, MALFORMED_RESOURCES);
    assert_eq!(flagged.status, ConditionStatus::True);
    assert_eq!(flagged.reason, "MalformedObject");
    assert!(
        flagged
            .message
            .contains("Database cust-acme/shop-db (at spec.engine)"),
        "{}",
        flagged.message
    );
    let ready = condition(&status, READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "MalformedResources")
    );

    // Once it is gone, the account is Erased and the erasure complete.
    let healed = account_status(&input(&plan, Some(&status), "2027-06-02T00:00:00Z"));
    assert_eq!(healed.phase, Some(AccountPhase::Erased));
    assert_eq!(
        condition(&healed, MALFORMED_RESOURCES).status,
        ConditionStatus::False
    );
    assert_eq!(condition(&healed, READY).status, ConditionStatus::True);
}

/// Ready is decided once per pass from the other conditions, so a Ready that stays False (here
/// for a malformed object, or a failed erasure request) keeps its lastTransitionTime and the
/// status fed back unchanged is written no more.
#[test]
fn a_ready_that_stays_false_keeps_its_transition_time_and_the_status_is_steady() {
    let policy = policy();
    let acct = account("acme").terminated_at(T);
    let plan = plan_one(&acct, &[], &policy, at("2027-06-01T00:00:00Z"));
    let malformed = [MalformedResource {
        resource: resource_ref(ResourceKind::Database, "shop-db"),
        field: "spec.engine".to_owned(),
    }];
    let failed = [ProcessorNotification {
        name: "pipedrive".into(),
        state: NotificationState::Failed,
        erasure_at: Some(at("2026-12-01T00:00:00Z")),
        idempotency_key: Some("key".to_owned()),
        requested_at: Some(at("2026-12-01T00:00:00Z")),
        resources: vec![],
        attempts: 1,
        last_attempt_at: Some(at("2026-12-01T00:00:00Z")),
        next_attempt_at: None,
        reason: Some("Rejected".into()),
        acknowledged_at: None,
    }];
    for (malformed, processors) in [(&malformed[..], None), (&[][..], Some(&failed[..]))] {
        let first = account_status(&StatusInput {
            malformed,
            processors,
            ..input(&plan, None, "2027-06-01T00:00:00Z")
        });
        assert_eq!(condition(&first, READY).status, ConditionStatus::False);
        let again = account_status(&StatusInput {
            malformed,
            processors,
            ..input(&plan, Some(&first), "2027-06-02T00:00:00Z")
        });
        assert_eq!(again, first, "a steady state changes nothing");
    }
}

/// (kind, name, deleteAt) of what `announcements` says to announce.
fn announced(list: &[&ResourcePlan]) -> Vec<(ResourceKind, String, Option<DateTime<Utc>>)> {
    list.iter()
        .map(|r| {
            (
                r.resource.kind,
                r.resource.name.clone(),
                r.schedule.delete_at,
            )
        })
        .collect()
}

#[test]
fn deletions_are_announced_once_the_notice_ahead_and_never_again() {
    let notice = TimeDelta::hours(24);
    // This policy has no per-kind override: website and mailbox are due together.
    let policy = policy_with_one_grace_period();
    let acct = account("acme").terminated_at(T);
    let objects = [
        bound(&website("www", "acme")),
        bound(&mailbox("info", "acme")),
        bound(&backup("b1", "acme", "www", "2026-10-31T02:00:00Z")),
    ];
    let due = at("2026-12-01T00:00:00Z");

    // A day and a second before: nothing yet; wake up when the notice period starts.
    let early = plan_one(&acct, &objects, &policy, at("2026-11-29T23:59:59Z"));
    let early_refs: Vec<&ResourcePlan> = early.resources.iter().collect();
    let quiet = announcements(&early_refs, None, at("2026-11-29T23:59:59Z"), notice);
    assert!(quiet.now.is_empty());
    assert_eq!(quiet.announced_until, None);
    assert_eq!(quiet.next_at, Some(at("2026-11-30T00:00:00Z")));

    // At the start of the notice period: both hosted objects, not the backup.
    let plan_now = plan_one(&acct, &objects, &policy, at("2026-11-30T00:00:00Z"));
    let refs: Vec<&ResourcePlan> = plan_now.resources.iter().collect();
    let first = announcements(&refs, None, at("2026-11-30T00:00:00Z"), notice);
    assert_eq!(
        announced(&first.now),
        [
            (ResourceKind::Website, "www".to_owned(), Some(due)),
            (ResourceKind::Mailbox, "info".to_owned(), Some(due)),
        ]
    );
    assert_eq!(first.announced_until, Some(due));
    assert_eq!(first.next_at, None);

    // Later, with the record stored: nothing again (also after a restart).
    let again = announcements(
        &refs,
        first.announced_until,
        at("2026-11-30T12:00:00Z"),
        notice,
    );
    assert!(again.now.is_empty());
    assert_eq!(again.announced_until, Some(due));

    // A schedule that already passed is not announced (it is being deleted).
    let late = announcements(&refs, None, due, notice);
    assert!(late.now.is_empty());

    // Nothing scheduled (reactivated): the record is cleared.
    let active = account("acme");
    let live = plan_one(
        &active,
        &[bound(&website("www", "acme"))],
        &policy,
        at("2026-11-30T00:00:00Z"),
    );
    let live_refs: Vec<&ResourcePlan> = live.resources.iter().collect();
    let cleared = announcements(&live_refs, Some(due), at("2026-11-30T00:00:00Z"), notice);
    assert_eq!(
        cleared,
        Announcements {
            now: vec![],
            announced_until: None,
            next_at: None
        }
    );

    // No notice: never anything to announce or wake for.
    let off = announcements(&refs, None, at("2026-11-30T00:00:00Z"), TimeDelta::zero());
    assert!(off.now.is_empty() && off.next_at.is_none());
}
