//! The end-to-end harness: the test API server (or, with `RETENTION_E2E_KUBECONFIG`, a real
//! cluster), the real operator in-process with an injected clock, and polling with deadlines.
//!
//! Real-cluster mode: with `RETENTION_E2E_KUBECONFIG=PATH`, no test API server is started.
//! Clients come from that kubeconfig; the project's CRDs (`crds/`) are installed or updated and
//! waited for; the test namespace is created when missing; and every `hosting.ecuni.se` object
//! left by an earlier test is removed (finalizers stripped first) before the operator starts.
//! That is why the cluster must be a throwaway one (kind, k3d). The in-process operator still
//! reads the injected [`ManualClock`], which works against any API server. The tests use fixed
//! names, so harnesses in real-cluster mode take an exclusive lock (a file lock, held until the
//! harness is dropped): tests run one at a time, across threads and test processes alike.
//! Tests that need what only the test API server has (its request log, fault injection, its
//! event window) skip with [`skip_on_real_cluster!`] or guard those checks with
//! [`Harness::test_server`]. Tests that need other CRDs than the project's (a newer or an older
//! operator's) install them on the real cluster too; the next test puts the project's back.
//!
//! The objects' builders are `tests/support`'s, re-exported here: `website("www", "acme")` is
//! in [`NAMESPACE`], the namespace of the test API server and of the real-cluster mode.
#![allow(dead_code)]

pub mod request_log;
#[path = "../support/mod.rs"]
pub mod support;

pub use support::*;

use std::{
    fmt::Debug,
    future::Future,
    io::Write,
    ops::Deref,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock, atomic::AtomicBool},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::{
    ByteString, ClusterResourceScope, NamespaceResourceScope,
    api::{
        core::v1::{Namespace, Secret},
        events::v1::Event,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams,
        PostParams,
    },
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::Condition,
};
use retention_operator::{
    api::{
        Account, AccountPhase, Backup, DELETE_AT_ANNOTATION, DataProcessor, DataRecord, Database,
        Domain, Mailbox, RetentionPolicy, Website,
    },
    clock::ManualClock,
    controller::{self, Settings},
    leader::Fence,
    metrics::Metrics,
};
use serde::{Serialize, de::DeserializeOwned};
use test_apiserver::{Config, RequestRecord, TestApiServer};

/// How long [`eventually`] and [`Harness::settle`] wait against the test API server; see
/// [`deadline`] for real clusters.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// The operator's `--webhook-allow-cidr` in these tests: the receivers' network.
pub const LOOPBACK: &str = "127.0.0.0/8";
/// The operator's `--advance-notice` in these tests.
pub const ADVANCE_NOTICE: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// The longest one request of the in-process operator may take (as with the default lease).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The environment variable naming the kubeconfig of a real (throwaway) cluster to run against.
pub const KUBECONFIG_ENV: &str = "RETENTION_E2E_KUBECONFIG";
/// The project's CRDs, installed on a real cluster and loaded by the test API server.
pub const PROJECT_CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
/// The field manager of the CRDs the harness installs on a real cluster.
const FIELD_MANAGER: &str = "retention-operator-e2e";

/// The kubeconfig of the real cluster the tests run against (`RETENTION_E2E_KUBECONFIG`, when
/// set and not empty), or `None` for the in-memory test API server.
pub fn real_cluster() -> Option<&'static Path> {
    static KUBECONFIG: OnceLock<Option<PathBuf>> = OnceLock::new();
    KUBECONFIG
        .get_or_init(|| {
            std::env::var_os(KUBECONFIG_ENV)
                .filter(|path| !path.is_empty())
                .map(PathBuf::from)
        })
        .as_deref()
}

/// How long to wait for something: [`DEADLINE`], tripled on a real cluster, whose API server,
/// watches and CRD installation are slower than the in-memory one's.
pub fn deadline() -> Duration {
    if real_cluster().is_some() {
        DEADLINE * 3
    } else {
        DEADLINE
    }
}

/// In real-cluster mode, prints why the test is skipped (one line on stderr) and returns true;
/// otherwise returns false. Prefer the [`skip_on_real_cluster!`] macro, which also returns.
pub fn skipping_on_real_cluster(why: &str) -> bool {
    let Some(kubeconfig) = real_cluster() else {
        return false;
    };
    // Written to the process's stderr directly: libtest captures eprintln! of passing tests,
    // and a skip should be seen.
    let _ = writeln!(
        std::io::stderr(),
        "{} skipped on the real cluster of {KUBECONFIG_ENV}={}: {why}",
        // libtest names each test's thread after the test.
        std::thread::current().name().unwrap_or("a test"),
        kubeconfig.display()
    );
    true
}

