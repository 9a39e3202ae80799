//! The account controller: plans an account with the engine, stamps the schedules, deletes
//! what is due after re-reading it from the API, writes the status, and sleeps until the next
//! deletion.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    ops::ControlFlow,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};
use kube::{
    Resource, ResourceExt,
    api::{Api, Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
};
use serde_json::json;
use tracing::{debug, info, warn};

use super::{
    brake::{self, Admission},
    cluster::{self, Deleted},
    context::{Claims, Context, Error, ObjectVersion, Policy},
    events,
    guarded::{Guarded, Malformed},
    orphans, processors, receipts,
    throttle::{Answer, Permits},
};
use crate::{
    api::{
        Account, AccountStatus, ConditionStatus, DataProcessorSpec, DeletingItem,
        ProcessorNotification, RetentionPolicy, RetentionPolicySpec,
    },
    audit::{AuditAction, AuditRecord},
    kinds::ResourceKind,
    metrics::ScheduledDeletions,
    notifier::ledger::{Ledger, StaffActions, all_settled, staff_actions, update_ledger},
    retention::{
        AccountPlan, AccountSituation, BoundResource, ResourcePlan, ResourceRef, ScheduleChange,
        plan_account, schedule_change,
    },
    status::{
        ACCOUNT_CONDITION_TYPES, DeletionFailure, DeletionLedger, ERASURE_SUSPENDED,
        ReceiptWritten, StatusInput, TERMINATION_TIME_MISSING, TERMINATION_TIME_MISSING_MESSAGE,
        account_status, announcements, malformed_account_conditions, policy_malformed_status,
        policy_missing_status, termination_time_missing_status,
    },
};

/// Keeps an Account until nothing bound to it remains, so no data is ever orphaned.
pub const FINALIZER: &str = "hosting.ecuni.se/erasure";

/// The longest single timer: longer schedules (bookkeeping runs seven years) are re-armed in
/// steps of this.
pub const MAX_TIMER: Duration = Duration::from_secs(24 * 3600);

/// How soon to look again while the caches are still syncing.
const NOT_READY_RETRY: Duration = Duration::from_millis(250);

/// Conditional status writes tried before giving up to the error policy.
const STATUS_ATTEMPTS: usize = 5;

/// The most deletions one pass sends; the record of deletions under way
/// (`status.erasure.deleting`) holds at most this many, so the status stays small.
const MAX_BATCH: usize = 100;

/// How soon the next pass starts when more is due than one batch, or the plan changed under
/// a deletion.
const NEXT_BATCH: Duration = Duration::from_millis(200);

/// How soon a deleted Account whose objects the cache has not caught up with is looked at
/// again, when no watch event comes first.
const CACHE_BEHIND_RETRY: Duration = Duration::from_secs(5);

/// Reconciles one Account, as a pipeline: observe → plan → record → act → report → wake up.
///
/// kube's `finalizer()` helper does not fit: it runs one cleanup when deletion starts and
/// removes the finalizer when that cleanup returns. Here cleanup spans grace periods, backup
/// schedules and processors' acknowledgements over many passes, and the finalizer is removed
/// by the pass that finds nothing left and every request settled (`wake_up`).
pub async fn reconcile(object: Arc<Guarded<Account>>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.ready.load(Ordering::Acquire) {
        // Planning from half-filled caches would see nothing bound and could release an
        // Account whose data still exists: wait until every cache has synced.
        return Ok(Action::requeue(NOT_READY_RETRY));
    }
    if !ctx.shard.owns(&object.name_any()) {
        // Another shard's account (its caches only hold their own; this is the last guard).
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.reconcile("account");
    let now = ctx.clock.now();
    let observed = match observe(&ctx, object, now).await? {
        ControlFlow::Continue(observed) => observed,
        ControlFlow::Break(action) => return Ok(action),
    };
    let planned = plan(&observed, now);
    let recorded = record(&ctx, &observed, &planned, now).await?;
    let acted = act(&ctx, &observed, planned, recorded, now).await?;
    let reported = report(&ctx, &observed, &acted, now).await?;
    wake_up(&ctx, &observed, &acted, &reported, now).await
}

/// What a pass reads: the Account (with the finalizer on), its policy, and what claims it.
struct Observed {
    /// The Account as read, or as this pass's finalizer patch wrote it.
    account: Account,
    /// Its name.
    name: String,
    /// Whether it is being deleted.
    deleting: bool,
    /// Its RetentionPolicy.
    policy: RetentionPolicySpec,
    /// What the caches hold that claims it, less what this operator deleted.
    claims: Claims,
    /// Every readable DataProcessor.
    processors: BTreeMap<String, DataProcessorSpec>,
}

impl Observed {
    /// The account's RetentionPolicy when it is suspended: nothing is deleted and no erasure
    /// request is sent this pass.
    fn suspended_by(&self) -> Option<&str> {
        self.policy
            .suspend
            .then_some(self.account.spec.retention_policy_ref.as_str())
    }
}

/// Observes the Account: the finalizer goes on first; an Account the operator cannot plan
/// (unreadable, terminated without a time, no readable policy) is reported, and the pass ends.
async fn observe(
    ctx: &Context,
    object: Arc<Guarded<Account>>,
    now: DateTime<Utc>,
) -> Result<ControlFlow<Action, Observed>, Error> {
    let name = object.name_any();
    if ctx
        .superseded
        .is_stale(&name, object.meta().resource_version.as_deref())
    {
        // The cache has not yet seen this operator's last write to the Account; the write's
        // watch event triggers the next reconcile.
        debug!(account = %name, "the cache is behind this operator's last write: waiting for its watch event");
        return Ok(ControlFlow::Break(Action::await_change()));
    }
    let deleting = object.meta().deletion_timestamp.is_some();
    // Also on an Account that cannot be read: it must not vanish with data still bound to it.
    let object = if !deleting && !object.finalizers().iter().any(|f| f == FINALIZER) {
        match add_finalizer(ctx, &object).await? {
            // Carry on with the Account as written, so the status write below builds on its
            // resourceVersion instead of the cache's, which has not seen the patch yet.
            Some(patched) => Arc::new(patched),
            None => return Ok(ControlFlow::Break(Action::await_change())),
        }
    } else {
        object
    };
    let account = match &object.0 {
        Ok(account) => account,
        Err(malformed) => {
            let action = report_malformed_account(ctx, &object, malformed, now).await?;
            return Ok(ControlFlow::Break(action));
        }
    };
    if AccountSituation::of(account).time_missing() {
        let action = report_termination_time_missing(ctx, account, now).await?;
        return Ok(ControlFlow::Break(action));
    }
    let policy = match ctx.stores.policy(&account.spec.retention_policy_ref) {
        Policy::Found(policy) => policy,
        unusable => {
            report_unusable_policy(ctx, account, unusable, now).await?;
            // A new or corrected policy triggers a reconcile through the policy watch.
            return Ok(ControlFlow::Break(Action::await_change()));
        }
    };
    let claims = ctx.stores.claims(&name);
    // What this operator deleted is gone, whatever the cache still shows.
    let buried = ctx.tombstones.still_cached(&name, &claims.uids);
    Ok(ControlFlow::Continue(Observed {
        account: account.clone(),
        name,
        deleting,
        policy,
        claims: claims.without(&buried),
        processors: ctx.stores.processors(),
    }))
}

/// Reports an Account whose RetentionPolicy is missing or cannot be read: erasure stops.
async fn report_unusable_policy(
    ctx: &Context,
    account: &Account,
    policy: Policy,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let policy_name = &account.spec.retention_policy_ref;
    let generation = account.metadata.generation;
    let (reason, note) = match &policy {
        Policy::Malformed { field } => (
            "PolicyMalformed",
            format!("RetentionPolicy {policy_name} cannot be read at {field}: erasure is stopped"),
        ),
        _ => (
            "PolicyMissing",
            format!("RetentionPolicy {policy_name} does not exist: erasure is stopped"),
        ),
    };
    let written = write_status(ctx, account, |previous| match &policy {
        Policy::Malformed { field } => {
            policy_malformed_status(previous, policy_name, field, generation, now)
        }
        _ => policy_missing_status(previous, policy_name, generation, now),
    })
    .await?;
    if written.is_some() {
        ctx.publish(account, None, EventType::Warning, reason, &note)
            .await;
    }
    Ok(())
}

/// What the engine makes of the observed Account.
struct Planned {
    /// The plan.
    plan: AccountPlan,
    /// What staff said through the Account's annotations.
    staff: StaffActions,
    /// The erasure requests owed by the plan, before this pass deletes anything.
    requests: Ledger,
}

/// Plans the Account with the engine (pure).
fn plan(observed: &Observed, now: DateTime<Utc>) -> Planned {
    let account = &observed.account;
    let plan = plan_account(
        account,
        &observed.claims.bound,
        &observed.policy,
        &observed.processors,
        now,
    );
    let staff = staff_actions(account);
    let bound: BTreeSet<&ResourceRef> = plan.resources.iter().map(|r| &r.resource).collect();
    let requests = update_ledger(
        &observed.name,
        &plan.notifications,
        &bound,
        stored_requests(account),
        &staff,
        now,
    );
    Planned {
        plan,
        staff,
        requests,
    }
}

/// The erasure requests the stored status records.
fn stored_requests(account: &Account) -> &[ProcessorNotification] {
    account
        .status
        .as_ref()
        .map_or(&[][..], |s| s.processors.as_slice())
}

/// What is recorded before anything is deleted.
struct Recorded {
    /// The version of each object a deletion is conditional on, as stamped.
    versions: HashMap<ResourceRef, ObjectVersion>,
    /// The due objects this pass deletes.
    batch: Batch,
    /// The record of deletions under way.
    erasure: ErasureRecord,
    /// The Account as the record's status write left it, when it wrote.
    written: Option<Account>,
    /// Whether a stamp failed (to retry later).
    stamps_failed: bool,
}

/// Records what the plan says on the objects (schedules, `Bound` again) and, before anything
/// is deleted, the deletions about to be sent and the requests they will make owed: a crash in
/// between must lose neither.
async fn record(
    ctx: &Arc<Context>,
    observed: &Observed,
    planned: &Planned,
    now: DateTime<Utc>,
) -> Result<Recorded, Error> {
    let (account, plan, claims) = (&observed.account, &planned.plan, &observed.claims);
    let mut versions = claims.versions.clone();
    let stamps_failed =
        stamp_schedules(ctx, account, plan, &claims.bound, &mut versions, now).await?;
    orphans::mark_bound(ctx, account, &claims.marked_unbound).await?;
    for (resource, _) in &claims.marked_unbound {
        // Marking it changed its resourceVersion: it is deleted on the next pass, from the
        // version the watch brings.
        versions.remove(resource);
    }
    // A suspended policy deletes nothing: what is due waits, recorded deletions included.
    let batch = if plan.erasure_suspended {
        Batch::default()
    } else {
        Batch::of(plan, &versions, now)
    };
    // The brake admits the batch whole, or none of it, before anything is recorded or sent.
    let batch = admit(ctx, observed, plan, batch, &versions, now).await?;
    let mut erasure = ErasureRecord::settle(account, plan, &claims.uids, now);
    confirm_called_off(ctx, account, &mut erasure).await?;
    audit_found_deleted(account, &erasure.gone, now);
    if !ctx.settings.dry_run && plan.terminated_at.is_some() {
        erasure.start(&batch.resources(plan), &versions);
    }
    let owed = &planned.requests.entries;
    let written = if !batch.due.is_empty()
        && (owed.as_slice() != stored_requests(account) || erasure.changes_record(account))
    {
        let announced_until = account
            .status
            .as_ref()
            .and_then(|s| s.deletions_announced_until);
        let unknown = unknown_processors(plan, &observed.processors);
        write_status(ctx, account, |previous| {
            account_status(&StatusInput {
                plan,
                previous,
                generation: account.metadata.generation,
                deleted: &[],
                deletions: erasure.ledger(),
                failures: &[],
                unknown_processors: &unknown,
                malformed: &claims.malformed,
                announced_until,
                processors: Some(owed),
                suspended_by: observed.suspended_by(),
                now,
            })
        })
        .await?
    } else {
        None
    };
    Ok(Recorded {
        versions,
        batch,
        erasure,
        written,
        stamps_failed,
    })
}

/// Asks the policy's mass-deletion brake whether the batch may go; a batch it holds back
/// becomes empty (and says when to look again).
async fn admit(
    ctx: &Arc<Context>,
    observed: &Observed,
    plan: &AccountPlan,
    batch: Batch,
    versions: &HashMap<ResourceRef, ObjectVersion>,
    now: DateTime<Utc>,
) -> Result<Batch, Error> {
    let policy = &observed.account.spec.retention_policy_ref;
    if ctx.settings.dry_run {
        return Ok(batch);
    }
    ctx.brakes
        .clear_if_released(ctx, policy, &observed.policy, now)
        .await?;
    if batch.due.is_empty() {
        ctx.brakes.withdraw(policy, &observed.name).await;
        return Ok(batch);
    }
    let items: Vec<(String, Option<DateTime<Utc>>)> = batch
        .resources(plan)
        .iter()
        .filter_map(|r| Some((versions.get(&r.resource)?.uid.clone(), r.schedule.delete_at)))
        .collect();
    let admission = ctx
        .brakes
        .admit(ctx, policy, &observed.policy, &observed.name, &items, now)
        .await?;
    Ok(match admission {
        Admission::Go => batch,
        Admission::Wait(wait) => {
            debug!(account = %observed.name, ?wait, "waiting for the brake's next count");
            Batch {
                brake_wait: Some(wait),
                ..Batch::default()
            }
        }
        Admission::Engaged => {
            debug!(account = %observed.name, "the mass-deletion brake is engaged: nothing goes");
            Batch::default()
        }
    })
}

/// What the deletions and deliveries did.
struct Acted {
    /// The Account the final status write builds on.
    written: Account,
    /// The objects found gone this pass: deleted by it, or already gone.
    gone: Vec<ResourceRef>,
    /// The deletions that failed.
    failures: Vec<DeletionFailure>,
    /// Whether a deletion found the plan changed under it.
    interrupted: bool,
    /// Whether more is due than one batch.
    more_due: bool,
    /// When the brake's next count is written, if the batch waits for it.
    brake_wait: Option<Duration>,
    /// The plan of what is still bound.
    plan: AccountPlan,
    /// The erasure requests, with this pass's deliveries recorded.
    requests: Ledger,
    /// The record of deletions under way, with what went this pass.
    erasure: ErasureRecord,
    /// Whether a stamp failed.
    stamps_failed: bool,
}

/// Deletes what is due (each on a fresh read of the Account) and delivers the erasure requests
/// that became due.
async fn act(
    ctx: &Arc<Context>,
    observed: &Observed,
    planned: Planned,
    recorded: Recorded,
    now: DateTime<Utc>,
) -> Result<Acted, Error> {
    let Recorded {
        versions,
        batch,
        mut erasure,
        written,
        stamps_failed,
    } = recorded;
    let (account, name) = (&observed.account, &observed.name);
    let inputs = PlanInputs {
        policy: &observed.policy,
    };
    let due = batch.resources(&planned.plan);
    let policy_name = &account.spec.retention_policy_ref;
    let sent: BTreeSet<String> = due
        .iter()
        .filter_map(|r| Some(versions.get(&r.resource)?.uid.clone()))
        .collect();
    if !ctx.settings.dry_run && !sent.is_empty() {
        ctx.brakes.sending(policy_name, sent.iter().cloned()).await;
    }
    let deletions = delete_due(
        ctx,
        account,
        written.as_ref(),
        &inputs,
        &due,
        &versions,
        now,
    );
    let deletions = deletions.await?;
    erasure.confirmed_at = Some(ctx.clock.now());
    if !ctx.settings.dry_run && !sent.is_empty() {
        settle_brake(ctx, policy_name, &sent, &deletions, &versions).await;
    }
    let went: Vec<&(ResourceRef, String)> = deletions
        .deleted
        .iter()
        .chain(&deletions.vanished)
        .collect();
    erasure.gone.extend(went.iter().map(|(_, uid)| uid.clone()));
    ctx.tombstones
        .bury(name, went.iter().map(|(_, uid)| uid.clone()));
    let gone: Vec<ResourceRef> = went.into_iter().map(|(r, _)| r.clone()).collect();
    // What went is no longer bound: the status shows the account as it is after this pass
    // (its phase included), so the next pass has nothing to write.
    let plan = planned.plan.without(&gone.iter().collect(), account, now);
    let remaining: BTreeSet<&ResourceRef> = plan.resources.iter().map(|r| &r.resource).collect();
    let mut requests = update_ledger(
        name,
        &plan.notifications,
        &remaining,
        &planned.requests.entries,
        &planned.staff,
        now,
    );
    let mut interrupted = deletions.interrupted;
    if ctx.settings.dry_run {
        for &index in &requests.due {
            let entry = &requests.entries[index];
            info!(account = %name, processor = %entry.name, "dry run: would send an erasure request");
        }
    } else if requests.due.is_empty() || plan.erasure_suspended {
        // Nothing to send, or a suspended policy: owed requests wait until it is lifted.
    } else if deletions.policy_confirmed || policy_in_force(ctx, account, &observed.policy).await? {
        // The last round of DELETEs read the policy as in force a round trip ago: that read
        // serves the requests too.
        processors::deliver_due(ctx, account, &mut requests, now).await?;
    } else {
        // The policy changed since the plan (suspended, say): the next pass plans again.
        interrupted = true;
    }
    Ok(Acted {
        written: written.unwrap_or_else(|| account.clone()),
        gone,
        failures: deletions.failures,
        interrupted,
        more_due: batch.more,
        brake_wait: batch.brake_wait,
        plan,
        requests,
        erasure,
        stamps_failed,
    })
}

/// Tells the brake which of the uids `sent` went and which still stand (a failed DELETE may
/// have gone through).
async fn settle_brake(
    ctx: &Context,
    policy_name: &str,
    sent: &BTreeSet<String>,
    deletions: &Deletions,
    versions: &HashMap<ResourceRef, ObjectVersion>,
) {
    let uncertain = deletions
        .failures
        .iter()
        .filter_map(|f| Some(versions.get(&f.resource)?.uid.clone()));
    let went = deletions
        .deleted
        .iter()
        .chain(&deletions.vanished)
        .map(|(_, uid)| uid.clone());
    let (gone, standing) = brake::outcome_uids(sent, went, uncertain);
    ctx.brakes.settled(policy_name, gone, standing).await;
}

/// What the report wrote.
struct Reported {
    /// The Account as the final status write left it, when it wrote.
    status_written: Option<Account>,
    /// When the next deletion enters the advance notice, to wake up for it.
    next_notice_at: Option<DateTime<Utc>>,
}

/// Tells what happened: upcoming deletions and changed erasure requests as events, and the
/// status written once, from the plan of what is still bound.
async fn report(
    ctx: &Context,
    observed: &Observed,
    acted: &Acted,
    now: DateTime<Utc>,
) -> Result<Reported, Error> {
    let account = &observed.account;
    let remaining: Vec<&ResourcePlan> = acted.plan.resources.iter().collect();
    let announced_until = acted
        .written
        .status
        .as_ref()
        .and_then(|s| s.deletions_announced_until);
    let notice = announcements(
        &remaining,
        announced_until,
        now,
        ctx.settings.advance_notice,
    );
    announce(ctx, account, &notice.now).await;
    announce_suspension(ctx, account, observed.suspended_by(), now).await;
    let stored = stored_requests(account);
    processors::report_changes(ctx, account, stored, &acted.requests.entries, now).await;
    let unknown = unknown_processors(&acted.plan, &observed.processors);
    let status = |previous: Option<&AccountStatus>, receipted: &[ReceiptWritten]| {
        let mut deletions = acted.erasure.ledger();
        deletions.receipted = receipted;
        account_status(&StatusInput {
            plan: &acted.plan,
            previous,
            generation: account.metadata.generation,
            deleted: &acted.gone,
            deletions,
            failures: &acted.failures,
            unknown_processors: &unknown,
            malformed: &observed.claims.malformed,
            announced_until: notice.announced_until,
            processors: Some(&acted.requests.entries),
            suspended_by: observed.suspended_by(),
            now,
        })
    };
    let status_written = write_receipted_status(ctx, &observed.policy, acted, status, now).await?;
    Ok(Reported {
        status_written,
        next_notice_at: notice.next_at,
    })
}

/// Writes the receipts of the erasure times this pass completed, then the status (`status`
/// of the stored one and the receipts written) that records them: the proof as it will stand
/// tells which are complete. Then brings the receipts' statuses in line with the requests.
/// A receipt that cannot be written is reported; the status is written all the same, and the
/// pass fails after it (to be retried).
async fn write_receipted_status(
    ctx: &Context,
    policy: &RetentionPolicySpec,
    acted: &Acted,
    status: impl Fn(Option<&AccountStatus>, &[ReceiptWritten]) -> AccountStatus,
    now: DateTime<Utc>,
) -> Result<Option<Account>, Error> {
    // Only objects recorded as under way or waiting can be receipted: most passes have none.
    let waiting = acted
        .written
        .status
        .as_ref()
        .and_then(|s| s.erasure.as_ref())
        .is_some_and(|e| !e.erased.is_empty() || !e.deleting.is_empty());
    let certified = if waiting {
        let mut proven = acted.written.clone();
        proven.status = Some(status(acted.written.status.as_ref(), &[]));
        receipts::certify(ctx, &proven, &acted.plan, &acted.requests.entries, now).await
    } else {
        Ok((Vec::new(), Vec::new()))
    };
    let receipted = match &certified {
        Ok((written, _)) => written.as_slice(),
        Err(error) => {
            let note = format!(
                "cannot write an ErasureReceipt ({}); the account keeps its finalizer until it \
                 is written",
                error.reason()
            );
            let (type_, reason) = (EventType::Warning, receipts::RECEIPT_FAILED);
            ctx.publish(&acted.written, None, type_, reason, &note)
                .await;
            &[]
        }
    };
    let status_written =
        write_status(ctx, &acted.written, |previous| status(previous, receipted)).await?;
    let (_, just_read) = certified?;
    let last = status_written.as_ref().unwrap_or(&acted.written);
    let written = last
        .status
        .as_ref()
        .and_then(|s| s.erasure.as_ref())
        .map_or(&[][..], |e| e.receipts.as_slice());
    let keep_for = policy.receipts_keep_for();
    receipts::sync_statuses(ctx, written, &just_read, &acted.requests.entries, keep_for).await?;
    Ok(status_written)
}

/// Ends the pass: releases an Account being deleted once nothing is left, or picks when to
/// look again.
async fn wake_up(
    ctx: &Context,
    observed: &Observed,
    acted: &Acted,
    reported: &Reported,
    now: DateTime<Utc>,
) -> Result<Action, Error> {
    let name = &observed.name;
    let last = reported.status_written.as_ref().unwrap_or(&acted.written);
    let proof_settled = last
        .status
        .as_ref()
        .and_then(|s| s.erasure.as_ref())
        .is_none_or(|e| e.deleting.is_empty() && e.erased.is_empty());
    debug!(
        account = %name,
        deleting = observed.deleting,
        bound = acted.plan.resources.len(),
        unreadable = observed.claims.malformed.len(),
        proof_settled,
        requests_settled = all_settled(&acted.requests.entries),
        "pass done"
    );
    // Unreadable objects are data too, and the delivery record of the erasure requests and
    // of the deletions lives in this status: the finalizer stays until all are done.
    if observed.deleting
        && acted.plan.resources.is_empty()
        && observed.claims.malformed.is_empty()
        && proof_settled
        && all_settled(&acted.requests.entries)
    {
        // The cache may lag behind the server (an object created just before the Account was
        // deleted, a watch catching up): once the finalizer is gone, whatever is still bound
        // is unbound for good and never deleted. So the server must show nothing bound.
        if ctx
            .act(cluster::anything_bound_to(&ctx.client, name))
            .await?
        {
            debug!(account = %name, "the cache is behind: objects still bound on the server");
            // Their watch events start the next pass; this is for a watch that is down.
            return Ok(Action::requeue(CACHE_BEHIND_RETRY));
        }
        remove_finalizer(ctx, last).await?;
        ctx.brakes
            .expect(&observed.account.spec.retention_policy_ref, name, None)
            .await;
        ctx.superseded.forget(name);
        ctx.tombstones.forget(name);
        ctx.metrics
            .record_deletions(name, ScheduledDeletions::default());
        return Ok(Action::await_change());
    }
    record_deletions(ctx, name, &acted.plan);
    expect_next(ctx, observed, &acted.plan, now).await;
    if !acted.failures.is_empty() || acted.stamps_failed {
        // A failing deletion (or stamp) is retried later and later, never at once: every
        // retry also publishes an event.
        let progressed = !acted.gone.is_empty();
        return Ok(Action::requeue(ctx.failing.failed(name, progressed)));
    }
    ctx.failing.succeeded(name);
    if let Some(wait) = acted.brake_wait {
        // The brake admits the batch with its next write.
        return Ok(Action::requeue(wait));
    }
    if acted.interrupted || acted.more_due {
        // More is due than one batch, or the plan changed under a deletion: the next pass
        // reads everything again.
        return Ok(Action::requeue(NEXT_BATCH));
    }
    let remaining: Vec<&ResourcePlan> = acted.plan.resources.iter().collect();
    let next_at = reported
        .next_notice_at
        .into_iter()
        .chain(acted.requests.next_attempt_at)
        .min();
    Ok(next_wakeup(&remaining, next_at, now))
}

/// Records the account's scheduled deletions still to come, for the pending, overdue and
/// suspended gauges: each scrape compares them with the clock, so one whose pass never comes
/// shows as overdue.
fn record_deletions(ctx: &Context, name: &str, plan: &AccountPlan) {
    let deletions = ScheduledDeletions {
        delete_at: plan
            .resources
            .iter()
            .filter_map(|r| r.schedule.delete_at)
            .collect(),
        suspended: plan.erasure_suspended,
    };
    ctx.metrics.record_deletions(name, deletions);
}

/// Tells the brake the account's next scheduled deletions, so that the write of its count
/// before they fall due admits them and they do not wait for the next.
async fn expect_next(ctx: &Context, observed: &Observed, plan: &AccountPlan, now: DateTime<Utc>) {
    let next = if ctx.settings.dry_run || plan.erasure_suspended {
        None
    } else {
        plan.resources
            .iter()
            .filter_map(|r| r.schedule.delete_at)
            .filter(|at| *at > now)
            .min()
    };
    let expected = next.map(|at| {
        let uids = plan
            .resources
            .iter()
            .filter(|r| r.schedule.delete_at == Some(at))
            .filter_map(|r| Some(observed.claims.versions.get(&r.resource)?.uid.clone()))
            .take(MAX_BATCH)
            .collect();
        (at, uids)
    });
    ctx.brakes
        .expect(
            &observed.account.spec.retention_policy_ref,
            &observed.name,
            expected,
        )
        .await;
}

/// The due objects one pass deletes.
#[derive(Default)]
struct Batch {
    /// Due now, with a known version, at most [`MAX_BATCH`]: indexes into the plan's resources.
    due: Vec<usize>,
    /// More are due than this batch holds.
    more: bool,
    /// Held back until the brake's next count, written in this long.
    brake_wait: Option<Duration>,
}

impl Batch {
    fn of(
        plan: &AccountPlan,
        versions: &HashMap<ResourceRef, ObjectVersion>,
        now: DateTime<Utc>,
    ) -> Self {
        // An object without a known version was changed by this pass's own writes (a stamp
        // whose answer differed from the plan): the watch brings it back for the next pass.
        let mut due = plan
            .resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_due(now) && versions.contains_key(&r.resource))
            .map(|(index, _)| index);
        let batch: Vec<usize> = due.by_ref().take(MAX_BATCH).collect();
        let more = due.next().is_some();
        Self {
            due: batch,
            more,
            brake_wait: None,
        }
    }

    /// The batch's objects in `plan`.
    fn resources<'a>(&self, plan: &'a AccountPlan) -> Vec<&'a ResourcePlan> {
        self.due
            .iter()
            .filter_map(|&index| plan.resources.get(index))
            .collect()
    }
}

