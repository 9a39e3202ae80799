//! The caches of the bound kinds, compact: per object only what the rules and the executor
//! read, with the index by account beside it, and a relist applied in place.
//!
//! A bound object arrives from its watch as a [`Compact`]: it is parsed and checked against
//! this operator's schema as a whole (so a malformed object is told apart exactly as before,
//! see [`Guarded`]), then projected at once onto its retention facts, its uid and
//! resourceVersion and its status conditions. The whole object never reaches a cache: it lives
//! only while its watch event is parsed. What the rules read (accountRef, legal basis, consent
//! purpose, processors, category, fiscal year end, takenAt, sourceRef, the stamped schedule) is
//! the engine's own [`BoundResource`].
//!
//! kube's reflector keeps every object behind a key that copies its name, namespace, uid and
//! resourceVersion, and an index of ours copied that key twice more; here one shared
//! `namespace/name` key serves the cache and its index. The reflector also gathers a whole
//! new list before it swaps it in, so a relist held two copies of everything at its peak.
//! [`CacheWriter`] applies a list in place instead: each object listed replaces its entry at
//! once, and when the list is complete the entries it did not name (deleted during the gap)
//! are dropped. Until then they serve as they did, as with the reflector; no decision rests on
//! them anyway, since every DELETE is conditional on what the API server holds.

use std::{
    collections::{HashMap, HashSet},
    marker::PhantomData,
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard},
};

use kube::{Resource, api::ObjectMeta, runtime::watcher};
use serde::{Deserialize, Deserializer};
use tokio::sync::watch;

use super::{
    context::{Claims, ObjectVersion},
    guarded::Guarded,
    orphans,
};
use crate::{
    api::{Account, Condition},
    kinds::BoundKind,
    retention::{BoundResource, ResourceRef},
    shard::Shard,
    status::MalformedResource,
};

/// A watched object of a bound kind, as far as the operator reads it.
#[derive(Clone, Debug)]
pub struct Compact<K> {
    /// Its name, namespace, uid and resourceVersion only: the watcher resumes from the
    /// resourceVersion, and kube's controller names the object that triggered a reconcile.
    metadata: ObjectMeta,
    /// What the operator reads of it.
    pub body: Body,
    kind: PhantomData<fn() -> K>,
}

/// What the operator reads of a bound object.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// It matches this operator's schema.
    Readable {
        /// What the rules read of it.
        facts: BoundResource,
        /// Its status conditions (the orphan reporter's `Bound`, and any other writer's,
        /// which a write of that condition must keep).
        conditions: Vec<Condition>,
    },
    /// It does not (e.g. written under a newer CRD version): never deleted, and it keeps its
    /// Account from Erased.
    Malformed {
        /// Which object it is.
        reference: ResourceRef,
        /// `spec.accountRef`, when it is a string.
        account_ref: Option<String>,
        /// Where reading it failed, as a path such as `spec.engine` (never the value).
        field: String,
    },
}

impl Body {
    /// Which object this is.
    pub fn reference(&self) -> &ResourceRef {
        match self {
            Self::Readable { facts, .. } => &facts.reference,
            Self::Malformed { reference, .. } => reference,
        }
    }

    /// The Account it claims, malformed or not.
    pub fn claimed_account(&self) -> Option<&str> {
        match self {
            Self::Readable { facts, .. } => Some(&facts.account),
            Self::Malformed { account_ref, .. } => account_ref.as_deref(),
        }
    }
}

impl<K: BoundKind> Compact<K> {
    /// The projection of an object as its watch delivers it.
    pub fn of(object: Guarded<K>) -> Self {
        let meta = object.meta();
        let metadata = ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..ObjectMeta::default()
        };
        let reference = object.reference();
        let body = match object.0 {
            Ok(readable) => Body::Readable {
                facts: readable.facts(),
                conditions: readable.conditions().to_vec(),
            },
            Err(malformed) => Body::Malformed {
                reference,
                account_ref: malformed.account_ref,
                field: malformed.field,
            },
        };
        Self {
            metadata,
            body,
            kind: PhantomData,
        }
    }
}

impl<K> Compact<K> {
    /// The uid, or `""` when the API server sent none.
    pub fn uid(&self) -> &str {
        self.metadata.uid.as_deref().unwrap_or_default()
    }

