//! The object store: every object as JSON, one global resourceVersion counter, a bounded log of
//! watch events, and the semantics kube-apiserver gives writes (conflicts, generation, status
//! subresource, finalizers, preconditions, garbage collection by ownerReferences, namespace
//! deletion).

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::Arc,
};

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::{
    crd,
    registry::ResourceType,
    status::{ApiError, ApiResult, Target},
};

/// Where a type's objects are stored: (group, plural).
pub type StorageKey = (String, String);
/// An object's place in its collection: (namespace, name); namespace "" when cluster-scoped.
pub type ObjectKey = (String, String);

/// The finalizer kube-apiserver adds for foreground cascading deletion.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer kube-apiserver adds when dependents are to be orphaned.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// A change to one object, as watchers see it.
#[derive(Debug)]
pub struct WatchEvent {
    /// The resourceVersion the change produced.
    pub resource_version: u64,
    /// Which collection changed.
    pub storage: StorageKey,
    /// ADDED, MODIFIED or DELETED.
    pub kind: EventKind,
    /// The object after the change (for DELETED, its last state with the new resourceVersion).
    pub object: Arc<Value>,
}

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// How a delete propagates to dependents (ownerReferences).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now; the garbage collector deletes dependents afterwards.
    Background,
    /// Delete dependents first; the owner waits with a `foregroundDeletion` finalizer.
    Foreground,
    /// Keep dependents, removing their ownerReferences to the owner.
    Orphan,
}

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// `fieldManager`, recorded in managedFields.
    pub field_manager: Option<String>,
    /// For server-side apply: the applied field set, recorded as the manager's `Apply` entry.
    pub apply: Option<Value>,
}

/// Options of a delete (`DeleteOptions`).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `propagationPolicy`; `None` is Background.
    pub propagation: Option<Propagation>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The outcome of a delete. kube-apiserver answers 200 whether the object is gone or held by
/// finalizers (202 only for the long-deprecated `orphanDependents=false`).
#[derive(Debug)]
pub struct Deleted {
    /// Whether the object is gone (rather than held by finalizers).
    pub gone: bool,
    /// The object's last (or current) state.
    pub object: Value,
}

/// A continue token: where a paginated list goes on.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    namespace: String,
    name: String,
}

/// A predicate over objects (label and field selectors), shareable with a watch task.
pub type Matcher = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// Filters of a list or watch; owned, so a watch stream can keep it.
#[derive(Default)]
pub struct Filter {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only objects this predicate accepts (label and field selectors).
    pub matches: Option<Matcher>,
}

impl Filter {
    /// Whether `object` passes the filter.
    pub fn accepts(&self, object: &Value) -> bool {
        let namespace_ok = self.namespace.as_deref().is_none_or(|ns| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                == ns
        });
        namespace_ok && self.matches.as_ref().is_none_or(|m| m(object))
    }
}

/// A page of a list.
pub struct Page {
    /// The matching objects.
    pub items: Vec<Value>,
    /// The store's resourceVersion when listed.
    pub resource_version: u64,
    /// Token for the next page.
    pub continue_token: Option<String>,
    /// Objects after this page.
    pub remaining: Option<usize>,
}

/// A receiver of every later change.
pub type Subscription = broadcast::Receiver<Arc<WatchEvent>>;

/// The store.
pub struct Store {
    resource_version: u64,
    collections: HashMap<StorageKey, BTreeMap<ObjectKey, Value>>,
    uids: HashMap<String, (StorageKey, ObjectKey)>,
    dependents: HashMap<String, HashSet<(StorageKey, ObjectKey)>>,
    log: VecDeque<Arc<WatchEvent>>,
    window: usize,
    /// Events with a resourceVersion at or below this are no longer retained.
    compacted: u64,
    sender: broadcast::Sender<Arc<WatchEvent>>,
    gc_gone: Vec<String>,
    gc_owners: Vec<(StorageKey, ObjectKey)>,
    gc_orphans: Vec<(StorageKey, ObjectKey)>,
    gc_namespaces: Vec<String>,
    /// CRDs for the apiextensions controllers to look at (by name).
    gc_crds: Vec<String>,
    /// Whether a CRD changed since `take_crds_changed`: the served kinds must follow.
    crds_changed: bool,
}

/// The current time as kube-apiserver writes timestamps (seconds, `Z`).
pub fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn meta(object: &Value) -> &Value {
    &object["metadata"]
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// The object's metadata map, created when absent. The root must be a JSON object (checked
/// where requests enter).
fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    let metadata = &mut object["metadata"];
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    match metadata {
        Value::Object(map) => map,
        _ => unreachable!("metadata was made an object above"),
    }
}

