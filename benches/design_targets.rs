//! Measures the operator's design targets with the real `retention-operator` binary, run as a
//! separate process against the in-memory API server started here (or a real cluster, below),
//! so that its memory can be read from `/proc/<pid>/status`. Figures are printed as Markdown
//! tables, never asserted.
//!
//! 1. Deletion latency: a deletion is sent within 2 s (p99) of its deleteAt, also across a
//!    restart. Measured twice: from the operator's own lateness histogram, and independently
//!    from this process, by a watch that timestamps each DELETED event.
//! 2. Memory: resident memory per watched object on top of the base (an empty cluster), the
//!    initial-list peak, and the peak of a forced relist (watches cut and the event window
//!    compacted, so every resume gets 410 Gone) against the steady state.
//! 3. API cost: the requests of one account's erasure (N bound objects), and of a steady state
//!    with nothing due, counted from the server's request log (the operator's User-Agent).
//! 4. Burst, run only on demand (`DESIGN_TARGETS_PHASES=burst`): deletion throughput at the
//!    limit. Every object of 1,000 terminated accounts falls due at the same second; the
//!    operator's deletions per second, lateness, requests and CPU per deletion, side by side
//!    with a bare kube client deleting as many objects 8 at a time (DELETE with preconditions
//!    from a LIST, and GET then DELETE): what the operator's checks cost at full speed.
//!
//! With `DESIGN_TARGETS_KUBECONFIG`, the phases run against that real cluster instead (see
//! `Server`, the one place that knows which): the project's CRDs are installed (server-side
//! apply, waited until Established), the namespaces created and objects an earlier phase left
//! removed; requests are counted from kube-apiserver's audit log (each request once: a watch at
//! ResponseStarted, anything else at ResponseComplete, the operator's User-Agent only), and the
//! relist is forced by restarting kube-apiserver (`.ci/control-plane restart-apiserver`). The
//! latency and burst phases would run there too, but have only been measured on the test
//! server. Meant for a fresh `.ci/control-plane start` per run (what the benchmark creates
//! stays), as docs/benchmarks.md shows:
//!
//! ```text
//! export RETENTION_CONTROL_PLANE_RUN=/tmp/cp-bench
//! kubeconfig=$(.ci/control-plane start | tail -n 1)
//! DESIGN_TARGETS_KUBECONFIG=$kubeconfig DESIGN_TARGETS_PHASES=erasure,memory \
//!   cargo bench --bench design_targets
//! .ci/control-plane stop
//! ```
//!
//! `cargo bench --bench design_targets` runs the default sizes in a few minutes on two cores.
//! Environment variables change them:
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `DESIGN_TARGETS_PHASES` | `latency,erasure,memory` | which phases run |
//! | `DESIGN_TARGETS_OPERATOR` | the `retention-operator` of this build | the operator binary to measure (another commit's build, to compare) |
//! | `DESIGN_TARGETS_DUE_ACCOUNTS` | 100 | accounts falling due in the latency phase (6 objects each) |
//! | `DESIGN_TARGETS_SPREAD_SECS` | 15 | seconds their deleteAts are spread over |
//! | `DESIGN_TARGETS_ERASURE_OBJECTS` | 50 | objects bound to the erased account |
//! | `DESIGN_TARGETS_SIZES` | `10000,50000` | watched objects in the memory phase, ascending |
//! | `DESIGN_TARGETS_ACCOUNTS` | 1000 | accounts they are spread over |
//! | `DESIGN_TARGETS_SHARDS` | 1 | more than 1: after the largest size, that many operator processes with `--shards` that many, each replica's RSS |
//! | `DESIGN_TARGETS_STEADY_SECS` | 60 | length of the steady-state request count (0: skip) |
//! | `DESIGN_TARGETS_RELIST` | `last` | `all`: force a relist at every size, not only the largest |
//! | `DESIGN_TARGETS_CONCURRENCY` | 8 | the operator's `--concurrency` (accounts reconciled at once) |
//! | `DESIGN_TARGETS_OPERATOR_ARGS` | none | more arguments for the operator's `run`, split at whitespace (`--brake-write-interval 1s`, say) |
//! | `DESIGN_TARGETS_BURST_ACCOUNTS` | 1000 | terminated accounts in the burst phase (`DESIGN_TARGETS_PHASES=burst`, not run by default) |
//! | `DESIGN_TARGETS_BURST_PER_ACCOUNT` | 10 | bound objects per account there, all due at the same second |
//! | `DESIGN_TARGETS_BURST_LEAD_SECS` | 30, and 3 ms per object | from the burst's creation to its due second: time to create, stamp and settle |
//! | `DESIGN_TARGETS_KUBECONFIG` | unset: the test server | a real cluster's kubeconfig (admin: it installs CRDs, creates namespaces); the phases run there |
//! | `DESIGN_TARGETS_AUDIT_LOG` | `audit.log` beside that kubeconfig | the cluster's audit log (JSON, Metadata level), the requests are counted from |
//! | `DESIGN_TARGETS_CONTROL_PLANE` | this checkout's `.ci/control-plane` | run with `restart-apiserver` to force the relist on the real cluster; it finds that cluster by `RETENTION_CONTROL_PLANE_RUN`, which must be the run directory it was started with |
//!
//! The operator's logs go to a temporary directory whose path is printed on stderr.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use kube::{
    Api, Client,
    api::{
        ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
    },
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use test_apiserver::{Config, RequestRecord, TestApiServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../tests/support/mod.rs"]
mod support;

use retention_operator::api::{
    DEFAULT_POLICY, DataProcessor, DatabaseEngine, GracePeriods, RetentionPolicySpec, SecretKeyRef,
};
use retention_operator::kinds::ResourceKind;
use support::{
    AccountExt, DataProcessorExt, DomainExt, HostedExt, ObjectExt, backup_policy,
    bookkeeping_record, data_record, database, domain, dur, mailbox, policy_with_backups,
    processor, retention_policy, website, website_backup,
};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

const BUILT_OPERATOR: &str = env!("CARGO_BIN_EXE_retention-operator");

/// The operator binary the phases run: `DESIGN_TARGETS_OPERATOR`, else the one this build made
/// (set it to another build, say of an earlier commit, to compare two side by side).
fn operator() -> String {
    std::env::var("DESIGN_TARGETS_OPERATOR").unwrap_or_else(|_| BUILT_OPERATOR.to_owned())
}
const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
const GROUP: &str = "hosting.ecuni.se";
const VERSION: &str = "v1alpha1";
const DELETE_AT: &str = "hosting.ecuni.se/delete-at";
/// The User-Agent of this benchmark's own requests; everything else in the log is the operator.
const BENCH_AGENT: &str = "design-targets-bench";
/// How the operator's User-Agent begins (`retention-operator/VERSION (replica)`): on a real
/// server, other clients (the API server itself) are in the audit log too.
const OPERATOR_AGENT: &str = "retention-operator/";
/// The field manager that creates the objects, as the account system would.
const CREATOR: &str = "account-system";
/// Creates in flight at once.
const CREATE_CONCURRENCY: usize = 32;
/// The CPU time a process (`pid`, or "self") used so far, user and system: fields 14 and 15
/// of `/proc/PID/stat`, in clock ticks.
fn process_cpu(pid: &str) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Field 2, the command, is in parentheses and may hold spaces: split after it, where
    // field 3 begins.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no field {n} in /proc/{pid}/stat").into())
    };
    let ticks = field(14)? + field(15)?;
    Ok(Duration::from_secs_f64(ticks as f64 / CLOCK_TICKS))
}

/// Clock ticks per second of the CPU times in `/proc/PID/stat` (USER_HZ). Assumed, not asked
/// with `sysconf(_SC_CLK_TCK)`: libc is no dependency of this crate, and USER_HZ is 100 on
/// x86_64 and aarch64, where the operator runs.
const CLOCK_TICKS: f64 = 100.0;
/// Grace period of the benchmark's policy, and termination offset that makes things due.
const GRACE_DAYS: i64 = 30;

// ---------------------------------------------------------------------------------------------
// Kinds and objects.

/// The kinds the benchmark creates: the operator's own and every bound kind of the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Account,
    Policy,
    Processor,
    Bound(ResourceKind),
}

impl Kind {
    /// The bound kinds, in the registry's order.
    fn bound() -> impl Iterator<Item = Kind> {
        ResourceKind::ALL.into_iter().map(Kind::Bound)
    }

    fn all() -> impl Iterator<Item = Kind> {
        [Kind::Account, Kind::Policy, Kind::Processor]
            .into_iter()
            .chain(Kind::bound())
    }

    /// The kind named `name` (`Website`).
    fn of(name: &str) -> Self {
        Kind::all()
            .find(|kind| kind.name() == name)
            .unwrap_or_else(|| panic!("{name} is no kind of the benchmark"))
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Account => "Account",
            Kind::Policy => "RetentionPolicy",
            Kind::Processor => "DataProcessor",
            Kind::Bound(kind) => kind.as_str(),
        }
    }

    fn plural(self) -> String {
        match self {
            Kind::Account => "accounts".to_owned(),
            Kind::Policy => "retentionpolicies".to_owned(),
            Kind::Processor => "dataprocessors".to_owned(),
            Kind::Bound(kind) => kind.plural(),
        }
    }

    fn namespaced(self) -> bool {
        matches!(self, Kind::Bound(_))
    }

    fn resource(self) -> ApiResource {
        ApiResource {
            group: GROUP.into(),
            version: VERSION.into(),
            api_version: format!("{GROUP}/{VERSION}"),
            kind: self.name().into(),
            plural: self.plural(),
        }
    }
}

/// An object to create: its kind, namespace (empty when cluster-scoped) and body.
struct Object {
    kind: Kind,
    namespace: String,
    name: String,
    body: Value,
}

impl Object {
    /// An object built with the tests' builders (`tests/support`), as sent.
    fn of<K>(object: K) -> Self
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize,
    {
        let kind = Kind::of(&K::kind(&()));
        let meta = object.meta();
        Object {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            body: serde_json::to_value(&object).expect("objects serialize"),
        }
    }

    /// `plural/namespace/name`, the key deletions are matched by.
    fn key(&self) -> String {
        format!("{}/{}/{}", self.kind.plural(), self.namespace, self.name)
    }
}

/// `at` to the second, as the API carries timestamps.
fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

fn policy() -> Object {
    // Backups are kept 60 days by the schedule, but never past the grace period after
    // termination: a terminated account's backups go with its hosted objects. One grace
    // period for every kind.
    let grace = format!("{GRACE_DAYS}d");
    Object::of(retention_policy(
        DEFAULT_POLICY,
        RetentionPolicySpec {
            grace_period: dur(&grace),
            grace_periods: GracePeriods::default(),
            ..policy_with_backups(backup_policy(60, 0, 0, Some(&grace)))
        },
    ))
}

/// A processor staff contact by hand, with its legal name and country.
fn manual(name: &str, legal_name: &str, country: &str) -> DataProcessor {
    let mut processor = processor(name);
    processor.spec.legal_name = legal_name.into();
    processor.spec.country = country.into();
    processor.spec.purposes.clear();
    processor
}

fn processors() -> Vec<Object> {
    [
        ("microsoft", "Microsoft Ireland Operations Ltd", "IE"),
        ("key-systems", "Key Systems GmbH", "DE"),
        ("pipedrive", "Pipedrive OU", "EE"),
        ("svea-ekonomi", "Svea Ekonomi AB", "SE"),
    ]
    .into_iter()
    .map(|(name, legal, country)| Object::of(manual(name, legal, country)))
    .collect()
}