/// How the record of deletions under way (`status.erasure.deleting`) changes this pass (see
/// [`DeletionLedger`]).
struct ErasureRecord {
    starting: Vec<DeletingItem>,
    gone: BTreeSet<String>,
    called_off: BTreeSet<String>,
    /// When this pass's deletions were confirmed.
    confirmed_at: Option<DateTime<Utc>>,
    /// The receipts this pass wrote or found written.
    receipted: Vec<ReceiptWritten>,
}

impl ErasureRecord {
    /// Settles what earlier passes recorded against the cache: a recorded object no longer
    /// there (by uid) is gone; one still there and no longer due is called off; one still due
    /// is deleted again.
    fn settle(
        account: &Account,
        plan: &AccountPlan,
        present: &HashSet<String>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut gone = BTreeSet::new();
        let mut called_off = BTreeSet::new();
        for item in recorded(account) {
            if !present.contains(&item.uid) {
                gone.insert(item.uid.clone());
                continue;
            }
            let due = plan.resources.iter().any(|r| {
                r.is_due(now)
                    && r.resource.kind.as_str() == item.kind
                    && r.resource.namespace == item.namespace
                    && r.resource.name == item.name
            });
            // Recorded deletions belong to a termination: once the account is live again
            // they are off, even when the object is due on the live account's own rules (a
            // backup past its schedule). Deleting it then is no part of the erasure, and
            // counting it would make the proof claim an erasure that did not happen. The
            // chaos campaign's regression seed 20261202 drives this case.
            if !due || plan.terminated_at.is_none() {
                called_off.insert(item.uid.clone());
            }
        }
        Self {
            starting: Vec::new(),
            gone,
            called_off,
            confirmed_at: None,
            receipted: Vec::new(),
        }
    }

