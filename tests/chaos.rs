//! The randomized crash-and-fault campaign (see `tests/chaos/`): random account lifecycles
//! against two replicas of the real operator, with operator kills, API faults, watch cuts and
//! clock jumps, judged by an oracle over the API server's own record of requests.
//!
//! `cargo test --test chaos` runs a short campaign with a fresh seed (printed) and the kept
//! regression seeds. The long mode runs as long as asked:
//! `CHAOS_LIFECYCLES=1000 cargo test --release --test chaos -- --nocapture a_campaign`.
//! With `RETENTION_E2E_KUBECONFIG` it runs against that (throwaway) cluster, whose audit log
//! must hold bodies (`RETENTION_CONTROL_PLANE_AUDIT=bodies .ci/control-plane start`).
//! `CHAOS_LOG=<file>` writes the replicas' logs to that file.

mod e2e_support;
mod receiver;

#[path = "chaos/campaign.rs"]
mod campaign;
#[path = "chaos/oracle.rs"]
mod oracle;
#[path = "chaos/world.rs"]
mod world;

use std::{
    collections::BTreeSet,
    io::Write,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use campaign::{Campaign, run};

/// The short campaign CI runs: a few minutes on two cores.
fn short(seed: u64) -> Campaign {
    Campaign {
        seed,
        lifecycles: 60,
        accounts: 20,
        steps: 60,
        kill_rate: 0.2,
        fault_rate: 0.1,
        restart_rate: 0.03,
        shards: 1,
    }
}

fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// The replicas' log lines (debug level, or `RUST_LOG`) of every campaign of this process,
/// each line naming its campaign's seed; with `CHAOS_LOG=<file>` they go to that file too.
/// A violation's report shows the lines about its account: what the operator decided.
fn replica_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let file = std::env::var_os("CHAOS_LOG").map(|path| {
            Arc::new(Mutex::new(
                std::fs::File::create(&path).expect("CHAOS_LOG names a file that can be created"),
            ))
        });
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(
                "retention_operator=debug,kube_runtime=info,chaos=info",
            )
        });
        let sink = LogSink {
            memory: logs.clone(),
            file,
        };
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
    .clone()
}

