//! End to end: the real operator (in-process, with an injected clock) against the test API
//! server. An account is terminated, and its data goes on schedule until nothing is left.

mod e2e_support;

use kube::{
    Api, Client, ResourceExt,
    api::{ObjectMeta, PostParams},
};
use retention_operator::{
    api::{
        Account, AccountBinding, AccountPhase, AccountSpec, AccountState, Backup, BackupSchedule,
        BackupSource, BackupSpec, Bookkeeping, BookkeepingRetention, DELETE_AT_ANNOTATION,
        DataCategory, DataRecord, DataRecordSpec, GracePeriods, HostedKind, LegalBasis, Mailbox,
        MailboxSpec, RetentionPolicy, RetentionPolicySpec, Website, WebsiteSpec,
    },
    controller,
};

use e2e_support::{Harness, NAMESPACE, at, eventually};

fn binding(account: &str, basis: LegalBasis) -> AccountBinding {
    AccountBinding {
        account_ref: account.into(),
        processor_ref: None,
        legal_basis: basis,
        consent_purpose: None,
    }
}

fn namespaced<K: kube::Resource>(mut object: K) -> K {
    object.meta_mut().namespace = Some(NAMESPACE.into());
    object
}

async fn seed(client: &Client, terminated_at: &str) {
    let post = PostParams::default();
    let policy = RetentionPolicy::new(
        "default",
        RetentionPolicySpec {
            grace_period: "30d".parse().unwrap(),
            grace_periods: GracePeriods {
                mailbox: Some("14d".parse().unwrap()),
                ..Default::default()
            },
            backups: BackupSchedule {
                keep_daily: 7,
                keep_weekly: 4,
                keep_monthly: 6,
                after_termination: Some("90d".parse().unwrap()),
            },
            bookkeeping: BookkeepingRetention { years: 7 },
        },
    );
    Api::<RetentionPolicy>::all(client.clone())
        .create(&post, &policy)
        .await
        .unwrap();
    let account = Account {
        metadata: ObjectMeta {
            name: Some("acme".into()),
            ..Default::default()
        },
        spec: AccountSpec {
            customer_ref: "C-1".into(),
            state: AccountState::Terminated,
            terminated_at: Some(at(terminated_at)),
            retention_policy_ref: "default".into(),
            legal_hold: None,
            consents: Default::default(),
        },
        status: None,
    };
    Api::<Account>::all(client.clone())
        .create(&post, &account)
        .await
        .unwrap();
    let website = namespaced(Website::new(
        "www",
        WebsiteSpec {
            binding: binding("acme", LegalBasis::Contract),
            hostnames: vec![],
        },
    ));
    Api::<Website>::namespaced(client.clone(), NAMESPACE)
        .create(&post, &website)
        .await
        .unwrap();
    let mailbox = namespaced(Mailbox::new(
        "info",
        MailboxSpec {
            binding: binding("acme", LegalBasis::Contract),
            address: "info@example.com".into(),
        },
    ));
    Api::<Mailbox>::namespaced(client.clone(), NAMESPACE)
        .create(&post, &mailbox)
        .await
        .unwrap();
    let invoices = namespaced(DataRecord::new(
        "invoices",
        DataRecordSpec {
            binding: binding("acme", LegalBasis::LegalObligation),
            category: DataCategory::Invoices,
            bookkeeping: Some(Bookkeeping {
                fiscal_year_end: "2026-12-31".parse().unwrap(),
            }),
        },
    ));
    Api::<DataRecord>::namespaced(client.clone(), NAMESPACE)
        .create(&post, &invoices)
        .await
        .unwrap();
    let backup = namespaced(Backup::new(
        "www-20261031",
        BackupSpec {
            account_ref: "acme".into(),
            source_ref: BackupSource {
                kind: HostedKind::Website,
                name: "www".into(),
            },
            taken_at: at("2026-10-31T02:00:00Z"),
        },
    ));
    Api::<Backup>::namespaced(client.clone(), NAMESPACE)
        .create(&post, &backup)
        .await
        .unwrap();
}

