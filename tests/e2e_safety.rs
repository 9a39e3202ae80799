//! The safety cases hostile testing singled out, each driven through the API with the faults
//! that endanger it: a change to the Account during an erasure pass, a re-termination the
//! operator never saw, crashes in the middle of an erasure, a deletion that cannot happen, and
//! dates past year 9999.

mod e2e_support;

use std::{collections::BTreeMap, time::Duration};

use kube::{Api, api::PostParams};
use retention_operator::api::{
    Account, AccountPhase, Backup, ConditionStatus, DataRecord, Database, Domain, Mailbox, Website,
};
use serde_json::json;
use test_apiserver::FaultRule;

use e2e_support::{
    AccountExt, Harness, Mode, OPERATOR_AGENT, TEST_AGENT, account, at, consent_record,
    crds_edited, create, create_cluster, data_record, database, default_policy, delete_at, domain,
    eventually, expires_at, get_account, gone, mailbox, patch_account, wait_phase, website,
    website_backup,
};

const WEBSITES: usize = 60;

/// A terminated account `big` with [`WEBSITES`] Websites, every schedule stamped, due at
/// 2026-12-01T00:00:00Z.
async fn big_account(harness: &Harness) {
    let client = &harness.client;
    create_cluster(client, &default_policy()).await;
    create_cluster(
        client,
        &account("big").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    for i in 0..WEBSITES {
        create(client, &website(&format!("www-{i}"), "big")).await;
    }
    for i in 0..WEBSITES {
        let name = format!("www-{i}");
        eventually("the schedules", || delete_at::<Website>(client, &name)).await;
    }
}

/// How many Websites were deleted around a change to the Account during an erasure pass.
struct AroundTheChange {
    /// Before the change took effect.
    before: usize,
    /// After it, in the round of DELETEs already on the way: sent together on a read of the
    /// Account from before the change, which invariant 3 allows (at most one round trip).
    in_flight: usize,
    /// After the operator's first read of the Account that follows the change: none may be.
    after_a_fresh_read: usize,
}

/// Starts the erasure of `big` with 150 ms of latency on every request, makes `change` to the
/// Account once a few Websites are gone, and counts the deletions around the change.
async fn deletions_after_a_change_during_the_pass(
    change: serde_json::Value,
) -> Option<AroundTheChange> {
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let mut log = e2e_support::request_log_or_skip!(harness)?;
    big_account(&harness).await;
    harness.slow_down(Duration::from_millis(150));
    log.clear();
    harness.clock.set(at("2026-12-01T00:00:01Z"));
    let is_delete = |r: &test_apiserver::RequestRecord| {
        r.verb == "delete" && r.resource == "websites" && r.code < 300
    };
    log.eventually("the erasure under way", |requests| {
        (requests.iter().filter(|r| is_delete(r)).count() >= 3).then_some(())
    })
    .await;
    patch_account(&harness.client, "big", change).await;
    // The latency made the window before the change; what follows it (every schedule taken
    // off again, one request at a time) need not crawl towards the settle deadline.
    harness.slow_down(Duration::ZERO);
    harness.settle().await;
    // The request log is in the order the answers were given: what follows the Account patch
    // was done after the change was in force.
    let requests = log.requests().await;
    let patched = requests
        .iter()
        .position(|r| r.user_agent == TEST_AGENT && r.verb == "patch" && r.resource == "accounts")
        .expect("the patch is in the log");
    // A read of the Account by the operator: a GET, or a status write's answer.
    let reads_account = |r: &test_apiserver::RequestRecord| {
        r.user_agent == OPERATOR_AGENT
            && r.resource == "accounts"
            && (r.verb == "get" || (r.verb == "patch" && r.subresource == "status"))
    };
    let fresh_read = requests[patched..]
        .iter()
        .position(reads_account)
        .map_or(requests.len(), |i| patched + i);
    let count =
        |range: &[test_apiserver::RequestRecord]| range.iter().filter(|r| is_delete(r)).count();
    let around = AroundTheChange {
        before: count(&requests[..patched]),
        in_flight: count(&requests[patched..fresh_read]),
        after_a_fresh_read: count(&requests[fresh_read..]),
    };
    drop(log);
    harness.stop().await;
    Some(around)
}

/// The widest round of DELETEs this test's erasure sends together on one read: the adaptive
/// window starts at 16 and grows by about one per round while answers keep coming. A pass that
/// went on deleting without reading the Account again would delete the 40 and more left.
const WIDEST_ROUND: usize = 24;

fn assert_stopped_at_the_next_read(around: &AroundTheChange, change: &str) {
    assert!(
        around.before >= 3,
        "{} deleted before the {change}",
        around.before
    );
    assert_eq!(
        around.after_a_fresh_read, 0,
        "Websites deleted after the operator read the Account with the {change}"
    );
    assert!(
        around.in_flight <= WIDEST_ROUND,
        "{} Websites deleted after the {change} on a read from before it",
        around.in_flight
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reactivation_during_an_erasure_pass_stops_it_at_the_next_delete() {
    let Some(around) = deletions_after_a_change_during_the_pass(
        json!({"spec": {"state": "Active", "terminatedAt": null}}),
    )
    .await
    else {
        return;
    };
    assert_stopped_at_the_next_read(&around, "reactivation");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legal_hold_placed_during_an_erasure_pass_stops_it_at_the_next_delete() {
    let Some(around) = deletions_after_a_change_during_the_pass(
        json!({"spec": {"legalHold": {"reason": "Police request 2026-123"}}}),
    )
    .await
    else {
        return;
    };
    assert_stopped_at_the_next_read(&around, "legal hold");
}

/// Every termination gets its full grace period from that termination: the account system
/// must state each termination's time, so a time recorded for an earlier termination (that
/// was reverted while the operator was not running) can never date a later one.
#[tokio::test(flavor = "multi_thread")]
async fn a_re_termination_the_operator_never_saw_gets_its_full_grace_period() {
    let mut harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    create_cluster(&client, &default_policy()).await;
    let accounts: Api<Account> = Api::all(client.clone());

    // A termination without its time is refused by the API server, whichever way it comes.
    let mut untimed = account("acme").terminated_at("2026-11-01T00:00:00Z");
    untimed.spec.terminated_at = None;
    let refused = accounts
        .create(&PostParams::default(), &untimed)
        .await
        .expect_err("Terminated without terminatedAt is refused");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 422 && s.message.contains("terminatedAt")),
        "{refused}"
    );
    create_cluster(
        &client,
        &account("acme").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    create(&client, &website("www", "acme")).await;
    let first = eventually("the first schedule", || {
        delete_at::<Website>(&client, "www")
    })
    .await;
    assert_eq!(first, "2026-12-01T00:00:00Z");
    // Reactivated while the operator is down, without clearing the time: refused too.
    harness.stop_operator().await;
    let kept_time = accounts
        .patch(
            "acme",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"state": "Active"}})),
        )
        .await
        .expect_err("Active with a terminatedAt is refused");
    assert!(
        matches!(&kept_time, kube::Error::Api(s) if s.code == 422),
        "{kept_time}"
    );
    patch_account(
        &client,
        "acme",
        json!({"spec": {"state": "Active", "terminatedAt": null}}),
    )
    .await;
    // Terminated again well after the first grace period ended; the operator saw neither.
    harness.clock.set(at("2027-01-10T00:00:00Z"));
    patch_account(
        &client,
        "acme",
        json!({"spec": {"state": "Terminated", "terminatedAt": "2027-01-10T00:00:00Z"}}),
    )
    .await;
    harness.restart_operator().await;
    harness
        .move_clock_and_settle("2027-01-10T00:00:01Z", 1)
        .await;
    assert!(!gone::<Website>(&client, "www").await, "deleted at once");
    let second = eventually("the new schedule", || async {
        delete_at::<Website>(&client, "www")
            .await
            .filter(|at| at != "2026-12-01T00:00:00Z")
    })
    .await;
    assert_eq!(second, "2027-02-09T00:00:00Z");
    let status = get_account(&client, "acme").await.unwrap().status.unwrap();
    assert_eq!(status.terminated_at, Some(at("2027-01-10T00:00:00Z")));
    harness
        .move_clock_and_settle("2027-02-08T23:59:59Z", 1)
        .await;
    assert!(!gone::<Website>(&client, "www").await, "deleted early");
    harness.clock.set(at("2027-02-09T00:00:00Z"));
    eventually("the website deleted at its date", || async {
        gone::<Website>(&client, "www").await.then_some(())
    })
    .await;
    harness.stop().await;
}