fn account(name: &str, customer: usize, terminated_at: Option<DateTime<Utc>>, set: &str) -> Object {
    let account = support::account(name).customer_ref(&format!("C-{customer:05}"));
    let account = match terminated_at {
        Some(at) => account.terminated_at(whole_seconds(at)),
        None => account,
    };
    Object::of(labelled(account, set, customer))
}

fn labelled<K: kube::Resource>(object: K, set: &str, customer: usize) -> K {
    object
        .label("app.kubernetes.io/managed-by", CREATOR)
        .label("hosting.ecuni.se/customer", &format!("C-{customer:05}"))
        .label("bench-set", set)
}

/// A bound object of the customer's, in `namespace`, labelled for `set`.
fn placed<K>(object: K, namespace: &str, set: &str, customer: usize) -> Object
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize,
{
    Object::of(labelled(object.in_namespace(namespace), set, customer))
}

/// The `index`-th object of an account, cycling through a realistic mix: per ten objects a
/// website, a database, two mailboxes, a domain, a CRM record, an invoice record and three
/// backups.
fn bound_object(
    account: &str,
    customer: usize,
    namespace: &str,
    index: usize,
    taken_at: DateTime<Utc>,
    set: &str,
) -> Object {
    let domain = format!("{account}.example.se");
    match index % 10 {
        0 => {
            let mut website = website(&format!("www-{index}"), account);
            website.spec.hostnames = vec![domain.clone(), format!("www.{domain}")];
            placed(website, namespace, set, customer)
        }
        1 => {
            let mut database = database(&format!("db-{index}"), account);
            database.spec.engine = DatabaseEngine::Mariadb;
            placed(database, namespace, set, customer)
        }
        2 | 3 => {
            let mut mailbox = mailbox(&format!("mbx-{index}"), account).processor("microsoft");
            mailbox.spec.address = format!("info-{index}@{domain}");
            placed(mailbox, namespace, set, customer)
        }
        4 => {
            let mut domain_object =
                support::domain(&format!("dom-{index}"), account).registrar("key-systems");
            domain_object.spec.fqdn = format!("d{index}.{domain}");
            placed(domain_object, namespace, set, customer)
        }
        5 => placed(
            data_record(&format!("crm-{index}"), account).processor("pipedrive"),
            namespace,
            set,
            customer,
        ),
        6 => placed(
            bookkeeping_record(&format!("invoices-{index}"), account, "2025-12-31")
                .processor("svea-ekonomi"),
            namespace,
            set,
            customer,
        ),
        _ => placed(
            website_backup(
                &format!("bkp-{index}"),
                account,
                &format!("www-{}", index - index % 10),
                whole_seconds(taken_at),
            ),
            namespace,
            set,
            customer,
        ),
    }
}

/// `object` renamed `<account>-<name>`.
fn prefixed(account: &str, mut object: Object) -> Object {
    object.name = format!("{account}-{}", object.name);
    object.body["metadata"]["name"] = json!(object.name);
    object
}

/// The six objects of an account in the latency phase: one of each hosted kind (the CRM
/// record, not invoices, which the Bookkeeping Act keeps) and a backup, all due at once.
fn due_objects(
    account: &str,
    customer: usize,
    namespace: &str,
    terminated_at: DateTime<Utc>,
    set: &str,
) -> Vec<Object> {
    [0, 1, 2, 4, 5, 7]
        .into_iter()
        .map(|i| {
            let object = bound_object(
                account,
                customer,
                namespace,
                i,
                terminated_at - TimeDelta::hours(1),
                set,
            );
            prefixed(account, object)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The cluster side: the server, client, creation, request log.

/// The API server a phase runs the operator against: the in-memory test server, started for
/// the phase, or the real control plane named by `DESIGN_TARGETS_KUBECONFIG`. Everything that
/// differs between the two is here; the phases only ask.
enum Server {
    Test {
        server: TestApiServer,
        kubeconfig: PathBuf,
    },
    Real(Box<RealServer>),
}

/// A real kube-apiserver: requests counted from its audit log, relists forced by restarting it.
struct RealServer {
    kubeconfig: PathBuf,
    config: kube::Config,
    audit: Mutex<AuditLog>,
    control_plane: PathBuf,
}

impl Server {
    /// The server of a phase, serving the project's CRDs and `namespaces`. A test server is
    /// started; a real one gets the CRDs installed (server-side apply, waited until
    /// Established), the namespaces created and the objects earlier phases left removed.
    async fn start(dir: &Path, label: &str, namespaces: &[String]) -> Result<Self> {
        let Some(kubeconfig) = std::env::var_os("DESIGN_TARGETS_KUBECONFIG") else {
            let mut config = Config::default().crds(CRDS);
            for namespace in namespaces {
                config = config.namespace(namespace);
            }
            let server = TestApiServer::start(config).await?;
            let kubeconfig = dir.join(format!("kubeconfig-{label}"));
            std::fs::write(&kubeconfig, server.kubeconfig())?;
            return Ok(Server::Test { server, kubeconfig });
        };
        let kubeconfig = PathBuf::from(kubeconfig);
        let audit = match std::env::var_os("DESIGN_TARGETS_AUDIT_LOG") {
            Some(path) => PathBuf::from(path),
            None => kubeconfig
                .parent()
                .ok_or("DESIGN_TARGETS_KUBECONFIG has no directory")?
                .join("audit.log"),
        };
        if !audit.is_file() {
            return Err(format!(
                "no audit log at {}: set DESIGN_TARGETS_AUDIT_LOG",
                audit.display()
            )
            .into());
        }
        let control_plane = std::env::var_os("DESIGN_TARGETS_CONTROL_PLANE").map_or_else(
            || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/control-plane")),
            PathBuf::from,
        );
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig)
                .map_err(|e| format!("DESIGN_TARGETS_KUBECONFIG={}: {e}", kubeconfig.display()))?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| format!("DESIGN_TARGETS_KUBECONFIG={}: {e}", kubeconfig.display()))?;
        let server = Server::Real(Box::new(RealServer {
            kubeconfig,
            config,
            audit: Mutex::new(AuditLog::at_end(audit)?),
            control_plane,
        }));
        let client = server.client()?;
        install_crds(&client).await?;
        remove_leftovers(&client).await?;
        create_namespaces(&client, namespaces).await?;
        Ok(server)
    }

    /// Where the operator's requests are counted from, for the tables.
    fn request_source(&self) -> &'static str {
        match self {
            Server::Test { .. } => "the test server's request log",
            Server::Real(_) => "kube-apiserver's audit log",
        }
    }

    /// Where the operator's kubeconfig is.
    fn kubeconfig(&self) -> &Path {
        match self {
            Server::Test { kubeconfig, .. } => kubeconfig,
            Server::Real(real) => &real.kubeconfig,
        }
    }

    /// A client of the benchmark's own (User-Agent `BENCH_AGENT`, not counted).
    fn client(&self) -> Result<Client> {
        self.client_as(BENCH_AGENT)
    }

    /// A client sending `agent` as its User-Agent.
    fn client_as(&self, agent: &str) -> Result<Client> {
        let mut config = match self {
            Server::Test { server, .. } => kube::Config::new(server.url().parse()?),
            Server::Real(real) => real.config.clone(),
        };
        config.headers.push(("user-agent".parse()?, agent.parse()?));
        Ok(Client::try_from(config)?)
    }

    /// The operator's requests since the last `clear_requests`, in order.
    fn operator_requests(&self) -> Result<Vec<RequestRecord>> {
        match self {
            Server::Test { server, .. } => Ok(server
                .requests()
                .into_iter()
                .filter(|r| r.user_agent != BENCH_AGENT)
                .collect()),
            Server::Real(real) => {
                let mut audit = real.audit.lock().map_err(|_| "the audit log lock")?;
                audit.read()?;
                Ok(audit.requests.clone())
            }
        }
    }

    fn clear_requests(&self) -> Result<()> {
        match self {
            Server::Test { server, .. } => server.clear_requests(),
            Server::Real(real) => {
                let mut audit = real.audit.lock().map_err(|_| "the audit log lock")?;
                audit.read()?;
                audit.requests.clear();
            }
        }
        Ok(())
    }

    /// What changes when anyone writes: the test server's resourceVersion; for a real server
    /// the resourceVersion of a fresh list (etcd's revision) and how many requests the
    /// operator made.
    async fn activity(&self, client: &Client) -> Result<(u64, usize)> {
        match self {
            Server::Test { server, .. } => Ok((server.resource_version(), 0)),
            Server::Real(_) => {
                let namespaces: Api<DynamicObject> = Api::all_with(
                    client.clone(),
                    &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
                );
                // A connection kept from before a restart of the API server may fail once.
                let mut tries = 0;
                let list = loop {
                    match namespaces.list(&ListParams::default().limit(1)).await {
                        Ok(list) => break list,
                        Err(e) if tries >= 3 => return Err(e.into()),
                        Err(_) => tries += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                };
                let version = list
                    .metadata
                    .resource_version
                    .and_then(|v| v.parse().ok())
                    .ok_or("a list without a numeric resourceVersion")?;
                Ok((version, self.operator_requests()?.len()))
            }
        }
    }

    /// Readies the server for a later [`force_relist`] before the operator starts: the test
    /// server cuts every watch every `CUT`; a real server needs nothing.
    fn prepare_relist(&self) {
        if let Server::Test { server, .. } = self {
            server.update_faults(|f| f.cut_watch_after = Some(CUT));
        }
    }

    fn clear_faults(&self) {
        if let Server::Test { server, .. } = self {
            server.clear_faults();
        }
    }

    /// Makes every watch of the operator end in 410 Gone, so that it lists again. The test
    /// server compacts its event window past every resourceVersion the operator holds and ends
    /// every watch; a real one is restarted
    /// (`$DESIGN_TARGETS_CONTROL_PLANE restart-apiserver`): every watch is cut, and its watch
    /// cache starts again from etcd, older than any resume.
    /// Returns how long the restart took (a real server).
    async fn provoke_relist(&self, client: &Client, started: Instant) -> Result<Option<Duration>> {
        let cms: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "default",
            &ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: "configmaps".into(),
            },
        );
        let server = match self {
            Server::Test { server, .. } => server,
            Server::Real(real) => {
                // A write first: any resourceVersion the operator holds is older than etcd's.
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "churn"}, "data": {"n": "restart"}});
                cms.patch(
                    "churn",
                    &PatchParams::apply(BENCH_AGENT),
                    &Patch::Apply(&cm),
                )
                .await?;
                let script = real.control_plane.clone();
                let output = tokio::task::spawn_blocking(move || {
                    Command::new(&script)
                        .arg("restart-apiserver")
                        .stdin(Stdio::null())
                        .output()
                        .map_err(|e| format!("cannot run {}: {e}", script.display()))
                })
                .await??;
                if !output.status.success() {
                    return Err(format!(
                        "{} restart-apiserver failed ({}): {}",
                        real.control_plane.display(),
                        output.status,
                        String::from_utf8_lossy(&output.stderr)
                    )
                    .into());
                }
                let restart = started.elapsed();
                eprintln!("memory: kube-apiserver restarted in {}", secs(restart));
                return Ok(Some(restart));
            }
        };
        // Two writes under an event window of 1: every resourceVersion the operator holds is
        // then older than the oldest a watch may resume from. Every watch is ended right
        // after (before a bookmark can bring one up to date): each resumes into 410 Gone and
        // lists again, every kind, whenever kube's controller gets round to it.
        server.set_event_window(1);
        let params = PatchParams::apply(BENCH_AGENT);
        for n in 0..2 {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "churn"}, "data": {"n": n.to_string()}});
            cms.patch("churn", &params, &Patch::Apply(&cm)).await?;
        }
        server.end_watches();
        // With no more writes, the window of 1 keeps every old resourceVersion expired while
        // list continue tokens stay valid, until `end_relist`.
        Ok(None)
    }

    fn end_relist(&self) {
        if let Server::Test { server, .. } = self {
            server.set_event_window(10_000);
        }
    }

    /// Stops the test server; a real one is left running (and its objects with it: the next
    /// phase removes them).
    async fn shutdown(self) {
        if let Server::Test { server, .. } = self {
            server.shutdown().await;
        }
    }
}

