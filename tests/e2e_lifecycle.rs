//! End to end: the real operator (in-process, with an injected clock) against the test API
//! server. An account with a website, a database, a mailbox, a domain, a CRM record, invoices
//! and twenty backups is terminated, and its data goes on schedule until nothing is left.

mod e2e_support;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use retention_operator::{
    api::{
        Account, AccountPhase, Backup, DataRecord, Database, Domain, LegalBasis, Mailbox, Website,
    },
    controller,
};

use e2e_support::{
    Harness, account, at, backup, bookkeeping_record, create, create_cluster, data_record,
    database, default_policy, delete_at, domain, eventually, expires_at, gone, mailbox, wait_phase,
    website,
};

const TERMINATED: &str = "2026-11-01T00:00:00Z";
/// The hosted resources' and the CRM record's date: 30 days of grace.
const GRACE_END: &str = "2026-12-01T00:00:00Z";
/// The mailbox's date: 14 days of grace.
const MAILBOX_DUE: &str = "2026-11-15T00:00:00Z";
/// Fiscal year 2026 kept through 2033 (Bookkeeping Act, 7 years).
const INVOICES_DUE: &str = "2034-01-01T00:00:00Z";
/// No backup outlives the termination by more than 90 days.
const BACKUP_CAP: &str = "2027-01-30T00:00:00Z";

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Twenty backups of the database, every six hours from 2026-10-27 02:00 to 2026-10-31 20:00.
fn backup_times() -> Vec<DateTime<Utc>> {
    (0..20)
        .map(|i| at("2026-10-27T02:00:00Z") + TimeDelta::hours(6 * i))
        .collect()
}

fn backup_name(taken: DateTime<Utc>) -> String {
    format!("shop-db-{}", taken.format("%Y%m%d-%H%M"))
}

/// The backup schedule of docs/design.md §3, worked out by hand for these backups: every one is
/// kept 7 days; all fall in ISO week 2026-W44 and in October, whose newest (10-31 20:00) is
/// kept 4 weeks and 6 months (to 2027-04-30), capped at 90 days after termination.
fn expected_expiry(taken: DateTime<Utc>) -> DateTime<Utc> {
    let newest = at("2026-10-31T20:00:00Z");
    if taken == newest {
        at(BACKUP_CAP)
    } else {
        taken + TimeDelta::days(7)
    }
}

/// An active account with all its objects; the test terminates it.
async fn seed(client: &Client) {
    create_cluster(client, &default_policy()).await;
    create_cluster(client, &account("acme")).await;
    create(client, &website("www", "acme")).await;
    create(client, &database("shop-db", "acme")).await;
    create(client, &mailbox("info", "acme")).await;
    create(client, &domain("acme-example", "acme")).await;
    create(client, &data_record("crm", "acme")).await;
    create(
        client,
        &bookkeeping_record("invoices", "acme", "2026-12-31"),
    )
    .await;
    for taken in backup_times() {
        create(
            client,
            &backup(&backup_name(taken), "acme", "shop-db", taken),
        )
        .await;
    }
}

/// Records every phase the Account's status shows, in order, from a watch: a phase held only
/// between two writes (Erasing) is seen too. Only the Account with `uid` counts (on a real
/// cluster, an earlier test's Account of the same name may still be reported as it goes).
fn record_phases(client: &Client, uid: String) -> Arc<Mutex<Vec<AccountPhase>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let accounts: Api<Account> = Api::all(client.clone());
    let config = watcher::Config::default().fields("metadata.name=acme");
    tokio::spawn(
        watcher(accounts, config)
            .applied_objects()
            .for_each(move |account| {
                let recorder = recorder.clone();
                let phase = account
                    .ok()
                    .filter(|a| a.metadata.uid.as_deref() == Some(uid.as_str()))
                    .and_then(|a| a.status?.phase);
                async move {
                    let mut seen = recorder.lock().unwrap();
                    if let Some(phase) = phase
                        && seen.last() != Some(&phase)
                    {
                        seen.push(phase);
                    }
                }
            }),
    );
    seen
}

