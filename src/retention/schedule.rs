//! The rules for hosted resources and data records (docs/design.md §3): grace period, bookkeeping,
//! withdrawn consent, and the legal hold that overrides them all.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Utc};
use serde::Serialize;

use super::{
    facts::HostedFacts,
    situation::{AccountSituation, Hold},
};
use crate::api::{AccountState, LegalBasis, RetentionDuration, RetentionPolicySpec};

/// What the rules decided for one bound object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// When the object is erased; `None` when nothing is scheduled.
    pub delete_at: Option<DateTime<Utc>>,
    /// Which rule decided, in words an SRE or auditor can read.
    pub reason: String,
    /// The legal basis under which the data is processed until then.
    pub legal_basis: LegalBasis,
    /// What happens to the object.
    pub disposition: Disposition,
    /// The rule that decided, as a fixed identifier (the deletion metrics' `rule` label);
    /// `reason` says the same in words, with the figures.
    #[serde(skip)]
    pub rule: Rule,
}

/// The rule that decided an object's schedule: a fixed set, so that it can label metrics.
/// A legal hold only moves the date; the rule stays the one it moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Nothing is scheduled: the account is live, a hold without end stands, or the date
    /// falls after 9999.
    #[default]
    Kept,
    /// The grace period after termination (per kind or the policy's default).
    GracePeriod,
    /// Consent for the object's purpose was withdrawn or never given.
    ConsentWithdrawn,
    /// The Bookkeeping Act's period after the fiscal year.
    Bookkeeping,
    /// The backup schedule's keep-daily, -weekly or -monthly rotation.
    BackupSchedule,
    /// The backup schedule's limit after termination (`afterTermination`).
    BackupAfterTermination,
    /// An ErasureReceipt's own retention (`receipts.keepFor`).
    ReceiptKeepFor,
}

impl Rule {
    /// The identifier used in metrics and docs/metrics.md.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::GracePeriod => "grace-period",
            Self::ConsentWithdrawn => "consent-withdrawn",
            Self::Bookkeeping => "bookkeeping",
            Self::BackupSchedule => "backup-schedule",
            Self::BackupAfterTermination => "backup-after-termination",
            Self::ReceiptKeepFor => "receipt-keep-for",
        }
    }
}

/// What happens to a bound object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// Kept; nothing is scheduled.
    Keep,
    /// Erased at `deleteAt` because no legal basis remains.
    Erase,
    /// Kept after termination under a remaining legal basis (bookkeeping, the backup
    /// schedule) and erased at `deleteAt`.
    Retain,
    /// A backup of a live account, erased at `deleteAt` by the backup schedule.
    Expire,
}

/// How a planned schedule differs from the one stamped on the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleChange {
    /// The stamp already says what the plan says.
    Unchanged,
    /// Stamp (or re-stamp) the planned time.
    Set(DateTime<Utc>),
    /// Remove the stamp: the plan no longer schedules the object (e.g. reactivation).
    Cancel,
}

/// Compares the stamped schedule with the planned one.
///
/// ```
/// use retention_operator::retention::{ScheduleChange, schedule_change};
///
/// let at = "2026-12-01T00:00:00Z".parse().unwrap();
/// assert_eq!(schedule_change(None, Some(at)), ScheduleChange::Set(at));
/// assert_eq!(schedule_change(Some(at), Some(at)), ScheduleChange::Unchanged);
/// assert_eq!(schedule_change(Some(at), None), ScheduleChange::Cancel);
/// ```
pub fn schedule_change(
    stamped: Option<DateTime<Utc>>,
    planned: Option<DateTime<Utc>>,
) -> ScheduleChange {
    match (stamped, planned) {
        (stamped, Some(planned)) if stamped != Some(planned) => ScheduleChange::Set(planned),
        (Some(_), None) => ScheduleChange::Cancel,
        _ => ScheduleChange::Unchanged,
    }
}

/// The last instant RFC 3339 can write with its four-digit year, and so the last the API
/// server accepts in a date-time field: 9999-12-31T23:59:59Z.
///
/// A date computed from accepted input that falls after it schedules nothing for that object
/// (deleteAt absent, the reason says [`BEYOND_9999`]): stamping it would be refused (422) and
/// block the account, and it is later than any retention anyone can mean.
pub const LAST_INSTANT: DateTime<Utc> = match DateTime::from_timestamp(253_402_300_799, 0) {
    Some(last) => last,
    // Evaluated at compile time: the build fails if chrono cannot represent it.
    None => panic!("9999-12-31T23:59:59Z is representable"),
};

