//! The mass-deletion brake, as a pure function: given the policy's stored count, the
//! deletions waiting to be admitted and what became of the deletions admitted before, it
//! decides which accounts may go now and gives the count to store.
//!
//! The count lives in the RetentionPolicy's status so that a restart or a new leader cannot
//! reset it. A deletion is counted *before* it is made: its uid is stored among the admitted
//! ones, and a DELETE goes only for a uid the API server's copy of the policy shows admitted.
//! The next write moves admitted uids whose objects are gone into the count; one still
//! standing that nobody wants any more is released. So a crash never lets more than
//! `maxDeletions` go, and never loses budget for what it did not delete: the replica that
//! takes over carries the admitted uids still wanted into its own admission.
//!
//! Admission is by account, whole: the due objects one pass of an account would delete are
//! admitted together or not at all, so the brake never leaves an account half-erased. When the
//! next account does not fit, the brake engages and stays engaged — the window sliding on does
//! not release it — until a person releases it ([`crate::api::BRAKE_RELEASED_AT`], a time after
//! the engagement) or raises the limit.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use crate::api::{
    AdmittedAccount, AdmittedDeletions, BRAKE_RELEASED_AT, BrakeEngagement, BrakeSpec, BrakeStatus,
    CountedDeletions, RetentionPolicy,
};

/// A RetentionPolicy's brake as stored: its release annotation and its status's count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrakeState {
    /// The time the release annotation holds, if it holds one.
    pub released_at: Option<DateTime<Utc>>,
    /// The count in its status.
    pub status: BrakeStatus,
}

impl BrakeState {
    /// The brake state of a policy object.
    pub fn of(policy: &RetentionPolicy) -> Self {
        Self {
            released_at: released_at(policy),
            status: policy
                .status
                .as_ref()
                .and_then(|s| s.brake.clone())
                .unwrap_or_default(),
        }
    }
}

/// The release time a policy's annotation ([`BRAKE_RELEASED_AT`]) holds; a value that is not
/// an RFC 3339 time releases nothing.
pub fn released_at(policy: &RetentionPolicy) -> Option<DateTime<Utc>> {
    let value = policy
        .metadata
        .annotations
        .as_ref()?
        .get(BRAKE_RELEASED_AT)?;
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What a policy's brake would do with everything due now under it, if the operator started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrakePreview {
    /// The policy.
    pub policy: String,
    /// Its brake.
    pub limit: BrakeSpec,
    /// Due deletions that would count (not approved by a release, not suspended).
    pub due: u64,
    /// Deletions the stored count has left before the limit.
    pub room: u64,
}

impl BrakePreview {
    /// Whether the brake would engage (or stays engaged).
    pub fn engages(&self) -> bool {
        self.due > self.room
    }
}

/// The preview of each policy's brake, for `plan`: due deletions that count against what is
/// left of its limit. An engaged brake has no room until it is released.
pub fn preview(
    policies: &BTreeMap<String, crate::api::RetentionPolicySpec>,
    brakes: &BTreeMap<String, BrakeState>,
    due_by_policy: &BTreeMap<String, Vec<Option<DateTime<Utc>>>>,
    now: DateTime<Utc>,
) -> Vec<BrakePreview> {
    due_by_policy
        .iter()
        .filter_map(|(name, due)| {
            let limit = policies.get(name)?.brake_or_default();
            let state = brakes.get(name).cloned().unwrap_or_default();
            let counting = due
                .iter()
                .filter(|at| !at.is_some_and(|at| approved_by_release(at, state.released_at, now)))
                .count() as u64;
            let engaged = state
                .status
                .engaged
                .as_ref()
                .is_some_and(|e| !released(e, &limit, state.released_at, now));
            let counted = counted_in_window(&state.status, &limit, state.released_at, now);
            let room = if engaged {
                0
            } else {
                u64::from(limit.max_deletions.saturating_sub(counted))
            };
            Some(BrakePreview {
                policy: name.clone(),
                limit,
                due: counting,
                room,
            })
        })
        .collect()
}

/// The most uids one write admits, so that the status stays small (about 40 bytes a uid).
pub const MAX_ADMITTED_PER_WRITE: usize = 2_000;

/// How long an admitted uid of uncertain fate (a replica that may have deleted it is gone, or
/// its DELETE failed without an answer) is kept counted while its object still stands. Long
/// after any watch has caught up with a deletion: an object that still stands then was not
/// deleted.
pub const UNCERTAIN_FOR: TimeDelta = TimeDelta::minutes(10);

