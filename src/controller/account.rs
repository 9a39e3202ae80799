//! The account controller: plans an account with the engine, stamps the schedules, deletes
//! what is due after re-reading it from the API, writes the status, and sleeps until the next
//! deletion.

use std::{
    collections::BTreeSet,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use k8s_openapi::api::core::v1::ObjectReference;

use chrono::{DateTime, TimeDelta, Utc};
use kube::{
    Resource, ResourceExt,
    api::{Api, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
    },
};
use serde_json::json;
use tracing::{info, warn};

use super::{
    Context, Error, Policy, cluster,
    guarded::{Guarded, Malformed},
    orphans, processors,
    status::{
        DeletionFailure, StatusInput, account_status, announcements, malformed_account_conditions,
        policy_malformed_status, policy_missing_status,
    },
};
use crate::{
    api::{Account, AccountStatus},
    notifier::ledger::{all_settled, ledger, staff_actions},
    retention::{
        AccountPlan, ResourceKind, ResourcePlan, ResourceRef, ScheduleChange, plan_account,
        schedule_change,
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

/// How soon to look again after a failed deletion.
const RETRY_FAILED: Duration = Duration::from_secs(10);

/// Reconciles one Account.
pub async fn reconcile(object: Arc<Guarded<Account>>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.ready.load(Ordering::Acquire) {
        // Planning from half-filled caches would see nothing bound and could release an
        // Account whose data still exists: wait until every cache has synced.
        return Ok(Action::requeue(NOT_READY_RETRY));
    }
    let _timer = ctx.metrics.reconcile("account");
    let now = ctx.clock.now();
    let name = object.name_any();
    let accounts: Api<Account> = Api::all(ctx.client.clone());
    if ctx
        .superseded
        .is_stale(&name, object.meta().resource_version.as_deref())
    {
        // The cache has not yet seen this operator's last write to the Account; the write's
        // watch event triggers the next reconcile.
        return Ok(Action::await_change());
    }
    let deleting = object.meta().deletion_timestamp.is_some();
    // Also on an Account that cannot be read: it must not vanish with data still bound to it.
    let object = if !deleting && !object.finalizers().iter().any(|f| f == FINALIZER) {
        match add_finalizer(&ctx, &object).await? {
            // Carry on with the Account as written, so the status write below builds on its
            // resourceVersion instead of the cache's, which has not seen the patch yet.
            Some(patched) => Arc::new(patched),
            None => return Ok(Action::await_change()),
        }
    } else {
        object
    };
    let account = match &object.0 {
        Ok(account) => account,
        Err(malformed) => return report_malformed_account(&ctx, &object, malformed, now).await,
    };
    let policy_name = &account.spec.retention_policy_ref;
    let policy = match ctx.stores.policy(policy_name) {
        Policy::Found(policy) => policy,
        Policy::Missing => {
            let generation = account.metadata.generation;
            let written = write_status(&ctx, account, |previous| {
                policy_missing_status(previous, policy_name, generation, now)
            })
            .await?;
            if written.is_some() {
                let note =
                    format!("RetentionPolicy {policy_name} does not exist: erasure is stopped");
                ctx.publish(account, None, EventType::Warning, "PolicyMissing", &note)
                    .await;
            }
            // A new policy triggers a reconcile through the policy watch.
            return Ok(Action::await_change());
        }
        Policy::Malformed { field } => {
            let generation = account.metadata.generation;
            let written = write_status(&ctx, account, |previous| {
                policy_malformed_status(previous, policy_name, &field, generation, now)
            })
            .await?;
            if written.is_some() {
                let note = format!(
                    "RetentionPolicy {policy_name} cannot be read at {field}: erasure is stopped"
                );
                ctx.publish(account, None, EventType::Warning, "PolicyMalformed", &note)
                    .await;
            }
            return Ok(Action::await_change());
        }
    };
    let claims = ctx.stores.claims(&name);
    let bound = claims.bound;
    let processors = ctx.stores.processors();
    let plan = plan_account(account, &bound, &policy, &processors, now);
    stamp_schedules(&ctx, account, &plan, &bound).await?;
    orphans::mark_bound(&ctx, account, &claims.marked_unbound).await?;
    let staff = staff_actions(account);
    let stored_requests = account
        .status
        .as_ref()
        .map_or(&[][..], |s| s.processors.as_slice());
    let bound_refs: BTreeSet<&ResourceRef> = plan.resources.iter().map(|r| &r.resource).collect();
    let planned_requests = ledger(
        &name,
        &plan.notifications,
        &bound_refs,
        stored_requests,
        &staff,
        now,
    );
    // Requests that this pass's deletions will make owed are recorded before anything is
    // deleted: a crash in between must not lose one.
    let recorded = if planned_requests.entries != stored_requests
        && plan.resources.iter().any(|r| r.is_due(now))
    {
        let generation = account.metadata.generation;
        let announced_until = account
            .status
            .as_ref()
            .and_then(|s| s.deletions_announced_until);
        let unknown = unknown_processors(&plan, &processors);
        write_status(&ctx, account, |previous| {
            account_status(&StatusInput {
                plan: &plan,
                previous,
                generation,
                deleted: &[],
                failures: &[],
                unknown_processors: &unknown,
                malformed: &claims.malformed,
                announced_until,
                processors: Some(&planned_requests.entries),
                now,
            })
        })
        .await?
    } else {
        None
    };
    let account = recorded.as_ref().unwrap_or(account);
    let Deletions {
        deleted,
        vanished,
        failures,
    } = delete_due(&ctx, account, &plan, now).await;
    // What was found already gone is neither counted nor shown as bound.
    let mut plan = plan;
    plan.resources.retain(|r| !vanished.contains(&r.resource));
    let unknown_processors = unknown_processors(&plan, &processors);
    let gone: BTreeSet<&ResourceRef> = deleted.iter().chain(&vanished).collect();
    let remaining: Vec<&ResourcePlan> = plan
        .resources
        .iter()
        .filter(|r| !gone.contains(&r.resource))
        .collect();
    let announced_until = account
        .status
        .as_ref()
        .and_then(|s| s.deletions_announced_until);
    let notice = announcements(
        &remaining,
        announced_until,
        now,
        ctx.settings.advance_notice,
    );
    announce(&ctx, account, &notice.now).await;
    let remaining_refs: BTreeSet<&ResourceRef> = remaining.iter().map(|r| &r.resource).collect();
    let mut requests = ledger(
        &name,
        &plan.notifications,
        &remaining_refs,
        &planned_requests.entries,
        &staff,
        now,
    );
    if ctx.settings.dry_run {
        for &index in &requests.due {
            let entry = &requests.entries[index];
            info!(account = %name, processor = %entry.name, "dry run: would send an erasure request");
        }
    } else {
        processors::deliver_due(&ctx, account, &mut requests, now).await;
    }
    processors::report_changes(&ctx, account, stored_requests, &requests.entries).await;
    let generation = account.metadata.generation;
    write_status(&ctx, account, |previous| {
        account_status(&StatusInput {
            plan: &plan,
            previous,
            generation,
            deleted: &deleted,
            failures: &failures,
            unknown_processors: &unknown_processors,
            malformed: &claims.malformed,
            announced_until: notice.announced_until,
            processors: Some(&requests.entries),
            now,
        })
    })
    .await?;
    // Unreadable objects are data too, and the delivery record of the erasure requests lives in
    // this status: the finalizer stays until both are done.
    if deleting
        && remaining.is_empty()
        && claims.malformed.is_empty()
        && all_settled(&requests.entries)
    {
        remove_finalizer(&accounts, account).await?;
        ctx.superseded.forget(&name);
        return Ok(Action::await_change());
    }
    if !failures.is_empty() {
        return Ok(Action::requeue(RETRY_FAILED));
    }
    let next_at = notice
        .next_at
        .into_iter()
        .chain(requests.next_attempt_at)
        .min();
    Ok(next_wakeup(&remaining, next_at, now))
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
    for resource in upcoming {
        let Some(at) = resource.schedule.delete_at else {
            continue;
        };
        let note = format!(
            "{} will be deleted at {} ({})",
            resource.resource,
            at.to_rfc3339(),
            resource.schedule.reason
        );
        ctx.publish(
            account,
            Some(&resource.resource),
            EventType::Normal,
            "DeletionUpcoming",
            &note,
        )
        .await;
    }
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
    let written = accounts
        .patch_status(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    if !cluster::unless_gone(written)? {
        return Ok(Action::await_change());
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
    match accounts
        .patch(
            &account.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(patched) => {
            ctx.superseded.record(
                &account.name_any(),
                account.meta().resource_version.as_deref(),
            );
            Ok(Some(patched))
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn remove_finalizer(accounts: &Api<Account>, account: &Account) -> Result<(), Error> {
    let finalizers: Vec<&String> = account
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": account.resource_version()}});
    let result = accounts
        .patch(
            &account.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    cluster::unless_gone(result).map(drop)
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
        let status = compute(current.status.as_ref());
        if current.status.as_ref() == Some(&status) {
            return Ok(None);
        }
        let patch = json!({
            "apiVersion": Account::api_version(&()),
            "kind": Account::kind(&()),
            "metadata": {"resourceVersion": current.resource_version()},
            "status": status,
        });
        let params = PatchParams::apply(cluster::MANAGER).force();
        match accounts
            .patch_status(&current.name_any(), &params, &Patch::Apply(&patch))
            .await
        {
            Ok(written) => {
                ctx.superseded
                    .record(&current.name_any(), current.resource_version().as_deref());
                return Ok(Some(written));
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                match accounts.get_opt(&current.name_any()).await? {
                    Some(fresh) => current = fresh,
                    None => return Ok(None),
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::StatusConflict)
}

/// Makes the durable schedule on every object say what the plan says.
async fn stamp_schedules(
    ctx: &Context,
    account: &Account,
    plan: &AccountPlan,
    bound: &[crate::retention::BoundResource],
) -> Result<(), Error> {
    for resource in &plan.resources {
        let object = bound.iter().find(|b| b.reference == resource.resource);
        let stamped = object.and_then(|b| b.stamped_delete_at);
        match schedule_change(stamped, resource.schedule.delete_at) {
            ScheduleChange::Unchanged => {
                // A Backup shows why it expires then; the rule that sets the time can change
                // without the time changing (a newer backup of the month takes over).
                let stale_reason = resource.resource.kind == ResourceKind::Backup
                    && resource.schedule.delete_at.is_some()
                    && object.and_then(|b| b.stamped_reason.as_deref())
                        != Some(resource.schedule.reason.as_str());
                if stale_reason {
                    cluster::stamp(&ctx.client, &resource.resource, Some(&resource.schedule))
                        .await?;
                }
            }
            ScheduleChange::Set(at) => {
                cluster::stamp(&ctx.client, &resource.resource, Some(&resource.schedule)).await?;
                let note = format!(
                    "{} scheduled for deletion at {} ({})",
                    resource.resource,
                    at.to_rfc3339(),
                    resource.schedule.reason
                );
                ctx.publish(
                    account,
                    Some(&resource.resource),
                    EventType::Normal,
                    "ScheduledForDeletion",
                    &note,
                )
                .await;
            }
            ScheduleChange::Cancel => {
                cluster::stamp(&ctx.client, &resource.resource, None).await?;
                let note = format!(
                    "{}: scheduled deletion cancelled ({})",
                    resource.resource, resource.schedule.reason
                );
                ctx.publish(
                    account,
                    Some(&resource.resource),
                    EventType::Normal,
                    "ScheduleCancelled",
                    &note,
                )
                .await;
            }
        }
    }
    Ok(())
}

/// What one pass's deletions came to.
struct Deletions {
    /// Deleted by this pass.
    deleted: Vec<ResourceRef>,
    /// Found already gone: deleted earlier (by this operator or anyone else).
    vanished: Vec<ResourceRef>,
    /// Deletions that failed.
    failures: Vec<DeletionFailure>,
}

/// Deletes every due object after re-reading it and its Account from the API server and
/// checking the rule again (DESIGN.md §3, invariant 3).
async fn delete_due(
    ctx: &Context,
    account: &Account,
    plan: &AccountPlan,
    now: DateTime<Utc>,
) -> Deletions {
    let mut outcome = Deletions {
        deleted: Vec::new(),
        vanished: Vec::new(),
        failures: Vec::new(),
    };
    let due: Vec<&ResourcePlan> = plan.resources.iter().filter(|r| r.is_due(now)).collect();
    if due.is_empty() {
        return outcome;
    }
    let accounts: Api<Account> = Api::all(ctx.client.clone());
    let fresh_account = match accounts.get_opt(&account.name_any()).await {
        Ok(Some(fresh)) => fresh,
        // An Account that vanished makes nothing due.
        Ok(None) => return outcome,
        // One that cannot be read blocks every deletion this pass; they are retried.
        Err(error) => {
            let error = Error::from(error);
            warn!(account = %account.name_any(), reason = error.reason(), "cannot re-read the account before deleting");
            ctx.metrics.error("account", error.reason());
            for resource in due {
                outcome.failures.push(DeletionFailure {
                    resource: resource.resource.clone(),
                    reason: error.reason().to_owned(),
                    message: format!(
                        "re-reading the Account before deleting {} failed: {}",
                        resource.resource,
                        error.reason()
                    ),
                });
            }
            return outcome;
        }
    };
    for resource in due {
        let about = Some(&resource.resource);
        match delete_one(ctx, &fresh_account, resource, now).await {
            Ok(Outcome::Deleted) => {
                ctx.metrics.deleted(
                    resource.resource.kind.as_str(),
                    resource
                        .schedule
                        .delete_at
                        .map_or(TimeDelta::zero(), |at| now - at),
                );
                ctx.publish(
                    account,
                    about,
                    EventType::Normal,
                    "Deleted",
                    &format!(
                        "{} deleted ({})",
                        resource.resource, resource.schedule.reason
                    ),
                )
                .await;
                outcome.deleted.push(resource.resource.clone());
            }
            Ok(Outcome::AlreadyGone) => outcome.vanished.push(resource.resource.clone()),
            Ok(Outcome::WouldDelete) => {
                info!(resource = %resource.resource, "dry run: would delete");
                ctx.publish(
                    account,
                    about,
                    EventType::Normal,
                    "WouldDelete",
                    &format!(
                        "dry run: {} would be deleted ({})",
                        resource.resource, resource.schedule.reason
                    ),
                )
                .await;
            }
            Ok(Outcome::NotDue) => {}
            Err(error) => {
                ctx.metrics.error("account", error.reason());
                let message = format!("deleting {} failed: {}", resource.resource, error.reason());
                ctx.publish(
                    account,
                    about,
                    EventType::Warning,
                    "DeletionFailed",
                    &message,
                )
                .await;
                outcome.failures.push(DeletionFailure {
                    resource: resource.resource.clone(),
                    reason: error.reason().to_owned(),
                    message,
                });
            }
        }
    }
    outcome
}

enum Outcome {
    Deleted,
    AlreadyGone,
    WouldDelete,
    NotDue,
}

async fn delete_one(
    ctx: &Context,
    fresh_account: &Account,
    resource: &ResourcePlan,
    now: DateTime<Utc>,
) -> Result<Outcome, Error> {
    let Some(fresh) = cluster::fetch(&ctx.client, &resource.resource).await? else {
        return Ok(Outcome::AlreadyGone);
    };
    if fresh.bound.account != fresh_account.name_any() {
        return Ok(Outcome::NotDue);
    }
    // The rule again, on what the API server says now; siblings (for "newest backup of the
    // week") come from the cache, with the fresh object in place of its cached copy.
    let mut bound = ctx.stores.bound_to(&fresh_account.name_any());
    bound.retain(|b| b.reference != fresh.bound.reference);
    bound.push(fresh.bound.clone());
    let Policy::Found(policy) = ctx.stores.policy(&fresh_account.spec.retention_policy_ref) else {
        return Ok(Outcome::NotDue);
    };
    let replan = plan_account(
        fresh_account,
        &bound,
        &policy,
        &ctx.stores.processors(),
        now,
    );
    let still_due = replan
        .resources
        .iter()
        .any(|r| r.resource == resource.resource && r.is_due(now));
    if !still_due {
        return Ok(Outcome::NotDue);
    }
    if ctx.settings.dry_run {
        return Ok(Outcome::WouldDelete);
    }
    cluster::delete(&ctx.client, &resource.resource, &fresh.uid).await?;
    Ok(Outcome::Deleted)
}

impl Context {
    /// Publishes an event on the Account, naming the bound object it is about as the related
    /// object (kube's recorder merges events that share a reason and objects, so without it only
    /// the first of several deletions would be reported). A failure to publish is logged, never
    /// fatal.
    pub async fn publish(
        &self,
        account: &Account,
        about: Option<&ResourceRef>,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        self.publish_regarding(&account.object_ref(&()), about, type_, reason, note)
            .await;
    }

    /// Publishes an event regarding any object, with `about` as the related object.
    pub async fn publish_regarding(
        &self,
        regarding: &ObjectReference,
        about: Option<&ResourceRef>,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note.to_owned()),
            action: reason.to_owned(),
            secondary: about.map(related),
        };
        self.publish_event(&event, regarding).await;
    }

    async fn publish_event(&self, event: &Event, regarding: &ObjectReference) {
        if let Err(error) = self.recorder.publish(event, regarding).await {
            let name = regarding.name.as_deref().unwrap_or_default();
            warn!(regarding = name, %error, reason = %event.reason, "cannot publish event");
        }
    }
}

/// A bound object as an event's related object.
fn related(resource: &ResourceRef) -> ObjectReference {
    ObjectReference {
        api_version: Some(Account::api_version(&()).into_owned()),
        kind: Some(resource.kind.as_str().to_owned()),
        namespace: Some(resource.namespace.clone()),
        name: Some(resource.name.clone()),
        ..ObjectReference::default()
    }
}
