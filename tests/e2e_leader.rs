//! Two replicas against one API server: only the leader acts, and killing it hands over. Runs
//! in real-cluster mode too (`RETENTION_E2E_KUBECONFIG`): the lease is short (3 s), so the
//! hand-over takes seconds there as well.

mod e2e_support;

use std::sync::Arc;

use kube::{Api, Client};
use retention_operator::{api::Mailbox, clock::ManualClock};

use e2e_support::{
    AccountExt, Cluster, Replica, account, at, create, create_cluster, default_policy,
    delete_lease, eventually, lease_holder, mailbox, reconciles_finished,
};

fn replica(client: &Client, identity: &str) -> Replica {
    let clock = Arc::new(ManualClock::new(at("2026-11-02T00:00:00Z")));
    Replica::start(client, identity, clock)
}

async fn seed(client: &Client) {
    create_cluster(client, &default_policy()).await;
    create_cluster(
        client,
        &account("acme").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    create(client, &mailbox("info", "acme")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_leader_acts_and_killing_it_hands_over() {
    let cluster = Cluster::connect().await;
    let client = cluster.client.clone();
    // A lease left on a real cluster by an earlier run would name a holder before either
    // replica has run.
    delete_lease(&client).await;
    seed(&client).await;
    // Each replica has its own client, as separate processes would.
    let first = replica(&cluster.client_with_agent("replica-a"), "replica-a");
    let second = replica(&cluster.client_with_agent("replica-b"), "replica-b");

    let leader = eventually("a leader", || async { lease_holder(&client).await }).await;
    let (leading, following) = if leader == "replica-a" {
        (first, second)
    } else {
        (second, first)
    };
    eventually("the leader to reconcile", || async {
        (reconciles_finished(&leading.metrics) > 0).then_some(())
    })
    .await;
    // The follower has not acted at all: not one reconcile.
    assert_eq!(
        reconciles_finished(&following.metrics),
        0,
        "the follower reconciled while not leading"
    );

    // Kill the leader without releasing the lease; the follower takes over after it expires.
    leading.task.abort();
    let _ = leading.task.await;
    let new_leader = eventually("the follower to take the lease over", || async {
        lease_holder(&client).await.filter(|h| *h != leader)
    })
    .await;
    assert_ne!(new_leader, leader);
    eventually("the new leader to reconcile", || async {
        (reconciles_finished(&following.metrics) > 0).then_some(())
    })
    .await;

    // The new leader does the work: the mailbox goes once its date has passed.
    following.clock.set(at("2026-12-01T00:00:01Z"));
    let mailboxes = Api::<Mailbox>::namespaced(client.clone(), e2e_support::NAMESPACE);
    eventually("the mailbox to go", || async {
        matches!(mailboxes.get_opt("info").await, Ok(None)).then_some(())
    })
    .await;
    let _ = leading.clock;
    let _ = following.stop.send(true);
    let _ = following.task.await;
}

/// An operator process, killed when dropped (a failed test leaves none behind).
struct Process {
    child: std::process::Child,
    name: &'static str,
}

impl Process {
    /// Starts the release-built operator as replica `name`, with a 4 s lease renewed every
    /// second: its requests may take at most 4 - 3 = 1 s (the fence).
    fn start(name: &'static str, kubeconfig: &std::path::Path, log: &std::path::Path) -> Self {
        let log = std::fs::File::create(log.join(format!("{name}.log"))).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_retention-operator"))
            .args([
                "run",
                "--http-addr=127.0.0.1:0",
                "--lease-duration=4s",
                "--lease-renew-deadline=3s",
                "--lease-retry-period=1s",
                "--advance-notice=0s",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", "default")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child, name }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    /// The User-Agent of its requests.
    fn agent(&self) -> String {
        format!(
            "retention-operator/{} ({})",
            env!("CARGO_PKG_VERSION"),
            self.name
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 10, defect 2: a leader paused (SIGSTOP) in the middle of an erasure, deposed while it
/// sleeps, must not act when it wakes: no DELETE, no status write, no event, nothing counted
/// twice. It must exit. Two real operator processes against the test API server.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_leader_that_lost_its_lease_acts_no_more_when_it_resumes() {
    e2e_support::skip_on_real_cluster!("needs injected latency and the request log");
    const WEBSITES: usize = 60;
    let cluster = Cluster::connect().await;
    let client = cluster.client.clone();
    let server = cluster.test_server().unwrap();
    let dir = std::env::temp_dir().join(format!("retention-e2e-deposed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();

    // Due 15 s from now, by the system clock the processes read.
    let mut policy = e2e_support::default_policy();
    policy.spec.grace_period = "15s".parse().unwrap();
    create_cluster(&client, &policy).await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    create_cluster(&client, &account("acme").terminated_at(&now)).await;
    for i in 0..WEBSITES {
        create(&client, &e2e_support::website(&format!("www-{i}"), "acme")).await;
    }
    let a = Process::start("replica-a", &kubeconfig, &dir);
    eventually("replica-a to lead", || async {
        lease_holder(&client).await.filter(|h| h == "replica-a")
    })
    .await;
    let b = Process::start("replica-b", &kubeconfig, &dir);
    for i in 0..WEBSITES {
        let name = format!("www-{i}");
        eventually("the schedules", || {
            e2e_support::delete_at::<retention_operator::api::Website>(&client, &name)
        })
        .await;
    }
    server.update_faults(|faults| faults.latency = std::time::Duration::from_millis(100));
    let deleted_by = |agent: &str| {
        server
            .requests()
            .iter()
            .filter(|r| r.user_agent == agent && r.verb == "delete" && r.code < 300)
            .count()
    };
    eventually("replica-a deleting", || async {
        (deleted_by(&a.agent()) >= 10).then_some(())
    })
    .await;

    // Paused in the middle of the erasure; the account system reactivates the account.
    a.signal("-STOP");
    e2e_support::patch_account(
        &client,
        "acme",
        serde_json::json!({"spec": {"state": "Active", "terminatedAt": null}}),
    )
    .await;
    let reactivated = server.requests().len();
    eventually("replica-b to take the lease over", || async {
        lease_holder(&client).await.filter(|h| h == "replica-b")
    })
    .await;
    e2e_support::wait_phase(
        &client,
        "acme",
        retention_operator::api::AccountPhase::Active,
    )
    .await;
    let resumed = server.requests().len();
    a.signal("-CONT");
    let mut a = a;
    let exit = {
        let deadline = tokio::time::Instant::now() + e2e_support::deadline();
        loop {
            if let Some(exit) = a.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "replica-a did not exit"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    assert!(
        !exit.success(),
        "a deposed leader exits with an error: {exit}"
    );
    // Whatever replica-a still had under way has been answered.
    let mut seen = server.requests().len();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = server.requests().len();
        if now == seen {
            break;
        }
        seen = now;
    }

    let log = server.requests();
    let after_resume: Vec<String> = log[resumed..]
        .iter()
        .filter(|r| r.user_agent == a.agent() && r.is_write())
        .map(|r| format!("{} {}/{} {}", r.verb, r.resource, r.name, r.code))
        .collect();
    assert!(
        after_resume.is_empty(),
        "the deposed leader acted after it resumed: {after_resume:?}"
    );
    let after_reactivation = log[reactivated..]
        .iter()
        .filter(|r| r.verb == "delete" && r.resource == "websites" && r.code < 300)
        .count();
    assert!(
        after_reactivation <= 1,
        "{after_reactivation} Websites deleted after the reactivation"
    );
    // Every Website deletion is in the proof exactly once, whoever made it.
    let deleted: usize = log
        .iter()
        .filter(|r| r.verb == "delete" && r.resource == "websites" && r.code < 300)
        .count();
    let proof = eventually("the proof settled by the new leader", || async {
        let proof = e2e_support::get_account(&client, "acme")
            .await?
            .status?
            .erasure?;
        proof.deleting.is_empty().then_some(proof)
    })
    .await;
    assert_eq!(
        proof.deleted.get("Website").copied(),
        Some(u32::try_from(deleted).unwrap()),
        "{proof:?}"
    );
    server.clear_faults();
    b.signal("-TERM");
    drop(b);
}
