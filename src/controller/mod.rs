//! The imperative shell: controllers that observe the cluster, run the engine and execute the
//! plan.
//!
//! - [`account`]: the account controller (schedules, deletions, status, finalizer).
//! - [`cluster`]: reading, stamping and deleting bound objects of any kind.
//! - [`guarded`]: watching objects that may not match this operator's schema.
//! - [`index`]: the bound objects of each account, so a reconcile never scans every cache.
//! - [`orphans`]: reporting objects bound to no existing Account, and malformed ones.
//! - [`processors`]: delivering the erasure requests owed to processors.
//! - [`status`]: the Account status as a pure function of the plan.

pub mod account;
pub mod cluster;
pub mod guarded;
pub mod index;
pub mod orphans;
pub mod processors;
pub mod status;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use kube::{
    Client, Resource, ResourceExt,
    api::Api,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        utils::Backoff,
        watcher,
    },
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    api::Condition,
    api::{Account, DataProcessor, DataProcessorSpec, RetentionPolicy, RetentionPolicySpec},
    clock::Clock,
    kinds::{BoundKind, KindVisitor, ResourceKind},
    leader::{Fence, Fenced},
    metrics::Metrics,
    notifier::{DestinationPolicy, Notifier},
    retention::{BoundResource, ResourceRef},
};
use guarded::Guarded;
use index::AccountIndex;
use status::MalformedResource;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be converted.
    #[error("malformed object: {0}")]
    Serialization(#[from] serde_json::Error),
    /// The Account kept changing while its status was written.
    #[error("the Account kept changing while its status was written")]
    StatusConflict,
    /// The API server returned an object without uid or resourceVersion.
    #[error("the API server returned an object without uid or resourceVersion")]
    MissingVersion,
    /// The fence refused a request (this replica may no longer lead) or abandoned one that
    /// took too long.
    #[error(transparent)]
    Fenced(#[from] Fenced),
}

impl Error {
    /// A CamelCase category for metrics, events and conditions (never personal data).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(status)) => match status.code {
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                422 => "Invalid",
                429 => "TooManyRequests",
                code if code >= 500 => "ApiServerError",
                _ => "ApiError",
            },
            Self::Kube(_) => "ApiUnreachable",
            Self::Serialization(_) => "MalformedObject",
            Self::StatusConflict => "StatusConflict",
            Self::MissingVersion => "MalformedObject",
            Self::Fenced(Fenced::NotLeader) => "NotLeader",
            Self::Fenced(Fenced::TimedOut(_)) => "RequestTimeout",
        }
    }

    /// Whether this replica must stop acting: it may no longer hold the lease.
    pub fn not_leader(&self) -> bool {
        matches!(self, Self::Fenced(Fenced::NotLeader))
    }

    /// Whether the API server answered with this HTTP status.
    pub fn is_status(&self, code: u16) -> bool {
        matches!(self, Self::Kube(kube::Error::Api(status)) if status.code == code)
    }

    /// Whether the API server turned the request away for now (429, or a 5xx such as 503
    /// while it is overloaded or 504 when etcd was slow): the same request may well succeed
    /// a moment later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Kube(kube::Error::Api(status)) if status.code == 429 || status.code >= 500)
    }
}

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
    /// Networks whose addresses processor webhooks may use although they are private,
    /// loopback or link-local (`--webhook-allow-cidr`).
    pub webhook_allowed_networks: Vec<ipnet::IpNet>,
}

/// The reflector caches every lookup is served from (never a LIST per reconcile).
#[derive(Clone)]
pub struct Stores {
    policies: Store<Guarded<RetentionPolicy>>,
    processors: Store<Guarded<DataProcessor>>,
    /// One cache per bound kind of the registry.
    bound: Arc<BoundCaches>,
}

/// The cache of each bound kind.
type BoundCaches = BTreeMap<ResourceKind, Arc<dyn KindCache>>;

