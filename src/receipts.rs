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

/// The status a receipt should show: its count, each owed request as the Account's ledger has
/// it now, and when it expires under the policy's `keep_for`.
pub fn status_of(
    spec: &ErasureReceiptSpec,
    requests: &[ProcessorNotification],
    keep_for: RetentionDuration,
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
        expires_at: expires_at(spec, keep_for),
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

/// One receipt as `retention-operator receipts` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptView {
    /// The receipt's name.
    pub name: String,
    /// The account's name and uid.
    pub account: String,
    /// The account's uid.
    pub account_uid: String,
    /// Its erasure time.
    pub erasure_at: DateTime<Utc>,
    /// When its last deletion was confirmed.
    pub completed_at: DateTime<Utc>,
    /// How many objects it lists.
    pub erased: usize,
    /// How many of the requests owed are acknowledged (or confirmed by staff).
    pub acknowledged: usize,
    /// How many requests were owed.
    pub owed: usize,
    /// When the operator deletes it, if known.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether its digest verifies.
    pub verified: bool,
}

/// The receipts as shown, by account and erasure time.
pub fn views(receipts: &[ErasureReceipt]) -> Vec<ReceiptView> {
    let mut views: Vec<ReceiptView> = receipts
        .iter()
        .map(|receipt| {
            let spec = &receipt.spec;
            let status = receipt.status.clone().unwrap_or_default();
            ReceiptView {
                name: receipt.metadata.name.clone().unwrap_or_default(),
                account: spec.account.name.clone(),
                account_uid: spec.account.uid.clone(),
                erasure_at: spec.erasure_at,
                completed_at: spec.completed_at,
                erased: spec.erased.len(),
                acknowledged: status
                    .processors
                    .iter()
                    .filter(|p| p.state == NotificationState::Acknowledged)
                    .count(),
                owed: spec.processors.len(),
                expires_at: status.expires_at,
                verified: verifies(spec),
            }
        })
        .collect();
    views.sort_by(|a, b| {
        (&a.account, a.erasure_at, &a.name).cmp(&(&b.account, b.erasure_at, &b.name))
    });
    views
}

