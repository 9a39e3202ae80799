//! End to end: the real operator (in-process, with an injected clock) against the test API
//! server. An account is terminated, and its data goes on schedule until nothing is left.

mod e2e_support;

use kube::{Api, Client, ResourceExt};
use retention_operator::{
    api::{Account, AccountPhase, Backup, DataRecord, Mailbox, Website},
    controller,
};

use e2e_support::{
    Harness, at, create, create_cluster, default_policy, delete_at, eventually, expires_at, gone,
    invoices, mailbox, terminated_account, wait_phase, website, website_backup,
};

async fn seed(client: &Client, terminated_at: &str) {
    create_cluster(client, &default_policy()).await;
    create_cluster(client, &terminated_account("acme", terminated_at)).await;
    create(client, &website("www", "acme")).await;
    create(client, &mailbox("info", "acme")).await;
    create(client, &invoices("invoices", "acme", "2026-12-31")).await;
    create(
        client,
        &website_backup("www-20261031", "acme", "www", at("2026-10-31T02:00:00Z")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_account_is_erased_on_schedule() {
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    seed(&client, "2026-11-01T00:00:00Z").await;

    // Schedules are stamped durably on every object.
    let stamped = eventually("the website's delete-at annotation", || {
        delete_at::<Website>(&client, "www")
    })
    .await;
    assert_eq!(stamped, "2026-12-01T00:00:00Z");
    let mailbox_stamp = eventually("the mailbox's delete-at annotation", || {
        delete_at::<Mailbox>(&client, "info")
    })
    .await;
    assert_eq!(mailbox_stamp, "2026-11-15T00:00:00Z");
    let invoice_stamp = eventually("the invoice's delete-at annotation", || {
        delete_at::<DataRecord>(&client, "invoices")
    })
    .await;
    assert_eq!(invoice_stamp, "2034-01-01T00:00:00Z");
    let expires = eventually("the backup's expiresAt", || {
        expires_at(&client, "www-20261031")
    })
    .await;
    // Newest of October, kept 6 months, capped at 90 days after termination.
    assert_eq!(expires, at("2027-01-30T00:00:00Z"));
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

    // Nothing goes early: a day before the mailbox's date, everything is still there.
    harness.move_clock_to("2026-11-14T00:00:00Z").await;
    wait_phase(&client, "acme", AccountPhase::GracePeriod).await;
    assert!(
        !gone::<Mailbox>(&client, "info").await,
        "mailbox deleted before its deleteAt"
    );

    // The mailbox goes at the end of its 14-day grace period, the website stays.
    harness.move_clock_to("2026-11-15T00:00:01Z").await;
    eventually("the mailbox to go", || async {
        gone::<Mailbox>(&client, "info").await.then_some(())
    })
    .await;
    assert!(
        !gone::<Website>(&client, "www").await,
        "website deleted before its deleteAt"
    );

    // The website goes after 30 days; backups and bookkeeping remain.
    harness.move_clock_to("2026-12-01T00:00:01Z").await;
    eventually("the website to go", || async {
        gone::<Website>(&client, "www").await.then_some(())
    })
    .await;
    wait_phase(&client, "acme", AccountPhase::Retained).await;

    // The backup goes at its capped date; the invoice stays until the Bookkeeping Act's date.
    harness.move_clock_to("2027-01-30T00:00:01Z").await;
    eventually("the backup to go", || async {
        gone::<Backup>(&client, "www-20261031").await.then_some(())
    })
    .await;
    assert!(
        !gone::<DataRecord>(&client, "invoices").await,
        "invoice deleted before its bookkeeping date"
    );

    harness.move_clock_to("2034-01-01T00:00:01Z").await;
    eventually("the invoice to go", || async {
        gone::<DataRecord>(&client, "invoices").await.then_some(())
    })
    .await;
    wait_phase(&client, "acme", AccountPhase::Erased).await;

    // The proof: what was erased, per kind, with start and end.
    let status = Api::<Account>::all(client.clone())
        .get("acme")
        .await
        .unwrap()
        .status
        .unwrap();
    let proof = status.erasure.unwrap();
    for (kind, count) in [
        ("Website", 1),
        ("Mailbox", 1),
        ("Backup", 1),
        ("DataRecord", 1),
    ] {
        assert_eq!(
            proof.deleted.get(kind),
            Some(&count),
            "{kind} in {:?}",
            proof.deleted
        );
    }
    assert!(proof.started_at.is_some());
    assert!(proof.completed_at.is_some());
    assert!(proof.retained.is_empty());
    harness.stop().await;
}
