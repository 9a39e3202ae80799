//! The retention rules of docs/design.md §3, one table per rule, through the engine's public API.
//!
//! Every case names itself in its assertion messages, so a failure reads as "case X: what,
//! expected, actual". Times are exact: a rule that lands one second off fails.

mod support;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use retention_operator::api::{Account, AccountPhase, AccountState, LegalBasis, ResourceKind};
use retention_operator::retention::{
    AccountPlan, BoundResource, Disposition, NotificationDelivery, NotificationPlan, PlanError,
    ResourceRef, Rule, ScheduleChange, TerminationSource, plan, plan_account, schedule_change,
};
use support::*;

/// The termination time most cases use.
const T: &str = "2026-11-01T00:00:00Z";

fn opt(instant: Option<&str>) -> Option<DateTime<Utc>> {
    instant.map(at)
}

/// `(kind, name) -> deleteAt` of every resource of a plan, for whole-plan comparisons.
fn schedules(plan: &AccountPlan) -> BTreeMap<(ResourceKind, String), Option<DateTime<Utc>>> {
    plan.resources
        .iter()
        .map(|r| {
            (
                (r.resource.kind, r.resource.name.clone()),
                r.schedule.delete_at,
            )
        })
        .collect()
}

fn expected_schedules(
    rows: &[(ResourceKind, &str, Option<&str>)],
) -> BTreeMap<(ResourceKind, String), Option<DateTime<Utc>>> {
    rows.iter()
        .map(|&(kind, name, at)| ((kind, name.to_owned()), opt(at)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Grace period and the termination time T

#[test]
fn hosted_resources_are_erased_a_grace_period_after_termination() {
    struct Case {
        name: &'static str,
        account: Account,
        resource: BoundResource,
        now: &'static str,
        terminated_at: &'static str,
        source: TerminationSource,
        delete_at: &'static str,
        reason: &'static str,
    }
    let cases = vec![
        Case {
            name: "website, T from spec.terminatedAt",
            account: account("acme").terminated_at(T),
            resource: bound(&website("www", "acme")),
            now: "2026-11-10T00:00:00Z",
            terminated_at: T,
            source: TerminationSource::Spec,
            delete_at: "2026-12-01T00:00:00Z",
            reason: "grace period 30d after termination",
        },
        Case {
            name: "database uses the default grace period",
            account: account("acme").terminated_at(T),
            resource: bound(&database("shop-db", "acme")),
            now: "2026-11-10T00:00:00Z",
            terminated_at: T,
            source: TerminationSource::Spec,
            delete_at: "2026-12-01T00:00:00Z",
            reason: "grace period 30d after termination",
        },
        Case {
            name: "domain uses the default grace period",
            account: account("acme").terminated_at(T),
            resource: bound(&domain("acme-se", "acme")),
            now: "2026-11-10T00:00:00Z",
            terminated_at: T,
            source: TerminationSource::Spec,
            delete_at: "2026-12-01T00:00:00Z",
            reason: "grace period 30d after termination",
        },
        Case {
            name: "CRM data record uses the default grace period",
            account: account("acme").terminated_at(T),
            resource: bound(&data_record("crm", "acme")),
            now: "2026-11-10T00:00:00Z",
            terminated_at: T,
            source: TerminationSource::Spec,
            delete_at: "2026-12-01T00:00:00Z",
            reason: "grace period 30d after termination",
        },
        Case {
            name: "mailbox uses its per-kind override of 14d",
            account: account("acme").terminated_at(T),
            resource: bound(&mailbox("info", "acme")),
            now: "2026-11-10T00:00:00Z",
            terminated_at: T,
            source: TerminationSource::Spec,
            delete_at: "2026-11-15T00:00:00Z",
            reason: "grace period 14d for Mailbox after termination",
        },
        Case {
            name: "time of day of T is kept",
            account: account("acme").terminated_at("2026-11-01T13:45:07Z"),
            resource: bound(&website("www", "acme")),
            now: "2026-11-10T00:00:00Z",
            terminated_at: "2026-11-01T13:45:07Z",
            source: TerminationSource::Spec,
            delete_at: "2026-12-01T13:45:07Z",
            reason: "grace period 30d after termination",
        },
        Case {
            name: "spec.terminatedAt wins over status.terminatedAt",
            account: account("acme")
                .terminated_at(T)
                .status_terminated_at("2026-10-10T06:00:00Z"),
            resource: bound(&website("www", "acme")),
            now: "2026-11-10T00:00:00Z",
            terminated_at: T,
            source: TerminationSource::Spec,
            delete_at: "2026-12-01T00:00:00Z",
            reason: "grace period 30d after termination",
        },
        Case {
            name: "deleting an Active account terminates it at its deletionTimestamp",
            account: account("acme").deleted_at("2026-11-20T12:34:56Z"),
            resource: bound(&website("www", "acme")),
            now: "2026-11-21T00:00:00Z",
            terminated_at: "2026-11-20T12:34:56Z",
            source: TerminationSource::Deletion,
            delete_at: "2026-12-20T12:34:56Z",
            reason: "grace period 30d after termination",
        },
        Case {
            name: "deletionTimestamp of a Terminated account without a recorded time",
            account: account("acme")
                .terminated()
                .deleted_at("2026-11-20T12:34:56Z"),
            resource: bound(&mailbox("info", "acme")),
            now: "2026-11-21T00:00:00Z",
            terminated_at: "2026-11-20T12:34:56Z",
            source: TerminationSource::Deletion,
            delete_at: "2026-12-04T12:34:56Z",
            reason: "grace period 14d for Mailbox after termination",
        },
        Case {
            name: "status.terminatedAt never dates a termination, even of a deleted Account",
            account: account("acme")
                .terminated()
                .status_terminated_at("2026-10-10T06:00:00Z")
                .deleted_at("2026-11-20T12:34:56Z"),
            resource: bound(&website("www", "acme")),
            now: "2026-11-21T00:00:00Z",
            terminated_at: "2026-11-20T12:34:56Z",
            source: TerminationSource::Deletion,
            delete_at: "2026-12-20T12:34:56Z",
            reason: "grace period 30d after termination",
        },
        Case {
            name: "a terminatedAt left over on an Active account does not date its deletion",
            account: account("acme")
                .spec_terminated_at("2026-01-01T00:00:00Z")
                .status_terminated_at("2026-02-01T00:00:00Z")
                .deleted_at("2026-11-20T12:34:56Z"),
            resource: bound(&website("www", "acme")),
            now: "2026-11-21T00:00:00Z",
            terminated_at: "2026-11-20T12:34:56Z",
            source: TerminationSource::Deletion,
            delete_at: "2026-12-20T12:34:56Z",
            reason: "grace period 30d after termination",
        },
        Case {
            name: "spec.terminatedAt wins over the deletionTimestamp",
            account: account("acme")
                .terminated_at(T)
                .deleted_at("2026-11-20T12:34:56Z"),
            resource: bound(&website("www", "acme")),
            now: "2026-11-21T00:00:00Z",
            terminated_at: T,
            source: TerminationSource::Spec,
            delete_at: "2026-12-01T00:00:00Z",
            reason: "grace period 30d after termination",
        },
    ];
    for case in cases {
        let name = case.name;
        let account = case.account;
        let plan = plan_one(&account, &[case.resource], &policy(), at(case.now));
        assert_eq!(plan.state, AccountState::Terminated, "{name}: state");
        assert_eq!(
            plan.terminated_at,
            Some(at(case.terminated_at)),
            "{name}: terminatedAt"
        );
        let termination = plan
            .termination
            .expect("a terminated account has a termination");
        assert_eq!(termination.at, at(case.terminated_at), "{name}: T");
        assert_eq!(termination.source, case.source, "{name}: source of T");
        let r = only(&plan);
        assert_eq!(
            r.schedule.delete_at,
            Some(at(case.delete_at)),
            "{name}: deleteAt"
        );
        assert_eq!(r.schedule.reason, case.reason, "{name}: reason");
        assert_eq!(
            r.schedule.disposition,
            Disposition::Erase,
            "{name}: disposition"
        );
        assert_eq!(
            r.schedule.legal_basis,
            LegalBasis::Contract,
            "{name}: basis"
        );
        assert_eq!(
            plan.next_deletion_at,
            Some(at(case.delete_at)),
            "{name}: nextDeletionAt"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping Act

/// An Account stored as Terminated without `terminatedAt` (before the schema required it) has
/// no termination time: a time the operator once recorded in `status.terminatedAt` may belong
/// to an earlier termination that was reverted unseen, so it must never date this one, and
/// "now" would restart the grace period on every plan. Nothing hosted is scheduled.
#[test]
fn a_termination_without_terminated_at_schedules_nothing_hosted() {
    let now = at("2026-11-23T08:00:00Z");
    for (name, account) in [
        ("nothing recorded", account("acme").terminated()),
        (
            "an old status.terminatedAt",
            account("acme")
                .terminated()
                .status_terminated_at("2026-01-01T00:00:00Z"),
        ),
    ] {
        let plan = plan_one(&account, &[bound(&website("www", "acme"))], &policy(), now);
        assert_eq!(plan.state, AccountState::Terminated, "{name}: state");
        assert_eq!(plan.terminated_at, None, "{name}: terminatedAt");
        let r = only(&plan);
        assert_eq!(r.schedule.delete_at, None, "{name}: deleteAt");
        assert_eq!(r.schedule.disposition, Disposition::Keep, "{name}");
        assert!(
            r.schedule.reason.contains("without terminatedAt"),
            "{name}: {}",
            r.schedule.reason
        );
    }
}

#[test]
fn bookkeeping_records_are_kept_until_the_first_of_january_after_the_statutory_years() {
    struct Case {
        name: &'static str,
        account: Account,
        fiscal_year_end: &'static str,
        years: u32,
        delete_at: Option<&'static str>,
        disposition: Disposition,
    }
    let cases = vec![
        Case {
            name: "fiscal year 2026 (calendar), 7 years: kept through 2033",
            account: account("acme").terminated_at(T),
            fiscal_year_end: "2026-12-31",
            years: 7,
            delete_at: Some("2034-01-01T00:00:00Z"),
            disposition: Disposition::Retain,
        },
        Case {
            name: "broken fiscal year ending 2027-06-30, 7 years: kept through 2034",
            account: account("acme").terminated_at(T),
            fiscal_year_end: "2027-06-30",
            years: 7,
            delete_at: Some("2035-01-01T00:00:00Z"),
            disposition: Disposition::Retain,
        },
        Case {
            name: "fiscal year ending 2026-01-31 counts from calendar year 2026",
            account: account("acme").terminated_at(T),
            fiscal_year_end: "2026-01-31",
            years: 7,
            delete_at: Some("2034-01-01T00:00:00Z"),
            disposition: Disposition::Retain,
        },
        Case {
            name: "the policy's years are used: 10 years",
            account: account("acme").terminated_at(T),
            fiscal_year_end: "2026-12-31",
            years: 10,
            delete_at: Some("2037-01-01T00:00:00Z"),
            disposition: Disposition::Retain,
        },
        Case {
            name: "the grace period does not shorten it, whatever T's source",
            account: account("acme").deleted_at("2026-11-20T12:34:56Z"),
            fiscal_year_end: "2026-12-31",
            years: 7,
            delete_at: Some("2034-01-01T00:00:00Z"),
            disposition: Disposition::Retain,
        },
        Case {
            name: "Active account: not scheduled",
            account: account("acme"),
            fiscal_year_end: "2026-12-31",
            years: 7,
            delete_at: None,
            disposition: Disposition::Keep,
        },
        Case {
            name: "Active account, statutory period long over: still not scheduled",
            account: account("acme"),
            fiscal_year_end: "2010-12-31",
            years: 7,
            delete_at: None,
            disposition: Disposition::Keep,
        },
        Case {
            name: "Suspended account: not scheduled",
            account: account("acme").suspended(),
            fiscal_year_end: "2026-12-31",
            years: 7,
            delete_at: None,
            disposition: Disposition::Keep,
        },
    ];
    for case in cases {
        let name = case.name;
        let mut policy = policy();
        policy.bookkeeping.years = case.years;
        // Declared as Contract on purpose: the Bookkeeping Act is what keeps it.
        let record = bookkeeping_record("invoices-2026", "acme", case.fiscal_year_end)
            .legal_basis(LegalBasis::Contract);
        let plan = plan_one(
            &case.account,
            &[bound(&record)],
            &policy,
            at("2026-11-10T00:00:00Z"),
        );
        let r = only(&plan);
        assert_eq!(
            r.schedule.delete_at,
            opt(case.delete_at),
            "{name}: deleteAt"
        );
        assert_eq!(
            r.schedule.legal_basis,
            LegalBasis::LegalObligation,
            "{name}: legal basis"
        );
        assert_eq!(
            r.schedule.disposition, case.disposition,
            "{name}: disposition"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Backups

struct BackupCase {
    name: &'static str,
    /// Every backup of the account: (name, sourceRef name, takenAt).
    backups: Vec<(&'static str, &'static str, &'static str)>,
    /// (backup name, expected deleteAt) for the backups the case is about.
    expected: Vec<(&'static str, &'static str)>,
}

fn check_backup_cases(
    table: &str,
    account: &retention_operator::api::Account,
    policy: &retention_operator::api::RetentionPolicySpec,
    cases: Vec<BackupCase>,
) {
    for case in cases {
        let bound: Vec<BoundResource> = case
            .backups
            .iter()
            .map(|&(name, source, taken)| bound(&backup(name, "acme", source, taken)))
            .collect();
        let plan = plan_one(account, &bound, policy, at("2026-06-01T00:00:00Z"));
        for (backup, expected) in case.expected {
            let r = resource(&plan, ResourceKind::Backup, backup);
            assert_eq!(
                r.schedule.delete_at,
                Some(at(expected)),
                "{table} / {}: deleteAt of backup {backup} (reason {:?})",
                case.name,
                r.schedule.reason
            );
        }
    }
}

#[test]
fn every_backup_is_kept_keep_daily_days() {
    let account = account("acme");
    let cases = vec![
        (
            "7 days, the DESIGN example",
            7,
            "2026-10-01T02:00:00Z",
            "2026-10-08T02:00:00Z",
        ),
        (
            "14 days across a month end",
            14,
            "2026-10-25T23:30:00Z",
            "2026-11-08T23:30:00Z",
        ),
        (
            "1 day across a leap day",
            1,
            "2028-02-28T02:00:00Z",
            "2028-02-29T02:00:00Z",
        ),
        (
            "0 days: expires when taken",
            0,
            "2026-10-01T02:00:00Z",
            "2026-10-01T02:00:00Z",
        ),
    ];
    for (name, keep_daily, taken, expected) in cases {
        // keepWeekly/keepMonthly 0: the weekly and monthly rules add nothing.
        let policy = policy_with_backups(backup_policy(keep_daily, 0, 0, None));
        let b = backup("shop-db-1", "acme", "shop-db", taken);
        let plan = plan_one(&account, &[bound(&b)], &policy, at(taken));
        let r = only(&plan);
        assert_eq!(r.schedule.delete_at, Some(at(expected)), "{name}: deleteAt");
        if keep_daily > 0 {
            // With 0 days every rule ties at takenAt and any of them may be named.
            assert_eq!(
                r.schedule.reason,
                format!("daily backup kept {keep_daily}d"),
                "{name}: reason"
            );
        }
        assert_eq!(
            r.schedule.disposition,
            Disposition::Expire,
            "{name}: disposition"
        );
    }
}

#[test]
fn a_series_of_daily_backups_follows_the_daily_weekly_and_monthly_rules() {
    // 2026-10-01 is a Thursday. ISO weeks: W40 = Sep 28..Oct 4, W41 = Oct 5..11, W42 = Oct 12..18.
    // Default policy: 7 daily, 4 weekly, 6 monthly.
    let expected = [
        ("01", "2026-10-08T02:00:00Z"),
        ("02", "2026-10-09T02:00:00Z"),
        ("03", "2026-10-10T02:00:00Z"),
        ("04", "2026-11-01T02:00:00Z"), // newest of W40: 4 weeks
        ("05", "2026-10-12T02:00:00Z"),
        ("06", "2026-10-13T02:00:00Z"),
        ("07", "2026-10-14T02:00:00Z"),
        ("08", "2026-10-15T02:00:00Z"),
        ("09", "2026-10-16T02:00:00Z"),
        ("10", "2026-10-17T02:00:00Z"),
        ("11", "2026-11-08T02:00:00Z"), // newest of W41: 4 weeks
        ("12", "2026-10-19T02:00:00Z"),
        ("13", "2026-10-20T02:00:00Z"),
        ("14", "2027-04-14T02:00:00Z"), // newest of W42 and of October: 6 months wins
    ];
    let backups: Vec<_> = expected
        .iter()
        .map(|(day, _)| {
            let b = backup(
                &format!("shop-db-{day}"),
                "acme",
                "shop-db",
                format!("2026-10-{day}T02:00:00Z").as_str(),
            );
            bound(&b)
        })
        .collect();
    let plan = plan_one(
        &account("acme"),
        &backups,
        &policy(),
        at("2026-10-14T12:00:00Z"),
    );
    for (day, delete_at) in expected {
        let r = resource(&plan, ResourceKind::Backup, &format!("shop-db-{day}"));
        assert_eq!(
            r.schedule.delete_at,
            Some(at(delete_at)),
            "backup of 2026-10-{day}: deleteAt (reason {:?})",
            r.schedule.reason
        );
    }
    let newest = resource(&plan, ResourceKind::Backup, "shop-db-14");
    assert_eq!(
        newest.schedule.reason,
        "newest backup of 2026-10 kept 6 months"
    );
    let weekly = resource(&plan, ResourceKind::Backup, "shop-db-04");
    assert_eq!(
        weekly.schedule.reason,
        "newest backup of ISO week 2026-W40 kept 4w"
    );
}

#[test]
fn the_newest_backup_of_an_iso_week_is_kept_keep_weekly_weeks_across_year_boundaries() {
    // The ISO weeks the cases rely on, checked with chrono rather than assumed.
    for (day, iso_year, week) in [
        ("2026-12-28T02:00:00Z", 2026, 53),
        ("2026-12-31T02:00:00Z", 2026, 53),
        ("2027-01-03T02:00:00Z", 2026, 53),
        ("2027-01-04T02:00:00Z", 2027, 1),
        ("2024-12-30T02:00:00Z", 2025, 1),
        ("2024-12-31T02:00:00Z", 2025, 1),
        ("2025-01-02T02:00:00Z", 2025, 1),
        ("2024-12-29T02:00:00Z", 2024, 52),
    ] {
        let iso = at(day).iso_week();
        assert_eq!(
            (iso.year(), iso.week()),
            (iso_year, week),
            "ISO week of {day}"
        );
    }
    let cases = vec![
        BackupCase {
            name: "single backup is the newest of its week",
            backups: vec![("a", "shop-db", "2026-10-07T02:00:00Z")],
            expected: vec![("a", "2026-11-04T02:00:00Z")],
        },
        BackupCase {
            name: "2026-W53 runs Dec 28 to Jan 3: only the Jan 3 backup is its newest",
            backups: vec![
                ("dec28", "shop-db", "2026-12-28T02:00:00Z"),
                ("dec31", "shop-db", "2026-12-31T02:00:00Z"),
                ("jan03", "shop-db", "2027-01-03T02:00:00Z"),
            ],
            expected: vec![
                ("dec28", "2027-01-04T02:00:00Z"),
                ("dec31", "2027-01-07T02:00:00Z"),
                ("jan03", "2027-01-31T02:00:00Z"),
            ],
        },
        BackupCase {
            name: "2026-W53 and 2027-W01 each have their newest",
            backups: vec![
                ("dec31", "shop-db", "2026-12-31T02:00:00Z"),
                ("jan04", "shop-db", "2027-01-04T02:00:00Z"),
            ],
            expected: vec![
                ("dec31", "2027-01-28T02:00:00Z"),
                ("jan04", "2027-02-01T02:00:00Z"),
            ],
        },
        BackupCase {
            name: "2025-W01 starts Mon 2024-12-30: the Jan 2 backup is its newest",
            backups: vec![
                ("dec29", "shop-db", "2024-12-29T02:00:00Z"),
                ("dec30", "shop-db", "2024-12-30T02:00:00Z"),
                ("dec31", "shop-db", "2024-12-31T02:00:00Z"),
                ("jan02", "shop-db", "2025-01-02T02:00:00Z"),
            ],
            expected: vec![
                ("dec29", "2025-01-26T02:00:00Z"), // newest of 2024-W52
                ("dec30", "2025-01-06T02:00:00Z"),
                ("dec31", "2025-01-07T02:00:00Z"),
                ("jan02", "2025-01-30T02:00:00Z"),
            ],
        },
        BackupCase {
            name: "same takenAt: the greater name is the newest, whatever the order",
            backups: vec![
                ("b", "shop-db", "2026-10-07T02:00:00Z"),
                ("a", "shop-db", "2026-10-07T02:00:00Z"),
            ],
            expected: vec![("a", "2026-10-14T02:00:00Z"), ("b", "2026-11-04T02:00:00Z")],
        },
    ];
    // Monthly 0 so only the daily (7d) and weekly (4w) rules count.
    let policy = policy_with_backups(backup_policy(7, 4, 0, None));
    check_backup_cases("weekly", &account("acme"), &policy, cases);
}

#[test]
fn the_newest_backup_of_a_month_is_kept_keep_monthly_calendar_months() {
    let cases = vec![
        (
            "mid-month, 6 months",
            "2026-10-15T02:00:00Z",
            6,
            "2027-04-15T02:00:00Z",
        ),
        (
            "31 August + 6 months clamps to 28 February",
            "2026-08-31T02:00:00Z",
            6,
            "2027-02-28T02:00:00Z",
        ),
        (
            "31 August + 6 months in a leap year clamps to 29 February",
            "2027-08-31T02:00:00Z",
            6,
            "2028-02-29T02:00:00Z",
        ),
        (
            "31 January + 1 month clamps to 28 February",
            "2027-01-31T02:00:00Z",
            1,
            "2027-02-28T02:00:00Z",
        ),
        (
            "31 January 2028 + 1 month is 29 February (leap year)",
            "2028-01-31T02:00:00Z",
            1,
            "2028-02-29T02:00:00Z",
        ),
        (
            "31 March + 1 month clamps to 30 April",
            "2026-03-31T23:59:59Z",
            1,
            "2026-04-30T23:59:59Z",
        ),
        (
            "29 February + 12 months clamps to 28 February",
            "2028-02-29T02:00:00Z",
            12,
            "2029-02-28T02:00:00Z",
        ),
        (
            "December + 1 month crosses the year",
            "2026-12-15T02:00:00Z",
            1,
            "2027-01-15T02:00:00Z",
        ),
    ];
    let account = account("acme");
    for (name, taken, keep_monthly, expected) in cases {
        // 1 daily, 0 weekly: the monthly rule is the latest that applies.
        let policy = policy_with_backups(backup_policy(1, 0, keep_monthly, None));
        let b = backup("shop-db-1", "acme", "shop-db", taken);
        let plan = plan_one(&account, &[bound(&b)], &policy, at(taken));
        let r = only(&plan);
        assert_eq!(
            r.schedule.delete_at,
            Some(at(expected)),
            "{name}: deleteAt (reason {:?})",
            r.schedule.reason
        );
    }

    let policy = policy_with_backups(backup_policy(1, 0, 6, None));
    check_backup_cases(
        "monthly",
        &account,
        &policy,
        vec![
            BackupCase {
                name: "only the newest of the month gets the monthly rule",
                backups: vec![
                    ("aug30", "shop-db", "2026-08-30T02:00:00Z"),
                    ("aug31", "shop-db", "2026-08-31T02:00:00Z"),
                    ("sep01", "shop-db", "2026-09-01T02:00:00Z"),
                ],
                expected: vec![
                    ("aug30", "2026-08-31T02:00:00Z"),
                    ("aug31", "2027-02-28T02:00:00Z"),
                    ("sep01", "2027-03-01T02:00:00Z"),
                ],
            },
            BackupCase {
                name: "months are calendar months, not ISO weeks: Dec 31 and Jan 1 differ",
                backups: vec![
                    ("dec31", "shop-db", "2026-12-31T02:00:00Z"),
                    ("jan01", "shop-db", "2027-01-01T02:00:00Z"),
                ],
                expected: vec![
                    ("dec31", "2027-06-30T02:00:00Z"),
                    ("jan01", "2027-07-01T02:00:00Z"),
                ],
            },
        ],
    );
}

#[test]
fn newest_of_period_only_competes_with_the_same_account_namespace_and_source() {
    // 1 daily, 4 weekly, 0 monthly: a backup that is newest of its week lives 4 weeks.
    let policy = policy_with_backups(backup_policy(1, 4, 0, None));
    let monday = "2026-10-05T02:00:00Z";
    let tuesday = "2026-10-06T02:00:00Z";
    let weekly = "2026-11-02T02:00:00Z";
    let daily = "2026-10-06T02:00:00Z";
    let cases = vec![
        (
            "same source, same namespace: Tuesday's is newer",
            backup("mon", "acme", "shop-db", monday),
            backup("tue", "acme", "shop-db", tuesday),
            daily,
        ),
        (
            "other sourceRef name",
            backup("mon", "acme", "shop-db", monday),
            backup("tue", "acme", "blog-db", tuesday),
            weekly,
        ),
        (
            "same source name, other sourceRef kind",
            backup_of("mon", "acme", ResourceKind::Database, "shop", monday),
            backup_of("tue", "acme", ResourceKind::Website, "shop", tuesday),
            weekly,
        ),
        (
            "same source, other namespace",
            backup("mon", "acme", "shop-db", monday),
            backup("tue", "acme", "shop-db", tuesday).in_namespace("acme-staging"),
            weekly,
        ),
        (
            "same source and namespace, other account",
            backup("mon", "acme", "shop-db", monday),
            backup("tue", "globex", "shop-db", tuesday),
            weekly,
        ),
    ];
    let accounts = || vec![account("acme"), account("globex")];
    for (name, mon, tue, expected) in cases {
        let resources = vec![bound(&mon), bound(&tue)];
        let mut inventory = inventory(accounts(), resources.clone());
        inventory
            .policies
            .insert("default".to_owned(), policy.clone());
        let whole = plan(&inventory, at(monday)).expect("plan");
        let acme = whole
            .accounts
            .iter()
            .find(|a| a.name == "acme")
            .expect("acme is planned");
        let r = resource(acme, ResourceKind::Backup, "mon");
        assert_eq!(
            r.schedule.delete_at,
            Some(at(expected)),
            "{name}: deleteAt of Monday's backup via plan (reason {:?})",
            r.schedule.reason
        );
        // plan_account given every object ignores those of other accounts.
        let single = plan_one(&accounts()[0], &resources, &policy, at(monday));
        let r = resource(&single, ResourceKind::Backup, "mon");
        assert_eq!(
            r.schedule.delete_at,
            Some(at(expected)),
            "{name}: deleteAt of Monday's backup via plan_account"
        );
    }
}

#[test]
fn backups_of_a_terminated_account_are_capped_after_termination() {
    struct Case {
        name: &'static str,
        account: Account,
        after_termination: Option<&'static str>,
        backups: Vec<(&'static str, &'static str)>,
        target: &'static str,
        delete_at: &'static str,
        disposition: Disposition,
    }
    let cases = vec![
        Case {
            name: "monthly expiry (2027-04-30) beyond T+90d is capped at T+90d",
            account: account("acme").terminated_at(T),
            after_termination: Some("90d"),
            backups: vec![("oct31", "2026-10-31T02:00:00Z")],
            target: "oct31",
            delete_at: "2027-01-30T00:00:00Z",
            disposition: Disposition::Retain,
        },
        Case {
            name: "daily expiry before the cap is kept",
            account: account("acme").terminated_at(T),
            after_termination: Some("90d"),
            backups: vec![
                ("oct20", "2026-10-20T02:00:00Z"),
                ("oct21", "2026-10-21T02:00:00Z"),
            ],
            target: "oct20",
            delete_at: "2026-10-27T02:00:00Z",
            disposition: Disposition::Retain,
        },
        Case {
            name: "cap counts from spec.terminatedAt",
            account: account("acme").terminated_at("2026-11-05T00:00:00Z"),
            after_termination: Some("2w"),
            backups: vec![("oct31", "2026-10-31T02:00:00Z")],
            target: "oct31",
            delete_at: "2026-11-19T00:00:00Z",
            disposition: Disposition::Retain,
        },
        Case {
            name: "cap counts from the deletionTimestamp",
            account: account("acme").deleted_at("2026-11-05T00:00:00Z"),
            after_termination: Some("12h"),
            backups: vec![("oct31", "2026-10-31T02:00:00Z")],
            target: "oct31",
            delete_at: "2026-11-05T12:00:00Z",
            disposition: Disposition::Retain,
        },
        Case {
            name: "a backup taken after termination is still capped",
            account: account("acme").terminated_at(T),
            after_termination: Some("30d"),
            backups: vec![("dec15", "2026-12-15T02:00:00Z")],
            target: "dec15",
            delete_at: "2026-12-01T00:00:00Z",
            disposition: Disposition::Retain,
        },
        Case {
            name: "no afterTermination: the schedule alone decides",
            account: account("acme").terminated_at(T),
            after_termination: None,
            backups: vec![("oct31", "2026-10-31T02:00:00Z")],
            target: "oct31",
            delete_at: "2027-04-30T02:00:00Z",
            disposition: Disposition::Retain,
        },
        Case {
            name: "Active account: no cap, backups expire on schedule",
            account: account("acme"),
            after_termination: Some("90d"),
            backups: vec![("oct31", "2026-10-31T02:00:00Z")],
            target: "oct31",
            delete_at: "2027-04-30T02:00:00Z",
            disposition: Disposition::Expire,
        },
        Case {
            name: "Suspended account: no cap, backups expire on schedule",
            account: account("acme").suspended().spec_terminated_at(T),
            after_termination: Some("90d"),
            backups: vec![("oct31", "2026-10-31T02:00:00Z")],
            target: "oct31",
            delete_at: "2027-04-30T02:00:00Z",
            disposition: Disposition::Expire,
        },
    ];
    for case in cases {
        let name = case.name;
        let policy = policy_with_backups(backup_policy(7, 4, 6, case.after_termination));
        let bound: Vec<_> = case
            .backups
            .iter()
            .map(|&(b, taken)| bound(&backup(b, "acme", "shop-db", taken)))
            .collect();
        let plan = plan_one(&case.account, &bound, &policy, at("2026-11-10T00:00:00Z"));
        let r = resource(&plan, ResourceKind::Backup, case.target);
        assert_eq!(
            r.schedule.delete_at,
            Some(at(case.delete_at)),
            "{name}: deleteAt (reason {:?})",
            r.schedule.reason
        );
        assert_eq!(
            r.schedule.disposition, case.disposition,
            "{name}: disposition"
        );
    }
}

#[test]
fn backups_of_live_accounts_expire_on_schedule_while_hosted_data_is_kept() {
    let cases = vec![
        ("Active", account("acme")),
        ("Suspended", account("acme").suspended()),
        (
            "Active again after a termination",
            account("acme")
                .spec_terminated_at(T)
                .status_terminated_at(T),
        ),
    ];
    let now = at("2026-12-01T00:00:00Z");
    for (name, account) in cases {
        // Tuesday's backup is neither the newest of its week nor of October: 7 days.
        let old = backup("old", "acme", "shop-db", "2026-10-20T02:00:00Z");
        let next = backup("next", "acme", "shop-db", "2026-10-21T02:00:00Z");
        let newest = backup("newest", "acme", "shop-db", "2026-11-30T02:00:00Z");
        let site = website("www", "acme");
        let plan = plan_one(
            &account,
            &[bound(&old), bound(&next), bound(&newest), bound(&site)],
            &policy(),
            now,
        );
        let old = resource(&plan, ResourceKind::Backup, "old");
        assert_eq!(
            old.schedule.delete_at,
            Some(at("2026-10-27T02:00:00Z")),
            "{name}: old backup's deleteAt"
        );
        assert!(old.is_due(now), "{name}: the old backup is due");
        assert_eq!(
            old.schedule.disposition,
            Disposition::Expire,
            "{name}: disposition"
        );
        let newest = resource(&plan, ResourceKind::Backup, "newest");
        assert_eq!(
            newest.schedule.delete_at,
            Some(at("2027-05-30T02:00:00Z")),
            "{name}: newest backup's deleteAt"
        );
        let site = resource(&plan, ResourceKind::Website, "www");
        assert_eq!(site.schedule.delete_at, None, "{name}: website deleteAt");
        assert_eq!(
            site.schedule.disposition,
            Disposition::Keep,
            "{name}: website disposition"
        );
        assert_eq!(
            plan.next_deletion_at,
            Some(at("2026-10-27T02:00:00Z")),
            "{name}: nextDeletionAt"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Legal hold

#[test]
fn a_legal_hold_postpones_or_stops_every_deletion() {
    struct Case {
        name: &'static str,
        account: Account,
        now: &'static str,
        phase: AccountPhase,
        expected: Vec<(ResourceKind, &'static str, Option<&'static str>)>,
    }
    use ResourceKind::{Backup, DataRecord, Mailbox, Website};
    let cases = vec![
        Case {
            name: "hold until 2027-06-01: everything earlier waits for it",
            account: account("acme")
                .terminated_at(T)
                .hold(Some("2027-06-01T00:00:00Z")),
            now: "2026-12-15T00:00:00Z",
            phase: AccountPhase::OnHold,
            expected: vec![
                (Website, "www", Some("2027-06-01T00:00:00Z")),
                (Mailbox, "info", Some("2027-06-01T00:00:00Z")),
                (DataRecord, "consent", Some("2027-06-01T00:00:00Z")),
                (DataRecord, "invoices", Some("2034-01-01T00:00:00Z")),
                (Backup, "oct31", Some("2027-06-01T00:00:00Z")),
            ],
        },
        Case {
            name: "hold until before the grace period ends changes nothing but the phase",
            account: account("acme")
                .terminated_at(T)
                .hold(Some("2026-11-03T00:00:00Z")),
            now: "2026-11-02T00:00:00Z",
            phase: AccountPhase::OnHold,
            expected: vec![
                (Website, "www", Some("2026-12-01T00:00:00Z")),
                (Mailbox, "info", Some("2026-11-15T00:00:00Z")),
                // Withdrawn consent would be due now; the hold pushes it to its end.
                (DataRecord, "consent", Some("2026-11-03T00:00:00Z")),
                (DataRecord, "invoices", Some("2034-01-01T00:00:00Z")),
                (Backup, "oct31", Some("2027-01-30T00:00:00Z")),
            ],
        },
        Case {
            name: "hold without until: nothing is scheduled",
            account: account("acme").terminated_at(T).hold(None::<&str>),
            now: "2026-12-15T00:00:00Z",
            phase: AccountPhase::OnHold,
            expected: vec![
                (Website, "www", None),
                (Mailbox, "info", None),
                (DataRecord, "consent", None),
                (DataRecord, "invoices", None),
                (Backup, "oct31", None),
            ],
        },
        Case {
            name: "hold whose until has passed: schedules stay at least until, phase no longer OnHold",
            account: account("acme")
                .terminated_at(T)
                .hold(Some("2027-01-01T00:00:00Z")),
            now: "2027-02-01T00:00:00Z",
            phase: AccountPhase::Erasing,
            expected: vec![
                (Website, "www", Some("2027-01-01T00:00:00Z")),
                (Mailbox, "info", Some("2027-01-01T00:00:00Z")),
                // Withdrawn consent on a terminated account: min(now, T + grace), then the
                // hold's end.
                (DataRecord, "consent", Some("2027-01-01T00:00:00Z")),
                (DataRecord, "invoices", Some("2034-01-01T00:00:00Z")),
                (Backup, "oct31", Some("2027-01-30T00:00:00Z")),
            ],
        },
        Case {
            name: "hold ends exactly now: it no longer stands",
            account: account("acme")
                .terminated_at(T)
                .hold(Some("2027-01-01T00:00:00Z")),
            now: "2027-01-01T00:00:00Z",
            phase: AccountPhase::Erasing,
            expected: vec![
                (Website, "www", Some("2027-01-01T00:00:00Z")),
                (Mailbox, "info", Some("2027-01-01T00:00:00Z")),
                (DataRecord, "consent", Some("2027-01-01T00:00:00Z")),
                (DataRecord, "invoices", Some("2034-01-01T00:00:00Z")),
                (Backup, "oct31", Some("2027-01-30T00:00:00Z")),
            ],
        },
        Case {
            name: "hold on an Active account: withdrawn consent and backups wait too",
            account: account("acme").hold(Some("2027-06-01T00:00:00Z")),
            now: "2026-12-15T00:00:00Z",
            phase: AccountPhase::OnHold,
            expected: vec![
                (Website, "www", None),
                (Mailbox, "info", None),
                (DataRecord, "consent", Some("2027-06-01T00:00:00Z")),
                (DataRecord, "invoices", None),
                (Backup, "oct31", Some("2027-06-01T00:00:00Z")),
            ],
        },
        Case {
            name: "hold without until on an Active account: nothing is scheduled",
            account: account("acme").hold(None::<&str>),
            now: "2026-12-15T00:00:00Z",
            phase: AccountPhase::OnHold,
            expected: vec![
                (Website, "www", None),
                (Mailbox, "info", None),
                (DataRecord, "consent", None),
                (DataRecord, "invoices", None),
                (Backup, "oct31", None),
            ],
        },
    ];
    for case in cases {
        let name = case.name;
        let now = at(case.now);
        let objects = vec![
            bound(&website("www", "acme")),
            bound(&mailbox("info", "acme")),
            bound(&consent_record("consent", "acme", "marketing")),
            bound(&bookkeeping_record("invoices", "acme", "2026-12-31")),
            bound(&backup("oct31", "acme", "shop-db", "2026-10-31T02:00:00Z")),
        ];
        let plan = plan_one(&case.account, &objects, &policy(), now);
        assert_eq!(plan.phase, case.phase, "{name}: phase");
        assert_eq!(
            schedules(&plan),
            expected_schedules(&case.expected),
            "{name}: schedules"
        );
        if case.phase == AccountPhase::OnHold {
            let due: Vec<_> = plan.resources.iter().filter(|r| r.is_due(now)).collect();
            assert!(
                due.is_empty(),
                "{name}: due while the hold stands: {due:#?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reactivation

#[test]
fn reactivation_cancels_every_pending_hosted_schedule() {
    let stamped = "2026-12-01T00:00:00Z";
    let cases = vec![
        (
            "state back to Active, spec.terminatedAt left behind",
            account("acme")
                .spec_terminated_at(T)
                .status_terminated_at(T),
            AccountPhase::Active,
        ),
        (
            "state back to Active, only status.terminatedAt recorded",
            account("acme").status_terminated_at(T),
            AccountPhase::Active,
        ),
        (
            "state set to Suspended after termination",
            account("acme").suspended().spec_terminated_at(T),
            AccountPhase::Suspended,
        ),
    ];
    let now = at("2026-11-20T00:00:00Z");
    for (name, account, phase) in cases {
        let objects = vec![
            bound(&website("www", "acme").stamped(stamped)),
            bound(&database("shop-db", "acme").stamped(stamped)),
            bound(&mailbox("info", "acme").stamped("2026-11-15T00:00:00Z")),
            bound(
                &domain("acme-se", "acme")
                    .registrar("key-systems")
                    .stamped(stamped),
            ),
            bound(&data_record("crm", "acme").stamped(stamped)),
            bound(
                &bookkeeping_record("invoices", "acme", "2026-12-31")
                    .stamped("2034-01-01T00:00:00Z"),
            ),
        ];
        for object in &objects {
            assert!(
                object.stamped_delete_at.is_some(),
                "{name}: the annotation on {} is read",
                object.reference
            );
        }
        let plan = plan_one(&account, &objects, &policy(), now);
        assert_eq!(plan.phase, phase, "{name}: phase");
        assert_eq!(plan.terminated_at, None, "{name}: terminatedAt");
        assert_eq!(plan.next_deletion_at, None, "{name}: nextDeletionAt");
        assert!(plan.notifications.is_empty(), "{name}: notifications");
        for object in &objects {
            let r = resource(&plan, object.reference.kind, &object.reference.name);
            assert_eq!(
                r.schedule.delete_at, None,
                "{name}: {} deleteAt",
                object.reference
            );
            assert_eq!(
                schedule_change(object.stamped_delete_at, r.schedule.delete_at),
                ScheduleChange::Cancel,
                "{name}: {} stamp",
                object.reference
            );
        }
    }
}

#[test]
fn reactivation_lifts_the_after_termination_cap_on_backups() {
    // Stamped while terminated: capped at T + 90d.
    let capped = "2027-01-30T00:00:00Z";
    let b = backup("oct31", "acme", "shop-db", "2026-10-31T02:00:00Z").with_expiry(capped);
    let object = bound(&b);
    assert_eq!(
        object.stamped_delete_at,
        Some(at(capped)),
        "status.expiresAt is read"
    );
    let account = account("acme").spec_terminated_at(T);
    let plan = plan_one(
        &account,
        std::slice::from_ref(&object),
        &policy(),
        at("2026-11-20T00:00:00Z"),
    );
    let r = only(&plan);
    assert_eq!(r.schedule.delete_at, Some(at("2027-04-30T02:00:00Z")));
    assert_eq!(
        schedule_change(object.stamped_delete_at, r.schedule.delete_at),
        ScheduleChange::Set(at("2027-04-30T02:00:00Z"))
    );
}

#[test]
fn schedule_change_compares_the_stamp_with_the_plan() {
    let a = Some(at("2026-12-01T00:00:00Z"));
    let b = Some(at("2027-01-01T00:00:00Z"));
    let cases = vec![
        (
            "nothing stamped, nothing planned",
            None,
            None,
            ScheduleChange::Unchanged,
        ),
        ("stamp matches plan", a, a, ScheduleChange::Unchanged),
        (
            "first schedule",
            None,
            b,
            ScheduleChange::Set(at("2027-01-01T00:00:00Z")),
        ),
        (
            "moved schedule",
            a,
            b,
            ScheduleChange::Set(at("2027-01-01T00:00:00Z")),
        ),
        ("schedule withdrawn", a, None, ScheduleChange::Cancel),
    ];
    for (name, stamped, planned, expected) in cases {
        assert_eq!(schedule_change(stamped, planned), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Consent

#[test]
fn data_held_on_withdrawn_consent_is_due_now_in_any_account_state() {
    struct Case {
        name: &'static str,
        account: Account,
        /// `None`: no consentPurpose (the CRD rejects that; the engine must not erase early).
        purpose: Option<&'static str>,
        delete_at: Option<&'static str>,
        disposition: Disposition,
    }
    let now = "2026-11-10T09:30:00Z";
    let cases = vec![
        Case {
            name: "Active, consent withdrawn (false)",
            account: account("acme").consent("marketing", false),
            purpose: Some("marketing"),
            delete_at: Some(now),
            disposition: Disposition::Erase,
        },
        Case {
            name: "Active, consent never given (absent)",
            account: account("acme").consent("marketing", true),
            purpose: Some("newsletter"),
            delete_at: Some(now),
            disposition: Disposition::Erase,
        },
        Case {
            name: "Active, consent given: kept",
            account: account("acme").consent("marketing", true),
            purpose: Some("marketing"),
            delete_at: None,
            disposition: Disposition::Keep,
        },
        Case {
            name: "Suspended, consent withdrawn",
            account: account("acme").suspended().consent("marketing", false),
            purpose: Some("marketing"),
            delete_at: Some(now),
            disposition: Disposition::Erase,
        },
        Case {
            name: "Suspended, consent given: kept",
            account: account("acme").suspended().consent("marketing", true),
            purpose: Some("marketing"),
            delete_at: None,
            disposition: Disposition::Keep,
        },
        Case {
            name: "Terminated, consent withdrawn: now, not after the grace period",
            account: account("acme").terminated_at(T).consent("marketing", false),
            purpose: Some("marketing"),
            delete_at: Some(now),
            disposition: Disposition::Erase,
        },
        Case {
            name: "Active, no consentPurpose: nothing says consent was withdrawn",
            account: account("acme").consent("marketing", false),
            purpose: None,
            delete_at: None,
            disposition: Disposition::Keep,
        },
        Case {
            name: "Terminated, no consentPurpose: the grace period applies",
            account: account("acme").terminated_at(T),
            purpose: None,
            delete_at: Some("2026-12-01T00:00:00Z"),
            disposition: Disposition::Erase,
        },
        Case {
            name: "Terminated, consent given: the grace period applies",
            account: account("acme").terminated_at(T).consent("marketing", true),
            purpose: Some("marketing"),
            delete_at: Some("2026-12-01T00:00:00Z"),
            disposition: Disposition::Erase,
        },
    ];
    for case in cases {
        let name = case.name;
        let record = match case.purpose {
            Some(purpose) => consent_record("newsletter-list", "acme", purpose),
            None => data_record("newsletter-list", "acme").legal_basis(LegalBasis::Consent),
        };
        let plan = plan_one(&case.account, &[bound(&record)], &policy(), at(now));
        let r = only(&plan);
        assert_eq!(
            r.schedule.delete_at,
            opt(case.delete_at),
            "{name}: deleteAt"
        );
        assert_eq!(r.schedule.legal_basis, LegalBasis::Consent, "{name}: basis");
        assert_eq!(
            r.schedule.disposition, case.disposition,
            "{name}: disposition"
        );
        assert_eq!(
            r.is_due(at(now)),
            case.delete_at == Some(now),
            "{name}: due now"
        );
    }
}

/// The due time of withdrawn consent must not move with `now`: the operator stamps it, and a
/// time that changed on every pass was stamped again on every pass, each stamp's watch event
/// starting the next pass (a hot loop of ~900 writes/s while the deletion could not happen).
#[test]
fn withdrawn_consent_is_due_from_when_it_was_first_seen() {
    let now = at("2026-11-10T09:30:00Z");
    let record = |stamp: Option<&str>| {
        let record = consent_record("newsletter-list", "acme", "marketing");
        bound(&match stamp {
            Some(at) => record.stamped(at),
            None => record,
        })
    };
    let cases = [
        (
            "not stamped yet: now",
            account("acme").consent("marketing", false),
            record(None),
            now,
        ),
        (
            "stamped earlier: that time, whatever now is",
            account("acme").consent("marketing", false),
            record(Some("2026-11-09T08:00:00Z")),
            at("2026-11-09T08:00:00Z"),
        ),
        (
            "a stamp in the future belongs to another rule: now",
            account("acme").consent("marketing", false),
            record(Some("2026-12-01T00:00:00Z")),
            now,
        ),
        (
            "terminated, grace period already over: its date, not now",
            account("acme")
                .terminated_at("2026-10-01T00:00:00Z")
                .consent("marketing", false),
            record(None),
            at("2026-10-31T00:00:00Z"),
        ),
    ];
    for (name, account, record, expected) in cases {
        let plan = plan_one(&account, std::slice::from_ref(&record), &policy(), now);
        assert_eq!(only(&plan).schedule.delete_at, Some(expected), "{name}");
        // An hour later, with the time stamped: the same due time.
        let mut stamped = record.clone();
        stamped.stamped_delete_at = Some(expected);
        let later = plan_one(
            &account,
            &[stamped],
            &policy(),
            now + chrono::TimeDelta::hours(1),
        );
        assert_eq!(
            only(&later).schedule.delete_at,
            Some(expected),
            "{name}: an hour later"
        );
    }
}

#[test]
fn withdrawn_consent_on_an_active_account_only_touches_that_data() {
    let account = account("acme")
        .consent("marketing", false)
        .consent("analytics", true);
    let now = at("2026-11-10T09:30:00Z");
    let objects = vec![
        bound(&consent_record("mailing-list", "acme", "marketing").processor("pipedrive")),
        bound(&consent_record("tracking", "acme", "analytics")),
        bound(&website("www", "acme")),
        bound(&data_record("crm", "acme").legal_basis(LegalBasis::LegitimateInterest)),
    ];
    let mut processors = BTreeMap::new();
    processors.insert("pipedrive".to_owned(), processor("pipedrive").spec);
    let plan = plan_account(&account, &objects, &policy(), &processors, now);
    use ResourceKind::{DataRecord, Website};
    assert_eq!(
        schedules(&plan),
        expected_schedules(&[
            (DataRecord, "mailing-list", Some("2026-11-10T09:30:00Z")),
            (DataRecord, "tracking", None),
            (DataRecord, "crm", None),
            (Website, "www", None),
        ])
    );
    assert_eq!(plan.phase, AccountPhase::Active);
    assert_eq!(
        plan.notifications,
        vec![NotificationPlan {
            processor: "pipedrive".to_owned(),
            at: now,
            delivery: NotificationDelivery::Manual,
            resources: vec![ResourceRef {
                kind: DataRecord,
                namespace: NAMESPACE.to_owned(),
                name: "mailing-list".to_owned(),
            }],
        }]
    );
}

// ---------------------------------------------------------------------------------------------
// Suspended accounts

#[test]
fn a_suspended_account_keeps_all_hosted_data() {
    let account = account("acme").suspended();
    let now = at("2026-11-10T00:00:00Z");
    let objects = vec![
        bound(&website("www", "acme")),
        bound(&database("shop-db", "acme")),
        bound(&mailbox("info", "acme")),
        bound(&domain("acme-se", "acme").registrar("key-systems")),
        bound(&data_record("crm", "acme").processor("pipedrive")),
        bound(&bookkeeping_record("invoices", "acme", "2015-12-31")),
    ];
    let plan = plan_one(&account, &objects, &policy(), now);
    assert_eq!(plan.phase, AccountPhase::Suspended);
    assert_eq!(plan.state, AccountState::Suspended);
    assert_eq!(plan.terminated_at, None);
    assert_eq!(plan.next_deletion_at, None);
    assert!(plan.notifications.is_empty());
    for r in &plan.resources {
        assert_eq!(r.schedule.delete_at, None, "{}", r.resource);
        assert_eq!(r.schedule.disposition, Disposition::Keep, "{}", r.resource);
    }
    assert_eq!(plan.resources.len(), objects.len());
}

// ---------------------------------------------------------------------------------------------
// Unbound objects

#[test]
fn objects_of_a_missing_account_are_reported_unbound_and_never_planned() {
    let resources = vec![
        bound(&website("www", "acme")),
        bound(&mailbox("info", "ghost")),
        bound(&data_record("crm", "ghost")),
        bound(&backup(
            "shop-db-1",
            "ghost",
            "shop-db",
            "2026-10-01T02:00:00Z",
        )),
        bound(&website("www-upper", "Acme")),
    ];
    let inventory = inventory(vec![account("acme").terminated_at(T)], resources);
    let whole = plan(&inventory, at("2027-06-01T00:00:00Z")).expect("plan");
    assert_eq!(whole.accounts.len(), 1);
    let acme = &whole.accounts[0];
    assert_eq!(
        acme.resources
            .iter()
            .map(|r| r.resource.name.as_str())
            .collect::<Vec<_>>(),
        vec!["www"],
        "only acme's own object is in its plan"
    );
    let unbound: Vec<_> = whole
        .unbound
        .iter()
        .map(|u| {
            (
                u.resource.kind,
                u.resource.name.as_str(),
                u.account_ref.as_str(),
                u.reason.as_str(),
            )
        })
        .collect();
    use ResourceKind::{Backup, DataRecord, Mailbox, Website};
    assert_eq!(
        unbound,
        vec![
            (Website, "www-upper", "Acme", "account not found"),
            (Mailbox, "info", "ghost", "account not found"),
            (DataRecord, "crm", "ghost", "account not found"),
            (Backup, "shop-db-1", "ghost", "account not found"),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Phases

#[test]
fn the_phase_follows_the_account_and_what_remains_bound() {
    struct Case {
        name: &'static str,
        account: Account,
        objects: Vec<BoundResource>,
        now: &'static str,
        phase: AccountPhase,
    }
    let www = || bound(&website("www", "acme"));
    let info = || bound(&mailbox("info", "acme"));
    let invoices = || bound(&bookkeeping_record("invoices", "acme", "2026-12-31"));
    let bkp = || bound(&backup("oct31", "acme", "shop-db", "2026-10-31T02:00:00Z"));
    let terminated = || account("acme").terminated_at(T);
    let cases = vec![
        Case {
            name: "Active",
            account: account("acme"),
            objects: vec![www(), bkp()],
            now: "2026-11-10T00:00:00Z",
            phase: AccountPhase::Active,
        },
        Case {
            name: "Active with nothing bound is not Erased",
            account: account("acme"),
            objects: vec![],
            now: "2026-11-10T00:00:00Z",
            phase: AccountPhase::Active,
        },
        Case {
            name: "Suspended",
            account: account("acme").suspended(),
            objects: vec![www()],
            now: "2026-11-10T00:00:00Z",
            phase: AccountPhase::Suspended,
        },
        Case {
            name: "GracePeriod before the first hosted deleteAt",
            account: terminated(),
            objects: vec![www(), info(), invoices(), bkp()],
            now: "2026-11-14T23:59:59Z",
            phase: AccountPhase::GracePeriod,
        },
        Case {
            name: "Erasing once the first hosted deleteAt is reached (deleteAt == now)",
            account: terminated(),
            objects: vec![www(), info(), invoices(), bkp()],
            now: "2026-11-15T00:00:00Z",
            phase: AccountPhase::Erasing,
        },
        Case {
            name: "Erasing while a due hosted resource remains",
            account: terminated(),
            objects: vec![www(), invoices(), bkp()],
            now: "2026-12-05T00:00:00Z",
            phase: AccountPhase::Erasing,
        },
        Case {
            name: "Retained when only bookkeeping and backups remain",
            account: terminated(),
            objects: vec![invoices(), bkp()],
            now: "2026-12-05T00:00:00Z",
            phase: AccountPhase::Retained,
        },
        Case {
            name: "Retained when only a backup remains",
            account: terminated(),
            objects: vec![bkp()],
            now: "2026-12-05T00:00:00Z",
            phase: AccountPhase::Retained,
        },
        Case {
            name: "Retained when only bookkeeping remains, even before the grace period ends",
            account: terminated(),
            objects: vec![invoices()],
            now: "2026-11-02T00:00:00Z",
            phase: AccountPhase::Retained,
        },
        Case {
            name: "Erased when nothing bound remains",
            account: terminated(),
            objects: vec![],
            now: "2027-02-01T00:00:00Z",
            phase: AccountPhase::Erased,
        },
        Case {
            name: "Erased: deleted Account with nothing bound",
            account: account("acme").deleted_at("2026-11-20T00:00:00Z"),
            objects: vec![],
            now: "2026-11-21T00:00:00Z",
            phase: AccountPhase::Erased,
        },
        Case {
            name: "OnHold wins over GracePeriod",
            account: terminated().hold(Some("2027-06-01T00:00:00Z")),
            objects: vec![www()],
            now: "2026-11-10T00:00:00Z",
            phase: AccountPhase::OnHold,
        },
        Case {
            name: "OnHold wins over Erased",
            account: terminated().hold(None::<&str>),
            objects: vec![],
            now: "2026-11-10T00:00:00Z",
            phase: AccountPhase::OnHold,
        },
        Case {
            name: "OnHold wins over Suspended",
            account: account("acme").suspended().hold(None::<&str>),
            objects: vec![www()],
            now: "2026-11-10T00:00:00Z",
            phase: AccountPhase::OnHold,
        },
    ];
    for case in cases {
        let plan = plan_one(&case.account, &case.objects, &policy(), at(case.now));
        assert_eq!(plan.phase, case.phase, "{}", case.name);
    }
}

#[test]
fn a_missing_retention_policy_stops_the_plan() {
    let accounts = vec![
        account("acme").terminated_at(T),
        account("globex").policy_ref("strict").terminated_at(T),
    ];
    let inventory = inventory(accounts, vec![bound(&website("www", "globex"))]);
    assert_eq!(
        plan(&inventory, at("2027-01-01T00:00:00Z")),
        Err(PlanError::PolicyMissing {
            account: "globex".to_owned(),
            policy: "strict".to_owned(),
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Processor notifications

#[test]
fn processors_get_one_notification_per_erasure_time() {
    let account = account("acme").terminated_at(T);
    let objects = vec![
        // key-systems holds the domain (as registrar and processorRef: named once) and the site.
        bound(
            &domain("acme-se", "acme")
                .registrar("key-systems")
                .processor("key-systems"),
        ),
        bound(&website("www", "acme").processor("key-systems")),
        // Traficom registers .fi domains.
        bound(
            &domain("acme-fi", "acme")
                .registrar("traficom")
                .processor("key-systems"),
        ),
        // Pipedrive holds the CRM entry now and the invoices until 2034.
        bound(&data_record("crm", "acme").processor("pipedrive")),
        bound(&bookkeeping_record("invoices", "acme", "2026-12-31").processor("pipedrive")),
        // No DataProcessor named microsoft exists.
        bound(&mailbox("info", "acme").processor("microsoft")),
        // Not held by anyone else: no notification.
        bound(&database("shop-db", "acme")),
    ];
    let processors = BTreeMap::from([
        (
            "key-systems".to_owned(),
            processor("key-systems")
                .webhook("https://erasure.example/api")
                .spec,
        ),
        (
            "traficom".to_owned(),
            processor("traficom")
                .webhook("https://erasure.example/api")
                .spec,
        ),
        ("pipedrive".to_owned(), processor("pipedrive").spec),
    ]);
    let plan = plan_account(
        &account,
        &objects,
        &policy(),
        &processors,
        at("2026-11-10T00:00:00Z"),
    );
    let r = |kind, name: &str| ResourceRef {
        kind,
        namespace: NAMESPACE.to_owned(),
        name: name.to_owned(),
    };
    use ResourceKind::{DataRecord, Domain, Mailbox, Website};
    let n = |processor: &str, when: &str, delivery, resources| NotificationPlan {
        processor: processor.to_owned(),
        at: at(when),
        delivery,
        resources,
    };
    let expected = vec![
        n(
            "microsoft",
            "2026-11-15T00:00:00Z",
            NotificationDelivery::UnknownProcessor,
            vec![r(Mailbox, "info")],
        ),
        n(
            "key-systems",
            "2026-12-01T00:00:00Z",
            NotificationDelivery::Webhook,
            vec![
                r(Website, "www"),
                r(Domain, "acme-fi"),
                r(Domain, "acme-se"),
            ],
        ),
        n(
            "pipedrive",
            "2026-12-01T00:00:00Z",
            NotificationDelivery::Manual,
            vec![r(DataRecord, "crm")],
        ),
        n(
            "traficom",
            "2026-12-01T00:00:00Z",
            NotificationDelivery::Webhook,
            vec![r(Domain, "acme-fi")],
        ),
        n(
            "pipedrive",
            "2034-01-01T00:00:00Z",
            NotificationDelivery::Manual,
            vec![r(DataRecord, "invoices")],
        ),
    ];
    assert_eq!(
        plan.notifications.len(),
        expected.len(),
        "{:#?}",
        plan.notifications
    );
    for (actual, expected) in plan.notifications.iter().zip(&expected) {
        assert_eq!(
            actual, expected,
            "notification to {} at {}",
            expected.processor, expected.at
        );
    }
    let acme_se = resource(&plan, Domain, "acme-se");
    assert_eq!(
        acme_se.processors,
        vec!["key-systems".to_owned()],
        "deduplicated"
    );
}

#[test]
fn nothing_is_notified_while_nothing_is_scheduled() {
    let processors = BTreeMap::from([(
        "key-systems".to_owned(),
        processor("key-systems")
            .webhook("https://erasure.example/api")
            .spec,
    )]);
    let cases = vec![
        ("Active account", account("acme")),
        ("Suspended account", account("acme").suspended()),
        (
            "hold without end",
            account("acme").terminated_at(T).hold(None::<&str>),
        ),
    ];
    for (name, account) in cases {
        let objects = vec![bound(&domain("acme-se", "acme").registrar("key-systems"))];
        let plan = plan_account(
            &account,
            &objects,
            &policy(),
            &processors,
            at("2027-01-01T00:00:00Z"),
        );
        assert!(
            plan.notifications.is_empty(),
            "{name}: {:#?}",
            plan.notifications
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Dates past 9999-12-31T23:59:59Z: nothing is scheduled, and nothing else is blocked

/// The last instant RFC 3339 (and the API server) can write.
const LAST: &str = "9999-12-31T23:59:59Z";

struct EdgeCase {
    name: &'static str,
    account: Account,
    policy: retention_operator::api::RetentionPolicySpec,
    objects: Vec<BoundResource>,
    /// (kind, name, deleteAt, a fragment of the reason).
    expected: Vec<(
        ResourceKind,
        &'static str,
        Option<&'static str>,
        &'static str,
    )>,
}

fn check_edge_cases(table: &str, cases: Vec<EdgeCase>) {
    for case in cases {
        let name = case.name;
        let plan = plan_one(&case.account, &case.objects, &case.policy, at(T));
        for (kind, object, delete_at, reason) in case.expected {
            let r = resource(&plan, kind, object);
            assert_eq!(
                r.schedule.delete_at,
                opt(delete_at),
                "{table} / {name}: deleteAt of {kind} {object} (reason {:?})",
                r.schedule.reason
            );
            assert!(
                r.schedule.reason.contains(reason),
                "{table} / {name}: reason of {kind} {object} {:?} lacks {reason:?}",
                r.schedule.reason
            );
            if delete_at.is_none() {
                assert!(
                    r.schedule.reason.contains("beyond 9999"),
                    "{table} / {name}: reason {:?}",
                    r.schedule.reason
                );
            }
        }
        let latest = at(LAST);
        assert!(
            plan.next_deletion_at.is_none_or(|at| at <= latest),
            "{table} / {name}: nextDeletionAt {:?}",
            plan.next_deletion_at
        );
    }
}

#[test]
fn a_grace_period_ending_past_9999_schedules_nothing() {
    use ResourceKind::{Mailbox, Website};
    let grace = |text: &str| retention_operator::api::RetentionPolicySpec {
        grace_period: dur(text),
        ..policy()
    };
    let cases = vec![
        EdgeCase {
            name: "ends on the last second: scheduled",
            account: account("acme").terminated_at("9999-12-01T23:59:59Z"),
            policy: grace("30d"),
            objects: vec![bound(&website("www", "acme"))],
            expected: vec![(Website, "www", Some(LAST), "grace period 30d")],
        },
        EdgeCase {
            name: "one second later: nothing",
            account: account("acme").terminated_at("9999-12-02T00:00:00Z"),
            policy: grace("30d"),
            objects: vec![bound(&website("www", "acme"))],
            expected: vec![(Website, "www", None, "grace period 30d after termination")],
        },
        EdgeCase {
            name: "the per-kind override too, and the other kinds still go",
            account: account("acme").terminated_at("9999-12-20T00:00:00Z"),
            policy: retention_operator::api::RetentionPolicySpec {
                grace_periods: retention_operator::api::GracePeriods {
                    mailbox: Some(dur("999999w")),
                    ..Default::default()
                },
                ..grace("1d")
            },
            objects: vec![
                bound(&website("www", "acme")),
                bound(&mailbox("info", "acme")),
            ],
            expected: vec![
                (
                    Website,
                    "www",
                    Some("9999-12-21T00:00:00Z"),
                    "grace period 1d",
                ),
                (Mailbox, "info", None, "grace period 999999w for Mailbox"),
            ],
        },
        EdgeCase {
            name: "a termination written with an offset that lands in year 10000 in UTC",
            account: account("acme").terminated_at("9999-12-31T23:00:00-02:00"),
            policy: grace("0s"),
            objects: vec![bound(&website("www", "acme"))],
            expected: vec![(Website, "www", None, "grace period 0s")],
        },
    ];
    check_edge_cases("grace period", cases);
}

#[test]
fn a_bookkeeping_period_ending_past_9999_schedules_nothing() {
    use ResourceKind::DataRecord;
    let cases = vec![
        EdgeCase {
            name: "fiscal year 9991, 7 years: erased 9999-01-01",
            account: account("acme").terminated_at(T),
            policy: policy(),
            objects: vec![bound(&bookkeeping_record("inv", "acme", "9991-12-31"))],
            expected: vec![(
                DataRecord,
                "inv",
                Some("9999-01-01T00:00:00Z"),
                "kept through 9998",
            )],
        },
        EdgeCase {
            name: "fiscal year 9992, 7 years: the first of January 10000",
            account: account("acme").terminated_at(T),
            policy: policy(),
            objects: vec![bound(&bookkeeping_record("inv", "acme", "9992-12-31"))],
            expected: vec![(DataRecord, "inv", None, "fiscal year ended 9992-12-31")],
        },
        EdgeCase {
            name: "fiscal year end 9999-12-31, and the website still goes",
            account: account("acme").terminated_at(T),
            policy: policy(),
            objects: vec![
                bound(&bookkeeping_record("inv", "acme", "9999-12-31")),
                bound(&website("www", "acme")),
            ],
            expected: vec![
                (DataRecord, "inv", None, "Bookkeeping Act"),
                (
                    ResourceKind::Website,
                    "www",
                    Some("2026-12-01T00:00:00Z"),
                    "grace period 30d",
                ),
            ],
        },
    ];
    check_edge_cases("bookkeeping", cases);
    // No year past 9999 hides in the words either.
    let plan = plan_one(
        &account("acme").terminated_at(T),
        &[bound(&bookkeeping_record("inv", "acme", "9999-12-31"))],
        &policy(),
        at(T),
    );
    assert!(
        !only(&plan).schedule.reason.contains("1000"),
        "{}",
        only(&plan).schedule.reason
    );
}

#[test]
fn a_backup_rule_ending_past_9999_schedules_nothing_and_never_wins_a_minimum() {
    use ResourceKind::Backup;
    let daily_only =
        |after: Option<&'static str>| policy_with_backups(backup_policy(7, 0, 0, after));
    let cases = vec![
        EdgeCase {
            name: "daily rule past 9999 on a live account",
            account: account("acme"),
            policy: daily_only(None),
            objects: vec![bound(&backup("last", "acme", "db", LAST))],
            expected: vec![(Backup, "last", None, "daily backup kept 7d")],
        },
        EdgeCase {
            name: "weekly rule past 9999 while the daily rule is not: the latest applies",
            account: account("acme"),
            policy: policy_with_backups(backup_policy(7, 4, 0, None)),
            objects: vec![bound(&backup(
                "dec20",
                "acme",
                "db",
                "9999-12-20T02:00:00Z",
            ))],
            expected: vec![(Backup, "dec20", None, "ISO week")],
        },
        EdgeCase {
            name: "monthly rule past 9999",
            account: account("acme"),
            policy: policy_with_backups(backup_policy(7, 0, 6, None)),
            objects: vec![bound(&backup("oct", "acme", "db", "9999-10-01T02:00:00Z"))],
            expected: vec![(Backup, "oct", None, "kept 6 months")],
        },
        EdgeCase {
            name: "expiry past 9999, cap within: the cap",
            account: account("acme").terminated_at("9999-06-01T00:00:00Z"),
            policy: daily_only(Some("90d")),
            objects: vec![bound(&backup("late", "acme", "db", "9999-12-30T02:00:00Z"))],
            expected: vec![(
                Backup,
                "late",
                Some("9999-08-30T00:00:00Z"),
                "capped at 90d after termination",
            )],
        },
        EdgeCase {
            name: "cap past 9999, expiry within: the expiry",
            account: account("acme").terminated_at("9999-12-01T00:00:00Z"),
            policy: daily_only(Some("90d")),
            objects: vec![bound(&backup("oct", "acme", "db", "9999-10-01T02:00:00Z"))],
            expected: vec![(
                Backup,
                "oct",
                Some("9999-10-08T02:00:00Z"),
                "daily backup kept 7d",
            )],
        },
        EdgeCase {
            name: "both past 9999: nothing",
            account: account("acme").terminated_at("9999-12-30T00:00:00Z"),
            policy: daily_only(Some("90d")),
            objects: vec![bound(&backup("last", "acme", "db", "9999-12-30T02:00:00Z"))],
            expected: vec![(Backup, "last", None, "daily backup kept 7d")],
        },
        EdgeCase {
            name: "a takenAt written with an offset that lands in year 10000 in UTC",
            account: account("acme"),
            policy: policy_with_backups(backup_policy(0, 0, 0, None)),
            objects: vec![bound(&backup(
                "x",
                "acme",
                "db",
                "9999-12-31T23:59:59-01:00",
            ))],
            expected: vec![(Backup, "x", None, "backup taken after 9999")],
        },
    ];
    check_edge_cases("backups", cases);
}

#[test]
fn a_legal_hold_never_moves_a_schedule_past_9999() {
    use ResourceKind::{Backup, DataRecord, Website};
    let cases = vec![
        EdgeCase {
            name: "hold until the last second: everything waits for it",
            account: account("acme").terminated_at(T).hold(Some(LAST)),
            policy: policy(),
            objects: vec![
                bound(&website("www", "acme")),
                bound(&backup("oct31", "acme", "db", "2026-10-31T02:00:00Z")),
            ],
            expected: vec![
                (
                    Website,
                    "www",
                    Some(LAST),
                    "legal hold until 9999-12-31T23:59:59Z",
                ),
                (Backup, "oct31", Some(LAST), "legal hold until"),
            ],
        },
        EdgeCase {
            name: "a schedule past 9999 stays unscheduled under a hold",
            account: account("acme")
                .terminated_at(T)
                .hold(Some("9999-01-01T00:00:00Z")),
            policy: policy(),
            objects: vec![bound(&bookkeeping_record("inv", "acme", "9999-12-31"))],
            expected: vec![(DataRecord, "inv", None, "Bookkeeping Act")],
        },
        EdgeCase {
            name: "a hold whose end, written with an offset, lands in year 10000",
            account: account("acme")
                .terminated_at(T)
                .hold(Some("9999-12-31T23:59:59-05:00")),
            policy: policy(),
            objects: vec![bound(&website("www", "acme"))],
            expected: vec![(Website, "www", None, "legal hold until")],
        },
    ];
    check_edge_cases("legal hold", cases);
}

/// Every schedule names the rule that decided it, as the deletion metrics label it; a legal
/// hold with an end only moves the date, and the rule stays the one it moved.
#[test]
fn each_schedule_names_the_rule_that_decided_it() {
    let terminated = account("acme").terminated_at("2026-11-01T00:00:00Z");
    let now = at("2026-11-02T00:00:00Z");
    let backups = policy_with_backups(backup_policy(7, 4, 6, Some("90d")));
    let cases: Vec<(&str, Account, BoundResource, RetentionPolicySpecOf, Rule)> = vec![
        (
            "live account",
            account("acme"),
            bound(&website("www", "acme")),
            RetentionPolicySpecOf::Default,
            Rule::Kept,
        ),
        (
            "grace period",
            terminated.clone(),
            bound(&website("www", "acme")),
            RetentionPolicySpecOf::Default,
            Rule::GracePeriod,
        ),
        (
            "grace period moved by a hold with an end",
            terminated.clone().hold(Some("2027-06-01T00:00:00Z")),
            bound(&website("www", "acme")),
            RetentionPolicySpecOf::Default,
            Rule::GracePeriod,
        ),
        (
            "hold without an end",
            terminated.clone().hold(None::<&str>),
            bound(&website("www", "acme")),
            RetentionPolicySpecOf::Default,
            Rule::Kept,
        ),
        (
            "withdrawn consent",
            account("acme").consent("marketing", false),
            bound(&consent_record("list", "acme", "marketing")),
            RetentionPolicySpecOf::Default,
            Rule::ConsentWithdrawn,
        ),
        (
            "bookkeeping",
            terminated.clone(),
            bound(&bookkeeping_record("invoices", "acme", "2026-12-31")),
            RetentionPolicySpecOf::Default,
            Rule::Bookkeeping,
        ),
        (
            "backup of a live account",
            account("acme"),
            bound(&backup("b1", "acme", "db", "2026-11-01T02:00:00Z")),
            RetentionPolicySpecOf::Backups,
            Rule::BackupSchedule,
        ),
        (
            "backup capped after termination",
            terminated.clone(),
            bound(&backup("b1", "acme", "db", "2026-10-31T02:00:00Z")),
            RetentionPolicySpecOf::Backups,
            Rule::BackupAfterTermination,
        ),
    ];
    for (name, account, resource, which, expected) in cases {
        let policy = match which {
            RetentionPolicySpecOf::Default => policy(),
            RetentionPolicySpecOf::Backups => backups.clone(),
        };
        let plan = plan_one(&account, &[resource], &policy, now);
        let schedule = &only(&plan).schedule;
        assert_eq!(schedule.rule, expected, "{name}: {}", schedule.reason);
        assert!(!schedule.rule.as_str().is_empty());
    }
}

/// Which policy a case of [`each_schedule_names_the_rule_that_decided_it`] plans under.
enum RetentionPolicySpecOf {
    Default,
    Backups,
}