/// What the operator asks of the cache of one bound kind, whichever kind it is.
trait KindCache: Send + Sync {
    /// Adds what the cache holds that claims `account`.
    fn claims(&self, account: &str, out: &mut Claims);
    /// Adds the objects the orphan reporter must look at.
    fn suspects(&self, accounts: &Store<Guarded<Account>>, out: &mut Vec<orphans::Suspect>);
    /// Resolves once the cache has synced; false when its watch stopped first.
    fn wait_until_ready(&self) -> futures::future::BoxFuture<'_, bool>;
}

/// The cache of one bound kind and its index by account.
pub struct BoundCache<K: BoundKind> {
    store: Store<Guarded<K>>,
    index: AccountIndex<K>,
}

impl<K: BoundKind> Clone for BoundCache<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            index: self.index.clone(),
        }
    }
}

impl<K: BoundKind> BoundCache<K> {
    /// The cached objects claiming `account`.
    fn claiming(&self, account: &str) -> impl Iterator<Item = Arc<Guarded<K>>> + '_ {
        self.index
            .claiming(account)
            .into_iter()
            .filter_map(|key| self.store.get(&key))
    }
}

impl<K: BoundKind> KindCache for BoundCache<K> {
    fn claims(&self, account: &str, out: &mut Claims) {
        for object in self.claiming(account) {
            if object.claimed_account() != Some(account) {
                continue;
            }
            if let Some(uid) = &object.meta().uid {
                out.uids.insert(uid.clone());
            }
            match &object.0 {
                Ok(readable) => {
                    if let Some(version) = ObjectVersion::of(readable.meta()) {
                        out.versions.insert(object.reference(), version);
                    }
                    out.bound.push(readable.facts());
                    if orphans::is_marked_unbound(readable.conditions()) {
                        out.marked_unbound
                            .push((object.reference(), readable.conditions().to_vec()));
                    }
                }
                Err(malformed) => out.malformed.push(MalformedResource {
                    resource: object.reference(),
                    field: malformed.field.clone(),
                }),
            }
        }
    }

    fn suspects(&self, accounts: &Store<Guarded<Account>>, out: &mut Vec<orphans::Suspect>) {
        out.extend(
            self.store
                .state()
                .iter()
                .filter_map(|o| orphans::Suspect::of(o, accounts)),
        );
    }

    fn wait_until_ready(&self) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(async move { self.store.wait_until_ready().await.is_ok() })
    }
}

/// A RetentionPolicy as the caches know it.
#[derive(Debug)]
pub enum Policy {
    /// It exists and can be read.
    Found(RetentionPolicySpec),
    /// No policy of that name exists: erasure stops.
    Missing,
    /// It exists but does not match this operator's schema: erasure stops.
    Malformed {
        /// Where reading it failed.
        field: String,
    },
}

/// Everything in the caches that claims one account.
#[derive(Debug, Default)]
pub struct Claims {
    /// The readable objects, as the engine sees them.
    pub bound: Vec<BoundResource>,
    /// Objects that cannot be read: never deleted, and they keep the account from Erased.
    pub malformed: Vec<MalformedResource>,
    /// Readable objects still marked `Bound=False` from a time their Account did not exist.
    pub marked_unbound: Vec<(ResourceRef, Vec<Condition>)>,
    /// The cached version of each readable object: a deletion is conditional on it.
    pub versions: HashMap<ResourceRef, ObjectVersion>,
    /// The uids of every object claiming the account, readable or not.
    pub uids: HashSet<String>,
}

impl Claims {
    /// Leaves out the objects whose uid is in `gone`: the cache still shows them, but they
    /// were deleted (see [`Tombstones`]).
    pub fn without(mut self, gone: &HashSet<String>) -> Self {
        if gone.is_empty() {
            return self;
        }
        let refs: HashSet<ResourceRef> = self
            .versions
            .iter()
            .filter(|(_, v)| gone.contains(&v.uid))
            .map(|(r, _)| r.clone())
            .collect();
        self.bound.retain(|b| !refs.contains(&b.reference));
        self.marked_unbound.retain(|(r, _)| !refs.contains(r));
        self.versions.retain(|r, _| !refs.contains(r));
        self.uids.retain(|u| !gone.contains(u));
        self
    }
}