/// `skip_on_real_cluster!("needs the request log")` at the top of a test: in real-cluster mode
/// the test returns (passes) at once, with the reason on stderr, before touching the cluster.
#[allow(unused_macros)]
macro_rules! skip_on_real_cluster {
    ($why:expr) => {
        if $crate::e2e_support::skipping_on_real_cluster($why) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use skip_on_real_cluster;

/// Every log line the operators of this test binary write (at debug level, without colours),
/// and their audit trail beside it as the operator writes it (docs/audit.md), for checks of
/// what is and is not logged. The first call installs the global subscriber.
pub fn captured_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    use tracing_subscriber::{Layer, layer::SubscriberExt};
    static LOGS: OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log_sink, audit_sink) = (logs.clone(), logs.clone());
        let log = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || LogSink(log_sink.clone()))
            .with_filter(tracing_subscriber::EnvFilter::new(
                "retention_operator=debug",
            ))
            .with_filter(retention_operator::audit::not_audit());
        let subscriber =
            tracing_subscriber::registry()
                .with(log)
                .with(retention_operator::audit::layer(move || {
                    LogSink(audit_sink.clone())
                }));
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
    .clone()
}

struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A kubeconfig file for the cluster the test runs against: the real cluster's own, or one
/// written into `dir` for the test server.
/// `server` is the [`Cluster`]'s or the [`Harness`]'s `test_server()`.
pub fn kubeconfig_file(server: Option<&TestApiServer>, dir: &Path) -> PathBuf {
    if let Some(path) = real_cluster() {
        return path.to_owned();
    }
    let path = dir.join("kubeconfig");
    let server = server.expect("the test server");
    std::fs::write(&path, server.kubeconfig()).unwrap();
    path
}

/// Runs the `retention-operator` binary with `args` (without `KUBECONFIG`); its standard
/// output, or a panic with all it said.
pub fn run_operator(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_retention-operator"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "retention-operator {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Polls `check` until it returns `Some`, failing after the [`deadline`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(what, deadline(), check).await
}

/// Like [`eventually`], failing after `limit` instead: for what takes a known time of its own
/// (a request timeout) before the state can appear.
pub async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
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

/// `Harness::server`: the test API server, which is absent in real-cluster mode. It derefs to
/// the [`TestApiServer`], so `harness.server.requests()` and `deletes(&harness.server)` read as
/// before; in real-cluster mode that deref panics with a message saying how to skip instead.
/// [`Harness::test_server`] asks without panicking.
pub struct TestServer(Option<TestApiServer>);

impl TestServer {
    /// The test API server, or `None` in real-cluster mode.
    pub fn get(&self) -> Option<&TestApiServer> {
        self.0.as_ref()
    }
}

impl Deref for TestServer {
    type Target = TestApiServer;

    fn deref(&self) -> &TestApiServer {
        self.0.as_ref().unwrap_or_else(|| {
            panic!(
                "this test uses the test API server (request log, faults or event window), \
                 which real-cluster mode ({KUBECONFIG_ENV}) does not have: start it with \
                 skip_on_real_cluster!(\"why\") or guard the check with harness.test_server()"
            )
        })
    }
}

/// Where the tests' objects live: the test API server or a real cluster, with its clients'
/// configuration. In real-cluster mode it holds the exclusive lock until dropped.
pub struct Cluster {
    pub server: TestServer,
    /// The test's own client (User-Agent [`TEST_AGENT`]).
    pub client: Client,
    config: kube::Config,
    /// On a real cluster with an audit log, its size once the cluster was prepared: where the
    /// test's [`RequestLog`](request_log::RequestLog) begins.
    audit_from: Option<u64>,
    _exclusive: Option<std::fs::File>,
}

impl Cluster {
    /// The test API server with the project's CRDs, or, in real-cluster mode, the cluster
    /// prepared for a test: CRDs installed, namespace present, leftovers removed.
    pub async fn connect() -> Self {
        Self::connect_with_crds(PROJECT_CRDS).await
    }

    /// Like [`Cluster::connect`], with the CRDs in the directory `crds` instead of the
    /// project's: the test API server loads them, a real cluster has them applied (until the
    /// next test applies its own).
    pub async fn connect_with_crds(crds: impl AsRef<Path>) -> Self {
        let crds = crds.as_ref();
        let Some(kubeconfig) = real_cluster() else {
            let server = TestApiServer::start(Config::default().crds(crds).namespace(NAMESPACE))
                .await
                .unwrap();
            let config = kube::Config::new(server.url().parse().unwrap());
            return Self {
                server: TestServer(Some(server)),
                client: client_with_agent(&config, TEST_AGENT),
                config,
                audit_from: None,
                _exclusive: None,
            };
        };
        // Taken before anything is read or written: another test may be using the cluster.
        let exclusive = lock_real_cluster().await;
        let options = KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(kubeconfig)
                .unwrap_or_else(|e| panic!("{KUBECONFIG_ENV}={}: {e}", kubeconfig.display())),
            &options,
        )
        .await
        .unwrap_or_else(|e| panic!("{KUBECONFIG_ENV}={}: {e}", kubeconfig.display()));
        let client = client_with_agent(&config, TEST_AGENT);
        install_crds(
            &client,
            &crds.canonicalize().unwrap_or_else(|_| crds.to_owned()),
        )
        .await;
        ensure_namespace(&client, NAMESPACE).await;
        remove_leftovers(&client).await;
        Self {
            server: TestServer(None),
            client,
            config,
            audit_from: request_log::audit_log_end(),
            _exclusive: Some(exclusive),
        }
    }

    /// A new client (no connection shared with any other) whose requests carry `agent` as
    /// User-Agent.
    pub fn client_with_agent(&self, agent: &str) -> Client {
        client_with_agent(&self.config, agent)
    }

    /// How to reach the API server, for clients of the test's own making.
    pub fn config(&self) -> &kube::Config {
        &self.config
    }

    /// The test API server, or `None` in real-cluster mode.
    pub fn test_server(&self) -> Option<&TestApiServer> {
        self.server.get()
    }

    /// The requests the server saw since the cluster was prepared: the test API server's
    /// request log, or a real cluster's audit log; `None` on a real cluster without one.
    pub fn request_log(&self) -> Option<request_log::RequestLog<'_>> {
        request_log_of(&self.server, self.audit_from, &self.client)
    }
}