#[derive(Clone)]
struct LogSink {
    memory: Arc<Mutex<Vec<u8>>>,
    file: Option<Arc<Mutex<std::fs::File>>>,
}

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // A campaign that failed (its panic may have held a lock) must not take the next
        // campaign's replicas down with it: every log write would panic on the poisoned lock.
        self.memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        if let Some(file) = &self.file {
            file.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_all(bytes)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The last log lines of campaign `seed` that name an account of the violations.
fn log_lines_about(logs: &[u8], seed: u64, violations: &[oracle::Violation]) -> String {
    let accounts: BTreeSet<String> = violations
        .iter()
        .flat_map(|v| {
            v.detail
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .filter(|w| campaign::is_account_name(w))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let campaign = format!("campaign={seed}");
    let text = String::from_utf8_lossy(logs);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(&campaign))
        .filter(|line| {
            accounts.iter().any(|a| {
                line.contains(&format!("={a} "))
                    || line.contains(&format!("/{a} "))
                    || line.ends_with(&format!("={a}"))
            })
        })
        .collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

async fn campaign(campaign: Campaign) {
    let logs = replica_logs();
    eprintln!("chaos campaign {campaign:?}");
    let report = run(&campaign).await;
    eprintln!("{}", report.summary());
    let about = log_lines_about(
        &logs.lock().unwrap_or_else(PoisonError::into_inner),
        report.seed,
        &report.violations,
    );
    assert!(
        report.violations.is_empty(),
        "{} violations; rerun with CHAOS_SEED={}\n{}\nall violations:\n{}\nthe replicas' last \
         log lines about these accounts:\n{}",
        report.violations.len(),
        report.seed,
        report.history,
        report
            .violations
            .iter()
            .map(|v| format!("  {:?} at {:?}: {}", v.kind, v.position, v.detail))
            .collect::<Vec<_>>()
            .join("\n"),
        about
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_of_random_lifecycles_and_faults_breaks_no_invariant() {
    campaign(Campaign::from_env(short(fresh_seed()))).await;
}

/// The short campaign with the accounts divided over three shards between the two replicas
/// (`--shards 3`): each replica holds its share of the shards' Leases, and a kill hands the
/// dead replica's shards to the other. Besides every invariant, the oracle checks that each
/// write about an account came from the holder of that account's shard's Lease: no object is
/// acted on by two shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sharded_campaign_acts_on_each_account_from_its_own_shard_only() {
    campaign(Campaign::from_env(Campaign {
        shards: 3,
        ..short(fresh_seed())
    }))
    .await;
}

// Regression seeds: each drives a scenario in which an invariant is easy to break. They run the
// short campaign with that seed (a seed fixes the scenario, not the interleaving: see
// tests/chaos/).

/// Seed 12 drives a DELETE answered 503: kube's built-in client retry would re-send it seconds
/// after the Account was read for it (invariant 3), so the operator's client runs without that
/// retry (`controller::client_config`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_12_a_delete_answered_503_is_not_retried_on_an_old_read_of_the_account() {
    campaign(short(12)).await;
}

/// Seed 1796223177853023683 (a CI run's fresh seed) drives backups whose recorded deletion a
/// reactivation calls off, deleted on the live account's schedule by a pass whose status write
/// then failed: the call-off must be stored before that DELETE, or the next pass counts them in
/// the erasure proof. The seed fixes the scenario, not the interleaving that broke it (CI's
/// slower machine found it; this one did not, in 16 runs of the old code); the e2e test
/// `a_deletion_called_off_by_a_reactivation_is_not_counted_when_the_object_goes_later` drives
/// that interleaving every time. Run the seeds with `cargo test --test chaos -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "timing-dependent; the e2e test drives the interleaving every time"]
async fn seed_1796223177853023683_a_call_off_is_stored_before_a_live_deletion() {
    campaign(short(1796223177853023683)).await;
}

/// Seed 1796224883078567191 (a fresh seed of a local run) drives a reactivation between two
/// deletions of one erasure time for one processor: the request for what already went must
/// still be sent (it was dropped with the rest). The unit test
/// `a_cancelled_erasure_still_owes_the_request_for_what_already_went` (`notifier::ledger`)
/// covers it every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "timing-dependent; the ledger's unit test covers the case every time"]
async fn seed_1796224883078567191_a_reactivation_still_owes_the_request_for_what_went() {
    campaign(short(1796224883078567191)).await;
}

/// Seed 20261202 drives, in the fifth round of a long run, backups whose recorded deletion a
/// reactivation calls off and the live account's schedule then deletes: the erasure proof must
/// not count them. Its quick regression tests are the unit tests of `ErasureRecord::settle`;
/// this one replays the run (about four minutes): `cargo test --test chaos -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "about four minutes; the unit tests of ErasureRecord::settle cover it quickly"]
async fn seed_20261202_a_reactivation_calls_off_recorded_deletions_for_the_proof() {
    campaign(Campaign {
        seed: 20261202,
        lifecycles: 250,
        accounts: 50,
        steps: 100,
        kill_rate: 0.25,
        fault_rate: 0.3,
        restart_rate: 0.03,
        shards: 1,
    })
    .await;
}

// The oracle's replay of a history, on exchanges written by hand.

fn account_exchange(verb: &str, rv: u64, finalizers: &[&str]) -> test_apiserver::Exchange {
    let now = chrono::Utc::now();
    test_apiserver::Exchange {
        record: test_apiserver::RequestRecord {
            verb: verb.into(),
            group: retention_operator::api::GROUP.into(),
            version: retention_operator::api::VERSION.into(),
            resource: "accounts".into(),
            subresource: String::new(),
            namespace: String::new(),
            name: "r0-1".into(),
            path: String::new(),
            code: 200,
            user_agent: "chaos-driver".into(),
        },
        received: now,
        completed: now,
        request: None,
        response: Some(serde_json::json!({
            "apiVersion": retention_operator::api::API_VERSION,
            "kind": "Account",
            "metadata": {
                "name": "r0-1",
                "uid": "uid-r0-1",
                "resourceVersion": rv.to_string(),
                "deletionTimestamp": "2026-01-01T00:00:00Z",
                "finalizers": finalizers,
            },
            "spec": {},
        })),
    }
}

/// The server logs an exchange when it answers, not when it commits: a patch committed before
/// the patch that removed the Account's last finalizer can be logged after it, and must not
/// bring the Account back.
#[test]
fn a_write_logged_after_the_removal_of_its_object_does_not_bring_it_back() {
    let mut replay = oracle::Replay::default();
    replay.apply(&account_exchange(
        "patch",
        7,
        &[retention_operator::controller::account::FINALIZER],
    ));
    replay.apply(&account_exchange("patch", 9, &[]));
    replay.apply(&account_exchange(
        "patch",
        8,
        &[retention_operator::controller::account::FINALIZER],
    ));
    assert!(replay.current("accounts", "", "r0-1").is_none());
}

/// A violation's report shows its campaign's log lines about its account, not another
/// campaign's (both run in one process) nor another account's.
#[test]
fn a_violation_report_shows_the_log_lines_of_its_campaign_about_its_account() {
    let logs = "\
x replica{campaign=7 name=\"a\"}:reconciling object{object.ref=Account.v1/r1-11 object.reason=x}: pass done account=r1-11 deleting=false
x replica{campaign=8 name=\"a\"}: pass done account=r1-11 deleting=true
x replica{campaign=7 name=\"b\"}: pass done account=r1-1 deleting=true
x replica{campaign=7 name=\"b\"}: erasure request sent account=r1-11
";
    let violations = [oracle::Violation {
        kind: oracle::ViolationKind::Leftover,
        position: None,
        detail: "accounts /r1-11 still exists after its account was deleted".into(),
    }];
    let shown = log_lines_about(logs.as_bytes(), 7, &violations);
    assert_eq!(shown.lines().count(), 2, "{shown}");
    assert!(shown.contains("deleting=false") && shown.ends_with("account=r1-11"));
}