    /// Records the deletions this pass is about to send.
    fn start(&mut self, due: &[&ResourcePlan], versions: &HashMap<ResourceRef, ObjectVersion>) {
        self.starting = due
            .iter()
            .filter_map(|r| {
                let version = versions.get(&r.resource)?;
                Some(DeletingItem {
                    kind: r.resource.kind.as_str().to_owned(),
                    namespace: r.resource.namespace.clone(),
                    name: r.resource.name.clone(),
                    uid: version.uid.clone(),
                    delete_at: r.schedule.delete_at,
                    legal_basis: Some(r.schedule.legal_basis),
                    rule: Some(r.schedule.reason.clone()),
                })
            })
            .collect();
    }

    /// Whether the stored record must be rewritten before this pass deletes anything: it
    /// starts a deletion the record does not hold yet, or it calls off one the record holds.
    /// A call-off must be stored before a DELETE too: the object may be going for a live
    /// reason (a backup past its schedule on a reactivated account), and if the pass died
    /// after that DELETE with the record unchanged, the next pass would find the object gone
    /// and count it in the erasure proof.
    fn changes_record(&self, account: &Account) -> bool {
        let recorded = recorded(account);
        let starts_new = self
            .starting
            .iter()
            .any(|item| !recorded.iter().any(|r| r.uid == item.uid));
        starts_new || !self.called_off.is_empty()
    }

