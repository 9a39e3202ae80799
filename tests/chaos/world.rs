//! The system under test: an API server (the test server with its exchange log, or the real
//! control plane with its audit log), two replicas of the real operator electing a leader over
//! one Lease and reading the campaign's clock, and an HTTPS receiver per processor.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Seek, SeekFrom},
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use retention_operator::{
    clock::ManualClock,
    controller::{self, Settings},
    leader::{LeaderSettings, run_as_leader, shards::run_shards},
    metrics::Metrics,
    shard::Shard,
};
use test_apiserver::{Config, Exchange, TestApiServer};
use tokio::{sync::watch, task::JoinHandle};

use crate::e2e_support::{
    self, Cluster, LOOPBACK, NAMESPACE, PROJECT_CRDS, client_with_agent as agent_client,
};
use crate::oracle::CLOCK_MARK_PREFIX;
use crate::receiver::{Pki, Receiver, Reply, loopback_pki};

/// The User-Agent prefix (and identity prefix) of the operator's replicas.
pub const REPLICA_AGENT: &str = "chaos-replica-";
/// The User-Agent of the campaign's own requests: the account system, staff, the platform.
pub const DRIVER_AGENT: &str = "chaos-driver";
/// The Lease the replicas elect a leader with.
pub const LEASE: &str = "retention-operator-chaos";
/// Lease timing: short, so that a killed leader is replaced within seconds. The longest request
/// is then lease duration − renew deadline = 1 s.
const LEASE_DURATION: Duration = Duration::from_secs(3);
const RENEW_DEADLINE: Duration = Duration::from_secs(2);
const RETRY_PERIOD: Duration = Duration::from_millis(500);

/// One replica slot: the running incarnation, if any.
struct Replica {
    name: &'static str,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

/// Where the history comes from.
enum HistorySource {
    TestServer(TestApiServer),
    /// kube-apiserver's audit log (level RequestResponse for the project's group and Leases),
    /// read from this byte offset on.
    AuditLog {
        path: PathBuf,
        offset: u64,
    },
}

pub struct World {
    source: HistorySource,
    config: kube::Config,
    /// The campaign's client (User-Agent [`DRIVER_AGENT`]).
    pub client: Client,
    pub clock: Arc<ManualClock>,
    replicas: Vec<Replica>,
    /// Receivers by processor name.
    pub receivers: BTreeMap<String, Receiver>,
    pub pki: Pki,
    /// The campaign's seed, in every log line of its replicas (`replica{campaign=…}`).
    seed: u64,
    /// The shards the replicas divide the accounts over (1: one leader).
    shards: u32,
    /// Kept for the real cluster's exclusive lock.
    _cluster: Option<Cluster>,
}

impl World {
    /// Starts the API server (or connects to the real one of `RETENTION_E2E_KUBECONFIG`) and
    /// sets the clock to `start`. No operator runs yet.
    pub async fn start(seed: u64, shards: u32, start: DateTime<Utc>) -> Self {
        let (source, config, cluster) = match e2e_support::real_cluster() {
            None => {
                let server = TestApiServer::start(
                    Config::default()
                        .crds(PROJECT_CRDS)
                        .namespace(NAMESPACE)
                        .record_exchanges()
                        .fault_seed(seed)
                        // Rare bookmarks: a watch cut during a burst of writes resumes from a
                        // resourceVersion the small event window of a watch-cut episode has
                        // compacted, and gets 410 Gone.
                        .bookmark_interval(Duration::from_secs(20)),
                )
                .await
                .unwrap();
                let config = kube::Config::new(server.url().parse().unwrap());
                (HistorySource::TestServer(server), config, None)
            }
            Some(_) => {
                let cluster = Cluster::connect().await;
                let path = e2e_support::request_log::audit_log().expect(
                    "the campaign on a real cluster needs its audit log beside the kubeconfig \
                     (.ci/control-plane start with RETENTION_CONTROL_PLANE_AUDIT=bodies)",
                );
                let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let config = cluster.config().clone();
                (
                    HistorySource::AuditLog { path, offset },
                    config,
                    Some(cluster),
                )
            }
        };
        let client = agent_client(&config, DRIVER_AGENT);
        let clock = Arc::new(ManualClock::new(start));
        Self {
            source,
            config,
            client,
            clock,
            replicas: ["a", "b"]
                .into_iter()
                .map(|name| Replica {
                    name,
                    stop: None,
                    task: None,
                    metrics: Arc::new(Metrics::new()),
                })
                .collect(),
            receivers: BTreeMap::new(),
            pki: loopback_pki(),
            seed,
            shards,
            _cluster: cluster,
        }
    }

    /// The test API server, when the campaign runs on it.
    pub fn test_server(&self) -> Option<&TestApiServer> {
        match &self.source {
            HistorySource::TestServer(server) => Some(server),
            HistorySource::AuditLog { .. } => None,
        }
    }

    /// Starts an HTTPS receiver for a processor.
    pub async fn add_receiver(&mut self, processor: &str) -> String {
        let receiver = Receiver::start(&self.pki, Reply::Status(200)).await;
        let url = receiver.url();
        self.receivers.insert(processor.to_owned(), receiver);
        url
    }

    /// Marks the instant in the history with mark number `mark`, then sets the clock: every
    /// request logged after the mark may have been decided at `now` (or before).
    pub async fn set_clock(&self, mark: usize, now: DateTime<Utc>) {
        let marker: Api<ConfigMap> = Api::namespaced(self.client.clone(), "default");
        // A GET of a ConfigMap that does not exist: logged by either server, changes nothing.
        // Retried: the mark must be in the history before the clock moves.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            match marker.get_opt(&format!("{CLOCK_MARK_PREFIX}{mark}")).await {
                Ok(_) => break,
                Err(error) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "clock mark {mark}: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.clock.set(now);
    }