/// The finest grain of the stored count: deletions counted within a sixtieth of the window
/// (and no less than 10 s) share one entry, so the status holds about 60 entries whatever
/// the window.
fn grain(per: TimeDelta) -> TimeDelta {
    (per / 60).max(TimeDelta::seconds(10))
}

/// Whether two times fall in the same slot of `grain` (counted from the epoch): deletions
/// counted in one slot share an entry, stamped with the latest time (so each counts a little
/// longer, never shorter).
fn same_slot(a: DateTime<Utc>, b: DateTime<Utc>, grain: TimeDelta) -> bool {
    let grain = grain.num_seconds().max(1);
    a.timestamp().div_euclid(grain) == b.timestamp().div_euclid(grain)
}

/// One account's due objects waiting for admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demand {
    /// The Account's name.
    pub account: String,
    /// The uids its next pass would delete.
    pub uids: Vec<String>,
    /// The earliest deleteAt among them: overdue accounts go first.
    pub due_since: DateTime<Utc>,
    /// Not due yet, but due before the next write: admitted if it fits, never a reason to
    /// engage the brake.
    pub expected: bool,
}

/// What became of an admitted uid, as the writing replica knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Its object is gone: deleted, or no longer in the caches.
    Gone,
    /// Its object stands, and this replica admitted it and sent no DELETE for it that may
    /// have gone through.
    Standing,
    /// Its object stands in the caches, but a DELETE for it may have gone through (another
    /// replica admitted it, or a DELETE of ours got no answer).
    Uncertain,
}

/// The inputs of one write of the brake's count.
#[derive(Debug)]
pub struct BrakeRound<'a> {
    /// The brake in force.
    pub limit: BrakeSpec,
    /// The release annotation's time, if any.
    pub released_at: Option<DateTime<Utc>>,
    /// The stored count.
    pub previous: &'a BrakeStatus,
    /// This operator process.
    pub holder: &'a str,
    /// The accounts waiting, in the order they should go.
    pub demand: &'a [Demand],
    /// The fate of each stored admitted uid (absent: [`Fate::Uncertain`]).
    pub fates: &'a BTreeMap<String, Fate>,
    /// The time.
    pub now: DateTime<Utc>,
}

/// How the brake changed in a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrakeChange {
    /// It engaged.
    Engaged,
    /// A person released it (annotation or raised limit).
    Released,
}

/// The decision of one round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrakeDecision {
    /// The count to store.
    pub status: BrakeStatus,
    /// The accounts whose whole demand is admitted.
    pub admitted: BTreeSet<String>,
    /// Deletions counted in the window, admitted ones included.
    pub counted: u32,
    /// Due deletions that wait (not admitted this round).
    pub waiting: u32,
    /// Whether it engaged or was released.
    pub change: Option<BrakeChange>,
}

impl BrakeDecision {
    /// Whether the brake is engaged after this round.
    pub fn engaged(&self) -> bool {
        self.status.engaged.is_some()
    }
}

/// The window as a delta; a window too long to represent counts everything ever stored.
fn window(limit: &BrakeSpec) -> TimeDelta {
    limit.per.to_delta().unwrap_or(TimeDelta::MAX)
}

/// The release that counts at `now`: a release annotated for a later time counts from then.
pub fn effective_release(
    released_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    released_at.filter(|at| *at <= now)
}

/// Whether an object due at `delete_at` was approved by a release: everything due at or
/// before the release time goes without counting.
pub fn approved_by_release(
    delete_at: DateTime<Utc>,
    released_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    effective_release(released_at, now).is_some_and(|release| delete_at <= release)
}

/// Whether a person released an engagement: a release time after it (and not in the
/// future), or a brake changed since.
pub fn released(
    engagement: &BrakeEngagement,
    limit: &BrakeSpec,
    released_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    effective_release(released_at, now).is_some_and(|release| release > engagement.at)
        || engagement.max_deletions != limit.max_deletions
        || engagement.per != limit.per
}

/// Every uid the status holds as admitted.
pub fn admitted_uids(status: &BrakeStatus) -> impl Iterator<Item = &str> {
    status
        .admitted
        .iter()
        .flat_map(|group| group.accounts.iter())
        .flat_map(|account| account.uids.iter().map(String::as_str))
}