    fn ledger(&self) -> DeletionLedger<'_> {
        DeletionLedger {
            starting: &self.starting,
            gone: &self.gone,
            called_off: &self.called_off,
            confirmed_at: self.confirmed_at,
            receipted: &self.receipted,
        }
    }
}

/// Calls a recorded deletion off only on the API server's word that its object still stands
/// (the same uid): the cache may still show an object that went under the termination (a
/// standby that takes over while its watch catches up), and dropping it from the record would
/// leave that deletion out of the erasure proof. Called-off deletions are rare (a reactivation,
/// a hold or a policy change while deletions are recorded), so are these reads; they go a few
/// at a time, as a call-off can cover a whole batch.
async fn confirm_called_off(
    ctx: &Context,
    account: &Account,
    erasure: &mut ErasureRecord,
) -> Result<(), Error> {
    const AT_ONCE: usize = 8;
    let to_confirm: Vec<(ResourceRef, String)> = recorded(account)
        .iter()
        .filter(|item| erasure.called_off.contains(&item.uid))
        .filter_map(|item| {
            let resource = ResourceRef {
                kind: item.kind.parse().ok()?,
                namespace: item.namespace.clone(),
                name: item.name.clone(),
            };
            Some((resource, item.uid.clone()))
        })
        .collect();
    let confirmed: Vec<(String, bool)> = futures::stream::iter(to_confirm)
        .map(|(resource, uid)| async move {
            let standing = ctx.act(cluster::uid_of(&ctx.client, &resource)).await?;
            let stands = standing.as_deref() == Some(uid.as_str());
            Ok::<_, Error>((uid, stands))
        })
        .buffer_unordered(AT_ONCE)
        .try_collect()
        .await?;
    for (uid, stands) in confirmed {
        if !stands {
            erasure.called_off.remove(&uid);
            erasure.gone.insert(uid);
        }
    }
    Ok(())
}

/// Audits the recorded deletions found gone: a pass cut short after its DELETE may not have
/// logged it (a line may repeat when the status write that records it fails).
fn audit_found_deleted(account: &Account, gone: &BTreeSet<String>, now: DateTime<Utc>) {
    for item in recorded(account).iter().filter(|i| gone.contains(&i.uid)) {
        let mut record = AuditRecord::new(
            AuditAction::FoundDeleted,
            now,
            &item.kind,
            Some(&item.namespace),
            &item.name,
        )
        .account(&account.name_any())
        .uid(Some(&item.uid))
        .delete_at(item.delete_at);
        if let Some(rule) = &item.rule {
            record = record.rule(rule);
        }
        record.emit();
    }
}

/// The deletions the stored status records as under way.
fn recorded(account: &Account) -> &[DeletingItem] {
    account
        .status
        .as_ref()
        .and_then(|s| s.erasure.as_ref())
        .map_or(&[], |e| e.deleting.as_slice())
}

/// Reports an Account whose spec says Terminated without `terminatedAt` (stored before the
/// schema required it): nothing is planned, stamped or deleted, because any time the operator
/// picked could skip a grace period (the time it first saw the termination may belong to an
/// earlier termination that was reverted unseen).
async fn report_termination_time_missing(
    ctx: &Context,
    account: &Account,
    now: DateTime<Utc>,
) -> Result<Action, Error> {
    let generation = account.metadata.generation;
    let written = write_status(ctx, account, |previous| {
        termination_time_missing_status(previous, generation, now)
    })
    .await?;
    if written.is_some() {
        warn!(account = %account.name_any(), "terminated without terminatedAt: nothing is erased");
        ctx.publish(
            account,
            None,
            EventType::Warning,
            TERMINATION_TIME_MISSING,
            TERMINATION_TIME_MISSING_MESSAGE,
        )
        .await;
    }
    Ok(Action::await_change())
}