fn finalizers(object: &Value) -> Vec<String> {
    meta(object)["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn set_finalizers(object: &mut Value, finalizers: &[String]) {
    let meta = meta_mut(object);
    if finalizers.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(finalizers));
    }
}

fn is_deleting(object: &Value) -> bool {
    meta(object)
        .get("deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn owner_uids(object: &Value) -> Vec<String> {
    meta(object)["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The object without metadata and status: what `generation` tracks.
fn spec_part(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

/// The object without the fields every write rewrites, to detect no-op updates.
fn comparable(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        if let Some(entries) = meta.get_mut("managedFields").and_then(Value::as_array_mut) {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("time");
            }
        }
    }
    copy
}

fn generate_suffix() -> String {
    // kube-apiserver's alphabet: no vowels, so no words, and no ambiguous characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl Store {
    /// An empty store retaining `window` watch events.
    pub fn new(window: usize) -> Self {
        let (sender, _) = broadcast::channel(65_536);
        Self {
            resource_version: 1,
            collections: HashMap::new(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            log: VecDeque::new(),
            window: window.max(1),
            compacted: 1,
            sender,
            gc_gone: Vec::new(),
            gc_owners: Vec::new(),
            gc_orphans: Vec::new(),
            gc_namespaces: Vec::new(),
            gc_crds: Vec::new(),
            crds_changed: false,
        }
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// The oldest resourceVersion a watch can resume from.
    pub fn oldest_resumable(&self) -> u64 {
        self.compacted
    }

    /// Changes how many events are retained, compacting at once when it shrinks.
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(1);
        self.compact();
    }

    fn compact(&mut self) {
        while self.log.len() > self.window {
            if let Some(event) = self.log.pop_front() {
                self.compacted = event.resource_version;
            }
        }
        if self.log.is_empty() {
            self.compacted = self.resource_version;
        }
    }

    /// Number of stored objects, of every type.
    pub fn len(&self) -> usize {
        self.collections.values().map(BTreeMap::len).sum()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One object.
    pub fn get(&self, t: &ResourceType, namespace: &str, name: &str) -> ApiResult<Value> {
        self.collections
            .get(&t.storage_key())
            .and_then(|c| c.get(&(namespace.to_owned(), name.to_owned())))
            .cloned()
            .ok_or_else(|| {
                ApiError::not_found(Target {
                    group: &t.group,
                    resource: &t.plural,
                    name,
                })
            })
    }

    fn target<'a>(t: &'a ResourceType, name: &'a str) -> Target<'a> {
        Target {
            group: &t.group,
            resource: &t.plural,
            name,
        }
    }

    /// A page of objects.
    pub fn list(
        &self,
        t: &ResourceType,
        filter: &Filter,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> ApiResult<Page> {
        let mut start: Option<ObjectKey> = None;
        let mut list_rv = self.resource_version;
        if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
            let token = decode_continue(token)?;
            if token.rv < self.compacted {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            list_rv = token.rv;
            start = Some((token.namespace, token.name));
        }
        let empty = BTreeMap::new();
        let collection = self.collections.get(&t.storage_key()).unwrap_or(&empty);
        let mut matching = collection
            .iter()
            .filter(|(key, _)| start.as_ref().is_none_or(|s| *key > s))
            .filter(|(_, object)| filter.accepts(object));
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let items: Vec<(ObjectKey, Value)> = matching
            .by_ref()
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let remaining = matching.count();
        let continue_token = match (remaining, items.last()) {
            (0, _) | (_, None) => None,
            (_, Some(((namespace, name), _))) => Some(encode_continue(&ContinueToken {
                rv: list_rv,
                namespace: namespace.clone(),
                name: name.clone(),
            })),
        };
        Ok(Page {
            items: items.into_iter().map(|(_, v)| v).collect(),
            resource_version: list_rv,
            remaining: (remaining > 0).then_some(remaining),
            continue_token,
        })
    }

    /// Creates an object. `namespace` is the namespace in the path, if any.
    pub fn create(
        &mut self,
        t: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        options: &WriteOptions,
    ) -> ApiResult<Value> {
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        check_type(t, &mut object)?;
        let namespace = self.place(t, namespace, &mut object)?;
        let name = match meta_str(&object, "name").filter(|n| !n.is_empty()) {
            Some(name) => name.to_owned(),
            None => match meta_str(&object, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => format!("{prefix}{}", generate_suffix()),
                None => {
                    return Err(invalid_meta(
                        t,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            },
        };
        if !valid_name(&name) {
            return Err(invalid_meta(
                t,
                &name,
                "metadata.name",
                &format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        {
            let meta = meta_mut(&mut object);
            meta.insert("name".into(), json!(name));
            for system in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "managedFields",
            ] {
                meta.remove(system);
            }
        }
        if t.status_subresource
            && t.custom
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        if t.plural == "namespaces" && t.group.is_empty() {
            object["spec"]["finalizers"] = json!(["kubernetes"]);
            object["status"] = json!({"phase": "Active"});
        }
        if crd::is_crd_type(t) {
            crd::default_spec(&mut object);
            check_crd(t, &object, None, &name)?;
            crd::initial_status(&mut object);
        }
        let mut object = admit(t, object, None, &name)?;
        let key = (namespace, name.clone());
        if self
            .collections
            .get(&t.storage_key())
            .is_some_and(|c| c.contains_key(&key))
        {
            return Err(ApiError::already_exists(Self::target(t, &name)));
        }
        let now = timestamp();
        {
            let meta = meta_mut(&mut object);
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(now));
            if tracks_generation(t) {
                meta.insert("generation".into(), json!(1));
            }
        }
        let owned = crate::apply::updated_fields(None, &object);
        record_manager(&mut object, t, options, &now, &owned);
        if options.dry_run {
            return Ok(object);
        }
        let owners = owner_uids(&object);
        let stored = self.commit(t.storage_key(), key, object, EventKind::Added);
        // An object whose every owner is already gone is garbage from the start.
        if !owners.is_empty() && owners.iter().all(|uid| !self.uids.contains_key(uid)) {
            self.gc_gone.extend(owners);
        }
        self.collect_garbage();
        Ok(stored)
    }

    /// Checks and sets the namespace of a new object; returns it ("" when cluster-scoped).
    fn place(
        &self,
        t: &ResourceType,
        path_namespace: Option<&str>,
        object: &mut Value,
    ) -> ApiResult<String> {
        if !t.namespaced {
            meta_mut(object).remove("namespace");
            return Ok(String::new());
        }
        let body_namespace = meta_str(object, "namespace").map(str::to_owned);
        let namespace = match (path_namespace, body_namespace.as_deref()) {
            (Some(path), Some(body)) if path != body => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (Some(path), _) => path.to_owned(),
            (None, Some(body)) => body.to_owned(),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "the namespace of the object is required",
                ));
            }
        };
        let namespaces = self
            .collections
            .get(&(String::new(), "namespaces".to_owned()));
        match namespaces.and_then(|c| c.get(&(String::new(), namespace.clone()))) {
            None => {
                return Err(ApiError::not_found(Target {
                    group: "",
                    resource: "namespaces",
                    name: &namespace,
                }));
            }
            Some(ns) if is_deleting(ns) => {
                return Err(ApiError::forbidden(format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                )));
            }
            Some(_) => {}
        }
        meta_mut(object).insert("namespace".into(), json!(namespace));
        Ok(namespace)
    }

    /// Replaces an object (PUT), or its status when `status_only`.
    pub fn update(
        &mut self,
        t: &ResourceType,
        namespace: &str,
        name: &str,
        mut object: Value,
        status_only: bool,
        options: &WriteOptions,
    ) -> ApiResult<Value> {
        let old = self.get(t, namespace, name)?;
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        check_type(t, &mut object)?;
        if let Some(body_name) = meta_str(&object, "name").filter(|n| *n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = meta_str(&object, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(Self::target(t, name)));
        }
        let mut new = if status_only {
            let mut new = old.clone();
            match object.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            new
        } else {
            let mut new = object;
            if t.status_subresource {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            new
        };
        {
            let old_meta = meta(&old).clone();
            let meta = meta_mut(&mut new);
            for kept in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "managedFields",
            ] {
                match old_meta.get(kept) {
                    Some(value) => meta.insert(kept.into(), value.clone()),
                    None => meta.remove(kept),
                };
            }
            meta.insert(
                "resourceVersion".into(),
                old_meta["resourceVersion"].clone(),
            );
        }
        if is_deleting(&old) {
            let before: HashSet<String> = finalizers(&old).into_iter().collect();
            if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(invalid_meta(
                    t,
                    name,
                    "metadata.finalizers",
                    &format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{added}\"}}"
                    ),
                ));
            }
        }
        if crd::is_crd_type(t) && !status_only {
            crd::default_spec(&mut new);
            crd::record_stored_version(&mut new);
            check_crd(t, &new, Some(&old), name)?;
        }
        let mut new = admit(t, new, Some(&old), name)?;
        if tracks_generation(t) && spec_part(&new) != spec_part(&old) {
            let generation = meta(&old)["generation"].as_i64().unwrap_or(1);
            meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        if options.apply.is_none() {
            crate::apply::release_changed(&mut new, &old);
        }
        // An apply's field set is part of the object; an update's bookkeeping entry is not
        // worth a write of its own.
        if options.apply.is_some() {
            record_manager(&mut new, t, options, &timestamp(), &json!({}));
        }
        if comparable(&new) == comparable(&old) {
            // kube-apiserver skips writes that change nothing: no new resourceVersion, no event.
            return Ok(old);
        }
        if options.apply.is_none() {
            let owned = crate::apply::updated_fields(Some(&old), &new);
            record_manager(&mut new, t, options, &timestamp(), &owned);
        }
        if options.dry_run {
            return Ok(new);
        }
        let key = (namespace.to_owned(), name.to_owned());
        let finished = is_deleting(&new) && finalizers(&new).is_empty();
        let kind = if finished {
            EventKind::Deleted
        } else {
            EventKind::Modified
        };
        let stored = self.commit(t.storage_key(), key, new, kind);
        self.collect_garbage();
        Ok(stored)
    }

    /// Deletes an object, honouring finalizers, preconditions and propagation.
    pub fn delete(
        &mut self,
        t: &ResourceType,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let old = self.get(t, namespace, name)?;
        if let Some(uid) = &options.uid
            && Some(uid.as_str()) != meta_str(&old, "uid")
        {
            let actual = meta_str(&old, "uid").unwrap_or_default();
            return Err(ApiError::precondition_failed(
                Self::target(t, name),
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
        if let Some(rv) = &options.resource_version
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            let actual = meta_str(&old, "resourceVersion").unwrap_or_default();
            return Err(ApiError::precondition_failed(
                Self::target(t, name),
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
        if options.dry_run {
            return Ok(Deleted {
                gone: true,
                object: old,
            });
        }
        let key = (namespace.to_owned(), name.to_owned());
        let mut wanted = finalizers(&old);
        match options.propagation {
            Some(Propagation::Foreground) if !wanted.iter().any(|f| f == FOREGROUND_FINALIZER) => {
                wanted.push(FOREGROUND_FINALIZER.to_owned());
            }
            Some(Propagation::Orphan) if !wanted.iter().any(|f| f == ORPHAN_FINALIZER) => {
                wanted.push(ORPHAN_FINALIZER.to_owned());
            }
            _ => {}
        }
        let is_namespace = t.group.is_empty() && t.plural == "namespaces";
        // kube-apiserver's CRD storage holds a deleted CRD with its cleanup finalizer until the
        // finalizing controller has deleted every instance.
        let is_crd = crd::is_crd_type(t);
        if is_crd && !wanted.iter().any(|f| f == crd::CLEANUP_FINALIZER) {
            wanted.push(crd::CLEANUP_FINALIZER.to_owned());
        }
        if wanted.is_empty() && !is_namespace {
            let last = self.commit(t.storage_key(), key, old, EventKind::Deleted);
            self.collect_garbage();
            return Ok(Deleted {
                gone: true,
                object: last,
            });
        }
        let mut new = old.clone();
        set_finalizers(&mut new, &wanted);
        if !is_deleting(&new) {
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(timestamp()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if is_namespace {
            new["status"]["phase"] = json!("Terminating");
            self.gc_namespaces.push(name.to_owned());
        }
        if is_crd && !is_deleting(&old) {
            crd::set_condition(
                &mut new,
                "Terminating",
                "True",
                "InstanceDeletionPending",
                "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
                &timestamp(),
            );
        }
        let mut last = new.clone();
        if comparable(&new) != comparable(&old) {
            last = self.commit(t.storage_key(), key.clone(), new, EventKind::Modified);
        }
        self.collect_garbage();
        match self
            .collections
            .get(&t.storage_key())
            .and_then(|c| c.get(&key))
        {
            Some(current) => Ok(Deleted {
                gone: false,
                object: current.clone(),
            }),
            None => Ok(Deleted {
                gone: true,
                object: last,
            }),
        }
    }

    /// Stores an object (or, for `Deleted`, removes it, `object` being its last state),
    /// assigning the next resourceVersion, and tells watchers. Returns the object as stored.
    fn commit(
        &mut self,
        storage: StorageKey,
        key: ObjectKey,
        mut object: Value,
        kind: EventKind,
    ) -> Value {
        self.resource_version += 1;
        let rv = self.resource_version;
        meta_mut(&mut object).insert("resourceVersion".into(), json!(rv.to_string()));
        let collection = self.collections.entry(storage.clone()).or_default();
        let previous = if kind == EventKind::Deleted {
            collection.remove(&key)
        } else {
            collection.insert(key.clone(), object.clone())
        };
        let place = (storage.clone(), key.clone());
        if let Some(previous) = &previous {
            for owner in owner_uids(previous) {
                if let Some(set) = self.dependents.get_mut(&owner) {
                    set.remove(&place);
                }
            }
        }
        let uid = meta_str(&object, "uid").unwrap_or_default().to_owned();
        if kind == EventKind::Deleted {
            self.uids.remove(&uid);
            self.gc_gone.push(uid);
            // Owners waiting in foreground deletion, and a terminating namespace, may now be done.
            for owner in owner_uids(&object) {
                if let Some(owner_place) = self.uids.get(&owner) {
                    self.gc_owners.push(owner_place.clone());
                }
            }
            if !key.0.is_empty() {
                let namespaces = self
                    .collections
                    .get(&(String::new(), "namespaces".to_owned()));
                if namespaces
                    .and_then(|c| c.get(&(String::new(), key.0.clone())))
                    .is_some_and(is_deleting)
                {
                    self.gc_namespaces.push(key.0.clone());
                }
            }
        } else {
            self.uids.insert(uid, place.clone());
            for owner in owner_uids(&object) {
                self.dependents
                    .entry(owner)
                    .or_default()
                    .insert(place.clone());
            }
            if is_deleting(&object) {
                let pending = finalizers(&object);
                if pending.iter().any(|f| f == FOREGROUND_FINALIZER) {
                    self.gc_owners.push(place.clone());
                }
                if pending.iter().any(|f| f == ORPHAN_FINALIZER) {
                    self.gc_orphans.push(place);
                }
            }
        }
        self.queue_crd_controllers(&storage, &object, kind);
        let event = Arc::new(WatchEvent {
            resource_version: rv,
            storage,
            kind,
            object: Arc::new(object.clone()),
        });
        self.log.push_back(event.clone());
        self.compact();
        // No receivers is fine: nobody watches.
        let _ = self.sender.send(event);
        object
    }

    /// The garbage collector and namespace controller, run to a fixed point after each write.
    fn collect_garbage(&mut self) {
        for _ in 0..10_000 {
            if let Some(uid) = self.gc_gone.pop() {
                self.collect_dependents_of_gone(&uid);
            } else if let Some(owner) = self.gc_owners.pop() {
                self.collect_foreground(owner);
            } else if let Some(owner) = self.gc_orphans.pop() {
                self.collect_orphans(owner);
            } else if let Some(namespace) = self.gc_namespaces.pop() {
                self.collect_namespace(&namespace);
            } else if let Some(name) = self.gc_crds.pop() {
                self.control_crd(&name);
            } else {
                return;
            }
        }
    }

    fn object_at(&self, place: &(StorageKey, ObjectKey)) -> Option<&Value> {
        self.collections.get(&place.0)?.get(&place.1)
    }

    /// Deletes (in the background) dependents none of whose owners exist any more.
    fn collect_dependents_of_gone(&mut self, uid: &str) {
        let Some(dependents) = self.dependents.remove(uid) else {
            return;
        };
        for place in dependents {
            let Some(object) = self.object_at(&place).cloned() else {
                continue;
            };
            let has_live_owner = owner_uids(&object)
                .iter()
                .any(|owner| self.uids.contains_key(owner));
            // A dependent with an owner left stays; kube's collector would also strip the
            // dangling reference, which this one does not (see README).
            if !has_live_owner && !is_deleting(&object) {
                self.delete_internal(place, object, Propagation::Background);
            }
        }
    }

    fn delete_internal(
        &mut self,
        place: (StorageKey, ObjectKey),
        object: Value,
        propagation: Propagation,
    ) {
        let mut wanted = finalizers(&object);
        if propagation == Propagation::Foreground
            && !wanted.iter().any(|f| f == FOREGROUND_FINALIZER)
        {
            wanted.push(FOREGROUND_FINALIZER.to_owned());
        }
        if wanted.is_empty() {
            self.commit(place.0, place.1, object, EventKind::Deleted);
        } else if !is_deleting(&object) {
            let mut new = object;
            set_finalizers(&mut new, &wanted);
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(timestamp()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            self.commit(place.0, place.1, new, EventKind::Modified);
        }
    }

    fn dependents_of(&self, uid: &str) -> Vec<(StorageKey, ObjectKey)> {
        self.dependents
            .get(uid)
            .map(|set| {
                set.iter()
                    .filter(|p| self.object_at(p).is_some())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Foreground deletion: delete dependents, then release the owner once no dependent that
    /// blocks owner deletion is left.
    fn collect_foreground(&mut self, owner: (StorageKey, ObjectKey)) {
        let Some(object) = self.object_at(&owner).cloned() else {
            return;
        };
        if !finalizers(&object)
            .iter()
            .any(|f| f == FOREGROUND_FINALIZER)
        {
            return;
        }
        let uid = meta_str(&object, "uid").unwrap_or_default().to_owned();
        let dependents = self.dependents_of(&uid);
        for place in &dependents {
            if let Some(dependent) = self.object_at(place).cloned()
                && !is_deleting(&dependent)
            {
                self.delete_internal(place.clone(), dependent, Propagation::Background);
            }
        }
        // As kube's collector, the owner waits only for dependents whose reference to it has
        // `blockOwnerDeletion: true`.
        let blocking = self.dependents_of(&uid).into_iter().any(|place| {
            self.object_at(&place).is_some_and(|dependent| {
                meta(dependent)["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r["uid"] == uid.as_str() && r["blockOwnerDeletion"] == true)
                    })
            })
        });
        if !blocking {
            self.remove_finalizer(owner, FOREGROUND_FINALIZER);
        }
        // Otherwise a dependent's final removal re-queues this owner (see `commit`'s gc_gone).
    }

    /// Orphan deletion: strip ownerReferences to the owner from dependents, then release it.
    fn collect_orphans(&mut self, owner: (StorageKey, ObjectKey)) {
        let Some(object) = self.object_at(&owner).cloned() else {
            return;
        };
        let uid = meta_str(&object, "uid").unwrap_or_default().to_owned();
        for place in self.dependents_of(&uid) {
            if let Some(mut dependent) = self.object_at(&place).cloned() {
                if let Some(refs) = dependent["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid.as_str());
                    if refs.is_empty() {
                        meta_mut(&mut dependent).remove("ownerReferences");
                    }
                }
                self.commit(place.0, place.1, dependent, EventKind::Modified);
            }
        }
        self.dependents.remove(&uid);
        self.remove_finalizer(owner, ORPHAN_FINALIZER);
    }

    fn remove_finalizer(&mut self, place: (StorageKey, ObjectKey), finalizer: &str) {
        let Some(mut object) = self.object_at(&place).cloned() else {
            return;
        };
        let remaining: Vec<String> = finalizers(&object)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        set_finalizers(&mut object, &remaining);
        let kind = if remaining.is_empty() && is_deleting(&object) {
            EventKind::Deleted
        } else {
            EventKind::Modified
        };
        self.commit(place.0, place.1, object, kind);
    }

    /// The namespace controller: delete the namespace's content, then the namespace.
    fn collect_namespace(&mut self, namespace: &str) {
        let mut content = Vec::new();
        for (storage, collection) in &self.collections {
            for (key, object) in collection.range((namespace.to_owned(), String::new())..) {
                if key.0 != namespace {
                    break;
                }
                content.push(((storage.clone(), key.clone()), object.clone()));
            }
        }
        let namespace_place = (
            (String::new(), "namespaces".to_owned()),
            (String::new(), namespace.to_owned()),
        );
        let mut remaining = 0;
        for (place, object) in content {
            if place.0 == namespace_place.0 {
                continue;
            }
            remaining += 1;
            if !is_deleting(&object) {
                self.delete_internal(place.clone(), object, Propagation::Background);
            }
            if self.object_at(&place).is_none() {
                remaining -= 1;
            }
        }
        if remaining == 0
            && let Some(ns) = self.object_at(&namespace_place).cloned()
            && finalizers(&ns).is_empty()
        {
            self.commit(namespace_place.0, namespace_place.1, ns, EventKind::Deleted);
        }
    }

    /// After a write: a changed CRD, and every CRD of its group (whose name conflicts may have
    /// changed), goes to the apiextensions controllers; so does a deleted CRD whose last
    /// instance just went.
    fn queue_crd_controllers(&mut self, storage: &StorageKey, object: &Value, kind: EventKind) {
        let crd_storage = crd_storage();
        if *storage == crd_storage {
            self.crds_changed = true;
            let group = &object["spec"]["group"];
            if let Some(crds) = self.collections.get(&crd_storage) {
                self.gc_crds.extend(
                    crds.iter()
                        .filter(|(_, other)| other["spec"]["group"] == *group)
                        .map(|(key, _)| key.1.clone()),
                );
            }
        } else if kind == EventKind::Deleted
            && !storage.0.is_empty()
            && self.collections.get(storage).is_none_or(BTreeMap::is_empty)
        {
            let name = format!("{}.{}", storage.1, storage.0);
            if self
                .collections
                .get(&crd_storage)
                .and_then(|c| c.get(&(String::new(), name.clone())))
                .is_some_and(is_deleting)
            {
                self.gc_crds.push(name);
            }
        }
    }

    /// The apiextensions controllers for one CRD. A live CRD gets its accepted names and
    /// conditions (naming and establishing controllers); a deleted one has its instances
    /// deleted and, once none is left, loses its cleanup finalizer (finalizing controller).
    fn control_crd(&mut self, name: &str) {
        let place = (crd_storage(), (String::new(), name.to_owned()));
        let Some(current) = self.object_at(&place).cloned() else {
            return;
        };
        let now = timestamp();
        if !is_deleting(&current) {
            let others: Vec<&Value> = self
                .collections
                .get(&place.0)
                .map(|c| {
                    c.iter()
                        .filter(|(key, _)| key.1 != name)
                        .map(|(_, crd)| crd)
                        .collect()
                })
                .unwrap_or_default();
            let new = crd::controlled_status(&current, &others, &now);
            if new != current {
                self.commit(place.0, place.1, new, EventKind::Modified);
            }
            return;
        }
        if !finalizers(&current)
            .iter()
            .any(|f| f == crd::CLEANUP_FINALIZER)
        {
            return;
        }
        let mut new = current.clone();
        let done = if crd::is_condition_true(&current, "Established") {
            let storage = crd::instance_storage(&current);
            let instances: Vec<(ObjectKey, Value)> = self
                .collections
                .get(&storage)
                .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            for (key, object) in instances {
                if !is_deleting(&object) {
                    self.delete_internal((storage.clone(), key), object, Propagation::Background);
                }
            }
            if self
                .collections
                .get(&storage)
                .is_none_or(BTreeMap::is_empty)
            {
                crd::set_condition(
                    &mut new,
                    "Terminating",
                    "False",
                    "InstanceDeletionCompleted",
                    "removed all instances",
                    &now,
                );
                true
            } else {
                // Instances held by finalizers: the CRD waits; the last one's removal queues it
                // again (see `queue_crd_controllers`).
                crd::set_condition(
                    &mut new,
                    "Terminating",
                    "True",
                    "InstanceDeletionInProgress",
                    "CustomResource deletion is in progress",
                    &now,
                );
                false
            }
        } else {
            crd::set_condition(
                &mut new,
                "Terminating",
                "False",
                "NeverEstablished",
                "resource was never established",
                &now,
            );
            true
        };
        let mut kind = EventKind::Modified;
        if done {
            let remaining: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| f != crd::CLEANUP_FINALIZER)
                .collect();
            set_finalizers(&mut new, &remaining);
            if remaining.is_empty() {
                kind = EventKind::Deleted;
            }
        }
        if kind == EventKind::Deleted || comparable(&new) != comparable(&current) {
            self.commit(place.0, place.1, new, kind);
        }
    }

    /// Every stored CRD.
    pub fn crds(&self) -> Vec<Value> {
        self.collections
            .get(&crd_storage())
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a CRD changed since the last call.
    pub fn take_crds_changed(&mut self) -> bool {
        std::mem::take(&mut self.crds_changed)
    }

    /// Events after `since` for `storage`, and a receiver for later ones; `Err` when `since`
    /// is older than the retained window.
    pub fn watch_from(
        &self,
        storage: &StorageKey,
        since: u64,
    ) -> Result<(Vec<Arc<WatchEvent>>, Subscription), ApiError> {
        if since < self.compacted {
            return Err(ApiError::expired(format!(
                "too old resource version: {since} ({})",
                self.compacted
            )));
        }
        let backlog = self
            .log
            .iter()
            .filter(|e| e.resource_version > since && &e.storage == storage)
            .cloned()
            .collect();
        Ok((backlog, self.sender.subscribe()))
    }

    /// Every object of a type, and a receiver for changes after this instant.
    pub fn snapshot(
        &self,
        t: &ResourceType,
    ) -> (Vec<Value>, u64, broadcast::Receiver<Arc<WatchEvent>>) {
        let objects = self
            .collections
            .get(&t.storage_key())
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        (objects, self.resource_version, self.sender.subscribe())
    }
}

fn crd_storage() -> StorageKey {
    (crd::GROUP.to_owned(), crd::PLURAL.to_owned())
}

/// Whether metadata.generation is kept: for custom resources and CRDs, as kube-apiserver's
/// strategies for both do.
fn tracks_generation(t: &ResourceType) -> bool {
    t.custom || crd::is_crd_type(t)
}

/// kube-apiserver's validation of a CRD written as an object: 422 with every problem found.
fn check_crd(t: &ResourceType, object: &Value, old: Option<&Value>, name: &str) -> ApiResult<()> {
    let errors = crd::validate(object, old);
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(crate::validation::invalid_status(
        &t.kind, &t.group, name, &errors,
    )))
}

fn check_type(t: &ResourceType, object: &mut Value) -> ApiResult<()> {
    let api_version = t.api_version();
    match object.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        _ => object["apiVersion"] = json!(api_version),
    }
    match object.get("kind").and_then(Value::as_str) {
        Some(k) if k != t.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                t.kind
            )));
        }
        _ => object["kind"] = json!(t.kind),
    }
    Ok(())
}

/// A 422 about metadata, worded as kube-apiserver does.
fn invalid_meta(t: &ResourceType, name: &str, field: &str, detail: &str) -> ApiError {
    let qualified = if t.group.is_empty() {
        t.kind.clone()
    } else {
        format!("{}.{}", t.kind, t.group)
    };
    let (reason, cause) = match detail.split_once(": ") {
        Some(("Required value", _)) => ("FieldValueRequired", detail.to_owned()),
        Some((kind, _)) if kind.starts_with("Forbidden") => {
            ("FieldValueForbidden", detail.to_owned())
        }
        _ => ("FieldValueInvalid", detail.to_owned()),
    };
    ApiError::invalid(json!({
        "message": format!("{qualified} \"{name}\" is invalid: {field}: {detail}"),
        "details": {"name": name, "group": t.group, "kind": t.kind,
                    "causes": [{"reason": reason, "message": cause, "field": field}]},
    }))
}

/// Schema admission of a custom resource: prune, default, validate, CEL.
fn admit(t: &ResourceType, object: Value, old: Option<&Value>, name: &str) -> ApiResult<Value> {
    let Some(schema) = &t.schema else {
        return Ok(object);
    };
    schema.admit(object, old).map_err(|errors| {
        ApiError::invalid(crate::validation::invalid_status(
            &t.kind, &t.group, name, &errors,
        ))
    })
}

/// Records the write's manager in managedFields: an apply's field set replaces its `Apply`
/// entry; a non-apply write adds `updated` (what it set or changed) to its `Update` entry. Update
/// entries left without fields are dropped, as kube-apiserver drops them.
fn record_manager(
    object: &mut Value,
    t: &ResourceType,
    options: &WriteOptions,
    now: &str,
    updated: &Value,
) {
    let manager = options
        .field_manager
        .clone()
        .unwrap_or_else(|| "unknown".to_owned());
    let operation = if options.apply.is_some() {
        "Apply"
    } else {
        "Update"
    };
    let meta = meta_mut(object);
    let mut entries = meta
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let fields = match &options.apply {
        Some(applied) => applied.clone(),
        None => {
            let mut fields = entries
                .iter()
                .find(|e| e["manager"] == manager.as_str() && e["operation"] == operation)
                .map(|e| e["fieldsV1"].clone())
                .unwrap_or_else(|| json!({}));
            crate::apply::union(&mut fields, updated);
            fields
        }
    };
    let entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": t.api_version(),
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    entries.retain(|e| {
        let mine = e["manager"] == manager.as_str() && e["operation"] == operation;
        let emptied = e["operation"] == "Update"
            && e["fieldsV1"]
                .as_object()
                .is_none_or(serde_json::Map::is_empty);
        !mine && !emptied
    });
    entries.push(entry);
    meta.insert("managedFields".into(), Value::Array(entries));
}

fn encode_continue(token: &ContinueToken) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(token).unwrap_or_default())
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("continue key is not valid"))
}