/// An Account stored as Terminated without a time (before the schema required one) has no
/// termination time the operator may trust: it is reported and nothing of it is erased.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_stored_terminated_without_a_time_is_reported_and_nothing_is_erased() {
    let crds = crds_edited(
        "no-terminated-at-rule",
        "accounts.hosting.ecuni.se.yaml",
        |text| {
            let start = text.find("            x-kubernetes-validations:").unwrap();
            let end = start + text[start..].find("          status:").unwrap();
            format!("{}{}", &text[..start], &text[end..])
        },
    );
    let harness = Harness::start_with_crds(at("2026-11-02T00:00:00Z"), &crds, false).await;
    let client = harness.client.clone();
    create_cluster(&client, &default_policy()).await;
    let mut untimed = account("legacy").terminated_at("2026-11-01T00:00:00Z");
    untimed.spec.terminated_at = None;
    e2e_support::create_once_admitted(&Api::all(client.clone()), &untimed).await;
    create(&client, &website("legacy-www", "legacy")).await;
    let ready = eventually("the TerminationTimeMissing condition", || async {
        let status = get_account(&client, "legacy").await?.status?;
        let ready = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "TerminationTimeMissing").then_some(ready)
    })
    .await;
    assert!(ready.message.contains("terminatedAt"), "{}", ready.message);
    harness
        .move_clock_and_settle("2030-01-01T00:00:00Z", 1)
        .await;
    assert!(!gone::<Website>(&client, "legacy-www").await);
    assert_eq!(delete_at::<Website>(&client, "legacy-www").await, None);
    harness.stop().await;
}

