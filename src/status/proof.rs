//! The erasure proof of a terminated account: what was deleted, when, and what is kept and
//! why; and the counts per kind shown in the status.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::input::DeletionLedger;
use crate::api::{
    AccountPhase, DeletingItem, ErasedObject, ErasureProof, ResourceCounts, RetainedItem,
};
use crate::retention::{AccountPlan, Disposition, ResourcePlan, ResourceRef};

/// The bound objects kept under a remaining legal basis: those the plan retains, and those a
/// legal hold without end date keeps that the stored proof already listed as retained. The
/// hold turns their disposition into Keep, but they are still retained under their basis (a
/// [`RetainedItem`] without `deleteAt`); dropping them would make the proof flap with the hold.
pub(super) fn retained_resources<'a>(
    plan: &AccountPlan,
    previous: Option<&ErasureProof>,
    remaining: &[&'a ResourcePlan],
) -> BTreeSet<&'a ResourceRef> {
    let listed: BTreeSet<(&str, &str, &str)> = previous
        .filter(|_| plan.terminated_at.is_some())
        .iter()
        .flat_map(|proof| &proof.retained)
        .map(|r| (r.kind.as_str(), r.namespace.as_str(), r.name.as_str()))
        .collect();
    remaining
        .iter()
        .filter(|r| {
            let held =
                r.schedule.disposition == Disposition::Keep && r.schedule.delete_at.is_none();
            let key = (
                r.resource.kind.as_str(),
                r.resource.namespace.as_str(),
                r.resource.name.as_str(),
            );
            r.schedule.disposition == Disposition::Retain || (held && listed.contains(&key))
        })
        .map(|r| &r.resource)
        .collect()
}

/// The erasure proof after this pass (see the module docs for live accounts).
pub(super) fn erasure_proof(
    plan: &AccountPlan,
    phase: AccountPhase,
    previous: Option<&ErasureProof>,
    remaining: &[&ResourcePlan],
    retained: &BTreeSet<&ResourceRef>,
    deletions: &DeletionLedger<'_>,
    now: DateTime<Utc>,
) -> Option<ErasureProof> {
    let mut proof = previous.cloned().unwrap_or_default();
    // Deletions recorded before are settled whatever the account's state: they were decided
    // under a termination.
    let mut counted = false;
    let recorded = std::mem::take(&mut proof.deleting);
    let confirmed_at = deletions.confirmed_at.unwrap_or(now);
    for item in recorded {
        if deletions.gone.contains(&item.uid) {
            let count = proof.deleted.entry(item.kind.clone()).or_default();
            *count = count.saturating_add(1);
            counted = true;
            // It waits for its ErasureReceipt here.
            proof.erased.push(erased_object(item, confirmed_at));
        } else if !deletions.called_off.contains(&item.uid) {
            proof.deleting.push(item);
        }
    }
    if counted && proof.started_at.is_none() {
        proof.started_at = Some(now);
    }
    for receipt in deletions.receipted {
        proof
            .erased
            .retain(|object| !receipt.uids.contains(&object.uid));
        if !proof.receipts.iter().any(|r| r.name == receipt.record.name) {
            proof.receipts.push(receipt.record.clone());
        }
    }
    proof.erased.sort();
    proof.receipts.sort();
    if plan.terminated_at.is_none() {
        // Deletions on a live account (withdrawn consent, backup expiry) are not recorded.
        return (proof != ErasureProof::default()).then_some(proof);
    }
    for item in deletions.starting {
        let known = proof.deleting.iter().any(|d| d.uid == item.uid);
        if !known && !deletions.gone.contains(&item.uid) {
            proof.deleting.push(item.clone());
        }
    }
    proof.deleting.sort();
    let mut items: Vec<RetainedItem> = remaining
        .iter()
        .filter(|r| retained.contains(&r.resource))
        .map(|r| RetainedItem {
            kind: r.resource.kind.as_str().to_owned(),
            namespace: r.resource.namespace.clone(),
            name: r.resource.name.clone(),
            delete_at: r.schedule.delete_at,
            legal_basis: r.schedule.legal_basis,
        })
        .collect();
    items.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    proof.retained = items;
    if phase == AccountPhase::Erased && proof.deleting.is_empty() && proof.completed_at.is_none() {
        proof.completed_at = Some(now);
    }
    // An empty proof (terminated, nothing deleted or retained yet) would only print `{}`.
    (proof != ErasureProof::default()).then_some(proof)
}

/// A recorded deletion confirmed gone, as its receipt lists it. A deletion recorded by an
/// operator version that did not record its schedule is listed with its confirmation time as
/// its due time.
fn erased_object(item: DeletingItem, confirmed_at: DateTime<Utc>) -> ErasedObject {
    ErasedObject {
        kind: item.kind,
        namespace: item.namespace,
        name: item.name,
        uid: item.uid,
        legal_basis: item.legal_basis.unwrap_or_default(),
        rule: item
            .rule
            .unwrap_or_else(|| "recorded without its rule by an earlier version".to_owned()),
        delete_at: item.delete_at.unwrap_or(confirmed_at),
        deleted_at: confirmed_at,
    }
}

/// Counts per kind of what is still bound, with the cumulative deletions from the proof.
pub(super) fn resource_counts(
    remaining: &[&ResourcePlan],
    retained: &BTreeSet<&ResourceRef>,
    erasure: Option<&ErasureProof>,
) -> BTreeMap<String, ResourceCounts> {
    let mut counts: BTreeMap<String, ResourceCounts> = BTreeMap::new();
    for resource in remaining {
        let entry = counts
            .entry(resource.resource.kind.as_str().to_owned())
            .or_default();
        entry.bound = entry.bound.saturating_add(1);
        if resource.schedule.delete_at.is_some() {
            entry.scheduled = entry.scheduled.saturating_add(1);
        }
        if retained.contains(&resource.resource) {
            entry.retained = entry.retained.saturating_add(1);
        }
    }
    for (kind, &deleted) in erasure.iter().flat_map(|proof| &proof.deleted) {
        counts.entry(kind.clone()).or_default().deleted = deleted;
    }
    counts.retain(|_, c| *c != ResourceCounts::default());
    counts
}
