//! The advance notice of deletions (the `DeletionUpcoming` events).

use chrono::{DateTime, TimeDelta, Utc};

use crate::kinds::ResourceKind;
use crate::retention::ResourcePlan;

/// What the advance notice says now (see [`announcements`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Announcements<'a> {
    /// Deletions to announce now, soonest first.
    pub now: Vec<&'a ResourcePlan>,
    /// Deletions due up to this time have been announced (`status.deletionsAnnouncedUntil`).
    pub announced_until: Option<DateTime<Utc>>,
    /// When the next deletion enters the notice period, to wake up for it.
    pub next_at: Option<DateTime<Utc>>,
}

/// Which deletions to announce `notice` ahead of time, given what is still bound and what was
/// announced before. Backups are not announced: their rotation is routine and would announce
/// something every day.
///
/// The stored `announced_until` is the only record, so a steady state writes nothing and a
/// restarted operator announces nothing twice. It is cleared when nothing is scheduled (a
/// reactivation, a legal hold without end), so a later schedule is announced afresh.
pub fn announcements<'a>(
    remaining: &[&'a ResourcePlan],
    announced_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    notice: TimeDelta,
) -> Announcements<'a> {
    let mut scheduled: Vec<(DateTime<Utc>, &'a ResourcePlan)> = remaining
        .iter()
        .filter(|r| r.resource.kind != ResourceKind::Backup)
        .filter_map(|r| r.schedule.delete_at.map(|at| (at, *r)))
        .collect();
    // Nothing scheduled, or notices turned off.
    if scheduled.is_empty() || notice <= TimeDelta::zero() {
        return Announcements {
            now: Vec::new(),
            announced_until: None,
            next_at: None,
        };
    }
    scheduled.sort_by(|a, b| (a.0, &a.1.resource).cmp(&(b.0, &b.1.resource)));
    let unannounced = |at: &DateTime<Utc>| announced_until.is_none_or(|until| *at > until);
    // When the notice period of a deletion at `at` starts (never, if that is before time
    // began: then it has always been in it).
    let notice_from = |at: DateTime<Utc>| at.checked_sub_signed(notice);
    let due: Vec<(DateTime<Utc>, &'a ResourcePlan)> = scheduled
        .iter()
        .copied()
        .filter(|(at, _)| *at > now && unannounced(at))
        .filter(|(at, _)| notice_from(*at).is_none_or(|from| from <= now))
        .collect();
    let announced_until = due.iter().map(|(at, _)| *at).max().max(announced_until);
    let next_at = scheduled
        .iter()
        .filter(|(at, _)| announced_until.is_none_or(|until| *at > until))
        .filter_map(|(at, _)| notice_from(*at))
        .filter(|from| *from > now)
        .min();
    Announcements {
        now: due.into_iter().map(|(_, r)| r).collect(),
        announced_until,
        next_at,
    }
}
