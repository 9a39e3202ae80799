//! Wiring: the watches, caches and the account controller, run until shutdown.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use kube::{
    Client, ResourceExt,
    api::Api,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        events::Reporter,
        reflector::{self, ObjectRef, Store},
        utils::Backoff,
        watcher,
    },
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    account, cluster,
    compact::{self, Compact},
    context::{
        BoundCache, BoundCaches, Context, Error, FailureBackoff, KindCache, SharedSettings, Stores,
        Superseded, Tombstones, spawn_cancellable,
    },
    guarded::Guarded,
    in_place::reflect_in_place,
    lists::{self, InitialLists},
    orphans, processors, transfers,
};
use crate::{
    api::{Account, DataProcessor, ErasureReceipt, RetentionPolicy},
    clock::Clock,
    kinds::{BoundKind, KindVisitor, ResourceKind},
    leader::Fence,
    metrics::{Census, CensusTaker, Metrics},
    notifier::{DestinationPolicy, Notifier},
    shard::Shard,
};

/// How the operator runs.
pub struct Settings {
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
    /// Announces jumps of an injected clock, so every account is looked at again at once.
    pub clock_moves: Option<Pin<Box<dyn Stream<Item = ()> + Send>>>,
    /// Everything except deletes: what would be deleted is logged and reported as events.
    pub dry_run: bool,
    /// Accounts reconciled at once.
    pub concurrency: u16,
    /// How long before a deletion the `DeletionUpcoming` event announces it.
    pub advance_notice: chrono::TimeDelta,
    /// Lets a request through only while this replica leads, and bounds its time.
    pub fence: Fence,
    /// The least time between two writes of one policy's brake count.
    pub brake_write_interval: Duration,
    /// Networks whose addresses processor webhooks may use although they are private,
    /// loopback or link-local (`--webhook-allow-cidr`).
    pub webhook_allowed_networks: Vec<ipnet::IpNet>,
    /// How the caches list what they watch.
    pub initial_lists: InitialLists,
    /// The shard this controller acts for ([`Shard::WHOLE`] when the operator does not shard):
    /// its caches keep, and it reconciles, only the accounts of that shard and what claims
    /// them.
    pub shard: Shard,
}

/// Where the caches watch from: the client, and how their lists are made.
struct Source {
    client: Client,
    config: watcher::Config,
}

impl Source {
    /// Watches through `client`, listing as `lists` says (asking the server when it says auto).
    async fn new(client: &Client, lists: InitialLists) -> Self {
        Self {
            config: lists::watcher_config(client, lists).await,
            client: client.clone(),
        }
    }

    /// A watch of every `K`, listing as configured.
    fn watch<K>(&self) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + use<K>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
        K::DynamicType: Default,
    {
        watcher(Api::<K>::all(self.client.clone()), self.config.clone())
    }
}

/// What the watch of each bound kind feeds, and for which shard.
struct Watching<'a> {
    relists: &'a Relists,
    accounts: &'a Store<Guarded<Account>>,
    suspects: &'a mpsc::UnboundedSender<orphans::Suspect>,
    ready: &'a Arc<AtomicBool>,
    shard: Shard,
}

/// Whether a watch event concerns an Account of `shard` (list boundaries concern every shard).
fn of_shard(event: &watcher::Event<Guarded<Account>>, shard: Shard) -> bool {
    match event {
        watcher::Event::Apply(account)
        | watcher::Event::InitApply(account)
        | watcher::Event::Delete(account) => shard.owns(&account.name_any()),
        watcher::Event::Init | watcher::Event::InitDone => true,
    }
}

