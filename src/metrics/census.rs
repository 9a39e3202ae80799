//! The gauges an SRE alerts on, counted at scrape time from what the acting replica holds:
//! Accounts by phase and by condition, erasure requests by state, policies suspended (from its
//! caches of the cluster's objects, so they say what `kubectl get` would), and the scheduled
//! deletions that are pending, overdue or held back by a suspend (from the schedules its
//! passes recorded, compared with the clock at the scrape, so a deletion whose pass never
//! comes still shows as overdue).
//!
//! Counting at the scrape rather than on every pass costs one walk of the caches per scrape
//! (a few milliseconds for 10,000 Accounts) and cannot drift from the objects: no pass has to
//! remember to update a gauge, and an Account changed by someone else is counted as it is.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::PolicyLabels;
use crate::api::{AccountStatus, ConditionStatus, NotificationState};
use crate::clock::Clock;
use crate::shard::Shard;
use crate::status as conditions;

/// Phase label of an Account whose status has no phase yet (never planned).
pub const NO_PHASE: &str = "Unknown";
/// Phase label of an Account that does not match this operator's schema: its status cannot
/// be read from the cache, and nothing bound to it is erased until it is corrected.
pub const UNREADABLE: &str = "Unreadable";

/// Every condition type the operator sets on an Account: the label values of
/// `retention_operator_account_conditions`. A type outside this list (another controller's)
/// is not counted, which keeps the label set fixed.
const CONDITION_TYPES: [&str; 10] = conditions::ACCOUNT_CONDITION_TYPES;

/// What one scrape counts among the cached objects.
#[derive(Debug, Default, PartialEq)]
pub struct Census {
    /// Accounts by phase.
    pub phases: BTreeMap<&'static str, i64>,
    /// Accounts by condition type and status.
    pub conditions: BTreeMap<(&'static str, &'static str), i64>,
    /// Erasure requests by state.
    pub requests: BTreeMap<&'static str, i64>,
    /// Per state, when the oldest request in it was first owed. Acknowledged requests are
    /// done, so they have none.
    pub oldest_request: BTreeMap<&'static str, DateTime<Utc>>,
    /// Each RetentionPolicy, and whether it is suspended.
    pub policies: BTreeMap<String, bool>,
}

impl Census {
    /// Counts an Account by its status (`None`: not written yet).
    pub fn add_account(&mut self, status: Option<&AccountStatus>) {
        let phase = status
            .and_then(|s| s.phase)
            .map_or(NO_PHASE, |phase| phase.as_str());
        *self.phases.entry(phase).or_default() += 1;
        let Some(status) = status else { return };
        for condition in &status.conditions {
            let Some(type_) = CONDITION_TYPES
                .into_iter()
                .find(|known| *known == condition.type_)
            else {
                continue;
            };
            let status = match condition.status {
                ConditionStatus::True => "True",
                ConditionStatus::False => "False",
                ConditionStatus::Unknown => "Unknown",
            };
            *self.conditions.entry((type_, status)).or_default() += 1;
        }
        for request in &status.processors {
            let state = request_state(request.state);
            *self.requests.entry(state).or_default() += 1;
            if request.state == NotificationState::Acknowledged {
                continue;
            }
            if let Some(owed) = request.requested_at {
                self.oldest_request
                    .entry(state)
                    .and_modify(|oldest| *oldest = (*oldest).min(owed))
                    .or_insert(owed);
            }
        }
    }

    /// Counts an Account that does not match the schema.
    pub fn add_unreadable_account(&mut self) {
        *self.phases.entry(UNREADABLE).or_default() += 1;
    }

    /// Counts a RetentionPolicy.
    pub fn add_policy(&mut self, name: &str, suspended: bool) {
        self.policies.insert(name.to_owned(), suspended);
    }
}

/// The label value of a request state: the name the Account's status shows.
fn request_state(state: NotificationState) -> &'static str {
    match state {
        NotificationState::Pending => "Pending",
        NotificationState::Notified => "Notified",
        NotificationState::Acknowledged => "Acknowledged",
        NotificationState::Failed => "Failed",
        NotificationState::Manual => "Manual",
    }
}

