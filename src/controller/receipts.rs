//! The ErasureReceipts' shell: the account controller writes a receipt for each complete
//! erasure time before the Account's status and finalizer move on ([`certify`]) and keeps each
//! receipt's status in step with the Account's erasure requests ([`sync_statuses`]); the
//! receipt controller ([`reconcile`]) deletes a receipt once its policy's `receipts.keepFor`
//! has passed, on an exact timer. What is written is decided in [`crate::receipts`].

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use chrono::{DateTime, Utc};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions},
    runtime::{controller::Action, events::EventType},
};
use serde_json::json;
use tracing::{debug, info};

use super::{
    cluster::MANAGER,
    context::{Context, Error, Policy},
    guarded::Guarded,
};
use crate::{
    api::{
        Account, ErasureReceipt, ErasureReceiptSpec, ErasureReceiptStatus, ProcessorNotification,
        RetentionDuration, WrittenReceipt,
    },
    audit::{AuditAction, AuditRecord},
    receipts::{self, ReceiptInput},
    retention::AccountPlan,
    status::ReceiptWritten,
};

/// The reason of the Normal event on the Account when a receipt is written.
pub const RECEIPT_WRITTEN: &str = "ErasureReceiptWritten";

/// The reason of the Warning event on the Account when a receipt cannot be written.
pub const RECEIPT_FAILED: &str = "ErasureReceiptFailed";

/// How long a receipt controller pass waits at most before looking again (timers are re-armed
/// at least daily, as the accounts' are).
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 3600);

/// How soon a receipt whose deletion met a conflict is looked at again.
const CONFLICT_RETRY: Duration = Duration::from_secs(5);

/// Writes the receipt of every complete erasure time of `account` (as its status was last
/// written) and returns every receipt that now exists for them, as recorded and as read. A receipt found already
/// written under its name (a pass died after creating it) counts as written: it is never
/// written twice, and the objects it does not list wait for the next receipt of that time.
pub async fn certify(
    ctx: &Context,
    account: &Account,
    plan: &AccountPlan,
    requests: &[ProcessorNotification],
    now: DateTime<Utc>,
) -> Result<(Vec<ReceiptWritten>, Vec<ErasureReceipt>), Error> {
    if ctx.settings.dry_run {
        return Ok((Vec::new(), Vec::new()));
    }
    let policy_name = account.spec.retention_policy_ref.as_str();
    let generation = ctx
        .stores
        .policy_generation(policy_name)
        .unwrap_or_default();
    let drafts = receipts::due(&ReceiptInput {
        account,
        policy: (policy_name, generation),
        terminated_at: plan.terminated_at,
        remaining: &plan.resources,
        requests,
        now,
    });
    let api: Api<ErasureReceipt> = Api::all(ctx.client.clone());
    let params = PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PostParams::default()
    };
    let mut written = Vec::new();
    let mut read = Vec::new();
    for draft in drafts {
        let name = draft.name_any();
        let receipt = match ctx.act(api.create(&params, &draft)).await {
            Ok(created) => {
                let note = format!(
                    "ErasureReceipt {name} lists the {} objects erased at {}",
                    created.spec.erased.len(),
                    crate::clock::rfc3339(created.spec.erasure_at)
                );
                ctx.publish(account, None, EventType::Normal, RECEIPT_WRITTEN, &note)
                    .await;
                audit_written(&created, now, None);
                ctx.metrics.receipt_written();
                created
            }
            Err(error) if error.is_status(409) => {
                let Some(existing) = ctx.act(api.get_opt(&name)).await? else {
                    // Deleted in between: the next pass writes it again.
                    continue;
                };
                if existing.spec.account.uid != draft.spec.account.uid
                    || existing.spec.erasure_at != draft.spec.erasure_at
                {
                    return Err(Error::ReceiptNameTaken(name));
                }
                debug!(account = %account.name_any(), receipt = %name, "the receipt was written by an earlier pass");
                // That pass may have died before it logged the receipt.
                audit_written(&existing, now, Some("written by an earlier pass"));
                existing
            }
            Err(error) => return Err(error),
        };
        let spec = &receipt.spec;
        written.push(ReceiptWritten {
            record: WrittenReceipt {
                erasure_at: spec.erasure_at,
                name,
                erased: u32::try_from(spec.erased.len()).unwrap_or(u32::MAX),
            },
            uids: receipts::uids(spec),
        });
        read.push(receipt);
    }
    Ok((written, read))
}

