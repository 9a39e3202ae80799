//! `retention-operator sandbox`: the real operator on the in-memory API server of the tests,
//! with a clock that runs faster than real time, for a first look without a cluster.
//!
//! It starts the API server in this process with the operator's CRDs, loads the manifests
//! (the examples built into the binary unless files are given), points every processor's
//! webhook at a local HTTPS receiver that acknowledges each erasure request, writes a
//! kubeconfig for kubectl, and runs the operator: the same controllers as `run`, reading the
//! sandbox's clock. While it runs it prints a timeline from the operator's audit trail and the
//! Accounts' phases, and at the end a summary.
//!
//! Built only with the `sandbox` cargo feature (on by default; the container image leaves it
//! out), since it carries the test API server.

pub mod clock;
pub mod manifests;
pub mod receiver;
pub mod timeline;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::channel::mpsc;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use crate::api::Account;
use crate::clock::Clock;
use crate::controller::{self, InitialLists, Settings};
use crate::leader::Fence;
use crate::metrics::Metrics;
use clock::ScaledClock;
use receiver::Receiver;
use timeline::{Happening, Tally};

/// Where the examples' dates are chosen for: the day their README's plan is read on.
pub const EXAMPLES_NOW: &str = "2026-11-23T00:00:00Z";
/// How long the sandbox runs by default, in its own time: past every example's grace period.
pub const DEFAULT_SPAN: chrono::TimeDelta = chrono::TimeDelta::days(31);
/// Requests to the in-memory server take microseconds; this only bounds a bug.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the sandbox looks whether the operator's caches have synced.
const READY_POLL: Duration = Duration::from_millis(10);

/// What the sandbox runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Files or directories of manifests; empty: the built-in examples.
    pub manifests: Vec<PathBuf>,
    /// How many times faster than real time the sandbox's clock runs.
    pub speed: f64,
    /// Where the sandbox's clock starts.
    pub from: DateTime<Utc>,
    /// Where it stops.
    pub until: DateTime<Utc>,
    /// The API server's port on 127.0.0.1 (0: a free one).
    pub port: u16,
    /// Where the kubeconfig for kubectl is written.
    pub kubeconfig: PathBuf,
    /// Keep the API server up after the summary, until Ctrl-C, for kubectl.
    pub stay: bool,
}

impl Options {
    /// Refuses what cannot run.
    pub fn validate(&self) -> Result<(), SandboxError> {
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= 1e9) {
            return Err(SandboxError::Options(format!(
                "--speed must be above 0 and at most 1e9, not {}",
                self.speed
            )));
        }
        if self.until <= self.from {
            return Err(SandboxError::Options(format!(
                "--until ({}) must be after --from ({})",
                crate::clock::rfc3339(self.until),
                crate::clock::rfc3339(self.from)
            )));
        }
        Ok(())
    }
}

/// Why the sandbox cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// The CRDs could not be rendered or written.
    #[error("cannot prepare the CRDs: {0}")]
    Crds(String),
    /// The API server did not start.
    #[error("cannot start the in-memory API server: {0}")]
    Server(String),
    /// The webhook receiver did not start.
    #[error("cannot start the webhook receiver: {0}")]
    Receiver(String),
    /// A manifest could not be read.
    #[error("cannot read {path}: {reason}", path = .0.display(), reason = .1)]
    Read(PathBuf, String),
    /// An object could not be created.
    #[error("cannot create {0} {1}: {2}")]
    Create(String, String, String),
    /// The kubeconfig could not be written.
    #[error("cannot write the kubeconfig {path}: {reason}", path = .0.display(), reason = .1)]
    Kubeconfig(PathBuf, String),
    /// The client of the in-memory server could not be made.
    #[error("cannot connect to the in-memory API server: {0}")]
    Client(String),
}

impl SandboxError {
    /// Whether the user's input is at fault (options or manifests), not the sandbox.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Options(_) | Self::Read(..))
    }
}

