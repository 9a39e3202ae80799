//! An in-memory Kubernetes API server for tests and benchmarks.
//!
//! It speaks the Kubernetes REST protocol over plain HTTP on loopback, so kube's `Client`,
//! watcher, reflector and `Controller`, and kubectl, run against it unmodified. See README.md
//! for what it implements and where it knowingly differs from kube-apiserver.
//!
//! ```no_run
//! # async fn demo() -> Result<(), test_apiserver::StartError> {
//! let server = test_apiserver::TestApiServer::start(
//!     test_apiserver::Config::default().crds("crds/"),
//! )
//! .await?;
//! println!("serving on {}", server.url());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod apply;
pub mod crd;
pub mod exchange_log;
pub mod faults;
mod go_fmt;
pub mod registry;
pub mod request_log;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod validation;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use serde_json::json;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use exchange_log::Exchange;
pub use faults::{FaultCount, FaultRule, Faults, Injected};
pub use request_log::RequestRecord;

use crate::{
    registry::{Registry, RegistryError},
    server::{ServerState, lock},
    store::{Store, WriteOptions},
};

/// How to start a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Files or directories of CRD YAML to serve.
    pub crd_paths: Vec<PathBuf>,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Watch events retained for resuming watches; older resourceVersions get 410 Gone.
    pub event_window: usize,
    /// How often watches that allow bookmarks receive one.
    pub bookmark_interval: Duration,
    /// The longest a watch stays open.
    pub max_watch: Duration,
    /// Serve streaming lists (`sendInitialEvents`); without, such a watch is refused with 422
    /// as by a kube-apiserver whose WatchList feature is off.
    pub streaming_lists: bool,
    /// Namespaces that exist from the start.
    pub namespaces: Vec<String>,
    /// Keep the exchange log (every request with its bodies): see [`Exchange`].
    pub record_exchanges: bool,
    /// The seed of the generator that decides which requests a fault rule hits (`None`: a
    /// random one).
    pub fault_seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            crd_paths: Vec::new(),
            port: 0,
            event_window: 10_000,
            bookmark_interval: Duration::from_secs(1),
            max_watch: Duration::from_secs(1800),
            streaming_lists: true,
            namespaces: vec!["default".into(), "kube-system".into()],
            record_exchanges: false,
            fault_seed: None,
        }
    }
}

impl Config {
    /// Adds a file or directory of CRDs.
    pub fn crds(mut self, path: impl AsRef<Path>) -> Self {
        self.crd_paths.push(path.as_ref().to_owned());
        self
    }

    /// Sets the retained event window.
    pub fn event_window(mut self, window: usize) -> Self {
        self.event_window = window;
        self
    }

    /// Sets the bookmark interval.
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// Refuses streaming lists, as a kube-apiserver whose WatchList feature is off does.
    pub fn without_streaming_lists(mut self) -> Self {
        self.streaming_lists = false;
        self
    }

    /// Adds namespaces that exist from the start.
    pub fn namespace(mut self, name: &str) -> Self {
        self.namespaces.push(name.to_owned());
        self
    }

    /// Keeps the exchange log (see [`TestApiServer::exchanges`]).
    pub fn record_exchanges(mut self) -> Self {
        self.record_exchanges = true;
        self
    }