/// The deletions the stored status counts within the window at `now`.
pub fn counted_in_window(
    status: &BrakeStatus,
    limit: &BrakeSpec,
    released_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> u32 {
    let floor = floor(limit, released_at, now);
    let counted: u32 = status
        .counted
        .iter()
        .filter(|c| floor.is_none_or(|floor| c.at > floor))
        .map(|c| c.count)
        .fold(0, u32::saturating_add);
    let admitted = u32::try_from(admitted_uids(status).count()).unwrap_or(u32::MAX);
    counted.saturating_add(admitted)
}

/// Deletions counted at or before this time no longer count.
fn floor(
    limit: &BrakeSpec,
    released_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let slid = now.checked_sub_signed(window(limit));
    match (slid, effective_release(released_at, now)) {
        (Some(slid), Some(release)) => Some(slid.max(release)),
        (slid, release) => slid.or(release),
    }
}

/// Decides one round of the brake.
pub fn decide(round: &BrakeRound<'_>) -> BrakeDecision {
    let BrakeRound { limit, now, .. } = *round;
    let settled = settle(round);
    let counted = count_made(round, settled.gone);
    let mut change = None;
    let mut engaged = round.previous.engaged.clone();
    if let Some(engagement) = &engaged
        && released(engagement, &limit, round.released_at, now)
    {
        engaged = None;
        change = Some(BrakeChange::Released);
    }
    let kept_count: usize = settled
        .kept
        .iter()
        .flat_map(|g| &g.accounts)
        .map(|a| a.uids.len())
        .sum();
    let made: u32 = counted.iter().map(|c| c.count).fold(0, u32::saturating_add);
    let mut queue = Queue {
        count: u64::from(made) + (settled.carried.len() + kept_count) as u64,
        engaged,
        change,
        ..Queue::default()
    };
    for demand in round.demand {
        queue.offer(round, demand, &settled.carried);
    }
    let waiting = u32::try_from(queue.waiting).unwrap_or(u32::MAX);
    if let Some(engagement) = queue.engaged.as_mut()
        && queue.change == Some(BrakeChange::Engaged)
    {
        engagement.waiting = waiting;
    }
    let mut accounts = queue.accounts;
    accounts.extend(leftover(round.demand, &settled.carried, &accounts));
    let mut groups = settled.kept;
    if !accounts.is_empty() {
        groups.push(AdmittedDeletions {
            at: now,
            holder: round.holder.to_owned(),
            accounts,
        });
    }
    BrakeDecision {
        status: BrakeStatus {
            counted,
            admitted: groups,
            engaged: queue.engaged,
        },
        admitted: queue.admitted,
        counted: u32::try_from(queue.count).unwrap_or(u32::MAX),
        waiting,
        change: queue.change,
    }
}

/// What became of the admissions stored before.
struct Settled<'a> {
    /// Wanted again: carried into this round's admission, counted once.
    carried: HashSet<&'a str>,
    /// Of uncertain fate: kept as they were, still counted.
    kept: Vec<AdmittedDeletions>,
    /// Gone since: counted as made now.
    gone: u32,
}

/// Settles what was admitted before: wanted again → carried into this admission; gone →
/// counted (unless a release approved it); standing and ours → released; uncertain → kept
/// counted for a while.
fn settle<'a>(round: &BrakeRound<'a>) -> Settled<'a> {
    let now = round.now;
    let wanted: HashSet<&str> = round
        .demand
        .iter()
        .flat_map(|d| d.uids.iter().map(String::as_str))
        .collect();
    let release = effective_release(round.released_at, now);
    let mut settled = Settled {
        carried: HashSet::new(),
        kept: Vec::new(),
        gone: 0,
    };
    for group in &round.previous.admitted {
        // A release approves what was admitted before it: counting starts again.
        let approved = release.is_some_and(|release| group.at <= release);
        let mut accounts = Vec::new();
        for account in &group.accounts {
            let mut uids = Vec::new();
            for uid in &account.uids {
                if wanted.contains(uid.as_str()) {
                    settled.carried.insert(uid);
                    continue;
                }
                match round.fates.get(uid).copied().unwrap_or(Fate::Uncertain) {
                    Fate::Gone if approved => {}
                    Fate::Gone => settled.gone = settled.gone.saturating_add(1),
                    Fate::Standing => {}
                    Fate::Uncertain if now - group.at > UNCERTAIN_FOR => {}
                    Fate::Uncertain => uids.push(uid.clone()),
                }
            }
            if !uids.is_empty() {
                accounts.push(AdmittedAccount {
                    account: account.account.clone(),
                    uids,
                });
            }
        }
        if !accounts.is_empty() {
            settled.kept.push(AdmittedDeletions {
                at: group.at,
                holder: group.holder.clone(),
                accounts,
            });
        }
    }
    settled
}