fn request_log_of<'a>(
    server: &'a TestServer,
    audit_from: Option<u64>,
    client: &Client,
) -> Option<request_log::RequestLog<'a>> {
    if let Some(server) = server.get() {
        return Some(request_log::RequestLog::TestServer(server));
    }
    Some(request_log::RequestLog::Audit {
        path: request_log::audit_log()?,
        offset: audit_from?,
        client: client.clone(),
    })
}

/// `let Some(log) = request_log_or_skip!(harness) else { return };`: the harness's request log,
/// or, on a real cluster without an audit log, a skip with the reason on stderr.
#[allow(unused_macros)]
macro_rules! request_log_or_skip {
    ($harness:expr) => {
        match $harness.request_log() {
            Some(log) => Some(log),
            None => {
                $crate::e2e_support::skipping_on_real_cluster(
                    "counts the operator's requests, and this cluster has no audit log \
                     (RETENTION_E2E_AUDIT_LOG)",
                );
                None
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use request_log_or_skip;

/// Serialises the tests that use a real cluster: an exclusive lock on a file in the temporary
/// directory (flock), held by the returned file until it is dropped. Between threads of one
/// test process and between test processes (cargo runs them one after another, nextest at the
/// same time) alike.
async fn lock_real_cluster() -> std::fs::File {
    let path = std::env::temp_dir().join("retention-operator-e2e-real-cluster.lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
        file
    })
    .await
    .unwrap()
}

/// The CRDs in `dir` (each `*.yaml` file one CRD), as parsed.
fn crds_in(dir: &Path) -> Vec<CustomResourceDefinition> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        })
        .collect()
}

/// Installs or updates the CRDs in `dir` on the real cluster, then waits until each is
/// established. Skipped when this process installed the same directory last: a test that
/// needs other CRDs (a newer or older operator's) installs them, and the next test puts the
/// project's back.
///
/// A real API server serves a changed schema shortly after the update is stored, not at once:
/// a test that creates an object only the changed schema admits uses [`create_once_admitted`].
async fn install_crds(client: &Client, dir: &Path) {
    static INSTALLED: tokio::sync::Mutex<Option<PathBuf>> = tokio::sync::Mutex::const_new(None);
    let mut installed = INSTALLED.lock().await;
    if installed.as_deref() == Some(dir) {
        return;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Forced: the CRDs are this project's, whoever applied them before.
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    for crd in crds_in(dir) {
        let name = crd.name_any();
        let stored = crds
            .patch(&name, &apply, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
        applied.push((name, stored.metadata.generation));
    }
    // Established, and the applied generation seen through the API server's watch cache (a
    // list served from it), from which the server's own CRD handler learns of the change.
    for (name, generation) in applied {
        let current = kube::runtime::wait::await_condition(
            crds.clone(),
            &name,
            move |crd: Option<&CustomResourceDefinition>| {
                crd.is_some_and(|crd| crd.metadata.generation >= generation)
                    && kube::runtime::wait::conditions::is_crd_established().matches_object(crd)
            },
        );
        tokio::time::timeout(deadline(), current)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for CRD {name} to be established"))
            .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
    }
    *installed = Some(dir.to_owned());
}

/// Creates `object` through `api`, trying again while the API server refuses it as invalid
/// (422), until the [`deadline`]: for an object that only CRDs just installed by
/// [`Cluster::connect_with_crds`] admit, which a real API server starts to serve shortly after
/// it stores them. Any other error fails at once.
pub async fn create_once_admitted<K>(api: &Api<K>, object: &K) -> K
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    eventually("the object to be admitted", || async {
        match api.create(&PostParams::default(), object).await {
            Ok(created) => Some(created),
            Err(kube::Error::Api(status)) if status.code == 422 => None,
            Err(e) => panic!(
                "creating {}: {e}",
                object.meta().name.as_deref().unwrap_or("an object")
            ),
        }
    })
    .await
}

async fn ensure_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// The API resources of every kind of `hosting.ecuni.se`, cluster-scoped ones last so that an
/// Account goes after what is bound to it.
fn hosting_resources() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<Website>(&()),
        ApiResource::erase::<Database>(&()),
        ApiResource::erase::<Mailbox>(&()),
        ApiResource::erase::<Domain>(&()),
        ApiResource::erase::<DataRecord>(&()),
        ApiResource::erase::<Backup>(&()),
        ApiResource::erase::<Account>(&()),
        ApiResource::erase::<RetentionPolicy>(&()),
        ApiResource::erase::<DataProcessor>(&()),
        ApiResource::erase::<retention_operator::api::ErasureReceipt>(&()),
    ]
}

