//! ErasureReceipts, pure: which erasure times of an account are complete and what their
//! receipts say, the receipts' names and digests, and when a receipt itself expires.
//!
//! A receipt is drafted from the Account's stored erasure proof: every object confirmed gone
//! under a termination waits in `status.erasure.erased` until a receipt lists it. An erasure
//! time is complete when nothing due at it is still bound or still being deleted; its receipt
//! then lists every waiting object of that time. The name is a function of (account uid,
//! erasure time, how many receipts that time already has), so a pass that dies after creating
//! a receipt and before recording it in the status creates the same name again, is refused
//! (409), and records the receipt that exists: never a second or a partial one. Objects the
//! existing receipt does not list (bound to the account after it was written, due at the same
//! time) wait for the next receipt of that time, which names the first in `follows`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use kube::api::ObjectMeta;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    api::{
        Account, ErasedObject, ErasureProof, ErasureReceipt, ErasureReceiptSpec,
        ErasureReceiptStatus, KeptObject, NotificationState, OwedRequest, ProcessorNotification,
        RECEIPT_ACCOUNT_LABEL, ReceiptAccount, ReceiptPolicy, RequestOutcome, RetentionDuration,
        WrittenReceipt,
    },
    retention::ResourcePlan,
};

/// The prefix of `spec.digest`.
pub const DIGEST_PREFIX: &str = "sha256:";

/// The longest Kubernetes object name.
const MAX_NAME: usize = 253;

/// What a receipt is drafted from.
#[derive(Clone, Copy, Debug)]
pub struct ReceiptInput<'a> {
    /// The Account, with its erasure proof as last written.
    pub account: &'a Account,
    /// The name and generation of its RetentionPolicy.
    pub policy: (&'a str, i64),
    /// When the account was terminated, if it still is.
    pub terminated_at: Option<DateTime<Utc>>,
    /// What is still bound, with its schedule.
    pub remaining: &'a [ResourcePlan],
    /// The erasure requests owed to processors.
    pub requests: &'a [ProcessorNotification],
    /// The instant of this pass.
    pub now: DateTime<Utc>,
}

/// The receipts due now: one per complete erasure time with objects waiting for one.
pub fn due(input: &ReceiptInput<'_>) -> Vec<ErasureReceipt> {
    let Some(proof) = proof_of(input.account) else {
        return Vec::new();
    };
    let mut waiting: BTreeMap<DateTime<Utc>, Vec<&ErasedObject>> = BTreeMap::new();
    for object in &proof.erased {
        waiting.entry(object.delete_at).or_default().push(object);
    }
    waiting
        .into_iter()
        .filter(|(at, _)| complete(proof, input.remaining, *at, input.now))
        .map(|(at, objects)| draft(input, proof, at, objects))
        .collect()
}

/// Whether nothing due at `at` is still bound or being deleted.
fn complete(
    proof: &ErasureProof,
    remaining: &[ResourcePlan],
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let deleting = proof.deleting.iter().any(|d| d.delete_at == Some(at));
    let bound = remaining
        .iter()
        .any(|r| r.is_due(now) && r.schedule.delete_at == Some(at));
    !deleting && !bound
}