    /// The resourceVersion, or `""` when the API server sent none.
    pub fn resource_version(&self) -> &str {
        self.metadata
            .resource_version
            .as_deref()
            .unwrap_or_default()
    }
}

impl<'de, K: BoundKind> Deserialize<'de> for Compact<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Guarded::<K>::deserialize(deserializer).map(Self::of)
    }
}

impl<K: BoundKind> Resource for Compact<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// One cached object.
#[derive(Debug)]
struct Entry {
    /// The number of the last list that named it (see [`State::lists`]).
    listed: u64,
    uid: Box<str>,
    resource_version: Box<str>,
    body: Body,
}

/// The objects of one kind and, beside them, which claim each account. Both maps share
/// each `namespace/name` key.
#[derive(Debug, Default)]
struct State {
    objects: HashMap<Arc<str>, Entry>,
    by_account: HashMap<String, HashSet<Arc<str>>>,
    /// Lists begun so far: an entry a list did not name when it ends is gone.
    lists: u64,
}

impl State {
    fn key(reference: &ResourceRef) -> String {
        format!("{}/{}", reference.namespace, reference.name)
    }

    fn apply<K>(&mut self, object: &Compact<K>) {
        let key = Self::key(object.body.reference());
        let account = object.body.claimed_account();
        let entry = Entry {
            listed: self.lists,
            uid: object.uid().into(),
            resource_version: object.resource_version().into(),
            body: object.body.clone(),
        };
        let key = match self.objects.get_key_value(key.as_str()) {
            Some((shared, old)) => {
                let shared = shared.clone();
                if old.body.claimed_account() != account {
                    let previous = old.body.claimed_account().map(str::to_owned);
                    self.unindex(previous.as_deref(), &shared);
                    self.index(account, &shared);
                }
                shared
            }
            None => {
                let shared: Arc<str> = key.into();
                self.index(account, &shared);
                shared
            }
        };
        self.objects.insert(key, entry);
    }

    fn delete(&mut self, reference: &ResourceRef) {
        let key = Self::key(reference);
        if let Some((shared, entry)) = self.objects.remove_entry(key.as_str()) {
            self.unindex(entry.body.claimed_account(), &shared);
        }
    }

    fn index(&mut self, account: Option<&str>, key: &Arc<str>) {
        if let Some(account) = account {
            self.by_account
                .entry(account.to_owned())
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex(&mut self, account: Option<&str>, key: &Arc<str>) {
        let Some(account) = account else {
            return;
        };
        if let Some(keys) = self.by_account.get_mut(account) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_account.remove(account);
            }
        }
    }

    /// Ends a list: what it did not name is gone.
    fn end_list(&mut self) {
        let current = self.lists;
        let stale: Vec<Arc<str>> = self
            .objects
            .iter()
            .filter(|(_, entry)| entry.listed != current)
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(entry) = self.objects.remove(&key) {
                self.unindex(entry.body.claimed_account(), &key);
            }
        }
    }
}

/// The compact cache of one bound kind, read side.
pub struct CompactCache<K> {
    state: Arc<RwLock<State>>,
    synced: watch::Receiver<bool>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for CompactCache<K> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            synced: self.synced.clone(),
            kind: PhantomData,
        }
    }
}

/// The compact cache of one bound kind, write side: follows its watch's events.
pub struct CacheWriter<K> {
    state: Arc<RwLock<State>>,
    synced: watch::Sender<bool>,
    /// Only objects claiming this shard's accounts are kept.
    shard: Shard,
    kind: PhantomData<fn() -> K>,
}

/// An empty cache of the objects claiming `shard`'s accounts, and its writer.
pub fn cache<K>(shard: Shard) -> (CompactCache<K>, CacheWriter<K>) {
    let state = Arc::new(RwLock::new(State::default()));
    let (synced, synced_seen) = watch::channel(false);
    (
        CompactCache {
            state: state.clone(),
            synced: synced_seen,
            kind: PhantomData,
        },
        CacheWriter {
            state,
            synced,
            shard,
            kind: PhantomData,
        },
    )
}

