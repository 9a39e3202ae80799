//! The mass-deletion brake's shell: admits the account passes' deletions through the pure
//! [`crate::retention::brake`], keeps its count in the RetentionPolicy's status (at most one
//! write per [`WRITE_SPACING`] and policy), and tells when it engages or is released.
//!
//! A pass asks [`Brakes::admit`] before it records or sends any DELETE. The answer is one of:
//! - go: every counted uid of the batch is among the admitted ones the status holds;
//! - wait: a write of the count is due within [`WRITE_SPACING`]; the demand is registered
//!   and the next write, made by whichever pass comes first, covers it;
//! - engaged: nothing goes until a person releases the brake.
//!
//! Each DELETE is checked again against the policy as the API server holds it (the read
//! invariant 3 makes anyway): the uid must be admitted there, or approved by a release.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use kube::{
    Resource, ResourceExt,
    api::{Api, Patch, PatchParams},
    runtime::{events::EventType, reflector::ObjectRef},
};
use serde_json::json;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{
    context::{Context, Error, Policy, spawn_cancellable},
    guarded::Guarded,
};
use crate::{
    api::{
        Account, BRAKE_RELEASED_AT, BrakeEngagement, BrakeSpec, BrakeStatus, ConditionStatus,
        RetentionPolicy, RetentionPolicySpec,
    },
    audit::{AuditAction, AuditRecord},
    clock::rfc3339,
    retention::brake::{
        BrakeChange, BrakeDecision, BrakeRound, Demand, Fate, admitted_uids, approved_by_release,
        decide, released,
    },
    status::set_condition,
};

/// The default least time between two writes of one policy's count by this replica
/// (`--brake-write-interval`): the brake costs at most one status write per this much
/// deleting, or per [`crate::retention::brake::MAX_ADMITTED_PER_WRITE`] deletions of a burst
/// (a write whose admissions are all answered while others wait lets the next go at once).
pub const WRITE_SPACING: Duration = Duration::from_secs(10);

/// How far ahead (on the operator's clock) a write admits deletions already scheduled, beyond
/// the write interval: a deletion that falls due before the next write is admitted with this
/// one, so steady backup rotation never waits for the brake.
const LOOK_AHEAD_MARGIN: Duration = Duration::from_secs(5);

/// The accounts woken to make the next write when a write's admissions are used up while
/// others wait.
const WOKEN_WHEN_SPENT: usize = 4;

/// The condition on the RetentionPolicy's status.
pub const BRAKE_ENGAGED: &str = "BrakeEngaged";

/// Conditional writes tried before giving up to the error policy.
const WRITE_ATTEMPTS: usize = 4;

/// A pass's answer from the brake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The batch may go.
    Go,
    /// The batch waits for the next write of the count, due in this long.
    Wait(Duration),
    /// The brake is engaged: the batch waits for a person.
    Engaged,
}

pub use crate::retention::brake::released_at;

/// Whether the policy as the API server holds it lets this uid (due at `delete_at`) be
/// deleted now: admitted in its status, or approved by its release.
pub fn lets_go(
    policy: &RetentionPolicy,
    uid: &str,
    delete_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let approved = delete_at.is_some_and(|at| approved_by_release(at, released_at(policy), now));
    approved
        || policy
            .status
            .as_ref()
            .and_then(|s| s.brake.as_ref())
            .is_some_and(|brake| admitted_uids(brake).any(|u| u == uid))
}

/// An object of a batch: its uid and deleteAt.
pub type DueItem = (String, Option<DateTime<Utc>>);

/// The brakes of every policy, for one leadership term of this replica.
pub struct Brakes {
    /// This process in this term: admissions it stored are its own.
    holder: String,
    /// The least time between two writes of one policy's count, unless the last write's
    /// admissions are used up while accounts still wait.
    spacing: Duration,
    /// Wakes an account whose deletions a write admitted while its pass was waiting.
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<Guarded<Account>>>,
    policies: Mutex<HashMap<String, Arc<tokio::sync::Mutex<PolicyBrake>>>>,
}