/// `processorRef`/`registrar` names in the plan that match no DataProcessor.
fn unknown_processors(
    plan: &AccountPlan,
    processors: &std::collections::BTreeMap<String, crate::api::DataProcessorSpec>,
) -> Vec<String> {
    plan.resources
        .iter()
        .flat_map(|r| r.processors.iter())
        .filter(|p| !processors.contains_key(*p))
        .cloned()
        .collect()
}

/// Announces deletions a configured time ahead (`--advance-notice`).
async fn announce(ctx: &Context, account: &Account, upcoming: &[&ResourcePlan]) {
    let items: Vec<(&ResourceRef, String)> = upcoming
        .iter()
        .filter_map(|resource| {
            let at = resource.schedule.delete_at?;
            let said = format!(
                "at {} ({})",
                crate::clock::rfc3339(at),
                resource.schedule.reason
            );
            Some((&resource.resource, said))
        })
        .collect();
    if !items.is_empty() {
        let lead = format!("{} will be deleted", events::objects(items.len()));
        let type_ = EventType::Normal;
        publish_about(ctx, account, type_, "DeletionUpcoming", &lead, &items).await;
    }
}

/// Tells when the account's erasure is suspended or resumed, compared with what its stored
/// status shows: one event per change (again if the status write after it failed).
async fn announce_suspension(
    ctx: &Context,
    account: &Account,
    suspended_by: Option<&str>,
    now: DateTime<Utc>,
) {
    let shown = account.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == ERASURE_SUSPENDED && c.status == ConditionStatus::True)
    });
    let policy = &account.spec.retention_policy_ref;
    match (shown, suspended_by) {
        (false, Some(_)) => {
            let note = format!(
                "RetentionPolicy {policy} is suspended: nothing of this account is deleted and \
                 no erasure request is sent until it is lifted"
            );
            audit_account(AuditAction::ErasureSuspended, account, now)
                .detail(format!("RetentionPolicy {policy} spec.suspend is true"))
                .emit();
            ctx.publish(account, None, EventType::Warning, "ErasureSuspended", &note)
                .await;
        }
        (true, None) => {
            let note = format!("RetentionPolicy {policy} is no longer suspended: erasure resumes");
            audit_account(AuditAction::ErasureResumed, account, now)
                .detail(format!(
                    "RetentionPolicy {policy} spec.suspend is no longer true"
                ))
                .emit();
            ctx.publish(account, None, EventType::Normal, "ErasureResumed", &note)
                .await;
        }
        _ => {}
    }
}

/// An audit record of `action` on the Account itself.
pub fn audit_account(action: AuditAction, account: &Account, now: DateTime<Utc>) -> AuditRecord {
    let name = account.name_any();
    AuditRecord::new(action, now, "Account", None, &name)
        .uid(account.metadata.uid.as_deref())
        .account(&name)
}