/// What a reason says when its rule's date falls after [`LAST_INSTANT`].
pub const BEYOND_9999: &str = "beyond 9999, nothing scheduled";

/// `at` when it is at or before [`LAST_INSTANT`], else `None` ("beyond 9999").
pub(crate) fn within_9999(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (at <= LAST_INSTANT).then_some(at)
}

/// `start + duration`, or `None` when the result falls after [`LAST_INSTANT`] (or overflows).
/// `None` means later than any date: it never wins a minimum.
pub(crate) fn after(start: DateTime<Utc>, duration: RetentionDuration) -> Option<DateTime<Utc>> {
    after_delta(start, duration.to_delta())
}

/// `start + delta`, or `None` when the result falls after [`LAST_INSTANT`] (or overflows).
pub(crate) fn after_delta(start: DateTime<Utc>, delta: Option<TimeDelta>) -> Option<DateTime<Utc>> {
    within_9999(start.checked_add_signed(delta?)?)
}

/// The rule for a hosted resource or data record, before any legal hold. `stamped` is the
/// schedule stamped on the object, if any (see withdrawn consent).
pub fn hosted_schedule(
    facts: &HostedFacts,
    stamped: Option<DateTime<Utc>>,
    situation: &AccountSituation,
    policy: &RetentionPolicySpec,
    consents: &BTreeMap<String, bool>,
    now: DateTime<Utc>,
) -> Schedule {
    // The Bookkeeping Act overrides both the customer's wishes and the grace period
    // (GDPR Art. 17(3)(b)), so it is decided first.
    if let Some(fiscal_year_end) = facts.fiscal_year_end {
        return bookkeeping_schedule(fiscal_year_end, situation, policy.bookkeeping.years);
    }
    // Without a purpose (the CRD's CEL rule forbids that) consent cannot be judged withdrawn:
    // a malformed object must never cause an early deletion, so only the other rules apply.
    if facts.legal_basis == LegalBasis::Consent
        && let Some(purpose) = facts.consent_purpose.as_deref()
        && !consents.get(purpose).copied().unwrap_or(false)
    {
        // Due from when the withdrawal was first seen: the time stamped on the object once it
        // has passed (the operator stamps the schedule the first time it applies), else now. A
        // due time that moved with `now` would be stamped again on every pass, and each stamp's
        // watch event would start the next pass.
        let first_seen = stamped.filter(|at| *at <= now).unwrap_or(now);
        // On a terminated account, a record already due by its grace period keeps that date.
        let by_grace = situation
            .termination
            .and_then(|t| after(t.at, policy.grace_for(facts.kind)));
        let delete_at = by_grace.map_or(first_seen, |at| at.min(first_seen));
        return Schedule {
            delete_at: Some(delete_at),
            reason: format!("consent for {purpose:?} not given or withdrawn: erase now"),
            legal_basis: LegalBasis::Consent,
            disposition: Disposition::Erase,
            rule: Rule::ConsentWithdrawn,
        };
    }
    let Some(termination) = situation.termination else {
        return kept_while_live(situation.state, facts.legal_basis);
    };
    let grace = policy.grace_for(facts.kind);
    let reason = if policy.grace_periods.get(facts.kind).is_some() {
        format!("grace period {grace} for {} after termination", facts.kind)
    } else {
        format!("grace period {grace} after termination")
    };
    match after(termination.at, grace) {
        Some(delete_at) => Schedule {
            delete_at: Some(delete_at),
            reason,
            legal_basis: facts.legal_basis,
            disposition: Disposition::Erase,
            rule: Rule::GracePeriod,
        },
        None => Schedule {
            delete_at: None,
            reason: format!("{reason}: {BEYOND_9999}"),
            legal_basis: facts.legal_basis,
            disposition: Disposition::Keep,
            rule: Rule::Kept,
        },
    }
}