/// The erasure proof is built from durable facts: killed ten times in the middle of erasing 50
/// objects of five kinds, the operator still deletes each exactly once and ends with the exact
/// count per kind.
#[tokio::test(flavor = "multi_thread")]
async fn the_proof_counts_every_deletion_exactly_once_across_ten_kills() {
    const EACH: usize = 10;
    let mut harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    create_cluster(&client, &default_policy()).await;
    create_cluster(
        &client,
        &account("acme").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    for i in 0..EACH {
        create(&client, &website(&format!("www-{i}"), "acme")).await;
        create(&client, &database(&format!("db-{i}"), "acme")).await;
        create(&client, &mailbox(&format!("mbx-{i}"), "acme")).await;
        create(&client, &domain(&format!("dom-{i}"), "acme")).await;
        create(&client, &data_record(&format!("crm-{i}"), "acme")).await;
    }
    eventually("every schedule stamped", || async {
        delete_at::<DataRecord>(&client, &format!("crm-{}", EACH - 1)).await
    })
    .await;
    harness.settle().await;
    harness.slow_down(Duration::from_millis(200));
    let Some(mut log) = e2e_support::request_log_or_skip!(harness) else {
        return;
    };
    log.clear();
    harness.clock.set(at("2026-12-01T00:00:01Z"));
    let deleted = |requests: &[test_apiserver::RequestRecord]| {
        requests
            .iter()
            .filter(|r| r.user_agent == OPERATOR_AGENT && r.verb == "delete" && r.code < 300)
            .count()
    };
    for kill in 1..=10 {
        // A few more deletions, then the operator dies wherever it is.
        log.eventually("more deletions", |requests| {
            (deleted(requests) >= (kill * 4).min(5 * EACH)).then_some(())
        })
        .await;
        drop(log);
        harness.kill_and_restart_operator().await;
        log = harness.request_log().unwrap();
    }
    harness.slow_down(Duration::ZERO);
    wait_phase(&client, "acme", AccountPhase::Erased).await;
    harness.settle().await;

    let requests = log.operator_requests().await;
    let mut per_object: BTreeMap<String, usize> = BTreeMap::new();
    for r in &requests {
        if r.verb == "delete" && r.code < 300 {
            *per_object
                .entry(format!("{}/{}", r.resource, r.name))
                .or_default() += 1;
        }
    }
    // A DELETE cut short by a kill may have taken effect without a 2xx: kube-apiserver logs
    // it 504 (the request's context ended) while etcd still removes the object. Such an
    // object, gone with no 2xx DELETE, was deleted by one of those; it counts once.
    for r in &requests {
        if r.verb == "delete" && r.code == 504 {
            per_object
                .entry(format!("{}/{}", r.resource, r.name))
                .or_insert(1);
        }
    }
    // Erased: every object is gone from the API server, not only from the operator's caches.
    for i in 0..EACH {
        let name = |kind: &str| format!("{kind}-{i}");
        assert!(
            gone::<Website>(&client, &name("www")).await,
            "www-{i} stands"
        );
        assert!(
            gone::<Database>(&client, &name("db")).await,
            "db-{i} stands"
        );
        assert!(
            gone::<Mailbox>(&client, &name("mbx")).await,
            "mbx-{i} stands"
        );
        assert!(
            gone::<Domain>(&client, &name("dom")).await,
            "dom-{i} stands"
        );
        assert!(
            gone::<DataRecord>(&client, &name("crm")).await,
            "crm-{i} stands"
        );
    }
    // What the operator asked of each object it never deleted, to tell why.
    let unanswered: Vec<String> = requests
        .iter()
        .filter(|r| r.namespace == e2e_support::NAMESPACE && !r.name.is_empty())
        .filter(|r| !per_object.contains_key(&format!("{}/{}", r.resource, r.name)))
        .filter(|r| r.resource != "events")
        .map(|r| format!("{} {}/{} {}", r.verb, r.resource, r.name, r.code))
        .collect();
    assert_eq!(
        per_object.len(),
        5 * EACH,
        "{per_object:?}\nrequests about the others: {unanswered:?}"
    );
    assert!(per_object.values().all(|&n| n == 1), "{per_object:?}");
    let proof = get_account(&client, "acme")
        .await
        .unwrap()
        .status
        .unwrap()
        .erasure
        .unwrap();
    let expected: BTreeMap<String, u32> =
        ["DataRecord", "Database", "Domain", "Mailbox", "Website"]
            .into_iter()
            .map(|kind| (kind.to_owned(), EACH as u32))
            .collect();
    assert_eq!(proof.deleted, expected);
    assert!(proof.deleting.is_empty(), "{:?}", proof.deleting);
    assert!(proof.completed_at.is_some());
    harness.stop().await;
}

/// Withdrawn consent whose record cannot be deleted (a dry run, or a DELETE failing) must not
/// make a hot loop: its due time is stable, an unchanged plan writes nothing, and failing
/// deletions are retried later and later. On the system clock: the loop came from a due time
/// that moved with the clock between passes.
/// `faults` apply on the test API server (the callers that need them skip on a real cluster).
async fn consent_record_that_cannot_go(mode: Mode, faults: test_apiserver::Faults) -> Harness {
    let harness = Harness::start_mode(mode).await;
    let client = harness.client.clone();
    if let Some(server) = harness.test_server() {
        server.set_faults(faults);
    }
    create_cluster(&client, &default_policy()).await;
    let mut acme = e2e_support::account("acme");
    acme.spec.consents.insert("marketing".into(), false);
    create_cluster(&client, &acme).await;
    let newsletter = consent_record("newsletter", "acme", "marketing");
    create(&client, &newsletter).await;
    harness
}

/// The operator's requests during three seconds of wall time.
async fn requests_over_three_seconds(
    log: &mut e2e_support::request_log::RequestLog<'_>,
) -> Vec<test_apiserver::RequestRecord> {
    log.clear();
    let quiet = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < quiet {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    log.operator_requests().await
}

#[tokio::test(flavor = "multi_thread")]
async fn withdrawn_consent_that_cannot_be_erased_in_a_dry_run_writes_nothing_more() {
    let mode = Mode {
        dry_run: true,
        system_clock: true,
        ..Mode::default()
    };
    let harness = consent_record_that_cannot_go(mode, Default::default()).await;
    let Some(mut log) = e2e_support::request_log_or_skip!(harness) else {
        return;
    };
    let client = harness.client.clone();
    let first = eventually("the due time stamped", || {
        delete_at::<DataRecord>(&client, "newsletter")
    })
    .await;
    wait_phase(&client, "acme", AccountPhase::Active).await;
    harness.settle().await;
    let passes = harness.reconciles_started();
    let requests = requests_over_three_seconds(&mut log).await;
    let writes: Vec<String> = requests
        .iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}/{}", r.verb, r.resource, r.name))
        .collect();
    assert!(writes.is_empty(), "{} writes: {writes:?}", writes.len());
    assert_eq!(
        harness.reconciles_started(),
        passes,
        "passes while nothing changed"
    );
    assert_eq!(
        delete_at::<DataRecord>(&client, "newsletter").await,
        Some(first)
    );
    assert!(!gone::<DataRecord>(&client, "newsletter").await, "dry run");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn withdrawn_consent_whose_delete_keeps_failing_is_retried_later_and_later() {
    e2e_support::skip_on_real_cluster!("needs fault injection and the request log");
    let mode = Mode {
        dry_run: false,
        system_clock: true,
        ..Mode::default()
    };
    let failing = test_apiserver::Faults {
        rules: vec![
            FaultRule::always(500)
                .verb("delete")
                .resource("datarecords"),
        ],
        ..Default::default()
    };
    let harness = consent_record_that_cannot_go(mode, failing).await;
    let client = harness.client.clone();
    let server = harness.test_server().unwrap();
    eventually("a first failed delete", || async {
        (e2e_support::delete_requests(server, "datarecords", "newsletter") > 0).then_some(())
    })
    .await;
    eventually("the failure reported", || async {
        let status = get_account(&client, "acme").await?.status?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "DeletionFailed" && c.status == ConditionStatus::True)
            .then_some(())
    })
    .await;
    harness.settle().await;
    // The first retry waits 10 s; every later one longer.
    let mut log = harness.request_log().unwrap();
    let requests = requests_over_three_seconds(&mut log).await;
    let attempts = requests
        .iter()
        .filter(|r| r.verb == "delete" && r.resource == "datarecords")
        .count();
    let writes: Vec<String> = requests
        .iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}/{}", r.verb, r.resource, r.name))
        .collect();
    assert_eq!(attempts, 0, "retried within 3 s of a failure: {writes:?}");
    assert!(writes.is_empty(), "{writes:?}");
    server.clear_faults();
    harness.stop().await;
}