/// The operator's requests in a kube-apiserver audit log (JSON lines, Metadata level): each
/// request once, at its first event (a watch at ResponseStarted, anything else at
/// ResponseComplete), told by the operator's User-Agent.
struct AuditLog {
    path: PathBuf,
    offset: u64,
    seen: HashSet<String>,
    requests: Vec<RequestRecord>,
}

impl AuditLog {
    fn at_end(path: PathBuf) -> Result<Self> {
        let offset = std::fs::metadata(&path)?.len();
        Ok(AuditLog {
            path,
            offset,
            seen: HashSet::new(),
            requests: Vec::new(),
        })
    }

    /// Reads the complete lines written since the last read.
    fn read(&mut self) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.offset += complete as u64;
        for line in bytes[..complete].split(|b| *b == b'\n') {
            let Ok(event) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let user_agent = field(&event["userAgent"]);
            if !user_agent.starts_with(OPERATOR_AGENT)
                || !matches!(
                    event["stage"].as_str(),
                    Some("ResponseStarted" | "ResponseComplete")
                )
                || !self.seen.insert(field(&event["auditID"]))
            {
                continue;
            }
            self.requests.push(RequestRecord::from_audit_event(&event));
        }
        Ok(())
    }
}

/// Installs (server-side apply, forced) the project's CRDs and waits until each is Established.
async fn install_crds(client: &Client) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(CRDS)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "yaml"));
    files.sort();
    for file in files {
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(&std::fs::read_to_string(&file)?)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply(CREATOR).force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|e| format!("installing CRD {name}: {e}"))?;
        names.push(name);
    }
    for name in names {
        let established = kube::runtime::wait::await_condition(
            crds.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(60), established)
            .await
            .map_err(|_| format!("CRD {name} was not Established within 60 s"))??;
    }
    Ok(())
}

