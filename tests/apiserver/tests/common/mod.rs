//! Shared by the integration tests: where they run (a [`TestApiServer`] with the fixture CRDs,
//! or the real cluster of `RETENTION_E2E_KUBECONFIG`), each test's own namespace, and polling.
//!
//! Real-server mode: with `RETENTION_E2E_KUBECONFIG=PATH` (not empty), no test server is
//! started. The client comes from that kubeconfig; the fixture CRDs (group test.example.com,
//! which belongs to these tests) are installed by server-side apply and waited for once per
//! test process. Each test creates its own namespaces (its name and a random suffix) and gives
//! cluster-scoped objects unique names ([`Target::unique`]), so the tests of one binary run in
//! parallel on one cluster. Namespaces are never deleted: without kube-controller-manager they
//! would stay Terminating. Tests that need what only the test server has (faults, the request
//! log, its event window or Config) skip with [`skip_on_real_server!`] or guard those checks
//! with [`Target::test_server`].
#![allow(dead_code)]

use std::{
    future::Future,
    io::Write,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::Duration,
};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, CustomResource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use test_apiserver::{Config, TestApiServer};

/// The fixture `Widget`, typed with the fields the tests set.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.example.com",
    version = "v1",
    kind = "Widget",
    namespaced
)]
pub struct WidgetSpec {
    pub owner: String,
    pub size: i64,
}

/// The fixture `Gadget` (cluster-scoped), typed.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(group = "test.example.com", version = "v1", kind = "Gadget")]
pub struct GadgetSpec {
    pub level: i64,
}

/// The fixture CRDs (`Widget`, namespaced with a status subresource; `Gadget`, cluster-scoped).
pub const FIXTURE_CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crds.yaml");

/// The environment variable naming the kubeconfig of a real cluster to run against.
pub const KUBECONFIG_ENV: &str = "RETENTION_E2E_KUBECONFIG";

/// The field manager of the fixture CRDs installed on a real cluster.
const FIELD_MANAGER: &str = "test-apiserver-conformance";

/// The kubeconfig of the real server the tests run against (`RETENTION_E2E_KUBECONFIG`, when
/// set and not empty), or `None` for the in-memory test server. The one place that decides.
pub fn real_server() -> Option<&'static Path> {
    static KUBECONFIG: OnceLock<Option<PathBuf>> = OnceLock::new();
    KUBECONFIG
        .get_or_init(|| {
            std::env::var_os(KUBECONFIG_ENV)
                .filter(|path| !path.is_empty())
                .map(PathBuf::from)
        })
        .as_deref()
}

/// How long a wait for something asynchronous may take: longer on a real server, whose CRD
/// controllers, watch cache and finalizers work after the request that starts them returns.
pub fn deadline() -> Duration {
    if real_server().is_some() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    }
}

/// In real-server mode, prints why the test is skipped (one line on stderr) and returns true;
/// otherwise returns false. Prefer the [`skip_on_real_server!`] macro, which also returns.
pub fn skipping_on_real_server(why: &str) -> bool {
    let Some(kubeconfig) = real_server() else {
        return false;
    };
    // To the process's stderr directly: libtest captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "{} skipped on the real server of {KUBECONFIG_ENV}={}: {why}",
        // libtest names each test's thread after the test.
        std::thread::current().name().unwrap_or("a test"),
        kubeconfig.display()
    );
    true
}

/// `skip_on_real_server!("needs the request log")` at the top of a test: in real-server mode
/// the test returns (passes) at once, with the reason on stderr, before touching the server.
#[allow(unused_macros)]
macro_rules! skip_on_real_server {
    ($why:expr) => {
        if common::skipping_on_real_server($why) {
            return common::Skip::skip();
        }
    };
}
#[allow(unused_imports)]
pub(crate) use skip_on_real_server;

/// What a skipped test returns: `()`, or `Ok(())` for a test returning a `Result`.
pub trait Skip {
    fn skip() -> Self;
}

impl Skip for () {
    fn skip() {}
}

impl<E> Skip for Result<(), E> {
    fn skip() -> Self {
        Ok(())
    }
}

/// Where a test runs: the test server (kept alive as long as this) or the real server, a
/// client for it, and the test's own namespace.
pub struct Target {
    server: Option<TestApiServer>,
    pub client: kube::Client,
    config: kube::Config,
    namespace: String,
    suffix: String,
}

impl Target {
    /// The test server, or `None` on the real server.
    pub fn test_server(&self) -> Option<&TestApiServer> {
        self.server.as_ref()
    }

    /// The test server; panics on the real server (skip the test there instead).
    pub fn server(&self) -> &TestApiServer {
        self.server.as_ref().unwrap_or_else(|| {
            panic!(
                "this test uses the test server, which real-server mode ({KUBECONFIG_ENV}) does \
                 not have: skip it with skip_on_real_server! or guard with test_server()"
            )
        })
    }

    pub fn is_real(&self) -> bool {
        self.server.is_none()
    }