/// The scheduled deletions of one Account as its last pass planned them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduledDeletions {
    /// The deleteAt of every object still bound with a deletion scheduled.
    pub delete_at: Vec<DateTime<Utc>>,
    /// Whether a suspended RetentionPolicy holds them back.
    pub suspended: bool,
}

/// The deletion gauges at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeletionCounts {
    /// Scheduled and not yet done.
    pub pending: usize,
    /// Due at the instant and not done, not counting those a suspend holds back.
    pub overdue: usize,
    /// Due at the instant and held back by a suspend.
    pub suspended_due: usize,
}

/// Counts the deletions of every Account against `now`.
pub fn count_deletions<'a>(
    accounts: impl IntoIterator<Item = &'a ScheduledDeletions>,
    now: DateTime<Utc>,
) -> DeletionCounts {
    let mut counts = DeletionCounts::default();
    for account in accounts {
        counts.pending += account.delete_at.len();
        let due = account.delete_at.iter().filter(|at| **at <= now).count();
        if account.suspended {
            counts.suspended_due += due;
        } else {
            counts.overdue += due;
        }
    }
    counts
}

/// Fills a [`Census`] from the acting replica's caches.
pub type CensusTaker = Box<dyn Fn(&mut Census) + Send + Sync>;

/// What the acting replica lends the gauges while it acts (one per shard it holds).
struct Live {
    shard: Shard,
    take_census: CensusTaker,
    clock: Arc<dyn Clock>,
}

/// The collector of the gauges of this module, registered once; it counts nothing until a
/// controller goes live ([`CensusGauges::go_live`]) and nothing again once it stops, so a
/// standby replica shows empty families (and `retention_operator_leader` 0).
#[derive(Default)]
pub struct CensusGauges {
    live: Mutex<Vec<Live>>,
    scheduled: Mutex<HashMap<String, ScheduledDeletions>>,
}

impl fmt::Debug for CensusGauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CensusGauges").finish_non_exhaustive()
    }
}

impl CensusGauges {
    /// From now on the gauges also count what `take_census` finds for `shard` and compare
    /// the schedules with `clock`.
    pub fn go_live(&self, shard: Shard, take_census: CensusTaker, clock: Arc<dyn Clock>) {
        self.go_standby(shard);
        lock(&self.live).push(Live {
            shard,
            take_census,
            clock,
        });
    }

    /// Stops counting `shard` and forgets its schedules: the next replica to act for it
    /// counts afresh.
    pub fn go_standby(&self, shard: Shard) {
        lock(&self.live).retain(|live| live.shard != shard);
        lock(&self.scheduled).retain(|account, _| !shard.owns(account));
    }

    /// Records the scheduled deletions of `account` as its pass planned them.
    pub fn record(&self, account: &str, deletions: ScheduledDeletions) {
        let mut scheduled = lock(&self.scheduled);
        if deletions.delete_at.is_empty() {
            scheduled.remove(account);
        } else {
            scheduled.insert(account.to_owned(), deletions);
        }
    }

    /// The deletion gauges at `now`.
    pub fn deletions(&self, now: DateTime<Utc>) -> DeletionCounts {
        count_deletions(lock(&self.scheduled).values(), now)
    }

    /// The census and deletion counts of a scrape; `None` while no controller is live.
    fn take(&self) -> Option<(Census, DeletionCounts)> {
        let mut census = Census::default();
        let now = {
            let live = lock(&self.live);
            for shard in live.iter() {
                (shard.take_census)(&mut census);
            }
            live.first()?.clock.now()
        };
        Some((census, self.deletions(now)))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// `type` is a keyword, hence `r#type`: the derive writes the label as `type`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    r#type: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// One gauge family, encoded under `name`.
fn encode_family<S>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (S, i64)>,
) -> Result<(), fmt::Error>
where
    S: Clone + std::hash::Hash + Eq + EncodeLabelSet + fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<S, Gauge>::default();
    for (labels, value) in samples {
        family.get_or_create(&labels).set(value);
    }
    family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)
}

