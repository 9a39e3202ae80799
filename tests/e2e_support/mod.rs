//! The end-to-end harness: the test API server, the real operator in-process with an injected
//! clock, and polling with deadlines.
#![allow(dead_code)]

use std::{
    fmt::Debug,
    future::Future,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use chrono::{DateTime, Utc};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use retention_operator::{
    api::{
        Account, AccountBinding, AccountPhase, AccountSpec, AccountState, Backup, BackupSchedule,
        BackupSource, BackupSpec, Bookkeeping, BookkeepingRetention, DELETE_AT_ANNOTATION,
        DataCategory, DataRecord, DataRecordSpec, GracePeriods, HostedKind, LegalBasis, Mailbox,
        MailboxSpec, RetentionPolicy, RetentionPolicySpec, Website, WebsiteSpec,
    },
    clock::ManualClock,
    controller::{self, Settings},
    metrics::Metrics,
};
use serde::{Serialize, de::DeserializeOwned};
use test_apiserver::{Config, RequestRecord, TestApiServer};

pub const NAMESPACE: &str = "cust-acme";
pub const DEADLINE: Duration = Duration::from_secs(20);
/// The operator's `--advance-notice` in these tests.
pub const ADVANCE_NOTICE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Polls `check` until it returns `Some`, failing after the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Harness {
    pub server: TestApiServer,
    pub client: Client,
    pub clock: Arc<ManualClock>,
    /// The running operator's metrics (a restarted operator starts with fresh ones).
    pub metrics: Arc<Metrics>,
    dry_run: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    operator: Option<tokio::task::JoinHandle<()>>,
}

/// A running operator: its metrics, its stop signal and its task.
struct Operator {
    metrics: Arc<Metrics>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The User-Agent of the operator's requests in the server's request log.
pub const OPERATOR_AGENT: &str = "retention-operator-e2e";
/// The User-Agent of the test's own requests (through `Harness::client`).
pub const TEST_AGENT: &str = "e2e-test";

/// A client of the test API server whose requests carry `agent` as User-Agent, so the request
/// log tells the operator's requests from the test's.
fn client_for(server: &TestApiServer, agent: &str) -> Client {
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config
        .headers
        .push(("user-agent".parse().unwrap(), agent.parse().unwrap()));
    Client::try_from(config).unwrap()
}

/// Starts the real operator in-process against `server` (with its own client), reading
/// `clock`.
fn spawn_operator(server: &TestApiServer, clock: &Arc<ManualClock>, dry_run: bool) -> Operator {
    let client = client_for(server, OPERATOR_AGENT);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let settings = Settings {
        clock: clock.clone(),
        clock_moves: Some(Box::pin(clock.moves())),
        dry_run,
        concurrency: 4,
        advance_notice: ADVANCE_NOTICE,
    };
    let ready = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::new());
    let task = tokio::spawn(controller::run(
        client.clone(),
        settings,
        metrics.clone(),
        ready,
        async move {
            let _ = stopped.await;
        },
    ));
    Operator {
        metrics,
        stop,
        task,
    }
}

impl Harness {
    pub async fn start(now: DateTime<Utc>) -> Self {
        Self::start_with(now, false).await
    }

    /// Like [`Harness::start`], with the operator in dry-run mode (`Settings.dry_run`).
    pub async fn start_dry_run(now: DateTime<Utc>) -> Self {
        Self::start_with(now, true).await
    }

    async fn start_with(now: DateTime<Utc>, dry_run: bool) -> Self {
        Self::start_with_crds(now, concat!(env!("CARGO_MANIFEST_DIR"), "/crds"), dry_run).await
    }

    /// Like [`Harness::start`], with the CRDs read from `crds` (a directory or file) instead of
    /// the project's `crds/`: for clusters whose CRDs differ from what this operator knows.
    pub async fn start_with_crds(
        now: DateTime<Utc>,
        crds: impl AsRef<std::path::Path>,
        dry_run: bool,
    ) -> Self {
        let server = TestApiServer::start(Config::default().crds(crds).namespace(NAMESPACE))
            .await
            .unwrap();
        let client = client_for(&server, TEST_AGENT);
        let clock = Arc::new(ManualClock::new(now));
        let operator = spawn_operator(&server, &clock, dry_run);
        Self {
            server,
            client,
            clock,
            metrics: operator.metrics,
            dry_run,
            stop: Some(operator.stop),
            operator: Some(operator.task),
        }
    }

    /// Stops the operator (gracefully, like SIGTERM) and waits until it has stopped; the API
    /// server keeps running with everything stored.
    pub async fn stop_operator(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(operator) = self.operator.take() {
            tokio::time::timeout(DEADLINE, operator)
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// Starts a new operator (fresh caches, fresh metrics, same clock and settings) against
    /// the same API server. Stops the running one first, if any.
    pub async fn restart_operator(&mut self) {
        self.stop_operator().await;
        // spawn_operator makes a new client: none of the old operator's connections is reused.
        let operator = spawn_operator(&self.server, &self.clock, self.dry_run);
        self.metrics = operator.metrics;
        self.stop = Some(operator.stop);
        self.operator = Some(operator.task);
    }

    /// Account reconciles started so far, read from the operator's own metrics.
    pub fn reconciles_started(&self) -> u64 {
        metric(&self.metrics, "retention_operator_reconciles_total{")
    }

    /// Account reconciles finished so far, read from the operator's own metrics.
    pub fn reconciles(&self) -> u64 {
        reconciles_finished(&self.metrics)
    }

    /// Moves the clock and waits until the operator has looked at the account again.
    pub async fn move_clock_to(&self, now: &str) {
        let before = self.reconciles();
        self.clock.set(at(now));
        eventually("a reconcile after the clock moved", || async {
            (self.reconciles() > before).then_some(())
        })
        .await;
    }

    /// Waits until no reconcile is running and none started or finished over two polls in a
    /// row (100 ms apart): the operator has settled.
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut last = None;
        loop {
            // Started first: when finished has caught up, every reconcile started so far is
            // done.
            let started = self.reconciles_started();
            let finished = self.reconciles();
            let snapshot = (started, finished);
            if finished >= started && last == Some(snapshot) {
                return;
            }
            last = Some(snapshot);
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for the operator to settle ({started} reconciles started, \
                 {finished} finished)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Moves the clock once the operator has settled, then waits until at least `accounts`
    /// reconciles started after the move (every account is reconciled on a clock move) and the
    /// operator has settled again. Unlike [`Harness::move_clock_to`], a reconcile that was
    /// already running with the old time does not count, so a test can assert that something
    /// did *not* happen at the new time.
    pub async fn move_clock_and_settle(&self, now: &str, accounts: u64) {
        self.settle().await;
        let before = self.reconciles_started();
        self.clock.set(at(now));
        eventually("reconciles after the clock moved", || async {
            (self.reconciles_started() >= before + accounts).then_some(())
        })
        .await;
        self.settle().await;
    }

    pub async fn stop(mut self) {
        self.stop_operator().await;
    }
}

/// Account reconciles finished so far, read from an operator's metrics.
pub fn reconciles_finished(metrics: &Metrics) -> u64 {
    metric(
        metrics,
        "retention_operator_reconcile_duration_seconds_count{",
    )
}

/// The value of the first sample whose line starts with `prefix` (0 when absent).
fn metric(metrics: &Metrics, prefix: &str) -> u64 {
    let text = metrics.encode().unwrap();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Builders and API helpers shared by the scenarios.

/// The default RetentionPolicy of DESIGN.md's examples: 30d grace (Mailbox 14d), backups 7 daily
/// / 4 weekly / 6 monthly capped at 90d after termination, bookkeeping 7 years.
pub fn default_policy() -> RetentionPolicy {
    RetentionPolicy::new(
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
    )
}

/// An Active account using the default policy.
pub fn active_account(name: &str) -> Account {
    Account {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: AccountSpec {
            customer_ref: format!("C-{name}"),
            state: AccountState::Active,
            terminated_at: None,
            retention_policy_ref: "default".into(),
            legal_hold: None,
            consents: Default::default(),
        },
        status: None,
    }
}

/// An account terminated at `terminated_at` (spec.terminatedAt).
pub fn terminated_account(name: &str, terminated_at: &str) -> Account {
    let mut account = active_account(name);
    account.spec.state = AccountState::Terminated;
    account.spec.terminated_at = Some(at(terminated_at));
    account
}

pub fn binding(account: &str, basis: LegalBasis) -> AccountBinding {
    AccountBinding {
        account_ref: account.into(),
        processor_ref: None,
        legal_basis: basis,
        consent_purpose: None,
    }
}

/// A binding on consent for `purpose`.
pub fn consent_binding(account: &str, purpose: &str) -> AccountBinding {
    AccountBinding {
        consent_purpose: Some(purpose.into()),
        ..binding(account, LegalBasis::Consent)
    }
}

fn namespaced<K: kube::Resource>(mut object: K) -> K {
    object.meta_mut().namespace = Some(NAMESPACE.into());
    object
}

pub fn website(name: &str, account: &str) -> Website {
    namespaced(Website::new(
        name,
        WebsiteSpec {
            binding: binding(account, LegalBasis::Contract),
            hostnames: vec![],
        },
    ))
}

pub fn mailbox(name: &str, account: &str) -> Mailbox {
    namespaced(Mailbox::new(
        name,
        MailboxSpec {
            binding: binding(account, LegalBasis::Contract),
            address: format!("{name}@example.com"),
        },
    ))
}

pub fn record(name: &str, binding: AccountBinding, category: DataCategory) -> DataRecord {
    namespaced(DataRecord::new(
        name,
        DataRecordSpec {
            binding,
            category,
            bookkeeping: None,
        },
    ))
}

/// Invoices the Bookkeeping Act keeps (fiscal year ending `fiscal_year_end`, e.g. 2026-12-31).
pub fn invoices(name: &str, account: &str, fiscal_year_end: &str) -> DataRecord {
    let mut invoices = record(
        name,
        binding(account, LegalBasis::LegalObligation),
        DataCategory::Invoices,
    );
    invoices.spec.bookkeeping = Some(Bookkeeping {
        fiscal_year_end: fiscal_year_end.parse().unwrap(),
    });
    invoices
}

/// A backup of the Website `source`, taken at `taken_at`.
pub fn website_backup(name: &str, account: &str, source: &str, taken_at: DateTime<Utc>) -> Backup {
    namespaced(Backup::new(
        name,
        BackupSpec {
            account_ref: account.into(),
            source_ref: BackupSource {
                kind: HostedKind::Website,
                name: source.into(),
            },
            taken_at,
        },
    ))
}

/// Creates a cluster-scoped object.
pub async fn create_cluster<K>(client: &Client, object: &K) -> K
where
    K: Resource<DynamicType = (), Scope = ClusterResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    Api::<K>::all(client.clone())
        .create(&PostParams::default(), object)
        .await
        .unwrap()
}

/// Creates an object in [`NAMESPACE`].
pub async fn create<K>(client: &Client, object: &K) -> K
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    Api::<K>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), object)
        .await
        .unwrap()
}

/// The object in [`NAMESPACE`], or `None` when it is gone. Panics on other errors.
pub async fn get<K>(client: &Client, name: &str) -> Option<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    Api::<K>::namespaced(client.clone(), NAMESPACE)
        .get_opt(name)
        .await
        .unwrap()
}