/// What this replica knows of one policy's brake.
#[derive(Default)]
struct PolicyBrake {
    /// The policy as this replica last read or wrote it: the next write is conditional on
    /// its resourceVersion.
    base: Option<RetentionPolicy>,
    /// The uids the stored status admits.
    admitted: HashSet<String>,
    /// What became of the uids this replica sent DELETEs for.
    fates: HashMap<String, Fate>,
    /// The accounts waiting, with each object's uid and deleteAt: a release approves some
    /// of what waits.
    demand: BTreeMap<String, Vec<DueItem>>,
    /// Each account's next scheduled deletions, as its last pass planned them: a write admits
    /// those that fall due before the next write can be made.
    expected: BTreeMap<String, Demand>,
    /// When this replica last wrote the count.
    last_write: Option<Instant>,
    /// The uids this replica's last write admitted under its own name.
    own_admitted: HashSet<String>,
    /// Whether the last write left due deletions waiting without engaging: it admitted as
    /// many as one write may ([`crate::retention::brake::MAX_ADMITTED_PER_WRITE`]).
    left_waiting: bool,
    /// Whether every deletion the last write admitted has been sent and answered while others
    /// wait: the next write need not wait out the spacing.
    spent: bool,
    /// Whether a task will record a release once the write interval has passed.
    release_scheduled: bool,
}

impl PolicyBrake {
    /// The engagement the status holds as this replica last read or wrote it.
    fn stored_engagement(&self) -> Option<&crate::api::BrakeEngagement> {
        self.base
            .as_ref()?
            .status
            .as_ref()?
            .brake
            .as_ref()?
            .engaged
            .as_ref()
    }
}

/// The release annotation's time (if any) when the cached policy stores an engagement a person
/// has released since; `None` when there is nothing to clear.
fn release_due(
    ctx: &Context,
    policy: &str,
    limit: &BrakeSpec,
    now: DateTime<Utc>,
) -> Option<Option<DateTime<Utc>>> {
    let (release, engagement) = ctx.stores.policy_brake(policy);
    engagement
        .is_some_and(|e| released(&e, limit, release, now))
        .then_some(release)
}