/// A date that cannot be written (past year 9999) never blocks anything else: the backup of
/// 9999 is kept with no expiry, while an expired backup and withdrawn-consent data still go and
/// the status is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_date_past_9999_blocks_no_other_deletion_and_no_status() {
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    create_cluster(&client, &default_policy()).await;
    let mut acme = e2e_support::account("acme");
    acme.spec.consents.insert("marketing".into(), false);
    create_cluster(&client, &acme).await;
    create(&client, &website("www", "acme")).await;
    create(
        &client,
        &website_backup("far", "acme", "www", at("9999-12-31T23:59:59Z")),
    )
    .await;
    create(
        &client,
        &website_backup("old", "acme", "www", at("2020-01-01T00:00:00Z")),
    )
    .await;
    create(&client, &consent_record("newsletter", "acme", "marketing")).await;
    eventually("the expired backup and the consent data gone", || async {
        (gone::<Backup>(&client, "old").await && gone::<DataRecord>(&client, "newsletter").await)
            .then_some(())
    })
    .await;
    // The status shows the account as it is now: one backup and one website left, Ready.
    let status = eventually("the status after the deletions", || async {
        let status = get_account(&client, "acme").await?.status?;
        let backups = status.resources.get("Backup")?;
        (backups.bound == 1 && !status.resources.contains_key("DataRecord")).then_some(status)
    })
    .await;
    assert_eq!(status.phase, Some(AccountPhase::Active));
    assert_eq!(
        status.next_deletion_at, None,
        "nothing scheduled before year 10000"
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, retention_operator::api::ConditionStatus::True);
    harness.settle().await;
    assert!(!gone::<Backup>(&client, "far").await);
    assert_eq!(expires_at(&client, "far").await, None);
    assert!(!gone::<Website>(&client, "www").await);
    harness.stop().await;
}