async fn phase(client: &Client) -> Option<AccountPhase> {
    Api::<Account>::all(client.clone())
        .get("acme")
        .await
        .ok()?
        .status?
        .phase
}

async fn wait_phase(client: &Client, expected: AccountPhase) {
    eventually(&format!("phase {expected:?}"), || async {
        (phase(client).await == Some(expected)).then_some(())
    })
    .await;
}

async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    matches!(api.get_opt(name).await, Ok(None))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_account_is_erased_on_schedule() {
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    seed(&client, "2026-11-01T00:00:00Z").await;
    let websites = Api::<Website>::namespaced(client.clone(), NAMESPACE);
    let mailboxes = Api::<Mailbox>::namespaced(client.clone(), NAMESPACE);
    let records = Api::<DataRecord>::namespaced(client.clone(), NAMESPACE);
    let backups = Api::<Backup>::namespaced(client.clone(), NAMESPACE);

    // Schedules are stamped durably on every object.
    let stamped = eventually("the website's delete-at annotation", || async {
        websites
            .get("www")
            .await
            .ok()?
            .annotations()
            .get(DELETE_AT_ANNOTATION)
            .cloned()
    })
    .await;
    assert_eq!(stamped, "2026-12-01T00:00:00Z");
    let mailbox_stamp = eventually("the mailbox's delete-at annotation", || async {
        mailboxes
            .get("info")
            .await
            .ok()?
            .annotations()
            .get(DELETE_AT_ANNOTATION)
            .cloned()
    })
    .await;
    assert_eq!(mailbox_stamp, "2026-11-15T00:00:00Z");
    let invoice_stamp = eventually("the invoice's delete-at annotation", || async {
        records
            .get("invoices")
            .await
            .ok()?
            .annotations()
            .get(DELETE_AT_ANNOTATION)
            .cloned()
    })
    .await;
    assert_eq!(invoice_stamp, "2034-01-01T00:00:00Z");
    let expires = eventually("the backup's expiresAt", || async {
        backups.get("www-20261031").await.ok()?.status?.expires_at
    })
    .await;
    // Newest of October, kept 6 months, capped at 90 days after termination.
    assert_eq!(expires, at("2027-01-30T00:00:00Z"));
    wait_phase(&client, AccountPhase::GracePeriod).await;
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
    wait_phase(&client, AccountPhase::GracePeriod).await;
    assert!(
        !gone(&mailboxes, "info").await,
        "mailbox deleted before its deleteAt"
    );

    // The mailbox goes at the end of its 14-day grace period, the website stays.
    harness.move_clock_to("2026-11-15T00:00:01Z").await;
    eventually("the mailbox to go", || async {
        gone(&mailboxes, "info").await.then_some(())
    })
    .await;
    assert!(
        !gone(&websites, "www").await,
        "website deleted before its deleteAt"
    );

    // The website goes after 30 days; backups and bookkeeping remain.
    harness.move_clock_to("2026-12-01T00:00:01Z").await;
    eventually("the website to go", || async {
        gone(&websites, "www").await.then_some(())
    })
    .await;
    wait_phase(&client, AccountPhase::Retained).await;

    // The backup goes at its capped date; the invoice stays until the Bookkeeping Act's date.
    harness.move_clock_to("2027-01-30T00:00:01Z").await;
    eventually("the backup to go", || async {
        gone(&backups, "www-20261031").await.then_some(())
    })
    .await;
    assert!(
        !gone(&records, "invoices").await,
        "invoice deleted before its bookkeeping date"
    );

    harness.move_clock_to("2034-01-01T00:00:01Z").await;
    eventually("the invoice to go", || async {
        gone(&records, "invoices").await.then_some(())
    })
    .await;
    wait_phase(&client, AccountPhase::Erased).await;

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