impl Brakes {
    /// Brakes for a new leadership term, under a holder name no earlier process used, writing
    /// each policy's count at most once per `spacing`.
    pub fn new(
        spacing: Duration,
        wake: futures::channel::mpsc::UnboundedSender<ObjectRef<Guarded<Account>>>,
    ) -> Self {
        static TERMS: AtomicU64 = AtomicU64::new(0);
        let replica = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "local".to_owned());
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let term = TERMS.fetch_add(1, Ordering::Relaxed);
        Self {
            holder: format!("{replica}/{}-{started:x}-{term}", std::process::id()),
            spacing,
            wake,
            policies: Mutex::default(),
        }
    }

    fn of(&self, policy: &str) -> Arc<tokio::sync::Mutex<PolicyBrake>> {
        self.policies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(policy.to_owned())
            .or_default()
            .clone()
    }

    /// Asks whether `account`'s batch (uid and deleteAt of each object) may be deleted now.
    pub async fn admit(
        &self,
        ctx: &Context,
        policy: &str,
        spec: &RetentionPolicySpec,
        account: &str,
        batch: &[DueItem],
        now: DateTime<Utc>,
    ) -> Result<Admission, Error> {
        let (release, _) = ctx.stores.policy_brake(policy);
        let limit = spec.brake_or_default();
        let counted: Vec<&DueItem> = batch
            .iter()
            .filter(|(_, at)| !at.is_some_and(|at| approved_by_release(at, release, now)))
            .collect();
        let state = self.of(policy);
        let mut brake = state.lock().await;
        if counted.iter().all(|(uid, _)| brake.admitted.contains(uid)) {
            brake.demand.remove(account);
            return Ok(Admission::Go);
        }
        brake
            .demand
            .insert(account.to_owned(), counted.into_iter().cloned().collect());
        if brake
            .stored_engagement()
            .is_some_and(|engagement| !released(engagement, &limit, release, now))
        {
            return Ok(Admission::Engaged);
        }
        if let Some(last) = brake.last_write {
            let since = last.elapsed();
            if since < self.spacing && !brake.spent {
                // A moment past the spacing, so the write is allowed when the pass returns.
                return Ok(Admission::Wait(
                    self.spacing - since + Duration::from_millis(50),
                ));
            }
        }
        let decision = self
            .write(ctx, &mut brake, policy, &limit, release, now)
            .await?;
        if decision.admitted.contains(account) {
            Ok(Admission::Go)
        } else if decision.engaged() {
            Ok(Admission::Engaged)
        } else {
            Ok(Admission::Wait(self.spacing))
        }
    }

    /// Clears an engagement a person released: the approved backlog goes without counting
    /// (and so without any write), but the stored engagement, its condition, event and metric
    /// need one. When the last write was too recent, a task of its own makes it once the
    /// interval has passed (the accounts' passes may all be over by then).
    pub async fn clear_if_released(
        &self,
        ctx: &Arc<Context>,
        policy: &str,
        spec: &RetentionPolicySpec,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let limit = spec.brake_or_default();
        let Some(release) = release_due(ctx, policy, &limit, now) else {
            return Ok(());
        };
        let state = self.of(policy);
        let mut brake = state.lock().await;
        match brake.last_write {
            Some(last) if last.elapsed() < self.spacing => {
                if !brake.release_scheduled {
                    brake.release_scheduled = true;
                    let wait = self.spacing - last.elapsed() + Duration::from_millis(50);
                    let (later, policy) = (ctx.clone(), policy.to_owned());
                    spawn_cancellable(&ctx.cancel, async move {
                        tokio::time::sleep(wait).await;
                        if let Err(error) = later.brakes.write_release(&later, &policy).await {
                            // The next pass of an account under the policy tries again.
                            warn!(policy = %policy, reason = error.reason(), "cannot record the brake's release");
                        }
                    });
                }
                Ok(())
            }
            _ => self
                .write(ctx, &mut brake, policy, &limit, release, now)
                .await
                .map(|_| ()),
        }
    }

    /// The write [`Brakes::clear_if_released`] put off, if the release still stands.
    async fn write_release(&self, ctx: &Context, policy: &str) -> Result<(), Error> {
        let now = ctx.clock.now();
        let state = self.of(policy);
        let mut brake = state.lock().await;
        brake.release_scheduled = false;
        let Policy::Found(spec) = ctx.stores.policy(policy) else {
            return Ok(());
        };
        let limit = spec.brake_or_default();
        let Some(release) = release_due(ctx, policy, &limit, now) else {
            return Ok(());
        };
        self.write(ctx, &mut brake, policy, &limit, release, now)
            .await
            .map(|_| ())
    }

    /// Forgets an account's demand: it has nothing due that counts.
    pub async fn withdraw(&self, policy: &str, account: &str) {
        let state = self.of(policy);
        state.lock().await.demand.remove(account);
    }

    /// Records an account's next scheduled deletions (uids, due at `at`), or that it has none.
    pub async fn expect(
        &self,
        policy: &str,
        account: &str,
        next: Option<(DateTime<Utc>, Vec<String>)>,
    ) {
        let state = self.of(policy);
        let mut brake = state.lock().await;
        match next {
            Some((at, uids)) if !uids.is_empty() => {
                brake.expected.insert(
                    account.to_owned(),
                    Demand {
                        account: account.to_owned(),
                        uids,
                        due_since: at,
                        expected: true,
                    },
                );
            }
            _ => {
                brake.expected.remove(account);
            }
        }
    }

    /// Forgets an admission the policy as the API server holds it no longer shows (another
    /// shard's write dropped it, or a person's edit): the account's next pass asks again, and
    /// the next write admits it anew, instead of every pass trusting this replica's belief and
    /// finding the stored count without it. The next write reads the policy afresh.
    pub async fn not_admitted(&self, policy: &str, uid: &str) {
        let state = self.of(policy);
        let mut brake = state.lock().await;
        if brake.admitted.remove(uid) {
            brake.own_admitted.remove(uid);
            brake.base = None;
            debug!(
                policy,
                "an admission is gone from the stored count: asked for again"
            );
        }
    }

    /// Records that DELETEs for these uids are about to go: until their outcome is known they
    /// may have gone through.
    pub async fn sending(&self, policy: &str, uids: impl IntoIterator<Item = String>) {
        let state = self.of(policy);
        let mut brake = state.lock().await;
        for uid in uids {
            brake.fates.insert(uid, Fate::Uncertain);
        }
    }

    /// Records the outcome of DELETEs: `gone` went (or were gone), `standing` were not
    /// deleted. The others stay uncertain.
    pub async fn settled(
        &self,
        policy: &str,
        gone: impl IntoIterator<Item = String>,
        standing: impl IntoIterator<Item = String>,
    ) {
        let state = self.of(policy);
        let mut brake = state.lock().await;
        for uid in gone {
            brake.fates.insert(uid, Fate::Gone);
        }
        for uid in standing {
            brake.fates.insert(uid, Fate::Standing);
        }
        // A burst larger than one write admits: once this write's admissions are all answered,
        // the next may go at once (a write per `MAX_ADMITTED_PER_WRITE` deletions at most). The
        // accounts due first among those told to wait are woken to make it: a few, as one may
        // have nothing left to ask by its next pass. An account not told to wait yet asks in a
        // pass of its own, and makes the write then.
        if brake.left_waiting
            && !brake.spent
            && brake
                .own_admitted
                .iter()
                .all(|uid| matches!(brake.fates.get(uid), Some(Fate::Gone | Fate::Standing)))
        {
            brake.spent = true;
            debug!(
                policy,
                "the brake's admissions are used up while deletions wait"
            );
            let mut waiting: Vec<(Option<DateTime<Utc>>, &String)> = brake
                .demand
                .iter()
                .map(|(account, items)| (items.iter().filter_map(|(_, at)| *at).min(), account))
                .collect();
            waiting.sort();
            for (_, account) in waiting.into_iter().take(WOKEN_WHEN_SPENT) {
                // Fails only when the controller has stopped.
                let _ = self.wake.unbounded_send(ObjectRef::new(account));
            }
        }
    }

    /// What waits, due now first (overdue first), then what falls due before the next write;
    /// what a release approved since it was asked for goes without counting.
    fn demand(
        &self,
        brake: &PolicyBrake,
        release: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Vec<Demand> {
        // What a release approved since it was asked for goes without counting.
        let mut demand: Vec<Demand> = brake
            .demand
            .iter()
            .filter_map(|(account, items)| {
                let counted: Vec<&DueItem> = items
                    .iter()
                    .filter(|(_, at)| !at.is_some_and(|at| approved_by_release(at, release, now)))
                    .collect();
                (!counted.is_empty()).then(|| Demand {
                    account: account.clone(),
                    uids: counted.iter().map(|(uid, _)| uid.clone()).collect(),
                    due_since: counted
                        .iter()
                        .filter_map(|(_, at)| *at)
                        .min()
                        .unwrap_or(now),
                    expected: false,
                })
            })
            .collect();
        // Due now first (overdue first), then what each account's last pass expects to fall due
        // before the next write can be made, already due ones included: when many accounts
        // fall due in the same second, the first pass's write admits the others too, instead
        // of their passes waiting out the interval for the next.
        demand.sort_by(|a, b| (a.due_since, &a.account).cmp(&(b.due_since, &b.account)));
        let horizon =
            now + chrono::TimeDelta::from_std(self.spacing + LOOK_AHEAD_MARGIN).unwrap_or_default();
        demand.extend(
            brake
                .expected
                .values()
                .filter(|e| e.due_since <= horizon)
                .filter(|e| !approved_by_release(e.due_since, release, now))
                .filter(|e| !brake.demand.contains_key(&e.account))
                .cloned(),
        );
        demand
    }

    /// Writes the count: settles what was admitted, admits what waits, as one conditional
    /// status write. The waiting accounts it admits are woken: their passes need not wait out
    /// their requeue (the pass that made the write is woken too, and its next pass finds its
    /// work done).
    async fn write(
        &self,
        ctx: &Context,
        brake: &mut PolicyBrake,
        policy: &str,
        limit: &BrakeSpec,
        release: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<BrakeDecision, Error> {
        let policies: Api<RetentionPolicy> = Api::all(ctx.client.clone());
        let mut base = match brake.base.take() {
            Some(base) => base,
            None => fresh(ctx, &policies, policy).await?,
        };
        let mut attempt = 0;
        let mut announced = None;
        loop {
            attempt += 1;
            let stored = base
                .status
                .as_ref()
                .and_then(|s| s.brake.clone())
                .unwrap_or_default();
            let fates = self.fates(ctx, brake, &stored);
            let demand = self.demand(brake, release, now);
            let decision = decide(&BrakeRound {
                limit: *limit,
                released_at: release,
                previous: &stored,
                holder: &self.holder,
                demand: &demand,
                fates: &fates,
                now,
            });
            // Told before it is stored: a crash right after the write would lose the event
            // for good (the next replica finds the change made). A crash before it repeats it.
            // Told once per change: a conflict (the person's annotation is itself a change to
            // the policy) decides the same change again on the fresh policy.
            if decision.change.is_some() && decision.change != announced {
                let engagement = stored.engaged.as_ref();
                announce(ctx, &base, limit, &decision, engagement, release, now).await;
                announced = decision.change;
            }
            match write_status(ctx, &policies, &base, limit, &decision, now).await {
                Ok(written) => {
                    brake.last_write = Some(Instant::now());
                    brake.admitted = admitted_uids(&decision.status).map(str::to_owned).collect();
                    let admitted = &brake.admitted;
                    brake.fates.retain(|uid, _| admitted.contains(uid));
                    brake.own_admitted = decision
                        .status
                        .admitted
                        .iter()
                        .filter(|group| group.holder == self.holder)
                        .flat_map(|group| &group.accounts)
                        .flat_map(|account| account.uids.iter().cloned())
                        .collect();
                    // Due now (asked for, or expected by an account's last pass) and not
                    // admitted, with the brake not engaged: the write admitted all it may.
                    brake.left_waiting = !decision.engaged()
                        && demand
                            .iter()
                            .any(|d| d.due_since <= now && !decision.admitted.contains(&d.account));
                    brake.spent = false;
                    debug!(
                        policy,
                        admitted = brake.own_admitted.len(),
                        accounts = decision.admitted.len(),
                        left_waiting = brake.left_waiting,
                        "the brake's count written"
                    );
                    for account in &decision.admitted {
                        if brake.demand.remove(account).is_some() {
                            // Fails only when the controller has stopped.
                            let _ = self.wake.unbounded_send(ObjectRef::new(account));
                        }
                    }
                    ctx.metrics
                        .set_brake(policy, decision.engaged(), decision.counted);
                    brake.base = Some(written);
                    return Ok(decision);
                }
                Err(error) if error.is_status(409) && attempt < WRITE_ATTEMPTS => {
                    base = fresh(ctx, &policies, policy).await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The fate of each stored admitted uid, from this replica's DELETEs and the caches.
    fn fates(
        &self,
        ctx: &Context,
        brake: &PolicyBrake,
        stored: &BrakeStatus,
    ) -> BTreeMap<String, Fate> {
        let mut fates = BTreeMap::new();
        for group in &stored.admitted {
            let ours = group.holder == self.holder;
            for account in &group.accounts {
                if !ctx.shard.owns(&account.account) {
                    // Another shard's admission: its caches are not here, so its fate is not
                    // known here; it stays counted until that shard settles it.
                    for uid in &account.uids {
                        fates.insert(uid.clone(), Fate::Uncertain);
                    }
                    continue;
                }
                let present = ctx.stores.claims(&account.account).uids;
                let buried = ctx.tombstones.still_cached(&account.account, &present);
                for uid in &account.uids {
                    let fate = match brake.fates.get(uid) {
                        Some(Fate::Gone) => Fate::Gone,
                        _ if !present.contains(uid) || buried.contains(uid) => Fate::Gone,
                        Some(Fate::Uncertain) => Fate::Uncertain,
                        _ if ours => Fate::Standing,
                        _ => Fate::Uncertain,
                    };
                    fates.insert(uid.clone(), fate);
                }
            }
        }
        fates
    }
}

/// The event, log line and audit record of a change of the brake (`engagement`: the one
/// stored before it; `release`: the release the annotation gives).
async fn announce(
    ctx: &Context,
    policy: &RetentionPolicy,
    limit: &BrakeSpec,
    decision: &BrakeDecision,
    engagement: Option<&BrakeEngagement>,
    release: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    let name = policy.name_any();
    let regarding = policy.object_ref(&());
    let audit = |action| {
        AuditRecord::new(action, now, "RetentionPolicy", None, &name)
            .uid(policy.metadata.uid.as_deref())
    };
    match decision.change {
        Some(BrakeChange::Engaged) => {
            let message = engaged_message(limit, decision);
            audit(AuditAction::BrakeEngaged)
                .detail(format!(
                    "{} deletions within {} reached maxDeletions {}; {} due deletions wait",
                    decision.counted, limit.per, limit.max_deletions, decision.waiting
                ))
                .emit();
            warn!(policy = %name, counted = decision.counted, waiting = decision.waiting, "mass-deletion brake engaged");
            ctx.publish_regarding(
                &regarding,
                None,
                EventType::Warning,
                BRAKE_ENGAGED,
                &message,
            )
            .await;
        }
        Some(BrakeChange::Released) => {
            info!(policy = %name, "mass-deletion brake released");
            audit(AuditAction::BrakeReleased)
                .detail(release_detail(limit, engagement, release))
                .emit();
            ctx.publish_regarding(
                &regarding,
                None,
                EventType::Normal,
                "BrakeReleased",
                "the mass-deletion brake was released: deletions resume",
            )
            .await;
        }
        None => {}
    }
}

/// How a person released the brake: by the annotation (a time after the engagement) or by
/// changing the limit.
fn release_detail(
    limit: &BrakeSpec,
    engagement: Option<&BrakeEngagement>,
    release: Option<DateTime<Utc>>,
) -> String {
    match (engagement, release) {
        (Some(engaged), Some(release)) if release > engaged.at => format!(
            "released by annotation {BRAKE_RELEASED_AT}={}",
            rfc3339(release)
        ),
        _ => format!(
            "released by a changed limit: spec.brake is now maxDeletions {} per {}",
            limit.max_deletions, limit.per
        ),
    }
}

/// The message of an engaged brake: the count, the window and how to release it.
fn engaged_message(limit: &BrakeSpec, decision: &BrakeDecision) -> String {
    let at = decision
        .status
        .engaged
        .as_ref()
        .map_or_else(String::new, |e| rfc3339(e.at));
    format!(
        "{} deletions within {} reached maxDeletions {}; {} due deletions wait. Release: annotate the RetentionPolicy with {BRAKE_RELEASED_AT} set to a time after {at} (everything due by then goes), or raise spec.brake.maxDeletions",
        decision.counted, limit.per, limit.max_deletions, decision.waiting
    )
}

/// Reads the policy from the API server.
async fn fresh(
    ctx: &Context,
    policies: &Api<RetentionPolicy>,
    name: &str,
) -> Result<RetentionPolicy, Error> {
    ctx.act(policies.get(name)).await
}

/// Writes the count and the `BrakeEngaged` condition, conditional on `base`'s
/// resourceVersion.
async fn write_status(
    ctx: &Context,
    policies: &Api<RetentionPolicy>,
    base: &RetentionPolicy,
    limit: &BrakeSpec,
    decision: &BrakeDecision,
    now: DateTime<Utc>,
) -> Result<RetentionPolicy, Error> {
    let mut conditions = base
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let (status, reason, message) = if decision.engaged() {
        (
            ConditionStatus::True,
            "MaxDeletionsReached",
            engaged_message(limit, decision),
        )
    } else {
        (
            ConditionStatus::False,
            "WithinLimit",
            format!(
                "{} deletions counted within {} of maxDeletions {}",
                decision.counted, limit.per, limit.max_deletions
            ),
        )
    };
    set_condition(
        &mut conditions,
        BRAKE_ENGAGED,
        status,
        reason,
        &message,
        base.metadata.generation,
        now,
    );
    let brake = &decision.status;
    let patch = json!({
        "metadata": { "resourceVersion": base.resource_version() },
        "status": {
            "conditions": conditions,
            "brake": {
                "counted": brake.counted,
                "admitted": brake.admitted,
                "engaged": brake.engaged,
            },
        },
    });
    let name = base.name_any();
    ctx.act(policies.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)))
        .await
}

/// The uids of a batch that went and that did not, for [`Brakes::settled`].
pub fn outcome_uids(
    sent: &BTreeSet<String>,
    gone: impl IntoIterator<Item = String>,
    uncertain: impl IntoIterator<Item = String>,
) -> (Vec<String>, Vec<String>) {
    let gone: BTreeSet<String> = gone.into_iter().collect();
    let uncertain: BTreeSet<String> = uncertain.into_iter().collect();
    let standing = sent
        .iter()
        .filter(|uid| !gone.contains(*uid) && !uncertain.contains(*uid))
        .cloned()
        .collect();
    (gone.into_iter().collect(), standing)
}