/// Terminated account `acme` with Website `www` and Backup `old` (of 2020: expired under the
/// live rules and under the termination alike), whose deletion the operator has recorded as
/// under way and cannot carry out: `failing_deletes` turns its DELETE away.
async fn a_recorded_backup_deletion_that_fails(harness: &Harness, failing_deletes: FaultRule) {
    let client = &harness.client;
    let server = harness.test_server().unwrap();
    server.update_faults(|f| f.rules = vec![failing_deletes]);
    create_cluster(client, &default_policy()).await;
    create_cluster(
        client,
        &account("acme").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    create(client, &website("www", "acme")).await;
    create(
        client,
        &website_backup("old", "acme", "www", at("2020-01-01T00:00:00Z")),
    )
    .await;
    eventually("the backup's deletion recorded", || async {
        let status = get_account(client, "acme").await?.status?;
        let recorded = status.erasure?.deleting;
        recorded.iter().any(|d| d.name == "old").then_some(())
    })
    .await;
}

/// The erasure proof of `acme` once no deletion is on its record any more (status writes may
/// have been refused for a while: the retry after them writes the record settled).
async fn settled_proof(client: &kube::Client) -> retention_operator::api::ErasureProof {
    eventually("the record of deletions under way settled", || async {
        let proof = get_account(client, "acme")
            .await?
            .status?
            .erasure
            .unwrap_or_default();
        proof.deleting.is_empty().then_some(proof)
    })
    .await
}

/// A deletion the erasure recorded (`status.erasure.deleting`) and could not send is called
/// off when the account is reactivated, and the call-off is written before the object goes for
/// a live reason (here an expired backup): otherwise a crash or a failed status write after
/// that DELETE leaves the record naming a deleted object, and the next pass counts it in the
/// erasure proof, which would then claim an erasure that did not happen. The chaos campaign
/// found this (a proof counting two Backups its server saw deleted on a live account).
#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_called_off_by_a_reactivation_is_not_counted_when_the_object_goes_later() {
    e2e_support::skip_on_real_cluster!("needs fault injection");
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    let server = harness.test_server().unwrap();
    let Some(mut log) = e2e_support::request_log_or_skip!(harness) else {
        return;
    };
    let failing_deletes = FaultRule::always(500).verb("delete").resource("backups");
    a_recorded_backup_deletion_that_fails(&harness, failing_deletes.clone()).await;

    // Status writes fail from now on; the account is reactivated while the DELETE still fails.
    let failing_status_writes = FaultRule::always(500)
        .verb("patch")
        .resource("accounts")
        .subresource("status");
    server
        .update_faults(|f| f.rules = vec![failing_deletes.clone(), failing_status_writes.clone()]);
    log.clear();
    patch_account(
        &client,
        "acme",
        json!({"spec": {"state": "Active", "terminatedAt": null}}),
    )
    .await;
    let refused_status_write = |requests: &[test_apiserver::RequestRecord]| {
        requests.iter().any(|r| {
            r.user_agent == OPERATOR_AGENT
                && r.verb == "patch"
                && r.resource == "accounts"
                && r.subresource == "status"
                && r.code == 500
        })
    };
    log.eventually("a pass on the live account", |requests| {
        refused_status_write(requests).then_some(())
    })
    .await;
    // The backup can go now; the status still cannot be written. Whatever the next pass does
    // is done by the time its status write is refused.
    server.update_faults(|f| f.rules = vec![failing_status_writes.clone()]);
    log.clear();
    log.eventually("another pass on the live account", |requests| {
        refused_status_write(requests).then_some(())
    })
    .await;
    server.clear_faults();
    eventually("the expired backup gone", || async {
        gone::<Backup>(&client, "old").await.then_some(())
    })
    .await;
    let proof = settled_proof(&client).await;
    assert_eq!(
        proof.deleted.get("Backup"),
        None,
        "the backup went on the live account: {:?}",
        proof.deleted
    );
    assert!(!gone::<Website>(&client, "www").await);
    harness.stop().await;
}