/// Removes what earlier phases or runs left on a real server: every object labelled
/// `bench-set`, its finalizers (the operator's, on Accounts) taken off first, as no operator
/// runs between phases. A fresh control plane has none.
async fn remove_leftovers(client: &Client) -> Result<()> {
    let started = Instant::now();
    let mut left = Vec::new();
    for kind in [Kind::Account].into_iter().chain(Kind::bound()) {
        let list = api(client, kind, "")
            .list(&ListParams::default().labels("bench-set"))
            .await?;
        for object in list.items {
            let namespace = object.metadata.namespace.clone().unwrap_or_default();
            left.push((kind, namespace, object));
        }
    }
    if left.is_empty() {
        return Ok(());
    }
    let count = left.len();
    stream::iter(left)
        .map(|(kind, namespace, object)| {
            let api = api(client, kind, &namespace);
            async move {
                let name = object.metadata.name.clone().unwrap_or_default();
                if object
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| !f.is_empty())
                {
                    let patch = json!({"metadata": {"finalizers": null}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                }
                match api.delete(&name, &Default::default()).await {
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                    Err(e) => Err(Error::from(e)),
                    Ok(_) => Ok(()),
                }
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_for_each(|_| futures::future::ready(Ok(())))
        .await?;
    eprintln!(
        "removed {count} objects left by an earlier phase in {}",
        secs(started.elapsed())
    );
    Ok(())
}

/// Creates the namespaces (server-side apply), `CREATE_CONCURRENCY` at a time.
async fn create_namespaces(client: &Client, names: &[String]) -> Result<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    stream::iter(names)
        .map(|name| {
            let namespaces = namespaces.clone();
            async move {
                let body =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                namespaces
                    .patch(name, &PatchParams::apply(CREATOR), &Patch::Apply(&body))
                    .await
                    .map_err(|e| -> Error { format!("creating namespace {name}: {e}").into() })
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_for_each(|_| futures::future::ready(Ok(())))
        .await
}

fn api(client: &Client, kind: Kind, namespace: &str) -> Api<DynamicObject> {
    if kind.namespaced() && !namespace.is_empty() {
        Api::namespaced_with(client.clone(), namespace, &kind.resource())
    } else {
        Api::all_with(client.clone(), &kind.resource())
    }
}

/// Creates the objects by server-side apply (so the server records managedFields with their
/// field sets, as kube-apiserver does), `CREATE_CONCURRENCY` at a time.
async fn create_all(client: &Client, objects: &[Object]) -> Result<Duration> {
    let started = Instant::now();
    let params = PatchParams::apply(CREATOR);
    stream::iter(objects)
        .map(|object| {
            let api = api(client, object.kind, &object.namespace);
            let params = params.clone();
            async move {
                api.patch(&object.name, &params, &Patch::Apply(&object.body))
                    .await
                    .map_err(|e| -> Error { format!("creating {}: {e}", object.key()).into() })
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_for_each(|_| futures::future::ready(Ok(())))
        .await?;
    Ok(started.elapsed())
}

/// Requests counted by `verb resource[/subresource]`.
fn tally(requests: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in requests {
        let mut what = format!("{} {}", r.verb, r.resource);
        if !r.subresource.is_empty() {
            let _ = write!(what, "/{}", r.subresource);
        }
        if r.code >= 400 {
            let _ = write!(what, " ({})", r.code);
        }
        *counts.entry(what).or_insert(0) += 1;
    }
    counts
}

fn tally_text(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(what, n)| format!("{what}: {n}"))
        .collect::<Vec<_>>()
        .join("; ")
}

// ---------------------------------------------------------------------------------------------
// The operator process.

struct Operator {
    child: Child,
    pid: u32,
    port: u16,
    log: PathBuf,
    started: Instant,
}

#[derive(Clone, Copy, Debug, Default)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Operator {
    fn start(kubeconfig: &Path, dir: &Path, label: &str) -> Result<Self> {
        Self::start_as(kubeconfig, dir, label, &["--leader-election=false"], None)
    }

    /// Starts the operator with `election` (its leader-election arguments) and, when given,
    /// `identity` as its POD_NAME.
    fn start_as(
        kubeconfig: &Path,
        dir: &Path,
        label: &str,
        election: &[&str],
        identity: Option<&str>,
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = dir.join(format!("operator-{label}.log"));
        let file = std::fs::File::create(&log)?;
        let operator = operator();
        let concurrency = env_usize("DESIGN_TARGETS_CONCURRENCY", 8)?.to_string();
        let extra = std::env::var("DESIGN_TARGETS_OPERATOR_ARGS").unwrap_or_default();
        let mut command = Command::new(&operator);
        if let Some(identity) = identity {
            command.env("POD_NAME", identity);
        }
        let child = command
            .arg("run")
            .args(election)
            .args([
                "--http-addr",
                &format!("127.0.0.1:{port}"),
                "--concurrency",
                &concurrency,
                // The hung processor endpoint of case 1c listens on loopback.
                "--webhook-allow-cidr=127.0.0.0/8",
            ])
            .args(extra.split_whitespace())
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("DESIGN_TARGETS_OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start {operator}: {e}"))?;
        Ok(Operator {
            pid: child.id(),
            child,
            port,
            log,
            started: Instant::now(),
        })
    }

    fn fail(&mut self, what: &str) -> Error {
        let exited = match self.child.try_wait() {
            Ok(Some(status)) => format!(" (the operator exited: {status})"),
            _ => String::new(),
        };
        format!("{what}{exited}; see {}", self.log.display()).into()
    }

    /// Waits until /readyz answers 200; returns the time since the process started.
    async fn wait_ready(&mut self, limit: Duration) -> Result<Duration> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok((200, _)) = http_get(self.port, "/readyz").await {
                return Ok(self.started.elapsed());
            }
            if Instant::now() > deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return Err(self.fail(&format!("the operator was not ready within {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metrics(&mut self) -> Result<String> {
        match http_get(self.port, "/metrics").await {
            Ok((200, body)) => Ok(body),
            Ok((code, _)) => Err(self.fail(&format!("/metrics answered {code}"))),
            Err(e) => Err(self.fail(&format!("/metrics: {e}"))),
        }
    }

    fn memory(&self) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no {name} in /proc/{}/status", self.pid).into())
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    /// Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`).
    fn reset_peak(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .map_err(|e| format!("cannot reset the peak RSS of {}: {e}", self.pid).into())
    }

    /// The CPU time the operator process used so far, user and system: fields 14 and 15 of
    /// `/proc/PID/stat`, in clock ticks.
    fn cpu(&self) -> Result<Duration> {
        process_cpu(&self.pid.to_string())
    }

    /// Waits until no reconcile runs and none started, and the server's resourceVersion did not
    /// move (nothing was written by anyone; on a real server, no request of the operator's
    /// either), for `quiet`.
    async fn settle(
        &mut self,
        server: &Server,
        client: &Client,
        quiet: Duration,
        limit: Duration,
    ) -> Result<Duration> {
        let started = Instant::now();
        let mut last = None;
        let mut since = Instant::now();
        loop {
            let text = self.metrics().await?;
            let begun = sum(&text, "retention_operator_reconciles_total");
            let done = sum(&text, "retention_operator_reconcile_duration_seconds_count");
            let snapshot = (begun, done, server.activity(client).await?);
            if last != Some(snapshot) || begun != done {
                last = Some(snapshot);
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(self.fail(&format!(
                    "the operator did not settle within {limit:?} ({begun} reconciles started, \
                     {done} finished)"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the RSS changed by less than 1% over two seconds; returns it.
    async fn steady_rss(&mut self, limit: Duration) -> Result<Memory> {
        let deadline = Instant::now() + limit;
        let mut window: Vec<u64> = Vec::new();
        loop {
            let memory = self.memory()?;
            window.push(memory.rss_kib);
            if window.len() > 8 {
                window.remove(0);
                let (lo, hi) = (
                    window.iter().min().copied().unwrap_or(0),
                    window.iter().max().copied().unwrap_or(0),
                );
                if (hi - lo) * 100 <= hi {
                    return Ok(memory);
                }
            }
            if Instant::now() > deadline {
                return Ok(memory);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM, then waits for the exit; returns how long it took.
    async fn stop(mut self) -> Result<Duration> {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        if !status.success() {
            return Err(self.fail("kill -TERM failed"));
        }
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!("note: the operator exited with {status} after SIGTERM");
                }
                return Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                return Err(self.fail("the operator did not stop within 30 s of SIGTERM"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let exchange = async {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        socket
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange).await??;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("a malformed HTTP answer on {path}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status code on {path}"))?;
    Ok((code, body.to_owned()))
}

/// The sum of every sample of `name` (any labels).
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The lateness histogram: (upper bound, cumulative count), ascending.
fn lateness_buckets(text: &str) -> Vec<(f64, u64)> {
    let prefix = "retention_operator_deletion_lateness_seconds_bucket{le=\"";
    let mut buckets: Vec<(f64, u64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(prefix)?;
            let (le, rest) = rest.split_once('"')?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

// ---------------------------------------------------------------------------------------------
// Statistics and printing.

struct Stats {
    n: usize,
    min: f64,
    p50: f64,
    p99: f64,
    max: f64,
    over_2s: usize,
}

fn stats(mut values: Vec<f64>) -> Option<Stats> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank =
        |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    Some(Stats {
        n: values.len(),
        min: values[0],
        p50: rank(0.5),
        p99: rank(0.99),
        max: values[values.len() - 1],
        over_2s: values.iter().filter(|v| **v > 2.0).count(),
    })
}

/// Quantile from cumulative buckets, as the bucket's upper bound ("≤ 0.25 s").
fn bucket_quantile(buckets: &[(f64, u64)], q: f64) -> String {
    let total = buckets.last().map_or(0, |b| b.1);
    if total == 0 {
        return "n/a".into();
    }
    let want = (q * total as f64).ceil() as u64;
    match buckets.iter().find(|b| b.1 >= want.max(1)) {
        Some((le, _)) if le.is_finite() => format!("≤ {le} s"),
        _ => "> 300 s".into(),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|e| format!("{name}={v}: {e}").into()),
        Err(_) => Ok(default),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Deletion latency.

/// What the benchmark watch saw: `plural/namespace/name` -> when its DELETED event arrived.
type Seen = Arc<Mutex<HashMap<String, DateTime<Utc>>>>;

/// Watches every bound kind and timestamps each deletion; returns once every watch synced.
async fn watch_deletions(client: &Client) -> Result<(Seen, Vec<tokio::task::JoinHandle<()>>)> {
    let seen: Seen = Arc::default();
    let mut tasks = Vec::new();
    let mut synced = Vec::new();
    for kind in Kind::bound() {
        let api = api(client, kind, "");
        let seen = seen.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        synced.push(rx);
        tasks.push(tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(watcher::Event::Delete(object)) => {
                        let now = Utc::now();
                        let key = format!(
                            "{}/{}/{}",
                            kind.plural(),
                            object.metadata.namespace.unwrap_or_default(),
                            object.metadata.name.unwrap_or_default()
                        );
                        if let Ok(mut seen) = seen.lock() {
                            seen.entry(key).or_insert(now);
                        }
                    }
                    _ => {}
                }
            }
        }));
    }
    for rx in synced {
        tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .map_err(|_| "the benchmark's deletion watch did not sync within 20 s")?
            .map_err(|_| "the benchmark's deletion watch stopped")?;
    }
    Ok((seen, tasks))
}

/// The schedule the operator stamped on each object of the set: `key` -> deleteAt.
async fn stamped(client: &Client, set: &str) -> Result<HashMap<String, Option<DateTime<Utc>>>> {
    let mut out = HashMap::new();
    for kind in Kind::bound() {
        let list = api(client, kind, "")
            .list(&ListParams::default().labels(&format!("bench-set={set}")))
            .await?;
        for object in list.items {
            let at = if kind == Kind::Bound(ResourceKind::Backup) {
                object.data["status"]["expiresAt"]
                    .as_str()
                    .map(str::to_owned)
            } else {
                object
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DELETE_AT).cloned())
            };
            let key = format!(
                "{}/{}/{}",
                kind.plural(),
                object.metadata.namespace.unwrap_or_default(),
                object.metadata.name.unwrap_or_default()
            );
            out.insert(key, at.and_then(|a| a.parse().ok()));
        }
    }
    Ok(out)
}

/// Waits until every object of the set carries the expected schedule, or `until`.
async fn wait_stamped(
    client: &Client,
    set: &str,
    expected: &HashMap<String, DateTime<Utc>>,
    until: DateTime<Utc>,
) -> Result<(usize, usize)> {
    loop {
        let stamps = stamped(client, set).await?;
        let right = expected
            .iter()
            .filter(|(k, at)| stamps.get(*k).copied().flatten() == Some(**at))
            .count();
        let wrong = expected
            .iter()
            .filter(|(k, at)| matches!(stamps.get(*k), Some(Some(s)) if s != *at))
            .count();
        if right + wrong == expected.len() || Utc::now() >= until {
            return Ok((right, wrong));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct LatencyRow {
    case: String,
    objects: usize,
    stamped: String,
    watched: Option<Stats>,
    missing: usize,
    operator_count: u64,
    operator_p50: String,
    operator_p99: String,
    operator_within_2s: String,
    note: String,
}

/// Creates `accounts` terminated accounts whose six objects each fall due at
/// `first + i * spread / accounts`; returns the expected deleteAt per object.
async fn create_due_set(
    client: &Client,
    namespace: &str,
    set: &str,
    accounts: usize,
    first: DateTime<Utc>,
    spread: Duration,
) -> Result<HashMap<String, DateTime<Utc>>> {
    let mut objects = Vec::new();
    let mut accounts_list = Vec::new();
    let mut expected = HashMap::new();
    let step_ms = spread.as_millis() as i64 / accounts.max(1) as i64;
    for i in 0..accounts {
        let due = first + TimeDelta::milliseconds(step_ms * i as i64);
        // Whole seconds, as the API carries timestamps.
        let due = DateTime::from_timestamp(due.timestamp(), 0).ok_or("time out of range")?;
        let terminated = due - TimeDelta::days(GRACE_DAYS);
        let name = format!("{set}-{i:04}");
        accounts_list.push(account(&name, 50_000 + i, Some(terminated), set));
        for object in due_objects(&name, 50_000 + i, namespace, terminated, set) {
            expected.insert(object.key(), due);
            objects.push(object);
        }
    }
    create_all(client, &accounts_list).await?;
    create_all(client, &objects).await?;
    Ok(expected)
}

/// Waits until every expected object was seen deleted or `until`; builds the row.
async fn measure_deletions(
    seen: &Seen,
    expected: &HashMap<String, DateTime<Utc>>,
    until: DateTime<Utc>,
) -> (Option<Stats>, usize) {
    loop {
        let done = seen
            .lock()
            .map(|s| expected.keys().filter(|k| s.contains_key(*k)).count())
            .unwrap_or(0);
        if done == expected.len() || Utc::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let lateness: Vec<f64> = expected
        .iter()
        .filter_map(|(k, at)| Some((*seen.get(k)? - *at).as_seconds_f64()))
        .collect();
    let missing = expected.len() - lateness.len();
    (stats(lateness), missing)
}

async fn operator_lateness(op: &mut Operator) -> Result<(u64, String, String, String)> {
    let text = op.metrics().await?;
    let buckets = lateness_buckets(&text);
    let total = buckets.last().map_or(0, |b| b.1);
    let within = buckets.iter().find(|b| b.0 == 2.0).map_or(0, |b| b.1);
    let share = if total == 0 {
        "n/a".into()
    } else {
        format!("{:.1}%", within as f64 * 100.0 / total as f64)
    };
    Ok((
        total,
        bucket_quantile(&buckets, 0.5),
        bucket_quantile(&buckets, 0.99),
        share,
    ))
}

async fn latency_phase(dir: &Path, latency: bool, erasure: bool, out: &mut String) -> Result<()> {
    let accounts = env_usize("DESIGN_TARGETS_DUE_ACCOUNTS", 100)?;
    let spread = Duration::from_secs(env_usize("DESIGN_TARGETS_SPREAD_SECS", 15)? as u64);
    let namespace = "cust-due";
    let server = Server::start(dir, "latency", &[namespace.to_owned()]).await?;
    let kubeconfig = server.kubeconfig().to_owned();
    let client = server.client()?;
    let mut setup = vec![policy()];
    setup.extend(processors());
    create_all(&client, &setup).await?;
    let (seen, watches) = watch_deletions(&client).await?;
    let mut rows = Vec::new();

    // 1a. One operator, running throughout.
    let mut op = Operator::start(&kubeconfig, dir, "latency-a")?;
    let ready_a = op.wait_ready(Duration::from_secs(30)).await?;
    eprintln!("latency: operator A ready after {}", secs(ready_a));
    if !latency {
        if erasure {
            erasure_cost(&server, &client, &mut op, namespace, out).await?;
        }
        op.stop().await?;
        // Open watches would hold the server's shutdown until they time out.
        for task in watches {
            task.abort();
        }
        server.shutdown().await;
        return Ok(());
    }
    let first = Utc::now() + TimeDelta::seconds(12);
    let expected = create_due_set(&client, namespace, "due-a", accounts, first, spread).await?;
    let first = *expected.values().min().ok_or("nothing created")?;
    let last = *expected.values().max().ok_or("nothing created")?;
    let (right, wrong) = wait_stamped(
        &client,
        "due-a",
        &expected,
        first - TimeDelta::milliseconds(500),
    )
    .await?;
    eprintln!(
        "latency: {right} of {} stamped before the first deleteAt",
        expected.len()
    );
    let (watched, missing) =
        measure_deletions(&seen, &expected, last + TimeDelta::seconds(60)).await;
    op.settle(
        &server,
        &client,
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
    .await?;
    let (count, p50, p99, share) = operator_lateness(&mut op).await?;
    rows.push(LatencyRow {
        case: "no restart".into(),
        objects: expected.len(),
        stamped: format!("{right}/{} ({wrong} differ)", expected.len()),
        watched,
        missing,
        operator_count: count,
        operator_p50: p50,
        operator_p99: p99,
        operator_within_2s: share,
        note: format!(
            "{accounts} accounts × 6 objects, deleteAts over {} s",
            spread.as_secs()
        ),
    });

    // 1b. Across a restart: A stamps the schedules and stops (SIGTERM) before the first
    // deleteAt; B starts, lists and must still delete on time.
    let first = Utc::now() + TimeDelta::seconds(20);
    let expected = create_due_set(&client, namespace, "due-b", accounts, first, spread).await?;
    let first = *expected.values().min().ok_or("nothing created")?;
    let last = *expected.values().max().ok_or("nothing created")?;
    let restart_at = first - TimeDelta::seconds(8);
    let (right, wrong) = wait_stamped(&client, "due-b", &expected, restart_at).await?;
    op.settle(
        &server,
        &client,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
    .await?;
    while Utc::now() < restart_at {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop_time = op.stop().await?;
    let mut op = Operator::start(&kubeconfig, dir, "latency-b")?;
    let ready_b = op.wait_ready(Duration::from_secs(30)).await?;
    let margin = (first - Utc::now()).as_seconds_f64();
    eprintln!(
        "latency: A stopped in {}, B ready after {}, {margin:.1} s before the first deleteAt",
        secs(stop_time),
        secs(ready_b)
    );
    let (watched, missing) =
        measure_deletions(&seen, &expected, last + TimeDelta::seconds(60)).await;
    op.settle(
        &server,
        &client,
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
    .await?;
    let (count, p50, p99, share) = operator_lateness(&mut op).await?;
    rows.push(LatencyRow {
        case: "across a restart".into(),
        objects: expected.len(),
        stamped: format!("{right}/{} ({wrong} differ)", expected.len()),
        watched,
        missing,
        operator_count: count,
        operator_p50: p50,
        operator_p99: p99,
        operator_within_2s: share,
        note: format!(
            "stamped by A; A stopped in {}; B ready {} after start, {margin:.1} s before the first deleteAt",
            secs(stop_time),
            secs(ready_b)
        ),
    });

    // 1c. While 40 accounts owe an erasure request to a processor whose endpoint never
    // answers, another 100 accounts fall due: their deletions must be as punctual as without.
    let (row, hung_connections) =
        with_hung_endpoint(&client, &seen, namespace, accounts, spread).await?;
    eprintln!("latency: the hung endpoint accepted {hung_connections} connections");
    let (count, p50, p99, share) = operator_lateness(&mut op).await?;
    rows.push(LatencyRow {
        operator_count: count,
        operator_p50: p50,
        operator_p99: p99,
        operator_within_2s: share,
        note: format!(
            "{} (histogram since B started, 1b included); the hung endpoint accepted {hung_connections} connections",
            row.note
        ),
        ..row
    });

    // 3a. One account's erasure, on the same server, with operator B.
    if erasure {
        erasure_cost(&server, &client, &mut op, namespace, out).await?;
    }

    op.stop().await?;
    for task in watches {
        task.abort();
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "\n### 1. Deletion latency (delete time − deleteAt)\n"
    );
    let _ = writeln!(
        table,
        "| Case | Objects | Stamped in time | Watch: p50 | p99 | max | min | > 2 s | not deleted | Operator histogram: n | p50 | p99 | ≤ 2 s | Notes |"
    );
    let _ = writeln!(
        table,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for row in rows {
        let w = |f: fn(&Stats) -> f64| {
            row.watched
                .as_ref()
                .map_or("n/a".into(), |s| format!("{:.3} s", f(s)))
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.case,
            row.objects,
            row.stamped,
            w(|s| s.p50),
            w(|s| s.p99),
            w(|s| s.max),
            w(|s| s.min),
            row.watched
                .as_ref()
                .map_or("n/a".into(), |s| format!("{} of {}", s.over_2s, s.n)),
            row.missing,
            row.operator_count,
            row.operator_p50,
            row.operator_p99,
            row.operator_within_2s,
            row.note
        );
    }
    out.insert_str(0, &table);
    server.shutdown().await;
    Ok(())
}

/// Case 1c: `HUNG_ACCOUNTS` accounts whose Domains name a registrar whose webhook accepts TCP
/// connections and never answers fall due first; `accounts` others (six objects each) fall due
/// 3 s later over `spread`. Returns the row of the others' lateness, and how many connections
/// the hung endpoint accepted.
async fn with_hung_endpoint(
    client: &Client,
    seen: &Seen,
    namespace: &str,
    accounts: usize,
    spread: Duration,
) -> Result<(LatencyRow, usize)> {
    const HUNG_ACCOUNTS: usize = 40;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let holder = accepted.clone();
    let endpoint = tokio::spawn(async move {
        // Accepts and holds every connection: no TLS handshake, no answer, ever.
        while let Ok((socket, _)) = listener.accept().await {
            if let Ok(mut held) = holder.lock() {
                held.push(socket);
            }
        }
    });
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "hung-hmac", "namespace": namespace},
        "data": {"secret": "c2lnbmluZy1rZXk="}});
    secrets
        .patch(
            "hung-hmac",
            &PatchParams::apply(CREATOR),
            &Patch::Apply(&secret),
        )
        .await?;
    let mut processor = manual("hung-registrar", "Hung Registrar AB", "SE")
        .webhook(&format!("https://127.0.0.1:{port}/erasure"));
    if let Some(webhook) = processor.spec.erasure.webhook.as_mut() {
        webhook.secret_ref = SecretKeyRef {
            namespace: namespace.into(),
            name: "hung-hmac".into(),
            key: "secret".into(),
        };
    }
    create_all(client, &[Object::of(processor)]).await?;
    let hung_due = DateTime::from_timestamp((Utc::now() + TimeDelta::seconds(12)).timestamp(), 0)
        .ok_or("time out of range")?;
    let terminated = hung_due - TimeDelta::days(GRACE_DAYS);
    let mut objects = Vec::new();
    for i in 0..HUNG_ACCOUNTS {
        let name = format!("hung-{i:04}");
        objects.push(account(&name, 70_000 + i, Some(terminated), "hung"));
        let mut domain = domain(&format!("{name}-dom"), &name).registrar("hung-registrar");
        domain.spec.fqdn = format!("{name}.example.se");
        objects.push(placed(domain, namespace, "hung", 70_000 + i));
    }
    create_all(client, &objects).await?;
    let first = hung_due + TimeDelta::seconds(3);
    let expected = create_due_set(client, namespace, "due-c", accounts, first, spread).await?;
    let last = *expected.values().max().ok_or("nothing created")?;
    let (right, wrong) = wait_stamped(
        client,
        "due-c",
        &expected,
        hung_due - TimeDelta::milliseconds(500),
    )
    .await?;
    let (watched, missing) =
        measure_deletions(seen, &expected, last + TimeDelta::seconds(60)).await;
    let connections = accepted.lock().map(|held| held.len()).unwrap_or(0);
    endpoint.abort();
    let row = LatencyRow {
        case: "with a hung processor endpoint".into(),
        objects: expected.len(),
        stamped: format!("{right}/{} ({wrong} differ)", expected.len()),
        watched,
        missing,
        operator_count: 0,
        operator_p50: String::new(),
        operator_p99: String::new(),
        operator_within_2s: String::new(),
        note: format!(
            "{HUNG_ACCOUNTS} accounts owe a request to an endpoint that never answers, due 3 s before the {accounts} × 6 measured"
        ),
    };
    Ok((row, connections))
}

// ---------------------------------------------------------------------------------------------
// 3a. The API cost of one account's erasure.

async fn erasure_cost(
    server: &Server,
    client: &Client,
    op: &mut Operator,
    namespace: &str,
    out: &mut String,
) -> Result<()> {
    let n = env_usize("DESIGN_TARGETS_ERASURE_OBJECTS", 50)?;
    let name = "erased";
    let due = DateTime::from_timestamp((Utc::now() + TimeDelta::seconds(10)).timestamp(), 0)
        .ok_or("time out of range")?;
    let terminated = due - TimeDelta::days(GRACE_DAYS);
    op.settle(
        server,
        client,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
    .await?;
    server.clear_requests()?;
    create_all(
        client,
        &[account(name, 99_999, Some(terminated), "erasure")],
    )
    .await?;
    // All due at once: the hosted kinds, CRM records (not invoices) and backups.
    let objects: Vec<Object> = (0..)
        .filter(|i| i % 10 != 6)
        .take(n)
        .map(|i| {
            let object = bound_object(
                name,
                99_999,
                namespace,
                i,
                terminated - TimeDelta::hours(1),
                "erasure",
            );
            prefixed(name, object)
        })
        .collect();
    create_all(client, &objects).await?;
    let expected: HashMap<String, DateTime<Utc>> = objects.iter().map(|o| (o.key(), due)).collect();
    let (right, _) =
        wait_stamped(client, "erasure", &expected, due - TimeDelta::seconds(1)).await?;
    op.settle(
        server,
        client,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
    .await?;
    let scheduling = tally(&server.operator_requests()?);
    if Utc::now() >= due {
        return Err(
            "the erasure's deleteAt passed before the schedules were stamped; raise the lead"
                .into(),
        );
    }
    server.clear_requests()?;
    // Until everything is gone and every erasure request is out of Pending: the processors
    // of the mix have no webhook, so their requests end Manual (waiting for staff), and the
    // account stays Erasing until staff confirm them.
    let accounts = api(client, Kind::Account, "");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = stamped(client, "erasure").await?.len();
        let status = accounts.get(name).await?.data["status"].clone();
        let phase = status["phase"].as_str().map(str::to_owned);
        let requests = status["processors"].as_array().cloned().unwrap_or_default();
        let settled = !requests.is_empty() && requests.iter().all(|r| r["state"] != "Pending");
        if left == 0 && settled {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the erasure did not finish within 60 s ({left} objects left, phase {phase:?})"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    op.settle(
        server,
        client,
        Duration::from_secs(1),
        Duration::from_secs(30),
    )
    .await?;
    let requests = server.operator_requests()?;
    let counts = tally(&requests);
    let deletes = requests.iter().filter(|r| r.verb == "delete").count();
    let bound_gets = requests
        .iter()
        .filter(|r| r.verb == "get" && Kind::bound().any(|k| k.plural() == r.resource))
        .count();
    let account_gets = requests
        .iter()
        .filter(|r| r.verb == "get" && r.resource == "accounts")
        .count();
    let account_writes = requests
        .iter()
        .filter(|r| r.is_write() && r.resource == "accounts")
        .count();
    let event_writes = requests
        .iter()
        .filter(|r| r.is_write() && r.resource == "events")
        .count();
    let lists = requests.iter().filter(|r| r.verb == "list").count();
    let other_writes = requests
        .iter()
        .filter(|r| {
            r.is_write()
                && !matches!(
                    r.resource.as_str(),
                    "accounts" | "events" | "retentionpolicies"
                )
                && r.verb != "delete"
        })
        .count();
    let brake_writes = requests
        .iter()
        .filter(|r| r.is_write() && r.resource == "retentionpolicies")
        .count();
    let _ = writeln!(
        out,
        "\n### 3a. API cost of erasing one account with {n} bound objects\n"
    );
    let _ = writeln!(
        out,
        "All {n} fall due at the same second ({right} stamped beforehand). Counted from {}, operator's requests only, from just before deleteAt until every object is gone, every erasure request is handed to staff (the processors have no webhook) and the operator is idle.\n",
        server.request_source()
    );
    let _ = writeln!(out, "| Requests | Count | Target |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(out, "| delete (bound objects) | {deletes} | {n} |");
    let _ = writeln!(
        out,
        "| get of the bound objects (none: each DELETE is conditional on uid and resourceVersion) | {bound_gets} | 0 |"
    );
    let _ = writeln!(
        out,
        "| get of the Account (invariant 3: right before each DELETE) | {account_gets} | {n} |"
    );
    let _ = writeln!(
        out,
        "| writes to the Account (the deletions recorded, then counted) | {account_writes} | ≤ 2 per 100 deletions |"
    );
    let _ = writeln!(
        out,
        "| other writes to bound objects | {other_writes} | 0 |"
    );
    let _ = writeln!(
        out,
        "| writes of the RetentionPolicy's status (the brake's count, before the deletions) | {brake_writes} | ≤ 1 per 10 s of deleting |"
    );
    let _ = writeln!(out, "| list | {lists} | 0 |");
    let _ = writeln!(
        out,
        "| Event writes (Deleted events, not counted by the target) | {event_writes} | — |"
    );
    let _ = writeln!(
        out,
        "| all, by verb and resource | {} | |",
        tally_text(&counts)
    );
    let _ = writeln!(
        out,
        "| scheduling beforehand (stamps, finalizer, status, events) | {} | |",
        tally_text(&scheduling)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2 and 3b. Memory and the steady state.

struct MemoryRow {
    objects: usize,
    created: String,
    ready: Duration,
    settled: Duration,
    initial_peak: u64,
    steady: u64,
    per_object: String,
    relist_peak: String,
    relist_ratio: String,
    relist_requests: String,
    startup_requests: String,
}

/// Forces every watch of the operator to relist (see [`Server::provoke_relist`]) and waits
/// until every kind listed again and watches after its list. Returns the peak RSS of the
/// relist, its requests, how long it took and how long of that a real server's restart took.
async fn force_relist(
    server: &Server,
    client: &Client,
    op: &mut Operator,
) -> Result<(Memory, BTreeMap<String, usize>, Duration, Option<Duration>)> {
    op.reset_peak()?;
    server.clear_requests()?;
    // A streaming list is a watch: no LIST shows it in the request log, but the operator
    // counts every list its caches complete (an operator without that metric: empty).
    let lists_before = cache_lists(&op.metrics().await?);
    let counted = !lists_before.is_empty();
    let started = Instant::now();
    let restart = server.provoke_relist(client, started).await?;
    // Done once every kind has listed (since the relist was provoked) and has a watch after its
    // last list. kube's Controller pauses all its watches after each watch error, with one
    // exponential backoff shared by all (up to 30 s), so nine 410s take a while to get through.
    let deadline = Instant::now() + Duration::from_secs(180);
    let watched = watched();
    let outcome = loop {
        let requests = server.operator_requests()?;
        let lists = cache_lists(&op.metrics().await?);
        let pending: Vec<&str> = watched
            .iter()
            .filter(|w| {
                if counted {
                    return lists.get(*w) <= lists_before.get(*w);
                }
                let last_list = requests
                    .iter()
                    .rposition(|r| r.verb == "list" && r.resource == **w);
                let last_watch = requests
                    .iter()
                    .rposition(|r| r.verb == "watch" && r.resource == **w && r.code == 200);
                !matches!((last_list, last_watch), (Some(l), Some(w)) if w > l)
            })
            .map(String::as_str)
            .collect();
        if pending.is_empty() {
            break Ok(());
        }
        // A watch whose resume was not refused (its bookmark newer than the compaction) does
        // not list again, and the 410 comes inside a watch answered 200: with the count, the
        // kinds that have not listed after a while are taken as not refused.
        if counted && started.elapsed() > RELIST_PATIENCE {
            eprintln!(
                "memory: no relist of {} within {:?} (resumed without 410)",
                pending.join(", "),
                RELIST_PATIENCE
            );
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(format!(
                "{} did not relist within {:?} (operator requests: {})",
                pending.join(", "),
                deadline - started,
                tally_text(&tally(&requests)),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    server.end_relist();
    outcome?;
    op.settle(
        server,
        client,
        Duration::from_secs(1),
        Duration::from_secs(120),
    )
    .await?;
    let elapsed = started.elapsed();
    let memory = op.memory()?;
    let requests = server.operator_requests()?;
    let mut counts = tally(&requests);
    counts.retain(|k, _| !k.starts_with("watch "));
    let watches = requests.iter().filter(|r| r.verb == "watch").count();
    counts.insert("watch (incl. 410 answers)".into(), watches);
    // A restarted kube-apiserver refuses watches while its caches initialise.
    for r in requests
        .iter()
        .filter(|r| r.verb == "watch" && ![200, 410].contains(&r.code))
    {
        *counts
            .entry(format!("watch answered {}", r.code))
            .or_insert(0) += 1;
    }
    Ok((memory, counts, elapsed, restart))
}

/// Runs `shards` operator processes with `--shards shards` against the objects stored, waits
/// until each holds one shard and the requests have settled, and gives a table row with each
/// one's steady RSS.
async fn sharded_memory(
    server: &Server,
    client: &Client,
    kubeconfig: &Path,
    dir: &Path,
    shards: usize,
    objects: usize,
    base_kib: u64,
) -> Result<String> {
    let count = shards.to_string();
    let election = [
        "--leader-election=true",
        "--lease-namespace=default",
        "--lease-name=bench-shards",
        // Four processes each listing every object, and the server in this process, share
        // two cores: with the default 10 s renew deadline a replica's renewal can starve
        // during the initial lists (it then exits, as it must).
        "--lease-duration=60s",
        "--lease-renew-deadline=50s",
        "--lease-retry-period=5s",
        "--shards",
        count.as_str(),
    ];
    let mut ops = Vec::new();
    for i in 0..shards {
        let label = format!("shard-{i}-of-{shards}");
        let identity = format!("bench-replica-{i}");
        ops.push(Operator::start_as(
            kubeconfig,
            dir,
            &label,
            &election,
            Some(&identity),
        )?);
    }
    for op in &mut ops {
        op.wait_ready(Duration::from_secs(60)).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut held = Vec::new();
        for op in &mut ops {
            // A replica busy listing may answer late: asked again at the next poll.
            let text = op.metrics().await.unwrap_or_default();
            let leader = text
                .lines()
                .find_map(|l| l.strip_prefix("retention_operator_leader "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            held.push(leader);
        }
        if held.iter().all(|h| (*h - 1.0).abs() < f64::EPSILON) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the shards were not shared out within 300 s: {held:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ops[0]
        .settle(
            server,
            client,
            Duration::from_secs(2),
            Duration::from_secs(300),
        )
        .await?;
    let mut rss = Vec::new();
    for op in &mut ops {
        rss.push(op.steady_rss(Duration::from_secs(10)).await?.rss_kib);
    }
    let per_object: Vec<String> = rss
        .iter()
        .map(|r| {
            format!(
                "{:.2} KiB",
                (*r as f64 - base_kib as f64) / (objects as f64 / shards as f64)
            )
        })
        .collect();
    for op in ops {
        op.stop().await?;
    }
    Ok(format!(
        "| {shards} replicas, --shards {shards}, {objects} objects | {} | {} |",
        rss.iter().map(|r| mib(*r)).collect::<Vec<_>>().join(", "),
        per_object.join(", ")
    ))
}

/// How long a relist counted by `retention_operator_cache_lists_total` is waited for per kind.
const RELIST_PATIENCE: Duration = Duration::from_secs(60);

/// `retention_operator_cache_lists_total` by resource, from a scrape.
fn cache_lists(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("retention_operator_cache_lists_total{resource=\""))
        .filter_map(|rest| {
            let (resource, value) = rest.split_once("\"} ")?;
            Some((resource.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The resources the operator watches: every kind of the benchmark.
fn watched() -> Vec<String> {
    Kind::all().map(Kind::plural).collect()
}

/// How often the server cuts the operator's watches in the relist runs. Not a multiple of the
/// server's bookmark interval (1 s): a watch cut right after a bookmark would resume from the
/// newest resourceVersion and not be sent 410 Gone.
const CUT: Duration = Duration::from_millis(10_500);

async fn memory_phase(dir: &Path, out: &mut String) -> Result<()> {
    let sizes: Vec<usize> = std::env::var("DESIGN_TARGETS_SIZES")
        .unwrap_or_else(|_| "10000,50000".into())
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("DESIGN_TARGETS_SIZES: {e}"))?;
    let accounts = env_usize("DESIGN_TARGETS_ACCOUNTS", 1000)?.max(1);
    let steady_secs = env_usize("DESIGN_TARGETS_STEADY_SECS", 60)? as u64;
    let relist_all = std::env::var("DESIGN_TARGETS_RELIST").is_ok_and(|v| v == "all");
    let namespace = |a: usize| format!("cust-{a:04}");
    let namespaces: Vec<String> = (0..accounts).map(namespace).collect();
    let server = Server::start(dir, "memory", &namespaces).await?;
    let kubeconfig = server.kubeconfig().to_owned();
    let client = server.client()?;
    let mut setup = vec![policy()];
    setup.extend(processors());
    create_all(&client, &setup).await?;

    // Base: an empty cluster (the policy and four processors only).
    let mut op = Operator::start(&kubeconfig, dir, "memory-base")?;
    op.wait_ready(Duration::from_secs(30)).await?;
    op.settle(
        &server,
        &client,
        Duration::from_secs(1),
        Duration::from_secs(30),
    )
    .await?;
    let base = op.steady_rss(Duration::from_secs(15)).await?;
    op.stop().await?;
    eprintln!("memory: base RSS {}", mib(base.rss_kib));

    let now = Utc::now();
    let mut rows = Vec::new();
    let mut steady_text = String::new();
    let mut sharded_rows: Vec<String> = Vec::new();
    let mut created = 0;
    let mut per_account_done = 0;
    for (round, &size) in sizes.iter().enumerate() {
        // Grow the population to `size` objects spread evenly over the accounts. Every tenth
        // account is terminated a day ago: its objects are stamped, nothing is due for 29 days.
        let per_account = size.div_ceil(accounts);
        let mut objects = Vec::new();
        if round == 0 {
            let list: Vec<Object> = (0..accounts)
                .map(|a| {
                    let terminated = (a % 10 == 9).then(|| now - TimeDelta::days(1));
                    account(&format!("acct-{a:04}"), a, terminated, "memory")
                })
                .collect();
            create_all(&client, &list).await?;
        }
        for a in 0..accounts {
            for j in per_account_done..per_account {
                if created + objects.len() >= size {
                    break;
                }
                let taken = now - TimeDelta::hours(6) - TimeDelta::days((j / 10 % 50) as i64);
                objects.push(bound_object(
                    &format!("acct-{a:04}"),
                    a,
                    &namespace(a),
                    j,
                    taken,
                    "memory",
                ));
            }
        }
        let create_time = create_all(&client, &objects).await?;
        created += objects.len();
        per_account_done = per_account;
        eprintln!(
            "memory: {created} objects stored ({} created in {})",
            objects.len(),
            secs(create_time)
        );

        // A clean run (no faults): initial-list peak, steady RSS, and for the first size the
        // steady-state request count.
        let mut startup_requests = String::new();
        if round == 0 {
            server.clear_requests()?;
            let mut op = Operator::start(&kubeconfig, dir, &format!("steady-{created}"))?;
            op.wait_ready(Duration::from_secs(120)).await?;
            op.settle(
                &server,
                &client,
                Duration::from_secs(2),
                Duration::from_secs(300),
            )
            .await?;
            let startup = tally(&server.operator_requests()?);
            let _ = writeln!(
                steady_text,
                "| first start with {created} objects (stamps everything) | {} |",
                tally_text(&startup)
            );
            if steady_secs > 0 {
                let before = op.steady_rss(Duration::from_secs(15)).await?;
                server.clear_requests()?;
                let started = Instant::now();
                let mut max_rss = before.rss_kib;
                while started.elapsed() < Duration::from_secs(steady_secs) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    max_rss = max_rss.max(op.memory()?.rss_kib);
                }
                let requests = server.operator_requests()?;
                let writes = requests.iter().filter(|r| r.is_write()).count();
                let lists = requests.iter().filter(|r| r.verb == "list").count();
                let after = op.memory()?;
                let _ = writeln!(
                    steady_text,
                    "| {steady_secs} s of steady state, {accounts} accounts, {created} objects | {} (writes: {writes}, lists: {lists}; {:.1} requests per minute); RSS {} → {} (max {}) |",
                    tally_text(&tally(&requests)),
                    requests.len() as f64 * 60.0 / started.elapsed().as_secs_f64(),
                    mib(before.rss_kib),
                    mib(after.rss_kib),
                    mib(max_rss)
                );
            }
            op.stop().await?;
        }

        // The measured run: watches cut every CUT so that a relist can be forced.
        server.prepare_relist();
        server.clear_requests()?;
        let label = format!("memory-{created}");
        let mut op = Operator::start(&kubeconfig, dir, &label)?;
        let ready = op.wait_ready(Duration::from_secs(300)).await?;
        let settled = op
            .settle(
                &server,
                &client,
                Duration::from_secs(2),
                Duration::from_secs(300),
            )
            .await?;
        let startup = server.operator_requests()?;
        if round == 0 {
            let _ = writeln!(
                steady_text,
                "| restart with {created} objects, all stamped | {} |",
                tally_text(&tally(&startup))
            );
        }
        let startup_lists = startup.iter().filter(|r| r.verb == "list").count();
        let startup_writes = startup.iter().filter(|r| r.is_write()).count();
        let _ = write!(
            startup_requests,
            "{startup_lists} lists, {startup_writes} writes"
        );
        let steady = op.steady_rss(Duration::from_secs(20)).await?;
        let initial_peak = steady.hwm_kib;
        let per_object = (steady.rss_kib as f64 - base.rss_kib as f64) / created as f64;
        eprintln!(
            "memory: {created} objects: ready {}, steady {}, initial peak {}",
            secs(ready),
            mib(steady.rss_kib),
            mib(initial_peak)
        );
        let relist = relist_all || round + 1 == sizes.len();
        let (relist_peak, relist_requests, relist_time) = if !relist {
            (
                None,
                "not forced (DESIGN_TARGETS_RELIST=all)".into(),
                Duration::ZERO,
            )
        } else {
            match force_relist(&server, &client, &mut op).await {
                Ok((after, counts, elapsed, restart)) => (
                    Some(after.hwm_kib),
                    format!(
                        "{} in {}{}",
                        tally_text(&counts),
                        secs(elapsed),
                        restart.map_or(String::new(), |r| format!(
                            ", of which kube-apiserver's restart {}",
                            secs(r)
                        ))
                    ),
                    elapsed,
                ),
                Err(e) => (None, format!("relist failed: {e}"), Duration::ZERO),
            }
        };
        let _ = relist_time;
        server.clear_faults();
        op.stop().await?;
        let shards = env_usize("DESIGN_TARGETS_SHARDS", 1)?;
        if shards > 1 && round + 1 == sizes.len() {
            let line = sharded_memory(
                &server,
                &client,
                &kubeconfig,
                dir,
                shards,
                created,
                base.rss_kib,
            )
            .await
            .unwrap_or_else(|e| {
                format!("| {shards} replicas, --shards {shards} | failed: {e} | |")
            });
            sharded_rows.push(line);
        }
        rows.push(MemoryRow {
            objects: created,
            created: format!("{} in {}", objects.len(), secs(create_time)),
            ready,
            settled,
            initial_peak,
            steady: steady.rss_kib,
            per_object: format!("{per_object:.2} KiB"),
            relist_peak: relist_peak.map_or("n/a".into(), mib),
            relist_ratio: relist_peak.map_or("n/a".into(), |p| {
                format!("{:.2}×", p as f64 / steady.rss_kib as f64)
            }),
            relist_requests,
            startup_requests,
        });
    }

    let _ = writeln!(
        out,
        "\n### 2. Operator memory (VmRSS / VmHWM of the operator process)\n"
    );
    if !sharded_rows.is_empty() {
        let _ = writeln!(
            out,
            "Sharded (`DESIGN_TARGETS_SHARDS`): one operator process per shard, each after it holds one shard and the requests have settled.\n\n| Replicas | RSS of each replica | (RSS − base) / (objects / shards) |\n|---|---|---|"
        );
        for row in &sharded_rows {
            let _ = writeln!(out, "{row}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Base (empty cluster: one policy, four processors): RSS {}, peak {}. Objects spread over {accounts} accounts (one in ten terminated a day ago), created by server-side apply, so each carries managedFields.\n",
        mib(base.rss_kib),
        mib(base.hwm_kib)
    );
    let _ = writeln!(
        out,
        "| Objects | Created (server-side apply, 32 at a time) | Ready after | Settled after | Initial-list peak (HWM) | Steady RSS | (RSS − base) / object | Relist peak (HWM) | Relist peak / steady | Startup requests | Relist requests |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.objects,
            row.created,
            secs(row.ready),
            secs(row.settled),
            mib(row.initial_peak),
            mib(row.steady),
            row.per_object,
            row.relist_peak,
            row.relist_ratio,
            row.startup_requests,
            row.relist_requests
        );
    }
    if rows.len() >= 2 {
        let (a, b) = (&rows[0], &rows[rows.len() - 1]);
        let slope = (b.steady as f64 - a.steady as f64) / (b.objects as f64 - a.objects as f64);
        let _ = writeln!(
            out,
            "\nMarginal cost between {} and {} objects: {slope:.2} KiB per object.",
            a.objects, b.objects
        );
    }
    let _ = writeln!(out, "\n### 3b. Requests of a steady state (nothing due)\n");
    let _ = writeln!(out, "| Window | Operator requests |");
    let _ = writeln!(out, "|---|---|");
    out.push_str(&steady_text);
    server.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. Burst: deletion throughput at the limit, the operator beside a bare client.

/// The namespace of the burst phase.
const BURST_NAMESPACE: &str = "cust-burst";
/// The `bench-set` of the objects the operator deletes.
const BURST_SET: &str = "burst";
/// Deletions in flight at once for the bare client: the operator's `--concurrency`.
const BARE_CONCURRENCY: usize = 8;
/// The bare client's User-Agent. It begins as the operator's does so that both request sources
/// count it (the test server's log keeps everything but `BENCH_AGENT`, the audit log reader
/// the operator's User-Agent): no operator runs while the bare client deletes.
const BARE_AGENT: &str = "retention-operator/bare-client (design-targets-bench)";

/// One contender's row of the burst table.
struct BurstRow {
    contender: String,
    objects: usize,
    /// Deletions seen by the benchmark's watch.
    deleted: usize,
    /// Deletions per second from the due second (the operator) or the first request (a bare
    /// client) to the last deletion seen.
    rate: Option<f64>,
    /// Deletions per second from the first deletion seen to the last.
    rate_first_last: Option<f64>,
    requests: BTreeMap<String, usize>,
    /// CPU time of the operator process from just before the due second to the last deletion.
    cpu: Option<Duration>,
    /// CPU time of this process meanwhile: on the test server, mostly the server's (and, for
    /// a bare client, the client's too).
    bench_cpu: Duration,
    /// Deletion seen − deleteAt.
    lateness: Option<Stats>,
    /// p99 of the operator's lateness histogram.
    histogram_p99: String,
}

/// What the operator's burst measured besides its row.
struct OperatorBurst {
    row: BurstRow,
    accounts: usize,
    created: Duration,
    /// Seconds left before the due second when every object was stamped and the operator idle.
    margin: f64,
    /// The operator's requests from the clear to the last deletion seen (the row's go on until
    /// it settled after it).
    requests_at_last: usize,
    /// CPU time from just before the due second until the operator settled after the burst.
    cpu_settled: Duration,
    memory: Memory,
}

/// The accounts of `set` (`<set>-NNNN`) and their `per_account` bound objects each, in
/// `bound_object`'s mix without its invoices (the Bookkeeping Act keeps those past the grace
/// period), so that everything falls due at `terminated` + the grace period.
fn burst_set(
    set: &str,
    accounts: usize,
    per_account: usize,
    terminated: DateTime<Utc>,
) -> (Vec<Object>, Vec<Object>) {
    let mut account_list = Vec::new();
    let mut objects = Vec::new();
    for a in 0..accounts {
        let name = format!("{set}-{a:04}");
        let customer = 80_000 + a;
        account_list.push(account(&name, customer, Some(terminated), set));
        objects.extend((0..).filter(|i| i % 10 != 6).take(per_account).map(|i| {
            let object = bound_object(
                &name,
                customer,
                BURST_NAMESPACE,
                i,
                terminated - TimeDelta::hours(1),
                set,
            );
            prefixed(&name, object)
        }));
    }
    (account_list, objects)
}

/// How many deletions the benchmark's watch has seen in all.
fn seen_count(seen: &Seen) -> usize {
    seen.lock().map(|s| s.len()).unwrap_or(0)
}

/// Waits until the watch has seen `n` deletions more than `base`, or `until`. Counting (not
/// matching keys) keeps the poll cheap beside the operator on two cores; only the measured set
/// is deleted meanwhile.
async fn wait_seen(seen: &Seen, base: usize, n: usize, until: DateTime<Utc>) {
    while seen_count(seen) < base + n && Utc::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// When the watch saw each of `keys` deleted, the ones it saw.
fn seen_at<'a>(
    seen: &Seen,
    keys: impl Iterator<Item = &'a String>,
) -> HashMap<String, DateTime<Utc>> {
    let Ok(seen) = seen.lock() else {
        return HashMap::new();
    };
    keys.filter_map(|k| Some((k.clone(), *seen.get(k)?)))
        .collect()
}

/// Deletions per second from `start` to the last deletion, and from the first to the last.
fn rates(
    start: DateTime<Utc>,
    times: &HashMap<String, DateTime<Utc>>,
) -> (Option<f64>, Option<f64>) {
    let (Some(first), Some(last)) = (times.values().min(), times.values().max()) else {
        return (None, None);
    };
    let n = times.len() as f64;
    let over = |from: DateTime<Utc>, count: f64| {
        let secs = (*last - from).as_seconds_f64();
        (secs > 0.0).then(|| count / secs)
    };
    (over(start, n), over(*first, n - 1.0))
}

async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(left) = (at - Utc::now()).to_std() {
        tokio::time::sleep(left).await;
    }
}

/// The operator's row label: which binary, when it is not this build's.
fn operator_label() -> String {
    match std::env::var("DESIGN_TARGETS_OPERATOR") {
        Ok(path) => format!("operator (`{path}`)"),
        Err(_) => "operator (this build)".into(),
    }
}

/// Creates the burst's accounts and objects, all due at `due`, and waits until the running
/// operator stamped every object with it and settled. Returns each object's deleteAt and how
/// long creating took.
async fn create_burst(
    server: &Server,
    client: &Client,
    op: &mut Operator,
    accounts: usize,
    per_account: usize,
    due: DateTime<Utc>,
) -> Result<(HashMap<String, DateTime<Utc>>, Duration)> {
    let (account_list, objects) = burst_set(
        BURST_SET,
        accounts,
        per_account,
        due - TimeDelta::days(GRACE_DAYS),
    );
    let created = create_all(client, &account_list).await? + create_all(client, &objects).await?;
    eprintln!(
        "burst: {} accounts and {} objects created in {}",
        account_list.len(),
        objects.len(),
        secs(created)
    );
    let expected: HashMap<String, DateTime<Utc>> = objects.iter().map(|o| (o.key(), due)).collect();
    let (right, wrong) =
        wait_stamped(client, BURST_SET, &expected, due - TimeDelta::seconds(3)).await?;
    if right < expected.len() {
        return Err(format!(
            "only {right} of {} objects were stamped 3 s before the due second ({wrong} with \
             another time): raise DESIGN_TARGETS_BURST_LEAD_SECS",
            expected.len()
        )
        .into());
    }
    // Idle before the due second, so that the requests and CPU counted are the burst's.
    let left = (due - Utc::now() - TimeDelta::seconds(2))
        .to_std()
        .unwrap_or_default();
    op.settle(server, client, Duration::from_secs(1), left)
        .await
        .map_err(|e| format!("{e} before the due second: raise DESIGN_TARGETS_BURST_LEAD_SECS"))?;
    Ok((expected, created))
}

/// The operator's burst: `accounts` × `per_account` objects due at the same whole second,
/// `lead` after now; measured until the watch has seen every one deleted (or a deadline) and
/// the operator settled after.
async fn operator_burst(
    server: &Server,
    client: &Client,
    seen: &Seen,
    dir: &Path,
    (accounts, per_account): (usize, usize),
    lead: Duration,
) -> Result<OperatorBurst> {
    let mut op = Operator::start(server.kubeconfig(), dir, "burst")?;
    op.wait_ready(Duration::from_secs(30)).await?;
    let due = whole_seconds(Utc::now() + TimeDelta::from_std(lead)?) + TimeDelta::seconds(1);
    let (expected, created) =
        create_burst(server, client, &mut op, accounts, per_account, due).await?;
    let margin = (due - Utc::now()).as_seconds_f64();
    eprintln!("burst: stamped and settled {margin:.1} s before the due second");
    server.clear_requests()?;
    let base = seen_count(seen);
    sleep_until(due - TimeDelta::milliseconds(100)).await;
    let cpu_before = op.cpu()?;
    let bench_cpu_before = process_cpu("self")?;
    // Generous: 60 s, and 20 ms per object beyond it (50 deletions/s).
    let until = due + TimeDelta::seconds(60) + TimeDelta::milliseconds(20 * expected.len() as i64);
    wait_seen(seen, base, expected.len(), until).await;
    let cpu = op.cpu()? - cpu_before;
    let bench_cpu = process_cpu("self")? - bench_cpu_before;
    let memory = op.memory()?;
    let requests_at_last = server.operator_requests()?.len();
    op.settle(
        server,
        client,
        Duration::from_secs(1),
        Duration::from_secs(120),
    )
    .await?;
    let cpu_settled = op.cpu()? - cpu_before;
    let requests = tally(&server.operator_requests()?);
    let histogram_p99 = bucket_quantile(&lateness_buckets(&op.metrics().await?), 0.99);
    op.stop().await?;
    let times = seen_at(seen, expected.keys());
    let lateness = times
        .iter()
        .filter_map(|(k, at)| Some((*at - *expected.get(k)?).as_seconds_f64()))
        .collect();
    let (rate, rate_first_last) = rates(due, &times);
    let row = BurstRow {
        contender: operator_label(),
        objects: expected.len(),
        deleted: times.len(),
        rate,
        rate_first_last,
        requests,
        cpu: Some(cpu),
        bench_cpu,
        lateness: stats(lateness),
        histogram_p99,
    };
    Ok(OperatorBurst {
        row,
        accounts,
        created,
        margin,
        requests_at_last,
        cpu_settled,
        memory,
    })
}

/// Deletes `object` of `kind` with the bare client, on the uid and resourceVersion given, or
/// on those of a GET made first.
async fn bare_delete(
    client: &Client,
    kind: Kind,
    object: &DynamicObject,
    get_first: bool,
) -> Result<()> {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let api = api(client, kind, &namespace);
    let meta = if get_first {
        api.get(&name).await?.metadata
    } else {
        object.metadata.clone()
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.uid,
            resource_version: meta.resource_version,
        }),
        ..DeleteParams::default()
    };
    api.delete(&name, &params)
        .await
        .map_err(|e| format!("deleting {}/{namespace}/{name}: {e}", kind.plural()))?;
    Ok(())
}

/// The requests counted since the last clear, once their number stopped changing (a real
/// server's audit log is written a moment after the answers).
async fn settled_requests(server: &Server) -> Result<Vec<RequestRecord>> {
    let mut requests = server.operator_requests()?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = server.operator_requests()?;
        if again.len() == requests.len() {
            break;
        }
        requests = again;
    }
    Ok(requests)
}

/// A bare client's burst, no operator running: the same number of objects as the operator's
/// (set `set`, no Accounts: nothing reads them), listed before timing starts, then deleted
/// `BARE_CONCURRENCY` at a time with uid and resourceVersion preconditions, from the list or,
/// with `get_first`, from a GET of each right before its DELETE.
async fn bare_burst(
    server: &Server,
    client: &Client,
    seen: &Seen,
    set: &str,
    (accounts, per_account): (usize, usize),
    get_first: bool,
) -> Result<BurstRow> {
    // Long terminated: no operator runs to read it.
    let (_, objects) = burst_set(set, accounts, per_account, Utc::now() - TimeDelta::days(1));
    create_all(client, &objects).await?;
    let mut targets = Vec::new();
    for kind in Kind::bound() {
        let list = api(client, kind, "")
            .list(&ListParams::default().labels(&format!("bench-set={set}")))
            .await?;
        targets.extend(list.items.into_iter().map(|object| (kind, object)));
    }
    let bare = server.client_as(BARE_AGENT)?;
    server.clear_requests()?;
    let base = seen_count(seen);
    let start = Utc::now();
    let bench_cpu_before = process_cpu("self")?;
    stream::iter(&targets)
        .map(|(kind, object)| bare_delete(&bare, *kind, object, get_first))
        .buffer_unordered(BARE_CONCURRENCY)
        .try_for_each(|()| futures::future::ready(Ok(())))
        .await?;
    wait_seen(
        seen,
        base,
        targets.len(),
        Utc::now() + TimeDelta::seconds(30),
    )
    .await;
    let bench_cpu = process_cpu("self")? - bench_cpu_before;
    let requests = settled_requests(server).await?;
    let keys: Vec<String> = objects.iter().map(Object::key).collect();
    let times = seen_at(seen, keys.iter());
    let (rate, rate_first_last) = rates(start, &times);
    eprintln!(
        "burst: bare client{} deleted {} objects at {:.0}/s",
        if get_first {
            " (GET, DELETE)"
        } else {
            " (DELETE)"
        },
        times.len(),
        rate.unwrap_or(0.0)
    );
    Ok(BurstRow {
        contender: if get_first {
            format!("bare client, GET then DELETE ({BARE_CONCURRENCY} at a time)")
        } else {
            format!("bare client, DELETE only ({BARE_CONCURRENCY} at a time)")
        },
        objects: objects.len(),
        deleted: times.len(),
        rate,
        rate_first_last,
        requests: tally(&requests),
        cpu: None,
        bench_cpu,
        lateness: None,
        histogram_p99: "—".into(),
    })
}

/// The lead before the due second: `DESIGN_TARGETS_BURST_LEAD_SECS`, else 30 s and 3 ms per
/// object (stamping 10,000 objects takes the test server's operator about 15 s on two cores).
fn burst_lead(objects: usize) -> Result<Duration> {
    match std::env::var("DESIGN_TARGETS_BURST_LEAD_SECS") {
        Ok(_) => Ok(Duration::from_secs(
            env_usize("DESIGN_TARGETS_BURST_LEAD_SECS", 0)? as u64,
        )),
        Err(_) => Ok(Duration::from_secs(30) + Duration::from_millis(3 * objects as u64)),
    }
}

async fn burst_phase(dir: &Path, out: &mut String) -> Result<()> {
    let accounts = env_usize("DESIGN_TARGETS_BURST_ACCOUNTS", 1000)?.max(1);
    let per_account = env_usize("DESIGN_TARGETS_BURST_PER_ACCOUNT", 10)?.max(1);
    let lead = burst_lead(accounts * per_account)?;
    let server = Server::start(dir, "burst", &[BURST_NAMESPACE.to_owned()]).await?;
    let client = server.client()?;
    let mut setup = vec![policy()];
    setup.extend(processors());
    create_all(&client, &setup).await?;
    let (seen, watches) = watch_deletions(&client).await?;
    let size = (accounts, per_account);
    let operator = operator_burst(&server, &client, &seen, dir, size, lead).await?;
    eprintln!(
        "burst: the operator deleted {} of {} objects",
        operator.row.deleted, operator.row.objects
    );
    let delete_only = bare_burst(&server, &client, &seen, "burst-bare-delete", size, false).await?;
    let get_delete = bare_burst(&server, &client, &seen, "burst-bare-get", size, true).await?;
    for task in watches {
        task.abort();
    }
    burst_table(&server, &operator, &[delete_only, get_delete], out);
    server.shutdown().await;
    Ok(())
}

/// A row of the burst table; `reference` is bare DELETE's rate.
fn burst_line(row: &BurstRow, reference: Option<f64>) -> String {
    let rate = |r: Option<f64>| r.map_or("n/a".into(), |r| format!("{r:.0}"));
    let deleted = row.deleted.max(1) as f64;
    let requests: usize = row.requests.values().sum();
    let lateness = |f: fn(&Stats) -> f64| {
        row.lateness
            .as_ref()
            .map_or("—".into(), |s| format!("{:.3} s", f(s)))
    };
    format!(
        "| {} | {}{} | {} | {} | {} | {:.2} | {} | {:.2} ms | {} | {} | {} | {} |",
        row.contender,
        row.objects,
        if row.deleted < row.objects {
            format!(" ({} not deleted)", row.objects - row.deleted)
        } else {
            String::new()
        },
        rate(row.rate),
        rate(row.rate_first_last),
        match (row.rate, reference) {
            (Some(r), Some(b)) if b > 0.0 => format!("{:.2}×", r / b),
            _ => "n/a".into(),
        },
        requests as f64 / deleted,
        row.cpu.map_or("—".into(), |c| format!(
            "{:.2} ms",
            c.as_secs_f64() * 1000.0 / deleted
        )),
        row.bench_cpu.as_secs_f64() * 1000.0 / deleted,
        lateness(|s| s.p50),
        lateness(|s| s.p99),
        lateness(|s| s.max),
        row.histogram_p99,
    )
}

fn burst_table(server: &Server, operator: &OperatorBurst, bare: &[BurstRow], out: &mut String) {
    let op = &operator.row;
    let deleted = op.deleted.max(1) as f64;
    let _ = writeln!(
        out,
        "\n### 4. Deletion throughput at the limit: the operator beside a bare client\n"
    );
    let _ = writeln!(
        out,
        "{} objects of {} terminated accounts ({} each; websites, databases, mailboxes, domains, CRM records, backups) fall due at the same whole second; the operator (started before they were created) had stamped every one and was idle {:.1} s before it (created in {}). Then the same number of objects, no Accounts and no operator, deleted by a plain kube client, {BARE_CONCURRENCY} at a time, with uid and resourceVersion preconditions from a LIST made before timing (DELETE only) or from a GET right before each DELETE. Deletions are timed by a watch of the benchmark's; requests counted from {}: the operator's from when it was idle before the due second until it was idle after the burst ({} of them by the last deletion), the bare client's from its first request (its LIST not counted). CPU: utime + stime of the operator process from just before the due second to the last deletion seen ({:.2} ms per deletion until it was idle again). Operator RSS after the last deletion: {} (peak {}).\n",
        op.objects,
        operator.accounts,
        op.objects / operator.accounts.max(1),
        operator.margin,
        secs(operator.created),
        server.request_source(),
        operator.requests_at_last,
        operator.cpu_settled.as_secs_f64() * 1000.0 / deleted,
        mib(operator.memory.rss_kib),
        mib(operator.memory.hwm_kib),
    );
    let _ = writeln!(
        out,
        "| Contender | Objects | Deletions/s (due second or first request → last deletion) | Deletions/s (first → last deletion) | Ratio to bare DELETE | Requests per deletion | Operator CPU per deletion | Benchmark process CPU per deletion | Lateness p50 (watch) | p99 | max | p99 (operator histogram) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let reference = bare.first().and_then(|b| b.rate);
    for row in std::iter::once(op).chain(bare) {
        let _ = writeln!(out, "{}", burst_line(row, reference));
    }
    let _ = writeln!(
        out,
        "\nThe operator's requests, by verb and resource (code when not 2xx):\n"
    );
    let _ = writeln!(out, "| Request | Count | Per deletion |");
    let _ = writeln!(out, "|---|---|---|");
    for (what, n) in &op.requests {
        let _ = writeln!(out, "| {what} | {n} | {:.3} |", *n as f64 / deleted);
    }
    for row in bare {
        let _ = writeln!(out, "\n{}: {}.", row.contender, tally_text(&row.requests));
    }
}

// ---------------------------------------------------------------------------------------------

async fn run() -> Result<()> {
    let phases =
        std::env::var("DESIGN_TARGETS_PHASES").unwrap_or_else(|_| "latency,erasure,memory".into());
    let dir = std::env::temp_dir().join(format!("design-targets-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("operator logs and kubeconfigs in {}", dir.display());
    let started = Instant::now();
    let mut out = String::new();
    if phases.contains("latency") || phases.contains("erasure") {
        latency_phase(
            &dir,
            phases.contains("latency"),
            phases.contains("erasure"),
            &mut out,
        )
        .await?;
    }
    if phases.contains("memory") {
        memory_phase(&dir, &mut out).await?;
    }
    if phases.contains("burst") {
        burst_phase(&dir, &mut out).await?;
    }
    println!("\n## retention-operator design targets\n");
    let server = match std::env::var("DESIGN_TARGETS_KUBECONFIG") {
        Ok(kubeconfig) => format!(
            "the API server of `{kubeconfig}` (requests counted from its audit log, relists forced by restarting it)"
        ),
        Err(_) => "in-memory API server in the benchmark process".into(),
    };
    let operator = operator();
    let concurrency = env_usize("DESIGN_TARGETS_CONCURRENCY", 8)?;
    let extra = std::env::var("DESIGN_TARGETS_OPERATOR_ARGS").unwrap_or_default();
    println!(
        "Operator: `{}` (separate process, `--concurrency {concurrency}{}{extra}`), {server}; {} in all.",
        Path::new(&operator)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("retention-operator"),
        if extra.is_empty() { "" } else { " " },
        secs(started.elapsed())
    );
    println!("{out}");
    Ok(())
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}
