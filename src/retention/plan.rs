//! The plan: for an account and everything bound to it, what is erased when and why, the
//! account's phase, and who is told. A pure function of (objects, policy, processors, now).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    backups::backup_schedules,
    facts::{BoundResource, ResourceRef},
    notifications::{NotificationPlan, notifications},
    phase::phase,
    schedule::{Schedule, apply_hold, hosted_schedule},
    situation::{AccountSituation, Hold, Termination},
    transfers::{ThirdCountryTransfer, third_country_transfers},
};
use crate::api::{Account, AccountPhase, AccountState, DataProcessorSpec, RetentionPolicySpec};

/// The plan for every account in an inventory, and the objects bound to no existing account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The instant the plan was computed for.
    pub now: DateTime<Utc>,
    /// One plan per account, by account name.
    pub accounts: Vec<AccountPlan>,
    /// Objects whose `accountRef` names no Account: reported, never deleted.
    pub unbound: Vec<UnboundResource>,
    /// The ErasureReceipts, each with when it is deleted in turn.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<ReceiptPlan>,
}

/// An ErasureReceipt and its own expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptPlan {
    /// The receipt's name.
    pub name: String,
    /// The account it is about.
    pub account: String,
    /// Its erasure time.
    pub erasure_at: DateTime<Utc>,
    /// How many objects it lists.
    pub erased: usize,
    /// When the operator deletes it; `None`: kept (see `reason`).
    pub delete_at: Option<DateTime<Utc>>,
    /// Why then, in words.
    pub reason: String,
    /// Whether its digest verifies (false: its spec was changed after it was written).
    pub verified: bool,
}

/// What happens to one account and everything bound to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPlan {
    /// The Account's name.
    pub name: String,
    /// The pseudonymous customer id.
    pub customer_ref: String,
    /// The effective state (Terminated also when the Account object is being deleted).
    pub state: AccountState,
    /// The account's phase.
    pub phase: AccountPhase,
    /// The termination time every schedule counts from.
    pub terminated_at: Option<DateTime<Utc>>,
    /// Where `terminatedAt` came from.
    #[serde(skip)]
    pub termination: Option<Termination>,
    /// The legal hold, while the Account carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<Hold>,
    /// The earliest scheduled deletion, due or not.
    pub next_deletion_at: Option<DateTime<Utc>>,
    /// Every bound object with its schedule, in time order (unscheduled last).
    pub resources: Vec<ResourcePlan>,
    /// Erasure requests to processors, in time order.
    pub notifications: Vec<NotificationPlan>,
    /// Processors holding the account's data outside the EU/EEA without a transfer
    /// mechanism, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub third_country_transfers: Vec<ThirdCountryTransfer>,
    /// The account's RetentionPolicy is suspended: nothing shown here is deleted or sent until
    /// it is lifted (the schedules are shown all the same).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erasure_suspended: bool,
}

/// The schedule of one bound object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    /// Which object.
    #[serde(flatten)]
    pub resource: ResourceRef,
    /// When, why and under which basis.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// The DataProcessors that hold a copy and are told when it is erased.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<String>,
}

impl AccountPlan {
    /// The plan once the objects in `gone` are gone (the operator deleted them, or found them
    /// gone): they leave `resources`, and the phase and the next deletion follow. The
    /// notifications stay: the erasure requests for what went are still owed.
    pub fn without(
        mut self,
        gone: &BTreeSet<&ResourceRef>,
        account: &Account,
        now: DateTime<Utc>,
    ) -> Self {
        if gone.is_empty() {
            return self;
        }
        self.resources.retain(|r| !gone.contains(&r.resource));
        self.phase = phase(&AccountSituation::of(account), &self.resources, now);
        self.next_deletion_at = self
            .resources
            .iter()
            .filter_map(|r| r.schedule.delete_at)
            .min();
        self
    }
}

impl ResourcePlan {
    /// Whether the object is due for deletion at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.schedule.delete_at.is_some_and(|at| at <= now)
    }
}

/// An object whose account does not exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnboundResource {
    /// Which object.
    #[serde(flatten)]
    pub resource: ResourceRef,
    /// The account it names.
    pub account_ref: String,
    /// Why it is reported.
    pub reason: String,
}

/// Everything the engine needs to plan a set of accounts.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Accounts, each planned once.
    pub accounts: Vec<Account>,
    /// RetentionPolicies by name.
    pub policies: BTreeMap<String, RetentionPolicySpec>,
    /// DataProcessors by name.
    pub processors: BTreeMap<String, DataProcessorSpec>,
    /// Every bound object, of any account.
    pub resources: Vec<BoundResource>,
    /// Each RetentionPolicy's brake as stored (its count and release), for the preview of
    /// whether the brake would engage.
    pub brakes: BTreeMap<String, super::brake::BrakeState>,
    /// The ErasureReceipts.
    pub receipts: Vec<crate::api::ErasureReceipt>,
}

impl Inventory {
    /// Adds a RetentionPolicy: its spec, and its brake as stored.
    pub fn add_policy(&mut self, name: String, policy: crate::api::RetentionPolicy) {
        self.brakes
            .insert(name.clone(), super::brake::BrakeState::of(&policy));
        self.policies.insert(name, policy.spec);
    }
}

/// Why an inventory cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An Account names a RetentionPolicy that does not exist: erasure stops (fail safe).
    #[error("account {account:?} refers to RetentionPolicy {policy:?}, which does not exist")]
    PolicyMissing { account: String, policy: String },
}