/// A recorded deletion is called off only on the API server's word that its object still
/// stands. A replica whose cache still shows an object that went under the termination (a
/// standby taking over while its watch catches up) would otherwise drop it from the record on a
/// reactivation, and the erasure proof would leave out a deletion the erasure made.
#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_deletion_gone_behind_a_stale_cache_still_counts_after_a_reactivation() {
    e2e_support::skip_on_real_cluster!("needs fault injection");
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    let server = harness.test_server().unwrap();
    let operator_deletes = FaultRule::always(500)
        .verb("delete")
        .resource("backups")
        .from_client(OPERATOR_AGENT);
    a_recorded_backup_deletion_that_fails(&harness, operator_deletes.clone()).await;

    // The operator's cache of Backups stops learning: its watch ends and cannot start again.
    let Some(mut log) = e2e_support::request_log_or_skip!(harness) else {
        return;
    };
    e2e_support::freeze_operator_cache(
        server,
        &mut log,
        "backups",
        &["watch"],
        vec![operator_deletes.clone()],
    )
    .await;
    // The backup goes while the account is terminated, unseen by that cache; then the
    // account is reactivated.
    Api::<Backup>::namespaced(client.clone(), e2e_support::NAMESPACE)
        .delete("old", &Default::default())
        .await
        .unwrap();
    patch_account(
        &client,
        "acme",
        json!({"spec": {"state": "Active", "terminatedAt": null}}),
    )
    .await;
    let proof = settled_proof(&client).await;
    assert_eq!(
        proof.deleted.get("Backup"),
        Some(&1),
        "the backup went under the termination: {:?}",
        proof.deleted
    );
    server.clear_faults();
    harness.settle().await;
    let proof = get_account(&client, "acme")
        .await
        .unwrap()
        .status
        .unwrap()
        .erasure
        .unwrap_or_default();
    assert_eq!(proof.deleted.get("Backup"), Some(&1), "{proof:?}");
    assert!(!gone::<Website>(&client, "www").await);
    harness.stop().await;
}