/// Sleeps until the next deletion or advance notice, in steps of at most [`MAX_TIMER`].
fn next_wakeup(
    remaining: &[&ResourcePlan],
    next_notice: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Action {
    // Objects already due that are still here were kept on purpose (a dry run, or a re-check
    // that found them no longer due): waking for them would only spin. Failed deletions are
    // retried through RETRY_FAILED instead.
    let upcoming = remaining
        .iter()
        .filter_map(|r| r.schedule.delete_at)
        .chain(next_notice)
        .filter(|at| *at > now);
    match upcoming.min() {
        None => Action::await_change(),
        Some(next) => {
            let wait = (next - now)
                .max(TimeDelta::seconds(1))
                .to_std()
                .unwrap_or(MAX_TIMER);
            Action::requeue(wait.min(MAX_TIMER))
        }
    }
}

/// Reports an Account that does not match this operator's schema: `Ready=False` and a Warning
/// event, written only when the condition changes. Nothing bound to it is planned, so nothing
/// is deleted, and its finalizer stays.
async fn report_malformed_account(
    ctx: &Context,
    object: &Guarded<Account>,
    malformed: &Malformed,
    now: DateTime<Utc>,
) -> Result<Action, Error> {
    let conditions = malformed_account_conditions(
        &malformed.conditions,
        &malformed.field,
        object.meta().generation,
        now,
    );
    if conditions == malformed.conditions {
        return Ok(Action::await_change());
    }
    // Through the guarded type: the answer is the same unreadable Account.
    let accounts: Api<Guarded<Account>> = Api::all(ctx.client.clone());
    let patch = json!({"status": {"conditions": conditions}});
    let params = PatchParams::default();
    match ctx
        .act(accounts.patch_status(&object.name_any(), &params, &Patch::Merge(&patch)))
        .await
    {
        Ok(_) => {}
        Err(error) if error.is_status(404) => return Ok(Action::await_change()),
        Err(error) => return Err(error),
    }
    ctx.superseded.record(
        &object.name_any(),
        object.meta().resource_version.as_deref(),
    );
    warn!(account = %object.name_any(), field = %malformed.field, "malformed Account: nothing bound to it is erased");
    let note = format!(
        "the Account cannot be read at {} (it does not match this operator's schema): nothing \
         bound to it is erased until it is corrected",
        malformed.field
    );
    ctx.publish_regarding(
        &object.object_ref(&()),
        None,
        EventType::Warning,
        "MalformedAccount",
        &note,
    )
    .await;
    Ok(Action::await_change())
}

/// Adds the finalizer; the Account as written, or `None` when it is gone.
async fn add_finalizer(
    ctx: &Context,
    account: &Guarded<Account>,
) -> Result<Option<Guarded<Account>>, Error> {
    let mut finalizers = account.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    // The resourceVersion makes the patch conditional: a concurrent change is not overwritten.
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": account.resource_version()}});
    // Through the guarded type, so an Account this operator cannot read gets it too.
    let accounts: Api<Guarded<Account>> = Api::all(ctx.client.clone());
    let params = PatchParams::default();
    match ctx
        .act(accounts.patch(&account.name_any(), &params, &Patch::Merge(&patch)))
        .await
    {
        Ok(patched) => {
            ctx.superseded.record(
                &account.name_any(),
                account.meta().resource_version.as_deref(),
            );
            Ok(Some(patched))
        }
        Err(error) if error.is_status(404) => Ok(None),
        Err(error) => Err(error),
    }
}

async fn remove_finalizer(ctx: &Context, account: &Account) -> Result<(), Error> {
    let accounts: Api<Account> = Api::all(ctx.client.clone());
    let finalizers: Vec<&String> = account
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": account.resource_version()}});
    let params = PatchParams::default();
    match ctx
        .act(accounts.patch(&account.name_any(), &params, &Patch::Merge(&patch)))
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if error.is_status(404) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Writes the status by server-side apply, and only when it changed: a steady state writes
/// nothing. The Account as written, when it wrote. The status builds on the stored one (the erasure proof is cumulative), so the
/// write is conditional on the Account's resourceVersion: when the cached Account was stale,
/// the Account is read again and the status computed again from what is really stored, so no
/// deletion goes uncounted.
async fn write_status(
    ctx: &Context,
    account: &Account,
    compute: impl Fn(Option<&AccountStatus>) -> AccountStatus,
) -> Result<Option<Account>, Error> {
    let accounts: Api<Account> = Api::all(ctx.client.clone());
    let mut current = account.clone();
    for _ in 0..STATUS_ATTEMPTS {
        let mut status = compute(current.status.as_ref());
        if current.status.as_ref().map(in_type_order).as_ref() == Some(&status) {
            return Ok(None);
        }
        // Only the operator's own condition types: another controller's stay its own.
        status
            .conditions
            .retain(|c| ACCOUNT_CONDITION_TYPES.contains(&c.type_.as_str()));
        let patch = json!({
            "apiVersion": Account::api_version(&()),
            "kind": Account::kind(&()),
            "metadata": {"resourceVersion": current.resource_version()},
            "status": status,
        });
        let params = PatchParams::apply(cluster::MANAGER).force();
        let name = current.name_any();
        match ctx
            .act(accounts.patch_status(&name, &params, &Patch::Apply(&patch)))
            .await
        {
            Ok(written) => {
                // An apply that changed nothing leaves the version as it was, and no watch
                // event follows: marking it superseded would make every later pass on it wait
                // for an event that never comes.
                if written.resource_version() != current.resource_version() {
                    ctx.superseded
                        .record(&name, current.resource_version().as_deref());
                }
                return Ok(Some(written));
            }
            Err(error) if error.is_status(404) => return Ok(None),
            Err(error) if error.is_status(409) => match ctx.act(accounts.get_opt(&name)).await? {
                // The spec changed since this pass planned: its status would describe the old
                // one. The change's watch event starts the pass that plans the new one.
                Some(fresh) if fresh.metadata.generation != account.metadata.generation => {
                    return Ok(None);
                }
                Some(fresh) => current = fresh,
                None => return Ok(None),
            },
            Err(error) => return Err(error),
        }
    }
    Err(Error::StatusConflict)
}

/// `status` with its conditions in type order, as the operator computes them: the API server
/// keeps a map list in the order its items were applied, and another controller's condition
/// may sit anywhere in it, so comparing in stored order would see a change where there is none
/// and write for nothing.
fn in_type_order(status: &AccountStatus) -> AccountStatus {
    let mut status = status.clone();
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    status
}

/// Makes the durable schedule on every object say what the plan says. A stamp that fails is
/// logged and counted and the pass goes on: one object must never block another's deletion or
/// the account's status. `versions` follows each write, so that a deletion in the same pass is
/// conditional on the version as stamped; an object whose answer shows facts other than those
/// planned (changed meanwhile) loses its version and is not deleted this pass. True when a
/// stamp failed (to retry later).
async fn stamp_schedules(
    ctx: &Context,
    account: &Account,
    plan: &AccountPlan,
    bound: &[BoundResource],
    versions: &mut HashMap<ResourceRef, ObjectVersion>,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let mut failed = false;
    let (mut scheduled, mut cancelled) = (Vec::new(), Vec::new());
    for resource in &plan.resources {
        let object = bound.iter().find(|b| b.reference == resource.resource);
        let stamped = object.and_then(|b| b.stamped_delete_at);
        let (schedule, event) = match schedule_change(stamped, resource.schedule.delete_at) {
            ScheduleChange::Unchanged => {
                // A Backup shows why it expires then; the rule that sets the time can change
                // without the time changing (a newer backup of the month takes over).
                let stale_reason = resource.resource.kind == ResourceKind::Backup
                    && resource.schedule.delete_at.is_some()
                    && object.and_then(|b| b.stamped_reason.as_deref())
                        != Some(resource.schedule.reason.as_str());
                if !stale_reason {
                    continue;
                }
                (Some(&resource.schedule), None)
            }
            ScheduleChange::Set(at) => {
                let said = format!(
                    "at {} ({})",
                    crate::clock::rfc3339(at),
                    resource.schedule.reason
                );
                (
                    Some(&resource.schedule),
                    Some((said, AuditAction::ScheduleSet)),
                )
            }
            ScheduleChange::Cancel => {
                let said = format!("({})", resource.schedule.reason);
                (None, Some((said, AuditAction::ScheduleCancelled)))
            }
        };
        match ctx
            .act(cluster::stamp(&ctx.client, &resource.resource, schedule))
            .await
        {
            Ok(written) => {
                let unchanged = written
                    .as_ref()
                    .zip(object)
                    .is_some_and(|(w, o)| same_facts(&w.bound, o));
                if let (Some(written), Some((_, action))) = (&written, &event) {
                    audit_schedule(account, resource, stamped, *action, &written.version, now);
                }
                match written {
                    Some(written) if unchanged => {
                        versions.insert(resource.resource.clone(), written.version);
                    }
                    _ => {
                        versions.remove(&resource.resource);
                    }
                }
                match event {
                    Some((said, AuditAction::ScheduleSet)) => {
                        scheduled.push((&resource.resource, said));
                    }
                    Some((said, _)) => cancelled.push((&resource.resource, said)),
                    None => {}
                }
            }
            Err(error) if error.not_leader() => return Err(error),
            Err(error) => {
                failed = true;
                ctx.metrics.error("account", error.reason());
                warn!(resource = %resource.resource, reason = error.reason(), "cannot stamp the schedule; the pass goes on");
            }
        }
    }
    report_schedules(ctx, account, &scheduled, &cancelled).await;
    Ok(failed)
}

/// One event for a pass's new schedules and one for its cancellations, however many objects:
/// the audit log names each.
async fn report_schedules(
    ctx: &Context,
    account: &Account,
    scheduled: &[(&ResourceRef, String)],
    cancelled: &[(&ResourceRef, String)],
) {
    if !scheduled.is_empty() {
        let lead = format!(
            "{} scheduled for deletion",
            events::objects(scheduled.len())
        );
        let type_ = EventType::Normal;
        publish_about(
            ctx,
            account,
            type_,
            "ScheduledForDeletion",
            &lead,
            scheduled,
        )
        .await;
    }
    if !cancelled.is_empty() {
        let count = cancelled.len();
        let lead = format!(
            "{count} scheduled deletion{} cancelled",
            if count == 1 { "" } else { "s" }
        );
        let type_ = EventType::Normal;
        publish_about(ctx, account, type_, "ScheduleCancelled", &lead, cancelled).await;
    }
}

/// The audit record of a schedule set or cancelled on an object (`stamped`: the time it had).
fn audit_schedule(
    account: &Account,
    resource: &ResourcePlan,
    stamped: Option<DateTime<Utc>>,
    action: AuditAction,
    written: &ObjectVersion,
    now: DateTime<Utc>,
) {
    let set = action == AuditAction::ScheduleSet;
    let delete_at = if set {
        resource.schedule.delete_at
    } else {
        stamped
    };
    let mut record = AuditRecord::on(action, now, &resource.resource, &account.name_any())
        .uid(Some(&written.uid))
        .rule(&resource.schedule.reason)
        .delete_at(delete_at);
    if let Some(before) = stamped.filter(|_| set) {
        record = record.detail(format!("moved from {}", crate::clock::rfc3339(before)));
    }
    record.emit();
}

/// Whether an object as written has the facts it was planned from (the stamp itself aside).
fn same_facts(written: &BoundResource, planned: &BoundResource) -> bool {
    written.reference == planned.reference
        && written.account == planned.account
        && written.facts == planned.facts
}

/// What the plan was made from besides the Account.
struct PlanInputs<'a> {
    policy: &'a RetentionPolicySpec,
}

/// What one pass's deletions came to.
#[derive(Default)]
struct Deletions {
    /// Deleted by this pass's requests, with the uid deleted.
    deleted: Vec<(ResourceRef, String)>,
    /// Found already gone (deleted earlier, by this operator or anyone else), with the uid
    /// that is gone.
    vanished: Vec<(ResourceRef, String)>,
    /// Deletions that failed.
    failures: Vec<DeletionFailure>,
    /// The Account, the policy or an object changed under the batch: what is left of it waits
    /// for the next pass, which plans again.
    interrupted: bool,
    /// The last round read the RetentionPolicy from the API server and found it still the one
    /// planned from.
    policy_confirmed: bool,
}

/// Attempts of one deletion whose DELETE the API server turned away for now (429, 5xx) before
/// the pass records it as failed and backs off. The operator's client does not retry on its
/// own (`client_config`): a retry goes with the next round of the batch, after the Account is
/// read again, so it is decided on fresh state like the first attempt (invariant 3).
const DELETE_ATTEMPTS: u32 = 3;

/// Deletes the due objects of the batch, each on what the API server holds (docs/design.md
/// §4, invariant 3): round by round, as many as the adaptive window lets go at once, the
/// Account and its RetentionPolicy are read together and that round's DELETEs are sent
/// together right after the answer, each conditional on the uid and resourceVersion the plan
/// was made from. The first round uses the Account as the record's status write returned it,
/// when the pass wrote one: that answer is as fresh as a read. Fails only when this replica may
/// no longer lead; every other failure is recorded per object.
async fn delete_due(
    ctx: &Context,
    account: &Account,
    written: Option<&Account>,
    inputs: &PlanInputs<'_>,
    due: &[&ResourcePlan],
    versions: &HashMap<ResourceRef, ObjectVersion>,
    now: DateTime<Utc>,
) -> Result<Deletions, Error> {
    let mut outcome = Deletions::default();
    let mut would_delete = Vec::new();
    // Each due object with its version and the attempts made so far.
    let mut pending: VecDeque<DueObject<'_>> = due
        .iter()
        .filter_map(|r| Some((*r, versions.get(&r.resource)?, 0)))
        .collect();
    let mut just_written = written;
    while !pending.is_empty() {
        let take = ctx.deletes.window().min(pending.len());
        let round: Vec<_> = pending.drain(..take).collect();
        if let Some(tries) = round
            .iter()
            .map(|(_, _, tries)| *tries)
            .max()
            .filter(|t| *t > 0)
        {
            // Turned away for now: a short pause (200 ms, then 400 ms) before trying again.
            tokio::time::sleep(std::time::Duration::from_millis(100 << tries)).await;
        }
        let permits = ctx.deletes.acquire(round.len()).await;
        // The status write's answer serves as the read only when the permits came at once:
        // after a wait for room in the window it may be older than a round trip.
        let written = just_written.take().filter(|_| !permits.waited);
        let policy = match fresh_rules(ctx, account, written, inputs).await {
            Ok(Some(policy)) => {
                outcome.policy_confirmed = true;
                policy
            }
            Ok(None) => {
                // Nothing more is deleted on the old plan.
                outcome.interrupted = true;
                outcome.policy_confirmed = false;
                break;
            }
            Err(failure) if failure.not_leader() => return Err(failure.into()),
            Err(failure) => {
                outcome.policy_confirmed = false;
                let error = Error::from(failure);
                unreadable(
                    ctx,
                    account,
                    &error,
                    round
                        .iter()
                        .map(|(r, _, _)| *r)
                        .chain(pending.iter().map(|(r, _, _)| *r)),
                    &mut outcome,
                );
                break;
            }
        };
        if ctx.settings.dry_run {
            would_delete.extend(round.iter().map(|(r, _, _)| *r));
            continue;
        }
        let answers = futures::future::join_all(round.iter().map(|(resource, version, _)| {
            delete_admitted(ctx, &policy, resource, version, &permits, now)
        }))
        .await;
        drop(permits);
        for (item, answer) in round.into_iter().zip(answers) {
            if let Some(retry) = outcome.take(ctx, account, item, answer, now)? {
                pending.push_back(retry);
            }
        }
    }
    report_deletions(ctx, account, &outcome, &would_delete, due).await;
    Ok(outcome)
}

/// A due object, its version, and the attempts made so far to delete it.
type DueObject<'a> = (&'a ResourcePlan, &'a ObjectVersion, u32);

impl Deletions {
    /// Takes in what became of one due object's DELETE; the object again when it is to be
    /// tried again.
    fn take<'a>(
        &mut self,
        ctx: &Context,
        account: &Account,
        (resource, version, tries): DueObject<'a>,
        answer: Result<Outcome, Error>,
        now: DateTime<Utc>,
    ) -> Result<Option<DueObject<'a>>, Error> {
        let uid = &version.uid;
        match answer {
            Ok(Outcome::Deleted) => {
                audit_deletion(ctx, AuditAction::Deleted, account, resource, uid, now);
                self.deleted.push((resource.resource.clone(), uid.clone()));
            }
            Ok(Outcome::AlreadyGone) => {
                audit_deletion(ctx, AuditAction::FoundDeleted, account, resource, uid, now);
                self.vanished.push((resource.resource.clone(), uid.clone()));
            }
            Ok(Outcome::NotAdmitted | Outcome::ObjectChanged) => self.interrupted = true,
            Err(error) if error.not_leader() => return Err(error),
            Err(error) if error.is_transient() && tries + 1 < DELETE_ATTEMPTS => {
                return Ok(Some((resource, version, tries + 1)));
            }
            Err(error) => self.failures.push(deletion_failure(ctx, resource, &error)),
        }
        Ok(None)
    }
}

