//! End to end: the audit trail (docs/audit.md). A full lifecycle of one account — termination,
//! reactivation, termination again, a suspended policy, the mass-deletion brake and its
//! release, deletions, erasure requests acknowledged, failed, handed to staff, confirmed and
//! sent again or withdrawn, the receipt written and deleted at `keepFor` — leaves audit lines that match
//! the documented schema field by field, cover every step, and hold no customerRef, address
//! or secret.
//!
//! This binary holds one lifecycle test: the log capture is global to the binary.

mod e2e_support;
mod receiver;

use std::{collections::BTreeSet, time::Duration};

use chrono::DateTime;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use retention_operator::{
    api::{
        BRAKE_RELEASED_AT, BrakeSpec, DEFAULT_POLICY, ReceiptRetention, RetentionPolicy,
        RetentionPolicySpec,
    },
    audit::{AuditAction, AuditRecord},
};
use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, MapAccess, Visitor},
};
use serde_json::{Map, Value, json};

use e2e_support::{
    AccountExt, DataProcessorExt, DomainExt, Harness, HostedExt, account, apply_signing_secret, at,
    create, create_cluster, data_record, database, domain, eventually_within, mailbox,
    patch_account, policy_with_one_grace_period, processor, retention_policy, website,
};
use receiver::{Receiver, Reply, loopback_pki};

const TERMINATED: &str = "2026-11-01T00:00:00Z";
/// The end of the 30-day grace period after [`TERMINATED`].
const DUE: &str = "2026-12-01T00:00:00Z";
/// When the person releases the brake.
const RELEASED: &str = "2026-12-01T00:01:00Z";
/// When staff confirm the manual request and have the refused one sent again: after its
/// attempt.
const STAFF: &str = "2026-12-01T00:02:00Z";
/// Past the receipt's `keepFor` (1d) after the erasure completed.
const RECEIPT_EXPIRED: &str = "2026-12-03T00:00:00Z";

/// The account's customerRef, its hosted data and the processors' secrets: none of it may
/// reach the audit trail.
const CUSTOMER_REF: &str = "C-7f3a-audit";
const SECRETS: [&str; 2] = ["registrar-signing-key", "mailer-signing-key"];

/// Long enough for the brake's count (written at most every 10 s) and the retries.
const WAIT: Duration = Duration::from_secs(120);

/// The documented schema: the fields in order with their types, and the actions.
struct Schema {
    fields: Vec<(String, String)>,
    actions: BTreeSet<String>,
}

/// The backticked first cell and the second cell of each row of the table under `heading`.
fn table_rows(doc: &str, heading: &str) -> Vec<(String, String)> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/audit.md has no section {heading}"));
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

fn documented_schema() -> Schema {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit.md");
    let doc = std::fs::read_to_string(path).unwrap();
    Schema {
        fields: table_rows(&doc, "Fields"),
        actions: table_rows(&doc, "Actions")
            .into_iter()
            .map(|(action, _)| action)
            .collect(),
    }
}

/// Whether `value` has the documented `type` ("string", "integer", "string or null").
fn has_type(value: &Value, type_: &str) -> bool {
    match type_ {
        "string" => value.is_string(),
        "integer" => value.is_u64(),
        "string or null" => value.is_string() || value.is_null(),
        other => panic!("docs/audit.md names an unknown type {other}"),
    }
}

/// A JSON object's keys in the order of the text (`Value`'s map sorts them).
struct KeysInOrder(Vec<String>);

impl<'de> Deserialize<'de> for KeysInOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = KeysInOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeysInOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, _)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(KeysInOrder(keys))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// Checks one audit line against the documented schema; returns it parsed.
fn conforming(line: &str, schema: &Schema) -> Map<String, Value> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
        panic!("an audit line that is no JSON object: {line}");
    };
    let KeysInOrder(keys) = serde_json::from_str(line).unwrap();
    let documented: Vec<&str> = schema.fields.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(keys, documented, "fields or their order: {line}");
    for (field, type_) in &schema.fields {
        assert!(
            has_type(&object[field], type_),
            "{field} is no {type_}: {line}"
        );
    }
    assert_eq!(object["target"], "audit", "{line}");
    assert_eq!(object["version"], 1, "{line}");
    let action = object["action"].as_str().unwrap();
    assert!(
        schema.actions.contains(action),
        "undocumented action: {line}"
    );
    for field in ["time", "deleteAt"] {
        if let Some(time) = object[field].as_str() {
            assert!(
                DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'),
                "{field} is no RFC 3339 UTC time: {line}"
            );
        }
    }
    object
}