/// Removes what earlier tests left on the real cluster: every `hosting.ecuni.se` object in every
/// namespace (finalizers stripped first: no operator is running to remove the Accounts'
/// `hosting.ecuni.se/erasure`) and the Events about them, then waits until the objects are
/// gone, so the test can create the same names again.
async fn remove_leftovers(client: &Client) {
    const CONCURRENCY: usize = 16;
    for resource in hosting_resources() {
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let objects = all.list(&ListParams::default()).await.unwrap().items;
        stream::iter(objects)
            .for_each_concurrent(CONCURRENCY, |object| {
                let (client, resource) = (client.clone(), resource.clone());
                async move {
                    let api: Api<DynamicObject> = match object.namespace() {
                        Some(namespace) => Api::namespaced_with(client, &namespace, &resource),
                        None => Api::all_with(client, &resource),
                    };
                    let name = object.name_any();
                    if !object.finalizers().is_empty() {
                        let strip = serde_json::json!({"metadata": {"finalizers": null}});
                        ignore_not_found(
                            api.patch(&name, &PatchParams::default(), &Patch::Merge(&strip))
                                .await
                                .map(|_| ()),
                        );
                    }
                    ignore_not_found(
                        api.delete(&name, &DeleteParams::default())
                            .await
                            .map(|_| ()),
                    );
                }
            })
            .await;
    }
    for resource in hosting_resources() {
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        eventually(&format!("leftover {} to go", resource.plural), || async {
            let left = all.list(&ListParams::default().limit(1)).await.ok()?;
            left.items.is_empty().then_some(())
        })
        .await;
    }
    // Tests read the operator's Events (WouldDelete, …): an earlier test's must not count.
    let events: Api<Event> = Api::all(client.clone());
    let ours: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .and_then(|r| r.api_version.as_deref())
                .is_some_and(|v| v.starts_with("hosting.ecuni.se/"))
        })
        .collect();
    stream::iter(ours)
        .map(|event| {
            let client = client.clone();
            async move {
                let namespace = event.namespace().unwrap_or_else(|| "default".into());
                let api: Api<Event> = Api::namespaced(client, &namespace);
                ignore_not_found(
                    api.delete(&event.name_any(), &DeleteParams::default())
                        .await
                        .map(|_| ()),
                );
                Ok::<(), ()>(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

/// Panics on an error other than 404 (already gone counts as done).
fn ignore_not_found(result: kube::Result<()>) {
    match result {
        Ok(()) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => panic!("removing a leftover: {e}"),
    }
}

pub struct Harness {
    /// The test API server; absent in real-cluster mode (see [`TestServer`]).
    pub server: TestServer,
    pub client: Client,
    pub clock: Arc<ManualClock>,
    /// The running operator's metrics (a restarted operator starts with fresh ones).
    pub metrics: Arc<Metrics>,
    /// How to reach the API server (for the operator's clients).
    config: kube::Config,
    mode: Mode,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    operator: Option<tokio::task::JoinHandle<()>>,
    /// See [`Cluster::request_log`].
    audit_from: Option<u64>,
    /// The operator's client latency on a real cluster (see [`Harness::slow_down`]).
    latency: ClientLatency,
    /// The real-cluster lock, released when the harness is dropped.
    _exclusive: Option<std::fs::File>,
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

/// Latency added to every request of the in-process operator, after the server has answered:
/// on a real cluster, what the test API server's injected latency is on the test server. A
/// request interrupted by a kill may have taken effect without the operator knowing, as there.
#[derive(Clone, Default)]
pub struct ClientLatency(Arc<std::sync::Mutex<Duration>>);

impl ClientLatency {
    fn get(&self) -> Duration {
        *self.0.lock().unwrap()
    }

    fn set(&self, latency: Duration) {
        *self.0.lock().unwrap() = latency;
    }
}

/// The service of a client with [`ClientLatency`]: answers come `latency` late.
struct Delayed<S> {
    inner: S,
    latency: ClientLatency,
}

impl<S, R> tower::Service<R> for Delayed<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send,
    S::Error: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let answer = self.inner.call(request);
        let latency = self.latency.get();
        Box::pin(async move {
            let answer = answer.await;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            answer
        })
    }
}

/// The operator's client: User-Agent [`OPERATOR_AGENT`], answers delayed by `latency`, failed
/// requests counted in `metrics` as production's client counts them.
fn operator_client(
    config: &kube::Config,
    latency: &ClientLatency,
    metrics: &Arc<Metrics>,
) -> Client {
    let mut config = controller::client_config(config.clone());
    config.headers.push((
        "user-agent".parse().unwrap(),
        OPERATOR_AGENT.parse().unwrap(),
    ));
    let latency = latency.clone();
    kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&tower::layer::layer_fn(move |inner| Delayed {
            inner,
            latency: latency.clone(),
        }))
        .with_layer(&retention_operator::metrics::CountApiErrors::new(
            metrics.clone(),
        ))
        .build()
}

/// A client of the API server of `config` whose requests carry `agent` as User-Agent, so the
/// request log tells the operator's requests from the test's.
pub fn client_with_agent(config: &kube::Config, agent: &str) -> Client {
    let mut config = config.clone();
    config
        .headers
        .push(("user-agent".parse().unwrap(), agent.parse().unwrap()));
    Client::try_from(config).unwrap()
}

/// Starts the real operator in-process (with its own client of `config`), reading `clock`.
/// How the in-process operator runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    /// `Settings.dry_run`.
    pub dry_run: bool,
    /// On the system clock instead of the harness's manual one, which it then ignores: for
    /// behaviour that shows only while time moves on by itself between passes.
    pub system_clock: bool,
    /// The interval between two writes of a policy's brake count, instead of
    /// [`TEST_BRAKE_WRITE_INTERVAL`]: for the brake's own tests.
    pub brake_write_interval: Option<Duration>,
    /// `Settings.initial_lists`: how the caches fill (default: streaming lists where offered).
    pub initial_lists: controller::InitialLists,
}

/// The brake's write interval of tests that are not about the brake: none. Their manual clock
/// jumps make deletions fall due moments apart in real time, and each would wait out the
/// interval since the last write, after [`Harness::settle`] has already seen the operator idle
/// (a requeue is not a running reconcile). The brake's own tests run with the production
/// interval, the chaos campaign with a short one.
pub const TEST_BRAKE_WRITE_INTERVAL: Duration = Duration::ZERO;

fn spawn_operator(
    config: &kube::Config,
    clock: &Arc<ManualClock>,
    mode: Mode,
    latency: &ClientLatency,
) -> Operator {
    let metrics = Arc::new(Metrics::new());
    let client = operator_client(config, latency, &metrics);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (clock, clock_moves): (Arc<dyn retention_operator::clock::Clock>, _) = if mode.system_clock
    {
        (Arc::new(retention_operator::clock::SystemClock), None)
    } else {
        let moves: std::pin::Pin<Box<dyn futures::Stream<Item = ()> + Send>> =
            Box::pin(clock.moves());
        (clock.clone(), Some(moves))
    };
    let settings = Settings {
        clock,
        clock_moves,
        dry_run: mode.dry_run,
        concurrency: 4,
        advance_notice: ADVANCE_NOTICE,
        fence: Fence::unfenced(REQUEST_TIMEOUT),
        brake_write_interval: mode
            .brake_write_interval
            .unwrap_or(TEST_BRAKE_WRITE_INTERVAL),
        // The tests' HTTPS receivers listen on 127.0.0.1, which is refused unless allowed.
        webhook_allowed_networks: vec![LOOPBACK.parse().unwrap()],
        initial_lists: mode.initial_lists,
        shard: Default::default(),
    };
    let ready = Arc::new(AtomicBool::new(false));
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
        Self::start_in(now, PROJECT_CRDS, Mode::default()).await
    }

    /// Like [`Harness::start`], with the operator in dry-run mode (`Settings.dry_run`).
    pub async fn start_dry_run(now: DateTime<Utc>) -> Self {
        let mode = Mode {
            dry_run: true,
            ..Mode::default()
        };
        Self::start_in(now, PROJECT_CRDS, mode).await
    }

    /// Like [`Harness::start`], with the operator running as `mode` says.
    pub async fn start_mode(mode: Mode) -> Self {
        Self::start_in(Utc::now(), PROJECT_CRDS, mode).await
    }

    /// Like [`Harness::start`] at `now`, with the operator running as `mode` says.
    pub async fn start_at_in_mode(now: DateTime<Utc>, mode: Mode) -> Self {
        Self::start_in(now, PROJECT_CRDS, mode).await
    }

    /// Like [`Harness::start`], with the CRDs read from the directory `crds` instead of the
    /// project's `crds/`: for clusters whose CRDs differ from what this operator knows. On a
    /// real cluster, create what only those CRDs admit with [`create_once_admitted`].
    pub async fn start_with_crds(
        now: DateTime<Utc>,
        crds: impl AsRef<std::path::Path>,
        dry_run: bool,
    ) -> Self {
        let mode = Mode {
            dry_run,
            ..Mode::default()
        };
        Self::start_in(now, crds, mode).await
    }

    async fn start_in(now: DateTime<Utc>, crds: impl AsRef<std::path::Path>, mode: Mode) -> Self {
        let cluster = Cluster::connect_with_crds(crds).await;
        let clock = Arc::new(ManualClock::new(now));
        let latency = ClientLatency::default();
        let operator = spawn_operator(&cluster.config, &clock, mode, &latency);
        Self {
            server: cluster.server,
            client: cluster.client,
            clock,
            metrics: operator.metrics,
            config: cluster.config,
            mode,
            stop: Some(operator.stop),
            operator: Some(operator.task),
            audit_from: cluster.audit_from,
            latency,
            _exclusive: cluster._exclusive,
        }
    }

    /// The test API server, or `None` in real-cluster mode: for checks of the request log,
    /// faults and the event window that a test makes only where they are available.
    pub fn test_server(&self) -> Option<&TestApiServer> {
        self.server.get()
    }

    /// Makes every request of the operator take `latency` longer (zero: as fast as it can):
    /// the test API server's injected latency (for every client), or on a real cluster the
    /// operator's answers delayed by its own client. Either way a request cut short by a kill
    /// may have taken effect.
    pub fn slow_down(&self, latency: Duration) {
        match self.test_server() {
            Some(server) => server.update_faults(|faults| faults.latency = latency),
            None => self.latency.set(latency),
        }
    }

    /// The requests the server saw since the harness started: see [`Cluster::request_log`].
    pub fn request_log(&self) -> Option<request_log::RequestLog<'_>> {
        request_log_of(&self.server, self.audit_from, &self.client)
    }

    /// Whether the harness runs against a real cluster (`RETENTION_E2E_KUBECONFIG`).
    pub fn is_real_cluster(&self) -> bool {
        self.server.get().is_none()
    }

    /// Stops the operator (gracefully, like SIGTERM) and waits until it has stopped; the API
    /// server keeps running with everything stored.
    pub async fn stop_operator(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(operator) = self.operator.take() {
            tokio::time::timeout(deadline(), operator)
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
        let operator = spawn_operator(&self.config, &self.clock, self.mode, &self.latency);
        self.metrics = operator.metrics;
        self.stop = Some(operator.stop);
        self.operator = Some(operator.task);
    }

    /// Kills the operator wherever it is, as SIGKILL would (nothing in flight finishes, no
    /// status is written on the way out), then starts a new one against the same API server.
    pub async fn kill_and_restart_operator(&mut self) {
        self.stop = None;
        if let Some(operator) = self.operator.take() {
            operator.abort();
            let _ = operator.await;
        }
        let operator = spawn_operator(&self.config, &self.clock, self.mode, &self.latency);
        self.metrics = operator.metrics;
        self.stop = Some(operator.stop);
        self.operator = Some(operator.task);
    }

    /// Account reconciles started so far, read from the operator's own metrics.
    pub fn reconciles_started(&self) -> u64 {
        metric(
            &self.metrics,
            "retention_operator_reconciles_total{controller=\"account\"}",
        )
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
        let deadline = tokio::time::Instant::now() + deadline();
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

impl Drop for Harness {
    /// A harness dropped without [`Harness::stop`] (a failed test) aborts its operator, so it
    /// stops acting before the next test in real-cluster mode gets the cluster.
    fn drop(&mut self) {
        if let Some(operator) = &self.operator {
            operator.abort();
        }
    }
}

/// Account reconciles finished so far, read from an operator's metrics.
pub fn reconciles_finished(metrics: &Metrics) -> u64 {
    metric(
        metrics,
        "retention_operator_reconcile_duration_seconds_count{controller=\"account\"}",
    )
}

/// The value of the first sample whose line starts with `prefix` (0 when absent).
pub fn metric(metrics: &Metrics, prefix: &str) -> u64 {
    let text = metrics.encode().unwrap();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// API helpers shared by the scenarios; the object builders are `tests/support`'s, re-exported
// above.

/// Stores the signing key of [`processor`] `name` (with [`DataProcessorExt::webhook`]) in its
/// Secret. Applied, not created: on a
/// real cluster an earlier test's Secret may still be there.
pub async fn apply_signing_secret(client: &Client, name: &str, key: &[u8]) {
    let secret_name = format!("{name}-hmac");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        data: Some(std::collections::BTreeMap::from([(
            "secret".to_owned(),
            ByteString(key.to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .patch(
            &secret_name,
            &PatchParams::apply(TEST_AGENT).force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
}

/// Events with `reason`, in any namespace, as (regarding kind/name, related name, note).
pub async fn events(client: &Client, reason: &str) -> Vec<(String, String, String)> {
    Api::<Event>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| {
            let regarding = e.regarding.unwrap_or_default();
            (
                format!(
                    "{}/{}",
                    regarding.kind.unwrap_or_default(),
                    regarding.name.unwrap_or_default()
                ),
                e.related.and_then(|r| r.name).unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// An object of a kind known at compile time, of scope `S` ([`ClusterResourceScope`] or
/// [`NamespaceResourceScope`]), that the helpers below send and read.
pub trait StaticObject<S>:
    Resource<DynamicType = (), Scope = S> + Clone + Debug + Serialize + DeserializeOwned
{
}

impl<S, K> StaticObject<S> for K where
    K: Resource<DynamicType = (), Scope = S> + Clone + Debug + Serialize + DeserializeOwned
{
}

/// Creates a cluster-scoped object.
pub async fn create_cluster<K>(client: &Client, object: &K) -> K
where
    K: StaticObject<ClusterResourceScope>,
{
    Api::<K>::all(client.clone())
        .create(&PostParams::default(), object)
        .await
        .unwrap()
}

/// Creates an object in [`NAMESPACE`].
pub async fn create<K>(client: &Client, object: &K) -> K
where
    K: StaticObject<NamespaceResourceScope>,
{
    Api::<K>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), object)
        .await
        .unwrap()
}

/// The object in [`NAMESPACE`], or `None` when it is gone. Panics on other errors.
pub async fn get<K>(client: &Client, name: &str) -> Option<K>
where
    K: StaticObject<NamespaceResourceScope>,
{
    Api::<K>::namespaced(client.clone(), NAMESPACE)
        .get_opt(name)
        .await
        .unwrap()
}

/// Whether the object in [`NAMESPACE`] is gone (404).
pub async fn gone<K>(client: &Client, name: &str) -> bool
where
    K: StaticObject<NamespaceResourceScope>,
{
    get::<K>(client, name).await.is_none()
}

/// The delete-at annotation of the object in [`NAMESPACE`] (`None` also when it is gone).
pub async fn delete_at<K>(client: &Client, name: &str) -> Option<String>
where
    K: StaticObject<NamespaceResourceScope>,
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
pub async fn get_account(client: &Client, name: &str) -> Option<Account> {
    Api::<Account>::all(client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

/// The Account's status.phase.
pub async fn phase(client: &Client, name: &str) -> Option<AccountPhase> {
    get_account(client, name).await?.status?.phase
}

/// Waits until the Account's phase is `expected`.
pub async fn wait_phase(client: &Client, name: &str, expected: AccountPhase) {
    let reached = tokio::time::timeout(deadline(), async {
        while phase(client, name).await != Some(expected) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if reached.is_err() {
        // The Account as stored (spec, generation, status, field managers) tells why.
        let stored = get_account(client, name).await;
        panic!("timed out waiting for phase {expected:?} of account {name}; it is {stored:#?}");
    }
}

/// JSON-merge-patches the Account's spec (or anything else in `patch`).
pub async fn patch_account(client: &Client, name: &str, patch: serde_json::Value) -> Account {
    Api::<Account>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap()
}

/// A copy of the project's CRDs with `edit` applied to the text of `file`, in a directory of its
/// own (`name` tells copies apart): for clusters whose CRDs differ from this operator's.
pub fn crds_edited(name: &str, file: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let target =
        std::env::temp_dir().join(format!("retention-e2e-crds-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(PROJECT_CRDS).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == file {
            let edited = edit(&text);
            assert_ne!(edited, text, "the edit changed nothing in {file}");
            text = edited;
        }
        std::fs::write(target.join(path.file_name().unwrap()), text).unwrap();
    }
    target
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

/// Stops the operator's cache of `resource` from learning: every request of each of `verbs`
/// (`watch`, and `list` to keep a relist from catching up) on it is refused, besides
/// `other_faults` (which replace any faults set before), and the open watches are ended. It
/// returns once one of those requests was refused: ending watches is asynchronous, and only
/// then has the old stream surely stopped delivering.
pub async fn freeze_operator_cache(
    server: &TestApiServer,
    log: &mut request_log::RequestLog<'_>,
    resource: &str,
    verbs: &[&str],
    other_faults: Vec<test_apiserver::FaultRule>,
) {
    log.clear();
    server.update_faults(|f| {
        f.rules = other_faults;
        f.rules.extend(verbs.iter().map(|verb| {
            test_apiserver::FaultRule::always(500)
                .verb(verb)
                .resource(resource)
        }));
    });
    server.end_watches();
    log.eventually(
        &format!("the operator's {resource} watch refused"),
        |requests| {
            requests
                .iter()
                .any(|r| {
                    r.user_agent == OPERATOR_AGENT
                        && r.resource == resource
                        && verbs.contains(&r.verb.as_str())
                        && r.code == 500
                })
                .then_some(())
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Replicas electing a leader, as separate processes would (each with its own client).

/// One replica of the operator running under leader election (lease `retention-operator` in
/// `default`, 3 s, so a hand-over takes seconds on a real cluster too).
pub struct Replica {
    pub clock: Arc<ManualClock>,
    pub metrics: Arc<Metrics>,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

/// The Lease settings of a test replica: `lease` in `default`, 3 s, so a hand-over takes
/// seconds on a real cluster too.
fn replica_lease(lease: &str, identity: &str) -> retention_operator::leader::LeaderSettings {
    retention_operator::leader::LeaderSettings {
        lease_name: lease.into(),
        namespace: "default".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
    }
}

/// The controller of a test replica acting for `shard` behind `fence`, on `clock`.
fn replica_controller(
    client: Client,
    clock: &Arc<ManualClock>,
    metrics: &Arc<Metrics>,
    shard: retention_operator::shard::Shard,
    stop: retention_operator::leader::StopSignal,
    fence: retention_operator::leader::Fence,
) -> impl Future<Output = ()> + use<> {
    let settings = Settings {
        clock: clock.clone(),
        clock_moves: Some(Box::pin(clock.moves())),
        dry_run: false,
        concurrency: 2,
        advance_notice: ADVANCE_NOTICE,
        fence,
        webhook_allowed_networks: Vec::new(),
        initial_lists: Default::default(),
        shard,
        brake_write_interval: controller::brake::WRITE_SPACING,
    };
    let ready = Arc::new(AtomicBool::new(false));
    controller::run(client, settings, metrics.clone(), ready, stop)
}

impl Replica {
    /// Starts a replica named `identity` on `clock`.
    pub fn start(client: &Client, identity: &str, clock: Arc<ManualClock>) -> Self {
        let settings = replica_lease(LEASE, identity);
        let client = client.clone();
        Self::spawn(clock, move |clock, metrics, stopped| async move {
            let work_client = client.clone();
            retention_operator::leader::run_as_leader(
                client,
                &settings,
                stopped,
                move |stop, fence| {
                    replica_controller(
                        work_client,
                        &clock,
                        &metrics,
                        Default::default(),
                        stop,
                        fence,
                    )
                },
            )
            .await
            .unwrap();
        })
    }

    /// Starts a replica named `identity` on `clock` that shares `shards` shards with the others
    /// of the Lease name `lease` (each shard a Lease `<lease>-<i>-of-<shards>` in `default`,
    /// 3 s like [`Replica::start`]'s).
    pub fn start_sharded(
        client: &Client,
        identity: &str,
        clock: Arc<ManualClock>,
        lease: &str,
        shards: u32,
    ) -> Self {
        let settings = replica_lease(lease, identity);
        let client = client.clone();
        Self::spawn(clock, move |clock, metrics, stopped| async move {
            let work = |shard, stop, fence| {
                replica_controller(client.clone(), &clock, &metrics, shard, stop, fence)
            };
            retention_operator::leader::shards::run_shards(
                client.clone(),
                &settings,
                shards,
                stopped,
                work,
            )
            .await
            .unwrap();
        })
    }

    /// Spawns `run` with the replica's clock, metrics and stop signal.
    fn spawn<F, Fut>(clock: Arc<ManualClock>, run: F) -> Self
    where
        F: FnOnce(Arc<ManualClock>, Arc<Metrics>, tokio::sync::watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(clock.clone(), metrics.clone(), stopped));
        Self {
            clock,
            metrics,
            stop,
            task,
        }
    }

    /// Kills the replica wherever it is, without releasing the lease.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Stops the replica gracefully.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Waits until no reconcile of this replica is running and none started or finished over
    /// two polls in a row (200 ms apart).
    pub async fn settle(&self) {
        let started = || {
            metric(
                &self.metrics,
                "retention_operator_reconciles_total{controller=\"account\"}",
            )
        };
        let mut last = None;
        eventually("the replica to settle", || {
            let snapshot = (started(), reconciles_finished(&self.metrics));
            let settled = snapshot.1 >= snapshot.0 && last == Some(snapshot);
            last = Some(snapshot);
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                settled.then_some(())
            }
        })
        .await;
    }
}

/// The leader-election Lease of [`Replica`]s.
pub const LEASE: &str = "retention-operator";

/// The holder of the [`LEASE`].
pub async fn lease_holder(client: &Client) -> Option<String> {
    let lease =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), "default")
            .get_opt(LEASE)
            .await
            .ok()??;
    lease.spec?.holder_identity
}

/// The holder of each shard's Lease of `shards` under the base name `lease` (in `default`).
pub async fn shard_holders(client: &Client, lease: &str, shards: u32) -> Vec<Option<String>> {
    let leases =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), "default");
    let mut holders = Vec::new();
    for shard in retention_operator::shard::Shard::all(shards) {
        let holder = leases
            .get_opt(&shard.lease_name(lease))
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty());
        holders.push(holder);
    }
    holders
}

/// Deletes every Lease whose name starts with `prefix` in `default`: the shard and membership
/// Leases an earlier run left on a real cluster.
pub async fn delete_leases(client: &Client, prefix: &str) {
    let leases =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), "default");
    for lease in leases.list(&ListParams::default()).await.unwrap().items {
        let name = lease.metadata.name.unwrap_or_default();
        if name.starts_with(prefix) {
            match leases.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => panic!("deleting the old lease {name}: {e}"),
            }
        }
    }
}

/// Deletes a [`LEASE`] an earlier run left on a real cluster (it would name a holder before
/// any replica has run).
pub async fn delete_lease(client: &Client) {
    match Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), "default")
        .delete(LEASE, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => panic!("deleting the old lease: {e}"),
    }
}
