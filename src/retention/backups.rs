//! The backup schedule (docs/design.md §3): daily, weekly and monthly retention, capped after
//! termination.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, TimeDelta, Utc};

use super::{
    facts::{BackupFacts, BoundResource, ResourceFacts},
    schedule::{BEYOND_9999, Disposition, Rule, Schedule, after, after_delta, within_9999},
    situation::AccountSituation,
};
use crate::api::{BackupSchedule, BackupSource, LegalBasis};

/// A calendar period a backup can be the newest of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Period {
    /// ISO 8601 week: (ISO year, week number).
    IsoWeek(i32, u32),
    /// Calendar month: (year, month).
    Month(i32, u32),
}

impl Period {
    fn iso_week(t: DateTime<Utc>) -> Self {
        let week = t.iso_week();
        Self::IsoWeek(week.year(), week.week())
    }

    fn month(t: DateTime<Utc>) -> Self {
        Self::Month(t.year(), t.month())
    }
}

/// Backups compete for "newest of the period" only with backups of the same account,
/// namespace and source; the account is fixed by the caller.
type Group<'a> = (&'a str, &'a BackupSource, Period);

/// For each (group, period), the newest backup's (takenAt, name). Ties on takenAt go to the
/// greater name, so the answer does not depend on input order.
struct NewestIndex<'a>(BTreeMap<Group<'a>, (DateTime<Utc>, &'a str)>);

impl<'a> NewestIndex<'a> {
    fn build(backups: &[(&'a BoundResource, &'a BackupFacts)]) -> Self {
        let mut newest = BTreeMap::new();
        for &(resource, facts) in backups {
            let candidate = (facts.taken_at, resource.reference.name.as_str());
            for period in [
                Period::iso_week(facts.taken_at),
                Period::month(facts.taken_at),
            ] {
                let key = (resource.reference.namespace.as_str(), &facts.source, period);
                newest
                    .entry(key)
                    .and_modify(|best: &mut (DateTime<Utc>, &str)| {
                        if candidate > *best {
                            *best = candidate;
                        }
                    })
                    .or_insert(candidate);
            }
        }
        Self(newest)
    }

    fn is_newest(&self, resource: &BoundResource, facts: &BackupFacts, period: Period) -> bool {
        let key = (resource.reference.namespace.as_str(), &facts.source, period);
        self.0.get(&key).copied() == Some((facts.taken_at, resource.reference.name.as_str()))
    }
}

/// Schedules every backup among `bound` (other objects are skipped), in input order, before
/// any legal hold.
pub fn backup_schedules<'a>(
    bound: &'a [BoundResource],
    policy: &BackupSchedule,
    situation: &AccountSituation,
) -> Vec<(&'a BoundResource, Schedule)> {
    let backups: Vec<_> = bound
        .iter()
        .filter_map(|r| match &r.facts {
            ResourceFacts::Backup(facts) => Some((r, facts)),
            ResourceFacts::Hosted(_) => None,
        })
        .collect();
    let newest = NewestIndex::build(&backups);
    backups
        .iter()
        .map(|&(resource, facts)| {
            let (expires_at, reason) = expiry(resource, facts, policy, &newest);
            (
                resource,
                cap_after_termination(expires_at, reason, policy, situation),
            )
        })
        .collect()
}

/// The latest expiry of the rules that apply; `None` means after 9999-12-31T23:59:59Z, which
/// is later than any date.
fn expiry(
    resource: &BoundResource,
    facts: &BackupFacts,
    policy: &BackupSchedule,
    newest: &NewestIndex<'_>,
) -> (Option<DateTime<Utc>>, String) {
    let taken = facts.taken_at;
    // A takenAt written with an offset can land in year 10000 in UTC: every rule's date is
    // later still, and its week and month would name that year.
    if within_9999(taken).is_none() {
        return (None, "backup taken after 9999".to_owned());
    }
    let mut candidates = vec![(
        after_delta(taken, TimeDelta::try_days(policy.keep_daily.into())),
        format!("daily backup kept {}d", policy.keep_daily),
    )];
    let iso = taken.iso_week();
    if newest.is_newest(resource, facts, Period::IsoWeek(iso.year(), iso.week())) {
        let (year, number) = (iso.year(), iso.week());
        candidates.push((
            after_delta(taken, TimeDelta::try_weeks(policy.keep_weekly.into())),
            format!(
                "newest backup of ISO week {year}-W{number:02} kept {}w",
                policy.keep_weekly
            ),
        ));
    }
    if newest.is_newest(resource, facts, Period::month(taken)) {
        let (year, number) = (taken.year(), taken.month());
        candidates.push((
            taken
                .checked_add_months(Months::new(policy.keep_monthly))
                .and_then(within_9999),
            format!(
                "newest backup of {year}-{number:02} kept {}",
                months(policy.keep_monthly)
            ),
        ));
    }
    // `None` sorts first in Option's order, but here it means "beyond 9999", the latest of all.
    candidates
        .into_iter()
        .max_by_key(|(at, _)| at.map_or((1, DateTime::<Utc>::MIN_UTC), |t| (0, t)))
        .unwrap_or((None, String::new()))
}

/// A number of calendar months, the unit agreeing with it ("1 month", "6 months").
fn months(count: u32) -> String {
    if count == 1 {
        "1 month".to_owned()
    } else {
        format!("{count} months")
    }
}

/// The schedule of a backup: its expiry, after termination no later than T + afterTermination.
/// A side that falls after 9999 is `None` and never wins the minimum; when both do, nothing is
/// scheduled.
fn cap_after_termination(
    expires_at: Option<DateTime<Utc>>,
    reason: String,
    policy: &BackupSchedule,
    situation: &AccountSituation,
) -> Schedule {
    let reason = match expires_at {
        Some(_) => reason,
        None => format!("{reason}: {BEYOND_9999}"),
    };
    let live = Schedule {
        delete_at: expires_at,
        reason,
        legal_basis: LegalBasis::LegitimateInterest,
        disposition: Disposition::Expire,
        rule: if expires_at.is_some() {
            Rule::BackupSchedule
        } else {
            Rule::Kept
        },
    };
    let Some(termination) = situation.termination else {
        return live;
    };
    let retained = Schedule {
        disposition: Disposition::Retain,
        ..live
    };
    let cap = policy
        .after_termination
        .and_then(|limit| Some((after(termination.at, limit)?, limit)));
    match (cap, retained.delete_at) {
        (Some((cap_at, limit)), expires) if expires.is_none_or(|e| cap_at < e) => Schedule {
            delete_at: Some(cap_at),
            reason: format!("{}, capped at {limit} after termination", retained.reason),
            rule: Rule::BackupAfterTermination,
            ..retained
        },
        _ => retained,
    }
}