/// Records every object of the batch still to go as failed: without the Account and its
/// RetentionPolicy as the API server holds them, nothing may be deleted.
fn unreadable<'a>(
    ctx: &Context,
    account: &Account,
    error: &Error,
    left: impl Iterator<Item = &'a ResourcePlan>,
    outcome: &mut Deletions,
) {
    ctx.metrics.error("account", error.reason());
    warn!(account = %account.name_any(), reason = error.reason(), "cannot read the Account or its RetentionPolicy again before deleting");
    outcome
        .failures
        .extend(left.map(|resource| DeletionFailure {
            resource: resource.resource.clone(),
            reason: error.reason().to_owned(),
            message: format!(
                "re-reading the Account and its RetentionPolicy before deleting {} failed: {}",
                resource.resource,
                error.reason()
            ),
        }));
}

/// Audits a deletion this pass made, or found made (`action`), of the object with `uid`; one it
/// made is counted too.
fn audit_deletion(
    ctx: &Context,
    action: AuditAction,
    account: &Account,
    resource: &ResourcePlan,
    uid: &str,
    now: DateTime<Utc>,
) {
    AuditRecord::on(action, now, &resource.resource, &account.name_any())
        .uid(Some(uid))
        .rule(&resource.schedule.reason)
        .delete_at(resource.schedule.delete_at)
        .emit();
    if action == AuditAction::Deleted {
        let late = resource
            .schedule
            .delete_at
            .map_or(TimeDelta::zero(), |at| now - at);
        let (kind, rule) = (resource.resource.kind.as_str(), resource.schedule.rule);
        ctx.metrics.deleted(kind, rule.as_str(), late);
    }
}

/// A failed DELETE, counted and logged; the failure, for the status and the event.
fn deletion_failure(ctx: &Context, resource: &ResourcePlan, error: &Error) -> DeletionFailure {
    ctx.metrics.error("account", error.reason());
    warn!(resource = %resource.resource, reason = error.reason(), "deletion failed");
    DeletionFailure {
        resource: resource.resource.clone(),
        reason: error.reason().to_owned(),
        message: format!("deleting {} failed: {}", resource.resource, error.reason()),
    }
}

/// One event for what the batch deleted, one for what a dry run would have deleted, and one
/// Warning for what failed: the audit log names each object, and `inventory` and the receipt
/// tell the rest. An event per object cost a request per deletion.
async fn report_deletions(
    ctx: &Context,
    account: &Account,
    outcome: &Deletions,
    would_delete: &[&ResourcePlan],
    due: &[&ResourcePlan],
) {
    let plan_of = |resource: &ResourceRef| due.iter().find(|r| r.resource == *resource).copied();
    let deleted: Vec<&ResourcePlan> = outcome
        .deleted
        .iter()
        .filter_map(|(resource, _)| plan_of(resource))
        .collect();
    if !deleted.is_empty() {
        let lead = format!("{} deleted", events::objects(deleted.len()));
        let items = by_reason(&deleted);
        publish_about(ctx, account, EventType::Normal, "Deleted", &lead, &items).await;
    }
    if !would_delete.is_empty() {
        let lead = format!(
            "dry run: {} would be deleted",
            events::objects(would_delete.len())
        );
        let items = by_reason(would_delete);
        publish_about(
            ctx,
            account,
            EventType::Normal,
            "WouldDelete",
            &lead,
            &items,
        )
        .await;
    }
    if !outcome.failures.is_empty() {
        let count = outcome.failures.len();
        let lead = format!(
            "{count} deletion{} failed",
            if count == 1 { "" } else { "s" }
        );
        let items: Vec<(&ResourceRef, String)> = outcome
            .failures
            .iter()
            .map(|f| (&f.resource, format!("({})", f.reason)))
            .collect();
        publish_about(
            ctx,
            account,
            EventType::Warning,
            "DeletionFailed",
            &lead,
            &items,
        )
        .await;
    }
}

/// Each object with its deletion time and rule, as an event says it.
fn by_reason<'a>(resources: &[&'a ResourcePlan]) -> Vec<(&'a ResourceRef, String)> {
    resources
        .iter()
        .map(|r| {
            let said = match r.schedule.delete_at {
                Some(at) => format!("due {} ({})", crate::clock::rfc3339(at), r.schedule.reason),
                None => format!("({})", r.schedule.reason),
            };
            (&r.resource, said)
        })
        .collect()
}

/// Publishes one event about several objects, each with what is said of it; objects that
/// share what is said are listed together. A single object is also named as the related one.
async fn publish_about(
    ctx: &Context,
    account: &Account,
    type_: EventType,
    reason: &str,
    lead: &str,
    items: &[(&ResourceRef, String)],
) {
    let mut groups: Vec<(String, Vec<&ResourceRef>)> = Vec::new();
    for (resource, said) in items {
        match groups.iter_mut().find(|(s, _)| s == said) {
            Some((_, objects)) => objects.push(resource),
            None => groups.push((said.clone(), vec![*resource])),
        }
    }
    let note = events::group_note(lead, &groups);
    let related = match items {
        [(only, _)] => Some(*only),
        _ => None,
    };
    ctx.publish(account, related, type_, reason, &note).await;
}

/// What became of one due object.
enum Outcome {
    /// This pass's DELETE deleted it.
    Deleted,
    /// It was already gone.
    AlreadyGone,
    /// The brake's count as the API server holds it does not admit it; the next pass looks
    /// again.
    NotAdmitted,
    /// It is not the version planned from (409); the next pass decides again.
    ObjectChanged,
}

/// Why the Account or its RetentionPolicy could not be read again before a DELETE.
struct Unreadable(Error);

impl Unreadable {
    fn not_leader(&self) -> bool {
        self.0.not_leader()
    }
}

impl From<Unreadable> for Error {
    fn from(failure: Unreadable) -> Self {
        failure.0
    }
}