/// Brings the status of each of the account's receipts in line with its erasure requests:
/// the count, and each processor's acknowledgement or staff confirmation as it arrives. Those
/// `just_read` (written or adopted by this pass) are taken as read; the rest from the cache
/// (one not cached yet is brought in line by a later pass).
pub async fn sync_statuses(
    ctx: &Context,
    written: &[WrittenReceipt],
    just_read: &[ErasureReceipt],
    requests: &[ProcessorNotification],
    keep_for: RetentionDuration,
) -> Result<(), Error> {
    if ctx.settings.dry_run {
        return Ok(());
    }
    let api: Api<ErasureReceipt> = Api::all(ctx.client.clone());
    for record in written {
        let receipt = match just_read.iter().find(|r| r.name_any() == record.name) {
            Some(read) => read.clone(),
            None => match ctx.stores.receipt(&record.name) {
                Some(cached) => cached,
                None => continue,
            },
        };
        patch_status(ctx, &api, &receipt, requests, keep_for).await?;
    }
    Ok(())
}

/// Patches the receipt's count, request outcomes and expiry when they differ from what it
/// shows: one write after the receipt is created, and one per answer of a processor (the
/// receipt controller then finds `expiresAt` as it would write it).
async fn patch_status(
    ctx: &Context,
    api: &Api<ErasureReceipt>,
    receipt: &ErasureReceipt,
    requests: &[ProcessorNotification],
    keep_for: RetentionDuration,
) -> Result<(), Error> {
    let wanted = receipts::status_of(&receipt.spec, requests, keep_for);
    let name = receipt.name_any();
    if receipt.status.as_ref() == Some(&wanted)
        || last_written(ctx, &name).as_ref() == Some(&wanted)
    {
        return Ok(());
    }
    let patch = json!({"status": {
        "erasedCount": wanted.erased_count,
        "processors": wanted.processors,
        "expiresAt": wanted.expires_at,
    }});
    match ctx
        .act(api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)))
        .await
    {
        Ok(_) => {
            remember_written(ctx, name, wanted);
            Ok(())
        }
        Err(error) if error.is_status(404) => Ok(()),
        Err(error) => Err(error),
    }
}

/// The status this replica last wrote on the receipt, if any.
fn last_written(ctx: &Context, name: &str) -> Option<ErasureReceiptStatus> {
    ctx.receipt_statuses
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(name)
        .cloned()
}

fn remember_written(ctx: &Context, name: String, status: ErasureReceiptStatus) {
    ctx.receipt_statuses
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(name, status);
}

/// Deletes a receipt once its policy's `receipts.keepFor` has passed since its erasure
/// completed; shows when in `status.expiresAt`. A receipt is never deleted while its policy is
/// missing or suspended, or while its account (if it still exists) is under a legal hold;
/// those are looked at again daily, and so a change of `keepFor` counts within a day (a
/// receipt whose timer fires reads the policy again first, so never too early).
pub async fn reconcile(
    object: Arc<Guarded<ErasureReceipt>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.ready.load(Ordering::Acquire) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let _timer = ctx.metrics.reconcile("erasurereceipt");
    // A receipt the operator cannot read was not written by it: it is never deleted.
    let Ok(receipt) = &object.0 else {
        return Ok(Action::await_change());
    };
    // A receipt belongs to its account's shard.
    if !ctx.shard.owns(&receipt.spec.account.name) {
        return Ok(Action::await_change());
    }
    let now = ctx.clock.now();
    let Policy::Found(policy) = ctx.stores.policy(&receipt.spec.policy.name) else {
        // Kept while it cannot be known how long: looked at again daily.
        show_expiry(&ctx, receipt, None).await?;
        return Ok(Action::requeue(LONGEST_WAIT));
    };
    let expires_at = receipts::expires_at(&receipt.spec, policy.receipts_keep_for());
    show_expiry(&ctx, receipt, expires_at).await?;
    let Some(expires_at) = expires_at else {
        return Ok(Action::requeue(LONGEST_WAIT));
    };
    if now < expires_at {
        return Ok(Action::requeue(wait_until(now, expires_at)));
    }
    if policy.suspend {
        return Ok(Action::requeue(LONGEST_WAIT));
    }
    if account_on_hold(&ctx, &receipt.spec, now) {
        return Ok(Action::requeue(LONGEST_WAIT));
    }
    // Read again right before deleting, as for every deletion: the cache may be behind a
    // change to the policy (a longer keepFor) made a moment ago.
    let policies: Api<crate::api::RetentionPolicy> = Api::all(ctx.client.clone());
    let fresh = ctx.act(policies.get_opt(&receipt.spec.policy.name)).await?;
    let still_due = fresh.is_some_and(|p| {
        !p.spec.suspend
            && receipts::expires_at(&receipt.spec, p.spec.receipts_keep_for())
                .is_some_and(|at| at <= now)
    });
    if !still_due {
        return Ok(Action::requeue(CONFLICT_RETRY));
    }
    if ctx.settings.dry_run {
        info!(receipt = %receipt.name_any(), account = %receipt.spec.account.name, "dry run: would delete an erasure receipt past its policy's receipts.keepFor");
        return Ok(Action::requeue(LONGEST_WAIT));
    }
    let api: Api<ErasureReceipt> = Api::all(ctx.client.clone());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: receipt.uid(),
            resource_version: receipt.resource_version(),
        }),
        ..DeleteParams::default()
    };
    let name = receipt.name_any();
    match ctx.act(api.delete(&name, &params)).await {
        Ok(_) => {
            ctx.receipt_statuses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&name);
            info!(receipt = %name, account = %receipt.spec.account.name, "erasure receipt deleted: kept for its policy's receipts.keepFor");
            audit_receipt(AuditAction::ReceiptDeleted, receipt, now)
                .rule(&format!(
                    "receipts are kept for RetentionPolicy {} spec.receipts.keepFor after completion",
                    receipt.spec.policy.name
                ))
                .delete_at(Some(expires_at))
                .emit();
            let rule = crate::retention::Rule::ReceiptKeepFor.as_str();
            ctx.metrics
                .deleted("ErasureReceipt", rule, now - expires_at);
            Ok(Action::await_change())
        }
        Err(error) if error.is_status(404) => Ok(Action::await_change()),
        Err(error) if error.is_status(409) => Ok(Action::requeue(CONFLICT_RETRY)),
        Err(error) => Err(error),
    }
}

