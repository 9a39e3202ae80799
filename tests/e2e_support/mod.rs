//! The end-to-end harness: the test API server, the real operator in-process with an injected
//! clock, and polling with deadlines.
#![allow(dead_code)]

use std::{
    future::Future,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use chrono::{DateTime, Utc};
use kube::Client;
use retention_operator::{
    clock::ManualClock,
    controller::{self, Settings},
    metrics::Metrics,
};
use test_apiserver::{Config, TestApiServer};

pub const NAMESPACE: &str = "cust-acme";
pub const DEADLINE: Duration = Duration::from_secs(20);

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
    pub metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    operator: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub async fn start(now: DateTime<Utc>) -> Self {
        let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
        let server = TestApiServer::start(Config::default().crds(crds).namespace(NAMESPACE))
            .await
            .unwrap();
        let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let settings = Settings {
            clock: clock.clone(),
            clock_moves: Some(Box::pin(clock.moves())),
            dry_run: false,
            concurrency: 4,
        };
        let ready = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(Metrics::new());
        let operator = tokio::spawn(controller::run(
            client.clone(),
            settings,
            metrics.clone(),
            ready,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            server,
            client,
            clock,
            metrics,
            stop: Some(stop),
            operator,
        }
    }

    /// Account reconciles finished so far, read from the operator's own metrics.
    pub fn reconciles(&self) -> u64 {
        let text = self.metrics.encode().unwrap();
        text.lines()
            .find(|l| l.starts_with("retention_operator_reconcile_duration_seconds_count{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
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

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, self.operator)
            .await
            .unwrap()
            .unwrap();
    }
}
