//! End to end: the metrics an SRE alerts on (docs/metrics.md), read from the real operator's
//! scrape while an account goes through its lifecycle, and that scrape checked by
//! `promtool check metrics` (Prometheus's own linter, from Debian's `prometheus` package).

mod e2e_support;
mod tools;

use std::io::Write;
use std::process::{Command, Stdio};

use retention_operator::api::{AccountPhase, Mailbox};
use test_apiserver::FaultRule;

use e2e_support::{
    AccountExt, Harness, HostedExt, account, at, create, create_cluster, data_record,
    default_policy, eventually, gone, mailbox, processor, skip_on_real_cluster, wait_phase,
    website,
};

const TERMINATED: &str = "2026-11-01T00:00:00Z";
/// The mailbox's date: 14 days of grace.
const MAILBOX_DUE: &str = "2026-11-15T00:00:00Z";
/// The website's and the CRM record's date: 30 days of grace.
const GRACE_END: &str = "2026-12-01T00:00:00Z";

/// The value of the sample `name{labels}` (exactly those labels) in a scrape, if present.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    let prefix = format!("{name_and_labels} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.parse().ok())
}

/// Polls the operator's scrape until `check` finds what it waits for.
async fn scrape_until(harness: &Harness, what: &str, check: impl Fn(&str) -> bool) -> String {
    eventually(what, || async {
        // What /metrics serves a client that does not ask for OpenMetrics, as promtool reads.
        let text = harness.metrics.encode_prometheus_text().unwrap();
        check(&text).then_some(text)
    })
    .await
}

/// `promtool check metrics` on a scrape: its verdict and everything it said.
fn promtool_check(scrape: &str) -> (bool, String) {
    let mut child = Command::new(tools::promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// A terminated account with a mailbox (14 days), a website and a CRM record (30 days), the
/// record held by a processor without a webhook, whose erasure request staff must send.
async fn seed(harness: &Harness) {
    let client = &harness.client;
    create_cluster(client, &default_policy()).await;
    create_cluster(client, &processor("pipedrive")).await;
    create_cluster(client, &account("acme").terminated_at(TERMINATED)).await;
    create(client, &mailbox("info", "acme")).await;
    create(client, &website("www", "acme")).await;
    create(client, &data_record("crm", "acme").processor("pipedrive")).await;
    wait_phase(client, "acme", AccountPhase::GracePeriod).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_during_a_lifecycle_counts_what_the_cluster_shows_and_passes_promtool() {
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    seed(&harness).await;

    let before = scrape_until(&harness, "three deletions pending", |text| {
        sample(text, "retention_operator_scheduled_deletions_pending") == Some(3.0)
    })
    .await;
    assert_eq!(sample(&before, "retention_operator_leader"), Some(1.0));
    assert_eq!(
        sample(
            &before,
            "retention_operator_accounts{phase=\"GracePeriod\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &before,
            "retention_operator_account_conditions{type=\"Ready\",status=\"True\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&before, "retention_operator_overdue_deletions"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &before,
            "retention_operator_policy_suspended{policy=\"default\"}"
        ),
        Some(0.0)
    );

    harness.move_clock_to(MAILBOX_DUE).await;
    scrape_until(
        &harness,
        "the mailbox deleted under its grace period",
        |text| {
            sample(
                text,
                "retention_operator_deletions_total{kind=\"Mailbox\",rule=\"grace-period\"}",
            ) == Some(1.0)
                && sample(text, "retention_operator_scheduled_deletions_pending") == Some(2.0)
        },
    )
    .await;

    harness.move_clock_to(GRACE_END).await;
    let manual = "retention_operator_erasure_requests{state=\"Manual\"}";
    let oldest = "retention_operator_erasure_request_oldest_timestamp_seconds{state=\"Manual\"}";
    let during = scrape_until(&harness, "a manual erasure request", |text| {
        sample(text, manual) == Some(1.0)
            && sample(text, "retention_operator_scheduled_deletions_pending") == Some(0.0)
    })
    .await;
    #[allow(clippy::cast_precision_loss)]
    let grace_end = at(GRACE_END).timestamp() as f64;
    assert_eq!(
        sample(&during, oldest),
        Some(grace_end),
        "owed since the record was erased:\n{during}"
    );
    assert_eq!(
        sample(
            &during,
            "retention_operator_account_conditions{type=\"ManualActionRequired\",status=\"True\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &during,
            "retention_operator_deletions_total{kind=\"Website\",rule=\"grace-period\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&during, "retention_operator_overdue_deletions"),
        Some(0.0)
    );

    let (clean, said) = promtool_check(&during);
    assert!(
        clean && said.trim().is_empty(),
        "promtool check metrics finds problems:\n{said}\nin the scrape:\n{during}"
    );
    harness.stop().await;
}

#[test]
fn promtool_refuses_a_scrape_that_breaks_the_conventions() {
    // The check above can fail: a counter without `_total` and a gauge named like one are
    // what promtool's linter reports.
    let broken = "# HELP retention_operator_deletions Objects deleted.\n\
                  # TYPE retention_operator_deletions counter\n\
                  retention_operator_deletions 3\n";
    let (clean, said) = promtool_check(broken);
    assert!(
        !clean || !said.trim().is_empty(),
        "promtool accepted a counter without _total"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_that_keeps_failing_is_overdue_and_its_api_errors_are_counted() {
    skip_on_real_cluster!("the API server's faults are injected");
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    seed(&harness).await;
    let server = harness.test_server().unwrap();
    server.update_faults(|faults| {
        faults
            .rules
            .push(FaultRule::always(500).verb("delete").resource("mailboxes"));
    });
    harness.move_clock_to(MAILBOX_DUE).await;
    let text = scrape_until(&harness, "an overdue deletion", |text| {
        sample(text, "retention_operator_overdue_deletions") == Some(1.0)
            && sample(
                text,
                "retention_operator_account_conditions{type=\"DeletionFailed\",status=\"True\"}",
            ) == Some(1.0)
    })
    .await;
    let failed = sample(
        &text,
        "retention_operator_kube_api_errors_total{verb=\"delete\",code=\"500\"}",
    )
    .unwrap_or(0.0);
    assert!(failed >= 1.0, "the refused DELETE is counted:\n{text}");
    assert!(
        !gone::<Mailbox>(&harness.client, "info").await,
        "the mailbox is still there"
    );

    // Once deleting works again, the mailbox goes and nothing is overdue.
    server.update_faults(|faults| faults.rules.clear());
    scrape_until(&harness, "nothing overdue", |text| {
        sample(text, "retention_operator_overdue_deletions") == Some(0.0)
            && sample(
                text,
                "retention_operator_deletions_total{kind=\"Mailbox\",rule=\"grace-period\"}",
            ) == Some(1.0)
    })
    .await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_dry_run_what_falls_due_stays_overdue() {
    let harness = Harness::start_dry_run(at("2026-11-02T00:00:00Z")).await;
    seed(&harness).await;
    harness.move_clock_to(GRACE_END).await;
    scrape_until(&harness, "three overdue deletions", |text| {
        sample(text, "retention_operator_overdue_deletions") == Some(3.0)
    })
    .await;
    assert!(!gone::<Mailbox>(&harness.client, "info").await);
    harness.stop().await;
}
