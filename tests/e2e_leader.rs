//! Two replicas against one API server: only the leader acts, and killing it hands over.

mod e2e_support;

use std::sync::{Arc, atomic::AtomicBool};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use retention_operator::{
    api::{
        Account, AccountBinding, AccountSpec, AccountState, BackupSchedule, LegalBasis, Mailbox,
        MailboxSpec, RetentionPolicy, RetentionPolicySpec,
    },
    clock::ManualClock,
    controller::{self, Settings},
    leader::{LeaderSettings, run_as_leader},
    metrics::Metrics,
};
use tokio::{sync::watch, task::JoinHandle};

use e2e_support::{NAMESPACE, at, eventually};

struct Replica {
    clock: Arc<ManualClock>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn reconciles(metrics: &Metrics) -> u64 {
    let text = metrics.encode().unwrap();
    text.lines()
        .find(|l| l.starts_with("retention_operator_reconcile_duration_seconds_count{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
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
    let post = PostParams::default();
    let policy = RetentionPolicy::new(
        "default",
        RetentionPolicySpec {
            grace_period: "30d".parse().unwrap(),
            grace_periods: Default::default(),
            backups: BackupSchedule {
                keep_daily: 7,
                keep_weekly: 4,
                keep_monthly: 6,
                after_termination: None,
            },
            bookkeeping: Default::default(),
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
            terminated_at: Some(at("2026-11-01T00:00:00Z")),
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
    let mut mailbox = Mailbox::new(
        "info",
        MailboxSpec {
            binding: AccountBinding {
                account_ref: "acme".into(),
                processor_ref: None,
                legal_basis: LegalBasis::Contract,
                consent_purpose: None,
            },
            address: "info@example.com".into(),
        },
    );
    mailbox.metadata.namespace = Some(NAMESPACE.into());
    Api::<Mailbox>::namespaced(client.clone(), NAMESPACE)
        .create(&post, &mailbox)
        .await
        .unwrap();
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
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let server = test_apiserver::TestApiServer::start(
        test_apiserver::Config::default()
            .crds(crds)
            .namespace(NAMESPACE),
    )
    .await
    .unwrap();
    let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    seed(&client).await;
    let first = replica(&client, "replica-a");
    let second = replica(&client, "replica-b");

    let leader = eventually("a leader", || async { holder(&client).await }).await;
    let (leading, following) = if leader == "replica-a" {
        (first, second)
    } else {
        (second, first)
    };
    eventually("the leader to reconcile", || async {
        (reconciles(&leading.metrics) > 0).then_some(())
    })
    .await;
    // The follower has not acted at all: not one reconcile.
    assert_eq!(
        reconciles(&following.metrics),
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
        (reconciles(&following.metrics) > 0).then_some(())
    })
    .await;

    // The new leader does the work: the mailbox goes once its date has passed.
    following.clock.set(at("2026-12-01T00:00:01Z"));
    let mailboxes = Api::<Mailbox>::namespaced(client.clone(), NAMESPACE);
    eventually("the mailbox to go", || async {
        matches!(mailboxes.get_opt("info").await, Ok(None)).then_some(())
    })
    .await;
    let _ = leading.clock;
    let _ = following.stop.send(true);
    let _ = following.task.await;
}