fn kept_while_live(state: AccountState, legal_basis: LegalBasis) -> Schedule {
    let reason = match state {
        AccountState::Active => format!("account active: kept under {}", legal_basis.as_str()),
        AccountState::Suspended => {
            format!("account suspended: kept under {}", legal_basis.as_str())
        }
        // Only an Account stored before the schema required terminatedAt gets here.
        AccountState::Terminated => "account terminated without terminatedAt: nothing is \
                                     scheduled until the termination time is given"
            .to_owned(),
    };
    Schedule {
        delete_at: None,
        reason,
        legal_basis,
        disposition: Disposition::Keep,
        rule: Rule::Kept,
    }
}

/// Bookkeeping data is kept until the end of the `years`th calendar year after the one in which
/// its fiscal year ended (bokföringslagen 7 kap. 2 §) and erased at the first instant after;
/// `None` when that instant falls after [`LAST_INSTANT`].
///
/// ```
/// use chrono::NaiveDate;
/// use retention_operator::retention::schedule::bookkeeping_delete_at;
///
/// let fiscal_year_end = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
/// let delete_at = bookkeeping_delete_at(fiscal_year_end, 7).unwrap();
/// assert_eq!(delete_at.to_rfc3339(), "2034-01-01T00:00:00+00:00");
/// let end_of_time = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
/// assert_eq!(bookkeeping_delete_at(end_of_time, 7), None);
/// ```
pub fn bookkeeping_delete_at(fiscal_year_end: NaiveDate, years: u32) -> Option<DateTime<Utc>> {
    let year = fiscal_year_end
        .year()
        .checked_add(i32::try_from(years).ok()?)?
        .checked_add(1)?;
    within_9999(
        NaiveDate::from_ymd_opt(year, 1, 1)?
            .and_time(NaiveTime::MIN)
            .and_utc(),
    )
}

fn bookkeeping_schedule(
    fiscal_year_end: NaiveDate,
    situation: &AccountSituation,
    years: u32,
) -> Schedule {
    if situation.termination.is_none() {
        return kept_while_live(situation.state, LegalBasis::LegalObligation);
    }
    let delete_at = bookkeeping_delete_at(fiscal_year_end, years);
    let law = "Bookkeeping Act (1999:1078) 7 kap. 2 §";
    // Past 9999 the year it is kept through is not named: no year past 9999 in any output.
    let reason = match delete_at {
        Some(at) => format!(
            "{law}: fiscal year ended {fiscal_year_end}, kept through {} ({years} years)",
            at.year() - 1
        ),
        None => {
            format!("{law}: fiscal year ended {fiscal_year_end}, kept {years} years: {BEYOND_9999}")
        }
    };
    Schedule {
        delete_at,
        reason,
        legal_basis: LegalBasis::LegalObligation,
        disposition: Disposition::Retain,
        rule: Rule::Bookkeeping,
    }
}

/// Applies a legal hold: with `until`, nothing goes before it; without, nothing is scheduled.
/// An `until` after [`LAST_INSTANT`] (written with an offset that moves it into year 10000)
/// schedules nothing.
pub fn apply_hold(schedule: Schedule, hold: Option<Hold>) -> Schedule {
    match (hold, schedule.delete_at) {
        (None, _) | (Some(_), None) => schedule,
        (Some(Hold { until: None }), Some(_)) => Schedule {
            delete_at: None,
            reason: format!(
                "legal hold without end date: nothing is erased (otherwise: {})",
                schedule.reason
            ),
            disposition: Disposition::Keep,
            rule: Rule::Kept,
            ..schedule
        },
        (Some(Hold { until: Some(until) }), Some(delete_at)) if delete_at < until => {
            match within_9999(until) {
                Some(until) => Schedule {
                    delete_at: Some(until),
                    reason: format!(
                        "legal hold until {} (otherwise: {})",
                        crate::clock::rfc3339(until),
                        schedule.reason
                    ),
                    ..schedule
                },
                None => Schedule {
                    delete_at: None,
                    reason: format!(
                        "legal hold until a time {BEYOND_9999} (otherwise: {})",
                        schedule.reason
                    ),
                    disposition: Disposition::Keep,
                    rule: Rule::Kept,
                    ..schedule
                },
            }
        }
        (Some(_), Some(_)) => schedule,
    }
}