/// The stored count of deletions made: what is still within the window (and after a
/// release), with `gone` added now.
fn count_made(round: &BrakeRound<'_>, gone: u32) -> Vec<CountedDeletions> {
    let (limit, now) = (round.limit, round.now);
    let floor = floor(&limit, round.released_at, now);
    let mut counted: Vec<CountedDeletions> = round
        .previous
        .counted
        .iter()
        .filter(|c| floor.is_none_or(|floor| c.at > floor))
        .cloned()
        .collect();
    if gone > 0 {
        match counted.last_mut() {
            Some(last) if same_slot(last.at, now, grain(window(&limit))) => {
                last.at = now;
                last.count = last.count.saturating_add(gone);
            }
            _ => counted.push(CountedDeletions {
                at: now,
                count: gone,
            }),
        }
    }
    counted
}

/// The admission of the accounts in their order.
#[derive(Default)]
struct Queue {
    /// Deletions counted so far, admitted ones included.
    count: u64,
    engaged: Option<BrakeEngagement>,
    change: Option<BrakeChange>,
    /// The accounts admitted whole.
    admitted: BTreeSet<String>,
    /// Their objects.
    accounts: Vec<AdmittedAccount>,
    /// Uids admitted this round that were not carried.
    new_uids: usize,
    /// Due deletions not admitted.
    waiting: u64,
    /// Once an account waits, the ones after it wait too: accounts keep their order.
    stopped: bool,
}

impl Queue {
    fn offer(&mut self, round: &BrakeRound<'_>, demand: &Demand, carried: &HashSet<&str>) {
        let max = u64::from(round.limit.max_deletions);
        let need = demand
            .uids
            .iter()
            .filter(|u| !carried.contains(u.as_str()))
            .count();
        let open = !self.stopped && self.engaged.is_none();
        // Already counted in full (carried from an earlier admission): it may go, engaged or
        // not.
        let fits = need == 0
            || (open
                && self.count + need as u64 <= max
                && self.new_uids + need <= MAX_ADMITTED_PER_WRITE);
        if fits {
            self.count += need as u64;
            self.new_uids += need;
            self.admitted.insert(demand.account.clone());
            self.accounts.push(AdmittedAccount {
                account: demand.account.clone(),
                uids: demand.uids.clone(),
            });
            return;
        }
        if demand.expected {
            // Its pass asks again when it falls due, and counts then.
            return;
        }
        self.waiting += demand.uids.len() as u64;
        if open && self.count + need as u64 > max {
            self.engaged = Some(BrakeEngagement {
                at: round.now,
                count: u32::try_from(self.count).unwrap_or(u32::MAX),
                max_deletions: round.limit.max_deletions,
                per: round.limit.per,
                waiting: 0,
            });
            // Released and engaged again in one round: the person sees the engagement.
            self.change = Some(BrakeChange::Engaged);
        }
        self.stopped = true;
    }
}

