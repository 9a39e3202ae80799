//! Two replicas against one API server: only the leader acts, and killing it hands over. Runs
//! in real-cluster mode too (`RETENTION_E2E_KUBECONFIG`): the lease is short (3 s), so the
//! hand-over takes seconds there as well.

mod e2e_support;

use std::sync::{Arc, atomic::AtomicBool};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client, api::DeleteParams};
use retention_operator::{
    api::Mailbox,
    clock::ManualClock,
    controller::{self, Settings},
    leader::{LeaderSettings, run_as_leader},
    metrics::Metrics,
};
use tokio::{sync::watch, task::JoinHandle};

use e2e_support::{
    Cluster, at, create, create_cluster, default_policy, eventually, mailbox, reconciles_finished,
    terminated_account,
};

struct Replica {
    clock: Arc<ManualClock>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn replica(client: &Client, identity: &str) -> Replica {
    let clock = Arc::new(ManualClock::new(at("2026-11-02T00:00:00Z")));
    let metrics = Arc::new(Metrics::new());
    let (stop, stopped) = watch::channel(false);
    let settings = LeaderSettings {
        lease_name: "retention-operator".into(),
        namespace: "default".into(),
        identity: identity.into(),
        duration_seconds: 3,
        grace_seconds: 1,
    };
    let (client, run_clock, run_metrics) = (client.clone(), clock.clone(), metrics.clone());
    let task = tokio::spawn(async move {
        let work_client = client.clone();
        run_as_leader(client, &settings, stopped, move |stop| async move {
            let settings = Settings {
                clock: run_clock.clone(),
                clock_moves: Some(Box::pin(run_clock.moves())),
                dry_run: false,
                concurrency: 2,
                advance_notice: e2e_support::ADVANCE_NOTICE,
                webhook_allowed_networks: Vec::new(),
            };
            let ready = Arc::new(AtomicBool::new(false));
            controller::run(work_client, settings, run_metrics, ready, stop).await;
        })
        .await
        .unwrap();
    });
    Replica {
        clock,
        metrics,
        stop,
        task,
    }
}

async fn seed(client: &Client) {
    create_cluster(client, &default_policy()).await;
    create_cluster(client, &terminated_account("acme", "2026-11-01T00:00:00Z")).await;
    create(client, &mailbox("info", "acme")).await;
}

async fn holder(client: &Client) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), "default")
        .get_opt("retention-operator")
        .await
        .ok()??;
    lease.spec?.holder_identity
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_leader_acts_and_killing_it_hands_over() {
    let cluster = Cluster::connect().await;
    let client = cluster.client.clone();
    // A lease left on a real cluster by an earlier run would name a holder before either
    // replica has run.
    match Api::<Lease>::namespaced(client.clone(), "default")
        .delete("retention-operator", &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => panic!("deleting the old lease: {e}"),
    }
    seed(&client).await;
    // Each replica has its own client, as separate processes would.
    let first = replica(&cluster.client_with_agent("replica-a"), "replica-a");
    let second = replica(&cluster.client_with_agent("replica-b"), "replica-b");

    let leader = eventually("a leader", || async { holder(&client).await }).await;
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
        holder(&client).await.filter(|h| *h != leader)
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