/// The RetentionPolicy a DELETE rests on is read from the API server right before it, like the
/// Account: a cache that has not seen a longer grace period yet must not make the DELETE early.
#[tokio::test(flavor = "multi_thread")]
async fn a_longer_grace_period_the_cache_has_not_seen_stops_the_delete() {
    e2e_support::skip_on_real_cluster!("needs fault injection");
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    let server = harness.test_server().unwrap();
    let Some(mut log) = e2e_support::request_log_or_skip!(harness) else {
        return;
    };
    create_cluster(&client, &default_policy()).await;
    create_cluster(
        &client,
        &account("acme").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    create(&client, &website("www", "acme")).await;
    eventually("the schedule", || delete_at::<Website>(&client, "www")).await;
    harness.settle().await;

    // The operator's cache of RetentionPolicies stops learning; the grace period grows from 30
    // to 60 days.
    e2e_support::freeze_operator_cache(
        server,
        &mut log,
        "retentionpolicies",
        &["watch", "list"],
        Vec::new(),
    )
    .await;
    Api::<retention_operator::api::RetentionPolicy>::all(client.clone())
        .patch(
            retention_operator::api::DEFAULT_POLICY,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"gracePeriod": "60d"}})),
        )
        .await
        .unwrap();
    log.clear();
    // Due by the cached policy, not by the one in force.
    harness.clock.set(at("2026-12-01T00:00:01Z"));
    log.eventually("the decision: the policy read, or a DELETE", |requests| {
        requests
            .iter()
            .any(|r| {
                r.user_agent == OPERATOR_AGENT
                    && ((r.verb == "get" && r.resource == "retentionpolicies")
                        || r.verb == "delete")
            })
            .then_some(())
    })
    .await;
    let deletes = log.operator_deletes().await;
    assert!(
        deletes.is_empty(),
        "deleted on the cached policy: {deletes:?}"
    );
    server.clear_faults();
    eventually("the schedule of the policy in force", || async {
        (delete_at::<Website>(&client, "www").await.as_deref() == Some("2026-12-31T00:00:00Z"))
            .then_some(())
    })
    .await;
    assert!(!gone::<Website>(&client, "www").await);
    harness.stop().await;
}

