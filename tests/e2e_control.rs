//! End to end: deletion under control. A suspended RetentionPolicy deletes nothing and sends no
//! erasure request until it is lifted, including a suspend the operator's cache has not seen.

mod e2e_support;
mod receiver;

use std::time::Duration;

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use retention_operator::{
    api::{
        Account, AccountPhase, Condition, ConditionStatus, DEFAULT_POLICY, DataRecord,
        NotificationState, RetentionPolicy, Website,
    },
    status::ERASURE_SUSPENDED,
};
use serde_json::json;
use test_apiserver::FaultRule;

use e2e_support::{
    AccountExt, DataProcessorExt, Harness, HostedExt, OPERATOR_AGENT, account,
    apply_signing_secret, at, create, create_cluster, data_record, default_policy, delete_at,
    events, eventually, get_account, gone, processor, wait_phase, website,
};
use receiver::{Receiver, Reply, loopback_pki};

const TERMINATED: &str = "2026-11-01T00:00:00Z";
/// The end of the default policy's 30-day grace period after [`TERMINATED`].
const GRACE_END: &str = "2026-12-01T00:00:00Z";
/// Websites of the account; with its one DataRecord, the objects that fall due.
const WEBSITES: usize = 19;

/// A terminated account with [`WEBSITES`] websites and a CRM record that processor `pipedrive`
/// (whose webhook is `receiver`) also holds; waits until every schedule is stamped.
async fn seed(client: &Client, receiver: &Receiver, ca_pem: &[u8]) {
    create_cluster(client, &default_policy()).await;
    apply_signing_secret(client, "pipedrive", b"hmac-secret").await;
    create_cluster(
        client,
        &processor("pipedrive")
            .webhook(&receiver.url())
            .ca_bundle(ca_pem),
    )
    .await;
    create_cluster(client, &account("acme").terminated_at(TERMINATED)).await;
    for i in 0..WEBSITES {
        create(client, &website(&format!("www-{i}"), "acme")).await;
    }
    create(client, &data_record("crm", "acme").processor("pipedrive")).await;
    for i in 0..WEBSITES {
        let name = format!("www-{i}");
        eventually("the schedules", || delete_at::<Website>(client, &name)).await;
    }
    eventually("the schedules", || delete_at::<DataRecord>(client, "crm")).await;
}

/// Sets or lifts `suspend` on the default policy.
async fn suspend(client: &Client, suspend: bool) {
    Api::<RetentionPolicy>::all(client.clone())
        .patch(
            DEFAULT_POLICY,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": suspend}})),
        )
        .await
        .unwrap();
}

/// The Account's `ErasureSuspended` condition.
async fn suspended_condition(client: &Client) -> Option<Condition> {
    get_account(client, "acme")
        .await?
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == ERASURE_SUSPENDED)
}

/// How many of the account's objects still exist.
async fn remaining(client: &Client) -> usize {
    let mut count = usize::from(!gone::<DataRecord>(client, "crm").await);
    for i in 0..WEBSITES {
        count += usize::from(!gone::<Website>(client, &format!("www-{i}")).await);
    }
    count
}

