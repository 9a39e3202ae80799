//! End to end: erasure requests to processors. The real operator, with an injected
//! clock, sends them to a real HTTPS receiver on loopback whose CA the DataProcessor names.

mod e2e_support;
mod receiver;

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::events::v1::Event;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use retention_operator::{
    api::{AccountPhase, NotificationState, ProcessorNotification},
    clock::Clock,
    notifier::{IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify},
};
use serde_json::json;

use e2e_support::{
    AccountExt, DataProcessorExt, Harness, HostedExt, NAMESPACE, account, apply_signing_secret, at,
    create, create_cluster, data_record, default_policy, events, eventually, get_account, gone,
    processor, wait_phase,
};
use receiver::{Receiver, Reply, loopback_pki};

/// The signing secret: it must appear nowhere but in signatures.
const SECRET: &str = "hmac-secret-value-0f5e2a9c-never-logged";
const GRACE_END: &str = "2026-12-01T00:00:00Z";

/// A terminated account whose CRM record `pipedrive` also holds; the processor's webhook is
/// `url` (with the receiver's CA), or none for a manual processor.
async fn seed(client: &Client, webhook: Option<(&str, &[u8])>) {
    create_cluster(client, &default_policy()).await;
    apply_signing_secret(client, "pipedrive", SECRET.as_bytes()).await;
    let processor = match webhook {
        Some((url, ca_pem)) => processor("pipedrive").webhook(url).ca_bundle(ca_pem),
        None => processor("pipedrive"),
    };
    create_cluster(client, &processor).await;
    create_cluster(
        client,
        &account("acme").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    create(client, &data_record("crm", "acme").processor("pipedrive")).await;
    wait_phase(client, "acme", AccountPhase::GracePeriod).await;
}

/// The Account's erasure requests.
async fn requests(client: &Client) -> Vec<ProcessorNotification> {
    get_account(client, "acme")
        .await
        .and_then(|a| a.status)
        .map(|s| s.processors)
        .unwrap_or_default()
}

/// Waits until the one request is in `state`, and returns it.
async fn wait_request(client: &Client, state: NotificationState) -> ProcessorNotification {
    eventually(&format!("the request {state:?}"), || async {
        let requests = requests(client).await;
        requests.first().filter(|r| r.state == state).cloned()
    })
    .await
}

/// Waits until the receiver has seen `count` requests.
async fn wait_received(receiver: &Receiver, count: usize) {
    eventually(&format!("{count} deliveries"), || async {
        (receiver.received().len() >= count).then_some(())
    })
    .await;
}

/// The notes of the events with `reason`.
async fn event_notes(client: &Client, reason: &str) -> Vec<String> {
    events(client, reason)
        .await
        .into_iter()
        .map(|(_, _, note)| note)
        .collect()
}

/// Checks that a delivery carries the documented headers, a signature made with the secret
/// at a time no later than `now` (the operator's clock), and the request's idempotency key;
/// returns the key. Each delivery is verified as a receiver would have at its arrival.
fn checked_key(delivery: &receiver::Received, now: DateTime<Utc>) -> String {
    let header = |name: &str| {
        delivery
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signed_at = header(TIMESTAMP_HEADER)
        .parse::<i64>()
        .ok()
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .expect("a Unix timestamp header");
    assert!(signed_at <= now, "signed at {signed_at}, after {now}");
    let now = signed_at;
    verify(
        SECRET.as_bytes(),
        &header(TIMESTAMP_HEADER),
        &header(SIGNATURE_HEADER),
        &delivery.body,
        now,
        Duration::from_secs(24 * 3600),
    )
    .expect("the signature verifies with the processor's secret");
    assert!(
        verify(
            b"another secret",
            &header(TIMESTAMP_HEADER),
            &header(SIGNATURE_HEADER),
            &delivery.body,
            now,
            Duration::from_secs(24 * 3600),
        )
        .is_err(),
        "a wrong secret fails"
    );
    let body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["account"], "acme");
    assert_eq!(body["customerRef"], "C-acme");
    assert_eq!(body["processor"], "pipedrive");
    assert_eq!(
        body["resources"],
        json!([{"kind": "DataRecord", "namespace": NAMESPACE, "name": "crm"}])
    );
    assert_eq!(body["idempotencyKey"], header(IDEMPOTENCY_KEY_HEADER));
    header(IDEMPOTENCY_KEY_HEADER)
}

/// Sets an annotation on the Account, as staff do.
async fn annotate(client: &Client, key: &str, value: &str) {
    Api::<retention_operator::api::Account>::all(client.clone())
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .unwrap();
}

/// [`checked_key`] of every delivery the receiver has seen, in order.
fn checked_keys(receiver: &Receiver, now: DateTime<Utc>) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|d| checked_key(d, now))
        .collect()
}