/// The audit lines captured so far (the log's other lines never start with `{`).
fn audit_lines(logs: &std::sync::Mutex<Vec<u8>>) -> Vec<String> {
    String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(str::to_owned)
        .collect()
}

/// The captured audit records of `action`.
fn records(logs: &std::sync::Mutex<Vec<u8>>, action: AuditAction) -> Vec<AuditRecord> {
    audit_lines(logs)
        .iter()
        .filter_map(|line| serde_json::from_str::<AuditRecord>(line).ok())
        .filter(|record| record.action == action)
        .collect()
}

/// Waits until at least `count` records of `action` are captured.
async fn wait_for(logs: &std::sync::Mutex<Vec<u8>>, action: AuditAction, count: usize) {
    eventually_within(&format!("{count} × {action}"), WAIT, || async {
        (records(logs, action).len() >= count).then_some(())
    })
    .await;
}

async fn patch_policy(client: &Client, patch: serde_json::Value) {
    Api::<RetentionPolicy>::all(client.clone())
        .patch(
            DEFAULT_POLICY,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .unwrap();
}

fn lifecycle_policy() -> RetentionPolicySpec {
    RetentionPolicySpec {
        brake: Some(BrakeSpec {
            max_deletions: 3,
            per: "1h".parse().unwrap(),
        }),
        receipts: Some(ReceiptRetention {
            keep_for: "1d".parse().unwrap(),
        }),
        ..policy_with_one_grace_period()
    }
}

/// The account, seven objects, a registrar that acknowledges, a mailer that refuses and a CRM
/// provider without a webhook; returns the objects' uids.
async fn seed(client: &Client, ok: &Receiver, refusing: &Receiver, ca: &[u8]) -> BTreeSet<String> {
    create_cluster(
        client,
        &retention_policy(DEFAULT_POLICY, lifecycle_policy()),
    )
    .await;
    for (name, receiver, key) in [
        ("registrar", ok, SECRETS[0]),
        ("mailer", refusing, SECRETS[1]),
    ] {
        apply_signing_secret(client, name, key.as_bytes()).await;
        create_cluster(
            client,
            &processor(name).webhook(&receiver.url()).ca_bundle(ca),
        )
        .await;
    }
    create_cluster(client, &processor("crm")).await;
    create_cluster(client, &account("acme").customer_ref(CUSTOMER_REF)).await;
    let uid = |o: Option<String>| o.unwrap();
    let mut uids = BTreeSet::new();
    for name in ["www-0", "www-1"] {
        uids.insert(uid(create(client, &website(name, "acme"))
            .await
            .metadata
            .uid));
    }
    uids.insert(uid(create(client, &mailbox("info", "acme"))
        .await
        .metadata
        .uid));
    uids.insert(uid(create(client, &database("db", "acme"))
        .await
        .metadata
        .uid));
    let acme_se = domain("acme-se", "acme").registrar("registrar");
    uids.insert(uid(create(client, &acme_se).await.metadata.uid));
    let crm = data_record("crm", "acme").processor("crm");
    uids.insert(uid(create(client, &crm).await.metadata.uid));
    let news = data_record("newsletter", "acme").processor("mailer");
    uids.insert(uid(create(client, &news).await.metadata.uid));
    uids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_lifecycle_leaves_documented_audit_lines_without_personal_data() {
    let logs = e2e_support::captured_logs();
    let schema = documented_schema();
    let pki = loopback_pki();
    let ok = Receiver::start(&pki, Reply::Status(200)).await;
    let refusing = Receiver::start(&pki, Reply::Status(400)).await;
    let harness = Harness::start(at(TERMINATED)).await;
    let client = harness.client.clone();
    let uids = seed(&client, &ok, &refusing, &pki.ca_pem).await;

    // Terminated, reactivated, terminated again: schedules set, cancelled, set.
    let terminated = json!({"spec": {"state": "Terminated", "terminatedAt": TERMINATED}});
    patch_account(&client, "acme", terminated.clone()).await;
    wait_for(&logs, AuditAction::ScheduleSet, 7).await;
    // The requests owed are recorded before the reactivation withdraws them. A status write
    // whose Account changed meanwhile is left to the change's own pass, so without this wait
    // the reactivation could come before they were ever recorded, and there would be nothing
    // to withdraw.
    eventually_within("the three requests owed recorded", WAIT, || async {
        let account = e2e_support::get_account(&client, "acme").await?;
        (account.status?.processors.len() == 3).then_some(())
    })
    .await;
    patch_account(
        &client,
        "acme",
        json!({"spec": {"state": "Active", "terminatedAt": null}}),
    )
    .await;
    wait_for(&logs, AuditAction::ScheduleCancelled, 7).await;
    patch_account(&client, "acme", terminated).await;
    wait_for(&logs, AuditAction::ScheduleSet, 14).await;

    // Due under a suspended policy: nothing goes until it is lifted; then the brake holds the
    // seven (more than its three) until a person releases it.
    patch_policy(&client, json!({"spec": {"suspend": true}})).await;
    wait_for(&logs, AuditAction::ErasureSuspended, 1).await;
    harness.move_clock_to("2026-12-01T00:00:01Z").await;
    patch_policy(&client, json!({"spec": {"suspend": false}})).await;
    wait_for(&logs, AuditAction::ErasureResumed, 1).await;
    wait_for(&logs, AuditAction::BrakeEngaged, 1).await;
    assert!(records(&logs, AuditAction::Deleted).is_empty());
    harness.move_clock_to(RELEASED).await;
    patch_policy(
        &client,
        json!({"metadata": {"annotations": {BRAKE_RELEASED_AT: RELEASED}}}),
    )
    .await;
    wait_for(&logs, AuditAction::BrakeReleased, 1).await;
    wait_for(&logs, AuditAction::Deleted, 7).await;

    // The processors answer; staff confirm the manual request and have the refused one sent
    // again (it is refused again).
    wait_for(&logs, AuditAction::ErasureRequestAcknowledged, 1).await;
    wait_for(&logs, AuditAction::ErasureRequestManual, 1).await;
    wait_for(&logs, AuditAction::ErasureRequestFailed, 1).await;
    let staff = json!({"metadata": {"annotations": {
        "erasure-confirmed.hosting.ecuni.se/crm": STAFF,
        "erasure-retry.hosting.ecuni.se/mailer": STAFF,
    }}});
    harness.move_clock_to(STAFF).await;
    patch_account(&client, "acme", staff).await;
    wait_for(&logs, AuditAction::ErasureRequestConfirmed, 1).await;
    wait_for(&logs, AuditAction::ErasureRequestRetried, 1).await;
    wait_for(&logs, AuditAction::ErasureRequestFailed, 2).await;

    // The receipt, written and, a day after the erasure completed, deleted.
    wait_for(&logs, AuditAction::ReceiptWritten, 1).await;
    harness.move_clock_to(RECEIPT_EXPIRED).await;
    wait_for(&logs, AuditAction::ReceiptDeleted, 1).await;
    harness.stop().await;

    let lines = audit_lines(&logs);
    for line in &lines {
        conforming(line, &schema);
        for private in [CUSTOMER_REF, "@", "acme.example", "https://", "127.0.0.1"]
            .iter()
            .chain(&SECRETS)
        {
            assert!(
                !line.contains(private),
                "{private} in the audit trail: {line}"
            );
        }
    }
    let seen: BTreeSet<AuditAction> = lines
        .iter()
        .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap().action)
        .collect();
    // Nothing was cut short, so nothing was found deleted; every other action was taken.
    let taken = AuditAction::ALL
        .into_iter()
        .filter(|a| *a != AuditAction::FoundDeleted);
    for action in taken {
        assert!(seen.contains(&action), "no {action} line: {lines:#?}");
    }

    let deleted = records(&logs, AuditAction::Deleted);
    let deleted_uids: BTreeSet<String> = deleted.iter().filter_map(|r| r.uid.clone()).collect();
    assert_eq!(
        deleted_uids, uids,
        "one deleted line per object, with its uid"
    );
    assert_eq!(deleted.len(), 7, "each deletion once: {deleted:#?}");
    for record in &deleted {
        assert_eq!(record.account.as_deref(), Some("acme"));
        assert_eq!(record.delete_at.as_deref(), Some(DUE));
        assert_eq!(
            record.rule.as_deref(),
            Some("grace period 30d after termination")
        );
        assert_eq!(record.namespace.as_deref(), Some(e2e_support::NAMESPACE));
    }
    // The reactivation withdrew the three requests owed.
    let withdrawn = records(&logs, AuditAction::ErasureRequestWithdrawn);
    let processors: BTreeSet<&str> = withdrawn.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(processors, BTreeSet::from(["crm", "mailer", "registrar"]));
    // One line per change of the brake, though the release's write meets a conflict (the
    // annotation changed the policy under the brake's last write).
    assert_eq!(records(&logs, AuditAction::BrakeEngaged).len(), 1);
    let released = records(&logs, AuditAction::BrakeReleased);
    assert_eq!(released.len(), 1, "{released:#?}");
    let released = &released[0];
    assert!(
        released
            .detail
            .as_deref()
            .is_some_and(|d| d.contains(BRAKE_RELEASED_AT) && d.contains(RELEASED)),
        "{released:?}"
    );
    let acknowledged = &records(&logs, AuditAction::ErasureRequestAcknowledged)[0];
    assert_eq!(acknowledged.name, "registrar");
    assert!(acknowledged.idempotency_key.is_some());
    assert_eq!(acknowledged.delete_at.as_deref(), Some(DUE));
    let written = &records(&logs, AuditAction::ReceiptWritten)[0];
    let deleted_receipt = &records(&logs, AuditAction::ReceiptDeleted)[0];
    assert_eq!(written.name, deleted_receipt.name);
    assert_eq!(written.uid, deleted_receipt.uid);
}

/// docs/audit.md lists exactly the actions and fields the operator writes.
#[test]
fn the_documented_schema_is_the_one_written() {
    let schema = documented_schema();
    let actions: BTreeSet<String> = AuditAction::ALL
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    assert_eq!(schema.actions, actions);
    let record = AuditRecord::new(
        AuditAction::Deleted,
        at(DUE),
        "Website",
        Some("hosting"),
        "www",
    );
    let line = record.line();
    conforming(&line, &schema);
}

/// A DELETE whose answer never came (the API server deleted the object after the operator's
/// request timeout) leaves no `deleted` line; the next pass finds the recorded deletion gone
/// and writes `found-deleted`, so the trail still holds every object the receipt lists.
#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_whose_answer_was_lost_is_still_in_the_trail() {
    e2e_support::skip_on_real_cluster!("needs fault injection");
    let logs = e2e_support::captured_logs();
    let harness = Harness::start(at(TERMINATED)).await;
    let client = harness.client.clone();
    let server = harness.test_server().unwrap();
    create_cluster(
        &client,
        &retention_policy(DEFAULT_POLICY, policy_with_one_grace_period()),
    )
    .await;
    create_cluster(&client, &account("lost").terminated_at(TERMINATED)).await;
    let uid = create(&client, &website("lost-www", "lost"))
        .await
        .metadata
        .uid
        .unwrap();
    let of_lost = |action| {
        records(&logs, action)
            .into_iter()
            .filter(|r| r.account.as_deref() == Some("lost"))
            .collect::<Vec<_>>()
    };
    eventually_within("the schedule", WAIT, || async {
        (!of_lost(AuditAction::ScheduleSet).is_empty()).then_some(())
    })
    .await;

    // The operator's DELETE is held past its request timeout, then served all the same.
    server.update_faults(|f| {
        f.rules = vec![
            test_apiserver::FaultRule::stalling(
                e2e_support::REQUEST_TIMEOUT + Duration::from_secs(1),
            )
            .verb("delete")
            .resource("websites")
            .from_client(e2e_support::OPERATOR_AGENT)
            .detached(),
        ]
    });
    harness.move_clock_to("2026-12-01T00:00:01Z").await;
    let found = eventually_within("the deletion found", WAIT, || async {
        let found = of_lost(AuditAction::FoundDeleted);
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(found[0].uid.as_deref(), Some(uid.as_str()));
    assert_eq!(found[0].delete_at.as_deref(), Some(DUE));
    assert_eq!(
        found[0].rule.as_deref(),
        Some("grace period 30d after termination")
    );
    assert!(
        of_lost(AuditAction::Deleted).is_empty(),
        "the DELETE's answer was lost, so it could not be logged as such"
    );
    eventually_within("the receipt", WAIT, || async {
        (!of_lost(AuditAction::ReceiptWritten).is_empty()).then_some(())
    })
    .await;
    harness.stop().await;
}