/// The audit record of an action on a receipt.
fn audit_receipt(action: AuditAction, receipt: &ErasureReceipt, now: DateTime<Utc>) -> AuditRecord {
    AuditRecord::new(action, now, "ErasureReceipt", None, &receipt.name_any())
        .uid(receipt.metadata.uid.as_deref())
        .account(&receipt.spec.account.name)
}

/// Audits a receipt written (`how`: by whom, when not by this pass), with the erasure time it
/// certifies.
fn audit_written(receipt: &ErasureReceipt, now: DateTime<Utc>, how: Option<&str>) {
    let spec = &receipt.spec;
    let erased = format!("{} objects erased", spec.erased.len());
    audit_receipt(AuditAction::ReceiptWritten, receipt, now)
        .delete_at(Some(spec.erasure_at))
        .detail(match how {
            Some(how) => format!("{erased}; {how}"),
            None => erased,
        })
        .emit();
}

/// Writes `status.expiresAt` when it differs from what the receipt shows.
async fn show_expiry(
    ctx: &Context,
    receipt: &ErasureReceipt,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    // The account controller writes a new receipt's first status, expiry included, right
    // after creating it: until then there is nothing to correct (and two writers would race).
    let Some(status) = receipt.status.as_ref() else {
        return Ok(());
    };
    let written = last_written(ctx, &receipt.name_any()).map(|s| s.expires_at);
    if status.expires_at != expires_at && written != Some(expires_at) && !ctx.settings.dry_run {
        let api: Api<ErasureReceipt> = Api::all(ctx.client.clone());
        let patch = json!({"status": {"expiresAt": expires_at}});
        match ctx
            .act(api.patch_status(
                &receipt.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ))
            .await
        {
            Ok(_) => {
                let mut status = receipt.status.clone().unwrap_or_default();
                status.expires_at = expires_at;
                remember_written(ctx, receipt.name_any(), status);
            }
            Err(error) if error.is_status(404) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Whether the receipt's account still exists (the same uid) under a legal hold in force.
fn account_on_hold(ctx: &Context, spec: &ErasureReceiptSpec, now: DateTime<Utc>) -> bool {
    let Some(account) = ctx.stores.account(&spec.account.name) else {
        return false;
    };
    let Ok(account) = &account.0 else {
        // An Account that cannot be read may be on hold: keep the receipt.
        return true;
    };
    account.meta().uid.as_deref() == Some(spec.account.uid.as_str())
        && account
            .spec
            .legal_hold
            .as_ref()
            .is_some_and(|hold| hold.until.is_none_or(|until| until > now))
}

/// How long to wait for `at`, at most a day.
fn wait_until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
        .saturating_add(Duration::from_millis(1))
        .min(LONGEST_WAIT)
}