/// Carried uids of accounts not admitted: they stay counted under the new holder too (still
/// wanted; the next round settles them).
fn leftover(
    demand: &[Demand],
    carried: &HashSet<&str>,
    admitted: &[AdmittedAccount],
) -> Vec<AdmittedAccount> {
    let admitted: HashSet<&str> = admitted
        .iter()
        .flat_map(|a| a.uids.iter().map(String::as_str))
        .collect();
    let mut leftover: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for demand in demand {
        for uid in &demand.uids {
            if carried.contains(uid.as_str()) && !admitted.contains(uid.as_str()) {
                leftover
                    .entry(demand.account.as_str())
                    .or_default()
                    .push(uid.clone());
            }
        }
    }
    leftover
        .into_iter()
        .map(|(account, uids)| AdmittedAccount {
            account: account.to_owned(),
            uids,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn limit(max: u32) -> BrakeSpec {
        BrakeSpec {
            max_deletions: max,
            per: "1h".parse().unwrap(),
        }
    }

    /// Accounts `a0`, `a1`, ... with `per_account` uids each (`a0-0`, `a0-1`, ...).
    fn demand(accounts: usize, per_account: usize) -> Vec<Demand> {
        (0..accounts)
            .map(|a| Demand {
                account: format!("a{a}"),
                uids: (0..per_account).map(|u| format!("a{a}-{u}")).collect(),
                due_since: at("2026-01-01T00:00:00Z"),
                expected: false,
            })
            .collect()
    }

    fn round<'a>(
        limit: BrakeSpec,
        previous: &'a BrakeStatus,
        demand: &'a [Demand],
        fates: &'a BTreeMap<String, Fate>,
        now: &str,
    ) -> BrakeRound<'a> {
        BrakeRound {
            limit,
            released_at: None,
            previous,
            holder: "me",
            demand,
            fates,
            now: at(now),
        }
    }

    /// The first round of a brake of `max` (1 h) from an empty count, at 10:00.
    fn first(max: u32, demand: &[Demand]) -> BrakeDecision {
        decide(&round(
            limit(max),
            &BrakeStatus::default(),
            demand,
            &BTreeMap::new(),
            "2026-01-01T10:00:00Z",
        ))
    }

    fn gone_all(status: &BrakeStatus) -> BTreeMap<String, Fate> {
        admitted_uids(status)
            .map(|u| (u.to_owned(), Fate::Gone))
            .collect()
    }

    #[test]
    fn whole_accounts_are_admitted_up_to_the_limit_and_the_next_engages_the_brake() {
        let decision = first(300, &demand(100, 10));
        assert_eq!(decision.admitted.len(), 30);
        assert_eq!(decision.counted, 300);
        assert_eq!(decision.waiting, 700);
        assert_eq!(decision.change, Some(BrakeChange::Engaged));
        let engagement = decision.status.engaged.clone().unwrap();
        assert_eq!((engagement.count, engagement.waiting), (300, 700));
        assert_eq!(admitted_uids(&decision.status).count(), 300);
    }

    #[test]
    fn an_account_that_does_not_fit_whole_waits_and_engages_the_brake() {
        let decision = first(10, &demand(3, 4));
        assert_eq!(
            decision.admitted.len(),
            2,
            "8 of 10: the third (4) would tear"
        );
        assert_eq!(decision.counted, 8);
        assert!(decision.engaged());
    }

    #[test]
    fn deletions_made_are_counted_and_fall_out_of_the_window_but_the_engagement_holds() {
        let fates = BTreeMap::new();
        let first = decide(&round(
            limit(300),
            &BrakeStatus::default(),
            &demand(30, 10),
            &fates,
            "2026-01-01T10:00:00Z",
        ));
        assert!(!first.engaged());
        // All 300 went; the next round counts them as made.
        let fates = gone_all(&first.status);
        let more = demand(31, 10)[30..].to_vec();
        let second = decide(&round(
            limit(300),
            &first.status,
            &more,
            &fates,
            "2026-01-01T10:00:10Z",
        ));
        assert!(second.engaged());
        assert_eq!(
            second.status.counted.iter().map(|c| c.count).sum::<u32>(),
            300
        );
        assert_eq!(admitted_uids(&second.status).count(), 0);
        // Two hours on the window is empty, but the brake waits for a person.
        let later = decide(&round(
            limit(300),
            &second.status,
            &more,
            &BTreeMap::new(),
            "2026-01-01T12:00:10Z",
        ));
        assert!(later.engaged());
        assert!(later.admitted.is_empty());
        assert_eq!(later.counted, 0);
        assert_eq!(later.change, None);
    }

    #[test]
    fn a_release_after_the_engagement_resumes_and_restarts_the_count_but_an_older_one_does_not() {
        let engaged = first(10, &demand(3, 5));
        assert!(engaged.engaged());
        let fates = gone_all(&engaged.status);
        let rest = demand(3, 5)[2..].to_vec();
        let mut stale = round(
            limit(10),
            &engaged.status,
            &rest,
            &fates,
            "2026-01-01T10:05:00Z",
        );
        stale.released_at = Some(at("2026-01-01T09:00:00Z"));
        assert!(decide(&stale).engaged(), "a release before the engagement");
        let mut future = stale;
        future.released_at = Some(at("2026-01-01T11:00:00Z"));
        assert!(decide(&future).engaged(), "a release in the future");
        let mut release = future;
        release.released_at = Some(at("2026-01-01T10:01:00Z"));
        let released = decide(&release);
        assert_eq!(released.change, Some(BrakeChange::Released));
        assert_eq!(released.admitted.len(), 1);
        assert_eq!(
            released.counted, 5,
            "deletions before the release no longer count"
        );
    }

    #[test]
    fn raising_the_limit_releases_the_brake() {
        let engaged = first(10, &demand(3, 5));
        let fates = gone_all(&engaged.status);
        let rest = demand(3, 5)[2..].to_vec();
        let raised = decide(&round(
            limit(20),
            &engaged.status,
            &rest,
            &fates,
            "2026-01-01T10:05:00Z",
        ));
        assert_eq!(raised.change, Some(BrakeChange::Released));
        assert_eq!(raised.counted, 15);
        assert!(!raised.engaged());
    }

    #[test]
    fn a_takeover_carries_the_admitted_uids_still_wanted_and_never_counts_them_twice() {
        // The old holder admitted 30 accounts and died before deleting any.
        let first = first(300, &demand(100, 10));
        assert_eq!(first.admitted.len(), 30);
        // The new holder sees them standing (uncertain: not its own) and wants them all.
        let no_fates = BTreeMap::new();
        let mut takeover = round(
            limit(300),
            &first.status,
            &[],
            &no_fates,
            "2026-01-01T10:01:00Z",
        );
        takeover.holder = "new";
        let all = demand(100, 10);
        takeover.demand = &all;
        let decision = decide(&takeover);
        assert_eq!(decision.admitted.len(), 30, "the same 30, not fewer");
        assert_eq!(decision.counted, 300);
        assert!(decision.engaged());
        assert_eq!(decision.status.admitted.len(), 1);
        assert_eq!(decision.status.admitted[0].holder, "new");
    }

    #[test]
    fn a_standing_uid_of_our_own_is_released_an_uncertain_one_is_kept_for_a_while() {
        let first = first(10, &demand(2, 2));
        let fates: BTreeMap<String, Fate> = [
            ("a0-0".to_owned(), Fate::Standing),
            ("a0-1".to_owned(), Fate::Gone),
            ("a1-0".to_owned(), Fate::Uncertain),
        ]
        .into();
        let second = decide(&round(
            limit(10),
            &first.status,
            &[],
            &fates,
            "2026-01-01T10:00:10Z",
        ));
        // a1-1 has no fate given: uncertain too.
        assert_eq!(second.counted, 3, "one gone, two uncertain");
        let kept: Vec<&str> = admitted_uids(&second.status).collect();
        assert_eq!(kept, ["a1-0", "a1-1"]);
        let third = decide(&round(
            limit(10),
            &second.status,
            &[],
            &fates,
            "2026-01-01T10:20:00Z",
        ));
        assert_eq!(
            third.counted, 1,
            "uncertain for 20 min and still standing: not deleted"
        );
    }

    #[test]
    fn counts_share_entries_within_a_sixtieth_of_the_window() {
        let mut status = BrakeStatus::default();
        let mut now = at("2026-01-01T10:00:00Z");
        for _ in 0..1000 {
            let demand = vec![Demand {
                account: "a".into(),
                uids: vec![format!("u{}", now.timestamp())],
                due_since: now,
                expected: false,
            }];
            let fates = gone_all(&status);
            let decision = decide(&BrakeRound {
                limit: limit(1_000_000),
                released_at: None,
                previous: &status,
                holder: "me",
                demand: &demand,
                fates: &fates,
                now,
            });
            status = decision.status;
            now += TimeDelta::seconds(10);
        }
        assert!(
            status.counted.len() <= 61,
            "{} entries",
            status.counted.len()
        );
        // 360 made within the hour (one every 10 s), one admitted, and at most one slot of 60 s
        // (6) counted a little longer.
        let counted = counted_in_window(&status, &limit(1_000_000), None, now);
        assert!((361..=367).contains(&counted), "{counted}");
    }

    #[test]
    fn objects_due_at_or_before_an_effective_release_are_approved() {
        let now = at("2026-01-01T10:00:00Z");
        let release = Some(at("2026-01-01T09:00:00Z"));
        assert!(approved_by_release(
            at("2026-01-01T09:00:00Z"),
            release,
            now
        ));
        assert!(!approved_by_release(
            at("2026-01-01T09:00:01Z"),
            release,
            now
        ));
        assert!(!approved_by_release(
            at("2026-01-01T08:00:00Z"),
            Some(at("2026-01-01T11:00:00Z")),
            now
        ));
        assert!(!approved_by_release(at("2026-01-01T08:00:00Z"), None, now));
    }
}