/// The operator's gauge of due deletions that suspended policies hold back.
fn held(harness: &Harness) -> u64 {
    e2e_support::metric(
        &harness.metrics,
        "retention_operator_suspended_deletions_due ",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_policy_deletes_nothing_and_sends_nothing_until_it_is_lifted() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let mut harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    let Some(mut log) = e2e_support::request_log_or_skip!(harness) else {
        return;
    };
    seed(&client, &receiver, &pki.ca_pem).await;
    let due = WEBSITES + 1;

    suspend(&client, true).await;
    eventually("ErasureSuspended=True", || async {
        suspended_condition(&client)
            .await
            .filter(|c| c.status == ConditionStatus::True)
    })
    .await;
    log.clear();
    harness.move_clock_and_settle(GRACE_END, 1).await;

    let deletes = log.operator_deletes().await;
    assert!(deletes.is_empty(), "deleted under a suspend: {deletes:?}");
    assert_eq!(remaining(&client).await, due);
    assert!(receiver.received().is_empty(), "a request went out");
    let condition = suspended_condition(&client).await.unwrap();
    assert_eq!(condition.reason, "PolicySuspended");
    assert!(
        condition.message.contains(DEFAULT_POLICY),
        "{}",
        condition.message
    );
    let status = get_account(&client, "acme").await.unwrap().status.unwrap();
    // Still shown: the schedules are computed as usual.
    assert_eq!(status.next_deletion_at, Some(at(GRACE_END)));
    assert_eq!(status.phase, Some(AccountPhase::Erasing));
    let suspended = events(&client, "ErasureSuspended").await;
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert_eq!(suspended[0].0, "Account/acme");
    assert_eq!(held(&harness), due as u64);
    // A restarted operator (killed wherever it was) still deletes nothing under the suspend.
    drop(log);
    harness.kill_and_restart_operator().await;
    let mut log = harness.request_log().unwrap();
    log.clear();
    harness
        .move_clock_and_settle("2026-12-01T00:00:10Z", 1)
        .await;
    let deletes = log.operator_deletes().await;
    assert!(deletes.is_empty(), "deleted after a restart: {deletes:?}");
    assert!(receiver.received().is_empty(), "a request went out");

    // Lifted, and the operator killed once more while the erasure may be under way: every
    // object still goes, and the proof counts each exactly once.
    suspend(&client, false).await;
    harness.kill_and_restart_operator().await;
    eventually("everything erased", || async {
        (remaining(&client).await == 0).then_some(())
    })
    .await;
    eventually("the erasure request", || async {
        (receiver.received().len() == 1).then_some(())
    })
    .await;
    wait_phase(&client, "acme", AccountPhase::Erased).await;
    let condition = suspended_condition(&client).await.unwrap();
    assert_eq!(condition.status, ConditionStatus::False);
    assert_eq!(events(&client, "ErasureResumed").await.len(), 1);
    let proof = get_account(&client, "acme")
        .await
        .and_then(|a| a.status?.erasure)
        .unwrap_or_default();
    assert_eq!(proof.deleted.get("Website"), Some(&(WEBSITES as u32)));
    assert_eq!(proof.deleted.get("DataRecord"), Some(&1));
    eventually("the gauge back at 0", || async {
        (held(&harness) == 0).then_some(())
    })
    .await;
    harness.stop().await;
}

/// A suspend the operator's cache has not seen still stops a due DELETE: the policy read from
/// the API server right before it is not the one planned from.
#[tokio::test(flavor = "multi_thread")]
async fn a_suspend_the_cache_has_not_seen_stops_the_deletes() {
    e2e_support::skip_on_real_cluster!("needs fault injection");
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    let server = harness.test_server().unwrap();
    let Some(mut log) = e2e_support::request_log_or_skip!(harness) else {
        return;
    };
    seed(&client, &receiver, &pki.ca_pem).await;
    harness.settle().await;
    e2e_support::freeze_operator_cache(
        server,
        &mut log,
        "retentionpolicies",
        &["watch", "list"],
        Vec::new(),
    )
    .await;
    suspend(&client, true).await;
    log.clear();
    harness.move_clock_and_settle(GRACE_END, 1).await;
    assert!(
        log.operator_requests()
            .await
            .iter()
            .any(|r| r.verb == "get" && r.resource == "retentionpolicies"),
        "the policy was not read before deleting"
    );
    let deletes = log.operator_deletes().await;
    assert!(deletes.is_empty(), "deleted under a suspend: {deletes:?}");
    assert_eq!(remaining(&client).await, WEBSITES + 1);
    harness.stop().await;
}

/// A suspend the operator's cache has not seen still stops a due erasure request: the policy is
/// read from the API server before requests are sent, as before each DELETE.
#[tokio::test(flavor = "multi_thread")]
async fn a_suspend_the_cache_has_not_seen_stops_the_next_erasure_request() {
    e2e_support::skip_on_real_cluster!("needs fault injection");
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(500)).await;
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    let server = harness.test_server().unwrap();
    let Some(mut log) = e2e_support::request_log_or_skip!(harness) else {
        return;
    };
    seed(&client, &receiver, &pki.ca_pem).await;
    // The erasure happens; its request is refused once and waits for its next attempt.
    harness.move_clock_to(GRACE_END).await;
    eventually("the first attempt", || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    let next_attempt = eventually("the next attempt recorded", || async {
        let account: Account = get_account(&client, "acme").await?;
        let request = account.status?.processors.into_iter().next()?;
        (request.state == NotificationState::Pending && request.attempts >= 1)
            .then_some(request.next_attempt_at?)
    })
    .await;
    harness.settle().await;

    // The operator's cache of RetentionPolicies stops learning; then the policy is suspended.
    e2e_support::freeze_operator_cache(
        server,
        &mut log,
        "retentionpolicies",
        &["watch", "list"],
        Vec::new(),
    )
    .await;
    suspend(&client, true).await;
    receiver.set_reply(Reply::Status(200));
    let sent = receiver.received().len();
    harness
        .move_clock_and_settle(&next_attempt.to_rfc3339(), 1)
        .await;
    assert!(
        log.operator_requests()
            .await
            .iter()
            .any(|r| r.verb == "get" && r.resource == "retentionpolicies"),
        "the policy was not read before sending"
    );
    assert_eq!(
        receiver.received().len(),
        sent,
        "a request went out under a suspend"
    );
    harness.stop().await;
}

/// The policy read before an erasure request hangs: the request waits (the read is abandoned
/// after the request timeout and the pass fails), other work is not wedged, and the request
/// goes once the API server answers again.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_policy_read_holds_the_erasure_request_until_it_answers() {
    e2e_support::skip_on_real_cluster!("needs fault injection");
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(500)).await;
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    let server = harness.test_server().unwrap();
    seed(&client, &receiver, &pki.ca_pem).await;
    harness.move_clock_to(GRACE_END).await;
    eventually("the first attempt", || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    let next_attempt = eventually("the next attempt recorded", || async {
        let account: Account = get_account(&client, "acme").await?;
        let request = account.status?.processors.into_iter().next()?;
        (request.state == NotificationState::Pending && request.attempts >= 1)
            .then_some(request.next_attempt_at?)
    })
    .await;
    harness.settle().await;

    // Every policy read of the operator hangs far past its request timeout.
    server.update_faults(|f| {
        f.rules = vec![
            FaultRule::stalling(Duration::from_secs(60))
                .verb("get")
                .resource("retentionpolicies")
                .from_client(OPERATOR_AGENT),
        ]
    });
    receiver.set_reply(Reply::Status(200));
    let sent = receiver.received().len();
    let timeouts = || {
        e2e_support::metric(
            &harness.metrics,
            "retention_operator_reconcile_errors_total{controller=\"account\",reason=\"RequestTimeout\"}",
        )
    };
    harness.clock.set(next_attempt);
    eventually("the hanging policy read abandoned", || async {
        (timeouts() >= 1).then_some(())
    })
    .await;
    assert_eq!(
        receiver.received().len(),
        sent,
        "a request went out without the policy read"
    );
    server.clear_faults();
    eventually("the request sent once the policy is read", || async {
        (receiver.received().len() > sent).then_some(())
    })
    .await;
    harness.stop().await;
}