/// A cache of a bound kind whose every touched object is also handed to the orphan reporter
/// when its Account is not cached or it cannot be read. Objects claiming another shard's
/// accounts are neither kept nor handed on.
fn bound_cache<K: BoundKind>(
    source: &Source,
    watching: &Watching<'_>,
) -> (
    BoundCache<K>,
    impl Stream<Item = Result<Compact<K>, watcher::Error>> + Send + 'static,
) {
    let shard = watching.shard;
    let (cache, writer) = compact::cache(shard);
    let (accounts, suspects, ready) = (
        watching.accounts.clone(),
        watching.suspects.clone(),
        watching.ready.clone(),
    );
    let stream = source
        .watch::<Compact<K>>()
        .default_backoff()
        // The cache first, so that it is current when the event triggers a reconcile.
        .inspect_ok(move |event| writer.apply(event))
        .inspect_ok(watching.relists.announcer())
        .touched_objects()
        .try_filter(move |object| {
            std::future::ready(shard.owns_claim(object.body.claimed_account()))
        })
        .inspect_ok(move |object| {
            // Before every cache has synced, every Account would look missing: the reporter looks
            // at the whole cache once it has, and at each object touched after.
            if !ready.load(Ordering::Acquire) {
                return;
            }
            let suspect = orphans::Suspect::of(
                &object.body,
                object.uid(),
                object.resource_version(),
                &accounts,
            );
            if let Some(suspect) = suspect {
                // Fails only when the reporter has stopped, i.e. during shutdown.
                let _ = suspects.send(suspect);
            }
        });
    (BoundCache(cache), stream)
}

/// A cache of every bound kind of the registry, each watch a trigger of `controller`.
fn watch_bound_kinds(
    source: &Source,
    watching: &Watching<'_>,
    mut controller: Controller<Guarded<Account>>,
) -> (BoundCaches, Controller<Guarded<Account>>) {
    let mut caches = BTreeMap::new();
    for kind in ResourceKind::ALL {
        let (cache, watched) = kind.visit(WatchBoundKind {
            source,
            watching,
            controller,
        });
        caches.insert(kind, cache);
        controller = watched;
    }
    (caches, controller)
}

/// Adds the cache of one bound kind, and its watch as a trigger of the account controller.
struct WatchBoundKind<'a> {
    source: &'a Source,
    watching: &'a Watching<'a>,
    controller: Controller<Guarded<Account>>,
}

impl KindVisitor for WatchBoundKind<'_> {
    type Output = (Arc<dyn KindCache>, Controller<Guarded<Account>>);

    fn visit<K: BoundKind>(self) -> Self::Output {
        let (cache, stream) = bound_cache::<K>(self.source, self.watching);
        let controller = self.controller.watches_stream(stream, claimed_account);
        (Arc::new(cache), controller)
    }
}

/// Counts, at each scrape, the Accounts and RetentionPolicies in the caches.
fn census_of(stores: &Stores) -> CensusTaker {
    let accounts = stores.accounts.clone();
    let policies = stores.policies.clone();
    Box::new(move |census: &mut Census| {
        for account in accounts.state() {
            match &account.0 {
                Ok(account) => census.add_account(account.status.as_ref()),
                Err(_) => census.add_unreadable_account(),
            }
        }
        for policy in policies.state() {
            if let Ok(policy) = &policy.0 {
                census.add_policy(&policy.name_any(), policy.spec.suspend);
            }
        }
    })
}

/// The Account a bound object triggers.
fn claimed_account<K: BoundKind>(object: Compact<K>) -> Option<ObjectRef<Guarded<Account>>> {
    object.body.claimed_account().map(ObjectRef::new)
}

