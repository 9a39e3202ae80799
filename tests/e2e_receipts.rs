//! End to end: ErasureReceipts. The real operator, with an injected clock, writes one receipt
//! per account and erasure time once its deletions are confirmed, keeps it after the Account
//! is gone, records the processors' answers in its status, and deletes it at `keepFor`.

mod e2e_support;
mod receiver;

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use retention_operator::{
    api::{
        Account, DEFAULT_POLICY, ErasureReceipt, NotificationState, RECEIPT_ACCOUNT_LABEL,
        ReceiptRetention, RetentionDuration, Website,
    },
    audit::{AuditAction, AuditRecord},
    controller, receipts,
};
use serde_json::json;

use e2e_support::{
    AccountExt, DataProcessorExt, DomainExt, Harness, HostedExt, account, apply_signing_secret, at,
    create, create_cluster, data_record, database, domain, eventually, get_account, gone, mailbox,
    policy_with_one_grace_period, processor, retention_policy, website,
};
use receiver::{Receiver, Reply, loopback_pki};

/// The account's receipts, oldest erasure time first.
async fn receipts_of(client: &Client, account: &str) -> Vec<ErasureReceipt> {
    let mut list = Api::<ErasureReceipt>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{RECEIPT_ACCOUNT_LABEL}={account}")))
        .await
        .unwrap()
        .items;
    list.sort_by_key(|r| (r.spec.erasure_at, r.name_any()));
    list
}

/// The audit records captured for `account`.
fn audited(logs: &std::sync::Mutex<Vec<u8>>, account: &str) -> Vec<AuditRecord> {
    String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter_map(|line| serde_json::from_str::<AuditRecord>(line).ok())
        .filter(|record| record.account.as_deref() == Some(account))
        .collect()
}