fn encode_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: usize,
) -> Result<(), fmt::Error> {
    let gauge: Gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl Collector for CensusGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let (census, deletions) = self.take().unwrap_or_default();
        let e = &mut encoder;
        encode_family(
            e,
            "accounts",
            "Accounts by status phase (Unknown: not planned yet; Unreadable: not matching the schema)",
            census
                .phases
                .iter()
                .map(|(phase, n)| (PhaseLabels { phase }, *n)),
        )?;
        encode_family(
            e,
            "account_conditions",
            "Accounts whose condition of this type has this status",
            census
                .conditions
                .iter()
                .map(|((r#type, status), n)| (ConditionLabels { r#type, status }, *n)),
        )?;
        encode_family(
            e,
            "erasure_requests",
            "Erasure requests to data processors by delivery state",
            census
                .requests
                .iter()
                .map(|(state, n)| (StateLabels { state }, *n)),
        )?;
        encode_family(
            e,
            "erasure_request_oldest_timestamp_seconds",
            "Unix time at which the oldest erasure request in this state was first owed",
            census
                .oldest_request
                .iter()
                .map(|(state, at)| (StateLabels { state }, at.timestamp())),
        )?;
        encode_family(
            e,
            "policy_suspended",
            "1 while a RetentionPolicy is suspended (nothing under it is erased), by policy",
            census.policies.iter().map(|(policy, suspended)| {
                let labels = PolicyLabels {
                    policy: policy.clone(),
                };
                (labels, i64::from(*suspended))
            }),
        )?;
        encode_gauge(
            e,
            "scheduled_deletions_pending",
            "Objects with a deletion scheduled that has not happened yet",
            deletions.pending,
        )?;
        encode_gauge(
            e,
            "overdue_deletions",
            "Scheduled deletions whose time has passed and that have not happened, except those a suspended RetentionPolicy holds back",
            deletions.overdue,
        )?;
        encode_gauge(
            e,
            "suspended_deletions_due",
            "Objects due for deletion that a suspended RetentionPolicy holds back",
            deletions.suspended_due,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccountPhase, Condition, ProcessorNotification};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn condition(type_: &str, status: ConditionStatus) -> Condition {
        Condition {
            type_: type_.into(),
            status,
            reason: "Because".into(),
            message: String::new(),
            last_transition_time: at("2026-01-01T00:00:00Z"),
            observed_generation: None,
        }
    }

    fn request(state: NotificationState, requested_at: &str) -> ProcessorNotification {
        ProcessorNotification {
            name: "mailer".into(),
            state,
            erasure_at: None,
            idempotency_key: None,
            requested_at: Some(at(requested_at)),
            resources: Vec::new(),
            attempts: 0,
            last_attempt_at: None,
            next_attempt_at: None,
            reason: None,
            acknowledged_at: None,
        }
    }

    #[test]
    fn accounts_are_counted_by_phase_condition_and_request_state() {
        let mut census = Census::default();
        let erasing = AccountStatus {
            phase: Some(AccountPhase::Erasing),
            conditions: vec![
                condition(conditions::READY, ConditionStatus::False),
                condition(conditions::MANUAL_ACTION_REQUIRED, ConditionStatus::True),
                condition("SomeoneElsesCondition", ConditionStatus::True),
            ],
            processors: vec![
                request(NotificationState::Manual, "2026-03-02T00:00:00Z"),
                request(NotificationState::Manual, "2026-03-01T00:00:00Z"),
                request(NotificationState::Acknowledged, "2026-01-01T00:00:00Z"),
            ],
            ..AccountStatus::default()
        };
        let active = AccountStatus {
            phase: Some(AccountPhase::Active),
            conditions: vec![condition(conditions::READY, ConditionStatus::True)],
            ..AccountStatus::default()
        };
        census.add_account(Some(&erasing));
        census.add_account(Some(&active));
        census.add_account(Some(&active));
        census.add_account(None);
        census.add_unreadable_account();

        let phases: Vec<_> = census.phases.iter().map(|(p, n)| (*p, *n)).collect();
        assert_eq!(
            phases,
            [
                ("Active", 2),
                ("Erasing", 1),
                (NO_PHASE, 1),
                (UNREADABLE, 1)
            ]
        );
        assert_eq!(census.conditions.get(&("Ready", "True")), Some(&2));
        assert_eq!(census.conditions.get(&("Ready", "False")), Some(&1));
        assert_eq!(
            census.conditions.get(&("ManualActionRequired", "True")),
            Some(&1)
        );
        assert_eq!(
            census.conditions.len(),
            3,
            "a condition type of someone else is not counted"
        );
        assert_eq!(census.requests.get("Manual"), Some(&2));
        assert_eq!(census.requests.get("Acknowledged"), Some(&1));
        assert_eq!(
            census.oldest_request.get("Manual"),
            Some(&at("2026-03-01T00:00:00Z")),
            "the oldest of the two"
        );
        assert_eq!(
            census.oldest_request.get("Acknowledged"),
            None,
            "an acknowledged request waits for nothing"
        );
    }

    #[test]
    fn a_deletion_is_overdue_once_its_time_has_passed_unless_a_suspend_holds_it() {
        let live = ScheduledDeletions {
            delete_at: vec![at("2026-05-01T00:00:00Z"), at("2026-06-01T00:00:00Z")],
            suspended: false,
        };
        let held = ScheduledDeletions {
            delete_at: vec![at("2026-05-01T00:00:00Z")],
            suspended: true,
        };
        let count = |now| count_deletions([&live, &held], at(now));
        assert_eq!(
            count("2026-04-30T23:59:59Z"),
            DeletionCounts {
                pending: 3,
                overdue: 0,
                suspended_due: 0
            }
        );
        assert_eq!(
            count("2026-05-01T00:00:00Z"),
            DeletionCounts {
                pending: 3,
                overdue: 1,
                suspended_due: 1
            },
            "due at deleteAt exactly"
        );
        assert_eq!(count("2026-07-01T00:00:00Z").overdue, 2);
    }

    #[test]
    fn the_gauges_count_only_while_a_controller_is_live() {
        struct Fixed;
        impl Clock for Fixed {
            fn now(&self) -> DateTime<Utc> {
                at("2026-05-02T00:00:00Z")
            }
        }
        let gauges = CensusGauges::default();
        let due = ScheduledDeletions {
            delete_at: vec![at("2026-05-01T00:00:00Z")],
            suspended: false,
        };
        assert_eq!(gauges.take(), None, "a standby counts nothing");
        gauges.go_live(
            Shard::WHOLE,
            Box::new(|census: &mut Census| census.add_policy("standard", true)),
            Arc::new(Fixed),
        );
        gauges.record("acme", due.clone());
        let (census, deletions) = gauges.take().expect("live");
        assert_eq!(census.policies.get("standard"), Some(&true));
        assert_eq!(deletions.overdue, 1);
        gauges.record("acme", ScheduledDeletions::default());
        assert_eq!(gauges.take().expect("live").1.pending, 0, "forgotten");
        gauges.record("acme", due);
        gauges.go_standby(Shard::WHOLE);
        assert_eq!(gauges.take(), None);
        assert_eq!(gauges.deletions(at("2026-06-01T00:00:00Z")).pending, 0);

        // A replica holding two shards counts both; giving one up forgets only its accounts.
        let due = ScheduledDeletions {
            delete_at: vec![at("2026-05-01T00:00:00Z")],
            suspended: false,
        };
        let (first, second) = (Shard { index: 0, count: 2 }, Shard { index: 1, count: 2 });
        let of = |shard: Shard| {
            (0..100)
                .map(|i| format!("account-{i}"))
                .find(|a| shard.owns(a))
                .expect("an account of the shard")
        };
        for shard in [first, second] {
            gauges.go_live(
                shard,
                Box::new(|census: &mut Census| census.add_account(None)),
                Arc::new(Fixed),
            );
            gauges.record(&of(shard), due.clone());
        }
        let (census, deletions) = gauges.take().expect("live");
        assert_eq!(census.phases.values().sum::<i64>(), 2);
        assert_eq!(deletions.overdue, 2);
        gauges.go_standby(first);
        let (census, deletions) = gauges.take().expect("still live for the second");
        assert_eq!(census.phases.values().sum::<i64>(), 1);
        assert_eq!(deletions.overdue, 1, "the second shard's schedules stay");
    }
}