/// Runs the sandbox until its clock reaches `until` (or Ctrl-C), printing the timeline to
/// stdout as it goes; `timeline` receives the operator's audit records (see
/// [`timeline::layer`]), `phases` is a sender into the same timeline.
pub async fn run(
    options: Options,
    timeline: mpsc::UnboundedReceiver<Happening>,
    phases: mpsc::UnboundedSender<Happening>,
) -> Result<(), SandboxError> {
    options.validate()?;
    // Bad input is refused before anything starts.
    let mut documents = if options.manifests.is_empty() {
        manifests::examples()?
    } else {
        manifests::read(&options.manifests)?
    };
    let server = start_server(&options).await?;
    let client = client_of(&server.url())?;

    let receiver = Receiver::start().await?;
    let secrets = manifests::redirect_webhooks(&mut documents, &receiver);
    documents.extend(secrets);
    let created = manifests::create_all(&client, &documents).await?;

    let clock = ScaledClock::new(options.from, options.speed);
    println!(
        "Sandbox: {created} objects on an in-memory API server at {}, the clock at {} running \
         {} times real time until {}.",
        server.url(),
        crate::clock::rfc3339(options.from),
        options.speed,
        crate::clock::rfc3339(options.until),
    );
    println!(
        "While it runs: kubectl --kubeconfig {} get hosting -A",
        options.kubeconfig.display()
    );
    println!();

    let (done, finished) = tokio::sync::oneshot::channel();
    let printer = tokio::spawn(print_timeline(timeline, finished));
    let watch = tokio::spawn(watch_phases(client.clone(), clock.clone(), phases));
    let operator = run_operator(client.clone(), clock.clone(), &options);
    tokio::select! {
        () = operator => {}
        _ = tokio::signal::ctrl_c() => println!("Interrupted."),
    }
    watch.abort();
    let _ = done.send(());
    let mut tally = printer.await.unwrap_or_default();
    // The summary shows every Account as the API server has it at the end.
    if let Some(phases) = phases_now(&client).await {
        tally.phases = phases;
    }
    println!();
    print!(
        "{}",
        tally.summary(options.from, clock.now().min(options.until))
    );
    let (posts, distinct) = receiver.received();
    println!(
        "  the sandbox's receiver acknowledged {distinct} erasure requests in {posts} deliveries \
         (at this speed an answer can be forgotten before its account's next pass records it; \
         the request is then sent again with its idempotency key)"
    );
    if options.stay {
        println!(
            "The API server keeps running for kubectl --kubeconfig {}; Ctrl-C stops it.",
            options.kubeconfig.display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = std::fs::remove_file(&options.kubeconfig);
    server.shutdown().await;
    Ok(())
}

/// Starts the in-memory API server with the operator's CRDs and writes its kubeconfig.
async fn start_server(options: &Options) -> Result<test_apiserver::TestApiServer, SandboxError> {
    let crds = tempdir()?;
    crate::crds::write_all(&crds).map_err(|e| SandboxError::Crds(e.to_string()))?;
    let config = test_apiserver::Config {
        port: options.port,
        ..test_apiserver::Config::default()
    }
    .crds(&crds);
    let started = test_apiserver::TestApiServer::start(config).await;
    let _ = std::fs::remove_dir_all(&crds);
    let server = started.map_err(|e| SandboxError::Server(e.to_string()))?;
    std::fs::write(&options.kubeconfig, server.kubeconfig())
        .map_err(|e| SandboxError::Kubeconfig(options.kubeconfig.clone(), e.to_string()))?;
    Ok(server)
}

/// Every Account's phase as the API server has it; `None` if it cannot be listed.
async fn phases_now(client: &Client) -> Option<BTreeMap<String, String>> {
    let accounts = Api::<Account>::all(client.clone())
        .list(&Default::default())
        .await
        .ok()?;
    let phases = accounts.items.iter().map(|account| {
        let phase = account.status.as_ref().and_then(|s| s.phase);
        let phase = phase.map_or("(not planned)", |p| p.as_str());
        (kube::ResourceExt::name_any(account), phase.to_owned())
    });
    Some(phases.collect())
}

/// Runs the operator until the sandbox's clock reaches `until`. The clock starts once the
/// operator's caches have synced.
async fn run_operator(client: Client, clock: ScaledClock, options: &Options) {
    let settings = Settings {
        clock: Arc::new(clock.clone()),
        clock_moves: Some(clock.ticks()),
        dry_run: false,
        concurrency: 4,
        advance_notice: chrono::TimeDelta::hours(24),
        fence: Fence::unfenced(REQUEST_TIMEOUT),
        // The brake counts in the sandbox's time; its writes are spaced in real time.
        brake_write_interval: Duration::from_millis(200),
        // The receiver listens on loopback, which webhooks may not use unless allowed.
        webhook_allowed_networks: "127.0.0.0/8".parse().into_iter().collect(),
        initial_lists: InitialLists::Auto,
        shard: Default::default(),
    };
    let ready = Arc::new(AtomicBool::new(false));
    let until = clock.real_until(options.until);
    let synced = ready.clone();
    let stop = async move {
        while !synced.load(Ordering::Acquire) {
            tokio::time::sleep(READY_POLL).await;
        }
        clock.start();
        tokio::time::sleep(until).await;
    };
    controller::run(client, settings, Arc::new(Metrics::new()), ready, stop).await;
}

/// Prints every happening as it comes, until `finished`; then what is still queued, and the
/// tally. (The tracing layer keeps its sender for good, so the channel never closes.)
async fn print_timeline(
    mut timeline: mpsc::UnboundedReceiver<Happening>,
    mut finished: tokio::sync::oneshot::Receiver<()>,
) -> Tally {
    let mut tally = Tally::default();
    let show = |happening: Happening, tally: &mut Tally| {
        println!("{}", timeline::line(&happening));
        tally.count(&happening);
    };
    loop {
        tokio::select! {
            happening = timeline.next() => match happening {
                Some(happening) => show(happening, &mut tally),
                None => return tally,
            },
            _ = &mut finished => break,
        }
    }
    while let Ok(happening) = timeline.try_recv() {
        show(happening, &mut tally);
    }
    tally
}

/// Sends each Account's phase whenever it changes.
async fn watch_phases(
    client: Client,
    clock: ScaledClock,
    phases: mpsc::UnboundedSender<Happening>,
) {
    let accounts: Api<Account> = Api::all(client);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut stream = watcher(accounts, watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Some(Ok(account)) = stream.next().await {
        let Some(phase) = account.status.as_ref().and_then(|s| s.phase) else {
            continue;
        };
        let name = kube::ResourceExt::name_any(&account);
        let to = phase.as_str().to_owned();
        let from = seen.insert(name.clone(), to.clone());
        if from.as_ref() != Some(&to) {
            let _ = phases.unbounded_send(Happening::Phase {
                at: clock.now(),
                account: name,
                from,
                to,
            });
        }
    }
}

/// A client of the in-memory server.
fn client_of(url: &str) -> Result<Client, SandboxError> {
    let uri = url
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| SandboxError::Client(e.to_string()))?;
    let config = controller::client_config(kube::Config::new(uri));
    Client::try_from(config).map_err(|e| SandboxError::Client(e.to_string()))
}

/// A fresh directory for the CRD files.
fn tempdir() -> Result<PathBuf, SandboxError> {
    let dir = std::env::temp_dir().join(format!("retention-sandbox-crds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| SandboxError::Crds(e.to_string()))?;
    Ok(dir)
}