/// Runs the account controller until `shutdown` resolves. `ready` turns true once every cache
/// has synced.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let source = Source::new(&client, settings.initial_lists).await;
    let mut watched = watch_everything(&source, &ready, settings.shard, &metrics);
    // Every task spawned below stops when this function returns or is dropped (a lost lease
    // drops it wherever it is): none may outlive the controller and keep acting.
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    if let Some(moves) = settings.clock_moves {
        watched = watched.on_clock_moves(&cancel, moves);
    }
    // A finished erasure request wakes its account, whose next pass records the outcome.
    let (woken, wakes) = futures::channel::mpsc::unbounded();
    let controller = watched.controller.reconcile_on(wakes);
    let synced = signal_ready(&cancel, &watched.stores, &watched.accounts, &ready);
    let reporter = Reporter {
        controller: cluster::MANAGER.to_owned(),
        instance: None,
    };
    let caches_synced = ready.clone();
    // This replica acts, and its account gauges count, until this function returns or is
    // dropped; the schedules are recorded afresh by this controller's passes.
    let census = census_of(&watched.stores);
    let _acting = metrics.acting(settings.shard, census, settings.clock.clone());
    let context = Arc::new(Context {
        recorder: super::events::EventRecorder::new(client.clone(), reporter),
        client,
        stores: watched.stores,
        metrics,
        settings: SharedSettings {
            dry_run: settings.dry_run,
            advance_notice: settings.advance_notice,
        },
        clock: settings.clock,
        ready,
        superseded: Superseded::default(),
        receipt_statuses: std::sync::Mutex::default(),
        notifier: Notifier::new(DestinationPolicy::allowing(
            settings.webhook_allowed_networks,
        )),
        deliveries: processors::Deliveries::new(woken.clone()),
        fence: settings.fence,
        cancel: cancel.clone(),
        failing: FailureBackoff::default(),
        deletes: super::throttle::DeleteLimiter::new(super::throttle::Limits::default()),
        tombstones: Tombstones::default(),
        brakes: super::brake::Brakes::new(settings.brake_write_interval, woken),
        shard: settings.shard,
    });
    let context_for_receipts = context.clone();
    spawn_reporters(
        &context,
        &cancel,
        synced,
        watched.suspects,
        watched.processors_changed,
        watched.accounts,
    );
    let shutdown = shutdown.shared();
    let running = controller
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .trigger_backoff(TriggerPause)
        .graceful_shutdown_on(shutdown.clone())
        .run(account::reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                // An event on a bound object whose Account does not exist: expected, and
                // reported as Unbound on the object itself, so not a failure worth a warning.
                Err(error @ controller::Error::ObjectNotFound(_)) => {
                    debug!(%error, "no Account to reconcile");
                }
                Err(error) => warn!(%error, "reconcile failed"),
                Ok(_) => {}
            }
        });
    let receipts_running = run_receipts(watched.receipts, context_for_receipts, shutdown.clone());
    // kube's controller holds its queue until the Account cache has synced, and after a
    // shutdown request it no longer drives the watch that would sync it: stopped before that,
    // it would wait forever. Before every cache has synced no reconcile does anything, so then
    // it is simply dropped.
    let stopped_unsynced = async {
        shutdown.await;
        if caches_synced.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        ((), ()) = futures::future::join(running, receipts_running) => {}
        () = stopped_unsynced => info!("stopped before the caches synced"),
    }
}

/// Starts the reporters beside the account controller: unplannable objects (orphans) and,
/// on the first shard only, the processors' third-country transfers (a processor is no
/// account's, so one shard writes its condition).
fn spawn_reporters(
    context: &Arc<Context>,
    cancel: &CancellationToken,
    synced: watch::Receiver<bool>,
    suspects: mpsc::UnboundedReceiver<orphans::Suspect>,
    processors_changed: mpsc::UnboundedReceiver<String>,
    accounts: Store<Guarded<Account>>,
) {
    if context.shard.owns_the_unnamed() {
        let flags = transfers::report(
            context.clone(),
            context.stores.processors.clone(),
            synced.clone(),
            processors_changed,
        );
        spawn_cancellable(cancel, flags);
    }
    let report = orphans::report(context.clone(), accounts, synced, suspects);
    spawn_cancellable(cancel, report);
}

/// Announces every list a watch makes after its first, once its cache holds the list.
///
/// A watch that cannot resume (410 Gone, or an error) lists everything again. kube's watcher
/// hands out the listed objects one by one, and a cache holds the whole list only at the end
/// (kube's reflector swaps it in then; a compact cache drops what the list did not name): a
/// pass an object of the list starts before that (a list of several pages from a real
/// API server takes long enough) reads the cached version from before the gap, and nothing
/// starts a pass after the swap. A change made during the gap (a termination, a hold, an
/// Account deleted) would wait for the next unrelated event; an object deleted during the gap
/// is not handed out at all. So after each such list every Account is looked at again, from
/// the swapped-in caches. The first list of each watch is the start-up sync, which passes
/// already wait for.
#[derive(Clone)]
struct Relists {
    announce: futures::channel::mpsc::UnboundedSender<()>,
    /// Counts every completed list, the first included, by resource.
    metrics: Arc<Metrics>,
}