/// The receipts as a table, one line each.
pub fn table(views: &[ReceiptView]) -> String {
    use std::fmt::Write as _;
    if views.is_empty() {
        return "No erasure receipts.\n".to_owned();
    }
    let rows: Vec<[String; 7]> = views
        .iter()
        .map(|v| {
            [
                v.name.clone(),
                v.account.clone(),
                crate::clock::rfc3339(v.erasure_at),
                v.erased.to_string(),
                format!("{}/{} acknowledged", v.acknowledged, v.owed),
                v.expires_at
                    .map_or_else(|| "-".to_owned(), crate::clock::rfc3339),
                if v.verified {
                    "verified"
                } else {
                    "DOES NOT VERIFY"
                }
                .to_owned(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "ACCOUNT",
        "ERASURE TIME",
        "ERASED",
        "REQUESTS",
        "EXPIRES",
        "DIGEST",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use kube::ResourceExt;

    use super::*;
    use crate::{
        api::{AccountSpec, AccountState, AccountStatus, LegalBasis, NotificationState},
        kinds::ResourceKind,
        retention::{Disposition, ResourceRef, Schedule},
    };

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, 0, 0, 0).unwrap()
    }

    fn erased(name: &str, due: DateTime<Utc>) -> ErasedObject {
        ErasedObject {
            kind: "Website".into(),
            namespace: "acme".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            legal_basis: LegalBasis::Contract,
            rule: "grace period 30d after termination".into(),
            delete_at: due,
            deleted_at: due + chrono::TimeDelta::seconds(2),
        }
    }

    fn account(proof: ErasureProof) -> Account {
        let mut account = Account::new(
            "acme",
            AccountSpec {
                customer_ref: "C-1001".into(),
                state: AccountState::Terminated,
                terminated_at: Some(at(1)),
                retention_policy_ref: "default".into(),
                legal_hold: None,
                consents: BTreeMap::new(),
            },
        );
        account.metadata.uid = Some("3f2a9c1e-0000-4000-8000-000000000001".into());
        account.status = Some(AccountStatus {
            erasure: Some(proof),
            ..AccountStatus::default()
        });
        account
    }

    fn bound(name: &str, due: Option<DateTime<Utc>>, disposition: Disposition) -> ResourcePlan {
        ResourcePlan {
            resource: ResourceRef {
                kind: ResourceKind::Website,
                namespace: "acme".into(),
                name: name.into(),
            },
            schedule: Schedule {
                delete_at: due,
                reason: "a rule".into(),
                legal_basis: LegalBasis::LegalObligation,
                disposition,
                rule: crate::retention::Rule::Bookkeeping,
            },
            processors: Vec::new(),
        }
    }

    fn request(processor: &str, erasure_at: DateTime<Utc>) -> ProcessorNotification {
        ProcessorNotification {
            name: processor.into(),
            state: NotificationState::Acknowledged,
            erasure_at: Some(erasure_at),
            idempotency_key: Some(format!("key-{processor}")),
            requested_at: None,
            resources: Vec::new(),
            attempts: 1,
            last_attempt_at: None,
            next_attempt_at: None,
            reason: None,
            acknowledged_at: Some(erasure_at + chrono::TimeDelta::minutes(1)),
        }
    }

    fn due_now(
        account: &Account,
        remaining: &[ResourcePlan],
        requests: &[ProcessorNotification],
    ) -> Vec<ErasureReceipt> {
        due(&ReceiptInput {
            account,
            policy: ("default", 4),
            terminated_at: Some(at(1)),
            remaining,
            requests,
            now: at(20),
        })
    }

    #[test]
    fn an_erasure_time_gets_its_receipt_once_nothing_due_then_is_left() {
        let e = at(15);
        let proof = ErasureProof {
            erased: vec![erased("www-1", e), erased("www-2", e)],
            ..ErasureProof::default()
        };
        let waiting = account(proof.clone());
        let still_bound = [bound("www-3", Some(e), Disposition::Erase)];
        assert!(
            due_now(&waiting, &still_bound, &[]).is_empty(),
            "an object due then is still bound"
        );
        let mut deleting = proof.clone();
        deleting.deleting = vec![crate::api::DeletingItem {
            kind: "Website".into(),
            namespace: "acme".into(),
            name: "www-3".into(),
            uid: "uid-www-3".into(),
            delete_at: Some(e),
            legal_basis: None,
            rule: None,
        }];
        assert!(
            due_now(&account(deleting), &[], &[]).is_empty(),
            "a deletion of that time is still under way"
        );
        let other_time = [bound("www-9", Some(at(16)), Disposition::Erase)];
        let receipts = due_now(&waiting, &other_time, &[]);
        assert_eq!(
            receipts.len(),
            1,
            "another erasure time does not hold it up"
        );
        let spec = &receipts[0].spec;
        assert_eq!(spec.erasure_at, e);
        let names: Vec<&str> = spec.erased.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["www-1", "www-2"]);
        assert_eq!(spec.completed_at, e + chrono::TimeDelta::seconds(2));
        assert_eq!(spec.policy.generation, 4);
        assert_eq!(spec.account.customer_ref, "C-1001");
        assert_eq!(spec.follows, None);
        assert_eq!(
            receipts[0]
                .labels()
                .get(RECEIPT_ACCOUNT_LABEL)
                .map(String::as_str),
            Some("acme")
        );
        assert!(verifies(spec));
    }

    #[test]
    fn a_receipt_lists_what_is_kept_and_the_requests_owed_at_its_time() {
        let e = at(15);
        let proof = ErasureProof {
            erased: vec![erased("www-1", e)],
            ..ErasureProof::default()
        };
        let remaining = [
            bound("invoices", Some(at(31)), Disposition::Retain),
            bound("held", None, Disposition::Keep),
        ];
        let requests = [request("pipedrive", e), request("key-systems", at(16))];
        let receipts = due_now(&account(proof), &remaining, &requests);
        let spec = &receipts[0].spec;
        let kept: Vec<(&str, Option<DateTime<Utc>>)> = spec
            .kept
            .iter()
            .map(|k| (k.name.as_str(), k.until))
            .collect();
        assert_eq!(kept, [("held", None), ("invoices", Some(at(31)))]);
        assert_eq!(
            spec.processors,
            [OwedRequest {
                name: "pipedrive".into(),
                idempotency_key: "key-pipedrive".into()
            }],
            "only the request of this erasure time"
        );
        let status = status_of(spec, &requests, "10d".parse().unwrap());
        assert_eq!(
            status.expires_at,
            Some(spec.completed_at + chrono::TimeDelta::days(10))
        );
        assert_eq!(status.erased_count, Some(1));
        assert_eq!(status.processors.len(), 1);
        assert_eq!(
            status.processors[0].acknowledged_at,
            requests[0].acknowledged_at
        );
    }

    #[test]
    fn objects_left_out_of_a_written_receipt_get_a_follow_up_naming_it() {
        let e = at(15);
        let first = receipt_name("acme", "3f2a9c1e-0000", e, 0);
        let proof = ErasureProof {
            erased: vec![erased("late", e)],
            receipts: vec![WrittenReceipt {
                erasure_at: e,
                name: first.clone(),
                erased: 2,
            }],
            ..ErasureProof::default()
        };
        let receipts = due_now(&account(proof), &[], &[]);
        assert_eq!(receipts[0].name_any(), format!("{first}-1"));
        assert_eq!(receipts[0].spec.follows, Some(first));
    }

    #[test]
    fn names_are_fixed_by_account_uid_and_time_and_always_fit() {
        let e = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 58).unwrap();
        assert_eq!(
            receipt_name("acme", "3F2A9C1E-0000-4000", e, 0),
            "acme-3f2a9c1e-20261231235958"
        );
        assert_eq!(
            receipt_name("acme", "3f2a9c1e", e, 2),
            "acme-3f2a9c1e-20261231235958-2"
        );
        let long = format!("{}-x", "a".repeat(250));
        let name = receipt_name(&long, "3f2a9c1e", e, 0);
        assert_eq!(name.len(), 253);
        assert!(name.ends_with("-3f2a9c1e-20261231235958"));
        // A shortened account name never leaves "--" or ".-" behind.
        let dashed = format!("{}-{}", "a".repeat(227), "b".repeat(30));
        assert!(!receipt_name(&dashed, "3f2a9c1e", e, 0).contains("--"));
    }

    #[test]
    fn the_digest_covers_every_field_and_not_how_the_json_was_laid_out() {
        let proof = ErasureProof {
            erased: vec![erased("www-1", at(15))],
            ..ErasureProof::default()
        };
        let receipt = due_now(&account(proof), &[], &[]).remove(0);
        let spec = receipt.spec;
        assert!(spec.digest.starts_with(DIGEST_PREFIX));
        assert_eq!(spec.digest.len(), DIGEST_PREFIX.len() + 64);
        // The same spec read back with its keys in another order and spaced out.
        let mut value = serde_json::to_value(&spec).unwrap();
        let reordered: serde_json::Map<String, Value> = value
            .as_object()
            .unwrap()
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let text = serde_json::to_string_pretty(&reordered).unwrap();
        let read: ErasureReceiptSpec = serde_json::from_str(&text).unwrap();
        assert!(verifies(&read));
        for (field, changed) in [
            ("/erased/0/uid", json_string("uid-other")),
            ("/completedAt", json_string("2026-12-15T00:00:03Z")),
            ("/account/customerRef", json_string("C-1002")),
        ] {
            let mut tampered = value.clone();
            *tampered.pointer_mut(field).unwrap() = changed;
            let tampered: ErasureReceiptSpec = serde_json::from_value(tampered).unwrap();
            assert!(!verifies(&tampered), "{field} changed, still verifies");
        }
        value["digest"] = json_string("sha256:00");
        let forged: ErasureReceiptSpec = serde_json::from_value(value).unwrap();
        assert!(!verifies(&forged));
    }

    fn json_string(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    #[test]
    fn a_receipt_expires_keep_for_after_its_completion_and_never_past_9999() {
        let proof = ErasureProof {
            erased: vec![erased("www-1", at(15))],
            ..ErasureProof::default()
        };
        let spec = due_now(&account(proof), &[], &[]).remove(0).spec;
        let ten_years: RetentionDuration = "3653d".parse().unwrap();
        assert_eq!(
            expires_at(&spec, ten_years),
            Some(spec.completed_at + chrono::TimeDelta::days(3653))
        );
        let forever: RetentionDuration = "999999w".parse().unwrap();
        assert_eq!(expires_at(&spec, forever), None);
    }
}