/// The hosted objects and the CRM record that go at the end of the grace period.
async fn hosted_present(client: &Client) -> [bool; 4] {
    [
        !gone::<Website>(client, "www").await,
        !gone::<Database>(client, "shop-db").await,
        !gone::<Domain>(client, "acme-example").await,
        !gone::<DataRecord>(client, "crm").await,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_account_is_erased_on_schedule() {
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    seed(&client).await;
    wait_phase(&client, "acme", AccountPhase::Active).await;
    let uid = e2e_support::get_account(&client, "acme")
        .await
        .and_then(|a| a.metadata.uid)
        .expect("the Account has a uid");
    let phases = record_phases(&client, uid);
    // The account system terminates the account.
    e2e_support::patch_account(
        &client,
        "acme",
        serde_json::json!({"spec": {"state": "Terminated", "terminatedAt": TERMINATED}}),
    )
    .await;

    // Schedules appear on every object.
    for (kind, name, expected) in [
        ("Website", "www", GRACE_END),
        ("Database", "shop-db", GRACE_END),
        ("Domain", "acme-example", GRACE_END),
        ("DataRecord", "crm", GRACE_END),
        ("Mailbox", "info", MAILBOX_DUE),
        ("DataRecord", "invoices", INVOICES_DUE),
    ] {
        eventually(
            &format!("the delete-at {expected} on {kind} {name}"),
            || async {
                let stamped = match kind {
                    "Website" => delete_at::<Website>(&client, name).await,
                    "Database" => delete_at::<Database>(&client, name).await,
                    "Domain" => delete_at::<Domain>(&client, name).await,
                    "Mailbox" => delete_at::<Mailbox>(&client, name).await,
                    _ => delete_at::<DataRecord>(&client, name).await,
                };
                (stamped.as_deref() == Some(expected)).then_some(())
            },
        )
        .await;
    }
    for taken in backup_times() {
        let name = backup_name(taken);
        let expected = expected_expiry(taken);
        eventually(&format!("the expiresAt {expected} of {name}"), || async {
            (expires_at(&client, &name).await == Some(expected)).then_some(())
        })
        .await;
    }
    wait_phase(&client, "acme", AccountPhase::GracePeriod).await;
    let account = Api::<Account>::all(client.clone())
        .get("acme")
        .await
        .unwrap();
    assert!(
        account
            .finalizers()
            .iter()
            .any(|f| f == controller::account::FINALIZER)
    );

    // The backups go on their own dates, one after another, during the grace period.
    let mut expiries: Vec<DateTime<Utc>> =
        backup_times().into_iter().map(expected_expiry).collect();
    expiries.sort();
    expiries.dedup();
    for expiry in expiries.iter().filter(|e| **e < at(GRACE_END)) {
        // A second before: nothing of that date is gone yet.
        harness
            .move_clock_and_settle(&text(*expiry - TimeDelta::seconds(1)), 1)
            .await;
        for taken in backup_times() {
            let name = backup_name(taken);
            let due = expected_expiry(taken) < *expiry;
            assert_eq!(
                gone::<Backup>(&client, &name).await,
                due,
                "{name} at {}",
                text(*expiry - TimeDelta::seconds(1))
            );
        }
        harness.move_clock_to(&text(*expiry)).await;
        for taken in backup_times()
            .into_iter()
            .filter(|t| expected_expiry(*t) == *expiry)
        {
            let name = backup_name(taken);
            eventually(&format!("{name} deleted at {}", text(*expiry)), || async {
                gone::<Backup>(&client, &name).await.then_some(())
            })
            .await;
        }
    }
    assert_eq!(hosted_present(&client).await, [true; 4]);

    // The mailbox goes at the end of its 14 days, nothing else of the account.
    harness
        .move_clock_and_settle("2026-11-14T23:59:59Z", 1)
        .await;
    assert!(!gone::<Mailbox>(&client, "info").await);
    harness.move_clock_to(MAILBOX_DUE).await;
    eventually("the mailbox to go", || async {
        gone::<Mailbox>(&client, "info").await.then_some(())
    })
    .await;
    assert_eq!(hosted_present(&client).await, [true; 4]);

    // The end of the grace period: website, database, domain and CRM record go; the capped
    // backup and the invoices stay (Retained).
    harness
        .move_clock_and_settle("2026-11-30T23:59:59Z", 1)
        .await;
    assert_eq!(hosted_present(&client).await, [true; 4]);
    harness.move_clock_to(GRACE_END).await;
    eventually("the hosted objects and the CRM record to go", || async {
        (hosted_present(&client).await == [false; 4]).then_some(())
    })
    .await;
    wait_phase(&client, "acme", AccountPhase::Retained).await;
    let retained = eventually("the proof listing the invoices as retained", || async {
        let proof = e2e_support::get_account(&client, "acme")
            .await?
            .status?
            .erasure?;
        proof
            .retained
            .iter()
            .any(|r| r.name == "invoices")
            .then_some(proof.retained)
    })
    .await;
    let invoices_item = retained.iter().find(|r| r.name == "invoices").unwrap();
    assert_eq!(invoices_item.delete_at, Some(at(INVOICES_DUE)));
    assert_eq!(invoices_item.legal_basis, LegalBasis::LegalObligation);

    // The last backup goes at its cap, the invoices at the Bookkeeping Act's date.
    let last = backup_name(at("2026-10-31T20:00:00Z"));
    harness
        .move_clock_and_settle("2027-01-29T23:59:59Z", 1)
        .await;
    assert!(!gone::<Backup>(&client, &last).await);
    harness.move_clock_to(BACKUP_CAP).await;
    eventually("the capped backup to go", || async {
        gone::<Backup>(&client, &last).await.then_some(())
    })
    .await;
    harness
        .move_clock_and_settle("2033-12-31T23:59:59Z", 1)
        .await;
    assert!(!gone::<DataRecord>(&client, "invoices").await);
    harness.move_clock_to(INVOICES_DUE).await;
    eventually("the invoices to go", || async {
        gone::<DataRecord>(&client, "invoices").await.then_some(())
    })
    .await;
    wait_phase(&client, "acme", AccountPhase::Erased).await;

    // The phases, in order: Active, then GracePeriod → Erasing → Retained → Erased. The
    // mailbox's shorter grace adds a first, brief Erasing on 2026-11-15, after which the
    // account is back in its grace period until the other hosted objects' date.
    let phases = phases.lock().unwrap().clone();
    assert_eq!(
        phases,
        [
            AccountPhase::Active,
            AccountPhase::GracePeriod,
            AccountPhase::Erasing,
            AccountPhase::GracePeriod,
            AccountPhase::Erasing,
            AccountPhase::Retained,
            AccountPhase::Erased
        ]
    );
    let mut first_seen: Vec<AccountPhase> = Vec::new();
    for phase in phases {
        if !first_seen.contains(&phase) {
            first_seen.push(phase);
        }
    }
    assert_eq!(
        first_seen,
        [
            AccountPhase::Active,
            AccountPhase::GracePeriod,
            AccountPhase::Erasing,
            AccountPhase::Retained,
            AccountPhase::Erased
        ]
    );

    // The proof: what was erased, per kind, from first to last.
    let status = Api::<Account>::all(client.clone())
        .get("acme")
        .await
        .unwrap()
        .status
        .unwrap();
    let proof = status.erasure.unwrap();
    let deleted: Vec<(&str, u32)> = proof
        .deleted
        .iter()
        .map(|(kind, count)| (kind.as_str(), *count))
        .collect();
    assert_eq!(
        deleted,
        [
            ("Backup", 20),
            ("DataRecord", 2),
            ("Database", 1),
            ("Domain", 1),
            ("Mailbox", 1),
            ("Website", 1)
        ]
    );
    assert_eq!(proof.started_at, Some(expiries[0]));
    assert_eq!(proof.completed_at, Some(at(INVOICES_DUE)));
    assert!(proof.retained.is_empty());
    harness.stop().await;
}