impl<K> CacheWriter<K> {
    /// Follows one watch event (before it goes on to trigger a reconcile, so the cache is
    /// current when the reconcile reads it).
    pub fn apply(&self, event: &watcher::Event<Compact<K>>) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Init => state.lists += 1,
            watcher::Event::InitApply(object) | watcher::Event::Apply(object)
                if self.shard.owns_claim(object.body.claimed_account()) =>
            {
                state.apply(object);
            }
            // Another shard's: dropped, should it have claimed one of this shard's accounts
            // before (a list drops it at its end anyway).
            watcher::Event::InitApply(_) => {}
            watcher::Event::Apply(object) => state.delete(object.body.reference()),
            watcher::Event::Delete(object) => state.delete(object.body.reference()),
            watcher::Event::InitDone => {
                state.end_list();
                drop(state);
                self.synced.send_replace(true);
            }
        }
    }
}

impl<K: BoundKind> CompactCache<K> {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds what the cache holds that claims `account`.
    pub fn claims(&self, account: &str, out: &mut Claims) {
        let state = self.read();
        let Some(keys) = state.by_account.get(account) else {
            return;
        };
        for entry in keys.iter().filter_map(|key| state.objects.get(key)) {
            if !entry.uid.is_empty() {
                out.uids.insert(entry.uid.to_string());
            }
            match &entry.body {
                Body::Readable { facts, conditions } => {
                    if !entry.uid.is_empty() && !entry.resource_version.is_empty() {
                        out.versions.insert(
                            facts.reference.clone(),
                            ObjectVersion {
                                uid: entry.uid.to_string(),
                                resource_version: entry.resource_version.to_string(),
                            },
                        );
                    }
                    out.bound.push(facts.clone());
                    if orphans::is_marked_unbound(conditions) {
                        out.marked_unbound
                            .push((facts.reference.clone(), conditions.clone()));
                    }
                }
                Body::Malformed {
                    reference, field, ..
                } => out.malformed.push(MalformedResource {
                    resource: reference.clone(),
                    field: field.clone(),
                }),
            }
        }
    }

    /// Adds every cached object the orphan reporter must look at.
    pub fn suspects(
        &self,
        accounts: &kube::runtime::reflector::Store<Guarded<Account>>,
        out: &mut Vec<orphans::Suspect>,
    ) {
        let state = self.read();
        out.extend(state.objects.values().filter_map(|entry| {
            orphans::Suspect::of(&entry.body, &entry.uid, &entry.resource_version, accounts)
        }));
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once the first list is complete; false when the watch stopped first.
    pub async fn wait_until_ready(&self) -> bool {
        let mut synced = self.synced.clone();
        synced.wait_for(|synced| *synced).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Backup, Website};
    use serde_json::json;

    fn website(name: &str, account: &str, version: &str) -> Compact<Website> {
        serde_json::from_value(json!({
            "apiVersion": "hosting.ecuni.se/v1alpha1", "kind": "Website",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "resourceVersion": version,
                         "labels": {"team": "web"},
                         "annotations": {"hosting.ecuni.se/delete-at": "2026-12-01T00:00:00Z",
                                         "note": "x".repeat(4096)},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"accountRef": account, "hostnames": ["www.example.org"],
                     "legalBasis": "Contract"},
        }))
        .unwrap()
    }

    fn names(cache: &CompactCache<Website>, account: &str) -> Vec<String> {
        let mut claims = Claims::default();
        cache.claims(account, &mut claims);
        let mut names: Vec<String> = claims.bound.into_iter().map(|b| b.reference.name).collect();
        names.sort();
        names
    }