/// Moves the clock to the request's next attempt and waits for that delivery.
async fn next_attempt(harness: &Harness, receiver: &Receiver) {
    let seen = receiver.received().len();
    // The status must show every attempt so far, or its next attempt is a stale one.
    let request = eventually("the last attempt recorded", || async {
        requests(&harness.client)
            .await
            .into_iter()
            .next()
            .filter(|r| r.state == NotificationState::Pending && r.attempts as usize >= seen)
    })
    .await;
    let next = request
        .next_attempt_at
        .expect("a Pending request has a next attempt");
    harness.move_clock_to(&next.to_rfc3339()).await;
    wait_received(receiver, seen + 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_failing_three_times_gets_four_deliveries_with_one_key_and_one_acknowledgement()
{
    let logs = e2e_support::captured_logs();
    let pki = loopback_pki();
    let receiver = Receiver::scripted(
        &pki,
        vec![
            Reply::Status(500),
            Reply::Status(500),
            Reply::Status(500),
            Reply::Status(200),
        ],
    )
    .await;
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    seed(&client, Some((&receiver.url(), &pki.ca_pem))).await;
    assert!(
        receiver.received().is_empty(),
        "nothing is sent before the erasure"
    );
    // The request is on record from the moment the erasure is planned, so no crash between
    // the deletion and a status write can lose it.
    let recorded = wait_request(&client, NotificationState::Pending).await;
    assert_eq!(recorded.erasure_at, Some(at(GRACE_END)));
    assert_eq!(recorded.next_attempt_at, Some(at(GRACE_END)));
    assert_eq!(recorded.attempts, 0);

    harness.move_clock_to(GRACE_END).await;
    eventually("the CRM record erased", || async {
        gone::<retention_operator::api::DataRecord>(&client, "crm")
            .await
            .then_some(())
    })
    .await;
    wait_received(&receiver, 1).await;
    for _ in 0..3 {
        next_attempt(&harness, &receiver).await;
    }
    let acknowledged = wait_request(&client, NotificationState::Acknowledged).await;
    assert_eq!(acknowledged.attempts, 4);
    let deliveries = receiver.received();
    assert_eq!(deliveries.len(), 4);
    let keys = checked_keys(&receiver, harness.clock.now());
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    let requested: Vec<serde_json::Value> = deliveries
        .iter()
        .map(|d| {
            serde_json::from_slice::<serde_json::Value>(&d.body).unwrap()["requestedAt"].clone()
        })
        .collect();
    assert!(
        requested.iter().all(|r| *r == requested[0]),
        "{requested:?}"
    );
    assert_eq!(
        acknowledged.idempotency_key.as_deref(),
        Some(keys[0].as_str())
    );
    wait_phase(&client, "acme", AccountPhase::Erased).await;
    assert_eq!(event_notes(&client, "ErasureAcknowledged").await.len(), 1);

    // The secret is in no log line, event or status.
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logged.contains("erasure request sent"),
        "the logs were captured"
    );
    assert!(!logged.contains(SECRET));
    let events = serde_json::to_string(
        &Api::<Event>::all(client.clone())
            .list(&Default::default())
            .await
            .unwrap()
            .items,
    )
    .unwrap();
    assert!(!events.contains(SECRET));
    let status =
        serde_json::to_string(&get_account(&client, "acme").await.unwrap().status).unwrap();
    assert!(!status.contains(SECRET));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_fails_with_a_condition_and_is_sent_again_only_when_staff_ask() {
    let pki = loopback_pki();
    let receiver = Receiver::scripted(&pki, vec![Reply::Status(400), Reply::Status(200)]).await;
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    seed(&client, Some((&receiver.url(), &pki.ca_pem))).await;
    harness.move_clock_to(GRACE_END).await;
    let failed = wait_request(&client, NotificationState::Failed).await;
    assert_eq!(failed.reason.as_deref(), Some("HTTP 400"));
    let condition = eventually("the ErasureRequestsFailed condition", || async {
        get_account(&client, "acme")
            .await?
            .status?
            .conditions
            .into_iter()
            .find(|c| {
                c.type_ == "ErasureRequestsFailed"
                    && c.status == retention_operator::api::ConditionStatus::True
            })
    })
    .await;
    assert!(
        condition.message.contains("pipedrive (HTTP 400)"),
        "{}",
        condition.message
    );
    eventually("an ErasureRequestFailed event", || async {
        (!event_notes(&client, "ErasureRequestFailed")
            .await
            .is_empty())
        .then_some(())
    })
    .await;
    // Days later: no blind retry, and the account is not Erased.
    harness
        .move_clock_and_settle("2026-12-10T00:00:00Z", 1)
        .await;
    assert_eq!(receiver.received().len(), 1);
    wait_phase(&client, "acme", AccountPhase::Erasing).await;

    // Staff had the processor fix its endpoint and ask for the request again.
    annotate(
        &client,
        "erasure-retry.hosting.ecuni.se/pipedrive",
        "2026-12-10T00:00:00Z",
    )
    .await;
    let acknowledged = wait_request(&client, NotificationState::Acknowledged).await;
    assert_eq!(acknowledged.attempts, 2);
    let keys = checked_keys(&receiver, harness.clock.now());
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    wait_phase(&client, "acme", AccountPhase::Erased).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_is_down_for_a_while_is_reached_once_it_is_back() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    receiver.set_down(true);
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    seed(&client, Some((&receiver.url(), &pki.ca_pem))).await;
    harness.move_clock_to(GRACE_END).await;
    // Two attempts while it is down.
    let first = wait_request(&client, NotificationState::Pending).await;
    let first_attempts = eventually("a failed attempt", || async {
        let request = requests(&client).await.into_iter().next()?;
        (request.attempts >= 1).then_some(request.attempts)
    })
    .await;
    assert!(first.next_attempt_at.is_some());
    let next = requests(&client).await[0].next_attempt_at.unwrap();
    harness.move_clock_to(&next.to_rfc3339()).await;
    eventually("a second failed attempt", || async {
        let request = requests(&client).await.into_iter().next()?;
        (request.attempts > first_attempts).then_some(())
    })
    .await;
    assert!(receiver.received().is_empty());
    // Back: the next attempt reaches it.
    receiver.set_down(false);
    next_attempt(&harness, &receiver).await;
    wait_request(&client, NotificationState::Acknowledged).await;
    wait_phase(&client, "acme", AccountPhase::Erased).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_during_retries_continues_with_the_same_key() {
    let pki = loopback_pki();
    let receiver = Receiver::scripted(&pki, vec![Reply::Status(503), Reply::Status(200)]).await;
    let mut harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    seed(&client, Some((&receiver.url(), &pki.ca_pem))).await;
    harness.move_clock_to(GRACE_END).await;
    wait_received(&receiver, 1).await;
    wait_request(&client, NotificationState::Pending).await;
    eventually("the failed attempt recorded", || async {
        (requests(&client).await.first()?.attempts == 1).then_some(())
    })
    .await;
    harness.restart_operator().await;
    next_attempt(&harness, &receiver).await;
    wait_request(&client, NotificationState::Acknowledged).await;
    let keys = checked_keys(&receiver, harness.clock.now());
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processor_without_webhook_waits_for_staff_to_confirm() {
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    seed(&client, None).await;
    harness.move_clock_to(GRACE_END).await;
    let manual = wait_request(&client, NotificationState::Manual).await;
    assert!(
        manual
            .reason
            .unwrap()
            .contains("erasure-confirmed.hosting.ecuni.se/pipedrive")
    );
    eventually("the ManualActionRequired condition and event", || async {
        let condition = get_account(&client, "acme")
            .await?
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "ManualActionRequired")?;
        let event = !event_notes(&client, "ManualActionRequired")
            .await
            .is_empty();
        (condition.status == retention_operator::api::ConditionStatus::True && event).then_some(())
    })
    .await;
    harness
        .move_clock_and_settle("2026-12-05T00:00:00Z", 1)
        .await;
    wait_phase(&client, "acme", AccountPhase::Erasing).await;

    // Staff sent it and confirm.
    annotate(
        &client,
        "erasure-confirmed.hosting.ecuni.se/pipedrive",
        "2026-12-04T10:00:00Z",
    )
    .await;
    let confirmed = wait_request(&client, NotificationState::Acknowledged).await;
    assert_eq!(confirmed.acknowledged_at, Some(at("2026-12-04T10:00:00Z")));
    wait_phase(&client, "acme", AccountPhase::Erased).await;
    harness.stop().await;
}

/// Issue 10, defect 6: one processor whose endpoint never answers must not hold the workers
/// that delete. 40 accounts owe it an erasure request; 10 other accounts fall due a day later
/// and are erased at once, not after the 40 deliveries have timed out one by one. The hung
/// endpoint is not sent a request per account either: at most the processor's share of the
/// delivery pool, after which its circuit breaker stops sending to it for a while.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_processor_endpoint_delays_no_other_accounts_erasure() {
    const HUNG: usize = 40;
    const OTHERS: usize = 10;
    let pki = loopback_pki();
    let hung = Receiver::start(&pki, Reply::Hang).await;
    let harness = Harness::start(at("2026-11-03T00:00:00Z")).await;
    let client = harness.client.clone();
    create_cluster(&client, &default_policy()).await;
    apply_signing_secret(&client, "registrar", SECRET.as_bytes()).await;
    create_cluster(
        &client,
        &processor("registrar")
            .webhook(&hung.url())
            .ca_bundle(&pki.ca_pem),
    )
    .await;
    for i in 0..HUNG {
        let name = format!("hung-{i}");
        create_cluster(
            &client,
            &account(&name).terminated_at("2026-11-01T00:00:00Z"),
        )
        .await;
        let mut domain = e2e_support::domain(&format!("{name}-se"), &name);
        domain.spec.registrar = Some("registrar".into());
        create(&client, &domain).await;
    }
    for i in 0..OTHERS {
        let name = format!("other-{i}");
        create_cluster(
            &client,
            &account(&name).terminated_at("2026-11-02T00:00:00Z"),
        )
        .await;
        create(
            &client,
            &e2e_support::website(&format!("{name}-www"), &name),
        )
        .await;
    }
    for i in 0..OTHERS {
        let name = format!("other-{i}-www");
        eventually("the schedules", || {
            e2e_support::delete_at::<retention_operator::api::Website>(&client, &name)
        })
        .await;
    }
    // The 40 domains go; their requests are owed, and every delivery hangs.
    harness.clock.set(at("2026-12-01T00:00:01Z"));
    eventually("deliveries to the hung endpoint", || async {
        (!hung.received().is_empty()).then_some(())
    })
    .await;
    // A day later the other accounts fall due: erased at once, well within the time one hung
    // delivery takes (15 s).
    harness.clock.set(at("2026-12-02T00:00:01Z"));
    let started = tokio::time::Instant::now();
    for i in 0..OTHERS {
        let name = format!("other-{i}-www");
        loop {
            if gone::<retention_operator::api::Website>(&client, &name).await {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name} still there 10 s after it fell due, behind the hung deliveries"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The hung deliveries time out (after the notifier's 15 s) and open the processor's
    // breaker: the other requests wait without an attempt, and say why.
    let limit = Duration::from_secs(45);
    let waiting =
        e2e_support::eventually_within("requests put off by the open breaker", limit, || async {
            let mut waiting = 0;
            for i in 0..HUNG {
                let Some(status) = get_account(&client, &format!("hung-{i}"))
                    .await
                    .and_then(|a| a.status)
                else {
                    continue;
                };
                waiting += status
                    .processors
                    .iter()
                    .filter(|p| p.reason.as_deref() == Some("ProcessorUnreachable"))
                    .filter(|p| p.next_attempt_at > Some(at("2026-12-02T00:00:01Z")))
                    .count();
            }
            (waiting >= HUNG - retention_operator::controller::processors::PER_PROCESSOR)
                .then_some(waiting)
        })
        .await;
    assert!(waiting <= HUNG);
    let sent = hung.received().len();
    assert!(
        sent <= retention_operator::controller::processors::PER_PROCESSOR,
        "{sent} requests sent to an endpoint that never answers"
    );
    harness.stop().await;
}

/// Issue 10, defect 5 (GDPR Art. 19): objects bound after the first plan of a termination are
/// named in the erasure request too, and the status records all of them.
#[tokio::test(flavor = "multi_thread")]
async fn objects_bound_after_the_termination_are_named_in_its_erasure_request() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    seed(&client, Some((&receiver.url(), &pki.ca_pem))).await;
    let first = eventually("the request recorded", || async {
        requests(&client).await.into_iter().next()
    })
    .await;
    assert_eq!(first.resources.len(), 1);
    // Two more objects of the same processor, bound after the termination was planned.
    harness
        .move_clock_and_settle("2026-11-02T00:00:04Z", 1)
        .await;
    for name in ["crm-2", "crm-3"] {
        create(&client, &data_record(name, "acme").processor("pipedrive")).await;
    }
    let grown = eventually("the request naming all three", || async {
        requests(&client)
            .await
            .into_iter()
            .next()
            .filter(|r| r.resources.len() == 3)
    })
    .await;
    assert_eq!(
        grown.idempotency_key, first.idempotency_key,
        "the same request"
    );
    harness.move_clock_to(GRACE_END).await;
    wait_request(&client, NotificationState::Acknowledged).await;
    let deliveries = receiver.received();
    assert_eq!(deliveries.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&deliveries[0].body).unwrap();
    let named: Vec<&str> = body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["crm", "crm-2", "crm-3"]);
    assert_eq!(requests(&client).await.len(), 1, "one request");
    harness.stop().await;
}