/// Whether two versions of an Account give the same plan: every rule input of the Account is
/// in its spec or its deletionTimestamp (status, annotations and finalizers are not).
fn same_rules(planned: &Account, fresh: &Account) -> bool {
    planned.spec == fresh.spec
        && planned.metadata.deletion_timestamp == fresh.metadata.deletion_timestamp
}

/// Reads the Account from the API server, for a decision taken right after.
async fn fresh_account(ctx: &Context, planned: &Account) -> Result<Option<Account>, Unreadable> {
    let accounts: Api<Account> = Api::all(ctx.client.clone());
    ctx.act(accounts.get_opt(&planned.name_any()))
        .await
        .map_err(Unreadable)
}

/// Reads the Account's RetentionPolicy from the API server, for a decision taken right after.
async fn fresh_policy(
    ctx: &Context,
    planned: &Account,
) -> Result<Option<RetentionPolicy>, Unreadable> {
    let policies: Api<RetentionPolicy> = Api::all(ctx.client.clone());
    ctx.act(policies.get_opt(&planned.spec.retention_policy_ref))
        .await
        .map_err(Unreadable)
}

/// Whether the RetentionPolicy as the API server holds it is still the one planned from, so
/// that erasure requests are not sent under a suspend the cache has not seen yet. A request
/// cannot be taken back, and the read costs one GET per pass that has requests to send.
async fn policy_in_force(
    ctx: &Context,
    account: &Account,
    planned: &RetentionPolicySpec,
) -> Result<bool, Error> {
    let fresh = fresh_policy(ctx, account).await?;
    Ok(fresh.is_some_and(|p| p.spec == *planned))
}

/// The RetentionPolicy as the API server holds it, when it and the Account (`written` by this
/// pass's own status write, or read now) are still what the plan was made from; `None` when
/// either changed, so nothing more is deleted on the old plan.
async fn fresh_rules(
    ctx: &Context,
    planned: &Account,
    written: Option<&Account>,
    inputs: &PlanInputs<'_>,
) -> Result<Option<RetentionPolicy>, Unreadable> {
    // The policy the plan was made from must still be the one in force, in the cache first.
    if !matches!(ctx.stores.policy(&planned.spec.retention_policy_ref), Policy::Found(p) if p == *inputs.policy)
    {
        return Ok(None);
    }
    // Invariant 3: the Account and its RetentionPolicy as the API server holds them, read
    // together right before the DELETEs (the cache may lag behind a policy edit: a longer
    // grace period not yet seen there would make a DELETE early). The objects need no read:
    // each DELETE is conditional on the version planned from.
    let (account, policy) = match written {
        Some(written) => (Ok(Some(written.clone())), fresh_policy(ctx, planned).await),
        None => tokio::join!(fresh_account(ctx, planned), fresh_policy(ctx, planned)),
    };
    match account? {
        Some(fresh) if same_rules(planned, &fresh) => {}
        _ => return Ok(None),
    }
    Ok(policy?.filter(|p| p.spec == *inputs.policy))
}

/// Sends one DELETE the brake's stored count admits, conditional on the version planned from.
async fn delete_admitted(
    ctx: &Context,
    policy: &RetentionPolicy,
    resource: &ResourcePlan,
    version: &ObjectVersion,
    permits: &Permits<'_>,
    now: DateTime<Utc>,
) -> Result<Outcome, Error> {
    // The brake's count as the API server holds it: only a deletion counted there (or
    // approved by a release) goes, whatever this replica believes.
    if !brake::lets_go(policy, &version.uid, resource.schedule.delete_at, now) {
        debug!(resource = %resource.resource, "not admitted by the brake's stored count");
        ctx.brakes
            .not_admitted(&policy.name_any(), &version.uid)
            .await;
        return Ok(Outcome::NotAdmitted);
    }
    let sent = std::time::Instant::now();
    let answer = ctx
        .act(cluster::delete(&ctx.client, &resource.resource, version))
        .await;
    let load = match &answer {
        Err(error) if error.is_transient() => Answer::Overloaded,
        _ => Answer::Served,
    };
    ctx.deletes.observe(permits, load, sent.elapsed());
    match answer {
        Ok(Deleted::ByThisRequest) => Ok(Outcome::Deleted),
        Ok(Deleted::AlreadyGone) => Ok(Outcome::AlreadyGone),
        // Not the version planned from (changed, or replaced by a newer object of the same
        // name): its watch event brings the version as it is now into the cache and starts
        // the next pass, which plans again on it. Nothing is deleted on the old decision.
        Err(error) if error.is_status(409) => Ok(Outcome::ObjectChanged),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use chrono::{DateTime, Utc};
    use kube::api::ObjectMeta;

    use super::ErasureRecord;
    use crate::{
        api::{
            Account, AccountSpec, AccountState, AccountStatus, Backup, BackupSchedule,
            BackupSource, BackupSpec, BookkeepingRetention, DeletingItem, ErasureProof,
            GracePeriods, ResourceKind, RetentionPolicySpec,
        },
        retention::{BoundResource, plan_account},
    };

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn policy() -> RetentionPolicySpec {
        RetentionPolicySpec {
            grace_period: "30d".parse().unwrap(),
            grace_periods: GracePeriods::default(),
            backups: BackupSchedule {
                keep_daily: 7,
                keep_weekly: 0,
                keep_monthly: 0,
                after_termination: None,
            },
            bookkeeping: BookkeepingRetention { years: 7 },
            suspend: false,
            brake: None,
            receipts: None,
        }
    }

    /// An account with the deletion of backup `old` (uid `u-old`) recorded as under way, as
    /// a pass under its termination left it.
    fn account(state: AccountState) -> Account {
        let mut account = Account::new(
            "acme",
            AccountSpec {
                customer_ref: "C-1".into(),
                state,
                terminated_at: (state == AccountState::Terminated)
                    .then(|| at("2026-01-01T00:00:00Z")),
                retention_policy_ref: "default".into(),
                legal_hold: None,
                consents: BTreeMap::new(),
            },
        );
        account.status = Some(AccountStatus {
            erasure: Some(ErasureProof {
                deleting: vec![DeletingItem {
                    kind: "Backup".into(),
                    namespace: "acme".into(),
                    name: "old".into(),
                    uid: "u-old".into(),
                    delete_at: None,
                    legal_basis: None,
                    rule: None,
                }],
                ..ErasureProof::default()
            }),
            ..AccountStatus::default()
        });
        account
    }

    /// Backup `old`, long past its 7 days: due on a live account too.
    fn old_backup() -> BoundResource {
        let mut backup = Backup::new(
            "old",
            BackupSpec {
                account_ref: "acme".into(),
                source_ref: BackupSource {
                    kind: ResourceKind::Website,
                    name: "www".into(),
                },
                taken_at: at("2025-06-01T00:00:00Z"),
            },
        );
        backup.metadata = ObjectMeta {
            name: Some("old".into()),
            namespace: Some("acme".into()),
            uid: Some("u-old".into()),
            ..ObjectMeta::default()
        };
        BoundResource::from(&backup)
    }

    fn settle(state: AccountState, present: &[&str]) -> ErasureRecord {
        let now = at("2026-03-01T00:00:00Z");
        let account = account(state);
        let plan = plan_account(&account, &[old_backup()], &policy(), &BTreeMap::new(), now);
        let present: HashSet<String> = present.iter().map(|u| (*u).to_owned()).collect();
        ErasureRecord::settle(&account, &plan, &present, now)
    }

    #[test]
    fn a_recorded_deletion_still_due_under_the_termination_is_kept() {
        let record = settle(AccountState::Terminated, &["u-old"]);
        assert!(record.called_off.is_empty());
        assert!(record.gone.is_empty());
    }

    #[test]
    fn a_recorded_deletion_is_called_off_once_the_account_is_live_even_when_due_by_schedule() {
        let record = settle(AccountState::Active, &["u-old"]);
        assert!(record.called_off.contains("u-old"));
        assert!(record.gone.is_empty());
    }

    #[test]
    fn the_record_is_rewritten_before_deleting_when_a_deletion_is_called_off() {
        let live = settle(AccountState::Active, &["u-old"]);
        assert!(live.changes_record(&account(AccountState::Active)));
        let terminated = settle(AccountState::Terminated, &["u-old"]);
        assert!(
            !terminated.changes_record(&account(AccountState::Terminated)),
            "nothing new started, nothing called off"
        );
    }

    #[test]
    fn a_recorded_deletion_whose_object_is_gone_is_settled_as_gone_whatever_the_state() {
        for state in [AccountState::Active, AccountState::Terminated] {
            let record = settle(state, &[]);
            assert!(record.gone.contains("u-old"));
            assert!(record.called_off.is_empty());
        }
    }
}