impl Relists {
    /// The announcer, and the stream of announcements (one per list after a first).
    fn new(metrics: Arc<Metrics>) -> (Self, futures::channel::mpsc::UnboundedReceiver<()>) {
        let (announce, receiver) = futures::channel::mpsc::unbounded();
        (Self { announce, metrics }, receiver)
    }

    /// The inspector of one watch's events, placed after its cache: the cache holds a list
    /// once it sees the list's end.
    fn announcer<K>(&self) -> impl FnMut(&watcher::Event<K>) + Send + 'static
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let (sender, metrics) = (self.announce.clone(), self.metrics.clone());
        let resource = K::plural(&()).into_owned();
        let mut lists = 0u64;
        move |event| {
            if matches!(event, watcher::Event::InitDone) {
                metrics.cache_listed(&resource);
                lists += 1;
                if lists > 1 {
                    // Fails only when the controller has stopped.
                    let _ = sender.unbounded_send(());
                }
            }
        }
    }
}

/// Every watch of the operator and what it feeds.
struct Watched {
    /// The account controller, triggered by every watch.
    controller: Controller<Guarded<Account>>,
    /// The Accounts' cache.
    accounts: Store<Guarded<Account>>,
    /// The other caches.
    stores: Stores,
    /// Bound objects the orphan reporter must look at, as they are touched.
    suspects: mpsc::UnboundedReceiver<orphans::Suspect>,
    /// The receipt controller, which deletes ErasureReceipts at their expiry.
    receipts: Controller<Guarded<ErasureReceipt>>,
    /// The names of DataProcessors seen by their watch, for the transfer reporter.
    processors_changed: mpsc::UnboundedReceiver<String>,
}

impl Watched {
    /// Both controllers' timers count on the clock: each hears of every move.
    fn on_clock_moves(
        mut self,
        cancel: &CancellationToken,
        moves: Pin<Box<dyn Stream<Item = ()> + Send>>,
    ) -> Self {
        let (to_accounts, account_moves) = futures::channel::mpsc::unbounded();
        let (to_receipts, receipt_moves) = futures::channel::mpsc::unbounded();
        spawn_cancellable(
            cancel,
            moves.for_each(move |()| {
                let _ = to_accounts.unbounded_send(());
                let _ = to_receipts.unbounded_send(());
                std::future::ready(())
            }),
        );
        self.controller = self.controller.reconcile_all_on(account_moves);
        self.receipts = self.receipts.reconcile_all_on(receipt_moves);
        self
    }
}