/// Creates `object` and returns its uid.
async fn uid_of<K>(client: &Client, object: &K) -> String
where
    K: e2e_support::StaticObject<k8s_openapi::NamespaceResourceScope>,
{
    create(client, object).await.uid().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_account_leaves_a_receipt_of_exactly_what_went_and_what_its_processors_said() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    // The API server stamps deletionTimestamp with the real clock, so the manual clock starts
    // at the real time and every date below is counted from what the server wrote.
    let start = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let harness = Harness::start(start).await;
    let client = harness.client.clone();
    create_cluster(
        &client,
        &retention_policy(DEFAULT_POLICY, policy_with_one_grace_period()),
    )
    .await;
    for name in ["pipedrive", "key-systems"] {
        apply_signing_secret(&client, name, format!("{name}-secret").as_bytes()).await;
        create_cluster(
            &client,
            &processor(name)
                .webhook(&receiver.url())
                .ca_bundle(&pki.ca_pem),
        )
        .await;
    }
    create_cluster(&client, &account("acme")).await;
    let mut uids = BTreeSet::new();
    for i in 0..3 {
        uids.insert(uid_of(&client, &website(&format!("www-{i}"), "acme")).await);
    }
    for i in 0..2 {
        uids.insert(uid_of(&client, &mailbox(&format!("info-{i}"), "acme")).await);
        uids.insert(uid_of(&client, &database(&format!("db-{i}"), "acme")).await);
    }
    uids.insert(uid_of(&client, &domain("acme-se", "acme").registrar("key-systems")).await);
    uids.insert(uid_of(&client, &data_record("crm", "acme").processor("pipedrive")).await);
    uids.insert(uid_of(&client, &data_record("tickets", "acme")).await);
    assert_eq!(uids.len(), 10);
    eventually("the finalizer", || async {
        let acme = get_account(&client, "acme").await?;
        acme.finalizers()
            .iter()
            .any(|f| f == controller::account::FINALIZER)
            .then_some(())
    })
    .await;

    Api::<Account>::all(client.clone())
        .delete("acme", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = get_account(&client, "acme")
        .await
        .and_then(|a| a.metadata.deletion_timestamp)
        .expect("the finalizer keeps the Account");
    let t = DateTime::from_timestamp(deleted.0.as_second(), 0).unwrap();
    let due = t + TimeDelta::days(30);
    harness
        .move_clock_to(&(due + TimeDelta::seconds(1)).to_rfc3339())
        .await;
    eventually("the Account to go", || async {
        get_account(&client, "acme").await.is_none().then_some(())
    })
    .await;

    for name in ["www-0", "www-1", "www-2"] {
        assert!(gone::<Website>(&client, name).await);
    }
    let receipts = receipts_of(&client, "acme").await;
    assert_eq!(receipts.len(), 1, "one erasure time, one receipt");
    let receipt = &receipts[0];
    let listed: BTreeSet<String> = receipt.spec.erased.iter().map(|o| o.uid.clone()).collect();
    assert_eq!(listed, uids, "exactly the ten objects that went");
    if let Some(server) = harness.test_server() {
        let deleted_by_server: BTreeSet<String> = server
            .requests()
            .iter()
            .filter(|r| r.verb == "delete" && r.code == 200 && r.resource != "accounts")
            .filter(|r| r.resource != "erasurereceipts")
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(deleted_by_server.len(), 10, "{deleted_by_server:?}");
    }
    assert_eq!(receipt.spec.erasure_at, due);
    assert_eq!(receipt.spec.terminated_at, Some(t));
    assert_eq!(receipt.spec.account.customer_ref, "C-acme");
    assert!(receipt.spec.erased.iter().all(|o| o.delete_at == due));
    assert!(receipts::verifies(&receipt.spec), "the digest verifies");
    let owed: Vec<&str> = receipt
        .spec
        .processors
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(owed, ["key-systems", "pipedrive"]);
    let status = receipt.status.clone().expect("a status");
    assert_eq!(status.erased_count, Some(10));
    assert_eq!(status.processors.len(), 2);
    assert!(
        status
            .processors
            .iter()
            .all(|p| p.state == NotificationState::Acknowledged && p.acknowledged_at.is_some()),
        "{:?}",
        status.processors
    );
    assert_eq!(
        status.expires_at,
        Some(receipt.spec.completed_at + TimeDelta::days(3653)),
        "kept for the default ten years"
    );

    // The spec cannot be changed, not even by the operator's own service account.
    let tampered = Api::<ErasureReceipt>::all(client.clone())
        .patch(
            &receipt.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"completedAt": "2020-01-01T00:00:00Z"}})),
        )
        .await;
    match tampered {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 422, "{status:?}"),
        other => panic!("a changed spec was accepted: {other:?}"),
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_is_deleted_at_keep_for_and_not_a_second_before() {
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    let mut policy = policy_with_one_grace_period();
    policy.receipts = Some(ReceiptRetention {
        keep_for: "10d".parse::<RetentionDuration>().unwrap(),
    });
    create_cluster(&client, &retention_policy(DEFAULT_POLICY, policy)).await;
    create_cluster(
        &client,
        &account("acme").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    create(&client, &website("www", "acme")).await;
    harness.move_clock_to("2026-12-01T00:00:00Z").await;
    let receipt = eventually("a receipt", || async {
        receipts_of(&client, "acme").await.into_iter().next()
    })
    .await;
    let completed = receipt.spec.completed_at;
    let expires = completed + TimeDelta::days(10);
    let shown = eventually("expiresAt shown", || async {
        let receipt = receipts_of(&client, "acme").await.into_iter().next()?;
        receipt.status?.expires_at
    })
    .await;
    assert_eq!(shown, expires);

    harness
        .move_clock_and_settle(&(expires - TimeDelta::seconds(1)).to_rfc3339(), 1)
        .await;
    // The receipt controller's own pass on the clock move has run once the reads settle.
    settle_receipts(&client, 1).await;
    assert_eq!(
        receipts_of(&client, "acme").await.len(),
        1,
        "deleted a second early"
    );

    harness.clock.set(expires);
    eventually("the receipt to go at keepFor", || async {
        receipts_of(&client, "acme").await.is_empty().then_some(())
    })
    .await;
    harness.stop().await;
}

/// Polls `done` every few milliseconds for up to two seconds: a kill point, not a wait for a
/// state the test relies on (the kill happens either way).
async fn poll_briefly<F, Fut>(mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < until && !done().await {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits a little while the receipts stay at `count` (nothing to poll for: what is checked is
/// that nothing happens).
async fn settle_receipts(client: &Client, count: usize) {
    for _ in 0..10 {
        assert_eq!(receipts_of(client, "acme").await.len(), count);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_killed_anywhere_around_a_receipt_still_leaves_exactly_one_complete_one() {
    const KILLS: usize = 20;
    let logs = e2e_support::captured_logs();
    let mut harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    create_cluster(
        &client,
        &retention_policy(DEFAULT_POLICY, policy_with_one_grace_period()),
    )
    .await;
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("RECEIPT_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..)),
    );
    eprintln!("kill points from seed {}", rng.get_seed());
    let mut expected = Vec::new();
    for i in 0..KILLS {
        let name = format!("acct-{i}");
        // Each account falls due a day after the one before.
        let terminated = at("2026-11-01T00:00:00Z") + TimeDelta::days(i as i64);
        create_cluster(
            &client,
            &account(&name).terminated_at(&terminated.to_rfc3339()),
        )
        .await;
        let mut uids = BTreeSet::new();
        for j in 0..3 {
            uids.insert(uid_of(&client, &website(&format!("{name}-www-{j}"), &name)).await);
        }
        expected.push((name, uids, terminated + TimeDelta::days(30)));
    }
    harness.settle().await;
    if let Some(server) = harness.test_server() {
        // Deletions, receipts' creations and the status writes after them are held a moment
        // now and then, so that kills land in each window more often: between the deletions
        // and the receipt, and between the receipt and the status that records it.
        server.update_faults(|f| {
            let stall = |verb: &str, resource: &str| {
                test_apiserver::FaultRule::stalling(Duration::from_millis(120))
                    .verb(verb)
                    .resource(resource)
                    .fraction(0.5)
            };
            f.rules.push(stall("delete", "websites"));
            f.rules.push(stall("create", "erasurereceipts"));
            f.rules
                .push(stall("patch", "accounts").subresource("status"));
        });
    }
    for (i, (name, _, due)) in expected.iter().enumerate() {
        harness.clock.set(*due + TimeDelta::seconds(1));
        // At a random time in the pass that deletes and writes the receipt; or the moment the
        // objects are gone (before the receipt); or the moment the receipt exists (before the
        // status records it).
        let kill_point = match i % 3 {
            0 => {
                tokio::time::sleep(Duration::from_millis(rng.u64(0..400))).await;
                "at a random time"
            }
            1 => {
                poll_briefly(|| async {
                    let mut all_gone = true;
                    for j in 0..3 {
                        all_gone &= gone::<Website>(&client, &format!("{name}-www-{j}")).await;
                    }
                    all_gone
                })
                .await;
                "once the objects were gone"
            }
            _ => {
                poll_briefly(|| async { !receipts_of(&client, name).await.is_empty() }).await;
                "once the receipt existed"
            }
        };
        harness.kill_and_restart_operator().await;
        eventually(
            &format!("{name}'s receipt after a kill {kill_point}"),
            || async {
                let receipts = receipts_of(&client, name).await;
                let pending = get_account(&client, name)
                    .await
                    .and_then(|a| a.status?.erasure)
                    .is_some_and(|e| !e.erased.is_empty() || !e.deleting.is_empty());
                (!receipts.is_empty() && !pending).then_some(())
            },
        )
        .await;
    }
    harness.settle().await;
    for (name, uids, due) in &expected {
        let receipts = receipts_of(&client, name).await;
        assert_eq!(receipts.len(), 1, "{name}: {receipts:#?}");
        let receipt = &receipts[0];
        assert_eq!(receipt.spec.erasure_at, *due, "{name}");
        let listed: BTreeSet<String> = receipt.spec.erased.iter().map(|o| o.uid.clone()).collect();
        assert_eq!(&listed, uids, "{name}: complete");
        assert!(receipts::verifies(&receipt.spec), "{name}: digest");
        let recorded = get_account(&client, name)
            .await
            .and_then(|a| a.status?.erasure)
            .map(|e| e.receipts)
            .unwrap_or_default();
        assert_eq!(recorded.len(), 1, "{name}: recorded once");
        assert_eq!(recorded[0].name, receipt.name_any());
        // The audit trail misses no step, whatever the kill cut short: each object's deletion
        // is logged (`found-deleted` when its pass died before it could log), and so is the
        // receipt.
        let audited = audited(&logs, name);
        let erased: BTreeSet<String> = audited
            .iter()
            .filter(|r| matches!(r.action, AuditAction::Deleted | AuditAction::FoundDeleted))
            .filter_map(|r| r.uid.clone())
            .collect();
        assert_eq!(&erased, uids, "{name}: every deletion in the audit trail");
        assert!(
            audited
                .iter()
                .any(|r| r.action == AuditAction::ReceiptWritten && r.name == receipt.name_any()),
            "{name}: the receipt in the audit trail"
        );
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_never_deletes_a_receipt_past_its_keep_for() {
    let harness = Harness::start_dry_run(at("2040-01-01T00:00:00Z")).await;
    let client = harness.client.clone();
    create_cluster(
        &client,
        &retention_policy(DEFAULT_POLICY, policy_with_one_grace_period()),
    )
    .await;
    // A receipt an earlier, non-dry-run operator wrote in 2026: ten years are over by 2040.
    let receipt = e2e_support::written_receipt("acme");
    create_cluster(&client, &receipt).await;
    // A finished pass of the receipt controller over it (counted when the pass ends).
    eventually("the receipt controller's look at it", || async {
        (e2e_support::metric(
            &harness.metrics,
            "retention_operator_reconcile_duration_seconds_count{controller=\"erasurereceipt\"}",
        ) > 0)
            .then_some(())
    })
    .await;
    harness.settle().await;
    assert_eq!(
        receipts_of(&client, "acme").await.len(),
        1,
        "a dry run deleted a receipt"
    );
    harness.stop().await;
}