/// The uids of objects this operator deleted (or found gone), per Account, until its watch
/// cache no longer holds them. A pass that planned from a cache still showing one would send a
/// DELETE for an object already gone and show it as bound again; the previous code's GET
/// before each DELETE hid that, the conditional DELETE does not.
#[derive(Debug, Default)]
pub struct Tombstones(Mutex<HashMap<String, HashSet<String>>>);

impl Tombstones {
    /// Records uids of `account` as gone.
    pub fn bury(&self, account: &str, uids: impl IntoIterator<Item = String>) {
        let mut buried = self.lock();
        let entry = buried.entry(account.to_owned()).or_default();
        entry.extend(uids);
        if entry.is_empty() {
            buried.remove(account);
        }
    }

    /// The buried uids of `account` that the cache still holds (`present`); those it no longer
    /// holds are forgotten.
    pub fn still_cached(&self, account: &str, present: &HashSet<String>) -> HashSet<String> {
        let mut buried = self.lock();
        let Some(uids) = buried.get_mut(account) else {
            return HashSet::new();
        };
        uids.retain(|uid| present.contains(uid));
        let cached = uids.clone();
        if uids.is_empty() {
            buried.remove(account);
        }
        cached
    }

    /// Forgets an Account that is going away.
    pub fn forget(&self, account: &str) {
        self.lock().remove(account);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One version of an object: its uid and resourceVersion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The object's uid.
    pub uid: String,
    /// The object's resourceVersion.
    pub resource_version: String,
}

impl ObjectVersion {
    /// The version of an object, if it has both (every object read from the API server does).
    pub fn of(meta: &kube::api::ObjectMeta) -> Option<Self> {
        Some(Self {
            uid: meta.uid.clone()?,
            resource_version: meta.resource_version.clone()?,
        })
    }
}

impl Stores {
    /// The named RetentionPolicy.
    pub fn policy(&self, name: &str) -> Policy {
        match self.policies.get(&ObjectRef::new(name)) {
            None => Policy::Missing,
            Some(policy) => match &policy.0 {
                Ok(policy) => Policy::Found(policy.spec.clone()),
                Err(malformed) => Policy::Malformed {
                    field: malformed.field.clone(),
                },
            },
        }
    }

    /// Every readable DataProcessor by name (one that cannot be read counts as unknown).
    pub fn processors(&self) -> BTreeMap<String, DataProcessorSpec> {
        self.processors
            .state()
            .iter()
            .filter_map(|p| Some((p.name_any(), p.0.as_ref().ok()?.spec.clone())))
            .collect()
    }

    /// The named DataProcessor, if it exists and can be read.
    pub fn processor(&self, name: &str) -> Option<DataProcessorSpec> {
        let processor = self.processors.get(&ObjectRef::new(name))?;
        processor.0.as_ref().ok().map(|p| p.spec.clone())
    }

    /// Every cached object bound to the account, as the engine sees it.
    pub fn bound_to(&self, account: &str) -> Vec<BoundResource> {
        self.claims(account).bound
    }

    /// Everything cached that claims the account, readable or not.
    pub fn claims(&self, account: &str) -> Claims {
        let mut claims = Claims::default();
        for cache in self.bound.values() {
            cache.claims(account, &mut claims);
        }
        claims
    }

    /// Every cached object the orphan reporter must look at (see [`orphans::report`]).
    fn suspects(&self, accounts: &Store<Guarded<Account>>) -> Vec<orphans::Suspect> {
        let mut suspects = Vec::new();
        for cache in self.bound.values() {
            cache.suspects(accounts, &mut suspects);
        }
        suspects
    }