/// Watches the Accounts, every bound kind, the policies and the processors: a change to any of
/// them triggers the Accounts it concerns.
fn watch_everything(
    source: &Source,
    ready: &Arc<AtomicBool>,
    shard: Shard,
    metrics: &Arc<Metrics>,
) -> Watched {
    let (relists, relisted) = Relists::new(metrics.clone());
    // Guarded like every watched kind: one unreadable object must not stop the watch.
    let (accounts, writer) = reflector::store::<Guarded<Account>>();
    let account_events = reflect_in_place(
        source
            .watch::<Guarded<Account>>()
            .default_backoff()
            // The shard's accounts only (an Account's name, and so its shard, never changes).
            .try_filter(move |event| std::future::ready(of_shard(event, shard))),
        writer,
    )
    .inspect_ok(relists.announcer())
    .applied_objects();
    let controller =
        Controller::for_stream(account_events, accounts.clone()).reconcile_all_on(relisted);
    let (suspects, suspects_seen) = mpsc::unbounded_channel();
    let (bound, mut controller) = watch_bound_kinds(
        source,
        &Watching {
            relists: &relists,
            accounts: &accounts,
            suspects: &suspects,
            ready,
            shard,
        },
        controller,
    );
    let (policies, stream) = cached_policies(source, &relists);
    let by_policy = accounts.clone();
    controller = controller.watches_stream(stream, move |policy| {
        let name = policy.name_any();
        by_policy
            .state()
            .into_iter()
            .filter(|a| {
                a.0.as_ref()
                    .is_ok_and(|a| a.spec.retention_policy_ref == name)
            })
            .map(|a| ObjectRef::from_obj(&*a))
            .collect::<Vec<_>>()
    });
    let (changed, processors_changed) = mpsc::unbounded_channel();
    let (processors, stream) = cached_processors(source, &relists, changed);
    let every_account = accounts.clone();
    controller = controller.watches_stream(stream, move |_| {
        every_account
            .state()
            .into_iter()
            .map(|a| ObjectRef::from_obj(&*a))
            .collect::<Vec<_>>()
    });
    let receipts = Controller::new(
        Api::<Guarded<ErasureReceipt>>::all(source.client.clone()),
        source.config.clone(),
    );
    Watched {
        controller,
        stores: Stores {
            accounts: accounts.clone(),
            receipts: receipts.store(),
            policies,
            processors,
            bound: Arc::new(bound),
        },
        suspects: suspects_seen,
        accounts,
        receipts,
        processors_changed,
    }
}