    /// Seeds the generator that decides which requests fault rules hit.
    pub fn fault_seed(mut self, seed: u64) -> Self {
        self.fault_seed = Some(seed);
        self
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The CRDs could not be loaded.
    #[error(transparent)]
    Crds(#[from] RegistryError),
    /// The port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    /// A start-up object could not be created.
    #[error("cannot create {what}: {message}")]
    Seed { what: String, message: String },
}

/// A running server. Dropping it stops it.
pub struct TestApiServer {
    state: Arc<ServerState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApiServer {
    /// Loads the CRDs, binds 127.0.0.1 and starts serving.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let mut registry = Registry::with_builtins();
        for path in &config.crd_paths {
            registry.load_crds(path)?;
        }
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| StartError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            port: config.port,
            source,
        })?;
        let mut store = Store::new(config.event_window);
        seed(&mut store, &registry, &config)?;
        // The seeded CRDs now carry their accepted names and conditions: serve from them, as
        // for CRDs created later.
        if store.take_crds_changed() {
            registry.sync_crds(&store.crds());
        }
        let state = Arc::new(ServerState {
            registry: RwLock::new(registry),
            store: Mutex::new(store),
            faults: Mutex::new(Faults::default()),
            requests: Mutex::new(Vec::new()),
            exchanges: config.record_exchanges.then(|| Mutex::new(Vec::new())),
            fault_rng: Mutex::new(
                config
                    .fault_seed
                    .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            ),
            fault_counters: Arc::new(faults::FaultCounters::default()),
            bookmark_interval: config.bookmark_interval,
            max_watch: config.max_watch,
            streaming_lists: config.streaming_lists,
            addr,
            watch_generation: tokio::sync::watch::channel(0).0,
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(state.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "test-apiserver stopped");
            }
        });
        Ok(Self {
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// A kubeconfig that points kubectl or kube at the server.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url())
    }

    /// Changes the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    /// Edits the faults in force.
    pub fn update_faults(&self, edit: impl FnOnce(&mut Faults)) {
        edit(&mut lock(&self.state.faults));
    }

    /// Ends every open watch stream, as a network blip or a restart of kube-apiserver does:
    /// clients watch again from the last resourceVersion they saw.
    pub fn end_watches(&self) {
        self.state
            .watch_generation
            .send_modify(|generation| *generation += 1);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.set_faults(Faults::default());
    }

    /// Changes how many watch events are retained, compacting at once: watches resuming from
    /// an older resourceVersion get 410 Gone.
    pub fn set_event_window(&self, window: usize) {
        lock(&self.state.store).set_window(window);
    }

    /// The store's latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.state.store).resource_version()
    }

    /// Number of stored objects.
    pub fn object_count(&self) -> usize {
        lock(&self.state.store).len()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state.requests).clone()
    }

    /// The exchange log so far, from position `from` on (empty unless the server was started
    /// with [`Config::record_exchanges`]).
    pub fn exchanges(&self, from: usize) -> Vec<Exchange> {
        self.state
            .exchanges
            .as_ref()
            .map(|log| lock(log).get(from..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// How many faults were injected so far.
    pub fn fault_count(&self) -> FaultCount {
        self.state.fault_counters.snapshot()
    }

    /// Forgets the requests answered so far.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }

    /// Stops serving and waits until the listener is closed.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A kubeconfig for a server at `url`, with namespace `default`.
pub fn kubeconfig(url: &str) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test-apiserver", "cluster": {"server": url}}],
        "users": [{"name": "test-apiserver", "user": {}}],
        "contexts": [{"name": "test-apiserver",
                      "context": {"cluster": "test-apiserver", "user": "test-apiserver", "namespace": "default"}}],
        "current-context": "test-apiserver",
    });
    // JSON is YAML; kubectl and kube read it.
    format!("{config:#}\n")
}

fn seed(store: &mut Store, registry: &Registry, config: &Config) -> Result<(), StartError> {
    let options = WriteOptions {
        field_manager: Some("test-apiserver".into()),
        ..WriteOptions::default()
    };
    let seed_error = |what: String| {
        move |e: status::ApiError| StartError::Seed {
            what,
            message: e.message,
        }
    };
    if let Some(namespaces) = registry.find("", "v1", "namespaces") {
        for name in &config.namespaces {
            let object = json!({"metadata": {"name": name}});
            store
                .create(&namespaces, None, object, &options)
                .map_err(seed_error(format!("namespace {name}")))?;
        }
    }
    if let Some(crds) = registry.find("apiextensions.k8s.io", "v1", "customresourcedefinitions") {
        for crd in registry.crds() {
            let name = crd
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_owned();
            store
                .create(&crds, None, crd.clone(), &options)
                .map_err(seed_error(format!("CRD {name}")))?;
        }
    }
    Ok(())
}