    async fn wait_until_ready(&self) -> bool {
        if self.policies.wait_until_ready().await.is_err()
            || self.processors.wait_until_ready().await.is_err()
        {
            return false;
        }
        for cache in self.bound.values() {
            if !cache.wait_until_ready().await {
                return false;
            }
        }
        true
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The caches.
    pub stores: Stores,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes events.
    pub recorder: Recorder,
    /// Clock and dry run.
    pub settings: SharedSettings,
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
    /// True once every cache has synced; nothing is planned before.
    pub ready: Arc<AtomicBool>,
    /// Account versions the operator's own writes replaced, until the cache catches up.
    pub superseded: Superseded,
    /// Sends erasure requests to processors' webhooks.
    pub notifier: Notifier,
    /// Erasure requests under way, off the reconcile workers.
    pub deliveries: processors::Deliveries,
    /// Lets a request through only while this replica leads, and bounds its time.
    pub fence: Fence,
    /// Cancelled when the controller stops or is dropped (leadership lost): every task it
    /// spawned stops with it.
    pub cancel: CancellationToken,
    /// What this operator deleted and the caches still show.
    pub tombstones: Tombstones,
    /// Per Account, how many passes in a row had failures: each waits longer (defect of
    /// a failing deletion retried at once, forever).
    pub failing: FailureBackoff,
}

impl Context {
    /// Runs one request to the API server (or a webhook) through the fence: refused when this
    /// replica may no longer lead, abandoned after the request timeout.
    pub async fn act<T, E>(&self, request: impl Future<Output = Result<T, E>>) -> Result<T, Error>
    where
        Error: From<E>,
    {
        Ok(self.fence.run(request).await??)
    }
}

/// How long an Account waits after a pass with failed deletions: 10 s, doubling with each
/// failing pass in a row, at most 5 minutes; a pass without failures starts it over.
#[derive(Debug, Default)]
pub struct FailureBackoff(Mutex<HashMap<String, u32>>);

impl FailureBackoff {
    const FIRST: Duration = Duration::from_secs(10);
    const MAX: Duration = Duration::from_secs(300);

    /// Records a failing pass of `account`; the wait before the next.
    pub fn failed(&self, account: &str) -> Duration {
        let mut failing = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let streak = failing.entry(account.to_owned()).or_default();
        let wait = Self::FIRST
            .saturating_mul(1 << (*streak).min(16))
            .min(Self::MAX);
        *streak = streak.saturating_add(1);
        wait
    }

    /// Records a pass of `account` without failures.
    pub fn succeeded(&self, account: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(account);
    }
}

/// The Account versions this operator's own writes replaced, per Account, until its cache has
/// caught up. A reconcile that still sees one of them would plan from a stale Account, and its
/// conditional writes would be refused (409) and cost a GET each; the watch event of the write
/// is on its way and triggers a reconcile of its own, so such a reconcile just waits for it.
#[derive(Debug, Default)]
pub struct Superseded(Mutex<HashMap<String, HashSet<String>>>);

impl Superseded {
    /// Records that a write replaced `version` of the Account.
    pub fn record(&self, account: &str, version: Option<&str>) {
        if let Some(version) = version {
            self.lock()
                .entry(account.to_owned())
                .or_default()
                .insert(version.to_owned());
        }
    }

    /// Whether `version` is one the operator's writes replaced (the cache is behind); once it
    /// is not, the record is dropped.
    pub fn is_stale(&self, account: &str, version: Option<&str>) -> bool {
        let mut superseded = self.lock();
        let stale = version.is_some_and(|v| superseded.get(account).is_some_and(|s| s.contains(v)));
        if !stale {
            superseded.remove(account);
        }
        stale
    }