fn draft(
    input: &ReceiptInput<'_>,
    proof: &ErasureProof,
    at: DateTime<Utc>,
    objects: Vec<&ErasedObject>,
) -> ErasureReceipt {
    let account = input.account;
    let account_name = account.metadata.name.clone().unwrap_or_default();
    let account_uid = account.metadata.uid.clone().unwrap_or_default();
    let earlier: Vec<&WrittenReceipt> = proof
        .receipts
        .iter()
        .filter(|r| r.erasure_at == at)
        .collect();
    let name = receipt_name(&account_name, &account_uid, at, earlier.len());
    let mut erased: Vec<ErasedObject> = objects.into_iter().cloned().collect();
    erased.sort();
    let completed_at = erased
        .iter()
        .map(|o| o.deleted_at)
        .max()
        .unwrap_or(input.now);
    let mut kept: Vec<KeptObject> = input
        .remaining
        .iter()
        .filter(|r| !r.is_due(input.now))
        .map(|r| KeptObject {
            kind: r.resource.kind.as_str().to_owned(),
            namespace: r.resource.namespace.clone(),
            name: r.resource.name.clone(),
            legal_basis: r.schedule.legal_basis,
            rule: r.schedule.reason.clone(),
            until: r.schedule.delete_at,
        })
        .collect();
    kept.sort();
    let mut processors: Vec<OwedRequest> = input
        .requests
        .iter()
        .filter(|entry| entry.erasure_at == Some(at))
        .filter_map(|entry| {
            Some(OwedRequest {
                name: entry.name.clone(),
                idempotency_key: entry.idempotency_key.clone()?,
            })
        })
        .collect();
    processors.sort();
    processors.dedup();
    let mut spec = ErasureReceiptSpec {
        account: ReceiptAccount {
            name: account_name.clone(),
            uid: account_uid,
            customer_ref: account.spec.customer_ref.clone(),
        },
        policy: ReceiptPolicy {
            name: input.policy.0.to_owned(),
            generation: input.policy.1,
        },
        terminated_at: input.terminated_at,
        erasure_at: at,
        completed_at,
        erased,
        kept,
        processors,
        follows: earlier.last().map(|r| r.name.clone()),
        digest: String::new(),
    };
    spec.digest = digest(&spec);
    ErasureReceipt {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([(
                RECEIPT_ACCOUNT_LABEL.to_owned(),
                account_name,
            )])),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

fn proof_of(account: &Account) -> Option<&ErasureProof> {
    account.status.as_ref()?.erasure.as_ref()
}

/// The name of the `sequence`-th receipt (from 0) of an erasure time:
/// `<account>-<first 8 of its uid>-<erasure time as yyyymmddhhmmss>`, with `-<sequence>`
/// after the first; the account part is shortened to fit 253 characters.
pub fn receipt_name(account: &str, uid: &str, at: DateTime<Utc>, sequence: usize) -> String {
    let uid: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    let mut suffix = format!("-{uid}-{}", at.format("%Y%m%d%H%M%S"));
    if sequence > 0 {
        suffix.push_str(&format!("-{sequence}"));
    }
    let room = MAX_NAME.saturating_sub(suffix.len());
    let account: String = account.chars().take(room).collect();
    let account = account.trim_end_matches(['-', '.']);
    format!("{account}{suffix}")
}

/// `sha256:` and the hex SHA-256 of the spec's canonical JSON without its digest.
pub fn digest(spec: &ErasureReceiptSpec) -> String {
    let mut value = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("digest");
    }
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    format!(
        "{DIGEST_PREFIX}{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// Whether a receipt's spec still has the digest it was written with.
pub fn verifies(spec: &ErasureReceiptSpec) -> bool {
    spec.digest == digest(spec)
}

/// JSON with object keys sorted and no whitespace.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push('{');
            for (index, (key, value)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The status a receipt should show: its count, and each owed request as the Account's ledger
/// has it now (`expiresAt` is the receipt controller's).
pub fn status_of(
    spec: &ErasureReceiptSpec,
    requests: &[ProcessorNotification],
    stored: Option<&ErasureReceiptStatus>,
) -> ErasureReceiptStatus {
    let owed: BTreeSet<&str> = spec.processors.iter().map(|p| p.name.as_str()).collect();
    let processors = requests
        .iter()
        .filter(|entry| entry.erasure_at == Some(spec.erasure_at))
        .filter(|entry| owed.contains(entry.name.as_str()))
        .map(|entry| RequestOutcome {
            name: entry.name.clone(),
            state: entry.state,
            acknowledged_at: (entry.state == NotificationState::Acknowledged)
                .then_some(entry.acknowledged_at)
                .flatten(),
        })
        .collect();
    ErasureReceiptStatus {
        erased_count: Some(u32::try_from(spec.erased.len()).unwrap_or(u32::MAX)),
        processors,
        expires_at: stored.and_then(|s| s.expires_at),
    }
}

/// When a receipt is deleted: its completion plus `keep_for`; `None` when that is past 9999
/// (kept).
pub fn expires_at(spec: &ErasureReceiptSpec, keep_for: RetentionDuration) -> Option<DateTime<Utc>> {
    crate::retention::after_within_9999(spec.completed_at, keep_for)
}

/// The uids a receipt lists.
pub fn uids(spec: &ErasureReceiptSpec) -> BTreeSet<String> {
    spec.erased.iter().map(|o| o.uid.clone()).collect()
}