/// A deleted Account keeps its finalizer while the API server holds an object bound to it that
/// the operator's cache has not seen (created just before the Account was deleted, while the
/// watch was down): released, the object would stay unbound and never be erased.
#[tokio::test(flavor = "multi_thread")]
async fn an_object_the_cache_has_not_seen_keeps_the_finalizer_until_it_is_erased() {
    e2e_support::skip_on_real_cluster!("needs fault injection");
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    let server = harness.test_server().unwrap();
    create_cluster(&client, &default_policy()).await;
    create_cluster(&client, &account("acme")).await;
    create(&client, &website("www", "acme")).await;
    eventually("the finalizer on the Account", || async {
        get_account(&client, "acme")
            .await?
            .metadata
            .finalizers?
            .contains(&retention_operator::controller::account::FINALIZER.to_owned())
            .then_some(())
    })
    .await;
    harness.settle().await;
    // The operator's Backup watch goes down (its list still works): a new backup is not seen.
    let Some(mut log) = e2e_support::request_log_or_skip!(harness) else {
        return;
    };
    e2e_support::freeze_operator_cache(server, &mut log, "backups", &["watch"], Vec::new()).await;
    create(
        &client,
        &website_backup("late", "acme", "www", at("2026-11-01T00:00:00Z")),
    )
    .await;
    Api::<Account>::all(client.clone())
        .delete("acme", &Default::default())
        .await
        .unwrap();
    // Past every grace period and backup schedule.
    harness.clock.set(at("2028-01-01T00:00:00Z"));
    eventually("the Website erased", || async {
        gone::<Website>(&client, "www").await.then_some(())
    })
    .await;
    harness.settle().await;
    assert!(
        get_account(&client, "acme").await.is_some(),
        "the finalizer went while Backup late was still bound"
    );
    server.clear_faults();
    eventually("the backup erased and the Account gone", || async {
        (gone::<Backup>(&client, "late").await && get_account(&client, "acme").await.is_none())
            .then_some(())
    })
    .await;
    harness.stop().await;
}