    /// Drops the record of an Account that is going away.
    pub fn forget(&self, account: &str) {
        self.lock().remove(account);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The settings every reconcile reads.
#[derive(Clone, Copy, Debug)]
pub struct SharedSettings {
    /// Everything except deletes.
    pub dry_run: bool,
    /// How long before a deletion the `DeletionUpcoming` event announces it.
    pub advance_notice: chrono::TimeDelta,
}

/// A watcher over every object of `K` (a [`Guarded`] kind: trimmed as it is read), feeding a
/// reflector cache.
fn cached<K>(
    client: &Client,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

/// A cache of a bound kind whose every touched object is also handed to the orphan reporter
/// when its Account is not cached or it cannot be read.
fn bound_cache<K: BoundKind>(
    client: &Client,
    accounts: &Store<Guarded<Account>>,
    suspects: &mpsc::UnboundedSender<orphans::Suspect>,
    ready: &Arc<AtomicBool>,
) -> (
    BoundCache<K>,
    impl Stream<Item = Result<Guarded<K>, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let index = AccountIndex::default();
    let indexer = index.clone();
    let (accounts, suspects, ready) = (accounts.clone(), suspects.clone(), ready.clone());
    let stream = watcher(
        Api::<Guarded<K>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    // The index first, so that both are current when the event triggers a reconcile.
    .inspect_ok(move |event| indexer.apply(event))
    .reflect(writer)
    .touched_objects()
    .inspect_ok(move |object| {
        // Before every cache has synced, every Account would look missing: the reporter looks
        // at the whole cache once it has, and at each object touched after.
        if !ready.load(Ordering::Acquire) {
            return;
        }
        if let Some(suspect) = orphans::Suspect::of(object, &accounts) {
            // Fails only when the reporter has stopped, i.e. during shutdown.
            let _ = suspects.send(suspect);
        }
    });
    (BoundCache { store, index }, stream)
}

/// A cache of every bound kind of the registry, each watch a trigger of `controller`.
fn watch_bound_kinds(
    client: &Client,
    accounts: &Store<Guarded<Account>>,
    suspects: &mpsc::UnboundedSender<orphans::Suspect>,
    ready: &Arc<AtomicBool>,
    mut controller: Controller<Guarded<Account>>,
) -> (BoundCaches, Controller<Guarded<Account>>) {
    let mut caches = BTreeMap::new();
    for kind in ResourceKind::ALL {
        let (cache, watching) = kind.visit(WatchBoundKind {
            client,
            accounts,
            suspects,
            ready,
            controller,
        });
        caches.insert(kind, cache);
        controller = watching;
    }
    (caches, controller)
}

/// Adds the cache of one bound kind, and its watch as a trigger of the account controller.
struct WatchBoundKind<'a> {
    client: &'a Client,
    accounts: &'a Store<Guarded<Account>>,
    suspects: &'a mpsc::UnboundedSender<orphans::Suspect>,
    ready: &'a Arc<AtomicBool>,
    controller: Controller<Guarded<Account>>,
}

impl KindVisitor for WatchBoundKind<'_> {
    type Output = (Arc<dyn KindCache>, Controller<Guarded<Account>>);

    fn visit<K: BoundKind>(self) -> Self::Output {
        let (cache, stream) =
            bound_cache::<K>(self.client, self.accounts, self.suspects, self.ready);
        let controller = self.controller.watches_stream(stream, claimed_account);
        (Arc::new(cache), controller)
    }
}

/// The Account a bound object triggers.
fn claimed_account<K: BoundKind>(object: Guarded<K>) -> Option<ObjectRef<Guarded<Account>>> {
    object.claimed_account().map(ObjectRef::new)
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
    // Guarded like every watched kind: one unreadable object must not stop the watch.
    let (accounts, writer) = reflector::store::<Guarded<Account>>();
    let account_events = watcher(
        Api::<Guarded<Account>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects();
    let controller = Controller::for_stream(account_events, accounts.clone());
    let (suspects, suspects_seen) = mpsc::unbounded_channel();
    let (bound, mut controller) =
        watch_bound_kinds(&client, &accounts, &suspects, &ready, controller);
    drop(suspects);
    let (policies, stream) = cached::<Guarded<RetentionPolicy>>(&client);
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
    let (processors, stream) = cached::<Guarded<DataProcessor>>(&client);
    let every_account = accounts.clone();
    controller = controller.watches_stream(stream, move |_| {
        every_account
            .state()
            .into_iter()
            .map(|a| ObjectRef::from_obj(&*a))
            .collect::<Vec<_>>()
    });
    if let Some(moves) = settings.clock_moves {
        controller = controller.reconcile_all_on(moves);
    }
    // A finished erasure request wakes its account, whose next pass records the outcome.
    let (woken, wakes) = futures::channel::mpsc::unbounded();
    controller = controller.reconcile_on(wakes);
    let stores = Stores {
        policies,
        processors,
        bound: Arc::new(bound),
    };
    let (synced, synced_seen) = watch::channel(false);
    let ready_stores = stores.clone();
    let ready_accounts = accounts.clone();
    let ready_flag = ready.clone();
    // Every task spawned below stops when this function returns or is dropped (a lost lease
    // drops it wherever it is): none may outlive the controller and keep acting.
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    spawn_cancellable(&cancel, async move {
        if !ready_stores.wait_until_ready().await {
            return;
        }
        // Asked again every second: a wait registered on the controller's own store before
        // its first list has been seen to miss the wake-up.
        loop {
            match tokio::time::timeout(Duration::from_secs(1), ready_accounts.wait_until_ready())
                .await
            {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return,
                Err(_) => continue,
            }
        }
        ready_flag.store(true, Ordering::Release);
        let _ = synced.send(true);
        info!("caches synced: ready");
    });
    let reporter = Reporter {
        controller: cluster::MANAGER.to_owned(),
        instance: None,
    };
    let caches_synced = ready.clone();
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        stores,
        metrics,
        settings: SharedSettings {
            dry_run: settings.dry_run,
            advance_notice: settings.advance_notice,
        },
        clock: settings.clock,
        ready,
        superseded: Superseded::default(),
        notifier: Notifier::new(DestinationPolicy::allowing(
            settings.webhook_allowed_networks,
        )),
        deliveries: processors::Deliveries::new(woken),
        fence: settings.fence,
        cancel: cancel.clone(),
        failing: FailureBackoff::default(),
        tombstones: Tombstones::default(),
    });
    spawn_cancellable(
        &cancel,
        orphans::report(context.clone(), accounts, synced_seen, suspects_seen),
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
        () = running => {}
        () = stopped_unsynced => info!("stopped before the caches synced"),
    }
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

/// Spawns `task` so that it ends when `cancel` is cancelled.
pub fn spawn_cancellable(
    cancel: &CancellationToken,
    task: impl Future<Output = ()> + Send + 'static,
) {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = task => {}
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_uid_stays_buried_until_the_cache_lets_it_go() {
        let tombstones = Tombstones::default();
        let cached = |uids: &[&str]| uids.iter().map(|u| (*u).to_owned()).collect::<HashSet<_>>();
        tombstones.bury("acme", ["u1".to_owned(), "u2".to_owned()]);
        // The cache still shows both (their DELETED events are on their way).
        assert_eq!(
            tombstones.still_cached("acme", &cached(&["u1", "u2", "u3"])),
            cached(&["u1", "u2"])
        );
        assert!(
            tombstones.still_cached("beta", &cached(&["u1"])).is_empty(),
            "per account"
        );
        // u1's DELETED event arrived: it is forgotten, also should the cache show it again.
        assert_eq!(
            tombstones.still_cached("acme", &cached(&["u2", "u3"])),
            cached(&["u2"])
        );
        assert_eq!(
            tombstones.still_cached("acme", &cached(&["u1", "u2"])),
            cached(&["u2"])
        );
        tombstones.forget("acme");
        assert!(tombstones.still_cached("acme", &cached(&["u2"])).is_empty());
    }

    #[test]
    fn a_version_replaced_by_a_write_is_stale_until_the_cache_moves_on() {
        let superseded = Superseded::default();
        assert!(!superseded.is_stale("acme", Some("1")));
        // The finalizer patch replaced 1 (giving 2), the status write replaced 2 (giving 3).
        superseded.record("acme", Some("1"));
        superseded.record("acme", Some("2"));
        assert!(superseded.is_stale("acme", Some("1")));
        assert!(superseded.is_stale("acme", Some("2")));
        assert!(!superseded.is_stale("beta", Some("1")), "per account");
        // The cache has seen the write: the record goes, and an older version is not stale
        // any more (the cache never goes back).
        assert!(!superseded.is_stale("acme", Some("3")));
        assert!(!superseded.is_stale("acme", Some("2")));
        superseded.record("acme", Some("3"));
        superseded.forget("acme");
        assert!(!superseded.is_stale("acme", Some("3")));
    }

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
        let (caches, _) = watch_bound_kinds(&client, &accounts, &suspects, &ready, controller);
        assert_eq!(
            caches.keys().copied().collect::<Vec<_>>(),
            ResourceKind::ALL.to_vec()
        );
    }
}