    /// The history from position `from` on (positions count exchanges of this campaign).
    pub fn history(&mut self, from: usize, buffer: &mut Vec<Exchange>) {
        match &mut self.source {
            HistorySource::TestServer(server) => buffer.extend(server.exchanges(from)),
            HistorySource::AuditLog { path, offset } => {
                let Ok(mut file) = std::fs::File::open(&*path) else {
                    return;
                };
                if file.seek(SeekFrom::Start(*offset)).is_err() {
                    return;
                }
                let mut reader = BufReader::new(file);
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if !line.ends_with('\n') {
                                // A line still being written: read it next time.
                                break;
                            }
                            *offset += n as u64;
                            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                                continue;
                            };
                            if event["stage"] == "ResponseComplete" {
                                buffer.push(Exchange::from_audit_event(&event));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Starts replica `index` (if it is not running).
    pub fn start_replica(&mut self, index: usize) {
        let replica = &mut self.replicas[index];
        if replica.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let identity = format!("{REPLICA_AGENT}{}", replica.name);
        let client = agent_client(&controller::client_config(self.config.clone()), &identity);
        let (stop, stopped) = watch::channel(false);
        let metrics = Arc::new(Metrics::new());
        let settings = LeaderSettings {
            lease_name: LEASE.into(),
            namespace: "default".into(),
            identity,
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry_period: RETRY_PERIOD,
        };
        let (clock, run_metrics, shards) = (self.clock.clone(), metrics.clone(), self.shards);
        let span = tracing::info_span!("replica", campaign = self.seed, name = replica.name);
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let work_client = client.clone();
                let work = move |shard: Shard, stop, fence| {
                    let settings = Settings {
                        clock: clock.clone(),
                        clock_moves: Some(Box::pin(clock.moves())),
                        dry_run: false,
                        concurrency: 4,
                        advance_notice: e2e_support::ADVANCE_NOTICE,
                        fence,
                        webhook_allowed_networks: vec![LOOPBACK.parse().unwrap()],
                        initial_lists: Default::default(),
                        shard,
                        // Short, so that deletions do wait for the brake's next write now
                        // and then, without slowing the campaign down much.
                        brake_write_interval: std::time::Duration::from_millis(500),
                    };
                    let ready = Arc::new(AtomicBool::new(false));
                    controller::run(
                        work_client.clone(),
                        settings,
                        run_metrics.clone(),
                        ready,
                        stop,
                    )
                };
                if shards > 1 {
                    // A replica that loses a shard's lease mid-run hands it back and goes on;
                    // one that cannot renew its membership exits, as its pod would restart.
                    let _ = run_shards(client, &settings, shards, stopped, work).await;
                } else {
                    let _ = run_as_leader(client, &settings, stopped, move |stop, fence| {
                        work(Shard::WHOLE, stop, fence)
                    })
                    .await;
                }
            },
            span,
        ));
        replica.stop = Some(stop);
        replica.task = Some(task);
        replica.metrics = metrics;
    }

    /// Kills replica `index` wherever it is, as SIGKILL would: nothing in flight finishes, the
    /// lease is not released.
    pub async fn kill_replica(&mut self, index: usize) {
        let replica = &mut self.replicas[index];
        replica.stop = None;
        if let Some(task) = replica.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Restarts every replica that is not running (after a kill, or after leadership was lost:
    /// a replica that loses the lease exits, and its pod would restart it).
    pub fn revive(&mut self) {
        for index in 0..self.replicas.len() {
            self.start_replica(index);
        }
    }

    /// Stops every replica gracefully (killing one that does not stop within 20 s).
    pub async fn stop_replicas(&mut self) {
        for replica in &mut self.replicas {
            if let Some(stop) = replica.stop.take() {
                let _ = stop.send(true);
            }
            if let Some(mut task) = replica.task.take()
                && tokio::time::timeout(Duration::from_secs(20), &mut task)
                    .await
                    .is_err()
            {
                task.abort();
            }
        }
    }

    /// Restarts `component` of the real control plane (`etcd` or `apiserver`) with
    /// `.ci/control-plane`; false on the test server, which has neither.
    pub fn restart_control_plane(&self, component: &str) -> bool {
        let Some(kubeconfig) = e2e_support::real_cluster() else {
            return false;
        };
        let Some(run) = kubeconfig.parent() else {
            return false;
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/control-plane");
        let status = std::process::Command::new(script)
            .arg(format!("restart-{component}"))
            .env("RETENTION_CONTROL_PLANE_RUN", run)
            .stdout(std::process::Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "restarting {component} of the control plane at {} failed",
            run.display()
        );
        true
    }

    /// The identity of the current lease holder (sharded: of shard 0's Lease), read from the
    /// API server.
    pub async fn leader(&self) -> Option<String> {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.client.clone(), "default");
        let name = Shard::all(self.shards.max(1))
            .next()
            .unwrap_or(Shard::WHOLE)
            .lease_name(LEASE);
        let lease = leases.get_opt(&name).await.ok()??;
        lease.spec?.holder_identity
    }

    /// Index of the replica whose identity is `identity`.
    pub fn replica_index(&self, identity: &str) -> Option<usize> {
        self.replicas
            .iter()
            .position(|r| identity == format!("{REPLICA_AGENT}{}", r.name))
    }
}