/// When a receipt is deleted: its completion plus its policy's `receipts.keepFor`.
fn plan_receipt(
    receipt: &crate::api::ErasureReceipt,
    policies: &BTreeMap<String, RetentionPolicySpec>,
) -> ReceiptPlan {
    let spec = &receipt.spec;
    let (delete_at, reason) = match policies.get(&spec.policy.name) {
        Some(policy) => {
            let keep_for = policy.receipts_keep_for();
            match crate::receipts::expires_at(spec, keep_for) {
                Some(at) => (
                    Some(at),
                    format!("receipt kept {keep_for} after its erasure completed"),
                ),
                None => (
                    None,
                    format!("receipt kept {keep_for}: {}", super::schedule::BEYOND_9999),
                ),
            }
        }
        None => (
            None,
            format!(
                "RetentionPolicy {:?} not found: kept until it exists",
                spec.policy.name
            ),
        ),
    };
    ReceiptPlan {
        name: receipt.metadata.name.clone().unwrap_or_default(),
        account: spec.account.name.clone(),
        erasure_at: spec.erasure_at,
        erased: spec.erased.len(),
        delete_at,
        reason,
        verified: crate::receipts::verifies(spec),
    }
}

/// Plans every account of the inventory at `now`.
pub fn plan(inventory: &Inventory, now: DateTime<Utc>) -> Result<Plan, PlanError> {
    let mut by_account: BTreeMap<&str, Vec<BoundResource>> = BTreeMap::new();
    for resource in &inventory.resources {
        by_account
            .entry(resource.account.as_str())
            .or_default()
            .push(resource.clone());
    }
    let mut accounts = Vec::with_capacity(inventory.accounts.len());
    let mut known = BTreeSet::new();
    for account in &inventory.accounts {
        let name = account.metadata.name.as_deref().unwrap_or_default();
        known.insert(name);
        let policy_name = &account.spec.retention_policy_ref;
        let policy =
            inventory
                .policies
                .get(policy_name)
                .ok_or_else(|| PlanError::PolicyMissing {
                    account: name.to_owned(),
                    policy: policy_name.clone(),
                })?;
        let bound = by_account.get(name).map(Vec::as_slice).unwrap_or_default();
        accounts.push(plan_account(
            account,
            bound,
            policy,
            &inventory.processors,
            now,
        ));
    }
    accounts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut unbound: Vec<UnboundResource> = inventory
        .resources
        .iter()
        .filter(|r| !known.contains(r.account.as_str()))
        .map(|r| UnboundResource {
            resource: r.reference.clone(),
            account_ref: r.account.clone(),
            reason: "account not found".to_owned(),
        })
        .collect();
    unbound.sort_by(|a, b| a.resource.cmp(&b.resource));
    let mut receipts: Vec<ReceiptPlan> = inventory
        .receipts
        .iter()
        .map(|receipt| plan_receipt(receipt, &inventory.policies))
        .collect();
    receipts.sort_by(|a, b| {
        (&a.account, a.erasure_at, &a.name).cmp(&(&b.account, b.erasure_at, &b.name))
    });
    Ok(Plan {
        now,
        receipts,
        accounts,
        unbound,
    })
}

/// Plans one account: `bound` holds the objects bound to it (others are ignored).
pub fn plan_account(
    account: &Account,
    bound: &[BoundResource],
    policy: &RetentionPolicySpec,
    processors: &BTreeMap<String, DataProcessorSpec>,
    now: DateTime<Utc>,
) -> AccountPlan {
    let name = account.metadata.name.clone().unwrap_or_default();
    let bound: Vec<BoundResource> = bound
        .iter()
        .filter(|r| r.account == name)
        .cloned()
        .collect();
    let situation = AccountSituation::of(account);
    let mut resources: Vec<ResourcePlan> = bound
        .iter()
        .filter_map(|resource| {
            let facts = resource.hosted_facts()?;
            let schedule = hosted_schedule(
                facts,
                resource.stamped_delete_at,
                &situation,
                policy,
                &account.spec.consents,
                now,
            );
            Some((resource, schedule, facts.processors.clone()))
        })
        .chain(
            backup_schedules(&bound, &policy.backups, &situation)
                .into_iter()
                .map(|(resource, schedule)| (resource, schedule, Vec::new())),
        )
        .map(|(resource, schedule, processors)| ResourcePlan {
            resource: resource.reference.clone(),
            schedule: apply_hold(schedule, situation.hold),
            processors,
        })
        .collect();
    resources.sort_by(|a, b| {
        let key = |p: &ResourcePlan| (p.schedule.delete_at.is_none(), p.schedule.delete_at);
        key(a)
            .cmp(&key(b))
            .then_with(|| a.resource.cmp(&b.resource))
    });
    AccountPlan {
        customer_ref: account.spec.customer_ref.clone(),
        state: situation.state,
        phase: phase(&situation, &resources, now),
        terminated_at: situation.termination.map(|t| t.at),
        termination: situation.termination,
        legal_hold: situation.hold,
        next_deletion_at: resources.iter().filter_map(|r| r.schedule.delete_at).min(),
        notifications: notifications(&resources, processors),
        third_country_transfers: third_country_transfers(&resources, processors),
        resources,
        name,
        erasure_suspended: policy.suspend,
    }
}
