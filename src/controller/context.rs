//! What every part of the controller shares: its errors, the [`Context`] of a reconcile (the
//! client, the caches, the fence, the event recorder), and the records the account controller
//! keeps between passes.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicBool},
    time::Duration,
};

use kube::{
    Client, Resource, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{compact::CompactCache, events::EventRecorder, guarded::Guarded, orphans, processors};
use crate::status::MalformedResource;
use crate::{
    api::Condition,
    api::{
        Account, DataProcessor, DataProcessorSpec, ErasureReceipt, RetentionPolicy,
        RetentionPolicySpec,
    },
    clock::Clock,
    kinds::{BoundKind, ResourceKind},
    leader::{Fence, Fenced},
    metrics::Metrics,
    notifier::Notifier,
    retention::{BoundResource, ResourceRef},
};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

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
    /// An object not written for this account and erasure time holds the name of its receipt.
    #[error("ErasureReceipt {0} exists but is not this account's receipt for that erasure time")]
    ReceiptNameTaken(String),
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
            Self::ReceiptNameTaken(_) => "ReceiptNameTaken",
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

/// The reflector caches every lookup is served from (never a LIST per reconcile).
#[derive(Clone)]
pub struct Stores {
    pub(super) accounts: Store<Guarded<Account>>,
    pub(super) receipts: Store<Guarded<ErasureReceipt>>,
    pub(super) policies: Store<Guarded<RetentionPolicy>>,
    pub(super) processors: Store<Guarded<DataProcessor>>,
    /// One cache per bound kind of the registry.
    pub(super) bound: Arc<BoundCaches>,
}

/// The cache of each bound kind.
pub(super) type BoundCaches = BTreeMap<ResourceKind, Arc<dyn KindCache>>;

/// What the operator asks of the cache of one bound kind, whichever kind it is.
pub(super) trait KindCache: Send + Sync {
    /// Adds what the cache holds that claims `account`.
    fn claims(&self, account: &str, out: &mut Claims);
    /// Adds the objects the orphan reporter must look at.
    fn suspects(&self, accounts: &Store<Guarded<Account>>, out: &mut Vec<orphans::Suspect>);
    /// Resolves once the cache has synced; false when its watch stopped first.
    fn wait_until_ready(&self) -> futures::future::BoxFuture<'_, bool>;
}

/// The compact cache of one bound kind (with its index by account).
pub struct BoundCache<K: BoundKind>(pub(super) CompactCache<K>);

impl<K: BoundKind> KindCache for BoundCache<K> {
    fn claims(&self, account: &str, out: &mut Claims) {
        self.0.claims(account, out);
    }

    fn suspects(&self, accounts: &Store<Guarded<Account>>, out: &mut Vec<orphans::Suspect>) {
        self.0.suspects(accounts, out);
    }

    fn wait_until_ready(&self) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(self.0.wait_until_ready())
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
    /// The named Account, as cached.
    pub fn account(&self, name: &str) -> Option<Arc<Guarded<Account>>> {
        self.accounts.get(&ObjectRef::new(name))
    }

    /// The named ErasureReceipt, as cached, when it can be read.
    pub fn receipt(&self, name: &str) -> Option<ErasureReceipt> {
        let cached = self.receipts.get(&ObjectRef::new(name))?;
        cached.0.as_ref().ok().cloned()
    }

    /// The `metadata.generation` of the named RetentionPolicy, as cached.
    pub fn policy_generation(&self, name: &str) -> Option<i64> {
        let policy = self.policies.get(&ObjectRef::new(name))?;
        kube::Resource::meta(&*policy).generation
    }

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

    /// The brake release time the named policy's annotation holds, and the engagement its
    /// status stores, as cached (without copying the status's count).
    pub fn policy_brake(
        &self,
        name: &str,
    ) -> (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<crate::api::BrakeEngagement>,
    ) {
        let Some(policy) = self.policies.get(&ObjectRef::new(name)) else {
            return (None, None);
        };
        let Ok(policy) = &policy.0 else {
            return (None, None);
        };
        let engagement = policy
            .status
            .as_ref()
            .and_then(|s| s.brake.as_ref())
            .and_then(|b| b.engaged.clone());
        (super::brake::released_at(policy), engagement)
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
    pub(super) fn suspects(&self, accounts: &Store<Guarded<Account>>) -> Vec<orphans::Suspect> {
        let mut suspects = Vec::new();
        for cache in self.bound.values() {
            cache.suspects(accounts, &mut suspects);
        }
        suspects
    }

    pub(super) async fn wait_until_ready(&self) -> bool {
        if self.policies.wait_until_ready().await.is_err()
            || self.processors.wait_until_ready().await.is_err()
            || !controller_store_ready(&self.receipts).await
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

/// Waits until the store of a kube `Controller` (which fills it itself) has synced; false when
/// its writer is gone. Asked again every second: a wait registered on a controller's own store
/// before its first list has been seen to miss the wake-up.
pub(super) async fn controller_store_ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(1), store.wait_until_ready())
            .await
        {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => continue,
        }
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
    pub recorder: EventRecorder,
    /// Clock and dry run.
    pub settings: SharedSettings,
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
    /// True once every cache has synced; nothing is planned before.
    pub ready: Arc<AtomicBool>,
    /// Account versions the operator's own writes replaced, until the cache catches up.
    pub superseded: Superseded,
    /// The status this replica last wrote on each ErasureReceipt: the caches may not show it
    /// yet, and writing it again would only cost a request.
    pub receipt_statuses: Mutex<HashMap<String, crate::api::ErasureReceiptStatus>>,
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
    /// How many DELETEs may be in flight, adapted to the API server's answers.
    pub deletes: super::throttle::DeleteLimiter,
    /// The mass-deletion brake of each policy.
    pub brakes: super::brake::Brakes,
    /// The shard this controller acts for: only its accounts are reconciled.
    pub shard: crate::shard::Shard,
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
/// failing pass in a row that deleted nothing, at most 5 minutes; a pass without failures, or
/// one that deleted something, starts it over. Passes that make progress are not what the
/// wait guards against (an account retrying a refused deletion in a tight loop), and counting
/// them would leave an account's last object, failing now and then, waiting minutes.
#[derive(Debug, Default)]
pub struct FailureBackoff(Mutex<HashMap<String, u32>>);

impl FailureBackoff {
    const FIRST: Duration = Duration::from_secs(10);
    const MAX: Duration = Duration::from_secs(300);

    /// Records a failing pass of `account`, which deleted something or not (`progressed`);
    /// the wait before the next.
    pub fn failed(&self, account: &str, progressed: bool) -> Duration {
        let mut failing = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let streak = failing.entry(account.to_owned()).or_default();
        if progressed {
            *streak = 0;
        }
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

impl Context {
    /// Publishes an event on the Account, naming the bound object it is about, when there is
    /// one, as the related object. A failure to publish is logged, never fatal.
    pub async fn publish(
        &self,
        account: &Account,
        about: Option<&ResourceRef>,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        self.publish_regarding(&account.object_ref(&()), about, type_, reason, note)
            .await;
    }

    /// Publishes an event regarding any object, with `about` as the related object.
    pub async fn publish_regarding(
        &self,
        regarding: &ObjectReference,
        about: Option<&ResourceRef>,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note.to_owned()),
            action: reason.to_owned(),
            secondary: about.map(related),
        };
        self.publish_event(&event, regarding).await;
    }

    async fn publish_event(&self, event: &Event, regarding: &ObjectReference) {
        // Through the fence: a replica that may no longer lead tells nobody anything.
        if let Err(error) = self.act(self.recorder.publish(event, regarding)).await {
            let name = regarding.name.as_deref().unwrap_or_default();
            warn!(regarding = name, %error, reason = %event.reason, "cannot publish event");
        }
    }
}

/// A bound object as an event's related object.
fn related(resource: &ResourceRef) -> ObjectReference {
    ObjectReference {
        api_version: Some(Account::api_version(&()).into_owned()),
        kind: Some(resource.kind.as_str().to_owned()),
        namespace: Some(resource.namespace.clone()),
        name: Some(resource.name.clone()),
        ..ObjectReference::default()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_passes_wait_longer_only_while_nothing_goes() {
        let backoff = FailureBackoff::default();
        let secs = |d: Duration| d.as_secs();
        assert_eq!(secs(backoff.failed("acme", false)), 10);
        assert_eq!(secs(backoff.failed("acme", false)), 20);
        assert_eq!(secs(backoff.failed("acme", false)), 40);
        assert_eq!(
            secs(backoff.failed("beta", false)),
            10,
            "each account has its own"
        );
        assert_eq!(
            secs(backoff.failed("acme", true)),
            10,
            "a pass that deleted something starts the wait over"
        );
        assert_eq!(secs(backoff.failed("acme", false)), 20);
        for _ in 0..20 {
            backoff.failed("acme", false);
        }
        assert_eq!(
            secs(backoff.failed("acme", false)),
            300,
            "at most 5 minutes"
        );
        backoff.succeeded("acme");
        assert_eq!(secs(backoff.failed("acme", false)), 10);
    }

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
}