/// Whether the object in [`NAMESPACE`] is gone (404).
pub async fn gone<K>(client: &Client, name: &str) -> bool
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    get::<K>(client, name).await.is_none()
}

/// The delete-at annotation of the object in [`NAMESPACE`] (`None` also when it is gone).
pub async fn delete_at<K>(client: &Client, name: &str) -> Option<String>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    get::<K>(client, name)
        .await?
        .annotations()
        .get(DELETE_AT_ANNOTATION)
        .cloned()
}

/// A Backup's `status.expiresAt`.
pub async fn expires_at(client: &Client, name: &str) -> Option<DateTime<Utc>> {
    get::<Backup>(client, name).await?.status?.expires_at
}

/// The Account, or `None` when it is gone.
pub async fn account(client: &Client, name: &str) -> Option<Account> {
    Api::<Account>::all(client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

/// The Account's status.phase.
pub async fn phase(client: &Client, name: &str) -> Option<AccountPhase> {
    account(client, name).await?.status?.phase
}

/// Waits until the Account's phase is `expected`.
pub async fn wait_phase(client: &Client, name: &str, expected: AccountPhase) {
    eventually(&format!("phase {expected:?} of account {name}"), || async {
        (phase(client, name).await == Some(expected)).then_some(())
    })
    .await;
}

/// JSON-merge-patches the Account's spec (or anything else in `patch`).
pub async fn patch_account(client: &Client, name: &str, patch: serde_json::Value) -> Account {
    Api::<Account>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap()
}

/// `delete` requests the server saw for the object (any answer, including injected faults).
pub fn delete_requests(server: &TestApiServer, resource: &str, name: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.verb == "delete" && r.resource == resource && r.name == name)
        .count()
}

/// The operator's requests (by User-Agent) in the server's request log.
pub fn operator_requests(server: &TestApiServer) -> Vec<RequestRecord> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.user_agent == OPERATOR_AGENT)
        .collect()
}

/// Every `delete` request the server saw, as `resource/name`.
pub fn deletes(server: &TestApiServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| r.verb == "delete")
        .map(|r| format!("{}/{}", r.resource, r.name))
        .collect()
}