/// The DataProcessors' watcher and cache. Every account is planned again when a processor's
/// spec or existence changes, not on the operator's own writes of its status; the name of each
/// processor seen is also sent on `changed` (for [`transfers::report`]).
fn cached_processors(
    source: &Source,
    relists: &Relists,
    changed: mpsc::UnboundedSender<String>,
) -> (
    Store<Guarded<DataProcessor>>,
    impl Stream<Item = Result<Guarded<DataProcessor>, watcher::Error>> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    // The generation each processor's accounts were last planned from.
    let mut seen: BTreeMap<String, Option<i64>> = BTreeMap::new();
    let stream = source
        .watch::<Guarded<DataProcessor>>()
        .default_backoff()
        .reflect(writer)
        .inspect_ok(relists.announcer())
        .filter_map(move |event| {
            let touched = match event {
                Err(error) => Some(Err(error)),
                Ok(watcher::Event::Delete(processor)) => {
                    seen.remove(&processor.name_any());
                    Some(Ok(processor))
                }
                Ok(watcher::Event::Apply(processor) | watcher::Event::InitApply(processor)) => {
                    let name = processor.name_any();
                    let generation = kube::Resource::meta(&processor).generation;
                    let before = seen.insert(name.clone(), generation);
                    // Every version, so that a condition overwritten by anyone is written again
                    // (the reporter writes nothing when it is current). Fails only when the
                    // reporter has stopped, i.e. during shutdown.
                    let _ = changed.send(name);
                    (before != Some(generation)).then_some(Ok(processor))
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            };
            std::future::ready(touched)
        });
    (reader, stream)
}

/// The RetentionPolicies' watcher and cache. A policy's accounts are planned again when its
/// spec, its brake release or its existence changes, not on the brake's own status writes
/// (every 10 s while deleting, which would otherwise reconcile every account of the policy).
fn cached_policies(
    source: &Source,
    relists: &Relists,
) -> (
    Store<Guarded<RetentionPolicy>>,
    impl Stream<Item = Result<Guarded<RetentionPolicy>, watcher::Error>> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    // What each policy's accounts were last planned from: generation and release annotation.
    let mut seen: BTreeMap<String, (Option<i64>, Option<String>)> = BTreeMap::new();
    let stream = source
        .watch::<Guarded<RetentionPolicy>>()
        .default_backoff()
        .reflect(writer)
        .inspect_ok(relists.announcer())
        .filter_map(move |event| {
            let changed = match event {
                Err(error) => Some(Err(error)),
                Ok(watcher::Event::Delete(policy)) => {
                    seen.remove(&policy.name_any());
                    Some(Ok(policy))
                }
                Ok(watcher::Event::Apply(policy) | watcher::Event::InitApply(policy)) => {
                    let inputs = (
                        kube::Resource::meta(&policy).generation,
                        policy
                            .annotations()
                            .get(crate::api::BRAKE_RELEASED_AT)
                            .cloned(),
                    );
                    let before = seen.insert(policy.name_any(), inputs.clone());
                    (before.as_ref() != Some(&inputs)).then_some(Ok(policy))
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            };
            std::future::ready(changed)
        });
    (reader, stream)
}

/// Sets `ready` once every cache has synced, and says so on the returned channel.
fn signal_ready(
    cancel: &CancellationToken,
    stores: &Stores,
    accounts: &Store<Guarded<Account>>,
    ready: &Arc<AtomicBool>,
) -> watch::Receiver<bool> {
    let (synced, synced_seen) = watch::channel(false);
    let (stores, accounts, ready) = (stores.clone(), accounts.clone(), ready.clone());
    spawn_cancellable(cancel, async move {
        if !stores.wait_until_ready().await {
            return;
        }
        if !super::context::controller_store_ready(&accounts).await {
            return;
        }
        ready.store(true, Ordering::Release);
        let _ = synced.send(true);
        info!("caches synced: ready");
    });
    synced_seen
}

/// The client configuration the operator must run with: `config` without kube's built-in
/// retries. kube retries a request answered 429, 503 or 504 on its own, after a backoff that
/// honours `Retry-After`, unseen by the caller. For a DELETE that breaks invariant 3: the
/// retry is sent seconds after the Account was read for it, so a reactivation or a legal hold
/// placed meanwhile would not be seen. Without them every failed request comes back to the
/// operator, which reads the Account again before the next DELETE (and retries everything
/// else on its own backoff).
pub fn client_config(mut config: kube::Config) -> kube::Config {
    config.default_retry = false;
    config
}

/// The pause of *all* watches after an error on any of them. Each watch already backs off on
/// its own (`default_backoff`); kube's default here, on top, doubles up to 30 s and resets only
/// after a successful event, so when a relist makes several watches fail at once (410 Gone),
/// every watch stood still for over a minute (measured by `benches/design_targets.rs`).
struct TriggerPause;

impl Iterator for TriggerPause {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }
}

impl Backoff for TriggerPause {
    fn reset(&mut self) {}
}

/// Errors that may fix themselves are retried soon; every one is counted by reason.
fn error_policy(account: Arc<Guarded<Account>>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error("account", error.reason());
    warn!(account = %account.name_any(), reason = error.reason(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the receipt controller until `shutdown` resolves.
fn run_receipts(
    controller: Controller<Guarded<ErasureReceipt>>,
    context: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    controller
        .graceful_shutdown_on(shutdown)
        .run(super::receipts::reconcile, receipt_error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "receipt reconcile failed");
            }
        })
}

/// A failed receipt pass is retried soon, and counted.
fn receipt_error_policy(
    receipt: Arc<Guarded<ErasureReceipt>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.error("erasurereceipt", error.reason());
    warn!(receipt = %receipt.name_any(), reason = error.reason(), %error, "receipt reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry's promise to the controller: every bound kind has a cache (a kind without
    /// one would never keep its Account from Erased, invariant 4).
    #[tokio::test]
    async fn every_bound_kind_has_a_cache_and_a_watch() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let (accounts, _writer) = reflector::store::<Guarded<Account>>();
        let controller = Controller::for_stream(futures::stream::pending(), accounts.clone());
        let (suspects, _) = mpsc::unbounded_channel();
        let ready = Arc::new(AtomicBool::new(false));
        let (relists, _) = Relists::new(Arc::new(Metrics::new()));
        let source = Source {
            client,
            config: watcher::Config::default(),
        };
        let watching = Watching {
            relists: &relists,
            accounts: &accounts,
            suspects: &suspects,
            ready: &ready,
            shard: Shard::WHOLE,
        };
        let (caches, _) = watch_bound_kinds(&source, &watching, controller);
        assert_eq!(
            caches.keys().copied().collect::<Vec<_>>(),
            ResourceKind::ALL.to_vec()
        );
    }
}