    /// This test's namespace, created by [`start`].
    pub fn ns(&self) -> &str {
        &self.namespace
    }

    /// Creates another namespace of this test, `<ns>-<tag>`, and returns its name.
    pub async fn extra_namespace(&self, tag: &str) -> String {
        let name = format!("{}-{tag}", self.namespace);
        create_namespace(&self.client, &name).await;
        name
    }

    /// `name` made unique to this test, for cluster-scoped objects and CRD groups.
    pub fn unique(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    /// The random suffix of this test's names.
    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    /// A new client whose requests carry `agent` as User-Agent.
    pub fn client_with_agent(&self, agent: &str) -> kube::Client {
        let mut config = self.config.clone();
        config.headers.push((
            "user-agent".parse().expect("a header name"),
            agent.parse().expect("a header value"),
        ));
        kube::Client::try_from(config).expect("a client")
    }

    /// A new client that does not retry 429, 503 and 504 (kube retries them by default).
    pub fn client_without_retries(&self) -> kube::Client {
        let mut config = self.config.clone();
        config.default_retry = false;
        kube::Client::try_from(config).expect("a client")
    }
}

/// The test server with the fixture CRDs, or the real server; and a new namespace for the test.
pub async fn start() -> Target {
    start_with(Config::default()).await
}

/// Like [`start`], the test server started from `config` plus the fixture CRDs. On the real
/// server `config` is not used: a test whose `config` matters skips there or guards.
pub async fn start_with(config: Config) -> Target {
    let (server, config) = match real_server() {
        None => {
            let server = TestApiServer::start(config.crds(FIXTURE_CRDS))
                .await
                .expect("the test server starts");
            let url = server.url().parse().expect("the server URL parses");
            (Some(server), kube::Config::new(url))
        }
        Some(kubeconfig) => (None, real_config(kubeconfig).await),
    };
    let client = kube::Client::try_from(config.clone()).expect("a client");
    if server.is_none() {
        install_fixture_crds(&client).await;
    }
    let suffix = random_suffix();
    let namespace = format!("{}-{suffix}", test_name_label());
    create_namespace(&client, &namespace).await;
    Target {
        server,
        client,
        config,
        namespace,
        suffix,
    }
}

async fn real_config(kubeconfig: &Path) -> kube::Config {
    let read = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("{KUBECONFIG_ENV}={}: {e}", kubeconfig.display()));
    kube::Config::from_custom_kubeconfig(read, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{KUBECONFIG_ENV}={}: {e}", kubeconfig.display()))
}

/// Six random lowercase letters and digits.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..6)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// The running test's name (libtest names its thread after it) as a DNS label prefix of at
/// most 40 characters.
fn test_name_label() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("test");
    let last = name.rsplit("::").next().unwrap_or(name);
    let mut label: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    while label.ends_with('-') {
        label.pop();
    }
    if label.is_empty() || !label.starts_with(|c: char| c.is_ascii_alphabetic()) {
        label.insert(0, 't');
    }
    label
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// The fixture CRDs as parsed from [`FIXTURE_CRDS`].
pub fn fixture_crds() -> Vec<CustomResourceDefinition> {
    let text = std::fs::read_to_string(FIXTURE_CRDS).expect("the fixture CRDs are readable");
    text.split("\n---\n")
        .filter(|document| document.lines().any(|l| l.starts_with("kind:")))
        .map(|document| {
            serde_saphyr::from_str(document).unwrap_or_else(|e| panic!("{FIXTURE_CRDS}: {e}"))
        })
        .collect()
}

/// Installs or updates the fixture CRDs on the real server (server-side apply, forced: the
/// group is these tests'), then waits until each is established. Once per test process.
async fn install_fixture_crds(client: &kube::Client) {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            let apply = PatchParams::apply(FIELD_MANAGER).force();
            for crd in fixture_crds() {
                let name = crd.name_any();
                crds.patch(&name, &apply, &Patch::Apply(&crd))
                    .await
                    .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
            }
            for crd in fixture_crds() {
                let name = crd.name_any();
                wait_established(client, &name).await;
            }
        })
        .await;
}

/// Waits until the CRD `name` is established.
pub async fn wait_established(client: &kube::Client, name: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let established = kube::runtime::wait::await_condition(
        crds,
        name,
        kube::runtime::wait::conditions::is_crd_established(),
    );
    tokio::time::timeout(deadline(), established)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for CRD {name} to be established"))
        .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
}

/// Polls `check` every 50 ms until it returns `Some`, failing with `what` after [`deadline`].
/// On the test server, which does everything inside the request, the first check holds.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let limit = deadline();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Test server only (fault tests): a server with the fixture CRDs and a client that does not
/// retry, so a test sees every injected 429 and 503 (kube retries them by default).
pub async fn start_without_retries() -> (TestApiServer, kube::Client) {
    let server = TestApiServer::start(Config::default().crds(FIXTURE_CRDS))
        .await
        .expect("the test server starts");
    let mut config = kube::Config::new(server.url().parse().expect("the server URL parses"));
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("a client for the test server");
    (server, client)
}