    #[test]
    fn an_object_keeps_only_its_facts_its_version_and_its_conditions() {
        let object = website("www", "acme", "7");
        assert_eq!(object.uid(), "uid-www");
        assert_eq!(object.resource_version(), "7");
        // Nothing else of the metadata is kept: no labels, annotations, managed fields.
        assert_eq!(
            object.meta(),
            &ObjectMeta {
                name: Some("www".into()),
                namespace: Some("ns".into()),
                uid: Some("uid-www".into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            }
        );
        let Body::Readable { facts, conditions } = &object.body else {
            panic!("readable: {object:?}");
        };
        assert!(conditions.is_empty());
        assert_eq!(facts.account, "acme");
        assert_eq!(facts.reference.to_string(), "Website ns/www");
        assert_eq!(
            facts.stamped_delete_at,
            Some("2026-12-01T00:00:00Z".parse().unwrap())
        );
        assert!(!format!("{object:?}").contains("www.example.org"));
    }

    #[test]
    fn a_malformed_object_keeps_its_name_its_account_and_the_failing_field_but_no_value() {
        let object: Compact<Backup> = serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": "ns", "uid": "u", "resourceVersion": "3"},
            "spec": {"accountRef": "acme", "takenAt": "secret-not-a-time"},
        }))
        .unwrap();
        let Body::Malformed {
            reference,
            account_ref,
            field,
        } = &object.body
        else {
            panic!("malformed: {object:?}");
        };
        assert_eq!(reference.to_string(), "Backup ns/b");
        assert_eq!(account_ref.as_deref(), Some("acme"));
        assert!(field.starts_with("spec"), "{field}");
        assert!(!format!("{object:?}").contains("secret-not-a-time"));
        let (cache, writer) = cache::<Backup>(Shard::WHOLE);
        writer.apply(&watcher::Event::Apply(object));
        let mut claims = Claims::default();
        cache.claims("acme", &mut claims);
        assert_eq!(claims.malformed.len(), 1);
        assert_eq!(claims.uids, HashSet::from(["u".to_owned()]));
        assert!(claims.bound.is_empty() && claims.versions.is_empty());
    }

    #[test]
    fn follows_applies_deletes_and_changes_of_account() {
        let (cache, writer) = cache::<Website>(Shard::WHOLE);
        writer.apply(&watcher::Event::Apply(website("a1", "acme", "1")));
        writer.apply(&watcher::Event::Apply(website("a2", "acme", "2")));
        writer.apply(&watcher::Event::Apply(website("a2", "acme", "3")));
        assert_eq!(names(&cache, "acme"), ["a1", "a2"]);
        let mut claims = Claims::default();
        cache.claims("acme", &mut claims);
        let a2 = claims
            .versions
            .iter()
            .find(|(r, _)| r.name == "a2")
            .map(|(_, v)| v.resource_version.clone());
        assert_eq!(a2.as_deref(), Some("3"), "the latest version");
        writer.apply(&watcher::Event::Delete(website("a1", "acme", "2")));
        assert_eq!(names(&cache, "acme"), ["a2"]);
        writer.apply(&watcher::Event::Apply(website("a2", "beta", "4")));
        assert!(names(&cache, "acme").is_empty());
        assert_eq!(names(&cache, "beta"), ["a2"]);
        assert_eq!(cache.len(), 1);
        assert!(
            !cache.read().by_account.contains_key("acme"),
            "no empty sets"
        );
    }

    #[test]
    fn a_relist_applies_in_place_and_drops_what_it_did_not_name_when_done() {
        let (cache, writer) = cache::<Website>(Shard::WHOLE);
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(website("a1", "acme", "1")));
        writer.apply(&watcher::Event::InitApply(website("b1", "beta", "1")));
        writer.apply(&watcher::Event::InitDone);
        assert_eq!(names(&cache, "acme"), ["a1"]);
        writer.apply(&watcher::Event::Apply(website("a2", "acme", "2")));

        // A relist: b1 changes account, a1 is listed again, a2 was deleted during the gap.
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(website("b1", "acme", "5")));
        assert_eq!(
            names(&cache, "acme"),
            ["a1", "a2", "b1"],
            "until the list is complete, what it has not named yet still serves"
        );
        writer.apply(&watcher::Event::InitApply(website("a1", "acme", "1")));
        writer.apply(&watcher::Event::InitDone);
        assert_eq!(names(&cache, "acme"), ["a1", "b1"]);
        assert!(names(&cache, "beta").is_empty());
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn ready_once_the_first_list_is_complete_and_never_when_the_watch_stopped_first() {
        let (cache, writer) = cache::<Website>(Shard::WHOLE);
        writer.apply(&watcher::Event::Init);
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.wait_until_ready().await }
        });
        writer.apply(&watcher::Event::InitDone);
        assert!(waiting.await.unwrap());

        let (stopped, writer) = super::cache::<Website>(Shard::WHOLE);
        drop(writer);
        assert!(!stopped.wait_until_ready().await);
    }
}
